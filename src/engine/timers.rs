//! Durable timers: interaction expiry and retry backoff. Timers live in the store, so one
//! that falls due while no process runs fires when the next one starts; each is claimed by
//! one runner before it fires, so with several runners it fires once.

use super::driver::{call_context, limits, Committed, MAX_ATTEMPTS};
use super::transition::{self, Transition};
use super::Engine;
use crate::plugins::{Outcome, ResumeEvent};
use crate::run::{now, StepState};
use crate::store::{Timer, TimerKind, Write};
use std::time::Duration;

/// How long to back off after the store could not be read.
const ERROR_PAUSE: Duration = Duration::from_secs(1);

/// How long a runner holds the timers it claimed before another may fire them.
const CLAIM: Duration = Duration::from_secs(60);

/// Timers claimed at a time.
const BATCH: usize = 100;

/// The longest sleep between looks at the store, so a timer another runner added without a
/// notice reaching this one (a lost connection) still fires.
const RECHECK: Duration = Duration::from_secs(5);

/// Sleeps until the earliest timer is due (or the set of timers changes), then fires what is
/// due.
pub async fn run(engine: Engine) {
    loop {
        let next = match engine.inner.store.next_timer_due().await {
            Ok(next) => next,
            Err(e) => {
                tracing::error!("cannot read timers: {e:#}");
                tokio::time::sleep(ERROR_PAUSE).await;
                continue;
            }
        };
        let wait = match next {
            Some(due) => Duration::try_from(due - now())
                .unwrap_or(Duration::ZERO)
                .min(RECHECK),
            None => RECHECK,
        };
        if !wait.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = engine.inner.timers_changed.notified() => {}
            }
            continue;
        }
        if let Err(e) = fire_due(&engine).await {
            tracing::error!("cannot fire timers: {e:#}");
            tokio::time::sleep(ERROR_PAUSE).await;
        }
    }
}

/// Fires one claimed timer. A timer that no longer matches its step (answered, canceled,
/// retried) is simply dropped.
async fn fire(engine: &Engine, timer: &Timer) -> anyhow::Result<()> {
    let delete = || Write::DeleteTimer(timer.clone());
    let Some(mut run) = engine.lock(timer.run).await? else {
        return Ok(engine.inner.store.commit(vec![delete()]).await?);
    };
    // The copy in memory may be older than the store.
    engine.reload(&mut run).await?;
    for _ in 0..MAX_ATTEMPTS {
        let position = run.steps.iter().position(|s| s.name.as_str() == timer.step);
        let current =
            position.filter(|&i| transition::pending_timer(run.id, &run.steps[i]).as_ref() == Some(timer));
        let (Some(i), false) = (current, run.state.is_finished()) else {
            drop(run);
            return Ok(engine.inner.store.commit(vec![delete()]).await?);
        };
        let workflow = engine.workflow_by_digest(&run.workflow.digest).await?;
        let mut tx = Transition::default();
        tx.writes.push(delete());
        let name = run.steps[i].name.clone();
        match timer.kind {
            TimerKind::Retry => {
                run.steps[i].retry_at = None;
            }
            TimerKind::Expire => {
                let step = &run.steps[i];
                let waiting = step.waiting.as_ref().filter(|_| step.state == StepState::Waiting);
                let state = waiting.map(|w| w.state.clone()).unwrap_or_default();
                let report = engine
                    .plugins()
                    .resume(
                        &step.plugin,
                        &call_context(&run, i),
                        &state,
                        ResumeEvent::Expired,
                        limits(&workflow, i),
                    )
                    .await;
                tx.log(&mut run, "warn", Some(&name), "the interaction expired".into());
                tx.plugin_logs(&mut run, &name, report.logs);
                // A step that suspends again after expiring would wait forever: refuse that.
                let outcome = match report.outcome {
                    Outcome::Suspend(_) => Outcome::Fail {
                        message: "the plugin suspended again after its interaction expired".into(),
                        retryable: false,
                    },
                    other => other,
                };
                transition::apply_outcome(&mut run, &workflow, i, outcome, report.elapsed, &mut tx);
            }
        }
        // A run another runner drives is moved on by that runner, told by the store.
        if engine.drives(&run) {
            transition::advance(&mut run, &workflow, &engine.inner.plugins, &mut tx).await;
        }
        tx.dirty = true;
        if let Committed::Done = engine.commit(&mut run, tx).await? {
            return Ok(());
        }
    }
    Err(anyhow::anyhow!(
        "run {} kept changing while its timer fired",
        timer.run
    ))
}

/// Fires every timer that is due now (claimed first), before a command acts: an
/// interaction that expired while no process ran must not accept an answer.
pub async fn fire_due(engine: &Engine) -> anyhow::Result<usize> {
    let mut fired = 0;
    loop {
        let due = engine
            .inner
            .store
            .claim_due_timers(engine.runner(), now(), CLAIM, BATCH)
            .await?;
        let mut failed = 0;
        for timer in &due {
            match fire(engine, timer).await {
                Ok(()) => fired += 1,
                Err(e) => {
                    failed += 1;
                    tracing::error!("run {}: timer for step {} failed: {e:#}", timer.run, timer.step);
                }
            }
        }
        if failed > 0 {
            // Left in place (and, with several runners, claimed a while): tried again later.
            anyhow::bail!("{failed} timer(s) could not fire");
        }
        if due.len() < BATCH {
            return Ok(fired);
        }
    }
}

impl Engine {
    /// Fires timers that fell due while no process ran.
    pub async fn fire_due_timers(&self) -> anyhow::Result<usize> {
        fire_due(self).await
    }
}
