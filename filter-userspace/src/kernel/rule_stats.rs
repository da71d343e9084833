//! Per-rule counters and distinct-source sketches (`RULE_COUNTERS`, `RULE_SOURCES`, both
//! per CPU), indexed by `(session, slot)`; see `filter_common::accounting`.

use std::collections::BTreeMap;

use anyhow::Context as _;
use aya::maps::{MapData, PerCpuArray, PerCpuValues};
use filter_common::{
    accounting::{PackedSketch, RULE_ENTRIES, RuleCounters, SourceSketch, rule_index},
    maps::names,
    policy::RULES_PER_SESSION,
};
use serde_json::{Value, json};

use super::Kernel;
use crate::sketch;

/// What one rule slot counted since its rule was put there.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RuleCounts {
    /// Packets dropped (enforce) or that would have been (dry run), summed over CPUs.
    pub packets: u64,
    pub bytes: u64,
    /// Estimated distinct source addresses (HyperLogLog, about ±13%).
    pub distinct_sources: u64,
    pub registers: [u8; filter_common::accounting::SKETCH_REGISTERS],
}

impl RuleCounts {
    pub fn is_zero(&self) -> bool {
        self.packets == 0 && self.registers.iter().all(|&r| r == 0)
    }

    /// As the audit trail records it: counts, the estimate, and the registers in hex so
    /// the estimate can be recomputed.
    pub fn to_json(&self) -> Value {
        json!({
            "packets": self.packets,
            "bytes": self.bytes,
            "distinct_sources": self.distinct_sources,
            "registers": sketch::registers_hex(&self.registers),
        })
    }
}

fn index(session: u32, slot: u8) -> anyhow::Result<u32> {
    rule_index(session, u32::from(slot))
        .with_context(|| format!("rule slot ({session}, {slot}) is out of range"))
}

fn counts(
    per_cpu: &PerCpuValues<RuleCounters>,
    sketches: &PerCpuValues<PackedSketch>,
) -> RuleCounts {
    let mut sketch = SourceSketch::EMPTY;
    for cpu in sketches.iter() {
        sketch.merge(&cpu.unpack());
    }
    RuleCounts {
        packets: per_cpu.iter().map(|c| c.packets).sum(),
        bytes: per_cpu.iter().map(|c| c.bytes).sum(),
        distinct_sources: sketch::estimate_count(&sketch.registers),
        registers: sketch.registers,
    }
}

/// `RULE_COUNTERS` and `RULE_SOURCES`, for reading.
type Maps<'a> = (
    PerCpuArray<&'a MapData, RuleCounters>,
    PerCpuArray<&'a MapData, PackedSketch>,
);

fn maps(kernel: &Kernel) -> anyhow::Result<Maps<'_>> {
    Ok((
        PerCpuArray::try_from(kernel.map(names::RULE_COUNTERS)?)?,
        PerCpuArray::try_from(kernel.map(names::RULE_SOURCES)?)?,
    ))
}

/// The counts of one rule slot.
pub fn read_rule_counts(kernel: &Kernel, session: u32, slot: u8) -> anyhow::Result<RuleCounts> {
    let i = index(session, slot)?;
    let (counters, sketches) = maps(kernel)?;
    let per_cpu = counters.get(&i, 0).context("reading map RULE_COUNTERS")?;
    let sketch = sketches.get(&i, 0).context("reading map RULE_SOURCES")?;
    Ok(counts(&per_cpu, &sketch))
}

/// Each CPU's sketch of one rule slot, in CPU order (the merge of them is what
/// [`read_rule_counts`] estimates from).
pub fn read_rule_sketches(
    kernel: &Kernel,
    session: u32,
    slot: u8,
) -> anyhow::Result<Vec<SourceSketch>> {
    let i = index(session, slot)?;
    let (_, sketches) = maps(kernel)?;
    let per_cpu = sketches.get(&i, 0).context("reading map RULE_SOURCES")?;
    Ok(per_cpu.iter().map(PackedSketch::unpack).collect())
}

/// Every rule slot that counted something: `(session, slot)` → counts. Reads the whole
/// maps (32,768 slots); callers that know their slots use [`read_rule_counts`].
pub fn read_rule_stats(kernel: &Kernel) -> anyhow::Result<BTreeMap<(u32, u8), RuleCounts>> {
    let (counters, sketches) = maps(kernel)?;
    let mut out = BTreeMap::new();
    for i in 0..RULE_ENTRIES {
        let per_cpu = counters.get(&i, 0).context("reading map RULE_COUNTERS")?;
        let sketch = sketches.get(&i, 0).context("reading map RULE_SOURCES")?;
        let c = counts(&per_cpu, &sketch);
        if !c.is_zero() {
            let per_session = RULES_PER_SESSION as u32;
            out.insert((i / per_session, (i % per_session) as u8), c);
        }
    }
    Ok(out)
}

/// The counts of every territory rule in `state`, by `(session, slot)`: a read per rule
/// rather than a scan of every slot (which [`read_rule_stats`] does, at about 0.3 s).
pub fn read_rule_stats_of(
    kernel: &Kernel,
    state: &crate::state::State,
) -> anyhow::Result<BTreeMap<(u32, u8), RuleCounts>> {
    let mut out = BTreeMap::new();
    for meeting in state.meetings.values() {
        // Slots as sync placed them, also for rules saved before slots were recorded.
        let mut placed = meeting.clone();
        crate::rule_slots::assign_meeting(None, &mut placed)?;
        for slot in placed.rules.iter().filter_map(|r| r.slot) {
            let counts = read_rule_counts(kernel, meeting.session, slot)?;
            out.insert((meeting.session, slot), counts);
        }
    }
    Ok(out)
}

/// Zeroes a slot's counters and sketches, for a rule that starts on it.
pub fn reset_rule_counts(kernel: &mut Kernel, session: u32, slot: u8) -> anyhow::Result<()> {
    let i = index(session, slot)?;
    let cpus = aya::util::nr_cpus().map_err(|(what, e)| anyhow::anyhow!("{what}: {e}"))?;
    {
        let mut counters: PerCpuArray<_, RuleCounters> =
            PerCpuArray::try_from(kernel.map_mut(names::RULE_COUNTERS)?)?;
        let zero = PerCpuValues::try_from(vec![RuleCounters::default(); cpus])
            .context("sizing per-CPU values")?;
        counters
            .set(i, zero, 0)
            .context("writing map RULE_COUNTERS")?;
    }
    let mut sketches: PerCpuArray<_, PackedSketch> =
        PerCpuArray::try_from(kernel.map_mut(names::RULE_SOURCES)?)?;
    let empty =
        PerCpuValues::try_from(vec![PackedSketch::EMPTY; cpus]).context("sizing per-CPU values")?;
    sketches
        .set(i, empty, 0)
        .context("writing map RULE_SOURCES")
}
