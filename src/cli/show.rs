//! Everything the CLI prints: progress lines, run summaries, the commands hints name (each
//! works as printed), listings, and the interactive prompt. It reads nothing but its arguments.

use super::backend::{InboxItem, Place, PluginLine, TokenSource};
use crate::engine::{AnswerError, Engine, Event, Person};
use crate::names::RunId;
use crate::run::{rfc3339, Field, FieldType, LogLine, RunRecord, RunState, StepState};
use crate::workflow::coerce;
use anyhow::Result;
use serde_json::{Map, Value};
use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

/// One line for a progress event of `run`, or none for other runs' events.
pub fn progress_line(event: &Event, run: RunId) -> Option<String> {
    match event {
        Event::StepStarted {
            run: r,
            step,
            attempt,
        } if *r == run => Some(if *attempt > 1 {
            format!("  ▶ {step} started (attempt {attempt})")
        } else {
            format!("  ▶ {step} started")
        }),
        Event::StepFinished {
            run: r,
            step,
            state,
            elapsed,
            detail,
        } if *r == run => {
            let took = duration(*elapsed);
            Some(match (state, detail) {
                (StepState::Completed, _) => format!("  ✔ {step} completed in {took}"),
                (StepState::Waiting, Some(d)) => format!("  ⏸ {step} {d}"),
                (StepState::Skipped, Some(d)) => format!("  ↷ {step} skipped: {d}"),
                (StepState::Pending, Some(d)) => format!("  ↻ {step} {d}"),
                (_, Some(d)) => format!("  ✘ {step} {}: {d}", state_name(*state)),
                (_, None) => format!("  • {step} {}", state_name(*state)),
            })
        }
        _ => None,
    }
}

fn state_name(state: StepState) -> String {
    serde_json::to_value(state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{:.1}ms", d.as_secs_f64() * 1000.0)
    } else {
        format!("{:.2}s", d.as_secs_f64())
    }
}

/// A one-line description of a run from its summary (`RunRecord::summary`, as the API lists
/// runs): id, state, workflow, start time and starter.
pub fn one_line(summary: &Value) -> String {
    format!(
        "{}  {:<9}  {} v{}  started {} by {}",
        summary["id"].as_str().unwrap_or_default(),
        summary["state"].as_str().unwrap_or_default(),
        summary["workflow"].as_str().unwrap_or_default(),
        summary["version"],
        summary["created_at"].as_str().unwrap_or_default(),
        summary["started_by"].as_str().unwrap_or_default()
    )
}

/// Runs, one line each (or JSON).
pub fn runs(summaries: &[Value], json: bool) -> Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(summaries)?);
    } else if summaries.is_empty() {
        println!("no runs");
    } else {
        for summary in summaries {
            println!("{}", one_line(summary));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The process exit code for a run: 0 completed, 2 waiting, 1 failed, rejected or canceled.
pub fn exit_code(run: &RunRecord) -> ExitCode {
    match run.state {
        RunState::Completed => ExitCode::SUCCESS,
        RunState::Waiting | RunState::Pending | RunState::Running => ExitCode::from(2),
        RunState::Failed | RunState::Rejected | RunState::Canceled => ExitCode::FAILURE,
    }
}

/// A run a command ended with: its record as JSON, or its summary and, while it waits, the
/// commands that answer it at `place`. The exit code follows its state.
pub fn run_outcome(run: &RunRecord, json: bool, place: &Place, who: &Person) -> Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(run)?);
    } else {
        println!("{}", summary(run));
        for line in how_to_answer(run, place, who) {
            println!("{line}");
        }
    }
    Ok(exit_code(run))
}

/// Several lines: state, steps, outputs and error.
pub fn summary(run: &RunRecord) -> String {
    let mut out = format!("run {}: {}\n", run.id, run.state.as_str());
    out.push_str(&format!(
        "workflow {} v{}, started by {} at {}\n",
        run.workflow.id,
        run.workflow.version,
        run.started_by,
        rfc3339(run.created_at)
    ));
    out.push_str("steps:\n");
    for step in &run.steps {
        let mut line = format!("  {:<24} {:<9}", step.name.as_str(), state_name(step.state));
        if step.attempt > 1 {
            line.push_str(&format!(" attempts: {}", step.attempt));
        }
        for a in &step.answers {
            line.push_str(&format!(" answered by {}", a.answered_by));
        }
        if let Some(e) = &step.error {
            line.push_str(&format!(" error: {e}"));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    if let Some(outputs) = &run.outputs {
        out.push_str(&format!(
            "outputs: {}\n",
            serde_json::to_string_pretty(outputs).unwrap_or_default()
        ));
    }
    if let Some(error) = &run.error {
        out.push_str(&format!("error: {error}\n"));
    }
    out.trim_end().to_owned()
}

/// What the run waits for and the commands that answer it at `place`, each a command that
/// works as printed.
pub fn how_to_answer(run: &RunRecord, place: &Place, who: &Person) -> Vec<String> {
    let mut lines = Vec::new();
    for step in run.waiting_steps() {
        let Some(waiting) = &step.waiting else {
            continue;
        };
        lines.push(format!("{} waits: {}", step.name, waiting.prompt));
        if let Some(at) = waiting.expires_at {
            lines.push(format!("  expires at {}", rfc3339(at)));
        }
        if !waiting.assignees.is_empty() {
            lines.push(format!("  assignees: {}", waiting.assignees.join(", ")));
        }
        for field in &waiting.fields {
            lines.push(format!("  {}", describe_field(field)));
        }
        let run_id = run.id.to_string();
        for signal in &waiting.signal_types {
            let key = format!("{}.{signal}", step.name);
            let command = answer_command(&run_id, &key, &waiting.fields, &waiting.assignees, place, who);
            lines.push(format!("  answer with: {command}"));
        }
    }
    lines.extend(token_note(place, !lines.is_empty()));
    lines
}

/// What waits for `who`, each with the command that answers it (or JSON).
pub fn inbox(items: &[InboxItem], json: bool, place: &Place, who: &Person) -> Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(items)?);
        return Ok(ExitCode::SUCCESS);
    }
    if items.is_empty() {
        println!("nothing waits for you");
        return Ok(ExitCode::SUCCESS);
    }
    for item in items {
        let assignees = item.assignees.clone().unwrap_or_default();
        println!(
            "{}  {}  {}: {}",
            item.execution_id,
            item.workflow,
            item.step,
            item.prompt.as_deref().unwrap_or_default()
        );
        let mut about = vec![format!("assignees: {}", assignees.join(", "))];
        about.extend(item.since.as_ref().map(|at| format!("waiting since {at}")));
        about.extend(item.expires_at.as_ref().map(|at| format!("expires at {at}")));
        println!("  {}", about.join("; "));
        let fields = item.fields.clone().unwrap_or_default();
        for signal in item.signal_types.iter().flatten() {
            let key = format!("{}.{signal}", item.step);
            let command = answer_command(&item.execution_id, &key, &fields, &assignees, place, who);
            println!("  answer with: {command}");
        }
    }
    if let Some(note) = token_note(place, true) {
        println!("{note}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `weft answer RUN KEY 'DATA'`, with an identity allowed to answer and `place`'s option.
fn answer_command(
    run: &str,
    key: &str,
    fields: &[Field],
    assignees: &[String],
    place: &Place,
    who: &Person,
) -> String {
    let mut words = vec![
        "weft".to_owned(),
        "answer".to_owned(),
        run.to_owned(),
        key.to_owned(),
        example(fields),
    ];
    words.extend(identity_args(assignees, place, who));
    words.extend(place.args().map(str::to_owned));
    words.iter().map(|w| shell_word(w)).collect::<Vec<_>>().join(" ")
}

/// `--as NAME` (and `--group G` on a database) for someone the step is assigned to: `who` if
/// they may answer it, else its first assignee. None where a token names the caller.
fn identity_args(assignees: &[String], place: &Place, who: &Person) -> Vec<String> {
    if !place.takes_as() {
        return Vec::new();
    }
    // A server takes no --group: there only names count.
    let groups_count = matches!(place, Place::Db(_));
    let mine = Person {
        groups: if groups_count {
            who.groups.clone()
        } else {
            Vec::new()
        },
        ..who.clone()
    };
    let groups = || assignees.iter().filter_map(|a| a.strip_prefix("group:"));
    let mut args = vec!["--as".to_owned()];
    if mine.may_answer(assignees) {
        args.push(who.name.clone());
        if !assignees.contains(&who.name) {
            args.extend(
                groups()
                    .find(|g| mine.groups.iter().any(|m| m == g))
                    .map(|g| format!("--group={g}")),
            );
        }
    } else if let Some(user) = assignees.iter().find(|a| !a.starts_with("group:")) {
        args.push(user.clone());
    } else {
        args.push(who.name.clone());
        args.extend(
            groups()
                .next()
                .filter(|_| groups_count)
                .map(|g| format!("--group={g}")),
        );
    }
    args
}

/// Printed hints never show a token: one given with --token must be given again.
fn token_note(place: &Place, hints: bool) -> Option<String> {
    let on_command_line = matches!(
        place,
        Place::Server {
            token: Some(TokenSource::CommandLine),
            ..
        }
    );
    (on_command_line && hints)
        .then(|| "  (these commands leave out your token: add --token TOKEN, or set WEFT_TOKEN)".to_owned())
}

/// `text` as one word of a POSIX shell command: as it is when it is plain, else in single
/// quotes.
pub fn shell_word(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:@%+=,".contains(c));
    if plain {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

fn describe_field(field: &Field) -> String {
    let mut text = format!(
        "{} ({}{})",
        field.name,
        type_label(field.field_type),
        if field.required { ", required" } else { "" }
    );
    if !field.description.is_empty() {
        text.push_str(&format!(": {}", field.description));
    }
    if !field.choices.is_empty() {
        let choices: Vec<String> = field.choices.iter().map(Value::to_string).collect();
        text.push_str(&format!(" one of {}", choices.join(", ")));
    }
    if let Some(d) = &field.default {
        text.push_str(&format!(" [default {d}]"));
    }
    text
}

fn type_label(t: FieldType) -> String {
    serde_json::to_value(t)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// An example answer for a form: each required field with a value of its type.
fn example(fields: &[Field]) -> String {
    let data: Map<String, Value> = fields
        .iter()
        .filter(|f| f.required)
        .map(|f| {
            let value = f.choices.first().cloned().unwrap_or(match f.field_type {
                FieldType::Boolean => Value::Bool(true),
                FieldType::Number | FieldType::Integer => Value::from(1),
                FieldType::Json => Value::Object(Map::new()),
                FieldType::DateTime => Value::from("2026-01-01T00:00:00Z"),
                FieldType::String | FieldType::SecureString => Value::from("..."),
            });
            (f.name.clone(), value)
        })
        .collect();
    Value::Object(data).to_string()
}

pub fn log_line(line: &LogLine) -> String {
    let step = line.step.as_ref().map(|s| format!(" [{s}]")).unwrap_or_default();
    format!(
        "  {} {:<5}{} {}",
        rfc3339(line.at),
        line.level,
        step,
        line.message
    )
}

/// Asks at the terminal for every field of the first waiting step, and answers it. A refused
/// answer is shown and asked again.
pub async fn prompt_and_answer(engine: &Engine, run: &RunRecord, who: &Person) -> Result<()> {
    let Some(step) = run.waiting_steps().next() else {
        return Ok(());
    };
    let Some(waiting) = step.waiting.clone() else {
        return Ok(());
    };
    let signal = waiting.signal_types.first().cloned().unwrap_or_default();
    eprintln!("\n{} asks: {}", step.name, waiting.prompt);
    loop {
        let mut data = Map::new();
        for field in &waiting.fields {
            if let Some(value) = ask(field).await? {
                data.insert(field.name.clone(), value);
            }
        }
        match engine
            .answer(run.id, step.name.as_str(), &signal, Value::Object(data), who)
            .await
        {
            Ok(_) => return Ok(()),
            Err(e @ AnswerError::Internal(_)) => return Err(e.into()),
            Err(e) => eprintln!("answer refused: {e}; please answer again"),
        }
    }
}

/// Reads one field; empty input leaves it out (its default applies).
async fn ask(field: &Field) -> Result<Option<Value>> {
    loop {
        eprint!("  {}: ", describe_field(field));
        std::io::stderr().flush()?;
        let line = tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).map(|n| (n, line))
        })
        .await??;
        let (read, line) = line;
        if read == 0 {
            anyhow::bail!("standard input closed while answering {}", field.name);
        }
        let text = line.trim();
        if text.is_empty() {
            return Ok(None);
        }
        let text = match (field.field_type, text.to_ascii_lowercase().as_str()) {
            (FieldType::Boolean, "y" | "yes") => "true".to_owned(),
            (FieldType::Boolean, "n" | "no") => "false".to_owned(),
            _ => text.to_owned(),
        };
        match coerce(field.field_type, &Value::String(text)) {
            Ok(value) => return Ok(Some(value)),
            Err(e) => eprintln!("  {}: {e}", field.name),
        }
    }
}

/// One line for a token: id, name, roles, groups, state.
pub fn token_line(token: &crate::auth::TokenRecord) -> String {
    let state = match token.revoked_at {
        Some(at) => format!("revoked {}", rfc3339(at)),
        None => "active".to_owned(),
    };
    format!(
        "{}  {:<16} {:<8} groups: {:<20} {state}",
        token.id,
        token.name,
        crate::auth::describe_roles(&token.roles),
        if token.groups.is_empty() {
            "-".to_owned()
        } else {
            token.groups.join(",")
        }
    )
}

/// What `plugin add` stored.
pub fn plugin_added(plugin: &PluginLine) -> String {
    format!(
        "{}@{} {} ({} world, {} bytes)",
        plugin.name, plugin.version, plugin.digest, plugin.world, plugin.size
    )
}

/// One plugin of `plugin list`.
pub fn plugin_line(plugin: &PluginLine) -> String {
    format!(
        "{}@{}\t{}\t{}\t{} bytes",
        plugin.name, plugin.version, plugin.world, plugin.digest, plugin.size
    )
}

/// One workflow of `workflow list`, from `{id, latest_version, digest, description}`.
pub fn workflow_line(workflow: &Value) -> String {
    format!(
        "{}  v{}  {}  {}",
        workflow["id"].as_str().unwrap_or_default(),
        workflow["latest_version"],
        workflow["digest"].as_str().unwrap_or_default(),
        workflow["description"].as_str().unwrap_or_default()
    )
    .trim_end()
    .to_owned()
}

/// What `workflow apply` stored, from the saved-version JSON (local or from a server).
pub fn saved_line(saved: &Value) -> String {
    let text = |key: &str| saved[key].as_str().unwrap_or_default().to_owned();
    format!(
        "{} v{} {} ({}{}; active version {})",
        text("id"),
        saved["version"],
        text("status").replace('_', " "),
        if saved["published"] == Value::Bool(true) {
            "published"
        } else {
            "draft"
        },
        format_args!(", {}", text("digest")),
        saved["active_version"]
    )
}

/// What an import did, from its JSON.
pub fn imported_line(imported: &Value) -> String {
    let list = |key: &str| {
        let items: Vec<&str> = imported[key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if items.is_empty() {
            "none".to_owned()
        } else {
            items.join(", ")
        }
    };
    format!(
        "imported: {}; unchanged: {}; plugins: {}",
        list("imported"),
        list("unchanged"),
        list("plugins")
    )
}

/// One grant (as the API shows it) on one line.
pub fn grant_line(grant: &serde_json::Value) -> String {
    let list = |key: &str| {
        grant[key]
            .as_array()
            .filter(|a| !a.is_empty())
            .map(|a| a.iter().filter_map(|v| v.as_str()).collect::<Vec<_>>().join(", "))
            .unwrap_or_else(|| "-".to_owned())
    };
    format!(
        "{:<24} http: {}  secrets: {}  (set by {} at {})",
        grant["plugin"].as_str().unwrap_or_default(),
        list("http"),
        list("secrets"),
        grant["updated_by"].as_str().unwrap_or_default(),
        grant["updated_at"].as_str().unwrap_or_default(),
    )
}

/// One runner (as the API shows it) on one line.
pub fn runner_line(runner: &serde_json::Value) -> String {
    format!(
        "{}  {:<21} {:<5} runs: {:<6} heartbeat {}  lease until {}{}",
        runner["id"].as_str().unwrap_or_default(),
        runner["address"].as_str().unwrap_or("-"),
        if runner["alive"] == true { "alive" } else { "gone" },
        runner["runs"],
        runner["heartbeat_at"].as_str().unwrap_or_default(),
        runner["lease_until"].as_str().unwrap_or_default(),
        if runner["this"] == true {
            "  (this process)"
        } else {
            ""
        },
    )
}

/// A schedule: its line, or with `json` the whole view.
pub fn schedule(view: &Value, json: bool) -> Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(view)?);
    } else {
        let record: crate::schedule::ScheduleRecord = serde_json::from_value(view.clone())?;
        println!("{}", record.line());
    }
    Ok(ExitCode::SUCCESS)
}

/// Schedules, one line each (or JSON).
pub fn schedules(views: &[Value], json: bool) -> Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(views)?);
        return Ok(ExitCode::SUCCESS);
    }
    for view in views {
        let record: crate::schedule::ScheduleRecord = serde_json::from_value(view.clone())?;
        println!("{}", record.line());
    }
    Ok(ExitCode::SUCCESS)
}

/// What sending an event did.
pub fn event_receipt(receipt: &Value, json: bool) -> Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(receipt)?);
    } else {
        let runs: Vec<&str> = receipt["delivered"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        println!(
            "event {} {} (key {:?}): taken by {} run(s){}; kept until {}",
            receipt["id"].as_str().unwrap_or(""),
            receipt["name"].as_str().unwrap_or(""),
            receipt["key"].as_str().unwrap_or(""),
            runs.len(),
            if runs.is_empty() {
                String::new()
            } else {
                format!(" ({})", runs.join(", "))
            },
            receipt["kept_until"].as_str().unwrap_or("")
        );
    }
    Ok(ExitCode::SUCCESS)
}
