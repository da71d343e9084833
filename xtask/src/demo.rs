//! `cargo xtask demo`.
//!
//! Sets up, builds geofence and the demo, then the test SFU for the demo's second scene (two
//! meetings on one UDP port), and runs the demo. The second scene also needs the venv with
//! aiortc that setup makes: when setup or the SFU's build fails, the demo still runs its
//! first scene and says why it skips the second.
//!
//! `--fleet` runs the fleet scene instead: etcd, three relays with their fleet daemons,
//! one `geofence fleet apply`, then `fleet status` and the fleet's report and audit trail.

use std::ffi::OsString;

use anyhow::Result;

use crate::{cmd, geofence_bin, phase, setup, target_dir};

#[derive(clap::Args)]
pub struct Args {
    /// Run the fleet scene instead: an etcd on loopback, three relays in network
    /// namespaces each running `geofence daemon --fleet`, one `geofence fleet apply`.
    #[arg(long)]
    fleet: bool,
    /// Arguments for the demo binary, after `--`.
    #[arg(last = true, value_name = "DEMO_ARGS")]
    demo_args: Vec<OsString>,
}

pub fn run(args: &Args) -> Result<()> {
    phase("setup");
    if let Err(error) = setup::run(setup::Scope::All) {
        // Its last step is the WebRTC venv, which only the second scene needs; whatever else
        // is missing fails below, where it is needed.
        eprintln!(
            "warning: setup did not finish: {error:#}\n\
             warning: going on; the demo skips its single-port scene if the WebRTC venv is \
             missing"
        );
    }

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

    if args.fleet {
        phase("running the fleet demo");
        let mut demo = cmd::command(target_dir().join("debug").join("demo"));
        demo.current_dir(crate::workspace_root())
            .env("GEOFENCE_BIN", geofence_bin())
            .arg("--fleet")
            .args(&args.demo_args);
        return cmd::run(&mut demo);
    }

    phase("building the test SFU (for the single-port scene)");
    let sfu_failed = cmd::run(cmd::cargo().args([
        "build",
        "-p",
        "geofence-test-sfu",
        "--bin",
        "geofence-test-sfu",
    ]))
    .err()
    .map(|error| {
        eprintln!("warning: the demo skips its single-port scene: {error:#}");
        format!("building the test SFU failed: {error:#}")
    });

    phase("running the demo");
    let debug = target_dir().join("debug");
    let mut demo = cmd::command(debug.join("demo"));
    demo.current_dir(crate::workspace_root())
        .env("GEOFENCE_BIN", geofence_bin())
        .env("GEOFENCE_SFU_BIN", debug.join("geofence-test-sfu"))
        .env(
            "GEOFENCE_WEBRTC_PYTHON",
            target_dir().join("webrtc-venv").join("bin").join("python"),
        )
        .args(&args.demo_args);
    if let Some(why) = sfu_failed {
        demo.env("GEOFENCE_DEMO_MUX_SKIP", why);
    }
    // A failing demo fails with its own exit code (see main).
    cmd::run(&mut demo)
}
