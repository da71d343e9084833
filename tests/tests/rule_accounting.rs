//! Per-rule accounting end to end: CLI changes (in process, through `geofence::cli::run`)
//! set up meetings and rules, packets from many sources run through the program with
//! BPF_PROG_TEST_RUN, and the per-rule counters, the audit trail's final counts and the
//! transparency report must add up.
//!
//! Needs root (BPF and bpffs); skipped otherwise.

use std::net::SocketAddr;

use geofence::audit;
use geofence::kernel::{self, Kernel, RuleCounts};
use geofence::report;
use geofence::state::State;
use geofence_test_frames::Packet;
use geofence_tests::pinned::{Dirs, Program};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const RELAY: &str = "100.64.0.1:40000";
const GEO_CSV: &str = "\
192.0.2.0,192.0.2.255,XA
198.51.100.0,198.51.100.255,XB
203.0.113.0,203.0.113.255,XC
";

/// Frames to the relay, each of which must get an XDP action, and the rule counters.
trait Traffic {
    /// Sends `per_source` packets from each of `sources` to the relay's port 40000;
    /// returns the frame length.
    fn send(&self, sources: &[SocketAddr], per_source: usize, want: u32) -> u64;
    fn send_to(&self, relay: &str, sources: &[SocketAddr], per_source: usize, want: u32) -> u64;
    fn counts(&self, session: u32, slot: u8) -> RuleCounts;
}

impl Traffic for Program {
    fn send(&self, sources: &[SocketAddr], per_source: usize, want: u32) -> u64 {
        self.send_to(RELAY, sources, per_source, want)
    }

    fn send_to(&self, relay: &str, sources: &[SocketAddr], per_source: usize, want: u32) -> u64 {
        let relay: SocketAddr = relay.parse().expect("relay");
        let mut len = 0;
        for src in sources {
            let frame = Packet::udp(*src, relay).build();
            len = frame.len() as u64;
            for _ in 0..per_source {
                assert_eq!(
                    self.run(&frame.bytes),
                    want,
                    "XDP action for a packet from {src}"
                );
            }
        }
        len
    }

    fn counts(&self, session: u32, slot: u8) -> RuleCounts {
        kernel::read_rule_counts(&self.0, session, slot).expect("reading rule counts")
    }
}

/// `n` distinct sources in `a.b.c.0/24`, from host 1 up, with varying ports.
fn sources(net: [u8; 3], n: u8) -> Vec<SocketAddr> {
    (1..=n)
        .map(|h| SocketAddr::from(([net[0], net[1], net[2], h], 50_000 + u16::from(h))))
        .collect()
}

/// Within the sketch's tolerance (three standard errors of 13%, at least 2).
fn close(estimate: u64, truth: u64) -> bool {
    estimate.abs_diff(truth) as f64 <= (0.39 * truth as f64).max(2.0)
}

fn root(test: &str) -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping {test}: needs root (BPF_PROG_TEST_RUN and bpffs)");
        return false;
    }
    geofence_tests::sys::ensure_bpffs().expect("bpffs on /sys/fs/bpf");
    true
}

/// Loads the fixture table and a meeting `m` on udp:*:40000.
fn setup(tag: &str) -> Dirs {
    let dirs = Dirs::new(tag);
    let csv = dirs.state.join("geo.csv");
    std::fs::write(&csv, GEO_CSV).expect("csv");
    dirs.geofence(&["geo", "load", csv.to_str().expect("utf-8")]);
    dirs.geofence(&["meeting", "add", "m", "--endpoint", "udp:*:40000"]);
    dirs
}

#[test]
fn rule_counters_follow_rules_through_changes() {
    if !root("rule_counters_follow_rules_through_changes") {
        return;
    }
    let dirs = setup("rule-acct");
    dirs.geofence(&["block", "m", "--territory", "XA", "--order", "ORD-A"]);
    dirs.geofence(&[
        "block",
        "m",
        "--territory",
        "XB",
        "--order",
        "ORD-B",
        "--dry-run",
    ]);
    let session = dirs.session("m");
    let (slot_a, slot_b) = (dirs.slot("m", "ORD-A"), dirs.slot("m", "ORD-B"));
    assert_eq!((slot_a, slot_b), (0, 1));
    let program = Program::load(&dirs.pin);

    let len = program.send(&sources([192, 0, 2], 40), 3, XDP_DROP);
    program.send(&sources([198, 51, 100], 25), 2, XDP_PASS);
    program.send(&sources([203, 0, 113], 5), 1, XDP_PASS);
    let a = program.counts(session, slot_a);
    let b = program.counts(session, slot_b);
    eprintln!("ORD-A: {a:?}\nORD-B: {b:?}");
    assert_eq!((a.packets, a.bytes), (120, 120 * len));
    assert_eq!(
        (b.packets, b.bytes),
        (50, 50 * len),
        "a dry run counts would-drops"
    );
    assert!(
        close(a.distinct_sources, 40),
        "40 sources, estimated {}",
        a.distinct_sources
    );
    assert!(
        close(b.distinct_sources, 25),
        "25 sources, estimated {}",
        b.distinct_sources
    );

    let started = std::time::Instant::now();
    let all = kernel::read_rule_stats(&program.0).expect("all rule stats");
    eprintln!("read_rule_stats over every slot: {:?}", started.elapsed());
    let keys: Vec<(u32, u8)> = all.keys().copied().collect();
    assert_eq!(keys, [(session, slot_a), (session, slot_b)]);
    let state = State::load(&dirs.state).expect("state");
    let of_state = kernel::read_rule_stats_of(&program.0, &state).expect("rule stats of the state");
    assert_eq!(of_state, all, "the per-rule read agrees with the full scan");

    // Lifting ORD-A records its final counts and frees the slot; ORD-B keeps its counts.
    dirs.geofence(&["unblock", "m", "--territory", "XA"]);
    let last = audit::read(&dirs.state)
        .expect("audit")
        .pop()
        .expect("an entry");
    assert_eq!(last.action, "unblock");
    let removed = &last.details["rules_removed"][0];
    assert_eq!(removed["order"], "ORD-A");
    assert_eq!(removed["counts"]["packets"], 120);
    assert_eq!(removed["counts"]["bytes"], 120 * len);
    assert_eq!(removed["counts"]["distinct_sources"], a.distinct_sources);
    let registers = removed["counts"]["registers"].as_str().expect("registers");
    assert_eq!(
        geofence::sketch::registers_from_hex(registers),
        Some(a.registers),
        "the registers recorded reproduce the estimate"
    );
    assert!(
        program.counts(session, slot_a).is_zero(),
        "a freed slot is zeroed"
    );
    assert_eq!(program.counts(session, slot_b).packets, 50);

    // A new rule takes the free slot and starts from zero; ORD-B stays where it was.
    dirs.geofence(&["block", "m", "--territory", "XC", "--order", "ORD-C"]);
    assert_eq!(dirs.slot("m", "ORD-C"), slot_a);
    assert_eq!(dirs.slot("m", "ORD-B"), slot_b);
    program.send(&sources([192, 0, 2], 3), 1, XDP_PASS);
    program.send(&sources([203, 0, 113], 12), 1, XDP_DROP);
    let c = program.counts(session, slot_a);
    assert_eq!(c.packets, 12, "only packets since ORD-C began: {c:?}");
    assert!(
        close(c.distinct_sources, 12),
        "12 sources, estimated {}",
        c.distinct_sources
    );

    // Deleting the meeting ends every rule, with counts, in one entry.
    dirs.geofence(&["meeting", "del", "m"]);
    let last = audit::read(&dirs.state)
        .expect("audit")
        .pop()
        .expect("an entry");
    let removed = last.details["rules_removed"]
        .as_array()
        .expect("removed rules");
    let counted: Vec<(String, u64)> = removed
        .iter()
        .map(|r| {
            (
                r["order"].as_str().unwrap_or_default().to_string(),
                r["counts"]["packets"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        counted,
        [("ORD-B".to_string(), 50), ("ORD-C".to_string(), 12)]
    );
    assert!(
        kernel::read_rule_stats(&program.0)
            .expect("stats")
            .is_empty()
    );
    assert_eq!(audit::verify(&dirs.state).expect("verify"), Ok(7));
}

#[test]
fn report_over_a_scripted_scenario() {
    if !root("report_over_a_scripted_scenario") {
        return;
    }
    let dirs = setup("report");
    dirs.geofence(&["meeting", "add", "n", "--endpoint", "udp:*:41000"]);
    dirs.geofence(&[
        "block",
        "m",
        "--territory",
        "XA",
        "--order",
        "ORD-A",
        "--for",
        "2h",
    ]);
    dirs.geofence(&["block", "n", "--territory", "XA", "--order", "ORD-A"]);
    dirs.geofence(&[
        "block",
        "m",
        "--territory",
        "XB",
        "--order",
        "ORD-B",
        "--dry-run",
    ]);
    dirs.geofence(&["block", "n", "--prefix", "203.0.113.9", "--order", "ORD-P"]);
    let program = Program::load(&dirs.pin);
    let len = program.send(&sources([192, 0, 2], 30), 2, XDP_DROP);
    // n sees 20 of the same XA sources: ORD-A's union is 30 sources, not 50.
    program.send_to("100.64.0.1:41000", &sources([192, 0, 2], 20), 1, XDP_DROP);
    program.send(&sources([198, 51, 100], 10), 3, XDP_PASS);
    program.send_to("100.64.0.1:41000", &sources([203, 0, 113], 8), 1, XDP_PASS);
    let prefix = "203.0.113.9:1000".parse().expect("address");
    program.send_to("100.64.0.1:41000", &[prefix], 1, XDP_DROP);
    dirs.geofence(&["unblock", "m", "--territory", "XA"]);
    // After the unblock, m's XA packets pass and count for nobody.
    program.send(&sources([192, 0, 2], 5), 1, XDP_PASS);

    let now = jiff::Timestamp::now();
    let hour = jiff::SignedDuration::from_hours(1);
    let (from, to) = (now - hour, now + hour);
    let r = report::report_from(&dirs.state, Some(&program.0), "", from, to, now).expect("report");
    eprintln!("{}", report::markdown(&r));

    assert_eq!(r.provenance.chain, "intact");
    assert_eq!(r.provenance.audit_entries, 8);
    assert_eq!(
        r.orders.keys().collect::<Vec<_>>(),
        ["ORD-A", "ORD-B", "ORD-P"]
    );
    let a = &r.orders["ORD-A"];
    assert_eq!((a.rules, a.packets, a.bytes), (2, 80, 80 * len));
    assert_eq!(a.meetings.iter().collect::<Vec<_>>(), ["m", "n"]);
    assert!(
        close(a.distinct_sources, 30),
        "ORD-A: 30 distinct sources, estimated {}",
        a.distinct_sources
    );
    let b = &r.orders["ORD-B"];
    assert_eq!(
        (b.packets, b.bytes),
        (30, 30 * len),
        "dry run: would-drop packets"
    );
    assert!(
        close(b.distinct_sources, 10),
        "ORD-B: 10 sources, estimated {}",
        b.distinct_sources
    );
    let p = &r.orders["ORD-P"];
    assert_eq!(
        (p.uncounted_rules, p.packets, p.bytes, p.distinct_sources),
        (0, 1, len, 1),
        "a prefix-only rule is credited with its prefix's drops"
    );
    let p_rule = r
        .rules
        .iter()
        .find(|x| x.life.order == "ORD-P")
        .expect("ORD-P");
    assert_eq!(p_rule.life.slot, Some(1), "n's second rule, after ORD-A");
    assert!(
        !report::markdown(&r).contains("without per-rule counts"),
        "the caveat about uncounted prefix rules is gone"
    );
    assert_eq!(r.territories["XA"].rules, 2);
    assert_eq!(
        r.territories["XB"].orders.iter().collect::<Vec<_>>(),
        ["ORD-B"]
    );

    let m_a = r
        .rules
        .iter()
        .find(|x| x.life.order == "ORD-A" && x.life.meeting == "m")
        .expect("ORD-A on m");
    assert_eq!(m_a.status, "removed");
    let counts = m_a.life.counts.as_ref().expect("final counts");
    assert_eq!(counts.packets, 60);
    assert!(counts.source.starts_with("audit seq "), "{}", counts.source);
    assert!(m_a.life.expires.is_some());
    let n_a = r
        .rules
        .iter()
        .find(|x| x.life.order == "ORD-A" && x.life.meeting == "n")
        .expect("ORD-A on n");
    assert_eq!(
        (
            n_a.status.as_str(),
            n_a.life
                .counts
                .as_ref()
                .map(|c| (c.packets, c.source.as_str()))
        ),
        ("in force", Some((20, "live")))
    );
    assert!(
        n_a.seconds_in_force <= 3600 + 60,
        "in force since the block, minutes ago"
    );

    let csv = report::csv(&r);
    assert_eq!(
        csv.lines().count(),
        1 + 4,
        "header and one row per rule:\n{csv}"
    );
    let md = report::markdown(&r);
    assert!(
        md.contains("## What was not done") && md.contains("| ORD-A |"),
        "{md}"
    );
}

/// The claimed `STATS_CACHE` entries of every CPU: (entry index, session, territory).
fn cache_claims(program: &Program) -> Vec<(u32, u32, u16)> {
    use aya::maps::PerCpuArray;
    use filter_common::{CachedStats, counters::STATS_CACHE_ENTRIES, maps::names};
    let cache: PerCpuArray<_, CachedStats> = PerCpuArray::try_from(
        program
            .0
            .ebpf
            .map(names::STATS_CACHE)
            .expect("the STATS_CACHE map"),
    )
    .expect("a per-CPU array");
    let mut claims = Vec::new();
    for index in 0..STATS_CACHE_ENTRIES {
        for cpu in cache.get(&index, 0).expect("reading STATS_CACHE").iter() {
            if cpu.key.session != 0 {
                claims.push((index, cpu.key.session, cpu.key.territory));
            }
        }
    }
    claims
}

/// Dropped traffic is counted in a cache way of its session (no hash lookup), passing
/// traffic of other territories in the hash, and both add up in the counters. When the
/// meeting goes, its counters go with it, and a meeting that gets its session id back
/// starts from zero, even past a claim left behind after the removal.
#[test]
fn a_session_counts_drops_in_its_cache_ways_and_a_reused_id_starts_from_zero() {
    use filter_common::counters::{STATS_CACHE_WAYS, stats_cache_first};
    if !root("a_session_counts_drops_in_its_cache_ways_and_a_reused_id_starts_from_zero") {
        return;
    }
    let dirs = setup("stats-cache");
    dirs.geofence(&["block", "m", "--territory", "XA", "--order", "ORD-A"]);
    let session = dirs.session("m");
    let xa = geofence::territory::Territory::parse("XA")
        .expect("a code")
        .id();
    let xb = geofence::territory::Territory::parse("XB")
        .expect("a code")
        .id();
    let program = Program::load(&dirs.pin);
    let len = program.send(&sources([192, 0, 2], 10), 3, XDP_DROP);
    program.send(&sources([198, 51, 100], 4), 2, XDP_PASS);

    let first = stats_cache_first(session).expect("a session id");
    let claims = cache_claims(&program);
    assert!(
        claims.iter().any(|&(i, s, t)| s == session
            && t == xa
            && (first..first + STATS_CACHE_WAYS).contains(&i)),
        "no cache way of session {session} holds XA: {claims:?}"
    );
    assert!(
        !claims.iter().any(|&(_, _, t)| t == xb),
        "passing XB traffic took a way: {claims:?}"
    );
    let stats = kernel::read_stats(&program.0).expect("reading the counters");
    let of = |t| stats.sessions[&session][&t];
    assert_eq!(of(xa).packets, [0, 30, 0], "XA: 30 dropped");
    assert_eq!(of(xa).bytes, [0, 30 * len, 0]);
    assert_eq!(of(xb).packets, [8, 0, 0], "XB: 8 passed, from the hash");

    dirs.geofence(&["meeting", "del", "m"]);
    let stats = kernel::read_stats(&program.0).expect("reading the counters");
    assert!(
        !stats.sessions.contains_key(&session),
        "a removed meeting's counters remain: {:?}",
        stats.sessions.get(&session)
    );
    assert!(
        cache_claims(&program).iter().all(|&(_, s, _)| s != session),
        "a removed meeting's cache ways are still claimed"
    );

    // A packet in flight during the removal may claim a way after it: leave such a claim
    // with counts, then give the id to a new meeting.
    {
        use aya::maps::{PerCpuArray, PerCpuValues};
        use filter_common::{CachedStats, StatsKey, maps::names};
        let cpus = aya::util::nr_cpus().expect("CPUs");
        let mut stale = CachedStats {
            key: StatsKey {
                session,
                territory: xa,
                _pad: 0,
            },
            ..CachedStats::default()
        };
        stale.stats.packets[1] = 99;
        let mut kernel = Kernel::open(&dirs.pin).expect("the pinned maps");
        let mut cache: PerCpuArray<_, CachedStats> =
            PerCpuArray::try_from(kernel.ebpf.map_mut(names::STATS_CACHE).expect("map"))
                .expect("a per-CPU array");
        cache
            .set(
                first,
                PerCpuValues::try_from(vec![stale; cpus]).expect("values"),
                0,
            )
            .expect("writing STATS_CACHE");
    }
    dirs.geofence(&["meeting", "add", "n", "--endpoint", "udp:*:40000"]);
    assert_eq!(dirs.session("n"), session, "the id is reused");
    let stats = kernel::read_stats(&program.0).expect("reading the counters");
    assert!(
        !stats.sessions.contains_key(&session),
        "the new meeting inherited counts: {:?}",
        stats.sessions.get(&session)
    );
}
