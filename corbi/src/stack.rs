//! Wiring: which components a subcommand starts, on which connections, until when.

use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use dispatcher::{DispatchConfig, Dispatcher};
use event_store::EventStore;
use event_store::data_keys::DataKeys;
use event_store::postgres::PgEventStore;
use service::auth::session::Sessions;
use service::{CheckResult, EventStoreBackend, Readiness, ServiceConfig};
use sqlx::PgPool;
use tokio::sync::watch;

use crate::http::{self, HttpDeps};
use crate::{AdminCommand, Command};

/// How far a projection may trail the log before `/ready` says so.
const MAX_PROJECTION_LAG: Duration = Duration::from_secs(30);

pub async fn run(command: Command, config: ServiceConfig) -> anyhow::Result<()> {
    let pool = service::database::read_pool(&config)?;
    match command {
        Command::Migrate => migrate(&pool).await,
        Command::Replay { projection } => replay(&config, pool, &projection).await,
        Command::SeedDemo => crate::admin::seed_demo(admin_deps(&config, pool).await?).await,
        Command::Admin(AdminCommand::CreateUser { email, name }) => {
            crate::admin::create_user(admin_deps(&config, pool).await?, &email, &name).await
        }
        Command::Up => up(config, pool).await,
        Command::CommandApi => {
            let deps = deps(&config, pool).await?;
            let (stop, shutdown) = watch::channel(false);
            let imports = tokio::spawn(command_api::imports::run(deps.commands(&config), shutdown));
            let served = http::serve_command_api(&config, deps).await;
            stop.send_replace(true);
            imports.await?;
            served
        }
        Command::QueryApi => {
            let deps = deps(&config, pool).await?;
            register_projection_lag(&deps);
            http::serve_query_api(&config, deps).await
        }
        Command::Projector => {
            let store = event_store(&config).await?;
            let (stop, shutdown) = watch::channel(false);
            let projections = projector::all(&data_keys(&config, &pool));
            let projector = tokio::spawn(projector::run(
                store,
                pool,
                projections,
                projector::ProjectorConfig::default(),
                shutdown,
            ));
            shutdown_signal().await;
            stop.send_replace(true);
            projector.await?;
            Ok(())
        }
        Command::Dispatcher => {
            let store = event_store(&config).await?;
            dispatcher::run(dispatch_config(&config), store, pool, shutdown_signal()).await
        }
    }
}

/// `corbi up`: both APIs, the projector and the dispatcher in one process.
async fn up(config: ServiceConfig, pool: PgPool) -> anyhow::Result<()> {
    let deps = deps(&config, pool.clone()).await?;
    register_projection_lag(&deps);
    let dispatcher =
        Dispatcher::production(dispatch_config(&config), deps.store.clone(), pool.clone());
    let broker = dispatcher.broker().clone();
    deps.readiness.register("rabbitmq", move || {
        let connected = broker.is_connected();
        async move {
            if connected {
                CheckResult::ok("connected")
            } else {
                CheckResult::failed("not connected; retrying in the background")
            }
        }
    });
    let (stop, shutdown) = watch::channel(false);
    let projections = projector::all(&data_keys(&config, &pool));
    let projector = tokio::spawn(projector::run(
        deps.store.clone(),
        pool,
        projections,
        projector::ProjectorConfig::default(),
        shutdown.clone(),
    ));
    let imports = tokio::spawn(command_api::imports::run(deps.commands(&config), shutdown));
    let served = http::serve_all(&config, deps).await;
    tracing::info!("HTTP server stopped; stopping the projector, the dispatcher and imports");
    stop.send_replace(true);
    dispatcher.stop().await;
    projector.await?;
    imports.await?;
    served
}

/// What `corbi admin` and `corbi seed-demo` write with.
async fn admin_deps(config: &ServiceConfig, pool: PgPool) -> anyhow::Result<crate::admin::Deps> {
    Ok(crate::admin::Deps {
        store: event_store(config).await?,
        pool,
        keyring: config.master_key.clone(),
    })
}

/// The data keys that seal and open personal fields, under the configured master key.
fn data_keys(config: &ServiceConfig, pool: &PgPool) -> DataKeys {
    DataKeys::new(pool.clone(), config.master_key.clone())
}

async fn deps(config: &ServiceConfig, read_pool: PgPool) -> anyhow::Result<HttpDeps> {
    Ok(HttpDeps {
        store: event_store(config).await?,
        sessions: Sessions::new(read_pool.clone(), config.token_lifetimes),
        read_pool,
        readiness: Readiness::new(),
    })
}

fn register_projection_lag(deps: &HttpDeps) {
    let store = deps.store.clone();
    let pool = deps.read_pool.clone();
    deps.readiness.register("projections", move || {
        let store = store.clone();
        let pool = pool.clone();
        async move {
            match projector::lag(store.as_ref(), &pool).await {
                Ok(lags) => {
                    let detail = lags
                        .iter()
                        .map(|l| {
                            format!(
                                "{} g{} {:.1}s behind",
                                l.name,
                                l.generation,
                                l.behind.as_secs_f64()
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(", ");
                    if lags.iter().all(|l| l.behind <= MAX_PROJECTION_LAG) {
                        CheckResult::ok(detail)
                    } else {
                        CheckResult::failed(detail)
                    }
                }
                Err(error) => CheckResult::failed(format!("{error:#}")),
            }
        }
    });
}

/// The event log the configuration names. Postgres connects lazily; KurrentDB is retried with
/// backoff until it answers.
async fn event_store(config: &ServiceConfig) -> anyhow::Result<Arc<dyn EventStore>> {
    match &config.event_store {
        EventStoreBackend::Postgres => Ok(Arc::new(PgEventStore::connect(
            &config.database_url,
            config.db_pool_size,
        )?)),
        EventStoreBackend::KurrentDb { url } => kurrentdb(url).await,
    }
}

#[cfg(feature = "kurrentdb")]
async fn kurrentdb(url: &str) -> anyhow::Result<Arc<dyn EventStore>> {
    use event_store::kurrentdb::KurrentEventStore;
    let store = (|| KurrentEventStore::connect(url))
        .retry(
            ExponentialBuilder::default()
                .with_max_delay(Duration::from_secs(10))
                .without_max_times(),
        )
        .when(|e| e.is_transient())
        .notify(|error, delay| tracing::warn!(%error, ?delay, "KurrentDB unreachable; retrying"))
        .await?;
    Ok(Arc::new(store))
}

#[cfg(not(feature = "kurrentdb"))]
async fn kurrentdb(_url: &str) -> anyhow::Result<Arc<dyn EventStore>> {
    anyhow::bail!("CORBI_EVENT_STORE=kurrentdb needs a corbi built with `--features kurrentdb`")
}

fn dispatch_config(config: &ServiceConfig) -> DispatchConfig {
    let mut dispatch = DispatchConfig::new(&config.amqp_url);
    dispatch.prefix = config.amqp_prefix.clone();
    dispatch.prefetch = config.dispatch_prefetch;
    dispatch
}

/// Applies pending migrations, waiting (bounded) for Postgres to come up.
async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    let pending = (|| schema::pending_migrations(pool))
        .retry(
            ExponentialBuilder::default()
                .with_max_delay(Duration::from_secs(5))
                .with_max_times(8),
        )
        .notify(|error, delay| tracing::warn!(%error, ?delay, "Postgres unreachable; retrying"))
        .await?;
    schema::migrate(pool).await?;
    tracing::info!(applied = pending, "database is up to date");
    Ok(())
}

async fn replay(config: &ServiceConfig, pool: PgPool, name: &str) -> anyhow::Result<()> {
    let projections = projector::all(&data_keys(config, &pool));
    let Some(projection) = projections.iter().find(|p| p.name() == name) else {
        let known: Vec<_> = projections.iter().map(|p| p.name()).collect();
        anyhow::bail!("no projection named {name:?}; known: {}", known.join(", "));
    };
    let store = event_store(config).await?;
    let replayed =
        projector::replay(store, pool, projection.as_ref(), projector::Progress::Bar).await?;
    tracing::info!(
        projection = name,
        generation = replayed.generation,
        events = replayed.events,
        seconds = replayed.elapsed.as_secs_f64(),
        "replayed; readers now use generation {}",
        replayed.generation
    );
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for SIGTERM");
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
