//! The IPv6 half of the flattened table: the prefixes as disjoint ranges, and the trie of
//! 8-bit strides that narrows an address down to at most [`V6_LEAF_RANGES`] of them (layout
//! and lookup in [`filter_common::geo`]).

use std::{borrow::Cow, collections::VecDeque};

use filter_common::geo::{
    V6_DIRECT, V6_INDEX_PER_ELEM, V6_LEAF_RANGES, V6_NODE, V6_NODE_LEN, V6_NODES, V6_PACKED_RANGES,
    V6_RANGES, V6_TERRITORIES_PER_ELEM, V6Node, V6PackedRange, v6_leaf, v6_packed_leaf,
    v6_packed_range,
};
use filter_common::territory::{TERRITORY_UNKNOWN, TerritoryId};
use ipnet::Ipv6Net;

use super::{FlatError, FlatV6, check_territory};

use crate::geo::NetBits;

/// The nested prefixes as disjoint ranges covering the whole space: `(start, territory)`,
/// each running to the next start, the first at address 0; neighbours differ.
pub fn disjoint_ranges_v6(prefixes: &[(Ipv6Net, TerritoryId)]) -> Vec<(u128, TerritoryId)> {
    // Ordered by address then length, a prefix comes before the prefixes inside it.
    let prefixes: Cow<[(Ipv6Net, TerritoryId)]> = if prefixes.is_sorted_by_key(|e| e.0) {
        Cow::Borrowed(prefixes)
    } else {
        let mut sorted = prefixes.to_vec();
        sorted.sort_by_key(|e| e.0);
        Cow::Owned(sorted)
    };
    let mut out = vec![(0u128, TERRITORY_UNKNOWN)];
    // The prefixes containing the current position: (last address, territory).
    let mut open: Vec<(u128, TerritoryId)> = Vec::new();
    for &(p, id) in prefixes.iter() {
        close(&mut out, &mut open, Some(p.first()));
        push(&mut out, p.first(), id);
        open.push((p.last(), id));
    }
    close(&mut out, &mut open, None);
    out
}

/// Ends the open prefixes that end before `next` (all of them for `None`); after each,
/// the prefix around it, or unknown, resumes.
fn close(
    out: &mut Vec<(u128, TerritoryId)>,
    open: &mut Vec<(u128, TerritoryId)>,
    next: Option<u128>,
) {
    while let Some(&(last, _)) = open.last() {
        if next.is_some_and(|n| last >= n) {
            break;
        }
        open.pop();
        if let Some(resume_at) = last.checked_add(1) {
            let resume = open.last().map_or(TERRITORY_UNKNOWN, |o| o.1);
            push(out, resume_at, resume);
        }
    }
}

/// Starts territory `id` at `start`, merging with the neighbours it equals.
fn push(out: &mut Vec<(u128, TerritoryId)>, start: u128, id: TerritoryId) {
    let n = out.len();
    match out.last_mut() {
        Some(tail) if tail.0 == start => {
            tail.1 = id;
            if n >= 2 && out[n - 2].1 == id {
                out.pop();
            }
        }
        Some(tail) if tail.1 == id => {}
        _ => out.push((start, id)),
    }
}

/// The ranges and the trie over them.
pub fn build_v6(prefixes: &[(Ipv6Net, TerritoryId)]) -> Result<FlatV6, FlatError> {
    build_v6_packing(prefixes, V6_PACKED_RANGES as usize)
}

/// [`build_v6`] with room for `packed_capacity` packed ranges, so tests can fill it.
pub(super) fn build_v6_packing(
    prefixes: &[(Ipv6Net, TerritoryId)],
    packed_capacity: usize,
) -> Result<FlatV6, FlatError> {
    let ranges = disjoint_ranges_v6(prefixes);
    if ranges.len() > V6_RANGES as usize {
        return Err(FlatError::TooManyRanges {
            needed: ranges.len(),
            capacity: V6_RANGES,
        });
    }
    let mut trie = Trie {
        ranges: &ranges,
        nodes: Vec::new(),
        pending: VecDeque::new(),
        packed: Vec::new(),
        packed_capacity,
    };
    let mut first_level = Vec::with_capacity(1 << 16);
    for slash16 in 0..1u128 << 16 {
        first_level.push(trie.entry(slash16 << 112, 16)?);
    }
    // Breadth first, so the nodes near the root, which most lookups read, share pages.
    while let Some((number, start, len)) = trie.pending.pop_front() {
        for byte in 0..V6_NODE_LEN {
            let entry = trie.entry(start | (byte as u128) << (120 - len), len + 8)?;
            trie.nodes[number][byte] = entry;
        }
    }
    let index = first_level.as_chunks::<V6_INDEX_PER_ELEM>().0.to_vec();
    let starts_hi = ranges.iter().map(|&(s, _)| (s >> 64) as u64).collect();
    let starts_lo = ranges.iter().map(|&(s, _)| s as u64).collect();
    let mut territories = Vec::with_capacity(ranges.len().div_ceil(V6_TERRITORIES_PER_ELEM));
    for four in ranges.chunks(V6_TERRITORIES_PER_ELEM) {
        let mut elem = [TERRITORY_UNKNOWN; V6_TERRITORIES_PER_ELEM];
        for (slot, &(_, id)) in elem.iter_mut().zip(four) {
            *slot = check_territory(id)?;
        }
        territories.push(elem);
    }
    Ok(FlatV6 {
        index,
        nodes: trie.nodes,
        starts_hi,
        starts_lo,
        territories,
        packed: trie.packed,
    })
}

/// The nodes numbered so far over the sorted disjoint ranges, and those still to fill.
struct Trie<'r> {
    ranges: &'r [(u128, TerritoryId)],
    nodes: Vec<V6Node>,
    /// Node number, start and length of each numbered node's piece.
    pending: VecDeque<(usize, u128, u32)>,
    /// The packed leaves' ranges, leaf after leaf.
    packed: Vec<V6PackedRange>,
    packed_capacity: usize,
}

impl Trie<'_> {
    /// The entry for the piece of `len` bits at `start`: the territory of the one range
    /// covering it, a leaf of the few overlapping it, or a new node over its 256
    /// sub-pieces, to be filled later.
    fn entry(&mut self, start: u128, len: u32) -> Result<u32, FlatError> {
        let last_addr = start | u128::MAX.checked_shr(len).unwrap_or(0);
        // The range holding the piece's first address (ranges[0] starts at 0) and the one
        // holding its last.
        let first = self.ranges.partition_point(|r| r.0 <= start) - 1;
        let last = self.ranges.partition_point(|r| r.0 <= last_addr) - 1;
        let count = last - first + 1;
        if count == 1 {
            return Ok(V6_DIRECT | u32::from(check_territory(self.ranges[first].1)?));
        }
        if count <= V6_LEAF_RANGES as usize {
            if let Some(leaf) = self.pack(first, last, len)? {
                return Ok(leaf);
            }
            // first < V6_RANGES, checked by the caller.
            return Ok(v6_leaf(first as u32, count as u32));
        }
        // A piece of one address holds one range, so len < 128 here.
        let number = self.nodes.len();
        if number >= V6_NODES as usize {
            return Err(FlatError::TooManyNodes {
                capacity: V6_NODES,
                leaf: V6_LEAF_RANGES,
            });
        }
        self.nodes.push([0; V6_NODE_LEN]);
        self.pending.push_back((number, start, len));
        Ok(V6_NODE | number as u32)
    }

    /// A packed leaf of ranges `first..=last` over a piece of `len` bits, if there is room
    /// and every start in the piece ends within the bits a packed range keeps (most do:
    /// few prefixes are longer than /64). Otherwise the leaf stays over the range arrays.
    fn pack(&mut self, first: usize, last: usize, len: u32) -> Result<Option<u32>, FlatError> {
        let at = self.packed.len();
        let count = last - first + 1;
        if at + count > self.packed_capacity {
            return Ok(None);
        }
        // The range the piece begins in keeps no bits: it starts at or before the piece.
        self.packed
            .push(u64::from(check_territory(self.ranges[first].1)?));
        for &(start, id) in &self.ranges[first + 1..=last] {
            let id = check_territory(id)?;
            match v6_packed_range((start >> 64) as u64, start as u64, len, id) {
                Some(range) => self.packed.push(range),
                None => {
                    self.packed.truncate(at);
                    return Ok(None);
                }
            }
        }
        // at + count <= the capacity, which fits a leaf entry.
        Ok(Some(v6_packed_leaf(at as u32, count as u32)))
    }
}
