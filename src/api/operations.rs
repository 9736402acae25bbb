//! `/v1/grants` and `/v1/runners`, for admins: what plugins may reach (kept in the store, so
//! every runner applies the same grants) and which runners share the database.

use super::auth::Caller;
use super::error::ApiError;
use super::extract::{JsonBody, PathParams};
use super::AppState;
use crate::auth::Action;
use crate::engine::GrantError;
use crate::plugins::grants::GrantSpec;
use crate::plugins::grants::GrantView;
use crate::store::RunnerInfo;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;

impl From<GrantError> for ApiError {
    fn from(error: GrantError) -> Self {
        match error {
            GrantError::Invalid(message) => ApiError::bad_request(message),
            GrantError::Store(e) => ApiError::internal(e),
        }
    }
}

/// Every plugin grant.
#[utoipa::path(get, path = "/v1/grants", tag = "grants", operation_id = "Grants.List",
    responses((status = 200, description = "Grants by plugin name or name@version", body = GrantList),
        (status = 403, description = "Not an admin", body = super::error::ErrorBody)))]
pub async fn list_grants(State(state): State<AppState>, caller: Caller) -> Result<Json<GrantList>, ApiError> {
    caller.require(Action::ManageGrants)?;
    let items = state
        .engine
        .grants()
        .await?
        .iter()
        .map(|(plugin, grant)| grant.shown(plugin))
        .collect();
    Ok(Json(GrantList { items }))
}

/// Every grant.
#[derive(Serialize, utoipa::ToSchema)]
pub struct GrantList {
    items: Vec<GrantView>,
}

/// One plugin's grant.
#[utoipa::path(get, path = "/v1/grants/{plugin}", tag = "grants", operation_id = "Grants.Get",
    params(("plugin" = String, Path, description = "Plugin name or name@version")),
    responses((status = 200, description = "The grant", body = GrantView),
        (status = 403, description = "Not an admin", body = super::error::ErrorBody),
        (status = 404, description = "No grant for this plugin", body = super::error::ErrorBody)))]
pub async fn get_grant(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(plugin): PathParams<String>,
) -> Result<Json<GrantView>, ApiError> {
    caller.require(Action::ManageGrants)?;
    let grants = state.engine.grants().await?;
    let grant = grants
        .get(&plugin)
        .ok_or_else(|| ApiError::not_found(format!("no grant for {plugin}")))?;
    Ok(Json(grant.shown(&plugin)))
}

/// Sets a plugin's grant: outbound HTTP rules, secret names, environment and tighter limits.
/// Calls starting from now on every runner apply it; secret values come from each runner's
/// `[secrets]`.
#[utoipa::path(put, path = "/v1/grants/{plugin}", tag = "grants", operation_id = "Grants.Set",
    request_body = GrantSpec,
    params(("plugin" = String, Path, description = "Plugin name or name@version")),
    responses((status = 200, description = "The grant as stored", body = GrantView),
        (status = 415, description = "Not JSON", body = super::error::ErrorBody),
        (status = 400, description = "An invalid name or field", body = super::error::ErrorBody),
        (status = 403, description = "Not an admin", body = super::error::ErrorBody)))]
pub async fn set_grant(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(plugin): PathParams<String>,
    JsonBody(spec): JsonBody<GrantSpec>,
) -> Result<Json<GrantView>, ApiError> {
    let by = caller.require(Action::ManageGrants)?.name.clone();
    let grant = state.engine.set_grant(&plugin, spec, &by).await?;
    Ok(Json(grant.shown(&plugin)))
}

/// Removes a plugin's grant; the plugin then reaches nothing beyond its sandbox.
#[utoipa::path(delete, path = "/v1/grants/{plugin}", tag = "grants", operation_id = "Grants.Delete",
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
#[utoipa::path(get, path = "/v1/runners", tag = "runners", operation_id = "Runners.List",
    responses((status = 200, description = "Runners", body = RunnerList),
        (status = 403, description = "Not an admin", body = super::error::ErrorBody)))]
pub async fn runners(State(state): State<AppState>, caller: Caller) -> Result<Json<RunnerList>, ApiError> {
    caller.require(Action::ReadRunners)?;
    let now = crate::run::now();
    let this = state.engine.runner().to_owned();
    let items = state
        .engine
        .runners()
        .await?
        .into_iter()
        .map(|runner| RunnerView {
            alive: runner.lease_until > now,
            this: runner.id == this,
            runner,
        })
        .collect();
    Ok(Json(RunnerList { items }))
}

/// A runner, whether its lease holds, and whether it is the one answering.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RunnerView {
    #[serde(flatten)]
    runner: RunnerInfo,
    alive: bool,
    this: bool,
}

/// The runners sharing the database.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RunnerList {
    items: Vec<RunnerView>,
}
