//! Client commands against a running server (`--server URL`), over the HTTP API.

use super::local::{exit_code, parse_data, parse_inputs, parse_signal_key};
use super::show;
use super::{AnswerArgs, StartArgs};
use crate::api::USER_HEADER;
use crate::auth::{Role, TokenRecord};
use crate::run::{RunRecord, RunState};
use anyhow::{anyhow, bail, Context, Result};
use reqwest::{Method, RequestBuilder};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::ExitCode;

/// A server, addressed by its base URL, and the token to present.
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Client {
    pub fn new(base: &str, token: Option<String>) -> Client {
        Client {
            base: base.trim_end_matches('/').to_owned(),
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

    /// The run now, or with `settled` once it has finished or waits for a person.
    async fn run(&self, id: &str, settled: bool) -> Result<RunRecord> {
        let request = self
            .request(Method::GET, &format!("/v1/executions/{id}"))
            .query(&[("wait", settled)]);
        let body = self.send(request).await?;
        serde_json::from_value(body).context("the server sent a run this client cannot read")
    }
}

fn print_run(run: &RunRecord, json: bool, client: &Client) -> Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(run)?);
    } else {
        println!("{}", show::summary(run));
        if run.state == RunState::Waiting {
            for line in show::how_to_answer(run, &format!("--server {}", client.base)) {
                println!("{line}");
            }
        }
    }
    Ok(exit_code(run))
}

/// `weft plugin push FILE --server URL`.
pub async fn push_plugin(client: &Client, file: PathBuf, name: String, version: String) -> Result<ExitCode> {
    use indicatif::{ProgressBar, ProgressStyle};
    let bytes = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
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
    let request = client
        .request(Method::POST, "/v1/plugins")
        .query(&[("name", &name), ("version", &version)])
        .header("content-type", "application/wasm")
        .header("content-length", size)
        .body(reqwest::Body::wrap_stream(stream));
    let answer = client.send(request).await;
    bar.finish_and_clear();
    let mut meta = answer.map_err(|e| anyhow!("{}: {e}", file.display()))?;
    if meta["status"] == "compiling" {
        // A large component compiles on in the server; its status URL says when it is done.
        let spinner =
            ProgressBar::new_spinner().with_style(ProgressStyle::with_template("{spinner} {msg} {elapsed}")?);
        spinner.set_message(format!("compiling {name}@{version} on the server"));
        spinner.enable_steady_tick(std::time::Duration::from_millis(120));
        let status_url = meta["status_url"].as_str().unwrap_or_default().to_owned();
        while meta["status"] == "compiling" {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            meta = client.send(client.request(Method::GET, &status_url)).await?;
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
    let text = |key: &str| meta[key].as_str().unwrap_or_default().to_owned();
    println!(
        "{}@{} {} ({} world, {} bytes)",
        text("name"),
        text("version"),
        text("digest"),
        text("world"),
        meta["size"]
    );
    Ok(ExitCode::SUCCESS)
}

/// `weft plugin list --server URL`.
pub async fn list_plugins(client: &Client) -> Result<ExitCode> {
    let body = client.send(client.request(Method::GET, "/v1/plugins")).await?;
    for p in body["items"].as_array().into_iter().flatten() {
        println!(
            "{}@{}\t{}\t{}\t{} bytes",
            p["name"].as_str().unwrap_or_default(),
            p["version"].as_str().unwrap_or_default(),
            p["world"].as_str().unwrap_or_default(),
            p["digest"].as_str().unwrap_or_default(),
            p["size"]
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `weft workflow apply FILE --server URL`.
pub async fn apply_workflow(client: &Client, file: PathBuf, publish: bool) -> Result<ExitCode> {
    let text = std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
    let content_type = if file.extension().is_some_and(|e| e == "json") {
        "application/json"
    } else {
        "application/yaml"
    };
    let request = client
        .request(Method::POST, "/v1/workflows")
        .query(&[("publish", publish)])
        .header("content-type", content_type)
        .body(text);
    let stored = client
        .send(request)
        .await
        .map_err(|e| anyhow!("{}: {e}", file.display()))?;
    println!("{}", show::saved_line(&stored));
    Ok(ExitCode::SUCCESS)
}

/// `weft start WORKFLOW --server URL`.
pub async fn start(client: &Client, args: StartArgs) -> Result<ExitCode> {
    let inputs = parse_inputs(&args.inputs)?;
    let mut query = vec![("wait", args.wait.to_string())];
    if let Some(v) = args.version {
        query.push(("version", v.to_string()));
    }
    let request = client
        .request(
            Method::POST,
            &format!("/v1/workflows/{}/executions", args.workflow),
        )
        .query(&query)
        .header(USER_HEADER, args.identity.person().name)
        .json(&json!({ "input": inputs }));
    let started = client.send(request).await?;
    let id = started["id"]
        .as_str()
        .ok_or_else(|| anyhow!("the server sent no execution id"))?;
    if !args.wait {
        println!("{id}");
        return Ok(ExitCode::SUCCESS);
    }
    print_run(&client.run(id, true).await?, args.json, client)
}

/// `weft runs list --server URL`.
pub async fn list_runs(
    client: &Client,
    state: Option<String>,
    inputs: Vec<(String, String)>,
    json: bool,
) -> Result<ExitCode> {
    let mut request = client
        .request(Method::GET, "/v1/executions")
        .query(&[("limit", "1000")]);
    if let Some(state) = &state {
        request = request.query(&[("state", state)]);
    }
    for (name, value) in &inputs {
        request = request.query(&[(format!("input.{name}"), value)]);
    }
    let body = client.send(request).await?;
    let items = body["items"].as_array().cloned().unwrap_or_default();
    if json {
        println!("{}", serde_json::to_string_pretty(&items)?);
    } else if items.is_empty() {
        println!("no runs");
    } else {
        for r in &items {
            println!(
                "{}  {:<9}  {} v{}  started {} by {}",
                r["id"].as_str().unwrap_or_default(),
                r["state"].as_str().unwrap_or_default(),
                r["workflow"].as_str().unwrap_or_default(),
                r["version"],
                r["created_at"].as_str().unwrap_or_default(),
                r["started_by"].as_str().unwrap_or_default()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `weft retry RUN --server URL`.
pub async fn retry(client: &Client, args: super::RetryArgs) -> Result<ExitCode> {
    // The run's workflow is part of its URL: find it first.
    let run = client
        .send(client.request(Method::GET, &format!("/v1/executions/{}", args.run)))
        .await?;
    let workflow = run["workflow"]["id"].as_str().unwrap_or_default().to_owned();
    let mut body = serde_json::Map::new();
    if let Some(v) = args.version {
        body.insert("version".into(), v.into());
    }
    if let Some(step) = &args.step {
        body.insert("step".into(), step.clone().into());
    }
    if let Some(input) = &args.input {
        body.insert("input".into(), serde_json::from_str(input)?);
    }
    let path = format!("/v1/workflows/{workflow}/executions/{}/retry", args.run);
    let run = client
        .send(client.request(Method::POST, &path).json(&body))
        .await?;
    println!(
        "run {} retried: {}",
        args.run,
        run["state"].as_str().unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}

/// `weft runs show RUN --server URL`.
pub async fn show_run(client: &Client, id: &str, json: bool, logs: bool) -> Result<ExitCode> {
    let run = client.run(id, false).await?;
    let code = print_run(&run, json, client)?;
    if logs && !json {
        let path = format!("/v1/workflows/{}/executions/{id}/logs/export", run.workflow.id);
        let response = client
            .request(Method::GET, &path)
            .send()
            .await?
            .error_for_status()?;
        println!("log:\n{}", response.text().await?);
    }
    Ok(code)
}

/// `weft answer RUN Step.Signal JSON --server URL`: sends a Keyfactor signal.
pub async fn answer(client: &Client, args: AnswerArgs) -> Result<ExitCode> {
    parse_signal_key(&args.signal)?;
    let data = parse_data(&args.data, &args.signal)?;
    let request = client
        .request(Method::POST, &format!("/v1/instances/{}/signals", args.run))
        .header(USER_HEADER, args.identity.person().name)
        .json(&json!({"SignalKey": args.signal, "Data": data}));
    client.send(request).await?;
    print_run(&client.run(&args.run, true).await?, args.json, client)
}

/// `weft token create --server URL`.
pub async fn create_token(
    client: &Client,
    name: String,
    role: Role,
    groups: Vec<String>,
) -> Result<ExitCode> {
    let request = client
        .request(Method::POST, "/v1/tokens")
        .json(&json!({"name": name, "role": role, "groups": groups}));
    let created = client.send(request).await?;
    eprintln!("token for {name} ({role}); it is shown only now:");
    println!("{}", created["token"].as_str().unwrap_or_default());
    Ok(ExitCode::SUCCESS)
}

/// `weft token list --server URL`.
pub async fn list_tokens(client: &Client) -> Result<ExitCode> {
    let body = client.send(client.request(Method::GET, "/v1/tokens")).await?;
    let tokens: Vec<TokenRecord> = serde_json::from_value(body["items"].clone())?;
    for token in &tokens {
        println!("{}", show::token_line(token));
    }
    Ok(ExitCode::SUCCESS)
}

/// `weft token revoke ID|NAME --server URL`.
pub async fn revoke_token(client: &Client, which: &str) -> Result<ExitCode> {
    client
        .send(client.request(Method::DELETE, &format!("/v1/tokens/{which}")))
        .await?;
    println!("revoked {which}");
    Ok(ExitCode::SUCCESS)
}

/// `weft grant list --server URL`.
pub async fn list_grants(client: &Client) -> Result<ExitCode> {
    let body = client.send(client.request(Method::GET, "/v1/grants")).await?;
    for grant in body["items"].as_array().into_iter().flatten() {
        println!("{}", show::grant_line(grant));
    }
    Ok(ExitCode::SUCCESS)
}

/// `weft grant show PLUGIN --server URL`.
pub async fn show_grant(client: &Client, plugin: &str) -> Result<ExitCode> {
    let body = client
        .send(client.request(Method::GET, &format!("/v1/grants/{plugin}")))
        .await?;
    println!("{}", serde_json::to_string_pretty(&body)?);
    Ok(ExitCode::SUCCESS)
}

/// `weft grant set PLUGIN ... --server URL`.
pub async fn set_grant(
    client: &Client,
    plugin: &str,
    spec: &crate::plugins::grants::GrantSpec,
) -> Result<ExitCode> {
    let body = client
        .send(
            client
                .request(Method::PUT, &format!("/v1/grants/{plugin}"))
                .json(spec),
        )
        .await?;
    println!("{}", show::grant_line(&body));
    Ok(ExitCode::SUCCESS)
}

/// `weft grant delete PLUGIN --server URL`.
pub async fn delete_grant(client: &Client, plugin: &str) -> Result<ExitCode> {
    client
        .send(client.request(Method::DELETE, &format!("/v1/grants/{plugin}")))
        .await?;
    println!("removed the grant of {plugin}");
    Ok(ExitCode::SUCCESS)
}

/// `weft runners --server URL`.
pub async fn runners(client: &Client, json: bool) -> Result<ExitCode> {
    let body = client.send(client.request(Method::GET, "/v1/runners")).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&body["items"])?);
    } else {
        for runner in body["items"].as_array().into_iter().flatten() {
            println!("{}", show::runner_line(runner));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `weft workflow publish ID VERSION --server URL`.
pub async fn publish_workflow(client: &Client, id: &str, version: u64) -> Result<ExitCode> {
    let path = format!("/v1/workflows/{id}/versions/{version}/publish");
    client.send(client.request(Method::POST, &path)).await?;
    println!("{id} v{version} is now the active version");
    Ok(ExitCode::SUCCESS)
}

/// `weft workflow export ID... -o FILE --server URL`.
pub async fn export_workflows(
    client: &Client,
    ids: &[String],
    output: &std::path::Path,
    include_plugins: bool,
) -> Result<ExitCode> {
    let request = client
        .request(Method::POST, "/v1/workflows/export")
        .query(&[("include_plugins", include_plugins)])
        .json(&json!({ "id": ids }));
    let bundle = client.send(request).await?;
    std::fs::write(output, serde_json::to_vec_pretty(&bundle)?)
        .with_context(|| format!("cannot write {}", output.display()))?;
    println!("exported {} workflow(s) to {}", ids.len(), output.display());
    Ok(ExitCode::SUCCESS)
}

/// `weft workflow import FILE --server URL`.
pub async fn import_workflows(client: &Client, file: &std::path::Path, rename: &str) -> Result<ExitCode> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let mut request = client
        .request(Method::POST, "/v1/workflows/import")
        .header("content-type", "application/json")
        .body(bytes);
    if !rename.is_empty() {
        request = request.query(&[("rename", rename)]);
    }
    let imported = client
        .send(request)
        .await
        .map_err(|e| anyhow!("{}: {e}", file.display()))?;
    println!("{}", show::imported_line(&imported));
    Ok(ExitCode::SUCCESS)
}

/// `weft schedule create --server URL`.
pub async fn create_schedule(
    client: &Client,
    definition: &crate::schedule::ScheduleDefinition,
) -> Result<Value> {
    client
        .send(client.request(Method::POST, "/v1/schedules").json(definition))
        .await
}

/// `weft schedule list --server URL`.
pub async fn schedules(client: &Client) -> Result<Vec<Value>> {
    let body = client.send(client.request(Method::GET, "/v1/schedules")).await?;
    Ok(body["items"].as_array().cloned().unwrap_or_default())
}

/// `weft schedule show|pause|resume ID --server URL`: `action` is "" or "/pause", "/resume".
pub async fn schedule_op(client: &Client, method: Method, id: &str, action: &str) -> Result<Value> {
    client
        .send(client.request(method, &format!("/v1/schedules/{id}{action}")))
        .await
}

/// `weft schedule delete ID --server URL`.
pub async fn delete_schedule(client: &Client, id: &str) -> Result<()> {
    client
        .send(client.request(Method::DELETE, &format!("/v1/schedules/{id}")))
        .await?;
    Ok(())
}

/// `weft event send NAME --server URL`.
pub async fn send_event(client: &Client, name: &str, key: &str, data: &Value) -> Result<Value> {
    client
        .send(
            client
                .request(Method::POST, "/v1/events")
                .json(&serde_json::json!({ "name": name, "key": key, "data": data })),
        )
        .await
}

/// `weft runs purge --older-than D --server URL`.
pub async fn purge_runs(
    client: &Client,
    older_than: std::time::Duration,
    workflow: Option<&str>,
) -> Result<ExitCode> {
    let body = serde_json::json!({
        "older_than": humantime::format_duration(older_than).to_string(),
        "workflow": workflow,
    });
    let answer = client
        .send(client.request(Method::POST, "/v1/executions/purge").json(&body))
        .await?;
    println!("deleted {} finished run(s)", answer["purged"]);
    Ok(ExitCode::SUCCESS)
}
