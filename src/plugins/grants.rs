//! What a plugin may reach beyond its sandbox, granted in `weft.toml` (read by
//! [`crate::config`]) per plugin name, or per `name@version`. A grant follows the name and
//! version a step or target declared, never the bytes: the same component uploaded under an
//! ungranted name gets nothing.
//! outbound HTTP to listed hosts and methods, named secrets, environment variables, and
//! tighter limits. Without a grant a plugin reaches nothing.
//!
//! ```toml
//! [secrets]
//! api_token = { env = "API_TOKEN" }      # or { value = "..." }
//!
//! [plugins.http-request]
//! http = ["GET 127.0.0.1:8081", "POST api.example.com"]   # METHOD host[:port], or host[:port]
//! secrets = ["api_token"]
//! env = { REGION = "eu" }
//! memory_mb = 64
//! max_output_kb = 512
//! max_concurrent = 4
//! ```

use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Where a secret's value comes from: given in the file, or read from an environment variable.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
pub(crate) enum SecretSource {
    Value(String),
    Env(String),
}

/// One plugin's section of `weft.toml`, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GrantFile {
    #[serde(default)]
    http: Vec<String>,
    #[serde(default)]
    secrets: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    memory_mb: Option<usize>,
    max_output_kb: Option<usize>,
    max_concurrent: Option<usize>,
}

/// One allowed kind of outbound request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpRule {
    /// `None` allows every method.
    method: Option<http::Method>,
    host: String,
    /// `None` allows every port.
    port: Option<u16>,
}

impl HttpRule {
    fn parse(text: &str) -> Result<HttpRule> {
        let (method, target) = match text.trim().split_once(' ') {
            Some((m, t)) => (
                Some(
                    m.parse::<http::Method>()
                        .map_err(|_| anyhow!("bad method {m:?}"))?,
                ),
                t.trim(),
            ),
            None => (None, text.trim()),
        };
        let authority: http::uri::Authority = target
            .parse()
            .map_err(|_| anyhow!("{target:?} is not a host or host:port"))?;
        Ok(HttpRule {
            method,
            host: authority.host().to_ascii_lowercase(),
            port: authority.port_u16(),
        })
    }

    pub fn allows(&self, method: &http::Method, host: &str, port: Option<u16>) -> bool {
        self.method.as_ref().is_none_or(|m| m == method)
            && self.host.eq_ignore_ascii_case(host)
            && self.port.is_none_or(|p| Some(p) == port)
    }
}

/// Everything one plugin is granted.
#[derive(Clone, Debug, Default)]
pub struct Grant {
    pub http: Vec<HttpRule>,
    /// Secret names and their values.
    pub secrets: HashMap<String, String>,
    pub env: Vec<(String, String)>,
    pub memory_bytes: Option<usize>,
    pub max_output_bytes: Option<usize>,
    /// Bounds this plugin's calls under way at once.
    pub concurrency: Option<Arc<Semaphore>>,
}

/// Grants by plugin name.
#[derive(Clone, Debug, Default)]
pub struct Grants {
    by_plugin: HashMap<String, Grant>,
}

impl Grants {
    /// Builds the grants from `weft.toml`'s `[secrets]` and `[plugins.*]` sections; every
    /// problem names the key.
    pub(crate) fn from_file(
        file_secrets: BTreeMap<String, SecretSource>,
        plugins: BTreeMap<String, GrantFile>,
    ) -> Result<Grants> {
        let mut secrets = HashMap::new();
        for (name, source) in file_secrets {
            let value = match source {
                SecretSource::Value(v) => v,
                SecretSource::Env(var) => std::env::var(&var)
                    .map_err(|_| anyhow!("secrets.{name}: environment variable {var} is not set"))?,
            };
            secrets.insert(name, value);
        }
        let mut by_plugin = HashMap::new();
        for (plugin, grant) in plugins {
            let http = grant
                .http
                .iter()
                .enumerate()
                .map(|(i, rule)| HttpRule::parse(rule).with_context(|| format!("plugins.{plugin}.http[{i}]")))
                .collect::<Result<Vec<_>>>()?;
            let mut granted = HashMap::new();
            for name in grant.secrets {
                let Some(value) = secrets.get(&name) else {
                    bail!("plugins.{plugin}.secrets: no secret {name} under [secrets]");
                };
                granted.insert(name, value.clone());
            }
            let grant = Grant {
                http,
                secrets: granted,
                env: grant.env.into_iter().collect(),
                memory_bytes: grant.memory_mb.map(|mb| mb << 20),
                max_output_bytes: grant.max_output_kb.map(|kb| kb << 10),
                concurrency: grant.max_concurrent.map(|n| Arc::new(Semaphore::new(n.max(1)))),
            };
            by_plugin.insert(plugin, grant);
        }
        Ok(Grants { by_plugin })
    }

    /// The grant of the plugin declared as `name@version`: the one configured for exactly
    /// that version (`[plugins."name@version"]`), else the one for the name; nothing unless
    /// configured.
    pub fn of(&self, declared_as: &str) -> Grant {
        let name = declared_as.split_once('@').map_or(declared_as, |(name, _)| name);
        self.by_plugin
            .get(declared_as)
            .or_else(|| self.by_plugin.get(name))
            .cloned()
            .unwrap_or_default()
    }
}

/// Replaces every granted secret value in `text` with a mask, so a plugin cannot leak one
/// into logs, outputs or errors.
pub fn scrub(text: &str, secrets: &HashMap<String, String>) -> String {
    let mut out = text.to_owned();
    for value in secrets.values().filter(|v| !v.is_empty()) {
        out = out.replace(value.as_str(), "********");
        // The JSON-escaped form too, as it appears inside JSON output.
        let escaped = serde_json::to_string(value).unwrap_or_default();
        let escaped = escaped.trim_matches('"');
        if escaped != value {
            out = out.replace(escaped, "********");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_method_host_and_port() {
        let rule = HttpRule::parse("GET 127.0.0.1:8081").unwrap();
        assert!(rule.allows(&http::Method::GET, "127.0.0.1", Some(8081)));
        assert!(!rule.allows(&http::Method::POST, "127.0.0.1", Some(8081)));
        assert!(!rule.allows(&http::Method::GET, "127.0.0.1", Some(8082)));
        let any = HttpRule::parse("api.example.com").unwrap();
        assert!(any.allows(&http::Method::DELETE, "API.example.com", Some(443)));
    }

    #[test]
    fn unknown_secrets_are_named() {
        let err = crate::config::Config::parse("[plugins.x]\nsecrets = [\"nope\"]\n").unwrap_err();
        assert!(err.to_string().contains("no secret nope"), "{err}");
    }

    #[test]
    fn secrets_are_scrubbed() {
        let secrets = HashMap::from([("t".to_owned(), "s3\"cr".to_owned())]);
        assert_eq!(
            scrub(r#"{"a":"s3\"cr"} s3"cr"#, &secrets),
            r#"{"a":"********"} ********"#
        );
    }
}
