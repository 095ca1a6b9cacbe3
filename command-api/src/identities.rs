//! Identifiers unique within an organisation (DESIGN §3): a contact's new email, phone or chat
//! id is claimed in its reservation stream in the same `append_to_streams` as the contacts' own
//! events, and a dropped one is released there, so two contacts can never hold one identifier,
//! however their writes interleave. One append may also hand an identifier from one contact to
//! another (release and claim in the same reservation stream).

use std::collections::{BTreeMap, HashMap};

use domain::Aggregate;
use domain::reservation::{Reservation, ReservationCommand, ReservationError};
use event_store::{AppendResult, EventStore, ExpectedVersion, StoreError, StreamAppend};
use events::contact::Identity;
use events::reservation::{self, ReservationEvent, Scope};
use events::{Metadata, NewEvent};
use uuid::Uuid;

use crate::aggregate::{self, MAX_ATTEMPTS, encode, expected};

/// One identifier of an owner changing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityChange {
    /// Whose identifier it is.
    pub owner: Uuid,
    /// Which identifier: its reservation kind names the stream, its field the error answer.
    pub identity: Identity,
    /// The normalised identifier held until now, if any.
    pub old: Option<String>,
    /// The normalised identifier wanted from now on, if any.
    pub new: Option<String>,
}

/// Why identifiers could not be written.
#[derive(Debug)]
pub enum IdentityError {
    /// `holder` holds `value`, the owner's `identity`.
    Taken {
        identity: Identity,
        value: String,
        holder: Uuid,
    },
    /// An owner's own stream moved on: decide again.
    OwnerMoved,
    Store(StoreError),
    Api(service::ApiError),
}

impl From<service::ApiError> for IdentityError {
    fn from(error: service::ApiError) -> Self {
        IdentityError::Api(error)
    }
}

/// The events of a stream written with the identifiers: an owner's own, or another aggregate's
/// that the same decision changes.
pub struct OwnerWrite<'a> {
    pub org_id: Uuid,
    pub stream: &'a str,
    pub expected: ExpectedVersion,
    pub events: Vec<NewEvent>,
}

/// One reservation stream's part of an attempt.
struct Pending {
    state: Reservation,
    version: Option<u64>,
    events: Vec<ReservationEvent>,
    /// Whether this attempt claims the value (released again should the append half fail).
    claims: bool,
}

/// Appends the owners' events with the reservations `changes` need, all at once: releases
/// first, then claims, so one identifier can pass between two owners. Reservation streams that
/// moved meanwhile are re-read and tried again; an owner stream that moved is the caller's to
/// re-decide ([`IdentityError::OwnerMoved`]).
pub async fn append_with_identities(
    store: &dyn EventStore,
    writes: Vec<OwnerWrite<'_>>,
    changes: &[IdentityChange],
    metadata: &Metadata,
) -> Result<Vec<AppendResult>, IdentityError> {
    let org_id = writes.first().map(|w| w.org_id).unwrap_or_default();
    let owner_streams: Vec<String> = writes.iter().map(|w| w.stream.to_owned()).collect();
    // What is known of each reservation stream. A new identifier is claimed on the guess that
    // nobody has it (no read: the append's `NoStream` checks it); a wrong guess costs one read.
    let mut known: HashMap<String, (Reservation, Option<u64>)> = HashMap::new();
    let changes: Vec<&IdentityChange> = changes.iter().filter(|c| c.old != c.new).collect();
    for _ in 0..MAX_ATTEMPTS {
        let mut pending: BTreeMap<String, Pending> = BTreeMap::new();
        for change in &changes {
            let Some(old) = &change.old else { continue };
            let stream = stream_of(org_id, change.identity, old);
            let (state, version) = match known.get(&stream) {
                Some(state) => *state,
                None => {
                    let state = aggregate::load::<Reservation>(store, &stream).await?;
                    known.insert(stream.clone(), state);
                    state
                }
            };
            let entry = pending.entry(stream).or_insert(Pending {
                state,
                version,
                events: Vec::new(),
                claims: false,
            });
            let release = entry
                .state
                .decide(ReservationCommand::Release {
                    owner: change.owner,
                })
                .unwrap_or_default();
            entry.state = release.iter().fold(entry.state, Reservation::evolve);
            entry.events.extend(release);
        }
        for change in &changes {
            let Some(new) = &change.new else { continue };
            let stream = stream_of(org_id, change.identity, new);
            let (state, version) = known.get(&stream).copied().unwrap_or_default();
            let entry = pending.entry(stream).or_insert(Pending {
                state,
                version,
                events: Vec::new(),
                claims: false,
            });
            let claim = entry
                .state
                .decide(ReservationCommand::Reserve {
                    owner: change.owner,
                })
                .map_err(|ReservationError::Taken { holder }| IdentityError::Taken {
                    identity: change.identity,
                    value: new.clone(),
                    holder,
                })?;
            entry.claims |= !claim.is_empty();
            entry.state = claim.iter().fold(entry.state, Reservation::evolve);
            entry.events.extend(claim);
        }
        let pending: BTreeMap<String, Pending> = pending
            .into_iter()
            .filter(|(_, p)| !p.events.is_empty())
            .collect();
        let mut appends = Vec::new();
        for (stream, part) in &pending {
            appends.push(StreamAppend::new(
                stream.clone(),
                expected(part.version),
                encode(&part.events, org_id, metadata)?,
            ));
        }
        // The owners' events go last: on a store without cross-stream transactions a failure
        // then leaves at most reservations, which are undone below.
        for write in &writes {
            appends.push(StreamAppend::new(
                write.stream,
                write.expected,
                write.events.clone(),
            ));
        }
        let failure = match store.append_to_streams(appends).await {
            Ok(results) => {
                let skip = results.len() - writes.len();
                return Ok(results.into_iter().skip(skip).collect());
            }
            Err(StoreError::PartlyAppended { appended, failure }) => {
                let claimed: Vec<_> = appended
                    .iter()
                    .filter(|(stream, _)| pending.get(stream).is_some_and(|p| p.claims))
                    .collect();
                release_claims(store, org_id, &changes, &claimed, metadata).await;
                // What was released moved on too: read everything again.
                known.clear();
                *failure
            }
            Err(error) => error,
        };
        match failure {
            StoreError::WrongExpectedVersion { stream, .. } if pending.contains_key(&stream) => {
                let state = aggregate::load::<Reservation>(store, &stream).await?;
                known.insert(stream, state);
            }
            StoreError::WrongExpectedVersion { stream, .. } if owner_streams.contains(&stream) => {
                return Err(IdentityError::OwnerMoved);
            }
            other => return Err(IdentityError::Store(other)),
        }
    }
    Err(IdentityError::Api(service::ApiError::Conflict(
        "The identifiers changed hands concurrently too often; try again.".into(),
    )))
}

fn stream_of(org_id: Uuid, identity: Identity, value: &str) -> String {
    let kind = identity.as_str();
    reservation::stream(&Scope::Contact { org_id, kind }, value)
}

/// Gives back claims a partial append left behind (KurrentDB), so a failed write holds nothing.
async fn release_claims(
    store: &dyn EventStore,
    org_id: Uuid,
    changes: &[&IdentityChange],
    claims: &[&(String, AppendResult)],
    metadata: &Metadata,
) {
    for (stream, result) in claims {
        let Some(change) = changes.iter().find(|c| {
            c.new
                .as_ref()
                .is_some_and(|v| stream_of(org_id, c.identity, v) == *stream)
        }) else {
            continue;
        };
        let release = ReservationEvent::Released {
            owner: change.owner,
        };
        let Ok(events) = encode(&[release], org_id, metadata) else {
            continue;
        };
        let expected = ExpectedVersion::Exact(result.last_version);
        if let Err(error) = store.append(stream, expected, events).await {
            tracing::error!(%stream, %error, "could not release a reservation of a failed write");
        }
    }
}
