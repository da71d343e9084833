//! `geofence status`: what is in force reads right, as text and as JSON, and a closed pipe
//! ends the command quietly.

mod common;

use std::{
    process::{Command, Stdio},
    thread::sleep,
    time::Duration,
};

use common::{Dirs, root_with_bpffs};

fn scene(tag: &str) -> Dirs {
    let d = Dirs::new(tag);
    let table = d.state.with_extension("csv");
    std::fs::write(&table, "203.0.113.0/24\n").expect("writing the table");
    let table = table.to_string_lossy().into_owned();
    d.ok(&["geo", "load", "--territory", "XA", &table]);
    d.ok(&[
        "meeting",
        "add",
        "town-hall",
        "--endpoint",
        "udp:*:40000-40099",
    ]);
    d.ok(&["meeting", "add", "standup", "--endpoint", "tcp:*:443"]);
    d.ok(&[
        "block",
        "town-hall",
        "--territory",
        "XA",
        "--order",
        "ORD-1",
        "--for",
        "24h",
    ]);
    d.ok(&[
        "block",
        "town-hall",
        "--prefix",
        "198.51.100.0/24",
        "--order",
        "ORD-2",
        "--dry-run",
    ]);
    d.ok(&[
        "block",
        "standup",
        "--territory",
        "XB",
        "--order",
        "ORD-3",
        "--for",
        "1s",
    ]);
    d.ok(&["allow", "town-hall", "--prefix", "203.0.113.7"]);
    // ORD-3 lapses.
    sleep(Duration::from_millis(1500));
    d
}

#[test]
fn status_reads_what_is_in_force() {
    if !root_with_bpffs("status_reads_what_is_in_force") {
        return;
    }
    let d = scene("status-text");
    let text = d.ok(&["status"]);
    for expected in [
        "Territory table",
        "1 IPv4 + 0 IPv6 prefixes in 1 territory",
        "Meetings: 2   rules in force: 2 (1 dry-run)   expired: 1",
        "town-hall (session",
        "udp:*:40000-40099",
        "order ORD-1",
        "(23h 59m left)",
        "order ORD-2            dry-run  no expiry",
        "EXPIRED",
        "allow 203.0.113.7/32",
        "none: packets are not filtered",
        "Totals since the maps were created",
    ] {
        assert!(
            text.contains(expected),
            "status lacks {expected:?}:\n{text}"
        );
    }
}

#[test]
fn status_json_has_every_rule_and_counter() {
    if !root_with_bpffs("status_json_has_every_rule_and_counter") {
        return;
    }
    let d = scene("status-json");
    let out = d.ok(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("status --json is JSON");
    let meetings = v["meetings"].as_array().expect("meetings");
    assert_eq!(meetings.len(), 2, "{v}");
    let town = meetings
        .iter()
        .find(|m| m["name"] == "town-hall")
        .expect("town-hall listed");
    let rules = town["rules"].as_array().expect("rules");
    assert_eq!(rules.len(), 2, "{town}");
    assert_eq!(rules[0]["order"], "ORD-1");
    assert_eq!(rules[0]["territories"][0], "XA");
    assert_eq!(rules[0]["expired"], false);
    assert_eq!(rules[1]["mode"], "dry-run");
    assert_eq!(rules[1]["prefixes"][0], "198.51.100.0/24");
    assert_eq!(town["allows"][0], "203.0.113.7/32");
    assert_eq!(town["counters"]["dropped"]["packets"], 0);
    let standup = meetings
        .iter()
        .find(|m| m["name"] == "standup")
        .expect("standup listed");
    assert_eq!(standup["rules"][0]["expired"], true, "{standup}");
    assert_eq!(v["table"]["prefixes_v4"], 1);
    assert!(v["counters_unavailable"].is_null(), "{v}");
    assert!(v["totals"]["passed"]["packets"].is_u64(), "{v}");
}

#[test]
fn a_closed_pipe_ends_status_quietly() {
    if !root_with_bpffs("a_closed_pipe_ends_status_quietly") {
        return;
    }
    let d = scene("status-pipe");
    let mut child = Command::new(env!("CARGO_BIN_EXE_geofence"))
        .arg("--pin-dir")
        .arg(&d.pin)
        .arg("--state-dir")
        .arg(&d.state)
        .args(["status", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning geofence");
    // Close the reading end before the command writes anything.
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("waiting for geofence");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "status panicked: {stderr}");
}
