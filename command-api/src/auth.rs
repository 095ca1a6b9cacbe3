//! Accounts and sessions: `POST /api/v1/auth/{register,sign-in,refresh,sign-out}`.
//!
//! A sign-in email is unique across the deployment through its reservation stream, which is
//! also how a sign-in finds the user: reading one stream is consistent at once, so an account
//! can sign in the moment it exists. Users belong to no organisation; their events carry the
//! nil org id.

use actix_web::{HttpRequest, HttpResponse, web};
use domain::Aggregate;
use domain::reservation::{Reservation, ReservationCommand, ReservationError};
use domain::user::{User, UserCommand, UserError};
use event_store::{Direction, EventStore, ExpectedVersion, StoreError, StreamAppend};
use events::reservation::{self, ReservationEvent, Scope};
use events::user::{self, SessionEnd, UserEvent};
use events::{Actor, Email, Metadata, NewEvent, RecordedEvent, TypedEvent, Upcasters};
use serde::{Deserialize, Serialize};
use service::auth::session::{Issued, Refreshed};
use service::auth::{self, Authenticated, password};
use service::{ApiError, FieldError, Problem, RequestId};
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{CommandState, store_error};

pub const REGISTER: &str = "/api/v1/auth/register";
pub const SIGN_IN: &str = "/api/v1/auth/sign-in";
pub const REFRESH: &str = "/api/v1/auth/refresh";
pub const SIGN_OUT: &str = "/api/v1/auth/sign-out";

/// How often a decision is taken again when another writer moved a stream in between.
const MAX_ATTEMPTS: usize = 5;

/// The answer to a wrong password and to an unknown email alike.
const WRONG_CREDENTIALS: &str = "The email or the password is wrong.";

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    #[schema(example = "ada@example.com")]
    pub email: String,
    /// At least 10 characters.
    pub password: String,
    #[schema(example = "Ada Lovelace")]
    pub name: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// A token pair. Send the access token as `Authorization: Bearer …`; trade the refresh token
/// for a new pair before the access token expires. Each refresh token works once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Tokens {
    pub user_id: Uuid,
    #[schema(example = "Bearer")]
    pub token_type: String,
    pub access_token: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    pub refresh_token: String,
    /// Seconds until the refresh token expires.
    pub refresh_expires_in: i64,
}

impl Tokens {
    fn from_issued(user_id: Uuid, issued: &Issued) -> Self {
        let now = chrono::Utc::now();
        Tokens {
            user_id,
            token_type: "Bearer".into(),
            access_token: issued.access.expose().to_owned(),
            expires_in: (issued.access_expires_at - now).num_seconds(),
            refresh_token: issued.refresh.expose().to_owned(),
            refresh_expires_in: (issued.refresh_expires_at - now).num_seconds(),
        }
    }
}

/// Create an account and sign it in.
#[utoipa::path(
    post,
    path = "/api/v1/auth/register",
    tag = "auth",
    request_body = Registration,
    responses(
        (status = 201, description = "Registered and signed in", body = Tokens),
        (status = 403, description = "Open registration is switched off", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The email is registered already", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "register", skip_all, fields(user_id = tracing::field::Empty))]
pub async fn register(
    state: web::Data<CommandState>,
    request: HttpRequest,
    request_id: RequestId,
    body: web::Json<Registration>,
) -> Result<HttpResponse, ApiError> {
    if !state.auth.open_registration {
        return Err(ApiError::Forbidden(
            "Open registration is switched off; ask an administrator for an invitation.".into(),
        ));
    }
    let Registration {
        email,
        password,
        name,
    } = body.into_inner();
    let mut errors = Vec::new();
    let email = Email::parse(&email)
        .map_err(|e| errors.push(FieldError::new("email", e.to_string())))
        .ok();
    if let Err(e) = password::validate(&password) {
        errors.push(FieldError::new("password", e.to_string()));
    }
    if domain::organisation::valid_name(&name).is_err() {
        errors.push(FieldError::new("name", UserError::InvalidName.to_string()));
    }
    let (Some(email), true) = (email, errors.is_empty()) else {
        return Err(ApiError::Validation { errors });
    };

    let user_id = Uuid::now_v7();
    tracing::Span::current().record("user_id", tracing::field::display(user_id));
    let family_id = Uuid::now_v7();
    let hash = hash_password(password).await?;
    // Written before the account exists: if the append below fails, an unreferenced row is
    // left, which no sign-in can reach.
    store_credentials(&state.pool, user_id, &hash).await?;

    let metadata = Metadata {
        actor: Actor::User { id: user_id },
        trace_id: Some(request_id.to_string()),
        ..Metadata::default()
    };
    let user_events = User::default()
        .decide(UserCommand::Register {
            user_id,
            email: email.clone(),
            name,
        })
        .and_then(|mut events| {
            let registered = User::fold(&events);
            events.extend(registered.decide(UserCommand::SignIn { family_id })?);
            Ok(events)
        })
        .map_err(|e| {
            ApiError::Internal(anyhow::Error::new(e).context("deciding a registration"))
        })?;
    let reservation_stream = reservation::stream(&Scope::UserEmail, email.as_str());
    for _ in 0..MAX_ATTEMPTS {
        let (held, version) = read_reservation(&*state.store, &reservation_stream).await?;
        let claim = held
            .decide(ReservationCommand::Reserve { owner: user_id })
            .map_err(|ReservationError::Taken { .. }| email_taken())?;
        // The reservation goes first: on a backend without cross-stream transactions a
        // failure then leaves at most a claim, never an account without its email.
        let appends = vec![
            StreamAppend::new(
                &reservation_stream,
                expected(version),
                encode(&claim, &metadata)?,
            ),
            StreamAppend::new(
                user::stream(user_id),
                ExpectedVersion::NoStream,
                encode(&user_events, &metadata)?,
            ),
        ];
        match state.store.append_to_streams(appends).await {
            Ok(_) => {
                let issued = state
                    .sessions
                    .start_family(user_id, family_id, &auth::client(&request))
                    .await
                    .map_err(auth::unavailable)?;
                return Ok(HttpResponse::Created().json(Tokens::from_issued(user_id, &issued)));
            }
            Err(StoreError::WrongExpectedVersion { stream, .. })
                if stream == reservation_stream =>
            {
                continue;
            }
            Err(error) => return Err(store_error(error, "appending a registration")),
        }
    }
    Err(ApiError::Conflict(
        "The email changed hands while registering; try again.".into(),
    ))
}

/// Sign in with email and password.
#[utoipa::path(
    post,
    path = "/api/v1/auth/sign-in",
    tag = "auth",
    request_body = SignIn,
    responses(
        (status = 200, description = "Signed in", body = Tokens),
        (status = 401, description = "Wrong email or password", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "sign_in", skip_all, fields(user_id = tracing::field::Empty))]
pub async fn sign_in(
    state: web::Data<CommandState>,
    request: HttpRequest,
    request_id: RequestId,
    body: web::Json<SignIn>,
) -> Result<HttpResponse, ApiError> {
    let SignIn { email, password } = body.into_inner();
    let email = Email::parse(&email).map_err(|e| ApiError::validation("email", e.to_string()))?;
    let stream = reservation::stream(&Scope::UserEmail, email.as_str());
    let holder = match read_reservation(&*state.store, &stream).await?.0 {
        Reservation::HeldBy(user_id) => Some(user_id),
        Reservation::Free => None,
    };
    let stored = match holder {
        Some(user_id) => load_credentials(&state.pool, user_id).await?,
        None => None,
    };
    // Unknown accounts cost a verification too, so the answer's timing tells nothing.
    let verified = tokio::task::spawn_blocking(move || match &stored {
        Some(hash) => password::verify(&password, hash),
        None => {
            password::verify_nothing(&password);
            false
        }
    })
    .await
    .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("verifying a password")))?;
    let (Some(user_id), true) = (holder, verified) else {
        return Err(ApiError::Unauthorized(WRONG_CREDENTIALS.into()));
    };
    tracing::Span::current().record("user_id", tracing::field::display(user_id));
    let family_id = Uuid::now_v7();
    let metadata = Metadata {
        actor: Actor::User { id: user_id },
        trace_id: Some(request_id.to_string()),
        ..Metadata::default()
    };
    decide_user(
        &*state.store,
        user_id,
        UserCommand::SignIn { family_id },
        &metadata,
    )
    .await?;
    let issued = state
        .sessions
        .start_family(user_id, family_id, &auth::client(&request))
        .await
        .map_err(auth::unavailable)?;
    Ok(HttpResponse::Ok().json(Tokens::from_issued(user_id, &issued)))
}

/// Trade a refresh token for a new token pair.
///
/// Each refresh token works once. Presenting one a second time ends its whole session: somebody
/// else may hold a copy.
#[utoipa::path(
    post,
    path = "/api/v1/auth/refresh",
    tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "A new token pair", body = Tokens),
        (status = 401, description = "Unknown, expired, revoked or reused refresh token", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "refresh", skip_all)]
pub async fn refresh(
    state: web::Data<CommandState>,
    request: HttpRequest,
    request_id: RequestId,
    body: web::Json<RefreshRequest>,
) -> Result<HttpResponse, ApiError> {
    let refreshed = state
        .sessions
        .refresh(&body.refresh_token, &auth::client(&request))
        .await
        .map_err(auth::unavailable)?;
    match refreshed {
        Refreshed::Issued { user_id, issued } => {
            Ok(HttpResponse::Ok().json(Tokens::from_issued(user_id, &issued)))
        }
        Refreshed::Invalid => Err(ApiError::Unauthorized(
            "The refresh token is invalid, expired or revoked; sign in again.".into(),
        )),
        Refreshed::Reused { user_id, family_id } => {
            let metadata = Metadata {
                actor: Actor::System {
                    name: "session-guard".into(),
                },
                trace_id: Some(request_id.to_string()),
                ..Metadata::default()
            };
            let end = UserCommand::EndSessions {
                family_id: Some(family_id),
                reason: SessionEnd::RefreshReused,
            };
            match decide_user(&*state.store, user_id, end, &metadata).await {
                Ok(()) | Err(ApiError::NotFound(_)) => {}
                Err(error) => return Err(error),
            }
            Err(ApiError::Unauthorized(
                "This refresh token was used before, so its session has been ended; sign in again."
                    .into(),
            ))
        }
    }
}

/// Sign out: ends the caller's session (every token pair of it).
#[utoipa::path(
    post,
    path = "/api/v1/auth/sign-out",
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Signed out"),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "sign_out", skip_all, fields(user_id = %caller.0.user_id))]
pub async fn sign_out(
    state: web::Data<CommandState>,
    caller: Authenticated,
    request_id: RequestId,
) -> Result<HttpResponse, ApiError> {
    let session = caller.0;
    state
        .sessions
        .end_family(session.family_id)
        .await
        .map_err(auth::unavailable)?;
    let metadata = Metadata {
        actor: Actor::User {
            id: session.user_id,
        },
        trace_id: Some(request_id.to_string()),
        ..Metadata::default()
    };
    let end = UserCommand::EndSessions {
        family_id: Some(session.family_id),
        reason: SessionEnd::SignedOut,
    };
    match decide_user(&*state.store, session.user_id, end, &metadata).await {
        Ok(()) | Err(ApiError::NotFound(_)) => Ok(HttpResponse::NoContent().finish()),
        Err(error) => Err(error),
    }
}

fn email_taken() -> ApiError {
    ApiError::Conflict("email: an account with this email exists already".into())
}

fn expected(version: Option<u64>) -> ExpectedVersion {
    version.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact)
}

fn encode<E: TypedEvent>(events: &[E], metadata: &Metadata) -> Result<Vec<NewEvent>, ApiError> {
    events
        .iter()
        .map(|event| {
            event
                .to_new_event(Uuid::nil())
                .map(|e| e.with_metadata(metadata.clone()))
                .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("encoding an event")))
        })
        .collect()
}

/// A whole (short) stream, decoded.
async fn read_events<E: TypedEvent>(
    store: &dyn EventStore,
    stream: &str,
) -> Result<(Vec<E>, Option<u64>), ApiError> {
    let recorded: Vec<RecordedEvent> = store
        .read_stream(stream, None, Direction::Forwards, usize::MAX)
        .await
        .map_err(|e| store_error(e, "reading a stream"))?;
    let version = recorded.last().map(|e| e.version);
    let upcasters = Upcasters::default();
    let mut events = Vec::with_capacity(recorded.len());
    for event in &recorded {
        if let Some(decoded) = E::decode(event, &upcasters)
            .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("decoding an event")))?
        {
            events.push(decoded);
        }
    }
    Ok((events, version))
}

async fn read_reservation(
    store: &dyn EventStore,
    stream: &str,
) -> Result<(Reservation, Option<u64>), ApiError> {
    let (events, version) = read_events::<ReservationEvent>(store, stream).await?;
    Ok((Reservation::fold(&events), version))
}

/// Loads the user, decides `command` and appends what it decided, again on a concurrent change.
async fn decide_user(
    store: &dyn EventStore,
    user_id: Uuid,
    command: UserCommand,
    metadata: &Metadata,
) -> Result<(), ApiError> {
    let stream = user::stream(user_id);
    for _ in 0..MAX_ATTEMPTS {
        let (history, version) = read_events::<UserEvent>(store, &stream).await?;
        let decided = User::fold(&history)
            .decide(command.clone())
            .map_err(|e| match e {
                UserError::NotFound => ApiError::NotFound("No such user.".into()),
                other => ApiError::Conflict(other.to_string()),
            })?;
        if decided.is_empty() {
            return Ok(());
        }
        match store
            .append(&stream, expected(version), encode(&decided, metadata)?)
            .await
        {
            Ok(_) => return Ok(()),
            Err(StoreError::WrongExpectedVersion { .. }) => continue,
            Err(error) => return Err(store_error(error, "appending to a user")),
        }
    }
    Err(ApiError::Conflict(
        "The account changed concurrently; try again.".into(),
    ))
}

async fn hash_password(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || password::hash(&password))
        .await
        .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("hashing a password")))?
        .map_err(ApiError::Internal)
}

async fn store_credentials(pool: &PgPool, user_id: Uuid, hash: &str) -> Result<(), ApiError> {
    sqlx::query(
        "INSERT INTO credentials (user_id, password_hash) VALUES ($1, $2)
         ON CONFLICT (user_id) DO UPDATE SET password_hash = $2, updated_at = now()",
    )
    .bind(user_id)
    .bind(hash)
    .execute(pool)
    .await
    .map_err(|e| auth::unavailable(e.into()))?;
    Ok(())
}

async fn load_credentials(pool: &PgPool, user_id: Uuid) -> Result<Option<String>, ApiError> {
    sqlx::query_scalar("SELECT password_hash FROM credentials WHERE user_id = $1")
        .bind(user_id)
        .fetch_optional(pool)
        .await
        .map_err(|e| auth::unavailable(e.into()))
}
