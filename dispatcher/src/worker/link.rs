//! A job task's handle on the RabbitMQ session its job came from.

use std::future::Future;
use std::time::Duration;

use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicNackOptions, BasicPublishOptions};
use lapin::{BasicProperties, Channel, Confirmation};

use crate::broker::Session;

/// The longest a job task waits for RabbitMQ to take an ack or confirm a publish.
const BROKER_CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// What a job task needs of the session it was delivered on. Every broker call is bounded: by
/// the session being lost (its acks are void then) and by a timeout, so a job task never
/// hangs on a dead connection.
pub(super) struct Link {
    pub(super) session: Session,
    pub(super) publisher: Channel,
}

impl Link {
    async fn bounded<T>(&self, what: &str, call: impl Future<Output = T>) -> Option<T> {
        tokio::select! {
            result = call => Some(result),
            () = self.session.lost() => {
                tracing::debug!("{what} skipped: the connection is lost; the job will be redelivered");
                None
            }
            () = tokio::time::sleep(BROKER_CALL_TIMEOUT) => {
                tracing::warn!("{what} timed out; the job will be redelivered");
                None
            }
        }
    }

    /// Publishes a copy of a job (mandatory, confirmed); whether the broker took it.
    pub(super) async fn forward(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        properties: BasicProperties,
    ) -> bool {
        let published = async {
            self.publisher
                .basic_publish(
                    exchange.into(),
                    routing_key.into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    body,
                    properties,
                )
                .await?
                .await
        };
        match self.bounded("publish", published).await {
            Some(Ok(Confirmation::Ack(None))) => true,
            Some(Ok(other)) => {
                tracing::warn!(
                    ?other,
                    exchange,
                    routing_key,
                    "RabbitMQ did not take the job"
                );
                false
            }
            Some(Err(error)) => {
                tracing::warn!(%error, exchange, routing_key, "publishing the job failed");
                false
            }
            None => false,
        }
    }

    /// Acks; whether the ack went out. A lost ack means RabbitMQ redelivers the job, which
    /// then finds its outcome.
    pub(super) async fn ack(&self, delivery: &Delivery) -> bool {
        match self
            .bounded("ack", delivery.ack(BasicAckOptions::default()))
            .await
        {
            Some(Ok(true)) => true,
            Some(Ok(false)) => {
                tracing::debug!("ack not sent: the channel is closed; the job will be redelivered");
                false
            }
            Some(Err(error)) => {
                tracing::debug!(%error, "ack failed; the job will be redelivered");
                false
            }
            None => false,
        }
    }

    /// Hands the job back to its queue; the queue's delivery limit parks it if this repeats.
    pub(super) async fn requeue(&self, delivery: &Delivery) {
        let options = BasicNackOptions {
            requeue: true,
            ..BasicNackOptions::default()
        };
        if let Some(Err(error)) = self.bounded("nack", delivery.nack(options)).await {
            tracing::debug!(%error, "nack failed; the job will be redelivered");
        }
    }
}
