//! `hostile`: misbehaves on purpose, to test the host's limits. Never use it in a real
//! workflow.
//!
//! Input: `{"mode": ..., "bytes": u64 (default 100000000)}` where `mode` is one of
//! - `loop`: spins forever (the host's deadline must stop it);
//! - `membomb`: allocates 1 MiB chunks forever (the host's memory cap must stop it);
//! - `trap`: panics, which traps the instance;
//! - `big_output`: completes with a JSON string of `bytes` `x` characters;
//! - `bad_json`: completes with text that is not JSON;
//! - `ok`: completes with `{"ok": true}`;
//! - `fields`: creates `count` wasi:http `fields`, each holding about `bytes` bytes of headers
//!   (the host's resource and field caps must stop it);
//! - `log_flood`: writes `count` log lines of `bytes` bytes each;
//! - `big_fail`: fails with a message of `bytes` bytes;
//! - `big_form`: suspends with a prompt, a field description and an assignee of `bytes` bytes
//!   together;
//! - `big_refusal`: suspends with a small form, then refuses every answer with a text of
//!   `bytes` bytes.

use schemars::JsonSchema;
use serde::Deserialize;
use std::hint::black_box;
use weft_plugin_sdk::{export_step, json, log, Context, Field, FieldType, Interaction, Outcome, ResumeEvent, Step, Value};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Input {
    mode: Mode,
    #[serde(default = "default_bytes")]
    bytes: u64,
    #[serde(default = "default_count")]
    count: u64,
}

fn default_count() -> u64 {
    20_000
}

fn default_bytes() -> u64 {
    100_000_000
}

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
enum Mode {
    Loop,
    Membomb,
    Trap,
    BigOutput,
    BadJson,
    Ok,
    Fields,
    LogFlood,
    BigFail,
    BigForm,
    BigRefusal,
}

const MIB: usize = 1 << 20;

struct Hostile;

impl Step for Hostile {
    const SUMMARY: &'static str = "Test only: misbehaves on purpose";
    type Input = Input;
    type Output = Value;

    fn run(_ctx: &Context, input: Input) -> Outcome {
        match input.mode {
            Mode::Loop => {
                // black_box keeps the optimizer from proving the loop does nothing.
                let mut n = 0u64;
                loop {
                    n = black_box(n.wrapping_add(1));
                }
            }
            Mode::Membomb => {
                let mut chunks = Vec::new();
                loop {
                    // Non-zero bytes, so every page is really written, not lazily zeroed.
                    chunks.push(black_box(vec![1u8; MIB]));
                }
            }
            Mode::Trap => panic!("hostile plugin: trap requested"),
            Mode::BigOutput => {
                let Ok(bytes) = usize::try_from(input.bytes) else {
                    return Outcome::fail("bytes does not fit in this plugin's memory");
                };
                // Built as raw JSON text so the output is not copied again by serialization.
                let mut text = String::with_capacity(bytes + 2);
                text.push('"');
                text.extend(std::iter::repeat_n('x', bytes));
                text.push('"');
                Outcome::CompleteRaw(text)
            }
            Mode::BadJson => Outcome::CompleteRaw("{not json".into()),
            Mode::Ok => Outcome::Complete(json!({"ok": true})),
            Mode::Fields => {
                let value = vec![b'v'; 1000];
                let per_fields = (input.bytes as usize / 1000).max(1);
                let mut kept = Vec::new();
                for i in 0..input.count {
                    let fields = wasip2::http::types::Fields::new();
                    for j in 0..per_fields {
                        if fields.append(&format!("x-{i}-{j}"), &value).is_err() {
                            break;
                        }
                    }
                    kept.push(fields);
                }
                Outcome::Complete(json!({"fields": kept.len()}))
            }
            Mode::LogFlood => {
                let line = "x".repeat(input.bytes as usize);
                for _ in 0..input.count {
                    log::info(&line);
                }
                Outcome::Complete(json!({"logged": input.count}))
            }
            Mode::BigFail => Outcome::fail("x".repeat(input.bytes as usize)),
            Mode::BigForm => {
                let third = (input.bytes / 3) as usize;
                Outcome::Suspend(Interaction {
                    prompt: "p".repeat(third),
                    fields: vec![Field {
                        name: "ok".into(),
                        field_type: FieldType::Boolean,
                        description: "d".repeat(third),
                        required: true,
                        choices: Vec::new(),
                        default: None,
                    }],
                    assignees: vec!["a".repeat(third)],
                    signal_types: vec!["UserInteraction".into()],
                    ..Interaction::default()
                })
            }
            Mode::BigRefusal => Outcome::Suspend(Interaction {
                prompt: "answer anything".into(),
                signal_types: vec!["UserInteraction".into()],
                state: json!({"bytes": input.bytes}),
                ..Interaction::default()
            }),
        }
    }

    fn resume(_ctx: &Context, state: Value, _event: ResumeEvent) -> Outcome {
        let bytes = state["bytes"].as_u64().unwrap_or(0) as usize;
        Outcome::InvalidAnswer("x".repeat(bytes))
    }
}

export_step!(Hostile);
