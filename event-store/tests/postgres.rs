//! The event-store contract against the Postgres backend, plus what only Postgres can show:
//! a late commit, immutability, and that a unique violation is never swallowed.

mod contract;

use std::sync::Arc;
use std::time::Duration;

use event_store::postgres::PgEventStore;
use event_store::{EventStore, ExpectedVersion};
use futures::StreamExt;
use schema::testing::TestDatabase;

async fn store() -> (TestDatabase, Arc<PgEventStore>) {
    let db = TestDatabase::create().await.expect("test database");
    let store = PgEventStore::connect(&db.url, 16).expect("store connects");
    (db, Arc::new(store))
}

#[tokio::test]
async fn expected_version_cases() {
    let (_db, store) = store().await;
    contract::expected_version_cases(store).await;
}

#[tokio::test]
async fn idempotent_reappend() {
    let (_db, store) = store().await;
    contract::idempotent_reappend(store).await;
}

#[tokio::test]
async fn event_ids_are_unique_across_streams() {
    let (_db, store) = store().await;
    contract::event_ids_are_unique_across_streams(store).await;
}

#[tokio::test]
async fn read_order() {
    let (_db, store) = store().await;
    contract::read_order(store).await;
}

#[tokio::test]
async fn multi_stream_appends() {
    let (_db, store) = store().await;
    contract::multi_stream_appends(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn multi_stream_appends_are_all_or_nothing() {
    let (_db, store) = store().await;
    contract::multi_stream_appends_are_all_or_nothing(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_and_subscribers() {
    let (_db, store) = store().await;
    contract::concurrent_writers_and_subscribers(store).await;
}

#[tokio::test]
async fn resume_from_checkpoint() {
    let (_db, store) = store().await;
    contract::resume_from_checkpoint(store).await;
}

/// An append whose transaction is still open when later appends commit gets the earlier
/// global position; a reader that went by global position alone would skip it for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_commit_is_delivered_not_skipped() {
    let (db, store) = store().await;
    let start = store.head().await.expect("head");
    let mut subscription = store.clone().subscribe(start);

    let mut late = db.pool.begin().await.expect("begin");
    sqlx::query(
        "INSERT INTO events (event_id, stream, version, event_type, schema_version, org_id, data, metadata) \
         VALUES (gen_random_uuid(), 'late-1', 0, 'ContractTested', 1, gen_random_uuid(), '{}', '{}')",
    )
    .execute(&mut *late)
    .await
    .expect("late insert");

    for n in 0..5 {
        store
            .append("early-1", ExpectedVersion::Any, vec![contract::event(n)])
            .await
            .expect("append");
    }
    // Nothing may be delivered past the open transaction.
    let early = tokio::time::timeout(Duration::from_millis(700), subscription.next()).await;
    assert!(
        early.is_err(),
        "delivered past an open transaction: {early:?}"
    );

    late.commit().await.expect("commit");
    let mut streams = Vec::new();
    for _ in 0..6 {
        let event = tokio::time::timeout(Duration::from_secs(5), subscription.next())
            .await
            .expect("delivered after the commit")
            .expect("subscriptions never end")
            .expect("read");
        streams.push(event.stream);
    }
    assert_eq!(
        streams[0], "late-1",
        "the late event comes first: {streams:?}"
    );
    assert!(streams[1..].iter().all(|s| s == "early-1"));
    let extra = tokio::time::timeout(Duration::from_millis(300), subscription.next()).await;
    assert!(extra.is_err(), "nothing is delivered twice");
}

#[tokio::test]
async fn the_committed_head_passes_commits_the_head_holds_back() {
    let (db, store) = store().await;
    store
        .append(
            "before-1",
            ExpectedVersion::NoStream,
            vec![contract::event(0)],
        )
        .await
        .expect("append");
    let before = store.head().await.expect("head").expect("an event");
    assert_eq!(
        store.committed_head().await.expect("committed head"),
        Some(before)
    );

    // An open transaction with an id holds back what readers see, not what was committed.
    let mut open = db.pool.begin().await.expect("begin");
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(&mut *open)
        .await
        .expect("takes a transaction id");
    let after = store
        .append(
            "after-1",
            ExpectedVersion::NoStream,
            vec![contract::event(1)],
        )
        .await
        .expect("append")
        .position;
    assert_eq!(store.head().await.expect("head"), Some(before));
    assert_eq!(
        store.committed_head().await.expect("committed head"),
        Some(after)
    );
    open.rollback().await.expect("rollback");
    assert_eq!(store.head().await.expect("head"), Some(after));
}

#[tokio::test]
async fn events_are_immutable() {
    let (db, store) = store().await;
    store
        .append("imm-1", ExpectedVersion::NoStream, vec![contract::event(0)])
        .await
        .expect("append");
    for statement in [
        "UPDATE events SET data = '{}'",
        "DELETE FROM events",
        "TRUNCATE events",
    ] {
        let error = sqlx::query(statement)
            .execute(&db.pool)
            .await
            .expect_err("the log refuses changes");
        assert!(
            error.to_string().contains("immutable"),
            "{statement}: {error}"
        );
    }
}

/// Two writers racing for the same version: exactly one wins, the other is told the actual
/// version — the unique violation is reported, never swallowed or turned into a gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_writers_on_one_version() {
    let (_db, store) = store().await;
    store
        .append(
            "race-1",
            ExpectedVersion::NoStream,
            vec![contract::event(0)],
        )
        .await
        .expect("append");
    let attempts = (0..16).map(|n| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .append(
                    "race-1",
                    ExpectedVersion::Exact(0),
                    vec![contract::event(n)],
                )
                .await
        })
    });
    let results = futures::future::join_all(attempts).await;
    let wins = results
        .iter()
        .filter(|r| r.as_ref().expect("task").is_ok())
        .count();
    assert_eq!(wins, 1);
    for result in results {
        match result.expect("task") {
            Ok(ok) => assert_eq!(ok.last_version, 1),
            Err(event_store::StoreError::WrongExpectedVersion { actual, .. }) => {
                assert_eq!(actual, Some(1))
            }
            Err(other) => panic!("unexpected {other}"),
        }
    }
    assert_eq!(
        store.stream_version("race-1").await.expect("version"),
        Some(1)
    );
}

#[tokio::test]
async fn read_of_types() {
    let (_db, store) = store().await;
    contract::read_of_types(store).await;
}

#[tokio::test]
async fn the_length_is_the_planner_estimate_once_analyzed() {
    let (db, store) = store().await;
    let events: Vec<_> = (0..25).map(contract::event).collect();
    store
        .append("len-1", ExpectedVersion::NoStream, events)
        .await
        .expect("append");
    // Not counted: unknown (or as stale as the last analyze) until the table is analyzed.
    assert_ne!(store.approximate_len().await.expect("length"), Some(25));
    sqlx::query("ANALYZE events")
        .execute(&db.pool)
        .await
        .expect("analyze");
    assert_eq!(store.approximate_len().await.expect("length"), Some(25));
}
