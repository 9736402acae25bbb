//! Who the browser is: sign-in with an API token pasted once, a server-side session named by
//! an `HttpOnly`, `SameSite=Strict` cookie, sign-out, and the checks every form post passes
//! (same origin, and the session's CSRF token in a hidden field).
//!
//! Sessions live in the store through the engine ([`Engine::open_session`]), so every runner
//! sharing the database knows them and none is lost on a restart; only the hash of a
//! session's id is stored. A session ends when it expires (`limits.session_lifetime`), on
//! sign-out, or when its token is revoked (checked on every request). In local mode (a
//! server on loopback while no token exists) a session is opened without a token on the
//! first visit, for its CSRF token and the name the person gives.

use super::render::{page_with_status, render, UiError};
use super::UiState;
use crate::auth::{Principal, Role};
use crate::engine::Engine;
use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use serde_json::json;

/// The sign-in page.
pub(super) const SIGN_IN: &str = "/ui/sign-in";

/// The cookie holding the session id.
const SESSION_COOKIE: &str = "weft_session";

/// The cookie holding the sign-in form's one-time token (there is no session yet).
const SIGN_IN_COOKIE: &str = "weft_sign_in";

/// The hidden form field every post carries.
pub(super) const CSRF_FIELD: &str = "csrf";

/// Who is looking: the person, their session and its CSRF token.
#[derive(Clone, Debug)]
pub(super) struct Viewer {
    pub principal: Principal,
    /// The session id (from the cookie), to end it on sign-out.
    pub session: String,
    pub csrf: String,
}

impl<S: Send + Sync> FromRequestParts<S> for Viewer {
    type Rejection = UiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, UiError> {
        parts
            .extensions
            .get::<Viewer>()
            .cloned()
            .ok_or_else(|| UiError::Internal(anyhow::anyhow!("a page was reached without a session")))
    }
}

/// A form post's fields, in order (a name may repeat).
pub(super) type Fields = Vec<(String, String)>;

/// The first value of field `name`.
pub(super) fn field<'a>(fields: &'a Fields, name: &str) -> Option<&'a str> {
    fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// The value of cookie `name`.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

/// A `Set-Cookie` value for this server: HttpOnly, SameSite=Strict, and Secure unless it
/// serves on loopback.
fn set_cookie(ui: &UiState, name: &str, value: &str, path: &str, max_age: u64) -> HeaderValue {
    let secure = if ui.options.secure_cookies { "; Secure" } else { "" };
    let text = format!("{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}");
    HeaderValue::from_str(&text).expect("cookie values are hex")
}

/// Whether a post comes from a page of this server: the browser's `Sec-Fetch-Site` (when
/// sent) says same-origin, and its `Origin` (when sent) is this host.
fn same_origin(headers: &HeaderMap) -> bool {
    let text = |name: header::HeaderName| headers.get(name).map(|v| v.to_str().unwrap_or("?"));
    if let Some(site) = text(header::HeaderName::from_static("sec-fetch-site")) {
        if site != "same-origin" && site != "none" {
            return false;
        }
    }
    match text(header::ORIGIN) {
        None => true,
        Some(origin) => {
            let host = text(header::HOST).unwrap_or("");
            let without_scheme = origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"));
            without_scheme.is_some_and(|o| !host.is_empty() && o == host)
        }
    }
}

/// Compares two secrets in time independent of where they differ.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A random one-time value for the sign-in form.
fn nonce() -> Result<String, UiError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| UiError::Internal(anyhow::anyhow!("no randomness: {e}")))?;
    Ok(hex::encode(bytes))
}

/// The name a local-mode request gives with `X-Weft-User`.
fn header_name(headers: &HeaderMap) -> Option<String> {
    headers
        .get(crate::api::USER_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| valid_name(v))
        .map(str::to_owned)
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && !name.chars().any(char::is_control)
}

fn local_principal(name: String) -> Principal {
    Principal {
        name,
        roles: vec![Role::Admin],
        groups: Vec::new(),
        token: None,
        local: true,
    }
}

/// Whether the server is in local mode now: on loopback, and no token exists yet.
async fn local_mode(ui: &UiState) -> Result<bool, UiError> {
    Ok(ui.options.local_mode && !ui.engine.has_tokens().await?)
}

/// The viewer of a request, and a cookie to set when a local-mode session was just opened.
async fn resolve(
    ui: &UiState,
    headers: &HeaderMap,
) -> Result<Option<(Viewer, Option<HeaderValue>)>, UiError> {
    if let Some(id) = cookie(headers, SESSION_COOKIE) {
        if let Some((session, token)) = ui.engine.session(&id).await? {
            let principal = match token {
                Some(token) => Some(Principal::of_token(token)),
                None if local_mode(ui).await? => {
                    Some(local_principal(header_name(headers).unwrap_or(session.name)))
                }
                None => {
                    // A token exists now: local-mode sessions are over.
                    ui.engine.end_session(&id).await?;
                    None
                }
            };
            if let Some(principal) = principal {
                let viewer = Viewer {
                    principal,
                    session: id,
                    csrf: session.csrf,
                };
                return Ok(Some((viewer, None)));
            }
        }
    }
    if local_mode(ui).await? {
        let name = header_name(headers).unwrap_or_else(|| "anonymous".to_owned());
        let lifetime = ui.options.session_lifetime;
        let (id, session) = ui.engine.open_session(None, &name, lifetime).await?;
        let cookie = set_cookie(ui, SESSION_COOKIE, &id, "/", lifetime.as_secs());
        let viewer = Viewer {
            principal: local_principal(name),
            session: id,
            csrf: session.csrf,
        };
        return Ok(Some((viewer, Some(cookie))));
    }
    Ok(None)
}

/// Reads a form post's fields, leaving the request as it was for the handler.
async fn read_fields(request: Request) -> Result<(Request, Fields), UiError> {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .map_err(|e| UiError::BadRequest(format!("cannot read the form: {e}")))?;
    let probe = Request::from_parts(parts.clone(), Body::from(bytes.clone()));
    let fields = match Form::<Fields>::from_request(probe, &()).await {
        Ok(Form(fields)) => fields,
        Err(_) => Vec::new(),
    };
    Ok((Request::from_parts(parts, Body::from(bytes)), fields))
}

/// Finds who is asking, refuses posts that are cross-origin or lack the session's CSRF
/// token, runs the page, and records every post in the audit log.
pub(super) async fn authenticate(State(ui): State<UiState>, mut request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let post = method == Method::POST;
    // `/` only redirects to the inbox, which asks for a session itself.
    let public = path == "/" || path.starts_with("/ui/assets/") || path == SIGN_IN;
    let (principal, response) = if public {
        (None, next.run(request).await)
    } else {
        match resolve(&ui, request.headers()).await {
            Err(e) => (None, e.into_response()),
            Ok(None) => (None, signed_out(&request)),
            Ok(Some((viewer, new_cookie))) => {
                let principal = viewer.principal.clone();
                let refused = if post {
                    match read_fields(request).await {
                        Ok((rebuilt, fields)) => {
                            request = rebuilt;
                            check_post(request.headers(), &fields, &viewer.csrf)
                        }
                        Err(e) => return e.into_response(),
                    }
                } else {
                    None
                };
                let mut response = match refused {
                    Some(refusal) => refusal,
                    None => {
                        request.extensions_mut().insert(viewer);
                        next.run(request).await
                    }
                };
                if let Some(cookie) = new_cookie {
                    response.headers_mut().append(header::SET_COOKIE, cookie);
                }
                (Some(principal), response)
            }
        }
    };
    if post {
        let entry = crate::auth::audit_entry(
            principal.as_ref(),
            &format!("POST {path}"),
            &path,
            response.status().as_u16(),
        );
        ui.engine.record_audit(&entry);
    }
    response
}

/// `Some(refusal)` unless a post is same-origin and carries the session's CSRF token.
fn check_post(headers: &HeaderMap, fields: &Fields, csrf: &str) -> Option<Response> {
    let refuse = |why: &str| {
        Some(
            UiError::Forbidden(format!(
                "{why}. Go back, reload the page and send the form again."
            ))
            .into_response(),
        )
    };
    if !same_origin(headers) {
        return refuse("This form was sent from another site, so it was refused");
    }
    match field(fields, CSRF_FIELD) {
        Some(token) if same_secret(token, csrf) => None,
        _ => refuse("The form lacks this session's security token (CSRF), so it was refused"),
    }
}

/// The answer to a request without a session: pages go to the sign-in page (and come back
/// after), live streams and posts are refused.
fn signed_out(request: &Request) -> Response {
    let path = request.uri().path();
    if request.method() == Method::GET && !path.ends_with("/events") {
        let back = request
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/ui/inbox");
        let query = serde_urlencoded_next(back);
        return Redirect::to(&format!("{SIGN_IN}?{query}")).into_response();
    }
    let context = json!({
        "title": "Signed out",
        "heading": "Signed out",
        "message": "Your session has ended (signed out, expired, or its token was revoked). Sign in again.",
        "sign_in": true,
    });
    let html = render("error.html", &context).unwrap_or_default();
    (StatusCode::UNAUTHORIZED, Html(html)).into_response()
}

/// `next=PATH` for the sign-in page's query.
fn serde_urlencoded_next(path: &str) -> String {
    let mut query = String::from("next=");
    for byte in path.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                query.push(byte as char)
            }
            _ => query.push_str(&format!("%{byte:02X}")),
        }
    }
    query
}

/// Where to go after signing in: a path of this UI, never another site.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(next) if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') => {
            next.to_owned()
        }
        _ => "/ui/inbox".to_owned(),
    }
}

#[derive(serde::Deserialize)]
pub(super) struct NextQuery {
    next: Option<String>,
}

/// `GET /ui/sign-in`: the form to paste a token into.
pub(super) async fn sign_in_page(
    State(ui): State<UiState>,
    axum::extract::Query(query): axum::extract::Query<NextQuery>,
) -> Result<Response, UiError> {
    if local_mode(&ui).await? {
        return Ok(Redirect::to("/ui/inbox").into_response());
    }
    sign_in_form(&ui, StatusCode::OK, &safe_next(query.next.as_deref()), None)
}

fn sign_in_form(
    ui: &UiState,
    status: StatusCode,
    next: &str,
    error: Option<&str>,
) -> Result<Response, UiError> {
    let nonce = nonce()?;
    let context = json!({"title": "Sign in", "csrf": nonce, "next": next, "error": error});
    let mut response = (status, Html(render("sign_in.html", &context)?)).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(ui, SIGN_IN_COOKIE, &nonce, SIGN_IN, 3600),
    );
    Ok(response)
}

/// `POST /ui/sign-in`: checks the token and opens a session.
pub(super) async fn sign_in(
    State(ui): State<UiState>,
    headers: HeaderMap,
    Form(fields): Form<Fields>,
) -> Result<Response, UiError> {
    let next = safe_next(field(&fields, "next"));
    let nonce_ok = match (cookie(&headers, SIGN_IN_COOKIE), field(&fields, CSRF_FIELD)) {
        (Some(cookie), Some(sent)) => same_secret(&cookie, sent),
        _ => false,
    };
    if !same_origin(&headers) || !nonce_ok {
        return sign_in_form(
            &ui,
            StatusCode::FORBIDDEN,
            &next,
            Some("The sign-in form was refused (sent from another site, or too old). Try again."),
        );
    }
    let secret = field(&fields, "token").unwrap_or_default().trim();
    let token = match crate::auth::well_formed(secret) {
        true => ui.engine.token(secret).await?,
        false => None,
    };
    let Some(token) = token.filter(|t| t.revoked_at.is_none()) else {
        let why = if secret.is_empty() {
            "Paste your API token."
        } else if !crate::auth::well_formed(secret) {
            "That is not an API token: tokens look like weft_ followed by 64 hex digits."
        } else {
            "This token is unknown or was revoked."
        };
        return sign_in_form(&ui, StatusCode::UNAUTHORIZED, &next, Some(why));
    };
    let lifetime = ui.options.session_lifetime;
    let (id, _) = ui
        .engine
        .open_session(Some(secret), &token.name, lifetime)
        .await?;
    let mut response = Redirect::to(&next).into_response();
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        set_cookie(&ui, SESSION_COOKIE, &id, "/", lifetime.as_secs()),
    );
    headers.append(
        header::SET_COOKIE,
        set_cookie(&ui, SIGN_IN_COOKIE, "", SIGN_IN, 0),
    );
    Ok(response)
}

/// `POST /ui/sign-out`: ends the session.
pub(super) async fn sign_out(State(ui): State<UiState>, viewer: Viewer) -> Result<Response, UiError> {
    end(&ui.engine, &viewer).await?;
    let mut response = Redirect::to(SIGN_IN).into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, set_cookie(&ui, SESSION_COOKIE, "", "/", 0));
    Ok(response)
}

async fn end(engine: &Engine, viewer: &Viewer) -> Result<(), UiError> {
    Ok(engine.end_session(&viewer.session).await?)
}

/// `POST /ui/name`: in local mode, who this browser is.
pub(super) async fn rename(
    State(ui): State<UiState>,
    viewer: Viewer,
    Form(fields): Form<Fields>,
) -> Result<Response, UiError> {
    if !viewer.principal.local {
        return Err(UiError::Forbidden(
            "names come from API tokens on this server; sign in with yours".into(),
        ));
    }
    let name = field(&fields, "name").unwrap_or_default().trim();
    if !valid_name(name) {
        let mut context = json!({
            "heading": "Invalid name",
            "message": "A name is 1 to 64 characters without control characters.",
        });
        return page_with_status(
            StatusCode::BAD_REQUEST,
            &viewer,
            "error.html",
            "Invalid name",
            &mut context,
        );
    }
    if let Some((session, _)) = ui.engine.session(&viewer.session).await? {
        ui.engine.rename_session(&viewer.session, &session, name).await?;
    }
    let back = safe_next(field(&fields, "next"));
    Ok(Redirect::to(&back).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next(Some("/ui/runs/x?a=1")), "/ui/runs/x?a=1");
        assert_eq!(safe_next(Some("//evil.example/")), "/ui/inbox");
        assert_eq!(safe_next(Some("https://evil.example/")), "/ui/inbox");
        assert_eq!(safe_next(Some("/\\evil.example")), "/ui/inbox");
        assert_eq!(safe_next(None), "/ui/inbox");
    }

    #[test]
    fn origins_are_compared_with_the_host() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(same_origin(&headers));
        headers.insert(header::ORIGIN, HeaderValue::from_static("http://127.0.0.1:8080"));
        assert!(same_origin(&headers));
        headers.insert(header::ORIGIN, HeaderValue::from_static("http://evil.example"));
        assert!(!same_origin(&headers));
        headers.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!same_origin(&headers));
        headers.remove(header::ORIGIN);
        headers.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(!same_origin(&headers));
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
    }
}
