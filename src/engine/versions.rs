//! Workflow versions: creating, overwriting and publishing them.
//!
//! A workflow's first version is published (active) as soon as it is stored. Later versions
//! are drafts until published; publishing one makes it the active version, the one runs start
//! on unless they name another. A draft may be overwritten; storing other content under a
//! published version creates a new draft instead, so a published version never changes.

use super::{Engine, StartError};
use crate::names::{Digest, PluginRef};
use crate::store::Write;
use crate::workflow::{self, Workflow};
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;

/// What storing a definition did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SaveStatus {
    /// A new version.
    Created,
    /// The same content was already stored under this version.
    Unchanged,
    /// A draft's content was replaced.
    Overwritten,
    /// The version named was published, so the content became a new draft version.
    NewDraft,
}

/// The version a definition was stored as.
#[derive(Clone, Debug, Serialize)]
pub struct Saved {
    pub id: String,
    pub version: u64,
    pub digest: Digest,
    pub status: SaveStatus,
    pub published: bool,
    pub active_version: u64,
}

impl Engine {
    /// Parses a definition text (YAML or JSON) off the async workers, within the size and
    /// nesting limits and `limits.validation_timeout`.
    pub async fn parse_document(&self, text: String) -> Result<Value, StartError> {
        let limits = self.plugins().limits().clone();
        let timeout = limits.validation_timeout;
        let work = tokio::task::spawn_blocking(move || workflow::parse_document(&text, &limits));
        match tokio::time::timeout(timeout, work).await {
            Ok(Ok(parsed)) => parsed.map_err(StartError::Invalid),
            Ok(Err(e)) => Err(StartError::Internal(anyhow::anyhow!("the parser crashed: {e}"))),
            Err(_) => Err(too_slow(timeout)),
        }
    }

    /// Validates and stores a definition document (YAML or JSON, already parsed). Without a
    /// `version` the next one is assigned. With `publish` the version becomes active.
    pub async fn save_version(
        &self,
        mut document: Value,
        publish: bool,
    ) -> Result<(Saved, Arc<Workflow>), StartError> {
        let store = self.store();
        let _deciding = self.inner.version_writes.lock().await;
        let id = document.get("id").and_then(Value::as_str).map(str::to_owned);
        let latest = match &id {
            Some(id) => store.latest_version(id)?,
            None => None,
        };
        if let Some(object) = document.as_object_mut() {
            object
                .entry("version")
                .or_insert_with(|| Value::from(latest.map_or(1, |v| v + 1)));
        }
        let definition = workflow::from_value(document).map_err(StartError::Invalid)?;
        // Validity does not depend on the version number, so one validation serves every
        // version the content may end up under.
        let mut workflow = self.validate(definition).await?;
        let (id, version) = (workflow.definition.id.clone(), workflow.definition.version);
        let published = store.published_versions(&id)?;
        let mut status = SaveStatus::Created;
        if let Some((_, existing)) = store.workflow_version(&id, Some(version))? {
            status = if workflow.digest == existing {
                SaveStatus::Unchanged
            } else if published.contains(&version) {
                // A published version never changes: the edit becomes a new draft, unless the
                // newest version is already a draft with exactly this content.
                let newest = latest.unwrap_or(version);
                workflow = workflow.with_version(newest);
                let same_draft = !published.contains(&newest)
                    && store.workflow_version(&id, Some(newest))?.map(|(_, d)| d)
                        == Some(workflow.digest.clone());
                if same_draft {
                    SaveStatus::Unchanged
                } else {
                    workflow = workflow.with_version(newest + 1);
                    SaveStatus::NewDraft
                }
            } else {
                SaveStatus::Overwritten
            };
        }
        let version = workflow.definition.version;
        let mut writes = Vec::new();
        if status != SaveStatus::Unchanged {
            writes.push(Write::Workflow {
                id: id.clone(),
                version,
                digest: workflow.digest.clone(),
                json: serde_json::to_vec(&workflow.definition).map_err(anyhow::Error::from)?,
            });
        }
        let active = store.workflow_version(&id, None)?.map(|(v, _)| v);
        let publishing = (publish || latest.is_none()) && active != Some(version);
        if publishing {
            writes.push(Write::Publish {
                id: id.clone(),
                version,
            });
        }
        store.commit(writes).await?;
        let active_version = store.workflow_version(&id, None)?.map_or(version, |(v, _)| v);
        let saved = Saved {
            id,
            version,
            digest: workflow.digest.clone(),
            status,
            published: publishing || published.contains(&version),
            active_version,
        };
        Ok((saved, self.cache(workflow)))
    }

    /// Publishes `version` of workflow `id`: it becomes the active version.
    pub async fn publish(&self, id: &str, version: u64) -> Result<bool, anyhow::Error> {
        let _deciding = self.inner.version_writes.lock().await;
        if self.store().workflow_version(id, Some(version))?.is_none() {
            return Ok(false);
        }
        self.store()
            .commit(vec![Write::Publish {
                id: id.to_owned(),
                version,
            }])
            .await?;
        Ok(true)
    }

    /// Stores a definition as its own version and publishes it, for `weft run FILE`: the run
    /// uses exactly the file it was given.
    pub async fn register(&self, definition: workflow::Definition) -> Result<Arc<Workflow>, StartError> {
        let document = serde_json::to_value(&definition).map_err(anyhow::Error::from)?;
        Ok(self.save_version(document, true).await?.1)
    }

    /// Checks a definition against the plugins this engine knows and the limits: the
    /// template engine reads its templates in the sandbox, then the rest is checked off the
    /// async workers within `limits.validation_timeout`.
    pub async fn validate(&self, definition: workflow::Definition) -> Result<Workflow, StartError> {
        self.validate_with(definition, Arc::new(|_| false)).await
    }

    /// [`Engine::validate`], where plugins `arriving` accepts exist too (a bundle's).
    pub async fn validate_with(
        &self,
        definition: workflow::Definition,
        arriving: Arc<dyn Fn(&PluginRef) -> bool + Send + Sync>,
    ) -> Result<Workflow, StartError> {
        let plugins = self.plugins().clone();
        let reads = plugins
            .read_templates(&definition.template_sources())
            .await
            .map_err(|e| StartError::Internal(anyhow::anyhow!("cannot read templates: {e}")))?;
        let limits = plugins.limits().clone();
        let timeout = limits.validation_timeout;
        let work = tokio::task::spawn_blocking(move || {
            let exists = |r: &PluginRef| {
                if arriving(r) {
                    Ok(())
                } else {
                    plugins.resolve(r).map(drop)
                }
            };
            Workflow::validate(definition, &exists, &reads, &limits)
        });
        match tokio::time::timeout(timeout, work).await {
            Ok(Ok(validated)) => validated.map_err(StartError::Invalid),
            Ok(Err(e)) => Err(StartError::Internal(anyhow::anyhow!("validation crashed: {e}"))),
            Err(_) => Err(too_slow(timeout)),
        }
    }
}

fn too_slow(timeout: std::time::Duration) -> StartError {
    StartError::Invalid(workflow::Problems(vec![workflow::Problem {
        path: String::new(),
        message: format!(
            "checking the definition took longer than {} (limits.validation_timeout); make it smaller",
            humantime::format_duration(timeout)
        ),
    }]))
}
