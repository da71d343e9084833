//! Territory tables: two generations (A, B) of the flattened table (layout in
//! `filter_common::geo`). A load builds the arrays in memory, copies them into the
//! generation packets are not using through a memory mapping of each BPF array (no syscall
//! per entry), then flips the table bit of `SESSION_ACTIVE` with one map update; a packet reads the generation
//! once, so it sees the old table or the new one, never a mix.
//!
//! The stock LPM tries (`GEO4_A`…) are the reference path: only benches and tests fill
//! them, through [`load_lpm_reference`]. Filling them costs a syscall per prefix (over a
//! second for the real table) and ~36 MiB of kernel memory, which relays do not need.

use std::net::IpAddr;

use anyhow::Context as _;
use aya::maps::{LpmTrie, MapData, lpm_trie::Key};
use filter_common::{
    TERRITORY_UNKNOWN, TerritoryId, TerritoryKeyV4, TerritoryKeyV6,
    geo::{
        Tbl8Group, Tbl8List, Tbl16Elem, Tbl24Elem, Tbl24List, V4_BLOCK_LEN, V4_LIST_END,
        V4_TBL24_PER_ELEM, V6IndexElem, V6Node, V6PackedRange, V6StartHalf, V6TerritoryElem,
    },
    maps::names,
};

use super::{Kernel, mapped::Mapped};
use crate::geo::{
    GeoTable,
    flat::{self, FlatTable, FlatV4Ref, FlatV6Ref},
};

/// What a load did.
#[derive(Debug)]
pub struct GeoLoad {
    pub generation: u32,
    pub prefixes_v4: usize,
    pub prefixes_v6: usize,
    /// tbl24 blocks, block lists, tbl8 groups, range lists, IPv6 ranges and IPv6 trie
    /// nodes the flattened table uses.
    pub blocks_v4: usize,
    pub block_lists_v4: usize,
    pub groups_v4: usize,
    pub lists_v4: usize,
    pub ranges_v6: usize,
    pub nodes_v6: usize,
    /// Ranges of the packed IPv6 leaves.
    pub packed_v6: usize,
}

/// The arrays of one generation of the flattened table, mapped into this process.
pub struct MappedTable {
    tbl16: Mapped<Tbl16Elem>,
    tbl24: Mapped<Tbl24Elem>,
    block_lists: Mapped<Tbl24List>,
    tbl8: Mapped<Tbl8Group>,
    lists: Mapped<Tbl8List>,
    index: Mapped<V6IndexElem>,
    nodes: Mapped<V6Node>,
    starts_hi: Mapped<V6StartHalf>,
    starts_lo: Mapped<V6StartHalf>,
    territories: Mapped<V6TerritoryElem>,
    packed: Mapped<V6PackedRange>,
}

/// Map names of generation 0 (A) or 1 (B): tbl16, tbl24, block lists, tbl8, lists, IPv6
/// first level, nodes, starts' high and low halves, territories, packed ranges.
fn flat_names(generation: u32) -> [&'static str; 11] {
    if generation == 0 {
        [
            names::GEO4_16_A,
            names::GEO4_24_A,
            names::GEO4_24L_A,
            names::GEO4_8_A,
            names::GEO4_8L_A,
            names::GEO6_16_A,
            names::GEO6_N_A,
            names::GEO6_RH_A,
            names::GEO6_RL_A,
            names::GEO6_T_A,
            names::GEO6_P_A,
        ]
    } else {
        [
            names::GEO4_16_B,
            names::GEO4_24_B,
            names::GEO4_24L_B,
            names::GEO4_8_B,
            names::GEO4_8L_B,
            names::GEO6_16_B,
            names::GEO6_N_B,
            names::GEO6_RH_B,
            names::GEO6_RL_B,
            names::GEO6_T_B,
            names::GEO6_P_B,
        ]
    }
}

impl MappedTable {
    fn open(kernel: &Kernel, generation: u32, writable: bool) -> anyhow::Result<Self> {
        let [t16, t24, bl, t8, l, ix, n, rh, rl, t, p] = flat_names(generation);
        Ok(MappedTable {
            tbl16: Mapped::open(kernel, t16, writable)?,
            tbl24: Mapped::open(kernel, t24, writable)?,
            block_lists: Mapped::open(kernel, bl, writable)?,
            tbl8: Mapped::open(kernel, t8, writable)?,
            lists: Mapped::open(kernel, l, writable)?,
            index: Mapped::open(kernel, ix, writable)?,
            nodes: Mapped::open(kernel, n, writable)?,
            starts_hi: Mapped::open(kernel, rh, writable)?,
            starts_lo: Mapped::open(kernel, rl, writable)?,
            territories: Mapped::open(kernel, t, writable)?,
            packed: Mapped::open(kernel, p, writable)?,
        })
    }

    fn write(&mut self, flat: &FlatTable) -> anyhow::Result<()> {
        self.tbl16.fill(&flat.v4.tbl16, [TERRITORY_UNKNOWN; _])?;
        self.tbl24.fill(&flat.v4.tbl24, [0; _])?;
        self.block_lists
            .fill(&flat.v4.block_lists, [V4_LIST_END; _])?;
        self.tbl8.fill(&flat.v4.tbl8, [0; _])?;
        self.lists.fill(&flat.v4.lists, [V4_LIST_END; _])?;
        self.index.fill(&flat.v6.index, [0; _])?;
        self.nodes.fill(&flat.v6.nodes, [0; _])?;
        self.starts_hi.fill(&flat.v6.starts_hi, 0)?;
        self.starts_lo.fill(&flat.v6.starts_lo, 0)?;
        self.territories.fill(&flat.v6.territories, [0; _])?;
        self.packed.fill(&flat.v6.packed, 0)
    }

    /// Whether this generation answers every lookup as `flat` does: the first stages are
    /// equal, and so is every block, group, node and range they can reach.
    fn holds(&self, flat: &FlatTable) -> bool {
        self.tbl16.as_slice() == flat.v4.tbl16.as_slice()
            && self.index.as_slice() == flat.v6.index.as_slice()
            && self.tbl24.starts_with(&flat.v4.tbl24)
            && self.nodes.starts_with(&flat.v6.nodes)
            && self.block_lists.starts_with(&flat.v4.block_lists)
            && self.tbl8.starts_with(&flat.v4.tbl8)
            && self.lists.starts_with(&flat.v4.lists)
            && self.starts_hi.starts_with(&flat.v6.starts_hi)
            && self.starts_lo.starts_with(&flat.v6.starts_lo)
            && self.territories.starts_with(&flat.v6.territories)
            && self.packed.starts_with(&flat.v6.packed)
    }

    /// The XDP program's own lookup code over the kernel's arrays; 0 is unknown.
    pub fn lookup(&self, addr: IpAddr) -> TerritoryId {
        match addr {
            IpAddr::V4(a) => self.v4().lookup(a.into()),
            // As the program does: an IPv4-mapped source is an IPv4 host.
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => self.v4().lookup(v4.into()),
                None => self.v6().lookup(a.into()),
            },
        }
    }

    pub fn v4(&self) -> FlatV4Ref<'_> {
        FlatV4Ref {
            tbl16: self.tbl16.as_slice(),
            tbl24: self.tbl24.as_slice(),
            block_lists: self.block_lists.as_slice(),
            tbl8: self.tbl8.as_slice(),
            lists: self.lists.as_slice(),
        }
    }

    pub fn v6(&self) -> FlatV6Ref<'_> {
        FlatV6Ref {
            index: self.index.as_slice(),
            nodes: self.nodes.as_slice(),
            starts_hi: self.starts_hi.as_slice(),
            starts_lo: self.starts_lo.as_slice(),
            territories: self.territories.as_slice(),
            packed: self.packed.as_slice(),
        }
    }
}

/// The territory table generation packets use (0 = A, 1 = B): bit 1 of the switch word
/// the session maps' generation shares (see `filter_common::generation`).
pub fn active_generation(kernel: &Kernel) -> anyhow::Result<u32> {
    Ok(filter_common::generation::geo(super::generation::word(
        kernel,
    )?))
}

/// Fills the inactive generation with `table` and switches packets to it.
///
/// Writing the inactive generation in place is safe: packets stopped reading it at the
/// previous switch, at least one whole load earlier (loads are serialized by the lock),
/// while a packet's program runs for microseconds.
pub fn load_table(kernel: &mut Kernel, table: &GeoTable) -> anyhow::Result<GeoLoad> {
    let loaded = stage_table(kernel, table)?;
    super::generation::switch_table(kernel, loaded.generation)?;
    Ok(loaded)
}

/// Switches packets to `generation` (0 = A, 1 = B) without touching either table: how a
/// change that loaded a table and then failed puts the previous one back in force.
pub fn activate_generation(kernel: &mut Kernel, generation: u32) -> anyhow::Result<()> {
    super::generation::switch_table(kernel, generation & 1)
}

/// Fills the inactive generation with `table` without switching to it: the sync of a
/// state recording that generation switches to it together with the rules, in one store
/// (`kernel::sync`). How `apply` makes a new table and new rules one change.
pub fn stage_table(kernel: &mut Kernel, table: &GeoTable) -> anyhow::Result<GeoLoad> {
    // Build first: a table that does not fit is refused before any map is touched.
    let flat = flat::build(table).context("building the flattened territory table")?;
    super::build::check_attached_build(kernel)?;
    let next = 1 - active_generation(kernel)?;
    MappedTable::open(kernel, next, true)?.write(&flat)?;
    Ok(GeoLoad {
        generation: next,
        prefixes_v4: table.v4.len(),
        prefixes_v6: table.v6.len(),
        blocks_v4: flat.v4.tbl24.len() * V4_TBL24_PER_ELEM / V4_BLOCK_LEN,
        block_lists_v4: flat.v4.block_lists.len(),
        groups_v4: flat.v4.tbl8.len(),
        lists_v4: flat.v4.lists.len(),
        ranges_v6: flat.v6.starts_hi.len(),
        nodes_v6: flat.v6.nodes.len(),
        packed_v6: flat.v6.packed.len(),
    })
}

/// Whether the active generation gives every address the territory `table` gives it.
pub fn active_holds(kernel: &Kernel, table: &GeoTable) -> anyhow::Result<bool> {
    let flat = flat::build(table).context("building the flattened territory table")?;
    Ok(MappedTable::open(kernel, active_generation(kernel)?, false)?.holds(&flat))
}

/// The territory the kernel's active table gives `addr`, or `None` if no entry covers it.
/// The XDP program's own lookup code, run over the kernel's arrays mapped read-only.
pub fn lookup(kernel: &Kernel, addr: IpAddr) -> anyhow::Result<Option<TerritoryId>> {
    let id = map_active(kernel)?.lookup(addr);
    Ok((id != TERRITORY_UNKNOWN).then_some(id))
}

/// The active generation, mapped read-only: for many lookups without a syscall each.
pub fn map_active(kernel: &Kernel) -> anyhow::Result<MappedTable> {
    MappedTable::open(kernel, active_generation(kernel)?, false)
}

/// Generation `generation` (0 = A, 1 = B), mapped read-only: after a load, the other one
/// still holds the table it replaced.
pub fn map_generation(kernel: &Kernel, generation: u32) -> anyhow::Result<MappedTable> {
    MappedTable::open(kernel, generation & 1, false)
}

fn lpm_names(generation: u32) -> (&'static str, &'static str) {
    if generation == 0 {
        (names::GEO4_A, names::GEO6_A)
    } else {
        (names::GEO4_B, names::GEO6_B)
    }
}

fn clear<K: aya::Pod>(
    trie: &mut LpmTrie<&mut MapData, K, TerritoryId>,
    name: &str,
) -> anyhow::Result<()> {
    let keys: Vec<Key<K>> = trie
        .keys()
        .collect::<Result<_, _>>()
        .with_context(|| format!("reading map {name}"))?;
    for key in keys {
        trie.remove(&key)
            .with_context(|| format!("clearing map {name}"))?;
    }
    Ok(())
}

/// Fills the stock LPM tries of the active generation with `table`, replacing what they
/// held: the reference that `territory::lookup_lpm` reads. For benches and tests; call it
/// after [`load_table`]. One syscall per prefix, so not atomic and not fast.
pub fn load_lpm_reference(kernel: &mut Kernel, table: &GeoTable) -> anyhow::Result<()> {
    let generation = active_generation(kernel)?;
    fill_lpm(kernel, generation, table)
}

fn fill_lpm(kernel: &mut Kernel, generation: u32, table: &GeoTable) -> anyhow::Result<()> {
    let (v4_name, v6_name) = lpm_names(generation);
    let mut v4: LpmTrie<_, TerritoryKeyV4, TerritoryId> =
        LpmTrie::try_from(kernel.map_mut(v4_name)?)?;
    clear(&mut v4, v4_name)?;
    for (prefix, territory) in &table.v4 {
        let key = Key::new(
            u32::from(prefix.prefix_len()),
            TerritoryKeyV4 {
                addr: prefix.network().octets(),
            },
        );
        v4.insert(&key, territory, 0)
            .with_context(|| format!("writing {prefix} to map {v4_name}"))?;
    }
    let mut v6: LpmTrie<_, TerritoryKeyV6, TerritoryId> =
        LpmTrie::try_from(kernel.map_mut(v6_name)?)?;
    clear(&mut v6, v6_name)?;
    for (prefix, territory) in &table.v6 {
        let key = Key::new(
            u32::from(prefix.prefix_len()),
            TerritoryKeyV6 {
                addr: prefix.network().octets(),
            },
        );
        v6.insert(&key, territory, 0)
            .with_context(|| format!("writing {prefix} to map {v6_name}"))?;
    }
    Ok(())
}

/// What the active generation's stock LPM trie gives `addr` (the reference).
pub fn lookup_lpm(kernel: &Kernel, addr: IpAddr) -> anyhow::Result<Option<TerritoryId>> {
    let (v4_name, v6_name) = lpm_names(active_generation(kernel)?);
    let addr = match addr {
        IpAddr::V6(a) => a.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    };
    let found = match addr {
        IpAddr::V4(a) => {
            let trie: LpmTrie<_, TerritoryKeyV4, TerritoryId> =
                LpmTrie::try_from(kernel.map(v4_name)?)?;
            trie.get(&Key::new(32, TerritoryKeyV4 { addr: a.octets() }), 0)
        }
        IpAddr::V6(a) => {
            let trie: LpmTrie<_, TerritoryKeyV6, TerritoryId> =
                LpmTrie::try_from(kernel.map(v6_name)?)?;
            trie.get(&Key::new(128, TerritoryKeyV6 { addr: a.octets() }), 0)
        }
    };
    match found {
        Ok(id) => Ok(Some(id)),
        Err(aya::maps::MapError::KeyNotFound) => Ok(None),
        Err(e) => Err(e).context("looking up the territory table"),
    }
}
