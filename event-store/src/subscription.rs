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
pub struct LogFollower<S: ?Sized> {
    store: Arc<S>,
    after: Option<Position>,
    wakeups: Option<watch::Receiver<()>>,
}

impl<S: EventStore + ?Sized> LogFollower<S> {
    pub fn new(store: Arc<S>, after: Option<Position>) -> Self {
        let wakeups = store.wakeups();
        Self {
            store,
            after,
            wakeups,
        }
    }

    /// The position of the last event handed out.
    pub fn position(&self) -> Option<Position> {
        self.after
    }

    /// The next batch of at most `limit` events; empty when caught up (it does not wait).
    pub async fn next_batch(&mut self, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        if let Some(wakeups) = &mut self.wakeups {
            wakeups.borrow_and_update();
        }
        let batch = self.store.read_all(self.after, limit).await?;
        if let Some(last) = batch.last() {
            self.after = Some(last.position);
        }
        Ok(batch)
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
