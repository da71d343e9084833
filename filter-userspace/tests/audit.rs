//! `geofence audit show` and `audit verify` on a trail written by real commands.

mod common;

use std::fs;

use common::{Dirs, root_with_bpffs};

#[test]
fn commands_leave_a_verifiable_trail() {
    if !root_with_bpffs("commands_leave_a_verifiable_trail") {
        return;
    }
    let d = Dirs::new("audit");
    fs::create_dir_all(&d.state).expect("state dir");
    let geo = d.state.join("geo.csv");
    fs::write(&geo, "192.0.2.0,192.0.2.255,XA\n").expect("csv");
    d.ok(&["geo", "load", geo.to_str().expect("utf-8 path")]);
    d.ok(&["meeting", "add", "town-hall", "--endpoint", "udp:*:40000"]);
    d.ok(&[
        "block",
        "town-hall",
        "--territory",
        "XA",
        "--order",
        "ORD-7",
        "--for",
        "1h",
    ]);
    d.ok(&[
        "block",
        "town-hall",
        "--prefix",
        "198.51.100.7",
        "--order",
        "ORD-8",
        "--dry-run",
    ]);
    d.ok(&["unblock", "town-hall", "--territory", "XA"]);

    let verified = d.ok(&["audit", "verify"]);
    assert!(verified.contains("5 entries, chain intact"), "{verified}");

    let shown = d.ok(&["audit", "show", "--order", "ORD-7"]);
    let actions: Vec<&str> = shown
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(3))
        .collect();
    assert_eq!(actions, ["block", "unblock"], "{shown}");
    let json = d.ok(&["audit", "show", "--json"]);
    let entries: serde_json::Value = serde_json::from_str(&json).expect("json");
    let load = &entries[0]["details"]["sources"][0];
    assert_eq!(load["bytes"], 25, "{load}");
    assert_eq!(
        load["sha256"].as_str().map(str::len),
        Some(64),
        "geo load records the file's SHA-256: {load}"
    );
    assert_eq!(entries[3]["details"]["mode"], "dry-run");

    let path = d.state.join("audit.jsonl");
    let text = fs::read_to_string(&path).expect("trail");
    fs::write(&path, text.replacen("ORD-8", "ORD-0", 1)).expect("edit");
    let err = d.fails(&["audit", "verify"]);
    let out = String::from_utf8_lossy(&d.run(&["audit", "verify"]).stdout).into_owned();
    assert!(err.contains("not intact"), "{err}");
    assert!(
        out.contains("line 4 (seq 4)") && out.contains("edited"),
        "{out}"
    );
}

#[test]
fn report_command_formats_and_refuses_bad_periods() {
    if !root_with_bpffs("report_command_formats_and_refuses_bad_periods") {
        return;
    }
    let d = Dirs::new("report");
    fs::create_dir_all(&d.state).expect("state dir");
    d.ok(&["meeting", "add", "town-hall", "--endpoint", "udp:*:40000"]);
    d.ok(&[
        "block",
        "town-hall",
        "--territory",
        "XA",
        "--order",
        "ORD-1",
    ]);
    d.ok(&[
        "block",
        "town-hall",
        "--territory",
        "XB",
        "--order",
        "ORD-2",
        "--dry-run",
    ]);
    d.ok(&["unblock", "town-hall", "--territory", "XB"]);
    let today = jiff::Timestamp::now().to_string()[..10].to_string();
    let period = ["report", "--from", today.as_str(), "--to", today.as_str()];

    let csv = d.ok(&[&period[..], &["--format", "csv"]].concat());
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 3, "header and one row per rule:\n{csv}");
    assert!(rows[0].starts_with("order,meeting,"), "{csv}");
    assert!(
        rows[1].starts_with("ORD-1,town-hall,1,0,XA,,enforce,"),
        "{csv}"
    );
    assert!(
        rows[2].contains(",dry-run,") && rows[2].contains(",removed,"),
        "{csv}"
    );

    let json: serde_json::Value =
        serde_json::from_str(&d.ok(&[&period[..], &["--format", "json"]].concat())).expect("json");
    assert_eq!(json["provenance"]["chain"], "intact");
    assert_eq!(
        json["rules"][1]["counts"]["packets"], 0,
        "no packets were sent"
    );
    assert_eq!(json["rules"][1]["counts"]["source"], "audit seq 4");
    assert_eq!(json["rules"][0]["counts"]["source"], "live");

    let md = d.ok(&period);
    assert!(md.starts_with("# geofence transparency report"), "{md}");
    assert!(md.contains("## What was not done"), "{md}");

    let err = d.fails(&["report", "--from", "2026-11-30", "--to", "2026-11-01"]);
    assert!(
        err.contains("--from") && err.contains("not before"),
        "{err}"
    );
    let err = d.fails(&["report", "--from", "last week", "--to", "2026-11-01"]);
    assert!(err.contains("--from `last week`"), "{err}");
}
