//! Clearing the counters of session ids that change hands: a deleted meeting's counts must
//! not be inherited by the next meeting given its id.

use anyhow::Context as _;
use filter_common::{
    CachedStats, StatsKey,
    counters::{STATS_CACHE_WAYS, stats_cache_first},
    maps::names,
};

use super::Kernel;

/// Clears every counter of the sessions `forget` picks: their `SESSION_STATS` entries
/// and their `STATS_CACHE` entries on every CPU. Only a session's own packets write its
/// entries, so this races with no live session's counts.
pub(super) fn forget_stats(
    kernel: &mut Kernel,
    forget: impl Fn(u32) -> bool,
) -> anyhow::Result<()> {
    {
        let mut map: aya::maps::PerCpuHashMap<_, StatsKey, filter_common::SessionStats> =
            aya::maps::PerCpuHashMap::try_from(kernel.map_mut(names::SESSION_STATS)?)?;
        let stale: Vec<StatsKey> = map
            .keys()
            .filter_map(Result::ok)
            .filter(|k| forget(k.session))
            .collect();
        for key in stale {
            map.remove(&key)
                .context("removing from map SESSION_STATS")?;
        }
    }
    let mut stale: Vec<u32> = super::stats::read_cache(kernel)?
        .into_iter()
        .map(|(_, cpu)| cpu.key.session)
        .filter(|&session| forget(session))
        .collect();
    stale.sort_unstable();
    stale.dedup();
    let cpus = aya::util::nr_cpus().map_err(|(path, e)| anyhow::anyhow!("reading {path}: {e}"))?;
    let mut cache: aya::maps::PerCpuArray<_, CachedStats> =
        aya::maps::PerCpuArray::try_from(kernel.map_mut(names::STATS_CACHE)?)?;
    for first in stale.into_iter().filter_map(stats_cache_first) {
        for index in first..first + STATS_CACHE_WAYS {
            let free = aya::maps::PerCpuValues::try_from(vec![CachedStats::default(); cpus])
                .context("per-CPU values of STATS_CACHE")?;
            cache
                .set(index, free, 0)
                .context("writing map STATS_CACHE")?;
        }
    }
    Ok(())
}
