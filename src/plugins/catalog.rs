//! Which plugins exist: the bundled ones and those uploaded to the store, by name, version
//! and digest.

use super::{builtin, PluginHost, World};
use crate::names::{Digest, PluginRef};
use crate::store::{PluginMeta, Write};
use anyhow::Result;
use std::borrow::Cow;
use std::sync::Arc;

/// Why a plugin could not be added.
#[derive(Debug, thiserror::Error)]
pub enum AddError {
    /// The bytes are not a usable component, or the name is not allowed.
    #[error("{0}")]
    Invalid(String),
    /// Another component is already stored under this name and version.
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

impl PluginHost {
    /// Resolves a step's plugin reference to the digest a run will be pinned to.
    pub fn resolve(&self, plugin: &PluginRef) -> Result<Digest, String> {
        let store_error = |e: anyhow::Error| format!("cannot read plugins: {e:#}");
        match plugin {
            PluginRef::Digest(digest) => {
                let known = builtin::all().iter().any(|b| &b.digest == digest)
                    || self.store().plugin_bytes(digest).map_err(store_error)?.is_some();
                known
                    .then(|| digest.clone())
                    .ok_or_else(|| format!("unknown plugin {digest}: no plugin with this digest is stored"))
            }
            PluginRef::Version(name, version) => {
                if let Some(b) = builtin::all()
                    .iter()
                    .find(|b| b.name == name && b.version == version)
                {
                    return Ok(b.digest.clone());
                }
                self.store()
                    .plugin(name, version)
                    .map_err(store_error)?
                    .map(|meta| meta.digest)
                    .ok_or_else(|| self.unknown(plugin))
            }
            PluginRef::Latest(name) => {
                if let Some(b) = builtin::all().iter().find(|b| b.name == name) {
                    return Ok(b.digest.clone());
                }
                let all = self.store().plugins().map_err(store_error)?;
                all.into_iter()
                    .filter(|meta| &meta.name == name)
                    .max_by_key(|meta| meta.created_at)
                    .map(|meta| meta.digest)
                    .ok_or_else(|| self.unknown(plugin))
            }
        }
    }

    /// Which world the plugin with `digest` implements, if such a plugin exists.
    pub fn world_of(&self, digest: &Digest) -> Result<Option<World>> {
        if let Some(b) = builtin::all().iter().find(|b| &b.digest == digest) {
            return Ok(Some(b.world));
        }
        let stored = self.store().plugins()?.into_iter().find(|m| &m.digest == digest);
        Ok(stored.map(|m| {
            if m.world == World::Target.as_str() {
                World::Target
            } else {
                World::Step
            }
        }))
    }

    fn unknown(&self, plugin: &PluginRef) -> String {
        let mut names: Vec<String> = builtin::all().iter().map(|b| b.name.to_string()).collect();
        if let Ok(stored) = self.store().plugins() {
            names.extend(stored.into_iter().map(|m| format!("{}@{}", m.name, m.version)));
        }
        format!("unknown plugin {plugin}; known plugins: {}", names.join(", "))
    }

    /// The name a digest was stored under (a built-in's, or the first uploaded version's);
    /// grants are given by name.
    pub(super) fn name_of(&self, digest: &Digest) -> Result<String> {
        if let Some(b) = builtin::all().iter().find(|b| &b.digest == digest) {
            return Ok(b.name.to_owned());
        }
        Ok(self
            .store()
            .plugins()?
            .into_iter()
            .find(|m| &m.digest == digest)
            .map(|m| m.name)
            .unwrap_or_default())
    }

    /// The component bytes for `digest`.
    pub(super) fn bytes(&self, digest: &Digest) -> Result<Option<Cow<'static, [u8]>>> {
        if let Some(b) = builtin::all().iter().find(|b| &b.digest == digest) {
            return Ok(Some(Cow::Borrowed(b.bytes)));
        }
        Ok(self.store().plugin_bytes(digest)?.map(Cow::Owned))
    }

    /// Validates, compiles and stores a plugin under `name@version`. Adding the same bytes
    /// again is a no-op; different bytes under an existing name and version are a conflict.
    pub async fn add(&self, name: &str, version: &str, bytes: Vec<u8>) -> Result<PluginMeta, AddError> {
        let reference: PluginRef = format!("{name}@{version}").parse().map_err(AddError::Invalid)?;
        if builtin::all().iter().any(|b| b.name == name) {
            return Err(AddError::Invalid(format!(
                "{name} is the name of a built-in plugin; choose another name"
            )));
        }
        let digest = Digest::of(&bytes);
        // From the check to the commit, one upload at a time: two different components must
        // not both take one name and version.
        let _adding = self.inner.adding.lock().await;
        if let Some(existing) = self.store().plugin(name, version)? {
            return if existing.digest == digest {
                Ok(existing)
            } else {
                Err(AddError::Conflict(format!(
                    "{reference} already exists with digest {}; upload under a new version",
                    existing.digest
                )))
            };
        }
        let world = self.inspect(&digest, &bytes).await.map_err(AddError::Invalid)?;
        let meta = PluginMeta {
            name: name.to_owned(),
            version: version.to_owned(),
            digest,
            world: world.as_str().to_owned(),
            size: bytes.len() as u64,
            created_at: crate::run::now(),
        };
        let bytes: Arc<[u8]> = bytes.into();
        let mut writes = vec![Write::Plugin {
            meta: meta.clone(),
            bytes,
        }];
        if let Some(hook) = self.inner.on_added.get() {
            writes.extend(hook(&meta)?);
        }
        self.store().commit(writes).await?;
        Ok(meta)
    }

    /// Every plugin: built-ins first, then uploaded ones.
    pub fn list(&self) -> Result<Vec<PluginMeta>> {
        let epoch = time::OffsetDateTime::UNIX_EPOCH;
        let mut all: Vec<PluginMeta> = builtin::all()
            .iter()
            .map(|b| PluginMeta {
                name: b.name.to_owned(),
                version: b.version.to_owned(),
                digest: b.digest.clone(),
                world: b.world.as_str().to_owned(),
                size: b.bytes.len() as u64,
                created_at: epoch,
            })
            .collect();
        all.extend(self.store().plugins()?);
        Ok(all)
    }
}
