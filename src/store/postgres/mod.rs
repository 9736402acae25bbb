//! The shared backend: PostgreSQL, for several runners on one database.
//!
//! - Schema: versioned migrations (`migrations/`, applied with refinery on open, under an
//!   advisory lock so runners starting together apply them once).
//! - Reads, claims and heartbeats use a connection pool (deadpool-postgres).
//! - Writes go through one writer task per runner ([`writer`]) that batches concurrent
//!   commits into shared transactions (group commit, `synchronous_commit` on): a caller's
//!   conditions are checked under row locks, and a caller whose condition fails gets its
//!   error and none of its writes.
//! - Runners tell each other what they committed with `NOTIFY weft` in the same transaction;
//!   each runner `LISTEN`s on a connection of its own ([`listen`]).
//! - Every time a lease is compared (run ownership, timer and outbox claims) it is against
//!   the database's clock, so runners' clocks need not agree.

mod listen;
mod transfer;
mod writer;

use super::api::*;
use crate::names::{Digest, RunId};
use anyhow::anyhow;
use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::broadcast;

refinery::embed_migrations!("src/store/postgres/migrations");

/// Connections in the read pool.
const POOL_SIZE: usize = 16;
/// How long a connection attempt may take before the database counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Rows read at a time when a listing filters as it goes.
const PAGE: i64 = 256;
/// How many notices a slow subscriber may fall behind before it misses some.
const NOTICES: usize = 4096;
/// The advisory lock key under which migrations run.
const MIGRATION_LOCK: i64 = 0x7765_6674; // "weft"

/// The PostgreSQL store; share it as an `Arc<dyn Store>`.
pub struct PgStore {
    pool: Pool,
    writer: writer::Writer,
    url: String,
    runner: String,
    notices: broadcast::Sender<Notice>,
    stats: Arc<WriterStats>,
    /// The task listening for notices, stopped with the store.
    listening: tokio::task::AbortHandle,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.listening.abort();
    }
}

/// The connection settings of `url`, with a connect timeout and a name for `pg_stat_activity`.
fn config(url: &str) -> anyhow::Result<tokio_postgres::Config> {
    let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
        anyhow!(
            "{} is not a PostgreSQL URL ({e}); use postgres://USER[:PASS]@HOST:PORT/DB",
            super::mask_password(url)
        )
    })?;
    config.connect_timeout(CONNECT_TIMEOUT);
    config.application_name("weft");
    Ok(config)
}

/// Opens a connection of its own (not from the pool) and drives it on a task.
async fn connect(config: &tokio_postgres::Config, url: &str) -> StoreResult<tokio_postgres::Client> {
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| unreachable(url, &e))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!("a PostgreSQL connection ended: {e}");
        }
    });
    Ok(client)
}

/// The one error for a database that cannot be reached, naming it without its password.
fn unreachable(url: &str, e: &dyn std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!(
        "cannot connect to PostgreSQL at {}: {e}",
        super::mask_password(url)
    ))
}

impl PgStore {
    /// Connects to `url`, applies pending migrations and registers `runner`.
    pub async fn open(url: &str, runner: String) -> anyhow::Result<PgStore> {
        let config = config(url)?;
        let manager = Manager::from_config(
            config.clone(),
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .build()
            .map_err(|e| anyhow!("cannot set up a connection pool: {e}"))?;
        {
            let mut client = connect(&config, url).await?;
            migrate(&mut client).await.map_err(|e| {
                anyhow!(
                    "cannot bring the schema of {} up to date: {e:#}",
                    super::mask_password(url)
                )
            })?;
            index_waiting_for(&client).await?;
        }
        let (notices, _) = broadcast::channel(NOTICES);
        let stats = Arc::new(WriterStats::default());
        let writer =
            writer::Writer::start(config.clone(), url.to_owned(), runner.clone(), stats.clone()).await?;
        let listening = listen::start(config, url.to_owned(), notices.clone()).await?;
        Ok(PgStore {
            listening,
            pool,
            writer,
            url: url.to_owned(),
            runner,
            notices,
            stats,
        })
    }

    /// The single `count(*)` that `sql` selects.
    async fn count(&self, sql: &str) -> StoreResult<u64> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(db_error)?;
        let row = client.query_one(&statement, &[]).await.map_err(db_error)?;
        Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
    }

    async fn client(&self) -> StoreResult<deadpool_postgres::Object> {
        self.pool.get().await.map_err(|e| unreachable(&self.url, &e))
    }
}

/// Applies the migrations not applied yet, one runner at a time.
async fn migrate(client: &mut tokio_postgres::Client) -> anyhow::Result<()> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let applied = migrations::runner().run_async(client).await;
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await?;
    applied?;
    Ok(())
}

/// A database error as a store error: a lost connection is `Unavailable`, the rest `Other`.
pub(super) fn db_error(e: tokio_postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(db) if !e.is_closed() => StoreError::Other(anyhow!(
            "PostgreSQL: {} ({}){}",
            db.message(),
            db.code().code(),
            db.detail().map(|d| format!(": {d}")).unwrap_or_default()
        )),
        _ => StoreError::Unavailable(format!("PostgreSQL: {e}")),
    }
}

fn parse_digest(text: &str) -> StoreResult<Digest> {
    text.parse().map_err(|e: String| StoreError::Other(anyhow!(e)))
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// Fills `waiting_for` on the waiting runs written before the column existed. A run written
/// meanwhile (its revision moved) already has it; several runners may do this at once.
async fn index_waiting_for(client: &tokio_postgres::Client) -> anyhow::Result<()> {
    let rows = client
        .query(
            "SELECT id, doc, revision FROM runs WHERE state = 'waiting' AND waiting_for IS NULL",
            &[],
        )
        .await?;
    for row in &rows {
        let id: uuid::Uuid = row.get("id");
        let doc: Vec<u8> = row.get("doc");
        let revision: i64 = row.get("revision");
        let assignees = super::index_of(&doc)?.waiting_for;
        client
            .execute(
                "UPDATE runs SET waiting_for = $2 WHERE id = $1 AND revision = $3 AND waiting_for IS NULL",
                &[&id, &assignees, &revision],
            )
            .await?;
    }
    Ok(())
}

fn stored_run(row: &tokio_postgres::Row) -> StoredRun {
    let id: uuid::Uuid = row.get("id");
    StoredRun {
        id: RunId::from(id),
        doc: row.get("doc"),
        revision: to_u64(row.get("revision")),
        owner: row.get("owner"),
    }
}

/// A lease as a PostgreSQL interval parameter: whole milliseconds.
fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[async_trait]
impl RunStore for PgStore {
    async fn run(&self, id: RunId) -> StoreResult<Option<StoredRun>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &client
                    .prepare_cached("SELECT id, doc, revision, owner FROM runs WHERE id = $1")
                    .await
                    .map_err(db_error)?,
                &[&id.uuid()],
            )
            .await
            .map_err(db_error)?;
        Ok(row.as_ref().map(stored_run))
    }

    async fn runs(
        &self,
        scope: RunScope,
        before: Option<RunId>,
        limit: usize,
        keep: &mut (dyn for<'r> FnMut(&'r StoredRun) -> bool + Send),
    ) -> StoreResult<Vec<StoredRun>> {
        let filter = match scope {
            RunScope::All => "",
            RunScope::Live => "AND state IN ('pending', 'running')",
            RunScope::Waiting => "AND state = 'waiting'",
        };
        let sql = format!(
            "SELECT id, doc, revision, owner FROM runs WHERE ($1::uuid IS NULL OR id < $1) {filter} \
             ORDER BY id DESC LIMIT $2"
        );
        let client = self.client().await?;
        let statement = client.prepare_cached(&sql).await.map_err(db_error)?;
        let mut cursor = before.map(RunId::uuid);
        let mut found = Vec::new();
        while found.len() < limit {
            let rows = client
                .query(&statement, &[&cursor, &PAGE])
                .await
                .map_err(db_error)?;
            for row in &rows {
                let run = stored_run(row);
                cursor = Some(run.id.uuid());
                if keep(&run) {
                    found.push(run);
                    if found.len() >= limit {
                        break;
                    }
                }
            }
            if (rows.len() as i64) < PAGE {
                break;
            }
        }
        Ok(found)
    }

    async fn waiting_count(&self) -> StoreResult<u64> {
        self.count("SELECT count(*) FROM runs WHERE state = 'waiting'")
            .await
    }

    async fn runs_waiting_for(
        &self,
        assignees: &[String],
        before: Option<RunId>,
        limit: usize,
    ) -> StoreResult<Vec<StoredRun>> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT id, doc, revision, owner FROM runs WHERE state = 'waiting' \
                 AND waiting_for && $1 AND ($2::uuid IS NULL OR id < $2) ORDER BY id DESC LIMIT $3",
            )
            .await
            .map_err(db_error)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client
            .query(&statement, &[&assignees, &before.map(RunId::uuid), &limit])
            .await
            .map_err(db_error)?;
        Ok(rows.iter().map(stored_run).collect())
    }

    async fn waiting_runs(&self) -> StoreResult<Vec<RunId>> {
        let client = self.client().await?;
        let rows = client
            .query(
                &client
                    .prepare_cached("SELECT id FROM runs WHERE state = 'waiting' ORDER BY id")
                    .await
                    .map_err(db_error)?,
                &[],
            )
            .await
            .map_err(db_error)?;
        Ok(rows
            .iter()
            .map(|r| RunId::from(r.get::<_, uuid::Uuid>(0)))
            .collect())
    }

    async fn logs(&self, run: RunId, after: Option<u64>, limit: usize) -> StoreResult<Vec<Vec<u8>>> {
        let client = self.client().await?;
        let after = after.map_or(-1, to_i64);
        let rows = client
            .query(
                &client
                    .prepare_cached(
                        "SELECT doc FROM run_logs WHERE run = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                    )
                    .await
                    .map_err(db_error)?,
                &[&run.uuid(), &after, &to_i64(limit as u64)],
            )
            .await
            .map_err(db_error)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn items(
        &self,
        run: RunId,
        step: &str,
        from: u64,
        limit: usize,
    ) -> StoreResult<Vec<(u64, Vec<u8>)>> {
        let client = self.client().await?;
        let rows = client
            .query(
                &client
                    .prepare_cached(
                        "SELECT idx, doc FROM run_items WHERE run = $1 AND step = $2 AND idx >= $3 ORDER BY idx LIMIT $4",
                    )
                    .await
                    .map_err(db_error)?,
                &[&run.uuid(), &step, &to_i64(from), &to_i64(limit as u64)],
            )
            .await
            .map_err(db_error)?;
        Ok(rows.iter().map(|r| (to_u64(r.get(0)), r.get(1))).collect())
    }

    async fn runs_with_inputs(
        &self,
        inputs: &[(String, String)],
        before: Option<RunId>,
        limit: usize,
    ) -> StoreResult<Vec<StoredRun>> {
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        // One join per input: each reads the index by (key, value), never the history.
        let mut sql = String::from("SELECT r.id, r.doc, r.revision, r.owner FROM runs r");
        let mut params: Vec<Box<dyn tokio_postgres::types::ToSql + Sync + Send>> = Vec::new();
        for (n, (key, value)) in inputs.iter().enumerate() {
            let (k, v) = (params.len() + 1, params.len() + 2);
            sql.push_str(&format!(
                " JOIN run_inputs i{n} ON i{n}.run = r.id AND i{n}.key = ${k} AND i{n}.value = ${v}"
            ));
            params.push(Box::new(key.clone()));
            params.push(Box::new(value.clone()));
        }
        let (b, l) = (params.len() + 1, params.len() + 2);
        sql.push_str(&format!(
            " WHERE (${b}::uuid IS NULL OR r.id < ${b}) ORDER BY r.id DESC LIMIT ${l}"
        ));
        params.push(Box::new(before.map(RunId::uuid)));
        params.push(Box::new(to_i64(limit as u64)));
        let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
            .iter()
            .map(|p| &**p as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect();
        let client = self.client().await?;
        let statement = client.prepare_cached(&sql).await.map_err(db_error)?;
        let rows = client.query(&statement, &refs).await.map_err(db_error)?;
        Ok(rows.iter().map(stored_run).collect())
    }

    async fn idempotent_run(&self, key: &str) -> StoreResult<Option<(RunId, Option<Digest>)>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &client
                    .prepare_cached("SELECT run, request FROM idempotency_keys WHERE key = $1")
                    .await
                    .map_err(db_error)?,
                &[&key],
            )
            .await
            .map_err(db_error)?;
        row.map(|r| {
            let run: uuid::Uuid = r.get(0);
            Ok((RunId::from(run), Some(parse_digest(r.get(1))?)))
        })
        .transpose()
    }

    async fn next_timer_due(&self) -> StoreResult<Option<OffsetDateTime>> {
        let client = self.client().await?;
        let row = client
            .query_one(
                &client
                    .prepare_cached(
                        "SELECT min(due) FROM timers WHERE claimed_until IS NULL OR claimed_until < now()",
                    )
                    .await
                    .map_err(db_error)?,
                &[],
            )
            .await
            .map_err(db_error)?;
        Ok(row.get(0))
    }

    async fn claim_due_timers(
        &self,
        runner: &str,
        now: OffsetDateTime,
        lease: Duration,
        limit: usize,
    ) -> StoreResult<Vec<Timer>> {
        let client = self.client().await?;
        let rows = client
            .query(
                &client.prepare_cached("UPDATE timers SET claimed_by = $1, claimed_until = now() + $2 * interval '1 millisecond' \
                 WHERE (run, step, due) IN (SELECT run, step, due FROM timers WHERE due <= $3 \
                   AND (claimed_until IS NULL OR claimed_until < now()) ORDER BY due LIMIT $4 \
                   FOR UPDATE SKIP LOCKED) \
                 RETURNING due, run, step, kind").await.map_err(db_error)?,
                &[&runner, &millis(lease), &now, &to_i64(limit as u64)],
            )
            .await
            .map_err(db_error)?;
        let mut timers: Vec<Timer> = rows
            .iter()
            .map(|r| Timer {
                due: r.get(0),
                run: RunId::from(r.get::<_, uuid::Uuid>(1)),
                step: r.get(2),
                kind: kind_of(r.get(3)),
            })
            .collect();
        timers.sort_by_key(|t| t.due);
        Ok(timers)
    }
}

pub(super) fn kind_code(kind: TimerKind) -> i16 {
    i16::from(kind.code())
}

pub(super) fn kind_of(code: i16) -> TimerKind {
    TimerKind::from_code(u8::try_from(code).unwrap_or(u8::MAX))
}

#[async_trait]
impl CatalogStore for PgStore {
    async fn plugin(&self, name: &str, version: &str) -> StoreResult<Option<StoredPlugin>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &client
                    .prepare_cached(
                        "SELECT name, version, digest, meta FROM plugins WHERE name = $1 AND version = $2",
                    )
                    .await
                    .map_err(db_error)?,
                &[&name, &version],
            )
            .await
            .map_err(db_error)?;
        row.map(|r| stored_plugin(&r)).transpose()
    }

    async fn plugins(&self) -> StoreResult<Vec<StoredPlugin>> {
        let client = self.client().await?;
        let rows = client
            .query(
                &client
                    .prepare_cached("SELECT name, version, digest, meta FROM plugins ORDER BY name, version")
                    .await
                    .map_err(db_error)?,
                &[],
            )
            .await
            .map_err(db_error)?;
        rows.iter().map(stored_plugin).collect()
    }

    async fn plugin_bytes(&self, digest: &Digest) -> StoreResult<Option<Vec<u8>>> {
        self.bytes(
            "SELECT bytes FROM plugin_bytes WHERE digest = $1",
            digest.as_str(),
        )
        .await
    }

    async fn artifact(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        self.bytes("SELECT bytes FROM artifacts WHERE key = $1", key)
            .await
    }

    async fn has_artifact(&self, digest: &Digest) -> StoreResult<bool> {
        let client = self.client().await?;
        let prefix = format!("{digest}/%");
        let row = client
            .query_one(
                &client
                    .prepare_cached("SELECT EXISTS (SELECT 1 FROM artifacts WHERE key LIKE $1)")
                    .await
                    .map_err(db_error)?,
                &[&prefix],
            )
            .await
            .map_err(db_error)?;
        Ok(row.get(0))
    }

    async fn workflow_version(&self, id: &str, version: Option<u64>) -> StoreResult<Option<(u64, Digest)>> {
        let client = self.client().await?;
        let row = match version {
            Some(v) => {
                client
                    .query_opt(
                        &client
                            .prepare_cached(
                                "SELECT version, digest FROM workflows WHERE id = $1 AND version = $2",
                            )
                            .await
                            .map_err(db_error)?,
                        &[&id, &to_i64(v)],
                    )
                    .await
            }
            None => {
                client
                    .query_opt(
                        &client
                            .prepare_cached(
                                "SELECT w.version, w.digest FROM workflows w JOIN active_versions a \
                     ON a.id = w.id AND a.version = w.version WHERE w.id = $1",
                            )
                            .await
                            .map_err(db_error)?,
                        &[&id],
                    )
                    .await
            }
        }
        .map_err(db_error)?;
        row.map(|r| Ok((to_u64(r.get(0)), parse_digest(r.get(1))?)))
            .transpose()
    }

    async fn workflow_versions(&self, id: &str) -> StoreResult<Vec<(u64, Digest)>> {
        let client = self.client().await?;
        let rows = client
            .query(
                &client
                    .prepare_cached("SELECT version, digest FROM workflows WHERE id = $1 ORDER BY version")
                    .await
                    .map_err(db_error)?,
                &[&id],
            )
            .await
            .map_err(db_error)?;
        rows.iter()
            .map(|r| Ok((to_u64(r.get(0)), parse_digest(r.get(1))?)))
            .collect()
    }

    async fn latest_version(&self, id: &str) -> StoreResult<Option<u64>> {
        let client = self.client().await?;
        let row = client
            .query_one(
                &client
                    .prepare_cached("SELECT max(version) FROM workflows WHERE id = $1")
                    .await
                    .map_err(db_error)?,
                &[&id],
            )
            .await
            .map_err(db_error)?;
        Ok(row.get::<_, Option<i64>>(0).map(to_u64))
    }

    async fn published_versions(&self, id: &str) -> StoreResult<Vec<u64>> {
        let client = self.client().await?;
        let rows = client
            .query(
                &client
                    .prepare_cached("SELECT version FROM published_versions WHERE id = $1 ORDER BY version")
                    .await
                    .map_err(db_error)?,
                &[&id],
            )
            .await
            .map_err(db_error)?;
        Ok(rows.iter().map(|r| to_u64(r.get(0))).collect())
    }

    async fn workflows(&self) -> StoreResult<Vec<(String, u64, Digest)>> {
        let client = self.client().await?;
        let rows = client
            .query(
                &client.prepare_cached("SELECT DISTINCT ON (id) id, version, digest FROM workflows ORDER BY id, version DESC").await.map_err(db_error)?,
                &[],
            )
            .await
            .map_err(db_error)?;
        rows.iter()
            .map(|r| Ok((r.get(0), to_u64(r.get(1)), parse_digest(r.get(2))?)))
            .collect()
    }

    async fn definition(&self, digest: &Digest) -> StoreResult<Option<Vec<u8>>> {
        self.bytes("SELECT doc FROM definitions WHERE digest = $1", digest.as_str())
            .await
    }
}

impl PgStore {
    /// The one bytes column `sql` selects for `key`, if there is such a row.
    async fn bytes(&self, sql: &str, key: &str) -> StoreResult<Option<Vec<u8>>> {
        let client = self.client().await?;
        let row = client
            .query_opt(&client.prepare_cached(sql).await.map_err(db_error)?, &[&key])
            .await
            .map_err(db_error)?;
        Ok(row.map(|r| r.get(0)))
    }
}

fn stored_plugin(row: &tokio_postgres::Row) -> StoreResult<StoredPlugin> {
    Ok(StoredPlugin {
        name: row.get(0),
        version: row.get(1),
        digest: parse_digest(row.get(2))?,
        meta: row.get(3),
    })
}

#[async_trait]
impl AccessStore for PgStore {
    async fn token(&self, hash: &str) -> StoreResult<Option<Vec<u8>>> {
        self.bytes("SELECT doc FROM tokens WHERE hash = $1", hash).await
    }

    async fn tokens(&self) -> StoreResult<Vec<(String, Vec<u8>)>> {
        self.pairs("SELECT hash, doc FROM tokens ORDER BY hash").await
    }

    async fn has_tokens(&self) -> StoreResult<bool> {
        let client = self.client().await?;
        let row = client
            .query_one(
                &client
                    .prepare_cached("SELECT EXISTS (SELECT 1 FROM tokens)")
                    .await
                    .map_err(db_error)?,
                &[],
            )
            .await
            .map_err(db_error)?;
        Ok(row.get(0))
    }

    async fn audit(&self, after: Option<u64>, limit: usize) -> StoreResult<Vec<(u64, Vec<u8>)>> {
        self.flush().await?;
        self.numbered(
            "SELECT seq, doc FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2",
            after,
            limit,
        )
        .await
    }

    async fn grants(&self) -> StoreResult<Vec<(String, Vec<u8>)>> {
        self.pairs("SELECT plugin, doc FROM grants ORDER BY plugin").await
    }

    async fn session(&self, id: &str) -> StoreResult<Option<Vec<u8>>> {
        self.bytes("SELECT doc FROM sessions WHERE id = $1", id).await
    }
}

#[async_trait]
impl DocStore for PgStore {
    async fn doc(&self, kind: DocKind, key: &str) -> StoreResult<Option<StoredDoc>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &client
                    .prepare_cached("SELECT revision, doc FROM docs WHERE kind = $1 AND key = $2")
                    .await
                    .map_err(db_error)?,
                &[&i16::from(kind.code()), &key.as_bytes()],
            )
            .await
            .map_err(db_error)?;
        Ok(row.map(|r| StoredDoc {
            kind,
            key: key.to_owned(),
            revision: to_u64(r.get(0)),
            doc: r.get(1),
        }))
    }

    async fn docs(&self, kind: DocKind, from: &str, to: &str, limit: usize) -> StoreResult<Vec<StoredDoc>> {
        let client = self.client().await?;
        let rows = client
            .query(
                &client
                    .prepare_cached(
                        "SELECT key, revision, doc FROM docs WHERE kind = $1 AND key >= $2 AND key < $3 ORDER BY key LIMIT $4",
                    )
                    .await
                    .map_err(db_error)?,
                &[&i16::from(kind.code()), &from.as_bytes(), &to.as_bytes(), &to_i64(limit as u64)],
            )
            .await
            .map_err(db_error)?;
        rows.iter()
            .map(|r| {
                Ok(StoredDoc {
                    kind,
                    key: doc_key(r.get(0))?,
                    revision: to_u64(r.get(1)),
                    doc: r.get(2),
                })
            })
            .collect()
    }
}

/// A keyed document's key, stored as its UTF-8 bytes.
pub(super) fn doc_key(bytes: Vec<u8>) -> StoreResult<String> {
    String::from_utf8(bytes)
        .map_err(|e| StoreError::Other(anyhow::anyhow!("a document key is not UTF-8: {e}")))
}

impl PgStore {
    async fn pairs(&self, sql: &str) -> StoreResult<Vec<(String, Vec<u8>)>> {
        let client = self.client().await?;
        let rows = client
            .query(&client.prepare_cached(sql).await.map_err(db_error)?, &[])
            .await
            .map_err(db_error)?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Rows of (bigserial seq, doc) after `after`, in order.
    async fn numbered(
        &self,
        sql: &str,
        after: Option<u64>,
        limit: usize,
    ) -> StoreResult<Vec<(u64, Vec<u8>)>> {
        let client = self.client().await?;
        // From the start: below every number, 0 included (a copied redb file starts at 0).
        let after = after.map_or(-1, to_i64);
        let rows = client
            .query(
                &client.prepare_cached(sql).await.map_err(db_error)?,
                &[&after, &to_i64(limit as u64)],
            )
            .await
            .map_err(db_error)?;
        Ok(rows.iter().map(|r| (to_u64(r.get(0)), r.get(1))).collect())
    }
}

#[async_trait]
impl ActionStore for PgStore {
    async fn action_rules(&self) -> StoreResult<StoredRules> {
        let mut client = self.client().await?;
        // One snapshot for the revision and both tables.
        let txn = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(db_error)?;
        let revision: i64 = txn
            .query_one(
                &txn.prepare_cached("SELECT value FROM meta WHERE key = 'rules_revision'")
                    .await
                    .map_err(db_error)?,
                &[],
            )
            .await
            .map_err(db_error)?
            .get(0);
        let targets = txn
            .query(
                &txn.prepare_cached("SELECT doc FROM action_targets ORDER BY id")
                    .await
                    .map_err(db_error)?,
                &[],
            )
            .await
            .map_err(db_error)?;
        let executions = txn
            .query(
                &txn.prepare_cached("SELECT doc FROM action_executions ORDER BY key")
                    .await
                    .map_err(db_error)?,
                &[],
            )
            .await
            .map_err(db_error)?;
        txn.commit().await.map_err(db_error)?;
        Ok(StoredRules {
            revision: to_u64(revision),
            targets: targets.iter().map(|r| r.get(0)).collect(),
            executions: executions.iter().map(|r| r.get(0)).collect(),
        })
    }

    async fn rules_revision(&self) -> StoreResult<u64> {
        let client = self.client().await?;
        let row = client
            .query_one(
                &client
                    .prepare_cached("SELECT value FROM meta WHERE key = 'rules_revision'")
                    .await
                    .map_err(db_error)?,
                &[],
            )
            .await
            .map_err(db_error)?;
        Ok(to_u64(row.get(0)))
    }

    async fn outbox_count(&self) -> StoreResult<u64> {
        self.count("SELECT count(*) FROM action_outbox").await
    }

    async fn outbox(&self, limit: usize) -> StoreResult<Vec<(u64, Vec<u8>)>> {
        self.numbered(
            "SELECT seq, doc FROM action_outbox WHERE seq > $1 ORDER BY seq LIMIT $2",
            None,
            limit,
        )
        .await
    }

    async fn claim_outbox(
        &self,
        runner: &str,
        lease: Duration,
        limit: usize,
    ) -> StoreResult<Vec<(u64, Vec<u8>)>> {
        let client = self.client().await?;
        let rows = client
            .query(
                &client.prepare_cached("UPDATE action_outbox SET claimed_by = $1, claimed_until = now() + $2 * interval '1 millisecond' \
                 WHERE seq IN (SELECT seq FROM action_outbox \
                   WHERE claimed_until IS NULL OR claimed_until < now() ORDER BY seq LIMIT $3 \
                   FOR UPDATE SKIP LOCKED) \
                 RETURNING seq, doc").await.map_err(db_error)?,
                &[&runner, &millis(lease), &to_i64(limit as u64)],
            )
            .await
            .map_err(db_error)?;
        let mut entries: Vec<(u64, Vec<u8>)> = rows.iter().map(|r| (to_u64(r.get(0)), r.get(1))).collect();
        entries.sort_by_key(|(seq, _)| *seq);
        Ok(entries)
    }

    async fn action_log(
        &self,
        after: Option<u64>,
        limit: usize,
        keep: &mut (dyn for<'r> FnMut(&'r [u8]) -> bool + Send),
    ) -> StoreResult<Vec<(u64, Vec<u8>)>> {
        let mut found = Vec::new();
        let mut cursor = after;
        while found.len() < limit {
            let page = self
                .numbered(
                    "SELECT seq, doc FROM action_log WHERE seq > $1 ORDER BY seq LIMIT $2",
                    cursor,
                    PAGE as usize,
                )
                .await?;
            let full = page.len() as i64 == PAGE;
            for (seq, doc) in page {
                cursor = Some(seq);
                if keep(&doc) {
                    found.push((seq, doc));
                    if found.len() >= limit {
                        break;
                    }
                }
            }
            if !full {
                break;
            }
        }
        Ok(found)
    }
}

#[async_trait]
impl Coordination for PgStore {
    fn runner(&self) -> &str {
        &self.runner
    }

    fn shared(&self) -> bool {
        true
    }

    async fn heartbeat(&self, address: Option<&str>, lease: Duration) -> StoreResult<()> {
        let client = self.client().await?;
        // Runners long gone and owning nothing are forgotten.
        client
            .execute(
                &client
                    .prepare_cached(
                        "DELETE FROM runners WHERE lease_until < now() - interval '1 hour' \
                 AND NOT EXISTS (SELECT 1 FROM runs WHERE owner = runners.id)",
                    )
                    .await
                    .map_err(db_error)?,
                &[],
            )
            .await
            .map_err(db_error)?;
        client
            .execute(
                &client
                    .prepare_cached(
                        "INSERT INTO runners (id, address, started_at, heartbeat_at, lease_until) \
                 VALUES ($1, $2, now(), now(), now() + $3 * interval '1 millisecond') \
                 ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(), lease_until = EXCLUDED.lease_until, \
                   address = COALESCE(EXCLUDED.address, runners.address)",
                    )
                    .await
                    .map_err(db_error)?,
                &[&self.runner, &address, &millis(lease)],
            )
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn runners(&self) -> StoreResult<Vec<RunnerInfo>> {
        let client = self.client().await?;
        let rows = client
            .query(
                &client
                    .prepare_cached(
                        "SELECT w.id, w.address, w.started_at, w.heartbeat_at, w.lease_until, \
                   (SELECT count(*) FROM runs r WHERE r.owner = w.id) \
                 FROM runners w WHERE w.lease_until > now() - interval '1 minute' ORDER BY w.started_at",
                    )
                    .await
                    .map_err(db_error)?,
                &[],
            )
            .await
            .map_err(db_error)?;
        Ok(rows
            .iter()
            .map(|r| RunnerInfo {
                id: r.get(0),
                address: r.get(1),
                started_at: r.get(2),
                heartbeat_at: r.get(3),
                lease_until: r.get(4),
                runs: to_u64(r.get(5)),
            })
            .collect())
    }

    async fn claim_orphans(&self, limit: usize) -> StoreResult<Vec<StoredRun>> {
        let client = self.client().await?;
        let rows = client
            .query(
                &client
                    .prepare_cached(
                        "UPDATE runs SET owner = $1, revision = revision + 1 \
                 WHERE id IN (SELECT r.id FROM runs r LEFT JOIN runners w ON w.id = r.owner \
                   WHERE r.state IN ('pending', 'running') AND r.owner IS DISTINCT FROM $1 \
                     AND (r.owner IS NULL OR w.id IS NULL OR w.lease_until < now()) \
                   ORDER BY r.id LIMIT $2 FOR UPDATE OF r SKIP LOCKED) \
                 RETURNING id, doc, revision, owner",
                    )
                    .await
                    .map_err(db_error)?,
                &[&self.runner, &to_i64(limit as u64)],
            )
            .await
            .map_err(db_error)?;
        Ok(rows.iter().map(stored_run).collect())
    }

    async fn release(&self) -> StoreResult<()> {
        let client = self.client().await?;
        let released = client
            .execute(
                &client
                    .prepare_cached("UPDATE runs SET owner = NULL, revision = revision + 1 WHERE owner = $1")
                    .await
                    .map_err(db_error)?,
                &[&self.runner],
            )
            .await
            .map_err(db_error)?;
        client
            .execute(
                &client
                    .prepare_cached("DELETE FROM runners WHERE id = $1")
                    .await
                    .map_err(db_error)?,
                &[&self.runner],
            )
            .await
            .map_err(db_error)?;
        if released > 0 {
            client
                .execute(
                    &client
                        .prepare_cached("SELECT pg_notify($1, $2)")
                        .await
                        .map_err(db_error)?,
                    &[&listen::CHANNEL, &"orphans"],
                )
                .await
                .map_err(db_error)?;
        }
        Ok(())
    }

    fn subscribe(&self) -> broadcast::Receiver<Notice> {
        self.notices.subscribe()
    }
}

#[async_trait]
impl Store for PgStore {
    async fn commit(&self, writes: Vec<Write>) -> StoreResult<()> {
        if writes.is_empty() {
            return Ok(());
        }
        self.writer.commit(writes).await
    }

    fn enqueue(&self, writes: Vec<Write>) {
        self.writer.enqueue(writes);
    }

    async fn flush(&self) -> StoreResult<()> {
        self.writer.commit(Vec::new()).await
    }

    fn describe(&self) -> String {
        super::mask_password(&self.url)
    }

    fn writer_stats(&self) -> &WriterStats {
        &self.stats
    }

    async fn used_bytes(&self) -> StoreResult<u64> {
        let client = self.client().await?;
        let row = client
            .query_one("SELECT pg_database_size(current_database())", &[])
            .await
            .map_err(db_error)?;
        Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
    }
}
