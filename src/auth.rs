//! Who may do what: API tokens, roles and the actions they allow.
//!
//! A token is shown once when it is created; the store keeps only its SHA-256, so a stolen
//! database gives no usable tokens. Every request looks its token up afresh, so revoking one
//! takes effect at once.

use crate::names::Digest;
use crate::run::RunRecord;
use serde::{Deserialize, Serialize};
use std::fmt;
use time::OffsetDateTime;

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything.
    Admin,
    /// Uploads plugins and workflows.
    Author,
    /// Starts, cancels, restarts and reads runs.
    Operator,
    /// Reads and answers interactions assigned to them.
    Approver,
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        serde_json::from_value(serde_json::Value::String(text.to_ascii_lowercase()))
            .map_err(|_| format!("unknown role {text:?}: use admin, author, operator or approver"))
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Admin => "admin",
            Role::Author => "author",
            Role::Operator => "operator",
            Role::Approver => "approver",
        })
    }
}

/// Something a request does, checked against the caller's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    ReadPlugins,
    WritePlugins,
    ReadWorkflows,
    WriteWorkflows,
    StartRuns,
    ReadRuns,
    /// Cancel, delete and restart runs.
    ManageRuns,
    ReadInteractions,
    AnswerInteractions,
    ManageTokens,
    ReadAudit,
    /// Create, change and read action targets, execution rules, the outbox and actions log.
    ManageActions,
    /// Read and change what plugins are granted.
    ManageGrants,
    /// See the runners sharing the database.
    ReadRunners,
    /// Send events to `POST /v1/events`.
    SendEvents,
    ReadSchedules,
    /// Create, pause, resume and delete schedules.
    ManageSchedules,
    /// Read the Prometheus metrics.
    ReadMetrics,
}

impl Action {
    /// Words for error messages: "role approver may not {describe}".
    pub fn describe(self) -> &'static str {
        match self {
            Action::ReadPlugins => "read plugins",
            Action::WritePlugins => "upload or delete plugins",
            Action::ReadWorkflows => "read workflows",
            Action::WriteWorkflows => "create or delete workflows",
            Action::StartRuns => "start runs",
            Action::ReadRuns => "read runs",
            Action::ManageRuns => "cancel, delete or restart runs",
            Action::ReadInteractions => "read interactions",
            Action::AnswerInteractions => "answer interactions",
            Action::ManageTokens => "manage tokens",
            Action::ReadAudit => "read the audit log",
            Action::ManageActions => "manage actions (targets and execution rules)",
            Action::ManageGrants => "manage plugin grants",
            Action::ReadRunners => "list runners",
            Action::SendEvents => "send events",
            Action::ReadSchedules => "read schedules",
            Action::ManageSchedules => "create, pause, resume or delete schedules",
            Action::ReadMetrics => "read the metrics",
        }
    }
}

impl Role {
    /// Whether this role may do `action` at all. Approvers are further limited to what is
    /// assigned to them; see [`Principal::may_read_run`].
    pub fn allows(self, action: Action) -> bool {
        use Action::*;
        match self {
            Role::Admin => true,
            Role::Author => matches!(
                action,
                ReadPlugins | WritePlugins | ReadWorkflows | WriteWorkflows
            ),
            Role::Operator => matches!(
                action,
                ReadPlugins
                    | ReadWorkflows
                    | StartRuns
                    | ReadRuns
                    | ManageRuns
                    | ReadInteractions
                    | SendEvents
                    | ReadSchedules
                    | ManageSchedules
                    | ReadMetrics
            ),
            Role::Approver => matches!(action, ReadRuns | ReadInteractions | AnswerInteractions),
        }
    }
}

/// A stored token: its owner and roles, never the secret itself.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(from = "StoredToken")]
pub struct TokenRecord {
    pub id: String,
    pub name: String,
    /// Every role the token holds (at least one, in a fixed order, without repeats); it may
    /// do what any of them allows.
    pub roles: Vec<Role>,
    pub groups: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<OffsetDateTime>,
}

/// A token as stored: tokens created before a token could hold several roles have `role`.
#[derive(Deserialize)]
struct StoredToken {
    id: String,
    name: String,
    #[serde(default)]
    role: Option<Role>,
    #[serde(default)]
    roles: Vec<Role>,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    revoked_at: Option<OffsetDateTime>,
}

impl From<StoredToken> for TokenRecord {
    fn from(stored: StoredToken) -> TokenRecord {
        TokenRecord {
            id: stored.id,
            name: stored.name,
            roles: normalize_roles(stored.role.into_iter().chain(stored.roles).collect()),
            groups: stored.groups,
            created_at: stored.created_at,
            revoked_at: stored.revoked_at,
        }
    }
}

/// `roles` in a fixed order (admin, author, operator, approver), each once.
pub fn normalize_roles(mut roles: Vec<Role>) -> Vec<Role> {
    roles.sort_by_key(|r| *r as u8);
    roles.dedup();
    roles
}

/// Roles for messages and listings: `operator+approver`.
pub fn describe_roles(roles: &[Role]) -> String {
    roles.iter().map(Role::to_string).collect::<Vec<_>>().join("+")
}

/// The prefix of every token, so a leaked one is recognizable.
const PREFIX: &str = "weft_";

/// A new token: the secret to show once, and the hash to store.
pub fn new_secret() -> anyhow::Result<(String, String)> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness for a token: {e}"))?;
    let secret = format!("{PREFIX}{}", hex::encode(bytes));
    let hash = hash(&secret);
    Ok((secret, hash))
}

/// The stored form of a token.
pub fn hash(secret: &str) -> String {
    Digest::of(secret.as_bytes()).to_string()
}

/// Checks a presented token's shape before it is looked up.
pub fn well_formed(secret: &str) -> bool {
    secret
        .strip_prefix(PREFIX)
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// An authenticated caller.
#[derive(Clone, Debug)]
pub struct Principal {
    pub name: String,
    /// At least one role; the caller may do what any of them allows.
    pub roles: Vec<Role>,
    pub groups: Vec<String>,
    /// The token's id; `None` in local mode.
    pub token: Option<String>,
    /// Local mode: an admin for permissions, but answering only as an assignee.
    pub local: bool,
}

impl Principal {
    /// The holder of `token` (checked already: known and not revoked).
    pub fn of_token(token: TokenRecord) -> Principal {
        Principal {
            name: token.name,
            roles: token.roles,
            groups: token.groups,
            token: Some(token.id),
            local: false,
        }
    }

    /// Whether the caller holds `role`.
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// Whether any of the caller's roles allows `action`.
    pub fn allows(&self, action: Action) -> bool {
        self.roles.iter().any(|r| r.allows(action))
    }

    /// Whether the caller reads runs only as an approver: only the runs assigned to them.
    pub fn reads_assigned_only(&self) -> bool {
        self.has(Role::Approver)
            && !self
                .roles
                .iter()
                .any(|r| *r != Role::Approver && r.allows(Action::ReadRuns))
    }

    /// The person this caller answers as. Only admins and approvers may answer, and an
    /// approver (whatever other roles the token has) answers only what is assigned to them.
    pub fn person(&self) -> crate::engine::Person {
        let admin = self.has(Role::Admin);
        crate::engine::Person {
            name: self.name.clone(),
            groups: self.groups.clone(),
            admin: admin && !self.local,
            assigned_only: !admin,
        }
    }

    /// Whether this caller may see `run`: every role that reads runs sees all of them, but an
    /// approver only sees runs with a step assigned to them (waiting now or before) or
    /// answered by them.
    pub fn may_read_run(&self, run: &RunRecord) -> bool {
        if !self.reads_assigned_only() {
            return self.allows(Action::ReadRuns);
        }
        let person = self.person();
        run.units().filter_map(|u| run.record(u)).any(|s| {
            s.answers.iter().any(|a| a.answered_by == self.name)
                || (!s.asked.is_empty() && person.may_answer(&s.asked))
                || s.waiting
                    .as_ref()
                    .is_some_and(|w| !w.assignees.is_empty() && person.may_answer(&w.assignees))
        })
    }
}

/// An audit log entry: who (`None` when nobody could be authenticated) did `action` to
/// `target`, and the HTTP status it ended with. The API and the browser UI record the same
/// shape.
pub fn audit_entry(who: Option<&Principal>, action: &str, target: &str, outcome: u16) -> serde_json::Value {
    serde_json::json!({
        "at": crate::run::rfc3339(crate::run::now()),
        "token": who.and_then(|p| p.token.clone()),
        "name": who.map(|p| p.name.clone()),
        "role": who.map(|p| describe_roles(&p.roles)),
        "action": action,
        "target": target,
        "outcome": outcome,
    })
}
