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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
    pub fn as_str(self) -> &'static str {
        match self {
            StepState::Pending => "pending",
            StepState::Running => "running",
            StepState::Waiting => "waiting",
            StepState::Completed => "completed",
            StepState::Failed => "failed",
            StepState::Skipped => "skipped",
            StepState::Canceled => "canceled",
        }
    }

    /// Whether steps that need this one may go on.
    pub fn lets_dependents_run(self) -> bool {
        matches!(self, StepState::Completed | StepState::Skipped)
    }
}

/// The workflow version a run is pinned to.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkflowRef {
    pub id: String,
    pub version: u64,
    /// Digest of the definition's canonical JSON; the definition itself is kept by digest.
    pub digest: Digest,
}

/// One run of one workflow version.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunRecord {
    pub id: RunId,
    pub workflow: WorkflowRef,
    pub state: RunState,
    #[schema(value_type = Object)]
    pub inputs: Value,
    pub started_by: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ended_at: Option<OffsetDateTime>,
    pub steps: Vec<StepRecord>,
    #[serde(default)]
    pub outputs: Option<Value>,
    #[serde(default)]
    pub error: Option<String>,
    /// The run this one restarts, if any, and who restarted it (`started_by` stays the
    /// original run's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarted_from: Option<RunId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarted_by: Option<String>,
    /// The run and step that started this run as a sub-workflow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<ParentRef>,
    /// How many parents up to a run nobody started as a sub-workflow (0 for that one).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub depth: u32,
    /// When the run times out (its workflow's `timeout`).
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub deadline: Option<OffsetDateTime>,
    /// Why the run failed, once it has, for its `on_failure` steps (which run after it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    /// Each time the run was retried from its failed step, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retries: Vec<RetryRecord>,
    /// The schedule that started this run, and the instant it fired for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleRef>,
    /// The scoped `Idempotency-Key` that started this run, forgotten when the run is deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Sequence number of the next log line.
    #[serde(default)]
    pub next_log_seq: u64,
    /// The run's place in a trace, when traces are sent (see [`crate::telemetry::traces`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub trace: Option<crate::telemetry::traces::RunTrace>,
    /// The store's revision of this record as last read or written; `None` until first
    /// stored. Not part of the document: the store keeps it beside it.
    #[serde(skip)]
    pub revision: Option<u64>,
    /// The runner driving this run, as last read or written; not part of the document.
    #[serde(skip)]
    pub owner: Option<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A run in lists and events: who, what and where it is, without inputs or steps.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct RunSummary {
    pub id: RunId,
    pub workflow: String,
    pub version: u64,
    pub state: RunState,
    pub started_by: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub ended_at: Option<String>,
    pub waiting_steps: Vec<String>,
    pub error: Option<String>,
}

/// The run and step a child run was started by.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ParentRef {
    pub run: RunId,
    pub step: String,
}

/// The failure an `on_failure` step reads as `failure`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Failure {
    pub step: String,
    pub error: String,
}

/// One retry of a failed run from its failed steps.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RetryRecord {
    pub by: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    /// The steps run again.
    pub steps: Vec<String>,
    /// The version the run moved to, if it moved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
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
            inputs: Vec::new(),
            waiting_for: if self.state == RunState::Waiting {
                crate::store::waiting_for(
                    self.waiting_steps()
                        .filter_map(|s| s.waiting.as_ref())
                        .flat_map(|w| w.assignees.iter().cloned()),
                )
            } else {
                Vec::new()
            },
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
    pub fn summary(&self) -> RunSummary {
        RunSummary {
            id: self.id,
            workflow: self.workflow.id.clone(),
            version: self.workflow.version,
            state: self.state,
            started_by: self.started_by.clone(),
            created_at: rfc3339(self.created_at),
            ended_at: self.ended_at.map(rfc3339),
            waiting_steps: self.waiting_step_names(),
            error: self.error.clone(),
        }
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

    /// Steps and items currently waiting for a person (not steps waiting for a child run).
    pub fn waiting_steps(&self) -> impl Iterator<Item = &StepRecord> {
        self.units()
            .filter_map(|u| self.record(u))
            .filter(|s| s.state == StepState::Waiting && s.waiting.is_some())
    }

    /// Every step, and every item under way, in step order.
    pub fn units(&self) -> impl Iterator<Item = Unit> + '_ {
        self.steps.iter().enumerate().flat_map(|(i, s)| {
            std::iter::once(Unit::Step(i)).chain(
                s.map
                    .iter()
                    .flat_map(move |m| m.active.keys().map(move |&k| Unit::Item(i, k))),
            )
        })
    }

    pub fn record(&self, unit: Unit) -> Option<&StepRecord> {
        match unit {
            Unit::Step(i) => self.steps.get(i),
            Unit::Item(i, k) => self.steps.get(i)?.map.as_ref()?.active.get(&k).map(|m| &m.record),
        }
    }

    pub fn record_mut(&mut self, unit: Unit) -> Option<&mut StepRecord> {
        match unit {
            Unit::Step(i) => self.steps.get_mut(i),
            Unit::Item(i, k) => self
                .steps
                .get_mut(i)?
                .map
                .as_mut()?
                .active
                .get_mut(&k)
                .map(|m| &mut m.record),
        }
    }

    /// The unit named `name`: a step (`Approve`), or an item under way (`Approve[3]`).
    pub fn unit_named(&self, name: &str) -> Option<Unit> {
        if let Some(i) = self.steps.iter().position(|s| s.name.as_str() == name) {
            return Some(Unit::Step(i));
        }
        let (step, rest) = name.split_once('[')?;
        let k: usize = rest.strip_suffix(']')?.parse().ok()?;
        let i = self.steps.iter().position(|s| s.name.as_str() == step)?;
        self.steps[i]
            .map
            .as_ref()?
            .active
            .contains_key(&k)
            .then_some(Unit::Item(i, k))
    }

    /// The child runs this run started, oldest step first.
    pub fn children(&self) -> impl Iterator<Item = RunId> + '_ {
        self.steps.iter().filter_map(|s| s.child)
    }
}

/// One step of a run.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StepRecord {
    pub name: StepName,
    /// The plugin digest resolved when the run started; the run never changes plugin. None
    /// for a step that starts a workflow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<Digest>,
    /// The child run this step started (a step with `workflow`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child: Option<RunId>,
    /// A `for_each` step's progress and the items under way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map: Option<MapState>,
    /// The input its next attempt gets instead of its rendered `input` (set by a retry that
    /// corrected it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_override: Option<Value>,
    /// The `name@version` the plugin was declared as and resolved to when the run started:
    /// whose grant its calls get. `None` for a plugin named by digest (granted nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin_name: Option<String>,
    pub state: StepState,
    /// Attempts made so far (1 after the first call).
    pub attempt: u32,
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub started_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ended_at: Option<OffsetDateTime>,
    #[serde(default)]
    pub output: Option<Value>,
    #[serde(default)]
    pub error: Option<String>,
    /// When the next attempt is due, while a retry waits out its backoff.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub retry_at: Option<OffsetDateTime>,
    /// What the step waits for, while it waits.
    #[serde(default)]
    pub waiting: Option<Waiting>,
    /// The time or the events a `sleep`, `until` or `wait_for` step waits for, while it waits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<Pause>,
    /// Answers accepted so far, oldest first.
    #[serde(default)]
    pub answers: Vec<AnswerRecord>,
    /// Everyone the step was ever assigned to while it waited (names and `group:` names),
    /// kept after it stops waiting: the people asked still see the run and who answered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub asked: Vec<String>,
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

/// Where a `for_each` step is. Only the items under way are kept here (at most its
/// concurrency); every item's value and result are stored apart, so a transition writes what
/// changed, not the whole list.
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MapState {
    /// Items in the list.
    pub total: usize,
    /// Items started so far (they are started in order).
    pub next: usize,
    pub completed: usize,
    pub failed: usize,
    /// Items under way (running, waiting for a person, or waiting out a retry), by index.
    #[serde(default)]
    pub active: std::collections::BTreeMap<usize, MapItem>,
}

/// An item under way: its value (what `item` is) and its record, as a step's.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MapItem {
    pub value: Value,
    // The schema refers back to StepRecord's; collecting schemas must not recurse.
    #[schema(no_recursion)]
    pub record: StepRecord,
}

/// One part of a run that calls a plugin or waits: a step, or an item under way of a
/// `for_each` step (step index, item index).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Unit {
    Step(usize),
    Item(usize, usize),
}

impl Unit {
    /// The step this unit is, or belongs to.
    pub fn step(self) -> usize {
        match self {
            Unit::Step(i) | Unit::Item(i, _) => i,
        }
    }
}

/// A schedule's fire that started a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ScheduleRef {
    pub id: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub fire_at: OffsetDateTime,
}

/// What a step that waits for no person waits for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "for", rename_all = "snake_case")]
pub enum Pause {
    /// `sleep` or `until`: the step completes at `until`.
    Time {
        #[serde(with = "time::serde::rfc3339")]
        #[schema(value_type = String, format = DateTime)]
        until: OffsetDateTime,
    },
    /// `wait_for`: the first matching event completes the step; at `until` (its timeout),
    /// without one, it fails. Events received from `since - lookback` on count.
    Events {
        events: Vec<EventMatch>,
        #[serde(with = "time::serde::rfc3339")]
        #[schema(value_type = String, format = DateTime)]
        since: OffsetDateTime,
        #[serde(default, with = "time::serde::rfc3339::option")]
        #[schema(value_type = Option<String>, format = DateTime)]
        until: Option<OffsetDateTime>,
        lookback_ms: u64,
    },
}

impl Pause {
    /// When the step stops waiting by itself (its timer), if it does.
    pub fn due(&self) -> Option<OffsetDateTime> {
        match self {
            Pause::Time { until } => Some(*until),
            Pause::Events { until, .. } => *until,
        }
    }
}

/// An event a step waits for: its name and key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventMatch {
    pub event: String,
    pub key: String,
}

/// The interaction a suspended step waits on, and the plugin's own state to resume with.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Waiting {
    pub prompt: String,
    pub fields: Vec<Field>,
    pub assignees: Vec<String>,
    pub signal_types: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub since: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<OffsetDateTime>,
    /// The plugin's state, handed back to `resume` unchanged. The API shows a copy with it
    /// nulled, and null is never written (it reads back as null).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    #[schema(ignore)]
    pub state: Value,
    /// When the next reminder goes out (the step's `remind_every`), and how many went out.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub remind_at: Option<OffsetDateTime>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reminders: u32,
    /// Each time the interaction expired and was handed to other people (`on_expiry:
    /// {escalate_to: [...]}`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub escalations: Vec<Escalation>,
}

/// An interaction handed to other people when it expired.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Escalation {
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    pub from: Vec<String>,
    pub to: Vec<String>,
}

/// One field of an interaction form.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AnswerRecord {
    pub signal_type: String,
    pub answered_by: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
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
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LogLine {
    pub seq: u64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    pub level: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<StepName>,
    pub message: String,
}

/// One line of a log file: `time level [step] message`.
impl std::fmt::Display for LogLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", rfc3339(self.at), self.level)?;
        if let Some(step) = &self.step {
            write!(f, " [{step}]")?;
        }
        write!(f, " {}", self.message)
    }
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
