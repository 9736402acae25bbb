//! Workflow lifecycle over the real server: drafts and publishing, diffs, and bundles
//! exported from one server and imported into another, all or nothing.

use crate::common::{hostile_wasm, Server};
use serde_json::{json, Value};

/// A workflow whose second step uses the uploaded `hostile` plugin (mode `ok` → {"ok": true}).
const USES_HOSTILE: &str = "id: shipped\nsteps:\n  - {name: Prepare, plugin: echo, input: {x: 1}}\n  - {name: Check, plugin: \"hostile@1.0.0\", input: {mode: ok}}\noutputs:\n  ok: \"{{ steps.Check.output.ok }}\"\n";

async fn upload(server: &Server, name: &str, version: &str, bytes: Vec<u8>) -> Value {
    let path = format!("/v1/plugins?name={name}&version={version}");
    let answer = server.post_raw(&path, "application/wasm", bytes).await;
    answer.expect_status(201);
    answer.json()
}

async fn export(server: &Server, ids: &[&str], include_plugins: bool) -> (Value, String) {
    let path = format!("/v1/workflows/export?include_plugins={include_plugins}");
    let answer = server.post(&path, &json!({ "id": ids })).await;
    answer.expect_status(200);
    let disposition = answer.headers["content-disposition"].to_str().unwrap().to_owned();
    (answer.json(), disposition)
}

async fn import(server: &Server, bundle: &Value) -> crate::common::Resp {
    server
        .post_raw("/v1/workflows/import", "application/json", bundle.to_string())
        .await
}

async fn workflow_ids(server: &Server) -> Vec<String> {
    let list = server.get("/v1/workflows").await.expect_status(200).json();
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_round_trips_and_runs_on_a_fresh_server() {
    let source = Server::start();
    upload(
        &source,
        "hostile",
        "1.0.0",
        std::fs::read(hostile_wasm()).unwrap(),
    )
    .await;
    source.create_workflow(USES_HOSTILE).await;
    let (bundle, disposition) = export(&source, &["shipped"], true).await;
    assert!(
        disposition.contains("attachment") && disposition.contains("shipped"),
        "{disposition}"
    );
    assert_eq!(bundle["format"], "weft-bundle");
    assert_eq!(bundle["format_version"], 1);

    // Raw body into one fresh server, SecMaster's multipart `uploadFile` into another.
    let target = Server::start();
    let imported = import(&target, &bundle).await;
    imported.expect_status(200);
    assert_eq!(imported.json()["imported"], json!(["shipped@1"]));
    assert_eq!(imported.json()["plugins"], json!(["hostile@1.0.0"]));
    let id = target.start_run("shipped", &json!({})).await;
    let run = target.wait_state("shipped", &id, "completed").await;
    assert_eq!(run["outputs"]["ok"], true);

    let other = Server::start();
    let form = reqwest::multipart::Form::new().part(
        "uploadFile",
        reqwest::multipart::Part::bytes(bundle.to_string().into_bytes()).file_name("shipped.json"),
    );
    let answer = other
        .send(
            other
                .request(reqwest::Method::POST, "/v1/workflows/import")
                .multipart(form),
        )
        .await;
    answer.expect_status(200);
    assert_eq!(workflow_ids(&other).await, ["shipped"]);

    // Importing again changes nothing.
    let again = import(&target, &bundle).await;
    again.expect_status(200);
    assert_eq!(again.json()["imported"], json!([]));
    assert_eq!(again.json()["unchanged"], json!(["shipped@1"]));
    assert_eq!(again.json()["plugins"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bundles_are_refused_and_write_nothing() {
    let source = Server::start();
    upload(
        &source,
        "hostile",
        "1.0.0",
        std::fs::read(hostile_wasm()).unwrap(),
    )
    .await;
    source.create_workflow(USES_HOSTILE).await;
    let (bundle, _) = export(&source, &["shipped"], true).await;
    let (without_plugins, _) = export(&source, &["shipped"], false).await;
    let target = Server::start();

    let text = bundle.to_string();
    let truncated = &text[..text.len() / 2];
    target
        .post_raw("/v1/workflows/import", "application/json", truncated.to_owned())
        .await
        .expect_error(400, "invalid_bundle", &["corrupted or truncated"]);
    target
        .post_raw("/v1/workflows/import", "application/json", "not json at all")
        .await
        .expect_error(400, "invalid_bundle", &[]);

    let mut altered = bundle.clone();
    let carried = altered["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .position(|p| p["name"] == "hostile")
        .expect("the bundle carries hostile");
    let encoded = altered["plugins"][carried]["bytes"].as_str().unwrap().to_owned();
    use base64::Engine as _;
    let mut bytes = base64::engine::general_purpose::STANDARD
        .decode(&encoded)
        .unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    altered["plugins"][carried]["bytes"] = json!(base64::engine::general_purpose::STANDARD.encode(bytes));
    import(&target, &altered)
        .await
        .expect_error(400, "invalid_bundle", &["do not match the digest"]);

    import(&target, &without_plugins)
        .await
        .expect_error(400, "invalid_bundle", &["missing here"]);

    let mut newer = bundle.clone();
    newer["format_version"] = json!(99);
    import(&target, &newer)
        .await
        .expect_error(400, "invalid_bundle", &["upgrade Weft"]);

    assert!(
        workflow_ids(&target).await.is_empty(),
        "a refused import wrote a workflow"
    );
    let plugins = target.get("/v1/plugins/hostile").await;
    plugins.expect_error(404, "not_found", &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicts_are_listed_and_a_rename_imports_beside_them() {
    let source = Server::start();
    source
        .create_workflow("id: w\nsteps:\n  - {name: A, plugin: echo, input: {from: source}}\n")
        .await;
    let (bundle, _) = export(&source, &["w"], false).await;
    let target = Server::start();
    target
        .create_workflow("id: w\nsteps:\n  - {name: A, plugin: echo, input: {from: target}}\n")
        .await;

    let refused = import(&target, &bundle)
        .await
        .expect_error(409, "conflict", &["workflow w version 1"]);
    assert_eq!(refused["problems"].as_array().unwrap().len(), 1, "{refused:#}");
    let renamed = target
        .post_raw(
            "/v1/workflows/import?rename=w:w-imported",
            "application/json",
            bundle.to_string(),
        )
        .await;
    renamed.expect_status(200);
    assert_eq!(renamed.json()["imported"], json!(["w-imported@1"]));
    let mine = target.get("/v1/workflows/w").await.expect_status(200).json();
    assert_eq!(mine["definition"]["steps"][0]["input"]["from"], "target");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drafts_wait_for_publishing_and_diffs_show_the_change() {
    let server = Server::start();
    let v1 = "id: p\nsteps:\n  - {name: A, plugin: echo, input: {v: one}}\noutputs: {v: \"{{ steps.A.output.v }}\"}\n";
    let v2 = "id: p\nsteps:\n  - {name: A, plugin: echo, input: {v: two}}\noutputs: {v: \"{{ steps.A.output.v }}\"}\n";
    assert_eq!(server.create_workflow(v1).await["published"], true);
    let draft = server.create_workflow(v2).await;
    assert_eq!(
        (&draft["version"], &draft["published"]),
        (&json!(2), &json!(false))
    );

    let run = server.start_run("p", &json!({})).await;
    assert_eq!(
        server.wait_state("p", &run, "completed").await["outputs"]["v"],
        "one"
    );

    let diff = server
        .get("/v1/workflows/p/versions/1/diff/2")
        .await
        .expect_status(200)
        .json();
    assert_eq!(
        diff["changes"],
        json!([{"op": "replace", "path": "/steps/0/input/v", "value": "two"}])
    );

    server
        .post("/v1/workflows/p/versions/2/publish", &json!({}))
        .await
        .expect_status(200);
    let run = server.start_run("p", &json!({})).await;
    assert_eq!(
        server.wait_state("p", &run, "completed").await["outputs"]["v"],
        "two"
    );
    server
        .post("/v1/workflows/p/versions/1/publish", &json!({}))
        .await
        .expect_status(200);
    assert_eq!(
        server.get("/v1/workflows/p").await.expect_status(200).json()["version"],
        1
    );
    server
        .post("/v1/workflows/p/versions/9/publish", &json!({}))
        .await
        .expect_error(404, "not_found", &["version 9"]);

    // `?publish=true` publishes on creation.
    let v3 = v2.replace("two", "three");
    let third = server
        .post_raw("/v1/workflows?publish=true", "application/yaml", v3)
        .await;
    third.expect_status(201);
    assert_eq!(third.json()["active_version"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_run_keeps_its_version_and_plugin() {
    let server = Server::start();
    upload(&server, "tool", "1.0.0", std::fs::read(hostile_wasm()).unwrap()).await;
    let definition = |marker: &str| {
        format!(
            "id: keep\nsteps:\n  - name: Ask\n    plugin: interaction\n    input: {{fields: [{{name: go, type: boolean, default: true}}]}}\n  - {{name: Use, plugin: tool, input: {{mode: ok}}}}\noutputs:\n  result: \"{{{{ steps.Use.output }}}}\"\n  marker: {marker}\n"
        )
    };
    server.create_workflow(&definition("first")).await;
    let id = server.start_run("keep", &json!({})).await;
    server.wait_state("keep", &id, "waiting").await;
    let pinned = server.execution("keep", &id).await["steps"][1]["plugin"].clone();

    // A new version is published and the plugin name now means other bytes (echo's).
    let echo = std::fs::read(concat!(env!("WEFT_PLUGIN_DIR"), "/echo.wasm")).unwrap();
    let replacement = upload(&server, "tool", "2.0.0", echo).await;
    assert_ne!(replacement["digest"], pinned);
    server.create_workflow(&definition("second")).await;
    server
        .post("/v1/workflows/keep/versions/2/publish", &json!({}))
        .await
        .expect_status(200);

    let path = format!("/v1/workflows/keep/executions/{id}/interaction");
    server.post(&path, &json!({})).await.expect_status(204);
    let run = server.wait_state("keep", &id, "completed").await;
    assert_eq!(run["workflow"]["version"], 1);
    assert_eq!(run["steps"][1]["plugin"], pinned);
    assert_eq!(
        run["outputs"]["result"],
        json!({"ok": true}),
        "the run used its pinned plugin"
    );

    // A new run takes the new version and the new bytes (echo returns its input).
    let fresh = server.start_run("keep", &json!({})).await;
    server.wait_state("keep", &fresh, "waiting").await;
    server
        .post(
            &format!("/v1/workflows/keep/executions/{fresh}/interaction"),
            &json!({}),
        )
        .await
        .expect_status(204);
    let run = server.wait_state("keep", &fresh, "completed").await;
    assert_eq!(run["outputs"]["result"], json!({"mode": "ok"}));
    assert_eq!(run["outputs"]["marker"], "second");
}
