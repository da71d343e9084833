//! The difference between the state and a policy file, as the state the file asks for and
//! the lines an operator reads before it is applied.
//!
//! Meetings that stay keep their session ids; rules that stay unchanged keep their issue
//! time and issuer (and everything else about them); a rule whose order reference stays
//! but whose content changes is reissued in place. Expired rules are records, not policy:
//! export leaves them out, and apply keeps them as they are.

use std::{collections::BTreeSet, fmt};

use anyhow::{anyhow, bail};
use filter_common::maps::capacity::MAX_SESSIONS;
use jiff::Timestamp;

use super::{
    Declared, DeclaredMeeting,
    rule_match::update_rules,
    state_rule::{describe, new_rule},
    summary::{Change, Plan, Summary},
};
use crate::state::{Meeting, State};

/// Computes the state `declared` asks for from `old`. The territory table is left to the
/// caller, which needs the kernel to tell whether it changed. New and reissued rules are
/// issued at `issued` by `operator`.
pub fn plan(
    old: &State,
    declared: &Declared,
    issued: Timestamp,
    operator: &str,
) -> anyhow::Result<Plan> {
    let mut plan = Plan {
        new: old.clone(),
        changes: Vec::new(),
        summary: Summary::default(),
    };
    for (name, meeting) in &old.meetings {
        if !declared.meetings.contains_key(name) {
            plan.new.meetings.remove(name);
            let what = format!("meeting {name} (session {})", meeting.session);
            plan.push("meeting", '-', false, what);
            contents(&mut plan, '-', meeting);
        }
    }
    if let Some(want) = &declared.mux {
        let (mut lines, mut have) = (Vec::new(), plan.new.mux.clone());
        set_diff(&mut plan, &mut lines, "mux port", &mut have, want);
        plan.new.mux = have;
        for line in lines {
            plan.changes.push(Change {
                nested: false,
                ..line
            });
        }
    }
    // Ids of removed meetings are not reused in the same change: their counters go first.
    let mut taken: BTreeSet<u32> = old.meetings.values().map(|m| m.session).collect();
    for (name, want) in &declared.meetings {
        let meeting = match old.meetings.get(name) {
            None => {
                let session = (1..MAX_SESSIONS)
                    .find(|id| !taken.contains(id))
                    .ok_or_else(|| {
                        anyhow!("no free session id for meeting `{name}`: too many meetings")
                    })?;
                taken.insert(session);
                let rules = want
                    .rules
                    .iter()
                    .map(|r| new_rule(r, issued, operator))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                let meeting = Meeting {
                    session,
                    created: issued,
                    endpoints: want.endpoints.clone(),
                    flows: Vec::new(),
                    rules,
                    allows: want.allows.clone(),
                };
                plan.push(
                    "meeting",
                    '+',
                    false,
                    format!("meeting {name} (session {session})"),
                );
                contents(&mut plan, '+', &meeting);
                meeting
            }
            Some(have) => update(&mut plan, name, have, want, issued, operator)?,
        };
        plan.new.meetings.insert(name.clone(), meeting);
    }
    if let Some(problem) = plan.new.shared_port_conflict() {
        bail!("{problem}");
    }
    Ok(plan)
}

/// Lists what an added or removed meeting holds.
fn contents(plan: &mut Plan, sign: char, meeting: &Meeting) {
    for e in &meeting.endpoints {
        plan.push("endpoint", sign, true, format!("endpoint {e}"));
    }
    for r in &meeting.rules {
        plan.push("rule", sign, true, format!("rule {}", describe(r)));
    }
    for p in &meeting.allows {
        plan.push("allow", sign, true, format!("allow {p}"));
    }
}

/// Replaces `have` by `want` if they differ as sets; pushes the lines.
fn set_diff<T: Ord + Clone + fmt::Display>(
    plan: &mut Plan,
    lines: &mut Vec<Change>,
    kind: &'static str,
    have: &mut Vec<T>,
    want: &[T],
) {
    let (old, new): (BTreeSet<&T>, BTreeSet<&T>) = (have.iter().collect(), want.iter().collect());
    if old == new {
        return;
    }
    for gone in old.difference(&new) {
        plan.summary.count(kind, '-');
        lines.push(Change {
            sign: '-',
            nested: true,
            text: format!("{kind} {gone}"),
        });
    }
    for added in new.difference(&old) {
        plan.summary.count(kind, '+');
        lines.push(Change {
            sign: '+',
            nested: true,
            text: format!("{kind} {added}"),
        });
    }
    *have = want.to_vec();
}

fn update(
    plan: &mut Plan,
    name: &str,
    have: &Meeting,
    want: &DeclaredMeeting,
    issued: Timestamp,
    operator: &str,
) -> anyhow::Result<Meeting> {
    let mut m = have.clone();
    let mut lines = Vec::new();
    set_diff(
        plan,
        &mut lines,
        "endpoint",
        &mut m.endpoints,
        &want.endpoints,
    );
    m.rules = update_rules(plan, &mut lines, name, have, want, issued, operator)?;
    set_diff(plan, &mut lines, "allow", &mut m.allows, &want.allows);
    if !lines.is_empty() {
        plan.push(
            "meeting",
            '~',
            false,
            format!("meeting {name} (session {})", m.session),
        );
        plan.changes.extend(lines);
    }
    Ok(m)
}
