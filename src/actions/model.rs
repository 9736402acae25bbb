//! What actions are made of: targets, conditions and execution rules, in the JSON shapes of
//! ZITADEL Actions v2 (`{"request": {"method": ...}}`, `{"target": ID}`, `{"include": ...}`).
//!
//! Every value here is checked when it is built, so the rest of the module can trust it: a
//! condition has exactly one kind and one scope, a target's timeout is within bounds and an
//! async target never interrupts. Which methods, events and functions exist is checked by
//! the callers that know them (the API's operation table, [`super::events`]).

use crate::names::{Digest, PluginRef};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;
use std::time::Duration;
use time::OffsetDateTime;

/// The longest a target may be given; a hook holds up whatever triggered it.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(300);
/// A target's timeout when none is given.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest name, method, service, event or function accepted (as in ZITADEL).
const MAX_TEXT: usize = 1000;

/// How a target's result affects the targets after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TargetType {
    /// Waits; a returned payload replaces the payload for every later target.
    #[serde(alias = "restCall")]
    Call,
    /// Waits; only success or failure matters.
    #[serde(alias = "restWebhook")]
    Webhook,
    /// Fire and forget: never waited for, never interrupts; its result is only logged.
    #[serde(alias = "restAsync")]
    Async,
}

/// A WASM component to call, with how to call it.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Target {
    pub id: String,
    pub name: String,
    /// The plugin as it was named (`name`, `name@version` or a digest).
    #[schema(value_type = String)]
    pub plugin: PluginRef,
    /// The component the name resolved to when the target was saved; calls use this one.
    pub digest: Digest,
    /// The `name@version` the plugin resolved to when the target was saved: whose grant its
    /// calls get. `None` for a plugin named by digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declared_as: Option<String>,
    #[serde(rename = "type")]
    pub kind: TargetType,
    /// Such as `10s`.
    #[serde(with = "humantime_serde")]
    #[schema(value_type = String)]
    pub timeout: Duration,
    pub interrupt_on_error: bool,
    /// What this target may do, handed to the plugin with every payload.
    #[schema(value_type = Object)]
    pub config: Map<String, Value>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub changed_at: OffsetDateTime,
}

/// The body of `POST /v1/actions/targets`, and of `PUT`, where every field is optional and a
/// field left out keeps its value.
#[derive(Clone, Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    pub name: Option<String>,
    /// `name`, `name@version` or a digest.
    #[schema(value_type = Option<String>)]
    pub plugin: Option<PluginRef>,
    #[serde(rename = "type")]
    pub kind: Option<TargetType>,
    /// Such as `10s`; at most `5m`.
    #[serde(default, with = "humantime_serde")]
    #[schema(value_type = Option<String>)]
    pub timeout: Option<Duration>,
    #[serde(alias = "interruptOnError")]
    pub interrupt_on_error: Option<bool>,
    #[schema(value_type = Option<Object>)]
    pub config: Option<Map<String, Value>>,
}

impl Target {
    /// Checks the fields that do not need the catalog (the plugin is checked by the caller).
    pub fn check(&self) -> Result<(), String> {
        let name = self.name.trim();
        if name.is_empty() || name.len() > MAX_TEXT || name != self.name {
            return Err(format!(
                "name: {:?} must be 1 to {MAX_TEXT} characters without leading or trailing spaces",
                self.name
            ));
        }
        if self.timeout.is_zero() || self.timeout > MAX_TIMEOUT {
            return Err(format!(
                "timeout: {} is out of range; give a duration from 1ms to {}, such as \"10s\"",
                humantime::format_duration(self.timeout),
                humantime::format_duration(MAX_TIMEOUT)
            ));
        }
        if self.kind == TargetType::Async && self.interrupt_on_error {
            return Err(
                "interrupt_on_error: an async target is never waited for, so it cannot interrupt; \
                 use type call or webhook, or set interrupt_on_error to false"
                    .into(),
            );
        }
        Ok(())
    }
}

/// Which API calls a request or response condition covers.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ApiScope {
    /// One operation, such as `/v1.Executions/Start`.
    Method(String),
    /// Every operation of a service, such as `v1.Executions`.
    Service(String),
    All,
}

/// Which events an event condition covers.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum EventScope {
    /// One event, such as `execution.completed`.
    Event(String),
    /// Every event of a group, such as `execution`.
    Group(String),
    All,
}

/// When an execution rule applies.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "ConditionJson", into = "ConditionJson")]
pub enum Condition {
    /// Before an API operation is handled.
    Request(ApiScope),
    /// After an API operation was handled, before the answer leaves.
    Response(ApiScope),
    /// After an event was committed.
    Event(EventScope),
    /// At a named hook point inside the engine, such as `pre_start`.
    Function(String),
}

/// What kind of condition, for searches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConditionKind {
    Request,
    Response,
    Event,
    Function,
}

impl Condition {
    /// The rule's key in the store and in messages: `request:method:/v1.Executions/Start`,
    /// `event:group:execution`, `function:pre_start`.
    pub fn key(&self) -> String {
        let api = |scope: &ApiScope| match scope {
            ApiScope::Method(m) => format!("method:{m}"),
            ApiScope::Service(s) => format!("service:{s}"),
            ApiScope::All => "all".into(),
        };
        match self {
            Condition::Request(scope) => format!("request:{}", api(scope)),
            Condition::Response(scope) => format!("response:{}", api(scope)),
            Condition::Event(EventScope::Event(e)) => format!("event:event:{e}"),
            Condition::Event(EventScope::Group(g)) => format!("event:group:{g}"),
            Condition::Event(EventScope::All) => "event:all".into(),
            Condition::Function(name) => format!("function:{name}"),
        }
    }

    pub fn kind(&self) -> ConditionKind {
        match self {
            Condition::Request(_) => ConditionKind::Request,
            Condition::Response(_) => ConditionKind::Response,
            Condition::Event(_) => ConditionKind::Event,
            Condition::Function(_) => ConditionKind::Function,
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key())
    }
}

/// The JSON form of a condition: exactly one of the four fields.
#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConditionJson {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    request: Option<ScopeJson>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    response: Option<ScopeJson>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    event: Option<EventJson>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    function: Option<FunctionJson>,
}

#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScopeJson {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    all: Option<bool>,
}

#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventJson {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    event: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    all: Option<bool>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FunctionJson {
    name: String,
}

/// Checks a method, service, event, group or function name.
fn text(field: &str, value: String) -> Result<String, String> {
    if value.is_empty() || value.len() > MAX_TEXT {
        return Err(format!("{field}: must be 1 to {MAX_TEXT} characters"));
    }
    Ok(value)
}

/// Exactly one of three scope fields, with `all` only ever `true`.
fn one_scope<T>(
    kind: &str,
    named: [(&str, Option<String>); 2],
    all: Option<bool>,
    make: [fn(String) -> T; 2],
    every: T,
) -> Result<T, String> {
    let [(first, a), (second, b)] = named;
    match (a, b, all) {
        (Some(a), None, None) => text(&format!("{kind}.{first}"), a).map(make[0]),
        (None, Some(b), None) => text(&format!("{kind}.{second}"), b).map(make[1]),
        (None, None, Some(true)) => Ok(every),
        (None, None, Some(false)) => Err(format!(
            "{kind}.all: must be true; to match something narrower give {kind}.{first} or {kind}.{second}"
        )),
        _ => Err(format!(
            "{kind}: set exactly one of {first}, {second} or all (true)"
        )),
    }
}

impl TryFrom<ConditionJson> for Condition {
    type Error = String;

    fn try_from(json: ConditionJson) -> Result<Self, String> {
        let api = |kind: &str, s: ScopeJson| {
            one_scope(
                kind,
                [("method", s.method), ("service", s.service)],
                s.all,
                [ApiScope::Method, ApiScope::Service],
                ApiScope::All,
            )
        };
        match (json.request, json.response, json.event, json.function) {
            (Some(s), None, None, None) => api("request", s).map(Condition::Request),
            (None, Some(s), None, None) => api("response", s).map(Condition::Response),
            (None, None, Some(e), None) => one_scope(
                "event",
                [("event", e.event), ("group", e.group)],
                e.all,
                [EventScope::Event, EventScope::Group],
                EventScope::All,
            )
            .map(Condition::Event),
            (None, None, None, Some(f)) => text("function.name", f.name).map(Condition::Function),
            _ => Err("set exactly one of request, response, event or function".into()),
        }
    }
}

impl From<Condition> for ConditionJson {
    fn from(condition: Condition) -> Self {
        let api = |scope: ApiScope| match scope {
            ApiScope::Method(m) => ScopeJson {
                method: Some(m),
                ..ScopeJson::default()
            },
            ApiScope::Service(s) => ScopeJson {
                service: Some(s),
                ..ScopeJson::default()
            },
            ApiScope::All => ScopeJson {
                all: Some(true),
                ..ScopeJson::default()
            },
        };
        match condition {
            Condition::Request(scope) => ConditionJson {
                request: Some(api(scope)),
                ..ConditionJson::default()
            },
            Condition::Response(scope) => ConditionJson {
                response: Some(api(scope)),
                ..ConditionJson::default()
            },
            Condition::Event(scope) => ConditionJson {
                event: Some(match scope {
                    EventScope::Event(e) => EventJson {
                        event: Some(e),
                        ..EventJson::default()
                    },
                    EventScope::Group(g) => EventJson {
                        group: Some(g),
                        ..EventJson::default()
                    },
                    EventScope::All => EventJson {
                        all: Some(true),
                        ..EventJson::default()
                    },
                }),
                ..ConditionJson::default()
            },
            Condition::Function(name) => ConditionJson {
                function: Some(FunctionJson { name }),
                ..ConditionJson::default()
            },
        }
    }
}

/// One entry of a rule's ordered target list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "EntryJson", into = "EntryJson")]
pub enum Entry {
    /// Call this target (by id).
    Target(String),
    /// Call the targets of the rule with this condition, at this place in the list.
    Include(Condition),
}

#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryJson {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    include: Option<Condition>,
}

impl TryFrom<EntryJson> for Entry {
    type Error = String;

    fn try_from(json: EntryJson) -> Result<Self, String> {
        match (json.target, json.include) {
            (Some(id), None) => Ok(Entry::Target(id)),
            (None, Some(condition)) => Ok(Entry::Include(condition)),
            _ => Err("set exactly one of target (a target id) or include (a condition)".into()),
        }
    }
}

impl From<Entry> for EntryJson {
    fn from(entry: Entry) -> Self {
        match entry {
            Entry::Target(id) => EntryJson {
                target: Some(id),
                include: None,
            },
            Entry::Include(condition) => EntryJson {
                target: None,
                include: Some(condition),
            },
        }
    }
}

/// An execution rule: when `condition` holds, call `targets` in order.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Execution {
    pub condition: Condition,
    pub targets: Vec<Entry>,
    #[serde(with = "time::serde::rfc3339")]
    pub changed_at: OffsetDateTime,
}

/// The body of `PUT /v1/actions/executions` (ZITADEL's SetExecution).
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecutionSpec {
    /// Exactly one of `request`, `response` (each `{"method"}`, `{"service"}` or `{"all":
    /// true}`), `event` (`{"event"}`, `{"group"}` or `{"all": true}`) and `function`
    /// (`{"name"}`).
    #[schema(value_type = Object)]
    pub condition: Condition,
    /// `{"target": ID}` or `{"include": CONDITION}` entries, in call order; empty removes the
    /// rule.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub targets: Vec<Entry>,
}
