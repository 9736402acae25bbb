//! Every record of the file, read and written as it is, for `weft db copy`.
//!
//! The export reads one snapshot on a blocking thread and hands records over a bounded
//! channel, so a large file never sits in memory. The import writes straight into a new
//! file in its own transaction: nothing else uses a file being filled.

use super::tables::*;
use super::{
    decode_doc, decode_run, encode_doc, encode_run, kind_byte, other, parse_digest, parse_id, stored_plugin,
    timer_from, unix_ms, RedbStore, RULES_REVISION,
};
use crate::run::RunState;
use crate::store::api::*;
use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata};
use tokio::sync::mpsc;

/// Sends `record`; false once the receiver is gone (the copy stopped).
fn send(records: &mpsc::Sender<Record>, record: Record) -> bool {
    records.blocking_send(record).is_ok()
}

/// Iterates `$table` of `$txn`, sending what `$make` builds of each (key, value); stops the
/// export when the receiver is gone.
macro_rules! export_table {
    ($txn:expr, $records:expr, $table:expr, |$k:ident, $v:ident| $make:expr) => {
        for entry in $txn.open_table($table).map_err(other)?.iter().map_err(other)? {
            let (key, value) = entry.map_err(other)?;
            let ($k, $v) = (key.value(), value.value());
            if !send($records, $make) {
                return Ok(());
            }
        }
    };
}

fn export_all(db: &Database, records: &mpsc::Sender<Record>) -> StoreResult<()> {
    let txn = db.begin_read().map_err(other)?;
    for table in [LIVE_RUNS, RUNS] {
        export_table!(txn, records, table, |k, v| Record::Run(decode_run(
            parse_id(k)?,
            v
        )?));
    }
    for table in [LIVE_LOGS, LOGS] {
        export_table!(txn, records, table, |k, v| Record::Log {
            run: parse_id(k.0)?,
            seq: k.1,
            doc: v.to_vec(),
        });
    }
    for entry in txn
        .open_table(ARCHIVED_LOGS)
        .map_err(other)?
        .iter()
        .map_err(other)?
    {
        let (key, value) = entry.map_err(other)?;
        let run = parse_id(key.value())?;
        for (seq, doc) in super::archive::unpack_lines(value.value()).map_err(other)? {
            if !send(records, Record::Log { run, seq, doc }) {
                return Ok(());
            }
        }
    }
    export_table!(txn, records, ITEMS, |k, v| Record::Item {
        run: parse_id(k.0)?,
        step: k.1.to_owned(),
        index: k.2,
        doc: v.to_vec(),
    });
    export_table!(txn, records, INPUTS, |k, _v| Record::InputIndex {
        key: k.0.to_owned(),
        value: k.1.to_owned(),
        run: parse_id(k.2)?,
    });
    export_table!(txn, records, TIMERS, |k, v| Record::Timer(timer_from(k, v)?));
    export_table!(txn, records, IDEMPOTENCY, |k, v| {
        let (run, request) = v.split_once(' ').unwrap_or((v, ""));
        Record::Idempotency {
            key: k.to_owned(),
            run: parse_id(run)?,
            request: (!request.is_empty()).then(|| parse_digest(request)).transpose()?,
        }
    });
    export_table!(txn, records, PLUGINS, |_k, v| Record::Plugin(stored_plugin(v)?));
    export_table!(txn, records, PLUGIN_BYTES, |k, v| Record::PluginBytes {
        digest: parse_digest(k)?,
        bytes: v.to_vec(),
    });
    export_table!(txn, records, COMPILED, |k, v| Record::Artifact {
        key: k.to_owned(),
        bytes: v.to_vec(),
    });
    export_table!(txn, records, DEFINITIONS, |k, v| Record::Definition {
        digest: parse_digest(k)?,
        doc: v.to_vec(),
    });
    export_table!(txn, records, WORKFLOWS, |k, v| Record::WorkflowVersion {
        id: k.0.to_owned(),
        version: k.1,
        digest: parse_digest(v)?,
    });
    export_table!(txn, records, PUBLISHED, |k, _v| Record::Published {
        id: k.0.to_owned(),
        version: k.1,
    });
    export_table!(txn, records, ACTIVE_VERSIONS, |k, v| Record::ActiveVersion {
        id: k.to_owned(),
        version: v,
    });
    export_table!(txn, records, TOKENS, |k, v| Record::Token {
        hash: k.to_owned(),
        doc: v.to_vec(),
    });
    export_table!(txn, records, AUDIT, |k, v| Record::Audit {
        seq: k,
        doc: v.to_vec(),
    });
    export_table!(txn, records, GRANTS, |k, v| Record::Grant {
        plugin: k.to_owned(),
        doc: v.to_vec(),
    });
    export_table!(txn, records, SESSIONS, |k, v| Record::Session {
        id: k.to_owned(),
        doc: v.to_vec(),
    });
    export_table!(txn, records, ACTION_TARGETS, |k, v| Record::Target {
        id: k.to_owned(),
        doc: v.to_vec(),
    });
    export_table!(txn, records, ACTION_EXECUTIONS, |k, v| Record::Execution {
        key: k.to_owned(),
        doc: v.to_vec(),
    });
    export_table!(txn, records, ACTION_OUTBOX, |k, v| Record::Outbox {
        seq: k,
        doc: v.to_vec(),
    });
    export_table!(txn, records, ACTION_LOG, |k, v| Record::ActionLog {
        seq: k,
        doc: v.to_vec(),
    });
    for entry in txn.open_table(DOCS).map_err(other)?.iter().map_err(other)? {
        let (key, value) = entry.map_err(other)?;
        let (code, name) = key.value();
        let Some(kind) = DocKind::from_code(code) else {
            continue;
        };
        let (revision, doc) = decode_doc(value.value());
        let record = Record::Doc(StoredDoc {
            kind,
            key: name.to_owned(),
            revision,
            doc: doc.to_vec(),
        });
        if !send(records, record) {
            return Ok(());
        }
    }
    let revision = txn
        .open_table(META)
        .map_err(other)?
        .get(RULES_REVISION)
        .map_err(other)?
        .map_or(0, |v| v.value());
    if revision > 0 {
        send(records, Record::RulesRevision(revision));
    }
    Ok(())
}

fn import_all(db: &Database, records: &[Record]) -> anyhow::Result<()> {
    let txn = db.begin_write()?;
    {
        let mut live = txn.open_table(LIVE_RUNS)?;
        let mut runs = txn.open_table(RUNS)?;
        let mut waiting = txn.open_table(WAITING)?;
        let mut waiting_for = txn.open_table(WAITING_FOR)?;
        let mut run_waiting_for = txn.open_table(RUN_WAITING_FOR)?;
        let mut live_logs = txn.open_table(LIVE_LOGS)?;
        let mut logs = txn.open_table(LOGS)?;
        for record in records {
            match record {
                Record::Run(run) => {
                    let index = crate::store::index_of(&run.doc)?;
                    let key = run.id.to_string();
                    let value = encode_run(run.revision, run.owner.as_deref(), &run.doc, false);
                    if matches!(index.state, RunState::Pending | RunState::Running) {
                        live.insert(key.as_str(), value.as_slice())?;
                    } else {
                        runs.insert(key.as_str(), value.as_slice())?;
                    }
                    if index.state == RunState::Waiting {
                        waiting.insert(key.as_str(), ())?;
                    }
                    super::set_waiting_for(&mut waiting_for, &mut run_waiting_for, &key, &index.waiting_for)?;
                }
                Record::Log { run, seq, doc } => {
                    let run = run.to_string();
                    let table = if live.get(run.as_str())?.is_some() {
                        &mut live_logs
                    } else {
                        &mut logs
                    };
                    table.insert((run.as_str(), *seq), doc.as_slice())?;
                }
                Record::Item {
                    run,
                    step,
                    index,
                    doc,
                } => {
                    let run = run.to_string();
                    txn.open_table(ITEMS)?
                        .insert((run.as_str(), step.as_str(), *index), doc.as_slice())?;
                }
                Record::InputIndex { run, key, value } => {
                    let run = run.to_string();
                    txn.open_table(INPUTS)?
                        .insert((key.as_str(), value.as_str(), run.as_str()), ())?;
                    let mut by_run = txn.open_table(RUN_INPUTS)?;
                    let mut pairs: Vec<(String, String)> = match by_run.get(run.as_str())? {
                        Some(v) => serde_json::from_slice(v.value())?,
                        None => Vec::new(),
                    };
                    pairs.push((key.clone(), value.clone()));
                    by_run.insert(run.as_str(), serde_json::to_vec(&pairs)?.as_slice())?;
                }
                Record::Timer(t) => {
                    let run = t.run.to_string();
                    txn.open_table(TIMERS)?
                        .insert((unix_ms(t.due), run.as_str(), t.step.as_str()), kind_byte(t.kind))?;
                }
                Record::Idempotency { key, run, request } => {
                    let value = match request {
                        Some(request) => format!("{run} {request}"),
                        None => run.to_string(),
                    };
                    txn.open_table(IDEMPOTENCY)?
                        .insert(key.as_str(), value.as_str())?;
                }
                Record::Plugin(plugin) => {
                    let key = format!("{}@{}", plugin.name, plugin.version);
                    txn.open_table(PLUGINS)?
                        .insert(key.as_str(), plugin.meta.as_slice())?;
                }
                Record::PluginBytes { digest, bytes } => {
                    txn.open_table(PLUGIN_BYTES)?
                        .insert(digest.as_str(), bytes.as_slice())?;
                }
                Record::Artifact { key, bytes } => {
                    txn.open_table(COMPILED)?.insert(key.as_str(), bytes.as_slice())?;
                }
                Record::Definition { digest, doc } => {
                    txn.open_table(DEFINITIONS)?
                        .insert(digest.as_str(), doc.as_slice())?;
                }
                Record::WorkflowVersion { id, version, digest } => {
                    txn.open_table(WORKFLOWS)?
                        .insert((id.as_str(), *version), digest.as_str())?;
                }
                Record::Published { id, version } => {
                    txn.open_table(PUBLISHED)?.insert((id.as_str(), *version), ())?;
                }
                Record::ActiveVersion { id, version } => {
                    txn.open_table(ACTIVE_VERSIONS)?.insert(id.as_str(), *version)?;
                }
                Record::Token { hash, doc } => {
                    txn.open_table(TOKENS)?.insert(hash.as_str(), doc.as_slice())?;
                }
                Record::Audit { seq, doc } => {
                    txn.open_table(AUDIT)?.insert(*seq, doc.as_slice())?;
                }
                Record::Grant { plugin, doc } => {
                    txn.open_table(GRANTS)?.insert(plugin.as_str(), doc.as_slice())?;
                }
                Record::Session { id, doc } => {
                    txn.open_table(SESSIONS)?.insert(id.as_str(), doc.as_slice())?;
                }
                Record::Target { id, doc } => {
                    txn.open_table(ACTION_TARGETS)?
                        .insert(id.as_str(), doc.as_slice())?;
                }
                Record::Execution { key, doc } => {
                    txn.open_table(ACTION_EXECUTIONS)?
                        .insert(key.as_str(), doc.as_slice())?;
                }
                Record::Outbox { seq, doc } => {
                    txn.open_table(ACTION_OUTBOX)?.insert(*seq, doc.as_slice())?;
                }
                Record::ActionLog { seq, doc } => {
                    txn.open_table(ACTION_LOG)?.insert(*seq, doc.as_slice())?;
                }
                Record::RulesRevision(revision) => {
                    txn.open_table(META)?.insert(RULES_REVISION, *revision)?;
                }
                Record::Doc(d) => {
                    txn.open_table(DOCS)?.insert(
                        (d.kind.code(), d.key.as_str()),
                        encode_doc(d.revision, &d.doc).as_slice(),
                    )?;
                }
            }
        }
    }
    txn.commit()?;
    Ok(())
}

/// Whether every table of the file is empty (the rule set never changed).
fn empty(db: &Database) -> anyhow::Result<bool> {
    let txn = db.begin_read()?;
    macro_rules! none_in {
        ($($table:expr),*) => {
            true $(&& txn.open_table($table)?.is_empty()?)*
        };
    }
    let tables_empty = none_in!(
        RUNS,
        LIVE_RUNS,
        LOGS,
        LIVE_LOGS,
        ARCHIVED_LOGS,
        ITEMS,
        INPUTS,
        DOCS,
        TIMERS,
        IDEMPOTENCY,
        PLUGINS,
        PLUGIN_BYTES,
        COMPILED,
        DEFINITIONS,
        WORKFLOWS,
        PUBLISHED,
        ACTIVE_VERSIONS,
        TOKENS,
        AUDIT,
        GRANTS,
        SESSIONS,
        ACTION_TARGETS,
        ACTION_EXECUTIONS,
        ACTION_OUTBOX,
        ACTION_LOG
    );
    let revision = txn
        .open_table(META)?
        .get(RULES_REVISION)?
        .map_or(0, |v| v.value());
    Ok(tables_empty && revision == 0)
}

#[async_trait]
impl Transfer for RedbStore {
    async fn is_empty(&self) -> StoreResult<bool> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || empty(&db))
            .await
            .map_err(other)?
            .map_err(other)
    }

    async fn export(&self, records: mpsc::Sender<Record>) -> StoreResult<()> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || export_all(&db, &records))
            .await
            .map_err(other)?
    }

    async fn import(&self, records: Vec<Record>) -> StoreResult<()> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || import_all(&db, &records))
            .await
            .map_err(other)?
            .map_err(other)
    }
}
