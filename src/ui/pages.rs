//! The pages that only read: the inbox, the run list, a run, a step's form, the workflows
//! and the plugins. What each shows is decided here from engine reads; the same visibility
//! rules as the API apply (an approver sees only runs assigned to them or answered by them,
//! and any other run is the not-found page).

use super::render::{self, ago, page, pretty, until, when, UiError};
use super::session::Viewer;
use super::UiState;
use crate::auth::{Action, Principal};
use crate::engine::{Person, RunQuery};
use crate::limits::{INBOX_COUNT, INBOX_PAGE, RUNS_PAGE, RUN_PAGE_LOG_LINES};
use crate::names::RunId;
use crate::run::{RunRecord, RunState, StepRecord, StepState, MASK};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashSet;
use time::OffsetDateTime;

/// `GET /`: the inbox.
pub(super) async fn home() -> Redirect {
    Redirect::to("/ui/inbox")
}

/// Any other path under `/ui/`.
pub(super) async fn not_found() -> UiError {
    UiError::NotFound("There is no such page.".into())
}

/// 403 unless the viewer's role may do `action`.
pub(super) fn require(principal: &Principal, action: Action) -> Result<(), UiError> {
    if principal.allows(action) {
        Ok(())
    } else {
        Err(UiError::Forbidden(format!(
            "Your roles ({}) may not {}.",
            crate::auth::describe_roles(&principal.roles),
            action.describe()
        )))
    }
}

/// Run `id` if the viewer may see it and do `action` to it: the not-found page when it is
/// missing or not theirs to see (an approver's runs are the ones assigned to them), 403
/// when they see it but their role may not do `action`. As the API decides.
pub(super) async fn visible_run(
    ui: &UiState,
    viewer: &Viewer,
    id: &str,
    action: Action,
) -> Result<RunRecord, UiError> {
    let missing = || {
        UiError::NotFound(format!(
            "There is no run {}, or it is not yours to see.",
            crate::limits::clip(id)
        ))
    };
    let run = match id.parse::<RunId>() {
        Ok(id) => ui.engine.run(id).await?,
        Err(_) => None,
    };
    let run = run.ok_or_else(missing)?;
    let principal = &viewer.principal;
    if principal.reads_assigned_only() && !principal.may_read_run(&run) {
        return Err(missing());
    }
    require(principal, action)?;
    if principal.allows(Action::ReadRuns) && !principal.may_read_run(&run) {
        return Err(missing());
    }
    Ok(run)
}

/// Whether `person` answers `step` now (it waits, and they are among its assignees); with
/// `everyone`, any waiting step counts.
fn waits_for(step: &StepRecord, person: &Person, everyone: bool) -> bool {
    step.state == StepState::Waiting
        && step
            .waiting
            .as_ref()
            .is_some_and(|w| everyone || (!w.assignees.is_empty() && person.may_answer(&w.assignees)))
}

/// How far a waiting step's answers got: "1 of 2 approvals, 0 of 1 denials" for the bundled
/// approval plugin (read from its state, for showing only), else how many answers came.
pub(super) fn progress(step: &StepRecord) -> String {
    if let Some(state) = step.waiting.as_ref().map(|w| &w.state) {
        let config = &state["config"];
        if let (Some(min), Some(deny), Some(approvals), Some(denials)) = (
            config["min_approvals"].as_u64(),
            config["deny_limit"].as_u64(),
            state["approvals"].as_array(),
            state["denials"].as_array(),
        ) {
            return format!(
                "{} of {min} approvals, {} of {deny} denials",
                approvals.len(),
                denials.len()
            );
        }
    }
    match step.answers.len() {
        0 => "no answers yet".into(),
        1 => "1 answer so far".into(),
        n => format!("{n} answers so far"),
    }
}

/// A waiting step as an inbox item.
fn item(run: &RunRecord, step: &StepRecord) -> Value {
    let waiting = step.waiting.as_ref();
    json!({
        "run": run.id.to_string(),
        "workflow": run.workflow.id,
        "version": run.workflow.version,
        "step": step.name.as_str(),
        "prompt": waiting.map(|w| w.prompt.clone()),
        "started_by": run.started_by,
        "since": waiting.map(|w| crate::run::rfc3339(w.since)),
        "since_text": waiting.map(|w| when(w.since)),
        "age": waiting.map(|w| ago(w.since)),
        "expires_at": waiting.and_then(|w| w.expires_at).map(crate::run::rfc3339),
        "expires_text": waiting.and_then(|w| w.expires_at).map(when),
        "expires_in": waiting.and_then(|w| w.expires_at).map(until),
        "progress": progress(step),
        "assignees": waiting.map(|w| w.assignees.clone()).unwrap_or_default(),
        "href": format!("/ui/runs/{}/steps/{}", run.id, step.name),
    })
}

/// One page of someone's inbox.
pub(super) struct Inbox {
    pub items: Vec<Value>,
    /// The runs shown, to tell whether a change concerns this inbox.
    pub runs: HashSet<RunId>,
    /// `12`, or `100+` when there are more than [`INBOX_COUNT`] waiting runs.
    pub count: String,
    /// The cursor of the next page, if there is one.
    pub next: Option<RunId>,
}

/// The waiting steps assigned to `principal` (by name or group), newest runs first, from
/// the run `before` on; with `everyone` (roles that read every interaction), every waiting
/// step.
pub(super) async fn listing(
    ui: &UiState,
    principal: &Principal,
    everyone: bool,
    before: Option<RunId>,
) -> Result<Inbox, UiError> {
    // Assignment is by name or group; admin rights do not make everything "mine".
    let person = Person {
        admin: false,
        ..principal.person()
    };
    let everyone = everyone && !principal.reads_assigned_only();
    let runs = if everyone {
        let query = RunQuery {
            before,
            ..RunQuery::new(Some(RunState::Waiting), INBOX_COUNT + 1)
        };
        ui.engine
            .runs(query, |run| run.steps.iter().any(|s| waits_for(s, &person, true)))
            .await?
    } else {
        let mut runs = ui
            .engine
            .runs_waiting_for(&person, before, INBOX_COUNT + 1)
            .await?;
        // The inbox shows steps; a run where only `for_each` items wait is not listed.
        runs.retain(|run| run.steps.iter().any(|s| waits_for(s, &person, false)));
        runs
    };
    let mut inbox = Inbox {
        items: Vec::new(),
        runs: HashSet::new(),
        count: String::new(),
        next: None,
    };
    let mut total = 0;
    for run in runs.iter().take(INBOX_COUNT) {
        let steps: Vec<&StepRecord> = run
            .steps
            .iter()
            .filter(|s| waits_for(s, &person, everyone))
            .collect();
        total += steps.len();
        if inbox.items.len() < INBOX_PAGE {
            inbox.items.extend(steps.into_iter().map(|s| item(run, s)));
            inbox.runs.insert(run.id);
        } else if inbox.next.is_none() {
            inbox.next = inbox.runs.iter().min().copied();
        }
    }
    if runs.len() > INBOX_COUNT {
        inbox.next = inbox.next.or_else(|| inbox.runs.iter().min().copied());
        inbox.count = format!("{INBOX_COUNT}+");
    } else {
        inbox.count = total.to_string();
    }
    Ok(inbox)
}

#[derive(Deserialize)]
pub(super) struct InboxQuery {
    /// `1`: every waiting step, not only mine (not for approvers).
    #[serde(default)]
    all: Option<String>,
    /// The next page's cursor.
    before: Option<String>,
}

impl InboxQuery {
    pub(super) fn everyone(&self) -> bool {
        self.all.as_deref() == Some("1")
    }

    pub(super) fn cursor(&self) -> Result<Option<RunId>, UiError> {
        self.before
            .as_deref()
            .filter(|c| !c.is_empty())
            .map(|c| {
                c.parse()
                    .map_err(|e: String| UiError::BadRequest(format!("before: {e}")))
            })
            .transpose()
    }
}

/// The inbox's list as the live update sends it and the page includes it.
pub(super) fn inbox_context(inbox: &Inbox, everyone: bool) -> Value {
    json!({
        "items": inbox.items,
        "count": inbox.count,
        "all": everyone,
        "next": inbox.next.map(|n| n.to_string()),
    })
}

/// `GET /ui/inbox`.
pub(super) async fn inbox(
    State(ui): State<UiState>,
    viewer: Viewer,
    Query(query): Query<InboxQuery>,
) -> Result<Response, UiError> {
    require(&viewer.principal, Action::ReadInteractions)?;
    let everyone = query.everyone() && !viewer.principal.reads_assigned_only();
    let inbox = listing(&ui, &viewer.principal, everyone, query.cursor()?).await?;
    let mut context = inbox_context(&inbox, everyone);
    context["may_see_all"] = json!(!viewer.principal.reads_assigned_only());
    context["live"] = json!(format!(
        "/ui/inbox/events{}",
        if everyone { "?all=1" } else { "" }
    ));
    let title = format!("Inbox ({})", inbox.count);
    page(&viewer, "inbox.html", &title, context)
}

#[derive(Deserialize, Default)]
pub(super) struct RunsQuery {
    workflow: Option<String>,
    state: Option<String>,
    started_by: Option<String>,
    started_after: Option<String>,
    started_before: Option<String>,
    cursor: Option<String>,
}

/// A time filter: RFC 3339, or what a `datetime-local` input sends (taken as UTC).
fn time_filter(name: &str, value: Option<&str>) -> Result<Option<OffsetDateTime>, String> {
    let Some(text) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if let Ok(at) = OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339) {
        return Ok(Some(at));
    }
    let local = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]");
    let local_seconds = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    time::PrimitiveDateTime::parse(text, &local)
        .or_else(|_| time::PrimitiveDateTime::parse(text, &local_seconds))
        .map(|t| Some(t.assume_utc()))
        .map_err(|_| format!("{name}: expected a time such as 2026-11-22T10:00 (UTC)"))
}

/// `GET /ui/runs`: runs newest first, filtered and paged.
pub(super) async fn runs(
    State(ui): State<UiState>,
    viewer: Viewer,
    Query(query): Query<RunsQuery>,
) -> Result<Response, UiError> {
    if !super::lists_runs(&viewer.principal) {
        return Err(UiError::Forbidden(format!(
            "Your roles ({}) see the runs in the inbox, not the list of all runs.",
            crate::auth::describe_roles(&viewer.principal.roles)
        )));
    }
    let text = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let workflow = text(&query.workflow);
    let started_by = text(&query.started_by);
    let mut errors = serde_json::Map::new();
    let state: Option<RunState> = match text(&query.state).map(|s| s.parse::<RunState>()).transpose() {
        Ok(state) => state,
        Err(e) => {
            errors.insert("state".into(), json!(e));
            None
        }
    };
    let after = time_filter("started after", query.started_after.as_deref()).unwrap_or_else(|e| {
        errors.insert("started_after".into(), json!(e));
        None
    });
    let before = time_filter("started before", query.started_before.as_deref()).unwrap_or_else(|e| {
        errors.insert("started_before".into(), json!(e));
        None
    });
    let cursor = match text(&query.cursor).map(|c| c.parse::<RunId>()).transpose() {
        Ok(cursor) => cursor,
        Err(e) => return Err(UiError::BadRequest(format!("cursor: {e}"))),
    };
    let principal = &viewer.principal;
    let mut runs = Vec::new();
    if errors.is_empty() {
        let keep = |run: &RunRecord| {
            principal.may_read_run(run)
                && started_by.as_ref().is_none_or(|who| run.started_by == *who)
                && workflow.as_ref().is_none_or(|w| run.workflow.id == *w)
                && after.is_none_or(|t| run.created_at > t)
                && before.is_none_or(|t| run.created_at < t)
        };
        let query = RunQuery {
            before: cursor,
            ..RunQuery::new(state, RUNS_PAGE + 1)
        };
        runs = ui.engine.runs(query, keep).await?;
    }
    let next = (runs.len() > RUNS_PAGE).then(|| runs[RUNS_PAGE - 1].id.to_string());
    runs.truncate(RUNS_PAGE);
    let rows: Vec<Value> = runs
        .iter()
        .map(|run| {
            json!({
                "id": run.id.to_string(),
                "workflow": run.workflow.id,
                "version": run.workflow.version,
                "state": run.state.as_str(),
                "started_by": run.started_by,
                "created": when(run.created_at),
                "created_ago": ago(run.created_at),
                "waiting": run.waiting_step_names(),
                "error": run.error,
            })
        })
        .collect();
    let filters = json!({
        "workflow": workflow,
        "state": query.state,
        "started_by": started_by,
        "started_after": query.started_after,
        "started_before": query.started_before,
    });
    let mut next_query = serde_json::Map::new();
    for (key, value) in filters.as_object().into_iter().flatten() {
        if let Some(v) = value.as_str().filter(|v| !v.is_empty()) {
            next_query.insert(key.clone(), json!(v));
        }
    }
    let workflows: Vec<String> = ui
        .engine
        .workflows()
        .await?
        .into_iter()
        .map(|(id, _, _)| id)
        .collect();
    let context = json!({
        "runs": rows,
        "filters": filters,
        "errors": errors,
        "states": ["pending", "running", "waiting", "completed", "failed", "canceled", "rejected"],
        "workflows": workflows,
        "next": next.map(|cursor| {
            let mut q = next_query.clone();
            q.insert("cursor".into(), json!(cursor));
            query_string(&q)
        }),
        "first": cursor.is_some().then(|| query_string(&next_query)),
    });
    let status = if errors.is_empty() {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::BAD_REQUEST
    };
    render::page_with_status(status, &viewer, "runs.html", "Runs", &mut { context })
}

/// `?k=v&...` of a filter set, percent-encoded.
fn query_string(pairs: &serde_json::Map<String, Value>) -> String {
    let mut out = String::from("?");
    for (i, (key, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(key);
        out.push('=');
        for byte in value.as_str().unwrap_or_default().bytes() {
            match byte {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(byte as char),
                _ => out.push_str(&format!("%{byte:02X}")),
            }
        }
    }
    out
}

/// A step's output with the answers to secure-string fields masked.
fn shown_output(step: &StepRecord) -> Option<Value> {
    let mut output = step.output.clone()?;
    if let Some(values) = output.as_object_mut() {
        for key in &step.secure_output {
            if let Some(v) = values.get_mut(key) {
                *v = json!(MASK);
            }
        }
    }
    Some(output)
}

/// The answers a step accepted: who, when, and what.
pub(super) fn answers(step: &StepRecord) -> Vec<Value> {
    step.answers
        .iter()
        .map(|a| {
            let what: Vec<Value> = a
                .data
                .as_ref()
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .map(|(k, v)| {
                    let text = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    json!({"name": k, "value": text})
                })
                .collect();
            let decision = a.data.as_ref().and_then(|d| d.get("Approved")).map(|v| {
                matches!(v, Value::Bool(true)) || v.as_str().is_some_and(|s| s.eq_ignore_ascii_case("true"))
            });
            json!({
                "step": step.name.as_str(),
                "by": a.answered_by,
                "at": crate::run::rfc3339(a.answered_at),
                "at_text": when(a.answered_at),
                "ago": ago(a.answered_at),
                "signal": a.signal_type,
                "what": what,
                "decision": decision.map(|approved| if approved { "approved" } else { "denied" }),
            })
        })
        .collect()
}

/// The milliseconds between two times, if both are known.
fn millis(from: Option<OffsetDateTime>, to: Option<OffsetDateTime>) -> Option<i64> {
    Some((to? - from?).whole_milliseconds().max(0) as i64)
}

/// Whether the viewer may answer `step` now.
pub(super) fn may_answer(principal: &Principal, step: &StepRecord) -> bool {
    principal.allows(Action::AnswerInteractions)
        && step.state == StepState::Waiting
        && step
            .waiting
            .as_ref()
            .is_some_and(|w| principal.person().may_answer(&w.assignees))
}

/// `GET /ui/runs/{id}`.
pub(super) async fn run(
    State(ui): State<UiState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    let run = visible_run(&ui, &viewer, &id, Action::ReadRuns).await?;
    let workflow = ui.engine.workflow_of(&run).await.ok();
    let lines = if run.next_log_seq > RUN_PAGE_LOG_LINES as u64 {
        Some(run.next_log_seq - RUN_PAGE_LOG_LINES as u64 - 1)
    } else {
        None
    };
    let log = ui.engine.logs(run.id, lines, RUN_PAGE_LOG_LINES).await?;
    let principal = &viewer.principal;
    let end = run
        .ended_at
        .filter(|_| run.state.is_finished())
        .unwrap_or_else(crate::run::now);
    let total_ms = ((end - run.created_at).whole_milliseconds().max(1)) as f64;
    let steps: Vec<Value> = run
        .steps
        .iter()
        .map(|s| {
            let offset = millis(Some(run.created_at), s.started_at);
            let running_end = if matches!(s.state, StepState::Running | StepState::Waiting) {
                Some(crate::run::now())
            } else {
                s.ended_at
            };
            let duration = millis(s.started_at, running_end);
            json!({
                "name": s.name.as_str(),
                "state": serde_json::to_value(s.state).unwrap_or_default(),
                "plugin": s.plugin_name.clone().or_else(|| s.plugin.as_ref().map(ToString::to_string)),
                "child": s.child.map(|c| c.to_string()),
                "attempts": s.attempt,
                "started": s.started_at.map(when),
                "ended": s.ended_at.map(when),
                "duration_ms": duration,
                "busy_ms": s.busy_ms,
                "waited_ms": s.waited_ms,
                "retry_at": s.retry_at.map(when),
                "error": s.error,
                "output": shown_output(s).map(|o| pretty(&o)),
                "waiting": s.waiting.as_ref().filter(|_| s.state == StepState::Waiting).map(|w| json!({
                    "prompt": w.prompt,
                    "assignees": w.assignees,
                    "expires_in": w.expires_at.map(until),
                    "progress": progress(s),
                })),
                "may_answer": may_answer(principal, s),
                "href": format!("/ui/runs/{}/steps/{}", run.id, s.name),
                "bar": offset.map(|o| {
                    let scale = |ms: f64| (ms / total_ms * 1000.0).clamp(0.0, 1000.0);
                    let start = scale(o as f64);
                    let busy = scale(s.busy_ms as f64).max(2.0);
                    let wait = scale(s.waited_ms as f64);
                    let whole = scale(duration.unwrap_or(0) as f64).max(busy + wait);
                    json!({"x": start, "busy": busy, "wait": wait, "whole": whole})
                }),
            })
        })
        .collect();
    let answers: Vec<Value> = run.steps.iter().flat_map(answers).collect();
    let inputs = workflow
        .as_ref()
        .map(|w| w.masked_inputs(&run.inputs))
        .unwrap_or_else(
            || json!({"(hidden)": "the definition of this run is missing, so inputs are not shown"}),
        );
    let graph = match &workflow {
        Some(w) => super::graph::svg(w, &run),
        None => String::new(),
    };
    let finished = run.state.is_finished();
    let manage = principal.allows(Action::ManageRuns);
    let context = json!({
        "run": {
            "id": run.id.to_string(),
            "workflow": run.workflow.id,
            "version": run.workflow.version,
            "state": run.state.as_str(),
            "started_by": run.started_by,
            "created": when(run.created_at),
            "created_ago": ago(run.created_at),
            "ended": run.ended_at.filter(|_| finished).map(when),
            "duration": render::span((end - run.created_at).whole_seconds()),
            "error": run.error,
            "restarted_from": run.restarted_from.map(|r| r.to_string()),
            "inputs": pretty(&inputs),
            "outputs": run.outputs.as_ref().map(pretty),
            "live": run.is_live() || run.state == RunState::Waiting,
        },
        "steps": steps,
        "answers": answers,
        "graph": graph,
        "log": log.iter().map(|l| json!({
            "seq": l.seq,
            "at": when(l.at),
            "level": l.level,
            "step": l.step.as_ref().map(|s| s.as_str()),
            "message": l.message,
        })).collect::<Vec<_>>(),
        "log_cut": lines.is_some(),
        "last_seq": log.last().map(|l| l.seq),
        "may_cancel": manage && !finished,
        "may_restart": manage && matches!(run.state, RunState::Failed | RunState::Rejected | RunState::Canceled),
        "may_see_workflow": principal.allows(Action::ReadWorkflows),
    });
    page(
        &viewer,
        "run.html",
        &format!("Run {} of {}", short(&run.id), run.workflow.id),
        context,
    )
}

/// The first part of a run id, for titles.
pub(super) fn short(id: &RunId) -> String {
    id.to_string().chars().take(8).collect()
}

/// `GET /ui/runs/{id}/log.txt`: the whole log as a text file.
pub(super) async fn log_file(
    State(ui): State<UiState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    let run = visible_run(&ui, &viewer, &id, Action::ReadRuns).await?;
    let text = ui.engine.log_text(run.id).await?;
    let disposition = format!("attachment; filename=\"{}-{}.log\"", run.workflow.id, run.id);
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        text,
    )
        .into_response())
}

#[derive(Deserialize, Default)]
pub(super) struct StepQuery {
    /// Set after an answer was taken: the page says what it did.
    answered: Option<String>,
    /// Set when the step had been answered before this person's answer arrived.
    already: Option<String>,
}

/// `GET /ui/runs/{id}/steps/{step}`: an inbox item, with its form while it waits.
pub(super) async fn step(
    State(ui): State<UiState>,
    viewer: Viewer,
    Path((id, name)): Path<(String, String)>,
    Query(query): Query<StepQuery>,
) -> Result<Response, UiError> {
    let run = visible_run(&ui, &viewer, &id, Action::ReadRuns).await?;
    let index = step_index(&run, &name)?;
    let outcome = if query.answered.is_some() {
        Some(super::answer::outcome(&run, index, &viewer.principal.name))
    } else if query.already.is_some() {
        Some(super::answer::already(&run, index))
    } else {
        None
    };
    super::answer::form_page(
        &ui,
        &viewer,
        &run,
        index,
        None,
        outcome,
        axum::http::StatusCode::OK,
    )
    .await
}

/// The index of step `name` in `run`, or the not-found page.
pub(super) fn step_index(run: &RunRecord, name: &str) -> Result<usize, UiError> {
    run.steps
        .iter()
        .position(|s| s.name.as_str() == name)
        .ok_or_else(|| {
            UiError::NotFound(format!(
                "Run {} has no step {}.",
                run.id,
                crate::limits::clip(name)
            ))
        })
}

/// `GET /ui/workflows`.
pub(super) async fn workflows(State(ui): State<UiState>, viewer: Viewer) -> Result<Response, UiError> {
    require(&viewer.principal, Action::ReadWorkflows)?;
    let mut items = Vec::new();
    for (id, latest, _) in ui.engine.workflows().await? {
        let active = ui.engine.active_version(&id).await?;
        let description = ui
            .engine
            .workflow(&id, Some(latest))
            .await?
            .map(|w| w.definition.description.clone())
            .unwrap_or_default();
        items.push(json!({"id": id, "latest": latest, "active": active, "description": description}));
    }
    page(
        &viewer,
        "workflows.html",
        "Workflows",
        json!({"workflows": items}),
    )
}

#[derive(Deserialize, Default)]
pub(super) struct WorkflowQuery {
    version: Option<u64>,
    from: Option<u64>,
    to: Option<u64>,
}

/// `GET /ui/workflows/{id}`: versions, one definition, and a diff between two versions.
pub(super) async fn workflow(
    State(ui): State<UiState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(query): Query<WorkflowQuery>,
) -> Result<Response, UiError> {
    require(&viewer.principal, Action::ReadWorkflows)?;
    let versions = ui.engine.workflow_versions(&id).await?;
    if versions.is_empty() {
        return Err(UiError::NotFound(format!(
            "There is no workflow {}.",
            crate::limits::clip(&id)
        )));
    }
    let active = ui.engine.active_version(&id).await?;
    let published = ui.engine.published_versions(&id).await?;
    let shown = query.version.or(active).unwrap_or(versions[versions.len() - 1].0);
    let definition = |version: u64| {
        let (ui, id) = (&ui, &id);
        async move {
            let workflow = ui
                .engine
                .workflow(id, Some(version))
                .await?
                .ok_or_else(|| UiError::NotFound(format!("Workflow {id} has no version {version}.")))?;
            Ok::<_, UiError>(workflow)
        }
    };
    let current = definition(shown).await?;
    let yaml = serde_norway::to_string(&current.definition).map_err(anyhow::Error::from)?;
    let diff = match (query.from, query.to) {
        (Some(a), Some(b)) => {
            let document = |w: &crate::workflow::Workflow| {
                let mut value = serde_json::to_value(&w.definition).unwrap_or_default();
                // The version number always differs; the diff is about content.
                value.as_object_mut().map(|o| o.remove("version"));
                value
            };
            let changes = json_patch::diff(
                &document(&*definition(a).await?),
                &document(&*definition(b).await?),
            );
            let rows: Vec<Value> = serde_json::to_value(&changes)
                .unwrap_or_default()
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|op| {
                    json!({
                        "op": op["op"],
                        "path": op["path"],
                        "value": op.get("value").map(pretty),
                    })
                })
                .collect();
            Some(json!({"from": a, "to": b, "changes": rows}))
        }
        _ => None,
    };
    let rows: Vec<Value> = versions
        .iter()
        .rev()
        .map(|(v, digest)| {
            json!({
                "version": v,
                "digest": digest.to_string(),
                "active": Some(*v) == active,
                "published": published.contains(v),
            })
        })
        .collect();
    let context = json!({
        "id": id,
        "versions": rows,
        "shown": shown,
        "digest": current.digest.to_string(),
        "description": current.definition.description,
        "definition": yaml,
        "diff": diff,
        "may_see_runs": viewer.principal.allows(Action::ReadRuns),
    });
    page(&viewer, "workflow.html", &format!("Workflow {id}"), context)
}

/// `GET /ui/plugins`.
pub(super) async fn plugins(State(ui): State<UiState>, viewer: Viewer) -> Result<Response, UiError> {
    require(&viewer.principal, Action::ReadPlugins)?;
    let builtins = crate::plugins::builtin::all();
    let items: Vec<Value> = ui
        .engine
        .plugins()
        .list()
        .await?
        .into_iter()
        .map(|m| {
            let builtin = builtins.iter().any(|b| b.digest == m.digest && b.name == m.name);
            json!({
                "name": m.name,
                "version": m.version,
                "digest": m.digest.to_string(),
                "world": m.world,
                "size": m.size,
                "size_text": size(m.size),
                "builtin": builtin,
            })
        })
        .collect();
    page(&viewer, "plugins.html", "Plugins", json!({"plugins": items}))
}

/// A size in words: `46 KB`, `1.2 MB`.
fn size(bytes: u64) -> String {
    match bytes {
        0..1000 => format!("{bytes} B"),
        1000..1_000_000 => format!("{} KB", bytes / 1000),
        _ => format!("{:.1} MB", bytes as f64 / 1e6),
    }
}
