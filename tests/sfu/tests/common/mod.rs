//! What the SFU's integration tests share: the SFU as a child process, a small HTTP/1.1 client,
//! offers made by str0m in the role of a client, a relay in network namespaces ([`relay`]),
//! geofence in front of it ([`geofence`]) and headless Chromium as a participant ([`browser`]).

#![allow(dead_code)] // Each test file uses its own part of this.

pub mod browser;
pub mod geofence;
pub mod relay;

use std::{
    fs::File,
    io::{BufRead as _, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    os::unix::net::UnixStream,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;
use str0m::{Rtc, change::SdpPendingOffer};

pub const SFU_BIN: &str = env!("CARGO_BIN_EXE_geofence-test-sfu");

/// A running SFU; killed on drop, its log shown when a test fails.
pub struct Sfu {
    child: Child,
    log: std::path::PathBuf,
    pub udp: SocketAddr,
    pub http: SocketAddr,
}

impl Sfu {
    /// Starts `command` (the SFU, perhaps behind `ip netns exec`), logging into `log`, and waits
    /// for its `ready` line.
    pub fn start(mut command: Command, log: &Path) -> Sfu {
        let log_file = File::create(log).expect("creating the SFU log");
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .expect("starting the SFU");
        let stdout = child.stdout.take().expect("SFU stdout is piped");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("reading the SFU's ready line");
        let mut sfu = Sfu {
            child,
            log: log.to_owned(),
            udp: "0.0.0.0:0".parse().expect("an address"),
            http: "0.0.0.0:0".parse().expect("an address"),
        };
        let field = |name: &str| -> Option<SocketAddr> {
            line.split_whitespace()
                .find_map(|word| word.strip_prefix(name))
                .and_then(|addr| addr.parse().ok())
        };
        match (field("udp="), field("http=")) {
            (Some(udp), Some(http)) => (sfu.udp, sfu.http) = (udp, http),
            _ => panic!("the SFU did not get ready: {line:?}"),
        }
        sfu
    }

    /// The SFU on loopback, ports chosen by the kernel.
    pub fn on_loopback(register: &str, log: &Path) -> Sfu {
        let mut command = Command::new(SFU_BIN);
        command.args([
            "--udp",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            "--register",
            register,
        ]);
        Sfu::start(command, log)
    }

    pub fn post(&self, path: &str, body: &str) -> (u16, Value) {
        http(self.http, "POST", path, body)
    }

    pub fn state(&self) -> Value {
        let (status, state) = http(self.http, "GET", "/state", "");
        assert_eq!(status, 200, "GET /state: {state}");
        state
    }
}

impl Drop for Sfu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!("--- SFU log ---\n{log}--- end of SFU log ---");
        }
    }
}

/// One HTTP/1.1 exchange on a fresh connection; the status and the JSON body (or the body as a
/// JSON string when it is not JSON).
pub fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, Value) {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("setting a read timeout");
    exchange(stream, method, path, body)
}

/// [`http`] on a Unix socket, e.g. geofence's binding API.
pub fn http_unix(socket: &Path, method: &str, path: &str, body: &str) -> (u16, Value) {
    let stream = UnixStream::connect(socket)
        .unwrap_or_else(|e| panic!("connecting to {}: {e}", socket.display()));
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("setting a read timeout");
    exchange(stream, method, path, body)
}

pub fn exchange(
    mut stream: impl Read + Write,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, Value) {
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nhost: sfu\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("sending the request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("reading the response");
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    let body = serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_owned()));
    (status, body)
}

/// A client's offer with one data channel, as JSON `{"type":"offer","sdp":...}`.
pub fn client_offer() -> (Rtc, SdpPendingOffer, String) {
    let mut rtc = Rtc::builder().build(Instant::now());
    let mut change = rtc.sdp_api();
    change.add_channel("chat".to_owned());
    let (offer, pending) = change.apply().expect("an offer for a new channel");
    let json = serde_json::to_string(&offer).expect("offer serializes");
    (rtc, pending, json)
}

/// The `a=ice-ufrag` of an SDP answer in its JSON form.
pub fn answer_ufrag(answer: &Value) -> String {
    answer["sdp"]
        .as_str()
        .and_then(|sdp| {
            sdp.lines()
                .find_map(|line| line.trim().strip_prefix("a=ice-ufrag:"))
        })
        .unwrap_or_else(|| panic!("no ufrag in the answer {answer}"))
        .to_owned()
}
