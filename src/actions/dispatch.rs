//! Calling a chain of targets in order, and recording each call in the actions log.
//!
//! Each target gets `{"config": <its config>, "payload": <the payload>}` and its timeout as
//! the call's deadline. A `call` target's returned payload replaces the payload for every
//! later target; a `webhook` target's is ignored; an `async` target runs on its own task and
//! is never waited for. A failure (the plugin's error, a trap, the deadline) stops the chain
//! only when the target has `interrupt_on_error`; otherwise it is logged and the chain goes
//! on. This module neither chooses the targets nor decides what an interruption means to
//! whoever triggered the chain.

use super::model::{Target, TargetType};
use crate::plugins::{Limits, PluginHost, PluginLog, TargetCall, TargetReport};
use crate::store::{ActionWrite, Write};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::Arc;
use time::OffsetDateTime;

/// Why a chain stopped: a target with `interrupt_on_error` failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interrupted {
    /// The target's name.
    pub target: String,
    pub message: String,
    /// The status the target asked for, if any.
    pub status: Option<u16>,
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "action target {} failed: {}", self.target, self.message)
    }
}

/// Which event delivery a call belongs to, for the log.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Delivery {
    /// The event's id.
    pub event: String,
    /// 1 for the first delivery, more after a crash interrupted earlier ones.
    pub attempt: u32,
}

/// One target call, as the actions log keeps it.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LogEntry {
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    /// The event, API operation or function that triggered the call.
    pub trigger: String,
    /// The target's id and name, and its type.
    pub target: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: TargetType,
    pub ok: bool,
    /// Whether this (call) target replaced the payload.
    pub changed: bool,
    /// Whether this failure stopped the chain.
    pub interrupted: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    pub elapsed_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<Delivery>,
    /// What the plugin logged during the call.
    pub logs: Vec<LogLine>,
}

/// What a target's plugin logged.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = TargetLogLine)]
pub struct LogLine {
    pub level: String,
    pub message: String,
}

/// The end of a chain: the final payload or why it stopped, and the log writes of every
/// target that was waited for (async targets commit their own).
pub struct ChainEnd {
    pub outcome: Result<Value, Interrupted>,
    pub log: Vec<Write>,
}

/// Calls `chain` in order on `payload`.
pub async fn run(
    plugins: &PluginHost,
    store: &Arc<dyn crate::store::Store>,
    trigger: &str,
    chain: &[Arc<Target>],
    mut payload: Value,
    delivery: Option<&Delivery>,
) -> ChainEnd {
    let mut log = Vec::new();
    for target in chain {
        if target.kind == TargetType::Async {
            spawn_async(plugins, store, trigger, target, &payload, delivery);
            continue;
        }
        let report = call(plugins, trigger, target, &payload).await;
        let interrupts = report.result.is_err() && target.interrupt_on_error;
        log.push(entry(trigger, target, &report, interrupts, delivery));
        match report.result {
            Ok(Some(changed)) if target.kind == TargetType::Call => payload = changed,
            Ok(_) => {}
            Err(failure) if interrupts => {
                return ChainEnd {
                    outcome: Err(Interrupted {
                        target: target.name.clone(),
                        message: failure.message,
                        status: failure.status,
                    }),
                    log,
                }
            }
            Err(_) => {}
        }
    }
    ChainEnd {
        outcome: Ok(payload),
        log,
    }
}

async fn call(plugins: &PluginHost, trigger: &str, target: &Target, payload: &Value) -> TargetReport {
    let call = TargetCall {
        trigger: trigger.to_owned(),
        target: target.name.clone(),
        declared_as: target.declared_as.clone(),
    };
    let envelope = json!({ "config": target.config, "payload": payload });
    let limits = Limits::with_deadline(target.timeout);
    plugins
        .call_target(&target.digest, &call, &envelope, limits)
        .await
}

/// Calls an async target on its own task; its log entry joins the next commit.
fn spawn_async(
    plugins: &PluginHost,
    store: &Arc<dyn crate::store::Store>,
    trigger: &str,
    target: &Arc<Target>,
    payload: &Value,
    delivery: Option<&Delivery>,
) {
    let (plugins, store, target, payload) = (plugins.clone(), store.clone(), target.clone(), payload.clone());
    let (trigger, delivery) = (trigger.to_owned(), delivery.cloned());
    tokio::spawn(async move {
        let report = call(&plugins, &trigger, &target, &payload).await;
        store.enqueue(vec![entry(&trigger, &target, &report, false, delivery.as_ref())]);
    });
}

fn entry(
    trigger: &str,
    target: &Target,
    report: &TargetReport,
    interrupted: bool,
    delivery: Option<&Delivery>,
) -> Write {
    let (error, status) = match &report.result {
        Err(failure) => (Some(failure.message.clone()), failure.status),
        Ok(_) => (None, None),
    };
    let entry = LogEntry {
        at: crate::run::now(),
        trigger: trigger.to_owned(),
        target: target.id.clone(),
        name: target.name.clone(),
        kind: target.kind,
        ok: report.result.is_ok(),
        changed: target.kind == TargetType::Call && matches!(report.result, Ok(Some(_))),
        interrupted,
        error,
        status,
        elapsed_ms: u64::try_from(report.elapsed.as_millis()).unwrap_or(u64::MAX),
        delivery: delivery.cloned(),
        logs: report.logs.iter().map(line).collect(),
    };
    // A log entry is plain data; serializing it cannot fail.
    let json = serde_json::to_vec(&entry).unwrap_or_default();
    Write::Action(ActionWrite::Log(json))
}

fn line(log: &PluginLog) -> LogLine {
    LogLine {
        level: log.level.to_owned(),
        message: log.message.clone(),
    }
}
