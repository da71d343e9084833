//! `geofence daemon`: its `/metrics` scraped over loopback and parsed as Prometheus text,
//! a geo file rewritten on disk reloaded (and a broken one refused), an expired rule
//! removed and audited, and SIGTERM ending it with exit 0 and enforcement in place.

mod common;
mod daemon_support;
mod test_run;

use std::{fs, net::Ipv4Addr};

use common::{Dirs, root_with_bpffs};
use daemon_support::{Daemon, Netns, value};
use geofence::kernel;
use test_run::{Program, XDP_DROP, XDP_PASS, close, hosts, udp_frame};

const GEO_CSV: &str = "192.0.2.0,192.0.2.255,XA\n198.51.100.0,198.51.100.255,XB\n";

/// A setup every test shares: the geo fixture loaded, meetings A (udp 40000) and B.
/// Returns the IPv4 prefix count `geo load` reported.
fn set_up(d: &Dirs) -> (std::path::PathBuf, f64) {
    fs::create_dir_all(&d.state).expect("state dir");
    let geo = d.state.with_extension("csv");
    fs::write(&geo, GEO_CSV).expect("geo csv");
    let out = d.ok(&["geo", "load", geo.to_str().expect("utf-8 path")]);
    let v4: f64 = out
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no prefix count in {out:?}"));
    d.ok(&["meeting", "add", "A", "--endpoint", "udp:*:40000"]);
    d.ok(&["meeting", "add", "B", "--endpoint", "udp:*:41000"]);
    (geo, v4)
}

#[test]
fn metrics_show_meetings_counters_and_the_table() {
    if !root_with_bpffs("metrics_show_meetings_counters_and_the_table") {
        return;
    }
    let d = Dirs::new("dmetrics");
    let (_, v4) = set_up(&d);
    d.ok(&[
        "block",
        "A",
        "--territory",
        "XA",
        "--order",
        "ORD-7",
        "--for",
        "1h",
    ]);
    let daemon = Daemon::start(&d);

    let scrape = daemon.scrape();
    assert_eq!(
        value(&scrape, "geofence_up", &[]),
        Some(1.0),
        "{}",
        daemon.log()
    );
    assert_eq!(
        value(
            &scrape,
            "geofence_geo_table_prefixes",
            &[("family", "ipv4")]
        ),
        Some(v4)
    );
    assert_eq!(
        value(
            &scrape,
            "geofence_geo_table_prefixes",
            &[("family", "ipv6")]
        ),
        Some(0.0)
    );
    assert_eq!(
        value(&scrape, "geofence_meeting_rules", &[("meeting", "A")]),
        Some(1.0)
    );
    assert_eq!(
        value(&scrape, "geofence_meeting_rules", &[("meeting", "B")]),
        Some(0.0)
    );
    let expiry = value(
        &scrape,
        "geofence_rule_expiry_timestamp_seconds",
        &[("meeting", "A"), ("order", "ORD-7")],
    )
    .expect("the rule's expiry");
    let in_an_hour = jiff::Timestamp::now().as_second() as f64 + 3600.0;
    assert!(
        (expiry - in_an_hour).abs() < 120.0,
        "expiry {expiry}, expected about {in_an_hour}"
    );
    assert!(
        scrape.docs.contains_key("geofence_packets_total"),
        "HELP of the packet counters"
    );

    // One packet from XA to meeting A: dropped, and the counter says so with its bytes.
    let frame = udp_frame(
        Ipv4Addr::new(192, 0, 2, 7),
        Ipv4Addr::new(10, 0, 0, 1),
        40000,
        100,
    );
    let program = Program::load(&d.pin);
    assert_eq!(program.run(&frame), XDP_DROP);
    let dropped = [
        ("meeting", "A"),
        ("territory", "XA"),
        ("verdict", "dropped"),
    ];
    let scrape = daemon.wait_for("geofence_packets_total", &dropped, 1.0);
    assert_eq!(
        value(&scrape, "geofence_bytes_total", &dropped),
        Some(frame.len() as f64)
    );
    let passed = [("meeting", "A"), ("territory", "XA"), ("verdict", "passed")];
    assert_eq!(value(&scrape, "geofence_packets_total", &passed), Some(0.0));
    // No meeting on that port: counted as unclassified.
    let stray = udp_frame(
        Ipv4Addr::new(192, 0, 2, 7),
        Ipv4Addr::new(10, 0, 0, 1),
        9,
        10,
    );
    assert_eq!(program.run(&stray), XDP_PASS);
    daemon.wait_for(
        "geofence_unclassified_packets_total",
        &[("reason", "no_session")],
        1.0,
    );

    // A CLI change shows at the next scrape.
    d.ok(&[
        "block",
        "B",
        "--territory",
        "XB",
        "--order",
        "ORD-8",
        "--dry-run",
    ]);
    daemon.wait_for("geofence_meeting_rules", &[("meeting", "B")], 1.0);

    let (head, _) = daemon.get("/nothing-here");
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    assert!(daemon.terminate().success());
}

#[test]
fn metrics_show_what_each_rule_dropped_and_from_how_many_sources() {
    if !root_with_bpffs("metrics_show_what_each_rule_dropped_and_from_how_many_sources") {
        return;
    }
    let d = Dirs::new("drules");
    set_up(&d);
    d.ok(&["block", "A", "--territory", "XA", "--order", "ORD-A"]);
    d.ok(&[
        "block",
        "B",
        "--territory",
        "XB",
        "--order",
        "ORD-B",
        "--dry-run",
    ]);
    let daemon = Daemon::start(&d);
    let ord_a = [("meeting", "A"), ("order", "ORD-A"), ("mode", "enforce")];
    let ord_b = [("meeting", "B"), ("order", "ORD-B"), ("mode", "dry-run")];
    // Before any packet: listed, at zero.
    daemon.wait_for("geofence_rule_packets_total", &ord_a, 0.0);

    // 30 sources in XA, 2 frames each, to meeting A: dropped. 6 in XB, 3 each, to B:
    // passed under the dry run, counted as would-drop. XA to B and XB to A: no rule.
    let program = Program::load(&d.pin);
    let len = program.send(&hosts([192, 0, 2], 10, 30), 40000, 2, XDP_DROP);
    program.send(&hosts([198, 51, 100], 10, 6), 41000, 3, XDP_PASS);
    program.send(&hosts([192, 0, 2], 200, 4), 41000, 1, XDP_PASS);
    program.send(&hosts([198, 51, 100], 200, 4), 40000, 1, XDP_PASS);

    let scrape = daemon.wait_for("geofence_rule_packets_total", &ord_a, 60.0);
    assert_eq!(
        value(&scrape, "geofence_rule_bytes_total", &ord_a),
        Some((60 * len) as f64)
    );
    assert_eq!(
        value(&scrape, "geofence_rule_packets_total", &ord_b),
        Some(18.0)
    );
    assert_eq!(
        value(&scrape, "geofence_rule_bytes_total", &ord_b),
        Some((18 * len) as f64)
    );
    for (labels, truth) in [(&ord_a, 30), (&ord_b, 6)] {
        let estimate = value(&scrape, "geofence_rule_distinct_sources", labels)
            .unwrap_or_else(|| panic!("no distinct-source estimate for {labels:?}"));
        assert!(
            close(estimate, truth),
            "{labels:?}: estimated {estimate} distinct sources, sent from {truth}"
        );
    }
    let types = |name: &str| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name)
            .map(|s| format!("{:?}", s.value))
    };
    assert!(
        types("geofence_rule_packets_total").is_some_and(|t| t.starts_with("Counter")),
        "{:?}",
        types("geofence_rule_packets_total")
    );
    assert!(
        types("geofence_rule_distinct_sources").is_some_and(|t| t.starts_with("Gauge")),
        "{:?}",
        types("geofence_rule_distinct_sources")
    );
    assert!(daemon.terminate().success());
}

#[test]
fn scrapes_follow_maps_replaced_by_restore() {
    if !root_with_bpffs("scrapes_follow_maps_replaced_by_restore") {
        return;
    }
    let d = Dirs::new("drestore");
    set_up(&d);
    d.ok(&["block", "A", "--territory", "XA", "--order", "ORD-A"]);
    let daemon = Daemon::start(&d);
    let ord_a = [("meeting", "A"), ("order", "ORD-A"), ("mode", "enforce")];
    Program::load(&d.pin).send(&hosts([192, 0, 2], 10, 5), 40000, 1, XDP_DROP);
    daemon.wait_for("geofence_rule_packets_total", &ord_a, 5.0);

    // As after a reboot: the pins are gone, and restore makes new maps.
    for entry in fs::read_dir(&d.pin).expect("pin dir").flatten() {
        fs::remove_file(entry.path()).expect("unpinning");
    }
    daemon.wait_for("geofence_maps_pinned", &[], 0.0);
    d.ok(&["restore"]);
    Program::load(&d.pin).send(&hosts([192, 0, 2], 20, 2), 40000, 1, XDP_DROP);
    // Maps kept open from before would still say 5.
    let scrape = daemon.wait_for("geofence_rule_packets_total", &ord_a, 2.0);
    assert_eq!(
        value(
            &scrape,
            "geofence_packets_total",
            &[
                ("meeting", "A"),
                ("territory", "XA"),
                ("verdict", "dropped")
            ]
        ),
        Some(2.0)
    );
    assert!(daemon.terminate().success());
}

#[test]
fn a_rewritten_geo_file_is_reloaded_and_a_broken_one_refused() {
    if !root_with_bpffs("a_rewritten_geo_file_is_reloaded_and_a_broken_one_refused") {
        return;
    }
    let d = Dirs::new("dreload");
    let (geo, v4) = set_up(&d);
    let daemon = Daemon::start(&d);
    daemon.wait_for("geofence_geo_table_prefixes", &[("family", "ipv4")], v4);
    assert!(d.ok(&["geo", "lookup", "203.0.113.9"]).contains("unknown"));
    d.ok(&["block", "A", "--territory", "XC", "--order", "ORD-9"]);

    // Replaced by rename, as a downloader would: one more range, for XC.
    let next = d.state.join("next.csv");
    fs::write(&next, format!("{GEO_CSV}203.0.113.0,203.0.113.255,XC\n")).expect("csv");
    fs::rename(&next, &geo).expect("rename");
    daemon.wait_for(
        "geofence_geo_table_prefixes",
        &[("family", "ipv4")],
        v4 + 1.0,
    );
    daemon.wait_for("geofence_geo_reloads_total", &[("result", "ok")], 1.0);
    assert!(d.ok(&["geo", "lookup", "203.0.113.9"]).contains("XC"));
    // The log says what moved and what ORD-9 newly blocks; /metrics names the new table.
    daemon.wait_for_log(
        "the reloaded territory table changes: 256 IPv4 addresses in 1 prefix change \
         territory; IPv4 largest: -- → XC 256 addresses; A (ORD-9): newly blocked: 256 IPv4 \
         addresses in 1 prefix",
    );
    let (sha, _) = geofence::audit::file_digest(&geo).expect("digest");
    let info = [("sha256", sha.as_str()), ("format", "csv")];
    daemon.wait_for("geofence_geo_table_info", &info, 1.0);
    let audit = d.read_state("audit.jsonl");
    assert!(
        audit
            .lines()
            .last()
            .is_some_and(|l| l.contains("\"geo load\"") && l.contains("daemon")),
        "{audit}"
    );

    // Rewritten in place with a bad row: refused, logged, the table stays.
    fs::write(&geo, "203.0.113.0,203.0.113.255,XD\n10.0.0.9,10.0.0.1,XB\n").expect("csv");
    daemon.wait_for("geofence_geo_reloads_total", &[("result", "failed")], 1.0);
    assert!(d.ok(&["geo", "lookup", "203.0.113.9"]).contains("XC"));
    assert!(
        daemon.log().contains(":2:"),
        "the log names the bad line:\n{}",
        daemon.log()
    );

    // Fixed: the next change is picked up.
    fs::write(&geo, "203.0.113.0,203.0.113.255,XD\n").expect("csv");
    daemon.wait_for("geofence_geo_reloads_total", &[("result", "ok")], 2.0);
    assert!(d.ok(&["geo", "lookup", "203.0.113.9"]).contains("XD"));
    daemon.wait_for("geofence_geo_table_prefixes", &[("family", "ipv4")], 1.0);
}

#[test]
fn an_expired_rule_is_removed_and_sigterm_leaves_enforcement() {
    if !root_with_bpffs("an_expired_rule_is_removed_and_sigterm_leaves_enforcement") {
        return;
    }
    let d = Dirs::new("dexpire");
    set_up(&d);
    // Something attached, so there is a link pin to outlive the daemon.
    let ns = format!("gfd{}", std::process::id());
    let _ns = Netns::new(&ns);
    d.ok(&["attach", "lo", "--netns", &ns, "--mode", "skb"]);
    d.ok(&[
        "block",
        "A",
        "--territory",
        "XA",
        "--order",
        "ORD-EXP",
        "--for",
        "2s",
    ]);
    d.ok(&["block", "A", "--territory", "XB", "--order", "ORD-KEEP"]);
    let daemon = Daemon::start(&d);

    daemon.wait_for("geofence_expired_rules_removed_total", &[], 1.0);
    let state = d.read_state("state.json");
    assert!(
        !state.contains("ORD-EXP") && state.contains("ORD-KEEP"),
        "{state}"
    );
    let audit = d.read_state("audit.jsonl");
    let expire = audit
        .lines()
        .find(|l| l.contains("\"action\":\"expire\""))
        .expect("an expire entry");
    assert!(
        expire.contains("ORD-EXP") && !expire.contains("ORD-KEEP"),
        "{expire}"
    );

    let status = daemon.terminate();
    assert_eq!(status.code(), Some(0), "exit status {status}");
    assert!(
        kernel::link_pinned(&d.pin, "lo", Some(&ns)),
        "the link pin is gone"
    );
    assert!(d.pin.join("POLICIES").exists(), "the maps' pins are gone");
    assert!(d.ok(&["geo", "lookup", "192.0.2.1"]).contains("XA"));
    d.ok(&["detach", "lo", "--netns", &ns]);
}

#[test]
fn sigterm_waits_for_a_change_under_way() {
    if !root_with_bpffs("sigterm_waits_for_a_change_under_way") {
        return;
    }
    let d = Dirs::new("dstop");
    set_up(&d);
    d.ok(&[
        "block",
        "A",
        "--territory",
        "XA",
        "--order",
        "ORD-LATE",
        "--for",
        "1s",
    ]);
    // Hold the change lock, as a long CLI command would: the daemon's expiry must wait.
    let lock = fs::OpenOptions::new()
        .write(true)
        .open(d.state.join("lock"))
        .expect("the lock file");
    let held = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .expect("taking the lock");
    let mut daemon = Daemon::start(&d);
    daemon.wait_for_log("waiting for another geofence command");
    daemon.signal(libc::SIGTERM);
    // No timing is asserted: only that it is still there while its change waits.
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        daemon.exited().is_none(),
        "exited with a change under way:\n{}",
        daemon.log()
    );
    drop(held);
    let status = daemon.terminate();
    assert_eq!(status.code(), Some(0), "exit status {status}");
    let audit = d.read_state("audit.jsonl");
    assert!(
        audit
            .lines()
            .last()
            .is_some_and(|l| l.contains("\"expire\"") && l.contains("ORD-LATE")),
        "the change finished before the exit:\n{audit}"
    );
    assert!(!d.read_state("state.json").contains("ORD-LATE"));
}

#[test]
fn a_busy_address_or_a_bad_poll_is_refused_naming_it() {
    if !root_with_bpffs("a_busy_address_or_a_bad_poll_is_refused_naming_it") {
        return;
    }
    let d = Dirs::new("dbusy");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let addr = taken.local_addr().expect("address").to_string();
    let err = d.fails(&["daemon", "--listen", &addr]);
    assert!(err.contains(&format!("--listen {addr}")), "{err}");
    let err = d.fails(&["daemon", "--poll", "5x"]);
    assert!(err.contains("--poll") && err.contains("5x"), "{err}");
}
