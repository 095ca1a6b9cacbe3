//! The rows a batch of contact events adds, held back so that each table takes them in one
//! statement: written one event at a time, a replay paid a round trip or two per event.
//!
//! Held rows must be in their tables before any statement that reads or changes them runs;
//! [`Pending::before`] writes what an event's own statements need to see.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use events::RecordedEvent;
use events::contact::ContactEvent;
use serde_json::Value;
use sqlx::{AssertSqlSafe, PgConnection};
use uuid::Uuid;

use super::{Tables, plain};

/// What a batch has yet to write: new contacts, and the timeline in log order.
#[derive(Default)]
pub(super) struct Pending<'a> {
    created: Created,
    timeline: Timeline<'a>,
}

impl<'a> Pending<'a> {
    /// Writes what the statements of `event` (in `contact_id`'s stream) must see first.
    /// Erasing, merging and unmerging rewrite timeline rows, other contacts' too, so everything
    /// held goes before them. Every other event changes only rows of its own contact, whose
    /// contact row must exist first if this batch creates it; the timeline can wait.
    pub async fn before(
        &mut self,
        conn: &mut PgConnection,
        tables: &Tables,
        event: &ContactEvent,
        contact_id: Uuid,
    ) -> anyhow::Result<()> {
        use ContactEvent as E;
        match event {
            E::ContactCreated { .. } => Ok(()),
            E::ContactErased {} | E::ContactMerged { .. } | E::ContactUnmerged { .. } => {
                self.write(conn, tables).await
            }
            _ if self.created.holds(contact_id) => self.created.write(conn, tables).await,
            _ => Ok(()),
        }
    }

    /// Holds the row of a created contact.
    pub fn create(&mut self, contact: NewContact) {
        self.created.push(contact);
    }

    /// Holds the timeline row of `event`, about `contact_id`.
    pub fn record(&mut self, event: &'a RecordedEvent, contact_id: Uuid) {
        self.timeline.push(event, contact_id);
    }

    /// Writes everything held.
    pub async fn write(&mut self, conn: &mut PgConnection, tables: &Tables) -> anyhow::Result<()> {
        self.created.write(conn, tables).await?;
        self.timeline.write(conn, tables).await
    }
}

/// A contact's row as its `ContactCreated` makes it, personal values in the clear (or `None`
/// once erased).
pub(super) struct NewContact {
    pub contact_id: Uuid,
    pub org_id: Uuid,
    pub full_name: Option<String>,
    pub email: Option<String>,
    pub whatsapp: Option<String>,
    pub telegram_chat_id: Option<String>,
    pub instagram_scoped_id: Option<String>,
    pub instagram_user_id: Option<String>,
    pub tags: Vec<String>,
    pub notes: Option<String>,
    pub custom_fields: Value,
    pub created_at: DateTime<Utc>,
}

/// Created contacts as the columns that one `INSERT … SELECT FROM unnest(…)` takes.
#[derive(Default)]
struct Created {
    contact_id: Vec<Uuid>,
    org_id: Vec<Uuid>,
    full_name: Vec<Option<String>>,
    email: Vec<Option<String>>,
    whatsapp: Vec<Option<String>>,
    telegram_chat_id: Vec<Option<String>>,
    instagram_scoped_id: Vec<Option<String>>,
    instagram_user_id: Vec<Option<String>>,
    /// Each contact's tags as a JSON array: a `text[]` cannot be an element of an array.
    tags: Vec<Value>,
    notes: Vec<Option<String>>,
    custom_fields: Vec<Value>,
    created_at: Vec<DateTime<Utc>>,
    /// The contacts held.
    held: HashSet<Uuid>,
}

impl Created {
    fn holds(&self, contact_id: Uuid) -> bool {
        self.held.contains(&contact_id)
    }

    fn push(&mut self, contact: NewContact) {
        // A second create of a held contact would meet the first one's row and do nothing
        // (`ON CONFLICT DO NOTHING`), as it does when each is written on its own.
        if !self.held.insert(contact.contact_id) {
            return;
        }
        self.contact_id.push(contact.contact_id);
        self.org_id.push(contact.org_id);
        self.full_name.push(contact.full_name);
        self.email.push(contact.email);
        self.whatsapp.push(contact.whatsapp);
        self.telegram_chat_id.push(contact.telegram_chat_id);
        self.instagram_scoped_id.push(contact.instagram_scoped_id);
        self.instagram_user_id.push(contact.instagram_user_id);
        self.tags.push(Value::from(contact.tags));
        self.notes.push(contact.notes);
        self.custom_fields.push(contact.custom_fields);
        self.created_at.push(contact.created_at);
    }

    async fn write(&mut self, conn: &mut PgConnection, tables: &Tables) -> anyhow::Result<()> {
        if self.held.is_empty() {
            return Ok(());
        }
        let contacts = &tables.contacts;
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {contacts} (contact_id, org_id, full_name, email, whatsapp,
                 telegram_chat_id, instagram_scoped_id, instagram_user_id, tags, notes,
                 custom_fields, created_at, updated_at)
             SELECT c, o, f, e, w, t, s, u,
                    -- Most contacts have no tags: no subquery for them.
                    CASE WHEN g = '[]' THEN '{{}}'::text[]
                         ELSE ARRAY(SELECT tag FROM jsonb_array_elements_text(g)
                                        WITH ORDINALITY AS tags(tag, i)
                                    ORDER BY i)
                    END,
                    n, cf, a, a
             FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[],
                         $7::text[], $8::text[], $9::jsonb[], $10::text[], $11::jsonb[],
                         $12::timestamptz[])
                  AS x(c, o, f, e, w, t, s, u, g, n, cf, a)
             ON CONFLICT (contact_id) DO NOTHING"
        )))
        .bind(&self.contact_id)
        .bind(&self.org_id)
        .bind(&self.full_name)
        .bind(&self.email)
        .bind(&self.whatsapp)
        .bind(&self.telegram_chat_id)
        .bind(&self.instagram_scoped_id)
        .bind(&self.instagram_user_id)
        .bind(&self.tags)
        .bind(&self.notes)
        .bind(&self.custom_fields)
        .bind(&self.created_at)
        .execute(conn)
        .await?;
        *self = Self::default();
        Ok(())
    }
}

/// Timeline rows as the columns that one `INSERT … SELECT FROM unnest(…)` takes, in log order.
#[derive(Default)]
struct Timeline<'a> {
    org_id: Vec<Uuid>,
    contact_id: Vec<Uuid>,
    event_id: Vec<Uuid>,
    event_type: Vec<&'a str>,
    data: Vec<Value>,
    actor_kind: Vec<&'static str>,
    actor_id: Vec<Option<String>>,
    recorded_at: Vec<DateTime<Utc>>,
}

impl<'a> Timeline<'a> {
    fn push(&mut self, event: &'a RecordedEvent, contact_id: Uuid) {
        let (actor_kind, actor_id) = event.metadata.actor.columns();
        self.org_id.push(event.org_id);
        self.contact_id.push(contact_id);
        self.event_id.push(event.event_id);
        self.event_type.push(&event.event_type);
        self.data.push(plain(&event.data));
        self.actor_kind.push(actor_kind);
        self.actor_id.push(actor_id);
        self.recorded_at.push(event.recorded_at);
    }

    async fn write(&mut self, conn: &mut PgConnection, tables: &Tables) -> anyhow::Result<()> {
        if self.event_id.is_empty() {
            return Ok(());
        }
        let timeline = &tables.timeline;
        // `seq` is the timeline's order: rows take it in the order of the log.
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {timeline} (org_id, contact_id, origin_contact_id, event_id, event_type,
                                     data, actor_kind, actor_id, recorded_at)
             SELECT o, c, c, e, t, d, k, a, r
             FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::jsonb[],
                         $6::text[], $7::text[], $8::timestamptz[])
                  WITH ORDINALITY AS x(o, c, e, t, d, k, a, r, n)
             ORDER BY n"
        )))
        .bind(&self.org_id)
        .bind(&self.contact_id)
        .bind(&self.event_id)
        .bind(&self.event_type)
        .bind(&self.data)
        .bind(&self.actor_kind)
        .bind(&self.actor_id)
        .bind(&self.recorded_at)
        .execute(conn)
        .await?;
        *self = Self::default();
        Ok(())
    }
}
