//! `geofence geo diff` and the change `geo load` reports: the moves between territories
//! and what they do to the rules in force, against files or the table in force; bad
//! input names the file and the side it was given for.

mod common;

use std::fs;

use common::{Dirs, root_with_bpffs};
use serde_json::Value;

/// HK, CN and XA in IPv4, US in IPv6.
const OLD: &str = "\
10.0.0.0,10.0.0.255,HK
10.0.1.0,10.0.1.255,CN
192.0.2.0,192.0.2.255,XA
2001:db8::,2001:db8:ffff:ffff:ffff:ffff:ffff:ffff,US
";

/// HK → CN and CN → US (one /24 each), half of XA's /24 leaves the table, and the upper
/// half of the IPv6 /32 moves to CA.
const NEW: &str = "\
10.0.0.0,10.0.0.255,CN
10.0.1.0,10.0.1.255,US
192.0.2.0,192.0.2.127,XA
2001:db8::,2001:db8:7fff:ffff:ffff:ffff:ffff:ffff,US
2001:db8:8000::,2001:db8:ffff:ffff:ffff:ffff:ffff:ffff,CA
";

/// The two tables written into the test's state directory.
fn tables(d: &Dirs) -> (String, String) {
    fs::create_dir_all(&d.state).expect("state dir");
    let write = |name: &str, text: &str| {
        let path = d.state.join(name);
        fs::write(&path, text).expect("writing a table");
        path.to_str().expect("utf-8 path").to_string()
    };
    (write("old.csv", OLD), write("new.csv", NEW))
}

fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

fn assert_has(text: &str, expected: &[&str]) {
    for line in expected {
        assert!(
            text.lines().any(|l| l == *line),
            "{line:?} missing from:\n{text}"
        );
    }
}

#[test]
fn files_against_files_need_no_kernel() {
    let d = Dirs::new("geodiff-files");
    let (old, new) = tables(&d);
    let text = d.ok(&["geo", "diff", "--old", &old, &new]);
    assert_eq!(lines(&text)[0], format!("from {old}"));
    assert_has(
        &text,
        &[
            "IPv4: 640 addresses in 2 prefixes change territory",
            "  CN → US  256 addresses in 1 prefix",
            "  HK → CN  256 addresses in 1 prefix",
            "  XA → --  128 addresses in 1 prefix",
            "IPv6: /33 in 1 prefix change territory",
            "  US → CA  /33 in 1 prefix",
            "No territory rule is in force.",
        ],
    );
    let json: Value =
        serde_json::from_str(&d.ok(&["geo", "diff", "--old", &old, &new, "--json"])).expect("JSON");
    assert_eq!(json["ipv4"]["addresses"], 640);
    assert_eq!(json["ipv4"]["moves"].as_array().map(Vec::len), Some(3));
    assert_eq!(json["ipv4"]["moves"][2]["to"], "unknown");
    assert_eq!(json["ipv6"]["addresses"], (1u128 << 95).to_string());
    assert_eq!(json["old"]["files"][0], old.as_str());
    // The same table on both sides.
    let same = d.ok(&["geo", "diff", "--old", &new, &new]);
    assert_has(
        &same,
        &[
            "IPv4: no address changes territory",
            "IPv6: no address changes territory",
        ],
    );
}

#[test]
fn bad_input_names_the_file_and_its_side() {
    let d = Dirs::new("geodiff-bad");
    let (old, new) = tables(&d);
    let broken = d.state.join("broken.csv");
    fs::write(&broken, "10.0.0.0,10.0.0.255,HK\n10.0.1.0,nonsense,CN\n").expect("write");
    let broken = broken.to_str().expect("utf-8").to_string();
    let err = d.fails(&["geo", "diff", "--old", &broken, &new]);
    assert!(
        err.contains("reading the old table (--old)") && err.contains("broken.csv:2"),
        "{err}"
    );
    let err = d.fails(&["geo", "diff", "--old", &old, &broken]);
    assert!(
        err.contains("reading the new table") && err.contains("broken.csv:2"),
        "{err}"
    );
    let missing = d.state.join("missing.csv");
    let err = d.fails(&[
        "geo",
        "diff",
        "--old",
        &old,
        missing.to_str().expect("utf-8"),
    ]);
    assert!(err.contains("missing.csv"), "{err}");
    let err = d.fails(&["geo", "diff", "--old", &old]);
    assert!(err.contains("<FILES>"), "new files are required: {err}");
}

/// The meeting's rules and exception: ORD-1 blocks CN (enforce), ORD-2 blocks XA (dry
/// run); 10.0.0.7 is an exception, which the table does not decide.
fn meeting_with_rules(d: &Dirs) {
    d.ok(&["meeting", "add", "town-hall", "--endpoint", "udp:*:40000"]);
    d.ok(&[
        "block",
        "town-hall",
        "--territory",
        "CN",
        "--order",
        "ORD-1",
    ]);
    d.ok(&[
        "block",
        "town-hall",
        "--territory",
        "XA",
        "--order",
        "ORD-2",
        "--dry-run",
    ]);
    d.ok(&["allow", "town-hall", "--prefix", "10.0.0.7"]);
}

#[test]
fn the_table_in_force_against_files_and_what_a_load_changed() {
    if !root_with_bpffs("the_table_in_force_against_files_and_what_a_load_changed") {
        return;
    }
    let d = Dirs::new("geodiff-kernel");
    let (old, new) = tables(&d);
    let err = d.fails(&["geo", "diff", &new]);
    assert!(err.contains("no table is in force"), "{err}");
    let first = d.ok(&["geo", "load", &old]);
    assert_has(
        &first,
        &[
            "against table A, which it replaced:",
            "  IPv4: 768 addresses in 2 prefixes change territory",
            "    -- → CN  256 addresses in 1 prefix",
        ],
    );
    meeting_with_rules(&d);
    // HK → CN is newly blocked by ORD-1 but for the exception: 10.0.0.0-6 (a /30, a /31
    // and a /32) and 10.0.0.8-255 (a /29 to a /25). CN → US newly passes. Half of XA
    // leaves the table: ORD-2 no longer (would) block it.
    let expected = [
        "Rules in force:",
        "  town-hall: newly blocked: 255 IPv4 addresses in 8 prefixes; newly passing: 384 \
         IPv4 addresses in 2 prefixes",
        "    order ORD-1 (CN, enforce): newly blocked: 255 IPv4 addresses in 8 prefixes; \
         newly passing: 256 IPv4 addresses in 1 prefix",
        "    order ORD-2 (XA, dry run): newly passing: 128 IPv4 addresses in 1 prefix",
    ];
    let preview = d.ok(&["geo", "diff", &new]);
    assert!(
        lines(&preview)[0].starts_with("from the table in force (table B): ")
            && preview.contains("old.csv (csv, sha256 "),
        "{preview}"
    );
    assert_has(&preview, &expected);
    let json: Value = serde_json::from_str(&d.ok(&["geo", "diff", &new, "--json"])).expect("JSON");
    let rules = &json["meetings"][0];
    assert_eq!(rules["meeting"], "town-hall");
    assert_eq!(rules["newly_blocked"]["ipv4"]["addresses"], 255);
    assert_eq!(rules["rules"][1]["order"], "ORD-2");
    assert_eq!(rules["rules"][1]["mode"], "dry-run");
    assert_eq!(rules["rules"][1]["newly_passing"]["ipv4"]["prefixes"], 1);
    assert_eq!(json["old"]["in_force"], "B");
    // The load reports the same change, indented under the table it replaced.
    let loaded = d.ok(&["geo", "load", &new]);
    assert!(
        loaded.contains("against table B, which it replaced:"),
        "{loaded}"
    );
    let indented: Vec<String> = expected.iter().map(|l| format!("  {l}")).collect();
    let indented: Vec<&str> = indented.iter().map(String::as_str).collect();
    assert_has(&loaded, &indented);
    // The audit entry keeps the totals and each rule's part, not the pairs.
    let trail = d.read_state("audit.jsonl");
    let last: Value = serde_json::from_str(trail.lines().last().expect("an entry")).expect("JSON");
    assert_eq!(last["action"], "geo load");
    let change = &last["details"]["change"];
    assert_eq!(change["ipv4"]["addresses"], 640);
    assert!(change["ipv4"].get("moves").is_none(), "{change}");
    assert_eq!(
        change["meetings"][0]["rules"][0]["newly_passing"]["ipv4"]["addresses"],
        256
    );
    // Now in force, the new table differs from itself in nothing.
    let again = d.ok(&["geo", "diff", &new]);
    assert_has(&again, &["IPv4: no address changes territory"]);
    assert!(
        again.contains("  town-hall: no change"),
        "rules still listed: {again}"
    );
}
