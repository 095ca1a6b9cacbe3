//! The organisation a request acts for: `GET /api/v1/organisation` (name, branding, the caller's
//! role), its logo, its members, and — for admins — its invitations and API keys.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use events::Role;
use serde::{Deserialize, Serialize};
use service::consistency::{ConsistencyToken, wait_for_projection};
use service::{ApiError, Caller, Problem};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::page::{self, Page};
use crate::{ACCESS, QueryState, db_error};

pub const ORGANISATION: &str = "/api/v1/organisation";
pub const LOGO: &str = "/api/v1/organisation/logo";
pub const MEMBERS: &str = "/api/v1/members";
pub const INVITATIONS: &str = "/api/v1/invitations";
pub const API_KEYS: &str = "/api/v1/api-keys";

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct OrganisationView {
    pub organisation_id: Uuid,
    pub name: String,
    pub company_name: Option<String>,
    pub website: Option<String>,
    pub address: Option<String>,
    pub timezone: Option<String>,
    pub default_phone_region: Option<String>,
    /// `GET /api/v1/organisation/logo`, when there is a logo.
    pub logo_url: Option<String>,
    /// The caller's role here.
    pub role: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `?after=&limit=` of a list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// The `next_cursor` of the previous page.
    pub after: Option<String>,
    /// 1 to 200, default 50.
    pub limit: Option<i64>,
}

async fn settle(state: &QueryState, token: ConsistencyToken) -> Result<(), ApiError> {
    match token.0 {
        Some(token) => {
            wait_for_projection(&state.pool, ACCESS, token, state.consistency_timeout).await
        }
        None => Ok(()),
    }
}

/// The organisation the request acts for.
#[utoipa::path(
    get,
    path = "/api/v1/organisation",
    tag = "organisations",
    security(("bearer" = []), ("api_key" = [])),
    params(
        ("X-Org-ID" = Option<Uuid>, Header, description = "The organisation; optional when the caller belongs to one"),
        ("X-Consistency-Token" = Option<String>, Header, description = "Wait until this write is visible"),
    ),
    responses(
        (status = 200, description = "The organisation", body = OrganisationView),
        (status = 401, description = "No credentials", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organisation", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "organisation", skip_all, fields(org_id = %caller.org_id))]
pub async fn organisation(
    state: web::Data<QueryState>,
    caller: Caller,
    token: ConsistencyToken,
) -> Result<HttpResponse, ApiError> {
    settle(&state, token).await?;
    let view: Option<OrganisationView> = sqlx::query_as(
        "SELECT org_id AS organisation_id, name, company_name, website, address, timezone,
                default_phone_region,
                CASE WHEN logo_id IS NULL THEN NULL ELSE $2 END AS logo_url,
                $3 AS role, created_at, updated_at
         FROM rm_organisations WHERE org_id = $1",
    )
    .bind(caller.org_id)
    .bind(LOGO)
    .bind(caller.role.as_str())
    .fetch_optional(&state.pool)
    .await
    .map_err(|e| db_error(e, "reading an organisation"))?;
    let view = view.ok_or_else(|| ApiError::NotFound("No such organisation.".into()))?;
    Ok(HttpResponse::Ok().json(view))
}

/// The organisation's logo image.
#[utoipa::path(
    get,
    path = "/api/v1/organisation/logo",
    tag = "organisations",
    security(("bearer" = []), ("api_key" = [])),
    params(("X-Org-ID" = Option<Uuid>, Header, description = "The organisation; optional when the caller belongs to one")),
    responses(
        (status = 200, description = "The image", content_type = "image/*"),
        (status = 404, description = "No logo", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "logo", skip_all, fields(org_id = %caller.org_id))]
pub async fn logo(state: web::Data<QueryState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let row: Option<(Uuid, String, Vec<u8>)> = sqlx::query_as(
        "SELECT l.logo_id, l.content_type, l.bytes
         FROM rm_organisations o JOIN logos l ON l.logo_id = o.logo_id AND l.org_id = o.org_id
         WHERE o.org_id = $1",
    )
    .bind(caller.org_id)
    .fetch_optional(&state.pool)
    .await
    .map_err(|e| db_error(e, "reading a logo"))?;
    let (logo_id, content_type, bytes) =
        row.ok_or_else(|| ApiError::NotFound("This organisation has no logo.".into()))?;
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::ETAG, format!("\"{logo_id}\"")))
        .insert_header((header::CACHE_CONTROL, "private, max-age=300"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .body(bytes))
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct MemberView {
    pub user_id: Uuid,
    pub email: String,
    pub name: Option<String>,
    pub role: String,
    pub joined_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MemberPage {
    pub items: Vec<MemberView>,
    pub next_cursor: Option<String>,
}

/// The organisation's members, by email.
#[utoipa::path(
    get,
    path = "/api/v1/members",
    tag = "members",
    security(("bearer" = []), ("api_key" = [])),
    params(
        ("X-Org-ID" = Option<Uuid>, Header, description = "The organisation; optional when the caller belongs to one"),
        ("X-Consistency-Token" = Option<String>, Header, description = "Wait until this write is visible"),
        ListQuery,
    ),
    responses(
        (status = 200, description = "Members", body = MemberPage),
        (status = 404, description = "No such organisation", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "members", skip_all, fields(org_id = %caller.org_id))]
pub async fn members(
    state: web::Data<QueryState>,
    caller: Caller,
    token: ConsistencyToken,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = page::limit(query.limit)?;
    let after: Option<String> = page::cursor(query.after.as_deref())?;
    settle(&state, token).await?;
    let items: Vec<MemberView> = sqlx::query_as(
        "SELECT m.user_id, m.email, u.name, m.role, m.joined_at
         FROM rm_memberships m LEFT JOIN rm_users u ON u.user_id = m.user_id
         WHERE m.org_id = $1 AND ($2::text IS NULL OR m.email > $2)
         ORDER BY m.email LIMIT $3",
    )
    .bind(caller.org_id)
    .bind(after)
    .bind(limit + 1)
    .fetch_all(&state.pool)
    .await
    .map_err(|e| db_error(e, "reading members"))?;
    let Page { items, next_cursor } = Page::from_rows(items, limit, |m| m.email.clone());
    Ok(HttpResponse::Ok().json(MemberPage { items, next_cursor }))
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct InvitationView {
    pub invitation_id: Uuid,
    pub email: String,
    pub role: String,
    /// `pending`, `expired`, `accepted` or `revoked`.
    pub state: String,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub accepted_by: Option<Uuid>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InvitationPage {
    pub items: Vec<InvitationView>,
    pub next_cursor: Option<String>,
}

/// The organisation's invitations, newest first (admins).
#[utoipa::path(
    get,
    path = "/api/v1/invitations",
    tag = "invitations",
    security(("bearer" = []), ("api_key" = [])),
    params(
        ("X-Org-ID" = Option<Uuid>, Header, description = "The organisation; optional when the caller belongs to one"),
        ("X-Consistency-Token" = Option<String>, Header, description = "Wait until this write is visible"),
        ListQuery,
    ),
    responses(
        (status = 200, description = "Invitations", body = InvitationPage),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "invitations", skip_all, fields(org_id = %caller.org_id))]
pub async fn invitations(
    state: web::Data<QueryState>,
    caller: Caller,
    token: ConsistencyToken,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Admin)?;
    let limit = page::limit(query.limit)?;
    let after: Option<Uuid> = page::cursor(query.after.as_deref())?;
    settle(&state, token).await?;
    let items: Vec<InvitationView> = sqlx::query_as(
        "SELECT invitation_id, email, role,
                CASE WHEN state = 'pending' AND expires_at <= now() THEN 'expired' ELSE state END
                    AS state,
                expires_at, created_at, updated_at, accepted_by
         FROM rm_invitations
         WHERE org_id = $1 AND ($2::uuid IS NULL OR invitation_id < $2)
         ORDER BY invitation_id DESC LIMIT $3",
    )
    .bind(caller.org_id)
    .bind(after)
    .bind(limit + 1)
    .fetch_all(&state.pool)
    .await
    .map_err(|e| db_error(e, "reading invitations"))?;
    let Page { items, next_cursor } =
        Page::from_rows(items, limit, |i| i.invitation_id.to_string());
    Ok(HttpResponse::Ok().json(InvitationPage { items, next_cursor }))
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct ApiKeyView {
    pub key_id: Uuid,
    pub name: String,
    pub role: String,
    /// The first characters of the secret, to tell keys apart.
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyPage {
    pub items: Vec<ApiKeyView>,
    pub next_cursor: Option<String>,
}

/// The organisation's API keys, newest first, with when each was last used (admins).
#[utoipa::path(
    get,
    path = "/api/v1/api-keys",
    tag = "api keys",
    security(("bearer" = []), ("api_key" = [])),
    params(
        ("X-Org-ID" = Option<Uuid>, Header, description = "The organisation; optional when the caller belongs to one"),
        ("X-Consistency-Token" = Option<String>, Header, description = "Wait until this write is visible"),
        ListQuery,
    ),
    responses(
        (status = 200, description = "API keys", body = ApiKeyPage),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "api_keys", skip_all, fields(org_id = %caller.org_id))]
pub async fn api_keys(
    state: web::Data<QueryState>,
    caller: Caller,
    token: ConsistencyToken,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Admin)?;
    let limit = page::limit(query.limit)?;
    let after: Option<Uuid> = page::cursor(query.after.as_deref())?;
    settle(&state, token).await?;
    let items: Vec<ApiKeyView> = sqlx::query_as(
        "SELECT k.key_id, k.name, k.role, k.prefix, k.created_at, u.last_used_at, k.revoked_at
         FROM rm_api_keys k LEFT JOIN api_key_usage u ON u.key_id = k.key_id
         WHERE k.org_id = $1 AND ($2::uuid IS NULL OR k.key_id < $2)
         ORDER BY k.key_id DESC LIMIT $3",
    )
    .bind(caller.org_id)
    .bind(after)
    .bind(limit + 1)
    .fetch_all(&state.pool)
    .await
    .map_err(|e| db_error(e, "reading API keys"))?;
    let Page { items, next_cursor } = Page::from_rows(items, limit, |k| k.key_id.to_string());
    Ok(HttpResponse::Ok().json(ApiKeyPage { items, next_cursor }))
}
