//! Fleet policy writes against a real etcd: the compare-and-swap lets exactly one of two
//! concurrent operators win, and the other is told who did.

mod fleet_support;

use std::{fs, process::Command};

use fleet_support::{Etcd, etcd_installed};
use geofence::fleet::{EtcdArgs, document::PolicyDoc, store};

fn fleet(etcd: &Etcd, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_geofence"))
        .args(["fleet", "--etcd", &etcd.url])
        .args(args)
        .output()
        .expect("running geofence fleet")
}

fn policy(dir: &std::path::Path, name: &str, order: &str) -> String {
    let path = dir.join(name);
    let text = format!(
        "[meetings.standup]\n\n[[meetings.standup.rules]]\norder = \"{order}\"\nprefixes = [\"203.0.113.0/24\"]\n"
    );
    fs::write(&path, text).expect("writing the policy");
    path.display().to_string()
}

fn doc(version: u64, order: &str, prev: Option<String>) -> PolicyDoc {
    let json = serde_json::json!({
        "version": version, "author": format!("op-{order}"), "written": "2026-12-06T00:00:00Z",
        "source": { "file": "t.toml", "sha256": "00" }, "prev": prev, "geo": null,
        "meetings": { "standup": { "rules": [{ "order": order, "prefixes": ["203.0.113.0/24"], "expires": null }] } },
    });
    let doc: PolicyDoc = serde_json::from_value(json).expect("a document");
    doc.seal()
}

/// Both operators read the same revision, then both write: one wins, one is refused and
/// learns the winner's version.
#[test]
fn concurrent_writes_exactly_one_wins() {
    if !etcd_installed("concurrent_writes_exactly_one_wins") {
        return;
    }
    let etcd = Etcd::start("cas");
    let (args, runtime) = client_of(&etcd);
    runtime.block_on(async {
        let (mut a, mut b) = (
            args.connect().await.expect("a"),
            args.connect().await.expect("b"),
        );
        let (ra, _) = store::read_policy(&mut a).await.expect("read a");
        let (rb, _) = store::read_policy(&mut b).await.expect("read b");
        assert!(ra.is_none() && rb.is_none());
        let wa = store::write_policy(&mut a, None, &doc(1, "A", None))
            .await
            .expect("a");
        let wb = store::write_policy(&mut b, None, &doc(1, "B", None))
            .await
            .expect("b");
        assert!(wa.is_ok(), "the first write wins");
        let winner = wb.expect_err("the second write is refused");
        assert_eq!(winner.expect("the winner").author, "op-A");
        // Same with a current version: both read version 1 at the same mod revision.
        let (c, _) = store::read_policy(&mut a).await.expect("read");
        let c = c.expect("version 1");
        let next_a = doc(2, "C", Some(c.doc.hash.clone()));
        let next_b = doc(2, "D", Some(c.doc.hash.clone()));
        let wb = store::write_policy(&mut b, Some(c.mod_revision), &next_b)
            .await
            .expect("b");
        let wa = store::write_policy(&mut a, Some(c.mod_revision), &next_a)
            .await
            .expect("a");
        assert!(wb.is_ok());
        assert_eq!(wa.expect_err("refused").expect("winner").author, "op-D");
    });
}

/// Two `fleet apply` processes at once: each either wins or is refused naming the winner;
/// no version is lost or written twice.
#[test]
fn concurrent_cli_applies_never_lose_a_version() {
    if !etcd_installed("concurrent_cli_applies_never_lose_a_version") {
        return;
    }
    let etcd = Etcd::start("cli");
    let dir = tempdir("cli");
    let (pa, pb) = (
        policy(&dir, "a.toml", "ORD-A"),
        policy(&dir, "b.toml", "ORD-B"),
    );
    let (url_a, url_b) = (etcd.url.clone(), etcd.url.clone());
    let spawn = |url: String, file: String| {
        std::thread::spawn(move || {
            Command::new(env!("CARGO_BIN_EXE_geofence"))
                .args(["fleet", "--etcd", &url, "apply", &file])
                .output()
                .expect("running geofence")
        })
    };
    let (ta, tb) = (spawn(url_a, pa.clone()), spawn(url_b, pb.clone()));
    let outs = [ta.join().expect("a"), tb.join().expect("b")];
    let won = outs.iter().filter(|o| o.status.success()).count();
    for out in outs.iter().filter(|o| !o.status.success()) {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("refused: the fleet policy changed"), "{err}");
        assert!(err.contains("version 1 was written by"), "{err}");
    }
    let status = fleet(&etcd, &["status", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).expect("json");
    // Each success wrote one version, in sequence.
    assert_eq!(json["latest"]["version"], won as u64, "{json}");
    // A file whose version is current: no changes, nothing written.
    let export = fleet(&etcd, &["export"]);
    assert!(export.status.success());
    let text = String::from_utf8_lossy(&export.stdout);
    assert!(text.contains("[[meetings.\"standup\".rules]]"), "{text}");
    let _ = fs::remove_dir_all(&dir);
}

fn tempdir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("gf-fleet-{tag}-{}", std::process::id()));
    fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// The fleet's audit trail: every version with its author and orders, the hash chain
/// verified, and a rewritten version caught.
#[test]
fn the_fleet_audit_shows_every_version_and_catches_a_rewrite() {
    if !etcd_installed("the_fleet_audit_shows_every_version_and_catches_a_rewrite") {
        return;
    }
    let etcd = Etcd::start("audit");
    let dir = tempdir("audit");
    for order in ["ORD-1", "ORD-2", "ORD-3"] {
        let file = policy(&dir, &format!("{order}.toml"), order);
        let out = fleet(&etcd, &["apply", &file]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let show = fleet(&etcd, &["audit", "show"]);
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(show.status.success(), "{text}");
    for n in 1..=3 {
        assert!(text.contains(&format!("version {n} ")), "{text}");
        assert!(text.contains(&format!("orders: ORD-{n}")), "{text}");
    }
    assert!(
        text.contains("ORD-3"),
        "the diff names the new order: {text}"
    );
    let verify = fleet(&etcd, &["audit", "verify"]);
    let text = String::from_utf8_lossy(&verify.stdout);
    assert!(
        verify.status.success() && text.contains("intact: 3 versions"),
        "{text}"
    );
    // Someone with write access edits version 2 in place.
    let (args, runtime) = client_of(&etcd);
    runtime.block_on(async {
        let mut client = args.connect().await.expect("client");
        let key = geofence::fleet::keys::version(2);
        let stored = client.get(key.as_str(), None).await.expect("get");
        let bytes = stored.kvs()[0].value().to_vec();
        let edited = String::from_utf8(bytes)
            .expect("utf-8")
            .replace("ORD-2", "ORD-9");
        client.put(key, edited, None).await.expect("put");
    });
    let verify = fleet(&etcd, &["audit", "verify"]);
    let err = String::from_utf8_lossy(&verify.stderr);
    assert!(
        !verify.status.success(),
        "a rewritten version must fail verify"
    );
    assert!(
        err.contains("version 2: its content does not match its hash"),
        "{err}"
    );
    assert!(err.contains("NOT intact"), "{err}");
    let _ = fs::remove_dir_all(&dir);
}

/// Connection arguments for `etcd`, and a runtime to use them on.
fn client_of(etcd: &Etcd) -> (EtcdArgs, tokio::runtime::Runtime) {
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
    (args, runtime)
}
