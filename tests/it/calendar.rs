//! Runs on a calendar, through real `weft serve` processes: durable sleep (across a kill -9
//! and a restart after its time), waiting for events (early ones kept for the lookback, late
//! ones not, the first of several, a timeout), schedules (validation, pause and resume, one
//! run per fire with two runners on PostgreSQL), and approvals that remind and escalate.
//! Cron instants across daylight-saving changes are checked with injected times in
//! `src/schedule.rs`.

use crate::common::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// The messages of a run's log.
async fn log_messages(api: &Api, workflow: &str, id: &str) -> Vec<String> {
    let page = api
        .get(&format!("{}/logs?limit=1000", Api::execution_path(workflow, id)))
        .await
        .expect_status(200)
        .json();
    page["items"]
        .as_array()
        .expect("log lines")
        .iter()
        .filter_map(|l| l["message"].as_str().map(str::to_owned))
        .collect()
}

// --- sleep ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sleep_survives_kill_9_and_a_restart_after_its_time() {
    let mut server = Server::start();
    server
        .create_workflow(
            r#"
id: nap
steps:
  - {name: Before, plugin: echo, input: {n: 1}}
  - {name: Nap, sleep: 2s}
  - {name: After, plugin: echo, input: {slept_until: "{{ steps.Nap.output.slept_until }}"}}
outputs:
  slept_until: "{{ steps.After.output.slept_until }}"
"#,
        )
        .await;
    let id = server.start_run("nap", &json!({})).await;
    let waiting = server.wait_state("nap", &id, "waiting").await;
    assert_eq!(step_state(&waiting, "Nap"), "waiting");
    // No person is asked anything: it waits on a timer.
    assert_eq!(waiting["waiting_steps"], json!([]), "{waiting:#}");
    let until = time(&step(&waiting, "Nap")["pause"]["until"]);
    server.kill();
    sleep_past(until);
    server.start_again();
    let done = server.wait_state("nap", &id, "completed").await;
    assert_eq!(time(&done["outputs"]["slept_until"]), until, "{done:#}");
    let messages = log_messages(&server, "nap", &id).await;
    assert_eq!(
        messages
            .iter()
            .filter(|m| m.starts_with("started (attempt"))
            .count(),
        2,
        "Before and After ran once each: {messages:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn until_takes_a_rendered_time_and_bad_ones_fail_clearly() {
    let server = Server::start();
    server
        .create_workflow(
            "id: later\ninputs:\n  go_live: {type: string}\nsteps:\n  - {name: Wait, until: \"{{ inputs.go_live }}\"}\n",
        )
        .await;
    let past = server
        .post(
            "/v1/workflows/later/executions?wait=true",
            &json!({"input": {"go_live": "2020-01-01T00:00:00Z"}}),
        )
        .await
        .expect_status(200)
        .json();
    assert_eq!(
        state(&past),
        "completed",
        "a time that has passed does not wait: {past:#}"
    );
    let bad = server
        .post(
            "/v1/workflows/later/executions?wait=true",
            &json!({"input": {"go_live": "next tuesday"}}),
        )
        .await
        .expect_status(200)
        .json();
    assert_eq!(state(&bad), "failed");
    assert!(
        bad["error"]
            .as_str()
            .is_some_and(|e| e.contains("not an RFC 3339 time")),
        "{bad:#}"
    );
    server
        .post_raw(
            "/v1/workflows",
            "application/yaml",
            "id: bad\nsteps:\n  - {name: A, sleep: 1s, until: \"x\", input: {a: 1}}\n  - {name: B, wait_for: {key: k}}\n  - {name: C, wait_for: {event: \"no good\"}}\n",
        )
        .await
        .expect_error(
            400,
            "invalid_definition",
            &[
                "steps[0]: a step has one of `sleep`, `until` and `wait_for`, not sleep and until",
                "steps[0].input: a step with `sleep` has no `input`",
                "steps[1].wait_for: name the event",
                "steps[2].wait_for.event: invalid event name",
            ],
        );
}

// --- events ---

const PAYMENT: &str = r#"
id: order
inputs:
  order_id: {type: string}
steps:
  - name: Paid
    wait_for: {event: payment.received, key: "{{ inputs.order_id }}", timeout: 1h, lookback: 2s}
  - name: Ship
    plugin: echo
    input: {amount: "{{ steps.Paid.output.amount }}"}
outputs:
  amount: "{{ steps.Ship.output.amount }}"
"#;

async fn send(api: &Api, name: &str, key: &str, data: Value) -> Value {
    api.post("/v1/events", &json!({"name": name, "key": key, "data": data}))
        .await
        .expect_status(200)
        .json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_reaches_the_run_waiting_for_its_key_and_an_early_one_is_kept() {
    let server = Server::start();
    server.create_workflow(PAYMENT).await;

    // Sent while the run waits: only the run with that key takes it.
    let a = server
        .start_run("order", &json!({"input": {"order_id": "A-1"}}))
        .await;
    let b = server
        .start_run("order", &json!({"input": {"order_id": "B-2"}}))
        .await;
    server.wait_state("order", &a, "waiting").await;
    server.wait_state("order", &b, "waiting").await;
    let receipt = send(&server, "payment.received", "A-1", json!({"amount": 42})).await;
    assert_eq!(receipt["delivered"], json!([a]), "{receipt:#}");
    let done = server.wait_state("order", &a, "completed").await;
    assert_eq!(done["outputs"]["amount"], 42);
    assert_eq!(state(&server.execution("order", &b).await), "waiting");

    // Sent before the run reaches its step: kept, and matched when it does.
    let early = send(&server, "payment.received", "C-3", json!({"amount": 7})).await;
    assert_eq!(early["delivered"], json!([]));
    let c = server
        .start_run("order", &json!({"input": {"order_id": "C-3"}}))
        .await;
    let done = server.wait_state("order", &c, "completed").await;
    assert_eq!(done["outputs"]["amount"], 7, "{done:#}");

    // Sent longer before than the step's lookback (2s): not matched.
    let old = send(&server, "payment.received", "D-4", json!({"amount": 1})).await;
    sleep_past(time::OffsetDateTime::now_utc() + std::time::Duration::from_millis(2100));
    let d = server
        .start_run("order", &json!({"input": {"order_id": "D-4"}}))
        .await;
    let waiting = server.wait_state("order", &d, "waiting").await;
    assert_eq!(step_state(&waiting, "Paid"), "waiting", "{old:#} {waiting:#}");
    let again = send(&server, "payment.received", "D-4", json!({"amount": 2})).await;
    assert_eq!(again["delivered"], json!([d]));
    assert_eq!(
        server.wait_state("order", &d, "completed").await["outputs"]["amount"],
        2
    );

    // A bad event is refused, naming the field.
    server
        .post("/v1/events", &json!({"name": "not ok", "key": "x"}))
        .await
        .expect_error(400, "invalid_request", &["name: invalid event name"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_takes_the_first_of_several_events_or_fails_at_its_timeout() {
    let server = Server::start();
    server
        .create_workflow(
            r#"
id: either
inputs:
  ticket: {type: string}
steps:
  - name: Decision
    wait_for:
      any:
        - {event: ticket.approved, key: "{{ inputs.ticket }}"}
        - {event: ticket.closed, key: "{{ inputs.ticket }}"}
      timeout: 1s
outputs:
  which: "{{ steps.Decision.output.event }}"
"#,
        )
        .await;
    let first = server
        .start_run("either", &json!({"input": {"ticket": "T1"}}))
        .await;
    server.wait_state("either", &first, "waiting").await;
    send(&server, "ticket.closed", "T1", json!({"by": "carol"})).await;
    let done = server.wait_state("either", &first, "completed").await;
    assert_eq!(done["outputs"]["which"], "ticket.closed");
    assert_eq!(step(&done, "Decision")["output"]["data"]["by"], "carol");

    let second = server
        .start_run("either", &json!({"input": {"ticket": "T2"}}))
        .await;
    let failed = server.wait_state("either", &second, "failed").await;
    assert!(
        failed["error"]
            .as_str()
            .is_some_and(|e| e
                .contains("no ticket.approved (key \"T2\") or ticket.closed (key \"T2\") arrived within")),
        "{failed:#}"
    );
    // The step no longer waits: a late event reaches no one.
    let late = send(&server, "ticket.approved", "T2", json!({})).await;
    assert_eq!(late["delivered"], json!([]));
}

// --- reminders and escalation ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_approval_escalates_to_other_people_and_reminds_them() {
    let weft = Weft::new();
    let alice = weft.create_token("alice", "approver", &[]);
    let bob = weft.create_token("bob", "approver", &["managers"]);
    let admin = weft.create_token("root", "admin", &[]);
    let server = Server::on(weft, &[]);
    let root = server.with_token(&admin);
    root.create_workflow(
        r#"
id: escalating
steps:
  - name: Approve
    plugin: approval
    remind_every: 1s
    input:
      approvers: [alice]
      expires_in: 1s
      on_expiry: {escalate_to: ["group:managers"], expires_in: 1h}
"#,
    )
    .await;
    let id = root.start_run("escalating", &json!({})).await;
    let path = format!("{}/interaction", Api::execution_path("escalating", &id));
    let escalated = root
        .poll(&Api::execution_path("escalating", &id), "escalated", |run| {
            step(run, "Approve")["waiting"]["escalations"]
                .as_array()
                .is_some_and(|e| !e.is_empty())
        })
        .await;
    let escalation = &step(&escalated, "Approve")["waiting"]["escalations"][0];
    assert_eq!(escalation["from"], json!(["alice"]));
    assert_eq!(escalation["to"], json!(["group:managers"]));
    assert_eq!(state(&escalated), "waiting");

    // Alice may no longer answer; a manager may.
    let vote = json!({"SignalKey": "Approve.ApprovalStatus", "Data": {"Approved": true}});
    let refused = server
        .with_token(&alice)
        .post(&format!("/v1/instances/{id}/signals"), &vote)
        .await;
    assert!(
        [403, 404].contains(&refused.status),
        "alice answered an escalated approval: {}",
        refused.text
    );
    // Reminders go out while it waits.
    root.poll(&Api::execution_path("escalating", &id), "reminded", |run| {
        step(run, "Approve")["waiting"]["reminders"].as_u64().unwrap_or(0) >= 1
    })
    .await;
    server
        .with_token(&bob)
        .post(&format!("/v1/instances/{id}/signals"), &vote)
        .await
        .expect_status(204);
    let done = root.wait_state("escalating", &id, "completed").await;
    assert_eq!(step(&done, "Approve")["answers"][0]["answered_by"], "bob");
    root.get(&path).await.expect_status(404);
    let messages = log_messages(&root, "escalating", &id).await;
    assert!(
        messages
            .iter()
            .any(|m| m == "escalated from alice to group:managers"),
        "{messages:#?}"
    );
    let audit = root.get("/v1/audit?limit=1000").await.expect_status(200).json();
    assert!(
        audit["items"]
            .as_array()
            .expect("audit entries")
            .iter()
            .any(|e| e["action"] == "escalate Approve" && e["to"] == json!(["group:managers"])),
        "{audit:#}"
    );
}

// --- schedules ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_are_validated_listed_paused_resumed_and_deleted() {
    let server = Server::start();
    server
        .create_workflow(
            "id: report\ninputs:\n  team: {type: string}\nsteps:\n  - {name: A, plugin: echo, input: {}}\n",
        )
        .await;
    server
        .post(
            "/v1/schedules",
            &json!({"workflow": "report", "cron": "0 9 * * 1-5", "timezone": "Mars/Olympus", "input": {"nope": 1}}),
        )
        .await
        .expect_error(400, "invalid_schedule", &["timezone: unknown time zone \"Mars/Olympus\""]);
    server
        .post(
            "/v1/schedules",
            &json!({"workflow": "report", "every": "1h", "input": {"nope": 1}}),
        )
        .await
        .expect_error(
            400,
            "invalid_schedule",
            &[
                "input.team: required input is missing",
                "input.nope: unknown input",
            ],
        );
    let created = server
        .post(
            "/v1/schedules",
            &json!({"id": "weekday-report", "workflow": "report", "cron": "0 9 * * 1-5",
                    "timezone": "Europe/Berlin", "input": {"team": "pki"}, "overlap": "queue"}),
        )
        .await
        .expect_status(201)
        .json();
    let next: Vec<_> = created["next_fires"]
        .as_array()
        .expect("next fire times")
        .iter()
        .map(time)
        .collect();
    assert_eq!(next.len(), 5);
    for at in &next {
        let berlin = at.to_offset(time::macros::offset!(+1));
        assert_eq!(
            (berlin.hour(), berlin.minute()),
            (9, 0),
            "{at} is not 09:00 in Berlin (winter)"
        );
        assert!(
            berlin.weekday().number_days_from_monday() < 5,
            "{at} is a weekend"
        );
    }
    server
        .post(
            "/v1/schedules",
            &json!({"id": "weekday-report", "workflow": "report", "every": "1h", "input": {"team": "x"}}),
        )
        .await
        .expect_status(409);
    let paused = server
        .post("/v1/schedules/weekday-report/pause", &json!({}))
        .await
        .expect_status(200)
        .json();
    assert_eq!(paused["paused"], true);
    assert_eq!(paused["next_fires"], json!([]));
    let resumed = server
        .post("/v1/schedules/weekday-report/resume", &json!({}))
        .await
        .expect_status(200)
        .json();
    assert_eq!(resumed["next_fires"][0], created["next_fires"][0]);
    let url = server.url("");
    let listed = Weft::new().run_without_db(&["schedule", "list", "--server", url.trim_end_matches('/')]);
    listed.expect_code(0);
    assert!(
        listed
            .stdout
            .contains("weekday-report  report  cron \"0 9 * * 1-5\" Europe/Berlin"),
        "{}",
        listed.stdout
    );
    server
        .delete("/v1/schedules/weekday-report")
        .await
        .expect_status(204);
    server
        .get("/v1/schedules/weekday-report")
        .await
        .expect_status(404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_fires_once_per_instant_with_two_runners() {
    let first = Weft::on(Backend::Postgres);
    let second = first.same_database();
    let a = Server::on(first, &[]);
    let b = Server::on(second, &[]);
    a.create_workflow("id: tick\nsteps:\n  - {name: A, plugin: echo, input: {}}\n")
        .await;
    a.post(
        "/v1/schedules",
        &json!({"id": "every-second", "workflow": "tick", "every": "1s", "overlap": "allow"}),
    )
    .await
    .expect_status(201);
    let schedule = b
        .poll("/v1/schedules/every-second", "fired four times", |s| {
            s["fired"].as_u64() >= Some(4)
        })
        .await;
    b.post("/v1/schedules/every-second/pause", &json!({}))
        .await
        .expect_status(200);
    let runs = a
        .get("/v1/workflows/tick/executions?limit=100")
        .await
        .expect_status(200)
        .json();
    let mut fires = Vec::new();
    for listed in runs["items"].as_array().expect("runs") {
        let run = a
            .get(&format!("/v1/executions/{}", run_id(listed)))
            .await
            .expect_status(200)
            .json();
        let fire_at = run["schedule"]["fire_at"].as_str();
        fires.push(fire_at.expect("started by the schedule").to_owned());
    }
    let distinct: BTreeSet<&String> = fires.iter().collect();
    assert_eq!(distinct.len(), fires.len(), "an instant fired twice: {fires:#?}");
    let fired = a
        .get("/v1/schedules/every-second")
        .await
        .expect_status(200)
        .json()["fired"]
        .as_u64()
        .expect("a count");
    assert!(fired >= schedule["fired"].as_u64().unwrap_or(0));
    assert_eq!(
        fires.len() as u64,
        fired,
        "every fire started one run: {fires:#?}"
    );
}

#[test]
fn locally_weft_run_sleeps_through_and_weft_event_send_moves_a_run_on() {
    let weft = Weft::new();
    let nap = weft.write_workflow(
        "nap.yaml",
        "id: nap\nsteps:\n  - {name: Nap, sleep: 1s}\n  - {name: After, plugin: echo, input: {x: 1}}\n",
    );
    let (out, run) = weft.start(&nap, &[]);
    out.expect_code(0);
    assert_eq!(state(&run), "completed", "{run:#}");

    let order = weft.write_workflow("order.yaml", PAYMENT);
    let (out, run) = weft.start(&order, &["--input", "order_id=L-1"]);
    out.expect_code(2);
    assert_eq!(step_state(&run, "Paid"), "waiting");
    let sent = weft.run(&[
        "event",
        "send",
        "payment.received",
        "--key",
        "L-1",
        "--data",
        r#"{"amount": 5}"#,
    ]);
    sent.expect_code(0);
    assert!(sent.stdout.contains("taken by 1 run(s)"), "{}", sent.stdout);
    let done = weft.record(&run_id(&run));
    assert_eq!(state(&done), "completed", "{done:#}");
    assert_eq!(done["outputs"]["amount"], 5);
}

// --- retention ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_runs_are_deleted_when_their_retention_ends_or_when_purged() {
    let server = Server::start();
    for (id, retention) in [("brief", "1s"), ("kept", "0s"), ("usual", "30d")] {
        server
            .create_workflow(&format!(
                "id: {id}\nretention: {retention}\nsteps:\n  - {{name: A, plugin: echo, input: {{}}}}\n"
            ))
            .await;
    }
    let mut ids = Vec::new();
    for workflow in ["brief", "kept", "usual"] {
        let run = server
            .post(
                &format!("/v1/workflows/{workflow}/executions?wait=true"),
                &json!({}),
            )
            .await
            .expect_status(200)
            .json();
        assert_eq!(state(&run), "completed");
        ids.push(run_id(&run));
    }
    // The brief one goes by itself, with its log; the others stay.
    let brief = format!("/v1/executions/{}", ids[0]);
    let started = std::time::Instant::now();
    while server.get(&brief).await.status != 404 {
        assert!(started.elapsed() < POLL_LIMIT, "{brief} was never deleted");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    server
        .get(&format!("{}/logs", Api::execution_path("brief", &ids[0])))
        .await
        .expect_status(404);
    server
        .get(&format!("/v1/executions/{}", ids[1]))
        .await
        .expect_status(200);
    server
        .get(&format!("/v1/executions/{}", ids[2]))
        .await
        .expect_status(200);

    // `weft runs purge` deletes what ended before --older-than, of one workflow if asked.
    let url = server.url("");
    let url = url.trim_end_matches('/');
    let kept = Weft::new().run_without_db(&["runs", "purge", "--older-than", "1h", "--server", url]);
    kept.expect_code(0);
    assert!(
        kept.stdout.contains("deleted 0 finished run(s)"),
        "{}",
        kept.stdout
    );
    let purged = Weft::new().run_without_db(&[
        "runs",
        "purge",
        "--older-than",
        "1ms",
        "--workflow",
        "usual",
        "--server",
        url,
    ]);
    purged.expect_code(0);
    assert!(
        purged.stdout.contains("deleted 1 finished run(s)"),
        "{}",
        purged.stdout
    );
    server
        .get(&format!("/v1/executions/{}", ids[2]))
        .await
        .expect_status(404);
    server
        .get(&format!("/v1/executions/{}", ids[1]))
        .await
        .expect_status(200);

    // One run deleted by itself; then each deletion is counted with its reason.
    server
        .delete(&Api::execution_path("kept", &ids[1]))
        .await
        .expect_status(204);
    let metrics = server.get("/metrics").await.expect_status(200).text.clone();
    for (workflow, reason) in [("brief", "retention"), ("usual", "purge"), ("kept", "delete")] {
        crate::operating::expect_sample(
            &metrics,
            "weft_runs_deleted_total",
            &[("workflow", workflow), ("reason", reason)],
            1.0,
        );
    }
}
