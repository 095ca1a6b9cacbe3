//! Organisations: the tenant every business record belongs to, its members with their roles,
//! its invitations and its API keys, all in the stream `organisation-<id>` so the rules that span
//! them (the last admin stays an admin; an invitation is used once) hold in one place.
//!
//! Secrets never enter the log: invitation tokens and API key secrets appear only as SHA-256
//! hashes of random 256-bit values, which reveal nothing.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::TypedEvent;
use crate::values::{Email, Role};

/// The stream of one organisation.
pub fn stream(organisation_id: Uuid) -> String {
    format!("organisation-{organisation_id}")
}

/// How an organisation presents itself. Every field is optional; an update replaces them all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Branding {
    pub company_name: Option<String>,
    pub website: Option<String>,
    pub address: Option<String>,
    /// An IANA time zone name, e.g. `Europe/Lisbon`.
    pub timezone: Option<String>,
    /// ISO 3166-1 alpha-2, the region phone numbers without a country code are read in.
    pub default_phone_region: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum OrganisationEvent {
    OrganisationCreated {
        organisation_id: Uuid,
        name: String,
        created_by: Uuid,
    },
    OrganisationRenamed {
        name: String,
    },
    BrandingUpdated {
        branding: Branding,
    },
    /// A stored logo image, served back by the query API.
    LogoChanged {
        logo_id: Uuid,
        content_type: String,
        size: u64,
    },
    MemberAdded {
        user_id: Uuid,
        email: Email,
        role: Role,
        /// The invitation accepted, when the member joined through one.
        invitation_id: Option<Uuid>,
    },
    MemberRoleChanged {
        user_id: Uuid,
        from: Role,
        to: Role,
    },
    MemberRemoved {
        user_id: Uuid,
    },
    InvitationCreated {
        invitation_id: Uuid,
        email: Email,
        role: Role,
        token_hash: String,
        expires_at: DateTime<Utc>,
    },
    /// A new token replaces the old one, which stops working, and the expiry starts again.
    InvitationResent {
        invitation_id: Uuid,
        token_hash: String,
        expires_at: DateTime<Utc>,
    },
    InvitationAccepted {
        invitation_id: Uuid,
        user_id: Uuid,
    },
    InvitationRevoked {
        invitation_id: Uuid,
    },
    ApiKeyCreated {
        key_id: Uuid,
        name: String,
        role: Role,
        /// The first characters of the key, shown in lists so people can tell keys apart.
        prefix: String,
        secret_hash: String,
    },
    ApiKeyRevoked {
        key_id: Uuid,
    },
}

impl TypedEvent for OrganisationEvent {
    const EVENT_TYPES: &'static [&'static str] = &[
        "OrganisationCreated",
        "OrganisationRenamed",
        "BrandingUpdated",
        "LogoChanged",
        "MemberAdded",
        "MemberRoleChanged",
        "MemberRemoved",
        "InvitationCreated",
        "InvitationResent",
        "InvitationAccepted",
        "InvitationRevoked",
        "ApiKeyCreated",
        "ApiKeyRevoked",
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every variant's tag is listed, so readers never skip one of their own events.
    #[test]
    fn every_event_type_is_listed() {
        let email = Email::parse("ada@example.com").expect("a valid email");
        let id = Uuid::nil();
        let now = Utc::now();
        let all = [
            OrganisationEvent::OrganisationCreated {
                organisation_id: id,
                name: "Acme".into(),
                created_by: id,
            },
            OrganisationEvent::OrganisationRenamed { name: "A".into() },
            OrganisationEvent::BrandingUpdated {
                branding: Branding::default(),
            },
            OrganisationEvent::LogoChanged {
                logo_id: id,
                content_type: "image/png".into(),
                size: 1,
            },
            OrganisationEvent::MemberAdded {
                user_id: id,
                email: email.clone(),
                role: Role::Admin,
                invitation_id: None,
            },
            OrganisationEvent::MemberRoleChanged {
                user_id: id,
                from: Role::Admin,
                to: Role::Staff,
            },
            OrganisationEvent::MemberRemoved { user_id: id },
            OrganisationEvent::InvitationCreated {
                invitation_id: id,
                email,
                role: Role::Staff,
                token_hash: "h".into(),
                expires_at: now,
            },
            OrganisationEvent::InvitationResent {
                invitation_id: id,
                token_hash: "h".into(),
                expires_at: now,
            },
            OrganisationEvent::InvitationAccepted {
                invitation_id: id,
                user_id: id,
            },
            OrganisationEvent::InvitationRevoked { invitation_id: id },
            OrganisationEvent::ApiKeyCreated {
                key_id: id,
                name: "n".into(),
                role: Role::Viewer,
                prefix: "p".into(),
                secret_hash: "h".into(),
            },
            OrganisationEvent::ApiKeyRevoked { key_id: id },
        ];
        let mut types: Vec<String> = all.iter().map(|e| e.encode().expect("encodes").0).collect();
        types.sort();
        let mut listed: Vec<&str> = OrganisationEvent::EVENT_TYPES.to_vec();
        listed.sort_unstable();
        assert_eq!(types, listed);
    }
}
