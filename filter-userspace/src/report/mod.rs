//! The transparency report: which orders were acted on in a window, on which meetings and
//! territories, how long each rule was in force, and what it dropped — built only from the
//! audit trail and the per-rule counters, so anyone holding both can reproduce it.

mod inputs;
mod lifecycle;
mod render;
mod tables;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

pub use inputs::report_from;
pub use lifecycle::{Counts, RuleLife, rule_lives};
pub use render::{csv, markdown};
pub use tables::{TableFile, TableLoad, table_loads};

use crate::{audit::Entry, sketch};

/// What the report says it did not do. Each line is a property of the data path and of
/// what the kernel maps hold, not a policy promise.
pub const NOT_DONE: [&str; 4] = [
    "No packet content was inspected: the filter reads only the Ethernet, VLAN, IP and UDP/TCP \
     headers (addresses, ports, protocol) it needs to find the meeting and the source's territory.",
    "No source addresses were retained: per rule the kernel keeps two counters (packets, bytes) \
     and a fixed-size sketch of 64 one-byte registers, each the highest hash-derived rank seen; \
     addresses cannot be read back from it.",
    "No per-participant or per-connection records were kept, and no traffic of other meetings \
     or other territories was counted against these orders.",
    "No counts are split by time: packet, byte and source figures cover each rule's whole \
     life, not only the reporting window.",
];

/// Caveats printed with the figures.
pub const NOTES: [&str; 3] = [
    "Distinct sources are HyperLogLog estimates with a standard error of about 13% (64 \
     registers); per-order and per-territory totals merge the rules' registers, so a source \
     blocked by two rules is counted once.",
    "Dry-run rules count what they would have dropped; those packets were delivered.",
    "A rule's prefix drops are counted with the rule. A rule that ended before geofence kept \
     per-rule counts for it (older versions did not for prefix-only rules) shows — instead.",
];

/// A rule as reported: its life clipped to the window, and its counts.
#[derive(Clone, Debug, Serialize)]
pub struct RuleReport {
    #[serde(flatten)]
    pub life: RuleLife,
    /// Start and end of the rule's force within the window.
    pub in_force_from: Timestamp,
    pub in_force_until: Timestamp,
    pub seconds_in_force: i64,
    /// `removed`, `expired` or `in force`.
    pub status: String,
    /// The territory tables (ids of [`Report::tables`]) in force while the rule was in
    /// the window, `none` for a time before any load; empty for a rule without territories.
    pub tables: Vec<String>,
}

/// Totals of a group of rules (an order, a territory, a meeting).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Totals {
    pub rules: usize,
    pub meetings: BTreeSet<String>,
    pub territories: BTreeSet<String>,
    pub orders: BTreeSet<String>,
    pub seconds_in_force: i64,
    pub packets: u64,
    pub bytes: u64,
    /// Estimate over the union of the rules' sketches.
    pub distinct_sources: u64,
    /// Rules without counts (ended before per-rule counts were kept, or counters
    /// unavailable).
    pub uncounted_rules: usize,
    #[serde(skip)]
    registers: Option<[u8; filter_common::accounting::SKETCH_REGISTERS]>,
}

impl Totals {
    fn add(&mut self, rule: &RuleReport) {
        self.rules += 1;
        self.meetings.insert(rule.life.meeting.clone());
        self.territories
            .extend(rule.life.territories.iter().cloned());
        self.orders.insert(rule.life.order.clone());
        self.seconds_in_force += rule.seconds_in_force;
        let registers = rule
            .life
            .counts
            .as_ref()
            .and_then(|c| Some((c, sketch::registers_from_hex(&c.registers)?)));
        match registers {
            Some((c, regs)) => {
                self.packets += c.packets;
                self.bytes += c.bytes;
                let merged = self.registers.get_or_insert([0; 64]);
                for (m, r) in merged.iter_mut().zip(regs) {
                    *m = (*m).max(r);
                }
                self.distinct_sources = sketch::estimate_count(merged);
            }
            None => self.uncounted_rules += 1,
        }
    }
}

/// Where the report's figures come from.
#[derive(Clone, Debug, Serialize)]
pub struct Provenance {
    pub audit_entries: usize,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// Hash of the last entry: pins the trail the report was made from.
    pub last_hash: Option<String>,
    /// `intact`, or what `audit verify` found.
    pub chain: String,
    /// When the live counters of rules still in force were read, or why they were not.
    pub live_counters: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub from: Timestamp,
    pub to: Timestamp,
    pub generated: Timestamp,
    pub provenance: Provenance,
    pub totals: Totals,
    pub orders: BTreeMap<String, Totals>,
    pub territories: BTreeMap<String, Totals>,
    pub meetings: BTreeMap<String, Totals>,
    pub rules: Vec<RuleReport>,
    /// The territory tables in force during the window, from the trail's loads.
    pub tables: Vec<TableLoad>,
    pub not_done: Vec<String>,
    pub notes: Vec<String>,
}

/// Builds the report for `[from, to)` from the trail's entries. `live` gives the current
/// counts of a rule still in force (`None` when unavailable); `now` bounds open rules.
pub fn build(
    entries: &[Entry],
    from: Timestamp,
    to: Timestamp,
    now: Timestamp,
    live: &mut dyn FnMut(&RuleLife) -> Option<Counts>,
    provenance: Provenance,
) -> Report {
    let mut report = from_lives(rule_lives(entries), from, to, now, live, provenance);
    tables::attach(&mut report, entries, now);
    report
}

/// The report for `[from, to)` from rules' lives gathered elsewhere: the fleet report's,
/// read from the fleet's versions with counts already summed over its relays.
pub fn from_lives(
    lives: Vec<RuleLife>,
    from: Timestamp,
    to: Timestamp,
    now: Timestamp,
    live: &mut dyn FnMut(&RuleLife) -> Option<Counts>,
    provenance: Provenance,
) -> Report {
    let mut rules = Vec::new();
    for mut life in lives {
        let end = life.ended().map_or(now, |e| e.min(now)).min(to);
        let start = life.issued.max(from);
        // In the window: issued in it, or still in force when it began.
        if life.issued >= to || (life.issued < from && end <= from) {
            continue;
        }
        if life.removed.is_none() && life.counts.is_none() {
            life.counts = live(&life);
        }
        let status = match (life.removed, life.expires) {
            (Some(r), Some(e)) if e <= r => "expired",
            (Some(_), _) => "removed",
            (None, Some(e)) if e <= now => "expired",
            (None, _) => "in force",
        };
        let seconds = end
            .duration_since(start)
            .max(SignedDuration::ZERO)
            .as_secs();
        rules.push(RuleReport {
            life,
            in_force_from: start,
            in_force_until: end.max(start),
            seconds_in_force: seconds,
            status: status.to_string(),
            tables: Vec::new(),
        });
    }
    let mut totals = Totals::default();
    let mut orders: BTreeMap<String, Totals> = BTreeMap::new();
    let mut territories: BTreeMap<String, Totals> = BTreeMap::new();
    let mut meetings: BTreeMap<String, Totals> = BTreeMap::new();
    for rule in &rules {
        totals.add(rule);
        orders.entry(rule.life.order.clone()).or_default().add(rule);
        meetings
            .entry(rule.life.meeting.clone())
            .or_default()
            .add(rule);
        for t in &rule.life.territories {
            territories.entry(t.clone()).or_default().add(rule);
        }
    }
    Report {
        from,
        to,
        generated: crate::clock::rounded(now),
        provenance,
        totals,
        orders,
        territories,
        meetings,
        rules,
        tables: Vec::new(),
        not_done: NOT_DONE.iter().map(|s| s.to_string()).collect(),
        notes: NOTES.iter().map(|s| s.to_string()).collect(),
    }
}

/// `--from`/`--to`: an RFC 3339 time, or a date `YYYY-MM-DD` (UTC midnight; with
/// `end_of_day`, the midnight after, so the whole day is in the window).
pub fn parse_date(text: &str, end_of_day: bool) -> Result<Timestamp, String> {
    if let Ok(t) = text.parse::<Timestamp>() {
        return Ok(t);
    }
    let bad = || {
        format!(
            "`{text}` is neither a date (2026-11-01) nor an RFC 3339 time (2026-11-01T08:00:00Z)"
        )
    };
    // A date alone is midnight UTC; parsing it as that time also checks the date.
    let is_date = text.len() == 10 && text.bytes().all(|b| b.is_ascii_digit() || b == b'-');
    if !is_date {
        return Err(bad());
    }
    let day: Timestamp = format!("{text}T00:00:00Z").parse().map_err(|_| bad())?;
    if end_of_day {
        day.checked_add(SignedDuration::from_hours(24))
            .map_err(|e| format!("`{text}`: {e}"))
    } else {
        Ok(day)
    }
}

/// `3d 4h 05m`, `2h 10m`, `45s`.
pub fn human_duration(seconds: i64) -> String {
    let (d, h, m, s) = (
        seconds / 86_400,
        seconds / 3600 % 24,
        seconds / 60 % 60,
        seconds % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s:02}s"),
        (0, _, _) => format!("{h}h {m:02}m"),
        _ => format!("{d}d {h}h {m:02}m"),
    }
}
