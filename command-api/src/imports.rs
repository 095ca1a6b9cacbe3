//! Contact imports, write side: `POST /api/v1/contacts/imports` takes a CSV file and queues it as
//! a job; a background worker ([`run`]) turns its rows into contacts through
//! [`create_contact`](crate::contacts::create_contact), the one way contacts are made, and keeps
//! a report of every row. Progress and the report are read from the query side
//! (`GET /api/v1/contacts/imports/{import_id}[/rows]`).
//!
//! **The file.** The body is the CSV itself (`Content-Type: text/csv`, UTF-8, an optional BOM),
//! at most 50 MiB and 100,000 data rows, with a header row. Rows are numbered as a spreadsheet
//! numbers them: the header is row 1, the first contact row 2 (blank lines are not rows; rows
//! whose cells are all empty are ignored). A row with more or fewer cells than the header is
//! rejected as a whole (field `row`): it usually means a quoting mistake shifted its columns.
//!
//! **Mapping.** A column headed with a field name (`full_name`, `email`, `whatsapp`,
//! `telegram_chat_id`, `instagram_scoped_id`, `instagram_user_id`, `tags`, `notes`; any case)
//! feeds that field, and one headed `custom.<key>` the custom field `<key>` — the columns
//! `GET /api/v1/contacts/export` writes, so an export imports as it is. `map.<field>=<header>`
//! and `map.custom.<key>=<header>` name other columns; `map.<field>=` (empty) ignores a column
//! that would feed it by default; a column may feed several targets. Tags are separated by `;`.
//! Empty cells are absent values. Custom values take their field's kind: numbers, booleans
//! (`true`/`false`, `yes`/`no`, `1`/`0`), `;`-separated lists for multi-select, text otherwise.
//! A cell the export protected against formula injection (`'` before `=`, `+`, `-`, `@`, tab or
//! carriage return) is read without that `'`. Anything else is answered 422 naming the
//! parameter: an unknown target or query parameter, a header that no column has, a custom field
//! the organisation has not defined, a file without a column for `full_name`.
//!
//! **Checks.** Each row is checked as `create_contact` checks a new contact (same fields, same
//! messages) and against the organisation's custom field definitions before anything is
//! written; a row that passes still takes `create_contact`'s own word. Errors name the contact
//! field (`email`, `custom_fields.plan`…) or `row`. The report keeps no personal values, and the
//! file itself is dropped when the job ends.
//!
//! **Options.** `dry_run=true` checks every row — fields, and identifiers against existing
//! contacts and earlier rows of the file — and writes no contact; its rows are reported `valid`
//! (with the contact it would update, if any), `skipped_duplicate` or `rejected`. A dry run does
//! not foresee identifiers that updates would free; an interrupted one starts over. `on_duplicate=skip` (the default) reports a
//! row whose identifier belongs to an existing contact as `skipped_duplicate`;
//! `on_duplicate=update` gives that contact the row's name and non-empty cells instead
//! (`updated`; tags are added, never removed). Either way a row must be a valid new contact
//! first, so a row without a name is rejected even when it would update.
//!
//! **Order and duplicates.** Rows run in batches of [`CHUNK`]: the new contacts of a batch are
//! created in one append (their identifiers claimed in it, all or none), and a row that append
//! cannot take — an identifier held by an existing contact, a contact made by an earlier run —
//! goes alone, [`CONCURRENCY`] at a time, as `create_contact` would take it. A row that
//! shares an identifier with an earlier row of the file runs after it, so what happens is what
//! would happen row by row: a later row with an earlier row's email is a duplicate of the contact
//! that row made (its error says `duplicates row N`), or becomes a new contact if the earlier row
//! was rejected. Rows that share no identifier run in no particular order.
//!
//! **Resuming.** The contact of row `n` has the id `UUIDv5(import_id, "row:n")`, and a create
//! with an existing id answers `Created::Existing`, so a job that stopped half-way (a crash, a
//! deploy) is claimed again once its lease runs out and resumes at the first unreported row
//! without making anything twice. The events carry the submitter as actor and the import id as
//! correlation id.

mod checks;
mod file;
mod job;
mod rows;
mod worker;

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use events::Role;
use serde::{Deserialize, Serialize};
use service::{ApiError, Caller, FieldError, IdempotencyKey, Problem};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{CommandState, db_error, idempotency};

pub use file::{MAX_BODY, MAX_ROWS};
pub use worker::{CHUNK, CONCURRENCY, drain, run, run_once};

pub const IMPORTS: &str = "/api/v1/contacts/imports";
const SUBMIT_ROUTE: &str = "POST /api/v1/contacts/imports";
/// Woken when an import is queued (`pg_notify`), in this process or another.
pub const CHANNEL: &str = "contact_imports";

/// What to do with a row whose identifier belongs to an existing contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnDuplicate {
    Skip,
    Update,
}

impl OnDuplicate {
    pub fn as_str(self) -> &'static str {
        match self {
            OnDuplicate::Skip => "skip",
            OnDuplicate::Update => "update",
        }
    }

    pub fn parse(text: &str) -> Option<OnDuplicate> {
        match text {
            "skip" => Some(OnDuplicate::Skip),
            "update" => Some(OnDuplicate::Update),
            _ => None,
        }
    }
}

/// A queued import.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ImportQueued {
    pub import_id: Uuid,
    /// `queued`, or where a retried submission's job is by now.
    #[schema(example = "queued")]
    pub status: String,
    pub dry_run: bool,
    pub on_duplicate: OnDuplicate,
    /// Data rows found in the file.
    pub rows_total: i32,
    /// Target (`full_name`, `email`…, `custom.<key>`) → the column header feeding it.
    #[schema(value_type = Object)]
    pub mapping: BTreeMap<String, String>,
    /// Columns no target reads.
    pub ignored_columns: Vec<String>,
    /// Where progress and counts are read.
    #[schema(example = "/api/v1/contacts/imports/0190f3c4-2b1e-7c3a-9d5e-6f7a8b9c0d1e")]
    pub progress: String,
}

/// The options of a submission, from its query string.
struct Options {
    dry_run: bool,
    on_duplicate: OnDuplicate,
    /// `map.*` parameters: target → header (empty: ignore).
    map: Vec<(String, String)>,
}

fn options(params: &[(String, String)]) -> Result<Options, ApiError> {
    let mut errors = Vec::new();
    let mut dry_run = None;
    let mut on_duplicate = None;
    let mut map = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (name, value) in params {
        if !seen.insert(name.as_str()) {
            errors.push(FieldError::new(name, "is given more than once"));
            continue;
        }
        match name.as_str() {
            "dry_run" => match value.as_str() {
                "true" => dry_run = Some(true),
                "false" => dry_run = Some(false),
                _ => errors.push(FieldError::new(name, "must be true or false")),
            },
            "on_duplicate" => match OnDuplicate::parse(value) {
                Some(choice) => on_duplicate = Some(choice),
                None => errors.push(FieldError::new(name, "must be skip or update")),
            },
            _ => match name.strip_prefix("map.") {
                Some(target) => map.push((target.to_owned(), value.clone())),
                None => errors.push(FieldError::new(
                    name,
                    "is not a parameter of imports: dry_run, on_duplicate, map.<field> and \
                     map.custom.<key> are",
                )),
            },
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation { errors });
    }
    Ok(Options {
        dry_run: dry_run.unwrap_or(false),
        on_duplicate: on_duplicate.unwrap_or(OnDuplicate::Skip),
        map,
    })
}

/// `text/csv`, with no charset or UTF-8.
fn is_csv(request: &HttpRequest) -> bool {
    let Some(value) = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mut parts = value.split(';').map(str::trim);
    let media_ok = parts
        .next()
        .is_some_and(|m| m.eq_ignore_ascii_case("text/csv"));
    media_ok
        && parts.all(|param| match param.split_once('=') {
            Some((name, charset)) if name.trim().eq_ignore_ascii_case("charset") => {
                let charset = charset.trim().trim_matches('"');
                charset.eq_ignore_ascii_case("utf-8") || charset.eq_ignore_ascii_case("utf8")
            }
            _ => true,
        })
}

/// Tells a retried submission from another one with the same key.
fn request_hash(body: &[u8], dry_run: bool, on_duplicate: OnDuplicate, mapping: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(Sha256::digest(body));
    hash.update(format!("{dry_run}\u{0}{}\u{0}{mapping}", on_duplicate.as_str()).as_bytes());
    hex::encode(hash.finalize())
}

pub fn progress_path(import_id: Uuid) -> String {
    format!("{IMPORTS}/{import_id}")
}

/// Import contacts from a CSV file (staff): queued as a job, answered at once with the link to
/// its progress. See the module documentation for the file, the mapping and the options.
#[utoipa::path(
    post,
    path = "/api/v1/contacts/imports",
    tag = "contacts",
    security(("bearer" = []), ("api_key" = [])),
    params(
        ("X-Org-ID" = Option<Uuid>, Header, description = "The organisation; optional when the caller belongs to one"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: a retry answers the import the first try queued"),
        ("dry_run" = Option<bool>, Query, description = "Check every row and write nothing (default false)"),
        ("on_duplicate" = Option<OnDuplicate>, Query, description = "A row whose identifier belongs to an existing contact: `skip` it (default) or `update` that contact"),
        ("map.full_name" = Option<String>, Query, description = "The header of the column with the full name (default: a column headed `full_name`); likewise `map.email`, `map.whatsapp`, `map.telegram_chat_id`, `map.instagram_scoped_id`, `map.instagram_user_id`, `map.tags` (`;`-separated) and `map.notes`; empty to ignore a column"),
        ("map.custom.{key}" = Option<String>, Query, description = "The header of the column with custom field `key` (default: a column headed `custom.<key>`)"),
    ),
    request_body(content = String, content_type = "text/csv", description = "The CSV file: UTF-8, a header row, at most 100,000 rows and 50 MiB"),
    responses(
        (status = 202, description = "Queued; follow `progress` (also in `Location`)", body = ImportQueued),
        (status = 403, description = "Viewers cannot import", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Larger than 50 MiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not sent as `text/csv`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not UTF-8 CSV with a header, too many rows, or a parameter naming an unknown target or column (named in `errors`)", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "submit_contact_import", skip_all, fields(org_id = %caller.org_id, import_id = tracing::field::Empty))]
pub async fn submit(
    state: web::Data<CommandState>,
    caller: Caller,
    key: IdempotencyKey,
    request: HttpRequest,
    query: web::Query<Vec<(String, String)>>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Staff)?;
    if !is_csv(&request) {
        return Ok(Problem::new(StatusCode::UNSUPPORTED_MEDIA_TYPE)
            .detail("The body must be a CSV file sent with `Content-Type: text/csv` (UTF-8).")
            .to_response());
    }
    let options = options(&query)?;
    // Up to 100,000 rows: parsed off the server's threads.
    let parse = body.clone();
    let csv = web::block(move || file::CsvFile::parse(&parse))
        .await
        .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("parsing an import")))?
        .map_err(|e| ApiError::validation("body", e))?;
    let definitions = crate::custom_fields::definitions(&state, caller.org_id).await?;
    let custom_keys = definitions.fields.keys().cloned().collect();
    let mapping = file::Mapping::resolve(&csv.headers, &options.map, &custom_keys)?;
    let ignored_columns = mapping.ignored(&csv.headers);
    let mapping_json = serde_json::to_string(&mapping.targets)
        .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("encoding a mapping")))?;
    let hash = request_hash(&body, options.dry_run, options.on_duplicate, &mapping_json);
    let import_id = match &key.0 {
        Some(key) => idempotency::derive(caller.org_id, key, SUBMIT_ROUTE, None),
        None => Uuid::now_v7(),
    };
    tracing::Span::current().record("import_id", tracing::field::display(import_id));
    let metadata = caller.metadata();
    let (actor_kind, actor_id) = metadata.actor.columns();
    let rows_total = i32::try_from(csv.rows.len()).unwrap_or(i32::MAX);
    // The notification is delivered when the insert commits, and only if it inserted.
    let queued: Option<Uuid> = sqlx::query_scalar(
        "WITH queued AS (
             INSERT INTO contact_imports (import_id, org_id, dry_run, on_duplicate, mapping,
                                          metadata, actor_kind, actor_id, request_hash, csv,
                                          rows_total)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (import_id) DO NOTHING
             RETURNING import_id)
         SELECT import_id FROM queued, pg_notify($12, '')",
    )
    .bind(import_id)
    .bind(caller.org_id)
    .bind(options.dry_run)
    .bind(options.on_duplicate.as_str())
    .bind(sqlx::types::Json(&mapping.targets))
    .bind(sqlx::types::Json(&metadata))
    .bind(actor_kind)
    .bind(actor_id)
    .bind(&hash)
    .bind(body.as_ref())
    .bind(rows_total)
    .bind(CHANNEL)
    .fetch_optional(&state.pool)
    .await
    .map_err(|e| db_error(e, "queueing an import"))?;
    let status = match queued {
        Some(_) => "queued".to_owned(),
        None => retried_status(&state, caller.org_id, import_id, &hash).await?,
    };
    let progress = progress_path(import_id);
    Ok(HttpResponse::Accepted()
        .insert_header((header::LOCATION, progress.clone()))
        .json(ImportQueued {
            import_id,
            status,
            dry_run: options.dry_run,
            on_duplicate: options.on_duplicate,
            rows_total,
            mapping: mapping.targets,
            ignored_columns,
            progress,
        }))
}

/// The status of the import a retried submission (same key) queued before; 422 when the key was
/// used for a different file or options.
async fn retried_status(
    state: &CommandState,
    org_id: Uuid,
    import_id: Uuid,
    hash: &str,
) -> Result<String, ApiError> {
    let first: Option<(Uuid, String, String)> = sqlx::query_as(
        "SELECT org_id, request_hash, status FROM contact_imports WHERE import_id = $1",
    )
    .bind(import_id)
    .fetch_optional(&state.pool)
    .await
    .map_err(|e| db_error(e, "reading an import"))?;
    match first {
        Some((org, first_hash, status)) if org == org_id && first_hash == hash => Ok(status),
        _ => Err(ApiError::Unprocessable {
            slug: "idempotency-key-reused",
            detail: format!(
                "This Idempotency-Key was already used for a different request to \
                 {SUBMIT_ROUTE}; send a new key for a new request."
            ),
        }),
    }
}

/// The limit of an import body: larger ones are refused with 413 before they are read whole.
pub fn payload_config() -> web::PayloadConfig {
    web::PayloadConfig::new(MAX_BODY)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn options_default_and_name_what_is_wrong() {
        let Ok(parsed) = options(&[]) else {
            panic!("no options are fine");
        };
        assert!(!parsed.dry_run);
        assert_eq!(parsed.on_duplicate, OnDuplicate::Skip);
        let Err(ApiError::Validation { errors }) = options(&params(&[
            ("dry_run", "yes"),
            ("on_duplicate", "merge"),
            ("limit", "3"),
            ("map.email", "E"),
            ("map.email", "F"),
        ])) else {
            panic!("invalid options pass");
        };
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["dry_run", "on_duplicate", "limit", "map.email"]);
    }
}
