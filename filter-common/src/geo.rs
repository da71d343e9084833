//! The flattened territory table: layout, entry encoding and lookups, shared by the XDP
//! program and userspace so that both walk the arrays with the very same code.
//!
//! The lookups take accessors (`index → Option<&element>`) instead of slices: the kernel
//! passes BPF array map lookups, userspace passes slices of the built or memory-mapped
//! arrays. Every index is masked or range-checked by the accessor, so the verifier sees
//! bounded offsets and there is no loop without a fixed bound.
//!
//! # IPv4: DIR-16-8-8 (DPDK's `rte_lpm` with its first stage split in two)
//!
//! `tbl16` has one `u16` per /16 (128 KiB, small enough to stay in the CPU's cache): the
//! territory when the whole /16 has one, else, with [`V4_BLOCK_FLAG`] set, the number of
//! what resolves the /16 to /24s. In the real table 86% of the /16s, holding 96% of CN's
//! addresses, are whole, so most lookups end there.
//!
//! A split /16 whose 256 /24 entries form at most [`V4_LIST_LEN`] runs is a range list:
//! `(third octet, entry)` pairs in one cache line, searched in a loop of at most
//! [`V4_LIST_LEN`] steps (numbers from [`V4_BLOCKS`] on; 57% of the real table's split
//! /16s). Any other keeps its 256 entries as a block of `tbl24` (numbers below
//! [`V4_BLOCKS`]). Both hold only split /16s, so a random lookup's working set, and with
//! it the cache and TLB misses, shrinks with the table rather than with the address space
//! (one `u16` per /24 of the whole space would take 32 MiB): the real table's /16-level
//! stage takes 2.2 MiB, where 512-byte blocks for all its split /16s took 4.4 MiB.
//!
//! A /24 entry is a territory id (`0..=676`, 0 = unknown), or, from [`V4_GROUP_BASE`] on,
//! the number of what resolves a /24 holding longer prefixes to single addresses: a range
//! list of `(last octet, territory)` pairs (90% of the real table's split /24s hold at
//! most 16 ranges), or for denser /24s a 256-entry `tbl8` group. 64 bytes instead of 512
//! keep the lists of the whole table within about 1 MiB. One, two or three reads. The
//! entries are packed [`V4_TBL24_PER_ELEM`] to an array element because the kernel rounds
//! an array value up to 8 bytes: a `u16` value per element would cost four times the
//! memory.
//!
//! # IPv6: disjoint ranges behind a multibit trie of 8-bit strides
//!
//! The nested prefixes become disjoint ranges covering the whole space, sorted by start;
//! a range runs to the next one's start (gaps are ranges of territory 0). Starts are kept
//! as two arrays of `u64` halves so every comparison is a plain 64-bit one, and the search
//! reads the low half only when the high halves tie: few prefixes are longer than /64, so
//! the search's working set is the 8-byte high halves.
//!
//! A trie narrows the address down to a piece of the space overlapped by at most
//! [`V6_LEAF_RANGES`] ranges; a binary search of at most [`V6_MAX_STEPS`] steps over
//! those (256 contiguous bytes of high halves) ends the lookup. The first level has one entry
//! per /16 (256 KiB); a node has one entry per next address byte, so the byte at depth
//! `d` picks the entry and a lookup takes at most [`V6_MAX_DEPTH`] node reads. An entry is
//! the territory of the one range covering its piece ([`V6_DIRECT`]), a node number
//! ([`V6_NODE`]), or a leaf: the first range overlapping its piece and how many do.
//!
//! A leaf is packed ([`V6_PACKED`]) when every range starting inside its piece has a start
//! that ends within the 54 bits after the piece's prefix (a /16 piece's starts end by /70,
//! a /24's by /78): its ranges are then copied, one `u64` each, into the packed array, as
//! those 54 bits with the territory below them. The search then compares the address's
//! bits after the prefix with one word per step and the last word read is the answer: a
//! lookup reads one run of at most 256 contiguous bytes, where a leaf over the range
//! arrays reads the high halves, sometimes low halves, then the territories in a third
//! array. In the real table 98% of the leaves' ranges pack (24,517 leaves, 174,958
//! ranges; 395 leaves of 3,542 ranges do not); those, and every leaf once the packed array
//! is full, stay over the range arrays.
//!
//! Why a trie and not one binary search per first-level piece: the search's steps grow
//! with the table (the real table's densest /18 held about 40,300 ranges), each an
//! unpredictable branch and, low in the search, a read of a line not in cache; the
//! trie's depth follows the prefixes' lengths, not their number, so a lookup at the
//! full table reads about as many lines as at a table of 10k prefixes. Only pieces holding
//! more than [`V6_LEAF_RANGES`] ranges get a node, so nodes follow where the table is
//! dense: 2,538 nodes (2.5 MiB) for the real table.

use crate::territory::{TERRITORY_MAX, TERRITORY_UNKNOWN, TerritoryId};

/// `tbl16` entries per array element (128 bytes), as in `tbl24`.
pub const V4_TBL16_PER_ELEM: usize = 64;
/// Array elements of `tbl16`: 2^16 entries.
pub const V4_TBL16_ELEMS: u32 = (1 << 16) / V4_TBL16_PER_ELEM as u32;
/// Set in a `tbl16` entry whose /16 holds more than one territory; the rest of the
/// entry is the number of its `tbl24` block.
pub const V4_BLOCK_FLAG: u16 = 0x8000;
/// `tbl24` blocks (split /16s of more than [`V4_LIST_LEN`] runs) per generation: 6 MiB.
/// DB-IP Lite needs 5,783 (112% headroom), GeoLite2 4,566, geo-whois-asn-country 3,875.
pub const V4_BLOCKS: u32 = 12_288;
/// Range lists of split /16s (one cache line in place of a 512-byte `tbl24` block) per
/// generation: 1 MiB. The real table needs 5,187 of its 9,062 split /16s.
pub const V4_BLOCK_LISTS: u32 = 16_384;
/// Entries of one `tbl24` block: the third octet.
pub const V4_BLOCK_LEN: usize = 256;
/// `tbl24` entries per array element (128 bytes).
pub const V4_TBL24_PER_ELEM: usize = 64;
/// Array elements of `tbl24`: every block's entries.
pub const V4_TBL24_ELEMS: u32 = V4_BLOCKS * V4_BLOCK_LEN as u32 / V4_TBL24_PER_ELEM as u32;
/// Entries of one `tbl8` group: the last octet.
pub const V4_GROUP_LEN: usize = 256;
/// A `tbl24` entry from this value on holds a group number (the entry minus this) instead
/// of a territory: below [`V4_TBL8_GROUPS`] a `tbl8` group, from it on a range list.
/// Territories take the values below it, so the numbers have the rest of the `u16`: a flag
/// bit would leave them 32,768, fewer than the largest published tables need.
pub const V4_GROUP_BASE: u16 = 1024;
/// `tbl8` groups (256 entries, for /24s of more than [`V4_LIST_LEN`] ranges) per
/// generation: 2 MiB. The largest need among the published country tables measured is
/// geo-whois-asn-country's 1,563 (162% headroom); DB-IP Lite needs none.
pub const V4_TBL8_GROUPS: u32 = 4_096;
/// Ranges a range list holds at most: one cache line.
pub const V4_LIST_LEN: usize = 16;
/// Range lists per generation: 3 MiB. DB-IP Lite needs 27,515 (79% headroom), GeoLite2
/// 17,978, geo-whois-asn-country 14,313 of its 15,876 split /24s (90% hold at most 16
/// ranges, 48% at most 4).
pub const V4_LISTS: u32 = 49_152;
/// An unused slot of a range list: starts after every last octet.
pub const V4_LIST_END: u32 = u32::MAX;

/// First-level entries per array element (256 bytes), as in `tbl16`.
pub const V6_INDEX_PER_ELEM: usize = 64;
/// Array elements of the first level: one entry per /16.
pub const V6_INDEX_ELEMS: u32 = (1 << 16) / V6_INDEX_PER_ELEM as u32;
/// Set in an entry whose piece lies in one range; the low 16 bits are its territory.
pub const V6_DIRECT: u32 = 1 << 31;
/// Set in an entry whose piece holds more than [`V6_LEAF_RANGES`] ranges; the low bits
/// are the number of its node.
pub const V6_NODE: u32 = 1 << 30;
/// Entries of one node: the next address byte.
pub const V6_NODE_LEN: usize = 256;
/// Nodes per generation: 8 MiB. DB-IP Lite needs 2,946 (178% headroom), GeoLite2 2,532,
/// geo-whois-asn-country 2,538.
pub const V6_NODES: u32 = 8_192;
/// Node reads at most: the bytes after the first level's two.
pub const V6_MAX_DEPTH: u32 = 14;
/// Ranges a leaf holds at most.
pub const V6_LEAF_RANGES: u32 = 32;
/// Binary search steps at most: what [`V6_LEAF_RANGES`] ranges need.
pub const V6_MAX_STEPS: u32 = V6_LEAF_RANGES.ilog2();
/// Where a leaf entry keeps its number of ranges minus one; its first range is below.
pub const V6_LEAF_SHIFT: u32 = 24;
/// Set in a leaf entry whose ranges are packed: its first range is a number in the packed
/// array, not in the range arrays.
pub const V6_PACKED: u32 = 1 << 29;
/// Bits of a packed range that hold its territory, below the bits of its start.
pub const V6_PACKED_TERRITORY_BITS: u32 = 10;
/// The territory bits of a packed range.
pub const V6_PACKED_TERRITORY_MASK: u64 = (1 << V6_PACKED_TERRITORY_BITS) - 1;
/// Bits of a range's start, after its piece's prefix, that a packed range keeps.
pub const V6_PACKED_START_BITS: u32 = 64 - V6_PACKED_TERRITORY_BITS;
/// Packed ranges per generation: 3 MiB. A range that overlaps several leaves is copied
/// into each; GeoLite2 packs 186,055 (111% headroom), geo-whois-asn-country 174,958, DB-IP
/// Lite 153,801. A table that needs more gets leaves over the range arrays for the rest.
pub const V6_PACKED_RANGES: u32 = 393_216;
/// Ranges per generation: 5 MiB of high halves and as much of low ones. DB-IP Lite needs
/// 345,871 (89% headroom), GeoLite2 329,829, geo-whois-asn-country 275,357.
pub const V6_RANGES: u32 = 655_360;
/// Territories per element of the range territory array (8 bytes).
pub const V6_TERRITORIES_PER_ELEM: usize = 4;
/// Elements of the range territory array.
pub const V6_TERRITORY_ELEMS: u32 = V6_RANGES / V6_TERRITORIES_PER_ELEM as u32;

// Block numbers share a u16 with their flag, group numbers lie above the territories;
// territory elements split evenly.
const _: () = assert!((TERRITORY_MAX as u32) < V4_GROUP_BASE as u32);
const _: () = assert!(V4_GROUP_BASE as u32 + V4_TBL8_GROUPS + V4_LISTS <= 1 << 16);
const _: () = assert!(V4_BLOCKS + V4_BLOCK_LISTS <= 1 << 15);
const _: () = assert!(V4_BLOCK_LEN.is_multiple_of(V4_TBL24_PER_ELEM));
const _: () = assert!((V6_RANGES as usize).is_multiple_of(V6_TERRITORIES_PER_ELEM));
// A leaf's first range and count, and a node number, fit beside the flags.
const _: () = assert!(V6_RANGES <= 1 << V6_LEAF_SHIFT);
const _: () = assert!(V6_PACKED_RANGES <= 1 << V6_LEAF_SHIFT);
const _: () = assert!((V6_LEAF_RANGES - 1) << V6_LEAF_SHIFT < V6_PACKED);
const _: () = assert!(V6_PACKED < V6_NODE);
// Every territory fits below a packed range's start.
const _: () = assert!((TERRITORY_MAX as u32) < 1 << V6_PACKED_TERRITORY_BITS);
const _: () = assert!(V6_NODES <= V6_NODE && 1 << V6_MAX_STEPS == V6_LEAF_RANGES);
const _: () = assert!(16 + 8 * V6_MAX_DEPTH == 128);
const _: () = assert!(V4_TBL16_ELEMS as usize * V4_TBL16_PER_ELEM == 1 << 16);

/// One element of `tbl16`.
pub type Tbl16Elem = [u16; V4_TBL16_PER_ELEM];
/// One element of `tbl24`.
pub type Tbl24Elem = [u16; V4_TBL24_PER_ELEM];
/// One `tbl8` group.
pub type Tbl8Group = [u16; V4_GROUP_LEN];
/// A range list: `first octet << 16 | entry` per range, sorted by first octet, the first
/// at octet 0, unused slots [`V4_LIST_END`].
pub type RangeList = [u32; V4_LIST_LEN];
/// A split /24 as a range list of last octets and territories.
pub type Tbl8List = RangeList;
/// A split /16 as a range list of third octets and `tbl24` entries.
pub type Tbl24List = RangeList;
/// One element of the first level: [`V6_INDEX_PER_ELEM`] entries.
pub type V6IndexElem = [u32; V6_INDEX_PER_ELEM];
/// A node: one entry per value of the next address byte.
pub type V6Node = [u32; V6_NODE_LEN];
/// A half (high or low 64 bits) of a range's first address.
pub type V6StartHalf = u64;
/// Territories of [`V6_TERRITORIES_PER_ELEM`] consecutive ranges.
pub type V6TerritoryElem = [u16; V6_TERRITORIES_PER_ELEM];
/// A range of a packed leaf: the [`V6_PACKED_START_BITS`] bits of its start that follow
/// the leaf's piece's prefix (0 for the range the piece begins in), then its territory.
pub type V6PackedRange = u64;

/// The territory of the IPv4 address `addr` (host order).
#[inline(always)]
pub fn lookup_v4<'a>(
    addr: u32,
    tbl16: impl Fn(u32) -> Option<&'a Tbl16Elem>,
    tbl24: impl Fn(u32) -> Option<&'a Tbl24Elem>,
    block_lists: impl Fn(u32) -> Option<&'a Tbl24List>,
    tbl8: impl Fn(u32) -> Option<&'a Tbl8Group>,
    lists: impl Fn(u32) -> Option<&'a Tbl8List>,
) -> TerritoryId {
    let Some(elem) = tbl16(addr >> 22) else {
        return TERRITORY_UNKNOWN;
    };
    let entry = elem[((addr >> 16) as usize) & (V4_TBL16_PER_ELEM - 1)];
    if entry & V4_BLOCK_FLAG == 0 {
        return entry;
    }
    let block = u32::from(entry & !V4_BLOCK_FLAG);
    let third = (addr >> 8) & 0xff;
    let entry = if block < V4_BLOCKS {
        let slot = (block << 8) | third;
        let Some(elem) = tbl24(slot / V4_TBL24_PER_ELEM as u32) else {
            return TERRITORY_UNKNOWN;
        };
        elem[(slot as usize) & (V4_TBL24_PER_ELEM - 1)]
    } else {
        match block_lists(block - V4_BLOCKS) {
            Some(list) => search(list, third),
            None => return TERRITORY_UNKNOWN,
        }
    };
    if entry < V4_GROUP_BASE {
        return entry;
    }
    let group = u32::from(entry - V4_GROUP_BASE);
    if group < V4_TBL8_GROUPS {
        return match tbl8(group) {
            Some(group) => group[(addr as usize) & (V4_GROUP_LEN - 1)],
            None => TERRITORY_UNKNOWN,
        };
    }
    match lists(group - V4_TBL8_GROUPS) {
        Some(list) => search(list, addr & 0xff),
        None => TERRITORY_UNKNOWN,
    }
}

/// The entry of the last range of `list` starting at or before `octet`: a loop of at most
/// [`V4_LIST_LEN`] steps over one cache line.
#[inline(always)]
fn search(list: &RangeList, octet: u32) -> u16 {
    let mut entry = TERRITORY_UNKNOWN;
    for &range in list {
        if range >> 16 > octet {
            break;
        }
        entry = range as u16;
    }
    entry
}

/// A leaf entry: `count` (2..=[`V6_LEAF_RANGES`]) ranges from range number `first`.
#[inline(always)]
pub const fn v6_leaf(first: u32, count: u32) -> u32 {
    first | (count - 1) << V6_LEAF_SHIFT
}

/// A packed leaf entry: `count` (2..=[`V6_LEAF_RANGES`]) packed ranges from number
/// `first`.
#[inline(always)]
pub const fn v6_packed_leaf(first: u32, count: u32) -> u32 {
    V6_PACKED | v6_leaf(first, count)
}

/// The 64 bits of the address whose halves are `hi`, `lo` that follow its first `len`
/// (`1..=128`) bits; what a packed range keeps of its start, with more bits.
#[inline(always)]
pub const fn v6_bits_after(hi: u64, lo: u64, len: u32) -> u64 {
    if len < 64 {
        hi << len | lo >> (64 - len)
    } else if len < 128 {
        lo << (len - 64)
    } else {
        0
    }
}

/// The packed range for a range starting at the address whose halves are `hi`, `lo`, in
/// the leaf of a piece of `len` bits, if its start keeps no bits past what a packed range
/// holds.
#[inline(always)]
pub const fn v6_packed_range(hi: u64, lo: u64, len: u32, id: TerritoryId) -> Option<u64> {
    let kept = v6_bits_after(hi, lo, len);
    let beyond_64 = if len < 64 { lo << len } else { 0 };
    if beyond_64 != 0 || kept & V6_PACKED_TERRITORY_MASK != 0 {
        return None;
    }
    if id as u32 >= 1 << V6_PACKED_TERRITORY_BITS {
        return None;
    }
    Some(kept | id as u64)
}

/// Byte `n` (0..16, most significant first) of the address whose halves are `hi`, `lo`.
#[inline(always)]
const fn v6_byte(hi: u64, lo: u64, n: u32) -> usize {
    let half = if n < 8 { hi } else { lo };
    ((half >> (56 - 8 * (n % 8))) & 0xff) as usize
}

/// The territory of the IPv6 address whose high and low 64 bits are `hi` and `lo`.
#[inline(always)]
#[expect(
    clippy::too_many_arguments,
    reason = "one accessor per array: each generation's are distinct BPF maps in the kernel"
)]
pub fn lookup_v6<'a>(
    hi: u64,
    lo: u64,
    index: impl Fn(u32) -> Option<&'a V6IndexElem>,
    nodes: impl Fn(u32) -> Option<&'a V6Node>,
    starts_hi: impl Fn(u32) -> Option<&'a V6StartHalf>,
    starts_lo: impl Fn(u32) -> Option<&'a V6StartHalf>,
    territories: impl Fn(u32) -> Option<&'a V6TerritoryElem>,
    packed: impl Fn(u32) -> Option<&'a V6PackedRange>,
) -> TerritoryId {
    let slash16 = (hi >> 48) as u32;
    let Some(elem) = index(slash16 / V6_INDEX_PER_ELEM as u32) else {
        return TERRITORY_UNKNOWN;
    };
    let mut entry = elem[(slash16 as usize) & (V6_INDEX_PER_ELEM - 1)];
    let mut depth = 0;
    while entry & V6_NODE != 0 && depth < V6_MAX_DEPTH {
        let Some(node) = nodes(entry & !V6_NODE) else {
            return TERRITORY_UNKNOWN;
        };
        entry = node[v6_byte(hi, lo, 2 + depth)];
        depth += 1;
    }
    if entry & V6_DIRECT != 0 {
        return entry as TerritoryId;
    }
    if entry & V6_NODE != 0 {
        // Deeper than an address has bytes: no builder makes this.
        return TERRITORY_UNKNOWN;
    }
    let first = entry & ((1 << V6_LEAF_SHIFT) - 1);
    let count = ((entry & !V6_PACKED) >> V6_LEAF_SHIFT) + 1;
    if entry & V6_PACKED != 0 {
        // Start and territory share a word: one read per step compares, and the last one
        // answers. A range starting at the address itself compares equal or below
        // whatever its territory bits hold.
        let key = v6_bits_after(hi, lo, 16 + 8 * depth) | V6_PACKED_TERRITORY_MASK;
        let found = last_at_or_before(first, count, |i| Some(*packed(i)? <= key));
        return match found.and_then(&packed) {
            Some(&range) => (range & V6_PACKED_TERRITORY_MASK) as TerritoryId,
            None => TERRITORY_UNKNOWN,
        };
    }
    let found = last_at_or_before(first, count, |i| {
        let s = *starts_hi(i)?;
        Some(if s == hi {
            *starts_lo(i)? <= lo
        } else {
            s < hi
        })
    });
    let Some(found) = found else {
        return TERRITORY_UNKNOWN;
    };
    match territories(found / V6_TERRITORIES_PER_ELEM as u32) {
        Some(t) => t[(found as usize) & (V6_TERRITORIES_PER_ELEM - 1)],
        None => TERRITORY_UNKNOWN,
    }
}

/// The last of the `count` (1..=[`V6_LEAF_RANGES`]) ranges from `first` that starts at or
/// before the address, `at_or_before(i)` saying so of range `i`: a binary search of at
/// most [`V6_MAX_STEPS`] steps. The first range starts at or before the leaf's piece, so
/// it is never asked. `None` when a read fails.
#[inline(always)]
fn last_at_or_before(
    first: u32,
    count: u32,
    at_or_before: impl Fn(u32) -> Option<bool>,
) -> Option<u32> {
    // Invariant: the answer is in [base, base + n).
    let mut base = first;
    let mut n = count;
    let mut step = 0;
    while step < V6_MAX_STEPS && n > 1 {
        let half = n / 2;
        let mid = base + half;
        if at_or_before(mid)? {
            base = mid;
        }
        n -= half;
        step += 1;
    }
    Some(base)
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::size_of;

    #[test]
    fn elements_need_no_rounding() {
        // The kernel rounds array values up to 8 bytes; none of these waste any.
        for size in [
            size_of::<Tbl24Elem>(),
            size_of::<Tbl8Group>(),
            size_of::<RangeList>(),
            size_of::<V6IndexElem>(),
            size_of::<V6Node>(),
            size_of::<V6StartHalf>(),
            size_of::<V6TerritoryElem>(),
        ] {
            assert_eq!(size % 8, 0);
        }
    }

    #[test]
    fn v4_whole_16_block_and_group() {
        let mut tbl16 = [[0u16; V4_TBL16_PER_ELEM]; 1];
        tbl16[0][0] = V4_BLOCK_FLAG | 1; // 0.0.0.0/16 is split: block 1
        tbl16[0][1] = 4; // 0.1.0.0/16 is all territory 4
        tbl16[0][2] = V4_BLOCK_FLAG | 7; // 0.2.0.0/16: a block beyond the array
        let list = |n: u32| V4_BLOCK_FLAG | (V4_BLOCKS + n) as u16;
        tbl16[0][3] = list(1); // 0.3.0.0/16: block list 1
        tbl16[0][4] = list(2); // 0.4.0.0/16: a block list beyond the array
        // Two blocks of four elements; block 0 is never named.
        let mut tbl24 = [[0u16; V4_TBL24_PER_ELEM]; 8];
        tbl24[0][1] = 8; // block 0: would be wrong if read
        tbl24[4][1] = 7; // block 1, 0.0.1.0/24
        tbl24[4][2] = V4_GROUP_BASE + 1; // block 1, 0.0.2.0/24 → tbl8 group 1
        tbl24[7][63] = 6; // block 1, 0.0.255.0/24
        tbl24[4][3] = V4_GROUP_BASE + V4_TBL8_GROUPS as u16 + 1; // 0.0.3.0/24 → list 1
        let mut groups = [[3u16; V4_GROUP_LEN]; 2];
        groups[1][5] = 9;
        let mut lists = [[V4_LIST_END; V4_LIST_LEN]; 2];
        // 0.0.3.0-127 territory 2, .128-.191 unknown, .192-255 territory 5
        lists[1][..3].copy_from_slice(&[2, 128 << 16, 192 << 16 | 5]);
        // 0.3.0-9.x territory 11, 0.3.10-199.x tbl8 group 1, 0.3.200-255.x list 1.
        let mut block_lists = [[V4_LIST_END; V4_LIST_LEN]; 2];
        block_lists[1][..3].copy_from_slice(&[
            11,
            10 << 16 | u32::from(V4_GROUP_BASE + 1),
            200 << 16 | (u32::from(V4_GROUP_BASE) + V4_TBL8_GROUPS + 1),
        ]);
        let t16 = |i: u32| tbl16.get(i as usize);
        let t24 = |i: u32| tbl24.get(i as usize);
        let t8 = |g: u32| groups.get(g as usize);
        let tl = |l: u32| lists.get(l as usize);
        let tb = |l: u32| block_lists.get(l as usize);
        let look = |a: u32| lookup_v4(a, t16, t24, tb, t8, tl);
        assert_eq!(look(0x0001_0005), 4);
        assert_eq!(look(0x0000_0105), 7);
        assert_eq!(look(0x0000_0205), 9);
        assert_eq!(look(0x0000_0206), 3);
        assert_eq!(look(0x0000_0305), 2);
        assert_eq!(look(0x0000_037f), 2);
        assert_eq!(look(0x0000_0380), 0);
        assert_eq!(look(0x0000_03bf), 0);
        assert_eq!(look(0x0000_03c0), 5);
        assert_eq!(look(0x0000_03ff), 5);
        assert_eq!(look(0x0000_0405), 0);
        assert_eq!(look(0x0000_ff01), 6);
        assert_eq!(look(0x0003_0000), 11);
        assert_eq!(look(0x0003_09ff), 11);
        assert_eq!(look(0x0003_0a05), 9);
        assert_eq!(look(0x0003_c7ff), 3);
        assert_eq!(look(0x0003_c8c0), 5);
        assert_eq!(look(0x0003_ff80), 0);
        assert_eq!(look(0x0004_0101), 0);
        // Out of the arrays: unknown, never a panic.
        assert_eq!(look(0x0002_0101), 0);
        assert_eq!(look(0xffff_ffff), 0);
    }

    #[test]
    fn a_packed_range_keeps_54_bits_after_the_piece_or_none() {
        // After a /24: bits 24..78, so a start may end at /78 but not at /79.
        assert_eq!(
            v6_packed_range(0x2001_0e80 << 32, 0, 24, 5),
            Some(0x80 << 56 | 5)
        );
        assert_eq!(v6_packed_range(0, 1 << 50, 24, 5), Some(1 << 10 | 5));
        assert_eq!(v6_packed_range(0, 1 << 49, 24, 5), None);
        // After a /64: bits 64..118.
        assert_eq!(v6_packed_range(0, 1 << 10, 64, 1), Some(1 << 10 | 1));
        assert_eq!(v6_packed_range(0, 1 << 9, 64, 1), None);
        // After a /120: the last byte, at the top.
        assert_eq!(v6_packed_range(0, 0xab, 120, 1), Some(0xab << 56 | 1));
        assert_eq!(
            v6_packed_range(0, 0, 24, 1 << V6_PACKED_TERRITORY_BITS),
            None
        );
        assert_eq!(v6_bits_after(1, 2, 128), 0);
    }

    #[test]
    fn v6_direct_node_leaf_and_out_of_bounds() {
        let mut index = [[V6_DIRECT | 9; V6_INDEX_PER_ELEM]; 1024];
        index[0x2001 / 64][0x2001 % 64] = V6_NODE | 1; // 2001::/16 → node 1
        index[0x2002 / 64][0x2002 % 64] = V6_NODE | 5; // a node beyond the array
        index[0x2003 / 64][0x2003 % 64] = V6_NODE; // node 0 points to itself: too deep
        let mut nodes = [[V6_DIRECT | 3; V6_NODE_LEN]; 2];
        nodes[0][0xab] = V6_NODE;
        // 2001:0d00::/24 is a leaf of ranges 1..=3.
        nodes[1][0x0d] = v6_leaf(1, 3);
        // 2001:0e00::/24 is a packed leaf of packed ranges 1..=3, 2001:0f00::/24 one
        // beyond the array.
        nodes[1][0x0e] = v6_packed_leaf(1, 3);
        nodes[1][0x0f] = v6_packed_leaf(3, 2);
        let packed_at = |hi: u64, id| v6_packed_range(hi, 0, 24, id).expect("packs");
        let packed = [
            7,
            4,
            packed_at(0x2001_0e80 << 32, 5),
            packed_at(0x2001_0e80_0000_0001, 6),
        ];
        let starts_hi: [u64; 5] = [
            0,
            0x2001_0d00 << 32,
            0x2001_0d00_0000_0001,
            0x2001_0d00_0000_0001,
            0x2001_0e00 << 32,
        ];
        let starts_lo: [u64; 5] = [0, 0, 0, 5, 0];
        let territories = [[0, 4, 5, 6], [0; 4]];
        let look = |hi: u64, lo: u64| {
            lookup_v6(
                hi,
                lo,
                |i| index.get(i as usize),
                |n| nodes.get(n as usize),
                |i| starts_hi.get(i as usize),
                |i| starts_lo.get(i as usize),
                |i| territories.get(i as usize),
                |i| packed.get(i as usize),
            )
        };
        assert_eq!(look(0x2000 << 48, 0), 9);
        assert_eq!(look(0x2001_0c00 << 32, 0), 3);
        assert_eq!(look(0x2001_0d00 << 32, 0), 4);
        assert_eq!(look(0x2001_0d00_0000_0001, 4), 5);
        assert_eq!(look(0x2001_0d00_0000_0001, 5), 6);
        assert_eq!(look(0x2001_0dff_ffff_ffff, u64::MAX), 6);
        assert_eq!(look(0x2001_0e00 << 32, 0), 4);
        assert_eq!(look(0x2001_0e7f_ffff_ffff, u64::MAX), 4);
        assert_eq!(look(0x2001_0e80 << 32, 0), 5);
        assert_eq!(look(0x2001_0e80_0000_0000, u64::MAX), 5);
        assert_eq!(look(0x2001_0e80_0000_0001, 0), 6);
        assert_eq!(look(0x2001_0eff_ffff_ffff, u64::MAX), 6);
        assert_eq!(
            look(0x2001_0f80 << 32, 0),
            0,
            "packed range beyond the array"
        );
        assert_eq!(look(0x2002 << 48, 0), 0, "node beyond the array");
        assert_eq!(
            look(0x2003_abab_abab_abab, 0xabab_abab_abab_abab),
            0,
            "too deep"
        );
        assert_eq!(look(0x2003_abab_abab_abab, 0xabab_abab_abab_ab00), 3);
    }
}
