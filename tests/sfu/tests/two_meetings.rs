//! Two meetings on one SFU UDP port, with real WebRTC clients (aiortc) across a veth pair: the
//! SFU in one network namespace, the four participants in another, no route anywhere else.
//!
//! Needs root (network namespaces) and the venv `cargo xtask setup` makes at
//! target/webrtc-venv; without either it says why and passes.

mod common;

use std::{
    collections::{BTreeMap, BTreeSet},
    fs::File,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    thread,
    time::{Duration, Instant},
};

use common::{SFU_BIN, Sfu};
use serde_json::Value;

const RELAY_IP: &str = "10.77.0.1";
const PEER_IP: &str = "10.77.0.2";
/// How long each client runs: long enough for four slow Python starts and a few seconds of chat.
const CLIENT_SECONDS: u64 = 10;

/// Two namespaces joined by a veth pair; deleted on drop, also when the test fails.
struct Netns {
    relay: String,
    peers: String,
    veth: String,
}

impl Netns {
    fn create() -> Netns {
        let id = std::process::id();
        let netns = Netns {
            relay: format!("gf-sfu-relay-{id}"),
            peers: format!("gf-sfu-peers-{id}"),
            veth: format!("gfs{id}"),
        };
        let peer_veth = format!("{}p", netns.veth);
        netns.remove();
        ip(&["netns", "add", &netns.relay]);
        ip(&["netns", "add", &netns.peers]);
        ip(&[
            "link",
            "add",
            &netns.veth,
            "type",
            "veth",
            "peer",
            "name",
            &peer_veth,
        ]);
        ip(&["link", "set", &netns.veth, "netns", &netns.relay]);
        ip(&["link", "set", &peer_veth, "netns", &netns.peers]);
        for (ns, dev, addr) in [
            (&netns.relay, &netns.veth, RELAY_IP),
            (&netns.peers, &peer_veth, PEER_IP),
        ] {
            ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", dev]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        netns
    }

    fn exec(&self, ns: &str, program: &Path) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", ns]).arg(program);
        command
    }

    fn remove(&self) {
        for args in [
            ["netns", "del", &self.relay],
            ["netns", "del", &self.peers],
            // Only there if creation stopped before moving it into a namespace.
            ["link", "del", &self.veth],
        ] {
            let _ = Command::new("ip").args(args).stderr(Stdio::null()).status();
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        self.remove();
    }
}

fn ip(args: &[&str]) {
    let output = Command::new("ip").args(args).output().expect("running ip");
    assert!(
        output.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Why this machine cannot run the test, if it cannot.
fn missing(python: &Path) -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1));
    if euid != Some("0") {
        return Some("network namespaces need root".into());
    }
    let aiortc = Command::new(python)
        .args(["-c", "import aiortc"])
        .stderr(Stdio::null())
        .status();
    if !aiortc.is_ok_and(|status| status.success()) {
        return Some(format!(
            "no aiortc at {} (run `cargo xtask setup`)",
            python.display()
        ));
    }
    None
}

/// The target directory the SFU was built into, which is where setup puts the venv.
fn target_dir() -> PathBuf {
    Path::new(SFU_BIN)
        .ancestors()
        .nth(2)
        .expect("the SFU binary is in <target>/<profile>/")
        .to_owned()
}

/// The JSON lines a client printed, by event.
fn events(output: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

#[test]
fn two_meetings_share_one_port_and_never_hear_each_other() {
    let python = target_dir().join("webrtc-venv/bin/python");
    if let Some(why) = missing(&python) {
        eprintln!("skipped: {why}");
        return;
    }
    let client_py = Path::new(env!("CARGO_MANIFEST_DIR")).join("../webrtc/client.py");
    let logs = tempfile::tempdir().expect("a temporary directory");
    let netns = Netns::create();

    let mut command = netns.exec(&netns.relay, Path::new(SFU_BIN));
    command.args([
        "--udp",
        &format!("{RELAY_IP}:0"),
        "--http",
        &format!("{RELAY_IP}:0"),
    ]);
    command.args(["--register", "none"]);
    let sfu = Sfu::start(command, &logs.path().join("sfu.log"));
    let base = format!("http://{}", sfu.http);

    let roster = [
        ("A", "a1", "a2"),
        ("A", "a2", "a1"),
        ("B", "b1", "b2"),
        ("B", "b2", "b1"),
    ];
    let clients: Vec<Child> = roster
        .iter()
        .map(|(meeting, name, _)| {
            let log = File::create(logs.path().join(format!("{name}.log"))).expect("a log file");
            netns
                .exec(&netns.peers, &python)
                .arg(&client_py)
                .args(["--sfu", &base, "--meeting", meeting, "--name", name])
                .args(["--duration", &CLIENT_SECONDS.to_string()])
                .args(["--send-every", "0.2", "--audio"])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(log)
                .spawn()
                .expect("starting a client")
        })
        .collect();

    // While they talk: the SFU's own view, once all four transports are up.
    let state = wait_for_state(&netns, &python, &base, |state| {
        let peers = all_peers(state);
        peers.len() == 4
            && peers.iter().all(|(_, p)| {
                matches!(p["ice"].as_str(), Some("connected" | "completed"))
                    && p["channel_open"] == true
            })
    });

    let outputs: Vec<Output> = clients
        .into_iter()
        .map(|child| child.wait_with_output().expect("waiting for a client"))
        .collect();
    let after = fetch_state(&netns, &python, &base);
    drop(sfu);

    let mut answered_ufrags = BTreeMap::new();
    for ((meeting, name, partner), output) in roster.iter().zip(&outputs) {
        let log =
            std::fs::read_to_string(logs.path().join(format!("{name}.log"))).unwrap_or_default();
        assert!(output.status.success(), "{name} failed: {log}");
        let events = events(output);
        let summary = events
            .iter()
            .find(|e| e["event"] == "summary")
            .unwrap_or_else(|| panic!("{name} printed no summary: {log}"));
        assert_eq!(summary["ice_connected"], true, "{name}: {summary}");
        let received = summary["received"].as_object().cloned().unwrap_or_default();
        let senders: Vec<&String> = received.keys().collect();
        assert_eq!(senders, [partner], "{name} in {meeting} heard {received:?}");
        let count = received[*partner].as_u64().unwrap_or(0);
        assert!(
            count >= 5,
            "{name} heard only {count} messages from {partner}"
        );
        let frames = summary["media_frames"].as_u64().unwrap_or(0);
        assert!(
            frames >= 50,
            "{name} decoded only {frames} audio frames from {partner}"
        );
        // One sender's worth (50 frames a second) at most: none came from the other meeting.
        assert!(
            frames <= 55 * CLIENT_SECONDS,
            "{name} decoded {frames} audio frames"
        );
        for event in events.iter().filter(|e| e["event"] == "received") {
            let text = event["text"].as_str().unwrap_or("");
            assert!(
                text.starts_with(&format!("{partner}: hello ")) && text.ends_with(partner),
                "{name} in {meeting} got {text:?}"
            );
        }
        let ufrag = events
            .iter()
            .find(|e| e["event"] == "answer")
            .and_then(|e| e["ufrag"].as_str())
            .unwrap_or_else(|| panic!("{name} printed no answer"))
            .to_owned();
        answered_ufrags.insert(name.to_string(), (meeting.to_string(), ufrag));
        eprintln!(
            "{meeting}/{name}: sent {}, heard {received:?}, {frames} audio frames",
            summary["sent"]
        );
    }

    // The SFU saw the same four transports, on its one port, each from its own client socket.
    assert_eq!(
        state["udp"].as_str().map(|udp| udp.starts_with(RELAY_IP)),
        Some(true)
    );
    let mut ufrags = BTreeSet::new();
    let mut remotes = BTreeSet::new();
    for (meeting, peer) in all_peers(&state) {
        let name = peer["participant"].as_str().unwrap_or("").to_owned();
        let ufrag = peer["ufrag"].as_str().unwrap_or("").to_owned();
        assert_eq!(
            answered_ufrags.get(&name),
            Some(&(meeting.clone(), ufrag.clone()))
        );
        let remote = peer["selected_remote"].as_str().unwrap_or("").to_owned();
        assert!(
            remote.starts_with(&format!("{PEER_IP}:")),
            "{name}: {remote:?}"
        );
        eprintln!(
            "{meeting}/{name}: ufrag {ufrag}, selected remote {remote}, ICE {}",
            peer["ice"]
        );
        ufrags.insert(ufrag);
        remotes.insert(remote);
    }
    assert_eq!((ufrags.len(), remotes.len()), (4, 4), "{state}");
    eprintln!("all four on udp {}", state["udp"]);

    // Each client left at its end.
    assert!(all_peers(&after).is_empty(), "left behind: {after}");
}

fn all_peers(state: &Value) -> Vec<(String, Value)> {
    let mut peers = Vec::new();
    for (meeting, list) in state["meetings"].as_object().into_iter().flatten() {
        for peer in list.as_array().into_iter().flatten() {
            peers.push((meeting.clone(), peer.clone()));
        }
    }
    peers
}

/// `GET /state` from inside the participants' namespace (the test itself is outside).
fn fetch_state(netns: &Netns, python: &Path, base: &str) -> Value {
    let output = netns
        .exec(&netns.peers, python)
        .args([
            "-c",
            "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())",
            &format!("{base}/state"),
        ])
        .output()
        .expect("running python for /state");
    assert!(
        output.status.success(),
        "GET /state: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("/state is JSON")
}

fn wait_for_state(
    netns: &Netns,
    python: &Path,
    base: &str,
    ready: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let state = fetch_state(netns, python, base);
        if ready(&state) {
            return state;
        }
        assert!(
            Instant::now() < deadline,
            "the four transports did not come up: {state}"
        );
        thread::sleep(Duration::from_millis(300));
    }
}
