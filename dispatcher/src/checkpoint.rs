//! The relay's place in the log, in the `checkpoints` table.

use events::Position;
use sqlx::PgExecutor;

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("checkpoint {name} holds a negative position")]
    Corrupt { name: String },
    #[error("position {0} does not fit a checkpoint column")]
    OutOfRange(Position),
}

/// The stored position of `name`; `None` before its first save.
#[tracing::instrument(skip(db))]
pub async fn load(
    db: impl PgExecutor<'_>,
    name: &str,
) -> Result<Option<Position>, CheckpointError> {
    let row: Option<(i64, i64)> =
        sqlx::query_as("SELECT commit_position, prepare_position FROM checkpoints WHERE name = $1")
            .bind(name)
            .fetch_optional(db)
            .await?;
    row.map(
        |(commit, prepare)| match (u64::try_from(commit), u64::try_from(prepare)) {
            (Ok(commit), Ok(prepare)) => Ok(Position::new(commit, prepare)),
            _ => Err(CheckpointError::Corrupt { name: name.into() }),
        },
    )
    .transpose()
}

/// Stores `position` as `name`'s checkpoint. Never moves a checkpoint backwards, so a relay
/// that lost its lease while another one took over cannot rewind it.
#[tracing::instrument(skip(db))]
pub async fn save(
    db: impl PgExecutor<'_>,
    name: &str,
    position: Position,
) -> Result<(), CheckpointError> {
    let commit =
        i64::try_from(position.commit).map_err(|_| CheckpointError::OutOfRange(position))?;
    let prepare =
        i64::try_from(position.prepare).map_err(|_| CheckpointError::OutOfRange(position))?;
    sqlx::query(
        "INSERT INTO checkpoints (name, commit_position, prepare_position, updated_at) \
         VALUES ($1, $2, $3, now()) \
         ON CONFLICT (name) DO UPDATE \
         SET commit_position = EXCLUDED.commit_position, \
             prepare_position = EXCLUDED.prepare_position, \
             updated_at = now() \
         WHERE (checkpoints.commit_position, checkpoints.prepare_position) \
             < (EXCLUDED.commit_position, EXCLUDED.prepare_position)",
    )
    .bind(name)
    .bind(commit)
    .bind(prepare)
    .execute(db)
    .await?;
    Ok(())
}
