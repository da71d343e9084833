//! `cargo xtask build`.

use anyhow::Result;

use crate::{cmd, phase, setup};

#[derive(clap::Args)]
pub struct Args {
    /// Build with the release profile.
    #[arg(long)]
    release: bool,
}

pub fn run(args: &Args) -> Result<()> {
    phase("setup (toolchain)");
    setup::run(setup::Scope::Toolchain)?;
    phase("building the workspace");
    let mut cargo = cmd::cargo();
    // `--workspace` would take filter-ebpf too, which only builds for bpfel-unknown-none; the
    // build script of filter-userspace builds it.
    cargo.args(["build", "--workspace", "--exclude", "filter-ebpf"]);
    if args.release {
        cargo.arg("--release");
    }
    cmd::run(&mut cargo)
}
