//! Which territory tables were in force: each load the audit trail records (`geo load`,
//! the daemon's reloads, `apply` with a table, a `restore` that reloaded one), in force
//! from its entry until the next load. Each territory rule of the report names the tables
//! in force while it was, so a reader can tell which data located the sources it dropped.

use jiff::Timestamp;
use serde::Serialize;
use serde_json::Value;

use super::{Report, RuleReport};
use crate::audit::Entry;

/// One file of a table, as its load recorded it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TableFile {
    pub file: String,
    pub format: Option<String>,
    /// `None` when the load did not record it (a `restore` reload by an older version).
    pub sha256: Option<String>,
}

/// One table: a load and how long it stayed in force.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TableLoad {
    /// `T1`, `T2`, ... in the order of the report's tables.
    pub id: String,
    pub seq: u64,
    pub loaded: Timestamp,
    /// The action that loaded it: `geo load`, `apply`, `restore`.
    pub action: String,
    /// Why, when the entry says (the daemon's reloads do).
    pub note: Option<String>,
    pub files: Vec<TableFile>,
    /// When the next load replaced it; `None` if none did.
    pub until: Option<Timestamp>,
}

fn text(v: &Value) -> Option<String> {
    v.as_str().map(str::to_string)
}

/// The files an entry loaded a table from, if it loaded one.
fn loaded_files(e: &Entry) -> Option<Vec<TableFile>> {
    let d = &e.details;
    let recorded = |list: &Value| {
        let files = list.as_array()?.iter().map(|s| TableFile {
            file: text(&s["file"]).unwrap_or_default(),
            format: text(&s["format"]),
            sha256: text(&s["sha256"]).filter(|s| !s.starts_with("unreadable")),
        });
        Some(files.collect())
    };
    match e.action.as_str() {
        "geo load" => recorded(&d["sources"]),
        "restore" if d["geo"]["reloaded"] == true => {
            if d["geo"]["sources"].is_array() {
                return recorded(&d["geo"]["sources"]);
            }
            let files = d["geo"]["files"].as_array()?.iter().filter_map(text);
            let files = files.map(|file| TableFile {
                file,
                format: None,
                sha256: None,
            });
            Some(files.collect())
        }
        _ => recorded(&d["geo_sources"]),
    }
}

/// Every table load of the trail, in order, each until the next.
pub fn table_loads(entries: &[Entry]) -> Vec<TableLoad> {
    let mut loads: Vec<TableLoad> = Vec::new();
    for e in entries {
        let (Some(files), Some(loaded)) = (loaded_files(e), e.timestamp()) else {
            continue;
        };
        if let Some(last) = loads.last_mut() {
            last.until = Some(loaded);
        }
        loads.push(TableLoad {
            id: String::new(),
            seq: e.seq,
            loaded,
            action: e.action.clone(),
            note: text(&e.details["note"]),
            files,
            until: None,
        });
    }
    loads
}

/// Whether `t` was in force at some moment of `[from, until]` (one instant when equal).
fn in_force_during(t: &TableLoad, from: Timestamp, until: Timestamp) -> bool {
    let ends_after = |at: Timestamp| t.until.is_none_or(|u| u > at);
    if from == until {
        return t.loaded <= from && ends_after(from);
    }
    t.loaded < until && ends_after(from)
}

/// Keeps the loads in force during the report's window (up to `now`), numbers them, and
/// names them on each rule with territories: `none` for a time before the first load.
pub fn attach(report: &mut Report, entries: &[Entry], now: Timestamp) {
    let end = report.to.min(now);
    let mut tables: Vec<TableLoad> = table_loads(entries)
        .into_iter()
        .filter(|t| in_force_during(t, report.from, end.max(report.from)))
        .collect();
    for (i, t) in tables.iter_mut().enumerate() {
        t.id = format!("T{}", i + 1);
    }
    let first = tables.first().map(|t| t.loaded);
    for rule in &mut report.rules {
        rule.tables = rule_tables(rule, &tables, first);
    }
    report.tables = tables;
}

fn rule_tables(rule: &RuleReport, tables: &[TableLoad], first: Option<Timestamp>) -> Vec<String> {
    if rule.life.territories.is_empty() {
        return Vec::new();
    }
    let (from, until) = (rule.in_force_from, rule.in_force_until);
    let mut ids = Vec::new();
    if first.is_none_or(|f| from < f) {
        ids.push("none".to_string());
    }
    let during = tables.iter().filter(|t| in_force_during(t, from, until));
    ids.extend(during.map(|t| t.id.clone()));
    ids
}

#[cfg(test)]
#[path = "tables_tests.rs"]
mod tests;
