//! Gathering the report's inputs: the audit trail, its chain check, and the live counters
//! of rules still in force.

use std::path::Path;

use jiff::Timestamp;

use super::{Counts, Provenance, Report, RuleLife, build};
use crate::{
    audit,
    kernel::{self, Kernel},
    sketch,
    state::State,
};

/// The counts of a rule still in the state, read from the kernel now.
fn live_counts(kernel: &Kernel, state: &State, life: &RuleLife) -> Option<Counts> {
    let meeting = state.meetings.get(&life.meeting)?;
    if meeting.session != life.session {
        return None;
    }
    let rule = meeting
        .rules
        .iter()
        .find(|r| r.order == life.order && r.issued == life.issued)?;
    let slot = rule.slot?;
    let c = kernel::read_rule_counts(kernel, life.session, slot).ok()?;
    Some(Counts {
        packets: c.packets,
        bytes: c.bytes,
        distinct_sources: c.distinct_sources,
        registers: sketch::registers_hex(&c.registers),
        source: "live".to_string(),
    })
}

/// The report for `[from, to)` from the trail in `state_dir` and, when given, the live
/// counters in `kernel`, made at `now` (which bounds rules still open).
pub fn report_from(
    state_dir: &Path,
    kernel: Option<&Kernel>,
    unavailable: &str,
    from: Timestamp,
    to: Timestamp,
    now: Timestamp,
) -> anyhow::Result<Report> {
    let entries = audit::read(state_dir)?;
    let chain = match audit::verify(state_dir)? {
        Ok(_) => "intact".to_string(),
        Err(problems) => {
            let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
            format!("NOT intact: {}", shown.join("; "))
        }
    };
    // Slots as the kernel has them, also for rules saved before slots were recorded.
    let state = crate::rule_slots::as_synced(&State::load(state_dir)?)?;
    let live_counters = match kernel {
        Some(_) => format!("read {}", crate::clock::rounded(now)),
        None => format!("not read: {unavailable}"),
    };
    let provenance = Provenance {
        audit_entries: entries.len(),
        first_seq: entries.first().map(|e| e.seq),
        last_seq: entries.last().map(|e| e.seq),
        last_hash: entries.last().map(|e| e.hash.clone()),
        chain,
        live_counters,
    };
    let mut live = |life: &RuleLife| kernel.and_then(|k| live_counts(k, &state, life));
    Ok(build(&entries, from, to, now, &mut live, provenance))
}
