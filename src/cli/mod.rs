//! The `weft` command line: parses arguments and calls the engine. Commands work on a local
//! database file (`--db`), so everything works without a server; the ones that make sense
//! against a server also take `--server URL` and speak the HTTP API instead.

mod local;
mod remote;
mod scaffold;
mod show;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "weft", version, about = "A WebAssembly-extensible workflow runner")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a workflow file locally, answering interactions from --answer or the terminal.
    Run(RunArgs),
    /// Answer a waiting step of a run (Keyfactor signal `Step.SignalType`) and continue it.
    Answer(AnswerArgs),
    /// Continue runs left running when their runner stopped, and fire due timers.
    Resume(DbArgs),
    /// Cancel a run that has not finished.
    Cancel(CancelArgs),
    /// Continue a failed run from its failed step: completed steps and answers stay.
    Retry(RetryArgs),
    /// Read runs.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// Manage plugins.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Manage workflow definitions.
    #[command(subcommand)]
    Workflow(WorkflowCommand),
    /// Start a stored workflow (the latest version unless --version).
    Start(StartArgs),
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
    /// Work on whole databases.
    #[command(subcommand)]
    Db(DbCommand),
    /// List the runners sharing the database.
    Runners {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Check a workflow definition without running it.
    Validate(ValidateArgs),
    /// Serve the HTTP API over the database.
    Serve(ServeArgs),
    /// Compile a component read on stdin to an artifact on stdout (used by `weft serve` to
    /// compile uploads in a child process under a memory and time budget).
    #[command(name = "__compile", hide = true)]
    Compile,
    /// Measure the performance figures against floors measured in the same run.
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
        /// Measure on PostgreSQL: fresh databases created (and dropped) on the server of this
        /// postgres://USER[:PASS]@HOST:PORT/DB URL, whose user needs CREATEDB [default: redb
        /// files in a temporary directory].
        #[arg(long)]
        db: Option<String>,
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
    #[command(flatten)]
    db: DbArgs,
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
    /// Wait until the run finishes or waits for a person.
    #[arg(long)]
    wait: bool,
    #[command(flatten)]
    identity: Identity,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    db: DbArgs,
    #[command(flatten)]
    server: ServerArgs,
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
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Make a version the active one.
    Publish {
        id: String,
        version: u64,
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        server: ServerArgs,
    },
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
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Import a bundle, all or nothing.
    Import {
        file: PathBuf,
        /// OLD=NEW: import workflow OLD under the id NEW; repeat for several.
        #[arg(long, value_name = "OLD=NEW")]
        rename: Vec<String>,
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        server: ServerArgs,
    },
}

/// Talk to a running server instead of a database file.
#[derive(Args)]
struct ServerArgs {
    /// The server's base URL, such as http://127.0.0.1:8080.
    #[arg(long, env = "WEFT_SERVER")]
    server: Option<String>,
    /// The API token to send (`weft token create` prints one).
    #[arg(long, env = "WEFT_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

impl ServerArgs {
    /// The server to talk to, if one was given.
    fn remote(&self) -> Option<remote::Client> {
        self.server
            .as_deref()
            .map(|url| remote::Client::new(url, self.token.clone()))
    }
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token and print it (this is the only time it is shown).
    Create {
        #[arg(long)]
        name: String,
        /// admin, author, operator or approver.
        #[arg(long)]
        role: crate::auth::Role,
        /// A group the holder belongs to; repeat for several.
        #[arg(long = "group")]
        groups: Vec<String>,
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// List tokens (never their secrets).
    List {
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Revoke a token by id or name; it stops working at once.
    Revoke {
        which: String,
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        server: ServerArgs,
    },
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
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// List schedules with their next fire.
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Show a schedule and its next fire times as JSON.
    Show {
        id: String,
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Stop a schedule from firing until resumed.
    Pause {
        id: String,
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Let a paused schedule fire again, from now.
    Resume {
        id: String,
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Delete a schedule; the runs it started stay.
    Delete {
        id: String,
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        server: ServerArgs,
    },
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
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(Subcommand)]
enum GrantCommand {
    /// List every grant.
    List {
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Show one plugin's grant as JSON.
    Show {
        /// A plugin name, or name@version.
        plugin: String,
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        server: ServerArgs,
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
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Remove a plugin's grant.
    Delete {
        plugin: String,
        #[command(flatten)]
        identity: Identity,
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        server: ServerArgs,
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
    fn spec(self) -> anyhow::Result<crate::plugins::grants::GrantSpec> {
        let env = self
            .env
            .iter()
            .map(|pair| {
                pair.split_once('=')
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .ok_or_else(|| anyhow::anyhow!("--env {pair}: use NAME=VALUE"))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(crate::plugins::grants::GrantSpec {
            http: self.http,
            secrets: self.secrets,
            env,
            memory_mb: self.memory_mb,
            max_output_kb: self.max_output_kb,
            max_concurrent: self.max_concurrent,
        })
    }
}

#[derive(Args)]
struct DbArgs {
    /// The database: a redb file, or postgres://USER[:PASS]@HOST:PORT/DB [default: weft.redb
    /// in the user's data directory].
    #[arg(long, env = "WEFT_DB", global = true, hide_env_values = true)]
    db: Option<String>,
    /// Plugin grants (outbound HTTP, secrets, env, limits): a weft.toml file.
    #[arg(long, env = "WEFT_CONFIG", global = true)]
    config: Option<PathBuf>,
}

#[derive(Args)]
struct Identity {
    /// Who answers or acts [default: the operating-system user].
    #[arg(long = "as", value_name = "NAME")]
    user: Option<String>,
    /// A group that user belongs to, for steps assigned to `group:NAME`; repeat for several.
    #[arg(long = "group", value_name = "GROUP")]
    groups: Vec<String>,
}

impl Identity {
    fn person(&self) -> crate::engine::Person {
        crate::engine::Person {
            name: self.user.clone().unwrap_or_else(whoami::username),
            groups: self.groups.clone(),
            admin: false,
            assigned_only: false,
        }
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
    #[command(flatten)]
    db: DbArgs,
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
    #[command(flatten)]
    db: DbArgs,
    #[command(flatten)]
    server: ServerArgs,
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
    #[command(flatten)]
    db: DbArgs,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Args)]
struct CancelArgs {
    run: String,
    #[command(flatten)]
    identity: Identity,
    #[command(flatten)]
    db: DbArgs,
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
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Delete finished runs that ended longer ago than --older-than, with their logs (runs
    /// are also deleted by themselves when their retention ends).
    Purge {
        #[arg(long, value_parser = humantime::parse_duration)]
        older_than: std::time::Duration,
        /// Only runs of this workflow.
        #[arg(long)]
        workflow: Option<String>,
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Show one run: state, steps, outputs, error, and what it waits for.
    Show {
        run: String,
        #[arg(long)]
        json: bool,
        /// Also print the run's log.
        #[arg(long)]
        logs: bool,
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Validate, compile and store a plugin component.
    #[command(alias = "add")]
    Push {
        file: PathBuf,
        #[arg(long)]
        name: String,
        #[arg(long)]
        version: String,
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// List built-in and stored plugins.
    List {
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        server: ServerArgs,
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

#[derive(Args)]
struct ValidateArgs {
    file: PathBuf,
    #[command(flatten)]
    db: DbArgs,
}

/// Entry point of the `weft` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WEFT_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run(args) => local::run(args).await,
        Command::Answer(args) => match args.server.remote() {
            Some(client) => remote::answer(&client, args).await,
            None => local::answer(args).await,
        },
        Command::Resume(db) => local::resume(db).await,
        Command::Cancel(args) => local::cancel(args).await,
        Command::Runs(RunsCommand::List {
            state,
            inputs,
            json,
            db,
            server,
        }) => {
            let inputs = inputs
                .iter()
                .map(|pair| {
                    pair.split_once('=')
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .ok_or_else(|| anyhow::anyhow!("--input {pair}: use NAME=VALUE"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            match server.remote() {
                Some(client) => remote::list_runs(&client, state, inputs, json).await,
                None => local::list_runs(db, state, inputs, json).await,
            }
        }
        Command::Retry(args) => match args.server.remote() {
            Some(client) => remote::retry(&client, args).await,
            None => local::retry(args).await,
        },
        Command::Runs(RunsCommand::Show {
            run,
            json,
            logs,
            db,
            server,
        }) => match server.remote() {
            Some(client) => remote::show_run(&client, &run, json, logs).await,
            None => local::show_run(db, &run, json, logs).await,
        },
        Command::Plugin(PluginCommand::Push {
            file,
            name,
            version,
            db,
            server,
        }) => match server.remote() {
            Some(client) => remote::push_plugin(&client, file, name, version).await,
            None => local::add_plugin(db, file, name, version).await,
        },
        Command::Plugin(PluginCommand::New {
            name,
            lang,
            weft_home,
        }) => scaffold::new_plugin(&name, lang, weft_home),
        Command::Plugin(PluginCommand::List { db, server }) => match server.remote() {
            Some(client) => remote::list_plugins(&client).await,
            None => local::list_plugins(db).await,
        },
        Command::Workflow(WorkflowCommand::Apply {
            file,
            publish,
            db,
            server,
        }) => match server.remote() {
            Some(client) => remote::apply_workflow(&client, file, publish).await,
            None => local::apply_workflow(db, file, publish).await,
        },
        Command::Workflow(WorkflowCommand::Publish {
            id,
            version,
            db,
            server,
        }) => match server.remote() {
            Some(client) => remote::publish_workflow(&client, &id, version).await,
            None => local::publish_workflow(db, &id, version).await,
        },
        Command::Workflow(WorkflowCommand::Export {
            ids,
            output,
            include_plugins,
            db,
            server,
        }) => match server.remote() {
            Some(client) => remote::export_workflows(&client, &ids, &output, include_plugins).await,
            None => local::export_workflows(db, &ids, &output, include_plugins).await,
        },
        Command::Workflow(WorkflowCommand::Import {
            file,
            rename,
            db,
            server,
        }) => {
            let rename = rename
                .iter()
                .map(|r| r.replacen('=', ":", 1))
                .collect::<Vec<_>>()
                .join(",");
            match server.remote() {
                Some(client) => remote::import_workflows(&client, &file, &rename).await,
                None => local::import_workflows(db, &file, &rename).await,
            }
        }
        Command::Start(args) => match args.server.remote() {
            Some(client) => remote::start(&client, args).await,
            None => local::start(args).await,
        },
        Command::Token(TokenCommand::Create {
            name,
            role,
            groups,
            db,
            server,
        }) => match server.remote() {
            Some(client) => remote::create_token(&client, name, role, groups).await,
            None => local::create_token(db, name, role, groups).await,
        },
        Command::Token(TokenCommand::List { db, server }) => match server.remote() {
            Some(client) => remote::list_tokens(&client).await,
            None => local::list_tokens(db).await,
        },
        Command::Token(TokenCommand::Revoke { which, db, server }) => match server.remote() {
            Some(client) => remote::revoke_token(&client, &which).await,
            None => local::revoke_token(db, &which).await,
        },
        Command::Grant(GrantCommand::List { db, server }) => match server.remote() {
            Some(client) => remote::list_grants(&client).await,
            None => local::list_grants(db).await,
        },
        Command::Grant(GrantCommand::Show { plugin, db, server }) => match server.remote() {
            Some(client) => remote::show_grant(&client, &plugin).await,
            None => local::show_grant(db, &plugin).await,
        },
        Command::Grant(GrantCommand::Set {
            plugin,
            spec,
            identity,
            db,
            server,
        }) => {
            let spec = spec.spec()?;
            match server.remote() {
                Some(client) => remote::set_grant(&client, &plugin, &spec).await,
                None => local::set_grant(db, &plugin, spec, &identity.person().name).await,
            }
        }
        Command::Grant(GrantCommand::Delete {
            plugin,
            identity,
            db,
            server,
        }) => match server.remote() {
            Some(client) => remote::delete_grant(&client, &plugin).await,
            None => local::delete_grant(db, &plugin, &identity.person().name).await,
        },
        Command::Runs(RunsCommand::Purge {
            older_than,
            workflow,
            db,
            server,
        }) => match server.remote() {
            Some(client) => remote::purge_runs(&client, older_than, workflow.as_deref()).await,
            None => local::purge_runs(db, older_than, workflow.as_deref()).await,
        },
        Command::Schedule(ScheduleCommand::Create {
            workflow,
            version,
            cron,
            timezone,
            every,
            inputs,
            id,
            overlap,
            catch_up,
            paused,
            json,
            identity,
            db,
            server,
        }) => {
            let definition = crate::schedule::ScheduleDefinition {
                id,
                workflow,
                version,
                cron,
                timezone,
                every,
                input: local::parse_inputs(&inputs)?,
                overlap,
                catch_up,
                paused,
                description: String::new(),
            };
            let created = match server.remote() {
                Some(client) => remote::create_schedule(&client, &definition).await?,
                None => local::create_schedule(db, definition, &identity.person().name).await?,
            };
            show::schedule(&created, json)
        }
        Command::Schedule(ScheduleCommand::List { json, db, server }) => {
            let all = match server.remote() {
                Some(client) => remote::schedules(&client).await?,
                None => local::schedules(db).await?,
            };
            show::schedules(&all, json)
        }
        Command::Schedule(ScheduleCommand::Show { id, db, server }) => {
            let one = match server.remote() {
                Some(client) => remote::schedule_op(&client, reqwest::Method::GET, &id, "").await?,
                None => local::schedule_op(db, &id, None).await?,
            };
            show::schedule(&one, true)
        }
        Command::Schedule(ScheduleCommand::Pause { id, db, server }) => {
            let one = match server.remote() {
                Some(client) => remote::schedule_op(&client, reqwest::Method::POST, &id, "/pause").await?,
                None => local::schedule_op(db, &id, Some(true)).await?,
            };
            show::schedule(&one, false)
        }
        Command::Schedule(ScheduleCommand::Resume { id, db, server }) => {
            let one = match server.remote() {
                Some(client) => remote::schedule_op(&client, reqwest::Method::POST, &id, "/resume").await?,
                None => local::schedule_op(db, &id, Some(false)).await?,
            };
            show::schedule(&one, false)
        }
        Command::Schedule(ScheduleCommand::Delete { id, db, server }) => {
            match server.remote() {
                Some(client) => remote::delete_schedule(&client, &id).await?,
                None => local::delete_schedule(db, &id).await?,
            }
            println!("deleted schedule {id}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Event(EventCommand::Send {
            name,
            key,
            data,
            json,
            identity,
            db,
            server,
        }) => {
            let data: serde_json::Value =
                serde_json::from_str(&data).map_err(|e| anyhow::anyhow!("--data: not JSON: {e}"))?;
            let receipt = match server.remote() {
                Some(client) => remote::send_event(&client, &name, &key, &data).await?,
                None => local::send_event(db, &name, &key, data, &identity.person().name).await?,
            };
            show::event_receipt(&receipt, json)
        }
        Command::Db(DbCommand::Copy { from, to }) => local::copy_database(&from, &to).await,
        Command::Runners { json, db, server } => match server.remote() {
            Some(client) => remote::runners(&client, json).await,
            None => local::runners(db, json).await,
        },
        Command::Validate(args) => local::validate(args).await,
        Command::Serve(args) => local::serve(args).await,
        Command::Compile => Ok(crate::plugins::compile_worker()),
        Command::Bench {
            quick,
            json,
            only,
            db,
        } => {
            let sizes = if quick {
                crate::bench::Sizes::QUICK
            } else {
                crate::bench::Sizes::FULL
            };
            let figures =
                crate::bench::run(sizes, &only, db.as_deref(), |what| eprintln!("measuring {what}…")).await?;
            if json {
                println!("{}", crate::bench::to_json(&figures));
            } else {
                print!("{}", crate::bench::table(&figures));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
