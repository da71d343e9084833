//! Kills during `block` and `unblock` of rules with many prefixes, checked right after each
//! kill, before any other geofence command: probe frames run through the program with
//! `BPF_PROG_TEST_RUN` (explain probes, so no counter moves) must all get the verdict and
//! rule slot the reference model gives for the old state, or all those it gives for the
//! new state. A change is written into the generation of the session maps packets do not
//! use and switched in with one store; this test fails if any write lets a probe see half
//! a rule. `every` and `changes` do the same for every other command that changes the
//! kernel.

pub mod changes;
pub mod every;

use std::{
    fs,
    path::PathBuf,
    time::{Duration, Instant},
};

use geofence::{
    endpoint::Proto,
    expiry::Clock,
    explain::{Question, check::expected, frame},
    geo::{Format, GeoTable},
    kernel::{
        self,
        probe::{KernelAnswer, ProbeTarget},
    },
    model::{self, ModelMaps},
    rule_slots,
    state::{Rule, State},
    territory::Territory,
};

use crate::common::Dirs;

/// XA, XB and XC, and 10.0.0.0/8 in XD: the rules' prefixes live there.
const GEO_CSV: &str = "\
192.0.2.0,192.0.2.255,XA
198.51.100.0,198.51.100.255,XB
203.0.113.0,203.0.113.255,XC
10.0.0.0,10.255.255.255,XD
";
const MEETING: &str = "A";
const DST: &str = "100.64.0.1:40000";
/// An exception inside a /24 every new rule blocks.
const EXCEPTION: &str = "10.100.0.77";
/// An exception around a /26 every new rule blocks, in the standing rule's territory.
const OUTER_EXCEPTION: &str = "203.0.113.0/25";
/// New prefixes nested in the standing rule's prefix and in the outer exception: while
/// they are inert, the entry around them must decide, as before the change.
const NESTED: [&str; 2] = ["10.200.7.0/24", "203.0.113.64/26"];
/// The standing rule: XC and a /16, present before and after every change.
const BASE_PREFIX: &str = "10.200.0.0/16";
/// Prefixes per killed rule: enough map writes (a few milliseconds of them) that kills
/// land among them.
pub const PREFIXES_PER_RULE: usize = 1500;

/// The `j`th /28 of iteration `i`'s rule, in 10.101.0.0/16.. that no other rule covers.
fn nth_prefix(i: u32, j: usize) -> String {
    format!("10.{}.{}.{}/28", 101 + i % 50, j / 16, j % 16 * 16)
}

/// The prefixes of iteration `i`'s rule: 10.100.0.0/24 (around the exception), the
/// [`NESTED`] ones, then /28s.
pub fn prefixes(i: u32) -> Vec<String> {
    let mut out = vec!["10.100.0.0/24".to_string()];
    out.extend(NESTED.map(String::from));
    out.extend((1..PREFIXES_PER_RULE - NESTED.len()).map(|j| nth_prefix(i, j)));
    out
}

/// Sources that tell the old and the new state apart, and some that must not change.
fn probe_sources(i: u32) -> Vec<String> {
    let n = PREFIXES_PER_RULE;
    let mut out: Vec<String> = [1, n / 5, 2 * n / 5, 3 * n / 5, 4 * n / 5, n - 3]
        .iter()
        .map(|&j| {
            let p = nth_prefix(i, j);
            let base = p.trim_end_matches("/28");
            let (net, last) = base.rsplit_once('.').expect("dotted");
            let last: u32 = last.parse().expect("octet");
            format!("{net}.{}", last + 5)
        })
        .collect();
    out.extend(
        [
            "10.100.0.5",    // in the new rule's first prefix
            EXCEPTION,       // the exception inside it
            "10.200.3.4",    // the standing rule's prefix
            "10.200.7.5",    // a new prefix inside it
            "203.0.113.70",  // a new prefix inside the outer exception
            "203.0.113.20",  // the outer exception (in XC)
            "192.0.2.10",    // XA: the new rule's territory
            "198.51.100.5",  // XB: blocked by nobody
            "203.0.113.200", // XC outside the exception: the standing rule's territory
            "10.7.7.7",      // XD outside every prefix
        ]
        .map(String::from),
    );
    out
}

/// The fixture: a table, meeting A, an exception and the standing rule.
pub fn setup(d: &Dirs) {
    fs::create_dir_all(&d.state).expect("state dir");
    let csv = d.state.with_extension("bound.csv");
    fs::write(&csv, GEO_CSV).expect("writing the table");
    d.ok(&["geo", "load", csv.to_str().expect("utf-8 path")]);
    d.ok(&["meeting", "add", MEETING, "--endpoint", "udp:*:40000"]);
    d.ok(&[
        "allow",
        MEETING,
        "--prefix",
        EXCEPTION,
        "--prefix",
        OUTER_EXCEPTION,
    ]);
    d.ok(&[
        "block",
        MEETING,
        "--territory",
        "XC",
        "--prefix",
        BASE_PREFIX,
        "--order",
        "BASE",
    ]);
}

/// The block command of iteration `i`: XA and [`prefixes`], in dry run on odd `i`.
pub fn block_args(i: u32) -> Vec<String> {
    let mut args: Vec<String> = ["block", MEETING, "--territory", "XA", "--order"]
        .map(String::from)
        .to_vec();
    args.push(order(i));
    for p in prefixes(i) {
        args.push("--prefix".into());
        args.push(p);
    }
    if i % 2 == 1 {
        args.push("--dry-run".into());
    }
    args
}

/// The unblock command that lifts iteration `i`'s whole rule: its territory and prefixes.
pub fn unblock_args(i: u32) -> Vec<String> {
    let mut args: Vec<String> = ["unblock", MEETING, "--territory", "XA"]
        .map(String::from)
        .to_vec();
    for p in prefixes(i) {
        args.push("--prefix".into());
        args.push(p);
    }
    args
}

pub fn order(i: u32) -> String {
    format!("ORD-{i}")
}

/// `old` with the rule `block_args(i)` adds, slots assigned as `Ctx::commit` assigns them.
pub fn with_block(old: &State, i: u32) -> State {
    let mut new = old.clone();
    let meeting = new.meetings.get_mut(MEETING).expect("meeting A");
    meeting.rules.push(Rule {
        order: order(i),
        territories: vec![Territory::parse("XA").expect("XA")],
        prefixes: prefixes(i)
            .iter()
            .map(|p| geofence::prefix::parse_prefix(p).expect("prefix"))
            .collect(),
        expires: None,
        dry_run: i % 2 == 1,
        issued: geofence::clock::now(),
        issued_by: "crash test".into(),
        slot: None,
    });
    placed(old, new)
}

/// `old` without iteration `i`'s rule.
pub fn without_rule(old: &State, i: u32) -> State {
    let mut new = old.clone();
    let meeting = new.meetings.get_mut(MEETING).expect("meeting A");
    meeting.rules.retain(|r| r.order != order(i));
    placed(old, new)
}

fn placed(old: &State, mut new: State) -> State {
    let before = rule_slots::as_synced(old).expect("slots of the old state");
    rule_slots::assign(&before, &mut new).expect("slots of the new state");
    new
}

/// The parsed table of [`setup`], for the model.
pub fn table(d: &Dirs) -> GeoTable {
    let csv: PathBuf = d.state.with_extension("bound.csv");
    geofence::geo::load_files(&[csv], Format::Csv, None).expect("parsing the table")
}

/// The program on the pinned maps, loaded once: maps are updated in place, never replaced.
pub fn target(d: &Dirs) -> (kernel::Kernel, ProbeTarget) {
    let mut k = kernel::Kernel::open(&d.pin).expect("opening the maps");
    let t = kernel::probe::fresh_target(&mut k).expect("loading the program");
    (k, t)
}

/// Which of `old` and `new` the kernel behaves as on every probe; `Err` names the probes
/// that match neither, or a mix.
pub fn behaves_as(
    target: &ProbeTarget,
    geo: &GeoTable,
    old: &State,
    new: &State,
    i: u32,
) -> Result<(&'static str, usize), String> {
    let maps =
        |s: &State| ModelMaps::from_state(s, geo.clone(), &Clock::now()).expect("model maps");
    let (old_maps, new_maps) = (maps(old), maps(new));
    let now = geofence::expiry::kernel_clock_ns();
    let mut as_old = Vec::new();
    let mut as_new = Vec::new();
    let sources = probe_sources(i);
    for src in &sources {
        let q = Question::parse(Proto::Udp, &format!("{src}:1000"), DST).expect("question");
        let bytes = frame::build(&q);
        let got = kernel::probe::ask(target, &bytes).expect("probe");
        let want = |m: &ModelMaps| {
            let t = model::trace(&bytes, m, now);
            KernelAnswer {
                xdp_action: t.outcome.xdp_action,
                decision: Some(expected(&t)),
            }
        };
        let (o, n) = (want(&old_maps), want(&new_maps));
        if got == o {
            as_old.push(src.clone());
        }
        if got == n {
            as_new.push(src.clone());
        }
        if got != o && got != n {
            return Err(format!(
                "{src}: kernel {got:?}, model of the old state {o:?}, of the new {n:?}"
            ));
        }
    }
    if as_old.len() == sources.len() {
        Ok(("old", sources.len()))
    } else if as_new.len() == sources.len() {
        Ok(("new", sources.len()))
    } else {
        Err(format!(
            "a mix of two states: as the old state {as_old:?}, as the new {as_new:?}"
        ))
    }
}

/// Starts `geofence ARGS` and kills it after `delay`; returns whether it had finished.
pub fn kill_after(d: &Dirs, args: &[String], delay: Duration) -> bool {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    crate::kill_after(d, &args, delay)
}

/// Whether the kill left the maps between two states: a generation of the session maps
/// differs from what the state file says.
pub fn mid_change(d: &Dirs) -> bool {
    let state = State::load(&d.state).expect("state");
    let mut k = kernel::Kernel::open(&d.pin).expect("opening maps");
    let [in_use, idle] = kernel::differences(&mut k, &state, &Clock::now()).expect("comparing");
    in_use != kernel::SyncReport::default() || idle != kernel::SyncReport::default()
}

fn spawn(d: &Dirs, args: &[String]) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_geofence"))
        .arg("--pin-dir")
        .arg(&d.pin)
        .arg("--state-dir")
        .arg(&d.state)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starting geofence")
}

/// The trie key of `prefix` on meeting A in `state`, in the generation of the session
/// maps a change is written into: the one packets do not use.
pub fn override_key(d: &Dirs, state: &State, prefix: &str) -> (u32, filter_common::OverrideKey) {
    use aya::maps::{Array, Map, MapData};
    let data = MapData::from_pin(d.pin.join("SESSION_ACTIVE")).expect("opening SESSION_ACTIVE");
    let active: Array<_, u32> = Array::try_from(Map::Array(data)).expect("an array");
    let active = active.get(&0, 0).expect("reading SESSION_ACTIVE");
    let idle = filter_common::generation::other(filter_common::generation::active(active));
    let p = geofence::prefix::parse_prefix(prefix).expect("prefix");
    let (len, mut key) = geofence::prefix::override_key(&p, state.meetings[MEETING].session);
    let keyed = filter_common::generation::keyed(idle, u32::from_be_bytes(key.session_be))
        .expect("a session id");
    key.session_be = keyed.to_be_bytes();
    (len, key)
}

/// Starts `geofence ARGS`, waits until the `OVERRIDES` trie's entry `key` appears
/// (`appears`) or goes (the command is among its override writes or removals), waits
/// `extra` more and kills it. One lookup per poll, so the wait ends within a few writes
/// of `key`'s, which is anywhere among them. Returns whether it had finished first.
pub fn kill_when_entry_changes(
    d: &Dirs,
    args: &[String],
    key: (u32, filter_common::OverrideKey),
    appears: bool,
    extra: Duration,
) -> bool {
    use aya::maps::{LpmTrie, Map, MapData, lpm_trie::Key};
    use filter_common::{Override, OverrideKey};
    let data = MapData::from_pin(d.pin.join("OVERRIDES")).expect("opening OVERRIDES");
    let map = Map::from_map_data(data).expect("OVERRIDES as a map");
    let trie: LpmTrie<_, OverrideKey, Override> = LpmTrie::try_from(map).expect("an LPM trie");
    let lookup = Key::new(key.0, key.1);
    let mut child = spawn(d, args);
    let deadline = Instant::now() + Duration::from_secs(20);
    let finished = loop {
        if matches!(child.try_wait(), Ok(Some(_))) {
            break true;
        }
        if trie.get(&lookup, 0).is_ok() == appears || Instant::now() > deadline {
            break false;
        }
    };
    if !finished {
        std::thread::sleep(extra);
    }
    let _ = child.kill();
    let _ = child.wait();
    finished
}
