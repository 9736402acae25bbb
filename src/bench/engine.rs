//! The in-process figures: step overhead, durable throughput (fresh and with history) and
//! plugin cache. They drive the engine and plugin host directly, with no HTTP in the way.

use super::databases::Databases;
use super::{floors, ms, percentile, Figure, Sizes};
use crate::engine::Engine;
use crate::names::{Digest, PluginRef, RunId};
use crate::plugins::{CallContext, Limits, Outcome, PluginHost};
use crate::run::{RunRecord, RunState};
use crate::store::{Store, Write};
use crate::workflow::Workflow;
use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Map};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A 3-step no-op workflow: the unit of work of the throughput and HTTP figures.
pub const NOOP_WORKFLOW: &str = r#"{"id": "bench", "steps": [
    {"name": "A", "plugin": "echo", "input": {}},
    {"name": "B", "plugin": "echo", "input": {}},
    {"name": "C", "plugin": "echo", "input": {}}]}"#;

/// Step transitions of one no-op run: the start and the end of each of its three steps.
const TRANSITIONS_PER_RUN: usize = 6;

pub async fn measure(
    dir: &Path,
    databases: &Databases,
    sizes: Sizes,
    progress: &impl Fn(&str),
    figures: &mut BTreeMap<&'static str, Figure>,
) -> Result<()> {
    // The benchmark fills the history itself, so it keeps a handle on the store it measures.
    let db = databases.fresh("engine").await?;
    let store =
        crate::store::open(&crate::store::Location::parse(&db), crate::store::new_runner_id()).await?;
    let engine = Engine::new(store.clone(), PluginHost::new(store.clone())?);
    engine.start_work().await?;
    let latest = |name: &str| {
        let plugins = engine.plugins().clone();
        let reference = PluginRef::Latest(name.into());
        async move {
            plugins
                .resolve(&reference)
                .await
                .map(|r| r.digest)
                .map_err(anyhow::Error::msg)
        }
    };

    progress("step overhead");
    let rust = step_overhead(
        engine.plugins(),
        &latest("echo").await?,
        &json!({"n": 1}),
        sizes.calls,
    )
    .await?;
    figures.insert(
        "step_overhead_us",
        Figure::new(rust.host_us, "µs", rust.bare_us, "bare wasmtime call"),
    );

    // The SDK examples: large components with an interpreter inside (CPython, SpiderMonkey),
    // against the same floor as the Rust figure, with their own bare call beside it.
    for (example, input, overhead, first) in [
        (
            "python-greeter",
            json!({"name": "Ada"}),
            "step_overhead_us_python",
            "first_call_ms_python",
        ),
        (
            "js-greeter",
            json!({"greeting": "hello Ada"}),
            "step_overhead_us_js",
            "first_call_ms_js",
        ),
    ] {
        progress(&format!("step overhead of {example} (compiling it first)"));
        let digest = sdk_example(engine.plugins(), example).await?;
        let measured = step_overhead(engine.plugins(), &digest, &input, sizes.calls).await?;
        figures.insert(
            overhead,
            Figure::new(
                measured.host_us,
                "µs",
                rust.bare_us,
                "bare wasmtime call of the Rust echo (step_overhead_us's floor)",
            )
            .with("bare_call_us", measured.bare_us),
        );
        let times = PluginHost::first_call_times(store.clone(), &digest, &input).await?;
        figures.insert(
            first,
            Figure::new(ms(times.warm), "ms", ms(times.later), "a later call")
                .with("cold_first_call_ms", ms(times.cold))
                .with("load_ms", ms(times.load)),
        );
    }

    progress("plugin cache");
    let (cached, compiled) = engine.plugins().ready_times(&latest("transform").await?).await?;
    figures.insert(
        "cached_plugin_ready_ms",
        Figure::new(ms(cached), "ms", ms(compiled), "first compile"),
    );

    progress("durable throughput");
    let definition = crate::workflow::parse(NOOP_WORKFLOW, &crate::limits::Limits::default())
        .map_err(|p| anyhow!("{p}"))?;
    let workflow = engine.register(definition).await.map_err(|e| anyhow!("{e}"))?;
    super::settle_disk();
    store.flush().await?;
    let used_before = store.used_bytes().await?;
    let fresh = durable_throughput(&engine, &workflow, sizes.runs).await?;
    store.flush().await?;
    let growth = store.used_bytes().await?.saturating_sub(used_before);
    figures.insert(
        "history_bytes_per_run",
        history_bytes(&*store, &fresh.sample, growth, sizes.runs).await?,
    );
    let fdatasync = floors::fdatasync_per_s(dir, 500)?;
    let (bare, floor_is) = match databases {
        Databases::Files(_) => (
            floors::redb_same_batches(dir, &fresh.batches)?,
            "bare redb, same commits",
        ),
        Databases::Postgres { .. } => (
            super::databases::pg_same_batches(&databases.fresh("floor").await?, &fresh.batches).await?,
            "bare PostgreSQL, same commits",
        ),
    };
    let fresh_rate = fresh.transitions_per_s();
    figures.insert(
        "durable_transitions_per_s",
        Figure::new(
            fresh_rate,
            "transitions/s",
            fresh.transitions as f64 / bare.as_secs_f64(),
            floor_is,
        )
        .with("fdatasync_per_s", fdatasync)
        .with("commits", fresh.batches.transactions as f64)
        .with("writes_per_commit", fresh.batches.writes_per_commit()),
    );

    progress(&format!("for_each over {} items", sizes.items));
    figures.insert(
        "for_each_items_per_s",
        for_each_items(&engine, sizes.items, fresh_rate).await?,
    );

    progress(&format!(
        "durable throughput with {} finished runs",
        sizes.history
    ));
    fill_history(&*store, fresh.sample, sizes.history).await?;
    super::settle_disk();
    let with_history = durable_throughput(&engine, &workflow, sizes.runs).await?;
    figures.insert(
        "durable_transitions_per_s_with_history",
        Figure::new(
            with_history.transitions_per_s(),
            "transitions/s",
            fresh_rate,
            "same, fresh db",
        )
        .with("finished_runs_in_db", sizes.history as f64),
    );
    engine.stop().await;
    Ok(())
}

/// Where `weft bench` finds the SDK example components `sdk/ci.sh` builds: `$WEFT_SDK_EXAMPLES`,
/// else `target/sdk-examples` in the current directory, else in the checkout this binary was
/// built from.
fn sdk_examples_dir() -> std::path::PathBuf {
    if let Some(dir) = std::env::var_os("WEFT_SDK_EXAMPLES") {
        return dir.into();
    }
    let here = std::path::PathBuf::from("target/sdk-examples");
    if here.is_dir() {
        return here;
    }
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/sdk-examples")
}

/// Adds the SDK example `name` (compiling it) and returns its digest.
async fn sdk_example(host: &PluginHost, name: &str) -> Result<Digest> {
    let path = sdk_examples_dir().join(format!("{name}.wasm"));
    let bytes = std::fs::read(&path).with_context(|| {
        format!(
            "{} is missing: build the SDK examples with `bash sdk/ci.sh` (into target/sdk-examples) \
             or set WEFT_SDK_EXAMPLES to where they are",
            path.display()
        )
    })?;
    let added = host
        .add(name, "0.1.0", bytes)
        .await
        .map_err(|e| anyhow!("{name}: {e}"))?;
    Ok(added.meta.digest)
}

/// Medians of one step call through the host and of a bare call, in µs.
struct Overhead {
    host_us: f64,
    bare_us: f64,
}

/// A step through the host's plugin path (fresh store, limits, deadline, schema check, JSON
/// in and out) against a bare instantiate + call of the same component. The echo step
/// returns its input; the SDK examples suspend for a confirmation.
async fn step_overhead(
    host: &PluginHost,
    plugin: &Digest,
    input: &serde_json::Value,
    calls: usize,
) -> Result<Overhead> {
    let ctx = CallContext {
        run_id: "bench".into(),
        workflow: "bench".into(),
        step: "Noop".into(),
        attempt: 1,
        started_by: "bench".into(),
        declared_as: Some("echo".into()),
    };
    let text = input.to_string();
    host.bare_call(plugin, &text).await?;
    let mut engine_path = Vec::with_capacity(calls);
    let mut bare = Vec::with_capacity(calls);
    for _ in 0..calls {
        let started = Instant::now();
        let report = host.run(plugin, &ctx, input, Limits::default()).await;
        engine_path.push(started.elapsed());
        match &report.outcome {
            Outcome::Complete(v) if v == input => {}
            Outcome::Suspend(_) => {}
            other => bail!("correctness: the step neither returned its input nor suspended: {other:?}"),
        }
        bare.push(host.bare_call(plugin, &text).await?);
    }
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    Ok(Overhead {
        host_us: us(percentile(&mut engine_path, 50)),
        bare_us: us(percentile(&mut bare, 50)),
    })
}

/// What one throughput measurement did.
struct Throughput {
    transitions: usize,
    elapsed: Duration,
    batches: floors::Batches,
    /// One of the completed runs, for [`fill_history`].
    sample: RunRecord,
}

impl Throughput {
    fn transitions_per_s(&self) -> f64 {
        self.transitions as f64 / self.elapsed.as_secs_f64()
    }
}

/// `runs` runs of the no-op workflow started at once, each followed by its own task as
/// concurrent clients would, every transition durable.
async fn durable_throughput(engine: &Engine, workflow: &Arc<Workflow>, runs: usize) -> Result<Throughput> {
    let stats = engine.writer_stats();
    let before = floors::Batches::read(stats);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(runs);
    for _ in 0..runs {
        let (engine, workflow) = (engine.clone(), workflow.clone());
        tasks.push(tokio::spawn(async move {
            let id = engine
                .start(&workflow, Map::new(), "bench")
                .await
                .map_err(|e| anyhow!("{e}"))?;
            let run = engine.settled(id).await?;
            if run.state != RunState::Completed {
                bail!("correctness: run {id} ended {}", run.state.as_str());
            }
            anyhow::Ok(run)
        }));
    }
    let mut sample = None;
    for task in tasks {
        sample = Some(task.await??);
    }
    let elapsed = started.elapsed();
    Ok(Throughput {
        transitions: runs * TRANSITIONS_PER_RUN,
        elapsed,
        batches: floors::Batches::read(stats).since(&before),
        sample: sample.ok_or_else(|| anyhow!("no runs were measured"))?,
    })
}

/// Items of the `for_each` figure under way at once.
const MAP_CONCURRENCY: usize = 64;

/// One run mapping a no-op step over `items` items, 64 at a time: items per second, against
/// the durable transitions per second of the same bench run (`floor`). An item is two
/// transitions (started, done), as a step is, so the goal is half the floor.
async fn for_each_items(engine: &Engine, items: usize, floor: f64) -> Result<Figure> {
    let yaml = format!(
        "id: bench-map\nsteps:\n  - name: Each\n    plugin: echo\n    for_each: \"{{{{ range({items}) | list }}}}\"\n    concurrency: {MAP_CONCURRENCY}\n    input: {{n: \"{{{{ item }}}}\"}}\n"
    );
    let definition =
        crate::workflow::parse(&yaml, &crate::limits::Limits::default()).map_err(|p| anyhow!("{p}"))?;
    let workflow = engine.register(definition).await.map_err(|e| anyhow!("{e}"))?;
    super::settle_disk();
    let started = Instant::now();
    let id = engine
        .start(&workflow, Map::new(), "bench")
        .await
        .map_err(|e| anyhow!("{e}"))?;
    let run = engine.settled(id).await?;
    let elapsed = started.elapsed();
    let outputs = run.steps[0]
        .output
        .as_ref()
        .and_then(|o| o.as_array())
        .map_or(0, Vec::len);
    if run.state != RunState::Completed || outputs != items {
        bail!(
            "correctness: the for_each run ended {} with {outputs} of {items} outputs",
            run.state.as_str()
        );
    }
    Ok(Figure::new(
        items as f64 / elapsed.as_secs_f64(),
        "items/s",
        floor,
        "durable_transitions_per_s, same run",
    )
    .with("items", items as f64)
    .with("concurrency", MAP_CONCURRENCY as f64))
}

/// What a finished 3-step run costs on disk (growth of the pages in use over `runs` runs,
/// logs included), against the bytes of its documents as JSON (its record and log lines).
async fn history_bytes(store: &dyn Store, sample: &RunRecord, growth: u64, runs: usize) -> Result<Figure> {
    let logs = store.logs(sample.id, None, usize::MAX).await?;
    let documents = serde_json::to_vec(sample)?.len() + logs.iter().map(Vec::len).sum::<usize>();
    Ok(Figure::new(
        growth as f64 / runs as f64,
        "bytes",
        documents as f64,
        "its record and log lines as JSON",
    )
    .with("log_lines_per_run", logs.len() as f64))
}

/// Stores `count` copies of a finished run (with its log) under new ids, as the history of a
/// busy server would hold them.
async fn fill_history(store: &dyn Store, sample: RunRecord, count: usize) -> Result<()> {
    let logs = store.logs(sample.id, None, usize::MAX).await?;
    let mut left = count;
    while left > 0 {
        let batch = left.min(2_000);
        let mut writes = Vec::with_capacity(batch * (1 + logs.len()));
        for _ in 0..batch {
            let run = RunRecord {
                id: RunId::new(),
                ..sample.clone()
            };
            writes.push(Write::Run {
                id: run.id,
                doc: serde_json::to_vec(&run)?,
                index: run.index(),
                expect: None,
                owner: None,
            });
            for (seq, doc) in logs.iter().enumerate() {
                writes.push(Write::Log {
                    run: run.id,
                    seq: seq as u64,
                    doc: doc.clone(),
                });
            }
        }
        store.commit(writes).await?;
        left -= batch;
    }
    Ok(())
}
