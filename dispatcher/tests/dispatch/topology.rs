use std::time::Duration;

use dispatcher::Topology;
use futures::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions,
    ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};

use crate::helpers::{TestEnv, amqp_url, wait_until};

async fn connect() -> (Connection, Channel) {
    let connection = Connection::connect(&amqp_url(), ConnectionProperties::default())
        .await
        .expect("RabbitMQ reachable");
    let channel = connection.create_channel().await.expect("channel");
    (connection, channel)
}

/// Redeclares `queue` with one argument changed; RabbitMQ must refuse (406), which proves the
/// queue holds the original argument.
async fn assert_argument(connection: &Connection, queue: &str, args: &FieldTable, key: &str) {
    let mut changed = args.clone();
    changed.insert(key.into(), AMQPValue::LongLongInt(987_654));
    let channel = connection.create_channel().await.expect("channel");
    let refused = channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            changed,
        )
        .await;
    let error = refused.expect_err("a different argument must be refused");
    assert!(
        error.to_string().contains("PRECONDITION_FAILED") || error.to_string().contains("406"),
        "{queue}: {error}"
    );
}

#[tokio::test]
async fn topology_is_declared_idempotently_with_its_arguments() {
    let env = TestEnv::new().await.expect("test env");
    let topology = env.topology();
    let (connection, channel) = connect().await;

    topology.declare(&channel).await.expect("first declare");
    topology
        .declare(&channel)
        .await
        .expect("second declare is a no-op");

    let queues = topology.queues();
    assert_eq!(queues.len(), 4, "work, two retry tiers, parking");
    for queue in &queues {
        Topology::message_count(&channel, &queue.name)
            .await
            .unwrap_or_else(|e| panic!("{} exists: {e}", queue.name));
    }
    let work = topology.work_queue("test");
    let args = topology.work_queue_arguments("test");
    for key in ["x-delivery-limit", "x-dead-letter-exchange", "x-queue-type"] {
        assert_argument(&connection, &work, &args, key).await;
    }
    let retry = topology.retry_queue("test", 1).expect("tier 1");
    assert_eq!(retry, format!("{}.retry.test.600ms", topology.prefix()));
    let args = topology.retry_queue_arguments("test", Duration::from_millis(600));
    for key in [
        "x-message-ttl",
        "x-dead-letter-exchange",
        "x-dead-letter-routing-key",
    ] {
        assert_argument(&connection, &retry, &args, key).await;
    }

    connection.close(200, "done".into()).await.expect("close");
    env.cleanup().await;
}

async fn publish(channel: &Channel, exchange: &str, routing_key: &str, body: &[u8]) {
    let confirm = channel
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            BasicPublishOptions {
                mandatory: true,
                ..BasicPublishOptions::default()
            },
            body,
            BasicProperties::default().with_delivery_mode(2),
        )
        .await
        .expect("published")
        .await
        .expect("confirmed");
    assert_eq!(confirm.take_message(), None, "routed");
}

async fn get(channel: &Channel, queue: &str, timeout: Duration) -> Vec<u8> {
    wait_until(timeout, || async {
        let message = channel
            .basic_get(queue.into(), BasicGetOptions { no_ack: true })
            .await?;
        Ok(message.map(|m| m.delivery.data))
    })
    .await
    .unwrap_or_else(|e| panic!("{queue}: {e}"))
}

#[tokio::test]
async fn retry_tiers_return_to_the_work_queue_and_the_delivery_limit_parks() {
    let env = TestEnv::new().await.expect("test env");
    let topology = env.topology();
    let (connection, channel) = connect().await;
    topology.declare(&channel).await.expect("declare");
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirms");

    // A message in a retry tier waits out the tier's TTL, then is back in the work queue.
    let key = topology.retry_routing_key("test", 0).expect("tier 0");
    let started = tokio::time::Instant::now();
    publish(&channel, &topology.retry_exchange(), &key, b"retry me").await;
    let body = get(
        &channel,
        &topology.work_queue("test"),
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(body, b"retry me");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "waited the TTL"
    );

    // A job redelivered past the delivery limit (workers crashing on it) is dead-lettered to
    // the parking queue.
    publish(&channel, &topology.dispatch_exchange(), "test", b"poison").await;
    let consumer_channel = connection.create_channel().await.expect("channel");
    let mut consumer = consumer_channel
        .basic_consume(
            topology.work_queue("test").into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    let parking = topology.parking_queue("test");
    let mut deliveries = 0;
    loop {
        let next = tokio::time::timeout(Duration::from_millis(500), consumer.next()).await;
        let Ok(Some(Ok(delivery))) = next else {
            break; // no redelivery: dead-lettered
        };
        deliveries += 1;
        assert!(deliveries <= 10, "never dead-lettered");
        delivery
            .nack(BasicNackOptions {
                requeue: true,
                ..BasicNackOptions::default()
            })
            .await
            .expect("nack");
    }
    assert!(
        deliveries >= 3,
        "delivered up to the limit, got {deliveries}"
    );
    let body = get(&channel, &parking, Duration::from_secs(5)).await;
    assert_eq!(body, b"poison");

    connection.close(200, "done".into()).await.expect("close");
    env.cleanup().await;
}
