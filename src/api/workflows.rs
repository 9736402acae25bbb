//! `/v1/workflows`: create versions, read and delete definitions.

use super::auth::Caller;
use super::error::ApiError;
use super::extract::{PathParams, RawBody};
use super::AppState;
use crate::auth::Action;
use crate::workflow::{self, Definition};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};

/// Creates a workflow version from YAML or JSON (by `Content-Type`). Without `version` in the
/// body, the next version is assigned; the same content under an existing version is
/// accepted again; other content under an existing version is a conflict.
#[utoipa::path(post, path = "/v1/workflows", tag = "workflows",
    request_body(content = String, content_type = "application/yaml", description = "The definition, YAML or JSON"),
    responses(
        (status = 201, description = "Created", body = serde_json::Value),
        (status = 200, description = "That version already exists with this content", body = serde_json::Value),
        (status = 400, description = "Invalid definition, with every problem and its path", body = super::error::ErrorBody),
        (status = 409, description = "The version exists with other content", body = super::error::ErrorBody),
        (status = 415, description = "Not YAML or JSON", body = super::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    caller: Caller,
    RawBody(body): RawBody,
) -> Result<impl IntoResponse, ApiError> {
    caller.require(Action::WriteWorkflows)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let accepted = [
        "application/json",
        "application/yaml",
        "application/x-yaml",
        "text/yaml",
        "text/x-yaml",
    ];
    if !accepted.contains(&content_type.as_str()) {
        return Err(ApiError::unsupported_media(format!(
            "send the definition as application/json or application/yaml (got {:?})",
            content_type
        )));
    }
    let text =
        std::str::from_utf8(&body).map_err(|_| ApiError::bad_request("the definition is not UTF-8 text"))?;
    let mut document: Value = serde_norway::from_str(text)
        .map_err(|e| ApiError::bad_request(format!("the definition is not valid YAML or JSON: {e}")))?;
    // One version decision at a time: two posts must not both take the next number.
    let _writing = state.workflow_writes.lock().await;
    let id = document.get("id").and_then(Value::as_str).map(str::to_owned);
    if let (Some(object), Some(id)) = (document.as_object_mut(), &id) {
        if !object.contains_key("version") {
            let latest = state
                .engine
                .store()
                .workflow_version(id, None)?
                .map_or(0, |(v, _)| v);
            object.insert("version".into(), json!(latest + 1));
        }
    }
    let definition: Definition =
        workflow::from_value(document).map_err(|p| ApiError::invalid("invalid_definition", p))?;
    let (id, version) = (definition.id.clone(), definition.version);
    if let Some((_, existing)) = state.engine.store().workflow_version(&id, Some(version))? {
        let plugins = state.engine.plugins();
        let candidate = workflow::Workflow::validate(definition, &|r| plugins.resolve(r).map(drop))
            .map_err(|p| ApiError::invalid("invalid_definition", p))?;
        return if candidate.digest == existing {
            Ok((StatusCode::OK, Json(created(&id, version, &existing))))
        } else {
            Err(ApiError::conflict(format!(
                "workflow {id} already has a version {version} with other content; post it without `version` (or with version {}) to create a new one",
                version + 1
            )))
        };
    }
    let workflow = state.engine.register(definition).await.map_err(|e| match e {
        crate::engine::StartError::Invalid(p) => ApiError::invalid("invalid_definition", p),
        crate::engine::StartError::Internal(e) => ApiError::internal(e),
    })?;
    Ok((StatusCode::CREATED, Json(created(&id, version, &workflow.digest))))
}

fn created(id: &str, version: u64, digest: &crate::names::Digest) -> Value {
    json!({"id": id, "version": version, "digest": digest})
}

/// Every workflow with its latest version.
#[utoipa::path(get, path = "/v1/workflows", tag = "workflows",
    responses((status = 200, description = "Workflows", body = serde_json::Value)))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require(Action::ReadWorkflows)?;
    let mut items = Vec::new();
    for (id, version, digest) in state.engine.store().workflows()? {
        let description = state
            .engine
            .workflow(&id, Some(version))?
            .map(|w| w.definition.description.clone())
            .unwrap_or_default();
        items
            .push(json!({"id": id, "latest_version": version, "digest": digest, "description": description}));
    }
    Ok(Json(json!({ "items": items })))
}

/// The latest version's definition.
#[utoipa::path(get, path = "/v1/workflows/{id}", tag = "workflows",
    params(("id" = String, Path, description = "Workflow id")),
    responses((status = 200, description = "Definition", body = serde_json::Value),
        (status = 404, description = "No such workflow", body = super::error::ErrorBody)))]
pub async fn get_latest(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require(Action::ReadWorkflows)?;
    definition(&state, &id, None)
}

/// One version's definition.
#[utoipa::path(get, path = "/v1/workflows/{id}/versions/{version}", tag = "workflows",
    params(("id" = String, Path, description = "Workflow id"), ("version" = u64, Path, description = "Version")),
    responses((status = 200, description = "Definition", body = serde_json::Value),
        (status = 404, description = "No such version", body = super::error::ErrorBody)))]
pub async fn get_version(
    State(state): State<AppState>,
    PathParams((id, version)): PathParams<(String, u64)>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require(Action::ReadWorkflows)?;
    definition(&state, &id, Some(version))
}

fn definition(state: &AppState, id: &str, version: Option<u64>) -> Result<Json<Value>, ApiError> {
    let workflow = state.engine.workflow(id, version)?.ok_or_else(|| match version {
        Some(v) => ApiError::not_found(format!("workflow {id} has no version {v}")),
        None => ApiError::not_found(format!("no workflow {id}")),
    })?;
    Ok(Json(json!({
        "id": workflow.definition.id,
        "version": workflow.definition.version,
        "digest": workflow.digest,
        "definition": workflow.definition,
    })))
}

/// Every version of a workflow.
#[utoipa::path(get, path = "/v1/workflows/{id}/versions", tag = "workflows",
    params(("id" = String, Path, description = "Workflow id")),
    responses((status = 200, description = "Versions", body = serde_json::Value),
        (status = 404, description = "No such workflow", body = super::error::ErrorBody)))]
pub async fn versions(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require(Action::ReadWorkflows)?;
    let versions = state.engine.store().workflow_versions(&id)?;
    if versions.is_empty() {
        return Err(ApiError::not_found(format!("no workflow {id}")));
    }
    let items: Vec<Value> = versions
        .into_iter()
        .map(|(version, digest)| json!({"version": version, "digest": digest}))
        .collect();
    Ok(Json(json!({"id": id, "items": items})))
}

/// Deletes every version. Runs keep the definitions they started with.
#[utoipa::path(delete, path = "/v1/workflows/{id}", tag = "workflows",
    params(("id" = String, Path, description = "Workflow id")),
    responses((status = 204, description = "Deleted"),
        (status = 404, description = "No such workflow", body = super::error::ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    caller.require(Action::WriteWorkflows)?;
    if state.engine.store().workflow_versions(&id)?.is_empty() {
        return Err(ApiError::not_found(format!("no workflow {id}")));
    }
    state
        .engine
        .store()
        .commit(vec![crate::store::Write::DeleteWorkflow(id)])
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
