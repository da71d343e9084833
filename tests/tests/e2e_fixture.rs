//! End-to-end scenarios on a fixture geo table of TEST-NET addresses (territories XA, XB,
//! XC): a relay namespace with geofence on its `eth0`, participants in their own
//! namespaces streaming UDP media to, and signaling over TCP with, two meetings.

use std::thread;
use std::time::{Duration, Instant};

use geofence_tests::netns;
use geofence_tests::require_root;
use geofence_tests::world::{Expect, World, observe, wait_flowing, write_file};
use geofence_tests::{Geofence, Media, MeetingPorts, Participant, ParticipantSpec, Scene};

fn participants() -> Vec<ParticipantSpec> {
    vec![
        ParticipantSpec::new("xa-1", "192.0.2.10", "XA"),
        ParticipantSpec::new("xa-2", "192.0.2.20", "XA"),
        ParticipantSpec::new("xa-v6", "2001:db8:a::10", "XA"),
        ParticipantSpec::new("xb-1", "198.51.100.10", "XB"),
        ParticipantSpec::new("xc-1", "203.0.113.10", "XC"),
        ParticipantSpec::new("xc-2", "203.0.113.20", "XC"),
    ]
}

fn meetings() -> Vec<MeetingPorts> {
    vec![
        MeetingPorts::new("A", 40000, 40001),
        MeetingPorts::new("B", 41000, 41001),
    ]
}

/// The harness on its own, no filter: UDP both ways and TCP work for every pair, and every
/// namespace is gone after Drop.
#[test]
fn harness_baseline() {
    if !require_root("harness_baseline") {
        return;
    }
    let scene = Scene::build(&participants()).expect("building the scene");
    let names = scene.namespaces();
    {
        let media = Media::start(&scene, &meetings()).expect("starting media");
        let pairs: Vec<_> = scene
            .participants
            .iter()
            .flat_map(|p| meetings().into_iter().map(move |m| (p, m.name)))
            .collect();
        let pairs: Vec<_> = pairs.iter().map(|(p, m)| (*p, m.as_str())).collect();
        wait_flowing(&media, &pairs, Duration::from_secs(3)).expect("streams never flowed");
        let report = observe(&media, &pairs);
        println!("{}", report.table(|_| ""));
        if let Err(table) = report.check(|_, _| Expect::Pass) {
            panic!("without a filter everything must get through:\n{table}");
        }
    }
    drop(scene);
    let left: Vec<String> = netns::list()
        .expect("ip netns list")
        .into_iter()
        .filter(|n| names.contains(n))
        .collect();
    assert!(left.is_empty(), "namespaces left after Drop: {left:?}");
}

/// The fixture table: one file per family, loaded in one `geo load`.
fn fixture_world(test: &str) -> Option<World> {
    if !require_root(test) {
        return None;
    }
    let gf = Geofence::new().expect("geofence CLI");
    let dir = gf.temp_dir().to_owned();
    let v4 = [
        "192.0.2.0,192.0.2.255,XA",
        "198.51.100.0,198.51.100.255,XB",
        "203.0.113.0,203.0.113.255,XC",
    ];
    let v4 = write_file(&dir, "fixture-v4.csv", &v4).expect("writing the IPv4 table");
    let v6 = ["2001:db8:a::,2001:db8:a:ffff:ffff:ffff:ffff:ffff,XA"];
    let v6 = write_file(&dir, "fixture-v6.csv", &v6).expect("writing the IPv6 table");
    let world = World::start(gf, &participants(), &meetings(), &[vec![v4, v6]]);
    Some(world.expect("setting up the scene, geofence and media"))
}

/// Expect a drop exactly for the pairs `dropped` selects.
fn drops(dropped: impl Fn(&Participant, &str) -> bool) -> impl Fn(&Participant, &str) -> Expect {
    move |p, m| {
        if dropped(p, m) {
            Expect::Drop
        } else {
            Expect::Pass
        }
    }
}

fn verify(world: &World, when: &str, expect: impl Fn(&Participant, &str) -> Expect) {
    if let Err(table) = world.verify(expect) {
        panic!("{when}: traffic is not as expected:\n{table}");
    }
}

fn in_territory(p: &Participant, cc: &str) -> bool {
    p.spec.territory == cc
}

/// With geofence attached and no rule, everyone reaches both meetings, and the CLI's
/// lookup agrees with the fixture table.
#[test]
fn attached_without_rules_passes_everything() {
    let Some(world) = fixture_world("attached_without_rules_passes_everything") else {
        return;
    };
    for p in &world.scene.participants {
        let out = world
            .gf
            .run(&["geo", "lookup", &p.addr().to_string()])
            .expect("geo lookup");
        assert!(
            out.contains(&p.spec.territory),
            "geo lookup {} said {out:?}",
            p.addr()
        );
    }
    let list = world.gf.run(&["meeting", "list"]).expect("meeting list");
    assert!(
        list.contains('A') && list.contains('B'),
        "meeting list: {list:?}"
    );
    verify(&world, "no rule", |_, _| Expect::Pass);
}

/// `block A --territory XA`: XA stopped on A only (UDP and TCP), counted as dropped;
/// everyone else untouched; `unblock` restores it.
#[test]
fn block_territory_on_one_meeting_then_unblock() {
    let Some(world) = fixture_world("block_territory_on_one_meeting_then_unblock") else {
        return;
    };
    let gf = &world.gf;
    gf.run(&["block", "A", "--territory", "XA", "--order", "ORD-1"])
        .expect("block");
    verify(
        &world,
        "after block A XA",
        drops(|p, m| m == "A" && in_territory(p, "XA")),
    );

    let stats = gf.stats().expect("stats");
    let (on_a, on_b) = (stats.territory("A", "XA"), stats.territory("B", "XA"));
    assert!(
        on_a.dropped.packets > 0,
        "no XA drops counted on A: {}",
        stats.json
    );
    assert_eq!(
        on_b.dropped.packets, 0,
        "XA drops counted on B: {}",
        stats.json
    );
    assert!(
        on_b.passed.packets > 0,
        "no XA passes counted on B: {}",
        stats.json
    );
    assert_eq!(
        stats.territory("A", "XB").dropped.packets,
        0,
        "XB dropped: {}",
        stats.json
    );
    let status = gf.run(&["status"]).expect("status");
    assert!(
        status.contains("ORD-1"),
        "status does not show the order: {status}"
    );

    gf.run(&["unblock", "A", "--territory", "XA"])
        .expect("unblock");
    verify(&world, "after unblock A XA", |_, _| Expect::Pass);
}

/// A block issued while an XA participant streams cuts it off within 100 ms of the
/// `geofence block` process returning, and nothing gets through after that.
#[test]
fn block_cuts_off_a_live_stream_within_100ms() {
    let Some(world) = fixture_world("block_cuts_off_a_live_stream_within_100ms") else {
        return;
    };
    let media = &world.media;
    thread::sleep(Duration::from_millis(200));
    let before = media.snapshot();
    let args = ["block", "A", "--territory", "XA", "--order", "ORD-1"];
    let (_, returned) = world.gf.run_timed(&args).expect("block");
    let live = before
        .row("xa-1", "A")
        .last_received
        .expect("xa-1 never reached A");
    assert!(
        before.at - live < Duration::from_millis(50),
        "xa-1 was not streaming to A"
    );

    thread::sleep(Duration::from_millis(400));
    let settled = media.snapshot();
    thread::sleep(Duration::from_millis(300));
    let later = media.snapshot();
    for who in ["xa-1", "xa-2", "xa-v6"] {
        let last = settled.row(who, "A").last_received.expect("never received");
        match last.checked_duration_since(returned) {
            Some(d) => println!("{who}: last packet on A {d:?} after `block` returned"),
            None => println!(
                "{who}: last packet on A {:?} before `block` returned",
                returned - last
            ),
        }
        assert!(
            last <= returned + Duration::from_millis(100),
            "{who}: relay still received on A {:?} after `geofence block` returned",
            last - returned
        );
        let (s, l) = (settled.row(who, "A"), later.row(who, "A"));
        assert_eq!(
            s.received, l.received,
            "{who}: packets reached A after the cut-off"
        );
        assert!(l.sent > s.sent, "{who}: stopped sending");
        let (s, l) = (settled.row(who, "B"), later.row(who, "B"));
        assert!(l.received > s.received, "{who}: B stopped receiving");
    }
    let (s, l) = (settled.row("xb-1", "A"), later.row("xb-1", "A"));
    assert!(l.received > s.received, "xb-1: A stopped receiving");
}

/// `--dry-run` passes everything but counts XA's packets on A as would-drop.
#[test]
fn dry_run_passes_and_counts_would_drop() {
    let Some(world) = fixture_world("dry_run_passes_and_counts_would_drop") else {
        return;
    };
    let args = [
        "block",
        "A",
        "--territory",
        "XA",
        "--order",
        "ORD-2",
        "--dry-run",
    ];
    world.gf.run(&args).expect("block --dry-run");
    verify(&world, "after a dry-run block", |_, _| Expect::Pass);
    let stats = world.gf.stats().expect("stats");
    let xa = stats.territory("A", "XA");
    assert!(
        xa.would_drop.packets > 0,
        "no would_drop for XA on A: {}",
        stats.json
    );
    assert_eq!(
        xa.dropped.packets, 0,
        "dry run dropped XA on A: {}",
        stats.json
    );
    let xb = stats.territory("A", "XB");
    assert_eq!(
        xb.would_drop.packets, 0,
        "would_drop counted for XB: {}",
        stats.json
    );
    assert_eq!(
        stats.territory("B", "XA").would_drop.packets,
        0,
        "B: {}",
        stats.json
    );
}

/// `--for 2s`: XB blocked on A, then flowing again after the expiry, with no geofence
/// process running.
#[test]
fn timed_block_expires_by_itself() {
    let Some(world) = fixture_world("timed_block_expires_by_itself") else {
        return;
    };
    let args = [
        "block",
        "A",
        "--territory",
        "XB",
        "--order",
        "ORD-3",
        "--for",
        "2s",
    ];
    let (_, returned) = world.gf.run_timed(&args).expect("block --for 2s");
    verify(
        &world,
        "during a 2 s block of XB",
        drops(|p, m| m == "A" && in_territory(p, "XB")),
    );
    assert!(
        returned.elapsed() < Duration::from_millis(1500),
        "check ran too late"
    );

    let expiry = returned + Duration::from_millis(2300);
    thread::sleep(expiry.saturating_duration_since(Instant::now()));
    let running = world.gf.processes();
    assert!(
        running.is_empty(),
        "geofence processes still running: {running:?}"
    );
    verify(&world, "after the 2 s block expired", |_, _| Expect::Pass);
}

/// `--prefix` (one IPv4 /32, one IPv6 /128) blocks those two participants only.
#[test]
fn prefix_block_hits_one_participant() {
    let Some(world) = fixture_world("prefix_block_hits_one_participant") else {
        return;
    };
    let (xc1, xa_v6) = ("203.0.113.10/32", "2001:db8:a::10/128");
    let args = [
        "block", "A", "--prefix", xc1, "--prefix", xa_v6, "--order", "ORD-4",
    ];
    world.gf.run(&args).expect("block --prefix");
    let hit = |p: &Participant| p.name() == "xc-1" || p.name() == "xa-v6";
    verify(
        &world,
        "after block A xc-1/32 xa-v6/128",
        drops(|p, m| m == "A" && hit(p)),
    );
}

/// A territory block with an allowed prefix: that participant passes, the rest of XA not.
/// `unblock A` with no selector then lifts every rule of A.
#[test]
fn allow_prefix_overrides_territory_block() {
    let Some(world) = fixture_world("allow_prefix_overrides_territory_block") else {
        return;
    };
    let gf = &world.gf;
    gf.run(&["block", "A", "--territory", "XA", "--order", "ORD-5"])
        .expect("block");
    gf.run(&["allow", "A", "--prefix", "192.0.2.10/32"])
        .expect("allow");
    let expect = drops(|p, m| m == "A" && in_territory(p, "XA") && p.name() != "xa-1");
    verify(&world, "after block A XA + allow 192.0.2.10/32", expect);
    gf.run(&["unblock", "A"]).expect("unblock A");
    verify(&world, "after unblock A", |_, _| Expect::Pass);
}
