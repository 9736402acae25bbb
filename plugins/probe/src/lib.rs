//! `probe`: a test-only action target that does what its config says, to exercise the host's
//! ordering, payload chaining, failure, interruption and timeout rules. Never use it for real.
//!
//! Config (every field optional), applied in this order:
//! - it always logs `received <payload JSON>`;
//! - `sleep_ms`: sleeps that long, but only while the payload's `attempt` (an event's delivery
//!   attempt, 1 when absent) is below `sleep_until_attempt` when that is given;
//! - `fail: {"message": ..., "status": 4xx}`: fails with that message and status;
//! - `append: {"pointer": "/request/input/note", "text": "A"}`: appends `text` to the string
//!   at that JSON pointer (creating it in its parent object) and returns the changed payload.
//!
//! Without `append` it returns no payload, so the payload stays as it was.

use schemars::JsonSchema;
use serde::Deserialize;
use std::time::Duration;
use weft_plugin_sdk::{export_target, log, Target, TargetContext, TargetError, Value};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    sleep_ms: u64,
    #[serde(default)]
    sleep_until_attempt: Option<u64>,
    #[serde(default)]
    fail: Option<Fail>,
    #[serde(default)]
    append: Option<Append>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Fail {
    message: String,
    #[serde(default)]
    status: Option<u16>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Append {
    pointer: String,
    text: String,
}

struct Probe;

impl Target for Probe {
    const SUMMARY: &'static str = "Test only: sleeps, fails or appends as its config says";
    type Config = Config;

    fn handle(
        _ctx: &TargetContext,
        config: Config,
        mut payload: Value,
    ) -> Result<Option<Value>, TargetError> {
        log::info(&format!("received {payload}"));
        let attempt = payload.get("attempt").and_then(Value::as_u64).unwrap_or(1);
        if config.sleep_until_attempt.is_none_or(|until| attempt < until) {
            std::thread::sleep(Duration::from_millis(config.sleep_ms));
        }
        if let Some(fail) = config.fail {
            return Err(TargetError {
                message: fail.message,
                status: fail.status,
            });
        }
        let Some(append) = config.append else {
            return Ok(None);
        };
        let (parent, key) = append
            .pointer
            .rsplit_once('/')
            .ok_or_else(|| TargetError::new("invalid config: append.pointer must start with /"))?;
        let key = key.replace("~1", "/").replace("~0", "~");
        let object = payload
            .pointer_mut(parent)
            .and_then(Value::as_object_mut)
            .ok_or_else(|| TargetError::new(format!("the payload has no object at {parent:?}")))?;
        let before = object.get(&key).and_then(Value::as_str).unwrap_or_default();
        let after = format!("{before}{}", append.text);
        object.insert(key, Value::String(after));
        Ok(Some(payload))
    }
}

export_target!(Probe);
