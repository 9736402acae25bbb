//! The backend over a running server's HTTP API (`--server URL`, with `--token`): each
//! operation is the API call a client would make, and an error status becomes an error
//! carrying the server's message. It opens no database (see `local.rs`).

use super::backend::{Backend, InboxItem, Place, PluginLine, Resumed, Started, TokenSource, Validated};
use crate::api::USER_HEADER;
use crate::auth::{Role, TokenRecord};
use crate::engine::{Person, RetryOptions};
use crate::plugins::grants::GrantSpec;
use crate::run::{LogLine, RunRecord, RunState};
use crate::schedule::ScheduleDefinition;
use anyhow::{anyhow, bail, Context, Result};
use reqwest::{Method, RequestBuilder};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

/// The most items one listing page asks for (the API's ceiling).
const PAGE: usize = 1000;
/// The most log lines one page asks for (the API's ceiling).
const LOG_PAGE: usize = 10_000;

/// A server, addressed by its base URL, and the token to present.
pub struct Client {
    base: String,
    token: Option<String>,
    place: Place,
    http: reqwest::Client,
}

impl Client {
    pub fn new(base: &str, token: Option<String>, source: Option<TokenSource>) -> Client {
        let base = base.trim_end_matches('/').to_owned();
        Client {
            place: Place::Server {
                url: base.clone(),
                token: source,
            },
            base,
            token,
            http: reqwest::Client::new(),
        }
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// A request made by `who`: without a token, a server in local mode knows the caller by
    /// the `X-Weft-User` header; with one, by the token.
    fn request_as(&self, method: Method, path: &str, who: &Person) -> RequestBuilder {
        let request = self.request(method, path);
        match self.token {
            Some(_) => request,
            None => request.header(USER_HEADER, &who.name),
        }
    }

    /// Sends a request; an error status becomes an error carrying the server's message.
    async fn send(&self, request: RequestBuilder) -> Result<Value> {
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach the server at {}", self.base))?;
        let status = response.status();
        let text = response.text().await?;
        let body: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if status.is_success() {
            return Ok(body);
        }
        let message = body
            .get("message")
            .and_then(Value::as_str)
            .map_or_else(|| body.to_string(), str::to_owned);
        bail!("the server answered {status}: {message}")
    }

    async fn get(&self, path: &str) -> Result<Value> {
        self.send(self.request(Method::GET, path)).await
    }

    /// The run now, or with `settled` once it has finished or waits for a person.
    async fn fetch_run(&self, id: &str, settled: bool) -> Result<RunRecord> {
        let request = self
            .request(Method::GET, &format!("/v1/executions/{id}"))
            .query(&[("wait", settled)]);
        let body = self.send(request).await?;
        serde_json::from_value(body).context("the server sent a run this client cannot read")
    }

    /// `/v1/workflows/{workflow}/executions/{id}`: the run's own URL, which names its workflow.
    async fn run_path(&self, id: &str) -> Result<String> {
        let run = self.fetch_run(id, false).await?;
        Ok(format!("/v1/workflows/{}/executions/{id}", run.workflow.id))
    }

    /// Every item of a paged listing of runs.
    async fn all_runs(&self, query: &[(String, String)]) -> Result<Vec<Value>> {
        let request = || {
            self.request(Method::GET, "/v1/executions")
                .query(&[("limit", PAGE.to_string())])
                .query(query)
        };
        self.all_pages(request).await
    }

    /// Every item of a listing paged by `cursor` and `next_cursor`; `request` makes the
    /// request for the first page.
    async fn all_pages(&self, request: impl Fn() -> RequestBuilder) -> Result<Vec<Value>> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut request = request();
            if let Some(cursor) = &cursor {
                request = request.query(&[("cursor", cursor)]);
            }
            let page = self.send(request).await?;
            items.extend(page["items"].as_array().cloned().unwrap_or_default());
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return Ok(items),
            }
        }
    }
}

fn items(body: &Value) -> Vec<Value> {
    body["items"].as_array().cloned().unwrap_or_default()
}

fn content_type(file: &Path) -> &'static str {
    if file.extension().is_some_and(|e| e == "json") {
        "application/json"
    } else {
        "application/yaml"
    }
}

impl Backend for Client {
    fn place(&self) -> &Place {
        &self.place
    }

    async fn start(
        &self,
        workflow: &str,
        version: Option<u64>,
        inputs: Map<String, Value>,
        who: &Person,
        wait: bool,
    ) -> Result<Started> {
        let mut query = vec![("wait", wait.to_string())];
        if let Some(v) = version {
            query.push(("version", v.to_string()));
        }
        let request = self
            .request_as(Method::POST, &format!("/v1/workflows/{workflow}/executions"), who)
            .query(&query)
            .json(&json!({ "input": inputs }));
        let started = self.send(request).await?;
        let id = started["id"]
            .as_str()
            .ok_or_else(|| anyhow!("the server sent no execution id"))?
            .to_owned();
        let run = if wait {
            Some(serde_json::from_value(started).context("the server sent a run this client cannot read")?)
        } else {
            None
        };
        Ok(Started { id, run })
    }

    async fn answer(
        &self,
        run: &str,
        step: &str,
        signal: &str,
        data: Value,
        who: &Person,
    ) -> Result<RunRecord> {
        let request = self
            .request_as(Method::POST, &format!("/v1/instances/{run}/signals"), who)
            .json(&json!({"SignalKey": format!("{step}.{signal}"), "Data": data}));
        self.send(request).await?;
        self.fetch_run(run, true).await
    }

    async fn cancel(&self, run: &str, who: &Person) -> Result<RunRecord> {
        let path = format!("{}/state", self.run_path(run).await?);
        self.send(self.request_as(Method::DELETE, &path, who)).await?;
        self.fetch_run(run, false).await
    }

    async fn resume(&self) -> Result<Resumed> {
        let done = self
            .send(self.request(Method::POST, "/v1/executions/resume"))
            .await?;
        let mut runs = Vec::new();
        for summary in self.all_runs(&[("state".into(), "running".into())]).await? {
            let id = summary["id"].as_str().unwrap_or_default();
            runs.push(self.fetch_run(id, true).await?);
        }
        Ok(Resumed {
            resumed: done["resumed"].as_u64().unwrap_or_default(),
            fired: done["fired"].as_u64().unwrap_or_default(),
            runs,
        })
    }

    async fn validate(&self, file: &Path) -> Result<Validated> {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read the definition {}", file.display()))?;
        let request = self
            .request(Method::POST, "/v1/workflows")
            .query(&[("dry_run", true)])
            .header("content-type", content_type(file))
            .body(text);
        let checked = self
            .send(request)
            .await
            .map_err(|e| anyhow!("{}: {e}", file.display()))?;
        serde_json::from_value(checked).context("the server sent a check this client cannot read")
    }

    async fn retry(&self, run: &str, options: RetryOptions, who: &Person) -> Result<RunRecord> {
        let mut body = Map::new();
        if let Some(v) = options.version {
            body.insert("version".into(), v.into());
        }
        if let Some((step, input)) = options.step_input {
            body.insert("step".into(), step.into());
            body.insert("input".into(), input);
        }
        let path = format!("{}/retry", self.run_path(run).await?);
        self.send(self.request_as(Method::POST, &path, who).json(&body))
            .await?;
        self.fetch_run(run, true).await
    }

    async fn restart(&self, run: &str, version: Option<u64>, who: &Person) -> Result<RunRecord> {
        let path = format!("{}/restart", self.run_path(run).await?);
        let body = match version {
            Some(v) => json!({ "version": v }),
            None => json!({}),
        };
        let started = self
            .send(self.request_as(Method::POST, &path, who).json(&body))
            .await?;
        let id = started["id"]
            .as_str()
            .ok_or_else(|| anyhow!("the server sent no execution id for the restarted run"))?;
        self.fetch_run(id, true).await
    }

    async fn runs(&self, state: Option<RunState>, inputs: &[(String, String)]) -> Result<Vec<Value>> {
        let mut query: Vec<(String, String)> = state
            .map(|s| ("state".to_owned(), s.as_str().to_owned()))
            .into_iter()
            .collect();
        query.extend(
            inputs
                .iter()
                .map(|(name, value)| (format!("input.{name}"), value.clone())),
        );
        self.all_runs(&query).await
    }

    async fn run(&self, run: &str) -> Result<RunRecord> {
        self.fetch_run(run, false).await
    }

    async fn logs(&self, run: &RunRecord) -> Result<Vec<LogLine>> {
        let path = format!("/v1/workflows/{}/executions/{}/logs", run.workflow.id, run.id);
        let mut lines: Vec<LogLine> = Vec::new();
        loop {
            let mut request = self.request(Method::GET, &path).query(&[("limit", LOG_PAGE)]);
            if let Some(last) = lines.last() {
                request = request.query(&[("after", last.seq)]);
            }
            let page: Vec<LogLine> = serde_json::from_value(self.send(request).await?["items"].take())
                .context("the server sent log lines this client cannot read")?;
            let full = page.len() == LOG_PAGE;
            lines.extend(page);
            if !full {
                return Ok(lines);
            }
        }
    }

    async fn purge_runs(&self, older_than: Duration, workflow: Option<&str>) -> Result<u64> {
        let body = json!({
            "older_than": humantime::format_duration(older_than).to_string(),
            "workflow": workflow,
        });
        let done = self
            .send(self.request(Method::POST, "/v1/executions/purge").json(&body))
            .await?;
        Ok(done["purged"].as_u64().unwrap_or_default())
    }

    async fn inbox(&self, who: &Person) -> Result<Vec<InboxItem>> {
        let request = || {
            self.request_as(Method::GET, "/v1/interactions", who)
                .query(&[("assigned_to", "me")])
        };
        let items = self.all_pages(request).await?;
        serde_json::from_value(Value::Array(items))
            .context("the server sent interactions this client cannot read")
    }

    async fn add_plugin(&self, file: &Path, name: &str, version: &str) -> Result<PluginLine> {
        use indicatif::{ProgressBar, ProgressStyle};
        let bytes =
            std::fs::read(file).with_context(|| format!("cannot read the plugin {}", file.display()))?;
        let size = bytes.len();
        // Sent in pieces, so the bar follows the upload; with its length, so the server can refuse
        // an oversize body before reading it.
        let bar = ProgressBar::new(size as u64).with_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")?
                .progress_chars("=> "),
        );
        bar.set_message(format!("uploading {name}@{version}"));
        let sent = bar.clone();
        let pieces: Vec<Vec<u8>> = bytes.chunks(256 << 10).map(<[u8]>::to_vec).collect();
        let stream = futures_util::stream::iter(pieces.into_iter().map(move |piece| {
            sent.inc(piece.len() as u64);
            Ok::<_, std::io::Error>(piece)
        }));
        let request = self
            .request(Method::POST, "/v1/plugins")
            .query(&[("name", name), ("version", version)])
            .header("content-type", "application/wasm")
            .header("content-length", size)
            .body(reqwest::Body::wrap_stream(stream));
        let answer = self.send(request).await;
        bar.finish_and_clear();
        let mut meta = answer.map_err(|e| anyhow!("{}: {e}", file.display()))?;
        if meta["status"] == "compiling" {
            // A large component compiles on in the server; its status URL says when it is done.
            let spinner = ProgressBar::new_spinner()
                .with_style(ProgressStyle::with_template("{spinner} {msg} {elapsed}")?);
            spinner.set_message(format!("compiling {name}@{version} on the server"));
            spinner.enable_steady_tick(Duration::from_millis(120));
            let status_url = meta["status_url"].as_str().unwrap_or_default().to_owned();
            while meta["status"] == "compiling" {
                tokio::time::sleep(Duration::from_millis(500)).await;
                meta = self.get(&status_url).await?;
            }
            spinner.finish_and_clear();
        }
        if meta["status"] == "failed" {
            bail!(
                "{}: {name}@{version} failed to compile: {}",
                file.display(),
                meta["error"].as_str().unwrap_or("no reason given")
            );
        }
        serde_json::from_value(meta).context("the server sent a plugin this client cannot read")
    }

    async fn plugins(&self) -> Result<Vec<PluginLine>> {
        let body = self.get("/v1/plugins").await?;
        serde_json::from_value(body["items"].clone())
            .context("the server sent plugins this client cannot read")
    }

    async fn delete_plugin(&self, name: &str, version: &str) -> Result<()> {
        let path = format!("/v1/plugins/{name}@{version}");
        self.send(self.request(Method::DELETE, &path)).await?;
        Ok(())
    }

    async fn apply_workflow(&self, file: &Path, publish: bool) -> Result<Value> {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read the definition {}", file.display()))?;
        let request = self
            .request(Method::POST, "/v1/workflows")
            .query(&[("publish", publish)])
            .header("content-type", content_type(file))
            .body(text);
        self.send(request)
            .await
            .map_err(|e| anyhow!("{}: {e}", file.display()))
    }

    async fn workflows(&self) -> Result<Vec<Value>> {
        Ok(items(&self.get("/v1/workflows").await?))
    }

    async fn workflow(&self, id: &str, version: Option<u64>) -> Result<Value> {
        match version {
            Some(v) => self.get(&format!("/v1/workflows/{id}/versions/{v}")).await,
            None => self.get(&format!("/v1/workflows/{id}")).await,
        }
    }

    async fn delete_workflow(&self, id: &str) -> Result<()> {
        self.send(self.request(Method::DELETE, &format!("/v1/workflows/{id}")))
            .await?;
        Ok(())
    }

    async fn publish_workflow(&self, id: &str, version: u64) -> Result<()> {
        let path = format!("/v1/workflows/{id}/versions/{version}/publish");
        self.send(self.request(Method::POST, &path)).await?;
        Ok(())
    }

    async fn export_workflows(&self, ids: &[String], include_plugins: bool) -> Result<Value> {
        let request = self
            .request(Method::POST, "/v1/workflows/export")
            .query(&[("include_plugins", include_plugins)])
            .json(&json!({ "id": ids }));
        self.send(request).await
    }

    async fn import_workflows(&self, file: &Path, rename: &HashMap<String, String>) -> Result<Value> {
        let bytes =
            std::fs::read(file).with_context(|| format!("cannot read the bundle {}", file.display()))?;
        let mut request = self
            .request(Method::POST, "/v1/workflows/import")
            .header("content-type", "application/json")
            .body(bytes);
        if !rename.is_empty() {
            let pairs: Vec<String> = rename.iter().map(|(old, new)| format!("{old}:{new}")).collect();
            request = request.query(&[("rename", pairs.join(","))]);
        }
        self.send(request)
            .await
            .map_err(|e| anyhow!("{}: {e}", file.display()))
    }

    async fn create_token(&self, name: &str, roles: &[Role], groups: &[String]) -> Result<String> {
        let request = self
            .request(Method::POST, "/v1/tokens")
            .json(&json!({"name": name, "roles": roles, "groups": groups}));
        let created = self.send(request).await?;
        created["token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("the server sent no token"))
    }

    async fn tokens(&self) -> Result<Vec<TokenRecord>> {
        let body = self.get("/v1/tokens").await?;
        serde_json::from_value(body["items"].clone())
            .context("the server sent tokens this client cannot read")
    }

    async fn revoke_token(&self, which: &str) -> Result<()> {
        self.send(self.request(Method::DELETE, &format!("/v1/tokens/{which}")))
            .await?;
        Ok(())
    }

    async fn grants(&self) -> Result<Vec<Value>> {
        Ok(items(&self.get("/v1/grants").await?))
    }

    async fn grant(&self, plugin: &str) -> Result<Value> {
        self.get(&format!("/v1/grants/{plugin}")).await
    }

    async fn set_grant(&self, plugin: &str, spec: GrantSpec, who: &Person) -> Result<Value> {
        let request = self
            .request_as(Method::PUT, &format!("/v1/grants/{plugin}"), who)
            .json(&spec);
        self.send(request).await
    }

    async fn delete_grant(&self, plugin: &str, who: &Person) -> Result<()> {
        let path = format!("/v1/grants/{plugin}");
        self.send(self.request_as(Method::DELETE, &path, who)).await?;
        Ok(())
    }

    async fn create_schedule(&self, definition: ScheduleDefinition, who: &Person) -> Result<Value> {
        let request = self
            .request_as(Method::POST, "/v1/schedules", who)
            .json(&definition);
        self.send(request).await
    }

    async fn schedules(&self) -> Result<Vec<Value>> {
        Ok(items(&self.get("/v1/schedules").await?))
    }

    async fn schedule(&self, id: &str) -> Result<Value> {
        self.get(&format!("/v1/schedules/{id}")).await
    }

    async fn pause_schedule(&self, id: &str, paused: bool) -> Result<Value> {
        let action = if paused { "pause" } else { "resume" };
        self.send(self.request(Method::POST, &format!("/v1/schedules/{id}/{action}")))
            .await
    }

    async fn delete_schedule(&self, id: &str) -> Result<()> {
        self.send(self.request(Method::DELETE, &format!("/v1/schedules/{id}")))
            .await?;
        Ok(())
    }

    async fn send_event(&self, name: &str, key: &str, data: Value, who: &Person) -> Result<Value> {
        let request = self
            .request_as(Method::POST, "/v1/events", who)
            .json(&json!({ "name": name, "key": key, "data": data }));
        let receipt = self.send(request).await?;
        // As on a database: the command ends once the runs that took the event settled.
        for run in receipt["delivered"].as_array().into_iter().flatten() {
            self.fetch_run(run.as_str().unwrap_or_default(), true).await?;
        }
        Ok(receipt)
    }

    async fn runners(&self) -> Result<Vec<Value>> {
        Ok(items(&self.get("/v1/runners").await?))
    }

    async fn close(&self) {}
}
