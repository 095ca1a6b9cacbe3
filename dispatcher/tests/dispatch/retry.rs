use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use dispatcher::job::{ATTEMPT_HEADER, ERROR_HEADER};
use dispatcher::{Dispatcher, Handlers, Job, JobError, JobHandler, ProbeHandler};
use events::probe;
use lapin::options::BasicGetOptions;
use lapin::{Connection, ConnectionProperties};

use crate::helpers::{TestEnv, amqp_url, wait_until};

/// Fails some probes on purpose, by stream: `flaky` ones twice (then the real handler runs),
/// `broken` ones always (transient), `rejected` ones at once (permanent).
struct Scripted {
    real: ProbeHandler,
    flaky: HashSet<String>,
    broken: HashSet<String>,
    rejected: HashSet<String>,
    runs: Mutex<HashMap<String, usize>>,
}

#[async_trait]
impl JobHandler for Scripted {
    async fn handle(&self, job: &Job) -> Result<(), JobError> {
        let run = {
            let mut runs = self.runs.lock().expect("runs lock");
            let run = runs.entry(job.stream.clone()).or_default();
            *run += 1;
            *run
        };
        if self.rejected.contains(&job.stream) {
            return Err(JobError::Permanent("rejected on purpose".into()));
        }
        if self.broken.contains(&job.stream) || (self.flaky.contains(&job.stream) && run <= 2) {
            return Err(JobError::Transient(format!(
                "failing on purpose, run {run}"
            )));
        }
        self.real.handle(job).await
    }
}

#[tokio::test]
async fn failing_jobs_go_through_the_retry_tiers_then_complete_or_park() {
    let env = TestEnv::new().await.expect("test env");
    let probes = env.request_probes(30, "test").await.expect("appended");
    let streams: Vec<String> = probes.iter().map(|(id, _)| probe::stream(*id)).collect();
    let (flaky, rest) = streams.split_at(10);
    let (broken, rest) = rest.split_at(5);
    let (rejected, fine) = rest.split_at(5);
    let scripted = Arc::new(Scripted {
        real: ProbeHandler::new(env.store(), "worker-retry".into()),
        flaky: flaky.iter().cloned().collect(),
        broken: broken.iter().cloned().collect(),
        rejected: rejected.iter().cloned().collect(),
        runs: Mutex::default(),
    });
    let handlers = Handlers::new().with("DispatchProbeRequested", scripted.clone());
    let dispatcher = Dispatcher::start(
        env.config.clone(),
        env.store(),
        env.db.pool.clone(),
        handlers,
    );

    let completing = flaky.len() + fine.len();
    env.wait_for_completions(completing, Duration::from_secs(60))
        .await
        .expect("flaky and fine probes completed");
    let stats = dispatcher.worker().stats();
    let parked = (broken.len() + rejected.len()) as u64;
    wait_until(Duration::from_secs(30), || async {
        Ok((stats.parked.load(Ordering::Relaxed) >= parked).then_some(()))
    })
    .await
    .expect("broken and rejected probes parked");
    dispatcher
        .worker()
        .drain(Duration::from_secs(10))
        .await
        .expect("drained");

    let completions = env.completions().await.expect("completions");
    for stream in flaky.iter().chain(fine) {
        assert_eq!(completions.get(stream), Some(&1), "{stream} completed once");
    }
    for stream in broken.iter().chain(rejected) {
        assert_eq!(completions.get(stream), None, "{stream} never completed");
    }
    assert_eq!(completions.len(), completing);
    let retried = 2 * (flaky.len() + broken.len()) as u64;
    assert_eq!(stats.retried.load(Ordering::Relaxed), retried);
    assert_eq!(stats.parked.load(Ordering::Relaxed), parked);
    {
        let runs = scripted.runs.lock().expect("runs lock");
        assert!(
            flaky.iter().all(|s| runs.get(s) == Some(&3)),
            "flaky: 1 + 2 retries"
        );
        assert!(
            broken.iter().all(|s| runs.get(s) == Some(&3)),
            "broken: 1 + 2 retries"
        );
        assert!(
            rejected.iter().all(|s| runs.get(s) == Some(&1)),
            "rejected: no retry"
        );
    }

    // The parked jobs wait in the parking queue with the reason; nothing else is left.
    let counts = env.queue_counts().await.expect("counts");
    let topology = env.topology();
    for (queue, count) in &counts {
        let expected = if *queue == topology.parking_queue("test") {
            parked as u32
        } else {
            0
        };
        assert_eq!(*count, expected, "{queue}");
    }
    let connection = Connection::connect(&amqp_url(), ConnectionProperties::default())
        .await
        .expect("connect");
    let channel = connection.create_channel().await.expect("channel");
    let message = channel
        .basic_get(
            topology.parking_queue("test").into(),
            BasicGetOptions { no_ack: true },
        )
        .await
        .expect("get")
        .expect("a parked job");
    let headers = message
        .delivery
        .properties
        .headers()
        .clone()
        .expect("headers");
    assert!(headers.inner().contains_key(ERROR_HEADER));
    let job: Job = serde_json::from_slice(&message.delivery.data).expect("a job body");
    if broken.contains(&job.stream) {
        assert!(headers.inner().contains_key(ATTEMPT_HEADER));
    }
    connection.close(200, "done".into()).await.expect("close");

    dispatcher.stop().await;
    env.cleanup().await;
}
