//! The progress display of `geo load` (and of an `apply` that loads a table): a bar of
//! bytes read per file, then a spinner per phase. Only when standard output is a terminal:
//! in a pipe, a script or a test it does not exist, so nothing but the result is printed.

use std::{
    collections::HashMap,
    io::IsTerminal as _,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::geo::progress::{self, Listening, ReadProgress};

const TICK: Duration = Duration::from_millis(100);

/// The bars of one load; cleared when dropped.
pub struct LoadProgress {
    multi: MultiProgress,
    files: Mutex<HashMap<PathBuf, ProgressBar>>,
    phase: Mutex<Option<ProgressBar>>,
}

/// While it lives, geo file reads are shown.
pub struct Shown {
    progress: Arc<LoadProgress>,
    _listening: Listening,
}

/// A display for one load if standard output is a terminal, else `None`.
pub fn start() -> Option<Shown> {
    if !std::io::stdout().is_terminal() {
        return None;
    }
    // Drawn on stderr, which indicatif leaves alone unless it is a terminal too, so that
    // standard output carries only the result line.
    let progress = Arc::new(LoadProgress {
        multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
        files: Mutex::new(HashMap::new()),
        phase: Mutex::new(None),
    });
    let listening = progress::listen(progress.clone());
    Some(Shown {
        progress,
        _listening: listening,
    })
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{prefix:>32!} [{bar:30}] {binary_bytes:>10}/{binary_total_bytes:<10} {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ")
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

impl Shown {
    /// Ends the file bars and shows `what` as the current phase, replacing the previous one.
    pub fn phase(&self, what: &str) {
        if let Ok(files) = self.progress.files.lock() {
            for bar in files.values() {
                bar.finish_with_message("done");
            }
        }
        let spinner = self.progress.multi.add(ProgressBar::new_spinner());
        spinner.set_style(spinner_style());
        spinner.set_message(what.to_string());
        spinner.enable_steady_tick(TICK);
        if let Ok(mut phase) = self.progress.phase.lock()
            && let Some(previous) = phase.replace(spinner)
        {
            previous.finish_and_clear();
        }
    }
}

impl Drop for Shown {
    fn drop(&mut self) {
        // The result line follows on stdout; the bars have served their purpose.
        if let Ok(files) = self.progress.files.lock() {
            files.values().for_each(ProgressBar::finish_and_clear);
        }
        if let Ok(mut phase) = self.progress.phase.lock()
            && let Some(spinner) = phase.take()
        {
            spinner.finish_and_clear();
        }
        let _ = self.progress.multi.clear();
    }
}

impl ReadProgress for LoadProgress {
    fn started(&self, path: &Path, bytes: u64) {
        let bar = self.multi.add(ProgressBar::new(bytes));
        bar.set_style(bar_style());
        let name = path.file_name().unwrap_or(path.as_os_str());
        bar.set_prefix(name.to_string_lossy().into_owned());
        bar.set_message("reading");
        if let Ok(mut files) = self.files.lock() {
            files.insert(path.to_owned(), bar);
        }
    }

    fn read(&self, path: &Path, bytes: u64) {
        if let Some(bar) = self.files.lock().ok().and_then(|f| f.get(path).cloned()) {
            bar.inc(bytes);
        }
    }

    fn finished(&self, path: &Path) {
        if let Some(bar) = self.files.lock().ok().and_then(|f| f.get(path).cloned()) {
            bar.set_message("parsing");
            bar.enable_steady_tick(TICK);
        }
    }
}
