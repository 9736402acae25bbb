// Authentication and roles through a real `weft serve` on loopback with a real database file
// and the real plugins: what each role may do on every endpoint, the 401s for missing,
// malformed, unknown and revoked tokens, local mode until the first token exists, `weft
// serve` refusing an open non-loopback address, assignees and self-approval taken from the
// token, the `me` filters, the audit log, oversized headers, and tokens stored only as
// hashes.

use crate::common::*;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeSet, HashMap};

// --- Workflows. ---

/// A form assigned to `assignees` (a YAML list) whose only field has a default, so `{}`
/// answers it; then an echo.
fn form_workflow(id: &str, assignees: &str) -> String {
    format!(
        r#"
id: {id}
steps:
  - name: Ask
    plugin: interaction
    input:
      prompt: "Go ahead?"
      fields:
        - {{name: ok, type: boolean, default: true}}
      assignees: {assignees}
  - name: Done
    plugin: echo
    input: {{ok: "{{{{ steps.Ask.output.ok }}}}"}}
outputs:
  ok: "{{{{ steps.Done.output.ok }}}}"
"#
    )
}

/// An approval by `approvers` (a YAML list), with `extra` settings (`, key: value` entries).
fn approval_workflow(id: &str, approvers: &str, extra: &str) -> String {
    format!(
        r#"
id: {id}
steps:
  - name: Approve
    plugin: approval
    input: {{approvers: {approvers}, prompt: "Ship it?"{extra}}}
outputs:
  approvals: "{{{{ steps.Approve.output.approvals }}}}"
"#
    )
}

// --- Small helpers. ---

/// Creates tokens offline as (key, name, role, groups), then serves the database. Returns
/// the server and a client per key sending that token.
fn serve_with(tokens: &[(&'static str, &str, &str, &[&str])]) -> (Server, HashMap<&'static str, Api>) {
    let weft = Weft::on(BACKEND);
    let secrets: Vec<(&'static str, String)> = tokens
        .iter()
        .map(|(key, name, role, groups)| (*key, weft.create_token(name, role, groups)))
        .collect();
    let server = Server::on(weft, &[]);
    let apis = secrets
        .iter()
        .map(|(key, secret)| (*key, server.with_token(secret)))
        .collect();
    (server, apis)
}

fn interaction_path(workflow: &str, id: &str) -> String {
    format!("{}/interaction", Api::execution_path(workflow, id))
}

fn signal_path(id: &str) -> String {
    format!("/v1/instances/{id}/signals")
}

/// vRO's ExecutionContext answering an approval.
fn approve() -> Value {
    json!({"parameters": [{"name": "Approved", "type": "boolean", "value": {"boolean": {"value": true}}}]})
}

/// A Keyfactor signal approving the `Approve` step.
fn approve_signal() -> Value {
    json!({"SignalKey": "Approve.ApprovalStatus", "Data": {"Approved": true}})
}

/// Starts a run of `workflow` without inputs and waits until it waits for a person.
async fn start_waiting(api: &Api, workflow: &str) -> String {
    let id = api.start_run(workflow, &json!({})).await;
    api.wait_state(workflow, &id, "waiting").await;
    id
}

/// The ids (`key`) of a listing's items, as a set.
fn set(listing: &Value, key: &str) -> BTreeSet<String> {
    listing["items"]
        .as_array()
        .unwrap_or_else(|| panic!("not a listing: {listing:#}"))
        .iter()
        .map(|i| {
            i[key]
                .as_str()
                .unwrap_or_else(|| panic!("an item without {key}: {i}"))
                .to_owned()
        })
        .collect()
}

/// These run ids, as a set.
fn ids<const N: usize>(ids: [&String; N]) -> BTreeSet<String> {
    ids.into_iter().cloned().collect()
}

/// The answers recorded on the run's `step`, as `answered_by` names.
fn answered_by(run: &Value, step_name: &str) -> Vec<String> {
    step(run, step_name)["answers"]
        .as_array()
        .unwrap_or_else(|| panic!("step {step_name} has no answers list: {run:#}"))
        .iter()
        .map(|a| a["answered_by"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The id of the (first) token called `name`, as an admin sees it.
async fn token_id(admin: &Api, name: &str) -> String {
    let tokens = admin.get("/v1/tokens").await.expect_status(200).json();
    tokens["items"]
        .as_array()
        .and_then(|items| items.iter().find(|t| t["name"] == name))
        .and_then(|t| t["id"].as_str())
        .unwrap_or_else(|| panic!("no token {name}: {tokens:#}"))
        .to_owned()
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Whether `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

// --- Every role against every endpoint. ---

/// The roles, in the order of [`Op::expect`]'s columns, with their token's name.
const ROLES: [(&str, &str); 4] = [
    ("admin", "root"),
    ("author", "ann"),
    ("operator", "otto"),
    ("approver", "carol"),
];

enum Body {
    Empty,
    Json(&'static str),
    Yaml(&'static str),
    Wasm,
}

/// One API operation. `{n}` and `{role}` in the path or body are the caller's role index and
/// name; `{gate}` and `{elsewhere}` are the executions of those workflows; `{seen}` is a
/// waiting run assigned to carol, `{hidden}` one assigned to dave, and the other `{...}` are
/// runs of the caller's own (see the fixtures).
struct Op {
    name: &'static str,
    method: Method,
    path: &'static str,
    body: Body,
    /// The status of an allowed call: the fixtures make every allowed call succeed.
    ok: u16,
    /// Per role (admin, author, operator, approver): `y` allowed (answers `ok`), `n` 403
    /// forbidden, `h` 404 (the approver may not see this run), `u` 403 not_assigned (the step is
    /// not assigned to them).
    expect: &'static str,
}

fn op(
    name: &'static str,
    method: Method,
    path: &'static str,
    body: Body,
    ok: u16,
    expect: &'static str,
) -> Op {
    assert_eq!(expect.len(), ROLES.len(), "{name}: one expectation per role");
    Op {
        name,
        method,
        path,
        body,
        ok,
        expect,
    }
}

#[rustfmt::skip]
fn table() -> Vec<Op> {
    use Body::*;
    use Method as M;
    // Roles:                                                                          admin, author, operator, approver
    vec![
        op("plugins upload",        M::POST,   "/v1/plugins?name=hostile&version=1.{n}.0", Wasm, 201, "yynn"),
        op("plugins list",          M::GET,    "/v1/plugins", Empty, 200, "yyyn"),
        op("plugins versions",      M::GET,    "/v1/plugins/echo", Empty, 200, "yyyn"),
        op("plugins delete",        M::DELETE, "/v1/plugins/hostile@0.{n}.0", Empty, 204, "yynn"),
        op("workflows create",      M::POST,   "/v1/workflows", Yaml(MADE_BY), 201, "yynn"),
        op("workflows list",        M::GET,    "/v1/workflows", Empty, 200, "yyyn"),
        op("workflows get",         M::GET,    "/v1/workflows/gate", Empty, 200, "yyyn"),
        op("workflows versions",    M::GET,    "/v1/workflows/gate/versions", Empty, 200, "yyyn"),
        op("workflows version",     M::GET,    "/v1/workflows/gate/versions/1", Empty, 200, "yyyn"),
        op("workflows delete",      M::DELETE, "/v1/workflows/doomed-{role}", Empty, 204, "yynn"),
        op("executions start",      M::POST,   "{gate}", Json("{}"), 202, "ynyn"),
        op("executions list",       M::GET,    "{gate}", Empty, 200, "ynyy"),
        op("executions list-all",   M::GET,    "/v1/executions", Empty, 200, "ynyy"),
        op("executions get",        M::GET,    "{gate}/{seen}", Empty, 200, "ynyy"),
        op("executions get-by-id",  M::GET,    "/v1/executions/{seen}", Empty, 200, "ynyy"),
        op("executions state",      M::GET,    "{gate}/{seen}/state", Empty, 200, "ynyy"),
        op("executions cancel",     M::DELETE, "{gate}/{cancel}/state", Empty, 204, "ynyn"),
        op("executions delete",     M::DELETE, "{gate}/{finished}", Empty, 204, "ynyn"),
        op("executions logs",       M::GET,    "{gate}/{seen}/logs", Empty, 200, "ynyy"),
        op("executions export",     M::GET,    "{gate}/{seen}/logs/export", Empty, 200, "ynyy"),
        op("executions statistics", M::GET,    "{gate}/{seen}/statistics", Empty, 200, "ynyy"),
        op("executions restart",    M::POST,   "{gate}/{restart}/restart", Json("{}"), 202, "ynyn"),
        op("interaction get",       M::GET,    "{gate}/{seen}/interaction", Empty, 200, "ynyy"),
        op("interaction answer",    M::POST,   "{gate}/{answer}/interaction", Json("{}"), 204, "ynny"),
        op("interaction cancel",    M::DELETE, "{gate}/{drop}/interaction", Empty, 204, "ynyn"),
        op("interactions list",     M::GET,    "/v1/interactions", Empty, 200, "ynyy"),
        op("signals",               M::POST,   "/v1/instances/{signal}/signals", Json(SIGNAL), 204, "ynny"),
        op("tokens create",         M::POST,   "/v1/tokens", Json(NEW_TOKEN), 201, "ynnn"),
        op("tokens list",           M::GET,    "/v1/tokens", Empty, 200, "ynnn"),
        op("tokens revoke",         M::DELETE, "/v1/tokens/victim-{role}", Empty, 204, "ynnn"),
        op("audit",                 M::GET,    "/v1/audit", Empty, 200, "ynnn"),
        // A run with nothing assigned to the approver does not exist for them, whatever the
        // method or body: 404, never 403, 409 or 400. (By id, see
        // an_approver_cannot_read_an_unassigned_run_by_id. The canceled `finished` and
        // `restart` runs asked the approver, so they stay visible to them: 403 above.) The
        // admin's answers are invalid, so the run stays as it is.
        op("unassigned get",        M::GET,    "{elsewhere}/{hidden}", Empty, 200, "ynyh"),
        op("unassigned state",      M::GET,    "{elsewhere}/{hidden}/state", Empty, 200, "ynyh"),
        op("unassigned logs",       M::GET,    "{elsewhere}/{hidden}/logs", Empty, 200, "ynyh"),
        op("unassigned export",     M::GET,    "{elsewhere}/{hidden}/logs/export", Empty, 200, "ynyh"),
        op("unassigned statistics", M::GET,    "{elsewhere}/{hidden}/statistics", Empty, 200, "ynyh"),
        op("unassigned interaction",M::GET,    "{elsewhere}/{hidden}/interaction", Empty, 200, "ynyh"),
        op("unassigned answer",     M::POST,   "{elsewhere}/{hidden}/interaction", Json(INVALID_ANSWER), 400, "ynnh"),
        op("unassigned signal",     M::POST,   "/v1/instances/{hidden}/signals", Json("not json"), 400, "ynnh"),
    ]
}

/// The workflow each role tries to create.
const MADE_BY: &str = "id: made-by-{role}\nsteps:\n  - {name: Hello, plugin: echo, input: {}}\n";
/// A Keyfactor signal answering the `gate` form with its defaults.
const SIGNAL: &str = r#"{"SignalKey": "Ask.UserInteraction", "Data": {}}"#;
/// The token each role tries to create.
const NEW_TOKEN: &str = r#"{"name": "made-by-{role}", "role": "approver"}"#;
/// An answer the form refuses.
const INVALID_ANSWER: &str = r#"{"parameters": [{"name": "ok", "type": "boolean", "value": "maybe"}]}"#;

/// `text` with every `{name}` of `vars` replaced.
fn fill(text: &str, vars: &HashMap<&str, String>) -> String {
    let mut text = text.to_owned();
    for (name, value) in vars {
        text = text.replace(name, value);
    }
    let placeholder = text.split('{').skip(1).find_map(|rest| {
        let (name, _) = rest.split_once('}')?;
        (!name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase())).then_some(name)
    });
    assert_eq!(placeholder, None, "a placeholder is left in {text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_may_do_exactly_what_its_role_allows() {
    let weft = Weft::on(BACKEND);
    let secrets: Vec<String> = ROLES
        .iter()
        .map(|(role, name)| weft.create_token(name, role, &[]))
        .collect();
    let server = Server::on(weft, &[]);
    let apis: Vec<Api> = secrets.iter().map(|s| server.with_token(s)).collect();
    let root = &apis[0];
    let hostile = std::fs::read(hostile_wasm()).expect("hostile.wasm was built");

    // Fixtures, made by the admin: shared runs to read, and for each role its own plugin
    // version, workflow and token to delete, and runs to cancel, delete, restart and answer.
    root.create_workflow(&form_workflow("gate", "[carol]")).await;
    root.create_workflow(&form_workflow("elsewhere", "[dave]")).await;
    let seen = start_waiting(root, "gate").await;
    let hidden = start_waiting(root, "elsewhere").await;
    let mut fixtures: Vec<HashMap<&str, String>> = Vec::new();
    for (n, (role, _)) in ROLES.iter().enumerate() {
        root.post_raw(
            &format!("/v1/plugins?name=hostile&version=0.{n}.0"),
            "application/wasm",
            hostile.clone(),
        )
        .await
        .expect_status(201);
        root.create_workflow(&format!(
            "id: doomed-{role}\nsteps:\n  - {{name: Hello, plugin: echo, input: {{}}}}\n"
        ))
        .await;
        root.post(
            "/v1/tokens",
            &json!({"name": format!("victim-{role}"), "role": "operator"}),
        )
        .await
        .expect_status(201);
        let mut vars = HashMap::from([
            ("{n}", n.to_string()),
            ("{role}", role.to_string()),
            ("{gate}", "/v1/workflows/gate/executions".to_owned()),
            ("{elsewhere}", "/v1/workflows/elsewhere/executions".to_owned()),
            ("{seen}", seen.clone()),
            ("{hidden}", hidden.clone()),
        ]);
        for slot in ["{cancel}", "{answer}", "{drop}", "{signal}"] {
            vars.insert(slot, start_waiting(root, "gate").await);
        }
        for slot in ["{finished}", "{restart}"] {
            let id = start_waiting(root, "gate").await;
            root.delete(&format!("{}/state", Api::execution_path("gate", &id)))
                .await
                .expect_status(204);
            vars.insert(slot, id);
        }
        fixtures.push(vars);
    }

    // One table, one loop: every operation as every role.
    let mut wrong = Vec::new();
    for op in table() {
        for (i, (role, _)) in ROLES.iter().enumerate() {
            let vars = &fixtures[i];
            let path = fill(op.path, vars);
            let request = apis[i].request(op.method.clone(), &path);
            let request = match &op.body {
                Body::Empty => request,
                Body::Json(text) => request
                    .header(CONTENT_TYPE, "application/json")
                    .body(fill(text, vars)),
                Body::Yaml(text) => request
                    .header(CONTENT_TYPE, "application/yaml")
                    .body(fill(text, vars)),
                Body::Wasm => request
                    .header(CONTENT_TYPE, "application/wasm")
                    .body(hostile.clone()),
            };
            let got = apis[i].send(request).await;
            let body: Value = serde_json::from_str(&got.text).unwrap_or(Value::Null);
            let (wanted, right) = match op.expect.as_bytes()[i] {
                b'y' => (format!("allowed ({})", op.ok), got.status == op.ok),
                b'n' => (
                    format!("403 forbidden naming role {role}"),
                    got.status == 403
                        && body["code"] == "forbidden"
                        && body["message"]
                            .as_str()
                            .is_some_and(|m| m.starts_with(&format!("role {role} may not "))),
                ),
                b'h' => (
                    "404 not_found".to_owned(),
                    got.status == 404 && body["code"] == "not_found",
                ),
                b'u' => (
                    "403 not_assigned".to_owned(),
                    got.status == 403 && body["code"] == "not_assigned",
                ),
                other => panic!("{}: unknown expectation {}", op.name, other as char),
            };
            if !right {
                wrong.push(format!(
                    "{role} {} ({}): expected {wanted}, got {}: {}",
                    op.name, got.what, got.status, got.text
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} wrong decisions:\n{}",
        wrong.len(),
        wrong.join("\n")
    );

    // A refused call changed nothing; an allowed one did what it says.
    let made_for = |names: &BTreeSet<String>, prefix: &str, allowed: &[&str]| {
        for (role, _) in ROLES {
            let name = format!("{prefix}-{role}");
            assert_eq!(
                names.contains(&name),
                allowed.contains(&role),
                "{name} in {names:?}"
            );
        }
    };
    let tokens = root.get("/v1/tokens").await.expect_status(200).json();
    made_for(&set(&tokens, "name"), "made-by", &["admin"]);
    let items = tokens["items"].as_array().expect("items");
    for (role, _) in ROLES {
        let victim = items
            .iter()
            .find(|t| t["name"] == format!("victim-{role}").as_str())
            .expect("the victim token is listed");
        assert_eq!(victim["revoked_at"].is_string(), role == "admin", "{victim}");
    }
    let workflows = set(&root.get("/v1/workflows").await.expect_status(200).json(), "id");
    made_for(&workflows, "made-by", &["admin", "author"]);
    made_for(&workflows, "doomed", &["operator", "approver"]);
    let versions = set(
        &root.get("/v1/plugins/hostile").await.expect_status(200).json(),
        "version",
    );
    let expected: BTreeSet<String> = ["1.0.0", "1.1.0", "0.2.0", "0.3.0"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(versions, expected);
    for (i, (role, _)) in ROLES.iter().enumerate() {
        let run_state = |slot: &str| {
            let path = format!("{}/state", Api::execution_path("gate", &fixtures[i][slot]));
            let root = root.clone();
            async move {
                let answer = root.get(&path).await;
                if answer.status == 404 {
                    "deleted".to_owned()
                } else {
                    state(&answer.expect_status(200).json()).to_owned()
                }
            }
        };
        let manages = matches!(*role, "admin" | "operator");
        let answers = matches!(*role, "admin" | "approver");
        assert_eq!(
            run_state("{cancel}").await,
            if manages { "canceled" } else { "waiting" },
            "{role}"
        );
        assert_eq!(
            run_state("{finished}").await,
            if manages { "deleted" } else { "canceled" },
            "{role}"
        );
        assert_eq!(
            run_state("{drop}").await,
            if manages { "failed" } else { "waiting" },
            "{role}"
        );
        for slot in ["{answer}", "{signal}"] {
            let id = &fixtures[i][slot];
            if answers {
                let run = root.wait_state("gate", id, "completed").await;
                let name = ROLES[i].1;
                assert_eq!(answered_by(&run, "Ask"), [name], "{role} {slot}: {run:#}");
            } else {
                assert_eq!(run_state(slot).await, "waiting", "{role} {slot}");
            }
        }
    }
    let gate_runs = root
        .get("/v1/workflows/gate/executions?limit=1000")
        .await
        .expect_status(200)
        .json();
    let runs = gate_runs["items"].as_array().expect("items").len();
    // The admin's fixtures (1 + 6 per role), less the two the admin and the operator deleted,
    // plus the two they started and the two they restarted.
    assert_eq!(runs, 1 + 6 * ROLES.len() - 2 + 2 + 2, "{gate_runs:#}");
    // The shared runs were only read.
    for (workflow, id) in [("gate", &seen), ("elsewhere", &hidden)] {
        let run = root.execution(workflow, id).await;
        assert_eq!(state(&run), "waiting", "{run:#}");
        assert_eq!(answered_by(&run, "Ask"), Vec::<String>::new(), "{run:#}");
    }

    // What the approver lists is what they may see.
    let carol = &apis[3];
    let listed = set(&carol.get("/v1/executions").await.expect_status(200).json(), "id");
    assert!(listed.contains(&seen) && !listed.contains(&hidden), "{listed:?}");
    let waiting = set(
        &carol.get("/v1/interactions").await.expect_status(200).json(),
        "execution_id",
    );
    assert!(
        waiting.contains(&seen) && !waiting.contains(&hidden),
        "{waiting:?}"
    );
    let everything = set(
        &apis[2].get("/v1/interactions").await.expect_status(200).json(),
        "execution_id",
    );
    assert!(
        everything.contains(&seen) && everything.contains(&hidden),
        "{everything:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn an_approver_cannot_read_an_unassigned_run_by_id() {
    let (_server, api) = serve_with(&[
        ("root", "root", "admin", &[]),
        ("carol", "carol", "approver", &[]),
    ]);
    api["root"]
        .create_workflow(&form_workflow("elsewhere", "[dave]"))
        .await;
    let hidden = start_waiting(&api["root"], "elsewhere").await;
    api["carol"]
        .get(&Api::execution_path("elsewhere", &hidden))
        .await
        .expect_error(404, "not_found", &[]);
    api["carol"]
        .get(&format!("/v1/executions/{hidden}"))
        .await
        .expect_error(404, "not_found", &[]);
    api["carol"]
        .get(&format!("/v1/executions/{hidden}?wait=true"))
        .await
        .expect_error(404, "not_found", &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn an_approver_cannot_answer_by_signal_what_they_cannot_see() {
    let (_server, api) = serve_with(&[
        ("root", "root", "admin", &[]),
        ("carol", "carol", "approver", &[]),
    ]);
    api["root"].create_workflow(&form_workflow("anyone", "[]")).await;
    let id = start_waiting(&api["root"], "anyone").await;
    // The vRO endpoints hide the run from her...
    api["carol"]
        .get(&interaction_path("anyone", &id))
        .await
        .expect_error(404, "not_found", &[]);
    // ...and so do answers by either endpoint: a step assigned to no one is for admins only,
    // and a run she may not see does not exist for her.
    api["carol"]
        .post(&interaction_path("anyone", &id), &json!({}))
        .await
        .expect_error(404, "not_found", &[]);
    let answer = api["carol"]
        .post(
            &signal_path(&id),
            &json!({"SignalKey": "Ask.UserInteraction", "Data": {}}),
        )
        .await;
    let run = api["root"].execution("anyone", &id).await;
    assert_eq!(answered_by(&run, "Ask"), Vec::<String>::new(), "{run:#}");
    answer.expect_error(404, "not_found", &[]);
}

// --- 401s. ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_a_valid_token_get_401_naming_the_problem() {
    let (server, api) = serve_with(&[("root", "root", "admin", &[]), ("olga", "olga", "operator", &[])]);
    let root = &api["root"];
    let anonymous = server.anonymous();
    let secret = root.token.clone().expect("root has a token");
    anonymous.get("/healthz").await.expect_status(200);

    let unknown = format!("weft_{}", "0".repeat(64));
    let cases: Vec<(&str, Option<Vec<u8>>, &str)> = vec![
        ("no header", None, "send `Authorization: Bearer <token>`"),
        ("malformed", Some(b"Bearer abc".to_vec()), "malformed token"),
        // The trailing space is trimmed in transit, leaving the scheme alone.
        ("empty", Some(b"Bearer ".to_vec()), "must be `Bearer <token>`"),
        (
            "too short",
            Some(format!("Bearer {}", &secret[..secret.len() - 1]).into_bytes()),
            "malformed token",
        ),
        (
            "not hex",
            Some(format!("Bearer weft_{}", "g".repeat(64)).into_bytes()),
            "malformed token",
        ),
        (
            "no prefix",
            Some(format!("Bearer {}", &secret["weft_".len()..]).into_bytes()),
            "malformed token",
        ),
        (
            "unknown",
            Some(format!("Bearer {unknown}").into_bytes()),
            "unknown token",
        ),
        (
            "basic",
            Some(b"Basic cm9vdDpzZWNyZXQ=".to_vec()),
            "must be `Bearer <token>`",
        ),
        (
            "token scheme",
            Some(format!("Token {secret}").into_bytes()),
            "must be `Bearer <token>`",
        ),
        (
            "bare token",
            Some(secret.clone().into_bytes()),
            "must be `Bearer <token>`",
        ),
        (
            "not UTF-8",
            Some(b"Bearer weft_\xff\xfe".to_vec()),
            "must be `Bearer <token>`",
        ),
    ];
    let workflow = form_workflow("sneaky", "[]");
    for (what, header, needle) in &cases {
        for (method, path) in [(Method::GET, "/v1/workflows"), (Method::POST, "/v1/workflows")] {
            let mut request = anonymous
                .request(method.clone(), path)
                .header(CONTENT_TYPE, "application/yaml")
                .body(workflow.clone());
            if let Some(value) = header {
                let value = reqwest::header::HeaderValue::from_bytes(value).expect("a header value");
                request = request.header(AUTHORIZATION, value);
            }
            let answer = anonymous.send(request).await;
            assert_eq!(answer.status, 401, "{what}: {} {}", answer.what, answer.text);
            answer.expect_error(401, "unauthorized", &[*needle]);
            // The message never echoes what was sent.
            assert!(!answer.text.contains(&secret), "{what}: {}", answer.text);
        }
    }
    // The local-mode header means nothing once tokens exist.
    server
        .send(
            anonymous
                .request(Method::POST, "/v1/workflows")
                .header(USER, "root")
                .header(CONTENT_TYPE, "application/yaml")
                .body(workflow.clone()),
        )
        .await
        .expect_error(401, "unauthorized", &["Bearer"]);
    // None of the refused posts stored anything.
    root.get("/v1/workflows/sneaky")
        .await
        .expect_error(404, "not_found", &[]);

    // A revoked token stops working on the very next request, by id or by name.
    let olga = &api["olga"];
    olga.get("/v1/executions").await.expect_status(200);
    let id = token_id(root, "olga").await;
    root.delete(&format!("/v1/tokens/{id}")).await.expect_status(204);
    olga.get("/v1/executions")
        .await
        .expect_error(401, "unauthorized", &["revoked"]);
    olga.post("/v1/workflows/gate/executions", &json!({}))
        .await
        .expect_error(401, "unauthorized", &["revoked"]);
    root.delete(&format!("/v1/tokens/{id}"))
        .await
        .expect_error(404, "not_found", &[&id]);

    let created = root
        .post("/v1/tokens", &json!({"name": "bob", "role": "approver"}))
        .await
        .expect_status(201)
        .json();
    let bob = server.with_token(created["token"].as_str().expect("a token"));
    bob.get("/v1/interactions").await.expect_status(200);
    root.delete("/v1/tokens/bob").await.expect_status(204);
    bob.get("/v1/interactions")
        .await
        .expect_error(401, "unauthorized", &["revoked"]);
    let listed = root.get("/v1/tokens").await.expect_status(200).json();
    for name in ["olga", "bob"] {
        let token = listed["items"]
            .as_array()
            .and_then(|items| items.iter().find(|t| t["name"] == name))
            .unwrap_or_else(|| panic!("{name} is still listed: {listed:#}"));
        time(&token["revoked_at"]);
    }
    // Revoking a token is not a way back into local mode, and the admin is unaffected.
    anonymous
        .get("/v1/workflows")
        .await
        .expect_error(401, "unauthorized", &[]);
    root.get("/v1/workflows").await.expect_status(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn the_bearer_scheme_is_case_insensitive() {
    let (server, api) = serve_with(&[("root", "root", "admin", &[])]);
    let secret = api["root"].token.clone().expect("a token");
    for scheme in ["bearer", "BEARER"] {
        server
            .send(
                server
                    .anonymous()
                    .request(Method::GET, "/v1/workflows")
                    .header(AUTHORIZATION, format!("{scheme} {secret}")),
            )
            .await
            .expect_status(200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn a_401_names_the_bearer_scheme() {
    let (server, _api) = serve_with(&[("root", "root", "admin", &[])]);
    let answer = server.anonymous().get("/v1/workflows").await;
    answer.expect_status(401);
    let challenge = answer.header("www-authenticate").unwrap_or_default();
    assert!(challenge.starts_with("Bearer"), "{:?}", answer.headers);
}

// --- Local mode and `weft serve`'s refusal. ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_mode_ends_with_the_first_token() {
    let mut server = Server::start_on(BACKEND);
    server.wait_for_stderr("LOCAL MODE");
    // No token yet: callers need no header, and are named by X-Weft-User.
    server.create_workflow(&form_workflow("local", "[]")).await;
    server.get("/v1/workflows/local").await.expect_status(200);
    server
        .post_as("lou", "/v1/workflows/local/executions", &json!({}))
        .await
        .expect_status(202);

    let created = server
        .post(
            "/v1/tokens",
            &json!({"name": "root", "role": "admin", "groups": ["ops"]}),
        )
        .await
        .expect_status(201)
        .json();
    let secret = created["token"].as_str().expect("the token is shown").to_owned();
    assert!(is_token(&secret), "{created:#}");
    assert_eq!(created["name"], "root");
    assert_eq!(created["roles"], json!(["admin"]));
    assert_eq!(created["groups"], json!(["ops"]));

    // At once, nothing works without the token.
    for answer in [
        server.get("/v1/workflows").await,
        server
            .post_as("lou", "/v1/tokens", &json!({"name": "lou", "role": "admin"}))
            .await,
        server.post("/v1/workflows/local/executions", &json!({})).await,
    ] {
        answer.expect_error(401, "unauthorized", &["Bearer"]);
    }
    server.get("/healthz").await.expect_status(200);
    let root = server.with_token(&secret);
    let runs = root
        .get("/v1/executions?started_by=lou")
        .await
        .expect_status(200)
        .json();
    assert_eq!(runs["items"].as_array().map(Vec::len), Some(1), "{runs:#}");
    let tokens = root.get("/v1/tokens").await.expect_status(200).json();
    assert_eq!(set(&tokens, "name"), BTreeSet::from(["root".to_owned()]));

    // The audit log shows the local callers (no token) and the refused ones (no one).
    let audit = root.get("/v1/audit").await.expect_status(200).json();
    let entries: Vec<(Value, Value, String, u64)> = audit["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| {
            (
                e["token"].clone(),
                e["name"].clone(),
                e["action"].as_str().unwrap_or_default().to_owned(),
                e["outcome"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        entries,
        [
            (
                Value::Null,
                json!("anonymous"),
                "POST /v1/workflows".to_owned(),
                201
            ),
            (
                Value::Null,
                json!("lou"),
                "POST /v1/workflows/local/executions".to_owned(),
                202
            ),
            (Value::Null, json!("anonymous"), "POST /v1/tokens".to_owned(), 201),
            (Value::Null, Value::Null, "POST /v1/tokens".to_owned(), 401),
            (
                Value::Null,
                Value::Null,
                "POST /v1/workflows/local/executions".to_owned(),
                401
            ),
        ],
        "{audit:#}"
    );

    // Revoking the only token does not bring local mode back, not even after a restart.
    root.delete("/v1/tokens/root").await.expect_status(204);
    server
        .get("/v1/workflows")
        .await
        .expect_error(401, "unauthorized", &["Bearer"]);
    server.restart();
    server
        .get("/v1/workflows")
        .await
        .expect_error(401, "unauthorized", &["Bearer"]);
    server
        .with_token(&secret)
        .get("/v1/workflows")
        .await
        .expect_error(401, "unauthorized", &["revoked"]);
    // The notice would precede serving; requests were served, so it is not coming.
    assert!(!server.stderr().contains("LOCAL MODE"), "{}", server.stderr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_other_addresses_until_a_token_exists() {
    let weft = Weft::on(BACKEND);
    for address in ["0.0.0.0:0", "[::]:0"] {
        let refused = weft.run(&["serve", "--listen", address]);
        assert_ne!(refused.code, 0, "{refused:?}");
        refused.expect_stderr(&["refusing to serve", "without authentication", "weft token create"]);
    }
    let secret = weft.create_token("root", "admin", &[]);
    let server = Server::listening(weft, "0.0.0.0:0");
    assert!(
        server.stderr().contains("weft serving http://0.0.0.0:"),
        "{}",
        server.stderr()
    );
    server
        .get("/v1/workflows")
        .await
        .expect_error(401, "unauthorized", &["Bearer"]);
    server
        .with_token(&secret)
        .get("/v1/workflows")
        .await
        .expect_status(200);
    assert!(!server.stderr().contains("LOCAL MODE"), "{}", server.stderr());
}

// --- Who may answer, and as whom. ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_assignees_answer_and_as_their_token_says() {
    let (_server, api) = serve_with(&[
        ("root", "root", "admin", &[]),
        ("olga", "olga", "operator", &[]),
        ("alice", "alice", "approver", &[]),
        ("carol", "carol", "approver", &[]),
        ("dana", "dana", "approver", &["secops"]),
        ("eve", "eve", "approver", &["other"]),
    ]);
    let olga = &api["olga"];
    api["root"]
        .create_workflow(&approval_workflow("pair", "[alice, bob]", ""))
        .await;
    api["root"]
        .create_workflow(&approval_workflow("secops", "[\"group:secops\"]", ""))
        .await;
    api["root"]
        .create_workflow(&form_workflow("form", "[alice]"))
        .await;

    // carol is not among the approvers: she cannot see the run, so for her it does not exist
    // however she answers it.
    let id = start_waiting(olga, "pair").await;
    let before = olga.execution("pair", &id).await;
    let carol = &api["carol"];
    carol
        .get(&Api::execution_path("pair", &id))
        .await
        .expect_error(404, "not_found", &[]);
    carol
        .post(&interaction_path("pair", &id), &approve())
        .await
        .expect_error(404, "not_found", &[]);
    carol
        .post(&signal_path(&id), &approve_signal())
        .await
        .expect_error(404, "not_found", &[]);
    // The operator may read but not answer.
    olga.post(&interaction_path("pair", &id), &approve())
        .await
        .expect_error(403, "forbidden", &["role operator may not answer interactions"]);
    let after = olga.execution("pair", &id).await;
    assert_eq!(after, before);
    assert_eq!(answered_by(&after, "Approve"), Vec::<String>::new());
    let stats = olga
        .get(&format!("{}/statistics", Api::execution_path("pair", &id)))
        .await
        .expect_status(200)
        .json();
    assert_eq!(stats["steps"][0]["answers"], 0, "{stats:#}");

    // alice answers as alice, whatever the body or the local-mode header claim.
    let alice = &api["alice"];
    alice.get(&interaction_path("pair", &id)).await.expect_status(200);
    let mut claim = approve();
    claim["answered_by"] = json!("mallory");
    claim["user"] = json!("mallory");
    alice
        .send(
            alice
                .request(Method::POST, &interaction_path("pair", &id))
                .header(USER, "mallory")
                .json(&claim),
        )
        .await
        .expect_status(204);
    let run = olga.wait_state("pair", &id, "completed").await;
    assert_eq!(answered_by(&run, "Approve"), ["alice"], "{run:#}");
    assert_eq!(run["outputs"]["approvals"][0]["by"], "alice", "{run:#}");
    assert!(!run.to_string().contains("mallory"), "{run:#}");
    // She answered it, so she still sees it; carol still does not.
    alice.execution("pair", &id).await;
    carol
        .get(&Api::execution_path("pair", &id))
        .await
        .expect_error(404, "not_found", &[]);

    // A group assignee: a member of the group answers; for others the run does not exist.
    let id = start_waiting(olga, "secops").await;
    api["eve"]
        .post(&signal_path(&id), &approve_signal())
        .await
        .expect_error(404, "not_found", &[]);
    api["eve"]
        .get(&interaction_path("secops", &id))
        .await
        .expect_error(404, "not_found", &[]);
    let dana = &api["dana"];
    dana.get(&interaction_path("secops", &id))
        .await
        .expect_status(200);
    dana.post(&signal_path(&id), &approve_signal())
        .await
        .expect_status(204);
    let run = olga.wait_state("secops", &id, "completed").await;
    assert_eq!(answered_by(&run, "Approve"), ["dana"], "{run:#}");
    assert_eq!(run["outputs"]["approvals"][0]["by"], "dana", "{run:#}");

    // An admin may answer a step assigned to someone else; another approver may not.
    let id = start_waiting(olga, "form").await;
    api["carol"]
        .post(
            &signal_path(&id),
            &json!({"SignalKey": "Ask.UserInteraction", "Data": {}}),
        )
        .await
        .expect_error(404, "not_found", &[]);
    api["root"]
        .post(&interaction_path("form", &id), &json!({}))
        .await
        .expect_status(204);
    let run = olga.wait_state("form", &id, "completed").await;
    assert_eq!(answered_by(&run, "Ask"), ["root"], "{run:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn an_admin_may_answer_an_approval_not_assigned_to_them() {
    let (_server, api) = serve_with(&[("root", "root", "admin", &[])]);
    let root = &api["root"];
    root.create_workflow(&approval_workflow("pair", "[alice, bob]", ""))
        .await;
    let id = start_waiting(root, "pair").await;
    root.post(&interaction_path("pair", &id), &approve())
        .await
        .expect_status(204);
    let run = root.wait_state("pair", &id, "completed").await;
    assert_eq!(answered_by(&run, "Approve"), ["root"], "{run:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_starter_may_not_approve_their_own_run() {
    let (_server, api) = serve_with(&[
        ("alice", "alice", "admin", &[]),
        ("alice-operator", "alice", "operator", &[]),
        ("alice-approver", "alice", "approver", &[]),
        ("bob", "bob", "approver", &[]),
    ]);
    let alice = &api["alice"];
    alice
        .create_workflow(&approval_workflow(
            "no-self",
            "[alice, bob]",
            ", self_approval: false",
        ))
        .await;

    // Started and answered with the same admin token.
    let id = start_waiting(alice, "no-self").await;
    assert_eq!(alice.execution("no-self", &id).await["started_by"], "alice");
    alice
        .post(&interaction_path("no-self", &id), &approve())
        .await
        .expect_error(400, "invalid_answer", &["alice", "self_approval"]);
    alice
        .post(&signal_path(&id), &approve_signal())
        .await
        .expect_error(400, "invalid_answer", &["self_approval"]);
    let run = alice.execution("no-self", &id).await;
    assert_eq!(state(&run), "waiting");
    assert_eq!(answered_by(&run, "Approve"), Vec::<String>::new(), "{run:#}");
    api["bob"]
        .post(&interaction_path("no-self", &id), &approve())
        .await
        .expect_status(204);
    let run = alice.wait_state("no-self", &id, "completed").await;
    assert_eq!(run["outputs"]["approvals"][0]["by"], "bob", "{run:#}");

    // Started with alice's operator token, answered with her approver token: still alice.
    let id = start_waiting(&api["alice-operator"], "no-self").await;
    let run = api["alice-approver"].execution("no-self", &id).await;
    assert_eq!(run["started_by"], "alice");
    api["alice-approver"]
        .post(&signal_path(&id), &approve_signal())
        .await
        .expect_error(400, "invalid_answer", &["self_approval"]);
    api["bob"]
        .post(&signal_path(&id), &approve_signal())
        .await
        .expect_status(204);
    alice.wait_state("no-self", &id, "completed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn me_filters_list_the_callers_own_interactions_and_runs() {
    let (_server, api) = serve_with(&[
        ("root", "root", "admin", &[]),
        ("olga", "olga", "operator", &[]),
        ("oscar", "oscar", "operator", &[]),
        ("alice", "alice", "approver", &[]),
        ("bob", "bob", "approver", &[]),
        ("dana", "dana", "approver", &["secops"]),
    ]);
    for (id, assignees) in [
        ("to-alice", "[alice]"),
        ("to-secops", "[\"group:secops\"]"),
        ("to-bob", "[bob]"),
        ("to-anyone", "[]"),
    ] {
        api["root"].create_workflow(&form_workflow(id, assignees)).await;
    }
    let a = start_waiting(&api["olga"], "to-alice").await;
    let b = start_waiting(&api["olga"], "to-secops").await;
    let c = start_waiting(&api["oscar"], "to-bob").await;
    let d = start_waiting(&api["oscar"], "to-anyone").await;

    let interactions = |who: &'static str, query: &'static str| {
        let api = api[who].clone();
        async move {
            set(
                &api.get(&format!("/v1/interactions{query}"))
                    .await
                    .expect_status(200)
                    .json(),
                "execution_id",
            )
        }
    };
    let mine = "?assigned_to=me";
    assert_eq!(interactions("alice", mine).await, ids([&a]));
    assert_eq!(interactions("dana", mine).await, ids([&b]));
    assert_eq!(interactions("bob", mine).await, ids([&c]));
    assert_eq!(interactions("olga", mine).await, ids([]));
    // Admin rights do not make every interaction "mine".
    assert_eq!(interactions("root", mine).await, ids([]));
    // Without the filter, approvers still see only their own; others see everything.
    assert_eq!(interactions("alice", "").await, ids([&a]));
    assert_eq!(interactions("olga", "").await, ids([&a, &b, &c, &d]));
    assert_eq!(interactions("root", "").await, ids([&a, &b, &c, &d]));
    api["olga"]
        .get("/v1/interactions?assigned_to=olga")
        .await
        .expect_error(400, "invalid_request", &["me"]);

    let runs = |who: &'static str, path: &'static str| {
        let api = api[who].clone();
        async move { set(&api.get(path).await.expect_status(200).json(), "id") }
    };
    let by_me = "/v1/executions?started_by=me";
    assert_eq!(runs("olga", by_me).await, ids([&a, &b]));
    assert_eq!(runs("oscar", by_me).await, ids([&c, &d]));
    assert_eq!(runs("alice", by_me).await, ids([]));
    assert_eq!(runs("root", by_me).await, ids([]));
    assert_eq!(
        runs("root", "/v1/executions?started_by=oscar").await,
        ids([&c, &d])
    );
    assert_eq!(
        runs("olga", "/v1/workflows/to-alice/executions?started_by=me").await,
        ids([&a])
    );
    assert_eq!(
        runs("oscar", "/v1/workflows/to-alice/executions?started_by=me").await,
        ids([])
    );
    // An approver lists only the runs they may see.
    assert_eq!(runs("alice", "/v1/executions").await, ids([&a]));
    assert_eq!(runs("dana", "/v1/executions").await, ids([&b]));
    assert_eq!(runs("olga", "/v1/executions").await, ids([&a, &b, &c, &d]));
}

// --- The audit log. ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_records_every_change_with_who_and_how_it_ended() {
    let (server, api) = serve_with(&[
        ("root", "root", "admin", &[]),
        ("ann", "ann", "author", &[]),
        ("olga", "olga", "operator", &[]),
        ("alice", "alice", "approver", &[]),
    ]);
    let (root, ann, olga, alice) = (&api["root"], &api["ann"], &api["olga"], &api["alice"]);
    let hostile = std::fs::read(hostile_wasm()).expect("hostile.wasm was built");

    ann.post_raw(
        "/v1/plugins?name=hostile&version=1.0.0",
        "application/wasm",
        hostile,
    )
    .await
    .expect_status(201);
    ann.create_workflow(&approval_workflow("audited", "[alice]", ""))
        .await;
    let answered = olga.start_run("audited", &json!({})).await;
    olga.wait_state("audited", &answered, "waiting").await;
    alice
        .post(&interaction_path("audited", &answered), &approve())
        .await
        .expect_status(204);
    let canceled = olga.start_run("audited", &json!({})).await;
    let run = Api::execution_path("audited", &canceled);
    olga.delete(&format!("{run}/state")).await.expect_status(204);
    olga.delete(&run).await.expect_status(204);
    alice
        .delete("/v1/workflows/audited")
        .await
        .expect_error(403, "forbidden", &[]);
    server
        .anonymous()
        .delete("/v1/workflows/audited")
        .await
        .expect_error(401, "unauthorized", &[]);
    // Reads are not audited.
    olga.get("/v1/executions").await.expect_status(200);
    alice.get("/v1/interactions").await.expect_status(200);

    for (who, role) in [(ann, "author"), (olga, "operator"), (alice, "approver")] {
        who.get("/v1/audit").await.expect_error(
            403,
            "forbidden",
            &[format!("role {role} may not read the audit log").as_str()],
        );
    }
    let audit = root.get("/v1/audit").await.expect_status(200).json();
    let text = audit.to_string();
    for api in [root, ann, olga, alice] {
        let secret = api.token.as_deref().expect("a token");
        assert!(!text.contains(secret), "the audit log holds a token: {audit:#}");
    }
    let mut ids = HashMap::new();
    for name in ["ann", "olga", "alice"] {
        ids.insert(name, json!(token_id(root, name).await));
    }
    let interaction = format!("/v1/workflows/audited/executions/{answered}/interaction");
    let person = |name: &str, role: &str| (ids[name].clone(), json!(name), json!(role));
    let nobody = (Value::Null, Value::Null, Value::Null);
    let expected = [
        (person("ann", "author"), "POST", "/v1/plugins".to_owned(), 201),
        (person("ann", "author"), "POST", "/v1/workflows".to_owned(), 201),
        (
            person("olga", "operator"),
            "POST",
            "/v1/workflows/audited/executions".to_owned(),
            202,
        ),
        (person("alice", "approver"), "POST", interaction, 204),
        (
            person("olga", "operator"),
            "POST",
            "/v1/workflows/audited/executions".to_owned(),
            202,
        ),
        (person("olga", "operator"), "DELETE", format!("{run}/state"), 204),
        (person("olga", "operator"), "DELETE", run.clone(), 204),
        (
            person("alice", "approver"),
            "DELETE",
            "/v1/workflows/audited".to_owned(),
            403,
        ),
        (nobody, "DELETE", "/v1/workflows/audited".to_owned(), 401),
    ];
    let items = audit["items"].as_array().expect("items");
    assert_eq!(items.len(), expected.len(), "{audit:#}");
    let mut last_seq = None;
    for (entry, ((token, name, role), method, target, outcome)) in items.iter().zip(&expected) {
        assert_eq!(entry["token"], *token, "{entry}");
        assert_eq!(entry["name"], *name, "{entry}");
        assert_eq!(entry["role"], *role, "{entry}");
        assert_eq!(entry["action"], format!("{method} {target}").as_str(), "{entry}");
        assert_eq!(entry["target"], *target, "{entry}");
        assert_eq!(entry["outcome"], *outcome, "{entry}");
        time(&entry["at"]);
        let seq = entry["seq"].as_u64().unwrap_or_else(|| panic!("no seq: {entry}"));
        assert!(last_seq.is_none_or(|last| seq > last), "{audit:#}");
        last_seq = Some(seq);
    }
    assert_eq!(audit["next_after"], json!(last_seq));

    // Paged: two entries after the third.
    let third = items[2]["seq"].as_u64().expect("seq");
    let page = root
        .get(&format!("/v1/audit?after={third}&limit=2"))
        .await
        .expect_status(200)
        .json();
    assert_eq!(
        page["items"].as_array().map(Vec::as_slice),
        Some(&items[3..5]),
        "{page:#}"
    );
}

// --- Bad input in headers. ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_garbled_headers_get_a_4xx() {
    let (server, api) = serve_with(&[("root", "root", "admin", &[])]);
    // A refused header closes the connection, so every request gets a new one.
    let root = &api["root"].unpooled();
    let anonymous = server.unpooled();
    let big = "a".repeat(100 * 1024);
    let huge = "a".repeat(1024 * 1024);

    // A 100 KB token: too large, said plainly, whatever the method.
    for method in [Method::GET, Method::POST, Method::DELETE] {
        let answer = anonymous
            .send(
                anonymous
                    .request(method, "/v1/workflows")
                    .header(AUTHORIZATION, format!("Bearer {big}")),
            )
            .await;
        answer.expect_error(431, "headers_too_large", &["at most 65536"]);
        assert!(
            answer.text.len() < 1024,
            "the error echoes the header: {} bytes",
            answer.text.len()
        );
    }
    // A 100 KB header without a token is refused for its size before authentication.
    anonymous
        .send(
            anonymous
                .request(Method::GET, "/v1/workflows")
                .header("X-Padding", big.as_str()),
        )
        .await
        .expect_error(431, "headers_too_large", &[]);
    // A megabyte of headers is refused before anything else, token or not.
    for client in [root, &anonymous] {
        let answer = client
            .send(
                client
                    .request(Method::GET, "/v1/workflows")
                    .header("X-Padding", huge.as_str()),
            )
            .await;
        assert_eq!(answer.status, 431, "{}: {}", answer.what, answer.text);
    }
    let answer = anonymous
        .send(
            anonymous
                .request(Method::GET, "/v1/workflows")
                .header(AUTHORIZATION, format!("Bearer {huge}")),
        )
        .await;
    assert_eq!(answer.status, 431, "{}", answer.text);
    // Control bytes, an obs-text byte, a scheme alone.
    for value in [&b"Bearer weft_\x80"[..], b"Bearer", b"\xff", b"Bearer\tweft_"] {
        let value = reqwest::header::HeaderValue::from_bytes(value).expect("a header value");
        anonymous
            .send(
                anonymous
                    .request(Method::GET, "/v1/workflows")
                    .header(AUTHORIZATION, value),
            )
            .await
            .expect_error(401, "unauthorized", &[]);
    }
    // The server is none the worse.
    anonymous.get("/healthz").await.expect_status(200);
    root.get("/v1/workflows").await.expect_status(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn a_100_kb_header_is_refused_even_with_a_valid_token() {
    let (_server, api) = serve_with(&[("root", "root", "admin", &[])]);
    let root = &api["root"];
    let big = "a".repeat(100 * 1024);
    let answer = root
        .send(
            root.request(Method::GET, "/v1/workflows")
                .header("X-Padding", big.as_str()),
        )
        .await;
    assert!(
        answer.status == 431 || answer.status == 400,
        "{}: {} {}",
        answer.what,
        answer.status,
        answer.text
    );
}

// --- Tokens on the command line and in the database. ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_shown_once_and_stored_only_as_hashes() {
    let weft = Weft::on(BACKEND);
    let created = weft.run(&[
        "token", "create", "--name", "root", "--role", "admin", "--group", "secops", "--group", "pki",
    ]);
    created.expect_code(0);
    let root = created.stdout.trim().to_owned();
    assert!(is_token(&root), "{created:?}");
    assert_eq!(created.stdout, format!("{root}\n"));
    created.expect_stderr(&["root", "admin", "shown only now"]);
    assert!(!created.stderr.contains(&root), "{created:?}");
    let ann = weft.create_token("ann", "author", &[]);
    assert_ne!(ann, root);

    let listed = weft.run(&["token", "list"]);
    listed.expect_code(0);
    let lines: Vec<&str> = listed.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{listed:?}");
    for (line, words) in lines.iter().zip([
        ["root", "admin", "secops,pki", "active"],
        ["ann", "author", "-", "active"],
    ]) {
        for word in words {
            assert!(line.contains(word), "{word:?} not in {line:?}");
        }
    }
    for secret in [&root, &ann] {
        assert!(!listed.stdout.contains(secret.as_str()), "{listed:?}");
        assert!(!listed.stdout.contains(&secret["weft_".len()..]), "{listed:?}");
    }

    // Refused: a bad name, a bad group, an unknown role.
    for args in [
        &["token", "create", "--name", "a b", "--role", "admin"][..],
        &[
            "token", "create", "--name", "ok", "--role", "admin", "--group", "x/y",
        ],
        &["token", "create", "--name", "ok", "--role", "superuser"],
    ] {
        let refused = weft.run(args);
        assert_ne!(refused.code, 0, "{args:?}: {refused:?}");
        assert!(refused.stdout.is_empty(), "{args:?}: {refused:?}");
    }
    assert_eq!(weft.run(&["token", "list"]).stdout.lines().count(), 2);

    // Revoked offline.
    let revoked = weft.run(&["token", "revoke", "ann"]);
    revoked.expect_code(0);
    let listed = weft.run(&["token", "list"]);
    let line = listed
        .stdout
        .lines()
        .find(|l| l.contains("ann"))
        .expect("ann is still listed");
    assert!(line.contains("revoked"), "{line}");
    let again = weft.run(&["token", "revoke", "ann"]);
    assert_ne!(again.code, 0, "{again:?}");
    again.expect_stderr(&["no active token ann"]);

    // The served database: the offline token works, the revoked one does not; a client
    // creates, lists and revokes tokens through the API.
    let server = Server::on(weft, &[]);
    server
        .with_token(&root)
        .get("/v1/tokens")
        .await
        .expect_status(200);
    server
        .with_token(&ann)
        .get("/v1/workflows")
        .await
        .expect_error(401, "unauthorized", &["revoked"]);
    let url = server.url("");
    let client = Weft::on(BACKEND);
    let remote = |args: &[&str], token: Option<&str>| {
        let mut all = args.to_vec();
        all.extend(["--server", url.as_str()]);
        if let Some(token) = token {
            all.extend(["--token", token]);
        }
        client.run_without_db(&all)
    };
    let made = remote(
        &["token", "create", "--name", "ci", "--role", "operator"],
        Some(root.as_str()),
    );
    made.expect_code(0);
    let ci = made.stdout.trim().to_owned();
    assert!(is_token(&ci), "{made:?}");
    let listed = remote(&["token", "list"], Some(root.as_str()));
    listed.expect_code(0);
    assert!(
        listed.stdout.contains("ci") && listed.stdout.contains("operator"),
        "{listed:?}"
    );
    for secret in [&root, &ann, &ci] {
        assert!(!listed.stdout.contains(secret.as_str()), "{listed:?}");
    }
    let denied = remote(&["token", "list"], Some(ci.as_str()));
    assert_ne!(denied.code, 0, "{denied:?}");
    denied.expect_stderr(&["403", "role operator may not manage tokens"]);
    let anonymous = remote(&["token", "list"], None);
    assert_ne!(anonymous.code, 0, "{anonymous:?}");
    anonymous.expect_stderr(&["401", "Bearer"]);
    remote(&["token", "revoke", "ci"], Some(root.as_str())).expect_code(0);
    server
        .with_token(&ci)
        .get("/v1/executions")
        .await
        .expect_error(401, "unauthorized", &["revoked"]);

    // The database holds each token's SHA-256, never the token. (Every commit is durable
    // before its answer, so it is read while the server still runs.)
    let bytes = match BACKEND {
        Backend::Redb => std::fs::read(server.weft.db_file()).expect("the database file"),
        Backend::Postgres => crate::postgres::dump_text(&server.weft.db).into_bytes(),
    };
    for secret in [&root, &ann, &ci] {
        assert!(!contains(&bytes, secret), "a token is stored in the clear");
        assert!(
            !contains(&bytes, &secret["weft_".len()..]),
            "a token is stored in the clear"
        );
        assert!(
            contains(&bytes, &sha256_hex(secret)),
            "the token's hash is not stored"
        );
    }
}
