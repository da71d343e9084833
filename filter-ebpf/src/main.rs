//! The geofence XDP program: parse → find the meeting session → override or territory
//! rule → verdict → count. Anything it cannot classify passes, and is counted by reason.
#![no_std]
#![no_main]

mod count;
mod decide;
mod maps;
mod parse;
mod session;
mod territory;

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};
use filter_common::{PassReason, Verdict};

use crate::parse::Parsed;

#[xdp]
pub fn geofence(ctx: XdpContext) -> u32 {
    match try_geofence(&ctx) {
        Verdict::Dropped => xdp_action::XDP_DROP,
        Verdict::Passed | Verdict::WouldDrop => xdp_action::XDP_PASS,
    }
}

#[inline(always)]
fn try_geofence(ctx: &XdpContext) -> Verdict {
    let packet = match parse::parse(ctx) {
        Parsed::Packet(packet) => packet,
        Parsed::Pass(reason) => {
            count::pass_reason(reason);
            return Verdict::Passed;
        }
    };
    let Some(session) = session::find(&packet) else {
        count::pass_reason(PassReason::NoSession);
        return Verdict::Passed;
    };
    let territory = territory::lookup(&packet);
    let verdict = decide::decide(session, territory, &packet);
    count::session(session, territory, verdict, ctx.data_end() - ctx.data());
    verdict
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
