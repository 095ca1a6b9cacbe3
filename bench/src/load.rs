//! A closed-loop HTTP load: a fixed number of connections, each with one request in flight at a
//! time, for a warm-up and then a measured window.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use reqwest::{RequestBuilder, StatusCode};
use serde_json::json;

use crate::append::{histogram, micros};
use crate::report::{Figure, Percentiles};
use crate::server;

/// How many connections, for how long.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub connections: usize,
    /// Unmeasured, before the measured window.
    pub warm_up: Duration,
    pub measured: Duration,
}

/// Builds the next request on a worker's client (a fresh body, a new id… each time).
pub type Request = Arc<dyn Fn(&reqwest::Client) -> RequestBuilder + Send + Sync>;

/// What a closed-loop load did in its measured window.
pub struct Load {
    pub requests: u64,
    pub elapsed: Duration,
    /// Per request, in microseconds.
    pub latency_micros: Histogram<u64>,
}

impl Load {
    pub fn requests_per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    pub fn percentiles(&self) -> Percentiles {
        Percentiles::from_micros(&self.latency_micros)
    }

    /// Requests/s as a figure, with the counts in its JSON details.
    pub fn rate(&self, name: String, baseline: Option<(f64, &str)>) -> Figure {
        let mut figure = Figure::rate(name, self.requests_per_second(), baseline);
        figure.extra = json!({
            "requests": self.requests,
            "elapsed_secs": self.elapsed.as_secs_f64(),
        });
        figure
    }
}

/// One task per connection, each with its own client (one keep-alive connection), sends
/// `request` and reads the whole answer, again and again, for the warm-up and then the measured
/// window. Any answer but `expected` (warm-up included) or any transport error fails the run,
/// naming the first bad answer. `what` names the load in the progress and the errors.
pub async fn closed_loop(
    what: &str,
    window: Window,
    expected: StatusCode,
    request: Request,
) -> anyhow::Result<Load> {
    eprintln!(
        "{what}, {} connections, {}s warm-up + {}s…",
        window.connections,
        window.warm_up.as_secs_f64(),
        window.measured.as_secs_f64()
    );
    let start = Instant::now() + window.warm_up;
    let end = start + window.measured;
    let mut tasks = Vec::with_capacity(window.connections);
    for _ in 0..window.connections {
        let client = server::client()?;
        let request = request.clone();
        let what = what.to_owned();
        tasks.push(tokio::spawn(async move {
            worker(&client, &what, &*request, expected, start, end).await
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
        bail!("{what}: {failed} answers were not {expected}, the first {failure}");
    }
    anyhow::ensure!(requests > 0, "{what}: no request completed in the window");
    let load = Load {
        requests,
        elapsed: finished.saturating_duration_since(start),
        latency_micros: latency,
    };
    eprintln!(
        "  {:.0} requests/s, {}",
        load.requests_per_second(),
        load.percentiles()
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
    what: &str,
    request: &(dyn Fn(&reqwest::Client) -> RequestBuilder + Send + Sync),
    expected: StatusCode,
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
        let response = request(client)
            .send()
            .await
            .with_context(|| what.to_owned())?;
        let status = response.status();
        // Read to the end, so the connection is free for the next request.
        let body = response
            .bytes()
            .await
            .with_context(|| format!("reading the answer to {what}"))?;
        let finished = Instant::now();
        if status != expected {
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
