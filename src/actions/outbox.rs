//! The event outbox: durable events, delivered at least once, in order.
//!
//! An event enters the outbox in the same transaction as the change that caused it (a run's
//! transition, an added plugin), and only if some rule would call a target for it then. Each
//! runner's delivery task claims entries oldest first (so with several runners each event is
//! delivered by one of them); a claim that lapses, because its runner died, frees the entry
//! for another. Before calling any target it commits the entry's attempt count, so a delivery
//! cut short by a crash is retried with `attempt` one higher; after the chain it commits the
//! log of the calls together with the removal of the entry. A failing target does not keep an
//! event in the outbox: its failure is logged, as the chain's rules say. At startup whatever
//! is still in the outbox is delivered first.
//!
//! This module owns the outbox entries' format; the rules and the calls belong to the rest
//! of [`super`].

use super::dispatch::{self, Delivery};
use super::events::ActionEvent;
use super::rules::RuleSet;
use super::Actions;
use crate::store::{ActionWrite, Write};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;
use time::OffsetDateTime;

/// Events read from the outbox at a time.
const BATCH: usize = 64;
/// How long to wait after the store could not be read or written.
const ERROR_PAUSE: Duration = Duration::from_secs(1);
/// How long a runner holds the events it claimed before another may deliver them.
const CLAIM: Duration = Duration::from_secs(60);
/// The longest wait between looks at the outbox, should a notice be lost.
const RECHECK: Duration = Duration::from_secs(5);

/// An outbox entry; also the payload targets receive.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Pending {
    pub id: String,
    pub event: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    /// Deliveries begun so far.
    pub attempt: u32,
    #[schema(value_type = Object)]
    pub data: Value,
}

/// The outbox write for `event`, or none when no rule would call a target for it.
pub fn write_for(rules: &RuleSet, event: ActionEvent) -> Result<Option<Write>> {
    if rules.event_chain(event.name).is_empty() {
        return Ok(None);
    }
    let pending = Pending {
        id: uuid::Uuid::now_v7().to_string(),
        event: event.name.to_owned(),
        at: crate::run::now(),
        attempt: 0,
        data: event.data,
    };
    Ok(Some(Write::Action(ActionWrite::Outbox(serde_json::to_vec(
        &pending,
    )?))))
}

/// Delivers events as they are committed, for as long as the actions live.
pub async fn deliver(actions: Actions) {
    let mut notices = actions.inner.store.subscribe();
    let weak = std::sync::Arc::downgrade(&actions.inner);
    drop(actions);
    loop {
        let Some(inner) = weak.upgrade() else { return };
        let actions = Actions { inner };
        let delivered = match deliver_batch(&actions).await {
            Ok(delivered) => delivered,
            Err(e) => {
                tracing::error!("cannot deliver action events: {e:#}");
                drop(actions);
                tokio::time::sleep(ERROR_PAUSE).await;
                continue;
            }
        };
        actions.inner.delivered.notify_waiters();
        drop(actions);
        if delivered == 0 {
            // Until an event is added (here or by another runner), or a while passes.
            let wait = async {
                loop {
                    match notices.recv().await {
                        Ok(crate::store::Notice::Outbox) => return,
                        Ok(_) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => return,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                            std::future::pending::<()>().await
                        }
                    }
                }
            };
            let _ = tokio::time::timeout(RECHECK, wait).await;
        }
    }
}

/// Delivers up to [`BATCH`] claimed events; returns how many there were.
async fn deliver_batch(actions: &Actions) -> Result<usize> {
    let store = &actions.inner.store;
    let entries = store.claim_outbox(store.runner(), CLAIM, BATCH).await?;
    for (seq, doc) in &entries {
        let mut pending: Pending = serde_json::from_slice(doc)?;
        pending.attempt += 1;
        let begun = ActionWrite::UpdateOutbox {
            seq: *seq,
            doc: serde_json::to_vec(&pending)?,
        };
        store.commit(vec![Write::Action(begun)]).await?;
        let chain = actions.rules().await?.event_chain(&pending.event);
        let delivery = Delivery {
            event: pending.id.clone(),
            attempt: pending.attempt,
        };
        let payload = serde_json::to_value(&pending)?;
        let end = dispatch::run(
            &actions.inner.plugins,
            store,
            &pending.event,
            &chain,
            payload,
            Some(&delivery),
        )
        .await;
        if let Err(interrupted) = end.outcome {
            tracing::info!("event {} ({}): {interrupted}", pending.event, pending.id);
        }
        let mut writes = end.log;
        writes.push(Write::Action(ActionWrite::DeleteOutbox(*seq)));
        store.commit(writes).await?;
    }
    Ok(entries.len())
}

/// Waits until the outbox is empty.
pub async fn drained(actions: &Actions) -> Result<()> {
    loop {
        // Created before the check, so a delivery finishing in between still wakes it.
        let delivered = actions.inner.delivered.notified();
        if actions.inner.store.outbox(1).await?.is_empty() {
            return Ok(());
        }
        let _ = tokio::time::timeout(RECHECK, delivered).await;
    }
}
