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
