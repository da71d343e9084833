//! Counters summed over CPUs.

use std::collections::BTreeMap;

use anyhow::Context as _;
use aya::maps::{PerCpuArray, PerCpuHashMap};
use filter_common::{PassReason, SessionStats, StatsKey, TerritoryId, Verdict, maps::names};

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
}

pub fn read_stats(kernel: &Kernel) -> anyhow::Result<Stats> {
    let mut stats = Stats::default();
    let sessions: PerCpuHashMap<_, StatsKey, SessionStats> =
        PerCpuHashMap::try_from(kernel.map(names::SESSION_STATS)?)?;
    for entry in sessions.iter() {
        let (key, per_cpu) = entry.context("reading map SESSION_STATS")?;
        let counts = stats
            .sessions
            .entry(key.session)
            .or_default()
            .entry(key.territory)
            .or_default();
        for cpu in per_cpu.iter() {
            for v in 0..Verdict::COUNT {
                counts.packets[v] += cpu.packets[v];
                counts.bytes[v] += cpu.bytes[v];
            }
        }
    }
    let reasons: PerCpuArray<_, u64> = PerCpuArray::try_from(kernel.map(names::PASS_REASONS)?)?;
    for reason in PassReason::ALL {
        let per_cpu = reasons
            .get(&(reason as u32), 0)
            .context("reading map PASS_REASONS")?;
        stats.pass_reasons[reason as usize] = per_cpu.iter().sum();
    }
    Ok(stats)
}
