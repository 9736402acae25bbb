//! No request, definition, template, plugin or slow client can crash, stall or bloat the
//! server: one regression test per class of hostile input, each at a size that runs in
//! seconds (the point is the limit, not the size), each checking afterwards that the server
//! still answers `/healthz` promptly and, where memory is the risk, that its RSS stayed
//! bounded.

use crate::common::*;
use serde_json::{json, Value};
use std::io::{Read, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// How long `/healthz` may take while the server is under attack; far above its usual
/// sub-millisecond answer, far below the tens of seconds the attacks took before.
const PROMPT: Duration = Duration::from_secs(2);

/// RSS a debug-build server may reach after an attack; the attacks reached gigabytes.
const RSS_BOUND_MIB: u64 = 400;

/// Asserts that `/healthz` answers within [`PROMPT`].
async fn healthz_is_prompt(api: &Api) {
    let started = Instant::now();
    api.get("/healthz").await.expect_status(200);
    let took = started.elapsed();
    assert!(took < PROMPT, "/healthz took {took:?}");
}

/// A chain of `steps` echo steps, each needing the next (so validation walks it end to end).
fn chain(id: &str, steps: usize) -> String {
    let steps: Vec<Value> = (0..steps)
        .map(|i| {
            let mut step = json!({"name": format!("s{i}"), "plugin": "echo"});
            if i + 1 < steps {
                step["needs"] = json!([format!("s{}", i + 1)]);
            } else {
                step["needs"] = json!([]);
            }
            step
        })
        .collect();
    json!({"id": id, "steps": steps}).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_chains_and_deep_documents_are_refused_without_stalling() {
    let server = Server::start();
    // At the limit, a chain validates (without recursion) and is stored.
    server
        .post_raw("/v1/workflows", "application/json", chain("at-limit", 1000))
        .await
        .expect_status(201);
    // Past it, the definition is refused by its size before anything walks it.
    server
        .post_raw("/v1/workflows", "application/json", chain("too-long", 20_000))
        .await
        .expect_error(400, "invalid_definition", &["limits."]);

    // 100,000 levels deep, as YAML flow lists and as JSON objects, two of each at once.
    let yaml = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let json_text = format!("{}1{}", "{\"a\":".repeat(100_000), "}".repeat(100_000));
    let mut attacks = Vec::new();
    for body in [yaml.clone(), yaml, json_text.clone(), json_text] {
        let api = server.api();
        attacks.push(tokio::spawn(async move {
            let started = Instant::now();
            let answer = api.post_raw("/v1/workflows", "application/yaml", body).await;
            (answer, started.elapsed())
        }));
    }
    healthz_is_prompt(&server).await;
    for attack in attacks {
        let (answer, took) = attack.await.unwrap();
        answer.expect_error(
            400,
            "invalid_definition",
            &["nests more than 128 levels", "limits.nesting_depth"],
        );
        assert!(took < PROMPT, "a deep document took {took:?} to refuse");
    }
    healthz_is_prompt(&server).await;
}

/// A server whose template engine has 32 MiB and half a second per evaluation.
fn template_server() -> Server {
    let weft = Weft::new();
    let config = weft.write_config("[limits]\ntemplate_memory_mb = 32\ntemplate_timeout = \"500ms\"\n");
    Server::on(weft, &["--config", path_str(&config)])
}

/// Starts `workflow` and returns the run once it has finished.
async fn finished(api: &Api, workflow: &str) -> Value {
    let id = api.start_run(workflow, &json!({})).await;
    api.wait_for(workflow, &id, "finished", |s| {
        !matches!(s, "pending" | "running" | "waiting")
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templates_are_bounded_by_the_sandbox() {
    let server = template_server();
    // A short expression that doubles a string until it is huge.
    server
        .create_workflow(
            "id: doubling\nsteps:\n- name: A\n  plugin: echo\n  input:\n    x: \"{% set s0 = 'x' * 1000000 %}{% set s1 = s0 ~ s0 %}{% set s2 = s1 ~ s1 %}{% set s3 = s2 ~ s2 %}{% set s4 = s3 ~ s3 %}{% set s5 = s4 ~ s4 %}{% set s6 = s5 ~ s5 %}{% set s7 = s6 ~ s6 %}{% set s8 = s7 ~ s7 %}{% set s9 = s8 ~ s8 %}{% set s10 = s9 ~ s9 %}{% set s11 = s10 ~ s10 %}{% set s12 = s11 ~ s11 %}{{ s12 | length }}\"\n",
        )
        .await;
    // `upper` over a big string, over and over.
    server
        .create_workflow(
            "id: busy\nsteps:\n- name: A\n  plugin: echo\n  input:\n    x: \"{% set s = 'x' * 2000000 %}{% for i in range(100000) %}{{ (s | upper) | length }}{% endfor %}\"\n",
        )
        .await;
    // Outputs larger than a step may return.
    server
        .create_workflow(
            "id: big-outputs\nsteps:\n- {name: A, plugin: echo}\noutputs:\n  x: \"{{ 'x' * 5000000 }}\"\n",
        )
        .await;

    let (doubling, busy, big) = tokio::join!(
        finished(&server, "doubling"),
        finished(&server, "busy"),
        finished(&server, "big-outputs"),
    );
    healthz_is_prompt(&server).await;
    assert_eq!(state(&doubling), "failed", "{doubling:#}");
    let error = step(&doubling, "A")["error"].as_str().unwrap_or_default();
    assert!(error.contains("limits.template_memory_mb"), "{error}");
    assert_eq!(state(&busy), "failed", "{busy:#}");
    let error = step(&busy, "A")["error"].as_str().unwrap_or_default();
    assert!(error.contains("limits.template_timeout"), "{error}");
    assert_eq!(state(&big), "failed", "{big:#}");
    let error = big["error"].as_str().unwrap_or_default();
    assert!(error.contains("limits.template_output_kb"), "{error}");
    assert!(
        big.to_string().len() < 64 << 10,
        "the run record carries the output"
    );

    // A constant expression is folded when the template is read: in the sandbox too, and the
    // definition is refused naming the template and the limit.
    server
        .post_raw(
            "/v1/workflows",
            "application/yaml",
            "id: constant\nsteps:\n- {name: A, plugin: echo, input: {x: \"{{ 'x' * 90000000 }}\"}}\n",
        )
        .await
        .expect_error(
            400,
            "invalid_definition",
            &["steps[0].input", "limits.template_memory_mb"],
        );
    healthz_is_prompt(&server).await;
    let rss = server.rss_mib();
    assert!(rss < RSS_BOUND_MIB, "the server grew to {rss} MiB");
}

/// A server with the hostile plugin uploaded.
async fn hostile_server() -> Server {
    let server = Server::start();
    server
        .post_raw(
            "/v1/plugins?name=hostile&version=1.0.0",
            "application/wasm",
            std::fs::read(hostile_wasm()).unwrap(),
        )
        .await
        .expect_status(201);
    server
}

/// A one-step workflow calling the hostile plugin with `input`.
async fn hostile_workflow(api: &Api, id: &str, input: Value) {
    api.post_raw(
        "/v1/workflows",
        "application/json",
        json!({"id": id, "steps": [{"name": "Misbehave", "plugin": "hostile@1.0.0", "input": input, "timeout": "20s"}]})
            .to_string(),
    )
    .await
    .expect_status(201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_cannot_spend_host_memory_beyond_their_caps() {
    let server = hostile_server().await;
    hostile_workflow(
        &server,
        "fields",
        json!({"mode": "fields", "count": 20000, "bytes": 70000}),
    )
    .await;
    hostile_workflow(
        &server,
        "flood",
        json!({"mode": "log_flood", "count": 200, "bytes": 8_000_000}),
    )
    .await;
    hostile_workflow(&server, "fail", json!({"mode": "big_fail", "bytes": 20_000_000})).await;
    hostile_workflow(&server, "form", json!({"mode": "big_form", "bytes": 30_000_000})).await;

    let fields = finished(&server, "fields").await;
    assert_eq!(state(&fields), "failed", "{fields:#}");
    healthz_is_prompt(&server).await;

    let flood = finished(&server, "flood").await;
    assert_eq!(state(&flood), "completed", "{flood:#}");
    let id = run_id(&flood);
    let logs = server
        .get(&format!("{}/logs?limit=10000", Api::execution_path("flood", &id)))
        .await;
    logs.expect_status(200);
    assert!(
        logs.text.len() < 4 << 20,
        "the log kept {} bytes",
        logs.text.len()
    );
    assert!(
        logs.text.contains("more log lines of this call were dropped"),
        "{}",
        &logs.text[..2000]
    );

    for workflow in ["fail", "form"] {
        let run = finished(&server, workflow).await;
        assert_eq!(state(&run), "failed", "{run:#}");
        let error = step(&run, "Misbehave")["error"].as_str().unwrap_or_default();
        assert!(error.contains("more than the limit of 4194304 bytes"), "{error}");
        assert!(
            run.to_string().len() < 64 << 10,
            "{workflow}: the run carries the text"
        );
    }
    healthz_is_prompt(&server).await;
    let rss = server.rss_mib();
    assert!(rss < RSS_BOUND_MIB, "the server grew to {rss} MiB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_answer_echoes_a_bounded_text() {
    let server = hostile_server().await;
    for (id, bytes) in [("refusal", 1_000_000u64), ("huge-refusal", 20_000_000)] {
        hostile_workflow(&server, id, json!({"mode": "big_refusal", "bytes": bytes})).await;
    }
    let id = server.start_run("refusal", &json!({})).await;
    server.wait_state("refusal", &id, "waiting").await;
    let answer = server
        .post(
            &format!("{}/interaction", Api::execution_path("refusal", &id)),
            &json!({}),
        )
        .await;
    answer.expect_error(400, "invalid_answer", &["more bytes)"]);
    assert!(
        answer.text.len() < 32 << 10,
        "the answer error is {} bytes",
        answer.text.len()
    );
    server.wait_state("refusal", &id, "waiting").await;

    // Past the plugin's output budget, the refusal is the plugin's failure, not a 100 MB reply.
    let id = server.start_run("huge-refusal", &json!({})).await;
    server.wait_state("huge-refusal", &id, "waiting").await;
    let answer = server
        .post(
            &format!("{}/interaction", Api::execution_path("huge-refusal", &id)),
            &json!({}),
        )
        .await;
    assert!(
        answer.text.len() < 32 << 10,
        "the answer is {} bytes",
        answer.text.len()
    );
    let run = server.wait_state("huge-refusal", &id, "failed").await;
    let error = step(&run, "Misbehave")["error"].as_str().unwrap_or_default();
    assert!(error.contains("more than the limit"), "{error}");
    healthz_is_prompt(&server).await;
}

/// A component file that is a valid component but no plugin of ours, made distinct by a
/// custom section (so each has its own digest).
fn foreign_component(n: usize) -> Vec<u8> {
    let engine = std::path::Path::new(PLUGIN_DIR).join("templates.wasm");
    let mut bytes = std::fs::read(engine).expect("the template engine component");
    let name = b"weft-test";
    let payload = format!("variant {n}");
    let content = 1 + name.len() + payload.len();
    bytes.push(0); // custom section id
    bytes.push(u8::try_from(content).expect("a short section"));
    bytes.push(u8::try_from(name.len()).unwrap());
    bytes.extend_from_slice(name);
    bytes.extend_from_slice(payload.as_bytes());
    bytes
}

#[test]
fn refused_uploads_leave_nothing_in_the_database() {
    let weft = Weft::new();
    let mut digests = Vec::new();
    for n in 0..5 {
        let bytes = foreign_component(n);
        digests.push(weft::names::Digest::of(&bytes));
        let file = weft.write_file(&format!("foreign-{n}.wasm"), &bytes);
        let out = weft.run(&[
            "plugin",
            "add",
            path_str(&file),
            "--name",
            &format!("foreign{n}"),
            "--version",
            "1.0.0",
        ]);
        out.expect_code(1);
        out.expect_stderr(&["exports neither weft:plugin/step@0.2.0"]);
    }
    let list = weft.run(&["plugin", "list"]);
    assert!(!list.stdout.contains("foreign"), "{}", list.stdout);
    // Not even the compiled artifacts of the refused components are kept.
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let store = weft::store::redb::RedbStore::open(&weft.db_file(), "test".into()).unwrap();
    for digest in digests {
        use weft::store::CatalogStore;
        assert!(
            !rt.block_on(store.has_artifact(&digest)).unwrap(),
            "{digest} left its artifact"
        );
        assert!(
            rt.block_on(store.plugin_bytes(&digest)).unwrap().is_none(),
            "{digest} left its bytes"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compiles_run_within_a_time_and_a_memory_budget() {
    let transform = std::fs::read(std::path::Path::new(PLUGIN_DIR).join("transform.wasm")).unwrap();
    for (limit, needles) in [
        (
            "compile_timeout = \"5ms\"",
            ["took longer than 5ms", "limits.compile_timeout"],
        ),
        (
            "compile_memory_mb = 24",
            ["memory budget of 24 MiB", "limits.compile_memory_mb"],
        ),
    ] {
        let weft = Weft::new();
        let config = weft.write_config(&format!("[limits]\n{limit}\n"));
        let server = Server::on(weft, &["--config", path_str(&config)]);
        server
            .post_raw(
                "/v1/plugins?name=heavy&version=1.0.0",
                "application/wasm",
                transform.clone(),
            )
            .await
            .expect_error(400, "invalid_plugin", &needles);
        healthz_is_prompt(&server).await;
        let list = server.get("/v1/plugins/heavy").await;
        assert_eq!(list.status, 404, "{}", list.text);
    }
}

/// Reads what the server sends on `stream` until it closes, or `limit` passes.
fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, bool) {
    stream.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let started = Instant::now();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while started.elapsed() < limit {
        match stream.read(&mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&seen).into_owned(), true),
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return (String::from_utf8_lossy(&seen).into_owned(), true),
        }
    }
    (String::from_utf8_lossy(&seen).into_owned(), false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_and_connections_are_capped() {
    let weft = Weft::new();
    let config = weft.write_config("[limits]\nmax_connections = 8\nidle_timeout = \"1s\"\n");
    let server = Server::on(weft, &["--config", path_str(&config)]);
    let address = server.address();
    // More unfinished requests than the server serves at once.
    let mut slow: Vec<TcpStream> = (0..24)
        .map(|_| {
            let mut stream = TcpStream::connect(&address).unwrap();
            stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").unwrap();
            stream
        })
        .collect();
    // A proper client gets through once the slow ones are cut off.
    let started = Instant::now();
    server.unpooled().get("/healthz").await.expect_status(200);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    for stream in &mut slow[..8] {
        let (_, closed) = read_until_closed(stream, Duration::from_secs(5));
        assert!(closed, "a slow connection was kept open");
    }

    // A body announced as too large is refused before a byte of it is sent.
    let mut stream = TcpStream::connect(&address).unwrap();
    stream
        .write_all(b"POST /v1/workflows HTTP/1.1\r\nHost: x\r\nContent-Type: application/yaml\r\nContent-Length: 10000000000\r\n\r\n")
        .unwrap();
    let (answer, _) = read_until_closed(&mut stream, Duration::from_secs(2));
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    healthz_is_prompt(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_never_echo_more_than_a_bounded_part_of_the_input() {
    let server = Server::start();
    server
        .create_workflow("id: small\ninputs:\n  n: {type: integer}\nsteps:\n- {name: A, plugin: echo}\n")
        .await;
    let mut input = serde_json::Map::new();
    for i in 0..200_000 {
        input.insert(format!("unknown_key_{i}_{}", "k".repeat(20)), json!(i));
    }
    let body = json!({"input": input}).to_string();
    assert!(body.len() > 8 << 20);
    let answer = server
        .post_raw("/v1/workflows/small/executions", "application/json", body)
        .await;
    answer.expect_error(400, "invalid_input", &["more problems"]);
    assert!(
        answer.text.len() < 64 << 10,
        "the error is {} bytes",
        answer.text.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_belong_to_their_caller_and_request() {
    let weft = Weft::new();
    let olga = weft.create_token("olga", "operator", &[]);
    let otto = weft.create_token("otto", "operator", &[]);
    let root = weft.create_token("root", "admin", &[]);
    let server = Server::on(weft, &[]);
    server
        .with_token(&root)
        .create_workflow("id: keyed\ninputs:\n  n: {type: integer}\nsteps:\n- {name: A, plugin: echo}\n")
        .await;
    let start = |token: &str, n: i64| {
        let api = server.with_token(token);
        async move {
            api.send(
                api.request(reqwest::Method::POST, "/v1/workflows/keyed/executions")
                    .header("Idempotency-Key", "order-7")
                    .json(&json!({"input": {"n": n}})),
            )
            .await
        }
    };
    let first = start(&olga, 1).await;
    first.expect_status(202);
    let run = run_id(&first.json());
    // The same caller, the same request: the same run.
    assert_eq!(run_id(&start(&olga, 1).await.json()), run);
    // The same caller, another request: refused, naming the key.
    start(&olga, 2)
        .await
        .expect_error(422, "idempotency_key_reused", &["order-7", &run]);
    // Another caller's key is their own.
    let theirs = start(&otto, 1).await;
    theirs.expect_status(202);
    assert_ne!(run_id(&theirs.json()), run);
    // Once the run is deleted, the key starts a new one.
    let admin = server.with_token(&root);
    let path = Api::execution_path("keyed", &run);
    admin.wait_state("keyed", &run, "completed").await;
    admin.delete(&path).await.expect_status(204);
    let again = start(&olga, 2).await;
    again.expect_status(202);
    assert_ne!(run_id(&again.json()), run);
}

/// What the soak's clients were told: runs whose start was acknowledged (202) and runs whose
/// answer was acknowledged (204).
#[derive(Default)]
struct Acknowledged {
    started: Vec<String>,
    answered: Vec<String>,
}

/// One soak client: starts a run, waits until it asks, answers it; again and again until
/// `stop`. Requests that fail because the server is being killed are retried against
/// whatever server `base` names by then.
async fn soak_client(
    base: std::sync::Arc<std::sync::Mutex<String>>,
    acked: std::sync::Arc<std::sync::Mutex<Acknowledged>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use std::sync::atomic::Ordering;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let url = |path: &str| format!("{}{path}", base.lock().unwrap());
    let pause = || tokio::time::sleep(Duration::from_millis(20));
    while !stop.load(Ordering::Relaxed) {
        let started = client
            .post(url("/v1/workflows/soak/executions"))
            .json(&json!({"input": {}}))
            .send()
            .await;
        let Ok(response) = started else {
            pause().await;
            continue;
        };
        if response.status() != 202 {
            pause().await;
            continue;
        }
        let Ok(body) = response.json::<Value>().await else {
            continue;
        };
        let id = run_id(&body);
        acked.lock().unwrap().started.push(id.clone());
        let path = Api::execution_path("soak", &id);
        // Answer it once it asks; a killed server means asking again.
        while !stop.load(Ordering::Relaxed) {
            let waiting = match client.get(url(&format!("{path}/state"))).send().await {
                Ok(r) if r.status() == 200 => r.json::<Value>().await.ok().map(|s| state(&s) == "waiting"),
                _ => None,
            };
            if waiting != Some(true) {
                pause().await;
                continue;
            }
            let answered = client
                .post(url(&format!("{path}/interaction")))
                .json(&json!({}))
                .send()
                .await;
            match answered.map(|r| r.status().as_u16()) {
                Ok(204) => {
                    acked.lock().unwrap().answered.push(id.clone());
                    break;
                }
                // Already answered before a crash ate the acknowledgement: not counted.
                Ok(409) => break,
                _ => pause().await,
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_nothing_acknowledged() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    const CLIENTS: usize = 64;
    const KILLS: usize = 3;
    let mut server = Server::start();
    server
        .create_workflow(
            "id: soak\nsteps:\n- name: Ask\n  plugin: interaction\n  input: {prompt: Go?, fields: [{name: ok, type: boolean, default: true}]}\n- {name: Done, plugin: echo}\n",
        )
        .await;
    let base = Arc::new(Mutex::new(server.base.clone()));
    let acked = Arc::new(Mutex::new(Acknowledged::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| tokio::spawn(soak_client(base.clone(), acked.clone(), stop.clone())))
        .collect();
    // Kill the server whenever the clients have made some progress since the last kill, at a
    // moment that falls wherever it falls among their requests.
    let mut seen = 0;
    for _ in 0..KILLS {
        let started = Instant::now();
        loop {
            let progress = {
                let acked = acked.lock().unwrap();
                acked.started.len() + acked.answered.len()
            };
            if progress >= seen + CLIENTS {
                seen = progress;
                break;
            }
            assert!(started.elapsed() < POLL_LIMIT, "the clients made no progress");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        server.restart();
        *base.lock().unwrap() = server.base.clone();
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }

    // Every acknowledged start is there; every acknowledged answer was applied, and its run
    // went on to finish.
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    assert!(
        acked.started.len() >= KILLS * CLIENTS / 2,
        "too little load: {}",
        acked.started.len()
    );
    let mut missing = Vec::new();
    for id in &acked.started {
        let found = server.get(&Api::execution_path("soak", id)).await;
        if found.status != 200 {
            missing.push(format!("started {id}: {}", found.status));
        }
    }
    for id in &acked.answered {
        let run = server
            .wait_for("soak", id, "finished", |s| s != "running" && s != "pending")
            .await;
        if step(&run, "Ask")["answers"]
            .as_array()
            .is_none_or(|a| a.is_empty())
            || state(&run) != "completed"
        {
            missing.push(format!("answered {id}: {run}"));
        }
    }
    assert!(
        missing.is_empty(),
        "{} acknowledged, then lost:\n{}",
        missing.len(),
        missing.join("\n")
    );
    eprintln!(
        "soak: {} starts and {} answers acknowledged across {KILLS} kill -9, none lost",
        acked.started.len(),
        acked.answered.len()
    );
}
