//! How far behind the log each projection is, for `/ready` and operators.

use std::time::Duration;

use event_store::EventStore;
use sqlx::PgPool;

use crate::status;

/// One projection's distance from the head of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectionLag {
    pub name: String,
    pub generation: i32,
    /// How long ago the oldest event the projection has not applied yet was recorded; zero when
    /// it is caught up.
    pub behind: Duration,
}

/// The lag of every registered projection.
pub async fn lag<S: EventStore + ?Sized>(
    store: &S,
    pool: &PgPool,
) -> anyhow::Result<Vec<ProjectionLag>> {
    let mut lags = Vec::new();
    for projection in status(pool).await? {
        let next = store.read_all(projection.checkpoint, 1).await?;
        let behind = next
            .first()
            .map(|event| {
                (chrono::Utc::now() - event.recorded_at)
                    .to_std()
                    .unwrap_or_default()
            })
            .unwrap_or_default();
        lags.push(ProjectionLag {
            name: projection.name,
            generation: projection.generation,
            behind,
        });
    }
    Ok(lags)
}
