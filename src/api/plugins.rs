//! `/v1/plugins`: upload, list and delete plugin components, and show one version's
//! compile status and contract.

use super::auth::Caller;
use super::error::ApiError;
use super::extract::{PathParams, QueryParams, RawBody};
use super::AppState;
use crate::auth::Action;
use crate::engine::RemoveError;
use crate::names::Digest;
use crate::plugins::{PluginMeta, PluginStatus};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    /// The plugin's name.
    name: String,
    /// The plugin's version.
    version: String,
}

/// A plugin version: where its compile is, and once ready, what it says about itself.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PluginView {
    name: String,
    version: String,
    #[schema(value_type = String)]
    digest: Digest,
    /// `step` or `target`.
    world: String,
    /// Bytes.
    size: u64,
    /// Bundled with this Weft.
    builtin: bool,
    status: PluginStatus,
    /// Where this version's status is read: `/v1/plugins/NAME@VERSION`.
    status_url: String,
    /// Why the compile failed, for status `failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// The `weft:plugin` version it was built against, once ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    contract_version: Option<String>,
    /// The one-plugin views of a ready version show its contract: what it does, and the
    /// JSON Schemas of its input, output and (targets) config.
    #[serde(skip_serializing_if = "Option::is_none")]
    summary: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    input_schema: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    output_schema: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    config_schema: Option<Value>,
}

/// Every plugin.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PluginList {
    items: Vec<PluginView>,
}

/// `GET /v1/plugins/{name}`: every version of one plugin, or with `name@version`, that one.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum PluginVersions {
    All { name: String, items: Vec<PluginView> },
    One(Box<PluginView>),
}

fn view(meta: &PluginMeta, builtin: bool) -> PluginView {
    PluginView {
        name: meta.name.clone(),
        version: meta.version.clone(),
        digest: meta.digest.clone(),
        world: meta.world.clone(),
        size: meta.size,
        builtin,
        status: meta.status,
        status_url: status_url(meta),
        error: meta.error.clone(),
        contract_version: meta.contract_version.clone(),
        summary: None,
        input_schema: None,
        output_schema: None,
        config_schema: None,
    }
}

/// Where a version's status is read: `GET /v1/plugins/NAME@VERSION`.
fn status_url(meta: &PluginMeta) -> String {
    format!("/v1/plugins/{}@{}", meta.name, meta.version)
}

/// A version with its contract (summary and schemas), for the one-plugin views.
async fn described(state: &AppState, meta: &PluginMeta, builtin: bool) -> Result<PluginView, ApiError> {
    let mut shown = view(meta, builtin);
    let contract = match (&meta.contract, builtin) {
        (Some(contract), _) => Some(contract.clone()),
        (None, true) => state
            .engine
            .plugins()
            .contract(&meta.digest)
            .await?
            .map(|c| c.description.clone()),
        (None, false) => None,
    };
    if let Some(contract) = contract {
        shown.summary = Some(contract.summary);
        shown.input_schema = Some(contract.input_schema);
        shown.output_schema = Some(contract.output_schema);
        shown.config_schema = contract.config_schema;
    }
    Ok(shown)
}

/// Uploads a component (the body is the `.wasm` bytes). It is checked, compiled, linked and
/// described; when that ends within `limits.upload_wait` the answer is 201 with the ready
/// plugin (or 400 with the reason), otherwise 202 with `status: compiling` and a `Location`
/// (`status_url`) to poll until `ready` or `failed`. The same bytes again are accepted (200),
/// other bytes under the same name and version are a conflict.
#[utoipa::path(post, path = "/v1/plugins", tag = "plugins", operation_id = "Plugins.Upload",
    extensions(("x-weft-actions" = json!(true))), params(UploadQuery),
    request_body(content = RawBody, content_type = "application/octet-stream",
        description = "The component's .wasm bytes (any Content-Type)"),
    responses((status = 201, description = "Stored and ready", body = PluginView,
            headers(("Location" = String, description = "status_url"))),
        (status = 202, description = "Stored, compiling in the background; poll status_url", body = PluginView,
            headers(("Location" = String, description = "status_url"))),
        (status = 200, description = "The same bytes were already stored", body = PluginView,
            headers(("Location" = String, description = "status_url"))),
        (status = 400, description = "Not a valid Weft component", body = super::error::ErrorBody),
        (status = 409, description = "Other bytes under this name and version", body = super::error::ErrorBody),
        (status = 413, description = "Larger than the body limit", body = super::error::ErrorBody)))]
pub async fn upload(
    State(state): State<AppState>,
    QueryParams(query): QueryParams<UploadQuery>,
    caller: Caller,
    RawBody(body): RawBody,
) -> Result<
    (
        StatusCode,
        [(axum::http::HeaderName, String); 1],
        Json<PluginView>,
    ),
    ApiError,
> {
    caller.require(Action::WritePlugins)?;
    let plugins = state.engine.plugins();
    let wait = plugins.limits().upload_wait;
    let added = plugins
        .upload(&query.name, &query.version, body.to_vec(), Some(wait))
        .await?;
    let status = match (added.existed, added.meta.status) {
        (_, PluginStatus::Compiling) => StatusCode::ACCEPTED,
        (true, _) => StatusCode::OK,
        (false, _) => StatusCode::CREATED,
    };
    let location = [(axum::http::header::LOCATION, status_url(&added.meta))];
    Ok((
        status,
        location,
        Json(described(&state, &added.meta, false).await?),
    ))
}

/// Every plugin, built-ins included.
#[utoipa::path(get, path = "/v1/plugins", tag = "plugins", operation_id = "Plugins.List",
    extensions(("x-weft-actions" = json!(true))),
    responses((status = 200, description = "Plugins", body = PluginList)))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<PluginList>, ApiError> {
    caller.require(Action::ReadPlugins)?;
    let items = listed(&state).await?.iter().map(|(m, b)| view(m, *b)).collect();
    Ok(Json(PluginList { items }))
}

async fn listed(state: &AppState) -> Result<Vec<(PluginMeta, bool)>, ApiError> {
    let builtins = crate::plugins::builtin::all();
    Ok(state
        .engine
        .plugins()
        .list()
        .await?
        .into_iter()
        .map(|m| {
            let builtin = builtins.iter().any(|b| b.digest == m.digest && b.name == m.name);
            (m, builtin)
        })
        .collect())
}

/// Every version of one plugin, each with its status and contract (summary, input, output
/// and config schemas); with `{name}@{version}`, that version alone (the status URL of an
/// upload).
#[utoipa::path(get, path = "/v1/plugins/{name}", tag = "plugins", operation_id = "Plugins.ListVersions",
    extensions(("x-weft-actions" = json!(true))),
    params(("name" = String, Path, description = "Plugin name, or name@version")),
    responses((status = 200, description = "Versions, or the one version", body = PluginVersions),
        (status = 404, description = "No such plugin", body = super::error::ErrorBody)))]
pub async fn versions(
    State(state): State<AppState>,
    PathParams(name): PathParams<String>,
    caller: Caller,
) -> Result<Json<PluginVersions>, ApiError> {
    caller.require(Action::ReadPlugins)?;
    let (name, version) = match name.split_once('@') {
        Some((name, version)) => (name.to_owned(), Some(version.to_owned())),
        None => (name, None),
    };
    let mut items = Vec::new();
    for (meta, builtin) in listed(&state).await? {
        if meta.name == name && version.as_ref().is_none_or(|v| *v == meta.version) {
            items.push(described(&state, &meta, builtin).await?);
        }
    }
    match (version, items.pop()) {
        (None, Some(last)) => {
            items.push(last);
            Ok(Json(PluginVersions::All { name, items }))
        }
        (Some(_), Some(one)) => Ok(Json(PluginVersions::One(Box::new(one)))),
        (Some(version), None) => Err(ApiError::not_found(format!("no plugin {name}@{version}"))),
        (None, None) => Err(ApiError::not_found(format!("no plugin {name}"))),
    }
}

/// Deletes `name@version`, unless a workflow version or an unfinished run uses it.
#[utoipa::path(delete, path = "/v1/plugins/{name}", tag = "plugins", operation_id = "Plugins.Delete",
    extensions(("x-weft-actions" = json!(true))),
    params(("name" = String, Path, description = "name@version")),
    responses((status = 204, description = "Deleted"),
        (status = 400, description = "Not name@version", body = super::error::ErrorBody),
        (status = 404, description = "No such plugin version", body = super::error::ErrorBody),
        (status = 409, description = "In use", body = super::error::ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    PathParams(spec): PathParams<String>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    caller.require(Action::WritePlugins)?;
    let (name, version) = spec
        .split_once('@')
        .ok_or_else(|| ApiError::bad_request(format!("delete needs name@version, got {spec:?}")))?;
    state
        .engine
        .remove_plugin(name, version)
        .await
        .map_err(|e| match e {
            RemoveError::NotFound(m) => ApiError::not_found(m),
            RemoveError::InUse(m) => ApiError::conflict(m),
            RemoveError::Internal(e) => ApiError::internal(e),
        })?;
    Ok(StatusCode::NO_CONTENT)
}
