//! `geofence geo load` and `geofence geo lookup`.

use anyhow::Context as _;

use super::args::{FormatArg, GeoCommand};
use crate::{
    change::{Ctx, GeoRequest, generation_name, load_geo},
    geo::Format,
    kernel::{self, Kernel},
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
