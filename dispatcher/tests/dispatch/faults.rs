use std::sync::atomic::Ordering;
use std::time::Duration;

use dispatcher::{Dispatcher, Handlers};
use lapin::options::QueueDeleteOptions;
use lapin::{Connection, ConnectionProperties};

use crate::helpers::{TcpProxy, TestEnv, amqp_url, wait_until};

const PROBES: usize = 500;
const DEADLINE: Duration = Duration::from_secs(120);

#[tokio::test]
async fn cut_broker_connections_are_survived_exactly_once() {
    let mut env = TestEnv::new().await.expect("test env");
    let proxy = TcpProxy::start(&env.config.amqp_url).await.expect("proxy");
    env.config.amqp_url = proxy.url.clone();
    env.config.relay_batch = 50;
    env.config.prefetch = 16;
    let dispatcher = Dispatcher::start(
        env.config.clone(),
        env.store(),
        env.db.pool.clone(),
        Handlers::production(env.store(), "worker-faults"),
    );
    let broker = dispatcher.broker().clone();
    assert!(
        broker.wait_connected(Duration::from_secs(10)).await,
        "connected"
    );

    // The probes keep coming while the connection is cut twice.
    let appender = {
        let env = &env;
        async move { env.request_probes(PROBES, "test").await }
    };
    let cutter = async {
        for threshold in [PROBES / 5, PROBES / 2] {
            wait_until(DEADLINE, || async {
                Ok((env.completions().await?.len() >= threshold).then_some(()))
            })
            .await
            .expect("progress before the cut");
            let cut = proxy.kill_all();
            tracing::info!(cut, threshold, "cut every RabbitMQ connection");
            assert!(cut > 0, "the dispatcher was connected through the proxy");
            wait_until(Duration::from_secs(5), || async {
                Ok((!broker.is_connected()).then_some(()))
            })
            .await
            .expect("the supervisor noticed the loss");
            assert!(
                broker.wait_connected(Duration::from_secs(30)).await,
                "reconnected"
            );
        }
    };
    let (probes, ()) = tokio::join!(appender, cutter);
    let probes = probes.expect("appended");

    env.wait_for_completions(PROBES, DEADLINE)
        .await
        .expect("completed");
    dispatcher
        .worker()
        .drain(Duration::from_secs(20))
        .await
        .expect("drained");
    env.assert_each_completed_once(&probes).await;
    env.assert_queues_empty().await;
    let session = broker.session().await.expect("connected");
    assert!(
        session.id() >= 3,
        "two reconnects, got session {}",
        session.id()
    );
    assert_eq!(
        dispatcher.worker().stats().parked.load(Ordering::Relaxed),
        0
    );

    dispatcher.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn an_unreachable_broker_is_retried_until_it_answers() {
    let mut env = TestEnv::new().await.expect("test env");
    // A port nobody listens on: bind one, learn it, free it.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let real = amqp_url();
    let uri: lapin::uri::AMQPUri = real.parse().expect("AMQP_URL parses");
    let target = format!("{}:{}", uri.authority.host, uri.authority.port);
    env.config.amqp_url = real.replacen(&target, &format!("127.0.0.1:{port}"), 1);
    let dispatcher = Dispatcher::start(
        env.config.clone(),
        env.store(),
        env.db.pool.clone(),
        Handlers::production(env.store(), "worker-unreachable"),
    );
    let probes = env.request_probes(5, "test").await.expect("appended");
    assert!(
        !dispatcher
            .broker()
            .wait_connected(Duration::from_millis(500))
            .await
    );

    // The broker "comes back": a proxy starts listening on that port.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("port still free");
    let proxied = tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let target = target.clone();
            tokio::spawn(async move {
                if let Ok(mut upstream) = tokio::net::TcpStream::connect(&target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut upstream).await;
                }
            });
        }
    });
    assert!(
        dispatcher
            .broker()
            .wait_connected(Duration::from_secs(15))
            .await,
        "connected once the broker answered"
    );
    env.wait_for_completions(probes.len(), DEADLINE)
        .await
        .expect("completed");
    env.assert_each_completed_once(&probes).await;

    dispatcher.stop().await;
    proxied.abort();
    env.cleanup().await;
}

#[tokio::test]
async fn a_queue_deleted_under_the_dispatcher_is_declared_again() {
    let env = TestEnv::new().await.expect("test env");
    let dispatcher = Dispatcher::start(
        env.config.clone(),
        env.store(),
        env.db.pool.clone(),
        Handlers::production(env.store(), "worker-redeclare"),
    );
    let mut probes = env.request_probes(10, "test").await.expect("appended");
    env.wait_for_completions(10, DEADLINE)
        .await
        .expect("first probes");

    // An operator deletes the work queue: the worker's consumer is cancelled and the relay's
    // next publishes come back unroutable until it declares the queue again.
    let connection = Connection::connect(&amqp_url(), ConnectionProperties::default())
        .await
        .expect("connect");
    let channel = connection.create_channel().await.expect("channel");
    channel
        .queue_delete(
            env.topology().work_queue("test").into(),
            QueueDeleteOptions::default(),
        )
        .await
        .expect("deleted");
    connection.close(200, "done".into()).await.expect("close");

    probes.extend(env.request_probes(10, "test").await.expect("appended"));
    env.wait_for_completions(20, DEADLINE)
        .await
        .expect("later probes");
    dispatcher
        .worker()
        .drain(Duration::from_secs(10))
        .await
        .expect("drained");
    env.assert_each_completed_once(&probes).await;
    env.assert_queues_empty().await;

    dispatcher.stop().await;
    env.cleanup().await;
}
