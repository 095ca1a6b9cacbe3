//! Wake-ups for readers, kept off the append path.
//!
//! A `NOTIFY` inside every append would serialize all committing appenders on Postgres' global
//! notify-queue lock. Instead each append pokes a local [`Notify`]; one task turns bursts of
//! pokes into a single `NOTIFY` at most every [`NOTIFY_SPACING`], and one `LISTEN` connection per
//! process turns notifications (from this and every other process) into a change on the
//! readers' [`watch`] channel. Readers still poll as a fallback, so a lost notification only
//! costs latency. Each `NOTIFY` names the store that sent it, whose own listener ignores it: its
//! readers were woken already, and a second wake-up would only send each of them to read again.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use futures::StreamExt;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio_postgres::{AsyncMessage, NoTls};

use super::CHANNEL;

/// Readers in this process are woken at the first append after a quiet spell, then at most this
/// often: under load each wake-up finds a batch worth a read (and every projection reads).
const NOTIFY_SPACING: Duration = Duration::from_millis(10);
const RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// Who sends a store's notifications: their payload.
pub(super) fn sender_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

pub(super) fn spawn_notifier(
    pool: Pool,
    sender: String,
    appended: Arc<Notify>,
    local: watch::Sender<()>,
) -> JoinHandle<()> {
    // `sender` is hex digits only: nothing to quote.
    let statement = format!("NOTIFY {CHANNEL}, '{sender}'");
    tokio::spawn(async move {
        loop {
            appended.notified().await;
            // Readers in this process need no round trip.
            local.send_replace(());
            match pool.get().await {
                Ok(client) => {
                    if let Err(error) = client.batch_execute(&statement).await {
                        tracing::warn!(%error, "could not NOTIFY readers; they will poll");
                    }
                }
                Err(error) => tracing::warn!(%error, "could not NOTIFY readers; they will poll"),
            }
            tokio::time::sleep(NOTIFY_SPACING).await;
        }
    })
}

pub(super) fn spawn_listener(
    config: tokio_postgres::Config,
    sender: String,
    signal: watch::Sender<()>,
) -> JoinHandle<()> {
    let statement = format!("LISTEN {CHANNEL}");
    tokio::spawn(async move {
        loop {
            match config.connect(NoTls).await {
                Ok((client, mut connection)) => {
                    let mut messages =
                        futures::stream::poll_fn(move |cx| connection.poll_message(cx));
                    let listen = client.batch_execute(&statement);
                    let mut listen = std::pin::pin!(listen);
                    // Drive the connection while LISTEN runs, then keep draining notifications.
                    let mut listening = false;
                    loop {
                        tokio::select! {
                            result = &mut listen, if !listening => {
                                if let Err(error) = result {
                                    tracing::warn!(%error, "LISTEN failed; readers will poll");
                                    break;
                                }
                                listening = true;
                                // Anything appended while we were not listening.
                                signal.send_replace(());
                            }
                            message = messages.next() => match message {
                                Some(Ok(AsyncMessage::Notification(n))) => {
                                    if n.payload() != sender {
                                        signal.send_replace(());
                                    }
                                }
                                Some(Ok(_)) => {}
                                Some(Err(error)) => {
                                    tracing::warn!(%error, "event wake-up connection lost; readers poll until it is back");
                                    break;
                                }
                                None => break,
                            },
                        }
                    }
                }
                Err(error) => {
                    tracing::debug!(%error, "event wake-up connection failed; retrying");
                }
            }
            tokio::time::sleep(RECONNECT_DELAY).await;
        }
    })
}

/// Stops the wake-up tasks when the last handle of the store is dropped, so a dropped store
/// closes its connections.
pub(super) struct Tasks(pub(super) Vec<JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}
