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
use axum::{Json, Router};
use serde_json::Value;
use std::sync::{Arc, LazyLock};
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

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

/// What the document says besides the routes: title, the bearer scheme, the error body.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Weft",
        description = "Durable workflows with human approvals, extended by WebAssembly plugins."
    ),
    components(schemas(error::ErrorBody)),
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

/// Every API route, each registered at the method and path its `#[utoipa::path]` annotation
/// names, so the router and the document cannot disagree. `routes!` takes the handlers of
/// one path.
fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health))
        .routes(routes!(document))
        .routes(routes!(observe::scrape))
        .routes(routes!(plugins::upload, plugins::list))
        .routes(routes!(plugins::versions, plugins::delete))
        .routes(routes!(workflows::create, workflows::list))
        .routes(routes!(workflows::get_latest, workflows::delete))
        .routes(routes!(workflows::versions))
        .routes(routes!(workflows::get_version))
        .routes(routes!(workflows::publish))
        .routes(routes!(workflows::diff))
        .routes(routes!(bundles::export))
        .routes(routes!(bundles::import))
        .routes(routes!(executions::start, executions::list_for_workflow))
        .routes(routes!(executions::list_all))
        .routes(routes!(executions::purge))
        .routes(routes!(executions::resume))
        .routes(routes!(executions::get_by_id))
        .routes(routes!(executions::get, executions::delete))
        .routes(routes!(executions::get_state, executions::cancel))
        .routes(routes!(executions::logs))
        .routes(routes!(executions::export_logs))
        .routes(routes!(executions::statistics))
        .routes(routes!(executions::restart))
        .routes(routes!(executions::retry))
        .routes(routes!(
            interactions::get,
            interactions::answer,
            interactions::cancel
        ))
        .routes(routes!(interactions::list))
        .routes(routes!(interactions::signal))
        .routes(routes!(tokens::create, tokens::list))
        .routes(routes!(tokens::revoke))
        .routes(routes!(tokens::audit))
        .routes(routes!(operations::list_grants))
        .routes(routes!(
            operations::get_grant,
            operations::set_grant,
            operations::delete_grant
        ))
        .routes(routes!(operations::runners))
        .routes(routes!(events::send))
        .routes(routes!(schedules::create, schedules::list))
        .routes(routes!(schedules::get, schedules::delete))
        .routes(routes!(schedules::pause))
        .routes(routes!(schedules::resume))
        .routes(routes!(actions::create_target, actions::list_targets))
        .routes(routes!(
            actions::get_target,
            actions::update_target,
            actions::delete_target
        ))
        .routes(routes!(actions::set_execution))
        .routes(routes!(actions::search_executions))
        .routes(routes!(actions::conditions))
        .routes(routes!(actions::log))
        .routes(routes!(actions::outbox))
}

/// The OpenAPI document of this API, built once from the same routes the server serves.
pub fn openapi() -> &'static utoipa::openapi::OpenApi {
    static DOCUMENT: LazyLock<utoipa::openapi::OpenApi> = LazyLock::new(|| {
        let mut document = routes().into_openapi();
        for item in document.paths.paths.values_mut() {
            for (_, operation) in operations_mut(item) {
                common_errors(operation);
            }
        }
        document
    });
    &DOCUMENT
}

/// The operations of a path item with their HTTP methods (the ones this API uses).
fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = (&'static str, &mut Operation)> {
    [
        ("GET", &mut item.get),
        ("PUT", &mut item.put),
        ("POST", &mut item.post),
        ("DELETE", &mut item.delete),
        ("PATCH", &mut item.patch),
    ]
    .into_iter()
    .filter_map(|(method, operation)| operation.as_mut().map(|o| (method, o)))
}

/// The same, read-only.
pub(crate) fn operations(item: &PathItem) -> impl Iterator<Item = (&'static str, &Operation)> {
    [
        ("GET", &item.get),
        ("PUT", &item.put),
        ("POST", &item.post),
        ("DELETE", &item.delete),
        ("PATCH", &item.patch),
    ]
    .into_iter()
    .filter_map(|(method, operation)| operation.as_ref().map(|o| (method, o)))
}

/// Documents the errors the layers around every handler answer, so each annotation lists
/// only its own: 401/403 where a token is needed, 400 for a bad path, query or body, 408 and
/// 413 for bodies, 404 for paths with ids. All with [`error::ErrorBody`].
fn common_errors(operation: &mut Operation) {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    let public = operation
        .security
        .as_ref()
        .is_some_and(|s| s.iter().all(|r| *r == Default::default()));
    let has_params = operation.parameters.as_ref().is_some_and(|p| !p.is_empty());
    let has_path_params = operation.parameters.as_ref().is_some_and(|p| {
        p.iter()
            .any(|p| p.parameter_in == utoipa::openapi::path::ParameterIn::Path)
    });
    let has_body = operation.request_body.is_some();
    let mut wanted = Vec::new();
    if !public {
        wanted.push(("401", "No token, or a bad one"));
        wanted.push(("403", "The caller's roles do not allow this"));
    }
    if has_params || has_body {
        wanted.push(("400", "A bad path, query or body"));
    }
    if has_path_params {
        wanted.push(("404", "Not found (or not visible to the caller)"));
    }
    if has_body {
        wanted.push(("408", "The body arrived too slowly"));
        wanted.push(("413", "The body is larger than the limit"));
    }
    for (status, description) in wanted {
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| {
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("ErrorBody")))
                            .build(),
                    )
                    .build()
                    .into()
            });
    }
}

/// `GET /healthz`'s answer.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct Health {
    /// Always `ok`: the server answers.
    status: &'static str,
}

/// Whether the server answers; needs no token.
#[utoipa::path(get, path = "/healthz", tag = "meta", operation_id = "Meta.Health", security(()),
    responses((status = 200, description = "The server answers", body = Health)))]
async fn health() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// This document (OpenAPI 3.1); needs no token.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "meta", operation_id = "Meta.OpenApi", security(()),
    responses((status = 200, description = "The OpenAPI document", body = Object)))]
async fn document() -> Json<&'static utoipa::openapi::OpenApi> {
    Json(openapi())
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
    let (api, _) = routes().split_for_parts();
    api.fallback(|| async { ApiError::not_found("no such endpoint; see /v1/openapi.json") })
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
