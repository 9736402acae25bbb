//! `echo`: completes with its input unchanged.
//!
//! Input: any JSON value. If it is an object with a string `log` field, that text is first
//! written to the run's log at info level. Output: the input.

use weft_plugin_sdk::{export_step, log, Context, Outcome, Step, Value};

struct Echo;

impl Step for Echo {
    const SUMMARY: &'static str = "Completes with its input unchanged";
    type Input = Value;
    type Output = Value;

    fn run(_ctx: &Context, input: Value) -> Outcome {
        if let Some(line) = input.get("log").and_then(Value::as_str) {
            log::info(line);
        }
        Outcome::Complete(input)
    }
}

export_step!(Echo);
