//! Corbi's read side over HTTP: serves the read models (`rm_*`) the projector maintains,
//! scoped by organisation, honouring consistency tokens. It never appends.
//!
//! Mount it with [`api`] (alone with [`run`], or beside the command side with
//! `service::HttpApp::split_by_method`).

pub mod audit;
pub mod contact_conflicts;
pub mod contact_export;
pub mod contacts;
pub mod custom_fields;
pub mod event_stats;
pub mod groups;
pub mod imports;
pub mod me;
pub mod organisation;
pub mod page;

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use event_store::EventStore;
use event_store::data_keys::DataKeys;
use service::auth::session::Sessions;
use service::routing::read;
use service::{Api, ApiError, HttpApp, Readiness, ServiceConfig};
use sqlx::PgPool;
use utoipa::OpenApi;

/// What the query handlers share.
#[derive(Clone)]
pub struct QueryState {
    /// The database holding the read models.
    pub pool: PgPool,
    /// How long a query waits for its `X-Consistency-Token` (`CORBI_CONSISTENCY_TIMEOUT_MS`).
    pub consistency_timeout: Duration,
    /// Who callers are; shared with the command side when both run in one process.
    pub sessions: Sessions,
    /// The log itself, for what read models do not keep (a contact as it was at a past time).
    pub log: Option<Log>,
}

/// Reading the event log directly, with the keys that open its personal fields.
#[derive(Clone)]
pub struct Log {
    pub store: Arc<dyn EventStore>,
    pub data_keys: DataKeys,
}

impl QueryState {
    pub fn new(pool: PgPool, consistency_timeout: Duration, sessions: Sessions) -> Self {
        Self {
            pool,
            consistency_timeout,
            sessions,
            log: None,
        }
    }

    /// Waits, bounded, until every projection a query reads has passed `token` (if given): a
    /// query over two read models must see the write in both.
    pub async fn settle(
        &self,
        token: service::consistency::ConsistencyToken,
        projections: &[&str],
    ) -> Result<(), ApiError> {
        let Some(token) = token.0 else { return Ok(()) };
        for projection in projections {
            service::consistency::wait_for_projection(
                &self.pool,
                projection,
                token,
                self.consistency_timeout,
            )
            .await?;
        }
        Ok(())
    }

    /// With the event log, for history queries (`?as_of=`).
    pub fn with_log(mut self, store: Arc<dyn EventStore>, data_keys: DataKeys) -> Self {
        self.log = Some(Log { store, data_keys });
        self
    }
}

#[derive(OpenApi)]
#[openapi(
    paths(
        event_stats::event_stats,
        me::me,
        me::sessions,
        organisation::organisation,
        organisation::logo,
        organisation::members,
        organisation::invitations,
        organisation::api_keys,
        audit::audit,
        contacts::list,
        contacts::detail,
        contacts::timeline,
        contact_export::export,
        imports::status,
        imports::rows,
        groups::list,
        groups::detail,
        groups::members,
        custom_fields::list,
        contact_conflicts::list,
    ),
    tags(
        (name = "monitoring", description = "What happens in an organisation's event log"),
        (name = "audit", description = "Who changed what, when and from where"),
    )
)]
struct QueryDoc;

/// The query side's OpenAPI paths.
pub fn openapi() -> utoipa::openapi::OpenApi {
    QueryDoc::openapi()
}

/// Registers the query routes (`GET`/`HEAD` only) and their state on `cfg`.
pub fn configure(cfg: &mut web::ServiceConfig, state: QueryState) {
    cfg.app_data(web::Data::new(state.sessions.clone()))
        .app_data(web::Data::new(state))
        .service(web::resource(event_stats::PATH).route(read().to(event_stats::event_stats)))
        .service(web::resource(me::ME).route(read().to(me::me)))
        .service(web::resource(me::SESSIONS).route(read().to(me::sessions)))
        .service(
            web::resource(organisation::ORGANISATION).route(read().to(organisation::organisation)),
        )
        .service(web::resource(organisation::LOGO).route(read().to(organisation::logo)))
        .service(web::resource(organisation::MEMBERS).route(read().to(organisation::members)))
        .service(
            web::resource(organisation::INVITATIONS).route(read().to(organisation::invitations)),
        )
        .service(web::resource(organisation::API_KEYS).route(read().to(organisation::api_keys)))
        .service(web::resource(audit::PATH).route(read().to(audit::audit)))
        .service(web::resource(contacts::CONTACTS).route(read().to(contacts::list)))
        // Before CONTACT, whose `{contact_id}` would otherwise take the path.
        .service(web::resource(contact_export::EXPORT).route(read().to(contact_export::export)))
        .service(web::resource(imports::IMPORT).route(read().to(imports::status)))
        .service(web::resource(imports::ROWS).route(read().to(imports::rows)))
        .service(web::resource(contacts::CONTACT).route(read().to(contacts::detail)))
        .service(web::resource(contacts::TIMELINE).route(read().to(contacts::timeline)))
        .service(web::resource(groups::GROUPS).route(read().to(groups::list)))
        .service(web::resource(groups::GROUP).route(read().to(groups::detail)))
        .service(web::resource(groups::MEMBERS).route(read().to(groups::members)))
        .service(web::resource(custom_fields::FIELDS).route(read().to(custom_fields::list)))
        .service(web::resource(contact_conflicts::PATH).route(read().to(contact_conflicts::list)));
}

/// The projection memberships, organisations and API keys are read from.
pub const ACCESS: &str = "access";

/// The query side as a mountable API.
pub fn api(state: QueryState) -> Api {
    Api::new("query-api", openapi(), move |cfg| {
        configure(cfg, state.clone())
    })
}

/// One-service mode (`corbi query-api`): serves the query side alone on
/// `CORBI_QUERY_API_ADDR` until stopped.
pub async fn run(
    config: &ServiceConfig,
    state: QueryState,
    readiness: Readiness,
) -> anyhow::Result<()> {
    HttpApp::new(api(state), readiness)
        .bind(config.query_api_addr)?
        .run_until_stopped()
        .await?;
    Ok(())
}

/// A read-model query failure: 503 when the database cannot be reached or the read model is
/// not built yet (both worth a retry), 500 otherwise.
fn db_error(error: sqlx::Error, doing: &'static str) -> ApiError {
    const UNDEFINED_TABLE: &str = "42P01";
    match error {
        sqlx::Error::Database(db) if db.code().as_deref() == Some(UNDEFINED_TABLE) => {
            tracing::warn!(error = %db, "read model missing while {doing}");
            ApiError::Unavailable {
                detail: "This read model is not built yet; retry shortly.".into(),
                retry_after: Some(Duration::from_secs(5)),
            }
        }
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
            tracing::warn!(%error, "read database unavailable while {doing}");
            ApiError::Unavailable {
                detail: "The read database is unavailable; retry shortly.".into(),
                retry_after: Some(Duration::from_secs(1)),
            }
        }
        other => ApiError::Internal(anyhow::Error::new(other).context(doing)),
    }
}
