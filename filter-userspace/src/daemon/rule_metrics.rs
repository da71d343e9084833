//! Per-rule series: what each rule of the state dropped (or would have, in dry run) and
//! from how many distinct sources, from the kernel's per-rule counters and sketches.
//!
//! Labelled by meeting, order and mode. Two rules of one meeting under the same order and
//! mode would be one series: their packets and bytes are added and their sketches merged
//! (register by register, the larger wins), which estimates the distinct sources of both
//! together rather than adding two estimates that may count a source twice.

use std::{collections::BTreeMap, fmt};

use filter_common::accounting::SKETCH_REGISTERS;

use prometheus_client::encoding::DescriptorEncoder;

use super::exposition::{counter, gauge};
use crate::{kernel::RuleCounts, rule_slots, sketch, state::State};

struct Series {
    packets: u64,
    bytes: u64,
    registers: [u8; SKETCH_REGISTERS],
}

impl Default for Series {
    fn default() -> Series {
        Series {
            packets: 0,
            bytes: 0,
            registers: [0; SKETCH_REGISTERS],
        }
    }
}

impl Series {
    fn add(&mut self, c: &RuleCounts) {
        self.packets = self.packets.saturating_add(c.packets);
        self.bytes = self.bytes.saturating_add(c.bytes);
        for (mine, theirs) in self.registers.iter_mut().zip(&c.registers) {
            *mine = (*mine).max(*theirs);
        }
    }
}

/// `(meeting, order, mode)` → the counts of the rules under it that hold a counter slot.
fn series<'a>(
    state: &'a State,
    counts: &BTreeMap<(u32, u8), RuleCounts>,
) -> BTreeMap<(&'a str, &'a str, &'static str), Series> {
    let mut out: BTreeMap<_, Series> = BTreeMap::new();
    // Slots as sync placed them, also for rules saved before slots were recorded; an
    // unplaceable state (more rules than slots) shows no per-rule series.
    let Ok(placed) = rule_slots::as_synced(state) else {
        tracing::warn!("metrics: the state's rules do not fit their slots; no per-rule series");
        return out;
    };
    for (name, meeting) in &state.meetings {
        let Some(placed) = placed.meetings.get(name) else {
            continue;
        };
        for (rule, at) in meeting.rules.iter().zip(&placed.rules) {
            let Some(c) = at.slot.and_then(|s| counts.get(&(meeting.session, s))) else {
                continue;
            };
            let mode = if rule.dry_run { "dry-run" } else { "enforce" };
            out.entry((name.as_str(), rule.order.as_str(), mode))
                .or_default()
                .add(c);
        }
    }
    out
}

pub fn write(
    e: &mut DescriptorEncoder<'_>,
    state: &State,
    counts: &BTreeMap<(u32, u8), RuleCounts>,
) -> fmt::Result {
    let series = series(state, counts);
    fn labels<'a>(key: &(&'a str, &'a str, &'static str)) -> [(&'static str, &'a str); 3] {
        [("meeting", key.0), ("order", key.1), ("mode", key.2)]
    }
    let mut f = counter(
        e,
        "geofence_rule_packets",
        "Packets a rule dropped (mode enforce) or would have dropped (mode dry-run).",
    )?;
    for (key, s) in &series {
        f.sample(&labels(key), s.packets)?;
    }
    let mut f = counter(
        e,
        "geofence_rule_bytes",
        "Bytes a rule dropped (mode enforce) or would have dropped (mode dry-run).",
    )?;
    for (key, s) in &series {
        f.sample(&labels(key), s.bytes)?;
    }
    let mut f = gauge(
        e,
        "geofence_rule_distinct_sources",
        "Estimated distinct source addresses a rule dropped or would have dropped \
         (HyperLogLog of 64 registers, about 13% relative error; no address is stored).",
    )?;
    for (key, s) in &series {
        f.sample(&labels(key), sketch::estimate_count(&s.registers))?;
    }
    Ok(())
}
