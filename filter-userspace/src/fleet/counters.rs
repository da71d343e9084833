//! What a relay counted, as its status key carries it: each rule's packets, bytes and
//! distinct-source sketch (the HyperLogLog registers, never an address), and the head of
//! its local audit trail. Read from the relay's own transparency report, so that the fleet
//! report sums exactly what each relay's `geofence report` says.

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::report::Report;

/// A status key stays well under etcd's request limit (1.5 MiB by default): past this
/// many bytes of rules, the oldest ended rules are left out and counted as omitted.
pub const MAX_RULES_BYTES: usize = 256 * 1024;

/// One rule as the relay enforced it, and what it counted over its life.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RuleCount {
    pub meeting: String,
    pub order: String,
    #[serde(default)]
    pub territories: Vec<String>,
    /// The order's prefixes (operator input, not participant addresses).
    #[serde(default)]
    pub prefixes: Vec<String>,
    /// `enforce` or `dry-run`.
    pub mode: String,
    pub issued: Timestamp,
    /// `fleet vN by AUTHOR` for a rule a fleet version issued; the fleet report matches
    /// the rule to that version's by it.
    pub issued_by: String,
    pub expires: Option<Timestamp>,
    pub removed: Option<Timestamp>,
    /// `None` when the relay had no counts for it (counters unreadable when it ended).
    pub counts: Option<Tally>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tally {
    pub packets: u64,
    pub bytes: u64,
    /// The sketch's 64 registers as hex (`sketch::registers_hex`): merged across relays
    /// by register-wise maximum, which is the sketch of the union of their sources.
    pub registers: String,
}

/// The local audit trail's last entry, and whether its chain verified.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditHead {
    pub seq: u64,
    pub hash: String,
    /// `intact`, or the start of what `audit verify` found.
    pub chain: String,
}

/// What an enforcer counted, read at one moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Counted {
    pub rules: Vec<RuleCount>,
    pub audit_head: Option<AuditHead>,
}

/// The counters part of a status key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    /// When the relay read the counts it carries (the last read that found a change:
    /// unchanged counts are not written again).
    pub read: Timestamp,
    /// Rules that ended more than this long before `read` are not carried; the relay's
    /// own report still has them.
    pub keep_seconds: u64,
    pub rules: Vec<RuleCount>,
    /// Rules left out to keep the key small (oldest ended first).
    #[serde(default)]
    pub omitted: usize,
}

/// The rules of `report` as a status key carries them, and the audit head it was built on.
pub fn from_report(report: &Report) -> Counted {
    let rules = report
        .rules
        .iter()
        .map(|r| {
            let l = &r.life;
            RuleCount {
                meeting: l.meeting.clone(),
                order: l.order.clone(),
                territories: l.territories.clone(),
                prefixes: l.prefixes.clone(),
                mode: l.mode.clone(),
                issued: l.issued,
                issued_by: l.issued_by.clone(),
                expires: l.expires,
                removed: l.removed,
                counts: l.counts.as_ref().map(|c| Tally {
                    packets: c.packets,
                    bytes: c.bytes,
                    registers: c.registers.clone(),
                }),
            }
        })
        .collect();
    let p = &report.provenance;
    let audit_head = match (p.last_seq, &p.last_hash) {
        (Some(seq), Some(hash)) => Some(AuditHead {
            seq,
            hash: hash.clone(),
            chain: p.chain.chars().take(200).collect(),
        }),
        _ => None,
    };
    Counted { rules, audit_head }
}

/// The window a relay reads its rules over: rules that ended before `now - keep` are left
/// out of its status.
pub fn since(now: Timestamp, keep: std::time::Duration) -> Timestamp {
    let keep = SignedDuration::try_from(keep).unwrap_or(SignedDuration::MAX);
    now.checked_sub(keep).unwrap_or(Timestamp::MIN)
}

/// `rules` cut to [`MAX_RULES_BYTES`] of JSON: rules that ended go first, the longest
/// ended first, then (only on a relay with thousands of rules in force) the oldest issued.
/// Returns the rules kept and how many were left out. `now` tells an expired rule.
pub fn fit(mut rules: Vec<RuleCount>, now: Timestamp) -> (Vec<RuleCount>, usize) {
    let size = |r: &RuleCount| serde_json::to_vec(r).map_or(0, |v| v.len() + 1);
    let mut total: usize = rules.iter().map(size).sum();
    if total <= MAX_RULES_BYTES {
        return (rules, 0);
    }
    // Dropped first sort first: ended (by end), then in force (by issue).
    let mut order: Vec<usize> = (0..rules.len()).collect();
    order.sort_by_key(|&i| {
        let r = &rules[i];
        let ended = r.removed.or(r.expires.filter(|e| *e <= now));
        (ended.is_none(), ended.unwrap_or(r.issued))
    });
    let mut dropped = vec![false; rules.len()];
    for i in order {
        if total <= MAX_RULES_BYTES {
            break;
        }
        total -= size(&rules[i]);
        dropped[i] = true;
    }
    let omitted = dropped.iter().filter(|&&d| d).count();
    let mut index = 0;
    rules.retain(|_| {
        index += 1;
        !dropped[index - 1]
    });
    (rules, omitted)
}

/// The fleet version that issued a rule, from its `issued_by` (`fleet v3 by alice@ops`).
pub fn issuing_version(issued_by: &str) -> Option<u64> {
    let rest = issued_by.strip_prefix("fleet v")?;
    let (n, _) = rest.split_once(" by ")?;
    n.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(order: &str, issued: &str, removed: Option<&str>) -> RuleCount {
        RuleCount {
            meeting: "m".into(),
            order: order.into(),
            territories: vec!["XA".into()],
            prefixes: vec![],
            mode: "enforce".into(),
            issued: issued.parse().expect("time"),
            issued_by: "fleet v1 by op@host".into(),
            expires: None,
            removed: removed.map(|t| t.parse().expect("time")),
            counts: Some(Tally {
                packets: 1,
                bytes: 100,
                registers: "00".repeat(64),
            }),
        }
    }

    #[test]
    fn the_issuing_version_is_read_from_issued_by() {
        assert_eq!(issuing_version("fleet v12 by alice@ops-1"), Some(12));
        assert_eq!(issuing_version("alice@ops-1"), None);
        assert_eq!(issuing_version("fleet vX by a"), None);
    }

    #[test]
    fn a_status_too_large_drops_the_longest_ended_rules_first() {
        let now = "2026-03-01T00:00:00Z".parse().expect("time");
        let small = vec![rule("A", "2026-01-01T00:00:00Z", None)];
        assert_eq!(fit(small.clone(), now), (small, 0));
        // Each rule is a few hundred bytes: this many exceed the limit.
        let n = MAX_RULES_BYTES / 200;
        let mut rules: Vec<RuleCount> = (0..n)
            .map(|i| {
                let day = 1 + i % 28;
                let removed = format!("2026-02-{day:02}T00:00:00Z");
                rule(&format!("ORD-{i}"), "2026-01-01T00:00:00Z", Some(&removed))
            })
            .collect();
        rules.push(rule("IN-FORCE", "2025-01-01T00:00:00Z", None));
        let (kept, omitted) = fit(rules.clone(), now);
        assert!(omitted > 0);
        assert_eq!(kept.len() + omitted, rules.len());
        let bytes: usize = kept
            .iter()
            .map(|r| serde_json::to_vec(r).expect("json").len() + 1)
            .sum();
        assert!(bytes <= MAX_RULES_BYTES, "{bytes}");
        // The rule in force stays, though issued first; of those ended, the latest stay.
        assert!(kept.iter().any(|r| r.order == "IN-FORCE"));
        let earliest_kept = kept.iter().filter_map(|r| r.removed).min();
        let latest_dropped = rules
            .iter()
            .filter(|r| !kept.contains(r))
            .filter_map(|r| r.removed)
            .max();
        assert!(
            latest_dropped <= earliest_kept,
            "{latest_dropped:?} {earliest_kept:?}"
        );
    }
}
