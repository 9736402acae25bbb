//! Which plugins exist: the bundled ones and those uploaded to the store, by name, version
//! and digest; and the one way a plugin is added.
//!
//! An upload is compiled, linked and described before it is usable. A compile that takes
//! longer than `limits.upload_wait` goes on in the background: the plugin's record is stored
//! at once with status `compiling`, and replaced by a `ready` one (with its world and
//! contract) or a `failed` one (with the reason) when the compile ends. The status lives in
//! the store, so every runner sees it; a record left `compiling` by a runner that died is
//! compiled again by the next runner to start once `limits.compile_timeout` has passed.

use super::{builtin, compile, Description, PluginHost, World};
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
    /// Whether it may be used yet. Records from before uploads compiled in the background
    /// have none: they were stored ready.
    #[serde(default)]
    pub status: PluginStatus,
    /// Why the compile failed, for status `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The `weft:plugin` version it was built against (`0.1.0`, `0.2.0`), once ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract_version: Option<String>,
    /// What it says about itself (0.2.0), once ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract: Option<Description>,
}

/// Where an uploaded plugin version is: compiling in the background, usable, or refused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PluginStatus {
    Compiling,
    #[default]
    Ready,
    Failed,
}

impl PluginStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PluginStatus::Compiling => "compiling",
            PluginStatus::Ready => "ready",
            PluginStatus::Failed => "failed",
        }
    }
}

/// Whether a stored plugin may be used; the reason if not.
fn usable(meta: &PluginMeta) -> Result<(), String> {
    match meta.status {
        PluginStatus::Ready => Ok(()),
        PluginStatus::Compiling => Err(format!(
            "plugin {}@{} is still compiling; it can be used once GET /v1/plugins/{}@{} says ready",
            meta.name, meta.version, meta.name, meta.version
        )),
        PluginStatus::Failed => Err(format!(
            "plugin {}@{} failed to compile: {}",
            meta.name,
            meta.version,
            meta.error.as_deref().unwrap_or("no reason recorded")
        )),
    }
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

/// An upload as the catalog took it.
pub struct Uploaded {
    /// Status `ready`, or `compiling` when the compile goes on in the background.
    pub meta: PluginMeta,
    /// The same bytes were already stored under this name and version: nothing was written.
    pub existed: bool,
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

/// Refuses a name that is not allowed or bytes that are not a component.
fn check_new(name: &str, version: &str, bytes: &[u8]) -> Result<PluginRef, AddError> {
    let reference: PluginRef = format!("{name}@{version}").parse().map_err(AddError::Invalid)?;
    if builtin::all().iter().any(|b| b.name == name) {
        return Err(AddError::Invalid(format!(
            "{name} is the name of a built-in plugin; choose another name"
        )));
    }
    compile::check_header(bytes).map_err(AddError::Invalid)?;
    Ok(reference)
}

/// The write that stores `meta` and the component's bytes (replacing the metadata of the
/// same component under the same name and version).
fn plugin_write(meta: &PluginMeta, bytes: Arc<[u8]>) -> Result<Write, AddError> {
    Ok(Write::Plugin {
        name: meta.name.clone(),
        version: meta.version.clone(),
        digest: meta.digest.clone(),
        meta: serde_json::to_vec(meta).map_err(anyhow::Error::from)?,
        bytes,
    })
}

impl PluginHost {
    /// Resolves a step's plugin reference to the digest a run will be pinned to, and the
    /// name and version whose grant it gets.
    pub async fn resolve(&self, plugin: &PluginRef) -> Result<Resolved, String> {
        let named = |name: &str, version: &str, digest: Digest| Resolved {
            digest,
            declared_as: Some(format!("{name}@{version}")),
        };
        match plugin {
            PluginRef::Digest(digest) => {
                let found = Resolved {
                    digest: digest.clone(),
                    declared_as: None,
                };
                if builtin::all().iter().any(|b| &b.digest == digest) {
                    return Ok(found);
                }
                let stored = self
                    .uploaded()
                    .await
                    .map_err(|e| format!("cannot read plugins: {e:#}"))?;
                let versions: Vec<&PluginMeta> = stored.iter().filter(|m| &m.digest == digest).collect();
                if versions.iter().any(|m| m.status == PluginStatus::Ready) {
                    return Ok(found);
                }
                match versions.first() {
                    Some(meta) => Err(usable(meta).expect_err("not ready")),
                    None => Err(format!(
                        "unknown plugin {digest}: no plugin with this digest is stored"
                    )),
                }
            }
            PluginRef::Version(name, version) => {
                if let Some(b) = builtin::all()
                    .iter()
                    .find(|b| b.name == name && b.version == version)
                {
                    return Ok(named(b.name, b.version, b.digest.clone()));
                }
                match self
                    .uploaded_version(name, version)
                    .await
                    .map_err(|e| format!("cannot read plugins: {e:#}"))?
                {
                    Some(meta) => usable(&meta).map(|()| named(name, version, meta.digest)),
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
                let versions: Vec<PluginMeta> = all.into_iter().filter(|meta| &meta.name == name).collect();
                // The newest version that is ready; a newer one still compiling is not used yet.
                let ready = versions
                    .iter()
                    .filter(|meta| meta.status == PluginStatus::Ready)
                    .max_by_key(|meta| meta.created_at);
                match (ready, versions.iter().max_by_key(|meta| meta.created_at)) {
                    (Some(meta), _) => Ok(named(name, &meta.version, meta.digest.clone())),
                    (None, Some(newest)) => Err(usable(newest).expect_err("not ready")),
                    (None, None) => Err(self.unknown(plugin).await),
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

    /// Validates, compiles and stores a plugin under `name@version`, waiting for the compile
    /// however long it takes. Adding the same bytes again is a no-op; different bytes under
    /// an existing name and version are a conflict.
    pub async fn add(&self, name: &str, version: &str, bytes: Vec<u8>) -> Result<Uploaded, AddError> {
        self.upload(name, version, bytes, None).await
    }

    /// Takes an upload: checks it, then compiles, links and describes it. When that takes
    /// longer than `wait`, stores the plugin as `compiling` and returns; the compile goes on
    /// in the background and stores the outcome (`ready`, or `failed` with the reason). A
    /// compile that fails within `wait` stores nothing. A new upload of a version whose
    /// compile failed replaces it.
    pub async fn upload(
        &self,
        name: &str,
        version: &str,
        bytes: Vec<u8>,
        wait: Option<std::time::Duration>,
    ) -> Result<Uploaded, AddError> {
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
        let result = self.upload_locked(name, version, bytes, wait).await;
        drop(held);
        let mut adding = self.inner.adding.lock().expect("adding lock");
        if adding.get(&key).is_some_and(|l| Arc::strong_count(l) == 2) {
            adding.remove(&key);
        }
        result
    }

    async fn upload_locked(
        &self,
        name: &str,
        version: &str,
        bytes: Vec<u8>,
        wait: Option<std::time::Duration>,
    ) -> Result<Uploaded, AddError> {
        check_new(name, version, &bytes)?;
        let digest = Digest::of(&bytes);
        let mut replace = Vec::new();
        if let Some(existing) = self.uploaded_version(name, version).await? {
            if existing.status == PluginStatus::Failed {
                replace.push(Write::DeletePlugin {
                    name: name.to_owned(),
                    version: version.to_owned(),
                });
            } else if existing.digest == digest {
                return Ok(Uploaded {
                    meta: existing,
                    existed: true,
                });
            } else {
                return Err(AddError::Conflict(format!(
                    "{name}@{version} already exists with digest {}; upload under a new version",
                    existing.digest
                )));
            }
        }
        let bytes: Arc<[u8]> = Arc::from(bytes);
        let host = self.clone();
        let (n, v, b) = (name.to_owned(), version.to_owned(), bytes.clone());
        let mut work = tokio::spawn(async move { host.build(&n, &v, b).await });
        let finished = match wait {
            None => Some((&mut work).await),
            Some(wait) => tokio::time::timeout(wait, &mut work).await.ok(),
        };
        if let Some(built) = finished {
            let (meta, writes) =
                built.map_err(|e| AddError::Store(anyhow!("the compile task failed: {e}")))??;
            replace.extend(writes);
            self.commit_upload(replace).await?;
            return Ok(Uploaded { meta, existed: false });
        }
        let meta = PluginMeta {
            name: name.to_owned(),
            version: version.to_owned(),
            digest,
            world: String::new(),
            size: bytes.len() as u64,
            created_at: crate::run::now(),
            status: PluginStatus::Compiling,
            error: None,
            contract_version: None,
            contract: None,
        };
        replace.push(plugin_write(&meta, bytes.clone())?);
        self.commit_upload(replace).await?;
        let host = self.clone();
        let compiling = meta.clone();
        tokio::spawn(async move {
            let built = work
                .await
                .unwrap_or_else(|e| Err(AddError::Store(anyhow!("the compile task failed: {e}"))));
            host.finish_upload(compiling, bytes, built).await;
        });
        Ok(Uploaded { meta, existed: false })
    }

    /// Stores what a background compile came to: the ready plugin, or the reason it failed.
    async fn finish_upload(
        &self,
        compiling: PluginMeta,
        bytes: Arc<[u8]>,
        built: Result<(PluginMeta, Vec<Write>), AddError>,
    ) {
        let key = format!("{}@{}", compiling.name, compiling.version);
        let writes = match built {
            Ok((_, writes)) => Ok(writes),
            Err(e) => {
                let failed = PluginMeta {
                    status: PluginStatus::Failed,
                    error: Some(crate::limits::clip(&e.to_string())),
                    ..compiling
                };
                plugin_write(&failed, bytes).map(|w| vec![w])
            }
        };
        let committed = match writes {
            Ok(writes) => self.store().commit(writes).await.map_err(anyhow::Error::from),
            Err(e) => Err(e.into()),
        };
        if let Err(e) = committed {
            tracing::error!("cannot store the compiled plugin {key}: {e:#}");
        }
    }

    /// Compiles again every upload left `compiling` by a runner that stopped: those older
    /// than `limits.compile_timeout`, whose compile cannot still be under way. Returns how
    /// many it took over; they finish in the background.
    pub(super) async fn resume_compiles(&self) -> Result<usize> {
        let timeout =
            time::Duration::try_from(self.inner.limits.compile_timeout).unwrap_or(time::Duration::MAX);
        let now = crate::run::now();
        let mut taken = 0;
        for meta in self.uploaded().await? {
            if meta.status != PluginStatus::Compiling || now - meta.created_at < timeout {
                continue;
            }
            let Some(bytes) = self.store().plugin_bytes(&meta.digest).await? else {
                continue;
            };
            let bytes: Arc<[u8]> = Arc::from(bytes);
            let host = self.clone();
            tracing::warn!(
                "compiling {}@{} again: the runner compiling it stopped",
                meta.name,
                meta.version
            );
            tokio::spawn(async move {
                let built = host.build(&meta.name, &meta.version, bytes.clone()).await;
                host.finish_upload(meta, bytes, built).await;
            });
            taken += 1;
        }
        Ok(taken)
    }

    async fn commit_upload(&self, writes: Vec<Write>) -> Result<(), AddError> {
        match self.store().commit(writes).await {
            Ok(()) => Ok(()),
            // Another runner took this name and version meanwhile.
            Err(StoreError::Conflict(message)) => Err(AddError::Conflict(format!(
                "{message}; upload under a new version"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// Checks, compiles and links a plugin, and returns the writes that store it; stores
    /// nothing. Refused bytes leave nothing behind, not even their compiled artifact.
    pub async fn prepare(&self, name: &str, version: &str, bytes: Vec<u8>) -> Result<Prepared, AddError> {
        check_new(name, version, &bytes)?;
        let digest = Digest::of(&bytes);
        if let Some(existing) = self.uploaded_version(name, version).await? {
            return if existing.digest == digest && existing.status != PluginStatus::Failed {
                Ok(Prepared {
                    meta: existing,
                    writes: Vec::new(),
                    existed: true,
                })
            } else {
                Err(AddError::Conflict(format!(
                    "{name}@{version} already exists with digest {}; upload under a new version",
                    existing.digest
                )))
            };
        }
        let (meta, writes) = self.build(name, version, Arc::from(bytes)).await?;
        Ok(Prepared {
            meta,
            writes,
            existed: false,
        })
    }

    /// Compiles (or finds the compiled artifact of), links and describes checked bytes, and
    /// returns the ready plugin's metadata and the writes that store it. Also makes it ready
    /// to call in this process.
    async fn build(
        &self,
        name: &str,
        version: &str,
        bytes: Arc<[u8]>,
    ) -> Result<(PluginMeta, Vec<Write>), AddError> {
        let digest = Digest::of(&bytes);
        let size = bytes.len() as u64;
        let mut writes = Vec::new();
        let key = self.artifact_key(&digest);
        let component = match self.cached_component(&key).await? {
            // The same bytes were compiled before (under another name, or an earlier version).
            Some(component) => component,
            None => {
                let compiled = self.compile(bytes.to_vec()).await.map_err(AddError::Invalid)?;
                writes.push(Write::Artifact {
                    key,
                    bytes: compiled.artifact,
                });
                compiled.component
            }
        };
        let linked = compile::link(&self.inner.linker, &component).map_err(AddError::Invalid)?;
        let contract = self
            .describe(&linked)
            .await
            .map_err(AddError::Invalid)?
            .map(Arc::new);
        let meta = PluginMeta {
            name: name.to_owned(),
            version: version.to_owned(),
            digest: digest.clone(),
            world: linked.world().as_str().to_owned(),
            size,
            created_at: crate::run::now(),
            status: PluginStatus::Ready,
            error: None,
            contract_version: Some(linked.contract_version().to_owned()),
            contract: contract.as_ref().map(|c| c.description.clone()),
        };
        writes.push(plugin_write(&meta, bytes)?);
        if let Some(hook) = self.inner.on_added.get() {
            writes.extend(hook(meta.clone()).await?);
        }
        // Pre-linked and described already: the first call of this runner starts at once.
        self.keep_loaded(&digest, linked, contract);
        Ok((meta, writes))
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
                status: PluginStatus::Ready,
                error: None,
                contract_version: Some("0.2.0".to_owned()),
                contract: None,
            })
            .collect();
        all.extend(self.uploaded().await?);
        Ok(all)
    }
}
