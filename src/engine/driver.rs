//! This runner's part in driving runs.
//!
//! A run is driven by one runner at a time, its owner in the database: the owner starts its
//! steps, calls their plugins and records their outcomes. Anyone may apply a person's answer,
//! a cancel or a timer to a run; a runner that does so for a run another live runner owns
//! changes only what it was asked to (it starts nothing), and the owner, told by the store's
//! notice, moves the run on. A run waiting for a person or finished has no owner, so whoever
//! answers it drives it next.
//!
//! Every commit carries the revision of the run it was made from. When another runner wrote
//! the run first, the commit is refused as stale; the run is read again and the change made
//! again from the fresh record (see the retry loops in [`super::runs`]). So no in-process
//! lock is ever what keeps a run correct: the per-run mutex here only keeps this process from
//! racing itself.
//!
//! Runners prove they are alive with heartbeats; the runs of a runner whose lease lapsed are
//! claimed by another and continued from their last committed transition (a step that was
//! mid-call runs again: at-least-once).

use super::transition::{self, Transition};
use super::{Engine, RunGuard, RunHandle};
use crate::names::{RunId, StepName};
use crate::plugins::{CallContext, Limits, Resolved};
use crate::run::{RunRecord, StepRecord, StepState, Unit};
use crate::store::{Notice, StoreError, Timer, TimerKind, Write};
use crate::workflow::Workflow;
use anyhow::{anyhow, Result};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// How often a change that keeps finding the run changed under it is tried before giving up.
pub(super) const MAX_ATTEMPTS: usize = 32;

/// How long to back off after the store could not be reached.
const ERROR_PAUSE: Duration = Duration::from_secs(1);

/// Runs claimed from dead runners at a time.
const CLAIM_BATCH: usize = 100;

/// `for_each` item results read at a time.
const ITEM_PAGE: usize = 1000;

/// A plugin call's result waiting to be recorded.
pub(super) struct Returned {
    unit: Unit,
    attempt: u32,
    report: crate::plugins::CallReport,
}

/// What a commit did.
pub(super) enum Committed {
    Done,
    /// Another runner changed the run first; the guard now holds the fresh record.
    Stale,
}

/// Starts this runner's background work: following other runners' changes and, with
/// several runners on the database, the heartbeat (the first one before this returns, so
/// the runner is known before it owns a run) and taking over runs of dead runners.
pub(super) async fn start(engine: &Engine) -> Result<()> {
    engine.background(tokio::spawn(follow(engine.clone())));
    if engine.inner.store.shared() {
        let options = &engine.inner.options;
        engine
            .inner
            .store
            .heartbeat(options.address.as_deref(), options.lease)
            .await?;
        engine.background(tokio::spawn(heartbeat(engine.clone())));
        engine.background(tokio::spawn(claim_orphans_forever(engine.clone())));
    }
    Ok(())
}

impl Engine {
    /// Locks a run for a change, loading it from the store if this process does not hold
    /// it. The guard owns the only reference besides the live map's, which is what lets
    /// [`Engine::evict`] tell that no one else is about to use it.
    pub(super) async fn lock(&self, id: RunId) -> Result<Option<RunGuard>> {
        Ok(match self.handle(id).await? {
            Some(handle) => Some(handle.lock_owned().await),
            None => None,
        })
    }

    async fn handle(&self, id: RunId) -> Result<Option<RunHandle>> {
        if let Some(h) = self.inner.live.lock().expect("live runs lock").get(&id) {
            return Ok(Some(h.clone()));
        }
        let Some(stored) = self.inner.store.run(id).await? else {
            return Ok(None);
        };
        let record = RunRecord::from_stored(stored)?;
        let mut live = self.inner.live.lock().expect("live runs lock");
        // Another task may have loaded it meanwhile; theirs wins, so there is one copy.
        Ok(Some(
            live.entry(id)
                .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(record)))
                .clone(),
        ))
    }

    /// Reads the run again into `run` (another runner changed it).
    pub(super) async fn reload(&self, run: &mut RunGuard) -> Result<()> {
        let stored = self
            .inner
            .store
            .run(run.id)
            .await?
            .ok_or_else(|| anyhow!("run {} was deleted", run.id))?;
        **run = RunRecord::from_stored(stored)?;
        Ok(())
    }

    /// Whether this runner may drive `run` now: no one owns it, or this runner does.
    pub(super) fn drives(&self, run: &RunRecord) -> bool {
        run.owner.as_deref().is_none_or(|owner| owner == self.runner())
    }

    /// Commits a transition made from the run's current revision, then acts on it: publishes
    /// events and starts the steps it marked running. A live run stays with its owner (this
    /// runner if it has none); a run that waits or has finished is owned by no one. When
    /// another runner changed the run first, nothing is written and the guard is reloaded.
    pub(super) async fn commit(&self, run: &mut RunGuard, mut tx: Transition) -> Result<Committed> {
        let me = self.runner().to_owned();
        let owner = run.is_live().then(|| run.owner.clone().unwrap_or(me.clone()));
        debug_assert!(
            tx.to_start.is_empty() || owner.as_deref() == Some(me.as_str()),
            "only a run's owner starts its steps"
        );
        let mut writes = std::mem::take(&mut tx.writes);
        // A finished child hands its result to its parent through a timer due now: written
        // with the child's last transition, it fires once, on some runner, even after a crash.
        let finishing = run.state.is_finished() && run.revision.is_some();
        // A finished run is deleted when its retention ends, by a timer: fired once, by any
        // runner, without scanning the history.
        if finishing && tx.dirty {
            writes.extend(self.purge_timer(run).await?.map(Write::Timer));
        }
        if let (true, Some(parent)) = (finishing && tx.dirty, &run.parent) {
            writes.push(Write::Timer(Timer {
                due: crate::run::now(),
                run: parent.run,
                step: parent.step.clone(),
                kind: TimerKind::Child,
            }));
        }
        if tx.dirty || !tx.to_start.is_empty() || owner != run.owner {
            let mut index = run.index();
            if run.revision.is_none() {
                let workflow = self.workflow_by_digest(&run.workflow.digest).await?;
                index.inputs = indexed_inputs(run, &workflow);
            }
            writes.push(Write::Run {
                id: run.id,
                doc: serde_json::to_vec(&**run)?,
                index,
                expect: run.revision,
                owner: owner.clone(),
            });
        }
        writes.extend(super::hooks::outbox_writes(&self.inner.actions, run, &tx.events).await?);
        let timers_touched = writes
            .iter()
            .any(|w| matches!(w, Write::Timer(_) | Write::DeleteTimer(_)));
        let wrote_run = writes.iter().any(|w| matches!(w, Write::Run { .. }));
        match self.inner.store.commit(writes).await {
            Ok(()) => {}
            Err(StoreError::Stale(_)) => {
                self.reload(run).await?;
                return Ok(Committed::Stale);
            }
            Err(e) => {
                // Whatever is in memory may be ahead of the store now.
                if run.revision.is_some() {
                    if let Err(reload) = self.reload(run).await {
                        tracing::error!("run {}: cannot read it back: {reload:#}", run.id);
                    }
                }
                return Err(e.into());
            }
        }
        if wrote_run {
            run.revision = Some(run.revision.map_or(1, |r| r + 1));
            run.owner = owner;
        }
        if timers_touched {
            self.inner.timers_changed.notify_one();
        }
        for event in tx.events {
            let _ = self.inner.events.send(event);
        }
        if !tx.to_start.is_empty() {
            let workflow = self.workflow_by_digest(&run.workflow.digest).await?;
            for (unit, input) in tx.to_start {
                self.spawn_call(run, &workflow, unit, input);
            }
        }
        for child in tx.cancel_children {
            self.spawn_cancel(child, format!("its parent run {}", run.id));
        }
        for step in tx.event_waits {
            self.spawn_event_lookup(run.id, step);
        }
        if !run.is_live() {
            self.wake_settled(run.id);
            self.evict(run);
        }
        Ok(Committed::Done)
    }

    /// When a finished run is deleted: its end plus its workflow's `retention`, or this
    /// engine's; none while it has not finished or when it is kept forever.
    pub(super) async fn purge_timer(&self, run: &RunRecord) -> Result<Option<Timer>> {
        let Some(ended) = run.ended_at.filter(|_| run.state.is_finished()) else {
            return Ok(None);
        };
        let workflow = self.workflow_by_digest(&run.workflow.digest).await?;
        let retention = workflow
            .definition
            .retention
            .unwrap_or(self.inner.options.retention);
        Ok((!retention.is_zero()).then(|| Timer {
            due: transition::whole_ms(ended + retention),
            run: run.id,
            step: String::new(),
            kind: TimerKind::Purge,
        }))
    }

    /// Wakes the tasks waiting for run `id` to settle.
    pub(super) fn wake_settled(&self, id: RunId) {
        let waiters = self
            .inner
            .settle_waiters
            .lock()
            .expect("settle waiters lock")
            .remove(&id);
        if let Some(waiters) = waiters {
            waiters.notify_waiters();
        }
    }

    /// Drops a run from memory when no one else holds it; the store has it.
    pub(super) fn evict(&self, run: &RunGuard) {
        let mut live = self.inner.live.lock().expect("live runs lock");
        if let Some(handle) = live.get(&run.id) {
            // The map and the guard hold one reference each; anyone else is about to use it.
            if Arc::strong_count(handle) <= 2 {
                live.remove(&run.id);
            }
        }
    }

    /// Calls `unit`'s plugin (or starts the child run of a step with `workflow`) on its own
    /// task, then records the result. A plain (not async) function, so the task's `Send`
    /// check does not cycle through `commit`.
    fn spawn_call(&self, run: &RunRecord, workflow: &Workflow, unit: Unit, input: Value) {
        let Some(record) = run.record(unit) else {
            return;
        };
        let engine = self.clone();
        let call = (run.id, unit, record.attempt);
        if let crate::workflow::Call::Workflow { id, version } = &workflow.steps[unit.step()].call {
            let (target, version) = (id.clone(), *version);
            tokio::spawn(async move {
                let (id, _, attempt) = call;
                if let Err(e) = engine
                    .start_child(id, unit.step(), attempt, &target, version, input)
                    .await
                {
                    tracing::error!("run {id}: cannot start the child run of {target}: {e:#}");
                }
            });
            return;
        }
        let ctx = call_context(run, unit);
        let Some(plugin) = record.plugin.clone() else {
            return;
        };
        let limits = limits(workflow, unit.step());
        self.inner.in_flight.lock().expect("in-flight lock").insert(call);
        tokio::spawn(async move {
            let (id, _, attempt) = call;
            let report = engine.inner.plugins.run(&plugin, &ctx, &input, limits).await;
            if let Err(e) = engine.step_returned(id, unit, attempt, report).await {
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

    /// Cancels child run `child` on its own task (its parent ended). A plain function for
    /// the same reason as [`Engine::spawn_call`].
    fn spawn_cancel(&self, child: RunId, by: String) {
        let engine = self.clone();
        tokio::spawn(async move {
            match engine.cancel(child, &by).await {
                Ok(_) | Err(super::AnswerError::NotWaiting(_) | super::AnswerError::UnknownRun(_)) => {}
                Err(e) => tracing::error!("child run {child}: cannot cancel it: {e}"),
            }
        });
    }

    pub(super) fn is_in_flight(&self, id: RunId, unit: Unit, attempt: u32) -> bool {
        self.inner
            .in_flight
            .lock()
            .expect("in-flight lock")
            .contains(&(id, unit, attempt))
    }

    /// Waits until no plugin call of this process is under way, so a short-lived command can
    /// exit without leaving a step mid-call; then hands this runner's runs back.
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
        if let Err(e) = self.inner.store.release().await {
            tracing::warn!("cannot hand this runner's runs back: {e}");
        }
    }

    /// Records a finished plugin call and moves the run on. Results of the same run that
    /// arrive while it is being committed wait and are recorded together, in one transition.
    async fn step_returned(
        &self,
        id: RunId,
        unit: Unit,
        attempt: u32,
        report: crate::plugins::CallReport,
    ) -> Result<()> {
        self.inner
            .returned
            .lock()
            .expect("returned lock")
            .entry(id)
            .or_default()
            .push(Returned {
                unit,
                attempt,
                report,
            });
        let mut run = self.lock(id).await?.ok_or_else(|| anyhow!("run {id} vanished"))?;
        let results = self
            .inner
            .returned
            .lock()
            .expect("returned lock")
            .remove(&id)
            .unwrap_or_default();
        if results.is_empty() {
            // Recorded by whoever held the run before.
            return Ok(());
        }
        let workflow = self.workflow_by_digest(&run.workflow.digest).await?;
        for _ in 0..MAX_ATTEMPTS {
            if run.state.is_finished() || !self.drives(&run) {
                // Canceled meanwhile, or taken over by another runner: not wanted.
                return Ok(());
            }
            let mut tx = Transition::default();
            for Returned {
                unit,
                attempt,
                report,
            } in &results
            {
                // A stale attempt or an abandoned item is not wanted.
                let Some(record) = run
                    .record(*unit)
                    .filter(|r| r.state == StepState::Running && r.attempt == *attempt)
                else {
                    continue;
                };
                let name = record.name.clone();
                tx.plugin_logs(&mut run, &name, report.logs.clone());
                transition::apply_outcome(
                    &mut run,
                    &workflow,
                    *unit,
                    report.outcome.clone(),
                    report.elapsed,
                    &mut tx,
                );
            }
            if !tx.dirty {
                return Ok(());
            }
            transition::advance(&mut run, &workflow, &self.inner.plugins, self, &mut tx).await;
            if let Committed::Done = self.commit(&mut run, tx).await? {
                return Ok(());
            }
        }
        Err(anyhow!("run {id} kept changing while results were recorded"))
    }

    /// Moves on a run this runner owns after another runner changed it (an answer, a timer):
    /// starts what became ready, settles the run.
    async fn drive(&self, id: RunId) -> Result<()> {
        let Some(mut run) = self.lock(id).await? else {
            return Ok(());
        };
        self.reload(&mut run).await?;
        for _ in 0..MAX_ATTEMPTS {
            if !run.is_live() || run.owner.as_deref() != Some(self.runner()) {
                return Ok(());
            }
            let workflow = self.workflow_by_digest(&run.workflow.digest).await?;
            let mut tx = Transition::default();
            transition::advance(&mut run, &workflow, &self.inner.plugins, self, &mut tx).await;
            if let Committed::Done = self.commit(&mut run, tx).await? {
                return Ok(());
            }
        }
        Err(anyhow!("run {id} kept changing while it was moved on"))
    }

    /// Continues runs no live runner owns: at start-up, those the last process left; with
    /// several runners, those of runners that died. A step that was mid-call is called again
    /// (at-least-once); calls this process started are left alone. Returns how many runs
    /// were taken over.
    pub async fn recover(&self) -> Result<usize> {
        let mut taken = 0;
        loop {
            let claimed = self.inner.store.claim_orphans(CLAIM_BATCH).await?;
            if claimed.is_empty() {
                break;
            }
            taken += claimed.len();
            for stored in claimed {
                let id = stored.id;
                let record = RunRecord::from_stored(stored)?;
                if let Err(e) = self.continue_claimed(record).await {
                    tracing::error!("run {id}: cannot continue it: {e:#}");
                }
            }
        }
        self.inner.timers_changed.notify_one();
        Ok(taken)
    }

    /// Moves on a run this runner just claimed: steps left running by the dead owner are
    /// called again.
    async fn continue_claimed(&self, record: RunRecord) -> Result<()> {
        let id = record.id;
        let handle: RunHandle = Arc::new(tokio::sync::Mutex::new(record));
        self.inner
            .live
            .lock()
            .expect("live runs lock")
            .insert(id, handle.clone());
        let mut run = handle.lock_owned().await;
        let workflow = self.workflow_by_digest(&run.workflow.digest).await?;
        for _ in 0..MAX_ATTEMPTS {
            if !run.is_live() || run.owner.as_deref() != Some(self.runner()) {
                return Ok(());
            }
            let mut tx = Transition::default();
            let units: Vec<Unit> = run.units().collect();
            for unit in units {
                let Some(record) = run.record(unit) else { continue };
                let here = self.is_in_flight(id, unit, record.attempt);
                // A `for_each` step under way stays running: its items are what is called. A
                // step that starts a child run starts it again under the same key, so the
                // child it may have started already is found, not doubled.
                let map = matches!(unit, Unit::Step(i) if run.steps[i].map.is_some());
                if record.state == StepState::Running && !here && !map {
                    let name = record.name.clone();
                    if let Some(record) = run.record_mut(unit) {
                        record.state = StepState::Pending;
                    }
                    tx.log(
                        &mut run,
                        "warn",
                        Some(&name),
                        "was running when its runner stopped; calling it again".into(),
                    );
                }
            }
            transition::advance(&mut run, &workflow, &self.inner.plugins, self, &mut tx).await;
            tx.dirty = true;
            if let Committed::Done = self.commit(&mut run, tx).await? {
                return Ok(());
            }
        }
        Err(anyhow!("run {id} kept changing while it was taken over"))
    }

    /// Acts on what another runner committed: a run of ours it changed is moved on, a copy
    /// in memory is dropped, and tasks waiting for a run to settle are woken.
    fn on_notice(&self, notice: Notice) {
        match notice {
            Notice::Run { id, state, owner, by } if by != self.runner() => {
                self.forget(id);
                let live = matches!(
                    state,
                    crate::run::RunState::Pending | crate::run::RunState::Running
                );
                if live && owner.as_deref() == Some(self.runner()) {
                    let engine = self.clone();
                    tokio::spawn(async move {
                        if let Err(e) = engine.drive(id).await {
                            tracing::error!("run {id}: cannot move it on: {e:#}");
                        }
                    });
                }
                if !live {
                    self.wake_settled(id);
                }
            }
            Notice::Timers => self.inner.timers_changed.notify_one(),
            Notice::Orphans => self.inner.orphans.notify_one(),
            Notice::Grants => self.spawn_grants_reload(),
            Notice::Missed => {
                self.resync();
                self.spawn_grants_reload();
            }
            _ => {}
        }
    }

    /// Reloads the grants another runner changed, off the notice loop.
    fn spawn_grants_reload(&self) {
        let engine = self.clone();
        tokio::spawn(async move {
            if let Err(e) = engine.reload_grants().await {
                tracing::error!("cannot reload plugin grants: {e:#}");
            }
        });
    }

    /// After notices may have been missed: every copy in memory may be out of date, and
    /// tasks waiting for runs to settle look at the store again.
    fn resync(&self) {
        let ids: Vec<RunId> = self
            .inner
            .live
            .lock()
            .expect("live runs lock")
            .keys()
            .copied()
            .collect();
        for id in ids {
            self.forget(id);
        }
        let waiting: Vec<RunId> = self
            .inner
            .settle_waiters
            .lock()
            .expect("settle waiters lock")
            .keys()
            .copied()
            .collect();
        for id in waiting {
            self.wake_settled(id);
        }
        self.inner.timers_changed.notify_one();
    }

    /// Drops this process's copy of run `id` unless a task holds it (that task's commit
    /// will find the run changed and read it again).
    fn forget(&self, id: RunId) {
        let mut live = self.inner.live.lock().expect("live runs lock");
        if live
            .get(&id)
            .is_some_and(|h| h.try_lock().is_ok() && Arc::strong_count(h) == 1)
        {
            live.remove(&id);
        }
    }
}

/// Follows the store's notices. Background tasks hold the engine: they end with the runtime.
async fn follow(engine: Engine) {
    let mut notices = engine.inner.store.subscribe();
    loop {
        match notices.recv().await {
            Ok(notice) => engine.on_notice(notice),
            // Alone on the database, only this runner writes: what it holds in memory is
            // current, and the missed notices were its own.
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) if !engine.inner.store.shared() => {
                engine.inner.timers_changed.notify_one();
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!("missed {missed} store notices; reading again");
                engine.resync();
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Renews this runner's lease, five times per lease.
async fn heartbeat(engine: Engine) {
    let lease = engine.inner.options.lease;
    let address = engine.inner.options.address.clone();
    loop {
        tokio::time::sleep(lease / 5).await;
        if let Err(e) = engine.inner.store.heartbeat(address.as_deref(), lease).await {
            tracing::error!("cannot renew this runner's lease: {e}");
        }
    }
}

/// Takes over the runs of runners whose lease lapsed, checking five times per lease, and at
/// once when a runner gives its runs up.
async fn claim_orphans_forever(engine: Engine) {
    let lease = engine.inner.options.lease;
    loop {
        let _ = tokio::time::timeout(lease / 5, engine.inner.orphans.notified()).await;
        match engine.recover().await {
            Ok(0) => {}
            Ok(n) => tracing::warn!("took over {n} run(s) of runners that stopped"),
            Err(e) => {
                tracing::error!("cannot take over runs: {e:#}");
                tokio::time::sleep(ERROR_PAUSE).await;
            }
        }
    }
}

/// A step's record as a run starts: `plugin` is what a plugin step resolved to (none for a
/// step that starts a workflow).
pub(super) fn new_step(name: StepName, plugin: Option<Resolved>) -> StepRecord {
    let (plugin, plugin_name) = match plugin {
        Some(resolved) => (Some(resolved.digest), resolved.declared_as),
        None => (None, None),
    };
    StepRecord {
        name,
        plugin,
        plugin_name,
        child: None,
        map: None,
        input_override: None,
        state: StepState::Pending,
        attempt: 0,
        started_at: None,
        ended_at: None,
        output: None,
        error: None,
        retry_at: None,
        waiting: None,
        pause: None,
        answers: Vec::new(),
        asked: Vec::new(),
        busy_ms: 0,
        waited_ms: 0,
        secure_output: Vec::new(),
    }
}

/// Longest input value (as text) a run can be found by.
const MAX_INDEXED_VALUE: usize = 256;

/// The inputs a run can be found by (`input.KEY=VALUE`): top-level strings, numbers and
/// booleans up to [`MAX_INDEXED_VALUE`] bytes, never a secure string.
fn indexed_inputs(run: &RunRecord, workflow: &Workflow) -> Vec<(String, String)> {
    let Value::Object(inputs) = &run.inputs else {
        return Vec::new();
    };
    inputs
        .iter()
        .filter(|(name, _)| {
            workflow
                .definition
                .inputs
                .get(*name)
                .is_none_or(|spec| spec.input_type != crate::run::FieldType::SecureString)
        })
        .filter_map(|(name, value)| {
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Number(_) | Value::Bool(_) => value.to_string(),
                _ => return None,
            };
            (text.len() <= MAX_INDEXED_VALUE && name.len() <= 128).then(|| (name.clone(), text))
        })
        .collect()
}

pub(super) fn call_context(run: &RunRecord, unit: Unit) -> CallContext {
    let record = run.record(unit).unwrap_or(&run.steps[unit.step()]);
    CallContext {
        run_id: run.id.to_string(),
        workflow: run.workflow.id.clone(),
        step: record.name.to_string(),
        attempt: record.attempt.max(1),
        started_by: run.started_by.clone(),
        declared_as: record.plugin_name.clone(),
    }
}

pub(super) fn limits(workflow: &Workflow, i: usize) -> Limits {
    workflow.steps[i].limits
}

#[async_trait::async_trait]
impl transition::Items for Engine {
    async fn item_values(&self, run: RunId, step: &str, from: usize, count: usize) -> Result<Vec<Value>> {
        let docs = self.inner.store.items(run, step, from as u64, count).await?;
        docs.into_iter()
            .map(|(_, doc)| {
                let doc: Value = serde_json::from_slice(&doc)?;
                Ok(doc.get("value").cloned().unwrap_or(Value::Null))
            })
            .collect()
    }

    async fn item_results(&self, run: RunId, step: &str, total: usize) -> Result<Vec<Value>> {
        let mut results = Vec::with_capacity(total);
        while results.len() < total {
            let page = self
                .inner
                .store
                .items(run, step, results.len() as u64, ITEM_PAGE)
                .await?;
            if page.is_empty() {
                anyhow::bail!("step {step} of run {run} lost its items after {}", results.len());
            }
            results.extend(page.iter().map(|(_, doc)| transition::item_result(doc)));
        }
        Ok(results)
    }
}
