//! Bundles: a set of workflows, with every version and the plugins they reference, as one
//! JSON file that another Weft can import (SecMaster's export/import).
//!
//! Format (`"format": "weft-bundle"`, `"format_version": 1`; later versions of Weft keep
//! reading version 1):
//!
//! ```json
//! {"format": "weft-bundle", "format_version": 1, "exported_at": "2026-11-22T12:00:00Z",
//!  "workflows": [{"id": "w", "active_version": 2,
//!                 "versions": [{"version": 1, "published": true, "digest": "sha256:…",
//!                               "definition": {…}}]}],
//!  "plugins": [{"name": "greet", "version": "1.0.0", "digest": "sha256:…", "world": "step",
//!               "size": 51234, "builtin": false, "bytes": "<base64, with include_plugins>"}]}
//! ```
//!
//! Import checks everything before writing anything: the format, every definition, every
//! plugin's bytes against its digest, that every plugin a definition names exists here or in
//! the bundle, and that no (id, version) already holds other content. Then it writes it all
//! in one transaction, so an import is all or nothing, and importing twice changes nothing.

use crate::engine::{Engine, Staged, StagedVersion};
use crate::names::{Digest, PluginRef};
use crate::plugins::{builtin, AddError};
use crate::workflow;
use anyhow::{anyhow, Result};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

const FORMAT: &str = "weft-bundle";
const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    pub format: String,
    pub format_version: u32,
    #[serde(default)]
    pub exported_at: String,
    pub workflows: Vec<BundledWorkflow>,
    #[serde(default)]
    pub plugins: Vec<BundledPlugin>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BundledWorkflow {
    pub id: String,
    pub active_version: Option<u64>,
    pub versions: Vec<BundledVersion>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BundledVersion {
    pub version: u64,
    pub published: bool,
    pub digest: Digest,
    #[schema(value_type = Object)]
    pub definition: Value,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BundledPlugin {
    pub name: String,
    pub version: String,
    pub digest: Digest,
    pub world: String,
    pub size: u64,
    pub builtin: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<String>,
}

/// Why an import was refused. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file is not a bundle this Weft reads, or something in it is invalid.
    #[error("{0}")]
    Invalid(String),
    /// Versions that exist here with other content.
    #[error("conflicts: {}", .0.join("; "))]
    Conflict(Vec<String>),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// What an import did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Imported {
    /// `id@version` written.
    pub imported: Vec<String>,
    /// `id@version` already present with the same content.
    pub unchanged: Vec<String>,
    /// `name@version` of plugins written.
    pub plugins: Vec<String>,
}

/// Exports workflows `ids` (every version) and the plugins they name; with `include_plugins`
/// the plugins' bytes too (built-ins are never included: every Weft has them).
pub async fn export(engine: &Engine, ids: &[String], include_plugins: bool) -> Result<Bundle> {
    let mut workflows = Vec::new();
    let mut plugins: BTreeMap<String, BundledPlugin> = BTreeMap::new();
    for id in ids {
        let versions = engine.workflow_versions(id).await?;
        if versions.is_empty() {
            return Err(anyhow!("no workflow {id}"));
        }
        let published = engine.published_versions(id).await?;
        let mut bundled = Vec::new();
        for (version, digest) in versions {
            let workflow = engine
                .workflow(id, Some(version))
                .await?
                .ok_or_else(|| anyhow!("workflow {id} lost version {version}"))?;
            for reference in workflow.steps.iter().filter_map(|s| s.plugin()) {
                if let Some(plugin) = plugin_for(engine, reference).await? {
                    plugins
                        .entry(format!("{}@{}", plugin.name, plugin.version))
                        .or_insert(plugin);
                }
            }
            bundled.push(BundledVersion {
                version,
                published: published.contains(&version),
                digest,
                definition: serde_json::to_value(&workflow.definition)?,
            });
        }
        workflows.push(BundledWorkflow {
            id: id.clone(),
            active_version: engine.active_version(id).await?,
            versions: bundled,
        });
    }
    if include_plugins {
        for plugin in plugins.values_mut().filter(|p| !p.builtin) {
            let bytes = engine
                .plugins()
                .uploaded_bytes(&plugin.digest)
                .await?
                .ok_or_else(|| anyhow!("the bytes of {}@{} are missing", plugin.name, plugin.version))?;
            plugin.bytes = Some(base64::engine::general_purpose::STANDARD.encode(bytes));
        }
    }
    Ok(Bundle {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        exported_at: crate::run::rfc3339(crate::run::now()),
        workflows,
        plugins: plugins.into_values().collect(),
    })
}

/// The plugin a step reference resolves to here, as a bundle entry (without bytes).
async fn plugin_for(engine: &Engine, reference: &PluginRef) -> Result<Option<BundledPlugin>> {
    let Ok(resolved) = engine.plugins().resolve(reference).await else {
        return Ok(None);
    };
    let digest = resolved.digest;
    let all = engine.plugins().list().await?;
    let meta = match reference {
        PluginRef::Version(name, version) => {
            all.into_iter().find(|m| &m.name == name && &m.version == version)
        }
        _ => all.into_iter().find(|m| m.digest == digest),
    };
    Ok(meta.map(|m| BundledPlugin {
        builtin: builtin::all().iter().any(|b| b.digest == m.digest),
        name: m.name,
        version: m.version,
        digest: m.digest,
        world: m.world,
        size: m.size,
        bytes: None,
    }))
}

/// Reads a bundle file, refusing anything that is not one.
pub fn parse(bytes: &[u8]) -> Result<Bundle, ImportError> {
    let bundle: Bundle = serde_json::from_slice(bytes).map_err(|e| {
        ImportError::Invalid(format!(
            "not a readable Weft bundle (corrupted or truncated?): {e}"
        ))
    })?;
    if bundle.format != FORMAT {
        return Err(ImportError::Invalid(format!(
            "format is {:?}, expected {FORMAT:?}",
            bundle.format
        )));
    }
    if bundle.format_version != FORMAT_VERSION {
        return Err(ImportError::Invalid(format!(
            "bundle format version {} is newer than this Weft reads ({FORMAT_VERSION}); upgrade Weft",
            bundle.format_version
        )));
    }
    Ok(bundle)
}

/// Imports a bundle, all or nothing. `rename` maps bundled workflow ids to new ones.
pub async fn import(
    engine: &Engine,
    bundle: Bundle,
    rename: &HashMap<String, String>,
) -> Result<Imported, ImportError> {
    let host = engine.plugins();
    let mut staged = Staged::default();
    let mut imported = Imported {
        imported: Vec::new(),
        unchanged: Vec::new(),
        plugins: Vec::new(),
    };

    // Plugins first: their bytes must match their digests, and names must not collide.
    let mut incoming: HashMap<(String, String), Digest> = HashMap::new();
    let mut conflicts = Vec::new();
    for (i, plugin) in bundle.plugins.iter().enumerate() {
        let at = format!("plugins[{i}] ({}@{})", plugin.name, plugin.version);
        if plugin.builtin {
            if !builtin::all().iter().any(|b| b.digest == plugin.digest) {
                return Err(ImportError::Invalid(format!(
                    "{at}: this Weft's built-in {} is a different build ({}); import into a Weft of the same version",
                    plugin.name, plugin.digest
                )));
            }
            continue;
        }
        let existing = host.uploaded_version(&plugin.name, &plugin.version).await?;
        match (&plugin.bytes, existing) {
            (_, Some(meta)) if meta.digest == plugin.digest => {}
            (_, Some(meta)) => conflicts.push(format!(
                "plugin {}@{} exists here with digest {}, the bundle has {}",
                plugin.name, plugin.version, meta.digest, plugin.digest
            )),
            (None, None) if host.uploaded_bytes(&plugin.digest).await?.is_some() => {}
            (None, None) => {
                return Err(ImportError::Invalid(format!(
                    "{at}: the plugin is missing here and the bundle does not carry it; export with include_plugins or upload it first"
                )))
            }
            (Some(encoded), None) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(encoded)
                    .map_err(|e| ImportError::Invalid(format!("{at}: bytes are not base64: {e}")))?;
                if Digest::of(&bytes) != plugin.digest {
                    return Err(ImportError::Invalid(format!(
                        "{at}: the bytes do not match the digest {} (the bundle was altered or damaged)",
                        plugin.digest
                    )));
                }
                // The one way a plugin is added, committed below with everything else.
                engine
                    .stage_plugin(&mut staged, &plugin.name, &plugin.version, bytes)
                    .await
                    .map_err(|e| match e {
                        AddError::Store(e) => ImportError::Internal(e),
                        other => ImportError::Invalid(format!("{at}: {other}")),
                    })?;
                imported.plugins.push(format!("{}@{}", plugin.name, plugin.version));
            }
        }
        incoming.insert(
            (plugin.name.clone(), plugin.version.clone()),
            plugin.digest.clone(),
        );
    }

    // Then every definition, against the plugins here plus the ones arriving.
    let incoming = Arc::new(incoming);
    let arriving = move |reference: &PluginRef| match reference {
        PluginRef::Latest(name) => incoming.keys().any(|(n, _)| n == name),
        PluginRef::Version(name, version) => incoming.contains_key(&(name.clone(), version.clone())),
        PluginRef::Digest(digest) => incoming.values().any(|d| d == digest),
    };
    let arriving: Arc<dyn Fn(&PluginRef) -> bool + Send + Sync> = Arc::new(arriving);
    let mut publishes = Vec::new();
    for (w, bundled) in bundle.workflows.iter().enumerate() {
        let id = rename
            .get(&bundled.id)
            .cloned()
            .unwrap_or_else(|| bundled.id.clone());
        for (v, version) in bundled.versions.iter().enumerate() {
            let at = format!("workflows[{w}] ({}) versions[{v}]", bundled.id);
            let mut document = version.definition.clone();
            if let Some(object) = document.as_object_mut() {
                object.insert("id".into(), Value::from(id.clone()));
                object.insert("version".into(), Value::from(version.version));
            }
            let definition =
                workflow::from_value(document).map_err(|p| ImportError::Invalid(format!("{at}: {p}")))?;
            let workflow = engine
                .validate_with(definition, arriving.clone())
                .await
                .map_err(|e| match e {
                    crate::engine::StartError::Invalid(p) => ImportError::Invalid(format!("{at}: {p}")),
                    other => ImportError::Internal(other.into()),
                })?;
            let name = format!("{id}@{}", version.version);
            let staged_version = engine
                .stage_version(&mut staged, &workflow)
                .await
                .map_err(|e| match e {
                    crate::engine::StartError::Invalid(p) => ImportError::Invalid(format!("{at}: {p}")),
                    other => ImportError::Internal(other.into()),
                })?;
            match staged_version {
                StagedVersion::Unchanged => imported.unchanged.push(name),
                StagedVersion::Conflict(digest) => conflicts.push(format!(
                    "workflow {id} version {} exists here with digest {digest}, the bundle has {}; import with a rename",
                    version.version, workflow.digest
                )),
                StagedVersion::New => imported.imported.push(name),
            }
        }
        // Publish history first, the active version last, so it ends active.
        let already_active = engine.active_version(&id).await?;
        let published = engine.published_versions(&id).await?;
        for version in bundled.versions.iter().filter(|v| v.published) {
            if Some(version.version) != bundled.active_version && !published.contains(&version.version) {
                publishes.push((id.clone(), version.version));
            }
        }
        if let Some(active) = bundled.active_version.filter(|_| already_active.is_none()) {
            publishes.push((id.clone(), active));
        }
    }
    if !conflicts.is_empty() {
        return Err(ImportError::Conflict(conflicts));
    }
    for (id, version) in publishes {
        engine.stage_publish(&mut staged, &id, version);
    }
    engine.commit_staged(staged).await.map_err(|e| match e {
        crate::store::StoreError::Conflict(m) | crate::store::StoreError::Stale(m) => {
            ImportError::Conflict(vec![format!("{m} (changed while importing; import again)")])
        }
        other => ImportError::Internal(other.into()),
    })?;
    Ok(imported)
}
