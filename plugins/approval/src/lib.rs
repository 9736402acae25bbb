//! `approval`: waits until enough people approve, or enough deny (Keyfactor's approval step).
//!
//! Input (all optional):
//!
//! ```json
//! {"approvers": ["alice", "bob", "group:pki-admins"], "min_approvals": 1, "deny_limit": 1,
//!  "self_approval": true, "expires_in": "2d", "on_expiry": "fail",
//!  "prompt": "Approve this request?"}
//! ```
//!
//! `approvers` empty means anyone may answer. `expires_in` is whole seconds or a duration such
//! as `"30s"`, `"5m"`, `"2h"`, `"1d"`; `on_expiry` is `fail`, `approve` or `reject`, or
//! `{"escalate_to": ["group:managers"], "expires_in": "1d", "then": "fail"}` to hand the
//! approval to other people when it expires (once; `then` decides when that expires too).
//!
//! The step suspends with an `ApprovalStatus` form of `Approved` (boolean; `"True"`/`"False"`
//! strings are accepted too) and `Comment` (string, optional). Each person counts once. When
//! `min_approvals` people have approved the step completes; when `deny_limit` people have
//! denied it the run is rejected; otherwise it keeps waiting. The output (or rejection) is:
//!
//! ```json
//! {"approved": true, "approvals": [{"by": "alice", "at": "2026-11-22T10:00:00Z", "comment": ""}],
//!  "denials": [], "min_approvals": 1, "deny_limit": 1, "expired": false}
//! ```

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use weft_plugin_sdk::{
    export_step, json, Answer, Context, Field, FieldType, Interaction, Outcome, ResumeEvent, Step, Value,
};

const SIGNAL: &str = "ApprovalStatus";

/// Who may approve, how many must, and what happens when nobody answers in time.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Users, or groups as `group:NAME`, who may answer; empty means anyone.
    #[serde(default)]
    approvers: Vec<String>,
    /// Distinct people who must approve.
    #[serde(default = "one")]
    #[schemars(range(min = 1))]
    min_approvals: u32,
    /// Distinct people whose denial rejects the run.
    #[serde(default = "one")]
    #[schemars(range(min = 1))]
    deny_limit: u32,
    /// Whether the person who started the run may approve it.
    #[serde(default = "yes")]
    self_approval: bool,
    #[serde(default, deserialize_with = "weft_plugin_sdk::seconds")]
    #[schemars(schema_with = "weft_plugin_sdk::seconds_schema")]
    expires_in: Option<u64>,
    #[serde(default)]
    on_expiry: OnExpiry,
    /// The question shown to the approvers.
    #[serde(default = "default_prompt")]
    prompt: String,
}

fn one() -> u32 {
    1
}

fn yes() -> bool {
    true
}

fn default_prompt() -> String {
    "Approve this request?".into()
}

/// What happens when the approval expires: a decision, or handing it to other people.
#[derive(Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
enum OnExpiry {
    Decide(Decision),
    Escalate(Escalation),
}

impl Default for OnExpiry {
    fn default() -> Self {
        OnExpiry::Decide(Decision::Fail)
    }
}

/// What an expired approval decides.
#[derive(Clone, Copy, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum Decision {
    #[default]
    Fail,
    Approve,
    Reject,
}

/// `on_expiry: {escalate_to: [group:managers], expires_in: 1d, then: fail}`: the approval is
/// handed to `escalate_to` (votes so far still count) with a new expiry; when that expires
/// too, `then` decides.
#[derive(Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Escalation {
    /// Users, or groups as `group:NAME`, the approval is handed to.
    escalate_to: Vec<String>,
    #[serde(default, deserialize_with = "weft_plugin_sdk::seconds")]
    #[schemars(schema_with = "weft_plugin_sdk::seconds_schema")]
    expires_in: Option<u64>,
    /// What is decided when the escalated approval expires too.
    #[serde(default)]
    then: Decision,
}

impl Config {
    fn validate(&self) -> Result<(), String> {
        if self.min_approvals == 0 {
            return Err("min_approvals must be at least 1".into());
        }
        if self.deny_limit == 0 {
            return Err("deny_limit must be at least 1".into());
        }
        if matches!(&self.on_expiry, OnExpiry::Escalate(e) if e.escalate_to.is_empty()) {
            return Err("on_expiry.escalate_to must name who the approval goes to".into());
        }
        // With a group among the approvers, how many people may answer is the host's to know.
        let people = self.approvers.len();
        if people > 0 && !self.has_groups() && self.min_approvals as usize > people {
            return Err(format!(
                "min_approvals is {} but only {people} approvers are listed, so the step could never be approved",
                self.min_approvals
            ));
        }
        Ok(())
    }

    fn has_groups(&self) -> bool {
        self.approvers.iter().any(|a| a.starts_with("group:"))
    }
}

/// What the step remembers while it waits.
#[derive(Serialize, Deserialize)]
struct State {
    config: Config,
    #[serde(default)]
    escalated: bool,
    approvals: Vec<Vote>,
    denials: Vec<Vote>,
}

#[derive(Clone, Serialize, Deserialize, JsonSchema)]
struct Vote {
    by: String,
    at: String,
    comment: String,
}

impl State {
    fn request(self) -> Outcome {
        Outcome::Suspend(Interaction {
            prompt: self.config.prompt.clone(),
            fields: form().into(),
            assignees: self.config.approvers.clone(),
            signal_types: vec![SIGNAL.into()],
            expires_in: self.config.expires_in,
            state: json!(self),
        })
    }

    fn record(&self, approved: bool, expired: bool) -> Value {
        json!(Verdict {
            approved,
            approvals: self.approvals.clone(),
            denials: self.denials.clone(),
            min_approvals: self.config.min_approvals,
            deny_limit: self.config.deny_limit,
            expired,
        })
    }

    /// Checks and counts one answer; `Err` is the reason it is refused.
    fn count(&mut self, ctx: &Context, answer: Answer) -> Result<(), String> {
        if answer.signal_type != SIGNAL {
            return Err(format!(
                "this step accepts {SIGNAL} signals, not {}",
                answer.signal_type
            ));
        }
        let [approved_field, comment_field] = form();
        let approved = answer.data.get("Approved").unwrap_or(&Value::Null);
        let approved = approved_field.coerce(approved)? == Value::Bool(true);
        let comment = match answer.data.get("Comment") {
            None | Some(Value::Null) => String::new(),
            Some(comment) => comment_field.coerce(comment)?.as_str().unwrap_or_default().into(),
        };
        let who = answer.answered_by;
        // Who may answer (approvers, groups, admins) is checked by the host before the
        // plugin is called.
        if !self.config.self_approval && who == ctx.started_by {
            return Err(format!(
                "{who} started this run and may not approve it (self_approval is false)"
            ));
        }
        if self.approvals.iter().chain(&self.denials).any(|v| v.by == who) {
            return Err(format!("{who} has already answered; each approver counts once"));
        }
        let vote = Vote {
            by: who,
            at: answer.answered_at,
            comment,
        };
        if approved {
            self.approvals.push(vote);
        } else {
            self.denials.push(vote);
        }
        Ok(())
    }
}

/// The step's output (or rejection): the decision and who made it.
#[derive(Serialize, JsonSchema)]
struct Verdict {
    approved: bool,
    approvals: Vec<Vote>,
    denials: Vec<Vote>,
    min_approvals: u32,
    deny_limit: u32,
    expired: bool,
}

/// The form a person fills in, as Keyfactor's ApprovalStatus signal carries it.
fn form() -> [Field; 2] {
    [
        Field {
            name: "Approved".into(),
            field_type: FieldType::Boolean,
            description: "Whether you approve".into(),
            required: true,
            choices: Vec::new(),
            default: None,
        },
        Field {
            name: "Comment".into(),
            field_type: FieldType::String,
            description: "Why (optional)".into(),
            required: false,
            choices: Vec::new(),
            default: Some(json!("")),
        },
    ]
}

struct Approval;

impl Step for Approval {
    const SUMMARY: &'static str = "Waits until enough people approve, or enough deny";
    type Input = Config;
    type Output = Verdict;

    fn run(_ctx: &Context, config: Config) -> Outcome {
        if let Err(problem) = config.validate() {
            return Outcome::fail(format!("invalid input: {problem}"));
        }
        State {
            config,
            escalated: false,
            approvals: Vec::new(),
            denials: Vec::new(),
        }
        .request()
    }

    fn resume(ctx: &Context, state: Value, event: ResumeEvent) -> Outcome {
        let mut state: State = match serde_json::from_value(state) {
            Ok(state) => state,
            Err(e) => return Outcome::fail(format!("invalid approval state: {e}")),
        };
        let config = &state.config;
        match event {
            ResumeEvent::Expired => {
                let decision = match config.on_expiry.clone() {
                    OnExpiry::Escalate(escalation) if !state.escalated => {
                        state.escalated = true;
                        state.config.approvers = escalation.escalate_to;
                        state.config.expires_in = escalation.expires_in;
                        return state.request();
                    }
                    OnExpiry::Escalate(escalation) => escalation.then,
                    OnExpiry::Decide(decision) => decision,
                };
                match decision {
                    Decision::Fail => Outcome::fail(format!(
                        "the approval expired with {} of {} approvals; set on_expiry to approve or reject to decide automatically",
                        state.approvals.len(),
                        state.config.min_approvals
                    )),
                    Decision::Approve => Outcome::Complete(state.record(true, true)),
                    Decision::Reject => Outcome::Reject(state.record(false, true)),
                }
            }
            ResumeEvent::Answer(answer) => {
                if let Err(problem) = state.count(ctx, answer) {
                    return Outcome::InvalidAnswer(problem);
                }
                if state.approvals.len() >= state.config.min_approvals as usize {
                    Outcome::Complete(state.record(true, false))
                } else if state.denials.len() >= state.config.deny_limit as usize {
                    Outcome::Reject(state.record(false, false))
                } else {
                    state.request()
                }
            }
        }
    }
}

export_step!(Approval);
