//! `weft bench` at its smallest size, so the benchmark code cannot rot. It loads the SDK
//! example components `sdk/ci.sh` builds (into `target/sdk-examples`). No time is asserted:
//! only that every figure the issue names is there, measured, with its floor, and that the work
//! behind it happened (the benchmark fails by itself when a run does not complete, a waiting
//! run does not wait, or a restarted server lost one).

use serde_json::Value;
use std::process::{Command, Stdio};

/// Panics unless every one of `names` is in `figures`, measured, with its floor.
fn expect_figures(figures: &Value, names: &[&str]) {
    for name in names {
        let figure = &figures[name];
        for key in ["value", "floor", "ratio"] {
            let number = figure[key]
                .as_f64()
                .unwrap_or_else(|| panic!("{name}.{key} missing: {figures}"));
            assert!(number.is_finite() && number > 0.0, "{name}.{key} = {number}");
        }
        assert!(figure["unit"].is_string(), "{name}.unit: {figures}");
    }
}

#[test]
fn bench_quick_on_postgres_prints_the_shared_database_figures() {
    let url = crate::postgres::database();
    let out = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["bench", "--quick", "--json", "--db", &url])
        .stdin(Stdio::null())
        .output()
        .expect("weft runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let figures: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    expect_figures(
        &figures,
        &[
            "step_overhead_us",
            "durable_transitions_per_s",
            "http_p50_ms",
            "http_runs_per_s_64_clients",
            "pg_answer_other_runner_ms",
            "scale_out_runs_per_s_1",
            "scale_out_runs_per_s_2",
            "scale_out_runs_per_s_3",
        ],
    );
    assert!(
        figures["http_p50_ms"]["four_pg_commits_ms"].as_f64().is_some(),
        "{figures:#}"
    );
    assert!(
        figures.get("waiting_rss_mb").is_none(),
        "waiting figures are redb's: {figures:#}"
    );
    // The bench's own databases are dropped afterwards (no other test makes any).
    let left: Vec<String> = crate::postgres::database_names()
        .into_iter()
        .filter(|name| name.starts_with("weft_bench_"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn bench_quick_prints_every_figure_with_its_floor() {
    // `weft bench` uses its own temporary database, so it takes no --db.
    let out = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["bench", "--quick", "--json"])
        .stdin(Stdio::null())
        .output()
        .expect("weft runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let figures: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    expect_figures(
        &figures,
        &[
            "step_overhead_us",
            "durable_transitions_per_s",
            "http_p50_ms",
            "http_p99_ms",
            "http_runs_per_s_64_clients",
            "waiting_rss_mb",
            "waiting_ready_s",
            "cached_plugin_ready_ms",
            "durable_transitions_per_s_with_history",
            "http_p50_ms_with_history",
            "for_each_items_per_s",
            "step_overhead_us_python",
            "step_overhead_us_js",
            "first_call_ms_python",
            "first_call_ms_js",
            "history_bytes_per_run",
        ],
    );
    // The SDK figures share the Rust figure's floor.
    for language in ["python", "js"] {
        assert_eq!(
            figures[format!("step_overhead_us_{language}")]["floor"],
            figures["step_overhead_us"]["floor"],
            "{figures:#}"
        );
        assert!(figures[format!("first_call_ms_{language}")]["cold_first_call_ms"]
            .as_f64()
            .is_some());
    }
}
