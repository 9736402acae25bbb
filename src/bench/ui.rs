//! The browser UI's figures: the inbox and a run page of `weft serve`, as a signed-in
//! browser gets them (session cookie, server-rendered HTML), with the history of finished
//! runs in the database and an inbox fuller than one page.

use super::http::{sequential, Api, Server};
use super::{ms, percentile, Figure, Sizes};
use crate::limits::INBOX_COUNT;
use anyhow::{anyhow, bail, Context, Result};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Runs that wait for the bench's own token (named `bench`): more than the inbox counts.
const FOR_ME: usize = INBOX_COUNT + 50;

/// A workflow whose runs wait for an approval assigned to `bench`.
const INBOX_WORKFLOW: &str = r#"{"id": "bench-inbox", "steps": [
    {"name": "Approve", "plugin": "approval",
     "input": {"prompt": "Approve run {{ run.id }}?", "approvers": ["bench"], "expires_in": "30d"}},
    {"name": "Done", "plugin": "echo", "input": {}}]}"#;

/// A browser's session with the UI: its cookie, redirects not followed.
struct Browser {
    base: String,
    http: reqwest::Client,
    session: String,
}

/// The value a response's `Set-Cookie` gives cookie `name`.
fn cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.split(';').next())
        .map(str::to_owned)
}

impl Browser {
    /// Signs in through the sign-in form with `token`.
    async fn sign_in(server: &Server, token: &str) -> Result<Browser> {
        let base = server.base().to_owned();
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let form = http.get(format!("{base}/ui/sign-in")).send().await?;
        let nonce = cookie(&form, "weft_sign_in").ok_or_else(|| anyhow!("the sign-in form set no cookie"))?;
        let signed_in = http
            .post(format!("{base}/ui/sign-in"))
            .header("origin", &base)
            .header("cookie", format!("weft_sign_in={nonce}"))
            .form(&[("csrf", nonce.as_str()), ("token", token), ("next", "/ui/inbox")])
            .send()
            .await?;
        let session = cookie(&signed_in, "weft_session")
            .with_context(|| format!("signing in answered {} without a session", signed_in.status()))?;
        Ok(Browser { base, http, session })
    }

    /// Gets page `path`; how long it took, after checking it is a 200 that shows `expect`.
    async fn page(&self, path: &str, expect: &str) -> Result<Duration> {
        let started = Instant::now();
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", format!("weft_session={}", self.session))
            .send()
            .await?;
        let status = response.status().as_u16();
        let body = response.text().await?;
        let elapsed = started.elapsed();
        if status != 200 || !body.contains(expect) {
            bail!("correctness: GET {path} answered {status} without {expect:?}");
        }
        Ok(elapsed)
    }
}

/// `ui_inbox_ms` and `ui_run_page_ms`: `server` has `runs_in_db` runs; [`FOR_ME`] more wait
/// for the bench's token, so its inbox is full. The floor is `GET /healthz` on the same
/// server (`health_p50`), which costs the same loopback round trip.
pub(super) async fn pages(
    server: &Server,
    api: &Api,
    token: &str,
    runs_in_db: usize,
    health_p50: f64,
    sizes: Sizes,
    figures: &mut BTreeMap<&'static str, Figure>,
) -> Result<()> {
    api.create_workflow(INBOX_WORKFLOW).await?;
    let mut waiting = Vec::with_capacity(FOR_ME);
    for _ in 0..FOR_ME {
        waiting.push(api.start_waiting_of("bench-inbox").await?);
    }
    let browser = Browser::sign_in(server, token).await?;
    let title = format!("Inbox ({INBOX_COUNT}+)");
    let mut inbox = sequential(sizes.requests, || browser.page("/ui/inbox", &title)).await?;
    // The run page of a waiting run: graph, timeline, inputs, the form's step and its log.
    let run = waiting.first().ok_or_else(|| anyhow!("no waiting run"))?;
    let path = format!("/ui/runs/{run}");
    let mut run_page = sequential(sizes.requests, || browser.page(&path, run)).await?;
    let in_db = (runs_in_db + FOR_ME) as f64;
    figures.insert(
        "ui_inbox_ms",
        Figure::new(
            ms(percentile(&mut inbox, 50)),
            "ms",
            health_p50,
            "GET /healthz p50",
        )
        .with("p99_ms", ms(percentile(&mut inbox, 99)))
        .with("runs_in_db", in_db)
        .with("waiting_for_me", FOR_ME as f64),
    );
    figures.insert(
        "ui_run_page_ms",
        Figure::new(
            ms(percentile(&mut run_page, 50)),
            "ms",
            health_p50,
            "GET /healthz p50",
        )
        .with("p99_ms", ms(percentile(&mut run_page, 99)))
        .with("runs_in_db", in_db),
    );
    Ok(())
}

/// `ui_inbox_ms_all_waiting`: the inbox of someone with nothing assigned, on `server` whose
/// database holds `waiting` runs that wait for others (the case where an inbox that filtered
/// the waiting runs would read them all; the store's assignee index finds none at once). The
/// floor is the inbox with everything waiting shown (`?all=1`), which reads one page.
pub(super) async fn inbox_of_no_one(
    server: &Server,
    token: &str,
    waiting: usize,
    sizes: Sizes,
    figures: &mut BTreeMap<&'static str, Figure>,
) -> Result<()> {
    let browser = Browser::sign_in(server, token).await?;
    let requests = sizes.requests.div_ceil(20).max(5);
    let mut mine = sequential(requests, || browser.page("/ui/inbox", "Inbox (0)")).await?;
    let title = if waiting > INBOX_COUNT {
        format!("Inbox ({INBOX_COUNT}+)")
    } else {
        format!("Inbox ({waiting})")
    };
    let mut all = sequential(requests, || browser.page("/ui/inbox?all=1", &title)).await?;
    figures.insert(
        "ui_inbox_ms_all_waiting",
        Figure::new(
            ms(percentile(&mut mine, 50)),
            "ms",
            ms(percentile(&mut all, 50)),
            "the inbox of everything waiting (one page)",
        )
        .with("p99_ms", ms(percentile(&mut mine, 99)))
        .with("waiting_runs_in_db", waiting as f64),
    );
    Ok(())
}
