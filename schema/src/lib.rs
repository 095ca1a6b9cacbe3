//! The SQL schema of Corbi — the event store, checkpoints, the projection registry and every
//! read model — as embedded migrations, and the per-test database helper.

pub mod testing;

use sqlx::PgPool;
use sqlx::migrate::Migrator;

/// Every migration, embedded at build time.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Applies every pending migration.
#[tracing::instrument(skip_all)]
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(pool).await
}

/// How many embedded migrations the database has not applied yet.
pub async fn pending_migrations(pool: &PgPool) -> Result<usize, sqlx::Error> {
    let table_exists: bool =
        sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
            .fetch_one(pool)
            .await?;
    if !table_exists {
        return Ok(MIGRATOR.iter().count());
    }
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(pool)
            .await?;
    Ok(MIGRATOR
        .iter()
        .filter(|m| !applied.contains(&m.version))
        .count())
}
