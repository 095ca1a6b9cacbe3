//! Users: people who sign in. One stream per user, `user-<id>`; the sign-in email is unique across
//! the deployment through a reservation stream.
//!
//! Password hashes are not events: the log is kept forever, and a log of every hash a user ever
//! had is a gift to whoever steals it. They live in the command side's `credentials` table; the
//! log records *that* a password changed, and who changed it.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::TypedEvent;
use crate::values::Email;

/// The stream of one user.
pub fn stream(user_id: Uuid) -> String {
    format!("user-{user_id}")
}

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionEnd {
    /// The user signed out.
    SignedOut,
    /// The user revoked it from their list of sessions.
    Revoked,
    /// A refresh token that had already been used came back: whoever holds the family's tokens
    /// may have stolen one, so every session of the family ends.
    RefreshReused,
    /// The password changed, which ends every session.
    PasswordChanged,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum UserEvent {
    UserRegistered {
        user_id: Uuid,
        email: Email,
        name: String,
    },
    UserRenamed {
        name: String,
    },
    PasswordChanged {},
    /// A sign-in started a session family (its refresh tokens rotate within it).
    SignedIn {
        family_id: Uuid,
    },
    SessionsEnded {
        /// `None`: every session of the user.
        family_id: Option<Uuid>,
        reason: SessionEnd,
    },
}

impl TypedEvent for UserEvent {
    const EVENT_TYPES: &'static [&'static str] = &[
        "UserRegistered",
        "UserRenamed",
        "PasswordChanged",
        "SignedIn",
        "SessionsEnded",
    ];
}
