//! End-to-end scenarios on a fixture geo table of TEST-NET addresses (territories XA, XB,
//! XC): a relay namespace with geofence on its `eth0`, participants in their own
//! namespaces streaming UDP media to, and signaling over TCP with, two meetings.

use std::time::Duration;

use geofence_tests::netns;
use geofence_tests::world::{Expect, observe, wait_flowing};
use geofence_tests::{Media, MeetingPorts, ParticipantSpec, Scene, require_root};

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
