//! Least privilege over TLS: etcd wants client certificates, its users are their CNs, and
//! the roles are made by running docs/fleet.md's `etcdctl` commands as written. A relay's
//! certificate reads the policy and writes its own keys, nothing else; an operator's runs
//! every `fleet` command; no certificate, or one from another CA, is refused.

mod common;
#[allow(
    dead_code,
    reason = "this file uses only the daemon, not the scrapes or namespaces"
)]
mod daemon_support;
mod fleet_support;

use std::{
    path::Path,
    process::{Command, Output},
    thread,
    time::{Duration, Instant},
};

use common::{Dirs, root_with_bpffs};
use daemon_support::Daemon;
use etcd_client::PutOptions;
use fleet_support::{Etcd, Pki, etcd_installed, free_port, openssl_installed};
use geofence::fleet::{EtcdArgs, keys, store};

/// The relay and the operator docs/fleet.md's role commands name.
const RELAY: &str = "edge-fra-1";
const OPERATOR: &str = "alice";

/// docs/fleet.md's `etcdctl` commands of the least-privilege section, run as root, with
/// the root password (`…` there) filled in.
fn set_up_roles(etcd: &Etcd) {
    let docs =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/fleet.md"))
            .expect("reading docs/fleet.md");
    let section = docs
        .split("## Least privilege")
        .nth(1)
        .expect("docs/fleet.md has a least-privilege section");
    let block = section
        .split("```")
        .nth(1)
        .expect("the section starts with the etcdctl commands");
    let mut ran = 0;
    for command in block.lines().flat_map(|l| l.split(';')) {
        let Some(args) = command.trim().strip_prefix("etcdctl ") else {
            continue;
        };
        let args: Vec<String> = args
            .split_whitespace()
            .map(|a| a.replace('…', "root-password-of-this-test"))
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = etcd.ctl(&args);
        assert!(
            out.status.success(),
            "docs/fleet.md: etcdctl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        ran += 1;
    }
    assert!(ran >= 10, "only {ran} etcdctl commands in docs/fleet.md");
}

fn fleet(etcd: &Etcd, pki: &Pki, who: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_geofence"))
        .arg("fleet")
        .args(pki.flags(who))
        .args(args)
        .env("GEOFENCE_ETCD", &etcd.url)
        .output()
        .expect("running geofence fleet")
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn refused(out: Output, what: &str) -> String {
    assert!(
        !out.status.success(),
        "{what} was not refused ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn args(etcd: &Etcd, pki: &Pki, cert: Option<&str>) -> EtcdArgs {
    EtcdArgs {
        endpoints: vec![etcd.url.clone()],
        etcd_ca: Some(pki.ca()),
        etcd_cert: cert.map(|c| pki.cert(c)),
        etcd_key: cert.map(|c| pki.key(c)),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn denied<T: std::fmt::Debug>(result: Result<T, etcd_client::Error>, what: &str) {
    let e = result.expect_err(&format!("{what} was allowed"));
    assert!(
        e.to_string().contains("permission denied"),
        "{what}: refused, but not by a permission check: {e}"
    );
}

/// The policy file an operator writes.
fn policy(dir: &Path) -> String {
    policy_ordering(dir, "ORD-TLS")
}

fn policy_ordering(dir: &Path, order: &str) -> String {
    let path = dir.join(format!("{order}.toml"));
    let text = format!(
        "[meetings.standup]\nendpoints = [\"udp:*:40000\"]\n\n[[meetings.standup.rules]]\n\
         order = \"{order}\"\nprefixes = [\"203.0.113.0/24\"]\n"
    );
    std::fs::write(&path, text).expect("writing the policy");
    path.display().to_string()
}

/// `fleet status --json`'s entry of the relay once it is alive and reports `version`.
fn wait_version(etcd: &Etcd, pki: &Pki, version: u64, daemon: &Daemon) -> serde_json::Value {
    let started = Instant::now();
    loop {
        let out = ok(
            fleet(etcd, pki, OPERATOR, &["status", "--json"]),
            "fleet status",
        );
        let json: serde_json::Value = serde_json::from_str(&out).expect("json");
        let relay = &json["relays"][0];
        if relay["relay"] == RELAY
            && relay["alive"] == true
            && relay["status"]["version"] == version
        {
            return relay.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the relay never reported version {version}: {json}\nlog:\n{}",
            daemon.log()
        );
        thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn each_certificate_gets_only_what_its_role_grants() {
    let test = "each_certificate_gets_only_what_its_role_grants";
    if !etcd_installed(test) || !openssl_installed(test) {
        return;
    }
    let pki = Pki::new("roles", &["root", OPERATOR, RELAY]);
    let etcd = Etcd::start_tls("roles", &pki);
    set_up_roles(&etcd);

    // The operator: every fleet command, etcd's URL from GEOFENCE_ETCD.
    let applied = ok(
        fleet(&etcd, &pki, OPERATOR, &["apply", &policy(&pki.dir)]),
        "fleet apply as the operator",
    );
    assert!(applied.contains("fleet version 1 written"), "{applied}");
    let exported = ok(fleet(&etcd, &pki, OPERATOR, &["export"]), "fleet export");
    assert!(exported.contains("ORD-TLS"), "{exported}");
    ok(fleet(&etcd, &pki, OPERATOR, &["status"]), "fleet status");
    let shown = ok(
        fleet(&etcd, &pki, OPERATOR, &["audit", "show"]),
        "fleet audit show",
    );
    assert!(shown.contains("version 1"), "{shown}");
    ok(
        fleet(&etcd, &pki, OPERATOR, &["audit", "verify"]),
        "fleet audit verify",
    );
    let report = ok(
        fleet(
            &etcd,
            &pki,
            OPERATOR,
            &[
                "report",
                "--from",
                "2000-01-01",
                "--to",
                "2000-01-02",
                "--format",
                "json",
            ],
        ),
        "fleet report",
    );
    assert!(report.contains("\"relays\""), "{report}");

    // The relay's certificate, through the same client the daemon uses.
    let rt = runtime();
    rt.block_on(async {
        let mut relay = args(&etcd, &pki, Some(RELAY))
            .connect()
            .await
            .expect("connecting");
        let (current, _) = store::read_policy(&mut relay)
            .await
            .expect("reading the policy");
        assert_eq!(current.map(|c| c.doc.version), Some(1));
        relay
            .put(keys::status(RELAY), "{}", None)
            .await
            .expect("writing its own status");
        let lease = relay.lease_grant(10, None).await.expect("a lease").id();
        relay
            .put(
                keys::alive(RELAY),
                "{}",
                Some(PutOptions::new().with_lease(lease)),
            )
            .await
            .expect("writing its own liveness key");
        relay
            .watch(keys::POLICY, None)
            .await
            .expect("watching the policy");
        denied(
            relay.put(keys::POLICY, "{}", None).await,
            "writing the policy",
        );
        denied(
            relay.put(keys::version(2), "{}", None).await,
            "writing a version",
        );
        denied(
            relay.put(keys::status("edge-fra-2"), "{}", None).await,
            "writing another relay's status",
        );
        // The grant ends at the name's `/`: edge-fra-10 is another relay.
        denied(
            relay.put(keys::status("edge-fra-10"), "{}", None).await,
            "writing edge-fra-10's status",
        );
        denied(
            relay.get(keys::VERSIONS, None).await,
            "reading the version log",
        );
        denied(
            relay.delete(keys::POLICY, None).await,
            "deleting the policy",
        );
    });

    // No client certificate, or one another CA signed (with the relay's own CN).
    for (cert, what) in [
        (None, "no client certificate"),
        (Some("rogue-edge-fra-1"), "a certificate from another CA"),
    ] {
        let e = rt.block_on(async {
            let mut client = args(&etcd, &pki, cert).connect().await?;
            store::read_policy(&mut client).await.map(|_| ())
        });
        assert!(e.is_err(), "{what} was let in");
        let mut flags = vec![
            "fleet".to_string(),
            "--etcd".into(),
            etcd.url.clone(),
            "--etcd-ca".into(),
            pki.ca().display().to_string(),
        ];
        if let Some(c) = cert {
            flags.extend(["--etcd-cert".into(), pki.cert(c).display().to_string()]);
            flags.extend(["--etcd-key".into(), pki.key(c).display().to_string()]);
        }
        flags.push("status".into());
        let out = Command::new(env!("CARGO_BIN_EXE_geofence"))
            .args(&flags)
            .output()
            .expect("running geofence");
        let status = out.status;
        let stderr = refused(out, what);
        assert!(
            stderr.contains("--etcd-cert"),
            "{what}: {status} {stderr:?} {flags:?}"
        );
    }
}

/// Flags that cannot work are refused before anything is dialled, naming the flag.
#[test]
fn tls_flags_that_cannot_work_are_refused_naming_them() {
    let test = "tls_flags_that_cannot_work_are_refused_naming_them";
    if !openssl_installed(test) {
        return;
    }
    let pki = Pki::new("flags", &[RELAY]);
    let geofence = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_geofence"))
            .args(args)
            .env_remove("GEOFENCE_ETCD")
            .output()
            .expect("running geofence")
    };
    let ca = pki.ca().display().to_string();
    let stderr = refused(
        geofence(&["fleet", "--etcd", "https://127.0.0.1:1", "status"]),
        "https without --etcd-ca",
    );
    assert!(stderr.contains("--etcd-ca"), "{stderr}");
    let stderr = refused(
        geofence(&[
            "fleet",
            "--etcd",
            "http://127.0.0.1:1",
            "--etcd-ca",
            &ca,
            "status",
        ]),
        "http with --etcd-ca",
    );
    assert!(stderr.contains("need https://"), "{stderr}");
    // A key given as the certificate: named, with what it should hold.
    let key = pki.key(RELAY).display().to_string();
    let stderr = refused(
        geofence(&[
            "fleet",
            "--etcd",
            "https://127.0.0.1:1",
            "--etcd-ca",
            &ca,
            "--etcd-cert",
            &key,
            "--etcd-key",
            &key,
            "status",
        ]),
        "a key as --etcd-cert",
    );
    assert!(
        stderr.contains("--etcd-cert") && stderr.contains("CERTIFICATE"),
        "{stderr}"
    );
    let stderr = refused(
        geofence(&[
            "fleet",
            "--etcd",
            "https://127.0.0.1:1",
            "--etcd-ca",
            "/nonexistent/ca.pem",
            "status",
        ]),
        "a missing CA file",
    );
    assert!(stderr.contains("/nonexistent/ca.pem"), "{stderr}");
}

/// The daemon of a relay, with the relay's certificate only: it applies the operator's
/// version and reports its status and liveness.
#[test]
fn a_relay_daemon_runs_on_its_certificate_alone() {
    let test = "a_relay_daemon_runs_on_its_certificate_alone";
    if !root_with_bpffs(test) || !etcd_installed(test) || !openssl_installed(test) {
        return;
    }
    let pki = Pki::new("daemon", &["root", OPERATOR, RELAY]);
    let etcd = Etcd::start_tls("daemon", &pki);
    set_up_roles(&etcd);
    ok(
        fleet(&etcd, &pki, OPERATOR, &["apply", &policy(&pki.dir)]),
        "fleet apply",
    );
    let d = Dirs::new("fleet-tls");
    d.ok(&["meeting", "add", "standup", "--endpoint", "udp:*:40000"]);
    // A member that is down, first or second in the list: passed over.
    let down = format!("https://127.0.0.1:{}", free_port());
    let mut daemon_args = vec![
        "--fleet".to_string(),
        "--relay".into(),
        RELAY.into(),
        "--etcd".into(),
        format!("{down},{}", etcd.url),
    ];
    daemon_args.extend(pki.flags(RELAY));
    let daemon_args: Vec<&str> = daemon_args.iter().map(String::as_str).collect();
    let daemon = Daemon::start_with(&d, &daemon_args);
    let relay = wait_version(&etcd, &pki, 1, &daemon);
    assert!(relay["status"]["error"].is_null(), "{relay}");
    assert!(relay["status"]["audit_head"]["seq"].is_u64(), "{relay}");
    assert!(d.read_state("state.json").contains("ORD-TLS"));
    // The next version reaches it through its watch.
    ok(
        fleet(
            &etcd,
            &pki,
            OPERATOR,
            &["apply", &policy_ordering(&pki.dir, "ORD-TLS-2")],
        ),
        "fleet apply",
    );
    wait_version(&etcd, &pki, 2, &daemon);
    assert!(d.read_state("state.json").contains("ORD-TLS-2"));
}

/// A list of endpoints with one member down: every command answers from the other, in
/// whichever order they are given.
#[test]
fn a_member_down_in_the_list_is_passed_over() {
    let test = "a_member_down_in_the_list_is_passed_over";
    if !etcd_installed(test) {
        return;
    }
    let etcd = Etcd::start("down");
    let down = format!("http://127.0.0.1:{}", free_port());
    for list in [
        format!("{down},{}", etcd.url),
        format!("{},{down}", etcd.url),
    ] {
        // Several processes: each starts from a place its process id picks.
        for _ in 0..4 {
            let out = Command::new(env!("CARGO_BIN_EXE_geofence"))
                .args(["fleet", "status"])
                .env("GEOFENCE_ETCD", &list)
                .output()
                .expect("running geofence");
            ok(out, &format!("fleet status with GEOFENCE_ETCD={list}"));
        }
    }
    // All down: the error names each endpoint.
    let other = format!("http://127.0.0.1:{}", free_port());
    let out = Command::new(env!("CARGO_BIN_EXE_geofence"))
        .args(["fleet", "--etcd", &format!("{down},{other}"), "status"])
        .output()
        .expect("running geofence");
    let stderr = refused(out, "fleet status with every member down");
    assert!(
        stderr.contains("no etcd endpoint answered")
            && stderr.contains(&down)
            && stderr.contains(&other),
        "{stderr}"
    );
}
