//! Per-rule accounting: packets and bytes each rule slot dropped (or would have dropped),
//! and a HyperLogLog sketch of how many distinct sources it blocked, without storing any
//! address.
//!
//! Both maps are indexed by [`rule_index`] = `session * RULES_PER_SESSION + slot`. The
//! sketch is [`SKETCH_REGISTERS`] registers of one byte: a source's 16-byte address (IPv4
//! mapped, see [`crate::maps`]) is hashed by [`hash_address`]; the hash's top
//! [`SKETCH_INDEX_BITS`] bits pick a register and [`rank`] of the rest is kept if it is
//! higher than the register's value. Kernel, userspace estimator and tests share these
//! functions so that all three derive the same registers from the same address.
//!
//! Both maps are per CPU. A CPU's sketch holds the sources its packets came from; the
//! register-wise maximum of the CPUs' sketches ([`SourceSketch::merge`]) is exactly the
//! sketch of all of them, so no update is lost to two CPUs writing one register at once.
//! Per CPU, the kernel keeps the registers packed ([`PackedSketch`]: five bits each, ranks
//! capped at [`RANK_CAP`]) so that a copy per CPU costs 48 bytes, not 64.

use crate::{
    maps::{Address, AddressWords, capacity::MAX_SESSIONS},
    policy::RULES_PER_SESSION,
};

/// Registers per sketch: a standard error of about 1.04 / √64 ≈ 13%.
pub const SKETCH_REGISTERS: usize = 64;
/// Hash bits that pick the register.
pub const SKETCH_INDEX_BITS: u32 = 6;

/// The highest rank a register holds: five bits. A register reaches it after about 2^31
/// of its sources, so the cap matters only past some 10^11 distinct sources.
pub const RANK_CAP: u8 = 31;
const REGISTER_BITS: u32 = 5;
const REGISTERS_PER_WORD: usize = 12;
/// Words of a [`PackedSketch`]: 12 registers of 5 bits in each, none across two words.
pub const PACKED_WORDS: usize = SKETCH_REGISTERS.div_ceil(REGISTERS_PER_WORD);

/// Entries of `RULE_COUNTERS` and `RULE_SOURCES`: every slot of every session id.
pub const RULE_ENTRIES: u32 = MAX_SESSIONS * RULES_PER_SESSION as u32;

/// [`crate::policy`] slot value meaning "no rule gave the verdict" (an override did, or
/// nothing matched).
pub const NO_RULE: u32 = u32::MAX;

/// Packets and bytes a rule dropped (enforce) or would have dropped (dry run); per CPU.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuleCounters {
    pub packets: u64,
    pub bytes: u64,
}

/// Distinct-source sketch of one rule: HyperLogLog registers.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourceSketch {
    pub registers: [u8; SKETCH_REGISTERS],
}

impl SourceSketch {
    pub const EMPTY: SourceSketch = SourceSketch {
        registers: [0; SKETCH_REGISTERS],
    };

    /// Adds one address (what the kernel does per counted packet, rank capped as there).
    pub fn add(&mut self, addr: &Address) {
        let (register, rank) = register_and_rank(hash_address(addr));
        let rank = rank.min(RANK_CAP);
        if rank > self.registers[register] {
            self.registers[register] = rank;
        }
    }

    /// Makes this the sketch of its sources and `other`'s: the register-wise maximum.
    pub fn merge(&mut self, other: &SourceSketch) {
        for (mine, theirs) in self.registers.iter_mut().zip(&other.registers) {
            *mine = (*mine).max(*theirs);
        }
    }
}

/// The sketch as one CPU's `RULE_SOURCES` value holds it: register `r` in bits
/// `5 (r mod 12)` up of word `r / 12`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackedSketch {
    pub words: [u64; PACKED_WORDS],
}

impl PackedSketch {
    pub const EMPTY: PackedSketch = PackedSketch {
        words: [0; PACKED_WORDS],
    };

    /// Adds a source by its hash, as the kernel does: the register rises to the rank
    /// (capped) when the rank exceeds it.
    #[inline(always)]
    pub fn add_hash(&mut self, hash: u64) {
        let (word, shift) = packed_position(register_of(hash));
        let Some(word) = self.words.get_mut(word) else {
            return;
        };
        let register = ((*word >> shift) & u64::from(RANK_CAP)) as u8;
        if register < RANK_CAP && rank_exceeds(hash, register) {
            let rank = rank(hash).min(RANK_CAP);
            *word = (*word & !(u64::from(RANK_CAP) << shift)) | (u64::from(rank) << shift);
        }
    }

    /// The registers, one a byte.
    pub fn unpack(&self) -> SourceSketch {
        let mut out = SourceSketch::EMPTY;
        for (r, register) in out.registers.iter_mut().enumerate() {
            let (word, shift) = packed_position(r);
            *register = ((self.words[word] >> shift) & u64::from(RANK_CAP)) as u8;
        }
        out
    }
}

/// Where register `r` (below [`SKETCH_REGISTERS`]) sits in a [`PackedSketch`]: its word
/// and the shift to its bits. `r * 43 >> 9` is `r / 12` for every register, without the
/// division BPF would make a `div` instruction of.
#[inline(always)]
pub fn packed_position(r: usize) -> (usize, u32) {
    let word = (r * 43) >> 9;
    let slot = r - word * REGISTERS_PER_WORD;
    (word, slot as u32 * REGISTER_BITS)
}

/// The maps' index of `(session, slot)`, if both are in range.
#[inline(always)]
pub fn rule_index(session: u32, slot: u32) -> Option<u32> {
    if session >= MAX_SESSIONS || slot >= RULES_PER_SESSION as u32 {
        return None;
    }
    Some(session * RULES_PER_SESSION as u32 + slot)
}

/// The finalizer of MurmurHash3: every input bit affects every output bit.
#[inline(always)]
const fn mix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

const HASH_SEED: u64 = 0x9e37_79b9_7f4a_7c15;
/// The first round for an upper half of zero, which every IPv4 source has (IPv4 mapped):
/// a constant, so the kernel pays one round for those, not two, for the same hash.
const FIRST_ROUND_OF_ZERO: u64 = mix64(HASH_SEED);

/// A 64-bit hash of a 16-byte address. It must never change: pinned sketches hold ranks
/// of it, and would count every source again under another hash.
#[inline(always)]
pub fn hash_address(addr: &Address) -> u64 {
    hash_words(AddressWords::of(addr))
}

/// [`hash_address`] of the address these words hold.
#[inline(always)]
pub fn hash_words(words: AddressWords) -> u64 {
    // The hash reads each half as a little-endian number.
    let hi = u64::from_le(words.hi);
    let h = if hi == 0 {
        FIRST_ROUND_OF_ZERO
    } else {
        mix64(hi ^ HASH_SEED)
    };
    mix64(h ^ u64::from_le(words.lo))
}

/// Position of the first 1 bit after the index bits, counted from 1; 59 when all of them
/// are zero.
#[inline(always)]
pub fn rank(hash: u64) -> u8 {
    let rest = hash << SKETCH_INDEX_BITS;
    if rest == 0 {
        return (64 - SKETCH_INDEX_BITS + 1) as u8;
    }
    (rest.leading_zeros() + 1) as u8
}

/// Whether `rank(hash)` exceeds a register holding `register`, without computing the rank:
/// BPF has no count-leading-zeros instruction, and after a rule's first few hundred
/// sources almost no packet raises its register, so the program tests this first.
#[inline(always)]
pub fn rank_exceeds(hash: u64, register: u8) -> bool {
    let rest = hash << SKETCH_INDEX_BITS;
    match register {
        0 => true,
        // Ranks stop at 64 − SKETCH_INDEX_BITS + 1.
        r if u32::from(r) > 64 - SKETCH_INDEX_BITS => false,
        // The first 1 bit comes after the top `r` bits.
        r => rest >> (64 - u32::from(r)) == 0,
    }
}

/// The register a hash updates.
#[inline(always)]
pub fn register_of(hash: u64) -> usize {
    (hash >> (64 - SKETCH_INDEX_BITS)) as usize & (SKETCH_REGISTERS - 1)
}

/// Which register a hash updates, and with what rank.
#[inline(always)]
pub fn register_and_rank(hash: u64) -> (usize, u8) {
    (register_of(hash), rank(hash))
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: repr(C), Copy, no padding, no pointers.
    unsafe impl aya::Pod for super::RuleCounters {}
    unsafe impl aya::Pod for super::SourceSketch {}
    unsafe impl aya::Pod for super::PackedSketch {}
}

#[cfg(test)]
mod tests {
    #[test]
    fn rank_exceeds_agrees_with_rank() {
        extern crate std;
        let mut x: u64 = 0x0123_4567_89ab_cdef;
        let mut hashes = std::vec![0u64, u64::MAX, 1, 1 << 57, 1 << 58, 1 << 63];
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Shift right by a varying amount so that high ranks come up too.
            hashes.push(x >> (x % 64));
        }
        for hash in hashes {
            for register in 0..=66u8 {
                assert_eq!(
                    super::rank_exceeds(hash, register),
                    super::rank(hash) > register,
                    "hash {hash:#x}, register {register}"
                );
            }
        }
    }

    use super::*;
    use crate::maps::v4_mapped;

    #[test]
    fn index_covers_every_slot_once() {
        assert_eq!(rule_index(0, 0), Some(0));
        assert_eq!(rule_index(1, 0), Some(8));
        assert_eq!(rule_index(MAX_SESSIONS - 1, 7), Some(RULE_ENTRIES - 1));
        assert_eq!(rule_index(MAX_SESSIONS, 0), None);
        assert_eq!(rule_index(1, 8), None);
        assert_eq!(rule_index(1, NO_RULE), None);
    }

    #[test]
    fn rank_counts_leading_zeros_after_the_index() {
        assert_eq!(rank(0), 59);
        assert_eq!(rank(u64::MAX), 1);
        assert_eq!(rank(1 << 57), 1, "the first bit after the index");
        assert_eq!(rank(1 << 56), 2);
        assert_eq!(rank(1), 58);
        assert_eq!(register_and_rank(u64::MAX).0, 63);
        assert_eq!(register_and_rank(0).0, 0);
    }

    #[test]
    fn hash_is_the_one_pinned_sketches_were_built_with() {
        // Values of the hash as it was first released (two rounds for every address).
        let ip = |s: &str| s.parse::<core::net::Ipv6Addr>().map(|a| a.octets());
        for (addr, want) in [
            ("::ffff:192.0.2.1", 0x2858_3013_81db_1c35),
            ("::ffff:198.51.100.7", 0x21c0_1c82_ac49_54c1),
            ("2001:db8::1", 0xe639_1339_0a5e_6c40),
            ("::1", 0xe3ba_b30a_435c_22fc),
        ] {
            assert_eq!(hash_address(&ip(addr).unwrap()), want, "{addr}");
        }
        assert_eq!(FIRST_ROUND_OF_ZERO, 0x9ca0_66f1_a4ab_2eea);
    }

    #[test]
    fn hash_spreads_neighbouring_addresses() {
        let a = hash_address(&v4_mapped([192, 0, 2, 1]));
        let b = hash_address(&v4_mapped([192, 0, 2, 2]));
        assert_ne!(a, b);
        assert!((a ^ b).count_ones() > 16, "{a:x} {b:x}");
        let mut used = [false; SKETCH_REGISTERS];
        for i in 0..=255u8 {
            used[register_and_rank(hash_address(&v4_mapped([10, 0, 0, i]))).0] = true;
        }
        assert!(
            used.iter().filter(|u| **u).count() > 50,
            "256 addresses reach most registers"
        );
    }

    #[test]
    fn merged_sketches_are_the_sketch_of_the_union() {
        let addr = |i: u32| v4_mapped(i.to_be_bytes());
        let (mut a, mut b, mut all) = (
            SourceSketch::EMPTY,
            SourceSketch::EMPTY,
            SourceSketch::EMPTY,
        );
        // Overlapping halves, as two CPUs see them.
        for i in 0..3_000 {
            a.add(&addr(i));
            all.add(&addr(i));
        }
        for i in 2_000..5_000 {
            b.add(&addr(i));
            all.add(&addr(i));
        }
        let mut merged = a;
        merged.merge(&b);
        assert_eq!(merged, all);
        assert_ne!(a, all, "each half alone misses registers");
        let mut other_order = b;
        other_order.merge(&a);
        assert_eq!(other_order, all);
    }

    #[test]
    fn packed_positions_cover_each_register_once() {
        extern crate std;
        let mut seen = std::vec::Vec::new();
        for r in 0..SKETCH_REGISTERS {
            let (word, shift) = packed_position(r);
            assert_eq!(word, r / 12, "register {r}");
            assert!(
                word < PACKED_WORDS && shift + 5 <= 64,
                "register {r}: {word}, {shift}"
            );
            seen.push((word, shift));
        }
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), SKETCH_REGISTERS);
        assert_eq!(core::mem::size_of::<PackedSketch>(), 48);
    }

    #[test]
    fn the_packed_sketch_is_the_byte_sketch() {
        let (mut packed, mut bytes) = (PackedSketch::EMPTY, SourceSketch::EMPTY);
        for i in 0..20_000u32 {
            let addr = v4_mapped(i.to_be_bytes());
            packed.add_hash(hash_address(&addr));
            bytes.add(&addr);
        }
        assert_eq!(packed.unpack(), bytes);
        // Ranks past the cap (a hash with nothing set after the index bits has rank 59)
        // stop at it, and a register at the cap stays there.
        let mut capped = PackedSketch::EMPTY;
        capped.add_hash(0);
        assert_eq!(capped.unpack().registers[0], RANK_CAP);
        capped.add_hash(1);
        assert_eq!(capped.unpack().registers[0], RANK_CAP);
        assert!(capped.unpack().registers[1..].iter().all(|&r| r == 0));
    }

    #[test]
    fn sketch_keeps_the_highest_rank() {
        let mut s = SourceSketch::EMPTY;
        let addr = v4_mapped([198, 51, 100, 7]);
        s.add(&addr);
        let (register, rank) = register_and_rank(hash_address(&addr));
        assert_eq!(s.registers[register], rank);
        let before = s;
        s.add(&addr);
        assert_eq!(s, before, "the same address again changes nothing");
    }
}
