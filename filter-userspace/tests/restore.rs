//! `geofence restore` rebuilds the kernel state from the state directory alone: after the
//! pin directory is wiped (what a reboot does to bpffs), the maps hold the same entries and
//! the recorded interfaces run the program again; a second run changes nothing; a geo file
//! that is gone or broken makes it fail, naming the file, with nothing changed.

use std::{
    collections::BTreeMap,
    fs,
    mem::{offset_of, size_of},
    path::Path,
    process::Command,
    thread,
    time::{Duration, Instant},
};

mod common;

use common::Dirs;
use filter_common::{
    Override, Policy, Rule,
    maps::names,
    policy::{RULE_ACTIVE, RULES_PER_SESSION},
};
use geofence::expiry::kernel_clock_ns;

/// What only the restore tests do with their directories.
trait Reboot {
    fn wipe_pins(&self);
    fn snapshot(&self) -> Snapshot;
}

impl Reboot for Dirs {
    /// What a reboot does to bpffs: every pin is gone. Removing the link pin drops the
    /// last reference to the link, which detaches the program.
    fn wipe_pins(&self) {
        fs::remove_dir_all(&self.pin).expect("removing the pin directory");
    }

    fn snapshot(&self) -> Snapshot {
        let mut maps = BTreeMap::new();
        for name in [
            names::FLOWS,
            names::ENDPOINTS,
            names::OVERRIDES,
            names::POLICIES,
            names::PORTS,
            names::OVERRIDE_SESSIONS,
        ] {
            maps.insert(name, dump(&self.pin, name));
        }
        // The territory table as packets see it: the active generation's answer at every
        // boundary of the fixture (the generation itself may differ after a restore).
        let territories = GEO_PROBES
            .iter()
            .map(|addr| {
                let out = self.ok(&["geo", "lookup", addr]);
                let code = out.split_whitespace().nth(1).unwrap_or("").to_string();
                (addr.as_bytes().to_vec(), code.into_bytes())
            })
            .collect();
        maps.insert("territory table", territories);
        Snapshot { maps }
    }
}

/// A network namespace of this test, deleted on drop with its interfaces.
struct Netns {
    name: String,
}

impl Netns {
    fn new() -> Netns {
        let name = format!("gfr{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        sh(&["ip", "netns", "add", &name]);
        Netns { name }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("running {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn hex_bytes(value: &serde_json::Value) -> Vec<u8> {
    value
        .as_array()
        .expect("an array of hex bytes")
        .iter()
        .map(|b| {
            let s = b.as_str().expect("a hex byte");
            u8::from_str_radix(s.trim_start_matches("0x"), 16).expect("hex")
        })
        .collect()
}

/// Every entry of a pinned map, key → value, as bpftool reads it (POLICIES by session).
fn dump(pin_dir: &Path, name: &str) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let entries: serde_json::Value =
        serde_json::from_str(&common::map_json(pin_dir, name)).expect("bpftool JSON");
    entries
        .as_array()
        .expect("a JSON array")
        .iter()
        .map(|e| (hex_bytes(&e["key"]), hex_bytes(&e["value"])))
        .collect()
}

/// Byte offsets of the `expires_ns` fields in a value of map `name`: those are
/// recomputed from wall time on each sync.
fn expiry_offsets(name: &str) -> Vec<usize> {
    match name {
        names::POLICIES => (0..RULES_PER_SESSION)
            .map(|i| {
                offset_of!(Policy, rules) + i * size_of::<Rule>() + offset_of!(Rule, expires_ns)
            })
            .collect(),
        names::OVERRIDES => vec![offset_of!(Override, expires_ns)],
        _ => Vec::new(),
    }
}

fn read_u64(bytes: &[u8], at: usize) -> u64 {
    u64::from_ne_bytes(bytes[at..at + 8].try_into().expect("u64"))
}

/// Two expiries mean the same: both never, both past, or within a second of each other.
fn same_expiry(a: u64, b: u64, now: u64) -> bool {
    a == b || (a != 0 && b != 0 && ((a <= now && b <= now) || a.abs_diff(b) < 1_000_000_000))
}

struct Snapshot {
    maps: BTreeMap<&'static str, BTreeMap<Vec<u8>, Vec<u8>>>,
}

impl Snapshot {
    /// Differences from `other`, with expiries compared by meaning.
    fn differences(&self, other: &Snapshot) -> Vec<String> {
        let now = kernel_clock_ns();
        let mut diffs = Vec::new();
        for (name, mine) in &self.maps {
            let theirs = &other.maps[name];
            let offsets = expiry_offsets(name);
            for (key, value) in mine {
                let Some(other_value) = theirs.get(key) else {
                    diffs.push(format!("{name}: key {key:02x?} is missing"));
                    continue;
                };
                let (mut a, mut b) = (value.clone(), other_value.clone());
                let mut expiries_agree = a.len() == b.len();
                if expiries_agree {
                    for &at in &offsets {
                        let (x, y) = (read_u64(&a, at), read_u64(&b, at));
                        expiries_agree &= same_expiry(x, y, now);
                        a[at..at + 8].fill(0);
                        b[at..at + 8].fill(0);
                    }
                }
                if !expiries_agree || a != b {
                    let at: Vec<usize> = (0..a.len().min(b.len()))
                        .filter(|&i| a[i] != b[i])
                        .collect();
                    diffs.push(format!(
                        "{name}: key {key:02x?}: the value ({} bytes, now {}) differs at bytes \
                         {at:?}{}",
                        value.len(),
                        other_value.len(),
                        if expiries_agree {
                            ""
                        } else {
                            " and in an expiry"
                        }
                    ));
                }
            }
            for key in theirs.keys().filter(|k| !mine.contains_key(*k)) {
                diffs.push(format!("{name}: key {key:02x?} is new"));
            }
        }
        diffs
    }

    fn assert_same(&self, other: &Snapshot, when: &str) {
        let diffs = self.differences(other);
        assert!(diffs.is_empty(), "{when}:\n{}", diffs.join("\n"));
    }

    /// Policy rule slots in use whose expiry has passed.
    fn expired_rules(&self) -> usize {
        let now = kernel_clock_ns();
        let rule = size_of::<Rule>();
        let flags = offset_of!(Rule, flags);
        let expires = offset_of!(Rule, expires_ns);
        self.maps[names::POLICIES]
            .values()
            .flat_map(|v| v.chunks(rule))
            .filter(|r| {
                let f = u32::from_ne_bytes(r[flags..flags + 4].try_into().expect("u32"));
                let e = read_u64(r, expires);
                f & RULE_ACTIVE != 0 && e != 0 && e <= now
            })
            .count()
    }
}

fn root_with_tools(test: &str) -> bool {
    if !common::root_with_bpffs(test) {
        return false;
    }
    for tool in ["bpftool", "ip"] {
        if Command::new(tool).arg("help").output().is_err() {
            eprintln!("skipping {test}: `{tool}` is not installed");
            return false;
        }
    }
    true
}

/// Whether `dev` in `netns` runs an XDP program, waiting up to 2 s for a change to show.
fn has_xdp(netns: &str, dev: &str, expect: bool) -> bool {
    let started = Instant::now();
    loop {
        let out = sh(&["ip", "-n", netns, "-j", "link", "show", "dev", dev]);
        let links: serde_json::Value = serde_json::from_str(&out).expect("ip -j JSON");
        let found = links[0].get("xdp").is_some();
        if found == expect || started.elapsed() > Duration::from_secs(2) {
            return found;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

const GEO_CSV: &str = "192.0.2.0,192.0.2.255,XA\n\
                       198.51.100.0,198.51.100.255,XB\n\
                       203.0.113.0,203.0.113.127,XA\n\
                       2001:db8::,2001:db8:0:ffff:ffff:ffff:ffff:ffff,XB\n";

/// Addresses at and around every boundary of [`GEO_CSV`].
const GEO_PROBES: [&str; 11] = [
    "192.0.2.0",
    "192.0.2.255",
    "192.0.3.0",
    "198.51.100.0",
    "198.51.100.255",
    "203.0.113.127",
    "203.0.113.128",
    "10.0.0.1",
    "2001:db8::",
    "2001:db8:0:ffff:ffff:ffff:ffff:ffff",
    "2001:db8:1::",
];

/// Meetings, a flow (a runtime binding), rules of every kind and an exception, on top of
/// a loaded table.
fn set_up_rules(d: &Dirs, geo: &str) {
    d.ok(&["geo", "load", geo]);
    d.ok(&[
        "meeting",
        "add",
        "town-hall",
        "--endpoint",
        "udp:*:40000-40003",
        "--endpoint",
        "tcp:[2001:db8::1]:443",
    ]);
    d.ok(&[
        "meeting",
        "add",
        "standup",
        "--endpoint",
        "udp:192.0.2.1:41000",
    ]);
    d.ok(&["mux", "add", "udp:192.0.2.1:3478"]);
    d.ok(&[
        "flow",
        "add",
        "standup",
        "--proto",
        "udp",
        "--src",
        "198.51.100.7:50000",
        "--dst",
        "192.0.2.1:3478",
    ]);
    d.ok(&[
        "block",
        "town-hall",
        "--territory",
        "XA",
        "--order",
        "ORD-1",
        "--for",
        "24h",
    ]);
    d.ok(&[
        "block",
        "town-hall",
        "--prefix",
        "198.51.100.7",
        "--prefix",
        "2001:db8:0:1::/64",
        "--order",
        "ORD-2",
    ]);
    d.ok(&[
        "block",
        "standup",
        "--territory",
        "XB",
        "--territory",
        "unknown",
        "--order",
        "ORD-3",
        "--expires",
        "2099-12-01T18:00:00Z",
        "--dry-run",
    ]);
    d.ok(&["allow", "town-hall", "--prefix", "192.0.2.77"]);
}

#[test]
fn restore_rebuilds_the_kernel_state_after_a_reboot() {
    if !root_with_tools("restore_rebuilds_the_kernel_state_after_a_reboot") {
        return;
    }
    let netns = Netns::new();
    let ns = netns.name.as_str();
    let d = Dirs::new("restore");
    sh(&[
        "ip", "-n", ns, "link", "add", "gfr0", "type", "veth", "peer", "name", "gfr1",
    ]);
    sh(&["ip", "-n", ns, "link", "set", "gfr0", "up"]);
    sh(&["ip", "-n", ns, "link", "set", "gfr1", "up"]);
    fs::create_dir_all(&d.state).expect("state dir");
    let geo = d.state.with_extension("csv");
    fs::write(&geo, GEO_CSV).expect("geo csv");

    d.ok(&["attach", "gfr0", "--netns", ns]);
    set_up_rules(&d, geo.to_str().expect("utf-8 path"));
    // A rule that lapses: the kernel must keep it as expired.
    d.ok(&[
        "block",
        "standup",
        "--territory",
        "XA",
        "--order",
        "ORD-4",
        "--for",
        "1s",
    ]);
    thread::sleep(Duration::from_millis(1500));
    assert!(has_xdp(ns, "gfr0", true), "attach put no program on gfr0");

    let mut before = d.snapshot();
    // The flow is a runtime binding: in the kernel, never on disk, and gone after a reboot
    // until its control plane binds it again.
    let flow_src = "198.51.100.7:50000";
    assert!(
        !before.maps[names::FLOWS].is_empty(),
        "flow add bound nothing"
    );
    for file in ["state.json", "audit.jsonl"] {
        let text = d.read_state(file);
        assert!(
            !text.contains(flow_src),
            "{file} holds the flow's address: {text}"
        );
    }
    before.maps.insert(names::FLOWS, BTreeMap::new());
    for name in [
        names::ENDPOINTS,
        names::OVERRIDES,
        names::POLICIES,
        "territory table",
    ] {
        assert!(!before.maps[name].is_empty(), "the setup left {name} empty");
    }
    assert_eq!(
        before.expired_rules(),
        1,
        "the 1s rule is in the kernel, expired"
    );

    d.wipe_pins();
    assert!(
        !has_xdp(ns, "gfr0", false),
        "gfr0 still runs a program after its link pin was removed"
    );

    let out = d.ok(&["restore"]);
    assert!(out.contains("restored 2 meetings"), "{out}");
    assert!(out.contains("1 expired"), "{out}");
    assert!(out.contains("territory table reloaded"), "{out}");
    assert!(out.contains("re-attached"), "{out}");
    let after = d.snapshot();
    before.assert_same(
        &after,
        "the maps after restore differ from before the reboot",
    );
    assert_eq!(
        after.expired_rules(),
        1,
        "the expired rule is restored expired"
    );
    assert!(has_xdp(ns, "gfr0", true), "restore put no program on gfr0");
    let status = d.ok(&["status"]);
    assert!(status.contains("link pinned"), "{status}");
    assert!(!status.contains("LINK MISSING"), "{status}");
    let lookup = d.ok(&["geo", "lookup", "203.0.113.9"]);
    assert!(lookup.contains("XA"), "{lookup}");
    let audit = d.read_state("audit.jsonl");
    let last: serde_json::Value =
        serde_json::from_str(audit.lines().last().expect("an audit entry")).expect("JSON");
    assert_eq!(last["action"], "restore", "{last}");

    let state = d.read_state("state.json");
    let again = d.ok(&["restore"]);
    assert!(again.contains("nothing needed re-attaching"), "{again}");
    assert!(
        again.contains("0 map entries written, 0 removed"),
        "{again}"
    );
    d.snapshot()
        .assert_same(&before, "a second restore changed the maps");
    assert_eq!(
        d.read_state("state.json"),
        state,
        "a second restore changed the state"
    );
    assert!(has_xdp(ns, "gfr0", true), "a second restore detached gfr0");
}

#[test]
fn restore_with_a_missing_or_broken_geo_file_changes_nothing() {
    if !root_with_tools("restore_with_a_missing_or_broken_geo_file_changes_nothing") {
        return;
    }
    let d = Dirs::new("restore");
    fs::create_dir_all(&d.state).expect("state dir");
    let geo = d.state.with_extension("csv");
    fs::write(&geo, GEO_CSV).expect("geo csv");
    let geo_path = geo.to_str().expect("utf-8 path").to_string();
    set_up_rules(&d, &geo_path);
    let before = d.snapshot();
    let state = d.read_state("state.json");
    let audit = d.read_state("audit.jsonl");

    // With the maps in place: the file is gone, then broken.
    fs::remove_file(&geo).expect("removing the geo file");
    let err = d.fails(&["restore"]);
    assert!(err.contains(&geo_path), "{err}");
    assert!(err.contains("nothing was changed"), "{err}");
    d.snapshot()
        .assert_same(&before, "a failed restore changed the maps");

    fs::write(&geo, "192.0.2.0,192.0.2.255,XA\n10.0.0.9,10.0.0.1,XB\n").expect("csv");
    let err = d.fails(&["restore"]);
    assert!(err.contains(&format!("{geo_path}:2:")), "{err}");
    assert!(err.contains("nothing was changed"), "{err}");
    d.snapshot()
        .assert_same(&before, "a failed restore changed the maps");

    // After a reboot: no pin directory is created.
    fs::remove_file(&geo).expect("removing the geo file");
    d.wipe_pins();
    let err = d.fails(&["restore"]);
    assert!(err.contains(&geo_path), "{err}");
    assert!(
        !d.pin.exists(),
        "a failed restore created {}",
        d.pin.display()
    );
    assert_eq!(
        d.read_state("state.json"),
        state,
        "a failed restore changed the state"
    );
    assert_eq!(
        d.read_state("audit.jsonl"),
        audit,
        "a failed restore was audited"
    );
}

#[test]
fn restore_has_help_with_an_example() {
    let out = Command::new(env!("CARGO_BIN_EXE_geofence"))
        .args(["restore", "--help"])
        .output()
        .expect("running geofence");
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "restore --help failed");
    assert!(help.contains("Example: geofence restore"), "{help}");
}
