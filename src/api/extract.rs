//! Extractors whose rejections are [`ApiError`]s, so a bad body, path or query gets the same
//! JSON error shape as everything else.

use super::error::ApiError;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;

#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct JsonBody<T>(pub T);

/// The raw body; an over-limit body is a JSON 413 like every other error.
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        Ok(RawBody(Bytes::from_request(request, state).await?))
    }
}

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct PathParams<T>(pub T);

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct QueryParams<T>(pub T);

/// Who is calling. Until API tokens exist this is the `X-Weft-User` header (default
/// `anonymous`), as for `weft answer --as`.
pub struct Caller(pub crate::engine::Person);

/// The header naming the caller.
pub const USER_HEADER: &str = "x-weft-user";

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let name = match parts.headers.get(USER_HEADER) {
            Some(value) => value
                .to_str()
                .ok()
                .map(str::trim)
                .filter(|v| !v.is_empty() && v.len() <= 128)
                .ok_or_else(|| ApiError::bad_request(format!("{USER_HEADER} must be a short UTF-8 name")))?
                .to_owned(),
            None => "anonymous".to_owned(),
        };
        Ok(Caller(crate::engine::Person {
            name,
            groups: Vec::new(),
        }))
    }
}
