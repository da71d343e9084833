//! How explain names things: territories, verdicts, times, meetings and the rules of
//! kernel policy slots.

use std::net::IpAddr;

use filter_common::{TerritoryId, Verdict, territory::territory_code};
use jiff::Timestamp;

use crate::{
    clock::rounded,
    model::{Headers, parse::mapped_v4},
    state::{Meeting, Rule, State},
};

/// A territory id as operators write it; ids no code has are shown as numbers.
pub fn territory_name(id: TerritoryId) -> String {
    match (id, territory_code(id)) {
        (0, _) => "unknown".to_string(),
        (_, Some([a, b])) => format!("{}{}", a as char, b as char),
        (_, None) => format!("id {id}"),
    }
}

pub fn verdict_name(v: Verdict) -> &'static str {
    match v {
        Verdict::Passed => "PASS",
        Verdict::Dropped => "DROP",
        Verdict::WouldDrop => "PASS (would drop: dry run)",
    }
}

/// "in 59m 58s" or "2h 3m ago".
fn relative(at: Timestamp, now: Timestamp) -> String {
    let text = crate::human::span(at.duration_since(now));
    if at >= now {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

pub fn meeting_of(state: &State, session: u32) -> Option<(&str, &Meeting)> {
    let mut found = state.meetings.iter().filter(|(_, m)| m.session == session);
    found.next().map(|(name, m)| (name.as_str(), m))
}

pub fn meeting_label(state: &State, session: u32) -> String {
    match meeting_of(state, session) {
        Some((name, _)) => format!("meeting {name} (session {session})"),
        None => format!("session {session}, which no meeting in the state has"),
    }
}

/// The source as the override prefixes see it (IPv4-mapped sources are IPv4).
pub fn source_ip(h: &Headers) -> IpAddr {
    mapped_v4(&h.src).map_or(IpAddr::V6(h.src.into()), IpAddr::V4)
}

/// The rule in kernel policy slot `slot`: the slot recorded in the state, or for rules
/// saved before slots were, the one `kernel::sync` gives them.
pub fn rule_in_slot(meeting: &Meeting, slot: usize) -> Option<&Rule> {
    let mut placed = meeting.clone();
    crate::rule_slots::assign_meeting(None, &mut placed).ok()?;
    let index = (placed.rules.iter()).position(|r| r.slot.map(usize::from) == Some(slot))?;
    meeting.rules.get(index)
}

pub fn expiry_text(expires: Option<Timestamp>, now: Timestamp) -> String {
    match expires {
        None => "no expiry".to_string(),
        Some(at) if at <= now => format!("EXPIRED at {} ({})", rounded(at), relative(at, now)),
        Some(at) => format!("expires {} ({})", rounded(at), relative(at, now)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_times() {
        assert_eq!(territory_name(0), "unknown");
        assert_eq!(territory_name(1), "AA");
        assert_eq!(territory_name(999), "id 999");
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().expect("time");
        let later: Timestamp = "2026-01-01T01:02:03Z".parse().expect("time");
        assert_eq!(relative(later, now), "in 1h 2m");
        assert_eq!(relative(now, later), "1h 2m ago");
        assert_eq!(expiry_text(None, now), "no expiry");
        assert!(expiry_text(Some(now), later).starts_with("EXPIRED at 2026-01-01T00:00:00Z"));
    }

    #[test]
    fn policy_slots_follow_kernel_sync() {
        let mut state = State::default();
        let rule = |order: &str, territories: &[&str], prefixes: &[&str]| Rule {
            order: order.to_string(),
            territories: territories
                .iter()
                .map(|t| t.parse().expect("code"))
                .collect(),
            prefixes: prefixes
                .iter()
                .map(|p| crate::prefix::parse_prefix(p).expect("prefix"))
                .collect(),
            expires: None,
            dry_run: false,
            issued: crate::clock::now(),
            issued_by: "test".to_string(),
            slot: None,
        };
        let meeting = Meeting {
            session: 7,
            created: crate::clock::now(),
            endpoints: vec!["udp:*:1".parse().expect("endpoint")],
            flows: Vec::new(),
            rules: vec![
                rule("P", &[], &["192.0.2.1"]),
                rule("T1", &["XA"], &[]),
                rule("T2", &["XB", "XC"], &["192.0.2.2"]),
            ],
            allows: Vec::new(),
        };
        state.meetings.insert("m".to_string(), meeting.clone());
        let maps = crate::model::SessionMaps::derive(&state, &crate::expiry::Clock::now())
            .expect("derivable");
        let policy = maps.policies[&7];
        for (slot, kernel_rule) in policy.rules.iter().enumerate() {
            let named = rule_in_slot(&meeting, slot);
            let blocked: Vec<TerritoryId> =
                named.map_or_else(Vec::new, |r| r.territories.iter().map(|t| t.id()).collect());
            assert_eq!(
                kernel_rule.rule_id,
                named.map_or(0, Rule::kernel_id),
                "slot {slot} holds its rule's id"
            );
            for id in 0..=filter_common::territory::TERRITORY_MAX {
                assert_eq!(
                    kernel_rule.blocks(id),
                    blocked.contains(&id),
                    "slot {slot}, id {id}"
                );
            }
        }
        // Prefix-only rules hold a slot too.
        let orders: Vec<Option<&str>> = (0..4)
            .map(|s| rule_in_slot(&meeting, s).map(|r| r.order.as_str()))
            .collect();
        assert_eq!(orders, [Some("P"), Some("T1"), Some("T2"), None]);
        // A recorded slot wins over rule order.
        let mut moved = meeting.clone();
        moved.rules[1].slot = Some(5);
        assert_eq!(
            rule_in_slot(&moved, 5).map(|r| r.order.as_str()),
            Some("T1")
        );
    }
}
