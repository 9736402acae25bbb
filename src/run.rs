//! The run record: everything about one run of one workflow version, kept as one document.
//!
//! The engine changes a run only by editing its record and committing it; the store keeps it
//! as is. Keeping a run's steps inside its record makes every transition one write and lets a
//! restarted process pick a run up from exactly what was committed.

use crate::names::{Digest, RunId, StepName};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

/// Shown instead of a secure-string value.
pub const MASK: &str = "********";

/// Where a run is in its life. `Waiting` ⇄ `Running` may alternate; the last four are final.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    Pending,
    Running,
    Waiting,
    Completed,
    Failed,
    Canceled,
    Rejected,
}

impl RunState {
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            RunState::Completed | RunState::Failed | RunState::Canceled | RunState::Rejected
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Pending => "pending",
            RunState::Running => "running",
            RunState::Waiting => "waiting",
            RunState::Completed => "completed",
            RunState::Failed => "failed",
            RunState::Canceled => "canceled",
            RunState::Rejected => "rejected",
        }
    }
}

impl std::str::FromStr for RunState {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        serde_json::from_value(Value::String(text.to_ascii_lowercase())).map_err(|_| {
            format!("unknown run state {text:?}: use pending, running, waiting, completed, failed, canceled or rejected")
        })
    }
}

/// Where a step is in its run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepState {
    Pending,
    Running,
    Waiting,
    Completed,
    Failed,
    Skipped,
    Canceled,
}

impl StepState {
    /// Whether steps that need this one may go on.
    pub fn lets_dependents_run(self) -> bool {
        matches!(self, StepState::Completed | StepState::Skipped)
    }
}

/// The workflow version a run is pinned to.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WorkflowRef {
    pub id: String,
    pub version: u64,
    /// Digest of the definition's canonical JSON; the definition itself is kept by digest.
    pub digest: Digest,
}

/// One run of one workflow version.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: RunId,
    pub workflow: WorkflowRef,
    pub state: RunState,
    pub inputs: Value,
    pub started_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub ended_at: Option<OffsetDateTime>,
    pub steps: Vec<StepRecord>,
    #[serde(default)]
    pub outputs: Option<Value>,
    #[serde(default)]
    pub error: Option<String>,
    /// The run this one restarts, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarted_from: Option<RunId>,
    /// The scoped `Idempotency-Key` that started this run, forgotten when the run is deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Sequence number of the next log line.
    #[serde(default)]
    pub next_log_seq: u64,
    /// The store's revision of this record as last read or written; `None` until first
    /// stored. Not part of the document: the store keeps it beside it.
    #[serde(skip)]
    pub revision: Option<u64>,
    /// The runner driving this run, as last read or written; not part of the document.
    #[serde(skip)]
    pub owner: Option<String>,
}

impl RunRecord {
    /// The run as the store returned it: its document, revision and owner.
    pub fn from_stored(stored: crate::store::StoredRun) -> anyhow::Result<RunRecord> {
        let mut run: RunRecord = serde_json::from_slice(&stored.doc)
            .map_err(|e| anyhow::anyhow!("the stored run {} is unreadable: {e}", stored.id))?;
        run.revision = Some(stored.revision);
        run.owner = stored.owner;
        Ok(run)
    }

    /// The fields of this run the store indexes.
    pub fn index(&self) -> crate::store::RunIndex {
        crate::store::RunIndex {
            state: self.state,
            workflow: self.workflow.id.clone(),
            started_by: self.started_by.clone(),
            created_at: self.created_at,
        }
    }

    /// Whether a runner must drive this run (start its steps, fire its retries): it is
    /// pending or running.
    pub fn is_live(&self) -> bool {
        matches!(self.state, RunState::Pending | RunState::Running)
    }

    pub fn step(&self, name: &str) -> Option<&StepRecord> {
        self.steps.iter().find(|s| s.name.as_str() == name)
    }

    /// The run without its inputs, outputs and steps: what listings and event payloads show
    /// (inputs and outputs may hold secure strings).
    pub fn summary(&self) -> Value {
        serde_json::json!({
            "id": self.id,
            "workflow": self.workflow.id,
            "version": self.workflow.version,
            "state": self.state,
            "started_by": self.started_by,
            "created_at": rfc3339(self.created_at),
            "ended_at": self.ended_at.map(rfc3339),
            "waiting_steps": self.waiting_step_names(),
            "error": self.error,
        })
    }

    /// The names of the steps waiting now.
    pub fn waiting_step_names(&self) -> Vec<String> {
        self.waiting_steps().map(|s| s.name.to_string()).collect()
    }

    /// What waits now, for error messages: `waiting now: A, B` or why nothing does.
    pub fn describe_waiting(&self) -> String {
        let names = self.waiting_step_names();
        if names.is_empty() {
            format!("no step is waiting (the run is {})", self.state.as_str())
        } else {
            format!("waiting now: {}", names.join(", "))
        }
    }

    /// Steps currently waiting for a person.
    pub fn waiting_steps(&self) -> impl Iterator<Item = &StepRecord> {
        self.steps.iter().filter(|s| s.state == StepState::Waiting)
    }
}

/// One step of a run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StepRecord {
    pub name: StepName,
    /// The plugin digest resolved when the run started; the run never changes plugin.
    pub plugin: Digest,
    /// The `name@version` the plugin was declared as and resolved to when the run started:
    /// whose grant its calls get. `None` for a plugin named by digest (granted nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin_name: Option<String>,
    pub state: StepState,
    /// Attempts made so far (1 after the first call).
    pub attempt: u32,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub ended_at: Option<OffsetDateTime>,
    #[serde(default)]
    pub output: Option<Value>,
    #[serde(default)]
    pub error: Option<String>,
    /// When the next attempt is due, while a retry waits out its backoff.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub retry_at: Option<OffsetDateTime>,
    /// What the step waits for, while it waits.
    #[serde(default)]
    pub waiting: Option<Waiting>,
    /// Answers accepted so far, oldest first.
    #[serde(default)]
    pub answers: Vec<AnswerRecord>,
    /// Time spent inside plugin calls, over all attempts.
    #[serde(default)]
    pub busy_ms: u64,
    /// Time spent waiting for people.
    #[serde(default)]
    pub waited_ms: u64,
    /// Output keys that hold answers to secure-string fields; never shown by the API.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secure_output: Vec<String>,
}

/// The interaction a suspended step waits on, and the plugin's own state to resume with.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Waiting {
    pub prompt: String,
    pub fields: Vec<Field>,
    pub assignees: Vec<String>,
    pub signal_types: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// The plugin's state, handed back to `resume` unchanged (the API does not show it).
    #[serde(default)]
    pub state: Value,
}

/// One field of an interaction form.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Field {
    pub name: String,
    #[serde(rename = "type")]
    pub field_type: FieldType,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub required: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
}

/// The type of a form field or workflow input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FieldType {
    #[default]
    String,
    SecureString,
    Boolean,
    Number,
    Integer,
    DateTime,
    Json,
}

/// An answer the step accepted.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AnswerRecord {
    pub signal_type: String,
    pub answered_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub answered_at: OffsetDateTime,
    /// What was answered, to show: the values of the form's fields only, secure strings
    /// masked and long text cut (see [`AnswerRecord::shown`]). Absent in runs answered
    /// before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl AnswerRecord {
    /// The part of an answer's `data` a run keeps to show who answered what: the fields of
    /// `fields` (nothing else a client sent), secure strings as [`MASK`], strings longer
    /// than [`crate::limits::ANSWER_VALUE_BYTES`] cut, other long values left out.
    pub fn shown(fields: &[Field], data: &Value) -> Value {
        let max = crate::limits::ANSWER_VALUE_BYTES;
        let mut shown = serde_json::Map::new();
        for field in fields {
            let Some(value) = data.get(&field.name) else {
                continue;
            };
            let kept = match value {
                _ if field.field_type == FieldType::SecureString => Value::from(MASK),
                Value::String(text) => Value::from(crate::limits::clip_to(text, max)),
                other if other.to_string().len() <= max => other.clone(),
                _ => Value::from(format!("(a value of more than {max} bytes)")),
            };
            shown.insert(field.name.clone(), kept);
        }
        Value::Object(shown)
    }
}

/// A line of a run's log: a plugin's `log` call or an engine event.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LogLine {
    pub seq: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub level: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<StepName>,
    pub message: String,
}

/// The current time, in UTC.
pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// Formats a time as RFC 3339, as every API and plugin sees it.
pub fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .expect("UTC times always format")
}
