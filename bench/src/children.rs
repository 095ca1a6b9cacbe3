//! The projector runs in child processes of the benchmark (hidden subcommands), so its memory is
//! its own and its wake-ups cross a process boundary, as they do in production.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use event_store::postgres::PgEventStore;
use projector::{EventStats, Progress, ProjectorConfig};
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

async fn connect(url: &str) -> anyhow::Result<(Arc<PgEventStore>, PgPool)> {
    let store = Arc::new(PgEventStore::connect(url, 4)?);
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(30))
        .connect(url)
        .await?;
    Ok((store, pool))
}

/// `bench replay-child`: rebuilds `event_stats` from the whole log and prints what it did and
/// its peak memory as JSON.
pub async fn replay(url: &str) -> anyhow::Result<()> {
    let start_rss_kb = proc_status_kb("VmRSS");
    let (store, pool) = connect(url).await?;
    let replayed = projector::replay(store, pool.clone(), &EventStats, Progress::Quiet).await?;
    pool.close().await;
    println!(
        "{}",
        json!({
            "events": replayed.events,
            "elapsed_secs": replayed.elapsed.as_secs_f64(),
            "generation": replayed.generation,
            "peak_rss_kb": proc_status_kb("VmHWM"),
            "start_rss_kb": start_rss_kb,
        })
    );
    Ok(())
}

/// `bench project-child`: runs the live `event_stats` projector until its stdin closes, then
/// prints its peak memory as JSON.
pub async fn project(url: &str) -> anyhow::Result<()> {
    let (store, pool) = connect(url).await?;
    let (shutdown, shutdown_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(projector::run_projection(
        store,
        pool.clone(),
        Arc::new(EventStats),
        ProjectorConfig::default(),
        shutdown_rx,
    ));
    let mut ignored = Vec::new();
    tokio::io::stdin().read_to_end(&mut ignored).await?;
    shutdown.send_replace(true);
    task.await?;
    pool.close().await;
    println!("{}", json!({ "peak_rss_kb": proc_status_kb("VmHWM") }));
    Ok(())
}

/// Starts this binary's `subcommand` against the database at `url`.
pub fn spawn(url: &str, subcommand: &str, stdin: bool) -> anyhow::Result<Child> {
    let exe = std::env::current_exe().context("finding the bench binary")?;
    Command::new(exe)
        .arg("--database-url")
        .arg(url)
        .arg(subcommand)
        .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting bench {subcommand}"))
}

/// Waits for a child and reads the JSON line it printed.
pub async fn result(child: Child, what: &str) -> anyhow::Result<Value> {
    let output = child.wait_with_output().await?;
    if !output.status.success() {
        bail!(
            "{what} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "{what} printed {:?}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// A `kB` field of `/proc/self/status` (`VmRSS`, `VmHWM`…).
pub fn proc_status_kb(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|line| {
        line.strip_prefix(field)?
            .strip_prefix(':')?
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse()
            .ok()
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_its_own_peak_memory() {
        let peak = super::proc_status_kb("VmHWM").unwrap_or(0);
        assert!(peak > 0);
        assert!(super::proc_status_kb("NoSuchField").is_none());
    }
}
