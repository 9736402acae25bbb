//! The actions tables: targets, execution rules, the event outbox and the actions log.
//!
//! Documents arrive and leave as JSON bytes; what they mean is [`crate::actions`]' business.
//! The outbox is written in the same transaction as the change that caused its event, and
//! the writer signals [`Store::outbox_ready`] once such a transaction is durable, so the
//! delivery task never polls. This module must not interpret the documents it stores.

use super::tables::{ACTION_EXECUTIONS, ACTION_LOG, ACTION_OUTBOX, ACTION_TARGETS};
use super::Store;
use anyhow::Result;
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, WriteTransaction};

/// How many actions log entries are kept; older ones are dropped as new ones arrive.
const MAX_LOG_ENTRIES: u64 = 10_000;

/// One change to the actions tables.
pub enum ActionWrite {
    /// Insert or replace a target under its id.
    Target {
        id: String,
        json: Vec<u8>,
    },
    DeleteTarget(String),
    /// Insert or replace an execution rule under its condition key.
    Execution {
        key: String,
        json: Vec<u8>,
    },
    DeleteExecution(String),
    /// Append an event to the outbox (numbered by the writer).
    Outbox(Vec<u8>),
    /// Replace an outbox entry (its delivery attempt count).
    UpdateOutbox {
        seq: u64,
        json: Vec<u8>,
    },
    /// Remove a delivered event.
    DeleteOutbox(u64),
    /// Append an entry to the actions log (numbered by the writer).
    Log(Vec<u8>),
}

impl ActionWrite {
    /// Whether committing this makes an event ready for delivery.
    pub(super) fn fills_outbox(&self) -> bool {
        matches!(self, ActionWrite::Outbox(_))
    }
}

pub(super) fn create_tables(txn: &WriteTransaction) -> Result<()> {
    txn.open_table(ACTION_TARGETS)?;
    txn.open_table(ACTION_EXECUTIONS)?;
    txn.open_table(ACTION_OUTBOX)?;
    txn.open_table(ACTION_LOG)?;
    Ok(())
}

pub(super) fn apply(txn: &WriteTransaction, write: &ActionWrite) -> Result<()> {
    match write {
        ActionWrite::Target { id, json } => {
            txn.open_table(ACTION_TARGETS)?
                .insert(id.as_str(), json.as_slice())?;
        }
        ActionWrite::DeleteTarget(id) => {
            txn.open_table(ACTION_TARGETS)?.remove(id.as_str())?;
        }
        ActionWrite::Execution { key, json } => {
            txn.open_table(ACTION_EXECUTIONS)?
                .insert(key.as_str(), json.as_slice())?;
        }
        ActionWrite::DeleteExecution(key) => {
            txn.open_table(ACTION_EXECUTIONS)?.remove(key.as_str())?;
        }
        ActionWrite::Outbox(json) => {
            let mut outbox = txn.open_table(ACTION_OUTBOX)?;
            let next = outbox.last()?.map_or(0, |(k, _)| k.value() + 1);
            outbox.insert(next, json.as_slice())?;
        }
        ActionWrite::UpdateOutbox { seq, json } => {
            txn.open_table(ACTION_OUTBOX)?.insert(*seq, json.as_slice())?;
        }
        ActionWrite::DeleteOutbox(seq) => {
            txn.open_table(ACTION_OUTBOX)?.remove(*seq)?;
        }
        ActionWrite::Log(json) => {
            let mut log = txn.open_table(ACTION_LOG)?;
            let next = log.last()?.map_or(0, |(k, _)| k.value() + 1);
            log.insert(next, json.as_slice())?;
            while log.len()? > MAX_LOG_ENTRIES {
                log.pop_first()?;
            }
        }
    }
    Ok(())
}

/// Every stored target and execution rule (JSON), from one snapshot.
pub struct StoredRules {
    pub targets: Vec<Vec<u8>>,
    pub executions: Vec<Vec<u8>>,
}

impl Store {
    /// Every target and every execution rule, read in one snapshot.
    pub fn action_rules(&self) -> Result<StoredRules> {
        let txn = self.db.begin_read()?;
        let mut targets = Vec::new();
        for entry in txn.open_table(ACTION_TARGETS)?.iter()? {
            targets.push(entry?.1.value().to_vec());
        }
        let mut executions = Vec::new();
        for entry in txn.open_table(ACTION_EXECUTIONS)?.iter()? {
            executions.push(entry?.1.value().to_vec());
        }
        Ok(StoredRules { targets, executions })
    }

    /// Up to `limit` undelivered events, oldest first, as (seq, JSON).
    pub fn outbox(&self, limit: usize) -> Result<Vec<(u64, Vec<u8>)>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(ACTION_OUTBOX)?;
        let mut entries = Vec::new();
        for entry in table.iter()?.take(limit) {
            let (k, v) = entry?;
            entries.push((k.value(), v.value().to_vec()));
        }
        Ok(entries)
    }

    /// Signalled (one permit) whenever a transaction that added outbox events is durable.
    pub fn outbox_ready(&self) -> &tokio::sync::Notify {
        &self.outbox_ready
    }

    /// Up to `limit` actions log entries after `after` that `keep` accepts, as (seq, JSON).
    pub fn action_log(
        &self,
        after: Option<u64>,
        limit: usize,
        mut keep: impl FnMut(&[u8]) -> bool,
    ) -> Result<Vec<(u64, Vec<u8>)>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(ACTION_LOG)?;
        let start = after.map_or(0, |a| a.saturating_add(1));
        let mut entries = Vec::new();
        for entry in table.range(start..)? {
            if entries.len() >= limit {
                break;
            }
            let (k, v) = entry?;
            if keep(v.value()) {
                entries.push((k.value(), v.value().to_vec()));
            }
        }
        Ok(entries)
    }
}
