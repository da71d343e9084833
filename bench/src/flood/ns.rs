//! Network namespaces and a veth pair made for the flood, removed on drop (also on panic),
//! and a way to run code or commands inside them.

use std::{
    fs::File,
    os::fd::AsFd as _,
    path::Path,
    process::{Command, Stdio},
};

use anyhow::{Context as _, anyhow, bail};
use nix::sched::{CloneFlags, setns};

/// Runs a command, failing with its stderr when it fails; returns its stdout.
pub fn run(program: &str, args: &[&str]) -> anyhow::Result<String> {
    run_with_input(program, args, None)
}

/// [`run`] with `input` on stdin.
pub fn run_with_input(
    program: &str,
    args: &[&str],
    input: Option<&[u8]>,
) -> anyhow::Result<String> {
    use std::io::Write as _;
    let mut child = Command::new(program)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {program}"))?;
    if let Some(input) = input {
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin
            .write_all(input)
            .with_context(|| format!("writing to {program}"))?;
    }
    let out = child
        .wait_with_output()
        .with_context(|| format!("waiting for {program}"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let shown: String = stderr.chars().take(2000).collect();
        bail!("`{program} {}` failed: {}", args.join(" "), shown.trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Removes namespaces and pin directories that an earlier bench left behind when it was
/// killed before its guards ran (names carry the pid; only dead pids are touched).
pub fn sweep_leftovers() {
    let dead = |name: &str, prefix: &str| {
        name.strip_prefix(prefix)
            .and_then(|pid| pid.parse::<u32>().ok())
            .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
    };
    for entry in std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if ["gfb-flood-s", "gfb-flood-r", "gfb-load-"]
            .iter()
            .any(|p| dead(&name, p))
        {
            eprintln!("flood: removing network namespace {name} left by a killed bench");
            let _ = run("ip", &["netns", "del", &name]);
        }
    }
    for entry in std::fs::read_dir("/sys/fs/bpf")
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if dead(&name, "gfb-flood-") {
            eprintln!("flood: removing pin directory /sys/fs/bpf/{name} left by a killed bench");
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// A network namespace of our own (`ip netns add`), deleted on drop with everything in it:
/// its links, nft tables, iptables rules and ipsets.
pub struct NetNs {
    pub name: String,
}

impl NetNs {
    pub fn new(name: &str) -> anyhow::Result<NetNs> {
        if Path::new("/run/netns").join(name).exists() {
            bail!("network namespace {name} already exists (a previous bench left it?)");
        }
        run("ip", &["netns", "add", name])?;
        let ns = NetNs {
            name: name.to_string(),
        };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// `ip -n NAME ARGS`.
    pub fn ip(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    /// Runs `program ARGS` inside the namespace (`ip netns exec`).
    pub fn exec(
        &self,
        program: &str,
        args: &[&str],
        input: Option<&[u8]>,
    ) -> anyhow::Result<String> {
        let mut full = vec!["netns", "exec", self.name.as_str(), program];
        full.extend_from_slice(args);
        run_with_input("ip", &full, input)
    }

    /// Moves the calling thread into this namespace until the guard drops.
    pub fn enter(&self) -> anyhow::Result<Inside> {
        let home =
            File::open("/proc/thread-self/ns/net").context("opening own network namespace")?;
        let path = Path::new("/run/netns").join(&self.name);
        let target = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        setns(target.as_fd(), CloneFlags::CLONE_NEWNET)
            .with_context(|| format!("entering network namespace {}", self.name))?;
        Ok(Inside { home })
    }

    /// The interface's index inside this namespace.
    pub fn ifindex(&self, interface: &str) -> anyhow::Result<u32> {
        let _inside = self.enter()?;
        nix::net::if_::if_nametoindex(interface)
            .map_err(|e| anyhow!("{interface} in {}: {e}", self.name))
    }

    /// The interface's MAC address.
    pub fn mac(&self, interface: &str) -> anyhow::Result<[u8; 6]> {
        let text = self.ip(&["-j", "link", "show", "dev", interface])?;
        let json: serde_json::Value = serde_json::from_str(&text)?;
        let address = json[0]["address"]
            .as_str()
            .with_context(|| format!("no MAC address for {interface}"))?;
        let bytes: Vec<u8> = address
            .split(':')
            .map(|b| u8::from_str_radix(b, 16))
            .collect::<Result<_, _>>()
            .with_context(|| format!("MAC address {address}"))?;
        bytes
            .try_into()
            .map_err(|_| anyhow!("MAC address {address} is not 6 bytes"))
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        if let Err(e) = run("ip", &["netns", "del", &self.name]) {
            eprintln!(
                "warning: could not delete network namespace {}: {e:#}",
                self.name
            );
        }
    }
}

/// The calling thread is inside a namespace; dropping this returns it home.
pub struct Inside {
    home: File,
}

impl Drop for Inside {
    fn drop(&mut self) {
        if let Err(e) = setns(self.home.as_fd(), CloneFlags::CLONE_NEWNET) {
            // Staying in the wrong namespace would make every later step lie.
            eprintln!("fatal: could not return to the original network namespace: {e}");
            std::process::abort();
        }
    }
}

/// A sender and a receiver namespace joined by one veth pair, with addresses on a /30 and no
/// other route: nothing sent here can leave.
pub struct Pair {
    // Field order: the receiver goes first, which takes both veth ends with it.
    pub receiver: NetNs,
    pub sender: NetNs,
    pub receiver_if: String,
    pub sender_if: String,
    pub receiver_addr: [u8; 4],
}

impl Pair {
    pub fn new() -> anyhow::Result<Pair> {
        let id = std::process::id();
        let sender = NetNs::new(&format!("gfb-flood-s{id}"))?;
        let receiver = NetNs::new(&format!("gfb-flood-r{id}"))?;
        let sender_if = format!("gfbs{id}");
        let receiver_if = format!("gfbr{id}");
        sender.ip(&[
            "link",
            "add",
            &sender_if,
            "type",
            "veth",
            "peer",
            "name",
            &receiver_if,
            "netns",
            &receiver.name,
        ])?;
        sender.ip(&["addr", "add", "10.250.0.1/30", "dev", &sender_if])?;
        receiver.ip(&["addr", "add", "10.250.0.2/30", "dev", &receiver_if])?;
        sender.ip(&["link", "set", &sender_if, "up"])?;
        receiver.ip(&["link", "set", &receiver_if, "up"])?;
        Ok(Pair {
            receiver,
            sender,
            receiver_if,
            sender_if,
            receiver_addr: [10, 250, 0, 2],
        })
    }
}
