//! The relay and peer namespaces of the upgrade tests, and the traffic between them.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use aya::programs::links::{FdLink, PinnedLink};
use geofence_test_frames::Packet;
use geofence_tests::cli::Geofence;
use geofence_tests::netns::{NetNs, veth};
use geofence_tests::sys::unique_tag;
use geofence_tests::wire::packet_socket;

const RELAY_MAC: &str = "02:00:00:00:00:01";
const RELAY6: &str = "fd00:70::1";
const PORT: u16 = 40000;
const BLOCKED: &str = "[2001:db8:a::5]:5000";
const ALLOWED: &str = "[2001:db8:c::5]:5000";

fn frame(src: &str, payload: &str) -> Vec<u8> {
    let src: SocketAddr = src.parse().expect("address");
    let dst: SocketAddr = format!("[{RELAY6}]:{PORT}").parse().expect("address");
    Packet::udp(src, dst)
        .payload(payload.as_bytes())
        .build()
        .bytes
}

/// What the relay's socket received: frames from each source.
#[derive(Default)]
struct Received {
    blocked: AtomicU64,
    allowed: AtomicU64,
}

/// A peer sending a blocked and an allowed frame every 200 µs, and the relay counting what
/// arrives, both until dropped.
pub struct Traffic {
    stop: Arc<AtomicBool>,
    received: Arc<Received>,
    pub sent: Arc<AtomicU64>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Traffic {
    fn start(peer: OwnedFd, socket: UdpSocket) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let received = Arc::new(Received::default());
        let sent = Arc::new(AtomicU64::new(0));
        let blocked = frame(BLOCKED, "blocked");
        let allowed = frame(ALLOWED, "allowed");
        let sender = {
            let (stop, sent) = (stop.clone(), sent.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    for bytes in [&blocked, &allowed] {
                        // SAFETY: the buffer is valid for its length.
                        let n = unsafe {
                            libc::send(peer.as_raw_fd(), bytes.as_ptr().cast(), bytes.len(), 0)
                        };
                        assert!(n > 0, "send: {}", std::io::Error::last_os_error());
                    }
                    sent.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_micros(200));
                }
            })
        };
        let receiver = {
            let (stop, received) = (stop.clone(), received.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 64];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((n, _)) = socket.recv_from(&mut buf) {
                        match &buf[..n] {
                            b"blocked" => received.blocked.fetch_add(1, Ordering::Relaxed),
                            b"allowed" => received.allowed.fetch_add(1, Ordering::Relaxed),
                            _ => 0,
                        };
                    }
                }
            })
        };
        Traffic {
            stop,
            received,
            sent,
            threads: vec![sender, receiver],
        }
    }

    /// (blocked, allowed) frames received so far.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.received.blocked.load(Ordering::Relaxed),
            self.received.allowed.load(Ordering::Relaxed),
        )
    }

    /// Waits until the allowed source has delivered `more` frames beyond `from`.
    pub fn wait_allowed(&self, from: u64, more: u64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.counts().1 < from + more {
            assert!(
                Instant::now() < deadline,
                "the allowed source stopped arriving: {} frames, expected {}",
                self.counts().1,
                from + more
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    /// Waits until the blocked source's frames arrive, once its rule is lifted.
    pub fn wait_blocked_arrives(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.counts().0 == 0 {
            assert!(
                Instant::now() < deadline,
                "the blocked source never arrived once unblocked: the usual pins do not \
                 reach the program the link runs"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// The program the link pinned at `pin` runs.
pub fn program_of(pin: &Path) -> u32 {
    let link = PinnedLink::from_pin(pin).expect("the link pin");
    FdLink::from(link).info().expect("link info").program_id()
}

/// Pins at `at` a new, empty map laid out as the one pinned at `like`.
pub fn pin_empty_like(like: &Path, at: &Path) {
    let shown = geofence_tests::sys::run(
        "bpftool",
        &["map", "show", "pinned", &like.to_string_lossy(), "-j"],
    )
    .expect("bpftool map show");
    let map: serde_json::Value = serde_json::from_str(&shown).expect("bpftool json");
    let field = |name: &str| map[name].to_string().trim_matches('"').to_string();
    geofence_tests::sys::run(
        "bpftool",
        &[
            "map",
            "create",
            &at.to_string_lossy(),
            "type",
            &field("type"),
            "key",
            &field("bytes_key"),
            "value",
            &field("bytes_value"),
            "entries",
            &field("max_entries"),
            "name",
            &field("name"),
            "flags",
            &field("flags"),
        ],
    )
    .expect("bpftool map create");
}

pub struct Relay {
    _net: (NetNs, NetNs),
    pub gf: Geofence,
    pub link: std::path::PathBuf,
    pub traffic: Traffic,
}

/// Namespaces, geofence attached with XA blocked on the meeting, traffic flowing.
pub fn relay() -> Relay {
    let tag = unique_tag();
    let relay = NetNs::new(&format!("gfup-r-{tag}")).expect("namespace");
    let peer = NetNs::new(&format!("gfup-p-{tag}")).expect("namespace");
    veth(&relay, "r0", &peer, "p0").expect("veth");
    relay
        .ip(&["link", "set", "r0", "address", RELAY_MAC])
        .expect("mac");
    relay
        .ip(&["addr", "add", &format!("{RELAY6}/64"), "dev", "r0", "nodad"])
        .expect("address");
    let socket = relay
        .run(|| -> Result<UdpSocket> {
            let s = UdpSocket::bind(("::", PORT)).context("binding [::]:40000")?;
            s.set_read_timeout(Some(Duration::from_millis(20)))?;
            Ok(s)
        })
        .expect("in the relay namespace")
        .expect("a socket");
    let sender = peer
        .run(|| packet_socket("p0"))
        .expect("in the peer namespace")
        .expect("a packet socket");

    let gf = Geofence::new().expect("a geofence driver");
    gf.block_xa(
        "2001:db8:a::/48\n",
        ("r0", relay.name()),
        PORT,
        "ORD-upgrade-1",
    )
    .expect("a relay blocking XA");
    let link = gf
        .pin_dir()
        .join(format!("link_{}_r0", relay.name()).replace('.', "_"));
    assert!(link.exists(), "attach pins its link at {}", link.display());
    let traffic = Traffic::start(sender, socket);
    traffic.wait_allowed(0, 200);
    Relay {
        _net: (relay, peer),
        gf,
        link,
        traffic,
    }
}

/// `status --json` holds the meeting's XA rule with its order, and the interface runs
/// `program`, this build's.
pub fn assert_rule_in_status(gf: &Geofence, program: u32) {
    let status: serde_json::Value =
        serde_json::from_str(&gf.run(&["status", "--json"]).expect("status")).expect("json");
    let text = status.to_string();
    assert!(
        text.contains("ORD-upgrade-1") && text.contains("XA"),
        "status shows the rule after the upgrade: {text}"
    );
    let interfaces: Vec<_> = status["interfaces"]
        .as_array()
        .expect("interfaces")
        .iter()
        .map(|a| (a["program_build"].clone(), a["program_id"].clone()))
        .collect();
    assert_eq!(
        interfaces,
        vec![(serde_json::json!("this"), serde_json::json!(program))],
        "status: {text}"
    );
}
