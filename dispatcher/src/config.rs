use std::time::Duration;

/// The channels Corbi dispatches on; `test` carries the dispatch probes.
pub use events::DISPATCH_CHANNELS as CHANNELS;

/// How the dispatcher reaches RabbitMQ and what it declares there.
///
/// The queue arguments (`delivery_limit`, `retry_tiers`) are part of each queue's identity on
/// the broker: a queue cannot be redeclared with other arguments. Retry queues are named after
/// their delay, so changing a tier makes a new queue; changing `delivery_limit` on a live broker
/// needs the work queues deleted (or a policy) first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DispatchConfig {
    /// `AMQP_URL`, e.g. `amqp://guest:guest@127.0.0.1:5672/%2f`.
    pub amqp_url: String,
    /// `CORBI_AMQP_PREFIX`: every exchange and queue name starts with it.
    pub prefix: String,
    /// `CORBI_DISPATCH_PREFETCH`: unacknowledged jobs a worker holds per channel queue.
    pub prefetch: u16,
    /// The channels to declare, relay and consume.
    pub channels: Vec<String>,
    /// Deliveries of one job (redeliveries after a crash or a lost connection included) before
    /// RabbitMQ dead-letters it to the parking queue.
    pub delivery_limit: u32,
    /// The delays of the retry tiers, in the order a failing job goes through them. A job that
    /// fails once more after the last tier is parked.
    pub retry_tiers: Vec<Duration>,
    /// Log events the relay publishes per batch (one checkpoint write per batch).
    pub relay_batch: usize,
}

impl DispatchConfig {
    /// The defaults, with `amqp_url`.
    pub fn new(amqp_url: impl Into<String>) -> Self {
        Self {
            amqp_url: amqp_url.into(),
            ..Self::default()
        }
    }

    /// The same configuration with another prefix (tests use a unique one each).
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The same configuration with only these channels.
    pub fn with_channels<I, S>(mut self, channels: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.channels = channels.into_iter().map(Into::into).collect();
        self
    }
}

impl Default for DispatchConfig {
    fn default() -> Self {
        Self {
            amqp_url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
            prefix: "corbi".into(),
            prefetch: 64,
            channels: CHANNELS.iter().map(|c| (*c).to_string()).collect(),
            delivery_limit: 20,
            retry_tiers: vec![
                Duration::from_secs(5),
                Duration::from_secs(30),
                Duration::from_secs(5 * 60),
            ],
            relay_batch: 1_000,
        }
    }
}
