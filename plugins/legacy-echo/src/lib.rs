//! `legacy-echo`: a test-only step plugin built against `weft:plugin@0.1.0` (no `describe`),
//! which completes with its input and logs through the 0.1.0 host import.

wit_bindgen::generate!({
    world: "step-plugin",
    path: "../../wit/v0.1.0",
});

use exports::weft::plugin::step::Guest;
use weft::plugin::host::{log, Level};
use weft::plugin::types::{ResumeEvent, StepContext, StepError, StepOutcome};

struct LegacyEcho;

impl Guest for LegacyEcho {
    fn run(ctx: StepContext, input: String) -> StepOutcome {
        log(Level::Info, &format!("legacy echo in {}", ctx.step));
        StepOutcome::Complete(input)
    }

    fn resume(_ctx: StepContext, _state: String, _event: ResumeEvent) -> StepOutcome {
        StepOutcome::Fail(StepError {
            message: "this step never waits".into(),
            retryable: false,
        })
    }
}

export!(LegacyEcho);
