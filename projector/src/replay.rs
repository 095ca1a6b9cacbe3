//! Rebuilding a read model beside the live one (`corbi replay <projection>`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use event_store::{EventStore, LogFollower};
use events::Position;
use indicatif::{ProgressBar, ProgressStyle};
use sqlx::{Acquire, PgConnection, PgPool};

use crate::Projection;
use crate::registry::{self, REPLAY_LOCK, RowLock};
use crate::runtime::{Batch, apply_batch, follower};

/// Events per transaction while rebuilding. Larger batches spread each round trip over more
/// events, but a replay holds four of them (applied, waiting, prepared, read ahead): 10 000 was
/// about a fifth faster than 5 000 for contacts, which peaks at about 200 MB with it; 20 000
/// barely faster again.
const REPLAY_BATCH: usize = 10_000;
/// The first batch of a catch-up: small, so that applying starts at once; each next one is
/// twice as large, up to [`REPLAY_BATCH`], while the one before it is applied.
const FIRST_REPLAY_BATCH: usize = 1_000;
/// Prepared batches waiting to be applied, besides the one being prepared and the one being
/// applied. One took a contacts replay from 1.33 s to 1.27 s (the mean of 8 and 14 runs of one
/// 53k-contact log): without it, each batch waited for the slower of applying the one before
/// and preparing itself. Two were no faster.
const PREPARED_AHEAD: usize = 1;

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
    registry::configure_session(&mut conn).await?;
    // Only a progress bar shows the length.
    let total = match progress {
        Progress::Bar => store.approximate_len().await.ok().flatten(),
        Progress::Log | Progress::Quiet => None,
    };
    let mut rebuild = Rebuild {
        projection,
        generation,
        checkpoint: Position::START,
        events: 0,
        started,
        last_log: Instant::now(),
        bar: progress_bar(progress, total),
        progress,
    };
    rebuild.catch_up(&mut conn, &store).await?;
    // The secondary indexes are built once over the loaded rows, which is far cheaper than
    // maintaining them through every batch; readers must never see the generation without them.
    let indexing = Instant::now();
    projection.create_indexes(&pool, generation).await?;
    tracing::info!(generation, elapsed = ?indexing.elapsed(), "indexes built");
    // What was appended while the indexes were built, so readers switch to a generation as
    // current as the one they leave.
    rebuild.catch_up(&mut conn, &store).await?;
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
    rebuild.bar.finish_and_clear();
    let elapsed = started.elapsed();
    let events = rebuild.events;
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

/// A generation being rebuilt, and how far it has got.
struct Rebuild<'p> {
    projection: &'p dyn Projection,
    generation: i32,
    /// The position of the last event applied.
    checkpoint: Position,
    /// Events read: those the projection handles.
    events: u64,
    started: Instant,
    last_log: Instant,
    bar: ProgressBar,
    progress: Progress,
}

impl Rebuild<'_> {
    /// Applies the log from the checkpoint until it has passed every event committed before it
    /// started, a transaction per batch. The next batch is read and prepared while one is
    /// applied. Events that readers cannot see yet (an older transaction is still open) are
    /// waited for.
    async fn catch_up<S: EventStore + ?Sized>(
        &mut self,
        conn: &mut PgConnection,
        store: &Arc<S>,
    ) -> anyhow::Result<()> {
        let target = store.committed_head().await?;
        loop {
            self.catch_up_to_head(conn, store).await?;
            if target.is_none_or(|target| self.checkpoint >= target) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Applies what readers can see of the log after the checkpoint. Batches are read and
    /// prepared ahead of the one being applied, up to [`PREPARED_AHEAD`] of them waiting, so
    /// that neither side idles when one batch takes longer to apply than the next to prepare.
    async fn catch_up_to_head<S: EventStore + ?Sized>(
        &mut self,
        conn: &mut PgConnection,
        store: &Arc<S>,
    ) -> anyhow::Result<()> {
        let projection = self.projection;
        let mut follower = follower(store, self.checkpoint, projection);
        let (prepared, mut ready) = tokio::sync::mpsc::channel::<Batch>(PREPARED_AHEAD);
        let produce = async move {
            let mut limit = FIRST_REPLAY_BATCH;
            loop {
                let batch = next_batch(&mut follower, projection, limit).await?;
                if batch.last.is_none() {
                    // Caught up: how far the last read covered the log.
                    return anyhow::Ok(follower.position());
                }
                // Only an error stops the applying side, and that ends this too.
                prepared
                    .send(batch)
                    .await
                    .map_err(|_| anyhow::anyhow!("the replay stopped applying"))?;
                limit = (limit * 2).min(REPLAY_BATCH);
            }
        };
        let consume = async {
            while let Some(batch) = ready.recv().await {
                self.apply(conn, batch).await?;
            }
            anyhow::Ok(())
        };
        let (covered, ()) = tokio::try_join!(produce, consume)?;
        // The events it does not handle, up to where the last (empty) read covered the log,
        // need no reading either: the live projector goes on from there.
        if let Some(covered) = covered.filter(|p| *p > self.checkpoint) {
            let skipped = Batch {
                events: Vec::new(),
                last: Some(covered),
                read: 0,
            };
            self.apply(conn, skipped).await?;
        }
        Ok(())
    }

    async fn apply(&mut self, conn: &mut PgConnection, batch: Batch) -> anyhow::Result<()> {
        let read = batch.read as u64;
        let mut tx = conn.begin().await?;
        self.checkpoint = apply_batch(
            &mut tx,
            self.projection,
            self.generation,
            self.checkpoint,
            batch,
        )
        .await?;
        tx.commit().await?;
        self.events += read;
        self.bar.inc(read);
        if self.progress == Progress::Log && self.last_log.elapsed() > Duration::from_secs(5) {
            self.last_log = Instant::now();
            let rate = self.events as f64 / self.started.elapsed().as_secs_f64();
            tracing::info!(
                generation = self.generation,
                events = self.events,
                rate = rate as u64,
                "replaying"
            );
        }
        Ok(())
    }
}

/// The next batch of the log (at most `limit` events), down to the events `projection` handles
/// and prepared; empty once caught up. (The follower already reads the batch after it.)
async fn next_batch<S: EventStore + ?Sized>(
    follower: &mut LogFollower<S>,
    projection: &dyn Projection,
    limit: usize,
) -> anyhow::Result<Batch> {
    let read = follower.next_batch(limit).await?;
    Batch::of(read).prepared(projection).await
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
