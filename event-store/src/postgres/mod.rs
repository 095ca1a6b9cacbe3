//! The Postgres backend: the `events` table of `schema/migrations/0001_event_store.sql`.
//!
//! An append is **one statement** in its own implicit transaction: the optimistic-concurrency
//! check (the stream's current version, guarded by `unique(stream, version)`) and every insert
//! travel in one round trip. Appends at known versions that arrive while others are being
//! written share the next statement, and so its commit (`crate::group`); any failure
//! there sends each back its own way. Readers follow `(transaction_id, global_position)` below
//! `pg_snapshot_xmin`, so an append that commits late is never skipped. Wake-ups are coalesced
//! `NOTIFY`s sent off the append path (see [`wakeup`]).

mod append;
mod wakeup;
mod xid8;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use futures::TryStreamExt;
use tokio::sync::watch;
use tokio_postgres::types::{Json, ToSql};
use tokio_postgres::{NoTls, Row};

use crate::group::Group;
use crate::{AppendResult, Direction, EventStore, ExpectedVersion, StoreError, StreamAppend};
use events::{Metadata, NewEvent, Position, RecordedEvent};
use xid8::Xid8;

/// The NOTIFY channel appends wake readers on.
const CHANNEL: &str = "corbi_events";

/// Grouped append statements in flight at once: while they run, the appends that arrive
/// queue and go together in the next.
const APPEND_LANES: usize = 2;

/// The most appends (calls) one grouped statement takes.
const APPEND_GROUP: usize = 64;

/// The most rows `read_all` reserves room for before it sees them.
const READ_ALL_PREALLOCATE: usize = 4_096;

const SELECT_COLUMNS: &str = "global_position, transaction_id, event_id, stream, version, \
     event_type, schema_version, org_id, data, metadata, recorded_at";

/// Calls of `append_to_streams`, each answered with its results.
type AppendGroup = Group<Vec<StreamAppend>, Result<Vec<AppendResult>, StoreError>>;

#[derive(Clone)]
pub struct PgEventStore {
    pool: Pool,
    /// Concurrent appends at known versions, written together (`crate::group`).
    appends: Arc<AppendGroup>,
    wakeups: watch::Receiver<()>,
    appended: Arc<tokio::sync::Notify>,
    _tasks: Arc<wakeup::Tasks>,
}

impl PgEventStore {
    /// Connects a pool of `pool_size` connections and starts the wake-up tasks. The database
    /// must be migrated (`corbi migrate`). Connections are made lazily, so an unreachable server
    /// shows up as [`StoreError::Unavailable`] on use, and the store recovers by itself.
    pub fn connect(database_url: &str, pool_size: usize) -> Result<PgEventStore, StoreError> {
        let config = tokio_postgres::Config::from_str(database_url)
            .map_err(|e| StoreError::Backend(format!("DATABASE_URL is not a valid URL: {e}")))?;
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(2))
            .wait_timeout(Some(Duration::from_secs(10)))
            .create_timeout(Some(Duration::from_secs(5)))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        let (signal, wakeups) = watch::channel(());
        let appended = Arc::new(tokio::sync::Notify::new());
        let sender = wakeup::sender_id();
        let tasks = wakeup::Tasks(vec![
            wakeup::spawn_listener(config, sender.clone(), signal.clone()),
            wakeup::spawn_notifier(pool.clone(), sender, appended.clone(), signal),
        ]);
        Ok(PgEventStore {
            pool,
            appends: Arc::new(Group::new(APPEND_LANES, APPEND_GROUP)),
            wakeups,
            appended,
            _tasks: Arc::new(tasks),
        })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    /// The position of the last event of the log, among the events `filter` (a `WHERE`
    /// clause, or nothing) leaves.
    async fn last_position(&self, filter: &str) -> Result<Option<Position>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT transaction_id, global_position FROM events {filter} \
                 ORDER BY transaction_id DESC, global_position DESC LIMIT 1"
            ))
            .await
            .map_err(pg_error)?;
        let row = client.query_opt(&statement, &[]).await.map_err(pg_error)?;
        row.map(|row| position(&row, 0, 1)).transpose()
    }

    /// The log after `after` in global order, only events of `types` when given. Rows are
    /// decoded as they arrive, so the server keeps sending while this decodes.
    async fn read_log(
        &self,
        after: Option<Position>,
        limit: usize,
        types: Option<&[&str]>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let after = after.unwrap_or(Position::START);
        let client = self.client().await?;
        let of_types = if types.is_some() {
            "AND event_type = ANY($4)"
        } else {
            ""
        };
        let statement = client
            .prepare_cached(&format!(
                "SELECT {SELECT_COLUMNS} FROM events \
                 WHERE (transaction_id, global_position) > ($1, $2) \
                   AND transaction_id < pg_snapshot_xmin(pg_current_snapshot()) {of_types} \
                 ORDER BY transaction_id, global_position LIMIT $3"
            ))
            .await
            .map_err(pg_error)?;
        let (commit, prepare, limit) = (
            Xid8(after.commit),
            to_i64(after.prepare),
            to_i64(limit as u64),
        );
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&commit, &prepare, &limit];
        if let Some(types) = &types {
            params.push(types);
        }
        let rows = client
            .query_raw(&statement, params)
            .await
            .map_err(pg_error)?;
        let mut rows = std::pin::pin!(rows);
        let mut events = Vec::with_capacity((limit as usize).min(READ_ALL_PREALLOCATE));
        while let Some(row) = rows.try_next().await.map_err(pg_error)? {
            events.push(recorded_event(&row)?);
        }
        Ok(events)
    }
}

#[async_trait]
impl EventStore for PgEventStore {
    fn flushes_earlier_database_commits(&self) -> bool {
        true
    }

    async fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        let client = self.client().await?;
        let result = append::append(&client, stream, expected, &events).await?;
        self.appended.notify_one();
        Ok(result)
    }

    async fn append_to_streams(
        &self,
        appends: Vec<StreamAppend>,
    ) -> Result<Vec<AppendResult>, StoreError> {
        let results = if append::at_known_versions(&appends) {
            crate::check_appends(&appends)?;
            let pool = self.pool.clone();
            self.appends
                .submit(appends, |calls| append::append_group(pool.clone(), calls))
                .await
                .unwrap_or_else(|| {
                    Err(StoreError::Backend(
                        "the grouped append ended without an answer".into(),
                    ))
                })?
        } else {
            let mut client = self.client().await?;
            append::append_to_streams(&mut client, &appends).await?
        };
        self.appended.notify_one();
        Ok(results)
    }

    async fn read_stream(
        &self,
        stream: &str,
        from: Option<u64>,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let client = self.client().await?;
        let sql = match direction {
            Direction::Forwards => format!(
                "SELECT {SELECT_COLUMNS} FROM events WHERE stream = $1 AND version >= $2 \
                 ORDER BY version LIMIT $3"
            ),
            Direction::Backwards => format!(
                "SELECT {SELECT_COLUMNS} FROM events WHERE stream = $1 AND version <= $2 \
                 ORDER BY version DESC LIMIT $3"
            ),
        };
        let from = match (from, direction) {
            (Some(v), _) => to_i64(v),
            (None, Direction::Forwards) => 0,
            (None, Direction::Backwards) => i64::MAX,
        };
        let statement = client.prepare_cached(&sql).await.map_err(pg_error)?;
        let rows = client
            .query(&statement, &[&stream, &from, &to_i64(limit as u64)])
            .await
            .map_err(pg_error)?;
        rows.iter().map(recorded_event).collect()
    }

    async fn read_all(
        &self,
        after: Option<Position>,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.read_log(after, limit, None).await
    }

    async fn read_all_of_types(
        &self,
        after: Option<Position>,
        limit: usize,
        types: &[&str],
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.read_log(after, limit, Some(types)).await
    }

    async fn stream_version(&self, stream: &str) -> Result<Option<u64>, StoreError> {
        let client = self.client().await?;
        current_version(&client, stream).await
    }

    /// The planner's estimate, kept by (auto)vacuum and analyze: counting a log of millions of
    /// events would take seconds. Unknown until the table was first analyzed.
    async fn approximate_len(&self) -> Result<Option<u64>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT reltuples::int8 FROM pg_class WHERE oid = 'events'::regclass",
                &[],
            )
            .await
            .map_err(pg_error)?;
        Ok(u64::try_from(row.get::<_, i64>(0)).ok())
    }

    async fn head(&self) -> Result<Option<Position>, StoreError> {
        self.last_position("WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot())")
            .await
    }

    async fn committed_head(&self) -> Result<Option<Position>, StoreError> {
        self.last_position("").await
    }

    async fn wait_for_append(&self, timeout: Duration) {
        let mut wakeups = self.wakeups.clone();
        let _ = tokio::time::timeout(timeout, wakeups.changed()).await;
    }

    fn wakeups(&self) -> Option<watch::Receiver<()>> {
        Some(self.wakeups.clone())
    }
}

async fn current_version(
    client: &deadpool_postgres::Object,
    stream: &str,
) -> Result<Option<u64>, StoreError> {
    let statement = client
        .prepare_cached(
            "SELECT version FROM events WHERE stream = $1 ORDER BY version DESC LIMIT 1",
        )
        .await
        .map_err(pg_error)?;
    let row = client
        .query_opt(&statement, &[&stream])
        .await
        .map_err(pg_error)?;
    Ok(row.map(|row| row.get::<_, i64>(0) as u64))
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn position(
    row: &Row,
    transaction_id: usize,
    global_position: usize,
) -> Result<Position, StoreError> {
    let Xid8(commit) = row.try_get(transaction_id).map_err(pg_error)?;
    let prepare: i64 = row.try_get(global_position).map_err(pg_error)?;
    Ok(Position::new(commit, prepare as u64))
}

/// Decodes a row selected with [`SELECT_COLUMNS`].
fn recorded_event(row: &Row) -> Result<RecordedEvent, StoreError> {
    let event_id: uuid::Uuid = row.try_get(2).map_err(pg_error)?;
    let Json(metadata) = row
        .try_get::<_, Json<Metadata>>(9)
        .map_err(|e| StoreError::Corrupt {
            event_id,
            reason: format!("metadata: {e}"),
        })?;
    Ok(RecordedEvent {
        position: position(row, 1, 0)?,
        event_id,
        stream: row.try_get(3).map_err(pg_error)?,
        version: row.try_get::<_, i64>(4).map_err(pg_error)? as u64,
        event_type: row.try_get(5).map_err(pg_error)?,
        schema_version: row.try_get::<_, i32>(6).map_err(pg_error)? as u32,
        org_id: row.try_get(7).map_err(pg_error)?,
        data: row.try_get(8).map_err(pg_error)?,
        metadata,
        recorded_at: row.try_get(10).map_err(pg_error)?,
    })
}

/// A lost connection or an unreachable server is transient; anything the server said is not.
fn pg_error(error: tokio_postgres::Error) -> StoreError {
    // tokio-postgres says only "db error" for what the server said; the server's words are in
    // the `DbError`.
    let message = match error.as_db_error() {
        Some(db) => db.to_string(),
        None => error.to_string(),
    };
    if error.is_closed() || error.as_db_error().is_none() && error.code().is_none() {
        StoreError::Unavailable(message)
    } else {
        StoreError::Backend(message)
    }
}
