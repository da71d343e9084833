//! `geofence monitor` against the attached program: frames written to the wire from a peer
//! namespace reach the relay's interface, and the monitor (the real binary) prints the
//! program's decisions: the meeting, territory, verdict, reason and order, the source only
//! with `--show-addresses`, filtered by meeting and verdict. It turns the program's switch
//! off when it ends, and a monitor killed outright leaves a switch `status` reports and
//! `monitor --off` clears.
//!
//! Needs root; skipped otherwise.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use geofence_test_frames::Packet;
use geofence_tests::cli::{Geofence, geofence_bin};
use geofence_tests::netns::{NetNs, veth};
use geofence_tests::sys::{require_root, unique_tag};
use geofence_tests::wire::{packet_socket, send};

const RELAY: &str = "100.64.0.1";
const MEETING_PORT: u16 = 40000;
const OTHER_PORT: u16 = 40001;
const BLOCKED_SOURCE: &str = "192.0.2.10:5000";
const OTHER_SOURCE: &str = "10.9.9.9:5000";
const ORDER: &str = "ORD-MONITOR-1";

struct Net {
    _relay: NetNs,
    peer: NetNs,
    relay_name: String,
}

impl Net {
    fn new() -> Result<Net> {
        let tag = unique_tag();
        let relay = NetNs::new(&format!("gfm-r-{tag}"))?;
        let peer = NetNs::new(&format!("gfm-p-{tag}"))?;
        veth(&relay, "r0", &peer, "p0")?;
        let relay_name = relay.name().to_string();
        Ok(Net {
            _relay: relay,
            peer,
            relay_name,
        })
    }

    /// One frame of each kind: a blocked source and another to the meeting, and the
    /// blocked source to the other meeting.
    fn send_round(&self) -> Result<()> {
        let to = |port: u16| -> SocketAddr { format!("{RELAY}:{port}").parse().expect("addr") };
        let frames: Vec<Vec<u8>> = [
            (BLOCKED_SOURCE, MEETING_PORT),
            (OTHER_SOURCE, MEETING_PORT),
            (BLOCKED_SOURCE, OTHER_PORT),
        ]
        .iter()
        .map(|(src, port)| {
            let src: SocketAddr = src.parse().expect("addr");
            Packet::udp(src, to(*port)).payload(b"m").build().bytes
        })
        .collect();
        self.peer.run(|| -> Result<()> {
            let fd = packet_socket("p0")?;
            for frame in &frames {
                send(&fd, frame)?;
            }
            Ok(())
        })?
    }
}

/// A running `geofence monitor`, its stdout lines on a channel; killed on drop.
struct Monitor {
    child: Child,
    lines: Receiver<String>,
}

impl Monitor {
    fn spawn(gf: &Geofence, args: &[&str]) -> Result<Monitor> {
        let mut child = Command::new(geofence_bin()?)
            .arg("--pin-dir")
            .arg(gf.pin_dir())
            .arg("--state-dir")
            .arg(gf.temp_dir().join("state"))
            .arg("monitor")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("spawning geofence monitor")?;
        let stdout = child.stdout.take().context("the monitor's stdout")?;
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Monitor { child, lines })
    }

    /// Sends rounds of frames until a line matching `want` comes (10 s at most), then keeps
    /// sending for `linger` to collect what else the monitor prints; returns every line.
    fn collect(&self, net: &Net, want: &str, linger: Duration) -> Result<Vec<String>> {
        let mut lines = Vec::new();
        let until = Instant::now() + Duration::from_secs(10);
        let mut found: Option<Instant> = None;
        loop {
            net.send_round()?;
            while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(100)) {
                if found.is_none() && line.contains(want) {
                    found = Some(Instant::now());
                }
                lines.push(line);
            }
            match found {
                Some(at) if at.elapsed() >= linger => return Ok(lines),
                None if Instant::now() > until => {
                    bail!("no line with `{want}` in 10 s; the monitor printed {lines:#?}")
                }
                _ => {}
            }
        }
    }

    /// SIGTERM, as systemd or `kill` sends it; the monitor must exit cleanly.
    fn stop(mut self) -> Result<()> {
        let pid = libc::pid_t::try_from(self.child.id())?;
        // SAFETY: a signal to our own child, which has not been reaped.
        if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
            return Err(std::io::Error::last_os_error()).context("SIGTERM");
        }
        let status = self.child.wait()?;
        if !status.success() {
            bail!("the monitor exited with {status} after SIGTERM");
        }
        Ok(())
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn switch(gf: &Geofence) -> Result<String> {
    let status: serde_json::Value = serde_json::from_str(&gf.run(&["status", "--json"])?)?;
    Ok(status["monitor"].as_str().unwrap_or("absent").to_string())
}

/// Waits until `status` reports the switch as `want` (a monitor turns it on at start).
fn wait_switch(gf: &Geofence, want: &str) -> Result<()> {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let now = switch(gf)?;
        if now == want {
            return Ok(());
        }
        if Instant::now() > until {
            bail!("the monitor switch is `{now}`, not `{want}`, after 10 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn setup(net: &Net) -> Result<Geofence> {
    let gf = Geofence::new()?;
    let table = gf.temp_dir().join("xa.txt");
    std::fs::write(&table, "192.0.2.0/24\n")?;
    let table = table.to_string_lossy().into_owned();
    gf.run(&[
        "geo",
        "load",
        "--format",
        "cidr",
        "--territory",
        "XA",
        &table,
    ])?;
    gf.attach("r0", &net.relay_name)?;
    for (name, port) in [("m", MEETING_PORT), ("other", OTHER_PORT)] {
        gf.run(&[
            "meeting",
            "add",
            name,
            "--endpoint",
            &format!("udp:*:{port}"),
        ])?;
    }
    gf.run(&["block", "m", "--territory", "XA", "--order", ORDER])?;
    Ok(gf)
}

#[test]
fn the_monitor_prints_decisions_and_turns_its_switch_off() {
    if !require_root("the_monitor_prints_decisions_and_turns_its_switch_off") {
        return;
    }
    let net = Net::new().expect("namespaces");
    let gf = setup(&net).expect("setup");
    assert_eq!(
        switch(&gf).expect("status"),
        "off",
        "off before any monitor"
    );

    // Every meeting and verdict, no addresses.
    let monitor = Monitor::spawn(&gf, &[]).expect("monitor");
    wait_switch(&gf, "on").expect("the monitor turns the switch on");
    let lines = monitor
        .collect(&net, "verdict=dropped", Duration::from_millis(500))
        .expect("lines");
    monitor.stop().expect("stopped by SIGTERM");
    let dropped = lines
        .iter()
        .find(|l| l.contains("verdict=dropped"))
        .expect("a drop");
    for field in [
        "meeting=m ",
        "territory=XA ",
        "verdict=dropped ",
        "reason=territory ",
    ] {
        assert!(dropped.contains(field), "`{field}` in {dropped}");
    }
    assert!(dropped.ends_with(&format!("order={ORDER}")), "{dropped}");
    assert!(
        lines.iter().any(|l| l.contains("meeting=m ")
            && l.contains("territory=unknown ")
            && l.contains("verdict=passed reason=no-rule order=-")),
        "the unblocked source passes: {lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("meeting=other ") && l.contains("verdict=passed")),
        "the other meeting's decisions are shown too: {lines:#?}"
    );
    assert!(
        lines
            .iter()
            .all(|l| !l.contains("src=") && !l.contains("192.0.2.10") && !l.contains("10.9.9.9")),
        "no address without --show-addresses: {lines:#?}"
    );
    assert_eq!(switch(&gf).expect("status"), "off", "off after the monitor");

    // One meeting, drops only, with addresses.
    let monitor =
        Monitor::spawn(&gf, &["m", "--verdict", "dropped", "--show-addresses"]).expect("monitor");
    wait_switch(&gf, "on").expect("on");
    let lines = monitor
        .collect(&net, "verdict=dropped", Duration::from_millis(800))
        .expect("lines");
    assert!(
        gf.run(&["monitor", "--off"]).is_err(),
        "--off refuses while a monitor runs"
    );
    monitor.stop().expect("stopped by SIGTERM");
    assert!(
        lines.iter().all(|l| l.contains("meeting=m ")
            && l.contains("verdict=dropped ")
            && l.ends_with(&format!("order={ORDER} src=192.0.2.10"))),
        "only m's drops, each with its source: {lines:#?}"
    );
    assert_eq!(switch(&gf).expect("status"), "off", "off after the monitor");

    // Killed outright, it cannot turn the switch off: status says so, --off clears it.
    let mut monitor = Monitor::spawn(&gf, &["--verdict", "passed"]).expect("monitor");
    wait_switch(&gf, "on").expect("on");
    monitor.child.kill().expect("SIGKILL");
    monitor.child.wait().expect("reaped");
    assert_eq!(switch(&gf).expect("status"), "stale");
    let text = gf.run(&["status"]).expect("status");
    assert!(text.contains("geofence monitor --off"), "{text}");
    gf.run(&["monitor", "--off"]).expect("monitor --off");
    assert_eq!(switch(&gf).expect("status"), "off");
}

#[test]
fn the_monitor_follows_the_program_through_an_upgrade() {
    if !require_root("the_monitor_follows_the_program_through_an_upgrade") {
        return;
    }
    let net = Net::new().expect("namespaces");
    let gf = setup(&net).expect("setup");
    let monitor = Monitor::spawn(&gf, &["m", "--verdict", "dropped"]).expect("monitor");
    wait_switch(&gf, "on").expect("on");
    monitor
        .collect(&net, "verdict=dropped", Duration::ZERO)
        .expect("a drop before the upgrade");
    gf.run(&["upgrade"]).expect("upgrade");
    // The new maps start with the switch off; the monitor turns it on within a second or so.
    wait_switch(&gf, "on").expect("the monitor turns the new maps' switch on");
    while monitor.lines.try_recv().is_ok() {}
    let lines = monitor
        .collect(&net, "verdict=dropped", Duration::ZERO)
        .expect("a drop from the new program");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("meeting=m ") && l.ends_with(&format!("order={ORDER}"))),
        "{lines:#?}"
    );
    monitor.stop().expect("stopped by SIGTERM");
    assert_eq!(
        switch(&gf).expect("status"),
        "off",
        "the new maps' switch is off"
    );
}
