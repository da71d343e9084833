//! Many relays against one etcd: each runs the daemon's own fleet loop
//! (`geofence::fleet::agent::Agent`: lease, list, apply, status, watch) with a
//! [`MemoryRelay`] for its kernel, in one process. A watch on the relays' keys notes when
//! each status arrives; `geofence fleet apply` writes each version, as an operator does.

use std::{
    collections::HashMap,
    path::Path,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use etcd_client::{EventType, WatchOptions};
use geofence::fleet::{EtcdArgs, RelayStatus, agent::Agent, keys};
use geofence_tests::{
    etcd::Etcd,
    fleet::{fleet_ok, write_policy},
};

use super::memory::MemoryRelay;

/// How long the relays may take to reach a version before the bench gives up.
const LIMIT: Duration = Duration::from_secs(60);

/// One apply's figures.
pub struct Sample {
    /// From `fleet apply` returning to the last relay's status showing the version.
    pub converged: Duration,
    /// etcd's committed proposals (its writes) from the apply's start to that status.
    pub writes: u64,
    /// From the apply's start to the last status: the window the writes fall in.
    pub window: Duration,
}

/// The version each relay's status key last showed, and when the bench saw it.
type Seen = Arc<Mutex<HashMap<String, (u64, Instant)>>>;

/// Runs `relays` simulated relays, waits until each enforces the current version, then
/// makes `applies` versions and measures each.
pub fn run(etcd: &Etcd, relays: usize, applies: usize, dir: &Path) -> anyhow::Result<Vec<Sample>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let endpoints = etcd.endpoints();
    let args = EtcdArgs {
        endpoints: endpoints.split(',').map(str::to_owned).collect(),
        etcd_ca: None,
        etcd_cert: None,
        etcd_key: None,
    };
    let names: Vec<String> = (0..relays).map(|i| format!("sim{relays}-{i:03}")).collect();
    let seen = Seen::default();
    let watcher = runtime.block_on(watch_statuses(args.clone(), seen.clone()))?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    for name in &names {
        let agent = Agent::new(
            name.clone(),
            args.clone(),
            MemoryRelay::new()?,
            jiff::Timestamp::now,
        );
        tasks.push(runtime.spawn(agent.run(stopped.clone())));
    }
    let result = measure(etcd, &names, &seen, applies, dir);
    let _ = stop.send(true);
    runtime.block_on(async {
        for task in tasks {
            let _ = task.await;
        }
    });
    watcher.abort();
    result
}

fn measure(
    etcd: &Etcd,
    names: &[String],
    seen: &Seen,
    applies: usize,
    dir: &Path,
) -> anyhow::Result<Vec<Sample>> {
    let endpoints = etcd.endpoints();
    let latest = latest_version(&endpoints)?;
    wait_all(names, seen, latest).context("the simulated relays did not start")?;
    let mut samples = Vec::new();
    for j in 0..applies {
        // Each version blocks another territory on town-hall, under its own order.
        let territory = ["XA", "XB", "XC"][j % 3];
        let order = format!("ORD-SIM-{}-{j}", names.len());
        let file = write_policy(
            dir,
            &format!("sim-{j}"),
            &order,
            &[("town-hall", &[territory])],
        )?;
        let before = proposals(etcd)?;
        let started = Instant::now();
        let (out, returned) = fleet_ok(&endpoints, &["apply", &file])?;
        let version = written_version(&out)?;
        let last = wait_all(names, seen, version)?;
        let after = proposals(etcd)?;
        samples.push(Sample {
            converged: last.saturating_duration_since(returned),
            writes: after.saturating_sub(before),
            window: last.saturating_duration_since(started),
        });
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(samples)
}

/// Watches every relay's status key from now on, noting each version and when it came.
async fn watch_statuses(args: EtcdArgs, seen: Seen) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let mut client = args.connect().await?;
    let mut stream = client
        .watch(keys::RELAYS, Some(WatchOptions::new().with_prefix()))
        .await
        .context("watching the relays' keys")?;
    // The first message says the watch exists: nothing written after it is missed.
    stream
        .message()
        .await
        .context("creating the watch")?
        .context("the watch ended")?;
    Ok(tokio::spawn(async move {
        let _client = client;
        while let Ok(Some(resp)) = stream.message().await {
            let at = Instant::now();
            for event in resp.events() {
                let Some(kv) = event.kv() else { continue };
                if event.event_type() != EventType::Put || !kv.key().ends_with(b"/status") {
                    continue;
                }
                if let Ok(status) = serde_json::from_slice::<RelayStatus>(kv.value()) {
                    let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
                    seen.insert(status.relay, (status.version, at));
                }
            }
        }
    }))
}

/// Waits until every relay's status shows `version`; returns when the last one came.
fn wait_all(names: &[String], seen: &Seen, version: u64) -> anyhow::Result<Instant> {
    let started = Instant::now();
    loop {
        {
            let seen = seen.lock().unwrap_or_else(|e| e.into_inner());
            let arrivals: Option<Vec<Instant>> = names
                .iter()
                .map(|n| {
                    seen.get(n)
                        .filter(|(v, _)| *v == version)
                        .map(|(_, at)| *at)
                })
                .collect();
            if let Some(arrivals) = arrivals {
                return arrivals.into_iter().max().context("no relays");
            }
        }
        if started.elapsed() > LIMIT {
            let seen = seen.lock().unwrap_or_else(|e| e.into_inner());
            let behind = names
                .iter()
                .filter(|n| seen.get(*n).is_none_or(|(v, _)| *v != version))
                .count();
            bail!(
                "{behind} of {} relays not on version {version} after {LIMIT:?}",
                names.len()
            );
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn latest_version(endpoints: &str) -> anyhow::Result<u64> {
    let status = geofence_tests::fleet::FleetStatus::read(endpoints)?;
    Ok(status.latest.unwrap_or(0))
}

/// The version `fleet apply` says it wrote.
fn written_version(out: &str) -> anyhow::Result<u64> {
    out.lines()
        .find_map(|l| {
            l.strip_prefix("fleet version ")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .with_context(|| format!("`fleet apply` wrote no version: {out}"))
}

/// etcd's count of committed raft proposals: every write, from its /metrics.
fn proposals(etcd: &Etcd) -> anyhow::Result<u64> {
    use std::io::{Read as _, Write as _};
    let address = etcd.url(0).trim_start_matches("http://").to_owned();
    let mut stream = std::net::TcpStream::connect(&address)
        .with_context(|| format!("connecting to etcd's metrics at {address}"))?;
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: {address}\r\n\r\n")?;
    let mut body = String::new();
    stream.read_to_string(&mut body)?;
    body.lines()
        .find_map(|l| {
            let value = l.strip_prefix("etcd_server_proposals_committed_total ")?;
            value.trim().parse::<f64>().ok()
        })
        .map(|v| v as u64)
        .context("no etcd_server_proposals_committed_total in etcd's metrics")
}
