//! The served OpenAPI document, checked by tools independent of the server: it validates
//! (openapi-spec-validator) and a fuzzer (schemathesis) driving a live, seeded `weft serve`
//! with it finds no 5xx and no answer that breaks the document. `tests/openapi/check.sh`
//! installs the pinned tools and runs both.

use crate::common::{Server, Weft, REPO};
use serde_json::json;
use std::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_validates_and_the_server_survives_fuzzing() {
    let weft = Weft::new();
    let token = weft.create_token("fuzzer", "admin", &[]);
    let server = Server::on(weft, &[]);
    let api = server.api().with_token(&token);
    // Something to find: a workflow with two versions, a run waiting for a person, a
    // schedule and an actions target.
    let yaml = std::fs::read_to_string(format!("{REPO}/examples/certificate-request.yaml"))
        .expect("the example workflow");
    api.create_workflow(&yaml).await;
    api.create_workflow(&yaml.replace("version: 1", "version: 2"))
        .await;
    let run = api
        .start_run(
            "certificate-request",
            &json!({"input": {"common_name": "web01.example.com"}}),
        )
        .await;
    api.wait_state("certificate-request", &run, "waiting").await;
    api.post(
        "/v1/schedules",
        &json!({"id": "nightly", "workflow": "certificate-request", "every": "1h",
                "input": {"common_name": "a.example.com"}, "paused": true}),
    )
    .await
    .expect_status(201);
    let target = api
        .post(
            "/v1/actions/targets",
            &json!({"name": "audit", "plugin": "audit-sink", "type": "async"}),
        )
        .await
        .expect_status(201)
        .json();
    let ids = format!(
        "certificate-request,nightly,{}",
        target["id"].as_str().expect("a target id")
    );

    let venv = format!("{}/openapi-venv", env!("CARGO_TARGET_TMPDIR"));
    let base = format!("http://{}", server.address());
    let status = tokio::task::spawn_blocking(move || {
        Command::new("bash")
            .arg(format!("{REPO}/tests/openapi/check.sh"))
            .args([&base, &token, &venv, &ids, &run])
            .status()
            .expect("cannot run bash")
    })
    .await
    .expect("the check ran");
    assert!(
        status.success(),
        "tests/openapi/check.sh failed ({status}); its output above says what and how to fix it"
    );
}
