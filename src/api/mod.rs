//! The HTTP API (axum, JSON under `/v1`): plugins, workflows, executions, interactions and
//! signals, in the shapes of vRO, Keyfactor and SecMaster so their clients' bodies work.
//!
//! Handlers are thin: they turn requests into engine calls and results into JSON. They own
//! no state beyond [`AppState`] and never touch the store's tables or WASM directly.

mod actions;
mod auth;
mod bundles;
mod error;
mod executions;
mod extract;
mod hooks;
mod interactions;
mod params;
mod plugins;
mod tokens;
mod views;
mod workflows;

pub use auth::USER_HEADER;
pub use bundles::parse_rename;
pub use error::ApiError;

use crate::engine::Engine;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::{Json, Router};
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::Arc;
use utoipa::OpenApi;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    /// Whether callers without a token are local admins while no token exists.
    local_mode: bool,
}

/// Server settings.
#[derive(Clone, Debug)]
pub struct Options {
    /// Largest request body accepted; larger ones get 413.
    pub body_limit: usize,
    /// Local mode (see [`auth`]): only for a server listening on loopback.
    pub local_mode: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            body_limit: 50 << 20,
            local_mode: false,
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Weft",
        description = "Durable workflows with human approvals, extended by WebAssembly plugins."
    ),
    paths(
        plugins::upload,
        plugins::list,
        plugins::versions,
        plugins::delete,
        workflows::create,
        workflows::list,
        workflows::get_latest,
        workflows::versions,
        workflows::get_version,
        workflows::publish,
        workflows::diff,
        bundles::export,
        bundles::import,
        workflows::delete,
        executions::start,
        executions::list_for_workflow,
        executions::list_all,
        executions::get,
        executions::get_by_id,
        executions::get_state,
        executions::cancel,
        executions::delete,
        executions::logs,
        executions::export_logs,
        executions::statistics,
        executions::restart,
        interactions::get,
        interactions::answer,
        interactions::cancel,
        interactions::list,
        interactions::signal, tokens::create, tokens::list, tokens::revoke, tokens::audit,
        actions::create_target, actions::list_targets, actions::get_target, actions::update_target,
        actions::delete_target, actions::set_execution, actions::search_executions,
        actions::conditions, actions::log, actions::outbox,
    ),
    components(schemas(error::ErrorBody, interactions::Signal, tokens::NewToken, crate::auth::Role)),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
struct ApiDoc;

/// Declares the bearer-token scheme every operation uses.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The OpenAPI document of this API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// Every route.
pub fn router(engine: Engine, options: &Options) -> Router {
    let state = AppState {
        engine,
        local_mode: options.local_mode,
    };
    let executions = "/v1/workflows/{id}/executions/{eid}";
    Router::new()
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/v1/openapi.json", get(|| async { Json(openapi()) }))
        .route("/v1/plugins", post(plugins::upload).get(plugins::list))
        .route(
            "/v1/plugins/{name}",
            get(plugins::versions).delete(plugins::delete),
        )
        .route("/v1/workflows", post(workflows::create).get(workflows::list))
        .route(
            "/v1/workflows/{id}",
            get(workflows::get_latest).delete(workflows::delete),
        )
        .route("/v1/workflows/{id}/versions", get(workflows::versions))
        .route(
            "/v1/workflows/{id}/versions/{version}",
            get(workflows::get_version),
        )
        .route(
            "/v1/workflows/{id}/versions/{version}/publish",
            post(workflows::publish),
        )
        .route("/v1/workflows/{id}/versions/{a}/diff/{b}", get(workflows::diff))
        .route("/v1/workflows/export", post(bundles::export))
        .route("/v1/workflows/import", post(bundles::import))
        .route(
            "/v1/workflows/{id}/executions",
            post(executions::start).get(executions::list_for_workflow),
        )
        .route("/v1/executions", get(executions::list_all))
        .route("/v1/executions/{eid}", get(executions::get_by_id))
        .route(executions, get(executions::get).delete(executions::delete))
        .route(
            &format!("{executions}/state"),
            get(executions::get_state).delete(executions::cancel),
        )
        .route(&format!("{executions}/logs"), get(executions::logs))
        .route(&format!("{executions}/logs/export"), get(executions::export_logs))
        .route(&format!("{executions}/statistics"), get(executions::statistics))
        .route(&format!("{executions}/restart"), post(executions::restart))
        .route(
            &format!("{executions}/interaction"),
            get(interactions::get)
                .post(interactions::answer)
                .delete(interactions::cancel),
        )
        .route("/v1/interactions", get(interactions::list))
        .route("/v1/instances/{eid}/signals", post(interactions::signal))
        .route("/v1/tokens", post(tokens::create).get(tokens::list))
        .route("/v1/tokens/{id}", axum::routing::delete(tokens::revoke))
        .route("/v1/audit", get(tokens::audit))
        .route(
            "/v1/actions/targets",
            post(actions::create_target).get(actions::list_targets),
        )
        .route(
            "/v1/actions/targets/{id}",
            get(actions::get_target)
                .put(actions::update_target)
                .delete(actions::delete_target),
        )
        .route(
            "/v1/actions/executions",
            axum::routing::put(actions::set_execution),
        )
        .route("/v1/actions/executions/search", post(actions::search_executions))
        .route("/v1/actions/conditions", get(actions::conditions))
        .route("/v1/actions/log", get(actions::log))
        .route("/v1/actions/outbox", get(actions::outbox))
        .fallback(|| async { ApiError::not_found("no such endpoint; see /v1/openapi.json") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not take that method; see /v1/openapi.json",
            )
        })
        // Inside the body limit, so hooks read bodies under it; inside auth, so they know the caller.
        .layer(axum::middleware::from_fn_with_state(state.clone(), hooks::run))
        .layer(DefaultBodyLimit::max(options.body_limit))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        .with_state(state)
}

/// How long requests still being answered (such as `?wait=true` starts) may take once the
/// server is asked to stop.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Serves the API on `listener` until `stop` completes, then lets requests under way finish
/// for up to [`STOP_GRACE`]. Accepted sockets get TCP_NODELAY so small responses are not held
/// back by delayed ACKs.
pub async fn serve(
    engine: Engine,
    listener: tokio::net::TcpListener,
    options: Options,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let app = router(engine, &options);
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!("cannot set TCP_NODELAY: {e}");
        }
    });
    let stopping = Arc::new(tokio::sync::Notify::new());
    let told = stopping.clone();
    let server = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async move {
            stop.await;
            told.notify_one();
        });
    tokio::select! {
        served = server => served?,
        () = async {
            stopping.notified().await;
            tokio::time::sleep(STOP_GRACE).await;
        } => {}
    }
    Ok(())
}

/// A JSON body, or `{}` when there is none. Clients such as `curl -d '{}'` send JSON with
/// a form content type, so the type is not checked here.
fn json_or_empty(body: &[u8]) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(serde_json::Map::new()));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))
}
