//! The dispatcher (DESIGN §6): the **relay** turns dispatch-relevant events of the log into jobs
//! on RabbitMQ, the **workers** run the jobs and append their outcomes to the log.
//!
//! - [`Broker`] supervises the one RabbitMQ connection: it connects with backoff, declares the
//!   [`Topology`] on every (re)connect and tells the others when the connection is lost.
//! - [`Relay`] publishes with publisher confirms and `mandatory`, and moves its checkpoint only
//!   past confirmed batches.
//! - [`Worker`] consumes with manual acks and a bounded prefetch; [`JobHandler`]s are idempotent
//!   (outcome events have deterministic ids), so a job delivered twice has one effect.
//!
//! [`run`] wires them for `corbi dispatcher` and `corbi up`; [`Dispatcher`] does the same but
//! hands back the pieces (readiness, progress) a caller may want to watch.

mod broker;
pub mod checkpoint;
mod config;
mod handler;
pub mod job;
mod relay;
mod shutdown;
pub mod topology;
mod worker;

use std::future::Future;
use std::sync::Arc;

use event_store::EventStore;
use events::Position;
use sqlx::PgPool;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use broker::{Broker, Session};
pub use config::{CHANNELS, DispatchConfig};
pub use handler::{Handlers, JobError, JobHandler, OUTCOME_NAMESPACE, ProbeHandler, outcome_id};
pub use job::Job;
pub use relay::{Relay, RelayError};
pub use shutdown::{Shutdown, ShutdownTrigger};
pub use topology::Topology;
pub use worker::{Worker, WorkerError, WorkerStats};

/// Runs the relay and the workers until `shutdown` resolves, then stops them (jobs in flight
/// get a grace period) and closes the RabbitMQ connection. RabbitMQ being unreachable is not
/// an error: the dispatcher keeps retrying and logs it.
pub async fn run(
    config: DispatchConfig,
    store: Arc<dyn EventStore>,
    pool: PgPool,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let dispatcher = Dispatcher::production(config, store, pool);
    shutdown.await;
    dispatcher.stop().await;
    Ok(())
}

/// A running dispatcher: relay, workers and the connection supervisor.
pub struct Dispatcher {
    broker: Broker,
    relay_progress: watch::Receiver<Option<Position>>,
    worker: Worker,
    stop: ShutdownTrigger,
    stop_broker: ShutdownTrigger,
    services: Vec<JoinHandle<()>>,
    supervisor: JoinHandle<()>,
}

impl Dispatcher {
    /// Starts the production dispatcher (every [`Handlers::production`] handler) in the
    /// background; returns at once, connected or not.
    pub fn production(config: DispatchConfig, store: Arc<dyn EventStore>, pool: PgPool) -> Self {
        let worker_name = format!("dispatcher-{}", std::process::id());
        let handlers = Handlers::production(store.clone(), worker_name);
        Self::start(config, store, pool, handlers)
    }

    /// Starts everything with these handlers in the background; returns at once, connected
    /// or not.
    pub fn start(
        config: DispatchConfig,
        store: Arc<dyn EventStore>,
        pool: PgPool,
        handlers: Handlers,
    ) -> Dispatcher {
        let topology = Arc::new(Topology::new(&config));
        let (stop_broker, broker_shutdown) = Shutdown::new();
        let (broker, supervisor) =
            Broker::start(&config.amqp_url, topology.clone(), broker_shutdown);
        let (stop, shutdown) = Shutdown::new();
        let relay = Relay::new(&config, store, pool, broker.clone(), topology.clone());
        let relay_progress = relay.progress();
        let worker = Worker::new(&config, broker.clone(), topology, handlers);
        let services = vec![
            tokio::spawn(relay.run(shutdown.clone())),
            tokio::spawn(worker.clone().run(shutdown)),
        ];
        Dispatcher {
            broker,
            relay_progress,
            worker,
            stop,
            stop_broker,
            services,
            supervisor,
        }
    }

    /// The connection supervisor: `is_connected()` / `connected()` for `/ready`.
    pub fn broker(&self) -> &Broker {
        &self.broker
    }

    /// The relay's checkpoint as it moves.
    pub fn relay_progress(&self) -> watch::Receiver<Option<Position>> {
        self.relay_progress.clone()
    }

    /// The workers: their [`WorkerStats`] and [`Worker::drain`].
    pub fn worker(&self) -> &Worker {
        &self.worker
    }

    /// Stops the relay and the workers, then the connection.
    pub async fn stop(self) {
        self.stop.trigger();
        for service in self.services {
            if let Err(error) = service.await {
                tracing::error!(%error, "a dispatcher task failed");
            }
        }
        self.stop_broker.trigger();
        if let Err(error) = self.supervisor.await {
            tracing::error!(%error, "the RabbitMQ supervisor failed");
        }
    }
}
