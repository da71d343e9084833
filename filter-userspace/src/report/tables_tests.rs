//! The territory tables a report names: from the trail's loads, on each territory rule.

use serde_json::json;

use super::super::tests::{entry, provenance, rule, t, trail};
use super::super::{RuleLife, build, csv, markdown};
use super::*;

fn sha(c: char) -> String {
    std::iter::repeat_n(c, 64).collect()
}

/// The trail of [`trail`] with the table loads between its entries: a.csv before
/// November, b.csv reloaded by the daemon on 1 Nov 11:00, c.csv by `apply` on 3 Nov and
/// reloaded by `restore` on 5 Nov 12:00 (which records no digest).
fn trail_with_tables() -> Vec<Entry> {
    let source = |file: &str, c: char| json!({"file": file, "format": "csv", "bytes": 10, "sha256": sha(c), "rows": 1});
    let loads = [
        entry(
            0,
            "2026-10-15T00:00:00Z",
            "geo load",
            json!({"sources": [source("a.csv", 'a')]}),
        ),
        entry(
            0,
            "2026-11-01T11:00:00Z",
            "geo load",
            json!({"sources": [source("b.csv", 'b')], "note": "reloaded by geofence daemon"}),
        ),
        entry(
            0,
            "2026-11-03T00:00:00Z",
            "apply",
            json!({"file": "/p.toml", "geo_sources": [source("c.csv", 'c')]}),
        ),
        entry(
            0,
            "2026-11-05T12:00:00Z",
            "restore",
            json!({"geo": {"files": ["c.csv"], "reloaded": true}}),
        ),
        // A restore that found the table in place loaded nothing.
        entry(
            0,
            "2026-11-05T13:00:00Z",
            "restore",
            json!({"geo": {"files": ["c.csv"], "reloaded": false}}),
        ),
    ];
    let mut all: Vec<Entry> = trail().into_iter().chain(loads).collect();
    all.sort_by_key(|e| e.timestamp());
    for (i, e) in all.iter_mut().enumerate() {
        e.seq = i as u64 + 1;
    }
    all
}

#[test]
fn each_territory_rule_names_the_tables_in_force_while_it_was() {
    let mut live = |_: &RuleLife| None;
    let r = build(
        &trail_with_tables(),
        t("2026-11-01T00:00:00Z"),
        t("2026-12-01T00:00:00Z"),
        t("2026-11-06T00:00:00Z"),
        &mut live,
        provenance(),
    );
    let files: Vec<(&str, &str)> = r
        .tables
        .iter()
        .map(|t| (t.id.as_str(), t.files[0].file.as_str()))
        .collect();
    assert_eq!(
        files,
        [
            ("T1", "a.csv"),
            ("T2", "b.csv"),
            ("T3", "c.csv"),
            ("T4", "c.csv")
        ],
        "a.csv was still in force when the window began"
    );
    assert_eq!(r.tables[0].until, Some(t("2026-11-01T11:00:00Z")));
    assert_eq!(
        r.tables[1].note.as_deref(),
        Some("reloaded by geofence daemon")
    );
    assert_eq!(r.tables[2].action, "apply");
    assert_eq!(
        r.tables[3].files[0].sha256, None,
        "restore records no digest"
    );
    assert_eq!(r.tables[3].until, None);
    let named: Vec<(&str, Vec<&str>)> = r
        .rules
        .iter()
        .map(|rule| {
            let ids = rule.tables.iter().map(String::as_str).collect();
            (rule.life.order.as_str(), ids)
        })
        .collect();
    assert_eq!(
        named,
        [
            ("ORD-1", vec!["T1", "T2"]),
            ("ORD-2", vec!["T2", "T3"]),
            ("ORD-3", vec!["T3", "T4"]),
        ]
    );
    let md = markdown(&r);
    for part in [
        "## Territory tables",
        "| T1 | 2026-10-15T00:00:00Z (seq 3) | 2026-11-01T11:00:00Z | geo load | a.csv (csv, sha256 aaaaaaaaaaaa) |",
        "| T2 | 2026-11-01T11:00:00Z (seq 5) | 2026-11-03T00:00:00Z | geo load (reloaded by geofence daemon) | b.csv (csv, sha256 bbbbbbbbbbbb) |",
        "| T4 | 2026-11-05T12:00:00Z (seq 11) | in force | restore | c.csv (digest not recorded) |",
    ] {
        assert!(md.contains(part), "markdown lacks {part:?}:\n{md}");
    }
    let row = md
        .lines()
        .find(|l| l.starts_with("| ORD-1 | town-hall | XA | enforce |"))
        .expect("ORD-1's row");
    assert!(row.ends_with("| T1, T2 |"), "{row}");
    let csv = csv(&r);
    assert!(
        csv.lines().nth(1).is_some_and(|l| l.ends_with(",T1 T2")),
        "{csv}"
    );
    let json = serde_json::to_value(&r).expect("json");
    assert_eq!(json["rules"][1]["tables"], json!(["T2", "T3"]));
    assert_eq!(json["tables"][1]["files"][0]["sha256"], sha('b').as_str());
}

#[test]
fn a_rule_before_any_load_and_a_rule_without_territories() {
    let blocks = rule("ORD-1", &["XA"], "2026-11-01T10:00:00Z", Some(0), None);
    let mut prefixes = rule("ORD-2", &[], "2026-11-01T10:00:00Z", Some(1), None);
    prefixes["prefixes"] = json!(["198.51.100.7/32"]);
    let entries = vec![
        entry(
            1,
            "2026-11-01T10:00:00Z",
            "block",
            json!({"rules_added": [blocks, prefixes]}),
        ),
        entry(
            2,
            "2026-11-01T12:00:00Z",
            "geo load",
            json!({"sources": [{"file": "a.csv", "format": "csv", "sha256": sha('a')}]}),
        ),
    ];
    let mut live = |_: &RuleLife| None;
    let r = build(
        &entries,
        t("2026-11-01T00:00:00Z"),
        t("2026-11-02T00:00:00Z"),
        t("2026-11-01T13:00:00Z"),
        &mut live,
        provenance(),
    );
    assert_eq!(r.rules[0].tables, ["none", "T1"], "unknown until the load");
    assert!(r.rules[1].tables.is_empty(), "no table decides a prefix");
    // Without any load, the report says every source was unknown.
    let r = build(
        &entries[..1],
        t("2026-11-01T00:00:00Z"),
        t("2026-11-02T00:00:00Z"),
        t("2026-11-01T13:00:00Z"),
        &mut live,
        provenance(),
    );
    assert_eq!(r.rules[0].tables, ["none"]);
    assert!(markdown(&r).contains("No table load is recorded in force during the period"));
}

#[test]
fn a_restore_that_reloaded_the_table_names_its_digests() {
    let sources = json!([{"file": "c.csv", "format": "csv", "sha256": sha('c'), "bytes": 10}]);
    let entries = vec![
        entry(
            1,
            "2026-11-01T10:00:00Z",
            "restore",
            json!({"geo": {"files": ["c.csv"], "reloaded": true, "sources": sources}}),
        ),
        entry(
            2,
            "2026-11-01T11:00:00Z",
            "restore",
            json!({"geo": {"files": ["c.csv"], "reloaded": false, "sources": sources}}),
        ),
    ];
    let loads = table_loads(&entries);
    assert_eq!(
        loads.len(),
        1,
        "a restore that loaded nothing is no new table"
    );
    assert_eq!(loads[0].files[0].sha256.as_deref(), Some(sha('c').as_str()));
    assert_eq!(loads[0].until, None);
}
