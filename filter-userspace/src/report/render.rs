//! The report as Markdown (a page people read) and CSV (one row per rule). JSON is the
//! report's serde form.

use std::fmt::Write as _;

use super::{Report, RuleReport, TableLoad, Totals, human_duration};
use crate::change::short_sha;
use crate::human::{bytes, count as thousands};

/// A Markdown table cell: pipes escaped, newlines flattened.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

fn join(items: impl IntoIterator<Item = impl AsRef<str>>) -> String {
    let v: Vec<String> = items.into_iter().map(|s| s.as_ref().to_string()).collect();
    if v.is_empty() {
        "—".to_string()
    } else {
        v.join(", ")
    }
}

fn counted(t: &Totals) -> (String, String, String) {
    if t.rules == t.uncounted_rules {
        return ("—".into(), "—".into(), "—".into());
    }
    (
        thousands(t.packets),
        bytes(t.bytes),
        format!("≈ {}", thousands(t.distinct_sources)),
    )
}

fn group_table(
    out: &mut String,
    title: &str,
    key: &str,
    groups: &std::collections::BTreeMap<String, Totals>,
    first: &str,
    second: &str,
) {
    let _ = writeln!(out, "## {title}\n");
    if groups.is_empty() {
        let _ = writeln!(out, "None.\n");
        return;
    }
    let _ = writeln!(
        out,
        "| {key} | {first} | {second} | Rules | Time in force | Packets | Bytes | Distinct sources |"
    );
    let _ = writeln!(out, "|---|---|---|---:|---:|---:|---:|---:|");
    for (name, t) in groups {
        let (a, b) = match key {
            "Order" => (join(&t.meetings), join(&t.territories)),
            "Territory" => (join(&t.orders), join(&t.meetings)),
            _ => (join(&t.orders), join(&t.territories)),
        };
        let (p, by, d) = counted(t);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {p} | {by} | {d} |",
            cell(name),
            cell(&a),
            cell(&b),
            t.rules,
            human_duration(t.seconds_in_force)
        );
    }
    out.push('\n');
}

fn rule_targets(r: &RuleReport) -> String {
    join(r.life.territories.iter().chain(&r.life.prefixes))
}

pub fn markdown(report: &Report) -> String {
    let mut out = String::new();
    let p = &report.provenance;
    let _ = writeln!(out, "# geofence transparency report\n");
    let _ = writeln!(out, "**Period:** {} to {}  ", report.from, report.to);
    let _ = writeln!(out, "**Generated:** {}\n", report.generated);
    let t = &report.totals;
    let (packets, volume, sources) = counted(t);
    let _ = writeln!(out, "## Summary\n");
    let _ = writeln!(
        out,
        "In this period geofence acted on **{} order{}** with **{} rule{}** on **{} meeting{}**, \
         blocking sources in {}.\n",
        report.orders.len(),
        if report.orders.len() == 1 { "" } else { "s" },
        t.rules,
        if t.rules == 1 { "" } else { "s" },
        t.meetings.len(),
        if t.meetings.len() == 1 { "" } else { "s" },
        join(&t.territories)
    );
    let _ = writeln!(out, "| | |\n|---|---:|");
    let _ = writeln!(
        out,
        "| Packets dropped or counted as would-drop | {packets} |"
    );
    let _ = writeln!(out, "| Bytes | {volume} |");
    let _ = writeln!(
        out,
        "| Distinct blocked sources (estimate, ±13%) | {sources} |\n"
    );
    group_table(
        &mut out,
        "Orders",
        "Order",
        &report.orders,
        "Meetings",
        "Territories",
    );
    group_table(
        &mut out,
        "By territory",
        "Territory",
        &report.territories,
        "Orders",
        "Meetings",
    );
    group_table(
        &mut out,
        "Meetings affected",
        "Meeting",
        &report.meetings,
        "Orders",
        "Territories",
    );
    let _ = writeln!(out, "## Rules\n");
    if report.rules.is_empty() {
        let _ = writeln!(out, "None.\n");
    } else {
        let _ = writeln!(
            out,
            "| Order | Meeting | Blocks | Mode | Issued (by) | Ended | In force in period | Packets | Bytes | Distinct sources | Tables |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---:|---:|---:|---:|---|");
        for r in &report.rules {
            let l = &r.life;
            let ended = match (&l.removed_by, l.ended()) {
                (Some(by), Some(at)) if r.status == "removed" => format!("{at}, {by}"),
                (_, Some(at)) if r.status == "expired" => format!("{at}, expired"),
                _ => "in force".to_string(),
            };
            let (p, b, d) = match &l.counts {
                Some(c) => (
                    thousands(c.packets),
                    bytes(c.bytes),
                    format!("≈ {}", thousands(c.distinct_sources)),
                ),
                None => ("—".into(), "—".into(), "—".into()),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} ({}) | {} | {} | {p} | {b} | {d} | {} |",
                cell(&l.order),
                cell(&l.meeting),
                cell(&rule_targets(r)),
                l.mode,
                l.issued,
                cell(&l.issued_by),
                cell(&ended),
                human_duration(r.seconds_in_force),
                join(&r.tables)
            );
        }
        out.push('\n');
        let changed: Vec<&RuleReport> = report
            .rules
            .iter()
            .filter(|r| !r.life.changes.is_empty())
            .collect();
        for r in &changed {
            let _ = writeln!(
                out,
                "- Order {} on {}: {}",
                cell(&r.life.order),
                cell(&r.life.meeting),
                cell(&r.life.changes.join("; "))
            );
        }
        if !changed.is_empty() {
            out.push('\n');
        }
    }
    tables_section(&mut out, report);
    let _ = writeln!(out, "## What was not done\n");
    for line in &report.not_done {
        let _ = writeln!(out, "- {line}");
    }
    let _ = writeln!(out, "\n## About the figures\n");
    for line in &report.notes {
        let _ = writeln!(out, "- {line}");
    }
    let last = match (&p.last_seq, &p.last_hash) {
        (Some(seq), Some(hash)) => format!(", the last seq {seq} with hash `{hash}`"),
        _ => String::new(),
    };
    let _ = writeln!(
        out,
        "- Built from the audit trail ({} entries{last}; chain {}) and the per-rule counters \
         ({}); counts of rules that ended come from the audit entry that ended them.",
        p.audit_entries, p.chain, p.live_counters
    );
    out
}

/// `geo.csv (csv, sha256 0123456789ab)`, or `(digest not recorded)`.
fn table_files(t: &TableLoad) -> String {
    let files = t.files.iter().map(|f| {
        let format = f
            .format
            .as_deref()
            .map(|f| format!("{f}, "))
            .unwrap_or_default();
        match &f.sha256 {
            Some(sha) => format!("{} ({format}sha256 {})", f.file, short_sha(sha)),
            None => format!("{} ({format}digest not recorded)", f.file),
        }
    });
    join(files)
}

/// The territory tables that located sources during the period, which the rules name.
fn tables_section(out: &mut String, report: &Report) {
    let _ = writeln!(out, "## Territory tables\n");
    if report.tables.is_empty() {
        let _ = writeln!(
            out,
            "No table load is recorded in force during the period: every source was \
             `unknown`.\n"
        );
        return;
    }
    let _ = writeln!(
        out,
        "The tables that located sources during the period, from the audit trail's loads \
         (full SHA-256 in the JSON form). Each rule names those in force while it was; \
         `none` is a time before any load.\n"
    );
    let _ = writeln!(
        out,
        "| Table | Loaded (audit seq) | Replaced | Loaded by | Files |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|");
    for t in &report.tables {
        let until = t.until.map_or("in force".to_string(), |u| u.to_string());
        let by = match &t.note {
            Some(note) => format!("{} ({note})", t.action),
            None => t.action.clone(),
        };
        let _ = writeln!(
            out,
            "| {} | {} (seq {}) | {} | {} | {} |",
            t.id,
            t.loaded,
            t.seq,
            until,
            cell(&by),
            cell(&table_files(t))
        );
    }
    out.push('\n');
}

/// A CSV field, quoted when it needs to be.
fn field(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

pub const CSV_HEADER: &str = "order,meeting,session,slot,territories,prefixes,mode,issued,issued_by,\
expires,removed,status,in_force_from,in_force_until,seconds_in_force,packets,bytes,\
distinct_sources,counts_source,tables";

pub fn csv(report: &Report) -> String {
    let mut out = format!("{CSV_HEADER}\n");
    for r in &report.rules {
        let l = &r.life;
        let opt = |t: Option<jiff::Timestamp>| t.map_or(String::new(), |t| t.to_string());
        let (p, b, d, src) = match &l.counts {
            Some(c) => (
                c.packets.to_string(),
                c.bytes.to_string(),
                c.distinct_sources.to_string(),
                c.source.clone(),
            ),
            None => Default::default(),
        };
        let row = [
            l.order.clone(),
            l.meeting.clone(),
            l.session.to_string(),
            l.slot.map_or(String::new(), |s| s.to_string()),
            l.territories.join(" "),
            l.prefixes.join(" "),
            l.mode.clone(),
            l.issued.to_string(),
            l.issued_by.clone(),
            opt(l.expires),
            opt(l.removed),
            r.status.clone(),
            r.in_force_from.to_string(),
            r.in_force_until.to_string(),
            r.seconds_in_force.to_string(),
            p,
            b,
            d,
            src,
            r.tables.join(" "),
        ];
        let fields: Vec<String> = row.iter().map(|f| field(f)).collect();
        let _ = writeln!(out, "{}", fields.join(","));
    }
    out
}
