//! Which plugins exist: the bundled ones and those uploaded to the store, by name, version
//! and digest; and the one way a plugin is added.

use super::{builtin, compile, PluginHost, World};
use crate::names::{Digest, PluginRef};
use crate::store::{StoreError, Write};
use anyhow::{anyhow, Result};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use time::OffsetDateTime;

/// What the catalog keeps of an uploaded plugin version (its stored metadata document).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PluginMeta {
    pub name: String,
    pub version: String,
    pub digest: Digest,
    pub world: String,
    pub size: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

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

impl From<StoreError> for AddError {
    fn from(e: StoreError) -> AddError {
        AddError::Store(e.into())
    }
}

/// A checked and compiled plugin, not yet stored: its metadata and the writes that store it
/// (bytes, compiled artifact, and the `plugin.uploaded` event), to commit alone
/// ([`PluginHost::add`]) or with a bundle's other writes.
pub struct Prepared {
    pub meta: PluginMeta,
    pub writes: Vec<Write>,
    /// The same bytes were already stored under this name and version: nothing to write.
    pub existed: bool,
}

/// A plugin reference resolved to what a run is pinned to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    pub digest: Digest,
    /// `name@version`, whose grant calls get; `None` when the reference was a digest.
    pub declared_as: Option<String>,
}

impl PluginHost {
    /// Resolves a step's plugin reference to the digest a run will be pinned to, and the
    /// name and version whose grant it gets.
    pub async fn resolve(&self, plugin: &PluginRef) -> Result<Resolved, String> {
        let store_error = |e: StoreError| format!("cannot read plugins: {e}");
        let named = |name: &str, version: &str, digest: Digest| Resolved {
            digest,
            declared_as: Some(format!("{name}@{version}")),
        };
        match plugin {
            PluginRef::Digest(digest) => {
                let known = builtin::all().iter().any(|b| &b.digest == digest)
                    || self
                        .store()
                        .plugin_bytes(digest)
                        .await
                        .map_err(store_error)?
                        .is_some();
                known
                    .then(|| Resolved {
                        digest: digest.clone(),
                        declared_as: None,
                    })
                    .ok_or_else(|| format!("unknown plugin {digest}: no plugin with this digest is stored"))
            }
            PluginRef::Version(name, version) => {
                if let Some(b) = builtin::all()
                    .iter()
                    .find(|b| b.name == name && b.version == version)
                {
                    return Ok(named(b.name, b.version, b.digest.clone()));
                }
                match self.store().plugin(name, version).await.map_err(store_error)? {
                    Some(stored) => Ok(named(name, version, stored.digest)),
                    None => Err(self.unknown(plugin).await),
                }
            }
            PluginRef::Latest(name) => {
                if let Some(b) = builtin::all().iter().find(|b| b.name == name) {
                    return Ok(named(b.name, b.version, b.digest.clone()));
                }
                let all = self
                    .uploaded()
                    .await
                    .map_err(|e| format!("cannot read plugins: {e:#}"))?;
                match all
                    .into_iter()
                    .filter(|meta| &meta.name == name)
                    .max_by_key(|meta| meta.created_at)
                {
                    Some(meta) => Ok(named(name, &meta.version, meta.digest)),
                    None => Err(self.unknown(plugin).await),
                }
            }
        }
    }

    /// Which world the plugin with `digest` implements, if such a plugin exists.
    pub async fn world_of(&self, digest: &Digest) -> Result<Option<World>> {
        if let Some(b) = builtin::all().iter().find(|b| &b.digest == digest) {
            return Ok(Some(b.world));
        }
        let stored = self.uploaded().await?.into_iter().find(|m| &m.digest == digest);
        Ok(stored.map(|m| {
            if m.world == World::Target.as_str() {
                World::Target
            } else {
                World::Step
            }
        }))
    }

    /// Every uploaded plugin version, by name then version.
    pub async fn uploaded(&self) -> Result<Vec<PluginMeta>> {
        self.store()
            .plugins()
            .await?
            .iter()
            .map(|stored| {
                serde_json::from_slice(&stored.meta).map_err(|e| {
                    anyhow!(
                        "stored plugin {}@{} is unreadable: {e}",
                        stored.name,
                        stored.version
                    )
                })
            })
            .collect()
    }

    /// An uploaded plugin version.
    pub async fn uploaded_version(&self, name: &str, version: &str) -> Result<Option<PluginMeta>> {
        match self.store().plugin(name, version).await? {
            Some(stored) => Ok(Some(serde_json::from_slice(&stored.meta)?)),
            None => Ok(None),
        }
    }

    /// The bytes of the component with `digest`, if it is uploaded.
    pub async fn uploaded_bytes(&self, digest: &Digest) -> Result<Option<Vec<u8>>> {
        Ok(self.store().plugin_bytes(digest).await?)
    }

    /// Removes an uploaded plugin version (its bytes too, unless another version has them).
    pub async fn remove(&self, name: &str, version: &str) -> Result<()> {
        self.store()
            .commit(vec![Write::DeletePlugin {
                name: name.to_owned(),
                version: version.to_owned(),
            }])
            .await?;
        Ok(())
    }

    async fn unknown(&self, plugin: &PluginRef) -> String {
        let mut names: Vec<String> = builtin::all().iter().map(|b| b.name.to_string()).collect();
        if let Ok(stored) = self.uploaded().await {
            names.extend(stored.into_iter().map(|m| format!("{}@{}", m.name, m.version)));
        }
        crate::limits::clip(&format!(
            "unknown plugin {plugin}; known plugins: {}",
            names.join(", ")
        ))
    }

    /// Validates, compiles and stores a plugin under `name@version`. Adding the same bytes
    /// again is a no-op; different bytes under an existing name and version are a conflict.
    pub async fn add(&self, name: &str, version: &str, bytes: Vec<u8>) -> Result<Prepared, AddError> {
        let key = format!("{name}@{version}");
        // From the check to the commit, one upload of this name and version at a time: two
        // different components must not both take it. Other plugins compile meanwhile.
        let lock = self
            .inner
            .adding
            .lock()
            .expect("adding lock")
            .entry(key.clone())
            .or_default()
            .clone();
        let held = lock.lock().await;
        let prepared = self.prepare(name, version, bytes).await;
        let result = match prepared {
            Ok(mut prepared) => {
                let writes = std::mem::take(&mut prepared.writes);
                match self.store().commit(writes).await {
                    Ok(()) => Ok(prepared),
                    // Another runner took this name and version meanwhile.
                    Err(StoreError::Conflict(message)) => Err(AddError::Conflict(format!(
                        "{message}; upload under a new version"
                    ))),
                    Err(e) => Err(e.into()),
                }
            }
            Err(e) => Err(e),
        };
        drop(held);
        let mut adding = self.inner.adding.lock().expect("adding lock");
        if adding.get(&key).is_some_and(|l| Arc::strong_count(l) == 2) {
            adding.remove(&key);
        }
        result
    }

    /// Checks, compiles and links a plugin, and returns the writes that store it; stores
    /// nothing. Refused bytes leave nothing behind, not even their compiled artifact.
    pub async fn prepare(&self, name: &str, version: &str, bytes: Vec<u8>) -> Result<Prepared, AddError> {
        let reference: PluginRef = format!("{name}@{version}").parse().map_err(AddError::Invalid)?;
        if builtin::all().iter().any(|b| b.name == name) {
            return Err(AddError::Invalid(format!(
                "{name} is the name of a built-in plugin; choose another name"
            )));
        }
        compile::check_header(&bytes).map_err(AddError::Invalid)?;
        let digest = Digest::of(&bytes);
        if let Some(existing) = self.uploaded_version(name, version).await? {
            return if existing.digest == digest {
                Ok(Prepared {
                    meta: existing,
                    writes: Vec::new(),
                    existed: true,
                })
            } else {
                Err(AddError::Conflict(format!(
                    "{reference} already exists with digest {}; upload under a new version",
                    existing.digest
                )))
            };
        }
        let size = bytes.len() as u64;
        let mut writes = Vec::new();
        let key = self.artifact_key(&digest);
        let component = match self.cached_component(&key).await? {
            // The same bytes were compiled before (under another name, or an earlier version).
            Some(component) => component,
            None => {
                let compiled = self.compile(bytes.clone()).await.map_err(AddError::Invalid)?;
                writes.push(Write::Artifact {
                    key,
                    bytes: compiled.artifact,
                });
                compiled.component
            }
        };
        let (world, _) = compile::link(&self.inner.linker, &component).map_err(AddError::Invalid)?;
        let meta = PluginMeta {
            name: name.to_owned(),
            version: version.to_owned(),
            digest,
            world: world.as_str().to_owned(),
            size,
            created_at: crate::run::now(),
        };
        writes.push(Write::Plugin {
            name: meta.name.clone(),
            version: meta.version.clone(),
            digest: meta.digest.clone(),
            meta: serde_json::to_vec(&meta).map_err(anyhow::Error::from)?,
            bytes: Arc::from(bytes),
        });
        if let Some(hook) = self.inner.on_added.get() {
            writes.extend(hook(meta.clone()).await?);
        }
        Ok(Prepared {
            meta,
            writes,
            existed: false,
        })
    }

    /// Every plugin: built-ins first, then uploaded ones.
    pub async fn list(&self) -> Result<Vec<PluginMeta>> {
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
        all.extend(self.uploaded().await?);
        Ok(all)
    }
}
