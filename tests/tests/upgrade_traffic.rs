//! `geofence upgrade` under traffic: a relay namespace with a UDP socket, and a peer that
//! keeps writing frames to the wire from a blocked and an allowed source while the program
//! and its maps are replaced. No blocked frame may reach the socket across the swap, the
//! allowed source keeps arriving, and the interface ends up on a new program that holds the
//! rules. Then the same with pins of another layout (what an older version left): every
//! other command refuses them, `upgrade` replaces them; an upgrade left unfinished blocks
//! other commands until `upgrade` runs again; and `upgrade` killed at points across its
//! run is finished by the next one, the blocked source never arriving.
//!
//! The machine has one build, so the new program is this build's again: moving a link
//! onto it is the same kernel call whatever its code.
//!
//! Needs root; skipped otherwise.

#[path = "upgrade_traffic/relay.rs"]
mod relay;

use std::sync::atomic::Ordering;
use std::time::Instant;

use geofence_tests::sys::require_root;
use relay::{assert_rule_in_status, pin_empty_like, program_of, relay};

#[test]
fn an_upgrade_under_traffic_never_lets_the_blocked_source_through() {
    if !require_root("an_upgrade_under_traffic_never_lets_the_blocked_source_through") {
        return;
    }
    let r = relay();
    // A ufrag the SFU registered: only the kernel holds it, so the upgrade copies it.
    r.gf.run(&["mux", "add", "udp:*:7882"]).expect("mux add");
    r.gf.run(&["meeting", "add", "sfu"]).expect("meeting add");
    r.gf.run(&["ufrag", "add", "sfu", "Xk3fA9pQ"])
        .expect("ufrag add");
    let before = program_of(&r.link);
    let (sent, started) = (r.traffic.sent.load(Ordering::Relaxed), Instant::now());
    let out = r.gf.run(&["upgrade"]).expect("upgrade");
    println!(
        "upgrade took {:?}, while the peer sent {} frames from each source",
        started.elapsed(),
        r.traffic.sent.load(Ordering::Relaxed) - sent
    );
    let after = program_of(&r.link);
    assert_ne!(after, before, "the link runs a new program: {out}");
    assert!(
        out.contains(&format!("program {before} -> {after}")),
        "upgrade names both programs: {out}"
    );
    assert!(
        out.contains("1 ufrag registration carried over"),
        "upgrade carries the ufrag over: {out}"
    );
    let (_, allowed) = r.traffic.counts();
    r.traffic.wait_allowed(allowed, 200);
    // Again, from the new program: what a re-run after a finished upgrade does.
    r.gf.run(&["upgrade"]).expect("second upgrade");
    let last = program_of(&r.link);
    assert_ne!(last, after, "the second upgrade moves the link again");
    let (_, allowed) = r.traffic.counts();
    r.traffic.wait_allowed(allowed, 200);
    let (blocked, allowed) = r.traffic.counts();
    let sent = r.traffic.sent.load(Ordering::Relaxed);
    assert_eq!(
        blocked, 0,
        "blocked frames delivered across the swaps ({sent} sent)"
    );
    // Lost allowed frames would be a gap in the filter or the socket buffer overflowing;
    // the socket keeps up with 5,000 frames a second.
    assert!(
        allowed * 100 >= sent * 99,
        "the allowed source kept arriving: {allowed} of {sent}"
    );
    assert_rule_in_status(&r.gf, last);
    let status: serde_json::Value =
        serde_json::from_str(&r.gf.run(&["status", "--json"]).expect("status")).expect("json");
    let sfu = status["meetings"]
        .as_array()
        .expect("meetings")
        .iter()
        .find(|m| m["name"] == "sfu")
        .expect("meeting sfu");
    assert_eq!(sfu["bindings"]["ufrags"], 1, "the ufrag survives: {sfu}");
    let pins: Vec<String> = std::fs::read_dir(r.gf.pin_dir())
        .expect("pin dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !pins.contains(&"next".to_string()),
        "next/ is gone: {pins:?}"
    );
    assert_eq!(
        pins.iter().filter(|p| p.starts_with("prog_")).count(),
        1,
        "one program pin: {pins:?}"
    );
    let audit = std::fs::read_to_string(r.gf.temp_dir().join("state/audit.jsonl")).expect("audit");
    assert!(
        audit.lines().filter(|l| l.contains("\"upgrade\"")).count() == 2,
        "two upgrade entries in the audit trail"
    );
    // The usual pin names now reach the new program's maps: lifting the rule there lets
    // the blocked source through, which also shows its frames would have arrived.
    r.gf.run(&["unblock", "m", "--territory", "XA"])
        .expect("unblock");
    r.traffic.wait_blocked_arrives();
}

#[test]
fn pins_of_another_layout_and_an_unfinished_upgrade_are_finished_by_upgrade() {
    if !require_root("pins_of_another_layout_and_an_unfinished_upgrade_are_finished_by_upgrade") {
        return;
    }
    let r = relay();
    let before = program_of(&r.link);
    // What an older version's pins look like to this one: MUX_CONFIG with another value
    // size and entry count. The attached program keeps its own map.
    let mux_config = r.gf.pin_dir().join("MUX_CONFIG");
    std::fs::remove_file(&mux_config).expect("unpinning MUX_CONFIG");
    geofence_tests::sys::run(
        "bpftool",
        &[
            "map",
            "create",
            &mux_config.to_string_lossy(),
            "type",
            "array",
            "key",
            "4",
            "value",
            "4",
            "entries",
            "2",
            "name",
            "MUX_CONFIG",
        ],
    )
    .expect("bpftool map create");
    let refused =
        r.gf.run(&["unblock", "m", "--territory", "XA"])
            .expect_err("pins of another layout are refused");
    assert!(
        format!("{refused:#}").contains("MUX_CONFIG is pinned with"),
        "the refusal names the map: {refused:#}"
    );
    // A recorded table file gone: refused, naming it, before anything is made.
    let table = r.gf.temp_dir().join("xa.txt");
    let moved = r.gf.temp_dir().join("xa.txt.away");
    std::fs::rename(&table, &moved).expect("moving the table file away");
    let refused = r.gf.run(&["upgrade"]).expect_err("a missing table file");
    assert!(
        format!("{refused:#}").contains(&format!("{}: the territory table file", table.display())),
        "the refusal names the file: {refused:#}"
    );
    assert!(!r.gf.pin_dir().join("next").exists(), "nothing staged");
    assert_eq!(program_of(&r.link), before, "the link was not touched");
    std::fs::rename(&moved, &table).expect("moving the table file back");
    let out = r.gf.run(&["upgrade"]).expect("upgrade over another layout");
    let after = program_of(&r.link);
    assert_ne!(after, before, "{out}");

    // An upgrade killed while renaming the new pins over the old names: the running
    // POLICIES is still under next/, and the usual name holds an old, empty one that no
    // program reads. (Kills rarely land in that millisecond; this builds it on purpose.)
    let policies = r.gf.pin_dir().join("POLICIES");
    std::fs::create_dir(r.gf.pin_dir().join("next")).expect("next/");
    std::fs::rename(&policies, r.gf.pin_dir().join("next/POLICIES")).expect("rename");
    pin_empty_like(&r.gf.pin_dir().join("next/POLICIES"), &policies);
    let refused =
        r.gf.run(&["meeting", "add", "n", "--endpoint", "udp:*:40100"])
            .expect_err("an unfinished upgrade is refused");
    assert!(
        format!("{refused:#}").contains("`geofence upgrade` again"),
        "the refusal says what to do: {refused:#}"
    );
    r.gf.run(&["upgrade"])
        .expect("upgrade finishes the unfinished one");
    r.gf.run(&["meeting", "add", "n", "--endpoint", "udp:*:40100"])
        .expect("commands work again");
    let (_, allowed) = r.traffic.counts();
    r.traffic.wait_allowed(allowed, 200);
    let (blocked, _) = r.traffic.counts();
    assert_eq!(blocked, 0, "no blocked frame delivered");
    assert_rule_in_status(&r.gf, program_of(&r.link));
    // The usual names reach the running program's maps again.
    r.gf.run(&["unblock", "m", "--territory", "XA"])
        .expect("unblock");
    r.traffic.wait_blocked_arrives();
}

#[test]
fn an_upgrade_killed_at_any_point_is_finished_by_the_next_one() {
    if !require_root("an_upgrade_killed_at_any_point_is_finished_by_the_next_one") {
        return;
    }
    let r = relay();
    let bin = geofence_tests::cli::geofence_bin().expect("the geofence binary");
    let state_dir = r.gf.temp_dir().join("state");
    let started = Instant::now();
    r.gf.run(&["upgrade"]).expect("a whole upgrade");
    let whole = started.elapsed();
    // Kills over the whole run, by outcome: before `next/` was made, with `next/` made
    // but no link moved, with the link moved but pins not renamed, after the end.
    let mut outcomes = [0; 4];
    let points = [10, 25, 40, 55, 70, 85, 95, 100, 110];
    for percent in points {
        let before = program_of(&r.link);
        let mut child = std::process::Command::new(&bin)
            .arg("--pin-dir")
            .arg(r.gf.pin_dir())
            .arg("--state-dir")
            .arg(&state_dir)
            .arg("upgrade")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawning geofence upgrade");
        std::thread::sleep(whole * percent / 100);
        // SIGKILL: no cleanup of any kind, as a crash or a power cut mid-way.
        let _ = child.kill();
        child.wait().expect("wait");
        let unfinished = r.gf.pin_dir().join("next").exists();
        let moved = program_of(&r.link) != before;
        outcomes[match (unfinished, moved) {
            (false, false) => 0,
            (true, false) => 1,
            (true, true) => 2,
            (false, true) => 3,
        }] += 1;
        let (blocked, allowed) = r.traffic.counts();
        assert_eq!(
            blocked, 0,
            "a blocked frame arrived after a kill at {percent}%"
        );
        r.gf.run(&["upgrade"])
            .unwrap_or_else(|e| panic!("the upgrade after a kill at {percent}%: {e:#}"));
        assert!(!r.gf.pin_dir().join("next").exists(), "the re-run finished");
        r.traffic.wait_allowed(allowed, 100);
    }
    println!(
        "a whole upgrade took {whole:?}; of {} kills, {} landed before the new maps were \
         made, {} before the link moved, {} after it moved but before the pins were renamed, \
         {} after the end",
        points.len(),
        outcomes[0],
        outcomes[1],
        outcomes[2],
        outcomes[3]
    );
    assert!(outcomes[1] + outcomes[2] > 0, "no kill landed mid-upgrade");
    assert_eq!(r.traffic.counts().0, 0, "no blocked frame arrived");
    assert_rule_in_status(&r.gf, program_of(&r.link));
    r.gf.run(&["unblock", "m", "--territory", "XA"])
        .expect("unblock");
    r.traffic.wait_blocked_arrives();
}
