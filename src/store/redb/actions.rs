//! The actions tables: targets, execution rules, the event outbox and the actions log.
//!
//! Documents arrive and leave as JSON bytes; what they mean is [`crate::actions`]' business.
//! The outbox is written in the same transaction as the change that caused its event. This
//! module must not interpret the documents it stores.

use super::tables::{ACTION_EXECUTIONS, ACTION_LOG, ACTION_OUTBOX, ACTION_TARGETS, META};
use super::{other, RedbStore, RULES_REVISION};
use crate::store::api::{ActionStore, ActionWrite, StoreResult, StoredRules};
use async_trait::async_trait;
use redb::{ReadableTable, ReadableTableMetadata, WriteTransaction};
use std::time::Duration;

/// How many actions log entries are kept; older ones are dropped as new ones arrive.
const MAX_LOG_ENTRIES: u64 = 10_000;

pub(super) fn create_tables(txn: &WriteTransaction) -> anyhow::Result<()> {
    txn.open_table(ACTION_TARGETS)?;
    txn.open_table(ACTION_EXECUTIONS)?;
    txn.open_table(ACTION_OUTBOX)?;
    txn.open_table(ACTION_LOG)?;
    Ok(())
}

/// Applies one change (the rule set's revision is kept by the caller, with the other meta).
pub(super) fn apply(txn: &WriteTransaction, write: &ActionWrite) -> anyhow::Result<()> {
    match write {
        ActionWrite::Target { id, doc } => {
            txn.open_table(ACTION_TARGETS)?
                .insert(id.as_str(), doc.as_slice())?;
        }
        ActionWrite::DeleteTarget(id) => {
            txn.open_table(ACTION_TARGETS)?.remove(id.as_str())?;
        }
        ActionWrite::Execution { key, doc } => {
            txn.open_table(ACTION_EXECUTIONS)?
                .insert(key.as_str(), doc.as_slice())?;
        }
        ActionWrite::DeleteExecution(key) => {
            txn.open_table(ACTION_EXECUTIONS)?.remove(key.as_str())?;
        }
        ActionWrite::RulesRevision { .. } => {}
        ActionWrite::Outbox(doc) => {
            let mut outbox = txn.open_table(ACTION_OUTBOX)?;
            let next = outbox.last()?.map_or(0, |(k, _)| k.value() + 1);
            outbox.insert(next, doc.as_slice())?;
        }
        ActionWrite::UpdateOutbox { seq, doc } => {
            txn.open_table(ACTION_OUTBOX)?.insert(*seq, doc.as_slice())?;
        }
        ActionWrite::DeleteOutbox(seq) => {
            txn.open_table(ACTION_OUTBOX)?.remove(*seq)?;
        }
        ActionWrite::Log(doc) => {
            let mut log = txn.open_table(ACTION_LOG)?;
            let next = log.last()?.map_or(0, |(k, _)| k.value() + 1);
            log.insert(next, doc.as_slice())?;
            while log.len()? > MAX_LOG_ENTRIES {
                log.pop_first()?;
            }
        }
    }
    Ok(())
}

#[async_trait]
impl ActionStore for RedbStore {
    async fn action_rules(&self) -> StoreResult<StoredRules> {
        let txn = self.read()?;
        let mut targets = Vec::new();
        for entry in txn
            .open_table(ACTION_TARGETS)
            .map_err(other)?
            .iter()
            .map_err(other)?
        {
            targets.push(entry.map_err(other)?.1.value().to_vec());
        }
        let mut executions = Vec::new();
        for entry in txn
            .open_table(ACTION_EXECUTIONS)
            .map_err(other)?
            .iter()
            .map_err(other)?
        {
            executions.push(entry.map_err(other)?.1.value().to_vec());
        }
        let revision = txn
            .open_table(META)
            .map_err(other)?
            .get(RULES_REVISION)
            .map_err(other)?
            .map_or(0, |v| v.value());
        Ok(StoredRules {
            revision,
            targets,
            executions,
        })
    }

    async fn rules_revision(&self) -> StoreResult<u64> {
        let txn = self.read()?;
        let table = txn.open_table(META).map_err(other)?;
        let found = table.get(RULES_REVISION).map_err(other)?;
        Ok(found.map_or(0, |v| v.value()))
    }

    async fn outbox(&self, limit: usize) -> StoreResult<Vec<(u64, Vec<u8>)>> {
        let txn = self.read()?;
        let table = txn.open_table(ACTION_OUTBOX).map_err(other)?;
        let mut entries = Vec::new();
        for entry in table.iter().map_err(other)?.take(limit) {
            let (k, v) = entry.map_err(other)?;
            entries.push((k.value(), v.value().to_vec()));
        }
        Ok(entries)
    }

    async fn outbox_count(&self) -> StoreResult<u64> {
        let txn = self.read()?;
        txn.open_table(ACTION_OUTBOX).map_err(other)?.len().map_err(other)
    }

    /// One runner per file: every undelivered event is this runner's.
    async fn claim_outbox(
        &self,
        _runner: &str,
        _lease: Duration,
        limit: usize,
    ) -> StoreResult<Vec<(u64, Vec<u8>)>> {
        self.outbox(limit).await
    }

    async fn action_log(
        &self,
        after: Option<u64>,
        limit: usize,
        keep: &mut (dyn for<'r> FnMut(&'r [u8]) -> bool + Send),
    ) -> StoreResult<Vec<(u64, Vec<u8>)>> {
        let txn = self.read()?;
        let table = txn.open_table(ACTION_LOG).map_err(other)?;
        let start = after.map_or(0, |a| a.saturating_add(1));
        let mut entries = Vec::new();
        for entry in table.range(start..).map_err(other)? {
            if entries.len() >= limit {
                break;
            }
            let (k, v) = entry.map_err(other)?;
            if keep(v.value()) {
                entries.push((k.value(), v.value().to_vec()));
            }
        }
        Ok(entries)
    }
}
