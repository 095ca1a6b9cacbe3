//! API keys (admins): `POST /api/v1/api-keys` creates one and shows its secret once;
//! `DELETE /api/v1/api-keys/{key_id}` revokes it, effective from the next request.

use actix_web::{HttpResponse, web};
use domain::organisation::OrganisationCommand;
use events::Role;
use serde::{Deserialize, Serialize};
use service::auth::secret::{Kind, Secret};
use service::{ApiError, Caller, Problem};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::organisations::{execute, parse_role};
use crate::{CommandState, written};

pub const API_KEYS: &str = "/api/v1/api-keys";
pub const API_KEY: &str = "/api/v1/api-keys/{key_id}";

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    #[schema(example = "CRM sync")]
    pub name: String,
    /// `staff` or `viewer`; keys are never admins.
    #[schema(example = "staff")]
    pub role: String,
}

/// A new key. `secret` is shown here once and stored only as a hash.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyIssued {
    pub key_id: Uuid,
    pub name: String,
    #[schema(value_type = String, example = "staff")]
    pub role: Role,
    pub prefix: String,
    /// Send as `X-API-Key` or `Authorization: Bearer`.
    pub secret: String,
    pub consistency_token: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyWritten {
    pub key_id: Uuid,
    pub consistency_token: Option<String>,
}

/// Create an API key (admins).
#[utoipa::path(
    post,
    path = "/api/v1/api-keys",
    tag = "api keys",
    security(("bearer" = []), ("api_key" = [])),
    params(("X-Org-ID" = Option<Uuid>, Header, description = "The organisation; optional when the caller belongs to one")),
    request_body = CreateApiKey,
    responses(
        (status = 201, description = "Created; the secret is in this answer only", body = ApiKeyIssued),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid name or role (admin included)", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "create_api_key", skip_all, fields(org_id = %caller.org_id))]
pub async fn create(
    state: web::Data<CommandState>,
    caller: Caller,
    body: web::Json<CreateApiKey>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Admin)?;
    let name = domain::organisation::valid_name(&body.name)
        .map_err(|e| ApiError::validation("name", e.to_string()))?;
    let role = parse_role("role", &body.role)?;
    let key_id = Uuid::now_v7();
    let secret = Secret::generate(Kind::ApiKey).map_err(ApiError::Internal)?;
    let decided = execute(
        &state,
        caller.org_id,
        OrganisationCommand::CreateApiKey {
            key_id,
            name: name.clone(),
            role,
            prefix: secret.prefix().to_owned(),
            secret_hash: secret.hash.clone(),
        },
        &caller.metadata(),
    )
    .await?;
    Ok(written(
        HttpResponse::Created(),
        decided.position,
        &ApiKeyIssued {
            key_id,
            name,
            role,
            prefix: secret.prefix().to_owned(),
            secret: secret.expose().to_owned(),
            consistency_token: decided.position.map(|p| p.to_string()),
        },
    ))
}

/// Revoke an API key (admins): refused from the next request on.
#[utoipa::path(
    delete,
    path = "/api/v1/api-keys/{key_id}",
    tag = "api keys",
    security(("bearer" = []), ("api_key" = [])),
    params(
        ("key_id" = Uuid, Path, description = "The key"),
        ("X-Org-ID" = Option<Uuid>, Header, description = "The organisation; optional when the caller belongs to one"),
    ),
    responses(
        (status = 200, description = "Revoked (or already so)", body = ApiKeyWritten),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such key", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "revoke_api_key", skip_all, fields(org_id = %caller.org_id, key_id = %path))]
pub async fn revoke(
    state: web::Data<CommandState>,
    caller: Caller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Admin)?;
    let key_id = path.into_inner();
    let decided = execute(
        &state,
        caller.org_id,
        OrganisationCommand::RevokeApiKey { key_id },
        &caller.metadata(),
    )
    .await?;
    Ok(written(
        HttpResponse::Ok(),
        decided.position,
        &ApiKeyWritten {
            key_id,
            consistency_token: decided.position.map(|p| p.to_string()),
        },
    ))
}
