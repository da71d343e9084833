//! One flood measurement: the generator sends frames into the receiving veth, where one
//! variant (geofence, its classification without accounting, its parsing alone, the bare
//! drop, or a netfilter baseline behind `flood_pass`) drops them and its own counters say
//! how many.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use aya::{
    Ebpf,
    maps::{Array, PerCpuArray},
    programs::{TestRun as _, TestRunAttrs, TestRunOptions, Xdp, XdpMode, xdp::XdpLink},
};
use filter_common::Verdict;
use geofence::kernel::{self, AttachMode, Kernel};

use super::{blocked, netfilter, ns};

/// The bench meeting's session id.
pub(super) const SESSION: u32 = 1;
const FLOOD_COUNT: &str = "FLOOD_COUNT";
const UNACCOUNTED_DROPS: &str = "UNACCOUNTED_DROPS";
const PARSED_DROPS: &str = "PARSED_DROPS";
/// The bench object's program that classifies as geofence does and counts only drops.
pub(super) const UNACCOUNTED: &str = "flood_unaccounted";
/// The bench object's program that parses as geofence does and drops what parsed.
pub(super) const PARSED: &str = "flood_parsed";
/// Sources `flood_tx` cycles through (its `FLOOD_SOURCES`).
pub(super) const SOURCES: u32 = 4096;
/// Frames per live-frames batch (the kernel's default, NAPI_POLL_WEIGHT).
pub(super) const BATCH: u32 = 64;

/// What drops the flood on the receiving veth.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Variant {
    Geofence,
    /// The bench object's `flood_unaccounted`: geofence's classification, no counting.
    Unaccounted,
    /// The bench object's `flood_parsed`: the headers read, no table consulted.
    Parsed,
    XdpDrop,
    Nft,
    Ipset,
}

impl Variant {
    pub(super) fn name(self) -> &'static str {
        match self {
            Variant::Geofence => "geofence",
            Variant::Unaccounted => "geofence's classification, no accounting",
            Variant::Parsed => "geofence's header parsing alone",
            Variant::XdpDrop => "bare XDP_DROP",
            Variant::Nft => "nftables netdev ingress + interval set",
            Variant::Ipset => "ipset hash:net + iptables raw",
        }
    }
}

/// geofence attached to the receiving veth for one measurement; detached on drop.
pub(super) struct Attached<'a> {
    pub(super) pin_dir: &'a Path,
    pub(super) interface: &'a str,
    pub(super) netns: &'a str,
}

impl Drop for Attached<'_> {
    fn drop(&mut self) {
        if let Err(e) = kernel::detach(self.pin_dir, self.interface, Some(self.netns)) {
            eprintln!("warning: detaching geofence from {}: {e:#}", self.interface);
        }
    }
}

/// The sender: one 64-byte frame whose source `flood_tx` rewrites per frame from
/// `FLOOD_SOURCES`, and the test-run context pointing at the sender veth.
pub(super) struct Generator {
    packet: Vec<u8>,
    ifindex: u32,
}

impl Generator {
    /// Draws [`SOURCES`] sources from `ranges` into the flood object's `FLOOD_SOURCES`.
    pub(super) fn new(
        pair: &ns::Pair,
        ranges: &[(u32, u32)],
        flood: &mut Ebpf,
    ) -> anyhow::Result<Generator> {
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

pub(super) struct Measurement {
    pub(super) dropped: u64,
    /// Frames the receiver's XDP program saw (netfilter variants), else `dropped`.
    pub(super) arrived: u64,
    pub(super) sent: u64,
    pub(super) wall: Duration,
}

pub(super) struct Bench<'a> {
    pub(super) pair: &'a ns::Pair,
    pub(super) pins: &'a Path,
    pub(super) relay: &'a mut Kernel,
    pub(super) flood: &'a mut Ebpf,
    /// The bench object, its maps the relay's pins, [`UNACCOUNTED`] loaded.
    pub(super) bench: &'a mut Ebpf,
    pub(super) generator: &'a Generator,
    pub(super) cidrs: &'a [ipnet::Ipv4Net],
}

impl Bench<'_> {
    pub(super) fn measure(&mut self, variant: Variant, frames: u64) -> anyhow::Result<Measurement> {
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
            Variant::Unaccounted => {
                self.dropping(Object::Bench, UNACCOUNTED, UNACCOUNTED_DROPS, frames)
            }
            Variant::Parsed => self.dropping(Object::Bench, PARSED, PARSED_DROPS, frames),
            Variant::XdpDrop => self.dropping(Object::Flood, "flood_drop", FLOOD_COUNT, frames),
            Variant::Nft | Variant::Ipset => {
                let _link = attach(self.flood, self.pair, "flood_pass")?;
                let receiver = &self.pair.receiver;
                let before = per_cpu_sum(self.flood, FLOOD_COUNT, 1)?;
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
                    arrived: per_cpu_sum(self.flood, FLOOD_COUNT, 1)? - before,
                    sent,
                    wall,
                })
            }
        }
    }

    fn object(&mut self, object: Object) -> &mut Ebpf {
        match object {
            Object::Flood => self.flood,
            Object::Bench => self.bench,
        }
    }

    /// A flood into `program` of `object`, which counts its drops in entry 0 of `counter`.
    fn dropping(
        &mut self,
        object: Object,
        program: &str,
        counter: &str,
        frames: u64,
    ) -> anyhow::Result<Measurement> {
        let pair = self.pair;
        let _link = attach(self.object(object), pair, program)?;
        let before = per_cpu_sum(self.object(object), counter, 0)?;
        let (wall, sent) = self.send(frames)?;
        let dropped = per_cpu_sum(self.object(object), counter, 0)? - before;
        Ok(Measurement {
            dropped,
            arrived: dropped,
            sent,
            wall,
        })
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
}

/// Which object a program is in: the flood's own, or the bench object over the relay's
/// pinned maps.
#[derive(Clone, Copy)]
enum Object {
    Flood,
    Bench,
}

/// Attaches `object`'s program `name` to the receiving veth; detached when the link drops.
fn attach(object: &mut Ebpf, pair: &ns::Pair, name: &str) -> anyhow::Result<XdpLink> {
    let index = pair.receiver.ifindex(&pair.receiver_if)?;
    let program: &mut Xdp = object
        .program_mut(name)
        .with_context(|| format!("{name} is missing"))?
        .try_into()?;
    let id = {
        let _inside = pair.receiver.enter()?;
        program
            .attach_to_if_index(index, XdpMode::Driver)
            .with_context(|| format!("attaching {name} to {}", pair.receiver_if))?
    };
    Ok(program.take_link(id)?)
}

/// Entry `index` of `object`'s per-CPU counter array `map`, summed over CPUs.
fn per_cpu_sum(object: &Ebpf, map: &str, index: u32) -> anyhow::Result<u64> {
    let counters: PerCpuArray<_, u64> = PerCpuArray::try_from(
        object
            .map(map)
            .with_context(|| format!("{map} is missing"))?,
    )?;
    Ok(counters.get(&index, 0)?.iter().sum())
}

/// Packets geofence dropped for the bench's meeting, all territories, all CPUs.
fn geofence_dropped(relay: &Kernel) -> anyhow::Result<u64> {
    let stats = kernel::read_stats(relay)?;
    Ok(stats.session_total(SESSION, Verdict::Dropped).0)
}
