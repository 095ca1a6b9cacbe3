//! The live projector: one task per projection, catching up in large batches and then following
//! the log, woken by the store's wake-ups with polling as the fallback.

use std::sync::Arc;
use std::time::Duration;

use event_store::{EventStore, LogFollower, POLL_FALLBACK};
use events::{Position, RecordedEvent};
use sqlx::{Acquire, PgConnection, PgPool};
use tokio::sync::watch;

use crate::registry::{self, LIVE_LOCK, RowLock, checkpoint_name};
use crate::{Projection, replay};

#[derive(Debug, Clone)]
pub struct ProjectorConfig {
    /// Events read (and applied in one transaction) per batch.
    pub batch_size: usize,
    /// How long a projector that lost the lock race waits before trying again.
    pub standby_retry: Duration,
}

impl Default for ProjectorConfig {
    fn default() -> Self {
        Self {
            batch_size: 2_000,
            standby_retry: Duration::from_secs(2),
        }
    }
}

/// Runs every projection until `shutdown` turns true.
pub async fn run<S: EventStore + ?Sized>(
    store: Arc<S>,
    pool: PgPool,
    projections: Vec<Arc<dyn Projection>>,
    config: ProjectorConfig,
    shutdown: watch::Receiver<bool>,
) {
    let tasks: Vec<_> = projections
        .into_iter()
        .map(|projection| {
            tokio::spawn(run_projection(
                store.clone(),
                pool.clone(),
                projection,
                config.clone(),
                shutdown.clone(),
            ))
        })
        .collect();
    for task in tasks {
        if let Err(error) = task.await {
            tracing::error!(%error, "projection task panicked");
        }
    }
}

/// Runs one projection until `shutdown`, surviving lost connections and generation switches.
#[tracing::instrument(skip_all, fields(projection = projection.name()))]
pub async fn run_projection<S: EventStore + ?Sized>(
    store: Arc<S>,
    pool: PgPool,
    projection: Arc<dyn Projection>,
    config: ProjectorConfig,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut delay = Duration::from_millis(100);
    while !*shutdown.borrow() {
        let outcome = tokio::select! {
            outcome = lead(&store, &pool, projection.as_ref(), &config, shutdown.clone()) => outcome,
            _ = shutdown.changed() => return,
        };
        match outcome {
            Ok(Lead::Stopped) => return,
            Ok(Lead::Standby) => {
                tracing::debug!("another projector holds the projection; standing by");
                delay = config.standby_retry;
            }
            Ok(Lead::Switched) => {
                tracing::info!("a new generation went live; following it");
                delay = Duration::ZERO;
            }
            Err(error) => {
                tracing::warn!(error = format!("{error:#}"), retry_in = ?delay, "projection stopped; retrying");
                delay = (delay * 2).clamp(Duration::from_millis(100), Duration::from_secs(10));
            }
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = shutdown.changed() => return,
        }
    }
}

enum Lead {
    Stopped,
    Standby,
    Switched,
}

async fn lead<S: EventStore + ?Sized>(
    store: &Arc<S>,
    pool: &PgPool,
    projection: &dyn Projection,
    config: &ProjectorConfig,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<Lead> {
    // One dedicated connection holds the lock and writes every batch: if it dies, the lock goes
    // with it and so does any half-done transaction.
    let mut conn = pool.acquire().await?.detach();
    if !registry::try_lock(&mut conn, LIVE_LOCK, projection.name()).await? {
        return Ok(Lead::Standby);
    }
    registry::configure_session(&mut conn).await?;
    let registered = registry::registered(&mut conn, projection.name(), RowLock::None).await?;
    let generation = match registered {
        Some(r) if r.code_version == projection.version() => r.generation,
        stale => {
            if stale.is_some() {
                tracing::info!(
                    version = projection.version(),
                    "read model is from another code version; rebuilding it"
                );
            }
            // The old generation (if any) keeps serving readers while the new one is built.
            replay::replay(
                store.clone(),
                pool.clone(),
                projection,
                replay::Progress::Log,
            )
            .await?
            .generation
        }
    };
    let name = checkpoint_name(projection.name(), generation);
    let mut checkpoint = registry::read_checkpoint(&mut conn, &name)
        .await?
        .ok_or_else(|| anyhow::anyhow!("checkpoint {name} is missing"))?;
    tracing::info!(generation, %checkpoint, "projecting");
    let mut follower = follower(store, checkpoint, projection);
    loop {
        if *shutdown.borrow() {
            return Ok(Lead::Stopped);
        }
        let read = follower.next_batch(config.batch_size).await?;
        // A batch short of the limit was all there was when it was read: what came since
        // woke the follower, and reading again before waiting would mostly find nothing.
        let caught_up = read.len() < config.batch_size;
        let mut batch = Batch::of(read);
        // How far the read covered the log: past the events of other types too.
        batch.last = follower.position();
        if batch.last.is_some_and(|last| last > checkpoint) {
            let applied = batch.read;
            if batch.events.is_empty() {
                // Nothing to write but the checkpoint: one statement, no transaction. Moving a
                // generation that was just replaced harms nobody, and the next batch with
                // events notices the switch.
                checkpoint =
                    apply_batch(&mut conn, projection, generation, checkpoint, batch).await?;
            } else {
                // Readied before the transaction, which then holds its locks no longer than
                // the writes take.
                let batch = batch.prepared(projection).await?;
                let mut tx = conn.begin().await?;
                let live = registry::registered(&mut tx, projection.name(), RowLock::Share).await?;
                if live.map(|r| r.generation) != Some(generation) {
                    return Ok(Lead::Switched);
                }
                checkpoint =
                    apply_batch(&mut tx, projection, generation, checkpoint, batch).await?;
                tx.commit().await?;
            }
            metrics_applied(projection.name(), applied);
        }
        if caught_up {
            tokio::select! {
                () = follower.wait(POLL_FALLBACK) => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}

/// Follows the log after `checkpoint`, reading only the events `projection` handles (all when
/// it names none).
pub(crate) fn follower<S: EventStore + ?Sized>(
    store: &Arc<S>,
    checkpoint: Position,
    projection: &dyn Projection,
) -> LogFollower<S> {
    let follower = LogFollower::new(store.clone(), Some(checkpoint));
    match projection.handles() {
        [] => follower,
        handles => follower.only(handles),
    }
}

/// A batch read from the log (by a follower of the event types the projection handles, so
/// nothing else), and where it ends.
pub(crate) struct Batch {
    pub events: Vec<RecordedEvent>,
    /// Where the batch ends: its last event (`None` for an empty read), unless the caller knows
    /// the read covered the log further.
    pub last: Option<Position>,
    /// How many events were read.
    pub read: usize,
}

impl Batch {
    /// The events of one read, in log order.
    pub(crate) fn of(read: Vec<RecordedEvent>) -> Batch {
        Batch {
            last: read.last().map(|e| e.position),
            read: read.len(),
            events: read,
        }
    }

    /// The batch with its events readied by [`Projection::prepare`], as [`apply_batch`] takes
    /// them.
    pub(crate) async fn prepared(mut self, projection: &dyn Projection) -> anyhow::Result<Batch> {
        if !self.events.is_empty() {
            self.events = projection.prepare(self.events).await?;
        }
        Ok(self)
    }
}

/// Applies the events of `batch` ([`Batch::prepared`]) and moves the projection's checkpoint
/// from `from` to the batch's last position, inside the caller's transaction.
pub(crate) async fn apply_batch(
    conn: &mut PgConnection,
    projection: &dyn Projection,
    generation: i32,
    from: Position,
    batch: Batch,
) -> anyhow::Result<Position> {
    let Some(last) = batch.last else {
        return Ok(from);
    };
    if !batch.events.is_empty() {
        projection.apply(conn, generation, &batch.events).await?;
    }
    let name = checkpoint_name(projection.name(), generation);
    registry::advance_checkpoint(conn, &name, from, last).await?;
    Ok(last)
}

fn metrics_applied(projection: &'static str, count: usize) {
    tracing::trace!(projection, count, "batch applied");
}
