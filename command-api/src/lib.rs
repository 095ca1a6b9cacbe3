//! Corbi's write side over HTTP: validates commands, appends their events and answers with a
//! consistency token (DESIGN §4). It never writes a read model.
//!
//! Mount it with [`api`] (alone with [`run`], or beside the query side with
//! `service::HttpApp::split_by_method`).

pub mod account;
pub mod aggregate;
pub mod api_keys;
pub mod auth;
pub mod contact_conflicts;
pub mod contact_merges;
pub mod contacts;
pub mod custom_fields;
pub mod dispatch_probes;
pub mod groups;
pub mod idempotency;
pub mod identities;
pub mod imports;
pub mod invitations;
pub mod members;
pub mod organisations;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{HttpResponse, HttpResponseBuilder, web};
use event_store::data_keys::DataKeys;
use event_store::{EventStore, StoreError};
use events::{Keyring, Position};
use serde::Serialize;
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
    /// Seal personal fields before they are appended, and open them when streams are read.
    pub data_keys: DataKeys,
    /// The organisations' custom field definitions, which contact writes check values against.
    pub definitions: custom_fields::DefinitionsCache,
}

/// The deployment's choices the command side follows.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub open_registration: bool,
    pub token_lifetimes: TokenLifetimes,
    /// How long a command waits for a read model it depends on (`CORBI_CONSISTENCY_TIMEOUT_MS`):
    /// one that changes access, for the `access` read model to have it before answering; a
    /// merge, for the `groups` read model to have every membership.
    pub read_model_wait: Duration,
    /// The master keys data keys are wrapped under (`CORBI_MASTER_KEY`); the public development
    /// key by default.
    pub keyring: Arc<Keyring>,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            open_registration: true,
            token_lifetimes: TokenLifetimes::default(),
            read_model_wait: Duration::from_secs(5),
            keyring: Arc::new(Keyring::development()),
        }
    }
}

impl AuthSettings {
    pub fn from_config(config: &ServiceConfig) -> Self {
        Self {
            open_registration: config.open_registration,
            token_lifetimes: config.token_lifetimes,
            read_model_wait: config.consistency_timeout,
            keyring: config.master_key.clone(),
        }
    }
}

impl CommandState {
    /// The command side with sessions of its own (it runs alone in its process).
    pub fn new(store: Arc<dyn EventStore>, pool: PgPool, auth: AuthSettings) -> Self {
        let sessions = Sessions::new(pool.clone(), auth.token_lifetimes);
        Self::with_sessions(store, pool, auth, sessions)
    }

    /// The command side sharing `sessions` (and their cache) with the query side.
    pub fn with_sessions(
        store: Arc<dyn EventStore>,
        pool: PgPool,
        auth: AuthSettings,
        sessions: Sessions,
    ) -> Self {
        let flushed_by_log = store.flushes_earlier_database_commits();
        Self {
            store,
            sessions: sessions.with_lifetimes(auth.token_lifetimes),
            data_keys: DataKeys::new(pool.clone(), auth.keyring.clone())
                .flushed_by_log(flushed_by_log),
            definitions: custom_fields::DefinitionsCache::new(pool.clone()),
            pool,
            auth,
        }
    }

    /// Waits, bounded, until the `access` read model has the write at `position`, so the next
    /// request is authorised by it: a revoked key or a removed member is refused from then on.
    /// If the projector lags beyond the bound the write still stands; the answer carries its
    /// consistency token either way.
    pub async fn settle_access(&self, position: Option<Position>) {
        let Some(position) = position else { return };
        // Zero: nobody is waiting (the command line, with no projector running yet).
        if self.auth.read_model_wait.is_zero() {
            return;
        }
        if let Err(error) = service::consistency::wait_for_projection(
            &self.pool,
            ACCESS_PROJECTION,
            position,
            self.auth.read_model_wait,
        )
        .await
        {
            tracing::warn!(%error, %position, "access read model lags behind a write");
        }
        // The projector's notification may still be on its way; this process knows now.
        self.sessions.cache().forget_all();
    }
}

/// The projection requests are authorised against.
pub const ACCESS_PROJECTION: &str = "access";

/// For `Option<Option<T>>` body fields: sent, `null` included, is `Some(..)`; left out is `None`
/// (with `#[serde(default)]`).
pub(crate) fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    <Option<T> as serde::Deserialize>::deserialize(deserializer).map(Some)
}

/// A write's answer: `body` with the `X-Consistency-Token` header when something was appended.
pub(crate) fn written(
    mut response: HttpResponseBuilder,
    position: Option<Position>,
    body: &impl Serialize,
) -> HttpResponse {
    if let Some(position) = position {
        response.insert_header((CONSISTENCY_TOKEN_HEADER, position.to_string()));
    }
    response.json(body)
}

/// The header a write's consistency token is also sent in.
pub use service::consistency::HEADER as CONSISTENCY_TOKEN_HEADER;

/// A failure of the command side's own tables (credentials, logos): 503, cause in the log.
pub(crate) fn db_error(error: sqlx::Error, doing: &'static str) -> ApiError {
    tracing::warn!(%error, "database unavailable while {doing}");
    ApiError::Unavailable {
        detail: "The database is unavailable; retry shortly.".into(),
        retry_after: Some(Duration::from_secs(1)),
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
        account::change_password,
        account::revoke_session,
        organisations::create,
        organisations::update,
        organisations::upload_logo,
        members::change_role,
        members::remove,
        invitations::invite,
        invitations::resend,
        invitations::revoke,
        invitations::accept,
        api_keys::create,
        api_keys::revoke,
        contacts::create,
        contacts::update,
        contacts::change_status,
        contacts::delete,
        contacts::restore,
        imports::submit,
        groups::create,
        groups::update,
        groups::delete,
        groups::add_contacts,
        groups::remove_contacts,
        groups::remove_contact,
        custom_fields::define,
        custom_fields::change,
        custom_fields::remove,
        contact_conflicts::resolve,
        contact_merges::merge,
        contact_merges::unmerge,
    ),
    tags(
        (name = "dispatch probes", description = "End-to-end checks of the dispatch pipeline"),
        (name = "auth", description = "Accounts, sign-in and sessions"),
        (name = "organisations", description = "Organisations and their branding"),
        (name = "members", description = "Members of an organisation and their roles"),
        (name = "invitations", description = "Invitations to join an organisation"),
        (name = "api keys", description = "Keys for server-to-server calls"),
        (name = "contacts", description = "People across WhatsApp, email, Telegram and Instagram"),
        (name = "groups", description = "Named sets of contacts, with live member counts"),
        (name = "custom fields", description = "The extra fields an organisation keeps on its contacts"),
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
        .service(web::resource(auth::SIGN_OUT).route(web::post().to(auth::sign_out)))
        .service(web::resource(account::PASSWORD).route(web::post().to(account::change_password)))
        .service(web::resource(account::SESSION).route(web::delete().to(account::revoke_session)))
        .service(
            web::resource(organisations::ORGANISATIONS)
                .route(web::post().to(organisations::create)),
        )
        .service(
            web::resource(organisations::ORGANISATION)
                .route(web::patch().to(organisations::update)),
        )
        .service(
            web::resource(organisations::LOGO)
                .app_data(organisations::logo_payload_config())
                .route(web::put().to(organisations::upload_logo)),
        )
        .service(
            web::resource(members::MEMBER)
                .route(web::patch().to(members::change_role))
                .route(web::delete().to(members::remove)),
        )
        .service(web::resource(invitations::INVITATIONS).route(web::post().to(invitations::invite)))
        .service(web::resource(invitations::ACCEPT).route(web::post().to(invitations::accept)))
        .service(web::resource(invitations::RESEND).route(web::post().to(invitations::resend)))
        .service(
            web::resource(invitations::INVITATION).route(web::delete().to(invitations::revoke)),
        )
        .service(web::resource(api_keys::API_KEYS).route(web::post().to(api_keys::create)))
        .service(web::resource(api_keys::API_KEY).route(web::delete().to(api_keys::revoke)))
        .service(web::resource(contacts::CONTACTS).route(web::post().to(contacts::create)))
        // Before CONTACT, whose `{contact_id}` would otherwise take the path.
        .service(
            web::resource(imports::IMPORTS)
                .app_data(imports::payload_config())
                .route(web::post().to(imports::submit)),
        )
        .service(
            web::resource(contacts::CONTACT)
                .route(web::patch().to(contacts::update))
                .route(web::delete().to(contacts::delete)),
        )
        .service(web::resource(contacts::STATUS).route(web::post().to(contacts::change_status)))
        .service(web::resource(contacts::RESTORE).route(web::post().to(contacts::restore)))
        .service(web::resource(groups::GROUPS).route(web::post().to(groups::create)))
        .service(
            web::resource(groups::GROUP)
                .route(web::patch().to(groups::update))
                .route(web::delete().to(groups::delete)),
        )
        .service(web::resource(groups::MEMBERS).route(web::post().to(groups::add_contacts)))
        // Before MEMBER, whose `{contact_id}` would otherwise take the path.
        .service(
            web::resource(groups::REMOVE_MEMBERS).route(web::post().to(groups::remove_contacts)),
        )
        .service(web::resource(groups::MEMBER).route(web::delete().to(groups::remove_contact)))
        .service(web::resource(custom_fields::FIELDS).route(web::post().to(custom_fields::define)))
        .service(
            web::resource(custom_fields::FIELD)
                .route(web::patch().to(custom_fields::change))
                .route(web::delete().to(custom_fields::remove)),
        )
        .service(
            web::resource(contact_conflicts::RESOLVE)
                .route(web::post().to(contact_conflicts::resolve)),
        )
        .service(web::resource(contact_merges::MERGE).route(web::post().to(contact_merges::merge)))
        .service(
            web::resource(contact_merges::UNMERGE).route(web::post().to(contact_merges::unmerge)),
        );
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
