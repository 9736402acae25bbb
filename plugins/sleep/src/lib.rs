//! `sleep`: waits, to exercise deadlines and concurrency.
//!
//! Input: `{"ms": u64, "mode": "timed" | "busy"}` (`mode` defaults to `timed`). `timed` sleeps
//! through the host's clock; `busy` spins on the CPU until the time has passed, which only a
//! fuel or epoch deadline can interrupt. Output: `{"slept_ms": ms}`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};
use weft_plugin_sdk::{export_step, json, Context, Outcome, Step};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Input {
    ms: u64,
    #[serde(default)]
    mode: Mode,
}

#[derive(Default, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum Mode {
    #[default]
    Timed,
    Busy,
}

#[derive(Serialize, JsonSchema)]
struct Output {
    slept_ms: u64,
}

struct Sleep;

impl Step for Sleep {
    const SUMMARY: &'static str = "Waits, on the clock or on the CPU";
    type Input = Input;
    type Output = Output;

    fn run(_ctx: &Context, input: Input) -> Outcome {
        let duration = Duration::from_millis(input.ms);
        match input.mode {
            Mode::Timed => std::thread::sleep(duration),
            Mode::Busy => {
                let start = Instant::now();
                while start.elapsed() < duration {
                    std::hint::spin_loop();
                }
            }
        }
        Outcome::Complete(json!(Output { slept_ms: input.ms }))
    }
}

export_step!(Sleep);
