//! Programs for `cargo xtask bench`'s per-packet figures (BPF_PROG_TEST_RUN).
//!
//! One object, several programs, all sharing the relay program's pinned maps. Every variant
//! but `bench_pass` draws the packet's source address at random, on every run, from
//! `SAMPLES`: addresses userspace drew from the territory table, so the lookup walks the
//! whole table instead of one cached path. The drawing has a cost of its own, which
//! `bench_draw` measures alone so that userspace can subtract it:
//!
//! | program | does |
//! |---|---|
//! | `bench_pass` | nothing: the XDP_PASS floor |
//! | `bench_draw` | draws a sample, passes |
//! | `bench_flat` | draws a sample as the source, classifies with the relay's lookup |
//! | `bench_lpm` | the same with the stock LPM trie lookup (the reference) |
//! | `bench_no_session` | the same as `bench_flat`; userspace sends it a packet no meeting has |
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::xdp_action,
    helpers::bpf_get_prandom_u32,
    macros::{map, xdp},
    maps::Array,
    programs::XdpContext,
};
use filter_common::Address;
use filter_ebpf::{action, classify, parse::Packet, territory};

/// Samples per set; a power of two, so that a random index is one mask.
const SET_LEN: u32 = 1 << 16;
/// Sample sets: userspace keeps one per family and table (IPv4/IPv6 × full/subset).
const SETS: u32 = 4;

/// `SETS` sets of `SET_LEN` source addresses (16 bytes, IPv4 mapped), filled by userspace.
/// Not pinned: it belongs to one bench run.
#[map]
static SAMPLES: Array<Address> = Array::with_max_entries(SET_LEN * SETS, 0);

/// Index 0: the set the next run draws from.
#[map]
static SAMPLE_SET: Array<u32> = Array::with_max_entries(1, 0);

/// A source address drawn at random from the current set.
#[inline(always)]
fn draw() -> Option<&'static Address> {
    let set = SAMPLE_SET.get(0).copied().unwrap_or(0) % SETS;
    let index = set * SET_LEN + (unsafe { bpf_get_prandom_u32() } & (SET_LEN - 1));
    SAMPLES.get(index)
}

/// Writes a drawn source into the parsed packet (before the session and territory lookups).
#[inline(always)]
fn draw_source(packet: &mut Packet) {
    if let Some(sample) = draw() {
        packet.src = *sample;
    }
}

/// The reference floor: a program that does nothing but pass.
#[xdp]
pub fn bench_pass(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

/// The drawing alone. A sample of all zeros (a set userspace did not fill: it never draws
/// `::`) aborts, which both keeps the read of the sample and lets userspace check the sets.
#[xdp]
pub fn bench_draw(_ctx: XdpContext) -> u32 {
    match draw() {
        Some(sample) if u128::from_ne_bytes(*sample) != 0 => xdp_action::XDP_PASS,
        _ => xdp_action::XDP_ABORTED,
    }
}

/// Draw + the whole relay data path with its territory lookup.
#[xdp]
pub fn bench_flat(ctx: XdpContext) -> u32 {
    action(classify(&ctx, draw_source, territory::lookup))
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

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
