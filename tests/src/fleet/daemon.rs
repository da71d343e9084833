//! `geofence daemon --fleet` on a [`Geofence`] driver's pin and state directories, as a
//! relay runs it. Its log (stderr) goes to a file in the driver's temp dir, appended across
//! restarts so that one log tells the relay's whole story.

use std::fs::{self, File};
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::cli::{Geofence, geofence_bin};

/// A relay's fleet daemon; SIGTERM (then SIGKILL) on Drop.
pub struct Daemon {
    child: Option<Child>,
    log: PathBuf,
    pin_dir: PathBuf,
    state_dir: PathBuf,
    relay: String,
    endpoints: String,
    extra: Vec<String>,
}

impl Daemon {
    /// Starts `geofence daemon --fleet --relay RELAY --etcd ENDPOINTS` on `gf`'s directories.
    pub fn start(gf: &Geofence, relay: &str, endpoints: &str) -> Result<Daemon> {
        Daemon::start_with(gf, relay, endpoints, &[])
    }

    /// [`Daemon::start`] with more daemon arguments.
    pub fn start_with(
        gf: &Geofence,
        relay: &str,
        endpoints: &str,
        extra: &[&str],
    ) -> Result<Daemon> {
        let mut daemon = Daemon {
            child: None,
            log: gf.temp_dir().join(format!("daemon-{relay}.log")),
            pin_dir: gf.pin_dir().to_owned(),
            state_dir: gf.temp_dir().join("state"),
            relay: relay.to_owned(),
            endpoints: endpoints.to_owned(),
            extra: extra.iter().map(|a| (*a).to_owned()).collect(),
        };
        daemon.restart()?;
        Ok(daemon)
    }

    /// Starts it again (after [`Daemon::kill`]), on the same directories and log.
    pub fn restart(&mut self) -> Result<()> {
        if self.child.is_some() {
            bail!("the daemon of {} is running", self.relay);
        }
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        let mut command = Command::new(geofence_bin()?);
        command
            .arg("--pin-dir")
            .arg(&self.pin_dir)
            .arg("--state-dir")
            .arg(&self.state_dir)
            .args(["daemon", "--listen", "127.0.0.1:0", "--fleet", "--relay"])
            .arg(&self.relay)
            .args(["--etcd", &self.endpoints])
            .args(&self.extra)
            .env_remove("JOURNAL_STREAM")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec. The
        // daemon dies with the thread that started it, so a killed test leaves none behind.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        self.child = Some(command.spawn().context("starting geofence daemon")?);
        Ok(())
    }

    /// Sends `signal` (SIGKILL, SIGSTOP, SIGCONT, ...).
    pub fn signal(&self, signal: libc::c_int) -> Result<()> {
        let Some(child) = &self.child else {
            bail!("the daemon of {} is not running", self.relay);
        };
        // SAFETY: kill(2) on our own child, not reaped yet.
        if unsafe { libc::kill(child.id() as libc::pid_t, signal) } != 0 {
            bail!("signalling the daemon: {}", std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// SIGKILL, as a crash: nothing of the daemon runs after it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for it to exit.
    pub fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        // SAFETY: kill(2) on our own child, not reaped yet.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if child
                .try_wait()
                .context("waiting for the daemon")?
                .is_some()
            {
                return Ok(());
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        bail!("the daemon of {} ignored SIGTERM for 10 s", self.relay)
    }

    /// Still running (not exited)?
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Everything it logged, across restarts.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until its log contains `text` (counting from byte `from` of the log).
    pub fn wait_log(&self, text: &str, from: usize, limit: Duration) -> Result<()> {
        let started = Instant::now();
        loop {
            let log = self.log();
            if log.get(from..).is_some_and(|l| l.contains(text)) {
                return Ok(());
            }
            if started.elapsed() > limit {
                bail!(
                    "relay {}: the daemon's log did not say {text:?} within {limit:?}:\n{log}",
                    self.relay
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.is_some() {
            // A stopped daemon must go on to act on SIGTERM.
            let _ = self.signal(libc::SIGCONT);
            if let Err(e) = self.stop() {
                eprintln!("warning: {e:#}");
            }
        }
    }
}
