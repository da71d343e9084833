//! Rules of the state as the diff shows them ([`describe`]) and builds them from the file's
//! rules ([`new_rule`]).

use anyhow::Context as _;
use jiff::Timestamp;
use serde_json::json;

use super::DeclaredRule;
use crate::state::Rule;

/// `ORD-1: XA, 198.51.100.7/32 until 2026-12-01T18:00:00Z (dry run)`.
pub(super) fn describe(rule: &Rule) -> String {
    let until = rule
        .expires
        .map_or("until lifted".to_string(), |t| format!("until {t}"));
    let mode = if rule.dry_run { " (dry run)" } else { "" };
    format!("{}: {} {until}{mode}", rule.order, rule.targets())
}

/// Built through serde so that fields other parts of geofence add to `Rule` take their
/// defaults, as in a state file written before those fields existed.
pub(super) fn new_rule(
    r: &DeclaredRule,
    issued: Timestamp,
    operator: &str,
) -> anyhow::Result<Rule> {
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
