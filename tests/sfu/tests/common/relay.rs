//! A relay in network namespaces: the relay, a hub with a bridge, one namespace per participant
//! slot; deleted on drop, also when a test fails. And what finds geofence and cleans up after
//! runs that were killed.

use std::{
    fs::File,
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

use super::exchange;

/// Whether the test runs as root (namespaces, XDP and bpffs need it).
pub fn is_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1));
    euid == Some("0")
}

/// The geofence binary: `GEOFENCE_BIN`, else target/debug/geofence; `Err` says why not.
pub fn geofence_bin() -> Result<PathBuf, String> {
    let bin = match std::env::var_os("GEOFENCE_BIN") {
        Some(bin) => PathBuf::from(bin),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/debug/geofence"),
    };
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!(
            "no geofence binary at {} (build it with `cargo build -p filter-userspace --bin \
             geofence`, or set GEOFENCE_BIN)",
            bin.display()
        ))
    }
}

/// Polls `check` every 100 ms until it gives a value; fails after `timeout` with what
/// `check` last said.
pub fn wait_until<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(value) => return value,
            Err(why) if Instant::now() >= deadline => {
                panic!("timed out after {timeout:?} waiting until {what}: {why}")
            }
            Err(_) => thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// `ip ARGS` (words split at spaces), which must succeed.
pub fn ip(args: &str) {
    let output = Command::new("ip")
        .args(args.split_whitespace())
        .output()
        .expect("running ip");
    assert!(
        output.status.success(),
        "ip {args}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Removes a directory tree, files first (as bpffs wants).
pub fn remove_tree(path: &Path) {
    if let Ok(entries) = std::fs::read_dir(path) {
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&path);
            } else {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    let _ = std::fs::remove_dir(path);
}

/// The first run of digits of `rest`, a pid in a name.
fn pid_in(rest: &str) -> String {
    rest.chars().take_while(char::is_ascii_digit).collect()
}

fn is_dead(pid: &str) -> bool {
    !pid.is_empty() && !Path::new(&format!("/proc/{pid}")).exists()
}

/// Namespaces `<netns_prefix><pid>-*` and pin directories `<pin_prefix><pid>` of runs that
/// were killed before their guards ran (their process is gone).
pub fn reap_stale(netns_prefix: &str, pin_prefix: &str) {
    for entry in std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(rest) = name.strip_prefix(netns_prefix) {
            let pid = pid_in(rest);
            if rest[pid.len()..].starts_with('-') && is_dead(&pid) {
                let _ = Command::new("ip").args(["netns", "del", &name]).status();
            }
        }
    }
    for entry in std::fs::read_dir("/sys/fs/bpf")
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(rest) = name.strip_prefix(pin_prefix) {
            let pid = pid_in(rest);
            if pid.len() == rest.len() && is_dead(&pid) {
                remove_tree(&entry.path());
            }
        }
    }
}

/// The relay (address `relay_ip`/24), a hub with a bridge, and one namespace per slot `(name,
/// address/16)`, each slot routed to the relay's /24 only; all deleted on drop.
pub struct Topology {
    tag: String,
    namespaces: Vec<String>,
    /// The relay's veth (in the relay namespace), where geofence attaches.
    pub relay_if: String,
}

impl Topology {
    /// `prefix` and `short` (two letters, for interface names) keep concurrent tests apart.
    pub fn create(
        prefix: &str,
        short: &str,
        relay_ip: &str,
        territories: &[&str],
        slots: &[(&str, &str)],
    ) -> Topology {
        let pid = std::process::id();
        let mut topology = Topology {
            tag: format!("{prefix}{pid}"),
            namespaces: Vec::new(),
            relay_if: format!("{short}{pid}r"),
        };
        let (relay, hub) = (topology.relay(), topology.netns("hub"));
        for ns in [&relay, &hub] {
            topology.add_netns(ns);
        }
        ip(&format!("-n {hub} link add br0 type bridge"));
        ip(&format!("-n {hub} link set br0 up"));
        let dev = topology.relay_if.clone();
        topology.veth(&relay, &dev, &format!("{short}{pid}rh"));
        ip(&format!("-n {relay} addr add {relay_ip}/24 dev {dev}"));
        ip(&format!("-n {relay} link set {dev} up"));
        for territory in territories {
            ip(&format!("-n {relay} route add {territory} dev {dev}"));
        }
        let relay_net = match relay_ip.rsplit_once('.') {
            Some((net, _)) => format!("{net}.0/24"),
            None => panic!("{relay_ip} is not an IPv4 address"),
        };
        for (i, (slot, addr)) in slots.iter().enumerate() {
            let ns = topology.netns(slot);
            topology.add_netns(&ns);
            let dev = format!("{short}{pid}p{i}");
            topology.veth(&ns, &dev, &format!("{short}{pid}h{i}"));
            ip(&format!("-n {ns} addr add {addr}/16 dev {dev}"));
            ip(&format!("-n {ns} link set {dev} up"));
            ip(&format!("-n {ns} route add {relay_net} dev {dev}"));
        }
        topology
    }

    pub fn netns(&self, name: &str) -> String {
        format!("{}-{name}", self.tag)
    }

    pub fn relay(&self) -> String {
        self.netns("relay")
    }

    fn add_netns(&mut self, ns: &str) {
        let _ = Command::new("ip")
            .args(["netns", "del", ns])
            .stderr(Stdio::null())
            .status();
        ip(&format!("netns add {ns}"));
        self.namespaces.push(ns.to_owned());
        ip(&format!("-n {ns} link set lo up"));
    }

    /// A veth pair from `dev` in `ns` to `hub_side` in the hub's bridge; both ends are
    /// created inside their namespaces, so nothing is ever left on the host.
    fn veth(&self, ns: &str, dev: &str, hub_side: &str) {
        let hub = self.netns("hub");
        ip(&format!(
            "link add name {dev} netns {ns} type veth peer name {hub_side} netns {hub}"
        ));
        ip(&format!("-n {hub} link set {hub_side} master br0"));
        ip(&format!("-n {hub} link set {hub_side} up"));
    }

    /// `program` in the namespace of `slot`.
    pub fn exec(&self, slot: &str, program: &Path) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.netns(slot)])
            .arg(program);
        command
    }

    /// One HTTP/1.1 exchange with `addr` from inside the relay's namespace (the test itself is
    /// outside): the socket is made on a thread that entered the namespace, and keeps it.
    pub fn http(&self, addr: SocketAddr, method: &str, path: &str) -> (u16, Value) {
        let netns = Path::new("/run/netns").join(self.relay());
        let stream = thread::scope(|scope| {
            scope
                .spawn(|| {
                    let ns = File::open(&netns)
                        .unwrap_or_else(|e| panic!("opening {}: {e}", netns.display()));
                    nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET)
                        .unwrap_or_else(|e| panic!("entering {}: {e}", netns.display()));
                    TcpStream::connect_timeout(&addr, Duration::from_secs(5))
                        .unwrap_or_else(|e| panic!("connecting to {addr}: {e}"))
                })
                .join()
                .expect("the connecting thread")
        });
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("setting a read timeout");
        exchange(stream, method, path, "")
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for ns in self.namespaces.iter().rev() {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}
