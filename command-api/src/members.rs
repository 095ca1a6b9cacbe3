//! Memberships (admins): `PATCH /api/v1/members/{user_id}` changes a member's role,
//! `DELETE /api/v1/members/{user_id}` removes them. The last admin can be neither.

use actix_web::{HttpResponse, web};
use domain::organisation::OrganisationCommand;
use events::Role;
use serde::{Deserialize, Serialize};
use service::{ApiError, Caller, Problem};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::organisations::{execute, parse_role};
use crate::{CommandState, written};

pub const MEMBER: &str = "/api/v1/members/{user_id}";

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeRole {
    /// `admin`, `staff` or `viewer`.
    #[schema(example = "staff")]
    pub role: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MemberWritten {
    pub user_id: Uuid,
    pub consistency_token: Option<String>,
}

/// Change a member's role (admins).
#[utoipa::path(
    patch,
    path = "/api/v1/members/{user_id}",
    tag = "members",
    security(("bearer" = []), ("api_key" = [])),
    params(
        ("user_id" = Uuid, Path, description = "The member"),
        ("X-Org-ID" = Option<Uuid>, Header, description = "The organisation; optional when the caller belongs to one"),
    ),
    request_body = ChangeRole,
    responses(
        (status = 200, description = "Changed (or already so)", body = MemberWritten),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such member", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The last admin cannot be demoted", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown role", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "change_role", skip_all, fields(org_id = %caller.org_id, user_id = %path))]
pub async fn change_role(
    state: web::Data<CommandState>,
    caller: Caller,
    path: web::Path<Uuid>,
    body: web::Json<ChangeRole>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Admin)?;
    let user_id = path.into_inner();
    let role = parse_role("role", &body.role)?;
    let decided = execute(
        &state,
        caller.org_id,
        OrganisationCommand::ChangeRole { user_id, role },
        &caller.metadata(),
    )
    .await?;
    Ok(written(
        HttpResponse::Ok(),
        decided.position,
        &MemberWritten {
            user_id,
            consistency_token: decided.position.map(|p| p.to_string()),
        },
    ))
}

/// Remove a member (admins).
#[utoipa::path(
    delete,
    path = "/api/v1/members/{user_id}",
    tag = "members",
    security(("bearer" = []), ("api_key" = [])),
    params(
        ("user_id" = Uuid, Path, description = "The member"),
        ("X-Org-ID" = Option<Uuid>, Header, description = "The organisation; optional when the caller belongs to one"),
    ),
    responses(
        (status = 200, description = "Removed", body = MemberWritten),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such member", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The last admin cannot be removed", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "remove_member", skip_all, fields(org_id = %caller.org_id, user_id = %path))]
pub async fn remove(
    state: web::Data<CommandState>,
    caller: Caller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Admin)?;
    let user_id = path.into_inner();
    let decided = execute(
        &state,
        caller.org_id,
        OrganisationCommand::RemoveMember { user_id },
        &caller.metadata(),
    )
    .await?;
    Ok(written(
        HttpResponse::Ok(),
        decided.position,
        &MemberWritten {
            user_id,
            consistency_token: decided.position.map(|p| p.to_string()),
        },
    ))
}
