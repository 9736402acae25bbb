//! `/v1/grants` and `/v1/runners`, for admins: what plugins may reach (kept in the store, so
//! every runner applies the same grants) and which runners share the database.

use super::auth::Caller;
use super::error::ApiError;
use super::extract::{JsonBody, PathParams};
use super::AppState;
use crate::auth::Action;
use crate::engine::GrantError;
use crate::plugins::grants::GrantSpec;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

impl From<GrantError> for ApiError {
    fn from(error: GrantError) -> Self {
        match error {
            GrantError::Invalid(message) => ApiError::bad_request(message),
            GrantError::Store(e) => ApiError::internal(e),
        }
    }
}

/// Every plugin grant.
#[utoipa::path(get, path = "/v1/grants", tag = "grants",
    responses((status = 200, description = "Grants by plugin name or name@version", body = serde_json::Value),
        (status = 403, description = "Not an admin", body = super::error::ErrorBody)))]
pub async fn list_grants(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require(Action::ManageGrants)?;
    let items: Vec<Value> = state
        .engine
        .grants()
        .await?
        .iter()
        .map(|(plugin, grant)| grant.view(plugin))
        .collect();
    Ok(Json(json!({ "items": items })))
}

/// One plugin's grant.
#[utoipa::path(get, path = "/v1/grants/{plugin}", tag = "grants",
    params(("plugin" = String, Path, description = "Plugin name or name@version")),
    responses((status = 200, description = "The grant", body = serde_json::Value),
        (status = 403, description = "Not an admin", body = super::error::ErrorBody),
        (status = 404, description = "No grant for this plugin", body = super::error::ErrorBody)))]
pub async fn get_grant(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(plugin): PathParams<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Action::ManageGrants)?;
    let grants = state.engine.grants().await?;
    let grant = grants
        .get(&plugin)
        .ok_or_else(|| ApiError::not_found(format!("no grant for {plugin}")))?;
    Ok(Json(grant.view(&plugin)))
}

/// Sets a plugin's grant: outbound HTTP rules, secret names, environment and tighter limits.
/// Calls starting from now on every runner apply it; secret values come from each runner's
/// `[secrets]`.
#[utoipa::path(put, path = "/v1/grants/{plugin}", tag = "grants", request_body = GrantSpec,
    params(("plugin" = String, Path, description = "Plugin name or name@version")),
    responses((status = 200, description = "The grant as stored", body = serde_json::Value),
        (status = 400, description = "An invalid name or field", body = super::error::ErrorBody),
        (status = 403, description = "Not an admin", body = super::error::ErrorBody)))]
pub async fn set_grant(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(plugin): PathParams<String>,
    JsonBody(spec): JsonBody<GrantSpec>,
) -> Result<Json<Value>, ApiError> {
    let by = caller.require(Action::ManageGrants)?.name.clone();
    let grant = state.engine.set_grant(&plugin, spec, &by).await?;
    Ok(Json(grant.view(&plugin)))
}

/// Removes a plugin's grant; the plugin then reaches nothing beyond its sandbox.
#[utoipa::path(delete, path = "/v1/grants/{plugin}", tag = "grants",
    params(("plugin" = String, Path, description = "Plugin name or name@version")),
    responses((status = 204, description = "Removed"),
        (status = 403, description = "Not an admin", body = super::error::ErrorBody),
        (status = 404, description = "No grant for this plugin", body = super::error::ErrorBody)))]
pub async fn delete_grant(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(plugin): PathParams<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Action::ManageGrants)?;
    if state.engine.delete_grant(&plugin).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no grant for {plugin}")))
    }
}

/// The runners sharing this database: where each serves, its lease and last heartbeat, and
/// how many runs it owns. Runners whose lease lapsed over a minute ago are left out.
#[utoipa::path(get, path = "/v1/runners", tag = "runners",
    responses((status = 200, description = "Runners", body = serde_json::Value),
        (status = 403, description = "Not an admin", body = super::error::ErrorBody)))]
pub async fn runners(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require(Action::ReadRunners)?;
    let now = crate::run::now();
    let this = state.engine.runner().to_owned();
    let items: Vec<Value> = state
        .engine
        .runners()
        .await?
        .into_iter()
        .map(|runner| {
            let alive = runner.lease_until > now;
            let mut shown = serde_json::to_value(&runner).unwrap_or_default();
            shown["alive"] = json!(alive);
            shown["this"] = json!(runner.id == this);
            shown
        })
        .collect();
    Ok(Json(json!({ "items": items })))
}
