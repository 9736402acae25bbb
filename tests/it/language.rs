//! The workflow language beyond a list of steps, through a real `weft serve` and the CLI:
//! `for_each` over a list (items in order, failures, items waiting for people, a kill -9 in
//! the middle), sub-workflows (results, links both ways, cancel, depth, a kill -9 while the
//! parent waits), `on_failure` steps, `continue_on_error`, a run's `timeout`, retrying a run
//! from its failed step, and finding runs by their inputs.

use crate::common::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Every log line of a run, all pages read.
async fn all_logs(api: &Api, workflow: &str, id: &str) -> Vec<Value> {
    let path = Api::execution_path(workflow, id);
    let mut lines = Vec::new();
    let mut after: Option<u64> = None;
    loop {
        let page_path = match after {
            Some(a) => format!("{path}/logs?limit=1000&after={a}"),
            None => format!("{path}/logs?limit=1000"),
        };
        let page = api.get(&page_path).await.expect_status(200).json();
        let items = page["items"].as_array().expect("log lines").clone();
        if items.is_empty() {
            return lines;
        }
        after = page["next_after"].as_u64();
        lines.extend(items);
        if after.is_none() {
            return lines;
        }
    }
}

/// The messages of `lines` whose step is `step`.
fn step_messages<'a>(lines: &'a [Value], step: &str) -> Vec<&'a str> {
    lines
        .iter()
        .filter(|l| l["step"] == step)
        .filter_map(|l| l["message"].as_str())
        .collect()
}

async fn start(api: &Api, workflow: &str, input: Value) -> Value {
    api.post(
        &format!("/v1/workflows/{workflow}/executions?wait=true"),
        &json!({ "input": input }),
    )
    .await
    .expect_status(200)
    .json()
}

// --- for_each ---

const MAP: &str = r#"
id: map
inputs:
  hosts: {type: json}
steps:
  - name: Each
    plugin: echo
    for_each: "{{ inputs.hosts }}"
    concurrency: 3
    input: {host: "{{ item }}", position: "{{ index }}"}
outputs:
  all: "{{ steps.Each.output }}"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn for_each_maps_a_step_over_a_list_in_order() {
    let server = Server::start();
    server.create_workflow(MAP).await;
    let hosts: Vec<String> = (0..25).map(|i| format!("web{i:02}")).collect();
    let run = start(&server, "map", json!({ "hosts": hosts })).await;
    assert_eq!(state(&run), "completed", "{run:#}");
    let all = run["outputs"]["all"].as_array().expect("a list").clone();
    assert_eq!(all.len(), 25);
    for (i, out) in all.iter().enumerate() {
        assert_eq!(out["host"], hosts[i], "{out}");
        assert_eq!(out["position"], json!(i), "{out}");
    }
    let each = step(&run, "Each");
    assert_eq!(each["map"]["completed"], 25, "{each:#}");
    assert_eq!(each["map"]["active"], json!({}), "{each:#}");

    // An empty list completes at once with an empty list.
    let run = start(&server, "map", json!({ "hosts": [] })).await;
    assert_eq!(run["outputs"]["all"], json!([]), "{run:#}");
    // Not a list: the step fails saying so.
    let run = start(&server, "map", json!({ "hosts": {"a": 1} })).await;
    assert_eq!(state(&run), "failed", "{run:#}");
    let error = step(&run, "Each")["error"].as_str().unwrap_or_default();
    assert!(error.contains("for_each: expected a list"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_failures_fail_fast_or_are_collected() {
    let server = Server::start();
    let yaml = |mode: &str| {
        format!(
            r#"
id: items-{mode}
steps:
  - name: Each
    plugin: fail
    for_each: "{{{{ [1, 2, 3, 4] }}}}"
    concurrency: 1
    on_item_failure: {mode}
    input: {{message: "item {{{{ item }}}} broke", until_attempt: "{{{{ 1 if item != 2 else 99 }}}}"}}
"#
        )
    };
    server.create_workflow(&yaml("collect")).await;
    server.create_workflow(&yaml("fail_fast")).await;

    let run = start(&server, "items-collect", json!({})).await;
    assert_eq!(state(&run), "completed", "{run:#}");
    let out = step(&run, "Each")["output"].clone();
    assert_eq!(out[0], json!({"attempt": 1}), "{out}");
    assert_eq!(out[1], json!({"error": "item 2 broke"}), "{out}");
    assert_eq!(out[3], json!({"attempt": 1}), "{out}");
    assert_eq!(step(&run, "Each")["map"]["failed"], 1);

    let run = start(&server, "items-fail_fast", json!({})).await;
    assert_eq!(state(&run), "failed", "{run:#}");
    let error = step(&run, "Each")["error"].as_str().unwrap_or_default();
    assert!(error.contains("item 1 failed: item 2 broke"), "{error}");
    // With one item at a time, the items after the failed one never started.
    assert_eq!(step(&run, "Each")["map"]["next"], 2, "{run:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_item_may_wait_for_a_person() {
    let server = Server::start();
    server
        .create_workflow(
            r#"
id: approve-each
steps:
  - name: Approve
    plugin: approval
    for_each: "{{ ['dns', 'cert', 'lb'] }}"
    input: {prompt: "Approve {{ item }}?", approvers: [alice]}
"#,
        )
        .await;
    let id = server.start_run("approve-each", &json!({})).await;
    server.wait_state("approve-each", &id, "waiting").await;
    let listed = server.get("/v1/interactions").await.expect_status(200).json();
    let mut steps: Vec<String> = listed["items"]
        .as_array()
        .expect("interactions")
        .iter()
        .filter(|i| i["execution_id"] == id)
        .map(|i| i["step"].as_str().unwrap_or_default().to_owned())
        .collect();
    steps.sort();
    assert_eq!(steps, ["Approve[0]", "Approve[1]", "Approve[2]"]);
    let form = server
        .get(&format!(
            "{}/interaction?step=Approve[1]",
            Api::execution_path("approve-each", &id)
        ))
        .await
        .expect_status(200)
        .json();
    assert_eq!(form["prompt"], "Approve cert?", "{form:#}");
    assert_eq!(form["signal_keys"], json!(["Approve[1].ApprovalStatus"]));

    for k in [2, 0, 1] {
        server
            .post_as(
                "alice",
                &format!("/v1/instances/{id}/signals"),
                &json!({"SignalKey": format!("Approve[{k}].ApprovalStatus"), "Data": {"Approved": "True"}}),
            )
            .await
            .expect_status(204);
    }
    let run = server.wait_state("approve-each", &id, "completed").await;
    let out = step(&run, "Approve")["output"]
        .as_array()
        .expect("a list")
        .clone();
    assert_eq!(out.len(), 3);
    assert!(out.iter().all(|o| o["approved"] == true), "{out:?}");
    // An item that is not waiting any more is refused like a step.
    server
        .post_as(
            "alice",
            &format!("/v1/instances/{id}/signals"),
            &json!({"SignalKey": "Approve[1].ApprovalStatus", "Data": {"Approved": "True"}}),
        )
        .await
        .expect_error(409, "conflict", &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_in_the_middle_of_500_items_redoes_only_what_was_under_way() {
    const ITEMS: usize = 500;
    const CONCURRENCY: usize = 8;
    let mut server = Server::start();
    server
        .create_workflow(&format!(
            r#"
id: slow-map
steps:
  - name: Each
    plugin: sleep
    for_each: "{{{{ range({ITEMS}) | list }}}}"
    concurrency: {CONCURRENCY}
    input: {{ms: 20}}
"#
        ))
        .await;
    let id = server.start_run("slow-map", &json!({})).await;
    let path = Api::execution_path("slow-map", &id);
    server
        .poll(&path, "a quarter done", |run| {
            step(run, "Each")["map"]["completed"].as_u64().unwrap_or(0) >= (ITEMS / 4) as u64
        })
        .await;
    server.restart();
    let run = server.wait_state("slow-map", &id, "completed").await;
    let out = step(&run, "Each")["output"].as_array().expect("a list").clone();
    assert_eq!(out.len(), ITEMS);
    assert!(out.iter().all(|o| o["slept_ms"] == 20), "every item ran");

    // Each item started once, except those under way at the kill (at most the concurrency).
    let lines = all_logs(&server, "slow-map", &id).await;
    let mut starts: BTreeMap<usize, usize> = BTreeMap::new();
    for k in 0..ITEMS {
        let name = format!("Each[{k}]");
        let count = step_messages(&lines, &name)
            .iter()
            .filter(|m| m.starts_with("started"))
            .count();
        starts.insert(k, count);
    }
    assert!(starts.values().all(|&n| n >= 1), "every item started: {starts:?}");
    let again: Vec<usize> = starts.iter().filter(|(_, &n)| n > 1).map(|(&k, _)| k).collect();
    assert!(
        again.len() <= CONCURRENCY,
        "only the items under way at the kill run again, not committed ones: {again:?}"
    );
}

// --- sub-workflows ---

const CHILD: &str = r#"
id: child
inputs:
  name: {type: string}
steps:
  - name: Approve
    plugin: approval
    input: {approvers: [bob]}
  - name: Greet
    plugin: echo
    input: {greeting: "hello {{ inputs.name }}"}
outputs:
  greeting: "{{ steps.Greet.output.greeting }}"
"#;

const PARENT: &str = r#"
id: parent
steps:
  - name: Sub
    workflow: child
    input: {name: "{{ run.started_by }}"}
  - name: After
    plugin: echo
    input: {got: "{{ steps.Sub.output.greeting }}"}
outputs:
  got: "{{ steps.After.output.got }}"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sub_workflow_runs_as_a_linked_child_and_its_outputs_come_back() {
    let server = Server::start();
    server.create_workflow(CHILD).await;
    server.create_workflow(PARENT).await;
    let started = server
        .post_as("carol", "/v1/workflows/parent/executions", &json!({}))
        .await;
    let parent_id = run_id(&started.expect_status(202).json());
    let parent = server.wait_state("parent", &parent_id, "waiting").await;
    let children = parent["children"].as_array().expect("children").clone();
    assert_eq!(children.len(), 1, "{parent:#}");
    let child_id = children[0].as_str().expect("a child id").to_owned();
    assert_eq!(step_state(&parent, "Sub"), "waiting");
    assert_eq!(step(&parent, "Sub")["child"], child_id);
    // The parent itself asks no one anything; the child's approval is listed as any other.
    assert_eq!(parent["waiting_steps"], json!([]), "{parent:#}");
    let child = server.wait_state("child", &child_id, "waiting").await;
    assert_eq!(child["parent"], json!({"run": parent_id, "step": "Sub"}));
    assert_eq!(child["started_by"], "carol");
    let listed = server.get("/v1/interactions").await.expect_status(200).json();
    assert!(
        listed["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|i| i["execution_id"] == child_id),
        "{listed:#}"
    );

    server
        .post_as(
            "bob",
            &format!("/v1/instances/{child_id}/signals"),
            &json!({"SignalKey": "Approve.ApprovalStatus", "Data": {"Approved": "True"}}),
        )
        .await
        .expect_status(204);
    let parent = server.wait_state("parent", &parent_id, "completed").await;
    assert_eq!(parent["outputs"], json!({"got": "hello carol"}), "{parent:#}");
    assert_eq!(step(&parent, "Sub")["output"], json!({"greeting": "hello carol"}));
    assert_eq!(step(&parent, "Sub")["attempt"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canceling_a_parent_cancels_its_child_and_a_failed_child_fails_its_step() {
    let server = Server::start();
    server.create_workflow(CHILD).await;
    server.create_workflow(PARENT).await;
    let parent_id = server.start_run("parent", &json!({})).await;
    let parent = server.wait_state("parent", &parent_id, "waiting").await;
    let child_id = parent["children"][0].as_str().expect("a child").to_owned();
    server
        .delete(&format!("{}/state", Api::execution_path("parent", &parent_id)))
        .await
        .expect_status(204);
    let child = server.wait_state("child", &child_id, "canceled").await;
    assert!(
        child["error"].as_str().is_some_and(|e| e.contains(&parent_id)),
        "{child:#}"
    );

    // A child that fails fails the parent's step, saying which child and why.
    let parent_id = server.start_run("parent", &json!({})).await;
    let parent = server.wait_state("parent", &parent_id, "waiting").await;
    let child_id = parent["children"][0].as_str().expect("a child").to_owned();
    server.wait_state("child", &child_id, "waiting").await;
    server
        .delete(&format!(
            "{}/interaction",
            Api::execution_path("child", &child_id)
        ))
        .await
        .expect_status(204);
    let parent = server.wait_state("parent", &parent_id, "failed").await;
    let error = step(&parent, "Sub")["error"].as_str().unwrap_or_default();
    assert!(error.contains(&child_id) && error.contains("failed"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sub_workflows_nest_only_so_deep_and_unknown_ones_fail_clearly() {
    let weft = Weft::new();
    let config = weft.write_file("weft.toml", b"[limits]\nworkflow_depth = 3\n");
    let server = Server::on(weft, &["--config", path_str(&config)]);
    server
        .create_workflow("id: loop\nsteps:\n  - {name: Again, workflow: loop}\n")
        .await;
    let run = start(&server, "loop", json!({})).await;
    assert_eq!(state(&run), "failed", "{run:#}");
    // The deepest run says why; each parent fails with its child.
    let mut deepest = run.clone();
    let mut depth = 0;
    while let Some(child) = deepest["children"][0].as_str() {
        deepest = server
            .get(&format!("/v1/executions/{child}"))
            .await
            .expect_status(200)
            .json();
        depth += 1;
    }
    assert_eq!(depth, 3, "{run:#}");
    let error = step(&deepest, "Again")["error"].as_str().unwrap_or_default();
    assert!(error.contains("nest at most 3 deep"), "{error}");

    server
        .create_workflow("id: orphan\nsteps:\n  - {name: Call, workflow: nowhere}\n")
        .await;
    let run = start(&server, "orphan", json!({})).await;
    let error = step(&run, "Call")["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("there is no published workflow nowhere"),
        "{error}"
    );

    let refused = server
        .post_raw(
            "/v1/workflows",
            "application/yaml",
            "id: bad\nsteps:\n  - {name: A, workflow: child, plugin: echo}\n  - {name: B}\n  - {name: C, workflow: 'x@zero'}\n",
        )
        .await;
    refused.expect_error(
        400,
        "invalid_definition",
        &[
            "steps[0]: a step has either `plugin` or `workflow`",
            "steps[1]: a step needs `plugin`",
            "steps[2].workflow",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_waiting_on_a_child_survives_kill_9_and_finishes_once() {
    let mut server = Server::start();
    server
        .create_workflow("id: slow-child\nsteps:\n  - {name: Nap, plugin: sleep, input: {ms: 1500}}\noutputs:\n  done: yes\n")
        .await;
    server
        .create_workflow("id: waits\nsteps:\n  - {name: Sub, workflow: slow-child}\n  - {name: After, plugin: echo, input: {x: 1}}\n")
        .await;
    let id = server.start_run("waits", &json!({})).await;
    let parent = server
        .poll(&Api::execution_path("waits", &id), "waiting on its child", |r| {
            r["children"].as_array().is_some_and(|c| !c.is_empty())
        })
        .await;
    let child_id = parent["children"][0].as_str().expect("a child").to_owned();
    server
        .poll(&Api::execution_path("slow-child", &child_id), "napping", |r| {
            step_state(r, "Nap") == "running"
        })
        .await;
    server.restart();
    let parent = server.wait_state("waits", &id, "completed").await;
    assert_eq!(
        parent["children"],
        json!([child_id]),
        "one child, not two: {parent:#}"
    );
    assert_eq!(step(&parent, "Sub")["output"], json!({"done": "yes"}));
    assert_eq!(step(&parent, "After")["attempt"], 1);
    let lines = all_logs(&server, "waits", &id).await;
    let completed = step_messages(&lines, "Sub")
        .iter()
        .filter(|m| m.starts_with("completed"))
        .count();
    assert_eq!(completed, 1, "{lines:#?}");
}

// --- failure handling ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_failure_steps_compensate_and_continue_on_error_goes_on() {
    let server = Server::start();
    server
        .create_workflow(
            r#"
id: compensated
steps:
  - name: Reserve
    plugin: echo
    input: {reserved: true}
  - name: Charge
    plugin: fail
    input: {message: "card declined"}
  - name: Ship
    plugin: echo
    input: {}
on_failure:
  - name: Release
    plugin: echo
    input: {released: "{{ steps.Reserve.output.reserved }}", because: "{{ failure.step }}: {{ failure.error }}"}
"#,
        )
        .await;
    let run = start(&server, "compensated", json!({})).await;
    assert_eq!(state(&run), "failed", "{run:#}");
    assert!(
        run["error"].as_str().is_some_and(|e| e.contains("card declined")),
        "{run:#}"
    );
    assert_eq!(step_state(&run, "Ship"), "canceled");
    let release = step(&run, "Release");
    assert_eq!(release["state"], "completed", "{run:#}");
    assert_eq!(release["output"]["released"], true);
    assert_eq!(
        release["output"]["because"],
        "Charge: step Charge failed: card declined"
    );
    assert_eq!(run["failure"]["step"], "Charge");

    server
        .create_workflow(
            r#"
id: tolerant
steps:
  - name: Optional
    plugin: fail
    continue_on_error: true
    input: {message: "not today"}
  - name: Next
    plugin: echo
    input: {saw: "{{ steps.Optional.state }}", why: "{{ steps.Optional.error }}"}
on_failure:
  - name: Never
    plugin: echo
"#,
        )
        .await;
    let run = start(&server, "tolerant", json!({})).await;
    assert_eq!(state(&run), "completed", "{run:#}");
    assert_eq!(
        step(&run, "Next")["output"],
        json!({"saw": "failed", "why": "not today"})
    );
    assert_eq!(step_state(&run, "Never"), "skipped");

    let refused = server
        .post_raw(
            "/v1/workflows",
            "application/yaml",
            "id: bad\nsteps:\n  - {name: A, plugin: echo, input: {x: '{{ failure.error }}'}}\non_failure:\n  - {name: B, plugin: echo, needs: [A]}\n",
        )
        .await;
    refused.expect_error(
        400,
        "invalid_definition",
        &[
            "steps[0].input.x: failure exists only in a workflow's on_failure steps",
            "on_failure[0].needs[0]: A is a main step",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_past_its_timeout_fails_and_its_interaction_is_canceled() {
    let server = Server::start();
    server
        .create_workflow("id: hurry\ntimeout: 1s\nsteps:\n  - {name: Approve, plugin: approval}\n")
        .await;
    let id = server.start_run("hurry", &json!({})).await;
    let run = server.wait_state("hurry", &id, "failed").await;
    assert!(
        run["error"]
            .as_str()
            .is_some_and(|e| e.contains("timed out after 1s")),
        "{run:#}"
    );
    assert_eq!(step_state(&run, "Approve"), "canceled");
    server
        .get(&format!("{}/interaction", Api::execution_path("hurry", &id)))
        .await
        .expect_status(404);
    server
        .post_raw(
            "/v1/workflows",
            "application/yaml",
            "id: bad\ntimeout: 0s\nsteps:\n  - {name: A, plugin: echo}\n",
        )
        .await
        .expect_error(400, "invalid_definition", &["timeout: must be more than 0s"]);
}

// --- retry from the failed step ---

const FLAKY: &str = r#"
id: flaky
steps:
  - name: Approve
    plugin: approval
    input: {approvers: [alice]}
  - name: Call
    plugin: fail
    input: {message: "backend down"}
  - name: After
    plugin: echo
    input: {x: 1}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_is_retried_from_its_failed_step_keeping_its_approvals() {
    let server = Server::start();
    server.create_workflow(FLAKY).await;
    let id = server.start_run("flaky", &json!({})).await;
    server.wait_state("flaky", &id, "waiting").await;
    server
        .post_as(
            "alice",
            &format!("/v1/instances/{id}/signals"),
            &json!({"SignalKey": "Approve.ApprovalStatus", "Data": {"Approved": "True"}}),
        )
        .await
        .expect_status(204);
    let failed = server.wait_state("flaky", &id, "failed").await;
    let retry = format!("{}/retry", Api::execution_path("flaky", &id));

    // A corrected input for the failed step, then it goes on; the approval is not asked again.
    server
        .post_as(
            "dave",
            &retry,
            &json!({"step": "Call", "input": {"until_attempt": 1}}),
        )
        .await
        .expect_status(200);
    let run = server.wait_state("flaky", &id, "completed").await;
    assert_eq!(
        step(&run, "Approve")["answers"],
        step(&failed, "Approve")["answers"]
    );
    assert_eq!(step(&run, "Approve")["attempt"], 1);
    assert_eq!(step(&run, "Call")["attempt"], 2, "{run:#}");
    assert_eq!(step_state(&run, "After"), "completed");
    assert_eq!(run["retries"][0]["by"], "dave", "{run:#}");
    assert_eq!(run["retries"][0]["steps"], json!(["Call", "After"]));
    let audit = server.get("/v1/audit?limit=1000").await.expect_status(200).json();
    assert!(
        audit["items"]
            .as_array()
            .expect("audit")
            .iter()
            .any(|e| e["action"] == format!("POST {retry}") && e["name"] == "dave"),
        "{audit:#}"
    );

    // Only a failed or canceled run is retried; a bad body says what is wrong.
    server
        .post(&retry, &json!({}))
        .await
        .expect_error(409, "conflict", &["completed"]);
    server.post(&retry, &json!({"step": "Call"})).await.expect_error(
        400,
        "invalid_request",
        &["`step` and `input` together"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_may_move_to_a_newer_version_and_restart_keeps_who_started() {
    let server = Server::start();
    server.create_workflow(FLAKY).await;
    let id = server.start_run("flaky", &json!({})).await;
    server.wait_state("flaky", &id, "waiting").await;
    server
        .post_as(
            "alice",
            &format!("/v1/instances/{id}/signals"),
            &json!({"SignalKey": "Approve.ApprovalStatus", "Data": {"Approved": "True"}}),
        )
        .await
        .expect_status(204);
    server.wait_state("flaky", &id, "failed").await;
    let fixed = FLAKY.replace("{message: \"backend down\"}", "{until_attempt: 1}");
    let v2 = server.create_workflow(&fixed).await;
    assert_eq!(v2["version"], 2);
    server
        .post(
            &format!("{}/retry", Api::execution_path("flaky", &id)),
            &json!({"version": 2}),
        )
        .await
        .expect_status(200);
    let run = server.wait_state("flaky", &id, "completed").await;
    assert_eq!(run["workflow"]["version"], 2, "{run:#}");
    assert_eq!(run["retries"][0]["version"], 2);

    // Restart: a new run, started by whoever started the first, restarted by the caller.
    let first = server
        .post_as("erin", "/v1/workflows/flaky/executions", &json!({}))
        .await;
    let first = run_id(&first.expect_status(202).json());
    server.wait_state("flaky", &first, "waiting").await;
    server
        .delete(&format!("{}/state", Api::execution_path("flaky", &first)))
        .await
        .expect_status(204);
    let restarted = server
        .post_as(
            "frank",
            &format!("{}/restart", Api::execution_path("flaky", &first)),
            &json!({}),
        )
        .await;
    let new = run_id(&restarted.expect_status(202).json());
    let run = server.execution("flaky", &new).await;
    assert_eq!(run["started_by"], "erin", "{run:#}");
    assert_eq!(run["restarted_by"], "frank");
    assert_eq!(run["restarted_from"], first);
}

#[test]
fn weft_retry_continues_a_failed_run_locally() {
    let weft = Weft::new();
    let file = weft.write_workflow(
        "flaky.yaml",
        "id: flaky-local\nsteps:\n  - {name: A, plugin: echo, input: {x: 1}}\n  - {name: B, plugin: fail, input: {message: broke}}\n",
    );
    let (out, run) = weft.start(&file, &[]);
    out.expect_code(1);
    let id = run_id(&run);
    let retried = weft.run(&[
        "retry",
        &id,
        "--step",
        "B",
        "--input",
        r#"{"until_attempt": 1}"#,
        "--as",
        "gina",
    ]);
    retried
        .expect_code(0)
        .expect_stderr(&["retried by gina: completed"]);
    let run = weft.record(&id);
    assert_eq!(state(&run), "completed");
    assert_eq!(step(&run, "A")["attempt"], 1, "A ran once");
    weft.run(&["retry", &id])
        .expect_code(1)
        .expect_stderr(&["only failed or canceled runs"]);
}

// --- finding runs by their inputs ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_are_found_by_their_inputs() {
    let server = Server::start();
    server
        .create_workflow(
            "id: hosts\ninputs:\n  host: {type: string}\n  port: {type: integer, default: 443}\n  secret: {type: secure-string, default: s3cr3t}\nsteps:\n  - {name: A, plugin: echo}\n",
        )
        .await;
    let mut ids = BTreeMap::new();
    for (host, port) in [("a", 443), ("b", 443), ("a", 8443), ("a", 443)] {
        let run = start(&server, "hosts", json!({"host": host, "port": port})).await;
        ids.entry((host, port))
            .or_insert_with(Vec::new)
            .push(run_id(&run));
    }
    let found = |query: &'static str| {
        let api = server.api();
        async move {
            let page = api.get(query).await.expect_status(200).json();
            let mut found: Vec<String> = page["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(run_id)
                .collect();
            found.sort();
            found
        }
    };
    let mut a_443 = ids[&("a", 443)].clone();
    a_443.sort();
    assert_eq!(found("/v1/executions?input.host=a&input.port=443").await, a_443);
    assert_eq!(
        found("/v1/workflows/hosts/executions?input.host=a").await.len(),
        3
    );
    assert_eq!(
        found("/v1/executions?input.host=b&limit=5").await,
        ids[&("b", 443)]
    );
    assert!(found("/v1/executions?input.host=zzz").await.is_empty());
    // A secure string is never indexed.
    assert!(found("/v1/executions?input.secret=s3cr3t").await.is_empty());
    // Paging goes on from the cursor.
    let first = server
        .get("/v1/executions?input.host=a&limit=2")
        .await
        .expect_status(200)
        .json();
    let cursor = first["next_cursor"].as_str().expect("a next page");
    let rest = server
        .get(&format!("/v1/executions?input.host=a&limit=2&cursor={cursor}"))
        .await
        .expect_status(200)
        .json();
    assert_eq!(rest["items"].as_array().map(Vec::len), Some(1), "{rest:#}");
    server.get("/v1/executions?hots=a").await.expect_error(
        400,
        "invalid_request",
        &["unknown query parameter hots"],
    );

    let weft = Weft::new();
    let file = weft.write_workflow(
        "h.yaml",
        "id: h\ninputs:\n  host: {type: string}\nsteps:\n  - {name: A, plugin: echo}\n",
    );
    let mut started = Vec::new();
    for host in ["x", "y"] {
        let (out, run) = weft.start(&file, &["-i", &format!("host={host}")]);
        out.expect_code(0);
        started.push(run_id(&run));
    }
    // The listing shows runs as the API lists them (summaries, without inputs).
    let listed = weft.json(&["runs", "list", "--input", "host=y", "--json"]);
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed:#}");
    assert_eq!(listed[0]["id"], started[1].as_str());
}
