//! The append-only event log behind every Corbi service.
//!
//! [`EventStore`] is the one interface; [`postgres::PgEventStore`] is the default backend,
//! `kurrentdb::KurrentEventStore` (cargo feature `kurrentdb`) the alternative and
//! [`memory::MemoryEventStore`] the one for unit tests. The same contract suite
//! (`tests/contract.rs`) runs against each of them.

pub mod data_keys;
mod error;
mod group;
pub mod memory;
pub mod postgres;
mod subscription;

#[cfg(feature = "kurrentdb")]
pub mod kurrentdb;

use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;

pub use error::StoreError;
pub use events::{NewEvent, Position, RecordedEvent};
pub use subscription::{LogFollower, POLL_FALLBACK, subscribe_by_polling};

/// What the appender believes about the stream's current version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// Append whatever the stream holds.
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream must hold at least one event.
    StreamExists,
    /// The stream's last event must have exactly this version.
    Exact(u64),
}

/// Where the events just appended landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendResult {
    /// The version of the last event appended: the `Exact` to pass for the next append.
    pub last_version: u64,
    /// The global position of the last event appended: the consistency token.
    pub position: Position,
}

/// One stream's part of [`EventStore::append_to_streams`].
#[derive(Debug, Clone, PartialEq)]
pub struct StreamAppend {
    pub stream: String,
    pub expected: ExpectedVersion,
    pub events: Vec<NewEvent>,
}

impl StreamAppend {
    pub fn new(
        stream: impl Into<String>,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Self {
        Self {
            stream: stream.into(),
            expected,
            events,
        }
    }
}

/// Direction of a stream read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Forwards,
    Backwards,
}

/// A live, never-ending feed of the log after a position.
pub type Subscription = BoxStream<'static, Result<RecordedEvent, StoreError>>;

/// The event log.
///
/// Every backend guarantees: appends to one stream are atomic and versioned; a conflict is
/// reported as [`StoreError::WrongExpectedVersion`] with the actual version; re-appending events
/// whose ids are already stored (same stream, same data) returns the original result and adds
/// nothing; `read_all` and subscriptions return every committed event exactly once, in one
/// global order that is consistent with each stream's version order, and never skip an event
/// that committed late.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Appends `events` (at least one) to `stream` atomically, if the stream is at `expected`.
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError>;

    /// Appends to several streams, each guarded by its own expected version: the tool for
    /// consistency across aggregates (reservation streams, DESIGN §3). The results come in the
    /// order of `appends`. Each stream may appear once. A retry of the whole call returns the
    /// original results and appends nothing.
    ///
    /// All or nothing where [`Self::atomic_across_streams`] says so (Postgres, memory). Elsewhere
    /// (KurrentDB) the streams are appended in order and a failure after the first leaves the
    /// earlier ones written, reported as [`StoreError::PartlyAppended`]; callers release what
    /// they reserved.
    async fn append_to_streams(
        &self,
        appends: Vec<StreamAppend>,
    ) -> Result<Vec<AppendResult>, StoreError>;

    /// Whether [`Self::append_to_streams`] is all or nothing.
    fn atomic_across_streams(&self) -> bool {
        true
    }

    /// Whether a successful append also makes durable every commit made before it to the
    /// Postgres database of `DATABASE_URL`: true when the log is in that database, whose
    /// write-ahead log is flushed in order. Rows that matter only once an event refers to them
    /// (data keys) may then commit without waiting for a flush of their own.
    fn flushes_earlier_database_commits(&self) -> bool {
        false
    }

    /// Reads up to `limit` events of `stream` starting at version `from` (inclusive) in
    /// `direction`. `from = None` starts at the stream's first event (forwards) or last
    /// (backwards). An absent stream reads as empty.
    async fn read_stream(
        &self,
        stream: &str,
        from: Option<u64>,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Reads up to `limit` committed events after `after` (exclusive; `None` = from the start),
    /// in global order. An event is returned only once every event that may precede it is
    /// visible, so a reader that resumes from the last position it saw never misses one.
    async fn read_all(
        &self,
        after: Option<Position>,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// [`Self::read_all`] down to the events whose type is one of `types`: up to `limit` of them
    /// after `after`, in global order; empty when no such event follows. The events skipped
    /// between them are not reported, so a reader that goes on from the last event returned
    /// reads those again. Backends that can filter where the events are stored do; the default
    /// reads everything and filters.
    async fn read_all_of_types(
        &self,
        mut after: Option<Position>,
        limit: usize,
        types: &[&str],
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        loop {
            let batch = self.read_all(after, limit).await?;
            let complete = batch.len() < limit;
            let Some(last) = batch.last() else {
                return Ok(batch);
            };
            after = Some(last.position);
            let kept: Vec<RecordedEvent> = batch
                .into_iter()
                .filter(|event| types.contains(&event.event_type.as_str()))
                .collect();
            if !kept.is_empty() || complete {
                return Ok(kept);
            }
        }
    }

    /// The version of the stream's last event; `None` if the stream does not exist.
    async fn stream_version(&self, stream: &str) -> Result<Option<u64>, StoreError>;

    /// About how many events the log holds (for progress bars); `None` when unknown.
    async fn approximate_len(&self) -> Result<Option<u64>, StoreError> {
        Ok(None)
    }

    /// The position of the last event readers can see now (`None` for an empty log).
    async fn head(&self) -> Result<Option<Position>, StoreError>;

    /// The position of the last event committed so far, which readers may see a moment later
    /// than [`Self::head`] (Postgres hands out events only once every transaction that started
    /// before theirs has ended): what a reader that must have seen every event committed until
    /// now waits for. The head, where readers see every committed event at once.
    async fn committed_head(&self) -> Result<Option<Position>, StoreError> {
        self.head().await
    }

    /// Resolves when new events may have been committed, or after `timeout`. Wake-ups may be
    /// spurious or coalesced; readers always re-read.
    async fn wait_for_append(&self, timeout: std::time::Duration);

    /// A change signal that fires after appends (from any process, where the backend can tell).
    /// Readers mark it seen *before* reading, so an append that lands between their read and
    /// their wait still wakes them. Backends without one fall back to [`Self::wait_for_append`].
    fn wakeups(&self) -> Option<tokio::sync::watch::Receiver<()>> {
        None
    }

    /// A live subscription after `after`: catches up in batches, then follows new appends.
    fn subscribe(self: Arc<Self>, after: Option<Position>) -> Subscription
    where
        Self: Sized,
    {
        subscribe_by_polling(self, after)
    }
}

/// What every backend checks of a multi-stream append before it writes: at least one stream,
/// each once, each with events, and no event id twice.
pub(crate) fn check_appends(appends: &[StreamAppend]) -> Result<(), StoreError> {
    let mut streams = std::collections::HashSet::new();
    let mut ids = std::collections::HashSet::new();
    if appends.is_empty() {
        return Err(StoreError::EmptyAppend);
    }
    for append in appends {
        if append.events.is_empty() {
            return Err(StoreError::EmptyAppend);
        }
        if !streams.insert(append.stream.as_str()) {
            return Err(StoreError::StreamTwice {
                stream: append.stream.clone(),
            });
        }
        for event in &append.events {
            if !ids.insert(event.event_id) {
                return Err(StoreError::DuplicateEventId {
                    event_id: event.event_id,
                });
            }
        }
    }
    Ok(())
}

/// The batch size subscriptions read with while catching up.
pub const CATCH_UP_BATCH: usize = 1_000;
