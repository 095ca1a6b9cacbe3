//! The dispatch probe: requested once, completed once, whatever the retries.

use events::DISPATCH_CHANNELS;
use events::probe::ProbeEvent;
use uuid::Uuid;

use crate::Aggregate;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub enum Probe {
    #[default]
    Absent,
    Requested {
        probe_id: Uuid,
        channel: String,
    },
    Completed {
        probe_id: Uuid,
        worker: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeCommand {
    Request { probe_id: Uuid, channel: String },
    Complete { worker: String },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProbeError {
    #[error("the probe was already requested")]
    AlreadyRequested,
    #[error("the probe was never requested")]
    NotRequested,
    #[error("channel must be one of the dispatch channels")]
    InvalidChannel,
}

impl Aggregate for Probe {
    type Event = ProbeEvent;
    type Command = ProbeCommand;
    type Error = ProbeError;

    fn evolve(self, event: &ProbeEvent) -> Self {
        match event {
            ProbeEvent::DispatchProbeRequested { probe_id, channel } => Probe::Requested {
                probe_id: *probe_id,
                channel: channel.clone(),
            },
            ProbeEvent::DispatchProbeCompleted { probe_id, worker } => Probe::Completed {
                probe_id: *probe_id,
                worker: worker.clone(),
            },
        }
    }

    fn decide(&self, command: ProbeCommand) -> Result<Vec<ProbeEvent>, ProbeError> {
        match (self, command) {
            (Probe::Absent, ProbeCommand::Request { probe_id, channel }) => {
                if !DISPATCH_CHANNELS.contains(&channel.as_str()) {
                    return Err(ProbeError::InvalidChannel);
                }
                Ok(vec![ProbeEvent::DispatchProbeRequested {
                    probe_id,
                    channel,
                }])
            }
            (_, ProbeCommand::Request { .. }) => Err(ProbeError::AlreadyRequested),
            (Probe::Absent, ProbeCommand::Complete { .. }) => Err(ProbeError::NotRequested),
            (Probe::Requested { probe_id, .. }, ProbeCommand::Complete { worker }) => {
                Ok(vec![ProbeEvent::DispatchProbeCompleted {
                    probe_id: *probe_id,
                    worker,
                }])
            }
            // A redelivered job: the outcome is already recorded, nothing happens twice.
            (Probe::Completed { .. }, ProbeCommand::Complete { .. }) => Ok(vec![]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn given(history: &[ProbeEvent]) -> Probe {
        Probe::fold(history)
    }

    fn requested(id: Uuid) -> ProbeEvent {
        ProbeEvent::DispatchProbeRequested {
            probe_id: id,
            channel: "test".into(),
        }
    }

    #[test]
    fn a_probe_is_requested_once() {
        let id = Uuid::new_v4();
        let request = ProbeCommand::Request {
            probe_id: id,
            channel: "test".into(),
        };
        assert_eq!(given(&[]).decide(request.clone()), Ok(vec![requested(id)]));
        assert_eq!(
            given(&[requested(id)]).decide(request),
            Err(ProbeError::AlreadyRequested)
        );
        let bad = ProbeCommand::Request {
            probe_id: id,
            channel: "carrier-pigeon".into(),
        };
        assert_eq!(given(&[]).decide(bad), Err(ProbeError::InvalidChannel));
    }

    #[test]
    fn completing_twice_changes_nothing() {
        let id = Uuid::new_v4();
        let complete = ProbeCommand::Complete {
            worker: "w1".into(),
        };
        let completed = ProbeEvent::DispatchProbeCompleted {
            probe_id: id,
            worker: "w1".into(),
        };
        assert_eq!(
            given(&[]).decide(complete.clone()),
            Err(ProbeError::NotRequested)
        );
        assert_eq!(
            given(&[requested(id)]).decide(complete.clone()),
            Ok(vec![completed.clone()])
        );
        assert_eq!(
            given(&[requested(id), completed]).decide(complete),
            Ok(vec![])
        );
    }
}
