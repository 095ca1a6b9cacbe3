//! Contacts: one person across channels (WhatsApp, email, Telegram, Instagram), one stream
//! `contact-<id>` each.
//!
//! Every personal value is a [`Personal`]: the command side seals it with the contact's data key
//! before appending, and once the contact is erased (the key destroyed) readers get
//! [`Personal::Erased`] instead. Status reasons, consent sources, tags and custom field keys are
//! not personal data and stay in the clear.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::TypedEvent;
use crate::personal::Personal;
use crate::values::{Email, InstagramId, PhoneE164, Tag, TelegramChatId};

/// The stream of one contact.
pub fn stream(contact_id: Uuid) -> String {
    format!("contact-{contact_id}")
}

/// A custom field's value; its definition (kept elsewhere) says which JSON shapes it accepts.
pub type CustomFieldValue = serde_json::Value;

/// Whether a contact may be messaged: only `active` ones are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContactStatus {
    #[default]
    Active,
    Blocked,
    Unsubscribed,
    /// Messages to the contact bounce (a dead email address or phone number).
    Bounced,
}

impl ContactStatus {
    pub const ALL: [ContactStatus; 4] = [
        ContactStatus::Active,
        ContactStatus::Blocked,
        ContactStatus::Unsubscribed,
        ContactStatus::Bounced,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ContactStatus::Active => "active",
            ContactStatus::Blocked => "blocked",
            ContactStatus::Unsubscribed => "unsubscribed",
            ContactStatus::Bounced => "bounced",
        }
    }
}

impl fmt::Display for ContactStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be one of active, blocked, unsubscribed or bounced")]
pub struct ContactStatusError;

impl FromStr for ContactStatus {
    type Err = ContactStatusError;

    fn from_str(raw: &str) -> Result<ContactStatus, ContactStatusError> {
        ContactStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == raw)
            .ok_or(ContactStatusError)
    }
}

/// The identifiers that find a contact, each unique within an organisation (the command side
/// reserves them: `events::reservation::Scope::Contact { kind: identity.as_str(), .. }`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Identity {
    Email,
    Whatsapp,
    Telegram,
    InstagramScoped,
    InstagramUser,
}

impl Identity {
    /// Its name as a request field and as a read-model column.
    pub fn field(self) -> &'static str {
        match self {
            Identity::Email => "email",
            Identity::Whatsapp => "whatsapp",
            Identity::Telegram => "telegram_chat_id",
            Identity::InstagramScoped => "instagram_scoped_id",
            Identity::InstagramUser => "instagram_user_id",
        }
    }

    pub const ALL: [Identity; 5] = [
        Identity::Email,
        Identity::Whatsapp,
        Identity::Telegram,
        Identity::InstagramScoped,
        Identity::InstagramUser,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Identity::Email => "email",
            Identity::Whatsapp => "whatsapp",
            Identity::Telegram => "telegram",
            Identity::InstagramScoped => "instagram_scoped",
            Identity::InstagramUser => "instagram_user",
        }
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Per-channel switches, independent of the contact's status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelFlags {
    pub whatsapp_blocked: bool,
    pub instagram_blocked: bool,
    /// The contact agreed to be messaged on Instagram beyond the standard reply window.
    pub instagram_opt_in: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum ContactEvent {
    /// A new contact: `active`, every channel flag off, no consent recorded.
    ContactCreated {
        contact_id: Uuid,
        full_name: Personal<String>,
        email: Option<Personal<Email>>,
        whatsapp: Option<Personal<PhoneE164>>,
        telegram_chat_id: Option<Personal<TelegramChatId>>,
        instagram_scoped_id: Option<Personal<InstagramId>>,
        instagram_user_id: Option<Personal<InstagramId>>,
        /// Sorted, without duplicates.
        #[serde(default)]
        tags: Vec<Tag>,
        notes: Option<Personal<String>>,
        #[serde(default)]
        custom_fields: BTreeMap<String, Personal<CustomFieldValue>>,
    },
    ContactRenamed {
        full_name: Personal<String>,
    },
    /// One identity per event (`None` removes it), so each maps to one reservation.
    EmailChanged {
        email: Option<Personal<Email>>,
    },
    WhatsappChanged {
        whatsapp: Option<Personal<PhoneE164>>,
    },
    TelegramChatIdChanged {
        telegram_chat_id: Option<Personal<TelegramChatId>>,
    },
    InstagramScopedIdChanged {
        instagram_scoped_id: Option<Personal<InstagramId>>,
    },
    InstagramUserIdChanged {
        instagram_user_id: Option<Personal<InstagramId>>,
    },
    /// Who changed it is the event's `metadata.actor`.
    StatusChanged {
        from: ContactStatus,
        to: ContactStatus,
        reason: Option<String>,
    },
    /// The flags after the change, all of them.
    ChannelFlagsChanged {
        whatsapp_blocked: bool,
        instagram_blocked: bool,
        instagram_opt_in: bool,
    },
    /// The contact opted in or out; `source` says how (a web form, an import, an inbound "STOP").
    ConsentRecorded {
        opted_in: bool,
        source: String,
        at: DateTime<Utc>,
    },
    /// Only the tags the contact did not have, sorted.
    Tagged {
        tags: Vec<Tag>,
    },
    /// Only the tags the contact had, sorted.
    Untagged {
        tags: Vec<Tag>,
    },
    NotesChanged {
        notes: Option<Personal<String>>,
    },
    /// Only the values that changed and the keys that were present.
    CustomFieldsChanged {
        #[serde(default)]
        set: BTreeMap<String, Personal<CustomFieldValue>>,
        #[serde(default)]
        removed: Vec<String>,
    },
    /// Hidden from lists and refused updates, until restored.
    ContactDeleted {},
    ContactRestored {},
    /// The contact's personal data is gone for good: the command side destroys its data key, so
    /// every sealed value in the stream reads as [`Personal::Erased`].
    ContactErased {},
    /// Somebody tried to give this contact an identifier `holder` has: kept for a person to
    /// resolve rather than dropped. Who tried and when are the event's metadata; `source` says
    /// through what (`api`, an import, an inbound message).
    IdentityConflictRecorded {
        conflict_id: Uuid,
        identity: Identity,
        /// The normalised identifier.
        value: Personal<String>,
        holder: Uuid,
        source: String,
    },
    IdentityConflictResolved {
        conflict_id: Uuid,
        resolution: ConflictResolution,
    },
    /// This contact was merged into `into`: its identifiers in `moved` went there (its tags and
    /// custom fields were copied), it left the groups in `moved`, and its id now resolves to
    /// `into`.
    ContactMerged {
        into: Uuid,
        moved: Moved,
    },
    /// `from` was merged into this contact, bringing `moved`; the groups in it are the ones this
    /// contact joined in its place.
    ContactAbsorbed {
        from: Uuid,
        moved: Moved,
    },
    /// The merge into `from` was undone: the identifiers in `moved` came back, and the contact
    /// rejoined the groups in it.
    ContactUnmerged {
        from: Uuid,
        moved: Moved,
    },
    /// `from` was split off again, taking `moved` back with it; this contact left the groups in
    /// it.
    ContactSplit {
        from: Uuid,
        moved: Moved,
    },
}

/// What passes between two contacts in a merge or its undoing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Moved {
    /// Normalised identifiers by kind.
    #[serde(default)]
    pub identities: BTreeMap<Identity, Personal<String>>,
    #[serde(default)]
    pub tags: Vec<Tag>,
    #[serde(default)]
    pub custom_fields: BTreeMap<String, Personal<CustomFieldValue>>,
    /// Groups the contact of the event left or joined (see each event), sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<Uuid>,
}

/// How an identity conflict ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictResolution {
    /// The holder keeps the identifier.
    Kept,
    /// The identifier moved from the holder to this contact.
    Moved,
}

impl TypedEvent for ContactEvent {
    const EVENT_TYPES: &'static [&'static str] = &[
        "ContactCreated",
        "ContactRenamed",
        "EmailChanged",
        "WhatsappChanged",
        "TelegramChatIdChanged",
        "InstagramScopedIdChanged",
        "InstagramUserIdChanged",
        "StatusChanged",
        "ChannelFlagsChanged",
        "ConsentRecorded",
        "Tagged",
        "Untagged",
        "NotesChanged",
        "CustomFieldsChanged",
        "ContactDeleted",
        "ContactRestored",
        "ContactErased",
        "IdentityConflictRecorded",
        "IdentityConflictResolved",
        "ContactMerged",
        "ContactAbsorbed",
        "ContactUnmerged",
        "ContactSplit",
    ];
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn tag(raw: &str) -> Tag {
        Tag::parse(raw).expect("a valid tag")
    }

    fn created() -> ContactEvent {
        ContactEvent::ContactCreated {
            contact_id: Uuid::nil(),
            full_name: Personal::from("Ada Lovelace".to_string()),
            email: Some(Personal::from(
                Email::parse("ada@example.com").expect("a valid email"),
            )),
            whatsapp: Some(Personal::from(
                PhoneE164::parse("+351912345678", None).expect("a valid phone"),
            )),
            telegram_chat_id: Some(Personal::from(
                TelegramChatId::parse("42").expect("a valid id"),
            )),
            instagram_scoped_id: Some(Personal::from(
                InstagramId::parse("1784").expect("a valid id"),
            )),
            instagram_user_id: None,
            tags: vec![tag("vip")],
            notes: Some(Personal::from("prefers mornings".to_string())),
            custom_fields: BTreeMap::from([(
                "birthday".to_string(),
                Personal::from(json!("1815-12-10")),
            )]),
        }
    }

    /// Every variant's tag is listed, so readers never skip one of their own events.
    #[test]
    fn every_event_type_is_listed() {
        let all = [
            created(),
            ContactEvent::ContactRenamed {
                full_name: Personal::from("A".to_string()),
            },
            ContactEvent::EmailChanged { email: None },
            ContactEvent::WhatsappChanged { whatsapp: None },
            ContactEvent::TelegramChatIdChanged {
                telegram_chat_id: None,
            },
            ContactEvent::InstagramScopedIdChanged {
                instagram_scoped_id: None,
            },
            ContactEvent::InstagramUserIdChanged {
                instagram_user_id: None,
            },
            ContactEvent::StatusChanged {
                from: ContactStatus::Active,
                to: ContactStatus::Blocked,
                reason: None,
            },
            ContactEvent::ChannelFlagsChanged {
                whatsapp_blocked: true,
                instagram_blocked: false,
                instagram_opt_in: false,
            },
            ContactEvent::ConsentRecorded {
                opted_in: true,
                source: "web form".into(),
                at: Utc::now(),
            },
            ContactEvent::Tagged { tags: vec![] },
            ContactEvent::Untagged { tags: vec![] },
            ContactEvent::NotesChanged { notes: None },
            ContactEvent::CustomFieldsChanged {
                set: BTreeMap::new(),
                removed: vec![],
            },
            ContactEvent::ContactDeleted {},
            ContactEvent::ContactRestored {},
            ContactEvent::ContactErased {},
            ContactEvent::IdentityConflictRecorded {
                conflict_id: Uuid::nil(),
                identity: Identity::Email,
                value: Personal::from("a@example.com".to_owned()),
                holder: Uuid::nil(),
                source: "api".into(),
            },
            ContactEvent::IdentityConflictResolved {
                conflict_id: Uuid::nil(),
                resolution: ConflictResolution::Kept,
            },
            ContactEvent::ContactMerged {
                into: Uuid::nil(),
                moved: Moved {
                    groups: vec![Uuid::from_u128(3)],
                    ..Moved::default()
                },
            },
            ContactEvent::ContactAbsorbed {
                from: Uuid::nil(),
                moved: Moved::default(),
            },
            ContactEvent::ContactUnmerged {
                from: Uuid::nil(),
                moved: Moved::default(),
            },
            ContactEvent::ContactSplit {
                from: Uuid::nil(),
                moved: Moved::default(),
            },
        ];
        let mut types: Vec<String> = all.iter().map(|e| e.encode().expect("encodes").0).collect();
        types.sort();
        let mut listed: Vec<&str> = ContactEvent::EVENT_TYPES.to_vec();
        listed.sort_unstable();
        assert_eq!(types, listed);
    }

    #[test]
    fn personal_values_are_wrapped_and_the_rest_is_clear() {
        let (event_type, data) = created().encode().expect("encodes");
        assert_eq!(event_type, "ContactCreated");
        assert_eq!(data["full_name"], json!({"$personal": "Ada Lovelace"}));
        assert_eq!(data["email"], json!({"$personal": "ada@example.com"}));
        assert_eq!(data["whatsapp"], json!({"$personal": "+351912345678"}));
        assert_eq!(data["telegram_chat_id"], json!({"$personal": 42}));
        assert_eq!(data["instagram_scoped_id"], json!({"$personal": "1784"}));
        assert_eq!(data["instagram_user_id"], json!(null));
        assert_eq!(data["tags"], json!(["vip"]));
        assert_eq!(
            data["custom_fields"],
            json!({"birthday": {"$personal": "1815-12-10"}})
        );
        let back: ContactEvent =
            serde_json::from_value(json!({"type": event_type, "data": data})).expect("decodes");
        assert_eq!(back, created());
    }

    #[test]
    fn erased_values_read_back_as_erased() {
        let data = json!({
            "contact_id": Uuid::nil(),
            "full_name": {"$erased": true},
            "email": {"$erased": true},
            "whatsapp": null,
            "telegram_chat_id": null,
            "instagram_scoped_id": null,
            "instagram_user_id": null,
            "notes": {"$erased": true},
            "custom_fields": {"birthday": {"$erased": true}},
        });
        let event: ContactEvent =
            serde_json::from_value(json!({"type": "ContactCreated", "data": data}))
                .expect("decodes");
        let ContactEvent::ContactCreated {
            full_name,
            email,
            tags,
            custom_fields,
            ..
        } = event
        else {
            panic!("a ContactCreated event");
        };
        assert!(full_name.is_erased());
        assert!(email.is_some_and(|e| e.is_erased()));
        assert!(tags.is_empty());
        assert!(custom_fields["birthday"].is_erased());
    }

    #[test]
    fn statuses_and_identities_have_stable_names() {
        for status in ContactStatus::ALL {
            assert_eq!(status.as_str().parse(), Ok(status));
            assert_eq!(
                serde_json::to_value(status).expect("serializes"),
                status.as_str()
            );
        }
        assert_eq!("Active".parse::<ContactStatus>(), Err(ContactStatusError));
        for identity in Identity::ALL {
            assert_eq!(
                serde_json::to_value(identity).expect("serializes"),
                identity.as_str()
            );
        }
        assert_eq!(stream(Uuid::nil()), format!("contact-{}", Uuid::nil()));
    }
}
