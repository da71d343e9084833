//! `attach --flows N`: the flow table is created with N entries, keeps them through
//! `restore` and `upgrade`, shows in `status`, refuses 0 and sizes too large for memory,
//! and when full evicts its least recently used flow while learning goes on.

use std::{net::Ipv4Addr, process::Command};

mod common;
#[expect(
    dead_code,
    reason = "this file runs frames; the senders for counting tests stay unused"
)]
mod test_run;

use aya::maps::{HashMap, MapData, MapInfo};
use common::Dirs;
use filter_common::{
    FlowKey,
    maps::names,
    mux::{FlowBinding, origin},
};

/// A network namespace with a veth pair, deleted on drop.
struct Netns(String);

impl Netns {
    fn new() -> Netns {
        let name = format!("gff{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        for args in [
            vec!["netns", "add", &name],
            vec![
                "-n", &name, "link", "add", "gff0", "type", "veth", "peer", "name", "gff1",
            ],
            vec!["-n", &name, "link", "set", "gff0", "up"],
        ] {
            let out = Command::new("ip").args(&args).output().expect("ip");
            assert!(out.status.success(), "ip {args:?}: {out:?}");
        }
        Netns(name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

fn pinned_size(d: &Dirs) -> u32 {
    MapInfo::from_pin(d.pin.join(names::FLOWS))
        .expect("the pinned FLOWS")
        .max_entries()
}

/// A Binding request for ufrag `floodA` from 198.51.100.7:`port` to 100.64.0.1:7882.
fn request(port: u16) -> Vec<u8> {
    let username = b"floodA:client";
    let mut stun = vec![0, 1, 0, 20, 0x21, 0x12, 0xa4, 0x42];
    stun.extend([9; 12]);
    stun.extend([0, 6, 0, username.len() as u8]);
    stun.extend(username);
    stun.resize(20 + 20, 0);
    let src = Ipv4Addr::new(198, 51, 100, 7);
    let mut frame = test_run::udp_frame(src, Ipv4Addr::new(100, 64, 0, 1), 7882, stun.len());
    frame[34..36].copy_from_slice(&port.to_be_bytes());
    frame[42..].copy_from_slice(&stun);
    frame
}

/// The flow table's size the state records.
fn recorded(d: &Dirs) -> serde_json::Value {
    let state: serde_json::Value =
        serde_json::from_str(&d.read_state("state.json")).expect("the state file");
    state["flows"].clone()
}

fn learned_ports(d: &Dirs) -> Vec<u16> {
    let data = MapData::from_pin(d.pin.join(names::FLOWS)).expect("FLOWS");
    let map: HashMap<_, FlowKey, FlowBinding> =
        HashMap::try_from(aya::maps::Map::LruHashMap(data)).expect("a hash map");
    map.iter()
        .flatten()
        .filter(|(_, b)| b.origin == origin::LEARNED)
        .map(|(k, _)| k.src_port)
        .collect()
}

#[test]
fn the_flow_table_takes_its_size_from_attach_and_keeps_it() {
    if !common::root_with_bpffs("the_flow_table_takes_its_size_from_attach_and_keeps_it") {
        return;
    }
    let netns = Netns::new();
    let d = Dirs::new("flows");
    let ns = netns.0.as_str();
    d.ok(&["meeting", "add", "A"]);
    d.ok(&["mux", "add", "udp:*:7882"]);
    d.ok(&["ufrag", "add", "A", "floodA"]);
    let default = pinned_size(&d);
    assert_eq!(default, 262_144, "the default size");

    for (bad, why) in [("0", "at least one flow"), ("4000000000", "choose at most")] {
        let err = d.fails(&[
            "attach", "gff0", "--netns", ns, "--mode", "skb", "--flows", bad,
        ]);
        assert!(err.contains("--flows") && err.contains(why), "{err}");
    }
    assert_eq!(pinned_size(&d), default, "a refused size changes nothing");
    assert_eq!(recorded(&d), serde_json::Value::Null);

    let out = d.ok(&[
        "attach", "gff0", "--netns", ns, "--mode", "skb", "--flows", "1024",
    ]);
    assert!(out.contains("flow table of 1024 flows"), "{out}");
    assert_eq!(pinned_size(&d), 1024);
    assert_eq!(recorded(&d), 1024);
    // Attached: another size is refused, pointing at upgrade.
    let err = d.fails(&["attach", "gff1", "--netns", ns, "--flows", "2048"]);
    assert!(err.contains("geofence upgrade --flows 2048"), "{err}");

    // A flood of 3000 flows: the oldest are evicted, every request is learned when it
    // comes, and the last ones stay.
    let program = test_run::Program::load(&d.pin);
    for port in 10_000..13_000u16 {
        assert_eq!(program.run(&request(port)), test_run::XDP_PASS);
    }
    let learned = learned_ports(&d);
    assert!(
        learned.len() <= 1024 && learned.len() > 512,
        "{} learned flows in a table of 1024",
        learned.len()
    );
    assert!(learned.contains(&12_999), "the newest flow was not learned");
    assert!(
        !learned.contains(&10_000),
        "the oldest flow was not evicted"
    );
    let status = d.ok(&["status"]);
    assert!(status.contains(" of 1,024 flows in use"), "{status}");
    drop(program);

    // A reboot empties bpffs: restore creates the table at the recorded size.
    std::fs::remove_dir_all(&d.pin).expect("wiping the pin directory");
    d.ok(&["restore"]);
    assert_eq!(pinned_size(&d), 1024, "restore keeps the size");
    d.ok(&["upgrade"]);
    assert_eq!(pinned_size(&d), 1024, "upgrade keeps the size");
    d.ok(&["upgrade", "--flows", "2048"]);
    assert_eq!(pinned_size(&d), 2048, "upgrade --flows resizes");
    assert_eq!(recorded(&d), 2048);
    d.ok(&["detach", "gff0", "--netns", ns]);
}
