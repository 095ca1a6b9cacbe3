//! The RabbitMQ connection supervisor: connects with backoff, declares the topology on every
//! (re)connect, watches the connection and starts over when it is lost.
//!
//! The relay and the workers never hold a connection of their own: they ask the [`Broker`] for
//! the current [`Session`], open their channels on it and drop everything they built on it
//! when [`Session::lost`] fires, then ask again. Nothing is recovered in place (lapin's
//! auto-recovery is off): unconfirmed publishes are re-published from the relay's checkpoint
//! and unacknowledged jobs are redelivered by RabbitMQ, which the workers deduplicate.

use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder, Retryable};
use futures::StreamExt;
use lapin::{Channel, Connection, ConnectionProperties, Event};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::Shutdown;
use crate::topology::Topology;

/// How often the supervisor double-checks the connection state, in case a loss did not come
/// with an error event (a broker-initiated close, for one).
const STATUS_POLL: Duration = Duration::from_millis(250);
/// An unreachable host can leave a TCP connect hanging for minutes.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The backoff between connection attempts, and between restarts of the relay and workers.
pub(crate) fn backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .without_max_times()
}

/// An endless sequence of retry delays for a restart loop.
pub(crate) fn delays() -> ExponentialBackoff {
    backoff().build()
}

/// A handle on the supervised connection; cheap to clone.
#[derive(Clone, Debug)]
pub struct Broker {
    sessions: watch::Receiver<Option<Session>>,
    connected: watch::Receiver<bool>,
}

/// One live connection. It stays usable until [`Session::lost`] fires.
#[derive(Clone)]
pub struct Session {
    id: u64,
    connection: Arc<Connection>,
    lost: watch::Receiver<bool>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("lost", &self.is_lost())
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
enum ConnectError {
    #[error("{0}")]
    Unreachable(String),
    #[error("{0}")]
    Topology(#[source] lapin::Error),
}

impl Broker {
    /// Starts the supervisor. It keeps (re)connecting until `shutdown` fires, then closes the
    /// connection; stop the relay and the workers first.
    pub fn start(
        amqp_url: &str,
        topology: Arc<Topology>,
        shutdown: Shutdown,
    ) -> (Broker, JoinHandle<()>) {
        let (sessions_tx, sessions) = watch::channel(None);
        let (connected_tx, connected) = watch::channel(false);
        let supervisor = Supervisor {
            amqp_url: amqp_url.to_string(),
            topology,
            sessions: sessions_tx,
            connected: connected_tx,
            shutdown,
        };
        let task = tokio::spawn(supervisor.run());
        (
            Broker {
                sessions,
                connected,
            },
            task,
        )
    }

    /// Whether a connection is up and the topology declared on it (for `/ready`).
    pub fn is_connected(&self) -> bool {
        *self.connected.borrow()
    }

    /// The connection state as it changes (for `/ready` and for tests).
    pub fn connected(&self) -> watch::Receiver<bool> {
        self.connected.clone()
    }

    /// The current session, waiting for one while disconnected. `None` once the supervisor
    /// has stopped.
    pub async fn session(&self) -> Option<Session> {
        let mut sessions = self.sessions.clone();
        let current = sessions
            .wait_for(|session| session.as_ref().is_some_and(|s| !s.is_lost()))
            .await
            .ok()?;
        current.clone()
    }

    /// Waits until connected, at most `timeout`; whether it is.
    pub async fn wait_connected(&self, timeout: Duration) -> bool {
        let mut connected = self.connected.clone();
        tokio::time::timeout(timeout, connected.wait_for(|c| *c))
            .await
            .is_ok_and(|result| result.is_ok())
    }
}

impl Session {
    /// Increases by one on every reconnect.
    pub fn id(&self) -> u64 {
        self.id
    }

    #[tracing::instrument(skip(self), fields(session = self.id))]
    pub async fn create_channel(&self) -> lapin::Result<Channel> {
        self.connection.create_channel().await
    }

    pub fn is_lost(&self) -> bool {
        *self.lost.borrow() || !self.connection.status().connected()
    }

    /// Resolves when the supervisor gave this connection up.
    pub async fn lost(&self) {
        let mut lost = self.lost.clone();
        // A dropped sender means the supervisor is gone: the session is over either way.
        let _ = lost.wait_for(|lost| *lost).await;
    }
}

struct Supervisor {
    amqp_url: String,
    topology: Arc<Topology>,
    sessions: watch::Sender<Option<Session>>,
    connected: watch::Sender<bool>,
    shutdown: Shutdown,
}

impl Supervisor {
    async fn run(self) {
        let mut next_id = 0;
        loop {
            let attempt = (|| self.connect())
                .retry(backoff())
                .notify(|error: &ConnectError, delay: Duration| match error {
                    ConnectError::Unreachable(_) => {
                        tracing::warn!(%error, "RabbitMQ unreachable, retrying in {delay:?}");
                    }
                    ConnectError::Topology(_) => {
                        tracing::error!(%error, "RabbitMQ topology rejected, retrying in {delay:?}");
                    }
                });
            let connection = tokio::select! {
                result = attempt => match result {
                    Ok(connection) => connection,
                    Err(_) => continue, // unreachable: the backoff never runs out
                },
                () = self.shutdown.wait() => break,
            };
            next_id += 1;
            let (lost_tx, lost) = watch::channel(false);
            let connection = Arc::new(connection);
            self.sessions.send_replace(Some(Session {
                id: next_id,
                connection: connection.clone(),
                lost,
            }));
            self.connected.send_replace(true);
            tracing::info!(session = next_id, "RabbitMQ connected, topology declared");

            let stopping = self.watch(&connection).await;

            lost_tx.send_replace(true);
            self.sessions.send_replace(None);
            self.connected.send_replace(false);
            if stopping {
                if connection.status().connected()
                    && let Err(error) = connection.close(200, "shutdown".into()).await
                {
                    tracing::debug!(%error, "closing the RabbitMQ connection failed");
                }
                break;
            }
            tracing::warn!(session = next_id, "RabbitMQ connection lost, reconnecting");
        }
        self.connected.send_replace(false);
        tracing::info!("RabbitMQ supervisor stopped");
    }

    /// Returns when the connection is lost (`false`) or on shutdown (`true`).
    async fn watch(&self, connection: &Connection) -> bool {
        let mut events = Box::pin(connection.events_listener());
        let mut poll = tokio::time::interval(STATUS_POLL);
        loop {
            tokio::select! {
                event = events.next() => match event {
                    // Channel-level errors come through here too; only a connection that is no
                    // longer connected counts as lost.
                    Some(Event::Error(error)) if !connection.status().connected() => {
                        tracing::warn!(%error, "RabbitMQ connection error");
                        return false;
                    }
                    Some(Event::ConnectionBlocked(reason)) => {
                        tracing::warn!(%reason, "RabbitMQ blocked publishing on this connection");
                    }
                    Some(Event::ConnectionUnblocked) => {
                        tracing::info!("RabbitMQ unblocked publishing");
                    }
                    Some(_) => {}
                    None => return false,
                },
                _ = poll.tick() => {
                    if !connection.status().connected() {
                        return false;
                    }
                }
                () = self.shutdown.wait() => return true,
            }
        }
    }

    #[tracing::instrument(skip(self))]
    async fn connect(&self) -> Result<Connection, ConnectError> {
        let properties =
            ConnectionProperties::default().with_connection_name("corbi-dispatcher".into());
        let connection = tokio::time::timeout(
            CONNECT_TIMEOUT,
            Connection::connect(&self.amqp_url, properties),
        )
        .await
        .map_err(|_| ConnectError::Unreachable(format!("no answer in {CONNECT_TIMEOUT:?}")))?
        .map_err(|error| ConnectError::Unreachable(error.to_string()))?;
        let declared = async {
            let channel = connection.create_channel().await?;
            self.topology.declare(&channel).await?;
            channel.close(200, "topology declared".into()).await
        }
        .await;
        if let Err(error) = declared {
            if connection.status().connected() {
                let _ = connection.close(200, "topology failed".into()).await;
                return Err(ConnectError::Topology(error));
            }
            return Err(ConnectError::Unreachable(error.to_string()));
        }
        Ok(connection)
    }
}
