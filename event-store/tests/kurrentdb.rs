//! The event-store contract against a KurrentDB server, plus what only KurrentDB needs checked.
//!
//! Runs when `KURRENTDB_URL` is set (e.g. `kurrentdb://127.0.0.1:2113?tls=false`); otherwise
//! every test that needs the server returns at once. The tests share that server (and its
//! `$all`), so they run one at a time.

#![cfg(feature = "kurrentdb")]

mod contract;

use std::sync::Arc;
use std::time::Duration;

use event_store::kurrentdb::KurrentEventStore;
use event_store::{Direction, EventStore, ExpectedVersion, StoreError};
use events::{Actor, Metadata, NewEvent};
use serde_json::json;
use tokio::sync::{Mutex, MutexGuard};
use uuid::Uuid;

static SERIAL: Mutex<()> = Mutex::const_new(());

fn install_crypto_provider() {
    // Two rustls providers are compiled in (reference/crates.md, pitfall 2); a second install
    // by another test fails harmlessly.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

fn url() -> Option<String> {
    let url = std::env::var("KURRENTDB_URL")
        .ok()
        .filter(|url| !url.is_empty());
    if url.is_none() {
        eprintln!("KURRENTDB_URL is not set: skipping this KurrentDB test");
    }
    url
}

/// A connected store and the turn to use the server, or `None` without a server.
async fn store() -> Option<(MutexGuard<'static, ()>, Arc<KurrentEventStore>)> {
    let url = url()?;
    let turn = SERIAL.lock().await;
    install_crypto_provider();
    let store = KurrentEventStore::connect(&url)
        .await
        .expect("KurrentDB at KURRENTDB_URL is reachable");
    Some((turn, Arc::new(store)))
}

#[tokio::test]
async fn expected_version_cases() {
    let Some((_turn, store)) = store().await else {
        return;
    };
    contract::expected_version_cases(store).await;
}

#[tokio::test]
async fn multi_stream_appends() {
    let Some((_turn, store)) = store().await else {
        return;
    };
    assert!(!store.atomic_across_streams());
    contract::multi_stream_appends(store).await;
}

#[tokio::test]
async fn idempotent_reappend() {
    let Some((_turn, store)) = store().await else {
        return;
    };
    contract::idempotent_reappend(store).await;
}

#[tokio::test]
async fn read_order() {
    let Some((_turn, store)) = store().await else {
        return;
    };
    contract::read_order(store).await;
}

#[tokio::test]
async fn read_of_types() {
    let Some((_turn, store)) = store().await else {
        return;
    };
    contract::read_of_types(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_and_subscribers() {
    let Some((_turn, store)) = store().await else {
        return;
    };
    contract::concurrent_writers_and_subscribers(store).await;
}

#[tokio::test]
async fn resume_from_checkpoint() {
    let Some((_turn, store)) = store().await else {
        return;
    };
    contract::resume_from_checkpoint(store).await;
}

/// Needs no server: a refused connection is a transient error, not a panic or a hang.
#[tokio::test]
async fn an_unreachable_server_is_unavailable() {
    install_crypto_provider();
    let outcome = tokio::time::timeout(
        Duration::from_secs(30),
        KurrentEventStore::connect("kurrentdb://127.0.0.1:1?tls=false"),
    )
    .await
    .expect("gives up in time");
    match outcome {
        Err(error @ StoreError::Unavailable(_)) => assert!(error.is_transient()),
        Err(other) => panic!("expected Unavailable, got {other}"),
        Ok(_) => panic!("nothing listens on port 1"),
    }
}

/// Needs no server: the message names the variable and never echoes the password.
#[tokio::test]
async fn a_malformed_url_is_refused_without_echoing_it() {
    install_crypto_provider();
    for url in [
        "http://admin:secret@localhost:2113",
        "kurrentdb://admin:secret@:2113x",
    ] {
        match KurrentEventStore::connect(url).await {
            Err(StoreError::Backend(message)) => {
                assert!(message.contains("KURRENTDB_URL"), "{message}");
                assert!(!message.contains("secret"), "{message}");
            }
            Err(other) => panic!("expected a configuration error, got {other}"),
            Ok(_) => panic!("{url} is not a KurrentDB connection string"),
        }
    }
}

/// Org id, schema version, metadata and `recorded_at` survive the custom-metadata envelope, and
/// the append result points at the last event exactly where `read_all` and `read_stream` see it
/// (the consistency token must compare with subscriber checkpoints).
#[tokio::test]
async fn the_envelope_and_positions_round_trip() {
    let Some((_turn, store)) = store().await else {
        return;
    };
    let stream = contract::stream("envelope");
    let before = store.head().await.expect("head");
    let metadata = Metadata {
        correlation_id: Some(Uuid::now_v7()),
        causation_id: Some(Uuid::now_v7()),
        actor: Actor::User { id: Uuid::now_v7() },
        trace_id: Some("trace-1".into()),
        idempotency_key: Some("key-1".into()),
    };
    let org = Uuid::now_v7();
    let batch: Vec<NewEvent> = (0..3)
        .map(|n| {
            NewEvent::new(
                org,
                "EnvelopeTested",
                json!({ "n": n, "x": [1.5, null, "é"] }),
            )
            .with_schema_version(4)
            .with_metadata(metadata.clone())
        })
        .collect();
    let result = store
        .append(&stream, ExpectedVersion::NoStream, batch.clone())
        .await
        .expect("append");
    assert_eq!(result.last_version, 2);

    let read = store
        .read_stream(&stream, None, Direction::Forwards, 10)
        .await
        .expect("read");
    assert_eq!(read.len(), 3);
    for (recorded, sent) in read.iter().zip(&batch) {
        assert_eq!(recorded.event_id, sent.event_id);
        assert_eq!(recorded.org_id, org);
        assert_eq!(recorded.schema_version, 4);
        assert_eq!(recorded.metadata, metadata);
        assert_eq!(recorded.data, sent.data);
        let age = chrono::Utc::now() - recorded.recorded_at;
        assert!(
            age.num_seconds().abs() < 600,
            "recorded_at {}",
            recorded.recorded_at
        );
    }
    assert_eq!(
        read[2].position, result.position,
        "append result = stream read position"
    );

    let mut all = Vec::new();
    let mut after = before;
    loop {
        let batch = store.read_all(after, 500).await.expect("read_all");
        let Some(last) = batch.last() else { break };
        after = Some(last.position);
        all.extend(batch.into_iter().filter(|e| e.stream == stream));
    }
    assert_eq!(
        all, read,
        "read_all and read_stream agree, positions included"
    );
}

/// KurrentDB only dedupes a retry sent with its original expected version; the store also
/// recognises one sent with the stream's current version, and appends nothing.
#[tokio::test]
async fn a_retry_at_the_current_version_appends_nothing() {
    let Some((_turn, store)) = store().await else {
        return;
    };
    let stream = contract::stream("retry");
    let batch = vec![contract::event(0), contract::event(1)];
    let original = store
        .append(&stream, ExpectedVersion::NoStream, batch.clone())
        .await
        .expect("append");
    for expected in [ExpectedVersion::Exact(1), ExpectedVersion::StreamExists] {
        let again = store
            .append(&stream, expected, batch.clone())
            .await
            .expect("retry");
        assert_eq!(again, original);
    }
    assert_eq!(
        store.stream_version(&stream).await.expect("version"),
        Some(1)
    );
}

/// Stream metadata lands in a `$$` system stream; neither `read_all` nor `head` shows it.
#[tokio::test]
async fn system_events_stay_invisible() {
    let Some((_turn, store)) = store().await else {
        return;
    };
    let url = url().expect("set when the store connected");
    let before = store.head().await.expect("head");
    let stream = contract::stream("system");
    let appended = store
        .append(&stream, ExpectedVersion::NoStream, vec![contract::event(0)])
        .await
        .expect("append");

    let settings = url.parse().expect("valid connection string");
    let raw = kurrentdb::Client::new(settings).expect("client");
    let metadata = kurrentdb::StreamMetadata::builder()
        .max_count(1_000)
        .build();
    raw.set_stream_metadata(
        stream.as_str(),
        &kurrentdb::AppendToStreamOptions::default(),
        &metadata,
    )
    .await
    .expect("stream metadata written");

    assert_eq!(store.head().await.expect("head"), Some(appended.position));
    let seen = store.read_all(before, 10_000).await.expect("read_all");
    assert!(
        seen.iter()
            .all(|e| !e.stream.starts_with('$') && !e.event_type.starts_with('$'))
    );
    assert_eq!(seen.last().map(|e| e.position), Some(appended.position));
}

/// Another process's append wakes this one's followers through the `$all` subscription.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_elsewhere_wake_followers() {
    let Some((_turn, store)) = store().await else {
        return;
    };
    let url = url().expect("set when the store connected");
    let other = KurrentEventStore::connect(&url)
        .await
        .expect("second client");
    let mut wakeups = store.wakeups().expect("KurrentDB has wake-ups");
    // Let the wake-up subscription confirm (its first signal) before marking it seen.
    tokio::time::sleep(Duration::from_millis(500)).await;
    wakeups.borrow_and_update();
    other
        .append(
            &contract::stream("wake"),
            ExpectedVersion::NoStream,
            vec![contract::event(0)],
        )
        .await
        .expect("append");
    tokio::time::timeout(Duration::from_secs(5), wakeups.changed())
        .await
        .expect("woken by an append made through another client")
        .expect("the store is alive");
}
