//! The territory tables of a fleet report: those the versions named. A relay applies a
//! version only if its own table's files have the SHA-256 the version names, so the
//! table a version names is the one every relay enforcing it located sources with.

use jiff::Timestamp;

use crate::{
    fleet::document::{GeoRef, PolicyDoc},
    report::{Report, TableFile, TableLoad},
};

/// What the local report says when no load is recorded; not true of a fleet.
const LOCAL_NONE: &str =
    "No table load is recorded in force during the period: every source was `unknown`.";
const FLEET_NONE: &str = "No fleet version in force during the period named a territory table: \
                          each relay located sources with its own, which its own report names.";

/// A table from each version that named one different from the version before, in force
/// until the next such version (or one that names none).
fn named_tables(docs: &[PolicyDoc]) -> Vec<TableLoad> {
    let mut tables: Vec<TableLoad> = Vec::new();
    let mut current: Option<&GeoRef> = None;
    for doc in docs {
        if doc.geo.as_ref() == current {
            continue;
        }
        if let Some(last) = tables.last_mut().filter(|t| t.until.is_none()) {
            last.until = Some(doc.written);
        }
        current = doc.geo.as_ref();
        let Some(geo) = current else { continue };
        let files = geo.files.iter().map(|f| TableFile {
            file: f.name.clone(),
            format: Some(geo.format.clone()),
            sha256: Some(f.sha256.clone()),
        });
        tables.push(TableLoad {
            id: String::new(),
            seq: doc.version,
            loaded: doc.written,
            action: format!("fleet v{} by {}", doc.version, doc.author),
            note: Some("each relay's copy checked by SHA-256".into()),
            files: files.collect(),
            until: None,
        });
    }
    tables
}

/// In force at some moment of `[from, until)`, or at `from` when the two are equal.
fn overlaps(t: &TableLoad, from: Timestamp, until: Timestamp) -> bool {
    let starts = if from == until {
        t.loaded <= from
    } else {
        t.loaded < until
    };
    starts && t.until.is_none_or(|u| u > from)
}

/// Puts the tables in force during the report's window (up to `now`) on the report, and
/// on each territory rule those in force while it was.
pub fn attach(report: &mut Report, docs: &[PolicyDoc], now: Timestamp) {
    let end = report.to.min(now).max(report.from);
    let mut tables: Vec<TableLoad> = named_tables(docs)
        .into_iter()
        .filter(|t| overlaps(t, report.from, end))
        .collect();
    for (i, t) in tables.iter_mut().enumerate() {
        t.id = format!("T{}", i + 1);
    }
    for rule in &mut report.rules {
        if rule.life.territories.is_empty() {
            continue;
        }
        let during = tables
            .iter()
            .filter(|t| overlaps(t, rule.in_force_from, rule.in_force_until));
        rule.tables = during.map(|t| t.id.clone()).collect();
    }
    report.tables = tables;
}

/// The local report's Markdown made true of a fleet without a named table.
pub fn fleet_markdown(markdown: String, report: &Report) -> String {
    if report.tables.is_empty() {
        markdown.replacen(LOCAL_NONE, FLEET_NONE, 1)
    } else {
        markdown
    }
}
