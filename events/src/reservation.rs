//! Reservation streams: one stream per unique value (an email across all users, a phone number
//! within an organisation…), holding who has it. Claiming the value is an append to its stream
//! next to the owner's own events, in one `EventStore::append_to_streams` call, so two owners can
//! never both hold it (DESIGN §3).
//!
//! The stream name carries a hash of the value, not the value: personal data stays out of stream
//! names, which can never be erased.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::TypedEvent;

/// Which values a reservation keeps unique, and within what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// A user's sign-in email, unique across the deployment.
    UserEmail,
    /// A contact identifier, unique within one organisation (`kind` names it: `email`,
    /// `whatsapp`…).
    Contact { org_id: Uuid, kind: &'static str },
}

/// The stream that reserves `value` (already normalised) in `scope`:
/// `reservation-<hex SHA-256 of scope and value>`, the same for every spelling the normaliser
/// maps together.
pub fn stream(scope: &Scope, value: &str) -> String {
    let key = match scope {
        Scope::UserEmail => format!("user-email\u{0}{value}"),
        Scope::Contact { org_id, kind } => format!("contact\u{0}{org_id}\u{0}{kind}\u{0}{value}"),
    };
    format!(
        "reservation-{}",
        hex::encode(Sha256::digest(key.as_bytes()))
    )
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum ReservationEvent {
    /// `owner` (a stream's aggregate id) holds the value.
    Reserved { owner: Uuid },
    /// The value is free again.
    Released { owner: Uuid },
}

impl TypedEvent for ReservationEvent {
    const EVENT_TYPES: &'static [&'static str] = &["Reserved", "Released"];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_hide_the_value_and_separate_scopes() {
        let email = stream(&Scope::UserEmail, "ada@example.com");
        assert!(email.starts_with("reservation-"));
        assert!(!email.contains("ada"));
        assert_eq!(email, stream(&Scope::UserEmail, "ada@example.com"));
        let org = Uuid::from_u128(1);
        let contact = |org_id, kind| stream(&Scope::Contact { org_id, kind }, "ada@example.com");
        assert_ne!(email, contact(org, "email"));
        assert_ne!(contact(org, "email"), contact(Uuid::from_u128(2), "email"));
        assert_ne!(contact(org, "email"), contact(org, "whatsapp"));
    }
}
