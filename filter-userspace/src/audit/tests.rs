use std::{fs, path::PathBuf};

use serde_json::json;

use super::{verify::check, *};

/// A state directory of this test alone, removed on drop.
pub(super) struct Dir(pub(super) PathBuf);

impl Dir {
    pub(super) fn new(tag: &str) -> Dir {
        let dir = std::env::temp_dir().join(format!("gf-audit-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("temp dir");
        Dir(dir)
    }

    pub(super) fn text(&self) -> String {
        fs::read_to_string(self.0.join(AUDIT_FILE)).expect("audit file")
    }

    pub(super) fn lines(&self) -> Vec<String> {
        self.text().lines().map(str::to_string).collect()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A trail of four entries: two blocks, an unblock and a meeting.
pub(super) fn trail(tag: &str) -> Dir {
    let dir = Dir::new(tag);
    append(&dir.0, "meeting add", json!({"meeting": "town-hall"})).expect("append");
    append(
        &dir.0,
        "block",
        json!({"meeting": "town-hall", "order": "ORD-1"}),
    )
    .expect("append");
    append(
        &dir.0,
        "block",
        json!({"meeting": "town-hall", "order": "ORD-2"}),
    )
    .expect("append");
    append(
        &dir.0,
        "unblock",
        json!({"meeting": "town-hall", "orders": ["ORD-1"]}),
    )
    .expect("append");
    dir
}

pub(super) fn joined(lines: &[String]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

#[test]
fn entries_chain_and_verify() {
    let dir = trail("chain");
    let entries = read(&dir.0).expect("read");
    assert_eq!(entries.len(), 4);
    assert_eq!(entries[0].prev, GENESIS);
    for pair in entries.windows(2) {
        assert_eq!(pair[1].prev, pair[0].hash);
        assert_eq!(pair[1].seq, pair[0].seq + 1);
    }
    for e in &entries {
        assert_eq!(e.hash, e.compute_hash());
        assert_eq!(e.hash.len(), 64);
    }
    assert_eq!(verify(&dir.0).expect("verify"), Ok(4));
}

#[test]
fn canonical_form_ignores_key_order() {
    let a: Value =
        serde_json::from_str(r#"{"b":1,"a":{"y":[1,{"q":2,"p":3}],"x":"s"}}"#).expect("json");
    let b: Value =
        serde_json::from_str(r#"{"a":{"x":"s","y":[1,{"p":3,"q":2}]},"b":1}"#).expect("json");
    assert_eq!(canonical(&a), canonical(&b));
    assert_eq!(
        canonical(&a),
        r#"{"a":{"x":"s","y":[1,{"p":3,"q":2}]},"b":1}"#
    );
}

#[test]
fn verify_names_an_edited_line() {
    let dir = trail("edited");
    let mut lines = dir.lines();
    lines[2] = lines[2].replace("ORD-2", "ORD-9");
    let problems = check(joined(&lines).as_bytes()).expect_err("edit detected");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!((problems[0].line, problems[0].seq), (3, Some(3)));
    assert!(problems[0].what.contains("edited"), "{}", problems[0]);
}

#[test]
fn verify_names_an_edited_and_rehashed_line_by_the_next_one() {
    let dir = trail("rehashed");
    let mut lines = dir.lines();
    let mut entry: Entry = serde_json::from_str(&lines[1]).expect("entry");
    entry.operator = "someone-else".to_string();
    entry.hash = entry.compute_hash();
    lines[1] = serde_json::to_string(&entry).expect("json");
    let problems = check(joined(&lines).as_bytes()).expect_err("re-hash detected");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!((problems[0].line, problems[0].seq), (3, Some(3)));
    assert!(problems[0].what.contains("line 2"), "{}", problems[0]);
}

#[test]
fn verify_names_a_deleted_line() {
    let dir = trail("deleted");
    let mut lines = dir.lines();
    lines.remove(1);
    let problems = check(joined(&lines).as_bytes()).expect_err("deletion detected");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!((problems[0].line, problems[0].seq), (2, Some(3)));
    assert!(
        problems[0].what.contains("seq 2 is missing"),
        "{}",
        problems[0]
    );
}

#[test]
fn verify_names_a_swapped_pair() {
    let dir = trail("swapped");
    let mut lines = dir.lines();
    lines.swap(1, 2);
    let problems = check(joined(&lines).as_bytes()).expect_err("swap detected");
    let at: Vec<(usize, Option<u64>)> = problems.iter().map(|p| (p.line, p.seq)).collect();
    assert_eq!(at, [(2, Some(3)), (3, Some(2))], "{problems:?}");
    assert!(
        problems.iter().all(|p| p.what.contains("out of order")),
        "{problems:?}"
    );
    assert!(problems[0].what.contains("line 3"), "{}", problems[0]);
}

#[test]
fn verify_names_a_truncated_last_line() {
    let dir = trail("truncated");
    let text = dir.text();
    let cut = &text[..text.len() - 20];
    let problems = check(cut.as_bytes()).expect_err("truncation detected");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!((problems[0].line, problems[0].seq), (4, None));
    assert!(problems[0].what.contains("cut short"), "{}", problems[0]);
}

#[test]
fn a_legacy_line_is_named() {
    let dir = Dir::new("legacy");
    fs::write(
        dir.0.join(AUDIT_FILE),
        "{\"time\":\"2026-01-01T00:00:00Z\",\"operator\":\"root\",\"host\":\"h\",\"action\":\"block\",\"details\":{}}\n",
    )
    .expect("write");
    let problems = verify(&dir.0).expect("verify").expect_err("legacy line");
    assert_eq!(problems[0].line, 1);
    assert!(problems[0].what.contains("legacy"), "{}", problems[0]);
    let err = read(&dir.0).expect_err("read refuses").to_string();
    assert!(err.contains("line 1") && err.contains("legacy"), "{err}");
}

#[test]
fn an_append_after_a_cut_line_starts_on_its_own_line() {
    let dir = trail("append-after-cut");
    let text = dir.text();
    fs::write(dir.0.join(AUDIT_FILE), &text[..text.len() - 20]).expect("write");
    append(&dir.0, "restore", json!({})).expect("append");
    let problems = verify(&dir.0).expect("verify").expect_err("cut line");
    assert_eq!(problems.len(), 1, "only the cut line: {problems:?}");
    assert_eq!(problems[0].line, 4);
    let last: Entry = serde_json::from_str(dir.lines().last().expect("line")).expect("entry");
    assert_eq!(last.action, "restore");
}

#[test]
fn filter_by_order_and_since() {
    let dir = trail("filter");
    let entries = read(&dir.0).expect("read");
    let by_order = Filter {
        order: Some("ORD-1".to_string()),
        ..Filter::default()
    };
    let actions: Vec<u64> = entries
        .iter()
        .filter(|e| by_order.matches(e))
        .map(|e| e.seq)
        .collect();
    assert_eq!(
        actions,
        [2, 4],
        "the block and the unblock that names ORD-1"
    );
    let now = jiff::Timestamp::now();
    let future = Filter {
        since: Some(parse_since("2999-01-01T00:00:00Z", now).expect("time")),
        ..Filter::default()
    };
    assert_eq!(entries.iter().filter(|e| future.matches(e)).count(), 0);
    let last_hour = Filter {
        since: Some(parse_since("1h", now).expect("duration")),
        ..Filter::default()
    };
    assert_eq!(entries.iter().filter(|e| last_hour.matches(e)).count(), 4);
    assert!(parse_since("yesterday", now).is_err());
}

#[test]
fn verify_names_entries_removed_from_the_end() {
    let dir = trail("tail");
    let mut lines = dir.lines();
    lines.pop();
    assert_eq!(
        check(joined(&lines).as_bytes()),
        Ok(3),
        "the chain alone cannot tell"
    );
    fs::write(dir.0.join(AUDIT_FILE), joined(&lines)).expect("write");
    let problems = verify(&dir.0).expect("verify").expect_err("the head tells");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!((problems[0].line, problems[0].seq), (4, Some(4)));
    assert!(
        problems[0].what.contains("removed from the end"),
        "{}",
        problems[0]
    );
}

#[test]
fn verify_names_a_replaced_last_entry() {
    let dir = trail("replaced");
    let mut lines = dir.lines();
    let mut last: Entry = serde_json::from_str(&lines[3]).expect("entry");
    last.action = "meeting del".to_string();
    last.hash = last.compute_hash();
    lines[3] = serde_json::to_string(&last).expect("json");
    fs::write(dir.0.join(AUDIT_FILE), joined(&lines)).expect("write");
    let problems = verify(&dir.0).expect("verify").expect_err("the head tells");
    assert_eq!(
        (problems[0].line, problems[0].seq),
        (4, Some(4)),
        "{problems:?}"
    );
    assert!(problems[0].what.contains("replaced"), "{}", problems[0]);
}
