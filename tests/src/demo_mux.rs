//! The demo's second scene (`cargo xtask demo`): one UDP port shared by two meetings.
//!
//! The test SFU (`geofence-test-sfu`, ICE-lite, one UDP socket for every meeting) runs in the
//! relay's namespace; four aiortc participants, each alone in a namespace with one address,
//! join meetings A and B from territories XA and XB. geofence knows the shared port
//! (`mux add`), the daemon serves the binding API through which the SFU registers each
//! participant's server ufrag, and the XDP program learns each participant's flow from its
//! STUN Binding requests. Then `block A --territory XA`: A@XA's messages stop reaching A@XB
//! while B@XA and B@XB, on the same port, keep talking.
//!
//! The same setup as `tests/sfu/tests/geofence_mux.rs`, told for a newcomer. Everything it
//! starts is stopped by Drop guards, also when it fails: clients, SFU, daemon, then the XDP
//! link and pins ([`Geofence`]), then the namespaces ([`Scene`]).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead as _, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;

use crate::cli::{Geofence, geofence_bin};
use crate::scene::{ParticipantSpec, RELAY_V4, Scene};
use crate::world::write_file;

/// The SFU's one media port, shared by both meetings, and its signaling port.
const MUX_PORT: u16 = 7882;
const HTTP_PORT: u16 = 8080;
/// How often each participant sends a chat message once its data channel is open.
const SEND_EVERY: &str = "0.1";
/// How long the scene watches after the block.
const WATCH: Duration = Duration::from_secs(2);
/// Bounds the clients' lives if the demo dies without killing them.
const CLIENT_LIFETIME: &str = "90";
/// How long joining may take before the demo gives up.
const JOIN_LIMIT: Duration = Duration::from_secs(30);

/// The four participants: (client name, label, meeting, address, territory).
const PEOPLE: [(&str, &str, &str, &str, &str); 4] = [
    ("a-xa", "A@XA", "A", "192.0.2.11", "XA"),
    ("a-xb", "A@XB", "A", "198.51.100.11", "XB"),
    ("b-xa", "B@XA", "B", "192.0.2.12", "XA"),
    ("b-xb", "B@XB", "B", "198.51.100.12", "XB"),
];

/// What the scene needs beyond the first one: the SFU binary, the venv's python with aiortc
/// and the client script.
pub struct Prereqs {
    sfu: PathBuf,
    python: PathBuf,
    client_py: PathBuf,
}

impl Prereqs {
    /// `GEOFENCE_SFU_BIN` (else `target/debug/geofence-test-sfu`), `GEOFENCE_WEBRTC_PYTHON`
    /// (else `target/webrtc-venv/bin/python`); why the scene cannot run otherwise.
    /// `GEOFENCE_DEMO_MUX_SKIP`, set by `cargo xtask demo` when setting up or building
    /// failed, is a reason by itself.
    pub fn find() -> Result<Prereqs, String> {
        if let Some(why) = std::env::var_os("GEOFENCE_DEMO_MUX_SKIP") {
            return Err(why.to_string_lossy().into_owned());
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let target = root.join("target");
        let from_env =
            |var: &str, default: PathBuf| std::env::var_os(var).map_or(default, PathBuf::from);
        let sfu = from_env(
            "GEOFENCE_SFU_BIN",
            target.join("debug").join("geofence-test-sfu"),
        );
        if !sfu.is_file() {
            return Err(format!(
                "no test SFU at {} (`cargo build -p geofence-test-sfu` builds it; \
                 `cargo xtask demo` does)",
                sfu.display()
            ));
        }
        let python = from_env(
            "GEOFENCE_WEBRTC_PYTHON",
            target.join("webrtc-venv").join("bin").join("python"),
        );
        let imports = Command::new(&python)
            .args(["-c", "import aiortc"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !imports.is_ok_and(|s| s.success()) {
            return Err(format!(
                "no Python with aiortc at {} (`cargo xtask setup` makes that venv)",
                python.display()
            ));
        }
        let client_py = root.join("tests").join("webrtc").join("client.py");
        if !client_py.is_file() {
            return Err(format!("no WebRTC client at {}", client_py.display()));
        }
        let help = Command::new(geofence_bin().map_err(|e| format!("{e:#}"))?)
            .args(["daemon", "--help"])
            .output()
            .map_err(|e| format!("running geofence daemon --help: {e}"))?;
        if !String::from_utf8_lossy(&help.stdout).contains("--api") {
            return Err("this geofence has no `daemon --api` (the binding API): rebuild it".into());
        }
        Ok(Prereqs {
            sfu,
            python,
            client_py,
        })
    }
}

/// Runs the scene, printing as it goes. `stop` is set on ctrl-c. Everything it started is
/// gone when it returns, whatever it returns.
pub fn run(prereqs: &Prereqs, stop: &AtomicBool) -> Result<()> {
    let step = |title: &str| -> Result<()> {
        if stop.load(Ordering::Relaxed) {
            bail!("interrupted");
        }
        println!("\n== {title}");
        Ok(())
    };
    step("Scene 2: two meetings on ONE UDP port (a WebRTC SFU)")?;
    let relay = RELAY_V4;
    println!(
        "Real SFUs (LiveKit, mediasoup, pion...) serve every meeting on one UDP port, so the port\n\
         no longer tells the meeting. The SFU tells geofence instead: before answering a\n\
         participant it registers that participant's ICE username fragment (ufrag) with the\n\
         geofence daemon; the XDP program reads the ufrag in the participant's first STUN\n\
         packet and learns its flow (address:port) for that meeting.\n\
         Here: the test SFU on {relay}:{MUX_PORT} (UDP, both meetings) and four real WebRTC\n\
         participants (aiortc), each alone in a namespace with one address:"
    );
    for (_, label, meeting, addr, territory) in PEOPLE {
        println!("  {label:<5} in meeting {meeting}, from {addr:<14} ({territory})");
    }
    println!();

    // Declared in this order, dropped in the reverse: clients, SFU, daemon, geofence (XDP
    // link, pins, temp dir), namespaces.
    let specs: Vec<ParticipantSpec> = PEOPLE
        .iter()
        .map(|(name, _, _, addr, territory)| ParticipantSpec::new(name, addr, territory))
        .collect();
    let scene = Scene::build(&specs).context("building the namespaces")?;
    let gf = Geofence::new()?.echo(true);
    let dir = gf.temp_dir().to_owned();
    let geo = write_file(
        &dir,
        "territories.csv",
        &["192.0.2.0,192.0.2.255,XA", "198.51.100.0,198.51.100.255,XB"],
    )?;
    gf.run(&["geo", "load", &geo])?;
    gf.run(&["meeting", "add", "A"])?;
    gf.run(&["meeting", "add", "B"])?;
    let mux = format!("udp:{relay}:{MUX_PORT}");
    gf.run(&["mux", "add", &mux])?;
    gf.attach("eth0", scene.relay.name())?;

    let socket = dir.join("api.sock");
    println!(
        "$ geofence daemon --api {} &\n  (the binding API, for the SFU)",
        socket.display()
    );
    let daemon = Daemon::start(&gf, &socket, &dir.join("daemon.log"), stop)?;
    println!(
        "$ geofence-test-sfu --udp {relay}:{MUX_PORT} --http {relay}:{HTTP_PORT} \
         --register unix:{} &\n  (in the relay's namespace)",
        socket.display()
    );
    let sfu = Sfu::start(prereqs, &scene, &socket, &dir.join("sfu.log"))?;

    step("Before any rule: the four join, each talks with the other participant of its meeting")?;
    let clients: Vec<Client> = PEOPLE
        .iter()
        .enumerate()
        .map(|(i, (name, label, meeting, _, _))| {
            Client::spawn(prereqs, &scene, i, name, label, meeting, &dir)
        })
        .collect::<Result<_>>()?;
    let by_name = |name: &str| -> &Client {
        clients
            .iter()
            .find(|c| c.name == name)
            .expect("one of the four")
    };
    let (a_xa, a_xb, b_xa, b_xb) = (
        by_name("a-xa"),
        by_name("a-xb"),
        by_name("b-xa"),
        by_name("b-xb"),
    );
    let pairs = [(a_xa, a_xb), (a_xb, a_xa), (b_xa, b_xb), (b_xb, b_xa)];
    let joined = Instant::now();
    wait_until("the four hear each other", JOIN_LIMIT, stop, || {
        let heard: Vec<String> = pairs
            .iter()
            .filter(|(from, to)| to.heard_from(&from.name, 0.0) < 3)
            .map(|(from, to)| format!("{} -> {}", from.label, to.label))
            .collect();
        if heard.is_empty() {
            return Ok(());
        }
        for client in &clients {
            client.check_alive()?;
        }
        Err(format!("not yet heard: {}", heard.join(", ")).into())
    })
    .map_err(|e| anyhow!("{e:#}\n{}", logs(&clients, &sfu, &daemon)))?;
    println!(
        "After {:.1} s, A@XA and A@XB hear each other in meeting A, B@XA and B@XB in meeting B.\n\
         Each sends a chat message every {SEND_EVERY} s on its data channel, all to {relay}:{MUX_PORT}.",
        joined.elapsed().as_secs_f64()
    );
    // The flows the SFU selected (the client's address and port), and the kernel's bindings.
    let flows = wait_until(
        "the SFU and geofence know all four flows",
        Duration::from_secs(10),
        stop,
        || {
            let state = sfu.state(&scene)?;
            let flows: BTreeMap<&str, String> = PEOPLE
                .iter()
                .filter_map(|(name, _, meeting, _, _)| {
                    Some((*name, selected_remote(&state, meeting, name)?))
                })
                .collect();
            if flows.len() < PEOPLE.len() {
                return Err(format!("the SFU selected {flows:?}").into());
            }
            let status = quiet_json(&gf, &["status", "--json"])?;
            for meeting in ["A", "B"] {
                let bindings = &status_meeting(&status, meeting)?["bindings"];
                if bindings["ufrags"] != 2 || bindings["flows_learned"] != 2 {
                    return Err(format!("meeting {meeting}'s bindings: {bindings}").into());
                }
            }
            Ok(flows)
        },
    )?;
    println!(
        "The SFU registered 2 ufrags per meeting with the daemon, and the XDP program learned\n\
         each participant's flow from the ufrag in its STUN packets:"
    );
    for (name, label, meeting, _, _) in PEOPLE {
        let flow = format!("{} -> {relay}:{MUX_PORT}", flows[name]);
        println!("  {label}  {flow:<42} meeting {meeting}");
    }

    step("A legal order: participants in XA may not take part in meeting A")?;
    let started = wall_now();
    let (_, returned) = gf.run_timed(&[
        "block",
        "A",
        "--territory",
        "XA",
        "--order",
        "ORD-2026-0043",
    ])?;
    let blocked_at = wall_now() - returned.elapsed().as_secs_f64();

    step(&format!(
        "After the block: {} s of the same traffic",
        WATCH.as_secs()
    ))?;
    thread::sleep(WATCH);
    wait_until(
        "B@XA and B@XB talk after the block, and A@XA sends",
        Duration::from_secs(10),
        stop,
        || {
            let enough = a_xa.sent_after(blocked_at) >= 5
                && b_xa.heard_from("b-xb", blocked_at) >= 5
                && b_xb.heard_from("b-xa", blocked_at) >= 5;
            if enough {
                Ok(())
            } else {
                for client in &clients {
                    client.check_alive()?;
                }
                Err(Wait::Yet("too few messages yet".into()))
            }
        },
    )
    .map_err(|e| anyhow!("{e:#}\n{}", logs(&clients, &sfu, &daemon)))?;
    let window = wall_now() - blocked_at;
    let sent = a_xa.sent_after(blocked_at);
    let last = a_xb.last_from("a-xa");
    // Messages A@XA sent after `block` returned that reached A@XB anyway.
    let sent_at = a_xa.sent_at();
    let late = a_xb
        .numbers_from("a-xa")
        .iter()
        .filter(|n| sent_at.get(n).is_some_and(|at| *at > blocked_at))
        .count();
    let indent = " ".repeat(16);
    let (cut, how_many) = match late {
        0 => ("cut off", "none".to_owned()),
        n => ("NOT cut off", n.to_string()),
    };
    println!(
        "  A@XA -> A@XB  {cut}: its last message arrived {};\n\
         {indent}{how_many} of the {sent} it sent in the {window:.1} s after `block` returned arrived",
        when(last, started, blocked_at)
    );
    for (from, to, note) in [
        (
            b_xa,
            b_xb,
            "B@XA is in XA too, but meeting B is not blocked",
        ),
        (b_xb, b_xa, ""),
        (
            a_xb,
            a_xa,
            "only packets FROM XA are dropped:\n\
             A@XA still hears A@XB until the SFU gives up on its silent transport",
        ),
    ] {
        let n = to.heard_from(&from.name, blocked_at);
        let verb = if n > 0 { "still talking" } else { "silent" };
        let note = if note.is_empty() {
            String::new()
        } else {
            format!(" ({})", note.replace('\n', &format!("\n{indent}")))
        };
        println!(
            "  {} -> {}  {verb}: {n} new messages{note}",
            from.label, to.label
        );
    }
    if late > 0 {
        bail!(
            "{late} messages A@XA sent after the block reached A@XB: the block did not hold\n{}",
            logs(&clients, &sfu, &daemon)
        );
    }
    println!(
        "One port, two meetings: only meeting A's participant in XA is cut off; B@XA, in the\n\
         same territory on the same port, is not."
    );

    step("Why is A@XA's traffic dropped? Its flow on the shared port was learned from its ufrag")?;
    let dst = format!("{relay}:{MUX_PORT}");
    let explained = gf.run(&[
        "explain",
        "--proto",
        "udp",
        "--src",
        &flows["a-xa"],
        "--dst",
        &dst,
    ])?;
    if !explained.contains("learned from ufrag") {
        println!("(note: explain did not name the ufrag this time; the binding may have idled)");
    }

    step("State on the shared port: ports, bindings per meeting, STUN events, counters")?;
    gf.run(&["status"])?;
    gf.run(&["stats", "A"])?;

    step("Cleaning up scene 2")?;
    drop(clients);
    drop(sfu);
    drop(daemon);
    drop(gf);
    drop(scene);
    Ok(())
}

/// When `at` was, told against the run of the `block` command (wall-clock times).
fn when(at: Option<f64>, started: f64, returned: f64) -> String {
    match at {
        None => "never".into(),
        Some(at) if at < started => format!("{:.2} s before `block` started", started - at),
        Some(at) if at <= returned => format!(
            "while `block` ran ({:.2} s into its {:.2} s)",
            at - started,
            returned - started
        ),
        Some(at) => format!("{:.2} s after `block` returned", at - returned),
    }
}

/// Now, in Unix seconds: the clock of the clients' `wall` fields.
fn wall_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Why a [`wait_until`] check has no value: not yet (and what it saw), or never.
enum Wait {
    Yet(String),
    Fatal(String),
}

impl From<String> for Wait {
    fn from(why: String) -> Wait {
        Wait::Yet(why)
    }
}

/// Polls `check` every 100 ms until it gives a value; an error after `limit` with what it
/// said last, at once when it fails for good, or when `stop` is set.
fn wait_until<T>(
    what: &str,
    limit: Duration,
    stop: &AtomicBool,
    mut check: impl FnMut() -> Result<T, Wait>,
) -> Result<T> {
    let deadline = Instant::now() + limit;
    loop {
        if stop.load(Ordering::Relaxed) {
            bail!("interrupted");
        }
        match check() {
            Ok(value) => return Ok(value),
            Err(Wait::Fatal(why)) => bail!("while waiting until {what}: {why}"),
            Err(Wait::Yet(why)) if Instant::now() >= deadline => {
                bail!("timed out after {limit:?} waiting until {what}: {why}")
            }
            Err(Wait::Yet(_)) => thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// `geofence ARGS --json` on the demo's pins, not echoed.
fn quiet_json(gf: &Geofence, args: &[&str]) -> Result<Value, String> {
    let bin = geofence_bin().map_err(|e| format!("{e:#}"))?;
    let out = Command::new(bin)
        .arg("--pin-dir")
        .arg(gf.pin_dir())
        .arg("--state-dir")
        .arg(gf.temp_dir().join("state"))
        .args(args)
        .output()
        .map_err(|e| format!("running geofence: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "geofence {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("geofence {}: {e}", args.join(" ")))
}

fn status_meeting<'a>(status: &'a Value, name: &str) -> Result<&'a Value, String> {
    status["meetings"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["name"] == name)
        .ok_or_else(|| format!("no meeting {name} in geofence status"))
}

/// The client address:port of a participant's transport in the SFU's `/state`, once ICE is
/// up on it.
fn selected_remote(state: &Value, meeting: &str, name: &str) -> Option<String> {
    let peer = state["meetings"][meeting]
        .as_array()?
        .iter()
        .find(|p| p["participant"] == name)?;
    if !matches!(peer["ice"].as_str(), Some("connected" | "completed")) {
        return None;
    }
    let remote = peer["selected_remote"].as_str()?;
    (!remote.is_empty()).then(|| remote.to_owned())
}

/// The last `n` lines of a log file, indented.
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| format!("    {l}\n"))
        .collect()
}

/// The ends of every log, for an error.
fn logs(clients: &[Client], sfu: &Sfu, daemon: &Daemon) -> String {
    let mut s = String::from("logs:\n");
    s.push_str(&format!("  SFU:\n{}", tail(&sfu.log, 10)));
    s.push_str(&format!("  daemon:\n{}", tail(&daemon.log, 10)));
    for c in clients {
        s.push_str(&format!("  {}:\n{}", c.label, tail(&c.log, 10)));
    }
    s
}

/// Kills a child and reaps it.
fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

// ---------------------------------------------------------------------------------------
// The daemon

/// `geofence daemon --api SOCKET` on the demo's pins; SIGTERM (then SIGKILL) on drop.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(gf: &Geofence, socket: &Path, log: &Path, stop: &AtomicBool) -> Result<Daemon> {
        let log_file = File::create(log).context("creating the daemon's log")?;
        let child = Command::new(geofence_bin()?)
            .arg("--pin-dir")
            .arg(gf.pin_dir())
            .arg("--state-dir")
            .arg(gf.temp_dir().join("state"))
            .args(["daemon", "--listen", "127.0.0.1:0", "--api"])
            .arg(socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .context("starting geofence daemon")?;
        let mut daemon = Daemon {
            child,
            log: log.to_owned(),
        };
        wait_until(
            "the binding API answers",
            Duration::from_secs(15),
            stop,
            || {
                if let Ok(Some(status)) = daemon.child.try_wait() {
                    return Err(Wait::Fatal(format!(
                        "the daemon exited ({status}):\n{}",
                        tail(&daemon.log, 10)
                    )));
                }
                let stream = UnixStream::connect(socket).map_err(|e| e.to_string())?;
                match exchange(stream, "GET", "/v1/health") {
                    Ok((200, _)) => Ok(()),
                    Ok((status, body)) => Err(format!("{status} {body}").into()),
                    Err(e) => Err(format!("{e:#}").into()),
                }
            },
        )?;
        Ok(daemon)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid, which it still is (not reaped yet).
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        kill(&mut self.child);
    }
}

// ---------------------------------------------------------------------------------------
// The SFU

/// The test SFU in the relay's namespace; killed on drop.
struct Sfu {
    child: Child,
    log: PathBuf,
    http: SocketAddr,
}

impl Sfu {
    fn start(prereqs: &Prereqs, scene: &Scene, socket: &Path, log: &Path) -> Result<Sfu> {
        let relay = RELAY_V4;
        let log_file = File::create(log).context("creating the SFU's log")?;
        let mut child = Command::new("ip")
            .args(["netns", "exec", scene.relay.name()])
            .arg(&prereqs.sfu)
            .args(["--udp", &format!("{relay}:{MUX_PORT}")])
            .args(["--http", &format!("{relay}:{HTTP_PORT}")])
            .arg("--register")
            .arg(format!("unix:{}", socket.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .context("starting the test SFU")?;
        let stdout = child.stdout.take().context("the SFU's stdout")?;
        let (tx, rx) = mpsc::channel();
        // Ends when the SFU prints its line or its stdout closes (it exited or was killed).
        thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let mut sfu = Sfu {
            child,
            log: log.to_owned(),
            http: SocketAddr::from((relay, HTTP_PORT)),
        };
        let line = rx.recv_timeout(Duration::from_secs(20)).unwrap_or_default();
        if !line.starts_with("ready ") {
            kill(&mut sfu.child);
            bail!(
                "the test SFU did not get ready (it said {line:?}):\n{}",
                tail(&sfu.log, 10)
            );
        }
        println!("{}", line.trim());
        Ok(sfu)
    }

    /// `GET /state`, from the relay's namespace (the demo itself is outside).
    fn state(&self, scene: &Scene) -> Result<Value, String> {
        let http = self.http;
        let answer = scene
            .relay
            .run(move || -> Result<(u16, Value)> {
                let stream = TcpStream::connect_timeout(&http, Duration::from_secs(5))?;
                exchange(stream, "GET", "/state")
            })
            .and_then(|r| r);
        match answer {
            Ok((200, state)) => Ok(state),
            Ok((status, body)) => Err(format!("GET /state: {status} {body}")),
            Err(e) => Err(format!("GET /state: {e:#}")),
        }
    }
}

impl Drop for Sfu {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// One HTTP/1.1 request without a body; the status and the JSON body.
fn exchange<S: Read + Write>(stream: S, method: &str, path: &str) -> Result<(u16, Value)> {
    let mut stream = stream;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nhost: demo\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("not an HTTP response: {response:?}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| anyhow!("no status in {head:?}"))?;
    let body = serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_owned()));
    Ok((status, body))
}

// ---------------------------------------------------------------------------------------
// Participants

/// An aiortc client in its participant's namespace, its events read as they come; killed
/// on drop.
struct Client {
    name: String,
    label: String,
    child: Child,
    events: Arc<Mutex<Vec<Value>>>,
    reader: Option<JoinHandle<()>>,
    log: PathBuf,
}

impl Client {
    fn spawn(
        prereqs: &Prereqs,
        scene: &Scene,
        index: usize,
        name: &str,
        label: &str,
        meeting: &str,
        logs: &Path,
    ) -> Result<Client> {
        let log = logs.join(format!("{name}.log"));
        let ns = scene.participants[index].ns.name();
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(&prereqs.python)
            .arg(&prereqs.client_py)
            .args(["--sfu", &format!("http://{RELAY_V4}:{HTTP_PORT}")])
            .args(["--meeting", meeting, "--name", name])
            .args(["--send-every", SEND_EVERY, "--duration", CLIENT_LIFETIME])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(File::create(&log).context("creating a client's log")?)
            .spawn()
            .with_context(|| format!("starting the client {name}"))?;
        let stdout = child.stdout.take().context("the client's stdout")?;
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        let reader = thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(event) = serde_json::from_str::<Value>(&line) {
                    sink.lock().unwrap_or_else(|e| e.into_inner()).push(event);
                }
            }
        });
        Ok(Client {
            name: name.to_owned(),
            label: label.to_owned(),
            child,
            events,
            reader: Some(reader),
            log,
        })
    }

    fn events(&self) -> Vec<Value> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Messages received from `sender` after the wall-clock time `after`.
    fn heard_from(&self, sender: &str, after: f64) -> usize {
        self.events()
            .iter()
            .filter(|e| e["event"] == "received" && e["from"] == sender)
            .filter(|e| e["wall"].as_f64().is_some_and(|at| at > after))
            .count()
    }

    /// When the last message from `sender` arrived.
    fn last_from(&self, sender: &str) -> Option<f64> {
        self.events()
            .iter()
            .filter(|e| e["event"] == "received" && e["from"] == sender)
            .filter_map(|e| e["wall"].as_f64())
            .reduce(f64::max)
    }

    /// The numbers N of the messages `"SENDER: hello N from SENDER"` received from `sender`.
    fn numbers_from(&self, sender: &str) -> Vec<u64> {
        self.events()
            .iter()
            .filter(|e| e["event"] == "received" && e["from"] == sender)
            .filter_map(|e| {
                let text = e["text"].as_str()?;
                text.split_once("hello ")?
                    .1
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            })
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

    /// Messages this client sent after the wall-clock time `after`.
    fn sent_after(&self, after: f64) -> usize {
        self.events()
            .iter()
            .filter(|e| e["event"] == "sent")
            .filter(|e| e["wall"].as_f64().is_some_and(|at| at > after))
            .count()
    }

    /// An error when the client exited or reported a signaling error.
    fn check_alive(&self) -> Result<(), Wait> {
        if let Some(error) = self.events().iter().find(|e| e["event"] == "error") {
            return Err(Wait::Fatal(format!(
                "{} failed: {}",
                self.label, error["message"]
            )));
        }
        // The reader ends when the client's stdout closes: it exited.
        if self.reader.as_ref().is_some_and(JoinHandle::is_finished) {
            return Err(Wait::Fatal(format!(
                "{} exited early:\n{}",
                self.label,
                tail(&self.log, 10)
            )));
        }
        Ok(())
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        kill(&mut self.child);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}
