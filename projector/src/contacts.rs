//! `contacts`: one row per contact with its identities, status and history, searchable by name
//! and identifier (`rm_contacts`), and every event about each contact (`rm_contact_timeline`).
//!
//! Personal fields arrive sealed; the projection opens them with the contact's data key as it
//! prepares each batch, just before the batch's transaction. Once a contact is erased its key is
//! gone, so its rows lose their personal data now, and a replay never sees it again.
//!
//! A batch's new contacts and timeline rows are held and written together, one `COPY` per table
//! (`pending`); the rarer changes run as they come, once what they touch is written.

use async_trait::async_trait;
use event_store::data_keys::DataKeys;
use events::contact::{ContactEvent, Moved};
use events::personal::Personal;
use events::{RecordedEvent, TypedEvent, Upcasters};
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, PgConnection, PgPool};
use uuid::Uuid;

use crate::{Projection, table};

mod pending;

use pending::{NewContact, Pending};

pub const CONTACTS: &str = "rm_contacts";
pub const TIMELINE: &str = "rm_contact_timeline";
pub const CONFLICTS: &str = "rm_contact_conflicts";

pub struct Contacts {
    keys: DataKeys,
}

impl Contacts {
    pub fn new(keys: DataKeys) -> Self {
        Self { keys }
    }
}

#[async_trait]
impl Projection for Contacts {
    fn name(&self) -> &'static str {
        "contacts"
    }

    fn version(&self) -> i32 {
        // 2: identity conflicts; 3: merges; 4: moved timeline rows indexed by their origin;
        // 5: the timeline ordered by log position, its data as `json`.
        5
    }

    fn handles(&self) -> &'static [&'static str] {
        ContactEvent::EVENT_TYPES
    }

    fn views(&self) -> &'static [&'static str] {
        &[CONTACTS, TIMELINE, CONFLICTS]
    }

    async fn create(&self, conn: &mut PgConnection, generation: i32) -> anyhow::Result<()> {
        let contacts = table(CONTACTS, generation);
        let timeline = table(TIMELINE, generation);
        let conflicts = table(CONFLICTS, generation);
        sqlx::raw_sql(AssertSqlSafe(format!(
            "CREATE TABLE {contacts} (
                 contact_id          uuid PRIMARY KEY,
                 org_id              uuid NOT NULL,
                 full_name           text,
                 email               text,
                 whatsapp            text,
                 telegram_chat_id    text,
                 instagram_scoped_id text,
                 instagram_user_id   text,
                 status              text NOT NULL DEFAULT 'active',
                 whatsapp_blocked    boolean NOT NULL DEFAULT false,
                 instagram_blocked   boolean NOT NULL DEFAULT false,
                 instagram_opt_in    boolean NOT NULL DEFAULT false,
                 consent             jsonb,
                 tags                text[] NOT NULL DEFAULT '{{}}',
                 notes               text,
                 custom_fields       jsonb NOT NULL DEFAULT '{{}}',
                 status_history      jsonb NOT NULL DEFAULT '[]',
                 created_at          timestamptz NOT NULL,
                 updated_at          timestamptz NOT NULL,
                 deleted_at          timestamptz,
                 erased_at           timestamptz,
                 last_inbound_at     timestamptz,
                 last_outbound_at    timestamptz,
                 -- Set while this contact is merged into another, which its id resolves to.
                 merged_into         uuid,
                 -- What `q` searches: the name and every identifier, lowercased.
                 search text GENERATED ALWAYS AS (lower(
                     coalesce(full_name, '') || ' ' || coalesce(email, '') || ' ' ||
                     coalesce(whatsapp, '') || ' ' || coalesce(telegram_chat_id, '') || ' ' ||
                     coalesce(instagram_scoped_id, '') || ' ' || coalesce(instagram_user_id, '')
                 )) STORED
             );
             CREATE TABLE {timeline} (
                 -- The event's position in the log: the newest-first order and the cursor.
                 seq         bigint NOT NULL,
                 org_id      uuid NOT NULL,
                 contact_id  uuid NOT NULL,
                 -- The contact whose stream the event is in; `contact_id` differs while it is
                 -- merged into another (its history shows there).
                 origin_contact_id uuid NOT NULL,
                 event_id    uuid NOT NULL,
                 event_type  text NOT NULL,
                 -- Shown as it is, never searched: `json` is stored without being converted.
                 data        json NOT NULL,
                 actor_kind  text NOT NULL,
                 actor_id    text,
                 recorded_at timestamptz NOT NULL,
                 -- Here rather than in `create_indexes`: merges move a contact's timeline rows
                 -- by it, during a replay too.
                 PRIMARY KEY (org_id, contact_id, seq)
             );
             -- The rows a merge moved, found again by the contact whose stream they are in
             -- (unmerge, erasure). Only moved rows are in it, so a replay barely keeps it.
             CREATE INDEX ON {timeline} (org_id, origin_contact_id)
                 WHERE origin_contact_id <> contact_id;
             CREATE TABLE {conflicts} (
                 conflict_id uuid PRIMARY KEY,
                 org_id      uuid NOT NULL,
                 contact_id  uuid NOT NULL,
                 holder_id   uuid NOT NULL,
                 identity    text NOT NULL,
                 value       text,
                 source      text NOT NULL,
                 actor_kind  text NOT NULL,
                 actor_id    text,
                 recorded_at timestamptz NOT NULL,
                 resolution  text,
                 resolved_at timestamptz
             );"
        )))
        .execute(conn)
        .await?;
        Ok(())
    }

    async fn create_indexes(&self, pool: &PgPool, generation: i32) -> anyhow::Result<()> {
        let contacts = table(CONTACTS, generation);
        let conflicts = table(CONFLICTS, generation);
        // The trigram index takes about as long as the rest together.
        crate::build_indexes(
            pool,
            vec![
                format!("CREATE INDEX ON {contacts} USING gin (search gin_trgm_ops)"),
                format!("CREATE INDEX ON {contacts} (org_id, created_at DESC, contact_id DESC)"),
                format!("CREATE INDEX ON {contacts} (org_id, lower(full_name), contact_id)"),
                format!("CREATE INDEX ON {contacts} USING gin (tags)"),
                format!("CREATE INDEX ON {conflicts} (org_id, recorded_at DESC, conflict_id)"),
            ],
        )
        .await
    }

    async fn prepare(&self, mut events: Vec<RecordedEvent>) -> anyhow::Result<Vec<RecordedEvent>> {
        // The keys are read outside the batch's transaction, which is safe: an erasure is
        // recorded in the log before its key is destroyed, so whatever a key opens here is
        // followed by the `ContactErased` that wipes it. In a task of its own, so that it runs
        // beside the batch being applied instead of taking turns with it.
        let keys = self.keys.clone();
        tokio::spawn(async move {
            keys.open_events(&mut events).await?;
            Ok(events)
        })
        .await?
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        generation: i32,
        events: &[RecordedEvent],
    ) -> anyhow::Result<()> {
        // Opened by `prepare`.
        let upcasters = Upcasters::default();
        let tables = Tables {
            contacts: table(CONTACTS, generation),
            timeline: table(TIMELINE, generation),
            conflicts: table(CONFLICTS, generation),
        };
        let mut pending = Pending::new(&tables);
        for event in events {
            let Some(contact_event) = ContactEvent::decode(event, &upcasters)? else {
                continue;
            };
            let contact_id = crate::stream_id(&event.stream, "contact")?;
            pending.before(conn, &contact_event, contact_id).await?;
            apply(
                conn,
                &tables,
                &mut pending,
                event,
                contact_id,
                contact_event,
            )
            .await?;
            pending.record(event, contact_id)?;
        }
        pending.write(conn).await
    }
}

struct Tables {
    contacts: String,
    timeline: String,
    conflicts: String,
}

/// The text of a personal value as a column holds it; `None` once erased.
fn text<T: ToString>(value: Option<Personal<T>>) -> Option<String> {
    value.and_then(Personal::into_clear).map(|v| v.to_string())
}

/// Sets one column of the contact's row.
async fn set(
    conn: &mut PgConnection,
    tables: &Tables,
    event: &RecordedEvent,
    contact_id: Uuid,
    column: &str,
    value: Option<String>,
) -> anyhow::Result<()> {
    let contacts = &tables.contacts;
    sqlx::query(AssertSqlSafe(format!(
        "UPDATE {contacts} SET {column} = $3, updated_at = $4
         WHERE org_id = $1 AND contact_id = $2"
    )))
    .bind(event.org_id)
    .bind(contact_id)
    .bind(value)
    .bind(event.recorded_at)
    .execute(conn)
    .await?;
    Ok(())
}

async fn set_identities(
    conn: &mut PgConnection,
    tables: &Tables,
    event: &RecordedEvent,
    contact_id: Uuid,
    moved: &Moved,
) -> anyhow::Result<()> {
    for (identity, value) in &moved.identities {
        let value = value.clear().cloned();
        set(conn, tables, event, contact_id, identity.field(), value).await?;
    }
    Ok(())
}

async fn clear_identities(
    conn: &mut PgConnection,
    tables: &Tables,
    event: &RecordedEvent,
    contact_id: Uuid,
    moved: &Moved,
) -> anyhow::Result<()> {
    for identity in moved.identities.keys() {
        set(conn, tables, event, contact_id, identity.field(), None).await?;
    }
    Ok(())
}

/// The tags and (clear) custom fields of what moved.
fn tags_and_fields(moved: &Moved) -> (Vec<String>, Value) {
    let tags = moved.tags.iter().map(|t| t.as_str().to_owned()).collect();
    let custom: serde_json::Map<String, Value> = moved
        .custom_fields
        .iter()
        .filter_map(|(key, value)| Some((key.clone(), value.clear()?.clone())))
        .collect();
    (tags, Value::Object(custom))
}

/// Applies one event to the contact's row (and others it changes); a created contact's row is
/// held in `pending`, which has written whatever this event needs to see.
async fn apply(
    conn: &mut PgConnection,
    tables: &Tables,
    pending: &mut Pending,
    event: &RecordedEvent,
    contact_id: Uuid,
    contact_event: ContactEvent,
) -> anyhow::Result<()> {
    use ContactEvent as E;
    let contacts = &tables.contacts;
    let (org_id, at) = (event.org_id, event.recorded_at);
    match contact_event {
        E::ContactCreated {
            full_name,
            email,
            whatsapp,
            telegram_chat_id,
            instagram_scoped_id,
            instagram_user_id,
            tags,
            notes,
            custom_fields,
            ..
        } => {
            let custom: serde_json::Map<String, Value> = custom_fields
                .into_iter()
                .filter_map(|(key, value)| value.into_clear().map(|v| (key, v)))
                .collect();
            pending.create(NewContact {
                contact_id,
                org_id,
                full_name: full_name.into_clear(),
                email: text(email),
                whatsapp: text(whatsapp),
                telegram_chat_id: text(telegram_chat_id),
                instagram_scoped_id: text(instagram_scoped_id),
                instagram_user_id: text(instagram_user_id),
                tags: tags.iter().map(|t| t.as_str().to_owned()).collect(),
                notes: notes.and_then(Personal::into_clear),
                custom_fields: Value::Object(custom),
                created_at: at,
            })?;
        }
        E::ContactRenamed { full_name } => {
            set(
                conn,
                tables,
                event,
                contact_id,
                "full_name",
                full_name.into_clear(),
            )
            .await?;
        }
        E::EmailChanged { email } => {
            set(conn, tables, event, contact_id, "email", text(email)).await?;
        }
        E::WhatsappChanged { whatsapp } => {
            set(conn, tables, event, contact_id, "whatsapp", text(whatsapp)).await?;
        }
        E::TelegramChatIdChanged { telegram_chat_id } => {
            let value = text(telegram_chat_id);
            set(conn, tables, event, contact_id, "telegram_chat_id", value).await?;
        }
        E::InstagramScopedIdChanged {
            instagram_scoped_id,
        } => {
            let value = text(instagram_scoped_id);
            set(
                conn,
                tables,
                event,
                contact_id,
                "instagram_scoped_id",
                value,
            )
            .await?;
        }
        E::InstagramUserIdChanged { instagram_user_id } => {
            let value = text(instagram_user_id);
            set(conn, tables, event, contact_id, "instagram_user_id", value).await?;
        }
        E::NotesChanged { notes } => {
            let value = notes.and_then(Personal::into_clear);
            set(conn, tables, event, contact_id, "notes", value).await?;
        }
        E::StatusChanged { from, to, reason } => {
            let (actor_kind, actor) = event.metadata.actor.columns();
            let change = json!({
                "from": from, "to": to, "reason": reason,
                "actor_kind": actor_kind, "actor": actor, "at": at,
            });
            sqlx::query(AssertSqlSafe(format!(
                "UPDATE {contacts} SET status = $3, updated_at = $4,
                     status_history = status_history || jsonb_build_array($5::jsonb)
                 WHERE org_id = $1 AND contact_id = $2"
            )))
            .bind(org_id)
            .bind(contact_id)
            .bind(to.as_str())
            .bind(at)
            .bind(change)
            .execute(conn)
            .await?;
        }
        E::ChannelFlagsChanged {
            whatsapp_blocked,
            instagram_blocked,
            instagram_opt_in,
        } => {
            sqlx::query(AssertSqlSafe(format!(
                "UPDATE {contacts} SET whatsapp_blocked = $3, instagram_blocked = $4,
                     instagram_opt_in = $5, updated_at = $6
                 WHERE org_id = $1 AND contact_id = $2"
            )))
            .bind(org_id)
            .bind(contact_id)
            .bind(whatsapp_blocked)
            .bind(instagram_blocked)
            .bind(instagram_opt_in)
            .bind(at)
            .execute(conn)
            .await?;
        }
        E::ConsentRecorded {
            opted_in,
            source,
            at: given_at,
        } => {
            // The most recent consent by its own time wins, as in the aggregate.
            sqlx::query(AssertSqlSafe(format!(
                "UPDATE {contacts} SET consent = $3, updated_at = $4
                 WHERE org_id = $1 AND contact_id = $2
                   AND (consent IS NULL OR (consent->>'at')::timestamptz <= $5)"
            )))
            .bind(org_id)
            .bind(contact_id)
            .bind(json!({"opted_in": opted_in, "source": source, "at": given_at}))
            .bind(at)
            .bind(given_at)
            .execute(conn)
            .await?;
        }
        E::Tagged { tags } | E::Untagged { tags } => {
            let tags: Vec<String> = tags.iter().map(|t| t.as_str().to_owned()).collect();
            let change = if event.event_type == "Tagged" {
                "ARRAY(SELECT DISTINCT unnest(tags || $3::text[]) ORDER BY 1)"
            } else {
                "ARRAY(SELECT t FROM unnest(tags) t WHERE t <> ALL($3::text[]) ORDER BY 1)"
            };
            sqlx::query(AssertSqlSafe(format!(
                "UPDATE {contacts} SET tags = {change}, updated_at = $4
                 WHERE org_id = $1 AND contact_id = $2"
            )))
            .bind(org_id)
            .bind(contact_id)
            .bind(tags)
            .bind(at)
            .execute(conn)
            .await?;
        }
        E::CustomFieldsChanged {
            set: values,
            removed,
        } => {
            let values: serde_json::Map<String, Value> = values
                .into_iter()
                .map(|(key, value)| (key, value.into_clear().unwrap_or(Value::Null)))
                .collect();
            sqlx::query(AssertSqlSafe(format!(
                "UPDATE {contacts} SET custom_fields = (custom_fields || $3) - $4::text[],
                     updated_at = $5
                 WHERE org_id = $1 AND contact_id = $2"
            )))
            .bind(org_id)
            .bind(contact_id)
            .bind(Value::Object(values))
            .bind(removed)
            .bind(at)
            .execute(conn)
            .await?;
        }
        E::ContactDeleted {} | E::ContactRestored {} => {
            let deleted_at = (event.event_type == "ContactDeleted").then_some(at);
            sqlx::query(AssertSqlSafe(format!(
                "UPDATE {contacts} SET deleted_at = $3, updated_at = $4
                 WHERE org_id = $1 AND contact_id = $2"
            )))
            .bind(org_id)
            .bind(contact_id)
            .bind(deleted_at)
            .bind(at)
            .execute(conn)
            .await?;
        }
        E::ContactErased {} => {
            let timeline = &tables.timeline;
            sqlx::query(AssertSqlSafe(format!(
                "UPDATE {contacts} SET full_name = NULL, email = NULL, whatsapp = NULL,
                     telegram_chat_id = NULL, instagram_scoped_id = NULL,
                     instagram_user_id = NULL, notes = NULL, custom_fields = '{{}}',
                     consent = NULL, erased_at = $3, updated_at = $3
                 WHERE org_id = $1 AND contact_id = $2"
            )))
            .bind(org_id)
            .bind(contact_id)
            .bind(at)
            .execute(&mut *conn)
            .await?;
            // The timeline showed personal values in the clear; what is left is that things
            // happened, and when.
            sqlx::query(AssertSqlSafe(format!(
                "UPDATE {timeline} SET data = '{{}}'
                 WHERE org_id = $1
                   AND (contact_id = $2
                        OR (origin_contact_id = $2 AND origin_contact_id <> contact_id))"
            )))
            .bind(org_id)
            .bind(contact_id)
            .execute(&mut *conn)
            .await?;
            // A conflicting identifier is the person's data on either side of the conflict.
            let conflicts = &tables.conflicts;
            sqlx::query(AssertSqlSafe(format!(
                "UPDATE {conflicts} SET value = NULL
                 WHERE org_id = $1 AND (contact_id = $2 OR holder_id = $2)"
            )))
            .bind(org_id)
            .bind(contact_id)
            .execute(conn)
            .await?;
        }
        E::ContactMerged { into, moved } => {
            clear_identities(conn, tables, event, contact_id, &moved).await?;
            let timeline = &tables.timeline;
            sqlx::query(AssertSqlSafe(format!(
                "UPDATE {contacts} SET merged_into = $3, updated_at = $4
                 WHERE org_id = $1 AND contact_id = $2"
            )))
            .bind(org_id)
            .bind(contact_id)
            .bind(into)
            .bind(at)
            .execute(&mut *conn)
            .await?;
            sqlx::query(AssertSqlSafe(format!(
                "UPDATE {timeline} SET contact_id = $3 WHERE org_id = $1 AND contact_id = $2"
            )))
            .bind(org_id)
            .bind(contact_id)
            .bind(into)
            .execute(conn)
            .await?;
        }
        E::ContactUnmerged { moved, .. } => {
            set_identities(conn, tables, event, contact_id, &moved).await?;
            let timeline = &tables.timeline;
            sqlx::query(AssertSqlSafe(format!(
                "UPDATE {contacts} SET merged_into = NULL, updated_at = $3
                 WHERE org_id = $1 AND contact_id = $2"
            )))
            .bind(org_id)
            .bind(contact_id)
            .bind(at)
            .execute(&mut *conn)
            .await?;
            sqlx::query(AssertSqlSafe(format!(
                "UPDATE {timeline} SET contact_id = $2
                 WHERE org_id = $1 AND origin_contact_id = $2 AND origin_contact_id <> contact_id"
            )))
            .bind(org_id)
            .bind(contact_id)
            .execute(conn)
            .await?;
        }
        E::ContactAbsorbed { moved, .. } => {
            set_identities(conn, tables, event, contact_id, &moved).await?;
            let (tags, custom) = tags_and_fields(&moved);
            sqlx::query(AssertSqlSafe(format!(
                "UPDATE {contacts} SET
                     tags = ARRAY(SELECT DISTINCT unnest(tags || $3::text[]) ORDER BY 1),
                     custom_fields = $4 || custom_fields, updated_at = $5
                 WHERE org_id = $1 AND contact_id = $2"
            )))
            .bind(org_id)
            .bind(contact_id)
            .bind(tags)
            .bind(custom)
            .bind(at)
            .execute(conn)
            .await?;
        }
        E::ContactSplit { moved, .. } => {
            clear_identities(conn, tables, event, contact_id, &moved).await?;
            let (tags, custom) = tags_and_fields(&moved);
            let keys: Vec<String> = custom
                .as_object()
                .map_or_else(Vec::new, |fields| fields.keys().cloned().collect());
            sqlx::query(AssertSqlSafe(format!(
                "UPDATE {contacts} SET
                     tags = ARRAY(SELECT t FROM unnest(tags) t WHERE t <> ALL($3::text[])
                                  ORDER BY 1),
                     custom_fields = custom_fields - $4::text[], updated_at = $5
                 WHERE org_id = $1 AND contact_id = $2"
            )))
            .bind(org_id)
            .bind(contact_id)
            .bind(tags)
            .bind(keys)
            .bind(at)
            .execute(conn)
            .await?;
        }
        E::IdentityConflictRecorded {
            conflict_id,
            identity,
            value,
            holder,
            source,
        } => {
            let conflicts = &tables.conflicts;
            let (actor_kind, actor_id) = event.metadata.actor.columns();
            sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO {conflicts} (conflict_id, org_id, contact_id, holder_id, identity,
                     value, source, actor_kind, actor_id, recorded_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                 ON CONFLICT (conflict_id) DO NOTHING"
            )))
            .bind(conflict_id)
            .bind(org_id)
            .bind(contact_id)
            .bind(holder)
            .bind(identity.as_str())
            .bind(value.into_clear())
            .bind(source)
            .bind(actor_kind)
            .bind(actor_id)
            .bind(at)
            .execute(conn)
            .await?;
        }
        E::IdentityConflictResolved {
            conflict_id,
            resolution,
        } => {
            let conflicts = &tables.conflicts;
            let resolution = match resolution {
                events::contact::ConflictResolution::Kept => "kept",
                events::contact::ConflictResolution::Moved => "moved",
            };
            sqlx::query(AssertSqlSafe(format!(
                "UPDATE {conflicts} SET resolution = $3, resolved_at = $4
                 WHERE org_id = $1 AND conflict_id = $2"
            )))
            .bind(org_id)
            .bind(conflict_id)
            .bind(resolution)
            .bind(at)
            .execute(conn)
            .await?;
        }
    }
    Ok(())
}
