use serde::Serialize;
use serde::de::DeserializeOwned;
use serde::de::value::MapDeserializer;
use serde_json::Value;
use uuid::Uuid;

use crate::{NewEvent, RecordedEvent, Upcasters};

/// An aggregate's event enum, serialized adjacently tagged:
/// `#[serde(tag = "type", content = "data")]`. The tag is the event type in the log and the
/// content its data, so one derive gives both the type name and the payload.
pub trait TypedEvent: Serialize + DeserializeOwned {
    /// Every event type this enum knows, as written in the log.
    const EVENT_TYPES: &'static [&'static str];

    /// The current schema version of `event_type`; bump it together with an upcaster.
    fn schema_version(_event_type: &str) -> u32 {
        1
    }

    /// The event's type name and its data, as appended.
    fn encode(&self) -> Result<(String, Value), DecodeError> {
        let tagged = serde_json::to_value(self).map_err(DecodeError::Json)?;
        let Value::Object(mut fields) = tagged else {
            return Err(DecodeError::NotAdjacentlyTagged);
        };
        let Some(Value::String(event_type)) = fields.remove("type") else {
            return Err(DecodeError::NotAdjacentlyTagged);
        };
        let data = fields.remove("data").unwrap_or(Value::Null);
        Ok((event_type, data))
    }

    /// A [`NewEvent`] carrying this event, with a fresh id.
    fn to_new_event(&self, org_id: Uuid) -> Result<NewEvent, DecodeError> {
        let (event_type, data) = self.encode()?;
        let version = Self::schema_version(&event_type);
        Ok(NewEvent::new(org_id, event_type, data).with_schema_version(version))
    }

    /// Decodes a recorded event, upcasting old schema versions first. `Ok(None)` for event types
    /// this enum does not know, which readers skip.
    fn decode(event: &RecordedEvent, upcasters: &Upcasters) -> Result<Option<Self>, DecodeError> {
        if !Self::EVENT_TYPES.contains(&event.event_type.as_str()) {
            return Ok(None);
        }
        let target = Self::schema_version(&event.event_type);
        // Current data is read where it lies; only older schema versions are copied to upcast.
        let upcast;
        let data = if event.schema_version == target {
            &event.data
        } else {
            upcast = upcasters
                .upcast(
                    &event.event_type,
                    event.schema_version,
                    target,
                    event.data.clone(),
                )
                .map_err(DecodeError::Upcast)?;
            &upcast
        };
        // The tag first, so that the enum reads its data knowing the variant instead of
        // buffering it as it would if the data came first (as a JSON object's sorted keys have it).
        let tag = Value::String(event.event_type.clone());
        let tagged = MapDeserializer::<_, serde_json::Error>::new(
            [("type", &tag), ("data", data)].into_iter(),
        );
        Self::deserialize(tagged)
            .map(Some)
            .map_err(DecodeError::Json)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("event enum must be serialized adjacently tagged (tag = \"type\", content = \"data\")")]
    NotAdjacentlyTagged,
    #[error("event data does not match its type: {0}")]
    Json(#[source] serde_json::Error),
    #[error(transparent)]
    Upcast(#[from] crate::UpcastError),
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;
    use crate::{Metadata, Position};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "type", content = "data")]
    enum Thing {
        ThingNamed { name: String },
        ThingRemoved,
    }

    impl TypedEvent for Thing {
        const EVENT_TYPES: &'static [&'static str] = &["ThingNamed", "ThingRemoved"];

        fn schema_version(event_type: &str) -> u32 {
            if event_type == "ThingNamed" { 2 } else { 1 }
        }
    }

    fn recorded(event_type: &str, schema_version: u32, data: Value) -> RecordedEvent {
        RecordedEvent {
            event_id: Uuid::nil(),
            stream: "thing-1".into(),
            version: 0,
            position: Position::START,
            event_type: event_type.into(),
            schema_version,
            org_id: Uuid::nil(),
            data,
            metadata: Metadata::default(),
            recorded_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn encodes_type_and_data_and_decodes_back() {
        let event = Thing::ThingNamed { name: "a".into() };
        let new = event.to_new_event(Uuid::nil()).expect("encodes");
        assert_eq!(new.event_type, "ThingNamed");
        assert_eq!(new.schema_version, 2);
        assert_eq!(new.data, json!({"name": "a"}));
        let back = Thing::decode(&recorded("ThingNamed", 2, new.data), &Upcasters::default())
            .expect("decodes");
        assert_eq!(back, Some(event));
        let unit = Thing::ThingRemoved.encode().expect("encodes");
        assert_eq!(unit, ("ThingRemoved".to_string(), Value::Null));
        let back = Thing::decode(&recorded("ThingRemoved", 1, unit.1), &Upcasters::default())
            .expect("decodes");
        assert_eq!(back, Some(Thing::ThingRemoved));
    }

    #[test]
    fn data_of_the_wrong_shape_is_an_error() {
        for data in [json!({"name": 5}), json!({}), json!("a"), Value::Null] {
            let event = recorded("ThingNamed", 2, data.clone());
            assert!(
                matches!(
                    Thing::decode(&event, &Upcasters::default()),
                    Err(DecodeError::Json(_))
                ),
                "{data}"
            );
        }
    }

    #[test]
    fn unknown_types_are_skipped_and_old_versions_upcast() {
        let none = Thing::decode(&recorded("Other", 1, json!({})), &Upcasters::default())
            .expect("unknown type is not an error");
        assert_eq!(none, None);

        let mut upcasters = Upcasters::default();
        upcasters.register("ThingNamed", 1, |mut data| {
            let title = data["title"].take();
            Ok(json!({ "name": title }))
        });
        let old = recorded("ThingNamed", 1, json!({"title": "b"}));
        assert_eq!(
            Thing::decode(&old, &upcasters).expect("upcasts"),
            Some(Thing::ThingNamed { name: "b".into() })
        );
        assert!(Thing::decode(&old, &Upcasters::default()).is_err());
    }
}
