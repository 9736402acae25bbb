//! The run state machine: given a run record, decide what changes, and collect the writes and
//! events that describe the change. Nothing here touches the store; the caller commits the
//! writes and only then acts on them (starts plugin calls, publishes events). The only thing
//! awaited is template evaluation, which runs in the plugin host's sandbox.

use super::Event;
use crate::names::StepName;
use crate::plugins::{Outcome, PluginHost, PluginLog, Suspension};
use crate::run::{now, LogLine, RunRecord, RunState, StepState, Waiting};
use crate::store::{Timer, TimerKind, Write};
use crate::workflow::Workflow;
use serde_json::{json, Map, Value};
use std::time::Duration;

/// The writes and events one transition produced.
#[derive(Default)]
pub struct Transition {
    pub writes: Vec<Write>,
    pub events: Vec<Event>,
    /// Steps (by index) to call once the transition is committed, with their rendered input.
    pub to_start: Vec<(usize, Value)>,
    /// Whether the run record changed and must be written.
    pub dirty: bool,
}

impl Transition {
    /// Appends a line to the run's log.
    pub fn log(&mut self, run: &mut RunRecord, level: &str, step: Option<&StepName>, message: String) {
        let line = LogLine {
            seq: run.next_log_seq,
            at: now(),
            level: level.to_owned(),
            step: step.cloned(),
            message,
        };
        run.next_log_seq += 1;
        match serde_json::to_vec(&line) {
            Ok(doc) => self.writes.push(Write::Log {
                run: run.id,
                seq: line.seq,
                doc,
            }),
            Err(e) => tracing::error!("cannot serialize a log line: {e}"),
        }
        self.dirty = true;
    }

    pub fn plugin_logs(&mut self, run: &mut RunRecord, step: &StepName, logs: Vec<PluginLog>) {
        for line in logs {
            self.log(run, line.level, Some(step), line.message);
        }
    }

    fn set_run_state(&mut self, run: &mut RunRecord, state: RunState) {
        if run.state != state {
            run.state = state;
            if state.is_finished() {
                run.ended_at = Some(now());
            }
            self.events.push(Event::RunChanged { run: run.id, state });
            self.dirty = true;
        }
    }
}

/// The values a template may read, as far as the dotted `names` it reads reach:
/// `inputs.<name>`, `steps.<name>` (its `output` and `state`) and `run`. Only what is read is
/// copied, so building a step's context does not grow with the run's other outputs.
pub fn context_for(run: &RunRecord, names: &[String]) -> Value {
    let mut inputs = Map::new();
    let mut steps = Map::new();
    let mut with_run = false;
    let step_value = |s: &crate::run::StepRecord| {
        let state = serde_json::to_value(s.state).unwrap_or(Value::Null);
        let output = s.output.clone().unwrap_or(Value::Null);
        json!({ "output": output, "state": state })
    };
    for name in names {
        let mut parts = name.splitn(3, '.');
        match (parts.next(), parts.next()) {
            (Some("inputs"), Some(input)) => {
                if let Some(value) = run.inputs.get(input) {
                    inputs.insert(input.to_owned(), value.clone());
                }
            }
            (Some("inputs"), None) => {
                if let Value::Object(all) = &run.inputs {
                    inputs.extend(all.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
            }
            (Some("steps"), Some(step)) => {
                if let Some(record) = run.step(step) {
                    steps.insert(step.to_owned(), step_value(record));
                }
            }
            (Some("steps"), None) => {
                for record in &run.steps {
                    steps.insert(record.name.to_string(), step_value(record));
                }
            }
            (Some("run"), _) => with_run = true,
            _ => {}
        }
    }
    let mut context = json!({ "inputs": inputs, "steps": steps });
    if with_run {
        context["run"] = json!({
            "id": run.id.to_string(),
            "workflow": run.workflow.id,
            "version": run.workflow.version,
            "started_by": run.started_by,
        });
    }
    context
}

/// Moves the run forward as far as it can go without calling a plugin: skips steps whose
/// `when` is false, marks ready steps running (returning them to start), and settles the run
/// state (`waiting`, `completed`, `failed`) when nothing is left to run.
pub async fn advance(run: &mut RunRecord, workflow: &Workflow, plugins: &PluginHost, tx: &mut Transition) {
    if run.state.is_finished() {
        return;
    }
    let now = now();
    loop {
        let mut changed = false;
        for i in 0..run.steps.len() {
            let step = &run.steps[i];
            if step.state != StepState::Pending || step.retry_at.is_some_and(|at| at > now) {
                continue;
            }
            let deps_done = workflow.steps[i]
                .needs
                .iter()
                .all(|&d| run.steps[d].state.lets_dependents_run());
            if !deps_done || tx.to_start.iter().any(|(j, _)| *j == i) {
                continue;
            }
            let definition = &workflow.definition.steps[i];
            let name = run.steps[i].name.clone();
            if let Some(when) = &definition.when {
                let context = context_for(run, &workflow.steps[i].when_names);
                match plugins.is_true(when, &context).await {
                    Ok(true) => {}
                    Ok(false) => {
                        let step = &mut run.steps[i];
                        step.state = StepState::Skipped;
                        step.ended_at = Some(now);
                        tx.events.push(Event::StepFinished {
                            run: run.id,
                            step: name.clone(),
                            state: StepState::Skipped,
                            elapsed: Duration::ZERO,
                            detail: Some(format!("`when: {when}` is false")),
                        });
                        tx.log(
                            run,
                            "info",
                            Some(&name),
                            format!("skipped: `when: {when}` is false"),
                        );
                        changed = true;
                        continue;
                    }
                    Err(e) => {
                        fail_step(run, i, format!("when: {e}"), tx);
                        changed = true;
                        continue;
                    }
                }
            }
            let context = context_for(run, &workflow.steps[i].input_names);
            match plugins.render(&definition.input, &context).await {
                Ok(input) => {
                    let step = &mut run.steps[i];
                    step.state = StepState::Running;
                    step.attempt += 1;
                    step.retry_at = None;
                    step.started_at.get_or_insert(now);
                    let attempt = step.attempt;
                    tx.events.push(Event::StepStarted {
                        run: run.id,
                        step: name.clone(),
                        attempt,
                    });
                    tx.log(run, "info", Some(&name), format!("started (attempt {attempt})"));
                    tx.to_start.push((i, input));
                }
                Err(e) => {
                    fail_step(run, i, format!("input.{e}"), tx);
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    settle(run, workflow, plugins, tx).await;
}

/// Decides the run state from its steps.
async fn settle(run: &mut RunRecord, workflow: &Workflow, plugins: &PluginHost, tx: &mut Transition) {
    let count = |state: StepState| run.steps.iter().filter(|s| s.state == state).count();
    if let Some(failed) = run.steps.iter().find(|s| s.state == StepState::Failed) {
        let error = format!(
            "step {} failed: {}",
            failed.name,
            failed.error.clone().unwrap_or_default()
        );
        return finish(run, RunState::Failed, Some(error), tx);
    }
    if count(StepState::Running) > 0 || !tx.to_start.is_empty() {
        return tx.set_run_state(run, RunState::Running);
    }
    if count(StepState::Waiting) > 0 {
        return tx.set_run_state(run, RunState::Waiting);
    }
    if count(StepState::Pending) > 0 {
        // Only retries waiting out their backoff are left; a timer will pick them up.
        return tx.set_run_state(run, RunState::Running);
    }
    let outputs = Value::Object(workflow.definition.outputs.clone());
    match plugins
        .render(&outputs, &context_for(run, &workflow.output_names))
        .await
    {
        Ok(rendered) => {
            run.outputs = Some(rendered);
            finish(run, RunState::Completed, None, tx);
        }
        Err(e) => finish(run, RunState::Failed, Some(format!("outputs.{e}")), tx),
    }
}

/// Ends the run: steps still pending, running or waiting are canceled and their timers
/// dropped.
pub fn finish(run: &mut RunRecord, state: RunState, error: Option<String>, tx: &mut Transition) {
    let ended = now();
    for step in &mut run.steps {
        if matches!(
            step.state,
            StepState::Pending | StepState::Running | StepState::Waiting
        ) {
            if let Some(timer) = pending_timer(run.id, step) {
                tx.writes.push(Write::DeleteTimer(timer));
            }
            step.state = StepState::Canceled;
            step.ended_at = Some(ended);
            step.retry_at = None;
            step.waiting = None;
        }
    }
    if let Some(error) = &error {
        let message = format!("run {}: {error}", state.as_str());
        tx.log(run, "error", None, message);
    } else {
        tx.log(run, "info", None, format!("run {}", state.as_str()));
    }
    run.error = error;
    tx.set_run_state(run, state);
}

/// The timer a step is holding, if any: its expiry while waiting, its backoff while pending.
pub fn pending_timer(run: crate::names::RunId, step: &crate::run::StepRecord) -> Option<Timer> {
    match (&step.waiting, step.retry_at) {
        (
            Some(Waiting {
                expires_at: Some(due),
                ..
            }),
            _,
        ) => Some(Timer {
            due: whole_ms(*due),
            run,
            step: step.name.to_string(),
            kind: TimerKind::Expire,
        }),
        (_, Some(due)) => Some(Timer {
            due: whole_ms(due),
            run,
            step: step.name.to_string(),
            kind: TimerKind::Retry,
        }),
        _ => None,
    }
}

/// Adds the time since the step began waiting to its `waited_ms`, if it waits.
pub fn stop_waiting(step: &mut crate::run::StepRecord, at: time::OffsetDateTime) {
    if let Some(waiting) = &step.waiting {
        let waited = (at - waiting.since).whole_milliseconds().max(0);
        step.waited_ms += u64::try_from(waited).unwrap_or(u64::MAX);
    }
}

/// The store keeps timers to the millisecond; round up so a timer never fires early and
/// matches its step exactly when it does.
fn whole_ms(at: time::OffsetDateTime) -> time::OffsetDateTime {
    let nanos = at.unix_timestamp_nanos();
    let ms = nanos.div_euclid(1_000_000) + i128::from(nanos.rem_euclid(1_000_000) != 0);
    time::OffsetDateTime::from_unix_timestamp_nanos(ms * 1_000_000).unwrap_or(at)
}

fn fail_step(run: &mut RunRecord, i: usize, error: String, tx: &mut Transition) {
    let name = run.steps[i].name.clone();
    let step = &mut run.steps[i];
    step.state = StepState::Failed;
    step.ended_at = Some(now());
    step.error = Some(error.clone());
    tx.events.push(Event::StepFinished {
        run: run.id,
        step: name.clone(),
        state: StepState::Failed,
        elapsed: Duration::ZERO,
        detail: Some(error.clone()),
    });
    tx.log(run, "error", Some(&name), format!("failed: {error}"));
}

/// Records what a plugin call decided for step `i`. `InvalidAnswer` is the caller's business
/// and must not reach here.
pub fn apply_outcome(
    run: &mut RunRecord,
    workflow: &Workflow,
    i: usize,
    outcome: Outcome,
    elapsed: Duration,
    tx: &mut Transition,
) {
    let name = run.steps[i].name.clone();
    let at = now();
    run.steps[i].busy_ms += u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
    if !matches!(outcome, Outcome::Suspend(_)) {
        stop_waiting(&mut run.steps[i], at);
    }
    let finished = |state, detail| Event::StepFinished {
        run: run.id,
        step: name.clone(),
        state,
        elapsed,
        detail,
    };
    match outcome {
        Outcome::Complete(output) => {
            tx.events.push(finished(StepState::Completed, None));
            let step = &mut run.steps[i];
            if let Some(waiting) = &step.waiting {
                step.secure_output = waiting
                    .fields
                    .iter()
                    .filter(|f| f.field_type == crate::run::FieldType::SecureString)
                    .map(|f| f.name.clone())
                    .collect();
            }
            step.state = StepState::Completed;
            step.ended_at = Some(at);
            step.output = Some(output);
            step.error = None;
            step.waiting = None;
            tx.log(run, "info", Some(&name), format!("completed in {}", ms(elapsed)));
        }
        Outcome::Suspend(suspension) => {
            let signals = suspension.signal_types.join(", ");
            tx.events.push(finished(
                StepState::Waiting,
                Some(format!("waiting for {name}.{signals}")),
            ));
            // Still waiting after an answer: the same interaction goes on, with its start and
            // expiry unchanged.
            let earlier = run.steps[i].waiting.as_ref().map(|w| (w.since, w.expires_at));
            let waiting = to_waiting(suspension, at, earlier);
            let step = &mut run.steps[i];
            step.state = StepState::Waiting;
            step.waiting = Some(waiting);
            if earlier.is_none() {
                tx.events.push(Event::InteractionCreated {
                    run: run.id,
                    step: name.clone(),
                });
                if let Some(timer) = pending_timer(run.id, &run.steps[i]) {
                    tx.writes.push(Write::Timer(timer));
                }
            }
            tx.log(run, "info", Some(&name), format!("waiting for {signals}"));
        }
        Outcome::Fail { message, retryable } => {
            let policy = workflow.steps[i].retry;
            let attempt = run.steps[i].attempt;
            let step = &mut run.steps[i];
            step.waiting = None;
            step.error = Some(message.clone());
            if retryable && attempt < policy.max_attempts {
                let backoff = policy.backoff_after(attempt);
                step.state = StepState::Pending;
                step.retry_at = Some(at + backoff);
                if let Some(timer) = pending_timer(run.id, &run.steps[i]) {
                    tx.writes.push(Write::Timer(timer));
                }
                tx.events.push(finished(
                    StepState::Pending,
                    Some(format!(
                        "attempt {attempt} failed, retrying in {}: {message}",
                        ms(backoff)
                    )),
                ));
                tx.log(
                    run,
                    "warn",
                    Some(&name),
                    format!(
                        "attempt {attempt} of {} failed, retrying in {}: {message}",
                        policy.max_attempts,
                        ms(backoff)
                    ),
                );
            } else {
                tx.events.push(finished(StepState::Failed, Some(message.clone())));
                step.state = StepState::Failed;
                step.ended_at = Some(at);
                tx.log(
                    run,
                    "error",
                    Some(&name),
                    format!("failed after {attempt} attempt(s): {message}"),
                );
            }
        }
        Outcome::Reject(decision) => {
            tx.events
                .push(finished(StepState::Failed, Some("rejected".into())));
            let step = &mut run.steps[i];
            step.state = StepState::Failed;
            step.ended_at = Some(at);
            step.output = Some(decision);
            step.error = Some("rejected".into());
            step.waiting = None;
            finish(
                run,
                RunState::Rejected,
                Some(format!("step {name} was rejected")),
                tx,
            );
        }
        Outcome::InvalidAnswer(message) => {
            // `resume(expired)` has no answer to refuse: treat it as a plain failure.
            apply_outcome(
                run,
                workflow,
                i,
                Outcome::Fail {
                    message,
                    retryable: false,
                },
                Duration::ZERO,
                tx,
            );
        }
    }
    tx.dirty = true;
}

fn to_waiting(
    s: Suspension,
    at: time::OffsetDateTime,
    earlier: Option<(time::OffsetDateTime, Option<time::OffsetDateTime>)>,
) -> Waiting {
    let (since, expires_at) = earlier.unwrap_or((at, s.expires_in.map(|d| at + d)));
    Waiting {
        prompt: s.prompt,
        fields: s.fields,
        assignees: s.assignees,
        signal_types: s.signal_types,
        since,
        expires_at,
        state: s.state,
    }
}

fn ms(d: Duration) -> String {
    if d < Duration::from_millis(10) {
        format!("{:.2}ms", d.as_secs_f64() * 1000.0)
    } else {
        humantime::format_duration(Duration::from_millis(d.as_millis() as u64)).to_string()
    }
}
