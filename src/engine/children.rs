//! Sub-workflows: a step with `workflow: ID[@VERSION]` starts a child run of that workflow and
//! waits for it; the child's outputs are the step's output, its failure the step's.
//!
//! The child is started under an idempotency key made of the parent, the step and the
//! attempt, so a parent that crashed after starting its child finds the same child again
//! instead of starting a second. When the child finishes, its last commit adds a timer due
//! at once on the parent (see [`super::timers`]): the hand-over survives a crash and happens
//! once. Canceling or failing a parent cancels the children it waits for.

use super::driver::{Committed, MAX_ATTEMPTS};
use super::transition::{self, Transition};
use super::{Engine, StartError, StartOptions};
use crate::names::RunId;
use crate::plugins::Outcome;
use crate::run::{ParentRef, RunRecord, RunState, StepState, Unit};
use anyhow::{anyhow, Result};
use serde_json::{Map, Value};

/// What a finished child run means for the step that waits on it; `None` while it runs.
pub(super) fn outcome_of(child: &RunRecord) -> Option<Outcome> {
    Some(match child.state {
        RunState::Completed => Outcome::Complete(child.outputs.clone().unwrap_or(Value::Object(Map::new()))),
        RunState::Failed | RunState::Rejected | RunState::Canceled => Outcome::Fail {
            message: format!(
                "child run {} of {} {}: {}",
                child.id,
                child.workflow.id,
                child.state.as_str(),
                child.error.as_deref().unwrap_or("no reason given")
            ),
            retryable: false,
        },
        RunState::Pending | RunState::Running | RunState::Waiting => return None,
    })
}

impl Engine {
    /// Starts the child run of step `i` of run `parent` (attempt `attempt`), with `input` as
    /// its inputs, and makes the step wait for it. A child that cannot start fails the step.
    pub(super) async fn start_child(
        &self,
        parent: RunId,
        i: usize,
        attempt: u32,
        workflow_id: &str,
        version: Option<u64>,
        input: Value,
    ) -> Result<()> {
        let (started_by, depth, step_name) = {
            let run = self
                .lock(parent)
                .await?
                .ok_or_else(|| anyhow!("run {parent} vanished"))?;
            let step = &run.steps[i];
            if step.state != StepState::Running || step.attempt != attempt || !self.drives(&run) {
                return Ok(());
            }
            (run.started_by.clone(), run.depth, step.name.to_string())
        };
        let started = self
            .child_run(
                parent,
                &step_name,
                attempt,
                &started_by,
                depth,
                workflow_id,
                version,
                input,
            )
            .await;
        let mut run = self
            .lock(parent)
            .await?
            .ok_or_else(|| anyhow!("run {parent} vanished"))?;
        let workflow = self.workflow_by_digest(&run.workflow.digest).await?;
        for _ in 0..MAX_ATTEMPTS {
            let step = &run.steps[i];
            if step.state != StepState::Running || step.attempt != attempt || !self.drives(&run) {
                return Ok(());
            }
            let mut tx = Transition::default();
            let name = step.name.clone();
            match &started {
                Ok(child) => {
                    let step = &mut run.steps[i];
                    step.child = Some(*child);
                    step.state = StepState::Waiting;
                    tx.log(
                        &mut run,
                        "info",
                        Some(&name),
                        format!("started child run {child} of {workflow_id}"),
                    );
                    // A child that finished already handed its result over before the step
                    // knew it: take it now.
                    if let Some(outcome) = self.run(*child).await?.as_ref().and_then(outcome_of) {
                        transition::apply_outcome(
                            &mut run,
                            &workflow,
                            Unit::Step(i),
                            outcome,
                            Default::default(),
                            &mut tx,
                        );
                    }
                }
                Err(message) => {
                    let outcome = Outcome::Fail {
                        message: message.clone(),
                        retryable: false,
                    };
                    transition::apply_outcome(
                        &mut run,
                        &workflow,
                        Unit::Step(i),
                        outcome,
                        Default::default(),
                        &mut tx,
                    );
                }
            }
            tx.dirty = true;
            transition::advance(&mut run, &workflow, &self.inner.plugins, self, &mut tx).await;
            if let Committed::Done = self.commit(&mut run, tx).await? {
                return Ok(());
            }
        }
        Err(anyhow!("run {parent} kept changing while its child run started"))
    }

    /// Starts (or, after a crash, finds) the child run; an error is the message the step
    /// fails with.
    #[allow(clippy::too_many_arguments)]
    async fn child_run(
        &self,
        parent: RunId,
        step: &str,
        attempt: u32,
        started_by: &str,
        depth: u32,
        workflow_id: &str,
        version: Option<u64>,
        input: Value,
    ) -> Result<RunId, String> {
        let most = self.inner.plugins.limits().workflow_depth;
        if depth as usize + 1 > most {
            return Err(format!(
                "cannot start workflow {workflow_id}: sub-workflows may nest at most {most} deep \
                 (limits.workflow_depth); is a workflow starting itself?"
            ));
        }
        let workflow = match self.workflow(workflow_id, version).await {
            Ok(Some(workflow)) => workflow,
            Ok(None) => {
                return Err(match version {
                    Some(v) => format!("workflow {workflow_id} has no version {v}"),
                    None => format!("there is no published workflow {workflow_id}"),
                })
            }
            Err(e) => return Err(format!("cannot read workflow {workflow_id}: {e:#}")),
        };
        let inputs = match input {
            Value::Object(map) => map,
            other => {
                return Err(format!(
                    "the input of a workflow step must be a map of the child's inputs, got {other}"
                ))
            }
        };
        let options = StartOptions {
            idempotency_key: Some(format!("child:{parent}:{step}:{attempt}")),
            parent: Some((
                ParentRef {
                    run: parent,
                    step: step.to_owned(),
                },
                depth,
            )),
            ..StartOptions::default()
        };
        match self.start_with(&workflow, inputs, started_by, options).await {
            Ok(id) => Ok(id),
            Err(StartError::Invalid(problems)) => {
                Err(format!("the child run of {workflow_id} cannot start: {problems}"))
            }
            Err(e) => Err(format!("the child run of {workflow_id} cannot start: {e}")),
        }
    }
}
