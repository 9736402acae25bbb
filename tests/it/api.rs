// The HTTP API through a real `weft serve` on loopback with a real database file: plugins,
// workflows, executions, interactions and signals, in the request shapes of vRO, Keyfactor
// and SecMaster (their documented sample bodies are used verbatim), plus concurrency, a
// server restart and the OpenAPI document.

use crate::common::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Barrier;
use tokio::task::JoinSet;

// --- Sample bodies from the documentation of the systems Weft imitates, verbatim. ---

/// vRO "Answer User Interaction": the request body sample (parameters without values).
const VRO_ANSWER_SAMPLE: &str = r#"{
"executionId": "string",
"parameters": [
{
"name": "string",
"type": "Example types are: SecureString, MimeAttachment, Regexp, Array/VC:VirtualMachine, boolean, string and etc.",
"description": "string",
"scope": "string",
"updated": false,
"encrypt-value": false
}
],
"profilerOptions": {
"enabled": false,
"debuggerEnabled": false,
"tokenReplayEnabled": false
}
}"#;

/// vRO's code sample sends `-d '{}'` (curl's default form content type, despite the header).
const VRO_CURL_BODY: &str = "{}";

/// Keyfactor "POST Workflow Instances Instance ID Signals": approving RequireApproval1.
const KEYFACTOR_SIGNAL: &str = r#"{"SignalKey":"RequireApproval1.ApprovalStatus","Data":{"Approved":"True","Comment":"Approved by API"}}"#;

/// SecMaster "CreateWorkflowInstance": running a workflow instance of the Alert data class.
const SECMASTER_CREATE: &str = r#"{
"command_type" : "ActionInstanceRunCommand",
"action_type" : "workflow",
"action_id" : "446255ce-XXXXXXXXXX-0b4931",
"action_instance_id" : "1111xxxxxxxxxxxxxx111",
"playbook_context" : {
"data_object" : {
"dataclass" : {
"name" : "Alert"
},
"content" : {
"name" : { },
"key" : { }
}
}
}
}"#;

// --- Workflows used below. ---

/// Two echo steps, the second using the first's output.
const ECHO2: &str = r#"
id: echo2
inputs:
  n: {type: integer, default: 1}
steps:
  - name: First
    plugin: echo
    input: {n: "{{ inputs.n }}"}
  - name: Second
    plugin: echo
    input: {n: "{{ steps.First.output.n }}", from: First}
outputs:
  n: "{{ steps.Second.output.n }}"
"#;

/// Logs a greeting, asks for a typed form, then echoes the answer.
const ASK: &str = r#"
id: ask
inputs:
  who: {type: string, default: world}
steps:
  - name: Greet
    plugin: echo
    input: {log: "hello {{ inputs.who }}"}
  - name: Ask
    plugin: interaction
    input:
      prompt: "Which key size for {{ inputs.who }}?"
      fields:
        - {name: size, type: integer, description: RSA key bits, choices: [2048, 4096], default: 2048}
        - {name: approve, type: boolean}
        - {name: note, type: string, required: false}
      assignees: []
      expires_in: 1d
  - name: Done
    plugin: echo
    input: {size: "{{ steps.Ask.output.size }}", approve: "{{ steps.Ask.output.approve }}"}
outputs:
  size: "{{ steps.Done.output.size }}"
  approve: "{{ steps.Done.output.approve }}"
"#;

/// A form whose every field has a default, then an echo.
const DEFAULTS: &str = r#"
id: defaults
steps:
  - name: Confirm
    plugin: interaction
    input:
      fields:
        - {name: size, type: integer, default: 2048}
        - {name: confirmed, type: boolean, default: true}
  - name: After
    plugin: echo
    input: {answer: "{{ steps.Confirm.output }}"}
outputs:
  answer: "{{ steps.After.output.answer }}"
"#;

/// A form with one required field without a default.
const REQUIRED: &str = r#"
id: required
steps:
  - name: Explain
    plugin: interaction
    input:
      fields:
        - {name: reason, type: string}
        - {name: urgent, type: boolean, default: false}
outputs:
  reason: "{{ steps.Explain.output.reason }}"
"#;

/// An approval answered by a Keyfactor signal, then a form answered with vRO's body.
const APPROVE_THEN_CONFIRM: &str = r#"
id: approve-then-confirm
steps:
  - name: RequireApproval1
    plugin: approval
    input: {prompt: "Deploy?", min_approvals: 1, deny_limit: 1}
  - name: ConfirmDetails
    plugin: interaction
    input:
      prompt: "Confirm the details"
      fields:
        - {name: hostname, type: string}
        - {name: replicas, type: integer}
  - name: Apply
    plugin: echo
    input:
      approved_by: "{{ steps.RequireApproval1.output.approvals | map(attribute='by') | list }}"
      hostname: "{{ steps.ConfirmDetails.output.hostname }}"
      replicas: "{{ steps.ConfirmDetails.output.replicas }}"
outputs:
  result: "{{ steps.Apply.output }}"
"#;

/// An approval that needs all three of alice, bob and carol.
const THREE_APPROVERS: &str = r#"
id: three-approvers
steps:
  - name: RequireApproval1
    plugin: approval
    input: {approvers: [alice, bob, carol], min_approvals: 3, deny_limit: 1}
outputs:
  approvals: "{{ steps.RequireApproval1.output.approvals }}"
"#;

/// The repository's example: build a request, wait for approval, issue.
const CERTIFICATE_REQUEST: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/examples/certificate-request.yaml"
));

// --- Small helpers. ---

/// A vRO ExecutionContext parameter.
fn param(name: &str, vro_type: &str, value: Value) -> Value {
    json!({"name": name, "type": vro_type, "value": value})
}

/// vRO's ExecutionContext with these parameters.
fn vro(parameters: Vec<Value>) -> Value {
    json!({"parameters": parameters})
}

/// The ids of a listing's items.
fn ids(listing: &Value) -> Vec<String> {
    listing["items"]
        .as_array()
        .unwrap_or_else(|| panic!("not a listing: {listing:#}"))
        .iter()
        .map(run_id)
        .collect()
}

/// `name` of every item of a listing.
fn names(listing: &Value, key: &str) -> Vec<String> {
    listing["items"]
        .as_array()
        .unwrap_or_else(|| panic!("not a listing: {listing:#}"))
        .iter()
        .map(|i| i[key].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn interaction_path(workflow: &str, id: &str) -> String {
    format!("{}/interaction", Api::execution_path(workflow, id))
}

fn signal_path(id: &str) -> String {
    format!("/v1/instances/{id}/signals")
}

/// Starts a run and waits until it waits for a person.
async fn start_waiting(api: &Api, workflow: &str, body: &Value) -> String {
    let id = api.start_run(workflow, body).await;
    api.wait_state(workflow, &id, "waiting").await;
    id
}

// --- Basics. ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_unknown_routes_and_wrong_methods_answer_json() {
    let server = Server::start_on(BACKEND);
    let health = server.get("/healthz").await;
    health.expect_status(200);
    assert_eq!(health.json()["status"], "ok");

    // `/` is the browser UI's; everything else unknown is a JSON 404.
    for path in ["/v1/nope", "/nope", "/v1/workflows/x/executions/y/nope"] {
        server
            .get(path)
            .await
            .expect_error(404, "not_found", &["no such endpoint"]);
    }
    let put = server
        .send(server.request(Method::PUT, "/v1/workflows").body("{}"))
        .await;
    put.expect_error(405, "method_not_allowed", &[]);
    let patch = server.send(server.request(Method::PATCH, "/healthz")).await;
    patch.expect_error(405, "method_not_allowed", &[]);
    let post = server.post("/v1/interactions", &json!({})).await;
    post.expect_error(405, "method_not_allowed", &[]);

    // Unknown things under known routes are 404 JSON too.
    server
        .get("/v1/workflows/nope")
        .await
        .expect_error(404, "not_found", &["nope"]);
    server
        .get("/v1/workflows/nope/executions/0190f0e4-0000-7000-8000-000000000000")
        .await
        .expect_error(404, "not_found", &[]);
    server
        .get("/v1/workflows/nope/executions/not-a-run-id")
        .await
        .expect_error(404, "not_found", &[]);
    server
        .post(
            &signal_path("0190f0e4-0000-7000-8000-000000000000"),
            &json!({"SignalKey": "A.B"}),
        )
        .await
        .expect_error(404, "not_found", &[]);
}

/// Every route with its method. The router is built from the document, so this list is the
/// check that no route went missing from both.
const ROUTES: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/v1/openapi.json"),
    ("get", "/metrics"),
    ("post", "/v1/events"),
    ("post", "/v1/executions/purge"),
    ("post", "/v1/executions/resume"),
    ("post", "/v1/schedules"),
    ("get", "/v1/schedules"),
    ("get", "/v1/schedules/{id}"),
    ("delete", "/v1/schedules/{id}"),
    ("post", "/v1/schedules/{id}/pause"),
    ("post", "/v1/schedules/{id}/resume"),
    ("post", "/v1/plugins"),
    ("get", "/v1/plugins"),
    ("get", "/v1/plugins/{name}"),
    ("delete", "/v1/plugins/{name}"),
    ("post", "/v1/workflows"),
    ("get", "/v1/workflows"),
    ("get", "/v1/workflows/{id}"),
    ("delete", "/v1/workflows/{id}"),
    ("get", "/v1/workflows/{id}/versions"),
    ("get", "/v1/workflows/{id}/versions/{version}"),
    ("post", "/v1/workflows/{id}/executions"),
    ("get", "/v1/workflows/{id}/executions"),
    ("get", "/v1/executions"),
    ("get", "/v1/workflows/{id}/executions/{eid}"),
    ("delete", "/v1/workflows/{id}/executions/{eid}"),
    ("get", "/v1/workflows/{id}/executions/{eid}/state"),
    ("delete", "/v1/workflows/{id}/executions/{eid}/state"),
    ("get", "/v1/workflows/{id}/executions/{eid}/logs"),
    ("get", "/v1/workflows/{id}/executions/{eid}/logs/export"),
    ("get", "/v1/workflows/{id}/executions/{eid}/statistics"),
    ("post", "/v1/workflows/{id}/executions/{eid}/restart"),
    ("post", "/v1/workflows/{id}/executions/{eid}/retry"),
    ("get", "/v1/workflows/{id}/executions/{eid}/interaction"),
    ("post", "/v1/workflows/{id}/executions/{eid}/interaction"),
    ("delete", "/v1/workflows/{id}/executions/{eid}/interaction"),
    ("get", "/v1/interactions"),
    ("post", "/v1/instances/{eid}/signals"),
    ("get", "/v1/executions/{eid}"),
    ("post", "/v1/tokens"),
    ("get", "/v1/tokens"),
    ("delete", "/v1/tokens/{id}"),
    ("get", "/v1/audit"),
    ("post", "/v1/workflows/{id}/versions/{version}/publish"),
    ("get", "/v1/workflows/{id}/versions/{a}/diff/{b}"),
    ("post", "/v1/workflows/export"),
    ("post", "/v1/workflows/import"),
    ("post", "/v1/actions/targets"),
    ("get", "/v1/actions/targets"),
    ("get", "/v1/actions/targets/{id}"),
    ("put", "/v1/actions/targets/{id}"),
    ("delete", "/v1/actions/targets/{id}"),
    ("put", "/v1/actions/executions"),
    ("post", "/v1/actions/executions/search"),
    ("get", "/v1/actions/conditions"),
    ("get", "/v1/actions/log"),
    ("get", "/v1/actions/outbox"),
    ("get", "/v1/grants"),
    ("get", "/v1/grants/{plugin}"),
    ("put", "/v1/grants/{plugin}"),
    ("delete", "/v1/grants/{plugin}"),
    ("get", "/v1/runners"),
];

/// Every `$ref` string anywhere in `value`.
fn refs<'a>(value: &'a Value, found: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("$ref", Value::String(r)) => found.push(r),
                    _ => refs(v, found),
                }
            }
        }
        Value::Array(list) => list.iter().for_each(|v| refs(v, found)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_every_route() {
    let server = Server::start_on(BACKEND);
    let doc = server.get("/v1/openapi.json").await.expect_status(200).json();
    let version = doc["openapi"].as_str().expect("an `openapi` version string");
    assert!(version.starts_with("3."), "openapi {version}");
    assert_eq!(doc["info"]["title"], "Weft");
    assert!(doc["info"]["version"].is_string(), "{:#}", doc["info"]);
    let paths = doc["paths"].as_object().expect("`paths` is an object");

    for (method, path) in ROUTES {
        let operation = &paths
            .get(*path)
            .unwrap_or_else(|| panic!("{path} is not in the document's paths: {:?}", paths.keys()))[method];
        assert!(operation.is_object(), "{method} {path} is not documented");
        let responses = operation["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{method} {path} has no responses"));
        assert!(!responses.is_empty(), "{method} {path} has no responses");
        for (status, response) in responses {
            assert!(
                status.len() == 3 && status.chars().all(|c| c.is_ascii_digit()),
                "{method} {path}: response key {status:?}"
            );
            assert!(response["description"].is_string(), "{method} {path} {status}");
        }
        // Every path parameter is declared.
        let declared: HashSet<&str> = operation["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "path")
            .filter_map(|p| p["name"].as_str())
            .collect();
        for segment in path.split(['{', '}']).skip(1).step_by(2) {
            assert!(
                declared.contains(segment),
                "{method} {path}: path parameter {segment} is not declared"
            );
        }
    }
    let documented: usize = paths
        .values()
        .map(|item| {
            ["get", "post", "put", "patch", "delete"]
                .iter()
                .filter(|m| item.get(**m).is_some())
                .count()
        })
        .sum();
    assert_eq!(
        documented,
        ROUTES.len(),
        "operations documented: {:?}",
        paths.keys()
    );

    // Every reference resolves.
    let mut found = Vec::new();
    refs(&doc, &mut found);
    for reference in found {
        let name = reference
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected $ref {reference}"));
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "$ref {reference} does not resolve"
        );
    }

    // The document matches the router: every documented operation is routed (the answer is
    // not the fallback's 404 nor 405), even with made-up ids.
    for (method, path) in ROUTES {
        let concrete = path
            .replace("{name}", "nope")
            .replace("{version}", "1")
            .replace("{id}", "nope")
            .replace("{eid}", "0190f0e4-0000-7000-8000-000000000000");
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("a method");
        let answer = server
            .send(server.request(method.clone(), &concrete).body("{}"))
            .await;
        assert_ne!(answer.status, 405, "{method} {concrete}: {}", answer.text);
        assert!(
            !answer.text.contains("no such endpoint"),
            "{method} {concrete} is not routed: {}",
            answer.text
        );
        assert!(answer.status < 500, "{method} {concrete}: {}", answer.text);
    }
}

// --- Plugins. ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_upload_list_and_delete() {
    let server = Server::start_on(BACKEND);
    let hostile = std::fs::read(hostile_wasm()).expect("hostile.wasm was built");
    let upload = "/v1/plugins?name=hostile&version=1.0.0";

    let created = server.post_raw(upload, "application/wasm", hostile.clone()).await;
    created.expect_status(201);
    let meta = created.json();
    assert_eq!(meta["name"], "hostile");
    assert_eq!(meta["version"], "1.0.0");
    assert_eq!(meta["world"], "step");
    assert_eq!(meta["size"], hostile.len());
    let digest = meta["digest"].as_str().expect("a digest").to_owned();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 7 + 64,
        "{digest}"
    );

    // The same bytes again: accepted, nothing new.
    let again = server.post_raw(upload, "application/wasm", hostile.clone()).await;
    again.expect_status(200);
    assert_eq!(again.json()["digest"], digest.as_str());

    // Other (valid) bytes under the same name and version.
    let echo = std::fs::read(std::path::Path::new(PLUGIN_DIR).join("echo.wasm")).expect("echo.wasm");
    server
        .post_raw(upload, "application/wasm", echo)
        .await
        .expect_error(409, "conflict", &["hostile@1.0.0", "new version"]);

    // Not WebAssembly, a core module, a built-in's name, no name.
    let garbage = "/v1/plugins?name=garbage&version=1";
    server
        .post_raw(garbage, "application/wasm", "hello, world")
        .await
        .expect_error(400, "invalid_plugin", &["not a WebAssembly file"]);
    server
        .post_raw(garbage, "application/wasm", &b"\0asm\x01\0\0\0"[..])
        .await
        .expect_error(400, "invalid_plugin", &["core WebAssembly module"]);
    server
        .post_raw(garbage, "application/wasm", Vec::new())
        .await
        .expect_error(400, "invalid_plugin", &[]);
    server
        .post_raw(
            "/v1/plugins?name=echo&version=9.9.9",
            "application/wasm",
            hostile.clone(),
        )
        .await
        .expect_error(400, "invalid_plugin", &["built-in"]);
    server
        .post_raw("/v1/plugins?name=nameless", "application/wasm", hostile.clone())
        .await
        .expect_error(400, "invalid_request", &["version"]);
    // Nothing was stored by the refused uploads.
    server
        .get("/v1/plugins/garbage")
        .await
        .expect_error(404, "not_found", &["garbage"]);

    // The list: built-ins and the upload.
    let list = server.get("/v1/plugins").await.expect_status(200).json();
    let items = list["items"].as_array().expect("items");
    for builtin in ["approval", "interaction", "transform", "echo", "fail", "sleep"] {
        let item = items
            .iter()
            .find(|i| i["name"] == builtin)
            .unwrap_or_else(|| panic!("built-in {builtin} is not listed: {list:#}"));
        assert_eq!(item["builtin"], true, "{item}");
        assert_eq!(item["world"], "step", "{item}");
    }
    let uploaded: Vec<&Value> = items.iter().filter(|i| i["name"] == "hostile").collect();
    assert_eq!(uploaded.len(), 1, "{list:#}");
    assert_eq!(uploaded[0]["builtin"], false);
    assert_eq!(uploaded[0]["digest"], digest.as_str());

    let one = server.get("/v1/plugins/hostile").await.expect_status(200).json();
    assert_eq!(one["name"], "hostile");
    assert_eq!(names(&one, "version"), ["1.0.0"]);
    let echo = server.get("/v1/plugins/echo").await.expect_status(200).json();
    assert_eq!(echo["items"][0]["builtin"], true);
    server
        .get("/v1/plugins/nope")
        .await
        .expect_error(404, "not_found", &["nope"]);

    // A workflow uses it: it runs, and the plugin cannot be deleted meanwhile.
    server
        .create_workflow(
            "id: uses-hostile\nsteps:\n  - {name: Behave, plugin: hostile@1.0.0, input: {mode: ok}}\noutputs:\n  result: \"{{ steps.Behave.output }}\"\n",
        )
        .await;
    let run = server
        .post("/v1/workflows/uses-hostile/executions?wait=true", &json!({}))
        .await
        .expect_status(200)
        .json();
    assert_eq!(state(&run), "completed", "{run:#}");
    assert_eq!(run["outputs"], json!({"result": {"ok": true}}));
    server
        .delete("/v1/plugins/hostile@1.0.0")
        .await
        .expect_error(409, "conflict", &["uses-hostile"]);
    server
        .delete("/v1/workflows/uses-hostile")
        .await
        .expect_status(204);
    let deleted = server.delete("/v1/plugins/hostile@1.0.0").await;
    deleted.expect_status(204);
    assert!(deleted.text.is_empty(), "{}", deleted.text);
    server
        .delete("/v1/plugins/hostile@1.0.0")
        .await
        .expect_error(404, "not_found", &["hostile@1.0.0"]);
    server
        .get("/v1/plugins/hostile")
        .await
        .expect_error(404, "not_found", &[]);
    server
        .delete("/v1/plugins/hostile@2.0.0")
        .await
        .expect_error(404, "not_found", &[]);
    server
        .delete("/v1/plugins/echo@0.1.0")
        .await
        .expect_error(409, "conflict", &["built in"]);
    server
        .delete("/v1/plugins/hostile")
        .await
        .expect_error(400, "invalid_request", &["name@version"]);

    // After deletion it can be uploaded again.
    server
        .post_raw(upload, "application/wasm", hostile)
        .await
        .expect_status(201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_uploads_of_other_bytes_under_one_version_conflict() {
    let server = Server::start_on(BACKEND);
    let hostile = std::fs::read(hostile_wasm()).expect("hostile.wasm");
    let echo = std::fs::read(std::path::Path::new(PLUGIN_DIR).join("echo.wasm")).expect("echo.wasm");
    let barrier = Arc::new(Barrier::new(2));
    let mut uploads = JoinSet::new();
    for bytes in [hostile, echo] {
        let (api, barrier) = (server.api(), barrier.clone());
        uploads.spawn(async move {
            barrier.wait().await;
            api.post_raw("/v1/plugins?name=twin&version=1.0.0", "application/wasm", bytes)
                .await
        });
    }
    let answers = uploads.join_all().await;
    let mut statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    statuses.sort();
    assert_eq!(statuses, [201, 409], "{answers:#?}");
    let winner = answers.iter().find(|a| a.status == 201).expect("a winner").json();
    let stored = server.get("/v1/plugins/twin").await.expect_status(200).json();
    assert_eq!(stored["items"].as_array().map(Vec::len), Some(1), "{stored:#}");
    assert_eq!(stored["items"][0]["digest"], winner["digest"], "{stored:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_are_refused_with_413() {
    let server = Server::on(Weft::on(BACKEND), &["--body-limit-mb", "1"]);
    let api = server.unpooled();
    let big = vec![b'x'; 2 << 20];
    for (path, content_type) in too_large_posts() {
        let answer = api.post_raw(path, content_type, big.clone()).await;
        answer.expect_status(413);
        assert!(answer.text.contains("limit"), "{}", answer.text);
    }
    // Under the limit, the body is read and judged on its content.
    server
        .post_raw(
            "/v1/plugins?name=big&version=1",
            "application/wasm",
            vec![b'x'; 900 << 10],
        )
        .await
        .expect_error(400, "invalid_plugin", &["not a WebAssembly file"]);
    // The server is fine afterwards.
    server.get("/healthz").await.expect_status(200);
}

/// Bodies posted over the limit in the 413 tests: (path, content type).
fn too_large_posts() -> [(&'static str, &'static str); 5] {
    [
        ("/v1/plugins?name=big&version=1", "application/wasm"),
        ("/v1/workflows", "application/yaml"),
        ("/v1/workflows/any/executions", "application/json"),
        (
            "/v1/workflows/any/executions/0190f0e4-0000-7000-8000-000000000000/interaction",
            "application/json",
        ),
        (
            "/v1/workflows/any/executions/0190f0e4-0000-7000-8000-000000000000/restart",
            "application/json",
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_get_a_json_error() {
    let server = Server::on(Weft::on(BACKEND), &["--body-limit-mb", "1"]);
    let api = server.unpooled();
    let big = vec![b'x'; 2 << 20];
    for (path, content_type) in too_large_posts() {
        api.post_raw(path, content_type, big.clone())
            .await
            .expect_error(413, "too_large", &["limit"]);
    }
}

// --- Workflows. ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflows_are_versioned_from_yaml_and_json() {
    let server = Server::start_on(BACKEND);
    let yaml = "id: wf\ndescription: first\nsteps:\n  - {name: One, plugin: echo, input: {n: 1}}\n";

    let first = server.create_workflow(yaml).await;
    assert_eq!(first["id"], "wf");
    assert_eq!(first["version"], 1);
    let digest1 = first["digest"].clone();
    assert!(
        digest1.as_str().is_some_and(|d| d.starts_with("sha256:")),
        "{first}"
    );

    // Without a version, the next one is assigned.
    let second = server.create_workflow(yaml).await;
    assert_eq!(second["version"], 2);

    // The same content under an existing version: accepted again.
    let same = server
        .post_raw(
            "/v1/workflows",
            "text/yaml; charset=utf-8",
            format!("version: 1\n{yaml}"),
        )
        .await;
    same.expect_status(200);
    let same = same.json();
    assert_eq!(
        (&same["id"], &same["version"], &same["digest"]),
        (&json!("wf"), &json!(1), &digest1)
    );
    assert_eq!(same["status"], "unchanged");
    // JSON of the same definition is the same content.
    let as_json = json!({"id": "wf", "version": 1, "description": "first",
        "steps": [{"name": "One", "plugin": "echo", "input": {"n": 1}}]});
    let same = server.post("/v1/workflows", &as_json).await;
    same.expect_status(200);
    assert_eq!(same.json()["digest"], digest1);

    // Other content under a published version becomes a new draft; the published one stays.
    let mut other = as_json.clone();
    other["steps"][0]["input"]["n"] = json!(2);
    let draft = server.post("/v1/workflows", &other).await;
    draft.expect_status(201);
    let draft = draft.json();
    assert_eq!(
        (&draft["version"], &draft["status"], &draft["published"]),
        (&json!(3), &json!("new_draft"), &json!(false))
    );
    assert_eq!(draft["active_version"], 1);

    // JSON with an explicit new version, then the next after it.
    other["version"] = json!(5);
    let fifth = server.post("/v1/workflows", &other).await;
    fifth.expect_status(201);
    assert_eq!(fifth.json()["version"], 5);
    other.as_object_mut().expect("an object").remove("version");
    other["description"] = json!("sixth");
    let sixth = server.post("/v1/workflows", &other).await;
    sixth.expect_status(201);
    assert_eq!(sixth.json()["version"], 6);

    // Drafts wait for publishing; the active version is what GET and new runs use.
    assert_eq!(
        server.get("/v1/workflows/wf").await.expect_status(200).json()["version"],
        1
    );
    server
        .post("/v1/workflows/wf/versions/6/publish", &json!({}))
        .await
        .expect_status(200);

    // Reading.
    let list = server.get("/v1/workflows").await.expect_status(200).json();
    let item = &list["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["id"] == "wf")
        .unwrap_or_else(|| panic!("wf is not listed: {list:#}"));
    assert_eq!(item["latest_version"], 6);
    assert_eq!(item["description"], "sixth");

    let latest = server.get("/v1/workflows/wf").await.expect_status(200).json();
    assert_eq!(latest["version"], 6);
    assert_eq!(latest["definition"]["id"], "wf");
    assert_eq!(latest["definition"]["steps"][0]["input"], json!({"n": 2}));

    let versions = server
        .get("/v1/workflows/wf/versions")
        .await
        .expect_status(200)
        .json();
    let listed: Vec<u64> = versions["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|v| v["version"].as_u64().expect("a version"))
        .collect();
    assert_eq!(listed, [1, 2, 3, 5, 6]);

    let v1 = server
        .get("/v1/workflows/wf/versions/1")
        .await
        .expect_status(200)
        .json();
    assert_eq!(v1["version"], 1);
    assert_eq!(v1["digest"], digest1);
    assert_eq!(v1["definition"]["steps"][0]["input"], json!({"n": 1}));
    server
        .get("/v1/workflows/wf/versions/4")
        .await
        .expect_error(404, "not_found", &["version 4"]);
    server
        .get("/v1/workflows/wf/versions/latest")
        .await
        .expect_error(400, "invalid_request", &[]);
    server
        .get("/v1/workflows/nope/versions")
        .await
        .expect_error(404, "not_found", &["nope"]);

    // Deleting removes every version.
    server.delete("/v1/workflows/wf").await.expect_status(204);
    server
        .get("/v1/workflows/wf")
        .await
        .expect_error(404, "not_found", &[]);
    server
        .get("/v1/workflows/wf/versions/1")
        .await
        .expect_error(404, "not_found", &[]);
    server
        .delete("/v1/workflows/wf")
        .await
        .expect_error(404, "not_found", &[]);
    let list = server.get("/v1/workflows").await.expect_status(200).json();
    assert!(!names(&list, "id").contains(&"wf".to_owned()), "{list:#}");
}

/// Checks a refused definition: 400 with a JSON error whose `problems` list is not empty and
/// whose message contains every one of `needles`. (The code is checked in
/// [`definition_problems_have_the_invalid_definition_code`].)
#[track_caller]
fn invalid(answer: &Resp, needles: &[&str]) -> Value {
    answer.expect_status(400);
    let body = answer.json();
    assert!(body["code"].is_string(), "{body:#}");
    let message = body["message"].as_str().expect("a message");
    for needle in needles {
        assert!(message.contains(needle), "{needle:?} not in {message}");
    }
    let problems = body["problems"].as_array().expect("`problems` is a list");
    assert!(!problems.is_empty(), "{body:#}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn definition_problems_have_the_invalid_definition_code() {
    let server = Server::start_on(BACKEND);
    for body in [
        json!({"id": "x", "steps": []}),
        json!({"id": "x", "steps": [{"name": "A", "plugin": "nosuchplugin"}]}),
        json!({"id": "bad id!", "steps": [{"name": "A", "plugin": "echo"}]}),
    ] {
        server
            .post("/v1/workflows", &body)
            .await
            .expect_error(400, "invalid_definition", &[]);
    }
    // For comparison: these already have that code.
    server
        .post("/v1/workflows", &json!({"id": "x", "steps": [], "bogus": 1}))
        .await
        .expect_error(400, "invalid_definition", &["bogus"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_posts_without_a_version_get_distinct_versions() {
    const CLIENTS: usize = 10;
    let server = Server::start_on(BACKEND);
    let barrier = Arc::new(Barrier::new(CLIENTS));
    let mut posts = JoinSet::new();
    for i in 0..CLIENTS {
        let (api, barrier) = (server.api(), barrier.clone());
        posts.spawn(async move {
            let yaml = format!("id: racy\nsteps:\n  - {{name: One, plugin: echo, input: {{client: {i}}}}}\n");
            barrier.wait().await;
            let answer = api.post_raw("/v1/workflows", "application/yaml", yaml).await;
            (i, answer)
        });
    }
    let mut created = Vec::new();
    for (i, answer) in posts.join_all().await {
        match answer.status {
            201 => {
                let body = answer.json();
                created.push((
                    body["version"].as_u64().expect("a version"),
                    i,
                    body["digest"].clone(),
                ));
            }
            // Losing the race may be refused, but not silently.
            409 => {}
            _ => panic!("client {i}: {} {}", answer.status, answer.text),
        }
    }
    created.sort_by_key(|c| c.0);
    let versions: Vec<u64> = created.iter().map(|c| c.0).collect();
    let unique: BTreeSet<u64> = versions.iter().copied().collect();
    assert_eq!(
        unique.len(),
        versions.len(),
        "one version was given to two clients: {created:?}"
    );
    // Each created version holds what its client sent.
    for (version, i, digest) in &created {
        let stored = server
            .get(&format!("/v1/workflows/racy/versions/{version}"))
            .await
            .expect_status(200)
            .json();
        assert_eq!(&stored["digest"], digest, "version {version} of client {i}");
        assert_eq!(stored["definition"]["steps"][0]["input"]["client"], *i);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_definitions_report_every_problem_and_never_500() {
    let server = Server::start_on(BACKEND);
    let bad = r#"
id: "bad id!"
inputs:
  count: {type: integer, default: many}
steps:
  - name: One
    plugin: nosuchplugin
  - name: One
    plugin: echo
    needs: [Missing]
    input: {x: "{{ steps.Nope.output }}"}
    retry: {max_attempts: 0}
outputs:
  y: "{{ inputs.undeclared }}"
"#;
    let body = invalid(
        &server.post_raw("/v1/workflows", "application/yaml", bad).await,
        &[],
    );
    let problems = body["problems"].as_array().expect("`problems` is a list");
    let paths: Vec<&str> = problems
        .iter()
        .map(|p| {
            assert!(
                p["message"].as_str().is_some_and(|m| !m.is_empty()),
                "a problem without a message: {p}"
            );
            p["path"].as_str().expect("a problem has a path")
        })
        .collect();
    for expected in [
        "id",
        "inputs.count.default",
        "steps[0].plugin",
        "steps[1].name",
        "steps[1].needs[0]",
        "steps[1].retry.max_attempts",
        "outputs",
    ] {
        assert!(
            paths.iter().any(|p| p.starts_with(expected)),
            "no problem at {expected}: {body:#}"
        );
    }
    assert!(
        paths.iter().any(|p| p.starts_with("steps[1].input")),
        "no problem at steps[1].input: {body:#}"
    );
    // The message names every problem too.
    let message = body["message"].as_str().expect("a message");
    for needle in ["nosuchplugin", "Missing", "duplicate step name", "undeclared"] {
        assert!(message.contains(needle), "{needle:?} not in {message}");
    }

    // Shape errors: with their path.
    let unknown_field = server
        .post_raw(
            "/v1/workflows",
            "application/yaml",
            "id: x\nsteps: []\nbogus: 1\n",
        )
        .await
        .expect_error(400, "invalid_definition", &["bogus"]);
    assert!(unknown_field["problems"].is_array(), "{unknown_field:#}");
    let wrong_type = server
        .post(
            "/v1/workflows",
            &json!({"id": "x", "steps": [{"name": "A", "plugin": "echo", "retry": {"max_attempts": "three"}}]}),
        )
        .await
        .expect_error(400, "invalid_definition", &[]);
    assert!(
        wrong_type["problems"][0]["path"]
            .as_str()
            .is_some_and(|p| p.contains("steps[0].retry")),
        "{wrong_type:#}"
    );
    invalid(
        &server
            .post("/v1/workflows", &json!({"id": "x", "steps": []}))
            .await,
        &["at least one step"],
    );

    // Neither YAML nor JSON, or not a definition at all: 400, never 500.
    let malformed: &[(&str, &[u8])] = &[
        ("application/yaml", b"id: [unclosed\nsteps: {"),
        ("application/yaml", b"\tid: x\n  - : :"),
        ("application/json", b"{\"id\": \"x\", \"steps\": ["),
        ("application/json", b"{\"id\": \"x\",}"),
        ("application/json", b""),
        ("application/json", b"null"),
        ("application/json", b"[1, 2, 3]"),
        ("application/yaml", b"just a string"),
        ("application/yaml", b"\xff\xfe\x00binary"),
        ("application/yaml", b"id: x\nsteps: *nowhere\n"),
        ("application/yaml", b"a: &a [*a]\n"),
    ];
    for (content_type, body) in malformed {
        let answer = server
            .post_raw("/v1/workflows", content_type, body.to_vec())
            .await;
        answer.expect_status(400);
        let error = answer.json();
        assert!(
            error["code"].is_string() && error["message"].is_string(),
            "{content_type} {:?}: {error:#}",
            String::from_utf8_lossy(body)
        );
    }

    // Not YAML or JSON by content type.
    let yaml = "id: typed\nsteps: [{name: One, plugin: echo}]\n";
    for content_type in [
        "text/plain",
        "application/xml",
        "application/x-www-form-urlencoded",
    ] {
        server
            .post_raw("/v1/workflows", content_type, yaml)
            .await
            .expect_error(415, "unsupported_media_type", &["application/yaml"]);
    }
    server
        .send(server.request(Method::POST, "/v1/workflows").body(yaml))
        .await
        .expect_error(415, "unsupported_media_type", &[]);
    // Nothing was stored by any of this.
    let list = server.get("/v1/workflows").await.expect_status(200).json();
    assert_eq!(list["items"], json!([]), "{list:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_stays_on_the_version_it_started_with() {
    let server = Server::start_on(BACKEND);
    let version = |marker: &str| {
        format!(
            "id: pinned\nsteps:\n  - name: Ask\n    plugin: interaction\n    input: {{fields: [{{name: ok, type: boolean, default: true}}]}}\n  - name: Mark\n    plugin: echo\n    input: {{marker: {marker}}}\noutputs:\n  marker: \"{{{{ steps.Mark.output.marker }}}}\"\n"
        )
    };
    assert_eq!(server.create_workflow(&version("v1")).await["version"], 1);
    let old = start_waiting(&server, "pinned", &json!({})).await;

    assert_eq!(server.create_workflow(&version("v2")).await["version"], 2);
    server
        .post("/v1/workflows/pinned/versions/2/publish", &json!({}))
        .await
        .expect_status(200);
    let latest = server.get("/v1/workflows/pinned").await.expect_status(200).json();
    assert_eq!(latest["version"], 2);

    server
        .post(&interaction_path("pinned", &old), &json!({}))
        .await
        .expect_status(204);
    let run = server.wait_state("pinned", &old, "completed").await;
    assert_eq!(run["workflow"]["version"], 1, "{run:#}");
    assert_eq!(run["outputs"], json!({"marker": "v1"}));

    // New runs take the latest version, or the one asked for.
    let new = start_waiting(&server, "pinned", &json!({})).await;
    let explicit = server
        .post("/v1/workflows/pinned/executions?version=1", &json!({}))
        .await
        .expect_status(202)
        .json();
    let explicit = run_id(&explicit);
    server.wait_state("pinned", &explicit, "waiting").await;
    for (id, marker) in [(&new, "v2"), (&explicit, "v1")] {
        server
            .post(&interaction_path("pinned", id), &json!({}))
            .await
            .expect_status(204);
        let run = server.wait_state("pinned", id, "completed").await;
        assert_eq!(run["outputs"]["marker"], marker, "{run:#}");
    }
    let listing = server
        .get("/v1/workflows/pinned/executions")
        .await
        .expect_status(200)
        .json();
    let versions: Vec<(String, u64)> = listing["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| (run_id(i), i["version"].as_u64().expect("a version")))
        .collect();
    assert_eq!(versions, [(explicit, 1), (new, 2), (old, 1)]);
    server
        .post("/v1/workflows/pinned/executions?version=7", &json!({}))
        .await
        .expect_error(404, "not_found", &["version 7"]);
}

// --- Starting runs. ---

/// One input of every vRO type, and an echo that shows what arrived.
const TYPED_INPUTS: &str = r#"
id: typed-inputs
inputs:
  cn: {type: string}
  count: {type: integer}
  ratio: {type: number}
  enabled: {type: boolean}
  sans: {type: json}
  labels: {type: json}
  password: {type: secure-string}
steps:
  - name: Show
    plugin: echo
    input:
      cn: "{{ inputs.cn }}"
      count: "{{ inputs.count }}"
      ratio: "{{ inputs.ratio }}"
      enabled: "{{ inputs.enabled }}"
      sans: "{{ inputs.sans }}"
      labels: "{{ inputs.labels }}"
      password_length: "{{ inputs.password | length }}"
outputs:
  shown: "{{ steps.Show.output }}"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_start_from_vro_execution_contexts() {
    let server = Server::start_on(BACKEND);
    server.create_workflow(TYPED_INPUTS).await;
    let secret = "s3cret-passw0rd";

    // vRO's typed wrappers, with the envelope's other keys.
    let mut body = vro(vec![
        param("cn", "string", json!({"string": {"value": "web01.example.com"}})),
        param("count", "number", json!({"number": {"value": 3}})),
        param("ratio", "number", json!({"number": {"value": 0.5}})),
        param("enabled", "boolean", json!({"boolean": {"value": true}})),
        param(
            "sans",
            "Array/string",
            json!({"array": {"elements": [{"string": {"value": "a.example.com"}}, {"string": {"value": "b.example.com"}}]}}),
        ),
        param(
            "labels",
            "Properties",
            json!({"properties": {"property": [
                {"key": "env", "value": {"string": {"value": "prod"}}},
                {"key": "tier", "value": {"number": {"value": 1}}}
            ]}}),
        ),
        param(
            "password",
            "SecureString",
            json!({"secure-string": {"value": secret}}),
        ),
    ]);
    body["executionId"] = json!("ignored");
    body["profilerOptions"] =
        json!({"enabled": false, "debuggerEnabled": false, "tokenReplayEnabled": false});
    let started = server
        .send(
            server
                .request(Method::POST, "/v1/workflows/typed-inputs/executions")
                .header(USER, "dana")
                .json(&body),
        )
        .await;
    started.expect_status(202);
    let answer = started.json();
    let id = run_id(&answer);
    let location = format!("/v1/workflows/typed-inputs/executions/{id}");
    assert_eq!(started.header("location"), Some(location.as_str()));
    assert!(
        ["pending", "running", "completed"].contains(&state(&answer)),
        "{answer:#}"
    );

    let run = server.wait_state("typed-inputs", &id, "completed").await;
    let expected = json!({
        "cn": "web01.example.com", "count": 3, "ratio": 0.5, "enabled": true,
        "sans": ["a.example.com", "b.example.com"], "labels": {"env": "prod", "tier": 1},
    });
    let mut shown = expected.clone();
    shown["password_length"] = json!(secret.len());
    assert_eq!(run["outputs"], json!({"shown": shown}), "{run:#}");
    let mut inputs = expected;
    inputs["password"] = json!("********");
    assert_eq!(run["inputs"], inputs, "the secure input is masked");
    assert_eq!(run["started_by"], "dana");
    let text = server.get(&Api::execution_path("typed-inputs", &id)).await.text;
    assert!(!text.contains(secret), "the secret is shown: {text}");

    // Plain values (text for numbers and booleans is converted) and `{"input": {...}}`.
    let plain = vro(vec![
        param("cn", "string", json!("web02")),
        param("count", "number", json!("7")),
        param("ratio", "number", json!(2)),
        param("enabled", "boolean", json!("false")),
        param("sans", "Array/string", json!(["c"])),
        param("labels", "Properties", json!({"properties": {"a": "b"}})),
        param("password", "SecureString", json!("pw")),
        json!({"name": "unset", "type": "string"}),
    ]);
    let input = json!({"input": {"cn": "web03", "count": 1, "ratio": 1.5, "enabled": true,
        "sans": [], "labels": {}, "password": "pw"}});
    for (body, cn, count) in [(plain, "web02", 7), (input, "web03", 1)] {
        let run = server
            .post("/v1/workflows/typed-inputs/executions?wait=true", &body)
            .await
            .expect_status(200)
            .json();
        assert_eq!(state(&run), "completed", "{run:#}");
        assert_eq!(run["outputs"]["shown"]["cn"], cn);
        assert_eq!(run["outputs"]["shown"]["count"], count);
        assert_eq!(run["inputs"]["password"], "********");
        assert_eq!(run["started_by"], "anonymous");
    }

    // Wrong inputs: every problem with its path.
    let wrong = server
        .post(
            "/v1/workflows/typed-inputs/executions",
            &json!({"input": {"cn": "x", "count": "many", "bogus": 1}}),
        )
        .await
        .expect_error(400, "invalid_input", &[]);
    let paths: BTreeSet<&str> = wrong["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .filter_map(|p| p["path"].as_str())
        .collect();
    for path in [
        "inputs.count",
        "inputs.bogus",
        "inputs.ratio",
        "inputs.enabled",
        "inputs.password",
    ] {
        assert!(paths.contains(path), "no problem at {path}: {wrong:#}");
    }
    // Bodies that are not a start request.
    let path = "/v1/workflows/typed-inputs/executions";
    for (body, needle) in [
        (json!([1]), "JSON object"),
        (json!({"foo": 1}), "foo"),
        (json!({"input": [1]}), "input"),
        (json!({"parameters": {"a": 1}}), "parameters"),
        (
            json!({"parameters": [{"type": "string", "value": "x"}]}),
            "parameters[0].name",
        ),
        (
            json!({"parameters": [{"name": "cn", "value": {"string": {}}}]}),
            "parameters[0].value",
        ),
    ] {
        server
            .post(path, &body)
            .await
            .expect_error(400, "invalid_request", &[needle]);
    }
    server
        .post_raw(path, "application/json", "{not json")
        .await
        .expect_error(400, "invalid_request", &["JSON"]);
    server
        .post("/v1/workflows/nope/executions", &json!({}))
        .await
        .expect_error(404, "not_found", &["nope"]);
    // Only the three good starts made runs.
    let all = server.get(path).await.expect_status(200).json();
    assert_eq!(ids(&all).len(), 3, "{all:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_start_from_the_secmaster_body() {
    let server = Server::start_on(BACKEND);
    server
        .create_workflow(
            r#"
id: secmaster-alert
inputs:
  name: {type: json, required: false}
  key: {type: json, required: false}
steps:
  - name: Triage
    plugin: echo
    input: {name: "{{ inputs.name }}", key: "{{ inputs.key }}"}
outputs:
  triaged: "{{ steps.Triage.output }}"
"#,
        )
        .await;
    let body: Value = serde_json::from_str(SECMASTER_CREATE).expect("the sample is JSON");
    let started = server
        .post_raw(
            "/v1/workflows/secmaster-alert/executions",
            "application/json",
            SECMASTER_CREATE,
        )
        .await;
    started.expect_status(202);
    let id = run_id(&started.json());
    assert!(started.header("location").is_some_and(|l| l.ends_with(&id)));
    let run = server.wait_state("secmaster-alert", &id, "completed").await;
    assert_eq!(run["inputs"], json!({"name": {}, "key": {}}), "{run:#}");
    assert_eq!(run["outputs"], json!({"triaged": {"name": {}, "key": {}}}));

    // A workflow that asks for the data class gets it.
    server
        .create_workflow(
            r#"
id: secmaster-dataclass
inputs:
  dataclass: {type: json}
  name: {type: json, required: false}
  key: {type: json, required: false}
steps:
  - name: Triage
    plugin: echo
    input: {dataclass: "{{ inputs.dataclass.name }}"}
outputs:
  dataclass: "{{ steps.Triage.output.dataclass }}"
"#,
        )
        .await;
    let run = server
        .post("/v1/workflows/secmaster-dataclass/executions?wait=true", &body)
        .await
        .expect_status(200)
        .json();
    assert_eq!(state(&run), "completed", "{run:#}");
    assert_eq!(run["outputs"], json!({"dataclass": "Alert"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_and_waiting_starts() {
    let server = Server::start_on(BACKEND);
    server.create_workflow(ECHO2).await;
    server.create_workflow(ASK).await;
    let keyed = |key: &str| {
        server
            .request(Method::POST, "/v1/workflows/echo2/executions")
            .header("Idempotency-Key", key)
            .json(&json!({"input": {"n": 5}}))
    };
    let first = server.send(keyed("order-42")).await;
    first.expect_status(202);
    let id = run_id(&first.json());
    let again = server.send(keyed("order-42")).await;
    again.expect_status(202);
    assert_eq!(run_id(&again.json()), id);
    let other = server.send(keyed("order-43")).await;
    assert_ne!(run_id(&other.expect_status(202).json()), id);
    server
        .send(keyed(&"k".repeat(300)))
        .await
        .expect_error(400, "invalid_request", &["Idempotency-Key"]);
    let all = server.get("/v1/workflows/echo2/executions").await.json();
    assert_eq!(ids(&all).len(), 2, "one run per key: {all:#}");

    // Concurrent requests with one key start one run.
    let mut tasks = JoinSet::new();
    for _ in 0..10 {
        let api = server.api();
        tasks.spawn(async move {
            let request = api
                .request(Method::POST, "/v1/workflows/echo2/executions")
                .header("Idempotency-Key", "burst")
                .json(&json!({}));
            let answer = api.send(request).await;
            answer.expect_status(202);
            run_id(&answer.json())
        });
    }
    let burst: HashSet<String> = tasks.join_all().await.into_iter().collect();
    assert_eq!(burst.len(), 1, "{burst:?}");

    // `?wait=true`: 200 with the finished run...
    let done = server
        .post(
            "/v1/workflows/echo2/executions?wait=true",
            &json!({"input": {"n": 9}}),
        )
        .await;
    done.expect_status(200);
    let run = done.json();
    assert_eq!(state(&run), "completed", "{run:#}");
    assert_eq!(run["outputs"], json!({"n": 9}));
    assert_eq!(
        done.header("location"),
        Some(format!("/v1/workflows/echo2/executions/{}", run_id(&run)).as_str())
    );
    // ... or the run waiting for a person.
    let waiting = server
        .post("/v1/workflows/ask/executions?wait=true", &json!({}))
        .await
        .expect_status(200)
        .json();
    assert_eq!(state(&waiting), "waiting", "{waiting:#}");
    assert_eq!(waiting["waiting_steps"], json!(["Ask"]));
    assert_eq!(step_state(&waiting, "Ask"), "waiting");
    // The plugin's private state is not shown.
    assert!(step(&waiting, "Ask")["waiting"]["state"].is_null(), "{waiting:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_reused_on_another_workflow_is_not_misdirected() {
    let server = Server::start_on(BACKEND);
    server.create_workflow(ECHO2).await;
    server.create_workflow(DEFAULTS).await;
    let start = |workflow: &str| {
        server
            .request(Method::POST, &format!("/v1/workflows/{workflow}/executions"))
            .header("Idempotency-Key", "shared-key")
            .json(&json!({}))
    };
    let first = server.send(start("echo2")).await;
    first.expect_status(202);
    let second = server.send(start("defaults")).await;
    match second.status {
        // Refusing the reused key is fine...
        409 | 422 => {}
        // ... and so is a run of `defaults`, but not a pointer to nothing.
        202 => {
            let location = second.header("location").expect("a Location").to_owned();
            let run = server.get(&location).await.expect_status(200).json();
            assert_eq!(run["workflow"]["id"], "defaults", "{run:#}");
        }
        other => panic!("unexpected {other}: {}", second.text),
    }
}

/// A waiting run that calls an uploaded plugin after its form.
const ASK_THEN_HOSTILE: &str = r#"
id: ask-then-hostile
steps:
  - name: Ask
    plugin: interaction
    input: {fields: [{name: go, type: boolean, default: true}]}
  - name: Behave
    plugin: hostile@1.0.0
    input: {mode: ok}
outputs:
  result: "{{ steps.Behave.output }}"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_outlive_their_deleted_workflow_and_keep_their_plugins() {
    let server = Server::start_on(BACKEND);
    let hostile = std::fs::read(hostile_wasm()).expect("hostile.wasm was built");
    server
        .post_raw(
            "/v1/plugins?name=hostile&version=1.0.0",
            "application/wasm",
            hostile,
        )
        .await
        .expect_status(201);
    server.create_workflow(ASK_THEN_HOSTILE).await;
    let wf = "ask-then-hostile";
    let id = start_waiting(&server, wf, &json!({})).await;

    server
        .delete(&format!("/v1/workflows/{wf}"))
        .await
        .expect_status(204);
    server
        .get(&format!("/v1/workflows/{wf}"))
        .await
        .expect_error(404, "not_found", &[]);
    server
        .post(&format!("/v1/workflows/{wf}/executions"), &json!({}))
        .await
        .expect_error(404, "not_found", &[]);
    // The run is still there, and still holds its plugin.
    assert_eq!(state(&server.execution(wf, &id).await), "waiting");
    server
        .delete("/v1/plugins/hostile@1.0.0")
        .await
        .expect_error(409, "conflict", &[&id]);

    server
        .post(&interaction_path(wf, &id), &json!({}))
        .await
        .expect_status(204);
    let run = server.wait_state(wf, &id, "completed").await;
    assert_eq!(run["outputs"], json!({"result": {"ok": true}}));
    assert_eq!(run["workflow"]["version"], 1);

    // Finished, it no longer holds the plugin.
    server
        .delete("/v1/plugins/hostile@1.0.0")
        .await
        .expect_status(204);
    assert_eq!(state(&server.execution(wf, &id).await), "completed");
}

// --- Listing and reading runs. ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_are_listed_filtered_and_paged() {
    let server = Server::start_on(BACKEND);
    server.create_workflow(ECHO2).await;
    server.create_workflow(ASK).await;
    let mut started = Vec::new();
    for n in 0..7 {
        let run = server
            .post(
                "/v1/workflows/echo2/executions?wait=true",
                &json!({"input": {"n": n}}),
            )
            .await
            .expect_status(200)
            .json();
        assert_eq!(state(&run), "completed");
        started.push(run_id(&run));
    }
    let waiting = start_waiting(&server, "ask", &json!({})).await;

    // Newest first.
    let listing = server
        .get("/v1/workflows/echo2/executions")
        .await
        .expect_status(200)
        .json();
    let mut newest_first = started.clone();
    newest_first.reverse();
    assert_eq!(ids(&listing), newest_first);
    assert!(listing["next_cursor"].is_null());
    let item = &listing["items"][0];
    for key in [
        "workflow",
        "version",
        "state",
        "started_by",
        "created_at",
        "waiting_steps",
    ] {
        assert!(!item[key].is_null(), "a summary has {key}: {item:#}");
    }
    assert_eq!(item["workflow"], "echo2");

    // Pages of 3: disjoint, covering everything, in order.
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut request = server
            .request(Method::GET, "/v1/workflows/echo2/executions")
            .query(&[("limit", "3")]);
        if let Some(c) = &cursor {
            request = request.query(&[("cursor", c)]);
        }
        let page = server.send(request).await.expect_status(200).json();
        let page_ids = ids(&page);
        assert!(page_ids.len() <= 3, "{page:#}");
        paged.extend(page_ids);
        pages += 1;
        assert!(pages <= 7, "paging does not end");
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(paged, newest_first);

    // Across workflows.
    let everything = server
        .get("/v1/executions?limit=2")
        .await
        .expect_status(200)
        .json();
    assert_eq!(ids(&everything).len(), 2);
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/executions?limit=2&cursor={c}"),
            None => "/v1/executions?limit=2".to_owned(),
        };
        let page = server.get(&path).await.expect_status(200).json();
        all.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
        assert!(all.len() <= 8, "paging does not end: {all:?}");
    }
    let unique: HashSet<&String> = all.iter().collect();
    assert_eq!((all.len(), unique.len()), (8, 8), "{all:?}");
    assert!(all.contains(&waiting));

    // By state.
    let waiting_runs = server
        .get("/v1/executions?state=waiting")
        .await
        .expect_status(200)
        .json();
    assert_eq!(ids(&waiting_runs), std::slice::from_ref(&waiting));
    assert_eq!(waiting_runs["items"][0]["workflow"], "ask");
    assert_eq!(waiting_runs["items"][0]["waiting_steps"], json!(["Ask"]));
    let completed = server
        .get("/v1/executions?state=completed&limit=1000")
        .await
        .expect_status(200)
        .json();
    assert_eq!(ids(&completed), newest_first);
    let none = server
        .get("/v1/workflows/echo2/executions?state=waiting")
        .await
        .expect_status(200)
        .json();
    assert_eq!(none["items"], json!([]));
    let by_workflow = server.get("/v1/executions?workflow=ask").await.json();
    assert_eq!(ids(&by_workflow), std::slice::from_ref(&waiting));

    // By start time (strictly after / before the given time).
    let created: Vec<(String, String)> = listing["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            (
                run_id(i),
                i["created_at"].as_str().expect("created_at").to_owned(),
            )
        })
        .collect();
    let (_, pivot) = &created[3];
    let expect = |keep: &dyn Fn(time::OffsetDateTime) -> bool| -> BTreeSet<String> {
        created
            .iter()
            .filter(|(_, at)| keep(time(&json!(at))))
            .map(|(id, _)| id.clone())
            .collect()
    };
    let t = time(&json!(pivot));
    let query = |params: Vec<(&'static str, String)>| {
        server
            .request(Method::GET, "/v1/workflows/echo2/executions")
            .query(&params)
    };
    let after = server
        .send(query(vec![("started_after", pivot.clone())]))
        .await
        .expect_status(200)
        .json();
    let after: BTreeSet<String> = ids(&after).into_iter().collect();
    assert_eq!(after, expect(&|at| at > t));
    assert!(!after.is_empty() && after.len() < 7, "{after:?}");
    let before = server
        .send(query(vec![("started_before", pivot.clone())]))
        .await
        .expect_status(200)
        .json();
    let before: BTreeSet<String> = ids(&before).into_iter().collect();
    assert_eq!(before, expect(&|at| at < t));
    assert!(!before.is_empty() && before.len() < 7, "{before:?}");
    let window = server
        .send(query(vec![
            ("started_after", created[5].1.clone()),
            ("started_before", created[1].1.clone()),
            ("state", "completed".into()),
        ]))
        .await
        .expect_status(200)
        .json();
    let (low, high) = (time(&json!(created[5].1)), time(&json!(created[1].1)));
    let window: BTreeSet<String> = ids(&window).into_iter().collect();
    assert_eq!(window, expect(&|at| at > low && at < high));

    // Bad filters.
    for (path, needle) in [
        ("/v1/executions?state=sleeping", "sleeping"),
        ("/v1/executions?started_after=yesterday", "started_after"),
        ("/v1/executions?started_before=2026-13-01", "started_before"),
        ("/v1/executions?cursor=nope", "cursor"),
        ("/v1/executions?limit=many", "limit"),
    ] {
        server
            .get(path)
            .await
            .expect_error(400, "invalid_request", &[needle]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_shows_its_details_logs_and_statistics_and_is_canceled_and_deleted() {
    let server = Server::start_on(BACKEND);
    server.create_workflow(ASK).await;
    let request = server
        .request(Method::POST, "/v1/workflows/ask/executions")
        .header(USER, "erin")
        .json(&json!({"input": {"who": "erin"}}));
    let answer = server.send(request).await;
    answer.expect_status(202);
    let id = run_id(&answer.json());
    let path = Api::execution_path("ask", &id);

    let run = server.wait_state("ask", &id, "waiting").await;
    assert_eq!(run["id"], id.as_str());
    assert_eq!(run["workflow"]["id"], "ask");
    assert_eq!(run["workflow"]["version"], 1);
    assert_eq!(run["inputs"], json!({"who": "erin"}));
    assert!(run["outputs"].is_null(), "{run:#}");
    assert!(run["error"].is_null(), "{run:#}");
    assert_eq!(run["started_by"], "erin");
    time(&run["created_at"]);
    assert_eq!(run["waiting_steps"], json!(["Ask"]));
    assert_eq!(step_state(&run, "Greet"), "completed");
    assert_eq!(step_state(&run, "Ask"), "waiting");
    assert_eq!(step_state(&run, "Done"), "pending");
    let state_now = server
        .get(&format!("{path}/state"))
        .await
        .expect_status(200)
        .json();
    assert_eq!(
        state_now,
        json!({"id": id, "state": "waiting", "waiting_steps": ["Ask"]})
    );

    // A waiting run cannot be deleted or restarted.
    server
        .delete(&path)
        .await
        .expect_error(409, "conflict", &["waiting"]);
    server
        .post(&format!("{path}/restart"), &json!({}))
        .await
        .expect_error(409, "conflict", &["waiting"]);

    // Statistics while waiting.
    let stats = server
        .get(&format!("{path}/statistics"))
        .await
        .expect_status(200)
        .json();
    assert_eq!(stats["state"], "waiting");
    assert!(stats["duration_ms"].is_null(), "{stats:#}");
    let steps = stats["steps"].as_array().expect("steps");
    assert_eq!(names(&json!({"items": steps}), "name"), ["Greet", "Ask", "Done"]);
    assert_eq!(steps[0]["attempts"], 1);
    assert_eq!(steps[1]["attempts"], 1);
    assert_eq!(steps[2]["attempts"], 0);
    for s in steps {
        assert!(s["busy_ms"].is_u64() && s["waited_ms"].is_u64(), "{s}");
    }

    // Answer; then the statistics show the wait and the answer.
    server
        .post(
            &interaction_path("ask", &id),
            &vro(vec![param(
                "approve",
                "boolean",
                json!({"boolean": {"value": true}}),
            )]),
        )
        .await
        .expect_status(204);
    let run = server.wait_state("ask", &id, "completed").await;
    assert_eq!(run["outputs"], json!({"size": 2048, "approve": true}));
    time(&run["ended_at"]);
    let stats = server
        .get(&format!("{path}/statistics"))
        .await
        .expect_status(200)
        .json();
    assert_eq!(stats["state"], "completed");
    assert!(stats["duration_ms"].is_u64(), "{stats:#}");
    for s in stats["steps"].as_array().expect("steps") {
        assert_eq!(s["attempts"], 1, "{s}");
        assert_eq!(s["state"], "completed", "{s}");
        assert!(s["busy_ms"].is_u64() && s["waited_ms"].is_u64(), "{s}");
        assert!(s["duration_ms"].is_u64(), "{s}");
    }
    assert_eq!(stats["steps"][1]["answers"], 1);

    // Logs: paged one line at a time, the pages add up to the whole log.
    let whole = server
        .get(&format!("{path}/logs?limit=1000"))
        .await
        .expect_status(200)
        .json();
    let lines = whole["items"].as_array().expect("log lines").clone();
    assert!(lines.len() >= 3, "{whole:#}");
    let messages: Vec<&str> = lines.iter().filter_map(|l| l["message"].as_str()).collect();
    assert!(
        messages.iter().any(|m| m.contains("run started by erin")),
        "{messages:?}"
    );
    let greeting = lines
        .iter()
        .find(|l| l["message"] == "hello erin")
        .unwrap_or_else(|| panic!("the plugin's log line is missing: {messages:?}"));
    assert_eq!(greeting["step"], "Greet");
    assert_eq!(greeting["level"], "info");
    let mut paged = Vec::new();
    let mut after: Option<u64> = None;
    loop {
        let page_path = match after {
            Some(a) => format!("{path}/logs?limit=1&after={a}"),
            None => format!("{path}/logs?limit=1"),
        };
        let page = server.get(&page_path).await.expect_status(200).json();
        let items = page["items"].as_array().expect("items").clone();
        if items.is_empty() {
            assert!(page["next_after"].is_null(), "{page:#}");
            break;
        }
        assert_eq!(items.len(), 1, "{page:#}");
        after = Some(page["next_after"].as_u64().expect("next_after"));
        assert_eq!(Some(items[0]["seq"].as_u64().expect("seq")), after);
        paged.extend(items);
        assert!(paged.len() <= lines.len(), "paging does not end");
    }
    assert_eq!(paged, lines);
    let seqs: Vec<u64> = lines.iter().map(|l| l["seq"].as_u64().expect("seq")).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let tail = server
        .get(&format!("{path}/logs?after={}", seqs[seqs.len() - 2]))
        .await
        .expect_status(200)
        .json();
    assert_eq!(tail["items"], json!([lines[lines.len() - 1]]));

    // The export is a text file of the same lines.
    let export = server.get(&format!("{path}/logs/export")).await;
    export.expect_status(200);
    assert!(
        export
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/plain")),
        "{:?}",
        export.headers
    );
    let disposition = export.header("content-disposition").expect("Content-Disposition");
    assert_eq!(disposition, format!("attachment; filename=\"ask-{id}.log\""));
    assert_eq!(export.text.lines().count(), lines.len(), "{}", export.text);
    assert!(export.text.contains("[Greet] hello erin"), "{}", export.text);

    // A finished run cannot be canceled; it can be deleted, once.
    server
        .delete(&format!("{path}/state"))
        .await
        .expect_error(409, "conflict", &["completed"]);
    server.delete(&path).await.expect_status(204);
    server.get(&path).await.expect_error(404, "not_found", &[]);
    server
        .get(&format!("{path}/logs"))
        .await
        .expect_error(404, "not_found", &[]);
    server.delete(&path).await.expect_error(404, "not_found", &[]);

    // Canceling a waiting run: 204, then 409.
    let other = start_waiting(&server, "ask", &json!({})).await;
    let other_path = Api::execution_path("ask", &other);
    let cancel = server
        .send(
            server
                .request(Method::DELETE, &format!("{other_path}/state"))
                .header(USER, "frank"),
        )
        .await;
    cancel.expect_status(204);
    let run = server.execution("ask", &other).await;
    assert_eq!(state(&run), "canceled");
    assert!(
        run["error"].as_str().is_some_and(|e| e.contains("frank")),
        "{run:#}"
    );
    assert_eq!(run["waiting_steps"], json!([]));
    server
        .delete(&format!("{other_path}/state"))
        .await
        .expect_error(409, "conflict", &["canceled"]);
    server
        .post(&interaction_path("ask", &other), &json!({}))
        .await
        .expect_error(409, "conflict", &[]);
    // The run belongs to `ask`: under another workflow's path it does not exist.
    server
        .get(&Api::execution_path("echo2", &other))
        .await
        .expect_error(404, "not_found", &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_and_canceled_runs_restart_with_the_same_inputs() {
    let server = Server::start_on(BACKEND);
    let failing = |message: &str| {
        format!(
            r#"
id: flaky
inputs:
  token: {{type: secure-string}}
  n: {{type: integer}}
steps:
  - name: Measure
    plugin: echo
    input: {{length: "{{{{ inputs.token | length }}}}", n: "{{{{ inputs.n }}}}"}}
  - name: Break
    plugin: fail
    input: {{message: "{message}"}}
outputs:
  n: "{{{{ steps.Measure.output.n }}}}"
"#
        )
    };
    server.create_workflow(&failing("broken on purpose")).await;
    let token = "tok-123456";
    let id = server
        .start_run("flaky", &json!({"input": {"token": token, "n": 4}}))
        .await;
    let run = server.wait_state("flaky", &id, "failed").await;
    assert!(
        run["error"]
            .as_str()
            .is_some_and(|e| e.contains("broken on purpose")),
        "{run:#}"
    );
    assert_eq!(step_state(&run, "Break"), "failed");

    let restarted = server
        .post(
            &format!("{}/restart", Api::execution_path("flaky", &id)),
            &json!({}),
        )
        .await;
    restarted.expect_status(202);
    let new_id = run_id(&restarted.json());
    assert_ne!(new_id, id);
    assert_eq!(
        restarted.header("location"),
        Some(Api::execution_path("flaky", &new_id).as_str())
    );
    let again = server.wait_state("flaky", &new_id, "failed").await;
    assert_eq!(again["restarted_from"], id.as_str());
    assert_eq!(again["inputs"], json!({"token": "********", "n": 4}));
    // The secret itself, not its mask, was restarted with.
    assert_eq!(
        step(&again, "Measure")["output"],
        json!({"length": token.len(), "n": 4})
    );

    // Restart onto a fixed version.
    server
        .create_workflow(
            "id: flaky\ninputs:\n  token: {type: secure-string}\n  n: {type: integer}\nsteps:\n  - {name: Measure, plugin: echo, input: {n: \"{{ inputs.n }}\"}}\noutputs:\n  n: \"{{ steps.Measure.output.n }}\"\n",
        )
        .await;
    let fixed = server
        .post(
            &format!("{}/restart", Api::execution_path("flaky", &new_id)),
            &json!({"version": 2}),
        )
        .await;
    fixed.expect_status(202);
    let fixed_id = run_id(&fixed.json());
    let done = server.wait_state("flaky", &fixed_id, "completed").await;
    assert_eq!(done["workflow"]["version"], 2);
    assert_eq!(done["outputs"], json!({"n": 4}));

    // A completed run is not restarted; a missing version is 404; a bad body 400.
    let done_path = Api::execution_path("flaky", &fixed_id);
    server
        .post(&format!("{done_path}/restart"), &json!({}))
        .await
        .expect_error(409, "conflict", &["completed"]);
    server
        .post(
            &format!("{}/restart", Api::execution_path("flaky", &id)),
            &json!({"version": 9}),
        )
        .await
        .expect_error(404, "not_found", &["version 9"]);
    server
        .post(
            &format!("{}/restart", Api::execution_path("flaky", &id)),
            &json!({"version": "two"}),
        )
        .await
        .expect_error(400, "invalid_request", &[]);

    // A canceled run restarts too, and a rejected one.
    server.create_workflow(ASK).await;
    let waiting = start_waiting(&server, "ask", &json!({"input": {"who": "gina"}})).await;
    server
        .delete(&format!("{}/state", Api::execution_path("ask", &waiting)))
        .await
        .expect_status(204);
    let restarted = server
        .post(
            &format!("{}/restart", Api::execution_path("ask", &waiting)),
            &json!({}),
        )
        .await;
    restarted.expect_status(202);
    let new_ask = run_id(&restarted.json());
    let run = server.wait_state("ask", &new_ask, "waiting").await;
    assert_eq!(run["inputs"], json!({"who": "gina"}));
}

// --- Interactions. ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interaction_shows_its_form_and_checks_answers() {
    let server = Server::start_on(BACKEND);
    server.create_workflow(ASK).await;
    let id = start_waiting(&server, "ask", &json!({"input": {"who": "hal"}})).await;
    let path = interaction_path("ask", &id);

    let form = server.get(&path).await.expect_status(200).json();
    assert_eq!(form["name"], "Ask");
    assert_eq!(form["step"], "Ask");
    assert_eq!(form["execution_id"], id.as_str());
    assert_eq!(form["workflow"], "ask");
    assert_eq!(form["state"], "waiting");
    assert_eq!(form["prompt"], "Which key size for hal?");
    assert_eq!(form["assignees"], json!([]));
    assert_eq!(form["signal_keys"], json!(["Ask.UserInteraction"]));
    let expires = time(&form["expires_at"]);
    let since = time(&form["since"]);
    assert_eq!((expires - since).whole_hours(), 24, "{form:#}");
    let fields = form["fields"].as_array().expect("fields");
    let typed: Vec<(&str, &str, bool)> = fields
        .iter()
        .map(|f| {
            (
                f["name"].as_str().expect("name"),
                f["type"].as_str().expect("type"),
                f["required"].as_bool().expect("required"),
            )
        })
        .collect();
    assert_eq!(
        typed,
        [
            ("size", "integer", true),
            ("approve", "boolean", true),
            ("note", "string", false)
        ]
    );
    assert_eq!(fields[0]["choices"], json!([2048, 4096]));
    assert_eq!(fields[0]["default"], 2048);
    assert_eq!(fields[0]["description"], "RSA key bits");

    // Refused answers name the problem and change nothing.
    let before = server.execution("ask", &id).await;
    for (body, needles) in [
        (vro(vec![]), vec!["approve"]),
        (
            vro(vec![param("size", "number", json!({"number": {"value": 4096}}))]),
            vec!["approve", "required"],
        ),
        (
            vro(vec![
                param("approve", "boolean", json!("perhaps")),
                param("size", "string", json!("big")),
            ]),
            vec!["approve", "size"],
        ),
        (
            vro(vec![
                param("approve", "boolean", json!(true)),
                param("colour", "string", json!("red")),
            ]),
            vec!["colour"],
        ),
        (
            vro(vec![
                param("approve", "boolean", json!(true)),
                param("size", "number", json!(1024)),
            ]),
            vec!["size"],
        ),
    ] {
        server
            .post(&path, &body)
            .await
            .expect_error(400, "invalid_answer", &needles);
    }
    server
        .post(&path, &json!({"parameters": "no"}))
        .await
        .expect_error(400, "invalid_request", &["parameters"]);
    server
        .post_raw(&path, "application/json", "{oops")
        .await
        .expect_error(400, "invalid_request", &["JSON"]);
    let after = server.execution("ask", &id).await;
    assert_eq!(after, before, "a refused answer changed the run");

    // A good answer in vRO's typed shape.
    server
        .send(
            server
                .request(Method::POST, &path)
                .header(USER, "ivy")
                .json(&json!({
                    "executionId": id,
                    "parameters": [
                        {"name": "size", "type": "number", "value": {"number": {"value": 4096}}},
                        {"name": "approve", "type": "boolean", "value": {"boolean": {"value": true}}},
                        {"name": "note", "type": "string", "value": {"string": {"value": "rotate yearly"}}}
                    ]
                })),
        )
        .await
        .expect_status(204);
    let run = server.wait_state("ask", &id, "completed").await;
    assert_eq!(run["outputs"], json!({"size": 4096, "approve": true}));
    assert_eq!(
        step(&run, "Ask")["output"],
        json!({"size": 4096, "approve": true, "note": "rotate yearly"})
    );
    assert_eq!(step(&run, "Ask")["answers"][0]["answered_by"], "ivy");
    assert_eq!(step(&run, "Ask")["answers"][0]["signal_type"], "UserInteraction");

    // Nothing is pending any more.
    server
        .get(&path)
        .await
        .expect_error(404, "not_found", &["completed"]);
    server
        .post(&path, &json!({}))
        .await
        .expect_error(409, "conflict", &["completed"]);
    server.delete(&path).await.expect_error(409, "conflict", &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_vro_sample_and_an_empty_body_answer_with_defaults() {
    let server = Server::start_on(BACKEND);
    server.create_workflow(DEFAULTS).await;
    server.create_workflow(REQUIRED).await;

    // The documentation's sample body (parameters without values): the defaults apply.
    let sample = start_waiting(&server, "defaults", &json!({})).await;
    server
        .post_raw(
            &interaction_path("defaults", &sample),
            "application/json",
            VRO_ANSWER_SAMPLE,
        )
        .await
        .expect_status(204);
    let run = server.wait_state("defaults", &sample, "completed").await;
    assert_eq!(
        run["outputs"],
        json!({"answer": {"size": 2048, "confirmed": true}})
    );

    // curl -d '{}' (form content type), and no body at all.
    for (content_type, body) in [
        ("application/x-www-form-urlencoded", VRO_CURL_BODY),
        ("application/json", VRO_CURL_BODY),
        ("application/json", ""),
    ] {
        let id = start_waiting(&server, "defaults", &json!({})).await;
        server
            .post_raw(&interaction_path("defaults", &id), content_type, body)
            .await
            .expect_status(204);
        let run = server.wait_state("defaults", &id, "completed").await;
        assert_eq!(
            run["outputs"],
            json!({"answer": {"size": 2048, "confirmed": true}})
        );
    }

    // A required field without a default: the same bodies are refused, naming it.
    let id = start_waiting(&server, "required", &json!({})).await;
    let path = interaction_path("required", &id);
    for (content_type, body) in [
        ("application/json", VRO_ANSWER_SAMPLE),
        ("application/x-www-form-urlencoded", VRO_CURL_BODY),
    ] {
        server
            .post_raw(&path, content_type, body)
            .await
            .expect_error(400, "invalid_answer", &["reason"]);
    }
    assert_eq!(state(&server.execution("required", &id).await), "waiting");
    server
        .post(
            &path,
            &vro(vec![param(
                "reason",
                "string",
                json!({"string": {"value": "audit"}}),
            )]),
        )
        .await
        .expect_status(204);
    let run = server.wait_state("required", &id, "completed").await;
    assert_eq!(run["outputs"], json!({"reason": "audit"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canceling_an_interaction_fails_the_run() {
    let server = Server::start_on(BACKEND);
    server.create_workflow(ASK).await;
    let id = start_waiting(&server, "ask", &json!({})).await;
    let path = interaction_path("ask", &id);
    server
        .send(server.request(Method::DELETE, &path).header(USER, "jack"))
        .await
        .expect_status(204);
    let run = server.execution("ask", &id).await;
    assert_eq!(state(&run), "failed", "{run:#}");
    assert_eq!(step_state(&run, "Ask"), "canceled");
    assert_eq!(step_state(&run, "Done"), "canceled");
    let error = run["error"].as_str().expect("an error");
    assert!(error.contains("Ask") && error.contains("jack"), "{error}");
    server
        .delete(&path)
        .await
        .expect_error(409, "conflict", &["failed"]);
    server.get(&path).await.expect_error(404, "not_found", &[]);
    server
        .post(&path, &json!({}))
        .await
        .expect_error(409, "conflict", &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_interactions_are_listed_across_runs() {
    let server = Server::start_on(BACKEND);
    server.create_workflow(ASK).await;
    server.create_workflow(CERTIFICATE_REQUEST).await;
    server.create_workflow(ECHO2).await;
    let asked = start_waiting(&server, "ask", &json!({})).await;
    let approval = start_waiting(
        &server,
        "certificate-request",
        &json!({"input": {"common_name": "web01.example.com"}}),
    )
    .await;
    let done = server.start_run("echo2", &json!({})).await;
    server.wait_state("echo2", &done, "completed").await;

    let list = server
        .get("/v1/interactions?state=waiting")
        .await
        .expect_status(200)
        .json();
    let mut pending: Vec<(String, String, String)> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            assert_eq!(i["state"], "waiting", "{i}");
            (
                i["execution_id"].as_str().expect("execution_id").to_owned(),
                i["workflow"].as_str().expect("workflow").to_owned(),
                i["step"].as_str().expect("step").to_owned(),
            )
        })
        .collect();
    pending.sort();
    let mut expected = vec![
        (asked.clone(), "ask".to_owned(), "Ask".to_owned()),
        (
            approval.clone(),
            "certificate-request".to_owned(),
            "RequireApproval1".to_owned(),
        ),
    ];
    expected.sort();
    assert_eq!(pending, expected);
    let by_default = server.get("/v1/interactions").await.expect_status(200).json();
    assert_eq!(by_default["items"].as_array().map(Vec::len), Some(2));
    assert_eq!(by_default["next_cursor"], Value::Null);

    // A page at a time, oldest run first.
    let first = server.get("/v1/interactions?limit=1").await.expect_status(200).json();
    assert_eq!(names(&first, "execution_id"), [asked.as_str()]);
    let cursor = first["next_cursor"].as_str().expect("a next page");
    let second = server
        .get(&format!("/v1/interactions?limit=1&cursor={cursor}"))
        .await
        .expect_status(200)
        .json();
    assert_eq!(names(&second, "execution_id"), [approval.as_str()]);
    assert_eq!(second["next_cursor"], Value::Null, "{second}");
    server
        .get("/v1/interactions?cursor=nope")
        .await
        .expect_error(400, "invalid_request", &["cursor"]);
    server
        .get("/v1/interactions?state=completed")
        .await
        .expect_error(400, "invalid_request", &["waiting"]);

    // Answered ones leave the list.
    server
        .post(
            &interaction_path("ask", &asked),
            &vro(vec![param("approve", "boolean", json!(false))]),
        )
        .await
        .expect_status(204);
    server.wait_state("ask", &asked, "completed").await;
    let list = server.get("/v1/interactions?state=waiting").await.json();
    assert_eq!(names(&list, "execution_id"), [approval]);
}

// --- Signals. ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyfactor_signals_answer_approvals() {
    let server = Server::start_on(BACKEND);
    server.create_workflow(CERTIFICATE_REQUEST).await;
    let start = json!({"input": {"common_name": "web01.example.com"}});
    let id = start_waiting(&server, "certificate-request", &start).await;
    let signals = signal_path(&id);

    // Misaddressed signals are refused and change nothing.
    let before = server.execution("certificate-request", &id).await;
    server
        .post(
            &signals,
            &json!({"SignalKey": "IssueCertificate.ApprovalStatus", "Data": {"Approved": true}}),
        )
        .await
        .expect_error(409, "conflict", &["IssueCertificate", "RequireApproval1"]);
    server
        .post(
            &signals,
            &json!({"SignalKey": "NoSuchStep.ApprovalStatus", "Data": {"Approved": true}}),
        )
        .await
        .expect_error(409, "conflict", &["NoSuchStep", "RequireApproval1"]);
    server
        .post(
            &signals,
            &json!({"SignalKey": "RequireApproval1.Nope", "Data": {"Approved": true}}),
        )
        .await
        .expect_error(
            400,
            "unknown_signal",
            &["Nope", "RequireApproval1.ApprovalStatus"],
        );
    server
        .post(&signals, &json!({"SignalKey": "RequireApproval1", "Data": {}}))
        .await
        .expect_error(400, "invalid_request", &["UniqueName.SignalType"]);
    server
        .post(
            &signals,
            &json!({"SignalKey": "RequireApproval1.ApprovalStatus", "Data": [true]}),
        )
        .await
        .expect_error(400, "invalid_request", &["Data"]);
    server
        .post(
            &signals,
            &json!({"SignalKey": "RequireApproval1.ApprovalStatus", "Data": {"Approved": "maybe"}}),
        )
        .await
        .expect_error(400, "invalid_answer", &["Approved"]);
    server
        .post(&signals, &json!({"Data": {"Approved": true}}))
        .await
        .expect_error(400, "invalid_request", &["SignalKey"]);
    server
        .post_raw(&signals, "text/plain", KEYFACTOR_SIGNAL)
        .await
        .expect_error(415, "unsupported_media_type", &[]);
    server
        .send(
            server
                .request(Method::POST, &signals)
                .header(USER, "   ")
                .json(&json!({"SignalKey": "RequireApproval1.ApprovalStatus", "Data": {"Approved": true}})),
        )
        .await
        .expect_error(400, "invalid_request", &["x-weft-user"]);
    assert_eq!(server.execution("certificate-request", &id).await, before);

    // The documentation's body, verbatim.
    server
        .post_raw(&signals, "application/json", KEYFACTOR_SIGNAL)
        .await
        .expect_status(204);
    let run = server.wait_state("certificate-request", &id, "completed").await;
    assert_eq!(run["outputs"]["subject"], "CN=web01.example.com");
    assert_eq!(run["outputs"]["approved_by"], json!(["anonymous"]));
    let approvals = &step(&run, "RequireApproval1")["output"]["approvals"];
    assert_eq!(approvals[0]["comment"], "Approved by API", "{run:#}");
    // The step is no longer waiting: the same signal again is a conflict.
    server
        .post_raw(&signals, "application/json", KEYFACTOR_SIGNAL)
        .await
        .expect_error(409, "conflict", &["RequireApproval1"]);

    // JSON booleans work too; a denial rejects the run.
    let approved = start_waiting(&server, "certificate-request", &start).await;
    server
        .post_as(
            "kim",
            &signal_path(&approved),
            &json!({"SignalKey": "RequireApproval1.ApprovalStatus", "Data": {"Approved": true}}),
        )
        .await
        .expect_status(204);
    let run = server
        .wait_state("certificate-request", &approved, "completed")
        .await;
    assert_eq!(run["outputs"]["approved_by"], json!(["kim"]));
    let denied = start_waiting(&server, "certificate-request", &start).await;
    server
        .post(
            &signal_path(&denied),
            &json!({"SignalKey": "RequireApproval1.ApprovalStatus", "Data": {"Approved": false, "Comment": "no"}}),
        )
        .await
        .expect_status(204);
    let run = server
        .wait_state("certificate-request", &denied, "rejected")
        .await;
    assert_eq!(step_state(&run, "IssueCertificate"), "canceled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_by_signal_then_a_form_by_vro_body() {
    let server = Server::start_on(BACKEND);
    server.create_workflow(APPROVE_THEN_CONFIRM).await;
    let wf = "approve-then-confirm";
    let id = start_waiting(&server, wf, &json!({})).await;

    // The form is not the waiting step yet.
    let form = server
        .get(&interaction_path(wf, &id))
        .await
        .expect_status(200)
        .json();
    assert_eq!(form["name"], "RequireApproval1");
    assert_eq!(form["signal_keys"], json!(["RequireApproval1.ApprovalStatus"]));
    let field_names = names(&json!({"items": form["fields"]}), "name");
    assert_eq!(field_names, ["Approved", "Comment"]);
    server
        .post(
            &signal_path(&id),
            &json!({"SignalKey": "ConfirmDetails.UserInteraction", "Data": {"hostname": "x"}}),
        )
        .await
        .expect_error(409, "conflict", &["RequireApproval1"]);

    server
        .post_as(
            "lee",
            &signal_path(&id),
            &serde_json::from_str(KEYFACTOR_SIGNAL).expect("JSON"),
        )
        .await
        .expect_status(204);
    let run = server.wait_state(wf, &id, "waiting").await;
    assert_eq!(run["waiting_steps"], json!(["ConfirmDetails"]));
    assert_eq!(step_state(&run, "RequireApproval1"), "completed");

    // The approval is done: signalling it again names the step waiting now.
    server
        .post_raw(&signal_path(&id), "application/json", KEYFACTOR_SIGNAL)
        .await
        .expect_error(409, "conflict", &["ConfirmDetails"]);

    let form = server
        .get(&interaction_path(wf, &id))
        .await
        .expect_status(200)
        .json();
    assert_eq!(form["name"], "ConfirmDetails");
    let typed: Vec<(String, String)> = form["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap_or("").into(),
                f["type"].as_str().unwrap_or("").into(),
            )
        })
        .collect();
    assert_eq!(
        typed,
        [
            ("hostname".to_owned(), "string".to_owned()),
            ("replicas".to_owned(), "integer".to_owned())
        ]
    );
    server
        .post_as(
            "mia",
            &interaction_path(wf, &id),
            &vro(vec![
                param("hostname", "string", json!({"string": {"value": "web01"}})),
                param("replicas", "number", json!({"number": {"value": 3}})),
            ]),
        )
        .await
        .expect_status(204);
    let run = server.wait_state(wf, &id, "completed").await;
    assert_eq!(
        run["outputs"],
        json!({"result": {"approved_by": ["lee"], "hostname": "web01", "replicas": 3}})
    );
    assert_eq!(step(&run, "ConfirmDetails")["answers"][0]["answered_by"], "mia");
}

// --- Concurrency. ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_runs_all_complete() {
    const RUNS: usize = 200;
    let server = Server::start_on(BACKEND);
    server.create_workflow(ECHO2).await;

    // Every start at once.
    let barrier = Arc::new(Barrier::new(RUNS));
    let mut starts = JoinSet::new();
    for n in 0..RUNS {
        let (api, barrier) = (server.api(), barrier.clone());
        starts.spawn(async move {
            barrier.wait().await;
            let id = api.start_run("echo2", &json!({"input": {"n": n}})).await;
            (n, id)
        });
    }
    let started = starts.join_all().await;
    let unique: HashSet<&String> = started.iter().map(|(_, id)| id).collect();
    assert_eq!(unique.len(), RUNS);

    // Each one reaches a final state, all within one bound.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut polls = JoinSet::new();
    for (n, id) in started {
        let api = server.api();
        polls.spawn(async move {
            let path = format!("{}/state", Api::execution_path("echo2", &id));
            loop {
                let now = api.get(&path).await.expect_status(200).json();
                let state = state(&now).to_owned();
                if !matches!(state.as_str(), "pending" | "running") {
                    return (n, id, state);
                }
                if Instant::now() > deadline {
                    return (n, id, format!("still {state} at the deadline"));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
    }
    let finished = polls.join_all().await;
    let not_completed: Vec<&(usize, String, String)> =
        finished.iter().filter(|(_, _, s)| s != "completed").collect();
    assert!(not_completed.is_empty(), "runs not completed: {not_completed:?}");

    // Each got its own input through both steps.
    let listing = server
        .get("/v1/workflows/echo2/executions?state=completed&limit=1000")
        .await
        .expect_status(200)
        .json();
    assert_eq!(ids(&listing).len(), RUNS);
    for (n, id, _) in finished.iter().step_by(37) {
        let run = server.execution("echo2", id).await;
        assert_eq!(run["outputs"], json!({"n": n}), "{run:#}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_clients_answering_one_interaction_get_one_success() {
    const CLIENTS: usize = 20;
    let server = Server::start_on(BACKEND);
    server.create_workflow(DEFAULTS).await;
    let id = start_waiting(&server, "defaults", &json!({})).await;

    let barrier = Arc::new(Barrier::new(CLIENTS));
    let mut answers = JoinSet::new();
    for i in 0..CLIENTS {
        let (api, barrier, path) = (server.api(), barrier.clone(), interaction_path("defaults", &id));
        answers.spawn(async move {
            let body = vro(vec![param("size", "number", json!(1000 + i))]);
            barrier.wait().await;
            let answer = api.post_as(&format!("client{i}"), &path, &body).await;
            (i, answer)
        });
    }
    let answers = answers.join_all().await;
    let won: Vec<usize> = answers
        .iter()
        .filter(|(_, a)| a.status == 204)
        .map(|(i, _)| *i)
        .collect();
    assert_eq!(won.len(), 1, "{answers:#?}");
    for (_, answer) in answers.iter().filter(|(_, a)| a.status != 204) {
        answer.expect_error(409, "conflict", &[]);
    }
    let run = server.wait_state("defaults", &id, "completed").await;
    let winner = won[0];
    assert_eq!(
        run["outputs"],
        json!({"answer": {"size": 1000 + winner, "confirmed": true}})
    );
    let answered = step(&run, "Confirm")["answers"]
        .as_array()
        .expect("answers")
        .clone();
    assert_eq!(answered.len(), 1, "{run:#}");
    assert_eq!(answered[0]["answered_by"], format!("client{winner}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_approvers_answering_at_once_are_all_counted() {
    let server = Server::start_on(BACKEND);
    server.create_workflow(THREE_APPROVERS).await;
    let id = start_waiting(&server, "three-approvers", &json!({})).await;
    let signals = signal_path(&id);
    let approve = json!({"SignalKey": "RequireApproval1.ApprovalStatus", "Data": {"Approved": "True"}});

    // Someone else may not.
    server
        .post_as("mallory", &signals, &approve)
        .await
        .expect_error(403, "not_assigned", &["mallory"]);
    server
        .post(&signals, &approve)
        .await
        .expect_error(403, "not_assigned", &["anonymous"]);

    let approvers = ["alice", "bob", "carol"];
    let barrier = Arc::new(Barrier::new(approvers.len()));
    let mut answers = JoinSet::new();
    for who in approvers {
        let (api, barrier, signals) = (server.api(), barrier.clone(), signals.clone());
        let mut body = approve.clone();
        body["Data"]["Comment"] = json!(format!("ok from {who}"));
        answers.spawn(async move {
            barrier.wait().await;
            (who, api.post_as(who, &signals, &body).await)
        });
    }
    for (who, answer) in answers.join_all().await {
        assert_eq!(answer.status, 204, "{who}: {}", answer.text);
    }
    let run = server.wait_state("three-approvers", &id, "completed").await;
    let approvals = run["outputs"]["approvals"].as_array().expect("approvals");
    assert_eq!(approvals.len(), 3, "{run:#}");
    let by: BTreeSet<&str> = approvals.iter().filter_map(|a| a["by"].as_str()).collect();
    assert_eq!(by, BTreeSet::from(approvers));
    for a in approvals {
        assert_eq!(
            a["comment"],
            format!("ok from {}", a["by"].as_str().unwrap_or("?"))
        );
    }
    assert_eq!(
        step(&run, "RequireApproval1")["answers"].as_array().map(Vec::len),
        Some(3)
    );
}

// --- Restart. ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_runs_survive_a_server_restart() {
    let mut server = Server::start_on(BACKEND);
    server.create_workflow(CERTIFICATE_REQUEST).await;
    server.create_workflow(ASK).await;
    let approval = start_waiting(
        &server,
        "certificate-request",
        &json!({"input": {"common_name": "db01.example.com"}}),
    )
    .await;
    let asked = start_waiting(&server, "ask", &json!({"input": {"who": "nora"}})).await;
    let before = (
        server.execution("certificate-request", &approval).await,
        server.execution("ask", &asked).await,
    );

    server.restart();
    assert!(
        server.stderr().contains("weft serving http://"),
        "{}",
        server.stderr()
    );

    // Everything is as it was, and the waits are still listed.
    assert_eq!(server.execution("certificate-request", &approval).await, before.0);
    assert_eq!(server.execution("ask", &asked).await, before.1);
    let pending = server
        .get("/v1/interactions?state=waiting")
        .await
        .expect_status(200)
        .json();
    let mut listed = names(&pending, "execution_id");
    listed.sort();
    let mut expected = vec![approval.clone(), asked.clone()];
    expected.sort();
    assert_eq!(listed, expected);

    // Answers work, and the runs complete.
    server
        .post_as(
            "otto",
            &signal_path(&approval),
            &json!({"SignalKey": "RequireApproval1.ApprovalStatus", "Data": {"Approved": true}}),
        )
        .await
        .expect_status(204);
    server
        .post(
            &interaction_path("ask", &asked),
            &vro(vec![param("approve", "boolean", json!(true))]),
        )
        .await
        .expect_status(204);
    let run = server
        .wait_state("certificate-request", &approval, "completed")
        .await;
    assert_eq!(run["outputs"]["approved_by"], json!(["otto"]));
    assert_eq!(run["outputs"]["subject"], "CN=db01.example.com");
    let run = server.wait_state("ask", &asked, "completed").await;
    assert_eq!(run["outputs"], json!({"size": 2048, "approve": true}));

    // And once more: a finished run is still readable after a restart.
    server.restart();
    assert_eq!(state(&server.execution("ask", &asked).await), "completed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_server_cleanly_and_keeps_waiting_runs() {
    let mut server = Server::start_on(BACKEND);
    server.create_workflow(ASK).await;
    let asked = start_waiting(&server, "ask", &json!({"input": {"who": "nora"}})).await;
    let before = server.execution("ask", &asked).await;

    // The client keeps its connection alive; the server closes it and exits anyway.
    let status = server.stop();
    assert!(status.success(), "{status}\n{}", server.stderr());
    assert!(server.stderr().contains("weft stopped"), "{}", server.stderr());

    server.start_again();
    assert_eq!(server.execution("ask", &asked).await, before);
    server
        .post(
            &interaction_path("ask", &asked),
            &vro(vec![param("approve", "boolean", json!(true))]),
        )
        .await
        .expect_status(204);
    assert_eq!(
        server.wait_state("ask", &asked, "completed").await["outputs"],
        json!({"size": 2048, "approve": true})
    );
}
