//! The event vocabulary shared by every Corbi service: the envelope that wraps every event in the
//! log, its metadata, the [`TypedEvent`] trait for aggregate event enums and the [`Upcasters`]
//! registry that turns an old schema version into the current one when read.
//!
//! Pure serde, no IO.

pub mod contact;
pub mod custom_field;
mod envelope;
pub mod group;
pub mod organisation;
pub mod personal;
mod position;
pub mod probe;
pub mod reservation;
mod typed;
mod upcast;
pub mod user;
mod values;

/// The channels Corbi dispatches on, as named in job routing and queues; `test` carries the
/// dispatch probes.
pub const DISPATCH_CHANNELS: &[&str] = &[
    "whatsapp",
    "sms",
    "email",
    "telegram",
    "instagram",
    "calendar",
    "test",
];

pub use envelope::{Actor, Metadata, NewEvent, RecordedEvent, stream_category};
pub use personal::{DataKey, Keyring, Personal};
pub use position::{Position, PositionParseError};
pub use typed::{DecodeError, TypedEvent};
pub use upcast::{UpcastError, Upcaster, Upcasters};
pub use values::{
    Email, EmailError, InstagramId, InstagramIdError, PhoneE164, PhoneError, Role, RoleError, Tag,
    TagError, TelegramChatId, TelegramChatIdError,
};
