//! Each rule's life, read back from the audit trail: when it was issued, what it blocked,
//! when and why it ended, and the counts recorded when it ended.
//!
//! `Ctx::commit` writes `rules_added`, `rules_changed` and `rules_removed` into every
//! change's entry (see `change`), whatever command made it, so this reads those and
//! nothing command-specific.

use jiff::Timestamp;
use serde::Serialize;
use serde_json::Value;

use crate::audit::Entry;

/// What a rule slot counted over its rule's life, and where the figure comes from.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Counts {
    pub packets: u64,
    pub bytes: u64,
    /// HyperLogLog estimate, about ±13%.
    pub distinct_sources: u64,
    /// The sketch registers (hex), to recompute or merge the estimate.
    pub registers: String,
    /// `audit seq N` for final counts recorded when the rule ended, or `live` for
    /// counters read from the kernel when the report was made.
    pub source: String,
}

/// One rule from issue to end.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RuleLife {
    pub meeting: String,
    pub session: u32,
    pub order: String,
    pub territories: Vec<String>,
    pub prefixes: Vec<String>,
    /// `enforce` or `dry-run`.
    pub mode: String,
    pub issued: Timestamp,
    pub issued_by: String,
    pub expires: Option<Timestamp>,
    pub slot: Option<u8>,
    /// When the rule was removed from the state, by which action, and its audit seq.
    pub removed: Option<Timestamp>,
    pub removed_by: Option<String>,
    /// The seq of the audit entry that added it.
    pub added_seq: u64,
    /// Territories, prefixes or slot changed after issue (a partial unblock).
    pub changes: Vec<String>,
    pub counts: Option<Counts>,
}

impl RuleLife {
    /// When it stopped applying: removal or expiry, whichever came first.
    pub fn ended(&self) -> Option<Timestamp> {
        match (self.removed, self.expires) {
            (Some(r), Some(e)) => Some(r.min(e)),
            (r, e) => r.or(e),
        }
    }

    fn same(&self, v: &Value) -> bool {
        v["meeting"] == self.meeting.as_str()
            && v["session"] == self.session
            && v["order"] == self.order.as_str()
            && v["issued"].as_str().and_then(|t| t.parse().ok()) == Some(self.issued)
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn counts_from(v: &Value, seq: u64) -> Option<Counts> {
    let c = v.get("counts")?;
    Some(Counts {
        packets: c["packets"].as_u64()?,
        bytes: c["bytes"].as_u64()?,
        distinct_sources: c["distinct_sources"].as_u64()?,
        registers: c["registers"].as_str()?.to_string(),
        source: format!("audit seq {seq}"),
    })
}

fn life_from(v: &Value, seq: u64) -> Option<RuleLife> {
    Some(RuleLife {
        meeting: v["meeting"].as_str()?.to_string(),
        session: u32::try_from(v["session"].as_u64()?).ok()?,
        order: v["order"].as_str()?.to_string(),
        territories: strings(&v["territories"]),
        prefixes: strings(&v["prefixes"]),
        mode: v["mode"].as_str().unwrap_or("enforce").to_string(),
        issued: v["issued"].as_str()?.parse().ok()?,
        issued_by: v["issued_by"].as_str().unwrap_or_default().to_string(),
        expires: v["expires"].as_str().and_then(|t| t.parse().ok()),
        slot: v["slot"].as_u64().and_then(|s| u8::try_from(s).ok()),
        removed: None,
        removed_by: None,
        added_seq: seq,
        changes: Vec::new(),
        counts: None,
    })
}

fn list<'a>(entry: &'a Entry, key: &str) -> impl Iterator<Item = &'a Value> {
    entry.details[key].as_array().into_iter().flatten()
}

/// Every rule the trail records, in the order they were added.
pub fn rule_lives(entries: &[Entry]) -> Vec<RuleLife> {
    let mut lives: Vec<RuleLife> = Vec::new();
    for entry in entries {
        let at = entry.timestamp();
        for v in list(entry, "rules_added") {
            if let Some(life) = life_from(v, entry.seq) {
                lives.push(life);
            }
        }
        for change in list(entry, "rules_changed") {
            let (before, after) = (&change["before"], &change["after"]);
            let Some(life) = lives
                .iter_mut()
                .rev()
                .find(|l| l.removed.is_none() && l.same(before))
            else {
                continue;
            };
            // Counts in `before` mean the rule left its slot here: they are final.
            if let Some(counts) = counts_from(before, entry.seq) {
                life.counts = Some(counts);
            }
            let when = at.map_or_else(String::new, |t| format!(" at {t}"));
            let targets =
                |v: &Value| [strings(&v["territories"]), strings(&v["prefixes"])].concat();
            life.changes.push(format!(
                "{}{when} (audit seq {}): {} → {}",
                entry.action,
                entry.seq,
                targets(before).join(", "),
                targets(after).join(", ")
            ));
            life.territories = strings(&after["territories"]);
            life.prefixes = strings(&after["prefixes"]);
            life.slot = after["slot"].as_u64().and_then(|s| u8::try_from(s).ok());
        }
        for v in list(entry, "rules_removed") {
            let Some(life) = lives
                .iter_mut()
                .rev()
                .find(|l| l.removed.is_none() && l.same(v))
            else {
                continue;
            };
            life.removed = at;
            life.removed_by = Some(format!("{} (audit seq {})", entry.action, entry.seq));
            if let Some(counts) = counts_from(v, entry.seq) {
                life.counts = Some(counts);
            }
        }
    }
    lives
}
