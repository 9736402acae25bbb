//! `hostile`: misbehaves on purpose, to test the host's limits. Never use it in a real
//! workflow.
//!
//! Input: `{"mode": ..., "bytes": u64 (default 100000000)}` where `mode` is one of
//! - `loop`: spins forever (the host's deadline must stop it);
//! - `membomb`: allocates 1 MiB chunks forever (the host's memory cap must stop it);
//! - `trap`: panics, which traps the instance;
//! - `big_output`: completes with a JSON string of `bytes` `x` characters;
//! - `bad_json`: completes with text that is not JSON;
//! - `ok`: completes with `{"ok": true}`.

use serde::Deserialize;
use std::hint::black_box;
use weft_plugin_sdk::{export_step, json, Context, Outcome, Step};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    mode: Mode,
    #[serde(default = "default_bytes")]
    bytes: u64,
}

fn default_bytes() -> u64 {
    100_000_000
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Mode {
    Loop,
    Membomb,
    Trap,
    BigOutput,
    BadJson,
    Ok,
}

const MIB: usize = 1 << 20;

struct Hostile;

impl Step for Hostile {
    type Input = Input;

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
        }
    }
}

export_step!(Hostile);
