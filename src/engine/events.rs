//! Events sent to `POST /v1/events`, and the `wait_for` steps waiting for them.
//!
//! An event is stored first (kept for `limits.event_retention`), then handed to every step
//! waiting for its name and key. A step that begins waiting records that it waits (one
//! record per event it waits for) in the same commit, then looks up the events stored within
//! its `lookback`. Both sides write before they read, so whichever comes second sees the
//! other: an event sent just before a run reaches its step is not lost. A step takes one
//! event: the hand-over is a revision-checked change of the run, made once however many
//! runners try. Records of steps that stopped waiting go in the commit that ends the wait.
//!
//! Keys (see [`DocKind`]) put the event name and key first, so finding what matches is one
//! range read; `\0` separates the parts (names and keys hold no control characters).

use super::driver::{Committed, MAX_ATTEMPTS};
use super::transition::{self, Transition};
use super::Engine;
use crate::names::{RunId, StepName};
use crate::plugins::Outcome;
use crate::run::{now, EventMatch, Pause, StepState, Unit};
use crate::store::{DocCondition, DocKind, StoredDoc, Write};
use anyhow::anyhow;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::time::Duration;
use time::OffsetDateTime;

/// Waiting steps read (and events forgotten) at a time.
const PAGE: usize = 1000;

/// How often old events are forgotten.
const FORGET_EVERY: Duration = Duration::from_secs(60);

/// An event as stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StoredEvent {
    pub id: String,
    pub name: String,
    pub key: String,
    pub data: Value,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub sent_by: String,
}

/// What sending an event did.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct EventReceipt {
    pub id: String,
    pub name: String,
    pub key: String,
    /// The runs whose waiting step took it.
    pub delivered: Vec<RunId>,
    /// Until when a step that begins waiting for it later still gets it.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub kept_until: OffsetDateTime,
}

/// Why an event was refused. Nothing was stored.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<crate::store::StoreError> for EventError {
    fn from(e: crate::store::StoreError) -> Self {
        EventError::Internal(e.into())
    }
}

fn unix_ms(at: OffsetDateTime) -> u64 {
    u64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

/// Where the events and waiters of `name` and `key` begin, and where they end.
fn range_of(name: &str, key: &str) -> (String, String) {
    (format!("{name}\0{key}\0"), format!("{name}\0{key}\u{1}"))
}

fn event_key(event: &StoredEvent) -> String {
    format!(
        "{}\0{}\0{:020}\0{}",
        event.name,
        event.key,
        unix_ms(event.at),
        event.id
    )
}

/// The writes that record (`add`) or remove that step `step` of `run` waits for `events`.
pub(super) fn waiter_writes(run: RunId, step: &str, events: &[EventMatch], add: bool) -> Vec<Write> {
    events
        .iter()
        .map(|e| Write::Doc {
            kind: DocKind::EventWaiter,
            key: format!("{}\0{}\0{run}\0{step}", e.event, e.key),
            doc: add.then(|| json!({ "run": run, "step": step }).to_string().into_bytes()),
            condition: DocCondition::Any,
        })
        .collect()
}

impl Engine {
    /// Stores an event and hands it to every step waiting for its name and key.
    pub async fn send_event(
        &self,
        name: &str,
        key: &str,
        data: Value,
        by: &str,
    ) -> Result<EventReceipt, EventError> {
        crate::names::check_event_name(name).map_err(|m| EventError::Invalid(format!("name: {m}")))?;
        crate::names::check_event_key(key).map_err(|m| EventError::Invalid(format!("key: {m}")))?;
        let limits = self.inner.plugins.limits();
        let bytes = serde_json::to_vec(&data).map_err(anyhow::Error::from)?.len();
        if bytes > limits.event_data_kb << 10 {
            return Err(EventError::Invalid(format!(
                "data: {} KiB; an event carries at most {} KiB (limits.event_data_kb)",
                bytes.div_ceil(1024),
                limits.event_data_kb
            )));
        }
        let event = StoredEvent {
            id: uuid::Uuid::now_v7().to_string(),
            name: name.to_owned(),
            key: key.to_owned(),
            data,
            at: now(),
            sent_by: by.to_owned(),
        };
        let key_of_event = event_key(&event);
        let kept_until = event.at + limits.event_retention;
        self.inner
            .store
            .commit(vec![
                Write::Doc {
                    kind: DocKind::Event,
                    key: key_of_event.clone(),
                    doc: Some(serde_json::to_vec(&event).map_err(anyhow::Error::from)?),
                    condition: DocCondition::Absent,
                },
                Write::Doc {
                    kind: DocKind::EventExpiry,
                    key: format!("{:020}\0{key_of_event}", unix_ms(kept_until)),
                    doc: Some(Vec::new()),
                    condition: DocCondition::Absent,
                },
            ])
            .await?;
        let mut delivered = Vec::new();
        let (mut from, to) = range_of(name, key);
        loop {
            let waiters = self
                .inner
                .store
                .docs(DocKind::EventWaiter, &from, &to, PAGE)
                .await?;
            for waiter in &waiters {
                let Some((run, step)) = waiter_of(waiter) else {
                    continue;
                };
                match self.deliver(run, &step, &event).await {
                    Ok(true) => delivered.push(run),
                    Ok(false) => {}
                    Err(e) => tracing::error!(
                        "run {run}: cannot hand event {} to step {step}: {e:#}",
                        event.name
                    ),
                }
            }
            match waiters.last() {
                Some(last) if waiters.len() == PAGE => from = format!("{}\0", last.key),
                _ => break,
            }
        }
        Ok(EventReceipt {
            id: event.id,
            name: event.name,
            key: event.key,
            delivered,
            kept_until,
        })
    }

    /// After a `wait_for` step of `run` began waiting: hands it the earliest event within its
    /// lookback, if one came before.
    pub(super) fn spawn_event_lookup(&self, run: RunId, step: StepName) {
        let engine = self.clone();
        tokio::spawn(async move {
            if let Err(e) = engine.look_up_events(run, &step).await {
                tracing::error!("run {run}: cannot look up the events step {step} waits for: {e:#}");
            }
        });
    }

    async fn look_up_events(&self, id: RunId, step: &StepName) -> anyhow::Result<()> {
        let Some(run) = self.run(id).await? else {
            return Ok(());
        };
        let Some(Pause::Events {
            events,
            since,
            lookback_ms,
            ..
        }) = run.step(step.as_str()).and_then(|s| s.pause.clone())
        else {
            return Ok(());
        };
        let earliest = since - Duration::from_millis(lookback_ms);
        let mut first: Option<StoredEvent> = None;
        for wanted in &events {
            let (from, to) = range_of(&wanted.event, &wanted.key);
            let from = format!("{from}{:020}", unix_ms(earliest));
            let found = self.inner.store.docs(DocKind::Event, &from, &to, 1).await?;
            if let Some(event) = found
                .first()
                .and_then(|d| serde_json::from_slice::<StoredEvent>(&d.doc).ok())
            {
                if first.as_ref().is_none_or(|f| event.at < f.at) {
                    first = Some(event);
                }
            }
        }
        if let Some(event) = first {
            self.deliver(id, step.as_str(), &event).await?;
        }
        Ok(())
    }

    /// Hands `event` to step `step` of run `id` if it still waits for it; false (and the
    /// stale waiter record removed) if it does not.
    async fn deliver(&self, id: RunId, step: &str, event: &StoredEvent) -> anyhow::Result<bool> {
        let stale = |run: RunId| {
            let matched = EventMatch {
                event: event.name.clone(),
                key: event.key.clone(),
            };
            waiter_writes(run, step, &[matched], false)
        };
        let Some(mut run) = self.lock(id).await? else {
            self.inner.store.commit(stale(id)).await?;
            return Ok(false);
        };
        self.reload(&mut run).await?;
        for _ in 0..MAX_ATTEMPTS {
            let unit = run.unit_named(step).filter(|&u| {
                run.record(u).is_some_and(|r| {
                    r.state == StepState::Waiting
                        && matches!(&r.pause, Some(Pause::Events { events, since, lookback_ms, .. })
                            if events.iter().any(|e| e.event == event.name && e.key == event.key)
                                && event.at >= *since - Duration::from_millis(*lookback_ms))
                })
            });
            let (Some(unit @ Unit::Step(_)), false) = (unit, run.state.is_finished()) else {
                drop(run);
                self.inner.store.commit(stale(id)).await?;
                return Ok(false);
            };
            let workflow = self.workflow_by_digest(&run.workflow.digest).await?;
            let mut tx = Transition::default();
            let at = now();
            let record = run.record_mut(unit).expect("a unit found by name");
            let name = record.name.clone();
            let several = matches!(&record.pause, Some(Pause::Events { events, .. }) if events.len() > 1);
            transition::end_pause(id, record, at, &mut tx);
            let output = if several {
                json!({ "event": event.name, "key": event.key, "data": event.data })
            } else {
                event.data.clone()
            };
            tx.log(
                &mut run,
                "info",
                Some(&name),
                format!(
                    "received {} (key {:?}) sent by {}",
                    event.name, event.key, event.sent_by
                ),
            );
            transition::apply_outcome(
                &mut run,
                &workflow,
                unit,
                Outcome::Complete(output),
                Duration::ZERO,
                &mut tx,
            );
            if self.drives(&run) {
                transition::advance(&mut run, &workflow, &self.inner.plugins, self, &mut tx).await;
            }
            if let Committed::Done = self.commit(&mut run, tx).await? {
                return Ok(true);
            }
        }
        Err(anyhow!("run {id} kept changing while an event was handed to it"))
    }
}

/// The run and step a waiter record names.
fn waiter_of(doc: &StoredDoc) -> Option<(RunId, String)> {
    let value: Value = serde_json::from_slice(&doc.doc).ok()?;
    Some((
        value["run"].as_str()?.parse().ok()?,
        value["step"].as_str()?.to_owned(),
    ))
}

/// Forgets events older than `limits.event_retention`, now and then, for as long as the
/// engine works. Several runners may do it at once: removing is the same either way.
pub(super) async fn forget_old(engine: Engine) {
    loop {
        if let Err(e) = forget_due(&engine).await {
            tracing::error!("cannot forget old events: {e:#}");
        }
        tokio::time::sleep(FORGET_EVERY).await;
    }
}

async fn forget_due(engine: &Engine) -> anyhow::Result<()> {
    let until = format!("{:020}", unix_ms(now()));
    loop {
        let due = engine
            .inner
            .store
            .docs(DocKind::EventExpiry, "", &until, PAGE)
            .await?;
        if due.is_empty() {
            return Ok(());
        }
        let mut writes = Vec::with_capacity(due.len() * 2);
        for expiry in &due {
            if let Some((_, event)) = expiry.key.split_once('\0') {
                writes.push(Write::Doc {
                    kind: DocKind::Event,
                    key: event.to_owned(),
                    doc: None,
                    condition: DocCondition::Any,
                });
            }
            writes.push(Write::Doc {
                kind: DocKind::EventExpiry,
                key: expiry.key.clone(),
                doc: None,
                condition: DocCondition::Any,
            });
        }
        engine.inner.store.commit(writes).await?;
        if due.len() < PAGE {
            return Ok(());
        }
    }
}
