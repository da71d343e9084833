//! Where the daemon's log goes, through `tracing`: under systemd (which sets
//! `JOURNAL_STREAM`) to the journal with each event's priority; elsewhere, or when the
//! journal's socket is absent, to stderr, one line per event with its UTC time and level
//! and no colors. `GEOFENCE_LOG` sets the level, `info` unless it says otherwise
//! (`debug`, `warn`, `error`, or `tracing_subscriber::EnvFilter` directives). aya's
//! messages, written with `log`, arrive through the same subscriber.

use tracing::Subscriber;
use tracing_journald::{Priority, PriorityMappings};
use tracing_subscriber::{
    EnvFilter, Layer, filter::LevelFilter, fmt::MakeWriter, layer::SubscriberExt as _,
    registry::LookupSpan, util::SubscriberInitExt as _,
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

/// The filter of `GEOFENCE_LOG`'s directives, `info` when it has none. Without a level of
/// its own, the rest stays at `info`: `geofence=debug` adds geofence's debug lines, and a
/// misspelt level, which EnvFilter reads as a target, does not silence the log.
fn filter(directives: Option<&str>) -> EnvFilter {
    let directives = directives.unwrap_or_default();
    // Directives it cannot read are named on stderr and left out.
    let filter = EnvFilter::builder().parse_lossy(directives);
    // LevelFilter reads an empty string as a level.
    let has_level = directives
        .split(',')
        .map(str::trim)
        .any(|d| !d.is_empty() && d.parse::<LevelFilter>().is_ok());
    if has_level {
        filter
    } else {
        filter.add_directive(LevelFilter::INFO.into())
    }
}

/// One line per event: the UTC time, the level and the message, without module paths or
/// colors (which a dependency enabling tracing-subscriber's `ansi` would turn on).
fn plain<S>(writer: impl for<'w> MakeWriter<'w> + Send + Sync + 'static) -> impl Layer<S>
where
    S: Subscriber + for<'s> LookupSpan<'s>,
{
    tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_target(false)
        .with_ansi(false)
}

/// Installs the subscriber; a second call (tests) keeps the first.
pub fn init() {
    let directives = std::env::var(LEVEL_VAR).ok();
    let journal = stderr_is_journal()
        .then(tracing_journald::layer)
        .and_then(Result::ok)
        .map(|layer| layer.with_priority_mappings(priorities()));
    // Without the journal's socket, plain lines on stderr, which systemd also keeps.
    let stderr = journal.is_none().then(|| plain(std::io::stderr));
    let _ = tracing_subscriber::registry()
        .with(filter(directives.as_deref()))
        .with(journal)
        .with(stderr)
        .try_init();
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// What the subscriber of `directives` writes for the events `emit` makes.
    fn written(directives: Option<&str>, emit: impl FnOnce()) -> String {
        #[derive(Clone, Default)]
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Sink {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().expect("sink").extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sink = Sink::default();
        let writer = sink.clone();
        let subscriber = tracing_subscriber::registry()
            .with(filter(directives))
            .with(plain(move || writer.clone()));
        tracing::subscriber::with_default(subscriber, emit);
        let bytes = sink.0.lock().expect("sink").clone();
        String::from_utf8(bytes).expect("UTF-8")
    }

    #[test]
    fn a_line_is_utc_time_level_and_message() {
        let text = written(None, || tracing::warn!("fleet: outage {} began", 1));
        let (time, rest) = text.split_once(' ').expect("a time, then the rest");
        assert!(
            time.ends_with('Z') && time.parse::<jiff::Timestamp>().is_ok(),
            "{text:?}"
        );
        assert_eq!(rest.trim_start(), "WARN fleet: outage 1 began\n");
        assert!(!text.contains('\x1b'), "no escape codes: {text:?}");
    }

    #[test]
    fn geofence_log_sets_the_level() {
        let emit = || {
            tracing::debug!("d");
            tracing::info!("i");
            tracing::warn!("w");
            tracing::error!("e");
        };
        let levels = |directives| -> Vec<String> {
            written(directives, emit)
                .lines()
                .filter_map(|l| l.split_whitespace().nth(1).map(String::from))
                .collect()
        };
        assert_eq!(levels(None), ["INFO", "WARN", "ERROR"]);
        assert_eq!(levels(Some("")), ["INFO", "WARN", "ERROR"]);
        assert_eq!(levels(Some("debug")), ["DEBUG", "INFO", "WARN", "ERROR"]);
        assert_eq!(levels(Some("warn")), ["WARN", "ERROR"]);
        assert_eq!(levels(Some("error")), ["ERROR"]);
        assert_eq!(
            levels(Some("loud")),
            ["INFO", "WARN", "ERROR"],
            "not a level"
        );
        let ours = ["DEBUG", "INFO", "WARN", "ERROR"];
        assert_eq!(levels(Some("geofence=debug")), ours);
        assert_eq!(levels(Some("hyper=debug")), ["INFO", "WARN", "ERROR"]);
    }
}
