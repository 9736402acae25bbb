//! The CLI's client commands (`--server URL`) against a real `weft serve`.

use crate::common::{hostile_wasm, path_str, run_id, state, step, Server, Weft};

#[test]
fn client_commands_drive_a_server() {
    let server = Server::start();
    let url = server.url("");
    let url = url.trim_end_matches('/');
    let client = Weft::new();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/certificate-request.yaml");

    let applied = client.run(&["workflow", "apply", example, "--server", url]);
    applied.expect_code(0);
    assert!(
        applied
            .stdout
            .contains("certificate-request v1 created (published"),
        "{}",
        applied.stdout
    );

    let pushed = client.run(&[
        "plugin",
        "push",
        path_str(&hostile_wasm()),
        "--name",
        "hostile",
        "--version",
        "1.0.0",
        "--server",
        url,
    ]);
    pushed.expect_code(0);
    assert!(
        pushed.stdout.starts_with("hostile@1.0.0 sha256:"),
        "{}",
        pushed.stdout
    );
    let listed = client.run(&["plugin", "list", "--server", url]);
    assert!(
        listed.stdout.contains("hostile@1.0.0") && listed.stdout.contains("approval@"),
        "{}",
        listed.stdout
    );

    let started = client.run(&[
        "start",
        "certificate-request",
        "-i",
        "common_name=web01.example.com",
        "--wait",
        "--as",
        "alice",
        "--json",
        "--server",
        url,
    ]);
    started.expect_code(2);
    let record = started.json();
    assert_eq!(state(&record), "waiting");
    assert_eq!(record["started_by"], "alice");
    let id = run_id(&record);

    let waiting = client.run(&["runs", "list", "--state", "waiting", "--server", url]);
    assert!(waiting.stdout.contains(&id), "{}", waiting.stdout);

    let wrong = client.run(&[
        "answer",
        &id,
        "IssueCertificate.ApprovalStatus",
        r#"{"Approved":true}"#,
        "--server",
        url,
    ]);
    wrong
        .expect_code(1)
        .expect_stderr(&["409", "waiting now: RequireApproval1"]);

    let answered = client.run(&[
        "answer",
        &id,
        "RequireApproval1.ApprovalStatus",
        r#"{"Approved":"True","Comment":"ok"}"#,
        "--as",
        "bob",
        "--json",
        "--server",
        url,
    ]);
    answered.expect_code(0);
    let record = answered.json();
    assert_eq!(state(&record), "completed");
    assert_eq!(
        step(&record, "RequireApproval1")["answers"][0]["answered_by"],
        "bob"
    );
    assert_eq!(record["outputs"]["subject"], "CN=web01.example.com");

    let shown = client.run(&["runs", "show", &id, "--server", url]);
    shown.expect_code(0);
    assert!(shown.stdout.contains(": completed"), "{}", shown.stdout);
}
