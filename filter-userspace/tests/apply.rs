//! `geofence apply` and `geofence export`: apply → export → apply changes nothing (state
//! file, maps, territory table, audit log); `--dry-run` changes nothing; a failed apply
//! changes nothing and names the file and line; an apply that adds, changes and removes
//! gives the kernel maps the equivalent CLI commands give. The failure cases print the
//! rows of `docs/bad-input.md` (`cargo test -p filter-userspace --test apply -- --nocapture`).

use std::{
    collections::BTreeMap,
    fs,
    mem::{offset_of, size_of},
    process::Command,
};

mod common;

use common::{Dirs, root_with_bpffs};
use filter_common::{Override, Policy, Rule, maps::names, policy::RULES_PER_SESSION};

const MAPS: [&str; 6] = [
    names::ENDPOINTS,
    names::FLOWS,
    names::OVERRIDES,
    names::POLICIES,
    names::PORTS,
    names::SESSION_ACTIVE,
];

const GEO_1: &str = "192.0.2.0,192.0.2.255,XA\n198.51.100.0,198.51.100.255,XB\n";
const GEO_2: &str = "192.0.2.0,192.0.2.255,XB\n203.0.113.0,203.0.113.255,XC\n";
const PROBES: [&str; 3] = ["192.0.2.1", "198.51.100.1", "203.0.113.1"];

/// Everything apply may change.
#[derive(Debug, PartialEq)]
struct Snapshot {
    state: String,
    audit_lines: usize,
    maps: BTreeMap<&'static str, String>,
    territories: Vec<String>,
}

fn bpftool_dump(d: &Dirs, name: &str) -> String {
    common::map_json(&d.pin, name)
}

fn snapshot(d: &Dirs) -> Snapshot {
    Snapshot {
        state: d.read_state("state.json"),
        audit_lines: d.read_state("audit.jsonl").lines().count(),
        maps: MAPS.iter().map(|m| (*m, bpftool_dump(d, m))).collect(),
        territories: PROBES.iter().map(|a| d.ok(&["geo", "lookup", a])).collect(),
    }
}

fn root_with_bpftool(test: &str) -> bool {
    if !root_with_bpffs(test) {
        return false;
    }
    if Command::new("bpftool").arg("help").output().is_err() {
        eprintln!("skipping {test}: bpftool is not installed");
        return false;
    }
    true
}

fn sha256(text: &str) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(text.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `text` to `name` in the test's state directory; returns the path.
fn write(d: &Dirs, name: &str, text: &str) -> String {
    fs::create_dir_all(&d.state).expect("state dir");
    let path = d.state.join(name);
    fs::write(&path, text).expect("writing a test file");
    path.to_str().expect("utf-8 path").to_string()
}

const POLICY_1: &str = r#"
[geo]
files = ["geo-1.csv"]

[meetings.standup]
endpoints = ["udp:192.0.2.1:41000"]
# standup's flows are runtime bindings: flow add, or the binding API

[meetings.town-hall]
endpoints = ["udp:*:40000-40003", "tcp:[2001:db8::1]:443"]
allow = ["192.0.2.77"]

[[meetings.town-hall.rules]]
order = "ORD-1"
territories = ["XA"]
expires = 2099-01-01T00:00:00Z

[[meetings.town-hall.rules]]
order = "ORD-2"
prefixes = ["198.51.100.9", "2001:db8:9::/48"]
dry_run = true
"#;

#[test]
fn apply_export_apply_changes_nothing_and_dry_run_changes_nothing() {
    if !root_with_bpftool("apply_export_apply_changes_nothing_and_dry_run_changes_nothing") {
        return;
    }
    let d = Dirs::new("apply");
    write(&d, "geo-1.csv", GEO_1);
    let policy = write(&d, "policy.toml", POLICY_1);

    let dry = d.ok(&["apply", &policy, "--dry-run"]);
    assert!(dry.contains("+ meeting town-hall (session 2)"), "{dry}");
    assert!(
        dry.contains("+     rule ORD-1: XA until 2099-01-01T00:00:00Z"),
        "{dry}"
    );
    assert!(dry.contains("+ territory table from"), "{dry}");
    assert!(dry.contains("dry run: nothing was changed"), "{dry}");
    assert!(
        !d.state.join("state.json").exists(),
        "a dry run wrote the state"
    );
    assert!(!d.pin.exists(), "a dry run created the maps");

    let applied = d.ok(&["apply", &policy]);
    assert!(applied.contains("applied"), "{applied}");
    let before = snapshot(&d);
    assert_eq!(
        before.audit_lines, 1,
        "one audit entry for the whole change"
    );
    let audit: serde_json::Value =
        serde_json::from_str(d.read_state("audit.jsonl").trim()).expect("audit JSON");
    assert_eq!(audit["action"], "apply");
    assert_eq!(audit["details"]["sha256"], sha256(POLICY_1));
    assert_eq!(audit["details"]["summary"]["meeting"]["added"], 2);
    let source = &audit["details"]["geo_sources"][0];
    assert_eq!(source["bytes"], GEO_1.len());
    assert_eq!(
        source["sha256"].as_str().map(str::len),
        Some(64),
        "{source}"
    );
    assert_eq!(before.territories[0], "192.0.2.1: XA (table B)\n");

    let exported = d.state.join("exported.toml");
    let exported = exported.to_str().expect("utf-8 path");
    d.ok(&["export", "--output", exported]);
    let again = d.ok(&["apply", exported]);
    assert!(again.starts_with("no changes"), "{again}");
    assert_eq!(snapshot(&d), before, "apply(export) changed something");
    let again = d.ok(&["apply", &policy]);
    assert!(again.starts_with("no changes"), "{again}");
    assert_eq!(
        snapshot(&d),
        before,
        "applying the same file twice changed something"
    );

    // A dry run of a real change leaves the state and maps alone too.
    let edited = write(&d, "edited.toml", &POLICY_1.replace("\"XA\"", "\"XB\""));
    let dry = d.ok(&["apply", &edited, "--dry-run"]);
    assert!(dry.contains("~     rule ORD-1: XA until"), "{dry}");
    assert_eq!(snapshot(&d), before, "a dry run changed something");
}

/// The bad files, each with the line the error must name and a part of the message.
fn bad_files() -> Vec<(&'static str, String, &'static str, &'static str)> {
    let rule = |body: &str| format!("{POLICY_1}\n[[meetings.town-hall.rules]]\n{body}\n");
    vec![
        (
            "syntax error: `]` missing after an array",
            POLICY_1.replace("\"udp:192.0.2.1:41000\"]", "\"udp:192.0.2.1:41000\""),
            ":9:",
            "expected",
        ),
        (
            "unknown territory `UK`",
            rule("order = \"O-9\"\nterritories = [\"UK\"]"),
            ":25:",
            "meeting `town-hall`: `UK` is reserved",
        ),
        (
            "unassigned territory `OO`",
            rule("order = \"O-9\"\nterritories = [\"OO\"]"),
            ":25:",
            "not an assigned",
        ),
        (
            "endpoint port 70000",
            POLICY_1.replace("41000", "70000"),
            ":6:",
            "meeting `standup`: endpoint `udp:192.0.2.1:70000`: port 70000 is larger than 65535",
        ),
        (
            "endpoint without brackets around IPv6",
            POLICY_1.replace("[2001:db8::1]", "2001:db8::1"),
            ":10:",
            "write IPv6 addresses in brackets",
        ),
        (
            "expiry in the past",
            rule("order = \"O-9\"\nterritories = [\"XB\"]\nexpires = 2020-01-01T00:00:00Z"),
            ":26:",
            "in the past",
        ),
        (
            "`for = \"24h\"` instead of `expires`",
            rule("order = \"O-9\"\nterritories = [\"XB\"]\nfor = \"24h\""),
            ":26:",
            "is a duration",
        ),
        (
            "expiry without offset",
            rule("order = \"O-9\"\nterritories = [\"XB\"]\nexpires = 2099-01-01T00:00:00"),
            ":26:",
            "RFC 3339",
        ),
        (
            "unknown key `colour`",
            POLICY_1.replace("allow = ", "colour = \"red\"\nallow = "),
            ":11:",
            "unknown field `colour`",
        ),
        (
            "misspelt key `territory` in a rule",
            rule("order = \"O-9\"\nterritory = [\"XB\"]"),
            ":25:",
            "unknown field `territory`",
        ),
        (
            "missing geo file",
            POLICY_1.replace("geo-1.csv", "no-such.csv"),
            ":3:",
            "no-such.csv: cannot read",
        ),
        (
            "duplicate meeting",
            format!("{POLICY_1}\n[meetings.standup]\nendpoints = [\"udp:*:9\"]\n"),
            ":23:",
            "meeting `standup` is defined twice",
        ),
        (
            "endpoint of two meetings",
            POLICY_1.replace("udp:192.0.2.1:41000", "udp:*:40001"),
            ":9:",
            "overlaps udp:*:40001",
        ),
        (
            "prefix blocked and allowed",
            POLICY_1.replace("\"198.51.100.9\"", "\"192.0.2.77\""),
            ":11:",
            "also blocked by order ORD-2",
        ),
        (
            "rule without order",
            rule("territories = [\"XB\"]"),
            ":23:",
            "missing field `order`",
        ),
        (
            "a flow (a participant's address) in a policy",
            POLICY_1.replace(
                "# standup's flows are runtime bindings: flow add, or the binding API",
                "flows = [{ proto = \"udp\", src = \"198.51.100.7:50000\", dst = \"192.0.2.1:3478\" }]",
            ),
            ":7:",
            "flows are bindings of participants' addresses, not policy",
        ),
        (
            "meeting name with a space",
            POLICY_1.replace("[meetings.standup]", "[meetings.\"stand up\"]"),
            ":5:",
            "meeting name `stand up`",
        ),
    ]
}

/// A row of the table in `docs/bad-input.md`: the message's lines joined by ⏎.
fn row(n: usize, what: &str, err: &str, d: &Dirs) -> String {
    let dir = d.state.to_str().expect("utf-8 path");
    let shown = err.trim_end().replace(dir, "$DIR").replace('\n', " ⏎ ");
    format!("| A{n} | {what} | `` geofence apply $DIR/bad.toml `` | `` {shown} `` | yes (tested) |")
}

#[test]
fn a_failed_apply_changes_nothing() {
    if !root_with_bpftool("a_failed_apply_changes_nothing") {
        return;
    }
    let d = Dirs::new("applybad");
    write(&d, "geo-1.csv", GEO_1);
    write(&d, "geo-2.csv", GEO_2);
    let policy = write(&d, "policy.toml", POLICY_1);
    d.ok(&["apply", &policy]);
    let before = snapshot(&d);
    let mut rows = Vec::new();
    for (i, (what, text, line, needle)) in bad_files().into_iter().enumerate() {
        let bad = write(&d, "bad.toml", &text);
        let err = d.fails(&["apply", &bad]);
        let first = err.lines().next().unwrap_or_default();
        assert!(
            first.starts_with(&format!("geofence: error: {bad}{line}")),
            "{what}: {err}"
        );
        assert!(err.contains(needle), "{what}: `{err}` should say {needle}");
        assert!(!err.contains("panicked"), "{what}: {err}");
        assert_eq!(snapshot(&d), before, "{what}: changed something");
        let dir = d.state.to_str().expect("utf-8 path");
        let shown = first.replace(dir, "$DIR");
        rows.push(format!(
            "| A{} | {what} | `` geofence apply $DIR/bad.toml `` | `` {shown} `` | yes (tested) |",
            i + 1
        ));
    }
    // Valid, but more endpoint ports than the kernel map holds: refused before the
    // territory table it names is loaded.
    let too_big = POLICY_1.replace("geo-1.csv", "geo-2.csv").replace(
        "\"udp:*:40000-40003\"",
        "\"udp:192.0.2.1:1-39999\", \"tcp:192.0.2.1:1-30000\"",
    );
    let bad = write(&d, "bad.toml", &too_big);
    let err = d.fails(&["apply", &bad]);
    assert!(err.contains("more than the kernel maps hold"), "{err}");
    assert!(
        err.contains(&format!(
            "endpoint ports on a local address exceed the kernel map's capacity of {}",
            filter_common::maps::capacity::ENDPOINTS
        )),
        "{err}"
    );
    assert_eq!(snapshot(&d), before, "over capacity: changed something");
    rows.push(row(
        rows.len() + 1,
        "valid file, 70,001 endpoint ports on a local address (over capacity)",
        &err,
        &d,
    ));
    // Valid, and the maps take it, but the state file cannot be written (its temporary
    // file is a directory): the table loaded for the change must be switched back.
    let new_table = write(&d, "bad.toml", &POLICY_1.replace("geo-1.csv", "geo-2.csv"));
    let blocker = d.state.join(".state.json.tmp");
    fs::create_dir_all(&blocker).expect("blocking the state file");
    let err = d.fails(&["apply", &new_table]);
    fs::remove_dir(&blocker).expect("unblocking the state file");
    assert!(err.contains("the previous rules are in force"), "{err}");
    assert_eq!(
        snapshot(&d),
        before,
        "a failed save left the new territory table in force"
    );
    let what = "valid file with another territory table; the state file cannot be written";
    rows.push(row(rows.len() + 1, what, &err, &d));
    println!("{}", rows.join("\n"));
}

/// Byte offsets of expiries in a value of map `name`: recomputed from wall time on each
/// sync, so two syncs of the same rule agree only to within the clock readings' jitter.
fn expiry_offsets(name: &str) -> Vec<usize> {
    match name {
        names::POLICIES => (0..RULES_PER_SESSION)
            .map(|i| {
                offset_of!(Policy, rules) + i * size_of::<Rule>() + offset_of!(Rule, expires_ns)
            })
            .collect(),
        names::OVERRIDES => vec![offset_of!(Override, expires_ns)],
        _ => Vec::new(),
    }
}

/// Byte offsets of rule ids in a value of map `name`: a hash of the order and its issue
/// time, which `apply` and the CLI set at different moments.
fn rule_id_offsets(name: &str) -> Vec<usize> {
    match name {
        names::POLICIES => (0..RULES_PER_SESSION)
            .map(|i| offset_of!(Policy, rules) + i * size_of::<Rule>() + offset_of!(Rule, rule_id))
            .collect(),
        names::OVERRIDES => vec![offset_of!(Override, rule_id)],
        _ => Vec::new(),
    }
}

/// A map's entries with expiries rounded to 10 s and rule ids zeroed, key → value.
fn entries(d: &Dirs, name: &str) -> BTreeMap<String, Vec<u8>> {
    let dump: serde_json::Value = serde_json::from_str(&bpftool_dump(d, name)).expect("JSON");
    let bytes = |v: &serde_json::Value| -> Vec<u8> {
        let hex = v.as_array().expect("hex bytes").iter();
        hex.map(|b| {
            u8::from_str_radix(b.as_str().expect("hex").trim_start_matches("0x"), 16).expect("hex")
        })
        .collect()
    };
    let entries = dump.as_array().expect("array").iter();
    entries
        .map(|e| {
            let mut value = bytes(&e["value"]);
            for at in expiry_offsets(name) {
                let ns = u64::from_ne_bytes(value[at..at + 8].try_into().expect("u64"));
                value[at..at + 8].copy_from_slice(&(ns / 10_000_000_000).to_ne_bytes());
            }
            for at in rule_id_offsets(name) {
                value[at..at + 4].fill(0);
            }
            (format!("{:02x?}", bytes(&e["key"])), value)
        })
        .collect()
}

#[test]
fn apply_adds_changes_and_removes_as_the_cli_would() {
    if !root_with_bpftool("apply_adds_changes_and_removes_as_the_cli_would") {
        return;
    }
    let d = Dirs::new("applychg");
    write(&d, "geo-1.csv", GEO_1);
    let geo_2 = write(&d, "geo-2.csv", GEO_2);
    let policy = write(&d, "policy.toml", POLICY_1);
    d.ok(&["apply", &policy]);
    let state_1: serde_json::Value =
        serde_json::from_str(&d.read_state("state.json")).expect("state");

    // standup goes, all-hands comes, town-hall changes an endpoint, reissues ORD-1, drops
    // ORD-2, adds ORD-4 and an exception; the territory table changes files.
    let policy_2 = r#"
[geo]
files = ["geo-2.csv"]

[meetings.all-hands]
endpoints = ["udp:*:42000"]

[meetings.town-hall]
endpoints = ["udp:*:40000-40001", "tcp:[2001:db8::1]:443"]
allow = ["192.0.2.77", "192.0.2.78"]

[[meetings.town-hall.rules]]
order = "ORD-1"
territories = ["XA", "XB"]
expires = 2099-01-01T00:00:00Z

[[meetings.town-hall.rules]]
order = "ORD-4"
territories = ["XC"]
dry_run = true
"#;
    let policy_2 = write(&d, "policy-2.toml", policy_2);
    let out = d.ok(&["apply", &policy_2]);
    for line in [
        "- meeting standup (session 1)",
        "+ meeting all-hands (session 3)",
        "~ meeting town-hall (session 2)",
        "-     endpoint udp:*:40000-40003",
        "+     endpoint udp:*:40000-40001",
        "~     rule ORD-1: XA until 2099-01-01T00:00:00Z → ORD-1: XA, XB until 2099-01-01T00:00:00Z",
        "-     rule ORD-2: 198.51.100.9/32, 2001:db8:9::/48 until lifted (dry run)",
        "+     rule ORD-4: XC until lifted (dry run)",
        "+     allow 192.0.2.78/32",
        "~ territory table from",
    ] {
        assert!(
            out.lines().any(|l| l.starts_with(line)),
            "`{line}` missing from:\n{out}"
        );
    }
    assert_eq!(
        d.ok(&["geo", "lookup", "203.0.113.1"]),
        "203.0.113.1: XC (table A)\n"
    );
    let state_2: serde_json::Value =
        serde_json::from_str(&d.read_state("state.json")).expect("state");
    let th = |s: &serde_json::Value| s["meetings"]["town-hall"].clone();
    assert_eq!(th(&state_2)["session"], th(&state_1)["session"]);
    assert_eq!(th(&state_2)["created"], th(&state_1)["created"]);
    assert_eq!(state_2["geo"]["files"][0], geo_2.as_str());
    assert!(state_2["meetings"]["standup"].is_null());

    // The same end state through the imperative commands, on maps of its own.
    let cli = Dirs::new("applycli");
    for args in [
        vec!["geo", "load", &geo_2],
        vec![
            "meeting",
            "add",
            "standup",
            "--endpoint",
            "udp:192.0.2.1:41000",
        ],
        vec![
            "meeting",
            "add",
            "town-hall",
            "--endpoint",
            "udp:*:40000-40001",
            "--endpoint",
            "tcp:[2001:db8::1]:443",
        ],
        vec!["meeting", "add", "all-hands", "--endpoint", "udp:*:42000"],
        vec!["meeting", "del", "standup"],
        vec![
            "block",
            "town-hall",
            "--territory",
            "XA",
            "--territory",
            "XB",
            "--order",
            "ORD-1",
            "--expires",
            "2099-01-01T00:00:00Z",
        ],
        vec![
            "block",
            "town-hall",
            "--territory",
            "XC",
            "--order",
            "ORD-4",
            "--dry-run",
        ],
        vec![
            "allow",
            "town-hall",
            "--prefix",
            "192.0.2.77",
            "--prefix",
            "192.0.2.78",
        ],
    ] {
        cli.ok(&args);
    }
    for name in [
        names::ENDPOINTS,
        names::FLOWS,
        names::OVERRIDES,
        names::POLICIES,
        names::PORTS,
    ] {
        assert_eq!(
            entries(&d, name),
            entries(&cli, name),
            "map {name} differs from the CLI's"
        );
    }
    for addr in PROBES {
        let strip = |s: String| s.split(" (").next().unwrap_or_default().to_string();
        assert_eq!(
            strip(d.ok(&["geo", "lookup", addr])),
            strip(cli.ok(&["geo", "lookup", addr]))
        );
    }
}
