//! Which kernel rule slot (0..8 per session) each rule holds, and what a change
//! does to the rules: added, removed, narrowed.
//!
//! Per-rule counters are indexed by slot, so a rule keeps its slot for its whole life:
//! removing rule 0 must not move rule 1 into slot 0 and hand it rule 0's counters. Slots
//! are stored in the state ([`Rule::slot`]) and assigned here when a change is committed.

use std::collections::BTreeSet;

use anyhow::bail;
use filter_common::policy::RULES_PER_SESSION;
use serde_json::{Value, json};

use crate::state::{Meeting, Rule, State};

/// A rule's identity across changes: the same order issued at the same time.
fn same_rule(a: &Rule, b: &Rule) -> bool {
    a.order == b.order && a.issued == b.issued
}

/// Every rule holds a slot: a prefix-only rule too, because its drop overrides apply only
/// while its slot names it, and are credited to it.
fn holds_slot(_rule: &Rule) -> bool {
    true
}

/// Gives every rule of `meeting` a slot: the one it has if valid and not taken, else the
/// one the same rule held in `before`, else the lowest free one.
pub fn assign_meeting(before: Option<&Meeting>, meeting: &mut Meeting) -> anyhow::Result<()> {
    let mut used = BTreeSet::new();
    for rule in &mut meeting.rules {
        let kept = rule.slot.filter(|&s| {
            holds_slot(rule) && usize::from(s) < RULES_PER_SESSION && !used.contains(&s)
        });
        rule.slot = kept;
        if let Some(s) = kept {
            used.insert(s);
        }
    }
    for rule in meeting
        .rules
        .iter_mut()
        .filter(|r| holds_slot(r) && r.slot.is_none())
    {
        let inherited = before
            .and_then(|m| m.rules.iter().find(|old| same_rule(old, rule)))
            .and_then(|old| old.slot)
            .filter(|s| !used.contains(s));
        let slot = match inherited {
            Some(s) => s,
            None => match (0..RULES_PER_SESSION as u8).find(|s| !used.contains(s)) {
                Some(s) => s,
                None => {
                    bail!("a meeting holds at most {RULES_PER_SESSION} rules (territory or prefix)")
                }
            },
        };
        rule.slot = Some(slot);
        used.insert(slot);
    }
    Ok(())
}

/// [`assign_meeting`] for every meeting of `new`, inheriting from the same meeting (same
/// name and session) in `old`.
pub fn assign(old: &State, new: &mut State) -> anyhow::Result<()> {
    for (name, meeting) in &mut new.meetings {
        let before = old
            .meetings
            .get(name)
            .filter(|m| m.session == meeting.session);
        assign_meeting(before, meeting).map_err(|e| anyhow::anyhow!("meeting `{name}`: {e}"))?;
    }
    Ok(())
}

/// `state` with every rule in the slot `kernel::sync` puts it in: the stored
/// one, or for rules saved before slots were recorded, the next free one in rule order.
pub fn as_synced(state: &State) -> anyhow::Result<State> {
    let mut placed = state.clone();
    assign(&State::default(), &mut placed)?;
    Ok(placed)
}

/// A rule with the meeting it belongs to.
#[derive(Clone, Debug)]
pub struct PlacedRule {
    pub meeting: String,
    pub session: u32,
    pub rule: Rule,
}

impl PlacedRule {
    /// `(session, slot)` of its counters, if it holds a slot.
    pub fn counter_slot(&self) -> Option<(u32, u8)> {
        self.rule.slot.map(|s| (self.session, s))
    }

    /// The rule as the audit trail records it.
    pub fn to_json(&self) -> Value {
        json!({
            "meeting": self.meeting,
            "session": self.session,
            "order": self.rule.order,
            "territories": self.rule.territories,
            "prefixes": self.rule.prefixes,
            "expires": self.rule.expires.map(|t| t.to_string()),
            "mode": if self.rule.dry_run { "dry-run" } else { "enforce" },
            "issued": self.rule.issued.to_string(),
            "issued_by": self.rule.issued_by,
            "slot": self.rule.slot,
        })
    }
}

/// What a change did to the rules.
#[derive(Clone, Debug, Default)]
pub struct RuleChanges {
    pub added: Vec<PlacedRule>,
    pub removed: Vec<PlacedRule>,
    /// Still in force but with different targets, mode or slot: (before, after).
    pub changed: Vec<(PlacedRule, PlacedRule)>,
}

fn placed(state: &State) -> Vec<PlacedRule> {
    state
        .meetings
        .iter()
        .flat_map(|(name, m)| {
            m.rules.iter().map(|r| PlacedRule {
                meeting: name.clone(),
                session: m.session,
                rule: r.clone(),
            })
        })
        .collect()
}

/// Matches rules of `old` and `new`: unchanged ones first, then the same order issued at
/// the same time (two blocks under one order within a second stay apart this way).
pub fn diff(old: &State, new: &State) -> RuleChanges {
    let before = placed(old);
    let after = placed(new);
    let same_place =
        |a: &PlacedRule, b: &PlacedRule| a.meeting == b.meeting && a.session == b.session;
    let mut matched_after = vec![false; after.len()];
    let mut matched_before = vec![false; before.len()];
    for (i, b) in before.iter().enumerate() {
        let found = (0..after.len())
            .find(|&j| !matched_after[j] && same_place(b, &after[j]) && after[j].rule == b.rule);
        if let Some(j) = found {
            matched_after[j] = true;
            matched_before[i] = true;
        }
    }
    let mut changes = RuleChanges::default();
    for (i, b) in before
        .iter()
        .enumerate()
        .filter(|(i, _)| !matched_before[*i])
    {
        let found = (0..after.len()).find(|&j| {
            !matched_after[j] && same_place(b, &after[j]) && same_rule(&b.rule, &after[j].rule)
        });
        match found {
            Some(j) => {
                matched_after[j] = true;
                changes.changed.push((b.clone(), after[j].clone()));
            }
            None => changes.removed.push(before[i].clone()),
        }
    }
    changes.added = after
        .iter()
        .zip(&matched_after)
        .filter(|(_, m)| !**m)
        .map(|(a, _)| a.clone())
        .collect();
    changes
}

impl RuleChanges {
    /// Counter slots whose rule ends here (removed, or moved off the slot).
    pub fn ended_slots(&self) -> Vec<(PlacedRule, (u32, u8))> {
        let removed = self
            .removed
            .iter()
            .filter_map(|r| Some((r.clone(), r.counter_slot()?)));
        let moved = self.changed.iter().filter_map(|(b, a)| {
            let slot = b.counter_slot()?;
            (a.counter_slot() != Some(slot)).then(|| (b.clone(), slot))
        });
        removed.chain(moved).collect()
    }

    /// Counter slots a rule starts on here: their counters must start from zero.
    pub fn started_slots(&self) -> Vec<(u32, u8)> {
        let added = self.added.iter().filter_map(PlacedRule::counter_slot);
        let moved = self.changed.iter().filter_map(|(b, a)| {
            let slot = a.counter_slot()?;
            (b.counter_slot() != Some(slot)).then_some(slot)
        });
        added.chain(moved).collect()
    }
}

#[cfg(test)]
#[path = "rule_slots_tests.rs"]
mod tests;
