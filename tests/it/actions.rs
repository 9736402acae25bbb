//! Actions against a real `weft serve`: targets are real WASM components (the bundled
//! `audit-sink` and `policy`, and the test-only `probe` uploaded over HTTP), rules are set
//! with ZITADEL's SetExecution body, and what targets did is read back from the actions log.

use crate::common::{probe_wasm, Api, Server, Weft};
use serde_json::{json, Value};

/// A workflow whose output `note` is its input `note`, so a run shows what request targets
/// did to its inputs.
const NOTED: &str = r#"
id: noted
inputs:
  note: {type: string, default: ""}
  common_name: {type: string, default: "web01.example.com"}
steps:
  - name: Echo
    plugin: echo
    input: {note: "{{ inputs.note }}"}
outputs:
  note: "{{ inputs.note }}"
"#;

const START: &str = "/v1.Executions/Start";

/// Uploads the `probe` target plugin as probe@1.0.0.
async fn upload_probe(api: &Api) {
    let bytes = std::fs::read(probe_wasm()).expect("the probe plugin was built");
    let uploaded = api
        .post_raw("/v1/plugins?name=probe&version=1.0.0", "application/wasm", bytes)
        .await;
    assert_eq!(uploaded.expect_status(201).json()["world"], "target");
}

/// Creates a target and returns its id.
async fn create_target(api: &Api, body: Value) -> String {
    let created = api.post("/v1/actions/targets", &body).await;
    created.expect_status(201).json()["id"]
        .as_str()
        .expect("a target id")
        .to_owned()
}

/// A probe target's body.
fn probe(name: &str, kind: &str, config: Value) -> Value {
    json!({"name": name, "plugin": "probe@1.0.0", "type": kind, "timeout": "10s", "config": config})
}

/// A call probe that appends `text` to the string at `pointer` of the payload.
fn appender(name: &str, pointer: &str, text: &str) -> Value {
    probe(
        name,
        "call",
        json!({"append": {"pointer": pointer, "text": text}}),
    )
}

/// Sets an execution rule with ZITADEL's SetExecution body; panics unless it is accepted.
async fn set_rule(api: &Api, condition: Value, targets: Vec<Value>) -> Value {
    api.put(
        "/v1/actions/executions",
        &json!({"condition": condition, "targets": targets}),
    )
    .await
    .expect_status(200)
    .json()
}

fn target_entry(id: &str) -> Value {
    json!({"target": id})
}

fn start_method() -> Value {
    json!({"request": {"method": START}})
}

/// Starts `noted` with `note`, waits for the run, and returns the whole answer.
async fn start_noted(api: &Api, note: &str) -> crate::common::Resp {
    api.post(
        "/v1/workflows/noted/executions?wait=true",
        &json!({"input": {"note": note}}),
    )
    .await
}

/// The `note` output of a run started (and awaited) with `note`.
async fn noted(api: &Api, note: &str) -> String {
    let started = start_noted(api, note).await;
    let run = started.expect_status(200).json();
    assert_eq!(run["state"], "completed", "{run:#}");
    run["outputs"]["note"].as_str().expect("a note output").to_owned()
}

/// Polls the actions log until `done` accepts its entries matching `query`.
async fn log_until(api: &Api, query: &str, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let page = api
        .poll(&format!("/v1/actions/log?{query}"), what, |page| {
            done(page["items"].as_array().expect("log items"))
        })
        .await;
    page["items"].as_array().expect("log items").clone()
}

/// The actions log entries matching `query` now.
async fn log_now(api: &Api, query: &str) -> Vec<Value> {
    let page = api
        .get(&format!("/v1/actions/log?{query}"))
        .await
        .expect_status(200)
        .json();
    page["items"].as_array().expect("log items").clone()
}

/// Whether any plugin log line of `entry` contains `needle`.
fn logged(entry: &Value, needle: &str) -> bool {
    entry["logs"].as_array().is_some_and(|lines| {
        lines
            .iter()
            .any(|l| l["message"].as_str().is_some_and(|m| m.contains(needle)))
    })
}

async fn runs_of_noted(api: &Api) -> usize {
    let page = api
        .get("/v1/workflows/noted/executions")
        .await
        .expect_status(200)
        .json();
    page["items"].as_array().map_or(0, Vec::len)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_targets_run_in_order_and_chain_their_payloads() {
    let server = Server::start();
    server.create_workflow(NOTED).await;
    upload_probe(&server).await;
    let a = create_target(&server, appender("append-a", "/request/input/note", "A")).await;
    let b = create_target(&server, appender("append-b", "/request/input/note", "B")).await;
    // A webhook's returned payload is ignored: only success or failure matters.
    let mut webhook = appender("webhook-w", "/request/input/note", "W");
    webhook["type"] = json!("webhook");
    let w = create_target(&server, webhook).await;
    let r = create_target(&server, appender("respond-r", "/response/note", "R")).await;
    set_rule(
        &server,
        start_method(),
        vec![target_entry(&a), target_entry(&w), target_entry(&b)],
    )
    .await;
    set_rule(
        &server,
        json!({"response": {"method": START}}),
        vec![target_entry(&r)],
    )
    .await;

    let started = start_noted(&server, ">").await;
    let run = started.expect_status(200).json();
    assert_eq!(run["outputs"]["note"], ">AB", "{run:#}");
    // The response target changed the answer the client got.
    assert_eq!(run["note"], "R", "{run:#}");

    let calls = log_until(&server, &format!("trigger={START}"), "four calls", |items| {
        items.len() >= 4
    })
    .await;
    let order: Vec<&str> = calls.iter().map(|c| c["name"].as_str().unwrap_or("?")).collect();
    assert_eq!(
        order,
        ["append-a", "webhook-w", "append-b", "respond-r"],
        "{calls:#?}"
    );
    assert!(calls.iter().all(|c| c["ok"] == true), "{calls:#?}");
    assert_eq!(calls[0]["changed"], true);
    assert_eq!(calls[1]["changed"], false);
    // Each target saw what the one before it returned.
    assert!(logged(&calls[1], r#""note":">A""#), "{:#}", calls[1]);
    assert!(logged(&calls[2], r#""note":">A""#), "{:#}", calls[2]);
    assert!(logged(&calls[3], r#""status":200"#), "{:#}", calls[3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_webhook_interrupts_only_with_interrupt_on_error() {
    let server = Server::start();
    server.create_workflow(NOTED).await;
    upload_probe(&server).await;
    let fail = json!({"fail": {"message": "the webhook is down", "status": 409}});
    let hook = create_target(&server, probe("down", "webhook", fail)).await;
    let after = create_target(&server, appender("after", "/request/input/note", "+")).await;
    set_rule(
        &server,
        start_method(),
        vec![target_entry(&hook), target_entry(&after)],
    )
    .await;

    // Without interrupt_on_error the failure is logged and the chain goes on.
    assert_eq!(noted(&server, "").await, "+");
    let failed = log_until(&server, &format!("target={hook}"), "a failed call", |i| {
        !i.is_empty()
    })
    .await;
    assert_eq!(
        (&failed[0]["ok"], &failed[0]["interrupted"], &failed[0]["status"]),
        (&json!(false), &json!(false), &json!(409))
    );
    assert_eq!(failed[0]["error"], "the webhook is down");

    // With it, the caller gets the target's status and message, and no run starts.
    let before = runs_of_noted(&server).await;
    server
        .put(
            &format!("/v1/actions/targets/{hook}"),
            &json!({"interrupt_on_error": true}),
        )
        .await
        .expect_status(200);
    start_noted(&server, "")
        .await
        .expect_error(409, "refused_by_action", &["down", "the webhook is down"]);
    assert_eq!(runs_of_noted(&server).await, before);

    // A failure without a status is a 502.
    server
        .put(
            &format!("/v1/actions/targets/{hook}"),
            &json!({"config": {"fail": {"message": "no status"}}}),
        )
        .await
        .expect_status(200);
    start_noted(&server, "")
        .await
        .expect_error(502, "action_failed", &["down", "no status"]);
    assert_eq!(runs_of_noted(&server).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_targets_never_block_or_interrupt() {
    let server = Server::start();
    server.create_workflow(NOTED).await;
    upload_probe(&server).await;
    let mut interrupting = probe("async-x", "async", json!({}));
    interrupting["interrupt_on_error"] = json!(true);
    server
        .post("/v1/actions/targets", &interrupting)
        .await
        .expect_error(400, "invalid_request", &["interrupt_on_error", "async"]);

    let mut slow = probe("async-slow", "async", json!({"sleep_ms": 30_000}));
    slow["timeout"] = json!("60s");
    let slow = create_target(&server, slow).await;
    let fail = json!({"fail": {"message": "async boom", "status": 403}});
    let failing = create_target(&server, probe("async-fail", "async", fail)).await;
    let after = create_target(&server, appender("after", "/request/input/note", "A")).await;
    set_rule(
        &server,
        start_method(),
        vec![target_entry(&slow), target_entry(&failing), target_entry(&after)],
    )
    .await;

    // The request is answered while the slow target still sleeps, and the failing one does
    // not stop the chain.
    assert_eq!(noted(&server, "").await, "A");
    assert!(log_now(&server, &format!("target={slow}")).await.is_empty());
    let failed = log_until(&server, &format!("target={failing}"), "logged", |i| !i.is_empty()).await;
    assert_eq!(
        (&failed[0]["ok"], &failed[0]["interrupted"], &failed[0]["type"]),
        (&json!(false), &json!(false), &json!("async"))
    );
    assert_eq!(failed[0]["error"], "async boom");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_target_rejecting_a_start_with_403_reaches_the_client() {
    let server = Server::start();
    server.create_workflow(NOTED).await;
    let policy = json!({
        "name": "example-names-only",
        "plugin": "policy",
        "type": "call",
        "timeout": "5s",
        "interrupt_on_error": true,
        "config": {"input": "common_name", "pattern": "\\.example\\.com$"},
    });
    let policy = create_target(&server, policy).await;
    set_rule(&server, start_method(), vec![target_entry(&policy)]).await;
    let before = runs_of_noted(&server).await;

    let path = "/v1/workflows/noted/executions";
    let refused = server
        .post(path, &json!({"input": {"common_name": "evil.org"}}))
        .await;
    refused.expect_error(
        403,
        "refused_by_action",
        &["example-names-only", "common_name", "evil.org"],
    );
    // The inputs are read from vRO's body shape too.
    let vro = json!({"parameters": [{"name": "common_name", "type": "string",
        "value": {"string": {"value": "evil.org"}}}]});
    server
        .post(path, &vro)
        .await
        .expect_error(403, "refused_by_action", &["evil.org"]);
    assert_eq!(runs_of_noted(&server).await, before);

    server
        .post(path, &json!({"input": {"common_name": "web01.example.com"}}))
        .await
        .expect_status(202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pre_start_function_changes_inputs_and_can_refuse_a_run() {
    let server = Server::start();
    server.create_workflow(NOTED).await;
    upload_probe(&server).await;
    let stamp = create_target(&server, appender("stamp", "/inputs/note", "F")).await;
    let function = json!({"function": {"name": "pre_start"}});
    set_rule(&server, function.clone(), vec![target_entry(&stamp)]).await;
    assert_eq!(noted(&server, "").await, "F");

    let policy = json!({
        "name": "policy", "plugin": "policy", "type": "webhook", "interrupt_on_error": true,
        "config": {"input": "common_name", "pattern": "^web"},
    });
    let policy = create_target(&server, policy).await;
    set_rule(
        &server,
        function,
        vec![target_entry(&stamp), target_entry(&policy)],
    )
    .await;
    server
        .post(
            "/v1/workflows/noted/executions",
            &json!({"input": {"common_name": "db01.example.com"}}),
        )
        .await
        .expect_error(400, "invalid_input", &["pre_start", "policy", "db01.example.com"]);

    server
        .put(
            "/v1/actions/executions",
            &json!({"condition": {"function": {"name": "post_start"}}, "targets": [{"target": stamp}]}),
        )
        .await
        .expect_error(
            400,
            "invalid_request",
            &["function.name", "post_start", "pre_start"],
        );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_most_specific_rule_wins() {
    let server = Server::start();
    server.create_workflow(NOTED).await;
    upload_probe(&server).await;
    let method = create_target(&server, appender("method", "/request/input/note", "M")).await;
    let service = create_target(&server, appender("service", "/request/input/note", "S")).await;
    let all = create_target(&server, appender("all", "/request/input/note", "*")).await;
    set_rule(
        &server,
        json!({"request": {"all": true}}),
        vec![target_entry(&all)],
    )
    .await;
    set_rule(
        &server,
        json!({"request": {"service": "v1.Executions"}}),
        vec![target_entry(&service)],
    )
    .await;
    set_rule(&server, start_method(), vec![target_entry(&method)]).await;

    assert_eq!(noted(&server, "").await, "M");
    // An empty list removes a rule, so the next broader one applies.
    let removed = set_rule(&server, start_method(), vec![]).await;
    assert_eq!(removed["targets"], json!([]));
    assert_eq!(noted(&server, "").await, "S");
    set_rule(&server, json!({"request": {"service": "v1.Executions"}}), vec![]).await;
    assert_eq!(noted(&server, "").await, "*");

    let found = server
        .post("/v1/actions/executions/search", &json!({"type": "request"}))
        .await
        .expect_status(200)
        .json();
    assert_eq!(found["details"]["totalResult"], 1, "{found:#}");
    assert_eq!(found["result"][0]["condition"], json!({"request": {"all": true}}));
    assert_eq!(found["result"][0]["targets"], json!([{"target": all}]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn includes_expand_in_place_and_cycles_are_refused() {
    let server = Server::start();
    server.create_workflow(NOTED).await;
    upload_probe(&server).await;
    let a = create_target(&server, appender("a", "/request/input/note", "A")).await;
    let b = create_target(&server, appender("b", "/request/input/note", "B")).await;
    let c = create_target(&server, appender("c", "/request/input/note", "C")).await;
    let service = json!({"request": {"service": "v1.Executions"}});
    set_rule(&server, service.clone(), vec![target_entry(&b)]).await;
    set_rule(
        &server,
        start_method(),
        vec![target_entry(&a), json!({"include": service}), target_entry(&c)],
    )
    .await;
    assert_eq!(noted(&server, "").await, "ABC");

    let rules = "/v1/actions/executions";
    server
        .put(rules, &json!({"condition": service, "targets": [{"include": start_method()}]}))
        .await
        .expect_error(
            400,
            "invalid_request",
            &[
                "cycle",
                "request:service:v1.Executions -> request:method:/v1.Executions/Start -> request:service:v1.Executions",
            ],
        );
    server
        .put(
            rules,
            &json!({"condition": start_method(), "targets": [{"include": start_method()}]}),
        )
        .await
        .expect_error(400, "invalid_request", &["cycle"]);
    server
        .put(
            rules,
            &json!({"condition": start_method(), "targets": [{"include": {"request": {"all": true}}}]}),
        )
        .await
        .expect_error(400, "invalid_request", &["targets[0].include", "request:all"]);
    // Refused changes changed nothing.
    assert_eq!(noted(&server, "").await, "ABC");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_past_its_timeout_is_stopped() {
    let server = Server::start();
    server.create_workflow(NOTED).await;
    upload_probe(&server).await;
    let mut sleeper = probe("sleeper", "webhook", json!({"sleep_ms": 60_000}));
    sleeper["timeout"] = json!("300ms");
    sleeper["interrupt_on_error"] = json!(true);
    let sleeper = create_target(&server, sleeper).await;
    set_rule(&server, start_method(), vec![target_entry(&sleeper)]).await;

    start_noted(&server, "")
        .await
        .expect_error(502, "action_failed", &["sleeper", "deadline of 300ms"]);
    let stopped = log_until(&server, &format!("target={sleeper}"), "logged", |i| !i.is_empty()).await;
    assert_eq!(stopped[0]["interrupted"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_the_audit_sink() {
    let server = Server::start();
    let sink = json!({"name": "sink", "plugin": "audit-sink", "type": "webhook", "config": {"tag": "t1"}});
    let sink = create_target(&server, sink).await;
    set_rule(
        &server,
        json!({"event": {"all": true}}),
        vec![target_entry(&sink)],
    )
    .await;
    upload_probe(&server).await;
    server
        .create_workflow(
            "id: approve\nsteps:\n  - name: Approve\n    plugin: approval\n    input: {approvers: [alice]}\n",
        )
        .await;
    let id = server.start_run("approve", &json!({})).await;

    let query = format!("target={sink}");
    let wanted = [
        "plugin.uploaded",
        "execution.started",
        "execution.waiting",
        "interaction.created",
    ];
    let calls = log_until(&server, &query, "every event", |items| {
        wanted.iter().all(|w| items.iter().any(|i| i["trigger"] == *w))
    })
    .await;
    let created = calls
        .iter()
        .find(|c| c["trigger"] == "interaction.created")
        .expect("an interaction.created call");
    assert!(logged(created, &id), "{created:#}");
    assert!(logged(created, r#""assignees":["alice"]"#), "{created:#}");
    assert!(logged(created, r#""tag":"t1""#), "{created:#}");
    assert_eq!(created["delivery"]["attempt"], 1);
    let uploaded = calls
        .iter()
        .find(|c| c["trigger"] == "plugin.uploaded")
        .expect("plugin.uploaded");
    assert!(logged(uploaded, r#""name":"probe""#), "{uploaded:#}");

    server
        .put(
            "/v1/actions/executions",
            &json!({"condition": {"event": {"event": "execution.finished"}}, "targets": [{"target": sink}]}),
        )
        .await
        .expect_error(
            400,
            "invalid_request",
            &["event.event", "execution.finished", "execution.completed"],
        );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_committed_before_kill_9_is_delivered_after_restart() {
    let mut server = Server::start();
    server.create_workflow(NOTED).await;
    upload_probe(&server).await;
    // The first delivery hangs in this target until the process is killed; the second passes.
    let mut slow = probe(
        "slow-first",
        "webhook",
        json!({"sleep_ms": 60_000, "sleep_until_attempt": 2}),
    );
    slow["timeout"] = json!("120s");
    let slow = create_target(&server, slow).await;
    let sink = create_target(
        &server,
        json!({"name": "sink", "plugin": "audit-sink", "type": "webhook"}),
    )
    .await;
    set_rule(
        &server,
        json!({"event": {"event": "execution.completed"}}),
        vec![target_entry(&slow), target_entry(&sink)],
    )
    .await;
    let run = start_noted(&server, "").await.expect_status(200).json();
    let id = run["id"].as_str().expect("a run id").to_owned();
    server
        .poll("/v1/actions/outbox", "being delivered", |page| {
            page["items"][0]["event"] == "execution.completed" && page["items"][0]["attempt"] == 1
        })
        .await;
    assert!(log_now(&server, &format!("target={sink}")).await.is_empty());

    server.restart();

    let delivered = log_until(&server, &format!("target={sink}"), "delivered", |i| !i.is_empty()).await;
    assert_eq!(delivered.len(), 1, "{delivered:#?}");
    assert_eq!(delivered[0]["delivery"]["attempt"], 2);
    assert!(logged(&delivered[0], &id), "{:#}", delivered[0]);
    assert!(logged(&delivered[0], "execution.completed"), "{:#}", delivered[0]);
    server
        .poll("/v1/actions/outbox", "empty", |page| page["items"] == json!([]))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_target_removes_it_from_every_rule() {
    let server = Server::start();
    server.create_workflow(NOTED).await;
    upload_probe(&server).await;
    let a = create_target(&server, appender("a", "/request/input/note", "A")).await;
    let b = create_target(&server, appender("b", "/request/input/note", "B")).await;
    set_rule(&server, start_method(), vec![target_entry(&a), target_entry(&b)]).await;
    let service = json!({"request": {"service": "v1.Executions"}});
    set_rule(&server, service, vec![target_entry(&a)]).await;
    assert_eq!(noted(&server, "").await, "AB");

    server
        .delete(&format!("/v1/actions/targets/{a}"))
        .await
        .expect_status(204);
    server
        .get(&format!("/v1/actions/targets/{a}"))
        .await
        .expect_error(404, "not_found", &[&a]);
    let found = server
        .post("/v1/actions/executions/search", &json!({}))
        .await
        .expect_status(200)
        .json();
    // The service rule had only `a`, so it is gone; the method rule keeps `b`.
    assert_eq!(found["details"]["totalResult"], 1, "{found:#}");
    assert_eq!(found["result"][0]["targets"], json!([{"target": b}]));
    assert_eq!(noted(&server, "").await, "B");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targets_are_checked_and_listed() {
    let server = Server::start();
    upload_probe(&server).await;
    let targets = "/v1/actions/targets";
    server
        .post(targets, &json!({"name": "e", "plugin": "echo", "type": "call"}))
        .await
        .expect_error(400, "invalid_request", &["plugin", "echo", "step plugin"]);
    server
        .post(targets, &json!({"name": "n", "plugin": "nope", "type": "call"}))
        .await
        .expect_error(400, "invalid_request", &["plugin", "nope"]);
    server
        .post(
            targets,
            &json!({"name": "t", "plugin": "probe@1.0.0", "type": "restCall", "timeout": "1h"}),
        )
        .await
        .expect_error(400, "invalid_request", &["timeout", "1h"]);
    server
        .post(
            targets,
            &json!({"name": "t", "plugin": "probe@1.0.0", "type": "sometimes"}),
        )
        .await
        .expect_error(400, "invalid_request", &["type", "sometimes"]);
    let id = create_target(&server, probe("t", "webhook", json!({}))).await;
    server
        .post(targets, &probe("t", "call", json!({})))
        .await
        .expect_error(409, "conflict", &["name", "\"t\""]);
    let shown = server
        .get(&format!("{targets}/{id}"))
        .await
        .expect_status(200)
        .json();
    assert_eq!(
        (
            &shown["name"],
            &shown["type"],
            &shown["timeout"],
            &shown["interrupt_on_error"]
        ),
        (&json!("t"), &json!("webhook"), &json!("10s"), &json!(false))
    );
    assert!(
        shown["digest"].as_str().is_some_and(|d| d.starts_with("sha256:")),
        "{shown:#}"
    );
    let listed = server
        .get(&format!("{targets}?type=webhook"))
        .await
        .expect_status(200)
        .json();
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(1));
    let listed = server
        .get(&format!("{targets}?type=call"))
        .await
        .expect_status(200)
        .json();
    assert_eq!(listed["items"], json!([]));

    let rules = "/v1/actions/executions";
    server
        .put(
            rules,
            &json!({"condition": {"request": {"method": START}, "event": {"all": true}}, "targets": []}),
        )
        .await
        .expect_error(400, "invalid_request", &["condition", "exactly one"]);
    server
        .put(
            rules,
            &json!({"condition": {"request": {"method": "/v1.Nope/Start"}}, "targets": []}),
        )
        .await
        .expect_error(
            400,
            "invalid_request",
            &["condition.request.method", "/v1.Nope/Start"],
        );
    server
        .put(
            rules,
            &json!({"condition": start_method(), "targets": [{"target": "missing"}]}),
        )
        .await
        .expect_error(400, "invalid_request", &["targets[0].target", "missing"]);
    server
        .put(
            rules,
            &json!({"condition": start_method(), "targets": [{"target": id, "include": start_method()}]}),
        )
        .await
        .expect_error(400, "invalid_request", &["targets[0]", "exactly one"]);
    let conditions = server
        .get("/v1/actions/conditions")
        .await
        .expect_status(200)
        .json();
    assert!(
        conditions["operations"]
            .as_array()
            .is_some_and(|ops| ops.iter().any(|o| o["method"] == START)),
        "{conditions:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managing_actions_needs_the_admin_role() {
    let weft = Weft::new();
    let admin = weft.create_token("root", "admin", &[]);
    let operator = weft.create_token("ops", "operator", &[]);
    let server = Server::on(weft, &[]);
    let (admin, operator) = (
        server.api().with_token(&admin),
        server.api().with_token(&operator),
    );
    operator
        .get("/v1/actions/targets")
        .await
        .expect_error(403, "forbidden", &["operator", "manage actions"]);
    let sink = json!({"name": "sink", "plugin": "audit-sink", "type": "async"});
    operator
        .post("/v1/actions/targets", &sink)
        .await
        .expect_error(403, "forbidden", &["manage actions"]);
    operator
        .put(
            "/v1/actions/executions",
            &json!({"condition": {"event": {"all": true}}, "targets": []}),
        )
        .await
        .expect_error(403, "forbidden", &["manage actions"]);
    let id = create_target(&admin, sink).await;
    set_rule(
        &admin,
        json!({"event": {"group": "execution"}}),
        vec![target_entry(&id)],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_actions_example_refuses_and_audits_certificate_requests() {
    let server = Server::start();
    let example = |name: &str| -> Value {
        let path = format!("{}/examples/actions/{name}", crate::common::REPO);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
    };
    let yaml = std::fs::read_to_string(format!(
        "{}/examples/certificate-request.yaml",
        crate::common::REPO
    ))
    .expect("the certificate-request example");
    server.create_workflow(&yaml).await;
    let policy = create_target(&server, example("policy-target.json")).await;
    let audit = create_target(&server, example("audit-sink-target.json")).await;
    set_rule(&server, start_method(), vec![target_entry(&policy)]).await;
    set_rule(
        &server,
        json!({"event": {"group": "execution"}}),
        vec![target_entry(&audit)],
    )
    .await;

    let path = "/v1/workflows/certificate-request/executions";
    server
        .post(path, &json!({"input": {"common_name": "evil.org"}}))
        .await
        .expect_error(403, "refused_by_action", &["names under example.com"]);
    let id = server
        .start_run(
            "certificate-request",
            &json!({"input": {"common_name": "web01.example.com"}}),
        )
        .await;
    let audited = log_until(&server, &format!("target={audit}"), "the run audited", |items| {
        items
            .iter()
            .any(|i| i["trigger"] == "execution.started" && logged(i, &id))
    })
    .await;
    assert!(
        audited.iter().all(|i| logged(i, r#""tag":"certificates""#)),
        "{audited:#?}"
    );
}
