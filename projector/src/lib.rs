//! The projector: builds the read models (`rm_*` tables) from the event log.
//!
//! Each [`Projection`] runs as its own task ([`run`]), holding a session-level advisory lock so
//! two projector processes never run the same projection. It applies batches of events and
//! moves its checkpoint **in the same transaction**, so a crash never applies an event twice or
//! loses one. Read models are versioned by *generation*: `rm_<name>_g<n>` tables behind a
//! `rm_<name>` view that readers query; [`replay()`] builds generation `n + 1` beside the live one
//! and switches the view in one transaction, so readers never see an empty or half-built model.

pub mod access;
pub mod audit;
pub mod contacts;
mod copy;
pub mod custom_fields;
mod event_stats;
pub mod groups;
mod lag;
mod registry;
mod replay;
mod runtime;

use async_trait::async_trait;
use events::RecordedEvent;
use sqlx::{AssertSqlSafe, PgConnection, PgPool};

pub use access::Access;
pub use audit::Audit;
pub use contacts::Contacts;
pub use custom_fields::CustomFields;
pub use event_stats::EventStats;
pub use groups::Groups;
pub use lag::{ProjectionLag, lag};
pub use registry::{ProjectionStatus, checkpoint_name, status};
pub use replay::{Progress, Replayed, replay};
pub use runtime::{ProjectorConfig, run, run_projection};

/// A read model built from the log. Implementations are pure with respect to the outside world:
/// no HTTP, no queues — only SQL inside the transaction they are given.
#[async_trait]
pub trait Projection: Send + Sync + 'static {
    /// Stable name: the registry key and the base of the reader views.
    fn name(&self) -> &'static str;

    /// The code version of the read model. Changing it makes the projector rebuild the model in
    /// a new generation before it goes on.
    fn version(&self) -> i32;

    /// The event types it reads; empty means every event. Others are skipped (but still move
    /// the checkpoint).
    fn handles(&self) -> &'static [&'static str];

    /// The reader views it owns, each backed by a `<view>_g<generation>` table.
    fn views(&self) -> &'static [&'static str];

    /// Creates the (empty) tables of `generation`, with the keys and unique constraints that
    /// [`Self::apply`] relies on; secondary indexes go in [`Self::create_indexes`].
    async fn create(&self, conn: &mut PgConnection, generation: i32) -> anyhow::Result<()>;

    /// Creates the secondary indexes of `generation`'s tables, which readers query by, over
    /// connections of `pool` ([`build_indexes`]). A replay calls it once the generation has
    /// caught up and before readers switch to it: one index build over the loaded rows costs a
    /// fraction of maintaining the index row by row through the rebuild (a trigram index most
    /// of all).
    async fn create_indexes(&self, _pool: &PgPool, _generation: i32) -> anyhow::Result<()> {
        Ok(())
    }

    /// Readies `events` (already filtered to [`Self::handles`], in log order) for
    /// [`Self::apply`] outside any transaction, e.g. by opening their personal data. Every batch
    /// is prepared before it is applied; a replay prepares the next batch while it applies this
    /// one.
    async fn prepare(&self, events: Vec<RecordedEvent>) -> anyhow::Result<Vec<RecordedEvent>> {
        Ok(events)
    }

    /// Applies `events` (already filtered to [`Self::handles`], in log order, and prepared by
    /// [`Self::prepare`]) to `generation`.
    async fn apply(
        &self,
        conn: &mut PgConnection,
        generation: i32,
        events: &[RecordedEvent],
    ) -> anyhow::Result<()>;
}

/// Index builds that run at once: each is bound to one core, so two keep a small server busy
/// while one waits on its sort or its writes.
const INDEX_BUILDERS: usize = 2;

/// Runs `statements` (`CREATE INDEX`es), [`INDEX_BUILDERS`] at a time, each on a connection of
/// `pool` with room to sort in memory. The slowest first, so that the rest fit beside it.
pub async fn build_indexes(pool: &PgPool, statements: Vec<String>) -> anyhow::Result<()> {
    use futures::TryStreamExt;
    futures::stream::iter(statements.into_iter().map(anyhow::Ok))
        .try_for_each_concurrent(INDEX_BUILDERS, |statement| async move {
            let mut tx = pool.begin().await?;
            sqlx::query("SET LOCAL maintenance_work_mem = '256MB'")
                .execute(&mut *tx)
                .await?;
            sqlx::raw_sql(AssertSqlSafe(statement))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        })
        .await
}

/// Every projection Corbi runs; `keys` open the personal fields of the events they read.
pub fn all(keys: &event_store::data_keys::DataKeys) -> Vec<std::sync::Arc<dyn Projection>> {
    vec![
        std::sync::Arc::new(EventStats),
        std::sync::Arc::new(Access),
        std::sync::Arc::new(Audit),
        std::sync::Arc::new(Contacts::new(keys.clone())),
        std::sync::Arc::new(Groups),
        std::sync::Arc::new(CustomFields),
    ]
}

/// The id of the aggregate whose stream is `stream`, named `<prefix>-<uuid>` (`contact-…`).
pub(crate) fn stream_id(stream: &str, prefix: &str) -> anyhow::Result<uuid::Uuid> {
    let id = stream
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('-'))
        .ok_or_else(|| anyhow::anyhow!("a {prefix} event outside a {prefix} stream: {stream}"))?;
    Ok(id.parse()?)
}

/// The table behind `view` in `generation`.
pub fn table(view: &str, generation: i32) -> String {
    format!("{view}_g{generation}")
}
