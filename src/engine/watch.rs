//! Hearing that runs changed, whichever runner committed the change: the store's notices of
//! run writes, for readers that show runs as they change (the browser's live pages). It
//! decides nothing and changes nothing.

use super::Engine;
use crate::names::RunId;
use crate::run::RunState;
use crate::store::Notice;
use tokio::sync::broadcast::error::RecvError;

/// A change to runs, as a watcher hears of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunChange {
    /// Run `id` was written (by any runner) and is now in `state`.
    Run { id: RunId, state: RunState },
    /// Changes may have been missed (a lost database connection, or the watcher fell
    /// behind): read again what is shown.
    Missed,
}

/// The run changes committed from the moment [`Engine::watch_runs`] was called.
pub struct RunWatch(tokio::sync::broadcast::Receiver<Notice>);

impl RunWatch {
    /// The next change; `None` once the engine's store has closed.
    pub async fn next(&mut self) -> Option<RunChange> {
        loop {
            match self.0.recv().await {
                Ok(Notice::Run { id, state, .. }) => return Some(RunChange::Run { id, state }),
                Ok(Notice::Missed) | Err(RecvError::Lagged(_)) => return Some(RunChange::Missed),
                Ok(_) => continue,
                Err(RecvError::Closed) => return None,
            }
        }
    }
}

impl Engine {
    /// Watches every run write committed from now on, by this runner or any other sharing
    /// the database.
    pub fn watch_runs(&self) -> RunWatch {
        RunWatch(self.inner.store.subscribe())
    }
}
