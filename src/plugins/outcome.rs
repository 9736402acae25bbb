//! What a call returned, turned into host types under one byte budget.
//!
//! Everything a plugin hands back (an output, a rejection, a failure message, an
//! invalid-answer text, or a form: prompt, fields, choices, defaults, assignees, signal types
//! and state) counts against the call's `max_output_bytes` together, so no part of an outcome
//! can smuggle an unbounded amount of text into the store or an API response. Messages meant
//! for people are also cut to [`MAX_MESSAGE`]. Granted secrets are masked before anything is
//! kept.

use super::bindings::step::weft::plugin::types;
use super::grants;
use super::limits::{DeadlineExceeded, MemoryExceeded};
use super::{Limits, Outcome, Suspension};
use crate::run::{Field, FieldType};
use anyhow::Context as _;
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;

/// Longest failure or invalid-answer message kept, in bytes; they go into logs and errors.
pub const MAX_MESSAGE: usize = 16 * 1024;

/// Why the host stopped a call, and whether another attempt may help.
pub struct HostFailure {
    pub message: String,
    pub retryable: bool,
}

impl From<HostFailure> for Outcome {
    fn from(f: HostFailure) -> Outcome {
        Outcome::Fail {
            message: f.message,
            retryable: f.retryable,
        }
    }
}

/// A call past its deadline; `owner` is what has the `timeout` to raise ("step", "target").
pub fn deadline_failure(limits: Limits, owner: &str) -> HostFailure {
    HostFailure {
        message: format!(
            "the plugin exceeded its deadline of {} and was stopped; raise the {owner}'s `timeout` if it needs longer",
            humantime::format_duration(limits.deadline)
        ),
        retryable: true,
    }
}

/// Why a call trapped: its deadline, its memory cap, or the plugin's own trap.
pub fn trap_failure(
    error: &wasmtime::Error,
    limits: Limits,
    secrets: &HashMap<String, String>,
    owner: &str,
) -> HostFailure {
    if error.downcast_ref::<DeadlineExceeded>().is_some() {
        return deadline_failure(limits, owner);
    }
    if error.downcast_ref::<MemoryExceeded>().is_some() {
        return HostFailure {
            message: format!(
                "the plugin exceeded its memory limit of {} MiB and was stopped",
                limits.memory_bytes >> 20
            ),
            retryable: false,
        };
    }
    let trap = error
        .downcast_ref::<wasmtime::Trap>()
        .map(|t| format!(" ({t})"))
        .unwrap_or_default();
    let message = crate::limits::clip_to(&format!("the plugin trapped{trap}: {error:#}"), MAX_MESSAGE);
    HostFailure {
        message: grants::scrub(&message, secrets),
        retryable: true,
    }
}

/// The bytes of text an outcome carries, all parts together.
fn outcome_bytes(outcome: &types::StepOutcome) -> usize {
    match outcome {
        types::StepOutcome::Complete(json) | types::StepOutcome::Reject(json) => json.len(),
        types::StepOutcome::Fail(e) => e.message.len(),
        types::StepOutcome::InvalidAnswer(text) => text.len(),
        types::StepOutcome::Suspend(request) => {
            let fields: usize = request
                .fields
                .iter()
                .map(|f| {
                    f.name.len()
                        + f.description.len()
                        + f.choices.iter().map(String::len).sum::<usize>()
                        + f.default.as_ref().map_or(0, String::len)
                })
                .sum();
            request.prompt.len()
                + fields
                + request.assignees.iter().map(String::len).sum::<usize>()
                + request.signal_types.iter().map(String::len).sum::<usize>()
                + request.state.len()
        }
    }
}

/// Checks the byte budget, masks granted secrets and converts a step outcome.
pub fn convert(outcome: types::StepOutcome, limits: Limits, secrets: &HashMap<String, String>) -> Outcome {
    let bytes = outcome_bytes(&outcome);
    if bytes > limits.max_output_bytes {
        return Outcome::Fail {
            message: format!(
                "the plugin returned {bytes} bytes of output (its output, messages and form \
                 together), more than the limit of {} bytes",
                limits.max_output_bytes
            ),
            retryable: false,
        };
    }
    let scrub = |text: String| grants::scrub(&text, secrets);
    let message = |text: String| crate::limits::clip_to(&scrub(text), MAX_MESSAGE);
    let result = match outcome {
        types::StepOutcome::Complete(json) => {
            parse_json("output", &scrub(json), limits).map(Outcome::Complete)
        }
        types::StepOutcome::Reject(json) => parse_json("output", &scrub(json), limits).map(Outcome::Reject),
        types::StepOutcome::Fail(e) => Ok(Outcome::Fail {
            message: message(e.message),
            retryable: e.retryable,
        }),
        types::StepOutcome::InvalidAnswer(text) => Ok(Outcome::InvalidAnswer(message(text))),
        types::StepOutcome::Suspend(mut request) => {
            request.prompt = scrub(request.prompt);
            request.state = scrub(request.state);
            suspension(request, limits).map(Outcome::Suspend)
        }
    };
    result.unwrap_or_else(|message| Outcome::Fail {
        message,
        retryable: false,
    })
}

fn suspension(request: types::InteractionRequest, limits: Limits) -> Result<Suspension, String> {
    let fields = request
        .fields
        .into_iter()
        .map(|f| {
            let choices = f
                .choices
                .iter()
                .map(|c| parse_json(&format!("field {} choice", f.name), c, limits))
                .collect::<Result<_, _>>()?;
            let default = f
                .default
                .map(|d| parse_json(&format!("field {} default", f.name), &d, limits))
                .transpose()?;
            Ok(Field {
                field_type: match f.type_ {
                    types::FieldType::String => FieldType::String,
                    types::FieldType::SecureString => FieldType::SecureString,
                    types::FieldType::Boolean => FieldType::Boolean,
                    types::FieldType::Number => FieldType::Number,
                    types::FieldType::Integer => FieldType::Integer,
                    types::FieldType::DateTime => FieldType::DateTime,
                    types::FieldType::Json => FieldType::Json,
                },
                name: f.name,
                description: f.description,
                required: f.required,
                choices,
                default,
            })
        })
        .collect::<Result<_, String>>()?;
    if request.signal_types.is_empty() {
        return Err("the plugin suspended without any signal type, so nothing could ever answer it".into());
    }
    Ok(Suspension {
        prompt: request.prompt,
        fields,
        assignees: request.assignees,
        signal_types: request.signal_types,
        expires_in: request.expires_in.map(Duration::from_secs),
        state: parse_json("state", &request.state, limits)?,
    })
}

/// Parses JSON a plugin returned, refusing oversize or invalid documents.
pub fn parse_json(what: &str, json: &str, limits: Limits) -> Result<Value, String> {
    if json.len() > limits.max_output_bytes {
        return Err(format!(
            "the plugin returned {} bytes of {what}, more than the limit of {} bytes",
            json.len(),
            limits.max_output_bytes
        ));
    }
    serde_json::from_str(json)
        .with_context(|| {
            format!(
                "the plugin returned invalid JSON as its {}",
                crate::limits::clip(what)
            )
        })
        .map_err(|e| crate::limits::clip(&format!("{e:#}")))
}
