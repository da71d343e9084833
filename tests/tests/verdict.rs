//! Verdict tables through BPF_PROG_TEST_RUN: crafted packets for every parse path of the
//! XDP program, each checked for its XDP action and for the one counter it must move (by
//! one packet, and for session counters by the frame's length in bytes).
//!
//! Every test loads its own copy of the program with its maps pinned in its own directory,
//! and sets up the fixture below the way the CLI does (`geofence::kernel::sync` from a
//! `State`, `load_table` from a CSV file):
//!
//! ```text
//! territories  192.0.2.0/24 XA   198.51.100.0/24 XB   203.0.113.0/24 XC
//!              2001:db8:a::/48 XA   2001:db8:b::/48 XB   anything else: unknown
//! relay        100.64.0.1, 2001:db8:ffff::1 (other local addresses also work on wildcards)
//!
//! meeting (session)  endpoints / flows                          rules
//! A (1)     udp:*:40000 tcp:*:40001                    block XA;
//!           udp:[2001:db8:ffff::1]:40002               drop 198.51.100.7, 2001:db8:b::7,
//!                                                        203.0.113.128/25;
//!                                                      drop 198.51.100.8 (expired);
//!                                                      allow 192.0.2.77, 2001:db8:a::77,
//!                                                        2001:db8:a:1::/64, 203.0.113.129
//! B (2)     udp:100.64.0.1:41000 udp:100.64.0.3:40000  block XB dry-run;
//!                                                      drop 192.0.2.99 dry-run
//! C (300)   flows only: udp 198.51.100.50:5000 → 100.64.0.1:42000          block XB
//!           udp [2001:db8:b::50]:5000 → [2001:db8:ffff::1]:42000
//!           udp 198.51.100.60:6000 → 100.64.0.1:40000 (a port of A's wildcard endpoint)
//! D (4095)  udp:*:43000                                block unknown
//! E (5)     udp:*:44000                                block XC (expired); block XB (1 h)
//! F (6)     udp:*:45000                                block XC (1 h);
//!                                                      block XA, XB dry-run; block XA
//! ```
//!
//! Needs root (BPF and bpffs); skipped otherwise.

use std::fmt::{self, Write as _};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use aya::maps::{PerCpuArray, PerCpuHashMap, PerCpuValues};
use aya::programs::{TestRun as _, TestRunOptions};
use filter_common::counters::{STATS_CACHE_ENTRIES, STATS_CACHE_WAYS};
use filter_common::maps::{capacity, names};
use filter_common::{CachedStats, PassReason, SessionStats, StatsKey, Verdict};
use geofence::endpoint::{Flow, Proto, parse_socket};
use geofence::expiry::Clock;
use geofence::geo::{Format, load_files};
use geofence::kernel::{self, Kernel, Stats};
use geofence::prefix::parse_prefix;
use geofence::state::{Meeting, Rule, State};
use geofence::territory::Territory;
use geofence_test_frames::{
    ETH_HLEN, ETHERTYPE_LLDP, Ext, Frame, Packet, TPID_8021AD, TPID_8021Q, ipproto,
};
use geofence_tests::pinned::Program;

// ---------------------------------------------------------------------------------------
// Fixture addresses.

/// Sources, one per territory and family.
const XA4: &str = "192.0.2.10:50000";
const XB4: &str = "198.51.100.20:50000";
const XC4: &str = "203.0.113.30:50000";
const UNKNOWN4: &str = "10.1.2.3:50000";
const XA6: &str = "[2001:db8:a::10]:50000";
const XB6: &str = "[2001:db8:b::20]:50000";
const UNKNOWN6: &str = "[2001:db8:c::30]:50000";

/// Relay endpoints.
const A_UDP4: &str = "100.64.0.1:40000";
const A_TCP4: &str = "100.64.0.1:40001";
const A_UDP6: &str = "[2001:db8:ffff::1]:40000";
const A_TCP6: &str = "[2001:db8:ffff::1]:40001";
const A_SPECIFIC6: &str = "[2001:db8:ffff::1]:40002";
const B4: &str = "100.64.0.1:41000";
const D4: &str = "100.64.0.1:43000";
const D6: &str = "[2001:db8:ffff::1]:43000";
const E4: &str = "100.64.0.1:44000";
const F4: &str = "100.64.0.1:45000";
/// A port no meeting uses.
const NOBODY4: &str = "100.64.0.1:9999";
const NOBODY6: &str = "[2001:db8:ffff::1]:9999";

const GEO_CSV: &str = "\
192.0.2.0,192.0.2.255,XA
198.51.100.0,198.51.100.255,XB
203.0.113.0,203.0.113.255,XC
2001:db8:a::,2001:db8:a:ffff:ffff:ffff:ffff:ffff,XA
2001:db8:b::,2001:db8:b:ffff:ffff:ffff:ffff:ffff,XB
";

fn sock(s: &str) -> SocketAddr {
    s.parse()
        .unwrap_or_else(|e| panic!("`{s}` is not a socket address: {e}"))
}

fn ip(s: &str) -> IpAddr {
    sock(s).ip()
}

fn udp(src: &str, dst: &str) -> Packet {
    Packet::udp(sock(src), sock(dst))
}

fn tcp(src: &str, dst: &str) -> Packet {
    Packet::tcp(sock(src), sock(dst))
}

// ---------------------------------------------------------------------------------------
// Rows: what a packet must do.

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Pass,
    Drop,
}

const PASS: Action = Action::Pass;
const DROP: Action = Action::Drop;

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Pass => "PASS",
            Action::Drop => "DROP",
        })
    }
}

/// The counter a packet must move.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Effect {
    /// `(meeting, territory)` counted one packet of the frame's length under `verdict`.
    Session {
        meeting: &'static str,
        territory: &'static str,
        verdict: Verdict,
    },
    /// The pass-reason counter moved by one packet.
    Reason(PassReason),
    /// Not placeable for this reason, and dropped by a guard: its counter moved by one.
    Unparsed(PassReason),
}

fn passed(meeting: &'static str, territory: &'static str) -> Effect {
    Effect::Session {
        meeting,
        territory,
        verdict: Verdict::Passed,
    }
}

fn dropped(meeting: &'static str, territory: &'static str) -> Effect {
    Effect::Session {
        meeting,
        territory,
        verdict: Verdict::Dropped,
    }
}

fn would_drop(meeting: &'static str, territory: &'static str) -> Effect {
    Effect::Session {
        meeting,
        territory,
        verdict: Verdict::WouldDrop,
    }
}

fn reason(reason: PassReason) -> Effect {
    Effect::Reason(reason)
}

const MALFORMED: Effect = Effect::Reason(PassReason::Malformed);
const NO_SESSION: Effect = Effect::Reason(PassReason::NoSession);
const NOT_IP: Effect = Effect::Reason(PassReason::NotIp);
const NOT_UDP_TCP: Effect = Effect::Reason(PassReason::NotUdpTcp);
const FRAGMENT: Effect = Effect::Reason(PassReason::Fragment);

struct Row {
    what: String,
    frame: Frame,
    action: Action,
    effect: Effect,
}

fn row(what: impl Into<String>, frame: impl Into<Frame>, action: Action, effect: Effect) -> Row {
    Row {
        what: what.into(),
        frame: frame.into(),
        action,
        effect,
    }
}

/// A frame cut `keep` bytes into its `n`th (0-based) header called `name`.
fn cut(packet: &Packet, name: &str, n: usize, keep: usize) -> Frame {
    let frame = packet.build();
    let range = frame.nth_layer(name, n).range.clone();
    assert!(keep < range.len(), "{keep} bytes into {name} is not a cut");
    frame.truncated(range.start + keep)
}

// ---------------------------------------------------------------------------------------
// Counter changes, as a row sees them.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Change {
    Session {
        session: u32,
        territory: u16,
        verdict: usize,
        packets: i64,
        bytes: i64,
    },
    Reason {
        reason: usize,
        packets: i64,
    },
    Unparsed {
        reason: usize,
        packets: i64,
    },
}

fn territory_name(id: u16) -> String {
    Territory::from_id(id).to_string()
}

/// Every counter that differs between two readings.
fn changes(before: &Stats, after: &Stats) -> Vec<Change> {
    let mut out = Vec::new();
    let mut keys: Vec<(u32, u16)> = Vec::new();
    for stats in [before, after] {
        for (session, territories) in &stats.sessions {
            keys.extend(territories.keys().map(|t| (*session, *t)));
        }
    }
    keys.sort_unstable();
    keys.dedup();
    for (session, territory) in keys {
        let read = |s: &Stats| {
            s.sessions
                .get(&session)
                .and_then(|m| m.get(&territory))
                .copied()
                .unwrap_or_default()
        };
        let (old, new) = (read(before), read(after));
        for verdict in 0..Verdict::COUNT {
            let packets = new.packets[verdict] as i64 - old.packets[verdict] as i64;
            let bytes = new.bytes[verdict] as i64 - old.bytes[verdict] as i64;
            if packets != 0 || bytes != 0 {
                out.push(Change::Session {
                    session,
                    territory,
                    verdict,
                    packets,
                    bytes,
                });
            }
        }
    }
    for reason in 0..PassReason::COUNT as usize {
        let packets = after.pass_reasons[reason] as i64 - before.pass_reasons[reason] as i64;
        if packets != 0 {
            out.push(Change::Reason { reason, packets });
        }
        let packets =
            after.unparsed_blocked[reason] as i64 - before.unparsed_blocked[reason] as i64;
        if packets != 0 {
            out.push(Change::Unparsed { reason, packets });
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// The fixture: a loaded program with the meetings and territories above.

static NEXT: AtomicU32 = AtomicU32::new(0);

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A pin directory on bpffs, removed (pins first, then the directory) on drop.
struct PinDir(PathBuf);

impl Drop for PinDir {
    fn drop(&mut self) {
        if let Ok(entries) = std::fs::read_dir(&self.0) {
            for entry in entries.flatten() {
                if let Err(e) = std::fs::remove_file(entry.path()) {
                    eprintln!("removing pin {}: {e}", entry.path().display());
                }
            }
        }
        match std::fs::remove_dir(&self.0) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                eprintln!("removing pin directory {}: {e}", self.0.display());
            }
            _ => {}
        }
    }
}

/// A temporary file, removed on drop.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Session ids of the fixture's meetings: a few large ones, so that the session's bytes
/// in map keys (big-endian in the override trie) matter.
const MEETINGS: [(&str, u32); 6] = [
    ("A", 1),
    ("B", 2),
    ("C", 300),
    ("D", 4095),
    ("E", 5),
    ("F", 6),
];

fn session_id(name: &str) -> u32 {
    MEETINGS
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no meeting {name} in the fixture"))
        .1
}

fn meeting_name(session: u32) -> String {
    MEETINGS
        .iter()
        .find(|(_, id)| *id == session)
        .map_or_else(|| format!("session {session}"), |(n, _)| n.to_string())
}

fn territory_id(code: &str) -> u16 {
    Territory::parse(code)
        .unwrap_or_else(|e| panic!("{e}"))
        .id()
}

/// A territory rule. `expires` is an RFC 3339 time.
fn block(territories: &[&str], expires: Option<&str>, dry_run: bool) -> Rule {
    Rule {
        order: "verdict-table".to_string(),
        territories: territories
            .iter()
            .map(|t| Territory::parse(t).expect("fixture territory"))
            .collect(),
        prefixes: Vec::new(),
        expires: expires.map(|at| at.parse().expect("fixture expiry")),
        dry_run,
        issued: geofence::clock::now(),
        issued_by: "verdict.rs".to_string(),
        slot: None,
    }
}

/// A drop override on single addresses or prefixes.
fn drop_prefixes(prefixes: &[&str], expires: Option<&str>, dry_run: bool) -> Rule {
    Rule {
        prefixes: prefixes
            .iter()
            .map(|p| parse_prefix(p).expect("fixture prefix"))
            .collect(),
        ..block(&[], expires, dry_run)
    }
}

fn meeting(name: &str, endpoints: &[&str], flows: &[(&str, &str)], rules: Vec<Rule>) -> Meeting {
    Meeting {
        session: session_id(name),
        created: geofence::clock::now(),
        endpoints: endpoints
            .iter()
            .map(|e| e.parse().expect("fixture endpoint"))
            .collect(),
        flows: flows
            .iter()
            .map(|(src, dst)| {
                let src = parse_socket(src).expect("flow source");
                let dst = parse_socket(dst).expect("flow destination");
                Flow::new(Proto::Udp, src, dst).expect("fixture flow")
            })
            .collect(),
        rules,
        allows: Vec::new(),
    }
}

fn fixture_state() -> State {
    let now = geofence::clock::now();
    let in_an_hour = geofence::expiry::expiry_after(now, Duration::from_secs(3600))
        .expect("an hour from now")
        .to_string();
    let in_an_hour = Some(in_an_hour.as_str());
    let past = Some("2000-01-01T00:00:00Z");
    let mut a = meeting(
        "A",
        &["udp:*:40000", "tcp:*:40001", "udp:[2001:db8:ffff::1]:40002"],
        &[],
        vec![
            block(&["XA"], None, false),
            drop_prefixes(&["198.51.100.7"], None, false),
            drop_prefixes(&["2001:db8:b::7", "203.0.113.128/25"], None, false),
            drop_prefixes(&["198.51.100.8"], past, false),
        ],
    );
    a.allows = [
        "192.0.2.77",
        "2001:db8:a::77",
        "2001:db8:a:1::/64",
        "203.0.113.129",
    ]
    .iter()
    .map(|p| parse_prefix(p).expect("fixture allow"))
    .collect();
    let b = meeting(
        "B",
        &["udp:100.64.0.1:41000", "udp:100.64.0.3:40000"],
        &[],
        vec![
            block(&["XB"], None, true),
            drop_prefixes(&["192.0.2.99"], None, true),
        ],
    );
    let c = meeting(
        "C",
        &[],
        &[
            ("198.51.100.50:5000", "100.64.0.1:42000"),
            ("[2001:db8:b::50]:5000", "[2001:db8:ffff::1]:42000"),
            ("198.51.100.60:6000", "100.64.0.1:40000"),
        ],
        vec![block(&["XB"], None, false)],
    );
    let d = meeting(
        "D",
        &["udp:*:43000"],
        &[],
        vec![block(&["unknown"], None, false)],
    );
    let e = meeting(
        "E",
        &["udp:*:44000"],
        &[],
        vec![
            block(&["XC"], past, false),
            block(&["XB"], in_an_hour, false),
        ],
    );
    let f = meeting(
        "F",
        &["udp:*:45000"],
        &[],
        vec![
            block(&["XC"], in_an_hour, false),
            // A dry run of one order does not weaken another order's enforcement.
            block(&["XA", "XB"], None, true),
            block(&["XA"], None, false),
        ],
    );
    let mut state = State::default();
    for (name, m) in [("A", a), ("B", b), ("C", c), ("D", d), ("E", e), ("F", f)] {
        state.meetings.insert(name.to_string(), m);
    }
    state
}

/// A failed BPF_PROG_TEST_RUN.
#[derive(Debug)]
struct RunError {
    message: String,
    errno: Option<i32>,
}

struct Fixture {
    // Dropped first: the program and map fds, then the pins.
    program: Program,
    _pins: PinDir,
}

impl Fixture {
    /// The loaded fixture, or `None` (after saying so) when not root.
    fn new(test: &str) -> Option<Fixture> {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipping {test}: not root");
            return None;
        }
        geofence_tests::sys::ensure_bpffs().expect("bpffs on /sys/fs/bpf");
        let pins = PinDir(PathBuf::from("/sys/fs/bpf").join(unique("gf-verdict")));
        let mut kernel = Kernel::open(&pins.0).expect("loading the geofence object");

        let csv = TempFile(std::env::temp_dir().join(format!("{}.csv", unique("gf-verdict"))));
        std::fs::write(&csv.0, GEO_CSV).expect("writing the fixture geo CSV");
        let table = load_files(std::slice::from_ref(&csv.0), Format::Csv, None)
            .expect("loading the fixture geo CSV");
        kernel::load_table(&mut kernel, &table).expect("loading the territory table");
        for (addr, want) in [
            (XA4, "XA"),
            (XB4, "XB"),
            (XC4, "XC"),
            (XA6, "XA"),
            (XB6, "XB"),
        ] {
            let got = kernel::geo_lookup(&kernel, ip(addr)).expect("geo lookup");
            assert_eq!(got, Some(territory_id(want)), "fixture territory of {addr}");
        }
        for addr in [UNKNOWN4, UNKNOWN6] {
            let got = kernel::geo_lookup(&kernel, ip(addr)).expect("geo lookup");
            assert_eq!(got, None, "{addr} must be in no territory");
        }

        kernel::sync(&mut kernel, &fixture_state(), &Clock::now())
            .expect("syncing the fixture meetings");
        Some(Fixture {
            program: Program::new(kernel),
            _pins: pins,
        })
    }

    /// Runs one frame through the program: the XDP action, or why the run failed.
    fn test_run(&self, bytes: &[u8]) -> Result<u32, RunError> {
        let result = self.program.xdp().test_run(TestRunOptions {
            data_in: Some(bytes),
            ..TestRunOptions::new()
        });
        result.map(|r| r.return_value).map_err(|e| {
            let mut message = e.to_string();
            let mut errno = None;
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                write!(message, ": {s}").expect("formatting");
                if let Some(io) = s.downcast_ref::<std::io::Error>() {
                    errno = errno.or(io.raw_os_error());
                }
                source = s.source();
            }
            RunError { message, errno }
        })
    }

    /// Fills `SESSION_STATS` to capacity with zero counters of sessions no meeting has, and
    /// every free `STATS_CACHE` entry, on every CPU, with a territory no packet has.
    fn fill_session_stats(&mut self) {
        let cache = self
            .program
            .0
            .ebpf
            .map_mut(names::STATS_CACHE)
            .expect("the STATS_CACHE map");
        let mut cache: PerCpuArray<_, CachedStats> =
            PerCpuArray::try_from(cache).expect("a per-CPU array");
        for index in 0..STATS_CACHE_ENTRIES {
            let filled: Vec<CachedStats> = cache
                .get(&index, 0)
                .expect("reading STATS_CACHE")
                .iter()
                .map(|cpu| {
                    let mut cpu = *cpu;
                    if cpu.key.session == 0 {
                        cpu.key = StatsKey {
                            session: index / STATS_CACHE_WAYS,
                            territory: u16::MAX,
                            _pad: 0,
                        };
                    }
                    cpu
                })
                .collect();
            cache
                .set(
                    index,
                    PerCpuValues::try_from(filled).expect("per-CPU values"),
                    0,
                )
                .expect("writing STATS_CACHE");
        }
        let map = self
            .program
            .0
            .ebpf
            .map_mut(names::SESSION_STATS)
            .expect("the SESSION_STATS map");
        let mut stats: PerCpuHashMap<_, StatsKey, SessionStats> =
            PerCpuHashMap::try_from(map).expect("a per-CPU hash");
        let cpus = aya::util::nr_cpus().expect("number of CPUs");
        let zero =
            || PerCpuValues::try_from(vec![SessionStats::default(); cpus]).expect("per-CPU values");
        let key = |n: u32| StatsKey {
            session: 10_000 + n / 1000,
            territory: (n % 1000) as u16,
            _pad: 0,
        };
        let present = stats.keys().count() as u32;
        let free = capacity::SESSION_STATS - present;
        for n in 0..free {
            stats
                .insert(key(n), zero(), 0)
                .unwrap_or_else(|e| panic!("filling SESSION_STATS, entry {n} of {free}: {e}"));
        }
        assert!(
            stats.insert(key(free), zero(), 0).is_err(),
            "SESSION_STATS must be full after {} entries",
            capacity::SESSION_STATS
        );
    }

    fn stats(&self) -> Stats {
        kernel::read_stats(&self.program.0).expect("reading the counters")
    }

    /// Runs every row, prints the table, and fails with the rows that did not hold.
    fn check(&self, table: &str, rows: Vec<Row>) {
        assert!(!rows.is_empty(), "{table}: an empty table checks nothing");
        let mut report = Report::default();
        for row in rows {
            let before = self.stats();
            let run = self.test_run(&row.frame.bytes);
            let after = self.stats();
            report.add(row, run, changes(&before, &after));
        }
        report.finish(table);
    }
}

// ---------------------------------------------------------------------------------------
// The report.

fn describe_effect(effect: Effect, len: usize) -> String {
    describe_change(&expected_change(effect, len))
}

fn describe_change(change: &Change) -> String {
    match *change {
        Change::Session {
            session,
            territory,
            verdict,
            packets,
            bytes,
        } => format!(
            "{}/{} {} {packets:+} ({bytes:+} B)",
            meeting_name(session),
            territory_name(territory),
            Verdict::ALL[verdict].name(),
        ),
        Change::Reason { reason, packets } => {
            format!("{} {packets:+}", PassReason::ALL[reason].name())
        }
        Change::Unparsed { reason, packets } => {
            format!(
                "unparsed_blocked {} {packets:+}",
                PassReason::ALL[reason].name()
            )
        }
    }
}

fn expected_change(effect: Effect, len: usize) -> Change {
    match effect {
        Effect::Session {
            meeting,
            territory,
            verdict,
        } => Change::Session {
            session: session_id(meeting),
            territory: territory_id(territory),
            verdict: verdict as usize,
            packets: 1,
            bytes: len as i64,
        },
        Effect::Reason(r) => Change::Reason {
            reason: r as usize,
            packets: 1,
        },
        Effect::Unparsed(r) => Change::Unparsed {
            reason: r as usize,
            packets: 1,
        },
    }
}

struct Line {
    ok: bool,
    what: String,
    len: usize,
    expected: String,
    got: String,
}

#[derive(Default)]
struct Report {
    lines: Vec<Line>,
    /// Rows too short for BPF_PROG_TEST_RUN.
    refused: usize,
}

impl Report {
    fn add(&mut self, row: Row, run: Result<u32, RunError>, changes: Vec<Change>) {
        let len = row.frame.len();
        let want_change = expected_change(row.effect, len);
        let mut expected = format!("{}  {}", row.action, describe_effect(row.effect, len));
        // BPF_PROG_TEST_RUN refuses XDP data shorter than an Ethernet header (EINVAL), also
        // behind XDP metadata, so a cut inside the Ethernet header never reaches the
        // program here (nor does it on a real NIC). Accept that refusal, or the verdict the
        // row asks for should a kernel ever run it.
        let short = len < ETH_HLEN;
        if short {
            expected.push_str(", or refused (< 14 B)");
        }
        let action = match &run {
            Ok(XDP_DROP) => Ok(DROP),
            Ok(XDP_PASS) => Ok(PASS),
            Ok(other) => Err(format!("XDP action {other}")),
            Err(e) => Err(format!("test run failed: {}", e.message)),
        };
        let refused =
            short && changes.is_empty() && matches!(&run, Err(e) if e.errno == Some(libc::EINVAL));
        let ok = refused || (action == Ok(row.action) && changes == [want_change]);
        let got_counters = if changes.is_empty() {
            "no counter moved".to_string()
        } else {
            changes
                .iter()
                .map(describe_change)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let got = match action {
            _ if refused => "refused by BPF_PROG_TEST_RUN (EINVAL)".to_string(),
            Ok(a) => format!("{a}  {got_counters}"),
            Err(e) => format!("{e}; {got_counters}"),
        };
        self.refused += usize::from(refused);
        self.lines.push(Line {
            ok,
            what: row.what,
            len,
            expected,
            got,
        });
    }

    fn render<'a>(lines: impl Iterator<Item = &'a Line> + Clone) -> String {
        let w_what = lines
            .clone()
            .map(|l| l.what.chars().count())
            .max()
            .unwrap_or(0)
            .max(3);
        let w_exp = lines
            .clone()
            .map(|l| l.expected.chars().count())
            .max()
            .unwrap_or(0)
            .max(8);
        let mut out = String::new();
        writeln!(
            out,
            "     {:<w_what$}  {:>4}  {:<w_exp$}  got",
            "row", "len", "expected"
        )
        .expect("formatting");
        for l in lines {
            let (mark, got) = if l.ok {
                (" ok ", "")
            } else {
                ("FAIL", &*l.got)
            };
            let line = format!(
                "{mark} {:<w_what$}  {:>4}  {:<w_exp$}  {got}",
                l.what, l.len, l.expected
            );
            writeln!(out, "{}", line.trim_end()).expect("formatting");
        }
        out
    }

    fn finish(self, table: &str) {
        let failed: Vec<&Line> = self.lines.iter().filter(|l| !l.ok).collect();
        let refused = match self.refused {
            0 => String::new(),
            n => format!(" ({n} shorter than Ethernet, refused by the kernel)"),
        };
        println!(
            "{table}: {} rows, {} as expected{refused}\n{}",
            self.lines.len(),
            self.lines.len() - failed.len(),
            Report::render(self.lines.iter())
        );
        if !failed.is_empty() {
            panic!(
                "{table}: {} of {} rows failed:\n{}",
                failed.len(),
                self.lines.len(),
                Report::render(failed.into_iter())
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// The tables.

#[test]
fn vlan_tags_and_non_ip() {
    let Some(fx) = Fixture::new("vlan_tags_and_non_ip") else {
        return;
    };
    let v4 = udp(XA4, A_UDP4);
    let v6 = udp(XA6, A_UDP6);
    let rows = vec![
        row(
            "no tag, IPv4 UDP XA → A",
            v4.clone(),
            DROP,
            dropped("A", "XA"),
        ),
        row(
            "1 tag 802.1Q, IPv4 UDP XA → A",
            v4.clone().vlan(TPID_8021Q, 10),
            DROP,
            dropped("A", "XA"),
        ),
        row(
            "1 tag 802.1ad, IPv4 UDP XA → A",
            v4.clone().vlan(TPID_8021AD, 10),
            DROP,
            dropped("A", "XA"),
        ),
        row(
            "2 tags QinQ (88a8, 8100), IPv4 UDP XA → A",
            v4.clone().vlan(TPID_8021AD, 10).vlan(TPID_8021Q, 20),
            DROP,
            dropped("A", "XA"),
        ),
        row(
            "2 tags (8100, 8100), IPv4 TCP XA → A",
            tcp(XA4, A_TCP4).vlan(TPID_8021Q, 10).vlan(TPID_8021Q, 20),
            DROP,
            dropped("A", "XA"),
        ),
        row(
            "2 tags QinQ, IPv4 UDP XB → A",
            udp(XB4, A_UDP4).vlan(TPID_8021AD, 10).vlan(TPID_8021Q, 20),
            PASS,
            passed("A", "XB"),
        ),
        row(
            "3 tags, IPv4 UDP XA → A",
            v4.clone()
                .vlan(TPID_8021AD, 10)
                .vlan(TPID_8021Q, 20)
                .vlan(TPID_8021Q, 30),
            PASS,
            NOT_IP,
        ),
        row(
            "no tag, IPv6 UDP XA → A",
            v6.clone(),
            DROP,
            dropped("A", "XA"),
        ),
        row(
            "1 tag 802.1Q, IPv6 UDP XA → A",
            v6.clone().vlan(TPID_8021Q, 10),
            DROP,
            dropped("A", "XA"),
        ),
        row(
            "1 tag 802.1ad, IPv6 UDP XA → A",
            v6.clone().vlan(TPID_8021AD, 4094),
            DROP,
            dropped("A", "XA"),
        ),
        row(
            "2 tags QinQ, IPv6 UDP XA → A",
            v6.clone().vlan(TPID_8021AD, 10).vlan(TPID_8021Q, 20),
            DROP,
            dropped("A", "XA"),
        ),
        row(
            "2 tags QinQ, IPv6 UDP XB → A",
            udp(XB6, A_UDP6).vlan(TPID_8021AD, 10).vlan(TPID_8021Q, 20),
            PASS,
            passed("A", "XB"),
        ),
        row(
            "3 tags, IPv6 UDP XA → A",
            v6.clone()
                .vlan(TPID_8021AD, 10)
                .vlan(TPID_8021Q, 20)
                .vlan(TPID_8021Q, 30),
            PASS,
            NOT_IP,
        ),
        row(
            "ARP request",
            Packet::arp(
                "192.0.2.10".parse().expect("ip"),
                "100.64.0.1".parse().expect("ip"),
            ),
            PASS,
            NOT_IP,
        ),
        row(
            "ARP request, 1 tag",
            Packet::arp(
                "192.0.2.10".parse().expect("ip"),
                "100.64.0.1".parse().expect("ip"),
            )
            .vlan(TPID_8021Q, 10),
            PASS,
            NOT_IP,
        ),
        row(
            "LLDP",
            Packet::non_ip(
                ETHERTYPE_LLDP,
                "lldp",
                vec![0x02, 0x07, 0x04, 0, 0, 0, 0, 0, 1, 0, 0],
            ),
            PASS,
            NOT_IP,
        ),
        row(
            "ICMP echo XA → relay",
            Packet::icmp(ip(XA4), ip(A_UDP4)),
            PASS,
            NOT_UDP_TCP,
        ),
        row(
            "ICMPv6 echo XA → relay",
            Packet::icmp(ip(XA6), ip(A_UDP6)),
            PASS,
            NOT_UDP_TCP,
        ),
        row(
            "GRE XA → relay",
            Packet::raw_ip(ip(XA4), ip(A_UDP4), ipproto::GRE),
            PASS,
            NOT_UDP_TCP,
        ),
        row(
            "ICMP echo XA → relay, 2 tags",
            Packet::icmp(ip(XA4), ip(A_UDP4))
                .vlan(TPID_8021AD, 1)
                .vlan(TPID_8021Q, 2),
            PASS,
            NOT_UDP_TCP,
        ),
    ];
    fx.check("VLAN tags and non-IP", rows);
}

#[test]
fn ipv4_options_and_fragments() {
    let Some(fx) = Fixture::new("ipv4_options_and_fragments") else {
        return;
    };
    let rows = vec![
        row(
            "IHL 6 (4 B options), UDP XA → A",
            udp(XA4, A_UDP4).ipv4_options(4),
            DROP,
            dropped("A", "XA"),
        ),
        row(
            "IHL 6, UDP XB → A",
            udp(XB4, A_UDP4).ipv4_options(4),
            PASS,
            passed("A", "XB"),
        ),
        row(
            "IHL 15 (40 B options), UDP XA → A",
            udp(XA4, A_UDP4).ipv4_options(40),
            DROP,
            dropped("A", "XA"),
        ),
        row(
            "IHL 15, UDP XB → A",
            udp(XB4, A_UDP4).ipv4_options(40),
            PASS,
            passed("A", "XB"),
        ),
        row(
            "IHL 15, TCP XA → A",
            tcp(XA4, A_TCP4).ipv4_options(40),
            DROP,
            dropped("A", "XA"),
        ),
        row(
            "IHL 10, TCP XC → A",
            tcp(XC4, A_TCP4).ipv4_options(20),
            PASS,
            passed("A", "XC"),
        ),
        row(
            "IHL 15, 1 tag, UDP allow-listed 192.0.2.77 → A",
            udp("192.0.2.77:1000", A_UDP4)
                .ipv4_options(40)
                .vlan(TPID_8021Q, 7),
            PASS,
            passed("A", "XA"),
        ),
        row("IHL 4", udp(XA4, A_UDP4).ihl(4), PASS, MALFORMED),
        row("IHL 0", udp(XA4, A_UDP4).ihl(0), PASS, MALFORMED),
        row(
            "IPv4 ethertype, version 6",
            udp(XA4, A_UDP4).ip_version(6),
            PASS,
            MALFORMED,
        ),
        row(
            "IHL 15 but only 4 B of options (UDP header read as options)",
            udp(XA4, A_UDP4).ipv4_options(4).ihl(15),
            PASS,
            MALFORMED,
        ),
        row(
            "DF set, UDP XA → A (not a fragment)",
            udp(XA4, A_UDP4).dont_fragment(),
            DROP,
            dropped("A", "XA"),
        ),
        row(
            "first fragment (MF, offset 0), UDP XA → A",
            udp(XA4, A_UDP4).fragment(0, true),
            DROP,
            dropped("A", "XA"),
        ),
        row(
            "first fragment, IHL 15, TCP XA → A",
            tcp(XA4, A_TCP4).ipv4_options(40).fragment(0, true),
            DROP,
            dropped("A", "XA"),
        ),
        row(
            "first fragment carrying 8 B: the whole UDP header, XA → A",
            udp(XA4, A_UDP4).fragment(0, true).carry(8),
            DROP,
            dropped("A", "XA"),
        ),
        row(
            "first fragment carrying 24 B: the whole TCP header, XA → A",
            tcp(XA4, A_TCP4).fragment(0, true).carry(24),
            DROP,
            dropped("A", "XA"),
        ),
        row(
            "first fragment, UDP XB → A",
            udp(XB4, A_UDP4).fragment(0, true),
            PASS,
            passed("A", "XB"),
        ),
        row(
            "middle fragment (MF, offset 185) XA → A",
            udp(XA4, A_UDP4).fragment(185, true),
            PASS,
            FRAGMENT,
        ),
        row(
            "last fragment (offset 185) XA → A",
            udp(XA4, A_UDP4).fragment(185, false),
            PASS,
            FRAGMENT,
        ),
        row(
            "fragment at offset 1 (8 B) XA → A",
            udp(XA4, A_UDP4).fragment(1, true),
            PASS,
            FRAGMENT,
        ),
        row(
            "fragment at the largest offset, DF set, XA → A",
            udp(XA4, A_UDP4).dont_fragment().fragment(0x1fff, false),
            PASS,
            FRAGMENT,
        ),
        row(
            "non-first fragment, IHL 15, 2 tags, XA → A",
            udp(XA4, A_UDP4)
                .ipv4_options(40)
                .fragment(185, true)
                .vlan(TPID_8021AD, 1)
                .vlan(TPID_8021Q, 2),
            PASS,
            FRAGMENT,
        ),
    ];
    fx.check("IPv4 options and fragments", rows);
}

#[test]
fn ipv6_extension_headers() {
    let Some(fx) = Fixture::new("ipv6_extension_headers") else {
        return;
    };
    let to_a = || udp(XA6, A_UDP6);
    let all_six = [
        Ext::HOP_BY_HOP,
        Ext::DEST_OPTS,
        Ext::ROUTING,
        Ext::FIRST_FRAGMENT,
        Ext::AUTH,
        Ext::DEST_OPTS,
    ];
    let mut rows = vec![
        row(
            "hop-by-hop",
            to_a().ext(Ext::HOP_BY_HOP),
            DROP,
            dropped("A", "XA"),
        ),
        row(
            "hop-by-hop, 16 B",
            to_a().ext(Ext::HopByHop { len: 1 }),
            DROP,
            dropped("A", "XA"),
        ),
        row(
            "routing",
            to_a().ext(Ext::ROUTING),
            DROP,
            dropped("A", "XA"),
        ),
        row(
            "routing, 24 B",
            to_a().ext(Ext::Routing { len: 2 }),
            DROP,
            dropped("A", "XA"),
        ),
        row(
            "dest-opts",
            to_a().ext(Ext::DEST_OPTS),
            DROP,
            dropped("A", "XA"),
        ),
        row(
            "dest-opts, 2 KiB (largest)",
            to_a().ext(Ext::DestOpts { len: 255 }),
            DROP,
            dropped("A", "XA"),
        ),
        row("AH (24 B)", to_a().ext(Ext::AUTH), DROP, dropped("A", "XA")),
        row(
            "AH, 12 B (no ICV)",
            to_a().ext(Ext::Auth { len: 1 }),
            DROP,
            dropped("A", "XA"),
        ),
        row(
            "fragment, first (M, offset 0)",
            to_a().ext(Ext::FIRST_FRAGMENT),
            DROP,
            dropped("A", "XA"),
        ),
        row(
            "fragment, atomic (offset 0, no M)",
            to_a().fragment(0, false),
            DROP,
            dropped("A", "XA"),
        ),
        row(
            "hop-by-hop + dest-opts",
            to_a().exts(&[Ext::HOP_BY_HOP, Ext::DEST_OPTS]),
            DROP,
            dropped("A", "XA"),
        ),
        row(
            "hop-by-hop + routing + dest-opts",
            to_a().exts(&[Ext::HOP_BY_HOP, Ext::ROUTING, Ext::DEST_OPTS]),
            DROP,
            dropped("A", "XA"),
        ),
        row(
            "routing + first fragment + AH",
            to_a().exts(&[Ext::ROUTING, Ext::FIRST_FRAGMENT, Ext::AUTH]),
            DROP,
            dropped("A", "XA"),
        ),
        row(
            "hop-by-hop + AH, TCP XA → A",
            tcp(XA6, A_TCP6).exts(&[Ext::HOP_BY_HOP, Ext::AUTH]),
            DROP,
            dropped("A", "XA"),
        ),
        row(
            "dest-opts + routing, UDP XB → A",
            udp(XB6, A_UDP6).exts(&[Ext::DEST_OPTS, Ext::ROUTING]),
            PASS,
            passed("A", "XB"),
        ),
        row(
            "hop-by-hop + first fragment, UDP XB → A specific endpoint",
            udp(XB6, A_SPECIFIC6).exts(&[Ext::HOP_BY_HOP, Ext::FIRST_FRAGMENT]),
            PASS,
            passed("A", "XB"),
        ),
        row(
            "6 headers (the most followed)",
            to_a().exts(&all_six),
            DROP,
            dropped("A", "XA"),
        ),
        row(
            "6 headers, 2 tags, TCP",
            tcp(XA6, A_TCP6)
                .exts(&all_six)
                .vlan(TPID_8021AD, 1)
                .vlan(TPID_8021Q, 2),
            DROP,
            dropped("A", "XA"),
        ),
        // More than the walk follows: the stack would deliver it, so the guard of its
        // destination judges the source. A's, D's, E's and F's wildcard endpoints put
        // their rules in force in the guard of every address: XA, unknown, XB, XC.
        row(
            "7 headers, XA source",
            to_a().exts(&all_six).ext(Ext::DEST_OPTS),
            DROP,
            Effect::Unparsed(PassReason::ExtHeaderLimit),
        ),
        row(
            "8 hop-by-hop headers, XA source",
            to_a().exts(&[Ext::HOP_BY_HOP; 8]),
            DROP,
            Effect::Unparsed(PassReason::ExtHeaderLimit),
        ),
        row(
            "7 headers, XB source (E blocks XB on a wildcard endpoint)",
            udp(XB6, A_UDP6).exts(&all_six).ext(Ext::ROUTING),
            DROP,
            Effect::Unparsed(PassReason::ExtHeaderLimit),
        ),
        row(
            "7 headers, XA source excepted by A (allow 2001:db8:a::77), F blocks XA",
            udp("[2001:db8:a::77]:50000", A_UDP6)
                .exts(&all_six)
                .ext(Ext::ROUTING),
            DROP,
            Effect::Unparsed(PassReason::ExtHeaderLimit),
        ),
        row(
            "7 headers, IPv4-mapped XA source",
            udp("[::ffff:192.0.2.10]:50000", A_UDP6)
                .exts(&all_six)
                .ext(Ext::ROUTING),
            DROP,
            Effect::Unparsed(PassReason::ExtHeaderLimit),
        ),
        row(
            "IPv4-mapped destination (A's IPv4 endpoint address)",
            udp(XA6, "[::ffff:100.64.0.1]:40000"),
            PASS,
            reason(PassReason::MappedDestination),
        ),
        row(
            "fragment, non-first (M, offset 185)",
            to_a().fragment(185, true),
            PASS,
            FRAGMENT,
        ),
        row(
            "fragment, last (offset 185)",
            to_a().fragment(185, false),
            PASS,
            FRAGMENT,
        ),
        row(
            "hop-by-hop + routing + non-first fragment",
            to_a()
                .exts(&[Ext::HOP_BY_HOP, Ext::ROUTING])
                .fragment(1, true),
            PASS,
            FRAGMENT,
        ),
        row(
            "hop-by-hop + ICMPv6",
            Packet::icmp(ip(XA6), ip(A_UDP6)).ext(Ext::HOP_BY_HOP),
            PASS,
            NOT_UDP_TCP,
        ),
        row(
            "IPv6 ethertype, version 4",
            to_a().ip_version(4),
            PASS,
            MALFORMED,
        ),
    ];
    // Each single header before TCP as well.
    for ext in [
        Ext::HOP_BY_HOP,
        Ext::ROUTING,
        Ext::DEST_OPTS,
        Ext::AUTH,
        Ext::FIRST_FRAGMENT,
    ] {
        rows.push(row(
            format!("{}, TCP XA → A", ext.name()),
            tcp(XA6, A_TCP6).ext(ext),
            DROP,
            dropped("A", "XA"),
        ));
    }
    fx.check("IPv6 extension headers", rows);
}

#[test]
fn truncated_headers() {
    let Some(fx) = Fixture::new("truncated_headers") else {
        return;
    };
    let v4 = udp(XA4, A_UDP4);
    let v6 = udp(XA6, A_UDP6);
    let mut rows = Vec::new();
    // A header cut after a first fragment's fragment header: the stack would reassemble
    // it with the rest, so the guard judges the source (A blocks XA on every address).
    let after_first_fragment = ["auth"];
    let mut cuts = |what: &str, packet: &Packet, layer: &str, n: usize, keeps: &[usize]| {
        for &keep in keeps {
            let frame = cut(packet, layer, n, keep);
            let (action, effect) = if what == "IPv6 chain" && after_first_fragment.contains(&layer)
            {
                (DROP, Effect::Unparsed(PassReason::Malformed))
            } else {
                (PASS, MALFORMED)
            };
            rows.push(row(format!("{what}: {frame}"), frame, action, effect));
        }
    };
    cuts("IPv4 UDP", &v4, "ethernet", 0, &[0, 1, 6, 12, 13]);
    cuts("IPv6 UDP", &v6, "ethernet", 0, &[13]);
    cuts(
        "1 tag",
        &v4.clone().vlan(TPID_8021Q, 10),
        "vlan",
        0,
        &[0, 1, 3],
    );
    let two_tags = v6.clone().vlan(TPID_8021AD, 10).vlan(TPID_8021Q, 20);
    cuts("2 tags", &two_tags, "vlan", 0, &[2]);
    cuts("2 tags", &two_tags, "vlan", 1, &[0, 3]);
    cuts("IPv4 UDP", &v4, "ipv4", 0, &[0, 1, 9, 12, 19]);
    cuts(
        "IPv4 IHL 6",
        &v4.clone().ipv4_options(4),
        "ipv4 options",
        0,
        &[0, 3],
    );
    let ihl15 = tcp(XA4, A_TCP4).ipv4_options(40);
    cuts("IPv4 IHL 15", &ihl15, "ipv4 options", 0, &[0, 20, 39]);
    cuts("IPv6 UDP", &v6, "ipv6", 0, &[0, 6, 8, 39]);
    let chain = v6.clone().exts(&[
        Ext::HopByHop { len: 1 },
        Ext::ROUTING,
        Ext::DEST_OPTS,
        Ext::FIRST_FRAGMENT,
        Ext::AUTH,
    ]);
    cuts("IPv6 chain", &chain, "hop-by-hop", 0, &[0, 1, 2, 8, 15]);
    cuts("IPv6 chain", &chain, "routing", 0, &[0, 1, 2, 7]);
    cuts("IPv6 chain", &chain, "dest-opts", 0, &[0, 1, 7]);
    cuts("IPv6 chain", &chain, "fragment", 0, &[0, 2, 4, 7]);
    cuts("IPv6 chain", &chain, "auth", 0, &[0, 1, 2, 12, 23]);
    let big = v6.clone().ext(Ext::DestOpts { len: 255 });
    cuts(
        "IPv6 2 KiB dest-opts",
        &big,
        "dest-opts",
        0,
        &[2, 1000, 2047],
    );
    cuts("IPv4 UDP", &v4, "udp", 0, &[0, 2, 4, 7]);
    cuts("IPv6 UDP", &v6, "udp", 0, &[0, 4, 7]);
    cuts("IPv4 TCP", &tcp(XA4, A_TCP4), "tcp", 0, &[0, 4, 12, 19]);
    cuts("IPv6 TCP", &tcp(XA6, A_TCP6), "tcp", 0, &[4, 19]);
    cuts("IPv4 IHL 15 TCP", &ihl15, "tcp", 0, &[0, 19]);
    fx.check("truncated headers", rows);
}

#[test]
fn truncation_sweep() {
    let Some(fx) = Fixture::new("truncation_sweep") else {
        return;
    };
    let packets = [
        (
            "IPv6 QinQ 5 ext UDP, first fragment",
            true,
            udp(XA6, A_UDP6)
                .vlan(TPID_8021AD, 100)
                .vlan(TPID_8021Q, 200)
                .exts(&[
                    Ext::HopByHop { len: 1 },
                    Ext::DEST_OPTS,
                    Ext::ROUTING,
                    Ext::FIRST_FRAGMENT,
                    Ext::AUTH,
                ]),
        ),
        (
            "IPv4 tag IHL 15 TCP",
            false,
            tcp(XA4, A_TCP4).vlan(TPID_8021Q, 300).ipv4_options(40),
        ),
        (
            "IPv6 TCP dest-opts",
            false,
            tcp(XA6, A_TCP6).ext(Ext::DEST_OPTS),
        ),
        ("IPv4 UDP", false, udp(XA4, A_UDP4)),
    ];
    let mut rows = Vec::new();
    for (name, first_fragment, packet) in &packets {
        let full = packet.build();
        for len in 0..=full.len() {
            let frame = full.truncated(len);
            // A first fragment is classified on its ports: the rest of its transport
            // header may legally travel in the next fragment.
            let cut = if *first_fragment {
                len < full.layer("udp").range.start + 4
            } else {
                frame.headers_cut()
            };
            // Cut after its fragment header, a first fragment is one the stack would
            // reassemble: the guard drops it, as A blocks XA on every address.
            let judged = *first_fragment && len >= full.layer("fragment").range.end;
            let (action, effect) = match (cut, judged) {
                (true, true) => (DROP, Effect::Unparsed(PassReason::Malformed)),
                (true, false) => (PASS, MALFORMED),
                (false, _) => (DROP, dropped("A", "XA")),
            };
            rows.push(row(
                format!("{name} [..{len}]: {frame}"),
                frame,
                action,
                effect,
            ));
        }
    }
    fx.check("every cut of fully featured packets", rows);
}

#[test]
fn session_matching() {
    let Some(fx) = Fixture::new("session_matching") else {
        return;
    };
    let rows = vec![
        // Protocols and families on A's wildcard endpoints.
        row(
            "UDP IPv4 XA → A wildcard",
            udp(XA4, A_UDP4),
            DROP,
            dropped("A", "XA"),
        ),
        row(
            "UDP IPv4 XA → another local address, A's port",
            udp(XA4, "100.64.0.99:40000"),
            DROP,
            dropped("A", "XA"),
        ),
        row(
            "TCP IPv4 XA → A",
            tcp(XA4, A_TCP4),
            DROP,
            dropped("A", "XA"),
        ),
        row("TCP IPv4 XB → A", tcp(XB4, A_TCP4), PASS, passed("A", "XB")),
        row(
            "TCP IPv4 XA, ACK, → A",
            tcp(XA4, A_TCP4).tcp_flags(0x10),
            DROP,
            dropped("A", "XA"),
        ),
        row(
            "UDP IPv6 XA → A wildcard",
            udp(XA6, A_UDP6),
            DROP,
            dropped("A", "XA"),
        ),
        row(
            "TCP IPv6 XA → A",
            tcp(XA6, A_TCP6),
            DROP,
            dropped("A", "XA"),
        ),
        row("TCP IPv6 XB → A", tcp(XB6, A_TCP6), PASS, passed("A", "XB")),
        row("UDP to A's TCP port", udp(XA4, A_TCP4), PASS, NO_SESSION),
        row("TCP to A's UDP port", tcp(XA4, A_UDP4), PASS, NO_SESSION),
        // A's IPv6-address endpoint.
        row(
            "UDP IPv6 XA → A specific [2001:db8:ffff::1]:40002",
            udp(XA6, A_SPECIFIC6),
            DROP,
            dropped("A", "XA"),
        ),
        row(
            "UDP IPv6 XB → A specific",
            udp(XB6, A_SPECIFIC6),
            PASS,
            passed("A", "XB"),
        ),
        row(
            "UDP IPv6 XA → [2001:db8:ffff::2]:40002 (other address)",
            udp(XA6, "[2001:db8:ffff::2]:40002"),
            PASS,
            NO_SESSION,
        ),
        row(
            "UDP IPv4 XA → 100.64.0.1:40002 (IPv6-only endpoint)",
            udp(XA4, "100.64.0.1:40002"),
            PASS,
            NO_SESSION,
        ),
        row(
            "TCP IPv6 XA → A specific address, UDP-only",
            tcp(XA6, A_SPECIFIC6),
            PASS,
            NO_SESSION,
        ),
        // B's IPv4-address endpoints.
        row(
            "UDP XB → B 100.64.0.1:41000",
            udp(XB4, B4),
            PASS,
            would_drop("B", "XB"),
        ),
        row("UDP XA → B", udp(XA4, B4), PASS, passed("B", "XA")),
        row(
            "UDP XB → 100.64.0.2:41000 (not B's address)",
            udp(XB4, "100.64.0.2:41000"),
            PASS,
            NO_SESSION,
        ),
        row("TCP XB → B (UDP-only)", tcp(XB4, B4), PASS, NO_SESSION),
        row(
            "UDP IPv6 XB → [2001:db8:ffff::1]:41000 (B is IPv4 only)",
            udp(XB6, "[2001:db8:ffff::1]:41000"),
            PASS,
            NO_SESSION,
        ),
        row(
            "UDP XA → 100.64.0.3:40000: B's address endpoint beats A's wildcard",
            udp(XA4, "100.64.0.3:40000"),
            PASS,
            passed("B", "XA"),
        ),
        row(
            "UDP XB → 100.64.0.3:40000: B's address endpoint",
            udp(XB4, "100.64.0.3:40000"),
            PASS,
            would_drop("B", "XB"),
        ),
        // C's flow bindings.
        row(
            "flow 198.51.100.50:5000 → 100.64.0.1:42000",
            udp("198.51.100.50:5000", "100.64.0.1:42000"),
            DROP,
            dropped("C", "XB"),
        ),
        row(
            "flow, other source port 5001",
            udp("198.51.100.50:5001", "100.64.0.1:42000"),
            PASS,
            NO_SESSION,
        ),
        row(
            "flow, other source address 198.51.100.51",
            udp("198.51.100.51:5000", "100.64.0.1:42000"),
            PASS,
            NO_SESSION,
        ),
        row(
            "flow, other destination address 100.64.0.2",
            udp("198.51.100.50:5000", "100.64.0.2:42000"),
            PASS,
            NO_SESSION,
        ),
        row(
            "flow, other destination port 42001",
            udp("198.51.100.50:5000", "100.64.0.1:42001"),
            PASS,
            NO_SESSION,
        ),
        row(
            "flow 5-tuple but TCP",
            tcp("198.51.100.50:5000", "100.64.0.1:42000"),
            PASS,
            NO_SESSION,
        ),
        row(
            "flow, reverse direction",
            udp("100.64.0.1:42000", "198.51.100.50:5000"),
            PASS,
            NO_SESSION,
        ),
        row(
            "IPv6 flow [2001:db8:b::50]:5000 → [2001:db8:ffff::1]:42000",
            udp("[2001:db8:b::50]:5000", "[2001:db8:ffff::1]:42000"),
            DROP,
            dropped("C", "XB"),
        ),
        row(
            "IPv6 flow, other source port",
            udp("[2001:db8:b::50]:5002", "[2001:db8:ffff::1]:42000"),
            PASS,
            NO_SESSION,
        ),
        row(
            "flow to A's wildcard port: the binding (C) wins over A",
            udp("198.51.100.60:6000", A_UDP4),
            DROP,
            dropped("C", "XB"),
        ),
        row(
            "same client, other port: A's wildcard endpoint",
            udp("198.51.100.60:6001", A_UDP4),
            PASS,
            passed("A", "XB"),
        ),
        // Nobody's port.
        row(
            "UDP IPv4 to a port no meeting has",
            udp(XA4, NOBODY4),
            PASS,
            NO_SESSION,
        ),
        row(
            "TCP IPv4 to a port no meeting has",
            tcp(XA4, NOBODY4),
            PASS,
            NO_SESSION,
        ),
        row(
            "UDP IPv6 to a port no meeting has",
            udp(XA6, NOBODY6),
            PASS,
            NO_SESSION,
        ),
        row(
            "UDP to a port no meeting has, 2 tags, 6 ext",
            udp(XA6, NOBODY6)
                .vlan(TPID_8021AD, 1)
                .vlan(TPID_8021Q, 2)
                .exts(&[
                    Ext::HOP_BY_HOP,
                    Ext::DEST_OPTS,
                    Ext::ROUTING,
                    Ext::FIRST_FRAGMENT,
                    Ext::AUTH,
                    Ext::DEST_OPTS,
                ]),
            PASS,
            NO_SESSION,
        ),
    ];
    fx.check("session matching", rows);
}

#[test]
fn rules_and_overrides() {
    let Some(fx) = Fixture::new("rules_and_overrides") else {
        return;
    };
    let rows = vec![
        // A's territory rule.
        row("A blocks XA", udp(XA4, A_UDP4), DROP, dropped("A", "XA")),
        row(
            "A lets XB through",
            udp(XB4, A_UDP4),
            PASS,
            passed("A", "XB"),
        ),
        row(
            "A lets XC through",
            udp(XC4, A_UDP4),
            PASS,
            passed("A", "XC"),
        ),
        row(
            "A blocks XA (IPv6)",
            udp(XA6, A_UDP6),
            DROP,
            dropped("A", "XA"),
        ),
        // Overrides.
        row(
            "drop override 198.51.100.7 (XB) on A",
            udp("198.51.100.7:1234", A_UDP4),
            DROP,
            dropped("A", "XB"),
        ),
        row(
            "drop override 198.51.100.7 on A, TCP",
            tcp("198.51.100.7:1234", A_TCP4),
            DROP,
            dropped("A", "XB"),
        ),
        row(
            "198.51.100.6, next to the drop override",
            udp("198.51.100.6:1234", A_UDP4),
            PASS,
            passed("A", "XB"),
        ),
        row(
            "drop override of A does not apply to D",
            udp("198.51.100.7:1234", D4),
            PASS,
            passed("D", "XB"),
        ),
        row(
            "expired drop override 198.51.100.8 on A",
            udp("198.51.100.8:1234", A_UDP4),
            PASS,
            passed("A", "XB"),
        ),
        row(
            "allow 192.0.2.77 inside blocked XA on A",
            udp("192.0.2.77:1234", A_UDP4),
            PASS,
            passed("A", "XA"),
        ),
        row(
            "allow 192.0.2.77, TCP",
            tcp("192.0.2.77:1234", A_TCP4),
            PASS,
            passed("A", "XA"),
        ),
        row(
            "192.0.2.78, next to the allow",
            udp("192.0.2.78:1234", A_UDP4),
            DROP,
            dropped("A", "XA"),
        ),
        row(
            "allow 2001:db8:a::77 inside blocked XA on A",
            udp("[2001:db8:a::77]:1234", A_UDP6),
            PASS,
            passed("A", "XA"),
        ),
        row(
            "2001:db8:a::78, next to the allow",
            udp("[2001:db8:a::78]:1234", A_UDP6),
            DROP,
            dropped("A", "XA"),
        ),
        row(
            "allow range 2001:db8:a:1::/64 inside blocked XA on A",
            udp("[2001:db8:a:1::99]:1234", A_UDP6),
            PASS,
            passed("A", "XA"),
        ),
        row(
            "2001:db8:a:2::99, outside the allowed range",
            udp("[2001:db8:a:2::99]:1234", A_UDP6),
            DROP,
            dropped("A", "XA"),
        ),
        row(
            "drop override 2001:db8:b::7 (XB) on A",
            udp("[2001:db8:b::7]:1234", A_UDP6),
            DROP,
            dropped("A", "XB"),
        ),
        row(
            "drop override range 203.0.113.128/25 (XC) on A",
            udp("203.0.113.200:1234", A_UDP4),
            DROP,
            dropped("A", "XC"),
        ),
        row(
            "203.0.113.127, below the drop range",
            udp("203.0.113.127:1234", A_UDP4),
            PASS,
            passed("A", "XC"),
        ),
        row(
            "allow 203.0.113.129 inside the drop range: the longer prefix wins",
            udp("203.0.113.129:1234", A_UDP4),
            PASS,
            passed("A", "XC"),
        ),
        row(
            "dry-run drop override 192.0.2.99 on B",
            udp("192.0.2.99:1234", B4),
            PASS,
            would_drop("B", "XA"),
        ),
        // Unknown territory.
        row(
            "unknown 10.1.2.3 → A",
            udp(UNKNOWN4, A_UDP4),
            PASS,
            passed("A", "unknown"),
        ),
        row(
            "unknown 10.1.2.3 → D (blocks unknown)",
            udp(UNKNOWN4, D4),
            DROP,
            dropped("D", "unknown"),
        ),
        row(
            "unknown 2001:db8:c::30 → D",
            udp(UNKNOWN6, D6),
            DROP,
            dropped("D", "unknown"),
        ),
        row(
            "unknown 2001:db8:c::30 → A",
            udp(UNKNOWN6, A_UDP6),
            PASS,
            passed("A", "unknown"),
        ),
        row("XA → D", udp(XA4, D4), PASS, passed("D", "XA")),
        row("XB (IPv6) → D", udp(XB6, D6), PASS, passed("D", "XB")),
        // Dry run.
        row("dry-run: XB → B", udp(XB4, B4), PASS, would_drop("B", "XB")),
        row(
            "dry-run: XB → B, IHL 15, 2 tags",
            udp("198.51.100.99:7", B4)
                .ipv4_options(40)
                .vlan(TPID_8021AD, 1)
                .vlan(TPID_8021Q, 2),
            PASS,
            would_drop("B", "XB"),
        ),
        row("dry-run: XC → B", udp(XC4, B4), PASS, passed("B", "XC")),
        // Expiry.
        row("E: XC rule expired", udp(XC4, E4), PASS, passed("E", "XC")),
        row(
            "E: XB rule expires in an hour",
            udp(XB4, E4),
            DROP,
            dropped("E", "XB"),
        ),
        row(
            "E: XB (IPv6), rule in force",
            udp(XB6, "[2001:db8:ffff::1]:44000"),
            DROP,
            dropped("E", "XB"),
        ),
        row("E: XA not blocked", udp(XA4, E4), PASS, passed("E", "XA")),
        row(
            "F: XC rule expires in an hour",
            udp(XC4, F4),
            DROP,
            dropped("F", "XC"),
        ),
        row(
            "F: XA blocked by a dry run and an enforced order",
            udp(XA4, F4),
            DROP,
            dropped("F", "XA"),
        ),
        row(
            "F: XB dry run only",
            udp(XB4, F4),
            PASS,
            would_drop("F", "XB"),
        ),
        row(
            "F: unknown not blocked",
            udp(UNKNOWN4, F4),
            PASS,
            passed("F", "unknown"),
        ),
    ];
    fx.check("rules and overrides", rows);
}

/// When the per-session statistics map and the session's cache entries are full, a packet
/// of a (session, territory) neither has an entry for still gets its verdict, and is
/// counted under `stats_full` instead.
#[test]
fn stats_map_full() {
    let Some(mut fx) = Fixture::new("stats_map_full") else {
        return;
    };
    // One CPU throughout: the (A, XB) counters the first row creates are in that CPU's
    // cache entries, which the last row relies on.
    let mut cpu = nix::sched::CpuSet::new();
    cpu.set(nix::sched::sched_getcpu().expect("the current CPU"))
        .expect("a CPU number within the set");
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &cpu).expect("pinning the test");
    fx.check(
        "before the statistics map fills",
        vec![row("XB → A", udp(XB4, A_UDP4), PASS, passed("A", "XB"))],
    );
    fx.fill_session_stats();
    let rows = vec![
        row(
            "XA → A, no (A, XA) entry: dropped all the same",
            udp(XA4, A_UDP4),
            DROP,
            reason(PassReason::StatsFull),
        ),
        row(
            "XB → B, no (B, XB) entry: dry run",
            udp(XB4, B4),
            PASS,
            reason(PassReason::StatsFull),
        ),
        row(
            "XB → A: the (A, XB) entry exists",
            udp(XB4, A_UDP4),
            PASS,
            passed("A", "XB"),
        ),
        row(
            "ICMP: pass reasons still count",
            Packet::icmp(ip(XA4), ip(A_UDP4)),
            PASS,
            NOT_UDP_TCP,
        ),
    ];
    fx.check("statistics map full", rows);
}

/// Design, data path step 2: a non-first fragment passes because "if the first fragment
/// of the datagram was dropped, the datagram cannot be reassembled". That holds only if
/// every first fragment of a blocked source is dropped. A first fragment may carry as
/// little as 8 bytes of its TCP segment (RFC 791 allows it; Linux reassembles such
/// datagrams), so it must be classified on its ports alone, not passed as malformed.
/// Likewise an IPv4-mapped IPv6 source is an IPv4 host and keeps its territory.
#[test]
fn evasions() {
    let Some(fx) = Fixture::new("evasions") else {
        return;
    };
    let rows = vec![
        row(
            "IPv4 first fragment carrying 8 B of a TCP segment, XA → A",
            tcp(XA4, A_TCP4).fragment(0, true).carry(8),
            DROP,
            dropped("A", "XA"),
        ),
        row(
            "IPv4 first fragment carrying 16 B of a TCP segment, XA → A",
            tcp(XA4, A_TCP4).fragment(0, true).carry(16),
            DROP,
            dropped("A", "XA"),
        ),
        row(
            "IPv4 IHL 15 first fragment carrying 8 B of TCP, 1 tag, XA → A",
            tcp(XA4, A_TCP4)
                .ipv4_options(40)
                .vlan(TPID_8021Q, 5)
                .fragment(0, true)
                .carry(8),
            DROP,
            dropped("A", "XA"),
        ),
        row(
            "IPv6 first fragment carrying 8 B of a TCP segment, XA → A",
            tcp(XA6, A_TCP6).fragment(0, true).carry(8),
            DROP,
            dropped("A", "XA"),
        ),
        row(
            "IPv4-mapped IPv6 source in XA → A (IPv6 endpoint)",
            udp("[::ffff:192.0.2.10]:50000", A_UDP6),
            DROP,
            dropped("A", "XA"),
        ),
        row(
            "IPv4-mapped IPv6 source in XB → A (IPv6 endpoint)",
            udp("[::ffff:198.51.100.20]:50000", A_UDP6),
            PASS,
            passed("A", "XB"),
        ),
    ];
    fx.check("evasions", rows);
}
