//! `cargo xtask fuzz-verdicts N [--seed S]`: the differential test
//! (`tests/tests/differential.rs`) for `N` frames, built in release: every frame goes through
//! the XDP program with BPF_PROG_TEST_RUN and through the reference model, and must get the
//! same verdict and counters.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result};

use crate::{cmd, phase, setup, target_dir};

#[derive(clap::Args)]
pub struct Args {
    /// Frames to compare.
    packets: u64,
    /// Seed of the generator; a run with the same seed and table makes the same frames.
    /// Default: taken from the clock (and printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Stop after this many disagreements (each is printed with its frame).
    #[arg(long, default_value_t = 1)]
    max_mismatches: u64,
}

pub fn run(args: &Args) -> Result<()> {
    phase("setup");
    setup::run(setup::Scope::Toolchain)?;
    let seed = args.seed.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let summary = target_dir().join("fuzz-verdicts.summary");
    let _ = std::fs::remove_file(&summary);
    phase(&format!(
        "comparing {} frames between the kernel and the model, seed {seed}",
        args.packets
    ));
    let started = Instant::now();
    let result = cmd::run(
        cmd::cargo()
            .args([
                "test",
                "-p",
                "geofence-tests",
                "--release",
                "--test",
                "differential",
                "--",
                "--nocapture",
            ])
            .env("GEOFENCE_DIFF_PACKETS", args.packets.to_string())
            .env("GEOFENCE_DIFF_SEED", seed.to_string())
            .env(
                "GEOFENCE_DIFF_MAX_MISMATCHES",
                args.max_mismatches.to_string(),
            )
            .env("GEOFENCE_DIFF_SUMMARY", &summary),
    );
    let wall = started.elapsed().as_secs_f64();
    match std::fs::read_to_string(&summary) {
        Ok(line) => {
            let field = |name: &str| -> Option<f64> {
                line.split_whitespace()
                    .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
            };
            let compared = field("compared").unwrap_or(0.0);
            let mismatches = field("mismatches").unwrap_or(0.0);
            let seconds = field("seconds").unwrap_or(wall);
            eprintln!(
                "fuzz-verdicts: {compared} frames compared, {mismatches} mismatches, \
                 {seconds:.1} s comparing ({:.0} packets/s), {wall:.1} s in all, seed {seed}",
                compared / seconds.max(1e-9)
            );
        }
        Err(_) => eprintln!(
            "fuzz-verdicts: the test wrote no summary (it did not run, or was skipped); \
             seed {seed}"
        ),
    }
    result.context("the differential test failed; repeat it with the same --seed")
}
