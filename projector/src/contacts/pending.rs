//! The rows a batch of contact events adds, held back so that each table takes them in one
//! `COPY`: written one event at a time, a replay paid a round trip or two per event.
//!
//! Held rows must be in their tables before any statement that reads or changes them runs;
//! [`Pending::before`] writes what an event's own statements need to see.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use events::RecordedEvent;
use events::contact::ContactEvent;
use events::personal;
use postgres_types::Type;
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use super::Tables;
use crate::copy::{Columns, CopyRows};

/// What a batch has yet to write: new contacts, and the timeline (each row's `seq` is its
/// event's position in the log).
pub(super) struct Pending {
    created: Created,
    timeline: CopyRows,
}

impl Pending {
    pub fn new(tables: &Tables) -> Self {
        Self {
            created: Created {
                rows: CopyRows::new(&tables.contacts, CONTACT_COLUMNS),
                held: HashSet::new(),
            },
            timeline: CopyRows::new(&tables.timeline, TIMELINE_COLUMNS),
        }
    }

    /// Writes what the statements of `event` (in `contact_id`'s stream) must see first.
    /// Erasing, merging and unmerging rewrite timeline rows, other contacts' too, so everything
    /// held goes before them. Every other event changes only rows of its own contact, whose
    /// contact row must exist first if this batch creates it; the timeline can wait.
    pub async fn before(
        &mut self,
        conn: &mut PgConnection,
        event: &ContactEvent,
        contact_id: Uuid,
    ) -> anyhow::Result<()> {
        use ContactEvent as E;
        match event {
            E::ContactCreated { .. } => Ok(()),
            E::ContactErased {} | E::ContactMerged { .. } | E::ContactUnmerged { .. } => {
                self.write(conn).await
            }
            _ if self.created.holds(contact_id) => self.created.write(conn).await,
            _ => Ok(()),
        }
    }

    /// Holds the row of a created contact.
    pub fn create(&mut self, contact: NewContact) -> anyhow::Result<()> {
        self.created.push(contact)
    }

    /// Holds the timeline row of `event`, about `contact_id`.
    pub fn record(&mut self, event: &RecordedEvent, contact_id: Uuid) -> anyhow::Result<()> {
        let (actor_kind, actor_id) = event.metadata.actor.columns();
        let seq = i64::try_from(event.position.prepare)?;
        self.timeline.push(&[
            &seq,
            &event.org_id,
            &contact_id,
            &contact_id,
            &event.event_id,
            &event.event_type,
            // As people are shown it: personal values in the clear, `null` once erased.
            &postgres_types::Json(personal::Unwrapped(&event.data)),
            &actor_kind,
            &actor_id,
            &event.recorded_at,
        ])
    }

    /// Writes everything held.
    pub async fn write(&mut self, conn: &mut PgConnection) -> anyhow::Result<()> {
        self.created.write(conn).await?;
        self.timeline.write(conn).await
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

/// The columns of a created contact's row, as [`Created`] copies them.
const CONTACT_COLUMNS: Columns = &[
    ("contact_id", Type::UUID),
    ("org_id", Type::UUID),
    ("full_name", Type::TEXT),
    ("email", Type::TEXT),
    ("whatsapp", Type::TEXT),
    ("telegram_chat_id", Type::TEXT),
    ("instagram_scoped_id", Type::TEXT),
    ("instagram_user_id", Type::TEXT),
    ("tags", Type::TEXT_ARRAY),
    ("notes", Type::TEXT),
    ("custom_fields", Type::JSONB),
    ("created_at", Type::TIMESTAMPTZ),
    ("updated_at", Type::TIMESTAMPTZ),
];

/// Created contacts' rows, copied in one `COPY`. A contact is created once (its stream is
/// started with `NoStream`), so no row of theirs is in the table yet; a second create, in this
/// batch or an earlier one, is refused rather than ignored.
struct Created {
    rows: CopyRows,
    /// The contacts held.
    held: HashSet<Uuid>,
}

impl Created {
    fn holds(&self, contact_id: Uuid) -> bool {
        self.held.contains(&contact_id)
    }

    fn push(&mut self, contact: NewContact) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.held.insert(contact.contact_id),
            "contact {} is created twice in the log",
            contact.contact_id
        );
        self.rows.push(&[
            &contact.contact_id,
            &contact.org_id,
            &contact.full_name,
            &contact.email,
            &contact.whatsapp,
            &contact.telegram_chat_id,
            &contact.instagram_scoped_id,
            &contact.instagram_user_id,
            &contact.tags,
            &contact.notes,
            &contact.custom_fields,
            &contact.created_at,
            &contact.created_at,
        ])
    }

    async fn write(&mut self, conn: &mut PgConnection) -> anyhow::Result<()> {
        self.rows.write(conn).await?;
        self.held.clear();
        Ok(())
    }
}

/// The columns of a timeline row, as [`Pending::record`] copies them.
const TIMELINE_COLUMNS: Columns = &[
    ("seq", Type::INT8),
    ("org_id", Type::UUID),
    ("contact_id", Type::UUID),
    ("origin_contact_id", Type::UUID),
    ("event_id", Type::UUID),
    ("event_type", Type::TEXT),
    ("data", Type::JSON),
    ("actor_kind", Type::TEXT),
    ("actor_id", Type::TEXT),
    ("recorded_at", Type::TIMESTAMPTZ),
];
