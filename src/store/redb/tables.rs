//! The tables of the store file. Changing a key or value layout here is a format change.

use redb::TableDefinition;

/// run id → run (see `encode_run`: revision, owner, document) of runs that wait for a person
/// or have finished: the history.
pub const RUNS: TableDefinition<&str, &[u8]> = TableDefinition::new("runs");
/// run id → run (as in `RUNS`) of runs that are pending or running. Kept apart from `RUNS` so
/// a step transition rewrites pages of a small tree whatever the size of the history, and a
/// restart finds the runs to continue without scanning finished ones.
pub const LIVE_RUNS: TableDefinition<&str, &[u8]> = TableDefinition::new("live_runs");
/// Before format 2, the index of pending and running runs (whose records were in `RUNS`);
/// moved into `LIVE_RUNS` when an older database is opened.
pub const LEGACY_ACTIVE: TableDefinition<&str, ()> = TableDefinition::new("active_runs");
/// run id → (): runs waiting for a person, so listing interactions never scans other runs.
pub const WAITING: TableDefinition<&str, ()> = TableDefinition::new("waiting_runs");
/// (assignee, run id) → (): whom each waiting run waits for (`RunIndex::waiting_for`), so an
/// inbox reads only the runs waiting for its reader.
pub const WAITING_FOR: TableDefinition<(&str, &str), ()> = TableDefinition::new("waiting_for");
/// run id → its assignees in `WAITING_FOR` (a JSON array), to remove them when it changes.
pub const RUN_WAITING_FOR: TableDefinition<&str, &[u8]> = TableDefinition::new("run_waiting_for");
/// `[workflow, caller, Idempotency-Key]` (as JSON) → `run-id request-digest`: the run it started and the
/// digest of the request that started it.
pub const IDEMPOTENCY: TableDefinition<&str, &str> = TableDefinition::new("idempotency_keys");
/// (due unix ms, run id, step) → timer kind.
pub const TIMERS: TableDefinition<(u64, &str, &str), u8> = TableDefinition::new("timers");
/// (run id, seq) → log line (JSON), of runs in `RUNS`.
pub const LOGS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("logs");
/// (run id, seq) → log line (JSON) written while the run was live; moved to `LOGS` in the
/// commit that moves the run to `RUNS`, for the same reason as `LIVE_RUNS`.
pub const LIVE_LOGS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("live_logs");
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
/// Small named numbers: `rules_revision` (the action rule set's revision).
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// plugin name or `name@version` → grant (JSON).
pub const GRANTS: TableDefinition<&str, &[u8]> = TableDefinition::new("grants");
/// session id → session (JSON).
pub const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
/// (run id, step, index) → a `for_each` item (JSON): its value, then its result.
pub const ITEMS: TableDefinition<(&str, &str, u64), &[u8]> = TableDefinition::new("for_each_items");
/// (input key, value as text, run id) → (): finding runs by their inputs.
pub const INPUTS: TableDefinition<(&str, &str, &str), ()> = TableDefinition::new("input_index");
/// run id → its entries in `INPUTS` (JSON pairs), to remove them with the run.
pub const RUN_INPUTS: TableDefinition<&str, &[u8]> = TableDefinition::new("run_inputs");
/// (kind code, key) → revision (8 bytes, little-endian) then the document: small keyed
/// documents (schedules, events, event waiters), each kind its own key space.
pub const DOCS: TableDefinition<(u8, &str), &[u8]> = TableDefinition::new("docs");
/// run id → the log lines of a finished run, together and compressed (see `archive`): one
/// entry instead of one per line, so the history costs less on disk.
pub const ARCHIVED_LOGS: TableDefinition<&str, &[u8]> = TableDefinition::new("archived_logs");
