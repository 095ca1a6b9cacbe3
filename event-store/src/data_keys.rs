//! The subjects' data keys (crypto-shredding, `events::personal`): created on the first event
//! with personal data about a subject, stored wrapped by the master [`Keyring`] in `data_keys`,
//! destroyed by [`DataKeys::erase`].
//!
//! No cache of unwrapped keys: an erasure made by any process must take effect in every other
//! one at once, and one indexed read per sealed event (or one per batch, [`DataKeys::get_many`])
//! is cheap next to the projection's own writes.

use std::collections::HashMap;
use std::sync::Arc;

use events::personal::{self, DataKey, Keyring, KeyringError, PersonalError};
use events::{NewEvent, RecordedEvent};
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

use crate::group::Group;

/// Why a data key could not be created, read, used or erased.
#[derive(Debug, thiserror::Error)]
pub enum DataKeyError {
    /// The subject's key was destroyed; no new personal data may be sealed for them.
    #[error("the data key of subject {subject} was erased")]
    Erased { subject: Uuid },
    /// The subject's key belongs to another organisation: subject ids are never shared.
    #[error("subject {subject} has a data key of another organisation")]
    OtherOrganisation { subject: Uuid },
    /// Personal fields without `metadata.subject` would enter the log in the clear.
    #[error("event {event_id} ({event_type}) holds personal data but names no subject")]
    NoSubject { event_id: Uuid, event_type: String },
    #[error("data key of subject {subject}: {error}")]
    Keyring { subject: Uuid, error: KeyringError },
    #[error(transparent)]
    Personal(#[from] PersonalError),
    #[error("data key store: {0}")]
    Database(#[from] sqlx::Error),
}

/// The `data_keys` table and the keyring that wraps its keys.
#[derive(Clone)]
pub struct DataKeys {
    pool: PgPool,
    keyring: Arc<Keyring>,
    /// Whether a new key may commit without waiting for its flush to disk
    /// ([`DataKeys::flushed_by_log`]).
    flushed_by_log: bool,
    /// Concurrent [`DataKeys::ensure_all`] calls, written together.
    group: Arc<KeyGroup>,
}

/// Calls of [`DataKeys::ensure_all`], each answered with its keys.
type KeyGroup = Group<Vec<(Uuid, Uuid)>, Result<HashMap<Uuid, DataKey>, DataKeyError>>;

/// Key-creating statements in flight at once; the calls that arrive meanwhile go together.
const KEY_LANES: usize = 2;

/// The most calls one key-creating statement takes.
const KEY_GROUP: usize = 64;

/// A stored key: its organisation and, unless erased, the wrapped key.
type KeyRow = (Uuid, Option<Vec<u8>>);
/// A key's row with its subject: subject, organisation, wrapped key.
type SubjectRow = (Uuid, Uuid, Option<Vec<u8>>);

/// `rows` by their subject.
fn by_subject(rows: Vec<SubjectRow>) -> HashMap<Uuid, KeyRow> {
    rows.into_iter()
        .map(|(subject, org_id, wrapped)| (subject, (org_id, wrapped)))
        .collect()
}

impl DataKeys {
    pub fn new(pool: PgPool, keyring: Arc<Keyring>) -> DataKeys {
        DataKeys {
            pool,
            keyring,
            flushed_by_log: false,
            group: Arc::new(Group::new(KEY_LANES, KEY_GROUP)),
        }
    }

    /// New keys commit without waiting for their own flush to disk when the event log's
    /// appends flush them (`EventStore::flushes_earlier_database_commits`): a key is created
    /// before the first event sealed with it is appended, so by the time that event is durable
    /// its key is too, and a key lost to a crash before then sealed nothing that survived. It
    /// saves every new subject one disk flush on the way to its first event.
    pub fn flushed_by_log(mut self, yes: bool) -> DataKeys {
        self.flushed_by_log = yes;
        self
    }

    /// The subject's key, created on first use, in one round trip.
    pub async fn ensure(&self, org_id: Uuid, subject: Uuid) -> Result<DataKey, DataKeyError> {
        let mut keys = self.ensure_all(&[(org_id, subject)]).await?;
        keys.remove(&subject)
            .ok_or(DataKeyError::Database(sqlx::Error::RowNotFound))
    }

    /// The keys of `subjects` (each with its organisation), those missing created, in one
    /// round trip, shared with the calls that queued meanwhile (`crate::group`). Two
    /// concurrent creators agree on one key: the second insert does nothing and reads the row
    /// that won (on a second look when it committed after this statement's snapshot).
    #[tracing::instrument(skip_all, fields(subjects = subjects.len()))]
    pub async fn ensure_all(
        &self,
        subjects: &[(Uuid, Uuid)],
    ) -> Result<HashMap<Uuid, DataKey>, DataKeyError> {
        let keys = self.clone();
        self.group
            .submit(subjects.to_vec(), move |calls| {
                let keys = keys.clone();
                async move { keys.ensure_group(calls).await }
            })
            .await
            .unwrap_or_else(|| {
                Err(DataKeyError::Database(sqlx::Error::Protocol(
                    "the grouped key write ended without an answer".into(),
                )))
            })
    }

    /// The keys of a group of [`Self::ensure_all`] calls: one statement for all of them, or,
    /// when that fails, one each, so that every call gets the answer it would have had alone.
    async fn ensure_group(
        &self,
        calls: Vec<Vec<(Uuid, Uuid)>>,
    ) -> Vec<Result<HashMap<Uuid, DataKey>, DataKeyError>> {
        // One statement cannot tell two calls naming one subject under two organisations
        // apart; alone, the second learns that the key is another organisation's.
        let mut owners: HashMap<Uuid, Uuid> = HashMap::new();
        let consistent = calls
            .iter()
            .flatten()
            .all(|&(org_id, subject)| *owners.entry(subject).or_insert(org_id) == org_id);
        if calls.len() > 1 && consistent {
            let all: Vec<(Uuid, Uuid)> = calls.iter().flatten().copied().collect();
            if let Ok(keys) = self.ensure_now(&all).await {
                return calls
                    .iter()
                    .map(|call| {
                        call.iter()
                            .map(|&(_, subject)| match keys.get(&subject) {
                                Some(key) => Ok((subject, key.clone())),
                                None => Err(DataKeyError::Database(sqlx::Error::RowNotFound)),
                            })
                            .collect()
                    })
                    .collect();
            }
        }
        let mut answers = Vec::with_capacity(calls.len());
        for call in &calls {
            answers.push(self.ensure_now(call).await);
        }
        answers
    }

    /// [`Self::ensure_all`] in a statement of its own.
    async fn ensure_now(
        &self,
        subjects: &[(Uuid, Uuid)],
    ) -> Result<HashMap<Uuid, DataKey>, DataKeyError> {
        let mut fresh: HashMap<Uuid, (Uuid, DataKey, Vec<u8>)> = HashMap::new();
        for &(org_id, subject) in subjects {
            if fresh.contains_key(&subject) {
                continue;
            }
            let key = DataKey::generate()?;
            let wrapped = self
                .keyring
                .wrap(&key, org_id, subject)
                .map_err(|error| DataKeyError::Keyring { subject, error })?;
            fresh.insert(subject, (org_id, key, wrapped));
        }
        let (ids, orgs, wrapped): (Vec<Uuid>, Vec<Uuid>, Vec<&[u8]>) = fresh
            .iter()
            .map(|(subject, (org_id, _, wrapped))| (*subject, *org_id, wrapped.as_slice()))
            .collect();
        // `synchronous_commit` for this statement's own transaction: `off` does not wait for
        // the flush (see `flushed_by_log`), otherwise the server's setting.
        let rows: Vec<SubjectRow> = sqlx::query_as(
            "WITH flush AS (
                 SELECT set_config('synchronous_commit',
                                   CASE WHEN $4 THEN current_setting('synchronous_commit')
                                        ELSE 'off' END,
                                   true)
             ), created AS (
                 INSERT INTO data_keys (subject_id, org_id, wrapped_key)
                 SELECT k.subject_id, k.org_id, k.wrapped_key
                 FROM flush, unnest($1::uuid[], $2::uuid[], $3::bytea[])
                             AS k(subject_id, org_id, wrapped_key)
                 ON CONFLICT (subject_id) DO NOTHING
                 RETURNING subject_id, org_id, wrapped_key
             )
             SELECT subject_id, org_id, wrapped_key FROM created
             UNION ALL
             SELECT subject_id, org_id, wrapped_key FROM data_keys
             WHERE subject_id = ANY($1)
               AND subject_id NOT IN (SELECT subject_id FROM created)",
        )
        .bind(&ids)
        .bind(&orgs)
        .bind(&wrapped)
        .bind(!self.flushed_by_log)
        .fetch_all(&self.pool)
        .await?;
        let mut stored = by_subject(rows);
        let unseen: Vec<Uuid> = ids
            .iter()
            .filter(|id| !stored.contains_key(id))
            .copied()
            .collect();
        if !unseen.is_empty() {
            let late: Vec<SubjectRow> = sqlx::query_as(
                "SELECT subject_id, org_id, wrapped_key FROM data_keys WHERE subject_id = ANY($1)",
            )
            .bind(&unseen)
            .fetch_all(&self.pool)
            .await?;
            stored.extend(by_subject(late));
        }
        let mut keys = HashMap::with_capacity(fresh.len());
        for (subject, (org_id, key, wrapped)) in fresh {
            let key = match stored.remove(&subject) {
                Some((_, Some(row))) if row == wrapped => key,
                Some(row) => self.key_of(org_id, subject, row)?,
                None => return Err(DataKeyError::Database(sqlx::Error::RowNotFound)),
            };
            keys.insert(subject, key);
        }
        Ok(keys)
    }

    /// The subject's key; `None` when they never had one or it was erased.
    #[tracing::instrument(skip(self))]
    pub async fn get(&self, subject: Uuid) -> Result<Option<DataKey>, DataKeyError> {
        match self.row(subject).await? {
            Some((org_id, Some(wrapped))) => self.unwrap(&wrapped, org_id, subject).map(Some),
            _ => Ok(None),
        }
    }

    /// The keys of `subjects` in one query, on `executor` (e.g. a projection's transaction).
    /// Erased and unknown subjects are absent.
    #[tracing::instrument(skip_all, fields(subjects = subjects.len()))]
    pub async fn get_many<'c, E: PgExecutor<'c>>(
        &self,
        executor: E,
        subjects: &[Uuid],
    ) -> Result<HashMap<Uuid, DataKey>, DataKeyError> {
        if subjects.is_empty() {
            return Ok(HashMap::new());
        }
        let rows: Vec<(Uuid, Uuid, Vec<u8>)> = sqlx::query_as(
            "SELECT subject_id, org_id, wrapped_key FROM data_keys \
             WHERE subject_id = ANY($1) AND wrapped_key IS NOT NULL",
        )
        .bind(subjects)
        .fetch_all(executor)
        .await?;
        rows.into_iter()
            .map(|(subject, org_id, wrapped)| {
                Ok((subject, self.unwrap(&wrapped, org_id, subject)?))
            })
            .collect()
    }

    /// Destroys the subject's key: from now on their personal fields read as erased everywhere.
    /// `true` if a key was destroyed, `false` if there was none or it was already erased.
    #[tracing::instrument(skip(self))]
    pub async fn erase(&self, subject: Uuid) -> Result<bool, DataKeyError> {
        let result = sqlx::query(
            "UPDATE data_keys SET wrapped_key = NULL, erased_at = now() \
             WHERE subject_id = $1 AND wrapped_key IS NOT NULL",
        )
        .bind(subject)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() > 0)
    }

    /// Opens the event's sealed fields: `$personal` with the subject's key, `$erased` once it
    /// is gone.
    pub async fn open_event(&self, event: &mut RecordedEvent) -> Result<(), DataKeyError> {
        if !personal::has_sealed(&event.data) {
            return Ok(());
        }
        let subject = subject_of(event)?;
        let key = self.get(subject).await?;
        personal::open(&mut event.data, subject, key.as_ref())?;
        Ok(())
    }

    /// [`Self::open_event`] for a batch, with one key query.
    pub async fn open_events(&self, events: &mut [RecordedEvent]) -> Result<(), DataKeyError> {
        // Each event's subject, `None` when it has nothing sealed: its data is searched once.
        let sealed = events
            .iter()
            .map(|event| {
                personal::has_sealed(&event.data)
                    .then(|| subject_of(event))
                    .transpose()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut subjects: Vec<Uuid> = sealed.iter().flatten().copied().collect();
        if subjects.is_empty() {
            return Ok(());
        }
        subjects.sort_unstable();
        subjects.dedup();
        let keys = self.get_many(&self.pool, &subjects).await?;
        for (event, subject) in events.iter_mut().zip(sealed) {
            if let Some(subject) = subject {
                personal::open(&mut event.data, subject, keys.get(&subject))?;
            }
        }
        Ok(())
    }

    /// Seals the event's personal fields under its subject's key (created on first use), so
    /// they enter the log encrypted. An event with personal fields must name its subject.
    pub async fn seal_event(&self, event: &mut NewEvent) -> Result<(), DataKeyError> {
        self.seal_events(std::slice::from_mut(event)).await
    }

    /// [`Self::seal_event`] for several events, with one key lookup for all their subjects.
    pub async fn seal_events(&self, events: &mut [NewEvent]) -> Result<(), DataKeyError> {
        // Each event's subject, `None` when it has nothing personal to seal.
        let mut subjects = Vec::with_capacity(events.len());
        for event in events.iter() {
            let personal = personal::has_personal(&event.data);
            subjects.push(if personal {
                Some(subject_of_new(event)?)
            } else {
                None
            });
        }
        let owners: Vec<(Uuid, Uuid)> = events
            .iter()
            .zip(&subjects)
            .filter_map(|(event, subject)| Some((event.org_id, (*subject)?)))
            .collect();
        if owners.is_empty() {
            return Ok(());
        }
        let keys = self.ensure_all(&owners).await?;
        for (event, subject) in events.iter_mut().zip(subjects) {
            let Some(subject) = subject else { continue };
            let key = keys
                .get(&subject)
                .ok_or(DataKeyError::Database(sqlx::Error::RowNotFound))?;
            personal::seal(&mut event.data, subject, key)?;
        }
        Ok(())
    }

    async fn row(&self, subject: Uuid) -> Result<Option<KeyRow>, DataKeyError> {
        Ok(
            sqlx::query_as("SELECT org_id, wrapped_key FROM data_keys WHERE subject_id = $1")
                .bind(subject)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    fn key_of(&self, org_id: Uuid, subject: Uuid, row: KeyRow) -> Result<DataKey, DataKeyError> {
        match row {
            (stored_org, _) if stored_org != org_id => {
                Err(DataKeyError::OtherOrganisation { subject })
            }
            (_, None) => Err(DataKeyError::Erased { subject }),
            (_, Some(wrapped)) => self.unwrap(&wrapped, org_id, subject),
        }
    }

    fn unwrap(&self, wrapped: &[u8], org_id: Uuid, subject: Uuid) -> Result<DataKey, DataKeyError> {
        self.keyring
            .unwrap(wrapped, org_id, subject)
            .map_err(|error| DataKeyError::Keyring { subject, error })
    }
}

/// Sealed data is only ever written for a subject; without one the event cannot be opened.
fn subject_of(event: &RecordedEvent) -> Result<Uuid, DataKeyError> {
    named_subject(event.metadata.subject, event.event_id, &event.event_type)
}

fn subject_of_new(event: &NewEvent) -> Result<Uuid, DataKeyError> {
    named_subject(event.metadata.subject, event.event_id, &event.event_type)
}

fn named_subject(
    subject: Option<Uuid>,
    event_id: Uuid,
    event_type: &str,
) -> Result<Uuid, DataKeyError> {
    subject.ok_or_else(|| DataKeyError::NoSubject {
        event_id,
        event_type: event_type.to_owned(),
    })
}
