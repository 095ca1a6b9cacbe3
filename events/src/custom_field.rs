//! Custom field definitions: the extra fields an organisation keeps on its contacts, all in one
//! stream per organisation, `custom_fields-<org_id>`, so keys stay unique without coordination.
//!
//! The stream's category is `custom_fields` (the part before the first dash), which is why the
//! name has an underscore. Contact values live in the contacts' own streams; removing a
//! definition hides them from reads and leaves them in the log.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::TypedEvent;

/// The stream of an organisation's custom field definitions.
pub fn stream(org_id: Uuid) -> String {
    format!("custom_fields-{org_id}")
}

/// What values a custom field accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    /// A string.
    Text,
    /// A JSON number.
    Number,
    /// A calendar date, `YYYY-MM-DD`.
    Date,
    Boolean,
    /// One of the field's options.
    Select,
    /// Distinct options, as an array.
    MultiSelect,
}

impl FieldKind {
    pub const ALL: [FieldKind; 6] = [
        FieldKind::Text,
        FieldKind::Number,
        FieldKind::Date,
        FieldKind::Boolean,
        FieldKind::Select,
        FieldKind::MultiSelect,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FieldKind::Text => "text",
            FieldKind::Number => "number",
            FieldKind::Date => "date",
            FieldKind::Boolean => "boolean",
            FieldKind::Select => "select",
            FieldKind::MultiSelect => "multi_select",
        }
    }

    /// Whether values are chosen from a list of options.
    pub fn has_options(self) -> bool {
        matches!(self, FieldKind::Select | FieldKind::MultiSelect)
    }
}

impl fmt::Display for FieldKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be one of text, number, date, boolean, select or multi_select")]
pub struct FieldKindError;

impl FromStr for FieldKind {
    type Err = FieldKindError;

    fn from_str(raw: &str) -> Result<FieldKind, FieldKindError> {
        FieldKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == raw)
            .ok_or(FieldKindError)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum CustomFieldEvent {
    FieldDefined {
        key: String,
        label: String,
        kind: FieldKind,
        required: bool,
        /// Empty unless the kind has options.
        #[serde(default)]
        options: Vec<String>,
        display_order: i32,
    },
    /// The definition after the change, all of it; the kind never changes.
    FieldChanged {
        key: String,
        label: String,
        required: bool,
        #[serde(default)]
        options: Vec<String>,
        display_order: i32,
    },
    FieldRemoved {
        key: String,
    },
}

impl TypedEvent for CustomFieldEvent {
    const EVENT_TYPES: &'static [&'static str] = &["FieldDefined", "FieldChanged", "FieldRemoved"];
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_event_type_is_listed_and_round_trips() {
        let all = [
            CustomFieldEvent::FieldDefined {
                key: "plan".into(),
                label: "Plan".into(),
                kind: FieldKind::MultiSelect,
                required: true,
                options: vec!["gold".into(), "silver".into()],
                display_order: 3,
            },
            CustomFieldEvent::FieldChanged {
                key: "plan".into(),
                label: "Plan".into(),
                required: false,
                options: vec!["gold".into()],
                display_order: 1,
            },
            CustomFieldEvent::FieldRemoved { key: "plan".into() },
        ];
        let mut types = Vec::new();
        for event in &all {
            let (event_type, data) = event.encode().expect("encodes");
            let back: CustomFieldEvent =
                serde_json::from_value(json!({"type": event_type, "data": data})).expect("decodes");
            assert_eq!(&back, event);
            types.push(event_type);
        }
        types.sort();
        let mut listed = CustomFieldEvent::EVENT_TYPES.to_vec();
        listed.sort_unstable();
        assert_eq!(types, listed);
        assert_eq!(all[0].encode().expect("encodes").1["kind"], "multi_select");
        assert_eq!(
            stream(Uuid::nil()),
            format!("custom_fields-{}", Uuid::nil())
        );
        assert_eq!(
            crate::stream_category(&stream(Uuid::nil())),
            "custom_fields"
        );
    }

    #[test]
    fn kinds_have_stable_names() {
        for kind in FieldKind::ALL {
            assert_eq!(kind.as_str().parse(), Ok(kind));
            assert_eq!(
                serde_json::to_value(kind).expect("serializes"),
                kind.as_str()
            );
        }
        assert_eq!("Text".parse::<FieldKind>(), Err(FieldKindError));
        assert!(FieldKind::Select.has_options() && FieldKind::MultiSelect.has_options());
        assert!(!FieldKind::Text.has_options());
    }
}
