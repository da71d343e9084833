//! Removes expired rules from the state. The kernel already stopped enforcing them at
//! their expiry; this keeps the state, `status` and the audit trail in step with it. The
//! removal is an ordinary change (locked, synced to the maps, saved, audited as `expire`).

use jiff::Timestamp;
use serde_json::{Value, json};

use super::status::Shared;
use crate::{change::Ctx, state::State};

/// Takes the expired rules out of `state`; returns them as the audit trail records them.
pub fn remove_expired(state: &mut State, now: Timestamp) -> Vec<Value> {
    let mut removed = Vec::new();
    for (name, meeting) in &mut state.meetings {
        meeting.rules.retain(|rule| {
            if !rule.expired(now) {
                return true;
            }
            removed.push(json!({
                "meeting": name,
                "order": rule.order,
                "territories": rule.territories,
                "prefixes": rule.prefixes,
                "expires": rule.expires.map(|t| t.to_string()),
                "mode": if rule.dry_run { "dry-run" } else { "enforce" },
            }));
            false
        });
    }
    removed
}

fn any_expired(state: &State, now: Timestamp) -> bool {
    state
        .meetings
        .values()
        .flat_map(|m| &m.rules)
        .any(|r| r.expired(now))
}

/// One poll: if `seen` (read without the lock) has expired rules, removes them under the
/// lock from the state as it is then.
pub fn poll(ctx: &Ctx, seen: &State, status: &Shared) {
    let now = ctx.clock.wall();
    if !any_expired(seen, now) {
        return;
    }
    match sweep(ctx, now) {
        Ok(removed) => {
            for rule in &removed {
                tracing::info!(
                    "removed expired rule: meeting {} order {} (expired {})",
                    rule["meeting"].as_str().unwrap_or("?"),
                    rule["order"].as_str().unwrap_or("?"),
                    rule["expires"].as_str().unwrap_or("?")
                );
            }
            status.update(|s| s.expired_removed += removed.len() as u64);
        }
        Err(e) => {
            tracing::error!("removing expired rules failed; trying again at the next poll: {e:#}");
            status.update(|s| s.expiry_failures += 1);
        }
    }
}

fn sweep(ctx: &Ctx, now: Timestamp) -> anyhow::Result<Vec<Value>> {
    let mut session = ctx.begin()?;
    let old = session.state.clone();
    let mut new = old.clone();
    let removed = remove_expired(&mut new, now);
    // Someone may have lifted them between the poll and the lock: no empty audit entry.
    if !removed.is_empty() {
        ctx.commit(
            &mut session.kernel,
            &old,
            &new,
            "expire",
            json!({ "rules": removed }),
            &ctx.clock,
        )?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Meeting, Rule};

    fn rule(order: &str, expires: Option<&str>) -> Rule {
        Rule {
            order: order.into(),
            territories: vec!["XA".parse().expect("territory")],
            prefixes: vec![],
            expires: expires.map(|t| t.parse().expect("time")),
            dry_run: false,
            issued: "2026-11-28T10:00:00Z".parse().expect("time"),
            issued_by: "test".into(),
            slot: None,
        }
    }

    #[test]
    fn only_rules_past_their_expiry_are_removed() {
        let mut state = State::default();
        state.meetings.insert(
            "m".into(),
            Meeting {
                session: 1,
                created: "2026-11-28T09:00:00Z".parse().expect("time"),
                endpoints: vec![],
                flows: vec![],
                rules: vec![
                    rule("past", Some("2026-11-28T11:59:59Z")),
                    rule("forever", None),
                    rule("later", Some("2026-11-28T12:00:01Z")),
                    rule("now", Some("2026-11-28T12:00:00Z")),
                ],
                allows: vec![],
            },
        );
        let now: Timestamp = "2026-11-28T12:00:00Z".parse().expect("time");
        assert!(any_expired(&state, now));
        let removed = remove_expired(&mut state, now);
        let orders: Vec<&str> = removed.iter().filter_map(|r| r["order"].as_str()).collect();
        assert_eq!(orders, ["past", "now"]);
        let left: Vec<&str> = state.meetings["m"]
            .rules
            .iter()
            .map(|r| r.order.as_str())
            .collect();
        assert_eq!(left, ["forever", "later"]);
        assert!(!any_expired(&state, now));
        assert_eq!(removed[0]["meeting"], "m");
    }
}
