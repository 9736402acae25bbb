//! Interactions (vRO user interactions) and signals (Keyfactor): what runs wait for, and the
//! answers that continue them.

use super::auth::Caller;
use super::error::ApiError;
use super::executions::{find, visible};
use super::extract::{PathParams, QueryParams, RawBody};
use super::{json_or_empty, views, AppState};
use crate::auth::Action;
use crate::names::RunId;
use crate::run::{RunRecord, StepState, Unit};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The interaction asked for (`?step=Name` or `?step=Name[3]` for an item), or the first
/// pending one.
fn waiting_step(run: &RunRecord, step: Option<&str>) -> Result<Unit, ApiError> {
    let pending = |u: &Unit| {
        run.record(*u)
            .is_some_and(|r| r.state == StepState::Waiting && r.waiting.is_some())
    };
    if let Some(name) = step {
        return run.unit_named(name).filter(pending).ok_or_else(|| {
            ApiError::not_found(format!(
                "step {} of run {} has no pending interaction; {}",
                crate::limits::clip(name),
                run.id,
                run.describe_waiting()
            ))
        });
    }
    run.units().find(pending).ok_or_else(|| {
        ApiError::not_found(format!(
            "run {} has no pending interaction (it is {})",
            run.id,
            run.state.as_str()
        ))
    })
}

/// The pending form: step, prompt, typed fields, assignees, expiry.
#[utoipa::path(get, path = "/v1/workflows/{id}/executions/{eid}/interaction", tag = "interactions",
    operation_id = "Interactions.Get", extensions(("x-weft-actions" = json!(true))),
    params(("id" = String, Path, description = "Workflow id"), ("eid" = String, Path, description = "Execution id"), WhichStep),
    responses((status = 200, description = "The pending interaction", body = views::Interaction),
        (status = 404, description = "No such run, or nothing pending", body = super::error::ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    PathParams((wf, eid)): PathParams<(String, String)>,
    QueryParams(which): QueryParams<WhichStep>,
    caller: Caller,
) -> Result<Json<views::Interaction>, ApiError> {
    let run = find(&state, &caller, Action::ReadInteractions, &wf, &eid).await?;
    let unit = waiting_step(&run, which.step.as_deref())?;
    let step = run.record(unit).expect("a waiting unit");
    Ok(Json(views::interaction(&run, step)))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WhichStep {
    /// The waiting step, or item of a `for_each` step (`Name[3]`); the first pending one by
    /// default.
    step: Option<String>,
}

/// Answers the pending interaction with vRO's ExecutionContext (`{"parameters": [...]}`;
/// `{}` answers with no values, so defaults apply).
#[utoipa::path(post, path = "/v1/workflows/{id}/executions/{eid}/interaction", tag = "interactions",
    operation_id = "Interactions.Answer", extensions(("x-weft-actions" = json!(true))),
    params(("id" = String, Path, description = "Workflow id"), ("eid" = String, Path, description = "Execution id"), WhichStep),
    request_body(content = super::params::AnswerBody, content_type = "application/json"),
    responses((status = 204, description = "Answered"),
        (status = 400, description = "A field is missing or wrong", body = super::error::ErrorBody),
        (status = 404, description = "No such run", body = super::error::ErrorBody),
        (status = 409, description = "Nothing is waiting (already answered)", body = super::error::ErrorBody)))]
pub async fn answer(
    State(state): State<AppState>,
    PathParams((wf, eid)): PathParams<(String, String)>,
    QueryParams(which): QueryParams<WhichStep>,
    caller: Caller,
    RawBody(body): RawBody,
) -> Result<StatusCode, ApiError> {
    let run = find(&state, &caller, Action::AnswerInteractions, &wf, &eid).await?;
    let super::params::AnswerBody { data } = super::params::AnswerBody::parse(&body)?;
    let Ok(unit) = waiting_step(&run, which.step.as_deref()) else {
        return Err(ApiError::conflict(format!(
            "run {} has no pending interaction (it is {}); it may have been answered already",
            run.id,
            run.state.as_str()
        )));
    };
    let step = run.record(unit).expect("a waiting unit");
    let signal = step
        .waiting
        .as_ref()
        .and_then(|w| w.signal_types.first())
        .cloned()
        .unwrap_or_default();
    state
        .engine
        .answer(
            run.id,
            step.name.as_str(),
            &signal,
            Value::Object(data),
            &caller.0.person(),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Cancels the pending interaction: the step fails as canceled, and the run fails.
#[utoipa::path(delete, path = "/v1/workflows/{id}/executions/{eid}/interaction", tag = "interactions",
    operation_id = "Interactions.Cancel", extensions(("x-weft-actions" = json!(true))),
    params(("id" = String, Path, description = "Workflow id"), ("eid" = String, Path, description = "Execution id")),
    responses((status = 204, description = "Canceled"),
        (status = 404, description = "No such run", body = super::error::ErrorBody),
        (status = 409, description = "Nothing is waiting", body = super::error::ErrorBody)))]
pub async fn cancel(
    State(state): State<AppState>,
    PathParams((wf, eid)): PathParams<(String, String)>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    let run = find(&state, &caller, Action::ManageRuns, &wf, &eid).await?;
    state.engine.cancel_interaction(run.id, &caller.0.name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// `waiting` (the default and only state listed).
    state: Option<String>,
    /// `me`: only interactions assigned to the caller, by name or group (Keyfactor's
    /// AssignedToMe).
    assigned_to: Option<String>,
    /// The interactions of at most this many runs (default and most 1000).
    limit: Option<usize>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// Pending interactions, oldest run first, one page at a time.
#[derive(Serialize, utoipa::ToSchema)]
pub struct InteractionList {
    items: Vec<views::Interaction>,
    /// Pass as `cursor` for the next page; null on the last.
    next_cursor: Option<String>,
}

/// Most runs whose interactions one page lists.
const MAX_PAGE_RUNS: usize = 1000;

/// Every pending interaction, with its run and step.
#[utoipa::path(get, path = "/v1/interactions", tag = "interactions", operation_id = "Interactions.List",
    extensions(("x-weft-actions" = json!(true))), params(ListQuery),
    responses((status = 200, description = "Pending interactions", body = InteractionList),
        (status = 400, description = "Unknown state", body = super::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    QueryParams(query): QueryParams<ListQuery>,
    caller: Caller,
) -> Result<Json<InteractionList>, ApiError> {
    caller.require(Action::ReadInteractions)?;
    if let Some(s) = query.state.as_deref().filter(|s| *s != "waiting") {
        return Err(ApiError::bad_request(format!(
            "state {s:?}: only waiting interactions are listed"
        )));
    }
    let only_mine = match query.assigned_to.as_deref() {
        None => false,
        Some("me") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "assigned_to={other:?}: only `me` is supported"
            )))
        }
    };
    // Assignment is by name or group; admin rights do not make everything "mine".
    let person = crate::engine::Person {
        admin: false,
        ..caller.0.person()
    };
    let limit = query.limit.unwrap_or(MAX_PAGE_RUNS).clamp(1, MAX_PAGE_RUNS);
    let after: Option<RunId> = query
        .cursor
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(|e: String| ApiError::bad_request(format!("cursor: {e}")))?;
    let only_mine = only_mine || caller.0.reads_assigned_only();
    // Oldest first either way; one more run than asked tells whether there is a next page.
    let mut runs = if only_mine {
        let mut mine = state.engine.runs_waiting_for(&person, None, usize::MAX).await?;
        mine.reverse();
        mine.retain(|run| after.is_none_or(|after| run.id > after));
        mine.truncate(limit + 1);
        mine
    } else {
        state.engine.waiting_runs_after(after, limit + 1).await?
    };
    let next_cursor = if runs.len() > limit {
        runs.truncate(limit);
        runs.last().map(|r| r.id.to_string())
    } else {
        None
    };
    let mut items = Vec::new();
    for run in runs {
        for unit in run.units() {
            let Some(step) = run.record(unit) else { continue };
            let Some(waiting) = step.waiting.as_ref().filter(|_| step.state == StepState::Waiting) else {
                continue;
            };
            let assigned = !waiting.assignees.is_empty() && person.may_answer(&waiting.assignees);
            if assigned || !only_mine {
                items.push(views::interaction(&run, step));
            }
        }
    }
    Ok(Json(InteractionList { items, next_cursor }))
}

/// A Keyfactor signal: `SignalKey` is `UniqueName.SignalType`, `Data` the answer.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct Signal {
    /// `Step.SignalType`, such as `RequireApproval1.ApprovalStatus`.
    signal_key: String,
    /// The answer's fields, such as `{"Approved": "True", "Comment": "ok"}`.
    #[serde(default)]
    #[schema(value_type = Object)]
    data: Value,
}

/// Sends a signal to a run's waiting step.
#[utoipa::path(post, path = "/v1/instances/{eid}/signals", tag = "signals", operation_id = "Signals.Send",
    extensions(("x-weft-actions" = json!(true))),
    params(("eid" = String, Path, description = "Execution id")),
    request_body(content = Signal, content_type = "application/json"),
    responses((status = 204, description = "Applied"),
        (status = 400, description = "Unknown signal type or invalid data", body = super::error::ErrorBody),
        (status = 415, description = "Not JSON", body = super::error::ErrorBody),
        (status = 404, description = "No such run", body = super::error::ErrorBody),
        (status = 409, description = "That step is not the one waiting", body = super::error::ErrorBody)))]
pub async fn signal(
    State(state): State<AppState>,
    PathParams(eid): PathParams<String>,
    caller: Caller,
    headers: axum::http::HeaderMap,
    RawBody(body): RawBody,
) -> Result<StatusCode, ApiError> {
    let unknown = || ApiError::not_found(format!("no execution {}", crate::limits::clip(&eid)));
    let id: RunId = eid.parse().map_err(|_| unknown())?;
    // Who may see the run is settled before the body is read: a run an approver may not see
    // is 404 whatever they send.
    let run = state.engine.run(id).await?.ok_or_else(unknown)?;
    visible(&caller, Action::AnswerInteractions, run).map_err(|e| e.unwrap_or_else(unknown))?;
    let json = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
        });
    if !json {
        return Err(ApiError::unsupported_media(
            "send the body as JSON with `Content-Type: application/json`",
        ));
    }
    let signal: Signal = serde_json::from_value(json_or_empty(&body)?)
        .map_err(|e| ApiError::bad_request(format!("invalid signal: {e}")))?;
    let (step, signal_type) = signal
        .signal_key
        .split_once('.')
        .filter(|(s, t)| !s.is_empty() && !t.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "SignalKey {:?} must be UniqueName.SignalType, such as RequireApproval1.ApprovalStatus",
                signal.signal_key
            ))
        })?;
    let data = match signal.data {
        Value::Null => Value::Object(serde_json::Map::new()),
        object @ Value::Object(_) => object,
        _ => return Err(ApiError::bad_request("Data must be a JSON object")),
    };
    state
        .engine
        .answer(id, step, signal_type, data, &caller.0.person())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
