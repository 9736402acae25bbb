//! Group commit on PostgreSQL: one writer task per runner with a connection of its own.
//!
//! Callers queue their writes; the writer takes everything queued (up to a bound) into one
//! transaction. In it, the rows of every run written are locked in id order (so two runners'
//! writers never deadlock on them) and their revisions read; each caller's writes are then
//! checked and applied in turn. A run write must name the revision it read; keys that must be
//! free (idempotency keys, plugin versions, workflow versions) and the rule set's revision are
//! checked by the statements that take them, inside a savepoint, so a caller whose condition
//! fails is rolled back alone. Notices for the other runners go out with `pg_notify` in the
//! same transaction, so they arrive exactly when the change is visible.
//!
//! A transaction that fails before `COMMIT` was sent (a lost connection, a deadlock) is tried
//! again on a fresh connection, so no caller's writes are lost or doubled; one whose
//! `COMMIT` got no answer is reported as unavailable (the callers read their runs again).

use super::{db_error, kind_code, listen, to_i64, unreachable};
use crate::store::api::*;
use crate::store::redb::notices_of;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Statement};

/// How long writes that no one waits for may wait for company.
const LAZY_WAIT: Duration = Duration::from_millis(5);
/// Most writes merged into one transaction.
const MAX_BATCH: usize = 4096;
/// How often a transaction that failed for a passing reason is tried again.
const RETRIES: usize = 5;
/// Pause between tries, doubled each time.
const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// Newest actions log entries kept.
const MAX_ACTION_LOG: i64 = 10_000;
/// A notify payload's most bytes (PostgreSQL allows 8000).
const NOTIFY_BYTES: usize = 7_000;

/// Every statement the writer runs, prepared once per connection: a prepared statement is
/// one message, so the statements of a transaction can be sent without waiting for each
/// answer (pipelining).
struct Statements {
    insert_run: Statement,
    update_run: Statement,
    delete_run: Statement,
    delete_run_logs: Statement,
    delete_run_items: Statement,
    delete_run_inputs: Statement,
    upsert_item: Statement,
    insert_input: Statement,
    insert_log: Statement,
    insert_timer: Statement,
    delete_timer: Statement,
    take_idempotency: Statement,
    delete_idempotency: Statement,
    take_plugin: Statement,
    insert_plugin_bytes: Statement,
    delete_plugin: Statement,
    upsert_artifact: Statement,
    take_workflow: Statement,
    replace_workflow: Statement,
    insert_definition: Statement,
    publish: Statement,
    activate: Statement,
    delete_workflow: Statement,
    delete_published: Statement,
    delete_active: Statement,
    upsert_token: Statement,
    insert_audit: Statement,
    upsert_grant: Statement,
    delete_grant: Statement,
    upsert_session: Statement,
    delete_session: Statement,
    upsert_target: Statement,
    delete_target: Statement,
    upsert_execution: Statement,
    delete_execution: Statement,
    bump_rules: Statement,
    insert_outbox: Statement,
    update_outbox: Statement,
    delete_outbox: Statement,
    insert_action_log: Statement,
    trim_action_log: Statement,
    notify: Statement,
    insert_doc: Statement,
    upsert_doc: Statement,
    update_doc: Statement,
    delete_doc: Statement,
    delete_doc_at: Statement,
}

/// `change` (an INSERT or UPDATE) made to fail when it changes no row: the count divides one,
/// so a condition that does not hold ends the transaction with `division_by_zero`, which the
/// writer reads as that caller's refusal. This is what lets a whole group go out in one flight.
fn expect_one(change: &str) -> String {
    format!("WITH changed AS ({change} RETURNING 1) SELECT 1 / (SELECT count(*)::int FROM changed)")
}

impl Statements {
    async fn prepare(client: &Client) -> Result<Statements, tokio_postgres::Error> {
        Ok(Statements {
            insert_run: client.prepare("INSERT INTO runs (id, doc, revision, owner, state, workflow, started_by, created_at, waiting_for) VALUES ($1, $2, 1, $3, $4, $5, $6, $7, $8)").await?,
            update_run: client.prepare(&expect_one("UPDATE runs SET doc = $2, revision = $3 + 1, owner = $4, state = $5, waiting_for = $6 WHERE id = $1 AND revision = $3")).await?,
            delete_run: client.prepare("DELETE FROM runs WHERE id = $1").await?,
            delete_run_logs: client.prepare("DELETE FROM run_logs WHERE run = $1").await?,
            delete_run_items: client.prepare("DELETE FROM run_items WHERE run = $1").await?,
            delete_run_inputs: client.prepare("DELETE FROM run_inputs WHERE run = $1").await?,
            upsert_item: client.prepare("INSERT INTO run_items (run, step, idx, doc) VALUES ($1, $2, $3, $4) ON CONFLICT (run, step, idx) DO UPDATE SET doc = EXCLUDED.doc").await?,
            insert_input: client.prepare("INSERT INTO run_inputs (key, value, run) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING").await?,
            insert_log: client.prepare("INSERT INTO run_logs (run, seq, doc) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING").await?,
            insert_timer: client.prepare("INSERT INTO timers (due, run, step, kind) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING").await?,
            delete_timer: client.prepare("DELETE FROM timers WHERE run = $1 AND step = $2 AND due = $3").await?,
            take_idempotency: client.prepare("INSERT INTO idempotency_keys (key, run, request) VALUES ($1, $2, $3)").await?,
            delete_idempotency: client.prepare("DELETE FROM idempotency_keys WHERE key = $1").await?,
            take_plugin: client.prepare(&expect_one("INSERT INTO plugins (name, version, digest, meta) VALUES ($1, $2, $3, $4) ON CONFLICT (name, version) DO UPDATE SET meta = EXCLUDED.meta WHERE plugins.digest = EXCLUDED.digest")).await?,
            insert_plugin_bytes: client.prepare("INSERT INTO plugin_bytes (digest, bytes) VALUES ($1, $2) ON CONFLICT DO NOTHING").await?,
            delete_plugin: client.prepare("WITH gone AS (DELETE FROM plugins WHERE name = $1 AND version = $2 RETURNING digest) DELETE FROM plugin_bytes WHERE digest IN (SELECT digest FROM gone) AND NOT EXISTS (SELECT 1 FROM plugins p WHERE p.digest = plugin_bytes.digest AND NOT (p.name = $1 AND p.version = $2))").await?,
            upsert_artifact: client.prepare("INSERT INTO artifacts (key, bytes) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET bytes = EXCLUDED.bytes").await?,
            take_workflow: client.prepare("INSERT INTO workflows (id, version, digest) VALUES ($1, $2, $3)").await?,
            replace_workflow: client.prepare(&expect_one("UPDATE workflows SET digest = $3 WHERE id = $1 AND version = $2 AND digest = $4")).await?,
            insert_definition: client.prepare("INSERT INTO definitions (digest, doc) VALUES ($1, $2) ON CONFLICT DO NOTHING").await?,
            publish: client.prepare("INSERT INTO published_versions (id, version) VALUES ($1, $2) ON CONFLICT DO NOTHING").await?,
            activate: client.prepare("INSERT INTO active_versions (id, version) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version").await?,
            delete_workflow: client.prepare("DELETE FROM workflows WHERE id = $1").await?,
            delete_published: client.prepare("DELETE FROM published_versions WHERE id = $1").await?,
            delete_active: client.prepare("DELETE FROM active_versions WHERE id = $1").await?,
            upsert_token: client.prepare("INSERT INTO tokens (hash, doc) VALUES ($1, $2) ON CONFLICT (hash) DO UPDATE SET doc = EXCLUDED.doc").await?,
            insert_audit: client.prepare("INSERT INTO audit (doc) VALUES ($1)").await?,
            upsert_grant: client.prepare("INSERT INTO grants (plugin, doc) VALUES ($1, $2) ON CONFLICT (plugin) DO UPDATE SET doc = EXCLUDED.doc").await?,
            delete_grant: client.prepare("DELETE FROM grants WHERE plugin = $1").await?,
            upsert_session: client.prepare("INSERT INTO sessions (id, doc) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET doc = EXCLUDED.doc").await?,
            delete_session: client.prepare("DELETE FROM sessions WHERE id = $1").await?,
            insert_doc: client.prepare("INSERT INTO docs (kind, key, revision, doc) VALUES ($1, $2, 1, $3)").await?,
            upsert_doc: client.prepare("INSERT INTO docs (kind, key, revision, doc) VALUES ($1, $2, 1, $3) ON CONFLICT (kind, key) DO UPDATE SET doc = EXCLUDED.doc, revision = docs.revision + 1").await?,
            update_doc: client.prepare(&expect_one("UPDATE docs SET doc = $3, revision = revision + 1 WHERE kind = $1 AND key = $2 AND revision = $4")).await?,
            delete_doc: client.prepare("DELETE FROM docs WHERE kind = $1 AND key = $2").await?,
            delete_doc_at: client.prepare(&expect_one("DELETE FROM docs WHERE kind = $1 AND key = $2 AND revision = $3")).await?,
            upsert_target: client.prepare("INSERT INTO action_targets (id, doc) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET doc = EXCLUDED.doc").await?,
            delete_target: client.prepare("DELETE FROM action_targets WHERE id = $1").await?,
            upsert_execution: client.prepare("INSERT INTO action_executions (key, doc) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET doc = EXCLUDED.doc").await?,
            delete_execution: client.prepare("DELETE FROM action_executions WHERE key = $1").await?,
            bump_rules: client.prepare(&expect_one("UPDATE meta SET value = value + 1 WHERE key = 'rules_revision' AND value = $1")).await?,
            insert_outbox: client.prepare("INSERT INTO action_outbox (doc) VALUES ($1)").await?,
            update_outbox: client.prepare("UPDATE action_outbox SET doc = $2 WHERE seq = $1").await?,
            delete_outbox: client.prepare("DELETE FROM action_outbox WHERE seq = $1").await?,
            insert_action_log: client.prepare("INSERT INTO action_log (doc) VALUES ($1)").await?,
            trim_action_log: client.prepare("DELETE FROM action_log WHERE seq <= (SELECT max(seq) FROM action_log) - $1").await?,
            notify: client.prepare("SELECT pg_notify($1, $2)").await?,
        })
    }
}

struct Batch {
    writes: Vec<Write>,
    done: oneshot::Sender<Result<(), Refusal>>,
    awaited: bool,
}

/// Why one caller's writes were refused.
#[derive(Clone, Debug)]
enum Refusal {
    Stale(String),
    Conflict(String),
    Unavailable(String),
    Failed(String),
}

impl From<Refusal> for StoreError {
    fn from(r: Refusal) -> StoreError {
        match r {
            Refusal::Stale(m) => StoreError::Stale(m),
            Refusal::Conflict(m) => StoreError::Conflict(m),
            Refusal::Unavailable(m) => StoreError::Unavailable(m),
            Refusal::Failed(m) => StoreError::Other(anyhow::anyhow!(m)),
        }
    }
}

/// The queue to the writer task.
#[derive(Clone)]
pub struct Writer {
    queue: mpsc::UnboundedSender<Batch>,
}

impl Writer {
    /// Connects the writer's own connection and starts the task.
    pub async fn start(
        config: tokio_postgres::Config,
        url: String,
        runner: String,
        stats: Arc<WriterStats>,
    ) -> StoreResult<Writer> {
        let connection = Connection::open(&config, &url).await?;
        let (queue, batches) = mpsc::unbounded_channel();
        tokio::spawn(write_loop(connection, config, url, runner, batches, stats));
        Ok(Writer { queue })
    }

    /// Queues `writes` and waits until they are durable (or refused).
    pub async fn commit(&self, writes: Vec<Write>) -> StoreResult<()> {
        let (done, wait) = oneshot::channel();
        self.queue
            .send(Batch {
                writes,
                done,
                awaited: true,
            })
            .map_err(|_| StoreError::Unavailable("the store's writer has stopped".into()))?;
        match wait.await {
            Ok(result) => result.map_err(StoreError::from),
            Err(_) => Err(StoreError::Unavailable("the store's writer has stopped".into())),
        }
    }

    /// Queues `writes` without waiting for them; they ride with the next commit.
    pub fn enqueue(&self, writes: Vec<Write>) {
        let (done, _) = oneshot::channel();
        let _ = self.queue.send(Batch {
            writes,
            done,
            awaited: false,
        });
    }
}

/// The writer's connection and its prepared statements.
struct Connection {
    client: Client,
    statements: Statements,
}

impl Connection {
    async fn open(config: &tokio_postgres::Config, url: &str) -> StoreResult<Connection> {
        let client = super::connect(config, url).await?;
        let statements = Statements::prepare(&client).await.map_err(db_error)?;
        Ok(Connection { client, statements })
    }
}

async fn write_loop(
    mut connection: Connection,
    config: tokio_postgres::Config,
    url: String,
    runner: String,
    mut batches: mpsc::UnboundedReceiver<Batch>,
    stats: Arc<WriterStats>,
) {
    while let Some(first) = batches.recv().await {
        let mut group = vec![first];
        let mut count = group[0].writes.len();
        while count < MAX_BATCH {
            let more = match batches.try_recv() {
                Ok(more) => more,
                // Writes no one waits for ride along with the next awaited batch rather than
                // cost a sync of their own, unless none comes soon.
                Err(_) if !group.iter().any(|b| b.awaited) => {
                    match tokio::time::timeout(LAZY_WAIT, batches.recv()).await {
                        Ok(Some(more)) => more,
                        _ => break,
                    }
                }
                Err(_) => break,
            };
            count += more.writes.len();
            group.push(more);
        }
        let started = std::time::Instant::now();
        let results = commit_group(&mut connection, &config, &url, &runner, &group).await;
        if let Ok(results) = &results {
            crate::telemetry::metrics::metrics().store_committed("postgres", count, started.elapsed());
            let applied: Vec<&Write> = group
                .iter()
                .zip(results)
                .filter(|(_, r)| r.is_ok())
                .flat_map(|(b, _)| &b.writes)
                .collect();
            stats.transactions.fetch_add(1, Ordering::Relaxed);
            stats.writes.fetch_add(applied.len() as u64, Ordering::Relaxed);
            stats.bytes.fetch_add(
                applied.iter().map(|w| w.document_len()).sum::<usize>() as u64,
                Ordering::Relaxed,
            );
        }
        let results: Vec<Result<(), Refusal>> = match results {
            Ok(results) => results,
            Err(refusal) => {
                tracing::error!("store commit failed: {refusal:?}");
                group.iter().map(|_| Err(refusal.clone())).collect()
            }
        };
        for (batch, result) in group.into_iter().zip(results) {
            let _ = batch.done.send(result);
        }
    }
}

/// Commits a group, retrying on a fresh connection when it failed for a passing reason
/// before `COMMIT` was sent.
async fn commit_group(
    connection: &mut Connection,
    config: &tokio_postgres::Config,
    url: &str,
    runner: &str,
    group: &[Batch],
) -> Result<Vec<Result<(), Refusal>>, Refusal> {
    let mut pause = RETRY_PAUSE;
    for attempt in 0..=RETRIES {
        if connection.client.is_closed() {
            match Connection::open(config, url).await {
                Ok(fresh) => *connection = fresh,
                Err(e) => {
                    if attempt == RETRIES {
                        return Err(Refusal::Unavailable(e.to_string()));
                    }
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                    continue;
                }
            }
        }
        let Connection { client, statements } = connection;
        match try_group(client, statements, runner, group).await {
            Ok(results) => return Ok(results),
            Err(Failure::Retry(e)) if attempt < RETRIES => {
                tracing::warn!("retrying a commit: {e}");
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
            Err(Failure::Retry(e)) => return Err(Refusal::Unavailable(e)),
            Err(Failure::Unknown(e)) => {
                return Err(Refusal::Unavailable(format!(
                    "{}: the commit got no answer ({e}); read the data again",
                    super::super::mask_password(url)
                )))
            }
            Err(Failure::Fatal(e)) => return Err(Refusal::Failed(e)),
        }
    }
    Err(Refusal::Unavailable(
        unreachable(url, &"too many retries").to_string(),
    ))
}

/// How a transaction failed.
enum Failure {
    /// Before `COMMIT`, for a passing reason: nothing was written; try again.
    Retry(String),
    /// `COMMIT` was sent and got no answer: it may or may not have happened.
    Unknown(String),
    /// The statements themselves are wrong; trying again would fail again.
    Fatal(String),
}

fn failure(e: tokio_postgres::Error) -> Failure {
    use tokio_postgres::error::SqlState;
    let passing = e.is_closed()
        || e.as_db_error().is_none()
        || e.code().is_some_and(|c| {
            *c == SqlState::T_R_DEADLOCK_DETECTED
                || *c == SqlState::T_R_SERIALIZATION_FAILURE
                || *c == SqlState::ADMIN_SHUTDOWN
                || *c == SqlState::CANNOT_CONNECT_NOW
        });
    if passing {
        Failure::Retry(e.to_string())
    } else {
        Failure::Fatal(db_error(e).to_string())
    }
}

/// One try at committing a group in one round trip: `BEGIN`, every caller's statements, the
/// notices and `COMMIT` go out before any answer is awaited. A caller's conditions (the
/// revision it read, a key it takes) are statements that fail when they do not hold; the
/// failure aborts the transaction, the `COMMIT` after it rolls back, and the group is sent
/// again without that caller, who is refused. Conflicts are rare, so this is nearly always
/// one flight.
async fn try_group(
    client: &mut Client,
    st: &Statements,
    runner: &str,
    group: &[Batch],
) -> Result<Vec<Result<(), Refusal>>, Failure> {
    let client: &Client = client;
    let mut refused: Vec<Option<Refusal>> = vec![None; group.len()];
    loop {
        let mut flight = Flight::default();
        flight.push(
            None,
            Box::pin(async move { client.batch_execute("BEGIN").await.map(|()| 0) }),
        );
        let mut applied: Vec<&Write> = Vec::new();
        for (n, batch) in group.iter().enumerate() {
            if refused[n].is_none() {
                for write in &batch.writes {
                    statements_for(client, st, write, n, &mut flight);
                }
                applied.extend(&batch.writes);
            }
        }
        if applied
            .iter()
            .any(|w| matches!(w, Write::Action(ActionWrite::Log(_))))
        {
            flight.push(
                None,
                Box::pin(async move { client.execute(&st.trim_action_log, &[&MAX_ACTION_LOG]).await }),
            );
        }
        for payload in notify_payloads(&applied, runner) {
            flight.push(
                None,
                Box::pin(async move { client.execute(&st.notify, &[&listen::CHANNEL, &payload]).await }),
            );
        }
        flight.push(
            None,
            Box::pin(async move { client.batch_execute("COMMIT").await.map(|()| 0) }),
        );
        let (refusals, answers) = flight.send().await;
        let commit = answers.len() - 1;
        match answers
            .into_iter()
            .enumerate()
            .find_map(|(i, a)| a.err().map(|e| (i, e)))
        {
            None => return Ok(refused.into_iter().map(|r| r.map_or(Ok(()), Err)).collect()),
            Some((i, e)) if i == commit => {
                return Err(if e.is_closed() || e.as_db_error().is_none() {
                    Failure::Unknown(e.to_string())
                } else {
                    failure(e)
                })
            }
            Some((i, e)) => match (&refusals[i], e.code()) {
                (Some((caller, refusal)), Some(code))
                    if *code == SqlState::DIVISION_BY_ZERO || *code == SqlState::UNIQUE_VIOLATION =>
                {
                    refused[*caller] = Some(refusal.clone());
                }
                _ => return Err(failure(e)),
            },
        }
    }
}

/// The statements of one transaction, in the order they are sent, each with the caller it
/// refuses (and how) when it fails on its condition.
#[derive(Default)]
struct Flight<'a> {
    statements: Vec<Pending<'a>>,
    refusals: Vec<Option<(usize, Refusal)>>,
}

impl<'a> Flight<'a> {
    fn push(&mut self, refuses: Option<(usize, Refusal)>, statement: Pending<'a>) {
        self.statements.push(statement);
        self.refusals.push(refuses);
    }

    /// Sends every statement in order (a statement goes out when its future is first
    /// polled), then awaits the answers.
    async fn send(
        self,
    ) -> (
        Vec<Option<(usize, Refusal)>>,
        Vec<Result<u64, tokio_postgres::Error>>,
    ) {
        let mut statements = self.statements;
        let mut answers: Vec<Option<Result<u64, tokio_postgres::Error>>> =
            Vec::with_capacity(statements.len());
        for statement in &mut statements {
            answers.push(match futures_util::poll!(statement.as_mut()) {
                std::task::Poll::Ready(answer) => Some(answer),
                std::task::Poll::Pending => None,
            });
        }
        let mut done = Vec::with_capacity(statements.len());
        for (statement, answer) in statements.into_iter().zip(answers) {
            done.push(match answer {
                Some(answer) => answer,
                None => statement.await,
            });
        }
        (self.refusals, done)
    }
}

/// A statement with its parameters, to be sent in order with the others of a transaction.
type Pending<'a> = Pin<Box<dyn Future<Output = Result<u64, tokio_postgres::Error>> + Send + 'a>>;

/// The statements that apply `write` of caller `caller`, in order; those that check a
/// condition carry the refusal the caller gets when it does not hold.
fn statements_for<'a>(
    txn: &'a Client,
    st: &'a Statements,
    write: &'a Write,
    caller: usize,
    out: &mut Flight<'a>,
) {
    let mut guarded = |refusal: Option<Refusal>,
                       statement: &'a Statement,
                       params: Vec<Box<dyn ToSql + Sync + Send + 'a>>| {
        out.push(
            refusal.map(|r| (caller, r)),
            Box::pin(async move {
                let refs: Vec<&(dyn ToSql + Sync)> =
                    params.iter().map(|p| &**p as &(dyn ToSql + Sync)).collect();
                txn.execute(statement, &refs).await
            }),
        );
    };
    match write {
        Write::Run {
            id,
            doc,
            index,
            expect: None,
            owner,
        } => {
            guarded(
                Some(Refusal::Conflict(format!("run {id} exists already"))),
                &st.insert_run,
                vec![
                    Box::new(id.uuid()),
                    Box::new(doc.as_slice()),
                    Box::new(owner.as_deref()),
                    Box::new(index.state.as_str()),
                    Box::new(index.workflow.as_str()),
                    Box::new(index.started_by.as_str()),
                    Box::new(index.created_at),
                    Box::new(index.waiting_for.clone()),
                ],
            );
            for (key, value) in &index.inputs {
                guarded(
                    None,
                    &st.insert_input,
                    vec![
                        Box::new(key.as_str()),
                        Box::new(value.as_str()),
                        Box::new(id.uuid()),
                    ],
                );
            }
        }
        Write::Item {
            run: id,
            step,
            index,
            doc,
        } => guarded(
            None,
            &st.upsert_item,
            vec![
                Box::new(id.uuid()),
                Box::new(step.as_str()),
                Box::new(to_i64(*index)),
                Box::new(doc.as_slice()),
            ],
        ),
        Write::Run {
            id,
            doc,
            index,
            expect: Some(expect),
            owner,
        } => guarded(
            Some(Refusal::Stale(format!(
                "run {id} is no longer at revision {expect}: it changed since it was read"
            ))),
            &st.update_run,
            vec![
                Box::new(id.uuid()),
                Box::new(doc.as_slice()),
                Box::new(to_i64(*expect)),
                Box::new(owner.as_deref()),
                Box::new(index.state.as_str()),
                Box::new(index.waiting_for.clone()),
            ],
        ),
        Write::DeleteRun(id) => {
            guarded(None, &st.delete_run, vec![Box::new(id.uuid())]);
            guarded(None, &st.delete_run_logs, vec![Box::new(id.uuid())]);
            guarded(None, &st.delete_run_items, vec![Box::new(id.uuid())]);
            guarded(None, &st.delete_run_inputs, vec![Box::new(id.uuid())]);
        }
        Write::Log { run: id, seq, doc } => guarded(
            None,
            &st.insert_log,
            vec![
                Box::new(id.uuid()),
                Box::new(to_i64(*seq)),
                Box::new(doc.as_slice()),
            ],
        ),
        Write::Timer(t) => guarded(
            None,
            &st.insert_timer,
            vec![
                Box::new(t.due),
                Box::new(t.run.uuid()),
                Box::new(t.step.as_str()),
                Box::new(kind_code(t.kind)),
            ],
        ),
        Write::DeleteTimer(t) => guarded(
            None,
            &st.delete_timer,
            vec![Box::new(t.run.uuid()), Box::new(t.step.as_str()), Box::new(t.due)],
        ),
        Write::DeleteIdempotency(key) => guarded(None, &st.delete_idempotency, vec![Box::new(key.as_str())]),
        Write::DeletePlugin { name, version } => guarded(
            None,
            &st.delete_plugin,
            vec![Box::new(name.as_str()), Box::new(version.as_str())],
        ),
        Write::Artifact { key, bytes } => guarded(
            None,
            &st.upsert_artifact,
            vec![Box::new(key.as_str()), Box::new(bytes.as_slice())],
        ),
        Write::Publish { id, version } => {
            guarded(
                None,
                &st.publish,
                vec![Box::new(id.as_str()), Box::new(to_i64(*version))],
            );
            guarded(
                None,
                &st.activate,
                vec![Box::new(id.as_str()), Box::new(to_i64(*version))],
            );
        }
        Write::DeleteWorkflow(id) => {
            guarded(None, &st.delete_workflow, vec![Box::new(id.as_str())]);
            guarded(None, &st.delete_published, vec![Box::new(id.as_str())]);
            guarded(None, &st.delete_active, vec![Box::new(id.as_str())]);
        }
        Write::Token { hash, doc } => guarded(
            None,
            &st.upsert_token,
            vec![Box::new(hash.as_str()), Box::new(doc.as_slice())],
        ),
        Write::Audit(doc) => guarded(None, &st.insert_audit, vec![Box::new(doc.as_slice())]),
        Write::Grant { plugin, doc } => match doc {
            Some(doc) => guarded(
                None,
                &st.upsert_grant,
                vec![Box::new(plugin.as_str()), Box::new(doc.as_slice())],
            ),
            None => guarded(None, &st.delete_grant, vec![Box::new(plugin.as_str())]),
        },
        Write::Session { id, doc } => match doc {
            Some(doc) => guarded(
                None,
                &st.upsert_session,
                vec![Box::new(id.as_str()), Box::new(doc.as_slice())],
            ),
            None => guarded(None, &st.delete_session, vec![Box::new(id.as_str())]),
        },
        Write::Action(action) => match action {
            ActionWrite::Target { id, doc } => guarded(
                None,
                &st.upsert_target,
                vec![Box::new(id.as_str()), Box::new(doc.as_slice())],
            ),
            ActionWrite::DeleteTarget(id) => guarded(None, &st.delete_target, vec![Box::new(id.as_str())]),
            ActionWrite::Execution { key, doc } => guarded(
                None,
                &st.upsert_execution,
                vec![Box::new(key.as_str()), Box::new(doc.as_slice())],
            ),
            ActionWrite::DeleteExecution(key) => {
                guarded(None, &st.delete_execution, vec![Box::new(key.as_str())])
            }
            ActionWrite::Outbox(doc) => guarded(None, &st.insert_outbox, vec![Box::new(doc.as_slice())]),
            ActionWrite::UpdateOutbox { seq, doc } => guarded(
                None,
                &st.update_outbox,
                vec![Box::new(to_i64(*seq)), Box::new(doc.as_slice())],
            ),
            ActionWrite::DeleteOutbox(seq) => guarded(None, &st.delete_outbox, vec![Box::new(to_i64(*seq))]),
            ActionWrite::Log(doc) => guarded(None, &st.insert_action_log, vec![Box::new(doc.as_slice())]),
            ActionWrite::RulesRevision { expect } => guarded(
                Some(Refusal::Stale(
                    "the action rules changed since they were read; try again".into(),
                )),
                &st.bump_rules,
                vec![Box::new(to_i64(*expect))],
            ),
        },
        Write::Doc {
            kind,
            key,
            doc,
            condition,
        } => {
            let what = format!("{kind:?} {key:?}");
            let (kind, key) = (i16::from(kind.code()), key.as_bytes());
            match (doc, condition) {
                (Some(doc), DocCondition::Any) => guarded(
                    None,
                    &st.upsert_doc,
                    vec![Box::new(kind), Box::new(key), Box::new(doc.as_slice())],
                ),
                (Some(doc), DocCondition::Absent) => guarded(
                    Some(Refusal::Conflict(format!("{what} exists already"))),
                    &st.insert_doc,
                    vec![Box::new(kind), Box::new(key), Box::new(doc.as_slice())],
                ),
                (Some(doc), DocCondition::At(revision)) => guarded(
                    Some(Refusal::Stale(format!("{what} changed since it was read"))),
                    &st.update_doc,
                    vec![
                        Box::new(kind),
                        Box::new(key),
                        Box::new(doc.as_slice()),
                        Box::new(to_i64(*revision)),
                    ],
                ),
                (None, DocCondition::At(revision)) => guarded(
                    Some(Refusal::Stale(format!("{what} changed since it was read"))),
                    &st.delete_doc_at,
                    vec![Box::new(kind), Box::new(key), Box::new(to_i64(*revision))],
                ),
                (None, _) => guarded(None, &st.delete_doc, vec![Box::new(kind), Box::new(key)]),
            }
        }
        Write::Idempotency { key, run, request } => guarded(
            Some(Refusal::Conflict(format!("the idempotency key {key:?} is taken"))),
            &st.take_idempotency,
            vec![
                Box::new(key.as_str()),
                Box::new(run.uuid()),
                Box::new(request.as_str()),
            ],
        ),
        Write::Plugin {
            name,
            version,
            digest,
            meta,
            bytes,
        } => {
            guarded(
                Some(Refusal::Conflict(format!(
                    "{name}@{version} already exists with another digest"
                ))),
                &st.take_plugin,
                vec![
                    Box::new(name.as_str()),
                    Box::new(version.as_str()),
                    Box::new(digest.as_str()),
                    Box::new(meta.as_slice()),
                ],
            );
            guarded(
                None,
                &st.insert_plugin_bytes,
                vec![Box::new(digest.as_str()), Box::new(bytes.as_ref())],
            );
        }
        Write::Workflow {
            id,
            version,
            digest,
            definition,
            replaces,
        } => {
            match replaces {
                None => guarded(
                    Some(Refusal::Conflict(format!(
                        "workflow {id} version {version} exists already"
                    ))),
                    &st.take_workflow,
                    vec![
                        Box::new(id.as_str()),
                        Box::new(to_i64(*version)),
                        Box::new(digest.as_str()),
                    ],
                ),
                Some(old) => guarded(
                    Some(Refusal::Stale(format!(
                        "workflow {id} version {version} changed since it was read"
                    ))),
                    &st.replace_workflow,
                    vec![
                        Box::new(id.as_str()),
                        Box::new(to_i64(*version)),
                        Box::new(digest.as_str()),
                        Box::new(old.as_str()),
                    ],
                ),
            }
            guarded(
                None,
                &st.insert_definition,
                vec![Box::new(digest.as_str()), Box::new(definition.as_slice())],
            );
        }
    }
}

/// The notices of `applied`, as few `pg_notify` payloads as fit: one notice per line.
fn notify_payloads(applied: &[&Write], runner: &str) -> Vec<String> {
    let mut payloads = Vec::new();
    let mut current = String::new();
    for notice in notices_of(applied, runner) {
        let line = listen::encode(&notice);
        if !current.is_empty() && current.len() + line.len() + 1 > NOTIFY_BYTES {
            payloads.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push('\n');
        }
        current.push_str(&line);
    }
    if !current.is_empty() {
        payloads.push(current);
    }
    payloads
}
