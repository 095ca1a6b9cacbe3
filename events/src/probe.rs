//! Dispatch probes: a job that travels the whole dispatch path (log → relay → RabbitMQ → worker
//! → outcome in the log) without calling a provider. Tests and operators use it to prove the
//! pipeline end to end.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::TypedEvent;

/// The stream of one probe.
pub fn stream(probe_id: Uuid) -> String {
    format!("probe-{probe_id}")
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum ProbeEvent {
    /// Asks the dispatcher to run the probe on `channel`'s queue.
    DispatchProbeRequested { probe_id: Uuid, channel: String },
    /// A worker consumed and acknowledged the probe.
    DispatchProbeCompleted { probe_id: Uuid, worker: String },
}

impl TypedEvent for ProbeEvent {
    const EVENT_TYPES: &'static [&'static str] =
        &["DispatchProbeRequested", "DispatchProbeCompleted"];
}
