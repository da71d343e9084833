//! `geofence audit show`, `audit verify` and `audit anchor` on a trail written by real
//! commands, and on trails the test writes itself.

mod common;

use std::fs;

use common::{Dirs, root_with_bpffs};
use serde_json::json;

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

/// A fresh trail of `n` entries in `d`'s state directory, each naming `order`.
fn write_trail(d: &Dirs, n: u64, order: &str) {
    let _ = fs::remove_dir_all(&d.state);
    fs::create_dir_all(&d.state).expect("state dir");
    for i in 0..n {
        geofence::audit::append(&d.state, "block", json!({"order": order, "i": i}))
            .expect("append");
    }
}

/// The anchor `audit anchor` prints, and what it says on stderr.
fn anchor(d: &Dirs) -> (String, String) {
    let out = d.run(&["audit", "anchor"]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one line to paste: {stdout}");
    let anchor = lines[0]
        .strip_prefix("geofence-audit-anchor ")
        .unwrap_or_else(|| panic!("tagged: {stdout}"))
        .to_string();
    (anchor, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn an_anchor_taken_earlier_catches_a_rewritten_or_cut_trail() {
    let d = Dirs::new("anchor");
    write_trail(&d, 3, "ORD-1");
    let (at3, hint) = anchor(&d);
    assert!(
        at3.starts_with("3:sha256:") && at3.len() == 2 + 7 + 64,
        "{at3}"
    );
    assert!(
        hint.contains(&format!("geofence audit verify --anchor {at3}")),
        "says what to do with it: {hint}"
    );
    let out = d.ok(&["audit", "verify", "--anchor", &at3]);
    assert!(
        out.contains("3 entries, chain intact; matches anchor 3:sha256:"),
        "{out}"
    );
    // The whole pasted line is taken too.
    d.ok(&[
        "audit",
        "verify",
        "--anchor",
        &format!("geofence-audit-anchor {at3}"),
    ]);

    // Later entries leave an earlier anchor standing.
    geofence::audit::append(&d.state, "unblock", json!({"orders": ["ORD-1"]})).expect("append");
    d.ok(&["audit", "verify", "--anchor", &at3]);

    // Every entry written again, under another order: a chain consistent in itself and
    // with its head, which only the anchor contradicts.
    write_trail(&d, 4, "ORD-2");
    assert!(
        d.ok(&["audit", "verify"])
            .contains("4 entries, chain intact")
    );
    let err = d.fails(&["audit", "verify", "--anchor", &at3]);
    let out =
        String::from_utf8_lossy(&d.run(&["audit", "verify", "--anchor", &at3]).stdout).into_owned();
    assert!(err.contains("not intact (1 problem)"), "{err}");
    assert!(
        out.contains("line 3 (seq 3)") && out.contains("rewritten at or before seq 3"),
        "{out}"
    );

    // Written again shorter: the anchor's seq is gone.
    write_trail(&d, 2, "ORD-2");
    d.fails(&["audit", "verify", "--anchor", &at3]);
    let out =
        String::from_utf8_lossy(&d.run(&["audit", "verify", "--anchor", &at3]).stdout).into_owned();
    assert!(out.contains("the trail ends at seq 2"), "{out}");
}

#[test]
fn audit_anchor_refuses_a_broken_or_empty_trail() {
    let d = Dirs::new("anchor-refused");
    fs::create_dir_all(&d.state).expect("state dir");
    let err = d.fails(&["audit", "anchor"]);
    assert!(err.contains("no entries yet"), "{err}");

    write_trail(&d, 2, "ORD-1");
    let path = d.state.join("audit.jsonl");
    let text = fs::read_to_string(&path).expect("trail");
    fs::write(&path, text.replacen(",\"time\"", ", \"time\"", 1)).expect("edit");
    let out = d.run(&["audit", "anchor"]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(!out.status.success(), "{stdout}");
    assert!(!stdout.contains("geofence-audit-anchor"), "{stdout}");
    assert!(stdout.contains("line 1 (seq 1), byte 9"), "{stdout}");
    assert!(stderr.contains("no anchor taken"), "{stderr}");
}

#[test]
fn a_malformed_anchor_is_refused_naming_the_argument() {
    let d = Dirs::new("anchor-malformed");
    write_trail(&d, 1, "ORD-1");
    for (anchor, why) in [
        ("12", "is not an anchor"),
        ("0:sha256:00", "the seq `0`"),
        ("3:sha256:abc", "it has 3 digits"),
    ] {
        let out = d.run(&["audit", "verify", "--anchor", anchor]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains(&format!(
                "invalid value '{anchor}' for '--anchor <SEQ:HASH>'"
            )) && err.contains(why),
            "{err}"
        );
    }
}
