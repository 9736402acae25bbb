//! Write a Weft step plugin, or an action target, as one `impl` block.
//!
//! A step plugin is a WebAssembly component exporting the `step` interface of
//! `wit/weft.wit`. This crate hides the generated bindings: values arrive and leave as
//! [`serde_json::Value`] rather than JSON text, the host's imports are plain functions
//! ([`log`], [`secret`]), and [`export_step!`] wires a type implementing [`Step`] to the
//! component's exports. An action target implements [`Target`] and is exported with
//! [`export_target!`] in the same way.
//!
//! Every plugin describes itself (`describe` of `weft:plugin@0.2.0`): a one-line summary and
//! JSON Schemas of its input and output, derived from the [`Step::Input`] and
//! [`Step::Output`] types with [`schemars`], so the host can check a workflow's step inputs
//! before any run starts.
//!
//! ```ignore
//! use serde::Deserialize;
//! use weft_plugin_sdk::{export_step, json, Context, JsonSchema, Outcome, Step, Value};
//!
//! #[derive(Deserialize, JsonSchema)]
//! struct Input {
//!     name: String,
//! }
//!
//! struct Greet;
//!
//! impl Step for Greet {
//!     const SUMMARY: &'static str = "Greets someone";
//!     type Input = Input;
//!     type Output = Value;
//!
//!     fn run(_ctx: &Context, input: Input) -> Outcome {
//!         Outcome::Complete(json!({ "greeting": format!("hello {}", input.name) }))
//!     }
//! }
//!
//! export_step!(Greet);
//! ```
//!
//! Build the plugin crate as a `cdylib` for `wasm32-wasip2`; the `.wasm` file is the component.

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};
use std::marker::PhantomData;

pub use form::{read_answer, Field, FieldType};
pub use schemars::{self, JsonSchema};
pub use serde_json::{json, Map, Value};
pub use target::{Target, TargetContext, TargetError};

mod form;
#[doc(hidden)]
pub mod target;

/// The generated WIT bindings. Only [`export_step!`] should need them.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "step-plugin",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "__export_step_plugin",
        default_bindings_module: "weft_plugin_sdk::bindings",
    });
}

use bindings::exports::weft::plugin::describe as wit_describe;
use bindings::exports::weft::plugin::step as wit_step;
use bindings::weft::plugin::{host, types as wit};

/// Where a call happens: which run, workflow and step, and which attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Context {
    /// The run (execution) id, a UUID.
    pub run_id: String,
    /// The workflow id the run belongs to.
    pub workflow: String,
    /// The step's unique name within the workflow.
    pub step: String,
    /// 1 for the first attempt, 2 for the first retry, and so on.
    pub attempt: u32,
    /// Who started the run.
    pub started_by: String,
}

/// The result of [`Step::run`] or [`Step::resume`].
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The step is done with this output.
    Complete(Value),
    /// The step waits for a person.
    Suspend(Interaction),
    /// The step failed; the host retries it only if `retryable`.
    Fail { message: String, retryable: bool },
    /// A person said no; the value records the decision and becomes the step's output.
    Reject(Value),
    /// Only from `resume`: the answer is refused and the step keeps waiting.
    InvalidAnswer(String),
    /// Completes with this exact text, valid JSON or not. For testing the host only.
    #[doc(hidden)]
    CompleteRaw(String),
}

impl Outcome {
    /// A failure that retrying will not fix.
    pub fn fail(message: impl Into<String>) -> Self {
        Outcome::Fail {
            message: message.into(),
            retryable: false,
        }
    }

    /// A failure that may go away on a later attempt.
    pub fn retryable(message: impl Into<String>) -> Self {
        Outcome::Fail {
            message: message.into(),
            retryable: true,
        }
    }
}

/// What a suspended step waits for.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Interaction {
    /// The question shown to the person.
    pub prompt: String,
    /// The form to fill in.
    pub fields: Vec<Field>,
    /// Who may answer: user names, or groups as `group:NAME`. Empty means anyone.
    pub assignees: Vec<String>,
    /// The signal types this step accepts, such as `ApprovalStatus`.
    pub signal_types: Vec<String>,
    /// Seconds until the step is resumed with [`ResumeEvent::Expired`]; `None` waits forever.
    pub expires_in: Option<u64>,
    /// Handed back to [`Step::resume`] unchanged.
    pub state: Value,
}

/// A person's answer to a suspended step.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    /// The signal type addressed, such as `ApprovalStatus`.
    pub signal_type: String,
    /// Who answered, as established by the host.
    pub answered_by: String,
    /// When the host received the answer (RFC 3339).
    pub answered_at: String,
    /// The answer's fields.
    pub data: Value,
}

/// Why a suspended step is resumed.
#[derive(Clone, Debug, PartialEq)]
pub enum ResumeEvent {
    /// Someone answered.
    Answer(Answer),
    /// The interaction's `expires_in` passed without a final answer.
    Expired,
}

/// A workflow step. Each call gets a fresh instance, so keep nothing in statics between calls:
/// what a suspended step must remember goes into [`Interaction::state`].
pub trait Step {
    /// One line saying what the step does; `describe` returns it.
    const SUMMARY: &'static str;

    /// The step's input. Its JSON Schema (derived with `#[derive(JsonSchema)]`) is what the
    /// host checks a workflow's step input against before a run starts. Input that does not
    /// deserialize fails the step (not retryable) with the offending field named, before
    /// `run` is called; use [`Value`] to take anything.
    type Input: DeserializeOwned + JsonSchema;

    /// What [`Outcome::Complete`] holds, for `describe` only; [`Value`] says any JSON.
    type Output: JsonSchema;

    /// Runs the step with its rendered input.
    fn run(ctx: &Context, input: Self::Input) -> Outcome;

    /// Continues a suspended step with the state it returned and what happened.
    fn resume(_ctx: &Context, _state: Value, _event: ResumeEvent) -> Outcome {
        Outcome::fail("this step never waits, so it cannot be resumed")
    }
}

/// Lines for the run's log.
pub mod log {
    use super::host::{log, Level};

    pub fn debug(message: &str) {
        log(Level::Debug, message);
    }

    pub fn info(message: &str) {
        log(Level::Info, message);
    }

    pub fn warn(message: &str) {
        log(Level::Warn, message);
    }

    pub fn error(message: &str) {
        log(Level::Error, message);
    }
}

/// A secret granted to this plugin, or `None` if it was not granted.
pub fn secret(name: &str) -> Option<String> {
    host::secret(name)
}

/// Deserializes plugin input into a typed config. The error is a non-retryable failure
/// naming the offending field, such as `invalid input: ms: invalid type: string "a", expected u64`.
pub fn parse_input<T: DeserializeOwned>(input: Value) -> Result<T, Outcome> {
    serde_path_to_error::deserialize(input).map_err(|e| {
        // The root path "." adds nothing; serde's own message already names missing fields.
        let path = e.path().to_string();
        let inner = e.into_inner();
        Outcome::fail(if path == "." {
            format!("invalid input: {inner}")
        } else {
            format!("invalid input: {path}: {inner}")
        })
    })
}

/// The JSON Schema of `T` as text, for `describe`.
#[doc(hidden)]
pub fn schema_text<T: JsonSchema>() -> String {
    schemars::schema_for!(T).as_value().to_string()
}

/// The JSON Schema of a field read with [`seconds`]: whole seconds or a duration text.
///
/// ```ignore
/// #[serde(default, deserialize_with = "weft_plugin_sdk::seconds")]
/// #[schemars(schema_with = "weft_plugin_sdk::seconds_schema")]
/// expires_in: Option<u64>,
/// ```
pub fn seconds_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "whole seconds, or a duration such as \"30s\", \"5m\", \"2h\" or \"1d\"",
        "anyOf": [
            {"type": "integer", "minimum": 0},
            {"type": "string"},
            {"type": "null"}
        ]
    })
}

/// Deserializes an optional duration, given as whole seconds (`90`) or as text (`"30s"`,
/// `"5m"`, `"2h"`, `"1d"`), into seconds. For `expires_in`-like config fields:
///
/// ```ignore
/// #[serde(default, deserialize_with = "weft_plugin_sdk::seconds")]
/// expires_in: Option<u64>,
/// ```
pub fn seconds<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::Null => Ok(None),
        Value::Number(n) if n.is_u64() => Ok(n.as_u64()),
        Value::String(text) => match humantime::parse_duration(&text) {
            // Round up so that "500ms" still waits rather than expiring at once.
            Ok(d) => Ok(Some(d.as_secs() + u64::from(d.subsec_nanos() > 0))),
            Err(e) => Err(D::Error::custom(format!(
                "{text:?} is not a duration such as 30s, 5m, 2h or 1d: {e}"
            ))),
        },
        other => Err(D::Error::custom(format!(
            "expected whole seconds or a duration such as \"5m\", got {other}"
        ))),
    }
}

/// Exports a type implementing [`Step`] as the component's `step` interface.
///
/// Use it once, at the root of a `cdylib` crate: `export_step!(MyStep);`
#[macro_export]
macro_rules! export_step {
    ($step:ty) => {
        const _: () = {
            // The generated macro takes a plain identifier, not a generic type.
            type WeftStepAdapter = $crate::Adapter<$step>;
            $crate::bindings::__export_step_plugin!(
                WeftStepAdapter with_types_in $crate::bindings
            );
        };
    };
}

/// Translates between the WIT types and this crate's for a [`Step`].
#[doc(hidden)]
pub struct Adapter<T>(PhantomData<T>);

impl<T: Step> wit_step::Guest for Adapter<T> {
    fn run(ctx: wit::StepContext, input: String) -> wit::StepOutcome {
        let input = serde_json::from_str(&input)
            .map_err(|e| Outcome::fail(format!("invalid input JSON: {e}")))
            .and_then(parse_input::<T::Input>);
        match input {
            Ok(input) => T::run(&ctx.into(), input),
            Err(refusal) => refusal,
        }
        .into()
    }

    fn resume(ctx: wit::StepContext, state: String, event: wit::ResumeEvent) -> wit::StepOutcome {
        let state = match serde_json::from_str(&state) {
            Ok(state) => state,
            Err(e) => return Outcome::fail(format!("invalid state JSON: {e}")).into(),
        };
        let event = match event {
            wit::ResumeEvent::Expired => ResumeEvent::Expired,
            wit::ResumeEvent::Answer(a) => match serde_json::from_str(&a.data) {
                Ok(data) => ResumeEvent::Answer(Answer {
                    signal_type: a.signal_type,
                    answered_by: a.answered_by,
                    answered_at: a.answered_at,
                    data,
                }),
                // The step keeps waiting, so whoever answered can try again.
                Err(e) => return Outcome::InvalidAnswer(format!("the answer data is not JSON: {e}")).into(),
            },
        };
        T::resume(&ctx.into(), state, event).into()
    }
}

impl<T: Step> wit_describe::Guest for Adapter<T> {
    fn describe() -> wit_describe::Description {
        wit_describe::Description {
            summary: T::SUMMARY.to_owned(),
            input_schema: schema_text::<T::Input>(),
            output_schema: schema_text::<T::Output>(),
            config_schema: None,
        }
    }
}

impl From<wit::StepContext> for Context {
    fn from(c: wit::StepContext) -> Self {
        Context {
            run_id: c.run_id,
            workflow: c.workflow,
            step: c.step,
            attempt: c.attempt,
            started_by: c.started_by,
        }
    }
}

impl From<Outcome> for wit::StepOutcome {
    fn from(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Complete(value) => wit::StepOutcome::Complete(value.to_string()),
            Outcome::CompleteRaw(text) => wit::StepOutcome::Complete(text),
            Outcome::Suspend(i) => wit::StepOutcome::Suspend(wit::InteractionRequest {
                prompt: i.prompt,
                fields: i.fields.into_iter().map(Into::into).collect(),
                assignees: i.assignees,
                signal_types: i.signal_types,
                expires_in: i.expires_in,
                state: i.state.to_string(),
            }),
            Outcome::Fail { message, retryable } => {
                wit::StepOutcome::Fail(wit::StepError { message, retryable })
            }
            Outcome::Reject(value) => wit::StepOutcome::Reject(value.to_string()),
            Outcome::InvalidAnswer(message) => wit::StepOutcome::InvalidAnswer(message),
        }
    }
}

impl From<Field> for wit::Field {
    fn from(f: Field) -> Self {
        wit::Field {
            name: f.name,
            type_: match f.field_type {
                FieldType::String => wit::FieldType::String,
                FieldType::SecureString => wit::FieldType::SecureString,
                FieldType::Boolean => wit::FieldType::Boolean,
                FieldType::Number => wit::FieldType::Number,
                FieldType::Integer => wit::FieldType::Integer,
                FieldType::DateTime => wit::FieldType::DateTime,
                FieldType::Json => wit::FieldType::Json,
            },
            description: f.description,
            required: f.required,
            choices: f.choices.iter().map(Value::to_string).collect(),
            default: f.default.as_ref().map(Value::to_string),
        }
    }
}
