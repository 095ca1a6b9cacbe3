//! `GET /api/v1/audit` (admins): every change in the organisation, newest first, with who made it
//! and from where, filtered by actor, kind and time, cursor-paginated.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use events::Role;
use serde::{Deserialize, Serialize};
use service::consistency::{ConsistencyToken, wait_for_projection};
use service::{ApiError, Caller, FieldError, Problem};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::page::{self, Page};
use crate::{QueryState, db_error};

pub const PATH: &str = "/api/v1/audit";
pub const PROJECTION: &str = "audit";

const ACTOR_KINDS: [&str; 4] = ["user", "api_key", "provider", "system"];

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only events by this actor: a user or API key id, or a provider's or system's name.
    pub actor: Option<String>,
    /// Only this kind of actor: `user`, `api_key`, `provider` or `system`.
    pub actor_kind: Option<String>,
    /// Only this event type, e.g. `MemberRoleChanged`.
    pub kind: Option<String>,
    /// Recorded at or after this time (RFC 3339).
    pub from: Option<String>,
    /// Recorded before this time (RFC 3339).
    pub to: Option<String>,
    /// The `next_cursor` of the previous page.
    pub after: Option<String>,
    /// 1 to 200, default 50.
    pub limit: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct AuditEntry {
    pub event_id: Uuid,
    /// The event type.
    pub kind: String,
    pub stream: String,
    pub actor_kind: String,
    pub actor: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub recorded_at: DateTime<Utc>,
    pub data: serde_json::Value,
}

#[derive(sqlx::FromRow)]
struct AuditRow {
    seq: i64,
    #[sqlx(flatten)]
    entry: AuditEntry,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditEntry>,
    pub next_cursor: Option<String>,
}

struct Filters {
    actor: Option<String>,
    actor_kind: Option<String>,
    kind: Option<String>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    after: Option<i64>,
    limit: i64,
}

impl AuditQuery {
    fn validate(&self) -> Result<Filters, ApiError> {
        let mut errors = Vec::new();
        let text = |field: &str, value: &Option<String>, errors: &mut Vec<FieldError>| {
            value.as_ref().and_then(|v| {
                if v.is_empty() || v.len() > 200 {
                    errors.push(FieldError::new(field, "must be 1 to 200 characters"));
                    None
                } else {
                    Some(v.clone())
                }
            })
        };
        let actor = text("actor", &self.actor, &mut errors);
        let kind = text("kind", &self.kind, &mut errors);
        let actor_kind = self.actor_kind.clone();
        if let Some(k) = &actor_kind
            && !ACTOR_KINDS.contains(&k.as_str())
        {
            errors.push(FieldError::new(
                "actor_kind",
                "must be user, api_key, provider or system",
            ));
        }
        let from = page::time("from", self.from.as_deref(), &mut errors);
        let to = page::time("to", self.to.as_deref(), &mut errors);
        let limit = page::limit(self.limit).map_err(|e| {
            if let ApiError::Validation { errors: more } = e {
                errors.extend(more);
            }
        });
        let after = page::cursor::<i64>(self.after.as_deref()).map_err(|e| {
            if let ApiError::Validation { errors: more } = e {
                errors.extend(more);
            }
        });
        match (limit, after) {
            (Ok(limit), Ok(after)) if errors.is_empty() => Ok(Filters {
                actor,
                actor_kind,
                kind,
                from,
                to,
                after,
                limit,
            }),
            _ => Err(ApiError::Validation { errors }),
        }
    }
}

/// The organisation's audit trail (admins).
#[utoipa::path(
    get,
    path = "/api/v1/audit",
    tag = "audit",
    security(("bearer" = []), ("api_key" = [])),
    params(
        ("X-Org-ID" = Option<Uuid>, Header, description = "The organisation; optional when the caller belongs to one"),
        ("X-Consistency-Token" = Option<String>, Header, description = "Wait until this write is visible"),
        AuditQuery,
    ),
    responses(
        (status = 200, description = "Entries, newest first", body = AuditPage),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid filters", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "audit", skip_all, fields(org_id = %caller.org_id))]
pub async fn audit(
    state: web::Data<QueryState>,
    caller: Caller,
    token: ConsistencyToken,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Admin)?;
    let filters = query.validate()?;
    if let Some(token) = token.0 {
        wait_for_projection(&state.pool, PROJECTION, token, state.consistency_timeout).await?;
    }
    let rows: Vec<AuditRow> = sqlx::query_as(
        "SELECT seq, event_id, event_type AS kind, stream, actor_kind, actor_id AS actor, ip,
                user_agent, recorded_at, data
         FROM rm_audit
         WHERE org_id = $1
           AND ($2::bigint IS NULL OR seq < $2)
           AND ($3::text IS NULL OR actor_id = $3)
           AND ($4::text IS NULL OR actor_kind = $4)
           AND ($5::text IS NULL OR event_type = $5)
           AND ($6::timestamptz IS NULL OR recorded_at >= $6)
           AND ($7::timestamptz IS NULL OR recorded_at < $7)
         ORDER BY seq DESC LIMIT $8",
    )
    .bind(caller.org_id)
    .bind(filters.after)
    .bind(filters.actor)
    .bind(filters.actor_kind)
    .bind(filters.kind)
    .bind(filters.from)
    .bind(filters.to)
    .bind(filters.limit + 1)
    .fetch_all(&state.pool)
    .await
    .map_err(|e| db_error(e, "reading the audit trail"))?;
    let rows: Vec<(i64, AuditEntry)> = rows.into_iter().map(|r| (r.seq, r.entry)).collect();
    let Page { items, next_cursor } =
        Page::from_rows(rows, filters.limit, |(seq, _)| seq.to_string());
    Ok(HttpResponse::Ok().json(AuditPage {
        items: items.into_iter().map(|(_, entry)| entry).collect(),
        next_cursor,
    }))
}
