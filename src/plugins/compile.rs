//! Turning component bytes into something callable: compiling (or loading the compiled
//! artifact from the store), and pre-linking against the host's imports.
//!
//! The bundled plugins and the host's own template engine are trusted and compiled in this
//! process. Every other component is compiled by a child process (`weft __compile`) with a
//! memory budget (`RLIMIT_DATA`) and a time budget (it is killed when the time is up), so a
//! crafted component cannot take the server's memory or hold a compile slot forever; the
//! parent only deserializes the artifact the child wrote. At most
//! `limits.compile_concurrency` compiles run at once; the rest wait their turn.

use super::bindings::step::weft::plugin::types;
use super::bindings::{step, target, v1};
use super::sandbox::CallState;
use super::{Limits, StepCall, World};
use anyhow::{anyhow, Result};
use std::io::{Read, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How many plugin calls may run at once; the pooling allocator is sized for this many.
pub const MAX_CONCURRENT_CALLS: u32 = 128;
/// Bytes of each pooled memory, table and stack kept resident between calls.
const KEEP_RESIDENT: usize = 2 << 20;

/// Where untrusted components are compiled.
#[derive(Clone, Debug, Default)]
pub enum Compiler {
    /// In this process: for embedding the engine (tests, benchmarks), where no `weft`
    /// executable is at hand. The time budget stops waiting but cannot stop the compiler.
    #[default]
    InProcess,
    /// In a child process of this `weft` executable, under the memory and time budgets.
    Worker(PathBuf),
}

impl Compiler {
    /// Compile in children of the running `weft` executable.
    pub fn worker() -> Result<Compiler> {
        Ok(Compiler::Worker(std::env::current_exe()?))
    }
}

/// The wasmtime configuration of every engine, host or compile worker: artifacts compiled by
/// one load in the other only if these match exactly.
pub fn engine_config() -> Config {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(MAX_CONCURRENT_CALLS)
        .total_core_instances(MAX_CONCURRENT_CALLS * 8)
        .total_memories(MAX_CONCURRENT_CALLS * 2)
        .total_tables(MAX_CONCURRENT_CALLS * 8)
        .total_stacks(MAX_CONCURRENT_CALLS)
        .max_memory_size(Limits::MAX_MEMORY_BYTES)
        // Reset only the pages a call touched, with memset, and keep them: no madvise, page
        // faults or TLB-shootdown IPIs on the next call in the same slot.
        .pagemap_scan(wasmtime::Enabled::Auto)
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(KEEP_RESIDENT)
        .async_stack_keep_resident(KEEP_RESIDENT);
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    config
}

/// Refuses bytes that are not a component, with the reason in terms the author can act on.
pub fn check_header(bytes: &[u8]) -> Result<(), String> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err("not a WebAssembly file: it does not start with the `\\0asm` magic bytes".into());
    }
    match bytes[4..8] {
        [0x0d, 0x00, 0x01, 0x00] => Ok(()),
        [0x01, 0x00, 0x00, 0x00] => Err(
            "this is a core WebAssembly module, not a component: build the plugin \
             for the wasm32-wasip2 target (or wrap it with `wasm-tools component new`)"
                .into(),
        ),
        _ => Err(
            "unsupported WebAssembly version or layer: expected a component (version 0x0d, layer 1)".into(),
        ),
    }
}

/// A compiled component and its serialized artifact, ready to be cached.
pub struct Compiled {
    pub component: Component,
    pub artifact: Vec<u8>,
}

/// Compiles untrusted `bytes` as `compiler` says, within `limits`' budgets.
pub async fn compile(
    engine: &Engine,
    compiler: &Compiler,
    bytes: Vec<u8>,
    limits: &crate::limits::Limits,
) -> Result<Compiled, String> {
    check_header(&bytes)?;
    let artifact = match compiler {
        Compiler::InProcess => {
            let engine = engine.clone();
            let work = tokio::task::spawn_blocking(move || {
                Component::new(&engine, &bytes)
                    .and_then(|c| c.serialize())
                    .map_err(|e| format!("not a valid WebAssembly component: {e:#}"))
            });
            tokio::time::timeout(limits.compile_timeout, work)
                .await
                .map_err(|_| over_time(limits))?
                .map_err(|e| format!("the compiler crashed: {e}"))??
        }
        Compiler::Worker(exe) => in_worker(exe, bytes, limits).await?,
    };
    // SAFETY: the artifact was just produced by `Component::serialize` with this same engine
    // configuration (`engine_config`), here or by our own child process; wasmtime re-checks
    // its header and compatibility.
    let component = unsafe { Component::deserialize(engine, &artifact) }
        .map_err(|e| format!("the compiled artifact is unusable: {e:#}"))?;
    Ok(Compiled { component, artifact })
}

fn over_time(limits: &crate::limits::Limits) -> String {
    format!(
        "compiling the component took longer than {} and was stopped (limits.compile_timeout)",
        humantime::format_duration(limits.compile_timeout)
    )
}

/// Runs `weft __compile` with `bytes` on its stdin and reads the artifact from its stdout.
async fn in_worker(exe: &PathBuf, bytes: Vec<u8>, limits: &crate::limits::Limits) -> Result<Vec<u8>, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let memory = (limits.compile_memory_mb as u64) << 20;
    let mut command = tokio::process::Command::new(exe);
    command
        .arg("__compile")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .env_remove("WEFT_LOG")
        .kill_on_drop(true);
    // SAFETY: only async-signal-safe calls (setrlimit) between fork and exec.
    unsafe {
        command.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: memory,
                rlim_max: memory,
            };
            if libc::setrlimit(libc::RLIMIT_DATA, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot start the compiler process {}: {e}", exe.display()))?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let work = async {
        let feed = async {
            // The child may stop reading early (an invalid header); that is its answer.
            let _ = stdin.write_all(&bytes).await;
            drop(stdin);
        };
        let mut artifact = Vec::new();
        let mut message = Vec::new();
        let mut stderr = (&mut stderr).take(64 << 10);
        let (_, out, _) = tokio::join!(
            feed,
            stdout.read_to_end(&mut artifact),
            stderr.read_to_end(&mut message),
        );
        out.map_err(|e| format!("cannot read the compiler's output: {e}"))?;
        let status = child
            .wait()
            .await
            .map_err(|e| format!("cannot wait for the compiler: {e}"))?;
        Ok::<_, String>((status, artifact, message))
    };
    let (status, artifact, message) = tokio::time::timeout(limits.compile_timeout, work)
        .await
        .map_err(|_| over_time(limits))??;
    let message = String::from_utf8_lossy(&message).trim().to_owned();
    if status.success() {
        return Ok(artifact);
    }
    if status.code() == Some(INVALID) {
        return Err(crate::limits::clip(&message));
    }
    Err(format!(
        "compiling the component needed more than its memory budget of {} MiB and was stopped \
         (limits.compile_memory_mb){}",
        limits.compile_memory_mb,
        if message.is_empty() {
            String::new()
        } else {
            format!(": {}", crate::limits::clip(&message))
        }
    ))
}

/// The compile worker's exit code for "these bytes are not a valid component".
const INVALID: i32 = 3;

/// `weft __compile`: reads component bytes on stdin, writes the compiled artifact on stdout.
/// Exit code 3 with the reason on stderr when the bytes are not a valid component; anything
/// else (an allocation failure under the memory budget) is the parent's to explain.
pub fn worker_main() -> ExitCode {
    let mut bytes = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut bytes) {
        eprintln!("cannot read the component: {e}");
        return ExitCode::FAILURE;
    }
    if let Err(message) = check_header(&bytes) {
        eprintln!("{message}");
        return ExitCode::from(INVALID as u8);
    }
    let engine = match Engine::new(&engine_config()) {
        Ok(engine) => engine,
        Err(e) => {
            eprintln!("cannot configure wasmtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match Component::new(&engine, &bytes).and_then(|c| c.serialize()) {
        Ok(artifact) => match std::io::stdout().write_all(&artifact) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("cannot write the artifact: {e}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("not a valid WebAssembly component: {e:#}");
            ExitCode::from(INVALID as u8)
        }
    }
}

/// A pre-linked step component, of either contract version.
#[derive(Clone)]
pub enum StepPre {
    V1(v1::step::StepPluginPre<CallState>),
    V2(step::StepPluginPre<CallState>),
}

/// A pre-linked target component, of either contract version.
#[derive(Clone)]
pub enum TargetPre {
    V1(v1::target::TargetPluginPre<CallState>),
    V2(target::TargetPluginPre<CallState>),
}

/// A pre-linked plugin component.
#[derive(Clone)]
pub enum Linked {
    Step(StepPre),
    Target(TargetPre),
}

impl Linked {
    pub fn world(&self) -> World {
        match self {
            Linked::Step(_) => World::Step,
            Linked::Target(_) => World::Target,
        }
    }

    /// The contract version the component was built against: `0.1.0` or `0.2.0`.
    pub fn contract_version(&self) -> &'static str {
        match self {
            Linked::Step(StepPre::V1(_)) | Linked::Target(TargetPre::V1(_)) => "0.1.0",
            Linked::Step(StepPre::V2(_)) | Linked::Target(TargetPre::V2(_)) => "0.2.0",
        }
    }
}

impl StepPre {
    /// A fresh instance's `run` or `resume`: the same call for both contract versions.
    pub async fn call(
        &self,
        store: &mut wasmtime::Store<CallState>,
        ctx: &types::StepContext,
        call: &StepCall,
    ) -> wasmtime::Result<types::StepOutcome> {
        macro_rules! call {
            ($pre:expr) => {{
                let instance = $pre.instantiate_async(&mut *store).await?;
                let step = instance.weft_plugin_step();
                match call {
                    StepCall::Run { input } => step.call_run(&mut *store, ctx, input).await,
                    StepCall::Resume { state, event } => {
                        step.call_resume(&mut *store, ctx, state, event).await
                    }
                }
            }};
        }
        match self {
            StepPre::V1(pre) => call!(pre),
            StepPre::V2(pre) => call!(pre),
        }
    }
}

impl TargetPre {
    /// A fresh instance's `handle`: the same call for both contract versions.
    pub async fn handle(
        &self,
        store: &mut wasmtime::Store<CallState>,
        ctx: &types::TargetContext,
        payload: &String,
    ) -> wasmtime::Result<Result<Option<String>, types::TargetError>> {
        macro_rules! handle {
            ($pre:expr) => {{
                let instance = $pre.instantiate_async(&mut *store).await?;
                instance
                    .weft_plugin_target()
                    .call_handle(&mut *store, ctx, payload)
                    .await
            }};
        }
        match self {
            TargetPre::V1(pre) => handle!(pre),
            TargetPre::V2(pre) => handle!(pre),
        }
    }
}

impl Linked {
    /// What a 0.2.0 component's `describe` returns, from a fresh instance; `None` for 0.1.0.
    pub async fn describe(
        &self,
        store: &mut wasmtime::Store<CallState>,
    ) -> wasmtime::Result<Option<(String, String, String, Option<String>)>> {
        let texts = match self {
            Linked::Step(StepPre::V2(pre)) => {
                let instance = pre.instantiate_async(&mut *store).await?;
                let d = instance.weft_plugin_describe().call_describe(&mut *store).await?;
                (d.summary, d.input_schema, d.output_schema, d.config_schema)
            }
            Linked::Target(TargetPre::V2(pre)) => {
                let instance = pre.instantiate_async(&mut *store).await?;
                let d = instance.weft_plugin_describe().call_describe(&mut *store).await?;
                (d.summary, d.input_schema, d.output_schema, d.config_schema)
            }
            Linked::Step(StepPre::V1(_)) | Linked::Target(TargetPre::V1(_)) => return Ok(None),
        };
        Ok(Some(texts))
    }
}

/// Pre-links a component and finds out which world, and which version of the contract, it
/// implements. Extra exports (componentize-py's `exports`) are never called.
pub fn link(linker: &Linker<CallState>, component: &Component) -> Result<Linked, String> {
    let pre = linker.instantiate_pre(component).map_err(|e| {
        format!(
            "the component needs an import Weft does not provide ({}); plugins may import \
             only weft:plugin/host (0.2.0 or 0.1.0) and the WASI 0.2 interfaces",
            crate::limits::clip(&format!("{e:#}"))
        )
    })?;
    if let Ok(pre) = step::StepPluginPre::new(pre.clone()) {
        return Ok(Linked::Step(StepPre::V2(pre)));
    }
    if let Ok(pre) = target::TargetPluginPre::new(pre.clone()) {
        return Ok(Linked::Target(TargetPre::V2(pre)));
    }
    if let Ok(pre) = v1::step::StepPluginPre::new(pre.clone()) {
        return Ok(Linked::Step(StepPre::V1(pre)));
    }
    if let Ok(pre) = v1::target::TargetPluginPre::new(pre) {
        return Ok(Linked::Target(TargetPre::V1(pre)));
    }
    Err(
        "the component exports neither weft:plugin/step@0.2.0 with weft:plugin/describe@0.2.0 \
         (world step-plugin) nor weft:plugin/target@0.2.0 with describe (world target-plugin), \
         nor the step or target interface of weft:plugin@0.1.0; build it against wit/weft.wit"
            .into(),
    )
}

/// Compiles trusted (bundled) bytes in this process.
pub fn compile_trusted(engine: &Engine, bytes: &[u8]) -> Result<Compiled> {
    let component = Component::new(engine, bytes).map_err(|e| anyhow!("{e:#}"))?;
    let artifact = component.serialize().map_err(|e| anyhow!("{e:#}"))?;
    Ok(Compiled { component, artifact })
}
