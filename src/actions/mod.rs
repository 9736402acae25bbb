//! Actions (ZITADEL Actions v2): when something happens, call an ordered list of targets,
//! each a WASM component exporting the `target` world.
//!
//! - [`model`]: targets, conditions and execution rules, checked as they are built;
//! - [`rules`]: which rule wins for a trigger and what its list expands to;
//! - [`dispatch`]: calling a chain of targets and logging each call;
//! - [`outbox`]: durable events, delivered at least once by one task;
//! - [`events`]: the events there are and their payloads.
//!
//! [`Actions`] ties them together: it keeps the current rule set in memory (loaded on first
//! use, read again whenever any runner changed it), and offers the hook points to the engine
//! (functions and events) and to the API (requests and responses). Every change to targets
//! and rules carries the rule set's revision it was made from, so two changes on two runners
//! never interleave: the later one is made again from the rules the earlier one left. It
//! knows nothing of HTTP or of runs beyond the events it is handed, and never changes a run
//! itself.

mod dispatch;
pub mod events;
pub mod model;
mod outbox;
mod rules;

pub use dispatch::{Delivery, Interrupted, LogEntry};
pub use events::ActionEvent;
pub use model::{Condition, ConditionKind, Entry, Execution, ExecutionSpec, Target, TargetSpec, TargetType};
pub use outbox::Pending;
pub use rules::Phase;

use crate::plugins::{PluginHost, World};
use crate::store::{ActionWrite, Notice, Store, StoreError, Write};
use anyhow::{anyhow, Result};
use model::EventScope;
use rules::RuleSet;
use serde_json::Value;
use std::sync::{Arc, RwLock};
use tokio::sync::Notify;

/// How often a change to the rules that keeps losing races with other runners is tried.
const MAX_ATTEMPTS: usize = 16;

impl From<StoreError> for ActionError {
    fn from(e: StoreError) -> ActionError {
        ActionError::Internal(e.into())
    }
}

/// The engine's hook points that `function` conditions name, with what a target may do there.
pub const FUNCTIONS: &[(&str, &str)] = &[(
    "pre_start",
    "before a run is created: a call target may change `inputs`; an interrupting failure refuses the start",
)];

/// Why a change to targets or rules was refused. Nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// The request names something wrong; the message says which field and how to fix it.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    /// It clashes with what exists (a target name taken).
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// Targets, rules, hooks and event delivery; cheap to clone.
#[derive(Clone)]
pub struct Actions {
    inner: Arc<Inner>,
}

struct Inner {
    book: Arc<RuleBook>,
    store: Arc<dyn Store>,
    plugins: PluginHost,
    /// Signalled after each batch of delivered events.
    delivered: Notify,
}

/// The current rule set and the revision it was read at. Kept apart from [`Inner`] because
/// the plugin host's hook for added plugins reads it, and must not hold the host itself.
struct RuleBook {
    store: Arc<dyn Store>,
    current: RwLock<Option<(u64, Arc<RuleSet>)>>,
}

impl RuleBook {
    async fn get(&self) -> Result<Arc<RuleSet>> {
        Ok(self.get_with_revision().await?.1)
    }

    async fn get_with_revision(&self) -> Result<(u64, Arc<RuleSet>)> {
        if let Some(current) = self.current.read().expect("rules lock").as_ref() {
            return Ok(current.clone());
        }
        let (revision, rules) = load(&*self.store).await?;
        let loaded = (revision, Arc::new(rules));
        *self.current.write().expect("rules lock") = Some(loaded.clone());
        Ok(loaded)
    }

    fn replace(&self, revision: u64, rules: RuleSet) {
        *self.current.write().expect("rules lock") = Some((revision, Arc::new(rules)));
    }

    /// Forgets the rules in memory: some runner changed them.
    fn forget(&self) {
        *self.current.write().expect("rules lock") = None;
    }
}

async fn load(store: &dyn Store) -> Result<(u64, RuleSet)> {
    let stored = store.action_rules().await?;
    let mut rules = RuleSet::default();
    for json in stored.targets {
        let target: Target = serde_json::from_slice(&json)
            .map_err(|e| anyhow!("a stored action target is unreadable: {e}"))?;
        rules.targets.insert(target.id.clone(), Arc::new(target));
    }
    for json in stored.executions {
        let execution: Execution = serde_json::from_slice(&json)
            .map_err(|e| anyhow!("a stored execution rule is unreadable: {e}"))?;
        rules.executions.insert(execution.condition.key(), execution);
    }
    Ok((stored.revision, rules))
}

/// Forgets the rules in memory whenever a runner changes them, and once a second checks the
/// revision in case a notice was lost, so a change on one runner applies on the others within
/// a second.
async fn follow_rules(
    book: std::sync::Weak<RuleBook>,
    mut notices: tokio::sync::broadcast::Receiver<Notice>,
) {
    loop {
        let changed = tokio::time::timeout(std::time::Duration::from_secs(1), async {
            loop {
                match notices.recv().await {
                    Ok(Notice::Rules) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        return true
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return false,
                }
            }
        })
        .await;
        let Some(book) = book.upgrade() else { return };
        match changed {
            Ok(true) => book.forget(),
            Ok(false) => return,
            Err(_) => {
                let known = book.current.read().expect("rules lock").as_ref().map(|(r, _)| *r);
                match book.store.rules_revision().await {
                    Ok(revision) if Some(revision) != known && known.is_some() => book.forget(),
                    Ok(_) => {}
                    Err(e) => tracing::warn!("cannot check the action rules: {e}"),
                }
            }
        }
    }
}

impl Actions {
    /// Sets actions up over `store` and `plugins` (call inside a tokio runtime). Events are
    /// delivered once [`Actions::start_delivery`] is called.
    pub fn new(store: Arc<dyn Store>, plugins: PluginHost) -> Actions {
        let book = Arc::new(RuleBook {
            store: store.clone(),
            current: RwLock::new(None),
        });
        tokio::spawn(follow_rules(Arc::downgrade(&book), store.subscribe()));
        let hook_book = book.clone();
        plugins.on_added(Box::new(move |meta| {
            let book = hook_book.clone();
            let event = ActionEvent::plugin_uploaded(&meta);
            Box::pin(async move {
                let rules = book.get().await?;
                Ok(outbox::write_for(&rules, event)?.into_iter().collect())
            })
        }));
        Actions {
            inner: Arc::new(Inner {
                book,
                store,
                plugins,
                delivered: Notify::new(),
            }),
        }
    }

    /// Starts delivering events, those left undelivered by an earlier process first; the
    /// task runs until aborted.
    pub fn start_delivery(&self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(outbox::deliver(self.clone()))
    }

    async fn rules(&self) -> Result<Arc<RuleSet>> {
        self.inner.book.get().await
    }

    /// The targets to call before (or after) an API operation, in order; empty when no rule
    /// applies.
    pub async fn api_chain(&self, phase: Phase, method: &str, service: &str) -> Result<Vec<Arc<Target>>> {
        Ok(self.rules().await?.api_chain(phase, method, service))
    }

    /// Calls `chain` on `payload` for `trigger`; returns the final payload, or why a target
    /// interrupted. The calls are logged without waiting for the log to be written.
    pub async fn run_chain(
        &self,
        trigger: &str,
        chain: &[Arc<Target>],
        payload: Value,
    ) -> Result<Value, Interrupted> {
        let end = dispatch::run(
            &self.inner.plugins,
            &self.inner.store,
            trigger,
            chain,
            payload,
            None,
        )
        .await;
        // The calls' log joins the next commit; the request does not wait for it.
        self.inner.store.enqueue(end.log);
        end.outcome
    }

    /// Runs the targets of function `name` on `payload` (unchanged when no rule applies).
    pub async fn run_function(&self, name: &str, payload: Value) -> Result<Result<Value, Interrupted>> {
        let chain = self.rules().await?.function_chain(name);
        if chain.is_empty() {
            return Ok(Ok(payload));
        }
        Ok(self.run_chain(name, &chain, payload).await)
    }

    /// The outbox writes for `events`, to commit with the change that caused them; events no
    /// rule would deliver are left out.
    pub async fn event_writes(&self, events: Vec<ActionEvent>) -> Result<Vec<Write>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let rules = self.rules().await?;
        let mut writes = Vec::new();
        for event in events {
            writes.extend(outbox::write_for(&rules, event)?);
        }
        Ok(writes)
    }

    /// Waits until every event in the outbox was delivered.
    pub async fn drained(&self) -> Result<()> {
        outbox::drained(self).await
    }

    /// Events not delivered yet, oldest first.
    pub async fn outbox(&self, limit: usize) -> Result<Vec<Pending>> {
        self.inner
            .store
            .outbox(limit)
            .await?
            .into_iter()
            .map(|(_, json)| Ok(serde_json::from_slice(&json)?))
            .collect()
    }

    /// Up to `limit` actions log entries after `after` that `keep` accepts, with their
    /// sequence numbers.
    pub async fn log(
        &self,
        after: Option<u64>,
        limit: usize,
        mut keep: impl FnMut(&LogEntry) -> bool + Send,
    ) -> Result<Vec<(u64, LogEntry)>> {
        self.inner.store.flush().await?;
        let mut accept =
            |json: &[u8]| serde_json::from_slice::<LogEntry>(json).is_ok_and(|entry| keep(&entry));
        let entries = self.inner.store.action_log(after, limit, &mut accept).await?;
        entries
            .into_iter()
            .map(|(seq, json)| Ok((seq, serde_json::from_slice(&json)?)))
            .collect()
    }

    /// Every target, by id.
    pub async fn targets(&self) -> Result<Vec<Arc<Target>>> {
        Ok(self.rules().await?.targets.values().cloned().collect())
    }

    pub async fn target(&self, id: &str) -> Result<Arc<Target>, ActionError> {
        self.rules()
            .await?
            .targets
            .get(id)
            .cloned()
            .ok_or_else(|| ActionError::NotFound(format!("no action target {id}")))
    }

    /// Every execution rule, by condition key.
    pub async fn executions(&self) -> Result<Vec<Execution>> {
        Ok(self.rules().await?.executions.values().cloned().collect())
    }

    /// Creates a target from a complete spec.
    pub async fn create_target(&self, spec: TargetSpec) -> Result<Target, ActionError> {
        let missing = |field: &str| ActionError::Invalid(format!("{field}: missing; every target needs one"));
        let now = crate::run::now();
        let plugin = spec.plugin.ok_or_else(|| missing("plugin"))?;
        let resolved = self.target_plugin(&plugin).await?;
        let target = Target {
            id: uuid::Uuid::now_v7().to_string(),
            name: spec.name.ok_or_else(|| missing("name"))?,
            digest: resolved.digest,
            declared_as: resolved.declared_as,
            plugin,
            kind: spec
                .kind
                .ok_or_else(|| missing("type (call, webhook or async)"))?,
            timeout: spec.timeout.unwrap_or(model::DEFAULT_TIMEOUT),
            interrupt_on_error: spec.interrupt_on_error.unwrap_or(false),
            config: spec.config.unwrap_or_default(),
            created_at: now,
            changed_at: now,
        };
        self.save_target(target).await
    }

    /// Changes the fields `spec` gives; the others keep their values.
    pub async fn update_target(&self, id: &str, spec: TargetSpec) -> Result<Target, ActionError> {
        let mut target = (*self.target(id).await?).clone();
        if let Some(plugin) = spec.plugin {
            let resolved = self.target_plugin(&plugin).await?;
            target.digest = resolved.digest;
            target.declared_as = resolved.declared_as;
            target.plugin = plugin;
        }
        target.name = spec.name.unwrap_or(target.name);
        target.kind = spec.kind.unwrap_or(target.kind);
        target.timeout = spec.timeout.unwrap_or(target.timeout);
        target.interrupt_on_error = spec.interrupt_on_error.unwrap_or(target.interrupt_on_error);
        target.config = spec.config.unwrap_or(target.config);
        target.changed_at = crate::run::now();
        self.save_target(target).await
    }

    /// Resolves a target's plugin to the digest it will call, refusing step plugins.
    async fn target_plugin(
        &self,
        plugin: &crate::names::PluginRef,
    ) -> Result<crate::plugins::Resolved, ActionError> {
        let plugins = &self.inner.plugins;
        let resolved = plugins
            .resolve(plugin)
            .await
            .map_err(|e| ActionError::Invalid(format!("plugin: {e}")))?;
        match plugins.world_of(&resolved.digest).await? {
            Some(World::Target) => Ok(resolved),
            _ => Err(ActionError::Invalid(format!(
                "plugin: {plugin} is a step plugin; a target needs a component exporting \
                 weft:plugin/target (world target-plugin), such as audit-sink or policy"
            ))),
        }
    }

    async fn save_target(&self, target: Target) -> Result<Target, ActionError> {
        target.check().map_err(ActionError::Invalid)?;
        // A config its plugin describes must fit, before any event calls it.
        if let Some(contract) = self.inner.plugins.contract(&target.digest).await? {
            let mismatches = contract.check_config(&serde_json::Value::Object(target.config.clone()));
            if !mismatches.is_empty() {
                return Err(ActionError::Invalid(crate::plugins::describe_mismatches(
                    &mismatches,
                    "config",
                )));
            }
        }
        self.change(|rules| {
            if let Some(other) = rules
                .targets
                .values()
                .find(|t| t.name == target.name && t.id != target.id)
            {
                return Err(ActionError::Conflict(format!(
                    "name: target {} is already called {:?}; choose another name",
                    other.id, target.name
                )));
            }
            let doc = serde_json::to_vec(&target).map_err(anyhow::Error::from)?;
            rules.targets.insert(target.id.clone(), Arc::new(target.clone()));
            Ok((
                vec![ActionWrite::Target {
                    id: target.id.clone(),
                    doc,
                }],
                (),
            ))
        })
        .await?;
        Ok(target)
    }

    /// Makes one change to the rules: `change` edits a copy of the current rules and returns
    /// the writes that store the edit; they are committed with the revision the rules were
    /// read at, and when another runner changed the rules first the change is made again
    /// from theirs.
    async fn change<T>(
        &self,
        mut change: impl FnMut(&mut RuleSet) -> Result<(Vec<ActionWrite>, T), ActionError>,
    ) -> Result<T, ActionError> {
        for _ in 0..MAX_ATTEMPTS {
            let (revision, current) = self.inner.book.get_with_revision().await?;
            let mut rules = (*current).clone();
            let (writes, result) = change(&mut rules)?;
            let mut writes: Vec<Write> = writes.into_iter().map(Write::Action).collect();
            writes.push(Write::Action(ActionWrite::RulesRevision { expect: revision }));
            match self.inner.store.commit(writes).await {
                Ok(()) => {
                    self.inner.book.replace(revision + 1, rules);
                    return Ok(result);
                }
                Err(StoreError::Stale(_)) => self.inner.book.forget(),
                Err(e) => return Err(e.into()),
            }
        }
        Err(ActionError::Internal(anyhow!(
            "the action rules kept changing while this change was made; try again"
        )))
    }

    /// Deletes a target and removes it from every rule; a rule left with no targets goes too.
    pub async fn delete_target(&self, id: &str) -> Result<(), ActionError> {
        self.change(|rules| {
            if rules.targets.remove(id).is_none() {
                return Err(ActionError::NotFound(format!("no action target {id}")));
            }
            let mut writes = vec![ActionWrite::DeleteTarget(id.to_owned())];
            let now = crate::run::now();
            let mut emptied = Vec::new();
            for (key, execution) in rules.executions.iter_mut() {
                let before = execution.targets.len();
                execution.targets.retain(|e| *e != Entry::Target(id.to_owned()));
                if execution.targets.len() == before {
                    continue;
                }
                execution.changed_at = now;
                if execution.targets.is_empty() {
                    emptied.push(key.clone());
                    writes.push(ActionWrite::DeleteExecution(key.clone()));
                } else {
                    let doc = serde_json::to_vec(&*execution).map_err(anyhow::Error::from)?;
                    writes.push(ActionWrite::Execution {
                        key: key.clone(),
                        doc,
                    });
                }
            }
            for key in emptied {
                rules.executions.remove(&key);
            }
            Ok((writes, ()))
        })
        .await
    }

    /// Sets the rule for a condition (ZITADEL's SetExecution). An empty target list removes
    /// the rule, so nothing runs for that condition unless a broader rule matches; then the
    /// result is none. Targets and included rules must exist; an include cycle is refused.
    pub async fn set_execution(&self, spec: ExecutionSpec) -> Result<Option<Execution>, ActionError> {
        check_names(&spec.condition).map_err(|e| ActionError::Invalid(format!("condition.{e}")))?;
        let key = spec.condition.key();
        self.change(|rules| {
            if spec.targets.is_empty() {
                rules.executions.remove(&key);
                return Ok((vec![ActionWrite::DeleteExecution(key.clone())], None));
            }
            for (i, entry) in spec.targets.iter().enumerate() {
                match entry {
                    Entry::Target(id) if !rules.targets.contains_key(id) => {
                        return Err(ActionError::Invalid(format!(
                            "targets[{i}].target: there is no target {id}; create it with POST /v1/actions/targets"
                        )))
                    }
                    Entry::Include(included)
                        if !rules.executions.contains_key(&included.key()) && *included != spec.condition =>
                    {
                        return Err(ActionError::Invalid(format!(
                            "targets[{i}].include: there is no execution rule for {included}; set that one first"
                        )))
                    }
                    _ => {}
                }
            }
            let execution = Execution {
                condition: spec.condition.clone(),
                targets: spec.targets.clone(),
                changed_at: crate::run::now(),
            };
            if let Some(cycle) = rules.include_cycle(&execution) {
                return Err(ActionError::Invalid(format!(
                    "targets: the includes would form a cycle: {}; remove one of them",
                    cycle.join(" -> ")
                )));
            }
            let doc = serde_json::to_vec(&execution).map_err(anyhow::Error::from)?;
            rules.executions.insert(key.clone(), execution.clone());
            Ok((vec![ActionWrite::Execution { key: key.clone(), doc }], Some(execution)))
        })
        .await
    }
}

/// Checks that an event condition names known events and a function condition a known hook
/// point; API operations are the API's to check.
fn check_names(condition: &Condition) -> Result<(), String> {
    let known_events = || {
        events::EVENTS
            .iter()
            .map(|(e, _)| *e)
            .collect::<Vec<_>>()
            .join(", ")
    };
    match condition {
        Condition::Event(EventScope::Event(e)) if !events::is_event(e) => Err(format!(
            "event.event: unknown event {e:?}; known events: {}",
            known_events()
        )),
        Condition::Event(EventScope::Group(g)) if !events::is_group(g) => Err(format!(
            "event.group: unknown event group {g:?}; groups are the part of an event name before \
             the dot, of: {}",
            known_events()
        )),
        Condition::Function(name) if !FUNCTIONS.iter().any(|(f, _)| f == name) => Err(format!(
            "function.name: unknown function {name:?}; known functions: {}",
            FUNCTIONS.iter().map(|(f, _)| *f).collect::<Vec<_>>().join(", ")
        )),
        _ => Ok(()),
    }
}
