//! The backend over a database (a redb file, or PostgreSQL) with the engine in this process
//! (`--db`), and the commands that only work that way: `run FILE`, `serve`, `db copy` and
//! `bench`. It prints progress lines on stderr while it drives runs; results are printed by
//! `commands.rs` through `show.rs`. It never speaks HTTP (see `remote.rs`).

use super::backend::{Backend, InboxItem, Place, PluginLine, Resumed, Started, Validated};
use super::commands::{parse_data, parse_inputs, parse_signal_key};
use super::{show, RunArgs, ServeArgs};
use crate::auth::{Role, TokenRecord};
use crate::engine::{AnswerError, Engine, EngineOptions, Event, Person, RetryOptions, RunQuery, StartError};
use crate::names::RunId;
use crate::plugins::grants::GrantSpec;
use crate::plugins::PluginHost;
use crate::run::{LogLine, RunRecord, RunState, StepState};
use crate::schedule::ScheduleDefinition;
use crate::store::Location;
use crate::workflow;
use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use tokio::sync::{broadcast, OnceCell};

/// A database and the engine over it, opened at its first use (so `plugin new` opens none).
pub struct Local {
    location: Location,
    config: Option<PathBuf>,
    place: Place,
    engine: OnceCell<Engine>,
    working: OnceCell<()>,
}

impl Local {
    /// The database `--db` (or `$WEFT_DB`) names, or `weft.redb` in the user's data
    /// directory; `config` is `--config` (or `$WEFT_CONFIG`).
    pub fn new(db: Option<String>, config: Option<PathBuf>) -> Result<Local> {
        let location = match db {
            Some(given) => Location::parse(&given),
            None => {
                let dirs = directories::ProjectDirs::from("dev", "weft", "weft")
                    .ok_or_else(|| anyhow!("cannot find a data directory for this user; pass --db FILE"))?;
                Location::File(dirs.data_dir().join("weft.redb"))
            }
        };
        let place = Place::Db(match &location {
            Location::File(path) => path.display().to_string(),
            Location::Postgres(url) => crate::store::mask_password(url),
        });
        Ok(Local {
            location,
            config,
            place,
            engine: OnceCell::new(),
            working: OnceCell::new(),
        })
    }

    /// The engine over the database, with the grants and limits of `weft.toml`; untrusted
    /// components are compiled by child processes of this executable. It does no background
    /// work until [`Local::working`].
    async fn engine(&self) -> Result<&Engine> {
        self.engine
            .get_or_try_init(|| self.open_engine(EngineOptions::default()))
            .await
    }

    async fn open_engine(&self, mut options: EngineOptions) -> Result<Engine> {
        let config = crate::config::Config::load(self.config.as_deref())?;
        options.retention = config.runs.retention;
        let store = crate::store::open(&self.location, crate::store::new_runner_id()).await?;
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

    /// The engine, working: it fires timers, delivers events and moves runs on.
    async fn working(&self) -> Result<&Engine> {
        let engine = self.engine().await?;
        self.working.get_or_try_init(|| engine.start_work()).await?;
        Ok(engine)
    }

    fn run_id(run: &str) -> Result<RunId> {
        run.parse().map_err(|e: String| anyhow!("run {run:?}: {e}"))
    }

    async fn stored_run(&self, engine: &Engine, id: RunId) -> Result<RunRecord> {
        engine
            .run(id)
            .await?
            .ok_or_else(|| anyhow!("no run {id} in {}", engine.database()))
    }
}

impl Backend for Local {
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
        let engine = self.working().await?;
        let found = engine.workflow(workflow, version).await?.ok_or_else(|| {
            let which = version.map(|v| format!(" v{v}")).unwrap_or_default();
            anyhow!(
                "no workflow {workflow}{which} in {}; add it with `weft workflow apply FILE --db {}`",
                engine.database(),
                show::shell_word(self.place.args()[1])
            )
        })?;
        // Nothing else drives a run on this database: it goes as far as it can before this
        // process ends, waited for or not.
        let run = follow(engine, &found, inputs, Vec::new(), who, false).await?;
        Ok(Started {
            id: run.id.to_string(),
            run: wait.then_some(run),
        })
    }

    async fn answer(
        &self,
        run: &str,
        step: &str,
        signal: &str,
        data: Value,
        who: &Person,
    ) -> Result<RunRecord> {
        let id = Local::run_id(run)?;
        let engine = self.working().await?;
        engine.fire_due_timers().await?;
        let events = engine.subscribe();
        let answered = engine.answer(id, step, signal, data, who).await?;
        let run = if state_is_busy(answered.state) {
            watch(engine, events, id).await?
        } else {
            answered
        };
        engine.quiesce().await;
        Ok(run)
    }

    async fn cancel(&self, run: &str, who: &Person) -> Result<RunRecord> {
        let id = Local::run_id(run)?;
        Ok(self.engine().await?.cancel(id, &who.name).await?)
    }

    async fn resume(&self) -> Result<Resumed> {
        let engine = self.working().await?;
        engine.plugins().take_up_uploads().await?;
        let resumed = engine.recover().await?;
        let fired = engine.fire_due_timers().await?;
        // Timers may have set more runs going; wait for every one that is under way.
        let mut runs = Vec::new();
        for run in engine
            .runs(RunQuery::new(Some(RunState::Running), usize::MAX), |_| true)
            .await?
        {
            runs.push(engine.settled(run.id).await?);
        }
        engine.quiesce().await;
        Ok(Resumed {
            resumed: resumed as u64,
            fired: fired as u64,
            runs,
        })
    }

    async fn validate(&self, file: &Path) -> Result<Validated> {
        let engine = self.engine().await?;
        let definition = read_definition(engine, file).await?;
        let workflow = engine
            .validate(definition)
            .await
            .map_err(|e| start_error(file, e))?;
        Ok(Validated {
            id: workflow.definition.id.to_string(),
            version: workflow.definition.version,
            steps: workflow.steps.len(),
        })
    }

    async fn retry(&self, run: &str, options: RetryOptions, who: &Person) -> Result<RunRecord> {
        let id = Local::run_id(run)?;
        let engine = self.working().await?;
        engine.retry(id, &who.name, options).await?;
        engine.record_audit(&cli_audit(&who.name, &format!("weft retry {id}")));
        engine.settled(id).await
    }

    async fn restart(&self, run: &str, version: Option<u64>, who: &Person) -> Result<RunRecord> {
        let id = Local::run_id(run)?;
        let engine = self.working().await?;
        let restarted = engine.restart(id, version, &who.name).await?;
        engine.record_audit(&cli_audit(&who.name, &format!("weft restart {id}")));
        engine.settled(restarted).await
    }

    async fn runs(&self, state: Option<RunState>, inputs: &[(String, String)]) -> Result<Vec<Value>> {
        let query = RunQuery {
            inputs: inputs.to_vec(),
            ..RunQuery::new(state, usize::MAX)
        };
        let runs = self.engine().await?.runs(query, |_| true).await?;
        Ok(runs
            .iter()
            .map(|run| serde_json::to_value(run.summary()))
            .collect::<Result<_, _>>()?)
    }

    async fn run(&self, run: &str) -> Result<RunRecord> {
        let id = Local::run_id(run)?;
        self.stored_run(self.engine().await?, id).await
    }

    async fn logs(&self, run: &RunRecord) -> Result<Vec<LogLine>> {
        self.engine().await?.logs(run.id, None, usize::MAX).await
    }

    async fn purge_runs(&self, older_than: Duration, workflow: Option<&str>) -> Result<u64> {
        let purged = self.engine().await?.purge_runs(older_than, workflow).await?;
        Ok(purged as u64)
    }

    async fn inbox(&self, who: &Person) -> Result<Vec<InboxItem>> {
        let mut items = Vec::new();
        for run in self.engine().await?.waiting_runs().await? {
            for unit in run.units() {
                let Some(step) = run.record(unit) else { continue };
                let Some(waiting) = step.waiting.as_ref().filter(|_| step.state == StepState::Waiting) else {
                    continue;
                };
                // As `GET /v1/interactions?assigned_to=me`: assigned by name or group only.
                if waiting.assignees.is_empty() || !who.may_answer(&waiting.assignees) {
                    continue;
                }
                items.push(InboxItem {
                    execution_id: run.id.to_string(),
                    workflow: run.workflow.id.to_string(),
                    step: step.name.to_string(),
                    prompt: Some(waiting.prompt.clone()),
                    fields: Some(waiting.fields.clone()),
                    assignees: Some(waiting.assignees.clone()),
                    signal_types: Some(waiting.signal_types.clone()),
                    since: Some(crate::run::rfc3339(waiting.since)),
                    expires_at: waiting.expires_at.map(crate::run::rfc3339),
                });
            }
        }
        Ok(items)
    }

    async fn add_plugin(&self, file: &Path, name: &str, version: &str) -> Result<PluginLine> {
        let bytes =
            std::fs::read(file).with_context(|| format!("cannot read the plugin {}", file.display()))?;
        let meta = self
            .engine()
            .await?
            .plugins()
            .add(name, version, bytes)
            .await
            .map_err(|e| anyhow!("{}: {e}", file.display()))?
            .meta;
        Ok(plugin_line(meta))
    }

    async fn plugins(&self) -> Result<Vec<PluginLine>> {
        let all = self.engine().await?.plugins().list().await?;
        Ok(all.into_iter().map(plugin_line).collect())
    }

    async fn delete_plugin(&self, name: &str, version: &str) -> Result<()> {
        self.engine()
            .await?
            .remove_plugin(name, version)
            .await
            .map_err(|e| anyhow!("{e}"))
    }

    async fn apply_workflow(&self, file: &Path, publish: bool) -> Result<Value> {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read the definition {}", file.display()))?;
        let engine = self.engine().await?;
        let document = engine
            .parse_document(text)
            .await
            .map_err(|e| start_error(file, e))?;
        let (saved, _) = engine
            .save_version(document, publish)
            .await
            .map_err(|e| start_error(file, e))?;
        Ok(serde_json::to_value(&saved)?)
    }

    async fn workflows(&self) -> Result<Vec<Value>> {
        let engine = self.engine().await?;
        let mut items = Vec::new();
        for (id, version, digest) in engine.workflows().await? {
            let description = engine
                .workflow(&id, Some(version))
                .await?
                .map(|w| w.definition.description.clone())
                .unwrap_or_default();
            items.push(
                json!({"id": id, "latest_version": version, "digest": digest, "description": description}),
            );
        }
        Ok(items)
    }

    async fn workflow(&self, id: &str, version: Option<u64>) -> Result<Value> {
        let engine = self.engine().await?;
        let workflow = engine.workflow(id, version).await?.ok_or_else(|| match version {
            Some(v) => anyhow!("workflow {id} has no version {v} in {}", engine.database()),
            None => anyhow!("no workflow {id} in {}", engine.database()),
        })?;
        Ok(json!({
            "id": workflow.definition.id,
            "version": workflow.definition.version,
            "digest": workflow.digest,
            "definition": workflow.definition,
        }))
    }

    async fn delete_workflow(&self, id: &str) -> Result<()> {
        let engine = self.engine().await?;
        if !engine.delete_workflow(id).await? {
            bail!("no workflow {id} in {}", engine.database());
        }
        Ok(())
    }

    async fn publish_workflow(&self, id: &str, version: u64) -> Result<()> {
        if !self.engine().await?.publish(id, version).await? {
            bail!("workflow {id} has no version {version}");
        }
        Ok(())
    }

    async fn export_workflows(&self, ids: &[String], include_plugins: bool) -> Result<Value> {
        let bundle = crate::bundle::export(self.engine().await?, ids, include_plugins).await?;
        Ok(serde_json::to_value(&bundle)?)
    }

    async fn import_workflows(&self, file: &Path, rename: &HashMap<String, String>) -> Result<Value> {
        let bytes =
            std::fs::read(file).with_context(|| format!("cannot read the bundle {}", file.display()))?;
        let engine = self.engine().await?;
        let bundle = crate::bundle::parse(&bytes).map_err(|e| anyhow!("{}: {e}", file.display()))?;
        let imported = crate::bundle::import(engine, bundle, rename)
            .await
            .map_err(|e| anyhow!("{}: nothing was imported: {e}", file.display()))?;
        Ok(serde_json::to_value(&imported)?)
    }

    async fn create_token(&self, name: &str, roles: &[Role], groups: &[String]) -> Result<String> {
        let engine = self.engine().await?;
        let (secret, _) = engine.create_token(name, roles.to_vec(), groups.to_vec()).await?;
        Ok(secret)
    }

    async fn tokens(&self) -> Result<Vec<TokenRecord>> {
        self.engine().await?.tokens().await
    }

    async fn revoke_token(&self, which: &str) -> Result<()> {
        if self.engine().await?.revoke_token(which).await? == 0 {
            bail!("no active token {which}");
        }
        Ok(())
    }

    async fn grants(&self) -> Result<Vec<Value>> {
        let grants = self.engine().await?.grants().await?;
        Ok(grants.iter().map(|(plugin, grant)| grant.view(plugin)).collect())
    }

    async fn grant(&self, plugin: &str) -> Result<Value> {
        let grants = self.engine().await?.grants().await?;
        let grant = grants
            .get(plugin)
            .ok_or_else(|| anyhow!("no grant for {plugin}"))?;
        Ok(grant.view(plugin))
    }

    async fn set_grant(&self, plugin: &str, spec: GrantSpec, who: &Person) -> Result<Value> {
        let engine = self.engine().await?;
        let grant = engine.set_grant(plugin, spec, &who.name).await?;
        engine.record_audit(&cli_audit(&who.name, &format!("weft grant set {plugin}")));
        engine.flush().await?;
        Ok(grant.view(plugin))
    }

    async fn delete_grant(&self, plugin: &str, who: &Person) -> Result<()> {
        let engine = self.engine().await?;
        if !engine.delete_grant(plugin).await? {
            bail!("no grant for {plugin}");
        }
        engine.record_audit(&cli_audit(&who.name, &format!("weft grant delete {plugin}")));
        engine.flush().await?;
        Ok(())
    }

    async fn create_schedule(&self, definition: ScheduleDefinition, who: &Person) -> Result<Value> {
        let engine = self.engine().await?;
        let record = engine
            .create_schedule(definition, &who.name)
            .await
            .map_err(schedule_error)?;
        Ok(record.view())
    }

    async fn schedules(&self) -> Result<Vec<Value>> {
        let all = self.engine().await?.schedules().await.map_err(schedule_error)?;
        Ok(all.iter().map(crate::schedule::ScheduleRecord::view).collect())
    }

    async fn schedule(&self, id: &str) -> Result<Value> {
        let engine = self.engine().await?;
        Ok(engine.schedule(id).await.map_err(schedule_error)?.view())
    }

    async fn pause_schedule(&self, id: &str, paused: bool) -> Result<Value> {
        let engine = self.engine().await?;
        Ok(engine
            .pause_schedule(id, paused)
            .await
            .map_err(schedule_error)?
            .view())
    }

    async fn delete_schedule(&self, id: &str) -> Result<()> {
        let engine = self.engine().await?;
        engine.delete_schedule(id).await.map_err(schedule_error)
    }

    async fn send_event(&self, name: &str, key: &str, data: Value, who: &Person) -> Result<Value> {
        // The runs that take the event go on here; the command waits until they settle.
        let engine = self.working().await?;
        let receipt = engine.send_event(name, key, data, &who.name).await?;
        for run in &receipt.delivered {
            engine.settled(*run).await?;
        }
        engine.quiesce().await;
        Ok(serde_json::to_value(&receipt)?)
    }

    async fn runners(&self) -> Result<Vec<Value>> {
        let engine = self.engine().await?;
        let this = engine.runner().to_owned();
        let now = crate::run::now();
        Ok(engine
            .runners()
            .await?
            .into_iter()
            .filter(|runner| runner.id != this)
            .map(|runner| {
                let mut shown = serde_json::to_value(&runner).unwrap_or_default();
                shown["alive"] = json!(runner.lease_until > now);
                shown
            })
            .collect())
    }

    async fn close(&self) {
        if let Some(engine) = self.engine.get() {
            engine.stop().await;
        }
    }
}

fn plugin_line(meta: crate::plugins::PluginMeta) -> PluginLine {
    PluginLine {
        name: meta.name,
        version: meta.version,
        world: meta.world,
        digest: meta.digest.to_string(),
        size: meta.size,
    }
}

/// `weft run FILE`: registers the file's workflow and runs it here, answering from
/// `--answer` or the terminal.
pub async fn run(args: RunArgs, db: Option<String>, config: Option<PathBuf>) -> Result<ExitCode> {
    let local = Local::new(db, config)?;
    let who = args.identity.person(&local.place)?;
    let inputs = parse_inputs(&args.inputs)?;
    let answers = args
        .answers
        .iter()
        .map(|a| parse_answer(a))
        .collect::<Result<Vec<_>>>()?;
    let engine = local.working().await?;
    let definition = read_definition(engine, &args.file).await?;
    let workflow = engine
        .register(definition)
        .await
        .map_err(|e| start_error(&args.file, e))?;
    let interactive = std::io::stdin().is_terminal();
    let run = follow(engine, &workflow, inputs, answers, &who, interactive)
        .await
        .map_err(|e| match e.downcast::<StartError>() {
            Ok(start) => start_error(&args.file, start),
            Err(other) => other,
        });
    local.close().await;
    show::run_outcome(&run?, args.json, &local.place, &who)
}

/// `weft bench`: the figures, on temporary redb files or fresh databases on the PostgreSQL
/// server of `postgres`.
pub async fn bench(
    quick: bool,
    json: bool,
    only: &[crate::bench::Part],
    postgres: Option<&str>,
) -> Result<ExitCode> {
    let sizes = if quick {
        crate::bench::Sizes::QUICK
    } else {
        crate::bench::Sizes::FULL
    };
    let figures = crate::bench::run(sizes, only, postgres, |what| eprintln!("measuring {what}…")).await?;
    if json {
        println!("{}", crate::bench::to_json(&figures));
    } else {
        print!("{}", crate::bench::table(&figures));
    }
    Ok(ExitCode::SUCCESS)
}

/// An answer given on the command line: `Step.SignalType` and its JSON data.
struct GivenAnswer {
    step: String,
    signal: String,
    data: Value,
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

/// Starts a run and follows it, printing its steps, until it finishes or waits with no
/// answer at hand: from `answers`, or typed at the terminal when `interactive`.
async fn follow(
    engine: &Engine,
    workflow: &std::sync::Arc<workflow::Workflow>,
    inputs: Map<String, Value>,
    mut answers: Vec<GivenAnswer>,
    who: &Person,
    interactive: bool,
) -> Result<RunRecord> {
    let events = engine.subscribe();
    let id = engine.start(workflow, inputs, &who.name).await?;
    eprintln!(
        "run {id} of {} v{} started",
        workflow.definition.id, workflow.definition.version
    );
    let mut run = watch(engine, events, id).await?;
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

/// `weft serve`: continue interrupted runs, fire due timers, then serve the API.
pub async fn serve(args: ServeArgs, db: Option<String>, config: Option<PathBuf>) -> Result<ExitCode> {
    let local = Local::new(db, config)?;
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
    let engine = local.open_engine(options).await?;
    let has_tokens = engine.has_tokens().await?;
    let loopback = args.listen.ip().is_loopback();
    if !has_tokens && !loopback {
        bail!(
            "refusing to serve {} without authentication: create an admin token first with \
             `weft token create --name admin --role admin --db {}`, or listen on 127.0.0.1",
            args.listen,
            show::shell_word(local.place.args()[1])
        );
    }
    engine.start_work().await?;
    engine.plugins().take_up_uploads().await?;
    let resumed = engine.recover().await?;
    let fired = engine.fire_due_timers().await?;
    crate::telemetry::announce(
        tracing::Level::INFO,
        &format!(
            "weft serving http://{address} (database {}; runner {}; resumed {resumed} run(s), fired {fired} timer(s))",
            engine.database(),
            engine.runner()
        ),
    );
    if !has_tokens {
        crate::telemetry::announce(
            tracing::Level::WARN,
            "LOCAL MODE: no API token exists, so every caller on this machine is an admin (named by \
             the X-Weft-User header). Create a token with `weft token create` to require authentication.",
        );
    }
    let mut limits = engine.plugins().limits().clone();
    if let Some(mb) = args.body_limit_mb {
        limits.body_mb = mb;
    }
    let options = crate::api::Options {
        limits,
        local_mode: loopback,
        metrics_without_token: args.metrics_without_token,
        secure_cookies: !loopback,
    };
    crate::api::serve(engine.clone(), listener, options, stop_requested()).await?;
    // This runner's runs go to the others at once; dropping the engine closes the database
    // cleanly, so the next start is quick.
    engine.stop().await;
    crate::telemetry::announce(tracing::Level::INFO, "weft stopped");
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

fn schedule_error(e: crate::engine::ScheduleError) -> anyhow::Error {
    match e {
        crate::engine::ScheduleError::Invalid(problems) => anyhow!("invalid schedule:\n{problems}"),
        other => anyhow!(other),
    }
}
