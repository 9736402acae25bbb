//! `policy`: an action target that refuses a run whose input breaks a rule.
//!
//! Config: `{"input": "common_name", "pattern": "\\.example\\.com$", "status": 403,
//! "message": "...", "required": true}`. The payload's `inputs` object (present for the
//! `/v1.Executions/Start` request and the `pre_start` function) must hold `input`, and its
//! value must match `pattern` (a regular expression, searched anywhere in the value unless
//! anchored; numbers and booleans are matched as their JSON text). Otherwise the call fails
//! with `status` (default 403) and `message` (default: which input broke which pattern), which
//! reaches the API caller when the target has `interrupt_on_error`. A missing input breaks the
//! rule unless `required` is false. A payload without `inputs` (another operation) passes.

use schemars::JsonSchema;
use serde::Deserialize;
use weft_plugin_sdk::{export_target, log, Target, TargetContext, TargetError, Value};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Config {
    /// The run input to check.
    input: String,
    /// A regular expression the input must match.
    pattern: String,
    /// The 4xx status of a refusal.
    #[serde(default = "forbidden")]
    #[schemars(range(min = 400, max = 499))]
    status: u16,
    #[serde(default)]
    message: Option<String>,
    #[serde(default = "yes")]
    required: bool,
}

fn forbidden() -> u16 {
    403
}

fn yes() -> bool {
    true
}

struct Policy;

impl Target for Policy {
    const SUMMARY: &'static str = "Refuses a run whose input does not match a pattern";
    type Config = Config;

    fn handle(ctx: &TargetContext, config: Config, payload: Value) -> Result<Option<Value>, TargetError> {
        if !(400..=499).contains(&config.status) {
            return Err(TargetError::new(format!(
                "invalid config: status: {} is not a 4xx status; use for example 403",
                config.status
            )));
        }
        let pattern = regex_lite::Regex::new(&config.pattern).map_err(|e| {
            TargetError::new(format!(
                "invalid config: pattern: {:?} is not a regular expression: {e}",
                config.pattern
            ))
        })?;
        let Some(inputs) = payload.get("inputs").and_then(Value::as_object) else {
            log::debug(&format!(
                "{}: the payload has no inputs, nothing to check",
                ctx.trigger
            ));
            return Ok(None);
        };
        let refuse = |reason: String| {
            let message = config.message.clone().unwrap_or(reason);
            TargetError::with_status(config.status, message)
        };
        let text = match inputs.get(&config.input) {
            None | Some(Value::Null) if config.required => {
                return Err(refuse(format!(
                    "input {} is required by policy {} (it must match {})",
                    config.input, ctx.target, config.pattern
                )))
            }
            None | Some(Value::Null) => return Ok(None),
            Some(Value::String(text)) => text.clone(),
            Some(other @ (Value::Number(_) | Value::Bool(_))) => other.to_string(),
            Some(_) => {
                return Err(refuse(format!(
                    "input {} must be a string, number or boolean to be checked by policy {}",
                    config.input, ctx.target
                )))
            }
        };
        if pattern.is_match(&text) {
            Ok(None)
        } else {
            Err(refuse(format!(
                "input {} = {text:?} breaks policy {}: it must match {}",
                config.input, ctx.target, config.pattern
            )))
        }
    }
}

export_target!(Policy);
