//! Bad input to the `geofence` CLI: each gets a non-zero exit, a message naming the
//! argument or file and the reason, and leaves the state file and the maps unchanged.

mod common;

use std::{fs, process::Command};

use common::{Dirs, bpftool, root_with_bpffs};

/// Snapshots of what a bad input must leave alone.
trait Snapshot {
    fn state_file(&self) -> String;
    fn maps(&self) -> String;
}

impl Snapshot for Dirs {
    fn state_file(&self) -> String {
        fs::read_to_string(self.state.join("state.json")).unwrap_or_default()
    }

    fn maps(&self) -> String {
        let mut dump = String::new();
        for name in [
            "ENDPOINTS",
            "POLICIES",
            "POLICY_INDEX",
            "OVERRIDES",
            "FLOWS",
        ] {
            let out = Command::new("bpftool")
                .args(["map", "dump", "pinned"])
                .arg(self.pin.join(name))
                .output();
            if let Ok(out) = out {
                dump.push_str(&String::from_utf8_lossy(&out.stdout));
            }
        }
        dump
    }
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    if !root_with_bpffs("bad_input_is_refused_and_changes_nothing") {
        return;
    }
    let d = Dirs::new("bad");
    let geo = d.state.join("fixture.csv");
    fs::create_dir_all(&d.state).expect("state dir");
    fs::write(
        &geo,
        "192.0.2.0,192.0.2.255,XA\n198.51.100.0,198.51.100.255,XB\n",
    )
    .expect("csv");
    let geo_path = geo.to_str().expect("utf-8 path");
    d.ok(&["geo", "load", geo_path]);
    d.ok(&[
        "meeting",
        "add",
        "A",
        "--endpoint",
        "udp:*:40000",
        "--endpoint",
        "tcp:*:40001",
    ]);
    d.ok(&["meeting", "add", "B", "--endpoint", "udp:*:41000"]);
    d.ok(&["block", "A", "--territory", "XA", "--order", "ORD-1"]);
    d.ok(&["block", "A", "--prefix", "198.51.100.7", "--order", "ORD-2"]);

    let bad_csv = d.state.join("bad.csv");
    fs::write(&bad_csv, "192.0.2.0,192.0.2.255,XA\n10.0.0.9,10.0.0.1,XB\n").expect("csv");
    let bad_csv = bad_csv.to_str().expect("utf-8 path").to_string();

    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["block", "A", "--territory", "xa", "--order", "O"],
            "upper-case",
        ),
        (
            vec!["block", "A", "--territory", "XAA", "--order", "O"],
            "two upper-case letters",
        ),
        (
            vec!["block", "A", "--territory", "UK", "--order", "O"],
            "GB",
        ),
        (vec!["block", "A", "--territory", "XB"], "--order"),
        (
            vec!["block", "A", "--territory", "XB", "--order", " "],
            "order reference is required",
        ),
        (
            vec!["block", "Z", "--territory", "XB", "--order", "O"],
            "unknown meeting `Z`",
        ),
        (
            vec!["block", "A", "--order", "O"],
            "at least one --territory or --prefix",
        ),
        (
            vec!["block", "A", "--prefix", "198.51.100.7/24", "--order", "O"],
            "host",
        ),
        (
            vec!["block", "A", "--prefix", "0.0.0.0/0", "--order", "O"],
            "/0",
        ),
        (
            vec!["block", "A", "--prefix", "198.51.100.7", "--order", "O"],
            "already blocked",
        ),
        (
            vec![
                "block",
                "A",
                "--territory",
                "XB",
                "--order",
                "O",
                "--for",
                "5x",
            ],
            "--for",
        ),
        (
            vec![
                "block",
                "A",
                "--territory",
                "XB",
                "--order",
                "O",
                "--expires",
                "2020-01-01T00:00:00Z",
            ],
            "in the past",
        ),
        (
            vec![
                "block",
                "A",
                "--territory",
                "XB",
                "--order",
                "O",
                "--expires",
                "soon",
            ],
            "RFC 3339",
        ),
        (
            vec!["meeting", "add", "C", "--endpoint", "udp:*:0"],
            "port 0",
        ),
        (
            vec!["meeting", "add", "C", "--endpoint", "udp:*:65536"],
            "65535",
        ),
        (
            vec!["meeting", "add", "C", "--endpoint", "udp:*:5000-4000"],
            "inverted",
        ),
        (
            vec!["meeting", "add", "C", "--endpoint", "udp:*:41000"],
            "belongs to meeting `B`",
        ),
        (
            vec!["meeting", "add", "A", "--endpoint", "udp:*:42000"],
            "already exists",
        ),
        (
            vec!["meeting", "add", "bad name", "--endpoint", "udp:*:42000"],
            "meeting name",
        ),
        (
            vec!["meeting", "add", "C", "--endpoint", "udp:1.2.3:42000"],
            "not an IPv4 address",
        ),
        (vec!["meeting", "del", "Z"], "unknown meeting"),
        (vec!["unblock", "A", "--territory", "XC"], "not blocked"),
        (
            vec!["allow", "A", "--prefix", "198.51.100.7"],
            "unblock it instead",
        ),
        (
            vec![
                "flow",
                "add",
                "A",
                "--proto",
                "udp",
                "--src",
                "1.2.3.4:0",
                "--dst",
                "5.6.7.8:1",
            ],
            "--src",
        ),
        (
            vec![
                "flow",
                "add",
                "A",
                "--proto",
                "udp",
                "--src",
                "[2001:db8::1]:5",
                "--dst",
                "5.6.7.8:1",
            ],
            "mixes",
        ),
        (vec!["geo", "load", &bad_csv], ":2:"),
        (
            vec!["geo", "load", "/nonexistent/geo.csv"],
            "/nonexistent/geo.csv",
        ),
        (vec!["attach", "gf-no-such-if0"], "gf-no-such-if0"),
        (
            vec!["attach", "lo", "--netns", "gf-no-such-ns"],
            "gf-no-such-ns",
        ),
        (vec!["detach", "gf-no-such-if0"], "not attached"),
    ];
    let state_before = d.state_file();
    let maps_before = d.maps();
    assert!(state_before.contains("ORD-1"), "setup recorded the rule");
    assert!(
        maps_before.contains("key"),
        "bpftool shows the setup's map entries: {maps_before}"
    );
    let mut failures = Vec::new();
    for (args, needle) in &cases {
        let out = d.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            failures.push(format!("{args:?}: succeeded"));
        } else if !stderr.contains(needle) {
            failures.push(format!("{args:?}: message lacks `{needle}`: {stderr}"));
        }
        if d.state_file() != state_before {
            failures.push(format!("{args:?}: changed the state file"));
        }
    }
    assert_eq!(d.maps(), maps_before, "bad input changed the maps");
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    let lookup = d.ok(&["geo", "lookup", "192.0.2.1"]);
    assert!(
        lookup.contains("XA"),
        "the failed load left the old table: {lookup}"
    );
}

#[test]
fn every_command_has_help_with_an_example() {
    let commands: &[&[&str]] = &[
        &["attach"],
        &["detach"],
        &["geo", "load"],
        &["geo", "lookup"],
        &["meeting", "add"],
        &["meeting", "del"],
        &["meeting", "list"],
        &["flow", "add"],
        &["flow", "del"],
        &["block"],
        &["unblock"],
        &["allow"],
        &["status"],
        &["stats"],
        &["restore"],
        &["upgrade"],
        &["explain"],
        &["daemon"],
        &["completions"],
        &["man"],
        &["apply"],
        &["export"],
        &["audit", "show"],
        &["audit", "verify"],
        &["report"],
    ];
    for &command in commands {
        let out = Command::new(env!("CARGO_BIN_EXE_geofence"))
            .args(command)
            .arg("--help")
            .output()
            .expect("running geofence");
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{command:?} --help failed");
        assert!(
            help.contains("Example: geofence"),
            "{command:?} --help has no example:\n{help}"
        );
    }
}

#[test]
fn not_root_is_explained() {
    if !nix::unistd::geteuid().is_root() {
        let d = Dirs::new("user");
        let out = d.run(&["meeting", "add", "A", "--endpoint", "udp:*:1"]);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("root"));
        return;
    }
    // As root, drop to nobody for one call; setpriv comes with util-linux.
    let d = Dirs::new("nobody");
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_geofence"))
        .arg("--pin-dir")
        .arg(&d.pin)
        .arg("--state-dir")
        .arg(&d.state)
        .args(["meeting", "add", "A", "--endpoint", "udp:*:1"])
        .output();
    let Ok(out) = out else {
        eprintln!("skipping not_root_is_explained: setpriv is not installed");
        return;
    };
    assert!(!out.status.success(), "a non-root user changed rules");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("needs root"), "{stderr}");
}

/// Pins an older version left with another layout (here PORTS as it was: 8,192 words, not
/// memory-mappable) are refused before anything is loaded: one message naming the map and
/// both layouts, no pin added, the state file untouched.
#[test]
fn pins_from_another_version_are_refused_and_left_alone() {
    if !root_with_bpffs("pins_from_another_version_are_refused_and_left_alone") {
        return;
    }
    let d = Dirs::new("oldpins");
    fs::create_dir_all(&d.pin).expect("pin dir");
    let old = d.pin.join("PORTS");
    bpftool(|c| {
        c.args(["map", "create"])
            .arg(&old)
            .args(["type", "array", "key", "4", "value", "8", "entries", "8192"])
            .args(["name", "PORTS"])
    });
    let err = d.fails(&["meeting", "add", "A", "--endpoint", "udp:*:40000"]);
    assert!(
        err.contains("from another geofence version")
            && err.contains("PORTS is pinned with type 2, key 4 B, value 8 B, 8192 entries")
            && err.contains("nothing was changed")
            && err.contains("geofence restore"),
        "{err}"
    );
    let pins: Vec<_> = fs::read_dir(&d.pin)
        .expect("pin dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(pins, ["PORTS"], "pins were added next to the old one");
    assert!(
        !d.state.join("state.json").exists(),
        "the refused command wrote a state file"
    );
}
