//! A line must be the canonical form of its entry, byte for byte.

use std::fs;

use serde_json::{Value, json};

use super::tests::{Dir, joined, trail};
use super::*;

/// A line written by the version before lines were checked byte for byte (its writer was
/// `serde_json::to_string`): escapes, non-ASCII text, nested details, null, a negative
/// number. Trails already on relays must keep verifying.
const EARLIER_LINE: &str = r##"{"seq":1,"time":"2026-12-06T16:19:55Z","operator":"root","host":"vm","action":"block","details":{"a":-1,"dry_run":false,"meeting":"zürich \"east\"\n","note":null,"rules_added":[{"counts":{"bytes":25,"packets":3,"registers":"00"},"order":"ORD-1","territories":["XA"]}]},"prev":"0000000000000000000000000000000000000000000000000000000000000000","hash":"6987eae93c93a331ca8eff73ff7b1a62d1cc0696f545b223b9497ef9a3f65cfe"}"##;

#[test]
fn a_line_an_earlier_version_wrote_verifies() {
    let dir = Dir::new("earlier");
    fs::write(dir.0.join(AUDIT_FILE), format!("{EARLIER_LINE}\n")).expect("write");
    assert_eq!(verify(&dir.0).expect("verify"), Ok(1));
    let entry = &read(&dir.0).expect("read")[0];
    assert_eq!(entry.canonical_line(), EARLIER_LINE);
    assert_eq!(
        serde_json::to_string(entry).expect("json"),
        EARLIER_LINE,
        "serde_json writes what the canonical line is"
    );
}

/// Line 2 (seq 2) of a trail whose second entry is `{"meeting":"town-hall","order":"ORD-1"}`
/// as written, and the problems `verify` reports once `tamper` rewrote it.
fn problems_after(tag: &str, tamper: impl Fn(&str) -> String) -> (String, Vec<Problem>) {
    let dir = trail(tag);
    let mut lines = dir.lines();
    let original = lines[1].clone();
    lines[1] = tamper(&lines[1]);
    fs::write(dir.0.join(AUDIT_FILE), joined(&lines)).expect("write");
    let problems = verify(&dir.0)
        .expect("verify")
        .expect_err("tampering detected");
    assert_eq!(problems[0].line, 2, "{problems:?}");
    (original, problems)
}

/// [`problems_after`] when the line is an entry: it is the one problem.
fn tampered(tag: &str, tamper: impl Fn(&str) -> String) -> (String, Problem) {
    let (original, problems) = problems_after(tag, tamper);
    assert_eq!(problems.len(), 1, "{problems:?}");
    (original, problems[0].clone())
}

/// Asserts a problem at byte `offset` whose reason contains `why`.
fn assert_fault(problem: &Problem, offset: usize, why: &str) {
    assert_eq!(problem.offset, Some(offset), "{problem}");
    assert!(problem.what.contains(why), "{problem}");
    assert!(
        problem.to_string().contains(&format!("byte {offset}")),
        "{problem}"
    );
}

fn at(line: &str, pattern: &str) -> usize {
    line.find(pattern).expect("pattern in the line")
}

#[test]
fn whitespace_between_tokens_is_refused() {
    let (line, p) = tampered("ws", |l| l.replacen(",\"time\"", ", \"time\"", 1));
    assert_fault(
        &p,
        at(&line, ",\"time\"") + 1,
        "whitespace outside a string",
    );
    assert_eq!(p.seq, Some(2));
}

#[test]
fn trailing_whitespace_is_refused() {
    let (line, p) = tampered("trailing-ws", |l| format!("{l} "));
    assert_fault(&p, line.len(), "whitespace outside a string");
}

#[test]
fn another_key_order_is_refused() {
    let (_, p) = tampered("key-order", |l| {
        let entry: Entry = serde_json::from_str(l).expect("entry");
        let rest = &l[at(l, ",\"operator\"")..];
        format!("{{\"time\":\"{}\",\"seq\":{}{rest}", entry.time, entry.seq)
    });
    assert_fault(&p, 2, "keys in another order");
}

#[test]
fn a_duplicate_key_is_refused_although_serde_json_takes_the_last() {
    let dup = |l: &str| l.replacen("{\"seq\":2,", "{\"seq\":2,\"action\":\"meeting del\",", 1);
    let (line, p) = tampered("dup", dup);
    assert_fault(&p, at(&line, "time\""), "the key `action` appears twice");
    // Two readers, two stories: serde_json keeps the last `action`, which the hash covers;
    // a reader keeping the first sees "meeting del".
    let value: Value = serde_json::from_str(&dup(&line)).expect("serde_json accepts it");
    assert_eq!(value["action"], "block", "serde_json keeps the last");
    let entry: Entry = serde_json::from_value(value).expect("and so does an Entry from it");
    assert_eq!(
        entry.compute_hash(),
        entry.hash,
        "the hash alone cannot tell"
    );
}

#[test]
fn a_duplicate_key_inside_details_is_refused() {
    let (_, p) = tampered("dup-details", |l| {
        l.replacen("\"details\":{", "\"details\":{\"meeting\":\"other\",", 1)
    });
    assert!(
        p.what.contains("the key `details.meeting` appears twice"),
        "{p}"
    );
}

#[test]
fn an_unknown_field_is_refused() {
    let (_, p) = tampered("unknown", |l| {
        l.replacen("{\"seq\":2,", "{\"seq\":2,\"note\":\"approved\",", 1)
    });
    assert!(p.what.contains("unknown field `note`"), "{p}");
    assert_eq!(p.offset, Some(at("{\"seq\":2,\"note\"", "note")), "{p}");
}

#[test]
fn an_escape_for_a_plain_character_is_refused() {
    let (line, p) = tampered("escape", |l| l.replacen("town-hall", "town\\u002dhall", 1));
    assert_fault(&p, at(&line, "-hall"), "written as an escape sequence");
    let (line, p) = tampered("escape-key", |l| {
        l.replacen("\"meeting\"", "\"m\\u0065eting\"", 1)
    });
    assert_fault(&p, at(&line, "eeting"), "written as an escape sequence");
}

#[test]
fn escaped_and_unescaped_unicode_are_told_apart() {
    let dir = Dir::new("unicode");
    append(&dir.0, "meeting add", json!({"meeting": "zürich"})).expect("append");
    let line = dir.lines()[0].clone();
    assert!(line.contains("zürich"), "written as is: {line}");
    fs::write(
        dir.0.join(AUDIT_FILE),
        format!("{}\n", line.replacen("ü", "\\u00fc", 1)),
    )
    .expect("write");
    let problems = verify(&dir.0).expect("verify").expect_err("escaped ü");
    assert_fault(&problems[0], at(&line, "ü"), "escape sequence");
}

#[test]
fn trailing_garbage_is_refused_at_its_byte() {
    let (line, problems) = problems_after("garbage", |l| format!("{l}x"));
    assert_eq!(problems[0].offset, Some(line.len()), "{problems:?}");
    assert!(
        problems[0].what.contains("trailing characters"),
        "{problems:?}"
    );
    assert!(
        problems[1]
            .what
            .contains("line 2 before it is not an entry"),
        "the next entry points at the line, not at a removal: {}",
        problems[1]
    );
}

/// A trail of one entry whose details hold `{"bytes":25,"zero":0}`, with `from` in its line
/// replaced by `to`; the problems of line 1.
fn number_written(tag: &str, from: &str, to: &str) -> Vec<Problem> {
    let dir = Dir::new(tag);
    append(&dir.0, "block", json!({"bytes": 25, "zero": 0})).expect("append");
    let text = dir.text();
    assert!(text.contains(from), "{text}");
    fs::write(dir.0.join(AUDIT_FILE), text.replacen(from, to, 1)).expect("write");
    let problems = verify(&dir.0).expect("verify").expect_err(to);
    assert_eq!(problems[0].line, 1, "{problems:?}");
    problems
}

#[test]
fn numbers_written_otherwise_are_refused() {
    for (from, to) in [
        ("\"bytes\":25", "\"bytes\":2.5e1"),
        ("\"bytes\":25", "\"bytes\":25E0"),
        ("\"zero\":0", "\"zero\":-0"),
    ] {
        let problems = number_written("number", from, to);
        assert!(
            problems[0]
                .what
                .contains("a number not written in its canonical form"),
            "{to}: {problems:?}"
        );
    }
    // A leading zero is no JSON number at all; 25.0 is a float, which the line may hold,
    // but the hash covers 25.
    let p = number_written("leading-zero", "\"bytes\":25", "\"bytes\":025");
    assert!(p[0].what.contains("invalid number"), "{p:?}");
    let p = number_written("float", "\"bytes\":25", "\"bytes\":25.0");
    assert!(p[0].what.contains("does not match its hash"), "{p:?}");
    let (_, problems) = problems_after("seq-float", |l| {
        l.replacen("{\"seq\":2,", "{\"seq\":2.0,", 1)
    });
    assert!(problems[0].what.contains("expected u64"), "{}", problems[0]);
}

#[test]
fn a_byte_order_mark_is_refused() {
    let dir = trail("bom");
    let text = dir.text();
    fs::write(dir.0.join(AUDIT_FILE), format!("\u{feff}{text}")).expect("write");
    let problems = verify(&dir.0).expect("verify").expect_err("BOM");
    assert_eq!(problems.len(), 1, "the chain goes on past it: {problems:?}");
    assert_eq!((problems[0].line, problems[0].seq), (1, Some(1)));
    assert_fault(&problems[0], 0, "byte-order mark");
}

#[test]
fn crlf_line_ends_are_refused_on_every_line() {
    let dir = trail("crlf");
    let text = dir.text();
    fs::write(dir.0.join(AUDIT_FILE), text.replace('\n', "\r\n")).expect("write");
    let problems = verify(&dir.0).expect("verify").expect_err("CRLF");
    let lines: Vec<usize> = problems.iter().map(|p| p.line).collect();
    assert_eq!(lines, [1, 2, 3, 4], "{problems:?}");
    let first = dir.lines()[0].len();
    assert_fault(&problems[0], first, "carriage return");

    let (line, p) = tampered("crlf-one", |l| format!("{l}\r"));
    assert_fault(&p, line.len(), "carriage return");
}

#[test]
fn an_empty_line_and_bytes_that_are_not_utf8_are_refused() {
    let dir = trail("empty-line");
    let mut lines = dir.lines();
    lines.insert(2, String::new());
    fs::write(dir.0.join(AUDIT_FILE), joined(&lines)).expect("write");
    let problems = verify(&dir.0).expect("verify").expect_err("empty line");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].line, 3);
    assert!(problems[0].what.contains("empty line"), "{}", problems[0]);

    let dir = trail("latin1");
    let mut bytes = fs::read(dir.0.join(AUDIT_FILE)).expect("read");
    let at = bytes.iter().position(|&b| b == b'-').expect("a dash");
    bytes[at] = 0xe9;
    fs::write(dir.0.join(AUDIT_FILE), &bytes).expect("write");
    let problems = verify(&dir.0).expect("verify").expect_err("latin-1");
    assert_eq!(problems[0].line, 1, "{problems:?}");
    assert_eq!(problems[0].offset, Some(at));
    assert!(problems[0].what.contains("not UTF-8"), "{}", problems[0]);
}

#[test]
fn a_complete_last_line_without_its_newline_is_named() {
    let dir = trail("no-newline");
    let text = dir.text();
    fs::write(dir.0.join(AUDIT_FILE), text.trim_end_matches('\n')).expect("write");
    let problems = verify(&dir.0).expect("verify").expect_err("no newline");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!((problems[0].line, problems[0].seq), (4, Some(4)));
    assert!(problems[0].what.contains("no newline"), "{}", problems[0]);
}

#[test]
fn a_trail_removed_whole_is_named_by_its_head() {
    let dir = trail("removed");
    fs::remove_file(dir.0.join(AUDIT_FILE)).expect("remove");
    let problems = verify(&dir.0).expect("verify").expect_err("head left");
    assert!(
        problems[0].what.contains("removed from the end"),
        "{}",
        problems[0]
    );
}

#[test]
fn read_takes_a_non_canonical_entry_and_the_report_hears_of_it() {
    let dir = trail("read");
    let mut lines = dir.lines();
    lines[2] = lines[2].replacen("{\"seq\":3,", "{\"seq\":3,\"action\":\"meeting del\",", 1);
    fs::write(dir.0.join(AUDIT_FILE), joined(&lines)).expect("write");
    let entries = read(&dir.0).expect("read");
    assert_eq!(entries.len(), 4);
    assert_eq!(
        entries[2].action, "block",
        "as serde_json reads it: the last key"
    );
    let problems = verify(&dir.0)
        .expect("verify")
        .expect_err("verify names it");
    assert_eq!((problems[0].line, problems[0].seq), (3, Some(3)));
    let mut cut = lines.clone();
    cut[1] = cut[1][..40].to_string();
    fs::write(dir.0.join(AUDIT_FILE), joined(&cut)).expect("write");
    let err = read(&dir.0)
        .expect_err("a line that is no entry")
        .to_string();
    assert!(err.contains("line 2") && err.contains("truncated"), "{err}");
}

#[test]
fn appends_after_a_non_canonical_line_continue_its_chain() {
    let dir = trail("append-after");
    let mut lines = dir.lines();
    lines[3] = format!("{} ", lines[3]);
    fs::write(dir.0.join(AUDIT_FILE), joined(&lines)).expect("write");
    let appended = append(&dir.0, "restore", json!({})).expect("append");
    assert_eq!(appended.seq, 5);
    let problems = verify(&dir.0).expect("verify").expect_err("line 4");
    assert_eq!(problems.len(), 1, "only line 4: {problems:?}");
    assert_eq!(problems[0].line, 4);
}
