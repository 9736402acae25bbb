//! Workflow versions: creating, overwriting and publishing them.
//!
//! A workflow's first version is published (active) as soon as it is stored. Later versions
//! are drafts until published; publishing one makes it the active version, the one runs start
//! on unless they name another. A draft may be overwritten; storing other content under a
//! published version creates a new draft instead, so a published version never changes.

use super::{Engine, StartError};
use crate::names::{Digest, PluginRef};
use crate::store::{StoreError, Write};
use crate::workflow::{self, Workflow};
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// Another runner saved a version of the same workflow first; decide again.
struct Raced;

/// Versions, publications and plugins gathered to be committed together (a bundle import:
/// all or nothing), each made by the one path for its kind.
#[derive(Default)]
pub struct Staged {
    writes: Vec<Write>,
}

/// What staging a version found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StagedVersion {
    /// Not there yet: staged.
    New,
    /// There with the same content: nothing to write.
    Unchanged,
    /// There with other content, this digest.
    Conflict(Digest),
}

/// The write that stores `workflow` under its version: new when `replaces` is none, else
/// over the draft with that digest.
fn version_write(workflow: &Workflow, replaces: Option<Digest>) -> Result<Write, StartError> {
    Ok(Write::Workflow {
        id: workflow.definition.id.clone(),
        version: workflow.definition.version,
        digest: workflow.digest.clone(),
        definition: serde_json::to_vec(&workflow.definition).map_err(|e| StartError::Internal(e.into()))?,
        replaces,
    })
}

/// The value of an inner result, or from the enclosing function its error as the outer
/// `Ok`: [`Engine::try_save_version`] keeps real errors apart from a lost race.
macro_rules! try_ok {
    ($result:expr) => {
        match $result {
            Ok(value) => value,
            Err(e) => return Ok(Err(e.into())),
        }
    };
}

/// What storing a definition did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
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
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
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
    /// `version` the next one is assigned. With `publish` the version becomes active. The
    /// store takes a version number once, so of two runners saving at once, one gets the
    /// number and the other decides again with it taken.
    pub async fn save_version(
        &self,
        document: Value,
        publish: bool,
    ) -> Result<(Saved, Arc<Workflow>), StartError> {
        for _ in 0..super::driver::MAX_ATTEMPTS {
            match self.try_save_version(document.clone(), publish).await {
                Err(Raced) => continue,
                Ok(saved) => return saved,
            }
        }
        Err(StartError::Internal(anyhow::anyhow!(
            "the workflow's versions kept changing while this one was saved; try again"
        )))
    }

    async fn try_save_version(
        &self,
        mut document: Value,
        publish: bool,
    ) -> Result<Result<(Saved, Arc<Workflow>), StartError>, Raced> {
        let store = &self.inner.store;
        let id = document.get("id").and_then(Value::as_str).map(str::to_owned);
        let latest = match &id {
            Some(id) => try_ok!(store.latest_version(id).await),
            None => None,
        };
        // Without a version the next one is assigned; if another runner takes that number
        // first, the save is decided again (it never lands on their version).
        let mut numbered = false;
        if let Some(object) = document.as_object_mut() {
            object.entry("version").or_insert_with(|| {
                numbered = true;
                Value::from(latest.map_or(1, |v| v + 1))
            });
        }
        let definition = try_ok!(workflow::from_value(document).map_err(StartError::Invalid));
        // Validity does not depend on the version number, so one validation serves every
        // version the content may end up under.
        let mut workflow = try_ok!(self.validate(definition).await);
        let (id, version) = (workflow.definition.id.clone(), workflow.definition.version);
        let published = try_ok!(store.published_versions(&id).await);
        let mut status = SaveStatus::Created;
        let mut replaces = None;
        if let Some((_, existing)) = try_ok!(store.workflow_version(&id, Some(version)).await) {
            if numbered {
                return Err(Raced);
            }
            status = if workflow.digest == existing {
                SaveStatus::Unchanged
            } else if published.contains(&version) {
                // A published version never changes: the edit becomes a new draft, unless the
                // newest version is already a draft with exactly this content.
                let newest = latest.unwrap_or(version);
                workflow = workflow.with_version(newest);
                let newest_digest = try_ok!(store.workflow_version(&id, Some(newest)).await).map(|(_, d)| d);
                if !published.contains(&newest) && newest_digest == Some(workflow.digest.clone()) {
                    SaveStatus::Unchanged
                } else {
                    workflow = workflow.with_version(newest + 1);
                    SaveStatus::NewDraft
                }
            } else {
                replaces = Some(existing);
                SaveStatus::Overwritten
            };
        }
        let version = workflow.definition.version;
        let mut writes = Vec::new();
        if status != SaveStatus::Unchanged {
            writes.push(try_ok!(version_write(&workflow, replaces)));
        }
        let active = try_ok!(store.workflow_version(&id, None).await).map(|(v, _)| v);
        let publishing = (publish || latest.is_none()) && active != Some(version);
        if publishing {
            writes.push(Write::Publish {
                id: id.clone(),
                version,
            });
        }
        match store.commit(writes).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_) | StoreError::Stale(_)) => return Err(Raced),
            Err(e) => return Ok(Err(e.into())),
        }
        let active_version = try_ok!(store.workflow_version(&id, None).await).map_or(version, |(v, _)| v);
        let saved = Saved {
            id,
            version,
            digest: workflow.digest.clone(),
            status,
            published: publishing || published.contains(&version),
            active_version,
        };
        Ok(Ok((saved, self.cache(workflow))))
    }

    /// Publishes `version` of workflow `id`: it becomes the active version.
    pub async fn publish(&self, id: &str, version: u64) -> Result<bool, anyhow::Error> {
        if self
            .inner
            .store
            .workflow_version(id, Some(version))
            .await?
            .is_none()
        {
            return Ok(false);
        }
        self.inner
            .store
            .commit(vec![Write::Publish {
                id: id.to_owned(),
                version,
            }])
            .await?;
        Ok(true)
    }

    /// Adds `workflow` at its own version number to `staged`: a new version is staged, the
    /// same content already there is left alone, other content there is a conflict.
    pub async fn stage_version(
        &self,
        staged: &mut Staged,
        workflow: &Workflow,
    ) -> Result<StagedVersion, StartError> {
        let (id, version) = (&workflow.definition.id, workflow.definition.version);
        match self.inner.store.workflow_version(id, Some(version)).await? {
            Some((_, digest)) if digest == workflow.digest => Ok(StagedVersion::Unchanged),
            Some((_, digest)) => Ok(StagedVersion::Conflict(digest)),
            None => {
                staged.writes.push(version_write(workflow, None)?);
                Ok(StagedVersion::New)
            }
        }
    }

    /// Adds publishing `version` of workflow `id` to `staged`.
    pub fn stage_publish(&self, staged: &mut Staged, id: &str, version: u64) {
        staged.writes.push(Write::Publish {
            id: id.to_owned(),
            version,
        });
    }

    /// Adds a plugin to `staged`, through the catalog's one way of adding plugins.
    pub async fn stage_plugin(
        &self,
        staged: &mut Staged,
        name: &str,
        version: &str,
        bytes: Vec<u8>,
    ) -> Result<crate::plugins::Prepared, crate::plugins::AddError> {
        let mut prepared = self.plugins().prepare(name, version, bytes).await?;
        staged.writes.append(&mut prepared.writes);
        Ok(prepared)
    }

    /// Commits everything staged in one transaction: all of it, or (when another runner took
    /// a version or a plugin name meanwhile) none of it.
    pub async fn commit_staged(&self, staged: Staged) -> Result<(), StoreError> {
        self.inner.store.commit(staged.writes).await
    }

    /// Every version of workflow `id`, oldest first, with its definition digest.
    pub async fn workflow_versions(&self, id: &str) -> anyhow::Result<Vec<(u64, Digest)>> {
        Ok(self.inner.store.workflow_versions(id).await?)
    }

    /// The versions of workflow `id` that were published.
    pub async fn published_versions(&self, id: &str) -> anyhow::Result<Vec<u64>> {
        Ok(self.inner.store.published_versions(id).await?)
    }

    /// The active version of workflow `id`, if it has one.
    pub async fn active_version(&self, id: &str) -> anyhow::Result<Option<u64>> {
        Ok(self.inner.store.workflow_version(id, None).await?.map(|(v, _)| v))
    }

    /// The latest version of every workflow: (id, version, digest), by id.
    pub async fn workflows(&self) -> anyhow::Result<Vec<(String, u64, Digest)>> {
        Ok(self.inner.store.workflows().await?)
    }

    /// Deletes every version of workflow `id`; false if there was none. Runs keep the
    /// definition they started with.
    pub async fn delete_workflow(&self, id: &str) -> anyhow::Result<bool> {
        if self.inner.store.workflow_versions(id).await?.is_empty() {
            return Ok(false);
        }
        self.inner
            .store
            .commit(vec![Write::DeleteWorkflow(id.to_owned())])
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
        // Plugin references are resolved first (that reads the store); validation itself
        // then runs on the blocking pool with the answers.
        let mut resolved: HashMap<PluginRef, crate::workflow::PluginLookup> = HashMap::new();
        for step in definition.all_steps() {
            let Some(Ok(reference)) = step.plugin.as_deref().map(str::parse::<PluginRef>) else {
                continue;
            };
            if let std::collections::hash_map::Entry::Vacant(slot) = resolved.entry(reference) {
                let found = if arriving(slot.key()) {
                    Ok(None)
                } else {
                    match plugins.resolve(slot.key()).await {
                        Ok(r) => plugins.contract(&r.digest).await.map_err(|e| format!("{e:#}")),
                        Err(e) => Err(e),
                    }
                };
                slot.insert(found);
            }
        }
        let limits = plugins.limits().clone();
        let timeout = limits.validation_timeout;
        let work = tokio::task::spawn_blocking(move || {
            let exists = |r: &PluginRef| resolved.get(r).cloned().unwrap_or(Ok(None));
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
