//! Executions (runs), in the shape of vRO's Workflow Run Service: start, list, read, cancel,
//! delete, logs, statistics and restart.

use super::auth::Caller;
use super::error::ApiError;
use super::extract::{JsonBody, PathParams, QueryParams, RawBody};
use super::params::StartBody;
use super::{json_or_empty, views, AppState};
use crate::auth::Action;
use crate::engine::RunQuery;
use crate::engine::StartOptions;
use crate::names::RunId;
use crate::run::{LogLine, RunSummary};
use crate::run::{RunRecord, RunState};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StartQuery {
    /// Start this version instead of the latest.
    version: Option<u64>,
    /// Answer only when the run has finished or waits for a person.
    #[serde(default)]
    wait: bool,
}

/// Starts a run. The body is vRO's ExecutionContext (`parameters`, plain or typed values),
/// `{"input": {...}}`, or SecMaster's `playbook_context`; `{}` or no body starts without
/// inputs. The same `Idempotency-Key` returns the same run.
#[utoipa::path(post, path = "/v1/workflows/{id}/executions", tag = "executions",
    operation_id = "Executions.Start", extensions(("x-weft-actions" = json!(true))),
    params(("id" = String, Path, description = "Workflow id"), StartQuery,
        ("Idempotency-Key" = Option<String>, Header, description = "Start at most one run per key (1 to 255 visible characters)")),
    request_body(content = StartBody, content_type = "application/json"),
    responses((status = 202, description = "Started", body = Started,
            headers(("Location" = String, description = "The run"))),
        (status = 200, description = "Finished or waiting (with ?wait=true)", body = views::Execution,
            headers(("Location" = String, description = "The run"))),
        (status = 400, description = "Invalid body or inputs", body = super::error::ErrorBody),
        (status = 404, description = "No such workflow", body = super::error::ErrorBody),
        (status = 422, description = "The Idempotency-Key was used for another request", body = super::error::ErrorBody)))]
pub async fn start(
    State(state): State<AppState>,
    PathParams(workflow_id): PathParams<String>,
    QueryParams(query): QueryParams<StartQuery>,
    caller: Caller,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    caller.require(Action::StartRuns)?;
    let StartBody { body, mut inputs } = StartBody::parse(&body)?;
    let workflow = state
        .engine
        .workflow(&workflow_id, query.version)
        .await?
        .ok_or_else(|| match query.version {
            Some(v) => ApiError::not_found(format!("workflow {workflow_id} has no version {v}")),
            None => ApiError::not_found(format!("no workflow {workflow_id}")),
        })?;
    // SecMaster always sends its data class; keep it only where the workflow asks for it.
    if !workflow.definition.inputs.contains_key("dataclass") && body.get("playbook_context").is_some() {
        inputs.remove("dataclass");
    }
    let idempotency_key = match headers.get("idempotency-key") {
        Some(v) => Some(
            v.to_str()
                .ok()
                .filter(|k| !k.is_empty() && k.len() <= 255)
                .ok_or_else(|| ApiError::bad_request("Idempotency-Key must be 1 to 255 visible characters"))?
                .to_owned(),
        ),
        None => None,
    };
    let options = StartOptions {
        idempotency_key,
        ..StartOptions::default()
    };
    let id = state
        .engine
        .start_with(&workflow, inputs, &caller.0.name, options)
        .await?;
    started(&state, &workflow_id, id, query.wait).await
}

/// The answer to a start or restart: 202 with the run's id, or with `wait`, 200 and the run
/// once it has finished or waits for a person.
async fn started(state: &AppState, workflow_id: &str, id: RunId, wait: bool) -> Result<Response, ApiError> {
    let location = format!("/v1/workflows/{workflow_id}/executions/{id}");
    if wait {
        let run = state.engine.settled(id).await?;
        let body = views::execution(&run, state.engine.workflow_of(&run).await.ok().as_deref());
        return Ok((StatusCode::OK, [(header::LOCATION, location)], Json(body)).into_response());
    }
    let run = state
        .engine
        .run(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no run {id}")))?;
    let body = Started {
        id,
        state: run.state,
        href: location.clone(),
    };
    Ok((StatusCode::ACCEPTED, [(header::LOCATION, location)], Json(body)).into_response())
}

/// A run just started (or restarted).
#[derive(Serialize, utoipa::ToSchema)]
pub struct Started {
    id: RunId,
    state: RunState,
    /// Where the run is read: `/v1/workflows/ID/executions/RUN`.
    href: String,
}

/// A page of runs, newest first.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RunPage {
    items: Vec<RunSummary>,
    /// Pass as `cursor` for the next page; null on the last.
    next_cursor: Option<String>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only runs in this state.
    state: Option<String>,
    /// Only runs of this workflow (for `/v1/executions`).
    workflow: Option<String>,
    /// Only runs started after this RFC 3339 time.
    started_after: Option<String>,
    /// Only runs started before this RFC 3339 time.
    started_before: Option<String>,
    /// At most this many (default 50, at most 1000).
    limit: Option<usize>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Only runs started by this user; `me` is the caller.
    started_by: Option<String>,
    /// `input.NAME=VALUE`: only runs whose input NAME is VALUE (exact, on top-level string,
    /// number and boolean inputs; several allowed). Read from an index, never a scan. Not in
    /// the document: OpenAPI cannot name parameters by a prefix.
    #[serde(flatten)]
    #[param(ignore)]
    filters: std::collections::BTreeMap<String, String>,
}

/// Most `input.NAME` filters in one listing.
const MAX_INPUT_FILTERS: usize = 8;

/// Runs of one workflow, newest first, filtered and paged.
#[utoipa::path(get, path = "/v1/workflows/{id}/executions", tag = "executions",
    operation_id = "Executions.List", extensions(("x-weft-actions" = json!(true))),
    params(("id" = String, Path, description = "Workflow id"), ListQuery),
    responses((status = 200, description = "A page of runs", body = RunPage),
        (status = 400, description = "Bad filter", body = super::error::ErrorBody)))]
pub async fn list_for_workflow(
    State(state): State<AppState>,
    PathParams(workflow_id): PathParams<String>,
    QueryParams(mut query): QueryParams<ListQuery>,
    caller: Caller,
) -> Result<Json<RunPage>, ApiError> {
    caller.require(Action::ReadRuns)?;
    query.workflow = Some(workflow_id);
    list_runs(&state, &caller, query).await
}

/// Runs of every workflow, newest first, filtered and paged (`?state=waiting`).
#[utoipa::path(get, path = "/v1/executions", tag = "executions", operation_id = "Executions.ListAll",
    extensions(("x-weft-actions" = json!(true))), params(ListQuery),
    responses((status = 200, description = "A page of runs", body = RunPage),
        (status = 400, description = "Bad filter", body = super::error::ErrorBody)))]
pub async fn list_all(
    State(state): State<AppState>,
    QueryParams(query): QueryParams<ListQuery>,
    caller: Caller,
) -> Result<Json<RunPage>, ApiError> {
    caller.require(Action::ReadRuns)?;
    list_runs(&state, &caller, query).await
}

async fn list_runs(state: &AppState, caller: &Caller, query: ListQuery) -> Result<Json<RunPage>, ApiError> {
    let wanted: Option<RunState> = query
        .state
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(ApiError::bad_request)?;
    let after = time_param("started_after", query.started_after.as_deref())?;
    let before = time_param("started_before", query.started_before.as_deref())?;
    let limit = query.limit.unwrap_or(50).clamp(1, 1000);
    let cursor: Option<RunId> = query
        .cursor
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(|e: String| ApiError::bad_request(format!("cursor: {e}")))?;
    // `started_by=me` is Keyfactor's "My" list.
    let started_by = query
        .started_by
        .as_deref()
        .map(|who| if who == "me" { caller.0.name.as_str() } else { who });
    let mut inputs = Vec::new();
    for (key, value) in &query.filters {
        match key.strip_prefix("input.") {
            Some(name) if !name.is_empty() => inputs.push((name.to_owned(), value.clone())),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter {}: filter by state, workflow, started_after, \
                     started_before, started_by or input.NAME",
                    crate::limits::clip(key)
                )))
            }
        }
    }
    if inputs.len() > MAX_INPUT_FILTERS {
        return Err(ApiError::bad_request(format!(
            "at most {MAX_INPUT_FILTERS} input.NAME filters at once"
        )));
    }
    let keep = |run: &RunRecord| {
        caller.0.may_read_run(run)
            && started_by.is_none_or(|who| run.started_by == who)
            && wanted.is_none_or(|s| run.state == s)
            && query.workflow.as_ref().is_none_or(|w| run.workflow.id == *w)
            && after.is_none_or(|t| run.created_at > t)
            && before.is_none_or(|t| run.created_at < t)
    };
    // One more than asked tells whether there is a next page.
    let query = RunQuery {
        state: wanted,
        before: cursor,
        limit: limit + 1,
        inputs,
    };
    let mut runs = state.engine.runs(query, keep).await?;
    let next_cursor = if runs.len() > limit {
        runs.truncate(limit);
        runs.last().map(|r| r.id.to_string())
    } else {
        None
    };
    let items = runs.iter().map(RunRecord::summary).collect();
    Ok(Json(RunPage { items, next_cursor }))
}

fn time_param(name: &str, value: Option<&str>) -> Result<Option<OffsetDateTime>, ApiError> {
    value
        .map(|v| {
            OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339).map_err(|_| {
                ApiError::bad_request(format!(
                    "{name}: expected an RFC 3339 time such as 2026-11-22T10:00:00Z"
                ))
            })
        })
        .transpose()
}

/// The run `eid` of workflow `id` for a caller whose role allows `action`. 404 when either
/// is unknown, they do not belong together, or the caller may not see the run: an approver
/// sees only runs assigned to them, and gets 404 for any other, whatever the method or body.
/// 403 when the caller sees the run but the role may not do `action`.
pub async fn find(
    state: &AppState,
    caller: &Caller,
    action: Action,
    workflow_id: &str,
    eid: &str,
) -> Result<RunRecord, ApiError> {
    let run = match eid.parse::<RunId>() {
        Ok(id) => state.engine.run(id).await?,
        Err(_) => None,
    };
    let run = run
        .filter(|run| run.workflow.id == workflow_id)
        .ok_or_else(|| no_such_run(workflow_id, eid))?;
    visible(caller, action, run).map_err(|unseen| unseen.unwrap_or_else(|| no_such_run(workflow_id, eid)))
}

/// `run` if `caller` may see it and do `action` to it: `Err(None)` when the run is not
/// visible (the caller's 404), `Err(Some(403))` when the role may not do `action`.
pub fn visible(caller: &Caller, action: Action, run: RunRecord) -> Result<RunRecord, Option<ApiError>> {
    if caller.0.reads_assigned_only() && !caller.0.may_read_run(&run) {
        return Err(None);
    }
    caller.require(action).map_err(Some)?;
    if caller.0.allows(Action::ReadRuns) && !caller.0.may_read_run(&run) {
        return Err(None);
    }
    Ok(run)
}

fn no_such_run(workflow_id: &str, eid: &str) -> ApiError {
    ApiError::not_found(format!("workflow {workflow_id} has no execution {eid}"))
}

/// One run: inputs (secure ones masked), outputs, steps with the ones waiting now, error,
/// times and who started it.
#[utoipa::path(get, path = "/v1/workflows/{id}/executions/{eid}", tag = "executions",
    operation_id = "Executions.Get", extensions(("x-weft-actions" = json!(true))),
    params(("id" = String, Path, description = "Workflow id"), ("eid" = String, Path, description = "Execution id")),
    responses((status = 200, description = "The run", body = views::Execution),
        (status = 404, description = "No such run", body = super::error::ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    PathParams((wf, eid)): PathParams<(String, String)>,
    caller: Caller,
) -> Result<Json<views::Execution>, ApiError> {
    let run = find(&state, &caller, Action::ReadRuns, &wf, &eid).await?;
    Ok(Json(views::execution(
        &run,
        state.engine.workflow_of(&run).await.ok().as_deref(),
    )))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WaitQuery {
    /// Answer only once the run has finished or waits for a person.
    #[serde(default)]
    wait: bool,
}

/// One run by id alone, whatever its workflow.
#[utoipa::path(get, path = "/v1/executions/{eid}", tag = "executions", operation_id = "Executions.GetById",
    extensions(("x-weft-actions" = json!(true))),
    params(("eid" = String, Path, description = "Execution id"), WaitQuery),
    responses((status = 200, description = "The run", body = views::Execution),
        (status = 404, description = "No such run", body = super::error::ErrorBody)))]
pub async fn get_by_id(
    State(state): State<AppState>,
    PathParams(eid): PathParams<String>,
    QueryParams(query): QueryParams<WaitQuery>,
    caller: Caller,
) -> Result<Json<views::Execution>, ApiError> {
    caller.require(Action::ReadRuns)?;
    let id: RunId = eid.parse().map_err(ApiError::not_found)?;
    let run = state
        .engine
        .run(id)
        .await?
        .filter(|run| caller.0.may_read_run(run))
        .ok_or_else(|| ApiError::not_found(format!("no execution {eid}")))?;
    let run = if query.wait {
        state.engine.settled(id).await?
    } else {
        run
    };
    Ok(Json(views::execution(
        &run,
        state.engine.workflow_of(&run).await.ok().as_deref(),
    )))
}

/// The run's state.
#[utoipa::path(get, path = "/v1/workflows/{id}/executions/{eid}/state", tag = "executions",
    operation_id = "Executions.GetState", extensions(("x-weft-actions" = json!(true))),
    params(("id" = String, Path, description = "Workflow id"), ("eid" = String, Path, description = "Execution id")),
    responses((status = 200, description = "State", body = views::ExecutionState),
        (status = 404, description = "No such run", body = super::error::ErrorBody)))]
pub async fn get_state(
    State(state): State<AppState>,
    PathParams((wf, eid)): PathParams<(String, String)>,
    caller: Caller,
) -> Result<Json<views::ExecutionState>, ApiError> {
    Ok(Json(views::state(
        &find(&state, &caller, Action::ReadRuns, &wf, &eid).await?,
    )))
}

/// Cancels the run.
#[utoipa::path(delete, path = "/v1/workflows/{id}/executions/{eid}/state", tag = "executions",
    operation_id = "Executions.Cancel", extensions(("x-weft-actions" = json!(true))),
    params(("id" = String, Path, description = "Workflow id"), ("eid" = String, Path, description = "Execution id")),
    responses((status = 204, description = "Canceled"),
        (status = 404, description = "No such run", body = super::error::ErrorBody),
        (status = 409, description = "Already finished", body = super::error::ErrorBody)))]
pub async fn cancel(
    State(state): State<AppState>,
    PathParams((wf, eid)): PathParams<(String, String)>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    let run = find(&state, &caller, Action::ManageRuns, &wf, &eid).await?;
    state.engine.cancel(run.id, &caller.0.name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes a finished run.
#[utoipa::path(delete, path = "/v1/workflows/{id}/executions/{eid}", tag = "executions",
    operation_id = "Executions.Delete", extensions(("x-weft-actions" = json!(true))),
    params(("id" = String, Path, description = "Workflow id"), ("eid" = String, Path, description = "Execution id")),
    responses((status = 204, description = "Deleted"),
        (status = 404, description = "No such run", body = super::error::ErrorBody),
        (status = 409, description = "Not finished", body = super::error::ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    PathParams((wf, eid)): PathParams<(String, String)>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    let run = find(&state, &caller, Action::ManageRuns, &wf, &eid).await?;
    state.engine.delete(run.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// Lines after this sequence number.
    after: Option<u64>,
    /// At most this many lines (default 100, at most 10000).
    limit: Option<usize>,
}

/// A page of a run's log.
#[derive(Serialize, utoipa::ToSchema)]
pub struct LogPage {
    items: Vec<LogLine>,
    /// Pass as `after` for the next page; null when the page is empty.
    next_after: Option<u64>,
}

/// The run's log: plugin `log` calls and engine events.
#[utoipa::path(get, path = "/v1/workflows/{id}/executions/{eid}/logs", tag = "executions",
    operation_id = "Executions.ListLogs", extensions(("x-weft-actions" = json!(true))),
    params(("id" = String, Path, description = "Workflow id"), ("eid" = String, Path, description = "Execution id"), LogQuery),
    responses((status = 200, description = "Log lines", body = LogPage),
        (status = 400, description = "A bad query", body = super::error::ErrorBody),
        (status = 404, description = "No such run", body = super::error::ErrorBody)))]
pub async fn logs(
    State(state): State<AppState>,
    PathParams((wf, eid)): PathParams<(String, String)>,
    QueryParams(query): QueryParams<LogQuery>,
    caller: Caller,
) -> Result<Json<LogPage>, ApiError> {
    let run = find(&state, &caller, Action::ReadRuns, &wf, &eid).await?;
    let limit = query.limit.unwrap_or(100).clamp(1, 10_000);
    let lines = state.engine.logs(run.id, query.after, limit).await?;
    let next_after = lines.last().map(|l| l.seq);
    Ok(Json(LogPage {
        items: lines,
        next_after,
    }))
}

/// The whole log as a text file.
#[utoipa::path(get, path = "/v1/workflows/{id}/executions/{eid}/logs/export", tag = "executions",
    operation_id = "Executions.ExportLogs", extensions(("x-weft-actions" = json!(true))),
    params(("id" = String, Path, description = "Workflow id"), ("eid" = String, Path, description = "Execution id")),
    responses((status = 200, description = "The log", body = String, content_type = "text/plain"),
        (status = 404, description = "No such run", body = super::error::ErrorBody)))]
pub async fn export_logs(
    State(state): State<AppState>,
    PathParams((wf, eid)): PathParams<(String, String)>,
    caller: Caller,
) -> Result<Response, ApiError> {
    let run = find(&state, &caller, Action::ReadRuns, &wf, &eid).await?;
    let text = state.engine.log_text(run.id).await?;
    let disposition = format!("attachment; filename=\"{}-{}.log\"", run.workflow.id, run.id);
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        text,
    )
        .into_response())
}

/// Per-step durations, attempts and time spent waiting.
#[utoipa::path(get, path = "/v1/workflows/{id}/executions/{eid}/statistics", tag = "executions",
    operation_id = "Executions.GetStatistics", extensions(("x-weft-actions" = json!(true))),
    params(("id" = String, Path, description = "Workflow id"), ("eid" = String, Path, description = "Execution id")),
    responses((status = 200, description = "Statistics", body = views::Statistics),
        (status = 404, description = "No such run", body = super::error::ErrorBody)))]
pub async fn statistics(
    State(state): State<AppState>,
    PathParams((wf, eid)): PathParams<(String, String)>,
    caller: Caller,
) -> Result<Json<views::Statistics>, ApiError> {
    Ok(Json(views::statistics(
        &find(&state, &caller, Action::ReadRuns, &wf, &eid).await?,
    )))
}

/// The body of a restart; `{}` or none restarts on the run's own version.
#[derive(Deserialize, Default, utoipa::ToSchema)]
pub struct RestartBody {
    /// Start the new run on this version of the workflow.
    version: Option<u64>,
}

/// Starts a new run with the same inputs (optionally on another version); only failed,
/// rejected or canceled runs.
#[utoipa::path(post, path = "/v1/workflows/{id}/executions/{eid}/restart", tag = "executions",
    operation_id = "Executions.Restart", extensions(("x-weft-actions" = json!(true))),
    params(("id" = String, Path, description = "Workflow id"), ("eid" = String, Path, description = "Execution id")),
    request_body(content = Option<RestartBody>, content_type = "application/json"),
    responses((status = 202, description = "The new run", body = Started,
            headers(("Location" = String, description = "The new run"))),
        (status = 400, description = "A bad body", body = super::error::ErrorBody),
        (status = 404, description = "No such run or version", body = super::error::ErrorBody),
        (status = 409, description = "The run cannot be restarted", body = super::error::ErrorBody)))]
pub async fn restart(
    State(state): State<AppState>,
    PathParams((wf, eid)): PathParams<(String, String)>,
    caller: Caller,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let run = find(&state, &caller, Action::ManageRuns, &wf, &eid).await?;
    let body: RestartBody = serde_json::from_value(json_or_empty(&body)?)
        .map_err(|e| ApiError::bad_request(format!("invalid restart body: {e}")))?;
    let id = state.engine.restart(run.id, body.version, &caller.0.name).await?;
    started(&state, &wf, id, false).await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryBody {
    /// Move the run to this version of its workflow; completed steps of the same name stay.
    version: Option<u64>,
    /// The failed step whose `input` is corrected.
    step: Option<String>,
    /// A corrected input for `step` (a map), used instead of its rendered input.
    #[schema(value_type = Object)]
    input: Option<Value>,
}

/// Continues a failed (or canceled) run from its failed step: completed steps and their
/// answers stay; the failed steps and what depends on them run again, optionally on another
/// version or with a corrected input for one step. Who retried is recorded in the run.
#[utoipa::path(post, path = "/v1/workflows/{id}/executions/{eid}/retry", tag = "executions",
    operation_id = "Executions.Retry",
    params(("id" = String, Path, description = "Workflow id"), ("eid" = String, Path, description = "Execution id")),
    request_body(content = Option<RetryBody>, content_type = "application/json"),
    responses((status = 200, description = "The run, going again", body = views::Execution),
        (status = 400, description = "A bad corrected input", body = super::error::ErrorBody),
        (status = 404, description = "No such run or version", body = super::error::ErrorBody),
        (status = 409, description = "The run has not failed", body = super::error::ErrorBody)))]
pub async fn retry(
    State(state): State<AppState>,
    PathParams((wf, eid)): PathParams<(String, String)>,
    caller: Caller,
    RawBody(body): RawBody,
) -> Result<Json<views::Execution>, ApiError> {
    let run = find(&state, &caller, Action::ManageRuns, &wf, &eid).await?;
    let body: RetryBody = serde_json::from_value(json_or_empty(&body)?)
        .map_err(|e| ApiError::bad_request(format!("invalid retry body: {e}")))?;
    let step_input = match (body.step, body.input) {
        (Some(step), Some(input)) => Some((step, input)),
        (None, None) => None,
        _ => {
            return Err(ApiError::bad_request(
                "give `step` and `input` together: the step whose input is corrected, and the input",
            ))
        }
    };
    let options = crate::engine::RetryOptions {
        version: body.version,
        step_input,
    };
    let run = state.engine.retry(run.id, &caller.0.name, options).await?;
    Ok(Json(views::execution(
        &run,
        state.engine.workflow_of(&run).await.ok().as_deref(),
    )))
}

/// Takes over, now, the runs no live runner owns and fires the timers that fell due (`weft
/// resume --server`); a runner also does both by itself, on a timer.
#[utoipa::path(post, path = "/v1/executions/resume", tag = "executions", operation_id = "Executions.Resume",
    responses((status = 200, description = "What was taken over and fired", body = Resumed),
        (status = 403, description = "May not manage runs", body = super::error::ErrorBody)))]
pub async fn resume(State(state): State<AppState>, caller: Caller) -> Result<Json<Resumed>, ApiError> {
    caller.require(Action::ManageRuns)?;
    let resumed = state.engine.recover().await?;
    let fired = state.engine.fire_due_timers().await?;
    Ok(Json(Resumed { resumed, fired }))
}

/// What `POST /v1/executions/resume` did.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Resumed {
    /// Runs taken over from runners that are gone.
    resumed: usize,
    /// Timers that fell due and were fired.
    fired: usize,
}

/// Which finished runs `POST /v1/executions/purge` deletes.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PurgeBody {
    /// Runs that ended longer ago than this (`7d`).
    #[serde(with = "humantime_serde")]
    #[schema(value_type = String)]
    older_than: std::time::Duration,
    /// Only runs of this workflow.
    #[serde(default)]
    workflow: Option<String>,
}

/// Deletes finished runs that ended longer ago than `older_than`, with their logs. Runs are
/// also deleted by themselves when their retention ends.
#[utoipa::path(post, path = "/v1/executions/purge", tag = "executions", operation_id = "Executions.Purge",
    extensions(("x-weft-actions" = json!(true))),
    request_body(content = PurgeBody, content_type = "application/json"),
    responses((status = 200, description = "How many runs were deleted", body = Purged),
        (status = 400, description = "A bad body", body = super::error::ErrorBody),
        (status = 403, description = "May not delete runs", body = super::error::ErrorBody),
        (status = 415, description = "Not JSON", body = super::error::ErrorBody)))]
pub async fn purge(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<PurgeBody>,
) -> Result<Json<Purged>, ApiError> {
    caller.require(Action::ManageRuns)?;
    let purged = state
        .engine
        .purge_runs(body.older_than, body.workflow.as_deref())
        .await?;
    Ok(Json(Purged { purged }))
}

/// What a purge did.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Purged {
    /// How many runs were deleted.
    purged: usize,
}
