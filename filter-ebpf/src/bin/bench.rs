//! Programs for `cargo xtask bench`'s per-packet figures (BPF_PROG_TEST_RUN).
//!
//! One object, several programs, all sharing the relay program's pinned maps. Every variant
//! but `bench_pass` draws the packet's source address at random, on every run, from
//! `SAMPLES_V4`/`SAMPLES_V6`: addresses userspace drew from the territory table, so the
//! lookup walks the whole table instead of one cached path. The drawing has a cost of its
//! own, which `bench_draw` measures alone so that userspace can subtract it:
//!
//! | program | does |
//! |---|---|
//! | `bench_pass` | nothing: the XDP_PASS floor |
//! | `bench_draw` | draws a sample, passes |
//! | `bench_sample` | draws a sample into the frame (to check the sets, not timed) |
//! | `bench_flat` | draws a sample as the source, classifies with the relay's lookup |
//! | `bench_lpm` | the same with the stock LPM trie lookup (the reference) |
//! | `bench_no_session` | the same as `bench_flat`; userspace sends it a packet no meeting has |
//! | `stage_parse` | draws, parses |
//! | `stage_session` | … and finds the session |
//! | `stage_territory` | … and looks the territory up |
//! | `stage_decide` | … and decides |
//! | `stage_count_session` | … and counts per (session, territory); `bench_flat` adds the per-rule counters and sketch |
//! | `flood_unaccounted` | for the veth flood, not timed here: the relay's classification of the frame as it came (no drawn source), nothing counted but its drops, in one per-CPU counter as the bare drop counts its own |
//! | `flood_parsed` | for the veth flood, not timed here: the relay's parse alone, its drops counted the same way |
//!
//! The `stage_` programs split the data path's cost: each does one step more than the one
//! before, and returns something that depends on its last step, so that none is optimised
//! away.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::xdp_action,
    helpers::bpf_get_prandom_u32,
    macros::{map, xdp},
    maps::{Array, PerCpuArray},
    programs::XdpContext,
};
use filter_common::{
    Address, Verdict,
    bench_samples::{SET_LEN, V4_PER_LINE},
    maps::{AddressWords, v4_mapped},
    proto,
};
use filter_ebpf::{
    action, classify, classify_watched, count, decide,
    parse::{self, Packet, Parsed},
    session, territory,
};

/// IPv4 sample sets (full table, subset, blocked territory) and IPv6 ones (full, subset).
const SETS_V4: u32 = 3;
const SETS_V6: u32 = 2;
/// [`SAMPLE_SET`]'s family for the IPv6 sets.
const FAMILY_V6: u32 = 1;

/// `SETS_V4` sets of `SET_LEN` IPv4 sources (network order), `V4_PER_LINE` to an element.
/// Filled by userspace; not pinned, it belongs to one bench run. Why IPv4 sources are stored
/// compactly: `filter_common::bench_samples`.
#[map]
static SAMPLES_V4: Array<[[u8; 4]; V4_PER_LINE as usize]> =
    Array::with_max_entries(SET_LEN / V4_PER_LINE * SETS_V4, 0);

/// `SETS_V6` sets of `SET_LEN` IPv6 sources.
#[map]
static SAMPLES_V6: Array<Address> = Array::with_max_entries(SET_LEN * SETS_V6, 0);

/// The set the next run draws from: its index within its family, and the family (0 for
/// IPv4, [`FAMILY_V6`]).
#[map]
static SAMPLE_SET: Array<[u32; 2]> = Array::with_max_entries(1, 0);

/// A source address drawn at random from the current set (IPv4 ones mapped).
#[inline(always)]
fn draw() -> Option<Address> {
    let [set, family] = SAMPLE_SET.get(0).copied().unwrap_or([0, 0]);
    let index = unsafe { bpf_get_prandom_u32() } & (SET_LEN - 1);
    if family == FAMILY_V6 {
        return SAMPLES_V6.get(set % SETS_V6 * SET_LEN + index).copied();
    }
    let line = SAMPLES_V4.get(set % SETS_V4 * (SET_LEN / V4_PER_LINE) + index / V4_PER_LINE)?;
    Some(v4_mapped(line[(index % V4_PER_LINE) as usize]))
}

/// Writes a drawn source into the parsed packet (before the session and territory lookups).
#[inline(always)]
fn draw_source(packet: &mut Packet) {
    if let Some(sample) = draw() {
        packet.src = AddressWords::of(&sample);
    }
}

/// The reference floor: a program that does nothing but pass.
#[xdp]
pub fn bench_pass(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

/// The drawing alone. A sample of all zeros (a set userspace did not fill: it never draws
/// `::` or `0.0.0.0`) aborts, which both keeps the read of the sample and lets userspace
/// check the sets.
#[xdp]
pub fn bench_draw(_ctx: XdpContext) -> u32 {
    match draw() {
        Some(sample) if u128::from_ne_bytes(sample) != 0 && sample != v4_mapped([0; 4]) => {
            xdp_action::XDP_PASS
        }
        _ => xdp_action::XDP_ABORTED,
    }
}

/// Writes a drawn source over the frame's first 16 bytes, so that userspace can check that
/// what the programs draw is what it stored.
#[xdp]
pub fn bench_sample(ctx: XdpContext) -> u32 {
    let (start, end) = (ctx.data(), ctx.data_end());
    if start + 16 > end {
        return xdp_action::XDP_ABORTED;
    }
    let Some(sample) = draw() else {
        return xdp_action::XDP_ABORTED;
    };
    // SAFETY: the 16 bytes at `start` were checked to lie inside the frame.
    unsafe { core::ptr::write_unaligned(start as *mut Address, sample) };
    xdp_action::XDP_PASS
}

/// Draw + the whole relay data path with its territory lookup.
#[xdp]
pub fn bench_flat(ctx: XdpContext) -> u32 {
    action(classify(&ctx, draw_source, territory::lookup))
}

/// `bench_flat` without the monitor's switch: what reading it costs when no monitor runs.
#[xdp]
pub fn bench_unwatched(ctx: XdpContext) -> u32 {
    action(classify_watched::<false>(
        &ctx,
        draw_source,
        territory::lookup,
    ))
}

/// Draw + the whole data path with the stock LPM trie lookup.
#[xdp]
pub fn bench_lpm(ctx: XdpContext) -> u32 {
    action(classify(&ctx, draw_source, territory::lookup_lpm))
}

/// Draw + the data path for a packet of no meeting (userspace sends one to a port that no
/// endpoint has): it stops after the session lookup.
#[xdp]
pub fn bench_no_session(ctx: XdpContext) -> u32 {
    action(classify(&ctx, draw_source, territory::lookup))
}

/// The parsed packet with a drawn source, or `None` for a packet the parser passes.
#[inline(always)]
fn parsed(ctx: &XdpContext) -> Option<Packet> {
    match parse::parse(ctx) {
        Parsed::Packet(mut packet) => {
            packet.active = filter_ebpf::active();
            draw_source(&mut packet);
            Some(packet)
        }
        Parsed::Unplaced(_) | Parsed::Pass(_) => None,
    }
}

/// Passes what it could parse; a frame it could not is a bench error, aborted.
#[xdp]
pub fn stage_parse(ctx: XdpContext) -> u32 {
    match parsed(&ctx) {
        Some(_) => xdp_action::XDP_PASS,
        None => xdp_action::XDP_ABORTED,
    }
}

/// The parsed packet with a drawn source, and its session; `None` aborts the stage.
#[inline(always)]
fn with_session(ctx: &XdpContext) -> Option<(Packet, session::Session)> {
    let packet = parsed(ctx)?;
    match session::find(ctx, &packet) {
        session::Found::Session(session) => Some((packet, session)),
        session::Found::Unbound(_) | session::Found::Nothing => None,
    }
}

#[xdp]
pub fn stage_session(ctx: XdpContext) -> u32 {
    match with_session(&ctx) {
        Some(_) => xdp_action::XDP_PASS,
        None => xdp_action::XDP_ABORTED,
    }
}

#[xdp]
pub fn stage_territory(ctx: XdpContext) -> u32 {
    let Some((packet, _)) = with_session(&ctx) else {
        return xdp_action::XDP_ABORTED;
    };
    if territory::lookup(&packet) == filter_common::TERRITORY_UNKNOWN {
        xdp_action::XDP_DROP
    } else {
        xdp_action::XDP_PASS
    }
}

#[xdp]
pub fn stage_decide(ctx: XdpContext) -> u32 {
    let Some((packet, session)) = with_session(&ctx) else {
        return xdp_action::XDP_ABORTED;
    };
    let territory = territory::lookup(&packet);
    action(decide::decide(session, territory, &packet).verdict)
}

#[xdp]
pub fn stage_count_session(ctx: XdpContext) -> u32 {
    let Some((packet, session)) = with_session(&ctx) else {
        return xdp_action::XDP_ABORTED;
    };
    let territory = territory::lookup(&packet);
    let verdict = decide::decide(session, territory, &packet).verdict;
    count::session(session.id, territory, verdict, ctx.data_end() - ctx.data());
    action(verdict)
}

/// Counts a drop in the one per-CPU slot of `counter`, as the bare drop counts its own.
#[inline(always)]
fn count_drop(counter: &PerCpuArray<u64>) {
    if let Some(slot) = counter.get_ptr_mut(0) {
        // SAFETY: a per-CPU slot; no other CPU writes it.
        unsafe { *slot += 1 };
    }
}

/// Frames `flood_unaccounted` dropped, per CPU.
#[map]
static UNACCOUNTED_DROPS: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// What geofence's drops in the flood would cost if it kept no account of them: the same
/// parse, session, territory and decision, and one per-CPU count of the drops (what
/// the bare drop pays too), so that the flood can measure the classification's own floor.
#[xdp]
pub fn flood_unaccounted(ctx: XdpContext) -> u32 {
    let Parsed::Packet(packet) = parse::parse(&ctx) else {
        return xdp_action::XDP_PASS;
    };
    let session::Found::Session(session) = session::find(&ctx, &packet) else {
        return xdp_action::XDP_PASS;
    };
    let territory = territory::lookup(&packet);
    let verdict = decide::decide(session, territory, &packet).verdict;
    if verdict == Verdict::Dropped {
        count_drop(&UNACCOUNTED_DROPS);
    }
    action(verdict)
}

/// Frames `flood_parsed` dropped, per CPU.
#[map]
static PARSED_DROPS: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// What reading the headers costs in the flood: the relay's parse, no table consulted, and
/// a drop of what parsed as UDP, counted as the bare drop counts its own. Comparing the
/// addresses keeps both of them read.
#[xdp]
pub fn flood_parsed(ctx: XdpContext) -> u32 {
    let Parsed::Packet(packet) = parse::parse(&ctx) else {
        return xdp_action::XDP_PASS;
    };
    if packet.proto != proto::UDP || packet.src == packet.dst {
        return xdp_action::XDP_PASS;
    }
    count_drop(&PARSED_DROPS);
    xdp_action::XDP_DROP
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
