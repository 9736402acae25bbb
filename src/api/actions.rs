//! `/v1/actions`: targets, execution rules (ZITADEL's SetExecution and ListExecutions), the
//! names conditions may use, the actions log and the outbox. Admin only.
//!
//! Handlers parse and check bodies (naming the offending field) and hand them to
//! [`crate::actions::Actions`]; request and response conditions are checked against the
//! operation table of [`super::hooks`]. Nothing here calls a target.

use super::auth::Caller;
use super::error::ApiError;
use super::extract::{PathParams, QueryParams, RawBody};
use super::{hooks, json_or_empty, AppState};
use crate::actions::{
    events, ActionError, ConditionKind, Entry, Execution, ExecutionSpec, LogEntry, TargetSpec, TargetType,
    FUNCTIONS,
};
use crate::auth::Action;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

/// Most actions log entries one page returns.
const MAX_LOG_PAGE: usize = 1000;

impl From<ActionError> for ApiError {
    fn from(error: ActionError) -> Self {
        let message = error.to_string();
        match error {
            ActionError::Invalid(_) => ApiError::bad_request(message),
            ActionError::NotFound(_) => ApiError::not_found(message),
            ActionError::Conflict(_) => ApiError::conflict(message),
            ActionError::Internal(e) => ApiError::internal(e),
        }
    }
}

/// Parses a JSON body into `T`, naming the offending field on failure.
fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(json_or_empty(body)?).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        ApiError::bad_request(if path == "." {
            format!("invalid body: {inner}")
        } else {
            format!("{path}: {inner}")
        })
    })
}

/// Creates a target: `{name, plugin, type, timeout, interrupt_on_error, config}`.
#[utoipa::path(post, path = "/v1/actions/targets", tag = "actions",
    request_body(content = serde_json::Value, content_type = "application/json"),
    responses((status = 201, description = "Created", body = serde_json::Value),
        (status = 400, description = "Invalid field, unknown or step plugin", body = super::error::ErrorBody),
        (status = 403, description = "Not an admin", body = super::error::ErrorBody),
        (status = 409, description = "The name is taken", body = super::error::ErrorBody)))]
pub async fn create_target(
    State(state): State<AppState>,
    caller: Caller,
    RawBody(body): RawBody,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(Action::ManageActions)?;
    let spec: TargetSpec = parse(&body)?;
    let target = state.engine.actions().create_target(spec).await?;
    Ok((StatusCode::CREATED, Json(json!(target))))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct TargetQuery {
    /// Only targets whose name contains this.
    name: Option<String>,
    /// Only targets of this type: call, webhook or async.
    #[serde(rename = "type")]
    #[param(value_type = Option<String>)]
    kind: Option<TargetType>,
    /// Only targets whose plugin reference or digest contains this.
    plugin: Option<String>,
}

/// Every target, filtered.
#[utoipa::path(get, path = "/v1/actions/targets", tag = "actions", params(TargetQuery),
    responses((status = 200, description = "Targets", body = serde_json::Value),
        (status = 403, description = "Not an admin", body = super::error::ErrorBody)))]
pub async fn list_targets(
    State(state): State<AppState>,
    QueryParams(query): QueryParams<TargetQuery>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require(Action::ManageActions)?;
    let items: Vec<Value> = state
        .engine
        .actions()
        .targets()
        .await?
        .into_iter()
        .filter(|t| query.name.as_ref().is_none_or(|n| t.name.contains(n.as_str())))
        .filter(|t| query.kind.is_none_or(|k| t.kind == k))
        .filter(|t| {
            query.plugin.as_ref().is_none_or(|p| {
                t.plugin.to_string().contains(p.as_str()) || t.digest.as_str().contains(p.as_str())
            })
        })
        .map(|t| json!(*t))
        .collect();
    Ok(Json(json!({ "items": items })))
}

/// One target.
#[utoipa::path(get, path = "/v1/actions/targets/{id}", tag = "actions",
    params(("id" = String, Path, description = "Target id")),
    responses((status = 200, description = "The target", body = serde_json::Value),
        (status = 404, description = "No such target", body = super::error::ErrorBody)))]
pub async fn get_target(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require(Action::ManageActions)?;
    Ok(Json(json!(*state.engine.actions().target(&id).await?)))
}

/// Changes a target: the fields given replace the stored ones, the others stay.
#[utoipa::path(put, path = "/v1/actions/targets/{id}", tag = "actions",
    params(("id" = String, Path, description = "Target id")),
    request_body(content = serde_json::Value, content_type = "application/json"),
    responses((status = 200, description = "Changed", body = serde_json::Value),
        (status = 400, description = "Invalid field", body = super::error::ErrorBody),
        (status = 404, description = "No such target", body = super::error::ErrorBody),
        (status = 409, description = "The name is taken", body = super::error::ErrorBody)))]
pub async fn update_target(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    caller: Caller,
    RawBody(body): RawBody,
) -> Result<Json<Value>, ApiError> {
    caller.require(Action::ManageActions)?;
    let spec: TargetSpec = parse(&body)?;
    let target = state.engine.actions().update_target(&id, spec).await?;
    Ok(Json(json!(target)))
}

/// Deletes a target and removes it from every execution rule.
#[utoipa::path(delete, path = "/v1/actions/targets/{id}", tag = "actions",
    params(("id" = String, Path, description = "Target id")),
    responses((status = 204, description = "Deleted"),
        (status = 404, description = "No such target", body = super::error::ErrorBody)))]
pub async fn delete_target(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    caller.require(Action::ManageActions)?;
    state.engine.actions().delete_target(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn execution_view(execution: &Execution) -> Value {
    let mut view = json!(execution);
    view["details"] = json!({ "changeDate": crate::run::rfc3339(execution.changed_at) });
    view
}

/// Sets the targets called when a condition holds (ZITADEL's SetExecution body). An empty
/// `targets` list removes the rule.
#[utoipa::path(put, path = "/v1/actions/executions", tag = "actions",
    request_body(content = serde_json::Value, content_type = "application/json"),
    responses((status = 200, description = "Set (or removed, with an empty list)", body = serde_json::Value),
        (status = 400, description = "Invalid condition, unknown target or include, include cycle", body = super::error::ErrorBody),
        (status = 403, description = "Not an admin", body = super::error::ErrorBody)))]
pub async fn set_execution(
    State(state): State<AppState>,
    caller: Caller,
    RawBody(body): RawBody,
) -> Result<Json<Value>, ApiError> {
    caller.require(Action::ManageActions)?;
    let spec: ExecutionSpec = parse(&body)?;
    hooks::check_condition(&spec.condition).map_err(ApiError::bad_request)?;
    let condition = spec.condition.clone();
    let view = match state.engine.actions().set_execution(spec).await? {
        Some(execution) => execution_view(&execution),
        None => json!({
            "condition": condition,
            "targets": [],
            "details": { "changeDate": crate::run::rfc3339(crate::run::now()) },
        }),
    };
    Ok(Json(view))
}

/// Filters for searching execution rules; all optional.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExecutionSearch {
    /// Only rules of this kind: request, response, event or function.
    #[serde(rename = "type")]
    kind: Option<ConditionKind>,
    /// Only rules that call this target directly.
    target: Option<String>,
    /// Only rules that include the rule with this condition.
    include: Option<crate::actions::Condition>,
}

/// Lists execution rules: `{"type", "target", "include"}` filters, all optional.
#[utoipa::path(post, path = "/v1/actions/executions/search", tag = "actions",
    request_body(content = serde_json::Value, content_type = "application/json"),
    responses((status = 200, description = "`result` and `details.totalResult`", body = serde_json::Value),
        (status = 400, description = "Invalid filter", body = super::error::ErrorBody)))]
pub async fn search_executions(
    State(state): State<AppState>,
    caller: Caller,
    RawBody(body): RawBody,
) -> Result<Json<Value>, ApiError> {
    caller.require(Action::ManageActions)?;
    let search: ExecutionSearch = parse(&body)?;
    let result: Vec<Value> = state
        .engine
        .actions()
        .executions()
        .await?
        .iter()
        .filter(|e| search.kind.is_none_or(|k| e.condition.kind() == k))
        .filter(|e| {
            search
                .target
                .as_ref()
                .is_none_or(|id| e.targets.contains(&Entry::Target(id.clone())))
        })
        .filter(|e| {
            search
                .include
                .as_ref()
                .is_none_or(|c| e.targets.contains(&Entry::Include(c.clone())))
        })
        .map(execution_view)
        .collect();
    Ok(Json(json!({
        "details": { "totalResult": result.len() },
        "result": result,
    })))
}

/// What conditions may name: API operations and services, events and groups, functions.
#[utoipa::path(get, path = "/v1/actions/conditions", tag = "actions",
    responses((status = 200, description = "Operations, services, events and functions", body = serde_json::Value)))]
pub async fn conditions(caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require(Action::ManageActions)?;
    let mut services: Vec<&str> = hooks::OPERATIONS
        .iter()
        .map(|(_, _, op)| hooks::service_of(op))
        .collect();
    services.dedup();
    let mut groups: Vec<&str> = events::EVENTS.iter().map(|(e, _)| events::group(e)).collect();
    groups.dedup();
    Ok(Json(json!({
        "operations": hooks::OPERATIONS
            .iter()
            .map(|(method, route, op)| json!({"method": op, "http": format!("{method} {route}")}))
            .collect::<Vec<_>>(),
        "services": services,
        "events": events::EVENTS
            .iter()
            .map(|(name, means)| json!({"event": name, "group": events::group(name), "description": means}))
            .collect::<Vec<_>>(),
        "groups": groups,
        "functions": FUNCTIONS
            .iter()
            .map(|(name, means)| json!({"name": name, "description": means}))
            .collect::<Vec<_>>(),
    })))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct LogQuery {
    /// Only calls of this target (id).
    target: Option<String>,
    /// Only calls triggered by this event, operation or function.
    trigger: Option<String>,
    /// Only calls delivering this event (id).
    event: Option<String>,
    /// Only entries after this sequence number (`next_after` of the previous page).
    after: Option<u64>,
    /// At most this many (default 100, at most 1000).
    limit: Option<usize>,
}

/// The newest target calls, oldest first: outcome, error, time, and what the plugin logged.
#[utoipa::path(get, path = "/v1/actions/log", tag = "actions", params(LogQuery),
    responses((status = 200, description = "Log entries", body = serde_json::Value)))]
pub async fn log(
    State(state): State<AppState>,
    QueryParams(query): QueryParams<LogQuery>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require(Action::ManageActions)?;
    let limit = query.limit.unwrap_or(100).clamp(1, MAX_LOG_PAGE);
    let keep = |entry: &LogEntry| {
        query.target.as_ref().is_none_or(|t| entry.target == *t)
            && query.trigger.as_ref().is_none_or(|t| entry.trigger == *t)
            && query
                .event
                .as_ref()
                .is_none_or(|e| entry.delivery.as_ref().is_some_and(|d| d.event == *e))
    };
    let entries = state.engine.actions().log(query.after, limit, keep).await?;
    let next_after = entries.last().map(|(seq, _)| *seq).or(query.after);
    let items: Vec<Value> = entries
        .into_iter()
        .map(|(seq, entry)| {
            let mut item = json!(entry);
            item["seq"] = json!(seq);
            item
        })
        .collect();
    Ok(Json(json!({ "items": items, "next_after": next_after })))
}

/// Events committed but not delivered yet, oldest first, with their delivery attempts.
#[utoipa::path(get, path = "/v1/actions/outbox", tag = "actions",
    responses((status = 200, description = "Pending events", body = serde_json::Value)))]
pub async fn outbox(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require(Action::ManageActions)?;
    let items = state.engine.actions().outbox(MAX_LOG_PAGE).await?;
    Ok(Json(json!({ "items": items })))
}
