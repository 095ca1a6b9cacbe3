//! The projection registry (`projections`), checkpoints (`checkpoints`) and the reader views.

use events::Position;
use sqlx::{AssertSqlSafe, PgConnection, PgPool, Row};

use crate::{Projection, table};

/// The checkpoint row of one generation of a projection.
pub fn checkpoint_name(projection: &str, generation: i32) -> String {
    format!("projection:{projection}:g{generation}")
}

/// What the registry says about a projection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Registered {
    pub generation: i32,
    pub code_version: i32,
}

/// Advisory-lock classes: one key space for live projectors, one for replays.
pub(crate) const LIVE_LOCK: i32 = 0x636f_7262;
pub(crate) const REPLAY_LOCK: i32 = 0x636f_7263;

/// Settings of a projector's own connection (a live projector's or a replay's):
/// - its commits return before they are flushed to disk. A read model is derived from the log:
///   a crash can lose only whole batches (each commits its rows with its checkpoint), which are
///   projected again from the checkpoint that survived. The log itself and everything else keep
///   the server's setting;
/// - a batch's sorts (timeline rows in log order, a batch of 10,000 events) stay in memory
///   instead of spilling to temporary files. (A replay builds its indexes on connections of
///   their own, `build_indexes`.)
pub(crate) async fn configure_session(conn: &mut PgConnection) -> sqlx::Result<()> {
    sqlx::raw_sql(
        "SET synchronous_commit = off;
         SET work_mem = '64MB'",
    )
    .execute(conn)
    .await
    .map(drop)
}

pub(crate) async fn try_lock(
    conn: &mut PgConnection,
    class: i32,
    name: &str,
) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT pg_try_advisory_lock($1, hashtext($2))")
        .bind(class)
        .bind(name)
        .fetch_one(conn)
        .await
}

pub(crate) async fn lock(conn: &mut PgConnection, class: i32, name: &str) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_advisory_lock($1, hashtext($2))")
        .bind(class)
        .bind(name)
        .execute(conn)
        .await
        .map(|_| ())
}

/// How [`registered`] holds the registry row until the transaction ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RowLock {
    None,
    /// A batch is being applied: no replay may switch generations under it.
    Share,
    /// A replay is switching generations: no batch may be applied meanwhile.
    Update,
}

pub(crate) async fn registered(
    conn: &mut PgConnection,
    name: &str,
    lock: RowLock,
) -> sqlx::Result<Option<Registered>> {
    let sql = match lock {
        RowLock::None => "SELECT generation, code_version FROM projections WHERE name = $1",
        RowLock::Share => {
            "SELECT generation, code_version FROM projections WHERE name = $1 FOR SHARE"
        }
        RowLock::Update => {
            "SELECT generation, code_version FROM projections WHERE name = $1 FOR UPDATE"
        }
    };
    let row = sqlx::query(sql).bind(name).fetch_optional(conn).await?;
    Ok(row.map(|row| Registered {
        generation: row.get(0),
        code_version: row.get(1),
    }))
}

pub(crate) async fn read_checkpoint(
    conn: &mut PgConnection,
    name: &str,
) -> sqlx::Result<Option<Position>> {
    let row =
        sqlx::query("SELECT commit_position, prepare_position FROM checkpoints WHERE name = $1")
            .bind(name)
            .fetch_optional(conn)
            .await?;
    Ok(row.map(|row| Position::new(row.get::<i64, _>(0) as u64, row.get::<i64, _>(1) as u64)))
}

/// Moves a checkpoint from `from` to `to`; fails if someone else moved it meanwhile, which
/// makes the enclosing transaction roll back instead of applying a batch twice.
pub(crate) async fn advance_checkpoint(
    conn: &mut PgConnection,
    name: &str,
    from: Position,
    to: Position,
) -> anyhow::Result<()> {
    let moved = sqlx::query(
        "UPDATE checkpoints SET commit_position = $4, prepare_position = $5, updated_at = now()
         WHERE name = $1 AND commit_position = $2 AND prepare_position = $3",
    )
    .bind(name)
    .bind(from.commit as i64)
    .bind(from.prepare as i64)
    .bind(to.commit as i64)
    .bind(to.prepare as i64)
    .execute(conn)
    .await?
    .rows_affected();
    anyhow::ensure!(moved == 1, "checkpoint {name} was moved by someone else");
    Ok(())
}

/// Creates the empty tables and the checkpoint of a new generation, dropping whatever an
/// interrupted earlier attempt left behind. Its secondary indexes come once it has caught up
/// (`Projection::create_indexes`), before [`expose`].
pub(crate) async fn create_generation(
    conn: &mut PgConnection,
    projection: &dyn Projection,
    generation: i32,
) -> anyhow::Result<()> {
    drop_generation(conn, projection, generation).await?;
    projection.create(conn, generation).await?;
    sqlx::query(
        "INSERT INTO checkpoints (name, commit_position, prepare_position) VALUES ($1, 0, 0)",
    )
    .bind(checkpoint_name(projection.name(), generation))
    .execute(conn)
    .await?;
    Ok(())
}

pub(crate) async fn drop_generation(
    conn: &mut PgConnection,
    projection: &dyn Projection,
    generation: i32,
) -> anyhow::Result<()> {
    for view in projection.views() {
        let table = table(view, generation);
        // Checked first so a fresh generation does not log "does not exist, skipping" notices.
        let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(&table)
            .fetch_one(&mut *conn)
            .await?;
        if exists {
            sqlx::query(AssertSqlSafe(format!("DROP TABLE {table}")))
                .execute(&mut *conn)
                .await?;
        }
    }
    sqlx::query("DELETE FROM checkpoints WHERE name = $1")
        .bind(checkpoint_name(projection.name(), generation))
        .execute(conn)
        .await?;
    Ok(())
}

/// Points the reader views at `generation` and records it in the registry. Run inside the
/// transaction that holds the registry row, so readers switch atomically.
pub(crate) async fn expose(
    conn: &mut PgConnection,
    projection: &dyn Projection,
    generation: i32,
) -> anyhow::Result<()> {
    for view in projection.views() {
        // Drop and create rather than replace: a new code version may change the columns.
        let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(view)
            .fetch_one(&mut *conn)
            .await?;
        if exists {
            sqlx::query(AssertSqlSafe(format!("DROP VIEW {view}")))
                .execute(&mut *conn)
                .await?;
        }
        sqlx::query(AssertSqlSafe(format!(
            "CREATE VIEW {view} AS SELECT * FROM {}",
            table(view, generation)
        )))
        .execute(&mut *conn)
        .await?;
    }
    sqlx::query(
        "INSERT INTO projections (name, generation, code_version) VALUES ($1, $2, $3)
         ON CONFLICT (name) DO UPDATE
         SET generation = excluded.generation, code_version = excluded.code_version,
             switched_at = now()",
    )
    .bind(projection.name())
    .bind(generation)
    .bind(projection.version())
    .execute(conn)
    .await?;
    Ok(())
}

/// Where a projection stands, for readiness and operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectionStatus {
    pub name: String,
    pub generation: i32,
    pub code_version: i32,
    pub checkpoint: Option<Position>,
}

pub async fn status(pool: &PgPool) -> sqlx::Result<Vec<ProjectionStatus>> {
    let rows = sqlx::query(
        "SELECT p.name, p.generation, p.code_version, c.commit_position, c.prepare_position
         FROM projections p
         LEFT JOIN checkpoints c ON c.name = 'projection:' || p.name || ':g' || p.generation
         ORDER BY p.name",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| ProjectionStatus {
            name: row.get(0),
            generation: row.get(1),
            code_version: row.get(2),
            checkpoint: row
                .get::<Option<i64>, _>(3)
                .zip(row.get::<Option<i64>, _>(4))
                .map(|(c, p)| Position::new(c as u64, p as u64)),
        })
        .collect())
}
