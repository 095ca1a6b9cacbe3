//! The projector runtime against real Postgres: exactly-once application, one leader per
//! projection, skipped event types, failure atomicity, zero-downtime replays, and secondary
//! indexes built once a replay has caught up.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use event_store::postgres::PgEventStore;
use event_store::{EventStore, ExpectedVersion};
use events::{NewEvent, RecordedEvent};
use projector::{EventStats, Progress, Projection, ProjectorConfig};
use schema::testing::TestDatabase;
use serde_json::json;
use sqlx::{AssertSqlSafe, PgConnection, PgPool};
use tokio::sync::watch;
use uuid::Uuid;

struct Harness {
    db: TestDatabase,
    store: Arc<PgEventStore>,
    shutdown: watch::Sender<bool>,
}

async fn harness() -> Harness {
    let db = TestDatabase::create().await.unwrap();
    let store = Arc::new(PgEventStore::connect(&db.url, 8).unwrap());
    Harness {
        db,
        store,
        shutdown: watch::channel(false).0,
    }
}

impl Harness {
    fn start(&self, projection: Arc<dyn Projection>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(projector::run_projection(
            self.store.clone(),
            self.db.pool.clone(),
            projection,
            ProjectorConfig {
                batch_size: 100,
                standby_retry: Duration::from_millis(100),
            },
            self.shutdown.subscribe(),
        ))
    }

    async fn append(&self, org: Uuid, stream: &str, count: usize) {
        for n in 0..count {
            self.store
                .append(
                    stream,
                    ExpectedVersion::Any,
                    vec![NewEvent::new(org, "Counted", json!({ "n": n }))],
                )
                .await
                .unwrap();
        }
    }

    /// Waits (bounded) until projection `name` has passed every event committed so far (the
    /// head readers see may lag behind while other tests' transactions are open).
    async fn caught_up(&self, name: &str) {
        let head = self.store.committed_head().await.unwrap().unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let status = projector::status(&self.db.pool).await.unwrap();
            let done = status
                .iter()
                .find(|s| s.name == name)
                .and_then(|s| s.checkpoint)
                .is_some_and(|c| c >= head);
            if done {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name} did not catch up: {status:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn count(pool: &PgPool, org: Uuid, category: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT COALESCE(sum(event_count), 0)::int8 FROM rm_event_stats WHERE org_id = $1 AND category = $2",
    )
    .bind(org)
    .bind(category)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_stats_counts_per_org_category_and_day_exactly_once() {
    let h = harness().await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    h.append(a, "contact-1", 30).await;
    h.append(a, "message-1", 7).await;
    h.append(b, "contact-2", 5).await;
    // Two projectors race for the same projection: one leads, the other stands by.
    let first = h.start(Arc::new(EventStats));
    let second = h.start(Arc::new(EventStats));
    h.caught_up("event_stats").await;
    // Live mode: new events arrive after catch-up.
    h.append(a, "contact-1", 3).await;
    h.caught_up("event_stats").await;
    assert_eq!(count(&h.db.pool, a, "contact").await, 33);
    assert_eq!(count(&h.db.pool, a, "message").await, 7);
    assert_eq!(count(&h.db.pool, b, "contact").await, 5);
    let days: i64 = sqlx::query_scalar("SELECT count(DISTINCT day) FROM rm_event_stats")
        .fetch_one(&h.db.pool)
        .await
        .unwrap();
    assert_eq!(days, 1);
    h.shutdown.send_replace(true);
    first.await.unwrap();
    second.await.unwrap();
}

/// Handles only `Wanted`, and fails once on the event marked `boom` (after writing part of its
/// batch) to show that a failed batch leaves neither rows nor a moved checkpoint behind.
struct Picky {
    failed_once: AtomicBool,
}

#[async_trait]
impl Projection for Picky {
    fn name(&self) -> &'static str {
        "picky"
    }
    fn version(&self) -> i32 {
        1
    }
    fn handles(&self) -> &'static [&'static str] {
        &["Wanted"]
    }
    fn views(&self) -> &'static [&'static str] {
        &["rm_picky"]
    }
    async fn create(&self, conn: &mut PgConnection, generation: i32) -> anyhow::Result<()> {
        sqlx::query(AssertSqlSafe(format!(
            "CREATE TABLE rm_picky_g{generation} (event_id uuid PRIMARY KEY, event_type text NOT NULL)"
        )))
        .execute(conn)
        .await?;
        Ok(())
    }
    async fn apply(
        &self,
        conn: &mut PgConnection,
        generation: i32,
        events: &[RecordedEvent],
    ) -> anyhow::Result<()> {
        for event in events {
            // A duplicate would violate the primary key: exactly-once is checked by the table.
            sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO rm_picky_g{generation} VALUES ($1, $2)"
            )))
            .bind(event.event_id)
            .bind(&event.event_type)
            .execute(&mut *conn)
            .await?;
            if event.data["boom"] == true && !self.failed_once.swap(true, Ordering::SeqCst) {
                anyhow::bail!("boom");
            }
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_types_are_skipped_and_a_failed_batch_leaves_nothing() {
    let h = harness().await;
    let org = Uuid::new_v4();
    for n in 0..20 {
        let event_type = if n % 2 == 0 {
            "Wanted"
        } else {
            "SomethingElse"
        };
        let data = json!({ "n": n, "boom": n == 10 });
        h.store
            .append(
                "picky-1",
                ExpectedVersion::Any,
                vec![NewEvent::new(org, event_type, data)],
            )
            .await
            .unwrap();
    }
    let picky = Arc::new(Picky {
        failed_once: AtomicBool::new(false),
    });
    let task = h.start(picky.clone());
    h.caught_up("picky").await;
    assert!(
        picky.failed_once.load(Ordering::SeqCst),
        "the failure happened"
    );
    let rows: Vec<String> = sqlx::query_scalar("SELECT event_type FROM rm_picky")
        .fetch_all(&h.db.pool)
        .await
        .unwrap();
    assert_eq!(rows.len(), 10);
    assert!(rows.iter().all(|t| t == "Wanted"));
    h.shutdown.send_replace(true);
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_switches_readers_without_a_gap() {
    let h = harness().await;
    let org = Uuid::new_v4();
    h.append(org, "contact-1", 400).await;
    let live = h.start(Arc::new(EventStats));
    h.caught_up("event_stats").await;
    assert_eq!(count(&h.db.pool, org, "contact").await, 400);

    // A reader polls the view throughout the replay and must never see less than everything.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let pool = h.db.pool.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut reads = 0;
            while !stop.load(Ordering::SeqCst) {
                let seen = count(&pool, org, "contact").await;
                assert!(seen >= 400, "a reader saw a half-built model: {seen}");
                reads += 1;
            }
            reads
        })
    };
    let writer = {
        let store = h.store.clone();
        tokio::spawn(async move {
            for n in 0..100 {
                store
                    .append(
                        "contact-1",
                        ExpectedVersion::Any,
                        vec![NewEvent::new(org, "Counted", json!({ "n": n }))],
                    )
                    .await
                    .unwrap();
            }
        })
    };
    let replayed = projector::replay(
        h.store.clone(),
        h.db.pool.clone(),
        &EventStats,
        Progress::Quiet,
    )
    .await
    .unwrap();
    assert_eq!(replayed.generation, 2);
    writer.await.unwrap();
    h.caught_up("event_stats").await;
    stop.store(true, Ordering::SeqCst);
    assert!(reader.await.unwrap() > 0);
    assert_eq!(count(&h.db.pool, org, "contact").await, 500);

    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE tablename LIKE 'rm_event_stats_g%' ORDER BY 1",
    )
    .fetch_all(&h.db.pool)
    .await
    .unwrap();
    assert_eq!(
        tables,
        vec!["rm_event_stats_g2".to_string()],
        "the old generation is dropped"
    );
    let status = projector::status(&h.db.pool).await.unwrap();
    assert_eq!(status[0].generation, 2);
    h.shutdown.send_replace(true);
    live.await.unwrap();
}

/// A projection whose code version changed is rebuilt in a new generation before it goes on.
struct StatsV2;

#[async_trait]
impl Projection for StatsV2 {
    fn name(&self) -> &'static str {
        EventStats.name()
    }
    fn version(&self) -> i32 {
        2
    }
    fn handles(&self) -> &'static [&'static str] {
        EventStats.handles()
    }
    fn views(&self) -> &'static [&'static str] {
        EventStats.views()
    }
    async fn create(&self, conn: &mut PgConnection, generation: i32) -> anyhow::Result<()> {
        EventStats.create(conn, generation).await
    }
    async fn apply(
        &self,
        conn: &mut PgConnection,
        generation: i32,
        events: &[RecordedEvent],
    ) -> anyhow::Result<()> {
        EventStats.apply(conn, generation, events).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_code_version_rebuilds_the_model() {
    let h = harness().await;
    let org = Uuid::new_v4();
    h.append(org, "contact-1", 50).await;
    let v1 = h.start(Arc::new(EventStats));
    h.caught_up("event_stats").await;
    h.shutdown.send_replace(true);
    v1.await.unwrap();

    h.shutdown.send_replace(false);
    let v2 = h.start(Arc::new(StatsV2));
    h.append(org, "contact-1", 5).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let status = projector::status(&h.db.pool).await.unwrap();
        if status[0].code_version == 2 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    h.caught_up("event_stats").await;
    assert_eq!(count(&h.db.pool, org, "contact").await, 55);
    assert_eq!(
        projector::status(&h.db.pool).await.unwrap()[0].generation,
        2
    );
    h.shutdown.send_replace(true);
    v2.await.unwrap();
}

/// Counts `Counted` events into `rm_indexed` with an index on `n` built by `create_indexes`,
/// which also appends one event, as writers may while a replay builds its indexes. Each batch
/// notes whether its events were prepared and how many indexes its table had.
struct Indexed {
    store: Arc<PgEventStore>,
    org: Uuid,
    appended: AtomicBool,
    batches: Mutex<Vec<(bool, i64)>>,
}

impl Indexed {
    fn new(h: &Harness, org: Uuid) -> Indexed {
        Indexed {
            store: h.store.clone(),
            org,
            appended: AtomicBool::new(false),
            batches: Mutex::new(Vec::new()),
        }
    }
}

async fn indexes(conn: &mut PgConnection, table: &str) -> Vec<String> {
    sqlx::query_scalar("SELECT indexname::text FROM pg_indexes WHERE tablename = $1 ORDER BY 1")
        .bind(table)
        .fetch_all(conn)
        .await
        .unwrap()
}

#[async_trait]
impl Projection for Indexed {
    fn name(&self) -> &'static str {
        "indexed"
    }
    fn version(&self) -> i32 {
        1
    }
    fn handles(&self) -> &'static [&'static str] {
        &["Counted"]
    }
    fn views(&self) -> &'static [&'static str] {
        &["rm_indexed"]
    }
    async fn create(&self, conn: &mut PgConnection, generation: i32) -> anyhow::Result<()> {
        sqlx::query(AssertSqlSafe(format!(
            "CREATE TABLE rm_indexed_g{generation} (event_id uuid PRIMARY KEY, n int NOT NULL)"
        )))
        .execute(conn)
        .await?;
        Ok(())
    }
    async fn create_indexes(&self, pool: &PgPool, generation: i32) -> anyhow::Result<()> {
        projector::build_indexes(
            pool,
            vec![format!("CREATE INDEX ON rm_indexed_g{generation} (n)")],
        )
        .await?;
        if !self.appended.swap(true, Ordering::SeqCst) {
            self.store
                .append(
                    "counted-1",
                    ExpectedVersion::Any,
                    vec![NewEvent::new(self.org, "Counted", json!({ "n": -1 }))],
                )
                .await?;
        }
        Ok(())
    }
    async fn prepare(&self, mut events: Vec<RecordedEvent>) -> anyhow::Result<Vec<RecordedEvent>> {
        for event in &mut events {
            event.data["prepared"] = json!(true);
        }
        Ok(events)
    }
    async fn apply(
        &self,
        conn: &mut PgConnection,
        generation: i32,
        events: &[RecordedEvent],
    ) -> anyhow::Result<()> {
        let table = format!("rm_indexed_g{generation}");
        let seen = indexes(&mut *conn, &table).await.len() as i64;
        let prepared = events.iter().all(|e| e.data["prepared"] == true);
        self.batches.lock().unwrap().push((prepared, seen));
        for event in events {
            sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO {table} VALUES ($1, $2)"
            )))
            .bind(event.event_id)
            .bind(event.data["n"].as_i64().unwrap() as i32)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_builds_indexes_once_caught_up_and_applies_what_came_meanwhile() {
    let h = harness().await;
    let org = Uuid::new_v4();
    h.append(org, "counted-1", 30).await;
    let indexed = Indexed::new(&h, org);
    let replayed = projector::replay(
        h.store.clone(),
        h.db.pool.clone(),
        &indexed,
        Progress::Quiet,
    )
    .await
    .unwrap();
    assert_eq!(replayed.generation, 1);

    // The log's rows went in before the index, the event appended meanwhile after it; every
    // batch was prepared first.
    let batches = indexed.batches.lock().unwrap().clone();
    assert_eq!(batches, vec![(true, 1), (true, 2)]);
    let mut conn = h.db.pool.acquire().await.unwrap();
    assert_eq!(
        indexes(&mut conn, "rm_indexed_g1").await,
        vec!["rm_indexed_g1_n_idx", "rm_indexed_g1_pkey"]
    );
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM rm_indexed")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(
        rows, 31,
        "readers switched to a generation that has caught up"
    );
    let head = h.store.committed_head().await.unwrap();
    assert_eq!(
        projector::status(&h.db.pool).await.unwrap()[0].checkpoint,
        head
    );
}

/// The live projector builds a projection it finds unregistered by a replay, indexes included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_projector_builds_a_new_model_with_its_indexes() {
    let h = harness().await;
    let org = Uuid::new_v4();
    h.append(org, "counted-1", 5).await;
    let live = h.start(Arc::new(Indexed::new(&h, org)));
    h.caught_up("indexed").await;
    let mut conn = h.db.pool.acquire().await.unwrap();
    assert_eq!(
        indexes(&mut conn, "rm_indexed_g1").await,
        vec!["rm_indexed_g1_n_idx", "rm_indexed_g1_pkey"]
    );
    h.shutdown.send_replace(true);
    live.await.unwrap();
}
