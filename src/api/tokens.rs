//! `/v1/tokens` and `/v1/audit`: token management and the audit log, for admins.

use super::auth::Caller;
use super::error::ApiError;
use super::extract::{JsonBody, PathParams, QueryParams};
use super::AppState;
use crate::auth::TokenRecord;
use crate::auth::{Action, Role};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

#[derive(Deserialize, utoipa::ToSchema)]
pub struct NewToken {
    /// The person or service the token is for.
    name: String,
    /// The token's roles; it may do what any of them allows.
    #[serde(default)]
    roles: Vec<Role>,
    /// One role (the form from before tokens held several); joins `roles`.
    #[serde(default)]
    role: Option<Role>,
    /// Groups, for steps assigned to `group:NAME`.
    #[serde(default)]
    groups: Vec<String>,
}

/// A new token, with its secret.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedToken {
    /// The secret (`weft_` and 64 hex digits): shown only now.
    token: String,
    id: String,
    name: String,
    roles: Vec<Role>,
    groups: Vec<String>,
}

/// Creates a token. The answer is the only time the token itself is shown.
#[utoipa::path(post, path = "/v1/tokens", tag = "tokens", operation_id = "Tokens.Create",
    extensions(("x-weft-actions" = json!(true))), request_body = NewToken,
    responses((status = 201, description = "Created; `token` is shown only now", body = CreatedToken),
        (status = 415, description = "Not JSON", body = super::error::ErrorBody),
        (status = 400, description = "Invalid name or role", body = super::error::ErrorBody),
        (status = 403, description = "Not an admin", body = super::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(new): JsonBody<NewToken>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    caller.require(Action::ManageTokens)?;
    let roles: Vec<Role> = new.role.into_iter().chain(new.roles).collect();
    let first = !state.engine.has_tokens().await?;
    let (secret, record) = state
        .engine
        .create_token(&new.name, roles, new.groups)
        .await
        .map_err(|e| ApiError::bad_request(format!("{e:#}")))?;
    if first && caller.0.local {
        tracing::warn!("the first API token exists now: local mode is over, every request needs a token");
    }
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            token: secret,
            id: record.id,
            name: record.name,
            roles: record.roles,
            groups: record.groups,
        }),
    ))
}

/// Every token.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenList {
    items: Vec<TokenRecord>,
}

/// Every token, without secrets.
#[utoipa::path(get, path = "/v1/tokens", tag = "tokens", operation_id = "Tokens.List",
    extensions(("x-weft-actions" = json!(true))),
    responses((status = 200, description = "Tokens", body = TokenList),
        (status = 403, description = "Not an admin", body = super::error::ErrorBody)))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<TokenList>, ApiError> {
    caller.require(Action::ManageTokens)?;
    let items = state.engine.tokens().await?;
    Ok(Json(TokenList { items }))
}

/// Revokes a token; it stops working at once.
#[utoipa::path(delete, path = "/v1/tokens/{id}", tag = "tokens", operation_id = "Tokens.Revoke",
    extensions(("x-weft-actions" = json!(true))),
    params(("id" = String, Path, description = "Token id or name")),
    responses((status = 204, description = "Revoked"),
        (status = 403, description = "Not an admin", body = super::error::ErrorBody),
        (status = 404, description = "No such token", body = super::error::ErrorBody)))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Action::ManageTokens)?;
    let revoked = state.engine.revoke_token(&id).await?;
    if revoked == 0 {
        return Err(ApiError::not_found(format!("no active token {id}")));
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Entries after this sequence number.
    after: Option<u64>,
    /// At most this many (default 100, at most 10000).
    limit: Option<usize>,
}

/// A page of the audit log.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    /// `{seq, at, token, name, role, action, target, outcome}`, oldest first.
    #[schema(value_type = Vec<Object>)]
    items: Vec<Value>,
    /// Pass as `after` for the next page; null when the page is empty.
    next_after: Option<u64>,
}

/// Who did what: uploads, starts, answers, cancels, deletes, with their outcome.
#[utoipa::path(get, path = "/v1/audit", tag = "tokens", operation_id = "Audit.List",
    extensions(("x-weft-actions" = json!(true))), params(AuditQuery),
    responses((status = 200, description = "Audit entries", body = AuditPage),
        (status = 400, description = "A bad query", body = super::error::ErrorBody),
        (status = 403, description = "Not an admin", body = super::error::ErrorBody)))]
pub async fn audit(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    caller.require(Action::ReadAudit)?;
    let limit = query.limit.unwrap_or(100).clamp(1, 10_000);
    let entries = state.engine.audit(query.after, limit).await?;
    let next_after = entries.last().map(|(seq, _)| *seq);
    let items: Vec<Value> = entries
        .into_iter()
        .map(|(seq, mut entry)| {
            entry["seq"] = json!(seq);
            entry
        })
        .collect();
    Ok(Json(AuditPage { items, next_after }))
}
