//! The plugin host: runs untrusted WebAssembly components under hard limits.
//!
//! One wasmtime [`Engine`] per process with the pooling allocator and epoch interruption.
//! Components are compiled once ([`compile`]: untrusted ones in a child process under a time
//! and memory budget); the compiled artifact is cached in the store under the plugin's digest
//! and the engine's compatibility hash, so a restart deserializes instead of compiling and a
//! changed engine configuration recompiles. Each loaded plugin keeps a pre-linked
//! `InstancePre`; every call gets a fresh instance in a fresh [`sandbox`], so no state leaks
//! between calls and nothing is kept alive while a step waits.
//!
//! A plugin gets WASI with nothing granted (no files, sockets or environment; it is linked
//! only because Rust's std imports it), a deadline, a memory cap, caps on every host-side
//! resource it can create, and one byte budget for everything it returns ([`outcome`]). A
//! trap, a deadline, an oversize result or invalid JSON becomes a failed call with a reason;
//! it never reaches the host or another call. What a plugin is granted beyond that is looked
//! up by the name and version its step or target declared ([`grants`]), never recovered from
//! its bytes. Templates run in the same kind of sandbox ([`templates`]).
//!
//! This module knows nothing of runs or scheduling: it loads components and calls them.

mod bindings;
pub mod builtin;
mod catalog;
mod compile;
mod contract;
mod floor;
pub mod grants;
mod limits;
mod outcome;
mod sandbox;
mod templates;

pub use catalog::{AddError, PluginMeta, PluginStatus, Prepared, Resolved};
pub use compile::{worker_main as compile_worker, Compiler};
pub use contract::{describe_mismatches, Contract, Description, Mismatch};
pub use grants::Grants;
pub use limits::Limits;
pub use templates::read_without_engine;

use crate::names::Digest;
use crate::run::Field;
use crate::store::{Store, Write};
use anyhow::{anyhow, Result};
use bindings::step::weft::plugin::{host, types};
use compile::Linked;
use outcome::{deadline_failure, trap_failure};
use sandbox::{CallState, HostCaps, Sandbox};
use serde_json::Value;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use tokio::sync::{OnceCell, Semaphore};
use wasmtime::component::{Component, Linker};
use wasmtime::Engine;

/// How often the epoch ticks, which bounds how late a deadline is noticed in wasm code.
const EPOCH_TICK: Duration = Duration::from_millis(5);
/// Extra time past the deadline before a call blocked in a host import is abandoned.
const DEADLINE_GRACE: Duration = Duration::from_millis(250);

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

/// Who is calling and for what; handed to the plugin as its `step-context`, except
/// `declared_as`, which says whose grant applies.
#[derive(Clone, Debug)]
pub struct CallContext {
    pub run_id: String,
    pub workflow: String,
    pub step: String,
    pub attempt: u32,
    pub started_by: String,
    /// The `name@version` the step's plugin was declared as and resolved to; `None` for a
    /// plugin named by digest, which is granted nothing.
    pub declared_as: Option<String>,
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

/// A pre-linked component with its contract, if it describes one.
enum Loaded {
    Plugin {
        linked: Linked,
        contract: Option<Arc<Contract>>,
    },
    /// The host's template engine (see [`templates`]).
    Templates,
}

/// Why a call could not even start.
struct Unavailable {
    message: String,
    retryable: bool,
}

/// How a plugin host is set up: this runner's secret values, the limits, and where untrusted
/// components are compiled. The grants themselves come from the store, through
/// [`PluginHost::set_grants`].
#[derive(Clone, Debug, Default)]
pub struct HostOptions {
    pub secrets: grants::Secrets,
    pub limits: crate::limits::Limits,
    pub compiler: Compiler,
}

/// Where a target is called, handed to the plugin as its `target-context`, and whose grant
/// applies.
#[derive(Clone, Debug)]
pub struct TargetCall {
    /// The event, API operation or function that triggered the call.
    pub trigger: String,
    /// The target's configured name.
    pub target: String,
    /// The `name@version` the target's plugin was declared as; `None` for a digest.
    pub declared_as: Option<String>,
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

/// One call of a step's `run` or `resume`, with its arguments as the plugin gets them.
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
    store: Arc<dyn Store>,
    /// Identifies the engine configuration in compiled-artifact cache keys.
    engine_hash: String,
    loaded: Mutex<HashMap<Digest, Arc<OnceCell<Arc<Loaded>>>>>,
    /// Compiled contracts by digest (`None`: the plugin describes none).
    contracts: Mutex<HashMap<Digest, Option<Arc<Contract>>>>,
    permits: Semaphore,
    secrets: grants::Secrets,
    /// The grants in force, replaced whole when the stored ones change.
    grants: std::sync::RwLock<Arc<Grants>>,
    limits: crate::limits::Limits,
    caps: HostCaps,
    compiler: Compiler,
    /// Compiles of untrusted components under way (at most `limits.compile_concurrency`).
    compiles: Semaphore,
    /// One upload per `name@version` at a time, from the name check to the commit.
    adding: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// The template engine, pre-linked on first use.
    templates: OnceCell<bindings::templates::TemplateEnginePre<CallState>>,
    /// Extra writes committed with every added plugin (its `plugin.uploaded` event).
    on_added: std::sync::OnceLock<AddedHook>,
}

/// Given an added plugin, the writes to commit in the same transaction as the plugin itself.
pub type AddedHook = Box<
    dyn Fn(PluginMeta) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<Write>>> + Send>>
        + Send
        + Sync,
>;

impl PluginHost {
    /// A host that grants no plugin anything beyond its sandbox, with the default limits,
    /// compiling in this process.
    pub fn new(store: Arc<dyn Store>) -> Result<PluginHost> {
        Self::with_options(store, HostOptions::default())
    }

    /// Builds the engine and linker once, and starts the epoch ticker.
    pub fn with_options(store: Arc<dyn Store>, options: HostOptions) -> Result<PluginHost> {
        let engine =
            Engine::new(&compile::engine_config()).map_err(|e| anyhow!("cannot configure wasmtime: {e}"))?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        host::add_to_linker::<CallState, wasmtime::component::HasSelf<CallState>>(&mut linker, |s| s)?;
        types::add_to_linker::<CallState, wasmtime::component::HasSelf<CallState>>(&mut linker, |s| s)?;
        // weft:plugin@0.1.0 components import the same host functions, and their types.
        bindings::v1::step::weft::plugin::host::add_to_linker::<
            CallState,
            wasmtime::component::HasSelf<CallState>,
        >(&mut linker, |s| s)?;
        linker.root().instance("weft:plugin/types@0.1.0")?;
        bindings::templates::weft::templates::progress::add_to_linker::<
            CallState,
            wasmtime::component::HasSelf<CallState>,
        >(&mut linker, |s| s)?;

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
                contracts: Mutex::new(HashMap::new()),
                permits: Semaphore::new(compile::MAX_CONCURRENT_CALLS as usize),
                secrets: options.secrets,
                grants: std::sync::RwLock::new(Arc::new(Grants::default())),
                caps: HostCaps::from(&options.limits),
                compiles: Semaphore::new(options.limits.compile_concurrency),
                limits: options.limits,
                compiler: options.compiler,
                adding: Mutex::new(HashMap::new()),
                templates: OnceCell::new(),
                on_added: std::sync::OnceLock::new(),
            }),
        })
    }

    /// Puts the stored grants in force for calls starting from now, with this runner's secret
    /// values.
    pub fn set_grants<'a>(&self, specs: impl IntoIterator<Item = (&'a str, &'a grants::GrantSpec)>) {
        let grants = Grants::build(specs, &self.inner.secrets);
        *self.inner.grants.write().expect("grants lock") = Arc::new(grants);
    }

    /// Sets the writes to commit with every plugin added from now on; only the first hook
    /// set counts, so an event can never be recorded twice.
    pub fn on_added(&self, hook: AddedHook) {
        if self.inner.on_added.set(hook).is_err() {
            tracing::warn!("a hook for added plugins was already set; keeping the first");
        }
    }

    /// The catalog's store (plugins, artifacts); nothing outside this module reaches it here.
    fn store(&self) -> &dyn Store {
        &*self.inner.store
    }

    /// The limits this host was set up with.
    pub fn limits(&self) -> &crate::limits::Limits {
        &self.inner.limits
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
        let mut sandbox = match self.sandbox(plugin, ctx.declared_as.as_deref(), limits).await {
            Ok(sandbox) => sandbox,
            Err(e) => return failed(started, e.message, e.retryable),
        };
        let Loaded::Plugin {
            linked: Linked::Step(pre),
            contract,
        } = &*sandbox.loaded
        else {
            let message = format!("plugin {plugin} is a target plugin, not a step plugin");
            return failed(started, message, false);
        };
        // A rendered input that does not fit the plugin's schema never reaches the plugin.
        if let (StepCall::Run { input }, Some(contract)) = (&call, contract) {
            let mismatches = serde_json::from_str(input).map(|input| contract.check(&input));
            if let Ok(mismatches) = mismatches.as_deref() {
                if !mismatches.is_empty() {
                    let message = format!("invalid input: {}", describe_mismatches(mismatches, "input"));
                    return failed(started, message, false);
                }
            }
        }
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
        let result = tokio::time::timeout(
            limits.deadline + DEADLINE_GRACE,
            pre.call(&mut *store, &wit_ctx, &call),
        )
        .await;
        let secrets = &sandbox.secrets;
        let outcome = match result {
            Err(_elapsed) => deadline_failure(limits, "step").into(),
            Ok(Err(error)) => trap_failure(&error, limits, secrets, "step").into(),
            Ok(Ok(outcome)) => outcome::convert(outcome, limits, secrets),
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
        let mut sandbox = match self.sandbox(plugin, call.declared_as.as_deref(), limits).await {
            Ok(sandbox) => sandbox,
            Err(e) => {
                return TargetReport {
                    result: Err(failure(e.message)),
                    logs: Vec::new(),
                    elapsed: started.elapsed(),
                }
            }
        };
        let Loaded::Plugin {
            linked: Linked::Target(pre),
            ..
        } = &*sandbox.loaded
        else {
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
        let result = tokio::time::timeout(
            limits.deadline + DEADLINE_GRACE,
            pre.handle(&mut *store, &wit_ctx, &payload),
        )
        .await;
        let secrets = &sandbox.secrets;
        let result = match result {
            Err(_elapsed) => Err(failure(deadline_failure(limits, "target").message)),
            Ok(Err(error)) => Err(failure(trap_failure(&error, limits, secrets, "target").message)),
            Ok(Ok(Ok(None))) => Ok(None),
            Ok(Ok(Ok(Some(json)))) => outcome::parse_json("payload", &grants::scrub(&json, secrets), limits)
                .map(Some)
                .map_err(failure),
            Ok(Ok(Err(e))) => Err(TargetFailure {
                message: crate::limits::clip_to(&grants::scrub(&e.message, secrets), outcome::MAX_MESSAGE),
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
    /// limits concurrency), loads the component, and builds a fresh sandbox with the grant of
    /// the name it was declared as.
    async fn sandbox(
        &self,
        plugin: &Digest,
        declared_as: Option<&str>,
        limits: Limits,
    ) -> Result<Sandbox<'_>, Unavailable> {
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
        let grant = declared_as
            .map(|name| self.inner.grants.read().expect("grants lock").of(name))
            .unwrap_or_default();
        let plugin_permit = match &grant.concurrency {
            Some(semaphore) => semaphore.clone().acquire_owned().await.ok(),
            None => None,
        };
        Ok(Sandbox::build(
            &self.inner.engine,
            loaded,
            grant,
            self.inner.caps,
            limits,
            permit,
            plugin_permit,
        ))
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
            let (bytes, trusted) = match builtin::all().iter().find(|b| &b.digest == plugin) {
                Some(b) => (b.bytes.to_vec(), true),
                None => (
                    self.store()
                        .plugin_bytes(plugin)
                        .await?
                        .ok_or_else(|| anyhow!("no plugin with digest {plugin} is stored"))?,
                    false,
                ),
            };
            let component = self.component(plugin, &bytes, trusted).await?;
            let linked = compile::link(&self.inner.linker, &component).map_err(|e| anyhow!(e))?;
            // Describing instantiates the component once, which also readies its memory
            // image, so the first real call does not pay for that.
            let contract = self
                .describe(&linked)
                .await
                .map_err(|e| anyhow!(e))?
                .map(Arc::new);
            Ok::<_, anyhow::Error>(Arc::new(Loaded::Plugin { linked, contract }))
        })
        .await
        .cloned()
    }

    /// What a runner does with uploads as it starts: compiles again those a stopped runner
    /// left compiling, and loads every ready one in the background.
    pub async fn take_up_uploads(&self) -> Result<()> {
        self.resume_compiles().await?;
        self.warm_up();
        Ok(())
    }

    /// Makes every ready uploaded plugin callable in the background (deserialized from the
    /// compiled cache, pre-linked and described, which instantiates it once), so the first
    /// call of a large plugin after a start does not pay for it.
    fn warm_up(&self) {
        let host = self.clone();
        tokio::spawn(async move {
            let ready = match host.uploaded().await {
                Ok(all) => all.into_iter().filter(|m| m.status == PluginStatus::Ready),
                Err(e) => return tracing::warn!("cannot read plugins to load them: {e:#}"),
            };
            for meta in ready {
                if let Err(e) = host.load(&meta.digest).await {
                    tracing::warn!("cannot load {}@{}: {e:#}", meta.name, meta.version);
                }
            }
        });
    }

    /// Keeps a component this process just linked and described, so its first call (and
    /// every later one) starts from the pre-linked instance.
    fn keep_loaded(&self, digest: &Digest, linked: Linked, contract: Option<Arc<Contract>>) {
        let loaded = Arc::new(Loaded::Plugin {
            linked,
            contract: contract.clone(),
        });
        let cell = Arc::new(OnceCell::new_with(Some(loaded)));
        self.inner
            .loaded
            .lock()
            .expect("plugin table lock")
            .insert(digest.clone(), cell);
        self.inner
            .contracts
            .lock()
            .expect("contracts lock")
            .insert(digest.clone(), contract);
    }

    /// The contract a loaded 0.2.0 component describes, from a fresh sandbox with nothing
    /// granted and the default limits; `None` for a 0.1.0 component.
    async fn describe(&self, linked: &Linked) -> Result<Option<Contract>, String> {
        let permit = self
            .inner
            .permits
            .acquire()
            .await
            .map_err(|_| "the plugin host is shutting down".to_owned())?;
        let limits = Limits::with_deadline(crate::workflow::DEFAULT_STEP_TIMEOUT);
        let mut sandbox = Sandbox::build(
            &self.inner.engine,
            Arc::new(Loaded::Templates),
            grants::Grant::default(),
            self.inner.caps,
            limits,
            permit,
            None,
        );
        let described = tokio::time::timeout(
            limits.deadline + DEADLINE_GRACE,
            linked.describe(&mut sandbox.store),
        )
        .await
        .map_err(|_| deadline_failure(limits, "plugin").message)?
        .map_err(|e| {
            format!(
                "its describe call failed: {}",
                trap_failure(&e, limits, &HashMap::new(), "plugin").message
            )
        })?;
        let Some((summary, input, output, config)) = described else {
            return Ok(None);
        };
        Contract::from_texts(summary, &input, &output, config.as_deref(), &self.inner.limits)
            .map(Some)
            .map_err(|e| format!("its describe call returned an unusable contract: {e}"))
    }

    /// The contract of the plugin with `digest`, if it describes one: from its stored
    /// metadata for an uploaded plugin, else (built-ins) from the loaded component.
    pub async fn contract(&self, digest: &Digest) -> Result<Option<Arc<Contract>>> {
        if let Some(found) = self.inner.contracts.lock().expect("contracts lock").get(digest) {
            return Ok(found.clone());
        }
        let stored = match builtin::all().iter().any(|b| &b.digest == digest) {
            true => None,
            false => self.uploaded().await?.into_iter().find(|m| &m.digest == digest),
        };
        let contract = match stored {
            Some(meta) => meta
                .contract
                .map(|d| Contract::new(d).map(Arc::new))
                .transpose()
                .map_err(|e| anyhow!("plugin {digest}: {e}"))?,
            None => match &*self.load(digest).await? {
                Loaded::Plugin { contract, .. } => contract.clone(),
                Loaded::Templates => None,
            },
        };
        self.inner
            .contracts
            .lock()
            .expect("contracts lock")
            .insert(digest.clone(), contract.clone());
        Ok(contract)
    }

    /// The cache key of a compiled artifact: valid only for this engine configuration.
    fn artifact_key(&self, digest: &Digest) -> String {
        format!("{digest}/{}", self.inner.engine_hash)
    }

    /// The component for `digest`: from the compiled cache, or compiled and then cached.
    /// Untrusted bytes are compiled under the compile budgets.
    async fn component(&self, digest: &Digest, bytes: &[u8], trusted: bool) -> Result<Component> {
        let key = self.artifact_key(digest);
        if let Some(component) = self.cached_component(&key).await? {
            return Ok(component);
        }
        let compiled = if trusted {
            compile::compile_trusted(&self.inner.engine, bytes)?
        } else {
            self.compile(bytes.to_vec()).await.map_err(|e| anyhow!(e))?
        };
        self.store()
            .commit(vec![Write::Artifact {
                key,
                bytes: compiled.artifact,
            }])
            .await?;
        Ok(compiled.component)
    }

    /// The component whose compiled artifact is cached under `key`, if it is and is usable.
    async fn cached_component(&self, key: &str) -> Result<Option<Component>> {
        let Some(artifact) = self.store().artifact(key).await? else {
            return Ok(None);
        };
        // SAFETY: the artifact was produced by `Component::serialize` of this same engine
        // configuration (the key carries its compatibility hash) and stored by us in the
        // database; wasmtime re-checks the header and version.
        match unsafe { Component::deserialize(&self.inner.engine, &artifact) } {
            Ok(component) => Ok(Some(component)),
            Err(e) => {
                tracing::warn!("recompiling {key}: the cached artifact is unusable: {e}");
                Ok(None)
            }
        }
    }

    /// Compiles untrusted bytes, waiting for a compile slot first.
    async fn compile(&self, bytes: Vec<u8>) -> Result<compile::Compiled, String> {
        let _slot = self
            .inner
            .compiles
            .acquire()
            .await
            .map_err(|_| "the plugin host is shutting down".to_owned())?;
        compile::compile(
            &self.inner.engine,
            &self.inner.compiler,
            bytes,
            &self.inner.limits,
        )
        .await
    }
}

fn failed(started: Instant, message: String, retryable: bool) -> CallReport {
    CallReport {
        outcome: Outcome::Fail { message, retryable },
        logs: Vec::new(),
        elapsed: started.elapsed(),
    }
}
