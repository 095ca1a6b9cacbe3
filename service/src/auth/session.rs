//! Sessions: opaque bearer tokens backed by the `sessions` table (migration 0002), so signing out
//! or changing a password takes effect on the next request, not when a token expires.
//!
//! A sign-in starts a *family*. Each refresh ends the current row and issues the next pair in the
//! same family; a refresh token presented a second time means two parties hold it, so the whole
//! family ends (OAuth 2.0 Security BCP, refresh token rotation).

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::cache::{AccessCache, Key, Value};
use super::secret::{self, Kind, Secret};

/// How long tokens live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenLifetimes {
    pub access: Duration,
    pub refresh: Duration,
}

impl Default for TokenLifetimes {
    fn default() -> Self {
        Self {
            access: Duration::from_secs(15 * 60),
            refresh: Duration::from_secs(30 * 24 * 60 * 60),
        }
    }
}

/// A freshly issued token pair. The secrets are in here only, never stored.
#[derive(Debug)]
pub struct Issued {
    pub session_id: Uuid,
    pub family_id: Uuid,
    pub access: Secret,
    pub access_expires_at: DateTime<Utc>,
    pub refresh: Secret,
    pub refresh_expires_at: DateTime<Utc>,
}

/// The session behind a valid access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    pub session_id: Uuid,
    pub family_id: Uuid,
    pub user_id: Uuid,
}

/// Where the request came from, kept with the session for the user's list of sessions.
#[derive(Debug, Clone, Default)]
pub struct Client {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// What a refresh token was good for.
#[derive(Debug)]
pub enum Refreshed {
    Issued {
        user_id: Uuid,
        issued: Issued,
    },
    /// Unknown, expired or ended: nothing happened.
    Invalid,
    /// Already used once: the family has been ended (the caller records it in the log).
    Reused {
        user_id: Uuid,
        family_id: Uuid,
    },
}

/// The `sessions` table, and the process's cache of what credentials resolve to.
#[derive(Clone)]
pub struct Sessions {
    pool: PgPool,
    lifetimes: TokenLifetimes,
    cache: AccessCache,
}

impl Sessions {
    /// Sessions over `pool`. Call it once per process (inside the Tokio runtime) and share the
    /// result: it follows access changes on a connection of its own.
    pub fn new(pool: PgPool, lifetimes: TokenLifetimes) -> Self {
        let cache = AccessCache::default();
        cache.spawn_listener(pool.clone());
        Self {
            pool,
            lifetimes,
            cache,
        }
    }

    /// The same sessions and cache, issuing tokens with other lifetimes.
    pub fn with_lifetimes(mut self, lifetimes: TokenLifetimes) -> Self {
        self.lifetimes = lifetimes;
        self
    }

    /// What credentials resolve to, as far as this process knows.
    pub fn cache(&self) -> &AccessCache {
        &self.cache
    }

    /// The database holding the sessions (and the read models callers are resolved against).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Issues the first token pair of the family a sign-in started.
    pub async fn start_family(
        &self,
        user_id: Uuid,
        family_id: Uuid,
        client: &Client,
    ) -> anyhow::Result<Issued> {
        let mut conn = self.pool.acquire().await?;
        issue(&mut conn, self.lifetimes, user_id, family_id, client).await
    }

    /// The live session of `access_token`, if it is one.
    pub async fn authenticate(&self, access_token: &str) -> anyhow::Result<Option<Session>> {
        if !secret::is_shaped_like(access_token, Kind::AccessToken) {
            return Ok(None);
        }
        let hash = secret::hash(access_token);
        let key = Key::Session(hash.clone());
        if let Some(Value::Session(session)) = self.cache.get(&key) {
            return Ok(Some(session));
        }
        let row: Option<(Uuid, Uuid, Uuid, DateTime<Utc>)> = sqlx::query_as(
            "SELECT session_id, family_id, user_id, access_expires_at FROM sessions
             WHERE access_hash = $1 AND ended_at IS NULL AND access_expires_at > now()",
        )
        .bind(&hash)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(session_id, family_id, user_id, expires_at)| {
            let session = Session {
                session_id,
                family_id,
                user_id,
            };
            self.cache.insert(
                key,
                Some(user_id),
                Some(expires_at),
                Value::Session(session),
            );
            session
        }))
    }

    /// Trades a refresh token for the next pair of its family.
    pub async fn refresh(&self, refresh_token: &str, client: &Client) -> anyhow::Result<Refreshed> {
        if !secret::is_shaped_like(refresh_token, Kind::RefreshToken) {
            return Ok(Refreshed::Invalid);
        }
        let mut tx = self.pool.begin().await?;
        // The row lock makes two concurrent uses of one token a reuse for the second of them.
        let row: Option<(Uuid, Uuid, Uuid, bool, bool, bool)> = sqlx::query_as(
            "SELECT session_id, family_id, user_id, rotated_at IS NOT NULL,
                    ended_at IS NOT NULL, refresh_expires_at <= now()
             FROM sessions WHERE refresh_hash = $1 FOR UPDATE",
        )
        .bind(secret::hash(refresh_token))
        .fetch_optional(&mut *tx)
        .await?;
        let Some((session_id, family_id, user_id, rotated, ended, expired)) = row else {
            return Ok(Refreshed::Invalid);
        };
        if rotated {
            end_family(&mut tx, family_id).await?;
            tx.commit().await?;
            self.cache.forget_user(user_id);
            return Ok(Refreshed::Reused { user_id, family_id });
        }
        if ended || expired {
            return Ok(Refreshed::Invalid);
        }
        sqlx::query(
            "UPDATE sessions SET rotated_at = now(), ended_at = now() WHERE session_id = $1",
        )
        .bind(session_id)
        .execute(&mut *tx)
        .await?;
        let issued = issue(&mut tx, self.lifetimes, user_id, family_id, client).await?;
        tx.commit().await?;
        self.cache.forget_user(user_id);
        Ok(Refreshed::Issued { user_id, issued })
    }

    /// Ends every live token pair of `user_id`'s family `family_id` (sign-out, revocation);
    /// 0 when it is not theirs or has ended already.
    pub async fn end_family(&self, user_id: Uuid, family_id: Uuid) -> anyhow::Result<u64> {
        let ended = sqlx::query(
            "UPDATE sessions SET ended_at = now()
             WHERE family_id = $1 AND user_id = $2 AND ended_at IS NULL",
        )
        .bind(family_id)
        .bind(user_id)
        .execute(&self.pool)
        .await?;
        self.cache.forget_user(user_id);
        Ok(ended.rows_affected())
    }

    /// Ends every live session of a user (password change).
    pub async fn end_all(&self, user_id: Uuid) -> anyhow::Result<u64> {
        let ended = sqlx::query(
            "UPDATE sessions SET ended_at = now() WHERE user_id = $1 AND ended_at IS NULL",
        )
        .bind(user_id)
        .execute(&self.pool)
        .await?;
        self.cache.forget_user(user_id);
        Ok(ended.rows_affected())
    }
}

async fn issue(
    conn: &mut sqlx::PgConnection,
    lifetimes: TokenLifetimes,
    user_id: Uuid,
    family_id: Uuid,
    client: &Client,
) -> anyhow::Result<Issued> {
    let now = Utc::now();
    let lifetime = |d: Duration| chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
    let issued = Issued {
        session_id: Uuid::now_v7(),
        family_id,
        access: Secret::generate(Kind::AccessToken)?,
        access_expires_at: now + lifetime(lifetimes.access),
        refresh: Secret::generate(Kind::RefreshToken)?,
        refresh_expires_at: now + lifetime(lifetimes.refresh),
    };
    sqlx::query(
        "INSERT INTO sessions (session_id, family_id, user_id, access_hash, access_expires_at,
                               refresh_hash, refresh_expires_at, ip, user_agent)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(issued.session_id)
    .bind(family_id)
    .bind(user_id)
    .bind(&issued.access.hash)
    .bind(issued.access_expires_at)
    .bind(&issued.refresh.hash)
    .bind(issued.refresh_expires_at)
    .bind(client.ip.as_deref())
    .bind(client.user_agent.as_deref())
    .execute(conn)
    .await?;
    Ok(issued)
}

async fn end_family(conn: &mut sqlx::PgConnection, family_id: Uuid) -> anyhow::Result<u64> {
    let ended = sqlx::query(
        "UPDATE sessions SET ended_at = now() WHERE family_id = $1 AND ended_at IS NULL",
    )
    .bind(family_id)
    .execute(conn)
    .await?;
    Ok(ended.rows_affected())
}
