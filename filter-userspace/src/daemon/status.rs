//! What the daemon itself did, shared between its maintenance loop and the scrapes.

use std::sync::{Arc, Mutex, PoisonError};

use jiff::Timestamp;

#[derive(Clone, Debug)]
pub struct DaemonStatus {
    pub started: Timestamp,
    pub reloads_ok: u64,
    pub reloads_failed: u64,
    pub last_reload_seconds: Option<f64>,
    pub expired_removed: u64,
    pub expiry_failures: u64,
}

/// A handle every task holds.
#[derive(Clone)]
pub struct Shared(Arc<Mutex<DaemonStatus>>);

impl Shared {
    pub fn new() -> Shared {
        Shared(Arc::new(Mutex::new(DaemonStatus {
            started: Timestamp::now(),
            reloads_ok: 0,
            reloads_failed: 0,
            last_reload_seconds: None,
            expired_removed: 0,
            expiry_failures: 0,
        })))
    }

    pub fn get(&self) -> DaemonStatus {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn update(&self, f: impl FnOnce(&mut DaemonStatus)) {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner));
    }
}
