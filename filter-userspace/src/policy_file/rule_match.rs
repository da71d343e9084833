//! Matching a meeting's rules in the state to those in the file.

use std::collections::BTreeMap;

use anyhow::bail;
use filter_common::policy::RULES_PER_SESSION;
use jiff::Timestamp;

use super::{
    DeclaredMeeting, DeclaredRule,
    state_rule::{describe, new_rule},
    summary::{Change, Plan},
};
use crate::state::{Meeting, Rule};

/// Unchanged rules are kept as they are, changed ones reissued in place (matched by order
/// reference), new ones appended in file order: rules keep their slots. `issued` is the
/// plan's one clock reading: what has expired is judged by it too.
pub(super) fn update_rules(
    plan: &mut Plan,
    lines: &mut Vec<Change>,
    name: &str,
    have: &Meeting,
    want: &DeclaredMeeting,
    issued: Timestamp,
    operator: &str,
) -> anyhow::Result<Vec<Rule>> {
    let now = issued;
    let live: Vec<usize> = (0..have.rules.len())
        .filter(|&i| !have.rules[i].expired(now))
        .collect();
    // matched[i]: the file's rule that old rule i became.
    let mut matched: BTreeMap<usize, &DeclaredRule> = BTreeMap::new();
    let mut unmatched: Vec<&DeclaredRule> = Vec::new();
    for rule in &want.rules {
        match live
            .iter()
            .find(|&&i| !matched.contains_key(&i) && rule.same_as(&have.rules[i]))
        {
            Some(&i) => {
                matched.insert(i, rule);
            }
            None => unmatched.push(rule),
        }
    }
    let mut added = Vec::new();
    for rule in unmatched {
        let same_order = live
            .iter()
            .find(|&&i| !matched.contains_key(&i) && have.rules[i].order == rule.order);
        match same_order {
            Some(&i) => {
                matched.insert(i, rule);
            }
            None => added.push(rule),
        }
    }
    let mut rules = Vec::new();
    for (i, old) in have.rules.iter().enumerate() {
        let Some(want) = matched.get(&i) else {
            if live.contains(&i) {
                plan.summary.count("rule", '-');
                let text = format!("rule {}", describe(old));
                lines.push(Change {
                    sign: '-',
                    nested: true,
                    text,
                });
            } else {
                rules.push(old.clone());
            }
            continue;
        };
        if want.same_as(old) {
            rules.push(old.clone());
            continue;
        }
        let mut rule = old.clone();
        rule.territories = want.territories.clone();
        rule.prefixes = want.prefixes.clone();
        rule.expires = want.expires;
        rule.dry_run = want.dry_run;
        rule.issued = issued;
        rule.issued_by = operator.to_string();
        plan.summary.count("rule", '~');
        let text = format!("rule {} → {}", describe(old), describe(&rule));
        lines.push(Change {
            sign: '~',
            nested: true,
            text,
        });
        rules.push(rule);
    }
    for want in added {
        let rule = new_rule(want, issued, operator)?;
        plan.summary.count("rule", '+');
        lines.push(Change {
            sign: '+',
            nested: true,
            text: format!("rule {}", describe(&rule)),
        });
        rules.push(rule);
    }
    check_kept_expired(name, &rules, want, now)?;
    Ok(rules)
}

/// Expired rules kept as records still hold their prefixes and territory slots.
fn check_kept_expired(
    name: &str,
    rules: &[Rule],
    want: &DeclaredMeeting,
    now: Timestamp,
) -> anyhow::Result<()> {
    let expired: Vec<&Rule> = rules.iter().filter(|r| r.expired(now)).collect();
    for old in &expired {
        let wanted = want
            .rules
            .iter()
            .flat_map(|r| &r.prefixes)
            .chain(&want.allows);
        if let Some(prefix) = wanted.into_iter().find(|p| old.prefixes.contains(p)) {
            bail!(
                "{}: meeting `{name}`: prefix {prefix} is held by the expired rule of order {}, \
                 kept as a record; lift it first with `geofence unblock {name} --prefix {prefix}`",
                want.at,
                old.order
            );
        }
    }
    // Every rule holds a policy slot, prefix-only ones too.
    if rules.len() > RULES_PER_SESSION {
        bail!(
            "{}: meeting `{name}` would have {} rules, {} of them expired and kept as \
             records; one meeting holds at most {RULES_PER_SESSION} (territory or prefix): \
             lift expired rules with `geofence unblock {name} --territory ..` or `--prefix ..`",
            want.at,
            rules.len(),
            expired.len()
        );
    }
    Ok(())
}
