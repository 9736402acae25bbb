//! Measurements of the host against bare wasmtime, for `weft bench`: the same component
//! instantiated and called with no limits, deadline or JSON handling, and the cost of making a
//! plugin ready from the compiled cache versus compiling it.

use super::compile::Linked;
use super::sandbox::{CallState, HostCaps};
use super::{compile, Loaded, PluginHost};
use crate::names::Digest;
use anyhow::{anyhow, Result};
use std::time::{Duration, Instant};

/// The first calls of a plugin, for `weft bench`.
pub struct FirstCalls {
    /// A first call on a runner that never loaded the plugin: deserialize from the compiled
    /// cache, pre-link, describe, then call (what a first call cost before runners loaded
    /// plugins as they start).
    pub cold: Duration,
    /// Loading it ahead, as a runner does when it starts or compiles an upload.
    pub load: Duration,
    /// The first call once loaded.
    pub warm: Duration,
    /// A later call.
    pub later: Duration,
}

impl PluginHost {
    /// Times the first calls of `plugin` (already compiled and cached in `store`) on fresh
    /// hosts, as on a runner that just started.
    pub async fn first_call_times(
        store: std::sync::Arc<dyn crate::store::Store>,
        plugin: &Digest,
        input: &serde_json::Value,
    ) -> Result<FirstCalls> {
        let ctx = super::CallContext {
            run_id: "bench".into(),
            workflow: "bench".into(),
            step: "First".into(),
            attempt: 1,
            started_by: "bench".into(),
            declared_as: None,
        };
        let limits = super::Limits::default();
        let timed = |host: PluginHost| {
            let ctx = ctx.clone();
            async move {
                let started = Instant::now();
                let report = host.run(plugin, &ctx, input, limits).await;
                if let super::Outcome::Fail { message, .. } = report.outcome {
                    return Err(anyhow!("correctness: {plugin} failed: {message}"));
                }
                Ok(started.elapsed())
            }
        };
        let cold = timed(PluginHost::new(store.clone())?).await?;
        let host = PluginHost::new(store)?;
        let started = Instant::now();
        host.load(plugin).await?;
        let load = started.elapsed();
        let warm = timed(host.clone()).await?;
        let later = timed(host).await?;
        Ok(FirstCalls {
            cold,
            load,
            warm,
            later,
        })
    }

    /// One bare instantiate + `run` call of a step plugin: the floor a host call is compared to.
    pub async fn bare_call(&self, plugin: &Digest, input: &str) -> Result<Duration> {
        let loaded = self.load(plugin).await?;
        let Loaded::Plugin {
            linked: Linked::Step(pre),
            ..
        } = &*loaded
        else {
            return Err(anyhow!("{plugin} is not a step plugin"));
        };
        let caps = HostCaps::from(&crate::limits::Limits::default());
        let call = super::StepCall::Run {
            input: input.to_owned(),
        };
        let started = Instant::now();
        let mut store = wasmtime::Store::new(
            &self.inner.engine,
            CallState::new(&Default::default(), caps, super::Limits::MAX_MEMORY_BYTES),
        );
        // Epoch interruption is on for the engine; a far deadline keeps it out of the way.
        store.set_epoch_deadline(u64::MAX / 2);
        let ctx = super::types::StepContext {
            run_id: String::new(),
            workflow: String::new(),
            step: String::new(),
            attempt: 1,
            started_by: String::new(),
        };
        pre.call(&mut store, &ctx, &call).await?;
        Ok(started.elapsed())
    }

    /// How long `plugin` takes to become ready (component + pre-linked instance): first from
    /// the compiled cache, then compiling from its bytes.
    pub async fn ready_times(&self, plugin: &Digest) -> Result<(Duration, Duration)> {
        let bytes = super::builtin::all()
            .iter()
            .find(|b| &b.digest == plugin)
            .ok_or_else(|| anyhow!("{plugin} is not a built-in plugin"))?
            .bytes;
        self.component(plugin, bytes, true).await?;
        let started = Instant::now();
        let cached = self.component(plugin, bytes, true).await?;
        compile::link(&self.inner.linker, &cached).map_err(|e| anyhow!(e))?;
        let from_cache = started.elapsed();
        let started = Instant::now();
        let compiled = compile::compile_trusted(&self.inner.engine, bytes)?;
        compile::link(&self.inner.linker, &compiled.component).map_err(|e| anyhow!(e))?;
        Ok((from_cache, started.elapsed()))
    }
}
