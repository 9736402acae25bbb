//! {{name}}: a Weft step plugin.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use weft_plugin_sdk::{export_step, json, log, Context, Outcome, Step};

/// What the step needs. Its JSON Schema (derived) is what Weft checks a workflow's step
/// input against before a run starts.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Input {
    /// Who to greet.
    name: String,
}

/// What the step completes with.
#[derive(Serialize, JsonSchema)]
struct Output {
    greeting: String,
}

struct Greet;

impl Step for Greet {
    const SUMMARY: &'static str = "Greets someone";
    // Input that does not fit fails the step before `run`: "invalid input: name: ...".
    type Input = Input;
    type Output = Output;

    fn run(ctx: &Context, input: Input) -> Outcome {
        log::info(&format!("greeting {} (attempt {})", input.name, ctx.attempt));
        Outcome::Complete(json!(Output {
            greeting: format!("hello {}", input.name),
        }))
    }
}

export_step!(Greet);
