//! The bodies of the commands that act on a database or a server alike: each reads its
//! arguments, calls the one [`Backend`] it is given, and prints through `show`. Nothing here
//! knows which backend it has.

use super::backend::Backend;
use super::{scaffold, show};
use super::{Acting, EventCommand, GrantCommand, PluginCommand, RunsCommand, ScheduleCommand};
use super::{TokenCommand, WorkflowCommand};
use crate::run::RunState;
use anyhow::{anyhow, bail, Context, Result};
use serde_json::{Map, Value};
use std::process::ExitCode;

/// Runs `command` on `backend`, then closes the backend whatever the outcome.
pub(super) async fn execute<B: Backend>(backend: &B, command: Acting) -> Result<ExitCode> {
    let outcome = act(backend, command).await;
    backend.close().await;
    outcome
}

async fn act<B: Backend>(backend: &B, command: Acting) -> Result<ExitCode> {
    let place = backend.place();
    match command {
        Acting::Start(args) => {
            let who = args.identity.person(place)?;
            let inputs = parse_inputs(&args.inputs)?;
            let started = backend
                .start(&args.workflow, args.version, inputs, &who, args.wait)
                .await?;
            match started.run {
                Some(run) => show::run_outcome(&run, args.json, place, &who),
                None => {
                    println!("{}", started.id);
                    Ok(ExitCode::SUCCESS)
                }
            }
        }
        Acting::Answer(args) => {
            let who = args.identity.person(place)?;
            let (step, signal) = parse_signal_key(&args.signal)?;
            let data = parse_data(&args.data, &args.signal)?;
            let run = backend.answer(&args.run, &step, &signal, data, &who).await?;
            show::run_outcome(&run, args.json, place, &who)
        }
        Acting::Inbox { identity, json } => {
            let who = identity.person(place)?;
            let items = backend.inbox(&who).await?;
            show::inbox(&items, json, place, &who)
        }
        Acting::Cancel { run, identity, json } => {
            let who = identity.person(place)?;
            let run = backend.cancel(&run, &who).await?;
            // Canceled as asked: success, though a canceled run's own code is 1.
            show::run_outcome(&run, json, place, &who)?;
            Ok(ExitCode::SUCCESS)
        }
        Acting::Resume => {
            let resumed = backend.resume().await?;
            for run in &resumed.runs {
                println!("{}", show::one_line(&serde_json::to_value(run.summary())?));
            }
            eprintln!(
                "resumed {} run(s), fired {} timer(s)",
                resumed.resumed, resumed.fired
            );
            Ok(ExitCode::SUCCESS)
        }
        Acting::Retry(args) => {
            let who = args.identity.person(place)?;
            let step_input = match (args.step, args.input) {
                (Some(step), Some(input)) => {
                    let input: Value = serde_json::from_str(&input)
                        .with_context(|| format!("--input for step {step}: not JSON"))?;
                    Some((step, input))
                }
                _ => None,
            };
            let options = crate::engine::RetryOptions {
                version: args.version,
                step_input,
            };
            let run = backend.retry(&args.run, options, &who).await?;
            let by = run.retries.last().map_or("?", |r| r.by.as_str());
            eprintln!("run {} retried by {by}: {}", run.id, run.state.as_str());
            show::run_outcome(&run, args.json, place, &who)
        }
        Acting::Restart {
            run,
            version,
            identity,
            json,
        } => {
            let who = identity.person(place)?;
            let restarted = backend.restart(&run, version, &who).await?;
            eprintln!("run {} restarts run {run}", restarted.id);
            show::run_outcome(&restarted, json, place, &who)
        }
        Acting::Validate { file } => {
            let valid = backend.validate(&file).await?;
            println!(
                "{}: {} v{} is valid ({} steps)",
                file.display(),
                valid.id,
                valid.version,
                valid.steps
            );
            Ok(ExitCode::SUCCESS)
        }
        Acting::Runs(RunsCommand::List { state, inputs, json }) => {
            let state: Option<RunState> = state
                .map(|s| s.parse())
                .transpose()
                .map_err(|e: String| anyhow!("--state: {e}"))?;
            let runs = backend.runs(state, &pairs("--input", &inputs)?).await?;
            show::runs(&runs, json)
        }
        Acting::Runs(RunsCommand::Show { run, json, logs }) => {
            let run = backend.run(&run).await?;
            let lines = if logs && !json {
                backend.logs(&run).await?
            } else {
                Vec::new()
            };
            let who = super::Identity::default().person(place)?;
            let code = show::run_outcome(&run, json, place, &who)?;
            if logs && !json {
                println!("log:");
                for line in &lines {
                    println!("{}", show::log_line(line));
                }
            }
            Ok(code)
        }
        Acting::Runs(RunsCommand::Purge { older_than, workflow }) => {
            let purged = backend.purge_runs(older_than, workflow.as_deref()).await?;
            println!("deleted {purged} finished run(s)");
            Ok(ExitCode::SUCCESS)
        }
        Acting::Plugin(PluginCommand::Add { file, name, version }) => {
            let plugin = backend.add_plugin(&file, &name, &version).await?;
            println!("{}", show::plugin_added(&plugin));
            Ok(ExitCode::SUCCESS)
        }
        Acting::Plugin(PluginCommand::List) => {
            for plugin in backend.plugins().await? {
                println!("{}", show::plugin_line(&plugin));
            }
            Ok(ExitCode::SUCCESS)
        }
        Acting::Plugin(PluginCommand::Delete { name, version }) => {
            backend.delete_plugin(&name, &version).await?;
            println!("deleted plugin {name}@{version}");
            Ok(ExitCode::SUCCESS)
        }
        Acting::Plugin(PluginCommand::New {
            name,
            lang,
            weft_home,
        }) => scaffold::new_plugin(&name, lang, weft_home),
        Acting::Workflow(command) => workflow(backend, command).await,
        Acting::Token(command) => token(backend, command).await,
        Acting::Grant(command) => grant(backend, command).await,
        Acting::Schedule(command) => schedule(backend, command).await,
        Acting::Event(EventCommand::Send {
            name,
            key,
            data,
            json,
            identity,
        }) => {
            let who = identity.person(place)?;
            let data: Value = serde_json::from_str(&data).map_err(|e| anyhow!("--data: not JSON: {e}"))?;
            let receipt = backend.send_event(&name, &key, data, &who).await?;
            show::event_receipt(&receipt, json)
        }
        Acting::Runners { json } => {
            let runners = backend.runners().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&runners)?);
            } else {
                for runner in &runners {
                    println!("{}", show::runner_line(runner));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn workflow<B: Backend>(backend: &B, command: WorkflowCommand) -> Result<ExitCode> {
    match command {
        WorkflowCommand::Apply { file, publish } => {
            let saved = backend.apply_workflow(&file, publish).await?;
            println!("{}", show::saved_line(&saved));
        }
        WorkflowCommand::List { json } => {
            let workflows = backend.workflows().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&workflows)?);
            } else {
                for workflow in &workflows {
                    println!("{}", show::workflow_line(workflow));
                }
            }
        }
        WorkflowCommand::Show { id, version } => {
            let shown = backend.workflow(&id, version).await?;
            println!("{}", serde_json::to_string_pretty(&shown)?);
        }
        WorkflowCommand::Delete { id } => {
            backend.delete_workflow(&id).await?;
            println!("deleted workflow {id} (every version)");
        }
        WorkflowCommand::Publish { id, version } => {
            backend.publish_workflow(&id, version).await?;
            println!("{id} v{version} is now the active version");
        }
        WorkflowCommand::Export {
            ids,
            output,
            include_plugins,
        } => {
            let bundle = backend.export_workflows(&ids, include_plugins).await?;
            std::fs::write(&output, serde_json::to_vec_pretty(&bundle)?)
                .with_context(|| format!("cannot write the bundle to {}", output.display()))?;
            println!("exported {} workflow(s) to {}", ids.len(), output.display());
        }
        WorkflowCommand::Import { file, rename } => {
            let rename = pairs("--rename", &rename)?.into_iter().collect();
            let imported = backend.import_workflows(&file, &rename).await?;
            println!("{}", show::imported_line(&imported));
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn token<B: Backend>(backend: &B, command: TokenCommand) -> Result<ExitCode> {
    match command {
        TokenCommand::Create { name, roles, groups } => {
            let secret = backend.create_token(&name, &roles, &groups).await?;
            eprintln!(
                "token for {name} ({}); it is shown only now:",
                crate::auth::describe_roles(&roles)
            );
            println!("{secret}");
        }
        TokenCommand::List => {
            for token in backend.tokens().await? {
                println!("{}", show::token_line(&token));
            }
        }
        TokenCommand::Revoke { which } => {
            backend.revoke_token(&which).await?;
            println!("revoked {which}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn grant<B: Backend>(backend: &B, command: GrantCommand) -> Result<ExitCode> {
    let place = backend.place();
    match command {
        GrantCommand::List => {
            for grant in backend.grants().await? {
                println!("{}", show::grant_line(&grant));
            }
        }
        GrantCommand::Show { plugin } => {
            let grant = backend.grant(&plugin).await?;
            println!("{}", serde_json::to_string_pretty(&grant)?);
        }
        GrantCommand::Set {
            plugin,
            spec,
            identity,
        } => {
            let who = identity.person(place)?;
            let grant = backend.set_grant(&plugin, spec.spec()?, &who).await?;
            println!("{}", show::grant_line(&grant));
        }
        GrantCommand::Delete { plugin, identity } => {
            let who = identity.person(place)?;
            backend.delete_grant(&plugin, &who).await?;
            println!("removed the grant of {plugin}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn schedule<B: Backend>(backend: &B, command: ScheduleCommand) -> Result<ExitCode> {
    match command {
        ScheduleCommand::Create {
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
        } => {
            let who = identity.person(backend.place())?;
            let definition = crate::schedule::ScheduleDefinition {
                id,
                workflow,
                version,
                cron,
                timezone,
                every,
                input: parse_inputs(&inputs)?,
                overlap,
                catch_up,
                paused,
                description: String::new(),
            };
            show::schedule(&backend.create_schedule(definition, &who).await?, json)
        }
        ScheduleCommand::List { json } => show::schedules(&backend.schedules().await?, json),
        ScheduleCommand::Show { id } => show::schedule(&backend.schedule(&id).await?, true),
        ScheduleCommand::Pause { id } => show::schedule(&backend.pause_schedule(&id, true).await?, false),
        ScheduleCommand::Resume { id } => show::schedule(&backend.pause_schedule(&id, false).await?, false),
        ScheduleCommand::Delete { id } => {
            backend.delete_schedule(&id).await?;
            println!("deleted schedule {id}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Parses `NAME=VALUE` inputs. Values stay strings; the engine converts them to the declared
/// type.
pub(super) fn parse_inputs(inputs: &[String]) -> Result<Map<String, Value>> {
    Ok(pairs("--input", inputs)?
        .into_iter()
        .map(|(name, value)| (name.trim().to_owned(), Value::String(value)))
        .collect())
}

/// Splits each `NAME=VALUE` of `option` at its first `=`.
pub(super) fn pairs(option: &str, given: &[String]) -> Result<Vec<(String, String)>> {
    given
        .iter()
        .map(|pair| {
            pair.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| anyhow!("{option} {pair:?}: expected NAME=VALUE"))
        })
        .collect()
}

/// `Step.SignalType` as its two parts.
pub(super) fn parse_signal_key(key: &str) -> Result<(String, String)> {
    key.split_once('.')
        .filter(|(s, t)| !s.is_empty() && !t.is_empty())
        .map(|(s, t)| (s.to_owned(), t.to_owned()))
        .ok_or_else(|| anyhow!("{key:?} is not a signal key: expected Step.SignalType, such as RequireApproval1.ApprovalStatus"))
}

/// An answer's data: a JSON object.
pub(super) fn parse_data(text: &str, key: &str) -> Result<Value> {
    let data: Value =
        serde_json::from_str(text).with_context(|| format!("{key}: the answer is not valid JSON"))?;
    if !data.is_object() {
        bail!("{key}: the answer must be a JSON object, such as {{\"Approved\":true}}");
    }
    Ok(data)
}
