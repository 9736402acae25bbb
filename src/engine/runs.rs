//! What people ask of runs: start, read, answer, cancel, delete, restart.
//!
//! Every change is made under the run's lock in this process and committed with the
//! revision it was made from; when another runner changed the run first, the run is read
//! again and the request judged again against it (an answer to a step that another runner's
//! answer completed meanwhile is then refused as not waiting). An answer is applied exactly
//! once: only one commit of a revision succeeds.

use super::driver::{call_context, limits, new_step, Committed, MAX_ATTEMPTS};
use super::observe::Deletion;
use super::transition::{self, Transition};
use super::{
    AnswerError, Engine, Event, Person, RestartError, RetryError, RetryOptions, StartError, StartOptions,
};
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
#[derive(Clone, Debug)]
pub struct RunQuery {
    /// Only runs in this state (the store reads only the runs that can be in it).
    pub state: Option<RunState>,
    /// Runs started before this one (a paging cursor).
    pub before: Option<RunId>,
    pub limit: usize,
    /// Only runs whose inputs hold each of these (name, value as text); read from the input
    /// index, never by scanning runs.
    pub inputs: Vec<(String, String)>,
}

impl RunQuery {
    /// Up to `limit` runs in `state`, newest first.
    pub fn new(state: Option<RunState>, limit: usize) -> RunQuery {
        RunQuery {
            state,
            before: None,
            limit,
            inputs: Vec::new(),
        }
    }
}

/// Runs read from the input index at a time while filtering.
const INPUT_PAGE: usize = 256;

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
            let Some(plugin) = step.plugin() else {
                steps.push(new_step(step.name.clone(), None));
                continue;
            };
            match self.inner.plugins.resolve(plugin).await {
                Ok(resolved) => steps.push(new_step(step.name.clone(), Some(resolved))),
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
            restarted_by: options.restarted_by.clone(),
            parent: options.parent.as_ref().map(|(parent, _)| parent.clone()),
            depth: options.parent.as_ref().map_or(0, |(_, depth)| depth + 1),
            deadline: workflow.definition.timeout.map(|t| now() + t),
            failure: None,
            retries: Vec::new(),
            schedule: options.schedule.clone(),
            idempotency_key: idempotency_key.clone(),
            next_log_seq: 0,
            trace: crate::telemetry::traces::new_run(),
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
            let by = options.restarted_by.as_deref().unwrap_or(started_by);
            tx.log(&mut run, "info", None, format!("restart of run {from} by {by}"));
        }
        if let Some((parent, _)) = &options.parent {
            tx.log(
                &mut run,
                "info",
                None,
                format!("child run of step {} of run {}", parent.step, parent.run),
            );
        }
        if let Some(timer) = transition::deadline_timer(&run) {
            tx.writes.push(Write::Timer(timer));
        }
        if let Some(schedule) = &options.schedule {
            let at = crate::run::rfc3339(schedule.fire_at);
            tx.log(
                &mut run,
                "info",
                None,
                format!("started by schedule {} for {at}", schedule.id),
            );
        }
        tx.log(&mut run, "info", None, format!("run started by {started_by}"));
        tx.events.push(Event::RunStarted { run: run.id });
        let id = run.id;
        let handle = Arc::new(tokio::sync::Mutex::new(run));
        let mut guard = handle.clone().lock_owned().await;
        self.inner.live.lock().expect("live runs lock").insert(id, handle);
        // `guard` holds the handle now; the map has the other reference.
        transition::advance(&mut guard, workflow, &self.inner.plugins, self, &mut tx).await;
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
        if query.inputs.is_empty() {
            self.inner
                .store
                .runs(RunScope::of(query.state), query.before, query.limit, &mut accept)
                .await?;
            return Ok(decoded);
        }
        let mut cursor = query.before;
        let mut accepted = 0;
        loop {
            let page = self
                .inner
                .store
                .runs_with_inputs(&query.inputs, cursor, INPUT_PAGE)
                .await?;
            for stored in &page {
                if accepted < query.limit && accept(stored) {
                    accepted += 1;
                }
            }
            cursor = page.last().map(|s| s.id);
            if page.len() < INPUT_PAGE || accepted >= query.limit {
                break;
            }
        }
        Ok(decoded)
    }

    /// Up to `limit` runs with a step assigned to `person` by name or group, newest first,
    /// before the run `before`. Reads only those runs, however many wait for others.
    pub async fn runs_waiting_for(
        &self,
        person: &Person,
        before: Option<RunId>,
        limit: usize,
    ) -> Result<Vec<RunRecord>> {
        self.inner
            .store
            .runs_waiting_for(&person.assignee_names(), before, limit)
            .await?
            .into_iter()
            .map(RunRecord::from_stored)
            .collect()
    }

    /// Every run waiting for a person, oldest first.
    pub async fn waiting_runs(&self) -> Result<Vec<RunRecord>> {
        self.waiting_runs_after(None, usize::MAX).await
    }

    /// Up to `limit` runs waiting for a person, oldest first, after the run `after`. Reads
    /// the ids of every waiting run but only the records it returns.
    pub async fn waiting_runs_after(&self, after: Option<RunId>, limit: usize) -> Result<Vec<RunRecord>> {
        let mut runs = Vec::new();
        for id in self.inner.store.waiting_runs().await? {
            if runs.len() >= limit {
                break;
            }
            if after.is_some_and(|after| id <= after) {
                continue;
            }
            if let Some(stored) = self.inner.store.run(id).await? {
                runs.push(RunRecord::from_stored(stored)?);
            }
        }
        Ok(runs)
    }

    /// Up to `limit` log lines of `run` after sequence number `after`.
    /// The whole log of `run` as a text file, a line each (see `LogLine`'s `Display`).
    pub async fn log_text(&self, run: RunId) -> Result<String> {
        let mut text = String::new();
        for line in self.logs(run, None, usize::MAX).await? {
            text.push_str(&line.to_string());
            text.push('\n');
        }
        Ok(text)
    }

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
                // Waiting only on child runs that no person is asked by: not settled yet.
                // Woken by this run's commits or a child's.
                Ok(Some(run)) if self.only_children_work(&run).await? => {
                    let children: Vec<Arc<Notify>> = {
                        let mut all = self.inner.settle_waiters.lock().expect("settle waiters lock");
                        run.children()
                            .map(|c| all.entry(c).or_default().clone())
                            .collect()
                    };
                    let mut child_woken: Vec<_> = children.iter().map(|w| Box::pin(w.notified())).collect();
                    for w in &mut child_woken {
                        w.as_mut().enable();
                    }
                    let any_child = futures_util::future::select_all(child_woken);
                    let _ =
                        tokio::time::timeout(SETTLE_RECHECK, futures_util::future::select(woken, any_child))
                            .await;
                }
                other => {
                    self.forget_settle_waiters(id, &waiters);
                    return other?.ok_or_else(|| anyhow!("no run {id}"));
                }
            }
        }
    }

    /// Whether `run` waits, and only for child runs in which no person is asked anything
    /// (down to the deepest child).
    async fn only_children_work(&self, run: &RunRecord) -> Result<bool> {
        let mut frontier = vec![run.clone()];
        let mut children_only = false;
        for _ in 0..=self.inner.plugins.limits().workflow_depth {
            let mut next = Vec::new();
            for run in frontier {
                if run.state != RunState::Waiting {
                    continue;
                }
                if run.waiting_steps().next().is_some() {
                    return Ok(false);
                }
                for child in run
                    .steps
                    .iter()
                    .filter(|s| s.state == StepState::Waiting)
                    .filter_map(|s| s.child)
                {
                    children_only = true;
                    if let Some(child) = self.run(child).await? {
                        next.push(child);
                    }
                }
            }
            if next.is_empty() {
                break;
            }
            frontier = next;
        }
        Ok(children_only)
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
        crate::telemetry::traces::link_current_to_run(run.trace.as_ref());
        for _ in 0..MAX_ATTEMPTS {
            let Some(unit) = run.unit_named(step_name) else {
                return Err(AnswerError::UnknownStep(format!(
                    "run {id} has no step {step_name}; {}",
                    run.describe_waiting()
                )));
            };
            let step = run.record(unit).expect("a unit found by name");
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
            let waited = answered_at - waiting.since;
            let event = ResumeEvent::Answer {
                signal_type: signal_type.to_owned(),
                answered_by: answered_by.to_owned(),
                answered_at,
                data: data.clone(),
            };
            let plugin = step
                .plugin
                .clone()
                .ok_or_else(|| AnswerError::Internal(anyhow!("step {step_name} has no plugin")))?;
            let report = self
                .inner
                .plugins
                .resume(
                    &plugin,
                    &call_context(&run, unit),
                    &waiting.state,
                    event,
                    limits(&workflow, unit.step()),
                )
                .await;
            if let Outcome::InvalidAnswer(message) = report.outcome {
                return Err(AnswerError::Invalid(message));
            }
            let mut tx = Transition::default();
            let shown = AnswerRecord::shown(&waiting.fields, &data);
            let record = run.record_mut(unit).expect("a unit found by name");
            let name = record.name.clone();
            record.answers.push(AnswerRecord {
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
            let expiry = run.record(unit).and_then(|r| transition::pending_timer(id, r));
            let still_waiting = matches!(report.outcome, Outcome::Suspend(_));
            if let (Some(timer), false) = (expiry, still_waiting) {
                tx.writes.push(Write::DeleteTimer(timer));
            }
            transition::apply_outcome(&mut run, &workflow, unit, report.outcome, report.elapsed, &mut tx);
            // A run another runner drives is moved on by that runner, told by the store.
            if self.drives(&run) {
                transition::advance(&mut run, &workflow, &self.inner.plugins, self, &mut tx).await;
            }
            if let Committed::Done = self.commit(&mut run, tx).await? {
                if !still_waiting {
                    crate::telemetry::metrics::metrics()
                        .answer_wait
                        .observe(waited.as_seconds_f64().max(0.0));
                }
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
            let waiting = run.units().find(|&u| {
                run.record(u)
                    .is_some_and(|r| r.state == StepState::Waiting && r.waiting.is_some())
            });
            let Some(unit) = waiting else {
                return Err(AnswerError::NotWaiting(format!(
                    "run {id} has no pending interaction (it is {})",
                    run.state.as_str()
                )));
            };
            let mut tx = Transition::default();
            let step = run.record_mut(unit).expect("a waiting unit");
            let name = step.name.clone();
            if let Some(timer) = transition::pending_timer(id, step) {
                tx.writes.push(Write::DeleteTimer(timer));
            }
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
        self.remove_finished(&run, Vec::new(), Deletion::Delete).await?;
        Ok(())
    }

    /// Deletes the finished run `run` with its log and idempotency key (and `also`), and
    /// forgets it here even if others hold it: no read may find it afterwards.
    async fn remove_finished(&self, run: &RunRecord, mut also: Vec<Write>, why: Deletion) -> Result<()> {
        also.push(Write::DeleteRun(run.id));
        also.extend(run.idempotency_key.clone().map(Write::DeleteIdempotency));
        self.inner.store.commit(also).await?;
        self.inner.live.lock().expect("live runs lock").remove(&run.id);
        super::observe::run_deleted(run, why);
        Ok(())
    }

    /// Deletes a finished run whose retention ended (and `also`, its timer), with its log;
    /// a run that is no longer finished (it was retried) is left alone.
    pub(super) async fn purge(&self, id: RunId, also: Option<Write>, why: Deletion) -> Result<()> {
        let also: Vec<Write> = also.into_iter().collect();
        let Some(mut run) = self.lock(id).await? else {
            return Ok(self.inner.store.commit(also).await?);
        };
        if self.inner.store.run(id).await?.is_none() {
            self.inner.live.lock().expect("live runs lock").remove(&id);
            return Ok(self.inner.store.commit(also).await?);
        }
        self.reload(&mut run).await?;
        if run.state.is_finished() {
            self.remove_finished(&run, also, why).await
        } else {
            self.inner.store.commit(also).await?;
            self.evict(&run);
            Ok(())
        }
    }

    /// Deletes finished runs that ended more than `older_than` ago (of `workflow` only, if
    /// given), with their logs; returns how many.
    pub async fn purge_runs(&self, older_than: Duration, workflow: Option<&str>) -> Result<usize> {
        let cutoff = now() - older_than;
        let mut purged = 0;
        for state in [
            RunState::Completed,
            RunState::Failed,
            RunState::Canceled,
            RunState::Rejected,
        ] {
            let old = self
                .runs(RunQuery::new(Some(state), usize::MAX), |run| {
                    run.ended_at.is_some_and(|ended| ended < cutoff)
                        && workflow.is_none_or(|w| run.workflow.id == w)
                })
                .await?;
            for run in old {
                self.purge(run.id, None, Deletion::Purge).await?;
                purged += 1;
            }
        }
        Ok(purged)
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
            restarted_from: Some(id),
            restarted_by: Some(by.to_owned()),
            ..StartOptions::default()
        };
        Ok(self
            .start_with(&workflow, inputs, &old.started_by, options)
            .await?)
    }

    /// Continues a failed (or canceled) run from where it failed: completed and skipped steps
    /// keep their outputs and answers; the failed steps, every step after them and the
    /// `on_failure` steps run again. Optionally on another version of the workflow (steps
    /// are matched by name) or with a corrected input for one failed step.
    pub async fn retry(&self, id: RunId, by: &str, options: RetryOptions) -> Result<RunRecord, RetryError> {
        let mut run = self.lock(id).await?.ok_or(RetryError::UnknownRun(id))?;
        self.reload(&mut run).await?;
        for _ in 0..MAX_ATTEMPTS {
            if !matches!(run.state, RunState::Failed | RunState::Canceled) {
                return Err(RetryError::NotRetryable(format!(
                    "run {id} is {}; only failed or canceled runs can be retried (restart starts a new run)",
                    run.state.as_str()
                )));
            }
            let workflow = match options.version {
                Some(v) => self.workflow(&run.workflow.id, Some(v)).await?.ok_or_else(|| {
                    RetryError::UnknownVersion(format!("workflow {} has no version {v}", run.workflow.id))
                })?,
                None => self.workflow_by_digest(&run.workflow.digest).await?,
            };
            // Steps that stay: completed or skipped main steps of a name the workflow still has.
            let kept: std::collections::HashMap<String, crate::run::StepRecord> = run
                .steps
                .iter()
                .zip(self.workflow_by_digest(&run.workflow.digest).await?.steps.iter())
                .filter(|(s, def)| {
                    def.phase == crate::workflow::Phase::Main
                        && matches!(s.state, StepState::Completed | StepState::Skipped)
                })
                .map(|(s, _)| (s.name.to_string(), s.clone()))
                .collect();
            let mut steps = Vec::with_capacity(workflow.steps.len());
            let mut again = Vec::new();
            for (i, step) in workflow.steps.iter().enumerate() {
                if let Some(record) = kept.get(step.name.as_str()) {
                    steps.push(record.clone());
                    continue;
                }
                let plugin = match step.plugin() {
                    Some(plugin) => {
                        Some(self.inner.plugins.resolve(plugin).await.map_err(|message| {
                            RetryError::Invalid(format!("steps[{i}].plugin: {message}"))
                        })?)
                    }
                    None => None,
                };
                let mut record = new_step(step.name.clone(), plugin);
                // Attempts go on counting from the failed run's.
                if let Some(old) = run.step(step.name.as_str()) {
                    record.attempt = old.attempt;
                }
                if step.phase == crate::workflow::Phase::Main {
                    again.push(step.name.to_string());
                }
                steps.push(record);
            }
            if let Some((name, input)) = &options.step_input {
                let record = steps
                    .iter_mut()
                    .find(|s| s.name.as_str() == name && !kept.contains_key(name.as_str()))
                    .ok_or_else(|| {
                        RetryError::Invalid(format!(
                            "step {name} is not run again by this retry; steps run again: {}",
                            again.join(", ")
                        ))
                    })?;
                if !input.is_object() {
                    return Err(RetryError::Invalid(format!(
                        "the corrected input of {name} must be a map"
                    )));
                }
                record.input_override = Some(input.clone());
            }
            let mut tx = Transition::default();
            let moved = (workflow.digest != run.workflow.digest).then_some(workflow.definition.version);
            run.workflow = crate::run::WorkflowRef {
                id: workflow.definition.id.clone(),
                version: workflow.definition.version,
                digest: workflow.digest.clone(),
            };
            run.steps = steps;
            run.state = RunState::Pending;
            run.error = None;
            run.failure = None;
            run.outputs = None;
            run.ended_at = None;
            // The span of the run's first try was sent when it failed; this try gets its own.
            run.trace = crate::telemetry::traces::new_run();
            run.deadline = workflow.definition.timeout.map(|t| now() + t);
            if let Some(timer) = transition::deadline_timer(&run) {
                tx.writes.push(Write::Timer(timer));
            }
            run.retries.push(crate::run::RetryRecord {
                by: by.to_owned(),
                at: now(),
                steps: again.clone(),
                version: moved,
            });
            let on = moved.map_or_else(String::new, |v| format!(" on version {v}"));
            tx.log(
                &mut run,
                "info",
                None,
                format!("retried by {by}{on}: running again {}", again.join(", ")),
            );
            tx.dirty = true;
            transition::advance(&mut run, &workflow, &self.inner.plugins, self, &mut tx).await;
            if let Committed::Done = self.commit(&mut run, tx).await? {
                return Ok(run.clone());
            }
        }
        Err(RetryError::Internal(anyhow!(
            "run {id} kept changing while it was retried"
        )))
    }
}
