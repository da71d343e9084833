//! The `geofence` command line. Each call is a short process: take the lock, load the
//! state, validate the whole change, apply it to the pinned maps, record it.

mod args;
mod audit;
mod change;
mod geo;
mod interface;
mod meeting;
mod report;
mod restore;
mod rules;
mod show;

use std::process::ExitCode;

use clap::Parser as _;

pub use args::{Cli, Command};

/// Runs the CLI with the process arguments; errors are printed with their causes.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("geofence: error: {error}");
            for cause in error.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    let ctx = change::Ctx {
        pin_dir: cli.pin_dir,
        state_dir: cli.state_dir,
    };
    match cli.command {
        Command::Attach(a) => interface::attach(&ctx, a),
        Command::Detach(a) => interface::detach(&ctx, a),
        Command::Geo(g) => geo::run(&ctx, g),
        Command::Meeting(m) => meeting::run(&ctx, m),
        Command::Flow(f) => meeting::flow(&ctx, f),
        Command::Block(b) => rules::block(&ctx, b),
        Command::Unblock(u) => rules::unblock(&ctx, u),
        Command::Allow(a) => rules::allow(&ctx, a),
        Command::Status => show::status(&ctx),
        Command::Stats(s) => show::stats(&ctx, s),
        Command::Restore => restore::restore(&ctx),
        Command::Audit(a) => audit::run(&ctx, a),
        Command::Report(r) => report::run(&ctx, r),
    }
}
