//! The figures measured against a real `weft serve` (this binary, started as a child process
//! on loopback, with an admin token so every request is authenticated): HTTP latency and
//! throughput, the same with history in the database, and 100,000 runs waiting on an
//! approval (memory, restart, answering one).

use super::databases::Databases;
use super::engine::NOOP_WORKFLOW;
use super::{ms, percentile, Figure, Sizes, CLIENTS};
use anyhow::{anyhow, bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::future::Future;
use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A workflow whose runs wait for one approval, then finish with a no-op step.
pub(super) const APPROVAL_WORKFLOW: &str = r#"{"id": "bench-approval", "steps": [
    {"name": "Approve", "plugin": "approval",
     "input": {"prompt": "Approve run {{ run.id }}?", "expires_in": "30d"}},
    {"name": "Done", "plugin": "echo", "input": {}}]}"#;

pub async fn latency_and_throughput(
    dir: &Path,
    databases: &Databases,
    sizes: Sizes,
    progress: &impl Fn(&str),
    figures: &mut BTreeMap<&'static str, Figure>,
) -> Result<()> {
    let db = databases.fresh("http").await?;
    let token = admin_token(&db)?;
    let server = Server::start(&db)?;
    let api = Api::new(&server, &token, true)?;
    api.create_workflow(NOOP_WORKFLOW).await?;
    for _ in 0..10 {
        api.start_completed("bench").await?;
    }

    progress("HTTP latency, sequential");
    super::settle_disk();
    let mut health = sequential(sizes.requests, || api.health()).await?;
    let mut runs = sequential(sizes.requests, || api.start_completed("bench")).await?;
    let fresh_api = Api::new(&server, &token, false)?;
    let mut fresh = sequential(sizes.requests.div_ceil(4), || fresh_api.start_completed("bench")).await?;
    let p50 = ms(percentile(&mut runs, 50));
    let health_p50 = ms(percentile(&mut health, 50));
    // A durable 3-step run needs four commits one after another: the start, then each step's
    // outcome (with the next step marked running).
    let (commit, four_commits) = match databases {
        Databases::Files(_) => (
            super::floors::redb_commit_latency(dir, 2048, sizes.requests.max(100))?,
            "four_redb_commits_ms",
        ),
        Databases::Postgres { .. } => (
            super::databases::pg_commit_latency(&db, 2048, sizes.requests.max(100)).await?,
            "four_pg_commits_ms",
        ),
    };
    figures.insert(
        "http_p50_ms",
        Figure::new(p50, "ms", health_p50, "GET /healthz p50")
            .with(four_commits, 4.0 * ms(commit))
            .with("fresh_connection_p50_ms", ms(percentile(&mut fresh, 50)))
            .with("fresh_connection_p99_ms", ms(percentile(&mut fresh, 99))),
    );
    figures.insert(
        "http_p99_ms",
        Figure::new(
            ms(percentile(&mut runs, 99)),
            "ms",
            ms(percentile(&mut health, 99)),
            "GET /healthz p99",
        ),
    );

    progress(&format!("HTTP throughput, {CLIENTS} clients"));
    let health_load = concurrent(
        std::slice::from_ref(&api),
        sizes.client_runs * 4,
        None,
        |api| async move { api.health().await },
    )
    .await?;
    let bar = progress_bar(sizes.client_runs, "runs");
    let mut load = concurrent(
        std::slice::from_ref(&api),
        sizes.client_runs,
        Some(&bar),
        |api| async move { api.start_completed("bench").await },
    )
    .await?;
    bar.finish_and_clear();
    figures.insert(
        "http_runs_per_s_64_clients",
        Figure::new(
            load.per_s(),
            "runs/s",
            health_load.per_s(),
            "GET /healthz/s, 64 clients",
        )
        .with("p50_ms", ms(percentile(&mut load.latencies, 50)))
        .with("p99_ms", ms(percentile(&mut load.latencies, 99))),
    );

    // Every run so far has finished; top the history up to its size with more of them.
    let done = 10 + sizes.requests + sizes.requests.div_ceil(4) + sizes.client_runs;
    let more = sizes.history.saturating_sub(done);
    progress(&format!("HTTP latency with {} finished runs", done + more));
    let bar = progress_bar(more, "finished runs");
    concurrent(std::slice::from_ref(&api), more, Some(&bar), |api| async move {
        api.start_completed("bench").await
    })
    .await?;
    bar.finish_and_clear();
    super::settle_disk();
    // A client of its own, as for the fresh figure: one connection, not 64 idle ones in turn.
    let one = Api::new(&server, &token, true)?;
    let mut runs = sequential(sizes.requests, || one.start_completed("bench")).await?;
    figures.insert(
        "http_p50_ms_with_history",
        Figure::new(ms(percentile(&mut runs, 50)), "ms", p50, "same, fresh db")
            .with("finished_runs_in_db", (done + more) as f64)
            .with("p99_ms", ms(percentile(&mut runs, 99))),
    );

    progress(&format!(
        "browser UI pages with {} runs",
        done + more + sizes.requests
    ));
    super::ui::pages(
        &server,
        &one,
        &token,
        done + more + sizes.requests,
        health_p50,
        sizes,
        figures,
    )
    .await
}

pub async fn waiting_runs(
    dir: &Path,
    sizes: Sizes,
    progress: &impl Fn(&str),
    figures: &mut BTreeMap<&'static str, Figure>,
) -> Result<()> {
    progress(&format!("{} waiting runs", sizes.waiting));
    let path = dir.join("waiting.redb");
    let db = path.display().to_string();
    let token = admin_token(&db)?;
    let server = Server::start(&db)?;
    let (empty_ready, empty_rss) = (server.ready, server.rss_mb()?);
    let api = Api::new(&server, &token, true)?;
    api.create_workflow(APPROVAL_WORKFLOW).await?;
    let first = api.start_waiting().await?;
    let answer_floor = api.approve_and_finish(&first).await?;

    let bar = progress_bar(sizes.waiting, "waiting runs");
    let ids = Arc::new(std::sync::Mutex::new(Vec::with_capacity(sizes.waiting)));
    let kept = ids.clone();
    concurrent(
        std::slice::from_ref(&api),
        sizes.waiting,
        Some(&bar),
        move |api| {
            let kept = kept.clone();
            async move {
                let started = Instant::now();
                let id = api.start_waiting().await?;
                kept.lock().expect("ids lock").push(id);
                Ok(started.elapsed())
            }
        },
    )
    .await?;
    bar.finish_and_clear();
    let rss = server.rss_mb()?;
    let db_mb = std::fs::metadata(&path)?.len() as f64 / 1e6;
    server.stop()?;

    progress("restart with the waiting runs");
    let server = Server::start(&db)?;
    let restarted = server.ready;
    let rss_after_restart = server.rss_mb()?;
    let api = Api::new(&server, &token, true)?;
    let mut ids = std::mem::take(&mut *ids.lock().expect("ids lock"));
    let last = ids.pop().ok_or_else(|| anyhow!("no waiting runs"))?;
    let answer = api.approve_and_finish(&last).await?;
    // A crash leaves the database to be checked on the next open.
    drop(server);
    let server = Server::start(&db)?;
    let api = Api::new(&server, &token, true)?;
    let waiting_now = api.count_waiting().await?;
    if waiting_now != ids.len() {
        bail!(
            "correctness: {waiting_now} runs wait after the restarts, expected {}",
            ids.len()
        );
    }
    progress(&format!("the inbox with {} runs waiting for others", ids.len()));
    super::ui::inbox_of_no_one(&server, &token, ids.len(), sizes, figures).await?;
    figures.insert(
        "waiting_rss_mb",
        Figure::new(rss, "MB", empty_rss, "same server, empty db")
            .with("waiting_runs", sizes.waiting as f64)
            .with("db_mb", db_mb)
            .with("rss_after_restart_mb", rss_after_restart),
    );
    figures.insert(
        "waiting_ready_s",
        Figure::new(
            restarted.as_secs_f64(),
            "s",
            empty_ready.as_secs_f64(),
            "same server, empty db",
        )
        .with("ready_after_crash_s", server.ready.as_secs_f64())
        .with("answer_ms", ms(answer))
        .with("answer_ms_empty_db", ms(answer_floor)),
    );
    Ok(())
}

/// `weft token create` on `db`: the admin token every request of the bench carries.
pub(super) fn admin_token(db: &str) -> Result<String> {
    let out = Command::new(std::env::current_exe()?)
        .args(["token", "create", "--name", "bench", "--role", "admin", "--db"])
        .arg(db)
        .stdin(Stdio::null())
        .output()
        .context("cannot run weft token create")?;
    if !out.status.success() {
        bail!(
            "weft token create failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}

/// A `weft serve` child process on a loopback port; killed (SIGKILL, as in a crash) when
/// dropped.
pub(super) struct Server {
    child: Child,
    base: String,
    /// From spawning the process to its `weft serving` line (recovery done, port bound).
    ready: Duration,
}

impl Server {
    pub(super) fn start(db: &str) -> Result<Server> {
        let started = Instant::now();
        let mut child = Command::new(std::env::current_exe()?)
            .args(["serve", "--listen", "127.0.0.1:0", "--db"])
            .arg(db)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start weft serve")?;
        let stderr = child
            .stderr
            .take()
            .ok_or_else(|| anyhow!("weft serve has no stderr"))?;
        let (tell, address) = std::sync::mpsc::channel();
        // Reads stderr to its end, so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut tell = Some(tell);
            let mut seen = String::new();
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(tell) = tell.as_ref() {
                    match line.strip_prefix("weft serving ") {
                        Some(rest) => {
                            let url = rest.split_whitespace().next().unwrap_or_default().to_owned();
                            let _ = tell.send(Ok(url));
                            seen.clear();
                        }
                        None => seen.push_str(&format!("{line}\n")),
                    }
                }
            }
            if let Some(tell) = tell.take() {
                let _ = tell.send(Err(seen));
            }
        });
        let base = match address.recv_timeout(Duration::from_secs(300)) {
            Ok(Ok(url)) => url,
            Ok(Err(log)) => bail!("weft serve stopped before serving:\n{log}"),
            Err(_) => {
                let _ = child.kill();
                bail!("weft serve did not start within 300 s")
            }
        };
        Ok(Server {
            child,
            base,
            ready: started.elapsed(),
        })
    }

    /// The server's address, such as `http://127.0.0.1:41234`.
    pub(super) fn base(&self) -> &str {
        &self.base
    }

    /// The server's resident memory, from /proc.
    fn rss_mb(&self) -> Result<f64> {
        let path = PathBuf::from(format!("/proc/{}/status", self.child.id()));
        let status =
            std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let kb: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| anyhow!("no VmRSS in {}", path.display()))?;
        Ok(kb / 1024.0)
    }
}

impl Server {
    /// Asks the server to stop (SIGTERM, as a service manager would) and waits until it has.
    pub(super) fn stop(mut self) -> Result<()> {
        let pid = libc::pid_t::try_from(self.child.id())?;
        // SAFETY: `kill` has no memory effects; `pid` is our own child, not yet reaped.
        if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
            bail!("cannot signal weft serve: {}", std::io::Error::last_os_error());
        }
        let status = self.child.wait()?;
        if !status.success() {
            bail!("weft serve stopped with {status}");
        }
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP client of one server, sending the bench's token.
#[derive(Clone)]
pub(super) struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Api {
    /// A client that keeps connections alive, or opens a new one for every request.
    pub(super) fn new(server: &Server, token: &str, keep_alive: bool) -> Result<Api> {
        let mut builder = reqwest::Client::builder().tcp_nodelay(true);
        if !keep_alive {
            builder = builder.pool_max_idle_per_host(0);
        }
        Ok(Api {
            base: server.base.clone(),
            token: token.to_owned(),
            http: builder.build()?,
        })
    }

    async fn send(&self, request: reqwest::RequestBuilder, expect: u16) -> Result<Value> {
        let response = request.bearer_auth(&self.token).send().await?;
        let status = response.status().as_u16();
        let body = response.bytes().await?;
        if status != expect {
            bail!(
                "expected {expect}, got {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        Ok(if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body)?
        })
    }

    async fn health(&self) -> Result<Duration> {
        let started = Instant::now();
        self.send(self.http.get(format!("{}/healthz", self.base)), 200)
            .await?;
        Ok(started.elapsed())
    }

    pub(super) async fn create_workflow(&self, json: &str) -> Result<()> {
        let request = self
            .http
            .post(format!("{}/v1/workflows", self.base))
            .header("content-type", "application/json")
            .body(json.to_owned());
        self.send(request, 201).await.map(drop)
    }

    async fn start(&self, workflow: &str) -> Result<Value> {
        let url = format!("{}/v1/workflows/{workflow}/executions?wait=true", self.base);
        self.send(self.http.post(url).json(&json!({"input": {}})), 200)
            .await
    }

    /// Starts a run, waits until it completed, and returns how long that took.
    pub(super) async fn start_completed(&self, workflow: &str) -> Result<Duration> {
        let started = Instant::now();
        let run = self.start(workflow).await?;
        let elapsed = started.elapsed();
        expect_state(&run, "completed")?;
        Ok(elapsed)
    }

    /// Starts a run of the approval workflow and returns its id once it waits.
    pub(super) async fn start_waiting(&self) -> Result<String> {
        self.start_waiting_of("bench-approval").await
    }

    /// Starts a run of `workflow` and returns its id once it waits.
    pub(super) async fn start_waiting_of(&self, workflow: &str) -> Result<String> {
        let run = self.start(workflow).await?;
        expect_state(&run, "waiting")?;
        run["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("a run without an id: {run}"))
    }

    /// Approves a waiting run with a Keyfactor signal; returns how long the answer took,
    /// then checks that the run went on to complete.
    async fn approve_and_finish(&self, id: &str) -> Result<Duration> {
        Ok(self.approve_until_completed(id).await?.0)
    }

    /// Approves a waiting run, then waits (`?wait=true`) until it has completed; returns how
    /// long the answer took and how long until this server saw the run completed.
    pub(super) async fn approve_until_completed(&self, id: &str) -> Result<(Duration, Duration)> {
        let signal = json!({"SignalKey": "Approve.ApprovalStatus", "Data": {"Approved": true}});
        let url = format!("{}/v1/instances/{id}/signals", self.base);
        let started = Instant::now();
        self.send(self.http.post(url).json(&signal), 204).await?;
        let answered = started.elapsed();
        let url = format!("{}/v1/executions/{id}?wait=true", self.base);
        expect_state(&self.send(self.http.get(url), 200).await?, "completed")?;
        Ok((answered, started.elapsed()))
    }

    /// How many runs wait for a person, counted from the paged listing.
    async fn count_waiting(&self) -> Result<usize> {
        let mut count = 0;
        let mut cursor: Option<String> = None;
        loop {
            let mut url = format!("{}/v1/executions?state=waiting&limit=1000", self.base);
            if let Some(c) = &cursor {
                url.push_str(&format!("&cursor={c}"));
            }
            let page = self.send(self.http.get(url), 200).await?;
            count += page["items"].as_array().map_or(0, Vec::len);
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return Ok(count),
            }
        }
    }
}

fn expect_state(run: &Value, state: &str) -> Result<()> {
    if run["state"] != state {
        bail!("correctness: expected a {state} run, got {run}");
    }
    Ok(())
}

/// `count` requests one after another; their latencies.
pub(super) async fn sequential<F, Fut>(count: usize, mut request: F) -> Result<Vec<Duration>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Duration>>,
{
    let mut latencies = Vec::with_capacity(count);
    for _ in 0..count {
        latencies.push(request().await?);
    }
    Ok(latencies)
}

/// What a concurrent load did.
pub(super) struct Load {
    pub(super) latencies: Vec<Duration>,
    elapsed: Duration,
}

impl Load {
    pub(super) fn per_s(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }
}

type Request = Pin<Box<dyn Future<Output = Result<Duration>> + Send>>;

/// `count` requests made by [`CLIENTS`] clients at once, each starting its next request when
/// its last one answered. Client `i` talks to `apis[i % apis.len()]`.
pub(super) async fn concurrent<F, Fut>(
    apis: &[Api],
    count: usize,
    bar: Option<&ProgressBar>,
    request: F,
) -> Result<Load>
where
    F: Fn(Api) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Duration>> + Send + 'static,
{
    let request: Arc<dyn Fn(Api) -> Request + Send + Sync> =
        Arc::new(move |api| Box::pin(request(api)) as Request);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut clients = Vec::with_capacity(CLIENTS);
    for i in 0..CLIENTS {
        let api = apis[i % apis.len()].clone();
        let (next, request, bar) = (next.clone(), request.clone(), bar.cloned());
        clients.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                if next.fetch_add(1, Ordering::Relaxed) >= count {
                    return anyhow::Ok(latencies);
                }
                latencies.push(request(api.clone()).await?);
                if let Some(bar) = &bar {
                    bar.inc(1);
                }
            }
        }));
    }
    let mut latencies = Vec::with_capacity(count);
    for client in clients {
        latencies.extend(client.await??);
    }
    Ok(Load {
        latencies,
        elapsed: started.elapsed(),
    })
}

/// A progress bar on stderr (drawn only on a terminal).
pub(super) fn progress_bar(len: usize, what: &'static str) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template("  {bar:40} {pos}/{len} {msg} ({per_sec}, {eta} left)")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(what);
    bar
}
