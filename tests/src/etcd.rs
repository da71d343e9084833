//! etcd for the fleet tests, the fleet demo and the fleet bench: one member, or a cluster
//! of several, on loopback ports the kernel picks (never 2379/2380, which a system etcd
//! may hold), each member with a data directory of its own. Every member is killed and
//! every directory removed on Drop, also when a test panics; a member also dies with the
//! thread that started it (`PR_SET_PDEATHSIG`), so a test process killed before its Drop
//! guards run leaves no etcd behind.

use std::fs::{self, File};
use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::sys::{DIR_PREFIX, reap_stale, remove_tree, unique_tag};

/// How long a member may take to answer after (re)starting.
const START_LIMIT: Duration = Duration::from_secs(30);

/// `etcd` and `etcdctl` on the PATH, or a printed reason to skip `test`.
pub fn etcd_installed(test: &str) -> bool {
    let works = |tool: &str| {
        Command::new(tool)
            .arg("version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let found = Command::new("etcd")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
        && works("etcdctl");
    if !found {
        eprintln!(
            "skipping {test}: `etcd` or `etcdctl` is not installed \
             (cargo xtask setup installs them)"
        );
    }
    found
}

struct Member {
    name: String,
    client: String,
    peer: String,
    child: Option<Child>,
}

/// A running etcd: one member or a cluster. Members are numbered from 0.
pub struct Etcd {
    members: Vec<Member>,
    dir: PathBuf,
    token: String,
}

/// A loopback port nothing listens on now, other than etcd's well-known ones.
fn free_port() -> Result<u16> {
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").context("binding a free port")?;
        let port = listener.local_addr().context("reading its address")?.port();
        if port != 2379 && port != 2380 {
            return Ok(port);
        }
    }
}

impl Etcd {
    /// One member.
    pub fn single() -> Result<Etcd> {
        Etcd::cluster(1)
    }

    /// `size` members forming one cluster; returns once every member answers.
    pub fn cluster(size: usize) -> Result<Etcd> {
        reap_stale();
        let tag = unique_tag().replace('x', "-");
        let dir = std::env::temp_dir().join(format!("{DIR_PREFIX}{tag}-etcd"));
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut etcd = Etcd {
            members: Vec::new(),
            dir,
            token: format!("gf-{tag}"),
        };
        for i in 0..size {
            etcd.members.push(Member {
                name: format!("m{i}"),
                client: format!("http://127.0.0.1:{}", free_port()?),
                peer: format!("http://127.0.0.1:{}", free_port()?),
                child: None,
            });
        }
        // A cluster's members wait for each other: start all, then wait for each.
        for i in 0..size {
            etcd.spawn(i)?;
        }
        for i in 0..size {
            etcd.wait_healthy(i)?;
        }
        Ok(etcd)
    }

    /// The client URLs, comma-separated: what `--etcd` takes.
    pub fn endpoints(&self) -> String {
        let urls: Vec<&str> = self.members.iter().map(|m| m.client.as_str()).collect();
        urls.join(",")
    }

    /// Member `i`'s client URL.
    pub fn url(&self, i: usize) -> &str {
        &self.members[i].client
    }

    fn spawn(&mut self, i: usize) -> Result<()> {
        let initial: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer))
            .collect();
        let data = self.dir.join(&self.members[i].name);
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path(i))
            .context("opening etcd's log")?;
        let m = &self.members[i];
        let mut command = Command::new("etcd");
        command
            .args(["--name", &m.name, "--data-dir"])
            .arg(&data)
            .args(["--listen-client-urls", &m.client])
            .args(["--advertise-client-urls", &m.client])
            .args(["--listen-peer-urls", &m.peer])
            .args(["--initial-advertise-peer-urls", &m.peer])
            .args(["--initial-cluster", &initial.join(",")])
            .args(["--initial-cluster-token", &self.token])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().context("starting etcd")?;
        self.members[i].child = Some(child);
        Ok(())
    }

    fn log_path(&self, i: usize) -> PathBuf {
        self.dir.join(format!("{}.log", self.members[i].name))
    }

    /// The last lines of member `i`'s log, for a failure message.
    pub fn log_tail(&self, i: usize) -> String {
        let text = fs::read_to_string(self.log_path(i)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    fn wait_healthy(&mut self, i: usize) -> Result<()> {
        let started = Instant::now();
        loop {
            if let Some(child) = self.members[i].child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                bail!("etcd member {i} exited ({status}):\n{}", self.log_tail(i));
            }
            if self.healthy(i) {
                return Ok(());
            }
            if started.elapsed() > START_LIMIT {
                bail!(
                    "etcd member {i} did not answer within {START_LIMIT:?}:\n{}",
                    self.log_tail(i)
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Member `i` answers a linearizable read (which needs a quorum).
    pub fn healthy(&self, i: usize) -> bool {
        self.etcdctl_at(self.url(i), &["endpoint", "health"])
            .is_ok()
    }

    /// Kills member `i` (SIGKILL) and reaps it; its data stays for [`Etcd::restart`].
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts member `i` again on its ports and data, and waits until it answers.
    pub fn restart(&mut self, i: usize) -> Result<()> {
        if self.members[i].child.is_some() {
            bail!("etcd member {i} is running");
        }
        self.spawn(i)?;
        self.wait_healthy(i)
    }

    /// Stops (SIGSTOP) or continues (SIGCONT) member `i`: a stopped member still accepts
    /// connections (the kernel does) but answers nothing.
    pub fn pause(&self, i: usize, stopped: bool) -> Result<()> {
        let Some(child) = &self.members[i].child else {
            bail!("etcd member {i} is not running");
        };
        let signal = if stopped {
            libc::SIGSTOP
        } else {
            libc::SIGCONT
        };
        // SAFETY: kill(2) on our own child, not reaped yet.
        if unsafe { libc::kill(child.id() as libc::pid_t, signal) } != 0 {
            bail!("signalling etcd: {}", std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// The store's current revision.
    pub fn revision(&self) -> Result<i64> {
        let out = self.etcdctl(&["get", "/", "-w", "json"])?;
        let json: serde_json::Value =
            serde_json::from_str(&out).with_context(|| format!("etcdctl get printed {out}"))?;
        json["header"]["revision"]
            .as_i64()
            .with_context(|| format!("no revision in {out}"))
    }

    /// `etcdctl compact REV`: the history before `rev` is gone, as after a routine
    /// compaction that a slow watcher did not keep up with.
    pub fn compact(&self, rev: i64) -> Result<()> {
        self.etcdctl(&["compact", &rev.to_string()]).map(drop)
    }

    /// `etcdctl ARGS` against every member; stdout, or an error with stderr.
    pub fn etcdctl(&self, args: &[&str]) -> Result<String> {
        self.etcdctl_at(&self.endpoints(), args)
    }

    fn etcdctl_at(&self, endpoints: &str, args: &[&str]) -> Result<String> {
        let out = Command::new("etcdctl")
            .args(["--endpoints", endpoints, "--command-timeout", "3s"])
            .args(args)
            .env("ETCDCTL_API", "3")
            .output()
            .context("running etcdctl")?;
        if !out.status.success() {
            bail!(
                "etcdctl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Where the members' data and logs are.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        // SIGKILL ends a stopped (SIGSTOP) member too.
        for i in 0..self.members.len() {
            self.kill(i);
        }
        if let Err(e) = remove_tree(&self.dir) {
            eprintln!("warning: could not remove {}: {e}", self.dir.display());
        }
    }
}
