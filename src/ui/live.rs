//! Live updates as server-sent events: the inbox when an item arrives or someone else
//! answers one, and a run page's log and state while the run goes on. They hear of changes
//! through [`crate::engine::Engine::watch_runs`], so a change committed by any runner
//! sharing the database reaches every browser. A stream lasts at most
//! [`LIVE_STREAM`] (the browser then opens another) and ends when its session does.

use super::pages::{self, require, visible_run, InboxQuery};
use super::render::{render, when, UiError};
use super::session::Viewer;
use super::UiState;
use crate::auth::Action;
use crate::engine::{RunChange, RunWatch};
use crate::limits::LIVE_STREAM;
use crate::names::RunId;
use crate::run::RunState;
use axum::extract::{Path, Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use std::collections::HashSet;
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How long to gather a burst of changes before rendering once for all of them.
const COALESCE: Duration = Duration::from_millis(100);

/// Log lines one update sends at most; the next update sends the rest.
const LOG_BATCH: usize = 500;

/// The events a task sends, as an SSE response.
fn stream(events: mpsc::Receiver<Event>) -> Response {
    let stream = futures_util::stream::unfold(events, |mut events| async move {
        events.recv().await.map(|e| (Ok::<_, Infallible>(e), events))
    });
    Sse::new(stream).keep_alive(KeepAlive::default()).into_response()
}

/// The next change, or `None` when the stream should end (its time is up, the browser
/// left, or the engine stopped).
async fn next_change(
    watch: &mut RunWatch,
    deadline: Instant,
    events: &mpsc::Sender<Event>,
) -> Option<RunChange> {
    tokio::select! {
        change = watch.next() => change,
        () = tokio::time::sleep_until(deadline) => None,
        () = events.closed() => None,
    }
}

/// Lets a burst of changes arrive, so one render answers all of them. `false` when the
/// engine stopped.
async fn gather(watch: &mut RunWatch) -> bool {
    let pause = tokio::time::sleep(COALESCE);
    tokio::pin!(pause);
    loop {
        tokio::select! {
            () = &mut pause => return true,
            change = watch.next() => if change.is_none() { return false },
        }
    }
}

/// Whether the viewer's session still holds (not signed out, expired or revoked).
async fn still_signed_in(ui: &UiState, viewer: &Viewer) -> bool {
    matches!(ui.engine.session(&viewer.session).await, Ok(Some(_)))
}

/// `GET /ui/inbox/events`: the inbox's list, sent on connecting and again whenever it
/// changes.
pub(super) async fn inbox(
    State(ui): State<UiState>,
    viewer: Viewer,
    Query(query): Query<InboxQuery>,
) -> Result<Response, UiError> {
    require(&viewer.principal, Action::ReadInteractions)?;
    let everyone = query.everyone() && !viewer.principal.reads_assigned_only();
    let (events, receiver) = mpsc::channel(16);
    // Watching before the first render, so no change falls in between.
    let mut watch = ui.engine.watch_runs();
    tokio::spawn(async move {
        let deadline = Instant::now() + LIVE_STREAM;
        let mut shown: HashSet<RunId> = HashSet::new();
        let mut last = String::new();
        let mut dirty = true;
        loop {
            if dirty {
                if !still_signed_in(&ui, &viewer).await {
                    let _ = events.send(Event::default().event("signed-out").data("")).await;
                    return;
                }
                match pages::listing(&ui, &viewer.principal, everyone, None).await {
                    Ok(inbox) => {
                        let html = render("inbox_items.html", &pages::inbox_context(&inbox, everyone));
                        let html = match html {
                            Ok(html) => html,
                            Err(e) => {
                                tracing::error!("live inbox: {e:?}");
                                return;
                            }
                        };
                        let payload = json!({"count": inbox.count, "html": html}).to_string();
                        if payload != last {
                            if events
                                .send(Event::default().event("inbox").data(&payload))
                                .await
                                .is_err()
                            {
                                return;
                            }
                            last = payload;
                        }
                        shown = inbox.runs;
                    }
                    Err(e) => tracing::warn!("live inbox: {e:?}"),
                }
            }
            match next_change(&mut watch, deadline, &events).await {
                None => return,
                Some(RunChange::Missed) => dirty = true,
                Some(RunChange::Run { id, state }) => {
                    dirty = state == RunState::Waiting || shown.contains(&id);
                }
            }
            if dirty && !gather(&mut watch).await {
                return;
            }
        }
    });
    Ok(stream(receiver))
}

#[derive(Deserialize)]
pub(super) struct RunEventsQuery {
    /// The last log line the page shows.
    after: Option<u64>,
    /// The state the page shows.
    state: Option<String>,
}

/// `GET /ui/runs/{id}/events`: new log lines of the run (`log`, a JSON list) and its new
/// state when it changes (`state`; the page then reloads).
pub(super) async fn run(
    State(ui): State<UiState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(query): Query<RunEventsQuery>,
) -> Result<Response, UiError> {
    let mut watch = ui.engine.watch_runs();
    let run = visible_run(&ui, &viewer, &id, Action::ReadRuns).await?;
    let id = run.id;
    let (events, receiver) = mpsc::channel(16);
    tokio::spawn(async move {
        let deadline = Instant::now() + LIVE_STREAM;
        let mut after = query.after;
        let mut state = query.state.unwrap_or_else(|| run.state.as_str().to_owned());
        loop {
            if !still_signed_in(&ui, &viewer).await {
                let _ = events.send(Event::default().event("signed-out").data("")).await;
                return;
            }
            let lines = match ui.engine.logs(id, after, LOG_BATCH).await {
                Ok(lines) => lines,
                Err(e) => {
                    tracing::warn!("live run {id}: {e:#}");
                    return;
                }
            };
            if let Some(last) = lines.last() {
                after = Some(last.seq);
                let lines: Vec<_> = lines
                    .iter()
                    .map(|l| {
                        json!({
                            "seq": l.seq,
                            "at": when(l.at),
                            "level": l.level,
                            "step": l.step.as_ref().map(|s| s.as_str()),
                            "message": l.message,
                        })
                    })
                    .collect();
                let full = lines.len() == LOG_BATCH;
                let event = Event::default().event("log").data(json!(lines).to_string());
                if events.send(event).await.is_err() {
                    return;
                }
                if full {
                    continue;
                }
            }
            let now = match ui.engine.run(id).await {
                Ok(Some(run)) => run.state.as_str().to_owned(),
                _ => return,
            };
            if now != state {
                state = now;
                if events
                    .send(Event::default().event("state").data(&state))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            // Wait for this run's next change.
            loop {
                match next_change(&mut watch, deadline, &events).await {
                    None => return,
                    Some(RunChange::Run { id: changed, .. }) if changed != id => continue,
                    Some(_) => break,
                }
            }
            if !gather(&mut watch).await {
                return;
            }
        }
    });
    Ok(stream(receiver))
}
