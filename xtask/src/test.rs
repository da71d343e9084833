//! `cargo xtask test`: the whole suite, then the bench in smoke mode (unless the arguments
//! choose packages: a focused run stays focused).

use anyhow::Result;

use crate::{bench, cmd, geofence_bin, phase, setup, target_dir};

#[derive(clap::Args)]
pub struct Args {
    /// Arguments for `cargo test`, after `--`; a second `--` passes arguments on to the test
    /// binaries: `cargo xtask test -- -p geofence-tests -- --nocapture`.
    #[arg(last = true, value_name = "CARGO_TEST_ARGS")]
    cargo_args: Vec<String>,
}

pub fn run(args: &Args) -> Result<()> {
    phase("setup");
    setup::run(setup::Scope::All)?;

    phase("building the geofence binary for the integration tests");
    cmd::run(cmd::cargo().args(["build", "-p", "filter-userspace", "--bin", "geofence"]))?;

    phase("running the test suite");
    let mut cargo = cmd::cargo();
    cargo.arg("test").env("GEOFENCE_BIN", geofence_bin());
    let own = own_args(&args.cargo_args);
    if !own.iter().any(|arg| selects_packages(arg)) {
        // Not `--workspace` alone: filter-ebpf only builds for bpfel-unknown-none.
        cargo.args(["--workspace", "--exclude", "filter-ebpf"]);
    }
    if !own.iter().any(|arg| arg == "--no-fail-fast") {
        // Run every test binary, so one run reports every failure.
        cargo.arg("--no-fail-fast");
    }
    cargo.args(&args.cargo_args);
    cmd::run(&mut cargo)?;

    if own.iter().any(|arg| selects_packages(arg)) {
        return Ok(());
    }
    phase("running the time-dependent suites with the clock seven years ahead");
    cmd::run(&mut time_shifted())?;
    // The bench in smoke mode, so that it keeps working; it asserts nothing about speed.
    phase("running the bench in smoke mode");
    cmd::run(cmd::cargo().args(["build", "-p", "geofence-bench"]))?;
    bench::bench(
        &target_dir().join("debug"),
        &bench::Args {
            smoke: true,
            bench_args: Vec::new(),
        },
    )
}

/// The suites that decide by time (expiry, plans, the audit trail, reports), run again
/// under `faketime` with the wall clock seven years ahead: a function that reads the clock
/// where it should take `now` from its caller, or a fixture that only holds until some
/// date, fails here at once instead of on the day the date passes.
///
/// Only the test binaries are shifted (through cargo's runner), and with them the
/// `geofence` processes they start; cargo itself keeps the real time, so nothing rebuilds.
/// The monotonic clocks stay real: the program's expiries are read against the kernel's.
fn time_shifted() -> std::process::Command {
    let mut cargo = cmd::cargo();
    cargo
        .env("GEOFENCE_BIN", geofence_bin())
        .env(
            "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER",
            "faketime -f +7y",
        )
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
        .args(["test", "--no-fail-fast"])
        .args(["-p", "filter-userspace", "--lib"]);
    for suite in [
        "apply",
        "audit",
        "cli_errors",
        "daemon",
        "explain",
        "restore",
        "status",
    ] {
        cargo.args(["--test", suite]);
    }
    cargo.args([
        "-p",
        "geofence-tests",
        "--test",
        "rule_accounting",
        "--test",
        "verdict",
    ]);
    // This test compares a file's modification time with the time the table was loaded:
    // faketime shifts the second (the process's clock) and not the first (statx is not
    // intercepted), so under it every file looks older than every load.
    cargo.args(["--", "--skip", "a_geo_file_changed_since_the_load_is_named"]);
    cargo
}

/// The arguments meant for cargo itself: those before a `--` that hands on to the test binaries.
fn own_args(args: &[String]) -> &[String] {
    let end = args
        .iter()
        .position(|arg| arg == "--")
        .unwrap_or(args.len());
    &args[..end]
}

/// Whether `arg` chooses packages, in which case we add no package selection of our own.
fn selects_packages(arg: &str) -> bool {
    matches!(arg, "--workspace" | "--all" | "--package" | "--exclude")
        || arg.starts_with("--package=")
        || arg.starts_with("--exclude=")
        || arg.starts_with("-p")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|arg| arg.to_string()).collect()
    }

    #[test]
    fn package_selection_before_the_separator_only() {
        let args = strings(&["-p", "geofence-tests", "--", "--package"]);
        assert!(own_args(&args).iter().any(|arg| selects_packages(arg)));
        let args = strings(&["verdict", "--", "-p"]);
        assert!(!own_args(&args).iter().any(|arg| selects_packages(arg)));
        assert!(selects_packages("-pfilter-common"));
        assert!(selects_packages("--exclude=xtask"));
        assert!(!selects_packages("--release"));
    }
}
