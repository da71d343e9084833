use filter_common::{accounting::SourceSketch, maps::v4_mapped};
use serde_json::{Value, json};

use super::*;

pub(super) fn t(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

pub(super) fn entry(seq: u64, time: &str, action: &str, details: Value) -> Entry {
    Entry {
        seq,
        time: time.to_string(),
        operator: "ops".to_string(),
        host: "relay-1".to_string(),
        action: action.to_string(),
        details,
        prev: String::new(),
        hash: String::new(),
    }
}

pub(super) fn rule(
    order: &str,
    territories: &[&str],
    issued: &str,
    slot: Option<u8>,
    expires: Option<&str>,
) -> Value {
    json!({
        "meeting": "town-hall", "session": 1, "order": order,
        "territories": territories, "prefixes": [], "mode": "enforce",
        "expires": expires, "issued": issued, "issued_by": "ops", "slot": slot,
    })
}

/// Registers of `n` sources from `first` up, as the kernel would fill them.
fn registers(first: u32, n: u32) -> String {
    let mut s = SourceSketch::EMPTY;
    for i in first..first + n {
        s.add(&v4_mapped(i.to_be_bytes()));
    }
    crate::sketch::registers_hex(&s.registers)
}

fn with_counts(mut v: Value, packets: u64, first: u32, n: u32) -> Value {
    let regs = registers(first, n);
    let estimate =
        crate::sketch::registers_from_hex(&regs).map_or(0, |r| crate::sketch::estimate_count(&r));
    v["counts"] = json!({"packets": packets, "bytes": packets * 100, "distinct_sources": estimate, "registers": regs});
    v
}

pub(super) fn provenance() -> Provenance {
    Provenance {
        audit_entries: 0,
        first_seq: None,
        last_seq: None,
        last_hash: None,
        chain: "intact".to_string(),
        live_counters: "test".to_string(),
    }
}

/// ORD-1 blocks XA from 1 Nov 10:00 and is lifted 2 Nov 10:00; ORD-2 blocks XA and XB
/// from 1 Nov 12:00 until it expires 3 Nov 12:00; ORD-0 ran entirely in October; ORD-3
/// is issued 5 Nov and still in force.
pub(super) fn trail() -> Vec<Entry> {
    let r0 = rule("ORD-0", &["XC"], "2026-10-01T00:00:00Z", Some(2), None);
    let r1 = rule("ORD-1", &["XA"], "2026-11-01T10:00:00Z", Some(0), None);
    let r2 = rule(
        "ORD-2",
        &["XA", "XB"],
        "2026-11-01T12:00:00Z",
        Some(1),
        Some("2026-11-03T12:00:00Z"),
    );
    let r3 = rule("ORD-3", &["XB"], "2026-11-05T00:00:00Z", Some(0), None);
    vec![
        entry(
            1,
            "2026-10-01T00:00:00Z",
            "block",
            json!({"rules_added": [r0]}),
        ),
        entry(
            2,
            "2026-10-02T00:00:00Z",
            "unblock",
            json!({"rules_removed": [with_counts(r0, 7, 900, 3)]}),
        ),
        entry(
            3,
            "2026-11-01T10:00:00Z",
            "block",
            json!({"rules_added": [r1]}),
        ),
        entry(
            4,
            "2026-11-01T12:00:00Z",
            "block",
            json!({"rules_added": [r2]}),
        ),
        entry(
            5,
            "2026-11-02T10:00:00Z",
            "unblock",
            json!({"rules_removed": [with_counts(r1, 500, 0, 40)]}),
        ),
        entry(
            6,
            "2026-11-04T00:00:00Z",
            "expire",
            json!({"rules_removed": [with_counts(r2, 300, 20, 40)]}),
        ),
        entry(
            7,
            "2026-11-05T00:00:00Z",
            "block",
            json!({"rules_added": [r3]}),
        ),
    ]
}

fn november(now: &str) -> Report {
    let mut live = |life: &RuleLife| {
        (life.order == "ORD-3").then(|| Counts {
            packets: 11,
            bytes: 1100,
            distinct_sources: 2,
            registers: registers(5000, 2),
            source: "live".to_string(),
        })
    };
    build(
        &trail(),
        t("2026-11-01T00:00:00Z"),
        t("2026-12-01T00:00:00Z"),
        t(now),
        &mut live,
        provenance(),
    )
}

#[test]
fn rules_in_the_window_with_their_time_in_force() {
    let r = november("2026-11-06T00:00:00Z");
    let orders: Vec<&str> = r.rules.iter().map(|r| r.life.order.as_str()).collect();
    assert_eq!(
        orders,
        ["ORD-1", "ORD-2", "ORD-3"],
        "ORD-0 ended before November"
    );
    let secs: Vec<i64> = r.rules.iter().map(|r| r.seconds_in_force).collect();
    assert_eq!(
        secs,
        [24 * 3600, 48 * 3600, 24 * 3600],
        "removed, expired, open until now"
    );
    let status: Vec<&str> = r.rules.iter().map(|r| r.status.as_str()).collect();
    assert_eq!(status, ["removed", "expired", "in force"]);
    assert_eq!(
        r.rules[0].life.removed_by.as_deref(),
        Some("unblock (audit seq 5)")
    );
    let sources: Vec<&str> = r
        .rules
        .iter()
        .filter_map(|r| r.life.counts.as_ref())
        .map(|c| c.source.as_str())
        .collect();
    assert_eq!(sources, ["audit seq 5", "audit seq 6", "live"]);
}

#[test]
fn a_window_clips_a_rule_that_began_before_it() {
    let mut live = |_: &RuleLife| None;
    let r = build(
        &trail(),
        t("2026-11-02T00:00:00Z"),
        t("2026-11-02T06:00:00Z"),
        t("2026-11-06T00:00:00Z"),
        &mut live,
        provenance(),
    );
    let secs: Vec<(&str, i64)> = r
        .rules
        .iter()
        .map(|r| (r.life.order.as_str(), r.seconds_in_force))
        .collect();
    assert_eq!(secs, [("ORD-1", 6 * 3600), ("ORD-2", 6 * 3600)]);
    assert_eq!(r.rules[0].in_force_from, t("2026-11-02T00:00:00Z"));
}

#[test]
fn groups_by_order_territory_and_meeting() {
    let r = november("2026-11-06T00:00:00Z");
    assert_eq!(
        r.orders.keys().collect::<Vec<_>>(),
        ["ORD-1", "ORD-2", "ORD-3"]
    );
    assert_eq!(
        (r.orders["ORD-1"].packets, r.orders["ORD-1"].bytes),
        (500, 50_000)
    );
    let xa = &r.territories["XA"];
    assert_eq!((xa.rules, xa.packets), (2, 800));
    assert_eq!(xa.orders.iter().collect::<Vec<_>>(), ["ORD-1", "ORD-2"]);
    // Sources 0..40 and 20..60 overlap: the union is 60, not 80.
    assert!(
        xa.distinct_sources.abs_diff(60) <= 24,
        "union of XA sources ≈ 60, got {}",
        xa.distinct_sources
    );
    assert!(
        xa.distinct_sources < 75,
        "merged, not summed: {}",
        xa.distinct_sources
    );
    assert_eq!(r.meetings["town-hall"].rules, 3);
    assert_eq!(r.totals.packets, 811);
}

#[test]
fn a_narrowed_rule_keeps_its_history() {
    let r1 = rule(
        "ORD-1",
        &["XA", "XB"],
        "2026-11-01T10:00:00Z",
        Some(0),
        None,
    );
    let narrowed = rule("ORD-1", &["XB"], "2026-11-01T10:00:00Z", Some(0), None);
    let entries = vec![
        entry(
            1,
            "2026-11-01T10:00:00Z",
            "block",
            json!({"rules_added": [r1.clone()]}),
        ),
        entry(
            2,
            "2026-11-01T11:00:00Z",
            "unblock",
            json!({"rules_changed": [{"before": r1, "after": narrowed}]}),
        ),
    ];
    let mut live = |_: &RuleLife| None;
    let r = build(
        &entries,
        t("2026-11-01T00:00:00Z"),
        t("2026-11-02T00:00:00Z"),
        t("2026-11-01T12:00:00Z"),
        &mut live,
        provenance(),
    );
    assert_eq!(r.rules.len(), 1);
    assert_eq!(r.rules[0].life.territories, ["XB"]);
    assert!(
        r.rules[0].life.changes[0].contains("XA, XB → XB"),
        "{:?}",
        r.rules[0].life.changes
    );
    assert_eq!(r.rules[0].status, "in force");
}

#[test]
fn renders_markdown_and_csv() {
    let r = november("2026-11-06T00:00:00Z");
    let md = markdown(&r);
    for part in [
        "# geofence transparency report",
        "## Orders",
        "## By territory",
        "## Meetings affected",
        "## Rules",
        "## What was not done",
        "No packet content was inspected",
        "| ORD-1 | town-hall | XA | enforce |",
        "±13%",
    ] {
        assert!(md.contains(part), "markdown lacks {part:?}:\n{md}");
    }
    let csv = csv(&r);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 4, "header and one row per rule:\n{csv}");
    assert_eq!(lines[0], render::CSV_HEADER);
    assert!(
        lines[2].starts_with("ORD-2,town-hall,1,1,XA XB,,enforce,"),
        "{}",
        lines[2]
    );
    assert!(lines[1].contains(",500,50000,"), "{}", lines[1]);
    let json = serde_json::to_value(&r).expect("json");
    assert_eq!(json["rules"][0]["order"], "ORD-1");
    assert_eq!(json["orders"]["ORD-1"]["packets"], 500);
}

#[test]
fn dates_and_durations() {
    assert_eq!(
        parse_date("2026-11-01", false),
        Ok(t("2026-11-01T00:00:00Z"))
    );
    assert_eq!(
        parse_date("2026-11-30", true),
        Ok(t("2026-12-01T00:00:00Z"))
    );
    assert_eq!(
        parse_date("2026-11-01T08:00:00Z", true),
        Ok(t("2026-11-01T08:00:00Z"))
    );
    assert!(parse_date("2026-02-30", false).is_err());
    assert!(parse_date("last week", false).is_err());
    assert_eq!(human_duration(45), "45s");
    assert_eq!(human_duration(3 * 3600 + 5 * 60), "3h 05m");
    assert_eq!(human_duration(2 * 86_400 + 3600), "2d 1h 00m");
}
