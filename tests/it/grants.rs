//! What a plugin may reach: outbound HTTP only to granted hosts and methods, granted secrets
//! that never show up in logs, outputs or errors. Real `weft run`, real `http-request` plugin,
//! a real HTTP server on loopback.

use crate::common::{path_str, state, step, Weft};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::mpsc;

pub(crate) const SECRET: &str = "s3cr3t-Token-for-tests";

/// A one-request-at-a-time HTTP server that answers 200 with the request's Authorization
/// header in the body, and reports each request line and that header.
pub(crate) fn serve(requests: usize) -> (u16, mpsc::Receiver<(String, String)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (seen, heard) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(requests) {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let mut authorization = String::new();
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line.trim().is_empty() {
                    break;
                }
                if let Some((name, value)) = line.split_once(':') {
                    if name.eq_ignore_ascii_case("authorization") {
                        authorization = value.trim().to_owned();
                    }
                }
            }
            let body = format!("{{\"you_sent\":\"{authorization}\"}}");
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(response.as_bytes()).unwrap();
            seen.send((request_line.trim().to_owned(), authorization))
                .unwrap();
        }
    });
    (port, heard)
}

fn workflow(weft: &Weft) -> std::path::PathBuf {
    weft.write_workflow(
        "fetch.yaml",
        r#"
id: fetch
inputs:
  url: {type: string}
  method: {type: string, default: GET}
steps:
  - name: Fetch
    plugin: http-request
    input:
      method: "{{ inputs.method }}"
      url: "{{ inputs.url }}"
      bearer_secret: api_token
"#,
    )
}

fn config(weft: &Weft, port: u16) -> std::path::PathBuf {
    weft.write_file(
        "weft.toml",
        format!(
            "[secrets]\napi_token = {{ value = \"{SECRET}\" }}\n\n[plugins.http-request]\nhttp = [\"GET 127.0.0.1:{port}\"]\nsecrets = [\"api_token\"]\n"
        )
        .as_bytes(),
    )
}

#[test]
fn an_allowlisted_host_is_reached_with_the_secret_which_is_never_shown() {
    let (port, heard) = serve(1);
    let weft = Weft::new();
    let file = workflow(&weft);
    let config = config(&weft, port);
    let url = format!("url=http://127.0.0.1:{port}/ping");
    let out = weft.run(&[
        "run",
        path_str(&file),
        "--config",
        path_str(&config),
        "-i",
        &url,
        "--json",
    ]);
    out.expect_code(0);
    let (line, authorization) = heard.recv().unwrap();
    assert_eq!(line, "GET /ping HTTP/1.1");
    assert_eq!(
        authorization,
        format!("Bearer {SECRET}"),
        "the secret reached the plugin and the server"
    );

    let record = out.json();
    assert_eq!(state(&record), "completed");
    let fetched = &step(&record, "Fetch")["output"];
    assert_eq!(fetched["status"], 200);
    assert_eq!(
        fetched["json"]["you_sent"], "Bearer ********",
        "the echoed secret is masked"
    );
    let id = record["id"].as_str().unwrap();
    let shown = weft.run(&["runs", "show", id, "--json", "--logs"]);
    let logs = weft.run(&["runs", "show", id, "--logs"]);
    for text in [&out.stdout, &out.stderr, &shown.stdout, &logs.stdout] {
        assert!(!text.contains(SECRET), "the secret leaked: {text}");
    }
}

#[test]
fn other_hosts_and_methods_are_denied_inside_the_plugin_and_logged() {
    let (port, _heard) = serve(0);
    let weft = Weft::new();
    let file = workflow(&weft);
    let config = config(&weft, port);

    let other_port = format!("url=http://127.0.0.1:{}/x", port.wrapping_add(1));
    let out = weft.run(&[
        "run",
        path_str(&file),
        "--config",
        path_str(&config),
        "-i",
        &other_port,
        "--json",
    ]);
    out.expect_code(1);
    let record = out.json();
    let error = step(&record, "Fetch")["error"].as_str().unwrap().to_owned();
    assert!(error.contains("was denied"), "{error}");
    let id = record["id"].as_str().unwrap();
    let logs = weft.run(&["runs", "show", id, "--logs"]);
    assert!(logs.stdout.contains("outbound HTTP denied"), "{}", logs.stdout);

    let url = format!("url=http://127.0.0.1:{port}/x");
    let post = weft.run(&[
        "run",
        path_str(&file),
        "--config",
        path_str(&config),
        "-i",
        &url,
        "-i",
        "method=POST",
        "--json",
    ]);
    post.expect_code(1);
    assert!(step(&post.json(), "Fetch")["error"]
        .as_str()
        .unwrap()
        .contains("was denied"));
}

#[test]
fn without_a_grant_nothing_is_reached_and_no_secret_is_given() {
    let (port, _heard) = serve(0);
    let weft = Weft::new();
    let file = workflow(&weft);
    let url = format!("url=http://127.0.0.1:{port}/x");
    let out = weft.run(&["run", path_str(&file), "-i", &url, "--json"]);
    out.expect_code(1);
    let error = step(&out.json(), "Fetch")["error"].as_str().unwrap().to_owned();
    assert!(error.contains("secret api_token is not granted"), "{error}");
}

#[test]
fn a_bad_config_is_refused_naming_the_key() {
    let weft = Weft::new();
    let file = workflow(&weft);
    let config = weft.write_file("weft.toml", b"[plugins.http-request]\nsecrets = [\"missing\"]\n");
    let out = weft.run(&[
        "run",
        path_str(&file),
        "--config",
        path_str(&config),
        "-i",
        "url=http://127.0.0.1:1/",
    ]);
    out.expect_code(1)
        .expect_stderr(&["weft.toml", "plugins.http-request.secrets", "no secret missing"]);
}

#[test]
fn per_step_limits_tighten_memory_and_output() {
    let weft = Weft::new();
    weft.add_hostile().expect_code(0);
    let file = weft.write_workflow(
        "limits.yaml",
        r#"
id: limits
inputs:
  mode: {type: string}
steps:
  - name: Misbehave
    plugin: hostile@1.0.0
    limits: {memory_mb: 16, max_output_kb: 64}
    input: {mode: "{{ inputs.mode }}", bytes: 100000}
"#,
    );
    let bomb = weft.run(&["run", path_str(&file), "-i", "mode=membomb", "--json"]);
    bomb.expect_code(1);
    let error = step(&bomb.json(), "Misbehave")["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(error.contains("memory limit of 16 MiB"), "{error}");

    let big = weft.run(&["run", path_str(&file), "-i", "mode=big_output", "--json"]);
    big.expect_code(1);
    let error = step(&big.json(), "Misbehave")["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(error.contains("more than the limit of 65536 bytes"), "{error}");

    let bad = weft.write_workflow(
        "bad.yaml",
        "id: bad\nsteps:\n- {name: A, plugin: echo, limits: {memory_mb: 100000}}\n",
    );
    weft.run(&["validate", path_str(&bad)])
        .expect_code(1)
        .expect_stderr(&["steps[0].limits.memory_mb: must be between 1 and 512"]);
}

/// A grant follows the name (and version) a step declares, never the component's bytes: the
/// same component uploaded under a granted and an ungranted name keeps each its own grant, in
/// any order, after any restart (every `weft run` is a new process).
#[test]
fn a_grant_follows_the_declared_name_not_the_bytes() {
    let (port, heard) = serve(2);
    let weft = Weft::new();
    let config = weft.write_file(
        "weft.toml",
        format!(
            "[secrets]\napi_token = {{ value = \"{SECRET}\" }}\n\n[plugins.fetcher]\nhttp = [\"GET 127.0.0.1:{port}\"]\nsecrets = [\"api_token\"]\n"
        )
        .as_bytes(),
    );
    let bytes = std::path::Path::new(crate::common::PLUGIN_DIR).join("http_request.wasm");
    // The ungranted name first: a name recovered from the bytes would be this one.
    for name in ["stranger", "fetcher"] {
        weft.run(&[
            "plugin",
            "add",
            path_str(&bytes),
            "--name",
            name,
            "--version",
            "1.0.0",
        ])
        .expect_code(0);
    }
    let url = format!("url=http://127.0.0.1:{port}/ping");
    let run = |plugin: &str| {
        let file = weft.write_workflow(
            &format!("{plugin}.yaml"),
            &format!(
                "id: via-{plugin}\ninputs:\n  url: {{type: string}}\nsteps:\n  - name: Fetch\n    plugin: {plugin}@1.0.0\n    input: {{url: \"{{{{ inputs.url }}}}\", bearer_secret: api_token}}\n"
            ),
        );
        weft.run(&[
            "run",
            path_str(&file),
            "--config",
            path_str(&config),
            "-i",
            &url,
            "--json",
        ])
    };
    for order in [["fetcher", "stranger"], ["stranger", "fetcher"]] {
        for plugin in order {
            let out = run(plugin);
            let record = out.json();
            if plugin == "fetcher" {
                out.expect_code(0);
                assert_eq!(heard.recv().unwrap().1, format!("Bearer {SECRET}"));
            } else {
                out.expect_code(1);
                let error = step(&record, "Fetch")["error"].as_str().unwrap_or_default();
                assert!(error.contains("api_token is not granted"), "{error}");
            }
        }
    }
    assert!(heard.try_recv().is_err(), "the ungranted name reached the server");
}

/// Grants set with `weft grant` live in the database: a later process applies them with
/// nothing but its secret values in weft.toml, a weft.toml that says otherwise does not
/// replace them, and a deleted grant stops applying.
#[test]
fn grants_set_with_the_cli_are_kept_in_the_database() {
    let (port, heard) = serve(2);
    let weft = Weft::new();
    let file = workflow(&weft);
    let secrets_only = weft.write_file(
        "secrets.toml",
        format!("[secrets]\napi_token = {{ value = \"{SECRET}\" }}\n").as_bytes(),
    );
    let rule = format!("GET 127.0.0.1:{port}");
    let set = weft.run(&[
        "grant",
        "set",
        "http-request",
        "--http",
        &rule,
        "--secret",
        "api_token",
        "--as",
        "alice",
    ]);
    set.expect_code(0);
    assert!(set.stdout.contains("set by alice"), "{}", set.stdout);
    let listed = weft.run(&["grant", "list"]);
    listed.expect_code(0);
    assert!(
        listed.stdout.contains(&rule) && listed.stdout.contains("api_token"),
        "{}",
        listed.stdout
    );
    let shown: serde_json::Value = weft.json(&["grant", "show", "http-request"]);
    assert_eq!(shown["source"], "admin", "{shown:#}");
    assert_eq!(shown["secrets"], serde_json::json!(["api_token"]), "{shown:#}");

    let url = format!("url=http://127.0.0.1:{port}/ping");
    let run = |config: &std::path::Path| {
        weft.run(&[
            "run",
            path_str(&file),
            "--config",
            path_str(config),
            "-i",
            &url,
            "--json",
        ])
    };
    run(&secrets_only).expect_code(0);
    assert_eq!(heard.recv().unwrap().1, format!("Bearer {SECRET}"));

    // A weft.toml section does not replace what an admin set; it says so.
    let other = weft.write_file(
        "other.toml",
        format!(
            "[secrets]\napi_token = {{ value = \"{SECRET}\" }}\n[plugins.http-request]\nhttp = [\"GET 127.0.0.1:1\"]\nsecrets = [\"api_token\"]\n"
        )
        .as_bytes(),
    );
    let kept = run(&other);
    kept.expect_code(0).expect_stderr(&[
        "weft.toml [plugins.http-request] differs",
        "the grant alice set",
        "weft grant set",
    ]);
    assert_eq!(heard.recv().unwrap().1, format!("Bearer {SECRET}"));

    weft.run(&["grant", "delete", "http-request"]).expect_code(0);
    weft.run(&["grant", "delete", "http-request"])
        .expect_code(1)
        .expect_stderr(&["no grant for http-request"]);
    let denied = run(&secrets_only);
    denied.expect_code(1);
    let error = step(&denied.json(), "Fetch")["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(error.contains("secret api_token is not granted"), "{error}");
    assert!(
        heard.try_recv().is_err(),
        "a deleted grant still reached the server"
    );

    weft.run(&["grant", "set", "http-request", "--http", "GET not a host"])
        .expect_code(1)
        .expect_stderr(&["http-request.http[0]", "not a host"]);
    weft.run(&["grant", "set", "Not A Name"])
        .expect_code(1)
        .expect_stderr(&["Not A Name"]);
}

/// A grant seeded from weft.toml follows the file: changed sections replace it.
#[test]
fn a_grant_seeded_from_weft_toml_follows_the_file() {
    let (port, heard) = serve(1);
    let weft = Weft::new();
    let file = workflow(&weft);
    let url = format!("url=http://127.0.0.1:{port}/ping");
    let wrong_port = weft.write_file(
        "wrong.toml",
        format!(
            "[secrets]\napi_token = {{ value = \"{SECRET}\" }}\n[plugins.http-request]\nhttp = [\"GET 127.0.0.1:1\"]\nsecrets = [\"api_token\"]\n"
        )
        .as_bytes(),
    );
    let denied = weft.run(&[
        "run",
        path_str(&file),
        "--config",
        path_str(&wrong_port),
        "-i",
        &url,
        "--json",
    ]);
    denied.expect_code(1);
    let shown: serde_json::Value = weft.json(&["grant", "show", "http-request"]);
    assert_eq!(shown["source"], "config", "{shown:#}");

    let right = config(&weft, port);
    weft.run(&[
        "run",
        path_str(&file),
        "--config",
        path_str(&right),
        "-i",
        &url,
        "--json",
    ])
    .expect_code(0);
    assert_eq!(heard.recv().unwrap().1, format!("Bearer {SECRET}"));
}

/// A grant names a secret this runner has no value for: the plugin gets none, and the run's
/// log says what to add where.
#[test]
fn a_granted_secret_without_a_value_on_this_runner_is_explained() {
    let (port, _heard) = serve(0);
    let weft = Weft::new();
    let file = workflow(&weft);
    let rule = format!("GET 127.0.0.1:{port}");
    weft.run(&[
        "grant",
        "set",
        "http-request",
        "--http",
        &rule,
        "--secret",
        "api_token",
    ])
    .expect_code(0);
    let url = format!("url=http://127.0.0.1:{port}/ping");
    let out = weft.run(&["run", path_str(&file), "-i", &url, "--json"]);
    out.expect_code(1);
    let id = out.json()["id"].as_str().unwrap().to_owned();
    let logs = weft.run(&["runs", "show", &id, "--logs"]);
    assert!(
        logs.stdout
            .contains("secret api_token is granted, but this runner has no value for it"),
        "{}",
        logs.stdout
    );
}

/// What a request brought: its request line, headers (lower-case names) and body.
struct Received {
    line: String,
    headers: std::collections::BTreeMap<String, String>,
    body: Vec<u8>,
}

/// A one-request server that reads the whole request (a `Content-Length` body; a chunked
/// one as it arrives) and answers 201 with `{"ok":true}`.
fn serve_one() -> (u16, mpsc::Receiver<Received>) {
    use std::io::Read;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (seen, heard) = mpsc::channel();
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let mut headers = std::collections::BTreeMap::new();
        loop {
            let mut header = String::new();
            reader.read_line(&mut header).unwrap();
            if header.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
            }
        }
        let mut body = Vec::new();
        if let Some(length) = headers.get("content-length") {
            body.resize(length.parse().unwrap(), 0);
            reader.read_exact(&mut body).unwrap();
        }
        let answer = "{\"ok\":true}";
        let response = format!(
            "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
            answer.len()
        );
        stream.write_all(response.as_bytes()).unwrap();
        seen.send(Received {
            line: line.trim().to_owned(),
            headers,
            body,
        })
        .unwrap();
    });
    (port, heard)
}

fn post_workflow(weft: &Weft) -> std::path::PathBuf {
    weft.write_workflow(
        "post.yaml",
        r#"
id: post
inputs:
  url: {type: string}
steps:
  - name: Post
    plugin: http-request
    input:
      method: POST
      url: "{{ inputs.url }}"
      body: {title: "a ticket", n: 3}
      expect_status: [201]
"#,
    )
}

#[test]
fn a_body_in_hand_is_sent_with_its_content_length_not_chunked() {
    let (port, heard) = serve_one();
    let weft = Weft::new();
    let file = post_workflow(&weft);
    let config = weft.write_config(&format!(
        "[plugins.http-request]\nhttp = [\"POST 127.0.0.1:{port}\"]\n"
    ));
    let url = format!("url=http://127.0.0.1:{port}/tickets");
    let out = weft.run(&[
        "run",
        path_str(&file),
        "--config",
        path_str(&config),
        "-i",
        &url,
        "--json",
    ]);
    out.expect_code(0);
    let received = heard.recv().unwrap();
    assert_eq!(received.line, "POST /tickets HTTP/1.1");
    let sent = br#"{"n":3,"title":"a ticket"}"#;
    assert_eq!(
        received.headers.get("content-length").map(String::as_str),
        Some(sent.len().to_string().as_str()),
        "headers: {:?}",
        received.headers
    );
    assert!(
        !received.headers.contains_key("transfer-encoding"),
        "headers: {:?}",
        received.headers
    );
    assert_eq!(received.body, sent, "the server read the whole body");
    assert_eq!(received.headers["content-type"], "application/json");
    let record = out.json();
    assert_eq!(step(&record, "Post")["output"]["status"], 201);
    assert_eq!(step(&record, "Post")["output"]["json"]["ok"], true);
}

#[test]
fn a_denied_request_with_a_body_names_the_rule_to_add() {
    let (port, _heard) = serve_one();
    let weft = Weft::new();
    let file = post_workflow(&weft);
    // Granted GET only: the POST with its body is denied.
    let config = weft.write_config(&format!(
        "[plugins.http-request]\nhttp = [\"GET 127.0.0.1:{port}\"]\n"
    ));
    let url = format!("url=http://127.0.0.1:{port}/tickets");
    let out = weft.run(&[
        "run",
        path_str(&file),
        "--config",
        path_str(&config),
        "-i",
        &url,
        "--json",
    ]);
    out.expect_code(1);
    let error = step(&out.json(), "Post")["error"].as_str().unwrap().to_owned();
    assert!(error.contains("HttpRequestDenied"), "{error}");
    assert!(
        error.contains(&format!(
            "weft grant set http-request --http \"POST 127.0.0.1:{port}\""
        )),
        "{error}"
    );
    assert!(!error.contains("Closed"), "{error}");
}
