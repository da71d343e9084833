//! Three real relays: each in its network namespaces with geofence attached, its own pin
//! and state directories and its own `geofence daemon --fleet`, participants in XA, XB and
//! XC sending UDP every 2 ms. Each version blocks another territory on town-hall; the
//! figure is the time from `fleet apply` returning until that territory's datagrams stop
//! reaching the slowest relay (the relays log when each datagram arrives).

use std::time::Duration;

use anyhow::Context as _;
use geofence_tests::{
    Geofence,
    etcd::Etcd,
    fleet::{
        FleetStatus, Site, fixture_meetings, fleet_ok, time_to_drop, wait_all_on, wait_until,
        write_policy,
    },
};

const RELAYS: [&str; 3] = ["bench-edge-1", "bench-edge-2", "bench-edge-3"];
const LIMIT: Duration = Duration::from_secs(60);

/// Per apply, the slowest relay's time to drop.
pub fn run(applies: usize) -> anyhow::Result<Vec<Duration>> {
    let etcd = Etcd::single()?;
    let endpoints = etcd.endpoints();
    let mut sites = Vec::new();
    for relay in RELAYS {
        sites.push(Site::start(
            Geofence::new()?,
            relay,
            &endpoints,
            &fixture_meetings(),
            &[],
        )?);
    }
    wait_until("the relays alive", LIMIT, || {
        let status = FleetStatus::read(&endpoints)?;
        Ok(RELAYS
            .iter()
            .all(|r| status.relay(r).is_some_and(|row| row.alive))
            .then_some(()))
    })?;
    let dir = sites[0].world.gf.temp_dir().to_owned();
    let worlds: Vec<_> = sites.iter().map(|s| &s.world).collect();
    let mut times = Vec::new();
    for j in 0..applies {
        let (participant, territory) = [("xa", "XA"), ("xb", "XB"), ("xc", "XC")][j % 3];
        let file = write_policy(
            &dir,
            &format!("real-{j}"),
            &format!("ORD-REAL-{j}"),
            &[("town-hall", &[territory])],
        )?;
        let (_, returned) = fleet_ok(&endpoints, &["apply", &file])?;
        let per_relay = time_to_drop(&worlds, participant, "town-hall", returned, LIMIT)?;
        times.push(per_relay.into_iter().max().context("no relays")?);
        wait_all_on(&endpoints, &RELAYS, j as u64 + 1, LIMIT)?;
        // The territory the version before blocked flows again before the next apply.
        std::thread::sleep(Duration::from_millis(400));
    }
    Ok(times)
}
