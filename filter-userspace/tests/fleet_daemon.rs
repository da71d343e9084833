//! A relay's daemon in fleet mode against a real etcd: it applies the current version and
//! says so in its status key, receives the next one by watch, and keeps enforcing through
//! an etcd outage (fail-static), which its `/metrics` and log show, until etcd returns
//! with a new version.

mod common;
#[allow(
    dead_code,
    reason = "this file uses only the daemon, not the scrapes or namespaces"
)]
mod daemon_support;
mod fleet_support;

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    thread,
    time::{Duration, Instant},
};

use common::{Dirs, root_with_bpffs};
use daemon_support::{Daemon, value};
use fleet_support::{Etcd, etcd_installed};

/// A directory of this test alone, removed on drop (also when the test fails).
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn fleet(etcd: &Etcd, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_geofence"))
        .args(["fleet", "--etcd", &etcd.url])
        .args(args)
        .output()
        .expect("running geofence fleet");
    assert!(
        out.status.success(),
        "fleet {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn write_policy(dir: &Path, order: &str, prefix: &str) -> String {
    let path = dir.join(format!("{order}.toml"));
    let text = format!(
        "[meetings.standup]\nendpoints = [\"udp:*:40000\"]\n\n[[meetings.standup.rules]]\n\
         order = \"{order}\"\nprefixes = [\"{prefix}\"]\n"
    );
    fs::write(&path, text).expect("writing the policy");
    path.display().to_string()
}

/// `fleet status --json`'s entry for `relay`, once `check` holds for it.
fn wait_status(
    etcd: &Etcd,
    relay: &str,
    daemon: &Daemon,
    check: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let started = Instant::now();
    loop {
        let json: serde_json::Value =
            serde_json::from_str(&fleet(etcd, &["status", "--json"])).expect("json");
        let entry = json["relays"]
            .as_array()
            .and_then(|r| r.iter().find(|r| r["relay"] == relay).cloned());
        if entry.is_some_and(|e| check(&e)) {
            return json;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "relay {relay} never reached the expected status: {json}\nlog:\n{}",
            daemon.log()
        );
        thread::sleep(Duration::from_millis(200));
    }
}

fn enforced_orders(d: &Dirs) -> Vec<String> {
    let state: serde_json::Value =
        serde_json::from_str(&d.read_state("state.json")).unwrap_or_default();
    let rules = state["meetings"]["standup"]["rules"].as_array().cloned();
    rules
        .unwrap_or_default()
        .iter()
        .map(|r| r["order"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// `geofence status --json` without its clock reading: what the kernel enforces.
fn kernel_status(d: &Dirs) -> serde_json::Value {
    let mut json: serde_json::Value =
        serde_json::from_str(&d.ok(&["status", "--json"])).expect("json");
    json.as_object_mut().map(|o| o.remove("time"));
    json
}

#[test]
fn relay_applies_watches_and_stays_static_through_an_outage() {
    let test = "relay_applies_watches_and_stays_static_through_an_outage";
    if !root_with_bpffs(test) || !etcd_installed(test) {
        return;
    }
    let mut etcd = Etcd::start("relay");
    let d = Dirs::new("fleet");
    d.ok(&["meeting", "add", "standup", "--endpoint", "udp:*:40000"]);
    fs::create_dir_all(&d.state).expect("state dir");
    let files =
        TempDir(std::env::temp_dir().join(format!("gf-fleet-files-{}", std::process::id())));
    fs::create_dir_all(&files.0).expect("dir");
    let files = &files.0;

    // Version 1 exists before the daemon starts: it is listed, applied, acknowledged.
    fleet(
        &etcd,
        &["apply", &write_policy(files, "ORD-1", "203.0.113.0/24")],
    );
    let daemon = Daemon::start_with(&d, &["--fleet", "--relay", "edge-1", "--etcd", &etcd.url]);
    let json = wait_status(&etcd, "edge-1", &daemon, |e| e["status"]["version"] == 1);
    let relay = &json["relays"][0];
    assert_eq!(relay["alive"], true, "{json}");
    assert!(relay["status"]["enforced_hash"].is_string(), "{json}");
    assert_eq!(enforced_orders(&d), ["ORD-1"]);
    // One local audit entry names the fleet version and its author.
    let audit = d.ok(&["audit", "show", "--json"]);
    assert!(
        audit.contains("fleet apply") && audit.contains("fleet_version"),
        "{audit}"
    );

    // Version 2 reaches it by watch.
    fleet(
        &etcd,
        &["apply", &write_policy(files, "ORD-2", "198.51.100.0/24")],
    );
    let json = wait_status(&etcd, "edge-1", &daemon, |e| e["status"]["version"] == 2);
    assert_eq!(json["not_latest"], serde_json::json!([]), "{json}");
    assert_eq!(enforced_orders(&d), ["ORD-2"]);
    let table = fleet(&etcd, &["status"]);
    assert!(table.contains("all 1 relays enforce version 2"), "{table}");
    let scrape = daemon.wait_for("geofence_fleet_version_applied", &[], 2.0);
    assert_eq!(value(&scrape, "geofence_fleet_connected", &[]), Some(1.0));
    assert_eq!(
        value(&scrape, "geofence_fleet_outages_total", &[]),
        Some(0.0)
    );

    // etcd gone: the daemon runs on and the enforced state does not move.
    let before = d.read_state("state.json");
    let status_before = kernel_status(&d);
    etcd.kill();
    // /metrics says the link is down, and since when; enforcement does not move.
    daemon.wait_for("geofence_fleet_connected", &[], 0.0);
    // A second beyond the 3 s asserted below: on a loaded machine the last answer can be
    // stamped a few tens of ms after the link is reported down.
    thread::sleep(Duration::from_secs(4));
    let scrape = daemon.scrape();
    assert_eq!(
        value(&scrape, "geofence_fleet_outages_total", &[]),
        Some(1.0)
    );
    assert_eq!(
        value(&scrape, "geofence_fleet_version_applied", &[]),
        Some(2.0)
    );
    let silence = value(&scrape, "geofence_fleet_etcd_silence_seconds", &[]);
    assert!(silence.is_some_and(|s| s >= 3.0), "{silence:?}");
    let outage = value(&scrape, "geofence_fleet_outage_seconds", &[]);
    assert!(outage.is_some_and(|s| s >= 3.0), "{outage:?}");
    assert!(
        daemon.log().contains("fleet: outage 1 began"),
        "{}",
        daemon.log()
    );
    assert_eq!(d.read_state("state.json"), before);
    assert_eq!(kernel_status(&d), status_before);
    assert!(d.read_state("fleet.json").contains("\"version\": 2"));

    // etcd back: it re-lists, and a new version reaches it.
    etcd.restart();
    fleet(
        &etcd,
        &["apply", &write_policy(files, "ORD-3", "192.0.2.0/24")],
    );
    wait_status(&etcd, "edge-1", &daemon, |e| {
        e["status"]["version"] == 3 && e["alive"] == true
    });
    assert_eq!(enforced_orders(&d), ["ORD-3"]);
    assert!(daemon.log().contains("re-listing"), "{}", daemon.log());
    let scrape = daemon.wait_for("geofence_fleet_version_applied", &[], 3.0);
    assert_eq!(value(&scrape, "geofence_fleet_connected", &[]), Some(1.0));
    assert_eq!(
        value(&scrape, "geofence_fleet_outages_total", &[]),
        Some(1.0)
    );
    assert_eq!(
        value(&scrape, "geofence_fleet_outage_seconds", &[]),
        Some(0.0)
    );
    assert!(
        daemon.log().contains("fleet: outage 1 ended after"),
        "{}",
        daemon.log()
    );
}

/// Whether the program drops a packet from `src` to the meeting's port, by `explain`'s
/// probe of the kernel (which counts nothing).
fn kernel_drops(d: &Dirs, src: &str) -> bool {
    let json: serde_json::Value = serde_json::from_str(&d.ok(&[
        "explain",
        "--proto",
        "udp",
        "--src",
        src,
        "--dst",
        "100.64.0.1:40000",
        "--json",
    ]))
    .expect("explain json");
    let kernel = &json["kernel"][0];
    assert_eq!(kernel["agrees"], true, "{json}");
    kernel["xdp_action"] == "DROP"
}

/// A relay rebooted while etcd is unreachable: its kernel maps are gone, and `restore`
/// brings back the last fleet version it applied, from its state directory alone.
#[test]
fn restore_without_etcd_brings_back_the_last_applied_version() {
    let test = "restore_without_etcd_brings_back_the_last_applied_version";
    if !root_with_bpffs(test) || !etcd_installed(test) {
        return;
    }
    let mut etcd = Etcd::start("reboot");
    let d = Dirs::new("fleet-reboot");
    d.ok(&["meeting", "add", "standup", "--endpoint", "udp:*:40000"]);
    let files =
        TempDir(std::env::temp_dir().join(format!("gf-fleet-reboot-{}", std::process::id())));
    fs::create_dir_all(&files.0).expect("dir");
    fleet(
        &etcd,
        &["apply", &write_policy(&files.0, "ORD-R1", "203.0.113.0/24")],
    );
    let daemon = Daemon::start_with(&d, &["--fleet", "--relay", "edge-r", "--etcd", &etcd.url]);
    wait_status(&etcd, "edge-r", &daemon, |e| e["status"]["version"] == 1);
    assert!(kernel_drops(&d, "203.0.113.5:1"), "version 1 in force");
    assert!(!kernel_drops(&d, "198.51.100.5:1"), "others pass");

    // The reboot: daemon and etcd gone, the kernel's maps with them.
    drop(daemon);
    etcd.kill();
    fs::remove_dir_all(&d.pin).expect("removing the pins, as a reboot does");
    d.ok(&["restore"]);
    assert_eq!(enforced_orders(&d), ["ORD-R1"]);
    assert!(
        kernel_drops(&d, "203.0.113.5:1"),
        "after restore without etcd, the last applied version is in force again"
    );
    assert!(!kernel_drops(&d, "198.51.100.5:1"));
    assert!(d.read_state("fleet.json").contains("\"version\": 1"));
}
