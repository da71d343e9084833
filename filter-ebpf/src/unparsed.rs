//! The guard for packets the parser cannot place in a session (see
//! `filter_common::unparsed`): dropped when a guard of their destination, or the guard of
//! wildcard endpoints and mux ports, blocks their source.

use aya_ebpf::{maps::lpm_trie::Key, programs::XdpContext};
use filter_common::{
    OverrideKey, TerritoryId, Verdict,
    maps::OVERRIDE_SESSION_BITS,
    unparsed::{ANY, Guard, PREFIX_DROP},
};

use crate::{
    count,
    maps::{UNPARSED_GUARD, UNPARSED_PREFIX},
    parse::{Packet, Unplaced},
    probe,
};

/// Whether `guard` blocks the source: its longest prefix entry decides (an exception all
/// its meetings grant, or a drop), else its territories.
#[inline(always)]
fn blocks(guard: &Guard, unplaced: &Unplaced, territory: TerritoryId) -> bool {
    if guard.scope != 0 {
        let key = OverrideKey {
            session_be: guard.scope.to_be_bytes(),
            addr: unplaced.src.octets(),
        };
        if let Some(&action) = UNPARSED_PREFIX.get(&Key::new(OVERRIDE_SESSION_BITS + 128, key)) {
            return action == PREFIX_DROP;
        }
    }
    guard.blocks(territory)
}

/// The verdict on an unplaceable packet, counted: dropped by a guard (under the reason it
/// could not be parsed), else passed for that reason.
#[inline(always)]
pub fn judge(
    ctx: &XdpContext,
    unplaced: Unplaced,
    territory_of: impl FnOnce(&Packet) -> TerritoryId,
) -> Option<Verdict> {
    // Located whether or not a guard exists: this path is rare, and testing both lookups
    // at once compiles to arithmetic on two pointers, which the verifier refuses.
    let territory = territory_of(&Packet {
        proto: 0,
        is_v6: unplaced.is_v6,
        src: unplaced.src,
        dst: unplaced.dst,
        src_port: 0,
        dst_port: 0,
        payload: 0,
        active: crate::active(),
    });
    let mut blocked = false;
    // SAFETY: values are plain data copied out at once.
    if let Some(guard) = unsafe { UNPARSED_GUARD.get(&unplaced.dst.octets()) } {
        blocked = blocks(guard, &unplaced, territory);
    }
    if !blocked {
        // SAFETY: as above.
        if let Some(guard) = unsafe { UNPARSED_GUARD.get(&ANY) } {
            blocked = blocks(guard, &unplaced, territory);
        }
    }
    if !blocked {
        return None;
    }
    if !probe::answered_unplaced(ctx, unplaced.reason, territory) {
        count::unplaced_blocked(unplaced.reason);
    }
    Some(Verdict::Dropped)
}
