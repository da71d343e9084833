//! The relay's fleet loop, a task of the daemon: keep a lease-bound liveness key, list the
//! policy at revision R, apply it, write the status key, watch from R+1. Any error (etcd
//! unreachable, watch cancelled or compacted, lease lost) ends the session: after a
//! jittered exponential backoff it starts again from the list, so nothing is ever applied
//! from a watch that may have missed a version. Nothing touches the kernel unless a
//! version was read: an outage leaves the last applied version in force.
//!
//! Every `counters_every` the agent also reads what the relay counted (per-rule counts,
//! sketches, the audit head) and rewrites the status key if that changed.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context as _, anyhow, bail};
use etcd_client::{Client, EventType, PutOptions, WatchOptions};
use jiff::Timestamp;
use tokio::sync::watch as channel;

use super::{
    EtcdArgs, RelayStatus, connection,
    counters::{self, Counters},
    document::PolicyDoc,
    keys,
    relay::Enforcer,
    store::{self, Alive},
};

/// The liveness lease: a relay is shown dead this long after its daemon stops answering.
const LEASE_TTL_SECS: i64 = 10;

/// How often a relay reads its counters by default: at 5,000 relays whose counts all
/// move, about 17 status writes a second (docs/fleet.md, "Counters in the status key").
pub const COUNTERS_EVERY: Duration = Duration::from_secs(300);
/// How long after its end a rule stays in the status key by default: a quarter's report
/// made some weeks after the quarter still finds every rule of it.
pub const COUNTERS_KEEP: Duration = Duration::from_secs(100 * 86_400);

pub struct Agent<E: Enforcer> {
    pub relay: String,
    pub etcd: EtcdArgs,
    pub enforcer: Arc<Mutex<E>>,
    /// What the status key says; written only when it changes.
    status: RelayStatus,
    written: Option<RelayStatus>,
    counters_every: Duration,
    counters_keep: Duration,
    connection: connection::Handle,
    /// The loop's clock, given by its entry point: read as a connection starts and as each
    /// event arrives, and passed down from there.
    clock: fn() -> Timestamp,
}

impl<E: Enforcer> Agent<E> {
    /// `clock`: the loop's clock, given by the entry point that runs the loop.
    pub fn new(relay: String, etcd: EtcdArgs, enforcer: E, clock: fn() -> Timestamp) -> Agent<E> {
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
        let connection = connection::Handle::default();
        connection.enforcing(status.version, false);
        Agent {
            relay,
            etcd,
            enforcer: Arc::new(Mutex::new(enforcer)),
            status,
            written: None,
            counters_every: COUNTERS_EVERY,
            counters_keep: COUNTERS_KEEP,
            connection,
            clock,
        }
    }

    /// Reads the counters every `every` (rewriting the status key only when they changed)
    /// and carries rules that ended up to `keep` before.
    pub fn with_counters(mut self, every: Duration, keep: Duration) -> Agent<E> {
        self.counters_every = every.max(Duration::from_millis(100));
        self.counters_keep = keep;
        self
    }

    /// The link to etcd as `/metrics` shows it.
    pub fn connection(&self) -> connection::Handle {
        self.connection.clone()
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
                let e = self.etcd.explain(e);
                // Where a session ends: the loop's reading of when the outage began.
                self.connection.lost((self.clock)(), &format!("{e:#}"));
                tracing::warn!(
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
        let now = (self.clock)();
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
        self.connection.answered(now);
        match current {
            Some(c) => {
                self.reconcile(&mut client, c.doc, c.mod_revision, now)
                    .await?
            }
            None => {
                self.refresh_counters(now).await;
                self.write_status(&mut client, now).await?
            }
        }
        let mut watch = client
            .watch(
                keys::POLICY,
                Some(WatchOptions::new().with_start_revision(revision + 1)),
            )
            .await
            .context("watching the fleet policy")?;
        tracing::info!(
            "fleet: relay {} enforces version {}; watching from revision {}",
            self.relay,
            self.status.version,
            revision + 1
        );
        backoff.reset();
        self.connection.connected(now);
        let mut tick = tokio::time::interval(Duration::from_secs(LEASE_TTL_SECS as u64 / 3));
        let first = tokio::time::Instant::now() + self.counters_every;
        let mut counters_tick = tokio::time::interval_at(first, self.counters_every);
        counters_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => keeper.keep_alive().await.context("renewing the lease")?,
                ack = acks.message() => match ack.context("renewing the lease")? {
                    Some(a) if a.ttl() > 0 => self.connection.answered((self.clock)()),
                    _ => bail!("the liveness lease was lost"),
                },
                _ = counters_tick.tick() => {
                    let now = (self.clock)();
                    self.refresh_counters(now).await;
                    self.write_status(&mut client, now).await?;
                }
                msg = watch.message() => {
                    let now = (self.clock)();
                    let Some(resp) = msg.context("watching the fleet policy")? else {
                        bail!("the watch ended");
                    };
                    self.connection.answered(now);
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
                            tracing::warn!("fleet: the policy was deleted; keeping version {}", self.status.version);
                            continue;
                        }
                        let doc = store::decode(kv.value())?;
                        self.reconcile(&mut client, doc, kv.mod_revision(), now).await?;
                    }
                }
            }
        }
    }

    /// Applies `doc` unless it is what is enforced already; then reads the counters (an
    /// apply moves the audit head) and writes the status.
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
                    tracing::info!("fleet: applied version {version} (revision {revision})");
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
                    tracing::error!("fleet: version {version} not applied: {e:#}");
                    self.status.error = Some(format!("version {version} not applied: {e:#}"));
                }
            }
            self.connection
                .enforcing(self.status.version, self.status.error.is_some());
        }
        // An apply took its own clock reading, later than `now`: what follows it is dated
        // no earlier.
        let at = self.status.applied.map_or(now, |applied| applied.max(now));
        self.refresh_counters(at).await;
        self.write_status(client, at).await
    }

    /// Reads what the relay counted; the status changes only if the counts, the rules or
    /// the audit head did. A failed read keeps the last counts and says why.
    async fn refresh_counters(&mut self, now: Timestamp) {
        let enforcer = self.enforcer.clone();
        let since = counters::since(now, self.counters_keep);
        // The kernel and the audit trail are blocking reads.
        let read = tokio::task::spawn_blocking(move || {
            let e = enforcer.lock().map_err(|_| anyhow!("enforcer poisoned"))?;
            e.counters(since, now)
        })
        .await
        .map_err(|e| anyhow!("the counters task failed: {e}"))
        .and_then(|r| r);
        match read {
            Ok(None) => {}
            Ok(Some(counted)) => {
                let (rules, omitted) = counters::fit(counted.rules, now);
                let same = self
                    .status
                    .counters
                    .as_ref()
                    .is_some_and(|c| c.rules == rules && c.omitted == omitted)
                    && self.status.audit_head == counted.audit_head
                    && self.status.counters_error.is_none();
                if !same {
                    self.status.counters = Some(Counters {
                        read: now,
                        keep_seconds: self.counters_keep.as_secs(),
                        rules,
                        omitted,
                    });
                    self.status.audit_head = counted.audit_head;
                    self.status.counters_error = None;
                }
            }
            Err(e) => {
                let text = format!("{e:#}");
                if self.status.counters_error.as_deref() != Some(text.as_str()) {
                    tracing::warn!("fleet: {text}; the status keeps the counts read before");
                }
                self.status.counters_error = Some(text);
            }
        }
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
        self.connection.answered(now);
        self.connection.status_written();
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
