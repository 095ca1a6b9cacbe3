//! `bench access`: what access control costs. An authenticated `GET /api/v1/me` against an
//! unauthenticated `GET /health` on the same `corbi up`, in the same run, and how many sign-ins
//! (argon2id verifications) one core sustains.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use serde_json::{Value, json};

use crate::db::BenchDatabase;
use crate::load::{self, Load, Window};
use crate::report::{Figure, Target};
use crate::server::{PASSWORD, Server, corbi_binary, sign_up};

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
    let admin = sign_up(&server).await?;
    let authorization = HeaderValue::from_str(&format!("Bearer {}", admin.access_token))
        .context("the access token is not a valid header value")?;

    let health = get(&server.url("/health"), None, args).await?;
    let me = get(&server.url("/api/v1/me"), Some(authorization), args).await?;
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
    let health_latency = health.percentiles();
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
            me.percentiles(),
            Some((health_latency, "/health")),
        ),
        signins.figure(),
    ])
}

/// `GET url` on every connection, again and again; any answer but 200 fails the run.
async fn get(url: &str, authorization: Option<HeaderValue>, args: &Args) -> anyhow::Result<Load> {
    let window = Window {
        connections: args.connections,
        warm_up: Duration::from_secs(args.warm_up_seconds),
        measured: Duration::from_secs(args.seconds),
    };
    let target = url.to_owned();
    let request: load::Request = Arc::new(move |client: &reqwest::Client| {
        let request = client.get(&target);
        match &authorization {
            Some(authorization) => request.header(AUTHORIZATION, authorization.clone()),
            None => request,
        }
    });
    load::closed_loop(&format!("GET {url}"), window, StatusCode::OK, request).await
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
