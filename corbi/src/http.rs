//! The HTTP side of the binary: both APIs on one port for `corbi up`, or one of them alone for
//! `corbi command-api` / `corbi query-api`. Each registers the readiness checks its side
//! depends on; other components (dispatcher, projector) add theirs to the same [`Readiness`].

use std::sync::Arc;

use command_api::{AuthSettings, CommandState};
use event_store::EventStore;
use event_store::data_keys::DataKeys;
use query_api::QueryState;
use service::auth::session::Sessions;
use service::readiness::{migrations_check, postgres_check};
use service::{Application, HttpApp, Readiness, ServiceConfig};
use sqlx::PgPool;

/// What the HTTP services need, built once by `main`.
#[derive(Clone)]
pub struct HttpDeps {
    /// The event log (Postgres or KurrentDB backend).
    pub store: Arc<dyn EventStore>,
    /// The database of the read models (`service::database::read_pool`).
    pub read_pool: PgPool,
    /// Shared with the other components so `/ready` shows all of them.
    pub readiness: Readiness,
    /// One per process, shared by both APIs, so a change either side makes is seen by both.
    pub sessions: Sessions,
}

impl HttpDeps {
    fn command_state(&self, config: &ServiceConfig) -> CommandState {
        self.readiness.register(
            "event_store",
            command_api::event_store_check(self.store.clone()),
        );
        self.readiness
            .register("migrations", migrations_check(self.read_pool.clone()));
        self.commands(config)
    }

    /// The command side's state over these dependencies (also what the import worker runs).
    pub fn commands(&self, config: &ServiceConfig) -> CommandState {
        CommandState::with_sessions(
            self.store.clone(),
            self.read_pool.clone(),
            AuthSettings::from_config(config),
            self.sessions.clone(),
        )
    }

    fn query_state(&self, config: &ServiceConfig) -> QueryState {
        self.readiness
            .register("read_db", postgres_check(self.read_pool.clone()));
        self.readiness
            .register("migrations", migrations_check(self.read_pool.clone()));
        QueryState::new(
            self.read_pool.clone(),
            config.consistency_timeout,
            self.sessions.clone(),
        )
        .with_log(
            self.store.clone(),
            DataKeys::new(self.read_pool.clone(), config.master_key.clone()),
        )
    }
}

/// `corbi up`: both APIs on `CORBI_HTTP_ADDR`, `GET`/`HEAD` to the query side and every other
/// method to the command side, with `/health`, `/ready`, `/metrics` and `/api/docs` once.
/// Binds before returning, so a taken port fails here rather than in the server task.
pub fn bind_all(config: &ServiceConfig, deps: &HttpDeps) -> anyhow::Result<Application> {
    let app = HttpApp::split_by_method(
        query_api::api(deps.query_state(config)),
        command_api::api(deps.command_state(config)),
        deps.readiness.clone(),
    );
    Ok(app.bind(config.http_addr)?)
}

/// [`bind_all`], then serves until SIGINT/SIGTERM.
pub async fn serve_all(config: &ServiceConfig, deps: HttpDeps) -> anyhow::Result<()> {
    bind_all(config, &deps)?.run_until_stopped().await?;
    Ok(())
}

/// `corbi command-api`: the command side alone on `CORBI_COMMAND_API_ADDR`.
pub async fn serve_command_api(config: &ServiceConfig, deps: HttpDeps) -> anyhow::Result<()> {
    command_api::run(config, deps.command_state(config), deps.readiness.clone()).await
}

/// `corbi query-api`: the query side alone on `CORBI_QUERY_API_ADDR`.
pub async fn serve_query_api(config: &ServiceConfig, deps: HttpDeps) -> anyhow::Result<()> {
    query_api::run(config, deps.query_state(config), deps.readiness.clone()).await
}
