//! `geofence daemon`: its `/metrics` scraped over loopback and parsed as Prometheus text,
//! a geo file rewritten on disk reloaded (and a broken one refused), an expired rule
//! removed and audited, and SIGTERM ending it with exit 0 and enforcement in place.

mod common;

use std::{
    fs,
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::{Ipv4Addr, TcpStream},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, mpsc},
    thread,
    time::{Duration, Instant},
};

use aya::programs::{TestRun as _, TestRunOptions, Xdp};
use common::{Dirs, root_with_bpffs};
use geofence::kernel::{self, Kernel};
use prometheus_parse::{Scrape, Value};

/// Generous: the machine is shared; nothing here asserts a timing.
const PATIENCE: Duration = Duration::from_secs(60);

const GEO_CSV: &str = "192.0.2.0,192.0.2.255,XA\n198.51.100.0,198.51.100.255,XB\n";

/// A running daemon on a free loopback port; killed on drop if still running.
struct Daemon {
    child: Child,
    port: u16,
    log: Arc<Mutex<String>>,
}

impl Daemon {
    fn start(d: &Dirs) -> Daemon {
        let mut child = Command::new(env!("CARGO_BIN_EXE_geofence"))
            .arg("--pin-dir")
            .arg(&d.pin)
            .arg("--state-dir")
            .arg(&d.state)
            .args(["daemon", "--listen", "127.0.0.1:0", "--poll", "200ms"])
            .env_remove("JOURNAL_STREAM")
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting geofence daemon");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (port_tx, port_rx) = mpsc::channel();
        let sink = log.clone();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("http://127.0.0.1:").nth(1) {
                    let port: String = rest.chars().take_while(char::is_ascii_digit).collect();
                    let _ = port_tx.send(port.parse::<u16>().ok());
                }
                sink.lock().expect("log").push_str(&format!("{line}\n"));
            }
        });
        let port = port_rx.recv_timeout(PATIENCE).ok().flatten();
        let Some(port) = port else {
            let _ = child.kill();
            panic!(
                "the daemon did not say where it listens:\n{}",
                log.lock().expect("log")
            );
        };
        Daemon { child, port, log }
    }

    fn get(&self, path: &str) -> (String, String) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connecting");
        write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("request");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("response");
        let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
        (head.to_string(), body.to_string())
    }

    fn scrape(&self) -> Scrape {
        let (head, body) = self.get("/metrics");
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(head.contains("text/plain; version=0.0.4"), "{head}");
        let scrape =
            Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).expect("Prometheus text format");
        // Every sample line was understood, none skipped.
        let lines = body
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .count();
        assert_eq!(scrape.samples.len(), lines, "{body}");
        scrape
    }

    /// Scrapes until `value` of the first sample named `metric` with `labels` is `want`.
    fn wait_for(&self, metric: &str, labels: &[(&str, &str)], want: f64) -> Scrape {
        let started = Instant::now();
        loop {
            let scrape = self.scrape();
            let got = value(&scrape, metric, labels);
            if got == Some(want) {
                return scrape;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "{metric}{labels:?} is {got:?}, not {want}, after {PATIENCE:?}; log:\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self) -> String {
        self.log.lock().expect("log").clone()
    }

    fn terminate(mut self) -> std::process::ExitStatus {
        let pid = libc::pid_t::try_from(self.child.id()).expect("a pid");
        // SAFETY: kill(2) on our own child, which has not been reaped yet.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0, "SIGTERM");
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting") {
                return status;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "no exit after SIGTERM:\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of the sample named `metric` whose labels include `labels`.
fn value(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric)
        .find(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
            _ => f64::NAN,
        })
}

/// A setup every test shares: the geo fixture loaded, meetings A (udp 40000) and B.
/// Returns the IPv4 prefix count `geo load` reported.
fn set_up(d: &Dirs) -> (std::path::PathBuf, f64) {
    fs::create_dir_all(&d.state).expect("state dir");
    let geo = d.state.with_extension("csv");
    fs::write(&geo, GEO_CSV).expect("geo csv");
    let out = d.ok(&["geo", "load", geo.to_str().expect("utf-8 path")]);
    let v4: f64 = out
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no prefix count in {out:?}"));
    d.ok(&["meeting", "add", "A", "--endpoint", "udp:*:40000"]);
    d.ok(&["meeting", "add", "B", "--endpoint", "udp:*:41000"]);
    (geo, v4)
}

/// An Ethernet + IPv4 + UDP frame with `payload` bytes.
fn udp_frame(src: Ipv4Addr, dst: Ipv4Addr, dport: u16, payload: usize) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00];
    let total = u16::try_from(20 + 8 + payload).expect("small");
    let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0];
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    let sum = ip
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum::<u32>();
    let sum = !(((sum & 0xffff) + (sum >> 16)) as u16);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&50000u16.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&(total - 20).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend(std::iter::repeat_n(0xab, payload));
    f
}

/// Runs `frame` through the pinned maps' program with BPF_PROG_TEST_RUN; the XDP action.
fn run_packet(d: &Dirs, frame: &[u8]) -> u32 {
    let mut kernel = Kernel::open(&d.pin).expect("opening the maps");
    let prog: &mut Xdp = kernel
        .ebpf
        .program_mut(kernel::PROGRAM)
        .expect("the geofence program")
        .try_into()
        .expect("an XDP program");
    prog.load().expect("loading the XDP program");
    let run = prog.test_run(TestRunOptions {
        data_in: Some(frame),
        ..TestRunOptions::new()
    });
    run.expect("BPF_PROG_TEST_RUN").return_value
}

#[test]
fn metrics_show_meetings_counters_and_the_table() {
    if !root_with_bpffs("metrics_show_meetings_counters_and_the_table") {
        return;
    }
    let d = Dirs::new("dmetrics");
    let (_, v4) = set_up(&d);
    d.ok(&[
        "block",
        "A",
        "--territory",
        "XA",
        "--order",
        "ORD-7",
        "--for",
        "1h",
    ]);
    let daemon = Daemon::start(&d);

    let scrape = daemon.scrape();
    assert_eq!(
        value(&scrape, "geofence_up", &[]),
        Some(1.0),
        "{}",
        daemon.log()
    );
    assert_eq!(
        value(
            &scrape,
            "geofence_geo_table_prefixes",
            &[("family", "ipv4")]
        ),
        Some(v4)
    );
    assert_eq!(
        value(
            &scrape,
            "geofence_geo_table_prefixes",
            &[("family", "ipv6")]
        ),
        Some(0.0)
    );
    assert_eq!(
        value(&scrape, "geofence_meeting_rules", &[("meeting", "A")]),
        Some(1.0)
    );
    assert_eq!(
        value(&scrape, "geofence_meeting_rules", &[("meeting", "B")]),
        Some(0.0)
    );
    let expiry = value(
        &scrape,
        "geofence_rule_expiry_timestamp_seconds",
        &[("meeting", "A"), ("order", "ORD-7")],
    )
    .expect("the rule's expiry");
    let in_an_hour = jiff::Timestamp::now().as_second() as f64 + 3600.0;
    assert!(
        (expiry - in_an_hour).abs() < 120.0,
        "expiry {expiry}, expected about {in_an_hour}"
    );
    assert!(
        scrape.docs.contains_key("geofence_packets_total"),
        "HELP of the packet counters"
    );

    // One packet from XA to meeting A: dropped, and the counter says so with its bytes.
    let frame = udp_frame(
        Ipv4Addr::new(192, 0, 2, 7),
        Ipv4Addr::new(10, 0, 0, 1),
        40000,
        100,
    );
    assert_eq!(run_packet(&d, &frame), 1, "XDP_DROP");
    let dropped = [
        ("meeting", "A"),
        ("territory", "XA"),
        ("verdict", "dropped"),
    ];
    let scrape = daemon.wait_for("geofence_packets_total", &dropped, 1.0);
    assert_eq!(
        value(&scrape, "geofence_bytes_total", &dropped),
        Some(frame.len() as f64)
    );
    let passed = [("meeting", "A"), ("territory", "XA"), ("verdict", "passed")];
    assert_eq!(value(&scrape, "geofence_packets_total", &passed), Some(0.0));
    // No meeting on that port: counted as unclassified.
    let stray = udp_frame(
        Ipv4Addr::new(192, 0, 2, 7),
        Ipv4Addr::new(10, 0, 0, 1),
        9,
        10,
    );
    assert_eq!(run_packet(&d, &stray), 2, "XDP_PASS");
    daemon.wait_for(
        "geofence_unclassified_packets_total",
        &[("reason", "no_session")],
        1.0,
    );

    // A CLI change shows at the next scrape.
    d.ok(&[
        "block",
        "B",
        "--territory",
        "XB",
        "--order",
        "ORD-8",
        "--dry-run",
    ]);
    daemon.wait_for("geofence_meeting_rules", &[("meeting", "B")], 1.0);

    let (head, _) = daemon.get("/nothing-here");
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    assert!(daemon.terminate().success());
}

#[test]
fn a_rewritten_geo_file_is_reloaded_and_a_broken_one_refused() {
    if !root_with_bpffs("a_rewritten_geo_file_is_reloaded_and_a_broken_one_refused") {
        return;
    }
    let d = Dirs::new("dreload");
    let (geo, v4) = set_up(&d);
    let daemon = Daemon::start(&d);
    daemon.wait_for("geofence_geo_table_prefixes", &[("family", "ipv4")], v4);
    assert!(d.ok(&["geo", "lookup", "203.0.113.9"]).contains("unknown"));

    // Replaced by rename, as a downloader would: one more range, for XC.
    let next = d.state.join("next.csv");
    fs::write(&next, format!("{GEO_CSV}203.0.113.0,203.0.113.255,XC\n")).expect("csv");
    fs::rename(&next, &geo).expect("rename");
    daemon.wait_for(
        "geofence_geo_table_prefixes",
        &[("family", "ipv4")],
        v4 + 1.0,
    );
    daemon.wait_for("geofence_geo_reloads_total", &[("result", "ok")], 1.0);
    assert!(d.ok(&["geo", "lookup", "203.0.113.9"]).contains("XC"));
    let audit = d.read_state("audit.jsonl");
    assert!(
        audit
            .lines()
            .last()
            .is_some_and(|l| l.contains("\"geo load\"") && l.contains("daemon")),
        "{audit}"
    );

    // Rewritten in place with a bad row: refused, logged, the table stays.
    fs::write(&geo, "203.0.113.0,203.0.113.255,XD\n10.0.0.9,10.0.0.1,XB\n").expect("csv");
    daemon.wait_for("geofence_geo_reloads_total", &[("result", "failed")], 1.0);
    assert!(d.ok(&["geo", "lookup", "203.0.113.9"]).contains("XC"));
    assert!(
        daemon.log().contains(":2:"),
        "the log names the bad line:\n{}",
        daemon.log()
    );

    // Fixed: the next change is picked up.
    fs::write(&geo, "203.0.113.0,203.0.113.255,XD\n").expect("csv");
    daemon.wait_for("geofence_geo_reloads_total", &[("result", "ok")], 2.0);
    assert!(d.ok(&["geo", "lookup", "203.0.113.9"]).contains("XD"));
    daemon.wait_for("geofence_geo_table_prefixes", &[("family", "ipv4")], 1.0);
}

#[test]
fn an_expired_rule_is_removed_and_sigterm_leaves_enforcement() {
    if !root_with_bpffs("an_expired_rule_is_removed_and_sigterm_leaves_enforcement") {
        return;
    }
    let d = Dirs::new("dexpire");
    set_up(&d);
    // Something attached, so there is a link pin to outlive the daemon.
    let ns = format!("gfd{}", std::process::id());
    let _ns = Netns::new(&ns);
    d.ok(&["attach", "lo", "--netns", &ns, "--mode", "skb"]);
    d.ok(&[
        "block",
        "A",
        "--territory",
        "XA",
        "--order",
        "ORD-EXP",
        "--for",
        "2s",
    ]);
    d.ok(&["block", "A", "--territory", "XB", "--order", "ORD-KEEP"]);
    let daemon = Daemon::start(&d);

    daemon.wait_for("geofence_expired_rules_removed_total", &[], 1.0);
    let state = d.read_state("state.json");
    assert!(
        !state.contains("ORD-EXP") && state.contains("ORD-KEEP"),
        "{state}"
    );
    let audit = d.read_state("audit.jsonl");
    let expire = audit
        .lines()
        .find(|l| l.contains("\"action\":\"expire\""))
        .expect("an expire entry");
    assert!(
        expire.contains("ORD-EXP") && !expire.contains("ORD-KEEP"),
        "{expire}"
    );

    let status = daemon.terminate();
    assert_eq!(status.code(), Some(0), "exit status {status}");
    assert!(
        kernel::link_pinned(&d.pin, "lo", Some(&ns)),
        "the link pin is gone"
    );
    assert!(d.pin.join("POLICIES").exists(), "the maps' pins are gone");
    assert!(d.ok(&["geo", "lookup", "192.0.2.1"]).contains("XA"));
    d.ok(&["detach", "lo", "--netns", &ns]);
}

/// A network namespace of one test, deleted on drop.
struct Netns(String);

impl Netns {
    fn new(name: &str) -> Netns {
        let _ = Command::new("ip").args(["netns", "del", name]).output();
        let out = Command::new("ip")
            .args(["netns", "add", name])
            .output()
            .expect("ip netns add");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Netns(name.to_string())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}
