//! The embedded backend: one redb file, one runner.
//!
//! All writes go through one writer thread that batches whatever is queued into a single
//! durable transaction (group commit): a busy engine pays one fsync per batch, not per step,
//! and a caller's `commit` returns only once its writes are on disk. Each caller's writes are
//! checked (run revisions, free keys) and applied in turn inside that transaction; a caller
//! whose condition fails gets its error and none of its writes, the others commit. Records no
//! caller waits for (the audit log) are `enqueue`d and ride along with the next commit. Reads
//! open their own snapshot and never wait for the writer.
//!
//! Pending and running runs live in small tables of their own (`tables.rs`) and move to the
//! history when they wait or finish, so the pages a step transition rewrites, and what a
//! restart reads, do not grow with the history.
//!
//! redb opens a file in one process at a time, so this backend has exactly one runner: its
//! claims only take over runs the previous process left, and its notices reach only this
//! process.

mod actions;
mod archive;
mod tables;
mod transfer;

use super::api::*;
use crate::names::{Digest, RunId};
use crate::run::RunState;
use anyhow::{anyhow, Context};
use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::Duration;
use tables::*;
use time::OffsetDateTime;
use tokio::sync::{broadcast, oneshot};

/// redb's page cache (reads and writes); a hundred thousand waiting runs fit in far less.
const CACHE_BYTES: usize = 64 << 20;

/// How long writes that no one waits for (see [`Store::enqueue`]) may wait for company.
const LAZY_WAIT: Duration = Duration::from_millis(5);

/// Most writes merged into one transaction; bounds latency of the first writer in a batch.
const MAX_BATCH: usize = 4096;

/// How many notices a slow subscriber may fall behind before it misses some.
const NOTICES: usize = 4096;

/// Why one caller's writes were refused; sent back from the writer thread.
#[derive(Clone, Debug)]
enum Refusal {
    Stale(String),
    Conflict(String),
    Failed(String),
}

impl From<Refusal> for StoreError {
    fn from(refusal: Refusal) -> StoreError {
        match refusal {
            Refusal::Stale(m) => StoreError::Stale(m),
            Refusal::Conflict(m) => StoreError::Conflict(m),
            Refusal::Failed(m) => StoreError::Unavailable(m),
        }
    }
}

struct Batch {
    writes: Vec<Write>,
    done: oneshot::Sender<Result<(), Refusal>>,
    /// Someone waits for this batch to be durable (see [`Store::enqueue`]).
    awaited: bool,
}

/// The redb store; share it as an `Arc<dyn Store>`.
pub struct RedbStore {
    db: Arc<Database>,
    writer: Writer,
    path: PathBuf,
    runner: String,
    started_at: OffsetDateTime,
    notices: broadcast::Sender<Notice>,
    stats: Arc<WriterStats>,
}

/// The writer thread and its queue. Dropped with the store: the queue closes, the thread
/// commits what is left and is joined, so the database is closed cleanly (and the next open
/// needs no repair) before the process exits.
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

impl RedbStore {
    /// Opens (or creates) the store at `path` for `runner`.
    pub fn open(path: &Path, runner: String) -> anyhow::Result<RedbStore> {
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
        let (notices, _) = broadcast::channel(NOTICES);
        let stats = Arc::new(WriterStats::default());
        let thread = {
            let (db, notices, stats, runner) = (db.clone(), notices.clone(), stats.clone(), runner.clone());
            std::thread::Builder::new()
                .name("weft-store-writer".into())
                .spawn(move || write_loop(&db, batches, &notices, &stats, &runner))?
        };
        Ok(RedbStore {
            db,
            writer: Writer {
                queue: Some(queue),
                thread: Some(thread),
            },
            path: path.to_owned(),
            runner,
            started_at: crate::run::now(),
            notices,
            stats,
        })
    }

    fn send(&self, writes: Vec<Write>, awaited: bool) -> StoreResult<oneshot::Receiver<Result<(), Refusal>>> {
        let (done, wait) = oneshot::channel();
        let queue = self.writer.queue.as_ref().ok_or_else(stopped)?;
        queue
            .send(Batch {
                writes,
                done,
                awaited,
            })
            .map_err(|_| stopped())?;
        Ok(wait)
    }

    async fn durable(&self, wait: oneshot::Receiver<Result<(), Refusal>>) -> StoreResult<()> {
        match wait.await {
            Err(_) => Err(stopped()),
            Ok(Ok(())) => Ok(()),
            Ok(Err(Refusal::Failed(e))) => Err(StoreError::Unavailable(format!(
                "cannot write to {}: {e}",
                self.path.display()
            ))),
            Ok(Err(refusal)) => Err(refusal.into()),
        }
    }

    fn read(&self) -> StoreResult<redb::ReadTransaction> {
        self.db.begin_read().map_err(other)
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable("the store's writer has stopped".into())
}

fn other(e: impl Into<anyhow::Error>) -> StoreError {
    StoreError::Other(e.into())
}

/// A run's stored value: a format byte, its revision, its owner, then the document (format
/// 2: compressed, for finished runs). Records written before revisions existed are the bare
/// JSON document (revision 0, no owner).
fn encode_run(revision: u64, owner: Option<&str>, doc: &[u8], compress: bool) -> Vec<u8> {
    let owner = owner.unwrap_or("").as_bytes();
    let packed;
    let (format, doc) = if compress {
        packed = archive::pack(doc);
        (RUN_FORMAT_PACKED, packed.as_slice())
    } else {
        (RUN_FORMAT, doc)
    };
    let mut value = Vec::with_capacity(1 + 8 + 2 + owner.len() + doc.len());
    value.push(format);
    value.extend_from_slice(&revision.to_le_bytes());
    value.extend_from_slice(&(owner.len() as u16).to_le_bytes());
    value.extend_from_slice(owner);
    value.extend_from_slice(doc);
    value
}

const RUN_FORMAT: u8 = 1;
const RUN_FORMAT_PACKED: u8 = 2;

fn decode_run(id: RunId, value: &[u8]) -> StoreResult<StoredRun> {
    let format = value.first().copied();
    if format != Some(RUN_FORMAT) && format != Some(RUN_FORMAT_PACKED) {
        return Ok(StoredRun {
            id,
            doc: value.to_vec(),
            revision: 0,
            owner: None,
        });
    }
    let corrupt = || StoreError::Other(anyhow!("the stored run {id} is damaged"));
    let revision = u64::from_le_bytes(
        value
            .get(1..9)
            .ok_or_else(corrupt)?
            .try_into()
            .map_err(|_| corrupt())?,
    );
    let owner_len = u16::from_le_bytes(
        value
            .get(9..11)
            .ok_or_else(corrupt)?
            .try_into()
            .map_err(|_| corrupt())?,
    );
    let owner_end = 11 + owner_len as usize;
    let owner = std::str::from_utf8(value.get(11..owner_end).ok_or_else(corrupt)?).map_err(|_| corrupt())?;
    let doc = &value[owner_end..];
    Ok(StoredRun {
        id,
        doc: if format == Some(RUN_FORMAT_PACKED) {
            archive::unpack(doc).map_err(|_| corrupt())?
        } else {
            doc.to_vec()
        },
        revision,
        owner: (!owner.is_empty()).then(|| owner.to_owned()),
    })
}

/// The revision stored for `key` in `table`, if the run is there.
fn revision_in(table: &redb::Table<&str, &[u8]>, key: &str) -> anyhow::Result<Option<u64>> {
    let Some(value) = table.get(key)? else {
        return Ok(None);
    };
    let value = value.value();
    if value.first() != Some(&RUN_FORMAT) && value.first() != Some(&RUN_FORMAT_PACKED) {
        return Ok(Some(0));
    }
    Ok(Some(u64::from_le_bytes(value[1..9].try_into()?)))
}

fn parse_id(text: &str) -> StoreResult<RunId> {
    text.parse().map_err(|e: String| other(anyhow!(e)))
}

fn parse_digest(text: &str) -> StoreResult<Digest> {
    text.parse().map_err(|e: String| other(anyhow!(e)))
}

#[async_trait]
impl RunStore for RedbStore {
    async fn run(&self, id: RunId) -> StoreResult<Option<StoredRun>> {
        let txn = self.read()?;
        let key = id.to_string();
        let live = txn.open_table(LIVE_RUNS).map_err(other)?;
        if let Some(v) = live.get(key.as_str()).map_err(other)? {
            return decode_run(id, v.value()).map(Some);
        }
        let history = txn.open_table(RUNS).map_err(other)?;
        let found = history.get(key.as_str()).map_err(other)?;
        found.map(|v| decode_run(id, v.value())).transpose()
    }

    async fn runs(
        &self,
        scope: RunScope,
        before: Option<RunId>,
        limit: usize,
        keep: &mut (dyn for<'r> FnMut(&'r StoredRun) -> bool + Send),
    ) -> StoreResult<Vec<StoredRun>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let txn = self.read()?;
        let history = txn.open_table(RUNS).map_err(other)?;
        let live = txn.open_table(LIVE_RUNS).map_err(other)?;
        let bound = before.map(|id| id.to_string());
        let below = |table: &redb::ReadOnlyTable<&'static str, &'static [u8]>| match &bound {
            Some(b) => table.range::<&str>(..b.as_str()),
            None => table.range::<&str>(..),
        };
        let mut runs = Vec::new();
        let mut offer = |key: &str, bytes: &[u8]| -> StoreResult<bool> {
            let run = decode_run(parse_id(key)?, bytes)?;
            if keep(&run) {
                runs.push(run);
            }
            Ok(runs.len() < limit)
        };
        match scope {
            RunScope::Live => {
                for entry in below(&live).map_err(other)?.rev() {
                    let (k, v) = entry.map_err(other)?;
                    if !offer(k.value(), v.value())? {
                        break;
                    }
                }
            }
            RunScope::Waiting => {
                let waiting = txn.open_table(WAITING).map_err(other)?;
                let ids = match &bound {
                    Some(b) => waiting.range::<&str>(..b.as_str()),
                    None => waiting.range::<&str>(..),
                }
                .map_err(other)?;
                for entry in ids.rev() {
                    let id = entry.map_err(other)?.0;
                    if let Some(v) = history.get(id.value()).map_err(other)? {
                        if !offer(id.value(), v.value())? {
                            break;
                        }
                    }
                }
            }
            RunScope::All => {
                // Both tables in one descending order: take the larger key each time.
                let mut old = below(&history).map_err(other)?.rev().peekable();
                let mut new = below(&live).map_err(other)?.rev().peekable();
                loop {
                    let from_old = match (old.peek(), new.peek()) {
                        (Some(Ok((a, _))), Some(Ok((b, _)))) => a.value() >= b.value(),
                        (Some(_), _) => true,
                        (None, Some(_)) => false,
                        (None, None) => break,
                    };
                    let next = if from_old { old.next() } else { new.next() };
                    let Some(entry) = next else { break };
                    let (k, v) = entry.map_err(other)?;
                    if !offer(k.value(), v.value())? {
                        break;
                    }
                }
            }
        }
        Ok(runs)
    }

    async fn waiting_runs(&self) -> StoreResult<Vec<RunId>> {
        let txn = self.read()?;
        let table = txn.open_table(WAITING).map_err(other)?;
        let mut ids = Vec::new();
        for entry in table.iter().map_err(other)? {
            ids.push(parse_id(entry.map_err(other)?.0.value())?);
        }
        Ok(ids)
    }

    async fn runs_waiting_for(
        &self,
        assignees: &[String],
        before: Option<RunId>,
        limit: usize,
    ) -> StoreResult<Vec<StoredRun>> {
        let txn = self.read()?;
        let index = txn.open_table(WAITING_FOR).map_err(other)?;
        let history = txn.open_table(RUNS).map_err(other)?;
        // Run ids are UUIDs (hex digits and dashes): "~" sorts after every one of them.
        let bound = before.map_or_else(|| "~".to_owned(), |id| id.to_string());
        let mut newest = std::collections::BTreeSet::new();
        for assignee in assignees {
            let range = index
                .range((assignee.as_str(), "")..(assignee.as_str(), bound.as_str()))
                .map_err(other)?;
            for entry in range.rev().take(limit) {
                newest.insert(entry.map_err(other)?.0.value().1.to_owned());
            }
        }
        let mut runs = Vec::new();
        for key in newest.iter().rev().take(limit) {
            if let Some(value) = history.get(key.as_str()).map_err(other)? {
                runs.push(decode_run(parse_id(key)?, value.value())?);
            }
        }
        Ok(runs)
    }

    async fn waiting_count(&self) -> StoreResult<u64> {
        let txn = self.read()?;
        txn.open_table(WAITING).map_err(other)?.len().map_err(other)
    }

    async fn logs(&self, run: RunId, after: Option<u64>, limit: usize) -> StoreResult<Vec<Vec<u8>>> {
        let txn = self.read()?;
        let key = run.to_string();
        let start = after.map_or(0, |a| a.saturating_add(1));
        // A run's lines are in one table or another by the time they were written (archived
        // once it finished); their sequence numbers never overlap.
        let mut lines: Vec<(u64, Vec<u8>)> = Vec::new();
        if let Some(packed) = txn
            .open_table(ARCHIVED_LOGS)
            .map_err(other)?
            .get(key.as_str())
            .map_err(other)?
        {
            lines.extend(
                archive::unpack_lines(packed.value())
                    .map_err(other)?
                    .into_iter()
                    .filter(|(seq, _)| *seq >= start),
            );
        }
        for table in [
            txn.open_table(LOGS).map_err(other)?,
            txn.open_table(LIVE_LOGS).map_err(other)?,
        ] {
            for entry in table
                .range((key.as_str(), start)..=(key.as_str(), u64::MAX))
                .map_err(other)?
                .take(limit)
            {
                let (k, v) = entry.map_err(other)?;
                lines.push((k.value().1, v.value().to_vec()));
            }
        }
        lines.sort_by_key(|(seq, _)| *seq);
        lines.truncate(limit);
        Ok(lines.into_iter().map(|(_, line)| line).collect())
    }

    async fn items(
        &self,
        run: RunId,
        step: &str,
        from: u64,
        limit: usize,
    ) -> StoreResult<Vec<(u64, Vec<u8>)>> {
        let txn = self.read()?;
        let key = run.to_string();
        let table = txn.open_table(ITEMS).map_err(other)?;
        let mut found = Vec::new();
        for entry in table
            .range((key.as_str(), step, from)..=(key.as_str(), step, u64::MAX))
            .map_err(other)?
            .take(limit)
        {
            let (k, v) = entry.map_err(other)?;
            found.push((k.value().2, v.value().to_vec()));
        }
        Ok(found)
    }

    async fn runs_with_inputs(
        &self,
        inputs: &[(String, String)],
        before: Option<RunId>,
        limit: usize,
    ) -> StoreResult<Vec<StoredRun>> {
        let Some(((name, value), rest)) = inputs.split_first() else {
            return Ok(Vec::new());
        };
        let txn = self.read()?;
        let index = txn.open_table(INPUTS).map_err(other)?;
        let live = txn.open_table(LIVE_RUNS).map_err(other)?;
        let history = txn.open_table(RUNS).map_err(other)?;
        let upper = before.map_or_else(|| "\u{10ffff}".to_owned(), |b| b.to_string());
        let mut found = Vec::new();
        // Run ids are UUIDv7: newest last in the index, so read it backwards.
        for entry in index
            .range((name.as_str(), value.as_str(), "")..(name.as_str(), value.as_str(), upper.as_str()))
            .map_err(other)?
            .rev()
        {
            let (k, _) = entry.map_err(other)?;
            let run = k.value().2;
            let mut matches = true;
            for (n, v) in rest {
                matches &= index.get((n.as_str(), v.as_str(), run)).map_err(other)?.is_some();
            }
            if !matches {
                continue;
            }
            let value = match live.get(run).map_err(other)? {
                Some(v) => Some(v.value().to_vec()),
                None => history.get(run).map_err(other)?.map(|v| v.value().to_vec()),
            };
            if let Some(value) = value {
                found.push(decode_run(parse_id(run)?, &value)?);
                if found.len() >= limit {
                    break;
                }
            }
        }
        Ok(found)
    }

    async fn idempotent_run(&self, key: &str) -> StoreResult<Option<(RunId, Option<Digest>)>> {
        let txn = self.read()?;
        let table = txn.open_table(IDEMPOTENCY).map_err(other)?;
        let found = table.get(key).map_err(other)?.map(|v| v.value().to_owned());
        found
            .map(|value| match value.split_once(' ') {
                Some((run, request)) => Ok((parse_id(run)?, Some(parse_digest(request)?))),
                None => Ok((parse_id(&value)?, None)),
            })
            .transpose()
    }

    async fn next_timer_due(&self) -> StoreResult<Option<OffsetDateTime>> {
        let txn = self.read()?;
        let table = txn.open_table(TIMERS).map_err(other)?;
        let first = table.first().map_err(other)?;
        first
            .map(|(k, v)| timer_from(k.value(), v.value()).map(|t| t.due))
            .transpose()
    }

    /// One runner per file: every due timer is this runner's.
    async fn claim_due_timers(
        &self,
        _runner: &str,
        now: OffsetDateTime,
        _lease: Duration,
        limit: usize,
    ) -> StoreResult<Vec<Timer>> {
        let txn = self.read()?;
        let table = txn.open_table(TIMERS).map_err(other)?;
        let until = unix_ms(now);
        let mut due = Vec::new();
        for entry in table
            .range((0u64, "", "")..=(until, "\u{10ffff}", "\u{10ffff}"))
            .map_err(other)?
            .take(limit)
        {
            let (k, v) = entry.map_err(other)?;
            due.push(timer_from(k.value(), v.value())?);
        }
        Ok(due)
    }
}

#[async_trait]
impl CatalogStore for RedbStore {
    async fn plugin(&self, name: &str, version: &str) -> StoreResult<Option<StoredPlugin>> {
        let txn = self.read()?;
        let table = txn.open_table(PLUGINS).map_err(other)?;
        let key = format!("{name}@{version}");
        let found = table.get(key.as_str()).map_err(other)?;
        found.map(|v| stored_plugin(v.value())).transpose()
    }

    async fn plugins(&self) -> StoreResult<Vec<StoredPlugin>> {
        let txn = self.read()?;
        let table = txn.open_table(PLUGINS).map_err(other)?;
        let mut all = Vec::new();
        for entry in table.iter().map_err(other)? {
            all.push(stored_plugin(entry.map_err(other)?.1.value())?);
        }
        all.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.version.cmp(&b.version)));
        Ok(all)
    }

    async fn plugin_bytes(&self, digest: &Digest) -> StoreResult<Option<Vec<u8>>> {
        let txn = self.read()?;
        let table = txn.open_table(PLUGIN_BYTES).map_err(other)?;
        let found = table.get(digest.as_str()).map_err(other)?;
        Ok(found.map(|v| v.value().to_vec()))
    }

    async fn artifact(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        let txn = self.read()?;
        let table = txn.open_table(COMPILED).map_err(other)?;
        let found = table.get(key).map_err(other)?;
        Ok(found.map(|v| v.value().to_vec()))
    }

    async fn has_artifact(&self, digest: &Digest) -> StoreResult<bool> {
        let txn = self.read()?;
        let table = txn.open_table(COMPILED).map_err(other)?;
        let prefix = format!("{digest}/");
        let found = table
            .range(prefix.as_str()..)
            .map_err(other)?
            .next()
            .transpose()
            .map_err(other)?;
        Ok(found.is_some_and(|(k, _)| k.value().starts_with(&prefix)))
    }

    async fn workflow_version(&self, id: &str, version: Option<u64>) -> StoreResult<Option<(u64, Digest)>> {
        let txn = self.read()?;
        let table = txn.open_table(WORKFLOWS).map_err(other)?;
        let version = match version {
            Some(v) => v,
            None => match txn
                .open_table(ACTIVE_VERSIONS)
                .map_err(other)?
                .get(id)
                .map_err(other)?
            {
                Some(active) => active.value(),
                None => return Ok(None),
            },
        };
        let found = table
            .get((id, version))
            .map_err(other)?
            .map(|d| d.value().to_owned());
        found.map(|d| Ok((version, parse_digest(&d)?))).transpose()
    }

    async fn workflow_versions(&self, id: &str) -> StoreResult<Vec<(u64, Digest)>> {
        let txn = self.read()?;
        let table = txn.open_table(WORKFLOWS).map_err(other)?;
        let mut versions = Vec::new();
        for entry in table.range((id, 0)..=(id, u64::MAX)).map_err(other)? {
            let (k, v) = entry.map_err(other)?;
            versions.push((k.value().1, parse_digest(v.value())?));
        }
        Ok(versions)
    }

    async fn latest_version(&self, id: &str) -> StoreResult<Option<u64>> {
        let txn = self.read()?;
        let table = txn.open_table(WORKFLOWS).map_err(other)?;
        let last = table
            .range((id, 0)..=(id, u64::MAX))
            .map_err(other)?
            .next_back()
            .transpose()
            .map_err(other)?;
        Ok(last.map(|(k, _)| k.value().1))
    }

    async fn published_versions(&self, id: &str) -> StoreResult<Vec<u64>> {
        let txn = self.read()?;
        let table = txn.open_table(PUBLISHED).map_err(other)?;
        let mut versions = Vec::new();
        for entry in table.range((id, 0)..=(id, u64::MAX)).map_err(other)? {
            versions.push(entry.map_err(other)?.0.value().1);
        }
        Ok(versions)
    }

    async fn workflows(&self) -> StoreResult<Vec<(String, u64, Digest)>> {
        let txn = self.read()?;
        let table = txn.open_table(WORKFLOWS).map_err(other)?;
        let mut latest: Vec<(String, u64, Digest)> = Vec::new();
        for entry in table.iter().map_err(other)? {
            let (k, v) = entry.map_err(other)?;
            let (id, version) = k.value();
            let digest = parse_digest(v.value())?;
            match latest.last_mut() {
                Some(last) if last.0 == id => *last = (id.to_owned(), version, digest),
                _ => latest.push((id.to_owned(), version, digest)),
            }
        }
        Ok(latest)
    }

    async fn definition(&self, digest: &Digest) -> StoreResult<Option<Vec<u8>>> {
        let txn = self.read()?;
        let table = txn.open_table(DEFINITIONS).map_err(other)?;
        let found = table.get(digest.as_str()).map_err(other)?;
        Ok(found.map(|v| v.value().to_vec()))
    }
}

/// A plugin's stored value: the metadata document, which names its key and digest.
fn stored_plugin(meta: &[u8]) -> StoreResult<StoredPlugin> {
    #[derive(serde::Deserialize)]
    struct Keys {
        name: String,
        version: String,
        digest: Digest,
    }
    let keys: Keys =
        serde_json::from_slice(meta).map_err(|e| other(anyhow!("a stored plugin is unreadable: {e}")))?;
    Ok(StoredPlugin {
        name: keys.name,
        version: keys.version,
        digest: keys.digest,
        meta: meta.to_vec(),
    })
}

#[async_trait]
impl AccessStore for RedbStore {
    async fn token(&self, hash: &str) -> StoreResult<Option<Vec<u8>>> {
        let txn = self.read()?;
        let table = txn.open_table(TOKENS).map_err(other)?;
        let found = table.get(hash).map_err(other)?;
        Ok(found.map(|v| v.value().to_vec()))
    }

    async fn tokens(&self) -> StoreResult<Vec<(String, Vec<u8>)>> {
        let txn = self.read()?;
        let table = txn.open_table(TOKENS).map_err(other)?;
        let mut all = Vec::new();
        for entry in table.iter().map_err(other)? {
            let (k, v) = entry.map_err(other)?;
            all.push((k.value().to_owned(), v.value().to_vec()));
        }
        Ok(all)
    }

    async fn has_tokens(&self) -> StoreResult<bool> {
        let txn = self.read()?;
        Ok(!txn.open_table(TOKENS).map_err(other)?.is_empty().map_err(other)?)
    }

    async fn audit(&self, after: Option<u64>, limit: usize) -> StoreResult<Vec<(u64, Vec<u8>)>> {
        self.flush().await?;
        let txn = self.read()?;
        let table = txn.open_table(AUDIT).map_err(other)?;
        let start = after.map_or(0, |a| a.saturating_add(1));
        let mut entries = Vec::new();
        for entry in table.range(start..).map_err(other)?.take(limit) {
            let (k, v) = entry.map_err(other)?;
            entries.push((k.value(), v.value().to_vec()));
        }
        Ok(entries)
    }

    async fn grants(&self) -> StoreResult<Vec<(String, Vec<u8>)>> {
        let txn = self.read()?;
        let table = txn.open_table(GRANTS).map_err(other)?;
        let mut all = Vec::new();
        for entry in table.iter().map_err(other)? {
            let (k, v) = entry.map_err(other)?;
            all.push((k.value().to_owned(), v.value().to_vec()));
        }
        Ok(all)
    }

    async fn session(&self, id: &str) -> StoreResult<Option<Vec<u8>>> {
        let txn = self.read()?;
        let table = txn.open_table(SESSIONS).map_err(other)?;
        let found = table.get(id).map_err(other)?;
        Ok(found.map(|v| v.value().to_vec()))
    }
}

#[async_trait]
impl DocStore for RedbStore {
    async fn doc(&self, kind: DocKind, key: &str) -> StoreResult<Option<StoredDoc>> {
        let txn = self.read()?;
        let table = txn.open_table(DOCS).map_err(other)?;
        let found = table.get((kind.code(), key)).map_err(other)?;
        Ok(found.map(|v| stored_doc(kind, key, v.value())))
    }

    async fn docs(&self, kind: DocKind, from: &str, to: &str, limit: usize) -> StoreResult<Vec<StoredDoc>> {
        let txn = self.read()?;
        let table = txn.open_table(DOCS).map_err(other)?;
        let mut found = Vec::new();
        if from >= to {
            return Ok(found);
        }
        for entry in table
            .range((kind.code(), from)..(kind.code(), to))
            .map_err(other)?
            .take(limit)
        {
            let (k, v) = entry.map_err(other)?;
            found.push(stored_doc(kind, k.value().1, v.value()));
        }
        Ok(found)
    }
}

/// The revision a keyed document has after `write` (a `Write::Doc`), given its `current`
/// one: none once removed.
fn doc_revision(current: Option<u64>, write: &Write) -> Option<u64> {
    match write {
        Write::Doc { doc: Some(_), .. } => Some(current.map_or(1, |r| r + 1)),
        _ => None,
    }
}

/// A keyed document's stored value: its revision, then the document.
pub(super) fn encode_doc(revision: u64, doc: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(8 + doc.len());
    value.extend_from_slice(&revision.to_le_bytes());
    value.extend_from_slice(doc);
    value
}

pub(super) fn decode_doc(value: &[u8]) -> (u64, &[u8]) {
    let (revision, doc) = value.split_at(8.min(value.len()));
    let revision = u64::from_le_bytes(revision.try_into().unwrap_or([0; 8]));
    (revision, doc)
}

fn stored_doc(kind: DocKind, key: &str, value: &[u8]) -> StoredDoc {
    let (revision, doc) = decode_doc(value);
    StoredDoc {
        kind,
        key: key.to_owned(),
        revision,
        doc: doc.to_vec(),
    }
}

#[async_trait]
impl Coordination for RedbStore {
    fn runner(&self) -> &str {
        &self.runner
    }

    fn shared(&self) -> bool {
        false
    }

    /// One runner per file: alive for as long as it holds the file.
    async fn heartbeat(&self, _address: Option<&str>, _lease: Duration) -> StoreResult<()> {
        Ok(())
    }

    async fn runners(&self) -> StoreResult<Vec<RunnerInfo>> {
        let now = crate::run::now();
        let txn = self.read()?;
        let runs = txn.open_table(LIVE_RUNS).map_err(other)?.len().map_err(other)?;
        Ok(vec![RunnerInfo {
            id: self.runner.clone(),
            address: None,
            started_at: self.started_at,
            heartbeat_at: now,
            lease_until: now,
            runs,
        }])
    }

    async fn claim_orphans(&self, limit: usize) -> StoreResult<Vec<StoredRun>> {
        let live = {
            let txn = self.read()?;
            let table = txn.open_table(LIVE_RUNS).map_err(other)?;
            let mut found = Vec::new();
            for entry in table.iter().map_err(other)? {
                let (k, v) = entry.map_err(other)?;
                let run = decode_run(parse_id(k.value())?, v.value())?;
                if run.owner.as_deref() != Some(self.runner.as_str()) {
                    found.push(run);
                    if found.len() >= limit {
                        break;
                    }
                }
            }
            found
        };
        let mut claimed = Vec::new();
        for run in live {
            // The claim is an ordinary conditional write of the same document.
            let index = super::index_of(&run.doc)?;
            let write = Write::Run {
                id: run.id,
                doc: run.doc.clone(),
                index,
                expect: Some(run.revision),
                owner: Some(self.runner.clone()),
            };
            match self.commit(vec![write]).await {
                Ok(()) => claimed.push(StoredRun {
                    revision: run.revision + 1,
                    owner: Some(self.runner.clone()),
                    ..run
                }),
                Err(StoreError::Stale(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(claimed)
    }

    async fn release(&self) -> StoreResult<()> {
        Ok(())
    }

    fn subscribe(&self) -> broadcast::Receiver<Notice> {
        self.notices.subscribe()
    }
}

#[async_trait]
impl Store for RedbStore {
    async fn commit(&self, writes: Vec<Write>) -> StoreResult<()> {
        if writes.is_empty() {
            return Ok(());
        }
        let wait = self.send(writes, true)?;
        self.durable(wait).await
    }

    fn enqueue(&self, writes: Vec<Write>) {
        if let Err(e) = self.send(writes, false) {
            tracing::error!("cannot queue writes: {e}");
        }
    }

    async fn flush(&self) -> StoreResult<()> {
        let wait = self.send(Vec::new(), true)?;
        self.durable(wait).await
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    fn writer_stats(&self) -> &WriterStats {
        &self.stats
    }

    async fn used_bytes(&self) -> StoreResult<u64> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<u64> {
            // A write transaction sees the allocator; it is dropped unwritten.
            let stats = db.begin_write()?.stats()?;
            Ok(stats.allocated_pages() * stats.page_size() as u64)
        })
        .await
        .map_err(other)?
        .map_err(StoreError::Other)
    }
}

fn write_loop(
    db: &Database,
    batches: mpsc::Receiver<Batch>,
    notices: &broadcast::Sender<Notice>,
    stats: &WriterStats,
    runner: &str,
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
        let started = std::time::Instant::now();
        let outcome = apply(db, &group).map_err(|e| Refusal::Failed(format!("{e:#}")));
        let results: Vec<Result<(), Refusal>> = match outcome {
            Ok(results) => {
                crate::telemetry::metrics::metrics().store_committed("redb", count, started.elapsed());
                let applied = group
                    .iter()
                    .zip(&results)
                    .filter(|(_, r)| r.is_ok())
                    .map(|(b, _)| b);
                let writes: Vec<&Write> = applied.flat_map(|b| &b.writes).collect();
                stats.transactions.fetch_add(1, Ordering::Relaxed);
                stats.writes.fetch_add(writes.len() as u64, Ordering::Relaxed);
                stats.bytes.fetch_add(
                    writes.iter().map(|w| w.document_len()).sum::<usize>() as u64,
                    Ordering::Relaxed,
                );
                for notice in notices_of(&writes, runner) {
                    let _ = notices.send(notice);
                }
                results
            }
            Err(e) => {
                tracing::error!("store commit failed: {e:?}");
                group.iter().map(|_| Err(e.clone())).collect()
            }
        };
        for (batch, result) in group.into_iter().zip(results) {
            let _ = batch.done.send(result);
        }
    }
}

/// The notices committed `writes` give rise to.
pub(super) fn notices_of(writes: &[&Write], runner: &str) -> Vec<Notice> {
    let mut notices = Vec::new();
    let (mut timers, mut outbox, mut rules, mut grants, mut schedules) = (false, false, false, false, false);
    for write in writes {
        match write {
            Write::Run { id, index, owner, .. } => notices.push(Notice::Run {
                id: *id,
                state: index.state,
                owner: owner.clone(),
                by: runner.to_owned(),
            }),
            Write::Timer(_) => timers = true,
            Write::Action(ActionWrite::Outbox(_)) => outbox = true,
            Write::Action(ActionWrite::RulesRevision { .. }) => rules = true,
            Write::Grant { .. } => grants = true,
            Write::Doc {
                kind: DocKind::Schedule,
                ..
            } => schedules = true,
            _ => {}
        }
    }
    for (flag, notice) in [
        (schedules, Notice::Schedules),
        (timers, Notice::Timers),
        (outbox, Notice::Outbox),
        (rules, Notice::Rules),
        (grants, Notice::Grants),
    ] {
        if flag {
            notices.push(notice);
        }
    }
    notices
}

/// Applies every batch of `group` in one transaction: each batch's conditions are checked
/// against what the batches before it left, and its writes applied only if they all hold.
/// Returns each batch's result; an error is the transaction's.
fn apply(db: &Database, group: &[Batch]) -> anyhow::Result<Vec<Result<(), Refusal>>> {
    let txn = db.begin_write()?;
    let mut results = Vec::with_capacity(group.len());
    {
        let mut t = Tables::open(&txn)?;
        for batch in group {
            let result = t.check(&batch.writes)?;
            if result.is_ok() {
                for write in &batch.writes {
                    t.apply(&txn, write)?;
                }
            }
            results.push(result);
        }
    }
    txn.commit()?;
    Ok(results)
}

/// The tables a transaction writes, opened once per transaction.
struct Tables<'txn> {
    runs: redb::Table<'txn, &'static str, &'static [u8]>,
    live: redb::Table<'txn, &'static str, &'static [u8]>,
    live_logs: redb::Table<'txn, (&'static str, u64), &'static [u8]>,
    waiting: redb::Table<'txn, &'static str, ()>,
    waiting_for: redb::Table<'txn, (&'static str, &'static str), ()>,
    run_waiting_for: redb::Table<'txn, &'static str, &'static [u8]>,
    idempotency: redb::Table<'txn, &'static str, &'static str>,
    tokens: redb::Table<'txn, &'static str, &'static [u8]>,
    audit: redb::Table<'txn, u64, &'static [u8]>,
    timers: redb::Table<'txn, (u64, &'static str, &'static str), u8>,
    logs: redb::Table<'txn, (&'static str, u64), &'static [u8]>,
    plugins: redb::Table<'txn, &'static str, &'static [u8]>,
    plugin_bytes: redb::Table<'txn, &'static str, &'static [u8]>,
    compiled: redb::Table<'txn, &'static str, &'static [u8]>,
    workflows: redb::Table<'txn, (&'static str, u64), &'static str>,
    definitions: redb::Table<'txn, &'static str, &'static [u8]>,
    published: redb::Table<'txn, (&'static str, u64), ()>,
    active_versions: redb::Table<'txn, &'static str, u64>,
    meta: redb::Table<'txn, &'static str, u64>,
    grants: redb::Table<'txn, &'static str, &'static [u8]>,
    sessions: redb::Table<'txn, &'static str, &'static [u8]>,
    items: redb::Table<'txn, (&'static str, &'static str, u64), &'static [u8]>,
    inputs: redb::Table<'txn, (&'static str, &'static str, &'static str), ()>,
    run_inputs: redb::Table<'txn, &'static str, &'static [u8]>,
    docs: redb::Table<'txn, (u8, &'static str), &'static [u8]>,
    archived_logs: redb::Table<'txn, &'static str, &'static [u8]>,
}

impl<'txn> Tables<'txn> {
    fn open(txn: &'txn redb::WriteTransaction) -> anyhow::Result<Tables<'txn>> {
        Ok(Tables {
            runs: txn.open_table(RUNS)?,
            live: txn.open_table(LIVE_RUNS)?,
            live_logs: txn.open_table(LIVE_LOGS)?,
            waiting: txn.open_table(WAITING)?,
            waiting_for: txn.open_table(WAITING_FOR)?,
            run_waiting_for: txn.open_table(RUN_WAITING_FOR)?,
            idempotency: txn.open_table(IDEMPOTENCY)?,
            tokens: txn.open_table(TOKENS)?,
            audit: txn.open_table(AUDIT)?,
            timers: txn.open_table(TIMERS)?,
            logs: txn.open_table(LOGS)?,
            plugins: txn.open_table(PLUGINS)?,
            plugin_bytes: txn.open_table(PLUGIN_BYTES)?,
            compiled: txn.open_table(COMPILED)?,
            workflows: txn.open_table(WORKFLOWS)?,
            definitions: txn.open_table(DEFINITIONS)?,
            published: txn.open_table(PUBLISHED)?,
            active_versions: txn.open_table(ACTIVE_VERSIONS)?,
            meta: txn.open_table(META)?,
            grants: txn.open_table(GRANTS)?,
            sessions: txn.open_table(SESSIONS)?,
            items: txn.open_table(ITEMS)?,
            inputs: txn.open_table(INPUTS)?,
            run_inputs: txn.open_table(RUN_INPUTS)?,
            docs: txn.open_table(DOCS)?,
            archived_logs: txn.open_table(ARCHIVED_LOGS)?,
        })
    }

    /// Removes and returns the log lines of run `key` kept one per entry: those written while
    /// it was live, and with `history` those written since.
    fn take_lines(&mut self, key: &str, history: bool) -> anyhow::Result<Vec<(u64, Vec<u8>)>> {
        let mut lines = Vec::new();
        let tables = if history {
            vec![&mut self.live_logs, &mut self.logs]
        } else {
            vec![&mut self.live_logs]
        };
        for table in tables {
            let found: Vec<(u64, Vec<u8>)> = table
                .range(run_lines(key))?
                .map(|e| e.map(|(k, v)| (k.value().1, v.value().to_vec())))
                .collect::<Result<_, _>>()?;
            if !found.is_empty() {
                table.retain_in(run_lines(key), |_, _| false)?;
                lines.extend(found);
            }
        }
        Ok(lines)
    }

    /// Removes and returns the archived log lines of run `key`, if it has any.
    fn unarchive(&mut self, key: &str) -> anyhow::Result<Vec<(u64, Vec<u8>)>> {
        match self.archived_logs.remove(key)? {
            Some(packed) => archive::unpack_lines(packed.value()),
            None => Ok(Vec::new()),
        }
    }

    /// Checks the conditions of one caller's writes, in order, against the transaction so
    /// far (two writes of one run in one call: the second expects the first's revision).
    fn check(&self, writes: &[Write]) -> anyhow::Result<Result<(), Refusal>> {
        let mut written: Vec<(RunId, u64)> = Vec::new();
        let mut docs_written: Vec<(DocKind, &String, Option<u64>)> = Vec::new();
        // Plugin versions this call deletes before it writes one again (a failed upload
        // replaced by a new one).
        let mut plugins_deleted: Vec<String> = Vec::new();
        for write in writes {
            match write {
                Write::DeletePlugin { name, version } => plugins_deleted.push(format!("{name}@{version}")),
                Write::Run { id, expect, .. } => {
                    let key = id.to_string();
                    let current = match written.iter().rev().find(|(w, _)| w == id) {
                        Some((_, revision)) => Some(*revision),
                        None => match revision_in(&self.live, &key)? {
                            Some(revision) => Some(revision),
                            None => revision_in(&self.runs, &key)?,
                        },
                    };
                    match (expect, current) {
                        (None, Some(_)) => return Ok(Err(Refusal::Conflict(format!("run {id} exists already")))),
                        (Some(expected), Some(current)) if *expected != current => {
                            return Ok(Err(Refusal::Stale(format!(
                                "run {id} is at revision {current}, not {expected}: it changed since it was read"
                            ))))
                        }
                        (Some(_), None) => return Ok(Err(Refusal::Stale(format!("run {id} no longer exists")))),
                        _ => {}
                    }
                    written.push((*id, expect.map_or(1, |e| e + 1)));
                }
                Write::Idempotency { key, .. } if self.idempotency.get(key.as_str())?.is_some() => {
                    return Ok(Err(Refusal::Conflict(format!(
                        "the idempotency key {key:?} is taken"
                    ))));
                }
                Write::Plugin {
                    name,
                    version,
                    digest,
                    ..
                } => {
                    let key = format!("{name}@{version}");
                    let deleted = plugins_deleted.contains(&key);
                    if let Some(existing) = self.plugins.get(key.as_str())?.filter(|_| !deleted) {
                        let existing = stored_plugin(existing.value()).map_err(|e| anyhow!("{e}"))?;
                        if existing.digest != *digest {
                            return Ok(Err(Refusal::Conflict(format!(
                                "{key} already exists with digest {}",
                                existing.digest
                            ))));
                        }
                    }
                }
                Write::Workflow {
                    id,
                    version,
                    replaces,
                    ..
                } => {
                    let current = self
                        .workflows
                        .get((id.as_str(), *version))?
                        .map(|d| d.value().to_owned());
                    match (replaces, current) {
                        (None, Some(_)) => {
                            return Ok(Err(Refusal::Conflict(format!(
                                "workflow {id} version {version} exists already"
                            ))))
                        }
                        (Some(old), Some(current)) if old.as_str() != current => {
                            return Ok(Err(Refusal::Stale(format!(
                                "workflow {id} version {version} changed since it was read"
                            ))))
                        }
                        (Some(_), None) => {
                            return Ok(Err(Refusal::Stale(format!(
                                "workflow {id} version {version} no longer exists"
                            ))))
                        }
                        _ => {}
                    }
                }
                Write::Doc {
                    kind, key, condition, ..
                } if *condition != DocCondition::Any => {
                    let current = match docs_written
                        .iter()
                        .rev()
                        .find(|(k, name, _)| k == kind && *name == key)
                    {
                        Some((_, _, revision)) => *revision,
                        None => self
                            .docs
                            .get((kind.code(), key.as_str()))?
                            .map(|v| decode_doc(v.value()).0),
                    };
                    match (condition, current) {
                        (DocCondition::Absent, Some(_)) => {
                            return Ok(Err(Refusal::Conflict(format!("{kind:?} {key:?} exists already"))))
                        }
                        (DocCondition::At(expected), current) if current != Some(*expected) => {
                            return Ok(Err(Refusal::Stale(format!(
                                "{kind:?} {key:?} changed since it was read"
                            ))))
                        }
                        _ => {}
                    }
                    docs_written.push((*kind, key, doc_revision(current, write)));
                }
                Write::Action(ActionWrite::RulesRevision { expect }) => {
                    let current = self.meta.get(RULES_REVISION)?.map_or(0, |v| v.value());
                    if current != *expect {
                        return Ok(Err(Refusal::Stale(
                            "the action rules changed since they were read; try again".into(),
                        )));
                    }
                }
                _ => {}
            }
        }
        Ok(Ok(()))
    }

    fn apply(&mut self, txn: &redb::WriteTransaction, write: &Write) -> anyhow::Result<()> {
        match write {
            Write::Run {
                id,
                doc,
                index,
                expect,
                owner,
            } => {
                // Tables are touched only when something changes in them: a rewritten page is
                // a page more to sync.
                let key = id.to_string();
                let key = key.as_str();
                let finished = index.state.is_finished();
                let value = encode_run(expect.map_or(1, |e| e + 1), owner.as_deref(), doc, finished);
                if matches!(index.state, RunState::Pending | RunState::Running) {
                    self.live.insert(key, value.as_slice())?;
                    if self.runs.get(key)?.is_some() {
                        self.runs.remove(key)?;
                    }
                    // A finished run going again (a retry): its lines are live again.
                    for (seq, line) in self.unarchive(key)? {
                        self.live_logs.insert((key, seq), line.as_slice())?;
                    }
                } else {
                    self.runs.insert(key, value.as_slice())?;
                    if self.live.get(key)?.is_some() {
                        self.live.remove(key)?;
                    }
                    let mut lines = self.take_lines(key, finished)?;
                    lines.extend(self.unarchive(key)?);
                    if finished {
                        lines.sort_by_key(|(seq, _)| *seq);
                        if !lines.is_empty() {
                            self.archived_logs
                                .insert(key, archive::pack_lines(&lines).as_slice())?;
                        }
                    } else {
                        for (seq, line) in lines {
                            self.logs.insert((key, seq), line.as_slice())?;
                        }
                    }
                }
                set_member(&mut self.waiting, key, index.state == RunState::Waiting)?;
                set_waiting_for(
                    &mut self.waiting_for,
                    &mut self.run_waiting_for,
                    key,
                    &index.waiting_for,
                )?;
                if expect.is_none() && !index.inputs.is_empty() {
                    for (name, value) in &index.inputs {
                        self.inputs.insert((name.as_str(), value.as_str(), key), ())?;
                    }
                    self.run_inputs
                        .insert(key, serde_json::to_vec(&index.inputs)?.as_slice())?;
                }
            }
            Write::Item {
                run,
                step,
                index,
                doc,
            } => {
                let run = run.to_string();
                self.items
                    .insert((run.as_str(), step.as_str(), *index), doc.as_slice())?;
            }
            Write::DeleteRun(id) => {
                let key = id.to_string();
                self.runs.remove(key.as_str())?;
                self.live.remove(key.as_str())?;
                self.waiting.remove(key.as_str())?;
                set_waiting_for(&mut self.waiting_for, &mut self.run_waiting_for, &key, &[])?;
                self.logs.retain_in(run_lines(&key), |_, _| false)?;
                self.live_logs.retain_in(run_lines(&key), |_, _| false)?;
                self.items.retain_in(run_items(&key), |_, _| false)?;
                self.archived_logs.remove(key.as_str())?;
                let indexed = self.run_inputs.remove(key.as_str())?.map(|v| v.value().to_vec());
                if let Some(indexed) = indexed {
                    let pairs: Vec<(String, String)> = serde_json::from_slice(&indexed)?;
                    for (name, value) in &pairs {
                        self.inputs
                            .remove((name.as_str(), value.as_str(), key.as_str()))?;
                    }
                }
            }
            Write::Log { run, seq, doc } => {
                // A live (or not yet stored) run's lines wait in `live_logs` until it moves to
                // the history (see `LIVE_LOGS`).
                let run = run.to_string();
                let key = (run.as_str(), *seq);
                if self.live.get(run.as_str())?.is_none() && self.runs.get(run.as_str())?.is_some() {
                    self.logs.insert(key, doc.as_slice())?;
                } else {
                    self.live_logs.insert(key, doc.as_slice())?;
                }
            }
            Write::Timer(t) => {
                let (run, kind) = (t.run.to_string(), kind_byte(t.kind));
                self.timers
                    .insert((unix_ms(t.due), run.as_str(), t.step.as_str()), kind)?;
            }
            Write::DeleteTimer(t) => {
                let run = t.run.to_string();
                self.timers
                    .remove((unix_ms(t.due), run.as_str(), t.step.as_str()))?;
            }
            Write::Idempotency { key, run, request } => {
                self.idempotency
                    .insert(key.as_str(), format!("{run} {request}").as_str())?;
            }
            Write::DeleteIdempotency(key) => {
                self.idempotency.remove(key.as_str())?;
            }
            Write::Plugin {
                name,
                version,
                digest,
                meta,
                bytes,
            } => {
                // The same component again replaces its metadata (its compile status); another
                // component was refused as a conflict before anything was applied.
                let key = format!("{name}@{version}");
                self.plugins.insert(key.as_str(), meta.as_slice())?;
                if self.plugin_bytes.get(digest.as_str())?.is_none() {
                    self.plugin_bytes.insert(digest.as_str(), &**bytes)?;
                }
            }
            Write::DeletePlugin { name, version } => {
                let key = format!("{name}@{version}");
                let removed = self.plugins.remove(key.as_str())?.map(|v| v.value().to_vec());
                if let Some(meta) = removed {
                    let meta = stored_plugin(&meta).map_err(|e| anyhow!("{e}"))?;
                    let mut shared = false;
                    for entry in self.plugins.iter()? {
                        let (_, v) = entry?;
                        shared |= stored_plugin(v.value()).map_err(|e| anyhow!("{e}"))?.digest == meta.digest;
                    }
                    if !shared {
                        self.plugin_bytes.remove(meta.digest.as_str())?;
                    }
                }
            }
            Write::Artifact { key, bytes } => {
                self.compiled.insert(key.as_str(), bytes.as_slice())?;
            }
            Write::Workflow {
                id,
                version,
                digest,
                definition,
                ..
            } => {
                self.workflows.insert((id.as_str(), *version), digest.as_str())?;
                self.definitions.insert(digest.as_str(), definition.as_slice())?;
            }
            Write::Publish { id, version } => {
                self.published.insert((id.as_str(), *version), ())?;
                self.active_versions.insert(id.as_str(), *version)?;
            }
            Write::DeleteWorkflow(id) => {
                self.workflows
                    .retain_in((id.as_str(), 0)..=(id.as_str(), u64::MAX), |_, _| false)?;
                self.published
                    .retain_in((id.as_str(), 0)..=(id.as_str(), u64::MAX), |_, _| false)?;
                self.active_versions.remove(id.as_str())?;
            }
            Write::Token { hash, doc } => {
                self.tokens.insert(hash.as_str(), doc.as_slice())?;
            }
            Write::Audit(doc) => {
                let next = self.audit.last()?.map_or(0, |(k, _)| k.value() + 1);
                self.audit.insert(next, doc.as_slice())?;
            }
            Write::Grant { plugin, doc } => match doc {
                Some(doc) => {
                    self.grants.insert(plugin.as_str(), doc.as_slice())?;
                }
                None => {
                    self.grants.remove(plugin.as_str())?;
                }
            },
            Write::Session { id, doc } => match doc {
                Some(doc) => {
                    self.sessions.insert(id.as_str(), doc.as_slice())?;
                }
                None => {
                    self.sessions.remove(id.as_str())?;
                }
            },
            Write::Action(ActionWrite::RulesRevision { expect }) => {
                self.meta.insert(RULES_REVISION, expect + 1)?;
            }
            Write::Doc { kind, key, .. } => {
                let k = (kind.code(), key.as_str());
                let current = self.docs.get(k)?.map(|v| decode_doc(v.value()).0);
                match (doc_revision(current, write), write) {
                    (Some(revision), Write::Doc { doc: Some(doc), .. }) => {
                        self.docs.insert(k, encode_doc(revision, doc).as_slice())?;
                    }
                    _ => {
                        self.docs.remove(k)?;
                    }
                }
            }
            Write::Action(write) => actions::apply(txn, write)?,
        }
        Ok(())
    }
}

/// The `META` key of the action rule set's revision.
const RULES_REVISION: &str = "rules_revision";

/// The key range of every log line of the run with key `run`.
fn run_lines(run: &str) -> std::ops::RangeInclusive<(&str, u64)> {
    (run, 0)..=(run, u64::MAX)
}

/// Makes `key` a member of `index` or not, writing only if that changes anything.
/// Every item key of a run's `for_each` steps.
fn run_items(run: &str) -> std::ops::RangeInclusive<(&str, &str, u64)> {
    (run, "", 0)..=(run, "\u{10ffff}", u64::MAX)
}

fn set_member(index: &mut redb::Table<&str, ()>, key: &str, member: bool) -> anyhow::Result<()> {
    if index.get(key)?.is_some() != member {
        if member {
            index.insert(key, ())?;
        } else {
            index.remove(key)?;
        }
    }
    Ok(())
}

/// Records that the run `key` waits for `assignees` (none: it waits for no one), touching
/// the index only when that changed.
fn set_waiting_for(
    index: &mut redb::Table<(&'static str, &'static str), ()>,
    by_run: &mut redb::Table<&'static str, &'static [u8]>,
    key: &str,
    assignees: &[String],
) -> anyhow::Result<()> {
    let before: Vec<String> = match by_run.get(key)? {
        Some(v) => serde_json::from_slice(v.value())?,
        None => Vec::new(),
    };
    if before == assignees {
        return Ok(());
    }
    for assignee in &before {
        index.remove((assignee.as_str(), key))?;
    }
    for assignee in assignees {
        index.insert((assignee.as_str(), key), ())?;
    }
    if assignees.is_empty() {
        by_run.remove(key)?;
    } else {
        by_run.insert(key, serde_json::to_vec(assignees)?.as_slice())?;
    }
    Ok(())
}

/// The `META` entry set once `WAITING_FOR` holds every waiting run.
const WAITING_FOR_BUILT: &str = "waiting_for_index";

/// Fills `WAITING_FOR` from the waiting runs of a database written before it existed.
/// Does nothing once done.
fn index_waiting_for(txn: &redb::WriteTransaction) -> anyhow::Result<()> {
    let mut meta = txn.open_table(META)?;
    if meta.get(WAITING_FOR_BUILT)?.is_some() {
        return Ok(());
    }
    let runs = txn.open_table(RUNS)?;
    let waiting = txn.open_table(WAITING)?;
    let mut index = txn.open_table(WAITING_FOR)?;
    let mut by_run = txn.open_table(RUN_WAITING_FOR)?;
    for entry in waiting.iter()? {
        let key = entry?.0;
        let key = key.value();
        if let Some(value) = runs.get(key)? {
            let run = decode_run(parse_id(key)?, value.value())?;
            let assignees = super::index_of(&run.doc)?.waiting_for;
            set_waiting_for(&mut index, &mut by_run, key, &assignees)?;
        }
    }
    meta.insert(WAITING_FOR_BUILT, 1)?;
    Ok(())
}

fn create_tables(db: &Database) -> anyhow::Result<()> {
    let txn = db.begin_write()?;
    txn.open_table(RUNS)?;
    txn.open_table(LIVE_RUNS)?;
    txn.open_table(LIVE_LOGS)?;
    migrate_active_index(&txn)?;
    txn.open_table(WAITING)?;
    index_waiting_for(&txn)?;
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
    txn.open_table(META)?;
    txn.open_table(GRANTS)?;
    txn.open_table(SESSIONS)?;
    txn.open_table(ITEMS)?;
    txn.open_table(INPUTS)?;
    txn.open_table(RUN_INPUTS)?;
    txn.open_table(DOCS)?;
    txn.open_table(ARCHIVED_LOGS)?;
    actions::create_tables(&txn)?;
    txn.commit()?;
    Ok(())
}

/// Moves the records of pending and running runs from a database written before
/// `LIVE_RUNS` existed into it, then drops the old index. Does nothing on newer databases.
fn migrate_active_index(txn: &redb::WriteTransaction) -> anyhow::Result<()> {
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
    kind.code()
}

fn timer_from((due, run, step): (u64, &str, &str), kind: u8) -> StoreResult<Timer> {
    Ok(Timer {
        due: OffsetDateTime::from_unix_timestamp_nanos(i128::from(due) * 1_000_000).map_err(other)?,
        run: parse_id(run)?,
        step: step.to_owned(),
        kind: TimerKind::from_code(kind),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn older_databases_keep_their_pending_runs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.redb");
        let id = RunId::new();
        let doc = br#"{"state":"running"}"#;
        {
            // The layout before live_runs: every record in `runs`, an index of active ids;
            // and before revisions: the bare document.
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            let key = id.to_string();
            txn.open_table(RUNS)
                .unwrap()
                .insert(key.as_str(), doc.as_slice())
                .unwrap();
            txn.open_table(LEGACY_ACTIVE)
                .unwrap()
                .insert(key.as_str(), ())
                .unwrap();
            txn.commit().unwrap();
        }
        let store = RedbStore::open(&path, "r1".into()).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let found = rt.block_on(store.run(id)).unwrap().unwrap();
        assert_eq!(found.doc, doc);
        assert_eq!(found.revision, 0, "a record from before revisions is revision 0");
        let live = rt
            .block_on(store.runs(RunScope::Live, None, 10, &mut |_| true))
            .unwrap();
        assert_eq!(live.len(), 1);
    }
}
