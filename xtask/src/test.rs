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
