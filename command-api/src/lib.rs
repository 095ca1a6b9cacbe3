//! Corbi's write side over HTTP: validates commands, appends their events and answers with a
//! consistency token (DESIGN §4). It never writes a read model.
//!
//! Mount it with [`api`] (alone with [`run`], or beside the query side with
//! `service::HttpApp::split_by_method`).

pub mod auth;
pub mod dispatch_probes;
pub mod idempotency;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use event_store::{EventStore, StoreError};
use service::auth::session::{Sessions, TokenLifetimes};
use service::{Api, ApiError, CheckResult, HttpApp, Readiness, ServiceConfig};
use sqlx::PgPool;
use utoipa::OpenApi;

/// What the command handlers share.
#[derive(Clone)]
pub struct CommandState {
    pub store: Arc<dyn EventStore>,
    /// The command side's own tables (credentials, sessions).
    pub pool: PgPool,
    pub sessions: Sessions,
    pub auth: AuthSettings,
}

/// The deployment's choices about accounts.
#[derive(Debug, Clone, Copy)]
pub struct AuthSettings {
    pub open_registration: bool,
    pub token_lifetimes: TokenLifetimes,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            open_registration: true,
            token_lifetimes: TokenLifetimes::default(),
        }
    }
}

impl AuthSettings {
    pub fn from_config(config: &ServiceConfig) -> Self {
        Self {
            open_registration: config.open_registration,
            token_lifetimes: config.token_lifetimes,
        }
    }
}

impl CommandState {
    pub fn new(store: Arc<dyn EventStore>, pool: PgPool, auth: AuthSettings) -> Self {
        Self {
            store,
            sessions: Sessions::new(pool.clone(), auth.token_lifetimes),
            pool,
            auth,
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    paths(
        dispatch_probes::request_dispatch_probe,
        auth::register,
        auth::sign_in,
        auth::refresh,
        auth::sign_out,
    ),
    tags(
        (name = "dispatch probes", description = "End-to-end checks of the dispatch pipeline"),
        (name = "auth", description = "Accounts, sign-in and sessions"),
    )
)]
struct CommandDoc;

/// The command side's OpenAPI paths.
pub fn openapi() -> utoipa::openapi::OpenApi {
    CommandDoc::openapi()
}

/// Registers the command routes and their state on `cfg`.
pub fn configure(cfg: &mut web::ServiceConfig, state: CommandState) {
    cfg.app_data(web::Data::new(state.sessions.clone()))
        .app_data(web::Data::new(state))
        .service(
            web::resource(dispatch_probes::PATH)
                .route(web::post().to(dispatch_probes::request_dispatch_probe)),
        )
        .service(web::resource(auth::REGISTER).route(web::post().to(auth::register)))
        .service(web::resource(auth::SIGN_IN).route(web::post().to(auth::sign_in)))
        .service(web::resource(auth::REFRESH).route(web::post().to(auth::refresh)))
        .service(web::resource(auth::SIGN_OUT).route(web::post().to(auth::sign_out)));
}

/// The command side as a mountable API.
pub fn api(state: CommandState) -> Api {
    Api::new("command-api", openapi(), move |cfg| {
        configure(cfg, state.clone())
    })
}

/// One-service mode (`corbi command-api`): serves the command side alone on
/// `CORBI_COMMAND_API_ADDR` until stopped.
pub async fn run(
    config: &ServiceConfig,
    state: CommandState,
    readiness: Readiness,
) -> anyhow::Result<()> {
    HttpApp::new(api(state), readiness)
        .bind(config.command_api_addr)?
        .run_until_stopped()
        .await?;
    Ok(())
}

/// A readiness check that the event store answers (reads its head position).
pub fn event_store_check(
    store: Arc<dyn EventStore>,
) -> impl Fn() -> Pin<Box<dyn Future<Output = CheckResult> + Send>> + Send + Sync + 'static {
    move || {
        let store = store.clone();
        Box::pin(async move {
            match store.head().await {
                Ok(Some(head)) => CheckResult::ok(format!("reachable, head at {head}")),
                Ok(None) => CheckResult::ok("reachable, empty log"),
                Err(error) => CheckResult::failed(error.to_string()),
            }
        })
    }
}

/// How an append failure that is not the handler's own business reaches the client.
fn store_error(error: StoreError, doing: &'static str) -> ApiError {
    match error {
        StoreError::Unavailable(detail) => {
            tracing::warn!(%detail, "event store unavailable while {doing}");
            ApiError::Unavailable {
                detail: "The event store is unavailable; retry shortly.".into(),
                retry_after: Some(Duration::from_secs(1)),
            }
        }
        other => ApiError::Internal(anyhow::Error::new(other).context(doing)),
    }
}
