//! Packets the parser cannot place in a session, but whose addresses it read.
//!
//! More IPv6 extension headers than the walk follows, or a first fragment cut before its
//! ports: the relay's own stack still delivers such a datagram (it walks any chain, and
//! reassembles fragments), so passing it would let a blocked source around every rule.
//! The source and the destination are known, though. Each local address that meetings'
//! endpoints use has a guard: the union of what the enforcing rules in force of those
//! meetings block, by territory and by prefix, less the exceptions all of them grant. The
//! guard under [`ANY`] covers wildcard endpoints and mux ports. A packet whose source a
//! guard of its destination (or the [`ANY`] guard) blocks is dropped and counted by the
//! reason it could not be parsed; everything else passes as before.
//!
//! Non-first fragments carry no source the guard could not also find in their first
//! fragment, which it judges; without that one they are never reassembled.

use crate::{Address, territory::TERRITORY_WORDS};

/// The `UNPARSED_GUARD` key of the guard for wildcard endpoints and mux ports: `::`,
/// which no packet the stack delivers has as its destination.
pub const ANY: Address = [0; 16];

/// Local addresses with a guard of their own, and room for the [`ANY`] guard.
pub const GUARDS: u32 = 1024;
/// Prefix entries of all guards together (an LPM trie: not allocated until filled).
pub const PREFIXES: u32 = 65_536;

/// Values of `UNPARSED_PREFIX`: what a guard's prefix says of a source in it.
pub const PREFIX_ALLOW: u32 = 1;
pub const PREFIX_DROP: u32 = 2;

/// The value of `UNPARSED_GUARD`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Guard {
    /// Bit `id` set: territory `id` is blocked by some meeting of this address.
    pub blocked: [u64; TERRITORY_WORDS],
    /// The leading 32 bits (big-endian) of this guard's keys in `UNPARSED_PREFIX`
    /// (an [`crate::OverrideKey`] with the scope in place of the session); 0 = it has none.
    pub scope: u32,
    pub _pad: u32,
}

impl Guard {
    pub const EMPTY: Guard = Guard {
        blocked: [0; TERRITORY_WORDS],
        scope: 0,
        _pad: 0,
    };

    #[inline(always)]
    pub fn blocks(&self, territory: crate::TerritoryId) -> bool {
        let t = territory as usize;
        // The mask keeps the index provably inside the array for the verifier.
        let word = (t / 64) & 0xf;
        if word >= TERRITORY_WORDS {
            return false;
        }
        self.blocked[word] & (1u64 << (t % 64)) != 0
    }
}

#[cfg(feature = "user")]
// SAFETY: repr(C), Copy, explicit padding, no pointers.
unsafe impl aya::Pod for Guard {}

#[cfg(test)]
mod tests {
    #[test]
    fn a_guard_has_no_implicit_padding() {
        assert_eq!(
            core::mem::size_of::<super::Guard>(),
            8 * super::TERRITORY_WORDS + 8
        );
    }
}
