//! `cargo xtask demo --fleet`: one policy in etcd, three relays that enforce it.
//!
//! An etcd on loopback; three relays, each in its own network namespaces with participants
//! in XA, XB and XC, geofence attached, its own pin and state directories and its own
//! `geofence daemon --fleet`. One `geofence fleet apply` blocks XA on town-hall; every relay
//! drops XA's packets to town-hall (timed from the command's return) and nothing else;
//! `fleet status`, `fleet report` (when this geofence has it) and `fleet audit show` end
//! the scene. Everything is stopped by Drop guards, also when it fails: daemons, then XDP
//! links and pins, then namespaces, then etcd.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Result, bail};

use crate::cli::{Geofence, geofence_bin};
use crate::etcd::Etcd;
use crate::fleet::{
    FleetStatus, Site, expect_blocked, fixture_meetings, fleet_ok, time_to_drop, wait_all_on,
    wait_until,
};
use crate::world::{Expect, Report};

const RELAYS: [&str; 3] = ["edge-fra-1", "edge-ams-1", "edge-waw-1"];
const LIMIT: Duration = Duration::from_secs(60);
const ORDER: &str = "ORD-2026-0042";
const BLOCKS: &[(&str, &[&str])] = &[("town-hall", &["XA"])];

fn step(stop: &AtomicBool, title: &str) -> Result<()> {
    if stop.load(Ordering::Relaxed) {
        bail!("interrupted");
    }
    println!("\n== {title}");
    Ok(())
}

/// Prints `$ geofence fleet ARGS` and its output, as an operator would see it.
fn fleet_shown(endpoints: &str, args: &[&str]) -> Result<()> {
    println!("$ geofence fleet {}", args.join(" "));
    let (out, _) = fleet_ok(endpoints, args)?;
    print!("{out}");
    Ok(())
}

/// A `fleet` subcommand this geofence has (another build may lack a newer one).
fn has_fleet_command(name: &str) -> bool {
    let Ok(bin) = geofence_bin() else {
        return false;
    };
    Command::new(bin)
        .args(["fleet", "--help"])
        .output()
        .is_ok_and(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.trim_start().starts_with(&format!("{name} ")))
        })
}

/// One line per relay: who is cut off, and that everyone else gets through.
fn summary(relay: &str, report: &Report) -> String {
    let mut blocked = Vec::new();
    let mut unclear = Vec::new();
    for r in &report.rows {
        match r.outcome() {
            Some(Expect::Drop) => blocked.push(format!(
                "{} ({}) on {}",
                r.participant, r.territory, r.meeting
            )),
            Some(Expect::Pass) => {}
            None => unclear.push(format!("{} on {}", r.participant, r.meeting)),
        }
    }
    let passing = report.rows.len() - blocked.len() - unclear.len();
    let mut line = format!(
        "  {relay:<12} {passing} of {} streams pass",
        report.rows.len()
    );
    if !blocked.is_empty() {
        line.push_str(&format!("; blocked: {}", blocked.join(", ")));
    }
    if !unclear.is_empty() {
        line.push_str(&format!("; unclear: {}", unclear.join(", ")));
    }
    line
}

/// Runs the scene, printing as it goes; `stop` is set on ctrl-c.
/// `today`: the day the fleet report covers, read by the demo's entry point.
pub fn run(stop: &AtomicBool, today: &str) -> Result<()> {
    step(
        stop,
        "Fleet scene: one policy in etcd, three relays that enforce it",
    )?;
    println!(
        "Three relays ({}),\n\
         each in its own network namespaces with participants in XA, XB and XC (TEST-NET\n\
         addresses), each running `geofence daemon --fleet`. The fleet's policy lives in an\n\
         etcd on loopback. No packet leaves this machine.",
        RELAYS.join(", ")
    );
    let etcd = Etcd::single()?;
    let endpoints = etcd.endpoints();
    println!("etcd answers on {endpoints}");

    step(
        stop,
        "Each relay: attach geofence, load the table, add its meetings, start the daemon",
    )?;
    // The daemons read their counters every second, so that `fleet report` has the drops.
    let daemon_help = Command::new(geofence_bin()?)
        .args(["daemon", "--help"])
        .output()?;
    let counters: &[&str] =
        if String::from_utf8_lossy(&daemon_help.stdout).contains("--fleet-counters-every") {
            &["--fleet-counters-every", "1s"]
        } else {
            &[]
        };
    let mut sites = Vec::new();
    for (i, relay) in RELAYS.iter().enumerate() {
        // The first relay shows its commands; the others run the same.
        let gf = Geofence::new()?.echo(i == 0);
        if i == 0 {
            println!("On {relay}:");
        }
        let site = Site::start_with(gf, relay, &endpoints, &fixture_meetings(), &[], counters)?;
        if i == 0 {
            println!(
                "$ geofence daemon --fleet --relay {relay} --etcd {endpoints} {} &",
                counters.join(" ")
            );
            println!("The same on {} and {}.", RELAYS[1], RELAYS[2]);
        }
        sites.push(site);
    }
    wait_until("three relays alive, their status written", LIMIT, || {
        let status = FleetStatus::read(&endpoints)?;
        Ok(RELAYS
            .iter()
            .all(|r| {
                status
                    .relay(r)
                    .is_some_and(|row| row.alive && row.version.is_some())
            })
            .then_some(()))
    })?;
    fleet_shown(&endpoints, &["status"])?;

    step(
        stop,
        "Before: every participant streams to both meetings on every relay",
    )?;
    for site in &sites {
        println!("{}", summary(&site.relay, &site.world.observe()));
    }

    step(
        stop,
        "A legal order for the whole fleet: participants in XA may not take part in town-hall",
    )?;
    let dir = sites[0].world.gf.temp_dir().to_owned();
    let text = format!(
        "[meetings.town-hall]\n\n[[meetings.town-hall.rules]]\norder = \"{ORDER}\"\n\
         territories = [\"XA\"]\n"
    );
    let policy = dir.join("policy.toml");
    std::fs::write(&policy, &text)?;
    println!("policy.toml:\n{}", indent(&text));
    let file = policy.to_string_lossy().into_owned();
    println!("$ geofence fleet apply policy.toml");
    let (out, returned) = fleet_ok(&endpoints, &["apply", &file])?;
    print!("{out}");
    let worlds: Vec<_> = sites.iter().map(|s| &s.world).collect();
    let per_relay = time_to_drop(&worlds, "xa", "town-hall", returned, LIMIT)?;
    let slowest = per_relay.iter().max().copied().unwrap_or_default();
    let each: Vec<String> = RELAYS
        .iter()
        .zip(&per_relay)
        .map(|(r, d)| format!("{r} {} ms", d.as_millis()))
        .collect();
    println!(
        "\nEvery relay dropped XA's packets to town-hall within {} ms of `fleet apply` \
         returning ({}).",
        slowest.as_millis(),
        each.join(", ")
    );

    step(
        stop,
        "After: XA is cut off from town-hall on every relay; everyone else is untouched",
    )?;
    for site in &sites {
        let report = site.world.observe();
        println!("{}", summary(&site.relay, &report));
        report
            .check(|name, meeting| expect_blocked(BLOCKS)(site.world.participant(name), meeting))
            .map_err(|table| anyhow::anyhow!("{}: not as the policy says:\n{table}", site.relay))?;
    }
    println!("\n{} in detail:", RELAYS[0]);
    print!("{}", sites[0].world.observe().table(|_| ""));

    step(stop, "The fleet: every relay alive and on version 1")?;
    wait_all_on(&endpoints, &RELAYS, 1, LIMIT)?;
    fleet_shown(&endpoints, &["status"])?;

    step(stop, "What the fleet dropped, and its own audit trail")?;
    if has_fleet_command("report") {
        // Give the daemons a counters read after the drops began.
        std::thread::sleep(Duration::from_millis(1500));
        fleet_shown(
            &endpoints,
            &["report", "--from", today, "--to", today, "--format", "md"],
        )?;
    } else {
        println!("(this geofence has no `fleet report` yet: that step is skipped)");
    }
    fleet_shown(&endpoints, &["audit", "show"])?;
    fleet_shown(&endpoints, &["audit", "verify"])?;

    step(stop, "Cleaning up")?;
    drop(sites);
    drop(etcd);
    Ok(())
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
