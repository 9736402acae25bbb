//! Durable timers: interaction expiry, retry backoff, a run's deadline, and a child run's
//! hand-over of its result to its parent. Timers live in the store, so one
//! that falls due while no process runs fires when the next one starts; each is claimed by
//! one runner before it fires, so with several runners it fires once.

use super::driver::{call_context, limits, Committed, MAX_ATTEMPTS};
use super::observe::Deletion;
use super::transition::{self, Transition};
use super::Engine;
use crate::plugins::{Outcome, ResumeEvent};
use crate::run::{now, rfc3339, Pause, RunRecord, RunState, StepState, Unit};
use crate::store::{Timer, TimerKind, Write};
use crate::workflow::Workflow;
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

/// Fires one claimed timer. A timer that no longer matches what it was set for (answered,
/// canceled, retried, finished) is simply dropped.
async fn fire(engine: &Engine, timer: &Timer) -> anyhow::Result<()> {
    let delete = || Write::DeleteTimer(timer.clone());
    if timer.kind == TimerKind::Purge {
        let current = match engine.run(timer.run).await? {
            Some(run) => engine.purge_timer(&run).await?.as_ref() == Some(timer),
            None => false,
        };
        if !current {
            // Retried and finished again later, kept forever since, or gone.
            return Ok(engine.inner.store.commit(vec![delete()]).await?);
        }
        return engine.purge(timer.run, Some(delete()), Deletion::Retention).await;
    }
    let Some(mut run) = engine.lock(timer.run).await? else {
        return Ok(engine.inner.store.commit(vec![delete()]).await?);
    };
    // The copy in memory may be older than the store.
    engine.reload(&mut run).await?;
    for _ in 0..MAX_ATTEMPTS {
        let workflow = engine.workflow_by_digest(&run.workflow.digest).await?;
        let mut tx = Transition::default();
        tx.writes.push(delete());
        let acted = match timer.kind {
            TimerKind::Deadline => {
                let current = transition::deadline_timer(&run).as_ref() == Some(timer);
                if current && !run.state.is_finished() {
                    let after = run
                        .deadline
                        .map(|d| {
                            humantime::format_duration(
                                Duration::try_from(d - run.created_at).unwrap_or_default(),
                            )
                        })
                        .map_or_else(String::new, |d| format!(" after {d}"));
                    transition::finish(
                        &mut run,
                        RunState::Failed,
                        Some(format!("the run timed out{after} (its workflow's timeout)")),
                        &mut tx,
                    );
                    true
                } else {
                    false
                }
            }
            TimerKind::Child => child_finished(engine, &mut run, &workflow, timer, &mut tx).await?,
            TimerKind::Wake => wake(&mut run, &workflow, timer, &mut tx),
            TimerKind::Remind => remind(&mut run, &workflow, timer, &mut tx),
            // Handled above: deleting a run is not a transition of it.
            TimerKind::Purge => false,
            TimerKind::Retry | TimerKind::Expire => {
                let unit = run.unit_named(&timer.step).filter(|&u| {
                    run.record(u)
                        .is_some_and(|r| transition::pending_timer(run.id, r).as_ref() == Some(timer))
                });
                match (unit, run.state.is_finished()) {
                    (Some(unit), false) => {
                        step_timer(engine, &mut run, &workflow, unit, timer.kind, &mut tx).await;
                        true
                    }
                    _ => false,
                }
            }
        };
        if !acted {
            drop(run);
            return Ok(engine.inner.store.commit(vec![delete()]).await?);
        }
        // A run another runner drives is moved on by that runner, told by the store.
        if engine.drives(&run) {
            transition::advance(&mut run, &workflow, &engine.inner.plugins, engine, &mut tx).await;
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

/// A `sleep` or `until` step's time came (it completes), or a `wait_for` step's timeout
/// passed without its event (it fails). False when the step no longer waits on this timer.
fn wake(run: &mut RunRecord, workflow: &Workflow, timer: &Timer, tx: &mut Transition) -> bool {
    let unit = run.unit_named(&timer.step).filter(|&u| {
        run.record(u).is_some_and(|r| {
            r.state == StepState::Waiting
                && r.pause.is_some()
                && transition::pending_timer(run.id, r).as_ref() == Some(timer)
        })
    });
    let (Some(unit), false) = (unit, run.state.is_finished()) else {
        return false;
    };
    let at = now();
    let id = run.id;
    let record = run.record_mut(unit).expect("a unit found by name");
    let pause = record.pause.clone();
    transition::end_pause(id, record, at, tx);
    let outcome = match pause {
        Some(Pause::Time { until }) => {
            Outcome::Complete(serde_json::json!({ "slept_until": rfc3339(until) }))
        }
        Some(Pause::Events { events, since, .. }) => {
            let what: Vec<String> = events
                .iter()
                .map(|e| format!("{} (key {:?})", e.event, e.key))
                .collect();
            let waited = humantime::format_duration(Duration::from_secs(
                Duration::try_from(at - since).unwrap_or_default().as_secs(),
            ));
            Outcome::Fail {
                message: format!(
                    "no {} arrived within {waited} (wait_for.timeout)",
                    what.join(" or ")
                ),
                retryable: false,
            }
        }
        None => return false,
    };
    transition::apply_outcome(run, workflow, unit, outcome, Duration::ZERO, tx);
    true
}

/// A step waiting for a person is due a reminder: an `interaction.reminder` event goes out,
/// and the next reminder is set. False when the step no longer waits on this timer.
fn remind(run: &mut RunRecord, workflow: &Workflow, timer: &Timer, tx: &mut Transition) -> bool {
    let unit = run.unit_named(&timer.step).filter(|&u| {
        run.record(u)
            .is_some_and(|r| transition::reminder_timer(run.id, r).as_ref() == Some(timer))
    });
    let (Some(unit), false) = (unit, run.state.is_finished()) else {
        return false;
    };
    let Some(every) = workflow.definition_of(unit.step()).remind_every else {
        return false;
    };
    let id = run.id;
    let record = run.record_mut(unit).expect("a unit found by name");
    let name = record.name.clone();
    let Some(waiting) = record.waiting.as_mut() else {
        return false;
    };
    waiting.reminders += 1;
    let count = waiting.reminders;
    transition::set_reminder(waiting, timer.due + every);
    if let Some(next) = transition::reminder_timer(id, record) {
        tx.writes.push(Write::Timer(next));
    }
    tx.events.push(super::Event::InteractionReminder {
        run: id,
        step: name.clone(),
        count,
    });
    tx.log(
        run,
        "info",
        Some(&name),
        format!("reminder {count} sent: still waiting"),
    );
    true
}

/// A retry's backoff ended, or an interaction expired.
async fn step_timer(
    engine: &Engine,
    run: &mut RunRecord,
    workflow: &Workflow,
    unit: Unit,
    kind: TimerKind,
    tx: &mut Transition,
) {
    let Some(record) = run.record(unit) else {
        return;
    };
    let name = record.name.clone();
    if kind == TimerKind::Retry {
        if let Some(record) = run.record_mut(unit) {
            record.retry_at = None;
        }
        return;
    }
    let state = record
        .waiting
        .as_ref()
        .filter(|_| record.state == StepState::Waiting)
        .map(|w| w.state.clone())
        .unwrap_or_default();
    let Some(plugin) = record.plugin.clone() else {
        return;
    };
    let report = engine
        .plugins()
        .resume(
            &plugin,
            &call_context(run, unit),
            &state,
            ResumeEvent::Expired,
            limits(workflow, unit.step()),
        )
        .await;
    tx.log(run, "warn", Some(&name), "the interaction expired".into());
    tx.plugin_logs(run, &name, report.logs);
    match report.outcome {
        Outcome::Suspend(suspension) => escalate(run, workflow, unit, suspension, report.elapsed, tx),
        other => transition::apply_outcome(run, workflow, unit, other, report.elapsed, tx),
    }
}

/// The plugin asked, on expiry, for other people to answer (`on_expiry: {escalate_to: [...]}`):
/// the interaction is handed to them, with a new expiry, recorded in the run, the audit log
/// and an `interaction.escalated` event. Suspending again with the same people would wait
/// forever, so that fails the step.
fn escalate(
    run: &mut RunRecord,
    workflow: &Workflow,
    unit: Unit,
    suspension: crate::plugins::Suspension,
    elapsed: Duration,
    tx: &mut Transition,
) {
    let at = now();
    let id = run.id;
    let Some(record) = run.record(unit) else {
        return;
    };
    let (name, from) = (
        record.name.clone(),
        record
            .waiting
            .as_ref()
            .map(|w| w.assignees.clone())
            .unwrap_or_default(),
    );
    let to = suspension.assignees.clone();
    if to == from || to.is_empty() {
        let outcome = Outcome::Fail {
            message: "the plugin kept waiting for the same people after its interaction expired".into(),
            retryable: false,
        };
        return transition::apply_outcome(run, workflow, unit, outcome, elapsed, tx);
    }
    let expires_in = suspension.expires_in;
    transition::apply_outcome(run, workflow, unit, Outcome::Suspend(suspension), elapsed, tx);
    let record = run.record_mut(unit).expect("a unit found by name");
    if let Some(waiting) = record.waiting.as_mut() {
        waiting.expires_at = expires_in.map(|d| at + d);
        waiting.escalations.push(crate::run::Escalation {
            at,
            from: from.clone(),
            to: to.clone(),
        });
    }
    if let Some(timer) = transition::pending_timer(id, record) {
        tx.writes.push(Write::Timer(timer));
    }
    tx.events.push(super::Event::InteractionEscalated {
        run: id,
        step: name.clone(),
        to: to.clone(),
    });
    tx.log(
        run,
        "warn",
        Some(&name),
        format!("escalated from {} to {}", list(&from), list(&to)),
    );
    let entry = serde_json::json!({
        "at": rfc3339(at),
        "token": null,
        "name": "weft",
        "role": null,
        "action": format!("escalate {name}"),
        "target": format!("run {id}"),
        "outcome": 0,
        "run": id,
        "step": name,
        "from": from,
        "to": to,
    });
    // Committed with the change it records.
    tx.writes.push(Write::Audit(entry.to_string().into_bytes()));
}

fn list(people: &[String]) -> String {
    if people.is_empty() {
        "anyone".into()
    } else {
        people.join(", ")
    }
}

/// A child run of the step `timer.step` finished: the step takes its result (its outputs,
/// or its failure). False when the step no longer waits for a finished child.
async fn child_finished(
    engine: &Engine,
    run: &mut RunRecord,
    workflow: &Workflow,
    timer: &Timer,
    tx: &mut Transition,
) -> anyhow::Result<bool> {
    let Some(unit @ Unit::Step(_)) = run.unit_named(&timer.step) else {
        return Ok(false);
    };
    let record = run.record(unit).expect("a unit found by name");
    let (Some(child_id), StepState::Waiting, false) = (record.child, record.state, run.state.is_finished())
    else {
        return Ok(false);
    };
    let Some(child) = engine.run(child_id).await? else {
        return Ok(false);
    };
    let Some(outcome) = super::children::outcome_of(&child) else {
        return Ok(false);
    };
    let elapsed = child
        .ended_at
        .and_then(|end| Duration::try_from(end - child.created_at).ok())
        .unwrap_or_default();
    transition::apply_outcome(run, workflow, unit, outcome, elapsed, tx);
    Ok(true)
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
