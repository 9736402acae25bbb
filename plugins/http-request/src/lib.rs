//! `http-request`: makes one outbound HTTP request, to the hosts and methods this plugin is
//! granted in `weft.toml` (anything else is denied by the host and fails the step).
//!
//! Input:
//!
//! ```json
//! {"method": "POST", "url": "http://127.0.0.1:8081/tickets",
//!  "headers": {"Accept": "application/json"}, "body": {"title": "x"},
//!  "bearer_secret": "api_token", "expect_status": [200, 201]}
//! ```
//!
//! `method` defaults to GET. A JSON `body` is sent as JSON; a string as is. `bearer_secret`
//! names a granted secret sent as `Authorization: Bearer …`. With `expect_status`, another
//! status fails the step (retryable for 5xx).
//!
//! Output: `{"status": 200, "headers": {...}, "body": "...", "json": <the body, if JSON>}`.

use serde::Deserialize;
use std::collections::BTreeMap;
use weft_plugin_sdk::{export_step, json, log, secret, Context, Outcome, Step, Value};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    #[serde(default = "get")]
    method: String,
    url: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: Option<Value>,
    #[serde(default)]
    bearer_secret: Option<String>,
    #[serde(default)]
    expect_status: Vec<u16>,
}

fn get() -> String {
    "GET".into()
}

fn method(name: &str) -> waki::Method {
    match name.to_ascii_uppercase().as_str() {
        "GET" => waki::Method::Get,
        "POST" => waki::Method::Post,
        "PUT" => waki::Method::Put,
        "PATCH" => waki::Method::Patch,
        "DELETE" => waki::Method::Delete,
        "HEAD" => waki::Method::Head,
        "OPTIONS" => waki::Method::Options,
        other => waki::Method::Other(other.to_owned()),
    }
}

struct HttpRequest;

impl Step for HttpRequest {
    type Input = Input;

    fn run(_ctx: &Context, input: Input) -> Outcome {
        let mut request = waki::Client::new().request(method(&input.method), &input.url);
        for (name, value) in &input.headers {
            let Ok(name) = waki::header::HeaderName::from_bytes(name.as_bytes()) else {
                return Outcome::fail(format!("headers: {name:?} is not a valid header name"));
            };
            request = request.header(name, value.as_str());
        }
        if let Some(name) = &input.bearer_secret {
            let Some(token) = secret(name) else {
                return Outcome::fail(format!(
                    "secret {name} is not granted to this plugin, or this runner has no value for it \
                     (see `weft grant show` and [secrets] in weft.toml)"
                ));
            };
            request = request.header(waki::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        request = match &input.body {
            None | Some(Value::Null) => request,
            Some(Value::String(text)) => request.body(text.as_bytes().to_vec()),
            Some(json) => request
                .header(waki::header::CONTENT_TYPE, "application/json")
                .body(json.to_string().into_bytes()),
        };
        log::info(&format!("{} {}", input.method.to_ascii_uppercase(), input.url));
        let response = match request.send() {
            Ok(response) => response,
            Err(e) => {
                let message = format!("{e:?}");
                return if message.contains("HttpRequestDenied") {
                    Outcome::fail(format!(
                        "{} {} was denied: this plugin is not granted that host and method (see `weft grant`)",
                        input.method, input.url
                    ))
                } else {
                    Outcome::retryable(format!("{} {} failed: {message}", input.method, input.url))
                };
            }
        };
        let status = response.status_code();
        let headers: BTreeMap<String, String> = response
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
            .collect();
        let bytes = match response.body() {
            Ok(bytes) => bytes,
            Err(e) => return Outcome::retryable(format!("reading the response body failed: {e}")),
        };
        let body = String::from_utf8_lossy(&bytes).into_owned();
        if !input.expect_status.is_empty() && !input.expect_status.contains(&status) {
            let message = format!(
                "{} {} answered {status}, expected {:?}",
                input.method, input.url, input.expect_status
            );
            return if status >= 500 {
                Outcome::retryable(message)
            } else {
                Outcome::fail(message)
            };
        }
        let parsed = serde_json::from_str::<Value>(&body).ok();
        Outcome::Complete(json!({"status": status, "headers": headers, "body": body, "json": parsed}))
    }
}

export_step!(HttpRequest);
