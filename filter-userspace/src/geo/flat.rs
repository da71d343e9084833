//! Builds the flattened territory table (layout in [`filter_common::geo`]) from a
//! normalized [`GeoTable`]: DIR-16-8-8 arrays for IPv4, disjoint ranges behind a multibit
//! trie for IPv6 (built in `flat_v6.rs`). Pure functions; the kernel module copies the
//! result into the memory-mapped BPF arrays.
//!
//! The lookups here are [`filter_common::geo`]'s, the code the XDP program runs, over
//! slices: over the built arrays, or over the kernel's arrays mapped into memory.

use filter_common::geo::{
    self as layout, RangeList, Tbl8Group, Tbl8List, Tbl16Elem, Tbl24Elem, Tbl24List, V4_BLOCK_FLAG,
    V4_BLOCK_LEN, V4_BLOCK_LISTS, V4_BLOCKS, V4_GROUP_BASE, V4_GROUP_LEN, V4_LIST_END, V4_LIST_LEN,
    V4_LISTS, V4_TBL8_GROUPS, V4_TBL16_ELEMS, V4_TBL16_PER_ELEM, V4_TBL24_PER_ELEM, V6IndexElem,
    V6Node, V6PackedRange, V6StartHalf, V6TerritoryElem,
};
use filter_common::territory::{TERRITORY_UNKNOWN, TerritoryId};
use ipnet::Ipv4Net;

use super::{GeoTable, NetBits};

/// Why a table does not fit the flattened layout. Checked before any map is touched.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum FlatError {
    #[error(
        "the IPv4 table has {needed} /24s that hold more than {list} ranges, each needing a \
         tbl8 group, but the kernel table has {capacity} groups"
    )]
    TooManyGroups {
        needed: usize,
        capacity: u32,
        list: usize,
    },
    #[error(
        "the IPv4 table has {needed} /24s that hold longer prefixes in at most {list} \
         ranges, each needing a range list, but the kernel table has {capacity} lists"
    )]
    TooManyLists {
        needed: usize,
        capacity: u32,
        list: usize,
    },
    #[error(
        "the IPv4 table has {needed} /16s holding more than {list} runs of /24s, each \
         needing a tbl24 block, but the kernel table has {capacity} blocks"
    )]
    TooManyBlocks {
        needed: usize,
        capacity: u32,
        list: usize,
    },
    #[error(
        "the IPv4 table has {needed} /16s holding at most {list} runs of /24s but more than \
         one territory, each needing a range list, but the kernel table has {capacity} of \
         them"
    )]
    TooManyBlockLists {
        needed: usize,
        capacity: u32,
        list: usize,
    },
    #[error(
        "the IPv6 table splits into {needed} disjoint ranges but the kernel table holds \
         {capacity}"
    )]
    TooManyRanges { needed: usize, capacity: u32 },
    #[error(
        "the IPv6 table needs more than {capacity} trie nodes, one per piece of the address \
         space overlapped by more than {leaf} ranges, but the kernel table holds {capacity}"
    )]
    TooManyNodes { capacity: u32, leaf: u32 },
    #[error("territory id {0} does not fit the table encoding")]
    BadTerritory(TerritoryId),
}

/// IPv4 arrays: `tbl16` complete, the others only the blocks, groups and lists in use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlatV4 {
    pub tbl16: Vec<Tbl16Elem>,
    pub tbl24: Vec<Tbl24Elem>,
    pub block_lists: Vec<Tbl24List>,
    pub tbl8: Vec<Tbl8Group>,
    pub lists: Vec<Tbl8List>,
}

/// IPv6 arrays: the first level complete; nodes, starts' halves, territories and packed
/// ranges only those in use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlatV6 {
    pub index: Vec<V6IndexElem>,
    pub nodes: Vec<V6Node>,
    pub starts_hi: Vec<V6StartHalf>,
    pub starts_lo: Vec<V6StartHalf>,
    pub territories: Vec<V6TerritoryElem>,
    pub packed: Vec<V6PackedRange>,
}

/// Both families, ready to be copied into one generation of the kernel maps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlatTable {
    pub v4: FlatV4,
    pub v6: FlatV6,
}

/// How much of one kernel structure a built table takes: what `geo load` and the bench
/// report, and what a table too large for it is refused by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fill {
    pub structure: &'static str,
    pub used: usize,
    pub capacity: u32,
}

impl Fill {
    /// Capacity beyond what is used, as a share of what is used (0.5: 50% headroom).
    pub fn headroom(&self) -> f64 {
        f64::from(self.capacity) / self.used.max(1) as f64 - 1.0
    }
}

impl FlatTable {
    /// Every sized structure of one generation and how much of it this table takes.
    pub fn fill(&self) -> [Fill; 7] {
        let fill = |structure, used, capacity| Fill {
            structure,
            used,
            capacity,
        };
        [
            fill(
                "IPv4 tbl24 blocks",
                self.v4.tbl24.len() * V4_TBL24_PER_ELEM / V4_BLOCK_LEN,
                V4_BLOCKS,
            ),
            fill(
                "IPv4 /16 range lists",
                self.v4.block_lists.len(),
                V4_BLOCK_LISTS,
            ),
            fill("IPv4 tbl8 groups", self.v4.tbl8.len(), V4_TBL8_GROUPS),
            fill("IPv4 /24 range lists", self.v4.lists.len(), V4_LISTS),
            fill("IPv6 ranges", self.v6.starts_hi.len(), layout::V6_RANGES),
            fill("IPv6 trie nodes", self.v6.nodes.len(), layout::V6_NODES),
            fill(
                "IPv6 packed ranges",
                self.v6.packed.len(),
                layout::V6_PACKED_RANGES,
            ),
        ]
    }
}

/// Borrowed IPv4 arrays, built or memory-mapped.
#[derive(Clone, Copy)]
pub struct FlatV4Ref<'a> {
    pub tbl16: &'a [Tbl16Elem],
    pub tbl24: &'a [Tbl24Elem],
    pub block_lists: &'a [Tbl24List],
    pub tbl8: &'a [Tbl8Group],
    pub lists: &'a [Tbl8List],
}

/// Borrowed IPv6 arrays, built or memory-mapped.
#[derive(Clone, Copy)]
pub struct FlatV6Ref<'a> {
    pub index: &'a [V6IndexElem],
    pub nodes: &'a [V6Node],
    pub starts_hi: &'a [V6StartHalf],
    pub starts_lo: &'a [V6StartHalf],
    pub territories: &'a [V6TerritoryElem],
    pub packed: &'a [V6PackedRange],
}

impl FlatV4Ref<'_> {
    /// The kernel's lookup; 0 is unknown.
    pub fn lookup(&self, addr: u32) -> TerritoryId {
        layout::lookup_v4(
            addr,
            |i| self.tbl16.get(i as usize),
            |i| self.tbl24.get(i as usize),
            |l| self.block_lists.get(l as usize),
            |g| self.tbl8.get(g as usize),
            |l| self.lists.get(l as usize),
        )
    }
}

impl FlatV6Ref<'_> {
    /// The kernel's lookup; 0 is unknown.
    pub fn lookup(&self, addr: u128) -> TerritoryId {
        layout::lookup_v6(
            (addr >> 64) as u64,
            addr as u64,
            |i| self.index.get(i as usize),
            |n| self.nodes.get(n as usize),
            |i| self.starts_hi.get(i as usize),
            |i| self.starts_lo.get(i as usize),
            |i| self.territories.get(i as usize),
            |i| self.packed.get(i as usize),
        )
    }
}

impl FlatV4 {
    pub fn view(&self) -> FlatV4Ref<'_> {
        FlatV4Ref {
            tbl16: &self.tbl16,
            tbl24: &self.tbl24,
            block_lists: &self.block_lists,
            tbl8: &self.tbl8,
            lists: &self.lists,
        }
    }
}

impl FlatV6 {
    pub fn view(&self) -> FlatV6Ref<'_> {
        FlatV6Ref {
            index: &self.index,
            nodes: &self.nodes,
            starts_hi: &self.starts_hi,
            starts_lo: &self.starts_lo,
            territories: &self.territories,
            packed: &self.packed,
        }
    }
}

/// Builds both families of `table`.
pub fn build(table: &GeoTable) -> Result<FlatTable, FlatError> {
    // The families are independent: built side by side, a reload waits for the slower.
    let (v4, v6) = std::thread::scope(|s| {
        let v6 = s.spawn(|| build_v6(&table.v6));
        (build_v4(&table.v4), v6.join())
    });
    let v6 = v6.unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
    Ok(FlatTable { v4: v4?, v6 })
}

pub(super) fn check_territory(id: TerritoryId) -> Result<TerritoryId, FlatError> {
    // IPv4 group numbers lie above the territories, a packed IPv6 range keeps 10 bits.
    if id >= V4_GROUP_BASE {
        return Err(FlatError::BadTerritory(id));
    }
    Ok(id)
}

/// DIR-16-8-8 by painting: a /24 per entry over the whole space first, prefixes in order
/// of length so that a more specific one overwrites the prefix that contains it (cost: the
/// entries painted, a few times 2^24 at worst); then the /16s whose 256 entries are not
/// one territory keep theirs as a range list or a block.
pub fn build_v4(prefixes: &[(Ipv4Net, TerritoryId)]) -> Result<FlatV4, FlatError> {
    let mut by_len: Vec<(Ipv4Net, TerritoryId)> = prefixes.to_vec();
    // Unstable is fine: prefixes of one length are disjoint.
    by_len.sort_unstable_by_key(|(p, _)| p.prefix_len());
    let short = by_len.partition_point(|(p, _)| p.prefix_len() <= 24);
    let mut painted = vec![TERRITORY_UNKNOWN; 1 << 24];
    let slots = painted.as_mut_slice();
    for &(p, id) in &by_len[..short] {
        let first = (p.first() >> 8) as usize;
        slots[first..first + (1 << (24 - p.prefix_len()))].fill(check_territory(id)?);
    }
    // The longer prefixes, grouped by their /24; within a /24 still shortest first.
    let long = &mut by_len[short..];
    long.sort_unstable_by_key(|(p, _)| (p.first() >> 8, p.prefix_len()));
    let mut resolved: Vec<(usize, [TerritoryId; V4_GROUP_LEN])> = Vec::new();
    for run in long.chunk_by(|a, b| a.0.first() >> 8 == b.0.first() >> 8) {
        let slot = (run[0].0.first() >> 8) as usize;
        // Addresses of the /24 that no longer prefix covers keep the /24's territory.
        let mut group = [slots[slot]; V4_GROUP_LEN];
        for &(p, id) in run {
            let first = (p.first() & 0xff) as usize;
            group[first..first + (1 << (32 - p.prefix_len()))].fill(check_territory(id)?);
        }
        resolved.push((slot, group));
    }
    // Split /24s become range lists or tbl8 groups; their numbers go into the /24 entries.
    let mut groups = Pieces::new(V4_TBL8_GROUPS, V4_LISTS);
    for (slot, group) in resolved {
        slots[slot] = V4_GROUP_BASE.wrapping_add(groups.keep(&group));
    }
    groups.check(
        |needed, capacity, list| FlatError::TooManyGroups {
            needed,
            capacity,
            list,
        },
        |needed, capacity, list| FlatError::TooManyLists {
            needed,
            capacity,
            list,
        },
    )?;
    let (tbl16, tbl24, block_lists) = blocks(&painted)?;
    Ok(FlatV4 {
        tbl16,
        tbl24,
        block_lists,
        tbl8: groups.whole,
        lists: groups.lists,
    })
}

/// 256 entries (a /24's territories, a /16's /24 entries) as a range list, if they form
/// at most [`V4_LIST_LEN`] runs.
fn list_of(entries: &[u16; V4_BLOCK_LEN]) -> Option<RangeList> {
    let mut list = [V4_LIST_END; V4_LIST_LEN];
    let mut used = 0;
    for (octet, &entry) in entries.iter().enumerate() {
        if octet > 0 && entry == entries[octet - 1] {
            continue;
        }
        *list.get_mut(used)? = (octet as u32) << 16 | u32::from(entry);
        used += 1;
    }
    Some(list)
}

/// The 256-entry pieces of one stage (split /16s, or split /24s), each kept as a range list
/// when it forms at most [`V4_LIST_LEN`] runs, else whole: a `tbl24` block or a `tbl8`
/// group. Both stages number them alike: whole pieces from 0, lists from the whole
/// pieces' capacity on.
struct Pieces {
    whole_capacity: u32,
    list_capacity: u32,
    whole: Vec<[u16; V4_BLOCK_LEN]>,
    lists: Vec<RangeList>,
}

/// Builds the error for `needed` pieces of one kind against `capacity`, lists of at most
/// `list` runs.
type Overflow = fn(usize, u32, usize) -> FlatError;

impl Pieces {
    fn new(whole_capacity: u32, list_capacity: u32) -> Pieces {
        Pieces {
            whole_capacity,
            list_capacity,
            whole: Vec::new(),
            lists: Vec::new(),
        }
    }

    /// Keeps `entries` and returns its number. A number past a capacity is never used:
    /// [`Pieces::check`] refuses the table first.
    fn keep(&mut self, entries: &[u16; V4_BLOCK_LEN]) -> u16 {
        match list_of(entries) {
            Some(list) => {
                self.lists.push(list);
                (self.whole_capacity as usize + self.lists.len() - 1) as u16
            }
            None => {
                self.whole.push(*entries);
                (self.whole.len() - 1) as u16
            }
        }
    }

    /// Whether the kept pieces fit the kernel arrays (whose capacities leave every number
    /// room in its `u16` entry beside the flag or above the territories).
    fn check(&self, too_many_whole: Overflow, too_many_lists: Overflow) -> Result<(), FlatError> {
        if self.whole.len() > self.whole_capacity as usize {
            return Err(too_many_whole(
                self.whole.len(),
                self.whole_capacity,
                V4_LIST_LEN,
            ));
        }
        if self.lists.len() > self.list_capacity as usize {
            return Err(too_many_lists(
                self.lists.len(),
                self.list_capacity,
                V4_LIST_LEN,
            ));
        }
        Ok(())
    }
}

/// The first and second stages, as [`layout::lookup_v4`] reads them.
type Stages = (Vec<Tbl16Elem>, Vec<Tbl24Elem>, Vec<Tbl24List>);

/// `tbl16`, the `tbl24` blocks and the block lists from one entry per /24: a /16 whose
/// 256 entries hold one territory (no `tbl8` group) gets it in `tbl16`; any other is kept
/// as a range list or a block, which its `tbl16` entry names.
fn blocks(per_24: &[TerritoryId]) -> Result<Stages, FlatError> {
    let mut tbl16 = vec![[TERRITORY_UNKNOWN; V4_TBL16_PER_ELEM]; V4_TBL16_ELEMS as usize];
    let mut split = Pieces::new(V4_BLOCKS, V4_BLOCK_LISTS);
    let (per_16, _) = per_24.as_chunks::<V4_BLOCK_LEN>();
    for (slot, block) in tbl16.as_flattened_mut().iter_mut().zip(per_16) {
        let first = block[0];
        *slot = if first < V4_GROUP_BASE && block.iter().all(|&e| e == first) {
            first
        } else {
            V4_BLOCK_FLAG | split.keep(block)
        };
    }
    split.check(
        |needed, capacity, list| FlatError::TooManyBlocks {
            needed,
            capacity,
            list,
        },
        |needed, capacity, list| FlatError::TooManyBlockLists {
            needed,
            capacity,
            list,
        },
    )?;
    let tbl24 = split
        .whole
        .iter()
        .flat_map(|block| block.as_chunks::<V4_TBL24_PER_ELEM>().0.iter().copied())
        .collect();
    Ok((tbl16, tbl24, split.lists))
}

#[path = "flat_v6.rs"]
mod v6;
#[cfg(test)]
use v6::build_v6_packing;
pub use v6::{build_v6, disjoint_ranges_v6};

#[cfg(test)]
#[path = "flat_tests.rs"]
mod tests;
