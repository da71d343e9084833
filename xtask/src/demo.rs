//! `cargo xtask demo`.

use std::ffi::OsString;

use anyhow::Result;

use crate::{cmd, geofence_bin, phase, setup, target_dir};

#[derive(clap::Args)]
pub struct Args {
    /// Arguments for the demo binary, after `--`.
    #[arg(last = true, value_name = "DEMO_ARGS")]
    demo_args: Vec<OsString>,
}

pub fn run(args: &Args) -> Result<()> {
    phase("setup");
    setup::run(setup::Scope::All)?;

    phase("building geofence and the demo");
    cmd::run(cmd::cargo().args([
        "build",
        "-p",
        "filter-userspace",
        "--bin",
        "geofence",
        "-p",
        "geofence-tests",
        "--bin",
        "demo",
    ]))?;

    phase("running the demo");
    // A failing demo fails with its own exit code (see main).
    cmd::run(
        cmd::command(target_dir().join("debug").join("demo"))
            .current_dir(crate::workspace_root())
            .env("GEOFENCE_BIN", geofence_bin())
            .args(&args.demo_args),
    )
}
