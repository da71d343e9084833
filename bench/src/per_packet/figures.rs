//! The per-packet figures from the measured run times: costs over their references,
//! ratios against the goals, and why a goal is missed.

use geofence::kernel;

use super::{BLOCKED, SET_LEN, STAGE_TERRITORY, Settings, Times, footprint::Footprint};
use crate::report::{Figure, Report, median, median_noise};

/// What each step of the data path adds, for blocked IPv4 sources on the full table.
pub(super) fn stage_figures(report: &mut Report, times: &Times) {
    let steps = [
        ("parse", "stage_parse", "draw"),
        (
            "session lookup (port table)",
            "stage_session",
            "stage_parse",
        ),
        (
            "territory lookup (flattened table)",
            "stage_territory",
            "stage_session",
        ),
        (
            "decide (policy index and pool, overrides bit, rules)",
            "stage_decide",
            "stage_territory",
        ),
        (
            "count per (session, territory) (stats cache)",
            "stage_count_session",
            "stage_decide",
        ),
        (
            "count per rule (counters, distinct-source sketch)",
            "unwatched",
            "stage_count_session",
        ),
        ("monitor switch, off (no monitor runs)", "full", "unwatched"),
    ];
    for (step, x, reference) in steps {
        let c = cost(times, x, reference);
        // The kernel reports whole ns per repeat: no difference is known better than ±1 ns.
        let noise = c.noise.max(1.0);
        report.push(
            Figure::new(
                format!("data path step, blocked {STAGE_TERRITORY} sources: {step}"),
                c.median,
                "ns/packet",
            )
            .noise(noise)
            .note(format!(
                "{x} − {reference}, medians of per-round differences: {:.1} ± {noise:.1} ns; {}",
                c.median,
                c.spread()
            )),
        );
    }
    let whole = cost(times, "full", "draw");
    report.push(
        Figure::new(
            format!("data path, blocked {STAGE_TERRITORY} sources: all steps"),
            whole.median,
            "ns/packet",
        )
        .note(format!(
            "bench_flat − bench_draw: what the flood's receiver pays per frame beyond a bare \
             program, caches warm as in the flood; {}",
            whole.spread()
        )),
    );
    let ending = cost(times, "full_ending", "draw");
    let clock = cost(times, "full_ending", "full");
    report.push(
        Figure::new(
            format!(
                "data path, blocked {STAGE_TERRITORY} sources, rule with an end time: all steps"
            ),
            ending.median,
            "ns/packet",
        )
        .note(format!(
            "the same packets to a meeting whose rule ends in a day: the program reads the \
             clock to check the end, {:.0} ns more than the rule without one (median of \
             per-round differences, {}); {}",
            clock.median,
            clock.spread(),
            ending.spread()
        )),
    );
}

/// The median over rounds of `(x − reference)` at the full table ÷ the same at the subset.
fn scaling(full: &Times, small: &Times, x: &str, reference: &str) -> f64 {
    let over =
        |t: &Times| -> Vec<f64> { t[x].iter().zip(&t[reference]).map(|(a, b)| a - b).collect() };
    median(
        over(full)
            .iter()
            .zip(over(small))
            .map(|(f, s)| f / s)
            .collect(),
    )
}

/// The median over rounds of `x - reference`, the smallest and largest difference, and the
/// median's noise.
fn cost(times: &Times, x: &str, reference: &str) -> Cost {
    let diffs: Vec<f64> = times[x]
        .iter()
        .zip(&times[reference])
        .map(|(x, r)| x - r)
        .collect();
    Cost {
        median: median(diffs.clone()),
        min: diffs.iter().copied().fold(f64::INFINITY, f64::min),
        max: diffs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        noise: median_noise(diffs),
    }
}

#[derive(Clone, Copy)]
struct Cost {
    median: f64,
    min: f64,
    max: f64,
    /// See [`crate::report::median_noise`].
    noise: f64,
}

impl Cost {
    fn spread(self) -> String {
        format!("rounds {:.0}..{:.0} ns", self.min, self.max)
    }
}

pub(super) fn figures(
    report: &mut Report,
    settings: &Settings,
    full: &Times,
    small: &Times,
    same: bool,
    [layout, small_layout]: [&kernel::GeoLoad; 2],
    [full_reach, small_reach]: [[Footprint; 2]; 2],
) {
    let table = if settings.full.is_some() {
        "smoke table"
    } else {
        "full table"
    };
    let small_name = format!("{}-prefix subset", settings.small);
    let same_note = "territory::lookup is still the stock LPM trie (the flattened table has not \
                     landed): bench_flat and bench_lpm are the same program, so their ratio is 1 \
                     by construction; merging the flattened table closes it";

    let pass = median(full["pass"].clone());
    report.push(Figure::new("XDP_PASS stub (bench_pass)", pass, "ns/packet"));
    let draw = cost(full, "draw4", "pass");
    report.push(
        Figure::new(
            "drawing a random source (bench_draw − stub)",
            draw.median,
            "ns/packet",
        )
        .note(format!(
            "subtracted from every classified cost below; {}",
            draw.spread()
        )),
    );

    // The classified costs over the stub, the drawing subtracted.
    let flat4 = cost(full, "flat4", "draw4");
    let lpm4 = cost(full, "lpm4", "draw4");
    let flat6 = cost(full, "flat6", "draw6");
    let lpm6 = cost(full, "lpm6", "draw6");
    let no_session = cost(full, "nosession4", "draw4");
    let small_flat4 = cost(small, "flat4", "draw4");
    let small_lpm4 = cost(small, "lpm4", "draw4");
    let small_flat6 = cost(small, "flat6", "draw6");
    let small_lpm6 = cost(small, "lpm6", "draw6");

    for (family, flat, lpm, bound) in [("IPv4", flat4, lpm4, 0.25), ("IPv6", flat6, lpm6, 0.5)] {
        report.push(Figure::new(
            format!("{family} classified, {table}, stock LPM trie: cost over stub"),
            lpm.median,
            "ns/packet",
        ));
        let mut figure = Figure::new(
            format!("{family} classified, {table}, random sources: cost over stub"),
            flat.median,
            "ns/packet",
        )
        .against("stock LPM trie", lpm.median)
        .goal_ratio_at_most(bound);
        let met = figure.met;
        figure = figure.note(match (met, same) {
            (Some(false), true) => format!("{same_note}; {}", flat.spread()),
            (Some(false), false) => format!(
                "the lookup costs more than the goal allows against the trie; {}",
                flat.spread()
            ),
            _ => flat.spread(),
        });
        report.push(figure);
    }

    for (family, flat, small_flat, lpm, small_lpm, reach, small_reach) in [
        (
            "IPv4",
            flat4,
            small_flat4,
            lpm4,
            small_lpm4,
            full_reach[0],
            small_reach[0],
        ),
        (
            "IPv6",
            flat6,
            small_flat6,
            lpm6,
            small_lpm6,
            full_reach[1],
            small_reach[1],
        ),
    ] {
        let reach_note = format!(
            "the full table's samples read {:.2} MiB of elements over {} pages, the subset's \
             {:.2} MiB over {} pages",
            reach.mib(),
            reach.pages,
            small_reach.mib(),
            small_reach.pages
        );
        let (flat_key, lpm_key, draw_key) = if family == "IPv4" {
            ("flat4", "lpm4", "draw4")
        } else {
            ("flat6", "lpm6", "draw6")
        };
        let mut figure = Figure::new(
            format!("scaling {family}: cost at the {table}"),
            flat.median,
            "ns/packet",
        )
        .against(format!("the {small_name}"), small_flat.median)
        .paired_ratio(scaling(full, small, flat_key, draw_key))
        .goal_ratio_at_most(1.3);
        let trie_ratio = scaling(full, small, lpm_key, draw_key);
        let met = figure.met;
        figure = figure.note(match (met, same) {
            (Some(false), true) => format!(
                "{same_note}; the stock trie's own ratio is {trie_ratio:.2}; at the subset {}",
                small_flat.spread()
            ),
            (Some(false), false) if family == "IPv4" => format!(
                "the relay's IPv4 lookup is a fixed number of reads at any size (the 128 KiB \
                 tbl16, then for split /16s a range list or tbl24 block, then for split /24s a \
                 range list or tbl8 group), so what grows is memory traffic: sources drawn from \
                 the full table spread over more lists, blocks and groups ({reach_note}), missing \
                 cache and TLB (nested paging in this VM makes TLB misses dear, and other VMs \
                 on the host make every miss dearer: the spread of the rounds shows it); the \
                 stock trie's \
                 own ratio is {trie_ratio:.2}; at the full table {}, at the subset {}. What \
                 is left to shrink is the {} tbl24 blocks and {} tbl8 groups of 512 bytes, \
                 which hold more than 16 ranges each",
                flat.spread(),
                small_flat.spread(),
                layout.blocks_v4,
                layout.groups_v4,
            ),
            (Some(false), false) => format!(
                "the relay's IPv6 lookup reads the 256 KiB first level, then one entry of a \
                 1 KiB node per address byte until a piece holds at most 32 ranges, then \
                 searches those (at most 5 steps, over one run of packed ranges for most \
                 leaves); the number of reads follows the prefix lengths, not the table's \
                 size, so what grows is memory traffic: the full table has {} nodes and {} \
                 packed ranges ({:.1} MiB), the subset {} and {}, and sources drawn from the \
                 full table miss cache and TLB more ({reach_note}; nested paging in this VM makes \
                 TLB misses dear); the stock trie's own ratio is {trie_ratio:.2}; at the full \
                 table {}, at the subset {}. Nodes compressed as poptrie does (a bitmap \
                 and the distinct entries, 0.7 MiB in place of 2.5) were tried: each node \
                 read became two dependent lines, and the lookup got dearer at both sizes \
                 without moving this ratio (see docs/performance.md)",
                layout.nodes_v6,
                layout.packed_v6,
                (layout.nodes_v6 * 1024 + layout.packed_v6 * 8) as f64 / f64::from(1 << 20),
                small_layout.nodes_v6,
                small_layout.packed_v6,
                flat.spread(),
                small_flat.spread(),
            ),
            _ => format!(
                "the stock trie's own ratio is {trie_ratio:.2}; at the subset {}",
                small_flat.spread()
            ),
        });
        report.push(figure);
        report.push(
            Figure::new(
                format!("scaling {family}, stock LPM trie: cost at the {table}"),
                lpm.median,
                "ns/packet",
            )
            .against(format!("the {small_name}"), small_lpm.median)
            .paired_ratio(trie_ratio)
            .note("the reference: no goal"),
        );
        report.push(
            Figure::new(
                format!("{family} lookups' reach at the {table}"),
                reach.mib(),
                "MiB",
            )
            .against(format!("the {small_name}"), small_reach.mib())
            .note(format!(
                "what the lookups of the {SET_LEN} sampled sources read of the kernel's \
                 arrays, through the program's lookup code: {} pages of 4 KiB, {:.1} element \
                 reads and {:.2} distinct 64-byte lines per lookup; the subset's {} pages, \
                 {:.1} reads, {:.2} lines (elements over 64 bytes, a tbl8 group or an IPv6 \
                 node, count whole in the MiB); no goal",
                reach.pages,
                reach.reads,
                reach.lines,
                small_reach.pages,
                small_reach.reads,
                small_reach.lines
            )),
        );
    }

    let mut figure = Figure::new(
        "non-meeting packet (no session): cost over stub",
        no_session.median,
        "ns/packet",
    )
    .against("IPv4 classified packet", flat4.median)
    .goal_ratio_at_most(0.3);
    let met = figure.met;
    figure = figure.note(match met {
        Some(false) => format!(
            "with the territory lookup this cheap, parsing and the session lookups a packet of \
             no meeting still pays (flow hash, endpoint hash on the destination, then on any \
             address: three hash lookups with jhash of 40-byte keys) are a large share of the \
             classified cost; a per-port array saying which ports any meeting has (one read \
             before the hashes) would close it; {}",
            no_session.spread()
        ),
        _ => no_session.spread(),
    });
    report.push(figure);

    report.note(format!(
        "per-packet: BPF_PROG_TEST_RUN, {} repeats per run, median of {} rounds (variants \
         interleaved, order rotating); the kernel reports whole ns per repeat, so ±1 ns is \
         resolution, and other load on the machine shows as the round spread given per figure",
        settings.repeat, settings.rounds
    ));
    report.note(format!(
        "per-packet: sources drawn uniformly over the table's prefixes (then at random inside \
         one) from {SET_LEN} samples per table and family, IPv4 ones stored in 4 bytes (a \
         256 KiB set) so that the drawing takes as little of the caches from the lookup as it \
         can; the meeting's rule blocks {}",
        BLOCKED.join(", ")
    ));
    if let Some(load) = load_note() {
        report.note(load);
    }
    if settings.full.is_some() {
        report
            .note("per-packet: SMOKE mode: small tables and few repeats; the figures mean nothing");
    }
}

/// The machine's load when the figures were taken: other work on the same CPUs shows as
/// noise in every figure.
fn load_note() -> Option<String> {
    let loadavg = std::fs::read_to_string("/proc/loadavg").ok()?;
    let one_minute = loadavg.split_whitespace().next()?;
    // Online CPUs, not `available_parallelism`: that is this thread's affinity (one CPU).
    let cpus = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    Some(format!(
        "per-packet: load average {one_minute} on {cpus} CPUs at the end of the runs; \
         above ~0.5 per CPU, other work shared the machine and the round spreads show it"
    ))
}
