//! Anchors catch a rewrite of the whole chain, and a trail cut before them.

use std::fs;

use super::tests::{Dir, joined, trail};
use super::*;

fn anchor_of(dir: &Dir, seq: u64) -> Anchor {
    let entries = read(&dir.0).expect("read");
    Anchor::of(&entries[usize::try_from(seq).expect("seq") - 1])
}

/// Rewrites the trail from `from_seq` on with another operator, re-hashing and re-chaining
/// every later entry and the head: consistent in itself.
fn rewrite_from(dir: &Dir, from_seq: u64) {
    let mut entries = read(&dir.0).expect("read");
    let mut prev = GENESIS.to_string();
    for entry in &mut entries {
        if entry.seq >= from_seq {
            entry.operator = "mallory".to_string();
            entry.prev.clone_from(&prev);
            entry.hash = entry.compute_hash();
        }
        prev.clone_from(&entry.hash);
    }
    let lines: Vec<String> = entries.iter().map(Entry::canonical_line).collect();
    fs::write(dir.0.join(AUDIT_FILE), joined(&lines)).expect("write");
    if let Some(last) = entries.last() {
        head::write(&dir.0, last).expect("head");
    }
}

#[test]
fn an_anchor_of_an_untouched_trail_matches() {
    let dir = trail("anchor-good");
    let anchors = [anchor_of(&dir, 2), anchor_of(&dir, 4)];
    assert_eq!(verify_against(&dir.0, &anchors).expect("verify"), Ok(4));
    let line = anchors[1].line();
    assert!(
        line.starts_with("geofence-audit-anchor 4:sha256:"),
        "{line}"
    );
    assert_eq!(
        line.parse::<Anchor>(),
        Ok(anchors[1].clone()),
        "the line parses back"
    );
}

#[test]
fn an_anchor_catches_a_rewrite_of_the_whole_chain() {
    let dir = trail("anchor-rewritten");
    let before = [anchor_of(&dir, 1), anchor_of(&dir, 3)];
    rewrite_from(&dir, 2);
    assert_eq!(
        verify(&dir.0).expect("verify"),
        Ok(4),
        "the chain and the head alone cannot tell"
    );
    assert_eq!(
        verify_against(&dir.0, &before[..1]).expect("verify"),
        Ok(4),
        "seq 1 is untouched"
    );
    let problems = verify_against(&dir.0, &before[1..])
        .expect("verify")
        .expect_err("the anchor tells");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!((problems[0].line, problems[0].seq), (3, Some(3)));
    assert!(
        problems[0].what.contains(&before[1].hash)
            && problems[0].what.contains("rewritten at or before seq 3"),
        "{}",
        problems[0]
    );
}

#[test]
fn an_anchor_catches_a_trail_cut_before_its_seq() {
    let dir = trail("anchor-cut");
    let anchor = anchor_of(&dir, 4);
    let lines = dir.lines();
    fs::write(dir.0.join(AUDIT_FILE), joined(&lines[..2])).expect("write");
    let entries = read(&dir.0).expect("read");
    head::write(&dir.0, &entries[1]).expect("head");
    assert_eq!(
        verify(&dir.0).expect("verify"),
        Ok(2),
        "the head was cut too"
    );
    let problems = verify_against(&dir.0, &[anchor])
        .expect("verify")
        .expect_err("the anchor tells");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!((problems[0].line, problems[0].seq), (3, Some(4)));
    assert!(
        problems[0].what.contains("the trail ends at seq 2"),
        "{}",
        problems[0]
    );
}

#[test]
fn malformed_anchors_say_what_is_wrong() {
    let hash = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    let good = Anchor {
        seq: 12,
        hash: hash.to_string(),
    };
    for text in [
        format!("12:sha256:{hash}"),
        format!("12:{hash}"),
        format!("geofence-audit-anchor 12:sha256:{hash}"),
        format!("  12:sha256:{} ", hash.to_uppercase()),
    ] {
        assert_eq!(text.parse::<Anchor>(), Ok(good.clone()), "{text}");
    }
    for (text, why) in [
        (String::new(), "is not an anchor"),
        ("12".to_string(), "is not an anchor"),
        (
            format!("geofence-audit-anchor12:{hash}"),
            "is not an anchor",
        ),
        (format!("0:sha256:{hash}"), "the seq `0`"),
        (format!("-1:sha256:{hash}"), "the seq `-1`"),
        (format!("+1:sha256:{hash}"), "the seq `+1`"),
        (format!("x:sha256:{hash}"), "the seq `x`"),
        (format!("12:sha256:{}", &hash[..63]), "it has 63 digits"),
        (format!("12:md5:{hash}"), "'m' is not a hex digit"),
        (format!("12:sha256:{hash}0"), "it has 65 digits"),
    ] {
        let err = text.parse::<Anchor>().expect_err(&text).to_string();
        assert!(err.contains(why), "{text}: {err}");
    }
}
