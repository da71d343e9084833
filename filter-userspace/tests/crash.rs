//! Crash safety: SIGKILL the CLI at random points of `block`, `unblock` and `geo load`.
//! Afterwards the state file is whole, the next command works without repair, and once it
//! has run the kernel maps hold exactly what the state file says. A killed `geo load`
//! leaves packets on one whole table, never a mix of two. A killed `block` or `unblock` of
//! a rule with many prefixes leaves, before anything else runs, the whole old rules or the
//! whole new ones in force (`crash_bound`), and so does a killed run of every other command
//! that changes the kernel (`crash_bound::every`).

mod common;
mod crash_bound;

use std::{
    fs,
    process::{Command, Stdio},
    thread,
    time::Duration,
};

use common::{Dirs, root_with_bpffs};
use geofence::{expiry::Clock, kernel, state::State};

const KILLS_PER_KIND: u32 = 15;

/// A small deterministic generator for kill delays.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Starts `geofence ARGS` and kills it after `delay`; returns whether it had finished.
fn kill_after(d: &Dirs, args: &[&str], delay: Duration) -> bool {
    let mut child = Command::new(env!("CARGO_BIN_EXE_geofence"))
        .arg("--pin-dir")
        .arg(&d.pin)
        .arg("--state-dir")
        .arg(&d.state)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting geofence");
    thread::sleep(delay);
    let finished = matches!(child.try_wait(), Ok(Some(_)));
    let _ = child.kill();
    let _ = child.wait();
    finished
}

/// The kernel's session maps hold exactly what the state file says.
fn kernel_matches_state(d: &Dirs, when: &str) {
    let state =
        State::load(&d.state).unwrap_or_else(|e| panic!("{when}: state file unreadable: {e:#}"));
    let mut k = kernel::Kernel::open(&d.pin).expect("opening maps");
    let report = kernel::sync(&mut k, &state, &Clock::now()).expect("syncing");
    assert_eq!(
        (report.written, report.removed),
        (0, 0),
        "{when}: kernel maps differed from the state file"
    );
}

/// A table of `rows` single addresses in 10.0.0.0/8, all in `code`.
fn table(d: &Dirs, name: &str, code: &str, rows: u32) -> String {
    let path = d.state.with_extension(name);
    let mut text = String::with_capacity(rows as usize * 32);
    for i in 0..rows {
        let a = std::net::Ipv4Addr::from(0x0a00_0000 + i * 2);
        text.push_str(&format!("{a},{a},{code}\n"));
    }
    fs::write(&path, text).expect("writing table");
    path.to_str().expect("utf-8 path").to_string()
}

#[test]
fn killed_block_and_unblock_leave_a_working_consistent_state() {
    if !root_with_bpffs("killed_block_and_unblock_leave_a_working_consistent_state") {
        return;
    }
    let d = Dirs::new("crash-rules");
    fs::create_dir_all(&d.state).expect("state dir");
    d.ok(&["meeting", "add", "A", "--endpoint", "udp:*:40000-40999"]);
    d.ok(&["meeting", "add", "B", "--endpoint", "udp:*:41000"]);
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15 ^ u64::from(std::process::id()));
    let (mut killed, mut finished) = (0, 0);
    for i in 0..KILLS_PER_KIND {
        let prefixes: Vec<String> = (0..200)
            .map(|j| format!("198.51.{}.{j}", i % 200))
            .collect();
        let mut args = vec!["block", "A", "--territory", "XA", "--order"];
        let order = format!("ORD-{i}");
        args.push(&order);
        for p in &prefixes {
            args.push("--prefix");
            args.push(p);
        }
        let delay = Duration::from_millis(rng.next() % 180);
        if kill_after(&d, &args, delay) {
            finished += 1;
        } else {
            killed += 1;
        }
        let before = d.read_state("state.json");
        assert!(
            serde_json::from_str::<serde_json::Value>(&before).is_ok(),
            "kill {i}: state.json is not whole"
        );
        // The next command works with no repair, and brings the kernel back to the state.
        d.ok(&["unblock", "A"]);
        kernel_matches_state(&d, &format!("after kill {i} and an unblock"));
        let status = d.ok(&["status"]);
        assert!(
            status.contains("A (session"),
            "kill {i}: status lost meeting A: {status}"
        );
    }
    eprintln!("rules: {killed} commands killed mid-way, {finished} had finished first");
    assert!(
        killed > 0,
        "no command was killed mid-way; the delays are too long"
    );
}

#[test]
fn killed_geo_load_leaves_one_whole_table() {
    if !root_with_bpffs("killed_geo_load_leaves_one_whole_table") {
        return;
    }
    let d = Dirs::new("crash-geo");
    fs::create_dir_all(&d.state).expect("state dir");
    let xa = table(&d, "xa.csv", "XA", 100_000);
    let xb = table(&d, "xb.csv", "XB", 100_000);
    d.ok(&["geo", "load", &xa]);
    let probes = [
        "10.0.0.0",
        "10.0.100.0",
        "10.1.0.0",
        "10.2.0.0",
        "10.3.13.62",
    ];
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d ^ u64::from(std::process::id()));
    let (mut killed, mut finished) = (0, 0);
    for i in 0..KILLS_PER_KIND {
        let next = if i % 2 == 0 { &xb } else { &xa };
        let delay = Duration::from_millis(rng.next() % 500);
        if kill_after(&d, &["geo", "load", next], delay) {
            finished += 1;
        } else {
            killed += 1;
        }
        let seen: Vec<String> = probes
            .iter()
            .map(|p| {
                let out = d.ok(&["geo", "lookup", p]);
                let code = if out.contains(": XA") {
                    "XA"
                } else if out.contains(": XB") {
                    "XB"
                } else {
                    "?"
                };
                code.to_string()
            })
            .collect();
        assert!(
            seen.iter().all(|c| c == "XA") || seen.iter().all(|c| c == "XB"),
            "kill {i}: lookups mix two tables or lost the table: {seen:?}"
        );
        // The next load works without repair.
        d.ok(&["geo", "load", &xa]);
        assert!(d.ok(&["geo", "lookup", "10.0.0.0"]).contains(": XA"));
    }
    eprintln!("geo: {killed} loads killed mid-way, {finished} had finished first");
    assert!(
        killed > 0,
        "no load was killed mid-way; the delays are too long"
    );
    let _ = fs::remove_file(xa);
    let _ = fs::remove_file(xb);
}

/// Kills per command (`block`, `unblock`) in the rule-binding test.
const BOUND_KILLS: u32 = 20;

#[test]
fn a_killed_block_or_unblock_leaves_the_old_or_the_new_rules_whole() {
    if !root_with_bpffs("a_killed_block_or_unblock_leaves_the_old_or_the_new_rules_whole") {
        return;
    }
    let d = Dirs::new("crash-bound");
    crash_bound::setup(&d);
    let geo = crash_bound::table(&d);
    let (_kernel, target) = crash_bound::target(&d);
    // How long each command takes here, so that a third of the kills spread over the
    // whole run; the others land among the override writes.
    let timed = |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let start = std::time::Instant::now();
        d.ok(&args);
        start.elapsed().as_millis() as u64 + 1
    };
    let calibration = BOUND_KILLS;
    let block_ms = timed(crash_bound::block_args(calibration));
    let unblock_ms = timed(crash_bound::unblock_args(calibration));
    eprintln!("a block takes {block_ms} ms, an unblock {unblock_ms} ms");
    let mut rng = XorShift(0x5851_f42d_4c95_7f2d ^ u64::from(std::process::id()));
    let mut outcomes: std::collections::BTreeMap<String, u32> = Default::default();
    let (mut probes, mut mid_write) = (0, 0);
    let has_rule = |i: u32| {
        State::load(&d.state).expect("state").meetings["A"]
            .rules
            .iter()
            .any(|r| r.order == crash_bound::order(i))
    };
    for i in 0..BOUND_KILLS {
        for command in ["block", "unblock"] {
            let old = State::load(&d.state).expect("state before the command");
            let (args, new) = if command == "block" {
                (crash_bound::block_args(i), crash_bound::with_block(&old, i))
            } else {
                (
                    crash_bound::unblock_args(i),
                    crash_bound::without_rule(&old, i),
                )
            };
            let full = if command == "block" {
                block_ms
            } else {
                unblock_ms
            };
            let finished = if i % 3 == 0 {
                let delay = Duration::from_millis(rng.next() % (full + full / 4));
                crash_bound::kill_after(&d, &args, delay)
            } else {
                // Watch one of the rule's entries, picked at random, and kill within
                // about the time the writes take after it (a millisecond or two).
                let prefixes = crash_bound::prefixes(i);
                let watched = &prefixes[(rng.next() % prefixes.len() as u64) as usize];
                let key = crash_bound::override_key(&d, &old, watched);
                let extra = Duration::from_micros(rng.next() % 400);
                crash_bound::kill_when_entry_changes(&d, &args, key, command == "block", extra)
            };
            // Before any other geofence command runs.
            match crash_bound::behaves_as(&target, &geo, &old, &new, i) {
                Ok((which, n)) => {
                    probes += n;
                    let how = if finished { "finished" } else { "killed" };
                    *outcomes
                        .entry(format!("{command} {how}, {which} state"))
                        .or_default() += 1;
                }
                Err(e) => panic!("kill {i} during {command}: {e}"),
            }
            if crash_bound::mid_change(&d) {
                mid_write += 1;
            }
            // The next command works without repair and brings the kernel to the state.
            let wanted = command == "block";
            if has_rule(i) != wanted {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                d.ok(&args);
            }
            kernel_matches_state(&d, &format!("after kill {i} during {command}"));
        }
    }
    eprintln!(
        "bound rules: {} kills, {probes} probes each matching the old or the new state, \
         {mid_write} kills left the maps mid-change; {outcomes:?}",
        2 * BOUND_KILLS
    );
    let killed_in_sync = |command: &str| {
        outcomes
            .iter()
            .filter(|(k, _)| k.starts_with(command) && k.contains("killed"))
            .map(|(_, n)| n)
            .sum::<u32>()
    };
    assert!(
        killed_in_sync("block") > 0 && killed_in_sync("unblock") > 0,
        "no block or no unblock was killed mid-way; the delays are too long: {outcomes:?}"
    );
    assert!(
        mid_write > 0,
        "no kill landed among the map writes; the test proves nothing: {outcomes:?}"
    );
    // Prefix-only rules hold slots too: with the standing rule, seven more fit and an
    // eighth is refused, clearly and without changing anything.
    for n in 0..7 {
        let prefix = format!("10.250.{n}.0/24");
        d.ok(&[
            "block",
            "A",
            "--prefix",
            &prefix,
            "--order",
            &format!("FILL-{n}"),
        ]);
    }
    let before = d.read_state("state.json");
    let err = d.fails(&[
        "block",
        "A",
        "--prefix",
        "10.251.0.0/24",
        "--order",
        "ONE-TOO-MANY",
    ]);
    assert!(
        err.contains("already has 8 rules (territory or prefix)"),
        "capacity error: {err}"
    );
    assert_eq!(
        d.read_state("state.json"),
        before,
        "a refused block changed the state"
    );
    kernel_matches_state(&d, "after a refused ninth rule");
}

/// Kills per change in the every-command test: 13 changes, over 100 kills.
const KILLS_PER_CHANGE: u32 = 8;

#[test]
fn every_killed_change_leaves_the_old_or_the_new_state() {
    if !root_with_bpffs("every_killed_change_leaves_the_old_or_the_new_state") {
        return;
    }
    let d = Dirs::new("crash-every");
    let files = crash_bound::changes::fixture(&d);
    let (mut kernel, target) = crash_bound::target(&d);
    let mut rng = XorShift(0x2127_599b_f432_5c37 ^ u64::from(std::process::id()));
    let started = std::time::Instant::now();
    let mut total = crash_bound::every::Outcome::default();
    for change in crash_bound::changes::all(&files) {
        let o = crash_bound::every::exercise(
            &d,
            &mut kernel,
            &target,
            &change,
            KILLS_PER_CHANGE,
            &mut rng,
        );
        eprintln!(
            "{} ({:.0?} whole): {} kills, {} before it finished, {} mid-change; as old {}, \
             as new {}",
            change.name, o.full, o.kills, o.killed, o.mid_change, o.as_old, o.as_new
        );
        total.kills += o.kills;
        total.killed += o.killed;
        total.mid_change += o.mid_change;
    }
    eprintln!(
        "every command: {} kills, {} before finishing, {} left the maps mid-change, in {:.1?}",
        total.kills,
        total.killed,
        total.mid_change,
        started.elapsed()
    );
    assert!(total.kills >= 100, "too few kills: {}", total.kills);
    assert!(
        total.mid_change > 0,
        "no kill landed among the map writes; the test proves nothing"
    );
}
