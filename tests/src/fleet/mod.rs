//! Fleet mode end to end: relays in network namespaces, each with its own pin and state
//! directories and its own `geofence daemon --fleet` ([`Site`]), an etcd on loopback
//! ([`crate::etcd::Etcd`]), and the operator's `geofence fleet` commands. Shared by the fleet
//! tests, `cargo xtask demo --fleet` and the bench's fleet part.

mod daemon;
mod site;

use std::path::Path;
use std::process::{Command, Output};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::cli::geofence_bin;

pub use daemon::Daemon;
pub use site::{Site, expect_blocked, fixture_meetings, fixture_participants, time_to_drop};

/// `geofence fleet --etcd ENDPOINTS ARGS...`, whatever its exit status.
pub fn fleet(endpoints: &str, args: &[&str]) -> Result<Output> {
    Command::new(geofence_bin()?)
        .args(["fleet", "--etcd", endpoints])
        .args(args)
        .output()
        .context("running geofence fleet")
}

/// Like [`fleet`], for a command that must succeed: its stdout, and the instant it had
/// exited.
pub fn fleet_ok(endpoints: &str, args: &[&str]) -> Result<(String, Instant)> {
    let out = fleet(endpoints, args)?;
    let done = Instant::now();
    if !out.status.success() {
        bail!(
            "`geofence fleet {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok((String::from_utf8_lossy(&out.stdout).into_owned(), done))
}

/// One relay as `fleet status --json` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayRow {
    pub relay: String,
    /// Its lease-bound key exists.
    pub alive: bool,
    /// The version its status key says it enforces; None without a status key.
    pub version: Option<u64>,
    pub error: Option<String>,
    pub waiting: Vec<String>,
}

/// `fleet status --json`: the latest version and every relay.
#[derive(Clone, Debug)]
pub struct FleetStatus {
    pub latest: Option<u64>,
    pub relays: Vec<RelayRow>,
    pub json: Value,
}

impl FleetStatus {
    pub fn read(endpoints: &str) -> Result<FleetStatus> {
        let (out, _) = fleet_ok(endpoints, &["status", "--json"])?;
        let json: Value = serde_json::from_str(&out)
            .with_context(|| format!("`fleet status --json` printed no JSON: {out}"))?;
        let relays = json["relays"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|r| RelayRow {
                relay: r["relay"].as_str().unwrap_or_default().to_owned(),
                alive: r["alive"] == true,
                version: r["status"]["version"].as_u64(),
                error: r["status"]["error"].as_str().map(str::to_owned),
                waiting: r["status"]["waiting"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|w| w.as_str().map(str::to_owned))
                    .collect(),
            })
            .collect();
        Ok(FleetStatus {
            latest: json["latest"]["version"].as_u64(),
            relays,
            json,
        })
    }

    pub fn relay(&self, name: &str) -> Option<&RelayRow> {
        self.relays.iter().find(|r| r.relay == name)
    }

    /// Every relay named is alive and enforces `version` without an error.
    pub fn all_on(&self, relays: &[&str], version: u64) -> bool {
        relays.iter().all(|name| {
            self.relay(name)
                .is_some_and(|r| r.alive && r.version == Some(version) && r.error.is_none())
        })
    }
}

/// Waits until `relays` are all alive on `version` (fleet status), within `limit`.
pub fn wait_all_on(
    endpoints: &str,
    relays: &[&str],
    version: u64,
    limit: Duration,
) -> Result<FleetStatus> {
    wait_until(
        &format!("relays {} on version {version}", relays.join(", ")),
        limit,
        || {
            let status = FleetStatus::read(endpoints)?;
            Ok(status.all_on(relays, version).then_some(status))
        },
    )
}

/// Calls `check` every 50 ms until it returns Some, for at most `limit`. Its errors are
/// retried too (etcd may be coming back); the last one is in the timeout's message.
pub fn wait_until<T>(
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let started = Instant::now();
    let mut last: String;
    loop {
        match check() {
            Ok(Some(t)) => return Ok(t),
            Ok(None) => last = "not yet".into(),
            Err(e) => last = format!("{e:#}"),
        }
        if started.elapsed() > limit {
            bail!("{what}: not reached within {limit:?} ({last})");
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// A policy file `NAME.toml` in `dir` blocking, per meeting, the territories given, each
/// meeting's rule under order `ORDER-MEETING`. No endpoints: those are each relay's.
pub fn write_policy(
    dir: &Path,
    name: &str,
    order: &str,
    blocks: &[(&str, &[&str])],
) -> Result<String> {
    let mut text = String::new();
    for (meeting, territories) in blocks {
        let list: Vec<String> = territories.iter().map(|t| format!("\"{t}\"")).collect();
        text.push_str(&format!(
            "[meetings.{meeting}]\n\n[[meetings.{meeting}.rules]]\norder = \"{order}-{meeting}\"\n\
             territories = [{}]\n\n",
            list.join(", ")
        ));
    }
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path.to_string_lossy().into_owned())
}

/// The fleet versions a relay's local audit trail records as applied (`fleet apply`
/// entries), in order.
pub fn applied_versions(state_dir: &Path) -> Result<Vec<u64>> {
    let path = state_dir.join("audit.jsonl");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut versions = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let entry: Value = serde_json::from_str(line)
            .with_context(|| format!("{} line {}: not JSON", path.display(), n + 1))?;
        if entry["action"] == "fleet apply" {
            let version = entry["details"]["fleet_version"]
                .as_u64()
                .with_context(|| format!("{} line {}: no fleet_version", path.display(), n + 1))?;
            versions.push(version);
        }
    }
    Ok(versions)
}
