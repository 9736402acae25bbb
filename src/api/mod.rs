//! The HTTP API (axum, JSON under `/v1`): plugins, workflows, executions, interactions and
//! signals, in the shapes of vRO, Keyfactor and SecMaster so their clients' bodies work.
//!
//! Handlers are thin: they turn requests into engine calls and results into JSON. They own
//! no state beyond [`AppState`] and never touch the store's tables or WASM directly.

mod actions;
mod auth;
mod bundles;
mod error;
mod events;
mod executions;
mod extract;
mod hooks;
mod interactions;
mod observe;
mod operations;
mod params;
mod plugins;
mod schedules;
mod tokens;
mod views;
mod workflows;

pub use auth::USER_HEADER;
pub use bundles::parse_rename;
pub use error::ApiError;

use crate::engine::Engine;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::Value;
use std::sync::Arc;
use utoipa::OpenApi;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    /// Whether callers without a token are local admins while no token exists.
    local_mode: bool,
    /// Whether `GET /metrics` is served without a token.
    metrics_without_token: bool,
}

/// Server settings.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Body size, connection count and timeouts (see [`crate::limits`]).
    pub limits: crate::limits::Limits,
    /// Local mode (see [`auth`]): only for a server listening on loopback.
    pub local_mode: bool,
    /// Serve `GET /metrics` without a token.
    pub metrics_without_token: bool,
    /// Browser session cookies carry `Secure` (a server reached over the network).
    pub secure_cookies: bool,
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
        executions::retry,
        executions::purge,
        executions::resume,
        interactions::get,
        interactions::answer,
        interactions::cancel,
        interactions::list,
        interactions::signal, tokens::create, tokens::list, tokens::revoke, tokens::audit,
        actions::create_target, actions::list_targets, actions::get_target, actions::update_target,
        actions::delete_target, actions::set_execution, actions::search_executions,
        actions::conditions, actions::log, actions::outbox,
        operations::list_grants, operations::get_grant, operations::set_grant,
        operations::delete_grant, operations::runners,
        events::send,
        schedules::create, schedules::list, schedules::get, schedules::pause, schedules::resume,
        schedules::delete,
    ),
    components(schemas(error::ErrorBody, interactions::Signal, tokens::NewToken, crate::auth::Role,
        crate::plugins::grants::GrantSpec, events::EventBody, crate::schedule::ScheduleDefinition,
        crate::schedule::Overlap, crate::schedule::CatchUp)),
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

/// Every route: the API under `/v1`, and the browser UI ([`crate::ui`]) at `/` and `/ui/`.
pub fn router(engine: Engine, options: &Options) -> Router {
    let ui = crate::ui::router(
        engine.clone(),
        crate::ui::Options {
            local_mode: options.local_mode,
            secure_cookies: options.secure_cookies,
            session_lifetime: options.limits.session_lifetime,
        },
    );
    let state = AppState {
        engine,
        local_mode: options.local_mode,
        metrics_without_token: options.metrics_without_token,
    };
    let executions = "/v1/workflows/{id}/executions/{eid}";
    Router::new()
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/v1/openapi.json", get(|| async { Json(openapi()) }))
        .route("/metrics", get(observe::scrape))
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
        .route("/v1/executions/purge", post(executions::purge))
        .route("/v1/executions/resume", post(executions::resume))
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
        .route(&format!("{executions}/retry"), post(executions::retry))
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
        .route("/v1/grants", get(operations::list_grants))
        .route(
            "/v1/grants/{plugin}",
            get(operations::get_grant)
                .put(operations::set_grant)
                .delete(operations::delete_grant),
        )
        .route("/v1/runners", get(operations::runners))
        .route("/v1/events", post(events::send))
        .route("/v1/schedules", post(schedules::create).get(schedules::list))
        .route(
            "/v1/schedules/{id}",
            get(schedules::get).delete(schedules::delete),
        )
        .route("/v1/schedules/{id}/pause", post(schedules::pause))
        .route("/v1/schedules/{id}/resume", post(schedules::resume))
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
        // Inside the body reader, so hooks read bodies under its limits; inside auth, so they
        // know the caller.
        .layer(axum::middleware::from_fn_with_state(state.clone(), hooks::run))
        .layer(DefaultBodyLimit::max(options.limits.body_bytes()))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        // The UI has its own sessions and audit; it shares the body limits below.
        .merge(ui)
        .layer(axum::middleware::from_fn_with_state(
            BodyLimits::from(&options.limits),
            read_body,
        ))
        // Outermost, so it sees every answer, refused bodies and tokens included.
        .layer(axum::middleware::from_fn(observe::request))
        .with_state(state)
}

/// Most bytes of a refused body read and dropped before the connection is closed.
const DISCARD_BYTES: usize = 16 << 20;

/// Reads and drops up to `max` bytes of `body`, for at most `timeout`.
async fn discard(body: axum::body::Body, max: usize, timeout: std::time::Duration) {
    use http_body_util::BodyExt;
    let drain = async {
        let mut body = body;
        let mut seen = 0;
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, |d| d.len());
            if seen > max {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(timeout, drain).await;
}

/// What [`read_body`] enforces.
#[derive(Clone, Copy)]
struct BodyLimits {
    bytes: usize,
    timeout: std::time::Duration,
}

impl BodyLimits {
    fn from(limits: &crate::limits::Limits) -> BodyLimits {
        BodyLimits {
            bytes: limits.body_bytes(),
            timeout: limits.body_timeout,
        }
    }
}

/// Reads every request body before anything else runs: a `Content-Length` above the limit
/// is refused (413) before a byte of the body is read, a body that grows past it is cut off
/// (413), and a client that sends its body too slowly gets 408. Handlers then see the whole
/// body in memory.
async fn read_body(
    axum::extract::State(limits): axum::extract::State<BodyLimits>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    use http_body_util::BodyExt;
    let too_large = || {
        ApiError::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!(
                "the body is larger than the server's limit of {} MiB (limits.body_mb, weft serve --body-limit-mb)",
                limits.bytes >> 20
            ),
        )
        .into_response()
    };
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let (parts, body) = request.into_parts();
    if declared.is_some_and(|n| n > limits.bytes as u64) {
        // Refused before the body is read. It is still taken off the wire (and dropped, up to
        // a bound) so that the client, busy sending it, gets to read the answer.
        tokio::spawn(discard(body, DISCARD_BYTES, limits.timeout));
        return too_large();
    }
    let limited = http_body_util::Limited::new(body, limits.bytes);
    let bytes = match tokio::time::timeout(limits.timeout, limited.collect()).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => return too_large(),
        Ok(Err(e)) => return ApiError::bad_request(format!("cannot read the body: {e}")).into_response(),
        Err(_) => {
            return ApiError::new(
                axum::http::StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                format!(
                    "the body did not arrive within {} (limits.body_timeout)",
                    humantime::format_duration(limits.timeout)
                ),
            )
            .into_response()
        }
    };
    next.run(axum::extract::Request::from_parts(
        parts,
        axum::body::Body::from(bytes),
    ))
    .await
}

/// How long requests still being answered (such as `?wait=true` starts) may take once the
/// server is asked to stop.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// How long to pause accepting after the system refused a connection (no file descriptors
/// left): the connections being served free theirs.
const ACCEPT_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);

/// Serves the API on `listener` until `stop` completes, then lets requests under way finish
/// for up to [`STOP_GRACE`].
///
/// At most `limits.max_connections` connections are served at once (others wait in the
/// listen queue); a connection that does not deliver a request head within
/// `limits.idle_timeout` (slow headers, or idle between kept-alive requests) is closed.
/// Accepted sockets get TCP_NODELAY so small responses are not held back by delayed ACKs.
pub async fn serve(
    engine: Engine,
    listener: tokio::net::TcpListener,
    options: Options,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use tower::ServiceExt;
    let app = router(engine, &options);
    let connections = Arc::new(tokio::sync::Semaphore::new(connection_cap(
        options.limits.max_connections,
    )));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(options.limits.idle_timeout)
        .max_buf_size(MAX_HEAD_BYTES);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(stop);
    loop {
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => permit?,
            () = &mut stop => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!("cannot accept a connection: {e}");
                    tokio::time::sleep(ACCEPT_PAUSE).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!("cannot set TCP_NODELAY: {e}");
        }
        let service = app.clone().map_request(
            move |mut request: axum::extract::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                request.map(axum::body::Body::new)
            },
        );
        let connection = http.serve_connection(
            TokioIo::new(tcp),
            hyper_util::service::TowerToHyperService::new(service),
        );
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("connection from {peer} ended: {e}");
            }
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(STOP_GRACE) => {}
    }
    Ok(())
}

/// Descriptors kept free for the database, plugin compiles and the like.
const RESERVED_FDS: u64 = 128;

/// How many connections may be served at once: `wanted`, if the process may open that many
/// files. Every connection holds a descriptor, so the soft open-files limit is first raised
/// to the hard one; past it, accepting would fail, so the cap is lowered (with a warning).
fn connection_cap(wanted: usize) -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return wanted;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    let usable = usize::try_from(limit.rlim_cur.saturating_sub(RESERVED_FDS)).unwrap_or(usize::MAX);
    if wanted > usable {
        tracing::warn!(
            "limits.max_connections is {wanted} but this process may open only {} files; serving at most {usable} connections",
            limit.rlim_cur
        );
        return usable.max(1);
    }
    wanted
}

/// The most bytes of a request head (request line and headers) read before 431.
const MAX_HEAD_BYTES: usize = 128 << 10;

/// A JSON body, or `{}` when there is none. Clients such as `curl -d '{}'` send JSON with
/// a form content type, so the type is not checked here.
fn json_or_empty(body: &[u8]) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(serde_json::Map::new()));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))
}
