//! Identifiers unique within an organisation (DESIGN §3): a contact's new email, phone or chat
//! id is claimed in its reservation stream in the same `append_to_streams` as the contact's own
//! events, and a dropped one is released there, so two contacts can never hold one identifier,
//! however their writes interleave.

use std::collections::HashMap;

use domain::Aggregate;
use domain::reservation::{Reservation, ReservationCommand, ReservationError};
use event_store::{AppendResult, EventStore, ExpectedVersion, StoreError, StreamAppend};
use events::reservation::{self, ReservationEvent, Scope};
use events::{Metadata, NewEvent};
use uuid::Uuid;

use crate::aggregate::{self, MAX_ATTEMPTS, encode, expected};

/// One identifier of an owner changing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityChange {
    /// The reservation kind (`email`, `whatsapp`…), part of the reservation stream name.
    pub kind: &'static str,
    /// The request field it came from, for error answers.
    pub field: &'static str,
    /// The normalised identifier held until now, if any.
    pub old: Option<String>,
    /// The normalised identifier wanted from now on, if any.
    pub new: Option<String>,
}

/// Why identifiers could not be written.
#[derive(Debug)]
pub enum IdentityError {
    /// `holder` holds the identifier of `field`.
    Taken {
        field: &'static str,
        holder: Uuid,
    },
    /// The owner's own stream moved on: decide again.
    OwnerMoved,
    Store(StoreError),
    Api(service::ApiError),
}

impl From<service::ApiError> for IdentityError {
    fn from(error: service::ApiError) -> Self {
        IdentityError::Api(error)
    }
}

/// The write the identifiers go with: events for the owner's own stream.
pub struct OwnerWrite<'a> {
    pub org_id: Uuid,
    pub owner: Uuid,
    pub stream: &'a str,
    pub expected: ExpectedVersion,
    pub events: Vec<NewEvent>,
}

/// Appends the owner's events with the reservations `changes` need, all at once. Reservation
/// streams that moved meanwhile are re-read and tried again; an owner stream that moved is the
/// caller's to re-decide.
pub async fn append_with_identities(
    store: &dyn EventStore,
    write: OwnerWrite<'_>,
    changes: &[IdentityChange],
    metadata: &Metadata,
) -> Result<AppendResult, IdentityError> {
    let OwnerWrite {
        org_id,
        owner,
        stream: owner_stream,
        expected: owner_expected,
        events: owner_events,
    } = write;
    // What is known of each reservation stream. A new identifier is claimed on the guess that
    // nobody has it (no read: the append's `NoStream` checks it); a wrong guess costs one read.
    let mut known: HashMap<String, (Reservation, Option<u64>)> = HashMap::new();
    let mut reservation_streams = Vec::new();
    let mut claimed = Vec::new();
    for _ in 0..MAX_ATTEMPTS {
        let mut appends = Vec::new();
        reservation_streams.clear();
        claimed.clear();
        for change in changes.iter().filter(|c| c.old != c.new) {
            let scope = Scope::Contact {
                org_id,
                kind: change.kind,
            };
            if let Some(new) = &change.new {
                let stream = reservation::stream(&scope, new);
                let (held, version) = known.get(&stream).copied().unwrap_or_default();
                let claim = held.decide(ReservationCommand::Reserve { owner }).map_err(
                    |ReservationError::Taken { holder }| IdentityError::Taken {
                        field: change.field,
                        holder,
                    },
                )?;
                if !claim.is_empty() {
                    reservation_streams.push(stream.clone());
                    claimed.push(stream.clone());
                    appends.push(StreamAppend::new(
                        stream,
                        expected(version),
                        encode(&claim, org_id, metadata)?,
                    ));
                }
            }
            if let Some(old) = &change.old {
                let stream = reservation::stream(&scope, old);
                let (held, version) = match known.get(&stream) {
                    Some(state) => *state,
                    None => {
                        let state = aggregate::load::<Reservation>(store, &stream).await?;
                        known.insert(stream.clone(), state);
                        state
                    }
                };
                let release = held
                    .decide(ReservationCommand::Release { owner })
                    .unwrap_or_default();
                if !release.is_empty() {
                    reservation_streams.push(stream.clone());
                    appends.push(StreamAppend::new(
                        stream,
                        expected(version),
                        encode(&release, org_id, metadata)?,
                    ));
                }
            }
        }
        // The owner's events go last: on a store without cross-stream transactions a failure
        // then leaves at most claims, which are released below.
        appends.push(StreamAppend::new(
            owner_stream,
            owner_expected,
            owner_events.clone(),
        ));
        match store.append_to_streams(appends).await {
            Ok(mut results) => {
                return results.pop().ok_or_else(|| {
                    IdentityError::Api(service::ApiError::Internal(anyhow::anyhow!(
                        "an append answered no results"
                    )))
                });
            }
            Err(StoreError::WrongExpectedVersion { stream, .. })
                if reservation_streams.contains(&stream) =>
            {
                let state = aggregate::load::<Reservation>(store, &stream).await?;
                known.insert(stream, state);
            }
            Err(StoreError::WrongExpectedVersion { .. }) => return Err(IdentityError::OwnerMoved),
            Err(StoreError::PartlyAppended { appended, failure }) => {
                let ours: Vec<_> = appended
                    .iter()
                    .filter(|(stream, _)| claimed.contains(stream))
                    .collect();
                release_claims(store, org_id, owner, &ours, metadata).await;
                // What was released moved on too: read everything again.
                known.clear();
                match *failure {
                    StoreError::WrongExpectedVersion { stream, .. }
                        if reservation_streams.contains(&stream) =>
                    {
                        let state = aggregate::load::<Reservation>(store, &stream).await?;
                        known.insert(stream, state);
                    }
                    StoreError::WrongExpectedVersion { stream, .. } if stream == owner_stream => {
                        return Err(IdentityError::OwnerMoved);
                    }
                    other => return Err(IdentityError::Store(other)),
                }
            }
            Err(error) => return Err(IdentityError::Store(error)),
        }
    }
    Err(IdentityError::Api(service::ApiError::Conflict(
        "The identifiers changed hands concurrently too often; try again.".into(),
    )))
}

/// Gives back claims a partial append left behind (KurrentDB), so a failed write holds nothing.
async fn release_claims(
    store: &dyn EventStore,
    org_id: Uuid,
    owner: Uuid,
    claims: &[&(String, AppendResult)],
    metadata: &Metadata,
) {
    for (stream, result) in claims {
        let release = ReservationEvent::Released { owner };
        let Ok(events) = encode(&[release], org_id, metadata) else {
            continue;
        };
        let expected = ExpectedVersion::Exact(result.last_version);
        if let Err(error) = store.append(stream, expected, events).await {
            tracing::error!(%stream, %error, "could not release a reservation of a failed write");
        }
    }
}
