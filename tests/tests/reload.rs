//! No gap under reload: with a participant from a blocked territory and one from an
//! allowed territory streaming, reload the full real table 100 times while unrelated
//! meetings come and go. The filter must drop none of the allowed participant's packets
//! and deliver none of the blocked one's.

use std::path::{Path, PathBuf};

use geofence_tests::{Geofence, MeetingPorts, ParticipantSpec, require_root, world::World};

const RELOADS: usize = 100;

fn geo_file(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/geo")
        .join(name);
    path.canonicalize().unwrap_or(path)
}

/// The first address of the first range of `cc` in the IPv4 table.
fn first_address(csv: &str, cc: &str) -> String {
    csv.lines()
        .map(|l| l.split(',').collect::<Vec<_>>())
        .find(|f| f.len() == 3 && f[2] == cc)
        .map(|f| f[0].to_string())
        .unwrap_or_else(|| panic!("no {cc} range in the table"))
}

#[test]
fn reloads_under_traffic_open_no_gap() {
    if !require_root("reloads_under_traffic_open_no_gap") {
        return;
    }
    let v4 = geo_file("geo-whois-asn-country-ipv4.csv");
    let v6 = geo_file("geo-whois-asn-country-ipv6.csv");
    let Ok(csv) = std::fs::read_to_string(&v4) else {
        eprintln!(
            "skipping reloads_under_traffic_open_no_gap: no table at {}",
            v4.display()
        );
        return;
    };
    let specs = [
        ParticipantSpec::new("blocked", &first_address(&csv, "CN"), "CN"),
        ParticipantSpec::new("allowed", &first_address(&csv, "US"), "US"),
    ];
    let load: Vec<String> = [&v4, &v6]
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let world = World::start(
        Geofence::new().expect("geofence CLI"),
        &specs,
        &[MeetingPorts::new("A", 40000, 40001)],
        std::slice::from_ref(&load),
    )
    .expect("setting up");
    let gf = &world.gf;
    gf.run(&["block", "A", "--territory", "CN", "--order", "ORD-RELOAD"])
        .expect("block");
    let start = world.media.snapshot();

    let mut args = vec!["geo", "load"];
    args.extend(load.iter().map(String::as_str));
    for i in 0..RELOADS {
        gf.run(&args)
            .unwrap_or_else(|e| panic!("reload {i}: {e:#}"));
        if i % 10 == 0 {
            let port = format!("udp:*:{}", 50000 + i);
            gf.run(&["meeting", "add", "other", "--endpoint", &port])
                .expect("meeting add");
            gf.run(&[
                "block",
                "other",
                "--territory",
                "US",
                "--order",
                "ORD-OTHER",
            ])
            .expect("block other");
        }
        if i % 10 == 5 {
            gf.run(&["meeting", "del", "other"]).expect("meeting del");
        }
    }
    let window = world.media.snapshot().since(&start);

    let blocked = window.get("blocked", "A");
    let allowed = window.get("allowed", "A");
    eprintln!(
        "{RELOADS} reloads in {:.1}s: blocked sent {} / relay received {}; allowed sent {} / received {} / echoed {}",
        window.length.as_secs_f64(),
        blocked.sent,
        blocked.received,
        allowed.sent,
        allowed.received,
        allowed.echoed
    );
    assert!(
        blocked.sent > 100 && allowed.sent > 100,
        "too little traffic to judge"
    );
    assert_eq!(
        blocked.received, 0,
        "blocked packets reached the relay during reloads"
    );
    let stats = gf.stats().expect("stats");
    let us = stats.territory("A", "US");
    assert_eq!(
        (us.dropped.packets, us.would_drop.packets),
        (0, 0),
        "the filter dropped packets of the allowed participant: {}",
        stats.json
    );
    // The filter's own counters above are the proof; the receiver's count corroborates it
    // (a few packets may be in flight at the snapshot, or lost to a busy machine's sockets).
    assert!(
        allowed.received * 100 >= allowed.sent * 99,
        "allowed participant lost packets: sent {}, received {}",
        allowed.sent,
        allowed.received
    );
    assert!(stats.territory("A", "CN").dropped.packets >= blocked.sent);
}
