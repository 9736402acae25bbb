//! Loads the SDK examples' components in wasmtime 48 (the host's version) as the host will load
//! `weft:plugin@0.2.0`: the WASI 0.2 linker (whose semver matching must accept the components'
//! WASI 0.2.9 and 0.2.12 imports), `weft:plugin/host`, a 128 MiB memory cap (the host's default)
//! and a fresh instance per call. Calls describe and each example's run/resume or handle, and
//! exits non-zero when an outcome is not the expected one.
//!
//!   weft-sdk-wasmtime-check OUT_DIR     (the folder sdk/ci.sh built the examples into)

use anyhow::{anyhow, bail, ensure, Context as _, Result};
use std::path::Path;
use std::time::Instant;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

mod step {
    wasmtime::component::bindgen!({ path: "../../wit", world: "step-plugin" });
}

mod target {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "target-plugin",
        with: {
            "weft:plugin/types": super::step::weft::plugin::types,
            "weft:plugin/host": super::step::weft::plugin::host,
        },
    });
}

use step::weft::plugin::{host, types};

struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
    logs: Vec<String>,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl host::Host for State {
    fn log(&mut self, level: host::Level, message: String) {
        self.logs.push(format!("{level:?}: {message}"));
    }

    fn secret(&mut self, _name: String) -> Option<String> {
        None
    }
}

impl types::Host for State {}

fn store(engine: &Engine) -> Store<State> {
    let mut store = Store::new(
        engine,
        State {
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new().memory_size(128 << 20).build(),
            logs: Vec::new(),
        },
    );
    store.limiter(|s| &mut s.limits);
    store
}

fn answer(data: &str) -> types::ResumeEvent {
    types::ResumeEvent::Answer(types::Answer {
        signal_type: "Confirmation".into(),
        answered_by: "bob".into(),
        answered_at: "2026-11-22T10:00:00Z".into(),
        data: data.into(),
    })
}

fn check_step(engine: &Engine, pre: step::StepPluginPre<State>, input: &str) -> Result<()> {
    let ctx = types::StepContext {
        run_id: "run-1".into(),
        workflow: "sdk-approval".into(),
        step: "Greet".into(),
        attempt: 1,
        started_by: "alice".into(),
    };
    let mut s = store(engine);
    let started = Instant::now();
    let plugin = pre.instantiate(&mut s)?;
    let instantiated = started.elapsed();
    let d = plugin.weft_plugin_describe().call_describe(&mut s)?;
    ensure!(d.config_schema.is_none(), "a step described a config schema");
    let outcome = plugin.weft_plugin_step().call_run(&mut s, &ctx, &input.to_string())?;
    println!("  instantiate {:.1} ms; describe: {}", instantiated.as_secs_f64() * 1e3, d.summary);
    let types::StepOutcome::Suspend(request) = outcome else { bail!("run did not suspend: {outcome:?}") };
    ensure!(request.signal_types == ["Confirmation"] && request.expires_in == Some(60), "unexpected request {request:?}");
    // The host resumes a waiting step in a fresh instance with the state it stored.
    for (data, expected) in [(r#"{"Confirm":"yes"}"#, "invalid-answer"), (r#"{"Confirm":true}"#, "complete"), (r#"{"Confirm":false}"#, "reject")] {
        let mut s = store(engine);
        let plugin = pre.instantiate(&mut s)?;
        let outcome = plugin.weft_plugin_step().call_resume(&mut s, &ctx, &request.state, &answer(data))?;
        let got = match &outcome {
            types::StepOutcome::InvalidAnswer(_) => "invalid-answer",
            types::StepOutcome::Complete(_) => "complete",
            types::StepOutcome::Reject(_) => "reject",
            _ => "other",
        };
        ensure!(got == expected, "answer {data}: expected {expected}, got {outcome:?}");
        println!("  answer {data}: {outcome:?}");
    }
    ensure!(s.data().logs.iter().any(|l| l.starts_with("Level::Info")), "no info log line: {:?}", s.data().logs);
    Ok(())
}

fn check_target(engine: &Engine, pre: target::TargetPluginPre<State>, cases: &[(&str, Option<u16>)]) -> Result<()> {
    let ctx = types::TargetContext { trigger: "/v1.Executions/Start".into(), target: "policy".into() };
    for (envelope, refusal) in cases {
        let mut s = store(engine);
        let plugin = pre.instantiate(&mut s)?;
        ensure!(plugin.weft_plugin_describe().call_describe(&mut s)?.config_schema.is_some(), "no config schema");
        let result = plugin.weft_plugin_target().call_handle(&mut s, &ctx, &envelope.to_string())?;
        match (&result, refusal) {
            (Err(e), Some(status)) if e.status == Some(*status) => {}
            (Ok(_), None) => {}
            _ => bail!("{envelope}: expected {refusal:?}, got {result:?}"),
        }
        println!("  {envelope}: {result:?}");
    }
    Ok(())
}

fn main() -> Result<()> {
    let dir = std::env::args().nth(1).context("usage: weft-sdk-wasmtime-check OUT_DIR")?;
    let engine = Engine::new(&Config::new())?;
    let mut linker: Linker<State> = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    host::add_to_linker::<State, HasSelf<State>>(&mut linker, |s| s)?;
    types::add_to_linker::<State, HasSelf<State>>(&mut linker, |s| s)?;
    for name in ["python-greeter", "js-greeter", "python-deny-target", "js-stamp-target"] {
        let path = Path::new(&dir).join(format!("{name}.wasm"));
        let started = Instant::now();
        let component = Component::from_file(&engine, &path).map_err(|e| anyhow!("{}: {e:#}", path.display()))?;
        println!("{name}: compiled in {:.1} s", started.elapsed().as_secs_f64());
        let pre = linker.instantiate_pre(&component).map_err(|e| anyhow!("{name}: linking: {e:#}"))?;
        match name {
            "python-greeter" => check_step(&engine, step::StepPluginPre::new(pre)?, r#"{"name":"Ada","expires_in":60}"#),
            "js-greeter" => check_step(&engine, step::StepPluginPre::new(pre)?, r#"{"greeting":"hello Ada","expires_in":60}"#),
            "python-deny-target" => check_target(
                &engine,
                target::TargetPluginPre::new(pre)?,
                &[(r#"{"config":{"deny":["mallory"]},"payload":{"user":"mallory"}}"#, Some(403)), (r#"{"config":null,"payload":{"user":"ada"}}"#, None)],
            ),
            _ => check_target(
                &engine,
                target::TargetPluginPre::new(pre)?,
                &[(r#"{"config":null,"payload":{"a":1}}"#, None), (r#"{"config":{"field":"a"},"payload":{"a":1}}"#, Some(400))],
            ),
        }
        .with_context(|| name.to_string())?;
    }
    println!("4 passed, 0 failed");
    Ok(())
}
