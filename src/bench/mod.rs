//! `weft bench`: the performance figures Weft ships, each next to a floor measured in the same
//! run on the same machine, and their ratio (value / floor).
//!
//! The in-process figures (`engine.rs`) drive the engine and plugin host directly; the HTTP
//! and waiting-run figures (`http.rs`) start this same binary as `weft serve` on loopback and
//! load it with real clients, authentication and action hooks included; the browser UI's
//! figures (`ui.rs`) get its pages as a signed-in browser does. Every figure uses
//! fresh databases in a temporary directory, and each checks that the work it timed really
//! happened (every run completed, every waiting run waits) so a broken engine cannot post a
//! good number.

mod databases;
mod engine;
mod floors;
mod http;
mod runners;
mod ui;

use anyhow::{bail, Context, Result};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

/// One figure: the value, its unit, the floor it is compared to, and value / floor.
#[derive(Debug, Serialize)]
pub struct Figure {
    pub value: f64,
    pub unit: &'static str,
    pub floor: f64,
    pub ratio: f64,
    /// What the floor is, in a few words.
    pub floor_is: &'static str,
    /// Further measurements that explain the figure (a second floor, percentiles, sizes).
    #[serde(flatten)]
    pub also: BTreeMap<&'static str, f64>,
}

impl Figure {
    fn new(value: f64, unit: &'static str, floor: f64, floor_is: &'static str) -> Figure {
        let ratio = if floor > 0.0 { value / floor } else { f64::NAN };
        Figure {
            value,
            unit,
            floor,
            ratio,
            floor_is,
            also: BTreeMap::new(),
        }
    }

    fn with(mut self, name: &'static str, value: f64) -> Figure {
        self.also.insert(name, value);
        self
    }
}

/// How much work each figure does.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    /// Plugin calls timed for the step overhead.
    pub calls: usize,
    /// Concurrent runs for durable throughput.
    pub runs: usize,
    /// Sequential HTTP requests for each latency figure.
    pub requests: usize,
    /// Runs started by the 64 HTTP clients.
    pub client_runs: usize,
    /// Runs left waiting for an approval.
    pub waiting: usize,
    /// Finished runs in the database for the history figures.
    pub history: usize,
    /// Items of the `for_each` figure.
    pub items: usize,
}

impl Sizes {
    pub const FULL: Sizes = Sizes {
        calls: 2_000,
        runs: 10_000,
        requests: 2_000,
        client_runs: 20_000,
        waiting: 100_000,
        history: 100_000,
        items: 10_000,
    };
    pub const QUICK: Sizes = Sizes {
        calls: 50,
        runs: 20,
        requests: 20,
        client_runs: 128,
        waiting: 100,
        history: 100,
        items: 200,
    };
}

/// Concurrent HTTP clients for the throughput figure.
pub const CLIENTS: usize = 64;

/// A group of figures that `weft bench --only` can pick.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Part {
    /// In process: step overhead, plugin cache, durable throughput (fresh and with history).
    Engine,
    /// Against `weft serve`: latency, throughput at 64 clients, latency with history, and
    /// the browser UI's inbox and run page with that history.
    Http,
    /// Runs waiting for an approval: memory, database size, restart, answering one (redb).
    Waiting,
    /// Several runners on one PostgreSQL database: an answer on another runner, and runs/s
    /// against one, two and three runners (with --db postgres://... only).
    Runners,
}

/// Runs the figures of `parts` (all that apply when empty) on redb files, or on fresh
/// databases of the PostgreSQL server of `postgres`, and returns them by name.
pub async fn run(
    sizes: Sizes,
    parts: &[Part],
    postgres: Option<&str>,
    progress: impl Fn(&str),
) -> Result<BTreeMap<&'static str, Figure>> {
    let dir = tempfile::tempdir().context("cannot make a temporary directory")?;
    let databases = databases::Databases::new(dir.path(), postgres)?;
    let on_postgres = databases.is_postgres();
    if parts.contains(&Part::Runners) && !on_postgres {
        bail!("--only runners needs several runners on one database: pass --db postgres://...");
    }
    if parts.contains(&Part::Waiting) && on_postgres {
        bail!("--only waiting measures the embedded store (memory and file size): leave out --db");
    }
    let wanted = |part| parts.is_empty() || parts.contains(&part);
    progress(&format!("figures on {}", databases.describe()));
    let mut figures = BTreeMap::new();
    let measured = async {
        if wanted(Part::Engine) {
            engine::measure(dir.path(), &databases, sizes, &progress, &mut figures).await?;
        }
        if wanted(Part::Http) {
            http::latency_and_throughput(dir.path(), &databases, sizes, &progress, &mut figures).await?;
        }
        if wanted(Part::Waiting) && !on_postgres {
            http::waiting_runs(dir.path(), sizes, &progress, &mut figures).await?;
        }
        if wanted(Part::Runners) && on_postgres {
            runners::measure(&databases, sizes, &progress, &mut figures).await?;
        }
        anyhow::Ok(())
    }
    .await;
    databases.clean_up().await?;
    measured?;
    Ok(figures)
}

/// Waits until the kernel has written every dirty page to disk, so background writeback left
/// by filling a database does not slow the syncs of the next measurement.
fn settle_disk() {
    // SAFETY: `sync` takes no arguments and touches no memory of ours.
    unsafe { libc::sync() }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The `p`th percentile (0–100) of `samples`, nearest rank.
fn percentile(samples: &mut [Duration], p: usize) -> Duration {
    samples.sort_unstable();
    let rank = (samples.len() * p).div_ceil(100).max(1);
    samples[rank.min(samples.len()) - 1]
}

/// The figures as the table `weft bench` prints.
pub fn table(figures: &BTreeMap<&'static str, Figure>) -> String {
    let mut out = format!(
        "{:<40} {:>12} {:>12} {:>7}  {:<14} floor is\n",
        "figure", "value", "floor", "ratio", "unit"
    );
    for (name, f) in figures {
        out.push_str(&format!(
            "{name:<40} {:>12.2} {:>12.2} {:>7.2}  {:<14} {}\n",
            f.value, f.floor, f.ratio, f.unit, f.floor_is
        ));
        for (what, value) in &f.also {
            out.push_str(&format!("    {what:<36} {value:>12.2}\n"));
        }
    }
    out
}

/// The figures as one JSON object keyed by figure name.
pub fn to_json(figures: &BTreeMap<&'static str, Figure>) -> Value {
    serde_json::to_value(figures).unwrap_or(Value::Null)
}
