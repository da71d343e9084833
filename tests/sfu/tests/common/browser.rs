//! Headless Chromium as a WebRTC participant: the page tests/webrtc/chromium.html, which the
//! SFU serves, in a slot's network namespace.

use std::{
    collections::VecDeque,
    io::{BufRead as _, BufReader},
    net::SocketAddr,
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    thread::{self, JoinHandle},
};

use serde_json::Value;

use super::relay::Topology;

/// Headless Chromium in a slot's namespace, on the SFU's page for its meeting. Its page's
/// events (`GFEVENT {json}` console lines) are collected from its stderr. The whole process
/// group is killed on drop.
pub struct Browser {
    name: String,
    child: Child,
    events: Arc<Mutex<Vec<Value>>>,
    /// The last lines of Chromium's own logging, for a failure report.
    noise: Arc<Mutex<VecDeque<String>>>,
    reader: Option<JoinHandle<()>>,
}

/// Lines of Chromium's own logging kept for a failure report.
const NOISE_LINES: usize = 30;

impl Browser {
    /// `signaling` is the SFU's HTTP address, as the slot's namespace reaches it.
    pub fn launch(
        chromium: &Path,
        topology: &Topology,
        signaling: SocketAddr,
        profiles: &Path,
        slot: &str,
        meeting: &str,
        name: &str,
    ) -> Browser {
        let origin = format!("http://{signaling}");
        let url = format!("{origin}/chromium.html?meeting={meeting}&participant={name}");
        let mut child = topology
            .exec(slot, chromium)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--use-fake-device-for-media-stream",
                "--use-fake-ui-for-media-stream",
                "--enable-logging=stderr",
                "--v=0",
                "--no-first-run",
                "--mute-audio",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-extensions",
                "--disable-sync",
            ])
            // getUserMedia wants a secure context, and a plain-HTTP origin other than
            // localhost is not one.
            .arg(format!(
                "--unsafely-treat-insecure-origin-as-secure={origin}"
            ))
            .arg(format!("--user-data-dir={}", profiles.join(name).display()))
            .arg(&url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // Its own process group: Chromium's helper processes go with it on drop.
            .process_group(0)
            .spawn()
            .expect("starting chromium");
        let stderr = child.stderr.take().expect("piped stderr");
        let events = Arc::new(Mutex::new(Vec::new()));
        let noise = Arc::new(Mutex::new(VecDeque::new()));
        let (event_sink, noise_sink) = (events.clone(), noise.clone());
        let reader = thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                match page_event(&line) {
                    Some(event) => event_sink.lock().expect("events lock").push(event),
                    None => {
                        let mut noise = noise_sink.lock().expect("noise lock");
                        noise.push_back(line);
                        if noise.len() > NOISE_LINES {
                            noise.pop_front();
                        }
                    }
                }
            }
        });
        Browser {
            name: name.to_owned(),
            child,
            events,
            noise,
            reader: Some(reader),
        }
    }

    pub fn events(&self) -> Vec<Value> {
        self.events.lock().expect("events lock").clone()
    }

    /// The page's last `stats` event (what its RTCPeerConnection sent and received).
    pub fn last_stats(&self) -> Option<Value> {
        self.events()
            .into_iter()
            .rev()
            .find(|e| e["event"] == "stats")
    }

    /// Data-channel messages received from `sender`.
    pub fn received_from(&self, sender: &str) -> usize {
        self.events()
            .iter()
            .filter(|e| e["event"] == "received" && e["from"] == sender)
            .count()
    }

    /// A page error ends the test at once, with what the page said.
    pub fn check(&self) {
        if let Some(error) = self.events().iter().find(|e| e["event"] == "error") {
            panic!("{}'s page failed: {error}", self.name);
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        if thread::panicking() {
            let events: Vec<String> = self.events().iter().map(Value::to_string).collect();
            let noise: Vec<String> = self.noise.lock().expect("noise lock").drain(..).collect();
            eprintln!(
                "--- browser {} ---\npage events:\n{}\nlast lines of chromium's log:\n{}\n---",
                self.name,
                events.join("\n"),
                noise.join("\n")
            );
        }
    }
}

/// The JSON of a console line `... "GFEVENT {json}", source: URL (N)`, as Chromium logs it
/// with --enable-logging=stderr.
pub fn page_event(line: &str) -> Option<Value> {
    let (_, rest) = line.split_once("\"GFEVENT ")?;
    let (json, _) = rest.rsplit_once("\", source: ")?;
    serde_json::from_str(json).ok()
}

/// `chromium` on the PATH, if it starts; `Err` says why not.
pub fn find_chromium() -> Result<PathBuf, String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let chromium = std::env::split_paths(&path)
        .map(|dir| dir.join("chromium"))
        .find(|candidate| candidate.is_file())
        .ok_or("no `chromium` on the PATH (`cargo xtask setup` installs it)")?;
    let version = Command::new(&chromium)
        .arg("--version")
        .output()
        .map_err(|e| format!("{} does not run: {e}", chromium.display()))?;
    if !version.status.success() {
        return Err(format!(
            "{} --version failed ({}): {}",
            chromium.display(),
            version.status,
            String::from_utf8_lossy(&version.stderr)
        ));
    }
    Ok(chromium)
}
