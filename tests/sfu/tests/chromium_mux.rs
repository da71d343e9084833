//! geofence's shared-port filtering against a browser's WebRTC stack: headless Chromium
//! participants (fake camera and a data channel, tests/webrtc/chromium.html) in two meetings on
//! ONE SFU UDP port, each browser in a network namespace of its own with an address in its
//! territory.
//!
//! ```text
//!   relay netns: SFU udp 10.9.0.1:7882 (page and signaling on :8080), geofence on its veth
//!        |
//!   hub netns: a bridge
//!        |
//!   a-xa: A from XA 10.1.0.11    b-xa: B from XA 10.1.0.12    a-xb: A from XB 10.2.0.11
//! ```
//!
//! All three connect and send video through geofence (the SFU registered their ufrags, the XDP
//! program learned their flows from STUN); `geofence block A --territory XA`: the SFU receives
//! nothing more from a-xa, whose browser goes on sending, while b-xa (same territory, other
//! meeting) and a-xb (same meeting, other territory) keep flowing; the counters show the drops
//! for A from XA only. After `unblock`, a-xa's video reaches the SFU again on the same
//! transport.
//!
//! Needs root, the geofence binary (`GEOFENCE_BIN`, else target/debug/geofence) and a
//! `chromium` on the PATH (`cargo xtask setup` installs it); without any of them it says why
//! and passes.

mod common;

use std::{
    fmt::Display,
    process::Command,
    thread,
    time::{Duration, Instant},
};

use common::{
    SFU_BIN, Sfu,
    browser::{Browser, find_chromium, page_event},
    geofence::{Daemon, Geofence},
    relay::{Topology, geofence_bin, is_root, reap_stale, wait_until},
};
use serde_json::Value;

const RELAY_IP: &str = "10.9.0.1";
const MUX_PORT: u16 = 7882;
const HTTP_PORT: u16 = 8080;
const GEO_CSV: &str = "10.1.0.0,10.1.255.255,XA\n10.2.0.0,10.2.255.255,XB\n";
const NETNS_PREFIX: &str = "gfcr";
const PIN_PREFIX: &str = "gf-sfu-chromium-";
/// (slot, address, meeting, participant): one browser per slot.
const BROWSERS: [(&str, &str, &str, &str); 3] = [
    ("xa1", "10.1.0.11", "A", "a-xa"),
    ("xa2", "10.1.0.12", "B", "b-xa"),
    ("xb1", "10.2.0.11", "A", "a-xb"),
];
/// Time for packets already past the filter when `block` returns to reach the SFU.
const SETTLE: Duration = Duration::from_millis(500);
/// How long the test watches the flows under the rule.
const WATCH: Duration = Duration::from_secs(3);

// ---------------------------------------------------------------------------------------
// The test

/// A human-readable timeline on stderr.
struct Timeline(Instant);

impl Timeline {
    fn say(&self, what: impl Display) {
        eprintln!("[{:6.2}s] {what}", self.0.elapsed().as_secs_f64());
    }
}

/// A participant's counter in the SFU's `/state`; 0 when it is not there (yet).
fn sfu_counter(state: &Value, meeting: &str, name: &str, counter: &str) -> u64 {
    state["meetings"][meeting]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["participant"] == name)
        .and_then(|p| p[counter].as_u64())
        .unwrap_or(0)
}

/// Media frames the SFU received from each browser, in [`BROWSERS`] order.
fn frames_in(state: &Value) -> Vec<u64> {
    BROWSERS
        .iter()
        .map(|(_, _, meeting, name)| sfu_counter(state, meeting, name, "media_frames_in"))
        .collect()
}

#[test]
fn block_drops_a_browsers_media_on_a_shared_port_by_meeting_and_territory() {
    if !is_root() {
        eprintln!("skipped: network namespaces, XDP and bpffs need root");
        return;
    }
    let (geofence_bin, chromium) = match (geofence_bin(), find_chromium()) {
        (Ok(geofence), Ok(chromium)) => (geofence, chromium),
        (Err(why), _) | (_, Err(why)) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let timeline = Timeline(Instant::now());
    reap_stale(NETNS_PREFIX, PIN_PREFIX);

    // Declared in this order, dropped in the reverse: browsers, SFU, daemon, geofence
    // (detach, pins), the namespaces, the temporary directory (profiles, logs, state).
    let dir = tempfile::tempdir().expect("a temporary directory");
    let slots: Vec<(&str, &str)> = BROWSERS.iter().map(|(s, a, _, _)| (*s, *a)).collect();
    let territories = ["10.1.0.0/16", "10.2.0.0/16"];
    let topology = Topology::create(NETNS_PREFIX, "gc", RELAY_IP, &territories, &slots);
    let mut geofence = Geofence::new(&geofence_bin, PIN_PREFIX, dir.path().join("state"));
    let geo = dir.path().join("geo.csv");
    std::fs::write(&geo, GEO_CSV).expect("writing the geo file");
    geofence.run(&["geo", "load", geo.to_str().expect("a UTF-8 path")]);
    geofence.run(&["meeting", "add", "A"]);
    geofence.run(&["meeting", "add", "B"]);
    let mux = format!("udp:{RELAY_IP}:{MUX_PORT}");
    geofence.run(&["mux", "add", &mux]);
    let relay_if = topology.relay_if.clone();
    geofence.attach(&relay_if, &topology.relay());
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
    let sfu_state = || {
        let (status, state) = topology.http(sfu.http, "GET", "/state");
        assert_eq!(status, 200, "GET /state: {state}");
        state
    };
    timeline.say(format!(
        "relay up: geofence on {relay_if}, meetings A and B share {mux}; SFU on udp {}",
        sfu.udp
    ));

    let profiles = dir.path().join("profiles");
    let browsers: Vec<Browser> = BROWSERS
        .iter()
        .map(|(slot, _, meeting, name)| {
            Browser::launch(
                &chromium, &topology, sfu.http, &profiles, slot, meeting, name,
            )
        })
        .collect();
    let (a_xa, a_xb) = (&browsers[0], &browsers[2]);

    // 1. No rule: every browser's video reaches the SFU, and A's two hear each other.
    let flowing = wait_until(
        "every browser's media reaches the SFU and A's two hear each other",
        Duration::from_secs(30),
        || {
            browsers.iter().for_each(Browser::check);
            let state = sfu_state();
            let frames = frames_in(&state);
            let heard = [a_xa.received_from("a-xb"), a_xb.received_from("a-xa")];
            let video_in = [a_xa, a_xb].map(|b| {
                b.last_stats()
                    .and_then(|s| s["bytes_received"].as_u64())
                    .unwrap_or(0)
            });
            if frames.iter().all(|&n| n >= 20)
                && heard.iter().all(|&n| n >= 3)
                && video_in.iter().all(|&n| n > 0)
            {
                Ok(frames)
            } else {
                Err(format!(
                    "SFU frames in {frames:?}, A's messages heard {heard:?}, A's video bytes \
                     in {video_in:?}"
                ))
            }
        },
    );
    daemon.expect_bindings("A", 2, 2);
    daemon.expect_bindings("B", 1, 1);
    let dropped_before = geofence.packets("A", "XA", "dropped");
    timeline.say(format!(
        "1. no rule: the SFU got {flowing:?} video frames from {:?}; a-xa and a-xb see each \
         other's video and messages; bindings A 2 ufrags/2 learned flows, B 1/1",
        BROWSERS.map(|b| b.3)
    ));

    // 2. Block meeting A from XA.
    let out = geofence.run(&["block", "A", "--territory", "XA", "--order", "ORD-C"]);
    timeline.say(format!(
        "2. `geofence block A --territory XA --order ORD-C`: {out}"
    ));
    thread::sleep(SETTLE);
    let (before, sent_before, heard_before) = (
        frames_in(&sfu_state()),
        a_xa.last_stats(),
        a_xb.received_from("a-xa"),
    );
    thread::sleep(WATCH);
    browsers.iter().for_each(Browser::check);
    let (after, sent_after, heard_after) = (
        frames_in(&sfu_state()),
        a_xa.last_stats(),
        a_xb.received_from("a-xa"),
    );
    let grew: Vec<u64> = after
        .iter()
        .zip(&before)
        .map(|(a, b)| a.saturating_sub(*b))
        .collect();
    timeline.say(format!(
        "   in the {WATCH:?} from {SETTLE:?} after the block, the SFU got {grew:?} more video \
         frames from {:?}",
        BROWSERS.map(|b| b.3)
    ));
    assert_eq!(
        grew[0], 0,
        "a-xa (A from XA) still reaches the SFU: {before:?} → {after:?}"
    );
    assert!(
        grew[1] >= 5,
        "b-xa (B from XA) stopped flowing: {before:?} → {after:?}"
    );
    assert!(
        grew[2] >= 5,
        "a-xb (A from XB) stopped flowing: {before:?} → {after:?}"
    );
    // The browser did not stop: its packets are dropped on the way.
    let bytes_sent = |stats: &Option<Value>| {
        stats
            .as_ref()
            .and_then(|s| s["bytes_sent"].as_u64())
            .unwrap_or(0)
    };
    let (sent_before, sent_after) = (bytes_sent(&sent_before), bytes_sent(&sent_after));
    assert!(
        sent_after > sent_before,
        "a-xa's browser stopped sending ({sent_before} → {sent_after} bytes)"
    );
    assert_eq!(
        heard_after, heard_before,
        "a-xb still hears a-xa's messages under the block"
    );
    let dropped = geofence.packets("A", "XA", "dropped");
    assert!(
        dropped > dropped_before,
        "A from XA: dropped {dropped_before} → {dropped}"
    );
    for (meeting, territory) in [("A", "XB"), ("B", "XA")] {
        assert_eq!(
            geofence.packets(meeting, territory, "dropped"),
            0,
            "{meeting} from {territory} had packets dropped"
        );
    }
    timeline.say(format!(
        "   a-xa's browser sent {} more bytes that never arrived (A from XA dropped {} \
         packets); nothing of A from XB or B from XA was dropped",
        sent_after - sent_before,
        dropped - dropped_before
    ));

    // 3. Lift the rule: the same transport flows again (the browser and the SFU kept it, ICE
    // consent has not run out yet), so what stopped it was the rule.
    geofence.run(&["unblock", "A", "--territory", "XA"]);
    let stopped_at = after[0];
    let resumed = wait_until(
        "a-xa's media reaches the SFU again after the unblock",
        Duration::from_secs(10),
        || {
            let frames = frames_in(&sfu_state())[0];
            if frames >= stopped_at + 10 {
                Ok(frames - stopped_at)
            } else {
                Err(format!("{stopped_at} → {frames} frames from a-xa"))
            }
        },
    );
    timeline.say(format!(
        "3. `geofence unblock A --territory XA`: a-xa's video reaches the SFU again \
         ({resumed} more frames)"
    ));
    drop(browsers);
    drop(sfu);
}

/// The page is served by the SFU itself (same-origin signaling), and its console lines are
/// read back as events; neither needs root nor a browser.
#[test]
fn the_sfu_serves_the_page_and_its_console_lines_parse() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let sfu = Sfu::on_loopback("none", &dir.path().join("sfu.log"));
    let (status, page) = common::http(sfu.http, "GET", "/chromium.html", "");
    assert_eq!(status, 200);
    let page = page.as_str().expect("the page is not JSON");
    for needle in ["RTCPeerConnection", "/join?meeting=", "GFEVENT "] {
        assert!(page.contains(needle), "the page has no {needle:?}");
    }

    let line = r#"[3158:3158:1206/171044.473102:INFO:CONSOLE:20] "GFEVENT {"event":"received","text":"p2: hello 1 from p2","from":"p2"}", source: http://127.0.0.1:18080/chromium.html?meeting=A&participant=p1 (20)"#;
    let event = page_event(line).expect("a page event");
    assert_eq!(event["event"], "received");
    assert_eq!(event["from"], "p2");
    let noise =
        "[30836:30876:1206/170753.850435:ERROR:dbus/bus.cc:405] Failed to connect to the bus";
    assert_eq!(page_event(noise), None);
    assert_eq!(page_event(r#"x "GFEVENT {not json", source: y (1)"#), None);
}
