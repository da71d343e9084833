//! Packets the filter cannot parse, through a real stack: a relay namespace with a
//! dual-stack UDP socket, and frames written to the wire from a peer namespace.
//!
//! First without geofence, to show what the relay's stack does with them (it delivers an
//! IPv6 datagram padded with more extension headers than the filter's walk follows, and
//! one with an IPv4-mapped source, as that IPv4 host); then with geofence attached and a
//! rule in force: the padded datagram from a blocked source is dropped, the same from an
//! unblocked source still arrives, and the mapped source is judged as its IPv4 host.
//!
//! Needs root; skipped otherwise.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use geofence_test_frames::{Ext, Packet};
use geofence_tests::cli::Geofence;
use geofence_tests::netns::{NetNs, veth};
use geofence_tests::sys::{require_root, unique_tag};
use geofence_tests::wire::{packet_socket, send};

const RELAY_MAC: &str = "02:00:00:00:00:01";
const RELAY6: &str = "fd00:6f::1";
const PORT: u16 = 40000;

struct Net {
    relay: NetNs,
    peer: NetNs,
}

impl Net {
    fn new() -> Result<Net> {
        let tag = unique_tag();
        let relay = NetNs::new(&format!("gfu-r-{tag}"))?;
        let peer = NetNs::new(&format!("gfu-p-{tag}"))?;
        veth(&relay, "r0", &peer, "p0")?;
        relay.ip(&["link", "set", "r0", "address", RELAY_MAC])?;
        relay.ip(&["addr", "add", &format!("{RELAY6}/64"), "dev", "r0", "nodad"])?;
        Ok(Net { relay, peer })
    }
}

/// The payloads the relay's socket received within `wait`.
fn received(socket: &UdpSocket, wait: Duration) -> Vec<String> {
    let mut got = Vec::new();
    let until = Instant::now() + wait;
    let mut buf = [0u8; 256];
    while Instant::now() < until {
        if let Ok((n, _)) = socket.recv_from(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    got.sort();
    got
}

/// Frames from four sources; the payload names each.
fn frames() -> Vec<(String, Vec<u8>)> {
    let dst: SocketAddr = format!("[{RELAY6}]:{PORT}").parse().expect("address");
    let padding = [Ext::DEST_OPTS; 8];
    let udp = |src: &str, exts: &[Ext], name: &str| {
        let src: SocketAddr = src.parse().expect("address");
        let bytes = Packet::udp(src, dst)
            .exts(exts)
            .payload(name.as_bytes())
            .build()
            .bytes;
        (name.to_string(), bytes)
    };
    vec![
        udp("[2001:db8:a::5]:5000", &[], "plain-blocked"),
        udp("[2001:db8:a::5]:5000", &padding, "padded-blocked"),
        udp("[2001:db8:c::5]:5000", &padding, "padded-other"),
        udp("[::ffff:192.0.2.10]:5000", &[], "mapped-blocked"),
        udp("[::ffff:10.9.9.9]:5000", &[], "mapped-other"),
    ]
}

/// Sends a frame from a source no rule blocks until the relay's socket receives one: the
/// veth pair carries nothing until both ends are up, and attaching XDP may restart it.
fn wait_ready(net: &Net, socket: &UdpSocket) -> Result<()> {
    let dst: SocketAddr = format!("[{RELAY6}]:{PORT}").parse()?;
    let src: SocketAddr = "[2001:db8:c::9]:5000".parse()?;
    let warm = Packet::udp(src, dst).payload(b"warm").build().bytes;
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        net.peer
            .run(|| -> Result<()> { send(&packet_socket("p0")?, &warm) })??;
        if received(socket, Duration::from_millis(100))
            .iter()
            .any(|p| p == "warm")
        {
            // Late copies of the warm-up frame must not count in what follows.
            received(socket, Duration::from_millis(100));
            return Ok(());
        }
    }
    bail!("the relay's socket received nothing from the peer in 10 s")
}

fn exchange(net: &Net, socket: &UdpSocket) -> Result<Vec<String>> {
    wait_ready(net, socket)?;
    let frames = frames();
    net.peer.run(|| -> Result<()> {
        let fd = packet_socket("p0")?;
        for (_, bytes) in &frames {
            send(&fd, bytes)?;
        }
        Ok(())
    })??;
    let mut got = received(socket, Duration::from_millis(500));
    got.retain(|p| p != "warm");
    Ok(got)
}

#[test]
fn padded_and_mapped_sources_meet_the_rules() {
    if !require_root("padded_and_mapped_sources_meet_the_rules") {
        return;
    }
    let net = Net::new().expect("namespaces");
    let socket = net
        .relay
        .run(|| -> Result<UdpSocket> {
            let s = UdpSocket::bind(("::", PORT)).context("binding [::]:40000")?;
            s.set_read_timeout(Some(Duration::from_millis(50)))?;
            Ok(s)
        })
        .expect("in the relay namespace")
        .expect("a dual-stack socket");
    let all: Vec<String> = {
        let mut v: Vec<String> = frames().into_iter().map(|(n, _)| n).collect();
        v.sort();
        v
    };
    // The stack alone delivers every one of them, padded and mapped alike.
    assert_eq!(
        exchange(&net, &socket).expect("exchange"),
        all,
        "without geofence"
    );

    let gf = Geofence::new().expect("a geofence driver");
    gf.block_xa(
        "2001:db8:a::/48\n192.0.2.0/24\n",
        ("r0", net.relay.name()),
        PORT,
        "ORD-unparsed-1",
    )
    .expect("a relay blocking XA");
    let got = exchange(&net, &socket).expect("exchange");
    assert_eq!(
        got,
        vec!["mapped-other".to_string(), "padded-other".to_string()],
        "with XA blocked on the meeting: only sources outside XA arrive"
    );
    let status: serde_json::Value =
        serde_json::from_str(&gf.run(&["status", "--json"]).expect("status")).expect("json");
    assert_eq!(
        status["unparsed_blocked"]["ext_header_limit"],
        serde_json::json!(1),
        "the padded datagram is counted as dropped unparsed: {}",
        status["unparsed_blocked"]
    );
}
