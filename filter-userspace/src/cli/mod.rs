//! The `geofence` command line. Each call is a short process: take the lock, load the
//! state, validate the whole change, apply it to the pinned maps, record it.

mod apply;
mod args;
mod audit;
mod docs;
mod explain;
mod export;
mod fleet;
mod geo;
mod interface;
mod meeting;
mod monitor;
mod mux;
mod progress;
mod report;
mod restore;
mod rule_view;
mod rules;
mod show;
mod status;
mod upgrade;

use std::process::ExitCode;

use clap::Parser as _;

pub use args::{Cli, Command};

/// Runs the CLI with the process arguments; errors are printed with their causes.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // The daemon keeps Rust's default: a log reader going away must not kill it. So do the
    // fleet commands: etcd closing a TLS connection (a refused client certificate) would
    // otherwise kill them mid-write without a word, their sockets not being std's.
    if !matches!(cli.command, Command::Daemon(_) | Command::Fleet(_)) {
        restore_sigpipe();
    }
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
    let ctx = crate::change::Ctx {
        pin_dir: cli.pin_dir,
        state_dir: cli.state_dir,
        clock: crate::expiry::Clock::now(),
    };
    match cli.command {
        Command::Attach(a) => interface::attach(&ctx, a),
        Command::Detach(a) => interface::detach(&ctx, a),
        Command::Geo(g) => geo::run(&ctx, g),
        Command::Meeting(m) => meeting::run(&ctx, m),
        Command::Flow(f) => meeting::flow(&ctx, f),
        Command::Mux(m) => mux::run(&ctx, m),
        Command::Ufrag(u) => mux::ufrag(&ctx, u),
        Command::Block(b) => rules::block(&ctx, b),
        Command::Unblock(u) => rules::unblock(&ctx, u),
        Command::Allow(a) => rules::allow(&ctx, a),
        Command::Status(s) => status::status(&ctx, s),
        Command::Stats(s) => show::stats(&ctx, s),
        Command::Monitor(m) => monitor::monitor(&ctx, m),
        Command::Restore => restore::restore(&ctx),
        Command::Upgrade(args) => upgrade::upgrade(&ctx, args),
        Command::Explain(e) => explain::explain(&ctx, e),
        Command::Daemon(d) => crate::daemon::run(ctx, d),
        Command::Completions(c) => docs::completions(&c),
        Command::Man(m) => docs::man(&m),
        Command::Apply(a) => apply::apply(&ctx, a),
        Command::Export(e) => export::export(&ctx, e),
        Command::Audit(a) => audit::run(&ctx, a),
        Command::Report(r) => report::run(&ctx, r),
        Command::Fleet(f) => fleet::run(&ctx, f),
    }
}

/// Rust ignores SIGPIPE, so `geofence status | head` would panic on the closed pipe; a
/// command-line tool should end quietly instead, as `ls` does. Sockets are unaffected:
/// std writes to them with MSG_NOSIGNAL.
fn restore_sigpipe() {
    // SAFETY: called once at startup, before any thread exists; SIG_DFL is a valid handler.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
