//! `notify`: an action target that tells people something waits for them, by POSTing a
//! message to a chat webhook (a Slack incoming webhook, a Microsoft Teams workflow or
//! connector webhook, Mattermost, or any service taking JSON).
//!
//! Wire it to the `interaction.created` event (and, for reminders and escalations,
//! `interaction.reminder` and `interaction.escalated`) with an execution rule; the target's
//! config:
//!
//! ```json
//! {"webhook_url": "https://hooks.slack.com/services/...", "base_url": "https://weft.example.com",
//!  "title": "Weft: waiting for you"}
//! ```
//!
//! `webhook_url` is where the message goes (the plugin needs an HTTP grant for its host, see
//! `weft grant set notify --http "POST hooks.slack.com"`); `base_url` is where people reach
//! `weft serve`, for the link to the inbox item; `title` is optional. For each interaction
//! it POSTs, as `application/json`:
//!
//! ```json
//! {"text": "Issue a certificate for web01? (certificate-request v1, step RequireApproval1,
//!           started by carol; for alice, group:secops; expires 2026-11-24T10:00:00Z)\nOpen: https://weft.example.com/ui/runs/RUN/steps/RequireApproval1",
//!  "title": "Weft: waiting for you", "summary": "...the prompt...",
//!  "prompt": "...", "link": "https://...", "workflow": "certificate-request", "version": 1,
//!  "run": "RUN", "step": "RequireApproval1", "assignees": ["alice", "group:secops"],
//!  "expires_at": "...", "event_id": "..."}
//! ```
//!
//! `text` is what Slack and Teams show (both make the URL a link); `title` and `summary`
//! are Teams' card title and notification text; the other fields are for services that read
//! JSON. A reminder's text starts with `Reminder N:`, an escalation's with `Escalated:`. A
//! status other than 2xx fails the call (the actions log shows it); other events are passed
//! over.

use schemars::JsonSchema;
use serde::Deserialize;
use weft_plugin_sdk::{export_target, json, log, Target, TargetContext, TargetError, Value};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Where the message is POSTed (a Slack incoming webhook, a Teams workflow webhook...).
    #[schemars(url)]
    webhook_url: String,
    /// Where people reach `weft serve`, for the link to the inbox item.
    #[schemars(url)]
    base_url: String,
    /// The message's title.
    #[serde(default = "default_title")]
    title: String,
}

fn default_title() -> String {
    "Weft: waiting for you".into()
}

/// The events this target tells about; the first is the one its messages describe.
const EVENTS: [&str; 3] = ["interaction.created", "interaction.reminder", "interaction.escalated"];
const EVENT: &str = EVENTS[0];

/// The message for an `interaction.created` payload.
fn message(config: &Config, payload: &Value) -> Result<Value, TargetError> {
    let data = &payload["data"];
    let run = &data["run"];
    let text_of = |v: &Value| v.as_str().map(str::to_owned);
    let missing = |what: &str| TargetError::new(format!("the {EVENT} payload has no {what}"));
    let run_id = text_of(&run["id"]).ok_or_else(|| missing("data.run.id"))?;
    let step = text_of(&data["step"]).ok_or_else(|| missing("data.step"))?;
    let prompt = text_of(&data["prompt"]).unwrap_or_default();
    let workflow = text_of(&run["workflow"]).unwrap_or_default();
    let version = run["version"].as_u64();
    let started_by = text_of(&run["started_by"]).unwrap_or_default();
    let assignees: Vec<String> = data["assignees"]
        .as_array()
        .map(|a| a.iter().filter_map(text_of).collect())
        .unwrap_or_default();
    let expires_at = text_of(&data["expires_at"]);
    let link = format!("{}/ui/runs/{run_id}/steps/{step}", config.base_url.trim_end_matches('/'));
    let mut about = vec![match version {
        Some(v) => format!("{workflow} v{v}"),
        None => workflow.clone(),
    }];
    about.push(format!("step {step}"));
    if !started_by.is_empty() {
        about.push(format!("started by {started_by}"));
    }
    let mut details = about.join(", ");
    if !assignees.is_empty() {
        details.push_str(&format!("; for {}", assignees.join(", ")));
    }
    if let Some(at) = &expires_at {
        details.push_str(&format!("; expires {at}"));
    }
    let lead = match (payload["event"].as_str(), data["reminder"].as_u64()) {
        (Some("interaction.reminder"), Some(n)) => format!("Reminder {n}: "),
        (Some("interaction.escalated"), _) => "Escalated: ".to_owned(),
        _ => String::new(),
    };
    let text = format!("{lead}{prompt} ({details})\nOpen: {link}");
    Ok(json!({
        "text": text,
        "title": config.title,
        "summary": prompt,
        "prompt": prompt,
        "link": link,
        "workflow": workflow,
        "version": version,
        "run": run_id,
        "step": step,
        "assignees": assignees,
        "expires_at": expires_at,
        "event_id": payload["id"],
    }))
}

/// The `host:port` part of `url`.
fn authority(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.split(['/', '?', '#']).next().unwrap_or(rest)
}

struct Notify;

impl Target for Notify {
    const SUMMARY: &'static str = "Posts a message about a waiting interaction to a chat webhook (Slack, Teams)";
    type Config = Config;

    fn handle(ctx: &TargetContext, config: Config, payload: Value) -> Result<Option<Value>, TargetError> {
        if !EVENTS.contains(&ctx.trigger.as_str()) {
            log::info(&format!("{} is not an interaction event; nothing to tell", ctx.trigger));
            return Ok(None);
        }
        let body = message(&config, &payload)?;
        let response = waki::Client::new()
            .request(waki::Method::Post, &config.webhook_url)
            .header("content-type", "application/json")
            .body(body.to_string().into_bytes())
            .send()
            .map_err(|e| {
                // The host refuses a host outside the grant. With a body to send, waki sees
                // that as the body's stream closing, not as `HttpRequestDenied`, so both
                // point to the grant (the actions log also shows the host's refusal).
                let message = format!("{e:?}");
                let hint = if message.contains("HttpRequestDenied") || message.contains("Closed") {
                    format!(
                        "; if the actions log says the request was denied, grant this plugin the webhook's host: \
                         weft grant set notify --http \"POST {}\"",
                        authority(&config.webhook_url)
                    )
                } else {
                    String::new()
                };
                TargetError::new(format!("POST {} failed: {message}{hint}", config.webhook_url))
            })?;
        let status = response.status_code();
        if !(200..300).contains(&status) {
            let answer = response.body().unwrap_or_default();
            let answer = String::from_utf8_lossy(&answer);
            let answer: String = answer.chars().take(300).collect();
            return Err(TargetError::new(format!(
                "POST {} answered {status}: {answer}",
                config.webhook_url
            )));
        }
        log::info(&format!(
            "told {} about {} (status {status})",
            config.webhook_url, body["link"]
        ));
        Ok(None)
    }
}

export_target!(Notify);
