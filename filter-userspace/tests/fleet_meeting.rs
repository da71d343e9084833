//! A fleet rule for a meeting a relay does not have yet is in force from the change that
//! adds the meeting there: `meeting add` takes the rules of the fleet version the relay
//! applied last, in the same change, so the meeting's first packet meets them.

mod common;

use common::{Dirs, root_with_bpffs};
use geofence::fleet::{
    document::{FleetMeeting, FleetRule, PolicyDoc, SourceFile},
    relay,
};

#[test]
fn a_meeting_added_on_a_fleet_relay_starts_under_the_fleet_rules() {
    if !root_with_bpffs("a_meeting_added_on_a_fleet_relay_starts_under_the_fleet_rules") {
        return;
    }
    let d = Dirs::new("fleet-meeting");
    std::fs::create_dir_all(&d.state).expect("the state dir");
    let csv = d.state.join("geo.csv");
    std::fs::write(
        &csv,
        "192.0.2.0,192.0.2.255,XA\n198.51.100.0,198.51.100.255,XB\n",
    )
    .expect("writing the table");
    d.ok(&["geo", "load", csv.to_str().expect("a UTF-8 path")]);
    let rule = FleetRule {
        order: "ORD-FLEET-7".into(),
        territories: vec!["XA".parse().expect("territory")],
        prefixes: vec![],
        expires: None,
        dry_run: false,
    };
    let doc = PolicyDoc {
        version: 7,
        author: "ops@control".into(),
        written: "2026-12-01T00:00:00Z".parse().expect("time"),
        source: SourceFile {
            file: "policy.toml".into(),
            sha256: "0".repeat(64),
        },
        prev: None,
        geo: None,
        meetings: [(
            "late".to_string(),
            FleetMeeting {
                rules: vec![rule],
                allow: vec![geofence::prefix::parse_prefix("192.0.2.77").expect("prefix")],
            },
        )]
        .into(),
        hash: String::new(),
    };
    relay::persist(&d.state, &doc, 42).expect("recording the applied version");

    d.ok(&["meeting", "add", "late", "--endpoint", "udp:*:40000"]);
    d.ok(&["meeting", "add", "other", "--endpoint", "udp:*:41000"]);
    let status: serde_json::Value =
        serde_json::from_str(&d.ok(&["status", "--json"])).expect("status JSON");
    let meetings = status["meetings"].as_array().expect("meetings");
    let of = |name: &str| {
        meetings
            .iter()
            .find(|m| m["name"] == name)
            .expect("the meeting")
    };
    let late = of("late");
    assert_eq!(late["rules"][0]["order"], "ORD-FLEET-7", "{late:#}");
    assert_eq!(late["allows"][0], "192.0.2.77/32", "{late:#}");
    assert_eq!(of("other")["rules"].as_array().map(Vec::len), Some(0));
    let audit = d.read_state("audit.jsonl");
    assert!(audit.contains("\"fleet_version\":7"), "{audit}");
    // In force in the kernel from the change that added the meeting.
    let explain = d.ok(&[
        "explain",
        "--proto",
        "udp",
        "--src",
        "192.0.2.10",
        "--dst",
        "100.64.0.1:40000",
    ]);
    assert!(explain.contains("kernel agrees: DROP"), "{explain}");
    let allowed = d.ok(&[
        "explain",
        "--proto",
        "udp",
        "--src",
        "192.0.2.77",
        "--dst",
        "100.64.0.1:40000",
    ]);
    assert!(allowed.contains("kernel agrees: PASS"), "{allowed}");
}
