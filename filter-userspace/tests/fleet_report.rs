//! The fleet's transparency report against real relays: two daemons in fleet mode, each
//! dropping packets from overlapping sets of sources, and a third relay that wrote its
//! status and died. The fleet report's counts are the sum of the relays' own reports, its
//! distinct-source estimate is the estimate of their merged sketches (the union), and the
//! dead relay is listed as such.

mod common;
#[allow(
    dead_code,
    reason = "this file uses only the daemon, not the scrapes or namespaces"
)]
mod daemon_support;
mod fleet_support;
mod test_run;

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Output},
    thread,
    time::{Duration, Instant},
};

use common::{Dirs, root_with_bpffs};
use daemon_support::Daemon;
use filter_common::accounting::SKETCH_REGISTERS;
use fleet_support::{Etcd, etcd_installed};
use geofence::{
    fleet::{
        EtcdArgs, RelayStatus,
        counters::{Counters, RuleCount, Tally},
        keys,
    },
    sketch,
};
use jiff::{SignedDuration, Timestamp};
use serde_json::Value;
use test_run::{Program, XDP_DROP, close, hosts};

const ORDER: &str = "ORD-FLEET-1";

/// A directory of this test alone, removed on drop (also when the test fails).
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("gf-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("creating a temporary directory");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn fleet(etcd: &Etcd, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_geofence"))
        .args(["fleet", "--etcd", &etcd.url])
        .args(args)
        .output()
        .expect("running geofence fleet")
}

fn stdout(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// The period around now: the test does not depend on the date it runs.
fn period() -> (String, String) {
    let now = Timestamp::now();
    let day = SignedDuration::from_hours(24);
    let from = now.checked_sub(day).expect("a day ago");
    let to = now.checked_add(day).expect("a day ahead");
    (from.to_string(), to.to_string())
}

/// The counts of `ORDER` in a report's JSON (local or fleet): packets, bytes, registers.
fn counts_of(report: &Value) -> (u64, u64, [u8; SKETCH_REGISTERS], u64) {
    let rules = report["rules"].as_array().cloned().unwrap_or_default();
    let rule = rules
        .iter()
        .find(|r| r["order"] == ORDER)
        .unwrap_or_else(|| panic!("no rule of {ORDER} in {report}"));
    let c = &rule["counts"];
    let registers = c["registers"]
        .as_str()
        .and_then(sketch::registers_from_hex)
        .unwrap_or_else(|| panic!("no registers in {rule}"));
    let n = |v: &Value| v.as_u64().unwrap_or_else(|| panic!("not a count: {rule}"));
    (
        n(&c["packets"]),
        n(&c["bytes"]),
        registers,
        n(&c["distinct_sources"]),
    )
}

/// Waits until relay `name`'s status carries counters of `ORDER` with `packets`.
fn wait_counted(etcd: &Etcd, name: &str, packets: u64, daemon: &Daemon) {
    let started = Instant::now();
    loop {
        let status = json(&stdout(fleet(etcd, &["status", "--json"]), "fleet status"));
        let relays = status["relays"].as_array().cloned().unwrap_or_default();
        let counted = relays
            .iter()
            .find(|r| r["relay"] == name)
            .and_then(|r| r["status"]["counters"]["rules"].as_array().cloned())
            .unwrap_or_default();
        let got = counted
            .iter()
            .find(|r| r["order"] == ORDER)
            .and_then(|r| r["counts"]["packets"].as_u64());
        if got == Some(packets) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "relay {name} never reported {packets} packets of {ORDER} (has {got:?}): {status}\nlog:\n{}",
            daemon.log()
        );
        thread::sleep(Duration::from_millis(300));
    }
}

/// A relay that wrote a status with known counts, then died (no liveness key).
fn write_dead_relay(etcd: &Etcd, registers: &[u8; SKETCH_REGISTERS]) {
    let now = Timestamp::now();
    let status = RelayStatus {
        relay: "edge-dead".into(),
        version: 1,
        counters: Some(Counters {
            read: now,
            keep_seconds: 100 * 86_400,
            rules: vec![RuleCount {
                meeting: "standup".into(),
                order: ORDER.into(),
                territories: vec![],
                prefixes: vec!["192.0.2.0/24".into()],
                mode: "enforce".into(),
                issued: now,
                issued_by: "fleet v1 by op@ops".into(),
                expires: None,
                removed: None,
                counts: Some(Tally {
                    packets: 7,
                    bytes: 700,
                    registers: sketch::registers_hex(registers),
                }),
            }],
            omitted: 0,
        }),
        ..RelayStatus::default()
    };
    let args = EtcdArgs {
        endpoints: vec![etcd.url.clone()],
        etcd_ca: None,
        etcd_cert: None,
        etcd_key: None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut client = args.connect().await.expect("connecting");
        let value = serde_json::to_vec(&status).expect("json");
        client
            .put(keys::status("edge-dead"), value, None)
            .await
            .expect("writing the dead relay's status");
    });
}

fn write_policy(dir: &Path) -> String {
    let path = dir.join("policy.toml");
    let text = format!(
        "[meetings.standup]\n\n[[meetings.standup.rules]]\norder = \"{ORDER}\"\n\
         prefixes = [\"192.0.2.0/24\"]\n"
    );
    fs::write(&path, text).expect("writing the policy");
    path.display().to_string()
}

#[test]
fn the_fleet_report_sums_the_relays_own_reports() {
    let test = "the_fleet_report_sums_the_relays_own_reports";
    if !root_with_bpffs(test) || !etcd_installed(test) {
        return;
    }
    let etcd = Etcd::start("report");
    let files = TempDir::new("fleet-report");
    stdout(
        fleet(&etcd, &["apply", &write_policy(&files.0)]),
        "fleet apply",
    );
    let relays = [
        ("edge-a", Dirs::new("frep-a")),
        ("edge-b", Dirs::new("frep-b")),
    ];
    let mut daemons = Vec::new();
    for (name, d) in &relays {
        d.ok(&["meeting", "add", "standup", "--endpoint", "udp:*:40000"]);
        let daemon = Daemon::start_with(
            d,
            &[
                "--fleet",
                "--relay",
                name,
                "--etcd",
                &etcd.url,
                "--fleet-counters-every",
                "300ms",
            ],
        );
        daemons.push(daemon);
    }
    // Each relay drops what it was sent: 30 sources twice at edge-a, 40 once at edge-b,
    // 10 of them seen by both (192.0.2.40-49): 60 distinct in all.
    let sent = [
        (hosts([192, 0, 2], 20, 30), 2usize, 60u64),
        (hosts([192, 0, 2], 40, 40), 1, 40),
    ];
    for (((name, d), daemon), (sources, each, packets)) in relays.iter().zip(&daemons).zip(&sent) {
        // Only once the relay enforces the rule does the program drop these.
        wait_counted(&etcd, name, 0, daemon);
        Program::load(&d.pin).send(sources, 40000, *each, XDP_DROP);
        wait_counted(&etcd, name, *packets, daemon);
    }

    let (from, to) = period();
    let window = ["--from", from.as_str(), "--to", to.as_str()];
    let own_reports: Vec<Value> = relays
        .iter()
        .map(|(_, d)| {
            let mut args = vec!["report", "--format", "json"];
            args.extend(window);
            json(&d.ok(&args))
        })
        .collect();
    let own: Vec<(u64, u64, [u8; SKETCH_REGISTERS], u64)> =
        own_reports.iter().map(counts_of).collect();
    let mut args = vec!["report", "--format", "json"];
    args.extend(window);
    let report = json(&stdout(fleet(&etcd, &args), "fleet report"));
    // Each relay's row names the head of its own audit trail, as its own report does.
    for ((name, _), own) in relays.iter().zip(&own_reports) {
        let row = report["relays"]
            .as_array()
            .and_then(|r| r.iter().find(|r| r["relay"] == *name).cloned())
            .unwrap_or_default();
        assert_eq!(
            row["audit_head"]["hash"], own["provenance"]["last_hash"],
            "{name}: {row}"
        );
        assert_eq!(row["audit_head"]["chain"], "intact", "{row}");
    }
    // The status keys carry sketches, never the sources' addresses.
    let status = stdout(fleet(&etcd, &["status", "--json"]), "fleet status");
    for host in 20..80 {
        let address = format!("192.0.2.{host}");
        assert!(
            !status.contains(&address),
            "{address} in a status key: {status}"
        );
    }
    let (packets, bytes, registers, distinct) = counts_of(&report);
    let mut merged = [0u8; SKETCH_REGISTERS];
    for (_, _, regs, _) in &own {
        for (m, r) in merged.iter_mut().zip(regs) {
            *m = (*m).max(*r);
        }
    }
    assert_eq!(packets, own.iter().map(|o| o.0).sum::<u64>(), "{report}");
    assert_eq!(packets, 100);
    assert_eq!(bytes, own.iter().map(|o| o.1).sum::<u64>(), "{report}");
    assert_eq!(registers, merged);
    assert_eq!(distinct, sketch::estimate_count(&merged));
    // The union's estimate, not the sum of the relays' (70).
    assert!(close(distinct as f64, 60), "{distinct} distinct sources");
    assert!(distinct < own.iter().map(|o| o.3).sum::<u64>(), "{own:?}");
    assert_eq!(report["totals"]["packets"], 100, "{report}");
    let states: Vec<(&str, &str)> = report["relays"]
        .as_array()
        .map(|r| {
            r.iter()
                .map(|r| {
                    (
                        r["relay"].as_str().unwrap_or(""),
                        r["state"].as_str().unwrap_or(""),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(states, [("edge-a", "reporting"), ("edge-b", "reporting")]);

    // A third relay's last word: added in, and listed as dead.
    let mut extra = filter_common::accounting::SourceSketch::EMPTY;
    for i in 0..5u32 {
        extra.add(&filter_common::maps::v4_mapped(
            (0xc000_0200 + 200 + i).to_be_bytes(),
        ));
    }
    write_dead_relay(&etcd, &extra.registers);
    let report = json(&stdout(fleet(&etcd, &args), "fleet report"));
    let (packets, _, registers, distinct) = counts_of(&report);
    assert_eq!(packets, 107, "{report}");
    for (m, r) in merged.iter_mut().zip(extra.registers) {
        *m = (*m).max(r);
    }
    assert_eq!(registers, merged);
    assert_eq!(distinct, sketch::estimate_count(&merged));
    let dead = report["relays"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["relay"] == "edge-dead").cloned())
        .unwrap_or_default();
    assert_eq!(dead["state"], "dead", "{report}");

    // Markdown and CSV: the local report's rendering, the relays beside it.
    let mut args = vec!["report", "--format", "md"];
    args.extend(window);
    let md = stdout(fleet(&etcd, &args), "fleet report --format md");
    assert!(
        md.contains(ORDER) && md.contains("| edge-dead | dead |"),
        "{md}"
    );
    let mut args = vec!["report", "--format", "csv"];
    args.extend(window);
    let out = fleet(&etcd, &args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let csv = stdout(out, "fleet report --format csv");
    let row = csv
        .lines()
        .find(|l| l.starts_with(ORDER))
        .unwrap_or_else(|| panic!("no row of {ORDER}: {csv}"));
    assert!(row.contains(",107,"), "{row}");
    assert!(stderr.contains("relay edge-dead is dead"), "{stderr}");
}

/// The counters' flags refuse what cannot work, naming the flag, before the daemon starts.
#[test]
fn counter_flags_that_cannot_work_are_refused() {
    // Were a value taken, the daemon would start: in directories of this test alone, and
    // stopped below.
    let dirs = TempDir::new("fleet-counter-flags");
    for (flag, value, says) in [
        ("--fleet-counters-every", "0s", "shorter than 100ms"),
        ("--fleet-counters-every", "50ms", "shorter than 100ms"),
        ("--fleet-counters-keep", "a week", "is not a duration"),
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_geofence"))
            .arg("--pin-dir")
            .arg(dirs.0.join("pin"))
            .arg("--state-dir")
            .arg(dirs.0.join("state"))
            .args([
                "daemon",
                "--listen",
                "127.0.0.1:0",
                "--fleet",
                "--relay",
                "edge-x",
            ])
            .args(["--etcd", "http://127.0.0.1:1", flag, value])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("running geofence");
        let started = Instant::now();
        while child.try_wait().ok().flatten().is_none() {
            if started.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{flag} {value} was taken: the daemon started");
            }
            thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().expect("its output");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{flag} {value} was taken");
        assert!(stderr.contains(flag) && stderr.contains(says), "{stderr}");
    }
}
