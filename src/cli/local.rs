//! Commands that work on a database (a redb file, or PostgreSQL) with an engine in this
//! process.

use super::show;
use super::{AnswerArgs, CancelArgs, DbArgs, RetryArgs, RunArgs, ServeArgs, StartArgs, ValidateArgs};
use crate::engine::{AnswerError, Engine, EngineOptions, Event, RunQuery, StartError};
use crate::names::RunId;
use crate::plugins::grants::GrantSpec;
use crate::plugins::PluginHost;
use crate::run::{RunRecord, RunState};
use crate::store::Location;
use crate::workflow;
use anyhow::{anyhow, bail, Context, Result};
use serde_json::{Map, Value};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tokio::sync::broadcast;

/// The database: `--db` (a file or `postgres://...`), `$WEFT_DB`, or `weft.redb` in the
/// user's data directory.
fn location(db: &DbArgs) -> Result<Location> {
    if let Some(given) = &db.db {
        return Ok(Location::parse(given));
    }
    let dirs = directories::ProjectDirs::from("dev", "weft", "weft")
        .ok_or_else(|| anyhow!("cannot find a data directory for this user; pass --db FILE"))?;
    Ok(Location::File(dirs.data_dir().join("weft.redb")))
}

/// How to name the database in a printed command: `--db FILE` or `--db URL` (without its
/// password).
fn db_option(db: &DbArgs) -> Result<String> {
    Ok(match location(db)? {
        Location::File(path) => format!("--db {}", path.display()),
        Location::Postgres(url) => format!("--db {}", crate::store::mask_password(&url)),
    })
}

/// `weft.toml` (`--config`, `$WEFT_CONFIG`): grants and limits.
fn config(db: &DbArgs) -> Result<crate::config::Config> {
    crate::config::Config::load(db.config.as_deref())
}

/// The engine over the database, with the grants and limits of `weft.toml`; untrusted
/// components are compiled by child processes of this executable. It does no background
/// work until a command asks it to (see [`Engine::start_work`]).
async fn open_engine(db: &DbArgs) -> Result<Engine> {
    open_engine_with(db, EngineOptions::default()).await
}

async fn open_engine_with(db: &DbArgs, mut options: EngineOptions) -> Result<Engine> {
    let config = config(db)?;
    options.retention = config.runs.retention;
    let store = crate::store::open(&location(db)?, crate::store::new_runner_id()).await?;
    let host = crate::plugins::HostOptions {
        secrets: config.secrets,
        limits: config.limits,
        compiler: crate::plugins::Compiler::worker()?,
    };
    let plugins = PluginHost::with_options(store.clone(), host)?;
    let engine = Engine::with_options(store, plugins, options);
    engine.seed_grants(&config.grants).await?;
    Ok(engine)
}

/// [`open_engine`], working: it fires timers, delivers events and moves runs on.
async fn working_engine(db: &DbArgs) -> Result<Engine> {
    let engine = open_engine(db).await?;
    engine.start_work().await?;
    Ok(engine)
}

/// The process exit code for a run: 0 completed, 2 waiting, 1 failed, rejected or canceled.
pub(super) fn exit_code(run: &RunRecord) -> ExitCode {
    match run.state {
        RunState::Completed => ExitCode::SUCCESS,
        RunState::Waiting | RunState::Pending | RunState::Running => ExitCode::from(2),
        RunState::Failed | RunState::Rejected | RunState::Canceled => ExitCode::FAILURE,
    }
}

/// Reads and parses a definition file within the engine's limits.
async fn read_definition(engine: &Engine, file: &Path) -> Result<workflow::Definition> {
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let document = engine
        .parse_document(text)
        .await
        .map_err(|e| start_error(file, e))?;
    workflow::from_value(document)
        .map_err(|problems| anyhow!("{}:\n{}", file.display(), indent(&problems.to_string())))
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn start_error(file: &Path, e: StartError) -> anyhow::Error {
    match e {
        StartError::Invalid(problems) => {
            anyhow!("{}:\n{}", file.display(), indent(&problems.to_string()))
        }
        StartError::KeyReused(message) => anyhow!(message),
        StartError::Internal(e) => e,
    }
}

/// Parses `NAME=VALUE` inputs. Values stay strings; the engine converts them to the declared
/// type.
pub(super) fn parse_inputs(inputs: &[String]) -> Result<Map<String, Value>> {
    inputs
        .iter()
        .map(|pair| {
            let (name, value) = pair
                .split_once('=')
                .ok_or_else(|| anyhow!("--input {pair:?}: expected NAME=VALUE"))?;
            Ok((name.trim().to_owned(), Value::String(value.to_owned())))
        })
        .collect()
}

/// An answer given on the command line: `Step.SignalType` and its JSON data.
struct GivenAnswer {
    step: String,
    signal: String,
    data: Value,
}

pub(super) fn parse_signal_key(key: &str) -> Result<(String, String)> {
    key.split_once('.')
        .filter(|(s, t)| !s.is_empty() && !t.is_empty())
        .map(|(s, t)| (s.to_owned(), t.to_owned()))
        .ok_or_else(|| anyhow!("{key:?} is not a signal key: expected Step.SignalType, such as RequireApproval1.ApprovalStatus"))
}

pub(super) fn parse_data(text: &str, key: &str) -> Result<Value> {
    let data: Value =
        serde_json::from_str(text).with_context(|| format!("{key}: the answer is not valid JSON"))?;
    if !data.is_object() {
        bail!("{key}: the answer must be a JSON object, such as {{\"Approved\":true}}");
    }
    Ok(data)
}

fn parse_answer(text: &str) -> Result<GivenAnswer> {
    let (key, data) = text
        .split_once('=')
        .ok_or_else(|| anyhow!("--answer {text:?}: expected Step.SignalType=JSON"))?;
    let (step, signal) = parse_signal_key(key)?;
    Ok(GivenAnswer {
        step,
        signal,
        data: parse_data(data, key)?,
    })
}

/// Prints each step of `run` as it starts and ends until the run waits or finishes, and
/// returns it then. `events` must have been subscribed before the change being watched.
async fn watch(engine: &Engine, events: broadcast::Receiver<Event>, id: RunId) -> Result<RunRecord> {
    watch_until(engine, events, id, |state| !state_is_busy(state)).await
}

/// Prints the run's progress until it moves to a state `done` accepts, then waits for it to
/// settle.
async fn watch_until(
    engine: &Engine,
    mut events: broadcast::Receiver<Event>,
    id: RunId,
    done: impl Fn(RunState) -> bool,
) -> Result<RunRecord> {
    loop {
        match events.recv().await {
            Ok(event) => {
                if let Some(line) = show::progress_line(&event, id) {
                    eprintln!("{line}");
                }
                match event {
                    Event::RunChanged { run, state } if run == id && done(state) => break,
                    _ => continue,
                }
            }
            // Missed events: the store knows where the run is.
            Err(broadcast::error::RecvError::Lagged(_)) => break,
            Err(broadcast::error::RecvError::Closed) => bail!("the engine stopped"),
        }
    }
    engine.settled(id).await
}

fn state_is_busy(state: RunState) -> bool {
    matches!(state, RunState::Pending | RunState::Running)
}

/// `weft run FILE`.
pub async fn run(args: RunArgs) -> Result<ExitCode> {
    let inputs = parse_inputs(&args.inputs)?;
    let answers = args
        .answers
        .iter()
        .map(|a| parse_answer(a))
        .collect::<Result<Vec<_>>>()?;
    let engine = working_engine(&args.db).await?;
    let definition = read_definition(&engine, &args.file).await?;
    let workflow = engine
        .register(definition)
        .await
        .map_err(|e| start_error(&args.file, e))?;
    let run = follow(&engine, &workflow, inputs, answers, &args.identity.person())
        .await
        .map_err(|e| match e.downcast::<StartError>() {
            Ok(start) => start_error(&args.file, start),
            Err(other) => other,
        })?;
    finish_output(&run, args.json, &args.db)
}

/// `weft start WORKFLOW` on the local database: like `run`, for a stored workflow.
pub async fn start(args: StartArgs) -> Result<ExitCode> {
    let inputs = parse_inputs(&args.inputs)?;
    let engine = working_engine(&args.db).await?;
    let workflow = engine
        .workflow(&args.workflow, args.version)
        .await?
        .ok_or_else(|| {
            anyhow!(
                "no workflow {} in the database; add it with `weft workflow apply FILE`",
                args.workflow
            )
        })?;
    let run = follow(&engine, &workflow, inputs, Vec::new(), &args.identity.person()).await?;
    finish_output(&run, args.json, &args.db)
}

/// Starts a run and follows it, printing its steps, until it finishes or waits with no
/// answer at hand: from `answers`, or typed at the terminal when there is one.
async fn follow(
    engine: &Engine,
    workflow: &std::sync::Arc<workflow::Workflow>,
    inputs: Map<String, Value>,
    mut answers: Vec<GivenAnswer>,
    who: &crate::engine::Person,
) -> Result<RunRecord> {
    let events = engine.subscribe();
    let id = engine.start(workflow, inputs, &who.name).await?;
    eprintln!(
        "run {id} of {} v{} started",
        workflow.definition.id, workflow.definition.version
    );
    let mut run = watch(engine, events, id).await?;
    let interactive = std::io::stdin().is_terminal();
    while run.state == RunState::Waiting {
        let waiting = run.waiting_step_names();
        let events = engine.subscribe();
        let sleeping = run
            .steps
            .iter()
            .any(|s| matches!(s.pause, Some(crate::run::Pause::Time { .. })));
        if waiting.is_empty() && sleeping {
            // Only a timer holds it, and this process fires it (perhaps already has).
            let moved = engine
                .run(id)
                .await?
                .is_some_and(|r| r.state != RunState::Waiting);
            run = if moved {
                engine.settled(id).await?
            } else {
                watch_until(engine, events, id, |state| state != RunState::Waiting).await?
            };
            continue;
        }
        if let Some(pos) = answers.iter().position(|a| waiting.contains(&a.step)) {
            let a = answers.remove(pos);
            match engine.answer(id, &a.step, &a.signal, a.data, who).await {
                Ok(_) => {}
                Err(e @ AnswerError::Internal(_)) => return Err(e.into()),
                Err(e) => {
                    eprintln!("answer {}.{} refused: {e}", a.step, a.signal);
                    continue;
                }
            }
        } else if interactive {
            show::prompt_and_answer(engine, &run, who).await?;
        } else {
            break;
        }
        run = match engine.run(id).await? {
            Some(now) if state_is_busy(now.state) => watch(engine, events, id).await?,
            Some(now) => now,
            None => bail!("run {id} disappeared"),
        };
    }
    engine.quiesce().await;
    for a in &answers {
        eprintln!(
            "note: --answer {}.{} was not used: that step never waited",
            a.step, a.signal
        );
    }
    Ok(run)
}

/// `weft workflow apply FILE` on the local database.
pub async fn apply_workflow(db: DbArgs, file: PathBuf, publish: bool) -> Result<ExitCode> {
    let text = std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
    let engine = open_engine(&db).await?;
    let document = engine
        .parse_document(text)
        .await
        .map_err(|e| start_error(&file, e))?;
    let (saved, _) = engine
        .save_version(document, publish)
        .await
        .map_err(|e| start_error(&file, e))?;
    println!("{}", show::saved_line(&serde_json::to_value(&saved)?));
    Ok(ExitCode::SUCCESS)
}

/// `weft workflow publish ID VERSION` on the local database.
pub async fn publish_workflow(db: DbArgs, id: &str, version: u64) -> Result<ExitCode> {
    if !open_engine(&db).await?.publish(id, version).await? {
        bail!("workflow {id} has no version {version}");
    }
    println!("{id} v{version} is now the active version");
    Ok(ExitCode::SUCCESS)
}

/// `weft workflow export ID... -o FILE` from the local database.
pub async fn export_workflows(
    db: DbArgs,
    ids: &[String],
    output: &Path,
    include_plugins: bool,
) -> Result<ExitCode> {
    let engine = open_engine(&db).await?;
    let bundle = crate::bundle::export(&engine, ids, include_plugins).await?;
    std::fs::write(output, serde_json::to_vec_pretty(&bundle)?)
        .with_context(|| format!("cannot write {}", output.display()))?;
    println!("exported {} workflow(s) to {}", ids.len(), output.display());
    Ok(ExitCode::SUCCESS)
}

/// `weft workflow import FILE` into the local database.
pub async fn import_workflows(db: DbArgs, file: &Path, rename: &str) -> Result<ExitCode> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let rename = crate::api::parse_rename(Some(rename)).map_err(|e| anyhow!("--rename: {}", e.message))?;
    let engine = open_engine(&db).await?;
    let bundle = crate::bundle::parse(&bytes).map_err(|e| anyhow!("{}: {e}", file.display()))?;
    let imported = crate::bundle::import(&engine, bundle, &rename)
        .await
        .map_err(|e| anyhow!("{}: nothing was imported: {e}", file.display()))?;
    println!("{}", show::imported_line(&serde_json::to_value(&imported)?));
    Ok(ExitCode::SUCCESS)
}

fn finish_output(run: &RunRecord, json: bool, db: &DbArgs) -> Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(run)?);
    } else {
        println!("{}", show::summary(run));
        if run.state == RunState::Waiting {
            let place = db_option(db)?;
            for line in show::how_to_answer(run, &place) {
                println!("{line}");
            }
        }
    }
    Ok(exit_code(run))
}

/// `weft answer RUN Step.Signal JSON`.
pub async fn answer(args: AnswerArgs) -> Result<ExitCode> {
    let id: RunId = args.run.parse().map_err(|e: String| anyhow!(e))?;
    let (step, signal) = parse_signal_key(&args.signal)?;
    let data = parse_data(&args.data, &args.signal)?;
    let engine = working_engine(&args.db).await?;
    engine.fire_due_timers().await?;
    let events = engine.subscribe();
    let answered = engine
        .answer(id, &step, &signal, data, &args.identity.person())
        .await?;
    let run = if state_is_busy(answered.state) {
        watch(&engine, events, id).await?
    } else {
        answered
    };
    engine.quiesce().await;
    finish_output(&run, args.json, &args.db)
}

/// `weft resume`: continue interrupted runs and fire due timers, then wait for them.
pub async fn resume(db: DbArgs) -> Result<ExitCode> {
    let engine = working_engine(&db).await?;
    engine.plugins().take_up_uploads().await?;
    let resumed = engine.recover().await?;
    let fired = engine.fire_due_timers().await?;
    // Timers may have set more runs going; wait for every one that is under way.
    let query = RunQuery::new(Some(RunState::Running), usize::MAX);
    for run in engine.runs(query, |_| true).await? {
        let run = engine.settled(run.id).await?;
        println!("{}", show::one_line(&run));
    }
    engine.quiesce().await;
    eprintln!("resumed {resumed} run(s), fired {fired} timer(s)");
    Ok(ExitCode::SUCCESS)
}

/// `weft cancel RUN`.
pub async fn cancel(args: CancelArgs) -> Result<ExitCode> {
    let id: RunId = args.run.parse().map_err(|e: String| anyhow!(e))?;
    let engine = open_engine(&args.db).await?;
    let run = engine.cancel(id, &args.identity.person().name).await?;
    println!("{}", show::summary(&run));
    Ok(ExitCode::SUCCESS)
}

/// `weft runs list`.
pub async fn list_runs(
    db: DbArgs,
    state: Option<String>,
    inputs: Vec<(String, String)>,
    json: bool,
) -> Result<ExitCode> {
    let state: Option<RunState> = state
        .map(|s| s.parse())
        .transpose()
        .map_err(|e: String| anyhow!(e))?;
    let engine = open_engine(&db).await?;
    let query = RunQuery {
        inputs,
        ..RunQuery::new(state, usize::MAX)
    };
    let runs = engine.runs(query, |_| true).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&runs)?);
    } else if runs.is_empty() {
        println!("no runs");
    } else {
        for run in &runs {
            println!("{}", show::one_line(run));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `weft runs show RUN`.
pub async fn show_run(db: DbArgs, run: &str, json: bool, logs: bool) -> Result<ExitCode> {
    let id: RunId = run.parse().map_err(|e: String| anyhow!(e))?;
    let engine = open_engine(&db).await?;
    let run = engine
        .run(id)
        .await?
        .ok_or_else(|| anyhow!("no run {id} in {}", engine.database()))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&run)?);
    } else {
        println!("{}", show::summary(&run));
        if run.state == RunState::Waiting {
            let place = db_option(&db)?;
            for line in show::how_to_answer(&run, &place) {
                println!("{line}");
            }
        }
        if logs {
            println!("log:");
            for line in engine.logs(id, None, usize::MAX).await? {
                println!("{}", show::log_line(&line));
            }
        }
    }
    Ok(exit_code(&run))
}

/// `weft plugin add FILE --name N --version V`.
pub async fn add_plugin(db: DbArgs, file: PathBuf, name: String, version: String) -> Result<ExitCode> {
    let bytes = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
    let engine = open_engine(&db).await?;
    let meta = engine
        .plugins()
        .add(&name, &version, bytes)
        .await
        .map_err(|e| anyhow!("{}: {e}", file.display()))?
        .meta;
    println!(
        "{}@{} {} ({} world, {} bytes)",
        meta.name, meta.version, meta.digest, meta.world, meta.size
    );
    Ok(ExitCode::SUCCESS)
}

/// `weft plugin list`.
pub async fn list_plugins(db: DbArgs) -> Result<ExitCode> {
    let engine = open_engine(&db).await?;
    for meta in engine.plugins().list().await? {
        println!(
            "{}@{}\t{}\t{}\t{} bytes",
            meta.name, meta.version, meta.world, meta.digest, meta.size
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `weft validate FILE`.
pub async fn validate(args: ValidateArgs) -> Result<ExitCode> {
    let engine = open_engine(&args.db).await?;
    let definition = read_definition(&engine, &args.file).await?;
    let workflow = engine
        .validate(definition)
        .await
        .map_err(|e| start_error(&args.file, e))?;
    println!(
        "{}: {} v{} is valid ({} steps)",
        args.file.display(),
        workflow.definition.id,
        workflow.definition.version,
        workflow.steps.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// `weft serve`: continue interrupted runs, fire due timers, then serve the API.
pub async fn serve(args: ServeArgs) -> Result<ExitCode> {
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener.local_addr()?;
    if args.lease < std::time::Duration::from_millis(500) {
        bail!(
            "--lease {}: a lease must be at least 500ms",
            humantime::format_duration(args.lease)
        );
    }
    let options = EngineOptions {
        address: Some(address.to_string()),
        lease: args.lease,
        ..EngineOptions::default()
    };
    let engine = open_engine_with(&args.db, options).await?;
    let has_tokens = engine.has_tokens().await?;
    let loopback = args.listen.ip().is_loopback();
    if !has_tokens && !loopback {
        bail!(
            "refusing to serve {} without authentication: create an admin token first with \
             `weft token create --name NAME --role admin {}`, or listen on 127.0.0.1",
            args.listen,
            db_option(&args.db)?
        );
    }
    engine.start_work().await?;
    engine.plugins().take_up_uploads().await?;
    let resumed = engine.recover().await?;
    let fired = engine.fire_due_timers().await?;
    eprintln!(
        "weft serving http://{address} (database {}; runner {}; resumed {resumed} run(s), fired {fired} timer(s))",
        engine.database(),
        engine.runner()
    );
    if !has_tokens {
        eprintln!(
            "LOCAL MODE: no API token exists, so every caller on this machine is an admin (named by \
             the X-Weft-User header). Create a token with `weft token create` to require authentication."
        );
    }
    let mut limits = engine.plugins().limits().clone();
    if let Some(mb) = args.body_limit_mb {
        limits.body_mb = mb;
    }
    let options = crate::api::Options {
        limits,
        local_mode: loopback,
        secure_cookies: !loopback,
    };
    crate::api::serve(engine.clone(), listener, options, stop_requested()).await?;
    // This runner's runs go to the others at once; dropping the engine closes the database
    // cleanly, so the next start is quick.
    engine.stop().await;
    eprintln!("weft stopped");
    Ok(ExitCode::SUCCESS)
}

/// Completes on Ctrl-C or SIGTERM.
async fn stop_requested() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => {
            tracing::warn!("cannot listen for SIGTERM: {e}");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// `weft token create` on the local database.
pub async fn create_token(
    db: DbArgs,
    name: String,
    role: crate::auth::Role,
    groups: Vec<String>,
) -> Result<ExitCode> {
    let (secret, _) = open_engine(&db).await?.create_token(&name, role, groups).await?;
    eprintln!("token for {name} ({role}); it is shown only now:");
    println!("{secret}");
    Ok(ExitCode::SUCCESS)
}

/// `weft token list` on the local database.
pub async fn list_tokens(db: DbArgs) -> Result<ExitCode> {
    for token in open_engine(&db).await?.tokens().await? {
        println!("{}", show::token_line(&token));
    }
    Ok(ExitCode::SUCCESS)
}

/// `weft token revoke ID|NAME` on the local database.
pub async fn revoke_token(db: DbArgs, which: &str) -> Result<ExitCode> {
    let revoked = open_engine(&db).await?.revoke_token(which).await?;
    if revoked == 0 {
        bail!("no active token {which}");
    }
    println!("revoked {which}");
    Ok(ExitCode::SUCCESS)
}

/// `weft grant list` on the local database.
pub async fn list_grants(db: DbArgs) -> Result<ExitCode> {
    for (plugin, grant) in open_engine(&db).await?.grants().await? {
        println!("{}", show::grant_line(&grant.view(&plugin)));
    }
    Ok(ExitCode::SUCCESS)
}

/// `weft grant show PLUGIN` on the local database.
pub async fn show_grant(db: DbArgs, plugin: &str) -> Result<ExitCode> {
    let grants = open_engine(&db).await?.grants().await?;
    let grant = grants
        .get(plugin)
        .ok_or_else(|| anyhow!("no grant for {plugin}"))?;
    println!("{}", serde_json::to_string_pretty(&grant.view(plugin))?);
    Ok(ExitCode::SUCCESS)
}

/// `weft grant set PLUGIN ...` on the local database, audited as the operating-system user
/// (or `--as`).
pub async fn set_grant(db: DbArgs, plugin: &str, spec: GrantSpec, by: &str) -> Result<ExitCode> {
    let engine = open_engine(&db).await?;
    let grant = engine.set_grant(plugin, spec, by).await?;
    engine.record_audit(&cli_audit(by, &format!("weft grant set {plugin}")));
    engine.flush().await?;
    println!("{}", show::grant_line(&grant.view(plugin)));
    Ok(ExitCode::SUCCESS)
}

/// `weft grant delete PLUGIN` on the local database, audited.
pub async fn delete_grant(db: DbArgs, plugin: &str, by: &str) -> Result<ExitCode> {
    let engine = open_engine(&db).await?;
    if !engine.delete_grant(plugin).await? {
        bail!("no grant for {plugin}");
    }
    engine.record_audit(&cli_audit(by, &format!("weft grant delete {plugin}")));
    engine.flush().await?;
    println!("removed the grant of {plugin}");
    Ok(ExitCode::SUCCESS)
}

/// An audit entry for a change made with the CLI on the database itself.
fn cli_audit(by: &str, action: &str) -> serde_json::Value {
    serde_json::json!({
        "at": crate::run::rfc3339(crate::run::now()),
        "token": null,
        "name": by,
        "role": "admin",
        "action": action,
        "target": action,
        "outcome": 0,
        "via": "cli",
    })
}

/// `weft runners` on the database.
pub async fn runners(db: DbArgs, json: bool) -> Result<ExitCode> {
    let engine = open_engine(&db).await?;
    let this = engine.runner().to_owned();
    let now = crate::run::now();
    let items: Vec<serde_json::Value> = engine
        .runners()
        .await?
        .into_iter()
        .filter(|runner| runner.id != this)
        .map(|runner| {
            let mut shown = serde_json::to_value(&runner).unwrap_or_default();
            shown["alive"] = serde_json::json!(runner.lease_until > now);
            shown
        })
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&items)?);
    } else {
        for runner in &items {
            println!("{}", show::runner_line(runner));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `weft db copy --from A --to B`: every record of A into the empty B, checked.
pub async fn copy_database(from: &str, to: &str) -> Result<ExitCode> {
    let (from, to) = (Location::parse(from), Location::parse(to));
    if from == to {
        bail!("--from and --to name the same database");
    }
    let source = crate::store::open(&from, crate::store::new_runner_id()).await?;
    let target = crate::store::open(&to, crate::store::new_runner_id()).await?;
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {pos} records copied ({msg}), {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    let copied = crate::store::copy::copy(&*source, &*target, &mut |kind, copied| {
        bar.set_position(copied);
        bar.set_message(kind.to_owned());
    })
    .await;
    bar.finish_and_clear();
    let counts = copied?;
    let total: u64 = counts.values().sum();
    eprintln!(
        "copied {total} records from {} to {}, and checked each:",
        source.describe(),
        target.describe()
    );
    for (kind, count) in &counts {
        eprintln!("  {count:>9} {kind}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `weft retry RUN` on the database: continues the failed run from its failed step, audited
/// as the operating-system user (or `--as`).
pub async fn retry(args: RetryArgs) -> Result<ExitCode> {
    let id: RunId = args.run.parse().map_err(|e: String| anyhow!(e))?;
    let engine = working_engine(&args.db).await?;
    let by = args.identity.person().name;
    let step_input = match (args.step, args.input) {
        (Some(step), Some(input)) => Some((step, serde_json::from_str(&input).context("--input: not JSON")?)),
        _ => None,
    };
    let options = crate::engine::RetryOptions {
        version: args.version,
        step_input,
    };
    engine.retry(id, &by, options).await?;
    engine.record_audit(&cli_audit(&by, &format!("weft retry {id}")));
    let run = engine.settled(id).await?;
    engine.stop().await;
    eprintln!("run {id} retried by {by}: {}", run.state.as_str());
    Ok(exit_code(&run))
}

/// `weft schedule create` on the local database.
pub async fn create_schedule(
    db: DbArgs,
    definition: crate::schedule::ScheduleDefinition,
    by: &str,
) -> Result<Value> {
    let engine = open_engine(&db).await?;
    let record = engine
        .create_schedule(definition, by)
        .await
        .map_err(schedule_error)?;
    Ok(record.view())
}

/// `weft schedule list` on the local database.
pub async fn schedules(db: DbArgs) -> Result<Vec<Value>> {
    let engine = open_engine(&db).await?;
    let all = engine.schedules().await.map_err(schedule_error)?;
    Ok(all.iter().map(crate::schedule::ScheduleRecord::view).collect())
}

/// `weft schedule show|pause|resume ID` on the local database: `pause` is none to only read.
pub async fn schedule_op(db: DbArgs, id: &str, pause: Option<bool>) -> Result<Value> {
    let engine = open_engine(&db).await?;
    let record = match pause {
        Some(paused) => engine.pause_schedule(id, paused).await,
        None => engine.schedule(id).await,
    };
    Ok(record.map_err(schedule_error)?.view())
}

/// `weft schedule delete ID` on the local database.
pub async fn delete_schedule(db: DbArgs, id: &str) -> Result<()> {
    open_engine(&db)
        .await?
        .delete_schedule(id)
        .await
        .map_err(schedule_error)
}

fn schedule_error(e: crate::engine::ScheduleError) -> anyhow::Error {
    match e {
        crate::engine::ScheduleError::Invalid(problems) => anyhow!("invalid schedule:\n{problems}"),
        other => anyhow!(other),
    }
}

/// `weft event send` on the local database: the runs that take the event go on here, and
/// the command waits until they settle.
pub async fn send_event(db: DbArgs, name: &str, key: &str, data: Value, by: &str) -> Result<Value> {
    let engine = working_engine(&db).await?;
    let receipt = engine.send_event(name, key, data, by).await?;
    for run in &receipt.delivered {
        engine.settled(*run).await?;
    }
    engine.quiesce().await;
    Ok(serde_json::to_value(&receipt)?)
}

/// `weft runs purge --older-than D` on the local database.
pub async fn purge_runs(
    db: DbArgs,
    older_than: std::time::Duration,
    workflow: Option<&str>,
) -> Result<ExitCode> {
    let purged = open_engine(&db).await?.purge_runs(older_than, workflow).await?;
    println!("deleted {purged} finished run(s)");
    Ok(ExitCode::SUCCESS)
}
