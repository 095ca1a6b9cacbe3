//! The signed-in user's own account: `POST /api/v1/auth/password` (change the password, which
//! ends every session and starts a new one for the caller) and
//! `DELETE /api/v1/me/sessions/{session_id}` (sign out one of their sessions elsewhere).

use actix_web::{HttpRequest, HttpResponse, web};
use domain::user::{User, UserCommand, UserError};
use events::Actor;
use events::user::{self, SessionEnd};
use serde::Deserialize;
use service::auth::{self, Authenticated, password};
use service::{ApiError, Problem, RequestId};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::{Tokens, hash_password, load_credentials, store_credentials};
use crate::{CommandState, aggregate};

pub const PASSWORD: &str = "/api/v1/auth/password";
pub const SESSION: &str = "/api/v1/me/sessions/{session_id}";

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    pub current_password: String,
    /// At least 10 characters.
    pub new_password: String,
}

fn user_rejected(error: UserError) -> ApiError {
    match error {
        UserError::NotFound => ApiError::Unauthorized("This account no longer exists.".into()),
        other => ApiError::Conflict(other.to_string()),
    }
}

/// Change the password. Every session ends, this one included; the answer is a new token pair
/// for the caller.
#[utoipa::path(
    post,
    path = "/api/v1/auth/password",
    tag = "auth",
    security(("bearer" = [])),
    request_body = ChangePassword,
    responses(
        (status = 200, description = "Changed; every other session has ended", body = Tokens),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Wrong current password, or the new one is too short", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "change_password", skip_all, fields(user_id = %caller.0.user_id))]
pub async fn change_password(
    state: web::Data<CommandState>,
    caller: Authenticated,
    request: HttpRequest,
    request_id: RequestId,
    body: web::Json<ChangePassword>,
) -> Result<HttpResponse, ApiError> {
    let ChangePassword {
        current_password,
        new_password,
    } = body.into_inner();
    password::validate(&new_password)
        .map_err(|e| ApiError::validation("new_password", e.to_string()))?;
    let user_id = caller.0.user_id;
    let stored = load_credentials(&state.pool, user_id).await?;
    let verified = tokio::task::spawn_blocking(move || {
        stored.is_some_and(|hash| password::verify(&current_password, &hash))
    })
    .await
    .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("verifying a password")))?;
    if !verified {
        return Err(ApiError::validation("current_password", "is wrong"));
    }
    let hash = hash_password(new_password).await?;
    store_credentials(&state.pool, user_id, &hash).await?;
    // The new hash is in place: end every session before anything else can fail, so a stolen
    // token never outlives the password change.
    state
        .sessions
        .end_all(user_id)
        .await
        .map_err(auth::unavailable)?;
    let client = auth::client(&request);
    let metadata = client.metadata(Actor::User { id: user_id }, Some(request_id.to_string()));
    let stream = user::stream(user_id);
    // The change itself records that every session ended.
    aggregate::execute::<User>(
        &*state.store,
        &stream,
        Uuid::nil(),
        UserCommand::ChangePassword,
        &metadata,
        user_rejected,
    )
    .await?;
    let family_id = Uuid::now_v7();
    aggregate::execute::<User>(
        &*state.store,
        &stream,
        Uuid::nil(),
        UserCommand::SignIn { family_id },
        &metadata,
        user_rejected,
    )
    .await?;
    let issued = state
        .sessions
        .start_family(user_id, family_id, &client)
        .await
        .map_err(auth::unavailable)?;
    Ok(HttpResponse::Ok().json(Tokens::from_issued(user_id, &issued)))
}

/// Sign out one of the caller's sessions (see `GET /api/v1/me/sessions`).
#[utoipa::path(
    delete,
    path = "/api/v1/me/sessions/{session_id}",
    tag = "auth",
    security(("bearer" = [])),
    params(("session_id" = Uuid, Path, description = "The session")),
    responses(
        (status = 204, description = "Ended"),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such live session of the caller", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "revoke_session", skip_all, fields(user_id = %caller.0.user_id, session_id = %path))]
pub async fn revoke_session(
    state: web::Data<CommandState>,
    caller: Authenticated,
    request: HttpRequest,
    request_id: RequestId,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let user_id = caller.0.user_id;
    let family_id = path.into_inner();
    let ended = state
        .sessions
        .end_family(user_id, family_id)
        .await
        .map_err(auth::unavailable)?;
    if ended == 0 {
        return Err(ApiError::NotFound("No such session.".into()));
    }
    let metadata =
        auth::client(&request).metadata(Actor::User { id: user_id }, Some(request_id.to_string()));
    aggregate::execute::<User>(
        &*state.store,
        &user::stream(user_id),
        Uuid::nil(),
        UserCommand::EndSessions {
            family_id: Some(family_id),
            reason: SessionEnd::Revoked,
        },
        &metadata,
        user_rejected,
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
