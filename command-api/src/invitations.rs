//! Invitations: admins invite an email with a role (`POST /api/v1/invitations`), resend
//! (`POST /api/v1/invitations/{id}/resend`) or revoke (`DELETE /api/v1/invitations/{id}`) it; the
//! invitee accepts with the token (`POST /api/v1/invitations/accept`), signed in with the invited
//! address — or registers with it (`invitation_token` on `POST /api/v1/auth/register`).
//!
//! The token the invitee gets is `<organisation id>.<invitation id>.<secret>`: it names the
//! organisation stream to check it against, and only the secret's hash is stored. Until outbound
//! email exists the link goes back to the admin who invited.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use domain::organisation::{INVITATION_TTL, OrganisationCommand, OrganisationError};
use domain::user::User;
use events::organisation::OrganisationEvent;
use events::{Actor, Email, Role};
use serde::{Deserialize, Serialize};
use service::auth::secret::{self, Kind, Secret};
use service::auth::{self, Authenticated};
use service::{ApiError, Caller, FieldError, Problem, RequestId};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::organisations::{execute, parse_role};
use crate::{CommandState, aggregate, written};

pub const INVITATIONS: &str = "/api/v1/invitations";
pub const INVITATION: &str = "/api/v1/invitations/{invitation_id}";
pub const RESEND: &str = "/api/v1/invitations/{invitation_id}/resend";
pub const ACCEPT: &str = "/api/v1/invitations/accept";

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Invite {
    #[schema(example = "grace@example.com")]
    pub email: String,
    /// `admin`, `staff` or `viewer`.
    #[schema(example = "staff")]
    pub role: String,
}

/// An invitation with its token: shown once, to the admin who created or resent it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InvitationIssued {
    pub invitation_id: Uuid,
    pub email: String,
    #[schema(value_type = String, example = "staff")]
    pub role: Role,
    pub expires_at: DateTime<Utc>,
    /// What the invitee presents to accept; works once, until `expires_at`.
    pub token: String,
    /// The link to send the invitee.
    pub link: String,
    pub consistency_token: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Accept {
    pub token: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Joined {
    pub organisation_id: Uuid,
    #[schema(value_type = String, example = "staff")]
    pub role: Role,
    pub consistency_token: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InvitationWritten {
    pub invitation_id: Uuid,
    pub consistency_token: Option<String>,
}

/// The parts of an invitation token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvitationToken {
    pub org_id: Uuid,
    pub invitation_id: Uuid,
    pub secret_hash: String,
}

impl InvitationToken {
    /// `None` for anything that is not shaped like a token: it answers "no such invitation".
    pub fn parse(text: &str) -> Option<InvitationToken> {
        let mut parts = text.trim().splitn(3, '.');
        let org_id = parts.next()?.parse().ok()?;
        let invitation_id = parts.next()?.parse().ok()?;
        let secret = parts.next()?;
        secret::is_shaped_like(secret, Kind::Invitation).then(|| InvitationToken {
            org_id,
            invitation_id,
            secret_hash: secret::hash(secret),
        })
    }
}

fn issue(
    request: &HttpRequest,
    org_id: Uuid,
    invitation_id: Uuid,
) -> Result<(Secret, String, String), ApiError> {
    let secret = Secret::generate(Kind::Invitation).map_err(ApiError::Internal)?;
    let token = format!("{org_id}.{invitation_id}.{}", secret.expose());
    let info = request.connection_info();
    let link = format!(
        "{}://{}/invitations/accept?token={token}",
        info.scheme(),
        info.host()
    );
    Ok((secret, token, link))
}

/// Invite an email address with a role (admins). The answer holds the link to send.
#[utoipa::path(
    post,
    path = "/api/v1/invitations",
    tag = "invitations",
    security(("bearer" = []), ("api_key" = [])),
    params(("X-Org-ID" = Option<Uuid>, Header, description = "The organisation; optional when the caller belongs to one")),
    request_body = Invite,
    responses(
        (status = 201, description = "Invited", body = InvitationIssued),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already a member, or already invited", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid email or role", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "invite", skip_all, fields(org_id = %caller.org_id))]
pub async fn invite(
    state: web::Data<CommandState>,
    caller: Caller,
    request: HttpRequest,
    body: web::Json<Invite>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Admin)?;
    let mut errors = Vec::new();
    let email = Email::parse(&body.email)
        .map_err(|e| errors.push(FieldError::new("email", e.to_string())))
        .ok();
    let role = parse_role("role", &body.role)
        .map_err(|e| {
            if let ApiError::Validation { errors: more } = e {
                errors.extend(more);
            }
        })
        .ok();
    let (Some(email), Some(role)) = (email, role) else {
        return Err(ApiError::Validation { errors });
    };
    let invitation_id = Uuid::now_v7();
    let (secret, token, link) = issue(&request, caller.org_id, invitation_id)?;
    let now = Utc::now();
    let decided = execute(
        &state,
        caller.org_id,
        OrganisationCommand::Invite {
            invitation_id,
            email: email.clone(),
            role,
            token_hash: secret.hash.clone(),
            now,
        },
        &caller.metadata(),
    )
    .await?;
    Ok(written(
        HttpResponse::Created(),
        decided.position,
        &InvitationIssued {
            invitation_id,
            email: email.as_str().to_owned(),
            role,
            expires_at: expires_at(&decided.events).unwrap_or(now + INVITATION_TTL),
            token,
            link,
            consistency_token: decided.position.map(|p| p.to_string()),
        },
    ))
}

fn expires_at(events: &[OrganisationEvent]) -> Option<DateTime<Utc>> {
    events.iter().find_map(|event| match event {
        OrganisationEvent::InvitationCreated { expires_at, .. }
        | OrganisationEvent::InvitationResent { expires_at, .. } => Some(*expires_at),
        _ => None,
    })
}

/// Issue a new link for a pending invitation (admins): the old one stops working and the
/// seven days start again.
#[utoipa::path(
    post,
    path = "/api/v1/invitations/{invitation_id}/resend",
    tag = "invitations",
    security(("bearer" = []), ("api_key" = [])),
    params(
        ("invitation_id" = Uuid, Path, description = "The invitation"),
        ("X-Org-ID" = Option<Uuid>, Header, description = "The organisation; optional when the caller belongs to one"),
    ),
    responses(
        (status = 200, description = "A new link", body = InvitationIssued),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such invitation", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "Accepted or revoked already", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "resend_invitation", skip_all, fields(org_id = %caller.org_id, invitation_id = %path))]
pub async fn resend(
    state: web::Data<CommandState>,
    caller: Caller,
    request: HttpRequest,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Admin)?;
    let invitation_id = path.into_inner();
    let (secret, token, link) = issue(&request, caller.org_id, invitation_id)?;
    let now = Utc::now();
    let decided = execute(
        &state,
        caller.org_id,
        OrganisationCommand::ResendInvitation {
            invitation_id,
            token_hash: secret.hash.clone(),
            now,
        },
        &caller.metadata(),
    )
    .await?;
    let (org, _) = aggregate::load::<domain::organisation::Organisation>(
        &*state.store,
        &events::organisation::stream(caller.org_id),
    )
    .await?;
    let invitation = org
        .invitations
        .get(&invitation_id)
        .ok_or_else(|| ApiError::NotFound("No such invitation.".into()))?;
    Ok(written(
        HttpResponse::Ok(),
        decided.position,
        &InvitationIssued {
            invitation_id,
            email: invitation.email.as_str().to_owned(),
            role: invitation.role,
            expires_at: expires_at(&decided.events).unwrap_or(invitation.expires_at),
            token,
            link,
            consistency_token: decided.position.map(|p| p.to_string()),
        },
    ))
}

/// Revoke a pending invitation (admins): its link stops working at once.
#[utoipa::path(
    delete,
    path = "/api/v1/invitations/{invitation_id}",
    tag = "invitations",
    security(("bearer" = []), ("api_key" = [])),
    params(
        ("invitation_id" = Uuid, Path, description = "The invitation"),
        ("X-Org-ID" = Option<Uuid>, Header, description = "The organisation; optional when the caller belongs to one"),
    ),
    responses(
        (status = 200, description = "Revoked", body = InvitationWritten),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such invitation", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "Accepted already", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "revoke_invitation", skip_all, fields(org_id = %caller.org_id, invitation_id = %path))]
pub async fn revoke(
    state: web::Data<CommandState>,
    caller: Caller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Admin)?;
    let invitation_id = path.into_inner();
    let decided = execute(
        &state,
        caller.org_id,
        OrganisationCommand::RevokeInvitation { invitation_id },
        &caller.metadata(),
    )
    .await?;
    Ok(written(
        HttpResponse::Ok(),
        decided.position,
        &InvitationWritten {
            invitation_id,
            consistency_token: decided.position.map(|p| p.to_string()),
        },
    ))
}

/// Accept an invitation as the signed-in user, whose email must be the invited one.
#[utoipa::path(
    post,
    path = "/api/v1/invitations/accept",
    tag = "invitations",
    security(("bearer" = [])),
    request_body = Accept,
    responses(
        (status = 200, description = "Joined the organisation", body = Joined),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The invitation is for another email", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such invitation (or a wrong or replaced token)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already a member", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "Expired, used or revoked", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "accept_invitation", skip_all, fields(user_id = %caller.0.user_id))]
pub async fn accept(
    state: web::Data<CommandState>,
    caller: Authenticated,
    request: HttpRequest,
    request_id: RequestId,
    body: web::Json<Accept>,
) -> Result<HttpResponse, ApiError> {
    let user_id = caller.0.user_id;
    let (user, _) = aggregate::load::<User>(&*state.store, &events::user::stream(user_id)).await?;
    let email = user
        .email
        .ok_or_else(|| ApiError::Unauthorized("This account no longer exists.".into()))?;
    let metadata =
        auth::client(&request).metadata(Actor::User { id: user_id }, Some(request_id.to_string()));
    let (joined, position) = join(&state, &body.token, user_id, email, &metadata).await?;
    Ok(written(HttpResponse::Ok(), position, &joined))
}

/// Makes `user_id` a member through the invitation `token`.
pub async fn join(
    state: &CommandState,
    token: &str,
    user_id: Uuid,
    email: Email,
    metadata: &events::Metadata,
) -> Result<(Joined, Option<events::Position>), ApiError> {
    let token = InvitationToken::parse(token)
        .ok_or_else(|| crate::organisations::rejected(OrganisationError::UnknownInvitation))?;
    let decided = execute(
        state,
        token.org_id,
        OrganisationCommand::AcceptInvitation {
            invitation_id: token.invitation_id,
            token_hash: token.secret_hash,
            user_id,
            email,
            now: Utc::now(),
        },
        metadata,
    )
    .await
    // An organisation that does not exist is as unknown as the invitation.
    .map_err(|e| match e {
        ApiError::NotFound(_) => ApiError::NotFound("No such invitation.".into()),
        other => other,
    })?;
    let role = decided
        .events
        .iter()
        .find_map(|event| match event {
            OrganisationEvent::MemberAdded { role, .. } => Some(*role),
            _ => None,
        })
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("an acceptance added no member")))?;
    let joined = Joined {
        organisation_id: token.org_id,
        role,
        consistency_token: decided.position.map(|p| p.to_string()),
    };
    Ok((joined, decided.position))
}
