//! `cargo xtask`: set up the machine, build, test and demo geofence.
//!
//! Every subcommand lives in its own module; `cmd` runs the external programs.

mod bench;
mod build;
mod cmd;
mod demo;
mod fuzz;
mod fuzz_verdicts;
mod install;
mod setup;
mod test;

use std::{
    env,
    path::{Path, PathBuf},
    process,
};

use clap::{Parser, Subcommand};

/// Developer tasks for geofence.
///
/// `cargo xtask demo` and `cargo xtask test` run `setup` themselves.
#[derive(Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install and prepare what building and testing need (idempotent).
    ///
    /// Each step is skipped when already done: rust-src for nightly; bpf-linker, built against
    /// the LLVM inside the nightly toolchain; the Debian packages the tests and the bench use
    /// (iproute2, bpftool, nftables, ipset, iptables, tcpdump, faketime); bpffs mounted at /sys/fs/bpf. The last two need
    /// root, but only when there is something to do.
    Setup,
    /// Set up the toolchain, then build the workspace.
    ///
    /// Installs rust-src and bpf-linker when missing; the XDP program is built by
    /// filter-userspace's build script and embedded in the `geofence` binary.
    Build(build::Args),
    /// Run `setup`, then the whole test suite (needs root).
    ///
    /// Builds `geofence` first and points the integration tests at it with `GEOFENCE_BIN`;
    /// they make network namespaces and load XDP programs. Ends with `geofence-bench --smoke`
    /// (unless the arguments choose packages). Exits with cargo's exit code.
    Test(test::Args),
    /// Run `setup`, then the demo scene in network namespaces (needs root).
    ///
    /// One relay, two meetings, participants in three territories, one territory blocked on
    /// one meeting. `--fleet`: etcd and three relays with their fleet daemons, one
    /// `geofence fleet apply`. Exits with the demo's exit code.
    Demo(demo::Args),
    /// Run `setup`, then measure geofence against its references (needs root).
    ///
    /// Builds `geofence-bench` in release and runs it from the workspace root, with the real
    /// table from ../shared/geo when it is there: per-packet costs through BPF_PROG_TEST_RUN
    /// the flood, load times and map memory, printed as a table and written to
    /// target/bench/report.json. `--smoke` runs small tables and few repeats.
    Bench(bench::Args),
    /// Compare N frames between the XDP program and the reference model (needs root).
    ///
    /// Runs the differential test (tests/tests/differential.rs) in release: generated frames
    /// through BPF_PROG_TEST_RUN and through `geofence::model`, on random rule sets and the
    /// real table from ../shared/geo. Prints packets/s and the mismatch count.
    FuzzVerdicts(fuzz_verdicts::Args),
    /// Build geofence in release and install it with its systemd unit, completions and man pages.
    ///
    /// Into PREFIX (default /usr/local): bin/geofence, lib/systemd/system/geofence.service
    /// (or --unit-dir, e.g. /etc/systemd/system), share/bash-completion, share/zsh,
    /// share/fish and share/man/man1. --destdir stages everything under a directory.
    /// Files already in place are left alone, so running it again changes nothing.
    Install(install::Args),
    /// Run the cargo-fuzz targets (geo loaders, CLI parsers) for a while each.
    ///
    /// Installs cargo-fuzz when missing, then runs every target (or the ones named) for
    /// --time seconds on one core, niced. Prints executions per target; exits non-zero when
    /// one crashed, naming the saved input. Example: cargo xtask fuzz --time 300 geo_csv
    Fuzz(fuzz::Args),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::Setup => setup::run(setup::Scope::All),
        Task::Build(args) => build::run(&args),
        Task::Test(args) => test::run(&args),
        Task::Demo(args) => demo::run(&args),
        Task::Bench(args) => bench::run(&args),
        Task::FuzzVerdicts(args) => fuzz_verdicts::run(&args),
        Task::Install(args) => install::run(&args),
        Task::Fuzz(args) => fuzz::run(&args),
    };
    if let Err(error) = result {
        eprintln!("error: {error:#}");
        // Hand on the exit code of the program that failed (cargo's, the demo's), so that CI
        // sees what cargo would have reported.
        let code = error
            .chain()
            .find_map(|cause| cause.downcast_ref::<cmd::Failed>())
            .map_or(1, cmd::Failed::exit_code);
        process::exit(if code == 0 { 1 } else { code });
    }
}

/// The workspace root: the parent of this crate's directory.
pub fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives inside the workspace")
}

/// Cargo's target directory: `$CARGO_TARGET_DIR` (relative to the workspace root, where we run
/// cargo) or `target/`.
pub fn target_dir() -> PathBuf {
    let root = workspace_root();
    match env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    }
}

/// The `geofence` binary of a debug build, which the integration tests and the demo drive.
pub fn geofence_bin() -> PathBuf {
    target_dir().join("debug").join("geofence")
}

/// Announces the next phase of a task.
pub fn phase(what: &str) {
    eprintln!("==> {what}");
}
