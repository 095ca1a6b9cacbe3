use uuid::Uuid;

use crate::ExpectedVersion;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("stream {stream} expected at {expected:?}, but it is at {actual:?}")]
    WrongExpectedVersion {
        stream: String,
        expected: ExpectedVersion,
        /// The stream's actual last version; `None` when the stream does not exist.
        actual: Option<u64>,
    },
    /// An event id that is already stored was appended again with other content or to another
    /// stream: a caller bug, never an idempotent retry.
    #[error("event {event_id} is already stored with different content")]
    DuplicateEventId { event_id: Uuid },
    #[error("an append needs at least one event")]
    EmptyAppend,
    #[error("stream {stream} appears more than once in one append")]
    StreamTwice { stream: String },
    /// A multi-stream append on a backend without cross-stream transactions failed part way:
    /// `appended` were written before `failure`.
    #[error("appended to {} stream(s), then: {failure}", appended.len())]
    PartlyAppended {
        appended: Vec<(String, crate::AppendResult)>,
        failure: Box<StoreError>,
    },
    #[error("event store unavailable: {0}")]
    Unavailable(String),
    #[error("event store error: {0}")]
    Backend(String),
    #[error("stored event {event_id} cannot be read: {reason}")]
    Corrupt { event_id: Uuid, reason: String },
}

impl StoreError {
    /// Whether retrying the same call later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}
