//! What a plugin may reach beyond its sandbox: outbound HTTP to listed hosts and methods,
//! named secrets, environment variables, and tighter limits. Without a grant a plugin reaches
//! nothing.
//!
//! Grants live in the store, keyed by plugin name or `name@version`, so every runner applies
//! the same ones; admins manage them over `/v1/grants` and `weft grant`, and `weft.toml` can
//! seed them. A grant follows the name and version a step or target declared, never the bytes:
//! the same component uploaded under an ungranted name gets nothing.
//!
//! Secret values are never stored: a grant names secrets, and each runner reads their values
//! from its own `[secrets]` (inline, an environment variable, or a file).
//!
//! ```toml
//! [secrets]
//! api_token = { env = "API_TOKEN" }      # or { value = "..." }, or { file = "/run/secrets/t" }
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
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use time::OffsetDateTime;
use tokio::sync::Semaphore;

/// Where a secret's value comes from on this runner.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
pub(crate) enum SecretSource {
    Value(String),
    Env(String),
    File(std::path::PathBuf),
}

/// This runner's secret values, by name.
#[derive(Clone, Debug, Default)]
pub struct Secrets(HashMap<String, String>);

impl Secrets {
    /// Reads every source of `weft.toml`'s `[secrets]`; a problem names the secret.
    pub(crate) fn read(sources: BTreeMap<String, SecretSource>) -> Result<Secrets> {
        let mut values = HashMap::new();
        for (name, source) in sources {
            let value = match source {
                SecretSource::Value(v) => v,
                SecretSource::Env(var) => std::env::var(&var)
                    .map_err(|_| anyhow!("secrets.{name}: environment variable {var} is not set"))?,
                SecretSource::File(path) => std::fs::read_to_string(&path)
                    .map(|text| text.trim_end_matches(['\n', '\r']).to_owned())
                    .with_context(|| format!("secrets.{name}: cannot read {}", path.display()))?,
            };
            values.insert(name, value);
        }
        Ok(Secrets(values))
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }
}

/// The most http rules, secrets and env entries one grant may hold.
const MAX_GRANT_ENTRIES: usize = 256;

/// What one plugin is granted, as an admin writes it (a `weft.toml` section, a `PUT
/// /v1/grants/{plugin}` body) and as it is stored. Secrets are named, never given.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantSpec {
    /// Allowed outbound requests: `METHOD host[:port]` or `host[:port]` (every method).
    #[serde(default)]
    pub http: Vec<String>,
    /// Names of secrets the plugin may read; each runner supplies their values.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// Environment variables the plugin sees.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// A memory cap below the server's, in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<usize>,
    /// An output cap below the server's, in KiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_kb: Option<usize>,
    /// At most this many calls of the plugin at once on each runner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<usize>,
}

impl GrantSpec {
    /// Checks every entry; a problem names the field (under `at`, such as
    /// `plugins.http-request`).
    pub fn check(&self, at: &str) -> Result<()> {
        if self.http.len() + self.secrets.len() + self.env.len() > MAX_GRANT_ENTRIES {
            bail!("{at}: at most {MAX_GRANT_ENTRIES} http rules, secrets and env entries in all");
        }
        for (i, rule) in self.http.iter().enumerate() {
            HttpRule::parse(rule).with_context(|| format!("{at}.http[{i}]"))?;
        }
        let simple = |s: &str| {
            !s.is_empty()
                && s.len() <= 128
                && s.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
        };
        if let Some(bad) = self.secrets.iter().find(|s| !simple(s)) {
            bail!("{at}.secrets: {bad:?} is not a secret name (letters, digits, `_`, `-`, `.`)");
        }
        if let Some(bad) = self.env.keys().find(|k| !simple(k)) {
            bail!("{at}.env: {bad:?} is not a variable name (letters, digits, `_`, `-`, `.`)");
        }
        for (field, value) in [
            ("memory_mb", self.memory_mb),
            ("max_output_kb", self.max_output_kb),
            ("max_concurrent", self.max_concurrent),
        ] {
            if let Some(v) = value {
                if v == 0 || v > 1 << 20 {
                    bail!("{at}.{field}: {v} is out of range (1 to {})", 1 << 20);
                }
            }
        }
        Ok(())
    }
}

/// Who last set a stored grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GrantSource {
    /// Seeded from a runner's `weft.toml`, which may replace it when the file changes.
    Config,
    /// Set by an admin over the API or the CLI; a `weft.toml` never replaces it.
    Admin,
}

/// A grant as stored: the spec and who set it when.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StoredGrant {
    pub spec: GrantSpec,
    pub source: GrantSource,
    pub updated_by: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub updated_at: OffsetDateTime,
}

impl StoredGrant {
    /// The grant as the CLI shows it: [`StoredGrant::shown`] as JSON.
    pub fn view(&self, plugin: &str) -> serde_json::Value {
        serde_json::to_value(self.shown(plugin)).unwrap_or_default()
    }

    /// The grant as the API shows it: the spec's fields, then the plugin it is for and who
    /// set it when.
    pub fn shown(&self, plugin: &str) -> GrantView {
        GrantView {
            spec: self.spec.clone(),
            plugin: plugin.to_owned(),
            source: self.source,
            updated_by: self.updated_by.clone(),
            updated_at: crate::run::rfc3339(self.updated_at),
        }
    }
}

/// A grant as shown: the spec's fields, the plugin it is for (name or `name@version`), who
/// set it when.
#[derive(Serialize)]
pub struct GrantView {
    #[serde(flatten)]
    pub spec: GrantSpec,
    pub plugin: String,
    pub source: GrantSource,
    pub updated_by: String,
    pub updated_at: String,
}

/// [`GrantSpec`]'s schema with the view's fields added. Written out because the spec refuses
/// unknown fields as a request body, which a derived schema would carry over to the view.
impl utoipa::PartialSchema for GrantView {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
        use utoipa::openapi::RefOr;
        let RefOr::T(Schema::Object(mut view)) = <GrantSpec as utoipa::PartialSchema>::schema() else {
            unreachable!("GrantSpec is a plain object")
        };
        view.additional_properties = None;
        let text = || ObjectBuilder::new().schema_type(Type::String);
        let added = [
            ("plugin", text().into()),
            ("source", <GrantSource as utoipa::PartialSchema>::schema()),
            ("updated_by", text().into()),
            (
                "updated_at",
                text()
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
                    .into(),
            ),
        ];
        for (name, schema) in added {
            view.properties.insert(name.to_owned(), schema);
            view.required.push(name.to_owned());
        }
        RefOr::T(Schema::Object(view))
    }
}

impl utoipa::ToSchema for GrantView {}

/// Checks that `key` is a plugin name or `name@version`, as a grant is keyed.
pub fn check_key(key: &str) -> Result<()> {
    match key.parse::<crate::names::PluginRef>() {
        Ok(crate::names::PluginRef::Digest(_)) => {
            bail!("{key:?}: a grant is for a plugin name or name@version, not a digest")
        }
        Ok(_) if key.len() <= 128 => Ok(()),
        Ok(_) => bail!("{key:?}: a plugin name is at most 128 characters"),
        Err(e) => Err(anyhow!(e)),
    }
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
    /// Secrets granted but without a value on this runner.
    pub missing_secrets: Vec<String>,
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
    /// The grants of `specs` (checked when they were set), with this runner's `secrets`.
    pub fn build<'a>(specs: impl IntoIterator<Item = (&'a str, &'a GrantSpec)>, secrets: &Secrets) -> Grants {
        let mut by_plugin = HashMap::new();
        for (plugin, spec) in specs {
            let mut granted = HashMap::new();
            let mut missing_secrets = Vec::new();
            for name in &spec.secrets {
                match secrets.0.get(name) {
                    Some(value) => {
                        granted.insert(name.clone(), value.clone());
                    }
                    None => missing_secrets.push(name.clone()),
                }
            }
            let grant = Grant {
                http: spec.http.iter().filter_map(|r| HttpRule::parse(r).ok()).collect(),
                secrets: granted,
                missing_secrets,
                env: spec.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                memory_bytes: spec.memory_mb.map(|mb| mb << 20),
                max_output_bytes: spec.max_output_kb.map(|kb| kb << 10),
                concurrency: spec.max_concurrent.map(|n| Arc::new(Semaphore::new(n.max(1)))),
            };
            by_plugin.insert(plugin.to_owned(), grant);
        }
        Grants { by_plugin }
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
    fn keys_are_names_or_name_at_version() {
        assert!(check_key("http-request").is_ok());
        assert!(check_key("http-request@1.2.0").is_ok());
        assert!(check_key("a b").is_err());
        assert!(check_key("sha256:00").is_err());
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
