//! `GET /api/v1/contacts/export`: the contacts list, with the same filters and order, as a CSV
//! file (viewers may export what they may list).
//!
//! **Columns**: `contact_id`, `full_name`, `email`, `whatsapp`, `telegram_chat_id`,
//! `instagram_scoped_id`, `instagram_user_id`, `status`, `tags` (`;`-separated), `notes`,
//! `created_at` (RFC 3339), then `custom.<key>` for every custom field key the exported contacts
//! have, in key order. Text custom values are written as they are; numbers and booleans as JSON
//! text; lists joined with `;`. The headers are the import's default mapping, so an export
//! imports into another organisation as it is (`POST /api/v1/contacts/imports`, which ignores
//! `contact_id`, `status` and `created_at`).
//!
//! **Streaming**: the rows are read a page at a time with the list's keyset order and written as
//! they come, so a million contacts never sit in memory at once. A failure half-way aborts the
//! response rather than ending the file early as if it were complete.
//!
//! **Formula injection**: a spreadsheet runs a cell that starts with `=`, `+`, `-`, `@`, a tab or
//! a carriage return as a formula, so such a cell of free text (names, emails, tags, notes,
//! custom values) is written with a leading `'`, which spreadsheets show as text and the import
//! takes away again. Phone numbers, Telegram chat ids and Instagram ids are left as they are:
//! they are checked to be a sign and digits, which a spreadsheet reads as a number, never as a
//! formula, and `+351…` must stay dialable.

use std::collections::BTreeMap;

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use events::Role;
use service::consistency::ConsistencyToken;
use service::{ApiError, Caller, Problem};
use sqlx::PgPool;
use uuid::Uuid;

use crate::contacts::{
    ContactQuery, Cursor, FILTERED, Filters, PROJECTION, bind_filters, filtered,
};
use crate::{QueryState, db_error};

pub const EXPORT: &str = "/api/v1/contacts/export";

/// Contacts read per query while streaming.
const PAGE: i64 = 1000;

const COLUMNS: [&str; 11] = [
    "contact_id",
    "full_name",
    "email",
    "whatsapp",
    "telegram_chat_id",
    "instagram_scoped_id",
    "instagram_user_id",
    "status",
    "tags",
    "notes",
    "created_at",
];

/// The characters that make a spreadsheet read a cell as a formula (command-api's import
/// strips the `'` this module puts before them).
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// Free text as a cell no spreadsheet runs.
fn guarded(text: &str) -> String {
    if text.starts_with(FORMULA_STARTS) {
        format!("'{text}")
    } else {
        text.to_owned()
    }
}

fn custom_text(value: &serde_json::Value) -> String {
    use serde_json::Value;
    match value {
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        Value::Array(items) => items.iter().map(custom_text).collect::<Vec<_>>().join(";"),
        other => other.to_string(),
    }
}

#[derive(sqlx::FromRow)]
struct ExportRow {
    contact_id: Uuid,
    full_name: Option<String>,
    email: Option<String>,
    whatsapp: Option<String>,
    telegram_chat_id: Option<String>,
    instagram_scoped_id: Option<String>,
    instagram_user_id: Option<String>,
    status: String,
    tags: Vec<String>,
    notes: Option<String>,
    custom_fields: serde_json::Value,
    created_at: DateTime<Utc>,
    sort_key: String,
}

/// What the stream carries from one page to the next.
struct Export {
    pool: PgPool,
    org_id: Uuid,
    filters: Filters,
    custom_keys: Vec<String>,
    /// The last row written: its sort key and id.
    after: Option<Cursor>,
    header_written: bool,
    done: bool,
}

impl Export {
    async fn page(&self) -> Result<Vec<ExportRow>, sqlx::Error> {
        filtered(
            &self.pool,
            self.org_id,
            &self.filters,
            "contact_id, full_name, email, whatsapp, telegram_chat_id, instagram_scoped_id,
             instagram_user_id, status, tags, notes, custom_fields, created_at",
            self.after.as_ref(),
            PAGE,
        )
        .await
    }

    fn header(&self) -> Result<Bytes, csv::Error> {
        let custom = self.custom_keys.iter().map(|k| format!("custom.{k}"));
        let header: Vec<String> = COLUMNS
            .iter()
            .map(|c| (*c).to_owned())
            .chain(custom)
            .collect();
        write(std::iter::once(header))
    }

    fn rows(&self, rows: &[ExportRow]) -> Result<Bytes, csv::Error> {
        write(rows.iter().map(|row| {
            let text = |value: &Option<String>| value.as_deref().map(guarded).unwrap_or_default();
            let plain = |value: &Option<String>| value.clone().unwrap_or_default();
            let custom: BTreeMap<&str, &serde_json::Value> = row
                .custom_fields
                .as_object()
                .map(|fields| fields.iter().map(|(k, v)| (k.as_str(), v)).collect())
                .unwrap_or_default();
            let mut record = vec![
                row.contact_id.to_string(),
                text(&row.full_name),
                text(&row.email),
                plain(&row.whatsapp),
                plain(&row.telegram_chat_id),
                plain(&row.instagram_scoped_id),
                plain(&row.instagram_user_id),
                row.status.clone(),
                guarded(&row.tags.join(";")),
                text(&row.notes),
                row.created_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            ];
            record.extend(self.custom_keys.iter().map(|key| {
                custom
                    .get(key.as_str())
                    .map(|v| guarded(&custom_text(v)))
                    .unwrap_or_default()
            }));
            record
        }))
    }

    /// The next piece of the file; `None` after the last.
    async fn next(mut self) -> Result<Option<(Bytes, Export)>, std::io::Error> {
        if !self.header_written {
            self.header_written = true;
            return Ok(Some((self.header().map_err(failed)?, self)));
        }
        if self.done {
            return Ok(None);
        }
        let rows = self.page().await.map_err(|error| {
            tracing::warn!(%error, "exporting contacts");
            failed(error)
        })?;
        self.done = i64::try_from(rows.len()).unwrap_or(0) < PAGE;
        let Some(last) = rows.last() else {
            return Ok(None);
        };
        self.after = Some(Cursor::new(last.sort_key.clone(), last.contact_id));
        let chunk = self.rows(&rows).map_err(failed)?;
        Ok(Some((chunk, self)))
    }
}

fn failed(error: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(format!("the export failed: {error}"))
}

fn write<I, R>(records: I) -> Result<Bytes, csv::Error>
where
    I: IntoIterator<Item = R>,
    R: IntoIterator,
    R::Item: AsRef<[u8]>,
{
    let mut writer = csv::Writer::from_writer(Vec::new());
    for record in records {
        writer.write_record(record)?;
    }
    writer
        .into_inner()
        .map(Bytes::from)
        .map_err(|e| csv::Error::from(e.into_error()))
}

/// The organisation's contacts as a CSV file (viewers too): the filters and order of
/// `GET /api/v1/contacts`, every matching contact, streamed.
#[utoipa::path(
    get,
    path = "/api/v1/contacts/export",
    tag = "contacts",
    security(("bearer" = []), ("api_key" = [])),
    params(
        ("X-Org-ID" = Option<Uuid>, Header, description = "The organisation; optional when the caller belongs to one"),
        ("X-Consistency-Token" = Option<String>, Header, description = "Wait until this write is visible"),
        ContactQuery,
    ),
    responses(
        (status = 200, description = "The contacts, one per row after the header", body = String, content_type = "text/csv"),
        (status = 422, description = "Invalid filters", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "export_contacts", skip_all, fields(org_id = %caller.org_id))]
pub async fn export(
    state: web::Data<QueryState>,
    caller: Caller,
    token: ConsistencyToken,
    query: web::Query<ContactQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Viewer)?;
    if query.after.is_some() || query.limit.is_some() {
        return Err(ApiError::validation(
            if query.after.is_some() {
                "after"
            } else {
                "limit"
            },
            "an export has every contact the filters select, in one file",
        ));
    }
    let filters = query.validate()?;
    // The columns follow the custom field definitions.
    state
        .settle(token, &[PROJECTION, crate::custom_fields::PROJECTION])
        .await?;
    // The header names every custom field the exported contacts have, so it is known first.
    let custom_keys: Vec<(String,)> = bind_filters(
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT DISTINCT key FROM rm_contacts, jsonb_object_keys(custom_fields) AS key
             WHERE {FILTERED}
               -- Values of removed definitions are not shown, here either.
               AND key IN (SELECT f.key FROM rm_custom_fields f WHERE f.org_id = $1)
             ORDER BY key"
        ))),
        caller.org_id,
        &filters,
    )
    .fetch_all(&state.pool)
    .await
    .map_err(|e| db_error(e, "listing custom fields"))?;
    let export = Export {
        pool: state.pool.clone(),
        org_id: caller.org_id,
        filters,
        custom_keys: custom_keys.into_iter().map(|(key,)| key).collect(),
        after: None,
        header_written: false,
        done: false,
    };
    let body = futures::stream::try_unfold(export, Export::next);
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            "attachment; filename=\"contacts.csv\"",
        ))
        .streaming(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_starts_are_guarded_and_other_text_is_not() {
        assert_eq!(guarded("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(guarded("+1"), "'+1");
        assert_eq!(guarded("-x"), "'-x");
        assert_eq!(guarded("@sum"), "'@sum");
        assert_eq!(guarded("Ada = 1"), "Ada = 1");
    }

    #[test]
    fn fields_with_commas_quotes_and_line_breaks_are_quoted() {
        let Ok(bytes) = write([vec!["a,b", "say \"hi\"", "two\nlines", "plain"]]) else {
            panic!("writes");
        };
        assert_eq!(
            &bytes[..],
            b"\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\",plain\n"
        );
    }

    #[test]
    fn custom_values_become_text() {
        use serde_json::json;
        assert_eq!(custom_text(&json!("gold")), "gold");
        assert_eq!(custom_text(&json!(3.5)), "3.5");
        assert_eq!(custom_text(&json!(true)), "true");
        assert_eq!(custom_text(&json!(["a", "b"])), "a;b");
        assert_eq!(custom_text(&json!(null)), "");
    }
}
