//! Accounts and sessions: `POST /api/v1/auth/{register,sign-in,refresh,sign-out}`.
//!
//! A sign-in email is unique across the deployment through its reservation stream, which is
//! also how a sign-in finds the user: reading one stream is consistent at once, so an account
//! can sign in the moment it exists. Users belong to no organisation; their events carry the
//! nil org id.

use actix_web::{HttpRequest, HttpResponse, web};
use domain::Aggregate;
use domain::organisation::{Organisation, OrganisationCommand, OrganisationError};
use domain::reservation::{Reservation, ReservationCommand, ReservationError};
use domain::user::{User, UserCommand, UserError};
use event_store::{EventStore, ExpectedVersion, StoreError, StreamAppend};
use events::reservation::{self, Scope};
use events::user::{self, SessionEnd};
use events::{Actor, Email, Metadata};
use serde::{Deserialize, Serialize};
use service::auth::session::{Issued, Refreshed};
use service::auth::throttle::{SignInLimits, SignInThrottle};
use service::auth::{self, Authenticated, password};
use service::{ApiError, FieldError, Problem, RequestId};
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::aggregate::{self, MAX_ATTEMPTS, encode, expected};
use crate::{CommandState, store_error};

pub const REGISTER: &str = "/api/v1/auth/register";
pub const SIGN_IN: &str = "/api/v1/auth/sign-in";
pub const REFRESH: &str = "/api/v1/auth/refresh";
pub const SIGN_OUT: &str = "/api/v1/auth/sign-out";

/// The answer to a wrong password and to an unknown email alike.
const WRONG_CREDENTIALS: &str = "The email or the password is wrong.";

/// The answer once an account or an address has failed too often; the same for either, so it
/// says nothing about which limit was reached or whether the account exists.
const TOO_MANY_FAILURES: &str =
    "Too many failed sign-ins; try again after the time in Retry-After.";

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    #[schema(example = "ada@example.com")]
    pub email: String,
    /// At least 10 characters.
    pub password: String,
    #[schema(example = "Ada Lovelace")]
    pub name: String,
    /// An invitation for this email: the account joins its organisation.
    pub invitation_token: Option<String>,
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
    pub(crate) fn from_issued(user_id: Uuid, issued: &Issued) -> Self {
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

/// Create an account and sign it in. With an `invitation_token` (for this email) the account
/// joins that organisation too, and registration works even when open registration is off.
#[utoipa::path(
    post,
    path = "/api/v1/auth/register",
    tag = "auth",
    request_body = Registration,
    responses(
        (status = 201, description = "Registered and signed in", body = Tokens),
        (status = 403, description = "Open registration is switched off, or the invitation is for another email", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such invitation", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The email is registered already", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "The invitation expired or was used or revoked", body = Problem, content_type = "application/problem+json"),
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
    let Registration {
        email,
        password,
        name,
        invitation_token,
    } = body.into_inner();
    if !state.auth.open_registration && invitation_token.is_none() {
        return Err(ApiError::Forbidden(
            "Open registration is switched off; ask an administrator for an invitation.".into(),
        ));
    }
    let (email, name) = validate_registration(&email, &password, &name)?;
    let user_id = Uuid::now_v7();
    tracing::Span::current().record("user_id", tracing::field::display(user_id));
    if let Some(token) = &invitation_token {
        // Checked before the account exists, so a bad invitation leaves no account behind.
        check_invitation(&state, token, user_id, &email).await?;
    }
    let client = auth::client(&request);
    let metadata = client.metadata(Actor::User { id: user_id }, Some(request_id.to_string()));
    let family_id = Uuid::now_v7();
    register_account(
        &state,
        NewAccount {
            user_id,
            email: email.clone(),
            name,
            password,
            family_id: Some(family_id),
        },
        &metadata,
    )
    .await?;
    if let Some(token) = &invitation_token {
        crate::invitations::join(&state, token, user_id, email, &metadata).await?;
    }
    let issued = state
        .sessions
        .start_family(user_id, family_id, &client)
        .await
        .map_err(auth::unavailable)?;
    Ok(HttpResponse::Created().json(Tokens::from_issued(user_id, &issued)))
}

/// Creates an account without signing it in (`corbi admin create-user`, `corbi seed-demo`): it
/// works whether open registration is on or off.
pub async fn create_user(
    state: &CommandState,
    email: Email,
    name: String,
    password: String,
) -> Result<Uuid, ApiError> {
    let (email, name) = validate_registration(email.as_str(), &password, &name)?;
    let user_id = Uuid::now_v7();
    let metadata = Metadata {
        actor: Actor::System {
            name: "corbi-admin".into(),
        },
        ..Metadata::default()
    };
    register_account(
        state,
        NewAccount {
            user_id,
            email,
            name,
            password,
            family_id: None,
        },
        &metadata,
    )
    .await?;
    Ok(user_id)
}

/// The fields of a registration, each bad one named.
fn validate_registration(
    email: &str,
    password: &str,
    name: &str,
) -> Result<(Email, String), ApiError> {
    let mut errors = Vec::new();
    let email = Email::parse(email)
        .map_err(|e| errors.push(FieldError::new("email", e.to_string())))
        .ok();
    if let Err(e) = password::validate(password) {
        errors.push(FieldError::new("password", e.to_string()));
    }
    let name = domain::organisation::valid_name(name)
        .map_err(|_| errors.push(FieldError::new("name", UserError::InvalidName.to_string())))
        .ok();
    match (email, name) {
        (Some(email), Some(name)) if errors.is_empty() => Ok((email, name)),
        _ => Err(ApiError::Validation { errors }),
    }
}

/// Whether `token` would let `user_id` with `email` join, without joining.
async fn check_invitation(
    state: &CommandState,
    token: &str,
    user_id: Uuid,
    email: &Email,
) -> Result<(), ApiError> {
    let unknown = || ApiError::NotFound("No such invitation.".into());
    let parsed = crate::invitations::InvitationToken::parse(token).ok_or_else(unknown)?;
    let (org, _) = aggregate::load::<Organisation>(
        &*state.store,
        &events::organisation::stream(parsed.org_id),
    )
    .await?;
    org.decide(OrganisationCommand::AcceptInvitation {
        invitation_id: parsed.invitation_id,
        token_hash: parsed.secret_hash,
        user_id,
        email: email.clone(),
        now: chrono::Utc::now(),
    })
    .map_err(|e| match e {
        OrganisationError::NotFound => unknown(),
        other => crate::organisations::rejected(other),
    })?;
    Ok(())
}

/// What a new account starts with.
struct NewAccount {
    user_id: Uuid,
    email: Email,
    name: String,
    password: String,
    /// The session family of the sign-in that comes with registering, if it does.
    family_id: Option<Uuid>,
}

/// Claims the email and records the account; the password hash goes to `credentials`.
async fn register_account(
    state: &CommandState,
    account: NewAccount,
    metadata: &Metadata,
) -> Result<(), ApiError> {
    let NewAccount {
        user_id,
        email,
        name,
        password,
        family_id,
    } = account;
    let hash = hash_password(password).await?;
    // Written before the account exists: if the append below fails, an unreferenced row is
    // left, which no sign-in can reach.
    store_credentials(&state.pool, user_id, &hash).await?;
    let mut user_events = User::default()
        .decide(UserCommand::Register {
            user_id,
            email: email.clone(),
            name,
        })
        .map_err(|e| {
            ApiError::Internal(anyhow::Error::new(e).context("deciding a registration"))
        })?;
    if let Some(family_id) = family_id {
        let registered = User::fold(&user_events);
        user_events.extend(
            registered
                .decide(UserCommand::SignIn { family_id })
                .map_err(|e| {
                    ApiError::Internal(anyhow::Error::new(e).context("deciding a first sign-in"))
                })?,
        );
    }
    let reservation_stream = reservation::stream(&Scope::UserEmail, email.as_str());
    for _ in 0..MAX_ATTEMPTS {
        let (held, version) =
            aggregate::load::<Reservation>(&*state.store, &reservation_stream).await?;
        let claim = held
            .decide(ReservationCommand::Reserve { owner: user_id })
            .map_err(|ReservationError::Taken { .. }| email_taken())?;
        // The reservation goes first: on a backend without cross-stream transactions a
        // failure then leaves at most a claim, never an account without its email.
        let appends = vec![
            StreamAppend::new(
                &reservation_stream,
                expected(version),
                encode(&claim, Uuid::nil(), metadata)?,
            ),
            StreamAppend::new(
                user::stream(user_id),
                ExpectedVersion::NoStream,
                encode(&user_events, Uuid::nil(), metadata)?,
            ),
        ];
        match state.store.append_to_streams(appends).await {
            Ok(_) => return Ok(()),
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
        (status = 429, description = "Too many failed sign-ins for this account or from this address; retry after `Retry-After` seconds", body = Problem, content_type = "application/problem+json"),
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
    let ip = auth::client(&request).ip;
    let throttle = SignInThrottle::new(state.pool.clone(), SignInLimits::default());
    // Checked before the password, and refused even when it is right: otherwise a guesser could
    // keep guessing and tell the right password by the answer changing from 429 to 200.
    if let Some(retry_after) = throttle
        .check(email.as_str(), ip.as_deref())
        .await
        .map_err(throttle_unavailable)?
    {
        return Err(ApiError::TooManyRequests {
            detail: TOO_MANY_FAILURES.into(),
            retry_after,
        });
    }
    let stream = reservation::stream(&Scope::UserEmail, email.as_str());
    let holder = match aggregate::load::<Reservation>(&*state.store, &stream)
        .await?
        .0
    {
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
        // Unknown emails count under their own key like real accounts, so neither the 401 nor a
        // later 429 tells which emails have accounts.
        throttle
            .record_failure(email.as_str(), ip.as_deref())
            .await
            .map_err(throttle_unavailable)?;
        return Err(ApiError::Unauthorized(WRONG_CREDENTIALS.into()));
    };
    tracing::Span::current().record("user_id", tracing::field::display(user_id));
    // The password was right, so the earlier failures were the owner's typos. Failing to forget
    // them only leaves the owner nearer the limit, which is no reason to refuse this sign-in.
    if let Err(error) = throttle.clear_account(email.as_str()).await {
        tracing::warn!(error = %format!("{error:#}"), "could not clear sign-in failures");
    }
    let family_id = Uuid::now_v7();
    let client = auth::client(&request);
    let metadata = client.metadata(Actor::User { id: user_id }, Some(request_id.to_string()));
    decide_user(
        &*state.store,
        user_id,
        UserCommand::SignIn { family_id },
        &metadata,
    )
    .await?;
    let issued = state
        .sessions
        .start_family(user_id, family_id, &client)
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
            let metadata = auth::client(&request).metadata(
                Actor::System {
                    name: "session-guard".into(),
                },
                Some(request_id.to_string()),
            );
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
    request: HttpRequest,
    request_id: RequestId,
) -> Result<HttpResponse, ApiError> {
    let session = caller.0;
    state
        .sessions
        .end_family(session.user_id, session.family_id)
        .await
        .map_err(auth::unavailable)?;
    let metadata = auth::client(&request).metadata(
        Actor::User {
            id: session.user_id,
        },
        Some(request_id.to_string()),
    );
    let end = UserCommand::EndSessions {
        family_id: Some(session.family_id),
        reason: SessionEnd::SignedOut,
    };
    match decide_user(&*state.store, session.user_id, end, &metadata).await {
        Ok(()) | Err(ApiError::NotFound(_)) => Ok(HttpResponse::NoContent().finish()),
        Err(error) => Err(error),
    }
}

/// The failure table could not answer. Sign-in then fails closed: letting attempts through
/// unthrottled would turn an outage into a window for guessing.
fn throttle_unavailable(error: anyhow::Error) -> ApiError {
    tracing::warn!(error = %format!("{error:#}"), "sign-in throttle unavailable");
    ApiError::Unavailable {
        detail: "Sign-in is unavailable right now; retry shortly.".into(),
        retry_after: Some(std::time::Duration::from_secs(1)),
    }
}

fn email_taken() -> ApiError {
    ApiError::Conflict("email: an account with this email exists already".into())
}

/// Loads the user, decides `command` and appends what it decided, again on a concurrent change.
async fn decide_user(
    store: &dyn EventStore,
    user_id: Uuid,
    command: UserCommand,
    metadata: &Metadata,
) -> Result<(), ApiError> {
    aggregate::execute::<User>(
        store,
        &user::stream(user_id),
        Uuid::nil(),
        command,
        metadata,
        |e| match e {
            UserError::NotFound => ApiError::NotFound("No such user.".into()),
            other => ApiError::Conflict(other.to_string()),
        },
    )
    .await
    .map(|_| ())
}

pub(crate) async fn hash_password(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || password::hash(&password))
        .await
        .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("hashing a password")))?
        .map_err(ApiError::Internal)
}

pub(crate) async fn store_credentials(
    pool: &PgPool,
    user_id: Uuid,
    hash: &str,
) -> Result<(), ApiError> {
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

pub(crate) async fn load_credentials(
    pool: &PgPool,
    user_id: Uuid,
) -> Result<Option<String>, ApiError> {
    sqlx::query_scalar("SELECT password_hash FROM credentials WHERE user_id = $1")
        .bind(user_id)
        .fetch_optional(pool)
        .await
        .map_err(|e| auth::unavailable(e.into()))
}
