//! The pages that change runs: answering a waiting step from a form drawn from its fields,
//! canceling and restarting. Every change takes the engine's path with the same checks as
//! the API ([`crate::engine::Engine::answer`]: assignee, the plugin's own checks such as
//! self-approval and counting each person once, types); a value that does not fit its field
//! is shown next to the field and nothing changes.

use super::pages::{self, answers, may_answer, progress, step_index, visible_run};
use super::render::{self, pretty, UiError};
use super::session::{field, Fields, Viewer};
use super::UiState;
use crate::auth::Action;
use crate::engine::{AnswerError, RestartError};
use crate::run::{Field, FieldType, RunRecord, StepState, Waiting};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use time::OffsetDateTime;

/// The field an approval's Approve and Deny buttons answer.
const APPROVED: &str = "Approved";

/// Whether a form is an approval: a boolean `Approved` field, shown as Approve and Deny.
fn is_approval(waiting: &Waiting) -> bool {
    waiting
        .fields
        .iter()
        .any(|f| f.name == APPROVED && f.field_type == FieldType::Boolean)
}

/// A form as sent, with what was wrong with it.
pub(super) struct Posted<'a> {
    fields: &'a Fields,
    /// Problems by field name, shown next to each field.
    errors: BTreeMap<String, String>,
    /// A problem with the whole answer (the plugin's refusal, not an assignee...).
    problem: Option<String>,
}

/// What a `datetime-local` input shows for an RFC 3339 time (in UTC).
fn local_time(text: &str) -> String {
    match OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339) {
        Ok(at) => {
            let format = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
            at.to_offset(time::UtcOffset::UTC)
                .format(&format)
                .unwrap_or_else(|_| text.to_owned())
        }
        Err(_) => text.to_owned(),
    }
}

/// A value as a form shows it.
fn shown(field: &Field, value: &Value) -> String {
    match (field.field_type, value) {
        (FieldType::Json, v) => pretty(v),
        (FieldType::DateTime, Value::String(s)) => local_time(s),
        (_, Value::String(s)) => s.clone(),
        (_, v) => v.to_string(),
    }
}

/// The inputs of a form, with values (as sent, or defaults) and errors.
fn field_views(waiting: &Waiting, posted: Option<&Posted>) -> Vec<Value> {
    let approval = is_approval(waiting);
    waiting
        .fields
        .iter()
        .enumerate()
        .filter(|(_, f)| !(approval && f.name == APPROVED))
        .map(|(i, f)| {
            let sent = posted.and_then(|p| field(p.fields, &f.name));
            let value = match (sent, &f.default) {
                // A secret is never sent back to the browser.
                _ if f.field_type == FieldType::SecureString => String::new(),
                (Some(sent), _) => sent.to_owned(),
                (None, Some(default)) if f.choices.is_empty() => shown(f, default),
                _ => String::new(),
            };
            let kind = if !f.choices.is_empty() {
                "select"
            } else {
                match f.field_type {
                    FieldType::String => "text",
                    FieldType::SecureString => "password",
                    FieldType::Boolean => "boolean",
                    FieldType::Number => "number",
                    FieldType::Integer => "integer",
                    FieldType::DateTime => "datetime",
                    FieldType::Json => "json",
                }
            };
            let chosen = |index: usize, choice: &Value| match sent {
                Some(sent) => sent == index.to_string(),
                None => f.default.as_ref() == Some(choice),
            };
            let options: Vec<Value> = f
                .choices
                .iter()
                .enumerate()
                .map(|(n, c)| json!({"value": n.to_string(), "label": shown(f, c), "selected": chosen(n, c)}))
                .collect();
            json!({
                "id": format!("field-{i}"),
                "name": f.name,
                "kind": kind,
                "type": serde_json::to_value(f.field_type).unwrap_or_default(),
                "description": f.description,
                "required": f.required && f.default.is_none(),
                "value": value,
                "options": options,
                "error": posted.and_then(|p| p.errors.get(&f.name)),
            })
        })
        .collect()
}

/// The answer's data from a posted form, each value converted to its field's type; or the
/// problem of every field that does not fit.
fn convert(waiting: &Waiting, posted: &Fields) -> Result<Map<String, Value>, BTreeMap<String, String>> {
    let mut data = Map::new();
    let mut errors = BTreeMap::new();
    for f in &waiting.fields {
        let raw = field(posted, &f.name).filter(|v| !v.trim().is_empty());
        let Some(raw) = raw else {
            if f.required && f.default.is_none() {
                let problem = if f.name == APPROVED && is_approval(waiting) {
                    "choose Approve or Deny".to_owned()
                } else {
                    "is required".to_owned()
                };
                errors.insert(f.name.clone(), problem);
            }
            continue;
        };
        let value = if !f.choices.is_empty() {
            raw.parse::<usize>()
                .ok()
                .and_then(|i| f.choices.get(i).cloned())
                .ok_or_else(|| "choose one of the listed values".to_owned())
        } else {
            typed(f.field_type, raw)
        };
        match value {
            Ok(value) => {
                data.insert(f.name.clone(), value);
            }
            Err(problem) => {
                errors.insert(f.name.clone(), problem);
            }
        }
    }
    if errors.is_empty() {
        Ok(data)
    } else {
        Err(errors)
    }
}

/// `raw` as a value of `field_type`.
fn typed(field_type: FieldType, raw: &str) -> Result<Value, String> {
    let text = raw.trim();
    match field_type {
        FieldType::String | FieldType::SecureString => Ok(json!(raw)),
        FieldType::Boolean => match text {
            "true" => Ok(json!(true)),
            "false" => Ok(json!(false)),
            _ => Err("must be yes or no".into()),
        },
        FieldType::Integer => text
            .parse::<i64>()
            .map(|n| json!(n))
            .map_err(|_| format!("must be a whole number, not {:?}", crate::limits::clip(text))),
        FieldType::Number => match text.parse::<f64>() {
            Ok(n) if n.is_finite() => Ok(json!(n)),
            _ => Err(format!("must be a number, not {:?}", crate::limits::clip(text))),
        },
        FieldType::DateTime => {
            if let Ok(at) = OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339) {
                return Ok(json!(crate::run::rfc3339(at)));
            }
            let minutes = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]");
            let seconds = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
            time::PrimitiveDateTime::parse(text, &seconds)
                .or_else(|_| time::PrimitiveDateTime::parse(text, &minutes))
                .map(|t| json!(crate::run::rfc3339(t.assume_utc())))
                .map_err(|_| "must be a date and time, such as 2026-11-22T10:00 (UTC)".into())
        }
        FieldType::Json => serde_json::from_str::<Value>(text).map_err(|e| format!("is not valid JSON: {e}")),
    }
}

/// What the page says after the viewer's answer was taken.
pub(super) fn outcome(run: &RunRecord, index: usize, me: &str) -> Value {
    let step = &run.steps[index];
    let name = step.name.as_str();
    let mine = step.answers.iter().any(|a| a.answered_by == me);
    let text = match step.state {
        _ if !mine => format!(
            "{name} is {}; the run is {}.",
            state_word(step.state),
            run.state.as_str()
        ),
        StepState::Waiting => format!(
            "Your answer was counted ({}). {name} still waits for more answers.",
            progress(step)
        ),
        StepState::Completed => format!(
            "Your answer was counted and completed {name}; the run continued and is now {}.",
            run.state.as_str()
        ),
        _ if run.state == crate::run::RunState::Rejected => {
            format!("Your answer was counted: {name} was denied and the run was rejected.")
        }
        other => format!(
            "Your answer was counted; {name} is {} and the run is {}.",
            state_word(other),
            run.state.as_str()
        ),
    };
    json!({"kind": "done", "text": text})
}

/// What the page says when the step had been answered before this answer arrived.
pub(super) fn already(run: &RunRecord, index: usize) -> Value {
    let step = &run.steps[index];
    let mut who: Vec<&str> = step.answers.iter().map(|a| a.answered_by.as_str()).collect();
    who.dedup();
    let by = if who.is_empty() {
        String::new()
    } else {
        format!(" by {}", who.join(", "))
    };
    let text = format!(
        "Already answered{by}: {} is {} and the run is {}. Your answer was not used.",
        step.name,
        state_word(step.state),
        run.state.as_str()
    );
    json!({"kind": "notice", "text": text})
}

fn state_word(state: StepState) -> String {
    serde_json::to_value(state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The page of step `index` of `run`: its form while the viewer may answer it, what it waits
/// for, and the answers so far.
pub(super) async fn form_page(
    ui: &UiState,
    viewer: &Viewer,
    run: &RunRecord,
    index: usize,
    posted: Option<Posted<'_>>,
    outcome: Option<Value>,
    status: StatusCode,
) -> Result<Response, UiError> {
    let step = &run.steps[index];
    let waiting = step.waiting.as_ref().filter(|_| step.state == StepState::Waiting);
    let answerable = may_answer(&viewer.principal, step);
    let inputs = match ui.engine.workflow_of(run).await {
        Ok(workflow) => Some(pretty(&workflow.masked_inputs(&run.inputs))),
        Err(_) => None,
    };
    let mut context = json!({
        "run": {
            "id": run.id.to_string(),
            "workflow": run.workflow.id,
            "version": run.workflow.version,
            "state": run.state.as_str(),
            "started_by": run.started_by,
            "created": render::when(run.created_at),
            "inputs": inputs,
        },
        "step": {"name": step.name.as_str(), "state": state_word(step.state), "error": step.error},
        "waiting": waiting.map(|w| json!({
            "prompt": w.prompt,
            "assignees": w.assignees,
            "since": render::when(w.since),
            "age": render::ago(w.since),
            "expires_at": w.expires_at.map(crate::run::rfc3339),
            "expires_text": w.expires_at.map(render::when),
            "expires_in": w.expires_at.map(render::until),
            "progress": progress(step),
            "signal_types": w.signal_types,
        })),
        "may_answer": answerable,
        "approval": waiting.is_some_and(is_approval),
        "fields": waiting.map(|w| field_views(w, posted.as_ref())).unwrap_or_default(),
        "chosen_signal": posted.as_ref().and_then(|p| field(p.fields, "signal_type")),
        "problem": posted.as_ref().and_then(|p| p.problem.clone()),
        "field_errors": posted.as_ref().is_some_and(|p| !p.errors.is_empty()),
        "outcome": outcome,
        "answers": answers(step),
        "action": format!("/ui/runs/{}/steps/{}", run.id, step.name),
    });
    let title = match waiting {
        Some(w) if answerable => format!("Answer: {}", crate::limits::clip_to(&w.prompt, 80)),
        _ => format!("{} of run {}", step.name, pages::short(&run.id)),
    };
    render::page_with_status(status, viewer, "step.html", &title, &mut context)
}

/// `POST /ui/runs/{id}/steps/{step}`: answers the step.
pub(super) async fn answer(
    State(ui): State<UiState>,
    viewer: Viewer,
    Path((id, name)): Path<(String, String)>,
    Form(fields): Form<Fields>,
) -> Result<Response, UiError> {
    let run = visible_run(&ui, &viewer, &id, Action::AnswerInteractions).await?;
    let index = step_index(&run, &name)?;
    let page_of = |query: &str| format!("/ui/runs/{}/steps/{}?{query}", run.id, run.steps[index].name);
    let step = &run.steps[index];
    let Some(waiting) = step.waiting.as_ref().filter(|_| step.state == StepState::Waiting) else {
        return Ok(Redirect::to(&page_of("already=1")).into_response());
    };
    let signal = match field(&fields, "signal_type") {
        Some(chosen) if waiting.signal_types.iter().any(|s| s == chosen) => chosen.to_owned(),
        _ => waiting.signal_types.first().cloned().unwrap_or_default(),
    };
    let shown_again = |errors, problem, status| {
        let posted = Posted {
            fields: &fields,
            errors,
            problem,
        };
        form_page(&ui, &viewer, &run, index, Some(posted), None, status)
    };
    let data = match convert(waiting, &fields) {
        Ok(data) => data,
        Err(errors) => {
            let problem = errors.get(APPROVED).filter(|_| is_approval(waiting)).cloned();
            return shown_again(errors, problem, StatusCode::BAD_REQUEST).await;
        }
    };
    let answered = ui
        .engine
        .answer(
            run.id,
            &name,
            &signal,
            Value::Object(data),
            &viewer.principal.person(),
        )
        .await;
    match answered {
        Ok(_) => Ok(Redirect::to(&page_of("answered=1")).into_response()),
        Err(AnswerError::NotWaiting(_)) => Ok(Redirect::to(&page_of("already=1")).into_response()),
        Err(AnswerError::UnknownRun(id)) => Err(UiError::NotFound(format!("There is no run {id}."))),
        Err(AnswerError::NotAssigned(m)) => {
            shown_again(BTreeMap::new(), Some(m), StatusCode::FORBIDDEN).await
        }
        Err(AnswerError::Invalid(m) | AnswerError::UnknownSignal(m) | AnswerError::UnknownStep(m)) => {
            shown_again(BTreeMap::new(), Some(m), StatusCode::BAD_REQUEST).await
        }
        Err(AnswerError::Internal(e)) => Err(UiError::Internal(e)),
    }
}

/// `POST /ui/runs/{id}/cancel`.
pub(super) async fn cancel(
    State(ui): State<UiState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    let run = visible_run(&ui, &viewer, &id, Action::ManageRuns).await?;
    match ui.engine.cancel(run.id, &viewer.principal.name).await {
        Ok(_) => Ok(Redirect::to(&format!("/ui/runs/{}", run.id)).into_response()),
        Err(AnswerError::NotWaiting(m)) => Err(UiError::Conflict(m)),
        Err(AnswerError::UnknownRun(id)) => Err(UiError::NotFound(format!("There is no run {id}."))),
        Err(e) => Err(UiError::Internal(e.into())),
    }
}

/// `POST /ui/runs/{id}/restart`: a new run with the same inputs.
pub(super) async fn restart(
    State(ui): State<UiState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    let run = visible_run(&ui, &viewer, &id, Action::ManageRuns).await?;
    match ui.engine.restart(run.id, None, &viewer.principal.name).await {
        Ok(new) => Ok(Redirect::to(&format!("/ui/runs/{new}")).into_response()),
        Err(RestartError::NotRestartable(m)) => Err(UiError::Conflict(m)),
        Err(RestartError::UnknownRun(id)) => Err(UiError::NotFound(format!("There is no run {id}."))),
        Err(RestartError::UnknownVersion(m)) => Err(UiError::NotFound(m)),
        Err(RestartError::Start(e)) => Err(UiError::BadRequest(e.to_string())),
        Err(RestartError::Internal(e)) => Err(UiError::Internal(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_converted_to_their_types_or_refused() {
        assert_eq!(typed(FieldType::Integer, " 42 "), Ok(json!(42)));
        assert!(typed(FieldType::Integer, "12.5")
            .unwrap_err()
            .contains("whole number"));
        assert_eq!(typed(FieldType::Number, "2.5"), Ok(json!(2.5)));
        assert!(typed(FieldType::Number, "NaN").is_err());
        assert_eq!(typed(FieldType::Boolean, "true"), Ok(json!(true)));
        assert_eq!(
            typed(FieldType::DateTime, "2026-11-22T10:00"),
            Ok(json!("2026-11-22T10:00:00Z"))
        );
        assert!(typed(FieldType::DateTime, "tomorrow").is_err());
        assert_eq!(typed(FieldType::Json, r#"{"a": [1]}"#), Ok(json!({"a": [1]})));
        assert!(typed(FieldType::Json, "{")
            .unwrap_err()
            .contains("not valid JSON"));
        assert_eq!(
            typed(FieldType::String, " keep spaces "),
            Ok(json!(" keep spaces "))
        );
    }
}
