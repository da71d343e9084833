//! The relay side of a fleet version: merge it with what is local, apply it through the
//! same code as `geofence apply` (`policy_file::plan`, then `Ctx::commit`, which writes
//! one audit entry), and persist it so that a restart without etcd knows what it enforces.
//!
//! [`Enforcer`] is the seam between the agent's etcd loop and the kernel: the daemon uses
//! [`LocalRelay`]; a simulation of many relays can use an in-memory one.

use std::collections::BTreeMap;

use anyhow::{Context as _, anyhow, bail};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{
    counters::{self, Counted},
    document::{GeoRef, PolicyDoc},
};
use crate::{
    audit,
    change::Ctx,
    durable,
    kernel::Kernel,
    policy_file::{self, Declared, DeclaredMeeting, DeclaredRule, Position},
    state::State,
};

/// Where the last applied version is kept, in the state directory.
pub const APPLIED_FILE: &str = "fleet.json";

/// What a relay enforces after applying a version.
#[derive(Clone, Debug, Default)]
pub struct Applied {
    pub enforced_hash: String,
    /// Meetings the version names that the relay does not have.
    pub waiting: Vec<String>,
    /// When it was applied: the change's own clock reading.
    pub at: Timestamp,
}

pub trait Enforcer: Send + 'static {
    /// Makes the relay enforce `doc`, read at etcd mod revision `revision`.
    fn apply(&mut self, doc: &PolicyDoc, revision: i64) -> anyhow::Result<Applied>;
    /// The version last applied, as persisted (fail-static: known without etcd).
    fn last(&self) -> Option<(PolicyDoc, i64)>;
    /// What the relay counted, for its status key: each rule in force or ended after
    /// `since`, with its counts and sketch, and the local audit head. `None`: this
    /// enforcer keeps no counts, and the status key carries none.
    fn counters(&self, since: Timestamp, now: Timestamp) -> anyhow::Result<Option<Counted>> {
        let _ = (since, now);
        Ok(None)
    }
}

/// The persisted record of the last version applied.
#[derive(Serialize, Deserialize)]
struct Persisted {
    revision: i64,
    doc: PolicyDoc,
}

pub struct LocalRelay {
    pub ctx: Ctx,
}

impl Enforcer for LocalRelay {
    fn apply(&mut self, doc: &PolicyDoc, revision: i64) -> anyhow::Result<Applied> {
        // The entry point of this change: its own clock reading.
        let ctx = self.ctx.at(crate::expiry::Clock::now());
        let mut session = ctx.begin()?;
        let old = session.state.clone();
        check_geo(&old, doc.geo.as_ref())?;
        let (declared, waiting) = merge(&old, doc, ctx.clock.wall());
        let operator = format!("fleet v{} by {}", doc.version, doc.author);
        let plan = policy_file::plan(&old, &declared, ctx.now(), &operator)?;
        crate::model::SessionMaps::derive(&plan.new, &ctx.clock)
            .context("the fleet policy asks for more than the kernel maps hold")?;
        // A crash after the commit below and before `persist` leaves this version in
        // force and in the audit trail, but not in fleet.json: the restarted daemon reads
        // it again. Persisting it, with no second entry, keeps one entry per version.
        if plan.changes.is_empty() && last_recorded(&ctx.state_dir).as_deref() == Some(&doc.hash) {
            persist(&ctx.state_dir, doc, revision)?;
            return Ok(Applied {
                enforced_hash: enforced_hash(&old, ctx.clock.wall()),
                waiting,
                at: ctx.now(),
            });
        }
        // One entry per version even when nothing changes here: the audit trail shows
        // which fleet version the relay acknowledged, and when.
        let details = json!({
            "fleet_version": doc.version,
            "author": doc.author,
            "policy_hash": doc.hash,
            "revision": revision,
            "waiting": waiting,
            "summary": plan.summary.to_json(),
            "changes": plan.changes.iter().map(ToString::to_string).collect::<Vec<_>>(),
        });
        ctx.commit(
            &mut session.kernel,
            &old,
            &plan.new,
            "fleet apply",
            details,
            &ctx.clock,
        )?;
        persist(&ctx.state_dir, doc, revision)?;
        Ok(Applied {
            enforced_hash: enforced_hash(&plan.new, ctx.clock.wall()),
            waiting,
            at: ctx.now(),
        })
    }

    fn last(&self) -> Option<(PolicyDoc, i64)> {
        last_applied(&self.ctx.state_dir)
    }

    /// The relay's own transparency report over `[since, now]`, as its status carries it:
    /// the fleet report then sums exactly what each relay's `geofence report` says.
    fn counters(&self, since: Timestamp, now: Timestamp) -> anyhow::Result<Option<Counted>> {
        let pin = &self.ctx.pin_dir;
        if !Kernel::exists(pin) {
            bail!(
                "counters not read: no geofence maps under {}",
                pin.display()
            );
        }
        let kernel = Kernel::open(pin).context("counters not read")?;
        // No end to the window: a rule an apply issued after `now` was read is in it.
        let report = crate::report::report_from(
            &self.ctx.state_dir,
            Some(&kernel),
            "",
            since,
            Timestamp::MAX,
            now,
        )?;
        Ok(Some(counters::from_report(&report)))
    }
}

/// The policy hash of the last fleet version the local audit trail records as applied.
/// None when there is none, or the trail cannot be read (then the version is applied and
/// recorded again rather than not at all).
fn last_recorded(state_dir: &std::path::Path) -> Option<String> {
    let entries = audit::read(state_dir).ok()?;
    let entry = entries.iter().rev().find(|e| e.action == "fleet apply")?;
    entry.details["policy_hash"].as_str().map(str::to_owned)
}

/// The fleet version this relay applied last, as persisted in `state_dir`.
pub fn last_applied(state_dir: &std::path::Path) -> Option<(PolicyDoc, i64)> {
    let bytes = std::fs::read(state_dir.join(APPLIED_FILE)).ok()?;
    let p: Persisted = serde_json::from_slice(&bytes)
        .map_err(|e| tracing::warn!("fleet: {APPLIED_FILE} unreadable ({e}); ignoring it"))
        .ok()?;
    Some((p.doc, p.revision))
}

/// Records `doc` as the version applied last (what `last_applied` reads).
pub fn persist(state_dir: &std::path::Path, doc: &PolicyDoc, revision: i64) -> anyhow::Result<()> {
    let persisted = Persisted {
        revision,
        doc: doc.clone(),
    };
    let bytes = serde_json::to_vec_pretty(&persisted).context("encoding fleet.json")?;
    durable::write_atomic(state_dir, APPLIED_FILE, &bytes)
}

/// The rules and allow exceptions the fleet's version last applied here gives meeting
/// `name`, as the rules a meeting added now starts with: a fleet rule for a meeting the
/// relay did not have is in force from the change that adds the meeting, with no window.
/// Empty without a fleet version, or when it does not name the meeting.
pub fn rules_for_new_meeting(
    state_dir: &std::path::Path,
    name: &str,
    meeting: &crate::state::Meeting,
    now: Timestamp,
) -> anyhow::Result<Option<(u64, crate::state::Meeting)>> {
    let Some((doc, _)) = last_applied(state_dir) else {
        return Ok(None);
    };
    if !doc.meetings.contains_key(name) {
        return Ok(None);
    }
    let alone = State {
        meetings: [(name.to_string(), meeting.clone())].into(),
        ..State::default()
    };
    let (declared, _) = merge(&alone, &doc, now);
    let operator = format!("fleet v{} by {}", doc.version, doc.author);
    let plan = policy_file::plan(&alone, &declared, now, &operator)?;
    Ok(plan
        .new
        .meetings
        .get(name)
        .cloned()
        .map(|m| (doc.version, m)))
}

/// The relay's own table must be the fleet's, file by file (by name and SHA-256).
fn check_geo(state: &State, want: Option<&GeoRef>) -> anyhow::Result<()> {
    let Some(want) = want else { return Ok(()) };
    let Some(have) = &state.geo else {
        bail!("territory table mismatch: the fleet names one, this relay has none loaded");
    };
    let mut have_files = BTreeMap::new();
    for path in &have.files {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let (sha, _) = audit::file_digest(path)?;
        have_files.insert(name.unwrap_or_default(), sha);
    }
    for f in &want.files {
        match have_files.get(&f.name) {
            Some(sha) if *sha == f.sha256 => {}
            Some(sha) => bail!(
                "territory table mismatch: {} has sha256 {sha} here, the fleet's is {}",
                f.name,
                f.sha256
            ),
            None => bail!(
                "territory table mismatch: the fleet's table has {}, this relay's does not",
                f.name
            ),
        }
    }
    if have_files.len() != want.files.len() {
        return Err(anyhow!(
            "territory table mismatch: this relay's table has other files than the fleet's"
        ));
    }
    Ok(())
}

/// The local meetings with the fleet's rules and allow exceptions. The fleet is the
/// authority on rules: a local meeting it does not name gets none. Meetings it names that
/// are not here are returned as waiting. Rules expired at `now` are left out (records,
/// not policy, as in `apply`); endpoints, flows and mux stay as they are.
pub fn merge(state: &State, doc: &PolicyDoc, now: Timestamp) -> (Declared, Vec<String>) {
    let at = Position {
        file: format!("fleet version {}", doc.version),
        ..Position::default()
    };
    let mut meetings = BTreeMap::new();
    for (name, local) in &state.meetings {
        let fleet = doc.meetings.get(name).cloned().unwrap_or_default();
        let rules = fleet
            .rules
            .iter()
            .filter(|r| r.expires.is_none_or(|t| t > now))
            .map(|r| DeclaredRule {
                order: r.order.clone(),
                territories: r.territories.clone(),
                prefixes: r.prefixes.clone(),
                expires: r.expires,
                dry_run: r.dry_run,
                at: at.clone(),
            })
            .collect();
        let meeting = DeclaredMeeting {
            endpoints: local.endpoints.clone(),
            rules,
            allows: fleet.allow.clone(),
            at: at.clone(),
        };
        meetings.insert(name.clone(), meeting);
    }
    let waiting = doc
        .meetings
        .keys()
        .filter(|n| !state.meetings.contains_key(*n))
        .cloned()
        .collect();
    let declared = Declared {
        geo: None,
        mux: None,
        meetings,
    };
    (declared, waiting)
}

/// A hash of what is enforced: each meeting's rules (as ordered, not when issued) and
/// allow exceptions, and the table's files. Endpoints are left out: they differ by relay.
pub fn enforced_hash(state: &State, now: Timestamp) -> String {
    let meetings: BTreeMap<&String, serde_json::Value> = state
        .meetings
        .iter()
        .map(|(name, m)| {
            let rules: Vec<_> = m
                .rules
                .iter()
                .filter(|r| !r.expired(now))
                .map(|r| json!([r.order, r.territories, r.prefixes, r.expires, r.dry_run]))
                .collect();
            (name, json!({ "rules": rules, "allow": m.allows }))
        })
        .collect();
    let geo = state.geo.as_ref().map(|g| {
        let names: Vec<String> = g
            .files
            .iter()
            .map(|f| audit::file_digest(f).map_or_else(|_| "unreadable".into(), |(s, _)| s))
            .collect();
        json!({ "files": names, "format": g.format, "territory": g.territory })
    });
    let value = json!({ "meetings": meetings, "geo": geo });
    audit::sha256_hex(audit::canonical(&value).as_bytes())
}
