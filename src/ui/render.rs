//! Turning what a page shows into HTML: the templates (compiled once, every value
//! HTML-escaped), the context every page shares, error pages, the embedded assets, the
//! security headers of every response, and the words for times and durations.

use super::session::Viewer;
use crate::auth::Action;
use axum::extract::{Path, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use minijinja::{AutoEscape, Environment};
use serde_json::{json, Value};
use std::sync::LazyLock;
use time::OffsetDateTime;

/// Every template, by name.
const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("macros.html", include_str!("templates/macros.html")),
    ("sign_in.html", include_str!("templates/sign_in.html")),
    ("inbox.html", include_str!("templates/inbox.html")),
    ("inbox_items.html", include_str!("templates/inbox_items.html")),
    ("runs.html", include_str!("templates/runs.html")),
    ("run.html", include_str!("templates/run.html")),
    ("step.html", include_str!("templates/step.html")),
    ("workflows.html", include_str!("templates/workflows.html")),
    ("workflow.html", include_str!("templates/workflow.html")),
    ("plugins.html", include_str!("templates/plugins.html")),
    ("error.html", include_str!("templates/error.html")),
];

/// The templates, checked and compiled on first use.
static ENVIRONMENT: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    for (name, source) in TEMPLATES {
        if let Err(e) = env.add_template(name, source) {
            panic!("the shipped template {name} does not compile: {e:#}");
        }
    }
    env
});

/// Renders `template` with `context`.
pub(super) fn render(template: &str, context: &Value) -> Result<String, UiError> {
    ENVIRONMENT
        .get_template(template)
        .and_then(|t| t.render(minijinja::Value::from_serialize(context)))
        .map_err(|e| UiError::Internal(anyhow::anyhow!("rendering {template}: {e:#}")))
}

/// A whole page for `viewer`: `context` plus what the layout needs (who is signed in, the
/// CSRF token for forms, which sections the role may open).
pub(super) fn page(
    viewer: &Viewer,
    template: &str,
    title: &str,
    mut context: Value,
) -> Result<Response, UiError> {
    page_with_status(StatusCode::OK, viewer, template, title, &mut context)
}

/// [`page`] with another status (a form shown again with its errors).
pub(super) fn page_with_status(
    status: StatusCode,
    viewer: &Viewer,
    template: &str,
    title: &str,
    context: &mut Value,
) -> Result<Response, UiError> {
    let principal = &viewer.principal;
    let roles = crate::auth::describe_roles(&principal.roles);
    if let Some(object) = context.as_object_mut() {
        object.insert("title".into(), json!(title));
        object.insert("csrf".into(), json!(viewer.csrf));
        object.insert(
            "me".into(),
            json!({
                "name": principal.name,
                "role": roles,
                "groups": principal.groups,
                "local": principal.local,
            }),
        );
        object.insert(
            "nav".into(),
            json!({
                "inbox": principal.allows(Action::ReadInteractions),
                "runs": super::lists_runs(principal),
                "workflows": principal.allows(Action::ReadWorkflows),
                "plugins": principal.allows(Action::ReadPlugins),
            }),
        );
    }
    Ok((status, Html(render(template, context)?)).into_response())
}

/// Why a page cannot be shown. Each becomes a page of its own with the right status.
#[derive(Debug)]
pub(super) enum UiError {
    /// 404: missing, or not visible to this person (the same page either way).
    NotFound(String),
    /// 403: the role may not do this.
    Forbidden(String),
    /// 400: a malformed request (not a form's field errors, which show next to the field).
    BadRequest(String),
    /// 409: the run is not in a state that allows it.
    Conflict(String),
    Internal(anyhow::Error),
}

impl From<anyhow::Error> for UiError {
    fn from(error: anyhow::Error) -> Self {
        UiError::Internal(error)
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let (status, heading, message) = match self {
            UiError::NotFound(m) => (StatusCode::NOT_FOUND, "Not found", m),
            UiError::Forbidden(m) => (StatusCode::FORBIDDEN, "Not allowed", m),
            UiError::BadRequest(m) => (StatusCode::BAD_REQUEST, "Bad request", m),
            UiError::Conflict(m) => (StatusCode::CONFLICT, "Not possible now", m),
            UiError::Internal(e) => {
                tracing::error!("UI: {e:#}");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    format!("{e:#}"),
                )
            }
        };
        let context = json!({"title": heading, "heading": heading, "message": message});
        match render("error.html", &context) {
            Ok(html) => (status, Html(html)).into_response(),
            Err(_) => (status, message).into_response(),
        }
    }
}

/// The stylesheet and script, embedded.
const CSS: &str = include_str!("assets/weft.css");
const JS: &str = include_str!("assets/weft.js");

/// `GET /ui/assets/{file}`.
pub(super) async fn asset(Path(file): Path<String>) -> Response {
    let (body, content_type) = match file.as_str() {
        "weft.css" => (CSS, "text/css; charset=utf-8"),
        "weft.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return UiError::NotFound(format!("no asset {}", crate::limits::clip(&file))).into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            // Short: a new binary's assets reach browsers within minutes.
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// What every UI response may load and do: only this origin's own script and styles, no
/// inline script, no framing, forms posted only here.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Adds the security headers to every UI response; pages are never cached.
pub(super) async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let set = [
        ("content-security-policy", CONTENT_SECURITY_POLICY),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "same-origin"),
        ("x-frame-options", "DENY"),
    ];
    for (name, value) in set {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// A span of time in words: `45 s`, `12 min`, `3 h 20 min`, `2 d 4 h`.
pub(super) fn span(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86400 => match (s % 3600) / 60 {
            0 => format!("{} h", s / 3600),
            m => format!("{} h {m} min", s / 3600),
        },
        _ => match (s % 86400) / 3600 {
            0 => format!("{} d", s / 86400),
            h => format!("{} d {h} h", s / 86400),
        },
    }
}

/// How long ago `at` was: `3 min ago`.
pub(super) fn ago(at: OffsetDateTime) -> String {
    format!("{} ago", span((crate::run::now() - at).whole_seconds()))
}

/// When `at` comes: `in 2 h`, or `2 min ago` once past.
pub(super) fn until(at: OffsetDateTime) -> String {
    let left = (at - crate::run::now()).whole_seconds();
    if left >= 0 {
        format!("in {}", span(left))
    } else {
        format!("{} ago", span(-left))
    }
}

/// A time as shown: `2026-11-22 10:04:05 UTC`.
pub(super) fn when(at: OffsetDateTime) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    at.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_else(|_| crate::run::rfc3339(at))
}

/// A JSON value as shown in a page: pretty, indented.
pub(super) fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_as_words() {
        assert_eq!(span(5), "5 s");
        assert_eq!(span(125), "2 min");
        assert_eq!(span(3600), "1 h");
        assert_eq!(span(3600 + 20 * 60), "1 h 20 min");
        assert_eq!(span(2 * 86400 + 4 * 3600 + 59), "2 d 4 h");
        assert_eq!(span(-3), "0 s");
    }

    #[test]
    fn every_template_compiles() {
        for (name, _) in TEMPLATES {
            assert!(ENVIRONMENT.get_template(name).is_ok(), "{name}");
        }
    }
}
