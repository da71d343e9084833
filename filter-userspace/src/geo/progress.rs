//! Bytes read from geo files, for a progress display. The loaders stay unaware of it: the
//! file is wrapped in a [`Reader`] that tells the listener, if one is installed, how far
//! reading has got. Without a listener (every caller but an interactive `geo load`) the
//! wrapper only checks an empty slot once per file.

use std::{
    io::{self, Read},
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
};

/// Told about each file as it is read; called from the loader's worker threads.
pub trait ReadProgress: Send + Sync {
    /// Reading `path` starts; it is `bytes` long on disk.
    fn started(&self, path: &Path, bytes: u64);
    /// `bytes` more of `path` were read.
    fn read(&self, path: &Path, bytes: u64);
    /// `path` was read to its end; parsing follows.
    fn finished(&self, path: &Path);
}

static LISTENER: RwLock<Option<Arc<dyn ReadProgress>>> = RwLock::new(None);

/// Installs `listener` until the returned guard is dropped.
pub fn listen(listener: Arc<dyn ReadProgress>) -> Listening {
    if let Ok(mut slot) = LISTENER.write() {
        *slot = Some(listener);
    }
    Listening(())
}

/// Removes the listener on drop.
pub struct Listening(());

impl Drop for Listening {
    fn drop(&mut self) {
        if let Ok(mut slot) = LISTENER.write() {
            *slot = None;
        }
    }
}

/// A file being read, reporting to the listener installed when it was opened.
pub(crate) struct Reader<R> {
    inner: R,
    path: PathBuf,
    listener: Option<Arc<dyn ReadProgress>>,
}

impl Reader<std::fs::File> {
    pub(crate) fn new(file: std::fs::File, path: &Path) -> Self {
        let listener = LISTENER.read().ok().and_then(|slot| slot.clone());
        if let Some(l) = &listener {
            l.started(path, file.metadata().map_or(0, |m| m.len()));
        }
        Reader {
            inner: file,
            path: path.to_owned(),
            listener,
        }
    }
}

impl<R: Read> Read for Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(l) = &self.listener {
            match n {
                0 if !buf.is_empty() => l.finished(&self.path),
                n => l.read(&self.path, n as u64),
            }
        }
        Ok(n)
    }
}
