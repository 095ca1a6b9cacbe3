use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use dispatcher::{Broker, Dispatcher, Handlers, Relay, Shutdown, Topology, Worker};
use events::Position;

use crate::helpers::{TestEnv, wait_until};

const PROBES: usize = 500;
const DEADLINE: Duration = Duration::from_secs(90);

#[tokio::test]
async fn probes_travel_log_relay_queue_worker_log_exactly_once() {
    let env = TestEnv::new().await.expect("test env");
    let started = tokio::time::Instant::now();
    let handlers = Handlers::production(env.store(), "worker-e2e");
    let dispatcher = Dispatcher::start(
        env.config.clone(),
        env.store(),
        env.db.pool.clone(),
        handlers,
    );
    assert!(
        dispatcher
            .broker()
            .wait_connected(Duration::from_secs(10))
            .await,
        "connected"
    );

    let probes = env.request_probes(PROBES, "test").await.expect("appended");
    env.wait_for_completions(PROBES, DEADLINE)
        .await
        .expect("completed");
    dispatcher
        .worker()
        .drain(Duration::from_secs(10))
        .await
        .expect("drained");
    tracing::info!(elapsed = ?started.elapsed(), "{PROBES} probes dispatched");

    env.assert_each_completed_once(&probes).await;
    env.assert_queues_empty().await;
    let stats = dispatcher.worker().stats();
    assert_eq!(stats.parked.load(Ordering::Relaxed), 0);
    assert_eq!(stats.retried.load(Ordering::Relaxed), 0);
    let head = env.head().await;
    assert_eq!(
        *dispatcher.relay_progress().borrow(),
        head,
        "checkpoint at the head"
    );
    let stored =
        dispatcher::checkpoint::load(&env.db.pool, &Relay::checkpoint_name(&env.config.prefix))
            .await
            .expect("checkpoint read");
    assert_eq!(stored, head);

    dispatcher.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn exactly_once_across_a_relay_restart_and_a_replay_from_scratch() {
    let mut env = TestEnv::new().await.expect("test env");
    env.config.relay_batch = 20; // many batches, many checkpoints: the kill lands mid-way
    let topology = Arc::new(Topology::new(&env.config));
    let (_stop_broker, broker_shutdown) = Shutdown::new();
    let (broker, _supervisor) =
        Broker::start(&env.config.amqp_url, topology.clone(), broker_shutdown);
    let (_stop, shutdown) = Shutdown::new();
    let worker = Worker::new(
        &env.config,
        broker.clone(),
        topology.clone(),
        Handlers::production(env.store(), "worker-restart"),
    );
    tokio::spawn(worker.clone().run(shutdown.clone()));

    let probes = env.request_probes(PROBES, "test").await.expect("appended");
    let mut positions: Vec<Position> = probes.iter().map(|(_, r)| r.position).collect();
    positions.sort();
    let a_third = positions[PROBES / 3];

    // First relay: killed once it is a third of the way through.
    let relay = Relay::new(
        &env.config,
        env.store(),
        env.db.pool.clone(),
        broker.clone(),
        topology.clone(),
    );
    let mut progress = relay.progress();
    let first = tokio::spawn(relay.run(shutdown.clone()));
    tokio::time::timeout(
        DEADLINE,
        progress.wait_for(|p| p.is_some_and(|p| p >= a_third)),
    )
    .await
    .expect("first relay got a third of the way")
    .expect("progress");
    first.abort();
    let _ = first.await;
    let name = Relay::checkpoint_name(&env.config.prefix);
    let stopped_at = dispatcher::checkpoint::load(&env.db.pool, &name)
        .await
        .expect("checkpoint read")
        .expect("checkpoint written");
    assert!(
        stopped_at < *positions.last().expect("probes"),
        "stopped mid-way"
    );

    // Second relay: resumes from the stored checkpoint.
    let relay = Relay::new(
        &env.config,
        env.store(),
        env.db.pool.clone(),
        broker.clone(),
        topology.clone(),
    );
    let mut progress = relay.progress();
    let second = tokio::spawn(relay.run(shutdown.clone()));
    env.wait_for_completions(PROBES, DEADLINE)
        .await
        .expect("completed");
    worker
        .drain(Duration::from_secs(10))
        .await
        .expect("drained");
    env.assert_each_completed_once(&probes).await;
    env.assert_queues_empty().await;

    // Third relay, from scratch (checkpoint deleted): every job is delivered again, and every
    // worker run finds its outcome already in the log.
    second.abort();
    let _ = second.await;
    let head = env.head().await;
    tokio::time::timeout(DEADLINE, progress.wait_for(|p| *p == head))
        .await
        .ok();
    sqlx::query("DELETE FROM checkpoints WHERE name = $1")
        .bind(&name)
        .execute(&env.db.pool)
        .await
        .expect("checkpoint deleted");
    let completed_before = worker.stats().completed.load(Ordering::Relaxed);
    let relay = Relay::new(
        &env.config,
        env.store(),
        env.db.pool.clone(),
        broker.clone(),
        topology.clone(),
    );
    let mut progress = relay.progress();
    tokio::spawn(relay.run(shutdown.clone()));
    tokio::time::timeout(DEADLINE, progress.wait_for(|p| *p == head))
        .await
        .expect("replayed to the head")
        .expect("progress");
    let stats = worker.stats();
    wait_until(DEADLINE, || async {
        let completed = stats.completed.load(Ordering::Relaxed);
        Ok((completed >= completed_before + PROBES as u64).then_some(()))
    })
    .await
    .expect("every replayed job acked");
    worker
        .drain(Duration::from_secs(10))
        .await
        .expect("drained");
    env.assert_each_completed_once(&probes).await;
    env.assert_queues_empty().await;
    assert_eq!(stats.parked.load(Ordering::Relaxed), 0);

    env.cleanup().await;
}
