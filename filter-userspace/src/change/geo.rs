//! The one path of every territory table load: `geo load`, `apply`'s table and the
//! daemon's reloads.

use std::{
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::bail;
use ipnet::IpNet;
use jiff::Timestamp;
use serde_json::json;

use super::Ctx;
use crate::{
    geo::{
        self, Format, GeoTable, NetBits,
        diff::{self, Change, Ranges, RuleRef, Scope, ScopeKind},
    },
    kernel::{self, Kernel},
    state::{GeoRecord, GeoSource, State},
};

/// What to load into the territory table.
#[derive(Clone, Debug)]
pub struct GeoRequest {
    pub files: Vec<PathBuf>,
    pub format: Format,
    pub territory: Option<String>,
    /// `geo load --locate-by`: `None` for the default.
    pub locate_by: Option<geo::LocateBy>,
}

/// What a load did, and how long it took.
#[derive(Debug)]
pub struct GeoLoaded {
    pub loaded: kernel::GeoLoad,
    pub territories: usize,
    /// Reading and parsing the files.
    pub parse: Duration,
    /// Parsing, filling the kernel's table and recording it.
    pub total: Duration,
    /// What changed against the table it replaced, or why that could not be read (the
    /// load itself stands).
    pub change: Result<Change, String>,
}

/// What identifies a file's contents cheaply: a rewrite or a replacement changes it.
fn fingerprint(path: &Path) -> Option<(u64, u64, u64, i64, i64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec()))
}

/// Each file's name, detected format, SHA-256 and size, for the state and the audit.
/// `table` must have just been parsed from the files.
pub fn source_records(table: &GeoTable) -> anyhow::Result<Vec<GeoSource>> {
    table
        .sources
        .iter()
        .map(|s| {
            let (sha256, bytes) = crate::audit::file_digest(&s.path)?;
            Ok(GeoSource {
                file: s.path.clone(),
                format: s.format.to_string(),
                sha256,
                bytes,
            })
        })
        .collect()
}

/// The rules in force at `now` as far as the table matters to them: per meeting its
/// territory rules, and the addresses its exceptions and rule prefixes decide instead;
/// with shared ports, the unbound flows, which every enforcing rule in force guards.
pub fn scopes(state: &State, now: Timestamp) -> Vec<Scope> {
    let rule_ref = |r: &crate::state::Rule| RuleRef {
        order: r.order.clone(),
        dry_run: r.dry_run,
        territories: r.territories.iter().map(|t| t.id()).collect(),
    };
    let mut out = Vec::new();
    let mut unbound = Vec::new();
    for (name, m) in &state.meetings {
        let in_force: Vec<_> = m.rules.iter().filter(|r| !r.expired(now)).collect();
        let prefixes = in_force.iter().flat_map(|r| &r.prefixes).chain(&m.allows);
        let (mut exempt_v4, mut exempt_v6) = (Vec::new(), Vec::new());
        for p in prefixes {
            match p {
                IpNet::V4(p) => exempt_v4.push((u128::from(p.first()), u128::from(p.last()))),
                IpNet::V6(p) => exempt_v6.push((p.first(), p.last())),
            }
        }
        for r in in_force.iter().filter(|r| !r.dry_run).map(|r| rule_ref(r)) {
            // One order on several meetings guards unbound flows once.
            if !unbound.contains(&r) {
                unbound.push(r);
            }
        }
        out.push(Scope {
            name: name.clone(),
            kind: ScopeKind::Meeting,
            rules: in_force.iter().map(|r| rule_ref(r)).collect(),
            exempt_v4,
            exempt_v6,
        });
    }
    if !state.mux.is_empty() {
        out.push(Scope {
            name: String::new(),
            kind: ScopeKind::UnboundShared,
            rules: unbound,
            exempt_v4: Vec::new(),
            exempt_v6: Vec::new(),
        });
    }
    out
}

/// The table generation `generation` of the kernel as runs.
pub fn kernel_ranges(kernel: &Kernel, generation: u32) -> anyhow::Result<Ranges> {
    let mapped = kernel::map_generation(kernel, generation)?;
    Ok(Ranges::of_flat(mapped.v4(), mapped.v6()))
}

/// What replacing generation `old` by `new` changed for `state`'s rules at `now`.
fn kernel_change(
    kernel: &Kernel,
    old: u32,
    new: u32,
    state: &State,
    now: Timestamp,
) -> anyhow::Result<Change> {
    let d = diff::diff(&kernel_ranges(kernel, old)?, &kernel_ranges(kernel, new)?);
    Ok(Change::of(&d, &scopes(state, now)))
}

/// The change as the audit entry keeps it: totals and what it did to each rule, without
/// the list of territory pairs, and in integers and strings only (no floating point in a
/// hashed record).
fn change_details(change: &Change) -> serde_json::Value {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(map) => {
                map.remove("moves");
                map.remove("slash64s");
                map.values_mut().for_each(strip);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut v = diff::json(change);
    strip(&mut v);
    v
}

/// The one path of every territory table load (`geo load`, the daemon's reloads): parse and
/// validate every file before taking the lock, fill and switch the table, record it in the
/// state and the audit log. `note` is added to the audit details (why the load happened).
///
/// With `replacing`, the load happens only if the state still records exactly that table
/// once the lock is held: a reload must not overwrite a table an operator loaded meanwhile.
/// `phase` is told each phase, for an operator at a terminal.
pub fn load_geo(
    ctx: &Ctx,
    request: &GeoRequest,
    replacing: Option<&GeoRecord>,
    note: Option<&str>,
    phase: &dyn Fn(&str),
) -> anyhow::Result<GeoLoaded> {
    let started = Instant::now();
    let before: Vec<_> = request.files.iter().map(|f| fingerprint(f)).collect();
    // Parse and validate everything before taking the lock or touching a map.
    let options = geo::LoadOptions {
        format: request.format,
        territory: request.territory.as_deref(),
        locate_by: request.locate_by,
    };
    let table = geo::load_files_with(&request.files, &options)?;
    // After parsing, which names an unreadable file best.
    let sources = source_records(&table)?;
    // The digests recorded must be of the bytes parsed.
    for (file, was) in request.files.iter().zip(&before) {
        if fingerprint(file) != *was {
            bail!(
                "{} changed while it was being read; nothing was loaded (load it again once \
                 it is complete)",
                file.display()
            );
        }
    }
    let parse = started.elapsed();
    let mut session = ctx.begin()?;
    if let Some(expected) = replacing
        && session.state.geo.as_ref() != Some(expected)
    {
        bail!("the territory table was replaced while its files were being read; not reloading");
    }
    let previous = kernel::active_generation(&session.kernel)?;
    let next = generation_name(1 - previous);
    phase(&format!(
        "building the flattened table and filling table {next}"
    ));
    let loaded = kernel::load_table(&mut session.kernel, &table)?;
    // The table it replaced is still in the other generation; reading it back cannot undo
    // the load, so a failure only leaves the change unknown.
    let change = kernel_change(
        &session.kernel,
        previous,
        loaded.generation,
        &session.state,
        ctx.clock.wall(),
    )
    .map_err(|e| format!("{e:#}"));
    let territories = table.territories().len();
    let mut new = session.state.clone();
    new.geo = Some(GeoRecord {
        files: request.files.clone(),
        format: request.format.to_string(),
        territory: request.territory.clone(),
        loaded: ctx.now(),
        prefixes_v4: loaded.prefixes_v4,
        prefixes_v6: loaded.prefixes_v6,
        territories,
        generation: loaded.generation,
        sources: sources.clone(),
        locate_by: table.locate_by(),
    });
    new.save(&ctx.state_dir)?;
    let sources: Vec<_> = table
        .sources
        .iter()
        .zip(&sources)
        .map(|(s, r)| {
            let mut j = json!({ "file": s.path, "format": r.format, "bytes": r.bytes, "sha256": r.sha256, "rows": s.rows, "skipped": s.skipped });
            if let Some(by) = s.locate_by {
                j["locate_by"] = json!(by);
            }
            j
        })
        .collect();
    let mut details = json!({ "sources": sources, "prefixes_v4": loaded.prefixes_v4, "prefixes_v6": loaded.prefixes_v6 });
    if let Ok(change) = &change {
        details["change"] = change_details(change);
    }
    if let Some(note) = note {
        details["note"] = json!(note);
    }
    crate::audit::append(&ctx.state_dir, "geo load", details)?;
    Ok(GeoLoaded {
        loaded,
        territories,
        parse,
        total: started.elapsed(),
        change,
    })
}

/// A table generation's name as operators see it.
pub fn generation_name(generation: u32) -> &'static str {
    if generation == 0 { "A" } else { "B" }
}

/// The first 12 hex digits of a SHA-256: enough to tell files apart on a screen.
pub fn short_sha(sha256: &str) -> &str {
    sha256.get(..12).unwrap_or(sha256)
}

/// Which table this is, for a line people read: `a.csv (csv, sha256 0123456789ab), ...,
/// loaded 2026-11-28T12:00:00Z`; the files alone when their digests were not recorded.
pub fn provenance_text(record: &GeoRecord) -> String {
    let files: Vec<String> = if record.sources.is_empty() {
        record
            .files
            .iter()
            .map(|f| format!("{} (digest not recorded)", f.display()))
            .collect()
    } else {
        record
            .sources
            .iter()
            .map(|s| {
                format!(
                    "{} ({}, sha256 {})",
                    s.file.display(),
                    s.format,
                    short_sha(&s.sha256)
                )
            })
            .collect()
    };
    let placed = match record.locate_by {
        Some(by) => format!(", GeoLite2 placed by --locate-by {by}"),
        None => String::new(),
    };
    format!("{}{placed}, loaded {}", files.join(", "), record.loaded)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rule(
        order: &str,
        territories: &[&str],
        prefixes: &[&str],
        dry_run: bool,
    ) -> serde_json::Value {
        json!({
            "order": order, "territories": territories, "prefixes": prefixes,
            "expires": null, "dry_run": dry_run, "issued": "2026-11-28T10:00:00Z",
            "issued_by": "ops",
        })
    }

    /// Two meetings under one order, one with an expired rule, an exception and a prefix
    /// rule; a shared port.
    fn state() -> State {
        let mut expired = rule("ORD-0", &["XC"], &["192.0.2.0/24"], false);
        expired["expires"] = json!("2026-11-28T11:00:00Z");
        let meeting = |session: u32, rules: Vec<serde_json::Value>, allows: &[&str]| {
            json!({
                "session": session, "created": "2026-11-28T09:00:00Z", "endpoints": [],
                "rules": rules, "allows": allows,
            })
        };
        let town_hall = meeting(
            1,
            vec![
                rule("ORD-1", &["XA"], &["198.51.100.0/24"], false),
                rule("ORD-2", &["XB"], &[], true),
                expired,
            ],
            &["203.0.113.7/32", "2001:db8::/48"],
        );
        let standup = meeting(2, vec![rule("ORD-1", &["XA"], &[], false)], &[]);
        serde_json::from_value(json!({
            "version": 1,
            "meetings": { "town-hall": town_hall, "standup": standup },
            "geo": null,
            "attachments": [],
            "mux": [{ "proto": "udp", "addr": null, "first_port": 7882, "last_port": 7882 }],
        }))
        .expect("a state")
    }

    fn v4(a: &str) -> u128 {
        u128::from(u32::from(a.parse::<std::net::Ipv4Addr>().expect("v4")))
    }

    #[test]
    fn scopes_hold_the_rules_in_force_and_what_overrides_decide() {
        let now = "2026-11-28T12:00:00Z".parse().expect("time");
        let all = scopes(&state(), now);
        let names: Vec<(&str, ScopeKind)> = all.iter().map(|s| (s.name.as_str(), s.kind)).collect();
        assert_eq!(
            names,
            [
                ("standup", ScopeKind::Meeting),
                ("town-hall", ScopeKind::Meeting),
                ("", ScopeKind::UnboundShared),
            ]
        );
        let th = &all[1];
        let orders: Vec<(&str, bool)> = th
            .rules
            .iter()
            .map(|r| (r.order.as_str(), r.dry_run))
            .collect();
        assert_eq!(orders, [("ORD-1", false), ("ORD-2", true)], "ORD-0 expired");
        // ORD-1's prefix and the IPv4 exception; the expired rule's prefix decides nothing.
        assert_eq!(
            th.exempt_v4,
            [
                (v4("198.51.100.0"), v4("198.51.100.255")),
                (v4("203.0.113.7"), v4("203.0.113.7")),
            ]
        );
        let net = u128::from("2001:db8::".parse::<std::net::Ipv6Addr>().expect("v6"));
        assert_eq!(th.exempt_v6, [(net, net | ((1u128 << 80) - 1))]);
        // Unbound flows: the enforcing rules in force, ORD-1 once for both meetings.
        let unbound: Vec<&str> = all[2].rules.iter().map(|r| r.order.as_str()).collect();
        assert_eq!(unbound, ["ORD-1"]);
        assert!(all[2].exempt_v4.is_empty());
        // Before its expiry, ORD-0 is in force and its prefix decides instead of the table.
        let earlier = "2026-11-28T10:30:00Z".parse().expect("time");
        let before = scopes(&state(), earlier);
        assert_eq!(before[1].rules.len(), 3);
        let expired_prefix = (v4("192.0.2.0"), v4("192.0.2.255"));
        assert!(before[1].exempt_v4.contains(&expired_prefix));
    }
}
