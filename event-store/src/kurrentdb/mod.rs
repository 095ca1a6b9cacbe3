//! The KurrentDB backend (cargo feature `kurrentdb`): the [`EventStore`] contract on a KurrentDB
//! server, through the `kurrentdb` gRPC client.
//!
//! - **Streams and versions.** A Corbi stream is a KurrentDB stream and its version the stream
//!   revision; [`ExpectedVersion`] maps one to one onto [`StreamState`]. Event ids are KurrentDB
//!   event ids. The payload is stored as JSON (`application/json`); org id, schema version and
//!   the Corbi metadata go in the event's custom metadata, `{"org_id", "schema_version",
//!   "metadata"}`. `recorded_at` is the server's `created` time, to the 100 ns tick.
//! - **Global order.** A [`Position`] is the `$all` position `(commit, prepare)`. `$all` is the
//!   server's transaction log read in order, up to what is committed, so it has no holes that
//!   fill in later: a reader that resumes after the last position it saw misses nothing. System
//!   streams (`$…`) are filtered out on the server (stream-name regex), `$`-typed events (links,
//!   tombstones) on the client, in `read_all`, `head` and the wake-ups alike.
//! - **Idempotency.** KurrentDB dedupes by event id only when a retry carries the original
//!   expected version, and never compares content. So an append first reads the stream's tail
//!   ([`IDEMPOTENCY_WINDOW`] events plus the batch): ids found there with the same type, org and
//!   data return the original result and append nothing; ids found with other content, or mixed
//!   with new ids, are [`StoreError::DuplicateEventId`]. A conflict checks the events appended
//!   since that read too (a concurrent retry may have landed). Not detected, unlike Postgres: an
//!   event id reused in *another* stream (KurrentDB has no global id index), and a retry whose
//!   events sank deeper than the window and that carries an up-to-date expected version.
//! - **Wake-ups.** A background `subscribe_to_all` from the end (system streams filtered) fires
//!   [`EventStore::wakeups`] on every event any process appends; local appends fire it at once.
//!   Subscriptions are the polling ones of [`crate::subscribe_by_polling`] over `read_all`, whose
//!   fallback poll keeps them going while the wake-up subscription reconnects.
//! - **Reconnects.** The client's connection task gives up for good once the server is
//!   unreachable; the store then builds a fresh client, so it heals when the server is back.
//!   Transport failures are [`StoreError::Unavailable`].

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use kurrentdb::{
    AppendToStreamOptions, Client, ClientSettings, ClientSettingsParseError, CurrentRevision,
    EventData, ReadAllOptions, ReadStreamOptions, RecordedEvent as StoredEvent, ResolvedEvent,
    StreamPosition, StreamState, SubscribeToAllOptions, SubscriptionEvent, SubscriptionFilter,
};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::AbortHandle;
use uuid::Uuid;

use crate::{AppendResult, Direction, EventStore, ExpectedVersion, StoreError, StreamAppend};
use events::{Metadata, NewEvent, Position, RecordedEvent};

mod convert;
use convert::*;

/// How many events at a stream's tail (besides the batch) an append searches for its own ids.
pub const IDEMPOTENCY_WINDOW: usize = 100;

/// Streaming reads get no deadline from the client unless asked; a stalled server must not hang
/// a reader for ever.
const READ_DEADLINE: Duration = Duration::from_secs(30);

/// Events per backwards page when looking for the newest non-system event.
const HEAD_PAGE: usize = 32;

/// Server-side filter: streams whose name does not start with `$`.
const USER_STREAMS: &str = "^[^$]";

const WAKE_RETRY_MIN: Duration = Duration::from_millis(500);
const WAKE_RETRY_MAX: Duration = Duration::from_secs(10);

/// The event log on a KurrentDB server. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct KurrentEventStore {
    inner: Arc<Inner>,
}

struct Inner {
    settings: ClientSettings,
    connection: Mutex<Connection>,
    appended: watch::Sender<()>,
    wake_task: OnceLock<AbortHandle>,
}

/// What an append learnt from the stream's tail before writing.
struct Tail {
    original: Option<AppendResult>,
    version: Option<u64>,
}

/// A client and how many times it was replaced before, so concurrent failures of one client
/// replace it once.
#[derive(Clone)]
struct Connection {
    generation: u64,
    client: Client,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(task) = self.wake_task.get() {
            task.abort();
        }
    }
}

impl KurrentEventStore {
    /// Connects to the server of `url`, a KurrentDB connection string such as
    /// `kurrentdb://127.0.0.1:2113?tls=false` (credentials as `kurrentdb://user:pass@host…`;
    /// the user must be allowed to read `$all`), and checks that `$all` can be read. An
    /// unreachable server is [`StoreError::Unavailable`]; after a successful connect the store
    /// reconnects by itself.
    ///
    /// Processes that use TLS must have installed a rustls crypto provider first (see
    /// `reference/crates.md`, pitfall 2).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let settings: ClientSettings = url.parse().map_err(|e| invalid_url(&e))?;
        let client = new_client(&settings)?;
        let (appended, _) = watch::channel(());
        let inner = Arc::new(Inner {
            settings,
            connection: Mutex::new(Connection {
                generation: 0,
                client,
            }),
            appended,
            wake_task: OnceLock::new(),
        });
        let task = tokio::spawn(follow_appends(Arc::downgrade(&inner)));
        let _ = inner.wake_task.set(task.abort_handle());
        let store = KurrentEventStore { inner };
        store.head().await?;
        Ok(store)
    }
}

#[async_trait]
impl EventStore for KurrentEventStore {
    #[tracing::instrument(level = "debug", skip_all, fields(stream = %stream, count = events.len()))]
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        if events.is_empty() {
            return Err(StoreError::EmptyAppend);
        }
        check_names(stream, &events)?;
        let inner = &self.inner;
        let tail = inner.tail(stream, &events).await?;
        if let Some(original) = tail.original {
            return Ok(original);
        }
        let proposed = events
            .iter()
            .map(event_data)
            .collect::<Result<Vec<_>, _>>()?;
        let options = AppendToStreamOptions::default().stream_state(stream_state(expected));
        let connection = inner.connection();
        match connection
            .client
            .append_to_stream(stream, &options, proposed)
            .await
        {
            Ok(written) => {
                inner.appended.send_replace(());
                let last_version = written.next_expected_version;
                let mut position = position(written.position);
                if position == Position::START {
                    // The server answered without a position (`NoPosition`): read it back.
                    position = inner.position_of(stream, last_version).await?;
                }
                Ok(AppendResult {
                    last_version,
                    position,
                })
            }
            Err(kurrentdb::Error::WrongExpectedVersion { current, .. }) => {
                let actual = match current {
                    CurrentRevision::Current(version) => Some(version),
                    CurrentRevision::NoStream => None,
                };
                // A concurrent retry of these very events may have landed since the tail was read.
                if let Some(original) = inner
                    .landed_since(stream, &events, tail.version, actual)
                    .await?
                {
                    return Ok(original);
                }
                Err(StoreError::WrongExpectedVersion {
                    stream: stream.to_owned(),
                    expected,
                    actual,
                })
            }
            Err(error) => Err(inner.fail(connection.generation, error)),
        }
    }

    /// KurrentDB has no transaction across streams: the streams are appended in order, each
    /// idempotently, so a retry of the whole call after [`StoreError::PartlyAppended`] finishes
    /// the job or fails at the same stream again.
    async fn append_to_streams(
        &self,
        appends: Vec<StreamAppend>,
    ) -> Result<Vec<AppendResult>, StoreError> {
        crate::check_appends(&appends)?;
        let mut appended: Vec<(String, AppendResult)> = Vec::with_capacity(appends.len());
        for append in appends {
            match self
                .append(&append.stream, append.expected, append.events)
                .await
            {
                Ok(result) => appended.push((append.stream, result)),
                Err(failure) if appended.is_empty() => return Err(failure),
                Err(failure) => {
                    return Err(StoreError::PartlyAppended {
                        appended,
                        failure: Box::new(failure),
                    });
                }
            }
        }
        Ok(appended.into_iter().map(|(_, result)| result).collect())
    }

    fn atomic_across_streams(&self) -> bool {
        false
    }
    #[tracing::instrument(level = "debug", skip_all, fields(stream = %stream, ?from, ?direction, limit))]
    async fn read_stream(
        &self,
        stream: &str,
        from: Option<u64>,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let from = match (from, direction) {
            (Some(version), _) => StreamPosition::Position(version),
            (None, Direction::Forwards) => StreamPosition::Start,
            (None, Direction::Backwards) => StreamPosition::End,
        };
        self.inner
            .read_stream(stream, from, direction, limit)
            .await?
            .into_iter()
            .map(decode)
            .collect()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(?after, limit))]
    async fn read_all(
        &self,
        after: Option<Position>,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        // Everything returned lies strictly after `floor`. A forwards read from a position
        // includes the event at it, hence one more than needed and the skip below.
        let mut floor = after;
        let mut found = Vec::new();
        while found.len() < limit {
            let count = (limit - found.len()).saturating_add(1);
            let from = match floor {
                None | Some(Position::START) => StreamPosition::Start,
                Some(p) => StreamPosition::Position(kurrent_position(p)),
            };
            let page = self.inner.read_all(from, false, count).await?;
            let at_end = page.len() < count;
            let mut last_read = floor;
            for event in page {
                let at = position(event.position);
                if floor.is_some_and(|floor| at <= floor) {
                    continue;
                }
                last_read = Some(at);
                if !is_system(&event) {
                    found.push(decode(event)?);
                }
            }
            // A full page always moves past `floor` (it holds at least two events); the
            // comparison only guards against a server that does not.
            if at_end || last_read == floor {
                break;
            }
            floor = last_read;
        }
        found.truncate(limit);
        Ok(found)
    }

    async fn stream_version(&self, stream: &str) -> Result<Option<u64>, StoreError> {
        let last = self
            .inner
            .read_stream(stream, StreamPosition::End, Direction::Backwards, 1)
            .await?;
        Ok(last.first().map(|event| event.revision))
    }

    async fn head(&self) -> Result<Option<Position>, StoreError> {
        let mut from = StreamPosition::End;
        loop {
            let page = self.inner.read_all(from, true, HEAD_PAGE).await?;
            let at_start = page.len() < HEAD_PAGE;
            let mut oldest = None;
            for event in page {
                if !is_system(&event) {
                    return Ok(Some(position(event.position)));
                }
                oldest = Some(event.position);
            }
            match oldest {
                Some(p) if !at_start => from = StreamPosition::Position(p),
                _ => return Ok(None),
            }
        }
    }

    async fn wait_for_append(&self, timeout: Duration) {
        let mut appended = self.inner.appended.subscribe();
        let _ = tokio::time::timeout(timeout, appended.changed()).await;
    }

    fn wakeups(&self) -> Option<watch::Receiver<()>> {
        Some(self.inner.appended.subscribe())
    }
}

impl Inner {
    fn connection(&self) -> Connection {
        self.connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Maps a client error. A client whose connection task gave up (it does after failing to
    /// reach the server) is replaced, so the next call connects afresh.
    fn fail(&self, generation: u64, error: kurrentdb::Error) -> StoreError {
        if matches!(
            error,
            kurrentdb::Error::ConnectionClosed | kurrentdb::Error::GrpcConnectionError(_)
        ) {
            let mut current = self
                .connection
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if current.generation == generation {
                match new_client(&self.settings) {
                    Ok(client) => {
                        *current = Connection {
                            generation: generation + 1,
                            client,
                        };
                        tracing::info!("KurrentDB connection lost; reconnecting on the next call");
                    }
                    Err(replacement) => {
                        tracing::warn!(error = %replacement, "cannot build a new KurrentDB client")
                    }
                }
            }
        }
        store_error(&error)
    }

    /// Up to `limit` events of `stream` from `from`; an absent stream reads as empty.
    async fn read_stream(
        &self,
        stream: &str,
        from: StreamPosition<u64>,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let options = ReadStreamOptions::default()
            .position(from)
            .max_count(limit)
            .deadline(READ_DEADLINE);
        let options = match direction {
            Direction::Forwards => options.forwards(),
            Direction::Backwards => options.backwards(),
        };
        let connection = self.connection();
        let read = connection.client.read_stream(stream, &options).await;
        self.collect(connection.generation, read).await
    }

    /// Up to `count` events of `$all` from `from`, system streams filtered out by the server.
    async fn read_all(
        &self,
        from: StreamPosition<kurrentdb::Position>,
        backwards: bool,
        count: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let options = ReadAllOptions::default()
            .position(from)
            .max_count(count)
            .filter(user_streams())
            .deadline(READ_DEADLINE);
        let options = if backwards {
            options.backwards()
        } else {
            options.forwards()
        };
        let connection = self.connection();
        let read = connection.client.read_all(&options).await;
        self.collect(connection.generation, read).await
    }

    async fn collect(
        &self,
        generation: u64,
        read: kurrentdb::Result<kurrentdb::ReadStream>,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let mut read = match read {
            Ok(read) => read,
            Err(kurrentdb::Error::ResourceNotFound) => return Ok(Vec::new()),
            Err(error) => return Err(self.fail(generation, error)),
        };
        let mut events = Vec::new();
        loop {
            match read.next().await {
                Ok(Some(resolved)) => events.extend(recorded(resolved)),
                Ok(None) => return Ok(events),
                Err(kurrentdb::Error::ResourceNotFound) => return Ok(Vec::new()),
                Err(error) => return Err(self.fail(generation, error)),
            }
        }
    }

    /// Reads the tail of `stream` before an append: the original result if `events` are
    /// already there (see the module docs), and the version the stream was at.
    async fn tail(&self, stream: &str, events: &[NewEvent]) -> Result<Tail, StoreError> {
        let window = IDEMPOTENCY_WINDOW.saturating_add(events.len());
        let tail = self
            .read_stream(stream, StreamPosition::End, Direction::Backwards, window)
            .await?;
        Ok(Tail {
            version: tail.first().map(|event| event.revision),
            original: original_among(tail, events)?,
        })
    }

    /// After a conflict: the original result if a concurrent retry of `events` landed between
    /// the tail read (`seen`) and the rejected append (`now`). Only those events can hold one.
    async fn landed_since(
        &self,
        stream: &str,
        events: &[NewEvent],
        seen: Option<u64>,
        now: Option<u64>,
    ) -> Result<Option<AppendResult>, StoreError> {
        let Some(now) = now else {
            return Ok(None);
        };
        let (from, new) = match seen {
            Some(seen) if now <= seen => return Ok(None),
            Some(seen) => (StreamPosition::Position(seen + 1), now - seen),
            None => (StreamPosition::Start, now.saturating_add(1)),
        };
        let window = IDEMPOTENCY_WINDOW.saturating_add(events.len());
        let landed = match usize::try_from(new) {
            Ok(new) if new <= window => {
                self.read_stream(stream, from, Direction::Forwards, new)
                    .await?
            }
            _ => {
                self.read_stream(stream, StreamPosition::End, Direction::Backwards, window)
                    .await?
            }
        };
        original_among(landed, events)
    }

    async fn position_of(&self, stream: &str, version: u64) -> Result<Position, StoreError> {
        let events = self
            .read_stream(
                stream,
                StreamPosition::Position(version),
                Direction::Backwards,
                1,
            )
            .await?;
        events
            .first()
            .map(|event| position(event.position))
            .ok_or_else(|| StoreError::Backend(format!("appended version {version} is not there")))
    }
}

/// Keeps a `subscribe_to_all` open from the end of the log and fires the wake-up channel for
/// every event appended, by this process or another. Only a hint: readers poll as well.
async fn follow_appends(inner: Weak<Inner>) {
    let mut retry_in = WAKE_RETRY_MIN;
    loop {
        let Some(connection) = inner.upgrade().map(|store| store.connection()) else {
            return;
        };
        let options = SubscribeToAllOptions::default()
            .position(StreamPosition::End)
            .filter(user_streams());
        let mut subscription = connection.client.subscribe_to_all(&options).await;
        loop {
            let event = subscription.next_subscription_event().await;
            let Some(store) = inner.upgrade() else {
                return;
            };
            match event {
                Ok(SubscriptionEvent::EventAppeared(_)) => {
                    store.appended.send_replace(());
                }
                Ok(SubscriptionEvent::Confirmed(_)) => {
                    retry_in = WAKE_RETRY_MIN;
                    // Appends made while it was down went unannounced.
                    store.appended.send_replace(());
                }
                Ok(_) => {}
                Err(error) if error.is_access_denied() => {
                    tracing::warn!(
                        "not allowed to subscribe to $all on KurrentDB: readers fall back to polling"
                    );
                    return;
                }
                Err(error) => {
                    tracing::warn!(%error, retry_in = ?retry_in, "KurrentDB wake-up subscription dropped");
                    let _ = store.fail(connection.generation, error);
                    break;
                }
            }
        }
        tokio::time::sleep(retry_in).await;
        retry_in = (retry_in * 2).min(WAKE_RETRY_MAX);
    }
}

#[cfg(test)]
mod tests;
