//! The command loop every handler shares (DESIGN §4): load the stream, fold it, decide, append
//! with the version read — and on a concurrent change, load and decide again.

use domain::Aggregate;
use event_store::data_keys::{DataKeyError, DataKeys};
use event_store::{Direction, EventStore, ExpectedVersion, StoreError};
use events::{Metadata, NewEvent, Position, RecordedEvent, TypedEvent, Upcasters};
use service::ApiError;
use uuid::Uuid;

use crate::store_error;

/// How often a decision is taken again when another writer moved the stream in between.
pub const MAX_ATTEMPTS: usize = 5;

/// What a command appended.
#[derive(Debug, Clone)]
pub struct Decided<E> {
    pub events: Vec<E>,
    /// Where the last event landed; `None` when the command was already done (nothing appended).
    pub position: Option<Position>,
}

/// `Exact(version)` of a stream read at `version`, `NoStream` when it had no events.
pub fn expected(version: Option<u64>) -> ExpectedVersion {
    version.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact)
}

/// Encodes `events` for `org_id` with `metadata`.
pub fn encode<E: TypedEvent>(
    events: &[E],
    org_id: Uuid,
    metadata: &Metadata,
) -> Result<Vec<NewEvent>, ApiError> {
    events
        .iter()
        .map(|event| {
            event
                .to_new_event(org_id)
                .map(|e| e.with_metadata(metadata.clone()))
                .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("encoding an event")))
        })
        .collect()
}

/// `A` after `recorded` (other event types skipped).
fn fold<A: Aggregate>(recorded: &[RecordedEvent]) -> Result<A, ApiError> {
    let upcasters = Upcasters::default();
    let mut state = A::default();
    for event in recorded {
        let decoded = A::Event::decode(event, &upcasters)
            .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("decoding an event")))?;
        if let Some(decoded) = decoded {
            state = state.evolve(&decoded);
        }
    }
    Ok(state)
}

/// A whole stream of `A`'s events, folded, with the version it was read at.
pub async fn load<A: Aggregate>(
    store: &dyn EventStore,
    stream: &str,
) -> Result<(A, Option<u64>), ApiError> {
    folded(&read_whole(store, stream).await?)
}

/// [`load`] on behalf of `org_id`: a stream holding another organisation's events is not there
/// for it (404), whatever id led to it.
async fn load_in<A: Aggregate>(
    store: &dyn EventStore,
    stream: &str,
    org_id: Uuid,
) -> Result<(A, Option<u64>), ApiError> {
    let recorded = read_whole(store, stream).await?;
    if recorded.iter().any(|e| e.org_id != org_id) {
        return Err(ApiError::NotFound("No such record.".into()));
    }
    folded(&recorded)
}

/// `A` after the whole stream `recorded`, and the version it ends at.
fn folded<A: Aggregate>(recorded: &[RecordedEvent]) -> Result<(A, Option<u64>), ApiError> {
    let version = recorded.last().map(|e| e.version);
    Ok((fold(recorded)?, version))
}

async fn read_whole(store: &dyn EventStore, stream: &str) -> Result<Vec<RecordedEvent>, ApiError> {
    store
        .read_stream(stream, None, Direction::Forwards, usize::MAX)
        .await
        .map_err(|e| store_error(e, "reading a stream"))
}

/// A stream whose events carry sealed personal fields, opened with their subject's key (fields
/// of an erased subject read as erased), folded; with its version and the organisation its
/// first event belongs to.
pub async fn load_opened<A: Aggregate>(
    store: &dyn EventStore,
    keys: &DataKeys,
    stream: &str,
) -> Result<(A, Option<u64>, Option<Uuid>), ApiError> {
    let mut recorded = read_whole(store, stream).await?;
    let version = recorded.last().map(|e| e.version);
    let org_id = recorded.first().map(|e| e.org_id);
    // One key query for the whole stream.
    keys.open_events(&mut recorded).await.map_err(|e| match e {
        DataKeyError::Database(error) => crate::db_error(error, "reading a data key"),
        other => ApiError::Internal(anyhow::Error::new(other).context("opening events")),
    })?;
    Ok((fold(&recorded)?, version, org_id))
}

/// Loads `stream`, decides `command` and appends what it decided, again when another writer got
/// there first. Domain errors become API errors through `rejected`; a stream of another
/// organisation than `org_id` is not found.
pub async fn execute<A>(
    store: &dyn EventStore,
    stream: &str,
    org_id: Uuid,
    command: A::Command,
    metadata: &Metadata,
    rejected: impl Fn(A::Error) -> ApiError,
) -> Result<Decided<A::Event>, ApiError>
where
    A: Aggregate,
    A::Command: Clone,
{
    for _ in 0..MAX_ATTEMPTS {
        let (state, version) = load_in::<A>(store, stream, org_id).await?;
        let events = state.decide(command.clone()).map_err(&rejected)?;
        if events.is_empty() {
            return Ok(Decided {
                events,
                position: None,
            });
        }
        let encoded = encode(&events, org_id, metadata)?;
        match store.append(stream, expected(version), encoded).await {
            Ok(result) => {
                return Ok(Decided {
                    events,
                    position: Some(result.position),
                });
            }
            Err(StoreError::WrongExpectedVersion { .. }) => continue,
            Err(error) => return Err(store_error(error, "appending a decision")),
        }
    }
    Err(ApiError::Conflict(
        "The record changed concurrently too often; try again.".into(),
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use domain::organisation::{Organisation, OrganisationCommand};
    use event_store::memory::MemoryEventStore;
    use events::Email;
    use events::organisation::stream;

    use super::*;

    fn rejected(error: impl std::fmt::Display) -> ApiError {
        ApiError::Conflict(error.to_string())
    }

    #[tokio::test]
    async fn a_stream_of_another_organisation_is_not_found_and_not_written() {
        let store: Arc<dyn EventStore> = Arc::new(MemoryEventStore::new());
        let (theirs, ours) = (Uuid::now_v7(), Uuid::now_v7());
        let create = OrganisationCommand::Create {
            organisation_id: theirs,
            name: "Theirs".into(),
            creator: Uuid::now_v7(),
            creator_email: Email::parse("ada@example.com").expect("a valid email"),
        };
        let metadata = Metadata::default();
        let stream = stream(theirs);
        execute::<Organisation>(&*store, &stream, theirs, create, &metadata, rejected)
            .await
            .expect("their organisation is created");

        let rename = OrganisationCommand::Rename {
            name: "Ours now".into(),
        };
        let answer =
            execute::<Organisation>(&*store, &stream, ours, rename.clone(), &metadata, rejected)
                .await;
        assert!(matches!(answer, Err(ApiError::NotFound(_))), "{answer:?}");
        let (after, version) = load::<Organisation>(&*store, &stream).await.expect("load");
        assert_eq!(after.name, "Theirs");
        let appended = version.expect("their stream");

        // Their own writes still go through.
        execute::<Organisation>(&*store, &stream, theirs, rename, &metadata, rejected)
            .await
            .expect("they rename it");
        let (after, version) = load::<Organisation>(&*store, &stream).await.expect("load");
        assert_eq!(after.name, "Ours now");
        assert!(version > Some(appended));
    }
}
