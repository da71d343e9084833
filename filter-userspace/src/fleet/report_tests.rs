use filter_common::{accounting::SourceSketch, maps::v4_mapped};

use super::*;
use crate::fleet::{
    RelayStatus,
    counters::{AuditHead, Counters, Tally},
    keys,
    store::Alive,
};

fn t(text: &str) -> Timestamp {
    text.parse().expect("time")
}

/// Versions 1 to 3: v1 blocks XA on `standup` (ORD-1), v2 adds a prefix rule on `town`
/// (ORD-2), v3 drops ORD-1. With `tables`, v1 and v2 name one table, v3 another.
fn versions_naming(tables: bool) -> Vec<Stored> {
    let rule1 = serde_json::json!({ "order": "ORD-1", "territories": ["XA"], "expires": null });
    let rule2 =
        serde_json::json!({ "order": "ORD-2", "prefixes": ["203.0.113.0/24"], "expires": null });
    let meetings = [
        serde_json::json!({ "standup": { "rules": [rule1] } }),
        serde_json::json!({ "standup": { "rules": [rule1] }, "town": { "rules": [rule2] } }),
        serde_json::json!({ "town": { "rules": [rule2] } }),
    ];
    let mut prev: Option<String> = None;
    let mut out = Vec::new();
    for (i, m) in meetings.into_iter().enumerate() {
        let n = i as u64 + 1;
        let sha = if n < 3 { "aa" } else { "bb" };
        let geo = tables.then(|| {
            serde_json::json!({ "files": [{ "name": "geo.csv", "sha256": sha }], "format": "csv", "territory": null })
        });
        let json = serde_json::json!({
            "version": n, "author": "op@ops", "written": format!("2026-12-0{n}T00:00:00Z"),
            "source": { "file": "p.toml", "sha256": "00" }, "prev": prev, "geo": geo,
            "meetings": m,
        });
        let doc: PolicyDoc = serde_json::from_value::<PolicyDoc>(json)
            .expect("a version")
            .seal();
        prev = Some(doc.hash.clone());
        out.push(Stored {
            key: keys::version(n),
            bytes: serde_json::to_vec(&doc).expect("json"),
        });
    }
    out
}

fn versions() -> Vec<Stored> {
    versions_naming(true)
}

/// The sketch of IPv4 hosts `first..first + n`.
fn sketch(first: u32, n: u32) -> [u8; SKETCH_REGISTERS] {
    let mut s = SourceSketch::EMPTY;
    for i in first..first + n {
        s.add(&v4_mapped(i.to_be_bytes()));
    }
    s.registers
}

fn rule(order: &str, meeting: &str, by: &str, packets: u64, regs: [u8; 64]) -> RuleCount {
    RuleCount {
        meeting: meeting.into(),
        order: order.into(),
        territories: if order == "ORD-1" {
            vec!["XA".into()]
        } else {
            vec![]
        },
        prefixes: if order == "ORD-2" {
            vec!["203.0.113.0/24".into()]
        } else {
            vec![]
        },
        mode: "enforce".into(),
        issued: t("2026-12-02T00:00:05Z"),
        issued_by: by.into(),
        expires: None,
        removed: None,
        counts: Some(Tally {
            packets,
            bytes: packets * 100,
            registers: sketch::registers_hex(&regs),
        }),
    }
}

fn relay(alive: bool, rules: Vec<RuleCount>) -> RelayView {
    RelayView {
        status: Some(RelayStatus {
            version: 3,
            counters: Some(Counters {
                read: t("2026-12-05T00:00:00Z"),
                keep_seconds: 100 * 86_400,
                rules,
                omitted: 0,
            }),
            audit_head: Some(AuditHead {
                seq: 7,
                hash: "ab".repeat(32),
                chain: "intact".into(),
            }),
            ..RelayStatus::default()
        }),
        alive: alive.then(|| Alive {
            host: "h".into(),
            pid: 1,
            since: t("2026-12-01T00:00:00Z"),
        }),
    }
}

#[test]
fn relays_counts_add_up_and_their_sketches_merge_into_the_union() {
    let versions = versions();
    let current = versions.last().map(|v| v.bytes.clone());
    // edge-1 applied v1, edge-2 first saw v2 (it joined late); sources overlap:
    // 0..40 and 20..70 are 70 distinct. edge-3 is dead; its last word still counts.
    let (a, b, c) = (sketch(0, 40), sketch(20, 50), sketch(1000, 5));
    let relays = BTreeMap::from([
        (
            "edge-1".to_string(),
            relay(
                true,
                vec![
                    rule("ORD-1", "standup", "fleet v1 by op@ops", 80, a),
                    rule("LOCAL-9", "standup", "alice@edge-1", 3, c),
                ],
            ),
        ),
        (
            "edge-2".to_string(),
            relay(
                true,
                vec![rule("ORD-1", "standup", "fleet v2 by op@ops", 100, b)],
            ),
        ),
        (
            "edge-3".to_string(),
            relay(
                false,
                vec![rule("ORD-2", "town", "fleet v2 by op@ops", 5, c)],
            ),
        ),
    ]);
    let r = build(
        &versions,
        current.as_deref(),
        &relays,
        t("2026-12-01T00:00:00Z"),
        t("2027-01-01T00:00:00Z"),
        t("2026-12-05T00:00:00Z"),
    );
    let rules = &r.report.rules;
    assert_eq!(rules.len(), 3, "{rules:#?}");
    let ord1 = &rules[0].life;
    assert_eq!(
        (ord1.order.as_str(), ord1.issued),
        ("ORD-1", t("2026-12-01T00:00:00Z"))
    );
    assert_eq!(ord1.removed, Some(t("2026-12-03T00:00:00Z")));
    assert_eq!(ord1.removed_by.as_deref(), Some("fleet v3 by op@ops"));
    let counts = ord1.counts.as_ref().expect("ORD-1 counted");
    assert_eq!((counts.packets, counts.bytes), (180, 18_000));
    let mut merged = a;
    for (m, r) in merged.iter_mut().zip(b) {
        *m = (*m).max(r);
    }
    assert_eq!(counts.registers, sketch::registers_hex(&merged));
    assert_eq!(counts.distinct_sources, sketch::estimate_count(&merged));
    // The union, not the sum of the two estimates.
    let apart = sketch::estimate_count(&a) + sketch::estimate_count(&b);
    assert!(counts.distinct_sources < apart, "{counts:?} vs {apart}");
    assert_eq!(counts.source, "2 relays");

    let ord2 = &rules[1].life;
    assert_eq!((ord2.order.as_str(), ord2.added_seq), ("ORD-2", 2));
    assert_eq!(ord2.counts.as_ref().map(|c| c.packets), Some(5));
    // A rule no version issued is its own row, naming its relay.
    let local = &rules[2].life;
    assert_eq!(local.order, "LOCAL-9");
    assert!(local.issued_by.ends_with("on relay edge-1"), "{local:?}");

    assert_eq!(r.report.totals.packets, 188);
    // The tables the versions named: ORD-1 was in force under the first only.
    let tables: Vec<(&str, Option<&str>)> = r
        .report
        .tables
        .iter()
        .map(|t| (t.id.as_str(), t.files[0].sha256.as_deref()))
        .collect();
    assert_eq!(tables, [("T1", Some("aa")), ("T2", Some("bb"))]);
    assert_eq!(rules[0].tables, ["T1"]);
    assert!(
        rules[1].tables.is_empty(),
        "a prefix rule: {:?}",
        rules[1].tables
    );
    assert_eq!(r.report.provenance.chain, "intact");
    assert_eq!(r.report.provenance.last_seq, Some(3));
    let states: Vec<(&str, &str)> = r
        .relays
        .iter()
        .map(|row| (row.relay.as_str(), row.state))
        .collect();
    assert_eq!(
        states,
        [
            ("edge-1", "reporting"),
            ("edge-2", "reporting"),
            ("edge-3", "dead")
        ]
    );
    let md = relays_markdown(&r.relays);
    assert!(md.contains("| edge-3 | dead |"), "{md}");
    assert_eq!(warnings(&r.relays).len(), 1);
}

#[test]
fn a_relay_without_counters_is_stale_and_a_broken_chain_shows() {
    let mut versions = versions();
    // Version 2 rewritten in etcd: the report says its log is not intact.
    let mut doc: PolicyDoc = serde_json::from_slice(&versions[1].bytes).expect("doc");
    doc.author = "mallory".into();
    versions[1].bytes = serde_json::to_vec(&doc).expect("json");
    let current = versions.last().map(|v| v.bytes.clone());
    let mut view = relay(true, vec![]);
    if let Some(s) = view.status.as_mut() {
        s.counters_error = Some("counters not read: no geofence maps under /x".into());
    }
    let relays = BTreeMap::from([("edge-1".to_string(), view)]);
    let r = build(
        &versions,
        current.as_deref(),
        &relays,
        t("2026-01-01T00:00:00Z"),
        t("2027-01-01T00:00:00Z"),
        t("2026-12-05T00:00:00Z"),
    );
    assert!(
        r.report.provenance.chain.starts_with("NOT intact"),
        "{:?}",
        r.report.provenance
    );
    assert_eq!(r.relays[0].state, "stale");
    assert!(
        r.relays[0].notes[0].contains("no geofence maps"),
        "{:?}",
        r.relays[0]
    );
    // Its keep window (100 days before 2026-12-05) starts after the period does.
    assert!(
        r.relays[0]
            .notes
            .iter()
            .any(|n| n.contains("not in its status key")),
        "{:?}",
        r.relays[0]
    );
    // Rules without counts from any relay show no figures rather than zeros.
    assert!(r.report.rules.iter().all(|r| r.life.counts.is_none()));
}

#[test]
fn without_a_named_table_the_markdown_does_not_claim_every_source_unknown() {
    let versions = versions_naming(false);
    let current = versions.last().map(|v| v.bytes.clone());
    let r = build(
        &versions,
        current.as_deref(),
        &BTreeMap::new(),
        t("2026-12-01T00:00:00Z"),
        t("2027-01-01T00:00:00Z"),
        t("2026-12-05T00:00:00Z"),
    );
    assert!(r.report.tables.is_empty());
    let md = markdown(&r);
    assert!(!md.contains("every source was `unknown`"), "{md}");
    assert!(
        md.contains("No fleet version in force during the period named"),
        "{md}"
    );
    assert!(md.contains("None has written a status."), "{md}");
}
