//! Contact imports, read side: `GET /api/v1/contacts/imports/{import_id}` (status and counts)
//! and `GET /api/v1/contacts/imports/{import_id}/rows` (what became of each row, by row number).
//! Both read the command side's job tables (`contact_imports`, `contact_import_rows`) as
//! `/me/sessions` reads `sessions`: they are operational state, not projections, so no
//! consistency token applies. Staff only, like submitting an import; another organisation's
//! import is not found. What the outcomes mean is in command-api's `imports` module.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use events::Role;
use serde::{Deserialize, Serialize};
use service::{ApiError, Caller, FieldError, Problem};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::page::{self, Page};
use crate::{QueryState, db_error};

pub const IMPORT: &str = "/api/v1/contacts/imports/{import_id}";
pub const ROWS: &str = "/api/v1/contacts/imports/{import_id}/rows";

const OUTCOMES: [&str; 5] = [
    "created",
    "updated",
    "skipped_duplicate",
    "rejected",
    "valid",
];

/// How many rows came out which way.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ImportCounts {
    /// Data rows in the file.
    pub total: i32,
    /// Rows with a report so far.
    pub processed: i32,
    pub created: i32,
    pub updated: i32,
    pub skipped_duplicate: i32,
    pub rejected: i32,
    /// Dry runs: rows that would be created or update a contact.
    pub valid: i32,
}

/// An import and how far it got.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ImportStatus {
    pub import_id: Uuid,
    /// `queued`, `running`, `done` or `failed`.
    pub status: String,
    pub dry_run: bool,
    /// `skip` or `update`.
    pub on_duplicate: String,
    /// Target (`full_name`, `email`…, `custom.<key>`) → the column header feeding it.
    #[schema(value_type = Object)]
    pub mapping: serde_json::Value,
    pub counts: ImportCounts,
    /// Pass as `X-Consistency-Token` to read the contacts written so far; `null` before any.
    pub consistency_token: Option<String>,
    /// Why a `failed` import stopped.
    pub error: Option<String>,
    /// Who submitted it: `user` or `api_key`, and its id.
    pub submitted_by_kind: String,
    pub submitted_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Where the per-row report is read.
    pub report: String,
}

#[derive(sqlx::FromRow)]
struct StatusRow {
    import_id: Uuid,
    status: String,
    dry_run: bool,
    on_duplicate: String,
    mapping: serde_json::Value,
    rows_total: i32,
    rows_processed: i32,
    rows_created: i32,
    rows_updated: i32,
    rows_skipped: i32,
    rows_rejected: i32,
    rows_valid: i32,
    consistency_token: Option<String>,
    error: Option<String>,
    actor_kind: String,
    actor_id: Option<String>,
    created_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
}

fn not_found() -> ApiError {
    ApiError::NotFound("No such import.".into())
}

/// An import's status and counts.
#[utoipa::path(
    get,
    path = "/api/v1/contacts/imports/{import_id}",
    tag = "contacts",
    security(("bearer" = []), ("api_key" = [])),
    params(
        ("import_id" = Uuid, Path, description = "The import"),
        ("X-Org-ID" = Option<Uuid>, Header, description = "The organisation; optional when the caller belongs to one"),
    ),
    responses(
        (status = 200, description = "The import", body = ImportStatus),
        (status = 403, description = "Viewers cannot see imports", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such import in this organisation", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "contact_import", skip_all, fields(org_id = %caller.org_id, import_id = %path))]
pub async fn status(
    state: web::Data<QueryState>,
    caller: Caller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Staff)?;
    let row: Option<StatusRow> = sqlx::query_as(
        "SELECT import_id, status, dry_run, on_duplicate, mapping, rows_total, rows_processed,
                rows_created, rows_updated, rows_skipped, rows_rejected, rows_valid,
                consistency_token, error, actor_kind, actor_id, created_at, started_at,
                finished_at
         FROM contact_imports WHERE import_id = $1 AND org_id = $2",
    )
    .bind(path.into_inner())
    .bind(caller.org_id)
    .fetch_optional(&state.pool)
    .await
    .map_err(|e| db_error(e, "reading an import"))?;
    let row = row.ok_or_else(not_found)?;
    Ok(HttpResponse::Ok().json(ImportStatus {
        report: format!("/api/v1/contacts/imports/{}/rows", row.import_id),
        import_id: row.import_id,
        status: row.status,
        dry_run: row.dry_run,
        on_duplicate: row.on_duplicate,
        mapping: row.mapping,
        counts: ImportCounts {
            total: row.rows_total,
            processed: row.rows_processed,
            created: row.rows_created,
            updated: row.rows_updated,
            skipped_duplicate: row.rows_skipped,
            rejected: row.rows_rejected,
            valid: row.rows_valid,
        },
        consistency_token: row.consistency_token,
        error: row.error,
        submitted_by_kind: row.actor_kind,
        submitted_by: row.actor_id,
        created_at: row.created_at,
        started_at: row.started_at,
        finished_at: row.finished_at,
    }))
}

/// `?outcome=&after=&limit=` of an import's report.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RowsQuery {
    /// Only rows with this outcome: `created`, `updated`, `skipped_duplicate`, `rejected` or
    /// `valid`.
    pub outcome: Option<String>,
    /// The `next_cursor` of the previous page.
    pub after: Option<String>,
    /// 1 to 200, default 50.
    pub limit: Option<i64>,
}

/// What became of one row.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct ImportRow {
    /// The row as a spreadsheet numbers it: the header is row 1.
    pub row: i32,
    /// The file line the row starts on.
    pub line: i32,
    /// `created`, `updated`, `skipped_duplicate`, `rejected` or `valid` (dry runs).
    pub outcome: String,
    /// The contact created or updated, the one a duplicate belongs to, or (dry runs) the one
    /// the row would update.
    pub contact_id: Option<Uuid>,
    /// Why the row was rejected or skipped: `[{field, message}]`, `field` being a contact
    /// field, `custom_fields.<key>` or `row`.
    #[schema(value_type = Vec<FieldError>)]
    pub errors: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ImportRowPage {
    pub items: Vec<ImportRow>,
    pub next_cursor: Option<String>,
}

/// An import's report, by row number.
#[utoipa::path(
    get,
    path = "/api/v1/contacts/imports/{import_id}/rows",
    tag = "contacts",
    security(("bearer" = []), ("api_key" = [])),
    params(
        ("import_id" = Uuid, Path, description = "The import"),
        ("X-Org-ID" = Option<Uuid>, Header, description = "The organisation; optional when the caller belongs to one"),
        RowsQuery,
    ),
    responses(
        (status = 200, description = "A page of the report", body = ImportRowPage),
        (status = 403, description = "Viewers cannot see imports", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such import in this organisation", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid outcome, cursor or limit", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "contact_import_rows", skip_all, fields(org_id = %caller.org_id, import_id = %path))]
pub async fn rows(
    state: web::Data<QueryState>,
    caller: Caller,
    path: web::Path<Uuid>,
    query: web::Query<RowsQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Staff)?;
    let import_id = path.into_inner();
    if let Some(outcome) = &query.outcome
        && !OUTCOMES.contains(&outcome.as_str())
    {
        return Err(ApiError::validation(
            "outcome",
            format!("must be one of {}", OUTCOMES.join(", ")),
        ));
    }
    let limit = page::limit(query.limit)?;
    let after: Option<i32> = page::cursor(query.after.as_deref())?;
    let exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM contact_imports WHERE import_id = $1 AND org_id = $2)",
    )
    .bind(import_id)
    .bind(caller.org_id)
    .fetch_one(&state.pool)
    .await
    .map_err(|e| db_error(e, "reading an import"))?;
    if !exists {
        return Err(not_found());
    }
    let rows: Vec<ImportRow> = sqlx::query_as(
        "SELECT row_number AS row, line, outcome, contact_id, errors
         FROM contact_import_rows
         WHERE import_id = $1 AND ($2::text IS NULL OR outcome = $2)
           AND ($3::int IS NULL OR row_number > $3)
         ORDER BY row_number LIMIT $4",
    )
    .bind(import_id)
    .bind(query.outcome.as_deref())
    .bind(after)
    .bind(limit + 1)
    .fetch_all(&state.pool)
    .await
    .map_err(|e| db_error(e, "reading an import's report"))?;
    let Page { items, next_cursor } = Page::from_rows(rows, limit, |row| row.row.to_string());
    Ok(HttpResponse::Ok().json(ImportRowPage { items, next_cursor }))
}
