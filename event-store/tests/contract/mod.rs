//! The contract every `EventStore` backend keeps, written once and run against each of them
//! (`tests/memory.rs`, `tests/postgres.rs`, `tests/kurrentdb.rs`).

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use event_store::{Direction, EventStore, ExpectedVersion, Position, StoreError, StreamAppend};
use events::{NewEvent, RecordedEvent};
use futures::StreamExt;
use serde_json::json;
use uuid::Uuid;

pub fn event(n: u64) -> NewEvent {
    NewEvent::new(
        Uuid::nil(),
        "ContractTested",
        json!({ "n": n, "pad": "x".repeat(64) }),
    )
}

/// A stream name no other test uses, so suites can share one store.
pub fn stream(label: &str) -> String {
    format!("contract-{label}{}", Uuid::new_v4().simple())
}

fn assert_conflict<T: std::fmt::Debug>(
    result: Result<T, StoreError>,
    expected: ExpectedVersion,
    actual: Option<u64>,
) {
    match result {
        Err(StoreError::WrongExpectedVersion {
            expected: e,
            actual: a,
            ..
        }) => {
            assert_eq!(e, expected);
            assert_eq!(a, actual, "actual version reported on conflict");
        }
        other => panic!("expected WrongExpectedVersion, got {other:?}"),
    }
}

pub async fn expected_version_cases<S: EventStore>(store: Arc<S>) {
    let s = stream("ev");
    assert_conflict(
        store
            .append(&s, ExpectedVersion::StreamExists, vec![event(0)])
            .await,
        ExpectedVersion::StreamExists,
        None,
    );
    assert_conflict(
        store
            .append(&s, ExpectedVersion::Exact(0), vec![event(0)])
            .await,
        ExpectedVersion::Exact(0),
        None,
    );
    let first = store
        .append(&s, ExpectedVersion::NoStream, vec![event(0)])
        .await
        .unwrap();
    assert_eq!(first.last_version, 0);
    assert_conflict(
        store
            .append(&s, ExpectedVersion::NoStream, vec![event(1)])
            .await,
        ExpectedVersion::NoStream,
        Some(0),
    );
    let second = store
        .append(
            &s,
            ExpectedVersion::Exact(0),
            vec![event(1), event(2), event(3)],
        )
        .await
        .unwrap();
    assert_eq!(second.last_version, 3);
    assert!(second.position > first.position);
    assert_conflict(
        store
            .append(&s, ExpectedVersion::Exact(0), vec![event(4)])
            .await,
        ExpectedVersion::Exact(0),
        Some(3),
    );
    // Ahead of the stream is a conflict too, never a gap.
    assert_conflict(
        store
            .append(&s, ExpectedVersion::Exact(9), vec![event(4)])
            .await,
        ExpectedVersion::Exact(9),
        Some(3),
    );
    let exists = store
        .append(&s, ExpectedVersion::StreamExists, vec![event(4)])
        .await
        .unwrap();
    assert_eq!(exists.last_version, 4);
    let any = store
        .append(&s, ExpectedVersion::Any, vec![event(5), event(6)])
        .await
        .unwrap();
    assert_eq!(any.last_version, 6);
    let fresh = stream("any");
    let any_new = store
        .append(&fresh, ExpectedVersion::Any, vec![event(0)])
        .await
        .unwrap();
    assert_eq!(any_new.last_version, 0);
    assert_eq!(store.stream_version(&s).await.unwrap(), Some(6));
    assert_eq!(store.stream_version(&stream("none")).await.unwrap(), None);
    assert!(matches!(
        store.append(&s, ExpectedVersion::Any, vec![]).await,
        Err(StoreError::EmptyAppend)
    ));
}

pub async fn idempotent_reappend<S: EventStore>(store: Arc<S>) {
    let s = stream("idem");
    let batch = vec![event(0), event(1)];
    let original = store
        .append(&s, ExpectedVersion::NoStream, batch.clone())
        .await
        .unwrap();
    // The same request retried: with the now-stale expectation, and with Any.
    for expected in [ExpectedVersion::NoStream, ExpectedVersion::Any] {
        let again = store.append(&s, expected, batch.clone()).await.unwrap();
        assert_eq!(again, original, "a retry returns the first result");
    }
    assert_eq!(store.stream_version(&s).await.unwrap(), Some(1));
    let stored = store
        .read_stream(&s, None, Direction::Forwards, 100)
        .await
        .unwrap();
    assert_eq!(stored.len(), 2, "a retry appends nothing");

    let mut changed = batch[0].clone();
    changed.data = json!({"n": "something else"});
    assert!(matches!(
        store.append(&s, ExpectedVersion::Any, vec![changed]).await,
        Err(StoreError::DuplicateEventId { event_id }) if event_id == batch[0].event_id
    ));
    // Half old, half new: not a retry.
    assert!(matches!(
        store
            .append(
                &s,
                ExpectedVersion::Exact(1),
                vec![batch[1].clone(), event(2)]
            )
            .await,
        Err(StoreError::DuplicateEventId { .. })
    ));
    assert_eq!(store.stream_version(&s).await.unwrap(), Some(1));

    // One event at a known version (the backends' cheapest path) dedupes the same way.
    let single = event(3);
    let appended = store
        .append(&s, ExpectedVersion::Exact(1), vec![single.clone()])
        .await
        .unwrap();
    let again = store
        .append(&s, ExpectedVersion::Exact(1), vec![single.clone()])
        .await
        .unwrap();
    assert_eq!(
        again, appended,
        "a single-event retry returns the first result"
    );
    let mut changed = single.clone();
    changed.data = json!({"n": "changed"});
    assert!(matches!(
        store.append(&s, ExpectedVersion::Exact(2), vec![changed]).await,
        Err(StoreError::DuplicateEventId { event_id }) if event_id == single.event_id
    ));
    let fresh = stream("idem-one");
    let one = event(0);
    let first = store
        .append(&fresh, ExpectedVersion::NoStream, vec![one.clone()])
        .await
        .unwrap();
    assert_eq!(
        store
            .append(&fresh, ExpectedVersion::NoStream, vec![one])
            .await
            .unwrap(),
        first
    );
    assert_eq!(store.stream_version(&s).await.unwrap(), Some(2));
    assert_eq!(store.stream_version(&fresh).await.unwrap(), Some(0));
}

/// An event id is unique across the whole log, not just its stream. (KurrentDB keeps no index
/// of event ids across streams, so its suite leaves this one out.)
pub async fn event_ids_are_unique_across_streams<S: EventStore>(store: Arc<S>) {
    let first = event(0);
    store
        .append(&stream("one"), ExpectedVersion::Any, vec![first.clone()])
        .await
        .unwrap();
    assert!(matches!(
        store
            .append(&stream("other"), ExpectedVersion::Any, vec![first.clone()])
            .await,
        Err(StoreError::DuplicateEventId { .. })
    ));
    assert!(matches!(
        store
            .append(&stream("another"), ExpectedVersion::NoStream, vec![first])
            .await,
        Err(StoreError::DuplicateEventId { .. })
    ));
}

pub async fn read_order<S: EventStore>(store: Arc<S>) {
    let s = stream("order");
    let before = store.head().await.unwrap();
    for n in 0..10 {
        store
            .append(&s, ExpectedVersion::Any, vec![event(n)])
            .await
            .unwrap();
    }
    let forwards = store
        .read_stream(&s, Some(3), Direction::Forwards, 4)
        .await
        .unwrap();
    assert_eq!(
        forwards.iter().map(|e| e.version).collect::<Vec<_>>(),
        vec![3, 4, 5, 6]
    );
    assert_eq!(forwards[0].data["n"], 3);
    let backwards = store
        .read_stream(&s, None, Direction::Backwards, 3)
        .await
        .unwrap();
    assert_eq!(
        backwards.iter().map(|e| e.version).collect::<Vec<_>>(),
        vec![9, 8, 7]
    );
    let from_five = store
        .read_stream(&s, Some(5), Direction::Backwards, 100)
        .await
        .unwrap();
    assert_eq!(from_five.len(), 6);
    assert!(
        store
            .read_stream(&stream("absent"), None, Direction::Forwards, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let all = read_everything_after(store.as_ref(), before).await;
    let ours: Vec<_> = all.iter().filter(|e| e.stream == s).collect();
    assert_eq!(ours.len(), 10);
    assert!(ours.windows(2).all(|w| w[0].version + 1 == w[1].version));
    assert!(all.windows(2).all(|w| w[0].position < w[1].position));
    let head = store.head().await.unwrap().unwrap();
    assert_eq!(Some(head), all.last().map(|e| e.position));
    let recorded = &ours[0];
    assert_eq!(recorded.event_type, "ContractTested");
    assert_eq!(recorded.schema_version, 1);
}

/// Reading only some event types skips the others, in global order, across batches.
pub async fn read_of_types<S: EventStore>(store: Arc<S>) {
    let s = stream("types");
    let before = store.head().await.unwrap();
    for n in 0..20_u64 {
        let kind = if n % 3 == 0 {
            "ContractWanted"
        } else {
            "ContractTested"
        };
        let event = NewEvent::new(Uuid::nil(), kind, json!({ "n": n }));
        store
            .append(&s, ExpectedVersion::Any, vec![event])
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut after = before;
    loop {
        let batch = store
            .read_all_of_types(after, 2, &["ContractWanted"])
            .await
            .unwrap();
        assert!(batch.len() <= 2);
        let Some(last) = batch.last() else { break };
        after = Some(last.position);
        seen.extend(batch);
    }
    assert!(seen.iter().all(|e| e.event_type == "ContractWanted"));
    assert!(seen.windows(2).all(|w| w[0].position < w[1].position));
    let ours: Vec<u64> = seen
        .iter()
        .filter(|e| e.stream == s)
        .map(|e| e.data["n"].as_u64().unwrap())
        .collect();
    assert_eq!(ours, [0, 3, 6, 9, 12, 15, 18]);
    let none = store
        .read_all_of_types(before, 10, &["ContractNeverWritten"])
        .await
        .unwrap();
    assert!(none.is_empty());
}

async fn read_everything_after<S: EventStore + ?Sized>(
    store: &S,
    mut after: Option<Position>,
) -> Vec<RecordedEvent> {
    let mut all = Vec::new();
    loop {
        let batch = store.read_all(after, 7).await.unwrap();
        let Some(last) = batch.last() else { break };
        after = Some(last.position);
        all.extend(batch);
    }
    all
}

/// Collects `count` events of streams starting with `prefix` from a subscription; when `all`,
/// also checks that nothing more arrives for them.
async fn collect<S: EventStore>(
    store: Arc<S>,
    after: Option<Position>,
    prefix: String,
    count: usize,
    all: bool,
) -> Vec<RecordedEvent> {
    let mut subscription = store.subscribe(after);
    let mut seen = Vec::with_capacity(count);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while seen.len() < count {
        let next = tokio::time::timeout_at(deadline, subscription.next())
            .await
            .expect("subscriber saw every event in time")
            .expect("subscriptions never end");
        let event = next.unwrap();
        if event.stream.starts_with(&prefix) {
            seen.push(event);
        }
    }
    // Nothing more may arrive for these streams (no duplicates after the last one).
    if !all {
        return seen;
    }
    if let Ok(Some(extra)) =
        tokio::time::timeout(Duration::from_millis(300), subscription.next()).await
    {
        let extra = extra.unwrap();
        assert!(
            !extra.stream.starts_with(&prefix),
            "a duplicate was delivered"
        );
    }
    seen
}

fn assert_exactly_once_in_order(seen: &[RecordedEvent], expected: &HashSet<Uuid>) {
    let ids: HashSet<Uuid> = seen.iter().map(|e| e.event_id).collect();
    assert_eq!(ids.len(), seen.len(), "an event was delivered twice");
    assert_eq!(&ids, expected, "every committed event is delivered");
    let mut versions: HashMap<&str, u64> = HashMap::new();
    for event in seen {
        let next = versions.entry(&event.stream).or_insert(0);
        assert_eq!(event.version, *next, "stream {} out of order", event.stream);
        *next += 1;
    }
    assert!(seen.windows(2).all(|w| w[0].position < w[1].position));
}

/// 8 writers × 2,000 events over many streams, three of them shared and contended, with
/// subscribers started before, during and after the writes.
pub async fn concurrent_writers_and_subscribers<S: EventStore>(store: Arc<S>) {
    const WRITERS: usize = 8;
    const PER_WRITER: usize = 2_000;
    let prefix = format!("conc{}-", Uuid::new_v4().simple());
    let total = WRITERS * PER_WRITER;
    let start = store.head().await.unwrap();

    let before = tokio::spawn(collect(store.clone(), start, prefix.clone(), total, true));
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let store = store.clone();
        let prefix = prefix.clone();
        writers.push(tokio::spawn(async move {
            let mut ids = Vec::with_capacity(PER_WRITER);
            let mut versions: HashMap<String, u64> = HashMap::new();
            let mut n = 0;
            while n < PER_WRITER {
                let batch_len = if n % 100 == 0 {
                    10.min(PER_WRITER - n)
                } else {
                    1
                };
                let batch: Vec<NewEvent> = (0..batch_len).map(|i| event((n + i) as u64)).collect();
                ids.extend(batch.iter().map(|e| e.event_id));
                if n % 5 == 0 {
                    // Contended: read the version, append with Exact, re-decide on conflict.
                    let shared = format!("{prefix}shared-{}", n % 3);
                    loop {
                        let current = store.stream_version(&shared).await.unwrap();
                        let expected =
                            current.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
                        match store.append(&shared, expected, batch.clone()).await {
                            Ok(_) => break,
                            Err(StoreError::WrongExpectedVersion { .. }) => continue,
                            Err(other) => panic!("append failed: {other}"),
                        }
                    }
                } else {
                    let own = format!("{prefix}w{w}-{}", n % 40);
                    let expected = versions
                        .get(&own)
                        .map_or(ExpectedVersion::NoStream, |v| ExpectedVersion::Exact(*v));
                    let result = store.append(&own, expected, batch.clone()).await.unwrap();
                    versions.insert(own, result.last_version);
                }
                n += batch_len;
            }
            ids
        }));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let during = tokio::spawn(collect(store.clone(), start, prefix.clone(), total, true));
    let mut expected = HashSet::new();
    for writer in writers {
        expected.extend(writer.await.unwrap());
    }
    assert_eq!(expected.len(), total);
    let after = tokio::spawn(collect(store.clone(), start, prefix.clone(), total, true));
    for subscriber in [before, during, after] {
        let seen = subscriber.await.unwrap();
        assert_exactly_once_in_order(&seen, &expected);
    }
}

/// A subscriber that stops and resumes from the last position it stored sees the rest, without
/// gaps or repeats.
pub async fn resume_from_checkpoint<S: EventStore>(store: Arc<S>) {
    let prefix = format!("resume{}-", Uuid::new_v4().simple());
    let start = store.head().await.unwrap();
    let mut expected = HashSet::new();
    for n in 0..30 {
        let e = event(n);
        expected.insert(e.event_id);
        store
            .append(&format!("{prefix}{}", n % 4), ExpectedVersion::Any, vec![e])
            .await
            .unwrap();
    }
    let first = collect(store.clone(), start, prefix.clone(), 12, false).await;
    let checkpoint = first.last().map(|e| e.position);
    for n in 30..50 {
        let e = event(n);
        expected.insert(e.event_id);
        store
            .append(&format!("{prefix}{}", n % 4), ExpectedVersion::Any, vec![e])
            .await
            .unwrap();
    }
    let rest = collect(store.clone(), checkpoint, prefix.clone(), 38, true).await;
    let mut all = first;
    all.extend(rest);
    assert_exactly_once_in_order(&all, &expected);
}

/// Appends to several streams: results in order, a whole retry answers the same, bad calls are
/// refused before anything is written.
pub async fn multi_stream_appends<S: EventStore>(store: Arc<S>) {
    let (user, reservation) = (stream("user"), stream("reservation"));
    let user_event = event(0);
    let claim = event(1);
    let appends = vec![
        StreamAppend::new(&user, ExpectedVersion::NoStream, vec![user_event]),
        StreamAppend::new(&reservation, ExpectedVersion::NoStream, vec![claim]),
    ];
    let results = store.append_to_streams(appends.clone()).await.unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0].last_version, 0);
    assert_eq!(results[1].last_version, 0);
    assert_ne!(results[0].position, results[1].position);
    let again = store.append_to_streams(appends).await.unwrap();
    assert_eq!(again, results, "a retry answers as the first time");
    assert_eq!(store.stream_version(&user).await.unwrap(), Some(0));
    assert_eq!(store.stream_version(&reservation).await.unwrap(), Some(0));

    let twice = vec![
        StreamAppend::new(&user, ExpectedVersion::Exact(0), vec![event(2)]),
        StreamAppend::new(&user, ExpectedVersion::Exact(1), vec![event(3)]),
    ];
    assert!(matches!(
        store.append_to_streams(twice).await,
        Err(StoreError::StreamTwice { stream }) if stream == user
    ));
    let shared = event(4);
    let shared_id = vec![
        StreamAppend::new(&user, ExpectedVersion::Exact(0), vec![shared.clone()]),
        StreamAppend::new(&reservation, ExpectedVersion::Exact(0), vec![shared]),
    ];
    assert!(matches!(
        store.append_to_streams(shared_id).await,
        Err(StoreError::DuplicateEventId { .. })
    ));
    assert!(matches!(
        store.append_to_streams(vec![]).await,
        Err(StoreError::EmptyAppend)
    ));
    let empty_part = vec![StreamAppend::new(&user, ExpectedVersion::Any, vec![])];
    assert!(matches!(
        store.append_to_streams(empty_part).await,
        Err(StoreError::EmptyAppend)
    ));
    assert_eq!(store.stream_version(&user).await.unwrap(), Some(0));
    assert_eq!(store.stream_version(&reservation).await.unwrap(), Some(0));

    // Several events per stream at known versions: each stream's last version and position.
    let more = vec![
        StreamAppend::new(&user, ExpectedVersion::Exact(0), vec![event(5), event(6)]),
        StreamAppend::new(&reservation, ExpectedVersion::Exact(0), vec![event(7)]),
    ];
    let results = store.append_to_streams(more).await.unwrap();
    assert_eq!(results[0].last_version, 2);
    assert_eq!(results[1].last_version, 1);
    assert!(
        results[0].position < results[1].position,
        "appended in order"
    );
    let read = store
        .read_stream(&user, None, Direction::Forwards, 10)
        .await
        .unwrap();
    assert_eq!(read.last().map(|e| e.position), Some(results[0].position));

    // A stream behind its expected version is named, and nothing is written.
    let ahead = stream("ahead");
    let behind = vec![
        StreamAppend::new(&ahead, ExpectedVersion::NoStream, vec![event(8)]),
        StreamAppend::new(&user, ExpectedVersion::Exact(5), vec![event(9)]),
    ];
    assert!(matches!(
        store.append_to_streams(behind).await,
        Err(StoreError::WrongExpectedVersion { stream, actual: Some(2), .. }) if stream == user
    ));
    assert_eq!(store.stream_version(&ahead).await.unwrap(), None);
}

/// All or nothing (backends with `atomic_across_streams`): one failed expectation writes no
/// stream, and of many writers racing for one reservation exactly one wins and the others leave
/// nothing behind.
pub async fn multi_stream_appends_are_all_or_nothing<S: EventStore>(store: Arc<S>) {
    assert!(store.atomic_across_streams());
    let taken = stream("taken");
    store
        .append(&taken, ExpectedVersion::NoStream, vec![event(0)])
        .await
        .unwrap();
    let fresh = stream("fresh");
    let appends = vec![
        StreamAppend::new(&fresh, ExpectedVersion::NoStream, vec![event(1)]),
        StreamAppend::new(&taken, ExpectedVersion::NoStream, vec![event(2)]),
    ];
    match store.append_to_streams(appends).await {
        Err(StoreError::WrongExpectedVersion {
            stream,
            expected,
            actual,
        }) => {
            assert_eq!(stream, taken);
            assert_eq!(expected, ExpectedVersion::NoStream);
            assert_eq!(actual, Some(0));
        }
        other => panic!("expected WrongExpectedVersion, got {other:?}"),
    }
    assert_eq!(
        store.stream_version(&fresh).await.unwrap(),
        None,
        "nothing of a failed multi-stream append is written"
    );

    let reservation = stream("email");
    let contenders: Vec<_> = (0..8)
        .map(|n| {
            let store = store.clone();
            let reservation = reservation.clone();
            tokio::spawn(async move {
                let user = stream("contender");
                let appends = vec![
                    StreamAppend::new(&user, ExpectedVersion::NoStream, vec![event(n)]),
                    StreamAppend::new(&reservation, ExpectedVersion::NoStream, vec![event(n)]),
                ];
                (user, store.append_to_streams(appends).await)
            })
        })
        .collect();
    let mut winners = 0;
    for contender in contenders {
        let (user, outcome) = contender.await.unwrap();
        match outcome {
            Ok(_) => {
                winners += 1;
                assert_eq!(store.stream_version(&user).await.unwrap(), Some(0));
            }
            Err(StoreError::WrongExpectedVersion { stream, .. }) => {
                assert_eq!(stream, reservation);
                assert_eq!(store.stream_version(&user).await.unwrap(), None);
            }
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(winners, 1, "exactly one writer gets the reservation");
    assert_eq!(store.stream_version(&reservation).await.unwrap(), Some(0));
}
