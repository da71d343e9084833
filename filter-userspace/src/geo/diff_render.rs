//! A table change as operators read it: a screen (`geo diff`, `geo load`), one log line
//! (the daemon's reloads) and JSON.
//!
//! IPv6 amounts are sizes of the space, so they are shown as prefix sizes: `/32` for
//! exactly a /32's worth of addresses, `1.5 × /32` for half as much again. In JSON they
//! are exact decimal strings (they do not fit a double) beside the number of /64s.

use std::fmt::Write as _;

use filter_common::territory::{TERRITORY_UNKNOWN, TerritoryId};
use serde_json::{Value, json};

use super::impact::{Effect, ScopeImpact, ScopeKind};
use super::{Change, Count, Family, FamilyMoves, Move};
use crate::{human, territory::Territory};

/// A territory on the screen: `--` for addresses outside the table.
fn side(id: TerritoryId) -> String {
    match id {
        TERRITORY_UNKNOWN => "--".to_string(),
        id => Territory::from_id(id).to_string(),
    }
}

/// A territory in JSON: as rules name it, `unknown` outside the table.
fn code(id: TerritoryId) -> String {
    Territory::from_id(id).to_string()
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{} {}", human::count(n), if n == 1 { one } else { many })
}

/// `/32`, or `1.5 × /32`: the largest prefix size not above the amount, and how many
/// times it fits (rounded down to two decimals).
pub fn v6_size(addresses: u128) -> String {
    match addresses {
        0 => return "nothing".to_string(),
        // Only the whole space saturates the count.
        u128::MAX => return "/0".to_string(),
        _ => {}
    }
    let bits = 127 - addresses.leading_zeros();
    let len = 128 - bits;
    if addresses.is_power_of_two() {
        return format!("/{len}");
    }
    let times = addresses as f64 / 2f64.powi(bits as i32);
    let shown = format!("{:.2}", (times * 100.0).floor() / 100.0);
    let shown = shown.trim_end_matches('0').trim_end_matches('.');
    format!("{shown} × /{len}")
}

/// One family's amount: `1,024 IPv4 addresses in 2 prefixes`, `IPv6 /32 in 1 prefix`.
pub fn count_text(family: Family, c: &Count) -> String {
    let prefixes = plural(c.prefixes, "prefix", "prefixes");
    match family {
        Family::V4 => format!(
            "{} in {prefixes}",
            plural(c.addresses as u64, "IPv4 address", "IPv4 addresses")
        ),
        Family::V6 => format!("IPv6 {} in {prefixes}", v6_size(c.addresses)),
    }
}

/// Both families' amounts, `nothing` when both are zero.
pub fn amount_text(v4: &Count, v6: &Count) -> String {
    let parts: Vec<String> = [(Family::V4, v4), (Family::V6, v6)]
        .into_iter()
        .filter(|(_, c)| !c.is_zero())
        .map(|(f, c)| count_text(f, c))
        .collect();
    match parts.is_empty() {
        true => "nothing".to_string(),
        false => parts.join(" and "),
    }
}

fn size_cell(family: Family, c: &Count) -> String {
    match family {
        Family::V4 => plural(c.addresses as u64, "address", "addresses"),
        Family::V6 => v6_size(c.addresses),
    }
}

fn family_text(out: &mut String, family: Family, m: &FamilyMoves, top: usize) {
    if m.total.is_zero() {
        let _ = writeln!(out, "{}: no address changes territory", family.name());
        return;
    }
    let _ = writeln!(
        out,
        "{}: {} in {} change territory",
        family.name(),
        size_cell(family, &m.total),
        plural(m.total.prefixes, "prefix", "prefixes")
    );
    let shown = &m.moves[..m.moves.len().min(top)];
    let sizes: Vec<String> = shown
        .iter()
        .map(|mv| size_cell(family, &mv.count))
        .collect();
    let width = sizes.iter().map(|s| s.chars().count()).max().unwrap_or(0);
    for (mv, size) in shown.iter().zip(&sizes) {
        let pair = format!("{} → {}", side(mv.from), side(mv.to));
        let _ = writeln!(
            out,
            "  {pair:<7}  {size:>width$} in {}",
            plural(mv.count.prefixes, "prefix", "prefixes")
        );
    }
    let more = m.moves.len() - shown.len();
    if more > 0 {
        let pairs = if more == 1 { "pair" } else { "pairs" };
        let _ = writeln!(
            out,
            "  and {} more {pairs} (--json lists every pair)",
            human::count(more as u64)
        );
    }
}

fn effect_text(e: &Effect) -> String {
    if e.is_none() {
        return "no change".to_string();
    }
    let mut parts = Vec::new();
    if !(e.blocked_v4.is_zero() && e.blocked_v6.is_zero()) {
        parts.push(format!(
            "newly blocked: {}",
            amount_text(&e.blocked_v4, &e.blocked_v6)
        ));
    }
    if !(e.passing_v4.is_zero() && e.passing_v6.is_zero()) {
        parts.push(format!(
            "newly passing: {}",
            amount_text(&e.passing_v4, &e.passing_v6)
        ));
    }
    parts.join("; ")
}

fn scope_label(s: &ScopeImpact) -> String {
    match s.kind {
        ScopeKind::Meeting => s.name.clone(),
        ScopeKind::UnboundShared => "unbound flows on shared ports".to_string(),
    }
}

fn rule_label(r: &super::RuleRef) -> String {
    let territories: Vec<String> = r.territories.iter().map(|&t| code(t)).collect();
    let mode = if r.dry_run { "dry run" } else { "enforce" };
    format!("order {} ({}, {mode})", r.order, territories.join(" "))
}

/// The screen: each family's total and its `top` largest moves, then every scope with
/// rules in force and each of its rules.
pub fn text(change: &Change, top: usize) -> String {
    let mut out = String::new();
    family_text(&mut out, Family::V4, &change.v4, top);
    family_text(&mut out, Family::V6, &change.v6, top);
    let moves = change.v4.moves.iter().chain(&change.v6.moves);
    if moves
        .take(top)
        .any(|m: &Move| m.from == TERRITORY_UNKNOWN || m.to == TERRITORY_UNKNOWN)
    {
        let _ = writeln!(
            out,
            "(-- is outside the table: territory `unknown` to rules)"
        );
    }
    if change.scopes.is_empty() {
        let _ = writeln!(out, "No territory rule is in force.");
        return out;
    }
    let _ = writeln!(out, "Rules in force:");
    for s in &change.scopes {
        let _ = writeln!(out, "  {}: {}", scope_label(s), effect_text(&s.effect));
        if s.effect.is_none() {
            continue;
        }
        for r in &s.rules {
            let _ = writeln!(
                out,
                "    {}: {}",
                rule_label(&r.rule),
                effect_text(&r.effect)
            );
        }
    }
    out
}

/// One line for a log: totals, the largest moves, and every scope the change affects.
pub fn one_line(change: &Change) -> String {
    if change.is_empty() {
        return "no address changes territory".to_string();
    }
    let mut parts = vec![format!(
        "{} change territory",
        amount_text(&change.v4.total, &change.v6.total)
    )];
    for (family, m) in [(Family::V4, &change.v4), (Family::V6, &change.v6)] {
        let largest: Vec<String> = m
            .moves
            .iter()
            .take(3)
            .map(|mv| {
                let size = size_cell(family, &mv.count);
                format!("{} → {} {size}", side(mv.from), side(mv.to))
            })
            .collect();
        if !largest.is_empty() {
            parts.push(format!("{} largest: {}", family.name(), largest.join(", ")));
        }
    }
    for s in change.scopes.iter().filter(|s| !s.effect.is_none()) {
        let orders: Vec<&str> = s
            .rules
            .iter()
            .filter(|r| !r.effect.is_none())
            .map(|r| r.rule.order.as_str())
            .collect();
        parts.push(format!(
            "{} ({}): {}",
            scope_label(s),
            orders.join(", "),
            effect_text(&s.effect)
        ));
    }
    parts.join("; ")
}

fn count_json(family: Family, c: &Count) -> Value {
    match family {
        Family::V4 => json!({ "addresses": c.addresses as u64, "prefixes": c.prefixes }),
        Family::V6 => json!({
            "addresses": c.addresses.to_string(),
            "slash64s": c.addresses as f64 / 2f64.powi(64),
            "prefixes": c.prefixes,
        }),
    }
}

fn family_json(family: Family, m: &FamilyMoves) -> Value {
    let mut v = count_json(family, &m.total);
    v["moves"] = m
        .moves
        .iter()
        .map(|mv| {
            let mut one = count_json(family, &mv.count);
            one["from"] = json!(code(mv.from));
            one["to"] = json!(code(mv.to));
            one
        })
        .collect();
    v
}

fn effect_json(e: &Effect) -> Value {
    json!({
        "newly_blocked": {
            "ipv4": count_json(Family::V4, &e.blocked_v4),
            "ipv6": count_json(Family::V6, &e.blocked_v6),
        },
        "newly_passing": {
            "ipv4": count_json(Family::V4, &e.passing_v4),
            "ipv6": count_json(Family::V6, &e.passing_v6),
        },
    })
}

/// Everything, every pair included.
pub fn json(change: &Change) -> Value {
    let scopes: Vec<Value> = change
        .scopes
        .iter()
        .map(|s| {
            let mut v = effect_json(&s.effect);
            v["scope"] = json!(match s.kind {
                ScopeKind::Meeting => "meeting",
                ScopeKind::UnboundShared => "unbound_on_shared_ports",
            });
            v["meeting"] = match s.kind {
                ScopeKind::Meeting => json!(s.name),
                ScopeKind::UnboundShared => Value::Null,
            };
            v["rules"] = s
                .rules
                .iter()
                .map(|r| {
                    let mut one = effect_json(&r.effect);
                    one["order"] = json!(r.rule.order);
                    one["mode"] = json!(if r.rule.dry_run { "dry-run" } else { "enforce" });
                    one["territories"] =
                        r.rule.territories.iter().map(|&t| json!(code(t))).collect();
                    one
                })
                .collect();
            v
        })
        .collect();
    json!({
        "ipv4": family_json(Family::V4, &change.v4),
        "ipv6": family_json(Family::V6, &change.v6),
        "meetings": scopes,
    })
}
