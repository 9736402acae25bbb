//! Action targets: components exporting the `target` interface (world `target-plugin`).
//!
//! The host calls a target with an envelope `{"config": ..., "payload": ...}`: `config` is the
//! JSON object the target was created with (what this target may do), `payload` is what
//! triggered it (an API request or response, an event, a function hook's data). The adapter
//! here splits the envelope, deserializes `config` into [`Target::Config`] and hands both to
//! [`Target::handle`]. This module owns that envelope on the guest side and nothing else;
//! logging and secrets are the crate root's [`crate::log`] and [`crate::secret`], which use the
//! same host imports.

use crate::{JsonSchema, Value};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::marker::PhantomData;

/// The generated WIT bindings of the `target-plugin` world. Only [`crate::export_target!`]
/// should need them.
#[doc(hidden)]
pub use weft_plugin_sdk_target_bindings as bindings;

use bindings::exports::weft::plugin::describe as wit_describe;
use bindings::exports::weft::plugin::target as wit_target;
use bindings::weft::plugin::types as wit;

/// What triggered a call and which target is called.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetContext {
    /// The event name (`execution.completed`), API operation (`/v1.Executions/Start`) or
    /// function (`pre_start`) that triggered the call.
    pub trigger: String,
    /// The target's configured name.
    pub target: String,
}

/// Why a target refused or failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetError {
    /// What went wrong, for the caller (a refused request shows it) and the actions log.
    pub message: String,
    /// For request targets: the HTTP status (4xx) the caller gets when the target interrupts.
    pub status: Option<u16>,
}

impl TargetError {
    /// A failure without a status.
    pub fn new(message: impl Into<String>) -> Self {
        TargetError {
            message: message.into(),
            status: None,
        }
    }

    /// A refusal that reaches an API caller with `status`, such as 403.
    pub fn with_status(status: u16, message: impl Into<String>) -> Self {
        TargetError {
            message: message.into(),
            status: Some(status),
        }
    }
}

/// An action target. Each call gets a fresh instance; keep nothing in statics.
pub trait Target {
    /// One line saying what the target does; `describe` returns it.
    const SUMMARY: &'static str;

    /// The target's config. Its JSON Schema (derived with `#[derive(JsonSchema)]`) is what
    /// the host checks a target's `config` against when the target is saved. A config that
    /// does not deserialize fails the call (naming the offending field) before `handle` is
    /// called; use [`Value`] to take anything.
    type Config: DeserializeOwned + JsonSchema;

    /// Handles a payload. `Ok(Some(value))` replaces the payload for later targets when this
    /// target's type is `call`; `Ok(None)` leaves it as it is.
    fn handle(
        ctx: &TargetContext,
        config: Self::Config,
        payload: Value,
    ) -> Result<Option<Value>, TargetError>;
}

/// Exports a type implementing [`Target`] as the component's `target` interface.
///
/// Use it once, at the root of a `cdylib` crate: `export_target!(MyTarget);`
#[macro_export]
macro_rules! export_target {
    ($target:ty) => {
        const _: () = {
            // The generated macro takes a plain identifier, not a generic type.
            type WeftTargetAdapter = $crate::target::TargetAdapter<$target>;
            $crate::target::bindings::__export_target_plugin!(
                WeftTargetAdapter with_types_in $crate::target::bindings
            );
        };
    };
}

/// The envelope the host sends.
#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    config: Value,
    #[serde(default)]
    payload: Value,
}

/// Translates between the WIT types and this crate's for a [`Target`].
#[doc(hidden)]
pub struct TargetAdapter<T>(PhantomData<T>);

impl<T: Target> wit_target::Guest for TargetAdapter<T> {
    fn handle(ctx: wit::TargetContext, payload: String) -> Result<Option<String>, wit::TargetError> {
        let envelope: Envelope = serde_json::from_str(&payload)
            .map_err(|e| TargetError::new(format!("the host sent an envelope that is not JSON: {e}")))?;
        let config = if envelope.config.is_null() {
            Value::Object(Default::default())
        } else {
            envelope.config
        };
        let config: T::Config = serde_path_to_error::deserialize(config).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            TargetError::new(if path == "." {
                format!("invalid config: {inner}")
            } else {
                format!("invalid config: {path}: {inner}")
            })
        })?;
        let ctx = TargetContext {
            trigger: ctx.trigger,
            target: ctx.target,
        };
        let result = T::handle(&ctx, config, envelope.payload)?;
        Ok(result.map(|value| value.to_string()))
    }
}

impl<T: Target> wit_describe::Guest for TargetAdapter<T> {
    fn describe() -> wit_describe::Description {
        // A target takes any payload and may return any payload.
        wit_describe::Description {
            summary: T::SUMMARY.to_owned(),
            input_schema: "{}".to_owned(),
            output_schema: "{}".to_owned(),
            config_schema: Some(crate::schema_text::<T::Config>()),
        }
    }
}

impl From<TargetError> for wit::TargetError {
    fn from(e: TargetError) -> Self {
        wit::TargetError {
            message: e.message,
            status: e.status,
        }
    }
}
