//! The job's rows in `contact_imports` and `contact_import_rows`: claiming with
//! `FOR UPDATE SKIP LOCKED` and a lease, recording progress, and ending.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use events::{Metadata, Position};
use sqlx::PgPool;
use uuid::Uuid;

use super::OnDuplicate;
use super::file::Mapping;
use super::rows::{Outcome, Report};

/// How long a claim holds without progress; a job whose runner died is claimed again after it.
pub const LEASE: Duration = Duration::from_secs(60);
/// Runs of one job before it is given up.
pub const MAX_ATTEMPTS: i32 = 5;

/// A job this process holds.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub import_id: Uuid,
    pub org_id: Uuid,
    /// This run's claim: progress is recorded only while the job still carries it.
    pub run_id: Uuid,
    pub dry_run: bool,
    pub on_duplicate: OnDuplicate,
    pub mapping: Mapping,
    pub metadata: Metadata,
    pub csv: Option<Vec<u8>>,
    pub attempts: i32,
    /// The latest position written so far, by any run.
    pub written: Option<Position>,
}

#[derive(sqlx::FromRow)]
struct ClaimedRow {
    import_id: Uuid,
    org_id: Uuid,
    dry_run: bool,
    on_duplicate: String,
    mapping: sqlx::types::Json<BTreeMap<String, String>>,
    metadata: sqlx::types::Json<Metadata>,
    csv: Option<Vec<u8>>,
    attempts: i32,
    consistency_token: Option<String>,
}

fn lease_seconds() -> f64 {
    LEASE.as_secs_f64()
}

/// Claims the oldest job that is queued and due, or running with an expired lease.
pub async fn claim(pool: &PgPool) -> Result<Option<Claimed>, sqlx::Error> {
    let run_id = Uuid::now_v7();
    let row: Option<ClaimedRow> = sqlx::query_as(
        "UPDATE contact_imports
         SET status = 'running', run_id = $1,
             lease_until = now() + make_interval(secs => $2),
             attempts = attempts + 1, started_at = coalesce(started_at, now()), updated_at = now()
         WHERE import_id = (
             SELECT import_id FROM contact_imports
             WHERE (status = 'queued' AND run_after <= now())
                OR (status = 'running' AND lease_until < now())
             ORDER BY created_at
             LIMIT 1
             FOR UPDATE SKIP LOCKED)
         RETURNING import_id, org_id, dry_run, on_duplicate, mapping, metadata, csv, attempts,
                   consistency_token",
    )
    .bind(run_id)
    .bind(lease_seconds())
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|row| Claimed {
        import_id: row.import_id,
        org_id: row.org_id,
        run_id,
        dry_run: row.dry_run,
        on_duplicate: OnDuplicate::parse(&row.on_duplicate).unwrap_or(OnDuplicate::Skip),
        mapping: Mapping {
            targets: row.mapping.0,
        },
        metadata: row.metadata.0,
        csv: row.csv,
        attempts: row.attempts,
        written: row.consistency_token.and_then(|t| t.parse().ok()),
    }))
}

/// The rows an earlier run of the job already reported.
pub async fn reported(pool: &PgPool, import_id: Uuid) -> Result<HashSet<i32>, sqlx::Error> {
    let rows: Vec<i32> =
        sqlx::query_scalar("SELECT row_number FROM contact_import_rows WHERE import_id = $1")
            .bind(import_id)
            .fetch_all(pool)
            .await?;
    Ok(rows.into_iter().collect())
}

/// Forgets what an interrupted dry run reported: it starts over (it wrote nothing else).
pub async fn restart_dry_run(pool: &PgPool, job: &Claimed) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("DELETE FROM contact_import_rows WHERE import_id = $1")
        .bind(job.import_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE contact_imports
         SET rows_processed = 0, rows_created = 0, rows_updated = 0, rows_skipped = 0,
             rows_rejected = 0, rows_valid = 0
         WHERE import_id = $1",
    )
    .bind(job.import_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Records `reports` and renews the lease; `false` when the job is no longer this run's (its
/// lease ran out and another run took it), and then records nothing. Counts grow by the rows
/// newly reported only, so a row reported twice is counted once.
pub async fn record(
    pool: &PgPool,
    job: &Claimed,
    reports: &[Report],
    written: Option<Position>,
) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let ours: Option<i32> = sqlx::query_scalar(
        "SELECT 1 FROM contact_imports WHERE import_id = $1 AND run_id = $2 FOR UPDATE",
    )
    .bind(job.import_id)
    .bind(job.run_id)
    .fetch_optional(&mut *tx)
    .await?;
    if ours.is_none() {
        return Ok(false);
    }
    let numbers: Vec<i32> = reports.iter().map(|r| r.row).collect();
    let lines: Vec<i32> = reports.iter().map(|r| r.line).collect();
    let outcomes: Vec<&str> = reports.iter().map(|r| r.outcome.as_str()).collect();
    let contacts: Vec<Option<Uuid>> = reports.iter().map(|r| r.contact_id).collect();
    let errors: Vec<serde_json::Value> = reports
        .iter()
        .map(|r| serde_json::to_value(&r.errors).unwrap_or_default())
        .collect();
    let inserted: Vec<String> = sqlx::query_scalar(
        "INSERT INTO contact_import_rows (import_id, row_number, line, outcome, contact_id, errors)
         SELECT $1, * FROM UNNEST($2::int[], $3::int[], $4::text[], $5::uuid[], $6::jsonb[])
         ON CONFLICT (import_id, row_number) DO NOTHING
         RETURNING outcome",
    )
    .bind(job.import_id)
    .bind(&numbers)
    .bind(&lines)
    .bind(&outcomes)
    .bind(&contacts)
    .bind(&errors)
    .fetch_all(&mut *tx)
    .await?;
    let count = |outcome: Outcome| {
        i32::try_from(inserted.iter().filter(|o| *o == outcome.as_str()).count()).unwrap_or(0)
    };
    sqlx::query(
        "UPDATE contact_imports
         SET rows_processed = rows_processed + $2, rows_created = rows_created + $3,
             rows_updated = rows_updated + $4, rows_skipped = rows_skipped + $5,
             rows_rejected = rows_rejected + $6, rows_valid = rows_valid + $7,
             consistency_token = coalesce($8, consistency_token),
             lease_until = now() + make_interval(secs => $9), updated_at = now()
         WHERE import_id = $1",
    )
    .bind(job.import_id)
    .bind(i32::try_from(inserted.len()).unwrap_or(0))
    .bind(count(Outcome::Created))
    .bind(count(Outcome::Updated))
    .bind(count(Outcome::SkippedDuplicate))
    .bind(count(Outcome::Rejected))
    .bind(count(Outcome::Valid))
    .bind(written.map(|p| p.to_string()))
    .bind(lease_seconds())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// Ends the job, dropping its file: everything it says is now in the log and the report.
pub async fn finish(pool: &PgPool, job: &Claimed) -> Result<(), sqlx::Error> {
    end(pool, job, "done", None).await
}

/// Gives the job up with `error` (shown to its readers), dropping its file.
pub async fn fail(pool: &PgPool, job: &Claimed, error: &str) -> Result<(), sqlx::Error> {
    end(pool, job, "failed", Some(error)).await
}

async fn end(
    pool: &PgPool,
    job: &Claimed,
    status: &str,
    error: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE contact_imports
         SET status = $3, error = $4, csv = NULL, run_id = NULL, lease_until = NULL,
             finished_at = now(), updated_at = now()
         WHERE import_id = $1 AND run_id = $2",
    )
    .bind(job.import_id)
    .bind(job.run_id)
    .bind(status)
    .bind(error)
    .execute(pool)
    .await?;
    Ok(())
}

/// Hands the job back to be claimed again after `delay`: after a failure worth retrying, or
/// at a stop (`attempted: false`, which does not count as an attempt).
pub async fn release(
    pool: &PgPool,
    job: &Claimed,
    delay: Duration,
    attempted: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE contact_imports
         SET status = 'queued', run_id = NULL, lease_until = NULL,
             run_after = now() + make_interval(secs => $3),
             attempts = attempts - CASE WHEN $4 THEN 0 ELSE 1 END, updated_at = now()
         WHERE import_id = $1 AND run_id = $2",
    )
    .bind(job.import_id)
    .bind(job.run_id)
    .bind(delay.as_secs_f64())
    .bind(attempted)
    .execute(pool)
    .await?;
    Ok(())
}
