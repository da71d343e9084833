//! Reloads the territory table when the files recorded by `geo load` change on disk.
//!
//! Each poll takes a fingerprint of every file (device, inode, size, modification time), so
//! an in-place rewrite and a replace-by-rename are both seen. A change is acted on once the
//! fingerprint has stayed the same for one more poll (a file still being written is not
//! read half-way). The reload is `geo load` itself ([`load_geo`]): parsed fully before any
//! map changes, so a file that fails to parse leaves the current table in force; it is
//! logged, and tried again at the file's next change.

use std::{fs, os::unix::fs::MetadataExt as _, path::Path};

use anyhow::Context as _;

use super::status::Shared;
use crate::{
    change::{Ctx, GeoRequest, load_geo},
    geo::diff::Change,
    state::{GeoRecord, State},
};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fingerprint {
    Missing,
    Present {
        dev: u64,
        ino: u64,
        size: u64,
        mtime_ns: i128,
    },
}

pub fn fingerprint(path: &Path) -> Fingerprint {
    match fs::metadata(path) {
        Ok(m) => Fingerprint::Present {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        },
        Err(_) => Fingerprint::Missing,
    }
}

struct Watched {
    record: GeoRecord,
    /// The files as they were when the table in force was loaded (or the daemon started).
    baseline: Vec<Fingerprint>,
    /// A change seen at the last poll, waiting to settle.
    pending: Option<Vec<Fingerprint>>,
}

/// What one poll decided.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    Idle,
    Settling,
    Reload(Vec<Fingerprint>),
}

#[derive(Default)]
pub struct GeoWatcher {
    watched: Option<Watched>,
}

impl GeoWatcher {
    /// Compares the recorded files with what was seen before. A record that changed (an
    /// operator loaded other files) becomes the new baseline without a reload.
    pub fn decide(&mut self, record: Option<&GeoRecord>, now: Vec<Fingerprint>) -> Decision {
        let Some(record) = record else {
            self.watched = None;
            return Decision::Idle;
        };
        let watched = match &mut self.watched {
            Some(w) if w.record == *record => w,
            _ => {
                self.watched = Some(Watched {
                    record: record.clone(),
                    baseline: now,
                    pending: None,
                });
                return Decision::Idle;
            }
        };
        if now == watched.baseline {
            watched.pending = None;
            return Decision::Idle;
        }
        if watched.pending.as_ref() != Some(&now) {
            watched.pending = Some(now);
            return Decision::Settling;
        }
        // Whatever the reload's outcome, these files are the new baseline: a failure is
        // retried when they change again, not at every poll.
        watched.pending = None;
        watched.baseline = now.clone();
        Decision::Reload(now)
    }

    /// After a successful reload the state records a new load; follow it, keeping the
    /// fingerprints the reload read, so a change made during the reload is still seen.
    fn follow(&mut self, record: GeoRecord, read: Vec<Fingerprint>) {
        self.watched = Some(Watched {
            record,
            baseline: read,
            pending: None,
        });
    }

    /// One poll: reloads the table if its files changed and settled.
    pub fn poll(&mut self, ctx: &Ctx, state: &State, status: &Shared) {
        let record = state.geo.as_ref();
        let now = record.map_or_else(Vec::new, |r| {
            r.files.iter().map(|f| fingerprint(f)).collect()
        });
        let decision = self.decide(record, now);
        let (record, read) = match (record, decision) {
            (Some(record), Decision::Reload(read)) => (record, read),
            (Some(record), Decision::Settling) => {
                tracing::debug!(
                    "territory table files changed: {}; waiting for them to settle",
                    files(record)
                );
                return;
            }
            _ => return,
        };
        let files = files(record);
        tracing::info!("territory table files changed on disk: {files}; reloading");
        match reload(ctx, record) {
            Ok((new_record, took, change)) => {
                tracing::info!(
                    "reloaded the territory table from {files}: {} IPv4 + {} IPv6 prefixes for {} territories in {took:.2}s",
                    new_record.prefixes_v4,
                    new_record.prefixes_v6,
                    new_record.territories
                );
                match change {
                    Ok(change) => tracing::info!(
                        "the reloaded territory table changes: {}",
                        crate::geo::diff::one_line(&change)
                    ),
                    Err(why) => {
                        tracing::warn!(
                            "what the reloaded territory table changes is unknown: {why}"
                        )
                    }
                }
                status.update(|s| {
                    s.reloads_ok += 1;
                    s.last_reload_seconds = Some(took);
                });
                self.follow(new_record, read);
            }
            Err(e) => {
                tracing::error!(
                    "reloading the territory table from {files} failed; the current table stays in force, \
                     and the files are tried again when they next change: {e:#}"
                );
                status.update(|s| s.reloads_failed += 1);
            }
        }
    }
}

fn files(record: &GeoRecord) -> String {
    let names: Vec<String> = record
        .files
        .iter()
        .map(|f| f.display().to_string())
        .collect();
    names.join(", ")
}

/// `geo load` of the recorded files, as recorded; returns the new record, the seconds and
/// what changed against the table it replaced.
fn reload(
    ctx: &Ctx,
    record: &GeoRecord,
) -> anyhow::Result<(GeoRecord, f64, Result<Change, String>)> {
    let request = GeoRequest {
        files: record.files.clone(),
        format: record
            .format
            .parse()
            .context("the state file records an unknown table format")?,
        territory: record.territory.clone(),
        locate_by: record.locate_by,
    };
    let done = load_geo(
        ctx,
        &request,
        Some(record),
        Some("reloaded by geofence daemon: the files changed on disk"),
        &|_| {},
    )?;
    let state = State::load(&ctx.state_dir)?;
    let new_record = state
        .geo
        .context("the state lost its territory table record after the reload")?;
    Ok((new_record, done.total.as_secs_f64(), done.change))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(loaded: &str) -> GeoRecord {
        GeoRecord {
            files: vec!["/x.csv".into()],
            format: "auto".into(),
            territory: None,
            loaded: loaded.parse().expect("time"),
            prefixes_v4: 1,
            prefixes_v6: 0,
            territories: 1,
            generation: 0,
            sources: Vec::new(),
            locate_by: None,
        }
    }

    fn fp(size: u64) -> Vec<Fingerprint> {
        vec![Fingerprint::Present {
            dev: 1,
            ino: 2,
            size,
            mtime_ns: 3,
        }]
    }

    #[test]
    fn a_change_reloads_once_it_settles_and_only_once() {
        let r = record("2026-11-28T12:00:00Z");
        let mut w = GeoWatcher::default();
        assert_eq!(
            w.decide(Some(&r), fp(10)),
            Decision::Idle,
            "first sight is the baseline"
        );
        assert_eq!(w.decide(Some(&r), fp(10)), Decision::Idle);
        assert_eq!(w.decide(Some(&r), fp(11)), Decision::Settling);
        assert_eq!(
            w.decide(Some(&r), fp(12)),
            Decision::Settling,
            "still being written"
        );
        assert_eq!(w.decide(Some(&r), fp(12)), Decision::Reload(fp(12)));
        assert_eq!(
            w.decide(Some(&r), fp(12)),
            Decision::Idle,
            "a failed reload is not retried at every poll"
        );
        assert_eq!(
            w.decide(Some(&r), vec![Fingerprint::Missing]),
            Decision::Settling
        );
        assert_eq!(
            w.decide(Some(&r), vec![Fingerprint::Missing]),
            Decision::Reload(vec![Fingerprint::Missing])
        );
    }

    #[test]
    fn a_change_that_reverts_is_forgotten_and_a_new_record_is_a_new_baseline() {
        let r = record("2026-11-28T12:00:00Z");
        let mut w = GeoWatcher::default();
        w.decide(Some(&r), fp(10));
        assert_eq!(w.decide(Some(&r), fp(11)), Decision::Settling);
        assert_eq!(w.decide(Some(&r), fp(10)), Decision::Idle);
        assert_eq!(w.decide(Some(&r), fp(10)), Decision::Idle);
        let operator_load = record("2026-11-28T12:05:00Z");
        assert_eq!(w.decide(Some(&operator_load), fp(11)), Decision::Idle);
        assert_eq!(w.decide(Some(&operator_load), fp(11)), Decision::Idle);
        assert_eq!(w.decide(None, vec![]), Decision::Idle);
    }
}
