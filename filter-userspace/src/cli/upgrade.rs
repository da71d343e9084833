//! `geofence upgrade`: puts this build's program and maps in place of the running ones
//! without a moment unfiltered, whatever layout the old maps have. The new maps are filled
//! from the state directory as `restore` fills them, then every attached interface is
//! moved onto the new program in one kernel call each (`kernel::upgrade` has the order of
//! the steps and why any interruption is finished by running it again).

use anyhow::{Context as _, bail};
use serde_json::json;

use super::args::UpgradeArgs;
use super::meeting::plural;
use super::restore::parse_geo;
use crate::{
    change::{Ctx, generation_name},
    kernel::{self, Kernel, flow_table, upgrade},
    lock::Lock,
    state::{STATE_FILE, State},
};

pub fn upgrade(ctx: &Ctx, args: UpgradeArgs) -> anyhow::Result<()> {
    kernel::check_privileges()?;
    let asked = args.flows.map(flow_table::check).transpose()?;
    let state_file = ctx.state_dir.join(STATE_FILE);
    if !state_file.is_file() {
        bail!(
            "nothing to upgrade from: there is no state file at {} (is --state-dir right?); \
             the new maps are filled from it",
            state_file.display()
        );
    }
    // Everything that can be checked is checked before a pin is made, as in `restore`.
    let _lock = Lock::acquire(&ctx.state_dir)?;
    let mut state = State::load(&ctx.state_dir)?;
    let table = state.geo.as_ref().map(parse_geo).transpose()?;
    // The flow table keeps the size chosen before (recorded, else as pinned).
    let flows = match asked.or(state.flows) {
        Some(flows) => flows,
        None => flow_table::pinned(&ctx.pin_dir)?.unwrap_or(flow_table::DEFAULT),
    };

    // Nothing attached sees the new program or maps until its links move: a failure before
    // that (the kernel refusing the new program, a table too large) removes them all.
    let prepared = upgrade::stage(&ctx.pin_dir, flows).and_then(|mut staged| {
        let filled = fill(ctx, &state, table.as_ref(), &mut staged)?;
        let program = upgrade::staged_program_id(&mut staged)?;
        Ok((staged, filled, program))
    });
    let (mut staged, (geo_generation, sync, ufrags), program) = match prepared {
        Ok(prepared) => prepared,
        Err(error) => {
            if let Err(e) = upgrade::discard(&upgrade::next_dir(&ctx.pin_dir)) {
                eprintln!("warning: {e:#}; run `geofence upgrade` again to clear it");
            }
            return Err(error.context(
                "preparing the new program and its maps failed; nothing was changed, the old \
                 program keeps running",
            ));
        }
    };
    let moved = upgrade::move_links(&mut staged, &ctx.pin_dir).context(
        "moving the interfaces onto the new program; each one runs either program, with the \
         same rules. Run `geofence upgrade` again to finish",
    )?;
    drop(staged);
    upgrade::commit(&ctx.pin_dir).context(
        "every interface runs the new program, but its pins did not all take the usual names; \
         run `geofence upgrade` again to finish",
    )?;

    // As `restore` does: the state records the table in force as the new maps hold it.
    if let (Some(generation), Some(record), Some(table)) = (geo_generation, &mut state.geo, &table)
    {
        let sources = crate::change::source_records(table)?;
        if record.generation != generation
            || record.prefixes_v4 != table.v4.len()
            || record.prefixes_v6 != table.v6.len()
            || record.territories != table.territories().len()
            || record.sources != sources
        {
            record.generation = generation;
            record.prefixes_v4 = table.v4.len();
            record.prefixes_v6 = table.v6.len();
            record.territories = table.territories().len();
            record.sources = sources;
            state.save(&ctx.state_dir)?;
        }
    }
    if asked.is_some() && state.flows != asked {
        state.flows = asked;
        state.save(&ctx.state_dir)?;
    }

    let links: Vec<_> = moved
        .iter()
        .map(|m| json!({"link": m.link, "from_program": m.from}))
        .collect();
    crate::audit::append(
        &ctx.state_dir,
        "upgrade",
        json!({
            "program": program,
            "links": links,
            "entries_written": sync.written,
            "table": geo_generation.map(generation_name),
            "ufrags_carried": ufrags,
            "flows": flows,
        }),
    )?;

    println!(
        "maps rebuilt from the state: {} entr{} written; {}",
        sync.written,
        if sync.written == 1 { "y" } else { "ies" },
        match geo_generation {
            Some(g) => format!("territory table {} loaded", generation_name(g)),
            None => "no territory table recorded".to_string(),
        }
    );
    println!("flow table: {flows} flows");
    if let Some(ufrags) = ufrags {
        println!("{ufrags} ufrag registration{} carried over", plural(ufrags));
    }
    if moved.is_empty() {
        println!("no interface attached: program {program} is pinned, ready for `geofence attach`");
    }
    for m in &moved {
        println!("  {:<24} program {} -> {program}", m.link, m.from);
    }
    Ok(())
}

/// Fills the staged maps: the territory table, the meetings and rules, and what only the
/// old maps hold. `None` ufrags: the old maps could not be read with this build's layout.
fn fill(
    ctx: &Ctx,
    state: &State,
    table: Option<&crate::geo::GeoTable>,
    staged: &mut Kernel,
) -> anyhow::Result<(Option<u32>, kernel::SyncReport, Option<usize>)> {
    let generation = table
        .map(|t| kernel::load_table(staged, t).map(|loaded| loaded.generation))
        .transpose()
        .context("loading the territory table into the new maps")?;
    // The sync switches to the table the state records: the one just loaded.
    let mut state = state.clone();
    if let (Some(generation), Some(record)) = (generation, state.geo.as_mut()) {
        record.generation = generation;
    }
    let sync = kernel::sync(staged, &state, &ctx.clock).context("writing meetings and rules")?;
    let ufrags = if Kernel::exists(&ctx.pin_dir) {
        match Kernel::open_maps(&ctx.pin_dir, None) {
            Ok(old) => Some(upgrade::carry_runtime(&old, staged)?),
            Err(e) => {
                eprintln!(
                    "warning: the old maps cannot be read with this build's layout ({e:#}); \
                     ufrag registrations are not carried over: the SFU registers them again"
                );
                None
            }
        }
    } else {
        None
    };
    Ok((generation, sync, ufrags))
}
