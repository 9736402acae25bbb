//! Persistence: one redb file holds plugins, compiled artifacts, workflow definitions, runs,
//! logs and timers, and the actions tables (see `actions.rs`).
//!
//! All writes go through one writer thread that batches whatever is queued into a single
//! durable transaction (group commit): a busy engine pays one fsync per batch, not per step,
//! and a caller's `commit` returns only once its writes are on disk. Records no caller waits
//! for (the audit log) are `enqueue`d and ride along with the next commit. Reads open their
//! own snapshot and never wait for the writer.
//!
//! Runs that are pending or running live in small tables of their own (`tables.rs`) and move
//! to the history when they wait or finish, so the pages a step transition rewrites, and what
//! a restart reads, do not grow with the history.
//!
//! This module knows nothing of scheduling or WASM; it stores documents the other modules
//! hand it.

mod actions;
mod tables;

pub use actions::ActionWrite;

use crate::auth::TokenRecord;
use crate::names::{Digest, RunId};
use crate::run::{LogLine, RunRecord, RunState};
use anyhow::{anyhow, Context, Result};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use tables::*;
use time::OffsetDateTime;
use tokio::sync::oneshot;

/// redb's page cache (reads and writes); a hundred thousand waiting runs fit in far less.
const CACHE_BYTES: usize = 64 << 20;

/// How long writes that no one waits for (see [`Store::enqueue`]) may wait for company.
const LAZY_WAIT: std::time::Duration = std::time::Duration::from_millis(5);

/// Most writes merged into one transaction; bounds latency of the first writer in a batch.
const MAX_BATCH: usize = 4096;

/// One change to the store. Values are serialized by the caller, off the writer thread.
pub enum Write {
    /// Insert or replace a run; its state keeps the active and waiting indexes.
    Run {
        id: RunId,
        json: Vec<u8>,
        state: RunState,
    },
    /// Remove a finished run and its log.
    DeleteRun(RunId),
    /// Remember that an `Idempotency-Key` started this run, from a request with digest
    /// `request`.
    Idempotency {
        key: String,
        run: RunId,
        request: Digest,
    },
    /// Forget an `Idempotency-Key` (its run was deleted).
    DeleteIdempotency(String),
    Timer(Timer),
    DeleteTimer(Timer),
    Log {
        run: RunId,
        seq: u64,
        json: Vec<u8>,
    },
    Plugin {
        meta: PluginMeta,
        bytes: Arc<[u8]>,
    },
    Compiled {
        key: String,
        bytes: Vec<u8>,
    },
    Workflow {
        id: String,
        version: u64,
        digest: Digest,
        json: Vec<u8>,
    },
    /// Publish a version and make it the active one.
    Publish {
        id: String,
        version: u64,
    },
    /// Remove every version of a workflow; definitions stay, for the runs that used them.
    DeleteWorkflow(String),
    /// Remove a plugin version; its bytes go too unless another version has the same digest.
    DeletePlugin {
        name: String,
        version: String,
    },
    /// Insert or replace a token under its hash.
    Token {
        hash: String,
        record: TokenRecord,
    },
    /// Append an entry to the audit log (numbered by the writer).
    Audit(Vec<u8>),
    /// A change to the actions tables: targets, execution rules, outbox, actions log.
    Action(ActionWrite),
}

impl Write {
    /// The write that stores `run` as it is now.
    pub fn run(run: &RunRecord) -> Result<Write> {
        Ok(Write::Run {
            id: run.id,
            json: serde_json::to_vec(run)?,
            state: run.state,
        })
    }

    /// The size of the document this write stores, for [`WriterStats::bytes`].
    fn document_len(&self) -> usize {
        match self {
            Write::Run { json, .. } | Write::Log { json, .. } | Write::Audit(json) => json.len(),
            _ => 0,
        }
    }

    pub fn log(run: RunId, line: &LogLine) -> Result<Write> {
        Ok(Write::Log {
            run,
            seq: line.seq,
            json: serde_json::to_vec(line)?,
        })
    }
}

/// Which runs a listing reads. The narrower scopes never read the history of finished runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunScope {
    All,
    /// Pending and running runs.
    Live,
    /// Runs waiting for a person.
    Waiting,
}

impl RunScope {
    /// The narrowest scope that holds every run in `state`.
    pub fn of(state: Option<RunState>) -> RunScope {
        match state {
            Some(RunState::Pending | RunState::Running) => RunScope::Live,
            Some(RunState::Waiting) => RunScope::Waiting,
            _ => RunScope::All,
        }
    }
}

/// A durable timer: at `due`, the engine resumes `step` of `run`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timer {
    pub due: OffsetDateTime,
    pub run: RunId,
    pub step: String,
    pub kind: TimerKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TimerKind {
    /// An interaction's expiry.
    Expire,
    /// The end of a retry's backoff.
    Retry,
}

/// What the store knows of an uploaded plugin.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PluginMeta {
    pub name: String,
    pub version: String,
    pub digest: Digest,
    pub world: String,
    pub size: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

struct Batch {
    writes: Vec<Write>,
    done: oneshot::Sender<Result<(), String>>,
    /// Someone waits for this batch to be durable (see [`Store::enqueue`]).
    awaited: bool,
}

/// A handle to the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
    writer: Arc<Writer>,
    path: Arc<PathBuf>,
    /// See [`Store::outbox_ready`].
    outbox_ready: Arc<tokio::sync::Notify>,
    stats: Arc<WriterStats>,
}

/// The writer thread and its queue. Dropped with the last [`Store`] handle: the queue closes,
/// the thread commits what is left and is joined, so the database is closed cleanly (and the
/// next open needs no repair) before the process exits.
struct Writer {
    queue: Option<mpsc::Sender<Batch>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Writer {
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What the writer thread has committed since the store was opened, so a benchmark can
/// replay the same transactions against bare redb.
#[derive(Debug, Default)]
pub struct WriterStats {
    pub transactions: AtomicU64,
    pub writes: AtomicU64,
    /// Bytes of run, log and audit documents written (keys and small values not counted).
    pub bytes: AtomicU64,
}

impl Store {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create the directory {}", dir.display()))?;
        }
        // redb's page cache is most of a server's memory; the OS page cache holds the rest.
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => anyhow!(
                    "{} is in use by another weft process; stop it or pass another --db",
                    path.display()
                ),
                other => anyhow!("cannot open the database {}: {other}", path.display()),
            })?;
        let db = Arc::new(db);
        create_tables(&db)?;
        let (queue, batches) = mpsc::channel();
        let writer_db = db.clone();
        let outbox_ready = Arc::new(tokio::sync::Notify::new());
        let ready = outbox_ready.clone();
        let stats = Arc::new(WriterStats::default());
        let counted = stats.clone();
        let thread = std::thread::Builder::new()
            .name("weft-store-writer".into())
            .spawn(move || write_loop(&writer_db, batches, &ready, &counted))?;
        Ok(Store {
            db,
            writer: Arc::new(Writer {
                queue: Some(queue),
                thread: Some(thread),
            }),
            path: Arc::new(path.to_owned()),
            outbox_ready,
            stats,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What has been committed through this handle's writer so far.
    pub fn writer_stats(&self) -> &WriterStats {
        &self.stats
    }

    /// Makes `writes` durable, in one transaction shared with whatever else is queued.
    pub async fn commit(&self, writes: Vec<Write>) -> Result<()> {
        if writes.is_empty() {
            return Ok(());
        }
        self.durable(self.send(writes, true)?).await
    }

    /// Queues `writes` for the next group commit without waiting for it to be durable: for
    /// records (the audit log) that must not hold up the response they describe. They join
    /// the next awaited commit, or are committed alone within a few milliseconds. Readers of
    /// such records call [`Store::flush`] first.
    pub fn enqueue(&self, writes: Vec<Write>) -> Result<()> {
        self.send(writes, false).map(drop)
    }

    /// Waits until everything queued before this call is durable.
    pub async fn flush(&self) -> Result<()> {
        self.durable(self.send(Vec::new(), true)?).await
    }

    fn send(&self, writes: Vec<Write>, awaited: bool) -> Result<oneshot::Receiver<Result<(), String>>> {
        let (done, wait) = oneshot::channel();
        let batch = Batch {
            writes,
            done,
            awaited,
        };
        let queue = self.writer.queue.as_ref().ok_or_else(stopped)?;
        queue.send(batch).map_err(|_| stopped())?;
        Ok(wait)
    }

    async fn durable(&self, wait: oneshot::Receiver<Result<(), String>>) -> Result<()> {
        wait.await
            .map_err(|_| stopped())?
            .map_err(|e| anyhow!("cannot write to {}: {e}", self.path.display()))
    }

    pub fn run(&self, id: RunId) -> Result<Option<RunRecord>> {
        let txn = self.db.begin_read()?;
        let key = id.to_string();
        let live = txn.open_table(LIVE_RUNS)?.get(key.as_str())?;
        let found = match live {
            Some(v) => Some(v),
            None => txn.open_table(RUNS)?.get(key.as_str())?,
        };
        found.map(|v| parse_run(v.value())).transpose()
    }

    /// Every run, newest first.
    pub fn runs(&self) -> Result<Vec<RunRecord>> {
        self.runs_before(RunScope::All, None, |_| true, usize::MAX)
    }

    /// Up to `limit` runs in `scope` that `keep` accepts, newest first, starting after the
    /// run `before` (a paging cursor). Run ids are UUIDv7, so key order is start order.
    pub fn runs_before(
        &self,
        scope: RunScope,
        before: Option<RunId>,
        mut keep: impl FnMut(&RunRecord) -> bool,
        limit: usize,
    ) -> Result<Vec<RunRecord>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let txn = self.db.begin_read()?;
        let history = txn.open_table(RUNS)?;
        let live = txn.open_table(LIVE_RUNS)?;
        let bound = before.map(|id| id.to_string());
        let below = |table: &redb::ReadOnlyTable<&'static str, &'static [u8]>| match &bound {
            Some(b) => table.range::<&str>(..b.as_str()),
            None => table.range::<&str>(..),
        };
        let mut runs = Vec::new();
        let mut offer = |bytes: &[u8]| -> Result<bool> {
            let run = parse_run(bytes)?;
            if keep(&run) {
                runs.push(run);
            }
            Ok(runs.len() < limit)
        };
        match scope {
            RunScope::Live => {
                for entry in below(&live)?.rev() {
                    if !offer(entry?.1.value())? {
                        break;
                    }
                }
            }
            RunScope::Waiting => {
                let waiting = txn.open_table(WAITING)?;
                let ids = match &bound {
                    Some(b) => waiting.range::<&str>(..b.as_str())?,
                    None => waiting.range::<&str>(..)?,
                };
                for entry in ids.rev() {
                    let id = entry?.0;
                    if let Some(v) = history.get(id.value())? {
                        if !offer(v.value())? {
                            break;
                        }
                    }
                }
            }
            RunScope::All => {
                // Both tables in one descending order: take the larger key each time.
                let mut old = below(&history)?.rev().peekable();
                let mut new = below(&live)?.rev().peekable();
                loop {
                    let from_old = match (old.peek(), new.peek()) {
                        (Some(Ok((a, _))), Some(Ok((b, _)))) => a.value() >= b.value(),
                        (Some(_), _) => true,
                        (None, Some(_)) => false,
                        (None, None) => break,
                    };
                    let next = if from_old { old.next() } else { new.next() };
                    let Some(entry) = next else { break };
                    if !offer(entry?.1.value())? {
                        break;
                    }
                }
            }
        }
        Ok(runs)
    }

    /// Runs that were pending or running when they were last committed.
    pub fn active_runs(&self) -> Result<Vec<RunId>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(LIVE_RUNS)?;
        let mut ids = Vec::new();
        for entry in table.iter()? {
            ids.push(entry?.0.value().parse().map_err(|e: String| anyhow!(e))?);
        }
        Ok(ids)
    }

    /// Runs waiting for a person, oldest first; never scans other runs.
    pub fn waiting_runs(&self) -> Result<Vec<RunId>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(WAITING)?;
        let mut ids = Vec::new();
        for entry in table.iter()? {
            let (k, _) = entry?;
            ids.push(k.value().parse().map_err(|e: String| anyhow!(e))?);
        }
        Ok(ids)
    }

    /// The run an `Idempotency-Key` started, if any, and the digest of the request that
    /// started it (absent for keys stored before requests were recorded).
    pub fn idempotent_run(&self, key: &str) -> Result<Option<(RunId, Option<Digest>)>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(IDEMPOTENCY)?;
        let found = table.get(key)?.map(|v| v.value().to_owned());
        found
            .map(|value| {
                let (run, request) = match value.split_once(' ') {
                    Some((run, request)) => (
                        run.to_owned(),
                        Some(request.parse().map_err(|e: String| anyhow!(e))?),
                    ),
                    None => (value, None),
                };
                Ok((run.parse().map_err(|e: String| anyhow!(e))?, request))
            })
            .transpose()
    }

    /// Every version of workflow `id`, oldest first, with its definition digest.
    pub fn workflow_versions(&self, id: &str) -> Result<Vec<(u64, Digest)>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(WORKFLOWS)?;
        let mut versions = Vec::new();
        for entry in table.range((id, 0)..=(id, u64::MAX))? {
            let (k, v) = entry?;
            versions.push((k.value().1, v.value().parse().map_err(|e: String| anyhow!(e))?));
        }
        Ok(versions)
    }

    /// The latest version of every workflow: (id, version, digest), by id.
    pub fn workflows(&self) -> Result<Vec<(String, u64, Digest)>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(WORKFLOWS)?;
        let mut latest: Vec<(String, u64, Digest)> = Vec::new();
        for entry in table.iter()? {
            let (k, v) = entry?;
            let (id, version) = k.value();
            let digest: Digest = v.value().parse().map_err(|e: String| anyhow!(e))?;
            match latest.last_mut() {
                Some(last) if last.0 == id => *last = (id.to_owned(), version, digest),
                _ => latest.push((id.to_owned(), version, digest)),
            }
        }
        Ok(latest)
    }

    /// The token stored under `hash`, revoked or not.
    pub fn token(&self, hash: &str) -> Result<Option<TokenRecord>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(TOKENS)?;
        let found = table
            .get(hash)?
            .map(|v| serde_json::from_slice(v.value()))
            .transpose()?;
        Ok(found)
    }

    /// Every token with its hash, oldest first.
    pub fn tokens(&self) -> Result<Vec<(String, TokenRecord)>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(TOKENS)?;
        let mut all: Vec<(String, TokenRecord)> = Vec::new();
        for entry in table.iter()? {
            let (k, v) = entry?;
            all.push((k.value().to_owned(), serde_json::from_slice(v.value())?));
        }
        all.sort_by_key(|(_, t)| t.created_at);
        Ok(all)
    }

    /// Whether any token was ever created; until then a loopback server runs in local mode.
    pub fn has_tokens(&self) -> Result<bool> {
        let txn = self.db.begin_read()?;
        Ok(!txn.open_table(TOKENS)?.is_empty()?)
    }

    /// Up to `limit` audit entries after sequence number `after`, as (seq, JSON), including
    /// every entry queued before this call.
    pub async fn audit(&self, after: Option<u64>, limit: usize) -> Result<Vec<(u64, serde_json::Value)>> {
        self.flush().await?;
        let txn = self.db.begin_read()?;
        let table = txn.open_table(AUDIT)?;
        let start = after.map_or(0, |a| a + 1);
        let mut entries = Vec::new();
        for entry in table.range(start..)?.take(limit) {
            let (k, v) = entry?;
            entries.push((k.value(), serde_json::from_slice(v.value())?));
        }
        Ok(entries)
    }

    /// The earliest timer, if any.
    pub fn next_timer(&self) -> Result<Option<Timer>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(TIMERS)?;
        let first = table.first()?;
        first.map(|(k, v)| timer_from(k.value(), v.value())).transpose()
    }

    /// Timers due at or before `now`, earliest first.
    pub fn due_timers(&self, now: OffsetDateTime) -> Result<Vec<Timer>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(TIMERS)?;
        let until = unix_ms(now);
        let mut due = Vec::new();
        for entry in table.range((0u64, "", "")..=(until, "\u{10ffff}", "\u{10ffff}"))? {
            let (k, v) = entry?;
            due.push(timer_from(k.value(), v.value())?);
        }
        Ok(due)
    }

    /// Up to `limit` log lines of `run` after sequence number `after`.
    pub fn logs(&self, run: RunId, after: Option<u64>, limit: usize) -> Result<Vec<LogLine>> {
        let txn = self.db.begin_read()?;
        let key = run.to_string();
        let start = after.map_or(0, |a| a + 1);
        // A run's lines are in one table or the other by the time they were written; their
        // sequence numbers never overlap.
        let mut lines: Vec<LogLine> = Vec::new();
        for table in [txn.open_table(LOGS)?, txn.open_table(LIVE_LOGS)?] {
            for entry in table
                .range((key.as_str(), start)..=(key.as_str(), u64::MAX))?
                .take(limit)
            {
                lines.push(serde_json::from_slice(entry?.1.value())?);
            }
        }
        lines.sort_by_key(|l| l.seq);
        lines.truncate(limit);
        Ok(lines)
    }

    pub fn plugin(&self, name: &str, version: &str) -> Result<Option<PluginMeta>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(PLUGINS)?;
        let key = format!("{name}@{version}");
        table
            .get(key.as_str())?
            .map(|v| Ok(serde_json::from_slice(v.value())?))
            .transpose()
    }

    /// Every version of every uploaded plugin, by name then upload order.
    pub fn plugins(&self) -> Result<Vec<PluginMeta>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(PLUGINS)?;
        let mut all: Vec<PluginMeta> = Vec::new();
        for entry in table.iter()? {
            let (_, v) = entry?;
            all.push(serde_json::from_slice(v.value())?);
        }
        all.sort_by(|a, b| a.name.cmp(&b.name).then(a.created_at.cmp(&b.created_at)));
        Ok(all)
    }

    pub fn plugin_bytes(&self, digest: &Digest) -> Result<Option<Vec<u8>>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(PLUGIN_BYTES)?;
        Ok(table.get(digest.as_str())?.map(|v| v.value().to_vec()))
    }

    /// Whether any compiled artifact of the component with `digest` is stored, for any
    /// engine configuration.
    pub fn has_artifact(&self, digest: &Digest) -> Result<bool> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(COMPILED)?;
        let prefix = format!("{digest}/");
        let found = table.range(prefix.as_str()..)?.next().transpose()?;
        Ok(found.is_some_and(|(k, _)| k.value().starts_with(&prefix)))
    }

    pub fn compiled(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(COMPILED)?;
        Ok(table.get(key)?.map(|v| v.value().to_vec()))
    }

    /// The digest of workflow `id` at `version`, or at its active version.
    pub fn workflow_version(&self, id: &str, version: Option<u64>) -> Result<Option<(u64, Digest)>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(WORKFLOWS)?;
        let version = match version {
            Some(v) => v,
            None => match txn.open_table(ACTIVE_VERSIONS)?.get(id)? {
                Some(active) => active.value(),
                None => return Ok(None),
            },
        };
        let found = table.get((id, version))?.map(|d| d.value().to_owned());
        found
            .map(|d| Ok((version, d.parse().map_err(|e: String| anyhow!(e))?)))
            .transpose()
    }

    /// The highest version of workflow `id`, draft or not.
    pub fn latest_version(&self, id: &str) -> Result<Option<u64>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(WORKFLOWS)?;
        let last = table.range((id, 0)..=(id, u64::MAX))?.next_back().transpose()?;
        Ok(last.map(|(k, _)| k.value().1))
    }

    /// The versions of workflow `id` that were published.
    pub fn published_versions(&self, id: &str) -> Result<Vec<u64>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(PUBLISHED)?;
        let mut versions = Vec::new();
        for entry in table.range((id, 0)..=(id, u64::MAX))? {
            versions.push(entry?.0.value().1);
        }
        Ok(versions)
    }

    /// A workflow definition by digest, as the JSON it was stored as.
    pub fn definition(&self, digest: &Digest) -> Result<Option<Vec<u8>>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(DEFINITIONS)?;
        Ok(table.get(digest.as_str())?.map(|v| v.value().to_vec()))
    }
}

fn write_loop(
    db: &Database,
    batches: mpsc::Receiver<Batch>,
    outbox_ready: &tokio::sync::Notify,
    stats: &WriterStats,
) {
    while let Ok(first) = batches.recv() {
        let mut group = vec![first];
        let mut count = group[0].writes.len();
        while count < MAX_BATCH {
            let more = match batches.try_recv() {
                Ok(more) => more,
                // Writes no one waits for ride along with the next awaited batch rather than
                // cost a sync of their own, unless none comes soon.
                Err(_) if !group.iter().any(|b| b.awaited) => match batches.recv_timeout(LAZY_WAIT) {
                    Ok(more) => more,
                    Err(_) => break,
                },
                Err(_) => break,
            };
            count += more.writes.len();
            group.push(more);
        }
        let result = apply(db, group.iter().flat_map(|b| &b.writes)).map_err(|e| format!("{e:#}"));
        match &result {
            Ok(()) => {
                let writes = group.iter().flat_map(|b| &b.writes);
                stats.transactions.fetch_add(1, Ordering::Relaxed);
                stats.writes.fetch_add(count as u64, Ordering::Relaxed);
                stats.bytes.fetch_add(
                    writes.map(Write::document_len).sum::<usize>() as u64,
                    Ordering::Relaxed,
                );
            }
            Err(e) => tracing::error!("store commit failed: {e}"),
        }
        let filled = |w: &Write| matches!(w, Write::Action(a) if a.fills_outbox());
        if result.is_ok() && group.iter().flat_map(|b| &b.writes).any(filled) {
            outbox_ready.notify_one();
        }
        for batch in group {
            let _ = batch.done.send(result.clone());
        }
    }
}

fn apply<'a>(db: &Database, writes: impl Iterator<Item = &'a Write>) -> Result<()> {
    let txn = db.begin_write()?;
    {
        let mut runs = txn.open_table(RUNS)?;
        let mut live = txn.open_table(LIVE_RUNS)?;
        let mut live_logs = txn.open_table(LIVE_LOGS)?;
        let mut waiting = txn.open_table(WAITING)?;
        let mut idempotency = txn.open_table(IDEMPOTENCY)?;
        let mut tokens = txn.open_table(TOKENS)?;
        let mut audit = txn.open_table(AUDIT)?;
        let mut timers = txn.open_table(TIMERS)?;
        let mut logs = txn.open_table(LOGS)?;
        let mut plugins = txn.open_table(PLUGINS)?;
        let mut plugin_bytes = txn.open_table(PLUGIN_BYTES)?;
        let mut compiled = txn.open_table(COMPILED)?;
        let mut workflows = txn.open_table(WORKFLOWS)?;
        let mut definitions = txn.open_table(DEFINITIONS)?;
        let mut published = txn.open_table(PUBLISHED)?;
        let mut active_versions = txn.open_table(ACTIVE_VERSIONS)?;
        for write in writes {
            match write {
                Write::Run { id, json, state } => {
                    // Tables are touched only when something changes in them: a rewritten
                    // page is a page more to sync.
                    let key = id.to_string();
                    let key = key.as_str();
                    if matches!(state, RunState::Pending | RunState::Running) {
                        live.insert(key, json.as_slice())?;
                        if runs.get(key)?.is_some() {
                            runs.remove(key)?;
                        }
                    } else {
                        runs.insert(key, json.as_slice())?;
                        if live.get(key)?.is_some() {
                            live.remove(key)?;
                        }
                        let lines = run_lines(key);
                        let moved: Vec<(u64, Vec<u8>)> = live_logs
                            .range(lines.clone())?
                            .map(|e| e.map(|(k, v)| (k.value().1, v.value().to_vec())))
                            .collect::<Result<_, _>>()?;
                        if !moved.is_empty() {
                            live_logs.retain_in(lines, |_, _| false)?;
                            for (seq, line) in moved {
                                logs.insert((key, seq), line.as_slice())?;
                            }
                        }
                    }
                    set_member(&mut waiting, key, *state == RunState::Waiting)?;
                }
                Write::DeleteRun(id) => {
                    let key = id.to_string();
                    runs.remove(key.as_str())?;
                    live.remove(key.as_str())?;
                    waiting.remove(key.as_str())?;
                    logs.retain_in(run_lines(&key), |_, _| false)?;
                    live_logs.retain_in(run_lines(&key), |_, _| false)?;
                }
                Write::Idempotency { key, run, request } => {
                    idempotency.insert(key.as_str(), format!("{run} {request}").as_str())?;
                }
                Write::DeleteIdempotency(key) => {
                    idempotency.remove(key.as_str())?;
                }
                Write::Publish { id, version } => {
                    published.insert((id.as_str(), *version), ())?;
                    active_versions.insert(id.as_str(), *version)?;
                }
                Write::DeleteWorkflow(id) => {
                    workflows.retain_in((id.as_str(), 0)..=(id.as_str(), u64::MAX), |_, _| false)?;
                    published.retain_in((id.as_str(), 0)..=(id.as_str(), u64::MAX), |_, _| false)?;
                    active_versions.remove(id.as_str())?;
                }
                Write::Token { hash, record } => {
                    tokens.insert(hash.as_str(), serde_json::to_vec(record)?.as_slice())?;
                }
                Write::Audit(json) => {
                    let next = audit.last()?.map_or(0, |(k, _)| k.value() + 1);
                    audit.insert(next, json.as_slice())?;
                }
                Write::Action(write) => actions::apply(&txn, write)?,
                Write::DeletePlugin { name, version } => {
                    let key = format!("{name}@{version}");
                    let removed = plugins.remove(key.as_str())?.map(|v| v.value().to_vec());
                    if let Some(meta) = removed {
                        let meta: PluginMeta = serde_json::from_slice(&meta)?;
                        let mut shared = false;
                        for entry in plugins.iter()? {
                            let (_, v) = entry?;
                            let other: PluginMeta = serde_json::from_slice(v.value())?;
                            shared |= other.digest == meta.digest;
                        }
                        if !shared {
                            plugin_bytes.remove(meta.digest.as_str())?;
                        }
                    }
                }
                Write::Timer(t) => {
                    let (run, kind) = (t.run.to_string(), kind_byte(t.kind));
                    timers.insert((unix_ms(t.due), run.as_str(), t.step.as_str()), kind)?;
                }
                Write::DeleteTimer(t) => {
                    let run = t.run.to_string();
                    timers.remove((unix_ms(t.due), run.as_str(), t.step.as_str()))?;
                }
                Write::Log { run, seq, json } => {
                    // A live (or not yet stored) run's lines wait in `live_logs` until it
                    // moves to the history (see `LIVE_LOGS`).
                    let run = run.to_string();
                    let key = (run.as_str(), *seq);
                    if live.get(run.as_str())?.is_none() && runs.get(run.as_str())?.is_some() {
                        logs.insert(key, json.as_slice())?;
                    } else {
                        live_logs.insert(key, json.as_slice())?;
                    }
                }
                Write::Plugin { meta, bytes } => {
                    let key = format!("{}@{}", meta.name, meta.version);
                    plugins.insert(key.as_str(), serde_json::to_vec(meta)?.as_slice())?;
                    plugin_bytes.insert(meta.digest.as_str(), &**bytes)?;
                }
                Write::Compiled { key, bytes } => {
                    compiled.insert(key.as_str(), bytes.as_slice())?;
                }
                Write::Workflow {
                    id,
                    version,
                    digest,
                    json,
                } => {
                    workflows.insert((id.as_str(), *version), digest.as_str())?;
                    definitions.insert(digest.as_str(), json.as_slice())?;
                }
            }
        }
    }
    txn.commit()?;
    Ok(())
}

fn stopped() -> anyhow::Error {
    anyhow!("the store's writer has stopped")
}

/// The key range of every log line of the run with key `run`.
fn run_lines(run: &str) -> std::ops::RangeInclusive<(&str, u64)> {
    (run, 0)..=(run, u64::MAX)
}

fn parse_run(bytes: &[u8]) -> Result<RunRecord> {
    serde_json::from_slice(bytes).context("a stored run is unreadable")
}

/// Makes `key` a member of `index` or not, writing only if that changes anything.
fn set_member(index: &mut redb::Table<&str, ()>, key: &str, member: bool) -> Result<()> {
    if index.get(key)?.is_some() != member {
        if member {
            index.insert(key, ())?;
        } else {
            index.remove(key)?;
        }
    }
    Ok(())
}

fn create_tables(db: &Database) -> Result<()> {
    let txn = db.begin_write()?;
    txn.open_table(RUNS)?;
    txn.open_table(LIVE_RUNS)?;
    txn.open_table(LIVE_LOGS)?;
    migrate_active_index(&txn)?;
    txn.open_table(WAITING)?;
    txn.open_table(IDEMPOTENCY)?;
    txn.open_table(TOKENS)?;
    txn.open_table(AUDIT)?;
    txn.open_table(TIMERS)?;
    txn.open_table(LOGS)?;
    txn.open_table(PLUGINS)?;
    txn.open_table(PLUGIN_BYTES)?;
    txn.open_table(COMPILED)?;
    txn.open_table(WORKFLOWS)?;
    txn.open_table(DEFINITIONS)?;
    txn.open_table(PUBLISHED)?;
    txn.open_table(ACTIVE_VERSIONS)?;
    actions::create_tables(&txn)?;
    txn.commit()?;
    Ok(())
}

/// Moves the records of pending and running runs from a database written before
/// `LIVE_RUNS` existed into it, then drops the old index. Does nothing on newer databases.
fn migrate_active_index(txn: &redb::WriteTransaction) -> Result<()> {
    let ids: Vec<String> = {
        let index = txn.open_table(LEGACY_ACTIVE)?;
        index
            .iter()?
            .map(|e| e.map(|(k, _)| k.value().to_owned()))
            .collect::<Result<_, _>>()?
    };
    let mut runs = txn.open_table(RUNS)?;
    let mut live = txn.open_table(LIVE_RUNS)?;
    for id in ids {
        if let Some(record) = runs.remove(id.as_str())? {
            live.insert(id.as_str(), record.value())?;
        }
    }
    drop((runs, live));
    txn.delete_table(LEGACY_ACTIVE)?;
    Ok(())
}

fn unix_ms(at: OffsetDateTime) -> u64 {
    u64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

fn kind_byte(kind: TimerKind) -> u8 {
    match kind {
        TimerKind::Expire => 0,
        TimerKind::Retry => 1,
    }
}

fn timer_from((due, run, step): (u64, &str, &str), kind: u8) -> Result<Timer> {
    Ok(Timer {
        due: OffsetDateTime::from_unix_timestamp_nanos(i128::from(due) * 1_000_000)?,
        run: run.parse().map_err(|e: String| anyhow!(e))?,
        step: step.to_owned(),
        kind: if kind == 0 {
            TimerKind::Expire
        } else {
            TimerKind::Retry
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::WorkflowRef;

    fn record(state: RunState) -> RunRecord {
        RunRecord {
            id: RunId::new(),
            workflow: WorkflowRef {
                id: "wf".into(),
                version: 1,
                digest: Digest::of(b"wf"),
            },
            state,
            inputs: serde_json::json!({}),
            started_by: "test".into(),
            created_at: crate::run::now(),
            ended_at: None,
            steps: Vec::new(),
            outputs: None,
            error: None,
            restarted_from: None,
            idempotency_key: None,
            next_log_seq: 0,
        }
    }

    fn line(seq: u64) -> LogLine {
        LogLine {
            seq,
            at: crate::run::now(),
            level: "info".into(),
            step: None,
            message: format!("line {seq}"),
        }
    }

    /// Commits `run` as it is now with one log line `seq`, as a transition does.
    async fn save(store: &Store, run: &RunRecord, seq: u64) {
        let writes = vec![Write::log(run.id, &line(seq)).unwrap(), Write::run(run).unwrap()];
        store.commit(writes).await.unwrap();
    }

    fn seqs(store: &Store, run: RunId, after: Option<u64>) -> Vec<u64> {
        store
            .logs(run, after, 10)
            .unwrap()
            .iter()
            .map(|l| l.seq)
            .collect()
    }

    fn ids(runs: Vec<RunRecord>) -> Vec<RunId> {
        runs.into_iter().map(|r| r.id).collect()
    }

    #[tokio::test]
    async fn runs_move_between_live_and_history_with_their_logs() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        let finished = record(RunState::Completed);
        let mut run = record(RunState::Running);
        store.commit(vec![Write::run(&finished).unwrap()]).await.unwrap();
        save(&store, &run, 0).await;

        assert_eq!(store.active_runs().unwrap(), vec![run.id]);
        assert_eq!(
            ids(store.runs().unwrap()),
            vec![run.id, finished.id],
            "newest first"
        );
        let live = store.runs_before(RunScope::Live, None, |_| true, 10).unwrap();
        assert_eq!(ids(live), vec![run.id]);
        assert_eq!(seqs(&store, run.id, None), vec![0]);

        run.state = RunState::Waiting;
        save(&store, &run, 1).await;
        assert!(store.active_runs().unwrap().is_empty());
        assert_eq!(store.waiting_runs().unwrap(), vec![run.id]);
        let waiting = store.runs_before(RunScope::Waiting, None, |_| true, 10).unwrap();
        assert_eq!(ids(waiting), vec![run.id]);
        assert_eq!(
            ids(store.runs().unwrap()),
            vec![run.id, finished.id],
            "listed once"
        );
        assert_eq!(seqs(&store, run.id, None), vec![0, 1]);

        // Answered: live again, with a new line beside the ones already in the history.
        run.state = RunState::Running;
        save(&store, &run, 2).await;
        assert_eq!(seqs(&store, run.id, Some(0)), vec![1, 2]);
        assert_eq!(store.run(run.id).unwrap().unwrap().state, RunState::Running);

        store.commit(vec![Write::DeleteRun(run.id)]).await.unwrap();
        assert!(store.run(run.id).unwrap().is_none());
        assert!(store.logs(run.id, None, 10).unwrap().is_empty());
        assert_eq!(ids(store.runs().unwrap()), vec![finished.id]);
    }

    #[test]
    fn older_databases_keep_their_pending_runs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.redb");
        let run = record(RunState::Running);
        {
            // The layout before live_runs: every record in `runs`, an index of active ids.
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            let key = run.id.to_string();
            let json = serde_json::to_vec(&run).unwrap();
            txn.open_table(RUNS)
                .unwrap()
                .insert(key.as_str(), json.as_slice())
                .unwrap();
            txn.open_table(LEGACY_ACTIVE)
                .unwrap()
                .insert(key.as_str(), ())
                .unwrap();
            txn.commit().unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(store.active_runs().unwrap(), vec![run.id]);
        assert_eq!(store.run(run.id).unwrap().unwrap().state, RunState::Running);
        assert_eq!(ids(store.runs().unwrap()), vec![run.id]);
    }
}
