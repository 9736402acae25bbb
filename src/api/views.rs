//! What the API shows of runs: the run record with secure inputs masked, plus what it waits
//! for now; each view a type whose schema is the document's, so the two cannot differ.

use crate::names::{RunId, StepName};
use crate::run::{AnswerRecord, Field, RunRecord, RunState, StepRecord, StepState};
use crate::workflow::Workflow;
use serde::Serialize;

/// The full execution: inputs (secure ones masked), outputs, steps, error, times, starter,
/// and the steps waiting now.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Execution {
    #[serde(flatten)]
    run: RunRecord,
    /// The names of the steps waiting now.
    waiting_steps: Vec<String>,
    /// The runs its steps started as sub-workflows.
    children: Vec<RunId>,
}

pub fn execution(run: &RunRecord, workflow: Option<&Workflow>) -> Execution {
    let mut shown = run.clone();
    if let Some(workflow) = workflow {
        shown.inputs = workflow.masked_inputs(&run.inputs);
    }
    for step in &mut shown.steps {
        hide_plugin_state(step);
        let items = step.map.as_mut().map(|m| m.active.values_mut());
        for item in items.into_iter().flatten() {
            hide_plugin_state(&mut item.record);
        }
    }
    Execution {
        waiting_steps: run.waiting_step_names(),
        children: run.children().collect(),
        run: shown,
    }
}

/// The plugin's private state of a waiting step is not for clients.
fn hide_plugin_state(step: &mut StepRecord) {
    if let Some(waiting) = step.waiting.as_mut() {
        waiting.state = serde_json::Value::Null;
    }
}

/// `GET .../state`: the state alone, as vRO returns it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ExecutionState {
    id: RunId,
    state: RunState,
    waiting_steps: Vec<String>,
}

pub fn state(run: &RunRecord) -> ExecutionState {
    ExecutionState {
        id: run.id,
        state: run.state,
        waiting_steps: run.waiting_step_names(),
    }
}

/// Whether an interaction still waits for its answer.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum InteractionState {
    Waiting,
    Answered,
}

/// A pending interaction as a form. The fields from `prompt` on are null once it is
/// answered.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Interaction {
    execution_id: RunId,
    workflow: String,
    /// The step (or `for_each` item, `Name[3]`) that waits.
    step: StepName,
    /// The same as `step` (vRO's name).
    name: StepName,
    state: InteractionState,
    prompt: Option<String>,
    fields: Option<Vec<Field>>,
    /// Who may answer: names, or `group:NAME`.
    assignees: Option<Vec<String>>,
    signal_types: Option<Vec<String>>,
    /// Keyfactor's `Step.SignalType` keys.
    signal_keys: Option<Vec<String>>,
    #[schema(format = DateTime)]
    since: Option<String>,
    #[schema(format = DateTime)]
    expires_at: Option<String>,
    answers: Vec<AnswerRecord>,
}

/// The pending interaction of a waiting step (or item of a `for_each` step), as a form.
pub fn interaction(run: &RunRecord, s: &StepRecord) -> Interaction {
    let waiting = s.waiting.as_ref();
    Interaction {
        execution_id: run.id,
        workflow: run.workflow.id.clone(),
        step: s.name.clone(),
        name: s.name.clone(),
        state: if s.state == StepState::Waiting {
            InteractionState::Waiting
        } else {
            InteractionState::Answered
        },
        prompt: waiting.map(|w| w.prompt.clone()),
        fields: waiting.map(|w| w.fields.clone()),
        assignees: waiting.map(|w| w.assignees.clone()),
        signal_types: waiting.map(|w| w.signal_types.clone()),
        signal_keys: waiting.map(|w| w.signal_types.iter().map(|t| format!("{}.{t}", s.name)).collect()),
        since: waiting.map(|w| crate::run::rfc3339(w.since)),
        expires_at: waiting.and_then(|w| w.expires_at).map(crate::run::rfc3339),
        answers: s.answers.clone(),
    }
}

/// Per-step durations, attempts and waits.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Statistics {
    id: RunId,
    state: RunState,
    /// From start to end; null until the run has finished.
    duration_ms: Option<u64>,
    steps: Vec<StepStatistics>,
}

/// One step's share of [`Statistics`].
#[derive(Serialize, utoipa::ToSchema)]
pub struct StepStatistics {
    name: StepName,
    state: StepState,
    attempts: u32,
    busy_ms: u64,
    waited_ms: u64,
    /// From start to end; null until the step has ended.
    duration_ms: Option<u64>,
    /// How many answers it took.
    answers: usize,
}

pub fn statistics(run: &RunRecord) -> Statistics {
    let span_ms = |a: Option<time::OffsetDateTime>, b: Option<time::OffsetDateTime>| match (a, b) {
        (Some(a), Some(b)) => Some((b - a).whole_milliseconds().max(0) as u64),
        _ => None,
    };
    let end = if run.state == RunState::Waiting || !run.state.is_finished() {
        None
    } else {
        run.ended_at
    };
    Statistics {
        id: run.id,
        state: run.state,
        duration_ms: span_ms(Some(run.created_at), end),
        steps: run
            .steps
            .iter()
            .map(|s| StepStatistics {
                name: s.name.clone(),
                state: s.state,
                attempts: s.attempt,
                busy_ms: s.busy_ms,
                waited_ms: s.waited_ms,
                duration_ms: span_ms(s.started_at, s.ended_at),
                answers: s.answers.len(),
            })
            .collect(),
    }
}
