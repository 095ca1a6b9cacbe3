//! `bench catchup`: reading a large log (subscription, `event_stats` replay) against a `COPY` of
//! the same rows, the replay's peak memory, and the live projection's lag at half load.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use event_store::postgres::PgEventStore;
use event_store::{EventStore, ExpectedVersion, NewEvent, Position};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::append::{self, histogram, micros};
use crate::children;
use crate::data;
use crate::db::{self, BenchDatabase};
use crate::report::{Figure, Percentiles, Target, human};

/// Events per fill statement (and transaction).
const FILL_CHUNK: u64 = 50_000;

/// The columns the store reads, in its order.
const COLUMNS: &str = "global_position, transaction_id, event_id, stream, version, event_type, \
                       schema_version, org_id, data, metadata, recorded_at";

/// How often the lag measurement reads the projection's checkpoint.
const POLL: Duration = Duration::from_millis(2);

/// Steady load before the lag is measured, so the projector's first live batches don't count.
const LAG_WARM_UP: Duration = Duration::from_secs(1);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Events in the log to read back.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: u64,
    /// Seconds of 8-writer appends that measure the maximum rate before the lag measurement.
    #[arg(long, default_value_t = 3)]
    pub max_seconds: u64,
    /// Seconds of steady load at half the maximum rate while the lag is measured.
    #[arg(long, default_value_t = 10)]
    pub lag_seconds: u64,
    /// Writers of the maximum-rate measurement and of the steady load.
    #[arg(long, default_value_t = 8)]
    pub writers: usize,
}

pub fn context(args: &Args, server_version: &str) -> Value {
    json!({
        "postgres": server_version,
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "events": args.events,
    })
}

pub async fn run(database: &BenchDatabase, args: &Args) -> anyhow::Result<Vec<Figure>> {
    anyhow::ensure!(args.events >= 10, "--events must be at least 10");
    anyhow::ensure!(args.writers > 0, "--writers must be at least 1");
    let client = db::connect(&database.url).await?;
    fill(&client, args.events).await?;

    db::checkpoint(&client).await?;
    // The baseline is the faster of two COPYs, one before the reads and one after, so neither a
    // cold cache nor a noisy neighbour flatters the ratios.
    eprintln!("COPY of the log in log order…");
    let first_copy = copy_rate(&client, None, args.events).await?;

    eprintln!("subscription from the start…");
    let read = subscription_rate(&database.url, args.events).await?;

    eprintln!("event_stats replay in a child process…");
    let replay = children::result(
        children::spawn(&database.url, "replay-child", false)?,
        "replay",
    )
    .await?;
    let events = replay["events"].as_u64().unwrap_or(0);
    anyhow::ensure!(
        events == args.events,
        "the replay read {events} events of {}",
        args.events
    );
    let elapsed = replay["elapsed_secs"].as_f64().unwrap_or(f64::NAN);

    eprintln!("COPY again…");
    let copy_rate = first_copy.max(copy_rate(&client, None, args.events).await?);
    let copy = Some((copy_rate, "COPY"));
    let mut figures = vec![
        Figure::rate(
            "COPY (SELECT … ORDER BY transaction_id, global_position)",
            copy_rate,
            None,
        ),
        Figure::rate("subscription read", read, copy).target(Target::RatioAtLeast(0.5)),
        Figure::rate("event_stats replay", events as f64 / elapsed, copy)
            .target(Target::RatioAtLeast(0.25)),
    ];
    figures.push(memory("  projector peak memory (replay)", &replay).target(Target::AtMost(200.0)));

    let figures_lag = live_lag(database, &client, args).await?;
    figures.extend(figures_lag);
    Ok(figures)
}

fn memory(name: &str, child: &Value) -> Figure {
    let peak_mb = child["peak_rss_kb"].as_f64().unwrap_or(f64::NAN) * 1024.0 / 1e6;
    let mut text = format!("{peak_mb:.1} MB peak RSS");
    if let Some(start) = child["start_rss_kb"].as_f64() {
        text.push_str(&format!(" ({:.1} MB at start)", start * 1024.0 / 1e6));
    }
    Figure::value(name, peak_mb, text, "MB")
}

/// Writes `total` realistic events straight into `events` (the fill is not measured).
async fn fill(client: &tokio_postgres::Client, total: u64) -> anyhow::Result<()> {
    let started = Instant::now();
    let statement = client.prepare(data::FILL_CHUNK).await?;
    let streams = i64::try_from((total / 10).max(1))?;
    let total_i64 = i64::try_from(total)?;
    let mut done = 0;
    while done < total {
        let upto = (done + FILL_CHUNK).min(total);
        client
            .execute(
                &statement,
                &[
                    &i64::try_from(done)?,
                    &i64::try_from(upto)?,
                    &total_i64,
                    &streams,
                    &data::NOTES,
                    &data::FILL_METADATA,
                    &data::CATEGORIES.as_slice(),
                ],
            )
            .await
            .context("filling the log")?;
        done = upto;
        eprint!("\rfilling the log: {done}/{total}");
    }
    eprintln!(
        " in {:.1}s; VACUUM ANALYZE…",
        started.elapsed().as_secs_f64()
    );
    client.batch_execute("VACUUM ANALYZE events").await?;
    let row = client
        .query_one(
            "SELECT count(*), avg(octet_length(data::text))::float8,
                    pg_total_relation_size('events')::float8
             FROM events",
            &[],
        )
        .await?;
    let count: i64 = row.try_get(0)?;
    anyhow::ensure!(
        count == total_i64,
        "the log holds {count} events, not {total}"
    );
    eprintln!(
        "log: {count} events, data {:.0} bytes on average, {:.0} MB with indexes",
        row.try_get::<_, f64>(1)?,
        row.try_get::<_, f64>(2)? / 1e6
    );
    Ok(())
}

/// Rows/s of a `COPY … TO STDOUT` of every column of the events that match `filter` (a `WHERE`
/// condition; all of them when `None`) in log order, bytes drained by the client. `rows` is how
/// many there are.
pub(crate) async fn copy_rate(
    client: &tokio_postgres::Client,
    filter: Option<&str>,
    rows: u64,
) -> anyhow::Result<f64> {
    let filter = filter.map(|f| format!(" WHERE {f}")).unwrap_or_default();
    let query =
        format!("SELECT {COLUMNS} FROM events{filter} ORDER BY transaction_id, global_position");
    let plan = client.query(&format!("EXPLAIN {query}"), &[]).await?;
    let plan: Vec<String> = plan
        .iter()
        .map(|row| row.try_get::<_, String>(0))
        .collect::<Result<_, _>>()?;
    eprintln!("  plan: {}", plan.join(" / "));
    let started = Instant::now();
    let stream = client
        .copy_out(&format!("COPY ({query}) TO STDOUT"))
        .await?;
    let mut stream = std::pin::pin!(stream);
    let mut bytes = 0usize;
    while let Some(chunk) = stream.next().await {
        bytes += chunk?.len();
    }
    let elapsed = started.elapsed().as_secs_f64();
    eprintln!(
        "  {rows} rows, {:.0} MB in {elapsed:.2}s",
        bytes as f64 / 1e6
    );
    Ok(rows as f64 / elapsed)
}

/// Events/s of `store.subscribe(None)` until it has delivered the whole log.
async fn subscription_rate(url: &str, total: u64) -> anyhow::Result<f64> {
    let store = Arc::new(PgEventStore::connect(url, 4)?);
    let started = Instant::now();
    let mut subscription = store.clone().subscribe(None);
    let mut seen = 0u64;
    let mut last: Option<Position> = None;
    while seen < total {
        let event = subscription
            .next()
            .await
            .context("the subscription ended")?
            .context("subscription")?;
        if last.is_some_and(|l| event.position <= l) {
            bail!("the subscription went backwards at {}", event.position);
        }
        last = Some(event.position);
        seen += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    eprintln!("  {seen} events in {elapsed:.2}s");
    Ok(seen as f64 / elapsed)
}

/// Measures the maximum append rate, then runs a live `event_stats` projector in a child
/// process while appending at half that rate, and measures for every append the time from its
/// return until the projection's checkpoint has passed it.
async fn live_lag(
    database: &BenchDatabase,
    client: &tokio_postgres::Client,
    args: &Args,
) -> anyhow::Result<Vec<Figure>> {
    db::checkpoint(client).await?;
    eprintln!(
        "maximum append rate, {} writers, {}s…",
        args.writers, args.max_seconds
    );
    let max = append::appends(
        &database.url,
        args.writers,
        1,
        Duration::from_secs(args.max_seconds),
    )
    .await?
    .events_per_second();
    let rate = max / 2.0;
    let mut figures = vec![Figure::rate(
        format!("append max, 1 event, {} writers", args.writers),
        max,
        None,
    )];

    let generation = database.live_generation("event_stats").await?;
    let checkpoint_name = projector::checkpoint_name("event_stats", generation);
    let poll = db::connect(&database.url).await?;
    let statement = poll
        .prepare("SELECT commit_position, prepare_position FROM checkpoints WHERE name = $1")
        .await?;
    let checkpoint = async || -> anyhow::Result<Position> {
        let row = poll.query_one(&statement, &[&checkpoint_name]).await?;
        Ok(Position::new(
            u64::try_from(row.try_get::<_, i64>(0)?)?,
            u64::try_from(row.try_get::<_, i64>(1)?)?,
        ))
    };

    let mut projector = children::spawn(&database.url, "project-child", true)?;
    let stdin = projector.stdin.take();
    let store = Arc::new(PgEventStore::connect(&database.url, args.writers + 2)?);

    // The projector is live once it has applied an event appended now.
    eprintln!("live projector catching up…");
    let probe = store
        .append(
            &format!("contact-{}", Uuid::new_v4()),
            ExpectedVersion::NoStream,
            vec![NewEvent::new(
                data::org(0),
                "ContactCreated",
                data::contact(0, Uuid::new_v4()),
            )],
        )
        .await?;
    let deadline = Instant::now() + Duration::from_secs(300);
    while checkpoint().await? < probe.position {
        if Instant::now() > deadline {
            bail!("the live projector did not catch up within 5 minutes");
        }
        if let Some(status) = projector.try_wait()? {
            bail!("the live projector exited: {status}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    db::checkpoint(client).await?;
    eprintln!(
        "live lag at {rate:.0} events/s for {}s (after {}s unmeasured)…",
        args.lag_seconds,
        LAG_WARM_UP.as_secs()
    );
    let (appended, mut returns) = mpsc::unbounded_channel();
    let warm_up = Instant::now() + Duration::from_millis(50);
    let start = warm_up + LAG_WARM_UP;
    let end = start + Duration::from_secs(args.lag_seconds);
    let interval = Duration::from_secs_f64(args.writers as f64 / rate);
    let writers: Vec<_> = (0..args.writers)
        .map(|writer| {
            let store = store.clone();
            let appended = appended.clone();
            // Staggered so the writers' appends spread evenly over each interval.
            let first = warm_up + interval.mul_f64(writer as f64 / args.writers as f64);
            tokio::spawn(async move {
                paced_writer(
                    &store,
                    writer as u64,
                    first,
                    interval,
                    (start, end),
                    appended,
                )
                .await
            })
        })
        .collect();
    drop(appended);

    let mut pending: BinaryHeap<Reverse<(Position, Instant)>> = BinaryHeap::new();
    let mut lag = histogram()?;
    // The worst lag of each second of the load, to tell a steady lag from a few stalls.
    let mut worst_by_second = vec![Duration::ZERO; usize::try_from(args.lag_seconds)? + 1];
    let mut ticker = tokio::time::interval(POLL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut writers_done = false;
    loop {
        ticker.tick().await;
        let position = checkpoint().await?;
        let seen = Instant::now();
        // Appends that returned before the checkpoint was seen; later ones wait for the next poll.
        loop {
            match returns.try_recv() {
                Ok(item) => pending.push(Reverse(item)),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    writers_done = true;
                    break;
                }
            }
        }
        while let Some(Reverse((appended_at, returned))) = pending.peek().copied()
            && appended_at <= position
        {
            pending.pop();
            if returned < start {
                continue;
            }
            let this = seen.saturating_duration_since(returned);
            lag.saturating_record(micros(this));
            let second = usize::try_from(returned.saturating_duration_since(start).as_secs())?;
            if let Some(worst) = worst_by_second.get_mut(second) {
                *worst = (*worst).max(this);
            }
        }
        if writers_done && pending.is_empty() {
            break;
        }
        if Instant::now() > end + Duration::from_secs(60) {
            bail!(
                "the live projector is over a minute behind: {} appends not applied",
                pending.len()
            );
        }
        if let Some(status) = projector.try_wait()? {
            bail!("the live projector exited: {status}");
        }
    }
    let mut sent = 0;
    for writer in writers {
        sent += writer.await??;
    }
    drop(stdin);
    let live = tokio::time::timeout(
        Duration::from_secs(30),
        children::result(projector, "live projector"),
    )
    .await
    .context("the live projector did not stop")??;

    let achieved = sent as f64 / (args.lag_seconds as f64);
    eprintln!(
        "  {sent} appends ({achieved:.0}/s), lag {}",
        Percentiles::from_micros(&lag)
    );
    let worst: Vec<String> = worst_by_second
        .iter()
        .map(|w| format!("{:.0}", w.as_secs_f64() * 1000.0))
        .collect();
    eprintln!("  worst lag of each second (ms): {}", worst.join(" "));
    figures.push(Figure::value(
        "  steady load (half of max)",
        achieved,
        format!("{}/s for {}s", human(achieved), args.lag_seconds),
        "per_second",
    ));
    figures.push(
        Figure::latency(
            "live lag append → event_stats checkpoint",
            Percentiles::from_micros(&lag),
            None,
        )
        .target(Target::AtMost(100.0)),
    );
    figures.push(memory("  projector peak memory (live)", &live));
    Ok(figures)
}

/// Appends one event every `interval` from `first` until `end`, on schedule (a late append does
/// not push the later ones back), reporting each position and the moment the append returned.
/// Returns how many appends were due in the measured window `start..end`.
async fn paced_writer(
    store: &PgEventStore,
    writer: u64,
    first: Instant,
    interval: Duration,
    (start, end): (Instant, Instant),
    appended: mpsc::UnboundedSender<(Position, Instant)>,
) -> anyhow::Result<u64> {
    let mut due = first;
    let mut seq = (writer + 1) << 40;
    let mut sent = 0;
    while due < end {
        tokio::time::sleep_until(due.into()).await;
        seq += 1;
        let id = Uuid::new_v4();
        let result = store
            .append(
                &format!("contact-{id}"),
                ExpectedVersion::NoStream,
                vec![NewEvent::new(
                    data::org(seq),
                    "ContactCreated",
                    data::contact(seq, id),
                )],
            )
            .await?;
        let _ = appended.send((result.position, Instant::now()));
        if due >= start {
            sent += 1;
        }
        due += interval;
    }
    Ok(sent)
}
