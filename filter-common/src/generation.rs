//! Two generations of the session maps, and the one switch between them.
//!
//! Everything a change can alter about which meeting a packet belongs to and what its
//! rules say exists twice: the port table, address-bound endpoints, policy flows, the
//! policy index, the prefix overrides and the bitmaps beside them, the union of blocked
//! territories and the live sessions. `SESSION_ACTIVE` says which generation packets use;
//! the program reads it once per packet and reads every session map in that generation.
//! A change is written whole into the other generation, then `SESSION_ACTIVE` is switched
//! with one store, so a packet sees the whole old state or the whole new one, and a writer
//! killed at any point leaves the old state in force until the next change.
//!
//! How each map holds its two generations, chosen to keep memory and the program small:
//! - arrays indexed by session (`POLICY_INDEX`, `OVERRIDE_SESSIONS`, `LIVE_SESSIONS`) and
//!   the `OVERRIDES` trie use the session's [`keyed`] id: generation 1 sits above every
//!   session id of generation 0;
//! - `PORTS` and `MUX_BLOCKED` hold one table per generation, one after the other;
//! - an `ENDPOINTS` value holds both generations' sessions, 16 bits each ([`endpoint`]),
//!   so the hash needs no more entries than endpoints;
//! - policy flows sit in `FLOWS` under their generation's [`flow_tag`]; flows the program
//!   learns and the binding API binds carry no tag and apply while their session is live
//!   in the packet's generation.

use crate::maps::capacity::MAX_SESSIONS;

/// Generations of the session maps.
pub const COUNT: u32 = 2;

/// The generation packets use, from `SESSION_ACTIVE`'s one entry (masked, so any value
/// names a generation).
#[inline(always)]
pub const fn active(entry: u32) -> u32 {
    entry & (COUNT - 1)
}

/// The territory table generation (0 = A, 1 = B) packets use, from the same entry: bit 1.
/// One word holds both switches so that a change loading a table and changing rules (an
/// `apply`) takes effect with one store.
#[inline(always)]
pub const fn geo(entry: u32) -> u32 {
    (entry >> 1) & 1
}

/// `SESSION_ACTIVE`'s entry for session generation `sessions` and table generation `geo`.
#[inline(always)]
pub const fn entry(sessions: u32, geo: u32) -> u32 {
    (sessions & (COUNT - 1)) | ((geo & 1) << 1)
}

/// The generation a change is written into while `active` is in use.
#[inline(always)]
pub const fn other(active: u32) -> u32 {
    (active + 1) & (COUNT - 1)
}

/// `session`'s id in the maps indexed by session, in `generation`; `None` beyond the
/// session ids or the generations.
#[inline(always)]
pub const fn keyed(generation: u32, session: u32) -> Option<u32> {
    if generation >= COUNT || session >= MAX_SESSIONS {
        return None;
    }
    Some(generation * MAX_SESSIONS + session)
}

/// The generation and session of a [`keyed`] id.
#[inline(always)]
pub const fn unkeyed(id: u32) -> Option<(u32, u32)> {
    if id >= COUNT * MAX_SESSIONS {
        return None;
    }
    Some((id / MAX_SESSIONS, id % MAX_SESSIONS))
}

/// `LIVE_SESSIONS`: a bit per session id per generation, set for every meeting of that
/// generation's state. Flows learned from STUN or bound by the API apply only while their
/// session is live, so that a meeting removed by a change loses them at the switch.
pub mod live {
    /// Words of the bitmap, both generations.
    pub const WORDS: u32 = super::COUNT * super::MAX_SESSIONS / 64;

    /// The word and bit of a [`super::keyed`] id.
    #[inline(always)]
    pub const fn bit(keyed: u32) -> Option<(u32, u64)> {
        if keyed >= super::COUNT * super::MAX_SESSIONS {
            return None;
        }
        Some((keyed / 64, 1u64 << (keyed % 64)))
    }
}

/// An `ENDPOINTS` value: generation 0's session in the low 16 bits, generation 1's in the
/// high 16; 0 where the endpoint does not exist in that generation.
pub mod endpoint {
    const BITS: u32 = 16;
    const MASK: u32 = (1 << BITS) - 1;

    /// The endpoint's session in `generation`; 0: none.
    #[inline(always)]
    pub const fn session(value: u32, generation: u32) -> u32 {
        (value >> (BITS * (generation & 1))) & MASK
    }

    /// `value` with `session` (0: none) in `generation`.
    #[inline(always)]
    pub const fn with(value: u32, generation: u32, session: u32) -> u32 {
        let shift = BITS * (generation & 1);
        (value & !(MASK << shift)) | ((session & MASK) << shift)
    }

    // Every session id and the mux endpoint's fit 16 bits.
    const _: () = assert!(crate::maps::capacity::MAX_SESSIONS <= 1 << BITS);
    const _: () = assert!(crate::mux::MUX_SESSION <= MASK);
}

/// The first byte of a policy flow's `FlowKey` padding: its generation plus one. Flows
/// learned or bound by the API keep 0 there, so the two kinds never share a key.
#[inline(always)]
pub const fn flow_tag(generation: u32) -> u8 {
    (generation & 1) as u8 + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_ids_of_the_two_generations_never_meet() {
        assert_eq!(keyed(0, 5), Some(5));
        assert_eq!(keyed(1, 5), Some(MAX_SESSIONS + 5));
        assert_eq!(keyed(2, 5), None);
        assert_eq!(keyed(0, MAX_SESSIONS), None);
        assert_eq!(unkeyed(MAX_SESSIONS + 5), Some((1, 5)));
        assert_eq!(unkeyed(COUNT * MAX_SESSIONS), None);
        assert_eq!(
            live::bit(MAX_SESSIONS + 65),
            Some((MAX_SESSIONS / 64 + 1, 2))
        );
        assert_eq!(live::bit(COUNT * MAX_SESSIONS), None);
        assert_eq!((other(0), other(1), active(7)), (1, 0, 1));
    }

    #[test]
    fn an_endpoint_value_holds_each_generation_apart() {
        let v = endpoint::with(0, 0, 7);
        let v = endpoint::with(v, 1, crate::mux::MUX_SESSION);
        assert_eq!(endpoint::session(v, 0), 7);
        assert_eq!(endpoint::session(v, 1), crate::mux::MUX_SESSION);
        let v = endpoint::with(v, 0, 0);
        assert_eq!(
            (endpoint::session(v, 0), endpoint::session(v, 1)),
            (0, 0xffff)
        );
        assert_eq!(endpoint::with(v, 1, 0), 0);
        assert_ne!(flow_tag(0), flow_tag(1));
        assert_ne!(flow_tag(0), 0);
    }
}
