//! Persistence, behind one interface ([`Store`], see [`api`]) with two backends in their own
//! folders: [`redb`] (one file, the embedded default, one runner) and PostgreSQL (for several
//! runners sharing one database).
//!
//! Only the engine and the plugin catalog reach the store; everything else goes through them.
//! This module knows nothing of scheduling, WASM, auth or plugins: it keeps the documents and
//! keys the other modules hand it, and enforces the conditions their writes carry.

mod api;
pub mod copy;
mod postgres;
pub mod redb;

pub use api::*;

use crate::run::{RunState, StepState};
use std::sync::Arc;
use time::OffsetDateTime;

/// Where the data lives: a redb file, or a PostgreSQL URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    File(std::path::PathBuf),
    Postgres(String),
}

impl Location {
    /// `postgres://...` (or `postgresql://...`) is a PostgreSQL database; anything else is a
    /// file path.
    pub fn parse(text: &str) -> Location {
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            Location::Postgres(text.to_owned())
        } else {
            Location::File(text.into())
        }
    }
}

/// The index fields of a stored run document. The store reads them back only where it
/// rewrites a run its writer did not hand it: a claim, a copy.
pub fn index_of(doc: &[u8]) -> StoreResult<RunIndex> {
    #[derive(serde::Deserialize)]
    struct Fields {
        state: RunState,
        workflow: Workflow,
        started_by: String,
        #[serde(with = "time::serde::rfc3339")]
        created_at: OffsetDateTime,
        #[serde(default)]
        steps: Vec<Step>,
    }
    #[derive(serde::Deserialize)]
    struct Workflow {
        id: String,
    }
    /// A step, or an item under way (`map.active`), as `RunRecord::waiting_steps` reads it.
    #[derive(serde::Deserialize)]
    struct Step {
        state: StepState,
        #[serde(default)]
        waiting: Option<Waiting>,
        #[serde(default)]
        map: Option<Map>,
    }
    #[derive(serde::Deserialize)]
    struct Map {
        #[serde(default)]
        active: std::collections::BTreeMap<String, Item>,
    }
    #[derive(serde::Deserialize)]
    struct Item {
        record: Step,
    }
    #[derive(serde::Deserialize)]
    struct Waiting {
        #[serde(default)]
        assignees: Vec<String>,
    }
    let fields: Fields = serde_json::from_slice(doc)
        .map_err(|e| StoreError::Other(anyhow::anyhow!("a stored run is unreadable: {e}")))?;
    let waiting_for = if fields.state == RunState::Waiting {
        let mut units = Vec::new();
        for mut step in fields.steps {
            let items = step.map.take().map(|m| m.active.into_values().map(|i| i.record));
            units.push(step);
            units.extend(items.into_iter().flatten());
        }
        waiting_for(
            units
                .into_iter()
                .filter(|s| s.state == StepState::Waiting)
                .filter_map(|s| s.waiting)
                .flat_map(|w| w.assignees),
        )
    } else {
        Vec::new()
    };
    Ok(RunIndex {
        state: fields.state,
        workflow: fields.workflow.id,
        started_by: fields.started_by,
        created_at: fields.created_at,
        // Only a run's creation writes its input index; a rewrite leaves it as it is.
        inputs: Vec::new(),
        waiting_for,
    })
}

/// `assignees` as [`RunIndex::waiting_for`] holds them: sorted, without repeats.
pub(crate) fn waiting_for(assignees: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut all: Vec<String> = assignees.into_iter().collect();
    all.sort_unstable();
    all.dedup();
    all
}

/// A new runner id: unique, and sorting by start time.
pub fn new_runner_id() -> String {
    format!("runner-{}", uuid::Uuid::now_v7())
}

/// Opens the store at `location` as `runner`.
pub async fn open(location: &Location, runner: String) -> anyhow::Result<Arc<dyn Store>> {
    match location {
        Location::File(path) => Ok(Arc::new(redb::RedbStore::open(path, runner)?)),
        Location::Postgres(url) => Ok(Arc::new(postgres::PgStore::open(url, runner).await?)),
    }
}

/// `url` with its password, if any, replaced by `***`, for messages.
pub fn mask_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked() {
        assert_eq!(
            mask_password("postgres://weft:s3cret@db:5432/weft"),
            "postgres://weft:***@db:5432/weft"
        );
        assert_eq!(
            mask_password("postgres://weft@db/weft"),
            "postgres://weft@db/weft"
        );
        assert_eq!(Location::parse("weft.redb"), Location::File("weft.redb".into()));
    }
}
