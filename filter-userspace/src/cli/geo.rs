//! `geofence geo load` and `geofence geo lookup`.

use std::time::Instant;

use anyhow::Context as _;
use serde_json::json;

use super::{
    args::{FormatArg, GeoCommand},
    change::Ctx,
};
use crate::{
    geo::{self, Format},
    kernel::{self, Kernel},
    state::{self, GeoRecord},
    territory::Territory,
};

pub fn run(ctx: &Ctx, command: GeoCommand) -> anyhow::Result<()> {
    match command {
        GeoCommand::Load {
            files,
            format,
            territory,
        } => load(ctx, files, format, territory),
        GeoCommand::Lookup { addr } => lookup(ctx, addr),
    }
}

fn load(
    ctx: &Ctx,
    files: Vec<std::path::PathBuf>,
    format: FormatArg,
    territory: Option<Territory>,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let format = match format {
        FormatArg::Auto => Format::Auto,
        FormatArg::Csv => Format::Csv,
        FormatArg::Mmdb => Format::Mmdb,
        FormatArg::Cidr => Format::Cidr,
    };
    let code = territory.map(|t| t.to_string());
    // Parse and validate everything before taking the lock or touching a map.
    let table = geo::load_files(&files, format, code.as_deref())?;
    // For the audit trail; after parsing, which names an unreadable file best.
    let digests = files
        .iter()
        .map(|f| crate::audit::file_digest(f))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let parsed = started.elapsed();
    let mut session = ctx.begin()?;
    let loaded = kernel::load_table(&mut session.kernel, &table)?;
    let territories = table.territories().len();
    let mut new = session.state.clone();
    new.geo = Some(GeoRecord {
        files: files.clone(),
        format: format.to_string(),
        territory: code,
        loaded: state::now(),
        prefixes_v4: loaded.prefixes_v4,
        prefixes_v6: loaded.prefixes_v6,
        territories,
        generation: loaded.generation,
    });
    new.save(&ctx.state_dir)?;
    let sources: Vec<_> = table
        .sources
        .iter()
        .zip(&digests)
        .map(|(s, (sha256, size))| json!({ "file": s.path, "format": s.format.to_string(), "bytes": size, "sha256": sha256, "rows": s.rows }))
        .collect();
    state::audit(
        &ctx.state_dir,
        "geo load",
        json!({ "sources": sources, "prefixes_v4": loaded.prefixes_v4, "prefixes_v6": loaded.prefixes_v6 }),
    )?;
    let total = started.elapsed();
    println!(
        "loaded {} IPv4 and {} IPv6 prefixes for {territories} territories from {} file{} in {:.2}s \
         (parse {:.2}s, kernel {:.2}s); table {} is now active",
        loaded.prefixes_v4,
        loaded.prefixes_v6,
        files.len(),
        super::meeting::plural(files.len()),
        total.as_secs_f64(),
        parsed.as_secs_f64(),
        (total - parsed).as_secs_f64(),
        generation_name(loaded.generation),
    );
    Ok(())
}

pub(super) fn generation_name(generation: u32) -> &'static str {
    if generation == 0 { "A" } else { "B" }
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
