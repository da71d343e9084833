//! `geofence explain` against the kernel: on the packets of the verdict table's fixture
//! (`tests/tests/verdict.rs`) that explain can express, the model's walk and the kernel's
//! answer to the probe agree, and the probe moves no counter; a state edited behind the
//! kernel's back is reported as a disagreement; an attached program is the one asked;
//! bad arguments are refused with a clear message.

mod common;

use std::{fs, process::Command, time::Duration};

use common::{Dirs, root_with_bpffs};
use geofence::{
    endpoint::{Flow, Proto, parse_socket},
    prefix::parse_prefix,
    state::{Meeting, Rule, State},
    territory::Territory,
};
use serde_json::Value;

const GEO_CSV: &str = "\
192.0.2.0,192.0.2.255,XA
198.51.100.0,198.51.100.255,XB
203.0.113.0,203.0.113.255,XC
2001:db8:a::,2001:db8:a:ffff:ffff:ffff:ffff:ffff,XA
2001:db8:b::,2001:db8:b:ffff:ffff:ffff:ffff:ffff,XB
";

fn rule(
    order: &str,
    territories: &[&str],
    prefixes: &[&str],
    expires: Option<&str>,
    dry_run: bool,
) -> Rule {
    Rule {
        order: order.to_string(),
        territories: territories
            .iter()
            .map(|t| Territory::parse(t).expect("fixture territory"))
            .collect(),
        prefixes: prefixes
            .iter()
            .map(|p| parse_prefix(p).expect("fixture prefix"))
            .collect(),
        expires: expires.map(|at| at.parse().expect("fixture expiry")),
        dry_run,
        issued: geofence::clock::now(),
        issued_by: "explain.rs".to_string(),
        slot: None,
    }
}

fn meeting(session: u32, endpoints: &[&str], flows: &[(&str, &str)], rules: Vec<Rule>) -> Meeting {
    Meeting {
        session,
        created: geofence::clock::now(),
        endpoints: endpoints
            .iter()
            .map(|e| e.parse().expect("fixture endpoint"))
            .collect(),
        flows: flows
            .iter()
            .map(|(src, dst)| {
                let src = parse_socket(src).expect("flow source");
                let dst = parse_socket(dst).expect("flow destination");
                Flow::new(Proto::Udp, src, dst).expect("fixture flow")
            })
            .collect(),
        rules,
        allows: Vec::new(),
    }
}

/// The meetings of the verdict table's fixture, with an order reference per rule.
fn fixture_meetings(state: &mut State) {
    let in_an_hour =
        geofence::expiry::expiry_after(geofence::clock::now(), Duration::from_secs(3600))
            .expect("an hour from now")
            .to_string();
    let hour = Some(in_an_hour.as_str());
    let past = Some("2000-01-01T00:00:00Z");
    let mut a = meeting(
        1,
        &["udp:*:40000", "tcp:*:40001", "udp:[2001:db8:ffff::1]:40002"],
        &[],
        vec![
            rule("ORD-A1", &["XA"], &[], None, false),
            rule("ORD-A2", &[], &["198.51.100.7"], None, false),
            rule(
                "ORD-A3",
                &[],
                &["2001:db8:b::7", "203.0.113.128/25"],
                None,
                false,
            ),
            rule("ORD-A4", &[], &["198.51.100.8"], past, false),
        ],
    );
    a.allows = [
        "192.0.2.77",
        "2001:db8:a::77",
        "2001:db8:a:1::/64",
        "203.0.113.129",
    ]
    .iter()
    .map(|p| parse_prefix(p).expect("fixture allow"))
    .collect();
    let b = meeting(
        2,
        &["udp:100.64.0.1:41000", "udp:100.64.0.3:40000"],
        &[],
        vec![
            rule("ORD-B1", &["XB"], &[], None, true),
            rule("ORD-B2", &[], &["192.0.2.99"], None, true),
        ],
    );
    // C is known through its flows on a shared port, bound at run time (see `fixture`).
    let c = meeting(
        300,
        &[],
        &[],
        vec![rule("ORD-C1", &["XB"], &[], None, false)],
    );
    let d = meeting(
        4095,
        &["udp:*:43000"],
        &[],
        vec![rule("ORD-D1", &["unknown"], &[], None, false)],
    );
    let e = meeting(
        5,
        &["udp:*:44000"],
        &[],
        vec![
            rule("ORD-E1", &["XC"], &[], past, false),
            rule("ORD-E2", &["XB"], &[], hour, false),
        ],
    );
    let f = meeting(
        6,
        &["udp:*:45000"],
        &[],
        vec![
            rule("ORD-F1", &["XC"], &[], hour, false),
            rule("ORD-F2", &["XA", "XB"], &[], None, true),
            rule("ORD-F3", &["XA"], &[], None, false),
        ],
    );
    for (name, m) in [("A", a), ("B", b), ("C", c), ("D", d), ("E", e), ("F", f)] {
        state.meetings.insert(name.to_string(), m);
    }
}

/// Loads the territory table through the CLI, writes the fixture meetings into the state
/// and lets `restore` derive the maps from it, as after a reboot.
fn fixture(d: &Dirs) {
    fs::create_dir_all(&d.state).expect("state dir");
    let csv = d.state.join("geo.csv");
    fs::write(&csv, GEO_CSV).expect("geo csv");
    d.ok(&["geo", "load", csv.to_str().expect("utf-8 path")]);
    let mut state = State::load(&d.state).expect("state after geo load");
    fixture_meetings(&mut state);
    state.save(&d.state).expect("saving the fixture state");
    d.ok(&["restore"]);
    d.ok(&["mux", "add", "udp:*:42000"]);
    for (src, dst) in [
        ("198.51.100.50:5000", "100.64.0.1:42000"),
        ("[2001:db8:b::50]:5000", "[2001:db8:ffff::1]:42000"),
    ] {
        d.ok(&[
            "flow", "add", "C", "--proto", "udp", "--src", src, "--dst", dst,
        ]);
    }
}

/// `explain --json` for one packet: exit status and parsed output.
fn explain(d: &Dirs, proto: &str, src: &str, dst: &str) -> (bool, Value, String) {
    let out = d.run(&[
        "explain", "--proto", proto, "--src", src, "--dst", dst, "--json",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "explain {proto} {src} {dst}: not JSON ({e}):\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (
        out.status.success(),
        json,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// What a row expects: `(session, territory, verdict, session key)` or no session.
#[derive(Clone, Copy, Debug)]
enum Want {
    Session(u32, &'static str, &'static str, &'static str),
    NoSession,
    /// Passed unclassified for this reason.
    Unclassified(&'static str),
    /// On a shared port with no binding, from this territory, which a rule in force blocks:
    /// dropped.
    UnboundBlocked(&'static str),
}

use Want::{NoSession, Session, UnboundBlocked, Unclassified};

const ROWS: &[(&str, &str, &str, &str, Want)] = &[
    (
        "A blocks XA (wildcard)",
        "udp",
        "192.0.2.10:50000",
        "100.64.0.1:40000",
        Session(1, "XA", "dropped", "wildcard_endpoint"),
    ),
    (
        "A blocks XA over TCP",
        "tcp",
        "192.0.2.10:50000",
        "100.64.0.1:40001",
        Session(1, "XA", "dropped", "wildcard_endpoint"),
    ),
    (
        "A blocks XA over IPv6",
        "udp",
        "[2001:db8:a::10]:50000",
        "[2001:db8:ffff::1]:40000",
        Session(1, "XA", "dropped", "wildcard_endpoint"),
    ),
    (
        "A blocks XA over TCP/IPv6",
        "tcp",
        "[2001:db8:a::10]:50000",
        "[2001:db8:ffff::1]:40001",
        Session(1, "XA", "dropped", "wildcard_endpoint"),
    ),
    (
        "A, IPv4-mapped source",
        "udp",
        "::ffff:192.0.2.10",
        "[2001:db8:ffff::1]:40000",
        Session(1, "XA", "dropped", "wildcard_endpoint"),
    ),
    (
        "IPv4-mapped destination: no local address",
        "udp",
        "::ffff:192.0.2.10",
        "[::ffff:100.64.0.1]:40000",
        Unclassified("mapped_destination"),
    ),
    (
        "A specific endpoint, XB passes",
        "udp",
        "[2001:db8:b::20]:50000",
        "[2001:db8:ffff::1]:40002",
        Session(1, "XB", "passed", "endpoint"),
    ),
    (
        "A drop override",
        "udp",
        "198.51.100.7:50000",
        "100.64.0.1:40000",
        Session(1, "XB", "dropped", "wildcard_endpoint"),
    ),
    (
        "A drop override IPv6",
        "udp",
        "[2001:db8:b::7]:1",
        "[2001:db8:ffff::1]:40000",
        Session(1, "XB", "dropped", "wildcard_endpoint"),
    ),
    (
        "A drop override /25",
        "udp",
        "203.0.113.200:1",
        "100.64.0.1:40000",
        Session(1, "XC", "dropped", "wildcard_endpoint"),
    ),
    (
        "A allow inside a drop /25",
        "udp",
        "203.0.113.129:1",
        "100.64.0.1:40000",
        Session(1, "XC", "passed", "wildcard_endpoint"),
    ),
    (
        "A expired drop override",
        "udp",
        "198.51.100.8:1",
        "100.64.0.1:40000",
        Session(1, "XB", "passed", "wildcard_endpoint"),
    ),
    (
        "A allow in a blocked territory",
        "udp",
        "192.0.2.77:1",
        "100.64.0.1:40000",
        Session(1, "XA", "passed", "wildcard_endpoint"),
    ),
    (
        "A allow /64",
        "udp",
        "[2001:db8:a:1::5]:1",
        "[2001:db8:ffff::1]:40000",
        Session(1, "XA", "passed", "wildcard_endpoint"),
    ),
    (
        "B dry run",
        "udp",
        "198.51.100.20:50000",
        "100.64.0.1:41000",
        Session(2, "XB", "would_drop", "endpoint"),
    ),
    (
        "B dry-run override",
        "udp",
        "192.0.2.99:1",
        "100.64.0.1:41000",
        Session(2, "XA", "would_drop", "endpoint"),
    ),
    (
        "B endpoint before A's wildcard",
        "udp",
        "198.51.100.20:1",
        "100.64.0.3:40000",
        Session(2, "XB", "would_drop", "endpoint"),
    ),
    (
        "C flow",
        "udp",
        "198.51.100.50:5000",
        "100.64.0.1:42000",
        Session(300, "XB", "dropped", "api_flow"),
    ),
    (
        "C flow IPv6",
        "udp",
        "[2001:db8:b::50]:5000",
        "[2001:db8:ffff::1]:42000",
        Session(300, "XB", "dropped", "api_flow"),
    ),
    // Unbound on a shared port, from a territory a rule in force blocks: dropped.
    (
        "C port in use, no flow",
        "udp",
        "198.51.100.50:5001",
        "100.64.0.1:42000",
        UnboundBlocked("XB"),
    ),
    (
        "D blocks unknown",
        "udp",
        "10.1.2.3:1",
        "100.64.0.1:43000",
        Session(4095, "unknown", "dropped", "wildcard_endpoint"),
    ),
    (
        "D blocks unknown IPv6",
        "udp",
        "[2001:db8:c::30]:1",
        "[2001:db8:ffff::1]:43000",
        Session(4095, "unknown", "dropped", "wildcard_endpoint"),
    ),
    (
        "D passes XA",
        "udp",
        "192.0.2.10:1",
        "100.64.0.1:43000",
        Session(4095, "XA", "passed", "wildcard_endpoint"),
    ),
    (
        "E expired rule",
        "udp",
        "203.0.113.30:1",
        "100.64.0.1:44000",
        Session(5, "XC", "passed", "wildcard_endpoint"),
    ),
    (
        "E rule for an hour",
        "udp",
        "198.51.100.20:1",
        "100.64.0.1:44000",
        Session(5, "XB", "dropped", "wildcard_endpoint"),
    ),
    (
        "F rule for an hour",
        "udp",
        "203.0.113.30:1",
        "100.64.0.1:45000",
        Session(6, "XC", "dropped", "wildcard_endpoint"),
    ),
    (
        "F enforce beats dry run",
        "udp",
        "192.0.2.10:1",
        "100.64.0.1:45000",
        Session(6, "XA", "dropped", "wildcard_endpoint"),
    ),
    (
        "F dry run only",
        "udp",
        "198.51.100.20:1",
        "100.64.0.1:45000",
        Session(6, "XB", "would_drop", "wildcard_endpoint"),
    ),
    (
        "no meeting on the port",
        "udp",
        "10.1.2.3:1",
        "100.64.0.1:9999",
        NoSession,
    ),
    (
        "no meeting on the port, TCP/IPv6",
        "tcp",
        "[2001:db8:c::30]:1",
        "[2001:db8:ffff::1]:9999",
        NoSession,
    ),
    (
        "TCP on a UDP-only port",
        "tcp",
        "192.0.2.10:1",
        "100.64.0.1:40000",
        NoSession,
    ),
];

fn check_row(
    d: &Dirs,
    (what, proto, src, dst, want): (&str, &str, &str, &str, Want),
) -> Result<(), String> {
    let (ok, json, stderr) = explain(d, proto, src, dst);
    let kernel = &json["kernel"][0];
    if !ok || kernel["agrees"] != true {
        return Err(format!(
            "{what}: kernel disagrees: {} {stderr}",
            kernel["differences"]
        ));
    }
    if kernel["program"]["fresh_copy"] != true {
        return Err(format!(
            "{what}: expected a fresh copy: {}",
            kernel["program"]
        ));
    }
    let model = &json["model"]["decision"];
    let steps = json["steps"].as_array().cloned().unwrap_or_default();
    let session_step = steps.iter().find(|s| s["step"] == "session");
    match want {
        Session(session, territory, verdict, key) => {
            let got = (&model["session"], &model["territory"], &model["verdict"]);
            if got != (&session.into(), &territory.into(), &verdict.into()) {
                return Err(format!(
                    "{what}: model says {model}, the verdict table {want:?}"
                ));
            }
            let got_key = session_step.map(|s| &s["key"]);
            if got_key != Some(&key.into()) {
                return Err(format!("{what}: session found by {got_key:?}, not {key}"));
            }
            if kernel["xdp_action"] != if verdict == "dropped" { "DROP" } else { "PASS" } {
                return Err(format!("{what}: XDP action {}", kernel["xdp_action"]));
            }
        }
        NoSession => {
            if model["pass_reason"] != "no_session" || kernel["xdp_action"] != "PASS" {
                return Err(format!("{what}: expected no session, got {model}"));
            }
        }
        Unclassified(reason) => {
            if model["pass_reason"] != reason || kernel["xdp_action"] != "PASS" {
                return Err(format!("{what}: expected {reason}, got {model}"));
            }
        }
        UnboundBlocked(territory) => {
            let unbound = model["session"] == u32::from(u16::MAX)
                && model["territory"] == territory
                && model["verdict"] == "dropped";
            if !unbound || kernel["xdp_action"] != "DROP" {
                return Err(format!("{what}: expected unbound and dropped, got {model}"));
            }
        }
    }
    Ok(())
}

/// Every rule slot's packets, bytes and sketch registers, read from the pinned maps.
fn rule_stats(d: &Dirs) -> std::collections::BTreeMap<(u32, u8), geofence::kernel::RuleCounts> {
    let kernel = geofence::kernel::Kernel::open(&d.pin).expect("opening the maps");
    geofence::kernel::read_rule_stats(&kernel).expect("reading RULE_COUNTERS and RULE_SOURCES")
}

#[test]
fn a_prefix_drop_names_its_rule_and_the_kernel_credits_the_same_slot() {
    if !root_with_bpffs("a_prefix_drop_names_its_rule_and_the_kernel_credits_the_same_slot") {
        return;
    }
    let d = Dirs::new("explain-prefix-slot");
    fixture(&d);
    // Meeting A: ORD-A1 (XA) in slot 0, the prefix-only ORD-A2 (198.51.100.7) in slot 1,
    // ORD-A3 in slot 2 (203.0.113.128/25, with the exception 203.0.113.129).
    for (src, slot, verdict) in [
        ("198.51.100.7:1", Some(1), "dropped"),
        ("203.0.113.130:1", Some(2), "dropped"),
        ("203.0.113.129:1", None, "passed"),
        ("192.0.2.10:1", Some(0), "dropped"),
        ("198.51.100.8:1", None, "passed"),
    ] {
        let (ok, json, stderr) = explain(&d, "udp", src, "100.64.0.1:40000");
        let kernel = &json["kernel"][0];
        assert!(ok && kernel["agrees"] == true, "{src}: {json} {stderr}");
        let model = &json["model"]["decision"];
        assert_eq!(model["verdict"], verdict, "{src}: {model}");
        assert_eq!(
            model["rule_slot"],
            serde_json::json!(slot),
            "{src}: {model}"
        );
        assert_eq!(
            kernel["decision"]["rule_slot"],
            serde_json::json!(slot),
            "{src}: the kernel's slot: {kernel}"
        );
    }
    let text = d.ok(&[
        "explain",
        "--proto",
        "udp",
        "--src",
        "198.51.100.7",
        "--dst",
        "100.64.0.1:40000",
    ]);
    assert!(
        text.contains("drop 198.51.100.7/32 under order ORD-A2 (slot 1): enforce, no expiry"),
        "{text}"
    );
    assert!(text.contains("credited to the rule"), "{text}");
}

fn stats(d: &Dirs) -> Value {
    serde_json::from_str(&d.ok(&["stats", "--json"])).expect("stats JSON")
}

#[test]
fn explain_agrees_with_the_kernel_and_counts_nothing() {
    if !root_with_bpffs("explain_agrees_with_the_kernel_and_counts_nothing") {
        return;
    }
    let d = Dirs::new("explain");
    fixture(&d);
    let before = stats(&d);
    let rules_before = rule_stats(&d);
    let failures: Vec<String> = ROWS
        .iter()
        .filter_map(|row| check_row(&d, *row).err())
        .collect();
    let after = stats(&d);
    let rules_after = rule_stats(&d);
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        ROWS.len(),
        failures.join("\n")
    );
    assert_eq!(before, after, "explain moved counters");
    assert_eq!(
        rules_before, rules_after,
        "explain moved the per-rule counters or sketches (RULE_COUNTERS, RULE_SOURCES)"
    );
    assert!(
        before["pass_reasons"].is_object(),
        "stats lists pass reasons: {before}"
    );

    // The walk names the order, its mode and expiry.
    let text = d.ok(&[
        "explain",
        "--proto",
        "udp",
        "--src",
        "198.51.100.20:1",
        "--dst",
        "100.64.0.1:44000",
    ]);
    assert!(
        text.contains("order ORD-E2 (slot 1) blocks XB: enforce, expires"),
        "{text}"
    );
    // An hour from the fixture's start, however long a loaded machine took to get here.
    assert!(
        text.contains("(in 1h") || (50..60).any(|m| text.contains(&format!("(in {m}m"))),
        "{text}"
    );
    assert!(text.contains("kernel agrees: DROP"), "{text}");
    let text = d.ok(&[
        "explain",
        "--proto",
        "udp",
        "--src",
        "203.0.113.30:1",
        "--dst",
        "100.64.0.1:44000",
    ]);
    assert!(
        text.contains("order ORD-E1 (slot 0) blocks XC: enforce, EXPIRED"),
        "{text}"
    );
    assert!(text.contains("not in force"), "{text}");
    let text = d.ok(&[
        "explain",
        "--proto",
        "udp",
        "--src",
        "192.0.2.99",
        "--dst",
        "100.64.0.1:41000",
    ]);
    assert!(
        text.contains("drop 192.0.2.99/32 under order ORD-B2 (slot 1): dry run"),
        "{text}"
    );
    assert!(
        text.contains("territory  XA: 192.0.2.99 is in 192.0.2.0/24"),
        "{text}"
    );
}

#[test]
fn a_state_edited_behind_the_kernels_back_is_a_disagreement() {
    if !root_with_bpffs("a_state_edited_behind_the_kernels_back_is_a_disagreement") {
        return;
    }
    let d = Dirs::new("explain-edit");
    fixture(&d);
    let mut state = State::load(&d.state).expect("state");
    let a = state.meetings.get_mut("A").expect("meeting A");
    a.rules[0].dry_run = true;
    state.save(&d.state).expect("saving the edited state");

    let (ok, json, stderr) = explain(&d, "udp", "192.0.2.10:50000", "100.64.0.1:40000");
    assert!(!ok, "a disagreement must fail the command");
    assert_eq!(json["kernel"][0]["agrees"], false, "{json}");
    assert_eq!(json["model"]["decision"]["verdict"], "would_drop");
    assert_eq!(json["kernel"][0]["decision"]["verdict"], "dropped");
    assert!(stderr.contains("kernel disagrees"), "{stderr}");

    let out = d.run(&[
        "explain",
        "--proto",
        "udp",
        "--src",
        "192.0.2.10:50000",
        "--dst",
        "100.64.0.1:40000",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(text.contains("KERNEL DISAGREES"), "{text}");
    assert!(text.contains("action: model PASS, kernel DROP"), "{text}");

    // A packet the edit does not concern still agrees.
    let (ok, json, _) = explain(&d, "udp", "198.51.100.20:1", "100.64.0.1:44000");
    assert!(ok, "{json}");
}

#[test]
fn a_geo_file_changed_since_the_load_is_named() {
    if !root_with_bpffs("a_geo_file_changed_since_the_load_is_named") {
        return;
    }
    let d = Dirs::new("explain-geo");
    fixture(&d);
    let csv = d.state.join("geo.csv");
    let (loaded_sha, _) = geofence::audit::file_digest(&csv).expect("digest");
    // The load recorded the file's digest, so even a change within the second is seen.
    fs::write(&csv, GEO_CSV.replace("192.0.2.255,XA", "192.0.2.255,XC"))
        .expect("rewriting the geo csv");
    let (now_sha, _) = geofence::audit::file_digest(&csv).expect("digest");
    let out = d.run(&[
        "explain",
        "--proto",
        "udp",
        "--src",
        "192.0.2.10",
        "--dst",
        "100.64.0.1:40000",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    let changed = format!(
        "geo.csv has sha256 {}, not the sha256 {} loaded at",
        &now_sha[..12],
        &loaded_sha[..12]
    );
    assert!(text.contains(&changed), "{text}");
    assert!(text.contains("BUT the kernel's table gives XA"), "{text}");
    assert!(text.contains("KERNEL DISAGREES"), "{text}");
}

#[test]
fn the_territory_step_names_the_table_that_located_the_source() {
    if !root_with_bpffs("the_territory_step_names_the_table_that_located_the_source") {
        return;
    }
    let d = Dirs::new("explain-table");
    fixture(&d);
    let csv = d.state.join("geo.csv");
    let (sha, bytes) = geofence::audit::file_digest(&csv).expect("digest");
    let record = State::load(&d.state)
        .expect("state")
        .geo
        .expect("a table is recorded");
    let (_, json, _) = explain(&d, "udp", "192.0.2.10", "100.64.0.1:40000");
    let steps = json["steps"].as_array().expect("steps");
    let territory = steps
        .iter()
        .find(|s| s["step"] == "territory")
        .expect("a territory step");
    let table = &territory["table"];
    assert_eq!(table["sources"][0]["sha256"], sha.as_str(), "{territory}");
    assert_eq!(table["sources"][0]["bytes"], bytes);
    assert_eq!(table["sources"][0]["format"], "csv");
    assert_eq!(table["loaded"], record.loaded.to_string());
    let text = territory["text"].as_str().expect("text");
    let named = format!(
        "XA: 192.0.2.10 is in 192.0.2.0/24; table {}: {} (csv, sha256 {}), loaded {}",
        if record.generation == 0 { "A" } else { "B" },
        csv.display(),
        &sha[..12],
        record.loaded
    );
    assert_eq!(text, named);
}

#[test]
fn explain_asks_the_attached_program() {
    if !root_with_bpffs("explain_asks_the_attached_program") {
        return;
    }
    let d = Dirs::new("explain-attached");
    fixture(&d);
    let ns = format!("gf-explain-{}", std::process::id());
    let ip = |args: &[&str]| {
        Command::new("ip")
            .args(args)
            .status()
            .is_ok_and(|s| s.success())
    };
    if !ip(&["netns", "add", &ns]) {
        eprintln!("skipping explain_asks_the_attached_program: cannot create a network namespace");
        return;
    }
    struct Netns(String);
    impl Drop for Netns {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
        }
    }
    let _ns = Netns(ns.clone());
    assert!(ip(&[
        "-n", &ns, "link", "add", "ex0", "type", "veth", "peer", "name", "ex1"
    ]));
    assert!(ip(&["-n", &ns, "link", "set", "ex0", "up"]));
    d.ok(&["attach", "ex0", "--netns", &ns, "--mode", "skb"]);
    let before = stats(&d);
    let (ok, json, stderr) = explain(&d, "udp", "192.0.2.10:50000", "100.64.0.1:40000");
    let after = stats(&d);
    d.ok(&["detach", "ex0", "--netns", &ns]);
    assert!(ok, "{json} {stderr}");
    let kernel = &json["kernel"][0];
    assert_eq!(kernel["program"]["attached"], true, "{kernel}");
    assert_eq!(
        kernel["program"]["links"][0],
        format!("link_{ns}_ex0"),
        "{kernel}"
    );
    assert_eq!(kernel["decision"]["verdict"], "dropped");
    // Pass reasons may move with the link's own traffic (IPv6 ND); meetings must not.
    assert_eq!(
        before["meetings"], after["meetings"],
        "explain moved session counters"
    );
}

/// Dropped packets of meeting A (session 1) from XA in the kernel's counters.
fn dropped_a_xa(kernel: &geofence::kernel::Kernel) -> u64 {
    let stats = geofence::kernel::read_stats(kernel).expect("reading the counters");
    let xa = Territory::parse("XA").expect("XA").id();
    let counts = stats.sessions.get(&1).and_then(|t| t.get(&xa)).copied();
    counts.unwrap_or_default().packets[filter_common::Verdict::Dropped as usize]
}

#[test]
fn only_a_whole_probe_with_the_magic_skips_the_counters() {
    if !root_with_bpffs("only_a_whole_probe_with_the_magic_skips_the_counters") {
        return;
    }
    use filter_common::probe::{ANSWER_SESSION, PROBE_MAGIC, ProbeMeta};
    use geofence::{
        explain::{Question, frame},
        kernel::{Kernel, probe, test_run::run_xdp},
    };
    let d = Dirs::new("explain-magic");
    fixture(&d);
    let mut kernel = Kernel::open(&d.pin).expect("opening the pinned maps");
    let target = probe::fresh_target(&mut kernel).expect("loading the program");
    let q = Question::parse(Proto::Udp, "192.0.2.10:1", "100.64.0.1:40000").expect("question");
    let frame = frame::build(&q);
    const XDP_DROP: u32 = 1;

    let mut wrong_magic = [0u8; 32];
    wrong_magic[..8].copy_from_slice(b"GFEXPLN0");
    let mut too_short = [0u8; 16];
    too_short[..8].copy_from_slice(&PROBE_MAGIC);
    for (what, meta) in [
        ("no metadata", &[][..]),
        ("32 bytes, wrong magic", &wrong_magic[..]),
        ("the magic in 16 bytes", &too_short[..]),
    ] {
        let before = dropped_a_xa(&kernel);
        let run = run_xdp(target.fd(), meta, &frame).expect("test run");
        assert_eq!(run.action, XDP_DROP, "{what}");
        assert_eq!(
            run.meta, meta,
            "{what}: the program wrote into metadata that is no probe"
        );
        assert_eq!(run.frame, frame, "{what}");
        assert_eq!(
            dropped_a_xa(&kernel),
            before + 1,
            "{what}: ordinary traffic is counted"
        );
    }

    let before = dropped_a_xa(&kernel);
    let question = ProbeMeta::question();
    let mut bytes = question.magic.to_vec();
    bytes.extend([
        question.answer,
        question.verdict,
        question.pass_reason,
        question.rule_slot,
    ]);
    bytes.resize(32, 0);
    let run = run_xdp(target.fd(), &bytes, &frame).expect("test run");
    assert_eq!(run.action, XDP_DROP);
    assert_eq!(run.meta[8], ANSWER_SESSION, "answered: {:?}", run.meta);
    assert_eq!(
        u32::from_ne_bytes(run.meta[12..16].try_into().expect("4 bytes")),
        1
    );
    assert_eq!(dropped_a_xa(&kernel), before, "a probe is not counted");
}

#[test]
fn bad_arguments_are_refused_clearly() {
    let d = Dirs::new("explain-args");
    let cases: [(&[&str], &str); 6] = [
        (
            &[
                "--proto",
                "udp",
                "--src",
                "192.0.2.1",
                "--dst",
                "100.64.0.1",
            ],
            "has no port",
        ),
        (
            &[
                "--proto",
                "udp",
                "--src",
                "192.0.2.1",
                "--dst",
                "[2001:db8::1]:443",
            ],
            "IPv4 but --dst",
        ),
        (
            &[
                "--proto",
                "udp",
                "--src",
                "192.0.2.1",
                "--dst",
                "100.64.0.1:0",
            ],
            "port 0",
        ),
        (
            &[
                "--proto",
                "udp",
                "--src",
                "192.0.2.1:0",
                "--dst",
                "100.64.0.1:1",
            ],
            "--src `192.0.2.1:0`: port 0",
        ),
        (
            &[
                "--proto",
                "icmp",
                "--src",
                "192.0.2.1",
                "--dst",
                "100.64.0.1:1",
            ],
            "expected udp or tcp",
        ),
        (
            &[
                "--proto",
                "udp",
                "--src",
                "192.0.2",
                "--dst",
                "100.64.0.1:1",
            ],
            "--src `192.0.2`: expected ADDR",
        ),
    ];
    for (args, message) in cases {
        let mut full = vec!["explain"];
        full.extend_from_slice(args);
        let stderr = d.fails(&full);
        assert!(
            stderr.contains(message),
            "{args:?}: `{message}` not in: {stderr}"
        );
    }
}
