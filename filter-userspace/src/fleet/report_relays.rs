//! The relays of a fleet report: whether each reported, its counts' age, its audit head,
//! and what the report cannot see of it.

use std::fmt::Write as _;

use jiff::Timestamp;
use serde::Serialize;

use crate::fleet::{
    counters::{self, AuditHead},
    store::RelayView,
};

/// A relay as the report read it.
#[derive(Debug, Serialize)]
pub struct RelayRow {
    pub relay: String,
    /// `reporting`, `stale` (alive, but its counts were not read) or `dead` (no liveness
    /// key: its counts are its last word).
    pub state: &'static str,
    pub alive: bool,
    pub version: Option<u64>,
    pub counts_read: Option<Timestamp>,
    pub rules: usize,
    pub omitted: usize,
    pub audit_head: Option<AuditHead>,
    pub notes: Vec<String>,
}

pub fn relay_row(name: &str, view: &RelayView, from: Timestamp) -> RelayRow {
    let status = view.status.as_ref();
    let counters = status.and_then(|s| s.counters.as_ref());
    let mut notes = Vec::new();
    let state = match (view.alive.is_some(), status, counters) {
        (false, _, _) => {
            notes.push(
                "no liveness key: down or cut off from etcd; its counts are its last word".into(),
            );
            "dead"
        }
        (true, Some(s), Some(_)) if s.counters_error.is_none() => "reporting",
        (true, Some(s), _) if s.counters_error.is_some() => {
            notes.push(s.counters_error.clone().unwrap_or_default());
            "stale"
        }
        (true, _, _) => {
            notes.push("no counters in its status yet".into());
            "stale"
        }
    };
    if let Some(c) = counters {
        if c.omitted > 0 {
            notes.push(format!(
                "{} rules left out of its status key (too many); its own report has them",
                c.omitted
            ));
        }
        let kept_from = counters::since(c.read, std::time::Duration::from_secs(c.keep_seconds));
        if kept_from > from {
            notes.push(format!(
                "rules that ended before {kept_from} are not in its status key; its own report has them"
            ));
        }
    }
    RelayRow {
        relay: name.to_string(),
        state,
        alive: view.alive.is_some(),
        version: status.map(|s| s.version),
        counts_read: counters.map(|c| c.read),
        rules: counters.map_or(0, |c| c.rules.len()),
        omitted: counters.map_or(0, |c| c.omitted),
        audit_head: status.and_then(|s| s.audit_head.clone()),
        notes,
    }
}

/// The relays, as a Markdown section to follow the local report's rendering.
pub fn relays_markdown(rows: &[RelayRow]) -> String {
    let mut out = String::from("\n## Relays\n\n");
    if rows.is_empty() {
        out.push_str("None has written a status.\n");
        return out;
    }
    out.push_str("| Relay | State | Version | Counts read | Rules | Audit head | Notes |\n");
    out.push_str("|---|---|---:|---|---:|---|---|\n");
    for r in rows {
        // What relays wrote is shown, not trusted: cut by characters, pipes escaped.
        let head = r.audit_head.as_ref().map_or("—".to_string(), |h| {
            let short: String = h.hash.chars().take(16).collect();
            format!("seq {} `{short}…` ({})", h.seq, h.chain)
        });
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.relay.replace('|', "\\|"),
            r.state,
            r.version.map_or("—".into(), |v| v.to_string()),
            r.counts_read.map_or("—".into(), |t| t.to_string()),
            r.rules,
            head.replace('|', "\\|"),
            r.notes.join("; ").replace('|', "\\|")
        );
    }
    out
}

/// One line per relay that is not reporting, for output formats without a place for them.
pub fn warnings(rows: &[RelayRow]) -> Vec<String> {
    rows.iter()
        .filter(|r| r.state != "reporting" || !r.notes.is_empty())
        .map(|r| format!("relay {} is {}: {}", r.relay, r.state, r.notes.join("; ")))
        .collect()
}
