//! The veth flood (issue 3, item 3), the table load time against `nft -f`, and the memory
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
mod memory;
mod netfilter;
mod ns;

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, PerCpuArray},
    programs::{TestRun as _, TestRunAttrs, TestRunOptions, Xdp, XdpMode, xdp::XdpLink},
};
use filter_common::Verdict;
use geofence::{
    endpoint::Endpoint,
    geo,
    kernel::{self, AttachMode, Kernel},
    state::{Meeting, Rule, State},
};

use crate::{
    Options,
    report::{Figure, Report, median},
};

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
            Plan {
                rounds: 9,
                frames: 4_000_000,
                loads: 3,
            }
        }
    }
}

const SESSION: u32 = 1;
const FLOOD_COUNT: &str = "FLOOD_COUNT";
/// Sources `flood_tx` cycles through (its `FLOOD_SOURCES`).
const SOURCES: u32 = 4096;
/// Frames per live-frames batch (the kernel's default, NAPI_POLL_WEIGHT).
const BATCH: u32 = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    Geofence,
    XdpDrop,
    Nft,
    Ipset,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Geofence => "geofence",
            Variant::XdpDrop => "bare XDP_DROP",
            Variant::Nft => "nftables netdev ingress + interval set",
            Variant::Ipset => "ipset hash:net + iptables raw",
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

/// geofence attached to the receiving veth for one measurement; detached on drop.
struct Attached<'a> {
    pin_dir: &'a Path,
    interface: &'a str,
    netns: &'a str,
}

impl Drop for Attached<'_> {
    fn drop(&mut self) {
        if let Err(e) = kernel::detach(self.pin_dir, self.interface, Some(self.netns)) {
            eprintln!("warning: detaching geofence from {}: {e:#}", self.interface);
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
    let now = geofence::state::now();
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
    kernel::sync(&mut relay, &state)?;

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

    let generator = Generator::new(&pair, &ranges, &mut flood)?;
    let netfilter_missing: Vec<&str> = ["nft", "ipset", "iptables"]
        .into_iter()
        .filter(|p| !netfilter::available(p))
        .collect();
    let mut variants = vec![Variant::Geofence, Variant::XdpDrop];
    if netfilter::available("nft") {
        variants.push(Variant::Nft);
    }
    if netfilter::available("ipset") && netfilter::available("iptables") {
        variants.push(Variant::Ipset);
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
        generator: &generator,
        cidrs: &cidrs,
    };
    bench.measure(Variant::XdpDrop, plan.frames.min(1_000_000))?;
    let mut mpps: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    let mut offered: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    for round in 0..plan.rounds {
        for k in 0..variants.len() {
            let i = (k + round) % variants.len();
            let m = bench.measure(variants[i], plan.frames)?;
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
    let median_of = |v: Variant| {
        variants
            .iter()
            .position(|&x| x == v)
            .map(|i| median(mpps[i].clone()))
    };
    let geofence_mpps = median_of(Variant::Geofence).expect("always measured");
    // Per round, geofence ÷ the variant: both measured within seconds of each other.
    let paired = |v: Variant| -> Option<(f64, f64, f64)> {
        let g = variants.iter().position(|&x| x == Variant::Geofence)?;
        let i = variants.iter().position(|&x| x == v)?;
        let ratios: Vec<f64> = mpps[g].iter().zip(&mpps[i]).map(|(a, b)| a / b).collect();
        let lo = ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Some((median(ratios), lo, hi))
    };
    let ratio_note = |v: Variant| {
        paired(v).map_or(String::new(), |(_, lo, hi)| {
            format!(
                "; the ratio is the median of per-round ratios (each round runs every variant \
                 back to back), rounds {lo:.2}..{hi:.2}"
            )
        })
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
    let name = "veth flood: blocked UDP dropped by geofence";
    let drop_mpps = median_of(Variant::XdpDrop).expect("always measured");
    // What each frame costs beyond the bare drop, on the core that receives it.
    let over_drop = 1e3 / geofence_mpps - 1e3 / drop_mpps;
    let mut figure = Figure::new(name, geofence_mpps, "Mpps")
        .against(Variant::XdpDrop.name(), drop_mpps)
        .paired_ratio(paired(Variant::XdpDrop).expect("always measured").0)
        .goal_ratio_at_least(0.9);
    let why = if figure.met == Some(false) {
        format!(
            "; missed because geofence spends {over_drop:.0} ns per frame more than the bare \
             drop ({:.0} ns, generator and veth included, all on one core), where the goal \
             leaves {:.0} ns: about one memory read. The per-packet \"data path step\" \
             figures split the cost (session, territory, decision, counters per territory, \
             counters and sketch per rule; 5-25 ns each, no hash lookup left on this path); \
             the counting the accounting requires (per territory, per rule, distinct \
             sources) alone costs more than the goal leaves",
            1e3 / drop_mpps,
            1e3 / drop_mpps * (1.0 / 0.9 - 1.0)
        )
    } else {
        String::new()
    };
    figure = figure.note(format!(
        "{sources_note}{}{why}",
        ratio_note(Variant::XdpDrop)
    ));
    report.push(figure);
    for v in [Variant::Nft, Variant::Ipset] {
        match median_of(v) {
            Some(reference) => {
                let i = variants.iter().position(|&x| x == v).expect("measured");
                let figure = Figure::new(name, geofence_mpps, "Mpps")
                    .against(v.name(), reference)
                    .paired_ratio(paired(v).expect("measured").0)
                    .goal_ratio_at_least(3.0);
                let why = if figure.met == Some(false) {
                    format!(
                        "; missed because geofence's {:.0} ns per frame (bare drop: {:.0} ns) \
                         is {:.2} × the {:.0} ns this baseline spends; a geofence at the \
                         bare-drop floor would be {:.1} × it",
                        1e3 / geofence_mpps,
                        1e3 / drop_mpps,
                        (1e3 / geofence_mpps) / (1e3 / reference),
                        1e3 / reference,
                        drop_mpps / reference
                    )
                } else {
                    String::new()
                };
                report.push(figure.note(format!(
                    "{} prefixes in the netfilter set; frames reaching the stack behind \
                     flood_pass: {:.3} Mpps (median){}{why}",
                    cidrs.len(),
                    median(offered[i].clone()),
                    ratio_note(v)
                )));
            }
            None => report.push(
                Figure::new(format!("{name} (vs {})", v.name()), geofence_mpps, "Mpps")
                    .note("baseline skipped: nft, ipset or iptables is not installed"),
            ),
        }
    }

    // Memory, with both generations full.
    let maps = memory::maps(&relay)?;
    let bytes: u64 = maps.iter().map(|m| m.bytes).sum();
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    let largest: Vec<String> = maps
        .iter()
        .filter(|m| m.bytes >= 1 << 19)
        .map(|m| format!("{} {:.1}", m.name, mib(m.bytes)))
        .collect();
    let figure = Figure::new(
        "memory of all geofence maps, table in both generations",
        mib(bytes),
        "MiB",
    )
    .goal_value_at_most(128.0);
    // The stock LPM tries kept beside the flattened table (filled on every load while
    // kernel::load_table carries its TRANSITION step).
    let lpm_bytes: u64 = maps
        .iter()
        .filter(|m| m.lpm && m.name.starts_with("GEO"))
        .map(|m| m.bytes)
        .sum();
    let lpm_note = if lpm_bytes > 0 {
        format!(
            "; of these, {:.1} MiB are the stock LPM reference tries (GEO4_A/B, GEO6_A/B), \
             which load_table still fills on every load; without them {:.1} MiB",
            mib(lpm_bytes),
            mib(bytes - lpm_bytes)
        )
    } else {
        String::new()
    };
    let why = if figure.met == Some(false) {
        format!(
            "; missed by {:.1} MiB: every map the relay's object creates is counted; \
             not filling maps the hot path does not read would close it",
            mib(bytes) - 128.0
        )
    } else {
        String::new()
    };
    report.push(figure.note(format!(
        "memlock as the kernel reports it (program maps, pinned maps, inner maps), {} maps; \
         those of 0.5 MiB or more, in MiB: {}{lpm_note}{why}",
        maps.len(),
        largest.join(", ")
    )));

    // Load time against nft -f of the same prefixes, in a fresh namespace.
    let geofence_load = median(load.clone());
    let load_note = format!(
        "{} IPv4 + {} IPv6 prefixes, geofence attached; parse {:.3} s + open the pins, check \
         the attached program's build, fill the idle generation and switch {:.3} s (medians \
         of {} loads); nft gets the same prefixes in two interval sets without their \
         territories (less than geofence stores), by one `nft -f` in a fresh namespace",
        table.table.v4.len(),
        table.table.v6.len(),
        median(parse.clone()),
        geofence_load - median(parse),
        plan.loads
    );
    let load_name = "table load + atomic switch (geofence, wall)";
    if netfilter::available("nft") {
        let load_ns = ns::NetNs::new(&format!("gfb-load-{}", std::process::id()))?;
        let nft = netfilter::nft_load(&load_ns, &table.table)?.as_secs_f64();
        report.push(
            Figure::new(load_name, geofence_load, "s")
                .against("nft -f, same prefixes in two interval sets", nft)
                .goal_ratio_at_most(0.1)
                .note(load_note.clone()),
        );
    }
    let figure = Figure::new(load_name, geofence_load, "s").goal_value_at_most(1.0);
    let why = match (figure.met, lpm_bytes > 0) {
        (Some(false), true) => {
            "; missed: the fill (kernel::load_table) is most of it, see the split above; it \
             still writes the stock LPM reference tries too (they hold entries after the \
             loads), a syscall per prefix"
        }
        (Some(false), false) => "; missed: the fill (kernel::load_table) is most of it",
        _ => "",
    };
    report.push(figure.note(format!("{load_note}{why}")));
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

/// The sender: one 64-byte frame whose source `flood_tx` rewrites per frame from
/// `FLOOD_SOURCES`, and the test-run context pointing at the sender veth.
struct Generator {
    packet: Vec<u8>,
    ifindex: u32,
}

impl Generator {
    /// Draws [`SOURCES`] sources from `ranges` into the flood object's `FLOOD_SOURCES`.
    fn new(pair: &ns::Pair, ranges: &[(u32, u32)], flood: &mut Ebpf) -> anyhow::Result<Generator> {
        let dst_mac = pair.receiver.mac(&pair.receiver_if)?;
        let src_mac = pair.sender.mac(&pair.sender_if)?;
        let frame = |src| blocked::packet(dst_mac, src_mac, src, pair.receiver_addr, 50000);
        let mut rng = blocked::Rng::new(0x9e37_79b9_7f4a_7c15);
        let sources = blocked::sources(ranges, SOURCES as usize, &mut rng);
        let mut map: Array<_, [u8; 8]> = Array::try_from(
            flood
                .map_mut("FLOOD_SOURCES")
                .context("FLOOD_SOURCES is missing")?,
        )?;
        for (i, &src) in sources.iter().enumerate() {
            let p = frame(src);
            let mut value = [0u8; 8];
            value[..4].copy_from_slice(&p[26..30]);
            value[4..6].copy_from_slice(&p[24..26]);
            map.set(i as u32, value, 0)
                .context("writing FLOOD_SOURCES")?;
        }
        Ok(Generator {
            packet: frame(sources[0]),
            ifindex: pair.sender.ifindex(&pair.sender_if)?,
        })
    }

    /// Sends `frames` frames in one live-frames test run; its wall time.
    fn send(&self, pair: &ns::Pair, program: &Xdp, frames: u64) -> anyhow::Result<Duration> {
        let repeat = u32::try_from(frames).context("too many frames for one test run")?;
        // struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index,
        // egress_ifindex.
        let md: [u32; 6] = [0, self.packet.len() as u32, 0, self.ifindex, 0, 0];
        let ctx: Vec<u8> = md.iter().flat_map(|w| w.to_ne_bytes()).collect();
        let _inside = pair.sender.enter()?;
        let start = Instant::now();
        program
            .test_run(TestRunOptions {
                data_in: Some(&self.packet),
                ctx_in: Some(&ctx),
                repeat,
                attrs: TestRunAttrs::new().xdp_live_frames(BATCH),
                ..TestRunOptions::new()
            })
            .context("live-frames test run of flood_tx")?;
        Ok(start.elapsed())
    }
}

struct Measurement {
    dropped: u64,
    /// Frames the receiver's XDP program saw (netfilter variants), else `dropped`.
    arrived: u64,
    sent: u64,
    wall: Duration,
}

struct Bench<'a> {
    pair: &'a ns::Pair,
    pins: &'a Path,
    relay: &'a mut Kernel,
    flood: &'a mut Ebpf,
    generator: &'a Generator,
    cidrs: &'a [geo::PrefixV4],
}

impl Bench<'_> {
    fn measure(&mut self, variant: Variant, frames: u64) -> anyhow::Result<Measurement> {
        let receiver_if = self.pair.receiver_if.as_str();
        match variant {
            Variant::Geofence => {
                kernel::attach(
                    self.relay,
                    receiver_if,
                    Some(&self.pair.receiver.name),
                    AttachMode::Native,
                )?;
                let _attached = Attached {
                    pin_dir: self.pins,
                    interface: receiver_if,
                    netns: &self.pair.receiver.name,
                };
                let before = geofence_dropped(self.relay)?;
                let (wall, sent) = self.send(frames)?;
                let dropped = geofence_dropped(self.relay)? - before;
                Ok(Measurement {
                    dropped,
                    arrived: dropped,
                    sent,
                    wall,
                })
            }
            Variant::XdpDrop => {
                let _link = self.attach_flood("flood_drop")?;
                let before = self.flood_count(0)?;
                let (wall, sent) = self.send(frames)?;
                let dropped = self.flood_count(0)? - before;
                Ok(Measurement {
                    dropped,
                    arrived: dropped,
                    sent,
                    wall,
                })
            }
            Variant::Nft | Variant::Ipset => {
                let _link = self.attach_flood("flood_pass")?;
                let receiver = &self.pair.receiver;
                let before = self.flood_count(1)?;
                let (dropped, wall, sent) = if variant == Variant::Nft {
                    let nft = netfilter::Nft::install(receiver, receiver_if, self.cidrs)?;
                    let (wall, sent) = self.send(frames)?;
                    (nft.dropped()?, wall, sent)
                } else {
                    let ipset = netfilter::Ipset::install(receiver, self.cidrs)?;
                    let (wall, sent) = self.send(frames)?;
                    (ipset.dropped()?, wall, sent)
                };
                Ok(Measurement {
                    dropped,
                    arrived: self.flood_count(1)? - before,
                    sent,
                    wall,
                })
            }
        }
    }

    /// Runs the generator, then lets the receiver drain its queue before counters are read.
    fn send(&self, frames: u64) -> anyhow::Result<(Duration, u64)> {
        let program: &Xdp = self
            .flood
            .program("flood_tx")
            .context("flood_tx is missing")?
            .try_into()?;
        let wall = self.generator.send(self.pair, program, frames)?;
        std::thread::sleep(Duration::from_millis(20));
        Ok((wall, frames))
    }

    fn attach_flood(&mut self, name: &str) -> anyhow::Result<XdpLink> {
        let index = self.pair.receiver.ifindex(&self.pair.receiver_if)?;
        let program: &mut Xdp = self
            .flood
            .program_mut(name)
            .with_context(|| format!("{name} is missing"))?
            .try_into()?;
        let id = {
            let _inside = self.pair.receiver.enter()?;
            program
                .attach_to_if_index(index, XdpMode::Driver)
                .with_context(|| format!("attaching {name} to {}", self.pair.receiver_if))?
        };
        Ok(program.take_link(id)?)
    }

    fn flood_count(&self, index: u32) -> anyhow::Result<u64> {
        let map: PerCpuArray<_, u64> = PerCpuArray::try_from(
            self.flood
                .map(FLOOD_COUNT)
                .context("FLOOD_COUNT is missing")?,
        )?;
        Ok(map.get(&index, 0)?.iter().sum())
    }
}

/// Packets geofence dropped for the bench's meeting, all territories, all CPUs.
fn geofence_dropped(relay: &Kernel) -> anyhow::Result<u64> {
    let stats = kernel::read_stats(relay)?;
    Ok(stats
        .sessions
        .get(&SESSION)
        .map(|t| {
            t.values()
                .map(|c| c.packets[Verdict::Dropped as usize])
                .sum()
        })
        .unwrap_or(0))
}
