//! Schedules: creating, pausing and deleting them, and firing them once across runners.
//!
//! A schedule is a keyed document with a revision. Every runner looks at the schedules that
//! are due; firing one starts its run under an idempotency key made of the schedule and the
//! instant it fires for, then moves the schedule on with a revision-checked write. Two
//! runners firing the same instant start one run (the key is taken once) and move the
//! schedule once (the second write is stale); a runner that dies between the two leaves the
//! schedule due, and whoever fires it next finds the run already started.

use super::{Engine, StartError, StartOptions};
use crate::run::{now, ScheduleRef};
use crate::schedule::{CatchUp, Overlap, ScheduleDefinition, ScheduleRecord, When, GRACE};
use crate::store::{DocCondition, DocKind, Notice, StoreError, StoredDoc, Write};
use crate::workflow::{Problem, Problems};
use anyhow::anyhow;
use std::time::Duration;
use time::OffsetDateTime;

/// The longest sleep between looks at the schedules, so a schedule another runner changed
/// without a notice reaching this one (a lost connection) still fires.
const RECHECK: Duration = Duration::from_secs(5);

/// Schedules read at a time.
const PAGE: usize = 1000;

/// Why a schedule operation was refused. Nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error("{0}")]
    Invalid(Problems),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<StoreError> for ScheduleError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => ScheduleError::Conflict(m),
            other => ScheduleError::Internal(other.into()),
        }
    }
}

fn invalid(path: &str, message: String) -> ScheduleError {
    ScheduleError::Invalid(Problems(vec![Problem {
        path: path.into(),
        message,
    }]))
}

fn decode(doc: &StoredDoc) -> anyhow::Result<ScheduleRecord> {
    serde_json::from_slice(&doc.doc).map_err(|e| anyhow!("schedule {} is unreadable: {e}", doc.key))
}

impl Engine {
    /// Creates a schedule: its timing, workflow and inputs are checked now, so a schedule
    /// that could never start a run is refused with every problem and its field.
    pub async fn create_schedule(
        &self,
        definition: ScheduleDefinition,
        by: &str,
    ) -> Result<ScheduleRecord, ScheduleError> {
        let limits = self.inner.plugins.limits();
        let created_at = now();
        let when = When::of(&definition, created_at, limits.schedule_min_interval)
            .map_err(ScheduleError::Invalid)?;
        let id = match &definition.id {
            Some(id) => id.clone(),
            None => format!(
                "{}-{}",
                definition.workflow,
                &uuid::Uuid::now_v7().simple().to_string()[24..]
            ),
        };
        if id.is_empty()
            || id.len() > 128
            || !id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(invalid(
                "id",
                format!(
                    "invalid schedule id {:?}: use letters, digits, `-`, `_` and `.`, at most 128 characters",
                    crate::limits::clip_to(&id, 200)
                ),
            ));
        }
        let named = match definition.version {
            Some(v) => format!("{} version {v}", definition.workflow),
            None => definition.workflow.clone(),
        };
        let workflow = self
            .workflow(&definition.workflow, definition.version)
            .await?
            .ok_or_else(|| invalid("workflow", format!("no workflow {named}; create it first")))?;
        workflow
            .bind_inputs(definition.input.clone())
            .map_err(|Problems(problems)| {
                ScheduleError::Invalid(Problems(
                    problems
                        .into_iter()
                        .map(|p| Problem {
                            path: p.path.replacen("inputs", "input", 1),
                            message: p.message,
                        })
                        .collect(),
                ))
            })?;
        let count = self
            .inner
            .store
            .docs(DocKind::Schedule, "", "\u{10ffff}", limits.schedules)
            .await?
            .len();
        if count >= limits.schedules {
            return Err(ScheduleError::Conflict(format!(
                "there are {count} schedules; at most {} are kept (limits.schedules): delete one first",
                limits.schedules
            )));
        }
        let paused = definition.paused;
        let record = ScheduleRecord {
            id: id.clone(),
            definition: ScheduleDefinition {
                id: Some(id.clone()),
                ..definition
            },
            created_by: by.to_owned(),
            created_at,
            paused,
            next_fire: if paused { None } else { when.next_after(created_at) },
            last_fire: None,
            last_run: None,
            queued: false,
            fired: 0,
            skipped: 0,
        };
        self.inner
            .store
            .commit(vec![Write::Doc {
                kind: DocKind::Schedule,
                key: id.clone(),
                doc: Some(serde_json::to_vec(&record).map_err(anyhow::Error::from)?),
                condition: DocCondition::Absent,
            }])
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => ScheduleError::Conflict(format!(
                    "a schedule {id} exists already; delete it first or choose another id"
                )),
                other => other.into(),
            })?;
        Ok(record)
    }

    /// Every schedule, by id.
    pub async fn schedules(&self) -> Result<Vec<ScheduleRecord>, ScheduleError> {
        let limit = self.inner.plugins.limits().schedules;
        let docs = self
            .inner
            .store
            .docs(DocKind::Schedule, "", "\u{10ffff}", limit)
            .await?;
        Ok(docs.iter().map(decode).collect::<anyhow::Result<_>>()?)
    }

    pub async fn schedule(&self, id: &str) -> Result<ScheduleRecord, ScheduleError> {
        let doc = self
            .inner
            .store
            .doc(DocKind::Schedule, id)
            .await?
            .ok_or_else(|| ScheduleError::NotFound(format!("no schedule {id}")))?;
        Ok(decode(&doc)?)
    }

    /// Pauses (`paused: true`) or resumes a schedule. A resumed schedule goes on from now:
    /// fires missed while it was paused are not made up.
    pub async fn pause_schedule(&self, id: &str, paused: bool) -> Result<ScheduleRecord, ScheduleError> {
        for _ in 0..super::driver::MAX_ATTEMPTS {
            let doc = self
                .inner
                .store
                .doc(DocKind::Schedule, id)
                .await?
                .ok_or_else(|| ScheduleError::NotFound(format!("no schedule {id}")))?;
            let mut record = decode(&doc)?;
            record.paused = paused;
            record.next_fire = if paused {
                None
            } else {
                record.when().map_err(ScheduleError::Invalid)?.next_after(now())
            };
            match self.save_schedule(&record, doc.revision).await {
                Err(StoreError::Stale(_)) => continue,
                other => {
                    other?;
                    return Ok(record);
                }
            }
        }
        Err(anyhow!("schedule {id} kept changing").into())
    }

    pub async fn delete_schedule(&self, id: &str) -> Result<(), ScheduleError> {
        if self.inner.store.doc(DocKind::Schedule, id).await?.is_none() {
            return Err(ScheduleError::NotFound(format!("no schedule {id}")));
        }
        self.inner
            .store
            .commit(vec![Write::Doc {
                kind: DocKind::Schedule,
                key: id.to_owned(),
                doc: None,
                condition: DocCondition::Any,
            }])
            .await?;
        Ok(())
    }

    async fn save_schedule(&self, record: &ScheduleRecord, revision: u64) -> Result<(), StoreError> {
        let doc = serde_json::to_vec(record).map_err(|e| StoreError::Other(e.into()))?;
        self.inner
            .store
            .commit(vec![Write::Doc {
                kind: DocKind::Schedule,
                key: record.id.clone(),
                doc: Some(doc),
                condition: DocCondition::At(revision),
            }])
            .await
    }

    /// Fires every schedule that is due; returns when the next one is.
    async fn fire_due_schedules(&self) -> anyhow::Result<Option<OffsetDateTime>> {
        let limit = self.inner.plugins.limits().schedules.min(PAGE * 100);
        let docs = self
            .inner
            .store
            .docs(DocKind::Schedule, "", "\u{10ffff}", limit)
            .await?;
        let mut next: Option<OffsetDateTime> = None;
        for doc in docs {
            let record = match decode(&doc) {
                Ok(record) => record,
                Err(e) => {
                    tracing::error!("{e:#}");
                    continue;
                }
            };
            let due = match self.fire_schedule(doc.revision, record).await {
                Ok(due) => due,
                Err(e) => {
                    tracing::error!("schedule {}: cannot fire: {e:#}", doc.key);
                    Some(now() + RECHECK)
                }
            };
            next = match (next, due) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        Ok(next)
    }

    /// Fires `record` if it is due (or has a queued fire whose turn came); returns when it is
    /// next due. A stale write means another runner fired it: its turn is theirs.
    async fn fire_schedule(
        &self,
        revision: u64,
        mut record: ScheduleRecord,
    ) -> anyhow::Result<Option<OffsetDateTime>> {
        if record.paused {
            return Ok(None);
        }
        let at = now();
        let last_unfinished = match record.last_run {
            Some(run) => self.run(run).await?.is_some_and(|r| !r.state.is_finished()),
            None => false,
        };
        let mut start: Option<(OffsetDateTime, String)> = None;
        if record.queued && !last_unfinished {
            let previous = record.last_run.map_or_else(String::new, |r| r.to_string());
            start = Some((at, format!("queued after {previous}")));
            record.queued = false;
        }
        let Some(due) = record.next_fire.filter(|due| *due <= at) else {
            if start.is_none() {
                return Ok(record.next_fire);
            }
            return self.start_fire(revision, record, start).await;
        };
        let when = record.when().map_err(|p| anyhow!("{p}"))?;
        let latest = when.latest_until(due, at).unwrap_or(due);
        let missed_before = u64::from(latest > due);
        let on_time = Duration::try_from(at - latest).unwrap_or_default() <= GRACE;
        record.skipped += missed_before;
        let fire = on_time || record.definition.catch_up == CatchUp::Latest;
        if !fire {
            record.skipped += 1;
        } else if last_unfinished && start.is_none() {
            match record.definition.overlap {
                Overlap::Skip => record.skipped += 1,
                Overlap::Queue => record.queued = true,
                Overlap::Allow => start = Some((latest, rfc_key(latest))),
            }
        } else if start.is_none() {
            start = Some((latest, rfc_key(latest)));
        } else {
            // A queued fire starts now; this one waits behind it.
            record.queued = true;
        }
        record.next_fire = when.next_after(at);
        self.start_fire(revision, record, start).await
    }

    /// Starts the run of a fire (if any) under its idempotency key, then saves the schedule.
    async fn start_fire(
        &self,
        revision: u64,
        mut record: ScheduleRecord,
        start: Option<(OffsetDateTime, String)>,
    ) -> anyhow::Result<Option<OffsetDateTime>> {
        if let Some((fire_at, key)) = start {
            let definition = &record.definition;
            let started = match self.workflow(&definition.workflow, definition.version).await {
                Ok(None) => Err(anyhow!("the workflow {} no longer exists", definition.workflow)),
                Ok(Some(workflow)) => {
                    let options = StartOptions {
                        idempotency_key: Some(format!("schedule:{}:{key}", record.id)),
                        schedule: Some(ScheduleRef {
                            id: record.id.clone(),
                            fire_at,
                        }),
                        ..StartOptions::default()
                    };
                    self.start_with(&workflow, definition.input.clone(), &record.created_by, options)
                        .await
                        .map_err(|e| match e {
                            StartError::Internal(e) => e,
                            other => anyhow!("{other}"),
                        })
                }
                Err(e) => Err(e),
            };
            match started {
                Ok(run) => {
                    record.last_run = Some(run);
                    record.last_fire = Some(fire_at);
                    record.fired += 1;
                }
                Err(e) => {
                    // A schedule whose workflow went away or whose inputs no longer fit
                    // skips this fire and says why; it fires again at its next time.
                    tracing::error!("schedule {}: the fire for {key} started no run: {e:#}", record.id);
                    record.skipped += 1;
                }
            }
        }
        let next = record.next_fire;
        match self.save_schedule(&record, revision).await {
            Ok(()) | Err(StoreError::Stale(_)) => Ok(next),
            Err(e) => Err(e.into()),
        }
    }
}

/// The idempotency key part of a fire instant.
fn rfc_key(at: OffsetDateTime) -> String {
    crate::run::rfc3339(at)
}

/// Fires schedules as they fall due, for as long as the engine works: sleeps until the
/// earliest next fire (at most [`RECHECK`]), or until schedules change.
pub(super) async fn run(engine: Engine) {
    let mut notices = engine.inner.store.subscribe();
    loop {
        let next = match engine.fire_due_schedules().await {
            Ok(next) => next,
            Err(e) => {
                tracing::error!("cannot fire schedules: {e:#}");
                None
            }
        };
        let wait = next
            .map(|due| Duration::try_from(due - now()).unwrap_or(Duration::ZERO))
            .unwrap_or(RECHECK)
            .min(RECHECK);
        let sleep = tokio::time::sleep(wait);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => break,
                notice = notices.recv() => match notice {
                    Ok(Notice::Schedules | Notice::Missed) => break,
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        sleep.as_mut().await;
                        break;
                    }
                },
            }
        }
    }
}
