//! A real etcd of one test alone: loopback, free ports (never 2379/2380, which a system
//! etcd may hold), a temporary data directory; killed on drop.

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

pub struct Etcd {
    pub url: String,
    peer: String,
    dir: PathBuf,
    child: Option<Child>,
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding a free port");
    listener.local_addr().expect("address").port()
}

/// `etcd` on the PATH, or a printed reason to skip.
pub fn etcd_installed(test: &str) -> bool {
    let found = Command::new("etcd")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        eprintln!("skipping {test}: `etcd` is not installed (cargo xtask setup installs it)");
    }
    found
}

#[allow(dead_code, reason = "each test file uses a different part")]
impl Etcd {
    pub fn start(tag: &str) -> Etcd {
        let dir = std::env::temp_dir().join(format!("gf-etcd-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut etcd = Etcd {
            url: format!("http://127.0.0.1:{}", free_port()),
            peer: format!("http://127.0.0.1:{}", free_port()),
            dir,
            child: None,
        };
        etcd.restart();
        etcd
    }

    /// Starts it again on the same ports and data: what a relay sees after an outage.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "etcd is running");
        let child = Command::new("etcd")
            .args(["--name", "gf-test", "--data-dir"])
            .arg(&self.dir)
            .args(["--listen-client-urls", &self.url])
            .args(["--advertise-client-urls", &self.url])
            .args(["--listen-peer-urls", &self.peer])
            .args(["--initial-advertise-peer-urls", &self.peer])
            .args(["--initial-cluster", &format!("gf-test={}", self.peer)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting etcd");
        self.child = Some(child);
        let started = Instant::now();
        while !self.healthy() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "etcd did not start"
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    fn healthy(&self) -> bool {
        Command::new("etcdctl")
            .args(["--endpoints", &self.url, "endpoint", "health"])
            .env("ETCDCTL_API", "3")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
