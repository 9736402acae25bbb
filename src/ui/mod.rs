//! The browser UI, served by `weft serve` at `/` and under `/ui/`: an approver's inbox,
//! answer forms drawn from interaction fields, run lists and run pages (step graph,
//! timeline, answers, live log), and the workflows and plugins.
//!
//! Pages are rendered on the server from minijinja templates shipped in the binary (trusted
//! templates, every value HTML-escaped), with one small plain JavaScript file for what must
//! happen without a reload (live inbox and log, countdowns, the JSON field check). Every
//! asset is embedded: no CDN, nothing fetched from elsewhere, so it works offline.
//!
//! It reads and changes everything through the [`Engine`] with the same checks as the API:
//! roles from [`crate::auth`], an approver sees only runs assigned to them (any other is a
//! not-found page), and answers take [`Engine::answer`]. It never touches the store. Who the
//! browser is comes from a server-side session ([`session`]); every form post carries the
//! session's CSRF token and must come from this origin. This module owns the pages and their
//! sessions' cookies; it must not decide anything about runs itself.

mod answer;
mod graph;
mod live;
mod pages;
mod render;
mod session;

use crate::engine::Engine;
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;
use std::time::Duration;

/// How the UI is served.
#[derive(Clone, Debug)]
pub struct Options {
    /// Local mode (a server on loopback while no token exists): no sign-in, everyone is a
    /// local admin named by a name field (or `X-Weft-User`).
    pub local_mode: bool,
    /// Session cookies carry `Secure`: the server is reached over the network (behind TLS).
    pub secure_cookies: bool,
    /// How long a session lasts after signing in.
    pub session_lifetime: Duration,
}

/// What every page handler shares.
#[derive(Clone)]
struct UiState {
    engine: Engine,
    options: Arc<Options>,
}

/// Whether `role` gets the run list. Approvers read only the runs assigned to them, which
/// their inbox and its links already show; the list is for operators, authors and admins.
fn lists_runs(principal: &crate::auth::Principal) -> bool {
    principal.allows(crate::auth::Action::ReadRuns) && !principal.reads_assigned_only()
}

/// Every page of the UI, with its session middleware and security headers, for the one
/// router of [`crate::api`] to merge.
pub fn router<S: Clone + Send + Sync + 'static>(engine: Engine, options: Options) -> Router<S> {
    let state = UiState {
        engine,
        options: Arc::new(options),
    };
    Router::new()
        .route("/", get(pages::home))
        .route(
            session::SIGN_IN,
            get(session::sign_in_page).post(session::sign_in),
        )
        .route("/ui/sign-out", post(session::sign_out))
        .route("/ui/name", post(session::rename))
        .route("/ui/inbox", get(pages::inbox))
        .route("/ui/inbox/events", get(live::inbox))
        .route("/ui/runs", get(pages::runs))
        .route("/ui/runs/{id}", get(pages::run))
        .route("/ui/runs/{id}/events", get(live::run))
        .route("/ui/runs/{id}/log.txt", get(pages::log_file))
        .route("/ui/runs/{id}/cancel", post(answer::cancel))
        .route("/ui/runs/{id}/restart", post(answer::restart))
        .route(
            "/ui/runs/{id}/steps/{step}",
            get(pages::step).post(answer::answer),
        )
        .route("/ui/workflows", get(pages::workflows))
        .route("/ui/workflows/{id}", get(pages::workflow))
        .route("/ui/plugins", get(pages::plugins))
        .route("/ui/assets/{file}", get(render::asset))
        .route("/ui/{*rest}", get(pages::not_found).post(pages::not_found))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            session::authenticate,
        ))
        .layer(axum::middleware::from_fn(render::security_headers))
        .with_state(state)
}
