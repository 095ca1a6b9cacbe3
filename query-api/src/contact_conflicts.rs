//! `GET /api/v1/contact-conflicts`: attempts to give a contact an identifier another contact
//! holds, newest first, open or resolved, for a person to settle (keep it with the holder, or
//! move it: `POST /api/v1/contacts/{id}/conflicts/{conflict_id}/resolve`).

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use events::Role;
use serde::{Deserialize, Serialize};
use service::consistency::{ConsistencyToken, wait_for_projection};
use service::{ApiError, Caller, Problem};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::page::{self, Page};
use crate::{QueryState, db_error};

pub const PATH: &str = "/api/v1/contact-conflicts";

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ConflictQuery {
    /// `open` (the default), `resolved` or `all`.
    pub status: Option<String>,
    /// Only the conflicts of this contact (as the one that wanted the identifier).
    pub contact_id: Option<Uuid>,
    pub after: Option<String>,
    pub limit: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct ConflictView {
    pub conflict_id: Uuid,
    /// The contact the identifier was meant for.
    pub contact_id: Uuid,
    /// The contact that holds it.
    pub holder_id: Uuid,
    /// `email`, `whatsapp`, `telegram`, `instagram_scoped` or `instagram_user`.
    pub identity: String,
    /// `null` once either contact was erased.
    pub value: Option<String>,
    pub source: String,
    pub actor_kind: String,
    pub actor: Option<String>,
    pub recorded_at: DateTime<Utc>,
    /// `kept`, `moved`, or `null` while open.
    pub resolution: Option<String>,
    pub resolved_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConflictPage {
    pub items: Vec<ConflictView>,
    pub next_cursor: Option<String>,
}

#[derive(sqlx::FromRow)]
struct ConflictRow {
    seq: String,
    #[sqlx(flatten)]
    conflict: ConflictView,
}

/// The organisation's identity conflicts.
#[utoipa::path(
    get,
    path = "/api/v1/contact-conflicts",
    tag = "contacts",
    security(("bearer" = []), ("api_key" = [])),
    params(
        ("X-Org-ID" = Option<Uuid>, Header, description = "The organisation; optional when the caller belongs to one"),
        ("X-Consistency-Token" = Option<String>, Header, description = "Wait until this write is visible"),
        ConflictQuery,
    ),
    responses(
        (status = 200, description = "Conflicts, newest first", body = ConflictPage),
        (status = 422, description = "Invalid filters", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "contact_conflicts", skip_all, fields(org_id = %caller.org_id))]
pub async fn list(
    state: web::Data<QueryState>,
    caller: Caller,
    token: ConsistencyToken,
    query: web::Query<ConflictQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Viewer)?;
    let limit = page::limit(query.limit)?;
    // The cursor is the last conflict's id: UUIDv7, so ids order like their recording.
    let after: Option<Uuid> = page::cursor(query.after.as_deref())?;
    let status = match query.status.as_deref() {
        None | Some("open") => "open",
        Some("resolved") => "resolved",
        Some("all") => "all",
        Some(_) => {
            return Err(ApiError::validation(
                "status",
                "must be open, resolved or all",
            ));
        }
    };
    if let Some(token) = token.0 {
        wait_for_projection(&state.pool, "contacts", token, state.consistency_timeout).await?;
    }
    let rows: Vec<ConflictRow> = sqlx::query_as(
        "SELECT conflict_id::text AS seq, conflict_id, contact_id, holder_id, identity, value,
                source, actor_kind, actor_id AS actor, recorded_at, resolution, resolved_at
         FROM rm_contact_conflicts
         WHERE org_id = $1
           AND ($2 = 'all' OR ($2 = 'open') = (resolution IS NULL))
           AND ($3::uuid IS NULL OR contact_id = $3)
           AND ($4::uuid IS NULL OR conflict_id < $4)
         ORDER BY conflict_id DESC LIMIT $5",
    )
    .bind(caller.org_id)
    .bind(status)
    .bind(query.contact_id)
    .bind(after)
    .bind(limit + 1)
    .fetch_all(&state.pool)
    .await
    .map_err(|e| db_error(e, "reading identity conflicts"))?;
    let Page { items, next_cursor } = Page::from_rows(rows, limit, |row| row.seq.clone());
    Ok(HttpResponse::Ok().json(ConflictPage {
        items: items.into_iter().map(|row| row.conflict).collect(),
        next_cursor,
    }))
}
