//! The geofence XDP program for relays.
#![no_std]
#![no_main]

use aya_ebpf::{macros::xdp, programs::XdpContext};

#[xdp]
pub fn geofence(ctx: XdpContext) -> u32 {
    let verdict = filter_ebpf::classify(&ctx, |_| {}, filter_ebpf::territory::lookup);
    filter_ebpf::action(verdict)
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
