//! Crash safety: SIGKILL the CLI at random points of `block`, `unblock` and `geo load`.
//! Afterwards the state file is whole, the next command works without repair, and once it
//! has run the kernel maps hold exactly what the state file says. A killed `geo load`
//! leaves packets on one whole table, never a mix of two.

mod common;

use std::{
    fs,
    process::{Command, Stdio},
    thread,
    time::Duration,
};

use common::{Dirs, root_with_bpffs};
use geofence::{kernel, state::State};

const KILLS_PER_KIND: u32 = 25;

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
    let report = kernel::sync(&mut k, &state).expect("syncing");
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
