//! Importing contacts: a CSV file of `--import-rows` (100,000) new contacts uploaded to `POST
//! /api/v1/contacts/imports` of a `corbi up` child, timed from the upload until the job reports
//! every row created and the contacts read model shows them all. It runs in a database of its
//! own, so the other figures' log and read model stay as they were.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Args, names};
use crate::db::{self, BenchDatabase};
use crate::report::{Figure, Target};
use crate::server::{Server, expect, sign_up};

/// The most data rows `POST /api/v1/contacts/imports` takes in one file.
pub const MAX_ROWS: u64 = 100_000;

/// The figure: 100,000 rows imported and queryable within 60 s.
const TARGET_ROWS: f64 = 100_000.0;
const TARGET_SECONDS: f64 = 60.0;

/// Every imported contact has it, so the read model's imported contacts are counted by it.
const TAG: &str = "bench-import";

/// How often the job's status is read, and how often progress goes to stderr.
const POLL: Duration = Duration::from_millis(100);
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// A job that reports no new row for this long has stopped (its lease is 60 s).
const STALLED: Duration = Duration::from_secs(120);
/// The read model must show every row within this long of the upload.
const GIVE_UP: Duration = Duration::from_secs(900);

/// `creations` is the contact creations' requests/s of this run, the rows/s line's baseline.
pub async fn run(
    corbi: &Path,
    database: &BenchDatabase,
    args: &Args,
    creations: Option<f64>,
) -> anyhow::Result<Vec<Figure>> {
    let rows = args.import_rows;
    let client = db::connect(&database.url).await?;
    let mut server = Server::start(corbi, &database.url).await?;
    let admin = sign_up(&server).await?;
    let authorization = HeaderValue::from_str(&format!("Bearer {}", admin.access_token))
        .context("the access token is not a valid header value")?;
    let csv = file(rows);
    eprintln!(
        "import of {rows} rows ({:.1} MB of CSV)…",
        csv.len() as f64 / 1e6
    );
    db::checkpoint(&client).await?;
    let cpu_before = Cpu::now(server.pid());

    let started = Instant::now();
    let upload = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(300))
        .build()?
        .post(server.url("/api/v1/contacts/imports"))
        .header(AUTHORIZATION, authorization.clone())
        .header(CONTENT_TYPE, "text/csv")
        .body(csv)
        .send()
        .await;
    let queued = expect(
        upload,
        StatusCode::ACCEPTED,
        "POST /api/v1/contacts/imports",
    )
    .await?;
    let uploaded = started.elapsed();
    anyhow::ensure!(
        queued["rows_total"].as_u64() == Some(rows),
        "the import found {} rows in a file of {rows}: {queued}",
        queued["rows_total"]
    );
    let progress = queued["progress"]
        .as_str()
        .with_context(|| format!("no progress link in the answer: {queued}"))?
        .to_owned();
    let import_id: Uuid = queued["import_id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .with_context(|| format!("no import_id in the answer: {queued}"))?;
    eprintln!("  queued in {:.2}s", uploaded.as_secs_f64());

    let job = Job {
        server: &server,
        client: &client,
        authorization: &authorization,
        org_id: admin.org_id,
    };
    let mut unavailable = 0;
    let outcome = job.follow(&progress, rows, started, &mut unavailable).await;
    let elapsed = started.elapsed();
    let cpu = cpu_before
        .zip(Cpu::now(server.pid()))
        .map(|(a, b)| b.since(&a));
    server.stop().await;

    // How long the job waited to be claimed and ran, by the job's own clock, and how many
    // runs it took (a run interrupted by an error goes back to the queue).
    let row = client
        .query_one(
            "SELECT extract(epoch FROM started_at - created_at)::float8,
                    extract(epoch FROM finished_at - started_at)::float8, attempts
             FROM contact_imports WHERE import_id = $1",
            &[&import_id],
        )
        .await
        .context("reading the import's times")?;
    let (waited, ran): (Option<f64>, Option<f64>) = (row.try_get(0)?, row.try_get(1)?);
    let runs: i32 = row.try_get(2)?;
    if runs > 1 || unavailable > 0 {
        eprintln!(
            "  the job ran {runs} times (interrupted {} times), and {unavailable} status reads \
             answered 503",
            runs - 1
        );
    }
    if let Some(cpu) = &cpu {
        eprintln!("  CPU over the import, in cores of {}: {cpu}", cpu.cores);
    }
    let name = format!("import {rows} rows (CSV upload → all queryable)");
    let target = Target::AtMost(TARGET_SECONDS * rows as f64 / TARGET_ROWS);
    let mut extra = json!({
        "rows": rows,
        "upload_secs": uploaded.as_secs_f64(),
        "claimed_after_secs": waited,
        "job_running_secs": ran,
        "job_runs": runs,
        "status_reads_unavailable": unavailable,
        "cpu_cores": cpu.as_ref().map(CpuShare::to_json),
    });
    let followed = match outcome {
        Ok(followed) => followed,
        // The import is what is measured: its failure is a missed figure, not a broken bench.
        Err(error) => {
            eprintln!(
                "  the import failed after {:.1}s: {error:#}",
                elapsed.as_secs_f64()
            );
            extra["error"] = json!(format!("{error:#}"));
            extra["failed_after_secs"] = json!(elapsed.as_secs_f64());
            let mut failed =
                Figure::value(name, f64::INFINITY, "failed".into(), "seconds").target(target);
            failed.extra = extra;
            return Ok(vec![failed]);
        }
    };
    let seconds = elapsed.as_secs_f64();
    let rate = rows as f64 / seconds;
    eprintln!(
        "  {seconds:.1}s from the upload until all {rows} are queryable: {rate:.0} rows/s \
         (queued after {:.2}s, claimed {:.2}s later, ran {:.1}s, reported done after {:.1}s)",
        uploaded.as_secs_f64(),
        waited.unwrap_or(f64::NAN),
        ran.unwrap_or(f64::NAN),
        followed.reported.as_secs_f64()
    );
    extra["reported_done_secs"] = json!(followed.reported.as_secs_f64());
    extra["queryable_secs"] = json!(seconds);
    extra["consistency_token_sufficed"] = json!(followed.token_sufficed);
    let mut figure =
        Figure::value(name, seconds, format!("{seconds:.1} s"), "seconds").target(target);
    figure.extra = extra;
    let mut per_second = Figure::rate(
        "  rows/s",
        rate,
        creations.map(|c| (c, "POST /api/v1/contacts")),
    );
    per_second.extra = json!({ "rows": rows, "elapsed_secs": seconds });
    Ok(vec![figure, per_second])
}

/// How a finished import went, past its upload.
struct Followed {
    /// Until the job reported `done`.
    reported: Duration,
    /// Whether the read model showed every row once it had reached the job's consistency token.
    token_sufficed: bool,
}

/// The file: `full_name,email,whatsapp,tags`, every email and number new. Names are drawn from
/// the search's lists (they repeat, as names do); the numbers are Portuguese mobiles starting
/// +35193, which neither the creations (+35196) nor the phone search (+35191) use.
fn file(rows: u64) -> Vec<u8> {
    let first = names::words(names::FIRST);
    let last = names::words(names::LAST);
    let mut csv = String::with_capacity(usize::try_from(rows).unwrap_or(0) * 80);
    csv.push_str("full_name,email,whatsapp,tags\n");
    for n in 0..rows {
        // Fibonacci hashing, so neighbouring rows get unrelated names.
        let hash = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let given = first[(hash >> 40) as usize % first.len()];
        let family = last[(hash >> 16) as usize % last.len()];
        csv.push_str(&format!(
            "{given} {family},i{n}@import.bench.example,+35193{n:07},{TAG}\n"
        ));
    }
    csv.into_bytes()
}

/// An import job seen through the API (and the read model through SQL).
struct Job<'a> {
    server: &'a Server,
    client: &'a tokio_postgres::Client,
    authorization: &'a HeaderValue,
    org_id: Uuid,
}

impl Job<'_> {
    async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Result<reqwest::Response> {
        let mut request = self
            .server
            .client()
            .get(self.server.url(path))
            .header(AUTHORIZATION, self.authorization.clone());
        if let Some(token) = token {
            request = request.header("X-Consistency-Token", token);
        }
        request.send().await
    }

    /// Waits until the job is done and every row is queryable; fails unless every row was
    /// created. Counts the status reads that answered 503 in `unavailable`.
    async fn follow(
        &self,
        progress: &str,
        rows: u64,
        started: Instant,
        unavailable: &mut u32,
    ) -> anyhow::Result<Followed> {
        let done = self.until_done(progress, started, unavailable).await?;
        let reported = started.elapsed();
        self.check_report(progress, &done, rows).await?;
        let token = done["consistency_token"]
            .as_str()
            .with_context(|| format!("a finished import without a consistency token: {done}"))?;
        let token_sufficed = self.until_queryable(token, rows, started).await?;
        Ok(Followed {
            reported,
            token_sufficed,
        })
    }

    /// The job's status once it is `done`, its progress (and the read model's) on stderr. A
    /// status read answered 503 (the server's pool was exhausted) is counted in `unavailable`
    /// and asked again, as a client would.
    async fn until_done(
        &self,
        progress: &str,
        started: Instant,
        unavailable: &mut u32,
    ) -> anyhow::Result<Value> {
        let mut last_print = (Instant::now(), 0);
        let (mut processed, mut progressed) = (0, Instant::now());
        let mut state = String::from("queued");
        loop {
            let response = self
                .get(progress, None)
                .await
                .with_context(|| format!("GET {progress}"))?;
            if response.status() == StatusCode::SERVICE_UNAVAILABLE {
                *unavailable += 1;
                let text = response.text().await.unwrap_or_default();
                eprintln!(
                    "  {:5.1}s: GET {progress} answered 503: {text}",
                    started.elapsed().as_secs_f64()
                );
            } else {
                let status =
                    expect(Ok(response), StatusCode::OK, &format!("GET {progress}")).await?;
                let now = status["counts"]["processed"].as_u64().unwrap_or(0);
                if now > processed {
                    (processed, progressed) = (now, Instant::now());
                }
                match status["status"].as_str() {
                    Some("done") => return Ok(status),
                    Some("failed") => bail!("the job ended `failed`: {status}"),
                    other => state = other.unwrap_or("?").to_owned(),
                }
            }
            if progressed.elapsed() > STALLED {
                bail!(
                    "the import reported no row for {}s (at {processed})",
                    STALLED.as_secs()
                );
            }
            let (at, before) = last_print;
            if at.elapsed() >= PROGRESS_EVERY {
                let visible = self.visible().await?;
                let rate = (processed - before) as f64 / at.elapsed().as_secs_f64();
                last_print = (Instant::now(), processed);
                eprintln!(
                    "  {:5.1}s: {state}, {processed} rows reported (~{rate:.0}/s), {visible} in \
                     the read model",
                    started.elapsed().as_secs_f64(),
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Fails the run unless every row was created: the counts, and a few rows of the report
    /// that were not.
    async fn check_report(&self, progress: &str, done: &Value, rows: u64) -> anyhow::Result<()> {
        let counts = &done["counts"];
        let expected = json!({
            "total": rows, "processed": rows, "created": rows, "updated": 0,
            "skipped_duplicate": 0, "rejected": 0, "valid": 0,
        });
        if *counts == expected {
            return Ok(());
        }
        let path = format!("{progress}/rows?outcome=rejected&limit=5");
        let rejected = expect(self.get(&path, None).await, StatusCode::OK, &path).await?;
        bail!(
            "the import did not create every row: counts {counts}, expected {expected}; \
             rejected rows: {}",
            rejected["items"]
        )
    }

    /// Waits until `GET /api/v1/contacts` with the job's consistency token answers (the
    /// contacts projection has passed the job's last write), then until the read model holds
    /// every row; answers whether the token alone sufficed.
    async fn until_queryable(
        &self,
        token: &str,
        rows: u64,
        started: Instant,
    ) -> anyhow::Result<bool> {
        let path = format!("/api/v1/contacts?tag={TAG}&limit=1");
        loop {
            let response = self
                .get(&path, Some(token))
                .await
                .with_context(|| format!("GET {path}"))?;
            // 503: the projection has not reached the token within the server's wait.
            if response.status() == StatusCode::SERVICE_UNAVAILABLE {
                anyhow::ensure!(
                    started.elapsed() < GIVE_UP,
                    "the contacts read model did not reach the import's consistency token \
                     {token} within {}s of the upload",
                    GIVE_UP.as_secs()
                );
            } else {
                let page = expect(Ok(response), StatusCode::OK, &format!("GET {path}")).await?;
                anyhow::ensure!(
                    page["items"].as_array().is_some_and(|i| !i.is_empty()),
                    "GET {path} found no imported contact: {page}"
                );
                break;
            }
        }
        let mut visible = self.visible().await?;
        if visible == rows {
            return Ok(true);
        }
        eprintln!(
            "  the read model had reached the job's consistency token {token} with only \
             {visible} of the {rows} contacts; waiting for the rest…"
        );
        while visible < rows {
            if started.elapsed() > GIVE_UP {
                bail!("the read model shows {visible} of the {rows} imported contacts");
            }
            tokio::time::sleep(POLL).await;
            visible = self.visible().await?;
        }
        Ok(false)
    }

    /// The imported contacts the read model (the view the API reads) shows.
    async fn visible(&self) -> anyhow::Result<u64> {
        let row = self
            .client
            .query_one(
                "SELECT count(*) FROM rm_contacts WHERE org_id = $1 AND tags @> ARRAY[$2]",
                &[&self.org_id, &TAG],
            )
            .await
            .context("counting the imported contacts")?;
        Ok(u64::try_from(row.try_get::<_, i64>(0)?)?)
    }
}

/// CPU ticks from `/proc` (Linux): the machine's, corbi's and Postgres's processes'.
struct Cpu {
    total: u64,
    idle: u64,
    corbi: u64,
    postgres: u64,
    cores: usize,
}

/// Shares of the machine over an interval, in cores.
struct CpuShare {
    cores: usize,
    corbi: f64,
    postgres: f64,
    other: f64,
    idle: f64,
}

impl Cpu {
    fn now(corbi: Option<u32>) -> Option<Cpu> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let line = stat.lines().next()?.strip_prefix("cpu ")?;
        let ticks: Vec<u64> = line
            .split_whitespace()
            .filter_map(|t| t.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal (guest time is within user).
        let total = ticks.iter().take(8).sum();
        let idle = ticks.get(3)? + ticks.get(4)?;
        let mut postgres = 0;
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            if let Some((name, ticks)) = process_ticks(&entry.path())
                && name == "postgres"
            {
                postgres += ticks;
            }
        }
        let corbi = process_ticks(&Path::new("/proc").join(corbi?.to_string()))?.1;
        Some(Cpu {
            total,
            idle,
            corbi,
            postgres,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        })
    }

    /// What `self` adds to `before`. Postgres backends that exited in between are missed.
    fn since(&self, before: &Cpu) -> CpuShare {
        let total = self.total.saturating_sub(before.total).max(1) as f64;
        let cores = self.cores as f64;
        let share = |ticks: u64| ticks as f64 / total * cores;
        let busy = self.total.saturating_sub(self.idle) as f64
            - before.total.saturating_sub(before.idle) as f64;
        let corbi = share(self.corbi.saturating_sub(before.corbi));
        let postgres = share(self.postgres.saturating_sub(before.postgres));
        CpuShare {
            cores: self.cores,
            corbi,
            postgres,
            other: (busy / total * cores - corbi - postgres).max(0.0),
            idle: share(self.idle.saturating_sub(before.idle)),
        }
    }
}

impl CpuShare {
    fn to_json(&self) -> Value {
        json!({
            "corbi": self.corbi,
            "postgres": self.postgres,
            "other": self.other,
            "idle": self.idle,
        })
    }
}

impl std::fmt::Display for CpuShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "corbi {:.2}, postgres {:.2}, the rest (the bench, other work) {:.2}, idle {:.2}",
            self.corbi, self.postgres, self.other, self.idle
        )
    }
}

/// A process's command name and user + system ticks, from `/proc/<pid>/stat`.
fn process_ticks(dir: &Path) -> Option<(String, u64)> {
    let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
    // The name is in parentheses and may hold spaces; the fields after it are plain.
    let (head, tail) = stat.rsplit_once(')')?;
    let name = head.split_once('(')?.1.to_owned();
    let fields: Vec<&str> = tail.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((name, utime + stime))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_has_unique_valid_rows() {
        let csv = String::from_utf8(file(1_000)).unwrap_or_default();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 1_001);
        assert_eq!(lines[0], "full_name,email,whatsapp,tags");
        let phones: std::collections::HashSet<&str> = lines[1..]
            .iter()
            .filter_map(|l| l.split(',').nth(2))
            .collect();
        assert_eq!(phones.len(), 1_000);
        assert!(
            phones
                .iter()
                .all(|p| p.len() == 13 && p.starts_with("+35193"))
        );
        assert_eq!(lines[1].split(',').count(), 4, "{}", lines[1]);
    }
}
