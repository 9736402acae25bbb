//! Operating `weft serve`: its log lines (JSON with `--log-format json`, never a token, no
//! terminal escapes off a terminal), `GET /metrics` after a known workload on both backends,
//! OpenTelemetry traces received by an OTLP/HTTP receiver in the test, and tokens that hold
//! several roles.

use crate::common::*;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Two echo steps: every run completes at once.
const PLAIN: &str = r#"
id: metered-plain
steps:
  - name: First
    plugin: echo
    input: {n: 1}
  - name: Second
    plugin: echo
    input: {n: 2}
"#;

/// An echo step, then an approval by `ops`.
const APPROVED: &str = r#"
id: metered-approval
steps:
  - name: Prepare
    plugin: echo
    input: {n: 1}
  - name: Approve
    plugin: approval
    input: {approvers: [ops]}
"#;

/// A step that fails at once.
const FAILING: &str = r#"
id: failing
steps:
  - name: Break
    plugin: fail
    input: {message: "the disk is full"}
"#;

/// Every JSON line the server wrote to stderr; panics on a line that is not a JSON object.
fn json_lines(stderr: &str) -> Vec<Value> {
    stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let line: Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}"));
            assert!(line.is_object(), "not a JSON object: {l}");
            for key in ["timestamp", "level", "message"] {
                assert!(line[key].is_string(), "no {key}: {l}");
            }
            line
        })
        .collect()
}

/// The request lines for `method route` with `status`.
fn request_lines<'a>(lines: &'a [Value], method: &str, route: &str, status: u16) -> Vec<&'a Value> {
    lines
        .iter()
        .filter(|l| {
            l["message"] == "request" && l["method"] == method && l["route"] == route && l["status"] == status
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_and_run_transitions_are_logged_as_json_lines_without_the_token() {
    let weft = Weft::new().with_env("WEFT_LOG", "info");
    let secret = weft.create_token("ops", "admin", &[]);
    let server = Server::on(weft, &["--log-format", "json"]);
    let api = server.with_token(&secret);
    let token_id = api.get("/v1/tokens").await.expect_status(200).json()["items"][0]["id"]
        .as_str()
        .expect("a token id")
        .to_owned();

    api.create_workflow(PLAIN).await;
    api.create_workflow(FAILING).await;
    let done = api
        .post("/v1/workflows/metered-plain/executions?wait=true", &json!({}))
        .await
        .expect_status(200)
        .json();
    let run = run_id(&done);
    let failed = api
        .post("/v1/workflows/failing/executions?wait=true", &json!({}))
        .await
        .expect_status(200)
        .json();
    assert_eq!(state(&failed), "failed", "{failed:#}");
    server.anonymous().get("/v1/workflows").await.expect_status(401);
    server.wait_for_stderr(r#""status":401"#);
    server.wait_for_stderr(r#""message":"run finished","run":""#);

    let stderr = server.stderr();
    assert!(!stderr.contains(&secret), "the token was logged:\n{stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "terminal escapes off a terminal:\n{stderr}"
    );
    let lines = json_lines(&stderr);

    let starts = request_lines(&lines, "POST", "/v1/workflows/{id}/executions", 200);
    assert_eq!(starts.len(), 2, "{stderr}");
    for line in starts {
        assert_eq!(line["level"], "INFO", "{line}");
        assert_eq!(line["user"], "ops", "{line}");
        assert_eq!(line["token_id"], token_id.as_str(), "{line}");
        assert!(line["latency_ms"].as_f64().is_some_and(|ms| ms > 0.0), "{line}");
    }
    let refused = request_lines(&lines, "GET", "/v1/workflows", 401);
    assert_eq!(refused.len(), 1, "{stderr}");
    assert!(refused[0].get("user").is_none(), "{}", refused[0]);

    let of_run = |message: &str| -> Vec<&Value> {
        lines
            .iter()
            .filter(|l| l["message"] == message && l["run"] == run.as_str())
            .collect()
    };
    let started = of_run("run started");
    assert_eq!(started.len(), 1, "{stderr}");
    assert_eq!(started[0]["workflow"], "metered-plain");
    assert_eq!(started[0]["started_by"], "ops");
    let steps: Vec<&str> = of_run("step finished")
        .iter()
        .map(|l| l["step"].as_str().expect("a step"))
        .collect();
    assert_eq!(steps, ["First", "Second"], "{stderr}");
    let finished = of_run("run finished");
    assert_eq!(finished.len(), 1, "{stderr}");
    assert_eq!(finished[0]["state"], "completed");
    assert_eq!(finished[0]["level"], "INFO");

    let failed_id = run_id(&failed);
    let failure = lines
        .iter()
        .find(|l| l["message"] == "run finished" && l["run"] == failed_id.as_str())
        .unwrap_or_else(|| panic!("no line for the failed run:\n{stderr}"));
    assert_eq!(failure["level"], "ERROR", "{failure}");
    assert_eq!(failure["state"], "failed", "{failure}");
    assert!(
        failure["error"]
            .as_str()
            .is_some_and(|e| e.contains("the disk is full")),
        "the cause is missing: {failure}"
    );

    // Text, the default, has no escapes either when stderr is not a terminal; a server on a
    // database with a token says nothing of local mode.
    let weft = Weft::new();
    let secret = weft.create_token("ops", "admin", &[]);
    let text = Server::on(weft, &[]);
    text.with_token(&secret)
        .get("/v1/workflows")
        .await
        .expect_status(200);
    let log = text.wait_for_stderr("route=/v1/workflows");
    assert!(!log.contains('\u{1b}'), "terminal escapes off a terminal:\n{log}");
    assert!(!log.contains("LOCAL MODE"), "{log}");
    assert!(!log.contains(&secret), "{log}");
}

/// The value of the series `name{labels}` (exactly those labels) in a metrics text.
pub(crate) fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let wanted: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    text.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, labels) = match series.split_once('{') {
            Some((metric, rest)) => (metric, rest.strip_suffix('}')?),
            None => (series, ""),
        };
        let found: Vec<&str> = labels.split(',').filter(|l| !l.is_empty()).collect();
        let same = metric == name
            && found.len() == wanted.len()
            && wanted.iter().all(|w| found.contains(&w.as_str()));
        same.then(|| value.parse().expect("a number"))
    })
}

#[track_caller]
pub(crate) fn expect_sample(text: &str, name: &str, labels: &[(&str, &str)], value: f64) {
    assert_eq!(
        sample(text, name, labels),
        Some(value),
        "{name}{labels:?}\n--- metrics\n{text}"
    );
}

/// Checks that histogram `name{labels}` counted `count` observations (any count when
/// `None`, but at least one) and that its buckets agree; returns the count.
#[track_caller]
fn expect_histogram(text: &str, name: &str, labels: &[(&str, &str)], count: Option<f64>) -> f64 {
    let counted = sample(text, &format!("{name}_count"), labels)
        .unwrap_or_else(|| panic!("no {name}_count{labels:?}\n--- metrics\n{text}"));
    match count {
        Some(count) => assert_eq!(counted, count, "{name}{labels:?}\n--- metrics\n{text}"),
        None => assert!(
            counted >= 1.0,
            "{name}{labels:?} counted nothing\n--- metrics\n{text}"
        ),
    }
    let mut with_le = labels.to_vec();
    with_le.push(("le", "+Inf"));
    assert_eq!(
        sample(text, &format!("{name}_bucket"), &with_le),
        Some(counted),
        "{name}{labels:?}: the +Inf bucket disagrees with the count\n--- metrics\n{text}"
    );
    let sum = sample(text, &format!("{name}_sum"), labels).expect("a sum");
    assert!(sum >= 0.0, "{name}{labels:?}: sum {sum}");
    counted
}

/// Five runs of a two-step workflow and one run answered after an approval, then the
/// metrics: counters exactly, histograms by their counts.
async fn metrics_after_a_known_workload(backend: Backend) {
    let weft = Weft::on(backend);
    let admin = weft.create_token("ops", "admin", &[]);
    let operator = weft.create_token("olga", "operator", &[]);
    let approver = weft.create_token("alice", "approver", &[]);
    let server = Server::on(weft, &[]);
    let api = server.with_token(&admin);

    // Who may read them.
    server.anonymous().get("/metrics").await.expect_status(401);
    server
        .with_token(&approver)
        .get("/metrics")
        .await
        .expect_error(403, "forbidden", &["read the metrics"]);
    let scrape = server.with_token(&operator).get("/metrics").await;
    scrape.expect_status(200);
    assert!(
        scrape
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/openmetrics-text")),
        "{scrape:?}"
    );

    api.create_workflow(PLAIN).await;
    api.create_workflow(APPROVED).await;
    for _ in 0..5 {
        let done = api
            .post("/v1/workflows/metered-plain/executions?wait=true", &json!({}))
            .await
            .expect_status(200)
            .json();
        assert_eq!(state(&done), "completed", "{done:#}");
    }
    let waiting = api.start_run("metered-approval", &json!({})).await;
    api.wait_state("metered-approval", &waiting, "waiting").await;
    let text = api.get("/metrics").await.expect_status(200).text.clone();
    expect_sample(&text, "weft_runs_waiting", &[], 1.0);
    expect_sample(&text, "weft_outbox_backlog", &[], 0.0);
    expect_histogram(&text, "weft_answer_wait_seconds", &[], Some(0.0));

    api.post(
        &format!("/v1/instances/{waiting}/signals"),
        &json!({"SignalKey": "Approve.ApprovalStatus", "Data": {"Approved": true}}),
    )
    .await
    .expect_status(204);
    api.wait_state("metered-approval", &waiting, "completed").await;

    let text = api.get("/metrics").await.expect_status(200).text.clone();
    let plain = [("workflow", "metered-plain")];
    let approval = [("workflow", "metered-approval")];
    expect_sample(&text, "weft_runs_started_total", &plain, 5.0);
    expect_sample(&text, "weft_runs_started_total", &approval, 1.0);
    expect_sample(
        &text,
        "weft_runs_finished_total",
        &[("workflow", "metered-plain"), ("state", "completed")],
        5.0,
    );
    expect_sample(
        &text,
        "weft_runs_finished_total",
        &[("workflow", "metered-approval"), ("state", "completed")],
        1.0,
    );
    assert_eq!(
        sample(
            &text,
            "weft_runs_finished_total",
            &[("workflow", "metered-plain"), ("state", "failed")]
        ),
        None,
        "{text}"
    );
    expect_sample(&text, "weft_runs_waiting", &[], 0.0);
    expect_sample(&text, "weft_outbox_backlog", &[], 0.0);
    // 5 runs of two echo steps and one, then the approval's run and resume.
    expect_histogram(
        &text,
        "weft_step_duration_seconds",
        &[("plugin", "echo")],
        Some(11.0),
    );
    expect_histogram(
        &text,
        "weft_step_duration_seconds",
        &[("plugin", "approval")],
        Some(2.0),
    );
    expect_histogram(&text, "weft_answer_wait_seconds", &[], Some(1.0));
    expect_histogram(&text, "weft_plugin_compile_seconds", &[], None);
    let backend_name = match backend {
        Backend::Redb => "redb",
        Backend::Postgres => "postgres",
    };
    let commits = expect_histogram(
        &text,
        "weft_store_commit_seconds",
        &[("backend", backend_name)],
        None,
    );
    let batches = expect_histogram(
        &text,
        "weft_store_commit_writes",
        &[("backend", backend_name)],
        None,
    );
    assert_eq!(commits, batches, "one batch size per commit\n{text}");
    // Every run is at least one commit with at least one write.
    assert!(commits >= 6.0, "{text}");
    let writes = sample(
        &text,
        "weft_store_commit_writes_sum",
        &[("backend", backend_name)],
    )
    .expect("a sum");
    assert!(writes >= commits, "{text}");
    expect_sample(
        &text,
        "weft_http_requests_total",
        &[
            ("method", "POST"),
            ("route", "/v1/workflows/{id}/executions"),
            ("status", "200"),
        ],
        5.0,
    );
    expect_sample(
        &text,
        "weft_http_requests_total",
        &[
            ("method", "POST"),
            ("route", "/v1/workflows/{id}/executions"),
            ("status", "202"),
        ],
        1.0,
    );
    expect_sample(
        &text,
        "weft_http_requests_total",
        &[("method", "GET"), ("route", "/metrics"), ("status", "401")],
        1.0,
    );
    expect_sample(
        &text,
        "weft_http_requests_total",
        &[("method", "GET"), ("route", "/metrics"), ("status", "403")],
        1.0,
    );
    expect_histogram(
        &text,
        "weft_http_request_duration_seconds",
        &[("route", "/v1/workflows/{id}/executions")],
        Some(6.0),
    );
    dashboard_reads_only_served_series(&text);
}

/// Every series the committed Grafana dashboard queries is one the server serves.
fn dashboard_reads_only_served_series(metrics: &str) {
    let path = format!("{REPO}/docs/grafana-dashboard.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("the dashboard"))
        .unwrap_or_else(|e| panic!("{path} is not JSON: {e}"));
    let served: std::collections::HashSet<&str> = metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(!panels.is_empty());
    for panel in panels {
        assert_eq!(panel["datasource"]["uid"], "${DS_PROMETHEUS}", "{panel}");
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("an expr");
            let names: Vec<&str> = expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("weft_"))
                .collect();
            assert!(!names.is_empty(), "{expr}");
            for name in names {
                assert!(served.contains(name), "{path}: {name} is not served\n{expr}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_a_known_workload_on_redb() {
    metrics_after_a_known_workload(Backend::Redb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_a_known_workload_on_postgres() {
    metrics_after_a_known_workload(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_without_token_needs_the_flag() {
    let weft = Weft::new();
    weft.create_token("ops", "admin", &[]);
    let server = Server::on(weft, &["--metrics-without-token"]);
    let text = server
        .anonymous()
        .get("/metrics")
        .await
        .expect_status(200)
        .text
        .clone();
    expect_sample(&text, "weft_runs_waiting", &[], 0.0);
    // Everything else still needs a token.
    server.anonymous().get("/v1/workflows").await.expect_status(401);
}

// ---------------------------------------------------------------------------------------------
// Traces

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;

/// An OTLP/HTTP (protobuf) trace receiver on loopback: its base URL and the spans received.
async fn otlp_receiver() -> (String, Arc<Mutex<Vec<Span>>>) {
    let spans = Arc::new(Mutex::new(Vec::new()));
    let received = spans.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let received = received.clone();
            async move {
                let request = ExportTraceServiceRequest::decode(body).expect("an ExportTraceServiceRequest");
                let mut spans = received.lock().expect("spans lock");
                for resource in request.resource_spans {
                    for scope in resource.scope_spans {
                        spans.extend(scope.spans);
                    }
                }
                (
                    [(axum::http::header::CONTENT_TYPE, "application/x-protobuf")],
                    ExportTraceServiceResponse::default().encode_to_vec(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let address = listener.local_addr().expect("an address");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("the receiver serves") });
    (format!("http://{address}"), spans)
}

/// Waits until a span named `name` was received, and returns it.
async fn span_named(spans: &Arc<Mutex<Vec<Span>>>, name: &str) -> Span {
    let started = Instant::now();
    loop {
        if let Some(span) = spans.lock().expect("spans lock").iter().find(|s| s.name == name) {
            return span.clone();
        }
        if started.elapsed() > POLL_LIMIT {
            let names: Vec<String> = spans
                .lock()
                .expect("spans lock")
                .iter()
                .map(|s| s.name.clone())
                .collect();
            panic!("no span {name:?} within {POLL_LIMIT:?}; received {names:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// 32 (trace) or 16 (span) random hex digits.
fn random_hex(bytes: usize) -> String {
    let mut id = vec![0u8; bytes];
    getrandom::fill(&mut id).expect("randomness");
    hex::encode(id)
}

const TRACED: &str = r#"
id: traced
steps:
  - name: Build
    plugin: echo
    input: {n: 1}
  - name: Approve
    plugin: approval
    input: {approvers: [alice]}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_follow_a_run_from_its_start_request_to_its_answer() {
    let (endpoint, spans) = otlp_receiver().await;
    // Batches go every 50 ms, so spans arrive while the server runs.
    let weft = Weft::new().with_env("OTEL_BSP_SCHEDULE_DELAY", "50");
    let server = Server::on(weft, &["--otlp-endpoint", &endpoint]);
    server.create_workflow(TRACED).await;

    let (caller_trace, caller_span) = (random_hex(16), random_hex(8));
    let started = server
        .send(
            server
                .request(reqwest::Method::POST, "/v1/workflows/traced/executions")
                .header("traceparent", format!("00-{caller_trace}-{caller_span}-01"))
                .json(&json!({})),
        )
        .await;
    started.expect_status(202);
    let run = run_id(&started.json());
    server.wait_state("traced", &run, "waiting").await;
    server
        .post_as(
            "alice",
            &format!("/v1/instances/{run}/signals"),
            &json!({"SignalKey": "Approve.ApprovalStatus", "Data": {"Approved": true}}),
        )
        .await
        .expect_status(204);
    server.wait_state("traced", &run, "completed").await;

    let id = |bytes: &[u8]| hex::encode(bytes);
    // The start request continues the caller's trace.
    let start = span_named(&spans, "POST /v1/workflows/{id}/executions").await;
    assert_eq!(id(&start.trace_id), caller_trace);
    assert_eq!(id(&start.parent_span_id), caller_span);
    // The run is a child of the request that started it, and stays in the caller's trace.
    let run_span = span_named(&spans, "run traced").await;
    assert_eq!(id(&run_span.trace_id), caller_trace);
    assert_eq!(run_span.parent_span_id, start.span_id);
    assert!(run_span.end_time_unix_nano > run_span.start_time_unix_nano);
    assert!(
        run_span
            .attributes
            .iter()
            .any(|a| a.key == "weft.run.id" && format!("{:?}", a.value).contains(&run)),
        "{run_span:?}"
    );
    // Each step attempt is a child of the run, each plugin call a child of its attempt.
    for (step, plugin) in [("Build", "plugin echo run"), ("Approve", "plugin approval run")] {
        let attempt = span_named(&spans, &format!("step {step}")).await;
        assert_eq!(id(&attempt.trace_id), caller_trace, "{step}");
        assert_eq!(attempt.parent_span_id, run_span.span_id, "{step}");
        let call = span_named(&spans, plugin).await;
        assert_eq!(call.parent_span_id, attempt.span_id, "{plugin}");
        assert_eq!(call.trace_id, attempt.trace_id, "{plugin}");
    }
    // The answer is its own request, linked to the run's span; the plugin's resume is its child.
    let answer = span_named(&spans, "POST /v1/instances/{eid}/signals").await;
    assert!(
        answer
            .links
            .iter()
            .any(|l| l.trace_id == run_span.trace_id && l.span_id == run_span.span_id),
        "the answer does not link to the run: {answer:?}"
    );
    let resume = span_named(&spans, "plugin approval resume").await;
    assert_eq!(resume.parent_span_id, answer.span_id);

    // The run record keeps the run's trace context.
    let record = server.execution("traced", &run).await;
    let traceparent = record["trace"]["traceparent"]
        .as_str()
        .unwrap_or_else(|| panic!("{record:#}"));
    assert_eq!(
        traceparent,
        format!("00-{caller_trace}-{}-01", id(&run_span.span_id))
    );

    // A span still in a batch is sent when the server stops.
    let (endpoint, spans) = otlp_receiver().await;
    let weft = Weft::new().with_env("OTEL_BSP_SCHEDULE_DELAY", "3600000");
    let mut server = Server::on(weft, &["--otlp-endpoint", &endpoint]);
    server.get("/v1/workflows").await.expect_status(200);
    assert!(
        spans.lock().expect("spans lock").is_empty(),
        "sent before the batch was due"
    );
    assert!(server.stop().success());
    span_named(&spans, "GET /v1/workflows").await;
}

#[test]
fn an_otlp_endpoint_must_be_http() {
    let weft = Weft::new();
    let out = weft.run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--otlp-endpoint",
        "https://collector:4318",
    ]);
    out.expect_code(1);
    out.expect_stderr(&["--otlp-endpoint https://collector:4318", "only http://"]);
}

// ---------------------------------------------------------------------------------------------
// Tokens with several roles

const SELF_SERVICE: &str = r#"
id: self-service
steps:
  - name: Approve
    plugin: approval
    input: {approvers: [olga]}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_with_several_roles_may_do_what_any_of_them_allows() {
    let weft = Weft::new();
    let admin = weft.create_token("ops", "admin", &[]);
    let both = weft.create_token_with_roles("olga", &["operator", "approver"], &[]);
    let operator = weft.create_token("oscar", "operator", &[]);
    let approver = weft.create_token("olga", "approver", &[]);
    let listed = weft.run(&["token", "list"]);
    listed.expect_code(0);
    let line = listed
        .stdout
        .lines()
        .find(|l| l.contains("olga") && l.contains("operator"))
        .unwrap_or_else(|| panic!("{}", listed.stdout));
    assert!(line.contains("operator+approver"), "{line}");

    let server = Server::on(weft, &[]);
    server.with_token(&admin).create_workflow(SELF_SERVICE).await;

    // The operator part starts the run and reads it; the approver part answers its own form
    // (the approval allows its starter by default).
    let olga = server.with_token(&both);
    let run = olga.start_run("self-service", &json!({})).await;
    let waiting = olga.wait_state("self-service", &run, "waiting").await;
    assert_eq!(waiting["started_by"], "olga");
    olga.post(
        &format!("/v1/instances/{run}/signals"),
        &json!({"SignalKey": "Approve.ApprovalStatus", "Data": {"Approved": true}}),
    )
    .await
    .expect_status(204);
    let done = olga.wait_state("self-service", &run, "completed").await;
    assert_eq!(step(&done, "Approve")["answers"][0]["answered_by"], "olga");

    // Each role alone does only its part.
    let second = olga.start_run("self-service", &json!({})).await;
    olga.wait_state("self-service", &second, "waiting").await;
    server
        .with_token(&operator)
        .post(
            &format!("/v1/instances/{second}/signals"),
            &json!({"SignalKey": "Approve.ApprovalStatus", "Data": {"Approved": true}}),
        )
        .await
        .expect_error(403, "forbidden", &["role operator may not answer interactions"]);
    server
        .with_token(&approver)
        .post("/v1/workflows/self-service/executions", &json!({}))
        .await
        .expect_error(403, "forbidden", &["role approver may not start runs"]);
    // Both roles together still may not do what neither allows.
    olga.post_raw("/v1/workflows", "application/yaml", SELF_SERVICE.to_owned())
        .await
        .expect_error(403, "forbidden", &["roles operator+approver may not"]);

    // Over HTTP: `roles`, the single `role` of before, and at least one of them.
    let admin = server.with_token(&admin);
    let created = admin
        .post(
            "/v1/tokens",
            &json!({"name": "ci", "roles": ["approver", "operator", "operator"]}),
        )
        .await
        .expect_status(201)
        .json();
    assert_eq!(created["roles"], json!(["operator", "approver"]));
    let created = admin
        .post("/v1/tokens", &json!({"name": "writer", "role": "author"}))
        .await
        .expect_status(201)
        .json();
    assert_eq!(created["roles"], json!(["author"]));
    admin
        .post("/v1/tokens", &json!({"name": "nobody"}))
        .await
        .expect_error(400, "invalid_request", &["at least one role"]);
    let tokens = admin.get("/v1/tokens").await.expect_status(200).json();
    let ci = tokens["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|t| t["name"] == "ci")
        .unwrap_or_else(|| panic!("{tokens:#}"));
    assert_eq!(ci["roles"], json!(["operator", "approver"]));
}
