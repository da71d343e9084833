//! The fleet agent's link to etcd in `/metrics`: whether it is connected, how long etcd
//! has been silent, the version enforced, and the outages. An outage leaves enforcement
//! as it was (fail-static), so these say how stale the relay may be, not what it drops.

use std::fmt;

use jiff::Timestamp;

use prometheus_client::encoding::DescriptorEncoder;

use super::exposition::{counter, gauge};
use crate::fleet::connection::Connection;

fn seconds(t: Timestamp) -> f64 {
    t.as_millisecond() as f64 / 1000.0
}

/// `started`: when the daemon started, the silence's start if etcd never answered.
pub fn write(
    e: &mut DescriptorEncoder<'_>,
    c: &Connection,
    started: Timestamp,
    now: Timestamp,
) -> fmt::Result {
    gauge(
        e,
        "geofence_fleet_connected",
        "1 while the fleet agent has listed the policy from etcd and watches it; 0 while it \
         retries (the relay keeps enforcing the version it applied last).",
    )?
    .sample(&[], u32::from(c.connected))?;
    let heard = c.last_answer.unwrap_or(started);
    gauge(
        e,
        "geofence_fleet_etcd_silence_seconds",
        "Seconds since etcd last answered this relay (since the daemon started if it never \
         did); lease renewals keep it under about 4 while connected.",
    )?
    .sample(&[], now.duration_since(heard).as_secs_f64().max(0.0))?;
    if let Some(at) = c.last_answer {
        gauge(
            e,
            "geofence_fleet_etcd_last_answer_timestamp_seconds",
            "When etcd last answered this relay, in seconds since the epoch.",
        )?
        .sample(&[], seconds(at))?;
    }
    gauge(
        e,
        "geofence_fleet_version_applied",
        "The fleet policy version this relay enforces (0: none yet).",
    )?
    .sample(&[], c.version)?;
    gauge(
        e,
        "geofence_fleet_version_error",
        "1 if the latest version read could not be applied (see `geofence fleet status`).",
    )?
    .sample(&[], u32::from(c.version_error))?;
    counter(
        e,
        "geofence_fleet_outages",
        "Times the agent lost etcd (a failed connection, watch, lease or write); each outage \
         ends when it lists the policy again.",
    )?
    .sample(&[], c.outages)?;
    let outage = c.outage_since.map_or(0.0, |since| {
        now.duration_since(since).as_secs_f64().max(0.0)
    });
    gauge(
        e,
        "geofence_fleet_outage_seconds",
        "How long the outage under way has lasted (0: none).",
    )?
    .sample(&[], outage)?;
    counter(
        e,
        "geofence_fleet_status_writes",
        "Writes of this relay's status key to etcd (only when it changed).",
    )?
    .sample(&[], c.status_writes)?;
    Ok(())
}
