//! {{name}}: a Weft step plugin.

use serde::Deserialize;
use weft_plugin_sdk::{export_step, json, log, Context, Outcome, Step};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    name: String,
}

struct Greet;

impl Step for Greet {
    // Input that does not fit fails the step before `run`: "invalid input: missing field `name`".
    type Input = Input;

    fn run(ctx: &Context, input: Input) -> Outcome {
        log::info(&format!("greeting {} (attempt {})", input.name, ctx.attempt));
        Outcome::Complete(json!({ "greeting": format!("hello {}", input.name) }))
    }
}

export_step!(Greet);
