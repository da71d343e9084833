//! Fleet mode across real relays: three relay namespaces, each with geofence attached, its
//! own pin and state directories and its own `geofence daemon --fleet`, participants in
//! XA, XB and XC sending real UDP media and TCP signaling to two meetings on each. One
//! `fleet apply` blocks XA on town-hall: every relay drops XA on town-hall only, measured
//! by traffic, and `fleet status` shows all three on the new version. An etcd killed, or a
//! three-member cluster that loses its quorum, changes nothing the relays enforce; the next
//! version after it returns reaches all of them.
//!
//! The worlds here take one at a time (a lock): two cores carry every relay's traffic.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use geofence_tests::etcd::{Etcd, etcd_installed};
use geofence_tests::fleet::{
    FleetStatus, Site, fixture_meetings, fleet, fleet_ok, time_to_drop, wait_all_on, wait_until,
    write_policy,
};
use geofence_tests::{Geofence, require_root};

/// Generous: the machine is shared; no test here asserts a timing.
const PATIENCE: Duration = Duration::from_secs(60);

const RELAYS: [&str; 3] = ["edge-1", "edge-2", "edge-3"];
const XA_ON_TOWN_HALL: &[(&str, &[&str])] = &[("town-hall", &["XA"])];
const AND_XB_ON_STANDUP: &[(&str, &[&str])] = &[("town-hall", &["XA"]), ("standup", &["XB"])];

fn one_world_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn ready(test: &str) -> bool {
    require_root(test) && etcd_installed(test)
}

/// Three relay sites on `endpoints`, each alive in `fleet status` (no version yet).
fn start_sites(endpoints: &str) -> Vec<Site> {
    let sites: Vec<Site> = RELAYS
        .iter()
        .map(|relay| {
            let gf = Geofence::new().expect("geofence CLI");
            Site::start(gf, relay, endpoints, &fixture_meetings(), &[]).expect("a relay site")
        })
        .collect();
    wait_until("three relays alive", PATIENCE, || {
        let status = FleetStatus::read(endpoints)?;
        Ok(RELAYS
            .iter()
            .all(|r| status.relay(r).is_some_and(|row| row.alive))
            .then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", logs(&sites)));
    sites
}

fn logs(sites: &[Site]) -> String {
    sites
        .iter()
        .map(|s| {
            let log = s.daemon.as_ref().map(|d| d.log()).unwrap_or_default();
            format!("--- {} daemon log:\n{log}", s.relay)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn verify_all(sites: &[Site], when: &str, blocks: &[(&str, &[&str])]) {
    for site in sites {
        if let Err(e) = site.verify(when, blocks) {
            panic!("{e:#}\n{}", logs(sites));
        }
    }
}

/// Applies `file` and waits until `who` is dropped on `meeting` on every relay, by
/// traffic; prints the slowest relay's time from the command's return (a figure, not
/// asserted: the bench reports it).
fn apply_and_time(
    endpoints: &str,
    sites: &[Site],
    file: &str,
    who: &str,
    meeting: &str,
) -> Duration {
    let (out, returned) = fleet_ok(endpoints, &["apply", file]).expect("fleet apply");
    assert!(out.contains("written"), "{out}");
    let worlds: Vec<_> = sites.iter().map(|s| &s.world).collect();
    let per_relay = time_to_drop(&worlds, who, meeting, returned, PATIENCE)
        .unwrap_or_else(|e| panic!("{e:#}\n{}", logs(sites)));
    let slowest = per_relay.iter().copied().max().unwrap_or_default();
    let each: Vec<String> = RELAYS
        .iter()
        .zip(&per_relay)
        .map(|(r, d)| format!("{r} {} ms", d.as_millis()))
        .collect();
    println!(
        "fleet apply returned -> {who} dropped on {meeting} by all {} relays: {} ms ({})",
        sites.len(),
        slowest.as_millis(),
        each.join(", ")
    );
    slowest
}

/// What a relay enforces, from `geofence status --json`: each meeting's endpoints, rules
/// and exceptions, without the counters that move with the traffic.
fn enforced(site: &Site) -> Vec<serde_json::Value> {
    let out = site.world.gf.run(&["status", "--json"]).expect("status");
    let json: serde_json::Value = serde_json::from_str(&out).expect("status JSON");
    let meetings = json["meetings"].as_array().cloned().unwrap_or_default();
    meetings
        .iter()
        .map(|m| {
            let rules: Vec<_> = m["rules"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|r| {
                    serde_json::json!([
                        r["order"],
                        r["territories"],
                        r["prefixes"],
                        r["mode"],
                        r["expires"],
                        r["issued"],
                        r["issued_by"]
                    ])
                })
                .collect();
            serde_json::json!({
                "name": m["name"], "session": m["session"], "endpoints": m["endpoints"],
                "allows": m["allows"], "rules": rules,
            })
        })
        .collect()
}

#[test]
fn one_apply_reaches_every_relay_and_an_etcd_outage_changes_nothing() {
    let test = "one_apply_reaches_every_relay_and_an_etcd_outage_changes_nothing";
    if !ready(test) {
        return;
    }
    let _one = one_world_at_a_time();
    let mut etcd = Etcd::single().expect("etcd");
    let endpoints = etcd.endpoints();
    let sites = start_sites(&endpoints);
    verify_all(&sites, "before any fleet version", &[]);

    let dir = sites[0].world.gf.temp_dir().to_owned();
    let v1 = write_policy(&dir, "v1", "ORD-FLEET-1", XA_ON_TOWN_HALL).expect("policy");
    apply_and_time(&endpoints, &sites, &v1, "xa", "town-hall");
    verify_all(&sites, "after version 1", XA_ON_TOWN_HALL);
    wait_all_on(&endpoints, &RELAYS, 1, PATIENCE)
        .unwrap_or_else(|e| panic!("{e:#}\n{}", logs(&sites)));
    let (table, _) = fleet_ok(&endpoints, &["status"]).expect("fleet status");
    assert!(table.contains("all 3 relays enforce version 1"), "{table}");

    // etcd gone: the daemons run on, and nothing they enforce moves.
    let before: Vec<_> = sites.iter().map(enforced).collect();
    etcd.kill(0);
    assert!(
        !fleet(&endpoints, &["status"])
            .expect("fleet")
            .status
            .success()
    );
    std::thread::sleep(Duration::from_secs(2));
    verify_all(&sites, "with etcd down", XA_ON_TOWN_HALL);
    for (site, before) in sites.iter().zip(&before) {
        assert_eq!(&enforced(site), before, "relay {} changed", site.relay);
    }
    let mut sites = sites;
    for site in &mut sites {
        assert!(
            site.daemon().expect("daemon").running(),
            "relay {} exited",
            site.relay
        );
    }

    // etcd back: the next version reaches every relay.
    etcd.restart(0).expect("etcd restarts");
    let v2 = write_policy(&dir, "v2", "ORD-FLEET-2", AND_XB_ON_STANDUP).expect("policy");
    apply_and_time(&endpoints, &sites, &v2, "xb", "standup");
    verify_all(&sites, "after version 2", AND_XB_ON_STANDUP);
    wait_all_on(&endpoints, &RELAYS, 2, PATIENCE)
        .unwrap_or_else(|e| panic!("{e:#}\n{}", logs(&sites)));
}

#[test]
fn a_cluster_that_loses_its_quorum_changes_nothing_and_the_next_version_reaches_all() {
    let test = "a_cluster_that_loses_its_quorum_changes_nothing_and_the_next_version_reaches_all";
    if !ready(test) {
        return;
    }
    let _one = one_world_at_a_time();
    let mut etcd = Etcd::cluster(3).expect("a three-member etcd cluster");
    let endpoints = etcd.endpoints();
    let mut sites = start_sites(&endpoints);
    let dir = sites[0].world.gf.temp_dir().to_owned();
    let v1 = write_policy(&dir, "v1", "ORD-FLEET-1", XA_ON_TOWN_HALL).expect("policy");
    apply_and_time(&endpoints, &sites, &v1, "xa", "town-hall");
    wait_all_on(&endpoints, &RELAYS, 1, PATIENCE)
        .unwrap_or_else(|e| panic!("{e:#}\n{}", logs(&sites)));

    // Two of three members gone: the survivor answers nothing that needs a quorum.
    let before: Vec<_> = sites.iter().map(enforced).collect();
    etcd.kill(1);
    etcd.kill(2);
    wait_until("the cluster refuses reads", PATIENCE, || {
        Ok((!fleet(&endpoints, &["status"])?.status.success()).then_some(()))
    })
    .expect("no quorum");
    std::thread::sleep(Duration::from_secs(2));
    verify_all(&sites, "without a quorum", XA_ON_TOWN_HALL);
    for (site, before) in sites.iter().zip(&before) {
        assert_eq!(&enforced(site), before, "relay {} changed", site.relay);
    }
    for site in &mut sites {
        assert!(
            site.daemon().expect("daemon").running(),
            "relay {} exited",
            site.relay
        );
    }

    etcd.restart(1).expect("member 1 restarts");
    etcd.restart(2).expect("member 2 restarts");
    let v2 = write_policy(&dir, "v2", "ORD-FLEET-2", AND_XB_ON_STANDUP).expect("policy");
    let started = Instant::now();
    apply_and_time(&endpoints, &sites, &v2, "xb", "standup");
    println!(
        "(the relays were in their re-list backoff; {:?} in all)",
        started.elapsed()
    );
    verify_all(&sites, "after version 2", AND_XB_ON_STANDUP);
    wait_all_on(&endpoints, &RELAYS, 2, PATIENCE)
        .unwrap_or_else(|e| panic!("{e:#}\n{}", logs(&sites)));
}
