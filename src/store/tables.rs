//! The tables of the store file. Changing a key or value layout here is a format change.

use redb::TableDefinition;

/// run id → run record (JSON).
pub const RUNS: TableDefinition<&str, &[u8]> = TableDefinition::new("runs");
/// run id → (): runs that were pending or running, so a restart never scans finished runs.
pub const ACTIVE: TableDefinition<&str, ()> = TableDefinition::new("active_runs");
/// run id → (): runs waiting for a person, so listing interactions never scans other runs.
pub const WAITING: TableDefinition<&str, ()> = TableDefinition::new("waiting_runs");
/// `Idempotency-Key` → the run id it started.
pub const IDEMPOTENCY: TableDefinition<&str, &str> = TableDefinition::new("idempotency_keys");
/// (due unix ms, run id, step) → timer kind.
pub const TIMERS: TableDefinition<(u64, &str, &str), u8> = TableDefinition::new("timers");
/// (run id, seq) → log line (JSON).
pub const LOGS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("logs");
/// `name@version` → plugin metadata (JSON).
pub const PLUGINS: TableDefinition<&str, &[u8]> = TableDefinition::new("plugins");
/// digest → component bytes.
pub const PLUGIN_BYTES: TableDefinition<&str, &[u8]> = TableDefinition::new("plugin_bytes");
/// `digest/engine-hash` → compiled artifact, valid only for that engine configuration.
pub const COMPILED: TableDefinition<&str, &[u8]> = TableDefinition::new("compiled");
/// (workflow id, version) → definition digest.
pub const WORKFLOWS: TableDefinition<(&str, u64), &str> = TableDefinition::new("workflows");
/// (workflow id, version) → (): versions that were published (the others are drafts).
pub const PUBLISHED: TableDefinition<(&str, u64), ()> = TableDefinition::new("published_versions");
/// workflow id → its active version, the one runs start on unless they name another.
pub const ACTIVE_VERSIONS: TableDefinition<&str, u64> = TableDefinition::new("active_versions");
/// definition digest → definition (JSON).
pub const DEFINITIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("definitions");
/// token hash → token record (JSON). The token itself is never stored.
pub const TOKENS: TableDefinition<&str, &[u8]> = TableDefinition::new("tokens");
/// sequence number → audit entry (JSON).
pub const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
/// action target id → target (JSON).
pub const ACTION_TARGETS: TableDefinition<&str, &[u8]> = TableDefinition::new("action_targets");
/// execution condition key (`request:method:/v1.Executions/Start`) → execution rule (JSON).
pub const ACTION_EXECUTIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("action_executions");
/// sequence number → an event waiting to be delivered to its targets (JSON).
pub const ACTION_OUTBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("action_outbox");
/// sequence number → one target call's result (JSON); only the newest entries are kept.
pub const ACTION_LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("action_log");
