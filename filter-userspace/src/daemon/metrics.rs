//! What `/metrics` shows: the state file (meetings, rules, the territory table's record),
//! the kernel's counters and active table, and what this daemon did (reloads, expiries).
//!
//! Reading is lock-free: the state file is replaced atomically and the maps are read-only
//! here, so a scrape never waits for a change. Per-rule series are in [`rule_metrics`].

use std::{collections::BTreeMap, fmt, path::Path};

use filter_common::{PassReason, Verdict};
use jiff::Timestamp;

use prometheus_client::encoding::DescriptorEncoder;

use super::{
    exposition::{self, Families, counter, gauge, info},
    fleet_metrics,
    kernel_cache::KernelCache,
    rule_metrics,
    status::DaemonStatus,
};
use crate::{
    fleet::connection::Connection,
    kernel::{self, Kernel, RuleCounts, Stats},
    state::State,
    territory::Territory,
};

/// What the kernel shows, when its maps are pinned.
pub struct KernelView {
    pub stats: Stats,
    /// The table generation packets use (0 = A, 1 = B).
    pub generation: u32,
    /// The counts of the state's rules, by `(session, slot)`.
    pub rules: BTreeMap<(u32, u8), RuleCounts>,
}

/// Everything one scrape shows, read at one moment.
pub struct Snapshot {
    pub state: Option<State>,
    pub kernel: Option<KernelView>,
    pub maps_pinned: bool,
    pub daemon: DaemonStatus,
    /// The fleet agent's link to etcd, in fleet mode.
    pub fleet: Option<Connection>,
    pub now: Timestamp,
}

impl Snapshot {
    /// Reads the state and the maps; a part that cannot be read is logged and left out,
    /// and `geofence_up` says so.
    pub fn read(
        pin_dir: &Path,
        state_dir: &Path,
        maps: &KernelCache,
        daemon: DaemonStatus,
        fleet: Option<Connection>,
    ) -> Snapshot {
        let state = State::load(state_dir)
            .inspect_err(|e| tracing::error!("metrics: reading the state: {e:#}"))
            .ok();
        // Opening the maps creates them when they are missing; a scrape must not.
        let maps_pinned = Kernel::exists(pin_dir);
        let kernel = maps_pinned
            .then(|| maps.read(pin_dir, |k| read_kernel(k, state.as_ref())))
            .and_then(|r| {
                r.inspect_err(|e| tracing::error!("metrics: reading the maps: {e:#}"))
                    .ok()
            });
        Snapshot {
            state,
            kernel,
            maps_pinned,
            daemon,
            fleet,
            now: Timestamp::now(),
        }
    }
}

fn read_kernel(kernel: &Kernel, state: Option<&State>) -> anyhow::Result<KernelView> {
    Ok(KernelView {
        stats: kernel::read_stats(kernel)?,
        generation: kernel::active_generation(kernel)?,
        rules: match state {
            // A read per rule of the state, not a scan of every slot.
            Some(state) => kernel::read_rule_stats_of(kernel, state)?,
            None => BTreeMap::new(),
        },
    })
}

fn seconds(t: Timestamp) -> f64 {
    t.as_millisecond() as f64 / 1000.0
}

/// The text of a scrape of `s`.
pub fn render(s: Snapshot) -> Result<String, std::fmt::Error> {
    exposition::encode(s)
}

impl Families for Snapshot {
    fn write(&self, e: &mut DescriptorEncoder<'_>) -> fmt::Result {
        let s = self;
        let up = s.state.is_some() && s.kernel.is_some();
        gauge(e, "geofence_up", "1 if the state file and the pinned maps were read for this scrape, else 0 (see the daemon's log).")?
            .sample(&[], u32::from(up))?;
        info(
            e,
            "geofence_build",
            "The geofence version serving these metrics.",
            &[("version", env!("CARGO_PKG_VERSION"))],
        )?;
        gauge(
            e,
            "geofence_daemon_start_time_seconds",
            "When this daemon started, in seconds since the epoch.",
        )?
        .sample(&[], seconds(s.daemon.started))?;
        gauge(
            e,
            "geofence_maps_pinned",
            "1 if geofence's maps are pinned under the pin directory (0: run `geofence restore`).",
        )?
        .sample(&[], u32::from(s.maps_pinned))?;
        if let Some(state) = &s.state {
            write_state(e, state, s.now)?;
        }
        if let (Some(state), Some(kernel)) = (&s.state, &s.kernel) {
            write_counters(e, state, kernel)?;
        }
        write_daemon(e, s)?;
        if let Some(fleet) = &s.fleet {
            fleet_metrics::write(e, fleet, s.daemon.started, s.now)?;
        }
        Ok(())
    }
}

fn write_state(e: &mut DescriptorEncoder<'_>, state: &State, now: Timestamp) -> fmt::Result {
    let mut f = gauge(
        e,
        "geofence_meeting_rules",
        "Rules recorded on a meeting that have not expired.",
    )?;
    for (name, m) in &state.meetings {
        let live = m.rules.iter().filter(|r| !r.expired(now)).count();
        f.sample(&[("meeting", name)], live)?;
    }
    // Two rules with the same meeting, order and targets would be one series; the later
    // expiry is when the block really ends.
    let mut expiries: BTreeMap<(&str, &str, String, &str), f64> = BTreeMap::new();
    for (name, m) in &state.meetings {
        for rule in &m.rules {
            if let Some(at) = rule.expires {
                let mode = if rule.dry_run { "dry-run" } else { "enforce" };
                // Space-separated: commas in label values trip naive parsers.
                let key = (
                    name.as_str(),
                    rule.order.as_str(),
                    rule.targets().replace(", ", " "),
                    mode,
                );
                let entry = expiries.entry(key).or_insert(f64::MIN);
                *entry = entry.max(seconds(at));
            }
        }
    }
    let mut f = gauge(
        e,
        "geofence_rule_expiry_timestamp_seconds",
        "When a rule expires, in seconds since the epoch (rules without expiry are not listed).",
    )?;
    for ((meeting, order, targets, mode), at) in &expiries {
        f.sample(
            &[
                ("meeting", meeting),
                ("order", order),
                ("targets", targets),
                ("mode", mode),
            ],
            *at,
        )?;
    }
    if let Some(geo) = &state.geo {
        gauge(
            e,
            "geofence_geo_table_prefixes",
            "Prefixes in the loaded territory table, by address family.",
        )?
        .sample(&[("family", "ipv4")], geo.prefixes_v4)?
        .sample(&[("family", "ipv6")], geo.prefixes_v6)?;
        gauge(
            e,
            "geofence_geo_table_territories",
            "Territories in the loaded territory table.",
        )?
        .sample(&[], geo.territories)?;
        gauge(
            e,
            "geofence_geo_table_loaded_timestamp_seconds",
            "When the territory table was last loaded, in seconds since the epoch.",
        )?
        .sample(&[], seconds(geo.loaded))?;
        let (files, sha256, format) = table_labels(geo);
        info(
            e,
            "geofence_geo_table",
            "The territory table in force (always 1): its files, their SHA-256 and formats, \
             space-separated in load order (sha256 `unrecorded`: loaded by an older version).",
            &[("files", &files), ("sha256", &sha256), ("format", &format)],
        )?;
    }
    Ok(())
}

/// The table's files, digests and formats as label values: each space-separated, in load
/// order, so one series names the table and its digests line up with its files.
fn table_labels(geo: &crate::state::GeoRecord) -> (String, String, String) {
    let join = |items: Vec<String>| items.join(" ");
    if geo.sources.is_empty() {
        let files = geo.files.iter().map(|f| f.display().to_string()).collect();
        return (join(files), "unrecorded".into(), geo.format.clone());
    }
    let each =
        |f: fn(&crate::state::GeoSource) -> String| join(geo.sources.iter().map(f).collect());
    (
        each(|s| s.file.display().to_string()),
        each(|s| s.sha256.clone()),
        each(|s| s.format.clone()),
    )
}

fn write_counters(
    e: &mut DescriptorEncoder<'_>,
    state: &State,
    kernel: &KernelView,
) -> fmt::Result {
    gauge(
        e,
        "geofence_geo_table_generation",
        "The territory table generation packets use (0 = A, 1 = B); it flips at every load.",
    )?
    .sample(&[], kernel.generation)?;
    let families = [
        (
            "geofence_packets",
            "Packets of a meeting by source territory and verdict (passed, dropped, would_drop).",
        ),
        (
            "geofence_bytes",
            "Bytes of a meeting by source territory and verdict (passed, dropped, would_drop).",
        ),
    ];
    for (index, (name, help)) in families.into_iter().enumerate() {
        let mut f = counter(e, name, help)?;
        for (meeting, m) in &state.meetings {
            let Some(territories) = kernel.stats.sessions.get(&m.session) else {
                continue;
            };
            for (id, counts) in territories {
                let territory = Territory::from_id(*id).to_string();
                for verdict in Verdict::ALL {
                    let counts = if index == 0 {
                        &counts.packets
                    } else {
                        &counts.bytes
                    };
                    let labels = [
                        ("meeting", meeting.as_str()),
                        ("territory", &territory),
                        ("verdict", verdict.name()),
                    ];
                    f.sample(&labels, counts[verdict as usize])?;
                }
            }
        }
    }
    let mut f = counter(
        e,
        "geofence_unclassified_packets",
        "Packets passed without classification, by reason.",
    )?;
    for reason in PassReason::ALL {
        f.sample(
            &[("reason", reason.name())],
            kernel.stats.pass_reasons[reason as usize],
        )?;
    }
    let mut f = counter(
        e,
        "geofence_unparsed_blocked_packets",
        "Packets the filter could not parse but the stack would deliver, dropped because a \
         rule in force at their destination blocks their source, by why they could not be parsed.",
    )?;
    for reason in [PassReason::Malformed, PassReason::ExtHeaderLimit] {
        f.sample(
            &[("reason", reason.name())],
            kernel.stats.unparsed_blocked[reason as usize],
        )?;
    }
    rule_metrics::write(e, state, &kernel.rules)
}

fn write_daemon(e: &mut DescriptorEncoder<'_>, s: &Snapshot) -> fmt::Result {
    let d = &s.daemon;
    counter(
        e,
        "geofence_geo_reloads",
        "Reloads of the territory table after its files changed on disk, by result.",
    )?
    .sample(&[("result", "ok")], d.reloads_ok)?
    .sample(&[("result", "failed")], d.reloads_failed)?;
    if let Some(took) = d.last_reload_seconds {
        gauge(
            e,
            "geofence_geo_table_load_duration_seconds",
            "How long this daemon's last reload of the territory table took (parse, fill, record).",
        )?
        .sample(&[], took)?;
    }
    counter(
        e,
        "geofence_expired_rules_removed",
        "Expired rules this daemon removed from the state.",
    )?
    .sample(&[], d.expired_removed)?;
    counter(
        e,
        "geofence_expiry_failures",
        "Failed attempts to remove expired rules from the state (see the daemon's log).",
    )?
    .sample(&[], d.expiry_failures)?;
    Ok(())
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
