//! The Python and JavaScript SDK examples in a real `weft serve`: the components `sdk/ci.sh`
//! built (componentize-py and componentize-js, `weft:plugin@0.2.0`) are uploaded, described,
//! checked against, and run in `examples/plugins/sdk-approval.yaml`, a workflow where a person
//! confirms each step.
//!
//! The components are large (12-19 MB) and take minutes to build, so this test does not build
//! them: it reads them from `target/sdk-examples` (or `$WEFT_SDK_EXAMPLES`), and fails saying
//! how to build them when they are missing. `tests/run` runs `sdk/ci.sh` first.

use crate::common::*;
use serde_json::{json, Value};
use std::path::PathBuf;

/// Where `sdk/ci.sh` put the built examples.
pub fn examples_dir() -> PathBuf {
    std::env::var_os("WEFT_SDK_EXAMPLES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(REPO).join("target/sdk-examples"))
}

/// The bytes of a built example component; panics saying how to build it when missing.
#[track_caller]
pub fn example(name: &str) -> Vec<u8> {
    let path = examples_dir().join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{} is missing ({e}): build the SDK examples with `bash sdk/ci.sh` (it writes them to \
             target/sdk-examples), or set WEFT_SDK_EXAMPLES to the folder holding them",
            path.display()
        )
    })
}

/// Uploads `name@0.1.0` and waits until it is ready; returns its version view.
async fn upload(server: &Server, name: &str) -> Value {
    let answer = server
        .post_raw(
            &format!("/v1/plugins?name={name}&version=0.1.0"),
            "application/wasm",
            example(name),
        )
        .await;
    assert!(
        answer.status == 201 || answer.status == 202,
        "uploading {name}: {} {}",
        answer.status,
        answer.text
    );
    server
        .poll_within(
            COMPILE_LIMIT,
            &format!("/v1/plugins/{name}@0.1.0"),
            "compiled",
            |p| p["status"] != "compiling",
        )
        .await
}

fn signals(id: &str) -> String {
    format!("/v1/instances/{id}/signals")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_and_javascript_examples_run_in_a_workflow_with_approvals() {
    let server = Server::start();
    for name in ["python-greeter", "js-greeter"] {
        let plugin = upload(&server, name).await;
        assert_eq!(plugin["status"], "ready", "{plugin:#}");
        assert_eq!(plugin["world"], "step");
        assert_eq!(plugin["contract_version"], "0.2.0");
        assert_eq!(
            plugin["input_schema"]["required"],
            json!([if name == "js-greeter" { "greeting" } else { "name" }])
        );
    }

    // The contract is checked before anything runs: a greeting the Python step does not offer.
    let yaml = std::fs::read_to_string(PathBuf::from(REPO).join("examples/plugins/sdk-approval.yaml"))
        .expect("examples/plugins/sdk-approval.yaml");
    let misfit = yaml.replace("greeting: \"{{ inputs.greeting }}\"", "greeting: howdy");
    assert_ne!(misfit, yaml, "the example names its greeting as expected");
    server
        .post_raw("/v1/workflows", "application/yaml", misfit)
        .await
        .expect_error(
            400,
            "invalid_definition",
            &["steps[0].input.greeting: expected one of"],
        );

    server
        .post_raw("/v1/workflows", "application/yaml", yaml)
        .await
        .expect_status(201);
    let id = server
        .start_run(
            "sdk-approval",
            &json!({"input": {"name": "Ada", "language": "fr"}}),
        )
        .await;
    let run = server.wait_state("sdk-approval", &id, "waiting").await;
    assert_eq!(step_state(&run, "Greet"), "waiting", "{run:#}");

    // The Python step refuses an answer that does not fit its form, and keeps waiting.
    server
        .post_as(
            "alice",
            &signals(&id),
            &json!({"SignalKey": "Greet.Confirmation", "Data": {"Confirm": "maybe"}}),
        )
        .await
        .expect_error(400, "invalid_answer", &["Confirm"]);
    server
        .post_as(
            "alice",
            &signals(&id),
            &json!({"SignalKey": "Greet.Confirmation", "Data": {"Confirm": true}}),
        )
        .await
        .expect_status(204);
    let run = server
        .wait_for("sdk-approval", &id, "waiting on Send", |s| {
            s == "waiting" || s == "failed"
        })
        .await;
    assert_eq!(step_state(&run, "Send"), "waiting", "{run:#}");

    server
        .post_as(
            "bob",
            &signals(&id),
            &json!({"SignalKey": "Send.Confirmation", "Data": {"Confirm": true, "Comment": "ok"}}),
        )
        .await
        .expect_status(204);
    let run = server.wait_state("sdk-approval", &id, "completed").await;
    assert_eq!(
        run["outputs"],
        json!({
            "message": "hello Ada!\n\nBien cordialement",
            "greeting_confirmed_by": "alice",
            "message_confirmed_by": "bob",
        }),
        "{run:#}"
    );
}

#[test]
fn plugin_push_waits_for_a_large_component_compiling_on_the_server() {
    let weft = Weft::new();
    let config = weft.write_config("[limits]\nupload_wait = \"0s\"\n");
    let server = Server::on(weft, &["--config", path_str(&config)]);
    let url = server.url("");
    let client = Weft::new();
    let file = client.write_file("js-greeter.wasm", &example("js-greeter"));
    let pushed = client.run_without_db_within(
        COMPILE_LIMIT,
        &[
            "plugin",
            "push",
            path_str(&file),
            "--name",
            "js-greeter",
            "--version",
            "0.1.0",
            "--server",
            url.trim_end_matches('/'),
        ],
    );
    pushed.expect_code(0);
    // The server answered 202 at once; push printed the plugin only once it was ready.
    assert!(
        pushed.stdout.starts_with("js-greeter@0.1.0 sha256:") && pushed.stdout.contains("(step world"),
        "{}",
        pushed.stdout
    );
    let shown = client.run_without_db(&["plugin", "list", "--server", url.trim_end_matches('/')]);
    assert!(shown.stdout.contains("js-greeter@0.1.0"), "{}", shown.stdout);
}
