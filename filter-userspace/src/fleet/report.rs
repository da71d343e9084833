//! The fleet's transparency report: each rule of the fleet's versions, with what every
//! relay counted for it summed. Packets and bytes add up; the relays' distinct-source
//! sketches merge by register-wise maximum, which is exactly the sketch of the union of
//! their sources, so a participant seen by two relays counts once. The rule lives come
//! from the version log (when a version added a rule, changed it, dropped it); a relay's
//! rule joins the fleet rule whose versions include the one that issued it there.
//!
//! Rendering is the local report's (`crate::report`); only the list of relays is added.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
};

use filter_common::accounting::SKETCH_REGISTERS;
use jiff::Timestamp;
use serde::Serialize;

use relays::relay_row;
pub use relays::{RelayRow, relays_markdown, warnings};

use super::{
    counters::{RuleCount, issuing_version},
    document::{FleetRule, PolicyDoc},
    history::{self, Stored},
    store::RelayView,
};
use crate::{
    report::{self, Counts, Provenance, Report, RuleLife},
    sketch,
};

#[derive(Debug, Serialize)]
pub struct FleetReport {
    #[serde(flatten)]
    pub report: Report,
    pub relays: Vec<RelayRow>,
}

/// What the relays counted for one rule.
#[derive(Default)]
struct Sum {
    relays: BTreeSet<String>,
    uncounted: usize,
    packets: u64,
    bytes: u64,
    registers: Option<[u8; SKETCH_REGISTERS]>,
}

impl Sum {
    fn add(&mut self, relay: &str, rule: &RuleCount) {
        self.relays.insert(relay.to_string());
        let counted = rule.counts.as_ref().and_then(|t| {
            let regs = sketch::registers_from_hex(&t.registers)?;
            Some((t, regs))
        });
        let Some((tally, regs)) = counted else {
            self.uncounted += 1;
            return;
        };
        self.packets += tally.packets;
        self.bytes += tally.bytes;
        let merged = self.registers.get_or_insert([0; SKETCH_REGISTERS]);
        for (m, r) in merged.iter_mut().zip(regs) {
            *m = (*m).max(r);
        }
    }

    fn counts(&self) -> Option<Counts> {
        let merged = self.registers.as_ref()?;
        let mut source = format!("{} relays", self.relays.len());
        if self.uncounted > 0 {
            let _ = write!(source, " ({} rules without counts)", self.uncounted);
        }
        Some(Counts {
            packets: self.packets,
            bytes: self.bytes,
            distinct_sources: sketch::estimate_count(merged),
            registers: sketch::registers_hex(merged),
            source,
        })
    }
}

/// A rule of the fleet from the version that added it to the one that dropped it.
struct FleetLife {
    life: RuleLife,
    first: u64,
    until: Option<u64>,
    sum: Sum,
}

fn mode(rule: &FleetRule) -> &'static str {
    if rule.dry_run { "dry-run" } else { "enforce" }
}

fn strings<T: ToString>(items: &[T]) -> Vec<String> {
    items.iter().map(ToString::to_string).collect()
}

/// Every rule the versions record, in the order versions added them. Rules are told
/// apart by meeting, order reference and, for one order's several rules on a meeting,
/// their place among them.
fn fleet_lives(docs: &[PolicyDoc]) -> Vec<FleetLife> {
    let mut lives: Vec<FleetLife> = Vec::new();
    let mut open: BTreeMap<(String, String, usize), usize> = BTreeMap::new();
    for doc in docs {
        let by = format!("fleet v{} by {}", doc.version, doc.author);
        let mut seen = BTreeSet::new();
        for (meeting, m) in &doc.meetings {
            let mut nth: BTreeMap<&str, usize> = BTreeMap::new();
            for rule in &m.rules {
                let k = nth.entry(rule.order.as_str()).or_default();
                let key = (meeting.clone(), rule.order.clone(), *k);
                *k += 1;
                seen.insert(key.clone());
                let (territories, prefixes) = (strings(&rule.territories), strings(&rule.prefixes));
                if let Some(&i) = open.get(&key) {
                    let life = &mut lives[i].life;
                    let same = life.territories == territories
                        && life.prefixes == prefixes
                        && life.expires == rule.expires
                        && life.mode == mode(rule);
                    if !same {
                        let before = [life.territories.clone(), life.prefixes.clone()].concat();
                        let after = [territories.clone(), prefixes.clone()].concat();
                        life.changes.push(format!(
                            "{by} at {}: {} → {}",
                            doc.written,
                            before.join(", "),
                            after.join(", ")
                        ));
                        life.territories = territories;
                        life.prefixes = prefixes;
                        life.expires = rule.expires;
                        life.mode = mode(rule).to_string();
                    }
                    continue;
                }
                open.insert(key, lives.len());
                lives.push(FleetLife {
                    life: RuleLife {
                        meeting: meeting.clone(),
                        session: 0,
                        order: rule.order.clone(),
                        territories,
                        prefixes,
                        mode: mode(rule).to_string(),
                        issued: doc.written,
                        issued_by: by.clone(),
                        expires: rule.expires,
                        slot: None,
                        removed: None,
                        removed_by: None,
                        added_seq: doc.version,
                        changes: Vec::new(),
                        counts: None,
                    },
                    first: doc.version,
                    until: None,
                    sum: Sum::default(),
                });
            }
        }
        open.retain(|key, &mut i| {
            if seen.contains(key) {
                return true;
            }
            let l = &mut lives[i];
            l.life.removed = Some(doc.written);
            l.life.removed_by = Some(by.clone());
            l.until = Some(doc.version);
            false
        });
    }
    lives
}

/// The fleet rule a relay's rule belongs to: same meeting and order, in force in the
/// version that issued it there, the same targets preferred.
fn find(lives: &[FleetLife], rule: &RuleCount) -> Option<usize> {
    let version = issuing_version(&rule.issued_by)?;
    let candidates: Vec<usize> = (0..lives.len())
        .filter(|&i| {
            let l = &lives[i];
            l.life.meeting == rule.meeting
                && l.life.order == rule.order
                && l.first <= version
                && l.until.is_none_or(|u| version < u)
        })
        .collect();
    let same_targets = candidates.iter().copied().find(|&i| {
        lives[i].life.territories == rule.territories && lives[i].life.prefixes == rule.prefixes
    });
    same_targets.or(candidates.first().copied())
}

/// A relay's rule no fleet version accounts for (a local rule, or a version gone from
/// the log): reported on its own, naming the relay.
fn relay_life(relay: &str, rule: &RuleCount) -> FleetLife {
    FleetLife {
        life: RuleLife {
            meeting: rule.meeting.clone(),
            session: 0,
            order: rule.order.clone(),
            territories: rule.territories.clone(),
            prefixes: rule.prefixes.clone(),
            mode: rule.mode.clone(),
            issued: rule.issued,
            issued_by: format!("{} on relay {relay}", rule.issued_by),
            expires: rule.expires,
            slot: None,
            removed: rule.removed,
            removed_by: rule.removed.map(|_| format!("on relay {relay}")),
            added_seq: 0,
            changes: Vec::new(),
            counts: None,
        },
        first: 0,
        until: None,
        sum: Sum::default(),
    }
}

/// The report for `[from, to)` from the version log (`versions`, `current`) and the
/// relays' keys, made at `now`.
pub fn build(
    versions: &[Stored],
    current: Option<&[u8]>,
    relays: &BTreeMap<String, RelayView>,
    from: Timestamp,
    to: Timestamp,
    now: Timestamp,
) -> FleetReport {
    let docs: Vec<PolicyDoc> = versions
        .iter()
        .filter_map(|v| serde_json::from_slice(&v.bytes).ok())
        .collect();
    let mut lives = fleet_lives(&docs);
    for (name, view) in relays {
        let counted = view.status.as_ref().and_then(|s| s.counters.as_ref());
        for rule in counted.map_or(&[][..], |c| &c.rules) {
            let i = find(&lives, rule).unwrap_or_else(|| {
                lives.push(relay_life(name, rule));
                lives.len() - 1
            });
            lives[i].sum.add(name, rule);
        }
    }
    let rows: Vec<RelayRow> = relays
        .iter()
        .map(|(name, view)| relay_row(name, view, from))
        .collect();
    let problems = history::problems(versions, current);
    let chain = if problems.is_empty() {
        "intact".to_string()
    } else {
        format!("NOT intact: {}", problems.join("; "))
    };
    let count = |state: &str| rows.iter().filter(|r| r.state == state).count();
    let provenance = Provenance {
        audit_entries: versions.len(),
        first_seq: docs.first().map(|d| d.version),
        last_seq: docs.last().map(|d| d.version),
        last_hash: docs.last().map(|d| d.hash.clone()),
        chain,
        live_counters: format!(
            "the status keys of {} relays, read {}: {} reporting, {} stale, {} dead",
            rows.len(),
            crate::clock::rounded(now),
            count("reporting"),
            count("stale"),
            count("dead")
        ),
    };
    let lives = lives
        .into_iter()
        .map(|mut l| {
            l.life.counts = l.sum.counts();
            l.life
        })
        .collect();
    let mut report = report::from_lives(lives, from, to, now, &mut |_| None, provenance);
    tables::attach(&mut report, &docs, now);
    report.notes.extend(NOTES.iter().map(|s| s.to_string()));
    FleetReport {
        report,
        relays: rows,
    }
}

const NOTES: [&str; 3] = [
    "Fleet figures sum the relays' status keys: packets and bytes added, distinct-source \
     sketches merged register by register (the maximum), which is the sketch of the union of \
     the relays' sources: a source seen by several relays counts once.",
    "The audit trail here is the fleet's version log; each relay's own trail is named by its \
     audit head under Relays. A rule a relay enforced that no fleet version accounts for is \
     listed on its own, naming the relay.",
    "Relays listed as stale or dead count as of when they last wrote their status.",
];

/// The report as Markdown: the local report's rendering, then the relays.
pub fn markdown(fleet: &FleetReport) -> String {
    let mut out = tables::fleet_markdown(report::markdown(&fleet.report), &fleet.report);
    out.push_str(&relays_markdown(&fleet.relays));
    out
}

#[path = "report_relays.rs"]
mod relays;
#[path = "report_tables.rs"]
mod tables;
#[cfg(test)]
#[path = "report_tests.rs"]
mod tests;
