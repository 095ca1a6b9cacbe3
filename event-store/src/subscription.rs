use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::watch;

use crate::{CATCH_UP_BATCH, EventStore, Position, RecordedEvent, StoreError, Subscription};

/// How long a caught-up subscriber waits for a wake-up before it polls anyway.
pub const POLL_FALLBACK: Duration = Duration::from_millis(500);

/// Follows the log after a position in batches: the building block of subscriptions, the
/// projector and the relay. Reads until caught up, then sleeps until a wake-up (or the polling
/// fallback) and reads again.
///
/// While catching up it reads ahead: when a batch comes back full, the read of the next one
/// starts before the caller gets this one, so the store fetches while the caller works.
pub struct LogFollower<S: ?Sized> {
    store: Arc<S>,
    after: Option<Position>,
    /// Only events of these types, when set.
    types: Option<&'static [&'static str]>,
    wakeups: Option<watch::Receiver<()>>,
    ahead: Option<ReadAhead>,
}

/// A read of the batch after `after`, running in its own task.
struct ReadAhead {
    limit: usize,
    read: tokio::task::JoinHandle<Result<Read, StoreError>>,
}

/// The events of one read and how far they cover the log.
type Read = (Vec<RecordedEvent>, Option<Position>);

impl Drop for ReadAhead {
    fn drop(&mut self) {
        self.read.abort();
    }
}

impl<S: EventStore + ?Sized> LogFollower<S> {
    pub fn new(store: Arc<S>, after: Option<Position>) -> Self {
        let wakeups = store.wakeups();
        Self {
            store,
            after,
            types: None,
            wakeups,
            ahead: None,
        }
    }

    /// Follows only the events of `types` ([`EventStore::read_all_of_types`]). Each read takes
    /// the head first, so a read that comes back short has covered the log up to that head:
    /// the follower's position then passes the events of other types too, and its next reads
    /// need not pass over them again.
    pub fn only(mut self, types: &'static [&'static str]) -> Self {
        self.types = Some(types);
        self
    }

    /// How far the log has been read: the last event handed out, or, for a follower of some
    /// types, possibly a later position up to which the log holds no other event of them.
    pub fn position(&self) -> Option<Position> {
        self.after
    }

    /// The next batch of at most `limit` events; empty when caught up (it does not wait). A
    /// read-ahead made for a smaller limit is handed out as it is, so a caller can let its
    /// batches grow without losing it.
    pub async fn next_batch(&mut self, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        let (batch, covered, asked) = match self.ahead.take() {
            Some(mut ahead) if ahead.limit <= limit => match (&mut ahead.read).await {
                Ok(read) => {
                    let (batch, covered) = read?;
                    (batch, covered, ahead.limit)
                }
                Err(join) => return Err(StoreError::Backend(format!("read-ahead: {join}"))),
            },
            _ => {
                self.mark_wakeups_seen();
                let (batch, covered) = read(&*self.store, self.after, limit, self.types).await?;
                (batch, covered, limit)
            }
        };
        if covered > self.after {
            self.after = covered;
        }
        // A full read says there is more: read it while the caller works.
        if batch.len() >= asked {
            self.read_ahead(limit);
        }
        Ok(batch)
    }

    /// Starts reading the batch after the last one handed out. Wake-ups are marked seen before,
    /// so an append that lands after this read still wakes [`Self::wait`].
    fn read_ahead(&mut self, limit: usize) {
        self.mark_wakeups_seen();
        let (store, after, types) = (self.store.clone(), self.after, self.types);
        self.ahead = Some(ReadAhead {
            limit,
            read: tokio::spawn(async move { read(&*store, after, limit, types).await }),
        });
    }

    fn mark_wakeups_seen(&mut self) {
        if let Some(wakeups) = &mut self.wakeups {
            wakeups.borrow_and_update();
        }
    }

    /// Waits until an append may have happened since the last [`Self::next_batch`], at most
    /// `timeout`.
    pub async fn wait(&mut self, timeout: Duration) {
        match &mut self.wakeups {
            Some(wakeups) => {
                let _ = tokio::time::timeout(timeout, wakeups.changed()).await;
            }
            None => self.store.wait_for_append(timeout).await,
        }
    }
}

/// The events after `after` (of `types`, when given) and how far they cover the log: to the
/// last of them, or, for a short read of some types, to the head taken before it, since every
/// event up to there was visible to the read.
async fn read<S: EventStore + ?Sized>(
    store: &S,
    after: Option<Position>,
    limit: usize,
    types: Option<&[&str]>,
) -> Result<Read, StoreError> {
    let (events, head) = match types {
        Some(types) => {
            let head = store.head().await?;
            let events = store.read_all_of_types(after, limit, types).await?;
            let short = events.len() < limit;
            (events, head.filter(|_| short))
        }
        None => (store.read_all(after, limit).await?, None),
    };
    let last = events.last().map(|e| e.position);
    Ok((events, last.max(head)))
}

/// A subscription built on [`LogFollower`]. Transient errors are yielded and the subscription
/// keeps going from the last event it delivered, so a consumer may log them and carry on.
pub fn subscribe_by_polling<S: EventStore + ?Sized>(
    store: Arc<S>,
    after: Option<Position>,
) -> Subscription {
    let follower = LogFollower::new(store, after);
    futures::stream::unfold(
        (follower, Vec::new().into_iter()),
        |(mut follower, mut buffered)| async move {
            loop {
                if let Some(event) = buffered.next() {
                    return Some((Ok(event), (follower, buffered)));
                }
                match follower.next_batch(CATCH_UP_BATCH).await {
                    Ok(batch) if batch.is_empty() => follower.wait(POLL_FALLBACK).await,
                    Ok(batch) => buffered = batch.into_iter(),
                    Err(error) => {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        return Some((Err(error), (follower, buffered)));
                    }
                }
            }
        },
    )
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryEventStore;
    use crate::{ExpectedVersion, NewEvent};

    async fn append(store: &MemoryEventStore, stream: &str, count: usize) {
        let events = (0..count)
            .map(|i| NewEvent::new(uuid::Uuid::nil(), "Probed", serde_json::json!({ "i": i })))
            .collect();
        store
            .append(stream, ExpectedVersion::Any, events)
            .await
            .expect("append");
    }

    async fn append_typed(store: &MemoryEventStore, stream: &str, event_type: &str) {
        let event = NewEvent::new(uuid::Uuid::nil(), event_type, serde_json::json!({}));
        store
            .append(stream, ExpectedVersion::Any, vec![event])
            .await
            .expect("append");
    }

    #[tokio::test]
    async fn a_typed_follower_passes_other_events_but_never_one_of_its_own() {
        let store = Arc::new(MemoryEventStore::new());
        for _ in 0..3 {
            append_typed(&store, "probe-x", "Wanted").await;
        }
        let mut follower = LogFollower::new(store.clone(), None).only(&["Wanted"]);
        assert_eq!(follower.next_batch(2).await.expect("batch").len(), 2);
        // The full batch started a read-ahead, which finds the third event; what is appended
        // after it ran must be read next, not passed over.
        tokio::time::sleep(Duration::from_millis(50)).await;
        append_typed(&store, "probe-y", "Other").await;
        append_typed(&store, "probe-x", "Wanted").await;
        append_typed(&store, "probe-y", "Other").await;
        let third = follower.next_batch(2).await.expect("read-ahead");
        assert_eq!(third.len(), 1);
        assert_eq!(follower.position(), Some(third[0].position));
        let fourth = follower.next_batch(2).await.expect("batch");
        assert_eq!(fourth.len(), 1, "the event appended after the read-ahead");
        // Caught up: the follower has passed the other stream's last event too.
        let head = store.head().await.expect("head");
        assert!(head > Some(fourth[0].position));
        assert_eq!(follower.position(), head);
        assert!(follower.next_batch(2).await.expect("batch").is_empty());
    }

    #[tokio::test]
    async fn reads_ahead_without_gaps_or_repeats_and_wakes_after_catching_up() {
        let store = Arc::new(MemoryEventStore::new());
        append(&store, "probe-a", 7).await;
        let mut follower = LogFollower::new(store.clone(), None);
        let mut seen = Vec::new();
        let mut lengths = Vec::new();
        // Full batches start a read-ahead, which a larger limit takes as it is (the third
        // batch: 2 events, read for a limit of 2) and a smaller one discards and reads again.
        for limit in [2, 2, 3, 1, 3] {
            let batch = follower.next_batch(limit).await.expect("batch");
            assert!(batch.len() <= limit);
            lengths.push(batch.len());
            seen.extend(batch.into_iter().map(|e| e.version));
        }
        assert_eq!(lengths, [2, 2, 2, 1, 0]);
        assert_eq!(seen, (0..7).collect::<Vec<_>>());
        assert_eq!(follower.next_batch(3).await.expect("caught up").len(), 0);

        // An append after the (read-ahead) read that found nothing still wakes the follower.
        append(&store, "probe-b", 1).await;
        tokio::time::timeout(
            Duration::from_secs(5),
            follower.wait(Duration::from_secs(60)),
        )
        .await
        .expect("woken by the append");
        let batch = follower.next_batch(3).await.expect("batch");
        assert_eq!(batch.len(), 1);
        assert_eq!(batch[0].stream, "probe-b");
        assert_eq!(follower.position(), Some(batch[0].position));
    }
}
