//! Templates (`{{ inputs.cn | upper }}`), read and evaluated in the sandbox.
//!
//! The host never compiles or evaluates a template itself: minijinja's fuel counts
//! instructions, not work, so one short expression can build gigabytes, and compiling folds
//! constant expressions. Instead the template engine (`plugins/templates`, built into the
//! binary) runs in a fresh sandbox for every call, under `limits.template_timeout` and
//! `limits.template_memory_mb`, and what it renders is capped at `limits.template_output_kb`.
//!
//! Two cases need no engine and are answered here: a literal string, and a single expression
//! that only looks up a value that exists (`{{ steps.A.output.items[0] }}`). Copies made that
//! way count against the same output cap.

use super::bindings::templates::exports::weft::templates::engine;
use super::bindings::templates::TemplateEnginePre;
use super::limits::{DeadlineExceeded, MemoryExceeded};
use super::sandbox::{CallState, Sandbox};
use super::{builtin, Limits, Loaded, PluginHost};
use crate::workflow::{TemplateRead, TemplateSource};
use serde_json::Value;
use std::sync::Arc;
use weft_template::{Syntax, TemplateError};

const SYNTAX: Syntax = Syntax::Braces;

impl PluginHost {
    /// What each source reads: for every string, its path and the dotted names it reads; or
    /// its syntax problems. Errors only when the engine itself could not run.
    pub async fn read_templates(&self, sources: &[TemplateSource]) -> Result<Vec<TemplateRead>, String> {
        let mut reads: Vec<Option<TemplateRead>> = sources.iter().map(read_without_engine).collect();
        let needed: Vec<usize> = (0..sources.len()).filter(|&i| reads[i].is_none()).collect();
        if !needed.is_empty() {
            let wit: Vec<engine::Source> = needed
                .iter()
                .map(|&i| match &sources[i] {
                    TemplateSource::Template(t) => engine::Source::Template(t.to_string()),
                    TemplateSource::Expression(e) => engine::Source::Expression(e.clone()),
                })
                .collect();
            let (pre, mut sandbox) = self.engine_sandbox().await?;
            let limits = sandbox.limits;
            let store = &mut sandbox.store;
            let result = finish(
                tokio::time::timeout(limits.deadline + super::DEADLINE_GRACE, async {
                    let instance = pre.instantiate_async(&mut *store).await?;
                    instance
                        .weft_templates_engine()
                        .call_references(&mut *store, &wit)
                        .await
                })
                .await,
                limits,
            );
            let found = match result {
                Ok(found) => found,
                Err(message) => {
                    // The source being read when a limit stopped the engine is the culprit;
                    // the ones after it were not read (their definition is refused anyway).
                    let at = sandbox.store.data().reading.map_or(0, |i| i as usize);
                    for (n, &i) in needed.iter().enumerate() {
                        reads[i] = Some(Err(if n == at {
                            vec![TemplateError {
                                path: String::new(),
                                message: message.clone(),
                            }]
                        } else {
                            Vec::new()
                        }));
                    }
                    return Ok(reads
                        .into_iter()
                        .map(|r| r.expect("every source is read"))
                        .collect());
                }
            };
            if found.len() != needed.len() {
                return Err("the template engine answered for the wrong number of templates".into());
            }
            for (i, read) in needed.into_iter().zip(found) {
                reads[i] = Some(
                    read.map(|names| names.into_iter().map(|n| (n.path, n.names)).collect())
                        .map_err(|problems| problems.into_iter().map(problem).collect()),
                );
            }
        }
        Ok(reads
            .into_iter()
            .map(|r| r.expect("every source is read"))
            .collect())
    }

    /// Renders every string of `template` against `context`.
    pub async fn render(&self, template: &Value, context: &Value) -> Result<Value, TemplateError> {
        let max = self.template_limits().max_output_bytes;
        if let Some(rendered) = render_without_engine(template, context, max) {
            return rendered;
        }
        let (template, context) = (template.to_string(), context.to_string());
        let engine_failed = |message| TemplateError {
            path: String::new(),
            message,
        };
        let (pre, mut sandbox) = self.engine_sandbox().await.map_err(engine_failed)?;
        let limits = sandbox.limits;
        let store = &mut sandbox.store;
        let rendered = finish(
            tokio::time::timeout(limits.deadline + super::DEADLINE_GRACE, async {
                let instance = pre.instantiate_async(&mut *store).await?;
                instance
                    .weft_templates_engine()
                    .call_render(&mut *store, &template, &context)
                    .await
            })
            .await,
            limits,
        )
        .map_err(engine_failed)?
        .map_err(problem)?;
        if rendered.len() > max {
            return Err(too_large(rendered.len(), max));
        }
        serde_json::from_str(&rendered).map_err(|e| TemplateError {
            path: String::new(),
            message: format!("the template engine returned invalid JSON: {e}"),
        })
    }

    /// The truth of a bare expression (a `when` condition) against `context`.
    pub async fn is_true(&self, expression: &str, context: &Value) -> Result<bool, String> {
        if let Some(truth) = weft_template::is_true_without_engine(expression, context) {
            return Ok(truth);
        }
        let context = context.to_string();
        let (pre, mut sandbox) = self.engine_sandbox().await?;
        let limits = sandbox.limits;
        let store = &mut sandbox.store;
        finish(
            tokio::time::timeout(limits.deadline + super::DEADLINE_GRACE, async {
                let instance = pre.instantiate_async(&mut *store).await?;
                instance
                    .weft_templates_engine()
                    .call_is_true(&mut *store, expression, &context)
                    .await
            })
            .await,
            limits,
        )?
    }

    /// The limits of one template evaluation.
    fn template_limits(&self) -> Limits {
        let limits = &self.inner.limits;
        Limits {
            deadline: limits.template_timeout,
            memory_bytes: limits.template_memory_mb << 20,
            max_output_bytes: limits.template_output_kb << 10,
        }
    }

    /// The template engine and a fresh sandbox to call it in.
    async fn engine_sandbox(&self) -> Result<(TemplateEnginePre<CallState>, Sandbox<'_>), String> {
        let pre = self.template_engine().await.map_err(|e| format!("{e:#}"))?;
        let permit = self
            .inner
            .permits
            .acquire()
            .await
            .map_err(|_| "the plugin host is shutting down".to_owned())?;
        let sandbox = Sandbox::build(
            &self.inner.engine,
            Arc::new(Loaded::Templates),
            Default::default(),
            self.inner.caps,
            self.template_limits(),
            permit,
            None,
        );
        Ok((pre, sandbox))
    }

    /// The pre-linked template engine, compiled (or loaded from the cache) on first use.
    async fn template_engine(&self) -> anyhow::Result<TemplateEnginePre<CallState>> {
        self.inner
            .templates
            .get_or_try_init(|| async {
                let digest = crate::names::Digest::of(builtin::TEMPLATE_ENGINE);
                let component = self.component(&digest, builtin::TEMPLATE_ENGINE, true).await?;
                let pre = self.inner.linker.instantiate_pre(&component)?;
                Ok(TemplateEnginePre::new(pre)?)
            })
            .await
            .cloned()
    }
}

/// The result of one engine call, with the host's failures (deadline, memory, trap) put in
/// terms of the template limits.
fn finish<T>(
    result: Result<wasmtime::Result<T>, tokio::time::error::Elapsed>,
    limits: Limits,
) -> Result<T, String> {
    let over_time = || {
        format!(
            "the template took longer than {} and was stopped (limits.template_timeout)",
            humantime::format_duration(limits.deadline)
        )
    };
    match result {
        Ok(Ok(value)) => Ok(value),
        Err(_) => Err(over_time()),
        Ok(Err(error)) if error.downcast_ref::<DeadlineExceeded>().is_some() => Err(over_time()),
        Ok(Err(error)) if error.downcast_ref::<MemoryExceeded>().is_some() => Err(format!(
            "the template needed more than {} MiB and was stopped (limits.template_memory_mb)",
            limits.memory_bytes >> 20
        )),
        Ok(Err(error)) => Err(crate::limits::clip(&format!(
            "the template engine failed: {error:#}"
        ))),
    }
}

fn too_large(bytes: usize, max: usize) -> TemplateError {
    TemplateError {
        path: String::new(),
        message: format!(
            "the template rendered {bytes} bytes; at most {max} are allowed (limits.template_output_kb)"
        ),
    }
}

fn problem(p: engine::Problem) -> TemplateError {
    TemplateError {
        path: p.path,
        message: p.message,
    }
}

/// What a source reads, when every string in it is a literal or a plain lookup.
pub fn read_without_engine(source: &TemplateSource) -> Option<TemplateRead> {
    match source {
        TemplateSource::Expression(expression) => {
            let name = weft_template::lookup_name(expression)?;
            Some(Ok(vec![(String::new(), vec![name])]))
        }
        TemplateSource::Template(template) => weft_template::names_without_engine(template, SYNTAX).map(Ok),
    }
}

/// Renders `template` when it needs no engine, counting what its lookups copy against `max`.
fn render_without_engine(
    template: &Value,
    context: &Value,
    max: usize,
) -> Option<Result<Value, TemplateError>> {
    let rendered = weft_template::render_without_engine(template, context, SYNTAX)?;
    let copied = json_size_at_most(&rendered, max.saturating_add(1));
    Some(if copied > max {
        Err(too_large(copied, max))
    } else {
        Ok(rendered)
    })
}

/// Roughly the bytes of `value` as JSON, counting no further than `limit`.
fn json_size_at_most(value: &Value, limit: usize) -> usize {
    let mut size = 0;
    let mut stack = vec![value];
    while let Some(value) = stack.pop() {
        size += match value {
            Value::Null | Value::Bool(_) => 5,
            Value::Number(_) => 20,
            Value::String(s) => s.len() + 2,
            Value::Array(items) => {
                stack.extend(items);
                2 + items.len()
            }
            Value::Object(fields) => {
                for (key, item) in fields {
                    size += key.len() + 4;
                    stack.push(item);
                }
                2
            }
        };
        if size >= limit {
            return size;
        }
    }
    size
}
