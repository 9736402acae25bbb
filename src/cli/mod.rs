//! The `weft` command line: parses arguments, resolves once where the commands act (a
//! database with `--db`, or a server with `--server`, never both) and hands every command to
//! that [`backend::Backend`]. The command bodies are in `commands.rs`, the backends in
//! `local.rs` and `remote.rs`, and everything printed is shaped in `show.rs`.

mod backend;
mod commands;
mod local;
mod remote;
mod scaffold;
mod show;

use anyhow::{anyhow, bail, Result};
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "weft", version, about = "A WebAssembly-extensible workflow runner")]
struct Cli {
    /// How log lines are written to stderr (the `WEFT_LOG` variable filters them).
    #[arg(long, value_enum, global = true, default_value = "text")]
    log_format: crate::telemetry::LogFormat,
    #[command(flatten)]
    target: Target,
    #[command(subcommand)]
    command: Command,
}

/// Where every command acts: a database, with the engine in this process, or a server.
#[derive(Args)]
#[command(next_help_heading = "Where (one of --db, --server)")]
struct Target {
    /// The database: a redb file, or postgres://USER[:PASS]@HOST:PORT/DB [default: weft.redb
    /// in the user's data directory]. Not with --server.
    #[arg(
        long,
        env = "WEFT_DB",
        global = true,
        hide_env_values = true,
        value_name = "FILE|URL"
    )]
    db: Option<String>,
    /// A running server's base URL, such as http://127.0.0.1:8080. Not with --db.
    #[arg(long, env = "WEFT_SERVER", global = true, value_name = "URL")]
    server: Option<String>,
    /// The API token to send to --server (`weft token create` prints one).
    #[arg(long, env = "WEFT_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
    /// Plugin grants and limits for the engine in this process (--db): a weft.toml file.
    #[arg(long, env = "WEFT_CONFIG", global = true)]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run a workflow file locally, answering interactions from --answer or the terminal.
    Run(RunArgs),
    #[command(flatten)]
    Acting(Acting),
    /// Work on whole databases (named by --from and --to).
    #[command(subcommand)]
    Db(DbCommand),
    /// Serve the HTTP API over the database (--db).
    Serve(ServeArgs),
    /// Compile a component read on stdin to an artifact on stdout (used by `weft serve` to
    /// compile uploads in a child process under a memory and time budget).
    #[command(name = "__compile", hide = true)]
    Compile,
    /// Measure the performance figures against floors measured in the same run.
    ///
    /// With --db postgres://USER[:PASS]@HOST:PORT/DB, on fresh databases created (and
    /// dropped) on that server, whose user needs CREATEDB [default: redb files in a temporary
    /// directory].
    Bench {
        /// Every figure at a small size (for CI).
        #[arg(long)]
        quick: bool,
        /// Print one JSON object of {value, unit, floor, ratio} per figure.
        #[arg(long)]
        json: bool,
        /// Measure only these groups of figures (repeatable; all by default).
        #[arg(long, value_enum)]
        only: Vec<crate::bench::Part>,
    },
}

/// The commands that act on a database or a server alike, through one backend.
#[derive(Subcommand)]
enum Acting {
    /// Start a stored workflow (the active version unless --version).
    Start(StartArgs),
    /// Answer a waiting step of a run (Keyfactor signal `Step.SignalType`) and continue it.
    Answer(AnswerArgs),
    /// List what waits for you (by --as and --group, or the token's holder), with the command
    /// that answers each.
    Inbox {
        #[command(flatten)]
        identity: Identity,
        #[arg(long)]
        json: bool,
    },
    /// Cancel a run that has not finished.
    Cancel {
        run: String,
        #[command(flatten)]
        identity: Identity,
        #[arg(long)]
        json: bool,
    },
    /// Continue runs left running when their runner stopped, and fire due timers.
    Resume,
    /// Continue a failed run from its failed step: completed steps and answers stay.
    Retry(RetryArgs),
    /// Start a new run with the inputs of a failed, rejected or canceled one.
    Restart {
        run: String,
        /// Start it on this version of the workflow [default: the version the run had].
        #[arg(long)]
        version: Option<u64>,
        #[command(flatten)]
        identity: Identity,
        #[arg(long)]
        json: bool,
    },
    /// Check a workflow definition against the plugins there without storing or running it.
    Validate { file: PathBuf },
    /// Read runs.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// Manage plugins.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Manage workflow definitions.
    #[command(subcommand)]
    Workflow(WorkflowCommand),
    /// Manage API tokens (shown once; only their hash is stored).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manage plugin grants (outbound HTTP, secret names, env, limits), kept in the database
    /// so every runner applies the same ones.
    #[command(subcommand)]
    Grant(GrantCommand),
    /// Start workflows by themselves: on a cron expression in a time zone, or an interval.
    #[command(subcommand)]
    Schedule(ScheduleCommand),
    /// Send events to steps waiting for them (`wait_for`).
    #[command(subcommand)]
    Event(EventCommand),
    /// List the runners sharing the database.
    Runners {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: std::net::SocketAddr,
    /// Largest request body accepted, in MiB (plugin uploads included) [default: limits.body_mb
    /// of weft.toml, 50].
    #[arg(long)]
    body_limit_mb: Option<usize>,
    /// How long this runner's runs stay its own without a heartbeat (with several runners
    /// on PostgreSQL): when it dies, the others take its runs over after this.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    lease: std::time::Duration,
    /// Send OpenTelemetry traces to this OTLP/HTTP collector (its base URL, such as
    /// http://127.0.0.1:4318; spans go to /v1/traces) [default: no traces].
    #[arg(long, value_name = "URL")]
    otlp_endpoint: Option<String>,
    /// Serve GET /metrics to anyone, without a token (by default it needs an admin's or an
    /// operator's token).
    #[arg(long)]
    metrics_without_token: bool,
}

#[derive(Args)]
struct StartArgs {
    /// The workflow id.
    workflow: String,
    /// A workflow input, NAME=VALUE; repeat for several.
    #[arg(short, long = "input", value_name = "NAME=VALUE")]
    inputs: Vec<String>,
    #[arg(long)]
    version: Option<u64>,
    /// Print the run once it finishes or waits for a person (and how to answer it), instead
    /// of its id. With --db this process drives the run until then either way.
    #[arg(long)]
    wait: bool,
    #[command(flatten)]
    identity: Identity,
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum WorkflowCommand {
    /// Validate and store a definition (YAML or JSON): the first version is active at once,
    /// later ones are drafts until published.
    Apply {
        file: PathBuf,
        /// Make this version the active one.
        #[arg(long)]
        publish: bool,
    },
    /// List workflows with their latest version.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show a definition as JSON (the latest version unless --version).
    Show {
        id: String,
        #[arg(long)]
        version: Option<u64>,
    },
    /// Delete every version of a workflow; runs keep the definitions they started with.
    Delete { id: String },
    /// Make a version the active one.
    Publish { id: String, version: u64 },
    /// Export workflows (every version) and the plugins they name as one bundle file.
    Export {
        #[arg(required = true)]
        ids: Vec<String>,
        /// Where to write the bundle.
        #[arg(short, long)]
        output: PathBuf,
        /// Carry the plugins' bytes too.
        #[arg(long)]
        include_plugins: bool,
    },
    /// Import a bundle, all or nothing.
    Import {
        file: PathBuf,
        /// OLD=NEW: import workflow OLD under the id NEW; repeat for several.
        #[arg(long, value_name = "OLD=NEW")]
        rename: Vec<String>,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token and print it (this is the only time it is shown).
    Create {
        #[arg(long)]
        name: String,
        /// admin, author, operator or approver; repeat for several (the token may do what
        /// any of them allows).
        #[arg(long = "role", required = true)]
        roles: Vec<crate::auth::Role>,
        /// A group the holder belongs to; repeat for several.
        #[arg(long = "group")]
        groups: Vec<String>,
    },
    /// List tokens (never their secrets).
    List,
    /// Revoke a token by id or name; it stops working at once.
    Revoke { which: String },
}

#[derive(Subcommand)]
enum ScheduleCommand {
    /// Create a schedule: --cron (with --timezone) or --every, for a workflow and its inputs.
    Create {
        /// The workflow it starts.
        #[arg(long)]
        workflow: String,
        /// Always this version [default: the active version at each fire].
        #[arg(long)]
        version: Option<u64>,
        /// Five fields: minute hour day-of-month month day-of-week, such as "0 9 * * 1-5".
        #[arg(long)]
        cron: Option<String>,
        /// The IANA time zone the cron expression is read in [default: UTC].
        #[arg(long)]
        timezone: Option<String>,
        /// A fixed interval instead of --cron, such as 15m.
        #[arg(long, value_parser = humantime::parse_duration)]
        every: Option<std::time::Duration>,
        /// A workflow input, NAME=VALUE; repeat for several.
        #[arg(short, long = "input", value_name = "NAME=VALUE")]
        inputs: Vec<String>,
        /// The schedule's id [default: made from the workflow's].
        #[arg(long)]
        id: Option<String>,
        /// While the previous run has not finished: skip the fire, queue it, or allow it.
        #[arg(long, value_enum, default_value = "skip")]
        overlap: crate::schedule::Overlap,
        /// Fires missed while no runner ran: none, or the latest one.
        #[arg(long, value_enum, default_value = "none")]
        catch_up: crate::schedule::CatchUp,
        /// Create it paused.
        #[arg(long)]
        paused: bool,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        identity: Identity,
    },
    /// List schedules with their next fire.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show a schedule and its next fire times as JSON.
    Show { id: String },
    /// Stop a schedule from firing until resumed.
    Pause { id: String },
    /// Let a paused schedule fire again, from now.
    Resume { id: String },
    /// Delete a schedule; the runs it started stay.
    Delete { id: String },
}

#[derive(Subcommand)]
enum EventCommand {
    /// Send an event: every step waiting for its name and key takes it (`data` becomes the
    /// step's output); steps that begin waiting within their lookback take it later.
    Send {
        /// The event's name, such as payment.received.
        name: String,
        /// The key waiting steps match, such as an order id.
        #[arg(long, default_value = "")]
        key: String,
        /// The event's data, as JSON.
        #[arg(long, default_value = "{}")]
        data: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        identity: Identity,
    },
}

#[derive(Subcommand)]
enum GrantCommand {
    /// List every grant.
    List,
    /// Show one plugin's grant as JSON.
    Show {
        /// A plugin name, or name@version.
        plugin: String,
    },
    /// Set (replace) a plugin's grant. Secret values are not given here: each runner reads
    /// them from its own weft.toml [secrets].
    Set {
        /// A plugin name, or name@version.
        plugin: String,
        #[command(flatten)]
        spec: GrantArgs,
        #[command(flatten)]
        identity: Identity,
    },
    /// Remove a plugin's grant.
    Delete {
        plugin: String,
        #[command(flatten)]
        identity: Identity,
    },
}

#[derive(Subcommand)]
enum DbCommand {
    /// Copy every record of one database into a new, empty one (a redb file into
    /// PostgreSQL, say), then check the copy record by record. Stop the runners on both first.
    Copy {
        /// The database to copy: a redb file or postgres://USER[:PASS]@HOST:PORT/DB.
        #[arg(long)]
        from: String,
        /// The empty database to copy into: a redb file or postgres://... .
        #[arg(long)]
        to: String,
    },
}

/// A grant on the command line.
#[derive(Args)]
struct GrantArgs {
    /// An allowed outbound request: `METHOD host[:port]` or `host[:port]`; repeat for several.
    #[arg(long = "http", value_name = "RULE")]
    http: Vec<String>,
    /// A secret the plugin may read; repeat for several.
    #[arg(long = "secret", value_name = "NAME")]
    secrets: Vec<String>,
    /// An environment variable the plugin sees, NAME=VALUE; repeat for several.
    #[arg(long = "env", value_name = "NAME=VALUE")]
    env: Vec<String>,
    #[arg(long)]
    memory_mb: Option<usize>,
    #[arg(long)]
    max_output_kb: Option<usize>,
    #[arg(long)]
    max_concurrent: Option<usize>,
}

impl GrantArgs {
    fn spec(self) -> Result<crate::plugins::grants::GrantSpec> {
        Ok(crate::plugins::grants::GrantSpec {
            env: commands::pairs("--env", &self.env)?.into_iter().collect(),
            http: self.http,
            secrets: self.secrets,
            memory_mb: self.memory_mb,
            max_output_kb: self.max_output_kb,
            max_concurrent: self.max_concurrent,
        })
    }
}

/// Who acts. With --server and a token, the token names its holder and these are refused.
#[derive(Args, Default)]
struct Identity {
    /// Who answers or acts [default: the operating-system user].
    #[arg(long = "as", value_name = "NAME")]
    user: Option<String>,
    /// A group that user belongs to, for steps assigned to `group:NAME`; repeat for several
    /// (with --db only: a server takes groups from the token).
    #[arg(long = "group", value_name = "GROUP")]
    groups: Vec<String>,
}

impl Identity {
    /// The person acting at `place`; an error where the place names the caller otherwise.
    fn person(&self, place: &backend::Place) -> Result<crate::engine::Person> {
        if matches!(place, backend::Place::Server { .. }) && !self.groups.is_empty() {
            bail!("--group is for --db: a server takes your groups from your token");
        }
        if let (Some(name), false) = (&self.user, place.takes_as()) {
            bail!(
                "--as {name}: with a token the server knows you as the token's holder; leave out --as \
                 (it names the caller only with --db, or a server that has no tokens yet)"
            );
        }
        Ok(crate::engine::Person {
            name: self.user.clone().unwrap_or_else(whoami::username),
            groups: self.groups.clone(),
            admin: false,
            assigned_only: false,
        })
    }
}

#[derive(Args)]
struct RunArgs {
    /// The workflow definition (YAML or JSON).
    file: PathBuf,
    /// A workflow input, NAME=VALUE; repeat for several.
    #[arg(short, long = "input", value_name = "NAME=VALUE")]
    inputs: Vec<String>,
    /// An answer, Step.SignalType=JSON, applied when that step waits; repeat for several.
    #[arg(short, long = "answer", value_name = "STEP.SIGNAL=JSON")]
    answers: Vec<String>,
    #[command(flatten)]
    identity: Identity,
    /// Print the run record as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct AnswerArgs {
    run: String,
    /// `Step.SignalType`, such as RequireApproval1.ApprovalStatus.
    signal: String,
    /// The answer's data, a JSON object such as '{"Approved":true}'.
    data: String,
    #[command(flatten)]
    identity: Identity,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct RetryArgs {
    run: String,
    /// Move the run to this version of its workflow (completed steps of the same name stay).
    #[arg(long)]
    version: Option<u64>,
    /// The failed step whose input `--input` corrects.
    #[arg(long, requires = "input")]
    step: Option<String>,
    /// A corrected input for `--step`, as a JSON map.
    #[arg(long, requires = "step")]
    input: Option<String>,
    #[command(flatten)]
    identity: Identity,
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum RunsCommand {
    /// List runs, newest first.
    List {
        /// Only runs in this state (waiting, completed, ...).
        #[arg(long)]
        state: Option<String>,
        /// Only runs with this input, NAME=VALUE; repeat for several.
        #[arg(long = "input", value_name = "NAME=VALUE")]
        inputs: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Delete finished runs that ended longer ago than --older-than, with their logs (runs
    /// are also deleted by themselves when their retention ends).
    Purge {
        #[arg(long, value_parser = humantime::parse_duration)]
        older_than: std::time::Duration,
        /// Only runs of this workflow.
        #[arg(long)]
        workflow: Option<String>,
    },
    /// Show one run: state, steps, outputs, error, and what it waits for.
    Show {
        run: String,
        #[arg(long)]
        json: bool,
        /// Also print the run's log.
        #[arg(long)]
        logs: bool,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Validate, compile and store a plugin component (`push` is the same command).
    #[command(alias = "push")]
    Add {
        file: PathBuf,
        #[arg(long)]
        name: String,
        #[arg(long)]
        version: String,
    },
    /// List built-in and stored plugins.
    List,
    /// Delete a stored plugin version that no workflow version or unfinished run uses.
    Delete {
        name: String,
        #[arg(long)]
        version: String,
    },
    /// Write a new plugin project into the folder NAME; `NAME/build.sh` builds NAME.wasm.
    New {
        /// The plugin's name, also the folder's.
        name: String,
        #[arg(long, value_enum)]
        lang: scaffold::Lang,
        /// The Weft checkout whose SDK the project builds with [default: $WEFT_HOME, else the
        /// checkout this weft was built from].
        #[arg(long)]
        weft_home: Option<PathBuf>,
    },
}

/// Where the commands act, resolved once from `--db`, `--server`, `--token` and `--config`
/// (or their variables).
enum Resolved {
    Database {
        db: Option<String>,
        config: Option<PathBuf>,
    },
    Server {
        url: String,
        token: Option<String>,
        source: Option<backend::TokenSource>,
    },
}

/// Where a value came from, to name it in an error.
fn origin(matches: &ArgMatches, id: &str, variable: &str) -> String {
    match matches.value_source(id) {
        Some(ValueSource::EnvVariable) => format!(" (from ${variable})"),
        _ => String::new(),
    }
}

fn given_on_command_line(matches: &ArgMatches, id: &str) -> bool {
    matches.value_source(id) == Some(ValueSource::CommandLine)
}

impl Target {
    /// One place: the database or the server. Both at once is an error that names where each
    /// came from; a --token or --config that the place would not use is one too.
    fn resolve(self, matches: &ArgMatches) -> Result<Resolved> {
        match (self.db, self.server) {
            (Some(db), Some(server)) => bail!(
                "--db {db}{} and --server {server}{} name two places: give one, --db for a database \
                 with the engine in this process, or --server for a running server",
                origin(matches, "db", "WEFT_DB"),
                origin(matches, "server", "WEFT_SERVER"),
            ),
            (db, None) => {
                if given_on_command_line(matches, "token") {
                    bail!("--token is for --server: a database (--db) is opened directly and needs no token");
                }
                Ok(Resolved::Database {
                    db,
                    config: self.config,
                })
            }
            (None, Some(url)) => {
                if given_on_command_line(matches, "config") {
                    bail!("--config is read by the engine in this process (--db); a server reads its own weft.toml");
                }
                let source = self.token.as_ref().map(|_| {
                    if given_on_command_line(matches, "token") {
                        backend::TokenSource::CommandLine
                    } else {
                        backend::TokenSource::Environment
                    }
                });
                Ok(Resolved::Server {
                    url,
                    token: self.token,
                    source,
                })
            }
        }
    }
}

impl Resolved {
    /// The database of a command that works only on one (`what` names it): --server is
    /// refused, saying what to use instead.
    fn local_only(self, what: &str, instead: &str) -> Result<(Option<String>, Option<PathBuf>)> {
        match self {
            Resolved::Database { db, config } => Ok((db, config)),
            Resolved::Server { url, .. } => Err(anyhow!(
                "{what} works on a database in this process and does not take --server {url}{instead}"
            )),
        }
    }
}

/// Entry point of the `weft` binary.
pub fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    // A server logs its requests and runs; other commands print their own progress.
    let (default_filter, otlp_endpoint) = match &cli.command {
        Command::Serve(args) => ("warn,weft=info", args.otlp_endpoint.as_deref()),
        _ => ("warn", None),
    };
    // Held until the end of `main`, after the runtime: dropping it sends the last spans.
    let _telemetry = match crate::telemetry::init(cli.log_format, default_filter, otlp_endpoint) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let bench_db_given = given_on_command_line(&matches, "db");
    let outcome = cli
        .target
        .resolve(&matches)
        .and_then(|place| runtime.block_on(dispatch(cli.command, place, bench_db_given)));
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the commands that need no backend, or only a database; every other command goes to
/// the one backend `place` names.
async fn dispatch(command: Command, place: Resolved, bench_db_given: bool) -> Result<ExitCode> {
    match command {
        Command::Run(args) => {
            let file = show::shell_word(&args.file.display().to_string());
            let url = match &place {
                Resolved::Server { url, .. } => show::shell_word(url),
                Resolved::Database { .. } => String::new(),
            };
            let instead = format!(
                ": store the workflow with `weft workflow apply {file} --server {url}`, then start it \
                 with `weft start ID --server {url}`"
            );
            let (db, config) = place.local_only("weft run FILE", &instead)?;
            local::run(args, db, config).await
        }
        Command::Serve(args) => {
            let (db, config) = place.local_only("weft serve", "")?;
            local::serve(args, db, config).await
        }
        Command::Db(DbCommand::Copy { from, to }) => {
            let (db, _) = place.local_only("weft db copy", "")?;
            if let Some(db) = db {
                bail!("weft db copy names its databases with --from and --to, not --db {db}");
            }
            local::copy_database(&from, &to).await
        }
        Command::Bench { quick, json, only } => {
            let (db, _) = place.local_only("weft bench", "")?;
            // Only a --db given here: the bench makes its own databases, never $WEFT_DB's.
            let postgres = db.filter(|_| bench_db_given);
            local::bench(quick, json, &only, postgres.as_deref()).await
        }
        Command::Compile => Ok(crate::plugins::compile_worker()),
        Command::Acting(command) => match place {
            Resolved::Database { db, config } => {
                let backend = local::Local::new(db, config)?;
                commands::execute(&backend, command).await
            }
            Resolved::Server { url, token, source } => {
                let backend = remote::Client::new(&url, token, source);
                commands::execute(&backend, command).await
            }
        },
    }
}
