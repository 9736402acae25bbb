//! `/v1/plugins`: upload, list and delete plugin components.

use super::auth::Caller;
use super::error::ApiError;
use super::extract::{PathParams, QueryParams, RawBody};
use super::AppState;
use crate::auth::Action;
use crate::engine::RemoveError;
use crate::plugins::PluginMeta;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize, utoipa::IntoParams)]
pub struct UploadQuery {
    /// The plugin's name.
    name: String,
    /// The plugin's version.
    version: String,
}

fn view(meta: &PluginMeta, builtin: bool) -> Value {
    json!({
        "name": meta.name,
        "version": meta.version,
        "digest": meta.digest,
        "world": meta.world,
        "size": meta.size,
        "builtin": builtin,
    })
}

/// Uploads a component (the body is the `.wasm` bytes). It is validated and compiled before
/// the answer; the same bytes again are accepted, other bytes under the same name and version
/// are a conflict.
#[utoipa::path(post, path = "/v1/plugins", tag = "plugins", params(UploadQuery),
    request_body(content = Vec<u8>, content_type = "application/wasm"),
    responses((status = 201, description = "Stored", body = serde_json::Value),
        (status = 200, description = "The same bytes were already stored", body = serde_json::Value),
        (status = 400, description = "Not a valid Weft component", body = super::error::ErrorBody),
        (status = 409, description = "Other bytes under this name and version", body = super::error::ErrorBody),
        (status = 413, description = "Larger than the body limit", body = super::error::ErrorBody)))]
pub async fn upload(
    State(state): State<AppState>,
    QueryParams(query): QueryParams<UploadQuery>,
    caller: Caller,
    RawBody(body): RawBody,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(Action::WritePlugins)?;
    let added = state
        .engine
        .plugins()
        .add(&query.name, &query.version, body.to_vec())
        .await?;
    let status = if added.existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(view(&added.meta, false))))
}

/// Every plugin, built-ins included.
#[utoipa::path(get, path = "/v1/plugins", tag = "plugins",
    responses((status = 200, description = "Plugins", body = serde_json::Value)))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require(Action::ReadPlugins)?;
    let items = listed(&state)
        .await?
        .iter()
        .map(|(m, b)| view(m, *b))
        .collect::<Vec<_>>();
    Ok(Json(json!({ "items": items })))
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

/// Every version of one plugin.
#[utoipa::path(get, path = "/v1/plugins/{name}", tag = "plugins",
    params(("name" = String, Path, description = "Plugin name")),
    responses((status = 200, description = "Versions", body = serde_json::Value),
        (status = 404, description = "No such plugin", body = super::error::ErrorBody)))]
pub async fn versions(
    State(state): State<AppState>,
    PathParams(name): PathParams<String>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require(Action::ReadPlugins)?;
    let items: Vec<Value> = listed(&state)
        .await?
        .iter()
        .filter(|(m, _)| m.name == name)
        .map(|(m, b)| view(m, *b))
        .collect();
    if items.is_empty() {
        return Err(ApiError::not_found(format!("no plugin {name}")));
    }
    Ok(Json(json!({"name": name, "items": items})))
}

/// Deletes `name@version`, unless a workflow version or an unfinished run uses it.
#[utoipa::path(delete, path = "/v1/plugins/{name}@{version}", tag = "plugins",
    params(("name" = String, Path, description = "Plugin name"), ("version" = String, Path, description = "Version")),
    responses((status = 204, description = "Deleted"),
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
