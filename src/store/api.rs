//! The storage interface: what the engine and the plugin catalog may ask of a backend.
//!
//! It is a family of async traits, one per role, joined in [`Store`]:
//! - [`RunStore`]: run documents (with revisions and owners), log lines, timers, idempotency
//!   keys;
//! - [`CatalogStore`]: plugins (metadata, bytes, compiled artifacts) and workflow versions;
//! - [`AccessStore`]: tokens, the audit log, plugin grants and browser sessions;
//! - [`ActionStore`]: action targets and rules, the event outbox, the actions log;
//! - [`DocStore`]: small keyed documents with revisions (schedules, events and who waits for
//!   them), each kind its own key space read by key range;
//! - [`Coordination`]: runners, their heartbeats, and claiming work no live runner owns;
//! - [`Transfer`]: every record as it is, to copy a database to another backend.
//!
//! Every change goes through [`Store::commit`]: a list of [`Write`]s applied all or nothing,
//! in a transaction shared with whatever else is being committed (group commit). A write may
//! carry a condition, checked in that transaction: a run write names the revision it read
//! ([`StoreError::Stale`] if the run changed since), and a plugin, workflow version or
//! idempotency key is taken only if free ([`StoreError::Conflict`]). These conditions, not
//! any lock in a process, are what keep several runners on one database correct.
//!
//! The store knows documents and keys. Runs, tokens, plugin metadata and the rest are opaque
//! bytes (JSON) owned by their modules; a run also hands over a few plain fields
//! ([`RunIndex`]) for the store to index.
//!
//! It is a trait object (`Arc<dyn Store>`) rather than an enum of backends: the engine is
//! written once against it, each backend lives in its own folder, one conformance suite runs
//! against both, and the price (a boxed future per call) is nothing next to a commit.

use crate::names::{Digest, RunId};
use crate::run::RunState;
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

/// Why a store operation failed, by kind: callers decide by kind, never by message.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// What was asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A key is taken (a plugin version, a workflow version, an idempotency key).
    #[error("{0}")]
    Conflict(String),
    /// A run changed since its writer read it; read it again and redo the change.
    #[error("{0}")]
    Stale(String),
    /// The database cannot be reached, or refused the transaction for a passing reason;
    /// nothing was written.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The plain fields of a run the store indexes; the run itself is an opaque document.
#[derive(Clone, Debug)]
pub struct RunIndex {
    pub state: RunState,
    pub workflow: String,
    pub started_by: String,
    pub created_at: OffsetDateTime,
    /// Input values a run can be found by (`input.KEY=VALUE`), as text; written when the run
    /// is created (inputs never change).
    pub inputs: Vec<(String, String)>,
    /// Whom a waiting run waits for: the assignees (names and `group:NAME`) of its waiting
    /// steps, sorted, without repeats; empty unless the run is waiting.
    pub waiting_for: Vec<String>,
}

/// A run document as stored: its revision (1 when created, one more on every write) and
/// the runner driving it (none while it waits or once it has finished).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StoredRun {
    pub id: RunId,
    pub doc: Vec<u8>,
    pub revision: u64,
    pub owner: Option<String>,
}

/// Which runs a listing reads. The narrower scopes never read the history of finished runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunScope {
    All,
    /// Pending and running runs.
    Live,
    /// Runs waiting for a person.
    Waiting,
}

impl RunScope {
    /// The narrowest scope that holds every run in `state`.
    pub fn of(state: Option<RunState>) -> RunScope {
        match state {
            Some(RunState::Pending | RunState::Running) => RunScope::Live,
            Some(RunState::Waiting) => RunScope::Waiting,
            _ => RunScope::All,
        }
    }
}

/// A durable timer: at `due`, the engine resumes `step` of `run`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Timer {
    pub due: OffsetDateTime,
    pub run: RunId,
    pub step: String,
    pub kind: TimerKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum TimerKind {
    /// An interaction's expiry.
    Expire,
    /// The end of a retry's backoff.
    Retry,
    /// The run's deadline (its `timeout`); the step is empty.
    Deadline,
    /// A child run of the step finished: the parent takes its result. Due at once; a timer
    /// rather than a direct write so the hand-over survives a crash and happens once.
    Child,
    /// A `sleep` or `until` step's time came, or a `wait_for` step's timeout passed.
    Wake,
    /// A step waiting for a person is due a reminder.
    Remind,
    /// A finished run's retention ended: it is deleted with its log.
    Purge,
}

impl TimerKind {
    /// The number a backend stores for this kind.
    pub fn code(self) -> u8 {
        match self {
            TimerKind::Expire => 0,
            TimerKind::Retry => 1,
            TimerKind::Deadline => 2,
            TimerKind::Child => 3,
            TimerKind::Wake => 4,
            TimerKind::Remind => 5,
            TimerKind::Purge => 6,
        }
    }

    /// The kind stored as `code`; unknown codes (from a newer version) read as retries, which
    /// fire harmlessly.
    pub fn from_code(code: u8) -> TimerKind {
        match code {
            0 => TimerKind::Expire,
            2 => TimerKind::Deadline,
            3 => TimerKind::Child,
            4 => TimerKind::Wake,
            5 => TimerKind::Remind,
            6 => TimerKind::Purge,
            _ => TimerKind::Retry,
        }
    }
}

/// What a keyed document is. Each kind is its own key space; keys sort as bytes, so a kind is
/// read by key range (events by name and key, then time).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DocKind {
    /// A schedule, under its id.
    Schedule,
    /// A received event, under `name \0 key \0 time \0 id` (see `engine::events`).
    Event,
    /// When an event may be forgotten: `time \0 name \0 key \0 id`, pointing at its `Event`.
    EventExpiry,
    /// A step waiting for an event: `name \0 key \0 run \0 step`.
    EventWaiter,
}

impl DocKind {
    pub const ALL: [DocKind; 4] = [
        DocKind::Schedule,
        DocKind::Event,
        DocKind::EventExpiry,
        DocKind::EventWaiter,
    ];

    /// The number a backend stores for this kind.
    pub fn code(self) -> u8 {
        match self {
            DocKind::Schedule => 0,
            DocKind::Event => 1,
            DocKind::EventExpiry => 2,
            DocKind::EventWaiter => 3,
        }
    }

    /// The kind stored as `code`, if this version knows it.
    pub fn from_code(code: u8) -> Option<DocKind> {
        DocKind::ALL.into_iter().find(|k| k.code() == code)
    }
}

/// What must hold of a keyed document for a [`Write::Doc`] to apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DocCondition {
    /// Nothing: the write applies whatever is stored.
    Any,
    /// It does not exist ([`StoreError::Conflict`] otherwise).
    Absent,
    /// It exists at this revision ([`StoreError::Stale`] otherwise).
    At(u64),
}

/// A keyed document as stored: revision 1 when created, one more at each change.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StoredDoc {
    pub kind: DocKind,
    pub key: String,
    pub revision: u64,
    pub doc: Vec<u8>,
}

/// A stored plugin version: its key, its component's digest, and its metadata document.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StoredPlugin {
    pub name: String,
    pub version: String,
    pub digest: Digest,
    pub meta: Vec<u8>,
}

/// One change to the store. Documents are serialized by the caller, off the writer.
pub enum Write {
    /// Creates a run (`expect: None`; [`StoreError::Conflict`] if it exists) or replaces the
    /// revision `expect` of it ([`StoreError::Stale`] if it is not that revision any more).
    Run {
        id: RunId,
        doc: Vec<u8>,
        index: RunIndex,
        expect: Option<u64>,
        /// The runner driving the run from now on; none while it waits or once finished.
        owner: Option<String>,
    },
    /// Removes a finished run, its log, its `for_each` items and its input index entries.
    DeleteRun(RunId),
    /// Stores item `index` of the `for_each` step `step` of `run` (its value, then its result).
    Item {
        run: RunId,
        step: String,
        index: u64,
        doc: Vec<u8>,
    },
    Log {
        run: RunId,
        seq: u64,
        doc: Vec<u8>,
    },
    Timer(Timer),
    DeleteTimer(Timer),
    /// Takes an `Idempotency-Key` for `run`, started by a request with digest `request`;
    /// [`StoreError::Conflict`] if the key is taken.
    Idempotency {
        key: String,
        run: RunId,
        request: Digest,
    },
    /// Frees an `Idempotency-Key` (its run was deleted).
    DeleteIdempotency(String),
    /// Takes `name@version` for a component; [`StoreError::Conflict`] if another component
    /// has it (the same component again replaces the metadata: its compile status).
    Plugin {
        name: String,
        version: String,
        digest: Digest,
        meta: Vec<u8>,
        bytes: Arc<[u8]>,
    },
    /// Removes a plugin version; its bytes go too unless another version has them.
    DeletePlugin {
        name: String,
        version: String,
    },
    /// A compiled artifact, under `digest/engine-hash`.
    Artifact {
        key: String,
        bytes: Vec<u8>,
    },
    /// Stores a definition under (`id`, `version`): a new version when `replaces` is none
    /// ([`StoreError::Conflict`] if the version exists), else a draft whose stored digest
    /// must still be `replaces` ([`StoreError::Stale`] otherwise).
    Workflow {
        id: String,
        version: u64,
        digest: Digest,
        definition: Vec<u8>,
        replaces: Option<Digest>,
    },
    /// Publishes a version and makes it the active one.
    Publish {
        id: String,
        version: u64,
    },
    /// Removes every version of a workflow; definitions stay, for the runs that used them.
    DeleteWorkflow(String),
    /// Inserts or replaces a token record under the token's hash.
    Token {
        hash: String,
        doc: Vec<u8>,
    },
    /// Appends an entry to the audit log (numbered by the store).
    Audit(Vec<u8>),
    /// Sets (or with `None` removes) the grant of a plugin name or `name@version`.
    Grant {
        plugin: String,
        doc: Option<Vec<u8>>,
    },
    /// Inserts or replaces (or with `None` removes) a browser session.
    Session {
        id: String,
        doc: Option<Vec<u8>>,
    },
    /// A change to the actions tables.
    Action(ActionWrite),
    /// Stores (or with `doc: None` removes) a keyed document, if `condition` holds.
    Doc {
        kind: DocKind,
        key: String,
        doc: Option<Vec<u8>>,
        condition: DocCondition,
    },
}

/// One change to the actions tables.
pub enum ActionWrite {
    /// Inserts or replaces a target under its id.
    Target {
        id: String,
        doc: Vec<u8>,
    },
    DeleteTarget(String),
    /// Inserts or replaces an execution rule under its condition key.
    Execution {
        key: String,
        doc: Vec<u8>,
    },
    DeleteExecution(String),
    /// Moves the rule set from revision `expect` to the next ([`StoreError::Stale`] if
    /// another change came first); every change to targets and rules carries one.
    RulesRevision {
        expect: u64,
    },
    /// Appends an event to the outbox (numbered by the store).
    Outbox(Vec<u8>),
    /// Replaces an outbox entry (its delivery attempt count).
    UpdateOutbox {
        seq: u64,
        doc: Vec<u8>,
    },
    /// Removes a delivered event.
    DeleteOutbox(u64),
    /// Appends an entry to the actions log (numbered by the store; the oldest are dropped).
    Log(Vec<u8>),
}

impl Write {
    /// The size of the document this write stores, for [`WriterStats::bytes`].
    pub fn document_len(&self) -> usize {
        match self {
            Write::Run { doc, .. } | Write::Log { doc, .. } | Write::Item { doc, .. } | Write::Audit(doc) => {
                doc.len()
            }
            Write::Doc { doc: Some(doc), .. } => doc.len(),
            _ => 0,
        }
    }
}

/// Something another runner (or this one) committed, for whoever is waiting on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// A run was written: its new state and owner, and which runner wrote it.
    Run {
        id: RunId,
        state: RunState,
        owner: Option<String>,
        by: String,
    },
    /// Timers were added.
    Timers,
    /// Events were added to the outbox.
    Outbox,
    /// Action targets or rules changed.
    Rules,
    /// Plugin grants changed.
    Grants,
    /// Schedules changed.
    Schedules,
    /// A runner gave its runs up (it is stopping): take them over now.
    Orphans,
    /// Notices may have been missed (a lost connection): read again what matters.
    Missed,
}

/// A runner as the database knows it.
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct RunnerInfo {
    pub id: String,
    /// Where it serves, if it serves (`host:port`).
    pub address: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub heartbeat_at: OffsetDateTime,
    /// Until when its runs are its own without another heartbeat.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub lease_until: OffsetDateTime,
    /// Runs it owns now.
    pub runs: u64,
}

/// What the writer has committed since the store was opened, so a benchmark can replay the
/// same transactions against the bare database.
#[derive(Debug, Default)]
pub struct WriterStats {
    pub transactions: std::sync::atomic::AtomicU64,
    pub writes: std::sync::atomic::AtomicU64,
    /// Bytes of run, log and audit documents written (keys and small values not counted).
    pub bytes: std::sync::atomic::AtomicU64,
}

/// Every stored target and execution rule (JSON), from one snapshot, with the rule set's
/// revision.
pub struct StoredRules {
    pub revision: u64,
    pub targets: Vec<Vec<u8>>,
    pub executions: Vec<Vec<u8>>,
}

/// Runs, their logs, timers and idempotency keys.
#[async_trait]
pub trait RunStore {
    async fn run(&self, id: RunId) -> StoreResult<Option<StoredRun>>;

    /// Up to `limit` runs in `scope` that `keep` accepts, newest first, starting after the
    /// run `before` (a paging cursor). Run ids are UUIDv7, so key order is start order.
    async fn runs(
        &self,
        scope: RunScope,
        before: Option<RunId>,
        limit: usize,
        keep: &mut (dyn for<'r> FnMut(&'r StoredRun) -> bool + Send),
    ) -> StoreResult<Vec<StoredRun>>;

    /// The ids of runs waiting for a person, oldest first; never scans other runs.
    async fn waiting_runs(&self) -> StoreResult<Vec<RunId>>;

    /// Up to `limit` runs waiting for any of `assignees` (see [`RunIndex::waiting_for`]),
    /// newest first, starting after the run `before`. Reads the assignee index: the cost
    /// follows what is found, not how many runs wait for others.
    async fn runs_waiting_for(
        &self,
        assignees: &[String],
        before: Option<RunId>,
        limit: usize,
    ) -> StoreResult<Vec<StoredRun>>;

    /// How many runs wait for a person, without reading them (for the metrics).
    async fn waiting_count(&self) -> StoreResult<u64>;

    /// Up to `limit` log lines (documents) of `run` after sequence number `after`, in order.
    async fn logs(&self, run: RunId, after: Option<u64>, limit: usize) -> StoreResult<Vec<Vec<u8>>>;

    /// Up to `limit` items of the `for_each` step `step` of `run`, from index `from`, in order.
    async fn items(
        &self,
        run: RunId,
        step: &str,
        from: u64,
        limit: usize,
    ) -> StoreResult<Vec<(u64, Vec<u8>)>>;

    /// Up to `limit` runs, newest first and before `before`, whose inputs hold every one of
    /// `inputs` (as indexed when they were created). Reads the index, never the history.
    async fn runs_with_inputs(
        &self,
        inputs: &[(String, String)],
        before: Option<RunId>,
        limit: usize,
    ) -> StoreResult<Vec<StoredRun>>;

    /// The run an `Idempotency-Key` started, and the digest of the request that started it
    /// (absent for keys stored before requests were recorded).
    async fn idempotent_run(&self, key: &str) -> StoreResult<Option<(RunId, Option<Digest>)>>;

    /// When the earliest timer falls due, if there is one.
    async fn next_timer_due(&self) -> StoreResult<Option<OffsetDateTime>>;

    /// Up to `limit` timers due at `now` that no runner holds, claimed by `runner` for
    /// `lease`: no other runner gets them until then. A fired timer is deleted by the commit
    /// that acts on it; a claim that lapses (its runner died) frees the timer again.
    async fn claim_due_timers(
        &self,
        runner: &str,
        now: OffsetDateTime,
        lease: Duration,
        limit: usize,
    ) -> StoreResult<Vec<Timer>>;
}

/// Plugins, compiled artifacts and workflow versions.
#[async_trait]
pub trait CatalogStore {
    async fn plugin(&self, name: &str, version: &str) -> StoreResult<Option<StoredPlugin>>;
    /// Every version of every uploaded plugin, by name then version.
    async fn plugins(&self) -> StoreResult<Vec<StoredPlugin>>;
    async fn plugin_bytes(&self, digest: &Digest) -> StoreResult<Option<Vec<u8>>>;
    async fn artifact(&self, key: &str) -> StoreResult<Option<Vec<u8>>>;
    /// Whether any compiled artifact of the component with `digest` is stored, for any
    /// engine configuration.
    async fn has_artifact(&self, digest: &Digest) -> StoreResult<bool>;

    /// The digest of workflow `id` at `version`, or at its active version.
    async fn workflow_version(&self, id: &str, version: Option<u64>) -> StoreResult<Option<(u64, Digest)>>;
    /// Every version of workflow `id`, oldest first, with its definition digest.
    async fn workflow_versions(&self, id: &str) -> StoreResult<Vec<(u64, Digest)>>;
    /// The highest version of workflow `id`, draft or not.
    async fn latest_version(&self, id: &str) -> StoreResult<Option<u64>>;
    /// The versions of workflow `id` that were published.
    async fn published_versions(&self, id: &str) -> StoreResult<Vec<u64>>;
    /// The latest version of every workflow: (id, version, digest), by id.
    async fn workflows(&self) -> StoreResult<Vec<(String, u64, Digest)>>;
    /// A definition by digest, as the document it was stored as.
    async fn definition(&self, digest: &Digest) -> StoreResult<Option<Vec<u8>>>;
}

/// Tokens, the audit log, plugin grants and browser sessions.
#[async_trait]
pub trait AccessStore {
    /// The token record stored under `hash`, revoked or not.
    async fn token(&self, hash: &str) -> StoreResult<Option<Vec<u8>>>;
    /// Every token record with its hash.
    async fn tokens(&self) -> StoreResult<Vec<(String, Vec<u8>)>>;
    /// Whether any token was ever created.
    async fn has_tokens(&self) -> StoreResult<bool>;
    /// Up to `limit` audit entries after sequence number `after`, including every entry
    /// queued before this call.
    async fn audit(&self, after: Option<u64>, limit: usize) -> StoreResult<Vec<(u64, Vec<u8>)>>;
    /// Every grant, by plugin name (or `name@version`).
    async fn grants(&self) -> StoreResult<Vec<(String, Vec<u8>)>>;
    async fn session(&self, id: &str) -> StoreResult<Option<Vec<u8>>>;
}

/// Action targets and rules, the event outbox and the actions log.
#[async_trait]
pub trait ActionStore {
    /// Every target and execution rule, read in one snapshot, with the rule set's revision.
    async fn action_rules(&self) -> StoreResult<StoredRules>;
    /// The rule set's revision alone, to notice a change cheaply.
    async fn rules_revision(&self) -> StoreResult<u64>;
    /// Up to `limit` undelivered events, oldest first, as (seq, document).
    async fn outbox(&self, limit: usize) -> StoreResult<Vec<(u64, Vec<u8>)>>;
    /// How many events are undelivered, without reading them (for the metrics).
    async fn outbox_count(&self) -> StoreResult<u64>;
    /// Up to `limit` undelivered events no runner holds, oldest first, claimed by `runner`
    /// for `lease`. A delivered event is deleted; a claim that lapses frees the event.
    async fn claim_outbox(
        &self,
        runner: &str,
        lease: Duration,
        limit: usize,
    ) -> StoreResult<Vec<(u64, Vec<u8>)>>;
    /// Up to `limit` actions log entries after `after` that `keep` accepts, as (seq, document).
    async fn action_log(
        &self,
        after: Option<u64>,
        limit: usize,
        keep: &mut (dyn for<'r> FnMut(&'r [u8]) -> bool + Send),
    ) -> StoreResult<Vec<(u64, Vec<u8>)>>;
}

/// Runners and the work they own.
#[async_trait]
pub trait Coordination {
    /// This store's runner: the id its notices carry and its claims are made under.
    fn runner(&self) -> &str;

    /// Whether other runners may share this database (PostgreSQL); a redb file has one.
    fn shared(&self) -> bool;

    /// Records that this runner is alive until `lease` from now. A runner beats once before
    /// it owns any run, so no other runner takes its new runs for orphans.
    async fn heartbeat(&self, address: Option<&str>, lease: Duration) -> StoreResult<()>;

    /// Every runner whose lease has not long lapsed, with how many runs it owns.
    async fn runners(&self) -> StoreResult<Vec<RunnerInfo>>;

    /// Up to `limit` pending or running runs that no live runner owns (never owned, or whose
    /// owner's lease lapsed), now owned by this runner: their revision goes up, so the old
    /// owner's writes are refused.
    async fn claim_orphans(&self, limit: usize) -> StoreResult<Vec<StoredRun>>;

    /// Gives up this runner's runs and its record, on a clean stop, so others take the runs
    /// over at once.
    async fn release(&self) -> StoreResult<()>;

    /// Notices of what was committed, from now on (by every runner on this database).
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Notice>;
}

/// One stored record, whatever the backend: what `weft db copy` moves. Runners, claims and
/// leases are not records: they belong to the processes using a database.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Record {
    /// A run with its revision and owner (a dead owner's runs are taken over as usual).
    Run(StoredRun),
    Log {
        run: RunId,
        seq: u64,
        doc: Vec<u8>,
    },
    Item {
        run: RunId,
        step: String,
        index: u64,
        doc: Vec<u8>,
    },
    /// A run can be found by input `key` = `value`.
    InputIndex {
        run: RunId,
        key: String,
        value: String,
    },
    Timer(Timer),
    Idempotency {
        key: String,
        run: RunId,
        request: Option<Digest>,
    },
    Plugin(StoredPlugin),
    PluginBytes {
        digest: Digest,
        bytes: Vec<u8>,
    },
    Artifact {
        key: String,
        bytes: Vec<u8>,
    },
    WorkflowVersion {
        id: String,
        version: u64,
        digest: Digest,
    },
    Definition {
        digest: Digest,
        doc: Vec<u8>,
    },
    Published {
        id: String,
        version: u64,
    },
    ActiveVersion {
        id: String,
        version: u64,
    },
    Token {
        hash: String,
        doc: Vec<u8>,
    },
    Audit {
        seq: u64,
        doc: Vec<u8>,
    },
    Grant {
        plugin: String,
        doc: Vec<u8>,
    },
    Session {
        id: String,
        doc: Vec<u8>,
    },
    Target {
        id: String,
        doc: Vec<u8>,
    },
    Execution {
        key: String,
        doc: Vec<u8>,
    },
    Outbox {
        seq: u64,
        doc: Vec<u8>,
    },
    ActionLog {
        seq: u64,
        doc: Vec<u8>,
    },
    RulesRevision(u64),
    Doc(StoredDoc),
}

impl Record {
    /// The kind of record, for counts and messages ("runs", "log lines", ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Record::Run(_) => "runs",
            Record::Log { .. } => "run log lines",
            Record::Item { .. } => "for_each items",
            Record::InputIndex { .. } => "input index entries",
            Record::Timer(_) => "timers",
            Record::Idempotency { .. } => "idempotency keys",
            Record::Plugin(_) => "plugin versions",
            Record::PluginBytes { .. } => "plugin components",
            Record::Artifact { .. } => "compiled artifacts",
            Record::WorkflowVersion { .. } => "workflow versions",
            Record::Definition { .. } => "definitions",
            Record::Published { .. } => "published versions",
            Record::ActiveVersion { .. } => "active versions",
            Record::Token { .. } => "tokens",
            Record::Audit { .. } => "audit entries",
            Record::Grant { .. } => "grants",
            Record::Session { .. } => "sessions",
            Record::Target { .. } => "action targets",
            Record::Execution { .. } => "execution rules",
            Record::Outbox { .. } => "outbox events",
            Record::ActionLog { .. } => "actions log entries",
            Record::RulesRevision(_) => "rule set revisions",
            Record::Doc(d) => match d.kind {
                DocKind::Schedule => "schedules",
                DocKind::Event => "events",
                DocKind::EventExpiry => "event expiries",
                DocKind::EventWaiter => "event waiters",
            },
        }
    }

    /// Roughly how many bytes the record holds, to size import batches.
    pub fn size(&self) -> usize {
        64 + match self {
            Record::Run(run) => run.doc.len(),
            Record::Plugin(plugin) => plugin.meta.len(),
            Record::Log { doc, .. }
            | Record::Item { doc, .. }
            | Record::Definition { doc, .. }
            | Record::Token { doc, .. }
            | Record::Audit { doc, .. }
            | Record::Grant { doc, .. }
            | Record::Session { doc, .. }
            | Record::Target { doc, .. }
            | Record::Execution { doc, .. }
            | Record::Outbox { doc, .. }
            | Record::ActionLog { doc, .. } => doc.len(),
            Record::PluginBytes { bytes, .. } | Record::Artifact { bytes, .. } => bytes.len(),
            Record::Doc(d) => d.doc.len(),
            _ => 0,
        }
    }
}

/// Small keyed documents: schedules, events and the steps waiting for them.
#[async_trait]
pub trait DocStore {
    async fn doc(&self, kind: DocKind, key: &str) -> StoreResult<Option<StoredDoc>>;

    /// Documents of `kind` with keys from `from` up to (not including) `to`, in key order,
    /// at most `limit`.
    async fn docs(&self, kind: DocKind, from: &str, to: &str, limit: usize) -> StoreResult<Vec<StoredDoc>>;
}

/// Every record, for copying a database to another backend.
#[async_trait]
pub trait Transfer {
    /// Whether the store holds no record (a new database).
    async fn is_empty(&self) -> StoreResult<bool>;

    /// Sends every record to `records`, kind by kind: runs before their log lines and
    /// timers, plugin versions before their components. Stops early if the receiver is
    /// dropped.
    async fn export(&self, records: tokio::sync::mpsc::Sender<Record>) -> StoreResult<()>;

    /// Stores `records` as they are, all or nothing, checking no condition: only for filling
    /// a new database, with no runner using it.
    async fn import(&self, records: Vec<Record>) -> StoreResult<()>;
}

/// The whole storage interface.
#[async_trait]
pub trait Store:
    RunStore + CatalogStore + AccessStore + ActionStore + DocStore + Coordination + Transfer + Send + Sync
{
    /// Applies `writes` all or nothing, in a transaction shared with whatever else is being
    /// committed. A failed condition fails only this call, naming what failed.
    async fn commit(&self, writes: Vec<Write>) -> StoreResult<()>;

    /// Queues `writes` for the next commit without waiting for them to be durable: for
    /// records (the audit log, the actions log) that must not hold up what they describe.
    /// They carry no conditions. Readers of such records flush first.
    fn enqueue(&self, writes: Vec<Write>);

    /// Waits until everything queued before this call is durable.
    async fn flush(&self) -> StoreResult<()>;

    /// What this store is, for messages: a file path, or a URL with its password masked.
    fn describe(&self) -> String;

    /// What the writer has committed so far.
    fn writer_stats(&self) -> &WriterStats;

    /// Bytes the stored data takes (pages in use, not free space inside the file).
    async fn used_bytes(&self) -> StoreResult<u64>;
}
