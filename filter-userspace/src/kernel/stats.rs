//! Counters summed over CPUs.

use std::collections::BTreeMap;

use anyhow::Context as _;
use aya::maps::{PerCpuArray, PerCpuHashMap};
use filter_common::{
    CachedStats, PassReason, SessionStats, StatsKey, TerritoryId, Verdict, maps::names,
};

use super::Kernel;

/// Packets and bytes of one (session, territory), indexed by [`Verdict`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TerritoryCounts {
    pub packets: [u64; Verdict::COUNT],
    pub bytes: [u64; Verdict::COUNT],
}

/// Packets passed unclassified, indexed by [`PassReason`].
pub type PassCounts = [u64; PassReason::COUNT as usize];

#[derive(Debug, Default)]
pub struct Stats {
    pub sessions: BTreeMap<u32, BTreeMap<TerritoryId, TerritoryCounts>>,
    pub pass_reasons: PassCounts,
    /// Packets the parser could not place that a guard dropped, by why they could not be
    /// parsed (see [`crate::unparsed`]).
    pub unparsed_blocked: PassCounts,
}

impl Stats {
    /// Packets and bytes of one verdict, summed over a session's territories.
    pub fn session_total(&self, session: u32, verdict: Verdict) -> (u64, u64) {
        self.sessions.get(&session).map_or((0, 0), |territories| {
            territories.values().fold((0, 0), |(p, b), c| {
                (
                    p + c.packets[verdict as usize],
                    b + c.bytes[verdict as usize],
                )
            })
        })
    }

    fn add(&mut self, key: StatsKey, cpu: &SessionStats) {
        let counts = self
            .sessions
            .entry(key.session)
            .or_default()
            .entry(key.territory)
            .or_default();
        for v in 0..Verdict::COUNT {
            counts.packets[v] += cpu.packets[v];
            counts.bytes[v] += cpu.bytes[v];
        }
    }
}

/// Every counter: a (session, territory) is counted in its `STATS_CACHE` entry on the CPUs
/// where it holds that entry and in `SESSION_STATS` elsewhere, so both are added.
pub fn read_stats(kernel: &Kernel) -> anyhow::Result<Stats> {
    let mut stats = Stats::default();
    let sessions: PerCpuHashMap<_, StatsKey, SessionStats> =
        PerCpuHashMap::try_from(kernel.map(names::SESSION_STATS)?)?;
    for entry in sessions.iter() {
        let (key, per_cpu) = entry.context("reading map SESSION_STATS")?;
        for cpu in per_cpu.iter() {
            stats.add(key, cpu);
        }
    }
    for (_, cpu) in read_cache(kernel)? {
        stats.add(cpu.key, &cpu.stats);
    }
    let reasons: PerCpuArray<_, u64> = PerCpuArray::try_from(kernel.map(names::PASS_REASONS)?)?;
    for reason in PassReason::ALL {
        let per_cpu = reasons
            .get(&(reason as u32), 0)
            .context("reading map PASS_REASONS")?;
        stats.pass_reasons[reason as usize] = per_cpu.iter().sum();
    }
    stats.unparsed_blocked = super::unparsed::read_dropped(kernel)?;
    Ok(stats)
}

/// The claimed `STATS_CACHE` entries of every CPU, with their index.
pub(super) fn read_cache(kernel: &Kernel) -> anyhow::Result<Vec<(u32, CachedStats)>> {
    let aya::maps::Map::PerCpuArray(cache) = kernel.map(names::STATS_CACHE)? else {
        anyhow::bail!("map {} is not a per-CPU array", names::STATS_CACHE);
    };
    let all = super::batch::per_cpu_array::<CachedStats>(cache, names::STATS_CACHE)?;
    Ok(all
        .into_iter()
        .enumerate()
        .flat_map(|(index, per_cpu)| {
            per_cpu
                .into_iter()
                .filter(|cpu| cpu.key.session != 0)
                .map(move |cpu| (index as u32, cpu))
        })
        .collect())
}
