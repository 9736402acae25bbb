//! Workflow definitions: parsing (YAML or JSON, one schema) and validation.
//!
//! A [`Definition`] is the document as written and stored. [`Workflow`] is a definition that
//! passed every check — names, plugins, the `needs` graph, expressions and the references they
//! make — so the engine never re-checks it. Validation collects every problem at once, each
//! with its path (`steps[2].input.cn: unknown reference steps.Foo`).

use crate::names::{Digest, PluginRef, StepName};
use crate::run::FieldType;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::time::Duration;
use weft_template::{Syntax, Templates};

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
    #[serde(default)]
    pub outputs: Map<String, Value>,
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

/// A step as written.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepDefinition {
    pub name: String,
    pub plugin: String,
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
}

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
}

/// A validated step.
#[derive(Debug)]
pub struct Step {
    pub name: StepName,
    pub plugin: PluginRef,
    /// Indices of the steps that must complete (or be skipped) first.
    pub needs: Vec<usize>,
    pub retry: RetryPolicy,
    /// Deadline (the step's `timeout`), memory and output caps for each plugin call.
    pub limits: crate::plugins::Limits,
}

/// One problem in a definition or in run inputs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

/// Every problem found, one per line.
#[derive(Debug, Serialize)]
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

struct Collector(Vec<Problem>);

impl Collector {
    fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }
}

/// Parses a definition from YAML or JSON text (JSON is YAML, so one parser reads both).
pub fn parse(text: &str) -> Result<Definition, Problems> {
    let deserializer = serde_norway::Deserializer::from_str(text);
    serde_path_to_error::deserialize(deserializer).map_err(located)
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
        message: e.inner().to_string(),
    }])
}

impl Workflow {
    /// Validates `definition`; `plugin_exists` says whether a plugin reference resolves.
    pub fn validate(
        definition: Definition,
        plugin_exists: &dyn Fn(&PluginRef) -> Result<(), String>,
    ) -> Result<Workflow, Problems> {
        let mut problems = Collector(Vec::new());
        let templates = Templates::new(Syntax::Braces);
        check_id(&definition.id, &mut problems);
        for (name, spec) in &definition.inputs {
            let path = format!("inputs.{name}");
            if let Some(default) = &spec.default {
                if let Err(message) = coerce(spec.input_type, default) {
                    problems.add(format!("{path}.default"), message);
                }
            }
        }

        // Every check below runs even when an earlier one found problems, so one pass
        // reports everything; a step whose name or plugin is unusable is only left out of
        // the final result.
        let mut index: HashMap<&str, usize> = HashMap::new();
        let mut typed = Vec::new();
        for (i, step) in definition.steps.iter().enumerate() {
            let path = format!("steps[{i}]");
            if let Some(first) = index.get(step.name.as_str()) {
                problems.add(
                    format!("{path}.name"),
                    format!(
                        "duplicate step name {}: steps[{first}] has it too; step names must be unique",
                        step.name
                    ),
                );
            } else {
                index.insert(&step.name, i);
            }
            let name =
                StepName::try_from(step.name.clone()).map_err(|m| problems.add(format!("{path}.name"), m));
            let plugin = step
                .plugin
                .parse::<PluginRef>()
                .map_err(|m| problems.add(format!("{path}.plugin"), m));
            if let Ok(plugin) = &plugin {
                if let Err(message) = plugin_exists(plugin) {
                    problems.add(format!("{path}.plugin"), message);
                }
            }
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
            typed.push(name.ok().zip(plugin.ok()));
        }
        if definition.steps.is_empty() {
            problems.add("steps", "a workflow needs at least one step");
        }

        let needs: Vec<Vec<usize>> = definition
            .steps
            .iter()
            .enumerate()
            .map(|(i, step)| match &step.needs {
                None if i == 0 => Vec::new(),
                None => vec![i - 1],
                Some(needs) => needs
                    .iter()
                    .enumerate()
                    .filter_map(|(j, need)| match index.get(need.as_str()) {
                        Some(&k) if k == i => {
                            problems.add(format!("steps[{i}].needs[{j}]"), "a step cannot need itself");
                            None
                        }
                        Some(&k) => Some(k),
                        None => {
                            problems.add(format!("steps[{i}].needs[{j}]"), format!("unknown step {need}"));
                            None
                        }
                    })
                    .collect(),
            })
            .collect();
        if let Some(cycle) = find_cycle(&needs) {
            let names: Vec<&str> = cycle.iter().map(|&i| definition.steps[i].name.as_str()).collect();
            problems.add("steps", format!("cycle in needs: {}", names.join(" -> ")));
        }

        let ancestors = ancestors(&needs);
        let all_steps: HashSet<usize> = (0..definition.steps.len()).collect();
        let refs = References {
            inputs: &definition.inputs,
            index: &index,
        };
        for (i, step) in definition.steps.iter().enumerate() {
            let path = format!("steps[{i}]");
            refs.check_template(
                &templates,
                &step.input,
                &format!("{path}.input"),
                &ancestors[i],
                &mut problems,
            );
            if let Some(when) = &step.when {
                match templates.expression_references(when) {
                    Ok(names) => {
                        for name in names {
                            refs.check(&name, &format!("{path}.when"), &ancestors[i], &mut problems);
                        }
                    }
                    Err(message) => problems.add(format!("{path}.when"), message),
                }
            }
        }
        refs.check_template(
            &templates,
            &Value::Object(definition.outputs.clone()),
            "outputs",
            &all_steps,
            &mut problems,
        );
        if !problems.0.is_empty() {
            return Err(Problems(problems.0));
        }

        let steps = typed
            .into_iter()
            .zip(needs)
            .zip(&definition.steps)
            .filter_map(|((typed, needs), step)| {
                let (name, plugin) = typed?;
                Some(Step {
                    name,
                    plugin,
                    needs,
                    retry: step.retry.unwrap_or(RetryPolicy::NONE),
                    limits: step_limits(step),
                })
            })
            .collect();
        let digest = Digest::of(&serde_json::to_vec(&definition).expect("definitions serialize"));
        Ok(Workflow {
            definition,
            digest,
            steps,
        })
    }

    /// Checks and completes run inputs: unknown names, missing required ones, types; applies
    /// defaults. Strings are converted to the declared type (`"2048"` for an integer).
    pub fn bind_inputs(&self, mut given: Map<String, Value>) -> Result<Value, Problems> {
        let mut problems = Collector(Vec::new());
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
        for name in given.keys() {
            let known: Vec<&str> = self.definition.inputs.keys().map(String::as_str).collect();
            problems.add(
                format!("inputs.{name}"),
                format!("unknown input; this workflow takes: {}", known.join(", ")),
            );
        }
        if problems.0.is_empty() {
            Ok(Value::Object(bound))
        } else {
            Err(Problems(problems.0))
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
    fn check_template(
        &self,
        templates: &Templates,
        template: &Value,
        path: &str,
        visible: &HashSet<usize>,
        problems: &mut Collector,
    ) {
        match templates.references(template) {
            Ok(found) => {
                for (at, names) in found {
                    let at = if at.is_empty() {
                        path.to_owned()
                    } else {
                        format!("{path}.{at}")
                    };
                    for name in names {
                        self.check(&name, &at, visible, problems);
                    }
                }
            }
            Err(errors) => {
                for e in errors {
                    let at = if e.path.is_empty() {
                        path.to_owned()
                    } else {
                        format!("{path}.{}", e.path)
                    };
                    problems.add(at, e.message);
                }
            }
        }
    }

    fn check(&self, name: &str, path: &str, visible: &HashSet<usize>, problems: &mut Collector) {
        let mut parts = name.split('.');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("inputs"), Some(input), _) if !self.inputs.contains_key(input) => problems.add(
                path,
                format!("unknown reference {name}: inputs.{input} is not declared under `inputs`"),
            ),
            (Some("inputs" | "run"), _, _) => {}
            (Some("steps"), Some(step), rest) => match self.index.get(step) {
                None => problems.add(
                    path,
                    format!("unknown reference steps.{step}: there is no such step"),
                ),
                Some(i) if !visible.contains(i) => problems.add(
                    path,
                    format!("steps.{step} may not have run yet here: add {step} to this step's `needs`"),
                ),
                Some(_) if !matches!(rest, None | Some("output" | "state")) => problems.add(
                    path,
                    format!("unknown reference {name}: a step offers `output` and `state`"),
                ),
                Some(_) => {}
            },
            (Some("steps"), None, _) => {}
            _ => problems.add(
                path,
                format!(
                    "unknown reference {name}: expressions may read inputs.*, steps.<name>.output and run.*"
                ),
            ),
        }
    }
}

/// A cycle in the `needs` graph, as step indices from a step back to itself.
fn find_cycle(needs: &[Vec<usize>]) -> Option<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    fn visit(
        i: usize,
        needs: &[Vec<usize>],
        marks: &mut [Mark],
        path: &mut Vec<usize>,
    ) -> Option<Vec<usize>> {
        marks[i] = Mark::Open;
        path.push(i);
        for &n in &needs[i] {
            match marks[n] {
                Mark::Open => {
                    let start = path.iter().position(|&p| p == n).unwrap_or(0);
                    let mut cycle = path[start..].to_vec();
                    cycle.push(n);
                    return Some(cycle);
                }
                Mark::New => {
                    if let Some(cycle) = visit(n, needs, marks, path) {
                        return Some(cycle);
                    }
                }
                Mark::Done => {}
            }
        }
        path.pop();
        marks[i] = Mark::Done;
        None
    }
    let mut marks = vec![Mark::New; needs.len()];
    (0..needs.len()).find_map(|i| {
        (marks[i] == Mark::New)
            .then(|| visit(i, needs, &mut marks, &mut Vec::new()))
            .flatten()
    })
}

/// For each step, every step that must finish before it (its transitive `needs`).
fn ancestors(needs: &[Vec<usize>]) -> Vec<HashSet<usize>> {
    fn collect(i: usize, needs: &[Vec<usize>], into: &mut HashSet<usize>) {
        for &n in &needs[i] {
            if into.insert(n) {
                collect(n, needs, into);
            }
        }
    }
    (0..needs.len())
        .map(|i| {
            let mut set = HashSet::new();
            collect(i, needs, &mut set);
            set
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate(yaml: &str) -> Result<Workflow, Problems> {
        Workflow::validate(parse(yaml)?, &|p| match p {
            PluginRef::Latest(n) if n == "missing" => Err("unknown plugin missing".into()),
            _ => Ok(()),
        })
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
