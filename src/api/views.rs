//! What the API shows of runs: the run record with secure inputs masked, plus what it waits
//! for now.

use crate::run::{RunRecord, RunState, StepState, Unit};
use crate::workflow::Workflow;
use serde_json::{json, Value};

/// The full execution: inputs (secure ones masked), outputs, steps, error, times, starter,
/// and the steps waiting now.
pub fn execution(run: &RunRecord, workflow: Option<&Workflow>) -> Value {
    let mut value = serde_json::to_value(run).unwrap_or(Value::Null);
    if let (Some(inputs), Some(workflow)) = (value.get_mut("inputs"), workflow) {
        *inputs = workflow.masked_inputs(inputs);
    }
    if let Some(object) = value.as_object_mut() {
        object.insert("waiting_steps".into(), json!(run.waiting_step_names()));
        object.insert("children".into(), json!(run.children().collect::<Vec<_>>()));
        for step in object
            .get_mut("steps")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            hide_plugin_state(step);
            let items = step
                .get_mut("map")
                .and_then(|m| m.get_mut("active"))
                .and_then(Value::as_object_mut);
            for item in items.into_iter().flat_map(|m| m.values_mut()) {
                if let Some(record) = item.get_mut("record") {
                    hide_plugin_state(record);
                }
            }
        }
    }
    value
}

/// The plugin's private state of a waiting step is not for clients.
fn hide_plugin_state(step: &mut Value) {
    if let Some(waiting) = step.get_mut("waiting").and_then(Value::as_object_mut) {
        waiting.remove("state");
    }
}

/// `GET .../state`: the state alone, as vRO returns it.
pub fn state(run: &RunRecord) -> Value {
    json!({"id": run.id, "state": run.state, "waiting_steps": run.waiting_step_names()})
}

/// The pending interaction of a waiting step (or item of a `for_each` step), as a form.
pub fn interaction(run: &RunRecord, unit: Unit) -> Value {
    let Some(s) = run.record(unit) else {
        return Value::Null;
    };
    let waiting = s.waiting.as_ref();
    json!({
        "execution_id": run.id,
        "workflow": run.workflow.id,
        "step": s.name,
        "name": s.name,
        "state": if s.state == StepState::Waiting { "waiting" } else { "answered" },
        "prompt": waiting.map(|w| w.prompt.clone()),
        "fields": waiting.map(|w| w.fields.clone()),
        "assignees": waiting.map(|w| w.assignees.clone()),
        "signal_types": waiting.map(|w| w.signal_types.clone()),
        "signal_keys": waiting.map(|w| w.signal_types.iter().map(|t| format!("{}.{t}", s.name)).collect::<Vec<_>>()),
        "since": waiting.map(|w| crate::run::rfc3339(w.since)),
        "expires_at": waiting.and_then(|w| w.expires_at).map(crate::run::rfc3339),
        "answers": s.answers,
    })
}

/// Per-step durations, attempts and waits.
pub fn statistics(run: &RunRecord) -> Value {
    let span_ms = |a: Option<time::OffsetDateTime>, b: Option<time::OffsetDateTime>| match (a, b) {
        (Some(a), Some(b)) => Some((b - a).whole_milliseconds().max(0) as u64),
        _ => None,
    };
    let end = if run.state == RunState::Waiting || !run.state.is_finished() {
        None
    } else {
        run.ended_at
    };
    json!({
        "id": run.id,
        "state": run.state,
        "duration_ms": span_ms(Some(run.created_at), end),
        "steps": run.steps.iter().map(|s| json!({
            "name": s.name,
            "state": s.state,
            "attempts": s.attempt,
            "busy_ms": s.busy_ms,
            "waited_ms": s.waited_ms,
            "duration_ms": span_ms(s.started_at, s.ended_at),
            "answers": s.answers.len(),
        })).collect::<Vec<_>>(),
    })
}
