//! A relay's daemon in fleet mode against a real etcd: it applies the current version and
//! says so in its status key, receives the next one by watch, and keeps enforcing through
//! an etcd outage (fail-static) until etcd returns with a new version.

mod common;
#[allow(
    dead_code,
    reason = "this file uses only the daemon, not the scrapes or namespaces"
)]
mod daemon_support;
mod fleet_support;

use std::{
    fs,
    path::Path,
    process::Command,
    thread,
    time::{Duration, Instant},
};

use common::{Dirs, root_with_bpffs};
use daemon_support::Daemon;
use fleet_support::{Etcd, etcd_installed};

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
    let files = std::env::temp_dir().join(format!("gf-fleet-files-{}", std::process::id()));
    fs::create_dir_all(&files).expect("dir");

    // Version 1 exists before the daemon starts: it is listed, applied, acknowledged.
    fleet(
        &etcd,
        &["apply", &write_policy(&files, "ORD-1", "203.0.113.0/24")],
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
        &["apply", &write_policy(&files, "ORD-2", "198.51.100.0/24")],
    );
    let json = wait_status(&etcd, "edge-1", &daemon, |e| e["status"]["version"] == 2);
    assert_eq!(json["not_latest"], serde_json::json!([]), "{json}");
    assert_eq!(enforced_orders(&d), ["ORD-2"]);
    let table = fleet(&etcd, &["status"]);
    assert!(table.contains("all 1 relays enforce version 2"), "{table}");

    // etcd gone: the daemon runs on and the enforced state does not move.
    let before = d.read_state("state.json");
    let status_before = kernel_status(&d);
    etcd.kill();
    thread::sleep(Duration::from_secs(3));
    assert_eq!(d.read_state("state.json"), before);
    assert_eq!(kernel_status(&d), status_before);
    assert!(d.read_state("fleet.json").contains("\"version\": 2"));

    // etcd back: it re-lists, and a new version reaches it.
    etcd.restart();
    fleet(
        &etcd,
        &["apply", &write_policy(&files, "ORD-3", "192.0.2.0/24")],
    );
    wait_status(&etcd, "edge-1", &daemon, |e| {
        e["status"]["version"] == 3 && e["alive"] == true
    });
    assert_eq!(enforced_orders(&d), ["ORD-3"]);
    assert!(daemon.log().contains("re-listing"), "{}", daemon.log());
    let _ = fs::remove_dir_all(&files);
}
