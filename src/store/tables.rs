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
/// definition digest → definition (JSON).
pub const DEFINITIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("definitions");
/// token hash → token record (JSON). The token itself is never stored.
pub const TOKENS: TableDefinition<&str, &[u8]> = TableDefinition::new("tokens");
/// sequence number → audit entry (JSON).
pub const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
