//! The organisations' custom field definitions, kept in memory: every contact write (and every
//! imported row) checks its values against them, and they seldom change.
//!
//! An organisation's entry goes when:
//! - this process changes its definitions: at once, before the change is answered;
//! - another process does: on its `NOTIFY corbi_custom_fields, '<org id>'`, sent once the change
//!   is in the log;
//! - the notification connection drops (anything may have been missed): every entry;
//! - and in any case after [`TIME_TO_LIVE`].
//!
//! A load that started before a change was announced is not kept: it may have read the stream
//! just before the change.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use domain::custom_fields::CustomFields;
use event_store::EventStore;
use events::custom_field;
use moka::sync::Cache;
use service::ApiError;
use sqlx::PgPool;
use uuid::Uuid;

use crate::aggregate;

/// The channel definition changes are announced on; the payload is the organisation's id.
pub const CHANNEL: &str = "corbi_custom_fields";

/// The longest an entry lives, whatever happens: a bound on staleness should an announcement be
/// lost (the process that made the change ended before sending it).
pub const TIME_TO_LIVE: Duration = Duration::from_secs(60);

const CAPACITY: u64 = 10_000;

/// The definitions of one process's organisations.
#[derive(Clone)]
pub struct DefinitionsCache {
    entries: Cache<Uuid, Arc<CustomFields>>,
    /// Counts the changes heard of; a load keeps its result only if none came in meanwhile.
    /// Held while an entry is stored or dropped, so the two cannot interleave.
    changes: Arc<Mutex<u64>>,
}

impl DefinitionsCache {
    /// A cache that follows [`CHANNEL`] on a connection of its own. Call it once per process,
    /// inside the Tokio runtime.
    pub fn new(pool: PgPool) -> Self {
        let cache = Self {
            entries: Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(TIME_TO_LIVE)
                .build(),
            changes: Arc::new(Mutex::new(0)),
        };
        cache.spawn_listener(pool);
        cache
    }

    /// The organisation's definitions as they are now: from memory, or read from their stream.
    pub async fn get(
        &self,
        store: &dyn EventStore,
        org_id: Uuid,
    ) -> Result<Arc<CustomFields>, ApiError> {
        if let Some(fields) = self.entries.get(&org_id) {
            return Ok(fields);
        }
        let seen = *self.lock();
        let (fields, _) =
            aggregate::load::<CustomFields>(store, &custom_field::stream(org_id)).await?;
        let fields = Arc::new(fields);
        let changes = self.lock();
        if *changes == seen {
            self.entries.insert(org_id, fields.clone());
        }
        Ok(fields)
    }

    /// Drops the organisation's entry here and announces the change to every other process.
    /// Call it once the change is in the log.
    pub async fn changed(&self, pool: &PgPool, org_id: Uuid) {
        self.forget(Some(org_id));
        let announced = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(org_id.to_string())
            .execute(pool)
            .await;
        if let Err(error) = announced {
            // Other processes see the change when their entry expires.
            tracing::warn!(%error, %org_id, "could not announce a custom field change");
        }
    }

    /// Drops one organisation's entry, or all of them.
    fn forget(&self, org_id: Option<Uuid>) {
        let mut changes = self.lock();
        *changes += 1;
        match org_id {
            Some(org_id) => self.entries.invalidate(&org_id),
            None => self.entries.invalidate_all(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, u64> {
        // A counter cannot be left inconsistent by a panic elsewhere.
        self.changes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn spawn_listener(&self, pool: PgPool) {
        let (heard, lost) = (self.clone(), self.clone());
        service::notifications::follow(
            pool,
            CHANNEL,
            // Anything but an organisation id drops everything.
            move |payload| heard.forget(payload.parse().ok()),
            move || lost.forget(None),
        );
    }
}
