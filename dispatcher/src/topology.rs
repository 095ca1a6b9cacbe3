//! The RabbitMQ topology of DESIGN §6, declared idempotently on every (re)connect.
//!
//! ```text
//! relay ──▶ <p>.dispatch (direct) ──<ch>──▶ <p>.dispatch.<ch> (quorum, x-delivery-limit)
//!                ▲                                 │ worker: retry      │ delivery limit hit
//!                │ TTL expired (dead-letter,       ▼                    ▼
//!                │ routing key <ch>)        <p>.retry (direct)    <p>.parking (direct)
//!                └──── <p>.retry.<ch>.<delay> ◀──<ch>.<delay>──┘        ──<ch>──▶ <p>.parking.<ch>
//! ```
//!
//! Every queue is a durable quorum queue. Retry tiers are separate queues with a per-queue TTL
//! (a per-message TTL would hold a short delay behind a long one at the head of one queue).
//! Dead-lettering is `at-least-once` (RabbitMQ ≥ 3.10, needs `x-overflow: reject-publish`), so
//! a job moving between queues is never lost to a broker crash mid-way.

use std::time::Duration;

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Channel, ExchangeKind};

use crate::DispatchConfig;

/// The names and arguments of every exchange and queue for one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    prefix: String,
    channels: Vec<String>,
    delivery_limit: u32,
    retry_tiers: Vec<Duration>,
}

/// One queue the topology declares, with the exchange and key that route to it.
#[derive(Debug, Clone)]
pub struct QueueSpec {
    pub name: String,
    pub exchange: String,
    pub routing_key: String,
    pub arguments: FieldTable,
}

impl Topology {
    pub fn new(config: &DispatchConfig) -> Self {
        Self {
            prefix: config.prefix.clone(),
            channels: config.channels.clone(),
            delivery_limit: config.delivery_limit,
            retry_tiers: config.retry_tiers.clone(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn channels(&self) -> &[String] {
        &self.channels
    }

    pub fn has_channel(&self, channel: &str) -> bool {
        self.channels.iter().any(|c| c == channel)
    }

    pub fn retry_tiers(&self) -> &[Duration] {
        &self.retry_tiers
    }

    /// The work exchange the relay publishes to, routing key = channel.
    pub fn dispatch_exchange(&self) -> String {
        format!("{}.dispatch", self.prefix)
    }

    pub fn work_queue(&self, channel: &str) -> String {
        format!("{}.dispatch.{channel}", self.prefix)
    }

    pub fn retry_exchange(&self) -> String {
        format!("{}.retry", self.prefix)
    }

    /// The routing key of retry tier `tier` (0-based) of `channel` on the retry exchange.
    pub fn retry_routing_key(&self, channel: &str, tier: usize) -> Option<String> {
        let delay = self.retry_tiers.get(tier)?;
        Some(format!("{channel}.{}", delay_name(*delay)))
    }

    pub fn retry_queue(&self, channel: &str, tier: usize) -> Option<String> {
        let key = self.retry_routing_key(channel, tier)?;
        Some(format!("{}.retry.{key}", self.prefix))
    }

    pub fn parking_exchange(&self) -> String {
        format!("{}.parking", self.prefix)
    }

    pub fn parking_queue(&self, channel: &str) -> String {
        format!("{}.parking.{channel}", self.prefix)
    }

    /// Every queue of the topology: per channel its work queue, its retry tiers and its parking
    /// queue.
    pub fn queues(&self) -> Vec<QueueSpec> {
        let mut queues = Vec::with_capacity(self.channels.len() * (2 + self.retry_tiers.len()));
        for channel in &self.channels {
            queues.push(QueueSpec {
                name: self.work_queue(channel),
                exchange: self.dispatch_exchange(),
                routing_key: channel.clone(),
                arguments: self.work_queue_arguments(channel),
            });
            for (tier, delay) in self.retry_tiers.iter().enumerate() {
                let (Some(name), Some(routing_key)) = (
                    self.retry_queue(channel, tier),
                    self.retry_routing_key(channel, tier),
                ) else {
                    continue;
                };
                queues.push(QueueSpec {
                    name,
                    exchange: self.retry_exchange(),
                    routing_key,
                    arguments: self.retry_queue_arguments(channel, *delay),
                });
            }
            queues.push(QueueSpec {
                name: self.parking_queue(channel),
                exchange: self.parking_exchange(),
                routing_key: channel.clone(),
                arguments: quorum(),
            });
        }
        queues
    }

    /// The queues that hold work still to do (work queues and retry tiers), not parked jobs.
    pub fn pending_queues(&self) -> Vec<String> {
        self.queues()
            .into_iter()
            .filter(|q| q.exchange != self.parking_exchange())
            .map(|q| q.name)
            .collect()
    }

    pub fn work_queue_arguments(&self, channel: &str) -> FieldTable {
        let mut args = quorum();
        args.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongLongInt(i64::from(self.delivery_limit)),
        );
        dead_letter_to(&mut args, &self.parking_exchange(), channel);
        args
    }

    pub fn retry_queue_arguments(&self, channel: &str, delay: Duration) -> FieldTable {
        let mut args = quorum();
        let ttl = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
        args.insert("x-message-ttl".into(), AMQPValue::LongLongInt(ttl));
        dead_letter_to(&mut args, &self.dispatch_exchange(), channel);
        args
    }

    /// Declares every exchange, queue and binding. Idempotent: redeclaring with the same
    /// arguments is a no-op on the broker.
    #[tracing::instrument(skip_all, fields(prefix = %self.prefix))]
    pub async fn declare(&self, channel: &Channel) -> lapin::Result<()> {
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        for exchange in [
            self.dispatch_exchange(),
            self.retry_exchange(),
            self.parking_exchange(),
        ] {
            channel
                .exchange_declare(
                    exchange.into(),
                    ExchangeKind::Direct,
                    durable,
                    FieldTable::default(),
                )
                .await?;
        }
        for queue in self.queues() {
            channel
                .queue_declare(
                    queue.name.clone().into(),
                    QueueDeclareOptions {
                        durable: true,
                        ..QueueDeclareOptions::default()
                    },
                    queue.arguments,
                )
                .await?;
            channel
                .queue_bind(
                    queue.name.into(),
                    queue.exchange.into(),
                    queue.routing_key.into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
        tracing::debug!("topology declared");
        Ok(())
    }

    /// The number of ready messages in `queue` (passive declare; fails if it does not exist).
    pub async fn message_count(channel: &Channel, queue: &str) -> lapin::Result<u32> {
        let declared = channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        Ok(declared.message_count())
    }

    /// Deletes every queue and exchange of the topology (tests clean up their prefix with it).
    pub async fn delete(&self, channel: &Channel) -> lapin::Result<()> {
        for queue in self.queues() {
            channel
                .queue_delete(queue.name.into(), Default::default())
                .await?;
        }
        for exchange in [
            self.dispatch_exchange(),
            self.retry_exchange(),
            self.parking_exchange(),
        ] {
            channel
                .exchange_delete(exchange.into(), Default::default())
                .await?;
        }
        Ok(())
    }
}

fn quorum() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), long_string("quorum"));
    args
}

fn dead_letter_to(args: &mut FieldTable, exchange: &str, routing_key: &str) {
    args.insert("x-dead-letter-exchange".into(), long_string(exchange));
    args.insert("x-dead-letter-routing-key".into(), long_string(routing_key));
    // At-least-once dead-lettering only applies with reject-publish overflow; without a length
    // limit on the queue the overflow setting never triggers.
    args.insert(
        "x-dead-letter-strategy".into(),
        long_string("at-least-once"),
    );
    args.insert("x-overflow".into(), long_string("reject-publish"));
}

fn long_string(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}

/// `5s`, `30s`, `5m`, `250ms`: the tier's part of the retry queue name.
fn delay_name(delay: Duration) -> String {
    let millis = delay.as_millis();
    let whole = |unit: u128| millis > 0 && millis.is_multiple_of(unit);
    if whole(3_600_000) {
        format!("{}h", millis / 3_600_000)
    } else if whole(60_000) {
        format!("{}m", millis / 60_000)
    } else if whole(1_000) {
        format!("{}s", millis / 1_000)
    } else {
        format!("{millis}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_prefix_and_the_delays() {
        let config = DispatchConfig::default()
            .with_prefix("t1")
            .with_channels(["sms"]);
        let topology = Topology::new(&config);
        assert_eq!(topology.dispatch_exchange(), "t1.dispatch");
        assert_eq!(topology.work_queue("sms"), "t1.dispatch.sms");
        assert_eq!(
            topology.retry_queue("sms", 0).as_deref(),
            Some("t1.retry.sms.5s")
        );
        assert_eq!(
            topology.retry_queue("sms", 1).as_deref(),
            Some("t1.retry.sms.30s")
        );
        assert_eq!(
            topology.retry_queue("sms", 2).as_deref(),
            Some("t1.retry.sms.5m")
        );
        assert_eq!(topology.retry_queue("sms", 3), None);
        assert_eq!(topology.parking_queue("sms"), "t1.parking.sms");
        assert_eq!(topology.queues().len(), 5);
        assert_eq!(topology.pending_queues().len(), 4);
        assert_eq!(delay_name(Duration::from_millis(250)), "250ms");
        assert_eq!(delay_name(Duration::from_secs(3600)), "1h");
    }
}
