use jiff::Timestamp;

use super::*;
use crate::prefix::parse_prefix;
use crate::territory::Territory;

fn rule(order: &str, territories: &[&str], issued_s: i64) -> Rule {
    Rule {
        order: order.to_string(),
        territories: territories
            .iter()
            .map(|t| Territory::parse(t).expect("territory"))
            .collect(),
        prefixes: Vec::new(),
        expires: None,
        dry_run: false,
        issued: Timestamp::from_second(issued_s).expect("time"),
        issued_by: "slot tests".to_string(),
        slot: None,
    }
}

fn state(rules: Vec<Rule>) -> State {
    let mut s = State::default();
    s.meetings.insert(
        "m".to_string(),
        Meeting {
            session: 3,
            created: Timestamp::UNIX_EPOCH,
            endpoints: Vec::new(),
            flows: Vec::new(),
            rules,
            allows: Vec::new(),
        },
    );
    s
}

fn slots(s: &State) -> Vec<Option<u8>> {
    s.meetings["m"].rules.iter().map(|r| r.slot).collect()
}

#[test]
fn a_rule_keeps_its_slot_when_an_earlier_one_goes() {
    let empty = State::default();
    let mut old = state(vec![rule("O-1", &["XA"], 1), rule("O-2", &["XB"], 2)]);
    assign(&empty, &mut old).expect("assign");
    assert_eq!(slots(&old), [Some(0), Some(1)]);

    let mut new = old.clone();
    new.meetings.get_mut("m").expect("m").rules.remove(0);
    assign(&old, &mut new).expect("assign");
    assert_eq!(slots(&new), [Some(1)], "O-2 stays in slot 1");
    let changes = diff(&old, &new);
    assert_eq!(changes.removed.len(), 1);
    let ended: Vec<(u32, u8)> = changes.ended_slots().into_iter().map(|(_, s)| s).collect();
    assert_eq!(ended, [(3, 0)]);
    assert!(changes.started_slots().is_empty());

    // The next rule takes the freed slot, and its counters start from zero.
    let mut next = new.clone();
    next.meetings
        .get_mut("m")
        .expect("m")
        .rules
        .push(rule("O-3", &["XC"], 3));
    assign(&new, &mut next).expect("assign");
    assert_eq!(slots(&next), [Some(1), Some(0)]);
    assert_eq!(diff(&new, &next).started_slots(), [(3, 0)]);
}

#[test]
fn narrowing_a_rule_keeps_its_slot_and_emptying_it_ends_it() {
    let empty = State::default();
    let mut old = state(vec![rule("O-1", &["XA", "XB"], 1)]);
    assign(&empty, &mut old).expect("assign");
    let mut narrowed = old.clone();
    narrowed.meetings.get_mut("m").expect("m").rules[0]
        .territories
        .remove(0);
    assign(&old, &mut narrowed).expect("assign");
    let changes = diff(&old, &narrowed);
    assert_eq!((changes.changed.len(), changes.removed.len()), (1, 0));
    assert!(changes.ended_slots().is_empty() && changes.started_slots().is_empty());

    let mut prefix_only = narrowed.clone();
    let r = &mut prefix_only.meetings.get_mut("m").expect("m").rules[0];
    r.territories.clear();
    r.prefixes.push(parse_prefix("192.0.2.7").expect("prefix"));
    assign(&narrowed, &mut prefix_only).expect("assign");
    assert_eq!(
        slots(&prefix_only),
        [Some(0)],
        "a prefix-only rule keeps its slot: its overrides name it"
    );
    assert!(diff(&narrowed, &prefix_only).ended_slots().is_empty());
    let mut gone = prefix_only.clone();
    gone.meetings.get_mut("m").expect("m").rules.clear();
    let ended: Vec<(u32, u8)> = diff(&prefix_only, &gone)
        .ended_slots()
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    assert_eq!(ended, [(3, 0)]);
}

#[test]
fn two_blocks_under_one_order_in_one_second_stay_apart() {
    let empty = State::default();
    let mut old = state(vec![rule("O", &["XA"], 1), rule("O", &["XB"], 1)]);
    assign(&empty, &mut old).expect("assign");
    let mut new = old.clone();
    new.meetings.get_mut("m").expect("m").rules.remove(0);
    assign(&old, &mut new).expect("assign");
    let changes = diff(&old, &new);
    assert_eq!(changes.removed.len(), 1);
    assert_eq!(changes.removed[0].rule.slot, Some(0));
    assert!(changes.changed.is_empty(), "{changes:?}");
}

#[test]
fn a_ninth_territory_rule_is_refused() {
    let rules = (0..9)
        .map(|i| rule(&format!("O-{i}"), &["XA"], i))
        .collect();
    let mut s = state(rules);
    let err = assign(&State::default(), &mut s).expect_err("nine rules");
    assert!(err.to_string().contains("at most 8"), "{err}");
}

#[test]
fn an_invalid_or_duplicate_slot_is_reassigned() {
    let mut a = rule("O-1", &["XA"], 1);
    a.slot = Some(12);
    let mut b = rule("O-2", &["XB"], 2);
    b.slot = Some(0);
    let mut c = rule("O-3", &["XC"], 3);
    c.slot = Some(0);
    let mut s = state(vec![a, b, c]);
    assign(&State::default(), &mut s).expect("assign");
    assert_eq!(slots(&s), [Some(1), Some(0), Some(2)]);
}

#[test]
fn rules_saved_without_slots_keep_the_slots_sync_gave_them() {
    // An older state: no slots stored; sync placed O-1 in 0 and O-2 in 1.
    let legacy = state(vec![rule("O-1", &["XA"], 1), rule("O-2", &["XB"], 2)]);
    let before = as_synced(&legacy).expect("placed");
    assert_eq!(slots(&before), [Some(0), Some(1)]);
    let mut new = legacy.clone();
    new.meetings.get_mut("m").expect("m").rules.remove(0);
    assign(&before, &mut new).expect("assign");
    assert_eq!(slots(&new), [Some(1)], "O-2 stays where sync put it");
    let changes = diff(&before, &new);
    assert!(
        changes.changed.is_empty() && changes.started_slots().is_empty(),
        "{changes:?}"
    );
}

#[test]
fn prefix_only_rules_hold_slots_within_the_eight() {
    let prefix_only = |order: &str, issued_s: i64| {
        let mut r = rule(order, &[], issued_s);
        r.prefixes
            .push(parse_prefix("192.0.2.0/28").expect("prefix"));
        r
    };
    let mut rules: Vec<Rule> = (0..4).map(|i| rule(&format!("T{i}"), &["XA"], i)).collect();
    rules.extend((4..8).map(|i| prefix_only(&format!("P{i}"), i)));
    let mut full = state(rules);
    assign(&State::default(), &mut full).expect("eight rules fit");
    assert_eq!(slots(&full), (0..8).map(Some).collect::<Vec<_>>());
    let mut over = full.clone();
    over.meetings
        .get_mut("m")
        .expect("m")
        .rules
        .push(prefix_only("P9", 9));
    let err = assign(&full, &mut over)
        .expect_err("a ninth rule")
        .to_string();
    assert!(
        err.contains("meeting `m`") && err.contains("at most 8 rules (territory or prefix)"),
        "{err}"
    );
}

#[test]
fn rule_ids_are_stable_distinct_and_never_zero() {
    let a = rule("O-1", &["XA"], 1);
    let mut b = a.clone();
    b.territories.clear();
    assert_eq!(
        a.kernel_id(),
        b.kernel_id(),
        "targets do not change the identity"
    );
    let later = rule("O-1", &["XA"], 2);
    assert_ne!(a.kernel_id(), later.kernel_id(), "reissued: another rule");
    assert_ne!(a.kernel_id(), rule("O-2", &["XA"], 1).kernel_id());
    let ids: BTreeSet<u32> = (0..10_000)
        .map(|i| rule("ORD", &[], i).kernel_id())
        .collect();
    assert_eq!(ids.len(), 10_000, "no collision among 10,000 issue times");
    assert!(!ids.contains(&0));
}
