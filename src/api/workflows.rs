//! `/v1/workflows`: create versions, read and delete definitions.

use super::auth::Caller;
use super::error::ApiError;
use super::extract::{PathParams, QueryParams, RawBody};
use super::AppState;
use crate::auth::Action;
use crate::engine::{SaveStatus, Saved, StartError};
use crate::names::Digest;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Creates a workflow version from YAML or JSON (by `Content-Type`). Without `version` in the
/// body, the next version is assigned; the same content under an existing version is
/// accepted again; other content under an existing version is a conflict.
#[utoipa::path(post, path = "/v1/workflows", tag = "workflows", operation_id = "Workflows.Create",
    extensions(("x-weft-actions" = json!(true))), params(CreateQuery),
    request_body(description = "The definition, YAML or JSON",
        content((String = "application/yaml"), (Object = "application/json"))),
    responses(
        (status = 201, description = "Created", body = Saved),
        (status = 200, description = "That version already exists with this content (`Saved`); or, with `dry_run`, the definition is valid (`Checked`)", body = Created),
        (status = 400, description = "Invalid definition, with every problem and its path", body = super::error::ErrorBody),
        (status = 409, description = "The version exists with other content", body = super::error::ErrorBody),
        (status = 415, description = "Not YAML or JSON", body = super::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    QueryParams(query): QueryParams<CreateQuery>,
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
    let text = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::bad_request("the definition is not UTF-8 text"))?;
    let invalid = |e: StartError| match e {
        StartError::Invalid(p) => ApiError::invalid("invalid_definition", p),
        other => other.into(),
    };
    let document = state.engine.parse_document(text).await.map_err(invalid)?;
    if query.dry_run {
        let definition =
            crate::workflow::from_value(document).map_err(|p| ApiError::invalid("invalid_definition", p))?;
        let workflow = state.engine.validate(definition).await.map_err(invalid)?;
        let checked = Created::Checked(Checked {
            id: workflow.definition.id.clone(),
            version: workflow.definition.version,
            steps: workflow.steps.len(),
        });
        return Ok((StatusCode::OK, Json(checked)).into_response());
    }
    let (saved, _) = state
        .engine
        .save_version(document, query.publish)
        .await
        .map_err(invalid)?;
    let status = match saved.status {
        SaveStatus::Created | SaveStatus::NewDraft => StatusCode::CREATED,
        SaveStatus::Unchanged | SaveStatus::Overwritten => StatusCode::OK,
    };
    Ok((status, Json(Created::Saved(saved))).into_response())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CreateQuery {
    /// Make the new version the active one at once.
    #[serde(default)]
    publish: bool,
    /// Only check the definition (against this server's plugins) and store nothing: 200
    /// `{id, version, steps}`, or 400 with every problem.
    #[serde(default)]
    dry_run: bool,
}

/// What `POST /v1/workflows` answers with 200: the version as stored, or what a dry run
/// checked.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Created {
    Saved(Saved),
    Checked(Checked),
}

/// A definition a dry run found valid; nothing was stored.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Checked {
    id: String,
    /// The version it names (1 when it names none).
    version: u64,
    /// How many steps it has.
    steps: usize,
}

/// A workflow's active version.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Published {
    id: String,
    active_version: u64,
}

/// Makes a version the active one, the version runs start on unless they name another.
#[utoipa::path(post, path = "/v1/workflows/{id}/versions/{version}/publish", tag = "workflows",
    operation_id = "Workflows.Publish", extensions(("x-weft-actions" = json!(true))),
    params(("id" = String, Path, description = "Workflow id"), ("version" = u64, Path, description = "Version")),
    responses((status = 200, description = "Published", body = Published),
        (status = 400, description = "The version is not a number", body = super::error::ErrorBody),
        (status = 404, description = "No such version", body = super::error::ErrorBody)))]
pub async fn publish(
    State(state): State<AppState>,
    PathParams((id, version)): PathParams<(String, u64)>,
    caller: Caller,
) -> Result<Json<Published>, ApiError> {
    caller.require(Action::WriteWorkflows)?;
    if !state.engine.publish(&id, version).await? {
        return Err(ApiError::not_found(format!(
            "workflow {id} has no version {version}"
        )));
    }
    Ok(Json(Published {
        id,
        active_version: version,
    }))
}

/// What changed between two versions.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Diff {
    id: String,
    from: u64,
    to: u64,
    /// A JSON Patch (RFC 6902) from `from` to `to`.
    #[schema(value_type = Vec<Object>)]
    changes: json_patch::Patch,
}

/// What changed from version `a` to version `b`, as a JSON Patch (RFC 6902).
#[utoipa::path(get, path = "/v1/workflows/{id}/versions/{a}/diff/{b}", tag = "workflows",
    operation_id = "Workflows.Diff", extensions(("x-weft-actions" = json!(true))),
    params(("id" = String, Path, description = "Workflow id"), ("a" = u64, Path, description = "From"),
        ("b" = u64, Path, description = "To")),
    responses((status = 200, description = "The changes", body = Diff),
        (status = 400, description = "A version is not a number", body = super::error::ErrorBody),
        (status = 404, description = "No such version", body = super::error::ErrorBody)))]
pub async fn diff(
    State(state): State<AppState>,
    PathParams((id, a, b)): PathParams<(String, u64, u64)>,
    caller: Caller,
) -> Result<Json<Diff>, ApiError> {
    caller.require(Action::ReadWorkflows)?;
    let document = |version: u64| {
        let (state, id) = (&state, &id);
        async move {
            let workflow = state
                .engine
                .workflow(id, Some(version))
                .await?
                .ok_or_else(|| ApiError::not_found(format!("workflow {id} has no version {version}")))?;
            let mut value = serde_json::to_value(&workflow.definition).map_err(anyhow::Error::from)?;
            // The version number always differs; the diff is about content.
            value.as_object_mut().map(|o| o.remove("version"));
            Ok::<Value, ApiError>(value)
        }
    };
    let changes = json_patch::diff(&document(a).await?, &document(b).await?);
    Ok(Json(Diff {
        id,
        from: a,
        to: b,
        changes,
    }))
}

/// A workflow and its latest version.
#[derive(Serialize, utoipa::ToSchema)]
pub struct WorkflowSummary {
    id: String,
    latest_version: u64,
    digest: Digest,
    description: String,
}

/// Every workflow.
#[derive(Serialize, utoipa::ToSchema)]
pub struct WorkflowList {
    items: Vec<WorkflowSummary>,
}

/// Every workflow with its latest version.
#[utoipa::path(get, path = "/v1/workflows", tag = "workflows", operation_id = "Workflows.List",
    extensions(("x-weft-actions" = json!(true))),
    responses((status = 200, description = "Workflows", body = WorkflowList)))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<WorkflowList>, ApiError> {
    caller.require(Action::ReadWorkflows)?;
    let mut items = Vec::new();
    for (id, version, digest) in state.engine.workflows().await? {
        let description = state
            .engine
            .workflow(&id, Some(version))
            .await?
            .map(|w| w.definition.description.clone())
            .unwrap_or_default();
        items.push(WorkflowSummary {
            id,
            latest_version: version,
            digest,
            description,
        });
    }
    Ok(Json(WorkflowList { items }))
}

/// The latest version's definition.
#[utoipa::path(get, path = "/v1/workflows/{id}", tag = "workflows", operation_id = "Workflows.Get",
    extensions(("x-weft-actions" = json!(true))),
    params(("id" = String, Path, description = "Workflow id")),
    responses((status = 200, description = "Definition", body = WorkflowVersion),
        (status = 404, description = "No such workflow", body = super::error::ErrorBody)))]
pub async fn get_latest(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    caller: Caller,
) -> Result<Json<WorkflowVersion>, ApiError> {
    caller.require(Action::ReadWorkflows)?;
    definition(&state, &id, None).await
}

/// One version's definition.
#[utoipa::path(get, path = "/v1/workflows/{id}/versions/{version}", tag = "workflows",
    operation_id = "Workflows.GetVersion", extensions(("x-weft-actions" = json!(true))),
    params(("id" = String, Path, description = "Workflow id"), ("version" = u64, Path, description = "Version")),
    responses((status = 200, description = "Definition", body = WorkflowVersion),
        (status = 400, description = "The version is not a number", body = super::error::ErrorBody),
        (status = 404, description = "No such version", body = super::error::ErrorBody)))]
pub async fn get_version(
    State(state): State<AppState>,
    PathParams((id, version)): PathParams<(String, u64)>,
    caller: Caller,
) -> Result<Json<WorkflowVersion>, ApiError> {
    caller.require(Action::ReadWorkflows)?;
    definition(&state, &id, Some(version)).await
}

/// One version of a workflow with its definition.
#[derive(Serialize, utoipa::ToSchema)]
pub struct WorkflowVersion {
    id: String,
    version: u64,
    digest: Digest,
    /// The definition as stored (see the README's "Workflow definitions").
    #[schema(value_type = Object)]
    definition: Value,
}

async fn definition(
    state: &AppState,
    id: &str,
    version: Option<u64>,
) -> Result<Json<WorkflowVersion>, ApiError> {
    let workflow = state
        .engine
        .workflow(id, version)
        .await?
        .ok_or_else(|| match version {
            Some(v) => ApiError::not_found(format!("workflow {id} has no version {v}")),
            None => ApiError::not_found(format!("no workflow {id}")),
        })?;
    Ok(Json(WorkflowVersion {
        id: workflow.definition.id.clone(),
        version: workflow.definition.version,
        digest: workflow.digest.clone(),
        definition: serde_json::to_value(&workflow.definition).map_err(anyhow::Error::from)?,
    }))
}

/// A version and its digest.
#[derive(Serialize, utoipa::ToSchema)]
pub struct VersionItem {
    version: u64,
    digest: Digest,
}

/// Every version of a workflow.
#[derive(Serialize, utoipa::ToSchema)]
pub struct VersionList {
    id: String,
    items: Vec<VersionItem>,
}

/// Every version of a workflow.
#[utoipa::path(get, path = "/v1/workflows/{id}/versions", tag = "workflows",
    operation_id = "Workflows.ListVersions", extensions(("x-weft-actions" = json!(true))),
    params(("id" = String, Path, description = "Workflow id")),
    responses((status = 200, description = "Versions", body = VersionList),
        (status = 404, description = "No such workflow", body = super::error::ErrorBody)))]
pub async fn versions(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    caller: Caller,
) -> Result<Json<VersionList>, ApiError> {
    caller.require(Action::ReadWorkflows)?;
    let versions = state.engine.workflow_versions(&id).await?;
    if versions.is_empty() {
        return Err(ApiError::not_found(format!("no workflow {id}")));
    }
    let items = versions
        .into_iter()
        .map(|(version, digest)| VersionItem { version, digest })
        .collect();
    Ok(Json(VersionList { id, items }))
}

/// Deletes every version. Runs keep the definitions they started with.
#[utoipa::path(delete, path = "/v1/workflows/{id}", tag = "workflows", operation_id = "Workflows.Delete",
    extensions(("x-weft-actions" = json!(true))),
    params(("id" = String, Path, description = "Workflow id")),
    responses((status = 204, description = "Deleted"),
        (status = 404, description = "No such workflow", body = super::error::ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    caller.require(Action::WriteWorkflows)?;
    if !state.engine.delete_workflow(&id).await? {
        return Err(ApiError::not_found(format!("no workflow {id}")));
    }
    Ok(StatusCode::NO_CONTENT)
}
