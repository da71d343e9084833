//! Fleet convergence (docs/fleet.md): the time from `geofence fleet apply` returning to
//! every relay's status showing the new version, for 1, 50 and 200 relays simulated in
//! this process against one etcd (the real fleet loop, an in-memory kernel), with etcd's
//! writes per second meanwhile; then three real relays in namespaces, timed by traffic.

mod memory;
mod real;
mod simulated;

use std::time::Duration;

use crate::{
    Options,
    report::{Figure, Report, median},
};
use geofence_tests::etcd::Etcd;

/// The goals: 200 simulated relays on the new version within 2 s (p99), three real relays
/// dropping within 1 s.
const SIMULATED_GOAL_MS: f64 = 2_000.0;
const REAL_GOAL_MS: f64 = 1_000.0;

pub fn run(options: &Options, report: &mut Report) -> anyhow::Result<()> {
    if !geofence_tests::etcd::etcd_installed("the fleet part") {
        report.note("fleet: skipped, etcd is not installed (`cargo xtask setup` installs it)");
        return Ok(());
    }
    let (sizes, applies): (&[usize], usize) = if options.smoke {
        (&[1, 10], 2)
    } else {
        (&[1, 50, 200], 20)
    };
    let etcd = Etcd::single()?;
    for &relays in sizes {
        let samples = simulated::run(&etcd, relays, applies, etcd.dir())?;
        let ms: Vec<f64> = samples.iter().map(|s| ms(s.converged)).collect();
        let rates: Vec<f64> = samples
            .iter()
            .map(|s| s.writes as f64 / s.window.as_secs_f64().max(1e-6))
            .collect();
        let writes = median(samples.iter().map(|s| s.writes as f64).collect());
        let mut figure = Figure::new(
            format!("fleet: apply → {relays} simulated relays' status, p99"),
            percentile(&ms, 0.99),
            "ms",
        )
        .note(format!(
            "{applies} apply(s); p50 {:.1} ms, max {:.1} ms; etcd {writes:.0} writes an apply, \
             {:.0} writes/s while they converge (median)",
            percentile(&ms, 0.5),
            percentile(&ms, 1.0),
            median(rates),
        ));
        if relays == 200 {
            figure = figure.goal_value_at_most(SIMULATED_GOAL_MS);
        }
        report.push(figure);
    }
    drop(etcd);

    if !nix::unistd::geteuid().is_root() {
        report.note("fleet: three real relays skipped, they need root (namespaces, XDP)");
        return Ok(());
    }
    let applies = if options.smoke { 1 } else { 6 };
    let times = real::run(applies)?;
    let ms: Vec<f64> = times.iter().map(|d| ms(*d)).collect();
    report.push(
        Figure::new(
            "fleet: apply → 3 real relays dropping, by traffic, max",
            percentile(&ms, 1.0),
            "ms",
        )
        .goal_value_at_most(REAL_GOAL_MS)
        .note(format!(
            "{applies} apply(s), each blocking another territory on one meeting; median {:.1} ms",
            median(ms.clone())
        )),
    );
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The `q` quantile by nearest rank (q = 1: the maximum).
fn percentile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((sorted.len() as f64) * q).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
