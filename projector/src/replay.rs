//! Rebuilding a read model beside the live one (`corbi replay <projection>`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use event_store::{EventStore, LogFollower};
use events::Position;
use indicatif::{ProgressBar, ProgressStyle};
use sqlx::{Acquire, PgPool};

use crate::Projection;
use crate::registry::{self, REPLAY_LOCK, RowLock};
use crate::runtime::apply_batch;

/// Events per transaction while rebuilding.
const REPLAY_BATCH: usize = 5_000;

/// How a replay reports its progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// A terminal progress bar with events/s and ETA.
    Bar,
    /// A log line every few seconds.
    Log,
    /// Nothing.
    Quiet,
}

/// What a replay did.
#[derive(Debug, Clone, Copy)]
pub struct Replayed {
    pub generation: i32,
    pub events: u64,
    pub elapsed: Duration,
}

/// Builds the next generation of `projection` from the whole log beside the live one, switches
/// the reader views to it in one transaction once it has caught up, and drops the old one.
/// Readers keep seeing the old generation until the switch. Two replays of one projection
/// queue behind each other.
#[tracing::instrument(skip_all, fields(projection = projection.name()))]
pub async fn replay<S: EventStore + ?Sized>(
    store: Arc<S>,
    pool: PgPool,
    projection: &dyn Projection,
    progress: Progress,
) -> anyhow::Result<Replayed> {
    let started = Instant::now();
    let mut conn = pool.acquire().await?.detach();
    registry::lock(&mut conn, REPLAY_LOCK, projection.name()).await?;
    let current = registry::registered(&mut conn, projection.name(), RowLock::None)
        .await?
        .map(|r| r.generation);
    let generation = current.unwrap_or(0) + 1;
    {
        let mut tx = conn.begin().await?;
        registry::create_generation(&mut tx, projection, generation).await?;
        tx.commit().await?;
    }
    registry::defer_flushes(&mut conn).await?;
    let total = store.approximate_len().await.ok().flatten();
    let bar = progress_bar(progress, total);
    let mut checkpoint = Position::START;
    let mut follower = LogFollower::new(store, Some(checkpoint));
    let mut events = 0u64;
    let mut last_log = Instant::now();
    loop {
        let batch = follower.next_batch(REPLAY_BATCH).await?;
        if batch.is_empty() {
            break;
        }
        let read = batch.len() as u64;
        let mut tx = conn.begin().await?;
        checkpoint = apply_batch(&mut tx, projection, generation, checkpoint, batch).await?;
        tx.commit().await?;
        events += read;
        bar.inc(read);
        if progress == Progress::Log && last_log.elapsed() > Duration::from_secs(5) {
            last_log = Instant::now();
            let rate = events as f64 / started.elapsed().as_secs_f64();
            tracing::info!(generation, events, rate = rate as u64, "replaying");
        }
    }
    // Caught up: switch readers. The live projector (if any) notices the new generation at its
    // next batch and carries on from this generation's checkpoint. The switch itself waits for
    // its flush: readers must not go back to the old generation after a crash.
    {
        let mut tx = conn.begin().await?;
        sqlx::query("SET LOCAL synchronous_commit TO DEFAULT")
            .execute(&mut *tx)
            .await?;
        registry::registered(&mut tx, projection.name(), RowLock::Update).await?;
        registry::expose(&mut tx, projection, generation).await?;
        tx.commit().await?;
    }
    if let Some(old) = current {
        registry::drop_generation(&mut conn, projection, old).await?;
    }
    bar.finish_and_clear();
    let elapsed = started.elapsed();
    tracing::info!(
        generation,
        events,
        ?elapsed,
        "replay finished; readers switched"
    );
    Ok(Replayed {
        generation,
        events,
        elapsed,
    })
}

fn progress_bar(progress: Progress, total: Option<u64>) -> ProgressBar {
    if progress != Progress::Bar {
        return ProgressBar::hidden();
    }
    let bar = match total {
        Some(total) => ProgressBar::new(total),
        None => ProgressBar::no_length(),
    };
    let style = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} events · {per_sec} · ETA {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}
