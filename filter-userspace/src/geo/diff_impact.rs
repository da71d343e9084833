//! What a table change does to the rules in force: per meeting, the addresses a new table
//! puts into a territory its rules block (newly blocked) or takes out of every territory
//! they block (newly passing), and per rule which of those it accounts for.
//!
//! The rules come in as plain data ([`Scope`]), so this module knows the decision only as
//! far as the table matters to it: a meeting's allow exceptions and its rules' prefixes
//! decide the addresses they cover whatever the table says, so those addresses are left
//! out. Addresses that move between two territories the meeting blocks stay blocked and
//! are not reported, whichever rule blocks them.

use filter_common::territory::{TERRITORY_COUNT, TerritoryId};

use super::{Count, Segment, TableDiff, Tally};

/// A rule in force, as far as the table matters to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleRef {
    pub order: String,
    pub dry_run: bool,
    pub territories: Vec<TerritoryId>,
}

/// What the rules of one meeting (or the unbound flows of shared ports) block by territory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScopeKind {
    Meeting,
    /// Packets on a port meetings share that no meeting has bound: dropped when any
    /// enforcing rule in force blocks their territory.
    UnboundShared,
}

/// The rules that apply to one set of packets, and the addresses the table does not
/// decide for them (overrides), per family as inclusive ranges in any order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope {
    pub name: String,
    pub kind: ScopeKind,
    pub rules: Vec<RuleRef>,
    pub exempt_v4: Vec<(u128, u128)>,
    pub exempt_v6: Vec<(u128, u128)>,
}

/// Newly blocked and newly passing addresses, per family.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Effect {
    pub blocked_v4: Count,
    pub blocked_v6: Count,
    pub passing_v4: Count,
    pub passing_v6: Count,
}

impl Effect {
    pub fn is_none(&self) -> bool {
        [
            self.blocked_v4,
            self.blocked_v6,
            self.passing_v4,
            self.passing_v6,
        ]
        .iter()
        .all(Count::is_zero)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleImpact {
    pub rule: RuleRef,
    /// Addresses moving into a territory this rule blocks from one no rule of the scope
    /// blocks; and out of one this rule blocks into one none blocks.
    pub effect: Effect,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScopeImpact {
    pub name: String,
    pub kind: ScopeKind,
    /// The scope's rules together: an address two rules block is counted once.
    pub effect: Effect,
    pub rules: Vec<RuleImpact>,
}

/// Sorted, disjoint, adjacent ranges joined.
fn normalized(mut ranges: Vec<(u128, u128)>) -> Vec<(u128, u128)> {
    ranges.sort_unstable();
    let mut out: Vec<(u128, u128)> = Vec::with_capacity(ranges.len());
    for (first, last) in ranges {
        match out.last_mut() {
            Some((_, end)) if end.checked_add(1).is_none_or(|next| first <= next) => {
                *end = (*end).max(last);
            }
            _ => out.push((first, last)),
        }
    }
    out
}

/// Calls `f` with each piece of `seg` that no exempt range covers. `exempt` is sorted and
/// disjoint; `k` is where the previous (earlier) segment left off in it.
fn uncovered(seg: &Segment, exempt: &[(u128, u128)], k: &mut usize, mut f: impl FnMut(u128, u128)) {
    while exempt.get(*k).is_some_and(|e| e.1 < seg.first) {
        *k += 1;
    }
    let mut pos = seg.first;
    let mut i = *k;
    loop {
        match exempt.get(i) {
            Some(&(first, last)) if first <= seg.last => {
                if first > pos {
                    f(pos, first - 1);
                }
                if last >= seg.last {
                    return;
                }
                pos = pos.max(last + 1);
                i += 1;
            }
            _ => {
                f(pos, seg.last);
                return;
            }
        }
    }
}

/// Tallies of one scope while its family's segments are walked.
struct Tallies {
    blocked: Tally,
    passing: Tally,
    rules: Vec<(Tally, Tally)>,
}

impl Tallies {
    fn new(rules: usize) -> Tallies {
        Tallies {
            blocked: Tally::default(),
            passing: Tally::default(),
            rules: (0..rules).map(|_| Default::default()).collect(),
        }
    }
}

/// One family: the tallies of `scope` over `segments`.
fn walk(scope: &Scope, segments: &[Segment], exempt: &[(u128, u128)]) -> Tallies {
    let mut blocks = vec![vec![false; TERRITORY_COUNT]; scope.rules.len()];
    let mut any = vec![false; TERRITORY_COUNT];
    for (rule, row) in scope.rules.iter().zip(&mut blocks) {
        for &id in &rule.territories {
            if let Some(slot) = row.get_mut(usize::from(id)) {
                *slot = true;
                any[usize::from(id)] = true;
            }
        }
    }
    let blocked = |id: TerritoryId| any.get(usize::from(id)).copied().unwrap_or(false);
    let mut t = Tallies::new(scope.rules.len());
    let mut k = 0;
    for seg in segments {
        let (was, is) = (blocked(seg.from), blocked(seg.to));
        if was == is {
            continue;
        }
        // The territory that decides: the new one when newly blocked, else the old one.
        let decisive = usize::from(if is { seg.to } else { seg.from });
        uncovered(seg, exempt, &mut k, |first, last| {
            let total = if is { &mut t.blocked } else { &mut t.passing };
            total.add(first, last);
            for (row, (blocked, passing)) in blocks.iter().zip(&mut t.rules) {
                if row.get(decisive).copied().unwrap_or(false) {
                    let tally = if is { blocked } else { passing };
                    tally.add(first, last);
                }
            }
        });
    }
    t
}

/// Per scope, what `diff` newly blocks and lets pass; scopes without a territory rule are
/// left out, since no table decides anything for them.
pub fn impact(diff: &TableDiff, scopes: &[Scope]) -> Vec<ScopeImpact> {
    let mut out = Vec::new();
    for scope in scopes {
        if scope.rules.iter().all(|r| r.territories.is_empty()) {
            continue;
        }
        let v4 = walk(scope, &diff.v4, &normalized(scope.exempt_v4.clone()));
        let v6 = walk(scope, &diff.v6, &normalized(scope.exempt_v6.clone()));
        let rules = scope
            .rules
            .iter()
            .zip(v4.rules.into_iter().zip(v6.rules))
            .map(|(rule, ((b4, p4), (b6, p6)))| RuleImpact {
                rule: rule.clone(),
                effect: Effect {
                    blocked_v4: b4.finish(),
                    blocked_v6: b6.finish(),
                    passing_v4: p4.finish(),
                    passing_v6: p6.finish(),
                },
            })
            .collect();
        out.push(ScopeImpact {
            name: scope.name.clone(),
            kind: scope.kind,
            effect: Effect {
                blocked_v4: v4.blocked.finish(),
                blocked_v6: v6.blocked.finish(),
                passing_v4: v4.passing.finish(),
                passing_v6: v6.passing.finish(),
            },
            rules,
        });
    }
    out
}
