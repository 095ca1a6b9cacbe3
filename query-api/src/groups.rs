//! Contact groups, read side: `GET /api/v1/groups` (with member counts, by name, cursor pages),
//! `GET /api/v1/groups/{id}` and `GET /api/v1/groups/{id}/contacts` (members, most recently added
//! first, with what the contacts read model knows of them), from the `groups` projection.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use events::Role;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use service::consistency::ConsistencyToken;
use service::{ApiError, Caller, FieldError, Problem};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::page::{self, Page};
use crate::{QueryState, db_error};

pub const GROUPS: &str = "/api/v1/groups";
pub const GROUP: &str = "/api/v1/groups/{group_id}";
pub const MEMBERS: &str = "/api/v1/groups/{group_id}/contacts";
/// The projection these endpoints read.
pub const PROJECTION: &str = "groups";

/// `?q=&after=&limit=` of the group list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct GroupQuery {
    /// Part of the name, case-insensitive.
    pub q: Option<String>,
    /// The `next_cursor` of the previous page.
    pub after: Option<String>,
    /// 1 to 200, default 50.
    pub limit: Option<i64>,
}

/// `?after=&limit=` of a group's members.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MemberQuery {
    /// The `next_cursor` of the previous page.
    pub after: Option<String>,
    /// 1 to 200, default 50.
    pub limit: Option<i64>,
}

/// A cursor as the client sees it: the previous page's last sort key and id, as hex JSON.
fn encode_cursor(cursor: &impl Serialize) -> String {
    hex::encode(serde_json::to_vec(cursor).unwrap_or_default())
}

fn decode_cursor<T: DeserializeOwned>(
    text: Option<&str>,
    errors: &mut Vec<FieldError>,
) -> Option<T> {
    let text = text?;
    let cursor = hex::decode(text)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    if cursor.is_none() {
        errors.push(FieldError::new(
            "after",
            "is not a cursor this list returned",
        ));
    }
    cursor
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct NameCursor {
    name: String,
    id: Uuid,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct AddedCursor {
    at: DateTime<Utc>,
    id: Uuid,
}

/// A group with its member count.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct GroupSummary {
    pub group_id: Uuid,
    pub name: String,
    pub description: Option<String>,
    /// `#rrggbb`.
    pub colour: Option<String>,
    /// How many contacts are in the group now.
    pub member_count: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GroupPage {
    pub items: Vec<GroupSummary>,
    pub next_cursor: Option<String>,
}

/// A member of a group.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct GroupMember {
    pub contact_id: Uuid,
    /// `null` once the contact's personal data has been erased.
    pub full_name: Option<String>,
    pub email: Option<String>,
    pub whatsapp: Option<String>,
    /// `active`, `blocked`, `unsubscribed` or `bounced`.
    pub status: Option<String>,
    pub added_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub erased_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MemberPage {
    pub items: Vec<GroupMember>,
    pub next_cursor: Option<String>,
}

const SUMMARY_COLUMNS: &str =
    "group_id, name, description, colour, member_count, created_at, updated_at";

fn not_found() -> ApiError {
    ApiError::NotFound("No such group.".into())
}

#[derive(sqlx::FromRow)]
struct SummaryRow {
    #[sqlx(flatten)]
    group: GroupSummary,
    sort_key: String,
}

/// The organisation's groups by name, with their member counts.
#[utoipa::path(
    get,
    path = "/api/v1/groups",
    tag = "groups",
    security(("bearer" = []), ("api_key" = [])),
    params(
        ("X-Org-ID" = Option<Uuid>, Header, description = "The organisation; optional when the caller belongs to one"),
        ("X-Consistency-Token" = Option<String>, Header, description = "Wait until this write is visible"),
        GroupQuery,
    ),
    responses(
        (status = 200, description = "A page of groups", body = GroupPage),
        (status = 422, description = "Invalid parameters", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "groups", skip_all, fields(org_id = %caller.org_id))]
pub async fn list(
    state: web::Data<QueryState>,
    caller: Caller,
    token: ConsistencyToken,
    query: web::Query<GroupQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Viewer)?;
    let mut errors = Vec::new();
    let q = match query.q.as_deref().map(str::trim) {
        Some("") | None => None,
        Some(q) if q.chars().count() > 100 => {
            errors.push(FieldError::new("q", "must be at most 100 characters"));
            None
        }
        Some(q) => Some(page::contains_pattern(q)),
    };
    let after: Option<NameCursor> = decode_cursor(query.after.as_deref(), &mut errors);
    let limit = page::checked_limit(query.limit, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::Validation { errors });
    }
    state.settle(token, &[PROJECTION]).await?;
    let rows: Vec<SummaryRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {SUMMARY_COLUMNS}, lower(name) AS sort_key FROM rm_groups
         WHERE org_id = $1 AND NOT deleted
           AND ($2::text IS NULL OR lower(name) LIKE $2)
           AND ($3::text IS NULL OR (lower(name), group_id) > ($3, $4))
         ORDER BY lower(name), group_id
         LIMIT $5"
    )))
    .bind(caller.org_id)
    .bind(q)
    .bind(after.as_ref().map(|c| c.name.clone()))
    .bind(after.as_ref().map(|c| c.id))
    .bind(limit + 1)
    .fetch_all(&state.pool)
    .await
    .map_err(|e| db_error(e, "listing groups"))?;
    let Page { items, next_cursor } = Page::from_rows(rows, limit, |row| {
        encode_cursor(&NameCursor {
            name: row.sort_key.clone(),
            id: row.group.group_id,
        })
    });
    Ok(HttpResponse::Ok().json(GroupPage {
        items: items.into_iter().map(|row| row.group).collect(),
        next_cursor,
    }))
}

async fn find(
    state: &QueryState,
    org_id: Uuid,
    group_id: Uuid,
) -> Result<Option<GroupSummary>, ApiError> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {SUMMARY_COLUMNS} FROM rm_groups
         WHERE org_id = $1 AND group_id = $2 AND NOT deleted"
    )))
    .bind(org_id)
    .bind(group_id)
    .fetch_optional(&state.pool)
    .await
    .map_err(|e| db_error(e, "reading a group"))
}

/// One group.
#[utoipa::path(
    get,
    path = "/api/v1/groups/{group_id}",
    tag = "groups",
    security(("bearer" = []), ("api_key" = [])),
    params(
        ("group_id" = Uuid, Path, description = "The group"),
        ("X-Org-ID" = Option<Uuid>, Header, description = "The organisation; optional when the caller belongs to one"),
        ("X-Consistency-Token" = Option<String>, Header, description = "Wait until this write is visible"),
    ),
    responses(
        (status = 200, description = "The group", body = GroupSummary),
        (status = 404, description = "No such group in this organisation", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "group", skip_all, fields(org_id = %caller.org_id, group_id = %path))]
pub async fn detail(
    state: web::Data<QueryState>,
    caller: Caller,
    token: ConsistencyToken,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Viewer)?;
    state.settle(token, &[PROJECTION]).await?;
    let group = find(&state, caller.org_id, path.into_inner())
        .await?
        .ok_or_else(not_found)?;
    Ok(HttpResponse::Ok().json(group))
}

/// A group's contacts, most recently added first. Names and identifiers come from the contacts
/// read model: `null` for an erased contact (or one created too recently to be there yet).
#[utoipa::path(
    get,
    path = "/api/v1/groups/{group_id}/contacts",
    tag = "groups",
    security(("bearer" = []), ("api_key" = [])),
    params(
        ("group_id" = Uuid, Path, description = "The group"),
        ("X-Org-ID" = Option<Uuid>, Header, description = "The organisation; optional when the caller belongs to one"),
        ("X-Consistency-Token" = Option<String>, Header, description = "Wait until this write is visible"),
        MemberQuery,
    ),
    responses(
        (status = 200, description = "A page of members", body = MemberPage),
        (status = 404, description = "No such group in this organisation", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid parameters", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "group_members", skip_all, fields(org_id = %caller.org_id, group_id = %path))]
pub async fn members(
    state: web::Data<QueryState>,
    caller: Caller,
    token: ConsistencyToken,
    path: web::Path<Uuid>,
    query: web::Query<MemberQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Viewer)?;
    let mut errors = Vec::new();
    let after: Option<AddedCursor> = decode_cursor(query.after.as_deref(), &mut errors);
    let limit = page::checked_limit(query.limit, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::Validation { errors });
    }
    // Names come from the contacts model.
    state
        .settle(token, &[PROJECTION, crate::contacts::PROJECTION])
        .await?;
    let group_id = path.into_inner();
    if find(&state, caller.org_id, group_id).await?.is_none() {
        return Err(not_found());
    }
    let rows: Vec<GroupMember> = sqlx::query_as(
        "SELECT m.contact_id, c.full_name, c.email, c.whatsapp, c.status, m.added_at,
                c.deleted_at, c.erased_at
         FROM rm_group_members m
         LEFT JOIN rm_contacts c ON c.org_id = m.org_id AND c.contact_id = m.contact_id
         WHERE m.org_id = $1 AND m.group_id = $2
           AND ($3::timestamptz IS NULL OR (m.added_at, m.contact_id) < ($3, $4))
         ORDER BY m.added_at DESC, m.contact_id DESC
         LIMIT $5",
    )
    .bind(caller.org_id)
    .bind(group_id)
    .bind(after.as_ref().map(|c| c.at))
    .bind(after.as_ref().map(|c| c.id))
    .bind(limit + 1)
    .fetch_all(&state.pool)
    .await
    .map_err(|e| db_error(e, "listing a group's contacts"))?;
    let Page { items, next_cursor } = Page::from_rows(rows, limit, |row| {
        encode_cursor(&AddedCursor {
            at: row.added_at,
            id: row.contact_id,
        })
    });
    Ok(HttpResponse::Ok().json(MemberPage { items, next_cursor }))
}
