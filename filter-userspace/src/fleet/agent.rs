//! The relay's fleet loop, a task of the daemon: keep a lease-bound liveness key, list the
//! policy at revision R, apply it, write the status key, watch from R+1. Any error (etcd
//! unreachable, watch cancelled or compacted, lease lost) ends the session: after a
//! jittered exponential backoff it starts again from the list, so nothing is ever applied
//! from a watch that may have missed a version. Nothing touches the kernel unless a
//! version was read: an outage leaves the last applied version in force.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use etcd_client::{Client, EventType, PutOptions, WatchOptions};
use jiff::Timestamp;
use tokio::sync::watch as channel;

use super::{
    EtcdArgs, RelayStatus,
    document::PolicyDoc,
    keys,
    relay::Enforcer,
    store::{self, Alive},
};

/// The liveness lease: a relay is shown dead this long after its daemon stops answering.
const LEASE_TTL_SECS: i64 = 10;

pub struct Agent<E: Enforcer> {
    pub relay: String,
    pub etcd: EtcdArgs,
    pub enforcer: Arc<Mutex<E>>,
    /// What the status key says; written only when it changes.
    status: RelayStatus,
    written: Option<RelayStatus>,
}

impl<E: Enforcer> Agent<E> {
    pub fn new(relay: String, etcd: EtcdArgs, enforcer: E) -> Agent<E> {
        let mut status = RelayStatus {
            relay: relay.clone(),
            ..RelayStatus::default()
        };
        // Fail-static across restarts: what was applied before is what is enforced now.
        if let Some((doc, revision)) = enforcer.last() {
            status.version = doc.version;
            status.policy_hash = Some(doc.hash.clone());
            status.revision = revision;
        }
        Agent {
            relay,
            etcd,
            enforcer: Arc::new(Mutex::new(enforcer)),
            status,
            written: None,
        }
    }

    /// Runs until `stopped` turns true.
    pub async fn run(mut self, mut stopped: channel::Receiver<bool>) {
        let mut backoff = Backoff::default();
        loop {
            let outcome = tokio::select! {
                biased;
                _ = stopped.changed() => return,
                r = self.session(&mut backoff) => r,
            };
            let delay = backoff.next();
            if let Err(e) = outcome {
                log::warn!(
                    "fleet: {e:#}; enforcing version {} as before; re-listing in {delay:?}",
                    self.status.version
                );
            }
            // The next session writes the status again: etcd may have lost it.
            self.written = None;
            tokio::select! {
                _ = stopped.changed() => return,
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }

    /// One connection's life: lease, list, apply, watch. Returns only on an error.
    async fn session(&mut self, backoff: &mut Backoff) -> anyhow::Result<()> {
        // The loop's clock readings: one as a connection starts, one as each event arrives;
        // what they decide and record takes its time from them.
        let now = Timestamp::now();
        let mut client = self.etcd.connect().await?;
        let lease = client
            .lease_grant(LEASE_TTL_SECS, None)
            .await
            .context("granting the liveness lease")?
            .id();
        let alive = Alive {
            host: crate::audit::host(),
            pid: std::process::id(),
            since: now,
        };
        let options = PutOptions::new().with_lease(lease);
        client
            .put(
                keys::alive(&self.relay),
                serde_json::to_vec(&alive)?,
                Some(options),
            )
            .await
            .context("writing the liveness key")?;
        let (mut keeper, mut acks) = client
            .lease_keep_alive(lease)
            .await
            .context("keeping the lease alive")?;

        let (current, revision) = store::read_policy(&mut client).await?;
        match current {
            Some(c) => {
                self.reconcile(&mut client, c.doc, c.mod_revision, now)
                    .await?
            }
            None => self.write_status(&mut client, now).await?,
        }
        let mut watch = client
            .watch(
                keys::POLICY,
                Some(WatchOptions::new().with_start_revision(revision + 1)),
            )
            .await
            .context("watching the fleet policy")?;
        log::info!(
            "fleet: relay {} enforces version {}; watching from revision {}",
            self.relay,
            self.status.version,
            revision + 1
        );
        backoff.reset();
        let mut tick = tokio::time::interval(Duration::from_secs(LEASE_TTL_SECS as u64 / 3));
        loop {
            tokio::select! {
                _ = tick.tick() => keeper.keep_alive().await.context("renewing the lease")?,
                ack = acks.message() => match ack.context("renewing the lease")? {
                    Some(a) if a.ttl() > 0 => {}
                    _ => bail!("the liveness lease was lost"),
                },
                msg = watch.message() => {
                    let now = Timestamp::now();
                    let Some(resp) = msg.context("watching the fleet policy")? else {
                        bail!("the watch ended");
                    };
                    if resp.canceled() {
                        bail!(
                            "the watch was cancelled (compacted at revision {}: {})",
                            resp.compact_revision(),
                            resp.cancel_reason()
                        );
                    }
                    for event in resp.events() {
                        let Some(kv) = event.kv() else { continue };
                        if event.event_type() == EventType::Delete {
                            log::warn!("fleet: the policy was deleted; keeping version {}", self.status.version);
                            continue;
                        }
                        let doc = store::decode(kv.value())?;
                        self.reconcile(&mut client, doc, kv.mod_revision(), now).await?;
                    }
                }
            }
        }
    }

    /// Applies `doc` unless it is what is enforced already; then writes the status.
    async fn reconcile(
        &mut self,
        client: &mut Client,
        doc: PolicyDoc,
        revision: i64,
        now: Timestamp,
    ) -> anyhow::Result<()> {
        if self.status.policy_hash.as_deref() != Some(doc.hash.as_str())
            || self.status.error.is_some()
        {
            let started = Instant::now();
            let enforcer = self.enforcer.clone();
            let (version, hash) = (doc.version, doc.hash.clone());
            // The kernel and the lock are blocking work: off the runtime's one thread.
            let result = tokio::task::spawn_blocking(move || {
                let mut e = enforcer
                    .lock()
                    .map_err(|_| anyhow::anyhow!("enforcer poisoned"))?;
                e.apply(&doc, revision)
            })
            .await
            .context("the fleet apply task failed")?;
            match result {
                Ok(applied) => {
                    log::info!("fleet: applied version {version} (revision {revision})");
                    self.status.version = version;
                    self.status.policy_hash = Some(hash);
                    self.status.revision = revision;
                    self.status.enforced_hash = Some(applied.enforced_hash);
                    self.status.waiting = applied.waiting;
                    self.status.applied = Some(applied.at);
                    self.status.took_ms = Some(started.elapsed().as_millis() as u64);
                    self.status.error = None;
                }
                Err(e) => {
                    // Fail-static: the previous version stays; the status says why.
                    log::error!("fleet: version {version} not applied: {e:#}");
                    self.status.error = Some(format!("version {version} not applied: {e:#}"));
                }
            }
        }
        self.write_status(client, now).await
    }

    async fn write_status(&mut self, client: &mut Client, now: Timestamp) -> anyhow::Result<()> {
        if self.written.as_ref() == Some(&self.status) {
            return Ok(());
        }
        let mut status = self.status.clone();
        status.updated = Some(now);
        client
            .put(
                keys::status(&self.relay),
                serde_json::to_vec(&status)?,
                None,
            )
            .await
            .context("writing the status key")?;
        self.written = Some(self.status.clone());
        Ok(())
    }
}

/// Exponential backoff from 200 ms to 10 s, each delay jittered down by up to half, so
/// that hundreds of relays reconnecting after an outage do not arrive together. The jitter
/// comes from a generator seeded by the process id, not from the clock.
struct Backoff {
    next: Duration,
    seed: u64,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            next: Duration::from_millis(200),
            seed: u64::from(std::process::id()) | 1,
        }
    }
}

impl Backoff {
    fn reset(&mut self) {
        self.next = Duration::from_millis(200);
    }

    fn next(&mut self) -> Duration {
        let base = self.next;
        self.next = (base * 2).min(Duration::from_secs(10));
        // xorshift64: relays differ by pid, and one relay's delays differ from each other.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let fraction = (self.seed >> 54) as f64 / 1024.0;
        base.mul_f64(1.0 - fraction / 2.0)
    }
}
