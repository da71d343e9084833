//! The difference between the state and a policy file, as the state the file asks for and
//! the lines an operator reads before it is applied.
//!
//! Meetings that stay keep their session ids; rules that stay unchanged keep their issue
//! time and issuer (and everything else about them); a rule whose order reference stays
//! but whose content changes is reissued in place. Expired rules are records, not policy:
//! export leaves them out, and apply keeps them as they are.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
};

use anyhow::{Context as _, anyhow, bail};
use filter_common::{maps::capacity::MAX_SESSIONS, policy::RULES_PER_SESSION};
use jiff::Timestamp;
use serde_json::json;

use super::{Declared, DeclaredMeeting, DeclaredRule};
use crate::state::{Meeting, Rule, State};

/// One line of the diff.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// `+` added, `-` removed, `~` changed.
    pub sign: char,
    /// Items of a meeting are indented under it.
    pub nested: bool,
    pub text: String,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let indent = if self.nested { "    " } else { "" };
        write!(f, "{} {indent}{}", self.sign, self.text)
    }
}

/// The kinds of item a diff counts, in the order a summary names them.
const KINDS: [&str; 6] = [
    "meeting",
    "endpoint",
    "flow",
    "rule",
    "allow",
    "territory table",
];

/// Added, removed and changed counts per kind of item, keyed by position in [`KINDS`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary(BTreeMap<usize, [usize; 3]>);

impl Summary {
    fn count(&mut self, kind: &'static str, sign: char) {
        let i = match sign {
            '+' => 0,
            '-' => 1,
            _ => 2,
        };
        let k = KINDS.iter().position(|k| *k == kind).unwrap_or(KINDS.len());
        self.0.entry(k).or_default()[i] += 1;
    }

    fn kinds(&self) -> impl Iterator<Item = (&'static str, &[usize; 3])> {
        self.0
            .iter()
            .map(|(k, counts)| (KINDS.get(*k).copied().unwrap_or("item"), counts))
    }

    pub fn to_json(&self) -> serde_json::Value {
        let kinds = self.kinds().map(|(kind, [added, removed, changed])| {
            let counts = json!({ "added": added, "removed": removed, "changed": changed });
            (kind.to_string(), counts)
        });
        serde_json::Value::Object(kinds.collect())
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        for (kind, counts) in self.kinds() {
            for (n, what) in counts.iter().zip(["added", "removed", "changed"]) {
                if *n > 0 {
                    parts.push(format!(
                        "{n} {kind}{} {what}",
                        if *n == 1 { "" } else { "s" }
                    ));
                }
            }
        }
        f.write_str(&parts.join(", "))
    }
}

/// The state a policy file asks for, and how it differs from the current one.
#[derive(Clone, Debug)]
pub struct Plan {
    pub new: State,
    pub changes: Vec<Change>,
    pub summary: Summary,
}

impl Plan {
    pub fn push(&mut self, kind: &'static str, sign: char, nested: bool, text: String) {
        self.summary.count(kind, sign);
        self.changes.push(Change { sign, nested, text });
    }
}

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
                    flows: want.flows.clone(),
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
    Ok(plan)
}

/// Lists what an added or removed meeting holds.
fn contents(plan: &mut Plan, sign: char, meeting: &Meeting) {
    for e in &meeting.endpoints {
        plan.push("endpoint", sign, true, format!("endpoint {e}"));
    }
    for f in &meeting.flows {
        plan.push("flow", sign, true, format!("flow {f}"));
    }
    for r in &meeting.rules {
        plan.push("rule", sign, true, format!("rule {}", describe(r)));
    }
    for p in &meeting.allows {
        plan.push("allow", sign, true, format!("allow {p}"));
    }
}

/// `ORD-1: XA, 198.51.100.7/32 until 2026-12-01T18:00:00Z (dry run)`.
fn describe(rule: &Rule) -> String {
    let until = rule
        .expires
        .map_or("until lifted".to_string(), |t| format!("until {t}"));
    let mode = if rule.dry_run { " (dry run)" } else { "" };
    format!("{}: {} {until}{mode}", rule.order, rule.targets())
}

/// Built through serde so that fields other parts of geofence add to `Rule` take their
/// defaults, as in a state file written before those fields existed.
fn new_rule(r: &DeclaredRule, issued: Timestamp, operator: &str) -> anyhow::Result<Rule> {
    let value = json!({
        "order": r.order,
        "territories": r.territories,
        "prefixes": r.prefixes,
        "expires": r.expires,
        "dry_run": r.dry_run,
        "issued": issued,
        "issued_by": operator,
    });
    serde_json::from_value(value).context("building a rule")
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
    set_diff(plan, &mut lines, "flow", &mut m.flows, &want.flows);
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

/// Unchanged rules are kept as they are, changed ones reissued in place (matched by order
/// reference), new ones appended in file order: territory rules keep their slots.
fn update_rules(
    plan: &mut Plan,
    lines: &mut Vec<Change>,
    name: &str,
    have: &Meeting,
    want: &DeclaredMeeting,
    issued: Timestamp,
    operator: &str,
) -> anyhow::Result<Vec<Rule>> {
    let now = Timestamp::now();
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
    let territory_rules = rules.iter().filter(|r| !r.territories.is_empty()).count();
    if territory_rules > RULES_PER_SESSION {
        bail!(
            "{}: meeting `{name}` would have {territory_rules} territory rules, {} of them expired \
             and kept as records; one meeting holds at most {RULES_PER_SESSION}: lift expired \
             rules with `geofence unblock {name} --territory ..`",
            want.at,
            expired.iter().filter(|r| !r.territories.is_empty()).count()
        );
    }
    Ok(())
}
