//! geofence in front of the test SFU: meetings A and B on ONE SFU UDP port, participants in
//! territories XA and XB, real WebRTC clients (aiortc). The SFU registers every transport's
//! server ufrag with geofence's binding API (the daemon), the XDP program on the relay's veth
//! learns each client's flow from its STUN Binding requests, and `geofence block A
//! --territory XA` drops meeting A's packets from XA only.
//!
//! ```text
//!   relay netns: SFU udp 10.9.0.1:7882 http :8080, geofence attached (native XDP) on its veth
//!        |
//!   hub netns: a bridge
//!        |
//!   one netns per participant slot: XA 10.1.0.11-15, XB 10.2.0.11-13
//! ```
//!
//! In order (a timeline goes to stderr): five participants (A@XA, A@XB, A@XB2, B@XA, B@XB)
//! talk, every learned flow names its meeting (API binding counts, `status` mux events, the
//! kernel's answer in `explain`); `block A --territory XA`: nothing A@XA sends 100 ms after
//! the command returned arrives, the others keep talking, the counters show the drops; while
//! blocked a new A@XA never completes ICE and a new B@XA does, A@XA's restart stays blocked
//! and A@XB's comes through, the learned binding moving to the new flow; after `unblock` a new
//! A@XA connects and restarts (`--restart-after`) with its binding following; a participant
//! who leaves is unbound.
//!
//! Only packets *from* the territory are dropped: the relay's packets *to* A@XA pass, so it
//! hears the meeting until the SFU gives up on its transport (measured and printed, not
//! asserted).
//!
//! geofence's CLI and daemon run on the host (not under `ip netns exec`, which would hide
//! the pins under /sys). Needs root, the geofence binary (`GEOFENCE_BIN`, else
//! target/debug/geofence) and the venv `cargo xtask setup` makes at target/webrtc-venv;
//! without any of them it says why and passes.

mod common;

use std::{
    collections::BTreeMap,
    fmt::Display,
    fs::File,
    io::{BufRead as _, BufReader, Write as _},
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, ExitStatus, Stdio},
    sync::{Arc, Mutex},
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use common::{
    SFU_BIN, Sfu,
    geofence::{Daemon, Geofence},
    relay::{Topology, geofence_bin, is_root, reap_stale, wait_until},
};
use serde_json::Value;

const RELAY_IP: &str = "10.9.0.1";
const MUX_PORT: u16 = 7882;
/// The shared port, as `explain --dst` takes it.
const MUX_DST: &str = "10.9.0.1:7882";
const HTTP_PORT: u16 = 8080;
const GEO_CSV: &str = "10.1.0.0,10.1.255.255,XA\n10.2.0.0,10.2.255.255,XB\n";
/// Each client sends a message this often (seconds) once its channel is open.
const SEND_EVERY: &str = "0.1";
/// How long after `block` returns a blocked participant's messages may still get through.
const CUTOFF: f64 = 0.100;
/// Long-lived clients run until told to leave; this only bounds them if the test dies.
const LONG: &str = "120";

/// Participant slots: one namespace each, so that a client's only address is in its
/// territory (aiortc offers every local address as a candidate).
const SLOTS: [(&str, &str); 8] = [
    ("xa1", "10.1.0.11"),
    ("xa2", "10.1.0.12"),
    ("xa3", "10.1.0.13"),
    ("xa4", "10.1.0.14"),
    ("xa5", "10.1.0.15"),
    ("xb1", "10.2.0.11"),
    ("xb2", "10.2.0.12"),
    ("xb3", "10.2.0.13"),
];

// ---------------------------------------------------------------------------------------
// The environment

/// What the test needs from the machine; `None` (after saying why) when it cannot run.
struct Env {
    geofence: PathBuf,
    python: PathBuf,
    client_py: PathBuf,
}

impl Env {
    fn find() -> Option<Env> {
        if !is_root() {
            eprintln!("skipped: network namespaces, XDP and bpffs need root");
            return None;
        }
        let geofence = match geofence_bin() {
            Ok(bin) => bin,
            Err(why) => {
                eprintln!("skipped: {why}");
                return None;
            }
        };
        let target = Path::new(SFU_BIN)
            .ancestors()
            .nth(2)
            .expect("the SFU binary is in <target>/<profile>/");
        let python = target.join("webrtc-venv/bin/python");
        let aiortc = Command::new(&python)
            .args(["-c", "import aiortc"])
            .stderr(Stdio::null())
            .status();
        if !aiortc.is_ok_and(|status| status.success()) {
            eprintln!(
                "skipped: no aiortc at {} (run `cargo xtask setup`)",
                python.display()
            );
            return None;
        }
        // A binary that is there but predates the binding API is a stale build: say so loudly.
        let help = Command::new(&geofence)
            .args(["daemon", "--help"])
            .output()
            .expect("running geofence daemon --help");
        assert!(
            String::from_utf8_lossy(&help.stdout).contains("--api"),
            "{} has no `daemon --api` (the binding API): rebuild it",
            geofence.display()
        );
        let client_py = Path::new(env!("CARGO_MANIFEST_DIR")).join("../webrtc/client.py");
        Some(Env {
            geofence,
            python,
            client_py,
        })
    }
}

/// A human-readable timeline on stderr.
struct Timeline(Instant);

impl Timeline {
    fn say(&self, what: impl Display) {
        eprintln!("[{:6.2}s] {what}", self.0.elapsed().as_secs_f64());
    }
}

// ---------------------------------------------------------------------------------------
// Network namespaces

const NETNS_PREFIX: &str = "gfmux";
const PIN_PREFIX: &str = "gf-sfu-mux-";

/// A meeting in `geofence status --json`.
fn status_meeting(status: &Value, name: &str) -> Value {
    status["meetings"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no meeting {name} in {status}"))
}

/// A participant in the SFU's `/state`.
fn sfu_peer(state: &Value, meeting: &str, name: &str) -> Option<Value> {
    state["meetings"][meeting]
        .as_array()?
        .iter()
        .find(|p| p["participant"] == name)
        .cloned()
}

fn ice_up(peer: &Value) -> bool {
    matches!(peer["ice"].as_str(), Some("connected" | "completed"))
}

/// The client's address of a transport that is up: ICE connected and the SFU has sent on
/// the pair (it records the address then, a moment after ICE completes).
fn up_from(peer: &Value) -> Option<String> {
    let remote = peer["selected_remote"].as_str().filter(|r| !r.is_empty());
    remote.filter(|_| ice_up(peer)).map(str::to_owned)
}

// ---------------------------------------------------------------------------------------
// Participants

/// An aiortc client in a slot's namespace; its events read as they come. Killed on drop.
struct Client {
    name: String,
    meeting: String,
    child: Child,
    stdin: Option<ChildStdin>,
    events: Arc<Mutex<Vec<Value>>>,
    reader: Option<JoinHandle<()>>,
    log: PathBuf,
    exited: Option<ExitStatus>,
}

impl Client {
    fn spawn(
        env: &Env,
        topology: &Topology,
        logs: &Path,
        slot: &str,
        meeting: &str,
        name: &str,
        extra: &[&str],
    ) -> Client {
        let log = logs.join(format!("{name}.log"));
        let base = format!("http://{RELAY_IP}:{HTTP_PORT}");
        let mut child = topology
            .exec(slot, &env.python)
            .arg(&env.client_py)
            .args(["--sfu", &base, "--meeting", meeting, "--name", name])
            .args(["--send-every", SEND_EVERY])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(File::create(&log).expect("a client log"))
            .spawn()
            .expect("starting a client");
        let stdout = child.stdout.take().expect("piped stdout");
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        let reader = thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(event) = serde_json::from_str::<Value>(&line) {
                    sink.lock().expect("events lock").push(event);
                }
            }
        });
        Client {
            name: name.to_owned(),
            meeting: meeting.to_owned(),
            stdin: child.stdin.take(),
            child,
            events,
            reader: Some(reader),
            log,
            exited: None,
        }
    }

    fn events(&self) -> Vec<Value> {
        self.events.lock().expect("events lock").clone()
    }

    /// Index of the first event named `event`, at or after `from`.
    fn find(&self, event: &str, from: usize) -> Option<usize> {
        self.events()
            .iter()
            .enumerate()
            .skip(from)
            .find(|(_, e)| e["event"] == event)
            .map(|(i, _)| i)
    }

    /// Messages received from `sender` among the events from index `from` on.
    fn received_from(&self, sender: &str, from: usize) -> usize {
        self.events()
            .iter()
            .skip(from)
            .filter(|e| e["event"] == "received" && e["from"] == sender)
            .count()
    }

    /// The numbers N of `"SENDER: hello N from SENDER"` received from `sender`.
    fn numbers_from(&self, sender: &str) -> Vec<u64> {
        self.events()
            .iter()
            .filter(|e| e["event"] == "received" && e["from"] == sender)
            .filter_map(|e| message_number(e["text"].as_str()?))
            .collect()
    }

    /// When (wall clock) this client sent each message, by number.
    fn sent_at(&self) -> BTreeMap<u64, f64> {
        self.events()
            .iter()
            .filter(|e| e["event"] == "sent")
            .filter_map(|e| Some((e["n"].as_u64()?, e["wall"].as_f64()?)))
            .collect()
    }

    fn command(&mut self, command: &str) {
        let stdin = self.stdin.as_mut().expect("the client's stdin");
        writeln!(stdin, "{command}")
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| panic!("telling {} to {command}: {e}", self.name));
    }

    /// Waits (bounded) for the client to end on its own or after `leave`; its summary.
    fn summary(&mut self, timeout: Duration) -> Value {
        let name = self.name.clone();
        let status = wait_until(&format!("{name} exits"), timeout, || {
            match self.child.try_wait().expect("polling a client") {
                Some(status) => Ok(status),
                None => Err("still running".into()),
            }
        });
        self.exited = Some(status);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        assert!(
            status.success(),
            "{name} failed ({status}): {}",
            self.log_tail()
        );
        self.events()
            .into_iter()
            .find(|e| e["event"] == "summary")
            .unwrap_or_else(|| panic!("{name} printed no summary: {}", self.log_tail()))
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Waits until the channel is open and this client heard at least `n` messages from
    /// each of `partners`.
    fn wait_talking(&self, partners: &[&str], n: usize, timeout: Duration) {
        wait_until(
            &format!("{} hears {partners:?}", self.name),
            timeout,
            || {
                let counts: Vec<usize> =
                    partners.iter().map(|p| self.received_from(p, 0)).collect();
                if self.find("connected", 0).is_some() && counts.iter().all(|&c| c >= n) {
                    Ok(())
                } else {
                    Err(format!(
                        "heard {counts:?}, events so far {}",
                        self.events().len()
                    ))
                }
            },
        );
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        if thread::panicking() {
            let notable: Vec<String> = self
                .events()
                .iter()
                .filter(|e| e["event"] != "sent" && e["event"] != "received")
                .map(Value::to_string)
                .collect();
            eprintln!(
                "--- client {} ({}) ---\nevents other than sent/received:\n{}\nstderr:\n{}\n---",
                self.name,
                self.meeting,
                notable.join("\n"),
                self.log_tail()
            );
        }
    }
}

/// N of `"SENDER: hello N from SENDER"`.
fn message_number(text: &str) -> Option<u64> {
    text.split_once("hello ")?
        .1
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

// ---------------------------------------------------------------------------------------
// The test

#[test]
fn block_drops_one_meeting_from_one_territory_on_a_shared_sfu_port() {
    let Some(env) = Env::find() else { return };
    let timeline = Timeline(Instant::now());
    let say = |what: String| timeline.say(what);
    reap_stale(NETNS_PREFIX, PIN_PREFIX);

    // Declared in this order, dropped in the reverse: clients, SFU, daemon, geofence
    // (detach, pins), the namespaces, the temporary directory.
    let dir = tempfile::tempdir().expect("a temporary directory");
    let territories = ["10.1.0.0/16", "10.2.0.0/16"];
    let topology = Topology::create(NETNS_PREFIX, "gm", RELAY_IP, &territories, &SLOTS);
    let mut geofence = Geofence::new(&env.geofence, PIN_PREFIX, dir.path().join("state"));
    let geo = dir.path().join("geo.csv");
    std::fs::write(&geo, GEO_CSV).expect("writing the geo file");
    geofence.run(&["geo", "load", geo.to_str().expect("a UTF-8 path")]);
    geofence.run(&["meeting", "add", "A"]);
    geofence.run(&["meeting", "add", "B"]);
    let mux = format!("udp:{RELAY_IP}:{MUX_PORT}");
    geofence.run(&["mux", "add", &mux]);
    let relay_if = topology.relay_if.clone();
    geofence.attach(&relay_if, &topology.relay());
    let status = geofence.status();
    let session_of = |meeting: &str| {
        status_meeting(&status, meeting)["session"]
            .as_u64()
            .expect("a session id")
    };
    let (session_a, session_b) = (session_of("A"), session_of("B"));
    assert_eq!(status["mux"]["ports"], serde_json::json!([mux]));
    let daemon = Daemon::start(
        &geofence,
        dir.path().join("api.sock"),
        dir.path().join("daemon.log"),
    );
    let mut sfu_command = Command::new("ip");
    sfu_command
        .args(["netns", "exec", &topology.relay()])
        .arg(SFU_BIN)
        .args(["--udp", &format!("{RELAY_IP}:{MUX_PORT}")])
        .args(["--http", &format!("{RELAY_IP}:{HTTP_PORT}")])
        .arg("--register")
        .arg(format!("unix:{}", daemon.socket.display()));
    let sfu = Sfu::start(sfu_command, &dir.path().join("sfu.log"));
    say(format!(
        "relay up: geofence on {relay_if} (native XDP), meetings A (session {session_a}) and \
         B (session {session_b}) share {mux}; SFU ready on udp {}",
        sfu.udp
    ));
    let sfu_state = || {
        let (status, state) = topology.http(sfu.http, "GET", "/state");
        assert_eq!(status, 200, "GET /state: {state}");
        state
    };
    let logs = dir.path();
    let join = |slot: &str, meeting: &str, name: &str, extra: &[&str]| {
        Client::spawn(&env, &topology, logs, slot, meeting, name, extra)
    };

    // 1. No rule: everyone connects and talks within their meeting.
    let long = ["--duration", LONG];
    let mut a_xa = join("xa1", "A", "a-xa", &long);
    let mut a_xb = join("xb1", "A", "a-xb", &long);
    let mut a_xb2 = join("xb2", "A", "a-xb2", &long);
    let mut b_xa = join("xa2", "B", "b-xa", &long);
    let mut b_xb = join("xb3", "B", "b-xb", &long);
    let talking = Duration::from_secs(30);
    a_xa.wait_talking(&["a-xb", "a-xb2"], 3, talking);
    a_xb.wait_talking(&["a-xa", "a-xb2"], 3, talking);
    a_xb2.wait_talking(&["a-xa", "a-xb"], 3, talking);
    b_xa.wait_talking(&["b-xb"], 3, talking);
    b_xb.wait_talking(&["b-xa"], 3, talking);
    let roster = [
        ("A", "a-xa"),
        ("A", "a-xb"),
        ("A", "a-xb2"),
        ("B", "b-xa"),
        ("B", "b-xb"),
    ];
    let state = wait_until("the SFU sees five transports up", talking, || {
        let state = sfu_state();
        let up = roster
            .iter()
            .filter(|(m, n)| sfu_peer(&state, m, n).and_then(|p| up_from(&p)).is_some())
            .count();
        if up == roster.len() {
            Ok(state)
        } else {
            Err(state.to_string())
        }
    });
    let remote = |state: &Value, meeting: &str, name: &str| -> String {
        sfu_peer(state, meeting, name)
            .and_then(|p| p["selected_remote"].as_str().map(str::to_owned))
            .unwrap_or_else(|| panic!("no selected remote for {name} in {state}"))
    };
    let first_flows: BTreeMap<&str, String> = roster
        .iter()
        .map(|(m, n)| (*n, remote(&state, m, n)))
        .collect();
    say(format!(
        "1. no rule: all five connected and talking within their meeting; flows {first_flows:?}"
    ));

    // 7. The kernel learned each participant's flow, for the right meeting.
    daemon.expect_bindings("A", 3, 3);
    daemon.expect_bindings("B", 2, 2);
    let mut explain_disagrees = false;
    for (meeting, name) in roster {
        let want = if meeting == "A" { session_a } else { session_b };
        let (session, verdict, agrees) = geofence.explain(&first_flows[name], MUX_DST);
        explain_disagrees |= !agrees;
        assert_eq!(
            (session, verdict.as_str()),
            (Some(want), "passed"),
            "{name}'s flow {} in the kernel",
            first_flows[name]
        );
    }
    let learned = geofence.mux_event("learned");
    assert!(learned >= 5, "mux events: learned {learned}");
    let status = geofence.status();
    for (meeting, ufrags) in [("A", 3), ("B", 2)] {
        let bindings = &status_meeting(&status, meeting)["bindings"];
        assert_eq!(
            bindings["ufrags"], ufrags,
            "status bindings of {meeting}: {bindings}"
        );
        assert_eq!(
            bindings["flows_learned"], ufrags,
            "status bindings of {meeting}: {bindings}"
        );
    }
    say(format!(
        "7. bindings: A 3 ufrags/3 learned flows, B 2/2; every flow names its meeting in the \
         kernel; mux events learned {learned}, refreshed {}",
        status["mux"]["events"]["refreshed"]
    ));
    if explain_disagrees {
        say(
            "   note: `geofence explain` exits 1 on these learned flows: its model reads only \
             the state file, calls them unbound and the kernel's answer a disagreement"
                .into(),
        );
    }

    // 2. Block A in XA.
    let dropped_before = geofence.packets("A", "XA", "dropped");
    let survivors = [
        (&a_xb, "a-xb2"),
        (&a_xb2, "a-xb"),
        (&b_xa, "b-xb"),
        (&b_xb, "b-xa"),
    ];
    let (out, blocked_at) =
        geofence.run_timed(&["block", "A", "--territory", "XA", "--order", "ORD-T"]);
    let heard_at_block: Vec<usize> = survivors
        .iter()
        .map(|(client, from)| client.received_from(from, 0))
        .collect();
    say(format!(
        "2. `geofence block A --territory XA --order ORD-T`: {out}"
    ));
    wait_until(
        "A@XB, A@XB2, B@XA and B@XB keep hearing each other",
        Duration::from_secs(15),
        || {
            let now: Vec<usize> = survivors
                .iter()
                .map(|(client, from)| client.received_from(from, 0))
                .collect();
            if now
                .iter()
                .zip(&heard_at_block)
                .all(|(n, before)| *n >= before + 5)
            {
                Ok(())
            } else {
                Err(format!("heard {now:?}, at the block {heard_at_block:?}"))
            }
        },
    );
    // A@XA goes on sending (its side does not know) ...
    let kept_sending = wait_until(
        "A@XA sent ten messages after the block",
        Duration::from_secs(15),
        || {
            let after = (a_xa.sent_at().values())
                .filter(|at| **at > blocked_at + CUTOFF)
                .count();
            if after >= 10 {
                Ok(after)
            } else {
                Err(format!("{after} sent"))
            }
        },
    );
    // ... and nothing it sent after the block (plus the cutoff) reached anyone.
    let a_xa_sent = a_xa.sent_at();
    let heard_from_a_xa: Vec<u64> = [&a_xb, &a_xb2]
        .iter()
        .flat_map(|c| c.numbers_from("a-xa"))
        .collect();
    let last = *heard_from_a_xa
        .iter()
        .max()
        .expect("A@XA was heard before the block");
    let last_sent = a_xa_sent[&last];
    assert!(
        last_sent <= blocked_at + CUTOFF,
        "A@XA's message {last}, sent {:.3} s after `block` returned, got through",
        last_sent - blocked_at
    );
    // And up to the block it did get through: the cut is the block's.
    assert!(
        last_sent >= blocked_at - 2.0,
        "A@XA's last message through was sent {:.3} s before the block",
        blocked_at - last_sent
    );
    let dropped = geofence.packets("A", "XA", "dropped");
    assert!(dropped > dropped_before, "A from XA: dropped {dropped}");
    for (meeting, territory) in [("A", "XB"), ("B", "XA"), ("B", "XB")] {
        assert_eq!(
            geofence.packets(meeting, territory, "dropped"),
            0,
            "{meeting} from {territory} had packets dropped"
        );
    }
    let status = geofence.status();
    let (a, b) = (status_meeting(&status, "A"), status_meeting(&status, "B"));
    let rule = &a["rules"][0];
    assert_eq!(rule["order"], "ORD-T", "{a}");
    assert_eq!(rule["territories"], serde_json::json!(["XA"]), "{a}");
    assert!(
        rule["packets"].as_u64().unwrap_or(0) > 0,
        "the rule dropped nothing: {rule}"
    );
    assert!(
        a["counters"]["dropped"]["packets"].as_u64().unwrap_or(0) > 0,
        "{a}"
    );
    assert!(
        a["counters"]["passed"]["packets"].as_u64().unwrap_or(0) > 0,
        "{a}"
    );
    assert_eq!(b["counters"]["dropped"]["packets"], 0, "{b}");
    let passed_a_xa = geofence.packets("A", "XA", "passed");
    say(format!(
        "   A@XA's last message through was sent {:+.3} s from the block's return; {kept_sending} \
         sent after it never arrived; A from XA dropped {dropped} packets; the others keep \
         talking (heard {heard_at_block:?} at the block)",
        last_sent - blocked_at
    ));

    // 3 and 5 while blocked: new joins, and restarts of a blocked and an unblocked client.
    let learned_before = geofence.mux_event("learned");
    let a_xb_events = a_xb.events().len();
    let a_xa_events = a_xa.events().len();
    a_xa.command("restart");
    a_xb.command("restart");
    let short = ["--duration", "6"];
    let mut a_new = join("xa3", "A", "a-xa-new", &short);
    let mut b_new = join("xa4", "B", "b-xa-new", &short);
    say("3. A@XA and B@XA join anew; 5. A@XA and A@XB restart (a new peer connection each)".into());
    let reconnected = wait_until("A@XB reconnects after its restart", talking, || {
        let restarted = a_xb
            .find("restarted", a_xb_events)
            .ok_or("not restarted yet")?;
        a_xb.find("connected", restarted)
            .ok_or_else(|| "not connected again yet".to_owned())
    });
    let heard = a_xb2.received_from("a-xb", 0);
    wait_until(
        "A@XB and A@XB2 talk after A@XB's restart",
        Duration::from_secs(15),
        || {
            let (back, forth) = (
                a_xb2.received_from("a-xb", 0),
                a_xb.received_from("a-xb2", reconnected),
            );
            if back >= heard + 3 && forth >= 3 {
                Ok(())
            } else {
                Err(format!(
                    "A@XB2 heard {back} (had {heard}), A@XB heard {forth}"
                ))
            }
        },
    );
    let a_new_summary = a_new.summary(Duration::from_secs(40));
    let b_new_summary = b_new.summary(Duration::from_secs(40));
    assert!(
        a_new.find("answer", 0).is_some(),
        "the blocked joiner got no answer from the SFU"
    );
    assert_eq!(
        a_new_summary["ice_connected"], false,
        "a new A@XA join got through the block: {a_new_summary}"
    );
    assert_eq!(
        a_new_summary["received"],
        serde_json::json!({}),
        "{a_new_summary}"
    );
    assert_eq!(b_new_summary["ice_connected"], true, "{b_new_summary}");
    for partner in ["b-xa", "b-xb"] {
        assert!(
            b_new.received_from(partner, 0) >= 1,
            "the new B@XA did not hear {partner}: {b_new_summary}"
        );
    }
    say(format!(
        "   new A@XA: ICE never connected (last state {}); new B@XA: connected, heard {}",
        a_new_summary["ice_state"], b_new_summary["received"]
    ));
    // The blocked client's restart stays blocked; its new flow was learned for A all the same.
    let a_xa_restarted = a_xa.find("restarted", a_xa_events).expect("A@XA restarted");
    assert!(
        a_xa.find("connected", a_xa_restarted).is_none(),
        "A@XA's new connection opened through the block"
    );
    let after_restarts = sfu_state();
    let a_xa_peer = sfu_peer(&after_restarts, "A", "a-xa").expect("a-xa at the SFU");
    assert_eq!(a_xa_peer["restarts"], 1, "{a_xa_peer}");
    assert!(
        !ice_up(&a_xa_peer),
        "A@XA's new transport is up: {a_xa_peer}"
    );
    let a_xb_flow = remote(&after_restarts, "A", "a-xb");
    daemon.expect_bindings("A", 3, 3);
    daemon.expect_bindings("B", 2, 2);
    let learned_after = geofence.mux_event("learned");
    assert!(
        learned_after >= learned_before + 4,
        "learned {learned_before} → {learned_after} over two joins and two restarts"
    );
    assert_eq!(
        geofence.kernel_verdict(&a_xb_flow, MUX_DST),
        (Some(session_a), "passed".to_owned()),
        "A@XB's new flow {a_xb_flow}"
    );
    // (A@XA's new flow is not known: the SFU never heard from it. A new socket that got the
    // old one's port by chance would make the old flow the new one; not checked then.)
    let old_flows = ["a-xa", "a-xb"]
        .into_iter()
        .filter(|name| *name != "a-xb" || a_xb_flow != first_flows["a-xb"]);
    for name in old_flows {
        // Unbound: passed, or, from a territory some rule blocks (XA), dropped as
        // `unbound_blocked`, which the kernel reports under the shared ports' session.
        let (session, verdict) = geofence.kernel_verdict(&first_flows[name], MUX_DST);
        let unbound = session.is_none() || (session == Some(MUX_SESSION) && verdict == "dropped");
        assert!(
            unbound,
            "{name}'s old flow {} is still bound ({session:?}, {verdict})",
            first_flows[name]
        );
    }
    assert_eq!(
        geofence.packets("A", "XA", "passed"),
        passed_a_xa,
        "packets of A from XA passed while blocked"
    );
    say(format!(
        "5. restarts under the block: A@XB reconnected on {a_xb_flow} (learned for A, passes), \
         A@XA's new connection stays blocked; old flows unbound; bindings A 3/3, B 2/2; \
         learned {learned_before} → {learned_after}"
    ));

    // 4. Unblock: a new A@XA joins, and restarts (--restart-after) without losing the meeting.
    geofence.run(&["unblock", "A", "--territory", "XA"]);
    say("4. `geofence unblock A --territory XA`; A@XA joins again, restarting after 5 s".into());
    let mut late = join(
        "xa5",
        "A",
        "a-xa-late",
        &["--duration", "30", "--restart-after", "5"],
    );
    let late_first = wait_until("the late A@XA is up at the SFU", talking, || {
        let state = sfu_state();
        match sfu_peer(&state, "A", "a-xa-late") {
            Some(p) if up_from(&p).is_some() && p["restarts"] == 0 => {
                Ok(up_from(&p).unwrap_or_default())
            }
            Some(p) if p["restarts"] != 0 => {
                panic!("the late A@XA restarted before the test saw its first flow: {p}")
            }
            other => Err(format!("{other:?}")),
        }
    });
    assert_eq!(
        geofence.kernel_verdict(&late_first, MUX_DST),
        (Some(session_a), "passed".to_owned()),
        "the late A@XA's flow {late_first}"
    );
    let restarted = wait_until(
        "the late A@XA reconnects after its restart",
        talking,
        || {
            let restarted = late.find("restarted", 0).ok_or("not restarted yet")?;
            late.find("connected", restarted)
                .ok_or_else(|| "not connected again yet".to_owned())
        },
    );
    wait_until(
        "the late A@XA talks after its restart",
        Duration::from_secs(15),
        || {
            let heard = [
                late.received_from("a-xb", restarted),
                late.received_from("a-xb2", restarted),
            ];
            if heard.iter().all(|&n| n >= 2) {
                Ok(())
            } else {
                Err(format!("heard {heard:?}"))
            }
        },
    );
    let late_second = wait_until("the SFU sees the late A@XA's restart", talking, || {
        let state = sfu_state();
        match sfu_peer(&state, "A", "a-xa-late") {
            Some(p) if up_from(&p).is_some() && p["restarts"] == 1 => {
                Ok(up_from(&p).unwrap_or_default())
            }
            other => Err(format!("{other:?}")),
        }
    });
    assert_eq!(
        geofence.kernel_verdict(&late_second, MUX_DST),
        (Some(session_a), "passed".to_owned()),
        "the late A@XA's new flow {late_second}"
    );
    if late_first != late_second {
        assert_eq!(
            geofence.kernel_verdict(&late_first, MUX_DST).0,
            None,
            "the late A@XA's old flow {late_first} is still bound"
        );
    }
    // a-xa (its blocked restart's flow was learned, see above), a-xb, a-xb2, a-xa-late.
    daemon.expect_bindings("A", 4, 4);
    assert!(
        geofence.packets("A", "XA", "passed") > passed_a_xa,
        "nothing of A from XA passed after the unblock"
    );
    late.command("leave");
    let late_summary = late.summary(Duration::from_secs(20));
    assert_eq!(late_summary["ice_connected"], true, "{late_summary}");
    say(format!(
        "   the late A@XA connected on {late_first}, restarted onto {late_second}: the learned \
         binding followed (old flow unbound, new one A's) and it kept talking: {}",
        late_summary["received"]
    ));

    // 6. Leaving unbinds.
    let before = daemon.bindings("B");
    b_xb.command("leave");
    let b_xb_summary = b_xb.summary(Duration::from_secs(20));
    assert_eq!(b_xb_summary["ice_connected"], true, "{b_xb_summary}");
    daemon.expect_bindings("B", 1, 1);
    assert_eq!((before.ufrags, before.learned), (2, 2), "{before:?}");
    say("6. B@XB left: meeting B's bindings went from 2 ufrags/2 flows to 1/1".into());

    // The end: everyone leaves; nobody heard another meeting.
    let mut summaries = vec![
        ("b-xb".to_owned(), "B".to_owned(), b_xb_summary),
        ("a-xa-late".to_owned(), "A".to_owned(), late_summary),
        ("a-xa-new".to_owned(), "A".to_owned(), a_new_summary),
        ("b-xa-new".to_owned(), "B".to_owned(), b_new_summary),
    ];
    for client in [&mut a_xa, &mut a_xb, &mut a_xb2, &mut b_xa] {
        client.command("leave");
    }
    for client in [&mut a_xa, &mut a_xb, &mut a_xb2, &mut b_xa] {
        let summary = client.summary(Duration::from_secs(20));
        assert_eq!(summary["ice_connected"], true, "{}: {summary}", client.name);
        summaries.push((client.name.clone(), client.meeting.clone(), summary));
    }
    for (name, meeting, summary) in &summaries {
        let prefix = if meeting == "A" { "a-" } else { "b-" };
        for sender in summary["received"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| k)
        {
            assert!(
                sender.starts_with(prefix) && sender != name,
                "{name} in {meeting} heard {sender}"
            );
        }
    }
    daemon.expect_bindings("A", 0, 0);
    daemon.expect_bindings("B", 0, 0);

    // What the blocked participant still received on its first connection (until its
    // restart): the relay's packets to it are not filtered (only packets from XA are), so it
    // hears the meeting until the SFU gives up on its transport. Reported, not asserted.
    let a_xa_events = a_xa.events();
    let restart_at = a_xa_events
        .iter()
        .find(|e| e["event"] == "restarted")
        .and_then(|e| e["wall"].as_f64())
        .expect("A@XA restarted");
    let heard_blocked: Vec<f64> = a_xa_events
        .iter()
        .filter(|e| e["event"] == "received")
        .filter_map(|e| e["wall"].as_f64())
        .filter(|at| *at > blocked_at + CUTOFF && *at < restart_at)
        .collect();
    let reconnected_later = a_xa_events
        .iter()
        .skip_while(|e| e["event"] != "restarted")
        .any(|e| e["event"] == "connected");
    say(format!(
        "   note: blocked, A@XA still received {} messages in the {:.1} s until its restart (the \
         SFU's packets to XA are not filtered); its restart's connection {} after the unblock",
        heard_blocked.len(),
        restart_at - blocked_at,
        if reconnected_later {
            "came through"
        } else {
            "did not come through"
        }
    ));
    say("done: everyone left; no participant heard another meeting; no bindings left".into());
    drop(sfu);
}

/// The session the kernel reports for a packet on a shared port that no meeting has bound
/// (`filter_common::mux::MUX_SESSION`; this crate does not depend on geofence's).
const MUX_SESSION: u64 = 0xffff;
