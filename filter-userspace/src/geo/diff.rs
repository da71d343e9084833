//! What changes between two territory tables: which addresses move from one territory to
//! another, counted per pair of territories, and what that does to the rules in force.
//!
//! Both tables are first brought to one form, whatever they were read from (files parsed
//! into a [`GeoTable`], or the kernel's flattened arrays): per address family, the
//! disjoint runs that cover the whole space in address order, each with its territory
//! (unknown where no prefix covers it). Two such lists are walked side by side once, so a
//! diff costs O(n + m) in the number of runs, and the runs where the territories differ
//! are the answer. IPv4 runs are kept as `u128` too, so one walk serves both families.

#[path = "diff_flat.rs"]
mod flat;
#[path = "diff_impact.rs"]
mod impact;
#[path = "diff_render.rs"]
mod render;

use std::collections::HashMap;

use filter_common::territory::{TERRITORY_UNKNOWN, TerritoryId};
use ipnet::{Ipv6Net, Ipv6Subnets};

pub use impact::{Effect, RuleImpact, RuleRef, Scope, ScopeImpact, ScopeKind, impact};
pub use render::{amount_text, count_text, json, one_line, text, v6_size};

use super::{GeoTable, NetBits, flat::disjoint_ranges_v6};

/// An address family, for the size of its space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    /// The family's last address.
    pub fn last(self) -> u128 {
        match self {
            Family::V4 => u128::from(u32::MAX),
            Family::V6 => u128::MAX,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }
}

/// One family's table as disjoint runs covering its whole space: `(first address,
/// territory)`, each run reaching to the next one's first address (the last to the end of
/// the space). The first run starts at 0; neighbours differ.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Runs {
    family: Family,
    starts: Vec<(u128, TerritoryId)>,
}

impl Runs {
    /// Runs from starts in increasing order (the first run at 0 is added as unknown if
    /// missing); equal neighbours are joined and starts beyond the space dropped.
    pub(crate) fn new(
        family: Family,
        starts: impl IntoIterator<Item = (u128, TerritoryId)>,
    ) -> Runs {
        let mut out: Vec<(u128, TerritoryId)> = vec![(0, TERRITORY_UNKNOWN)];
        for (start, id) in starts {
            if start > family.last() {
                break;
            }
            push_run(&mut out, start, id);
        }
        Runs {
            family,
            starts: out,
        }
    }

    /// The whole space unknown: no table.
    pub fn empty(family: Family) -> Runs {
        Runs::new(family, [])
    }

    pub fn family(&self) -> Family {
        self.family
    }

    pub fn starts(&self) -> &[(u128, TerritoryId)] {
        &self.starts
    }

    /// The territory of `addr`, by binary search (for tests and spot checks).
    pub fn lookup(&self, addr: u128) -> TerritoryId {
        let i = self.starts.partition_point(|r| r.0 <= addr);
        self.starts[i.saturating_sub(1)].1
    }
}

/// Appends a run starting at `start` (not before the last one's start), joining it with
/// the last when the territory is the same; a run at the last one's start replaces it.
pub(crate) fn push_run(out: &mut Vec<(u128, TerritoryId)>, start: u128, id: TerritoryId) {
    if let Some(tail) = out.last_mut()
        && tail.0 == start
    {
        tail.1 = id;
        let n = out.len();
        if n >= 2 && out[n - 2].1 == id {
            out.pop();
        }
        return;
    }
    if out.last().is_some_and(|tail| tail.1 == id) {
        return;
    }
    out.push((start, id));
}

/// Both families of one table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ranges {
    pub v4: Runs,
    pub v6: Runs,
}

impl Ranges {
    /// No table: every address unknown.
    pub fn empty() -> Ranges {
        Ranges {
            v4: Runs::empty(Family::V4),
            v6: Runs::empty(Family::V6),
        }
    }

    /// The runs of a parsed table: the longest prefix covering an address decides.
    pub fn of_table(table: &GeoTable) -> Ranges {
        // IPv4 prefixes laid on the low 32 bits of the IPv6 space (a /n as a /(96 + n))
        // nest and sort as they did, so the IPv6 resolution serves both families.
        let v4: Vec<(Ipv6Net, TerritoryId)> = table
            .v4
            .iter()
            .map(|&(p, id)| {
                let prefix = Ipv6Net::network_of(u128::from(p.first()), p.prefix_len() + 96);
                (prefix, id)
            })
            .collect();
        Ranges {
            v4: Runs::new(Family::V4, disjoint_ranges_v6(&v4)),
            v6: Runs::new(Family::V6, disjoint_ranges_v6(&table.v6)),
        }
    }

    /// The runs of a flattened table, built or as the kernel's arrays hold it.
    pub fn of_flat(v4: super::flat::FlatV4Ref<'_>, v6: super::flat::FlatV6Ref<'_>) -> Ranges {
        Ranges {
            v4: flat::runs_v4(v4),
            v6: flat::runs_v6(v6),
        }
    }
}

/// Addresses whose territory differs between two tables: `first..=last` had `from` in the
/// old table and has `to` in the new one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub first: u128,
    pub last: u128,
    pub from: TerritoryId,
    pub to: TerritoryId,
}

/// Every segment of both families, in address order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableDiff {
    pub v4: Vec<Segment>,
    pub v6: Vec<Segment>,
}

/// Walks both lists of runs side by side: each step ends where either table's run ends.
pub fn diff_runs(old: &Runs, new: &Runs) -> Vec<Segment> {
    let last = old.family.last().min(new.family.last());
    let (a, b) = (&old.starts, &new.starts);
    let (mut i, mut j) = (0, 0);
    let mut pos = 0u128;
    let mut out: Vec<Segment> = Vec::new();
    loop {
        let next_a = a.get(i + 1).map(|r| r.0);
        let next_b = b.get(j + 1).map(|r| r.0);
        let next = match (next_a, next_b) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        };
        let end = next.map_or(last, |n| n - 1).min(last);
        let (from, to) = (a[i].1, b[j].1);
        if from != to {
            out.push(Segment {
                first: pos,
                last: end,
                from,
                to,
            });
        }
        if end >= last {
            return out;
        }
        pos = end + 1;
        if next_a == Some(pos) {
            i += 1;
        }
        if next_b == Some(pos) {
            j += 1;
        }
    }
}

pub fn diff(old: &Ranges, new: &Ranges) -> TableDiff {
    TableDiff {
        v4: diff_runs(&old.v4, &new.v4),
        v6: diff_runs(&old.v6, &new.v6),
    }
}

/// Addresses, and the CIDR prefixes that cover exactly them (the fewest that do).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Count {
    /// Saturates at 2^128 - 1, which only the whole IPv6 space changing reaches.
    pub addresses: u128,
    pub prefixes: u64,
}

impl Count {
    pub fn is_zero(&self) -> bool {
        self.addresses == 0
    }
}

/// Counts address ranges given in increasing order, joining adjacent ones so that a
/// prefix spanning two of them is counted once.
#[derive(Clone, Debug, Default)]
pub(crate) struct Tally {
    count: Count,
    open: Option<(u128, u128)>,
}

impl Tally {
    pub fn add(&mut self, first: u128, last: u128) {
        match &mut self.open {
            Some((_, end)) if end.checked_add(1) == Some(first) => *end = last,
            open => {
                if let Some((f, l)) = open.replace((first, last)) {
                    close(&mut self.count, f, l);
                }
            }
        }
    }

    pub fn finish(mut self) -> Count {
        if let Some((f, l)) = self.open.take() {
            close(&mut self.count, f, l);
        }
        self.count
    }
}

fn close(count: &mut Count, first: u128, last: u128) {
    count.addresses = count
        .addresses
        .saturating_add((last - first).saturating_add(1));
    count.prefixes += Ipv6Subnets::new(first.into(), last.into(), 0).count() as u64;
}

/// What moved from one territory to another in one family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Move {
    pub from: TerritoryId,
    pub to: TerritoryId,
    pub count: Count,
}

/// Totals and moves of one family.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FamilyMoves {
    pub total: Count,
    /// Largest first (by addresses, then prefixes, then territory ids).
    pub moves: Vec<Move>,
}

/// Totals and moves per territory pair, of one family's segments.
pub fn moves(segments: &[Segment]) -> FamilyMoves {
    let mut total = Tally::default();
    let mut pairs: HashMap<(TerritoryId, TerritoryId), Tally> = HashMap::new();
    for s in segments {
        total.add(s.first, s.last);
        pairs
            .entry((s.from, s.to))
            .or_default()
            .add(s.first, s.last);
    }
    let mut moves: Vec<Move> = pairs
        .into_iter()
        .map(|((from, to), tally)| Move {
            from,
            to,
            count: tally.finish(),
        })
        .collect();
    moves.sort_by(|a, b| {
        let key = |m: &Move| (m.count.addresses, m.count.prefixes);
        key(b)
            .cmp(&key(a))
            .then((a.from, a.to).cmp(&(b.from, b.to)))
    });
    FamilyMoves {
        total: total.finish(),
        moves,
    }
}

/// A table change as reported: the moves of both families and the rules' view of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub v4: FamilyMoves,
    pub v6: FamilyMoves,
    pub scopes: Vec<ScopeImpact>,
}

impl Change {
    /// The moves of `diff` and what they do to `scopes` (the rules in force).
    pub fn of(diff: &TableDiff, scopes: &[Scope]) -> Change {
        Change {
            v4: moves(&diff.v4),
            v6: moves(&diff.v6),
            scopes: impact(diff, scopes),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.v4.total.is_zero() && self.v6.total.is_zero()
    }
}

#[cfg(test)]
#[path = "diff_random_tests.rs"]
mod random_tests;
#[cfg(test)]
#[path = "diff_tests.rs"]
mod tests;
