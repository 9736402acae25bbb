//! Where the engine meets actions: the `pre_start` function, and the events a committed
//! transition produces for the outbox.
//!
//! The outbox writes join the transition's own writes, so an event exists exactly when the
//! change that caused it was committed. This module translates; it neither decides run
//! transitions nor calls targets itself.

use super::{Event, StartError};
use crate::actions::{ActionEvent, Actions};
use crate::run::{RunRecord, RunState};
use crate::store::Write;
use crate::workflow::{Problem, Problems, Workflow};
use anyhow::Result;
use serde_json::{json, Map, Value};

/// Runs the `pre_start` function's targets on a run's inputs before the run exists: a call
/// target may change them (they are checked against the workflow afterwards); an
/// interrupting failure refuses the start, naming the target.
pub(super) async fn pre_start(
    actions: &Actions,
    workflow: &Workflow,
    inputs: Map<String, Value>,
    started_by: &str,
) -> Result<Map<String, Value>, StartError> {
    let refused = |message: String| {
        StartError::Invalid(Problems(vec![Problem {
            path: "inputs".into(),
            message,
        }]))
    };
    let payload = json!({
        "workflow": workflow.definition.id,
        "version": workflow.definition.version,
        "started_by": started_by,
        "inputs": inputs,
    });
    match actions.run_function("pre_start", payload).await? {
        Ok(mut payload) => match payload.get_mut("inputs").map(Value::take) {
            Some(Value::Object(inputs)) => Ok(inputs),
            _ => Err(refused(
                "a pre_start action target returned a payload without an `inputs` object; \
                 a call target must return the payload with its inputs"
                    .into(),
            )),
        },
        Err(interrupted) => Err(refused(format!("refused by pre_start: {interrupted}"))),
    }
}

/// The outbox writes for the events of a transition of `run`, committed with it.
pub(super) async fn outbox_writes(
    actions: &Actions,
    run: &RunRecord,
    events: &[Event],
) -> Result<Vec<Write>> {
    let started = events
        .iter()
        .any(|e| matches!(e, Event::RunStarted { run: r } if *r == run.id));
    let mut found = Vec::new();
    for event in events {
        match event {
            Event::RunStarted { run: r } if *r == run.id => found.push(ActionEvent::run_started(run)),
            // A new run's first state is part of `execution.started`, unless it settled at once.
            Event::RunChanged { run: r, state }
                if *r == run.id && !(started && *state == RunState::Running) =>
            {
                found.extend(ActionEvent::run_changed(run, *state));
            }
            Event::InteractionCreated { run: r, step } if *r == run.id => {
                found.push(ActionEvent::interaction_created(run, step));
            }
            Event::InteractionReminder { run: r, step, count } if *r == run.id => {
                found.push(ActionEvent::interaction_reminder(run, step, *count));
            }
            Event::InteractionEscalated { run: r, step, to } if *r == run.id => {
                found.push(ActionEvent::interaction_escalated(run, step, to));
            }
            _ => {}
        }
    }
    actions.event_writes(found).await
}
