//! Shared helpers for the integration tests: a `weft` binary bound to a fresh database in a
//! temporary directory, small readers for the run record it prints, and a `weft serve` with an
//! HTTP client for the API tests.

use serde_json::Value;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// The `weft` binary under test.
pub const WEFT: &str = env!("CARGO_BIN_EXE_weft");

/// The repository root, where `examples/` lives.
pub const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// The directory of every built plugin, test-only ones (`hostile.wasm`) included.
pub const PLUGIN_DIR: &str = env!("WEFT_PLUGIN_DIR");

/// How long any one `weft` command may run before the test calls it a hang. Far above what
/// any command here needs; it only keeps a hung command from hanging the test suite.
pub const HANG_GUARD: Duration = Duration::from_secs(60);
/// How long waiting for a plugin compile may take: the server's default
/// `limits.compile_timeout`, after which the compile has failed.
pub const COMPILE_LIMIT: Duration = Duration::from_secs(300);

/// Reads a child's pipe to the end on its own thread, so a full pipe never blocks the child.
fn drain(mut pipe: impl std::io::Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Runs `command` (`weft ARGS`) to completion. A command still running after `limit` is
/// killed and the test fails: that is a hang, not a slow machine.
fn finish(mut command: Command, args: &[&str], limit: Duration) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {WEFT}: {e}"));
    let stdout = drain(child.stdout.take().expect("stdout is piped"));
    let stderr = drain(child.stderr.take().expect("stderr is piped"));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("cannot wait for weft") {
            break Some(status);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = Output {
        code: status.and_then(|s| s.code()).unwrap_or(-1),
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    };
    assert!(
        status.is_some(),
        "weft {args:?} hung: still running after {limit:?}, killed\n--- stdout\n{}\n--- stderr\n{}",
        out.stdout,
        out.stderr
    );
    out
}

/// What one `weft` command did.
#[derive(Debug)]
pub struct Output {
    /// The exit code; -1 if the process was killed by a signal.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Panics, showing everything the command printed, unless it exited with `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Output {
        assert_eq!(
            self.code, code,
            "expected exit code {code}, got {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    /// Stdout parsed as JSON (the run record of a `--json` command).
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e})\n--- stdout\n{}\n--- stderr\n{}",
                self.stdout, self.stderr
            )
        })
    }

    /// Panics unless stderr contains every one of `needles`.
    #[track_caller]
    pub fn expect_stderr(&self, needles: &[&str]) -> &Output {
        for needle in needles {
            assert!(
                self.stderr.contains(needle),
                "stderr does not contain {needle:?}\n--- stderr\n{}\n--- stdout\n{}",
                self.stderr,
                self.stdout
            );
        }
        self
    }
}

/// Where a test's data lives: a redb file, or a database on the test PostgreSQL server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Redb,
    Postgres,
}

/// A `weft` with its own database (a file, or a PostgreSQL database) and its own temporary
/// directory.
pub struct Weft {
    pub dir: tempfile::TempDir,
    /// The `--db` argument: a file path or a `postgres://` URL.
    pub db: String,
    /// Environment variables every command gets (see [`Weft::with_env`]).
    pub env: Vec<(String, String)>,
}

impl Default for Weft {
    fn default() -> Self {
        Weft::new()
    }
}

impl Weft {
    /// A `weft` on a redb file.
    pub fn new() -> Weft {
        Weft::on(Backend::Redb)
    }

    /// A `weft` on a fresh database of `backend`.
    pub fn on(backend: Backend) -> Weft {
        let dir = tempfile::tempdir().expect("cannot create a temporary directory");
        let db = match backend {
            Backend::Redb => dir.path().join("weft.redb").display().to_string(),
            Backend::Postgres => crate::postgres::database(),
        };
        Weft {
            dir,
            db,
            env: Vec::new(),
        }
    }

    /// The same `weft`, giving every command `name=value` in its environment.
    pub fn with_env(mut self, name: &str, value: &str) -> Weft {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Another `weft` (its own directory) on the same database: another runner.
    pub fn same_database(&self) -> Weft {
        Weft {
            dir: tempfile::tempdir().expect("cannot create a temporary directory"),
            db: self.db.clone(),
            env: self.env.clone(),
        }
    }

    /// The database file (for tests of the redb file itself).
    pub fn db_file(&self) -> PathBuf {
        assert!(
            !self.db.starts_with("postgres://"),
            "not a file database: {}",
            self.db
        );
        PathBuf::from(&self.db)
    }

    /// A `weft` command with `args`, then `--db` this database, stdin closed, run in the
    /// temporary directory. `WEFT_DB`, `WEFT_LOG`, `WEFT_SERVER` and `WEFT_TOKEN` from the
    /// caller's environment are removed, so a developer's settings never redirect a test.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = self.command_without_db(args);
        command.arg("--db").arg(&self.db);
        command
    }

    /// [`Weft::command`] without `--db`, for commands that name their databases otherwise.
    pub fn command_without_db(&self, args: &[&str]) -> Command {
        let mut command = Command::new(WEFT);
        command
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("WEFT_DB")
            .env_remove("WEFT_LOG")
            .env_remove("WEFT_SERVER")
            .env_remove("WEFT_TOKEN")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        command
    }

    /// Runs `weft ARGS --db DB` to completion.
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_in(self.dir.path(), args)
    }

    /// Runs `weft ARGS --db DB` to completion in `cwd`.
    pub fn run_in(&self, cwd: &Path, args: &[&str]) -> Output {
        let mut command = self.command(args);
        command.current_dir(cwd);
        finish(command, args, HANG_GUARD)
    }

    /// Runs `weft ARGS` (no `--db`) to completion.
    pub fn run_without_db(&self, args: &[&str]) -> Output {
        finish(self.command_without_db(args), args, HANG_GUARD)
    }

    /// [`Weft::run_without_db`], allowing it `limit` (a command that waits for a plugin
    /// compile: [`COMPILE_LIMIT`]).
    pub fn run_without_db_within(&self, limit: Duration, args: &[&str]) -> Output {
        finish(self.command_without_db(args), args, limit)
    }

    /// Runs `line` with `sh -c`, as a person would paste it: `weft` is the binary under test
    /// (first on `PATH`), in the temporary directory, with the same environment as
    /// [`Weft::command_without_db`] plus `env`.
    pub fn run_shell(&self, line: &str, env: &[(&str, &str)]) -> Output {
        let bin = Path::new(WEFT).parent().expect("the binary has a directory");
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
        let mut command = Command::new("sh");
        command
            .args(["-c", line])
            .current_dir(self.dir.path())
            .env("PATH", path)
            .env_remove("WEFT_DB")
            .env_remove("WEFT_LOG")
            .env_remove("WEFT_SERVER")
            .env_remove("WEFT_TOKEN")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .envs(env.iter().copied())
            .stdin(Stdio::null());
        finish(command, &[line], HANG_GUARD)
    }

    /// Runs `weft ARGS --db DB` and parses its stdout as JSON, whatever the exit code.
    pub fn json(&self, args: &[&str]) -> Value {
        self.run(args).json()
    }

    /// Spawns `weft ARGS --db DB` with stderr piped, for tests that watch it as it runs.
    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {WEFT}: {e}"))
    }

    /// Writes `text` as `weft.toml` in the temporary directory and returns its path, for
    /// `--config`.
    pub fn write_config(&self, text: &str) -> PathBuf {
        self.write_file("weft.toml", text.as_bytes())
    }

    /// Writes `yaml` to `name` in the temporary directory.
    pub fn write_workflow(&self, name: &str, yaml: &str) -> PathBuf {
        self.write_file(name, yaml.as_bytes())
    }

    /// Writes `bytes` to `name` in the temporary directory.
    pub fn write_file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.dir.path().join(name);
        let mut file = std::fs::File::create(&path).expect("cannot create a file in the temporary directory");
        file.write_all(bytes)
            .expect("cannot write a file in the temporary directory");
        path
    }

    /// `weft run FILE --json EXTRA...`: the command's output and the run record it printed.
    pub fn start(&self, file: &Path, extra: &[&str]) -> (Output, Value) {
        let mut args = vec!["run", path_str(file), "--json"];
        args.extend_from_slice(extra);
        let out = self.run(&args);
        let record = out.json();
        (out, record)
    }

    /// `weft runs show ID --json`.
    pub fn show(&self, id: &str) -> Output {
        self.run(&["runs", "show", id, "--json"])
    }

    /// The run record as stored now.
    #[track_caller]
    pub fn record(&self, id: &str) -> Value {
        self.show(id).json()
    }

    /// `weft answer ID SIGNAL DATA --as WHO --json`.
    pub fn answer(&self, id: &str, signal: &str, data: &str, who: &str) -> Output {
        self.run(&["answer", id, signal, data, "--as", who, "--json"])
    }

    /// `weft token create --name NAME --role ROLE [--group G]... --db DB`: the secret it
    /// printed on stdout. Panics unless it succeeded and printed exactly one well-formed token.
    #[track_caller]
    pub fn create_token(&self, name: &str, role: &str, groups: &[&str]) -> String {
        self.create_token_with_roles(name, &[role], groups)
    }

    /// `weft token create --name NAME --role ROLE... --group GROUP...`; returns the token.
    pub fn create_token_with_roles(&self, name: &str, roles: &[&str], groups: &[&str]) -> String {
        let mut args = vec!["token", "create", "--name", name];
        for role in roles {
            args.extend(["--role", role]);
        }
        for group in groups {
            args.extend(["--group", group]);
        }
        let out = self.run(&args);
        out.expect_code(0);
        let secret = out.stdout.trim().to_owned();
        assert!(
            is_token(&secret) && out.stdout.lines().count() == 1,
            "`weft token create` did not print one token on stdout\n--- stdout\n{}\n--- stderr\n{}",
            out.stdout,
            out.stderr
        );
        secret
    }

    /// Adds the test-only `hostile` plugin as hostile@1.0.0.
    pub fn add_hostile(&self) -> Output {
        let file = hostile_wasm();
        self.run(&[
            "plugin",
            "add",
            path_str(&file),
            "--name",
            "hostile",
            "--version",
            "1.0.0",
        ])
    }
}

/// Whether `text` looks like an API token: `weft_` and 64 hex digits.
pub fn is_token(text: &str) -> bool {
    text.strip_prefix("weft_")
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The hostile plugin's component file.
pub fn hostile_wasm() -> PathBuf {
    Path::new(PLUGIN_DIR).join("hostile.wasm")
}

/// The test-only `probe` action target's component file.
pub fn probe_wasm() -> PathBuf {
    Path::new(PLUGIN_DIR).join("probe.wasm")
}

/// A path as `&str` (test paths are always UTF-8).
pub fn path_str(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

/// The run id of a record.
#[track_caller]
pub fn run_id(record: &Value) -> String {
    record["id"]
        .as_str()
        .unwrap_or_else(|| panic!("record has no id: {record:#}"))
        .to_owned()
}

/// The record's state (`completed`, `waiting`, ...).
#[track_caller]
pub fn state(record: &Value) -> &str {
    record["state"]
        .as_str()
        .unwrap_or_else(|| panic!("record has no state: {record:#}"))
}

/// The step called `name` in a run record.
#[track_caller]
pub fn step<'a>(record: &'a Value, name: &str) -> &'a Value {
    record["steps"]
        .as_array()
        .and_then(|steps| steps.iter().find(|s| s["name"] == name))
        .unwrap_or_else(|| panic!("no step {name} in record {record:#}"))
}

/// A step's state.
#[track_caller]
pub fn step_state<'a>(record: &'a Value, name: &str) -> &'a str {
    step(record, name)["state"]
        .as_str()
        .expect("a step's state is a string")
}

/// An RFC 3339 time from a record.
#[track_caller]
pub fn time(value: &Value) -> OffsetDateTime {
    let text = value.as_str().unwrap_or_else(|| panic!("not a time: {value}"));
    OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("not an RFC 3339 time {text:?}: {e}"))
}

/// Sleeps until the wall clock is past `deadline`.
pub fn sleep_past(deadline: OffsetDateTime) {
    loop {
        let left = deadline - OffsetDateTime::now_utc();
        if left.is_negative() {
            return;
        }
        std::thread::sleep(Duration::try_from(left).unwrap_or_default() + Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------------------------
// `weft serve` and an HTTP client for it.

/// How long a test waits for a run (or anything else it polls) to reach a state. Far above
/// what any run here needs; it only turns a stuck run into a failure instead of a hang.
pub const POLL_LIMIT: Duration = Duration::from_secs(60);

/// A `weft serve` on a loopback port with its own database file. Killed when dropped; its
/// stderr is printed then if the test is failing.
pub struct Server {
    /// The temporary directory and database file.
    pub weft: Weft,
    /// Arguments after `serve` (besides `--listen` and `--db`), kept for [`Server::restart`].
    args: Vec<String>,
    child: Child,
    /// Everything the server wrote to stderr so far.
    log: std::sync::Arc<std::sync::Mutex<String>>,
    api: Api,
}

impl Server {
    /// `weft serve --listen 127.0.0.1:0 --db FILE` on a fresh database.
    pub fn start() -> Server {
        Server::with_args(&[])
    }

    /// `weft serve` on a fresh database of `backend`.
    pub fn start_on(backend: Backend) -> Server {
        Server::on(Weft::on(backend), &[])
    }

    /// [`Server::start`] with extra `serve` arguments, such as `--body-limit-mb 1`.
    pub fn with_args(args: &[&str]) -> Server {
        Server::on(Weft::new(), args)
    }

    /// `weft serve --listen 127.0.0.1:0 ARGS` on `weft`'s database, which may already hold
    /// tokens (see [`Weft::create_token`]).
    pub fn on(weft: Weft, args: &[&str]) -> Server {
        let mut all = vec!["--listen".to_owned(), "127.0.0.1:0".to_owned()];
        all.extend(args.iter().map(|a| a.to_string()));
        Server::spawn(weft, all)
    }

    /// `weft serve --listen ADDRESS` on `weft`'s database. The client talks to it over
    /// loopback whatever address it listens on.
    pub fn listening(weft: Weft, address: &str) -> Server {
        Server::spawn(weft, vec!["--listen".to_owned(), address.to_owned()])
    }

    fn spawn(weft: Weft, args: Vec<String>) -> Server {
        let (child, base, log) = spawn_server(&weft, &args);
        Server {
            weft,
            args,
            child,
            log,
            api: Api::new(base),
        }
    }

    /// Kills the server with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Kills the server (SIGKILL, as a crash would) and starts another on the same database.
    /// The new one listens on another port; this handle's client follows it.
    pub fn restart(&mut self) {
        self.kill();
        self.start_again();
    }

    /// Asks the server to stop with SIGTERM, as a service manager would, and returns how it
    /// exited. Panics if it has not exited within [`HANG_GUARD`].
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let pid = libc::pid_t::try_from(self.child.id()).expect("a pid");
        // SAFETY: `kill` has no memory effects; `pid` is our own child, not yet reaped.
        assert_eq!(
            unsafe { libc::kill(pid, libc::SIGTERM) },
            0,
            "cannot signal weft serve"
        );
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("weft serve can be waited for") {
                return status;
            }
            assert!(
                started.elapsed() < HANG_GUARD,
                "weft serve did not stop within {HANG_GUARD:?} of SIGTERM\n--- stderr\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts another server on the same database after [`Server::stop`]; this handle's client
    /// follows it.
    pub fn start_again(&mut self) {
        let (child, base, log) = spawn_server(&self.weft, &self.args);
        self.child = child;
        self.log = log;
        self.api = Api::new(base);
    }

    /// A client for this server, to move into a task.
    pub fn api(&self) -> Api {
        self.api.clone()
    }

    /// The server's resident memory, in MiB (Linux).
    pub fn rss_mib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the server's /proc status");
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS in /proc status");
        kib >> 10
    }

    /// The `host:port` the server listens on.
    pub fn address(&self) -> String {
        self.api
            .base
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned()
    }

    /// What the server has written to stderr so far.
    pub fn stderr(&self) -> String {
        self.log.lock().expect("server log lock").clone()
    }

    /// Waits until the server has written `needle` to stderr, and returns all it wrote.
    /// Panics after [`POLL_LIMIT`].
    #[track_caller]
    pub fn wait_for_stderr(&self, needle: &str) -> String {
        let started = Instant::now();
        loop {
            let log = self.stderr();
            if log.contains(needle) {
                return log;
            }
            assert!(
                started.elapsed() < POLL_LIMIT,
                "weft serve did not print {needle:?} within {POLL_LIMIT:?}\n--- stderr\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl std::ops::Deref for Server {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- weft serve stderr\n{}", self.stderr());
        }
    }
}

/// Spawns `weft serve ARGS` (`--listen` among them) on `weft`'s database and waits for its
/// `weft serving http://...` line. Returns the child, the base URL (on loopback, for a server
/// listening on every address) and the stderr collected (and still being collected).
fn spawn_server(weft: &Weft, extra: &[String]) -> (Child, String, std::sync::Arc<std::sync::Mutex<String>>) {
    use std::io::BufRead as _;
    let mut args = vec!["serve"];
    args.extend(extra.iter().map(String::as_str));
    let mut child = weft
        .command(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {WEFT} serve: {e}"));
    let stderr = child.stderr.take().expect("stderr is piped");
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let (found, base) = std::sync::mpsc::channel::<String>();
    let collected = log.clone();
    // Reads stderr to the end, so the server never blocks on a full pipe.
    std::thread::spawn(move || {
        let mut found = Some(found);
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            // Logged first, so the log has the line once the caller hears of it.
            {
                let mut log = collected.lock().expect("server log lock");
                log.push_str(&line);
                log.push('\n');
            }
            // With `--log-format json` the line is the `message` of a JSON object.
            let message = serde_json::from_str::<Value>(&line)
                .ok()
                .and_then(|v| v["message"].as_str().map(str::to_owned));
            if let Some(url) = message
                .as_deref()
                .unwrap_or(&line)
                .strip_prefix("weft serving ")
                .and_then(|rest| rest.split_whitespace().next())
            {
                if let Some(sender) = found.take() {
                    let _ = sender.send(url.to_owned());
                }
            }
        }
    });
    match base.recv_timeout(HANG_GUARD) {
        Ok(url) => (child, url.replace("//0.0.0.0:", "//127.0.0.1:"), log),
        Err(_) => {
            let _ = child.kill();
            let status = child.wait();
            let log = log.lock().expect("server log lock").clone();
            panic!("weft serve did not print its address ({status:?})\n--- stderr\n{log}");
        }
    }
}

/// An HTTP client bound to one server's base URL, sending one API token (or none).
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub client: reqwest::Client,
    /// Sent as `Authorization: Bearer TOKEN` with every request made by [`Api::request`].
    pub token: Option<String>,
}

/// The header naming the caller.
pub const USER: &str = "X-Weft-User";

impl Api {
    fn new(base: String) -> Api {
        let client = reqwest::Client::builder()
            .timeout(HANG_GUARD)
            .build()
            .expect("an HTTP client");
        Api {
            base,
            client,
            token: None,
        }
    }

    /// The same server and connection pool, sending `token` as a bearer token.
    pub fn with_token(&self, token: &str) -> Api {
        Api {
            token: Some(token.to_owned()),
            ..self.clone()
        }
    }

    /// The same server and connection pool, sending no `Authorization` header.
    pub fn anonymous(&self) -> Api {
        Api {
            token: None,
            ..self.clone()
        }
    }

    /// A client for the same server that opens a new connection for every request. For
    /// requests the server answers before reading their body (413): it closes such a
    /// connection, and a pooled client could send the next request on it.
    pub fn unpooled(&self) -> Api {
        let client = reqwest::Client::builder()
            .timeout(HANG_GUARD)
            .pool_max_idle_per_host(0)
            .build()
            .expect("an HTTP client");
        Api {
            base: self.base.clone(),
            client,
            token: self.token.clone(),
        }
    }

    /// The absolute URL of `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request to `path` with this client's token, for tests that set their own headers or
    /// body.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.client.request(method, self.url(path));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends a request and reads the whole answer.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Resp {
        let (client, request) = request.build_split();
        let request = request.expect("a valid request");
        let what = format!("{} {}", request.method(), request.url());
        let response = client
            .execute(request)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e:?}"));
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response
            .text()
            .await
            .unwrap_or_else(|e| panic!("{what}: cannot read the body: {e:?}"));
        Resp {
            what,
            status,
            headers,
            text,
        }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send(self.request(reqwest::Method::GET, path)).await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.send(self.request(reqwest::Method::DELETE, path)).await
    }

    /// POSTs `body` as JSON.
    pub async fn post(&self, path: &str, body: &Value) -> Resp {
        self.send(self.request(reqwest::Method::POST, path).json(body))
            .await
    }

    /// PUTs `body` as JSON.
    pub async fn put(&self, path: &str, body: &Value) -> Resp {
        self.send(self.request(reqwest::Method::PUT, path).json(body))
            .await
    }

    /// GETs `path` until `done` accepts the JSON answer, and returns it. Panics after
    /// [`POLL_LIMIT`], showing the last answer and `what` was awaited.
    pub async fn poll(&self, path: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        self.poll_within(POLL_LIMIT, path, what, done).await
    }

    /// [`Api::poll`] allowing `limit` (a plugin compile: [`COMPILE_LIMIT`]).
    pub async fn poll_within(
        &self,
        limit: Duration,
        path: &str,
        what: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let started = Instant::now();
        loop {
            let now = self.get(path).await.expect_status(200).json();
            if done(&now) {
                return now;
            }
            assert!(
                started.elapsed() < limit,
                "GET {path}: still not {what} after {limit:?}: {now:#}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// POSTs `body` as JSON on behalf of `user` (the `X-Weft-User` header).
    pub async fn post_as(&self, user: &str, path: &str, body: &Value) -> Resp {
        self.send(
            self.request(reqwest::Method::POST, path)
                .header(USER, user)
                .json(body),
        )
        .await
    }

    /// PUTs `body` as JSON on behalf of `user` (the `X-Weft-User` header).
    pub async fn put_as(&self, user: &str, path: &str, body: &Value) -> Resp {
        self.send(
            self.request(reqwest::Method::PUT, path)
                .header(USER, user)
                .json(body),
        )
        .await
    }

    /// POSTs `body` with the given content type.
    pub async fn post_raw(&self, path: &str, content_type: &str, body: impl Into<reqwest::Body>) -> Resp {
        self.send(
            self.request(reqwest::Method::POST, path)
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(body),
        )
        .await
    }

    /// Creates a workflow version from YAML; panics unless the server answers 201.
    pub async fn create_workflow(&self, yaml: &str) -> Value {
        self.post_raw("/v1/workflows", "application/yaml", yaml.to_owned())
            .await
            .expect_status(201)
            .json()
    }

    /// Starts a run of `workflow` with `body`; panics unless the server answers 202.
    /// Returns the run id.
    pub async fn start_run(&self, workflow: &str, body: &Value) -> String {
        let started = self
            .post(&format!("/v1/workflows/{workflow}/executions"), body)
            .await;
        started.expect_status(202);
        run_id(&started.json())
    }

    /// The path of a run.
    pub fn execution_path(workflow: &str, id: &str) -> String {
        format!("/v1/workflows/{workflow}/executions/{id}")
    }

    /// The run as `GET /v1/workflows/{workflow}/executions/{id}` shows it.
    pub async fn execution(&self, workflow: &str, id: &str) -> Value {
        self.get(&Api::execution_path(workflow, id))
            .await
            .expect_status(200)
            .json()
    }

    /// Polls `GET .../state` until `done(state)` holds, then returns the full execution.
    /// Panics after [`POLL_LIMIT`].
    pub async fn wait_for(&self, workflow: &str, id: &str, what: &str, done: impl Fn(&str) -> bool) -> Value {
        let path = format!("{}/state", Api::execution_path(workflow, id));
        let started = Instant::now();
        loop {
            let now = self.get(&path).await.expect_status(200).json();
            if done(state(&now)) {
                return self.execution(workflow, id).await;
            }
            if started.elapsed() > POLL_LIMIT {
                let run = self.execution(workflow, id).await;
                panic!(
                    "run {id} is still {} after {POLL_LIMIT:?}, not {what}: {run:#}",
                    state(&now)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Polls until the run is in `wanted`, and returns it.
    pub async fn wait_state(&self, workflow: &str, id: &str, wanted: &str) -> Value {
        self.wait_for(workflow, id, wanted, |s| s == wanted).await
    }
}

/// A whole HTTP answer.
#[derive(Debug)]
pub struct Resp {
    /// The request, for messages.
    pub what: String,
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Resp {
    /// Panics, showing the request and body, unless the status is `status`.
    #[track_caller]
    pub fn expect_status(&self, status: u16) -> &Resp {
        assert_eq!(
            self.status, status,
            "{}: expected {status}, got {}: {}",
            self.what, self.status, self.text
        );
        self
    }

    /// The body as JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| {
            panic!(
                "{}: the body ({}) is not JSON ({e}): {}",
                self.what, self.status, self.text
            )
        })
    }

    /// Checks an error answer: `status`, a JSON body with `code` and a non-empty `message`
    /// containing every one of `needles`. Returns the body.
    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str, needles: &[&str]) -> Value {
        self.expect_status(status);
        let body = self.json();
        assert_eq!(body["code"], code, "{}: wrong error code: {body:#}", self.what);
        let message = body["message"]
            .as_str()
            .unwrap_or_else(|| panic!("{}: the error has no message: {body:#}", self.what));
        assert!(!message.is_empty(), "{}: empty error message", self.what);
        for needle in needles {
            assert!(
                message.contains(needle),
                "{}: the message does not contain {needle:?}: {message}",
                self.what
            );
        }
        body
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}
