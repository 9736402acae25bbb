//! Every record of the database, read and written as it is, for `weft db copy`.
//!
//! The export streams each table in key order from one repeatable-read snapshot; the import
//! writes a batch in one transaction and moves the sequences of numbered tables past what it
//! wrote, so the next audit entry or event continues the numbering.

use super::{db_error, kind_code, kind_of, parse_digest, stored_plugin, stored_run, to_i64, to_u64, PgStore};
use crate::names::RunId;
use crate::store::api::*;
use async_trait::async_trait;
use futures_util::{pin_mut, TryStreamExt};
use tokio::sync::mpsc;
use tokio_postgres::types::ToSql;

/// Each table's query and how a row becomes a record, in export order.
type Reader = fn(&tokio_postgres::Row) -> StoreResult<Record>;

const TABLES: &[(&str, Reader)] = &[
    ("SELECT id, doc, revision, owner FROM runs ORDER BY id", |r| {
        Ok(Record::Run(stored_run(r)))
    }),
    ("SELECT run, seq, doc FROM run_logs ORDER BY run, seq", |r| {
        Ok(Record::Log {
            run: RunId::from(r.get::<_, uuid::Uuid>(0)),
            seq: to_u64(r.get(1)),
            doc: r.get(2),
        })
    }),
    (
        "SELECT run, step, idx, doc FROM run_items ORDER BY run, step, idx",
        |r| {
            Ok(Record::Item {
                run: RunId::from(r.get::<_, uuid::Uuid>(0)),
                step: r.get(1),
                index: to_u64(r.get(2)),
                doc: r.get(3),
            })
        },
    ),
    (
        "SELECT key, value, run FROM run_inputs ORDER BY key, value, run",
        |r| {
            Ok(Record::InputIndex {
                key: r.get(0),
                value: r.get(1),
                run: RunId::from(r.get::<_, uuid::Uuid>(2)),
            })
        },
    ),
    (
        "SELECT due, run, step, kind FROM timers ORDER BY due, run, step",
        |r| {
            Ok(Record::Timer(Timer {
                due: r.get(0),
                run: RunId::from(r.get::<_, uuid::Uuid>(1)),
                step: r.get(2),
                kind: kind_of(r.get(3)),
            }))
        },
    ),
    (
        "SELECT key, run, request FROM idempotency_keys ORDER BY key",
        |r| {
            let request: &str = r.get(2);
            Ok(Record::Idempotency {
                key: r.get(0),
                run: RunId::from(r.get::<_, uuid::Uuid>(1)),
                request: (!request.is_empty()).then(|| parse_digest(request)).transpose()?,
            })
        },
    ),
    (
        "SELECT name, version, digest, meta FROM plugins ORDER BY name, version",
        |r| Ok(Record::Plugin(stored_plugin(r)?)),
    ),
    ("SELECT digest, bytes FROM plugin_bytes ORDER BY digest", |r| {
        Ok(Record::PluginBytes {
            digest: parse_digest(r.get(0))?,
            bytes: r.get(1),
        })
    }),
    ("SELECT key, bytes FROM artifacts ORDER BY key", |r| {
        Ok(Record::Artifact {
            key: r.get(0),
            bytes: r.get(1),
        })
    }),
    ("SELECT digest, doc FROM definitions ORDER BY digest", |r| {
        Ok(Record::Definition {
            digest: parse_digest(r.get(0))?,
            doc: r.get(1),
        })
    }),
    (
        "SELECT id, version, digest FROM workflows ORDER BY id, version",
        |r| {
            Ok(Record::WorkflowVersion {
                id: r.get(0),
                version: to_u64(r.get(1)),
                digest: parse_digest(r.get(2))?,
            })
        },
    ),
    (
        "SELECT id, version FROM published_versions ORDER BY id, version",
        |r| {
            Ok(Record::Published {
                id: r.get(0),
                version: to_u64(r.get(1)),
            })
        },
    ),
    ("SELECT id, version FROM active_versions ORDER BY id", |r| {
        Ok(Record::ActiveVersion {
            id: r.get(0),
            version: to_u64(r.get(1)),
        })
    }),
    ("SELECT hash, doc FROM tokens ORDER BY hash", |r| {
        Ok(Record::Token {
            hash: r.get(0),
            doc: r.get(1),
        })
    }),
    ("SELECT seq, doc FROM audit ORDER BY seq", |r| {
        Ok(Record::Audit {
            seq: to_u64(r.get(0)),
            doc: r.get(1),
        })
    }),
    ("SELECT plugin, doc FROM grants ORDER BY plugin", |r| {
        Ok(Record::Grant {
            plugin: r.get(0),
            doc: r.get(1),
        })
    }),
    ("SELECT id, doc FROM sessions ORDER BY id", |r| {
        Ok(Record::Session {
            id: r.get(0),
            doc: r.get(1),
        })
    }),
    ("SELECT id, doc FROM action_targets ORDER BY id", |r| {
        Ok(Record::Target {
            id: r.get(0),
            doc: r.get(1),
        })
    }),
    ("SELECT key, doc FROM action_executions ORDER BY key", |r| {
        Ok(Record::Execution {
            key: r.get(0),
            doc: r.get(1),
        })
    }),
    ("SELECT seq, doc FROM action_outbox ORDER BY seq", |r| {
        Ok(Record::Outbox {
            seq: to_u64(r.get(0)),
            doc: r.get(1),
        })
    }),
    ("SELECT seq, doc FROM action_log ORDER BY seq", |r| {
        Ok(Record::ActionLog {
            seq: to_u64(r.get(0)),
            doc: r.get(1),
        })
    }),
    (
        "SELECT kind, key, revision, doc FROM docs ORDER BY kind, key",
        |r| {
            let code: i16 = r.get(0);
            let kind = u8::try_from(code)
                .ok()
                .and_then(DocKind::from_code)
                .ok_or_else(|| StoreError::Other(anyhow::anyhow!("unknown document kind {code}")))?;
            Ok(Record::Doc(StoredDoc {
                kind,
                key: super::doc_key(r.get(1))?,
                revision: to_u64(r.get(2)),
                doc: r.get(3),
            }))
        },
    ),
    (
        "SELECT value FROM meta WHERE key = 'rules_revision' AND value > 0",
        |r| Ok(Record::RulesRevision(to_u64(r.get(0)))),
    ),
];

/// The tables whose rows count toward a database not being empty.
const RECORD_TABLES: &[&str] = &[
    "runs",
    "run_logs",
    "run_items",
    "run_inputs",
    "timers",
    "idempotency_keys",
    "plugins",
    "plugin_bytes",
    "artifacts",
    "definitions",
    "workflows",
    "published_versions",
    "active_versions",
    "tokens",
    "audit",
    "grants",
    "sessions",
    "docs",
    "action_targets",
    "action_executions",
    "action_outbox",
    "action_log",
];

/// The numbered tables, whose sequences must continue after the highest number imported.
const NUMBERED: &[&str] = &["audit", "action_outbox", "action_log"];

/// An import statement and its parameters for one record.
fn statement(record: &Record) -> StoreResult<(&'static str, Vec<Box<dyn ToSql + Sync + Send + '_>>)> {
    Ok(match record {
        Record::Run(run) => {
            let index = crate::store::index_of(&run.doc)?;
            (
                "INSERT INTO runs (id, doc, revision, owner, state, workflow, started_by, created_at, \
                 waiting_for) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                vec![
                    Box::new(run.id.uuid()),
                    Box::new(run.doc.as_slice()),
                    Box::new(to_i64(run.revision)),
                    Box::new(run.owner.as_deref()),
                    Box::new(index.state.as_str()),
                    Box::new(index.workflow),
                    Box::new(index.started_by),
                    Box::new(index.created_at),
                    Box::new(index.waiting_for),
                ],
            )
        }
        Record::Log { run, seq, doc } => (
            "INSERT INTO run_logs (run, seq, doc) VALUES ($1, $2, $3)",
            vec![
                Box::new(run.uuid()),
                Box::new(to_i64(*seq)),
                Box::new(doc.as_slice()),
            ],
        ),
        Record::Item {
            run,
            step,
            index,
            doc,
        } => (
            "INSERT INTO run_items (run, step, idx, doc) VALUES ($1, $2, $3, $4)",
            vec![
                Box::new(run.uuid()),
                Box::new(step.as_str()),
                Box::new(to_i64(*index)),
                Box::new(doc.as_slice()),
            ],
        ),
        Record::InputIndex { run, key, value } => (
            "INSERT INTO run_inputs (key, value, run) VALUES ($1, $2, $3)",
            vec![
                Box::new(key.as_str()),
                Box::new(value.as_str()),
                Box::new(run.uuid()),
            ],
        ),
        Record::Timer(t) => (
            "INSERT INTO timers (due, run, step, kind) VALUES ($1, $2, $3, $4)",
            vec![
                Box::new(t.due),
                Box::new(t.run.uuid()),
                Box::new(t.step.as_str()),
                Box::new(kind_code(t.kind)),
            ],
        ),
        Record::Idempotency { key, run, request } => (
            "INSERT INTO idempotency_keys (key, run, request) VALUES ($1, $2, $3)",
            vec![
                Box::new(key.as_str()),
                Box::new(run.uuid()),
                Box::new(request.as_ref().map_or("", |r| r.as_str())),
            ],
        ),
        Record::Plugin(p) => (
            "INSERT INTO plugins (name, version, digest, meta) VALUES ($1, $2, $3, $4)",
            vec![
                Box::new(p.name.as_str()),
                Box::new(p.version.as_str()),
                Box::new(p.digest.as_str()),
                Box::new(p.meta.as_slice()),
            ],
        ),
        Record::PluginBytes { digest, bytes } => (
            "INSERT INTO plugin_bytes (digest, bytes) VALUES ($1, $2)",
            vec![Box::new(digest.as_str()), Box::new(bytes.as_slice())],
        ),
        Record::Artifact { key, bytes } => (
            "INSERT INTO artifacts (key, bytes) VALUES ($1, $2)",
            vec![Box::new(key.as_str()), Box::new(bytes.as_slice())],
        ),
        Record::Definition { digest, doc } => (
            "INSERT INTO definitions (digest, doc) VALUES ($1, $2)",
            vec![Box::new(digest.as_str()), Box::new(doc.as_slice())],
        ),
        Record::WorkflowVersion { id, version, digest } => (
            "INSERT INTO workflows (id, version, digest) VALUES ($1, $2, $3)",
            vec![
                Box::new(id.as_str()),
                Box::new(to_i64(*version)),
                Box::new(digest.as_str()),
            ],
        ),
        Record::Published { id, version } => (
            "INSERT INTO published_versions (id, version) VALUES ($1, $2)",
            vec![Box::new(id.as_str()), Box::new(to_i64(*version))],
        ),
        Record::ActiveVersion { id, version } => (
            "INSERT INTO active_versions (id, version) VALUES ($1, $2)",
            vec![Box::new(id.as_str()), Box::new(to_i64(*version))],
        ),
        Record::Token { hash, doc } => (
            "INSERT INTO tokens (hash, doc) VALUES ($1, $2)",
            vec![Box::new(hash.as_str()), Box::new(doc.as_slice())],
        ),
        Record::Audit { seq, doc } => (
            "INSERT INTO audit (seq, doc) VALUES ($1, $2)",
            vec![Box::new(to_i64(*seq)), Box::new(doc.as_slice())],
        ),
        Record::Grant { plugin, doc } => (
            "INSERT INTO grants (plugin, doc) VALUES ($1, $2)",
            vec![Box::new(plugin.as_str()), Box::new(doc.as_slice())],
        ),
        Record::Session { id, doc } => (
            "INSERT INTO sessions (id, doc) VALUES ($1, $2)",
            vec![Box::new(id.as_str()), Box::new(doc.as_slice())],
        ),
        Record::Target { id, doc } => (
            "INSERT INTO action_targets (id, doc) VALUES ($1, $2)",
            vec![Box::new(id.as_str()), Box::new(doc.as_slice())],
        ),
        Record::Execution { key, doc } => (
            "INSERT INTO action_executions (key, doc) VALUES ($1, $2)",
            vec![Box::new(key.as_str()), Box::new(doc.as_slice())],
        ),
        Record::Outbox { seq, doc } => (
            "INSERT INTO action_outbox (seq, doc) VALUES ($1, $2)",
            vec![Box::new(to_i64(*seq)), Box::new(doc.as_slice())],
        ),
        Record::ActionLog { seq, doc } => (
            "INSERT INTO action_log (seq, doc) VALUES ($1, $2)",
            vec![Box::new(to_i64(*seq)), Box::new(doc.as_slice())],
        ),
        Record::RulesRevision(revision) => (
            "UPDATE meta SET value = $1 WHERE key = 'rules_revision'",
            vec![Box::new(to_i64(*revision))],
        ),
        Record::Doc(d) => (
            "INSERT INTO docs (kind, key, revision, doc) VALUES ($1, $2, $3, $4)",
            vec![
                Box::new(i16::from(d.kind.code())),
                Box::new(d.key.as_bytes()),
                Box::new(to_i64(d.revision)),
                Box::new(d.doc.as_slice()),
            ],
        ),
    })
}

#[async_trait]
impl Transfer for PgStore {
    async fn is_empty(&self) -> StoreResult<bool> {
        let client = self.client().await?;
        let counts: Vec<String> = RECORD_TABLES
            .iter()
            .map(|t| format!("(SELECT EXISTS (SELECT 1 FROM {t}))"))
            .collect();
        let sql = format!(
            "SELECT NOT ({} OR EXISTS (SELECT 1 FROM meta WHERE key = 'rules_revision' AND value > 0))",
            counts.join(" OR ")
        );
        let row = client.query_one(&sql, &[]).await.map_err(db_error)?;
        Ok(row.get(0))
    }

    async fn export(&self, records: mpsc::Sender<Record>) -> StoreResult<()> {
        let mut client = self.client().await?;
        let txn = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(db_error)?;
        for (sql, read) in TABLES {
            let rows = txn
                .query_raw(*sql, std::iter::empty::<i32>())
                .await
                .map_err(db_error)?;
            pin_mut!(rows);
            while let Some(row) = rows.try_next().await.map_err(db_error)? {
                if records.send(read(&row)?).await.is_err() {
                    return Ok(());
                }
            }
        }
        txn.commit().await.map_err(db_error)
    }

    async fn import(&self, records: Vec<Record>) -> StoreResult<()> {
        let mut client = self.client().await?;
        let txn = client.transaction().await.map_err(db_error)?;
        for record in &records {
            let (sql, params) = statement(record)?;
            let statement = txn.prepare_cached(sql).await.map_err(db_error)?;
            let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| &**p as _).collect();
            txn.execute(&statement, &params).await.map_err(db_error)?;
        }
        for table in NUMBERED {
            txn.execute(
                &format!(
                    "SELECT setval(pg_get_serial_sequence('{table}', 'seq'), \
                     GREATEST((SELECT max(seq) FROM {table}), 1), (SELECT max(seq) FROM {table}) IS NOT NULL)"
                ),
                &[],
            )
            .await
            .map_err(db_error)?;
        }
        txn.commit().await.map_err(db_error)
    }
}
