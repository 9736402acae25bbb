//! The rule set: every target and execution rule, and how a trigger finds its targets.
//!
//! For a trigger, the most specific rule wins: a method's over its service's over `all` (and
//! an event's over its group's over `all`); only that rule's targets are called. Its list is
//! expanded in order, an `include` standing for the included rule's own (expanded) list. A
//! rule whose list is empty is not stored, so it never hides a broader one. Cycles through
//! includes are refused when a rule is set ([`RuleSet::include_cycle`]); expansion still stops
//! at one, so a damaged store cannot hang a request.
//!
//! This module reads and rearranges rules; it never stores them or calls a target.

use super::model::{ApiScope, Condition, Entry, EventScope, Execution, Target};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Every target (by id) and every execution rule (by condition key), at one moment.
#[derive(Clone, Default)]
pub struct RuleSet {
    pub targets: BTreeMap<String, Arc<Target>>,
    pub executions: BTreeMap<String, Execution>,
}

/// Which side of an API call a hook runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Request,
    Response,
}

impl RuleSet {
    /// The targets to call before (or after) API operation `method` of `service`.
    pub fn api_chain(&self, phase: Phase, method: &str, service: &str) -> Vec<Arc<Target>> {
        let wrap = match phase {
            Phase::Request => Condition::Request,
            Phase::Response => Condition::Response,
        };
        self.chain(&[
            wrap(ApiScope::Method(method.to_owned())),
            wrap(ApiScope::Service(service.to_owned())),
            wrap(ApiScope::All),
        ])
    }

    /// The targets to call for event `name`.
    pub fn event_chain(&self, name: &str) -> Vec<Arc<Target>> {
        self.chain(&[
            Condition::Event(EventScope::Event(name.to_owned())),
            Condition::Event(EventScope::Group(super::events::group(name).to_owned())),
            Condition::Event(EventScope::All),
        ])
    }

    /// The targets to call at the engine's hook point `name`.
    pub fn function_chain(&self, name: &str) -> Vec<Arc<Target>> {
        self.chain(&[Condition::Function(name.to_owned())])
    }

    /// The expanded list of the first of `candidates` (most specific first) that has a rule.
    fn chain(&self, candidates: &[Condition]) -> Vec<Arc<Target>> {
        let Some(rule) = candidates.iter().find_map(|c| self.executions.get(&c.key())) else {
            return Vec::new();
        };
        let mut chain = Vec::new();
        let mut path = vec![rule.condition.key()];
        self.expand(&rule.targets, &mut path, &mut chain);
        chain
    }

    fn expand(&self, entries: &[Entry], path: &mut Vec<String>, chain: &mut Vec<Arc<Target>>) {
        for entry in entries {
            match entry {
                Entry::Target(id) => chain.extend(self.targets.get(id).cloned()),
                Entry::Include(condition) => {
                    let key = condition.key();
                    if path.contains(&key) {
                        continue;
                    }
                    if let Some(included) = self.executions.get(&key) {
                        path.push(key);
                        self.expand(&included.targets, path, chain);
                        path.pop();
                    }
                }
            }
        }
    }

    /// The include cycle `rule` would close if it were set, as the keys along it
    /// (`a -> b -> a`), or none.
    pub fn include_cycle(&self, rule: &Execution) -> Option<Vec<String>> {
        let start = rule.condition.key();
        let mut path = vec![start.clone()];
        self.find_cycle(&start, &rule.targets, &mut path)
    }

    fn find_cycle(&self, start: &str, entries: &[Entry], path: &mut Vec<String>) -> Option<Vec<String>> {
        for entry in entries {
            let Entry::Include(condition) = entry else {
                continue;
            };
            let key = condition.key();
            if key == start {
                let mut cycle = path.clone();
                cycle.push(key);
                return Some(cycle);
            }
            if path.contains(&key) {
                continue;
            }
            if let Some(included) = self.executions.get(&key) {
                path.push(key);
                if let Some(cycle) = self.find_cycle(start, &included.targets, path) {
                    return Some(cycle);
                }
                path.pop();
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::model::TargetType;
    use std::time::Duration;

    fn target(id: &str) -> Arc<Target> {
        Arc::new(Target {
            id: id.into(),
            name: id.into(),
            plugin: "audit-sink".parse().unwrap(),
            digest: crate::names::Digest::of(id.as_bytes()),
            declared_as: None,
            kind: TargetType::Call,
            timeout: Duration::from_secs(1),
            interrupt_on_error: false,
            config: Default::default(),
            created_at: crate::run::now(),
            changed_at: crate::run::now(),
        })
    }

    fn rule(condition: Condition, targets: Vec<Entry>) -> Execution {
        Execution {
            condition,
            targets,
            changed_at: crate::run::now(),
        }
    }

    fn set(rules: Vec<Execution>) -> RuleSet {
        let mut set = RuleSet::default();
        for id in ["a", "b", "c"] {
            set.targets.insert(id.into(), target(id));
        }
        for r in rules {
            set.executions.insert(r.condition.key(), r);
        }
        set
    }

    fn ids(chain: Vec<Arc<Target>>) -> Vec<String> {
        chain.iter().map(|t| t.id.clone()).collect()
    }

    fn method(m: &str) -> Condition {
        Condition::Request(ApiScope::Method(m.into()))
    }

    fn service(s: &str) -> Condition {
        Condition::Request(ApiScope::Service(s.into()))
    }

    #[test]
    fn the_most_specific_rule_wins() {
        let rules = set(vec![
            rule(Condition::Request(ApiScope::All), vec![Entry::Target("a".into())]),
            rule(service("v1.Executions"), vec![Entry::Target("b".into())]),
            rule(method("/v1.Executions/Start"), vec![Entry::Target("c".into())]),
        ]);
        let chain = |m: &str, s: &str| ids(rules.api_chain(Phase::Request, m, s));
        assert_eq!(chain("/v1.Executions/Start", "v1.Executions"), ["c"]);
        assert_eq!(chain("/v1.Executions/Cancel", "v1.Executions"), ["b"]);
        assert_eq!(chain("/v1.Plugins/Upload", "v1.Plugins"), ["a"]);
        assert!(rules
            .api_chain(Phase::Response, "/v1.Plugins/Upload", "v1.Plugins")
            .is_empty());
    }

    #[test]
    fn includes_expand_in_place_and_cycles_are_found() {
        let rules = set(vec![
            rule(service("v1.Executions"), vec![Entry::Target("b".into())]),
            rule(
                method("/v1.Executions/Start"),
                vec![
                    Entry::Target("a".into()),
                    Entry::Include(service("v1.Executions")),
                    Entry::Target("c".into()),
                ],
            ),
        ]);
        let chain = rules.api_chain(Phase::Request, "/v1.Executions/Start", "v1.Executions");
        assert_eq!(ids(chain), ["a", "b", "c"]);
        let closing = rule(
            service("v1.Executions"),
            vec![Entry::Include(method("/v1.Executions/Start"))],
        );
        assert_eq!(
            rules.include_cycle(&closing).unwrap(),
            [
                "request:service:v1.Executions",
                "request:method:/v1.Executions/Start",
                "request:service:v1.Executions"
            ]
        );
        let harmless = rule(
            Condition::Request(ApiScope::All),
            vec![Entry::Include(service("v1.Executions"))],
        );
        assert_eq!(rules.include_cycle(&harmless), None);
    }
}
