//! Every request as an operator sees it: one log line (method, matched route, status,
//! latency and who called, never the token), the HTTP metrics, and with traces on a span
//! that continues the caller's W3C `traceparent`. Also `GET /metrics`.

use super::auth::Caller;
use super::error::ApiError;
use super::AppState;
use crate::auth::{Action, Principal};
use crate::telemetry::metrics::{metrics, Backlog, RequestLabels, RouteLabels, CONTENT_TYPE};
use crate::telemetry::traces;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use opentelemetry::trace::TraceContextExt as _;
use std::time::Instant;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The route of a path no route matched: one series for every such path.
const UNMATCHED: &str = "(unmatched)";

/// Logs, counts and (with traces on) traces the request.
pub async fn request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED, MatchedPath::as_str)
        .to_owned();
    let span = if traces::enabled() {
        let span = tracing::info_span!(
            "http.request",
            otel.name = %format_args!("{method} {route}"),
            otel.kind = "server",
            http.request.method = %method,
            http.route = %route,
            http.response.status_code = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        let incoming = traces::extract(request.headers());
        if incoming.span().span_context().is_valid() {
            let _ = span.set_parent(incoming);
        }
        span
    } else {
        tracing::Span::none()
    };
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    span.record("http.response.status_code", status);
    if response.status().is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    let caller = response.extensions_mut().remove::<Principal>();
    let user = caller.as_ref().map(|p| p.name.as_str());
    let token_id = caller.as_ref().and_then(|p| p.token.as_deref());
    tracing::info!(
        method = %method,
        route = %route,
        status,
        latency_ms = elapsed.as_secs_f64() * 1000.0,
        user,
        token_id,
        "request"
    );
    let registry = metrics();
    registry
        .http_requests
        .get_or_create(&RequestLabels {
            method: method.to_string(),
            route: route.clone(),
            status,
        })
        .inc();
    registry
        .http_duration
        .get_or_create(&RouteLabels { route })
        .observe(elapsed.as_secs_f64());
    response
}

/// `GET /metrics`: the metrics in the text format Prometheus scrapes. Needs a role that may
/// read them (admin, operator) unless the server was started with `--metrics-without-token`.
#[utoipa::path(get, path = "/metrics", tag = "meta", operation_id = "Meta.Metrics",
    responses((status = 200, description = "Prometheus text format", body = String,
            content_type = "application/openmetrics-text"),
        (status = 401, description = "No or a bad token", body = super::error::ErrorBody),
        (status = 403, description = "The role may not read metrics", body = super::error::ErrorBody)))]
pub async fn scrape(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
) -> Result<Response, ApiError> {
    if !state.metrics_without_token {
        caller?.require(Action::ReadMetrics)?;
    }
    let backlog = Backlog {
        waiting_runs: state.engine.waiting_count().await?,
        outbox: state.engine.outbox_count().await?,
    };
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], metrics().encode(backlog)).into_response())
}
