//! Request and response actions: a middleware that maps the matched route to its operation
//! name (`/v1.Executions/Start`), runs the targets of the most specific `request` rule before
//! the handler and of the `response` rule after it.
//!
//! The payload a target gets is `{"method", "service", "user": {"name", "role", "roles"}, "path",
//! "request"}`, plus `"status"` and `"response"` after the handler. `request` and `response`
//! are the bodies: JSON as JSON, other text (YAML) as a string, binary or empty as null. A
//! `call` target that returns the payload with another `request` (or `response`) changes the
//! body the handler (or the caller) gets; binary bodies cannot be changed. For
//! `/v1.Executions/Start` the payload also has `inputs`, the run's inputs as the handler will
//! read them from any of the accepted body shapes (read-only: change `request` to change
//! them). A target that fails with `interrupt_on_error` stops the call: with the target's
//! 4xx status (`refused_by_action`), otherwise 502 (`action_failed`). After the handler, the
//! operation has happened even if a response target interrupts.
//!
//! Only operations whose annotation carries `"x-weft-actions": true` ([`HOOKED`]) are hooked;
//! the actions API itself never is, so a broken rule can always be repaired. This module owns
//! the operation table (read from the OpenAPI document) and the HTTP side of hooks; which
//! targets run and how is [`crate::actions`]' business.

use super::error::ApiError;
use super::AppState;
use crate::actions::model::ApiScope;
use crate::actions::{Condition, Interrupted, Phase};
use crate::auth::Principal;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::sync::LazyLock;

/// The largest response body a response target is shown; larger ones fail the call (502).
const MAX_HOOKED_RESPONSE: usize = 64 << 20;

/// The operation `/v1.Executions/Start` names.
const START: &str = "/v1.Executions/Start";

/// The extension that marks an operation as hooked: `"x-weft-actions": true` in its
/// `#[utoipa::path]` annotation.
pub const HOOKED: &str = "x-weft-actions";

/// A hooked API operation: its HTTP method and route (as the router matches it) and its name,
/// `/v1.` and its `operation_id` with the dot made a slash (`Executions.Start` is
/// `/v1.Executions/Start`). The service of an operation is its first part:
/// `/v1.Executions/Start` belongs to `v1.Executions`.
pub struct Operation {
    pub method: String,
    pub route: String,
    pub name: String,
}

/// Every hooked operation, read once from the OpenAPI document, so the table is the routes'
/// annotations and cannot miss or misname one.
pub static OPERATIONS: LazyLock<Vec<Operation>> = LazyLock::new(|| {
    let mut operations = Vec::new();
    for (route, item) in &super::openapi().paths.paths {
        for (method, operation) in super::operations(item) {
            let hooked = operation
                .extensions
                .as_ref()
                .and_then(|e| e.get(HOOKED))
                .is_some_and(|v| *v == Value::Bool(true));
            if !hooked {
                continue;
            }
            let id = operation.operation_id.as_deref().unwrap_or_default();
            let (service, name) = id.split_once('.').unwrap_or_else(|| {
                panic!("hooked {method} {route}: operation_id {id:?} is not Service.Name")
            });
            operations.push(Operation {
                method: method.to_owned(),
                route: route.clone(),
                name: format!("/v1.{service}/{name}"),
            });
        }
    }
    operations
});

/// The services of [`OPERATIONS`], each once, in the order they first appear.
pub fn services() -> Vec<&'static str> {
    let mut services: Vec<&str> = Vec::new();
    for operation in OPERATIONS.iter() {
        let service = service_of(&operation.name);
        if !services.contains(&service) {
            services.push(service);
        }
    }
    services
}

/// The service an operation belongs to: `/v1.Executions/Start` → `v1.Executions`.
pub fn service_of(operation: &str) -> &str {
    let rest = operation.strip_prefix('/').unwrap_or(operation);
    rest.split_once('/').map_or(rest, |(service, _)| service)
}

/// Checks that a request or response condition names a known operation or service.
pub fn check_condition(condition: &Condition) -> Result<(), String> {
    let (kind, scope) = match condition {
        Condition::Request(scope) => ("request", scope),
        Condition::Response(scope) => ("response", scope),
        _ => return Ok(()),
    };
    let known = |wanted: &dyn Fn(&str) -> bool| OPERATIONS.iter().any(|op| wanted(&op.name));
    match scope {
        ApiScope::Method(m) if !known(&|op| op == m) => Err(format!(
            "condition.{kind}.method: unknown operation {m:?}; operations look like {START} \
             (see GET /v1/actions/conditions for all of them)"
        )),
        ApiScope::Service(s) if !known(&|op| service_of(op) == s) => Err(format!(
            "condition.{kind}.service: unknown service {s:?}; services: {}",
            services().join(", ")
        )),
        _ => Ok(()),
    }
}

/// Runs the request and response targets of the route's operation around the handler.
pub async fn run(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(operation) = operation_of(&request) else {
        return next.run(request).await;
    };
    match hooked(&state, operation, request, next).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

fn operation_of(request: &Request) -> Option<&'static str> {
    let route = request.extensions().get::<MatchedPath>()?.as_str();
    let method = request.method().as_str();
    OPERATIONS
        .iter()
        .find(|op| op.method == method && op.route == route)
        .map(|op| op.name.as_str())
}

async fn hooked(
    state: &AppState,
    operation: &str,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let actions = state.engine.actions();
    let service = service_of(operation);
    let before = actions.api_chain(Phase::Request, operation, service).await?;
    let after = actions.api_chain(Phase::Response, operation, service).await?;
    if before.is_empty() && after.is_empty() {
        return Ok(next.run(request).await);
    }
    let user = request
        .extensions()
        .get::<Principal>()
        .map(|p| json!({"name": p.name, "role": crate::auth::describe_roles(&p.roles), "roles": p.roles}));
    let (mut parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    // The body limit is an extension the `DefaultBodyLimit` layer set; the probe keeps it.
    let mut probe = Request::new(body);
    *probe.extensions_mut() = parts.extensions.clone();
    let mut body = Bytes::from_request(probe, &()).await?;
    let mut handled = body_value(&body);
    if !before.is_empty() {
        let mut payload = json!({
            "method": operation,
            "service": service,
            "user": user,
            "path": path,
            "request": handled,
        });
        if operation == START {
            if let Ok(inputs) = super::params::start_inputs(&payload["request"]) {
                payload["inputs"] = Value::Object(inputs);
            }
        }
        let changed = actions
            .run_chain(operation, &before, payload)
            .await
            .map_err(refusal)?;
        if let Some(new) = replacement(&handled, &body, changed.get("request")) {
            body = encode(&new, &mut parts.headers);
            handled = new;
        }
    }
    let response = next.run(Request::from_parts(parts, Body::from(body))).await;
    if after.is_empty() {
        return Ok(response);
    }
    let (mut parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, MAX_HOOKED_RESPONSE)
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "action_failed",
                format!("cannot show the response to its action targets: {e}"),
            )
        })?;
    let answered = body_value(&body);
    let payload = json!({
        "method": operation,
        "service": service,
        "user": user,
        "path": path,
        "request": handled,
        "status": parts.status.as_u16(),
        "response": answered,
    });
    let changed = actions
        .run_chain(operation, &after, payload)
        .await
        .map_err(refusal)?;
    let body = match replacement(&answered, &body, changed.get("response")) {
        Some(new) => encode(&new, &mut parts.headers),
        None => body,
    };
    Ok(Response::from_parts(parts, Body::from(body)))
}

/// A body as targets see it: JSON, other text as a string, binary or empty as null.
fn body_value(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(bytes).unwrap_or_else(|_| match std::str::from_utf8(bytes) {
        Ok(text) => Value::String(text.to_owned()),
        Err(_) => Value::Null,
    })
}

/// What a target chain's returned body means: a new body, or none when it is unchanged,
/// absent, or the original was binary (which targets cannot see, so cannot change).
fn replacement(original: &Value, bytes: &[u8], returned: Option<&Value>) -> Option<Value> {
    let binary = original.is_null() && !bytes.is_empty();
    returned.filter(|new| !binary && *new != original).cloned()
}

/// Encodes a changed body: a string as text, anything else as JSON, and sets its length.
fn encode(value: &Value, headers: &mut HeaderMap) -> Bytes {
    let bytes = match value {
        Value::String(text) => Bytes::from(text.clone().into_bytes()),
        other => {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            Bytes::from(other.to_string().into_bytes())
        }
    };
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    bytes
}

/// The answer when a target interrupted: its 4xx status, or 502 when it gave none.
fn refusal(interrupted: Interrupted) -> ApiError {
    let status = interrupted
        .status
        .filter(|s| (400..500).contains(s))
        .and_then(|s| StatusCode::from_u16(s).ok());
    match status {
        Some(status) => ApiError::new(
            status,
            "refused_by_action",
            format!(
                "refused by action target {}: {}",
                interrupted.target, interrupted.message
            ),
        ),
        None => ApiError::new(StatusCode::BAD_GATEWAY, "action_failed", interrupted.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_operation_table_comes_from_the_annotations() {
        let start = OPERATIONS
            .iter()
            .find(|op| op.name == START)
            .expect("Start is hooked");
        assert_eq!(
            (start.method.as_str(), start.route.as_str()),
            ("POST", "/v1/workflows/{id}/executions")
        );
        // The actions API is never hooked, so a broken rule can always be repaired.
        assert!(OPERATIONS.iter().all(|op| !op.route.starts_with("/v1/actions")));
        let mut names: Vec<&str> = OPERATIONS.iter().map(|op| op.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), OPERATIONS.len(), "an operation name is used twice");
        assert!(services().contains(&"v1.Executions"));
    }

    #[test]
    fn every_operation_has_its_own_operation_id() {
        let mut ids = Vec::new();
        for (route, item) in &super::super::openapi().paths.paths {
            for (method, operation) in super::super::operations(item) {
                let id = operation.operation_id.clone();
                ids.push(id.unwrap_or_else(|| panic!("{method} {route} has no operation_id")));
            }
        }
        let count = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), count, "operation ids repeat");
    }
}
