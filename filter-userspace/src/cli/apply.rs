//! `geofence apply FILE.toml [--dry-run]`.
//!
//! apply parses and checks the whole file (and reads its territory table files) before
//! taking the lock; under the lock it computes the diff against the current state, prints
//! it, and applies it as one change: the table load (if the sources differ), the maps, the
//! state file and one audit entry. If the maps or the state cannot be written, the previous
//! rules and table are put back.

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, anyhow};
use jiff::Timestamp;
use serde_json::json;
use sha2::{Digest as _, Sha256};

use super::args::ApplyArgs;
use crate::change::{Ctx, generation_name};
use crate::{
    geo::{self, GeoTable},
    kernel::{self, Kernel},
    lock::Lock,
    policy_file::{self, DeclaredGeo, Plan},
    state::{GeoRecord, State},
};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn apply(ctx: &Ctx, args: ApplyArgs) -> anyhow::Result<()> {
    let name = args.file.display().to_string();
    let bytes = fs::read(&args.file).with_context(|| format!("reading policy file {name}"))?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|e| anyhow!("{name}: a policy file is UTF-8 text ({e})"))?;
    let sha256 = hex(&Sha256::digest(&bytes));
    let declared = policy_file::parse(&args.file, text, ctx.clock.wall())?;
    // The table's files are read and checked before anything is locked or touched.
    let table = match &declared.geo {
        Some(want) => {
            let _progress = super::progress::start();
            Some(read_table(want)?)
        }
        None => None,
    };
    if args.dry_run {
        return dry_run(ctx, &declared, table.as_ref(), &name);
    }
    let mut session = ctx.begin()?;
    let old = session.state.clone();
    let (mut plan, reload) = prepare(ctx, &old, Some(&session.kernel), &declared, table.as_ref())?;
    if !show(&plan, &name) {
        return Ok(());
    }
    let kernel = &mut session.kernel;
    let previous = kernel::active_generation(kernel)?;
    let mut loaded_now = None;
    if let (true, Some(want), Some(table)) = (reload, &declared.geo, &table) {
        let record = load(kernel, want, table, previous, ctx.now())?;
        loaded_now = Some(record.generation);
        plan.new.geo = Some(record);
    }
    let file = std::path::absolute(&args.file).unwrap_or_else(|_| args.file.clone());
    let mut details = json!({
        "file": file,
        "sha256": sha256,
        "summary": plan.summary.to_json(),
        "changes": plan.changes.iter().map(ToString::to_string).collect::<Vec<_>>(),
    });
    if let (Some(_), Some(table)) = (loaded_now, &table) {
        details["geo_sources"] = geo_sources(table);
    }
    // The sync in the commit switches to the staged table with the rules, in one store.
    if let Err(error) = ctx.commit(kernel, &old, &plan.new, "apply", details, &ctx.clock) {
        // Only if the new state did not reach the disk: a failed audit append comes after.
        let saved = State::load(&ctx.state_dir).is_ok_and(|s| s == plan.new);
        if loaded_now.is_some()
            && !saved
            && let Err(again) = kernel::activate_generation(kernel, previous)
        {
            return Err(error.context(format!(
                "switching back to territory table {} failed too ({again:#})",
                generation_name(previous)
            )));
        }
        return Err(error);
    }
    let table_note = loaded_now
        .map(|g| format!("; territory table {} is now active", generation_name(g)))
        .unwrap_or_default();
    println!("applied {name}: {}{table_note}", plan.summary);
    Ok(())
}

/// Prints the diff against the current state and changes nothing.
fn dry_run(
    ctx: &Ctx,
    declared: &policy_file::Declared,
    table: Option<&GeoTable>,
    name: &str,
) -> anyhow::Result<()> {
    let _lock = match ctx.state_dir.is_dir() {
        true => Some(Lock::acquire(&ctx.state_dir)?),
        false => None,
    };
    let state = State::load(&ctx.state_dir)?;
    // Opening the maps would create them: a dry run only looks if they exist.
    let kernel = match Kernel::exists(&ctx.pin_dir) {
        true => Some(Kernel::open(&ctx.pin_dir)?),
        false => None,
    };
    let (plan, _) = prepare(ctx, &state, kernel.as_ref(), declared, table)?;
    if show(&plan, name) {
        println!("dry run: nothing was changed ({})", plan.summary);
    }
    Ok(())
}

/// Loads `table` into the idle generation and switches to it; the record for the state.
fn load(
    kernel: &mut Kernel,
    want: &DeclaredGeo,
    table: &GeoTable,
    previous: u32,
    now: Timestamp,
) -> anyhow::Result<GeoRecord> {
    let progress = super::progress::start();
    if let Some(p) = &progress {
        let next = generation_name(1 - previous);
        p.phase(&format!(
            "building the flattened table and filling table {next}"
        ));
    }
    // Before the load: a file that cannot be read now must not leave a new table in force.
    let sources = crate::change::source_records(table)?;
    // Staged: the switch that puts the new rules in force puts the table in force with
    // them, in one store, so no packet meets the new table under the old rules.
    let loaded = kernel::stage_table(kernel, table).context("loading the territory table")?;
    Ok(GeoRecord {
        files: want.files.clone(),
        format: want.format.to_string(),
        territory: want.territory.map(|t| t.to_string()),
        loaded: now,
        prefixes_v4: loaded.prefixes_v4,
        prefixes_v6: loaded.prefixes_v6,
        territories: table.territories().len(),
        generation: loaded.generation,
        sources,
        locate_by: table.locate_by(),
    })
}

/// The diff of the whole change, and whether the territory table must be loaded.
fn prepare(
    ctx: &Ctx,
    state: &State,
    kernel: Option<&Kernel>,
    declared: &policy_file::Declared,
    table: Option<&GeoTable>,
) -> anyhow::Result<(Plan, bool)> {
    let mut plan = policy_file::plan(state, declared, ctx.now(), &crate::audit::operator())?;
    // Capacity is checked here, before a table is loaded or a map touched.
    crate::model::SessionMaps::derive(&plan.new, &ctx.clock)
        .context("the policy asks for more than the kernel maps hold")?;
    let reload = match (&declared.geo, table) {
        (Some(want), Some(table)) => geo_diff(&mut plan, state.geo.as_ref(), want, table, kernel)?,
        _ => false,
    };
    Ok((plan, reload))
}

/// Prints the diff; false if there is nothing to do.
fn show(plan: &Plan, name: &str) -> bool {
    if plan.changes.is_empty() {
        println!("no changes: the state already matches {name}");
        return false;
    }
    println!("changes to apply from {name}:");
    for change in &plan.changes {
        println!("{change}");
    }
    true
}

fn read_table(want: &DeclaredGeo) -> anyhow::Result<GeoTable> {
    let code = want.territory.map(|t| t.to_string());
    geo::load_files(&want.files, want.format, code.as_deref())
        .map_err(|e| anyhow!("{}: [geo] files: {e}", want.at))
}

/// The loaded table's files as the audit trail records them: which bytes were in force.
fn geo_sources(table: &GeoTable) -> serde_json::Value {
    let sources = table.sources.iter().map(|s| {
        json!({
            "file": s.path,
            "format": s.format.to_string(),
            "bytes": s.bytes,
            "rows": s.rows,
            "sha256": file_sha256(&s.path).unwrap_or_else(|e| format!("unreadable: {e}")),
        })
    });
    serde_json::Value::Array(sources.collect())
}

fn file_sha256(path: &Path) -> std::io::Result<String> {
    use std::io::Read as _;
    let mut file = fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match file.read(&mut buf)? {
            0 => return Ok(hex(&hasher.finalize())),
            n => hasher.update(&buf[..n]),
        }
    }
}

fn same_path(a: &Path, b: &Path) -> bool {
    a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
}

/// Adds the territory table's line to the diff if it must be loaded: other files, format
/// or territory, or files whose contents the active table does not hold (changed on disk,
/// or the maps are new).
fn geo_diff(
    plan: &mut Plan,
    have: Option<&GeoRecord>,
    want: &DeclaredGeo,
    table: &GeoTable,
    kernel: Option<&Kernel>,
) -> anyhow::Result<bool> {
    let territory = want.territory.map(|t| t.to_string());
    let same_source = have.is_some_and(|r| {
        r.files.len() == want.files.len()
            && r.files
                .iter()
                .zip(&want.files)
                .all(|(a, b)| same_path(a, b))
            && r.format == want.format.to_string()
            && r.territory == territory
    });
    let held = match kernel {
        Some(kernel) => kernel::active_holds(kernel, table)?,
        None => false,
    };
    if same_source && held {
        return Ok(false);
    }
    let files = |files: &[PathBuf], format: &str, territory: &Option<String>| {
        let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        let territory = territory
            .as_ref()
            .map(|t| format!(", territory {t}"))
            .unwrap_or_default();
        format!("{} (format {format}{territory})", names.join(", "))
    };
    let now = format!("{} IPv4 + {} IPv6 prefixes", table.v4.len(), table.v6.len());
    let wanted = files(&want.files, want.format.name(), &territory);
    let (sign, text) = match have {
        None => ('+', format!("territory table from {wanted}: {now}")),
        Some(r) if !same_source => {
            let had = files(&r.files, &r.format, &r.territory);
            ('~', format!("territory table from {had} → {wanted}: {now}"))
        }
        Some(r) => (
            '~',
            format!(
                "territory table reloaded from {wanted}: the active table does not hold these \
                 files as they are now ({} + {} prefixes when loaded, {now} now)",
                r.prefixes_v4, r.prefixes_v6
            ),
        ),
    };
    plan.push("territory table", sign, false, text);
    Ok(true)
}
