//! The one path every change takes: lock, load, validate, apply, record. If applying fails
//! part way, the previous state is put back, so nothing is left half-applied.

use std::path::PathBuf;

mod geo;
pub use geo::{
    GeoLoaded, GeoRequest, generation_name, kernel_ranges, load_geo, provenance_text, scopes,
    short_sha, source_records,
};

use anyhow::Context as _;
use serde_json::{Value, json};

use crate::{
    audit, clock,
    expiry::Clock,
    kernel::{self, Kernel},
    lock::Lock,
    rule_slots::{self, PlacedRule, RuleChanges},
    state::{self, State},
};

#[derive(Clone)]
pub struct Ctx {
    pub pin_dir: PathBuf,
    pub state_dir: PathBuf,
    /// The command's one clock reading: what it decides by time, and the end times it
    /// converts for the program, go by this.
    pub clock: Clock,
}

/// Held for the duration of one change.
pub struct Session {
    pub kernel: Kernel,
    pub state: State,
    _lock: Lock,
}

impl Ctx {
    /// The same directories with a new clock reading: the daemon's loop takes one a tick.
    pub fn at(&self, clock: Clock) -> Ctx {
        Ctx {
            clock,
            ..self.clone()
        }
    }

    /// The command's wall time, to the second, for the records people read.
    pub fn now(&self) -> jiff::Timestamp {
        clock::rounded(self.clock.wall())
    }

    /// Takes the lock and opens state and maps.
    pub fn begin(&self) -> anyhow::Result<Session> {
        kernel::check_privileges()?;
        state::ensure_dir(&self.state_dir)?;
        let lock = Lock::acquire(&self.state_dir)?;
        let state = State::load(&self.state_dir)?;
        let kernel = Kernel::open(&self.pin_dir)?;
        Ok(Session {
            kernel,
            state,
            _lock: lock,
        })
    }

    /// Applies `edit` to the rules: it validates and edits a copy of the state and returns
    /// the audit details; then the maps are synced and the state saved.
    pub fn change(
        &self,
        action: &str,
        edit: impl FnOnce(&mut State) -> anyhow::Result<serde_json::Value>,
    ) -> anyhow::Result<State> {
        let mut session = self.begin()?;
        let old = session.state.clone();
        let mut new = old.clone();
        let details = edit(&mut new)?;
        rule_slots::assign(&rule_slots::as_synced(&old)?, &mut new)?;
        self.commit(
            &mut session.kernel,
            &old,
            &new,
            action,
            details,
            &self.clock,
        )?;
        Ok(new)
    }

    /// Makes `new` the state: rule slots assigned, maps synced, state saved, and the audit
    /// entry written with `details` plus the rules added, removed and changed. A rule that
    /// ends here has its final per-rule counts read into the entry first; a rule that
    /// starts on a slot gets it zeroed before the policy naming it is written.
    pub fn commit(
        &self,
        kernel: &mut Kernel,
        old: &State,
        new: &State,
        action: &str,
        details: serde_json::Value,
        clock: &Clock,
    ) -> anyhow::Result<()> {
        // Slots as the kernel has them: a state saved before slots were recorded gets them
        // as sync derives them, so its rules keep their counters.
        let before = rule_slots::as_synced(old)?;
        let mut new = new.clone();
        rule_slots::assign(&before, &mut new)?;
        let changes = rule_slots::diff(&before, &new);
        let ended = final_counts(kernel, &changes)?;
        for (session, slot) in changes.started_slots() {
            kernel::reset_rule_counts(kernel, session, slot)?;
        }
        if let Err(error) = kernel::sync(kernel, &new, clock) {
            return Err(restore(kernel, old, error, clock));
        }
        if let Err(error) = new.save(&self.state_dir) {
            return Err(restore(kernel, old, error, clock));
        }
        // Freed slots are zeroed too, so nothing reading the maps sees a past rule's counts.
        let started = changes.started_slots();
        for (_, (session, slot)) in changes.ended_slots() {
            if !started.contains(&(session, slot)) {
                kernel::reset_rule_counts(kernel, session, slot)?;
            }
        }
        let details = with_rule_changes(details, &changes, ended);
        audit::append(&self.state_dir, action, details)
            .context("recording the change in the audit log")?;
        Ok(())
    }
}

/// Each ending rule's record with its final counts, read before anything is changed.
fn final_counts(kernel: &Kernel, changes: &RuleChanges) -> anyhow::Result<Vec<Value>> {
    let mut out = Vec::new();
    for (rule, (session, slot)) in changes.ended_slots() {
        let counts = kernel::read_rule_counts(kernel, session, slot)
            .with_context(|| format!("reading the final counts of order {}", rule.rule.order))?;
        let mut record = rule.to_json();
        record["counts"] = counts.to_json();
        out.push(record);
    }
    Ok(out)
}

fn with_rule_changes(details: Value, changes: &RuleChanges, ended: Vec<Value>) -> Value {
    let mut details = details;
    if !changes.added.is_empty() {
        let added = changes.added.iter().map(PlacedRule::to_json).collect();
        details = audit::with_field(details, "rules_added", Value::Array(added));
    }
    if !changes.removed.is_empty() {
        // Removed rules that held a slot appear with their counts.
        let removed = changes
            .removed
            .iter()
            .map(|r| {
                ended
                    .iter()
                    .find(|e| same_record(e, r))
                    .cloned()
                    .unwrap_or_else(|| r.to_json())
            })
            .collect();
        details = audit::with_field(details, "rules_removed", Value::Array(removed));
    }
    if !changes.changed.is_empty() {
        let changed = changes
            .changed
            .iter()
            .map(|(before, after)| {
                let mut record = json!({ "before": before.to_json(), "after": after.to_json() });
                if let Some(e) = ended.iter().find(|e| same_record(e, before)) {
                    record["before"] = e.clone();
                }
                record
            })
            .collect();
        details = audit::with_field(details, "rules_changed", Value::Array(changed));
    }
    details
}

fn same_record(record: &Value, rule: &PlacedRule) -> bool {
    record["session"] == rule.session
        && record["slot"] == json!(rule.rule.slot)
        && record["order"] == rule.rule.order.as_str()
        && record["issued"] == rule.rule.issued.to_string().as_str()
}

fn restore(kernel: &mut Kernel, old: &State, error: anyhow::Error, clock: &Clock) -> anyhow::Error {
    match kernel::sync(kernel, old, clock) {
        Ok(_) => error.context("the change was not applied; the previous rules are in force"),
        Err(again) => error.context(format!(
            "the change failed and restoring the previous rules failed too ({again}); run the command again"
        )),
    }
}
