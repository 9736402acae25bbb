//! Removing plugin versions: allowed only while nothing uses them.

use super::Engine;
use crate::names::PluginRef;
use crate::run::RunRecord;
use crate::store::RunScope;

/// Why a plugin version could not be removed.
#[derive(Debug, thiserror::Error)]
pub enum RemoveError {
    #[error("{0}")]
    NotFound(String),
    /// A built-in, or in use by a workflow version or an unfinished run.
    #[error("{0}")]
    InUse(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl Engine {
    /// Removes plugin `name@version` unless it is built in, or a workflow version or an
    /// unfinished run uses it.
    pub async fn remove_plugin(&self, name: &str, version: &str) -> Result<(), RemoveError> {
        if crate::plugins::builtin::all().iter().any(|b| b.name == name) {
            return Err(RemoveError::InUse(format!(
                "{name} is built in and cannot be deleted"
            )));
        }
        let plugins = self.plugins();
        let meta = plugins
            .uploaded_version(name, version)
            .await?
            .ok_or_else(|| RemoveError::NotFound(format!("no plugin {name}@{version}")))?;
        if meta.status == crate::plugins::PluginStatus::Compiling {
            return Err(RemoveError::InUse(format!(
                "{name}@{version} is still compiling; delete it once GET /v1/plugins/{name}@{version} says ready or failed"
            )));
        }
        if let Some(user) = self.plugin_user(&meta).await? {
            return Err(RemoveError::InUse(format!(
                "{name}@{version} is in use by {user}; delete or finish that first"
            )));
        }
        plugins.remove(name, version).await?;
        Ok(())
    }

    /// A workflow version or unfinished run that uses `meta`, if any.
    async fn plugin_user(&self, meta: &crate::plugins::PluginMeta) -> anyhow::Result<Option<String>> {
        for (id, _, _) in self.inner.store.workflows().await? {
            for (version, _) in self.inner.store.workflow_versions(&id).await? {
                let Some(workflow) = self.workflow(&id, Some(version)).await? else {
                    continue;
                };
                let uses = workflow.steps.iter().any(|s| match s.plugin() {
                    Some(PluginRef::Latest(n)) => *n == meta.name,
                    Some(PluginRef::Version(n, v)) => *n == meta.name && *v == meta.version,
                    Some(PluginRef::Digest(d)) => *d == meta.digest,
                    None => false,
                });
                if uses {
                    return Ok(Some(format!("workflow {id} version {version}")));
                }
            }
        }
        for scope in [RunScope::Live, RunScope::Waiting] {
            let mut uses = |stored: &crate::store::StoredRun| {
                RunRecord::from_stored(stored.clone())
                    .is_ok_and(|run| run.steps.iter().any(|s| s.plugin.as_ref() == Some(&meta.digest)))
            };
            let found = self.inner.store.runs(scope, None, 1, &mut uses).await?;
            if let Some(stored) = found.first() {
                let run = RunRecord::from_stored(stored.clone())?;
                return Ok(Some(format!("run {} ({})", run.id, run.state.as_str())));
            }
        }
        Ok(None)
    }
}
