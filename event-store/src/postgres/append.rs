//! One append = one statement. Its only write is the insert, guarded by the expected version
//! and by `unique(stream, version)`, so two writers that both saw version `n` can never both
//! write `n + 1`: the second gets a unique violation, which is never swallowed but turned into
//! [`StoreError::WrongExpectedVersion`] (or retried, for `Any`/`StreamExists`, where re-deciding
//! is the store's job).

use deadpool_postgres::{GenericClient, Object, Pool};
use serde_json::Value;
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Json;
use uuid::Uuid;

use super::{current_version, pg_error, position, to_i64};
use crate::{AppendResult, ExpectedVersion, StoreError, StreamAppend};
use events::{Metadata, NewEvent};

const APPEND: &str = "
WITH cur AS (
    SELECT (SELECT version FROM events WHERE stream = $1 ORDER BY version DESC LIMIT 1) AS v
), ins AS (
    INSERT INTO events (event_id, stream, version, event_type, schema_version, org_id, data, metadata)
    SELECT e.event_id, $1, COALESCE(cur.v, -1) + e.n, e.event_type, e.schema_version, e.org_id,
           e.data, e.metadata
    FROM cur, unnest($3::uuid[], $4::text[], $5::int4[], $6::uuid[], $7::jsonb[], $8::jsonb[])
              WITH ORDINALITY AS e(event_id, event_type, schema_version, org_id, data, metadata, n)
    WHERE CASE $2::int8
            WHEN -1 THEN true
            WHEN -2 THEN cur.v IS NULL
            WHEN -3 THEN cur.v IS NOT NULL
            ELSE cur.v = $2
          END
    ORDER BY e.n
    RETURNING version, transaction_id, global_position
)
SELECT (SELECT v FROM cur), max(version), (array_agg(transaction_id))[1], max(global_position)
FROM ins";

/// One event at a version known in advance (`NoStream` → 0, `Exact(n)` → n + 1): no read of the
/// stream's head, only the insert. `unique(stream, version)` rejects it when the version is
/// taken; the `EXISTS` probe rejects it when the version before it is missing (the stream is
/// behind the expected version), so the stream never gets a gap.
const APPEND_ONE_AT: &str = "
INSERT INTO events (event_id, stream, version, event_type, schema_version, org_id, data, metadata)
SELECT $1::uuid, $2::text, $3::int8, $4::text, $5::int4, $6::uuid, $7::jsonb, $8::jsonb
WHERE $3::int8 = 0 OR EXISTS (SELECT 1 FROM events WHERE stream = $2::text AND version = $3::int8 - 1)
RETURNING version, transaction_id, global_position";

/// Every event of several streams whose versions are all known in advance (`NoStream` and
/// `Exact` appends), in one statement and so one implicit transaction. `unique(stream, version)`
/// rejects the whole statement when a version is taken; the `NOT EXISTS` guard inserts nothing
/// when a stream is behind its expected version. Either way the caller learns nothing more than
/// "not like this" and takes the transaction path, which tells which stream failed and why.
const APPEND_AT_VERSIONS: &str = "
INSERT INTO events (event_id, stream, version, event_type, schema_version, org_id, data, metadata)
SELECT e.event_id, e.stream, e.version, e.event_type, e.schema_version, e.org_id, e.data,
       e.metadata
FROM unnest($1::uuid[], $2::text[], $3::int8[], $4::text[], $5::int4[], $6::uuid[], $7::jsonb[],
            $8::jsonb[])
     WITH ORDINALITY AS e(event_id, stream, version, event_type, schema_version, org_id, data,
                          metadata, n)
WHERE NOT EXISTS (
    SELECT 1 FROM unnest($9::text[], $10::int8[]) AS f(stream, first)
    WHERE f.first > 0
      AND NOT EXISTS (SELECT 1 FROM events WHERE stream = f.stream AND version = f.first - 1)
)
ORDER BY e.n
RETURNING stream, version, transaction_id, global_position";

/// How often an `Any`/`StreamExists` append is retried when a concurrent writer took the
/// version it computed.
const MAX_RACES: usize = 64;

/// Events as the column arrays the append statements unnest.
struct Columns<'a> {
    ids: Vec<Uuid>,
    types: Vec<&'a str>,
    schema_versions: Vec<i32>,
    orgs: Vec<Uuid>,
    data: Vec<&'a Value>,
    metadata: Vec<Json<&'a Metadata>>,
}

impl<'a> Columns<'a> {
    fn of(events: impl Iterator<Item = &'a NewEvent>) -> Self {
        let mut columns = Columns {
            ids: Vec::new(),
            types: Vec::new(),
            schema_versions: Vec::new(),
            orgs: Vec::new(),
            data: Vec::new(),
            metadata: Vec::new(),
        };
        for event in events {
            columns.ids.push(event.event_id);
            columns.types.push(event.event_type.as_str());
            columns
                .schema_versions
                .push(i32::try_from(event.schema_version).unwrap_or(i32::MAX));
            columns.orgs.push(event.org_id);
            columns.data.push(&event.data);
            columns.metadata.push(Json(&event.metadata));
        }
        columns
    }
}

/// One stream's events as [`APPEND`] takes them.
struct Batch<'a> {
    stream: &'a str,
    expected: ExpectedVersion,
    expected_code: i64,
    columns: Columns<'a>,
}

/// How one [`APPEND`] statement ended.
enum Outcome {
    Appended(AppendResult),
    /// The expected version did not hold, or a concurrent writer took the version (`raced`).
    WrongVersion {
        raced: bool,
    },
    /// An event id is stored already.
    EventIdTaken,
}

impl<'a> Batch<'a> {
    fn new(stream: &'a str, expected: ExpectedVersion, events: &'a [NewEvent]) -> Self {
        Batch {
            stream,
            expected,
            expected_code: match expected {
                ExpectedVersion::Any => -1,
                ExpectedVersion::NoStream => -2,
                ExpectedVersion::StreamExists => -3,
                ExpectedVersion::Exact(v) => to_i64(v),
            },
            columns: Columns::of(events.iter()),
        }
    }

    /// Whether a lost race is the store's to retry: the caller did not pin a version.
    fn may_retry_race(&self) -> bool {
        matches!(
            self.expected,
            ExpectedVersion::Any | ExpectedVersion::StreamExists
        )
    }

    async fn run(&self, client: &impl GenericClient) -> Result<Outcome, StoreError> {
        let statement = client.prepare_cached(APPEND).await.map_err(pg_error)?;
        let outcome = client
            .query_one(
                &statement,
                &[
                    &self.stream,
                    &self.expected_code,
                    &self.columns.ids,
                    &self.columns.types,
                    &self.columns.schema_versions,
                    &self.columns.orgs,
                    &self.columns.data,
                    &self.columns.metadata,
                ],
            )
            .await;
        let row = match outcome {
            Ok(row) => row,
            Err(error) => {
                return Ok(match taken(error)? {
                    Taken::EventId => Outcome::EventIdTaken,
                    Taken::Version => Outcome::WrongVersion { raced: true },
                });
            }
        };
        let last_version: Option<i64> = row.try_get(1).map_err(pg_error)?;
        Ok(match last_version {
            Some(last_version) => Outcome::Appended(AppendResult {
                last_version: last_version as u64,
                position: position(&row, 2, 3)?,
            }),
            None => Outcome::WrongVersion { raced: false },
        })
    }
}

pub(super) async fn append(
    client: &Object,
    stream: &str,
    expected: ExpectedVersion,
    events: &[NewEvent],
) -> Result<AppendResult, StoreError> {
    if events.is_empty() {
        return Err(StoreError::EmptyAppend);
    }
    if let ([event], ExpectedVersion::NoStream | ExpectedVersion::Exact(_)) = (events, expected) {
        return append_one_at(client, stream, expected, event).await;
    }
    let batch = Batch::new(stream, expected, events);
    for _ in 0..MAX_RACES {
        match batch.run(client).await? {
            Outcome::Appended(result) => return Ok(result),
            Outcome::EventIdTaken => return duplicate(client, stream, events).await,
            // A concurrent writer took the version: `Any`/`StreamExists` decide again.
            Outcome::WrongVersion { raced: true } if batch.may_retry_race() => continue,
            Outcome::WrongVersion { .. } => break,
        }
    }
    conflict(client, stream, expected, events).await
}

/// Every append of `appends`, all or nothing: in one statement when every version is known in
/// advance and nothing stands in the way (the common case: new streams, or streams read just
/// before), otherwise in one transaction, one statement per stream.
pub(super) async fn append_to_streams(
    client: &mut Object,
    appends: &[StreamAppend],
) -> Result<Vec<AppendResult>, StoreError> {
    crate::check_appends(appends)?;
    if let Some(results) = append_at_versions(client, appends).await? {
        return Ok(results);
    }
    append_in_transaction(client, appends).await
}

/// Whether every append names the version it expects (`NoStream`, `Exact`), so that it can
/// share one [`APPEND_AT_VERSIONS`] statement with others.
pub(super) fn at_known_versions(appends: &[StreamAppend]) -> bool {
    appends.iter().all(|a| {
        matches!(
            a.expected,
            ExpectedVersion::NoStream | ExpectedVersion::Exact(_)
        )
    })
}

/// A group of concurrent [`append_to_streams`] calls, each at known versions: all of them in
/// one statement (and so one commit) when nothing stands in the way, otherwise each on its own,
/// in the order they came, so that every call gets the answer it would have had alone. One
/// answer per call, in order.
pub(super) async fn append_group(
    pool: Pool,
    mut calls: Vec<Vec<StreamAppend>>,
) -> Vec<Result<Vec<AppendResult>, StoreError>> {
    let mut client = match pool.get().await {
        Ok(client) => client,
        Err(error) => {
            return calls
                .iter()
                .map(|_| Err(StoreError::Unavailable(error.to_string())))
                .collect();
        }
    };
    if calls.len() > 1 {
        let sizes: Vec<usize> = calls.iter().map(Vec::len).collect();
        let all: Vec<StreamAppend> = calls.into_iter().flatten().collect();
        // Any failure (a version or event id taken, a stream behind, a lost connection) sends
        // every call its own way, which tells which one failed and why.
        if let Ok(Some(results)) = append_at_versions(&client, &all).await {
            let mut results = results.into_iter();
            return sizes
                .iter()
                .map(|&n| Ok(results.by_ref().take(n).collect()))
                .collect();
        }
        let mut all = all.into_iter();
        calls = sizes
            .iter()
            .map(|&n| all.by_ref().take(n).collect())
            .collect();
    }
    let mut answers = Vec::with_capacity(calls.len());
    for call in &calls {
        answers.push(append_to_streams(&mut client, call).await);
    }
    answers
}

/// [`APPEND_AT_VERSIONS`]: the results, or `None` when the appends must take the transaction
/// path (a version not known in advance, taken, or not reached).
async fn append_at_versions(
    client: &Object,
    appends: &[StreamAppend],
) -> Result<Option<Vec<AppendResult>>, StoreError> {
    let mut firsts = Vec::with_capacity(appends.len());
    for append in appends {
        firsts.push(match append.expected {
            ExpectedVersion::NoStream => 0,
            ExpectedVersion::Exact(v) => to_i64(v).saturating_add(1),
            ExpectedVersion::Any | ExpectedVersion::StreamExists => return Ok(None),
        });
    }
    let count = appends.iter().map(|a| a.events.len()).sum::<usize>();
    let mut streams = Vec::with_capacity(count);
    let mut versions = Vec::with_capacity(count);
    for (append, first) in appends.iter().zip(&firsts) {
        for offset in 0..append.events.len() {
            streams.push(append.stream.as_str());
            versions.push(first + offset as i64);
        }
    }
    let columns = Columns::of(appends.iter().flat_map(|a| a.events.iter()));
    let guarded: Vec<&str> = appends.iter().map(|a| a.stream.as_str()).collect();
    let statement = client
        .prepare_cached(APPEND_AT_VERSIONS)
        .await
        .map_err(pg_error)?;
    let outcome = client
        .query(
            &statement,
            &[
                &columns.ids,
                &streams,
                &versions,
                &columns.types,
                &columns.schema_versions,
                &columns.orgs,
                &columns.data,
                &columns.metadata,
                &guarded,
                &firsts,
            ],
        )
        .await;
    let rows = match outcome {
        Ok(rows) if rows.len() == count => rows,
        // Not reached (nothing inserted), or a version or event id taken.
        Ok(_) => return Ok(None),
        Err(error) => return taken(error).map(|_| None),
    };
    let mut results = Vec::with_capacity(appends.len());
    for append in appends {
        let mut last: Option<AppendResult> = None;
        for row in rows.iter().filter(|r| r.get::<_, &str>(0) == append.stream) {
            let version = row.try_get::<_, i64>(1).map_err(pg_error)? as u64;
            if last.is_none_or(|l| version > l.last_version) {
                last = Some(AppendResult {
                    last_version: version,
                    position: position(row, 2, 3)?,
                });
            }
        }
        results.push(last.ok_or_else(|| {
            StoreError::Backend(format!("an append to {} returned no row", append.stream))
        })?);
    }
    Ok(Some(results))
}

/// Every append of `appends` in one transaction, one statement each.
async fn append_in_transaction(
    client: &mut Object,
    appends: &[StreamAppend],
) -> Result<Vec<AppendResult>, StoreError> {
    let batches: Vec<Batch<'_>> = appends
        .iter()
        .map(|a| Batch::new(&a.stream, a.expected, &a.events))
        .collect();
    for _ in 0..MAX_RACES {
        let transaction = client.transaction().await.map_err(pg_error)?;
        let mut results = Vec::with_capacity(batches.len());
        let mut failure = None;
        for (index, batch) in batches.iter().enumerate() {
            match batch.run(&transaction).await? {
                Outcome::Appended(result) => results.push(result),
                outcome => {
                    failure = Some((index, outcome));
                    break;
                }
            }
        }
        let Some((index, outcome)) = failure else {
            transaction.commit().await.map_err(pg_error)?;
            return Ok(results);
        };
        transaction.rollback().await.map_err(pg_error)?;
        // A retry of the whole call finds every event stored: answer as the first time.
        let mut originals = Vec::with_capacity(appends.len());
        for append in appends {
            match already_appended(client, &append.stream, &append.events).await? {
                Some(original) => originals.push(original),
                None => break,
            }
        }
        if originals.len() == appends.len() {
            return Ok(originals);
        }
        let failed = &appends[index];
        match outcome {
            Outcome::WrongVersion { raced: true } if batches[index].may_retry_race() => continue,
            Outcome::EventIdTaken => {
                // Stored with other content names the exact id; stored the same (this stream's
                // part of another call) is still not a retry of this one.
                already_appended(client, &failed.stream, &failed.events).await?;
                return Err(StoreError::DuplicateEventId {
                    event_id: failed.events[0].event_id,
                });
            }
            Outcome::WrongVersion { .. } | Outcome::Appended(_) => {
                return Err(StoreError::WrongExpectedVersion {
                    stream: failed.stream.clone(),
                    expected: failed.expected,
                    actual: current_version(client, &failed.stream).await?,
                });
            }
        }
    }
    Err(StoreError::Backend(format!(
        "gave up after {MAX_RACES} lost races on a multi-stream append"
    )))
}

async fn append_one_at(
    client: &Object,
    stream: &str,
    expected: ExpectedVersion,
    event: &NewEvent,
) -> Result<AppendResult, StoreError> {
    let version: i64 = match expected {
        ExpectedVersion::Exact(v) => to_i64(v).saturating_add(1),
        _ => 0,
    };
    let events = std::slice::from_ref(event);
    let statement = client
        .prepare_cached(APPEND_ONE_AT)
        .await
        .map_err(pg_error)?;
    let outcome = client
        .query_opt(
            &statement,
            &[
                &event.event_id,
                &stream,
                &version,
                &event.event_type,
                &i32::try_from(event.schema_version).unwrap_or(i32::MAX),
                &event.org_id,
                &event.data,
                &Json(&event.metadata),
            ],
        )
        .await;
    match outcome {
        Ok(Some(row)) => Ok(AppendResult {
            last_version: event_version(&row)?,
            position: position(&row, 1, 2)?,
        }),
        Ok(None) => conflict(client, stream, expected, events).await,
        Err(error) => match taken(error)? {
            Taken::EventId => duplicate(client, stream, events).await,
            Taken::Version => conflict(client, stream, expected, events).await,
        },
    }
}

fn event_version(row: &Row) -> Result<u64, StoreError> {
    Ok(row.try_get::<_, i64>(0).map_err(pg_error)? as u64)
}

/// Which unique key an append ran into.
enum Taken {
    /// `events_event_id_key`: an event id is stored already.
    EventId,
    /// `events_stream_version_key`: the version is taken.
    Version,
}

/// A unique violation as [`Taken`]; any other error as the store's error.
fn taken(error: tokio_postgres::Error) -> Result<Taken, StoreError> {
    if error.code() != Some(&SqlState::UNIQUE_VIOLATION) {
        return Err(pg_error(error));
    }
    match error.as_db_error().and_then(|db| db.constraint()) {
        Some("events_event_id_key") => Ok(Taken::EventId),
        _ => Ok(Taken::Version),
    }
}

/// An event id is taken: a retry of the same append answers with the original result.
async fn duplicate(
    client: &Object,
    stream: &str,
    events: &[NewEvent],
) -> Result<AppendResult, StoreError> {
    already_appended(client, stream, events)
        .await?
        .ok_or(StoreError::DuplicateEventId {
            event_id: events[0].event_id,
        })
}

/// The expected version did not hold: either this is a retry of an append that already
/// happened (every event id stored, same content), or a real conflict.
async fn conflict(
    client: &Object,
    stream: &str,
    expected: ExpectedVersion,
    events: &[NewEvent],
) -> Result<AppendResult, StoreError> {
    if let Some(original) = already_appended(client, stream, events).await? {
        return Ok(original);
    }
    Err(StoreError::WrongExpectedVersion {
        stream: stream.to_owned(),
        expected,
        actual: current_version(client, stream).await?,
    })
}

/// The original result when every event is already stored in `stream` with the same type, org
/// and data; `None` when none of them is; [`StoreError::DuplicateEventId`] for anything between.
async fn already_appended(
    client: &Object,
    stream: &str,
    events: &[NewEvent],
) -> Result<Option<AppendResult>, StoreError> {
    let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
    let statement = client
        .prepare_cached(
            "SELECT event_id, stream, version, transaction_id, global_position, event_type, \
                    org_id, data \
             FROM events WHERE event_id = ANY($1)",
        )
        .await
        .map_err(pg_error)?;
    let rows = client.query(&statement, &[&ids]).await.map_err(pg_error)?;
    if rows.is_empty() {
        return Ok(None);
    }
    let mut last: Option<AppendResult> = None;
    for event in events {
        let stored = rows
            .iter()
            .find(|row| row.get::<_, Uuid>(0) == event.event_id);
        let same = stored.is_some_and(|row| {
            row.get::<_, &str>(1) == stream
                && row.get::<_, &str>(5) == event.event_type
                && row.get::<_, Uuid>(6) == event.org_id
                && row.get::<_, Value>(7) == event.data
        });
        let Some(row) = stored.filter(|_| same) else {
            return Err(StoreError::DuplicateEventId {
                event_id: event.event_id,
            });
        };
        let version = row.get::<_, i64>(2) as u64;
        if last.is_none_or(|l| version > l.last_version) {
            last = Some(AppendResult {
                last_version: version,
                position: position(row, 3, 4)?,
            });
        }
    }
    Ok(last)
}
