//! What the daemon tests share: a running daemon and its scrapes, a network namespace.

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::TcpStream,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, mpsc},
    thread,
    time::{Duration, Instant},
};

use prometheus_parse::{Scrape, Value};

use crate::common::Dirs;

/// Generous: the machine is shared; nothing here asserts a timing.
const PATIENCE: Duration = Duration::from_secs(60);

/// A running daemon on a free loopback port; killed on drop if still running.
pub struct Daemon {
    child: Child,
    port: u16,
    log: Arc<Mutex<String>>,
}

impl Daemon {
    pub fn start(d: &Dirs) -> Daemon {
        Daemon::start_with(d, &[])
    }

    /// A daemon with more arguments, e.g. `--api PATH`.
    pub fn start_with(d: &Dirs, more: &[&str]) -> Daemon {
        let mut child = Command::new(env!("CARGO_BIN_EXE_geofence"))
            .arg("--pin-dir")
            .arg(&d.pin)
            .arg("--state-dir")
            .arg(&d.state)
            .args(["daemon", "--listen", "127.0.0.1:0", "--poll", "200ms"])
            .args(more)
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

    pub fn get(&self, path: &str) -> (String, String) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connecting");
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        .expect("request");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("response");
        let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
        (head.to_string(), body.to_string())
    }

    pub fn scrape(&self) -> Scrape {
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
    pub fn wait_for(&self, metric: &str, labels: &[(&str, &str)], want: f64) -> Scrape {
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

    pub fn log(&self) -> String {
        self.log.lock().expect("log").clone()
    }

    /// Waits until the daemon's log contains `text`.
    pub fn wait_for_log(&self, text: &str) {
        let started = Instant::now();
        while !self.log().contains(text) {
            assert!(
                started.elapsed() < PATIENCE,
                "the log never said {text:?}:\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("a pid");
        // SAFETY: kill(2) on our own child, which has not been reaped yet.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "kill");
    }

    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().expect("waiting")
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        self.signal(libc::SIGTERM);
        let started = Instant::now();
        loop {
            if let Some(status) = self.exited() {
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
pub fn value(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
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

/// A network namespace of one test, deleted on drop.
pub struct Netns(String);

impl Netns {
    pub fn new(name: &str) -> Netns {
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
