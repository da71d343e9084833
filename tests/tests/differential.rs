//! Differential test: the XDP program (through BPF_PROG_TEST_RUN) and the reference model
//! (`geofence::model`) must give every frame the same verdict and count it the same way.
//!
//! Random rule sets ([`Scenario`]) are synced to the kernel with `kernel::sync` and given to
//! the model from the same derivation; the territory table is the real one from
//! `../shared/geo` (a synthetic one, with a note, when it is absent). Each scenario runs the
//! structured frames (every VLAN / IPv4 option and fragment / IPv6 extension chain
//! combination, some cut at every byte offset) and then random ones. The XDP action is
//! compared per frame; the counters (pass reasons, and packets and bytes per session,
//! territory and verdict) are compared as totals every [`BATCH`] frames, and a batch whose
//! totals differ is replayed frame by frame to name the frame.
//!
//! Environment: `GEOFENCE_DIFF_PACKETS` (default 100000), `GEOFENCE_DIFF_SEED`,
//! `GEOFENCE_DIFF_MAX_MISMATCHES` (stop after this many, default 1), and
//! `GEOFENCE_DIFF_SUMMARY` (a file to write `compared=N mismatches=M seconds=S` to, also
//! when the test fails). `cargo xtask fuzz-verdicts N` runs this test in release with
//! those set.
//!
//! Scenarios share ports (mux) with ufrags registered; STUN sequences (a Binding request,
//! well formed or broken, then packets of its flow) are compared frame by frame with the
//! model's run-time state carried from frame to frame, and the mux counters by totals.
//!
//! Needs root (BPF and bpffs); skipped otherwise.

#[path = "differential/mux.rs"]
mod mux;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use aya::programs::{TestRun as _, TestRunOptions};
use filter_common::mux::{MUX_SESSION, MuxEvent};
use filter_common::{PassReason, TerritoryId, Verdict, policy::RULES_PER_SESSION};
use geofence::expiry::{Clock, kernel_clock_ns};
use geofence::geo::{Format, GeoTable, load_files};
use geofence::kernel::{self, Kernel, Stats};
use geofence::model::{self, Counted, ModelMaps, MuxState, Outcome, SessionMaps};
use geofence_tests::r#gen::{Case, Rng, Scenario, hex, synthetic_table};
use geofence_tests::pinned::Program;

/// Frames between two comparisons of the counters.
const BATCH: usize = 4096;
/// STUN sequences per scenario with shared ports (after its structured frames).
const STUN_SEQUENCES: usize = 400;
/// Random frames per scenario (after its structured ones).
const PER_SCENARIO: u64 = 20_000;
const DEFAULT_PACKETS: u64 = 100_000;
const DEFAULT_SEED: u64 = 0x6765_6f66_656e_6365;

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => {
            let v = v.replace('_', "");
            let parsed = match v.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => v.parse(),
            };
            parsed.unwrap_or_else(|e| panic!("{name}={v}: {e}"))
        }
        Err(_) => default,
    }
}

/// A pin directory on bpffs, removed (pins first) on drop.
struct PinDir(PathBuf);

impl Drop for PinDir {
    fn drop(&mut self) {
        if let Ok(entries) = std::fs::read_dir(&self.0) {
            for entry in entries.flatten() {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// The real table, or a synthetic one when it is not on this machine.
fn table() -> (GeoTable, String) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/geo");
    let files: Vec<PathBuf> = [
        "geo-whois-asn-country-ipv4.csv",
        "geo-whois-asn-country-ipv6.csv",
    ]
    .iter()
    .map(|f| dir.join(f))
    .collect();
    if files.iter().all(|f| f.exists()) {
        let started = Instant::now();
        let table = load_files(&files, Format::Csv, None).expect("loading the real table");
        let what = format!(
            "real table from {} ({} IPv4 + {} IPv6 prefixes, read in {:.1} s)",
            dir.display(),
            table.v4.len(),
            table.v6.len(),
            started.elapsed().as_secs_f64()
        );
        (table, what)
    } else {
        eprintln!(
            "note: no real table at {}; using a synthetic table instead",
            dir.display()
        );
        (synthetic_table(1), "synthetic table".to_string())
    }
}

/// Counter totals the way the model sees them: `(session, territory)` → packets and bytes
/// per verdict, and packets per pass reason.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Tally {
    sessions: BTreeMap<(u32, TerritoryId), [u64; 6]>,
    reasons: [u64; PassReason::COUNT as usize],
    /// Packets the parser could not place, dropped by a guard, per reason.
    unparsed: [u64; PassReason::COUNT as usize],
    /// Per-rule counters: `(session, slot)` → packets and bytes credited to the rule.
    rules: BTreeMap<(u32, u8), [u64; 2]>,
    /// `MUX_EVENTS`, per [`MuxEvent`].
    mux: [u64; MuxEvent::COUNT as usize],
}

impl Tally {
    fn add(&mut self, counted: Counted) {
        match counted {
            Counted::Reason(r) => self.reasons[r as usize] += 1,
            Counted::UnparsedBlocked(r) => self.unparsed[r as usize] += 1,
            // An unbound drop moves `MUX_EVENTS` alone (see `add_mux`), no session's counters.
            Counted::Session {
                session: MUX_SESSION,
                ..
            } => {}
            Counted::Session {
                session,
                territory,
                verdict,
                bytes,
            } => {
                let c = self.sessions.entry((session, territory)).or_default();
                c[verdict as usize] += 1;
                c[3 + verdict as usize] += bytes;
            }
        }
    }

    /// The mux counters a frame moves: its STUN step's, and an unbound drop's.
    fn add_mux(&mut self, trace: &model::Trace) {
        if let Some(event) = trace.stun.and_then(|s| s.event()) {
            self.mux[event as usize] += 1;
        }
        if let Counted::Session {
            session: MUX_SESSION,
            verdict: Verdict::Dropped,
            ..
        } = trace.outcome.counted
        {
            self.mux[MuxEvent::UnboundBlocked as usize] += 1;
        }
    }

    /// The per-rule counters the outcome moves, if a territory rule decided.
    fn add_rule(&mut self, outcome: &Outcome) {
        if let (Some(slot), Counted::Session { session, bytes, .. }) =
            (outcome.rule, outcome.counted)
        {
            let c = self.rules.entry((session, slot)).or_default();
            c[0] += 1;
            c[1] += bytes;
        }
    }

    fn of(stats: &Stats) -> Tally {
        let mut t = Tally {
            reasons: stats.pass_reasons,
            unparsed: stats.unparsed_blocked,
            ..Tally::default()
        };
        for (&session, territories) in &stats.sessions {
            for (&territory, c) in territories {
                let mut v = [0; 6];
                v[..3].copy_from_slice(&c.packets);
                v[3..].copy_from_slice(&c.bytes);
                t.sessions.insert((session, territory), v);
            }
        }
        t
    }

    /// `self - base`, dropping zero rows.
    fn since(&self, base: &Tally) -> Tally {
        let mut t = Tally::default();
        for (e, n) in self.mux.iter().enumerate() {
            t.mux[e] = n - base.mux[e];
        }
        for (r, n) in self.reasons.iter().enumerate() {
            t.reasons[r] = n - base.reasons[r];
            t.unparsed[r] = self.unparsed[r] - base.unparsed[r];
        }
        for (k, v) in &self.sessions {
            let b = base.sessions.get(k).copied().unwrap_or_default();
            let d: Vec<u64> = v.iter().zip(b).map(|(a, b)| a.wrapping_sub(b)).collect();
            if d.iter().any(|&x| x != 0) {
                t.sessions.insert(*k, d.try_into().expect("six"));
            }
        }
        for (k, v) in &self.rules {
            let b = base.rules.get(k).copied().unwrap_or_default();
            let d = [v[0].wrapping_sub(b[0]), v[1].wrapping_sub(b[1])];
            if d != [0, 0] {
                t.rules.insert(*k, d);
            }
        }
        t
    }

    fn describe(&self) -> String {
        let mut out = String::new();
        for e in MuxEvent::ALL {
            if self.mux[e as usize] != 0 {
                write!(out, "mux {}={} ", e.name(), self.mux[e as usize]).expect("fmt");
            }
        }
        for r in PassReason::ALL {
            if self.reasons[r as usize] != 0 {
                write!(out, "{}={} ", r.name(), self.reasons[r as usize]).expect("fmt");
            }
            if self.unparsed[r as usize] != 0 {
                let n = self.unparsed[r as usize];
                write!(out, "dropped-unparsed {}={n} ", r.name()).expect("fmt");
            }
        }
        for ((s, t), v) in &self.sessions {
            write!(out, "[s{s} t{t} pkts {:?} bytes {:?}] ", &v[..3], &v[3..]).expect("fmt");
        }
        for ((s, slot), v) in &self.rules {
            write!(
                out,
                "[s{s} rule slot {slot}: {} pkts {} bytes] ",
                v[0], v[1]
            )
            .expect("fmt");
        }
        out
    }
}

fn describe_outcome(o: &Outcome) -> String {
    let counted = match o.counted {
        Counted::Reason(r) => format!("pass reason {}", r.name()),
        Counted::UnparsedBlocked(r) => format!("dropped by a guard, unparsed ({})", r.name()),
        Counted::Session {
            session,
            territory,
            verdict,
            bytes,
        } => format!(
            "session {session}, territory {territory} ({}), {}, {bytes} bytes",
            territory_name(territory),
            verdict.name()
        ),
    };
    let rule = o.rule.map_or(String::new(), |slot| {
        format!(", credited to rule slot {slot}")
    });
    format!(
        "{} (XDP {}), counted {counted}{rule}",
        o.verdict.name(),
        o.xdp_action
    )
}

fn territory_name(id: TerritoryId) -> String {
    filter_common::territory::territory_code(id).map_or_else(
        || "unknown".to_string(),
        |c| String::from_utf8_lossy(&c).into_owned(),
    )
}

fn describe_frame(case: &Case) -> String {
    let decoded = match model::parse(&case.frame.bytes) {
        Ok(h) => h.to_string(),
        Err(r) => format!("unclassified: {}", r.name()),
    };
    format!(
        "{} ({} bytes; layers: {})\n  model decodes: {decoded}\n{}",
        case.what,
        case.frame.len(),
        case.frame,
        hex(&case.frame.bytes)
    )
}

struct Runner {
    program: Program,
    model: ModelMaps,
    /// Kernel counters when the model's tally started.
    base: Tally,
    tally: Tally,
    batch: Vec<(Case, Outcome)>,
    /// What the program holds at run time, as the model sees it.
    mux: MuxState,
    coverage: mux::Coverage,
    /// Every frame compared, by what it counted: the coverage of the run.
    seen: Tally,
    /// Sessions of the current scenario, whose rule slots are compared.
    sessions: Vec<u32>,
    compared: u64,
    refused: u64,
    mismatches: u64,
    max_mismatches: u64,
    now: u64,
    started: Instant,
}

impl Runner {
    /// The XDP action, or `None` when BPF_PROG_TEST_RUN refuses a frame shorter than an
    /// Ethernet header (EINVAL), which no interface delivers.
    fn run_kernel(&self, bytes: &[u8]) -> Option<u32> {
        let result = self.program.xdp().test_run(TestRunOptions {
            data_in: Some(bytes),
            ..TestRunOptions::new()
        });
        match result {
            Ok(r) => Some(r.return_value),
            Err(_) if bytes.len() < 14 => None,
            Err(e) => panic!(
                "BPF_PROG_TEST_RUN failed on a {}-byte frame: {e:?}",
                bytes.len()
            ),
        }
    }

    fn stats(&self) -> Tally {
        let mut t = Tally::of(&kernel::read_stats(&self.program.0).expect("reading the counters"));
        for &session in &self.sessions {
            for slot in 0..RULES_PER_SESSION as u8 {
                let c = kernel::read_rule_counts(&self.program.0, session, slot)
                    .expect("reading the per-rule counters");
                if c.packets != 0 {
                    t.rules.insert((session, slot), [c.packets, c.bytes]);
                }
            }
        }
        let events = kernel::bindings::read_mux_events(&self.program.0).expect("mux counters");
        for (event, n) in events {
            t.mux[event as usize] = n;
        }
        t
    }

    /// Writes the totals where `GEOFENCE_DIFF_SUMMARY` says, if it says.
    fn write_summary(&self) {
        if let Some(path) = std::env::var_os("GEOFENCE_DIFF_SUMMARY") {
            let line = format!(
                "compared={} mismatches={} seconds={:.3}\n",
                self.compared,
                self.mismatches,
                self.started.elapsed().as_secs_f64()
            );
            std::fs::write(&path, line).expect("writing the summary");
        }
    }

    fn mismatch(&mut self, report: String) {
        self.mismatches += 1;
        eprintln!("MISMATCH #{}: {report}", self.mismatches);
        if self.mismatches >= self.max_mismatches {
            self.write_summary();
        }
        assert!(
            self.mismatches < self.max_mismatches,
            "kernel and model disagree (see above); {} frames compared before",
            self.compared
        );
    }

    /// Runs `case` through both, and returns the model's trace of it.
    fn check(&mut self, case: Case) -> Option<model::Trace> {
        let trace = model::trace_mux(&case.frame.bytes, &self.model, &mut self.mux, self.now);
        let outcome = trace.outcome;
        let Some(action) = self.run_kernel(&case.frame.bytes) else {
            self.refused += 1;
            return None;
        };
        self.coverage.add(&case.what, &trace);
        self.compared += 1;
        if action != outcome.xdp_action {
            let report = format!(
                "XDP action differs\n  kernel: XDP action {action}\n  model:  {}\n  frame:  {}",
                describe_outcome(&outcome),
                describe_frame(&case)
            );
            // Its counter moved too; the rest of the batch is compared by totals.
            self.mismatch(report);
            self.rebase();
            return Some(trace);
        }
        self.tally.add_mux(&trace);
        self.seen.add_mux(&trace);
        self.tally.add(outcome.counted);
        self.tally.add_rule(&outcome);
        self.seen.add_rule(&outcome);
        self.seen.add(match outcome.counted {
            Counted::Session { verdict, .. } => Counted::Session {
                session: 0,
                territory: 0,
                verdict,
                bytes: 0,
            },
            reason => reason,
        });
        self.batch.push((case, outcome));
        if self.batch.len() >= BATCH {
            self.compare_counters();
        }
        Some(trace)
    }

    /// Starts a new tally from the kernel's counters as they are.
    fn rebase(&mut self) {
        self.base = self.stats();
        self.tally = Tally::default();
        self.batch.clear();
        self.now = kernel_clock_ns();
    }

    fn compare_counters(&mut self) {
        let now = self.stats();
        let kernel = now.since(&self.base);
        if kernel == self.tally {
            self.base = now;
            self.tally = Tally::default();
            self.batch.clear();
            self.now = kernel_clock_ns();
            return;
        }
        // Replay the batch one frame at a time to find the frame whose counter differs.
        let batch = std::mem::take(&mut self.batch);
        let mut found = None;
        // A replay meets the flows the batch learned: a request learned then is refreshed
        // now, so the mux counters are compared by totals alone.
        for (case, outcome) in &batch {
            let before = self.stats();
            self.run_kernel(&case.frame.bytes);
            let mut moved = self.stats().since(&before);
            moved.mux = Default::default();
            let mut want = Tally::default();
            want.add(outcome.counted);
            want.add_rule(outcome);
            if moved != want {
                found = Some(format!(
                    "counters differ\n  kernel counted: {}\n  model:  {}\n  frame:  {}",
                    moved.describe(),
                    describe_outcome(outcome),
                    describe_frame(case)
                ));
                break;
            }
        }
        let report = found.unwrap_or_else(|| {
            format!(
                "counter totals of a batch of {} frames differ, but no frame differs when \
                 replayed\n  kernel: {}\n  model:  {}",
                batch.len(),
                kernel.describe(),
                self.tally.describe()
            )
        });
        self.mismatch(report);
        self.rebase();
    }

    fn set_scenario(&mut self, scenario: &Scenario) {
        self.compare_counters();
        self.sessions = scenario
            .state
            .meetings
            .values()
            .map(|m| m.session)
            .collect();
        let clock = Clock::now();
        kernel::sync(&mut self.program.0, &scenario.state, &clock).expect("syncing the scenario");
        let sessions =
            SessionMaps::derive(&scenario.state, &clock).expect("deriving the session maps");
        let model = std::mem::replace(
            &mut self.model,
            ModelMaps::new(SessionMaps::default(), GeoTable::default()),
        );
        self.model = model.with_sessions(sessions);
        self.mux = mux::reset(&mut self.program.0, scenario, mux::LONG_IDLE);
        self.rebase();
    }

    /// A Binding request, media at once, media after the idle time (unbound), a request
    /// again (learned anew), media: the idle path, with the model's clock read where the
    /// kernel's moves.
    fn idle_expiry(&mut self, scenario: &Scenario, rng: &mut Rng, table: &GeoTable) {
        self.compare_counters();
        mux::set_idle(&mut self.program.0, mux::SHORT_IDLE);
        self.mux.learned_idle_ns = mux::SHORT_IDLE.as_nanos() as u64;
        for _ in 0..20 {
            let cases = scenario.stun_sequence(rng, table);
            let (Some(request), Some(media)) = (cases.first(), cases.get(1)) else {
                continue;
            };
            self.now = kernel_clock_ns();
            let learned = self
                .check(request.clone())
                .is_some_and(|t| t.stun.is_some_and(|s| s.event() == Some(MuxEvent::Learned)));
            if !learned {
                continue;
            }
            self.check(media.clone());
            std::thread::sleep(mux::SHORT_IDLE * 2);
            self.now = kernel_clock_ns();
            let after = self.check(media.clone());
            if after.is_some_and(|t| t.session.and_then(|s| s.session()).is_none()) {
                self.coverage.idle_unbound += 1;
            }
            self.check(request.clone());
            self.check(media.clone());
            break;
        }
        self.compare_counters();
        mux::set_idle(&mut self.program.0, mux::LONG_IDLE);
        self.mux.learned_idle_ns = mux::LONG_IDLE.as_nanos() as u64;
    }
}

#[test]
fn kernel_and_model_agree() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping kernel_and_model_agree: needs root (BPF_PROG_TEST_RUN and bpffs)");
        return;
    }
    let packets = env_u64("GEOFENCE_DIFF_PACKETS", DEFAULT_PACKETS);
    let seed = env_u64("GEOFENCE_DIFF_SEED", DEFAULT_SEED);
    let max_mismatches = env_u64("GEOFENCE_DIFF_MAX_MISMATCHES", 1).max(1);
    geofence_tests::sys::ensure_bpffs().expect("bpffs on /sys/fs/bpf");
    let pins = PinDir(PathBuf::from("/sys/fs/bpf").join(format!(
        "gf-diff-{}-{}",
        std::process::id(),
        seed & 0xffff
    )));
    let (table, what) = table();
    eprintln!("differential: {packets} frames, seed {seed:#x}, {what}");
    let mut kernel = Kernel::open(&pins.0).expect("loading the geofence object");
    kernel::load_table(&mut kernel, &table).expect("loading the territory table");
    let mut runner = Runner {
        program: Program::new(kernel),
        model: ModelMaps::new(SessionMaps::default(), table.clone()),
        base: Tally::default(),
        tally: Tally::default(),
        batch: Vec::new(),
        mux: MuxState::default(),
        coverage: mux::Coverage::default(),
        seen: Tally::default(),
        sessions: Vec::new(),
        compared: 0,
        refused: 0,
        mismatches: 0,
        max_mismatches,
        now: kernel_clock_ns(),
        started: Instant::now(),
    };
    runner.rebase();
    let mut rng = Rng::new(seed);
    let mut scenarios = 0;
    let mut generated = 0u64;
    while generated < packets {
        let mut scenario = Scenario::random(&mut rng, &table);
        let shared = rng.percent(70);
        if shared {
            scenario.add_mux(&mut rng);
        }
        runner.set_scenario(&scenario);
        scenarios += 1;
        for case in scenario.structured_cases(&mut rng, &table) {
            if generated >= packets {
                break;
            }
            generated += 1;
            runner.check(case);
        }
        if shared && runner.coverage.idle_unbound == 0 {
            runner.idle_expiry(&scenario, &mut rng, &table);
        }
        for _ in 0..STUN_SEQUENCES {
            if !shared || generated >= packets {
                break;
            }
            for case in scenario.stun_sequence(&mut rng, &table) {
                generated += 1;
                runner.check(case);
            }
        }
        for _ in 0..PER_SCENARIO {
            if generated >= packets {
                break;
            }
            generated += 1;
            runner.check(scenario.random_case(&mut rng, &table));
        }
    }
    runner.compare_counters();
    runner.write_summary();
    let secs = runner.started.elapsed().as_secs_f64();
    let rate = runner.compared as f64 / secs;
    println!(
        "differential: {} frames compared ({} shorter than Ethernet refused by the kernel) \
         over {scenarios} rule sets, {} mismatches, {secs:.1} s, {rate:.0} packets/s",
        runner.compared, runner.refused, runner.mismatches
    );
    let verdicts = runner
        .seen
        .sessions
        .values()
        .next()
        .copied()
        .unwrap_or_default();
    let verdicts = Verdict::ALL.map(|v| format!("{} {}", v.name(), verdicts[v as usize]));
    let reasons =
        PassReason::ALL.map(|r| format!("{} {}", r.name(), runner.seen.reasons[r as usize]));
    let unparsed =
        PassReason::ALL.map(|r| format!("{} {}", r.name(), runner.seen.unparsed[r as usize]));
    let credited: u64 = runner.seen.rules.values().map(|c| c[0]).sum();
    println!(
        "differential: session verdicts: {}; unclassified: {}; unparsed_blocked (dropped by a guard): {}; \
         credited to a rule slot: {credited} (over {} slots)",
        verdicts.join(", "),
        reasons.join(", "),
        unparsed.join(", "),
        runner.seen.rules.len()
    );
    for reason in [PassReason::ExtHeaderLimit, PassReason::Malformed] {
        assert!(
            runner.seen.unparsed[reason as usize] > 0,
            "no frame reached the guard as {}: the generator no longer covers that path",
            reason.name()
        );
    }
    assert_eq!(
        runner.mismatches, 0,
        "kernel and model disagree (see above)"
    );
    let events = MuxEvent::ALL.map(|e| format!("{} {}", e.name(), runner.seen.mux[e as usize]));
    let c = &runner.coverage;
    println!(
        "differential: mux counters: {}; media of learned flows {}; requests binding no \
         meeting {}; unbound after idle {}; STUN tags {:?}",
        events.join(", "),
        c.media_of_learned_flows,
        c.learned_for_no_meeting,
        c.idle_unbound,
        c.tags
    );
    c.assert_reached(&runner.seen.mux);
}
