//! What a credential resolves to, kept in memory so a request needs no database round trip to
//! know its caller — and dropped the moment that could be wrong.
//!
//! Entries go when:
//! - this process ends a session (sign-out, refresh, password change): at once, for that user;
//! - another process does: on its `NOTIFY corbi_access, 'user:<id>'` (a trigger on `sessions`);
//! - the `access` read model changes (members, roles, API keys): on the projector's
//!   `NOTIFY corbi_access, 'all'`, and at once in the process whose command caused it, which waits
//!   for the projection before answering;
//! - the notification connection drops (anything may have been missed): all of them;
//! - and in any case after [`TIME_TO_LIVE`], or when the token they came from expires.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use events::{Actor, Role};
use moka::sync::Cache;
use sqlx::PgPool;
use uuid::Uuid;

use super::session::Session;

/// The channel access changes are announced on.
pub const CHANNEL: &str = "corbi_access";

/// The longest an entry lives, whatever happens: a bound on staleness should a notification be
/// lost without the connection dropping.
pub const TIME_TO_LIVE: Duration = Duration::from_secs(60);

const CAPACITY: u64 = 100_000;

/// What is cached: a credential's hash, and what it was asked for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    /// The session of an access token.
    Session(String),
    /// A caller (session or API key) acting for the organisation of `X-Org-ID` (or the only one).
    Caller(String, Option<Uuid>),
    /// The answer of `GET /api/v1/me`.
    Me(String),
}

/// A cached answer.
#[derive(Debug, Clone)]
pub enum Value {
    Session(Session),
    Caller {
        org_id: Uuid,
        role: Role,
        actor: Actor,
    },
    Me(bytes::Bytes),
}

#[derive(Debug, Clone)]
struct Entry {
    /// Whose it is, so ending a user's sessions drops exactly their entries.
    user_id: Option<Uuid>,
    /// When the credential stops working by itself.
    expires_at: Option<DateTime<Utc>>,
    value: Value,
}

/// The cache of one process (shared by both APIs when they run together).
#[derive(Clone)]
pub struct AccessCache {
    entries: Cache<Key, Arc<Entry>>,
}

impl Default for AccessCache {
    fn default() -> Self {
        Self {
            entries: Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(TIME_TO_LIVE)
                .support_invalidation_closures()
                .build(),
        }
    }
}

impl AccessCache {
    pub fn get(&self, key: &Key) -> Option<Value> {
        let entry = self.entries.get(key)?;
        if entry.expires_at.is_some_and(|at| at <= Utc::now()) {
            self.entries.invalidate(key);
            return None;
        }
        Some(entry.value.clone())
    }

    pub fn insert(
        &self,
        key: Key,
        user_id: Option<Uuid>,
        expires_at: Option<DateTime<Utc>>,
        value: Value,
    ) {
        self.entries.insert(
            key,
            Arc::new(Entry {
                user_id,
                expires_at,
                value,
            }),
        );
    }

    /// Drops every entry of `user_id`.
    pub fn forget_user(&self, user_id: Uuid) {
        // Only fails when closures were not enabled at build time, which `default` does.
        let _ = self
            .entries
            .invalidate_entries_if(move |_, entry| entry.user_id == Some(user_id));
    }

    pub fn forget_all(&self) {
        self.entries.invalidate_all();
    }

    /// Applies one notification's payload: `user:<id>` or anything else (everything).
    fn apply(&self, payload: &str) {
        match payload
            .strip_prefix("user:")
            .and_then(|id| id.parse::<Uuid>().ok())
        {
            Some(user_id) => self.forget_user(user_id),
            None => self.forget_all(),
        }
    }

    /// Follows [`CHANNEL`] until the runtime stops, reconnecting when the connection drops.
    pub fn spawn_listener(&self, pool: PgPool) {
        let (heard, lost) = (self.clone(), self.clone());
        crate::notifications::follow(
            pool,
            CHANNEL,
            move |payload| heard.apply(payload),
            move || lost.forget_all(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(user_id: Uuid) -> Value {
        Value::Session(Session {
            session_id: Uuid::now_v7(),
            family_id: Uuid::now_v7(),
            user_id,
        })
    }

    #[test]
    fn entries_go_with_their_user_with_everything_and_when_they_expire() {
        let cache = AccessCache::default();
        let (ada, grace) = (Uuid::now_v7(), Uuid::now_v7());
        let later = Some(Utc::now() + chrono::Duration::minutes(5));
        cache.insert(Key::Session("a".into()), Some(ada), later, session(ada));
        cache.insert(
            Key::Me("a".into()),
            Some(ada),
            later,
            Value::Me("{}".into()),
        );
        cache.insert(Key::Session("g".into()), Some(grace), later, session(grace));
        cache.apply(&format!("user:{ada}"));
        assert!(cache.get(&Key::Session("a".into())).is_none());
        assert!(cache.get(&Key::Me("a".into())).is_none());
        assert!(cache.get(&Key::Session("g".into())).is_some());
        cache.apply("all");
        assert!(cache.get(&Key::Session("g".into())).is_none());

        let past = Some(Utc::now() - chrono::Duration::seconds(1));
        cache.insert(Key::Session("old".into()), Some(ada), past, session(ada));
        assert!(cache.get(&Key::Session("old".into())).is_none(), "expired");
    }
}
