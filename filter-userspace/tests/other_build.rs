//! After an upgrade the kernel keeps running the program an older build attached, and that
//! program may read the territory table in an older layout. A table load under it must be
//! refused, naming the link and the fix, and change nothing, and `status` must say so;
//! once re-attached by this build, the load goes through.

mod common;

use std::{fs, os::fd::AsFd as _, path::Path, process::Command};

use aya::programs::{Xdp, XdpMode, links::FdLink};
use common::{Dirs, root_with_bpffs};
use nix::sched::{CloneFlags, setns};

/// A network namespace of this test alone, deleted on drop.
struct Netns(String);

impl Netns {
    fn add(name: String) -> Option<Netns> {
        let out = Command::new("ip").args(["netns", "add", &name]).output();
        match out {
            Ok(out) if out.status.success() => Some(Netns(name)),
            Ok(out) => {
                eprintln!(
                    "skipping: ip netns add {name}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("skipping: running ip: {e}");
                None
            }
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// The program pins under `pin_dir`: `attach` pins this build's program there.
fn program_pins(pin_dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(pin_dir)
        .expect("listing the pin directory")
        .map(|e| {
            e.expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.starts_with("prog_"))
        .collect();
    names.sort();
    names
}

/// Attaches a program that is not geofence's (the flood bench's pass-all) to `iface` in
/// `ns`, through a link pinned at `pin`, where `geofence attach` pins its own.
fn attach_foreign_program(ns: &str, iface: &str, pin: &Path) {
    let mut ebpf = aya::Ebpf::load(geofence::kernel::FLOOD_OBJECT).expect("loading the object");
    let program: &mut Xdp = ebpf
        .program_mut("flood_pass")
        .expect("flood_pass in the object")
        .try_into()
        .expect("an XDP program");
    program.load().expect("the kernel loads flood_pass");
    let home = fs::File::open("/proc/thread-self/ns/net").expect("own network namespace");
    let target = fs::File::open(Path::new("/run/netns").join(ns)).expect("the test namespace");
    setns(target.as_fd(), CloneFlags::CLONE_NEWNET).expect("entering the test namespace");
    let attached = program.attach(iface, XdpMode::Skb);
    setns(home.as_fd(), CloneFlags::CLONE_NEWNET).expect("returning home");
    let link = program
        .take_link(attached.expect("attaching the foreign program"))
        .expect("the link");
    FdLink::try_from(link)
        .expect("a BPF link")
        .pin(pin)
        .expect("pinning the link");
}

#[test]
fn a_table_load_under_another_builds_program_is_refused() {
    if !root_with_bpffs("a_table_load_under_another_builds_program_is_refused") {
        return;
    }
    let Some(ns) = Netns::add(format!("gfob{}", std::process::id())) else {
        return;
    };
    let d = Dirs::new("otherbuild");
    let table = d.state.with_extension("csv");
    fs::write(&table, "2001:db8::/32\n192.0.2.0/24\n").expect("writing the table");
    let table = table.to_str().expect("a UTF-8 path");
    d.ok(&["geo", "load", "--territory", "XA", table]);
    // As after an upgrade: the state records an attachment to lo, and the program behind
    // its link is not this build's.
    d.ok(&["attach", "lo", "--netns", &ns.0, "--mode", "skb"]);
    let link = format!("link_{}_lo", ns.0);
    fs::remove_file(d.pin.join(&link)).expect("unpinning this build's link");
    attach_foreign_program(&ns.0, "lo", &d.pin.join(&link));
    let status = d.ok(&["status"]);
    assert!(
        status.contains("runs ANOTHER BUILD's program")
            && status.contains(&format!("geofence detach lo --netns {}", ns.0)),
        "{status}"
    );
    assert!(
        d.ok(&["status", "--json"])
            .contains(r#""program_build": "other""#),
        "status --json"
    );

    let state = d.read_state("state.json");
    let err = d.fails(&["geo", "load", "--territory", "XB", table]);
    assert!(
        err.contains(&format!("attached through {link}"))
            && err.contains("is not this geofence build's")
            && err.contains("nothing was changed")
            && err.contains("geofence detach IFACE"),
        "{err}"
    );
    assert_eq!(d.read_state("state.json"), state, "the state changed");
    let lookup = d.ok(&["geo", "lookup", "2001:db8::1"]);
    assert!(lookup.contains("XA"), "the table changed: {lookup}");

    d.ok(&["detach", "lo", "--netns", &ns.0]);
    assert_eq!(program_pins(&d.pin), Vec::<String>::new());
    d.ok(&["attach", "lo", "--netns", &ns.0, "--mode", "skb"]);
    // This build's program is pinned once, so a load reads its tag instead of loading it.
    assert_eq!(program_pins(&d.pin).len(), 1, "{:?}", program_pins(&d.pin));
    d.ok(&["geo", "load", "--territory", "XB", table]);
    let lookup = d.ok(&["geo", "lookup", "2001:db8::1"]);
    assert!(lookup.contains("XB"), "not reloaded: {lookup}");
    assert!(!d.ok(&["status"]).contains("ANOTHER BUILD"));
    assert!(
        d.ok(&["status", "--json"])
            .contains(r#""program_build": "this""#)
    );

    // With this build's program pinned, a foreign program on another interface is still
    // refused.
    let added = Command::new("ip")
        .args([
            "-n", &ns.0, "link", "add", "gf0", "type", "veth", "peer", "name", "gf1",
        ])
        .status()
        .expect("running ip");
    assert!(added.success(), "adding a veth pair");
    let foreign = format!("link_{}_gf0", ns.0);
    attach_foreign_program(&ns.0, "gf0", &d.pin.join(&foreign));
    let err = d.fails(&["geo", "load", "--territory", "XA", table]);
    assert!(
        err.contains(&format!("attached through {foreign}")),
        "{err}"
    );
    assert!(!err.contains(&link), "this build's link is named: {err}");
    // Detaching the foreign link keeps this build's program pin: lo still runs it.
    d.ok(&["detach", "gf0", "--netns", &ns.0]);
    assert_eq!(program_pins(&d.pin).len(), 1);
    d.ok(&["geo", "load", "--territory", "XA", table]);

    // The last detach takes the program pin with it.
    d.ok(&["detach", "lo", "--netns", &ns.0]);
    assert_eq!(program_pins(&d.pin), Vec::<String>::new());
}
