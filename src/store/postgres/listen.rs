//! Runners tell each other what they committed: each commit sends its notices with
//! `pg_notify` on [`CHANNEL`] (see the writer), and each runner `LISTEN`s on a connection of
//! its own and hands them to its subscribers. After a lost connection it reconnects, and
//! tells its subscribers that notices may have been missed, so they read again.

use crate::names::RunId;
use crate::run::RunState;
use crate::store::api::*;
use std::time::Duration;
use tokio::sync::broadcast;

/// The channel every runner notifies and listens on.
pub const CHANNEL: &str = "weft";

/// How long to wait before reconnecting after the connection was lost.
const RECONNECT: Duration = Duration::from_secs(1);

/// One notice as a line of a notify payload.
pub fn encode(notice: &Notice) -> String {
    match notice {
        Notice::Run { id, state, owner, by } => {
            format!(
                "run {id} {} {} {by}",
                state.as_str(),
                owner.as_deref().unwrap_or("-")
            )
        }
        Notice::Timers => "timers".into(),
        Notice::Outbox => "outbox".into(),
        Notice::Rules => "rules".into(),
        Notice::Grants => "grants".into(),
        Notice::Schedules => "schedules".into(),
        Notice::Orphans => "orphans".into(),
        Notice::Missed => "missed".into(),
    }
}

fn decode(line: &str) -> Option<Notice> {
    let mut words = line.split(' ');
    Some(match words.next()? {
        "run" => {
            let id: RunId = words.next()?.parse().ok()?;
            let state: RunState = words.next()?.parse().ok()?;
            let owner = words.next()?;
            let by = words.next()?;
            Notice::Run {
                id,
                state,
                owner: (owner != "-").then(|| owner.to_owned()),
                by: by.to_owned(),
            }
        }
        "timers" => Notice::Timers,
        "outbox" => Notice::Outbox,
        "rules" => Notice::Rules,
        "grants" => Notice::Grants,
        "schedules" => Notice::Schedules,
        "orphans" => Notice::Orphans,
        _ => return None,
    })
}

/// Starts listening; the first connection must succeed. The task runs until aborted.
pub async fn start(
    config: tokio_postgres::Config,
    url: String,
    notices: broadcast::Sender<Notice>,
) -> StoreResult<tokio::task::AbortHandle> {
    let connection = listen(&config, &url).await?;
    let task = tokio::spawn(async move {
        let mut connection = Some(connection);
        loop {
            if let Some(live) = connection.take() {
                forward(live, &notices).await;
                tracing::warn!("lost the notices connection to PostgreSQL; reconnecting");
            }
            tokio::time::sleep(RECONNECT).await;
            match listen(&config, &url).await {
                Ok(live) => {
                    // Whatever was committed meanwhile went unheard.
                    let _ = notices.send(Notice::Missed);
                    connection = Some(live);
                }
                Err(e) => tracing::warn!("{e}"),
            }
        }
    });
    Ok(task.abort_handle())
}

type Listening = (
    tokio_postgres::Client,
    tokio_postgres::Connection<tokio_postgres::Socket, tokio_postgres::tls::NoTlsStream>,
);

/// A connection that has executed `LISTEN`, not yet driven.
async fn listen(config: &tokio_postgres::Config, url: &str) -> StoreResult<Listening> {
    let (client, mut connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| super::unreachable(url, &e))?;
    // The connection must be driven for LISTEN to complete; drive it until then.
    let sql = format!("LISTEN {CHANNEL}");
    {
        let listening = client.batch_execute(&sql);
        tokio::pin!(listening);
        loop {
            tokio::select! {
                done = &mut listening => {
                    done.map_err(super::db_error)?;
                    break;
                }
                message = std::future::poll_fn(|cx| connection.poll_message(cx)) => {
                    if let Some(Err(e)) = message {
                        return Err(super::db_error(e));
                    }
                }
            }
        }
    }
    Ok((client, connection))
}

/// Hands every notification to the subscribers until the connection ends.
async fn forward(listening: Listening, notices: &broadcast::Sender<Notice>) {
    let (_client, mut connection) = listening;
    loop {
        match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            Some(Ok(tokio_postgres::AsyncMessage::Notification(n))) => {
                for line in n.payload().lines() {
                    if let Some(notice) = decode(line) {
                        let _ = notices.send(notice);
                    }
                }
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                tracing::warn!("the notices connection failed: {e}");
                return;
            }
            None => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_round_trip() {
        let notice = Notice::Run {
            id: RunId::new(),
            state: RunState::Waiting,
            owner: None,
            by: "runner-1".into(),
        };
        assert_eq!(decode(&encode(&notice)), Some(notice));
        assert_eq!(decode("timers"), Some(Notice::Timers));
        assert_eq!(decode("nonsense"), None);
    }
}
