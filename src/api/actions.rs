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
    events, ActionError, Condition, ConditionKind, Entry, Execution, ExecutionSpec, LogEntry, Pending,
    Target, TargetSpec, TargetType, FUNCTIONS,
};
use crate::auth::Action;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

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
#[utoipa::path(post, path = "/v1/actions/targets", tag = "actions", operation_id = "Actions.CreateTarget",
    request_body(content = TargetSpec, content_type = "application/json"),
    responses((status = 201, description = "Created", body = Target),
        (status = 400, description = "Invalid field, unknown or step plugin", body = super::error::ErrorBody),
        (status = 403, description = "Not an admin", body = super::error::ErrorBody),
        (status = 409, description = "The name is taken", body = super::error::ErrorBody)))]
pub async fn create_target(
    State(state): State<AppState>,
    caller: Caller,
    RawBody(body): RawBody,
) -> Result<(StatusCode, Json<Target>), ApiError> {
    caller.require(Action::ManageActions)?;
    let spec: TargetSpec = parse(&body)?;
    let target = state.engine.actions().create_target(spec).await?;
    Ok((StatusCode::CREATED, Json(target)))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TargetQuery {
    /// Only targets whose name contains this.
    name: Option<String>,
    /// Only targets of this type: call, webhook or async.
    #[serde(rename = "type")]
    kind: Option<TargetType>,
    /// Only targets whose plugin reference or digest contains this.
    plugin: Option<String>,
}

/// Every target, filtered.
#[utoipa::path(get, path = "/v1/actions/targets", tag = "actions", operation_id = "Actions.ListTargets",
    params(TargetQuery),
    responses((status = 200, description = "Targets", body = TargetList),
        (status = 400, description = "A bad filter", body = super::error::ErrorBody),
        (status = 403, description = "Not an admin", body = super::error::ErrorBody)))]
pub async fn list_targets(
    State(state): State<AppState>,
    QueryParams(query): QueryParams<TargetQuery>,
    caller: Caller,
) -> Result<Json<TargetList>, ApiError> {
    caller.require(Action::ManageActions)?;
    let items = state
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
        .map(|t| (*t).clone())
        .collect();
    Ok(Json(TargetList { items }))
}

/// Every target (of the filter).
#[derive(Serialize, utoipa::ToSchema)]
pub struct TargetList {
    items: Vec<Target>,
}

/// One target.
#[utoipa::path(get, path = "/v1/actions/targets/{id}", tag = "actions", operation_id = "Actions.GetTarget",
    params(("id" = String, Path, description = "Target id")),
    responses((status = 200, description = "The target", body = Target),
        (status = 404, description = "No such target", body = super::error::ErrorBody)))]
pub async fn get_target(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    caller: Caller,
) -> Result<Json<Target>, ApiError> {
    caller.require(Action::ManageActions)?;
    Ok(Json((*state.engine.actions().target(&id).await?).clone()))
}

/// Changes a target: the fields given replace the stored ones, the others stay.
#[utoipa::path(put, path = "/v1/actions/targets/{id}", tag = "actions", operation_id = "Actions.UpdateTarget",
    params(("id" = String, Path, description = "Target id")),
    request_body(content = TargetSpec, content_type = "application/json"),
    responses((status = 200, description = "Changed", body = Target),
        (status = 400, description = "Invalid field", body = super::error::ErrorBody),
        (status = 404, description = "No such target", body = super::error::ErrorBody),
        (status = 409, description = "The name is taken", body = super::error::ErrorBody)))]
pub async fn update_target(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    caller: Caller,
    RawBody(body): RawBody,
) -> Result<Json<Target>, ApiError> {
    caller.require(Action::ManageActions)?;
    let spec: TargetSpec = parse(&body)?;
    let target = state.engine.actions().update_target(&id, spec).await?;
    Ok(Json(target))
}

/// Deletes a target and removes it from every execution rule.
#[utoipa::path(delete, path = "/v1/actions/targets/{id}", tag = "actions", operation_id = "Actions.DeleteTarget",
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

/// An execution rule as shown, ZITADEL-shaped: `details.changeDate` says when it changed.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ExecutionView {
    #[schema(value_type = Object)]
    condition: Condition,
    #[schema(value_type = Vec<Object>)]
    targets: Vec<Entry>,
    /// Left out for a rule just removed.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    changed_at: Option<String>,
    details: ChangeDetails,
}

/// When a rule changed.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ChangeDetails {
    #[serde(rename = "changeDate")]
    #[schema(format = DateTime)]
    change_date: String,
}

fn execution_view(execution: &Execution) -> ExecutionView {
    ExecutionView {
        condition: execution.condition.clone(),
        targets: execution.targets.clone(),
        changed_at: Some(crate::run::rfc3339(execution.changed_at)),
        details: ChangeDetails {
            change_date: crate::run::rfc3339(execution.changed_at),
        },
    }
}

/// Sets the targets called when a condition holds (ZITADEL's SetExecution body). An empty
/// `targets` list removes the rule.
#[utoipa::path(put, path = "/v1/actions/executions", tag = "actions", operation_id = "Actions.SetExecution",
    request_body(content = ExecutionSpec, content_type = "application/json"),
    responses((status = 200, description = "Set (or removed, with an empty list)", body = ExecutionView),
        (status = 400, description = "Invalid condition, unknown target or include, include cycle", body = super::error::ErrorBody),
        (status = 403, description = "Not an admin", body = super::error::ErrorBody)))]
pub async fn set_execution(
    State(state): State<AppState>,
    caller: Caller,
    RawBody(body): RawBody,
) -> Result<Json<ExecutionView>, ApiError> {
    caller.require(Action::ManageActions)?;
    let spec: ExecutionSpec = parse(&body)?;
    hooks::check_condition(&spec.condition).map_err(ApiError::bad_request)?;
    let condition = spec.condition.clone();
    let view = match state.engine.actions().set_execution(spec).await? {
        Some(execution) => execution_view(&execution),
        None => ExecutionView {
            condition,
            targets: Vec::new(),
            changed_at: None,
            details: ChangeDetails {
                change_date: crate::run::rfc3339(crate::run::now()),
            },
        },
    };
    Ok(Json(view))
}

/// Filters for searching execution rules; all optional.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecutionSearch {
    /// Only rules of this kind: request, response, event or function.
    #[serde(rename = "type")]
    kind: Option<ConditionKind>,
    /// Only rules that call this target directly.
    target: Option<String>,
    /// Only rules that include the rule with this condition.
    #[schema(value_type = Option<Object>)]
    include: Option<crate::actions::Condition>,
}

/// Lists execution rules: `{"type", "target", "include"}` filters, all optional.
#[utoipa::path(post, path = "/v1/actions/executions/search", tag = "actions",
    operation_id = "Actions.SearchExecutions",
    request_body(content = Option<ExecutionSearch>, content_type = "application/json"),
    responses((status = 200, description = "`result` and `details.totalResult`", body = ExecutionSearchResult),
        (status = 400, description = "Invalid filter", body = super::error::ErrorBody)))]
pub async fn search_executions(
    State(state): State<AppState>,
    caller: Caller,
    RawBody(body): RawBody,
) -> Result<Json<ExecutionSearchResult>, ApiError> {
    caller.require(Action::ManageActions)?;
    let search: ExecutionSearch = parse(&body)?;
    let result: Vec<ExecutionView> = state
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
    Ok(Json(ExecutionSearchResult {
        details: SearchDetails {
            total_result: result.len(),
        },
        result,
    }))
}

/// The rules found, ZITADEL-shaped.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ExecutionSearchResult {
    details: SearchDetails,
    result: Vec<ExecutionView>,
}

/// How many rules were found.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SearchDetails {
    #[serde(rename = "totalResult")]
    total_result: usize,
}

/// What conditions may name: API operations and services, events and groups, functions.
/// What conditions may name.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Conditions {
    operations: Vec<OperationName>,
    services: Vec<&'static str>,
    events: Vec<EventName>,
    groups: Vec<&'static str>,
    functions: Vec<FunctionName>,
}

/// An API operation a request or response condition may name.
#[derive(Serialize, utoipa::ToSchema)]
pub struct OperationName {
    /// Such as `/v1.Executions/Start`.
    method: &'static str,
    /// Such as `POST /v1/workflows/{id}/executions`.
    http: String,
}

/// An event an event condition may name.
#[derive(Serialize, utoipa::ToSchema)]
pub struct EventName {
    event: &'static str,
    group: &'static str,
    description: &'static str,
}

/// A hook point a function condition may name.
#[derive(Serialize, utoipa::ToSchema)]
pub struct FunctionName {
    name: &'static str,
    description: &'static str,
}

/// What conditions may name: API operations and services, events and groups, functions.
#[utoipa::path(get, path = "/v1/actions/conditions", tag = "actions", operation_id = "Actions.ListConditions",
    responses((status = 200, description = "Operations, services, events and functions", body = Conditions),
        (status = 403, description = "Not an admin", body = super::error::ErrorBody)))]
pub async fn conditions(caller: Caller) -> Result<Json<Conditions>, ApiError> {
    caller.require(Action::ManageActions)?;
    let mut groups: Vec<&str> = events::EVENTS.iter().map(|(e, _)| events::group(e)).collect();
    groups.dedup();
    Ok(Json(Conditions {
        operations: hooks::OPERATIONS
            .iter()
            .map(|op| OperationName {
                method: &op.name,
                http: format!("{} {}", op.method, op.route),
            })
            .collect(),
        services: hooks::services(),
        events: events::EVENTS
            .iter()
            .map(|(name, means)| EventName {
                event: name,
                group: events::group(name),
                description: means,
            })
            .collect(),
        groups,
        functions: FUNCTIONS
            .iter()
            .map(|(name, means)| FunctionName {
                name,
                description: means,
            })
            .collect(),
    }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
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
#[utoipa::path(get, path = "/v1/actions/log", tag = "actions", operation_id = "Actions.ListLog", params(LogQuery),
    responses((status = 200, description = "Log entries", body = ActionLogPage),
        (status = 400, description = "A bad query", body = super::error::ErrorBody),
        (status = 403, description = "Not an admin", body = super::error::ErrorBody)))]
pub async fn log(
    State(state): State<AppState>,
    QueryParams(query): QueryParams<LogQuery>,
    caller: Caller,
) -> Result<Json<ActionLogPage>, ApiError> {
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
    let items = entries
        .into_iter()
        .map(|(seq, entry)| ActionLogItem { entry, seq })
        .collect();
    Ok(Json(ActionLogPage { items, next_after }))
}

/// A page of the actions log.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ActionLogPage {
    items: Vec<ActionLogItem>,
    /// Pass as `after` for the next page.
    next_after: Option<u64>,
}

/// A target call and its place in the log.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ActionLogItem {
    #[serde(flatten)]
    entry: LogEntry,
    seq: u64,
}

/// Events committed but not delivered yet, oldest first, with their delivery attempts.
#[utoipa::path(get, path = "/v1/actions/outbox", tag = "actions", operation_id = "Actions.ListOutbox",
    responses((status = 200, description = "Pending events", body = Outbox),
        (status = 403, description = "Not an admin", body = super::error::ErrorBody)))]
pub async fn outbox(State(state): State<AppState>, caller: Caller) -> Result<Json<Outbox>, ApiError> {
    caller.require(Action::ManageActions)?;
    let items = state.engine.actions().outbox(MAX_LOG_PAGE).await?;
    Ok(Json(Outbox { items }))
}

/// Events not delivered yet.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Outbox {
    items: Vec<Pending>,
}
