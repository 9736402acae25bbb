//! `sleep`: waits, to exercise deadlines and concurrency.
//!
//! Input: `{"ms": u64, "mode": "timed" | "busy"}` (`mode` defaults to `timed`). `timed` sleeps
//! through the host's clock; `busy` spins on the CPU until the time has passed, which only a
//! fuel or epoch deadline can interrupt. Output: `{"slept_ms": ms}`.

use serde::Deserialize;
use std::time::{Duration, Instant};
use weft_plugin_sdk::{export_step, json, Context, Outcome, Step};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    ms: u64,
    #[serde(default)]
    mode: Mode,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Mode {
    #[default]
    Timed,
    Busy,
}

struct Sleep;

impl Step for Sleep {
    type Input = Input;

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
        Outcome::Complete(json!({"slept_ms": input.ms}))
    }
}

export_step!(Sleep);
