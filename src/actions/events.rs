//! The events targets can subscribe to: their names, groups and payloads.
//!
//! An event is named `group.what` (`execution.completed`); the group is everything before the
//! first dot. Its payload is `{"id", "event", "at", "attempt", "data"}`: `id` is unique per
//! event (for deduplication, since delivery is at-least-once), `attempt` counts deliveries
//! (1, then 2 after a crash interrupted the first), `data` depends on the event. Run data
//! never carries inputs or outputs, which may hold secure strings.
//!
//! This module only describes events; [`super::outbox`] stores and delivers them.

use crate::names::StepName;
use crate::plugins::PluginMeta;
use crate::run::{rfc3339, RunRecord, RunState};
use serde_json::{json, Value};

/// Every event, with what it means (for messages and the README's table).
pub const EVENTS: &[(&str, &str)] = &[
    ("execution.started", "a run was created"),
    (
        "execution.running",
        "a waiting run goes on after an answer or a timer",
    ),
    ("execution.waiting", "a run waits for a person"),
    ("execution.completed", "a run completed"),
    ("execution.failed", "a run failed"),
    ("execution.canceled", "a run was canceled"),
    ("execution.rejected", "an approval rejected a run"),
    ("interaction.created", "a step began waiting for a person"),
    (
        "interaction.reminder",
        "a step still waits for a person after its remind_every",
    ),
    (
        "interaction.escalated",
        "an interaction expired and was handed to other people",
    ),
    ("plugin.uploaded", "a plugin version was added"),
];

/// The group of an event name: everything before the first dot.
pub fn group(name: &str) -> &str {
    name.split_once('.').map_or(name, |(group, _)| group)
}

/// Whether `name` is a known event.
pub fn is_event(name: &str) -> bool {
    EVENTS.iter().any(|(e, _)| *e == name)
}

/// Whether `name` is a known event group.
pub fn is_group(name: &str) -> bool {
    EVENTS.iter().any(|(e, _)| group(e) == name)
}

/// Something that happened, about to be written to the outbox.
#[derive(Clone, Debug, PartialEq)]
pub struct ActionEvent {
    pub name: &'static str,
    pub data: Value,
}

impl ActionEvent {
    /// A run was created (whatever state its first transition left it in).
    pub fn run_started(run: &RunRecord) -> ActionEvent {
        ActionEvent {
            name: "execution.started",
            data: json!({ "run": run.summary() }),
        }
    }

    /// A run moved to `state`; none for `pending`, which only a new run has.
    pub fn run_changed(run: &RunRecord, state: RunState) -> Option<ActionEvent> {
        let name = match state {
            RunState::Pending => return None,
            RunState::Running => "execution.running",
            RunState::Waiting => "execution.waiting",
            RunState::Completed => "execution.completed",
            RunState::Failed => "execution.failed",
            RunState::Canceled => "execution.canceled",
            RunState::Rejected => "execution.rejected",
        };
        let mut data = run.summary();
        // A transition may pass through several states; each event tells its own.
        data.state = state;
        Some(ActionEvent {
            name,
            data: json!({ "run": data }),
        })
    }

    /// Step `step` of `run` began waiting for a person.
    pub fn interaction_created(run: &RunRecord, step: &StepName) -> ActionEvent {
        let waiting = run.step(step.as_str()).and_then(|s| s.waiting.as_ref());
        ActionEvent {
            name: "interaction.created",
            data: json!({
                "run": run.summary(),
                "step": step,
                "prompt": waiting.map(|w| w.prompt.clone()),
                "assignees": waiting.map(|w| w.assignees.clone()).unwrap_or_default(),
                "signal_types": waiting.map(|w| w.signal_types.clone()).unwrap_or_default(),
                "expires_at": waiting.and_then(|w| w.expires_at).map(rfc3339),
            }),
        }
    }

    /// Step `step` of `run` still waits for a person: reminder number `count`.
    pub fn interaction_reminder(run: &RunRecord, step: &StepName, count: u32) -> ActionEvent {
        let mut event = ActionEvent::interaction_created(run, step);
        event.name = "interaction.reminder";
        event.data["reminder"] = json!(count);
        event
    }

    /// Step `step` of `run` expired and now waits for `to`.
    pub fn interaction_escalated(run: &RunRecord, step: &StepName, to: &[String]) -> ActionEvent {
        let mut event = ActionEvent::interaction_created(run, step);
        event.name = "interaction.escalated";
        event.data["escalated_to"] = json!(to);
        event
    }

    /// A plugin version was added.
    pub fn plugin_uploaded(meta: &PluginMeta) -> ActionEvent {
        ActionEvent {
            name: "plugin.uploaded",
            data: json!({ "plugin": {
                "name": meta.name,
                "version": meta.version,
                "digest": meta.digest,
                "world": meta.world,
                "size": meta.size,
            }}),
        }
    }
}
