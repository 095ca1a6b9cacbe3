//! `bench append`: appends through the `EventStore` API against pgbench inserting the same rows.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use event_store::postgres::PgEventStore;
use event_store::{EventStore, ExpectedVersion, NewEvent};
use hdrhistogram::Histogram;
use serde_json::json;
use tokio_postgres::config::Host;
use uuid::Uuid;

use crate::data;
use crate::db::{self, BenchDatabase};
use crate::report::{Figure, Percentiles, Target};

/// The pgbench script and the DDL of its table, embedded so the binary runs from anywhere.
const PGBENCH_SCRIPT: &str = include_str!("../pgbench/insert_event.sql");
const PGBENCH_TABLE: &str = include_str!("../pgbench/pgbench_events.sql");

/// Appends that run before each measurement and are not counted: connections get made, plans
/// cached.
const WARM_UP: Duration = Duration::from_millis(500);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Seconds each measurement runs.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Concurrent writers (and pgbench clients) for single-event appends.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    pub clients: Vec<usize>,
    /// Concurrent writers for batch appends.
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    pub batch_writers: Vec<usize>,
    /// Events per batch append.
    #[arg(long, default_value_t = 100)]
    pub batch_size: usize,
    /// The pgbench binary.
    #[arg(long, env = "PGBENCH", default_value = "pgbench")]
    pub pgbench: PathBuf,
}

pub async fn run(database: &BenchDatabase, args: &Args) -> anyhow::Result<Vec<Figure>> {
    anyhow::ensure!(args.seconds > 0, "--seconds must be at least 1");
    anyhow::ensure!(
        args.clients
            .iter()
            .chain(&args.batch_writers)
            .all(|c| *c > 0),
        "client counts must be at least 1"
    );
    let admin = db::connect(&database.url).await?;
    admin
        .batch_execute(PGBENCH_TABLE)
        .await
        .context("creating pgbench_events")?;
    let pgbench = Pgbench::new(
        &args.pgbench,
        &database.url,
        "insert_event.sql",
        PGBENCH_SCRIPT,
    )?;
    let defines = [
        ("org", data::org(0).to_string()),
        ("data", data::contact(1, Uuid::new_v4()).to_string()),
        (
            "metadata",
            serde_json::to_string(&events::Metadata::default())?,
        ),
    ];
    let duration = Duration::from_secs(args.seconds);
    let mut figures = Vec::new();
    let mut single_at_one = None;
    for &clients in &args.clients {
        db::checkpoint(&admin).await?;
        eprintln!("pgbench, {clients} client(s), {}s…", args.seconds);
        let baseline = pgbench.run(clients, args.seconds, &defines).await?;
        db::checkpoint(&admin).await?;
        eprintln!(
            "EventStore appends, {clients} writer(s), {}s…",
            args.seconds
        );
        let ours = appends(&database.url, clients, 1, duration).await?;
        eprintln!(
            "  ours {:.0} ev/s, pgbench {:.0} tx/s",
            ours.events_per_second(),
            baseline.tps
        );
        if clients == 1 {
            single_at_one = Some(ours.events_per_second());
        }
        let mut figure = Figure::rate(
            format!("append 1 event, {}", writers(clients)),
            ours.events_per_second(),
            Some((baseline.tps, "pgbench")),
        );
        if clients >= 8 {
            figure = figure.target(Target::RatioAtLeast(0.7));
        }
        figures.push(figure);
        figures.push(Figure::latency(
            format!("  latency, {}", writers(clients)),
            Percentiles::from_micros(&ours.latency_micros),
            Some((baseline.latency, "pgbench")),
        ));
    }
    for &writers in &args.batch_writers {
        db::checkpoint(&admin).await?;
        eprintln!(
            "EventStore appends of {} events, {writers} writer(s), {}s…",
            args.batch_size, args.seconds
        );
        let ours = appends(&database.url, writers, args.batch_size, duration).await?;
        eprintln!("  ours {:.0} ev/s", ours.events_per_second());
        let name = format!(
            "append {} events, {}",
            args.batch_size,
            self::writers(writers)
        );
        let figure = match (writers, single_at_one) {
            (1, Some(single)) => Figure::rate(
                name,
                ours.events_per_second(),
                Some((single, "1-event appends")),
            )
            .target(Target::RatioAtLeast(8.0)),
            _ => Figure::rate(name, ours.events_per_second(), None),
        };
        figures.push(figure);
        figures.push(Figure::latency(
            format!("  latency per batch, {}", self::writers(writers)),
            Percentiles::from_micros(&ours.latency_micros),
            None,
        ));
    }
    Ok(figures)
}

fn writers(count: usize) -> String {
    match count {
        1 => "1 writer".into(),
        n => format!("{n} writers"),
    }
}

pub fn context(args: &Args, server_version: &str) -> serde_json::Value {
    json!({
        "postgres": server_version,
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "seconds": args.seconds,
    })
}

/// What a timed run of appends did.
pub struct Appended {
    pub events: u64,
    pub elapsed: Duration,
    /// Per append call, in microseconds.
    pub latency_micros: Histogram<u64>,
}

impl Appended {
    pub fn events_per_second(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64()
    }
}

/// `writers` tasks append `batch` events to a new stream each time (`NoStream`), as fast as they
/// can, for `duration` after a warm-up. Each writer has its own pool connection.
pub async fn appends(
    url: &str,
    writers: usize,
    batch: usize,
    duration: Duration,
) -> anyhow::Result<Appended> {
    // Two more than the writers: the store's wake-up notifier takes one now and then.
    let store = Arc::new(PgEventStore::connect(url, writers + 2)?);
    let start = Instant::now() + WARM_UP;
    let end = start + duration;
    let tasks: Vec<_> = (0..writers)
        .map(|writer| {
            let store = store.clone();
            tokio::spawn(async move { writer_loop(&store, writer as u64, batch, start, end).await })
        })
        .collect();
    let mut latency = histogram()?;
    let mut events = 0;
    let mut finished = start;
    for task in tasks {
        let (done, histogram, last) = task.await??;
        events += done;
        latency.add(&histogram)?;
        finished = finished.max(last);
    }
    Ok(Appended {
        events,
        elapsed: finished.saturating_duration_since(start),
        latency_micros: latency,
    })
}

async fn writer_loop(
    store: &PgEventStore,
    writer: u64,
    batch: usize,
    start: Instant,
    end: Instant,
) -> anyhow::Result<(u64, Histogram<u64>, Instant)> {
    let mut latency = histogram()?;
    let mut events = 0u64;
    let mut seq = writer << 40;
    let mut last = start;
    loop {
        let began = Instant::now();
        if began >= end {
            break;
        }
        let id = Uuid::new_v4();
        let new_events = (0..batch)
            .map(|i| {
                seq += 1;
                let org = data::org(seq);
                let event_type = if i == 0 {
                    "ContactCreated"
                } else {
                    "ContactUpdated"
                };
                NewEvent::new(org, event_type, data::contact(seq, id))
            })
            .collect();
        store
            .append(
                &format!("contact-{id}"),
                ExpectedVersion::NoStream,
                new_events,
            )
            .await
            .context("append")?;
        let done = Instant::now();
        if began >= start {
            latency.saturating_record(micros(done - began));
            events += batch as u64;
            last = done;
        }
    }
    Ok((events, latency, last))
}

pub fn histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 3_600_000_000, 3)?)
}

pub fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// pgbench with one script, in a scratch directory of its own (the script and the transaction
/// logs) that is removed when this is dropped.
pub(crate) struct Pgbench {
    program: PathBuf,
    url: String,
    script: PathBuf,
    workdir: PathBuf,
}

/// What pgbench measured.
pub(crate) struct PgbenchResult {
    pub tps: f64,
    pub latency: Percentiles,
}

impl Pgbench {
    /// Writes `script` (pgbench's script language) as `name` to a new scratch directory.
    pub fn new(program: &Path, url: &str, name: &str, script: &str) -> anyhow::Result<Pgbench> {
        let workdir = std::env::temp_dir().join(format!("corbi-bench-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&workdir)?;
        let pgbench = Pgbench {
            program: program.to_owned(),
            url: url.to_owned(),
            script: workdir.join(name),
            workdir,
        };
        std::fs::write(&pgbench.script, script)?;
        Ok(pgbench)
    }

    /// Runs the script with `clients` clients (and `min(clients, 2)` threads) for `seconds`,
    /// `-M prepared`, with the variables `defines` (`-D name=value`), logging a 10 % sample of
    /// the transactions for percentiles. A failed transaction fails the run.
    pub async fn run(
        &self,
        clients: usize,
        seconds: u64,
        defines: &[(&str, String)],
    ) -> anyhow::Result<PgbenchResult> {
        let config = tokio_postgres::Config::from_str(&self.url)?;
        let mut command = tokio::process::Command::new(&self.program);
        command
            .current_dir(&self.workdir)
            .kill_on_drop(true)
            .args(["-n", "-M", "prepared", "-f"])
            .arg(&self.script)
            .args(["-c", &clients.to_string()])
            .args(["-j", &clients.min(2).to_string()])
            .args(["-T", &seconds.to_string()])
            .args([
                "--log",
                "--log-prefix",
                "pgbench_log",
                "--sampling-rate",
                "0.1",
            ]);
        for (name, value) in defines {
            command.arg("-D").arg(format!("{name}={value}"));
        }
        match config.get_hosts().first() {
            Some(Host::Tcp(host)) => {
                command.args(["-h", host]);
            }
            Some(Host::Unix(path)) => {
                command.arg("-h").arg(path);
            }
            None => {}
        }
        if let Some(port) = config.get_ports().first() {
            command.args(["-p", &port.to_string()]);
        }
        if let Some(user) = config.get_user() {
            command.args(["-U", user]);
        }
        if let Some(password) = config.get_password() {
            command.env("PGPASSWORD", String::from_utf8_lossy(password).as_ref());
        }
        command.arg(config.get_dbname().unwrap_or("postgres"));
        // Logs of an earlier run must not mix in.
        remove_logs(&self.workdir)?;
        let output = command
            .output()
            .await
            .with_context(|| format!("running {}", self.program.display()))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            bail!(
                "pgbench failed ({}):\n{stdout}\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let failed = field(&stdout, "number of failed transactions:").unwrap_or(0.0);
        if failed > 0.0 {
            bail!("pgbench had {failed} failed transactions:\n{stdout}");
        }
        let tps = field(&stdout, "tps =")
            .with_context(|| format!("no tps in pgbench's output:\n{stdout}"))?;
        let latency = logged_latencies(&self.workdir)?;
        Ok(PgbenchResult {
            tps,
            latency: Percentiles::from_micros(&latency),
        })
    }
}

impl Drop for Pgbench {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.workdir);
    }
}

/// The number after `label` on the line that starts with it.
fn field(output: &str, label: &str) -> Option<f64> {
    output.lines().find_map(|line| {
        line.trim()
            .strip_prefix(label)?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    })
}

fn pgbench_logs(workdir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut logs = Vec::new();
    for entry in std::fs::read_dir(workdir)? {
        let path = entry?.path();
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("pgbench_log"))
        {
            logs.push(path);
        }
    }
    Ok(logs)
}

fn remove_logs(workdir: &Path) -> anyhow::Result<()> {
    for log in pgbench_logs(workdir)? {
        std::fs::remove_file(log)?;
    }
    Ok(())
}

/// Per-transaction logs: `client_id transaction_no time_us script_no epoch epoch_us`.
fn logged_latencies(workdir: &Path) -> anyhow::Result<Histogram<u64>> {
    let mut latency = histogram()?;
    for log in pgbench_logs(workdir)? {
        let text = std::fs::read_to_string(&log)?;
        for line in text.lines() {
            if let Some(micros) = line.split_whitespace().nth(2).and_then(|t| t.parse().ok()) {
                latency.saturating_record(u64::max(micros, 1));
            }
        }
    }
    anyhow::ensure!(!latency.is_empty(), "pgbench logged no transactions");
    Ok(latency)
}

#[cfg(test)]
mod tests {
    use super::field;

    #[test]
    fn reads_pgbench_output() {
        let output = "number of failed transactions: 0 (0.000%)\nlatency average = 0.271 ms\n\
                      initial connection time = 3.101 ms\n\
                      tps = 3690.123456 (without initial connection time)\n";
        assert_eq!(field(output, "tps ="), Some(3690.123456));
        assert_eq!(field(output, "latency average ="), Some(0.271));
        assert_eq!(field(output, "number of failed transactions:"), Some(0.0));
    }
}
