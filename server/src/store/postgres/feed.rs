//! The change feed: a connection of its own that `LISTEN`s on the channel the triggers
//! publish on, reconnecting with backoff. After every (re)connection it first says
//! [`FeedEvent::Resync`]: notifications committed while it was away are not delivered to it
//! (PostgreSQL queues them only for connected listeners), so the node reloads everything.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, NoTls};

use super::schema::{CHANNEL, event_from_payload};
use crate::store::{ChangeFeed, FeedEvent};

/// Events buffered between the listener and the node; past it the listener waits (and
/// PostgreSQL keeps queueing for it).
const FEED_BUFFER: usize = 65_536;
/// First and longest wait before reconnecting.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(5));

/// Starts the listener; it runs until the returned feed is dropped.
pub(super) fn start(config: tokio_postgres::Config) -> ChangeFeed {
    let (events, feed) = mpsc::channel(FEED_BUFFER);
    tokio::spawn(listen(config, events));
    feed
}

async fn listen(config: tokio_postgres::Config, events: mpsc::Sender<FeedEvent>) {
    let mut backoff = BACKOFF.0;
    loop {
        match config.connect(NoTls).await {
            Ok((client, mut connection)) => {
                let (payloads, mut received) = mpsc::unbounded_channel::<String>();
                // The connection must be polled for the client to work and for
                // notifications to arrive; it ends when the connection does.
                let driver = tokio::spawn(async move {
                    while let Some(message) =
                        std::future::poll_fn(|cx| connection.poll_message(cx)).await
                    {
                        match message {
                            Ok(AsyncMessage::Notification(note)) => {
                                if payloads.send(note.payload().to_owned()).is_err() {
                                    return;
                                }
                            }
                            Ok(_) => {}
                            Err(err) => {
                                tracing::warn!(error = %err, "change feed connection failed");
                                return;
                            }
                        }
                    }
                });
                match client.batch_execute(&format!("LISTEN {CHANNEL}")).await {
                    Ok(()) => {
                        tracing::info!("change feed listening");
                        backoff = BACKOFF.0;
                        if events.send(FeedEvent::Resync).await.is_err() {
                            driver.abort();
                            return;
                        }
                        while let Some(payload) = received.recv().await {
                            let Some(event) = event_from_payload(&payload) else {
                                tracing::debug!(%payload, "unknown change notification");
                                continue;
                            };
                            if events.send(event).await.is_err() {
                                driver.abort();
                                return;
                            }
                        }
                        tracing::warn!("change feed lost its connection; reconnecting");
                    }
                    Err(err) => tracing::warn!(error = %err, "cannot LISTEN for changes"),
                }
                driver.abort();
            }
            Err(err) => tracing::warn!(error = %err, "change feed cannot connect; retrying"),
        }
        if events.is_closed() {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF.1);
    }
}
