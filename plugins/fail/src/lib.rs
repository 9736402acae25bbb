//! `fail`: fails on purpose, to exercise retries and failure handling.
//!
//! Input: `{"message": string, "retryable": bool, "until_attempt": u32}`, all optional
//! (`message` defaults to "failed on purpose", `retryable` to false). If `until_attempt` is set
//! and this is attempt `until_attempt` or later, the step completes with `{"attempt": n}`;
//! otherwise it fails with `message`, retryable as asked.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use weft_plugin_sdk::{export_step, json, Context, Outcome, Step};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Input {
    #[serde(default = "default_message")]
    message: String,
    #[serde(default)]
    retryable: bool,
    /// From this attempt on, the step completes.
    until_attempt: Option<u32>,
}

#[derive(Serialize, JsonSchema)]
struct Output {
    attempt: u32,
}

fn default_message() -> String {
    "failed on purpose".into()
}

struct Fail;

impl Step for Fail {
    const SUMMARY: &'static str = "Fails on purpose, until an attempt if asked";
    type Input = Input;
    type Output = Output;

    fn run(ctx: &Context, input: Input) -> Outcome {
        match input.until_attempt {
            Some(until) if ctx.attempt >= until => Outcome::Complete(json!(Output { attempt: ctx.attempt })),
            _ => Outcome::Fail {
                message: input.message,
                retryable: input.retryable,
            },
        }
    }
}

export_step!(Fail);
