//! The browser UI served by `weft serve`: sessions signed in with a token, CSRF and origin
//! checks, what each role sees, answers through the engine's path, live updates across
//! runners, the `notify` target, and the same in a real headless Chromium (screenshots for
//! the README are saved by these tests in `docs/screenshots/`).

use crate::browser::{self, click, text, type_into, wait_for_text, with_browser};
use crate::common::*;
use fantoccini::Locator;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// An approval by two of alice, bob and the `pki` group; one denial rejects.
const CERTIFICATE: &str = r#"
id: certificate
description: A certificate request that two people approve
inputs:
  common_name: {type: string}
  pin: {type: secure-string, default: "0000"}
steps:
  - name: Build
    plugin: echo
    input: {cn: "{{ inputs.common_name }}"}
  - name: RequireApproval1
    plugin: approval
    input:
      prompt: "Issue a certificate for {{ inputs.common_name }}?"
      approvers: [alice, bob, "group:pki"]
      min_approvals: 2
      deny_limit: 1
      expires_in: 2d
  - name: Issue
    plugin: echo
    input: {subject: "CN={{ inputs.common_name }}"}
"#;

/// A form with a field of every type.
const DETAILS: &str = r#"
id: details
steps:
  - name: Details
    plugin: interaction
    input:
      prompt: "Details for the key"
      assignees: [alice]
      fields:
        - {name: size, type: integer, description: "Key size in bits", choices: [2048, 4096], default: 2048}
        - {name: count, type: integer, description: "How many keys"}
        - {name: ratio, type: number, required: false}
        - {name: extra, type: json, required: false}
        - {name: when, type: date-time, required: false}
        - {name: pin, type: secure-string, required: false}
        - {name: ok, type: boolean}
        - {name: note, type: string, required: false, default: "none"}
"#;

/// Tokens of the people in these tests: alice and bob approve (bob also through `pki`),
/// pat only through `pki`, dave is an approver with nothing assigned, carol an operator who
/// starts runs.
struct Team {
    server: Server,
    admin: String,
    alice: String,
    bob: String,
    pat: String,
    dave: String,
    carol: String,
}

impl Team {
    async fn new(backend: Backend) -> Team {
        let weft = Weft::on(backend);
        let admin = weft.create_token("admin", "admin", &[]);
        let alice = weft.create_token("alice", "approver", &[]);
        let bob = weft.create_token("bob", "approver", &["pki"]);
        let pat = weft.create_token("pat", "approver", &["pki"]);
        let dave = weft.create_token("dave", "approver", &[]);
        let carol = weft.create_token("carol", "operator", &[]);
        let server = Server::on(weft, &[]);
        let team = Team {
            server,
            admin,
            alice,
            bob,
            pat,
            dave,
            carol,
        };
        team.as_admin().create_workflow(CERTIFICATE).await;
        team.as_admin().create_workflow(DETAILS).await;
        team
    }

    fn as_admin(&self) -> Api {
        self.server.with_token(&self.admin)
    }

    /// Starts a run of `workflow` as carol and waits until it waits for people.
    async fn waiting_run(&self, workflow: &str, input: Value) -> String {
        let carol = self.server.with_token(&self.carol);
        let id = carol.start_run(workflow, &json!({ "input": input })).await;
        self.as_admin().wait_state(workflow, &id, "waiting").await;
        id
    }

    /// The run as the API shows it to an admin.
    async fn run(&self, workflow: &str, id: &str) -> Value {
        self.as_admin().execution(workflow, id).await
    }
}

/// A browser without a browser: plain HTTP with a session cookie, redirects not followed.
struct Page {
    client: reqwest::Client,
    base: String,
    cookie: Option<String>,
}

/// The value of hidden or other input `name` in a page.
fn input_value(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\" value=\""))?;
    let rest = &html[at + name.len() + 15..];
    rest.split('"').next().map(str::to_owned)
}

/// The `Set-Cookie` header that sets cookie `name`.
fn set_cookie<'a>(resp: &'a Resp, name: &str) -> Option<&'a str> {
    resp.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
}

/// The value a `Set-Cookie` header sets.
fn cookie_value(header: &str) -> String {
    header
        .split(';')
        .next()
        .and_then(|pair| pair.split_once('='))
        .map(|(_, v)| v.to_owned())
        .unwrap_or_default()
}

impl Page {
    fn new(server: &Server) -> Page {
        Page {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(HANG_GUARD)
                .build()
                .expect("an HTTP client"),
            base: server.base.clone(),
            cookie: None,
        }
    }

    /// A page for another runner on the same database, with this page's session.
    fn on(&self, server: &Server) -> Page {
        Page {
            base: server.base.clone(),
            ..self.clone_session()
        }
    }

    fn clone_session(&self) -> Page {
        Page {
            client: self.client.clone(),
            base: self.base.clone(),
            cookie: self.cookie.clone(),
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.client.request(method, format!("{}{path}", self.base));
        match &self.cookie {
            Some(cookie) => request.header("cookie", format!("weft_session={cookie}")),
            None => request,
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Resp {
        let (client, request) = request.build_split();
        let request = request.expect("a valid request");
        let what = format!("{} {}", request.method(), request.url());
        let response = client
            .execute(request)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e:?}"));
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("a body");
        Resp {
            what,
            status,
            headers,
            text,
        }
    }

    async fn get(&self, path: &str) -> Resp {
        self.send(self.request(reqwest::Method::GET, path)).await
    }

    /// Posts `fields` as a form from a page of this server (same `Origin`).
    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Resp {
        self.send(
            self.request(reqwest::Method::POST, path)
                .header("origin", &self.base)
                .form(fields),
        )
        .await
    }

    /// The CSRF token of this session, read from a page.
    async fn csrf(&self) -> String {
        let page = self.get("/ui/inbox").await;
        input_value(&page.text, "csrf").unwrap_or_else(|| panic!("no csrf field in {}", page.text))
    }

    /// Signs in with `token` through the sign-in form; returns the form's answer.
    async fn sign_in(&mut self, token: &str) -> Resp {
        let form = self.get("/ui/sign-in").await;
        form.expect_status(200);
        let nonce = input_value(&form.text, "csrf").expect("the sign-in form has a csrf field");
        let cookie = set_cookie(&form, "weft_sign_in").expect("the sign-in form sets its cookie");
        assert_eq!(cookie_value(cookie), nonce);
        let answer = self
            .send(
                self.client
                    .post(format!("{}/ui/sign-in", self.base))
                    .header("origin", &self.base)
                    .header("cookie", format!("weft_sign_in={nonce}"))
                    .form(&[("csrf", nonce.as_str()), ("token", token), ("next", "/ui/inbox")]),
            )
            .await;
        if let Some(session) = set_cookie(&answer, "weft_session") {
            self.cookie = Some(cookie_value(session));
        }
        answer
    }

    async fn signed_in(server: &Server, token: &str) -> Page {
        let mut page = Page::new(server);
        page.sign_in(token).await.expect_status(303);
        page
    }

    /// Answers the step with `fields` plus this session's CSRF token.
    async fn answer(&self, run: &str, step: &str, fields: &[(&str, &str)]) -> Resp {
        let csrf = self.csrf().await;
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        self.post(&format!("/ui/runs/{run}/steps/{step}"), &all).await
    }
}

#[track_caller]
fn expect_redirect<'a>(resp: &'a Resp, to: &str) -> &'a str {
    resp.expect_status(303);
    let location = resp.header("location").expect("a Location header");
    assert!(
        location.starts_with(to),
        "{}: redirected to {location}, expected {to}...",
        resp.what
    );
    location
}

#[track_caller]
fn expect_text(resp: &Resp, needles: &[&str]) {
    for needle in needles {
        assert!(
            resp.text.contains(needle),
            "{}: the page ({}) does not contain {needle:?}:\n{}",
            resp.what,
            resp.status,
            resp.text
        );
    }
}

/// The answers a step of a run accepted, as (who, data).
fn answers(run: &Value, name: &str) -> Vec<(String, Value)> {
    step(run, name)["answers"]
        .as_array()
        .expect("answers")
        .iter()
        .map(|a| {
            (
                a["answered_by"].as_str().unwrap_or_default().to_owned(),
                a["data"].clone(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_opens_a_session_kept_only_as_a_hash() {
    let team = Team::new(Backend::Redb).await;
    let mut page = Page::new(&team.server);
    let guarded = page.get("/ui/runs?state=waiting").await;
    let location = expect_redirect(&guarded, "/ui/sign-in?next=");
    assert_eq!(location, "/ui/sign-in?next=/ui/runs%3Fstate%3Dwaiting");
    expect_redirect(&page.get("/").await, "/ui/inbox");

    let refused = page
        .sign_in("weft_0000000000000000000000000000000000000000000000000000000000000000")
        .await;
    refused.expect_status(401);
    expect_text(&refused, &["This token is unknown or was revoked."]);
    assert!(set_cookie(&refused, "weft_session").is_none());
    let malformed = page.sign_in("hunter2").await;
    malformed.expect_status(401);
    expect_text(&malformed, &["not an API token"]);

    let signed_in = page.sign_in(&team.alice).await;
    expect_redirect(&signed_in, "/ui/inbox");
    let cookie = set_cookie(&signed_in, "weft_session").expect("a session cookie");
    assert!(
        cookie.ends_with("; Path=/; Max-Age=43200; HttpOnly; SameSite=Strict"),
        "on loopback the cookie is HttpOnly, SameSite=Strict and not Secure: {cookie}"
    );
    let id = page.cookie.clone().expect("a session id");
    assert_eq!(id.len(), 64, "a session id is 256 random bits: {id}");
    assert!(!signed_in.text.contains(&team.alice) && !cookie.contains(&team.alice));

    let inbox = page.get("/ui/inbox").await;
    inbox.expect_status(200);
    expect_text(
        &inbox,
        &["Signed in as <strong>alice</strong>, approver", "Inbox (0)"],
    );
    let csp = inbox.header("content-security-policy").expect("a CSP");
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(inbox.header("cache-control"), Some("no-store"));

    // The database holds the session (its CSRF token is there) but never its id.
    let csrf = page.csrf().await;
    let bytes = std::fs::read(team.server.weft.db_file()).expect("the database file");
    let holds = |needle: &str| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(holds(&csrf), "the session record is in the database");
    assert!(!holds(&id), "the session id itself must not be stored");

    // Signing out ends the session: the old cookie leads to the sign-in page again.
    let out = page.post("/ui/sign-out", &[("csrf", &csrf)]).await;
    expect_redirect(&out, "/ui/sign-in");
    let cleared = set_cookie(&out, "weft_session").expect("the cookie is cleared");
    assert!(
        cleared.starts_with("weft_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    expect_redirect(&page.get("/ui/inbox").await, "/ui/sign-in");
    let again = page.post("/ui/sign-out", &[("csrf", &csrf)]).await;
    again.expect_status(401);
    expect_text(&again, &["Your session has ended"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookies_are_secure_beyond_loopback() {
    let weft = Weft::new();
    let admin = weft.create_token("admin", "admin", &[]);
    let server = Server::listening(weft, "0.0.0.0:0");
    let mut page = Page::new(&server);
    let signed_in = page.sign_in(&admin).await;
    let cookie = set_cookie(&signed_in, "weft_session").expect("a session cookie");
    assert!(
        cookie.ends_with("; HttpOnly; SameSite=Strict; Secure"),
        "{cookie}"
    );
}

async fn revoked_token_ends_its_sessions_on(backend: Backend) {
    let team = Team::new(backend).await;
    let page = Page::signed_in(&team.server, &team.bob).await;
    page.get("/ui/inbox").await.expect_status(200);
    let mut events = page
        .request(reqwest::Method::GET, "/ui/inbox/events")
        .send()
        .await
        .expect("the live inbox");
    assert_eq!(events.status(), 200);
    let mut buffer = String::new();
    assert_eq!(next_event(&mut events, &mut buffer).await.0, "inbox");
    team.as_admin().delete("/v1/tokens/bob").await.expect_status(204);
    expect_redirect(&page.get("/ui/inbox").await, "/ui/sign-in");
    // A live stream ends with the session at its next update.
    team.waiting_run("certificate", json!({"common_name": "revoked.example.com"}))
        .await;
    assert_eq!(next_event(&mut events, &mut buffer).await.0, "signed-out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_ends_its_sessions() {
    revoked_token_ends_its_sessions_on(Backend::Redb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_ends_its_sessions_on_postgres() {
    revoked_token_ends_its_sessions_on(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_need_the_session_csrf_token_and_this_origin() {
    let team = Team::new(Backend::Redb).await;
    let id = team
        .waiting_run("certificate", json!({"common_name": "a.example.com"}))
        .await;
    let page = Page::signed_in(&team.server, &team.alice).await;
    let path = format!("/ui/runs/{id}/steps/RequireApproval1");
    let approve = [("Approved", "true"), ("Comment", "fine")];

    let without = page.post(&path, &approve).await;
    without.expect_status(403);
    expect_text(&without, &["CSRF"]);
    let wrong = page.post(&path, &[("csrf", "00ff"), ("Approved", "true")]).await;
    wrong.expect_status(403);
    let csrf = page.csrf().await;
    let foreign = page
        .send(
            page.request(reqwest::Method::POST, &path)
                .header("origin", "http://evil.example")
                .form(&[("csrf", csrf.as_str()), ("Approved", "true")]),
        )
        .await;
    foreign.expect_status(403);
    expect_text(&foreign, &["sent from another site"]);
    let cross_site = page
        .send(
            page.request(reqwest::Method::POST, &path)
                .header("sec-fetch-site", "cross-site")
                .form(&[("csrf", csrf.as_str()), ("Approved", "true")]),
        )
        .await;
    cross_site.expect_status(403);
    // Another session's token does not do either.
    let other = Page::signed_in(&team.server, &team.bob).await;
    let bobs = other.csrf().await;
    assert_ne!(bobs, csrf);
    page.post(&path, &[("csrf", bobs.as_str()), ("Approved", "true")])
        .await
        .expect_status(403);
    assert!(answers(&team.run("certificate", &id).await, "RequireApproval1").is_empty());

    let accepted = page.answer(&id, "RequireApproval1", &approve).await;
    expect_redirect(&accepted, &format!("{path}?answered=1"));
    let run = team.run("certificate", &id).await;
    assert_eq!(
        answers(&run, "RequireApproval1"),
        vec![("alice".to_owned(), json!({"Approved": true, "Comment": "fine"}))]
    );

    // Every post is in the audit log, refusals included.
    let audit = team
        .as_admin()
        .get("/v1/audit?limit=1000")
        .await
        .expect_status(200)
        .json();
    let outcomes: Vec<(Value, Value)> = audit["items"]
        .as_array()
        .expect("audit entries")
        .iter()
        .filter(|e| e["action"] == format!("POST {path}"))
        .map(|e| (e["name"].clone(), e["outcome"].clone()))
        .collect();
    assert_eq!(
        outcomes,
        vec![
            (json!("alice"), json!(403)),
            (json!("alice"), json!(403)),
            (json!("alice"), json!(403)),
            (json!("alice"), json!(403)),
            (json!("alice"), json!(403)),
            (json!("alice"), json!(303)),
        ],
        "{audit:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvers_see_only_what_is_theirs() {
    let team = Team::new(Backend::Redb).await;
    let id = team
        .waiting_run("certificate", json!({"common_name": "b.example.com"}))
        .await;
    let prompt = "Issue a certificate for b.example.com?";

    let alice = Page::signed_in(&team.server, &team.alice).await;
    let inbox = alice.get("/ui/inbox").await;
    expect_text(
        &inbox,
        &["Inbox (1)", prompt, "0 of 2 approvals, 0 of 1 denials", "carol"],
    );
    let step = alice.get(&format!("/ui/runs/{id}/steps/RequireApproval1")).await;
    step.expect_status(200);
    expect_text(
        &step,
        &[
            prompt,
            ">Approve</button>",
            ">Deny</button>",
            "&quot;common_name&quot;",
        ],
    );
    assert!(!step.text.contains("0000"), "secure inputs are masked");
    expect_text(
        &alice.get(&format!("/ui/runs/{id}")).await,
        &["RequireApproval1", "<svg class=\"graph\""],
    );

    // pat answers through the pki group.
    let pat = Page::signed_in(&team.server, &team.pat).await;
    expect_text(&pat.get("/ui/inbox").await, &["Inbox (1)", prompt]);

    // dave is assigned nothing: every URL of the run is the not-found page.
    let dave = Page::signed_in(&team.server, &team.dave).await;
    expect_text(
        &dave.get("/ui/inbox").await,
        &["Inbox (0)", "Nothing is waiting for you."],
    );
    for path in [
        format!("/ui/runs/{id}"),
        format!("/ui/runs/{id}/steps/RequireApproval1"),
        format!("/ui/runs/{id}/steps/NoSuchStep"),
        format!("/ui/runs/{id}/log.txt"),
        format!("/ui/runs/{id}/events"),
        "/ui/runs/01a2346c-1f42-768d-b87c-512ef04d0b94".to_owned(),
        "/ui/runs/not-a-run".to_owned(),
    ] {
        let page = dave.get(&path).await;
        page.expect_status(404);
        expect_text(&page, &["Not found"]);
        assert!(!page.text.contains(prompt), "{path} shows the prompt to dave");
    }
    let csrf = dave.csrf().await;
    for action in ["steps/RequireApproval1", "cancel", "restart"] {
        let post = dave
            .post(
                &format!("/ui/runs/{id}/{action}"),
                &[("csrf", &csrf), ("Approved", "true")],
            )
            .await;
        post.expect_status(404);
    }
    // Runs and workflows are not an approver's to list.
    dave.get("/ui/runs").await.expect_status(403);
    dave.get("/ui/workflows").await.expect_status(403);

    // carol (operator) reads the run but may not answer; she may cancel it.
    let carol = Page::signed_in(&team.server, &team.carol).await;
    let step = carol.get(&format!("/ui/runs/{id}/steps/RequireApproval1")).await;
    expect_text(&step, &["You may read this step but not answer it"]);
    assert!(!step.text.contains(">Approve</button>"));
    carol
        .answer(&id, "RequireApproval1", &[("Approved", "true")])
        .await
        .expect_status(403);
    expect_text(
        &carol.get("/ui/runs?state=waiting").await,
        &[&id[..8], "certificate"],
    );
    let csrf = carol.csrf().await;
    expect_redirect(
        &carol
            .post(&format!("/ui/runs/{id}/cancel"), &[("csrf", &csrf)])
            .await,
        &format!("/ui/runs/{id}"),
    );
    assert_eq!(state(&team.run("certificate", &id).await), "canceled");
    let restarted = carol
        .post(&format!("/ui/runs/{id}/restart"), &[("csrf", &csrf)])
        .await;
    let location = expect_redirect(&restarted, "/ui/runs/").to_owned();
    let page = carol.get(&location).await;
    expect_text(&page, &["Restart of", &id[..8]]);
    assert!(answers(&team.run("certificate", &id).await, "RequireApproval1").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_take_the_engines_path_and_say_what_happened() {
    let team = Team::new(Backend::Redb).await;
    let id = team
        .waiting_run("certificate", json!({"common_name": "c.example.com"}))
        .await;
    let step_path = format!("/ui/runs/{id}/steps/RequireApproval1");

    let alice = Page::signed_in(&team.server, &team.alice).await;
    let counted = alice
        .answer(
            &id,
            "RequireApproval1",
            &[("Approved", "true"), ("Comment", "ok by me")],
        )
        .await;
    let location = expect_redirect(&counted, &format!("{step_path}?answered=1")).to_owned();
    expect_text(
        &alice.get(&location).await,
        &["Your answer was counted (1 of 2 approvals, 0 of 1 denials). RequireApproval1 still waits"],
    );
    // The plugin's own refusal: each person counts once. Nothing changes.
    let twice = alice
        .answer(&id, "RequireApproval1", &[("Approved", "false")])
        .await;
    twice.expect_status(400);
    expect_text(&twice, &["alice has already answered; each approver counts once"]);
    // Neither Approve nor Deny: the form says so.
    let neither = alice.answer(&id, "RequireApproval1", &[("Comment", "hm")]).await;
    neither.expect_status(400);
    expect_text(&neither, &["choose Approve or Deny"]);
    assert_eq!(
        answers(&team.run("certificate", &id).await, "RequireApproval1").len(),
        1
    );

    let bob = Page::signed_in(&team.server, &team.bob).await;
    let denied = bob
        .answer(
            &id,
            "RequireApproval1",
            &[("Approved", "false"), ("Comment", "wrong CN")],
        )
        .await;
    let location = expect_redirect(&denied, &step_path).to_owned();
    expect_text(
        &bob.get(&location).await,
        &["Your answer was counted: RequireApproval1 was denied and the run was rejected."],
    );
    // pat is too late: the page says who answered, and nothing changes.
    let pat = Page::signed_in(&team.server, &team.pat).await;
    let late = pat.answer(&id, "RequireApproval1", &[("Approved", "true")]).await;
    let location = expect_redirect(&late, &format!("{step_path}?already=1")).to_owned();
    expect_text(&pat.get(&location).await, &["Already answered by alice, bob"]);
    let run = team.run("certificate", &id).await;
    assert_eq!(state(&run), "rejected");
    assert_eq!(answers(&run, "RequireApproval1").len(), 2);

    // The run page shows the final state and who answered what.
    let page = alice.get(&format!("/ui/runs/{id}")).await;
    expect_text(
        &page,
        &[
            "badge st-rejected\">rejected",
            "<td class=\"who\">alice</td>",
            "<td class=\"who\">bob</td>",
            "ok by me",
            "wrong CN",
            "decision approved",
            "decision denied",
        ],
    );

    // Self-approval is the plugin's to refuse, as over the API.
    let strict = r#"
id: strict
steps:
  - name: Approve
    plugin: approval
    input: {approvers: [admin], self_approval: false, prompt: "Approve your own?"}
"#;
    team.as_admin().create_workflow(strict).await;
    let own = team.as_admin().start_run("strict", &json!({})).await;
    team.as_admin().wait_state("strict", &own, "waiting").await;
    let admin = Page::signed_in(&team.server, &team.admin).await;
    let refused = admin.answer(&own, "Approve", &[("Approved", "true")]).await;
    refused.expect_status(400);
    expect_text(&refused, &["admin started this run and may not approve it"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn form_values_are_typed_and_wrong_ones_change_nothing() {
    let team = Team::new(Backend::Redb).await;
    let id = team.waiting_run("details", json!({})).await;
    let alice = Page::signed_in(&team.server, &team.alice).await;
    let form = alice.get(&format!("/ui/runs/{id}/steps/Details")).await;
    expect_text(
        &form,
        &[
            "type=\"password\"",
            "data-json",
            "type=\"datetime-local\"",
            "step=\"1\" inputmode=\"numeric\"",
            "<option value=\"1\">4096</option>",
            "Key size in bits",
            "value=\"none\"",
        ],
    );
    let before = team.run("details", &id).await;
    let wrong = alice
        .answer(
            &id,
            "Details",
            &[
                ("count", "12.5"),
                ("ratio", "lots"),
                ("extra", "{"),
                ("when", "soon"),
                ("ok", ""),
            ],
        )
        .await;
    wrong.expect_status(400);
    expect_text(
        &wrong,
        &[
            "count must be a whole number",
            "ratio must be a number",
            "extra is not valid JSON",
            "when must be a date and time",
            "ok is required",
            "Nothing was changed",
            "value=\"12.5\"",
            "aria-invalid=\"true\"",
        ],
    );
    assert_eq!(
        team.run("details", &id).await,
        before,
        "a refused form changed the run"
    );

    let done = alice
        .answer(
            &id,
            "Details",
            &[
                ("size", "1"),
                ("count", "3"),
                ("ratio", "0.5"),
                ("extra", r#"{"a": [1, 2]}"#),
                ("when", "2026-11-22T10:00"),
                ("pin", "1234"),
                ("ok", "true"),
            ],
        )
        .await;
    expect_redirect(&done, &format!("/ui/runs/{id}/steps/Details?answered=1"));
    let run = team.as_admin().wait_state("details", &id, "completed").await;
    assert_eq!(
        step(&run, "Details")["output"],
        json!({"size": 4096, "count": 3, "ratio": 0.5, "extra": {"a": [1, 2]},
               "when": "2026-11-22T10:00:00Z", "pin": "1234", "ok": true, "note": "none"})
    );
    let kept = &answers(&run, "Details")[0].1;
    assert_eq!(kept["pin"], "********", "a secure answer is kept masked: {kept}");
    let page = alice.get(&format!("/ui/runs/{id}")).await;
    expect_text(&page, &["completed"]);
    assert!(!page.text.contains("1234"), "a secure answer is never shown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_mode_needs_no_sign_in() {
    let server = Server::start();
    let api = server.api();
    api.create_workflow(CERTIFICATE).await;
    let id = api
        .start_run(
            "certificate",
            &json!({"input": {"common_name": "local.example.com"}}),
        )
        .await;
    api.wait_state("certificate", &id, "waiting").await;
    let mut page = Page::new(&server);
    let first = page.get("/ui/inbox").await;
    first.expect_status(200);
    page.cookie = Some(cookie_value(
        set_cookie(&first, "weft_session").expect("a local session"),
    ));
    expect_text(&first, &["Local mode: you are", "value=\"anonymous\""]);
    let csrf = input_value(&first.text, "csrf").expect("a csrf field");
    expect_redirect(
        &page.post("/ui/name", &[("csrf", &csrf), ("name", "alice")]).await,
        "/ui/inbox",
    );
    let inbox = page.get("/ui/inbox").await;
    expect_text(
        &inbox,
        &[
            "value=\"alice\"",
            "Inbox (1)",
            "Issue a certificate for local.example.com?",
        ],
    );
    expect_redirect(
        &page
            .answer(&id, "RequireApproval1", &[("Approved", "true")])
            .await,
        &format!("/ui/runs/{id}/steps/RequireApproval1?answered=1"),
    );
    assert_eq!(
        answers(&api.execution("certificate", &id).await, "RequireApproval1")[0].0,
        "alice"
    );
    // X-Weft-User names the caller too, as for the API.
    let named = page
        .send(
            page.request(reqwest::Method::GET, "/ui/inbox")
                .header(USER, "bob"),
        )
        .await;
    expect_text(&named, &["value=\"bob\""]);

    // Once a token exists, local mode is over: the session ends and sign-in is needed.
    api.post_as("alice", "/v1/tokens", &json!({"name": "root", "role": "admin"}))
        .await
        .expect_status(201);
    expect_redirect(&page.get("/ui/inbox").await, "/ui/sign-in");
}

/// Reads server-sent events from `response` until the next whole one: (event, data).
async fn next_event(response: &mut reqwest::Response, buffer: &mut String) -> (String, String) {
    let started = Instant::now();
    loop {
        if let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let mut event = String::new();
            let mut data = String::new();
            for line in block.lines() {
                if let Some(name) = line.strip_prefix("event: ") {
                    event = name.to_owned();
                } else if let Some(more) = line.strip_prefix("data: ") {
                    data.push_str(more);
                } else if line == "data:" {
                    // An empty data line.
                }
            }
            if event.is_empty() && data.is_empty() {
                continue; // a keep-alive comment
            }
            return (event, data);
        }
        let left = POLL_LIMIT.saturating_sub(started.elapsed());
        let chunk = tokio::time::timeout(left, response.chunk())
            .await
            .unwrap_or_else(|_| panic!("no server-sent event within {POLL_LIMIT:?}; have {buffer:?}"))
            .expect("the event stream")
            .unwrap_or_else(|| panic!("the event stream ended; have {buffer:?}"));
        buffer.push_str(&String::from_utf8_lossy(&chunk));
    }
}

/// Reads inbox events until one satisfies `done`.
async fn inbox_event(
    response: &mut reqwest::Response,
    buffer: &mut String,
    done: impl Fn(&Value) -> bool,
) -> Value {
    loop {
        let (event, data) = next_event(response, buffer).await;
        assert_eq!(event, "inbox", "{data}");
        let update: Value = serde_json::from_str(&data).expect("an inbox update is JSON");
        if done(&update) {
            return update;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_inbox_hears_every_runner() {
    let first = Weft::on(Backend::Postgres);
    let second = first.same_database();
    let alice = first.create_token("alice", "approver", &[]);
    let admin = first.create_token("admin", "admin", &[]);
    let carol = first.create_token("carol", "operator", &[]);
    let (a, b) = (Server::on(first, &[]), Server::on(second, &[]));
    a.with_token(&admin).create_workflow(CERTIFICATE).await;

    // Signed in on runner A; the session works on runner B too.
    let on_a = Page::signed_in(&a, &alice).await;
    let on_b = on_a.on(&b);
    expect_text(
        &on_b.get("/ui/inbox").await,
        &["Signed in as <strong>alice</strong>"],
    );
    let mut events = on_b
        .request(reqwest::Method::GET, "/ui/inbox/events")
        .send()
        .await
        .expect("the live inbox");
    assert_eq!(events.status(), 200);
    assert_eq!(events.headers()["content-type"], "text/event-stream");
    let mut buffer = String::new();
    inbox_event(&mut events, &mut buffer, |u| u["count"] == "0").await;

    // A run started on runner A arrives in the inbox served by runner B.
    let id = a
        .with_token(&carol)
        .start_run(
            "certificate",
            &json!({"input": {"common_name": "live.example.com"}}),
        )
        .await;
    let update = inbox_event(&mut events, &mut buffer, |u| u["count"] == "1").await;
    let html = update["html"].as_str().expect("html");
    assert!(
        html.contains("Issue a certificate for live.example.com?") && html.contains(&id),
        "{html}"
    );
    // Someone answering on runner A changes the item's progress on B.
    a.with_token(&alice)
        .post(
            &format!("/v1/instances/{id}/signals"),
            &json!({"SignalKey": "RequireApproval1.ApprovalStatus", "Data": {"Approved": true}}),
        )
        .await
        .expect_status(204);
    inbox_event(&mut events, &mut buffer, |u| {
        u["html"].as_str().is_some_and(|h| h.contains("1 of 2 approvals"))
    })
    .await;
}

/// A webhook on loopback (a real HTTP server, axum) that answers 200 and sends on each
/// request's method, path, content type and body.
async fn webhook() -> (u16, tokio::sync::mpsc::UnboundedReceiver<(String, Value)>) {
    use axum::http::{HeaderMap, Method, Uri};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let port = listener.local_addr().expect("an address").port();
    let (tell, heard) = tokio::sync::mpsc::unbounded_channel();
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: axum::body::Bytes| {
            let tell = tell.clone();
            async move {
                let content_type = headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                let body =
                    serde_json::from_slice(&body).unwrap_or_else(|_| json!(String::from_utf8_lossy(&body)));
                let _ = tell.send((format!("{method} {uri} {content_type}"), body));
                "ok"
            }
        },
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, heard)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_tells_a_webhook_with_a_link_to_the_inbox_item() {
    let team = Team::new(Backend::Redb).await;
    let admin = team.as_admin();
    let (port, mut heard) = webhook().await;
    let target = admin
        .post(
            "/v1/actions/targets",
            &json!({"name": "tell-approvers", "plugin": "notify", "type": "webhook", "timeout": "10s",
                    "config": {"webhook_url": format!("http://127.0.0.1:{port}/hook"),
                               "base_url": team.server.base}}),
        )
        .await
        .expect_status(201)
        .json();
    let target = target["id"].as_str().expect("a target id");
    admin
        .put(
            "/v1/actions/executions",
            &json!({"condition": {"event": {"event": "interaction.created"}}, "targets": [{"target": target}]}),
        )
        .await
        .expect_status(200);

    // Without a grant for the webhook's host, the call is denied and says how to grant it.
    let first = team
        .waiting_run("certificate", json!({"common_name": "n1.example.com"}))
        .await;
    let log = admin
        .poll(
            &format!("/v1/actions/log?target={target}"),
            "a denied call",
            |log| log["items"].as_array().is_some_and(|i| !i.is_empty()),
        )
        .await;
    let entry = &log["items"][0];
    let error = entry["error"].as_str().unwrap_or_default();
    let grant = format!("weft grant set notify --http \"POST 127.0.0.1:{port}\"");
    assert!(error.contains(&grant), "{entry}");
    assert!(
        entry["logs"].to_string().contains("outbound HTTP denied"),
        "{entry}"
    );
    assert!(heard.try_recv().is_err(), "nothing reached the webhook");

    admin
        .put(
            "/v1/grants/notify",
            &json!({"http": [format!("POST 127.0.0.1:{port}")]}),
        )
        .await
        .expect_status(200);
    let id = team
        .waiting_run("certificate", json!({"common_name": "n2.example.com"}))
        .await;
    let (request, message) = tokio::time::timeout(POLL_LIMIT, heard.recv())
        .await
        .expect("the webhook was called in time")
        .expect("a request");
    assert_eq!(request, "POST /hook application/json");
    let link = format!("{}/ui/runs/{id}/steps/RequireApproval1", team.server.base);
    assert_eq!(message["link"], link.as_str(), "{message:#}");
    assert_eq!(message["prompt"], "Issue a certificate for n2.example.com?");
    assert_eq!(message["title"], "Weft: waiting for you");
    assert_eq!(message["assignees"], json!(["alice", "bob", "group:pki"]));
    let text = message["text"].as_str().expect("a text for Slack and Teams");
    assert!(
        text.starts_with("Issue a certificate for n2.example.com? (certificate v1, step RequireApproval1, started by carol; for alice, bob, group:pki; expires ")
            && text.ends_with(&format!("\nOpen: {link}")),
        "{text}"
    );
    assert_ne!(first, id);
    // The link opens the item for an assignee.
    let alice = Page::signed_in(&team.server, &team.alice).await;
    let path = link.trim_start_matches(&team.server.base);
    expect_text(
        &alice.get(path).await,
        &["Issue a certificate for n2.example.com?", ">Approve</button>"],
    );
}

// ---------------------------------------------------------------------------------------------
// In a real browser.

/// Signs in through the sign-in page with `token`.
async fn browser_sign_in(browser: &fantoccini::Client, base: &str, token: &str) {
    browser
        .goto(&format!("{base}/ui/inbox"))
        .await
        .expect("the inbox");
    wait_for_text(browser, "h1", "the sign-in page", |t| t == "Sign in").await;
    type_into(browser, "#token", token).await;
    click(browser, "form[action='/ui/sign-in'] button[type=submit]").await;
    wait_for_text(browser, "#whoami", "signed in", |t| t.starts_with("Signed in as")).await;
}

async fn browser_sign_out(browser: &fantoccini::Client) {
    click(browser, "form[action='/ui/sign-out'] button").await;
    wait_for_text(browser, "h1", "the sign-in page", |t| t == "Sign in").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_browser_one_approves_with_a_comment_and_another_denies() {
    let team = Team::new(Backend::Redb).await;
    let id = team
        .waiting_run("certificate", json!({"common_name": "web01.example.com"}))
        .await;
    // A second item, so the inbox shows more than one.
    team.waiting_run("certificate", json!({"common_name": "mail.example.com"}))
        .await;
    let base = team.server.base.clone();
    // The browser borrows what it needs; the checks after it use the same values.
    let (team, id) = (&team, &id);
    with_browser(|browser| async move {
        browser_sign_in(&browser, &base, &team.alice).await;
        assert_eq!(browser.title().await.expect("a title"), "Inbox (2) · Weft");
        let item = text(&browser, &format!("li.item[data-run='{id}']")).await;
        assert!(item.contains("Issue a certificate for web01.example.com?"), "{item}");
        assert!(item.contains("carol") && item.contains("0 of 2 approvals, 0 of 1 denials"), "{item}");
        browser::screenshot(&browser, "inbox", 900).await;

        click(&browser, &format!("li.item[data-run='{id}'] a")).await;
        wait_for_text(&browser, "h1", "the form", |t| t == "Issue a certificate for web01.example.com?").await;
        type_into(&browser, "input[name=Comment]", "Looks right to me").await;
        browser::screenshot(&browser, "form", 1000).await;
        click(&browser, "button.approve").await;
        let outcome = text(&browser, "#outcome").await;
        assert_eq!(
            outcome,
            "Your answer was counted (1 of 2 approvals, 0 of 1 denials). RequireApproval1 still waits for more answers."
        );
        browser_sign_out(&browser).await;

        browser_sign_in(&browser, &base, &team.bob).await;
        browser
            .goto(&format!("{base}/ui/runs/{id}/steps/RequireApproval1"))
            .await
            .expect("the item");
        type_into(&browser, "input[name=Comment]", "Wrong key size").await;
        click(&browser, "button.deny").await;
        let outcome = text(&browser, "#outcome").await;
        assert_eq!(
            outcome,
            "Your answer was counted: RequireApproval1 was denied and the run was rejected."
        );

        // The run page shows the final state and who answered what.
        browser.goto(&format!("{base}/ui/runs/{id}")).await.expect("the run page");
        assert_eq!(text(&browser, "#run-state").await, "rejected");
        let answers = text(&browser, "table.answers").await;
        for needle in ["alice", "approved", "Looks right to me", "bob", "denied", "Wrong key size"] {
            assert!(answers.contains(needle), "{needle:?} not in {answers}");
        }
        let graph = text(&browser, "svg.graph").await;
        assert!(graph.contains("Build") && graph.contains("completed"), "{graph}");
        browser::screenshot(&browser, "run", 1800).await;
    })
    .await;
    let run = team.run("certificate", id).await;
    assert_eq!(state(&run), "rejected");
    assert_eq!(
        answers(&run, "RequireApproval1"),
        vec![
            (
                "alice".to_owned(),
                json!({"Approved": true, "Comment": "Looks right to me"})
            ),
            (
                "bob".to_owned(),
                json!({"Approved": false, "Comment": "Wrong key size"})
            ),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_browser_a_wrong_typed_value_shows_an_error_and_changes_nothing() {
    let team = Team::new(Backend::Redb).await;
    let id = team.waiting_run("details", json!({})).await;
    let before = team.run("details", &id).await;
    let base = team.server.base.clone();
    // The browser borrows what it needs; the checks after it use the same values.
    let (team, id) = (&team, &id);
    with_browser(|browser| async move {
        browser_sign_in(&browser, &base, &team.alice).await;
        browser
            .goto(&format!("{base}/ui/runs/{id}/steps/Details"))
            .await
            .expect("the form");
        type_into(&browser, "input[name=count]", "12.5").await;
        type_into(&browser, "textarea[name=extra]", "{\"a\": ").await;
        assert_eq!(
            text(&browser, ".json-check").await,
            "Not valid JSON yet: Unexpected end of JSON input"
        );
        browser
            .find(Locator::Css("select[name=ok]"))
            .await
            .expect("the boolean field")
            .select_by_value("true")
            .await
            .expect("yes");
        click(&browser, "form.answer button[type=submit]").await;
        let error = text(&browser, "#field-1-error").await;
        assert_eq!(error, "count must be a whole number, not \"12.5\"");
        assert!(text(&browser, "#field-3-error")
            .await
            .starts_with("extra is not valid JSON"));
        let count = browser
            .find(Locator::Css("input[name=count]"))
            .await
            .expect("the field");
        assert_eq!(
            count.attr("aria-invalid").await.expect("an attribute").as_deref(),
            Some("true")
        );
        assert_eq!(
            count.prop("value").await.expect("a value").as_deref(),
            Some("12.5")
        );
    })
    .await;
    assert_eq!(
        team.run("details", id).await,
        before,
        "a refused form changed the run"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_browser_a_guessed_url_of_a_run_not_assigned_is_not_found() {
    let team = Team::new(Backend::Redb).await;
    let id = team
        .waiting_run("certificate", json!({"common_name": "secret.example.com"}))
        .await;
    let base = team.server.base.clone();
    with_browser(|browser| async move {
        browser_sign_in(&browser, &base, &team.dave).await;
        for path in [
            format!("/ui/runs/{id}"),
            format!("/ui/runs/{id}/steps/RequireApproval1"),
        ] {
            browser.goto(&format!("{base}{path}")).await.expect("a page");
            assert_eq!(text(&browser, "h1").await, "Not found");
            let body = text(&browser, "main").await;
            assert!(
                body.contains("not yours to see") && !body.contains("secret.example.com"),
                "{body}"
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_browser_a_post_without_the_csrf_token_is_refused() {
    let team = Team::new(Backend::Redb).await;
    let id = team
        .waiting_run("certificate", json!({"common_name": "csrf.example.com"}))
        .await;
    let base = team.server.base.clone();
    // The browser borrows what it needs; the checks after it use the same values.
    let (team, id) = (&team, &id);
    with_browser(|browser| async move {
        browser_sign_in(&browser, &base, &team.alice).await;
        browser
            .goto(&format!("{base}/ui/runs/{id}/steps/RequireApproval1"))
            .await
            .expect("the form");
        browser
            .execute(
                "document.querySelector('form.answer input[name=csrf]').remove()",
                vec![],
            )
            .await
            .expect("the token can be removed");
        click(&browser, "button.approve").await;
        wait_for_text(&browser, "h1", "the refusal", |t| t == "Not allowed").await;
        assert!(text(&browser, "main").await.contains("security token (CSRF)"));
    })
    .await;
    assert!(answers(&team.run("certificate", id).await, "RequireApproval1").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_browser_the_inbox_shows_a_new_item_without_a_reload() {
    let team = Team::new(Backend::Redb).await;
    let base = team.server.base.clone();
    let carol = team.server.with_token(&team.carol);
    with_browser(|browser| async move {
        browser_sign_in(&browser, &base, &team.alice).await;
        assert_eq!(
            text(&browser, "#inbox-items").await,
            "Nothing is waiting for you."
        );
        browser
            .execute("window.weftNoReload = 42", vec![])
            .await
            .expect("a marker");
        // The item arrives once the page's event stream is open.
        let started = Instant::now();
        while browser
            .execute("return document.body.dataset.stream || ''", vec![])
            .await
            .expect("the stream's state")
            != json!("open")
        {
            assert!(
                started.elapsed() < browser::PAGE_LIMIT,
                "the inbox never opened its live stream"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let id = carol
            .start_run(
                "certificate",
                &json!({"input": {"common_name": "new.example.com"}}),
            )
            .await;
        let item = wait_for_text(&browser, "#inbox-items", "showing the new item", |t| {
            t.contains("Issue a certificate for new.example.com?")
        })
        .await;
        assert!(item.contains("0 of 2 approvals"), "{item}");
        assert_eq!(text(&browser, "#inbox-count").await, "1");
        assert_eq!(browser.title().await.expect("a title"), "Inbox (1) · Weft");
        let marker = browser
            .execute("return window.weftNoReload", vec![])
            .await
            .expect("the marker");
        assert_eq!(marker, json!(42), "the page was reloaded");
        assert!(browser
            .find(Locator::Css(&format!("li.item[data-run='{id}']")))
            .await
            .is_ok());
    })
    .await;
}
