//! Each rule of the state with what its kernel counters show, for `status` and `stats`:
//! packets and bytes dropped (or that would have been, in dry run) and the estimated
//! number of distinct sources.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::human;
use crate::{
    kernel::{self, Kernel, RuleCounts},
    rule_slots,
    state::{Rule, State},
};

/// The counts of the rules of one state, by meeting name and the rule's index in it.
#[derive(Debug, Default)]
pub struct RuleCounters {
    by_rule: BTreeMap<(String, usize), RuleCounts>,
}

impl RuleCounters {
    /// Reads the slot of every rule of `state` that holds one: a read per rule, not a scan.
    pub fn read(kernel: &Kernel, state: &State) -> anyhow::Result<RuleCounters> {
        let counts = kernel::read_rule_stats_of(kernel, state)?;
        Self::from_slots(state, &counts)
    }

    /// Matches `(session, slot)` counts to the rules of `state`, placed in their slots as
    /// `kernel::sync` placed them (rules saved before slots were recorded included).
    pub fn from_slots(
        state: &State,
        counts: &BTreeMap<(u32, u8), RuleCounts>,
    ) -> anyhow::Result<RuleCounters> {
        let placed = rule_slots::as_synced(state)?;
        let mut by_rule = BTreeMap::new();
        for (name, meeting) in &placed.meetings {
            for (index, rule) in meeting.rules.iter().enumerate() {
                let found = rule.slot.and_then(|s| counts.get(&(meeting.session, s)));
                if let Some(c) = found {
                    by_rule.insert((name.clone(), index), *c);
                }
            }
        }
        Ok(RuleCounters { by_rule })
    }

    /// The counts of rule `index` of `meeting`; `None` if it holds no counter slot.
    pub fn of(&self, meeting: &str, index: usize) -> Option<&RuleCounts> {
        self.by_rule.get(&(meeting.to_string(), index))
    }
}

/// `dropped` or `would drop`, as the rule's mode counts.
pub fn verb(rule: &Rule) -> &'static str {
    if rule.dry_run {
        "would drop"
    } else {
        "dropped"
    }
}

pub fn mode(rule: &Rule) -> &'static str {
    if rule.dry_run { "dry-run" } else { "enforce" }
}

/// `1,234 pkts 1.2 MiB ~37 sources`.
pub fn counts_text(c: &RuleCounts) -> String {
    format!(
        "{} pkts {} ~{} {}",
        human::count(c.packets),
        human::bytes(c.bytes),
        human::count(c.distinct_sources),
        if c.distinct_sources == 1 {
            "source"
        } else {
            "sources"
        }
    )
}

/// What a rule without counts shows instead.
pub const NOT_COUNTED: &str = "not counted per rule";

/// The rule's counts as JSON fields (null when they were not read or the rule holds no
/// counter slot).
pub fn counts_json(c: Option<&RuleCounts>) -> Value {
    json!({
        "packets": c.map(|c| c.packets),
        "bytes": c.map(|c| c.bytes),
        "distinct_sources": c.map(|c| c.distinct_sources),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Meeting;

    fn rule(order: &str, territory: Option<&str>, slot: Option<u8>) -> Rule {
        Rule {
            order: order.into(),
            territories: territory
                .map(|t| vec![t.parse().expect("territory")])
                .unwrap_or_default(),
            prefixes: if territory.is_none() {
                vec![crate::prefix::parse_prefix("198.51.100.0/24").expect("prefix")]
            } else {
                vec![]
            },
            expires: None,
            dry_run: false,
            issued: "2026-11-28T10:00:00Z".parse().expect("time"),
            issued_by: "test".into(),
            slot,
        }
    }

    fn counts(packets: u64) -> RuleCounts {
        RuleCounts {
            packets,
            bytes: packets * 100,
            distinct_sources: packets / 2,
            registers: [0; filter_common::accounting::SKETCH_REGISTERS],
        }
    }

    #[test]
    fn rules_get_the_counts_of_their_slots() {
        let mut state = State::default();
        state.meetings.insert(
            "m".into(),
            Meeting {
                session: 3,
                created: "2026-11-28T09:00:00Z".parse().expect("time"),
                endpoints: vec![],
                flows: vec![],
                // Slot 1 held by the first rule; the second, saved without a slot, gets
                // the lowest free one (0), as sync placed it; the prefix rule holds none.
                rules: vec![
                    rule("ORD-1", Some("XA"), Some(1)),
                    rule("ORD-2", Some("XB"), None),
                    rule("ORD-3", None, None),
                ],
                allows: vec![],
            },
        );
        let slots = BTreeMap::from([((3, 0), counts(10)), ((3, 1), counts(20))]);
        let view = RuleCounters::from_slots(&state, &slots).expect("placed");
        assert_eq!(view.of("m", 0).map(|c| c.packets), Some(20));
        assert_eq!(view.of("m", 1).map(|c| c.packets), Some(10));
        assert!(view.of("m", 2).is_none());
        assert!(view.of("other", 0).is_none());
        assert_eq!(counts_text(&counts(2)), "2 pkts 200 B ~1 source");
        assert_eq!(
            counts_text(&counts(1234)),
            "1,234 pkts 120.5 KiB ~617 sources"
        );
        assert_eq!(counts_json(None)["packets"], Value::Null);
        assert_eq!(counts_json(Some(&counts(4)))["bytes"], 400);
    }
}
