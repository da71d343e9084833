use super::*;
use crate::state::{Meeting, Rule};

fn at(text: &str) -> Timestamp {
    text.parse().expect("a timestamp")
}

/// Meeting `town-hall` (session 3) with ORD-A in slot 0 and ORD-B in slot 2.
fn state() -> State {
    let now = at("2026-12-06T10:00:00Z");
    let rule = |order: &str, slot| Rule {
        order: order.to_string(),
        territories: vec![Territory::parse("XA").expect("XA")],
        prefixes: Vec::new(),
        expires: None,
        dry_run: false,
        issued: now,
        issued_by: "test".to_string(),
        slot: Some(slot),
    };
    let mut state = State::default();
    state.meetings.insert(
        "town-hall".to_string(),
        Meeting {
            session: 3,
            created: now,
            endpoints: Vec::new(),
            flows: Vec::new(),
            rules: vec![rule("ORD-A", 0), rule("ORD-B", 2)],
            allows: Vec::new(),
        },
    );
    state
}

fn xa() -> u16 {
    Territory::parse("XA").expect("XA").id()
}

/// A record's text as aya-log renders the program's: `decision N[ ADDRESS]`.
fn text(session: u32, verdict: Verdict, slot: u32, cause: Cause, source: Option<&str>) -> String {
    let packed = Packed {
        session,
        territory: xa(),
        verdict: verdict as u32,
        slot,
        cause: cause as u32,
    };
    match source {
        Some(source) => format!("decision {} {source}", packed.pack()),
        None => format!("decision {}", packed.pack()),
    }
}

#[test]
fn a_drop_names_meeting_territory_verdict_reason_and_order() {
    let record =
        Record::parse(&text(3, Verdict::Dropped, 2, Cause::Territory, None)).expect("a record");
    assert_eq!(record.source, None);
    assert_eq!(
        line(&record, &state(), at("2026-12-06T19:50:01.123456Z")),
        "2026-12-06T19:50:01.123Z meeting=town-hall territory=XA verdict=dropped \
         reason=territory order=ORD-B"
    );
}

#[test]
fn the_source_is_shown_only_when_the_record_carries_it() {
    let now = at("2026-12-06T19:50:01Z");
    let with = Record::parse(&text(
        3,
        Verdict::WouldDrop,
        0,
        Cause::Prefix,
        Some("::ffff:192.0.2.7"),
    ))
    .expect("v4");
    assert_eq!(with.source, Some("192.0.2.7".parse().expect("ip")));
    let shown = line(&with, &state(), now);
    assert!(
        shown.ends_with("verdict=would-drop reason=prefix order=ORD-A src=192.0.2.7"),
        "{shown}"
    );
    let v6 = text(
        3,
        Verdict::Passed,
        NO_SLOT,
        Cause::NoRule,
        Some("2001:db8::5"),
    );
    let shown = line(&Record::parse(&v6).expect("v6"), &state(), now);
    assert!(
        shown.ends_with("verdict=passed reason=no-rule order=- src=2001:db8::5"),
        "{shown}"
    );
    let without = text(3, Verdict::Passed, NO_SLOT, Cause::Exception, None);
    let shown = line(&Record::parse(&without).expect("no source"), &state(), now);
    assert!(!shown.contains("src="), "{shown}");
    assert!(shown.ends_with("reason=exception order=-"), "{shown}");
}

#[test]
fn unknown_sessions_and_slots_are_named_by_number() {
    let record =
        Record::parse(&text(9, Verdict::Dropped, 5, Cause::Territory, None)).expect("a record");
    let text = line(&record, &state(), at("2026-12-06T19:50:01Z"));
    assert!(text.contains("meeting=session-9 "), "{text}");
    assert!(text.ends_with("order=slot-5"), "{text}");
}

#[test]
fn other_texts_are_not_records() {
    let bad_verdict = Packed {
        session: 3,
        territory: 1,
        verdict: 7,
        slot: 0,
        cause: 0,
    }
    .pack();
    let bad_cause = Packed {
        cause: 9,
        verdict: 1,
        ..Packed::unpack(bad_verdict)
    }
    .pack();
    for text in [
        String::new(),
        "decision".into(),
        "decisions 1".into(),
        "decision x".into(),
        "decision -1".into(),
        format!("decision {bad_verdict}"),
        format!("decision {bad_cause}"),
        "decision 1 not-an-address".into(),
        "decision 1 ::1 more".into(),
    ] {
        assert_eq!(Record::parse(&text), None, "{text:?}");
    }
}

#[test]
fn the_verdict_filter_sets_the_program_bits() {
    assert_eq!(
        VerdictFilter::Dropped.bits(),
        SHOW_DROPPED | SHOW_WOULD_DROP
    );
    assert_eq!(VerdictFilter::Passed.bits(), SHOW_PASSED);
    assert_eq!(VerdictFilter::All.bits(), SHOW_ALL);
}
