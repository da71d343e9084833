use std::path::Path;

use jiff::Timestamp;

use super::*;
use crate::state::State;

const NOW: &str = "2026-11-28T12:00:00Z";

fn now() -> Timestamp {
    NOW.parse().expect("now")
}

fn parse_text(text: &str) -> Result<Declared, PolicyError> {
    parse(Path::new("/etc/geofence/policy.toml"), text, now())
}

const POLICY: &str = r#"
[geo]
files = ["geo/countries.csv", "/srv/xa.txt"]
format = "cidr"
territory = "XA"

[meetings.town-hall]
endpoints = ["udp:*:40000-40099", "tcp:[2001:db8::1]:443"]
allow = ["192.0.2.77"]
# no flows: they are runtime bindings

[[meetings.town-hall.rules]]
order = "ORD-1"
territories = ["XB", "XA", "XA"]
expires = 2026-12-01T18:00:00.123456789Z

[[meetings.town-hall.rules]]
order = "ORD-2"
prefixes = ["198.51.100.9"]
expires = "2026-12-01T19:00:00+01:00"
dry_run = true

[meetings."v1.0"]
endpoints = ["udp:*:3478"]
"#;

#[test]
fn parses_a_whole_policy() {
    let d = parse_text(POLICY).expect("valid");
    let geo = d.geo.expect("geo");
    assert_eq!(
        geo.files,
        [
            Path::new("/etc/geofence/geo/countries.csv"),
            Path::new("/srv/xa.txt")
        ]
    );
    assert_eq!(geo.format, crate::geo::Format::Cidr);
    assert_eq!(geo.territory.map(|t| t.to_string()).as_deref(), Some("XA"));
    let th = &d.meetings["town-hall"];
    assert_eq!(th.endpoints.len(), 2);
    assert_eq!(th.allows[0].to_string(), "192.0.2.77/32");
    let r = &th.rules[0];
    let codes: Vec<String> = r.territories.iter().map(ToString::to_string).collect();
    assert_eq!(codes, ["XA", "XB"], "sorted, deduplicated");
    assert_eq!(
        r.expires.map(|t| t.to_string()).as_deref(),
        Some("2026-12-01T18:00:00.123456789Z"),
        "a TOML datetime keeps its nanoseconds"
    );
    let r2 = &th.rules[1];
    assert_eq!(
        r2.expires.map(|t| t.to_string()).as_deref(),
        Some("2026-12-01T18:00:00Z")
    );
    assert!(r2.dry_run);
    assert_eq!(r2.at.line, 17);
    assert!(d.meetings.contains_key("v1.0"));
}

#[test]
fn errors_name_line_column_and_meeting() {
    let cases = [
        (
            "[meetings.a]\nendpoints = [\"udp:*:1\"]\ncolor = 1\n",
            "3:1",
            "unknown field `color`",
        ),
        (
            "[meetings.a]\nendpoints = [\"udp:*:1\"\n",
            "2:",
            "unclosed array",
        ),
        (
            "[meetings.a]\nendpoints = [\"udp:*:0\"]\n",
            "2:14",
            "meeting `a`: endpoint `udp:*:0`: port 0",
        ),
        (
            "mux = [\"udp:*:1\"]\n[meetings.a]\nendpoints = [\"udp:*:1\"]\n",
            "1:8",
            "shares ports with udp:*:1, which meeting `a` owns",
        ),
        (
            "mux = [\"udp:*:1-5\", \"udp:*:3\"]\n",
            "1:21",
            "mux udp:*:3 overlaps udp:*:1-5",
        ),
        (
            "[meetings.a]\nendpoints = [\"udp:*:1\"]\n[meetings.a]\nendpoints = [\"udp:*:2\"]\n",
            "3:11",
            "meeting `a` is defined twice",
        ),
        (
            "[meetings.a]\nendpoints = [\"udp:*:1\"]\n[[meetings.a.rules]]\norder = \"O\"\nterritories = [\"xa\"]\n",
            "5:15",
            "meeting `a`: `xa` is lower-case",
        ),
        (
            "[meetings.a]\nendpoints = [\"udp:*:1\"]\n[[meetings.a.rules]]\norder = \"O\"\nterritories = [\"XA\"]\nfor = \"24h\"\n",
            "6:7",
            "is a duration",
        ),
        (
            "[meetings.a]\nendpoints = [\"udp:*:1\"]\n[[meetings.a.rules]]\norder = \"O\"\nterritories = [\"XA\"]\nexpires = 2026-11-28T11:59:59Z\n",
            "6:11",
            "in the past",
        ),
        (
            "[meetings.a]\nendpoints = [\"udp:*:1\"]\n[[meetings.a.rules]]\norder = \"O\"\nterritories = [\"XA\"]\nexpires = 2026-12-28\n",
            "6:11",
            "RFC 3339",
        ),
        (
            "[meetings.a]\nendpoints = [\"udp:*:1\"]\n[[meetings.a.rules]]\norder = \" \"\nterritories = [\"XA\"]\n",
            "4:9",
            "order reference",
        ),
        (
            "[meetings.a]\nendpoints = [\"udp:*:1\"]\n[[meetings.a.rules]]\norder = \"O\"\n",
            "3:1",
            "at least one territory or prefix",
        ),
        (
            "[meetings.a]\nendpoints = [\"udp:*:1\"]\n[meetings.b]\nendpoints = [\"udp:*:1-5\"]\n",
            "3:11",
            "overlaps udp:*:1 of meeting `a`",
        ),
        (
            "[meetings.\"a b\"]\nendpoints = [\"udp:*:1\"]\n",
            "1:11",
            "meeting name `a b`",
        ),
        (
            "[meetings.a]\nendpoints = [\"udp:*:1\"]\nallow = [\"192.0.2.1\"]\n[[meetings.a.rules]]\norder = \"O\"\nprefixes = [\"192.0.2.1\"]\n",
            "3:10",
            "also blocked by order O",
        ),
        (
            "[meetings.a]\nendpoints = [\"udp:*:1\"]\n[[meetings.a.rules]]\norder = \"O\"\nprefixes = [\"192.0.2.1\"]\n[[meetings.a.rules]]\norder = \"P\"\nprefixes = [\"192.0.2.1\"]\n",
            "6:1",
            "already blocked by order O",
        ),
        (
            "[geo]\nfiles = [\"x.csv\"]\nformat = \"xml\"\n",
            "3:10",
            "unknown geo format",
        ),
        (
            "[meetings.a]\nendpoints = [\"udp:*:1\"]\nflows = [{ proto = \"udp\", src = \"192.0.2.1:1\", dst = \"[2001:db8::1]:2\" }]\n",
            "3:10",
            "flows are bindings of participants' addresses, not policy",
        ),
    ];
    for (text, at, needle) in cases {
        let err = parse_text(text).expect_err(text).to_string();
        let want = format!("/etc/geofence/policy.toml:{at}");
        assert!(
            err.starts_with(&want),
            "{text:?}: `{err}` should start with {want}"
        );
        assert!(
            err.contains(needle),
            "{text:?}: `{err}` should say {needle}"
        );
    }
}

/// A state with one meeting and its rules, as the CLI would have made it.
fn state_from(text: &str) -> State {
    let plan = plan(
        &State::default(),
        &parse_text(text).expect("valid"),
        now(),
        "alice",
    )
    .expect("plan");
    plan.new
}

#[test]
fn export_then_plan_changes_nothing() {
    let state = state_from(POLICY);
    let text = export(&state, "relay-1", now());
    assert!(text.starts_with("# geofence policy exported from relay-1 at 2026-11-28T12:00:00Z"));
    let again = plan(
        &state,
        &parse_text(&text).expect("export parses"),
        now(),
        "bob",
    )
    .expect("plan");
    assert!(again.changes.is_empty(), "{:?}", again.changes);
    assert_eq!(again.new, state);
}

#[test]
fn unchanged_rules_keep_issuer_and_sessions_stay() {
    let state = state_from(POLICY);
    let edited = POLICY
        .replace("\"XB\", \"XA\", \"XA\"", "\"XC\"")
        .replace("order = \"ORD-2\"", "order = \"ORD-3\"")
        .replace("[meetings.\"v1.0\"]", "[meetings.v2]");
    let later: Timestamp = "2026-11-28T13:00:00Z".parse().expect("t");
    let p = plan(&state, &parse_text(&edited).expect("valid"), later, "bob").expect("plan");
    let lines: Vec<String> = p.changes.iter().map(ToString::to_string).collect();
    let th = &p.new.meetings["town-hall"];
    assert_eq!(th.session, state.meetings["town-hall"].session);
    // ORD-1 changed in place (first slot), ORD-2 removed, ORD-3 appended.
    assert_eq!(th.rules[0].order, "ORD-1");
    assert_eq!(th.rules[0].issued_by, "bob", "a changed rule is reissued");
    assert_eq!(th.rules[1].order, "ORD-3");
    assert_eq!(
        p.new.meetings["v2"].session, 3,
        "ids of removed meetings are not reused"
    );
    assert!(!p.new.meetings.contains_key("v1.0"));
    for want in [
        "- meeting v1.0 (session 2)",
        "+ meeting v2 (session 3)",
        "~ meeting town-hall (session 1)",
        "~     rule ORD-1: XA, XB until 2026-12-01T18:00:00.123456789Z → ORD-1: XC until",
        "-     rule ORD-2:",
        "+     rule ORD-3:",
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(want)),
            "{want} in {lines:#?}"
        );
    }
    let only_new = edited.replace("order = \"ORD-3\"", "order = \"ORD-2\"");
    let p = plan(&state, &parse_text(&only_new).expect("valid"), later, "bob").expect("plan");
    let ord2 = &p.new.meetings["town-hall"].rules[1];
    assert_eq!(
        (ord2.order.as_str(), ord2.issued_by.as_str()),
        ("ORD-2", "alice"),
        "unchanged"
    );
    assert_eq!(ord2.issued, now());
    assert_eq!(
        p.summary.to_string(),
        "1 meeting added, 1 meeting removed, 1 meeting changed, 1 endpoint added, 1 endpoint removed, 1 rule changed"
    );
}

#[test]
fn expired_rules_are_kept_and_not_exported() {
    let mut state = state_from(POLICY);
    let past: Timestamp = "2026-11-01T00:00:00Z".parse().expect("t");
    let th = state.meetings.get_mut("town-hall").expect("meeting");
    th.rules[1].expires = Some(past);
    let text = export(&state, "h", now());
    assert!(!text.contains("order = \"ORD-2\""), "{text}");
    assert!(text.contains("# expired 2026-11-01T00:00:00Z and left out: order \"ORD-2\""));
    let p = plan(&state, &parse_text(&text).expect("parses"), now(), "bob").expect("plan");
    assert!(p.changes.is_empty(), "{:?}", p.changes);
    assert_eq!(p.new, state, "the expired rule stays as a record");
}

#[test]
fn keys_and_strings_are_quoted() {
    let text = "[meetings.\"v1.0\"]\nendpoints = [\"udp:*:1\"]\n[[meetings.\"v1.0\".rules]]\norder = \"ORD \\\"7\\\" ü\"\nterritories = [\"unknown\"]\n";
    let state = state_from(text);
    let out = export(&state, "h\nx", now());
    assert!(out.contains("[meetings.\"v1.0\"]"), "{out}");
    assert!(
        out.starts_with("# geofence policy exported from h?x"),
        "{out}"
    );
    let back = parse_text(&out).expect("parses");
    assert_eq!(back.meetings["v1.0"].rules[0].order, "ORD \"7\" ü");
}

#[test]
fn shared_ports_and_meetings_without_endpoints_round_trip() {
    let text = "mux = [\"udp:*:7882\"]\n[meetings.a]\n[meetings.b]\nendpoints = []\n";
    let declared = parse_text(text).expect("parses");
    assert_eq!(
        declared.mux,
        Some(vec!["udp:*:7882".parse().expect("endpoint")])
    );
    assert!(declared.meetings["a"].endpoints.is_empty());
    let p = plan(&State::default(), &declared, now(), "bob").expect("plan");
    assert_eq!(p.new.mux, declared.mux.clone().expect("mux"));
    assert!(
        p.changes.iter().any(|c| c.text == "mux port udp:*:7882"),
        "{:?}",
        p.changes
    );
    let exported = export(&p.new, "h", now());
    let again = plan(
        &p.new,
        &parse_text(&exported).expect("parses"),
        now(),
        "bob",
    )
    .expect("plan");
    assert!(again.changes.is_empty(), "{exported}\n{:?}", again.changes);
    // Without a `mux` key, the relay's shared ports stay as they are.
    let kept = plan(
        &p.new,
        &parse_text("[meetings.a]\n[meetings.b]\n").expect("parses"),
        now(),
        "bob",
    );
    assert_eq!(kept.expect("plan").new.mux, p.new.mux);
}
