//! What a scrape shows for a known state and known counters.

use std::collections::BTreeMap;

use filter_common::{accounting::SourceSketch, maps::v4_mapped};

use super::*;
use crate::{
    kernel::TerritoryCounts,
    state::{Meeting, Rule},
};

fn rule(order: &str, territory: &str, expires: Option<&str>) -> Rule {
    Rule {
        order: order.into(),
        territories: vec![territory.parse().expect("territory")],
        prefixes: vec![],
        expires: expires.map(|t| t.parse().expect("time")),
        dry_run: false,
        issued: "2026-11-28T10:00:00Z".parse().expect("time"),
        issued_by: "test".into(),
        slot: None,
    }
}

/// Counts of `packets` packets of 100 bytes from the sources `from..to` (10.0.0.x).
fn rule_counts(packets: u64, from: u32, to: u32) -> RuleCounts {
    let mut sketch = SourceSketch::EMPTY;
    for i in from..to {
        sketch.add(&v4_mapped((0x0a00_0000 + i).to_be_bytes()));
    }
    RuleCounts {
        packets,
        bytes: packets * 100,
        distinct_sources: crate::sketch::estimate_count(&sketch.registers),
        registers: sketch.registers,
    }
}

fn snapshot() -> Snapshot {
    let mut state = State::default();
    state.meetings.insert(
        "town-hall".into(),
        Meeting {
            session: 1,
            created: "2026-11-28T09:00:00Z".parse().expect("time"),
            endpoints: vec![],
            flows: vec![],
            rules: vec![
                rule("ORD-1", "XA", Some("2026-11-28T13:00:00Z")),
                // Same meeting, order and targets: one series, the later expiry.
                rule("ORD-1", "XA", Some("2026-11-28T14:00:00Z")),
                rule("ORD-2", "XB", Some("2026-11-28T11:00:00Z")),
                rule("ORD-3", "XC", None),
            ],
            allows: vec![],
        },
    );
    let xa = Territory::parse("XA").expect("XA").id();
    let mut counts = TerritoryCounts::default();
    counts.packets[Verdict::Dropped as usize] = 7;
    counts.bytes[Verdict::Dropped as usize] = 700;
    let mut stats = Stats::default();
    stats.sessions.insert(1, BTreeMap::from([(xa, counts)]));
    // Counters of a meeting deleted since: not shown, it has no name any more.
    stats.sessions.insert(99, BTreeMap::from([(xa, counts)]));
    stats.pass_reasons[PassReason::NoSession as usize] = 5;
    Snapshot {
        state: Some(state),
        kernel: Some(KernelView {
            stats,
            generation: 1,
            // Slots as sync placed these slot-less rules: 0 and 1 are both ORD-1 XA, with
            // overlapping sources (0..20 and 10..30: 30 distinct); 2 is ORD-2.
            rules: BTreeMap::from([
                ((1, 0), rule_counts(4, 0, 20)),
                ((1, 1), rule_counts(6, 10, 30)),
                ((1, 2), rule_counts(3, 100, 103)),
                // A slot no rule of the state holds: not shown.
                ((1, 7), rule_counts(50, 0, 1)),
            ]),
        }),
        maps_pinned: true,
        daemon: super::super::status::Shared::new().get(),
        fleet: None,
        now: "2026-11-28T12:00:00Z".parse().expect("time"),
    }
}

fn scrape(s: Snapshot) -> String {
    render(s).expect("a scrape")
}

#[test]
fn a_scrape_shows_named_counters_expiries_and_reasons() {
    let text = scrape(snapshot());
    for line in [
        "geofence_up 1",
        "geofence_packets_total{meeting=\"town-hall\",territory=\"XA\",verdict=\"dropped\"} 7",
        "geofence_bytes_total{meeting=\"town-hall\",territory=\"XA\",verdict=\"dropped\"} 700",
        "geofence_packets_total{meeting=\"town-hall\",territory=\"XA\",verdict=\"passed\"} 0",
        "geofence_unclassified_packets_total{reason=\"no_session\"} 5",
        "geofence_rule_expiry_timestamp_seconds{meeting=\"town-hall\",order=\"ORD-1\",targets=\"XA\",mode=\"enforce\"} 1795874400.0",
        "geofence_meeting_rules{meeting=\"town-hall\"} 3",
        "geofence_geo_table_generation 1",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in:\n{text}"
        );
    }
    let expiries_of_ord1 = text
        .lines()
        .filter(|l| l.starts_with("geofence_rule_expiry_timestamp_seconds{"))
        .filter(|l| l.contains("order=\"ORD-1\""))
        .count();
    assert_eq!(expiries_of_ord1, 1, "{text}");
    assert!(
        !text.contains(
            "geofence_rule_expiry_timestamp_seconds{meeting=\"town-hall\",order=\"ORD-3\""
        ),
        "a rule without expiry has no expiry series"
    );
    assert_eq!(
        text.matches("verdict=\"dropped\"").count(),
        2,
        "session 99 is not shown"
    );
}

#[test]
fn without_maps_the_state_still_shows_and_up_is_0() {
    let mut s = snapshot();
    s.kernel = None;
    s.maps_pinned = false;
    let text = scrape(s);
    assert!(text.lines().any(|l| l == "geofence_up 0"), "{text}");
    assert!(
        text.lines().any(|l| l == "geofence_maps_pinned 0"),
        "{text}"
    );
    assert!(text.contains("geofence_meeting_rules{meeting=\"town-hall\"} 3"));
    assert!(!text.contains("geofence_packets_total{"), "{text}");
}

#[test]
fn rule_series_add_counts_and_merge_sketches_per_order() {
    let text = scrape(snapshot());
    let ord1 = "{meeting=\"town-hall\",order=\"ORD-1\",mode=\"enforce\"}";
    let ord2 = "{meeting=\"town-hall\",order=\"ORD-2\",mode=\"enforce\"}";
    for line in [
        format!("geofence_rule_packets_total{ord1} 10"),
        format!("geofence_rule_bytes_total{ord1} 1000"),
        format!("geofence_rule_packets_total{ord2} 3"),
        format!("geofence_rule_distinct_sources{ord2} 3"),
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in:\n{text}"
        );
    }
    // The union of the two sketches, not the sum of the estimates (40).
    let merged: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix(&format!("geofence_rule_distinct_sources{ord1} ")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no merged estimate in:\n{text}"));
    assert!((merged - 30.0).abs() <= 30.0 * 0.39, "estimate {merged}");
    assert!(
        !text.contains("ORD-3\",mode"),
        "ORD-3 holds a slot without counts"
    );
    assert!(!text.lines().any(|l| l.ends_with(" 50")), "{text}");
}

#[test]
fn in_fleet_mode_a_scrape_shows_the_link_to_etcd() {
    assert!(
        !scrape(snapshot()).contains("geofence_fleet_"),
        "fleet series outside fleet mode"
    );
    let t = |s: &str| -> jiff::Timestamp { s.parse().expect("time") };
    let mut s = snapshot();
    s.fleet = Some(crate::fleet::connection::Connection {
        connected: false,
        last_answer: Some(t("2026-11-28T11:59:30Z")),
        version: 3,
        version_error: false,
        outages: 2,
        outage_since: Some(t("2026-11-28T11:59:40Z")),
        status_writes: 9,
    });
    let text = scrape(s);
    for line in [
        "geofence_fleet_connected 0",
        "geofence_fleet_etcd_silence_seconds 30.0",
        "geofence_fleet_etcd_last_answer_timestamp_seconds 1795867170.0",
        "geofence_fleet_version_applied 3",
        "geofence_fleet_version_error 0",
        "geofence_fleet_outages_total 2",
        "geofence_fleet_outage_seconds 20.0",
        "geofence_fleet_status_writes_total 9",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in:\n{text}"
        );
    }
}

#[test]
fn the_table_in_force_is_named_by_its_files_and_digests() {
    let with_table = |digests: bool| {
        let mut s = snapshot();
        let record = serde_json::json!({
            "files": ["/geo/v4.csv", "/geo/v6.csv.gz"],
            "format": "auto",
            "territory": null,
            "loaded": "2026-11-28T11:00:00Z",
            "prefixes_v4": 3,
            "prefixes_v6": 2,
            "territories": 2,
            "generation": 1,
            "sources": [
                {"file": "/geo/v4.csv", "format": "csv", "sha256": "aa11", "bytes": 10},
                {"file": "/geo/v6.csv.gz", "format": "csv", "sha256": "bb22", "bytes": 20},
            ],
        });
        let mut geo: crate::state::GeoRecord =
            serde_json::from_value(record).expect("a table record");
        if !digests {
            geo.sources.clear();
        }
        s.state.as_mut().expect("state").geo = Some(geo);
        s
    };
    let text = scrape(with_table(true));
    let info = "geofence_geo_table_info{files=\"/geo/v4.csv /geo/v6.csv.gz\",sha256=\"aa11 bb22\",format=\"csv csv\"} 1";
    let loaded = "geofence_geo_table_loaded_timestamp_seconds 1795863600.0";
    for line in [info, loaded] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in:\n{text}"
        );
    }
    // Loaded by a version that did not record digests: the files still name it.
    let text = scrape(with_table(false));
    let info = "geofence_geo_table_info{files=\"/geo/v4.csv /geo/v6.csv.gz\",sha256=\"unrecorded\",format=\"auto\"} 1";
    assert!(
        text.lines().any(|l| l == info),
        "missing {info:?} in:\n{text}"
    );
}
