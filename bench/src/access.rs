//! `bench access`: what access control costs. An authenticated `GET /api/v1/me` against an
//! unauthenticated `GET /health` on the same `corbi up`, in the same run, and how many sign-ins
//! (argon2id verifications) one core sustains.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::append::{histogram, micros};
use crate::db::BenchDatabase;
use crate::report::{Figure, Percentiles, Target};

/// How long `corbi up` may take to answer `/ready` with 200 (it waits for RabbitMQ too).
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the read model may take to show the new organisation on `/api/v1/me`.
const READ_MODEL_TIMEOUT: Duration = Duration::from_secs(10);

const EMAIL: &str = "bench@corbi.local";
const PASSWORD: &str = "bench password 123";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Concurrent connections, each with one request in flight at a time.
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    /// Seconds of unmeasured load before each HTTP measurement.
    #[arg(long, default_value_t = 2)]
    pub warm_up_seconds: u64,
    /// Seconds each HTTP measurement runs.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Seconds of password verifications on one thread.
    #[arg(long, default_value_t = 3)]
    pub verify_seconds: u64,
}

pub fn context(args: &Args, server_version: &str) -> Value {
    json!({
        "postgres": server_version,
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "connections": args.connections,
        "seconds": args.seconds,
    })
}

pub async fn run(database: &BenchDatabase, args: &Args) -> anyhow::Result<Vec<Figure>> {
    anyhow::ensure!(args.seconds > 0, "--seconds must be at least 1");
    anyhow::ensure!(
        args.verify_seconds > 0,
        "--verify-seconds must be at least 1"
    );
    anyhow::ensure!(args.connections > 0, "--connections must be at least 1");
    let corbi = corbi_binary()?;
    let mut server = Server::start(&corbi, &database.url).await?;
    let token = sign_up(&server).await?;
    let authorization = HeaderValue::from_str(&format!("Bearer {token}"))
        .context("the access token is not a valid header value")?;

    let health = load(&server.url("/health"), None, args).await?;
    let me = load(&server.url("/api/v1/me"), Some(authorization), args).await?;
    server.stop().await;

    // After the server is gone, so nothing else wants the core.
    eprintln!(
        "argon2id verifications on one thread, {}s…",
        args.verify_seconds
    );
    let duration = Duration::from_secs(args.verify_seconds);
    let signins = tokio::task::spawn_blocking(move || verifications(duration)).await??;
    eprintln!(
        "  {} verifications in {:.2}s ({})",
        signins.count,
        signins.elapsed.as_secs_f64(),
        signins.parameters
    );

    let connections = args.connections;
    let health_rate = health.requests_per_second();
    let health_latency = Percentiles::from_micros(&health.latency_micros);
    Ok(vec![
        health.rate(format!("GET /health, {connections} connections"), None),
        Figure::latency(
            format!("  latency, {connections} connections"),
            health_latency,
            None,
        ),
        me.rate(
            format!("GET /api/v1/me (bearer), {connections} connections"),
            Some((health_rate, "/health")),
        )
        .target(Target::RatioAtLeast(0.5)),
        Figure::latency(
            format!("  latency, {connections} connections"),
            Percentiles::from_micros(&me.latency_micros),
            Some((health_latency, "/health")),
        ),
        signins.figure(),
    ])
}

/// The release `corbi` beside this binary (cargo puts every binary of a profile in one folder).
fn corbi_binary() -> anyhow::Result<PathBuf> {
    let corbi = std::env::current_exe()
        .context("finding the bench binary")?
        .with_file_name("corbi");
    if !corbi.is_file() {
        bail!(
            "{} is missing: run `cargo build --release -p corbi -p bench` first",
            corbi.display()
        );
    }
    Ok(corbi)
}

/// `corbi up` as a child process on a port of its own, against the bench database. Killed when
/// dropped, so an error or Ctrl-C does not leave it running.
struct Server {
    child: Child,
    base: String,
    /// For the setup requests (the load has clients of its own).
    client: reqwest::Client,
}

impl Server {
    async fn start(corbi: &Path, database_url: &str) -> anyhow::Result<Server> {
        let address = format!("127.0.0.1:{}", free_port()?);
        eprintln!("corbi migrate…");
        let status = corbi_command(corbi, database_url, &address)
            .arg("migrate")
            .status()
            .await
            .with_context(|| format!("running {} migrate", corbi.display()))?;
        anyhow::ensure!(status.success(), "corbi migrate failed ({status})");
        eprintln!("corbi up on {address}…");
        let child = corbi_command(corbi, database_url, &address)
            .arg("up")
            .spawn()
            .with_context(|| format!("starting {} up", corbi.display()))?;
        let mut server = Server {
            child,
            base: format!("http://{address}"),
            client: client()?,
        };
        server.wait_until_ready().await?;
        Ok(server)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn wait_until_ready(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("corbi up exited ({status}) before it was ready; its log is above");
            }
            let answer = match self.client.get(self.url("/ready")).send().await {
                Ok(response) if response.status() == StatusCode::OK => return Ok(()),
                Ok(response) => {
                    let status = response.status();
                    format!("{status}: {}", response.text().await.unwrap_or_default())
                }
                Err(error) => format!("{error:#}"),
            };
            if started.elapsed() > READY_TIMEOUT {
                bail!(
                    "corbi up was not ready within {}s (RabbitMQ is needed too, at AMQP_URL); \
                     last /ready answer: {answer}",
                    READY_TIMEOUT.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn stop(&mut self) {
        if let Err(error) = self.child.kill().await {
            eprintln!("could not stop corbi up: {error}");
        }
    }
}

/// `corbi` with the bench's settings. Every `CORBI_*` of the shell is removed so a run measures
/// the defaults; `AMQP_URL` passes through.
fn corbi_command(corbi: &Path, database_url: &str, address: &str) -> Command {
    let mut command = Command::new(corbi);
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(|n| n.starts_with("CORBI_")) {
            command.env_remove(name);
        }
    }
    command
        .env("DATABASE_URL", database_url)
        .env("CORBI_HTTP_ADDR", address)
        .env("CORBI_LOG", "warn")
        .stdin(Stdio::null())
        // Its log goes with the bench's progress; stdout is kept for `--json`.
        .stdout(std::io::stderr())
        .kill_on_drop(true);
    command
}

/// A port nobody listens on now (the listener is dropped before corbi binds it).
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// A client that keeps at most one idle connection: a worker that has one request in flight at a
/// time then reuses one connection throughout.
fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()?)
}

/// Registers the bench user, creates an organisation, and waits until `/api/v1/me` shows it.
/// Returns the access token.
async fn sign_up(server: &Server) -> anyhow::Result<String> {
    eprintln!("registering {EMAIL} and creating an organisation…");
    let registered = expect(
        server
            .client
            .post(server.url("/api/v1/auth/register"))
            .json(&json!({ "email": EMAIL, "password": PASSWORD, "name": "Bench" }))
            .send()
            .await,
        StatusCode::CREATED,
        "POST /api/v1/auth/register",
    )
    .await?;
    let token = registered["access_token"]
        .as_str()
        .with_context(|| format!("no access_token in the registration's answer: {registered}"))?
        .to_owned();
    let created = expect(
        server
            .client
            .post(server.url("/api/v1/organisations"))
            .bearer_auth(&token)
            .json(&json!({ "name": "Bench org" }))
            .send()
            .await,
        StatusCode::CREATED,
        "POST /api/v1/organisations",
    )
    .await?;
    let organisation = created["organisation_id"]
        .as_str()
        .with_context(|| format!("no organisation_id in the answer: {created}"))?;

    // The read model behind /me is built asynchronously by the projector.
    let started = Instant::now();
    loop {
        let response = server
            .client
            .get(server.url("/api/v1/me"))
            .bearer_auth(&token)
            .send()
            .await
            .context("GET /api/v1/me")?;
        let status = response.status();
        let text = response.text().await.context("reading /api/v1/me")?;
        if status == StatusCode::OK {
            let me: Value = serde_json::from_str(&text)
                .with_context(|| format!("/api/v1/me answered {text:?}"))?;
            if me["organisations"]
                .as_array()
                .is_some_and(|o| !o.is_empty())
            {
                eprintln!(
                    "  organisation {organisation} on /api/v1/me after {:.0} ms",
                    started.elapsed().as_secs_f64() * 1000.0
                );
                return Ok(token);
            }
        }
        if started.elapsed() > READ_MODEL_TIMEOUT {
            bail!(
                "/api/v1/me did not list organisation {organisation} within {}s; last answer \
                 {status}: {text}",
                READ_MODEL_TIMEOUT.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The JSON body of a response that must have `status`.
async fn expect(
    response: reqwest::Result<reqwest::Response>,
    status: StatusCode,
    what: &str,
) -> anyhow::Result<Value> {
    let response = response.with_context(|| what.to_owned())?;
    let actual = response.status();
    let text = response
        .text()
        .await
        .with_context(|| format!("reading the answer to {what}"))?;
    if actual != status {
        bail!("{what} answered {actual} (expected {status}): {text}");
    }
    serde_json::from_str(&text).with_context(|| format!("{what} answered {text:?}"))
}

/// What a closed-loop load did in its measured window.
struct Load {
    requests: u64,
    elapsed: Duration,
    /// Per request, in microseconds.
    latency_micros: Histogram<u64>,
}

impl Load {
    fn requests_per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    /// Requests/s as a figure, with the counts in its JSON details.
    fn rate(&self, name: String, baseline: Option<(f64, &str)>) -> Figure {
        let mut figure = Figure::rate(name, self.requests_per_second(), baseline);
        figure.extra = json!({
            "requests": self.requests,
            "elapsed_secs": self.elapsed.as_secs_f64(),
        });
        figure
    }
}

/// One task per connection sends `GET url` and waits for the answer, again and again, for the
/// warm-up and then the measured window. Any answer but 200 fails the run.
async fn load(url: &str, authorization: Option<HeaderValue>, args: &Args) -> anyhow::Result<Load> {
    eprintln!(
        "GET {url}, {} connections, {}s warm-up + {}s…",
        args.connections, args.warm_up_seconds, args.seconds
    );
    let start = Instant::now() + Duration::from_secs(args.warm_up_seconds);
    let end = start + Duration::from_secs(args.seconds);
    let mut tasks = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        let client = client()?;
        let url = url.to_owned();
        let authorization = authorization.clone();
        tasks.push(tokio::spawn(async move {
            worker(&client, &url, authorization.as_ref(), start, end).await
        }));
    }
    let mut latency = histogram()?;
    let mut requests = 0;
    let mut finished = start;
    let mut failed = 0;
    let mut first_failure = None;
    for task in tasks {
        let done = task.await??;
        requests += done.requests;
        latency.add(&done.latency)?;
        finished = finished.max(done.last);
        failed += done.failed;
        first_failure = first_failure.or(done.first_failure);
    }
    if let Some(failure) = first_failure {
        bail!("GET {url}: {failed} answers were not 200, the first {failure}");
    }
    anyhow::ensure!(
        requests > 0,
        "GET {url}: no request completed in the window"
    );
    let load = Load {
        requests,
        elapsed: finished.saturating_duration_since(start),
        latency_micros: latency,
    };
    eprintln!(
        "  {:.0} requests/s, {}",
        load.requests_per_second(),
        Percentiles::from_micros(&load.latency_micros)
    );
    Ok(load)
}

struct Worker {
    requests: u64,
    latency: Histogram<u64>,
    last: Instant,
    failed: u64,
    first_failure: Option<String>,
}

async fn worker(
    client: &reqwest::Client,
    url: &str,
    authorization: Option<&HeaderValue>,
    start: Instant,
    end: Instant,
) -> anyhow::Result<Worker> {
    let mut done = Worker {
        requests: 0,
        latency: histogram()?,
        last: start,
        failed: 0,
        first_failure: None,
    };
    loop {
        let began = Instant::now();
        if began >= end {
            break;
        }
        let mut request = client.get(url);
        if let Some(authorization) = authorization {
            request = request.header(AUTHORIZATION, authorization.clone());
        }
        let response = request.send().await.with_context(|| format!("GET {url}"))?;
        let status = response.status();
        // Read to the end, so the connection is free for the next request.
        let body = response
            .bytes()
            .await
            .with_context(|| format!("reading GET {url}"))?;
        let finished = Instant::now();
        if status != StatusCode::OK {
            done.failed += 1;
            done.first_failure
                .get_or_insert_with(|| format!("{status}: {}", String::from_utf8_lossy(&body)));
        } else if began >= start {
            done.latency.saturating_record(micros(finished - began));
            done.requests += 1;
            done.last = finished;
        }
    }
    Ok(done)
}

/// Password verifications one thread did.
struct Verifications {
    count: u64,
    elapsed: Duration,
    /// The argon2 parameters of the hash, e.g. `m=19456,t=2,p=1`.
    parameters: String,
}

impl Verifications {
    fn figure(&self) -> Figure {
        let rate = self.count as f64 / self.elapsed.as_secs_f64();
        let mut figure = Figure::value(
            "sign-ins (argon2id verify), 1 core",
            rate,
            format!(
                "{rate:.1}/s ({:.1} ms each)",
                self.elapsed.as_secs_f64() * 1000.0 / self.count as f64
            ),
            "per_second",
        );
        figure.extra = json!({
            "verifications": self.count,
            "elapsed_secs": self.elapsed.as_secs_f64(),
            "argon2": self.parameters,
        });
        figure
    }
}

/// Hashes one password, then verifies it for `duration` on the calling thread, as a sign-in
/// does.
fn verifications(duration: Duration) -> anyhow::Result<Verifications> {
    let hash = service::auth::password::hash(PASSWORD)?;
    let parameters = hash.split('$').nth(3).unwrap_or_default().to_owned();
    // One unmeasured verification, so the first allocation of the memory blocks does not count.
    anyhow::ensure!(
        service::auth::password::verify(PASSWORD, &hash),
        "the password does not verify against its own hash"
    );
    let started = Instant::now();
    let mut count = 0;
    while count == 0 || started.elapsed() < duration {
        anyhow::ensure!(
            service::auth::password::verify(PASSWORD, &hash),
            "the password does not verify against its own hash"
        );
        count += 1;
    }
    Ok(Verifications {
        count,
        elapsed: started.elapsed(),
        parameters,
    })
}
