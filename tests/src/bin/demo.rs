//! `cargo xtask demo`: a relay with two meetings and participants in three territories, all
//! in network namespaces on this machine. Shows traffic, blocks one territory on one
//! meeting, shows who still gets through, and cleans everything up (also on ctrl-c).
//!
//! Then scene 2 ([`geofence_tests::demo_mux`]): two meetings on one UDP port of a WebRTC
//! SFU, real WebRTC participants, the meeting of each flow learned from its STUN ufrag.
//! Skipped, saying why, without the test SFU or the venv with aiortc.
//!
//! `demo --fleet` runs the fleet scene instead ([`geofence_tests::demo_fleet`]): etcd and
//! three relays, each with its own fleet daemon, and one `geofence fleet apply`.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Result, bail};
use geofence_tests::world::{Report, World, write_file};
use geofence_tests::{Geofence, MeetingPorts, ParticipantSpec};
use geofence_tests::{demo_fleet, demo_mux};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

fn main() -> ExitCode {
    if !nix::unistd::geteuid().is_root() {
        eprintln!(
            "The geofence demo needs root: it creates network namespaces, a bridge and veth \
             pairs, mounts bpffs and attaches an XDP program. Run it as root \
             (e.g. `sudo -E cargo xtask demo`)."
        );
        return ExitCode::from(2);
    }
    // SAFETY: the handler only stores to an atomic.
    unsafe { libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t) };
    // The demo's one clock reading: the day its transparency reports cover.
    let today = jiff::Timestamp::now().strftime("%Y-%m-%d").to_string();
    if std::env::args().skip(1).any(|a| a == "--fleet") {
        let result = demo_fleet::run(&INTERRUPTED, &today);
        println!("\nCleaned up: daemons, XDP links, pins, namespaces and etcd are gone.");
        return match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("demo failed in the fleet scene: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let result = run(&today);
    println!("\nCleaned up: namespaces, XDP link and pins are gone.");
    if let Err(e) = result {
        eprintln!("demo failed: {e:#}");
        return ExitCode::FAILURE;
    }
    match demo_mux::Prereqs::find() {
        Err(why) => {
            println!("\n== Scene 2: two meetings on one UDP port (a WebRTC SFU): SKIPPED");
            println!("It needs the test SFU and a Python venv with aiortc.\n{why}");
            ExitCode::SUCCESS
        }
        Ok(prereqs) => {
            let result = demo_mux::run(&prereqs, &INTERRUPTED);
            println!(
                "\nCleaned up: participants, SFU, daemon, XDP link, pins and namespaces are gone."
            );
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("demo failed in scene 2: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn step(title: &str) -> Result<()> {
    if INTERRUPTED.load(Ordering::Relaxed) {
        bail!("interrupted");
    }
    println!("\n== {title}");
    Ok(())
}

fn run(today: &str) -> Result<()> {
    step("Scene 1: a relay, two meetings on their own ports, five participants in XA, XB, XC")?;
    println!(
        "Everything runs in network namespaces joined by a bridge, with TEST-NET addresses;\n\
         the geo table is a small fixture: 192.0.2.0/24 and 2001:db8:a::/48 are XA,\n\
         198.51.100.0/24 is XB, 203.0.113.0/24 is XC. No packet leaves this machine.\n"
    );
    let gf = Geofence::new()?.echo(true);
    let dir = gf.temp_dir().to_owned();
    let v4 = [
        "192.0.2.0,192.0.2.255,XA",
        "198.51.100.0,198.51.100.255,XB",
        "203.0.113.0,203.0.113.255,XC",
    ];
    let v4 = write_file(&dir, "territories-v4.csv", &v4)?;
    let v6 = write_file(
        &dir,
        "territories-v6.csv",
        &["2001:db8:a::,2001:db8:a:ffff:ffff:ffff:ffff:ffff,XA"],
    )?;
    let participants = [
        ParticipantSpec::new("alice", "192.0.2.10", "XA"),
        ParticipantSpec::new("bao", "2001:db8:a::20", "XA"),
        ParticipantSpec::new("carmen", "198.51.100.10", "XB"),
        ParticipantSpec::new("dmitri", "203.0.113.10", "XC"),
        ParticipantSpec::new("emeka", "203.0.113.20", "XC"),
    ];
    let meetings = [
        MeetingPorts::new("town-hall", 40000, 40001),
        MeetingPorts::new("standup", 41000, 41001),
    ];
    let world = World::start(gf, &participants, &meetings, &[vec![v4, v6]])?;

    step("Before: every participant streams UDP media to both meetings and signals over TCP")?;
    print!("{}", world.observe().table(|_| ""));

    step("A legal order: participants in XA may not take part in town-hall")?;
    world.gf.run(&[
        "block",
        "town-hall",
        "--territory",
        "XA",
        "--order",
        "ORD-2026-0042",
    ])?;

    step("After: XA is cut off from town-hall only; standup and everyone else are untouched")?;
    let after = world.observe();
    print!("{}", after.table(mark));
    summary(&after);

    step("Why was alice's media dropped? The decision step by step, confirmed by the kernel")?;
    let alice = world.participant("alice");
    let src = format!("{}:50000", alice.addr());
    let dst = format!("{}:40000", alice.relay_addr());
    world
        .gf
        .run(&["explain", "--proto", "udp", "--src", &src, "--dst", &dst])?;

    step("Counters and state")?;
    world.gf.run(&["stats", "town-hall"])?;
    world.gf.run(&["stats"])?;
    world.gf.run(&["status"])?;

    step("Accountability: the audit trail, its hash chain, and the transparency report")?;
    world.gf.run(&["audit", "show"])?;
    world.gf.run(&["audit", "verify"])?;
    world
        .gf
        .run(&["report", "--from", today, "--to", today, "--format", "md"])?;

    step("Cleaning up")?;
    Ok(())
}

fn mark(row: &geofence_tests::world::ReportRow) -> &'static str {
    match row.outcome() {
        Some(geofence_tests::Expect::Drop) => "  <- blocked",
        Some(geofence_tests::Expect::Pass) => "",
        None => "  <- partial?",
    }
}

fn summary(report: &Report) {
    let blocked: Vec<String> = report
        .rows
        .iter()
        .filter(|r| r.outcome() == Some(geofence_tests::Expect::Drop))
        .map(|r| format!("{} ({}) on {}", r.participant, r.territory, r.meeting))
        .collect();
    println!(
        "\nblocked: {}",
        if blocked.is_empty() {
            "nobody".into()
        } else {
            blocked.join(", ")
        }
    );
}
