//! Shared set-up: a fresh database with a stand-in for the `event_stats` read model (the
//! projector creates the real one), and typed seeding helpers.
#![allow(dead_code, clippy::unwrap_used)]

use chrono::NaiveDate;
use events::Position;
use sqlx::PgPool;
use uuid::Uuid;

pub const CHECKPOINT: &str = "projection:event_stats:g1";

/// Creates generation 1 of `event_stats` as the projector would: its table, the reader view,
/// the registry row and a checkpoint at the start of the log.
pub async fn create_event_stats_model(pool: &PgPool) {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('rm_event_stats') IS NOT NULL")
        .fetch_one(pool)
        .await
        .unwrap();
    if !exists {
        sqlx::query(
            "CREATE TABLE rm_event_stats_g1 (
                 org_id uuid NOT NULL, category text NOT NULL, day date NOT NULL,
                 event_count bigint NOT NULL, PRIMARY KEY (org_id, day, category))",
        )
        .execute(pool)
        .await
        .unwrap();
        sqlx::query("CREATE VIEW rm_event_stats AS SELECT * FROM rm_event_stats_g1")
            .execute(pool)
            .await
            .unwrap();
    }
    sqlx::query(
        "INSERT INTO projections (name, generation, code_version) VALUES ('event_stats', 1, 1)
         ON CONFLICT (name) DO UPDATE SET generation = 1",
    )
    .execute(pool)
    .await
    .unwrap();
    set_checkpoint(pool, Position::START).await;
}

pub async fn set_checkpoint(pool: &PgPool, position: Position) {
    sqlx::query(
        "INSERT INTO checkpoints (name, commit_position, prepare_position) VALUES ($1, $2, $3)
         ON CONFLICT (name) DO UPDATE
         SET commit_position = excluded.commit_position,
             prepare_position = excluded.prepare_position",
    )
    .bind(CHECKPOINT)
    .bind(i64::try_from(position.commit).unwrap())
    .bind(i64::try_from(position.prepare).unwrap())
    .execute(pool)
    .await
    .unwrap();
}

pub async fn add_stat(pool: &PgPool, org_id: Uuid, category: &str, day: &str, count: i64) {
    let day = NaiveDate::parse_from_str(day, "%Y-%m-%d").unwrap();
    sqlx::query(
        "INSERT INTO rm_event_stats_g1 (org_id, category, day, event_count) VALUES ($1, $2, $3, $4)",
    )
    .bind(org_id)
    .bind(category)
    .bind(day)
    .bind(count)
    .execute(pool)
    .await
    .unwrap();
}
