//! `geofence status`: what is in force reads right, as text and as JSON, and a closed pipe
//! ends the command quietly.

mod common;
mod test_run;

use std::{
    os::unix::process::CommandExt as _,
    process::{Command, Stdio},
    thread::sleep,
    time::Duration,
};

use common::{Dirs, root_with_bpffs};
use test_run::{Program, XDP_DROP, close, hosts};

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
    // Which table decides: its file, format, size and digest.
    let table = d.state.with_extension("csv");
    let (sha, _) = geofence::audit::file_digest(&table).expect("digest");
    let from = format!(
        "  from {} (cidr, 15 B, sha256 {})",
        table.display(),
        &sha[..12]
    );
    assert!(
        text.lines().any(|l| l == from),
        "status lacks {from:?}:\n{text}"
    );
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
    let table = d.state.with_extension("csv");
    let (sha, bytes) = geofence::audit::file_digest(&table).expect("digest");
    let source = &v["table"]["sources"][0];
    assert_eq!(source["sha256"], sha.as_str(), "{v}");
    assert_eq!(source["format"], "cidr");
    assert_eq!(source["bytes"], bytes);
    assert_eq!(source["file"], table.to_str().expect("utf-8"));
    assert!(v["table"]["loaded"].is_string(), "{v}");
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

/// The number after `~` in `~12 sources`.
fn estimate_in(line: &str) -> f64 {
    line.split('~')
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.replace(',', "").parse().ok())
        .unwrap_or_else(|| panic!("no estimate in {line:?}"))
}

#[test]
fn status_and_stats_show_what_each_rule_dropped() {
    if !root_with_bpffs("status_and_stats_show_what_each_rule_dropped") {
        return;
    }
    let d = scene("status-rules");
    // 20 sources of XA (203.0.113.7, the exception, is not among them), 3 frames each,
    // to town-hall: dropped under ORD-1.
    let program = Program::load(&d.pin);
    let len = program.send(&hosts([203, 0, 113], 20, 20), 40000, 3, XDP_DROP);
    let bytes = 60 * len;

    let text = d.ok(&["status"]);
    let line = text
        .lines()
        .find(|l| l.contains("order ORD-1"))
        .unwrap_or_else(|| panic!("no ORD-1 line:\n{text}"));
    let human_bytes = format!("{:.1} KiB", bytes as f64 / 1024.0);
    assert!(
        line.contains(&format!("dropped    60 pkts {human_bytes} ~")),
        "{line}"
    );
    assert!(close(estimate_in(line), 20), "{line}");
    assert!(!text.contains("rules show no counts"), "{text}");

    let v: serde_json::Value =
        serde_json::from_str(&d.ok(&["status", "--json"])).expect("status --json is JSON");
    let town = v["meetings"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["name"] == "town-hall"))
        .unwrap_or_else(|| panic!("town-hall in {v}"));
    let ord1 = &town["rules"][0];
    assert_eq!(ord1["order"], "ORD-1", "{town}");
    assert_eq!(ord1["packets"], 60, "{ord1}");
    assert_eq!(ord1["bytes"], bytes, "{ord1}");
    let estimate = ord1["distinct_sources"].as_f64().expect("an estimate");
    assert!(close(estimate, 20), "{ord1}");
    assert!(v["rule_counters_unavailable"].is_null(), "{v}");

    let v: serde_json::Value =
        serde_json::from_str(&d.ok(&["stats", "--json"])).expect("stats --json is JSON");
    let rules = v["rules"].as_array().expect("a rules list");
    let ord1 = rules
        .iter()
        .find(|r| r["order"] == "ORD-1")
        .unwrap_or_else(|| panic!("ORD-1 in {v}"));
    assert_eq!(ord1["meeting"], "town-hall");
    assert_eq!(ord1["territories"][0], "XA");
    assert_eq!(ord1["mode"], "enforce");
    assert_eq!(ord1["packets"], 60, "{ord1}");
    assert_eq!(ord1["bytes"], bytes, "{ord1}");
    assert!(close(
        ord1["distinct_sources"].as_f64().expect("an estimate"),
        20
    ));
    let ord3 = rules
        .iter()
        .find(|r| r["order"] == "ORD-3")
        .unwrap_or_else(|| panic!("ORD-3 in {v}"));
    assert_eq!(
        (ord3["meeting"].as_str(), &ord3["packets"]),
        (Some("standup"), &0.into())
    );

    // One meeting: only its rules.
    let v: serde_json::Value =
        serde_json::from_str(&d.ok(&["stats", "standup", "--json"])).expect("JSON");
    let orders: Vec<&str> = v["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .filter_map(|r| r["order"].as_str())
        .collect();
    assert_eq!(orders, ["ORD-3"], "{v}");

    let text = d.ok(&["stats"]);
    let row = text
        .lines()
        .find(|l| l.contains("ORD-1"))
        .unwrap_or_else(|| panic!("no ORD-1 row:\n{text}"));
    let words: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        words[..5],
        ["town-hall", "ORD-1", "XA", "enforce", "60"],
        "{row}"
    );
    assert_eq!(words[5], bytes.to_string(), "{row}");
    assert!(close(estimate_in(row), 20), "{row}");
}

#[test]
fn without_root_status_says_once_that_rules_have_no_counts() {
    if !root_with_bpffs("without_root_status_says_once_that_rules_have_no_counts") {
        return;
    }
    let d = scene("status-noroot");
    // The state as an unprivileged operator may read it.
    for path in [&d.state, &d.state.join("state.json")] {
        let mode = if path.is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode))
            .expect("chmod");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_geofence"))
        .arg("--pin-dir")
        .arg(&d.pin)
        .arg("--state-dir")
        .arg(&d.state)
        .arg("status")
        .uid(65534)
        .gid(65534)
        .output()
        .expect("running geofence as nobody");
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() && text.is_empty() {
        // The binary or the state may be out of nobody's reach (a private target dir):
        // that is the environment, not status.
        eprintln!(
            "skipping without_root_status_says_once_that_rules_have_no_counts: \
             nobody cannot run it here: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    assert!(out.status.success(), "{text}");
    assert_eq!(
        text.matches("counters need root").count(),
        // The rules' note and the totals.
        2,
        "{text}"
    );
    assert_eq!(text.matches("rules show no counts").count(), 1, "{text}");
    assert!(!text.contains(" pkts ~"), "{text}");
    assert!(
        text.contains("order ORD-2            dry-run  no expiry"),
        "{text}"
    );
}
