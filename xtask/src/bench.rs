//! `cargo xtask bench`.

use std::{ffi::OsString, path::PathBuf};

use anyhow::Result;

use crate::{cmd, phase, setup, target_dir, workspace_root};

#[derive(clap::Args)]
pub struct Args {
    /// Small tables and few repeats: checks that the bench works, measures nothing worth
    /// reading (`cargo xtask test` runs this).
    #[arg(long)]
    pub smoke: bool,
    /// Arguments for `geofence-bench`, after `--`.
    #[arg(last = true, value_name = "BENCH_ARGS")]
    pub bench_args: Vec<OsString>,
}

/// The real country data, beside the workspace; the bench uses a synthetic table without it.
fn geo_dir() -> PathBuf {
    workspace_root().join("../shared/geo")
}

/// Where the JSON report goes.
pub fn report_path() -> PathBuf {
    target_dir().join("bench").join("report.json")
}

pub fn run(args: &Args) -> Result<()> {
    phase("setup");
    setup::run(setup::Scope::All)?;
    phase("building geofence-bench (release)");
    cmd::run(cmd::cargo().args(["build", "--release", "-p", "geofence-bench"]))?;
    // The API part runs the daemon itself.
    cmd::run(cmd::cargo().args([
        "build",
        "--release",
        "-p",
        "filter-userspace",
        "--bin",
        "geofence",
    ]))?;
    phase(if args.smoke {
        "running the bench (smoke)"
    } else {
        "running the bench"
    });
    bench(&target_dir().join("release"), args)
}

/// Runs `geofence-bench` from `profile_dir` (target/debug or target/release) in the workspace
/// root, with the real geo data when it is there.
pub fn bench(profile_dir: &std::path::Path, args: &Args) -> Result<()> {
    let mut command = cmd::command(profile_dir.join("geofence-bench"));
    command
        .current_dir(workspace_root())
        .env("GEOFENCE_BIN", profile_dir.join("geofence"))
        .arg("--out")
        .arg(report_path());
    let geo = geo_dir();
    if geo.is_dir() {
        command.arg("--geo").arg(geo);
    }
    if args.smoke {
        command.arg("--smoke");
    }
    command.args(&args.bench_args);
    cmd::run(&mut command)
}
