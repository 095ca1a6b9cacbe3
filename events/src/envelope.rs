use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Position;

/// Who caused an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Actor {
    User { id: Uuid },
    ApiKey { id: Uuid },
    Provider { name: String },
    System { name: String },
}

impl Actor {
    /// The actor as two filterable columns: its kind and its id (a UUID, or a provider's or
    /// system component's name).
    pub fn columns(&self) -> (&'static str, Option<String>) {
        match self {
            Actor::User { id } => ("user", Some(id.to_string())),
            Actor::ApiKey { id } => ("api_key", Some(id.to_string())),
            Actor::Provider { name } => ("provider", Some(name.clone())),
            Actor::System { name } => ("system", Some(name.clone())),
        }
    }
}

impl Default for Actor {
    fn default() -> Self {
        Actor::System {
            name: "corbi".into(),
        }
    }
}

/// What the log records about an event besides its data.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<Uuid>,
    #[serde(default)]
    pub actor: Actor,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// The address the request came from, for the audit trail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// The person whose data key seals the event's personal fields (`events::personal`), e.g.
    /// the contact it is about; erasing that key makes those fields unreadable for good.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Uuid>,
}

/// An event about to be appended.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// Deterministic where a retry must dedupe (UUIDv5 of the idempotency key), random otherwise.
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: u32,
    pub org_id: Uuid,
    pub data: serde_json::Value,
    pub metadata: Metadata,
}

impl NewEvent {
    /// An event with a fresh time-ordered id and default metadata.
    pub fn new(org_id: Uuid, event_type: impl Into<String>, data: serde_json::Value) -> Self {
        Self {
            event_id: Uuid::now_v7(),
            event_type: event_type.into(),
            schema_version: 1,
            org_id,
            data,
            metadata: Metadata::default(),
        }
    }

    pub fn with_id(mut self, event_id: Uuid) -> Self {
        self.event_id = event_id;
        self
    }

    pub fn with_metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = metadata;
        self
    }

    pub fn with_schema_version(mut self, schema_version: u32) -> Self {
        self.schema_version = schema_version;
        self
    }
}

/// An event as the log holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedEvent {
    pub event_id: Uuid,
    pub stream: String,
    /// 0-based position of the event in its stream.
    pub version: u64,
    pub position: Position,
    pub event_type: String,
    pub schema_version: u32,
    pub org_id: Uuid,
    pub data: serde_json::Value,
    pub metadata: Metadata,
    pub recorded_at: DateTime<Utc>,
}

impl RecordedEvent {
    /// The stream's category: `contact` for `contact-0190…`.
    pub fn category(&self) -> &str {
        stream_category(&self.stream)
    }
}

/// The category of a stream named `<category>-<id>`; the whole name when it has no dash.
pub fn stream_category(stream: &str) -> &str {
    stream
        .split_once('-')
        .map_or(stream, |(category, _)| category)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn category_is_the_part_before_the_first_dash() {
        assert_eq!(stream_category("contact-0190-aa"), "contact");
        assert_eq!(stream_category("identity-org-email-x"), "identity");
        assert_eq!(stream_category("orphan"), "orphan");
    }

    #[test]
    fn metadata_reads_what_older_writers_left_out() {
        let m: Metadata = serde_json::from_str("{}").expect("empty metadata parses");
        assert_eq!(m, Metadata::default());
        let m: Metadata = serde_json::from_value(serde_json::json!({
            "actor": {"kind": "user", "id": "00000000-0000-0000-0000-000000000001"},
            "trace_id": "abc"
        }))
        .expect("metadata parses");
        assert_eq!(m.trace_id.as_deref(), Some("abc"));
        assert!(matches!(m.actor, Actor::User { .. }));
    }
}
