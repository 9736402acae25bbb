//! `http-request`: makes one outbound HTTP request, to the hosts and methods this plugin is
//! granted (`weft grant`, or `[plugins.http-request]` in `weft.toml`); anything else is denied
//! by the host and fails the step naming the rule to add.
//!
//! Input:
//!
//! ```json
//! {"method": "POST", "url": "http://127.0.0.1:8081/tickets",
//!  "headers": {"Accept": "application/json"}, "body": {"title": "x"},
//!  "bearer_secret": "api_token", "expect_status": [200, 201]}
//! ```
//!
//! `method` defaults to GET. A JSON `body` is sent as JSON; a string as is; either with its
//! `Content-Length` (never chunked, which some servers read as an empty body).
//! `bearer_secret` names a granted secret sent as `Authorization: Bearer …`. With
//! `expect_status`, another status fails the step (retryable for 5xx).
//!
//! Output: `{"status": 200, "headers": {...}, "body": "...", "json": <the body, if JSON>}`.
//!
//! The request is made with `wasi:http` directly, so the body is written after the host has
//! accepted the request and a refusal is reported as the host's reason (`HttpRequestDenied`),
//! not as the closed body stream it leaves behind.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, FutureIncomingResponse, IncomingResponse, Method, OutgoingBody, OutgoingRequest, Scheme,
};
use wasip2::io::streams::StreamError;
use weft_plugin_sdk::{export_step, json, log, secret, Context, Outcome, Step, Value};

/// One outbound request.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Input {
    /// GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS or another token.
    #[serde(default = "get")]
    method: String,
    /// `http://` or `https://` URL.
    url: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// JSON (sent as `application/json`) or a string (sent as is).
    #[serde(default)]
    body: Option<Value>,
    /// A granted secret sent as `Authorization: Bearer …`.
    #[serde(default)]
    bearer_secret: Option<String>,
    /// Statuses that count as success; any other fails the step.
    #[serde(default)]
    expect_status: Vec<u16>,
}

/// The response.
#[derive(Serialize, JsonSchema)]
struct Output {
    status: u16,
    headers: BTreeMap<String, String>,
    body: String,
    /// The body parsed as JSON, or null.
    json: Option<Value>,
}

fn get() -> String {
    "GET".into()
}

fn method(name: &str) -> Method {
    match name.to_ascii_uppercase().as_str() {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "PATCH" => Method::Patch,
        "DELETE" => Method::Delete,
        "HEAD" => Method::Head,
        "OPTIONS" => Method::Options,
        other => Method::Other(other.to_owned()),
    }
}

/// A URL taken apart: scheme, `host[:port]`, and path with query.
struct Target {
    scheme: Scheme,
    authority: String,
    path_with_query: String,
}

fn parse_url(url: &str) -> Result<Target, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("url: {url:?} is not an absolute http:// or https:// URL"))?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => return Err(format!("url: scheme {other:?} is not http or https")),
    };
    let rest = rest.split('#').next().unwrap_or_default();
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if authority.is_empty() || authority.contains('@') {
        return Err(format!("url: {url:?} has no host (or carries credentials)"));
    }
    let path_with_query = match path {
        "" => "/".to_owned(),
        p if p.starts_with('?') => format!("/{p}"),
        p => p.to_owned(),
    };
    Ok(Target {
        scheme,
        authority: authority.to_owned(),
        path_with_query,
    })
}

/// Why a request did not get an answer.
enum Failure {
    /// Not worth retrying: the input or the grant must change.
    Permanent(String),
    Transient(String),
}

impl From<Failure> for Outcome {
    fn from(f: Failure) -> Outcome {
        match f {
            Failure::Permanent(message) => Outcome::fail(message),
            Failure::Transient(message) => Outcome::retryable(message),
        }
    }
}

struct HttpRequest;

impl Step for HttpRequest {
    const SUMMARY: &'static str = "Makes one outbound HTTP request to a granted host";
    type Input = Input;
    type Output = Output;

    fn run(_ctx: &Context, input: Input) -> Outcome {
        match request(&input) {
            Ok(output) => {
                if !input.expect_status.is_empty() && !input.expect_status.contains(&output.status) {
                    let message = format!(
                        "{} {} answered {}, expected {:?}",
                        input.method, input.url, output.status, input.expect_status
                    );
                    return if output.status >= 500 {
                        Outcome::retryable(message)
                    } else {
                        Outcome::fail(message)
                    };
                }
                Outcome::Complete(json!(output))
            }
            Err(failure) => failure.into(),
        }
    }
}

fn request(input: &Input) -> Result<Output, Failure> {
    let target = parse_url(&input.url).map_err(Failure::Permanent)?;
    let method_name = input.method.to_ascii_uppercase();
    let mut headers: Vec<(String, Vec<u8>)> = input
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.as_bytes().to_vec()))
        .collect();
    if let Some(name) = &input.bearer_secret {
        let token = secret(name).ok_or_else(|| {
            Failure::Permanent(format!(
                "secret {name} is not granted to this plugin, or this runner has no value for it \
                 (see `weft grant show http-request` and [secrets] in weft.toml)"
            ))
        })?;
        headers.push(("authorization".into(), format!("Bearer {token}").into_bytes()));
    }
    let body: Vec<u8> = match &input.body {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(text)) => text.clone().into_bytes(),
        Some(json) => {
            if !headers.iter().any(|(k, _)| k == "content-type") {
                headers.push(("content-type".into(), b"application/json".to_vec()));
            }
            json.to_string().into_bytes()
        }
    };
    if !body.is_empty() {
        headers.retain(|(k, _)| k != "content-length" && k != "transfer-encoding");
        headers.push(("content-length".into(), body.len().to_string().into_bytes()));
    }
    let fields = Fields::from_list(&headers)
        .map_err(|e| Failure::Permanent(format!("headers: not valid HTTP headers: {e:?}")))?;
    let request = OutgoingRequest::new(fields);
    let set = |ok: Result<(), ()>, what: &str| {
        ok.map_err(|()| Failure::Permanent(format!("{what}: refused by the HTTP client")))
    };
    set(request.set_method(&method(&input.method)), "method")?;
    set(request.set_scheme(Some(&target.scheme)), "url")?;
    set(request.set_authority(Some(&target.authority)), "url")?;
    set(request.set_path_with_query(Some(&target.path_with_query)), "url")?;
    let outgoing = request
        .body()
        .map_err(|()| Failure::Permanent("the request body was already taken".into()))?;

    log::info(&format!("{method_name} {}", input.url));
    let what = format!("{method_name} {}", input.url);
    let refused = |code: ErrorCode| explain(&what, &method_name, &target.authority, code);
    let future = outgoing_handler::handle(request, None).map_err(refused)?;
    if let Err(e) = write_body(outgoing, &body) {
        // A refused request closes its body; the response says why.
        return Err(match wait(&future) {
            Err(code) => refused(code),
            Ok(_) => Failure::Transient(format!("{what}: sending the body failed: {e}")),
        });
    }
    let response = wait(&future).map_err(refused)?;
    read(&what, response)
}

/// Writes the whole body, then finishes it.
fn write_body(outgoing: OutgoingBody, body: &[u8]) -> Result<(), String> {
    {
        let stream = outgoing.write().map_err(|()| "the body stream was already taken".to_owned())?;
        // `blocking_write_and_flush` takes at most 4096 bytes at a time.
        for chunk in body.chunks(4096) {
            stream.blocking_write_and_flush(chunk).map_err(stream_error)?;
        }
    }
    OutgoingBody::finish(outgoing, None).map_err(|code| format!("{code:?}"))
}

fn stream_error(e: StreamError) -> String {
    match e {
        StreamError::Closed => "the connection closed".into(),
        StreamError::LastOperationFailed(e) => e.to_debug_string(),
    }
}

/// Waits for the response, or the reason there is none.
fn wait(future: &FutureIncomingResponse) -> Result<IncomingResponse, ErrorCode> {
    future.subscribe().block();
    match future.get() {
        Some(Ok(result)) => result,
        Some(Err(())) => Err(ErrorCode::InternalError(Some("the response was already taken".into()))),
        None => Err(ErrorCode::InternalError(Some("no response after waiting for it".into()))),
    }
}

/// A failed request in words: a denial names the grant rule that would allow it.
fn explain(what: &str, method: &str, authority: &str, code: ErrorCode) -> Failure {
    match code {
        ErrorCode::HttpRequestDenied => Failure::Permanent(format!(
            "{what} was denied (HttpRequestDenied): this plugin is not granted {method} {authority}; \
             an admin can allow it with: weft grant set http-request --http \"{method} {authority}\""
        )),
        ErrorCode::HttpRequestUriInvalid => Failure::Permanent(format!("{what}: the URL is not valid")),
        other => Failure::Transient(format!("{what} failed: {other:?}")),
    }
}

/// Reads status, headers and body.
fn read(what: &str, response: IncomingResponse) -> Result<Output, Failure> {
    let status = response.status();
    let headers: BTreeMap<String, String> = response
        .headers()
        .entries()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
        .collect();
    let incoming = response
        .consume()
        .map_err(|()| Failure::Transient(format!("{what}: the response body was already taken")))?;
    let mut bytes = Vec::new();
    {
        let stream = incoming
            .stream()
            .map_err(|()| Failure::Transient(format!("{what}: the response body was already taken")))?;
        loop {
            match stream.blocking_read(64 * 1024) {
                Ok(chunk) => bytes.extend_from_slice(&chunk),
                Err(StreamError::Closed) => break,
                Err(e) => {
                    return Err(Failure::Transient(format!(
                        "{what}: reading the response body failed: {}",
                        stream_error(e)
                    )))
                }
            }
        }
    }
    let body = String::from_utf8_lossy(&bytes).into_owned();
    let json = serde_json::from_str::<Value>(&body).ok();
    Ok(Output {
        status,
        headers,
        body,
        json,
    })
}

export_step!(HttpRequest);
