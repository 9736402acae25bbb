//! The run state machine: given a run record, decide what changes, and collect the writes and
//! events that describe the change. Nothing here touches the store; the caller commits the
//! writes and only then acts on them (starts plugin calls, publishes events). What is awaited
//! is template evaluation, which runs in the plugin host's sandbox, and the items of a
//! `for_each` step, which the engine reads through [`Items`].

use super::Event;
use crate::names::{RunId, StepName};
use crate::plugins::{Outcome, PluginHost, PluginLog, Suspension};
use crate::run::{
    now, rfc3339, EventMatch, Failure, LogLine, MapItem, MapState, Pause, RunRecord, RunState, StepRecord,
    StepState, Unit, Waiting,
};
use crate::store::{Timer, TimerKind, Write};
use crate::workflow::{Call, ItemFailure, Phase, Workflow};
use serde_json::{json, Map, Value};
use std::time::Duration;

/// The writes and events one transition produced.
#[derive(Default)]
pub struct Transition {
    pub writes: Vec<Write>,
    pub events: Vec<Event>,
    /// Steps and items to call (or child runs to start) once the transition is committed,
    /// with their rendered input.
    pub to_start: Vec<(Unit, Value)>,
    /// Child runs to cancel once the transition is committed (their parent step ended).
    pub cancel_children: Vec<RunId>,
    /// `wait_for` steps that began waiting: once committed, events that came before are
    /// looked up for them.
    pub event_waits: Vec<StepName>,
    /// Whether the run record changed and must be written.
    pub dirty: bool,
}

impl Transition {
    /// Appends a line to the run's log.
    pub fn log(&mut self, run: &mut RunRecord, level: &str, step: Option<&StepName>, message: String) {
        let line = LogLine {
            seq: run.next_log_seq,
            at: now(),
            level: level.to_owned(),
            step: step.cloned(),
            message,
        };
        run.next_log_seq += 1;
        match serde_json::to_vec(&line) {
            Ok(doc) => self.writes.push(Write::Log {
                run: run.id,
                seq: line.seq,
                doc,
            }),
            Err(e) => tracing::error!("cannot serialize a log line: {e}"),
        }
        self.dirty = true;
    }

    pub fn plugin_logs(&mut self, run: &mut RunRecord, step: &StepName, logs: Vec<PluginLog>) {
        for line in logs {
            self.log(run, line.level, Some(step), line.message);
        }
    }

    fn set_run_state(&mut self, run: &mut RunRecord, state: RunState) {
        if run.state != state {
            run.state = state;
            if state.is_finished() {
                run.ended_at = Some(now());
            }
            self.events.push(Event::RunChanged { run: run.id, state });
            self.dirty = true;
        }
    }
}

/// Where a `for_each` step's items are kept: their values once the list was rendered, their
/// results once done. The engine reads them from the store; the state machine never does.
#[async_trait::async_trait]
pub trait Items: Sync {
    /// The values of items `from..from + count` of step `step` of `run`.
    async fn item_values(
        &self,
        run: RunId,
        step: &str,
        from: usize,
        count: usize,
    ) -> anyhow::Result<Vec<Value>>;
    /// Every item's result in order: its output, or `{"error": ...}` for a failed one.
    async fn item_results(&self, run: RunId, step: &str, total: usize) -> anyhow::Result<Vec<Value>>;
}

/// An item's stored document: its value, then its output or error.
pub fn item_doc(value: &Value, output: Option<&Value>, error: Option<&str>) -> Vec<u8> {
    let mut doc = json!({ "value": value });
    if let Some(output) = output {
        doc["output"] = output.clone();
    }
    if let Some(error) = error {
        doc["error"] = json!(error);
    }
    serde_json::to_vec(&doc).unwrap_or_default()
}

/// An item's result from its stored document: its output, or `{"error": ...}`.
pub fn item_result(doc: &[u8]) -> Value {
    let mut doc: Value = serde_json::from_slice(doc).unwrap_or(Value::Null);
    match doc.get_mut("error") {
        Some(error) => json!({ "error": error.take() }),
        None => doc.get_mut("output").map(Value::take).unwrap_or(Value::Null),
    }
}

/// The values a template may read, as far as the dotted `names` it reads reach:
/// `inputs.<name>`, `steps.<name>` (its `output`, `state` and `error`), `run`, `failure`, and
/// for an item of a `for_each` step `item` and `index`. Only what is read is copied, so
/// building a step's context does not grow with the run's other outputs.
pub fn context_for(run: &RunRecord, names: &[String], item: Option<(&Value, usize)>) -> Value {
    let mut inputs = Map::new();
    let mut steps = Map::new();
    let mut with_run = false;
    let mut with_failure = false;
    let step_value = |s: &crate::run::StepRecord| {
        let state = serde_json::to_value(s.state).unwrap_or(Value::Null);
        let output = s.output.clone().unwrap_or(Value::Null);
        json!({ "output": output, "state": state, "error": s.error })
    };
    for name in names {
        let mut parts = name.splitn(3, '.');
        match (parts.next(), parts.next()) {
            (Some("inputs"), Some(input)) => {
                if let Some(value) = run.inputs.get(input) {
                    inputs.insert(input.to_owned(), value.clone());
                }
            }
            (Some("inputs"), None) => {
                if let Value::Object(all) = &run.inputs {
                    inputs.extend(all.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
            }
            (Some("steps"), Some(step)) => {
                if let Some(record) = run.step(step) {
                    steps.insert(step.to_owned(), step_value(record));
                }
            }
            (Some("steps"), None) => {
                for record in &run.steps {
                    steps.insert(record.name.to_string(), step_value(record));
                }
            }
            (Some("run"), _) => with_run = true,
            (Some("failure"), _) => with_failure = true,
            _ => {}
        }
    }
    let mut context = json!({ "inputs": inputs, "steps": steps });
    if with_run {
        context["run"] = json!({
            "id": run.id.to_string(),
            "workflow": run.workflow.id,
            "version": run.workflow.version,
            "started_by": run.started_by,
        });
    }
    if with_failure {
        context["failure"] = serde_json::to_value(&run.failure).unwrap_or(Value::Null);
    }
    if let Some((value, index)) = item {
        context["item"] = value.clone();
        context["index"] = json!(index);
    }
    context
}

/// Moves the run forward as far as it can go without calling a plugin: skips steps whose
/// `when` is false, marks ready steps and items running (returning them to start), starts a
/// run's `on_failure` steps once it failed, and settles the run state (`waiting`,
/// `completed`, `failed`) when nothing is left to run.
pub async fn advance(
    run: &mut RunRecord,
    workflow: &Workflow,
    plugins: &PluginHost,
    items: &dyn Items,
    tx: &mut Transition,
) {
    if run.state.is_finished() {
        return;
    }
    loop {
        start_ready(run, workflow, plugins, items, tx).await;
        if !settle(run, workflow, plugins, items, tx).await {
            break;
        }
    }
}

/// Whether step `i` may run now: its phase is the run's, and what it needs let it.
fn ready(run: &RunRecord, workflow: &Workflow, i: usize) -> bool {
    let step = &workflow.steps[i];
    let phase = if run.failure.is_some() {
        Phase::OnFailure
    } else {
        Phase::Main
    };
    step.phase == phase
        && step.needs.iter().all(|&d| {
            let state = run.steps[d].state;
            state.lets_dependents_run() || (state == StepState::Failed && workflow.steps[d].continue_on_error)
        })
}

/// Starts every step whose turn it is, and the items of `for_each` steps under way.
async fn start_ready(
    run: &mut RunRecord,
    workflow: &Workflow,
    plugins: &PluginHost,
    items: &dyn Items,
    tx: &mut Transition,
) {
    let now = now();
    loop {
        let mut changed = false;
        for i in 0..run.steps.len() {
            if run.steps[i].state == StepState::Running && run.steps[i].map.is_some() {
                changed |= start_items(run, workflow, plugins, items, i, tx).await;
                continue;
            }
            let step = &run.steps[i];
            if step.state != StepState::Pending || step.retry_at.is_some_and(|at| at > now) {
                continue;
            }
            if !ready(run, workflow, i) || tx.to_start.iter().any(|(u, _)| *u == Unit::Step(i)) {
                continue;
            }
            let definition = workflow.definition_of(i);
            let name = run.steps[i].name.clone();
            if let Some(when) = &definition.when {
                let context = context_for(run, &workflow.steps[i].when_names, None);
                match plugins.is_true(when, &context).await {
                    Ok(true) => {}
                    Ok(false) => {
                        let step = &mut run.steps[i];
                        step.state = StepState::Skipped;
                        step.ended_at = Some(now);
                        tx.events.push(Event::StepFinished {
                            run: run.id,
                            step: name.clone(),
                            state: StepState::Skipped,
                            elapsed: Duration::ZERO,
                            detail: Some(format!("`when: {when}` is false")),
                        });
                        tx.log(
                            run,
                            "info",
                            Some(&name),
                            format!("skipped: `when: {when}` is false"),
                        );
                        changed = true;
                        continue;
                    }
                    Err(e) => {
                        fail_unit(run, Unit::Step(i), format!("when: {e}"), tx);
                        changed = true;
                        continue;
                    }
                }
            }
            if let (Some(for_each), Some(spec)) = (&definition.for_each, &workflow.steps[i].for_each) {
                let context = context_for(run, &spec.names, None);
                match plugins.render(&Value::String(for_each.clone()), &context).await {
                    Ok(list) => begin_map(run, workflow, plugins, i, list, tx).await,
                    Err(e) => fail_unit(run, Unit::Step(i), format!("for_each: {e}"), tx),
                }
                changed = true;
                continue;
            }
            if let Some(input) = run.steps[i].input_override.clone() {
                mark_running(run, Unit::Step(i), input, tx);
                continue;
            }
            let context = context_for(run, &workflow.steps[i].input_names, None);
            match plugins.render(&definition.call_template(), &context).await {
                Ok(input) if definition.pauses() => {
                    begin_pause(run, workflow, i, input, tx);
                    changed = true;
                }
                Ok(input) => mark_running(run, Unit::Step(i), input, tx),
                Err(e) => {
                    fail_unit(run, Unit::Step(i), format!("input.{e}"), tx);
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
}

/// Starts step `i`, a `sleep`, `until` or `wait_for` step, from its rendered templates: the
/// step waits (no call, nothing held in memory) on a timer, or for events. A `wait_for`
/// step is also queued, so that after the commit events that came before it are looked up.
fn begin_pause(run: &mut RunRecord, workflow: &Workflow, i: usize, rendered: Value, tx: &mut Transition) {
    tx.dirty = true;
    let at = now();
    let id = run.id;
    let pause = match &workflow.steps[i].call {
        Call::Sleep(Some(duration)) => Ok(Pause::Time {
            until: at + *duration,
        }),
        Call::Sleep(None) => parse_until(&rendered["until"]).map(|until| Pause::Time { until }),
        Call::Events {
            names,
            timeout,
            lookback,
        } => event_matches(names, &rendered["wait_for"]).map(|events| Pause::Events {
            events,
            since: at,
            until: timeout.map(|t| at + t),
            lookback_ms: u64::try_from(lookback.as_millis()).unwrap_or(u64::MAX),
        }),
        _ => return,
    };
    let pause = match pause {
        Ok(pause) => pause,
        Err(message) => return fail_unit(run, Unit::Step(i), message, tx),
    };
    let record = &mut run.steps[i];
    record.attempt += 1;
    record.started_at.get_or_insert(at);
    let name = record.name.clone();
    if let Pause::Time { until } = &pause {
        if *until <= at {
            let output = json!({ "slept_until": rfc3339(*until) });
            record.state = StepState::Completed;
            record.ended_at = Some(at);
            record.output = Some(output);
            tx.events.push(Event::StepFinished {
                run: id,
                step: name.clone(),
                state: StepState::Completed,
                elapsed: Duration::ZERO,
                detail: None,
            });
            tx.log(
                run,
                "info",
                Some(&name),
                format!("{} has passed: not waiting", rfc3339(*until)),
            );
            return;
        }
    }
    let detail = match &pause {
        Pause::Time { until } => format!("sleeping until {}", rfc3339(*until)),
        Pause::Events { events, until, .. } => {
            let what: Vec<String> = events
                .iter()
                .map(|e| format!("{} (key {:?})", e.event, e.key))
                .collect();
            let by = until.map_or_else(String::new, |u| format!(" until {}", rfc3339(u)));
            format!("waiting for {}{by}", what.join(" or "))
        }
    };
    if let Pause::Events { events, .. } = &pause {
        tx.writes
            .extend(super::events::waiter_writes(id, name.as_str(), events, true));
        tx.event_waits.push(name.clone());
    }
    record.state = StepState::Waiting;
    record.pause = Some(pause);
    if let Some(timer) = pending_timer(id, record) {
        tx.writes.push(Write::Timer(timer));
    }
    tx.events.push(Event::StepFinished {
        run: id,
        step: name.clone(),
        state: StepState::Waiting,
        elapsed: Duration::ZERO,
        detail: Some(detail.clone()),
    });
    tx.log(run, "info", Some(&name), detail);
}

/// The time an `until` template rendered.
fn parse_until(value: &Value) -> Result<time::OffsetDateTime, String> {
    let text = match value {
        Value::String(text) => text.as_str(),
        other => {
            return Err(format!(
                "until: expected an RFC 3339 time such as 2026-12-24T09:00:00Z, got {}",
                crate::limits::clip_to(&other.to_string(), 200)
            ))
        }
    };
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).map_err(|e| {
        format!(
            "until: {:?} is not an RFC 3339 time such as 2026-12-24T09:00:00Z ({e})",
            crate::limits::clip_to(text, 200)
        )
    })
}

/// The events a `wait_for` step waits for, with their rendered keys.
fn event_matches(names: &[String], rendered: &Value) -> Result<Vec<EventMatch>, String> {
    let keys: Vec<&Value> = match rendered.get("any") {
        Some(Value::Array(any)) => any.iter().map(|p| &p["key"]).collect(),
        _ => vec![&rendered["key"]],
    };
    names
        .iter()
        .zip(keys)
        .map(|(event, key)| {
            let key = match key {
                Value::String(key) => key.clone(),
                Value::Null => String::new(),
                Value::Number(_) | Value::Bool(_) => key.to_string(),
                other => {
                    return Err(format!(
                        "wait_for.key: expected text or a number, got {}",
                        crate::limits::clip_to(&other.to_string(), 200)
                    ))
                }
            };
            crate::names::check_event_key(&key).map_err(|m| format!("wait_for.key: {m}"))?;
            Ok(EventMatch {
                event: event.clone(),
                key,
            })
        })
        .collect()
}

/// Marks `unit` running (a new attempt) and queues its call.
fn mark_running(run: &mut RunRecord, unit: Unit, input: Value, tx: &mut Transition) {
    let now = now();
    let id = run.id;
    let Some(record) = run.record_mut(unit) else {
        return;
    };
    record.state = StepState::Running;
    record.attempt += 1;
    record.retry_at = None;
    record.started_at.get_or_insert(now);
    let (name, attempt) = (record.name.clone(), record.attempt);
    tx.events.push(Event::StepStarted {
        run: id,
        step: name.clone(),
        attempt,
    });
    tx.log(run, "info", Some(&name), format!("started (attempt {attempt})"));
    tx.to_start.push((unit, input));
}

/// Starts `for_each` step `i` over `list`: stores every item's value, then starts the first
/// items (from `list`, which is not committed yet).
async fn begin_map(
    run: &mut RunRecord,
    workflow: &Workflow,
    plugins: &PluginHost,
    i: usize,
    list: Value,
    tx: &mut Transition,
) {
    let list = match list {
        Value::Array(list) => list,
        Value::String(text) => match serde_json::from_str::<Value>(&text) {
            Ok(Value::Array(list)) => list,
            _ => {
                let shown = crate::limits::clip_to(&text, 200);
                return fail_unit(
                    run,
                    Unit::Step(i),
                    format!("for_each: expected a list, got {shown:?}"),
                    tx,
                );
            }
        },
        other => {
            let shown = crate::limits::clip_to(&other.to_string(), 200);
            return fail_unit(
                run,
                Unit::Step(i),
                format!("for_each: expected a list, got {shown}"),
                tx,
            );
        }
    };
    let most = plugins.limits().for_each_items;
    if list.len() > most {
        return fail_unit(
            run,
            Unit::Step(i),
            format!(
                "for_each: {} items; a step may map over at most {most} (limits.for_each_items)",
                list.len()
            ),
            tx,
        );
    }
    let name = run.steps[i].name.clone();
    for (k, value) in list.iter().enumerate() {
        tx.writes.push(Write::Item {
            run: run.id,
            step: name.to_string(),
            index: k as u64,
            doc: item_doc(value, None, None),
        });
    }
    let step = &mut run.steps[i];
    step.state = StepState::Running;
    step.attempt += 1;
    step.started_at = Some(now());
    step.map = Some(MapState {
        total: list.len(),
        ..MapState::default()
    });
    tx.events.push(Event::StepStarted {
        run: run.id,
        step: name.clone(),
        attempt: 1,
    });
    tx.log(
        run,
        "info",
        Some(&name),
        format!("started over {} items", list.len()),
    );
    let concurrency = workflow.steps[i].for_each.as_ref().map_or(1, |f| f.concurrency);
    for (k, value) in list.into_iter().take(concurrency).enumerate() {
        start_item(run, workflow, plugins, i, k, value, tx).await;
    }
}

/// Fills step `i`'s free item slots and starts its items whose retry is due; completes the
/// step once every item is done. Returns whether anything changed.
async fn start_items(
    run: &mut RunRecord,
    workflow: &Workflow,
    plugins: &PluginHost,
    items: &dyn Items,
    i: usize,
    tx: &mut Transition,
) -> bool {
    let now = now();
    let Some(map) = run.steps[i].map.clone() else {
        return false;
    };
    let mut changed = false;
    // Items that were running when their runner stopped, or whose retry is due.
    for (&k, item) in &map.active {
        let record = &item.record;
        let queued = tx.to_start.iter().any(|(u, _)| *u == Unit::Item(i, k));
        if record.state == StepState::Pending && record.retry_at.is_none_or(|at| at <= now) && !queued {
            let context = context_for(run, &workflow.steps[i].input_names, Some((&item.value, k)));
            match plugins.render(&workflow.definition_of(i).input, &context).await {
                Ok(input) => mark_running(run, Unit::Item(i, k), input, tx),
                Err(e) => {
                    fail_unit(run, Unit::Item(i, k), format!("input.{e}"), tx);
                    retire_item(run, workflow, i, k, tx);
                }
            }
            changed = true;
        }
    }
    let concurrency = workflow.steps[i].for_each.as_ref().map_or(1, |f| f.concurrency);
    let free = concurrency
        .saturating_sub(map.active.len())
        .min(map.total - map.next);
    if free > 0 {
        let name = run.steps[i].name.to_string();
        match items.item_values(run.id, &name, map.next, free).await {
            Ok(values) => {
                for (offset, value) in values.into_iter().enumerate() {
                    start_item(run, workflow, plugins, i, map.next + offset, value, tx).await;
                }
            }
            Err(e) => fail_unit(run, Unit::Step(i), format!("cannot read its items: {e:#}"), tx),
        }
        changed = true;
    }
    let map = run.steps[i].map.as_ref();
    if run.steps[i].state == StepState::Running
        && map.is_some_and(|m| m.active.is_empty() && m.next == m.total)
    {
        let name = run.steps[i].name.to_string();
        let total = map.map_or(0, |m| m.total);
        match items.item_results(run.id, &name, total).await {
            Ok(mut results) => {
                // Items retired by this very transition are not in the store yet.
                for write in &tx.writes {
                    if let Write::Item { step, index, doc, .. } = write {
                        if *step == name {
                            if let Some(slot) = results.get_mut(*index as usize) {
                                *slot = item_result(doc);
                            }
                        }
                    }
                }
                finish_map(run, i, results, tx)
            }
            Err(e) => fail_unit(run, Unit::Step(i), format!("cannot read its items: {e:#}"), tx),
        }
        changed = true;
    }
    changed
}

/// Starts item `k` (of value `value`) of step `i`.
async fn start_item(
    run: &mut RunRecord,
    workflow: &Workflow,
    plugins: &PluginHost,
    i: usize,
    k: usize,
    value: Value,
    tx: &mut Transition,
) {
    let step = &run.steps[i];
    let record = StepRecord {
        name: step.name.item(k),
        plugin: step.plugin.clone(),
        plugin_name: step.plugin_name.clone(),
        child: None,
        map: None,
        input_override: None,
        state: StepState::Pending,
        attempt: 0,
        started_at: None,
        ended_at: None,
        output: None,
        error: None,
        retry_at: None,
        waiting: None,
        pause: None,
        answers: Vec::new(),
        asked: Vec::new(),
        busy_ms: 0,
        waited_ms: 0,
        secure_output: Vec::new(),
    };
    let context = context_for(run, &workflow.steps[i].input_names, Some((&value, k)));
    let rendered = plugins.render(&workflow.definition_of(i).input, &context).await;
    if let Some(map) = run.steps[i].map.as_mut() {
        map.next = map.next.max(k + 1);
        map.active.insert(k, MapItem { value, record });
    }
    match rendered {
        Ok(input) => mark_running(run, Unit::Item(i, k), input, tx),
        Err(e) => {
            fail_unit(run, Unit::Item(i, k), format!("input.{e}"), tx);
            retire_item(run, workflow, i, k, tx);
        }
    }
}

/// Completes `for_each` step `i` with the items' results, in order.
fn finish_map(run: &mut RunRecord, i: usize, results: Vec<Value>, tx: &mut Transition) {
    let name = run.steps[i].name.clone();
    let (completed, failed) = run.steps[i]
        .map
        .as_ref()
        .map_or((0, 0), |m| (m.completed, m.failed));
    let step = &mut run.steps[i];
    step.state = StepState::Completed;
    step.ended_at = Some(now());
    step.output = Some(Value::Array(results));
    tx.events.push(Event::StepFinished {
        run: run.id,
        step: name.clone(),
        state: StepState::Completed,
        elapsed: Duration::ZERO,
        detail: None,
    });
    let detail = if failed > 0 {
        format!("completed: {completed} item(s) done, {failed} failed")
    } else {
        format!("completed: {completed} item(s) done")
    };
    tx.log(run, "info", Some(&name), detail);
}

/// Moves a finished item of step `i` out of the items under way: its result is stored, the
/// step counts it, and with `on_item_failure: fail_fast` a failed item fails the step.
fn retire_item(run: &mut RunRecord, workflow: &Workflow, i: usize, k: usize, tx: &mut Transition) {
    let (id, step_name) = (run.id, run.steps[i].name.to_string());
    let Some(map) = run.steps[i].map.as_mut() else {
        return;
    };
    let Some(item) = map.active.get(&k) else {
        return;
    };
    let state = item.record.state;
    if !matches!(state, StepState::Completed | StepState::Failed) {
        return;
    }
    let item = map.active.remove(&k).expect("the item is there");
    let doc = item_doc(
        &item.value,
        item.record.output.as_ref(),
        (state == StepState::Failed).then(|| item.record.error.as_deref().unwrap_or("failed")),
    );
    tx.writes.push(Write::Item {
        run: id,
        step: step_name,
        index: k as u64,
        doc,
    });
    if state == StepState::Completed {
        map.completed += 1;
        return;
    }
    map.failed += 1;
    let fail_fast = workflow.steps[i]
        .for_each
        .as_ref()
        .is_none_or(|f| f.on_item_failure == ItemFailure::FailFast);
    if fail_fast {
        // The items under way are abandoned: their results, when they come, are not wanted.
        let abandoned: Vec<StepRecord> = map.active.values().map(|m| m.record.clone()).collect();
        map.active.clear();
        for record in abandoned {
            if let Some(timer) = pending_timer(id, &record) {
                tx.writes.push(Write::DeleteTimer(timer));
            }
        }
        let error = format!(
            "item {k} failed: {}",
            item.record.error.as_deref().unwrap_or("failed")
        );
        fail_unit(run, Unit::Step(i), error, tx);
    }
}

/// Decides the run state from its steps; returns true when the run just failed and its
/// `on_failure` steps are now to start.
async fn settle(
    run: &mut RunRecord,
    workflow: &Workflow,
    plugins: &PluginHost,
    items: &dyn Items,
    tx: &mut Transition,
) -> bool {
    let _ = items;
    let phase = if run.failure.is_some() {
        Phase::OnFailure
    } else {
        Phase::Main
    };
    let failed = run.steps.iter().enumerate().find(|(i, s)| {
        s.state == StepState::Failed
            && workflow.steps[*i].phase == phase
            && !workflow.steps[*i].continue_on_error
    });
    if let Some((_, failed)) = failed {
        let error = format!(
            "step {} failed: {}",
            failed.name,
            failed.error.clone().unwrap_or_default()
        );
        match &run.failure {
            None if workflow.steps.iter().any(|s| s.phase == Phase::OnFailure) => {
                run.failure = Some(Failure {
                    step: failed.name.to_string(),
                    error: error.clone(),
                });
                cancel_unfinished(run, workflow, Phase::Main, tx);
                tx.log(
                    run,
                    "error",
                    None,
                    format!("{error}; running the on_failure steps"),
                );
                return true;
            }
            None => {
                finish(run, RunState::Failed, Some(error), tx);
                return false;
            }
            Some(first) => {
                let error = format!("{}; on_failure {error}", first.error);
                finish(run, RunState::Failed, Some(error), tx);
                return false;
            }
        }
    }
    let in_phase = |i: usize| workflow.steps[i].phase == phase;
    let units: Vec<Unit> = run.units().collect();
    let unit_state = |u: Unit| run.record(u).map(|r| r.state);
    // A `for_each` step under way counts through its items.
    let is_map = |u: Unit| matches!(u, Unit::Step(i) if run.steps[i].map.is_some());
    let count = |state: StepState| {
        units
            .iter()
            .filter(|&&u| in_phase(u.step()) && !is_map(u) && unit_state(u) == Some(state))
            .count()
    };
    if count(StepState::Running) > 0 || !tx.to_start.is_empty() {
        tx.set_run_state(run, RunState::Running);
        return false;
    }
    if count(StepState::Waiting) > 0 {
        tx.set_run_state(run, RunState::Waiting);
        return false;
    }
    let running_map = (0..run.steps.len())
        .any(|i| in_phase(i) && run.steps[i].state == StepState::Running && run.steps[i].map.is_some());
    if count(StepState::Pending) > 0 || running_map {
        // Only retries waiting out their backoff are left; a timer will pick them up.
        tx.set_run_state(run, RunState::Running);
        return false;
    }
    if let Some(failure) = run.failure.clone() {
        finish(run, RunState::Failed, Some(failure.error), tx);
        return false;
    }
    // Succeeded: the on_failure steps are not needed.
    for (i, step) in run.steps.iter_mut().enumerate() {
        if workflow.steps[i].phase == Phase::OnFailure && step.state == StepState::Pending {
            step.state = StepState::Skipped;
        }
    }
    let outputs = Value::Object(workflow.definition.outputs.clone());
    match plugins
        .render(&outputs, &context_for(run, &workflow.output_names, None))
        .await
    {
        Ok(rendered) => {
            run.outputs = Some(rendered);
            finish(run, RunState::Completed, None, tx);
        }
        Err(e) => finish(run, RunState::Failed, Some(format!("outputs.{e}")), tx),
    }
    false
}

/// Cancels the unfinished steps of `phase` (and their items, timers and child runs).
fn cancel_unfinished(run: &mut RunRecord, workflow: &Workflow, phase: Phase, tx: &mut Transition) {
    let ended = now();
    let id = run.id;
    for (i, step) in run.steps.iter_mut().enumerate() {
        if workflow.steps[i].phase == phase {
            cancel_step(id, step, ended, tx);
        }
    }
}

/// Cancels one step if it has not finished: its timers go, its items under way are dropped,
/// and a child run it waits for is canceled after the commit.
fn cancel_step(run: RunId, step: &mut StepRecord, ended: time::OffsetDateTime, tx: &mut Transition) {
    if !matches!(
        step.state,
        StepState::Pending | StepState::Running | StepState::Waiting
    ) {
        return;
    }
    if let Some(timer) = pending_timer(run, step) {
        tx.writes.push(Write::DeleteTimer(timer));
    }
    if let Some(Pause::Events { events, .. }) = step.pause.take() {
        tx.writes.extend(super::events::waiter_writes(
            run,
            step.name.as_str(),
            &events,
            false,
        ));
    }
    if let Some(map) = step.map.as_mut() {
        for item in std::mem::take(&mut map.active).into_values() {
            if let Some(timer) = pending_timer(run, &item.record) {
                tx.writes.push(Write::DeleteTimer(timer));
            }
        }
    }
    if let Some(child) = step.child {
        tx.cancel_children.push(child);
    }
    step.state = StepState::Canceled;
    step.ended_at = Some(ended);
    step.retry_at = None;
    step.waiting = None;
}

/// Ends the run: steps still pending, running or waiting are canceled, with their timers,
/// items and child runs, and so is the run's deadline.
pub fn finish(run: &mut RunRecord, state: RunState, error: Option<String>, tx: &mut Transition) {
    let ended = now();
    let id = run.id;
    for step in &mut run.steps {
        cancel_step(id, step, ended, tx);
    }
    if let Some(timer) = deadline_timer(run) {
        tx.writes.push(Write::DeleteTimer(timer));
    }
    if let Some(error) = &error {
        let message = format!("run {}: {error}", state.as_str());
        tx.log(run, "error", None, message);
    } else {
        tx.log(run, "info", None, format!("run {}", state.as_str()));
    }
    run.error = error;
    tx.set_run_state(run, state);
}

/// The run's deadline timer, if its workflow has a `timeout`.
pub fn deadline_timer(run: &RunRecord) -> Option<Timer> {
    run.deadline.map(|due| Timer {
        due: whole_ms(due),
        run: run.id,
        step: String::new(),
        kind: TimerKind::Deadline,
    })
}

/// The timer a step is holding, if any: its expiry while waiting, its backoff while pending.
pub fn pending_timer(run: crate::names::RunId, step: &crate::run::StepRecord) -> Option<Timer> {
    if let Some(due) = step.pause.as_ref().and_then(Pause::due) {
        return Some(Timer {
            due: whole_ms(due),
            run,
            step: step.name.to_string(),
            kind: TimerKind::Wake,
        });
    }
    match (&step.waiting, step.retry_at) {
        (
            Some(Waiting {
                expires_at: Some(due),
                ..
            }),
            _,
        ) => Some(Timer {
            due: whole_ms(*due),
            run,
            step: step.name.to_string(),
            kind: TimerKind::Expire,
        }),
        (_, Some(due)) => Some(Timer {
            due: whole_ms(due),
            run,
            step: step.name.to_string(),
            kind: TimerKind::Retry,
        }),
        _ => None,
    }
}

/// Ends the wait of a `sleep`, `until` or `wait_for` step: its timer and the records of the
/// events it waited for go, and the wait counts toward its `waited_ms`.
pub fn end_pause(run: RunId, step: &mut StepRecord, at: time::OffsetDateTime, tx: &mut Transition) {
    if let Some(timer) = pending_timer(run, step) {
        tx.writes.push(Write::DeleteTimer(timer));
    }
    let since = step.started_at.unwrap_or(at);
    if let Some(Pause::Events { events, .. }) = step.pause.take() {
        tx.writes.extend(super::events::waiter_writes(
            run,
            step.name.as_str(),
            &events,
            false,
        ));
    }
    let waited = (at - since).whole_milliseconds().max(0);
    step.waited_ms += u64::try_from(waited).unwrap_or(u64::MAX);
}

/// Sets when the next reminder of an interaction goes out. A timer is keyed by its time, run
/// and step, so one due with the expiry would replace it: it goes a millisecond later.
pub fn set_reminder(waiting: &mut Waiting, at: time::OffsetDateTime) {
    let mut due = whole_ms(at);
    if waiting.expires_at.map(whole_ms) == Some(due) {
        due += Duration::from_millis(1);
    }
    waiting.remind_at = Some(due);
}

/// The reminder timer of a step waiting for a person, if it has `remind_every`.
pub fn reminder_timer(run: RunId, step: &StepRecord) -> Option<Timer> {
    let waiting = step
        .waiting
        .as_ref()
        .filter(|_| step.state == StepState::Waiting)?;
    let mut due = whole_ms(waiting.remind_at?);
    // A timer is keyed by its time, run and step: one due with the expiry would replace it.
    if waiting.expires_at.map(whole_ms) == Some(due) {
        due += Duration::from_millis(1);
    }
    Some(Timer {
        due,
        run,
        step: step.name.to_string(),
        kind: TimerKind::Remind,
    })
}

/// Adds the time since the step began waiting to its `waited_ms`, if it waits.
pub fn stop_waiting(step: &mut crate::run::StepRecord, at: time::OffsetDateTime) {
    if let Some(waiting) = &step.waiting {
        let waited = (at - waiting.since).whole_milliseconds().max(0);
        step.waited_ms += u64::try_from(waited).unwrap_or(u64::MAX);
    }
}

/// The store keeps timers to the millisecond; round up so a timer never fires early and
/// matches its step exactly when it does.
pub(super) fn whole_ms(at: time::OffsetDateTime) -> time::OffsetDateTime {
    let nanos = at.unix_timestamp_nanos();
    let ms = nanos.div_euclid(1_000_000) + i128::from(nanos.rem_euclid(1_000_000) != 0);
    time::OffsetDateTime::from_unix_timestamp_nanos(ms * 1_000_000).unwrap_or(at)
}

/// Fails `unit` (a step, or an item of one) without a call: a template it needs failed, or
/// its items cannot be read. A failed item is retired from its step at once.
fn fail_unit(run: &mut RunRecord, unit: Unit, error: String, tx: &mut Transition) {
    let id = run.id;
    let Some(record) = run.record_mut(unit) else {
        return;
    };
    let name = record.name.clone();
    record.state = StepState::Failed;
    record.ended_at = Some(now());
    record.error = Some(error.clone());
    tx.events.push(Event::StepFinished {
        run: id,
        step: name.clone(),
        state: StepState::Failed,
        elapsed: Duration::ZERO,
        detail: Some(error.clone()),
    });
    tx.log(run, "error", Some(&name), format!("failed: {error}"));
}

/// Records what a plugin call (or a child run) decided for `unit`. `InvalidAnswer` is the
/// caller's business and must not reach here.
pub fn apply_outcome(
    run: &mut RunRecord,
    workflow: &Workflow,
    unit: Unit,
    outcome: Outcome,
    elapsed: Duration,
    tx: &mut Transition,
) {
    let id = run.id;
    let at = now();
    let Some(record) = run.record_mut(unit) else {
        return;
    };
    let name = record.name.clone();
    record.busy_ms += u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
    if !matches!(outcome, Outcome::Suspend(_)) {
        stop_waiting(record, at);
    }
    let finished = |state, detail| Event::StepFinished {
        run: id,
        step: name.clone(),
        state,
        elapsed,
        detail,
    };
    match outcome {
        Outcome::Complete(output) => {
            tx.events.push(finished(StepState::Completed, None));
            if let Some(waiting) = &record.waiting {
                record.secure_output = waiting
                    .fields
                    .iter()
                    .filter(|f| f.field_type == crate::run::FieldType::SecureString)
                    .map(|f| f.name.clone())
                    .collect();
            }
            record.state = StepState::Completed;
            record.ended_at = Some(at);
            record.output = Some(output);
            record.error = None;
            record.waiting = None;
            tx.log(run, "info", Some(&name), format!("completed in {}", ms(elapsed)));
        }
        Outcome::Suspend(suspension) => {
            let signals = suspension.signal_types.join(", ");
            tx.events.push(finished(
                StepState::Waiting,
                Some(format!("waiting for {name}.{signals}")),
            ));
            // Still waiting after an answer: the same interaction goes on, with its start and
            // expiry unchanged.
            let earlier = record.waiting.as_ref().map(|w| (w.since, w.expires_at));
            let kept = record
                .waiting
                .as_ref()
                .map(|w| (w.remind_at, w.reminders, w.escalations.clone()));
            record.state = StepState::Waiting;
            let mut waiting = to_waiting(suspension, at, earlier);
            if let Some((remind_at, reminders, escalations)) = kept {
                (waiting.remind_at, waiting.reminders, waiting.escalations) =
                    (remind_at, reminders, escalations);
            }
            for assignee in &waiting.assignees {
                if !record.asked.contains(assignee) {
                    record.asked.push(assignee.clone());
                }
            }
            record.waiting = Some(waiting);
            if earlier.is_none() {
                tx.events.push(Event::InteractionCreated {
                    run: id,
                    step: name.clone(),
                });
                if let Some(timer) = pending_timer(id, record) {
                    tx.writes.push(Write::Timer(timer));
                }
                if let (Some(every), Some(waiting)) = (
                    workflow.definition_of(unit.step()).remind_every,
                    record.waiting.as_mut(),
                ) {
                    set_reminder(waiting, at + every);
                    if let Some(timer) = reminder_timer(id, record) {
                        tx.writes.push(Write::Timer(timer));
                    }
                }
            }
            tx.log(run, "info", Some(&name), format!("waiting for {signals}"));
        }
        Outcome::Fail { message, retryable } => {
            let policy = workflow.steps[unit.step()].retry;
            let attempt = record.attempt;
            record.waiting = None;
            record.error = Some(message.clone());
            if retryable && attempt < policy.max_attempts {
                let backoff = policy.backoff_after(attempt);
                record.state = StepState::Pending;
                record.retry_at = Some(at + backoff);
                if let Some(timer) = pending_timer(id, record) {
                    tx.writes.push(Write::Timer(timer));
                }
                tx.events.push(finished(
                    StepState::Pending,
                    Some(format!(
                        "attempt {attempt} failed, retrying in {}: {message}",
                        ms(backoff)
                    )),
                ));
                tx.log(
                    run,
                    "warn",
                    Some(&name),
                    format!(
                        "attempt {attempt} of {} failed, retrying in {}: {message}",
                        policy.max_attempts,
                        ms(backoff)
                    ),
                );
            } else {
                tx.events.push(finished(StepState::Failed, Some(message.clone())));
                record.state = StepState::Failed;
                record.ended_at = Some(at);
                tx.log(
                    run,
                    "error",
                    Some(&name),
                    format!("failed after {attempt} attempt(s): {message}"),
                );
            }
        }
        Outcome::Reject(decision) => {
            tx.events
                .push(finished(StepState::Failed, Some("rejected".into())));
            record.state = StepState::Failed;
            record.ended_at = Some(at);
            record.output = Some(decision);
            record.error = Some("rejected".into());
            record.waiting = None;
            finish(
                run,
                RunState::Rejected,
                Some(format!("step {name} was rejected")),
                tx,
            );
        }
        Outcome::InvalidAnswer(message) => {
            // `resume(expired)` has no answer to refuse: treat it as a plain failure.
            return apply_outcome(
                run,
                workflow,
                unit,
                Outcome::Fail {
                    message,
                    retryable: false,
                },
                Duration::ZERO,
                tx,
            );
        }
    }
    if let Unit::Item(i, k) = unit {
        retire_item(run, workflow, i, k, tx);
    }
    tx.dirty = true;
}

fn to_waiting(
    s: Suspension,
    at: time::OffsetDateTime,
    earlier: Option<(time::OffsetDateTime, Option<time::OffsetDateTime>)>,
) -> Waiting {
    let (since, expires_at) = earlier.unwrap_or((at, s.expires_in.map(|d| at + d)));
    Waiting {
        prompt: s.prompt,
        fields: s.fields,
        assignees: s.assignees,
        signal_types: s.signal_types,
        since,
        expires_at,
        state: s.state,
        remind_at: None,
        reminders: 0,
        escalations: Vec::new(),
    }
}

fn ms(d: Duration) -> String {
    if d < Duration::from_millis(10) {
        format!("{:.2}ms", d.as_secs_f64() * 1000.0)
    } else {
        humantime::format_duration(Duration::from_millis(d.as_millis() as u64)).to_string()
    }
}
