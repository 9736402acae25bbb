//! The figures of several runners on one PostgreSQL database: how long an answer given to
//! one runner takes to finish a run another runner started, and runs per second against one,
//! two and three `weft serve` processes sharing the database.
//!
//! On a machine with few cores the runners share the same CPUs, so more runners show the
//! cost of coordination, not a speed-up.

use super::databases::{pg_commits_per_s, Databases};
use super::engine::NOOP_WORKFLOW;
use super::http::{admin_token, concurrent, progress_bar, Api, Server, APPROVAL_WORKFLOW};
use super::{ms, percentile, Figure, Sizes, CLIENTS};
use anyhow::Result;
use std::collections::BTreeMap;

/// Runners started for the scale-out figures.
const RUNNERS: usize = 3;

pub async fn measure(
    databases: &Databases,
    sizes: Sizes,
    progress: &impl Fn(&str),
    figures: &mut BTreeMap<&'static str, Figure>,
) -> Result<()> {
    let db = databases.fresh("runners").await?;
    let token = admin_token(&db)?;
    let servers = (0..RUNNERS)
        .map(|_| Server::start(&db))
        .collect::<Result<Vec<_>>>()?;
    let apis = servers
        .iter()
        .map(|s| Api::new(s, &token, true))
        .collect::<Result<Vec<_>>>()?;
    apis[0].create_workflow(APPROVAL_WORKFLOW).await?;
    apis[0].create_workflow(NOOP_WORKFLOW).await?;

    progress("answers on another runner");
    let answers = sizes.requests.div_ceil(4).max(20);
    let (mut same, mut other) = (Vec::with_capacity(answers), Vec::with_capacity(answers));
    for _ in 0..answers {
        let id = apis[0].start_waiting().await?;
        same.push(apis[0].approve_until_completed(&id).await?.1);
        let id = apis[0].start_waiting().await?;
        other.push(apis[1].approve_until_completed(&id).await?.1);
    }
    figures.insert(
        "pg_answer_other_runner_ms",
        Figure::new(
            ms(percentile(&mut other, 50)),
            "ms",
            ms(percentile(&mut same, 50)),
            "same, answered on the runner that started it",
        )
        .with("p99_ms", ms(percentile(&mut other, 99)))
        .with("same_runner_p99_ms", ms(percentile(&mut same, 99))),
    );

    progress("runs/s against 1, 2 and 3 runners");
    let bare = pg_commits_per_s(&databases.fresh("floor_load").await?, 2048, CLIENTS, 50).await?;
    let mut one_runner = 0.0;
    for (count, name) in [
        (1, "scale_out_runs_per_s_1"),
        (2, "scale_out_runs_per_s_2"),
        (3, "scale_out_runs_per_s_3"),
    ] {
        let bar = progress_bar(sizes.client_runs, "runs");
        let mut load = concurrent(&apis[..count], sizes.client_runs, Some(&bar), |api| async move {
            api.start_completed("bench").await
        })
        .await?;
        bar.finish_and_clear();
        let rate = load.per_s();
        // A run needs four commits; bare commits from as many connections bound the rate a
        // database that merged nothing could reach.
        let figure = if count == 1 {
            one_runner = rate;
            Figure::new(rate, "runs/s", bare / 4.0, "bare commits/s (64 connections) / 4")
                .with("bare_commits_per_s_64_connections", bare)
        } else {
            Figure::new(rate, "runs/s", one_runner, "same against one runner")
        };
        figures.insert(
            name,
            figure
                .with("runners", count as f64)
                .with("p50_ms", ms(percentile(&mut load.latencies, 50)))
                .with("p99_ms", ms(percentile(&mut load.latencies, 99))),
        );
    }
    // Each run above was checked to have completed (`start_completed`), whichever runner
    // drove it.
    for server in servers {
        server.stop()?;
    }
    Ok(())
}
