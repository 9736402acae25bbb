//! The engine: starts runs, calls step plugins, pauses for people, retries, fires timers and
//! recovers after a crash.
//!
//! A run changes only under its own lock, and every change is committed to the store before
//! anything acts on it: a step is marked running (durably) before its plugin is called, and a
//! plugin's outcome is committed before the steps after it start. A run in memory is a cache
//! of its committed record; runs that wait or have finished are dropped from memory, so a
//! hundred thousand waiting runs cost no instances and little RAM.
//!
//! Plugin calls run on their own tasks without the run lock, so independent steps of a DAG
//! and many runs proceed at once. Answers are the exception: `resume` is called under the
//! run's lock so two answers to one step are applied one after the other.
//!
//! This module decides what happens; [`crate::store`] keeps it and [`crate::plugins`] runs
//! the WASM.

mod hooks;
mod timers;
mod transition;
mod versions;

pub use versions::{SaveStatus, Saved};

pub use transition::context_for;

use crate::names::{Digest, RunId, StepName};
use crate::plugins::{CallContext, Limits, Outcome, PluginHost, ResumeEvent};
use crate::run::{now, AnswerRecord, RunRecord, RunState, StepRecord, StepState, WorkflowRef};
use crate::store::{Store, Write};
use crate::workflow::{Definition, Problems, Workflow};
use anyhow::{anyhow, Result};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, Notify};
use transition::Transition;

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
}

/// How a run is started, beyond its workflow and inputs.
#[derive(Clone, Debug, Default)]
pub struct StartOptions {
    /// A client's `Idempotency-Key`: the same key, from the same caller, with the same
    /// request, returns the same run. Keys are scoped to the workflow and the caller.
    pub idempotency_key: Option<String>,
    /// The run this one restarts.
    pub restarted_from: Option<RunId>,
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

type RunHandle = Arc<tokio::sync::Mutex<RunRecord>>;
type RunGuard = tokio::sync::OwnedMutexGuard<RunRecord>;

/// The engine; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    plugins: PluginHost,
    workflows: Mutex<HashMap<Digest, Arc<Workflow>>>,
    live: Mutex<HashMap<RunId, RunHandle>>,
    keyed_starts: tokio::sync::Mutex<()>,
    /// Serializes version decisions (next number, draft or published) per process.
    version_writes: tokio::sync::Mutex<()>,
    /// Plugin calls under way in this process, as (run, step index, attempt).
    in_flight: Mutex<HashSet<(RunId, usize, u32)>>,
    /// Signalled whenever a call leaves `in_flight`.
    call_ended: Notify,
    events: broadcast::Sender<Event>,
    /// Tasks in [`Engine::settled`], by run: woken by the commit that settles the run, so a
    /// waiter is not woken by every other run's events.
    settle_waiters: Mutex<HashMap<RunId, Arc<Notify>>>,
    timers_changed: Notify,
    /// Function hooks and the event outbox.
    actions: crate::actions::Actions,
}

impl Engine {
    /// Creates the engine and starts its timer task (call inside a tokio runtime).
    pub fn new(plugins: PluginHost) -> Engine {
        let (events, _) = broadcast::channel(4096);
        let engine = Engine {
            inner: Arc::new(Inner {
                store: plugins.store().clone(),
                actions: crate::actions::Actions::start(plugins.clone()),
                plugins,
                workflows: Mutex::new(HashMap::new()),
                live: Mutex::new(HashMap::new()),
                settle_waiters: Mutex::new(HashMap::new()),
                keyed_starts: tokio::sync::Mutex::new(()),
                version_writes: tokio::sync::Mutex::new(()),
                in_flight: Mutex::new(HashSet::new()),
                call_ended: Notify::new(),
                events,
                timers_changed: Notify::new(),
            }),
        };
        tokio::spawn(timers::run(engine.clone()));
        engine
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn plugins(&self) -> &PluginHost {
        &self.inner.plugins
    }

    /// Action targets and rules, and the hooks the API calls.
    pub fn actions(&self) -> &crate::actions::Actions {
        &self.inner.actions
    }

    /// Events of every run, from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    /// A stored workflow by id, at `version` or its active version.
    pub async fn workflow(&self, id: &str, version: Option<u64>) -> Result<Option<Arc<Workflow>>> {
        match self.inner.store.workflow_version(id, version)? {
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
            .definition(digest)?
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

    /// Starts a run: checks inputs, pins plugin digests, commits the run and begins it.
    pub async fn start(
        &self,
        workflow: &Arc<Workflow>,
        inputs: Map<String, Value>,
        started_by: &str,
    ) -> Result<RunId, StartError> {
        self.start_with(workflow, inputs, started_by, StartOptions::default())
            .await
    }

    /// [`Engine::start`] with an idempotency key or a run it restarts. A key that already
    /// started a run returns that run instead of starting another.
    pub async fn start_with(
        &self,
        workflow: &Arc<Workflow>,
        inputs: Map<String, Value>,
        started_by: &str,
        options: StartOptions,
    ) -> Result<RunId, StartError> {
        // Keys are per workflow and caller; the same key with another request is refused.
        // Keyed starts are serialized so two requests with one key cannot both miss.
        let given_key = options.idempotency_key;
        let idempotency_key = given_key
            .as_ref()
            .map(|key| format!("{}\0{started_by}\0{key}", workflow.definition.id));
        let request = Digest::of(
            serde_json::json!({"version": workflow.definition.version, "inputs": inputs})
                .to_string()
                .as_bytes(),
        );
        let _keyed = match (&idempotency_key, &given_key) {
            (Some(key), Some(given)) => {
                let guard = self.inner.keyed_starts.lock().await;
                if let Some((id, earlier)) = self.inner.store.idempotent_run(key)? {
                    if earlier.is_some_and(|earlier| earlier != request) {
                        return Err(StartError::KeyReused(format!(
                            "Idempotency-Key {:?} already started run {id} with a different request; \
                             send the same request to get that run, or use a new key",
                            crate::limits::clip(given)
                        )));
                    }
                    return Ok(id);
                }
                Some(guard)
            }
            _ => None,
        };
        let inputs = hooks::pre_start(&self.inner.actions, workflow, inputs, started_by).await?;
        let inputs = workflow.bind_inputs(inputs).map_err(StartError::Invalid)?;
        let mut problems = Vec::new();
        let mut steps = Vec::new();
        for (i, step) in workflow.steps.iter().enumerate() {
            match self.inner.plugins.resolve(&step.plugin) {
                Ok(resolved) => steps.push(new_step(step.name.clone(), resolved)),
                Err(message) => problems.push(crate::workflow::Problem {
                    path: format!("steps[{i}].plugin"),
                    message,
                }),
            }
        }
        if !problems.is_empty() {
            return Err(StartError::Invalid(Problems(problems)));
        }
        let mut run = RunRecord {
            id: RunId::new(),
            workflow: WorkflowRef {
                id: workflow.definition.id.clone(),
                version: workflow.definition.version,
                digest: workflow.digest.clone(),
            },
            state: RunState::Pending,
            inputs,
            started_by: started_by.to_owned(),
            created_at: now(),
            ended_at: None,
            steps,
            outputs: None,
            error: None,
            restarted_from: options.restarted_from,
            idempotency_key: idempotency_key.clone(),
            next_log_seq: 0,
        };
        let mut tx = Transition::default();
        if let Some(key) = idempotency_key {
            tx.writes.push(Write::Idempotency {
                key,
                run: run.id,
                request,
            });
        }
        if let Some(from) = options.restarted_from {
            tx.log(&mut run, "info", None, format!("restart of run {from}"));
        }
        tx.log(&mut run, "info", None, format!("run started by {started_by}"));
        tx.events.push(Event::RunStarted { run: run.id });
        let id = run.id;
        let handle: RunHandle = Arc::new(tokio::sync::Mutex::new(run));
        let mut guard = handle.clone().lock_owned().await;
        self.inner.live.lock().expect("live runs lock").insert(id, handle);
        // `guard` holds the handle now; the map has the other reference.
        transition::advance(&mut guard, workflow, &self.inner.plugins, &mut tx).await;
        self.commit(&mut guard, tx).await?;
        Ok(id)
    }

    /// The run as last committed.
    pub async fn run(&self, id: RunId) -> Result<Option<RunRecord>> {
        let live = self.inner.live.lock().expect("live runs lock").get(&id).cloned();
        match live {
            Some(handle) => Ok(Some(handle.lock().await.clone())),
            None => self.inner.store.run(id),
        }
    }

    /// Waits until the run is neither pending nor running, and returns it.
    pub async fn settled(&self, id: RunId) -> Result<RunRecord> {
        loop {
            let waiters = self
                .inner
                .settle_waiters
                .lock()
                .expect("settle waiters lock")
                .entry(id)
                .or_default()
                .clone();
            // Registered before the state is read, so a commit in between still wakes us.
            let woken = waiters.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let run = self.run(id).await;
            match run {
                Ok(Some(run)) if matches!(run.state, RunState::Pending | RunState::Running) => woken.await,
                other => {
                    self.forget_settle_waiters(id, &waiters);
                    return other?.ok_or_else(|| anyhow!("no run {id}"));
                }
            }
        }
    }

    /// Drops the waiters entry of run `id` if no other task waits on it.
    fn forget_settle_waiters(&self, id: RunId, mine: &Arc<Notify>) {
        let mut waiters = self.inner.settle_waiters.lock().expect("settle waiters lock");
        // The map and `mine` are the only holders: no one else is registered.
        if waiters
            .get(&id)
            .is_some_and(|w| Arc::ptr_eq(w, mine) && Arc::strong_count(mine) == 2)
        {
            waiters.remove(&id);
        }
    }

    /// Answers a waiting step with the signal `signal_type` (`Step.SignalType`).
    pub async fn answer(
        &self,
        id: RunId,
        step_name: &str,
        signal_type: &str,
        data: Value,
        person: &Person,
    ) -> Result<RunRecord, AnswerError> {
        let answered_by = person.name.as_str();
        let mut run = self.lock(id).await?.ok_or(AnswerError::UnknownRun(id))?;
        let Some(i) = run.steps.iter().position(|s| s.name.as_str() == step_name) else {
            return Err(AnswerError::UnknownStep(format!(
                "run {id} has no step {step_name}; {}",
                run.describe_waiting()
            )));
        };
        let step = &run.steps[i];
        let Some(waiting) = step.waiting.as_ref().filter(|_| step.state == StepState::Waiting) else {
            return Err(AnswerError::NotWaiting(format!(
                "step {step_name} is {}, not waiting; {}",
                serde_json::to_value(step.state)
                    .unwrap_or_default()
                    .as_str()
                    .unwrap_or("?"),
                run.describe_waiting()
            )));
        };
        if !waiting.signal_types.iter().any(|s| s == signal_type) {
            return Err(AnswerError::UnknownSignal(format!(
                "step {step_name} does not accept signal type {signal_type:?}; it accepts {}",
                waiting
                    .signal_types
                    .iter()
                    .map(|s| format!("{step_name}.{s}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        if !person.may_answer(&waiting.assignees) {
            let assigned = if waiting.assignees.is_empty() {
                "it is assigned to no one, so only an admin may answer it".to_owned()
            } else {
                format!("it is assigned to {}", waiting.assignees.join(", "))
            };
            return Err(AnswerError::NotAssigned(format!(
                "{answered_by} may not answer step {step_name}: {assigned}"
            )));
        }
        let workflow = self.workflow_by_digest(&run.workflow.digest).await?;
        let answered_at = now();
        let event = ResumeEvent::Answer {
            signal_type: signal_type.to_owned(),
            answered_by: answered_by.to_owned(),
            answered_at,
            data,
        };
        let report = self
            .inner
            .plugins
            .resume(
                &step.plugin,
                &call_context(&run, i),
                &waiting.state,
                event,
                limits(&workflow, i),
            )
            .await;
        if let Outcome::InvalidAnswer(message) = report.outcome {
            return Err(AnswerError::Invalid(message));
        }
        let mut tx = Transition::default();
        let name = run.steps[i].name.clone();
        run.steps[i].answers.push(AnswerRecord {
            signal_type: signal_type.to_owned(),
            answered_by: answered_by.to_owned(),
            answered_at,
        });
        tx.log(
            &mut run,
            "info",
            Some(&name),
            format!("{answered_by} answered {name}.{signal_type}"),
        );
        tx.plugin_logs(&mut run, &name, report.logs);
        let expiry = transition::pending_timer(id, &run.steps[i]);
        let still_waiting = matches!(report.outcome, Outcome::Suspend(_));
        if let (Some(timer), false) = (expiry, still_waiting) {
            tx.writes.push(Write::DeleteTimer(timer));
        }
        transition::apply_outcome(&mut run, &workflow, i, report.outcome, report.elapsed, &mut tx);
        transition::advance(&mut run, &workflow, &self.inner.plugins, &mut tx).await;
        self.commit(&mut run, tx).await?;
        Ok(run.clone())
    }

    /// Cancels a run that has not finished. Side effects already done are not undone.
    pub async fn cancel(&self, id: RunId, by: &str) -> Result<RunRecord, AnswerError> {
        let mut run = self.lock(id).await?.ok_or(AnswerError::UnknownRun(id))?;
        if run.state.is_finished() {
            return Err(AnswerError::NotWaiting(format!(
                "run {id} has already finished ({}); only pending, running or waiting runs can be canceled",
                run.state.as_str()
            )));
        }
        let mut tx = Transition::default();
        transition::finish(
            &mut run,
            RunState::Canceled,
            Some(format!("canceled by {by}")),
            &mut tx,
        );
        self.commit(&mut run, tx).await?;
        Ok(run.clone())
    }

    /// Cancels what the run waits for: the waiting step fails as canceled, and so does the run.
    pub async fn cancel_interaction(&self, id: RunId, by: &str) -> Result<RunRecord, AnswerError> {
        let mut run = self.lock(id).await?.ok_or(AnswerError::UnknownRun(id))?;
        let Some(i) = run.steps.iter().position(|s| s.state == StepState::Waiting) else {
            return Err(AnswerError::NotWaiting(format!(
                "run {id} has no pending interaction (it is {})",
                run.state.as_str()
            )));
        };
        let mut tx = Transition::default();
        let name = run.steps[i].name.clone();
        if let Some(timer) = transition::pending_timer(id, &run.steps[i]) {
            tx.writes.push(Write::DeleteTimer(timer));
        }
        let step = &mut run.steps[i];
        let at = now();
        transition::stop_waiting(step, at);
        step.state = StepState::Canceled;
        step.waiting = None;
        step.ended_at = Some(at);
        step.error = Some(format!("interaction canceled by {by}"));
        let error = format!("step {name}: interaction canceled by {by}");
        transition::finish(&mut run, RunState::Failed, Some(error), &mut tx);
        self.commit(&mut run, tx).await?;
        Ok(run.clone())
    }

    /// Deletes a finished run and its log.
    pub async fn delete(&self, id: RunId) -> Result<(), AnswerError> {
        let run = self.lock(id).await?.ok_or(AnswerError::UnknownRun(id))?;
        if !run.state.is_finished() {
            return Err(AnswerError::NotWaiting(format!(
                "run {id} is {}; only finished runs can be deleted (cancel it first)",
                run.state.as_str()
            )));
        }
        let mut writes = vec![Write::DeleteRun(id)];
        // The key is free again: it started a run that no longer exists.
        writes.extend(run.idempotency_key.clone().map(Write::DeleteIdempotency));
        self.inner.store.commit(writes).await?;
        self.evict(&run);
        Ok(())
    }

    /// Starts a new run with the inputs of a failed, rejected or canceled one, on `version`
    /// of its workflow or the same version.
    pub async fn restart(&self, id: RunId, version: Option<u64>, by: &str) -> Result<RunId, RestartError> {
        let old = self.run(id).await?.ok_or(RestartError::UnknownRun(id))?;
        if !matches!(
            old.state,
            RunState::Failed | RunState::Rejected | RunState::Canceled
        ) {
            return Err(RestartError::NotRestartable(format!(
                "run {id} is {}; only failed, rejected or canceled runs can be restarted",
                old.state.as_str()
            )));
        }
        let workflow = match version {
            Some(v) => self.workflow(&old.workflow.id, Some(v)).await?.ok_or_else(|| {
                RestartError::UnknownVersion(format!("workflow {} has no version {v}", old.workflow.id))
            })?,
            None => self.workflow_by_digest(&old.workflow.digest).await?,
        };
        let inputs = match old.inputs {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        let options = StartOptions {
            idempotency_key: None,
            restarted_from: Some(id),
        };
        Ok(self.start_with(&workflow, inputs, by, options).await?)
    }

    /// Continues runs that were pending or running when the last process stopped. A step
    /// that was mid-call is called again (at-least-once); calls this process started are left
    /// alone. Returns how many runs resumed.
    pub async fn recover(&self) -> Result<usize> {
        let ids = self.inner.store.active_runs()?;
        for &id in &ids {
            let Some(mut run) = self.lock(id).await? else {
                continue;
            };
            let workflow = self.workflow_by_digest(&run.workflow.digest).await?;
            let mut tx = Transition::default();
            for i in 0..run.steps.len() {
                let here = self.is_in_flight(id, i, run.steps[i].attempt);
                if run.steps[i].state == StepState::Running && !here {
                    run.steps[i].state = StepState::Pending;
                    let name = run.steps[i].name.clone();
                    tx.log(
                        &mut run,
                        "warn",
                        Some(&name),
                        "was running when the last process stopped; calling it again".into(),
                    );
                }
            }
            transition::advance(&mut run, &workflow, &self.inner.plugins, &mut tx).await;
            self.commit(&mut run, tx).await?;
        }
        self.inner.timers_changed.notify_one();
        Ok(ids.len())
    }

    /// Fires timers that fell due while no process ran.
    pub async fn fire_due_timers(&self) -> Result<usize> {
        timers::fire_due(self).await
    }

    /// Locks a run for a change. The guard owns the only reference besides the live map's,
    /// which is what lets [`Engine::evict`] tell that no one else is about to use it.
    async fn lock(&self, id: RunId) -> Result<Option<RunGuard>> {
        Ok(match self.handle(id).await? {
            Some(handle) => Some(handle.lock_owned().await),
            None => None,
        })
    }

    /// The in-memory handle of a run, loading it from the store if needed.
    async fn handle(&self, id: RunId) -> Result<Option<RunHandle>> {
        if let Some(h) = self.inner.live.lock().expect("live runs lock").get(&id) {
            return Ok(Some(h.clone()));
        }
        let Some(record) = self.inner.store.run(id)? else {
            return Ok(None);
        };
        let mut live = self.inner.live.lock().expect("live runs lock");
        // Another task may have loaded it meanwhile; theirs wins, so there is one copy.
        Ok(Some(
            live.entry(id)
                .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(record)))
                .clone(),
        ))
    }

    /// Commits a transition, then acts on it: publishes events and starts the steps it
    /// marked running. On a failed commit the in-memory run is reloaded from the store.
    async fn commit(&self, run: &mut RunGuard, mut tx: Transition) -> Result<()> {
        if tx.dirty || !tx.to_start.is_empty() {
            tx.writes.push(Write::run(run)?);
        }
        let outbox = hooks::outbox_writes(&self.inner.actions, run, &tx.events)?;
        tx.writes.extend(outbox);
        let timers_touched = tx
            .writes
            .iter()
            .any(|w| matches!(w, Write::Timer(_) | Write::DeleteTimer(_)));
        if let Err(e) = self.inner.store.commit(std::mem::take(&mut tx.writes)).await {
            if let Ok(Some(stored)) = self.inner.store.run(run.id) {
                **run = stored;
            }
            return Err(e);
        }
        if timers_touched {
            self.inner.timers_changed.notify_one();
        }
        for event in tx.events {
            let _ = self.inner.events.send(event);
        }
        let workflow = self.workflow_by_digest(&run.workflow.digest).await?;
        for (i, input) in tx.to_start {
            self.spawn_call(run, &workflow, i, input);
        }
        if !matches!(run.state, RunState::Pending | RunState::Running) {
            let waiters = self
                .inner
                .settle_waiters
                .lock()
                .expect("settle waiters lock")
                .remove(&run.id);
            if let Some(waiters) = waiters {
                waiters.notify_waiters();
            }
            self.evict(run);
        }
        Ok(())
    }

    /// Calls step `i`'s plugin on its own task, then records the result. A plain (not
    /// async) function, so the task's `Send` check does not cycle through `commit`.
    fn spawn_call(&self, run: &RunRecord, workflow: &Workflow, i: usize, input: Value) {
        let engine = self.clone();
        let ctx = call_context(run, i);
        let plugin = run.steps[i].plugin.clone();
        let limits = limits(workflow, i);
        let call = (run.id, i, run.steps[i].attempt);
        self.inner.in_flight.lock().expect("in-flight lock").insert(call);
        tokio::spawn(async move {
            let (id, _, attempt) = call;
            let report = engine.inner.plugins.run(&plugin, &ctx, &input, limits).await;
            if let Err(e) = engine.step_returned(id, i, attempt, report).await {
                tracing::error!("run {id}: cannot record the result of step {}: {e:#}", ctx.step);
            }
            // Only now: the steps this result started are in flight already, so `quiesce`
            // never sees a gap in a chain of calls.
            engine
                .inner
                .in_flight
                .lock()
                .expect("in-flight lock")
                .remove(&call);
            engine.inner.call_ended.notify_waiters();
        });
    }

    fn is_in_flight(&self, id: RunId, i: usize, attempt: u32) -> bool {
        self.inner
            .in_flight
            .lock()
            .expect("in-flight lock")
            .contains(&(id, i, attempt))
    }

    /// Waits until no plugin call of this process is under way, so a short-lived command can
    /// exit without leaving a step mid-call.
    pub async fn quiesce(&self) {
        loop {
            let ended = self.inner.call_ended.notified();
            if self.inner.in_flight.lock().expect("in-flight lock").is_empty() {
                break;
            }
            ended.await;
        }
        // The runs' events, too, are delivered before a short-lived command exits.
        if let Err(e) = self.inner.actions.drained().await {
            tracing::error!("cannot wait for action events to be delivered: {e:#}");
        }
    }

    /// Records a finished plugin call and moves the run on.
    async fn step_returned(
        &self,
        id: RunId,
        i: usize,
        attempt: u32,
        report: crate::plugins::CallReport,
    ) -> Result<()> {
        let mut run = self.lock(id).await?.ok_or_else(|| anyhow!("run {id} vanished"))?;
        let step = &run.steps[i];
        if run.state.is_finished() || step.state != StepState::Running || step.attempt != attempt {
            // Canceled meanwhile, or a stale attempt: the result is not wanted.
            return Ok(());
        }
        let workflow = self.workflow_by_digest(&run.workflow.digest).await?;
        let mut tx = Transition::default();
        let name = step.name.clone();
        tx.plugin_logs(&mut run, &name, report.logs);
        transition::apply_outcome(&mut run, &workflow, i, report.outcome, report.elapsed, &mut tx);
        transition::advance(&mut run, &workflow, &self.inner.plugins, &mut tx).await;
        self.commit(&mut run, tx).await
    }

    /// Drops a run from memory when no one else holds it; the store has it.
    fn evict(&self, run: &RunGuard) {
        let mut live = self.inner.live.lock().expect("live runs lock");
        if let Some(handle) = live.get(&run.id) {
            // The map and the guard hold one reference each; anyone else is about to use it.
            if Arc::strong_count(handle) <= 2 {
                live.remove(&run.id);
            }
        }
    }
}

fn new_step(name: StepName, plugin: crate::plugins::Resolved) -> StepRecord {
    StepRecord {
        name,
        plugin: plugin.digest,
        plugin_name: plugin.declared_as,
        state: StepState::Pending,
        attempt: 0,
        started_at: None,
        ended_at: None,
        output: None,
        error: None,
        retry_at: None,
        waiting: None,
        answers: Vec::new(),
        busy_ms: 0,
        waited_ms: 0,
        secure_output: Vec::new(),
    }
}

fn call_context(run: &RunRecord, i: usize) -> CallContext {
    CallContext {
        run_id: run.id.to_string(),
        workflow: run.workflow.id.clone(),
        step: run.steps[i].name.to_string(),
        attempt: run.steps[i].attempt.max(1),
        started_by: run.started_by.clone(),
        declared_as: run.steps[i].plugin_name.clone(),
    }
}

fn limits(workflow: &Workflow, i: usize) -> Limits {
    workflow.steps[i].limits
}
