//! The relay: the log is the outbox. It reads the log's dispatch-relevant events after its
//! checkpoint in batches (passing over the others unread), publishes a job for each with
//! publisher confirms and `mandatory`, and moves its checkpoint past a batch only once every
//! message of the batch is confirmed and routed.
//!
//! A crash or a lost connection between publishing and the checkpoint write re-publishes that
//! batch: delivery to RabbitMQ is at-least-once, and the workers make it effectively once.
//! One relay per checkpoint name is active at a time (a Postgres advisory lock held for as long
//! as it runs); others stand by.

use std::sync::Arc;
use std::time::Duration;

use backon::ExponentialBackoff;
use event_store::{EventStore, LogFollower, POLL_FALLBACK};
use events::{Position, RecordedEvent};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{Channel, Confirmation};
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::watch;

use crate::broker::{Broker, Session, delays};
use crate::checkpoint::{self, CheckpointError};
use crate::job::Job;
use crate::topology::Topology;
use crate::{DispatchConfig, Shutdown};

/// A batch the broker neither confirms nor fails in this long is treated as failed.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("RabbitMQ: {0}")]
    Broker(#[from] lapin::Error),
    #[error("the RabbitMQ connection was lost")]
    ConnectionLost,
    #[error("RabbitMQ returned job {event_id} as unroutable: {reply}")]
    Returned { event_id: uuid::Uuid, reply: String },
    #[error("RabbitMQ refused job {event_id} (nack)")]
    Nacked { event_id: uuid::Uuid },
    #[error("RabbitMQ did not confirm job {event_id} within {CONFIRM_TIMEOUT:?} of its batch")]
    ConfirmTimeout { event_id: uuid::Uuid },
    #[error("publisher confirms are not enabled on the relay channel")]
    NotConfirmed,
    #[error(transparent)]
    Store(#[from] event_store::StoreError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("relay lease: {0}")]
    Lease(#[from] sqlx::Error),
    #[error("job cannot be serialized: {0}")]
    Serialize(#[from] serde_json::Error),
}

/// The relay of one topology prefix.
pub struct Relay {
    store: Arc<dyn EventStore>,
    pool: PgPool,
    broker: Broker,
    topology: Arc<Topology>,
    name: String,
    batch: usize,
    progress: watch::Sender<Option<Position>>,
}

impl Relay {
    pub fn new(
        config: &DispatchConfig,
        store: Arc<dyn EventStore>,
        pool: PgPool,
        broker: Broker,
        topology: Arc<Topology>,
    ) -> Self {
        Self {
            store,
            pool,
            broker,
            name: Self::checkpoint_name(&config.prefix),
            topology,
            batch: config.relay_batch.max(1),
            progress: watch::channel(None).0,
        }
    }

    /// The checkpoint (and lease) name of the relay publishing to `prefix`'s exchange.
    pub fn checkpoint_name(prefix: &str) -> String {
        format!("relay:{prefix}.dispatch")
    }

    /// The checkpoint as the relay moves it (`None` until it has loaded or written one).
    pub fn progress(&self) -> watch::Receiver<Option<Position>> {
        self.progress.subscribe()
    }

    /// Relays until `shutdown`, restarting with backoff after any failure.
    #[tracing::instrument(name = "relay", skip_all, fields(checkpoint = %self.name))]
    pub async fn run(self, shutdown: Shutdown) {
        let mut delays = delays();
        while !shutdown.is_triggered() {
            match self.run_leased(&shutdown).await {
                Ok(()) => break,
                Err(error) => {
                    let delay = delays.next().unwrap_or(Duration::from_secs(5));
                    tracing::warn!(%error, "dispatch relay failed, restarting in {delay:?}");
                    sleep_unless(&shutdown, delay).await;
                }
            }
        }
        tracing::info!("dispatch relay stopped");
    }

    /// Holds the lease and relays over successive RabbitMQ sessions; returns on shutdown, or
    /// with the error that cost the lease (a database failure).
    async fn run_leased(&self, shutdown: &Shutdown) -> Result<(), RelayError> {
        let mut lease = tokio::select! {
            lease = Lease::acquire(&self.pool, &self.name) => lease?,
            () = shutdown.wait() => return Ok(()),
        };
        let mut position = checkpoint::load(&mut lease.connection, &self.name).await?;
        self.progress.send_replace(position);
        tracing::info!(after = ?position.map(|p| p.to_string()), "dispatch relay starting");
        let mut delays = delays();
        loop {
            let session = tokio::select! {
                session = self.broker.session() => session,
                () = shutdown.wait() => return Ok(()),
            };
            let Some(session) = session else {
                return Ok(()); // the supervisor stopped: we are shutting down
            };
            match self
                .run_session(&session, &mut lease, &mut position, shutdown, &mut delays)
                .await
            {
                Ok(()) => return Ok(()),
                Err(error @ (RelayError::Lease(_) | RelayError::Checkpoint(_))) => {
                    return Err(error);
                }
                Err(RelayError::ConnectionLost) => {
                    tracing::info!("dispatch relay waiting for RabbitMQ to come back");
                }
                Err(error) => {
                    let delay = delays.next().unwrap_or(Duration::from_secs(5));
                    tracing::warn!(%error, "dispatch relay batch failed, retrying in {delay:?}");
                    sleep_unless(shutdown, delay).await;
                }
            }
        }
    }

    async fn run_session(
        &self,
        session: &Session,
        lease: &mut Lease,
        position: &mut Option<Position>,
        shutdown: &Shutdown,
        delays: &mut ExponentialBackoff,
    ) -> Result<(), RelayError> {
        let channel = tokio::select! {
            channel = open_publisher(session, &self.topology) => channel?,
            () = session.lost() => return Err(RelayError::ConnectionLost),
        };
        let mut follower = LogFollower::new(self.store.clone(), *position).only(Job::EVENT_TYPES);
        loop {
            if shutdown.is_triggered() {
                let _ = channel.close(200, "shutdown".into()).await;
                return Ok(());
            }
            let events = follower.next_batch(self.batch).await?;
            // A short batch was all there was: what came since wakes the follower.
            let caught_up = events.len() < self.batch;
            if !events.is_empty() {
                tokio::select! {
                    published = self.publish_batch(&channel, &events) => {
                        let published = published?;
                        tracing::debug!(events = events.len(), published, "batch confirmed");
                    }
                    () = session.lost() => return Err(RelayError::ConnectionLost),
                }
            }
            // Past the published events, and past the others the read covered.
            if let Some(covered) = follower.position().filter(|p| Some(*p) > *position) {
                checkpoint::save(&mut lease.connection, &self.name, covered).await?;
                *position = Some(covered);
                self.progress.send_replace(Some(covered));
                *delays = crate::broker::delays();
            }
            if caught_up {
                tokio::select! {
                    () = follower.wait(POLL_FALLBACK) => {}
                    () = shutdown.wait() => {}
                    () = session.lost() => return Err(RelayError::ConnectionLost),
                }
            }
        }
    }

    /// Publishes the jobs of `events` (pipelined) and waits for every confirm; the number of
    /// jobs published.
    #[tracing::instrument(skip_all, fields(events = events.len()))]
    async fn publish_batch(
        &self,
        channel: &Channel,
        events: &[RecordedEvent],
    ) -> Result<usize, RelayError> {
        let exchange = self.topology.dispatch_exchange();
        let mut confirms = Vec::with_capacity(events.len());
        for event in events {
            let Some(job) = self.job_for(event) else {
                continue;
            };
            let body = serde_json::to_vec(&job)?;
            let confirm = channel
                .basic_publish(
                    exchange.as_str().into(),
                    job.channel.as_str().into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    &body,
                    job.properties(),
                )
                .await?;
            confirms.push((job.event_id, confirm));
        }
        let published = confirms.len();
        let deadline = tokio::time::Instant::now() + CONFIRM_TIMEOUT;
        for (event_id, confirm) in confirms {
            let confirmation = tokio::time::timeout_at(deadline, confirm)
                .await
                .map_err(|_| RelayError::ConfirmTimeout { event_id })??;
            match confirmation {
                Confirmation::Ack(None) => {}
                Confirmation::Ack(Some(returned)) => {
                    return Err(RelayError::Returned {
                        event_id,
                        reply: returned.reply_text.to_string(),
                    });
                }
                Confirmation::Nack(_) => return Err(RelayError::Nacked { event_id }),
                Confirmation::NotRequested => return Err(RelayError::NotConfirmed),
            }
        }
        Ok(published)
    }

    /// The job for `event`. An event that asks for dispatch but cannot become a job (undecodable
    /// data, a channel this dispatcher does not serve) is logged and skipped: the log is
    /// immutable, so holding the relay on it would stop every dispatch for good.
    fn job_for(&self, event: &RecordedEvent) -> Option<Job> {
        match Job::from_event(event) {
            Ok(Some(job)) if self.topology.has_channel(&job.channel) => Some(job),
            Ok(Some(job)) => {
                tracing::error!(
                    event_id = %event.event_id,
                    channel = %job.channel,
                    "dispatch event names a channel this dispatcher does not serve; skipped"
                );
                None
            }
            Ok(None) => None,
            Err(error) => {
                tracing::error!(%error, "dispatch event skipped");
                None
            }
        }
    }
}

/// A channel in confirm mode, with the topology (re)declared on it so that a queue deleted
/// under a running relay comes back instead of every publish being returned.
#[tracing::instrument(skip_all, fields(session = session.id()))]
async fn open_publisher(session: &Session, topology: &Topology) -> lapin::Result<Channel> {
    let channel = session.create_channel().await?;
    topology.declare(&channel).await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    Ok(channel)
}

pub(crate) async fn sleep_unless(shutdown: &Shutdown, delay: Duration) {
    tokio::select! {
        () = tokio::time::sleep(delay) => {}
        () = shutdown.wait() => {}
    }
}

/// The relay's exclusive right to its checkpoint: a session-level advisory lock on a connection
/// of its own. Dropping the lease closes the connection, which releases the lock.
struct Lease {
    connection: PgConnection,
}

impl Lease {
    #[tracing::instrument(skip(pool))]
    async fn acquire(pool: &PgPool, name: &str) -> Result<Lease, sqlx::Error> {
        // Detached: a pooled connection would go back to the pool still holding the lock.
        let mut connection = pool.acquire().await?.detach();
        let taken: bool =
            sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
                .bind(name)
                .fetch_one(&mut connection)
                .await?;
        if !taken {
            tracing::info!("another dispatch relay is active; standing by");
            sqlx::query("SELECT pg_advisory_lock(hashtextextended($1, 0))")
                .bind(name)
                .execute(&mut connection)
                .await?;
            tracing::info!("took over the dispatch relay");
        }
        connection.ping().await?;
        Ok(Lease { connection })
    }
}
