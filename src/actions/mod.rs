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
//! use, replaced after every change, which it serializes), and offers the hook points to the
//! engine (functions and events) and to the API (requests and responses). It knows nothing
//! of HTTP or of runs beyond the events it is handed, and never changes a run itself.

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
use crate::store::{ActionWrite, Store, Write};
use anyhow::{anyhow, Result};
use model::EventScope;
use rules::RuleSet;
use serde_json::Value;
use std::sync::{Arc, RwLock};
use tokio::sync::Notify;

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
    plugins: PluginHost,
    /// Signalled after each batch of delivered events.
    delivered: Notify,
    /// Held from reading the rules to committing a change, so changes never interleave.
    changes: tokio::sync::Mutex<()>,
}

/// The current rule set. Kept apart from [`Inner`] because the plugin host's hook for added
/// plugins reads it, and must not hold the host itself.
struct RuleBook {
    store: Store,
    current: RwLock<Option<Arc<RuleSet>>>,
}

impl RuleBook {
    fn get(&self) -> Result<Arc<RuleSet>> {
        if let Some(rules) = self.current.read().expect("rules lock").as_ref() {
            return Ok(rules.clone());
        }
        let rules = Arc::new(load(&self.store)?);
        *self.current.write().expect("rules lock") = Some(rules.clone());
        Ok(rules)
    }

    fn replace(&self, rules: RuleSet) {
        *self.current.write().expect("rules lock") = Some(Arc::new(rules));
    }
}

fn load(store: &Store) -> Result<RuleSet> {
    let stored = store.action_rules()?;
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
    Ok(rules)
}

impl Actions {
    /// Sets actions up over `plugins` and starts delivering events, those left undelivered
    /// by an earlier process first (call inside a tokio runtime).
    pub fn start(plugins: PluginHost) -> Actions {
        let book = Arc::new(RuleBook {
            store: plugins.store().clone(),
            current: RwLock::new(None),
        });
        let hook_book = book.clone();
        plugins.on_added(Box::new(move |meta| {
            let event = ActionEvent::plugin_uploaded(meta);
            let rules = hook_book.get()?;
            Ok(outbox::write_for(&rules, event)?.into_iter().collect())
        }));
        let actions = Actions {
            inner: Arc::new(Inner {
                book,
                plugins,
                delivered: Notify::new(),
                changes: tokio::sync::Mutex::new(()),
            }),
        };
        tokio::spawn(outbox::deliver(actions.clone()));
        actions
    }

    fn rules(&self) -> Result<Arc<RuleSet>> {
        self.inner.book.get()
    }

    fn store(&self) -> &Store {
        self.inner.plugins.store()
    }

    /// The targets to call before (or after) an API operation, in order; empty when no rule
    /// applies.
    pub fn api_chain(&self, phase: Phase, method: &str, service: &str) -> Result<Vec<Arc<Target>>> {
        Ok(self.rules()?.api_chain(phase, method, service))
    }

    /// Calls `chain` on `payload` for `trigger`; returns the final payload, or why a target
    /// interrupted. The calls are logged without waiting for the log to be written.
    pub async fn run_chain(
        &self,
        trigger: &str,
        chain: &[Arc<Target>],
        payload: Value,
    ) -> Result<Value, Interrupted> {
        let end = dispatch::run(&self.inner.plugins, trigger, chain, payload, None).await;
        dispatch::commit_later(self.store(), end.log);
        end.outcome
    }

    /// Runs the targets of function `name` on `payload` (unchanged when no rule applies).
    pub async fn run_function(&self, name: &str, payload: Value) -> Result<Result<Value, Interrupted>> {
        let chain = self.rules()?.function_chain(name);
        if chain.is_empty() {
            return Ok(Ok(payload));
        }
        Ok(self.run_chain(name, &chain, payload).await)
    }

    /// The outbox writes for `events`, to commit with the change that caused them; events no
    /// rule would deliver are left out.
    pub fn event_writes(&self, events: Vec<ActionEvent>) -> Result<Vec<Write>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let rules = self.rules()?;
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
    pub fn outbox(&self, limit: usize) -> Result<Vec<Pending>> {
        self.store()
            .outbox(limit)?
            .into_iter()
            .map(|(_, json)| Ok(serde_json::from_slice(&json)?))
            .collect()
    }

    /// Up to `limit` actions log entries after `after` that `keep` accepts, with their
    /// sequence numbers.
    pub fn log(
        &self,
        after: Option<u64>,
        limit: usize,
        mut keep: impl FnMut(&LogEntry) -> bool,
    ) -> Result<Vec<(u64, LogEntry)>> {
        let entries = self.store().action_log(after, limit, |json| {
            serde_json::from_slice::<LogEntry>(json).is_ok_and(|entry| keep(&entry))
        })?;
        entries
            .into_iter()
            .map(|(seq, json)| Ok((seq, serde_json::from_slice(&json)?)))
            .collect()
    }

    /// Every target, by id.
    pub fn targets(&self) -> Result<Vec<Arc<Target>>> {
        Ok(self.rules()?.targets.values().cloned().collect())
    }

    pub fn target(&self, id: &str) -> Result<Arc<Target>, ActionError> {
        self.rules()?
            .targets
            .get(id)
            .cloned()
            .ok_or_else(|| ActionError::NotFound(format!("no action target {id}")))
    }

    /// Every execution rule, by condition key.
    pub fn executions(&self) -> Result<Vec<Execution>> {
        Ok(self.rules()?.executions.values().cloned().collect())
    }

    /// Creates a target from a complete spec.
    pub async fn create_target(&self, spec: TargetSpec) -> Result<Target, ActionError> {
        let missing = |field: &str| ActionError::Invalid(format!("{field}: missing; every target needs one"));
        let now = crate::run::now();
        let plugin = spec.plugin.ok_or_else(|| missing("plugin"))?;
        let resolved = self.target_plugin(&plugin)?;
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
        let mut target = (*self.target(id)?).clone();
        if let Some(plugin) = spec.plugin {
            let resolved = self.target_plugin(&plugin)?;
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
    fn target_plugin(
        &self,
        plugin: &crate::names::PluginRef,
    ) -> Result<crate::plugins::Resolved, ActionError> {
        let plugins = &self.inner.plugins;
        let resolved = plugins
            .resolve(plugin)
            .map_err(|e| ActionError::Invalid(format!("plugin: {e}")))?;
        match plugins.world_of(&resolved.digest)? {
            Some(World::Target) => Ok(resolved),
            _ => Err(ActionError::Invalid(format!(
                "plugin: {plugin} is a step plugin; a target needs a component exporting \
                 weft:plugin/target (world target-plugin), such as audit-sink or policy"
            ))),
        }
    }

    async fn save_target(&self, target: Target) -> Result<Target, ActionError> {
        target.check().map_err(ActionError::Invalid)?;
        let _changing = self.inner.changes.lock().await;
        let mut rules = (*self.rules()?).clone();
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
        let json = serde_json::to_vec(&target).map_err(anyhow::Error::from)?;
        let write = ActionWrite::Target {
            id: target.id.clone(),
            json,
        };
        self.store().commit(vec![Write::Action(write)]).await?;
        rules.targets.insert(target.id.clone(), Arc::new(target.clone()));
        self.inner.book.replace(rules);
        Ok(target)
    }

    /// Deletes a target and removes it from every rule; a rule left with no targets goes too.
    pub async fn delete_target(&self, id: &str) -> Result<(), ActionError> {
        let _changing = self.inner.changes.lock().await;
        let mut rules = (*self.rules()?).clone();
        if rules.targets.remove(id).is_none() {
            return Err(ActionError::NotFound(format!("no action target {id}")));
        }
        let mut writes = vec![Write::Action(ActionWrite::DeleteTarget(id.to_owned()))];
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
                writes.push(Write::Action(ActionWrite::DeleteExecution(key.clone())));
            } else {
                let json = serde_json::to_vec(&*execution).map_err(anyhow::Error::from)?;
                writes.push(Write::Action(ActionWrite::Execution {
                    key: key.clone(),
                    json,
                }));
            }
        }
        for key in emptied {
            rules.executions.remove(&key);
        }
        self.store().commit(writes).await?;
        self.inner.book.replace(rules);
        Ok(())
    }

    /// Sets the rule for a condition (ZITADEL's SetExecution). An empty target list removes
    /// the rule, so nothing runs for that condition unless a broader rule matches; then the
    /// result is none. Targets and included rules must exist; an include cycle is refused.
    pub async fn set_execution(&self, spec: ExecutionSpec) -> Result<Option<Execution>, ActionError> {
        check_names(&spec.condition).map_err(|e| ActionError::Invalid(format!("condition.{e}")))?;
        let _changing = self.inner.changes.lock().await;
        let mut rules = (*self.rules()?).clone();
        let key = spec.condition.key();
        if spec.targets.is_empty() {
            rules.executions.remove(&key);
            let write = ActionWrite::DeleteExecution(key);
            self.store().commit(vec![Write::Action(write)]).await?;
            self.inner.book.replace(rules);
            return Ok(None);
        }
        for (i, entry) in spec.targets.iter().enumerate() {
            match entry {
                Entry::Target(id) if !rules.targets.contains_key(id) => {
                    return Err(ActionError::Invalid(format!(
                        "targets[{i}].target: there is no target {id}; create it with POST /v1/actions/targets"
                    )))
                }
                Entry::Include(included) if !rules.executions.contains_key(&included.key()) && *included != spec.condition => {
                    return Err(ActionError::Invalid(format!(
                        "targets[{i}].include: there is no execution rule for {included}; set that one first"
                    )))
                }
                _ => {}
            }
        }
        let execution = Execution {
            condition: spec.condition,
            targets: spec.targets,
            changed_at: crate::run::now(),
        };
        if let Some(cycle) = rules.include_cycle(&execution) {
            return Err(ActionError::Invalid(format!(
                "targets: the includes would form a cycle: {}; remove one of them",
                cycle.join(" -> ")
            )));
        }
        let json = serde_json::to_vec(&execution).map_err(anyhow::Error::from)?;
        self.store()
            .commit(vec![Write::Action(ActionWrite::Execution {
                key: key.clone(),
                json,
            })])
            .await?;
        rules.executions.insert(key, execution.clone());
        self.inner.book.replace(rules);
        Ok(Some(execution))
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
