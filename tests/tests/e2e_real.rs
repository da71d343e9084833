//! The core scenario on the real country table from `../shared/geo`: block CN on meeting
//! A; CN participants stop on A only, HK/US/JP/DE keep both meetings. Participant
//! addresses are the first range of each country in the table, so they are right by
//! construction; the CLI's `geo lookup` must agree. Traffic never leaves the test's
//! namespaces.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use geofence_tests::world::{Expect, World};
use geofence_tests::{Geofence, MeetingPorts, Participant, ParticipantSpec, require_root};

const COUNTRIES: [&str; 5] = ["CN", "HK", "US", "JP", "DE"];

fn table() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/geo/geo-whois-asn-country-ipv4.csv");
    path.canonicalize().unwrap_or(path)
}

/// For each country, two addresses inside its first range (or first two ranges).
fn pick_participants(csv: &str) -> Vec<ParticipantSpec> {
    let mut specs = Vec::new();
    for cc in COUNTRIES {
        let mut addrs = Vec::new();
        for line in csv.lines() {
            let f: Vec<&str> = line.trim().split(',').collect();
            if f.len() != 3 || f[2] != cc {
                continue;
            }
            let start: Ipv4Addr = f[0].parse().expect("start address in the table");
            let end: Ipv4Addr = f[1].parse().expect("end address in the table");
            let (s, e) = (u32::from(start), u32::from(end));
            addrs.extend((s..=e).skip(usize::from(e > s)).take(2 - addrs.len()));
            if addrs.len() == 2 {
                break;
            }
        }
        assert_eq!(addrs.len(), 2, "fewer than two {cc} addresses in the table");
        for (i, a) in addrs.into_iter().enumerate() {
            let name = format!("{}-{}", cc.to_lowercase(), i + 1);
            specs.push(ParticipantSpec::new(
                &name,
                &Ipv4Addr::from(a).to_string(),
                cc,
            ));
        }
    }
    specs
}

fn verify(world: &World, when: &str, expect: impl Fn(&Participant, &str) -> Expect) {
    if let Err(table) = world.verify(expect) {
        panic!("{when}: traffic is not as expected:\n{table}");
    }
}

#[test]
fn real_table_block_cn_on_one_meeting() {
    if !require_root("real_table_block_cn_on_one_meeting") {
        return;
    }
    let path = table();
    let Ok(csv) = std::fs::read_to_string(&path) else {
        eprintln!(
            "skipping real_table_block_cn_on_one_meeting: no table at {}",
            path.display()
        );
        return;
    };
    let specs = pick_participants(&csv);
    let gf = Geofence::new().expect("geofence CLI");
    let meetings = [
        MeetingPorts::new("A", 40000, 40001),
        MeetingPorts::new("B", 41000, 41001),
    ];
    let load = vec![path.to_string_lossy().into_owned()];
    let world = World::start(gf, &specs, &meetings, &[load]).expect("setting up");
    let gf = &world.gf;

    for p in &world.scene.participants {
        let out = gf
            .run(&["geo", "lookup", &p.addr().to_string()])
            .expect("geo lookup");
        assert!(
            out.contains(&p.spec.territory),
            "geo lookup {} ({}) said {out:?}",
            p.addr(),
            p.spec.territory
        );
    }
    verify(&world, "no rule", |_, _| Expect::Pass);

    gf.run(&["block", "A", "--territory", "CN", "--order", "ORD-REAL-1"])
        .expect("block");
    let cn_on_a = |p: &Participant, m: &str| m == "A" && p.spec.territory == "CN";
    verify(&world, "after block A CN", |p, m| {
        if cn_on_a(p, m) {
            Expect::Drop
        } else {
            Expect::Pass
        }
    });

    let stats = gf.stats().expect("stats");
    assert!(
        stats.territory("A", "CN").dropped.packets > 0,
        "no CN drops on A: {}",
        stats.json
    );
    assert_eq!(
        stats.territory("B", "CN").dropped.packets,
        0,
        "CN drops on B: {}",
        stats.json
    );
    for cc in &COUNTRIES[1..] {
        let t = stats.territory("A", cc);
        assert_eq!(t.dropped.packets, 0, "{cc} dropped on A: {}", stats.json);
        assert!(t.passed.packets > 0, "no {cc} passes on A: {}", stats.json);
    }

    // One CN participant exempted by prefix.
    let exempt = world.participant("cn-2").addr().to_string();
    gf.run(&["allow", "A", "--prefix", &format!("{exempt}/32")])
        .expect("allow");
    let expect = |p: &Participant, m: &str| {
        if cn_on_a(p, m) && p.name() != "cn-2" {
            Expect::Drop
        } else {
            Expect::Pass
        }
    };
    verify(&world, "after allow cn-2", expect);
}
