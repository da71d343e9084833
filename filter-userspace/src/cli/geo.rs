//! `geofence geo load` and `geofence geo lookup`.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
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
    let format = match format {
        FormatArg::Auto => Format::Auto,
        FormatArg::Csv => Format::Csv,
        FormatArg::Mmdb => Format::Mmdb,
        FormatArg::Cidr => Format::Cidr,
    };
    let request = GeoRequest {
        files,
        format,
        territory: territory.map(|t| t.to_string()),
    };
    let progress = super::progress::start();
    let done = load_geo(ctx, &request, None, None, progress.as_ref())?;
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
    Ok(())
}

/// What to load into the territory table.
#[derive(Clone, Debug)]
pub struct GeoRequest {
    pub files: Vec<PathBuf>,
    pub format: Format,
    pub territory: Option<String>,
}

/// What a load did, and how long it took.
#[derive(Debug)]
pub struct GeoLoaded {
    pub loaded: kernel::GeoLoad,
    pub territories: usize,
    /// Reading and parsing the files.
    pub parse: Duration,
    /// Parsing, filling the kernel's table and recording it.
    pub total: Duration,
}

/// The one path of every territory table load (`geo load`, the daemon's reloads): parse and
/// validate every file before taking the lock, fill and switch the table, record it in the
/// state and the audit log. `note` is added to the audit details (why the load happened).
///
/// With `replacing`, the load happens only if the state still records exactly that table
/// once the lock is held: a reload must not overwrite a table an operator loaded meanwhile.
/// `progress` shows the phases to an operator at a terminal.
pub fn load_geo(
    ctx: &Ctx,
    request: &GeoRequest,
    replacing: Option<&GeoRecord>,
    note: Option<&str>,
    progress: Option<&super::progress::Shown>,
) -> anyhow::Result<GeoLoaded> {
    let started = Instant::now();
    // Parse and validate everything before taking the lock or touching a map.
    let table = geo::load_files(&request.files, request.format, request.territory.as_deref())?;
    // For the audit trail; after parsing, which names an unreadable file best.
    let digests = request
        .files
        .iter()
        .map(|f| crate::audit::file_digest(f))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let parse = started.elapsed();
    let mut session = ctx.begin()?;
    if let Some(expected) = replacing
        && session.state.geo.as_ref() != Some(expected)
    {
        bail!("the territory table was replaced while its files were being read; not reloading");
    }
    if let Some(p) = progress {
        let next = generation_name(1 - kernel::active_generation(&session.kernel)?);
        p.phase(&format!(
            "building the flattened table and filling table {next}"
        ));
    }
    let loaded = kernel::load_table(&mut session.kernel, &table)?;
    let territories = table.territories().len();
    let mut new = session.state.clone();
    new.geo = Some(GeoRecord {
        files: request.files.clone(),
        format: request.format.to_string(),
        territory: request.territory.clone(),
        loaded: ctx.now(),
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
    let mut details = json!({ "sources": sources, "prefixes_v4": loaded.prefixes_v4, "prefixes_v6": loaded.prefixes_v6 });
    if let Some(note) = note {
        details["note"] = json!(note);
    }
    state::audit(&ctx.state_dir, "geo load", details)?;
    Ok(GeoLoaded {
        loaded,
        territories,
        parse,
        total: started.elapsed(),
    })
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
