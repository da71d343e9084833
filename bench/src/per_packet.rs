//! Per-packet cost through BPF_PROG_TEST_RUN: the geofence data path with the relay's
//! territory lookup and with the stock LPM trie, against a bare XDP_PASS program, with
//! source addresses drawn at random from the table on every run (see
//! `filter-ebpf/src/bin/bench.rs`).
//!
//! Method: the relay's maps are pinned in a bench-only directory and filled with the same
//! library calls the CLI uses (one meeting with a rule blocking some territories, the
//! territory table); the bench object shares them. Each round runs every variant once, in
//! an order that rotates from round to round, each run repeating the program `repeat`
//! times; the kernel reports the average time per repeat in whole nanoseconds. A cost is
//! the median over rounds of the per-round difference with its reference (the drawing's
//! own cost, measured by `bench_draw` in the same round, is subtracted). The full table
//! and a random 10k-prefix subset of it sit in the two table generations, and every round
//! runs both (switching the table bit of `SESSION_ACTIVE`), each with its own references, so the scaling ratio
//! is the median of per-round ratios, not of figures taken minutes apart.

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv6Addr},
    path::{Path, PathBuf},
    time::Instant,
};

use anyhow::{Context as _, bail, ensure};
use aya::{
    Ebpf, EbpfLoader,
    programs::{TestRun as _, TestRunOptions, Xdp},
};
use filter_common::{Address, PassReason, Verdict};
use geofence::{
    clock,
    expiry::Clock,
    geo::GeoTable,
    kernel::{self, Kernel},
    state::{Meeting, Rule, State},
    territory::Territory,
};

use crate::{
    Options, packets,
    report::Report,
    table::{self, Rng},
};

mod figures;
mod footprint;
mod monitor;
mod samples;

use samples::{
    SET_LEN, SET_V4_BLOCKED, SET_V4_FULL, SET_V4_SMALL, SET_V6_FULL, SET_V6_SMALL, Set,
    blocked_samples, check_drawn, fill_samples, select_set,
};

/// The territory of the sources the stage split is measured with: one the meeting's rule
/// blocks, so the whole path runs, counting too.
const STAGE_TERRITORY: &str = "CN";

/// The meeting's endpoint and the territories its rule blocks.
const ENDPOINT: &str = "udp:*:40000-40009";
const MEETING_PORT: u16 = 40000;
/// A second meeting whose rule (the same territories) has an end time, which the program
/// checks against the clock on every packet the rule would drop.
const ENDING_PORT: u16 = 40010;
const ENDING_SESSION: u32 = 2;
/// A port no meeting has: the no-session path.
const OTHER_PORT: u16 = 5060;
const BLOCKED: [&str; 5] = ["CN", "RU", "IR", "BY", "KP"];
const SEED: u64 = 0x6765_6f66_656e_6365;

/// How much to measure.
struct Settings {
    rounds: usize,
    repeat: u32,
    /// Prefixes per family of the "full" table; `None`: the whole table.
    full: Option<usize>,
    /// Prefixes per family of the small table the scaling figure compares with.
    small: usize,
}

impl Settings {
    fn of(options: &Options) -> Settings {
        if options.smoke {
            Settings {
                rounds: 2,
                repeat: 10_000,
                full: Some(2_000),
                small: 500,
            }
        } else {
            Settings {
                rounds: 11,
                repeat: 1_000_000,
                full: None,
                small: 10_000,
            }
        }
    }
}

/// One program run on one frame with one sample set.
struct Variant {
    key: &'static str,
    program: &'static str,
    frame: Vec<u8>,
    set: Set,
}

/// Run times per variant key, one per round (ns per repeat, as the kernel reports it).
type Times = BTreeMap<&'static str, Vec<f64>>;

/// A pin directory on bpffs for this run only, removed (pins, then the directory) on drop.
pub(crate) struct PinDir(pub(crate) PathBuf);

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

pub fn run(options: &Options, report: &mut Report) -> anyhow::Result<()> {
    let settings = Settings::of(options);
    let mut rng = Rng::new(SEED);
    let _pin = CpuPin::new(report);

    let started = Instant::now();
    let (full, synthetic) = tables(options, &settings, &mut rng)?;
    let small = table::subset(&full, settings.small, &mut rng);
    println!(
        "per-packet: table {} IPv4 + {} IPv6 prefixes, subset {} + {} ({:.1} s to read)",
        full.v4.len(),
        full.v6.len(),
        small.v4.len(),
        small.v6.len(),
        started.elapsed().as_secs_f64()
    );
    match &synthetic {
        Some(why) => report.note(format!("per-packet: {why}")),
        None => report.note(
            "per-packet: territory data geo-whois-asn-country (ip-location-db), CC BY 4.0, \
             Number Resource Organization (nro.net)",
        ),
    }

    // Dropped last: the maps' fds (in `kernel` and `bench`) go before the pins.
    let pins =
        PinDir(PathBuf::from("/sys/fs/bpf").join(format!("geofence-bench-{}", std::process::id())));
    let mut kernel = Kernel::open(&pins.0).context("creating the bench's pinned maps")?;
    kernel::sync(&mut kernel, &bench_state()?, &Clock::now())
        .context("adding the bench meeting")?;
    let layout = load_tables(&mut kernel, &full)?;
    let mut bench = load_bench(&pins.0, &PROGRAMS)?;
    let full_v4 = table::samples_v4(&full, SET_LEN, &mut rng);
    let full_v6 = table::samples_v6(&full, SET_LEN, &mut rng);
    let small_v4 = table::samples_v4(&small, SET_LEN, &mut rng);
    let small_v6 = table::samples_v6(&small, SET_LEN, &mut rng);
    for (set, samples) in [
        (SET_V4_FULL, &full_v4),
        (SET_V6_FULL, &full_v6),
        (SET_V4_SMALL, &small_v4),
        (SET_V6_SMALL, &small_v6),
        (SET_V4_BLOCKED, &blocked_samples(&full, &mut rng)?),
    ] {
        fill_samples(&mut bench, set, samples)?;
        check_drawn(&mut bench, set, samples)?;
    }
    let reach = |kernel: &Kernel, v4: &[Address], v6: &[Address]| -> anyhow::Result<_> {
        let table = kernel::map_active(kernel).context("mapping the loaded table")?;
        Ok([footprint::v4(table.v4(), v4), footprint::v6(table.v6(), v6)])
    };
    let full_reach = reach(&kernel, &full_v4, &full_v6)?;

    // The subset goes into the other generation: each round then runs both tables, one
    // after the other, by switching the table, so the scaling ratio is taken per round.
    let full_generation = kernel::active_generation(&kernel)?;
    let small_layout = load_tables(&mut kernel, &small)?;
    let small_generation = kernel::active_generation(&kernel)?;
    let small_reach = reach(&kernel, &small_v4, &small_v6)?;
    ensure!(
        full_generation != small_generation,
        "the subset did not go into the other table generation"
    );
    let frames = Frames::new();
    let [full_times, small_times] = measure_tables(
        &mut bench,
        &mut kernel,
        [
            (
                full_generation,
                frames.variants(SET_V4_FULL, SET_V6_FULL, true),
            ),
            (
                small_generation,
                frames.variants(SET_V4_SMALL, SET_V6_SMALL, false),
            ),
        ],
        &settings,
    )?;
    kernel::activate_generation(&mut kernel, full_generation)?;
    check_counters(&kernel)?;
    let stage_times = measure(&mut bench, &frames.stages(), &settings, "stages")?;
    check_ending_dropped(&kernel)?;
    let blocked = Variant {
        key: "monitor",
        program: "bench_flat",
        frame: frames.v4.clone(),
        set: SET_V4_BLOCKED,
    };
    let monitor_times = monitor::measure(&mut bench, &mut kernel, &blocked, &settings)?;

    let same_code = same_program(&bench, "bench_flat", "bench_lpm")?;
    figures::figures(
        report,
        &settings,
        &full_times,
        &small_times,
        same_code,
        [&layout, &small_layout],
        [full_reach, small_reach],
    );
    figures::stage_figures(report, &stage_times);
    monitor::figures(report, &monitor_times, &stage_times);
    Ok(())
}

/// The "full" table: the real one (or synthetic), cut to the smoke size in smoke mode.
fn tables(
    options: &Options,
    settings: &Settings,
    rng: &mut Rng,
) -> anyhow::Result<(GeoTable, Option<String>)> {
    let real = table::REAL_FILES
        .iter()
        .all(|f| options.geo.join(f).is_file());
    match settings.full {
        // Smoke without the real data: no need to build a million synthetic prefixes.
        Some(n) if !real => Ok((
            table::synthetic(n, n, rng),
            Some(format!(
                "{} not found: SYNTHETIC table, not the real data",
                options.geo.display()
            )),
        )),
        Some(n) => {
            let source = table::load(&options.geo, rng)?;
            Ok((table::subset(&source.table, n, rng), source.synthetic))
        }
        None => {
            let source = table::load(&options.geo, rng)?;
            Ok((source.table, source.synthetic))
        }
    }
}

/// Keeps this thread on the CPU it started on while it lives, so that runs do not migrate
/// between caches; the other benches in the process get the whole machine back after.
pub(crate) struct CpuPin(Option<nix::sched::CpuSet>);

impl CpuPin {
    pub(crate) fn new(report: &mut Report) -> CpuPin {
        use nix::{sched, unistd::Pid};
        let before = sched::sched_getaffinity(Pid::from_raw(0)).ok();
        let cpu = unsafe { libc::sched_getcpu() };
        let mut set = sched::CpuSet::new();
        let pinned = before.is_some()
            && cpu >= 0
            && set.set(cpu as usize).is_ok()
            && sched::sched_setaffinity(Pid::from_raw(0), &set).is_ok();
        if !pinned {
            report.note("could not pin the bench to one CPU; runs may migrate");
        }
        CpuPin(before.filter(|_| pinned))
    }
}

impl Drop for CpuPin {
    fn drop(&mut self) {
        if let Some(before) = &self.0 {
            let _ = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), before);
        }
    }
}

/// One meeting on UDP ports 40000-40009 of any local address, with one rule blocking
/// [`BLOCKED`].
fn bench_state() -> anyhow::Result<State> {
    let territories = BLOCKED
        .iter()
        .map(|code| Territory::parse(code).map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let now = clock::now();
    let meeting = |session, endpoint: &str, expires| -> anyhow::Result<Meeting> {
        let rule = Rule {
            order: format!("BENCH-{session:04}"),
            territories: territories.clone(),
            prefixes: Vec::new(),
            expires,
            dry_run: false,
            issued: now,
            issued_by: "geofence-bench".to_string(),
            slot: None,
        };
        Ok(Meeting {
            session,
            created: now,
            endpoints: vec![endpoint.parse().map_err(anyhow::Error::msg)?],
            flows: Vec::new(),
            rules: vec![rule],
            allows: Vec::new(),
        })
    };
    let a_day = std::time::Duration::from_secs(86_400);
    let mut state = State::default();
    state
        .meetings
        .insert("bench".to_string(), meeting(1, ENDPOINT, None)?);
    state.meetings.insert(
        "bench-ending".to_string(),
        meeting(
            ENDING_SESSION,
            &format!("udp:*:{ENDING_PORT}"),
            Some(now.checked_add(a_day)?),
        )?,
    );
    Ok(state)
}

/// Loads `table` as the relay's table and as the stock LPM reference, and checks that both
/// give sources drawn from it the table's territory: the two programs measure the same job.
/// Returns what the relay's table holds.
fn load_tables(kernel: &mut Kernel, table: &GeoTable) -> anyhow::Result<kernel::GeoLoad> {
    let started = Instant::now();
    let layout = kernel::load_table(kernel, table).context("loading the territory table")?;
    let relay = started.elapsed();
    kernel::load_lpm_reference(kernel, table).context("loading the stock LPM reference")?;
    println!(
        "per-packet: loaded {} + {} prefixes in {:.1} s, the LPM reference in {:.1} s",
        table.v4.len(),
        table.v6.len(),
        relay.as_secs_f64(),
        (started.elapsed() - relay).as_secs_f64()
    );
    let mut rng = Rng::new(SEED ^ 1);
    let v4 = table::samples_v4(table, 500, &mut rng);
    let v6 = table::samples_v6(table, 500, &mut rng);
    for sample in v4.iter().chain(&v6) {
        let v6 = Ipv6Addr::from(*sample);
        let (addr, want) = match v6.to_ipv4_mapped() {
            Some(v4) => (IpAddr::V4(v4), table.lookup_v4(u32::from(v4))),
            None => (IpAddr::V6(v6), table.lookup_v6(u128::from(v6))),
        };
        let relay = kernel::geo_lookup(kernel, addr)?;
        let lpm = kernel::geo_lookup_lpm(kernel, addr)?;
        ensure!(
            relay == want && lpm == want,
            "territory of {addr}: the table says {want:?}, the relay's table {relay:?}, \
             the LPM reference {lpm:?}"
        );
    }
    Ok(layout)
}

/// The bench object over the pinned maps in `pin_dir`, with `programs` loaded.
pub(crate) fn load_bench(pin_dir: &Path, programs: &[&str]) -> anyhow::Result<Ebpf> {
    let mut bench = EbpfLoader::new()
        .default_map_pin_directory(pin_dir)
        .load(kernel::BENCH_OBJECT)
        .context("loading the bench object")?;
    for &name in programs {
        let program: &mut Xdp = bench
            .program_mut(name)
            .with_context(|| format!("program {name} is missing from the bench object"))?
            .try_into()?;
        program
            .load()
            .with_context(|| format!("loading program {name} (verifier)"))?;
    }
    Ok(bench)
}

const PROGRAMS: [&str; 12] = [
    "bench_pass",
    "bench_draw",
    "bench_sample",
    "bench_flat",
    "bench_lpm",
    "bench_no_session",
    "stage_parse",
    "stage_session",
    "stage_territory",
    "stage_decide",
    "stage_count_session",
    "bench_unwatched",
];

/// The frames: to the meeting's endpoint over IPv4 and IPv6, and to a port of no meeting.
struct Frames {
    v4: Vec<u8>,
    v6: Vec<u8>,
    other: Vec<u8>,
    /// To the meeting whose rule has an end time.
    ending: Vec<u8>,
}

impl Frames {
    fn new() -> Frames {
        let ip = |s: &str| s.parse::<IpAddr>().expect("an address");
        // The source is replaced by a drawn one on every run.
        let (src4, dst4) = (ip("198.51.100.7"), ip("192.0.2.1"));
        let (src6, dst6) = (ip("2001:db8:ffff::7"), ip("2001:db8::1"));
        Frames {
            v4: packets::udp(src4, 50000, dst4, MEETING_PORT),
            v6: packets::udp(src6, 50000, dst6, MEETING_PORT),
            other: packets::udp(src4, 50000, dst4, OTHER_PORT),
            ending: packets::udp(src4, 50000, dst4, ENDING_PORT),
        }
    }

    /// The stage programs, each a step further along the data path, on blocked sources.
    fn stages(&self) -> Vec<Variant> {
        let v = |key, program: &'static str, frame: &Vec<u8>| Variant {
            key,
            program,
            frame: frame.clone(),
            set: SET_V4_BLOCKED,
        };
        vec![
            v("draw", "bench_draw", &self.v4),
            v("stage_parse", "stage_parse", &self.v4),
            v("stage_session", "stage_session", &self.v4),
            v("stage_territory", "stage_territory", &self.v4),
            v("stage_decide", "stage_decide", &self.v4),
            v("stage_count_session", "stage_count_session", &self.v4),
            v("unwatched", "bench_unwatched", &self.v4),
            v("full", "bench_flat", &self.v4),
            v("full_ending", "bench_flat", &self.ending),
        ]
    }

    fn variants(&self, set4: Set, set6: Set, with_no_session: bool) -> Vec<Variant> {
        let v = |key, program, frame: &Vec<u8>, set| Variant {
            key,
            program,
            frame: frame.clone(),
            set,
        };
        let mut variants = vec![
            v("pass", "bench_pass", &self.v4, set4),
            v("draw4", "bench_draw", &self.v4, set4),
            v("flat4", "bench_flat", &self.v4, set4),
            v("lpm4", "bench_lpm", &self.v4, set4),
            v("draw6", "bench_draw", &self.v6, set6),
            v("flat6", "bench_flat", &self.v6, set6),
            v("lpm6", "bench_lpm", &self.v6, set6),
        ];
        if with_no_session {
            variants.push(v("nosession4", "bench_no_session", &self.other, set4));
        }
        variants
    }
}

/// Every variant once per round, the order rotating from round to round.
fn measure(
    bench: &mut Ebpf,
    variants: &[Variant],
    settings: &Settings,
    phase: &str,
) -> anyhow::Result<Times> {
    let mut times = Times::new();
    let started = Instant::now();
    for round in 0..settings.rounds {
        for i in 0..variants.len() {
            let variant = &variants[(round + i) % variants.len()];
            select_set(bench, variant.set)?;
            let ns = run_once(bench, variant, settings.repeat)?;
            times.entry(variant.key).or_default().push(ns);
        }
    }
    println!(
        "per-packet: {phase}: {} rounds of {} variants × {} repeats in {:.1} s",
        settings.rounds,
        variants.len(),
        settings.repeat,
        started.elapsed().as_secs_f64()
    );
    Ok(times)
}

/// The full table's variants and the subset's in every round: each variant of the full
/// table, then the same variant of the subset straight after (the table switched by its
/// generation), so that the two figures of a pair are taken under the same machine load.
fn measure_tables(
    bench: &mut Ebpf,
    kernel: &mut Kernel,
    tables: [(u32, Vec<Variant>); 2],
    settings: &Settings,
) -> anyhow::Result<[Times; 2]> {
    let mut times = [Times::new(), Times::new()];
    let started = Instant::now();
    let (full, small) = (&tables[0].1, &tables[1].1);
    for round in 0..settings.rounds {
        for i in 0..full.len() {
            let key = full[(round + i) % full.len()].key;
            let pair = [0, 1].map(|t| tables[t].1.iter().find(|v| v.key == key));
            // Which table goes first alternates from round to round.
            for t in [round % 2, (round + 1) % 2] {
                let Some(variant) = pair[t] else {
                    continue;
                };
                kernel::activate_generation(kernel, tables[t].0)?;
                select_set(bench, variant.set)?;
                let ns = run_once(bench, variant, settings.repeat)?;
                times[t].entry(variant.key).or_default().push(ns);
            }
        }
    }
    println!(
        "per-packet: full table and subset: {} rounds of {} + {} variants × {} repeats in {:.1} s",
        settings.rounds,
        full.len(),
        small.len(),
        settings.repeat,
        started.elapsed().as_secs_f64()
    );
    Ok(times)
}

fn run_once(bench: &Ebpf, variant: &Variant, repeat: u32) -> anyhow::Result<f64> {
    let program: &Xdp = bench
        .program(variant.program)
        .with_context(|| format!("program {}", variant.program))?
        .try_into()?;
    let result = program
        .test_run(TestRunOptions {
            data_in: Some(&variant.frame),
            repeat,
            ..TestRunOptions::new()
        })
        .with_context(|| format!("BPF_PROG_TEST_RUN of {}", variant.program))?;
    // XDP_ABORTED 0, XDP_DROP 1, XDP_PASS 2: the draw must pass (its set is filled), the
    // others must pass or drop.
    let allowed: &[u32] = if variant.program == "bench_draw" {
        &[2]
    } else {
        &[1, 2]
    };
    ensure!(
        allowed.contains(&result.return_value),
        "{} ({}) returned XDP action {}",
        variant.program,
        variant.key,
        result.return_value
    );
    Ok(result.duration.as_nanos() as f64)
}

/// The rule with an end time dropped the packets sent to its meeting: its figure measured
/// the drop path, clock read included, not a lapsed rule.
fn check_ending_dropped(kernel: &Kernel) -> anyhow::Result<()> {
    let stats = kernel::read_stats(kernel).context("reading the counters")?;
    let dropped = stats.session_total(ENDING_SESSION, Verdict::Dropped).0;
    ensure!(
        dropped > 0,
        "the rule with an end time dropped nothing: the bench measured a lapsed rule"
    );
    Ok(())
}

/// The drawn sources really went through the rule: the meeting counted packets both dropped
/// (blocked territories) and passed, and the no-session runs were counted as such.
fn check_counters(kernel: &Kernel) -> anyhow::Result<()> {
    let stats = kernel::read_stats(kernel).context("reading the counters")?;
    let per_verdict = |verdict: Verdict| stats.session_total(1, verdict).0;
    let (dropped, passed) = (per_verdict(Verdict::Dropped), per_verdict(Verdict::Passed));
    let no_session = stats.pass_reasons[PassReason::NoSession as usize];
    println!(
        "per-packet: counters: {dropped} dropped, {passed} passed, {no_session} without session"
    );
    if dropped == 0 || passed == 0 || no_session == 0 {
        bail!(
            "the bench packets did not take the paths measured \
             ({dropped} dropped, {passed} passed, {no_session} without session)"
        );
    }
    Ok(())
}

/// Whether two loaded programs are the same code on the same maps (the relay's lookup is
/// still the stock trie).
fn same_program(bench: &Ebpf, a: &str, b: &str) -> anyhow::Result<bool> {
    let info = |name: &str| -> anyhow::Result<(Option<u32>, Option<Vec<u32>>)> {
        let program: &Xdp = bench
            .program(name)
            .with_context(|| format!("program {name}"))?
            .try_into()?;
        let info = program.info()?;
        let mut maps = info.map_ids()?;
        if let Some(maps) = &mut maps {
            maps.sort_unstable();
        }
        Ok((info.size_translated(), maps))
    };
    Ok(info(a)? == info(b)?)
}
