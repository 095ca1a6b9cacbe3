//! The import worker: claims a queued job, runs its rows in batches of [`CHUNK`] (new contacts
//! created in one append, the rest a row at a time) and records progress after each batch.
//! `corbi up` and `corbi command-api` run [`run`] beside the HTTP server; tests call
//! [`run_once`] or [`drain`] instead of waiting.

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use futures::StreamExt;
use service::FieldError;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::watch;

use super::CHANNEL;
use super::checks::{self, Checked};
use super::file::{CsvFile, Row};
use super::job::{self, Claimed, MAX_ATTEMPTS};
use super::rows::{DryRun, Report, RowContext};
use crate::CommandState;
use crate::contacts::CreateContact;

/// Rows of one job that go one at a time (not in a batch's append), in flight at once.
pub const CONCURRENCY: usize = 16;
/// Rows written in one append (those it can take) and recorded in one progress update.
pub const CHUNK: usize = 250;
/// Batches of [`CHUNK`] rows in flight at once.
const BATCHES: usize = 3;
/// How often the worker looks for jobs when no notification wakes it.
const POLL: Duration = Duration::from_secs(5);
/// How long a job interrupted after some progress waits before it resumes.
const RESUME_DELAY: Duration = Duration::from_secs(1);

/// How a run of a job ended.
enum Ended {
    Done,
    /// Asked to stop; the job goes back to the queue to resume.
    Stopped,
    /// Another run took the job over (this one's lease ran out).
    Lost,
}

/// Why a run did not finish.
enum RunError {
    /// Worth another run later.
    Unavailable(String),
    /// Another run would fail the same way.
    Broken(String),
}

impl From<sqlx::Error> for RunError {
    fn from(error: sqlx::Error) -> Self {
        RunError::Unavailable(format!("database: {error}"))
    }
}

/// Runs import jobs until `shutdown` turns true: woken by a notification when one is queued,
/// looking every few seconds anyway. A job still running at shutdown goes back to the queue.
pub async fn run(state: CommandState, mut shutdown: watch::Receiver<bool>) {
    let state = web::Data::new(state);
    let mut listener: Option<PgListener> = None;
    loop {
        if *shutdown.borrow() {
            break;
        }
        if listener.is_none() {
            listener = listen(&state.pool).await;
        }
        // Jobs queued before the listener started are found here, not lost.
        loop {
            match run_next(&state, &shutdown).await {
                Ok(true) if !*shutdown.borrow() => continue,
                Ok(_) => break,
                Err(error) => {
                    tracing::warn!(%error, "looking for contact imports");
                    break;
                }
            }
        }
        tokio::select! {
            changed = shutdown.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            woken = notified(&mut listener) => {
                if let Err(error) = woken {
                    tracing::warn!(%error, "import notifications lost; polling until they return");
                    listener = None;
                }
            }
            _ = tokio::time::sleep(POLL) => {}
        }
    }
    tracing::info!("contact import worker stopped");
}

async fn listen(pool: &PgPool) -> Option<PgListener> {
    let result = async {
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(CHANNEL).await?;
        Ok::<_, sqlx::Error>(listener)
    }
    .await;
    result
        .map_err(|error| tracing::warn!(%error, "cannot listen for contact imports; polling"))
        .ok()
}

async fn notified(listener: &mut Option<PgListener>) -> Result<(), sqlx::Error> {
    match listener {
        Some(listener) => listener.recv().await.map(|_| ()),
        None => std::future::pending().await,
    }
}

/// Claims one due job and runs it to its end; `false` when there was none.
pub async fn run_once(state: &CommandState) -> Result<bool, sqlx::Error> {
    let (_keep, never) = watch::channel(false);
    run_next(&web::Data::new(state.clone()), &never).await
}

/// Runs due jobs until none is left; answers how many ran.
pub async fn drain(state: &CommandState) -> Result<usize, sqlx::Error> {
    let mut ran = 0;
    while run_once(state).await? {
        ran += 1;
    }
    Ok(ran)
}

async fn run_next(
    state: &web::Data<CommandState>,
    stop: &watch::Receiver<bool>,
) -> Result<bool, sqlx::Error> {
    let pool = &state.pool;
    let Some(job) = job::claim(pool).await? else {
        return Ok(false);
    };
    if job.attempts > MAX_ATTEMPTS {
        let error = format!("gave up after {MAX_ATTEMPTS} attempts");
        job::fail(pool, &job, &error).await?;
        return Ok(true);
    }
    tracing::info!(import_id = %job.import_id, org_id = %job.org_id, attempt = job.attempts, dry_run = job.dry_run, "running a contact import");
    let started = std::time::Instant::now();
    let mut progressed = false;
    match run_job(state, &job, stop, &mut progressed).await {
        Ok(Ended::Done) => {
            job::finish(pool, &job).await?;
            let seconds = started.elapsed().as_secs_f64();
            tracing::info!(import_id = %job.import_id, seconds, "contact import done");
        }
        Ok(Ended::Stopped) => job::release(pool, &job, Duration::ZERO, false).await?,
        Ok(Ended::Lost) => {
            tracing::warn!(import_id = %job.import_id, "contact import taken over by another run");
        }
        // A run that got rows done before it was interrupted is not a failed attempt: a large
        // file on a busy database goes on until it is through.
        Err(RunError::Unavailable(error)) if progressed => {
            tracing::warn!(import_id = %job.import_id, %error, "contact import interrupted; resuming");
            job::release(pool, &job, RESUME_DELAY, false).await?;
        }
        Err(RunError::Unavailable(error)) => {
            let delay = Duration::from_secs(5 * 2u64.pow(job.attempts.clamp(1, 6) as u32 - 1));
            tracing::warn!(import_id = %job.import_id, %error, ?delay, "contact import interrupted; trying again later");
            job::release(pool, &job, delay, true).await?;
        }
        Err(RunError::Broken(error)) => {
            tracing::error!(import_id = %job.import_id, %error, "contact import failed");
            job::fail(pool, &job, &error).await?;
        }
    }
    Ok(true)
}

/// The file's rows, what each asks for and how each checks out.
struct Prepared {
    rows: Vec<Row>,
    inputs: Vec<Result<CreateContact, FieldError>>,
    checked: Vec<Checked>,
}

/// Runs `job`; `progressed` turns true once some of its rows are recorded.
async fn run_job(
    state: &web::Data<CommandState>,
    job: &Claimed,
    stop: &watch::Receiver<bool>,
    progressed: &mut bool,
) -> Result<Ended, RunError> {
    let region = crate::contacts::default_phone_region(&state.pool, job.org_id).await?;
    let definitions = crate::custom_fields::definitions(state, job.org_id)
        .await
        .map_err(|e| RunError::Unavailable(e.to_string()))?;
    let (rows_region, rows_definitions) = (region.clone(), definitions.clone());
    let Some(csv) = job.csv.clone() else {
        return Err(RunError::Broken("the file is no longer kept".into()));
    };
    let mapping = job.mapping.clone();
    // Parsing and checking 100,000 rows (phone numbers above all) is CPU work: off the runtime.
    let prepared = tokio::task::spawn_blocking(move || {
        let file = CsvFile::parse(&csv)?;
        let columns = mapping.columns(&file.headers)?;
        let inputs: Vec<_> = file
            .rows
            .iter()
            .map(|row| columns.input(row).map(|i| checks::typed(i, &definitions)))
            .collect();
        let checked = inputs
            .iter()
            .map(|input| checks::check(input, region.as_deref(), &definitions))
            .collect();
        Ok::<_, String>(Prepared {
            rows: file.rows,
            inputs,
            checked,
        })
    })
    .await
    .map_err(|e| RunError::Broken(format!("preparing the rows: {e}")))?
    .map_err(|e| RunError::Broken(format!("the file {e}")))?;
    let ctx = Arc::new(RowContext::new(
        state.clone(),
        job,
        &prepared.rows,
        rows_region,
        rows_definitions,
    ));
    let prepared = Arc::new(prepared);
    if job.dry_run {
        dry_run(&ctx, job, &prepared, stop).await
    } else {
        import(&ctx, job, &prepared, stop, progressed).await
    }
}

async fn import(
    ctx: &Arc<RowContext>,
    job: &Claimed,
    prepared: &Arc<Prepared>,
    stop: &watch::Receiver<bool>,
    progressed: &mut bool,
) -> Result<Ended, RunError> {
    let pool = &ctx.state.pool;
    let done = job::reported(pool, job.import_id).await?;
    let waves = checks::waves(&prepared.checked);
    let mut by_wave: Vec<Vec<usize>> = vec![Vec::new(); waves.iter().max().map_or(0, |w| w + 1)];
    for (index, wave) in waves.iter().enumerate() {
        if let (Some(bucket), Some(row)) = (by_wave.get_mut(*wave), prepared.rows.get(index))
            && !done.contains(&row.number)
        {
            bucket.push(index);
        }
    }
    let mut written = job.written;
    for wave in by_wave {
        // Each batch runs as a task of its own, owning what it uses: batches in flight go on
        // (and give their connections back) while another's progress is recorded, which needs
        // a connection from the same pool.
        let batches: Vec<Vec<usize>> = wave.chunks(CHUNK).map(<[usize]>::to_vec).collect();
        let batches = batches.into_iter().map(|indexes| {
            let ctx = ctx.clone();
            let prepared = prepared.clone();
            tokio::spawn(async move {
                let items: Vec<_> = indexes
                    .iter()
                    .filter_map(|&index| {
                        Some((
                            prepared.rows.get(index)?,
                            prepared.inputs.get(index)?,
                            prepared.checked.get(index)?,
                        ))
                    })
                    .collect();
                ctx.import_batch(&items).await
            })
        });
        let mut results = futures::stream::iter(batches).buffer_unordered(BATCHES);
        while let Some(result) = results.next().await {
            let (reports, unavailable) = match result {
                Ok(Ok(reports)) => (reports, None),
                Ok(Err(error)) => (Vec::new(), Some(error.0)),
                Err(panicked) => {
                    return Err(RunError::Broken(format!("importing rows: {panicked}")));
                }
            };
            written = reports
                .iter()
                .filter_map(|r| r.position)
                .chain(written)
                .max();
            if !job::record(pool, job, &reports, written).await? {
                return Ok(Ended::Lost);
            }
            *progressed |= !reports.is_empty();
            if let Some(error) = unavailable {
                return Err(RunError::Unavailable(error));
            }
            if *stop.borrow() {
                return Ok(Ended::Stopped);
            }
        }
    }
    Ok(Ended::Done)
}

async fn dry_run(
    ctx: &RowContext,
    job: &Claimed,
    prepared: &Prepared,
    stop: &watch::Receiver<bool>,
) -> Result<Ended, RunError> {
    let pool = &ctx.state.pool;
    // It decides each row from the rows before it, so an interrupted one starts over.
    job::restart_dry_run(pool, job).await?;
    let mut dry = DryRun::start(ctx, ctx.state.store.clone(), &prepared.checked)
        .await
        .map_err(|e| RunError::Unavailable(e.to_string()))?;
    let rows = prepared.rows.iter().zip(&prepared.checked);
    let mut reports: Vec<Report> = Vec::with_capacity(CHUNK);
    for (row, checked) in rows {
        reports.push(dry.row(row, checked));
        if reports.len() == CHUNK {
            if !job::record(pool, job, &reports, None).await? {
                return Ok(Ended::Lost);
            }
            reports.clear();
            if *stop.borrow() {
                return Ok(Ended::Stopped);
            }
        }
    }
    if !job::record(pool, job, &reports, None).await? {
        return Ok(Ended::Lost);
    }
    Ok(Ended::Done)
}
