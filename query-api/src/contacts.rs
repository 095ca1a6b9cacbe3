//! Contacts, read side: `GET /api/v1/contacts` (search, filters, sorting, cursor pages),
//! `GET /api/v1/contacts/{id}` (identities, flags, consent, status history) and
//! `GET /api/v1/contacts/{id}/timeline` (every event about the contact, newest first), from the
//! `contacts` projection.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use events::Role;
use serde::{Deserialize, Serialize};
use service::consistency::ConsistencyToken;
use service::{ApiError, Caller, FieldError, Problem};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::page::{self, Page};
use crate::{QueryState, db_error};

pub const CONTACTS: &str = "/api/v1/contacts";
pub const CONTACT: &str = "/api/v1/contacts/{contact_id}";
pub const TIMELINE: &str = "/api/v1/contacts/{contact_id}/timeline";
/// The projection these endpoints read.
pub const PROJECTION: &str = "contacts";

const STATUSES: [&str; 4] = ["active", "blocked", "unsubscribed", "bounced"];

/// Filters and order of `GET /api/v1/contacts`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ContactQuery {
    /// Part of the name or of any identifier (email, phone, Telegram or Instagram id),
    /// case-insensitive.
    pub q: Option<String>,
    /// `active`, `blocked`, `unsubscribed` or `bounced`.
    pub status: Option<String>,
    /// Only contacts with this tag.
    pub tag: Option<String>,
    /// Created at or after (RFC 3339).
    pub created_from: Option<String>,
    /// Created before (RFC 3339).
    pub created_to: Option<String>,
    /// `recent` (newest first, the default) or `name`.
    pub sort: Option<String>,
    /// Include deleted (not erased) contacts.
    pub include_deleted: Option<bool>,
    /// Only members of this group.
    pub group: Option<String>,
    /// Only contacts whose custom field has this value: `<key>:<value>`.
    #[param(example = "plan:gold")]
    pub custom_field: Option<String>,
    /// The `next_cursor` of the previous page.
    pub after: Option<String>,
    /// 1 to 200, default 50.
    pub limit: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sort {
    Recent,
    Name,
}

/// Where the previous page ended: its last row's sort key and id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Cursor {
    key: String,
    id: Uuid,
}

impl Cursor {
    pub(crate) fn new(key: String, id: Uuid) -> Cursor {
        Cursor { key, id }
    }

    fn encode(&self) -> String {
        hex::encode(serde_json::to_vec(self).unwrap_or_default())
    }

    fn decode(text: &str) -> Option<Cursor> {
        serde_json::from_slice(&hex::decode(text).ok()?).ok()
    }
}

pub(crate) struct Filters {
    pub(crate) q: Option<String>,
    pub(crate) status: Option<String>,
    pub(crate) tag: Option<String>,
    pub(crate) created_from: Option<DateTime<Utc>>,
    pub(crate) created_to: Option<DateTime<Utc>>,
    pub(crate) sort: Sort,
    pub(crate) include_deleted: bool,
    pub(crate) group: Option<Uuid>,
    /// A custom field's key and the value (as text) it must have.
    pub(crate) custom_field: Option<(String, String)>,
    after: Option<Cursor>,
    limit: i64,
}

impl ContactQuery {
    pub(crate) fn validate(&self) -> Result<Filters, ApiError> {
        let mut errors = Vec::new();
        let q = match self.q.as_deref().map(str::trim) {
            Some("") | None => None,
            Some(q) if q.chars().count() > 200 => {
                errors.push(FieldError::new("q", "must be at most 200 characters"));
                None
            }
            Some(q) => Some(page::contains_pattern(q)),
        };
        let status = self.status.clone();
        if let Some(s) = &status
            && !STATUSES.contains(&s.as_str())
        {
            errors.push(FieldError::new(
                "status",
                "must be active, blocked, unsubscribed or bounced",
            ));
        }
        let tag = self.tag.as_ref().map(|t| t.trim().to_lowercase());
        let group = self.group.as_deref().and_then(|g| {
            g.trim()
                .parse::<Uuid>()
                .map_err(|_| errors.push(FieldError::new("group", "must be a group id")))
                .ok()
        });
        let custom_field = self.custom_field.as_deref().and_then(|f| {
            f.split_once(':')
                .filter(|(key, _)| !key.is_empty())
                .map(|(key, value)| (key.to_owned(), value.to_owned()))
                .or_else(|| {
                    errors.push(FieldError::new("custom_field", "must be <key>:<value>"));
                    None
                })
        });
        let created_from = page::time("created_from", self.created_from.as_deref(), &mut errors);
        let created_to = page::time("created_to", self.created_to.as_deref(), &mut errors);
        let sort = match self.sort.as_deref() {
            None | Some("recent") => Sort::Recent,
            Some("name") => Sort::Name,
            Some(_) => {
                errors.push(FieldError::new("sort", "must be recent or name"));
                Sort::Recent
            }
        };
        let after = match self.after.as_deref() {
            None => None,
            Some(text) => match Cursor::decode(text) {
                Some(cursor) => Some(cursor),
                None => {
                    errors.push(FieldError::new(
                        "after",
                        "is not a cursor this list returned",
                    ));
                    None
                }
            },
        };
        let limit = page::checked_limit(self.limit, &mut errors);
        if !errors.is_empty() {
            return Err(ApiError::Validation { errors });
        }
        Ok(Filters {
            q,
            status,
            tag,
            created_from,
            created_to,
            sort,
            include_deleted: self.include_deleted.unwrap_or(false),
            group,
            custom_field,
            after,
            limit,
        })
    }
}

/// A contact in a list.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct ContactSummary {
    pub contact_id: Uuid,
    /// `null` once the contact's personal data has been erased.
    pub full_name: Option<String>,
    pub email: Option<String>,
    pub whatsapp: Option<String>,
    pub telegram_chat_id: Option<String>,
    pub instagram_scoped_id: Option<String>,
    pub instagram_user_id: Option<String>,
    pub status: String,
    pub tags: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub last_inbound_at: Option<DateTime<Utc>>,
    pub last_outbound_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ContactPage {
    pub items: Vec<ContactSummary>,
    pub next_cursor: Option<String>,
}

const SUMMARY_COLUMNS: &str = "contact_id, full_name, email, whatsapp, telegram_chat_id,
    instagram_scoped_id, instagram_user_id, status, tags, created_at, updated_at, deleted_at,
    last_inbound_at, last_outbound_at";

/// The organisation's contacts.
#[utoipa::path(
    get,
    path = "/api/v1/contacts",
    tag = "contacts",
    security(("bearer" = []), ("api_key" = [])),
    params(
        ("X-Org-ID" = Option<Uuid>, Header, description = "The organisation; optional when the caller belongs to one"),
        ("X-Consistency-Token" = Option<String>, Header, description = "Wait until this write is visible"),
        ContactQuery,
    ),
    responses(
        (status = 200, description = "A page of contacts", body = ContactPage),
        (status = 422, description = "Invalid filters", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "contacts", skip_all, fields(org_id = %caller.org_id))]
pub async fn list(
    state: web::Data<QueryState>,
    caller: Caller,
    token: ConsistencyToken,
    query: web::Query<ContactQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Viewer)?;
    let filters = query.validate()?;
    // A group filter reads the groups model's members too.
    let group = filters.group.is_some().then_some(crate::groups::PROJECTION);
    let projections: Vec<&str> = [Some(PROJECTION), group].into_iter().flatten().collect();
    state.settle(token, &projections).await?;
    let rows: Vec<SummaryRow> = filtered(
        &state.pool,
        caller.org_id,
        &filters,
        SUMMARY_COLUMNS,
        filters.after.as_ref(),
        filters.limit + 1,
    )
    .await
    .map_err(|e| db_error(e, "listing contacts"))?;
    let Page { items, next_cursor } = Page::from_rows(rows, filters.limit, |row| {
        Cursor {
            key: row.sort_key.clone(),
            id: row.contact.contact_id,
        }
        .encode()
    });
    Ok(HttpResponse::Ok().json(ContactPage {
        items: items.into_iter().map(|row| row.contact).collect(),
        next_cursor,
    }))
}

/// The contacts `filters` select, as the list and the export read them.
pub(crate) const FILTERED: &str = "org_id = $1
    AND ($2::text IS NULL OR search LIKE $2)
    AND ($3::text IS NULL OR status = $3)
    AND ($4::text IS NULL OR tags @> ARRAY[$4])
    AND ($5::timestamptz IS NULL OR created_at >= $5)
    AND ($6::timestamptz IS NULL OR created_at < $6)
    AND ($7 OR deleted_at IS NULL)
    AND erased_at IS NULL
    AND merged_into IS NULL
    AND ($8::uuid IS NULL OR EXISTS (
        SELECT 1 FROM rm_group_members m
        WHERE m.org_id = rm_contacts.org_id AND m.group_id = $8
          AND m.contact_id = rm_contacts.contact_id))
    AND ($9::text IS NULL OR custom_fields ->> $9 = $10)";

/// Binds `$1`–`$10` of [`FILTERED`].
pub(crate) fn bind_filters<'q, O>(
    query: sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    org_id: Uuid,
    filters: &'q Filters,
) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
    let (key, value) = match &filters.custom_field {
        Some((key, value)) => (Some(key.as_str()), Some(value.as_str())),
        None => (None, None),
    };
    query
        .bind(org_id)
        .bind(filters.q.as_deref())
        .bind(filters.status.as_deref())
        .bind(filters.tag.as_deref())
        .bind(filters.created_from)
        .bind(filters.created_to)
        .bind(filters.include_deleted)
        .bind(filters.group)
        .bind(key)
        .bind(value)
}

/// A page of the contacts `filters` select in their order, after `after`: `columns` and the
/// row's `sort_key` (its cursor). Each order has an index (org_id, key, contact_id); ids break
/// ties.
pub(crate) async fn filtered<R>(
    pool: &sqlx::PgPool,
    org_id: Uuid,
    filters: &Filters,
    columns: &str,
    after: Option<&Cursor>,
    limit: i64,
) -> Result<Vec<R>, sqlx::Error>
where
    R: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    let (key, cursor_key, shown_key, order, compare) = match filters.sort {
        Sort::Recent => (
            "created_at",
            "$11::timestamptz",
            "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
            "DESC",
            "<",
        ),
        Sort::Name => (
            "lower(full_name)",
            "$11::text",
            "lower(full_name)",
            "ASC",
            ">",
        ),
    };
    let sql = format!(
        "SELECT {columns}, {shown_key} AS sort_key FROM rm_contacts
         WHERE {FILTERED}
           AND ($11::text IS NULL OR ({key}, contact_id) {compare} ({cursor_key}, $12))
         ORDER BY {key} {order}, contact_id {order}
         LIMIT $13"
    );
    bind_filters(sqlx::query_as(sqlx::AssertSqlSafe(sql)), org_id, filters)
        .bind(after.map(|c| c.key.clone()))
        .bind(after.map(|c| c.id))
        .bind(limit)
        .fetch_all(pool)
        .await
}

#[derive(sqlx::FromRow)]
struct SummaryRow {
    #[sqlx(flatten)]
    contact: ContactSummary,
    sort_key: String,
}

/// A contact with everything the read model knows.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct ContactDetail {
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub summary: ContactSummary,
    pub whatsapp_blocked: bool,
    pub instagram_blocked: bool,
    pub instagram_opt_in: bool,
    /// `{opted_in, source, at}` when consent was recorded.
    #[schema(value_type = Object)]
    pub consent: Option<serde_json::Value>,
    pub notes: Option<String>,
    #[schema(value_type = Object)]
    pub custom_fields: serde_json::Value,
    /// Every status change, oldest first: `{from, to, reason, actor, at}`.
    #[schema(value_type = Vec<Object>)]
    pub status_history: serde_json::Value,
    /// The groups the contact is a member of, by name.
    #[sqlx(json)]
    pub groups: Vec<ContactGroup>,
    pub erased_at: Option<DateTime<Utc>>,
    /// The id asked for, when it was merged into this contact (it resolves here).
    #[sqlx(default)]
    pub resolved_from: Option<Uuid>,
}

/// A group a contact is a member of.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ContactGroup {
    pub group_id: Uuid,
    pub name: String,
    /// `#rrggbb`.
    pub colour: Option<String>,
}

/// `?as_of=` of a contact.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DetailQuery {
    /// Show the contact as it was at this time (RFC 3339), rebuilt from its events.
    pub as_of: Option<String>,
}

/// One contact: as it is now, or as it was at `?as_of=`.
#[utoipa::path(
    get,
    path = "/api/v1/contacts/{contact_id}",
    tag = "contacts",
    security(("bearer" = []), ("api_key" = [])),
    params(
        ("contact_id" = Uuid, Path, description = "The contact"),
        ("X-Org-ID" = Option<Uuid>, Header, description = "The organisation; optional when the caller belongs to one"),
        ("X-Consistency-Token" = Option<String>, Header, description = "Wait until this write is visible"),
        DetailQuery,
    ),
    responses(
        (status = 200, description = "The contact (with `as_of`: a `ContactAsOf`)", body = ContactDetail),
        (status = 404, description = "No such contact in this organisation (or not yet at `as_of`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`as_of` is not a time", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "contact", skip_all, fields(org_id = %caller.org_id, contact_id = %path))]
pub async fn detail(
    state: web::Data<QueryState>,
    caller: Caller,
    token: ConsistencyToken,
    path: web::Path<Uuid>,
    query: web::Query<DetailQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Viewer)?;
    if let Some(raw) = query.as_of.as_deref() {
        let mut errors = Vec::new();
        let Some(as_of) = page::time("as_of", Some(raw), &mut errors) else {
            return Err(ApiError::Validation { errors });
        };
        let contact = as_of_contact(&state, caller.org_id, path.into_inner(), as_of).await?;
        return Ok(HttpResponse::Ok().json(contact));
    }
    let projections = [
        PROJECTION,
        crate::custom_fields::PROJECTION,
        crate::groups::PROJECTION,
    ];
    state.settle(token, &projections).await?;
    let asked = path.into_inner();
    let contact_id = resolve(&state, caller.org_id, asked).await?;
    let contact: Option<ContactDetail> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {SUMMARY_COLUMNS}, whatsapp_blocked, instagram_blocked, instagram_opt_in,
                consent, notes,
                -- Values of removed definitions stay in the log but are not shown.
                (SELECT coalesce(jsonb_object_agg(e.key, e.value), '{{}}')
                 FROM jsonb_each(c.custom_fields) e
                 WHERE e.key IN (SELECT f.key FROM rm_custom_fields f
                                 WHERE f.org_id = c.org_id)) AS custom_fields,
                status_history,
                (SELECT coalesce(jsonb_agg(jsonb_build_object('group_id', g.group_id,
                                                              'name', g.name,
                                                              'colour', g.colour)
                                           ORDER BY lower(g.name), g.group_id), '[]')
                 FROM rm_group_members m
                 JOIN rm_groups g ON g.org_id = m.org_id AND g.group_id = m.group_id
                 WHERE m.org_id = c.org_id AND m.contact_id = c.contact_id
                   AND NOT g.deleted) AS groups,
                erased_at
         FROM rm_contacts c WHERE org_id = $1 AND contact_id = $2"
    )))
    .bind(caller.org_id)
    .bind(contact_id)
    .fetch_optional(&state.pool)
    .await
    .map_err(|e| db_error(e, "reading a contact"))?;
    let mut contact = contact.ok_or_else(|| ApiError::NotFound("No such contact.".into()))?;
    contact.resolved_from = (contact_id != asked).then_some(asked);
    Ok(HttpResponse::Ok().json(contact))
}

/// A contact as it was at `as_of`, folded from its events up to then.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ContactAsOf {
    pub contact_id: Uuid,
    pub as_of: DateTime<Utc>,
    pub full_name: Option<String>,
    pub email: Option<String>,
    pub whatsapp: Option<String>,
    pub telegram_chat_id: Option<String>,
    pub instagram_scoped_id: Option<String>,
    pub instagram_user_id: Option<String>,
    pub status: String,
    pub tags: Vec<String>,
    pub notes: Option<String>,
    #[schema(value_type = Object)]
    pub custom_fields: serde_json::Value,
    pub whatsapp_blocked: bool,
    pub instagram_blocked: bool,
    pub instagram_opt_in: bool,
    pub deleted: bool,
    /// The personal data is gone (erased since, or by then).
    pub erased: bool,
}

async fn as_of_contact(
    state: &QueryState,
    org_id: Uuid,
    contact_id: Uuid,
    as_of: DateTime<Utc>,
) -> Result<ContactAsOf, ApiError> {
    use domain::Aggregate;
    use events::TypedEvent;
    let log = state.log.as_ref().ok_or_else(|| ApiError::Unavailable {
        detail: "History is not available from this server.".into(),
        retry_after: None,
    })?;
    let unavailable = |error: String| {
        tracing::warn!(%error, "reading a contact's history");
        ApiError::Unavailable {
            detail: "The event log is unavailable; retry shortly.".into(),
            retry_after: Some(std::time::Duration::from_secs(1)),
        }
    };
    let mut recorded = log
        .store
        .read_stream(
            &events::contact::stream(contact_id),
            None,
            event_store::Direction::Forwards,
            usize::MAX,
        )
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    // Another organisation's contact is as unknown as a missing one.
    if recorded.first().is_none_or(|e| e.org_id != org_id) {
        return Err(ApiError::NotFound("No such contact.".into()));
    }
    recorded.retain(|e| e.recorded_at <= as_of);
    log.data_keys
        .open_events(&mut recorded)
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let upcasters = events::Upcasters::default();
    let mut contact = domain::contact::Contact::default();
    for event in &recorded {
        let decoded = events::contact::ContactEvent::decode(event, &upcasters)
            .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("decoding history")))?;
        if let Some(decoded) = decoded {
            contact = contact.evolve(&decoded);
        }
    }
    if contact.id.is_none() {
        return Err(ApiError::NotFound(format!(
            "This contact did not exist yet at {as_of}."
        )));
    }
    Ok(ContactAsOf {
        contact_id,
        as_of,
        full_name: contact.full_name,
        email: contact.email.map(|e| e.as_str().to_owned()),
        whatsapp: contact.whatsapp.map(|p| p.as_str().to_owned()),
        telegram_chat_id: contact.telegram_chat_id.map(|t| t.get().to_string()),
        instagram_scoped_id: contact.instagram_scoped_id.map(|i| i.as_str().to_owned()),
        instagram_user_id: contact.instagram_user_id.map(|i| i.as_str().to_owned()),
        status: contact.status.as_str().to_owned(),
        tags: contact.tags.iter().map(|t| t.as_str().to_owned()).collect(),
        notes: contact.notes,
        custom_fields: serde_json::to_value(&contact.custom_fields).unwrap_or_default(),
        whatsapp_blocked: contact.flags.whatsapp_blocked,
        instagram_blocked: contact.flags.instagram_blocked,
        instagram_opt_in: contact.flags.instagram_opt_in,
        deleted: contact.deleted,
        erased: contact.erased,
    })
}

/// The contact an id stands for: itself, or the contact it was merged into (following merges
/// of merges); 404 when the organisation has no such contact.
async fn resolve(state: &QueryState, org_id: Uuid, contact_id: Uuid) -> Result<Uuid, ApiError> {
    let mut current = contact_id;
    // Merges form chains, never cycles (a merged contact cannot take in another); the bound is
    // a guard all the same.
    for _ in 0..16 {
        let merged_into: Option<Option<Uuid>> = sqlx::query_scalar(
            "SELECT merged_into FROM rm_contacts WHERE org_id = $1 AND contact_id = $2",
        )
        .bind(org_id)
        .bind(current)
        .fetch_optional(&state.pool)
        .await
        .map_err(|e| db_error(e, "reading a contact"))?;
        match merged_into {
            None => return Err(ApiError::NotFound("No such contact.".into())),
            Some(None) => return Ok(current),
            Some(Some(next)) => current = next,
        }
    }
    Ok(current)
}

/// One event in a contact's timeline.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct TimelineEntry {
    pub event_id: Uuid,
    /// The event type, e.g. `StatusChanged`.
    pub kind: String,
    /// What changed (personal values are absent once the contact is erased).
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    pub actor_kind: String,
    pub actor: Option<String>,
    pub recorded_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TimelinePage {
    pub items: Vec<TimelineEntry>,
    pub next_cursor: Option<String>,
}

/// `?after=&limit=` of the timeline.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TimelineQuery {
    pub after: Option<String>,
    pub limit: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct TimelineRow {
    seq: i64,
    #[sqlx(flatten)]
    entry: TimelineEntry,
}

/// Everything that happened to a contact, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/contacts/{contact_id}/timeline",
    tag = "contacts",
    security(("bearer" = []), ("api_key" = [])),
    params(
        ("contact_id" = Uuid, Path, description = "The contact"),
        ("X-Org-ID" = Option<Uuid>, Header, description = "The organisation; optional when the caller belongs to one"),
        ("X-Consistency-Token" = Option<String>, Header, description = "Wait until this write is visible"),
        TimelineQuery,
    ),
    responses(
        (status = 200, description = "Events, newest first", body = TimelinePage),
        (status = 404, description = "No such contact in this organisation", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "contact_timeline", skip_all, fields(org_id = %caller.org_id, contact_id = %path))]
pub async fn timeline(
    state: web::Data<QueryState>,
    caller: Caller,
    token: ConsistencyToken,
    path: web::Path<Uuid>,
    query: web::Query<TimelineQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Viewer)?;
    let limit = page::limit(query.limit)?;
    let after: Option<i64> = page::cursor(query.after.as_deref())?;
    state.settle(token, &[PROJECTION]).await?;
    let contact_id = resolve(&state, caller.org_id, path.into_inner()).await?;
    let rows: Vec<TimelineRow> = sqlx::query_as(
        "SELECT seq, event_id, event_type AS kind, data, actor_kind, actor_id AS actor,
                recorded_at
         FROM rm_contact_timeline
         WHERE org_id = $1 AND contact_id = $2 AND ($3::bigint IS NULL OR seq < $3)
         ORDER BY seq DESC LIMIT $4",
    )
    .bind(caller.org_id)
    .bind(contact_id)
    .bind(after)
    .bind(limit + 1)
    .fetch_all(&state.pool)
    .await
    .map_err(|e| db_error(e, "reading a timeline"))?;
    let Page { items, next_cursor } = Page::from_rows(rows, limit, |row| row.seq.to_string());
    Ok(HttpResponse::Ok().json(TimelinePage {
        items: items.into_iter().map(|row| row.entry).collect(),
        next_cursor,
    }))
}
