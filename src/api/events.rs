//! `POST /v1/events`: an event from another system, handed to every step waiting for it.

use super::auth::Caller;
use super::error::ApiError;
use super::extract::JsonBody;
use super::AppState;
use crate::auth::Action;
use crate::engine::{EventError, EventReceipt};
use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::Value;

impl From<EventError> for ApiError {
    fn from(error: EventError) -> Self {
        match error {
            EventError::Invalid(message) => ApiError::bad_request(message),
            EventError::Internal(e) => ApiError::internal(e),
        }
    }
}

/// An event: its name, the key a waiting step matches (an order id), and its data (the
/// waiting step's output).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventBody {
    name: String,
    /// Text or a number; empty matches steps that wait without a key.
    #[serde(default)]
    #[schema(schema_with = event_key)]
    key: Value,
    /// Handed to the waiting step as its output.
    #[serde(default)]
    data: Value,
}

/// `key`'s schema: text, a number or null.
fn event_key() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Number, Type::Null]))
        .build()
}

/// Sends an event: it is kept for `limits.event_retention`, handed now to every step waiting
/// for its name and key, and later to steps that begin waiting within their `lookback`.
#[utoipa::path(post, path = "/v1/events", tag = "events", operation_id = "Events.Send",
    extensions(("x-weft-actions" = json!(true))),
    request_body(content = EventBody, content_type = "application/json"),
    responses((status = 200, description = "Stored; the runs that took it", body = EventReceipt),
        (status = 400, description = "A bad name, key or data", body = super::error::ErrorBody),
        (status = 415, description = "Not JSON", body = super::error::ErrorBody),
        (status = 403, description = "Not an operator or admin", body = super::error::ErrorBody)))]
pub async fn send(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<EventBody>,
) -> Result<Json<EventReceipt>, ApiError> {
    caller.require(Action::SendEvents)?;
    let key = match &body.key {
        Value::Null => String::new(),
        Value::String(key) => key.clone(),
        Value::Number(n) => n.to_string(),
        _ => return Err(ApiError::bad_request("key: expected text or a number")),
    };
    let receipt = state
        .engine
        .send_event(&body.name, &key, body.data, &caller.0.name)
        .await?;
    Ok(Json(receipt))
}
