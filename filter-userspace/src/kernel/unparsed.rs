//! Writes the guards for packets the parser cannot place (see [`crate::unparsed`]).

use std::collections::HashMap as StdMap;

use anyhow::Context as _;
use aya::maps::{HashMap, LpmTrie, lpm_trie::Key};
use filter_common::{Address, OverrideKey, maps::names, unparsed::Guard};

use super::{Kernel, writes::SyncReport};
use crate::unparsed::Guards;

type PrefixMap = StdMap<(u32, OverrideKey), u32>;

fn read_prefixes(kernel: &Kernel) -> anyhow::Result<PrefixMap> {
    let map: LpmTrie<_, OverrideKey, u32> = LpmTrie::try_from(kernel.map(names::UNPARSED_PREFIX)?)?;
    map.iter()
        .map(|r| r.map(|(k, v)| ((k.prefix_len(), k.data()), v)))
        .collect::<Result<_, _>>()
        .context("reading map UNPARSED_PREFIX")
}

/// Makes the guard maps hold `want`: new and changed prefixes first, then the guards, then
/// stale prefixes, so no guard names a scope whose drops are not there yet.
pub(super) fn write(
    kernel: &mut Kernel,
    want: &Guards,
    report: &mut SyncReport,
) -> anyhow::Result<()> {
    let have = read_prefixes(kernel)?;
    {
        let mut map: LpmTrie<_, OverrideKey, u32> =
            LpmTrie::try_from(kernel.map_mut(names::UNPARSED_PREFIX)?)?;
        for (&(len, key), value) in &want.prefixes {
            if have.get(&(len, key)) != Some(value) {
                map.insert(&Key::new(len, key), value, 0)
                    .context("writing map UNPARSED_PREFIX")?;
                report.written += 1;
            }
        }
    }
    {
        let mut map: HashMap<_, Address, Guard> =
            HashMap::try_from(kernel.map_mut(names::UNPARSED_GUARD)?)?;
        let have: StdMap<Address, Guard> = map
            .iter()
            .collect::<Result<_, _>>()
            .context("reading map UNPARSED_GUARD")?;
        for (addr, guard) in &want.guards {
            if have.get(addr) != Some(guard) {
                map.insert(addr, guard, 0)
                    .context("writing map UNPARSED_GUARD")?;
                report.written += 1;
            }
        }
        for addr in have.keys().filter(|a| !want.guards.contains_key(*a)) {
            map.remove(addr)
                .context("removing from map UNPARSED_GUARD")?;
            report.removed += 1;
        }
    }
    let mut map: LpmTrie<_, OverrideKey, u32> =
        LpmTrie::try_from(kernel.map_mut(names::UNPARSED_PREFIX)?)?;
    for &(len, key) in have.keys().filter(|k| !want.prefixes.contains_key(k)) {
        map.remove(&Key::new(len, key))
            .context("removing from map UNPARSED_PREFIX")?;
        report.removed += 1;
    }
    Ok(())
}

/// Unplaceable packets a guard dropped, per pass reason, summed over CPUs.
pub(super) fn read_dropped(
    kernel: &Kernel,
) -> anyhow::Result<[u64; filter_common::PassReason::COUNT as usize]> {
    let map: aya::maps::PerCpuArray<_, u64> =
        aya::maps::PerCpuArray::try_from(kernel.map(names::UNPARSED_DROP)?)?;
    let mut out = [0; filter_common::PassReason::COUNT as usize];
    for (i, slot) in out.iter_mut().enumerate() {
        let values = map
            .get(&(i as u32), 0)
            .context("reading map UNPARSED_DROP")?;
        *slot = values.iter().sum();
    }
    Ok(out)
}
