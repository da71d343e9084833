//! Where the daemon's log goes, through `tracing`: under systemd (which sets
//! `JOURNAL_STREAM`) to the journal with each event's priority; elsewhere, or when the
//! journal's socket is absent, to stderr, one line per event with its UTC time and level
//! and no colors. `GEOFENCE_LOG` sets the level, `info` unless it says otherwise
//! (`debug`, `warn`, `error`, or any `tracing_subscriber::EnvFilter` directive). aya's
//! messages, written with `log`, arrive through the same subscriber.

use tracing_journald::{Priority, PriorityMappings};
use tracing_subscriber::{
    EnvFilter, filter::LevelFilter, layer::SubscriberExt as _, util::SubscriberInitExt as _,
};

/// The variable that sets the level.
const LEVEL_VAR: &str = "GEOFENCE_LOG";

/// Whether stderr is the journal stream systemd gave us: `JOURNAL_STREAM` is `DEV:INODE`
/// of it (systemd.exec(5)); a redirect of stderr elsewhere gets plain lines.
fn stderr_is_journal() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = stream.to_str().and_then(|s| s.split_once(':')) else {
        return false;
    };
    let Ok(stderr) = std::fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    dev.parse() == Ok(stderr.dev()) && ino.parse() == Ok(stderr.ino())
}

/// Info is 6 (syslog's info), not tracing-journald's default of 5 (notice): routine
/// events stay out of `journalctl -p notice`, as they did when lines carried `<6>`.
fn priorities() -> PriorityMappings {
    PriorityMappings {
        error: Priority::Error,
        warn: Priority::Warning,
        info: Priority::Informational,
        debug: Priority::Debug,
        trace: Priority::Debug,
    }
}

/// Installs the subscriber; a second call (tests) keeps the first.
pub fn init() {
    let filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .with_env_var(LEVEL_VAR)
        .from_env_lossy();
    let journal = stderr_is_journal()
        .then(tracing_journald::layer)
        .and_then(Result::ok)
        .map(|layer| layer.with_priority_mappings(priorities()));
    // Without the journal's socket, plain lines on stderr, which systemd also keeps.
    let stderr = journal.is_none().then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_target(false)
    });
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(journal)
        .with(stderr)
        .try_init();
}
