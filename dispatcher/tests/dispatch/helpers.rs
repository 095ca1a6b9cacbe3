//! Shared set-up: a fresh database, a unique RabbitMQ prefix, probe helpers, bounded waits and a
//! TCP proxy that can cut every connection through it.

use std::collections::HashMap;
use std::future::Future;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use dispatcher::{DispatchConfig, Topology};
use event_store::postgres::PgEventStore;
use event_store::{AppendResult, EventStore, ExpectedVersion};
use events::TypedEvent;
use events::probe::{self, ProbeEvent};
use futures::StreamExt;
use lapin::{Connection, ConnectionProperties};
use schema::testing::TestDatabase;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinHandle};
use tokio::time::Instant;
use uuid::Uuid;

pub fn amqp_url() -> String {
    std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "warn,dispatcher=info".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

/// One test's world: its own database and its own exchange/queue prefix.
pub struct TestEnv {
    pub db: TestDatabase,
    pub store: Arc<PgEventStore>,
    pub config: DispatchConfig,
    pub org_id: Uuid,
}

impl TestEnv {
    /// Short retry tiers and a low delivery limit, on the `test` channel only.
    pub async fn new() -> anyhow::Result<TestEnv> {
        init_tracing();
        let db = TestDatabase::create().await?;
        let store = Arc::new(PgEventStore::connect(&db.url, 8)?);
        let prefix = format!("corbi-test-{}", &Uuid::new_v4().simple().to_string()[..12]);
        let config = DispatchConfig {
            delivery_limit: 3,
            retry_tiers: vec![Duration::from_millis(300), Duration::from_millis(600)],
            ..DispatchConfig::new(amqp_url())
                .with_prefix(prefix)
                .with_channels(["test"])
        };
        Ok(TestEnv {
            db,
            store,
            config,
            org_id: Uuid::now_v7(),
        })
    }

    pub fn store(&self) -> Arc<dyn EventStore> {
        self.store.clone()
    }

    pub fn topology(&self) -> Topology {
        Topology::new(&self.config)
    }

    /// The log's head position.
    pub async fn head(&self) -> Option<events::Position> {
        self.store.head().await.expect("head read")
    }

    /// Appends `n` probe requests on `channel`, each to its own stream.
    pub async fn request_probes(
        &self,
        n: usize,
        channel: &str,
    ) -> anyhow::Result<Vec<(Uuid, AppendResult)>> {
        let appends = (0..n).map(|_| async {
            let probe_id = Uuid::now_v7();
            let event = ProbeEvent::DispatchProbeRequested {
                probe_id,
                channel: channel.to_string(),
            }
            .to_new_event(self.org_id)?;
            let result = self
                .store
                .append(
                    &probe::stream(probe_id),
                    ExpectedVersion::NoStream,
                    vec![event],
                )
                .await?;
            anyhow::Ok((probe_id, result))
        });
        let results: Vec<_> = futures::stream::iter(appends)
            .buffer_unordered(8)
            .collect()
            .await;
        results.into_iter().collect()
    }

    /// `DispatchProbeCompleted` events per probe stream.
    pub async fn completions(&self) -> anyhow::Result<HashMap<String, i64>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT stream, count(*) FROM events \
             WHERE event_type = 'DispatchProbeCompleted' GROUP BY stream",
        )
        .fetch_all(&self.db.pool)
        .await?;
        Ok(rows.into_iter().collect())
    }

    /// Waits (bounded) until `n` probe streams have a completion.
    pub async fn wait_for_completions(&self, n: usize, timeout: Duration) -> anyhow::Result<()> {
        let completions = wait_until(timeout, || async {
            let done = self.completions().await?;
            Ok((done.len() >= n).then_some(done.len()))
        })
        .await;
        completions
            .with_context(|| format!("{n} probes not completed within {timeout:?}"))
            .map(|_| ())
    }

    /// Asserts that every probe in `probes` completed exactly once and nothing else did.
    pub async fn assert_each_completed_once(&self, probes: &[(Uuid, AppendResult)]) {
        let completions = self.completions().await.expect("completions read");
        for (probe_id, _) in probes {
            let count = completions.get(&probe::stream(*probe_id)).copied();
            assert_eq!(count, Some(1), "probe {probe_id} completed {count:?} times");
        }
        assert_eq!(completions.len(), probes.len(), "unexpected completions");
    }

    /// Ready messages in every queue of the topology.
    pub async fn queue_counts(&self) -> anyhow::Result<Vec<(String, u32)>> {
        let connection = Connection::connect(&amqp_url(), ConnectionProperties::default()).await?;
        let channel = connection.create_channel().await?;
        let mut counts = Vec::new();
        for queue in self.topology().queues() {
            let count = Topology::message_count(&channel, &queue.name).await?;
            counts.push((queue.name, count));
        }
        connection.close(200, "done".into()).await?;
        Ok(counts)
    }

    pub async fn assert_queues_empty(&self) {
        let counts = self.queue_counts().await.expect("queue counts read");
        assert!(
            counts.iter().all(|(_, count)| *count == 0),
            "messages left: {counts:?}"
        );
    }

    /// Deletes the test's exchanges and queues.
    pub async fn cleanup(self) {
        let deleted = async {
            let connection =
                Connection::connect(&amqp_url(), ConnectionProperties::default()).await?;
            let channel = connection.create_channel().await?;
            self.topology().delete(&channel).await?;
            connection.close(200, "done".into()).await
        }
        .await;
        if let Err(error) = deleted {
            tracing::warn!(%error, "test topology not deleted");
        }
    }
}

/// Polls `check` every 20 ms until it yields a value, at most `timeout`.
pub async fn wait_until<T, F, Fut>(timeout: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            anyhow::bail!("condition not met within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A TCP proxy in front of RabbitMQ whose connections a test can cut, like a network failure
/// or a broker restart would, without touching connections of other tests.
pub struct TcpProxy {
    pub url: String,
    connections: Arc<Mutex<Vec<AbortHandle>>>,
    accept: JoinHandle<()>,
}

impl TcpProxy {
    pub async fn start(amqp_url: &str) -> anyhow::Result<TcpProxy> {
        let uri = lapin::uri::AMQPUri::from_str(amqp_url).map_err(anyhow::Error::msg)?;
        let target = format!("{}:{}", uri.authority.host, uri.authority.port);
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let url = amqp_url.replacen(&target, &format!("127.0.0.1:{port}"), 1);
        anyhow::ensure!(url != amqp_url, "AMQP_URL must name host:port explicitly");
        let connections: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let accept = tokio::spawn({
            let connections = connections.clone();
            async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    let target = target.clone();
                    let task = tokio::spawn(async move {
                        if let Ok(mut upstream) = TcpStream::connect(&target).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut upstream).await;
                        }
                    });
                    connections
                        .lock()
                        .expect("proxy lock")
                        .push(task.abort_handle());
                }
            }
        });
        Ok(TcpProxy {
            url,
            connections,
            accept,
        })
    }

    /// Cuts every connection made so far; the proxy keeps accepting new ones.
    pub fn kill_all(&self) -> usize {
        let mut connections = self.connections.lock().expect("proxy lock");
        let live = connections.iter().filter(|c| !c.is_finished()).count();
        for connection in connections.drain(..) {
            connection.abort();
        }
        live
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.kill_all();
    }
}
