//! What one pass over the session maps wrote, and when two entries count as the same:
//! the vocabulary the writers of each map (`generation`, `bindings`, `overrides`,
//! `policies`, `unparsed`) share with `sync`, which drives them.

/// How many entries a sync wrote and removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub written: usize,
    pub removed: usize,
}

impl SyncReport {
    pub(super) fn add(&mut self, other: SyncReport) {
        self.written += other.written;
        self.removed += other.removed;
    }
}

/// Expiries recomputed on each sync differ by the clock reading's jitter; within a
/// second they are the same rule and need no rewrite.
pub(super) fn same_expiry(a: u64, b: u64) -> bool {
    (a == 0) == (b == 0) && a.abs_diff(b) < 1_000_000_000
}
