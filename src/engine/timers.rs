//! Durable timers: interaction expiry and retry backoff. Timers live in the store, so one
//! that falls due while no process runs fires when the next one starts.

use super::transition::{self, Transition};
use super::Engine;
use crate::plugins::{Outcome, ResumeEvent};
use crate::run::{now, StepState};
use crate::store::{Timer, TimerKind, Write};
use std::time::Duration;

/// How long to back off after the store could not be read.
const ERROR_PAUSE: Duration = Duration::from_secs(1);

/// Sleeps until the earliest timer is due (or the set of timers changes), then fires it.
pub async fn run(engine: Engine) {
    loop {
        let next = match engine.store().next_timer() {
            Ok(next) => next,
            Err(e) => {
                tracing::error!("cannot read timers: {e:#}");
                tokio::time::sleep(ERROR_PAUSE).await;
                continue;
            }
        };
        let Some(timer) = next else {
            engine.inner.timers_changed.notified().await;
            continue;
        };
        let wait = timer.due - now();
        if wait.is_positive() {
            let wait = Duration::try_from(wait).unwrap_or(ERROR_PAUSE);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = engine.inner.timers_changed.notified() => {}
            }
            continue;
        }
        if let Err(e) = fire(&engine, &timer).await {
            tracing::error!("run {}: timer for step {} failed: {e:#}", timer.run, timer.step);
            tokio::time::sleep(ERROR_PAUSE).await;
        }
    }
}

/// Fires one due timer. A timer that no longer matches its step (answered, canceled,
/// retried) is simply dropped.
async fn fire(engine: &Engine, timer: &Timer) -> anyhow::Result<()> {
    let delete = Write::DeleteTimer(timer.clone());
    let Some(mut run) = engine.lock(timer.run).await? else {
        return engine.store().commit(vec![delete]).await;
    };
    let position = run.steps.iter().position(|s| s.name.as_str() == timer.step);
    let current =
        position.filter(|&i| transition::pending_timer(run.id, &run.steps[i]).as_ref() == Some(timer));
    let (Some(i), false) = (current, run.state.is_finished()) else {
        drop(run);
        return engine.store().commit(vec![delete]).await;
    };
    let workflow = engine.workflow_by_digest(&run.workflow.digest).await?;
    let mut tx = Transition::default();
    tx.writes.push(delete);
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
                    &super::call_context(&run, i),
                    &state,
                    ResumeEvent::Expired,
                    super::limits(&workflow, i),
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
    transition::advance(&mut run, &workflow, &engine.inner.plugins, &mut tx).await;
    tx.dirty = true;
    engine.commit(&mut run, tx).await?;
    Ok(())
}

/// Fires every timer that is due now, before a command acts: an interaction that expired
/// while no process ran must not accept an answer.
pub async fn fire_due(engine: &Engine) -> anyhow::Result<usize> {
    let due = engine.store().due_timers(now())?;
    for timer in &due {
        fire(engine, timer).await?;
    }
    Ok(due.len())
}
