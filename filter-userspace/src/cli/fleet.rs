//! `geofence fleet apply|export|status|audit|report`: the operator's side of fleet mode. Each command
//! is one short exchange with etcd on a current-thread runtime.

use std::fs;

use anyhow::{Context as _, anyhow, bail};

use super::args::{
    ApplyArgs, FleetArgs, FleetAuditCommand, FleetCommand, ReportArgs, ReportFormat,
};
use crate::{
    audit,
    change::Ctx,
    fleet::{
        EtcdArgs,
        document::{self, GeoFile, GeoRef, PolicyDoc, SourceFile},
        history,
        store::{self, RelayView},
    },
    policy_file,
};

pub fn run(ctx: &Ctx, args: FleetArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let etcd = args.etcd.clone();
    runtime
        .block_on(async move {
            match args.command {
                FleetCommand::Apply(a) => apply(ctx, &args.etcd, a).await,
                FleetCommand::Export => export(&args.etcd).await,
                FleetCommand::Status { json } => status(&args.etcd, json).await,
                FleetCommand::Audit(command) => audit(&args.etcd, command).await,
                FleetCommand::Report(a) => report(ctx, &args.etcd, a).await,
            }
        })
        .map_err(|e| etcd.explain(e))
}

async fn apply(ctx: &Ctx, etcd: &EtcdArgs, args: ApplyArgs) -> anyhow::Result<()> {
    let name = args.file.display().to_string();
    let bytes = fs::read(&args.file).with_context(|| format!("reading policy file {name}"))?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|e| anyhow!("{name}: a policy file is UTF-8 text ({e})"))?;
    // The same parser and checks as `geofence apply`.
    let declared = policy_file::parse(&args.file, text, ctx.clock.wall())?;
    let (meetings, local) = document::global_part(&declared);
    if !local.is_empty() {
        println!(
            "note: local to each relay, not part of the fleet policy: {}",
            local.join("; ")
        );
    }
    let geo = declared.geo.as_ref().map(geo_ref).transpose()?;
    let mut client = etcd.connect().await?;
    let (current, _) = store::read_policy(&mut client).await?;
    let (old_geo, old_meetings) = match &current {
        Some(c) => (c.doc.geo.clone(), c.doc.meetings.clone()),
        None => (None, Default::default()),
    };
    let lines = document::diff(old_geo.as_ref(), &old_meetings, geo.as_ref(), &meetings);
    let against = current
        .as_ref()
        .map_or("no fleet policy yet".to_string(), |c| {
            format!("fleet version {} by {}", c.doc.version, c.doc.author)
        });
    if lines.is_empty() && current.is_some() {
        println!("no changes: {against} already says what {name} says");
        return Ok(());
    }
    println!("changes from {name} against {against}:");
    for line in &lines {
        println!("{line}");
    }
    let doc = PolicyDoc {
        version: current.as_ref().map_or(1, |c| c.doc.version + 1),
        author: format!("{}@{}", audit::operator(), audit::host()),
        written: ctx.now(),
        source: SourceFile {
            file: name.clone(),
            sha256: audit::sha256_hex(&bytes),
        },
        prev: current.as_ref().map(|c| c.doc.hash.clone()),
        geo,
        meetings,
        hash: String::new(),
    }
    .seal();
    if args.dry_run {
        println!(
            "dry run: nothing was written (would be version {})",
            doc.version
        );
        return Ok(());
    }
    let read = current.as_ref().map(|c| c.mod_revision);
    match store::write_policy(&mut client, read, &doc).await? {
        Ok(revision) => {
            println!(
                "fleet version {} written (etcd revision {revision}); `geofence fleet status` \
                 shows which relays enforce it",
                doc.version
            );
            Ok(())
        }
        Err(winner) => {
            let who = winner.map_or("the policy was deleted".to_string(), |w| {
                format!(
                    "version {} was written by {} at {}",
                    w.version, w.author, w.written
                )
            });
            bail!(
                "refused: the fleet policy changed after it was read ({against}): {who}. \
                 Nothing was written; run `geofence fleet apply` again to see the diff \
                 against it"
            )
        }
    }
}

/// The table's files by name and SHA-256, read here: what every relay must load.
fn geo_ref(geo: &policy_file::DeclaredGeo) -> anyhow::Result<GeoRef> {
    let files = geo
        .files
        .iter()
        .map(|path| {
            let (sha256, _) = audit::file_digest(path)?;
            let name = path
                .file_name()
                .ok_or_else(|| anyhow!("{}: not a file name", path.display()))?;
            Ok(GeoFile {
                name: name.to_string_lossy().into_owned(),
                sha256,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(GeoRef {
        files,
        format: geo.format.to_string(),
        territory: geo.territory.map(|t| t.to_string()),
    })
}

async fn export(etcd: &EtcdArgs) -> anyhow::Result<()> {
    let mut client = etcd.connect().await?;
    match store::read_policy(&mut client).await?.0 {
        Some(c) => print!("{}", c.doc.to_toml()),
        None => bail!("the fleet has no policy yet: write one with `geofence fleet apply FILE`"),
    }
    Ok(())
}

async fn status(etcd: &EtcdArgs, json: bool) -> anyhow::Result<()> {
    let mut client = etcd.connect().await?;
    let (current, _) = store::read_policy(&mut client).await?;
    let relays = store::read_relays(&mut client).await?;
    let latest = current.as_ref().map(|c| c.doc.version);
    let behind: Vec<&String> = relays
        .iter()
        .filter(|(_, v)| v.status.as_ref().map(|s| s.version) != latest || has_error(v))
        .map(|(name, _)| name)
        .collect();
    if json {
        let value = serde_json::json!({
            "latest": current.as_ref().map(|c| serde_json::json!({
                "version": c.doc.version, "author": c.doc.author,
                "written": c.doc.written, "hash": c.doc.hash,
            })),
            "relays": relays.iter().map(|(name, v)| serde_json::json!({
                "relay": name, "alive": v.alive.is_some(), "alive_info": v.alive, "status": v.status,
            })).collect::<Vec<_>>(),
            "not_latest": behind,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    match &current {
        Some(c) => println!(
            "fleet policy version {} by {} at {}",
            c.doc.version, c.doc.author, c.doc.written
        ),
        None => println!("the fleet has no policy yet"),
    }
    println!(
        "{:<24} {:<6} {:>7} {:>8}  APPLIED / ERROR",
        "RELAY", "ALIVE", "VERSION", "TOOK"
    );
    for (name, v) in &relays {
        let (version, took, note) = match &v.status {
            Some(s) => (
                s.version.to_string(),
                s.took_ms.map_or("-".into(), |ms| format!("{ms}ms")),
                match (&s.error, s.applied) {
                    (Some(e), _) => format!("error: {e}"),
                    (None, Some(at)) => at.to_string(),
                    (None, None) => "-".into(),
                },
            ),
            None => ("-".into(), "-".into(), "no status written".into()),
        };
        let alive = if v.alive.is_some() { "yes" } else { "no" };
        println!("{name:<24} {alive:<6} {version:>7} {took:>8}  {note}");
    }
    match (latest, behind.is_empty()) {
        (Some(n), true) => println!("all {} relays enforce version {n}", relays.len()),
        (Some(n), false) => {
            let names: Vec<&str> = behind.iter().map(|s| s.as_str()).collect();
            println!("not enforcing version {n}: {}", names.join(", "));
        }
        (None, _) => {}
    }
    Ok(())
}

fn has_error(v: &RelayView) -> bool {
    v.status.as_ref().is_some_and(|s| s.error.is_some())
}

async fn audit(etcd: &EtcdArgs, command: FleetAuditCommand) -> anyhow::Result<()> {
    let mut client = etcd.connect().await?;
    let (versions, current) = store::read_history(&mut client).await?;
    match command {
        FleetAuditCommand::Verify => {
            let problems = history::problems(&versions, current.as_deref());
            if !problems.is_empty() {
                for p in &problems {
                    eprintln!("  {p}");
                }
                bail!(
                    "the fleet's audit trail is NOT intact ({} problems)",
                    problems.len()
                );
            }
            match versions.last().and_then(|v| store::decode(&v.bytes).ok()) {
                Some(head) => println!(
                    "intact: {} versions; head version {} {}",
                    versions.len(),
                    head.version,
                    head.hash
                ),
                None => println!("intact: no versions yet"),
            }
        }
        FleetAuditCommand::Show { json } => {
            let mut previous: Option<PolicyDoc> = None;
            let mut rows = Vec::new();
            for stored in &versions {
                let doc = store::decode(&stored.bytes).with_context(|| {
                    format!("{}: run `geofence fleet audit verify`", stored.key)
                })?;
                let empty = std::collections::BTreeMap::new();
                let changes = document::diff(
                    previous.as_ref().and_then(|p| p.geo.as_ref()),
                    previous.as_ref().map_or(&empty, |p| &p.meetings),
                    doc.geo.as_ref(),
                    &doc.meetings,
                );
                rows.push((doc.clone(), changes));
                previous = Some(doc);
            }
            if json {
                let out: Vec<serde_json::Value> = rows
                    .iter()
                    .map(|(d, changes)| {
                        serde_json::json!({
                            "version": d.version, "author": d.author, "written": d.written,
                            "source": d.source.file, "orders": d.orders(), "hash": d.hash,
                            "prev": d.prev, "changes": changes,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&out)?);
                return Ok(());
            }
            if rows.is_empty() {
                println!("no fleet versions yet");
            }
            for (d, changes) in rows {
                println!(
                    "version {}  {}  {}  from {}  orders: {}",
                    d.version,
                    crate::clock::rounded(d.written),
                    d.author,
                    d.source.file,
                    d.orders().join(", ")
                );
                for line in changes {
                    println!("    {line}");
                }
            }
        }
    }
    Ok(())
}

async fn report(ctx: &Ctx, etcd: &EtcdArgs, args: ReportArgs) -> anyhow::Result<()> {
    let from = crate::report::parse_date(&args.from, false).map_err(|e| anyhow!("--from {e}"))?;
    let to = crate::report::parse_date(&args.to, true).map_err(|e| anyhow!("--to {e}"))?;
    if from >= to {
        bail!("--from {from} is not before --to {to}: the period is empty");
    }
    let mut client = etcd.connect().await?;
    let (versions, current) = store::read_history(&mut client).await?;
    let relays = store::read_relays(&mut client).await?;
    let fleet =
        crate::fleet::report::build(&versions, current.as_deref(), &relays, from, to, ctx.now());
    match args.format {
        ReportFormat::Md => {
            print!("{}", crate::fleet::report::markdown(&fleet));
        }
        ReportFormat::Csv => {
            print!("{}", crate::report::csv(&fleet.report));
            // CSV has no place for them: said beside it, so that no one misses them.
            for line in crate::fleet::report::warnings(&fleet.relays) {
                eprintln!("{line}");
            }
        }
        ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&fleet)?),
    }
    Ok(())
}
