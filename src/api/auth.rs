//! Authentication and the audit log, as one middleware; and the permission check handlers
//! call.
//!
//! Every request but `/healthz` and `/v1/openapi.json` needs `Authorization: Bearer <token>`.
//! A server on loopback whose database has no token yet runs in local mode: callers are local
//! admins named by the `X-Weft-User` header. Every request that changes something is recorded in the audit log
//! with who made it and how it ended.

use super::error::ApiError;
use super::AppState;
use crate::auth::{self, Action, Principal, Role};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The most header bytes a request may carry.
const MAX_HEADER_BYTES: usize = 64 << 10;

/// The header naming the caller in local mode.
pub const USER_HEADER: &str = "x-weft-user";

/// Authenticates the request, runs it, and audits it if it changes anything.
pub async fn authenticate(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let header_bytes: usize = request
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len())
        .sum();
    if header_bytes > MAX_HEADER_BYTES {
        return ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            format!("the request headers are {header_bytes} bytes; at most {MAX_HEADER_BYTES} are accepted"),
        )
        .into_response();
    }
    let path = request.uri().path();
    // The document is public so that client generators and API fuzzers can read it.
    if path == "/healthz" || path == "/v1/openapi.json" || (path == "/metrics" && state.metrics_without_token)
    {
        return next.run(request).await;
    }
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let caller = resolve(&state, request.headers()).await;
    let (principal, response) = match caller {
        Ok(principal) => {
            request.extensions_mut().insert(principal.clone());
            let mut response = next.run(request).await;
            // For the request's log line.
            response.extensions_mut().insert(principal.clone());
            (Some(principal), response)
        }
        Err(error) => {
            let mut response = error.into_response();
            if response.status() == StatusCode::UNAUTHORIZED {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Bearer"),
                );
            }
            (None, response)
        }
    };
    if method != Method::GET && method != Method::HEAD {
        record(&state, principal.as_ref(), &method, &path, response.status());
    }
    response
}

async fn resolve(state: &AppState, headers: &header::HeaderMap) -> Result<Principal, ApiError> {
    let unauthorized = |message: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message);
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        if state.local_mode && !state.engine.has_tokens().await? {
            return local_principal(headers);
        }
        return Err(unauthorized(
            "send `Authorization: Bearer <token>`; create tokens with `weft token create`",
        ));
    };
    // The scheme is case-insensitive (RFC 9110).
    let secret = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or_else(|| unauthorized("the Authorization header must be `Bearer <token>`"))?;
    if !auth::well_formed(secret) {
        return Err(unauthorized(
            "malformed token: tokens look like weft_ followed by 64 hex digits",
        ));
    }
    match state.engine.token(secret).await? {
        Some(token) if token.revoked_at.is_none() => Ok(Principal::of_token(token)),
        Some(_) => Err(unauthorized("this token was revoked")),
        None => Err(unauthorized("unknown token")),
    }
}

fn local_principal(headers: &header::HeaderMap) -> Result<Principal, ApiError> {
    let name = match headers.get(USER_HEADER) {
        Some(value) => value
            .to_str()
            .ok()
            .map(str::trim)
            .filter(|v| !v.is_empty() && v.len() <= 128)
            .ok_or_else(|| ApiError::bad_request(format!("{USER_HEADER} must be a short UTF-8 name")))?
            .to_owned(),
        None => "anonymous".to_owned(),
    };
    Ok(Principal {
        name,
        roles: vec![Role::Admin],
        groups: Vec::new(),
        token: None,
        local: true,
    })
}

fn record(state: &AppState, who: Option<&Principal>, method: &Method, path: &str, status: StatusCode) {
    let entry = auth::audit_entry(who, &format!("{method} {path}"), path, status.as_u16());
    // Queued, not awaited: the entry joins the next group commit instead of adding a disk
    // sync to every response; `GET /v1/audit` flushes before it reads.
    state.engine.record_audit(&entry);
}

/// The authenticated caller.
pub struct Caller(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .map(Caller)
            .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "not authenticated"))
    }
}

impl Caller {
    /// 403 unless the caller's role allows `action`.
    pub fn require(&self, action: Action) -> Result<&Principal, ApiError> {
        if self.0.allows(action) {
            Ok(&self.0)
        } else {
            let roles = match self.0.roles.as_slice() {
                [one] => format!("role {one}"),
                many => format!("roles {}", auth::describe_roles(many)),
            };
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("{roles} may not {}", action.describe()),
            ))
        }
    }
}
