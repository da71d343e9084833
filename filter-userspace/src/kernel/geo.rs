//! Territory tables: two generations of each family's LPM trie. A load fills the
//! generation packets are not using, then flips `GEO_ACTIVE`; a packet reads the
//! generation once, so it sees the old table or the new one, never a mix.

use std::net::IpAddr;

use anyhow::Context as _;
use aya::maps::{Array, LpmTrie, lpm_trie::Key};
use filter_common::{TerritoryId, TerritoryKeyV4, TerritoryKeyV6, maps::names};

use super::Kernel;
use crate::geo::GeoTable;

/// What a load did.
#[derive(Debug)]
pub struct GeoLoad {
    pub generation: u32,
    pub prefixes_v4: usize,
    pub prefixes_v6: usize,
}

fn table_names(generation: u32) -> (&'static str, &'static str) {
    if generation == 0 {
        (names::GEO4_A, names::GEO6_A)
    } else {
        (names::GEO4_B, names::GEO6_B)
    }
}

pub fn active_generation(kernel: &Kernel) -> anyhow::Result<u32> {
    let active: Array<_, u32> = Array::try_from(kernel.map(names::GEO_ACTIVE)?)?;
    Ok(active.get(&0, 0).context("reading GEO_ACTIVE")? & 1)
}

fn clear<K: aya::Pod>(
    trie: &mut LpmTrie<&mut aya::maps::MapData, K, TerritoryId>,
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

/// Fills the inactive generation with `table` and switches packets to it.
pub fn load_table(kernel: &mut Kernel, table: &GeoTable) -> anyhow::Result<GeoLoad> {
    let next = 1 - active_generation(kernel)?;
    let (v4_name, v6_name) = table_names(next);
    {
        let mut v4: LpmTrie<_, TerritoryKeyV4, TerritoryId> =
            LpmTrie::try_from(kernel.map_mut(v4_name)?)?;
        clear(&mut v4, v4_name)?;
        for (prefix, territory) in &table.v4 {
            let key = Key::new(
                u32::from(prefix.len),
                TerritoryKeyV4 {
                    addr: prefix.addr.to_be_bytes(),
                },
            );
            v4.insert(&key, territory, 0)
                .with_context(|| format!("writing {prefix} to map {v4_name}"))?;
        }
    }
    {
        let mut v6: LpmTrie<_, TerritoryKeyV6, TerritoryId> =
            LpmTrie::try_from(kernel.map_mut(v6_name)?)?;
        clear(&mut v6, v6_name)?;
        for (prefix, territory) in &table.v6 {
            let key = Key::new(
                u32::from(prefix.len),
                TerritoryKeyV6 {
                    addr: prefix.addr.to_be_bytes(),
                },
            );
            v6.insert(&key, territory, 0)
                .with_context(|| format!("writing {prefix} to map {v6_name}"))?;
        }
    }
    let mut active: Array<_, u32> = Array::try_from(kernel.map_mut(names::GEO_ACTIVE)?)?;
    active.set(0, next, 0).context("switching GEO_ACTIVE")?;
    Ok(GeoLoad {
        generation: next,
        prefixes_v4: table.v4.len(),
        prefixes_v6: table.v6.len(),
    })
}

/// The territory the kernel's active table gives `addr`, or `None` if no entry covers it.
pub fn lookup(kernel: &Kernel, addr: IpAddr) -> anyhow::Result<Option<TerritoryId>> {
    let (v4_name, v6_name) = table_names(active_generation(kernel)?);
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
