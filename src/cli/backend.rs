//! The one interface every CLI command goes through: [`Backend`], one method per operation,
//! implemented once over a database with the engine in this process ([`super::local::Local`],
//! `--db`) and once over the HTTP API ([`super::remote::Client`], `--server`). Both return the
//! types here, in the shapes the API uses, so a command prints the same either way. This
//! module parses no arguments (`mod.rs`) and prints nothing (`show.rs`).

use crate::auth::{Role, TokenRecord};
use crate::engine::{Person, RetryOptions};
use crate::plugins::grants::GrantSpec;
use crate::run::{Field, LogLine, RunRecord, RunState};
use crate::schedule::ScheduleDefinition;
use anyhow::Result;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

/// Where the commands act, as a printed command names it again (`--db PATH` or `--server URL`).
#[derive(Clone, Debug)]
pub enum Place {
    /// A redb file or a `postgres://` URL (its password masked).
    Db(String),
    /// A server's base URL; `token` says how this process got its token, if it has one.
    Server { url: String, token: Option<TokenSource> },
}

/// Where the API token came from: a printed hint repeats neither, but one given on the
/// command line must be given again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenSource {
    Environment,
    CommandLine,
}

impl Place {
    /// The arguments that name this place: `["--db", PATH]` or `["--server", URL]`.
    pub fn args(&self) -> [&str; 2] {
        match self {
            Place::Db(db) => ["--db", db],
            Place::Server { url, .. } => ["--server", url],
        }
    }

    /// Whether `--as` names the caller here: always on a database; on a server only without
    /// a token (its local mode), since a token names its holder.
    pub fn takes_as(&self) -> bool {
        !matches!(self, Place::Server { token: Some(_), .. })
    }
}

/// A run just started: its id, and the run once settled when the caller waited.
pub struct Started {
    pub id: String,
    pub run: Option<RunRecord>,
}

/// What `resume` did: runs taken over, timers fired, and the runs under way, settled.
pub struct Resumed {
    pub resumed: u64,
    pub fired: u64,
    pub runs: Vec<RunRecord>,
}

/// A valid definition: its id, version and number of steps.
#[derive(Deserialize)]
pub struct Validated {
    pub id: String,
    pub version: u64,
    pub steps: usize,
}

/// A stored plugin version, as `GET /v1/plugins` lists it.
#[derive(Serialize, Deserialize)]
pub struct PluginLine {
    pub name: String,
    pub version: String,
    pub world: String,
    pub digest: String,
    pub size: u64,
}

/// One interaction waiting for a person, as `GET /v1/interactions` lists it.
#[derive(Serialize, Deserialize)]
pub struct InboxItem {
    pub execution_id: String,
    pub workflow: String,
    pub step: String,
    #[serde(default)]
    pub prompt: Option<String>,
    #[serde(default)]
    pub fields: Option<Vec<Field>>,
    #[serde(default)]
    pub assignees: Option<Vec<String>>,
    #[serde(default)]
    pub signal_types: Option<Vec<String>>,
    #[serde(default)]
    pub since: Option<String>,
    #[serde(default)]
    pub expires_at: Option<String>,
}

/// Every operation a command needs, on a database or a server. Run ids are taken as typed
/// (`run`), so each backend reports a malformed one its own way.
pub trait Backend {
    /// How printed commands name this backend.
    fn place(&self) -> &Place;

    /// Starts `workflow` (its active version unless `version`); with `wait`, returns the run
    /// once it finished or waits for a person.
    async fn start(
        &self,
        workflow: &str,
        version: Option<u64>,
        inputs: Map<String, Value>,
        who: &Person,
        wait: bool,
    ) -> Result<Started>;
    /// Answers `step` of `run` with `signal` and `data`; returns the run once settled.
    async fn answer(
        &self,
        run: &str,
        step: &str,
        signal: &str,
        data: Value,
        who: &Person,
    ) -> Result<RunRecord>;
    async fn cancel(&self, run: &str, who: &Person) -> Result<RunRecord>;
    /// Continues runs no live runner owns and fires due timers, then waits for the runs under
    /// way to settle.
    async fn resume(&self) -> Result<Resumed>;
    /// Checks the definition in `file` against this backend's plugins; stores nothing.
    async fn validate(&self, file: &Path) -> Result<Validated>;
    /// Continues a failed or canceled run from its failed step; returns it once settled.
    async fn retry(&self, run: &str, options: RetryOptions, who: &Person) -> Result<RunRecord>;
    /// Starts a new run with the inputs of a finished one; returns the new run once settled.
    async fn restart(&self, run: &str, version: Option<u64>, who: &Person) -> Result<RunRecord>;
    /// Runs newest first, as `RunRecord::summary` shows them.
    async fn runs(&self, state: Option<RunState>, inputs: &[(String, String)]) -> Result<Vec<Value>>;
    async fn run(&self, run: &str) -> Result<RunRecord>;
    async fn logs(&self, run: &RunRecord) -> Result<Vec<LogLine>>;
    async fn purge_runs(&self, older_than: Duration, workflow: Option<&str>) -> Result<u64>;
    /// What waits for `who`: interactions assigned to them by name or group.
    async fn inbox(&self, who: &Person) -> Result<Vec<InboxItem>>;

    async fn add_plugin(&self, file: &Path, name: &str, version: &str) -> Result<PluginLine>;
    async fn plugins(&self) -> Result<Vec<PluginLine>>;
    async fn delete_plugin(&self, name: &str, version: &str) -> Result<()>;

    /// Stores the definition in `file`; returns what was saved (`SavedVersion` as JSON).
    async fn apply_workflow(&self, file: &Path, publish: bool) -> Result<Value>;
    /// `{id, latest_version, digest, description}` for each workflow.
    async fn workflows(&self) -> Result<Vec<Value>>;
    /// `{id, version, digest, definition}`.
    async fn workflow(&self, id: &str, version: Option<u64>) -> Result<Value>;
    async fn delete_workflow(&self, id: &str) -> Result<()>;
    async fn publish_workflow(&self, id: &str, version: u64) -> Result<()>;
    async fn export_workflows(&self, ids: &[String], include_plugins: bool) -> Result<Value>;
    async fn import_workflows(&self, file: &Path, rename: &HashMap<String, String>) -> Result<Value>;

    /// Creates a token; returns its secret (shown only now).
    async fn create_token(&self, name: &str, roles: &[Role], groups: &[String]) -> Result<String>;
    async fn tokens(&self) -> Result<Vec<TokenRecord>>;
    async fn revoke_token(&self, which: &str) -> Result<()>;

    /// Grants as the API shows them (`StoredGrant::view`).
    async fn grants(&self) -> Result<Vec<Value>>;
    async fn grant(&self, plugin: &str) -> Result<Value>;
    async fn set_grant(&self, plugin: &str, spec: GrantSpec, who: &Person) -> Result<Value>;
    async fn delete_grant(&self, plugin: &str, who: &Person) -> Result<()>;

    /// Schedules as the API shows them (`ScheduleRecord::view`).
    async fn create_schedule(&self, definition: ScheduleDefinition, who: &Person) -> Result<Value>;
    async fn schedules(&self) -> Result<Vec<Value>>;
    async fn schedule(&self, id: &str) -> Result<Value>;
    async fn pause_schedule(&self, id: &str, paused: bool) -> Result<Value>;
    async fn delete_schedule(&self, id: &str) -> Result<()>;

    /// Sends an event; returns its receipt once the runs that took it settled.
    async fn send_event(&self, name: &str, key: &str, data: Value, who: &Person) -> Result<Value>;
    /// The runners sharing the database, each with `alive`.
    async fn runners(&self) -> Result<Vec<Value>>;

    /// Ends this backend's work cleanly (the engine's plugin calls and background tasks).
    async fn close(&self);
}
