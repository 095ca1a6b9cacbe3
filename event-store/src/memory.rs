//! The in-memory backend, for unit tests of code above the store. Same contract as Postgres.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;
use uuid::Uuid;

use crate::{AppendResult, Direction, EventStore, ExpectedVersion, StoreError, StreamAppend};
use events::{NewEvent, Position, RecordedEvent};

pub struct MemoryEventStore {
    state: Mutex<State>,
    signal: watch::Sender<()>,
}

#[derive(Default)]
struct State {
    log: Vec<RecordedEvent>,
    streams: HashMap<String, Vec<usize>>,
    ids: HashMap<Uuid, usize>,
}

impl Default for MemoryEventStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryEventStore {
    pub fn new() -> Self {
        Self {
            state: Mutex::default(),
            signal: watch::channel(()).0,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the log half-written (appends mutate only
        // after every check), so a poisoned lock is still consistent.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Position `i` of the log is `(i + 1, i + 1)`, so the start position precedes everything.
fn position_of(index: usize) -> Position {
    Position::new(index as u64 + 1, index as u64 + 1)
}

impl State {
    fn version(&self, stream: &str) -> Option<u64> {
        self.streams
            .get(stream)
            .map(|indexes| indexes.len() as u64 - 1)
    }

    /// `Some(original)` when `events` are a retry of an append to `stream`; `None` when they may
    /// be appended at `expected`; an error otherwise.
    fn check(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> Result<Option<AppendResult>, StoreError> {
        if events.is_empty() {
            return Err(StoreError::EmptyAppend);
        }
        if let Some(original) = self.already_appended(stream, events)? {
            return Ok(Some(original));
        }
        let current = self.version(stream);
        let ok = match expected {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => current.is_none(),
            ExpectedVersion::StreamExists => current.is_some(),
            ExpectedVersion::Exact(v) => current == Some(v),
        };
        if !ok {
            return Err(StoreError::WrongExpectedVersion {
                stream: stream.to_owned(),
                expected,
                actual: current,
            });
        }
        Ok(None)
    }

    /// Appends `events` to `stream` after [`Self::check`] allowed it.
    fn write(&mut self, stream: &str, events: Vec<NewEvent>) -> Result<AppendResult, StoreError> {
        let current = self.version(stream);
        let mut result = None;
        let recorded_at = chrono::Utc::now();
        for (offset, event) in events.into_iter().enumerate() {
            let index = self.log.len();
            let version = current.map_or(0, |v| v + 1) + offset as u64;
            self.ids.insert(event.event_id, index);
            self.streams
                .entry(stream.to_owned())
                .or_default()
                .push(index);
            self.log.push(RecordedEvent {
                event_id: event.event_id,
                stream: stream.to_owned(),
                version,
                position: position_of(index),
                event_type: event.event_type,
                schema_version: event.schema_version,
                org_id: event.org_id,
                data: event.data,
                metadata: event.metadata,
                recorded_at,
            });
            result = Some(AppendResult {
                last_version: version,
                position: position_of(index),
            });
        }
        result.ok_or(StoreError::EmptyAppend)
    }

    fn already_appended(
        &self,
        stream: &str,
        events: &[NewEvent],
    ) -> Result<Option<AppendResult>, StoreError> {
        if events.iter().all(|e| !self.ids.contains_key(&e.event_id)) {
            return Ok(None);
        }
        let mut last = None;
        for event in events {
            let stored = self.ids.get(&event.event_id).map(|&i| &self.log[i]);
            match stored {
                Some(s)
                    if s.stream == stream
                        && s.event_type == event.event_type
                        && s.org_id == event.org_id
                        && s.data == event.data =>
                {
                    last = Some(AppendResult {
                        last_version: s.version,
                        position: s.position,
                    });
                }
                _ => {
                    return Err(StoreError::DuplicateEventId {
                        event_id: event.event_id,
                    });
                }
            }
        }
        Ok(last)
    }
}

#[async_trait]
impl EventStore for MemoryEventStore {
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        let mut state = self.state();
        let result = match state.check(stream, expected, &events)? {
            Some(original) => return Ok(original),
            None => state.write(stream, events),
        };
        drop(state);
        self.signal.send_replace(());
        result
    }

    async fn append_to_streams(
        &self,
        appends: Vec<StreamAppend>,
    ) -> Result<Vec<AppendResult>, StoreError> {
        crate::check_appends(&appends)?;
        let mut state = self.state();
        let mut originals = Vec::with_capacity(appends.len());
        for append in &appends {
            originals.push(state.check(&append.stream, append.expected, &append.events)?);
        }
        if originals.iter().all(Option::is_some) {
            return Ok(originals.into_iter().flatten().collect());
        }
        // Some streams hold these events already and others do not: not a retry of this call.
        if let Some(index) = originals.iter().position(Option::is_some) {
            return Err(StoreError::DuplicateEventId {
                event_id: appends[index].events[0].event_id,
            });
        }
        let results = appends
            .into_iter()
            .map(|append| state.write(&append.stream, append.events))
            .collect::<Result<Vec<_>, _>>()?;
        drop(state);
        self.signal.send_replace(());
        Ok(results)
    }

    async fn read_stream(
        &self,
        stream: &str,
        from: Option<u64>,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let state = self.state();
        let Some(indexes) = state.streams.get(stream) else {
            return Ok(Vec::new());
        };
        let events = indexes.iter().map(|&i| &state.log[i]);
        Ok(match direction {
            Direction::Forwards => events
                .filter(|e| e.version >= from.unwrap_or(0))
                .take(limit)
                .cloned()
                .collect(),
            Direction::Backwards => events
                .rev()
                .filter(|e| e.version <= from.unwrap_or(u64::MAX))
                .take(limit)
                .cloned()
                .collect(),
        })
    }

    async fn read_all(
        &self,
        after: Option<Position>,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let state = self.state();
        let start = after.map_or(0, |p| p.prepare as usize);
        Ok(state.log.iter().skip(start).take(limit).cloned().collect())
    }

    async fn stream_version(&self, stream: &str) -> Result<Option<u64>, StoreError> {
        Ok(self.state().version(stream))
    }

    async fn approximate_len(&self) -> Result<Option<u64>, StoreError> {
        Ok(Some(self.state().log.len() as u64))
    }

    async fn head(&self) -> Result<Option<Position>, StoreError> {
        Ok(self.state().log.last().map(|e| e.position))
    }

    async fn wait_for_append(&self, timeout: Duration) {
        let mut wakeups = self.signal.subscribe();
        let _ = tokio::time::timeout(timeout, wakeups.changed()).await;
    }

    fn wakeups(&self) -> Option<watch::Receiver<()>> {
        Some(self.signal.subscribe())
    }
}
