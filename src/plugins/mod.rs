//! The plugin host: runs untrusted WebAssembly components under hard limits.
//!
//! One wasmtime [`Engine`] per process with the pooling allocator and epoch interruption.
//! Components are compiled once; the compiled artifact is cached in the store under the
//! plugin's digest and the engine's compatibility hash, so a restart deserializes instead of
//! compiling and a changed engine configuration recompiles. Each loaded plugin keeps a
//! pre-linked `InstancePre`; every call gets a fresh instance in a fresh `Store`, so no state
//! leaks between calls and nothing is kept alive while a step waits.
//!
//! A plugin gets WASI with nothing granted (no files, sockets or environment; it is linked
//! only because Rust's std imports it), a deadline, a memory cap and an output-size cap. A
//! trap, a deadline, an oversize output or invalid JSON becomes a failed call with a reason;
//! it never reaches the host or another call.
//!
//! This module knows nothing of runs or scheduling: it loads components and calls them.

mod bindings;
pub mod builtin;
mod catalog;
mod floor;
mod grants;
mod limits;

pub use catalog::AddError;
pub use grants::Grants;
pub use limits::Limits;

use crate::names::Digest;
use crate::run::{Field, FieldType};
use crate::store::{Store, Write};
use anyhow::{anyhow, Context as _, Result};
use bindings::step::weft::plugin::{host, types};
use bindings::step::{StepPlugin, StepPluginPre};
use bindings::target::{TargetPlugin, TargetPluginPre};
use limits::{CallLimiter, DeadlineExceeded, MemoryExceeded};
use serde_json::Value;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use tokio::sync::{OnceCell, Semaphore};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// How many plugin calls may run at once; the pooling allocator is sized for this many.
const MAX_CONCURRENT_CALLS: u32 = 128;
/// Bytes of each pooled memory, table and stack kept resident between calls (see
/// [`PluginHost::with_grants`]).
const KEEP_RESIDENT: usize = 2 << 20;
/// How often the epoch ticks, which bounds how late a deadline is noticed in wasm code.
const EPOCH_TICK: Duration = Duration::from_millis(5);
/// Extra time past the deadline before a call blocked in a host import is abandoned.
const DEADLINE_GRACE: Duration = Duration::from_millis(250);
/// Log lines kept per call, and bytes per line; a chatty plugin cannot flood the store.
const MAX_LOG_LINES: usize = 1000;
const MAX_LOG_LINE: usize = 8 * 1024;

/// Which world a component implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum World {
    Step,
    Target,
}

impl World {
    pub fn as_str(self) -> &'static str {
        match self {
            World::Step => "step",
            World::Target => "target",
        }
    }
}

/// Who is calling and for what; handed to the plugin as its `step-context`.
#[derive(Clone, Debug)]
pub struct CallContext {
    pub run_id: String,
    pub workflow: String,
    pub step: String,
    pub attempt: u32,
    pub started_by: String,
}

/// What a step plugin decided.
#[derive(Clone, Debug)]
pub enum Outcome {
    Complete(Value),
    Suspend(Suspension),
    Fail { message: String, retryable: bool },
    Reject(Value),
    InvalidAnswer(String),
}

/// A step's request to wait for a person.
#[derive(Clone, Debug)]
pub struct Suspension {
    pub prompt: String,
    pub fields: Vec<Field>,
    pub assignees: Vec<String>,
    pub signal_types: Vec<String>,
    pub expires_in: Option<Duration>,
    pub state: Value,
}

/// Why a suspended step is resumed.
#[derive(Clone, Debug)]
pub enum ResumeEvent {
    Answer {
        signal_type: String,
        answered_by: String,
        answered_at: OffsetDateTime,
        data: Value,
    },
    Expired,
}

/// A line a plugin logged during a call.
#[derive(Clone, Debug)]
pub struct PluginLog {
    pub level: &'static str,
    pub message: String,
}

/// The result of one call: the outcome, the plugin's log lines, and the time it took.
#[derive(Debug)]
pub struct CallReport {
    pub outcome: Outcome,
    pub logs: Vec<PluginLog>,
    pub elapsed: Duration,
}

/// Per-call state inside a wasmtime `Store`.
struct CallState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: CallLimiter,
    logs: Vec<PluginLog>,
    /// Secrets granted to this plugin, by name.
    secrets: HashMap<String, String>,
    http: wasmtime_wasi_http::WasiHttpCtx,
    outbound: Outbound,
}

/// Outbound HTTP for one call: allowed only where the plugin's grant says.
struct Outbound {
    rules: Vec<grants::HttpRule>,
    /// Requests refused, for the run's log.
    denied: Vec<String>,
}

impl wasmtime_wasi_http::WasiHttpHooks for Outbound {
    fn send_request(
        &mut self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        fut: Box<dyn std::future::Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<
        dyn std::future::Future<
                Output = std::result::Result<
                    (
                        http::Response<wasmtime_wasi_http::WasiBody>,
                        Box<dyn std::future::Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
                    ),
                    wasmtime_wasi_http::Error,
                >,
            > + Send,
    > {
        drop(fut);
        let uri = request.uri();
        let host = uri.host().unwrap_or_default().to_owned();
        let port = uri.port_u16();
        let method = request.method().clone();
        if !self.rules.iter().any(|r| r.allows(&method, &host, port)) {
            let target = format!("{method} {}", uri.authority().map(|a| a.as_str()).unwrap_or("?"));
            self.denied.push(format!(
                "outbound HTTP denied: {target} is not in this plugin's grant"
            ));
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        Box::new(async move {
            use http_body_util::BodyExt;
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn std::future::Future<Output = _> + Send>,
            ))
        })
    }
}

impl wasmtime_wasi_http::WasiHttpView for CallState {
    fn http(&mut self) -> wasmtime_wasi_http::WasiHttpCtxView<'_> {
        wasmtime_wasi_http::WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for CallState {}

impl host::Host for CallState {
    fn log(&mut self, level: host::Level, message: String) {
        if self.logs.len() >= MAX_LOG_LINES {
            return;
        }
        let level = match level {
            host::Level::Trace => "trace",
            host::Level::Debug => "debug",
            host::Level::Info => "info",
            host::Level::Warn => "warn",
            host::Level::Error => "error",
        };
        let mut message = message;
        if message.len() > MAX_LOG_LINE {
            let mut cut = MAX_LOG_LINE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push_str(" …(truncated)");
        }
        self.logs.push(PluginLog { level, message });
    }

    fn secret(&mut self, name: String) -> Option<String> {
        self.secrets.get(&name).cloned()
    }
}

/// A pre-linked component, by world, with the plugin's name, which its grant is looked up by.
enum Loaded {
    Step {
        pre: StepPluginPre<CallState>,
        name: String,
    },
    Target {
        pre: TargetPluginPre<CallState>,
        name: String,
    },
}

impl Loaded {
    fn name(&self) -> &str {
        match self {
            Loaded::Step { name, .. } | Loaded::Target { name, .. } => name,
        }
    }
}

/// One call's sandbox: a fresh wasmtime store with the plugin's grant, memory cap and
/// deadline, and the permits the call counts against until it is dropped.
struct Sandbox<'host> {
    store: wasmtime::Store<CallState>,
    loaded: Arc<Loaded>,
    /// The call's limits, tightened by the plugin's grant.
    limits: Limits,
    /// Granted secrets, masked in everything the plugin returns.
    secrets: HashMap<String, String>,
    _permit: tokio::sync::SemaphorePermit<'host>,
    _plugin_permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Sandbox<'_> {
    /// The plugin's log lines and its refused requests, with granted secrets masked.
    fn logs(&mut self) -> Vec<PluginLog> {
        let state = self.store.data_mut();
        let denied = state.outbound.denied.drain(..).map(|message| PluginLog {
            level: "warn",
            message,
        });
        let mut logs: Vec<PluginLog> = std::mem::take(&mut state.logs);
        logs.extend(denied);
        for line in &mut logs {
            line.message = grants::scrub(&line.message, &self.secrets);
        }
        logs
    }
}

/// Why a call could not even start.
struct Unavailable {
    message: String,
    retryable: bool,
}

/// Where a target is called, handed to the plugin as its `target-context`.
#[derive(Clone, Debug)]
pub struct TargetCall {
    /// The event, API operation or function that triggered the call.
    pub trigger: String,
    /// The target's configured name.
    pub target: String,
}

/// Why a target call failed: the plugin's own error, or the host's reason (deadline, trap,
/// memory, invalid output), which has no status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetFailure {
    pub message: String,
    pub status: Option<u16>,
}

/// The result of one target call: a replacement payload or none, or why it failed; the
/// plugin's log lines; and the time it took.
#[derive(Debug)]
pub struct TargetReport {
    pub result: Result<Option<Value>, TargetFailure>,
    pub logs: Vec<PluginLog>,
    pub elapsed: Duration,
}

enum StepCall {
    Run {
        input: String,
    },
    Resume {
        state: String,
        event: types::ResumeEvent,
    },
}

/// The process's plugin host; cheap to clone.
#[derive(Clone)]
pub struct PluginHost {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    linker: Linker<CallState>,
    store: Store,
    /// Identifies the engine configuration in compiled-artifact cache keys.
    engine_hash: String,
    loaded: Mutex<HashMap<Digest, Arc<OnceCell<Arc<Loaded>>>>>,
    permits: Semaphore,
    grants: Grants,
    /// Held while a plugin is added, from the name check to the commit.
    adding: tokio::sync::Mutex<()>,
    /// Extra writes committed with every added plugin (its `plugin.uploaded` event).
    on_added: std::sync::OnceLock<AddedHook>,
}

/// Given an added plugin, the writes to commit in the same transaction as the plugin itself.
pub type AddedHook = Box<dyn Fn(&crate::store::PluginMeta) -> Result<Vec<Write>> + Send + Sync>;

impl PluginHost {
    /// A host that grants no plugin anything beyond its sandbox.
    pub fn new(store: Store) -> Result<PluginHost> {
        Self::with_grants(store, Grants::default())
    }

    /// Builds the engine and linker once, and starts the epoch ticker.
    pub fn with_grants(store: Store, grants: Grants) -> Result<PluginHost> {
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
        let engine = Engine::new(&config).map_err(|e| anyhow!("cannot configure wasmtime: {e}"))?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        host::add_to_linker::<CallState, wasmtime::component::HasSelf<CallState>>(&mut linker, |s| s)?;
        types::add_to_linker::<CallState, wasmtime::component::HasSelf<CallState>>(&mut linker, |s| s)?;

        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_hash = format!("{:016x}", hasher.finish());

        let weak = engine.weak();
        std::thread::Builder::new()
            .name("weft-epoch".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })?;

        Ok(PluginHost {
            inner: Arc::new(Inner {
                engine,
                linker,
                store,
                engine_hash,
                loaded: Mutex::new(HashMap::new()),
                permits: Semaphore::new(MAX_CONCURRENT_CALLS as usize),
                grants,
                adding: tokio::sync::Mutex::new(()),
                on_added: std::sync::OnceLock::new(),
            }),
        })
    }

    /// Sets the writes to commit with every plugin added from now on; only the first hook
    /// set counts, so an event can never be recorded twice.
    pub fn on_added(&self, hook: AddedHook) {
        if self.inner.on_added.set(hook).is_err() {
            tracing::warn!("a hook for added plugins was already set; keeping the first");
        }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Calls a step plugin's `run`.
    pub async fn run(&self, plugin: &Digest, ctx: &CallContext, input: &Value, limits: Limits) -> CallReport {
        let call = StepCall::Run {
            input: input.to_string(),
        };
        self.call_step(plugin, ctx, call, limits).await
    }

    /// Calls a step plugin's `resume` with the state it suspended with.
    pub async fn resume(
        &self,
        plugin: &Digest,
        ctx: &CallContext,
        state: &Value,
        event: ResumeEvent,
        limits: Limits,
    ) -> CallReport {
        let event = match event {
            ResumeEvent::Answer {
                signal_type,
                answered_by,
                answered_at,
                data,
            } => types::ResumeEvent::Answer(types::Answer {
                signal_type,
                answered_by,
                answered_at: crate::run::rfc3339(answered_at),
                data: data.to_string(),
            }),
            ResumeEvent::Expired => types::ResumeEvent::Expired,
        };
        let call = StepCall::Resume {
            state: state.to_string(),
            event,
        };
        self.call_step(plugin, ctx, call, limits).await
    }

    async fn call_step(
        &self,
        plugin: &Digest,
        ctx: &CallContext,
        call: StepCall,
        limits: Limits,
    ) -> CallReport {
        let started = Instant::now();
        let mut sandbox = match self.sandbox(plugin, limits).await {
            Ok(sandbox) => sandbox,
            Err(e) => return failed(started, e.message, e.retryable),
        };
        let Loaded::Step { pre, .. } = &*sandbox.loaded else {
            let message = format!("plugin {plugin} is a target plugin, not a step plugin");
            return failed(started, message, false);
        };
        let pre = pre.clone();
        let limits = sandbox.limits;
        let wit_ctx = types::StepContext {
            run_id: ctx.run_id.clone(),
            workflow: ctx.workflow.clone(),
            step: ctx.step.clone(),
            attempt: ctx.attempt,
            started_by: ctx.started_by.clone(),
        };
        let store = &mut sandbox.store;
        let result = tokio::time::timeout(limits.deadline + DEADLINE_GRACE, async {
            let instance: StepPlugin = pre.instantiate_async(&mut *store).await?;
            let step = instance.weft_plugin_step();
            match &call {
                StepCall::Run { input } => step.call_run(&mut *store, &wit_ctx, input).await,
                StepCall::Resume { state, event } => {
                    step.call_resume(&mut *store, &wit_ctx, state, event).await
                }
            }
        })
        .await;
        let secrets = &sandbox.secrets;
        let outcome = match result {
            Err(_elapsed) => deadline_failure(limits, "step").into(),
            Ok(Err(error)) => trap_failure(&error, limits, secrets, "step").into(),
            Ok(Ok(outcome)) => convert_outcome(scrub_outcome(outcome, secrets), limits),
        };
        CallReport {
            outcome,
            logs: sandbox.logs(),
            elapsed: started.elapsed(),
        }
    }

    /// Calls an action target's `handle` with `envelope` (`{"config", "payload"}`), under
    /// `limits` (whose deadline is the target's timeout).
    pub async fn call_target(
        &self,
        plugin: &Digest,
        call: &TargetCall,
        envelope: &Value,
        limits: Limits,
    ) -> TargetReport {
        let started = Instant::now();
        let failure = |message: String| TargetFailure {
            message,
            status: None,
        };
        let mut sandbox = match self.sandbox(plugin, limits).await {
            Ok(sandbox) => sandbox,
            Err(e) => {
                return TargetReport {
                    result: Err(failure(e.message)),
                    logs: Vec::new(),
                    elapsed: started.elapsed(),
                }
            }
        };
        let Loaded::Target { pre, .. } = &*sandbox.loaded else {
            return TargetReport {
                result: Err(failure(format!(
                    "plugin {plugin} is a step plugin, not a target plugin (world target-plugin)"
                ))),
                logs: Vec::new(),
                elapsed: started.elapsed(),
            };
        };
        let pre = pre.clone();
        let limits = sandbox.limits;
        let wit_ctx = types::TargetContext {
            trigger: call.trigger.clone(),
            target: call.target.clone(),
        };
        let payload = envelope.to_string();
        let store = &mut sandbox.store;
        let result = tokio::time::timeout(limits.deadline + DEADLINE_GRACE, async {
            let instance: TargetPlugin = pre.instantiate_async(&mut *store).await?;
            instance
                .weft_plugin_target()
                .call_handle(&mut *store, &wit_ctx, &payload)
                .await
        })
        .await;
        let secrets = &sandbox.secrets;
        let result = match result {
            Err(_elapsed) => Err(failure(deadline_failure(limits, "target").message)),
            Ok(Err(error)) => Err(failure(trap_failure(&error, limits, secrets, "target").message)),
            Ok(Ok(Ok(None))) => Ok(None),
            Ok(Ok(Ok(Some(json)))) => parse_json("payload", &grants::scrub(&json, secrets), limits)
                .map(Some)
                .map_err(failure),
            Ok(Ok(Err(e))) => Err(TargetFailure {
                message: grants::scrub(&e.message, secrets),
                status: e.status,
            }),
        };
        TargetReport {
            result,
            logs: sandbox.logs(),
            elapsed: started.elapsed(),
        }
    }

    /// Sets up one call of `plugin`: takes a call permit (and the plugin's own, if its grant
    /// limits concurrency), loads the component, and builds a fresh store with the grant's
    /// environment, HTTP rules and secrets, the memory cap and the epoch deadline.
    async fn sandbox(&self, plugin: &Digest, limits: Limits) -> Result<Sandbox<'_>, Unavailable> {
        let Ok(permit) = self.inner.permits.acquire().await else {
            return Err(Unavailable {
                message: "the plugin host is shutting down".into(),
                retryable: true,
            });
        };
        let loaded = self.load(plugin).await.map_err(|e| Unavailable {
            message: format!("cannot load plugin {plugin}: {e:#}"),
            retryable: true,
        })?;
        let grant = self.inner.grants.of(loaded.name());
        let limits = Limits {
            memory_bytes: grant
                .memory_bytes
                .map_or(limits.memory_bytes, |m| m.min(limits.memory_bytes)),
            max_output_bytes: grant
                .max_output_bytes
                .map_or(limits.max_output_bytes, |m| m.min(limits.max_output_bytes)),
            ..limits
        };
        let plugin_permit = match &grant.concurrency {
            Some(semaphore) => semaphore.clone().acquire_owned().await.ok(),
            None => None,
        };
        let mut wasi = WasiCtx::builder();
        wasi.envs(&grant.env);
        let mut store = wasmtime::Store::new(
            &self.inner.engine,
            CallState {
                wasi: wasi.build(),
                table: ResourceTable::new(),
                limiter: CallLimiter::new(limits.memory_bytes),
                logs: Vec::new(),
                secrets: grant.secrets.clone(),
                http: wasmtime_wasi_http::WasiHttpCtx::new(),
                outbound: Outbound {
                    rules: grant.http.clone(),
                    denied: Vec::new(),
                },
            },
        );
        store.limiter(|s| &mut s.limiter);
        let deadline = Instant::now() + limits.deadline;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                Err(DeadlineExceeded.into())
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        Ok(Sandbox {
            store,
            loaded,
            limits,
            secrets: grant.secrets,
            _permit: permit,
            _plugin_permit: plugin_permit,
        })
    }

    /// The loaded (pre-linked) form of `plugin`, compiling or deserializing it on first use.
    async fn load(&self, plugin: &Digest) -> Result<Arc<Loaded>> {
        let cell = self
            .inner
            .loaded
            .lock()
            .expect("plugin table lock")
            .entry(plugin.clone())
            .or_default()
            .clone();
        cell.get_or_try_init(|| async {
            let bytes = self
                .bytes(plugin)?
                .ok_or_else(|| anyhow!("no plugin with digest {plugin} is stored"))?;
            let component = self.component(plugin, &bytes).await?;
            let name = self.name_of(plugin)?;
            self.link(&component, name)
                .map_err(|e| anyhow!(e))
                .map(|(_, l)| Arc::new(l))
        })
        .await
        .cloned()
    }

    /// The component for `digest`: from the compiled cache, or compiled and then cached.
    async fn component(&self, digest: &Digest, bytes: &[u8]) -> Result<Component> {
        let key = format!("{digest}/{}", self.inner.engine_hash);
        if let Some(compiled) = self.inner.store.compiled(&key)? {
            // SAFETY: the artifact was produced by `Component::serialize` of this same engine
            // configuration (the key carries its compatibility hash) and stored by us in the
            // database file; wasmtime re-checks the header and version.
            match unsafe { Component::deserialize(&self.inner.engine, &compiled) } {
                Ok(component) => return Ok(component),
                Err(e) => tracing::warn!("recompiling {digest}: cached artifact unusable: {e}"),
            }
        }
        let component = self.compile(bytes).await.map_err(|e| anyhow!(e))?;
        let serialized = component.serialize().map_err(|e| anyhow!("{e}"))?;
        self.inner
            .store
            .commit(vec![Write::Compiled {
                key,
                bytes: serialized,
            }])
            .await?;
        Ok(component)
    }

    /// Compiles on a blocking thread: Cranelift takes tens of milliseconds.
    async fn compile(&self, bytes: &[u8]) -> Result<Component, String> {
        check_header(bytes)?;
        let engine = self.inner.engine.clone();
        let bytes = bytes.to_vec();
        tokio::task::spawn_blocking(move || Component::new(&engine, &bytes))
            .await
            .map_err(|e| format!("the compiler crashed: {e}"))?
            .map_err(|e| format!("not a valid WebAssembly component: {e:#}"))
    }

    /// Pre-links a component and finds out which world it implements.
    fn link(&self, component: &Component, name: String) -> Result<(World, Loaded), String> {
        let pre = self.inner.linker.instantiate_pre(component).map_err(|e| {
            format!(
                "the component needs an import Weft does not provide ({e:#}); plugins may import \
                 only weft:plugin/host@0.1.0 and the WASI 0.2 interfaces Rust's std uses"
            )
        })?;
        if let Ok(pre) = StepPluginPre::new(pre.clone()) {
            return Ok((World::Step, Loaded::Step { pre, name }));
        }
        if let Ok(pre) = TargetPluginPre::new(pre) {
            return Ok((World::Target, Loaded::Target { pre, name }));
        }
        Err(
            "the component exports neither weft:plugin/step@0.1.0 (world step-plugin) nor \
             weft:plugin/target@0.1.0 (world target-plugin); build it against wit/weft.wit"
                .into(),
        )
    }

    /// Checks that `bytes` is a loadable component of ours and says which world it implements.
    /// The compiled artifact is cached, so the plugin's first call does not compile again.
    pub async fn inspect(&self, digest: &Digest, bytes: &[u8]) -> Result<World, String> {
        let component = self
            .component(digest, bytes)
            .await
            .map_err(|e| format!("{e:#}"))?;
        self.link(&component, String::new()).map(|(world, _)| world)
    }
}

/// Refuses bytes that are not a component, with the reason in terms the author can act on.
fn check_header(bytes: &[u8]) -> Result<(), String> {
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

fn failed(started: Instant, message: String, retryable: bool) -> CallReport {
    CallReport {
        outcome: Outcome::Fail { message, retryable },
        logs: Vec::new(),
        elapsed: started.elapsed(),
    }
}

/// Why the host stopped a call, and whether another attempt may help.
struct HostFailure {
    message: String,
    retryable: bool,
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
fn deadline_failure(limits: Limits, owner: &str) -> HostFailure {
    HostFailure {
        message: format!(
            "the plugin exceeded its deadline of {} and was stopped; raise the {owner}'s `timeout` if it needs longer",
            humantime::format_duration(limits.deadline)
        ),
        retryable: true,
    }
}

/// Masks granted secrets in everything a plugin returned.
fn scrub_outcome(outcome: types::StepOutcome, secrets: &HashMap<String, String>) -> types::StepOutcome {
    if secrets.is_empty() {
        return outcome;
    }
    let scrub = |text: String| grants::scrub(&text, secrets);
    match outcome {
        types::StepOutcome::Complete(json) => types::StepOutcome::Complete(scrub(json)),
        types::StepOutcome::Reject(json) => types::StepOutcome::Reject(scrub(json)),
        types::StepOutcome::Fail(e) => types::StepOutcome::Fail(types::StepError {
            message: scrub(e.message),
            retryable: e.retryable,
        }),
        types::StepOutcome::InvalidAnswer(message) => types::StepOutcome::InvalidAnswer(scrub(message)),
        types::StepOutcome::Suspend(mut request) => {
            request.prompt = scrub(request.prompt);
            request.state = scrub(request.state);
            types::StepOutcome::Suspend(request)
        }
    }
}

fn trap_failure(
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
    HostFailure {
        message: grants::scrub(&format!("the plugin trapped{trap}: {error:#}"), secrets),
        retryable: true,
    }
}

fn convert_outcome(outcome: types::StepOutcome, limits: Limits) -> Outcome {
    let result = match outcome {
        types::StepOutcome::Complete(json) => parse_json("output", &json, limits).map(Outcome::Complete),
        types::StepOutcome::Reject(json) => parse_json("output", &json, limits).map(Outcome::Reject),
        types::StepOutcome::Fail(e) => Ok(Outcome::Fail {
            message: e.message,
            retryable: e.retryable,
        }),
        types::StepOutcome::InvalidAnswer(message) => Ok(Outcome::InvalidAnswer(message)),
        types::StepOutcome::Suspend(request) => suspension(request, limits).map(Outcome::Suspend),
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
fn parse_json(what: &str, json: &str, limits: Limits) -> Result<Value, String> {
    if json.len() > limits.max_output_bytes {
        return Err(format!(
            "the plugin returned {} bytes of {what}, more than the limit of {} bytes",
            json.len(),
            limits.max_output_bytes
        ));
    }
    serde_json::from_str(json)
        .with_context(|| format!("the plugin returned invalid JSON as its {what}"))
        .map_err(|e| format!("{e:#}"))
}
