//! The geofence data path: parse → find the meeting session → override or territory
//! rule → verdict → count. Anything it cannot classify passes, and is counted by reason,
//! unless the stack would deliver it and a guard of its destination blocks its source.
//!
//! The XDP entry points live in the binaries: `geofence` (src/main.rs) for relays, and the
//! bench programs (src/bin/) that measure this same code.
#![no_std]
#![expect(
    clippy::needless_borrows_for_generic_args,
    reason = "map keys and values are passed by reference so the program never copies them"
)]

pub mod count;
pub mod decide;
pub mod maps;
pub mod monitor;
pub mod parse;
pub mod probe;
pub mod session;
pub mod stun;
pub mod territory;
pub mod unparsed;

use aya_ebpf::{bindings::xdp_action, programs::XdpContext};
use filter_common::{
    PassReason, TerritoryId, Verdict,
    mux::{MUX_SESSION, MuxEvent},
};

use crate::parse::{Packet, Parsed};

/// The verdict for the packet in `ctx`, counted. `adjust` sees the parsed packet before it
/// is classified: a no-op on relays; benches use it to vary the source address.
/// `territory_of` is [`territory::lookup`] on relays; benches pass the reference too.
#[inline(always)]
pub fn classify(
    ctx: &XdpContext,
    adjust: impl FnOnce(&mut Packet),
    territory_of: impl FnOnce(&Packet) -> TerritoryId,
) -> Verdict {
    classify_watched::<true>(ctx, adjust, territory_of)
}

/// [`classify`], with the monitor's switch read (`WATCHED`) or not: the bench measures
/// what the switch costs when no monitor runs as the difference of the two.
#[inline(always)]
pub fn classify_watched<const WATCHED: bool>(
    ctx: &XdpContext,
    adjust: impl FnOnce(&mut Packet),
    territory_of: impl FnOnce(&Packet) -> TerritoryId,
) -> Verdict {
    let mut packet = match parse::parse(ctx) {
        Parsed::Packet(packet) => packet,
        Parsed::Unplaced(unplaced) => {
            let reason = unplaced.reason;
            return unparsed::judge(ctx, unplaced, territory_of)
                .unwrap_or_else(|| passed(ctx, reason));
        }
        Parsed::Pass(reason) => return passed(ctx, reason),
    };
    packet.active = active();
    adjust(&mut packet);
    let found = match session::find(ctx, &packet) {
        session::Found::Session(found) => found,
        session::Found::Unbound(generation) => {
            return unbound(ctx, &packet, generation, territory_of);
        }
        session::Found::Nothing => return passed(ctx, PassReason::NoSession),
    };
    let session = found.id;
    let territory = territory_of(&packet);
    let decision = decide::decide(found, territory, &packet);
    // `geofence explain` probes are answered in their metadata, never counted.
    if !probe::answered_session(ctx, session, territory, decision.verdict, decision.slot) {
        let bytes = ctx.data_end() - ctx.data();
        count::session(session, territory, decision.verdict, bytes);
        count::rule(session, decision.slot, packet.src, bytes);
        if WATCHED {
            monitor::decision(found, territory, decision, packet.src);
        }
    }
    decision.verdict
}

/// A packet on a mux port that no meeting has bound (or whose binding was evicted or went
/// idle): dropped if its territory is blocked on some meeting, so that evicting one's own
/// binding is no way around a rule; else passed, as the SFU refuses it itself.
#[inline(always)]
fn unbound(
    ctx: &XdpContext,
    packet: &Packet,
    generation: u32,
    territory_of: impl FnOnce(&Packet) -> TerritoryId,
) -> Verdict {
    let territory = territory_of(packet);
    // The union of the generation the session lookup used.
    let blocked = maps::MUX_BLOCKED
        .get(generation & 1)
        .is_some_and(|r| r.blocks(territory));
    if !blocked {
        return passed(ctx, PassReason::Unbound);
    }
    let slot = u32::from(filter_common::probe::RULE_SLOT_NONE);
    if !probe::answered_session(ctx, MUX_SESSION, territory, Verdict::Dropped, slot) {
        count::mux(MuxEvent::UnboundBlocked);
    }
    Verdict::Dropped
}

/// `SESSION_ACTIVE`'s entry: which generation of the session maps and of the territory
/// table a packet uses. Read once per packet, so one store switches both.
#[inline(always)]
pub fn active() -> u32 {
    maps::SESSION_ACTIVE.get(0).copied().unwrap_or(0)
}

/// A packet that passes unclassified, counted by why (unless it is an `explain` probe).
#[inline(always)]
fn passed(ctx: &XdpContext, reason: PassReason) -> Verdict {
    if !probe::answered_pass(ctx, reason) {
        count::pass_reason(reason);
    }
    Verdict::Passed
}

/// The XDP action of a verdict: a would-drop passes.
#[inline(always)]
pub fn action(verdict: Verdict) -> u32 {
    match verdict {
        Verdict::Dropped => xdp_action::XDP_DROP,
        Verdict::Passed | Verdict::WouldDrop => xdp_action::XDP_PASS,
    }
}
