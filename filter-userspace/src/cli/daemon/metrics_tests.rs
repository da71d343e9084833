//! What a scrape shows for a known state and known counters.

use std::collections::BTreeMap;

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
        }),
        maps_pinned: true,
        daemon: super::super::status::Shared::new().get(),
        now: "2026-11-28T12:00:00Z".parse().expect("time"),
    }
}

#[test]
fn a_scrape_shows_named_counters_expiries_and_reasons() {
    let text = render(&snapshot());
    for line in [
        "geofence_up 1",
        "geofence_packets_total{meeting=\"town-hall\",territory=\"XA\",verdict=\"dropped\"} 7",
        "geofence_bytes_total{meeting=\"town-hall\",territory=\"XA\",verdict=\"dropped\"} 700",
        "geofence_packets_total{meeting=\"town-hall\",territory=\"XA\",verdict=\"passed\"} 0",
        "geofence_unclassified_packets_total{reason=\"no_session\"} 5",
        "geofence_rule_expiry_timestamp_seconds{meeting=\"town-hall\",order=\"ORD-1\",targets=\"XA\",mode=\"enforce\"} 1795874400",
        "geofence_meeting_rules{meeting=\"town-hall\"} 3",
        "geofence_geo_table_generation 1",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in:\n{text}"
        );
    }
    assert_eq!(text.matches("order=\"ORD-1\"").count(), 1, "{text}");
    assert!(
        !text.contains("ORD-3"),
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
    let text = render(&s);
    assert!(text.lines().any(|l| l == "geofence_up 0"), "{text}");
    assert!(
        text.lines().any(|l| l == "geofence_maps_pinned 0"),
        "{text}"
    );
    assert!(text.contains("geofence_meeting_rules{meeting=\"town-hall\"} 3"));
    assert!(!text.contains("geofence_packets_total{"), "{text}");
}
