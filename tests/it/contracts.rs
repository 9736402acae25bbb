//! Plugin contracts (`weft:plugin@0.2.0`'s `describe`): step inputs checked against their
//! plugin's schema before a run starts (`weft validate`, `weft run`, workflow upload) and
//! again once rendered; the schemas shown by the API and checked against the README; 0.1.0
//! plugins still loading; uploads that compile in the background, on one runner and across
//! runners on PostgreSQL. Real `weft` and `weft serve`, real bundled and test plugins.

use crate::common::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::Path;

/// A workflow whose literal input breaks `http-request`'s schema three ways, and whose
/// templated values cannot be judged yet.
const MISFIT: &str = r#"
id: misfit
inputs:
  method: {type: string, default: GET}
steps:
  - name: Ping
    plugin: echo
  - name: Fetch
    plugin: http-request
    input:
      method: "{{ inputs.method }}"
      expect_status: 201
      tries: 3
"#;

const EXPECTED: [&str; 3] = [
    "steps[1].input.expect_status: expected an array of integers, got 201",
    "steps[1].input.url: required, but missing",
    "steps[1].input.tries: unknown field; known fields: ",
];

#[test]
fn validate_and_run_report_every_input_mismatch_before_a_run_starts() {
    let weft = Weft::new();
    let file = weft.write_workflow("misfit.yaml", MISFIT);
    let out = weft.run(&["validate", path_str(&file)]);
    out.expect_code(1);
    out.expect_stderr(&EXPECTED);
    assert!(
        !out.stderr.contains("input.method"),
        "a template is judged once rendered: {}",
        out.stderr
    );

    let out = weft.run(&["run", path_str(&file)]);
    out.expect_code(1);
    out.expect_stderr(&EXPECTED);
    let runs = weft.run(&["runs", "list", "--json"]);
    runs.expect_code(0);
    assert_eq!(
        runs.json().as_array().map(Vec::len),
        Some(0),
        "no run started: {}",
        runs.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_upload_refuses_inputs_that_do_not_fit_with_their_paths() {
    let server = Server::start();
    let answer = server
        .post_raw("/v1/workflows", "application/yaml", MISFIT.to_owned())
        .await;
    let body = answer.expect_error(400, "invalid_definition", &EXPECTED[..2]);
    let paths: BTreeSet<&str> = body["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .filter_map(|p| p["path"].as_str())
        .collect();
    assert_eq!(
        paths,
        BTreeSet::from([
            "steps[1].input.expect_status",
            "steps[1].input.url",
            "steps[1].input.tries"
        ]),
        "{body:#}"
    );
}

#[test]
fn a_rendered_input_that_does_not_fit_fails_its_step_without_calling_the_plugin() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let weft = Weft::new();
    let file = weft.write_workflow(
        "codes.yaml",
        &format!(
            "id: codes\ninputs:\n  codes: {{type: json}}\nsteps:\n  - name: Fetch\n    plugin: http-request\n    input:\n      url: http://127.0.0.1:{port}/x\n      expect_status: \"{{{{ inputs.codes }}}}\"\n"
        ),
    );
    let config = weft.write_config(&format!(
        "[plugins.http-request]\nhttp = [\"127.0.0.1:{port}\"]\n"
    ));
    let out = weft.run(&[
        "run",
        path_str(&file),
        "--config",
        path_str(&config),
        "-i",
        "codes=201",
        "--json",
    ]);
    out.expect_code(1);
    let record = out.json();
    let error = step(&record, "Fetch")["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        error.contains("invalid input: input.expect_status: expected an array of integers, got 201"),
        "{error}"
    );
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the plugin was called and connected"
    );

    // The same workflow with a fitting value reaches the server.
    listener.set_nonblocking(false).unwrap();
    let server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut stream, _) = listener.accept().unwrap();
        let mut request = [0u8; 4096];
        let _ = stream.read(&mut request).unwrap();
        stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
            .unwrap();
    });
    let out = weft.run(&[
        "run",
        path_str(&file),
        "--config",
        path_str(&config),
        "-i",
        "codes=[200]",
        "--json",
    ]);
    out.expect_code(0);
    assert_eq!(
        step(&out.json(), "Fetch")["output"]["status"],
        200,
        "{}",
        out.stdout
    );
    server.join().unwrap();
}

/// The rows of one README table under `heading`: each row's cells.
fn readme_rows(heading: &str, first_column: &str) -> Vec<Vec<String>> {
    let readme = std::fs::read_to_string(Path::new(REPO).join("README.md")).expect("README.md");
    let section = readme
        .split(heading)
        .nth(1)
        .unwrap_or_else(|| panic!("README.md has no {heading:?}"));
    let mut rows = Vec::new();
    let mut in_table = false;
    for line in section.lines() {
        let cells: Vec<String> = line
            .trim()
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_owned())
            .collect();
        if line.starts_with("| ") && cells[0] == first_column {
            in_table = true;
            continue;
        }
        if in_table {
            if !line.starts_with('|') {
                break;
            }
            if !cells[0].starts_with("---") {
                rows.push(cells);
            }
        }
    }
    assert!(
        !rows.is_empty(),
        "no table starting with {first_column:?} under {heading:?}"
    );
    rows
}

/// The field names a README cell lists: its backticked words outside parentheses.
fn named_fields(cell: &str) -> BTreeSet<String> {
    let mut depth = 0;
    let mut names = BTreeSet::new();
    let mut rest = cell;
    while let Some(i) = rest.find(['(', ')', '`']) {
        match rest.as_bytes()[i] {
            b'(' => depth += 1,
            b')' => depth -= 1,
            _ => {
                let after = &rest[i + 1..];
                let end = after.find('`').expect("closing backtick");
                if depth == 0 {
                    names.insert(after[..end].to_owned());
                }
                rest = &after[end + 1..];
                continue;
            }
        }
        rest = &rest[i + 1..];
    }
    names
}

fn properties(schema: &Value) -> BTreeSet<String> {
    schema["properties"]
        .as_object()
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_shows_each_bundled_plugins_schemas_and_the_readme_table_matches_them() {
    let server = Server::start();
    for row in readme_rows("## Bundled plugins", "plugin") {
        let name = row[0].trim_matches('`');
        let shown = server
            .get(&format!("/v1/plugins/{name}"))
            .await
            .expect_status(200)
            .json();
        let plugin = &shown["items"][0];
        assert!(
            plugin["summary"].as_str().is_some_and(|s| !s.is_empty()),
            "{plugin:#}"
        );
        assert_eq!(plugin["status"], "ready");
        assert_eq!(plugin["contract_version"], "0.2.0");
        assert!(plugin["output_schema"].is_object(), "{plugin:#}");
        assert_eq!(
            named_fields(&row[1]),
            properties(&plugin["input_schema"]),
            "README's input column of {name} does not match its input schema"
        );
    }
    for row in readme_rows("bundled plugins are action targets", "target") {
        let name = row[0].trim_matches('`');
        let shown = server
            .get(&format!("/v1/plugins/{name}"))
            .await
            .expect_status(200)
            .json();
        assert_eq!(
            named_fields(&row[1]),
            properties(&shown["items"][0]["config_schema"]),
            "README's config column of {name} does not match its config schema"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_config_that_does_not_fit_is_refused() {
    let server = Server::start();
    server
        .post(
            "/v1/actions/targets",
            &json!({"name": "p", "plugin": "policy", "type": "call", "config": {"input": "cn", "status": 200}}),
        )
        .await
        .expect_error(400, "invalid_request", &["config.pattern: required, but missing", "config.status"]);
}

fn legacy_wasm() -> std::path::PathBuf {
    Path::new(PLUGIN_DIR).join("legacy_echo.wasm")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_built_against_0_1_0_still_loads_and_runs() {
    let server = Server::start();
    let bytes = std::fs::read(legacy_wasm()).expect("legacy_echo.wasm was built");
    let added = server
        .post_raw("/v1/plugins?name=legacy&version=1.0.0", "application/wasm", bytes)
        .await
        .expect_status(201)
        .json();
    assert_eq!(added["contract_version"], "0.1.0", "{added:#}");
    assert_eq!(added["world"], "step");
    assert!(
        added.get("input_schema").is_none(),
        "a 0.1.0 plugin describes nothing: {added:#}"
    );
    server
        .create_workflow(
            "id: old\nsteps:\n  - {name: Echo, plugin: legacy@1.0.0, input: {anything: [1, \"goes\"]}}\n",
        )
        .await;
    let id = server.start_run("old", &json!({"input": {}})).await;
    let run = server.wait_state("old", &id, "completed").await;
    assert_eq!(
        run["steps"][0]["output"],
        json!({"anything": [1, "goes"]}),
        "{run:#}"
    );
}

/// A component that passes the header check but does not compile.
const BROKEN: &[u8] = b"\0asm\x0d\0\x01\0\x99\x99\x99\x99";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_past_upload_wait_answers_202_then_becomes_ready_or_failed() {
    let weft = Weft::new();
    let config = weft.write_config("[limits]\nupload_wait = \"0s\"\n");
    let server = Server::on(weft, &["--config", path_str(&config)]);

    let answer = server
        .post_raw(
            "/v1/plugins?name=broken&version=1.0.0",
            "application/wasm",
            BROKEN.to_vec(),
        )
        .await;
    answer.expect_status(202);
    assert_eq!(answer.header("location"), Some("/v1/plugins/broken@1.0.0"));
    assert_eq!(answer.json()["status"], "compiling");
    let failed = server
        .poll("/v1/plugins/broken@1.0.0", "failed", |p| {
            p["status"] != "compiling"
        })
        .await;
    assert_eq!(failed["status"], "failed", "{failed:#}");
    assert!(
        failed["error"]
            .as_str()
            .unwrap_or_default()
            .contains("not a valid WebAssembly component"),
        "{failed:#}"
    );
    server
        .post_raw(
            "/v1/workflows",
            "application/yaml",
            "id: b\nsteps:\n  - {name: B, plugin: broken@1.0.0}\n".to_owned(),
        )
        .await
        .expect_error(400, "invalid_definition", &["broken@1.0.0 failed to compile"]);

    // A new upload of a failed version replaces it.
    let bytes = std::fs::read(legacy_wasm()).expect("legacy_echo.wasm was built");
    let answer = server
        .post_raw("/v1/plugins?name=broken&version=1.0.0", "application/wasm", bytes)
        .await;
    answer.expect_status(202);
    let ready = server
        .poll("/v1/plugins/broken@1.0.0", "ready", |p| {
            p["status"] != "compiling"
        })
        .await;
    assert_eq!(ready["status"], "ready", "{ready:#}");
    assert_eq!(ready["world"], "step");
    server
        .create_workflow("id: b\nsteps:\n  - {name: B, plugin: broken@1.0.0, input: {x: 1}}\n")
        .await;
    let id = server.start_run("b", &json!({"input": {}})).await;
    server.wait_state("b", &id, "completed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_compiling_on_one_runner_is_ready_on_another() {
    let first = Weft::on(Backend::Postgres);
    let second = first.same_database();
    let config = first.write_config("[limits]\nupload_wait = \"0s\"\n");
    let a = Server::on(first, &["--config", path_str(&config)]);
    let b = Server::on(second, &[]);
    let bytes = std::fs::read(legacy_wasm()).expect("legacy_echo.wasm was built");
    a.post_raw("/v1/plugins?name=shared&version=1.0.0", "application/wasm", bytes)
        .await
        .expect_status(202);
    let ready = b
        .poll("/v1/plugins/shared@1.0.0", "ready on the other runner", |p| {
            p["status"] == "ready"
        })
        .await;
    assert_eq!(ready["contract_version"], "0.1.0");
    b.create_workflow("id: s\nsteps:\n  - {name: S, plugin: shared@1.0.0, input: {y: 2}}\n")
        .await;
    let id = b.start_run("s", &json!({"input": {}})).await;
    let run = b.wait_state("s", &id, "completed").await;
    assert_eq!(run["steps"][0]["output"], json!({"y": 2}));
}

/// for_each items, a step that starts a workflow (no plugin) and on_failure steps.
const MAPPED: &str = r#"
id: mapped
inputs:
  values: {type: json}
steps:
  - name: Each
    plugin: sleep
    for_each: "{{ inputs.values }}"
    input: {ms: "{{ item }}", mode: slow}
  - name: Child
    workflow: other
    input: {anything: [1]}
on_failure:
  - name: Tell
    plugin: http-request
    input: {url: "http://127.0.0.1:1/x", tries: 1}
"#;

#[test]
fn for_each_items_and_on_failure_steps_are_checked_too() {
    let weft = Weft::new();
    let file = weft.write_workflow("mapped.yaml", MAPPED);
    let out = weft.run(&["validate", path_str(&file)]);
    out.expect_code(1);
    out.expect_stderr(&[
        "steps[0].input.mode: expected one of \"timed\", \"busy\", got \"slow\"",
        "on_failure[0].input.tries: unknown field",
    ]);
    assert!(
        !out.stderr.contains("input.ms"),
        "`{{{{ item }}}}` is judged once rendered: {}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("steps[1].input"),
        "a workflow step has no plugin schema: {}",
        out.stderr
    );

    // Each item's rendered input is checked before its call: the second item does not fit.
    let fitting = MAPPED.replace(", mode: slow", "").replace(", tries: 1", "");
    let file = weft.write_workflow("mapped.yaml", &fitting);
    let out = weft.run(&["run", path_str(&file), "-i", r#"values=[1, "x"]"#, "--json"]);
    out.expect_code(1);
    let error = step(&out.json(), "Each")["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        error.contains("item 1 failed: invalid input: input.ms: expected an integer, got \"x\""),
        "{error}"
    );
}
