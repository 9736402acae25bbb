//! Several runners on one PostgreSQL database: three `weft serve` processes share the runs,
//! and every invariant (one owner per run, answers applied once, timers fired once, events
//! delivered once, unique version numbers) holds across processes. A runner killed with
//! SIGKILL loses nothing: the others take its runs over when its lease lapses.

use crate::common::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::Arc;
use tokio::sync::Barrier;
use tokio::task::JoinSet;

/// Three runners on one fresh PostgreSQL database, each with `args` after `serve`.
fn three_runners(args: &[&str]) -> Vec<Server> {
    let first = Weft::on(Backend::Postgres);
    let (second, third) = (first.same_database(), first.same_database());
    [first, second, third]
        .into_iter()
        .map(|weft| Server::on(weft, args))
        .collect()
}

/// A form, then a step that logs one line: a run that waits, and shows by its log whether
/// a step ran twice.
const CONFIRM: &str = r#"
id: confirm
steps:
  - name: Confirm
    plugin: interaction
    input:
      fields:
        - {name: size, type: integer, default: 2048}
  - name: After
    plugin: echo
    input: {log: "after the answer", size: "{{ steps.Confirm.output.size }}"}
outputs:
  size: "{{ steps.After.output.size }}"
"#;

fn interaction_path(id: &str) -> String {
    format!("{}/interaction", Api::execution_path("confirm", id))
}

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

fn count(messages: &[String], needle: &str) -> usize {
    messages.iter().filter(|m| m.contains(needle)).count()
}

/// Runs `work(i, api_of_runner)` for `0..n`, at most `width` at a time, and returns the
/// results in order.
async fn each<T, F, Fut>(apis: &[Api], n: usize, width: usize, work: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(usize, Vec<Api>) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let mut results: Vec<Option<T>> = (0..n).map(|_| None).collect();
    let mut tasks = JoinSet::new();
    for i in 0..n {
        if tasks.len() == width {
            let (j, t) = tasks.join_next().await.expect("a task").expect("no panic");
            results[j] = Some(t);
        }
        let work = work(i, apis.to_vec());
        tasks.spawn(async move { (i, work.await) });
    }
    while let Some(done) = tasks.join_next().await {
        let (j, t) = done.expect("no panic");
        results[j] = Some(t);
    }
    results.into_iter().map(|r| r.expect("every task ran")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_started_on_one_runner_are_answered_on_another() {
    const RUNS: usize = 300;
    let runners = three_runners(&[]);
    let apis: Vec<Api> = runners.iter().map(Server::api).collect();
    runners[0].create_workflow(CONFIRM).await;

    // Run i starts on runner i, is answered on runner i+1 and awaited on runner i+2.
    let ids = each(&apis, RUNS, 24, |i, apis| async move {
        let id = apis[i % 3].start_run("confirm", &json!({})).await;
        apis[(i + 1) % 3].wait_state("confirm", &id, "waiting").await;
        let body = json!({"parameters": [{"name": "size", "type": "number", "value": i}]});
        apis[(i + 1) % 3]
            .post_as("approver", &interaction_path(&id), &body)
            .await
            .expect_status(204);
        // `?wait=true` on a third runner returns once the owner has finished the run.
        let run = apis[(i + 2) % 3]
            .get(&format!("/v1/executions/{id}?wait=true"))
            .await
            .expect_status(200)
            .json();
        assert_eq!(state(&run), "completed", "{run:#}");
        (id, run)
    })
    .await;

    for (i, (id, run)) in ids.iter().enumerate() {
        assert_eq!(run["outputs"]["size"], json!(i), "{run:#}");
        for name in ["Confirm", "After"] {
            assert_eq!(step(run, name)["attempt"], 1, "{name} of run {id}: {run:#}");
        }
        let messages = log_messages(&apis[i % 3], "confirm", id).await;
        assert_eq!(count(&messages, "after the answer"), 1, "run {id}: {messages:#?}");
    }
    let listed = apis[2]
        .get("/v1/workflows/confirm/executions?limit=1000")
        .await
        .expect_status(200)
        .json();
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(RUNS));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_answers_over_three_runners_get_one_success() {
    const CLIENTS: usize = 20;
    let runners = three_runners(&[]);
    runners[0].create_workflow(CONFIRM).await;
    let id = runners[1].start_run("confirm", &json!({})).await;
    runners[2].wait_state("confirm", &id, "waiting").await;

    let barrier = Arc::new(Barrier::new(CLIENTS));
    let mut answers = JoinSet::new();
    for i in 0..CLIENTS {
        let (api, barrier, path) = (runners[i % 3].api(), barrier.clone(), interaction_path(&id));
        answers.spawn(async move {
            let body = json!({"parameters": [{"name": "size", "type": "number", "value": i}]});
            barrier.wait().await;
            (i, api.post_as(&format!("client{i}"), &path, &body).await)
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
    let run = runners[0].wait_state("confirm", &id, "completed").await;
    assert_eq!(run["outputs"]["size"], json!(won[0]), "{run:#}");
    assert_eq!(step(&run, "Confirm")["answers"].as_array().map(Vec::len), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runs_of_a_killed_runner_are_taken_over() {
    const RUNS: usize = 6;
    let mut runners = three_runners(&["--lease", "2s"]);
    runners[0]
        .create_workflow(
            r#"
id: slow
steps:
  - name: Sleep
    plugin: sleep
    input: {ms: 1500}
  - name: After
    plugin: echo
    input: {log: "after the sleep"}
"#,
        )
        .await;
    let mut ids = Vec::new();
    for _ in 0..RUNS {
        ids.push(runners[0].start_run("slow", &json!({})).await);
    }
    // Every run is mid-call on the first runner when it dies.
    for id in &ids {
        let path = Api::execution_path("slow", id);
        runners[1]
            .poll(&path, "calling Sleep", |run| {
                step_state(run, "Sleep") == "running"
            })
            .await;
    }
    runners[0].kill();

    for (i, id) in ids.iter().enumerate() {
        let run = runners[1 + i % 2].wait_state("slow", id, "completed").await;
        // At least once: the call the dead runner made is made again.
        assert_eq!(step(&run, "Sleep")["attempt"], 2, "{run:#}");
        assert_eq!(step(&run, "After")["attempt"], 1, "{run:#}");
        let messages = log_messages(&runners[1].api(), "slow", id).await;
        assert_eq!(count(&messages, "after the sleep"), 1, "run {id}: {messages:#?}");
    }
    let taken: String = runners[1..].iter().map(Server::stderr).collect();
    assert!(taken.contains("took over"), "{taken}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_expiry_fires_once_across_runners() {
    const RUNS: usize = 100;
    let runners = three_runners(&[]);
    let apis: Vec<Api> = runners.iter().map(Server::api).collect();
    runners[0]
        .create_workflow(
            "id: expiring\nsteps:\n  - name: Approve\n    plugin: approval\n    input: {expires_in: 1s, on_expiry: fail}\n",
        )
        .await;
    let ids = each(&apis, RUNS, 24, |i, apis| async move {
        apis[i % 3].start_run("expiring", &json!({})).await
    })
    .await;
    for (i, id) in ids.iter().enumerate() {
        let run = apis[(i + 1) % 3].wait_state("expiring", id, "failed").await;
        assert_eq!(step_state(&run, "Approve"), "failed", "{run:#}");
    }
    for id in &ids {
        let messages = log_messages(&apis[0], "expiring", id).await;
        assert_eq!(
            count(&messages, "the interaction expired"),
            1,
            "run {id}: {messages:#?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_event_is_delivered_once_across_runners() {
    const RUNS: usize = 30;
    let runners = three_runners(&[]);
    let apis: Vec<Api> = runners.iter().map(Server::api).collect();
    let sink = runners[0]
        .post(
            "/v1/actions/targets",
            &json!({"name": "sink", "plugin": "audit-sink", "type": "webhook"}),
        )
        .await
        .expect_status(201)
        .json()["id"]
        .as_str()
        .expect("a target id")
        .to_owned();
    runners[1]
        .put(
            "/v1/actions/executions",
            &json!({"condition": {"event": {"event": "execution.completed"}}, "targets": [{"target": sink}]}),
        )
        .await
        .expect_status(200);
    runners[2]
        .create_workflow("id: quick\nsteps:\n  - name: Echo\n    plugin: echo\n    input: {}\n")
        .await;
    let ids = each(&apis, RUNS, 12, |i, apis| async move {
        let run = apis[i % 3]
            .post("/v1/workflows/quick/executions?wait=true", &json!({}))
            .await
            .expect_status(200)
            .json();
        run_id(&run)
    })
    .await;

    let query = format!("/v1/actions/log?target={sink}&limit=1000");
    runners[0]
        .poll(&query, "every event delivered", |page| {
            page["items"].as_array().map_or(0, Vec::len) >= RUNS
        })
        .await;
    for api in &apis {
        api.poll("/v1/actions/outbox", "empty", |page| page["items"] == json!([]))
            .await;
    }
    let page = runners[0].get(&query).await.expect_status(200).json();
    let calls = page["items"].as_array().expect("log items");
    assert_eq!(calls.len(), RUNS, "{page:#}");
    let delivered: BTreeSet<String> = ids
        .iter()
        .filter(|id| {
            calls.iter().any(|c| {
                c["logs"].as_array().is_some_and(|lines| {
                    lines
                        .iter()
                        .any(|l| l["message"].as_str().is_some_and(|m| m.contains(id.as_str())))
                })
            })
        })
        .cloned()
        .collect();
    assert_eq!(delivered.len(), RUNS, "{page:#}");
    for call in calls {
        assert_eq!(call["delivery"]["attempt"], 1, "{call:#}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_posted_to_three_runners_at_once_are_distinct() {
    const POSTS: usize = 12;
    let runners = three_runners(&[]);
    let apis: Vec<Api> = runners.iter().map(Server::api).collect();
    let versions = each(&apis, POSTS, POSTS, |i, apis| async move {
        let yaml = format!("id: shared\nsteps:\n  - name: Echo{i}\n    plugin: echo\n    input: {{}}\n");
        let created: Value = apis[i % 3]
            .post_raw("/v1/workflows", "application/yaml", yaml)
            .await
            .expect_status(201)
            .json();
        created["version"].clone()
    })
    .await;
    let distinct: BTreeSet<String> = versions.iter().map(Value::to_string).collect();
    assert_eq!(distinct.len(), POSTS, "{versions:?}");
}

/// A workflow that fetches `url` with the `api_token` secret.
const FETCH: &str = r#"
id: fetch
inputs:
  url: {type: string}
steps:
  - name: Fetch
    plugin: http-request
    input: {url: "{{ inputs.url }}", bearer_secret: api_token}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_set_on_one_runner_applies_on_the_others() {
    use crate::grants::{serve, SECRET};
    let (port, heard) = serve(2);
    let first = Weft::on(Backend::Postgres);
    // Each runner has the secret's value and no grant of its own.
    let runners: Vec<Server> = [first.same_database(), first.same_database(), first]
        .into_iter()
        .map(|weft| {
            let config = weft.write_file(
                "weft.toml",
                format!("[secrets]\napi_token = {{ value = \"{SECRET}\" }}\n").as_bytes(),
            );
            Server::on(weft, &["--config", path_str(&config)])
        })
        .collect();
    runners[0].create_workflow(FETCH).await;
    let body = json!({"input": {"url": format!("http://127.0.0.1:{port}/ping")}});
    let fetch = |api: Api| {
        let body = body.clone();
        async move {
            api.post("/v1/workflows/fetch/executions?wait=true", &body)
                .await
                .expect_status(200)
                .json()
        }
    };

    let denied = fetch(runners[1].api()).await;
    assert_eq!(state(&denied), "failed", "{denied:#}");

    let grant = json!({"http": [format!("GET 127.0.0.1:{port}")], "secrets": ["api_token"]});
    let set = runners[0]
        .put_as("alice", "/v1/grants/http-request", &grant)
        .await
        .expect_status(200)
        .json();
    assert_eq!(set["updated_by"], "alice", "{set:#}");
    assert_eq!(set["source"], "admin", "{set:#}");
    for runner in &runners[1..] {
        let run = runner
            .poll("/v1/grants/http-request", "the grant", |g| {
                g["plugin"] == "http-request"
            })
            .await;
        assert_eq!(run["http"], grant["http"]);
    }
    // The other runners apply it as soon as they hear of it.
    for runner in &runners[1..] {
        let run = poll_run(runner, &fetch, "completed").await;
        assert_eq!(step(&run, "Fetch")["output"]["status"], 200, "{run:#}");
        assert_eq!(heard.recv().expect("a request").1, format!("Bearer {SECRET}"));
    }

    runners[2]
        .delete("/v1/grants/http-request")
        .await
        .expect_status(204);
    let run = poll_run(&runners[1], &fetch, "failed").await;
    let error = step(&run, "Fetch")["error"].as_str().unwrap_or_default();
    assert!(error.contains("is not granted"), "{error}");
    assert!(
        heard.try_recv().is_err(),
        "a deleted grant still reached the server"
    );

    // Admins only, and audited.
    let audit = runners[0]
        .get("/v1/audit?limit=1000")
        .await
        .expect_status(200)
        .json();
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .expect("audit items")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(actions.contains(&"PUT /v1/grants/http-request"), "{actions:?}");
    runners[0]
        .put("/v1/grants/Not%20A%20Name", &grant)
        .await
        .expect_error(400, "invalid_request", &["Not A Name"]);
    runners[0]
        .put("/v1/grants/http-request", &json!({"http": ["GET not a host"]}))
        .await
        .expect_error(400, "invalid_request", &["http[0]", "not a host"]);
    runners[0]
        .put("/v1/grants/http-request", &json!({"hosts": []}))
        .await
        .expect_error(400, "invalid_request", &["hosts"]);
}

/// Starts fetch runs on `runner` until one ends in `wanted` (a grant change reaches a runner
/// through a notice, so the first run after the change may still see the old grant).
async fn poll_run<F, Fut>(runner: &Server, fetch: &F, wanted: &str) -> Value
where
    F: Fn(Api) -> Fut,
    Fut: std::future::Future<Output = Value>,
{
    let started = std::time::Instant::now();
    loop {
        let run = fetch(runner.api()).await;
        if state(&run) == wanted {
            return run;
        }
        assert!(started.elapsed() < POLL_LIMIT, "no run was {wanted}: {run:#}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runners_are_listed_for_admins() {
    let runners = three_runners(&[]);
    let listed = runners[0].get("/v1/runners").await.expect_status(200).json();
    let items = listed["items"].as_array().expect("runners");
    assert_eq!(items.len(), 3, "{listed:#}");
    let addresses: BTreeSet<String> = items
        .iter()
        .map(|r| r["address"].as_str().unwrap_or_default().to_owned())
        .collect();
    let expected: BTreeSet<String> = runners.iter().map(Server::address).collect();
    assert_eq!(addresses, expected, "{listed:#}");
    assert_eq!(items.iter().filter(|r| r["this"] == true).count(), 1);
    for runner in items {
        assert_eq!(runner["alive"], true, "{runner:#}");
        let heartbeat = time(&runner["heartbeat_at"]);
        assert!(time(&runner["lease_until"]) > heartbeat, "{runner:#}");
    }
    let token = runners[0].weft.create_token("ops", "operator", &[]);
    runners[0]
        .api()
        .with_token(&token)
        .get("/v1/runners")
        .await
        .expect_error(403, "forbidden", &["list runners"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redb_file_copied_to_postgres_carries_on_there() {
    // A file in use: a finished run, two waiting ones, a token, a grant and an action rule.
    let mut single = Server::start();
    single.create_workflow(CONFIRM).await;
    let answer = json!({"parameters": [{"name": "size", "type": "number", "value": 7}]});
    let mut ids = Vec::new();
    for _ in 0..3 {
        let id = single.start_run("confirm", &json!({})).await;
        single.wait_state("confirm", &id, "waiting").await;
        ids.push(id);
    }
    single
        .post_as("approver", &interaction_path(&ids[0]), &answer)
        .await
        .expect_status(204);
    let finished = single.wait_state("confirm", &ids[0], "completed").await;
    let finished_log = log_messages(&single.api(), "confirm", &ids[0]).await;
    single
        .put("/v1/grants/echo", &json!({"env": {"REGION": "eu"}}))
        .await
        .expect_status(200);
    let token = single
        .post("/v1/tokens", &json!({"name": "ops", "role": "admin"}))
        .await
        .expect_status(201)
        .json()["token"]
        .as_str()
        .expect("a token")
        .to_owned();
    assert!(single.stop().success());

    let target = crate::postgres::database();
    let copied = single
        .weft
        .run_without_db(&["db", "copy", "--from", &single.weft.db, "--to", &target]);
    copied
        .expect_code(0)
        .expect_stderr(&["records from", "checked each", "runs", "tokens"]);
    let again = single
        .weft
        .run_without_db(&["db", "copy", "--from", &single.weft.db, "--to", &target]);
    again.expect_code(1).expect_stderr(&["is not empty"]);

    let pg = Weft {
        dir: tempfile::tempdir().expect("a temporary directory"),
        db: target,
        env: Vec::new(),
    };
    let runners: Vec<Server> = [pg.same_database(), pg]
        .into_iter()
        .map(|weft| Server::on(weft, &[]))
        .collect();
    let apis: Vec<Api> = runners.iter().map(|r| r.api().with_token(&token)).collect();
    let listed = apis[0]
        .get("/v1/workflows/confirm/executions")
        .await
        .expect_status(200)
        .json();
    let mut listed: Vec<String> = listed["items"]
        .as_array()
        .expect("runs")
        .iter()
        .map(run_id)
        .collect();
    listed.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(listed, expected);
    assert_eq!(apis[1].execution("confirm", &ids[0]).await, finished);
    assert_eq!(log_messages(&apis[1], "confirm", &ids[0]).await, finished_log);
    assert_eq!(
        apis[0].get("/v1/grants/echo").await.expect_status(200).json()["env"],
        json!({"REGION": "eu"})
    );
    for (i, id) in ids[1..].iter().enumerate() {
        apis[i % 2]
            .post(&interaction_path(id), &answer)
            .await
            .expect_status(204);
        let run = apis[(i + 1) % 2].wait_state("confirm", id, "completed").await;
        assert_eq!(run["outputs"]["size"], json!(7), "{run:#}");
    }
    apis[0]
        .anonymous()
        .get("/v1/workflows/confirm/executions")
        .await
        .expect_status(401);
}
