//! `interaction`: asks a person to fill in a form and completes with the answer (vRO's user
//! interaction).
//!
//! Input:
//!
//! ```json
//! {"prompt": "Which key size?",
//!  "fields": [{"name": "size", "type": "integer", "description": "RSA key bits",
//!              "required": true, "choices": [2048, 4096], "default": 2048}],
//!  "assignees": ["alice", "group:pki-admins"], "expires_in": "1d",
//!  "on_expiry": "fail", "signal_type": "UserInteraction"}
//! ```
//!
//! Everything is optional. A field needs a unique, non-empty `name`; its `type` is one of
//! `string` (default), `secure-string`, `boolean`, `number`, `integer`, `date-time`, `json`;
//! `required` defaults to true. `expires_in` is whole seconds or a duration such as `"5m"`;
//! `on_expiry` is `fail` or `defaults` (complete with the fields' defaults, which then every
//! required field must have). `signal_type` defaults to `UserInteraction`.
//!
//! An answer is checked against the form: text forms of booleans and numbers (`"true"`,
//! `"4096"`) are converted, missing fields take their defaults, and unknown fields are refused;
//! every problem is reported at once. Output: an object of the answered values by field name,
//! such as `{"size": 4096}`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use weft_plugin_sdk::{
    export_step, json, read_answer, Context, Field, Interaction, Outcome, ResumeEvent, Step, Value,
};

/// The form to fill in, who may, and what happens when nobody does in time.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default = "default_prompt")]
    prompt: String,
    #[serde(default)]
    fields: Vec<Field>,
    #[serde(default)]
    assignees: Vec<String>,
    #[serde(default, deserialize_with = "weft_plugin_sdk::seconds")]
    #[schemars(schema_with = "weft_plugin_sdk::seconds_schema")]
    expires_in: Option<u64>,
    #[serde(default)]
    on_expiry: OnExpiry,
    #[serde(default = "default_signal_type")]
    signal_type: String,
}

fn default_prompt() -> String {
    "Please answer".into()
}

fn default_signal_type() -> String {
    "UserInteraction".into()
}

#[derive(Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum OnExpiry {
    #[default]
    Fail,
    Defaults,
}

impl Config {
    /// Every problem with the form, so a workflow author can fix them in one go.
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut names = HashSet::new();
        for (i, field) in self.fields.iter().enumerate() {
            if field.name.is_empty() {
                problems.push(format!("fields[{i}]: the name is empty"));
                continue;
            }
            if !names.insert(field.name.as_str()) {
                problems.push(format!("fields[{i}]: the name {} is used twice", field.name));
            }
            if let Some(Err(problem)) = field.default.as_ref().map(|d| field.coerce(d)) {
                problems.push(format!("fields[{i}]: the default does not fit: {problem}"));
            }
            if self.on_expiry == OnExpiry::Defaults && field.required && field.default.is_none() {
                problems.push(format!(
                    "fields[{i}]: on_expiry is defaults, so the required field {} needs a default",
                    field.name
                ));
            }
        }
        problems
    }
}

struct UserInteraction;

impl Step for UserInteraction {
    const SUMMARY: &'static str = "Asks a person to fill in a form and completes with the answer";
    type Input = Config;
    /// The answered values by field name.
    type Output = weft_plugin_sdk::Map<String, Value>;

    fn run(_ctx: &Context, config: Config) -> Outcome {
        let problems = config.problems();
        if !problems.is_empty() {
            return Outcome::fail(format!("invalid input: {}", problems.join("; ")));
        }
        Outcome::Suspend(Interaction {
            prompt: config.prompt.clone(),
            fields: config.fields.clone(),
            assignees: config.assignees.clone(),
            signal_types: vec![config.signal_type.clone()],
            expires_in: config.expires_in,
            state: json!(config),
        })
    }

    fn resume(_ctx: &Context, state: Value, event: ResumeEvent) -> Outcome {
        let config: Config = match serde_json::from_value(state) {
            Ok(config) => config,
            Err(e) => return Outcome::fail(format!("invalid interaction state: {e}")),
        };
        match event {
            // The host only delivers the signal types the step asked for.
            ResumeEvent::Answer(answer) => match read_answer(&config.fields, &answer.data) {
                Ok(values) => Outcome::Complete(Value::Object(values)),
                Err(problems) => Outcome::InvalidAnswer(problems),
            },
            ResumeEvent::Expired => match config.on_expiry {
                // An empty answer is exactly "every field at its default".
                OnExpiry::Defaults => match read_answer(&config.fields, &json!({})) {
                    Ok(values) => Outcome::Complete(Value::Object(values)),
                    Err(problems) => Outcome::fail(format!(
                        "the interaction expired without an answer, and the defaults do not do: {problems}"
                    )),
                },
                OnExpiry::Fail => Outcome::fail("the interaction expired without an answer"),
            },
        }
    }
}

export_step!(UserInteraction);
