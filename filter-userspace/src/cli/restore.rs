//! `geofence restore`: rebuilds the kernel state from the state directory alone, after a
//! reboot emptied bpffs. The territory table is reloaded from the files recorded by
//! `geo load`, the session maps are synced to the meetings and rules, and every recorded
//! attachment whose link pin is missing is attached again. Running it again changes
//! nothing.

use anyhow::{Context as _, anyhow, bail};
use serde_json::{Value, json};

use super::meeting::plural;
use crate::change::{Ctx, generation_name};
use crate::{
    geo::{self, Format, GeoTable},
    kernel::{self, AttachMode, Kernel},
    lock::Lock,
    state::{Attachment, GeoRecord, STATE_FILE, State},
};

pub fn restore(ctx: &Ctx) -> anyhow::Result<()> {
    kernel::check_privileges()?;
    let state_file = ctx.state_dir.join(STATE_FILE);
    if !state_file.is_file() {
        bail!(
            "nothing to restore: there is no state file at {} (is --state-dir right?)",
            state_file.display()
        );
    }
    // The lock, the state and the geo files are all checked before the pin directory or
    // any map is touched, so a restore that cannot be done changes nothing.
    let _lock = Lock::acquire(&ctx.state_dir)?;
    let mut state = State::load(&ctx.state_dir)?;
    let table = match &state.geo {
        Some(record) => Some(parse_geo(record)?),
        None => None,
    };
    let modes = state
        .attachments
        .iter()
        .map(|a| attach_mode(&a.mode))
        .collect::<Vec<_>>();

    let mut kernel = match state.flows {
        Some(flows) => Kernel::open_with_flows(&ctx.pin_dir, flows)?,
        None => Kernel::open(&ctx.pin_dir)?,
    };

    // 1. The territory table, so that rules see the right territories from the start.
    let geo_outcome = match (&table, state.geo.clone()) {
        (Some(table), Some(mut record)) => {
            // What the table in force is built from from now on: the files as they are.
            let sources = crate::change::source_records(table)?;
            let outcome = restore_geo(&mut kernel, table, &record)?;
            if record.generation != outcome.generation
                || record.prefixes_v4 != table.v4.len()
                || record.prefixes_v6 != table.v6.len()
                || record.territories != table.territories().len()
                || record.sources != sources
            {
                record.generation = outcome.generation;
                record.prefixes_v4 = table.v4.len();
                record.prefixes_v6 = table.v6.len();
                record.territories = table.territories().len();
                record.sources = sources;
                state.geo = Some(record);
                state.save(&ctx.state_dir)?;
            }
            Some(outcome)
        }
        _ => None,
    };

    // 2. Sessions, flows, overrides and policies.
    let sync =
        kernel::sync(&mut kernel, &state, &ctx.clock).context("restoring meetings and rules")?;

    // 3. Attachments, each on its own: one that fails does not stop the others.
    let mut outcomes = Vec::with_capacity(state.attachments.len());
    for (attachment, mode) in state.attachments.iter().zip(modes) {
        outcomes.push(reattach(ctx, &mut kernel, attachment, mode));
    }

    let now = ctx.clock.wall();
    let rules: usize = state.meetings.values().map(|m| m.rules.len()).sum();
    let expired: usize = state
        .meetings
        .values()
        .flat_map(|m| &m.rules)
        .filter(|r| r.expired(now))
        .count();
    let allows: usize = state.meetings.values().map(|m| m.allows.len()).sum();
    let flows: usize = state.meetings.values().map(|m| m.flows.len()).sum();

    crate::audit::append(
        &ctx.state_dir,
        "restore",
        json!({
            "meetings": state.meetings.len(),
            "rules": rules,
            "expired_rules": expired,
            "allows": allows,
            "flows": flows,
            "entries_written": sync.written,
            "entries_removed": sync.removed,
            "geo": geo_outcome.as_ref().zip(state.geo.as_ref()).map(|(o, g)| json!({
                "files": g.files,
                "reloaded": o.reloaded,
                "table": generation_name(o.generation),
                "prefixes_v4": g.prefixes_v4,
                "prefixes_v6": g.prefixes_v6,
                "sources": g.sources,
            })),
            "attachments": outcomes.iter().map(Outcome::to_json).collect::<Vec<Value>>(),
        }),
    )?;

    print_summary(&state, &geo_outcome, &sync, &outcomes, (rules, expired));
    let failed: Vec<String> = outcomes
        .iter()
        .filter(|o| o.result.is_err())
        .map(|o| o.label.clone())
        .collect();
    if !failed.is_empty() {
        bail!(
            "{} of {} attachment{} could not be restored: {} (the rules and the other \
             attachments are in place; fix the cause and run `geofence restore` again)",
            failed.len(),
            outcomes.len(),
            plural(outcomes.len()),
            failed.join(", ")
        );
    }
    Ok(())
}

/// Parses the recorded geo files as `geo load` did; an error names the file.
pub(super) fn parse_geo(record: &GeoRecord) -> anyhow::Result<GeoTable> {
    let advice = "nothing was changed; if the table's files moved or changed, load them \
                  again with `geofence geo load FILE...`, then run `geofence restore`";
    for file in &record.files {
        if !file.exists() {
            bail!(
                "{}: the territory table file recorded by `geo load` at {} is gone; {advice}",
                file.display(),
                record.loaded
            );
        }
    }
    let format: Format = record.format.parse().with_context(|| {
        format!("the state file records an unknown territory table format; {advice}")
    })?;
    let options = geo::LoadOptions {
        format,
        territory: record.territory.as_deref(),
        locate_by: record.locate_by,
    };
    geo::load_files_with(&record.files, &options).map_err(|error| {
        anyhow!(
            "{error}: the territory table recorded by `geo load` at {} cannot be reloaded; {advice}",
            record.loaded
        )
    })
}

struct GeoOutcome {
    generation: u32,
    reloaded: bool,
}

/// Loads `table` unless the active generation already holds exactly it.
fn restore_geo(
    kernel: &mut Kernel,
    table: &GeoTable,
    record: &GeoRecord,
) -> anyhow::Result<GeoOutcome> {
    let active = kernel::active_generation(kernel)?;
    if kernel::active_holds(kernel, table)? {
        return Ok(GeoOutcome {
            generation: active,
            reloaded: false,
        });
    }
    if record.prefixes_v4 != table.v4.len() || record.prefixes_v6 != table.v6.len() {
        eprintln!(
            "warning: the territory table files changed since `geo load` at {}: they held \
             {} IPv4 + {} IPv6 prefixes then and {} + {} now; loading them as they are now",
            record.loaded,
            record.prefixes_v4,
            record.prefixes_v6,
            table.v4.len(),
            table.v6.len()
        );
    }
    let loaded = kernel::load_table(kernel, table).context("reloading the territory table")?;
    Ok(GeoOutcome {
        generation: loaded.generation,
        reloaded: true,
    })
}

fn attach_mode(name: &str) -> Result<AttachMode, String> {
    match name {
        "native" => Ok(AttachMode::Native),
        "skb" => Ok(AttachMode::Skb),
        other => Err(format!(
            "the state file records an unknown attach mode `{other}`"
        )),
    }
}

enum Done {
    AlreadyAttached,
    Attached,
}

struct Outcome {
    label: String,
    attachment: Attachment,
    result: Result<Done, String>,
}

impl Outcome {
    fn to_json(&self) -> Value {
        let a = &self.attachment;
        let (outcome, error) = match &self.result {
            Ok(Done::AlreadyAttached) => ("already attached", None),
            Ok(Done::Attached) => ("re-attached", None),
            Err(e) => ("failed", Some(e.clone())),
        };
        json!({
            "interface": a.interface,
            "netns": a.netns,
            "mode": a.mode,
            "outcome": outcome,
            "error": error,
        })
    }
}

fn reattach(
    ctx: &Ctx,
    kernel: &mut Kernel,
    attachment: &Attachment,
    mode: Result<AttachMode, String>,
) -> Outcome {
    let netns = attachment.netns.as_deref();
    let result = if kernel::link_pinned(&ctx.pin_dir, &attachment.interface, netns) {
        Ok(Done::AlreadyAttached)
    } else {
        mode.and_then(|mode| {
            kernel::attach(kernel, &attachment.interface, netns, mode)
                .map(|()| Done::Attached)
                .map_err(|e| format!("{e:#}"))
        })
    };
    Outcome {
        label: attachment.label(),
        attachment: attachment.clone(),
        result,
    }
}

fn print_summary(
    state: &State,
    geo: &Option<GeoOutcome>,
    sync: &kernel::SyncReport,
    outcomes: &[Outcome],
    (rules, expired): (usize, usize),
) {
    let meetings = state.meetings.len();
    let expired_note = if expired > 0 {
        format!(" ({expired} expired, kept as expired)")
    } else {
        String::new()
    };
    println!(
        "restored {meetings} meeting{} with {rules} rule{}{expired_note}: \
         {} map entr{} written, {} removed",
        plural(meetings),
        plural(rules),
        sync.written,
        if sync.written == 1 { "y" } else { "ies" },
        sync.removed
    );
    match (geo, &state.geo) {
        (Some(outcome), Some(record)) => {
            let what = if outcome.reloaded {
                "reloaded"
            } else {
                "already loaded"
            };
            println!(
                "territory table {what}: {} IPv4 + {} IPv6 prefixes for {} territories from {} \
                 file{}; table {} is active",
                record.prefixes_v4,
                record.prefixes_v6,
                record.territories,
                record.files.len(),
                plural(record.files.len()),
                generation_name(outcome.generation)
            );
        }
        _ => println!("no territory table recorded: every source is `unknown`"),
    }
    if outcomes.is_empty() {
        println!("no interfaces recorded (geofence attach IFACE)");
        return;
    }
    for outcome in outcomes {
        let mode = &outcome.attachment.mode;
        match &outcome.result {
            Ok(Done::AlreadyAttached) => {
                println!("  {:<24} already attached (link pinned)", outcome.label)
            }
            Ok(Done::Attached) => println!("  {:<24} re-attached ({mode} mode)", outcome.label),
            Err(e) => println!("  {:<24} FAILED: {e}", outcome.label),
        }
    }
    let attached = outcomes
        .iter()
        .filter(|o| matches!(o.result, Ok(Done::Attached)))
        .count();
    let failed = outcomes.iter().filter(|o| o.result.is_err()).count();
    if attached == 0 && failed == 0 {
        println!(
            "nothing needed re-attaching: {} interface{} already attached",
            outcomes.len(),
            plural(outcomes.len())
        );
    } else {
        println!(
            "{attached} of {} interface{} re-attached{}",
            outcomes.len(),
            plural(outcomes.len()),
            if failed > 0 {
                format!(", {failed} failed")
            } else {
                String::new()
            }
        );
    }
}
