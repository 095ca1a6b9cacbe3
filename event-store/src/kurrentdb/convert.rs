//! Between Corbi's types and KurrentDB's: expected versions, positions, the envelope of org id,
//! schema version and metadata in the custom metadata, errors, and the idempotency check over a
//! stream's tail.

use super::*;

pub(super) fn new_client(settings: &ClientSettings) -> Result<Client, StoreError> {
    let runtime = tokio::runtime::Handle::try_current().map_err(|e| {
        StoreError::Backend(format!("the KurrentDB client needs a tokio runtime: {e}"))
    })?;
    Client::with_runtime_handle(runtime, settings.clone())
        .map_err(|e| StoreError::Backend(format!("cannot build the KurrentDB client: {e}")))
}

/// The parse error without the connection string itself, which may hold a password.
pub(super) fn invalid_url(error: &ClientSettingsParseError) -> StoreError {
    let reason = match error.error() {
        Some(url_error) => url_error.to_string(),
        None => error.message().to_owned(),
    };
    StoreError::Backend(format!(
        "KURRENTDB_URL is not a valid KurrentDB connection string: {reason}"
    ))
}

/// Transport trouble is transient ([`StoreError::Unavailable`]); anything the server decided
/// is not.
pub(super) fn store_error(error: &kurrentdb::Error) -> StoreError {
    // gRPC status codes worth a retry: CANCELLED, RESOURCE_EXHAUSTED, ABORTED, UNAVAILABLE.
    const TRANSIENT_CODES: [i32; 4] = [1, 8, 10, 14];
    match error {
        kurrentdb::Error::ConnectionClosed
        | kurrentdb::Error::GrpcConnectionError(_)
        | kurrentdb::Error::ServerError(_)
        | kurrentdb::Error::NotLeaderException(_)
        | kurrentdb::Error::DeadlineExceeded => StoreError::Unavailable(error.to_string()),
        kurrentdb::Error::Grpc { code, .. } if TRANSIENT_CODES.contains(&i32::from(*code)) => {
            StoreError::Unavailable(error.to_string())
        }
        kurrentdb::Error::AccessDenied => StoreError::Backend(
            "KurrentDB denied access: the connection string needs a user allowed to read $all \
             and write the streams"
                .into(),
        ),
        _ => StoreError::Backend(format!("KurrentDB: {error}")),
    }
}

pub(super) fn stream_state(expected: ExpectedVersion) -> StreamState {
    match expected {
        ExpectedVersion::Any => StreamState::Any,
        ExpectedVersion::NoStream => StreamState::NoStream,
        ExpectedVersion::StreamExists => StreamState::StreamExists,
        ExpectedVersion::Exact(version) => StreamState::StreamRevision(version),
    }
}

pub(super) fn user_streams() -> SubscriptionFilter {
    SubscriptionFilter::on_stream_name().regex(USER_STREAMS)
}

pub(super) fn is_system(event: &StoredEvent) -> bool {
    event.event_type.starts_with('$') || event.stream_id().starts_with('$')
}

/// `$` names belong to KurrentDB; events under them would never be read back by `read_all`.
/// A batch naming one id twice would be stored twice by KurrentDB.
pub(super) fn check_names(stream: &str, events: &[NewEvent]) -> Result<(), StoreError> {
    if stream.is_empty() || stream.starts_with('$') {
        return Err(StoreError::Backend(
            "stream names may not be empty or start with `$` (reserved by KurrentDB)".into(),
        ));
    }
    if events.iter().any(|e| e.event_type.starts_with('$')) {
        return Err(StoreError::Backend(
            "event types may not start with `$` (reserved by KurrentDB)".into(),
        ));
    }
    let mut ids = HashSet::with_capacity(events.len());
    match events.iter().find(|e| !ids.insert(e.event_id)) {
        Some(twice) => Err(StoreError::DuplicateEventId {
            event_id: twice.event_id,
        }),
        None => Ok(()),
    }
}

pub(super) fn position(position: kurrentdb::Position) -> Position {
    Position::new(position.commit, position.prepare)
}

pub(super) fn kurrent_position(position: Position) -> kurrentdb::Position {
    kurrentdb::Position {
        commit: position.commit,
        prepare: position.prepare,
    }
}

/// The event itself; with link resolution off, a link is returned as the link record.
pub(super) fn recorded(resolved: ResolvedEvent) -> Option<StoredEvent> {
    resolved.event.or(resolved.link)
}

pub(super) fn event_data(event: &NewEvent) -> Result<EventData, StoreError> {
    let unserializable = |e: serde_json::Error| {
        StoreError::Backend(format!("event {} does not serialize: {e}", event.event_id))
    };
    let custom = envelope(event).map_err(unserializable)?;
    Ok(EventData::json(&event.event_type, &event.data)
        .and_then(|data| data.metadata_as_json(&custom))
        .map_err(unserializable)?
        .id(event.event_id))
}

/// What Corbi keeps in the custom metadata of a KurrentDB event.
pub(super) fn envelope(event: &NewEvent) -> Result<Value, serde_json::Error> {
    Ok(json!({
        "org_id": event.org_id,
        "schema_version": event.schema_version,
        "metadata": serde_json::to_value(&event.metadata)?,
    }))
}

/// Reads back what [`envelope`] wrote: org id, schema version, metadata.
pub(super) fn open_envelope(custom: &[u8]) -> Result<(Uuid, u32, Metadata), String> {
    let mut custom: serde_json::Map<String, Value> =
        serde_json::from_slice(custom).map_err(|e| format!("custom metadata: {e}"))?;
    let org_id = custom
        .get("org_id")
        .and_then(Value::as_str)
        .and_then(|id| Uuid::parse_str(id).ok())
        .ok_or("custom metadata: no org_id")?;
    let schema_version = custom
        .get("schema_version")
        .and_then(Value::as_u64)
        .and_then(|v| u32::try_from(v).ok())
        .ok_or("custom metadata: no schema_version")?;
    let metadata = match custom.remove("metadata") {
        Some(metadata) => {
            serde_json::from_value(metadata).map_err(|e| format!("custom metadata: {e}"))?
        }
        None => Metadata::default(),
    };
    Ok((org_id, schema_version, metadata))
}

pub(super) fn decode(event: StoredEvent) -> Result<RecordedEvent, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        event_id: event.id,
        reason,
    };
    let data = serde_json::from_slice(&event.data).map_err(|e| corrupt(format!("data: {e}")))?;
    let (org_id, schema_version, metadata) =
        open_envelope(&event.custom_metadata).map_err(corrupt)?;
    let recorded_at = event
        .metadata
        .get("created")
        .and_then(|ticks| ticks.parse().ok())
        .and_then(from_ticks)
        .unwrap_or(event.created);
    Ok(RecordedEvent {
        event_id: event.id,
        stream: event.stream_id().to_owned(),
        version: event.revision,
        position: position(event.position),
        event_type: event.event_type,
        schema_version,
        org_id,
        data,
        metadata,
        recorded_at,
    })
}

/// KurrentDB's `created`: 100 ns ticks since the Unix epoch. (The client's own `created` keeps
/// whole seconds only.)
pub(super) fn from_ticks(ticks: i64) -> Option<DateTime<Utc>> {
    const TICKS_PER_SECOND: i64 = 10_000_000;
    let nanos = u32::try_from(ticks.rem_euclid(TICKS_PER_SECOND) * 100).ok()?;
    DateTime::from_timestamp(ticks.div_euclid(TICKS_PER_SECOND), nanos)
}

/// [`find_original`] among raw events of one stream, decoding only those with our ids.
pub(super) fn original_among(
    stored: Vec<StoredEvent>,
    events: &[NewEvent],
) -> Result<Option<AppendResult>, StoreError> {
    let ids: HashSet<Uuid> = events.iter().map(|e| e.event_id).collect();
    let ours = stored
        .into_iter()
        .filter(|event| ids.contains(&event.id))
        .map(decode)
        .collect::<Result<Vec<_>, _>>()?;
    find_original(&ours, events)
}

/// Given the stored events of one stream that carry ids of `events`: the original result when
/// every event is there with the same type, org and data, `None` when none is, and
/// [`StoreError::DuplicateEventId`] for anything in between.
pub(super) fn find_original(
    stored: &[RecordedEvent],
    events: &[NewEvent],
) -> Result<Option<AppendResult>, StoreError> {
    let mut last: Option<&RecordedEvent> = None;
    let mut first_found = None;
    let mut missing = false;
    for event in events {
        let Some(found) = stored.iter().find(|s| s.event_id == event.event_id) else {
            missing = true;
            continue;
        };
        let same = found.event_type == event.event_type
            && found.org_id == event.org_id
            && found.data == event.data;
        if !same {
            return Err(StoreError::DuplicateEventId {
                event_id: event.event_id,
            });
        }
        first_found.get_or_insert(event.event_id);
        if last.is_none_or(|last| found.version > last.version) {
            last = Some(found);
        }
    }
    match (first_found, last) {
        (Some(event_id), _) if missing => Err(StoreError::DuplicateEventId { event_id }),
        (Some(_), Some(last)) => Ok(Some(AppendResult {
            last_version: last.version,
            position: last.position,
        })),
        _ => Ok(None),
    }
}
