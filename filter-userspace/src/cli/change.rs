//! The one path every change takes: lock, load, validate, apply, record. If applying fails
//! part way, the previous state is put back, so nothing is left half-applied.

use std::path::PathBuf;

use anyhow::Context as _;

use crate::{
    kernel::{self, Kernel},
    lock::Lock,
    state::{self, State},
};

pub struct Ctx {
    pub pin_dir: PathBuf,
    pub state_dir: PathBuf,
}

/// Held for the duration of one change.
pub struct Session {
    pub kernel: Kernel,
    pub state: State,
    _lock: Lock,
}

impl Ctx {
    /// Takes the lock and opens state and maps.
    pub fn begin(&self) -> anyhow::Result<Session> {
        kernel::check_privileges()?;
        state::ensure_dir(&self.state_dir)?;
        let lock = Lock::acquire(&self.state_dir)?;
        let state = State::load(&self.state_dir)?;
        let kernel = Kernel::open(&self.pin_dir)?;
        Ok(Session {
            kernel,
            state,
            _lock: lock,
        })
    }

    /// Applies `edit` to the rules: it validates and edits a copy of the state and returns
    /// the audit details; then the maps are synced and the state saved.
    pub fn change(
        &self,
        action: &str,
        edit: impl FnOnce(&mut State) -> anyhow::Result<serde_json::Value>,
    ) -> anyhow::Result<State> {
        let mut session = self.begin()?;
        let old = session.state.clone();
        let mut new = old.clone();
        let details = edit(&mut new)?;
        self.commit(&mut session.kernel, &old, &new, action, details)?;
        Ok(new)
    }

    pub fn commit(
        &self,
        kernel: &mut Kernel,
        old: &State,
        new: &State,
        action: &str,
        details: serde_json::Value,
    ) -> anyhow::Result<()> {
        if let Err(error) = kernel::sync(kernel, new) {
            return Err(restore(kernel, old, error));
        }
        if let Err(error) = new.save(&self.state_dir) {
            return Err(restore(kernel, old, error));
        }
        state::audit(&self.state_dir, action, details)
            .context("recording the change in the audit log")
    }
}

fn restore(kernel: &mut Kernel, old: &State, error: anyhow::Error) -> anyhow::Error {
    match kernel::sync(kernel, old) {
        Ok(_) => error.context("the change was not applied; the previous rules are in force"),
        Err(again) => error.context(format!(
            "the change failed and restoring the previous rules failed too ({again}); run the command again"
        )),
    }
}
