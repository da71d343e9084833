//! Programs for `cargo xtask bench`'s veth flood figures.
//!
//! - `flood_tx` is the generator, as xdp-trafficgen does it: run with BPF_PROG_TEST_RUN and
//!   `BPF_F_TEST_XDP_LIVE_FRAMES` with `ingress_ifindex` = the sender veth, every frame it
//!   returns `XDP_TX` for is transmitted out of that veth into its peer. Unlike
//!   xdp-trafficgen's one instruction, it first writes the next IPv4 source (and the header
//!   checksum that goes with it) from [`FLOOD_SOURCES`] into the frame, so consecutive
//!   frames come from different addresses: a stream of one source would keep every
//!   receiver's lookup in cache and flatter it.
//! - `flood_drop` is the floor any XDP filter pays on the receiving veth: drop, counted.
//! - `flood_pass` lets the frames up the stack (veth accepts live frames only when its XDP
//!   program is set), for the netfilter baselines; it counts what arrived.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::xdp_action,
    macros::{map, xdp},
    maps::{Array, PerCpuArray},
    programs::XdpContext,
};

/// Frames seen per CPU: [`DROPPED`] by `flood_drop`, [`PASSED`] by `flood_pass`.
#[map]
static FLOOD_COUNT: PerCpuArray<u64> = PerCpuArray::with_max_entries(2, 0);

const DROPPED: u32 = 0;
const PASSED: u32 = 1;

#[inline(always)]
fn count(index: u32) {
    if let Some(counter) = FLOOD_COUNT.get_ptr_mut(index) {
        // Per-CPU: no other writer.
        unsafe { *counter += 1 };
    }
}

/// How many sources the generator cycles through (a power of two).
const SOURCES: u32 = 4096;

/// Per source: the IPv4 source address (network order) in bytes 0..4 and the IPv4 header
/// checksum that goes with it in bytes 4..6. Userspace fills all [`SOURCES`] entries.
#[map]
static FLOOD_SOURCES: Array<[u8; 8]> = Array::with_max_entries(SOURCES, 0);

/// The generator's position in [`FLOOD_SOURCES`] (a test run stays on one CPU).
#[map]
static FLOOD_NEXT: PerCpuArray<u32> = PerCpuArray::with_max_entries(1, 0);

/// Ethernet + IPv4 without options: the frames userspace gives the test run.
const IP_CHECK: usize = 14 + 10;
const IP_SRC: usize = 14 + 12;

/// The generator: the next source into the frame, then transmit it back out of the device
/// it "arrived" on.
#[xdp]
pub fn flood_tx(ctx: XdpContext) -> u32 {
    let start = ctx.data();
    if start + IP_SRC + 4 > ctx.data_end() {
        return xdp_action::XDP_TX;
    }
    let Some(next) = FLOOD_NEXT.get_ptr_mut(0) else {
        return xdp_action::XDP_TX;
    };
    // Per-CPU and the test run does not migrate: no other writer.
    let index = unsafe {
        let index = *next;
        *next = index.wrapping_add(1);
        index
    };
    if let Some(source) = FLOOD_SOURCES.get(index & (SOURCES - 1)) {
        unsafe {
            core::ptr::write_unaligned(
                (start + IP_SRC) as *mut [u8; 4],
                [source[0], source[1], source[2], source[3]],
            );
            core::ptr::write_unaligned((start + IP_CHECK) as *mut [u8; 2], [source[4], source[5]]);
        }
    }
    xdp_action::XDP_TX
}

/// Drops everything: the floor any XDP filter pays on the receiving veth.
#[xdp]
pub fn flood_drop(_ctx: XdpContext) -> u32 {
    count(DROPPED);
    xdp_action::XDP_DROP
}

/// Passes everything up the stack, for the nftables and iptables baselines.
#[xdp]
pub fn flood_pass(_ctx: XdpContext) -> u32 {
    count(PASSED);
    xdp_action::XDP_PASS
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
