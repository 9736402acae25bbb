//! The engine: starts runs, calls step plugins, pauses for people, retries, fires timers,
//! and shares the work with the other runners on the same database.
//!
//! - [`transition`] decides: given a run record, what changes, as writes and events;
//! - [`runs`] holds what people ask for: start, answer, cancel, delete, restart, read;
//! - [`driver`] is this runner's part: committing transitions (and redoing one when another
//!   runner changed the run first), the plugin calls it makes for the runs it owns, taking
//!   over the runs of runners that died, and following what other runners commit;
//! - [`timers`] fires durable timers, each claimed so it fires once across runners;
//! - [`grants`] keeps plugin grants in the store and in force in the plugin host;
//! - [`children`] starts sub-workflow runs and hands their results to their parents;
//! - [`events`] takes events sent to the API and hands them to the steps waiting for them;
//! - [`schedules`] keeps schedules and fires each once across runners;
//! - [`versions`] stores and publishes workflow versions; [`access`] keeps tokens, the audit
//!   log and sessions; [`hooks`] is where the engine meets actions; [`watch`] lets readers
//!   hear that runs changed, on whichever runner.
//!
//! Every change is committed to the store before anything acts on it, and carries the run's
//! revision it was made from: a step is marked running (durably) before its plugin is called,
//! and a plugin's outcome is committed before the steps after it start. A run is driven by
//! one runner at a time, its owner in the database; a run in memory is a cache of its
//! committed record. Runs that wait or have finished are dropped from memory, so a hundred
//! thousand waiting runs cost no instances and little RAM.
//!
//! This module decides what happens; [`crate::store`] keeps it and [`crate::plugins`] runs
//! the WASM.

mod access;
mod children;
mod driver;
mod events;
mod grants;
mod hooks;
mod observe;
mod plugins;
mod runs;
mod schedules;
mod timers;
mod transition;
mod versions;
mod watch;

pub use access::Session;
pub use events::{EventError, EventReceipt};
pub use grants::GrantError;
pub use plugins::RemoveError;
pub use runs::RunQuery;
pub use schedules::ScheduleError;
pub use transition::context_for;
pub use versions::{SaveStatus, Saved, Staged, StagedVersion};
pub use watch::{RunChange, RunWatch};

use crate::names::{Digest, RunId, StepName};
use crate::plugins::PluginHost;
use crate::run::{RunRecord, RunState, StepState};
use crate::store::Store;
use crate::workflow::{Definition, Problems, Workflow};
use anyhow::{anyhow, Result};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, Notify};

/// Something that happened to a run, published after it was committed.
#[derive(Clone, Debug)]
pub enum Event {
    StepStarted {
        run: RunId,
        step: StepName,
        attempt: u32,
    },
    StepFinished {
        run: RunId,
        step: StepName,
        /// `Pending` means the attempt failed and a retry is scheduled.
        state: StepState,
        elapsed: Duration,
        detail: Option<String>,
    },
    RunChanged {
        run: RunId,
        state: RunState,
    },
    /// A run was created (its first transition's other events follow).
    RunStarted {
        run: RunId,
    },
    /// A step began waiting for a person (not when it keeps waiting after an answer).
    InteractionCreated {
        run: RunId,
        step: StepName,
    },
    /// A step still waits for a person after its `remind_every`; `count` reminders so far.
    InteractionReminder {
        run: RunId,
        step: StepName,
        count: u32,
    },
    /// An interaction expired and was handed to other people.
    InteractionEscalated {
        run: RunId,
        step: StepName,
        to: Vec<String>,
    },
}

/// How a run is started, beyond its workflow and inputs.
#[derive(Clone, Debug, Default)]
pub struct StartOptions {
    /// A client's `Idempotency-Key`: the same key, from the same caller, with the same
    /// request, returns the same run. Keys are scoped to the workflow and the caller.
    pub idempotency_key: Option<String>,
    /// The run this one restarts, and who restarts it (the new run keeps the original's
    /// `started_by`).
    pub restarted_from: Option<RunId>,
    pub restarted_by: Option<String>,
    /// The run and step that start this one as a sub-workflow, and how deep that parent is.
    pub parent: Option<(crate::run::ParentRef, u32)>,
    /// The schedule fire that starts this one.
    pub schedule: Option<crate::run::ScheduleRef>,
}

/// Who answers: a user name and the groups the user belongs to.
#[derive(Clone, Debug)]
pub struct Person {
    pub name: String,
    pub groups: Vec<String>,
    /// Admins may answer any step, assigned or not.
    pub admin: bool,
    /// Answers only steps assigned to them by name or group, not unassigned ones (approvers).
    pub assigned_only: bool,
}

impl Person {
    /// The assignees that name this person: their name and each of their groups as
    /// `group:NAME` (what [`crate::store::RunIndex::waiting_for`] holds).
    pub fn assignee_names(&self) -> Vec<String> {
        std::iter::once(self.name.clone())
            .chain(self.groups.iter().map(|g| format!("group:{g}")))
            .collect()
    }

    /// Whether this person is among `assignees` (user names, or groups as `group:NAME`);
    /// no assignees means anyone.
    pub fn may_answer(&self, assignees: &[String]) -> bool {
        self.admin
            || (assignees.is_empty() && !self.assigned_only)
            || assignees.iter().any(|a| match a.strip_prefix("group:") {
                Some(group) => self.groups.iter().any(|g| g == group),
                None => *a == self.name,
            })
    }
}

/// Why an answer was refused. Nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    #[error("no run {0}")]
    UnknownRun(RunId),
    #[error("{0}")]
    UnknownStep(String),
    /// The step (or run) is not waiting; the message names what is.
    #[error("{0}")]
    NotWaiting(String),
    /// The step does not accept this signal type.
    #[error("{0}")]
    UnknownSignal(String),
    /// The person is not among the step's assignees.
    #[error("{0}")]
    NotAssigned(String),
    /// The plugin refused the answer (wrong type, missing field, not allowed, repeated).
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// Why a run could not be restarted.
#[derive(Debug, thiserror::Error)]
pub enum RestartError {
    #[error("no run {0}")]
    UnknownRun(RunId),
    #[error("{0}")]
    NotRestartable(String),
    #[error("{0}")]
    UnknownVersion(String),
    #[error(transparent)]
    Start(#[from] StartError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// How a failed run is retried.
#[derive(Clone, Debug, Default)]
pub struct RetryOptions {
    /// Move the run to this version of its workflow (completed steps of the same name stay).
    pub version: Option<u64>,
    /// A corrected input for the failed step `.0`.
    pub step_input: Option<(String, serde_json::Value)>,
}

/// Why a run could not be retried.
#[derive(Debug, thiserror::Error)]
pub enum RetryError {
    #[error("no run {0}")]
    UnknownRun(RunId),
    #[error("{0}")]
    NotRetryable(String),
    #[error("{0}")]
    UnknownVersion(String),
    /// A corrected input names a step that is not run again, or has a bad shape.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Invalid(Problems),
    /// The `Idempotency-Key` already started a run from a different request.
    #[error("{0}")]
    KeyReused(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<crate::store::StoreError> for StartError {
    fn from(e: crate::store::StoreError) -> StartError {
        StartError::Internal(e.into())
    }
}

impl From<crate::store::StoreError> for AnswerError {
    fn from(e: crate::store::StoreError) -> AnswerError {
        AnswerError::Internal(e.into())
    }
}

impl From<crate::store::StoreError> for RestartError {
    fn from(e: crate::store::StoreError) -> RestartError {
        RestartError::Internal(e.into())
    }
}

/// How this runner shares work with others.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// How long a runner's runs stay its own without a heartbeat; after that another runner
    /// takes them over. Heartbeats come five times as often.
    pub lease: Duration,
    /// Where this runner serves, shown in `GET /v1/runners`.
    pub address: Option<String>,
    /// How long finished runs are kept unless their workflow says (`retention`); zero keeps
    /// them forever.
    pub retention: Duration,
}

/// How long finished runs are kept by default: 30 days.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            lease: Duration::from_secs(10),
            address: None,
            retention: DEFAULT_RETENTION,
        }
    }
}

type RunHandle = Arc<tokio::sync::Mutex<RunRecord>>;
type RunGuard = tokio::sync::OwnedMutexGuard<RunRecord>;

/// The engine; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    plugins: PluginHost,
    options: EngineOptions,
    workflows: Mutex<HashMap<Digest, Arc<Workflow>>>,
    /// Runs this runner holds in memory: the ones it drives, and ones being changed.
    live: Mutex<HashMap<RunId, RunHandle>>,
    /// Plugin calls under way in this process, as (run, step index, attempt).
    in_flight: Mutex<HashSet<(RunId, crate::run::Unit, u32)>>,
    /// Plugin results not yet recorded, by run: whoever holds the run next records them all
    /// in one transition (many items of one `for_each` step finish at once).
    returned: Mutex<HashMap<RunId, Vec<driver::Returned>>>,
    /// Signalled whenever a call leaves `in_flight`.
    call_ended: Notify,
    events: broadcast::Sender<Event>,
    /// Tasks in [`Engine::settled`], by run: woken by the commit that settles the run (here
    /// or on another runner), so a waiter is not woken by every other run's events.
    settle_waiters: Mutex<HashMap<RunId, Arc<Notify>>>,
    /// This runner's background tasks, aborted by [`Engine::stop`].
    background: Mutex<Vec<tokio::task::AbortHandle>>,
    timers_changed: Notify,
    /// Signalled when a runner gave its runs up, to take them over at once.
    orphans: Notify,
    /// Function hooks and the event outbox.
    actions: crate::actions::Actions,
}

impl Engine {
    /// Creates the engine over `store` and `plugins` with default options. It does nothing
    /// in the background until [`Engine::start_work`].
    pub fn new(store: Arc<dyn Store>, plugins: PluginHost) -> Engine {
        Self::with_options(store, plugins, EngineOptions::default())
    }

    /// [`Engine::new`] with options: the lease, and the address to show other runners.
    pub fn with_options(store: Arc<dyn Store>, plugins: PluginHost, options: EngineOptions) -> Engine {
        let (events, _) = broadcast::channel(4096);
        Engine {
            inner: Arc::new(Inner {
                actions: crate::actions::Actions::new(store.clone(), plugins.clone()),
                store,
                plugins,
                options,
                workflows: Mutex::new(HashMap::new()),
                live: Mutex::new(HashMap::new()),
                settle_waiters: Mutex::new(HashMap::new()),
                background: Mutex::new(Vec::new()),
                in_flight: Mutex::new(HashSet::new()),
                returned: Mutex::new(HashMap::new()),
                call_ended: Notify::new(),
                events,
                timers_changed: Notify::new(),
                orphans: Notify::new(),
            }),
        }
    }

    /// Starts this runner's background work (call inside a tokio runtime): firing timers,
    /// delivering events, following what other runners commit and, with several runners on
    /// the database, the heartbeat and taking over the runs of runners that died. Commands
    /// that only read or configure leave it off.
    pub async fn start_work(&self) -> Result<()> {
        driver::start(self).await?;
        self.background(tokio::spawn(timers::run(self.clone())));
        self.background(tokio::spawn(events::forget_old(self.clone())));
        self.background(tokio::spawn(schedules::run(self.clone())));
        self.background(self.inner.actions.start_delivery());
        Ok(())
    }

    /// Keeps `task` to abort when the engine stops.
    fn background(&self, task: tokio::task::JoinHandle<()>) {
        self.inner
            .background
            .lock()
            .expect("background lock")
            .push(task.abort_handle());
    }

    /// Stops cleanly: waits for this process's plugin calls, hands this runner's runs back so
    /// other runners take them over at once, and ends the background work.
    pub async fn stop(&self) {
        self.quiesce().await;
        for task in std::mem::take(&mut *self.inner.background.lock().expect("background lock")) {
            task.abort();
        }
    }

    pub fn plugins(&self) -> &PluginHost {
        &self.inner.plugins
    }

    /// Action targets and rules, and the hooks the API calls.
    pub fn actions(&self) -> &crate::actions::Actions {
        &self.inner.actions
    }

    /// This runner's id.
    pub fn runner(&self) -> &str {
        self.inner.store.runner()
    }

    /// The runners sharing the database, with their leases and heartbeats.
    pub async fn runners(&self) -> Result<Vec<crate::store::RunnerInfo>> {
        Ok(self.inner.store.runners().await?)
    }

    /// How many runs wait for a person, in the whole database.
    pub async fn waiting_count(&self) -> Result<u64> {
        Ok(self.inner.store.waiting_count().await?)
    }

    /// How many committed events wait to be delivered to action targets.
    pub async fn outbox_count(&self) -> Result<u64> {
        Ok(self.inner.store.outbox_count().await?)
    }

    /// What the database is, for messages: a file path, or a URL without its password.
    pub fn database(&self) -> String {
        self.inner.store.describe()
    }

    /// What the store's writer has committed so far, for the benchmark.
    pub fn writer_stats(&self) -> &crate::store::WriterStats {
        self.inner.store.writer_stats()
    }

    /// Events of this runner's runs, from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    /// A stored workflow by id, at `version` or its active version.
    pub async fn workflow(&self, id: &str, version: Option<u64>) -> Result<Option<Arc<Workflow>>> {
        match self.inner.store.workflow_version(id, version).await? {
            Some((_, digest)) => self.workflow_by_digest(&digest).await.map(Some),
            None => Ok(None),
        }
    }

    /// The workflow version a run started with.
    pub async fn workflow_of(&self, run: &RunRecord) -> Result<Arc<Workflow>> {
        self.workflow_by_digest(&run.workflow.digest).await
    }

    fn cache(&self, workflow: Workflow) -> Arc<Workflow> {
        let workflow = Arc::new(workflow);
        self.inner
            .workflows
            .lock()
            .expect("workflow cache lock")
            .insert(workflow.digest.clone(), workflow.clone());
        workflow
    }

    async fn workflow_by_digest(&self, digest: &Digest) -> Result<Arc<Workflow>> {
        if let Some(found) = self
            .inner
            .workflows
            .lock()
            .expect("workflow cache lock")
            .get(digest)
        {
            return Ok(found.clone());
        }
        let json = self
            .inner
            .store
            .definition(digest)
            .await?
            .ok_or_else(|| anyhow!("the definition {digest} is missing from the store"))?;
        let definition: Definition = serde_json::from_slice(&json)?;
        let reads = self
            .inner
            .plugins
            .read_templates(&definition.template_sources())
            .await
            .map_err(|e| anyhow!("cannot read the templates of {digest}: {e}"))?;
        // Plugins and sizes were checked when the definition was stored; runs use pinned
        // digests, and a stored definition stays usable when the limits change.
        let workflow = Workflow::from_stored(definition, &reads)
            .map_err(|p| anyhow!("stored definition {digest} no longer validates: {p}"))?;
        Ok(self.cache(workflow))
    }
}
