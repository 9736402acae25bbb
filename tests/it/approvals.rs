//! Runs that wait for people: approvals, forms, refused answers and cancellation, through
//! `weft run`, `weft answer` and `weft cancel`.

use crate::common::*;
use serde_json::{json, Value};

const SIGNAL: &str = "RequireApproval1.ApprovalStatus";

/// A 2-of-3 approval followed by a step that uses who approved.
const TWO_OF_THREE: &str = r#"
id: two-of-three
steps:
  - name: RequireApproval1
    plugin: approval
    input:
      prompt: "Issue the certificate?"
      approvers: [alice, bob, carol]
      min_approvals: 2
      deny_limit: 2
  - name: Issue
    plugin: echo
    input:
      approved_by: "{{ steps.RequireApproval1.output.approvals | map(attribute='by') | list }}"
outputs:
  approved_by: "{{ steps.Issue.output.approved_by }}"
"#;

/// Who answered a step, in order.
fn answered_by(record: &Value, step_name: &str) -> Vec<String> {
    step(record, step_name)["answers"]
        .as_array()
        .expect("answers is a list")
        .iter()
        .map(|a| {
            a["answered_by"]
                .as_str()
                .expect("answered_by is a string")
                .to_owned()
        })
        .collect()
}

/// The `by` of each vote in an approval's `approvals` or `denials`.
fn voters(votes: &Value) -> Vec<&str> {
    votes
        .as_array()
        .expect("votes are a list")
        .iter()
        .map(|v| v["by"].as_str().expect("a vote has `by`"))
        .collect()
}

/// Answers and checks the answer was refused with `message`, leaving the stored record
/// byte for byte as it was.
#[track_caller]
fn refused(weft: &Weft, id: &str, signal: &str, data: &str, who: &str, message: &[&str]) {
    let before = weft.show(id);
    let out = weft.answer(id, signal, data, who);
    assert_ne!(out.code, 0, "the answer was accepted: {out:?}");
    assert_ne!(out.code, 2, "a refused answer exits as an error: {out:?}");
    out.expect_stderr(message);
    let after = weft.show(id);
    assert_eq!(after.code, before.code);
    assert_eq!(after.stdout, before.stdout, "a refused answer changed the run");
}

#[test]
fn two_of_three_approvers_complete_the_step() {
    let weft = Weft::new();
    let file = weft.write_workflow("approve.yaml", TWO_OF_THREE);

    let (out, run) = weft.start(&file, &["--as", "requester"]);
    out.expect_code(2);
    let id = run_id(&run);
    assert_eq!(state(&run), "waiting");
    let approval = step(&run, "RequireApproval1");
    assert_eq!(approval["state"], "waiting");
    assert_eq!(approval["waiting"]["signal_types"], json!(["ApprovalStatus"]));
    assert_eq!(approval["waiting"]["assignees"], json!(["alice", "bob", "carol"]));
    assert_eq!(approval["waiting"]["prompt"], "Issue the certificate?");
    assert_eq!(step_state(&run, "Issue"), "pending");
    assert_eq!(weft.record(&id), run, "the printed record is the stored one");

    // One approval of two: still waiting.
    let out = weft.answer(&id, SIGNAL, r#"{"Approved":true,"Comment":"fine"}"#, "alice");
    out.expect_code(2);
    let run = out.json();
    assert_eq!(state(&run), "waiting");
    assert_eq!(step_state(&run, "RequireApproval1"), "waiting");
    assert_eq!(answered_by(&run, "RequireApproval1"), ["alice"]);
    assert_eq!(weft.record(&id), run);

    // Each approver counts once.
    refused(
        &weft,
        &id,
        SIGNAL,
        r#"{"Approved":true}"#,
        "alice",
        &["alice has already answered"],
    );
    assert_eq!(answered_by(&weft.record(&id), "RequireApproval1"), ["alice"]);

    // bob approves with Keyfactor's string form.
    let out = weft.answer(&id, SIGNAL, r#"{"Approved":"True"}"#, "bob");
    out.expect_code(0);
    let run = out.json();
    assert_eq!(state(&run), "completed", "{run:#}");
    let output = &step(&run, "RequireApproval1")["output"];
    assert_eq!(output["approved"], true);
    assert_eq!(voters(&output["approvals"]), ["alice", "bob"]);
    assert_eq!(output["approvals"][0]["comment"], "fine");
    assert_eq!(output["denials"], json!([]));
    assert_eq!(output["expired"], false);
    assert_eq!(answered_by(&run, "RequireApproval1"), ["alice", "bob"]);
    assert_eq!(run["outputs"], json!({"approved_by": ["alice", "bob"]}));
    assert_eq!(weft.record(&id), run);

    // The step is done: carol's answer is refused, naming the state.
    refused(
        &weft,
        &id,
        SIGNAL,
        r#"{"Approved":true}"#,
        "carol",
        &["not waiting", "completed"],
    );
}

#[test]
fn enough_denials_reject_the_run_and_strangers_are_refused() {
    let weft = Weft::new();
    let file = weft.write_workflow("approve.yaml", TWO_OF_THREE);
    let (out, run) = weft.start(&file, &["--as", "requester"]);
    out.expect_code(2);
    let id = run_id(&run);

    refused(
        &weft,
        &id,
        SIGNAL,
        r#"{"Approved":true}"#,
        "dave",
        &["dave", "alice, bob, carol"],
    );
    refused(
        &weft,
        &id,
        SIGNAL,
        r#"{"Approved":"maybe"}"#,
        "alice",
        &["field Approved", "boolean"],
    );
    refused(
        &weft,
        &id,
        SIGNAL,
        r#"{"Comment":"no verdict"}"#,
        "alice",
        &["Approved"],
    );

    // One denial of two: still waiting (with the string form of false).
    let out = weft.answer(&id, SIGNAL, r#"{"Approved":"False","Comment":"no"}"#, "alice");
    out.expect_code(2);
    assert_eq!(state(&out.json()), "waiting");

    let out = weft.answer(&id, SIGNAL, r#"{"Approved":false}"#, "bob");
    out.expect_code(1);
    let run = out.json();
    assert_eq!(state(&run), "rejected", "{run:#}");
    let approval = step(&run, "RequireApproval1");
    assert_eq!(approval["state"], "failed");
    assert_eq!(approval["error"], "rejected");
    assert_eq!(approval["output"]["approved"], false);
    assert_eq!(voters(&approval["output"]["denials"]), ["alice", "bob"]);
    assert_eq!(approval["output"]["approvals"], json!([]));
    assert_eq!(step_state(&run, "Issue"), "canceled");
    assert!(
        run["error"]
            .as_str()
            .is_some_and(|e| e.contains("RequireApproval1 was rejected")),
        "{run:#}"
    );
    assert!(run["outputs"].is_null());
    weft.show(&id).expect_code(1);
}

#[test]
fn the_requester_may_not_approve_when_self_approval_is_off() {
    let weft = Weft::new();
    let file = weft.write_workflow(
        "self.yaml",
        r#"
id: self
steps:
  - name: Approve
    plugin: approval
    input: {self_approval: false}
"#,
    );
    let (out, run) = weft.start(&file, &["--as", "alice"]);
    out.expect_code(2);
    let id = run_id(&run);
    assert_eq!(run["started_by"], "alice");

    refused(
        &weft,
        &id,
        "Approve.ApprovalStatus",
        r#"{"Approved":true}"#,
        "alice",
        &["self_approval"],
    );
    let run = weft.record(&id);
    assert_eq!(state(&run), "waiting");
    assert_eq!(step(&run, "Approve")["answers"], json!([]));

    let out = weft.answer(&id, "Approve.ApprovalStatus", r#"{"Approved":true}"#, "bob");
    out.expect_code(0);
    let run = out.json();
    assert_eq!(state(&run), "completed");
    assert_eq!(voters(&step(&run, "Approve")["output"]["approvals"]), ["bob"]);
}

#[test]
fn a_form_answer_is_checked_and_converted() {
    let weft = Weft::new();
    let file = weft.write_workflow(
        "form.yaml",
        r#"
id: form
steps:
  - name: Ask
    plugin: interaction
    input:
      prompt: "Which key?"
      fields:
        - {name: name, type: string, required: true}
        - {name: size, type: integer, choices: [2048, 4096]}
        - {name: notify, type: boolean, default: false}
  - name: Use
    plugin: echo
    input: {size: "{{ steps.Ask.output.size }}", notify: "{{ steps.Ask.output.notify }}"}
outputs:
  answer: "{{ steps.Ask.output }}"
"#,
    );
    let (out, run) = weft.start(&file, &["--as", "alice"]);
    out.expect_code(2);
    let id = run_id(&run);
    let waiting = &step(&run, "Ask")["waiting"];
    assert_eq!(waiting["prompt"], "Which key?");
    assert_eq!(waiting["signal_types"], json!(["UserInteraction"]));
    let fields = waiting["fields"].as_array().expect("fields");
    let shape: Vec<(&str, &str)> = fields
        .iter()
        .map(|f| (f["name"].as_str().unwrap(), f["type"].as_str().unwrap()))
        .collect();
    assert_eq!(
        shape,
        [("name", "string"), ("size", "integer"), ("notify", "boolean")]
    );
    assert_eq!(fields[1]["choices"], json!([2048, 4096]));
    assert_eq!(fields[2]["default"], false);

    let signal = "Ask.UserInteraction";
    refused(
        &weft,
        &id,
        signal,
        r#"{"name":"x","size":"big"}"#,
        "alice",
        &["field size", "integer", "big"],
    );
    refused(
        &weft,
        &id,
        signal,
        r#"{"name":"x","size":1024}"#,
        "alice",
        &["field size", "one of"],
    );
    refused(
        &weft,
        &id,
        signal,
        r#"{"size":2048}"#,
        "alice",
        &["field name is required"],
    );
    refused(
        &weft,
        &id,
        signal,
        r#"{"name":"x","size":2048,"colour":"red"}"#,
        "alice",
        &["unknown field colour"],
    );
    // Every problem at once.
    refused(
        &weft,
        &id,
        signal,
        r#"{"size":"big","notify":"perhaps"}"#,
        "alice",
        &["field name", "field size", "field notify"],
    );
    assert_eq!(state(&weft.record(&id)), "waiting");

    let out = weft.answer(&id, signal, r#"{"name":"web01","size":"4096"}"#, "alice");
    out.expect_code(0);
    let run = out.json();
    assert_eq!(state(&run), "completed", "{run:#}");
    let expected = json!({"name": "web01", "size": 4096, "notify": false});
    assert_eq!(step(&run, "Ask")["output"], expected);
    assert_eq!(
        step(&run, "Use")["output"],
        json!({"size": 4096, "notify": false})
    );
    assert_eq!(run["outputs"], json!({"answer": expected}));
    assert_eq!(answered_by(&run, "Ask"), ["alice"]);
}

/// The WIT contract says an interaction's `assignees` are who may answer ("Empty means
/// anyone"), but neither the host nor the `interaction` plugin checks them.
#[test]
fn only_assignees_may_answer_a_form() {
    let weft = Weft::new();
    let file = weft.write_workflow(
        "assigned.yaml",
        r#"
id: assigned
steps:
  - name: Ask
    plugin: interaction
    input:
      assignees: [alice]
      fields: [{name: ok, type: boolean}]
"#,
    );
    let (out, run) = weft.start(&file, &["--as", "alice"]);
    out.expect_code(2);
    let id = run_id(&run);
    refused(
        &weft,
        &id,
        "Ask.UserInteraction",
        r#"{"ok":true}"#,
        "mallory",
        &["mallory"],
    );
    weft.answer(&id, "Ask.UserInteraction", r#"{"ok":true}"#, "alice")
        .expect_code(0);
}

#[test]
fn a_waiting_run_can_be_canceled_once() {
    let weft = Weft::new();
    let file = weft.write_workflow("approve.yaml", TWO_OF_THREE);
    let (out, run) = weft.start(&file, &["--as", "requester"]);
    out.expect_code(2);
    let id = run_id(&run);

    let out = weft.run(&["cancel", &id, "--as", "ops"]);
    out.expect_code(0);
    assert!(out.stdout.contains("canceled"), "{}", out.stdout);
    let shown = weft.show(&id);
    shown.expect_code(1);
    let run = shown.json();
    assert_eq!(state(&run), "canceled");
    assert_eq!(run["error"], "canceled by ops");
    assert!(run["ended_at"].is_string());
    for name in ["RequireApproval1", "Issue"] {
        assert_eq!(step_state(&run, name), "canceled");
        assert!(step(&run, name)["waiting"].is_null());
    }

    let again = weft.run(&["cancel", &id, "--as", "ops"]);
    again.expect_code(1);
    again.expect_stderr(&["already finished (canceled)"]);
    refused(
        &weft,
        &id,
        SIGNAL,
        r#"{"Approved":true}"#,
        "alice",
        &["not waiting", "canceled"],
    );
    assert_eq!(
        weft.show(&id).stdout,
        shown.stdout,
        "the record changed after the cancel"
    );
}

#[test]
fn misaddressed_answers_are_refused_and_change_nothing() {
    let weft = Weft::new();
    let file = weft.write_workflow(
        "guarded.yaml",
        r#"
id: guarded
steps:
  - {name: Prepare, plugin: echo, input: {x: 1}}
  - {name: Approve, plugin: approval}
"#,
    );
    let (out, run) = weft.start(&file, &["--as", "requester"]);
    out.expect_code(2);
    let id = run_id(&run);
    let before = weft.show(&id);

    let ok = r#"{"Approved":true}"#;
    refused(
        &weft,
        &id,
        "Prepare.ApprovalStatus",
        ok,
        "alice",
        &["step Prepare is completed, not waiting; waiting now: Approve"],
    );
    refused(
        &weft,
        &id,
        "Approve.Approval",
        ok,
        "alice",
        &[
            "does not accept signal type \"Approval\"",
            "it accepts Approve.ApprovalStatus",
        ],
    );
    refused(
        &weft,
        &id,
        "Nope.ApprovalStatus",
        ok,
        "alice",
        &["has no step Nope", "waiting now: Approve"],
    );
    refused(
        &weft,
        &id,
        "ApproveApprovalStatus",
        ok,
        "alice",
        &["not a signal key", "Step.SignalType"],
    );
    refused(
        &weft,
        &id,
        "Approve.ApprovalStatus",
        "{Approved:",
        "alice",
        &["not valid JSON"],
    );
    refused(
        &weft,
        &id,
        "Approve.ApprovalStatus",
        "true",
        "alice",
        &["must be a JSON object"],
    );

    let unknown = "01a20000-0000-7000-8000-000000000000";
    let out = weft.answer(unknown, "Approve.ApprovalStatus", ok, "alice");
    out.expect_code(1);
    out.expect_stderr(&["no run 01a20000-0000-7000-8000-000000000000"]);
    let out = weft.show(unknown);
    out.expect_code(1);
    out.expect_stderr(&["no run"]);
    let out = weft.answer("not-a-run-id", "Approve.ApprovalStatus", ok, "alice");
    out.expect_code(1);
    out.expect_stderr(&["not-a-run-id"]);

    let after = weft.show(&id);
    assert_eq!(after.stdout, before.stdout, "a refused answer changed the run");
    // The run still takes the right answer.
    weft.answer(&id, "Approve.ApprovalStatus", ok, "alice")
        .expect_code(0);
}
