//! Plugin grants, kept in the store so every runner (and every `weft answer`) applies the same
//! ones. Admins set them over the API or the CLI; a runner's `weft.toml` seeds them. The
//! grants in force live in the plugin host: loaded when the engine opens, again when any
//! runner changes them ([`crate::store::Notice::Grants`]), and after a change made here.
//!
//! What a grant allows, and how secret values are found, is [`crate::plugins::grants`]'s
//! business; this is only where grants are kept.

use super::Engine;
use crate::plugins::grants::{self, GrantSource, GrantSpec, StoredGrant};
use crate::store::Write;
use anyhow::{anyhow, Context};
use std::collections::BTreeMap;

/// Why a grant could not be set.
#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    /// The plugin key or a field of the grant is not valid.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

impl Engine {
    /// Every stored grant, by plugin name or `name@version`.
    pub async fn grants(&self) -> anyhow::Result<BTreeMap<String, StoredGrant>> {
        let mut all = BTreeMap::new();
        for (key, doc) in self.inner.store.grants().await? {
            let grant: StoredGrant = serde_json::from_slice(&doc)
                .with_context(|| format!("the stored grant of {key} is unreadable"))?;
            all.insert(key, grant);
        }
        Ok(all)
    }

    /// Sets the grant of `key` (a plugin name or `name@version`) as an admin named `by`. Calls
    /// starting from now on every runner apply it.
    pub async fn set_grant(&self, key: &str, spec: GrantSpec, by: &str) -> Result<StoredGrant, GrantError> {
        grants::check_key(key).map_err(|e| GrantError::Invalid(format!("{e:#}")))?;
        spec.check(key)
            .map_err(|e| GrantError::Invalid(format!("{e:#}")))?;
        let grant = StoredGrant {
            spec,
            source: GrantSource::Admin,
            updated_by: by.to_owned(),
            updated_at: crate::run::now(),
        };
        self.store_grant(key, Some(&grant)).await?;
        Ok(grant)
    }

    /// Removes the grant of `key`; returns whether there was one.
    pub async fn delete_grant(&self, key: &str) -> anyhow::Result<bool> {
        if !self.grants().await?.contains_key(key) {
            return Ok(false);
        }
        self.store_grant(key, None).await?;
        Ok(true)
    }

    /// Seeds the store with `weft.toml`'s grants, then puts the stored ones in force. A grant
    /// an admin set is kept (with a warning if the file says otherwise); one seeded from a
    /// file is replaced when the file changed.
    pub async fn seed_grants(&self, seeds: &BTreeMap<String, GrantSpec>) -> anyhow::Result<()> {
        let stored = self.grants().await?;
        let mut writes = Vec::new();
        for (key, spec) in seeds {
            match stored.get(key) {
                Some(current) if current.spec == *spec => {}
                Some(current) if current.source == GrantSource::Admin => tracing::warn!(
                    "weft.toml [plugins.{key}] differs from the grant {} set at {}; the stored \
                     grant applies (change it with `weft grant set` or PUT /v1/grants/{key})",
                    current.updated_by,
                    crate::run::rfc3339(current.updated_at),
                ),
                _ => {
                    let grant = StoredGrant {
                        spec: spec.clone(),
                        source: GrantSource::Config,
                        updated_by: format!("weft.toml of {}", self.runner()),
                        updated_at: crate::run::now(),
                    };
                    writes.push(Write::Grant {
                        plugin: key.clone(),
                        doc: Some(serde_json::to_vec(&grant)?),
                    });
                }
            }
        }
        if !writes.is_empty() {
            self.inner.store.commit(writes).await?;
        }
        self.reload_grants().await
    }

    /// Puts the stored grants in force in this runner's plugin host.
    pub(super) async fn reload_grants(&self) -> anyhow::Result<()> {
        let stored = self.grants().await?;
        self.inner
            .plugins
            .set_grants(stored.iter().map(|(key, grant)| (key.as_str(), &grant.spec)));
        Ok(())
    }

    async fn store_grant(&self, key: &str, grant: Option<&StoredGrant>) -> anyhow::Result<()> {
        let doc = grant.map(serde_json::to_vec).transpose()?;
        self.inner
            .store
            .commit(vec![Write::Grant {
                plugin: key.to_owned(),
                doc,
            }])
            .await
            .map_err(|e| anyhow!("cannot store the grant of {key}: {e}"))?;
        self.reload_grants().await
    }
}
