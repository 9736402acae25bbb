//! `weft.toml`: what plugins are granted (`[secrets]`, `[plugins.NAME]`, see
//! [`crate::plugins::Grants`]) and the server's limits (`[limits]`, see [`crate::limits`]).
//! Every problem names the file and the key.

use crate::limits::Limits;
use crate::plugins::grants::{GrantFile, SecretSource};
use crate::plugins::Grants;
use anyhow::{anyhow, Context, Result};
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
    plugins: BTreeMap<String, GrantFile>,
    #[serde(default)]
    limits: Limits,
}

/// A read `weft.toml`.
#[derive(Clone, Debug, Default)]
pub struct Config {
    pub grants: Grants,
    pub limits: Limits,
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
        Ok(Config {
            grants: Grants::from_file(file.secrets, file.plugins)?,
            limits: file.limits,
        })
    }
}
