//! `weft bench`: the performance figures Weft ships, each next to a floor measured in the same
//! run on the same machine, and their ratio. Every figure runs on a fresh database in a
//! temporary directory; a correctness check makes sure the work measured really happened.

use crate::engine::Engine;
use crate::names::{Digest, PluginRef};
use crate::plugins::{CallContext, Limits, Outcome, PluginHost};
use crate::run::RunState;
use crate::store::Store;
use anyhow::{bail, Context, Result};
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// One figure: the value, its unit, the floor it is compared to, and value / floor.
#[derive(Debug, Serialize)]
pub struct Figure {
    pub value: f64,
    pub unit: &'static str,
    pub floor: f64,
    pub ratio: f64,
}

impl Figure {
    fn new(value: f64, unit: &'static str, floor: f64) -> Figure {
        let ratio = if floor > 0.0 { value / floor } else { f64::NAN };
        Figure {
            value,
            unit,
            floor,
            ratio,
        }
    }
}

/// How much work each figure does.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    pub calls: usize,
    pub runs: usize,
    pub commits: usize,
}

impl Sizes {
    pub const FULL: Sizes = Sizes {
        calls: 2_000,
        runs: 2_000,
        commits: 500,
    };
    pub const QUICK: Sizes = Sizes {
        calls: 50,
        runs: 20,
        commits: 20,
    };
}

/// Runs every figure and returns them by name.
pub async fn run(sizes: Sizes, progress: impl Fn(&str)) -> Result<BTreeMap<&'static str, Figure>> {
    let dir = tempfile::tempdir().context("cannot make a temporary directory")?;
    let store = Store::open(&dir.path().join("bench.redb"))?;
    let engine = Engine::new(PluginHost::new(store)?);
    let echo = engine
        .plugins()
        .resolve(&PluginRef::Latest("echo".into()))
        .map_err(anyhow::Error::msg)?;
    let mut figures = BTreeMap::new();

    progress("step overhead");
    figures.insert(
        "step_overhead_us",
        step_overhead(engine.plugins(), &echo, sizes.calls).await?,
    );
    progress("durable throughput");
    figures.insert(
        "durable_transitions_per_s",
        durable_throughput(&engine, &dir, sizes).await?,
    );
    progress("plugin cache");
    let transform = engine
        .plugins()
        .resolve(&PluginRef::Latest("transform".into()))
        .map_err(anyhow::Error::msg)?;
    let (cached, compiled) = engine.plugins().ready_times(&transform).await?;
    figures.insert(
        "cached_plugin_ready_ms",
        Figure::new(ms(cached), "ms", ms(compiled)),
    );
    Ok(figures)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// A no-op step through the host's plugin path (fresh store, limits, deadline, JSON in and
/// out) against a bare instantiate + call of the same component; medians, in µs.
async fn step_overhead(host: &PluginHost, echo: &Digest, calls: usize) -> Result<Figure> {
    let input = json!({"n": 1});
    let ctx = CallContext {
        run_id: "bench".into(),
        workflow: "bench".into(),
        step: "Noop".into(),
        attempt: 1,
        started_by: "bench".into(),
    };
    let text = input.to_string();
    host.bare_call(echo, &text).await?;
    let mut engine_path = Vec::with_capacity(calls);
    let mut bare = Vec::with_capacity(calls);
    for _ in 0..calls {
        let started = Instant::now();
        let report = host.run(echo, &ctx, &input, Limits::default()).await;
        engine_path.push(started.elapsed());
        if !matches!(report.outcome, Outcome::Complete(ref v) if *v == input) {
            bail!(
                "correctness: the echo step did not return its input: {:?}",
                report.outcome
            );
        }
        bare.push(host.bare_call(echo, &text).await?);
    }
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    Ok(Figure::new(us(median(engine_path)), "µs", us(median(bare))))
}

/// Runs of a 3-step no-op workflow started at once, every transition durable: step
/// transitions (start and end of each step) per second, against redb durable commits per
/// second made the same way (one small write per commit, from as many writers as runs).
async fn durable_throughput(engine: &Engine, dir: &tempfile::TempDir, sizes: Sizes) -> Result<Figure> {
    let definition = crate::workflow::parse(
        "id: bench\nsteps:\n  - {name: A, plugin: echo, input: {}}\n  - {name: B, plugin: echo, input: {}}\n  - {name: C, plugin: echo, input: {}}\n",
    )
    .map_err(|p| anyhow::anyhow!("{p}"))?;
    let workflow = engine
        .register(definition)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let started = Instant::now();
    // Every run is started and followed by its own task, as concurrent clients would.
    let mut tasks = Vec::with_capacity(sizes.runs);
    for _ in 0..sizes.runs {
        let (engine, workflow) = (engine.clone(), workflow.clone());
        tasks.push(tokio::spawn(async move {
            let id = engine
                .start(&workflow, Map::new(), "bench")
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let run = engine.settled(id).await?;
            if run.state != RunState::Completed {
                bail!("correctness: run {id} ended {}", run.state.as_str());
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let transitions = (sizes.runs * 3 * 2) as f64 / elapsed;

    let floor_store = Store::open(&dir.path().join("floor.redb"))?;
    let writers = sizes.runs.min(256);
    let per_writer = (sizes.commits * 4).div_ceil(writers).max(1);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = floor_store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per_writer {
                let run = crate::names::RunId::new();
                let line = crate::run::LogLine {
                    seq: i as u64,
                    at: crate::run::now(),
                    level: "info".into(),
                    step: None,
                    message: format!("floor {w}"),
                };
                store.commit(vec![crate::store::Write::log(run, &line)?]).await?;
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let commits = (writers * per_writer) as f64 / started.elapsed().as_secs_f64();
    Ok(Figure::new(transitions, "transitions/s", commits))
}

/// The figures as the table `weft bench` prints.
pub fn table(figures: &BTreeMap<&'static str, Figure>) -> String {
    let mut out = format!(
        "{:<28} {:>14} {:>14} {:>8}  unit\n",
        "figure", "value", "floor", "ratio"
    );
    for (name, f) in figures {
        out.push_str(&format!(
            "{name:<28} {:>14.2} {:>14.2} {:>8.2}  {}\n",
            f.value, f.floor, f.ratio, f.unit
        ));
    }
    out
}

/// The figures as one JSON object keyed by figure name.
pub fn to_json(figures: &BTreeMap<&'static str, Figure>) -> Value {
    serde_json::to_value(figures).unwrap_or(Value::Null)
}
