//! Corbi's aggregates as pure functions: `evolve(state, event)` folds history into state and
//! `decide(state, command)` turns a command into new events or a domain error. No IO: the
//! command API and the dispatcher load a stream, decide, and append with the version they read.

pub mod contact;
pub mod custom_fields;
pub mod group;
pub mod organisation;
pub mod probe;
pub mod reservation;
pub mod user;

use events::TypedEvent;

/// One consistency boundary: a stream and the rules that guard it.
pub trait Aggregate: Default + Sized {
    type Event: TypedEvent;
    type Command;
    type Error: std::error::Error;

    /// The state after `event`.
    fn evolve(self, event: &Self::Event) -> Self;

    /// The events `command` produces in this state. An empty list means "already done":
    /// commands are idempotent where a retry is expected.
    fn decide(&self, command: Self::Command) -> Result<Vec<Self::Event>, Self::Error>;

    /// The state after every event of `history`, in order.
    fn fold<'a>(history: impl IntoIterator<Item = &'a Self::Event>) -> Self
    where
        Self::Event: 'a,
    {
        history.into_iter().fold(Self::default(), Self::evolve)
    }
}
