//! `audit-sink`: an action target that records every payload it receives.
//!
//! Each call writes one line to the actions log (`GET /v1/actions/log`): the JSON
//! `{"trigger": ..., "payload": ...}`, at info level, so events, API requests and function
//! hooks can be audited without a service of one's own. It never changes the payload and
//! never fails, so it is safe as any type of target.
//!
//! Config: `{"tag": "..."}` (optional), added to every line as `"tag"` to tell several sinks
//! apart.

use schemars::JsonSchema;
use serde::Deserialize;
use weft_plugin_sdk::{export_target, json, log, Target, TargetContext, TargetError, Value};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Added to every line, to tell several sinks apart.
    #[serde(default)]
    tag: Option<String>,
}

struct AuditSink;

impl Target for AuditSink {
    const SUMMARY: &'static str = "Records every payload in the actions log";
    type Config = Config;

    fn handle(ctx: &TargetContext, config: Config, payload: Value) -> Result<Option<Value>, TargetError> {
        let mut line = json!({ "trigger": ctx.trigger, "payload": payload });
        if let Some(tag) = config.tag {
            line["tag"] = Value::String(tag);
        }
        log::info(&line.to_string());
        Ok(None)
    }
}

export_target!(AuditSink);
