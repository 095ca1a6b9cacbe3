//! Contact groups: named sets of an organisation's contacts, one stream `group-<id>` each. The
//! events' `org_id` is the organisation the group belongs to.
//!
//! Nothing here is personal data: a group holds contact ids, never what they identify.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::TypedEvent;

/// The stream of one group.
pub fn stream(group_id: Uuid) -> String {
    format!("group-{group_id}")
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum GroupEvent {
    GroupCreated {
        group_id: Uuid,
        name: String,
        description: Option<String>,
        /// `#rrggbb`, lowercase.
        colour: Option<String>,
    },
    /// The name, description and colour after the change, all of them.
    GroupUpdated {
        name: String,
        description: Option<String>,
        colour: Option<String>,
    },
    /// The group is gone, and its members with it; it cannot come back.
    GroupDeleted {},
    /// Only contacts that were not members, sorted.
    ContactsAdded { contact_ids: Vec<Uuid> },
    /// Only contacts that were members, sorted.
    ContactsRemoved { contact_ids: Vec<Uuid> },
}

impl TypedEvent for GroupEvent {
    const EVENT_TYPES: &'static [&'static str] = &[
        "GroupCreated",
        "GroupUpdated",
        "GroupDeleted",
        "ContactsAdded",
        "ContactsRemoved",
    ];
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_event_type_is_listed_and_round_trips() {
        let all = [
            GroupEvent::GroupCreated {
                group_id: Uuid::nil(),
                name: "VIP".into(),
                description: None,
                colour: Some("#ff8800".into()),
            },
            GroupEvent::GroupUpdated {
                name: "VIP".into(),
                description: Some("Our best".into()),
                colour: None,
            },
            GroupEvent::GroupDeleted {},
            GroupEvent::ContactsAdded {
                contact_ids: vec![Uuid::from_u128(1)],
            },
            GroupEvent::ContactsRemoved {
                contact_ids: vec![Uuid::from_u128(1)],
            },
        ];
        let mut types = Vec::new();
        for event in &all {
            let (event_type, data) = event.encode().expect("encodes");
            let back: GroupEvent =
                serde_json::from_value(json!({"type": event_type, "data": data})).expect("decodes");
            assert_eq!(&back, event);
            types.push(event_type);
        }
        types.sort();
        let mut listed = GroupEvent::EVENT_TYPES.to_vec();
        listed.sort_unstable();
        assert_eq!(types, listed);
        assert_eq!(
            GroupEvent::GroupDeleted {}.encode().expect("encodes").1,
            json!({})
        );
        assert_eq!(stream(Uuid::nil()), format!("group-{}", Uuid::nil()));
    }
}
