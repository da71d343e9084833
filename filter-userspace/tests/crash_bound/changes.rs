//! The fixture and the changes [`super::every`] kills: one or more of every command that
//! changes the kernel, each large enough that kills land among its map writes.

use std::{fs, net::Ipv4Addr};

use geofence::{endpoint::Proto, state::State};

use super::every::{Change, frame, hosts, strings, stun_frame};
use crate::common::Dirs;

const GEO_1: &str = "\
192.0.2.0,192.0.2.255,XA
198.51.100.0,198.51.100.255,XB
203.0.113.0,203.0.113.255,XC
10.0.0.0,10.255.255.255,XD
";
/// XA and XC trade places.
const GEO_2: &str = "\
192.0.2.0,192.0.2.255,XC
198.51.100.0,198.51.100.255,XB
203.0.113.0,203.0.113.255,XA
10.0.0.0,10.255.255.255,XD
";

/// Meeting A on every address's port 40000 blocks XC and 10.200.0.0/16 (order BASE) and
/// excepts 10.100.0.77; meeting M owns 100.64.0.2:30000 and is registered on the shared
/// port 7882. The same as a policy file (without the shared port, which files do not
/// hold), for the apply changes.
const FIXTURE_MEETINGS: &str = r#"
[meetings.A]
endpoints = ["udp:*:40000"]
allow = ["10.100.0.77/32"]

[[meetings.A.rules]]
order = "BASE"
territories = ["XC"]
prefixes = ["10.200.0.0/16"]

[meetings.M]
endpoints = ["udp:100.64.0.2:30000"]
"#;

/// Files of the fixture: (geo 1, geo 2, policy with rule REISSUE as 1, as 2, fixture).
pub struct Files {
    pub geo_1: String,
    pub geo_2: String,
    reissue_1: String,
    reissue_2: String,
    /// The reissues with a territory table each: geo 1 with the first, geo 2 the second.
    retable_1: String,
    retable_2: String,
    fixture: String,
}

fn write(d: &Dirs, name: &str, text: &str) -> String {
    let path = d.state.join(name);
    fs::write(&path, text).expect("writing a fixture file");
    path.to_str().expect("utf-8 path").to_string()
}

/// A rule REISSUE on A: `territory` and 500 host prefixes from `first`.
fn reissue(territory: &str, first: Ipv4Addr) -> String {
    let prefixes: Vec<String> = hosts(first, 500)
        .iter()
        .map(|p| format!("\"{p}\""))
        .collect();
    format!(
        "{FIXTURE_MEETINGS}\n[[meetings.A.rules]]\norder = \"REISSUE\"\nterritories = \
         [\"{territory}\"]\nprefixes = [{}]\n",
        prefixes.join(", ")
    )
}

pub fn fixture(d: &Dirs) -> Files {
    fs::create_dir_all(&d.state).expect("state dir");
    let files = Files {
        geo_1: write(d, "geo-1.csv", GEO_1),
        geo_2: write(d, "geo-2.csv", GEO_2),
        reissue_1: write(d, "reissue-1.toml", &reissue("XB", REISSUE_1)),
        reissue_2: write(d, "reissue-2.toml", &reissue("XA", REISSUE_2)),
        retable_1: write(
            d,
            "retable-1.toml",
            &format!(
                "[geo]\nfiles = [\"geo-1.csv\"]\n{}",
                reissue("XB", REISSUE_1)
            ),
        ),
        retable_2: write(
            d,
            "retable-2.toml",
            &format!(
                "[geo]\nfiles = [\"geo-2.csv\"]\n{}",
                reissue("XA", REISSUE_2)
            ),
        ),
        fixture: write(d, "fixture.toml", FIXTURE_MEETINGS),
    };
    d.ok(&["geo", "load", &files.geo_1]);
    d.ok(&["apply", &files.fixture]);
    d.ok(&["mux", "add", "udp:*:7882"]);
    files
}

const REISSUE_1: Ipv4Addr = Ipv4Addr::new(10, 160, 0, 0);
const REISSUE_2: Ipv4Addr = Ipv4Addr::new(10, 161, 0, 0);
const KEEP: Ipv4Addr = Ipv4Addr::new(10, 150, 0, 0);
const ALLOWED: Ipv4Addr = Ipv4Addr::new(10, 200, 1, 0);
const BIG: &str = "udp:100.64.0.1:20000-21999";
const MUX_PORTS: &str = "udp:100.64.0.9:8000-8999";
const FLOW: [&str; 7] = [
    "A",
    "--proto",
    "udp",
    "--src",
    "198.51.100.7:50000",
    "--dst",
    "100.64.0.2:7882",
];

/// `addr` plus `i`.
fn nth(addr: Ipv4Addr, i: u32) -> String {
    Ipv4Addr::from(u32::from(addr) + i).to_string()
}

/// UDP probes from each source to each destination.
fn udp(srcs: &[String], dsts: &[&str]) -> Vec<Vec<u8>> {
    srcs.iter()
        .flat_map(|s| {
            dsts.iter()
                .map(move |d| frame(Proto::Udp, &format!("{s}:1000"), d))
        })
        .collect()
}

fn with(command: &[&str], extra: &[String]) -> Vec<String> {
    let mut args = strings(command);
    for e in extra {
        args.push("--prefix".into());
        args.push(e.clone());
    }
    args
}

fn ufrags() -> Vec<String> {
    (0..500).map(|i| format!("uf{i:03}")).collect()
}

fn ufrag_command(verb: &str) -> Vec<String> {
    let mut args = strings(&["ufrag", verb]);
    if verb == "add" {
        args.push("M".into());
    }
    args.extend(ufrags());
    args
}

fn meeting(state: &State, name: &str) -> Option<geofence::state::Meeting> {
    state.meetings.get(name).cloned()
}

/// The changes, in the order they run; each ends where it started.
pub fn all(files: &Files) -> Vec<Change> {
    let keep = hosts(KEEP, 1000);
    let allowed = hosts(ALLOWED, 1000);
    let add_big = strings(&["meeting", "add", "big", "--endpoint", BIG]);
    let block_big = strings(&["block", "big", "--territory", "XA", "--order", "BIG"]);
    let block_keep = with(
        &["block", "A", "--territory", "XA", "--order", "KEEP"],
        &keep,
    );
    let unblock_keep = with(&["unblock", "A"], &keep);
    let lift_keep = strings(&["unblock", "A", "--territory", "XA"]);
    let allow = with(&["allow", "A"], &allowed);
    let disallow = with(&["unblock", "A"], &allowed);
    let mux_add = strings(&["mux", "add", MUX_PORTS]);
    let mux_del = strings(&["mux", "del", MUX_PORTS]);
    let flow_add = [strings(&["flow", "add"]), strings(&FLOW)].concat();
    let flow_del = [strings(&["flow", "del"]), strings(&FLOW)].concat();
    let big_probes = || -> Box<dyn Fn(u32) -> Vec<Vec<u8>>> {
        Box::new(|_| {
            udp(
                &["192.0.2.10".into(), "198.51.100.10".into()],
                &[
                    "100.64.0.1:20000",
                    "100.64.0.1:20999",
                    "100.64.0.1:21999",
                    "100.64.0.5:40000",
                ],
            )
        })
    };
    let keep_probes = Box::new(move |_| {
        let srcs: Vec<String> = [0, 500, 999]
            .iter()
            .map(|&i| nth(KEEP, i))
            .chain(["192.0.2.10".to_string()])
            .collect();
        udp(&srcs, &["100.64.0.5:40000"])
    });
    let allow_probes = || -> Box<dyn Fn(u32) -> Vec<Vec<u8>>> {
        Box::new(|_| {
            let srcs: Vec<String> = [0, 500, 999].iter().map(|&i| nth(ALLOWED, i)).collect();
            udp(&srcs, &["100.64.0.5:40000"])
        })
    };
    let mux_probes = || -> Box<dyn Fn(u32) -> Vec<Vec<u8>>> {
        Box::new(|_| {
            udp(
                &["203.0.113.9".into(), "198.51.100.9".into()],
                &["100.64.0.9:8000", "100.64.0.9:8500", "100.64.0.9:8999"],
            )
        })
    };
    let ufrag_probes = || -> Box<dyn Fn(u32) -> Vec<Vec<u8>>> {
        Box::new(|round| {
            let mut out = Vec::new();
            for (i, ufrag) in ["uf000", "uf250", "uf499"].iter().enumerate() {
                for src in ["198.51.100.7", "203.0.113.7"] {
                    // A new client port every round: no flow learned before answers.
                    let port = 10_000 + (round * 8 + i as u32) as u16;
                    let src = format!("{src}:{port}").parse().expect("address");
                    let dst = "100.64.0.3:7882".parse().expect("address");
                    out.push(stun_frame(src, dst, ufrag));
                }
            }
            out
        })
    };
    let flow_probes = || -> Box<dyn Fn(u32) -> Vec<Vec<u8>>> {
        Box::new(|_| {
            vec![
                frame(Proto::Udp, "198.51.100.7:50000", "100.64.0.2:7882"),
                frame(Proto::Udp, "198.51.100.7:50001", "100.64.0.2:7882"),
                frame(Proto::Udp, "198.51.100.7:50000", "100.64.0.2:30000"),
            ]
        })
    };
    let reissue_probes = Box::new(|_| {
        let srcs: Vec<String> = [REISSUE_1, REISSUE_2]
            .iter()
            .flat_map(|&a| [nth(a, 5), nth(a, 499)])
            .chain(["192.0.2.10".into(), "198.51.100.10".into()])
            .collect();
        udp(&srcs, &["100.64.0.5:40000"])
    });
    let geo_probes = Box::new(|_| {
        udp(
            &[
                "192.0.2.10".into(),
                "198.51.100.10".into(),
                "203.0.113.200".into(),
            ],
            &["100.64.0.5:40000"],
        )
    });
    // A new table and new rules in one apply: 203.0.113.200 is XC (blocked by BASE) under
    // the old table and XA (blocked by the new REISSUE) under the new one; under the new
    // table with the old rules it would pass, which no kill may leave.
    let retable_probes = Box::new(|_| {
        let srcs: Vec<String> = [REISSUE_1, REISSUE_2]
            .iter()
            .map(|&a| nth(a, 7))
            .chain(["192.0.2.10".into(), "203.0.113.200".into()])
            .collect();
        udp(&srcs, &["100.64.0.5:40000"])
    });
    let (geo_1, geo_2) = (files.geo_1.clone(), files.geo_2.clone());
    let apply = |file: &str| strings(&["apply", file]);
    vec![
        Change {
            name: "meeting add (2,000 endpoints)",
            before: vec![],
            args: add_big.clone(),
            undo: vec![strings(&["meeting", "del", "big"])],
            after: vec![],
            recorded: Some(|s| meeting(s, "big").is_some()),
            probes: big_probes(),
        },
        Change {
            name: "meeting del (2,000 endpoints, a rule)",
            before: vec![add_big.clone(), block_big.clone()],
            args: strings(&["meeting", "del", "big"]),
            undo: vec![add_big, block_big],
            after: vec![strings(&["meeting", "del", "big"])],
            recorded: Some(|s| meeting(s, "big").is_none()),
            probes: big_probes(),
        },
        Change {
            name: "unblock --prefix (1,000) of a rule that stays",
            before: vec![block_keep.clone()],
            args: unblock_keep,
            undo: vec![lift_keep.clone(), block_keep],
            after: vec![lift_keep],
            recorded: Some(|s| {
                meeting(s, "A").is_some_and(|m| {
                    m.rules
                        .iter()
                        .any(|r| r.order == "KEEP" && r.prefixes.is_empty())
                })
            }),
            probes: keep_probes,
        },
        Change {
            name: "allow (1,000 prefixes)",
            before: vec![],
            args: allow.clone(),
            undo: vec![disallow.clone()],
            after: vec![],
            recorded: Some(|s| meeting(s, "A").is_some_and(|m| m.allows.len() > 1)),
            probes: allow_probes(),
        },
        Change {
            name: "unblock --prefix (1,000 exceptions)",
            before: vec![allow.clone()],
            args: disallow.clone(),
            undo: vec![allow],
            after: vec![disallow],
            recorded: Some(|s| meeting(s, "A").is_some_and(|m| m.allows.len() == 1)),
            probes: allow_probes(),
        },
        Change {
            name: "apply reissuing a rule (500 prefixes)",
            before: vec![apply(&files.reissue_1)],
            args: apply(&files.reissue_2),
            undo: vec![apply(&files.reissue_1)],
            after: vec![apply(&files.fixture)],
            recorded: Some(|s| {
                meeting(s, "A").is_some_and(|m| {
                    m.rules.iter().any(|r| {
                        r.order == "REISSUE" && r.territories.iter().any(|t| t.to_string() == "XA")
                    })
                })
            }),
            probes: reissue_probes,
        },
        Change {
            name: "apply with a new table and a reissued rule (500 prefixes)",
            before: vec![apply(&files.retable_1)],
            args: apply(&files.retable_2),
            undo: vec![apply(&files.retable_1)],
            after: vec![
                apply(&files.fixture),
                strings(&["geo", "load", &files.geo_1]),
            ],
            recorded: Some(|s| {
                s.geo
                    .as_ref()
                    .is_some_and(|g| g.files.iter().any(|f| f.ends_with("geo-2.csv")))
            }),
            probes: retable_probes,
        },
        Change {
            name: "mux add (1,000 ports on an address)",
            before: vec![],
            args: mux_add.clone(),
            undo: vec![mux_del.clone()],
            after: vec![],
            recorded: Some(|s| s.mux.len() > 1),
            probes: mux_probes(),
        },
        Change {
            name: "mux del (1,000 ports on an address)",
            before: vec![mux_add.clone()],
            args: mux_del.clone(),
            undo: vec![mux_add],
            after: vec![mux_del],
            recorded: Some(|s| s.mux.len() == 1),
            probes: mux_probes(),
        },
        Change {
            name: "ufrag add (500)",
            before: vec![],
            args: ufrag_command("add"),
            undo: vec![ufrag_command("del")],
            after: vec![],
            recorded: None,
            probes: ufrag_probes(),
        },
        Change {
            name: "ufrag del (500)",
            before: vec![ufrag_command("add")],
            args: ufrag_command("del"),
            undo: vec![ufrag_command("add")],
            after: vec![ufrag_command("del")],
            recorded: None,
            probes: ufrag_probes(),
        },
        Change {
            name: "flow add",
            before: vec![],
            args: flow_add.clone(),
            undo: vec![flow_del.clone()],
            after: vec![],
            // A runtime binding: the state file never has it.
            recorded: None,
            probes: flow_probes(),
        },
        Change {
            name: "flow del",
            before: vec![flow_add.clone()],
            args: flow_del.clone(),
            undo: vec![flow_add],
            after: vec![flow_del],
            recorded: None,
            probes: flow_probes(),
        },
        Change {
            name: "geo load",
            before: vec![],
            args: strings(&["geo", "load", &geo_2]),
            undo: vec![strings(&["geo", "load", &geo_1])],
            after: vec![],
            recorded: Some(|s| {
                s.geo
                    .as_ref()
                    .is_some_and(|g| g.files.iter().any(|f| f.ends_with("geo-2.csv")))
            }),
            probes: geo_probes,
        },
    ]
}
