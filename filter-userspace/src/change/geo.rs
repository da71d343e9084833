//! The one path of every territory table load: `geo load`, `apply`'s table and the
//! daemon's reloads.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::bail;
use serde_json::json;

use super::Ctx;
use crate::{
    geo::{self, Format},
    kernel,
    state::GeoRecord,
};

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
/// `phase` is told each phase, for an operator at a terminal.
pub fn load_geo(
    ctx: &Ctx,
    request: &GeoRequest,
    replacing: Option<&GeoRecord>,
    note: Option<&str>,
    phase: &dyn Fn(&str),
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
    let next = generation_name(1 - kernel::active_generation(&session.kernel)?);
    phase(&format!(
        "building the flattened table and filling table {next}"
    ));
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
    crate::audit::append(&ctx.state_dir, "geo load", details)?;
    Ok(GeoLoaded {
        loaded,
        territories,
        parse,
        total: started.elapsed(),
    })
}

/// A table generation's name as operators see it.
pub fn generation_name(generation: u32) -> &'static str {
    if generation == 0 { "A" } else { "B" }
}
