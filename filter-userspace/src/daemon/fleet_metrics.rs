//! The fleet agent's link to etcd in `/metrics`: whether it is connected, how long etcd
//! has been silent, the version enforced, and the outages. An outage leaves enforcement
//! as it was (fail-static), so these say how stale the relay may be, not what it drops.

use jiff::Timestamp;

use super::exposition::{Exposition, Kind};
use crate::fleet::connection::Connection;

fn seconds(t: Timestamp) -> f64 {
    t.as_millisecond() as f64 / 1000.0
}

/// `started`: when the daemon started, the silence's start if etcd never answered.
pub fn render(e: &mut Exposition, c: &Connection, started: Timestamp, now: Timestamp) {
    e.family(
        "geofence_fleet_connected",
        Kind::Gauge,
        "1 while the fleet agent has listed the policy from etcd and watches it; 0 while it \
         retries (the relay keeps enforcing the version it applied last).",
    )
    .sample(&[], u8::from(c.connected));
    let heard = c.last_answer.unwrap_or(started);
    e.family(
        "geofence_fleet_etcd_silence_seconds",
        Kind::Gauge,
        "Seconds since etcd last answered this relay (since the daemon started if it never \
         did); lease renewals keep it under about 4 while connected.",
    )
    .sample(&[], now.duration_since(heard).as_secs_f64().max(0.0));
    if let Some(at) = c.last_answer {
        e.family(
            "geofence_fleet_etcd_last_answer_timestamp_seconds",
            Kind::Gauge,
            "When etcd last answered this relay, in seconds since the epoch.",
        )
        .sample(&[], seconds(at));
    }
    e.family(
        "geofence_fleet_version_applied",
        Kind::Gauge,
        "The fleet policy version this relay enforces (0: none yet).",
    )
    .sample(&[], c.version);
    e.family(
        "geofence_fleet_version_error",
        Kind::Gauge,
        "1 if the latest version read could not be applied (see `geofence fleet status`).",
    )
    .sample(&[], u8::from(c.version_error));
    e.family(
        "geofence_fleet_outages_total",
        Kind::Counter,
        "Times the agent lost etcd (a failed connection, watch, lease or write); each outage \
         ends when it lists the policy again.",
    )
    .sample(&[], c.outages);
    let outage = c.outage_since.map_or(0.0, |since| {
        now.duration_since(since).as_secs_f64().max(0.0)
    });
    e.family(
        "geofence_fleet_outage_seconds",
        Kind::Gauge,
        "How long the outage under way has lasted (0: none).",
    )
    .sample(&[], outage);
    e.family(
        "geofence_fleet_status_writes_total",
        Kind::Counter,
        "Writes of this relay's status key to etcd (only when it changed).",
    )
    .sample(&[], c.status_writes);
}
