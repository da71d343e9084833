//! Network namespace guard and running code inside a namespace.

use std::fs::File;

use anyhow::{Context, Result, anyhow};
use nix::sched::{CloneFlags, setns};

use crate::sys::run;

/// A named network namespace (`ip netns add`), deleted on Drop (also on panic).
#[derive(Debug)]
pub struct NetNs {
    name: String,
}

impl NetNs {
    /// Creates the namespace and brings its loopback up.
    pub fn new(name: &str) -> Result<Self> {
        run("ip", &["netns", "add", name]).with_context(|| format!("creating netns {name}"))?;
        let ns = NetNs {
            name: name.to_owned(),
        };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n <name> ARGS...`.
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        let mut full = vec!["-n", &self.name];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    /// Runs `f` on a dedicated thread that has entered this namespace. Sockets `f` creates
    /// belong to the namespace for their whole life, whichever thread uses them later.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T> {
        in_netns(&self.name, f)
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        if let Err(e) = run("ip", &["netns", "del", &self.name]) {
            eprintln!("warning: could not delete netns {}: {e:#}", self.name);
        }
    }
}

/// Runs `f` on a scoped thread inside the named namespace (`/run/netns/NAME`).
pub fn in_netns<T: Send>(name: &str, f: impl FnOnce() -> T + Send) -> Result<T> {
    let path = format!("/run/netns/{name}");
    std::thread::scope(|s| {
        s.spawn(|| -> Result<T> {
            let fd = File::open(&path).with_context(|| format!("opening {path}"))?;
            setns(&fd, CloneFlags::CLONE_NEWNET).with_context(|| format!("setns into {name}"))?;
            Ok(f())
        })
        .join()
        .map_err(|_| anyhow!("thread inside netns {name} panicked"))?
    })
}

/// Creates a veth pair: `a_if` in namespace `a`, its peer `b_if` in namespace `b`; both up.
pub fn veth(a: &NetNs, a_if: &str, b: &NetNs, b_if: &str) -> Result<()> {
    a.ip(&[
        "link",
        "add",
        a_if,
        "type",
        "veth",
        "peer",
        "name",
        b_if,
        "netns",
        b.name(),
    ])
    .with_context(|| format!("veth {}:{a_if} <-> {}:{b_if}", a.name(), b.name()))?;
    a.ip(&["link", "set", a_if, "up"])?;
    b.ip(&["link", "set", b_if, "up"])?;
    Ok(())
}

/// Names of all namespaces `ip netns list` shows.
pub fn list() -> Result<Vec<String>> {
    let out = run("ip", &["netns", "list"])?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect())
}
