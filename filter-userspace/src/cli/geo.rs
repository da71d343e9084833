//! `geofence geo load`, `geofence geo lookup` and `geofence geo diff`.

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use super::args::{FormatArg, GeoCommand, GeoDiffArgs};
use crate::{
    change::{Ctx, GeoRequest, generation_name, kernel_ranges, load_geo, provenance_text, scopes},
    geo::{
        self, Format,
        diff::{self, Change, Ranges},
    },
    kernel::{self, Kernel},
    state::State,
    territory::Territory,
};

/// Territory pairs `geo load` shows per family.
const LOAD_TOP: usize = 10;

pub fn run(ctx: &Ctx, command: GeoCommand) -> anyhow::Result<()> {
    match command {
        GeoCommand::Load {
            files,
            format,
            territory,
            locate_by,
        } => load(ctx, files, format, territory, locate_by.map(Into::into)),
        GeoCommand::Lookup { addr } => lookup(ctx, addr),
        GeoCommand::Diff(args) => diff(ctx, args),
    }
}

fn format_of(format: FormatArg) -> Format {
    format.into()
}

/// Every line of `text` indented by two spaces.
fn indented(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

fn load(
    ctx: &Ctx,
    files: Vec<std::path::PathBuf>,
    format: FormatArg,
    territory: Option<Territory>,
    locate_by: Option<geo::LocateBy>,
) -> anyhow::Result<()> {
    let request = GeoRequest {
        files,
        format: format_of(format),
        territory: territory.map(|t| t.to_string()),
        locate_by,
    };
    let progress = super::progress::start();
    let phase = |what: &str| {
        if let Some(p) = &progress {
            p.phase(what);
        }
    };
    let done = load_geo(ctx, &request, None, None, &phase)?;
    drop(progress);
    println!(
        "loaded {} IPv4 and {} IPv6 prefixes for {} territories from {} file{} in {:.2}s \
         (parse {:.2}s, kernel {:.2}s); table {} is now active",
        done.loaded.prefixes_v4,
        done.loaded.prefixes_v6,
        done.territories,
        request.files.len(),
        super::meeting::plural(request.files.len()),
        done.total.as_secs_f64(),
        done.parse.as_secs_f64(),
        (done.total - done.parse).as_secs_f64(),
        generation_name(done.loaded.generation),
    );
    let replaced = generation_name(1 - done.loaded.generation);
    match &done.change {
        Ok(change) => {
            println!("against table {replaced}, which it replaced:");
            print!("{}", indented(&diff::text(change, LOAD_TOP)));
        }
        Err(why) => println!("what changed against table {replaced} is unknown: {why}"),
    }
    Ok(())
}

fn lookup(ctx: &Ctx, addr: std::net::IpAddr) -> anyhow::Result<()> {
    let kernel = Kernel::open(&ctx.pin_dir)?;
    let generation = kernel::active_generation(&kernel)?;
    let found = kernel::geo_lookup(&kernel, addr).context("looking up the address")?;
    match found {
        Some(id) => println!(
            "{addr}: {} (table {})",
            Territory::from_id(id),
            generation_name(generation)
        ),
        None => println!(
            "{addr}: unknown (no entry in table {})",
            generation_name(generation)
        ),
    }
    Ok(())
}

fn file_list(files: &[std::path::PathBuf]) -> String {
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    names.join(", ")
}

/// The table in force as runs, and how to name it: the kernel's active generation, which
/// the state's record describes.
fn table_in_force(ctx: &Ctx, state: Option<&State>) -> anyhow::Result<(Ranges, String, Value)> {
    if !Kernel::exists(&ctx.pin_dir) {
        bail!(
            "no table is in force: no geofence maps under {} (is --pin-dir right? give the old \
             table's files with --old FILE)",
            ctx.pin_dir.display()
        );
    }
    kernel::check_privileges()?;
    let kernel = Kernel::open(&ctx.pin_dir)?;
    let generation = kernel::active_generation(&kernel)?;
    let ranges = kernel_ranges(&kernel, generation).context("reading the table in force")?;
    let record = state.and_then(|s| s.geo.as_ref());
    let name = format!("the table in force (table {})", generation_name(generation));
    let label = match record {
        Some(r) => format!("{name}: {}", provenance_text(r)),
        None => format!("{name}, which no `geo load` recorded"),
    };
    let described = json!({ "in_force": generation_name(generation), "record": record });
    Ok((ranges, label, described))
}

fn diff(ctx: &Ctx, args: GeoDiffArgs) -> anyhow::Result<()> {
    let territory = args.territory.map(|t| t.to_string());
    // Both tables are read as `geo load` would read them.
    let options = geo::LoadOptions {
        format: format_of(args.format),
        territory: territory.as_deref(),
        locate_by: args.locate_by.map(Into::into),
    };
    let new = geo::load_files_with(&args.files, &options).context("reading the new table")?;
    // The rules in force, if the state can be read: the moves stand without them.
    let state = State::load(&ctx.state_dir);
    let (old, old_label, old_json) = if args.old.is_empty() {
        table_in_force(ctx, state.as_ref().ok())?
    } else {
        let old =
            geo::load_files_with(&args.old, &options).context("reading the old table (--old)")?;
        let json = json!({ "files": args.old });
        (Ranges::of_table(&old), file_list(&args.old), json)
    };
    let scopes = match &state {
        Ok(state) => scopes(state, ctx.clock.wall()),
        Err(e) => {
            eprintln!("warning: the rules in force are left out: {e:#}");
            Vec::new()
        }
    };
    let change = Change::of(&diff::diff(&old, &Ranges::of_table(&new)), &scopes);
    if args.json {
        let mut v = diff::json(&change);
        v["old"] = old_json;
        v["new"] = json!({ "files": args.files });
        v["rules_unavailable"] = json!(state.err().map(|e| format!("{e:#}")));
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!("from {old_label}");
    println!("to {}", file_list(&args.files));
    print!("{}", diff::text(&change, args.top));
    Ok(())
}
