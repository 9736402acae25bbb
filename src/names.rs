//! Validated names. Each is checked once, where it enters the system, so the rest of the code
//! can trust it.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A step's unique name within a workflow (Keyfactor's UniqueName), such as `RequireApproval1`.
/// Letters, digits, `_` and `-`, starting with a letter, at most 64 characters: it is used in
/// signal keys (`Step.SignalType`) and expressions (`steps.Step.output`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(try_from = "String", into = "String")]
pub struct StepName(String);

impl StepName {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this names an item of a `for_each` step rather than a step.
    pub fn is_item(&self) -> bool {
        self.0.ends_with(']')
    }
}

impl StepName {
    /// The name of item `index` of this (`for_each`) step: `Step[3]`, as signals and timers
    /// name it.
    pub fn item(&self, index: usize) -> StepName {
        StepName(format!("{}[{index}]", self.0))
    }
}

impl TryFrom<String> for StepName {
    type Error = String;
    /// Accepts a step name, or an item's (`Step[3]`, see [`StepName::item`]): records hold
    /// both. A definition's step names are checked to be plain (see
    /// [`StepName::is_item`]).
    fn try_from(name: String) -> Result<Self, String> {
        if let Some((base, rest)) = name.split_once('[') {
            let index_ok = rest
                .strip_suffix(']')
                .is_some_and(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()));
            if index_ok && StepName::try_from(base.to_owned()).is_ok() {
                return Ok(StepName(name));
            }
        }
        let mut chars = name.chars();
        let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
        let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if starts_with_letter && rest_ok && name.len() <= 64 {
            Ok(StepName(name))
        } else {
            Err(format!(
                "invalid step name {name:?}: use a letter followed by letters, digits, `_` or `-` (at most 64)"
            ))
        }
    }
}

impl From<StepName> for String {
    fn from(name: StepName) -> String {
        name.0
    }
}

impl fmt::Display for StepName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a step names its plugin: `approval` (latest version), `approval@0.1.0`, or a content
/// digest `sha256:<64 hex>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum PluginRef {
    Latest(String),
    Version(String, String),
    Digest(Digest),
}

impl FromStr for PluginRef {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        if text.starts_with("sha256:") {
            return text.parse().map(PluginRef::Digest);
        }
        let valid_name = |n: &str| {
            !n.is_empty()
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        match text.split_once('@') {
            Some((name, version)) if valid_name(name) && valid_name(version) => {
                Ok(PluginRef::Version(name.into(), version.into()))
            }
            None if valid_name(text) => Ok(PluginRef::Latest(text.into())),
            _ => Err(format!(
                "invalid plugin reference {text:?}: use `name`, `name@version` or `sha256:<hex digest>`"
            )),
        }
    }
}

impl TryFrom<String> for PluginRef {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

impl From<PluginRef> for String {
    fn from(r: PluginRef) -> String {
        r.to_string()
    }
}

impl fmt::Display for PluginRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PluginRef::Latest(name) => f.write_str(name),
            PluginRef::Version(name, version) => write!(f, "{name}@{version}"),
            PluginRef::Digest(digest) => digest.fmt(f),
        }
    }
}

/// A content digest, `sha256:<64 lowercase hex>`: the identity of a plugin's bytes or a
/// definition's canonical JSON.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(try_from = "String", into = "String")]
pub struct Digest(String);

impl Digest {
    pub fn of(bytes: &[u8]) -> Self {
        use sha2::{Digest as _, Sha256};
        Digest(format!("sha256:{}", hex::encode(Sha256::digest(bytes))))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Digest {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text.strip_prefix("sha256:") {
            Some(hex) if hex.len() == 64 && hex.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')) => {
                Ok(Digest(text.to_owned()))
            }
            _ => Err(format!(
                "invalid digest {text:?}: expected `sha256:` and 64 lowercase hex digits"
            )),
        }
    }
}

impl TryFrom<String> for Digest {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> String {
        d.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A run (execution) id: a UUIDv7, so ids sort by start time.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(transparent)]
pub struct RunId(uuid::Uuid);

impl RunId {
    pub fn new() -> Self {
        RunId(uuid::Uuid::now_v7())
    }

    /// The UUID itself, for stores that keep it as one.
    pub fn uuid(self) -> uuid::Uuid {
        self.0
    }
}

impl From<uuid::Uuid> for RunId {
    fn from(id: uuid::Uuid) -> RunId {
        RunId(id)
    }
}

impl Default for RunId {
    fn default() -> Self {
        Self::new()
    }
}

impl FromStr for RunId {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        uuid::Uuid::parse_str(text).map(RunId).map_err(|_| {
            format!("invalid run id {text:?}: expected a UUID such as the one `weft run` printed")
        })
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// Longest event name.
pub const MAX_EVENT_NAME: usize = 128;
/// Longest event key, in bytes.
pub const MAX_EVENT_KEY: usize = 256;

/// Checks an event name such as `payment.received`: letters, digits, `.`, `_`, `-` and `:`,
/// starting with a letter, at most [`MAX_EVENT_NAME`] characters.
pub fn check_event_name(name: &str) -> Result<(), String> {
    let ok = name.len() <= MAX_EVENT_NAME
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-:".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid event name {:?}: use a letter followed by letters, digits, `.`, `_`, `-` or `:`, \
             at most {MAX_EVENT_NAME} characters (as in payment.received)",
            crate::limits::clip_to(name, 200)
        ))
    }
}

/// Checks an event key (an order id, a request number): at most [`MAX_EVENT_KEY`] bytes and
/// no control characters.
pub fn check_event_key(key: &str) -> Result<(), String> {
    if key.len() > MAX_EVENT_KEY {
        return Err(format!(
            "the event key is {} bytes; at most {MAX_EVENT_KEY} are accepted",
            key.len()
        ));
    }
    if key.chars().any(char::is_control) {
        return Err(format!(
            "the event key {:?} holds a control character",
            crate::limits::clip_to(key, 200)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_names_are_checked_once() {
        assert!(StepName::try_from("RequireApproval1".to_string()).is_ok());
        assert!(StepName::try_from("1step".to_string()).is_err());
        assert!(StepName::try_from("a.b".to_string()).is_err());
    }

    #[test]
    fn plugin_refs_round_trip() {
        for text in [
            "approval",
            "approval@0.1.0",
            &format!("sha256:{}", "a".repeat(64)),
        ] {
            assert_eq!(text.parse::<PluginRef>().unwrap().to_string(), text);
        }
        assert!("a@".parse::<PluginRef>().is_err());
        assert!("sha256:xyz".parse::<PluginRef>().is_err());
    }
}
