//! A unique value's reservation: free, or held by one owner. Claiming it again for the same owner
//! is no event (a retried command), for another owner an error naming the holder.

use events::reservation::ReservationEvent;
use uuid::Uuid;

use crate::Aggregate;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    #[default]
    Free,
    HeldBy(Uuid),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReservationCommand {
    Reserve { owner: Uuid },
    Release { owner: Uuid },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReservationError {
    #[error("the value is held by {holder}")]
    Taken { holder: Uuid },
}

impl Aggregate for Reservation {
    type Event = ReservationEvent;
    type Command = ReservationCommand;
    type Error = ReservationError;

    fn evolve(self, event: &ReservationEvent) -> Self {
        match event {
            ReservationEvent::Reserved { owner } => Reservation::HeldBy(*owner),
            ReservationEvent::Released { .. } => Reservation::Free,
        }
    }

    fn decide(
        &self,
        command: ReservationCommand,
    ) -> Result<Vec<ReservationEvent>, ReservationError> {
        match (*self, command) {
            (Reservation::Free, ReservationCommand::Reserve { owner }) => {
                Ok(vec![ReservationEvent::Reserved { owner }])
            }
            (Reservation::HeldBy(holder), ReservationCommand::Reserve { owner })
                if holder == owner =>
            {
                Ok(vec![])
            }
            (Reservation::HeldBy(holder), ReservationCommand::Reserve { .. }) => {
                Err(ReservationError::Taken { holder })
            }
            (Reservation::HeldBy(holder), ReservationCommand::Release { owner })
                if holder == owner =>
            {
                Ok(vec![ReservationEvent::Released { owner }])
            }
            // Releasing what one does not hold changes nothing: a retried release, or a value
            // someone else has claimed since.
            (_, ReservationCommand::Release { .. }) => Ok(vec![]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADA: Uuid = Uuid::from_u128(1);
    const BOB: Uuid = Uuid::from_u128(2);

    #[test]
    fn one_owner_at_a_time_and_free_again_after_release() {
        let free = Reservation::default();
        let reserve = |owner| ReservationCommand::Reserve { owner };
        let release = |owner| ReservationCommand::Release { owner };
        assert_eq!(
            free.decide(reserve(ADA)),
            Ok(vec![ReservationEvent::Reserved { owner: ADA }])
        );
        let held = Reservation::fold(&[ReservationEvent::Reserved { owner: ADA }]);
        assert_eq!(held.decide(reserve(ADA)), Ok(vec![]));
        assert_eq!(
            held.decide(reserve(BOB)),
            Err(ReservationError::Taken { holder: ADA })
        );
        assert_eq!(held.decide(release(BOB)), Ok(vec![]));
        assert_eq!(
            held.decide(release(ADA)),
            Ok(vec![ReservationEvent::Released { owner: ADA }])
        );
        let released = Reservation::fold(&[
            ReservationEvent::Reserved { owner: ADA },
            ReservationEvent::Released { owner: ADA },
        ]);
        assert_eq!(
            released.decide(reserve(BOB)),
            Ok(vec![ReservationEvent::Reserved { owner: BOB }])
        );
        assert_eq!(free.decide(release(ADA)), Ok(vec![]));
    }
}
