//! geofence for the SFU's tests: its CLI on pins and a state directory of the test's own, and
//! its daemon serving the binding API; detached, removed and stopped on drop.

use std::{
    fs::File,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use serde_json::Value;

use super::{
    http_unix,
    relay::{remove_tree, wait_until},
};

/// Now, in Unix seconds: the clock of the aiortc clients' `wall` fields.
pub fn wall_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs_f64()
}

/// The CLI on a pin directory (`<pin_prefix><pid>` under /sys/fs/bpf) and a state directory of
/// the test's own; detached and its pins removed on drop.
pub struct Geofence {
    bin: PathBuf,
    pin_dir: PathBuf,
    state_dir: PathBuf,
    attached: Option<(String, String)>,
}

impl Geofence {
    pub fn new(bin: &Path, pin_prefix: &str, state_dir: PathBuf) -> Geofence {
        let pin_dir = Path::new("/sys/fs/bpf").join(format!("{pin_prefix}{}", std::process::id()));
        remove_tree(&pin_dir);
        Geofence {
            bin: bin.to_owned(),
            pin_dir,
            state_dir,
            attached: None,
        }
    }

    pub fn command(&self) -> Command {
        let mut command = Command::new(&self.bin);
        command
            .arg("--pin-dir")
            .arg(&self.pin_dir)
            .arg("--state-dir")
            .arg(&self.state_dir);
        command
    }

    pub fn output(&self, args: &[&str]) -> Output {
        self.command()
            .args(args)
            .output()
            .expect("running geofence")
    }

    /// Runs `geofence ARGS`, which must succeed; its stdout and the wall-clock time it had
    /// exited at.
    pub fn run_timed(&self, args: &[&str]) -> (String, f64) {
        let output = self.output(args);
        let exited = wall_now();
        assert!(
            output.status.success(),
            "geofence {} ({}): {}{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (
            String::from_utf8_lossy(&output.stdout).trim().to_owned(),
            exited,
        )
    }

    pub fn run(&self, args: &[&str]) -> String {
        self.run_timed(args).0
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let out = self.run(args);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("geofence {args:?}: {e}: {out}"))
    }

    pub fn attach(&mut self, interface: &str, netns: &str) -> String {
        let out = self.run(&["attach", interface, "--netns", netns]);
        self.attached = Some((interface.to_owned(), netns.to_owned()));
        out
    }

    pub fn status(&self) -> Value {
        self.json(&["status", "--json"])
    }

    pub fn mux_event(&self, event: &str) -> u64 {
        let status = self.status();
        status["mux"]["events"][event]
            .as_u64()
            .unwrap_or_else(|| panic!("no mux event {event} in {}", status["mux"]))
    }

    /// Packets of `meeting` from `territory` with `verdict` (`passed`, `dropped`), from
    /// `geofence stats --json`.
    pub fn packets(&self, meeting: &str, territory: &str, verdict: &str) -> u64 {
        let stats = self.json(&["stats", meeting, "--json"]);
        stats["meetings"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| m["meeting"] == meeting)
            .flat_map(|m| m["territories"].as_array().cloned().unwrap_or_default())
            .filter(|t| t["territory"] == territory)
            .map(|t| t[verdict]["packets"].as_u64().unwrap_or(0))
            .sum()
    }

    /// What the attached program does with a packet of the flow `src` → `dst` (a shared port), as
    /// `explain` reports the kernel's answer: `(session, verdict)`, session `None` when the
    /// program binds the flow to no meeting.
    ///
    /// The kernel's answer, not explain's own model: the model reads only the state file, so
    /// for a flow learned from STUN it says "unbound", calls that a disagreement and exits 1
    /// (a geofence bug; the test does not depend on it).
    pub fn kernel_verdict(&self, src: &str, dst: &str) -> (Option<u64>, String) {
        let (session, verdict, _) = self.explain(src, dst);
        (session, verdict)
    }

    /// [`Geofence::kernel_verdict`], and whether `explain` agreed with itself (exit 0).
    pub fn explain(&self, src: &str, dst: &str) -> (Option<u64>, String, bool) {
        let output = self.output(&[
            "explain", "--proto", "udp", "--src", src, "--dst", dst, "--json",
        ]);
        let explained: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "explain {src}: {e}: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )
        });
        let decision = &explained["kernel"][0]["decision"];
        assert!(
            decision.is_object(),
            "explain {src}: no kernel answer: {explained}"
        );
        (
            decision["session"].as_u64(),
            decision["verdict"].as_str().unwrap_or("").to_owned(),
            output.status.success(),
        )
    }
}

impl Drop for Geofence {
    fn drop(&mut self) {
        if let Some((interface, netns)) = self.attached.take() {
            let output = self.output(&["detach", &interface, "--netns", &netns]);
            if !output.status.success() {
                eprintln!(
                    "warning: cleanup: geofence detach: {}",
                    String::from_utf8_lossy(&output.stderr)
                );
            }
        }
        remove_tree(&self.pin_dir);
    }
}

/// `geofence daemon` serving the binding API; SIGTERM on drop.
pub struct Daemon {
    child: Child,
    log: PathBuf,
    pub socket: PathBuf,
}

/// A meeting's bindings as the API counts them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bindings {
    pub ufrags: u64,
    pub learned: u64,
}

impl Daemon {
    pub fn start(geofence: &Geofence, socket: PathBuf, log: PathBuf) -> Daemon {
        let log_file = File::create(&log).expect("the daemon's log");
        let child = geofence
            .command()
            .args(["daemon", "--listen", "127.0.0.1:0", "--api"])
            .arg(&socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("starting geofence daemon");
        let mut daemon = Daemon { child, log, socket };
        wait_until("the binding API answers", Duration::from_secs(15), || {
            if let Ok(Some(status)) = daemon.child.try_wait() {
                panic!("the daemon exited ({status}): {}", daemon.log_text());
            }
            if std::os::unix::net::UnixStream::connect(&daemon.socket).is_err() {
                return Err("no socket yet".into());
            }
            match daemon.api("GET", "/v1/health", "") {
                (200, _) => Ok(()),
                (status, body) => Err(format!("{status} {body}")),
            }
        });
        daemon
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn api(&self, method: &str, path: &str, body: &str) -> (u16, Value) {
        http_unix(&self.socket, method, path, body)
    }

    pub fn bindings(&self, meeting: &str) -> Bindings {
        let (status, body) = self.api("GET", &format!("/v1/meetings/{meeting}/bindings"), "");
        assert_eq!(status, 200, "bindings of {meeting}: {body}");
        assert_eq!(body["meeting"], meeting, "{body}");
        Bindings {
            ufrags: body["ufrags"].as_u64().expect("ufrags"),
            learned: body["flows"]["learned"].as_u64().expect("learned flows"),
        }
    }

    /// Waits until `meeting` has exactly `ufrags` ufrags and `learned` learned flows.
    pub fn expect_bindings(&self, meeting: &str, ufrags: u64, learned: u64) {
        let want = Bindings { ufrags, learned };
        wait_until(
            &format!("meeting {meeting} has {want:?}"),
            Duration::from_secs(10),
            || {
                let have = self.bindings(meeting);
                if have == want {
                    Ok(())
                } else {
                    Err(format!("{have:?}"))
                }
            },
        );
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!(
                "--- geofence daemon log ---\n{}--- end ---",
                self.log_text()
            );
        }
    }
}
