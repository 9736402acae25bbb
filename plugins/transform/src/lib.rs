//! `transform`: builds a JSON value from a template.
//!
//! Input: `{"template": <any JSON>, "data": <any JSON, default {}>}`. Every string in
//! `template` may hold `${ expr }` expressions (minijinja), evaluated against `data`; a string
//! that is exactly one expression keeps the expression's JSON type. The `${ }` syntax keeps
//! these expressions apart from the host's own `{{ }}` pass over the step input, so `data` is
//! usually filled with `{{ }}` and `template` reads it with `${ }`:
//!
//! ```json
//! {"template": {"subject": "CN=${ cn | lower }", "days": "${ days }"},
//!  "data": {"cn": "{{ inputs.cn }}", "days": 90}}
//! ```
//!
//! Output: the rendered value. An undefined name or a bad expression fails (not retryable)
//! naming where it is, such as `template.subject: undefined value ...`.

use schemars::JsonSchema;
use serde::Deserialize;
use weft_plugin_sdk::{export_step, json, Context, Outcome, Step, Value};
use weft_template::{Syntax, Templates};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Input {
    /// Any JSON; strings may hold `${ expr }` expressions.
    template: Value,
    /// What the expressions read.
    #[serde(default = "empty_object")]
    data: Value,
}

fn empty_object() -> Value {
    json!({})
}

struct Transform;

impl Step for Transform {
    const SUMMARY: &'static str = "Builds a JSON value from a template and data";
    type Input = Input;
    type Output = Value;

    fn run(_ctx: &Context, input: Input) -> Outcome {
        match Templates::new(Syntax::Dollar).render(&input.template, &input.data) {
            Ok(value) => Outcome::Complete(value),
            Err(e) => {
                // Paths are relative to the template; make them relative to the input.
                let sep = if e.path.is_empty() || e.path.starts_with('[') {
                    ""
                } else {
                    "."
                };
                Outcome::fail(format!("template{sep}{}: {}", e.path, e.message))
            }
        }
    }
}

export_step!(Transform);
