//! Workflow definitions: parsing (YAML or JSON, one schema) and validation.
//!
//! A [`Definition`] is the document as written and stored. [`Workflow`] is a definition that
//! passed every check — names, plugins, the `needs` graph, expressions and the references they
//! make — so the engine never re-checks it. Validation collects every problem at once, each
//! with its path (`steps[2].input.cn: unknown reference steps.Foo`).
//!
//! Nothing here is recursive in the size of its input, and every size is bounded by
//! [`Limits`]: a definition's nesting depth is checked on the text before it is parsed, and
//! the `needs` graph is walked with explicit stacks. Templates are never compiled here: the
//! template engine (in the sandbox) reads them first, and validation checks what it found.

use crate::limits::Limits;
use crate::names::{Digest, PluginRef, StepName};
use crate::plugins::Contract;
use crate::run::FieldType;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use weft_template::TemplateError;

/// How long a plugin call may take when its step sets no `timeout`.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// A workflow as written.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Definition {
    pub id: String,
    #[serde(default = "first_version")]
    pub version: u64,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub inputs: BTreeMap<String, InputSpec>,
    pub steps: Vec<StepDefinition>,
    /// Steps run when the run fails (compensation); they may read every step and `failure`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_failure: Vec<StepDefinition>,
    #[serde(default)]
    pub outputs: Map<String, Value>,
    /// The run's deadline: past it, the run fails and its interactions are canceled.
    #[serde(default, with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// How long its finished runs are kept (`0s`: forever); the server's default otherwise.
    #[serde(default, with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub retention: Option<Duration>,
}

fn first_version() -> u64 {
    1
}

/// A declared workflow input.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    #[serde(rename = "type", default)]
    pub input_type: FieldType,
    /// Defaults to true when no `default` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    #[serde(default)]
    pub description: String,
}

/// A step as written: it calls a plugin, or starts a run of another workflow.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepDefinition {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
    /// `ID` or `ID@VERSION`: the step runs that workflow as a child run; `input` is its inputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    #[serde(default = "empty_object")]
    pub input: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// Steps that must finish first. Without `needs`, a step runs after the one before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub needs: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
    #[serde(default, with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Tighter memory and output caps for this step's plugin calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<StepLimits>,
    /// A template giving a list: the step runs once per item (`item`, `index`), and its output
    /// is the list of the items' outputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_each: Option<String>,
    /// Items of a `for_each` under way at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_item_failure: Option<ItemFailure>,
    /// A failure of this step does not fail the run; the steps after it go on.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub continue_on_error: bool,
    /// The step waits this long, holding no plugin call and no memory.
    #[serde(default, with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub sleep: Option<Duration>,
    /// A template giving an RFC 3339 time: the step waits until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// The step waits for an event sent to `POST /v1/events` (or the first of several).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_for: Option<WaitFor>,
    /// While the step waits for a person, an `interaction.reminder` event goes out this often.
    #[serde(default, with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub remind_every: Option<Duration>,
}

/// `wait_for`: one event (`event` and `key`) or the first of several (`any`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitFor {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// A template; the event must carry this key (empty: events sent without a key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub any: Vec<EventPattern>,
    /// Without a matching event by then, the step fails.
    #[serde(default, with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Events received this long before the step began waiting still count.
    #[serde(default, with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub lookback: Option<Duration>,
}

/// One of the events a `wait_for: {any: [...]}` step waits for.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventPattern {
    pub event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// How long before a step began waiting an event may have arrived and still count.
pub const DEFAULT_LOOKBACK: Duration = Duration::from_secs(3600);

impl StepDefinition {
    /// What the template engine renders when the step starts: its `input`, or for a step
    /// that waits (`until`, `wait_for`) the templates of those, laid out as written so a
    /// problem's path names them (`steps[2].wait_for.key`).
    pub fn call_template(&self) -> std::borrow::Cow<'_, Value> {
        use std::borrow::Cow;
        if let Some(until) = &self.until {
            return Cow::Owned(serde_json::json!({ "until": until }));
        }
        if let Some(wait) = &self.wait_for {
            let key = |k: &Option<String>| Value::String(k.clone().unwrap_or_default());
            let wait_for = if wait.any.is_empty() {
                serde_json::json!({ "key": key(&wait.key) })
            } else {
                serde_json::json!({ "any": wait.any.iter().map(|p| serde_json::json!({ "key": key(&p.key) })).collect::<Vec<_>>() })
            };
            return Cow::Owned(serde_json::json!({ "wait_for": wait_for }));
        }
        if self.sleep.is_some() {
            return Cow::Owned(Value::Object(Map::new()));
        }
        Cow::Borrowed(&self.input)
    }

    /// Whether the step pauses the run itself (`sleep`, `until`, `wait_for`) rather than
    /// calling something.
    pub fn pauses(&self) -> bool {
        self.sleep.is_some() || self.until.is_some() || self.wait_for.is_some()
    }
}

/// What a `for_each` step does when an item fails.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemFailure {
    /// The step fails at the first failed item; items under way are abandoned.
    #[default]
    FailFast,
    /// Every item runs; a failed item's place in the output holds `{"error": ...}`.
    Collect,
}

/// Items of a `for_each` under way at once unless the step says otherwise.
pub const DEFAULT_CONCURRENCY: usize = 10;

/// Per-step caps, within the host's own maximums.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepLimits {
    pub memory_mb: Option<usize>,
    pub max_output_kb: Option<usize>,
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

/// How often a failed step is tried again, and how long to wait between tries.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Wait before the second attempt; doubles for each later one.
    #[serde(default = "default_backoff", with = "humantime_serde")]
    pub backoff: Duration,
    #[serde(default = "default_max_backoff", with = "humantime_serde")]
    pub max_backoff: Duration,
}

fn default_backoff() -> Duration {
    Duration::from_secs(1)
}

fn default_max_backoff() -> Duration {
    Duration::from_secs(300)
}

impl RetryPolicy {
    const NONE: RetryPolicy = RetryPolicy {
        max_attempts: 1,
        backoff: Duration::ZERO,
        max_backoff: Duration::ZERO,
    };

    /// The wait after failed attempt number `attempt` (1-based).
    pub fn backoff_after(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.backoff.saturating_mul(factor).min(self.max_backoff)
    }
}

/// A definition that passed validation.
#[derive(Debug)]
pub struct Workflow {
    pub definition: Definition,
    pub digest: Digest,
    pub steps: Vec<Step>,
    /// The dotted names the `outputs` template reads.
    pub output_names: Vec<String>,
}

impl Workflow {
    /// A run's `inputs` with the values of secure-string inputs replaced by
    /// [`crate::run::MASK`], for showing.
    pub fn masked_inputs(&self, inputs: &Value) -> Value {
        let mut shown = inputs.clone();
        if let Some(values) = shown.as_object_mut() {
            for (name, spec) in &self.definition.inputs {
                if spec.input_type == FieldType::SecureString {
                    if let Some(value) = values.get_mut(name) {
                        *value = Value::from(crate::run::MASK);
                    }
                }
            }
        }
        shown
    }
}

/// What a step runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    Plugin(PluginRef),
    /// A child run of workflow `id`, at `version` or its active version when the step starts.
    Workflow {
        id: String,
        version: Option<u64>,
    },
    /// `sleep: 3d` (a fixed wait) or `until:` (a rendered time).
    Sleep(Option<Duration>),
    /// `wait_for`: the events, in order (their keys are rendered when the step starts).
    Events {
        names: Vec<String>,
        timeout: Option<Duration>,
        lookback: Duration,
    },
}

/// When a step may run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Main,
    /// Only once the run failed (a workflow's `on_failure` steps).
    OnFailure,
}

/// A validated `for_each`.
#[derive(Debug)]
pub struct ForEach {
    pub concurrency: usize,
    pub on_item_failure: ItemFailure,
    /// The dotted names the `for_each` template reads.
    pub names: Vec<String>,
}

/// A validated step. A workflow's `on_failure` steps follow its main steps, in one list.
#[derive(Debug)]
pub struct Step {
    pub name: StepName,
    pub call: Call,
    pub phase: Phase,
    /// Indices of the steps that must complete (or be skipped) first.
    pub needs: Vec<usize>,
    pub retry: RetryPolicy,
    /// Deadline (the step's `timeout`), memory and output caps for each plugin call.
    pub limits: crate::plugins::Limits,
    /// The dotted names its `input` template reads (`inputs.cn`, `steps.A.output`).
    pub input_names: Vec<String>,
    /// The dotted names its `when` expression reads.
    pub when_names: Vec<String>,
    pub for_each: Option<ForEach>,
    pub continue_on_error: bool,
}

impl Step {
    /// The plugin this step calls, if it calls one.
    pub fn plugin(&self) -> Option<&PluginRef> {
        match &self.call {
            Call::Plugin(plugin) => Some(plugin),
            _ => None,
        }
    }
}

/// One problem in a definition or in run inputs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

/// Every problem found, one per line.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            if p.path.is_empty() {
                write!(f, "{}", p.message)?;
            } else {
                write!(f, "{}: {}", p.path, p.message)?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

/// Most problems reported at once; the rest are counted in a last line, so an error never
/// grows with the size of the input.
pub const MAX_PROBLEMS: usize = 100;

struct Collector(Vec<Problem>, usize);

impl Collector {
    fn new() -> Collector {
        Collector(Vec::new(), 0)
    }

    fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        if self.0.len() < MAX_PROBLEMS {
            self.0.push(Problem {
                path: path.into(),
                message: crate::limits::clip(&message.into()),
            });
        } else {
            self.1 += 1;
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn into_problems(mut self) -> Problems {
        if self.1 > 0 {
            self.0.push(Problem {
                path: String::new(),
                message: format!("…and {} more problems", self.1),
            });
        }
        Problems(self.0)
    }
}

/// Parses a definition from YAML or JSON text (JSON is YAML, so one parser reads both).
pub fn parse(text: &str, limits: &Limits) -> Result<Definition, Problems> {
    from_value(parse_document(text, limits)?)
}

/// Parses YAML or JSON text into a document, after checking its size and, without parsing,
/// its nesting depth: a parser's work on a deeply nested text is not linear, and a deep value
/// is recursive to drop.
pub fn parse_document(text: &str, limits: &Limits) -> Result<Value, Problems> {
    let max_bytes = limits.definition_kb << 10;
    if text.len() > max_bytes {
        return Err(problem(
            "",
            format!(
                "the definition is {} KiB; at most {} KiB are accepted (limits.definition_kb)",
                text.len() >> 10,
                limits.definition_kb
            ),
        ));
    }
    crate::nesting::check(text, limits.nesting_depth).map_err(|e| problem("", e))?;
    serde_norway::from_str(text).map_err(|e| {
        problem(
            "",
            format!("not valid YAML or JSON: {}", crate::limits::clip(&e.to_string())),
        )
    })
}

fn problem(path: &str, message: impl Into<String>) -> Problems {
    Problems(vec![Problem {
        path: path.to_owned(),
        message: message.into(),
    }])
}

/// Reads a definition from an already-parsed document (the API parses YAML or JSON first).
pub fn from_value(document: Value) -> Result<Definition, Problems> {
    serde_path_to_error::deserialize(document).map_err(located)
}

/// A deserialization error as a problem at its path.
fn located<E: fmt::Display>(e: serde_path_to_error::Error<E>) -> Problems {
    let path = e.path().to_string();
    Problems(vec![Problem {
        path: if path == "." { String::new() } else { path },
        message: crate::limits::clip(&e.inner().to_string()),
    }])
}

/// Something in a definition the template engine must read: a JSON template (a step's
/// `input`, the `outputs`) or a bare expression (a step's `when`).
#[derive(Clone, Debug)]
pub enum TemplateSource {
    Template(Value),
    Expression(String),
}

/// What the template engine read in one source: for each string, its path below the source
/// and the dotted names it reads; or every syntax problem.
pub type TemplateRead = Result<Vec<(String, Vec<String>)>, Vec<TemplateError>>;

impl Definition {
    /// Every step, main steps first, then the `on_failure` steps.
    pub fn all_steps(&self) -> impl Iterator<Item = &StepDefinition> {
        self.steps.iter().chain(&self.on_failure)
    }

    /// Every template in the definition, in the order [`Workflow::validate`] expects their
    /// reads: for each step (main, then `on_failure`) its `input`, its `when` and its
    /// `for_each` (those it has), then the `outputs`.
    pub fn template_sources(&self) -> Vec<TemplateSource> {
        let mut sources = Vec::new();
        for step in self.all_steps() {
            sources.push(TemplateSource::Template(step.call_template().into_owned()));
            if let Some(when) = &step.when {
                sources.push(TemplateSource::Expression(when.clone()));
            }
            if let Some(for_each) = &step.for_each {
                sources.push(TemplateSource::Template(Value::String(for_each.clone())));
            }
        }
        sources.push(TemplateSource::Template(Value::Object(self.outputs.clone())));
        sources
    }

    /// The digest of the definition's canonical JSON: its identity in the store.
    pub fn digest(&self) -> Digest {
        Digest::of(&serde_json::to_vec(self).expect("definitions serialize"))
    }
}

/// What looking up a step's plugin found: an error to report, or the plugin, with the
/// contract its step input is checked against when it describes one.
pub type PluginLookup = Result<Option<Arc<Contract>>, String>;

impl Workflow {
    /// The definition of step `i` (main steps first, then `on_failure` steps, as `steps`).
    pub fn definition_of(&self, i: usize) -> &StepDefinition {
        let main = self.definition.steps.len();
        if i < main {
            &self.definition.steps[i]
        } else {
            &self.definition.on_failure[i - main]
        }
    }

    /// Validates `definition`; `plugin_exists` says whether a plugin reference resolves, and
    /// to a plugin with which contract (each step's literal input is checked against it), and
    /// `reads` is what the template engine found in [`Definition::template_sources`], in order.
    pub fn validate(
        definition: Definition,
        plugin_exists: &dyn Fn(&PluginRef) -> PluginLookup,
        reads: &[TemplateRead],
        limits: &Limits,
    ) -> Result<Workflow, Problems> {
        Self::check(definition, plugin_exists, reads, Some(limits))
    }

    /// Rebuilds a definition the store holds: it passed [`Workflow::validate`] when it was
    /// stored, and stays usable if the plugins or the limits have changed since (runs use
    /// pinned digests).
    pub fn from_stored(definition: Definition, reads: &[TemplateRead]) -> Result<Workflow, Problems> {
        Self::check(definition, &|_| Ok(None), reads, None)
    }

    /// The same workflow under another version number; validity does not depend on it.
    pub fn with_version(mut self, version: u64) -> Workflow {
        self.definition.version = version;
        self.digest = self.definition.digest();
        self
    }

    fn check(
        definition: Definition,
        plugin_exists: &dyn Fn(&PluginRef) -> PluginLookup,
        reads: &[TemplateRead],
        limits: Option<&Limits>,
    ) -> Result<Workflow, Problems> {
        let mut problems = Collector::new();
        check_id(&definition.id, &mut problems);
        if let Some(limits) = limits {
            if !check_sizes(&definition, limits, &mut problems) {
                // Too large to check further: the other checks are bounded by these limits.
                return Err(problems.into_problems());
            }
        }
        for (name, spec) in &definition.inputs {
            let path = format!("inputs.{name}");
            if let Some(default) = &spec.default {
                if let Err(message) = coerce(spec.input_type, default) {
                    problems.add(format!("{path}.default"), message);
                }
            }
        }
        if definition.timeout == Some(Duration::ZERO) {
            problems.add("timeout", "must be more than 0s");
        }

        // Main steps, then `on_failure` steps, in one index space.
        let main = definition.steps.len();
        let all: Vec<(&StepDefinition, Phase, String)> = definition
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s, Phase::Main, format!("steps[{i}]")))
            .chain(
                definition
                    .on_failure
                    .iter()
                    .enumerate()
                    .map(|(k, s)| (s, Phase::OnFailure, format!("on_failure[{k}]"))),
            )
            .collect();

        // Every check below runs even when an earlier one found problems, so one pass
        // reports everything; a step whose name or call is unusable is only left out of
        // the final result.
        let mut index: HashMap<&str, usize> = HashMap::new();
        let mut typed = Vec::new();
        for (i, (step, _, path)) in all.iter().enumerate() {
            if let Some(&first) = index.get(step.name.as_str()) {
                problems.add(
                    format!("{path}.name"),
                    format!(
                        "duplicate step name {}: {} has it too; step names must be unique",
                        step.name, all[first].2
                    ),
                );
            } else {
                index.insert(&step.name, i);
            }
            let name = StepName::try_from(step.name.clone())
                .and_then(|n| {
                    if n.is_item() {
                        Err(format!(
                            "invalid step name {:?}: use a letter followed by letters, digits, `_` or `-` \
                             (`Name[3]` names an item of a for_each step)",
                            step.name
                        ))
                    } else {
                        Ok(n)
                    }
                })
                .map_err(|m| problems.add(format!("{path}.name"), m));
            let call = check_call(step, path, plugin_exists, &mut problems);
            check_step_options(step, path, limits, &mut problems);
            typed.push(name.ok().zip(call));
        }
        if definition.steps.is_empty() {
            problems.add("steps", "a workflow needs at least one step");
        }

        // A step needs steps of its own phase; without `needs`, the one before it.
        let needs: Vec<Vec<usize>> = all
            .iter()
            .enumerate()
            .map(|(i, (step, phase, path))| {
                let first_of_phase = i == 0 || i == main;
                match &step.needs {
                    None if first_of_phase => Vec::new(),
                    None => vec![i - 1],
                    Some(needs) => needs
                        .iter()
                        .enumerate()
                        .filter_map(|(j, need)| match index.get(need.as_str()) {
                            Some(&k) if k == i => {
                                problems.add(format!("{path}.needs[{j}]"), "a step cannot need itself");
                                None
                            }
                            Some(&k) if all[k].1 != *phase => {
                                problems.add(
                                    format!("{path}.needs[{j}]"),
                                    match phase {
                                        Phase::OnFailure => format!(
                                            "{need} is a main step: on_failure steps run once the run failed and may \
                                             need only on_failure steps (they may still read any step)"
                                        ),
                                        Phase::Main => format!(
                                            "{need} is an on_failure step: it runs only once the run failed"
                                        ),
                                    },
                                );
                                None
                            }
                            Some(&k) => Some(k),
                            None => {
                                problems.add(format!("{path}.needs[{j}]"), format!("unknown step {need}"));
                                None
                            }
                        })
                        .collect(),
                }
            })
            .collect();
        let everything = Ancestors::all(all.len());
        let ancestors = match ancestors(&needs) {
            Ok(ancestors) => Some(ancestors),
            Err(cycle) => {
                let names: Vec<&str> = cycle.iter().map(|&i| all[i].0.name.as_str()).collect();
                problems.add("steps", format!("cycle in needs: {}", names.join(" -> ")));
                // No order to check references against: check only that they exist.
                None
            }
        };
        let main_steps = Ancestors::all(main);
        let refs = References {
            inputs: &definition.inputs,
            index: &index,
        };
        if reads.len() != definition.template_sources().len() {
            problems.add("", "internal: the template reads do not match the definition");
            return Err(problems.into_problems());
        }
        let mut reads = reads.iter();
        let mut names = Vec::new();
        for (i, (step, phase, path)) in all.iter().enumerate() {
            let own = match &ancestors {
                Some(ancestors) => ancestors.of(i),
                None => everything.of(0),
            };
            // An on_failure step may read any main step: the run got as far as it did.
            let visible = match phase {
                Phase::Main => Scope::steps(own),
                Phase::OnFailure => Scope::steps(own).or(main_steps.of(0)).with_failure(),
            };
            let input_scope = if step.for_each.is_some() {
                visible.with_item()
            } else {
                visible
            };
            let input_path = if step.pauses() {
                path.clone()
            } else {
                format!("{path}.input")
            };
            let input = refs.check_read(reads.next(), &input_path, &input_scope, &mut problems);
            let when = match &step.when {
                Some(_) => refs.check_read(reads.next(), &format!("{path}.when"), &visible, &mut problems),
                None => Vec::new(),
            };
            let for_each = match &step.for_each {
                Some(_) => {
                    refs.check_read(reads.next(), &format!("{path}.for_each"), &visible, &mut problems)
                }
                None => Vec::new(),
            };
            names.push((input, when, for_each));
        }
        let output_names = refs.check_read(
            reads.next(),
            "outputs",
            &Scope::steps(everything.of(0)),
            &mut problems,
        );
        if !problems.is_empty() {
            return Err(problems.into_problems());
        }

        let steps = typed
            .into_iter()
            .zip(needs)
            .zip(names)
            .zip(&all)
            .filter_map(
                |(((typed, needs), (input_names, when_names, for_each_names)), (step, phase, _))| {
                    let (name, call) = typed?;
                    Some(Step {
                        name,
                        call,
                        phase: *phase,
                        needs,
                        retry: step.retry.unwrap_or(RetryPolicy::NONE),
                        limits: step_limits(step),
                        input_names,
                        when_names,
                        for_each: step.for_each.as_ref().map(|_| ForEach {
                            concurrency: step.concurrency.unwrap_or(DEFAULT_CONCURRENCY),
                            on_item_failure: step.on_item_failure.unwrap_or_default(),
                            names: for_each_names,
                        }),
                        continue_on_error: step.continue_on_error,
                    })
                },
            )
            .collect();
        let digest = definition.digest();
        Ok(Workflow {
            definition,
            digest,
            steps,
            output_names,
        })
    }

    /// Checks and completes run inputs: unknown names, missing required ones, types; applies
    /// defaults. Strings are converted to the declared type (`"2048"` for an integer).
    pub fn bind_inputs(&self, mut given: Map<String, Value>) -> Result<Value, Problems> {
        let mut problems = Collector::new();
        let mut bound = Map::new();
        for (name, spec) in &self.definition.inputs {
            let path = format!("inputs.{name}");
            match given.remove(name).or_else(|| spec.default.clone()) {
                Some(value) => match coerce(spec.input_type, &value) {
                    Ok(value) => {
                        bound.insert(name.clone(), value);
                    }
                    Err(message) => problems.add(path, message),
                },
                None if spec.required.unwrap_or(true) => {
                    problems.add(path, "required input is missing; pass it with --input NAME=VALUE")
                }
                None => {
                    bound.insert(name.clone(), Value::Null);
                }
            }
        }
        let known: Vec<&str> = self.definition.inputs.keys().map(String::as_str).collect();
        for name in given.keys() {
            problems.add(
                format!("inputs.{}", crate::limits::clip(name)),
                format!("unknown input; this workflow takes: {}", known.join(", ")),
            );
        }
        if problems.is_empty() {
            Ok(Value::Object(bound))
        } else {
            Err(problems.into_problems())
        }
    }
}

/// What a step runs: exactly one of `plugin` and `workflow`, each well formed.
fn check_call(
    step: &StepDefinition,
    path: &str,
    plugin_exists: &dyn Fn(&PluginRef) -> PluginLookup,
    problems: &mut Collector,
) -> Option<Call> {
    if step.pauses() {
        return check_pause(step, path, problems);
    }
    match (&step.plugin, &step.workflow) {
        (Some(plugin), None) => {
            let plugin = plugin
                .parse::<PluginRef>()
                .map_err(|m| problems.add(format!("{path}.plugin"), m))
                .ok()?;
            match plugin_exists(&plugin) {
                Err(message) => problems.add(format!("{path}.plugin"), message),
                // Each item of a `for_each` gets this input rendered: `{{ item }}` is a
                // template like any other, checked once rendered.
                Ok(Some(contract)) => {
                    for m in contract.check_literal(&step.input) {
                        problems.add(format!("{path}.input{}", m.path), m.message);
                    }
                }
                Ok(None) => {}
            }
            Some(Call::Plugin(plugin))
        }
        (None, Some(workflow)) => {
            let (id, version) = match workflow.split_once('@') {
                Some((id, version)) => match version.parse::<u64>() {
                    Ok(v) if v > 0 => (id, Some(v)),
                    _ => {
                        problems.add(
                            format!("{path}.workflow"),
                            format!("{workflow:?}: a version is a whole number from 1, as in {id}@2"),
                        );
                        return None;
                    }
                },
                None => (workflow.as_str(), None),
            };
            let before = problems.0.len() + problems.1;
            check_id(id, problems);
            if problems.0.len() + problems.1 > before {
                // check_id names the path `id`; say which step's workflow it was.
                if let Some(last) = problems.0.last_mut() {
                    last.path = format!("{path}.workflow");
                }
                return None;
            }
            if step.for_each.is_some() {
                problems.add(
                    format!("{path}.for_each"),
                    "a step that starts a workflow cannot map over a list yet; map a plugin step",
                );
            }
            Some(Call::Workflow {
                id: id.to_owned(),
                version,
            })
        }
        (Some(_), Some(_)) => {
            problems.add(
                path.to_owned(),
                "a step has either `plugin` or `workflow`, not both",
            );
            None
        }
        (None, None) => {
            problems.add(
                path.to_owned(),
                "a step needs `plugin` (the plugin it calls), `workflow` (the workflow it starts), \
                 `sleep`, `until` or `wait_for`",
            );
            None
        }
    }
}

/// A step that pauses the run: exactly one of `sleep`, `until` and `wait_for`, and nothing
/// that belongs to a call.
fn check_pause(step: &StepDefinition, path: &str, problems: &mut Collector) -> Option<Call> {
    let given: Vec<&str> = [
        ("sleep", step.sleep.is_some()),
        ("until", step.until.is_some()),
        ("wait_for", step.wait_for.is_some()),
    ]
    .into_iter()
    .filter_map(|(k, on)| on.then_some(k))
    .collect();
    let before = problems.0.len() + problems.1;
    if given.len() > 1 {
        problems.add(
            path.to_owned(),
            format!(
                "a step has one of `sleep`, `until` and `wait_for`, not {}",
                given.join(" and ")
            ),
        );
    }
    for (field, set) in [
        ("plugin", step.plugin.is_some()),
        ("workflow", step.workflow.is_some()),
        ("for_each", step.for_each.is_some()),
        ("retry", step.retry.is_some()),
        ("limits", step.limits.is_some()),
        ("timeout", step.timeout.is_some()),
        ("remind_every", step.remind_every.is_some()),
        ("input", step.input.as_object().is_none_or(|m| !m.is_empty())),
    ] {
        if set {
            problems.add(
                format!("{path}.{field}"),
                format!("a step with `{}` has no `{field}`", given[0]),
            );
        }
    }
    if step.sleep == Some(Duration::ZERO) {
        problems.add(format!("{path}.sleep"), "must be more than 0s");
    }
    let call = match &step.wait_for {
        Some(wait) => {
            let mut names = Vec::new();
            match (&wait.event, wait.any.is_empty()) {
                (Some(event), true) => names.push((format!("{path}.wait_for.event"), event.clone())),
                (None, false) => {
                    if wait.key.is_some() {
                        problems.add(
                            format!("{path}.wait_for.key"),
                            "with `any`, each event has its own key",
                        );
                    }
                    for (k, p) in wait.any.iter().enumerate() {
                        names.push((format!("{path}.wait_for.any[{k}].event"), p.event.clone()));
                    }
                }
                (Some(_), false) => problems.add(
                    format!("{path}.wait_for"),
                    "either `event` (one event) or `any` (the first of several), not both",
                ),
                (None, true) => problems.add(
                    format!("{path}.wait_for"),
                    "name the event: `wait_for: {event: payment.received, key: \"{{ inputs.order_id }}\"}`",
                ),
            }
            for (at, name) in &names {
                if let Err(message) = crate::names::check_event_name(name) {
                    problems.add(at.clone(), message);
                }
            }
            if wait.timeout == Some(Duration::ZERO) {
                problems.add(format!("{path}.wait_for.timeout"), "must be more than 0s");
            }
            Call::Events {
                names: names.into_iter().map(|(_, n)| n).collect(),
                timeout: wait.timeout,
                lookback: wait.lookback.unwrap_or(DEFAULT_LOOKBACK),
            }
        }
        None => Call::Sleep(step.sleep),
    };
    (problems.0.len() + problems.1 == before).then_some(call)
}

/// A step's retry, timeout, limits and `for_each` options.
fn check_step_options(step: &StepDefinition, path: &str, limits: Option<&Limits>, problems: &mut Collector) {
    if let Some(retry) = &step.retry {
        if retry.max_attempts == 0 {
            problems.add(format!("{path}.retry.max_attempts"), "must be at least 1");
        }
    }
    if step.timeout == Some(Duration::ZERO) {
        problems.add(format!("{path}.timeout"), "must be more than 0s");
    }
    let max_mb = crate::plugins::Limits::MAX_MEMORY_BYTES >> 20;
    if let Some(mb) = step.limits.and_then(|l| l.memory_mb) {
        if mb == 0 || mb > max_mb {
            problems.add(
                format!("{path}.limits.memory_mb"),
                format!("must be between 1 and {max_mb}"),
            );
        }
    }
    if step.limits.and_then(|l| l.max_output_kb) == Some(0) {
        problems.add(format!("{path}.limits.max_output_kb"), "must be at least 1");
    }
    if step.for_each.is_none() {
        if step.concurrency.is_some() {
            problems.add(
                format!("{path}.concurrency"),
                "only a step with `for_each` has a concurrency",
            );
        }
        if step.on_item_failure.is_some() {
            problems.add(
                format!("{path}.on_item_failure"),
                "only a step with `for_each` has items that can fail",
            );
        }
    }
    if let (Some(wait), Some(limits)) = (&step.wait_for, limits) {
        if wait.lookback.unwrap_or(DEFAULT_LOOKBACK) > limits.event_retention {
            problems.add(
                format!("{path}.wait_for.lookback"),
                format!(
                    "events are kept for {} (limits.event_retention); a step may look back at most that far",
                    humantime::format_duration(limits.event_retention)
                ),
            );
        }
    }
    let most = limits.map_or(usize::MAX, |l| l.for_each_concurrency);
    if let Some(n) = step.concurrency {
        if n == 0 || n > most {
            problems.add(
                format!("{path}.concurrency"),
                format!("must be between 1 and {most} (limits.for_each_concurrency)"),
            );
        }
    }
}

/// A step's call limits: the defaults, tightened or widened as the step says.
fn step_limits(step: &StepDefinition) -> crate::plugins::Limits {
    let defaults = crate::plugins::Limits::with_deadline(step.timeout.unwrap_or(DEFAULT_STEP_TIMEOUT));
    let limits = step.limits.unwrap_or(StepLimits {
        memory_mb: None,
        max_output_kb: None,
    });
    crate::plugins::Limits {
        memory_bytes: limits.memory_mb.map_or(defaults.memory_bytes, |mb| mb << 20),
        max_output_bytes: limits
            .max_output_kb
            .map_or(defaults.max_output_bytes, |kb| kb << 10),
        ..defaults
    }
}

/// Checks that a workflow id is usable in URLs and file names.
fn check_id(id: &str, problems: &mut Collector) {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        problems.add(
            "id",
            format!("invalid workflow id {id:?}: use letters, digits, `-`, `_` or `.`"),
        );
    }
}

/// Converts `value` to `field_type`, accepting strings for scalar types.
pub fn coerce(field_type: FieldType, value: &Value) -> Result<Value, String> {
    let wrong = || format!("expected {}, got {value}", type_name(field_type));
    match (field_type, value) {
        (FieldType::String | FieldType::SecureString, Value::String(_)) => Ok(value.clone()),
        (FieldType::Boolean, Value::Bool(_)) => Ok(value.clone()),
        (FieldType::Boolean, Value::String(s)) => match s.to_ascii_lowercase().as_str() {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(wrong()),
        },
        (FieldType::Number, Value::Number(_)) => Ok(value.clone()),
        (FieldType::Integer, Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(value.clone()),
        (FieldType::Number | FieldType::Integer, Value::String(s)) => {
            match serde_json::from_str::<Value>(s.trim()) {
                Ok(parsed @ Value::Number(_)) => coerce(field_type, &parsed).map_err(|_| wrong()),
                _ => Err(wrong()),
            }
        }
        (FieldType::DateTime, Value::String(s)) => {
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .map(|_| value.clone())
                .map_err(|_| {
                    format!("expected an RFC 3339 date-time such as 2026-11-22T10:00:00Z, got {value}")
                })
        }
        (FieldType::Json, Value::String(s)) => Ok(serde_json::from_str(s).unwrap_or_else(|_| value.clone())),
        (FieldType::Json, _) => Ok(value.clone()),
        _ => Err(wrong()),
    }
}

fn type_name(field_type: FieldType) -> &'static str {
    match field_type {
        FieldType::String => "a string",
        FieldType::SecureString => "a secure string",
        FieldType::Boolean => "a boolean (true or false)",
        FieldType::Number => "a number",
        FieldType::Integer => "an integer",
        FieldType::DateTime => "a date-time",
        FieldType::Json => "JSON",
    }
}

/// What expressions may read: `inputs.<declared>`, `steps.<upstream>.output`, `run.*`.
struct References<'a> {
    inputs: &'a BTreeMap<String, InputSpec>,
    index: &'a HashMap<&'a str, usize>,
}

impl References<'_> {
    /// Checks the names one template source reads (or reports its syntax problems), and
    /// returns every name it reads, for the engine to build the source's context from.
    fn check_read(
        &self,
        read: Option<&TemplateRead>,
        path: &str,
        visible: &Scope<'_>,
        problems: &mut Collector,
    ) -> Vec<String> {
        let at = |sub: &str| {
            if sub.is_empty() {
                path.to_owned()
            } else if sub.starts_with('[') {
                format!("{path}{sub}")
            } else {
                format!("{path}.{sub}")
            }
        };
        let mut all = Vec::new();
        match read {
            Some(Ok(found)) => {
                for (sub, names) in found {
                    for name in names {
                        self.check(name, &at(sub), visible, problems);
                        all.push(name.clone());
                    }
                }
            }
            Some(Err(errors)) => {
                for e in errors {
                    problems.add(at(&e.path), crate::limits::clip(&e.message));
                }
            }
            None => problems.add(path, "internal: no template read for this source"),
        }
        all.sort();
        all.dedup();
        all
    }

    fn check(&self, name: &str, path: &str, scope: &Scope<'_>, problems: &mut Collector) {
        let mut parts = name.split('.');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("inputs"), Some(input), _) if !self.inputs.contains_key(input) => problems.add(
                path,
                format!("unknown reference {name}: inputs.{input} is not declared under `inputs`"),
            ),
            (Some("inputs" | "run"), _, _) => {}
            (Some("item" | "index"), _, _) if scope.item => {}
            (Some(which @ ("item" | "index")), _, _) => problems.add(
                path,
                format!("{which} exists only in the input of a step with `for_each`"),
            ),
            (Some("failure"), None | Some("step" | "error"), _) if scope.failure => {}
            (Some("failure"), _, _) if scope.failure => problems.add(
                path,
                format!("unknown reference {name}: failure offers `step` and `error`"),
            ),
            (Some("failure"), _, _) => {
                problems.add(path, "failure exists only in a workflow's on_failure steps")
            }
            (Some("steps"), Some(step), rest) => match self.index.get(step) {
                None => problems.add(
                    path,
                    format!("unknown reference steps.{step}: there is no such step"),
                ),
                Some(&i) if !scope.contains(i) => problems.add(
                    path,
                    format!("steps.{step} may not have run yet here: add {step} to this step's `needs`"),
                ),
                Some(_) if !matches!(rest, None | Some("output" | "state" | "error")) => problems.add(
                    path,
                    format!("unknown reference {name}: a step offers `output`, `state` and `error`"),
                ),
                Some(_) => {}
            },
            (Some("steps"), None, _) => {}
            // minijinja's global functions.
            (Some("range" | "dict" | "namespace" | "cycler" | "joiner" | "debug"), None, _) => {}
            _ => problems.add(
                path,
                format!(
                    "unknown reference {name}: expressions may read inputs.*, steps.<name>.output and run.*"
                ),
            ),
        }
    }
}

/// What one template may read: the steps that have run by then, and whether `item` and
/// `index` (a `for_each` step's input) or `failure` (an `on_failure` step) are there.
#[derive(Clone, Copy)]
struct Scope<'a> {
    steps: Visible<'a>,
    /// More visible steps (an on_failure step sees every main step too).
    more: Option<Visible<'a>>,
    item: bool,
    failure: bool,
}

impl<'a> Scope<'a> {
    fn steps(steps: Visible<'a>) -> Scope<'a> {
        Scope {
            steps,
            more: None,
            item: false,
            failure: false,
        }
    }

    fn or(self, more: Visible<'a>) -> Scope<'a> {
        Scope {
            more: Some(more),
            ..self
        }
    }

    fn with_item(self) -> Scope<'a> {
        Scope { item: true, ..self }
    }

    fn with_failure(self) -> Scope<'a> {
        Scope {
            failure: true,
            ..self
        }
    }

    fn contains(&self, i: usize) -> bool {
        self.steps.contains(i) || self.more.is_some_and(|m| m.contains(i))
    }
}

/// For every step, the steps that must finish before it (its transitive `needs`), as one
/// bit set per step; or a cycle, as step indices from a step back to itself. Steps are taken
/// in dependency order (Kahn's algorithm), so nothing recurses.
fn ancestors(needs: &[Vec<usize>]) -> Result<Ancestors, Vec<usize>> {
    let n = needs.len();
    let mut waiting_on: Vec<usize> = needs.iter().map(Vec::len).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, deps) in needs.iter().enumerate() {
        for &d in deps {
            dependents[d].push(i);
        }
    }
    let mut sets = Ancestors::none(n);
    let mut ready: Vec<usize> = (0..n).filter(|&i| waiting_on[i] == 0).collect();
    let mut done = 0;
    while let Some(i) = ready.pop() {
        done += 1;
        for &d in &needs[i] {
            sets.add(i, d);
            sets.merge(i, d);
        }
        for &j in &dependents[i] {
            waiting_on[j] -= 1;
            if waiting_on[j] == 0 {
                ready.push(j);
            }
        }
    }
    if done == n {
        return Ok(sets);
    }
    // Every step left waits on another step left: follow `needs` until a step repeats.
    let start = (0..n).find(|&i| waiting_on[i] > 0).expect("a step is left");
    let mut seen = vec![usize::MAX; n];
    let mut path = Vec::new();
    let mut at = start;
    while seen[at] == usize::MAX {
        seen[at] = path.len();
        path.push(at);
        at = *needs[at]
            .iter()
            .find(|&&d| waiting_on[d] > 0)
            .expect("a step left waits on a step left");
    }
    let mut cycle = path[seen[at]..].to_vec();
    cycle.push(at);
    Err(cycle)
}

/// One bit set of step indices per step.
struct Ancestors {
    words: usize,
    bits: Vec<u64>,
}

impl Ancestors {
    fn none(n: usize) -> Ancestors {
        let words = n.div_ceil(64);
        Ancestors {
            words,
            bits: vec![0; words * n],
        }
    }

    /// One set, shared by every step, holding every step: what `outputs` may read.
    fn all(n: usize) -> Ancestors {
        let words = n.div_ceil(64);
        let mut bits = vec![u64::MAX; words.max(1)];
        if !n.is_multiple_of(64) {
            if let Some(last) = bits.get_mut(words.saturating_sub(1)) {
                *last = (1u64 << (n % 64)) - 1;
            }
        }
        Ancestors { words, bits }
    }

    fn add(&mut self, step: usize, ancestor: usize) {
        self.bits[step * self.words + ancestor / 64] |= 1 << (ancestor % 64);
    }

    /// Adds every ancestor of `from` to `step`'s.
    fn merge(&mut self, step: usize, from: usize) {
        for w in 0..self.words {
            self.bits[step * self.words + w] |= self.bits[from * self.words + w];
        }
    }

    fn of(&self, step: usize) -> Visible<'_> {
        Visible(&self.bits[step * self.words..(step + 1) * self.words])
    }
}

/// The steps visible from one place: a bit set of step indices.
#[derive(Clone, Copy)]
struct Visible<'a>(&'a [u64]);

impl Visible<'_> {
    fn contains(&self, i: usize) -> bool {
        self.0.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }
}

/// Checks the counts and sizes [`Limits`] bounds, before anything else is looked at; false
/// when any is exceeded.
fn check_sizes(definition: &Definition, limits: &Limits, problems: &mut Collector) -> bool {
    let before = problems.0.len() + problems.1;
    let steps = definition.steps.len() + definition.on_failure.len();
    if steps > limits.steps {
        problems.add(
            "steps",
            format!(
                "{steps} steps (on_failure included); a workflow may have at most {} (limits.steps)",
                limits.steps
            ),
        );
    }
    if definition.inputs.len() > limits.inputs {
        problems.add(
            "inputs",
            format!(
                "{} inputs; a workflow may declare at most {} (limits.inputs)",
                definition.inputs.len(),
                limits.inputs
            ),
        );
    }
    let max = limits.template_kb << 10;
    let mut too_long = |path: String, text: &str| {
        if text.len() > max {
            problems.add(
                path,
                format!(
                    "this template is {} KiB; at most {} KiB are accepted (limits.template_kb)",
                    text.len() >> 10,
                    limits.template_kb
                ),
            );
        }
    };
    let paths = (0..definition.steps.len())
        .map(|i| format!("steps[{i}]"))
        .chain((0..definition.on_failure.len()).map(|k| format!("on_failure[{k}]")));
    for (path, step) in paths.zip(definition.all_steps()) {
        let prefix = if step.pauses() {
            path.clone()
        } else {
            format!("{path}.input")
        };
        let _ = weft_template::walk::<()>(&step.call_template(), &mut |at, text| {
            too_long(format!("{prefix}.{at}"), text);
            Ok(Value::Null)
        });
        if let Some(when) = &step.when {
            too_long(format!("{path}.when"), when);
        }
        if let Some(for_each) = &step.for_each {
            too_long(format!("{path}.for_each"), for_each);
        }
    }
    let _ = weft_template::walk::<()>(&Value::Object(definition.outputs.clone()), &mut |at, text| {
        too_long(format!("outputs.{at}"), text);
        Ok(Value::Null)
    });
    problems.0.len() + problems.1 == before
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Validates with plain-lookup templates only, which need no template engine.
    fn validate(yaml: &str) -> Result<Workflow, Problems> {
        let limits = Limits::default();
        let definition = parse(yaml, &limits)?;
        let reads: Vec<TemplateRead> = definition
            .template_sources()
            .iter()
            .map(|s| crate::plugins::read_without_engine(s).expect("plain lookups"))
            .collect();
        Workflow::validate(
            definition,
            &|p| match p {
                PluginRef::Latest(n) if n == "missing" => Err("unknown plugin missing".into()),
                _ => Ok(None),
            },
            &reads,
            &limits,
        )
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let err = validate(
            "id: w\nsteps:\n- {name: A, plugin: echo}\n- {name: A, plugin: missing}\n- {name: C, plugin: echo, input: {cn: '{{ steps.Foo.output.x }}'}}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("steps[1].name: duplicate step name A"), "{err}");
        assert!(err.contains("steps[1].plugin: unknown plugin missing"), "{err}");
    }

    #[test]
    fn unknown_references_are_refused() {
        let err =
            validate("id: w\nsteps:\n- {name: A, plugin: echo, input: {cn: '{{ steps.Foo.output.x }}'}}\n")
                .unwrap_err()
                .to_string();
        assert_eq!(
            err,
            "steps[0].input.cn: unknown reference steps.Foo: there is no such step"
        );
    }

    #[test]
    fn cycles_are_named() {
        let err = validate(
            "id: w\nsteps:\n- {name: A, plugin: echo, needs: [B]}\n- {name: B, plugin: echo, needs: [A]}\n",
        )
        .unwrap_err()
        .to_string();
        assert_eq!(err, "steps: cycle in needs: A -> B -> A");
    }

    #[test]
    fn steps_without_needs_run_in_file_order() {
        let wf = validate("id: w\nsteps:\n- {name: A, plugin: echo}\n- {name: B, plugin: echo, input: {x: '{{ steps.A.output }}'}}\n").unwrap();
        assert_eq!(wf.steps[1].needs, vec![0]);
    }

    #[test]
    fn inputs_are_typed() {
        let wf = validate("id: w\ninputs:\n  n: {type: integer}\n  s: {type: string, default: x}\nsteps:\n- {name: A, plugin: echo}\n").unwrap();
        let mut given = Map::new();
        given.insert("n".into(), Value::String("12".into()));
        assert_eq!(
            wf.bind_inputs(given).unwrap(),
            serde_json::json!({"n": 12, "s": "x"})
        );
        let mut given = Map::new();
        given.insert("n".into(), Value::String("1.5".into()));
        assert!(wf.bind_inputs(given).is_err());
    }
}
