//! What the engine reports of each committed transition, in one place: a log line per run
//! and step transition (failures with their cause), the run counters, a finished run's
//! span, and deletions. Called after the commit, so nothing is reported that did not happen; it changes
//! nothing.

use super::Event;
use crate::run::{RunRecord, RunState, StepState};
use crate::telemetry::metrics::{metrics, DeletedLabels, FinishedLabels, WorkflowLabels};
use crate::telemetry::traces;

/// Why a finished run was deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Deletion {
    /// Its retention time ran out.
    Retention,
    /// `weft runs purge` (or `POST /v1/executions/purge`).
    Purge,
    /// Deleted by itself (`DELETE` on the run).
    Delete,
}

impl Deletion {
    fn as_str(self) -> &'static str {
        match self {
            Deletion::Retention => "retention",
            Deletion::Purge => "purge",
            Deletion::Delete => "delete",
        }
    }
}

/// Reports that the finished `run` was just deleted with its log.
pub(super) fn run_deleted(run: &RunRecord, why: Deletion) {
    let workflow = &run.workflow.id;
    tracing::info!(run = %run.id, workflow = %workflow, reason = why.as_str(), "run deleted");
    metrics()
        .runs_deleted
        .get_or_create(&DeletedLabels {
            workflow: workflow.clone(),
            reason: why.as_str().to_owned(),
        })
        .inc();
}

/// Reports the `events` of a transition of `run` that was just committed.
pub(super) fn committed(run: &RunRecord, events: &[Event]) {
    let (id, workflow) = (&run.id, &run.workflow.id);
    for event in events {
        match event {
            Event::RunStarted { .. } => {
                tracing::info!(
                    run = %id,
                    workflow = %workflow,
                    version = run.workflow.version,
                    started_by = %run.started_by,
                    "run started"
                );
                metrics()
                    .runs_started
                    .get_or_create(&WorkflowLabels {
                        workflow: workflow.clone(),
                    })
                    .inc();
            }
            Event::StepStarted { step, attempt, .. } => {
                tracing::debug!(run = %id, workflow = %workflow, step = %step, attempt, "step started");
            }
            Event::StepFinished {
                step,
                state,
                elapsed,
                detail,
                ..
            } => {
                let elapsed_ms = elapsed.as_secs_f64() * 1000.0;
                let state_name = state.as_str();
                let detail = detail.as_deref().unwrap_or_default();
                match state {
                    StepState::Failed => tracing::warn!(
                        run = %id, workflow = %workflow, step = %step, state = state_name, elapsed_ms,
                        error = detail, "step failed"
                    ),
                    StepState::Pending => tracing::warn!(
                        run = %id, workflow = %workflow, step = %step, state = state_name, elapsed_ms,
                        error = detail, "step attempt failed; it will be retried"
                    ),
                    _ => tracing::info!(
                        run = %id, workflow = %workflow, step = %step, state = state_name, elapsed_ms,
                        "step finished"
                    ),
                }
            }
            Event::InteractionCreated { step, .. } => {
                tracing::info!(run = %id, workflow = %workflow, step = %step, "step waits for a person");
            }
            Event::InteractionReminder { step, count, .. } => {
                tracing::info!(run = %id, workflow = %workflow, step = %step, count, "reminder sent");
            }
            Event::InteractionEscalated { step, to, .. } => {
                tracing::info!(
                    run = %id, workflow = %workflow, step = %step, to = %to.join(", "),
                    "interaction escalated"
                );
            }
            Event::RunChanged { state, .. } if state.is_finished() => finished(run, *state),
            Event::RunChanged { state, .. } => {
                tracing::info!(run = %id, workflow = %workflow, state = state.as_str(), "run state changed");
            }
        }
    }
}

fn finished(run: &RunRecord, state: RunState) {
    let (id, workflow) = (&run.id, &run.workflow.id);
    match (state, &run.error) {
        (RunState::Failed, Some(error)) => tracing::error!(
            run = %id, workflow = %workflow, state = state.as_str(), error = %error, "run finished"
        ),
        (_, Some(error)) => tracing::info!(
            run = %id, workflow = %workflow, state = state.as_str(), error = %error, "run finished"
        ),
        (_, None) => tracing::info!(run = %id, workflow = %workflow, state = state.as_str(), "run finished"),
    }
    metrics()
        .runs_finished
        .get_or_create(&FinishedLabels {
            workflow: workflow.clone(),
            state: state.as_str().to_owned(),
        })
        .inc();
    if let Some(trace) = &run.trace {
        traces::end_run(traces::FinishedRun {
            trace,
            name: format!("run {workflow}"),
            started: run.created_at,
            ended: run.ended_at.unwrap_or_else(crate::run::now),
            attributes: vec![
                opentelemetry::KeyValue::new("weft.run.id", id.to_string()),
                opentelemetry::KeyValue::new("weft.workflow", workflow.clone()),
                opentelemetry::KeyValue::new("weft.workflow.version", run.workflow.version as i64),
                opentelemetry::KeyValue::new("weft.run.state", state.as_str()),
            ],
            error: (state == RunState::Failed).then_some(run.error.as_deref().unwrap_or("failed")),
        });
    }
}
