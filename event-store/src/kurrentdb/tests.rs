use super::*;
use events::Actor;

fn new_event(n: u64) -> NewEvent {
    NewEvent::new(Uuid::now_v7(), "Tested", json!({ "n": n }))
}

fn stored(event: &NewEvent, version: u64) -> RecordedEvent {
    RecordedEvent {
        event_id: event.event_id,
        stream: "s-1".into(),
        version,
        position: Position::new(100 + version, 100 + version),
        event_type: event.event_type.clone(),
        schema_version: event.schema_version,
        org_id: event.org_id,
        data: event.data.clone(),
        metadata: event.metadata.clone(),
        recorded_at: Utc::now(),
    }
}

#[test]
fn a_full_retry_returns_the_original_result() {
    let batch = vec![new_event(0), new_event(1)];
    let tail = vec![stored(&batch[1], 6), stored(&batch[0], 5)];
    let original = find_original(&tail, &batch).expect("a retry");
    assert_eq!(
        original,
        Some(AppendResult {
            last_version: 6,
            position: Position::new(106, 106)
        })
    );
    assert_eq!(find_original(&[], &batch).expect("new"), None);
}

#[test]
fn changed_content_or_a_half_retry_is_a_duplicate() {
    let batch = vec![new_event(0), new_event(1)];
    let mut changed = stored(&batch[0], 0);
    changed.data = json!({"n": "else"});
    assert!(matches!(
        find_original(&[changed], &batch[..1]),
        Err(StoreError::DuplicateEventId { event_id }) if event_id == batch[0].event_id
    ));
    assert!(matches!(
        find_original(&[stored(&batch[1], 0)], &batch),
        Err(StoreError::DuplicateEventId { event_id }) if event_id == batch[1].event_id
    ));
}

#[test]
fn a_batch_naming_an_id_twice_or_a_system_name_is_refused() {
    let event = new_event(0);
    assert!(matches!(
        check_names("s-1", &[event.clone(), event.clone()]),
        Err(StoreError::DuplicateEventId { .. })
    ));
    assert!(check_names("$ce-s", std::slice::from_ref(&event)).is_err());
    let mut system = event.clone();
    system.event_type = "$metadata".into();
    assert!(check_names("s-1", &[system]).is_err());
    assert!(check_names("s-1", &[event]).is_ok());
}

#[test]
fn the_envelope_round_trips() {
    let event = new_event(0).with_schema_version(3).with_metadata(Metadata {
        correlation_id: Some(Uuid::now_v7()),
        causation_id: None,
        actor: Actor::Provider {
            name: "twilio".into(),
        },
        trace_id: Some("abc".into()),
        idempotency_key: Some("key-1".into()),
    });
    let custom = serde_json::to_vec(&envelope(&event).expect("serializes")).expect("bytes");
    let (org_id, schema_version, metadata) = open_envelope(&custom).expect("opens");
    assert_eq!(org_id, event.org_id);
    assert_eq!(schema_version, 3);
    assert_eq!(metadata, event.metadata);
    assert!(open_envelope(b"").is_err());
    assert!(open_envelope(br#"{"schema_version": 1}"#).is_err());
}

#[test]
fn created_ticks_keep_sub_second_precision() {
    let at = from_ticks(17_000_000_001_234_567).expect("in range");
    assert_eq!(at.timestamp(), 1_700_000_000);
    assert_eq!(at.timestamp_subsec_nanos(), 123_456_700);
    assert!(from_ticks(i64::MAX).is_some_and(|t| t.timestamp() > 0));
}

#[test]
fn expected_versions_map_to_stream_states() {
    assert_eq!(stream_state(ExpectedVersion::Any), StreamState::Any);
    assert_eq!(
        stream_state(ExpectedVersion::NoStream),
        StreamState::NoStream
    );
    assert_eq!(
        stream_state(ExpectedVersion::StreamExists),
        StreamState::StreamExists
    );
    assert_eq!(
        stream_state(ExpectedVersion::Exact(7)),
        StreamState::StreamRevision(7)
    );
}

#[test]
fn transport_failures_are_transient() {
    assert!(store_error(&kurrentdb::Error::ConnectionClosed).is_transient());
    assert!(store_error(&kurrentdb::Error::DeadlineExceeded).is_transient());
    assert!(!store_error(&kurrentdb::Error::AccessDenied).is_transient());
}
