//! Log lines on stderr that read well in a terminal and in the journal: under systemd
//! (which sets `JOURNAL_STREAM`) each line starts with its syslog priority, `<3>` for
//! errors (sd-daemon(3)), and journald adds the time; elsewhere, a UTC time and the level.
//! No colors either way. `GEOFENCE_LOG=debug|info|warn|error` sets the level (info).

use std::io::Write as _;

use log::{Level, LevelFilter, Log, Metadata, Record};

struct Stderr {
    journal: bool,
}

impl Log for Stderr {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        // One write per line, so lines from several threads never interleave.
        let line = if self.journal {
            let priority = match record.level() {
                Level::Error => 3,
                Level::Warn => 4,
                Level::Info => 6,
                Level::Debug | Level::Trace => 7,
            };
            format!("<{priority}>{}\n", record.args())
        } else {
            let now = jiff::Timestamp::now()
                .round(jiff::Unit::Millisecond)
                .unwrap_or_else(|_| jiff::Timestamp::now());
            format!("{now} {:<5} {}\n", record.level(), record.args())
        };
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

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

/// Installs the logger; a second call (tests) keeps the first.
pub fn init() {
    let level = match std::env::var("GEOFENCE_LOG").as_deref() {
        Ok("debug") => LevelFilter::Debug,
        Ok("warn") => LevelFilter::Warn,
        Ok("error") => LevelFilter::Error,
        _ => LevelFilter::Info,
    };
    let journal = stderr_is_journal();
    if log::set_logger(Box::leak(Box::new(Stderr { journal }))).is_ok() {
        log::set_max_level(level);
    }
}
