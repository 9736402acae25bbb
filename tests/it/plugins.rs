//! Untrusted plugins: hostile components run side by side with a normal run inside one engine,
//! and malformed or conflicting uploads through `weft plugin add`.

use crate::common::*;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use weft::engine::{Engine, Event, RunQuery};
use weft::plugins::PluginHost;
use weft::run::{RunRecord, RunState, StepState};
use weft::store::{new_runner_id, Location};
use weft::workflow::{self, Workflow};

async fn register(engine: &Engine, yaml: &str) -> Arc<Workflow> {
    let definition =
        workflow::parse(yaml, &weft::limits::Limits::default()).unwrap_or_else(|p| panic!("{p}"));
    engine
        .register(definition)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A one-step workflow calling the hostile plugin in `mode`.
async fn hostile(engine: &Engine, mode: &str, extra: &str) -> Arc<Workflow> {
    let yaml = format!(
        "id: hostile-{mode}\nsteps:\n  - name: Misbehave\n    plugin: hostile@1.0.0\n    input: {{mode: {mode}{extra}}}\n    timeout: 2s\n"
    );
    register(engine, &yaml).await
}

/// Asserts that the only step of `run` failed with an error containing every one of `needles`.
#[track_caller]
fn failed_with(run: &RunRecord, needles: &[&str]) {
    assert_eq!(run.state, RunState::Failed, "{run:#?}");
    let step = &run.steps[0];
    assert_eq!(step.state, StepState::Failed, "{run:#?}");
    assert_eq!(step.attempt, 1);
    let error = step.error.as_deref().unwrap_or_default();
    for needle in needles {
        assert!(
            error.contains(needle),
            "step error {error:?} does not contain {needle:?}"
        );
    }
    let run_error = run.error.as_deref().unwrap_or_default();
    assert!(
        run_error.contains(error),
        "run error {run_error:?} does not carry the step's"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_plugins_fail_alone_while_a_normal_run_completes() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let location = Location::File(dir.path().join("weft.redb"));
    let store = weft::store::open(&location, new_runner_id())
        .await
        .expect("open store");
    let host = PluginHost::new(store.clone()).expect("plugin host");
    let bytes = std::fs::read(hostile_wasm()).expect("hostile.wasm was built");
    host.add("hostile", "1.0.0", bytes).await.expect("add hostile");
    let engine = Engine::new(store, host);
    engine.start_work().await.expect("start work");

    let normal = register(
        &engine,
        r#"
id: normal
steps:
  - {name: One, plugin: echo, input: {n: 1}}
  - {name: Two, plugin: echo, input: {n: "{{ steps.One.output.n }}", m: 2}}
outputs:
  two: "{{ steps.Two.output }}"
"#,
    )
    .await;
    let looping = hostile(&engine, "loop", "").await;
    let membomb = hostile(&engine, "membomb", "").await;
    let trap = hostile(&engine, "trap", "").await;
    let big = hostile(&engine, "big_output", ", bytes: 100000000").await;

    // Load echo first, so the race below is between calls, not against a compilation.
    let warm = engine.start(&normal, Map::new(), "tester").await.expect("start");
    assert_eq!(
        engine.settled(warm).await.expect("settled").state,
        RunState::Completed
    );

    // Everything at once: start returns as soon as the first steps are under way.
    let mut events = engine.subscribe();
    let mut ids = Vec::new();
    for wf in [&looping, &membomb, &trap, &big, &normal] {
        ids.push(engine.start(wf, Map::new(), "tester").await.expect("start"));
    }
    let mut runs = Vec::new();
    for &id in &ids {
        runs.push(engine.settled(id).await.expect("settled"));
    }
    let [looped, bombed, trapped, big, normal] = <[RunRecord; 5]>::try_from(runs).expect("five runs");

    // The spinning plugin held no one up: the normal run (two calls) finished before the
    // loop's deadline of 2s stopped it.
    let mut finished = Vec::new();
    while let Ok(event) = events.try_recv() {
        if let Event::RunChanged { run, state } = event {
            if state.is_finished() {
                finished.push(run);
            }
        }
    }
    let position = |id| {
        finished
            .iter()
            .position(|&r| r == id)
            .expect("a finish event for every run")
    };
    assert!(
        position(ids[4]) < position(ids[0]),
        "the normal run finished only after the looping one: {finished:?}"
    );

    assert_eq!(normal.state, RunState::Completed, "{normal:#?}");
    assert_eq!(normal.outputs, Some(json!({"two": {"n": 1, "m": 2}})));
    failed_with(&looped, &["deadline of 2s"]);
    failed_with(&bombed, &["memory limit of 128 MiB"]);
    failed_with(&trapped, &["trapped"]);
    failed_with(
        &big,
        &[
            "returned 100000002 bytes of output",
            "more than the limit of 4194304 bytes",
        ],
    );

    // Output that is not JSON is refused too.
    let bad = hostile(&engine, "bad_json", "").await;
    let id = engine.start(&bad, Map::new(), "tester").await.expect("start");
    failed_with(&engine.settled(id).await.expect("settled"), &["invalid JSON"]);

    // The same plugin, behaving, still works in the same host afterwards; so does echo.
    let ok = hostile(&engine, "ok", "").await;
    let id = engine.start(&ok, Map::new(), "tester").await.expect("start");
    let run = engine.settled(id).await.expect("settled");
    assert_eq!(run.state, RunState::Completed, "{run:#?}");
    assert_eq!(run.steps[0].output, Some(json!({"ok": true})));
    let id = engine
        .start(&normal_again(&engine).await, Map::new(), "tester")
        .await
        .expect("start");
    assert_eq!(
        engine.settled(id).await.expect("settled").state,
        RunState::Completed
    );

    // Every outcome was committed, not only kept in memory.
    let query = RunQuery::new(None, usize::MAX);
    let stored = engine.runs(query, |_| true).await.expect("runs");
    assert_eq!(stored.len(), 9);
    assert!(stored.iter().all(|r| r.state.is_finished()), "{stored:#?}");
}

async fn normal_again(engine: &Engine) -> Arc<Workflow> {
    register(
        engine,
        "id: normal-again\nsteps:\n  - {name: One, plugin: echo, input: {again: true}}\n",
    )
    .await
}

#[test]
fn plugin_add_refuses_what_is_not_a_step_component() {
    let weft = Weft::new();

    let junk = weft.write_file("junk.wasm", b"this is not WebAssembly at all");
    let out = weft.run(&[
        "plugin",
        "add",
        path_str(&junk),
        "--name",
        "junk",
        "--version",
        "1.0.0",
    ]);
    out.expect_code(1);
    out.expect_stderr(&["junk.wasm", "not a WebAssembly file"]);

    let core = weft.write_file("core.wasm", b"\0asm\x01\0\0\0");
    let out = weft.run(&[
        "plugin",
        "add",
        path_str(&core),
        "--name",
        "core",
        "--version",
        "1.0.0",
    ]);
    out.expect_code(1);
    out.expect_stderr(&["core WebAssembly module, not a component", "wasm32-wasip2"]);

    // The smallest valid component: it exports nothing, so it is no plugin of ours.
    let empty = weft.write_file("empty.wasm", b"\0asm\x0d\0\x01\0");
    let out = weft.run(&[
        "plugin",
        "add",
        path_str(&empty),
        "--name",
        "empty",
        "--version",
        "1.0.0",
    ]);
    out.expect_code(1);
    out.expect_stderr(&["exports neither weft:plugin/step@0.2.0", "wit/weft.wit"]);

    let out = weft.run(&[
        "plugin",
        "add",
        path_str(&hostile_wasm()),
        "--name",
        "echo",
        "--version",
        "9.0.0",
    ]);
    out.expect_code(1);
    out.expect_stderr(&["echo is the name of a built-in plugin"]);

    let list = weft.run(&["plugin", "list"]);
    list.expect_code(0);
    for refused in ["junk@", "core@", "empty@", "echo@9.0.0"] {
        assert!(
            !list.stdout.contains(refused),
            "{refused} was stored:\n{}",
            list.stdout
        );
    }
}

#[test]
fn plugin_add_is_idempotent_and_refuses_conflicts() {
    let weft = Weft::new();
    let first = weft.add_hostile();
    first.expect_code(0);
    assert!(
        first.stdout.starts_with("hostile@1.0.0 sha256:"),
        "{}",
        first.stdout
    );
    assert!(first.stdout.contains("(step world,"), "{}", first.stdout);
    let again = weft.add_hostile();
    again.expect_code(0);
    assert_eq!(
        again.stdout, first.stdout,
        "adding the same bytes again is a no-op"
    );

    let other = std::path::Path::new(PLUGIN_DIR).join("echo.wasm");
    let out = weft.run(&[
        "plugin",
        "add",
        path_str(&other),
        "--name",
        "hostile",
        "--version",
        "1.0.0",
    ]);
    out.expect_code(1);
    out.expect_stderr(&["hostile@1.0.0 already exists with digest", "new version"]);

    let list = weft.run(&["plugin", "list"]);
    list.expect_code(0);
    let hostile: Vec<&str> = list
        .stdout
        .lines()
        .filter(|l| l.starts_with("hostile@"))
        .collect();
    assert_eq!(hostile.len(), 1, "{}", list.stdout);
    let digest = first.stdout.split_whitespace().nth(1).expect("a digest");
    assert!(
        hostile[0].contains(digest),
        "the stored digest changed: {}",
        list.stdout
    );

    // The uploaded plugin runs from the CLI too.
    let file = weft.write_workflow(
        "ok.yaml",
        "id: ok\nsteps:\n  - {name: Fine, plugin: hostile@1.0.0, input: {mode: ok}}\noutputs:\n  fine: '{{ steps.Fine.output.ok }}'\n",
    );
    let (out, run) = weft.start(&file, &[]);
    out.expect_code(0);
    assert_eq!(run["outputs"], json!({"fine": true}));
    assert_eq!(
        step(&run, "Fine")["plugin"],
        Value::from(digest),
        "the run is pinned to the digest"
    );
}
