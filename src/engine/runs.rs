//! What people ask of runs: start, read, answer, cancel, delete, restart.
//!
//! Every change is made under the run's lock in this process and committed with the
//! revision it was made from; when another runner changed the run first, the run is read
//! again and the request judged again against it (an answer to a step that another runner's
//! answer completed meanwhile is then refused as not waiting). An answer is applied exactly
//! once: only one commit of a revision succeeds.

use super::driver::{call_context, limits, new_step, Committed, MAX_ATTEMPTS};
use super::transition::{self, Transition};
use super::{AnswerError, Engine, Event, Person, RestartError, StartError, StartOptions};
use crate::names::{Digest, RunId};
use crate::plugins::{Outcome, ResumeEvent};
use crate::run::{now, AnswerRecord, LogLine, RunRecord, RunState, StepState, WorkflowRef};
use crate::store::{RunScope, StoreError, Write};
use crate::workflow::Workflow;
use anyhow::{anyhow, Result};
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// How often [`Engine::settled`] looks at the store again in case a notice was missed.
const SETTLE_RECHECK: Duration = Duration::from_secs(1);

/// A page of runs to list, newest first.
#[derive(Clone, Copy, Debug)]
pub struct RunQuery {
    /// Only runs in this state (the store reads only the runs that can be in it).
    pub state: Option<RunState>,
    /// Runs started before this one (a paging cursor).
    pub before: Option<RunId>,
    pub limit: usize,
}

impl Engine {
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
        // The store takes a key once, so of two requests racing with one key, one starts
        // the run and the other finds it.
        let given_key = options.idempotency_key;
        let idempotency_key = given_key
            .as_ref()
            .map(|key| serde_json::json!([workflow.definition.id, started_by, key]).to_string());
        let request = Digest::of(
            serde_json::json!({"version": workflow.definition.version, "inputs": inputs})
                .to_string()
                .as_bytes(),
        );
        if let (Some(key), Some(given)) = (&idempotency_key, &given_key) {
            if let Some(id) = self.keyed_run(key, given, &request).await? {
                return Ok(id);
            }
        }
        let inputs = super::hooks::pre_start(&self.inner.actions, workflow, inputs, started_by).await?;
        let inputs = workflow.bind_inputs(inputs).map_err(StartError::Invalid)?;
        let mut problems = Vec::new();
        let mut steps = Vec::new();
        for (i, step) in workflow.steps.iter().enumerate() {
            match self.inner.plugins.resolve(&step.plugin).await {
                Ok(resolved) => steps.push(new_step(step.name.clone(), resolved)),
                Err(message) => problems.push(crate::workflow::Problem {
                    path: format!("steps[{i}].plugin"),
                    message,
                }),
            }
        }
        if !problems.is_empty() {
            return Err(StartError::Invalid(crate::workflow::Problems(problems)));
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
            revision: None,
            owner: None,
        };
        let mut tx = Transition::default();
        if let Some(key) = idempotency_key.clone() {
            tx.writes.push(Write::Idempotency {
                key,
                run: run.id,
                request: request.clone(),
            });
        }
        if let Some(from) = options.restarted_from {
            tx.log(&mut run, "info", None, format!("restart of run {from}"));
        }
        tx.log(&mut run, "info", None, format!("run started by {started_by}"));
        tx.events.push(Event::RunStarted { run: run.id });
        let id = run.id;
        let handle = Arc::new(tokio::sync::Mutex::new(run));
        let mut guard = handle.clone().lock_owned().await;
        self.inner.live.lock().expect("live runs lock").insert(id, handle);
        // `guard` holds the handle now; the map has the other reference.
        transition::advance(&mut guard, workflow, &self.inner.plugins, &mut tx).await;
        match self.commit_new(&mut guard, tx).await {
            Ok(()) => Ok(id),
            Err(StoreError::Conflict(_)) => {
                self.inner.live.lock().expect("live runs lock").remove(&id);
                // Another request with the same key started its run first: that is the run.
                match (&idempotency_key, &given_key) {
                    (Some(key), Some(given)) => {
                        self.keyed_run(key, given, &request).await?.ok_or_else(|| {
                            StartError::Internal(anyhow!("the idempotency key {given:?} vanished"))
                        })
                    }
                    _ => Err(StartError::Internal(anyhow!("run {id} exists already"))),
                }
            }
            Err(e) => {
                self.inner.live.lock().expect("live runs lock").remove(&id);
                Err(StartError::Internal(e.into()))
            }
        }
    }

    /// The run `key` started, if any; refused when it was started by another request.
    async fn keyed_run(&self, key: &str, given: &str, request: &Digest) -> Result<Option<RunId>, StartError> {
        match self.inner.store.idempotent_run(key).await? {
            Some((id, Some(earlier))) if earlier != *request => Err(StartError::KeyReused(format!(
                "Idempotency-Key {:?} already started run {id} with a different request; send the \
                 same request to get that run, or use a new key",
                crate::limits::clip(given)
            ))),
            Some((id, _)) => Ok(Some(id)),
            None => Ok(None),
        }
    }

    /// Commits a new run's first transition; a taken idempotency key is the store's
    /// conflict, returned as is.
    async fn commit_new(&self, run: &mut super::RunGuard, tx: Transition) -> Result<(), StoreError> {
        match self.commit(run, tx).await {
            Ok(Committed::Done) => Ok(()),
            Ok(Committed::Stale) => Err(StoreError::Conflict(format!("run {} exists already", run.id))),
            Err(e) => match e.downcast::<StoreError>() {
                Ok(store) => Err(store),
                Err(other) => Err(StoreError::Other(other)),
            },
        }
    }

    /// The run as last committed.
    pub async fn run(&self, id: RunId) -> Result<Option<RunRecord>> {
        let held = self.inner.live.lock().expect("live runs lock").get(&id).cloned();
        match held {
            Some(handle) => Ok(Some(handle.lock().await.clone())),
            None => match self.inner.store.run(id).await? {
                Some(stored) => Ok(Some(RunRecord::from_stored(stored)?)),
                None => Ok(None),
            },
        }
    }

    /// A page of runs that `keep` accepts, newest first.
    pub async fn runs(
        &self,
        query: RunQuery,
        keep: impl Fn(&RunRecord) -> bool + Send + Sync,
    ) -> Result<Vec<RunRecord>> {
        let mut decoded: Vec<RunRecord> = Vec::new();
        let mut accept = |stored: &crate::store::StoredRun| match RunRecord::from_stored(stored.clone()) {
            Ok(run) if query.state.is_none_or(|s| run.state == s) && keep(&run) => {
                decoded.push(run);
                true
            }
            Ok(_) => false,
            Err(e) => {
                tracing::error!("{e:#}");
                false
            }
        };
        self.inner
            .store
            .runs(RunScope::of(query.state), query.before, query.limit, &mut accept)
            .await?;
        Ok(decoded)
    }

    /// Every run waiting for a person, oldest first.
    pub async fn waiting_runs(&self) -> Result<Vec<RunRecord>> {
        let mut runs = Vec::new();
        for id in self.inner.store.waiting_runs().await? {
            if let Some(stored) = self.inner.store.run(id).await? {
                runs.push(RunRecord::from_stored(stored)?);
            }
        }
        Ok(runs)
    }

    /// Up to `limit` log lines of `run` after sequence number `after`.
    pub async fn logs(&self, run: RunId, after: Option<u64>, limit: usize) -> Result<Vec<LogLine>> {
        self.inner
            .store
            .logs(run, after, limit)
            .await?
            .iter()
            .map(|doc| {
                serde_json::from_slice(doc).map_err(|e| anyhow!("a log line of run {run} is unreadable: {e}"))
            })
            .collect()
    }

    /// Waits until the run is neither pending nor running, and returns it. A run that
    /// settles on another runner wakes this waiter through the store's notices.
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
                Ok(Some(run)) if run.is_live() => {
                    let _ = tokio::time::timeout(SETTLE_RECHECK, woken).await;
                }
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
        for _ in 0..MAX_ATTEMPTS {
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
                data: data.clone(),
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
            let shown = AnswerRecord::shown(&waiting.fields, &data);
            run.steps[i].answers.push(AnswerRecord {
                signal_type: signal_type.to_owned(),
                answered_by: answered_by.to_owned(),
                answered_at,
                data: Some(shown),
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
            // A run another runner drives is moved on by that runner, told by the store.
            if self.drives(&run) {
                transition::advance(&mut run, &workflow, &self.inner.plugins, &mut tx).await;
            }
            if let Committed::Done = self.commit(&mut run, tx).await? {
                return Ok(run.clone());
            }
        }
        Err(AnswerError::Internal(anyhow!(
            "run {id} kept changing while it was answered"
        )))
    }

    /// Cancels a run that has not finished. Side effects already done are not undone.
    pub async fn cancel(&self, id: RunId, by: &str) -> Result<RunRecord, AnswerError> {
        let mut run = self.lock(id).await?.ok_or(AnswerError::UnknownRun(id))?;
        for _ in 0..MAX_ATTEMPTS {
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
            if let Committed::Done = self.commit(&mut run, tx).await? {
                return Ok(run.clone());
            }
        }
        Err(AnswerError::Internal(anyhow!(
            "run {id} kept changing while it was canceled"
        )))
    }

    /// Cancels what the run waits for: the waiting step fails as canceled, and so does the run.
    pub async fn cancel_interaction(&self, id: RunId, by: &str) -> Result<RunRecord, AnswerError> {
        let mut run = self.lock(id).await?.ok_or(AnswerError::UnknownRun(id))?;
        for _ in 0..MAX_ATTEMPTS {
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
            if let Committed::Done = self.commit(&mut run, tx).await? {
                return Ok(run.clone());
            }
        }
        Err(AnswerError::Internal(anyhow!(
            "run {id} kept changing while its interaction was canceled"
        )))
    }

    /// Deletes a finished run and its log; its idempotency key is free again.
    pub async fn delete(&self, id: RunId) -> Result<(), AnswerError> {
        let mut run = self.lock(id).await?.ok_or(AnswerError::UnknownRun(id))?;
        // What this process holds may be older than what another runner wrote.
        self.reload(&mut run).await?;
        if !run.state.is_finished() {
            return Err(AnswerError::NotWaiting(format!(
                "run {id} is {}; only finished runs can be deleted (cancel it first)",
                run.state.as_str()
            )));
        }
        let mut writes = vec![Write::DeleteRun(id)];
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
}
