//! What a worker does with a job: a [`JobHandler`] per requesting event type. The production
//! set is [`Handlers::production`]; tests add handlers that fail on purpose.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use domain::Aggregate;
use domain::probe::{Probe, ProbeCommand};
use event_store::{Direction, EventStore, ExpectedVersion, StoreError};
use events::probe::ProbeEvent;
use events::{Actor, Metadata, NewEvent, RecordedEvent, TypedEvent, Upcasters};
use uuid::Uuid;

use crate::job::Job;

/// The namespace of the deterministic ids of outcome events: `UUIDv5(namespace, job event id)`.
pub const OUTCOME_NAMESPACE: Uuid = Uuid::from_u128(0x6f0c_5c2e_8a51_4b8e_9d0e_2f4a_c0b1_d15a);

/// How many times a handler re-reads and re-tries after a concurrent append to its stream.
const MAX_CONFLICTS: usize = 8;
const STREAM_PAGE: usize = 1_000;

/// Why a job did not complete.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// May succeed later: the job goes to the next retry tier (parked after the last).
    #[error("transient failure: {0}")]
    Transient(String),
    /// Will never succeed: the job is parked at once.
    #[error("permanent failure: {0}")]
    Permanent(String),
}

/// Runs one job. It must be idempotent: a job can be delivered again after it completed (a
/// relay re-publish, a lost ack), and the second run must find the outcome and do nothing.
#[async_trait]
pub trait JobHandler: Send + Sync + 'static {
    async fn handle(&self, job: &Job) -> Result<(), JobError>;
}

#[async_trait]
impl<H: JobHandler + ?Sized> JobHandler for Arc<H> {
    async fn handle(&self, job: &Job) -> Result<(), JobError> {
        (**self).handle(job).await
    }
}

/// The handler of each job type (the requesting event's type).
#[derive(Clone, Default)]
pub struct Handlers {
    by_type: HashMap<String, Arc<dyn JobHandler>>,
}

impl Handlers {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every handler Corbi runs in production.
    pub fn production(store: Arc<dyn EventStore>, worker: impl Into<String>) -> Self {
        Self::new().with(
            "DispatchProbeRequested",
            ProbeHandler::new(store, worker.into()),
        )
    }

    /// Adds (or replaces) the handler of `event_type`.
    pub fn with(mut self, event_type: impl Into<String>, handler: impl JobHandler) -> Self {
        self.by_type.insert(event_type.into(), Arc::new(handler));
        self
    }

    pub fn get(&self, event_type: &str) -> Option<&Arc<dyn JobHandler>> {
        self.by_type.get(event_type)
    }
}

/// Completes a dispatch probe: appends `DispatchProbeCompleted` to the probe's stream once.
pub struct ProbeHandler {
    store: Arc<dyn EventStore>,
    worker: String,
}

impl ProbeHandler {
    pub fn new(store: Arc<dyn EventStore>, worker: String) -> Self {
        Self { store, worker }
    }
}

#[async_trait]
impl JobHandler for ProbeHandler {
    #[tracing::instrument(name = "probe", skip_all, fields(event_id = %job.event_id, stream = %job.stream))]
    async fn handle(&self, job: &Job) -> Result<(), JobError> {
        for _ in 0..MAX_CONFLICTS {
            let events = read_stream(self.store.as_ref(), &job.stream).await?;
            if !events.iter().any(|e| e.event_id == job.event_id) {
                return Err(JobError::Permanent(
                    "the requesting event is not in its stream".into(),
                ));
            }
            let history = decode_all::<ProbeEvent>(&events)?;
            let decided = Probe::fold(&history)
                .decide(ProbeCommand::Complete {
                    worker: self.worker.clone(),
                })
                .map_err(|e| JobError::Permanent(e.to_string()))?;
            if decided.is_empty() {
                tracing::debug!("probe already completed; nothing to do");
                return Ok(());
            }
            let outcome = outcome_events(job, &decided)?;
            let expected = ExpectedVersion::Exact(last_version(&events));
            match self.store.append(&job.stream, expected, outcome).await {
                Ok(_) => return Ok(()),
                // Someone appended meanwhile (maybe this very outcome, from a duplicate of the
                // job running concurrently): read again and decide again.
                Err(
                    StoreError::WrongExpectedVersion { .. } | StoreError::DuplicateEventId { .. },
                ) => {}
                Err(error) => return Err(store_failure(error)),
            }
        }
        Err(JobError::Transient(format!(
            "stream {} kept changing under {MAX_CONFLICTS} attempts",
            job.stream
        )))
    }
}

/// The stream's events of type `E`, upcast; other types are skipped.
fn decode_all<E: TypedEvent>(events: &[RecordedEvent]) -> Result<Vec<E>, JobError> {
    let upcasters = Upcasters::default();
    events
        .iter()
        .filter_map(|event| E::decode(event, &upcasters).transpose())
        .collect::<Result<_, _>>()
        .map_err(|e| JobError::Permanent(e.to_string()))
}

/// The outcome events of `job` with their deterministic ids: the first is [`outcome_id`], the
/// ones after it are derived from it and their index.
fn outcome_events<E: TypedEvent>(job: &Job, decided: &[E]) -> Result<Vec<NewEvent>, JobError> {
    let first = outcome_id(job);
    decided
        .iter()
        .enumerate()
        .map(|(index, event)| {
            let id = match index {
                0 => first,
                n => Uuid::new_v5(&OUTCOME_NAMESPACE, format!("{first}/{n}").as_bytes()),
            };
            event
                .to_new_event(job.org_id)
                .map(|e| e.with_id(id).with_metadata(outcome_metadata(job)))
                .map_err(|e| JobError::Permanent(e.to_string()))
        })
        .collect()
}

/// The deterministic id of the outcome of `job`.
pub fn outcome_id(job: &Job) -> Uuid {
    Uuid::new_v5(&OUTCOME_NAMESPACE, job.event_id.as_bytes())
}

/// Outcome events continue the job's correlation and are caused by the requesting event.
pub fn outcome_metadata(job: &Job) -> Metadata {
    Metadata {
        correlation_id: job.correlation_id.or(Some(job.event_id)),
        causation_id: Some(job.event_id),
        actor: Actor::System {
            name: "dispatcher".into(),
        },
        trace_id: job.trace_id.clone(),
        ..Metadata::default()
    }
}

fn last_version(events: &[RecordedEvent]) -> u64 {
    events.last().map_or(0, |e| e.version)
}

async fn read_stream(store: &dyn EventStore, stream: &str) -> Result<Vec<RecordedEvent>, JobError> {
    let mut events = Vec::new();
    let mut from = None;
    loop {
        let page = store
            .read_stream(stream, from, Direction::Forwards, STREAM_PAGE)
            .await
            .map_err(store_failure)?;
        let full = page.len() == STREAM_PAGE;
        from = page.last().map(|e| e.version + 1);
        events.extend(page);
        if !full {
            return Ok(events);
        }
    }
}

fn store_failure(error: StoreError) -> JobError {
    match error {
        StoreError::Corrupt { .. } => JobError::Permanent(error.to_string()),
        other => JobError::Transient(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use event_store::memory::MemoryEventStore;

    use super::*;

    async fn requested_probe(store: &Arc<dyn EventStore>) -> Job {
        let probe_id = Uuid::now_v7();
        let stream = events::probe::stream(probe_id);
        let request = ProbeEvent::DispatchProbeRequested {
            probe_id,
            channel: "test".into(),
        }
        .to_new_event(Uuid::now_v7())
        .expect("encodes");
        store
            .append(&stream, ExpectedVersion::NoStream, vec![request])
            .await
            .expect("appended");
        let recorded = store
            .read_stream(&stream, None, Direction::Forwards, 10)
            .await
            .expect("read");
        Job::from_event(&recorded[0])
            .expect("maps")
            .expect("is a job")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_probe_completes_once_however_often_and_concurrently_its_job_runs() {
        let store: Arc<dyn EventStore> = Arc::new(MemoryEventStore::new());
        let job = requested_probe(&store).await;
        let runs = (0..8).map(|i| {
            let handler = ProbeHandler::new(store.clone(), format!("worker-{i}"));
            let job = job.clone();
            tokio::spawn(async move { handler.handle(&job).await })
        });
        for result in futures::future::join_all(runs).await {
            result.expect("no panic").expect("every run succeeds");
        }
        ProbeHandler::new(store.clone(), "late".into())
            .handle(&job)
            .await
            .expect("a late duplicate succeeds");

        let stream = store
            .read_stream(&job.stream, None, Direction::Forwards, 10)
            .await
            .expect("read");
        assert_eq!(stream.len(), 2, "the request and one completion");
        let completion = &stream[1];
        assert_eq!(completion.event_type, "DispatchProbeCompleted");
        assert_eq!(completion.event_id, outcome_id(&job));
        assert_eq!(completion.metadata.causation_id, Some(job.event_id));
    }

    #[tokio::test]
    async fn a_job_whose_event_is_missing_is_a_permanent_failure() {
        let store: Arc<dyn EventStore> = Arc::new(MemoryEventStore::new());
        let mut job = requested_probe(&store).await;
        job.event_id = Uuid::now_v7();
        let result = ProbeHandler::new(store, "w".into()).handle(&job).await;
        assert!(matches!(result, Err(JobError::Permanent(_))), "{result:?}");
    }
}
