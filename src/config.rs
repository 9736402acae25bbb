//! `weft.toml`: this runner's secret values (`[secrets]`), the plugin grants it seeds into the
//! store (`[plugins.NAME]`, see [`crate::plugins::grants`]), the server's limits
//! (`[limits]`, see [`crate::limits`]) and how long finished runs are kept (`[runs]`). Every problem names the file and the key.

use crate::limits::Limits;
use crate::plugins::grants::{self, GrantSpec, SecretSource, Secrets};
use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// The file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    secrets: BTreeMap<String, SecretSource>,
    #[serde(default)]
    plugins: BTreeMap<String, GrantSpec>,
    #[serde(default)]
    limits: Limits,
    #[serde(default)]
    runs: Runs,
}

/// `[runs]`: what happens to finished runs.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Runs {
    /// How long finished runs are kept unless their workflow says (`0s`: forever).
    #[serde(default = "default_retention", with = "humantime_serde")]
    pub retention: std::time::Duration,
}

fn default_retention() -> std::time::Duration {
    crate::engine::DEFAULT_RETENTION
}

impl Default for Runs {
    fn default() -> Self {
        Runs {
            retention: default_retention(),
        }
    }
}

/// A read `weft.toml`.
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// This runner's secret values.
    pub secrets: Secrets,
    /// Grants to seed into the store, by plugin name or `name@version`.
    pub grants: BTreeMap<String, GrantSpec>,
    pub limits: Limits,
    pub runs: Runs,
}

impl Config {
    /// Reads `path`, or gives the defaults (no grants, default limits) for `None`.
    pub fn load(path: Option<&Path>) -> Result<Config> {
        let Some(path) = path else {
            return Ok(Config::default());
        };
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("{}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Config> {
        let file: File = toml::from_str(text)?;
        file.limits.check().map_err(|e| anyhow!(e))?;
        let secrets = Secrets::read(file.secrets)?;
        for (plugin, spec) in &file.plugins {
            let at = format!("plugins.{plugin}");
            grants::check_key(plugin).with_context(|| at.clone())?;
            spec.check(&at)?;
            if let Some(name) = spec.secrets.iter().find(|name| !secrets.contains(name)) {
                bail!("{at}.secrets: no secret {name} under [secrets]");
            }
        }
        Ok(Config {
            secrets,
            grants: file.plugins,
            limits: file.limits,
            runs: file.runs,
        })
    }
}
