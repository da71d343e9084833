//! The agent's link to etcd as the daemon's `/metrics` shows it: connected or not, when
//! etcd last answered, the version enforced, and how many outages there were. An outage
//! is logged once when it begins and once when it ends, not at every retry.

use std::sync::{Arc, Mutex, PoisonError};

use jiff::Timestamp;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Connection {
    /// The current session listed the policy and is watching.
    pub connected: bool,
    /// When etcd last answered (a read, a write, a lease renewal, a watch event).
    pub last_answer: Option<Timestamp>,
    /// The fleet version enforced (0: none yet).
    pub version: u64,
    /// The latest version read could not be applied (the status key says why).
    pub version_error: bool,
    /// Sessions lost: each begins an outage that ends when a session lists again.
    pub outages: u64,
    pub outage_since: Option<Timestamp>,
    /// Writes of the status key (the figure behind the write rate in docs/fleet.md).
    pub status_writes: u64,
}

/// Shared between the agent and the scrapes.
#[derive(Clone, Default)]
pub struct Handle(Arc<Mutex<Connection>>);

impl Handle {
    pub fn get(&self) -> Connection {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn update<T>(&self, f: impl FnOnce(&mut Connection) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// etcd answered at `now`.
    pub fn answered(&self, now: Timestamp) {
        self.update(|c| c.last_answer = Some(now));
    }

    /// What is enforced now, and whether the latest version read failed to apply.
    pub fn enforcing(&self, version: u64, error: bool) {
        self.update(|c| {
            c.version = version;
            c.version_error = error;
        });
    }

    pub fn status_written(&self) {
        self.update(|c| c.status_writes += 1);
    }

    /// A session listed the policy at `now`: connected, and an outage under way ends.
    pub fn connected(&self, now: Timestamp) {
        let ended = self.update(|c| {
            c.connected = true;
            c.last_answer = Some(now);
            c.outage_since.take().map(|since| (c.outages, since))
        });
        if let Some((n, since)) = ended {
            let secs = now.duration_since(since).as_secs().max(0);
            tracing::info!("fleet: outage {n} ended after {secs}s: etcd answers again");
        }
    }

    /// A session ended at `now` with `why`: an outage begins unless one is under way.
    pub fn lost(&self, now: Timestamp, why: &str) {
        let began = self.update(|c| {
            c.connected = false;
            if c.outage_since.is_some() {
                return None;
            }
            c.outages += 1;
            c.outage_since = Some(now);
            Some((c.outages, c.version))
        });
        if let Some((n, version)) = began {
            tracing::warn!(
                "fleet: outage {n} began: {why}; enforcing version {version} until etcd answers"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_is_counted_once_and_ends_when_a_session_lists() {
        let t = |s: &str| -> Timestamp { s.parse().expect("time") };
        let h = Handle::default();
        h.enforcing(3, false);
        h.connected(t("2026-12-06T10:00:00Z"));
        h.lost(t("2026-12-06T10:01:00Z"), "connection refused");
        h.lost(t("2026-12-06T10:01:05Z"), "connection refused");
        let c = h.get();
        assert!(!c.connected);
        assert_eq!(c.outages, 1);
        assert_eq!(c.outage_since, Some(t("2026-12-06T10:01:00Z")));
        assert_eq!(c.last_answer, Some(t("2026-12-06T10:00:00Z")));
        h.connected(t("2026-12-06T10:02:00Z"));
        let c = h.get();
        assert!(c.connected);
        assert_eq!((c.outages, c.outage_since, c.version), (1, None, 3));
        h.lost(t("2026-12-06T10:03:00Z"), "lease lost");
        assert_eq!(h.get().outages, 2);
    }
}
