//! The worker loop: consumes every channel's work queue with manual acks and a bounded
//! prefetch, runs many jobs at once, and acks each job only after its outcome is settled —
//! completed, moved to a retry tier, or parked. Retry and parking publishes are confirmed
//! before the original is acked, so a job is never lost in between (at worst it runs twice,
//! which handlers are built for).

mod link;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use lapin::Channel;
use lapin::message::Delivery;
use lapin::options::{
    BasicCancelOptions, BasicConsumeOptions, BasicQosOptions, ConfirmSelectOptions,
};
use lapin::types::FieldTable;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::broker::{Broker, Session, delays};
use crate::handler::{Handlers, JobError};
use crate::job::{self, Job};
use crate::relay::sleep_unless;
use crate::topology::Topology;
use crate::{DispatchConfig, Shutdown};
use link::Link;

/// A job whose handler runs longer than this counts as a transient failure.
const JOB_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a stopping (or restarting) worker lets the jobs in flight finish before it closes
/// its channel.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("RabbitMQ: {0}")]
    Broker(#[from] lapin::Error),
    #[error("the RabbitMQ connection was lost")]
    ConnectionLost,
    #[error("RabbitMQ cancelled the consumer")]
    ConsumerCancelled,
    #[error("the dispatcher is shutting down")]
    Stopped,
    #[error("queues not drained within {timeout:?}: {pending}")]
    NotDrained { timeout: Duration, pending: String },
}

/// What the worker has done, for tests and metrics.
#[derive(Debug, Default)]
pub struct WorkerStats {
    /// Jobs received and not yet settled.
    pub in_flight: AtomicUsize,
    /// Jobs acked after their handler succeeded (duplicates that found their outcome included).
    pub completed: AtomicU64,
    /// Jobs moved to a retry tier.
    pub retried: AtomicU64,
    /// Jobs moved to the parking queue.
    pub parked: AtomicU64,
}

/// The dispatch workers of one process; cheap to clone.
#[derive(Clone)]
pub struct Worker {
    inner: Arc<Inner>,
}

struct Inner {
    broker: Broker,
    topology: Arc<Topology>,
    handlers: Handlers,
    prefetch: u16,
    stats: Arc<WorkerStats>,
}

impl Worker {
    pub fn new(
        config: &DispatchConfig,
        broker: Broker,
        topology: Arc<Topology>,
        handlers: Handlers,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                broker,
                topology,
                handlers,
                prefetch: config.prefetch.max(1),
                stats: Arc::default(),
            }),
        }
    }

    pub fn stats(&self) -> Arc<WorkerStats> {
        self.inner.stats.clone()
    }

    /// Consumes until `shutdown`, starting over on every new RabbitMQ session.
    #[tracing::instrument(name = "worker", skip_all)]
    pub async fn run(self, shutdown: Shutdown) {
        let mut delays = delays();
        loop {
            let session = tokio::select! {
                session = self.inner.broker.session() => session,
                () = shutdown.wait() => None,
            };
            let Some(session) = session else { break };
            match self.consume(&session, &shutdown).await {
                Ok(()) => break,
                Err(WorkerError::ConnectionLost) => {
                    tracing::info!("dispatch worker waiting for RabbitMQ to come back");
                }
                Err(error) => {
                    let delay = delays.next().unwrap_or(Duration::from_secs(5));
                    tracing::warn!(%error, "dispatch worker failed, restarting in {delay:?}");
                    sleep_unless(&shutdown, delay).await;
                }
            }
        }
        tracing::info!("dispatch worker stopped");
    }

    async fn consume(&self, session: &Session, shutdown: &Shutdown) -> Result<(), WorkerError> {
        let inner = &self.inner;
        let (channel, publisher) = tokio::select! {
            opened = open_channels(session, inner.prefetch) => opened?,
            () = session.lost() => return Err(WorkerError::ConnectionLost),
        };
        let mut consumers = Vec::with_capacity(inner.topology.channels().len());
        let mut tags = Vec::with_capacity(inner.topology.channels().len());
        for name in inner.topology.channels() {
            let consumer = channel
                .basic_consume(
                    inner.topology.work_queue(name).into(),
                    "".into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            tags.push(consumer.tag());
            let name = name.clone();
            consumers.push(
                consumer
                    .map(move |delivery| (name.clone(), delivery))
                    .boxed(),
            );
        }
        tracing::info!(
            session = session.id(),
            prefetch = inner.prefetch,
            "dispatch worker consuming"
        );
        let mut deliveries = futures::stream::select_all(consumers);
        let mut jobs = JoinSet::new();
        let outcome = loop {
            tokio::select! {
                () = shutdown.wait() => break Ok(()),
                () = session.lost() => break Err(WorkerError::ConnectionLost),
                Some(joined) = jobs.join_next(), if !jobs.is_empty() => {
                    if let Err(error) = joined {
                        tracing::error!(%error, "a dispatch job task failed");
                    }
                }
                next = deliveries.next() => match next {
                    Some((queue_channel, Ok(delivery))) => {
                        let guard = InFlight::enter(inner.stats.clone());
                        let worker = self.clone();
                        let link = Link {
                            session: session.clone(),
                            publisher: publisher.clone(),
                        };
                        jobs.spawn(async move {
                            worker.process(&link, &queue_channel, delivery).await;
                            drop(guard);
                        });
                    }
                    Some((_, Err(error))) => break Err(error.into()),
                    None => break Err(WorkerError::ConsumerCancelled),
                },
            }
        };
        if outcome.is_ok() {
            // No new deliveries while the jobs in flight finish.
            for tag in tags {
                let _ = channel
                    .basic_cancel(tag, BasicCancelOptions::default())
                    .await;
            }
        }
        drop(deliveries);
        if matches!(outcome, Err(WorkerError::ConnectionLost)) {
            // The jobs keep running: their outcomes still land in the log, only their acks are
            // lost, and the redeliveries find the outcomes. The next session starts at once.
            jobs.detach_all();
        } else {
            // Let the jobs in flight settle before their channel closes; what is still unacked
            // then goes back to its queue.
            let settled = tokio::time::timeout(SHUTDOWN_GRACE, async {
                while jobs.join_next().await.is_some() {}
            })
            .await;
            if settled.is_err() {
                tracing::warn!(
                    jobs = jobs.len(),
                    "jobs still running when the channel closes; they will be redelivered"
                );
            }
            let _ = channel.close(200, "worker stopping".into()).await;
            let _ = publisher.close(200, "worker stopping".into()).await;
        }
        outcome
    }

    /// Runs one delivery to its end: handler, then ack / retry tier / parking.
    #[tracing::instrument(skip_all, fields(channel = %queue_channel, message_id))]
    async fn process(&self, link: &Link, queue_channel: &str, delivery: Delivery) {
        let job: Job = match serde_json::from_slice(&delivery.data) {
            Ok(job) => job,
            Err(error) => {
                let reason = format!("undecodable job: {error}");
                return self.park(link, queue_channel, delivery, &reason).await;
            }
        };
        tracing::Span::current().record("message_id", tracing::field::display(job.event_id));
        let Some(handler) = self.inner.handlers.get(&job.event_type) else {
            let reason = format!("no handler for {}", job.event_type);
            return self.park(link, queue_channel, delivery, &reason).await;
        };
        let result = tokio::time::timeout(JOB_TIMEOUT, handler.handle(&job))
            .await
            .unwrap_or_else(|_| {
                Err(JobError::Transient(format!(
                    "timed out after {JOB_TIMEOUT:?}"
                )))
            });
        match result {
            Ok(()) => {
                if link.ack(&delivery).await {
                    self.inner.stats.completed.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(JobError::Transient(reason)) => {
                self.retry(link, queue_channel, delivery, &reason).await;
            }
            Err(JobError::Permanent(reason)) => {
                self.park(link, queue_channel, delivery, &reason).await;
            }
        }
    }

    async fn retry(&self, link: &Link, channel: &str, delivery: Delivery, reason: &str) {
        let topology = &self.inner.topology;
        let attempt = job::attempt(&delivery.properties);
        let Some(routing_key) = topology.retry_routing_key(channel, attempt) else {
            let reason = format!("{reason} (after {attempt} retries)");
            return self.park(link, channel, delivery, &reason).await;
        };
        let delay = topology
            .retry_tiers()
            .get(attempt)
            .copied()
            .unwrap_or_default();
        tracing::warn!(%reason, attempt = attempt + 1, "job failed, retrying in {delay:?}");
        let properties = job::with_attempt(&delivery.properties, attempt + 1, reason);
        let exchange = topology.retry_exchange();
        if link
            .forward(&exchange, &routing_key, &delivery.data, properties)
            .await
        {
            if link.ack(&delivery).await {
                self.inner.stats.retried.fetch_add(1, Ordering::Relaxed);
            }
        } else {
            link.requeue(&delivery).await;
        }
    }

    async fn park(&self, link: &Link, channel: &str, delivery: Delivery, reason: &str) {
        tracing::error!(%reason, "job parked");
        let properties = job::with_error(&delivery.properties, reason);
        let exchange = self.inner.topology.parking_exchange();
        if link
            .forward(&exchange, channel, &delivery.data, properties)
            .await
        {
            if link.ack(&delivery).await {
                self.inner.stats.parked.fetch_add(1, Ordering::Relaxed);
            }
        } else {
            link.requeue(&delivery).await;
        }
    }

    /// Waits until no job is pending anywhere (work queues, retry tiers, this worker's hands),
    /// seen three times in a row, at most `timeout`. Tests use it instead of sleeping.
    pub async fn drain(&self, timeout: Duration) -> Result<(), WorkerError> {
        let deadline = Instant::now() + timeout;
        let mut quiet = 0;
        let mut channel: Option<Channel> = None;
        let mut pending = String::from("never checked");
        while Instant::now() < deadline {
            if channel.as_ref().is_none_or(|c| !c.status().connected()) {
                channel = match tokio::time::timeout_at(deadline, self.inner.broker.session()).await
                {
                    Ok(Some(session)) => session.create_channel().await.ok(),
                    Ok(None) => return Err(WorkerError::Stopped),
                    Err(_) => None,
                };
            }
            if let Some(open) = channel.as_ref() {
                match self.pending(open).await {
                    Ok(counts) if counts.iter().all(|(_, n)| *n == 0) => quiet += 1,
                    Ok(counts) => {
                        quiet = 0;
                        pending = format!("{counts:?}");
                    }
                    Err(error) => {
                        quiet = 0;
                        pending = error.to_string();
                    }
                }
                if quiet >= 3 {
                    let _ = open.close(200, "drained".into()).await;
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(WorkerError::NotDrained { timeout, pending })
    }

    /// Jobs in this worker's hands and ready jobs per pending queue.
    async fn pending(&self, channel: &Channel) -> lapin::Result<Vec<(String, u64)>> {
        let in_flight = self.inner.stats.in_flight.load(Ordering::SeqCst) as u64;
        let mut pending = vec![("in flight".to_string(), in_flight)];
        for queue in self.inner.topology.pending_queues() {
            let count = Topology::message_count(channel, &queue).await?;
            pending.push((queue, u64::from(count)));
        }
        Ok(pending)
    }
}

async fn open_channels(session: &Session, prefetch: u16) -> lapin::Result<(Channel, Channel)> {
    let channel = session.create_channel().await?;
    // Per consumer: quorum queues do not support a channel-wide (global) prefetch.
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await?;
    let publisher = session.create_channel().await?;
    publisher
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    Ok((channel, publisher))
}

/// Counts a job in flight until dropped (also when its task panics or is aborted).
struct InFlight(Arc<WorkerStats>);

impl InFlight {
    fn enter(stats: Arc<WorkerStats>) -> Self {
        stats.in_flight.fetch_add(1, Ordering::SeqCst);
        Self(stats)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}
