//! Dispatch jobs: what the relay publishes for a dispatch-relevant event and what a worker
//! consumes. The job points at the event in the log; the worker re-reads the stream, so a job
//! never carries state that could go stale.

use events::probe::ProbeEvent;
use events::{Position, RecordedEvent, TypedEvent, Upcasters};
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The header counting how many retry tiers a job has been through.
pub const ATTEMPT_HEADER: &str = "x-corbi-attempt";
/// The header carrying the last failure of a retried or parked job.
pub const ERROR_HEADER: &str = "x-corbi-error";

/// One unit of dispatch work, the JSON body of a RabbitMQ message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// The event that asked for the work; also the message id.
    pub event_id: Uuid,
    pub stream: String,
    pub org_id: Uuid,
    /// The requesting event's type; workers pick their handler by it.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The queue the job runs on.
    pub channel: String,
    pub position: Position,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

/// Why an event that should become a job cannot.
#[derive(Debug, thiserror::Error)]
pub enum JobMappingError {
    #[error("event {event_id} cannot be decoded: {reason}")]
    Undecodable { event_id: Uuid, reason: String },
}

impl Job {
    /// The event types [`Job::from_event`] makes jobs of: the relay reads only these.
    pub const EVENT_TYPES: &'static [&'static str] = &["DispatchProbeRequested"];

    /// The job for `event`, if the event asks for dispatch work. The channel is not checked
    /// against the topology here; the relay does that.
    pub fn from_event(event: &RecordedEvent) -> Result<Option<Job>, JobMappingError> {
        // The one gate, so that a type mapped below but missing from the list fails its tests
        // here instead of going unread by the relay.
        if !Self::EVENT_TYPES.contains(&event.event_type.as_str()) {
            return Ok(None);
        }
        let channel = match event.event_type.as_str() {
            "DispatchProbeRequested" => match ProbeEvent::decode(event, &Upcasters::default()) {
                Ok(Some(ProbeEvent::DispatchProbeRequested { channel, .. })) => channel,
                Ok(_) => return Ok(None),
                Err(error) => {
                    return Err(JobMappingError::Undecodable {
                        event_id: event.event_id,
                        reason: error.to_string(),
                    });
                }
            },
            _ => return Ok(None),
        };
        Ok(Some(Job {
            event_id: event.event_id,
            stream: event.stream.clone(),
            org_id: event.org_id,
            event_type: event.event_type.clone(),
            channel,
            position: event.position,
            correlation_id: event.metadata.correlation_id,
            causation_id: event.metadata.causation_id,
            trace_id: event.metadata.trace_id.clone(),
        }))
    }

    /// The message properties: persistent, JSON, message id = event id, so consumers (and
    /// RabbitMQ tooling) can tell a re-published duplicate.
    pub fn properties(&self) -> BasicProperties {
        let mut properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_message_id(self.event_id.to_string().into())
            .with_type(self.event_type.as_str().into())
            .with_app_id("corbi-dispatcher".into());
        if let Some(correlation_id) = self.correlation_id {
            properties = properties.with_correlation_id(correlation_id.to_string().into());
        }
        properties
    }
}

/// How many retry tiers the message has been through (0 for a first delivery).
pub fn attempt(properties: &BasicProperties) -> usize {
    let Some(headers) = properties.headers() else {
        return 0;
    };
    match headers.inner().get(ATTEMPT_HEADER) {
        Some(AMQPValue::LongLongInt(n)) => usize::try_from(*n).unwrap_or(0),
        Some(AMQPValue::LongInt(n)) => usize::try_from(*n).unwrap_or(0),
        _ => 0,
    }
}

/// `properties` with the attempt counter and the last error set.
pub fn with_attempt(properties: &BasicProperties, attempt: usize, error: &str) -> BasicProperties {
    let mut headers = properties.headers().clone().unwrap_or_default();
    headers.insert(
        ATTEMPT_HEADER.into(),
        AMQPValue::LongLongInt(i64::try_from(attempt).unwrap_or(i64::MAX)),
    );
    headers.insert(
        ERROR_HEADER.into(),
        AMQPValue::LongString(truncate(error).into()),
    );
    properties.clone().with_headers(headers)
}

/// `properties` with the reason a job was parked.
pub fn with_error(properties: &BasicProperties, error: &str) -> BasicProperties {
    let mut headers: FieldTable = properties.headers().clone().unwrap_or_default();
    headers.insert(
        ERROR_HEADER.into(),
        AMQPValue::LongString(truncate(error).into()),
    );
    properties.clone().with_headers(headers)
}

fn truncate(text: &str) -> &str {
    const MAX: usize = 1_000;
    if text.len() <= MAX {
        return text;
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use events::Metadata;
    use serde_json::json;

    use super::*;

    fn recorded(event_type: &str, data: serde_json::Value) -> RecordedEvent {
        RecordedEvent {
            event_id: Uuid::now_v7(),
            stream: "probe-1".into(),
            version: 0,
            position: Position::new(3, 4),
            event_type: event_type.into(),
            schema_version: 1,
            org_id: Uuid::now_v7(),
            data,
            metadata: Metadata {
                correlation_id: Some(Uuid::nil()),
                ..Metadata::default()
            },
            recorded_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn a_probe_request_becomes_a_job_on_its_channel() {
        let event = recorded(
            "DispatchProbeRequested",
            json!({"probe_id": Uuid::nil(), "channel": "test"}),
        );
        let job = Job::from_event(&event).expect("maps").expect("is a job");
        assert_eq!(job.channel, "test");
        assert_eq!(job.event_id, event.event_id);
        assert_eq!(job.correlation_id, Some(Uuid::nil()));
        let body = serde_json::to_value(&job).expect("serializes");
        assert_eq!(body["type"], "DispatchProbeRequested");
        assert_eq!(body["position"], "3.4");
        let back: Job = serde_json::from_value(body).expect("deserializes");
        assert_eq!(back, job);
    }

    #[test]
    fn other_events_are_not_jobs_and_bad_data_is_an_error() {
        let other = recorded("ContactCreated", json!({}));
        assert!(Job::from_event(&other).expect("maps").is_none());
        let done = recorded(
            "DispatchProbeCompleted",
            json!({"probe_id": Uuid::nil(), "worker": "w"}),
        );
        assert!(Job::from_event(&done).expect("maps").is_none());
        let bad = recorded("DispatchProbeRequested", json!({"channel": 3}));
        assert!(Job::from_event(&bad).is_err());
    }

    #[test]
    fn the_attempt_counter_travels_in_a_header() {
        let properties = BasicProperties::default();
        assert_eq!(attempt(&properties), 0);
        let retried = with_attempt(&properties, 2, "timeout");
        assert_eq!(attempt(&retried), 2);
        assert_eq!(truncate(&"é".repeat(600)).len(), 1_000);
    }
}
