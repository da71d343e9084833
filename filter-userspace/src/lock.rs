//! One change at a time: an exclusive `flock` on the state directory's lock file. The
//! kernel drops the lock when its holder dies, so a killed CLI never leaves it stale.

use std::{
    fs,
    path::Path,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use nix::fcntl::{Flock, FlockArg};

const WAIT: Duration = Duration::from_secs(30);

pub struct Lock {
    _file: Flock<fs::File>,
}

impl Lock {
    pub fn acquire(state_dir: &Path) -> anyhow::Result<Lock> {
        let path = state_dir.join("lock");
        let started = Instant::now();
        let mut told = false;
        loop {
            let file = fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .with_context(|| format!("opening lock file {}", path.display()))?;
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(file) => return Ok(Lock { _file: file }),
                Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                    if started.elapsed() > WAIT {
                        bail!(
                            "another geofence command has held {} for {}s; giving up",
                            path.display(),
                            WAIT.as_secs()
                        );
                    }
                    if !told {
                        eprintln!("waiting for another geofence command to finish...");
                        told = true;
                    }
                    thread::sleep(Duration::from_millis(20));
                }
                Err((_, errno)) => {
                    return Err(errno).with_context(|| format!("locking {}", path.display()));
                }
            }
        }
    }
}
