//! The veth flood, the table load time against `nft -f`, and the memory
//! of all maps.
//!
//! **Flood.** Two namespaces of our own joined by a veth pair. In the sender namespace,
//! BPF_PROG_TEST_RUN of `flood_tx` (one `XDP_TX`) with `BPF_F_TEST_XDP_LIVE_FRAMES` and
//! `ingress_ifindex` = the sender veth transmits every frame into the receiving veth, as
//! xdp-trafficgen does. The frames are UDP to the meeting port from sources spread over the
//! blocked territory: unlike xdp-trafficgen's one instruction, the generator writes the next
//! of 4096 sources into each frame, so no receiver sees a cache-friendly stream of one
//! source. On the receiving veth, in turn and alternating over several rounds:
//! - geofence (the relay program and library, the rule blocking the territory), counted by
//!   its own per-CPU stats;
//! - `flood_unaccounted` (bench object): geofence's classification with no counting but a
//!   per-CPU count of its drops: the floor of any accounting geofence could keep;
//! - `flood_parsed` (bench object): geofence's header parsing alone, its drops counted the
//!   same way: what reading the headers costs before any lookup;
//! - `flood_drop`, a bare `XDP_DROP` with a per-CPU counter: the floor of any XDP filter;
//! - nftables: a netdev ingress chain, `udp dport P ip saddr @blocked counter drop`, the set
//!   holding exactly the IPv4 ranges geofence drops, behind `flood_pass` (veth only takes
//!   live frames when an XDP program is set);
//! - ipset `hash:net` with the same prefixes + iptables raw PREROUTING DROP, behind
//!   `flood_pass`.
//!
//! Each figure is the median over rounds of packets dropped ÷ the generator's wall time.
//!
//! Everything lives in namespaces and a pin directory made here, all removed on drop, also
//! when a step fails or panics.

pub(crate) mod blocked;
mod figures;
mod measure;
mod memory;
pub(crate) mod netfilter;
pub(crate) mod ns;

use figures::{Loads, Rates};
use measure::{Attached, BATCH, Bench, Generator, PARSED, SESSION, SOURCES, UNACCOUNTED, Variant};

use std::{path::PathBuf, time::Instant};

use anyhow::{Context as _, bail};
use aya::{EbpfLoader, programs::Xdp};
use geofence::{
    endpoint::Endpoint,
    expiry::Clock,
    geo,
    kernel::{self, AttachMode, Kernel},
    state::{Meeting, Rule, State},
};

use crate::{Options, report::Report};

/// How much of everything to do.
struct Plan {
    rounds: usize,
    /// Frames per variant per round.
    frames: u64,
    /// Table loads timed (at least 2: the memory figure wants both generations filled).
    loads: usize,
}

impl Plan {
    fn new(smoke: bool) -> Plan {
        if smoke {
            Plan {
                rounds: 1,
                frames: 4096,
                loads: 2,
            }
        } else {
            // Many short rounds rather than a few long ones: the host's jitter spreads
            // per-round ratios widely (quartiles about ±0.1 around geofence's), and the
            // median of 27 settles where 9 of 4M frames did not.
            Plan {
                rounds: 27,
                frames: 1_500_000,
                loads: 3,
            }
        }
    }
}
/// A pin directory of our own on bpffs, removed with everything pinned in it on drop.
struct PinDir(PathBuf);

impl Drop for PinDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            eprintln!("warning: removing {}: {e}", self.0.display());
        }
    }
}

pub fn run(options: &Options, report: &mut Report) -> anyhow::Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("the flood bench needs root (namespaces, XDP, BPF)");
    }
    let plan = Plan::new(options.smoke);
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    // Generator and receiver on one CPU, the same for every variant.
    let _pin = crate::per_packet::CpuPin::new(report);
    ns::sweep_leftovers();
    let total = Instant::now();
    let table = blocked::table(&options.geo, options.smoke)?;
    let territory = table.territory.id();
    let ranges = blocked::ranges_v4(&table.table, territory);
    if ranges.is_empty() {
        bail!(
            "territory {} has no IPv4 addresses in the table",
            table.territory
        );
    }
    let cidrs = blocked::cidrs_v4(&ranges);
    println!(
        "flood: table of {} IPv4 + {} IPv6 prefixes ({}); blocking {}: {} IPv4 ranges, {} prefixes in the netfilter sets",
        table.table.v4.len(),
        table.table.v6.len(),
        if table.files.is_some() {
            "real"
        } else {
            "synthetic"
        },
        table.territory,
        ranges.len(),
        cidrs.len()
    );

    let pair = ns::Pair::new()?;
    let pins = PinDir(PathBuf::from(format!(
        "/sys/fs/bpf/gfb-flood-{}",
        std::process::id()
    )));
    let mut relay = Kernel::open(&pins.0)?;

    // Load time of the whole table (parse + fill the idle generation + switch) as a relay
    // in service pays it: geofence attached, and a fresh handle per load as each CLI call
    // opens one, so the check of the attached program's build (which reads this build's
    // tag from the program `attach` pinned) is counted. The loads also leave both
    // generations full for the memory figure.
    let mut load = Vec::new();
    let mut parse = Vec::new();
    {
        let receiver_if = pair.receiver_if.as_str();
        kernel::attach(
            &mut relay,
            receiver_if,
            Some(&pair.receiver.name),
            AttachMode::Native,
        )?;
        let _attached = Attached {
            pin_dir: &pins.0,
            interface: receiver_if,
            netns: &pair.receiver.name,
        };
        for _ in 0..plan.loads {
            let start = Instant::now();
            let fresh = match &table.files {
                Some(files) => geo::load_files(files, geo::Format::Auto, None)?,
                None => table.table.clone(),
            };
            parse.push(start.elapsed().as_secs_f64());
            kernel::load_table(&mut Kernel::open(&pins.0)?, &fresh)?;
            load.push(start.elapsed().as_secs_f64());
        }
    }

    // The meeting and its rule, through the library as the CLI would write them.
    let now = geofence::clock::now();
    let mut state = State::default();
    state.meetings.insert(
        "flood-bench".to_string(),
        Meeting {
            session: SESSION,
            created: now,
            endpoints: vec![
                format!("udp:*:{}", blocked::MEETING_PORT)
                    .parse::<Endpoint>()
                    .map_err(anyhow::Error::msg)?,
            ],
            flows: Vec::new(),
            rules: vec![Rule {
                order: "BENCH-FLOOD".to_string(),
                territories: vec![table.territory],
                prefixes: Vec::new(),
                expires: None,
                dry_run: false,
                issued: now,
                issued_by: "geofence-bench".to_string(),
                slot: None,
            }],
            allows: Vec::new(),
        },
    );
    kernel::sync(&mut relay, &state, &Clock::now())?;

    let mut flood = EbpfLoader::new()
        .load(kernel::FLOOD_OBJECT)
        .context("loading the flood programs")?;
    for name in ["flood_tx", "flood_drop", "flood_pass"] {
        let program: &mut Xdp = flood
            .program_mut(name)
            .with_context(|| format!("{name} is missing from the flood object"))?
            .try_into()?;
        program.load().with_context(|| format!("loading {name}"))?;
    }

    // The bench object over the relay's pinned maps, for the variants that do part of
    // geofence's work (its parse; its classification without accounting).
    let mut bench_object = crate::per_packet::load_bench(&pins.0, &[UNACCOUNTED, PARSED])?;

    let generator = Generator::new(&pair, &ranges, &mut flood)?;
    let netfilter_missing: Vec<&str> = ["nft", "ipset", "iptables"]
        .into_iter()
        .filter(|p| !netfilter::available(p))
        .collect();
    let mut variants = vec![
        Variant::Geofence,
        Variant::Unaccounted,
        Variant::Parsed,
        Variant::XdpDrop,
    ];
    if netfilter::available("nft") {
        variants.push(Variant::Nft);
    }
    if netfilter::available("ipset") && netfilter::available("iptables") {
        variants.push(Variant::Ipset);
    }
    // A full bench compares against every baseline or fails: a figure without its
    // reference would read as a result. A smoke run only checks that the bench works.
    if !netfilter_missing.is_empty() && !options.smoke {
        bail!(
            "flood: the netfilter baselines need {}, which is not installed; \
             `cargo xtask setup` installs it",
            netfilter_missing.join(", ")
        );
    }
    if !netfilter_missing.is_empty() {
        println!(
            "flood: skipping the netfilter baselines that need {} (not installed; `cargo xtask setup` installs them)",
            netfilter_missing.join(", ")
        );
    }

    // Warm up once (page pools, first-touch of the table), then measure in rotating order.
    let mut bench = Bench {
        pair: &pair,
        pins: &pins.0,
        relay: &mut relay,
        flood: &mut flood,
        bench: &mut bench_object,
        generator: &generator,
        cidrs: &cidrs,
    };
    // The maps are all allocated by now (arrays and hashes up front, the table loaded): the
    // memory figure stands whether or not the flood can run.
    let lpm_bytes = figures::memory(report, bench.relay)?;
    if let Err(error) = bench.measure(Variant::XdpDrop, plan.frames.min(1_000_000)) {
        // Some kernels refuse live-frames test runs (EPERM seen on one 6.18 VM): the flood
        // cannot run there. A smoke run says so and goes on; a full bench has no figure
        // without it and fails.
        if options.smoke {
            println!(
                "flood: SKIPPED: this kernel refuses the generator's live-frames test run \
                 ({error:#}); the flood and load figures need it"
            );
            report.note(format!("flood: skipped in smoke mode: {error:#}"));
            return Ok(());
        }
        return Err(error.context("the flood's generator (a live-frames test run)"));
    }
    let mut mpps: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    let mut offered: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    for round in 0..plan.rounds {
        for k in 0..variants.len() {
            let i = (k + round) % variants.len();
            let m = bench.measure(variants[i], plan.frames)?;
            if m.dropped == 0 {
                // A rate of zero would read as a figure; it is a broken setup.
                bail!(
                    "flood: {} dropped none of the {} frames sent",
                    variants[i].name(),
                    m.sent
                );
            }
            println!(
                "flood: round {} {:<40} {:>8.3} Mpps dropped ({} of {} frames sent in {:.3} s)",
                round + 1,
                variants[i].name(),
                m.dropped as f64 / m.wall.as_secs_f64() / 1e6,
                m.dropped,
                m.sent,
                m.wall.as_secs_f64()
            );
            mpps[i].push(m.dropped as f64 / m.wall.as_secs_f64() / 1e6);
            offered[i].push(m.arrived as f64 / m.wall.as_secs_f64() / 1e6);
        }
    }
    let rates = Rates {
        variants,
        dropped: mpps,
        arrived: offered,
    };
    let sources_note = format!(
        "{} frames × {} rounds per variant, 64-byte UDP frames to the meeting port, the source \
         rewritten per frame by the generator (XDP_TX, live frames, batch {BATCH}) cycling over \
         {SOURCES} addresses drawn from {}'s {} IPv4 ranges; medians, variants alternated",
        plan.frames,
        plan.rounds,
        table.territory,
        ranges.len()
    );
    figures::flood(report, &rates, &sources_note, cidrs.len());
    let nft_load = if netfilter::available("nft") {
        let load_ns = ns::NetNs::new(&format!("gfb-load-{}", std::process::id()))?;
        Some(netfilter::nft_load(&load_ns, &table.table)?.as_secs_f64())
    } else {
        None
    };
    figures::load(
        report,
        &table.table,
        &Loads {
            load,
            parse,
            nft: nft_load,
        },
        lpm_bytes,
    );
    if table.files.is_some() {
        report.note(
            "flood: territory data geo-whois-asn-country (ip-location-db), CC BY 4.0, \
             Number Resource Organization (nro.net)",
        );
    }
    report.note(format!(
        "flood: the live-frames XDP_TX generator and the receiver run on one CPU (the bench \
         pins itself), of the machine's {cpus} shared with whatever else runs; each \
         variant's per-round figures are printed above, their spread is the noise, and \
         ratios are medians of per-round ratios"
    ));
    println!("flood: done in {:.1} s", total.elapsed().as_secs_f64());
    Ok(())
}
