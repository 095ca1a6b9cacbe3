//! `GET /health` (liveness) and `GET /ready` (readiness): a registry of named async checks that
//! each crate adds to — event store, read database, migrations, RabbitMQ, projection lag…

use std::collections::BTreeMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use actix_web::{HttpResponse, web};
use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct CheckResult {
    pub ok: bool,
    /// What was seen, e.g. `0 pending` or `connection refused`.
    pub detail: String,
}

impl CheckResult {
    pub fn ok(detail: impl Into<String>) -> Self {
        Self {
            ok: true,
            detail: detail.into(),
        }
    }

    pub fn failed(detail: impl Into<String>) -> Self {
        Self {
            ok: false,
            detail: detail.into(),
        }
    }
}

/// A readiness check: called on every `GET /ready`, so it must be cheap.
pub type Check = Arc<dyn Fn() -> BoxFuture<'static, CheckResult> + Send + Sync>;

/// The checks `GET /ready` runs. Cheap to clone; clones share the registry, so a component that
/// connects later (e.g. the dispatcher's broker connection) can still add its check.
#[derive(Clone)]
pub struct Readiness {
    checks: Arc<RwLock<Vec<(String, Check)>>>,
    timeout: Duration,
}

impl Default for Readiness {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReadyStatus {
    Ready,
    NotReady,
}

/// The body of `GET /ready`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ReadinessReport {
    pub status: ReadyStatus,
    pub checks: BTreeMap<String, CheckResult>,
}

impl Readiness {
    /// An empty registry whose checks each get 2 s.
    pub fn new() -> Self {
        Self {
            checks: Arc::new(RwLock::new(Vec::new())),
            timeout: Duration::from_secs(2),
        }
    }

    /// How long each check may take before it counts as failed.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Adds `check` under `name`, replacing a check of the same name.
    pub fn register<F, Fut>(&self, name: impl Into<String>, check: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = CheckResult> + Send + 'static,
    {
        let name = name.into();
        let check: Check = Arc::new(move || check().boxed());
        let mut checks = self.checks.write().unwrap_or_else(PoisonError::into_inner);
        checks.retain(|(existing, _)| *existing != name);
        checks.push((name, check));
    }

    /// The names of the registered checks.
    pub fn names(&self) -> Vec<String> {
        let checks = self.checks.read().unwrap_or_else(PoisonError::into_inner);
        checks.iter().map(|(name, _)| name.clone()).collect()
    }

    /// Runs every check concurrently, each bounded by the timeout. Ready when all pass (and
    /// trivially when none are registered).
    pub async fn evaluate(&self) -> ReadinessReport {
        let checks: Vec<(String, Check)> = self
            .checks
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let timeout = self.timeout;
        let results =
            futures::future::join_all(checks.into_iter().map(|(name, check)| async move {
                let run = AssertUnwindSafe(check()).catch_unwind();
                let result = match tokio::time::timeout(timeout, run).await {
                    Ok(Ok(result)) => result,
                    Ok(Err(_)) => CheckResult::failed("the check panicked"),
                    Err(_) => {
                        CheckResult::failed(format!("no answer within {} ms", timeout.as_millis()))
                    }
                };
                (name, result)
            }))
            .await;
        let checks: BTreeMap<String, CheckResult> = results.into_iter().collect();
        let status = if checks.values().all(|c| c.ok) {
            ReadyStatus::Ready
        } else {
            ReadyStatus::NotReady
        };
        ReadinessReport { status, checks }
    }
}

/// A check that Postgres answers `SELECT 1` on `pool`.
pub fn postgres_check(pool: PgPool) -> impl Fn() -> BoxFuture<'static, CheckResult> + Send + Sync {
    move || {
        let pool = pool.clone();
        async move {
            match sqlx::query("SELECT 1").execute(&pool).await {
                Ok(_) => CheckResult::ok("reachable"),
                Err(error) => CheckResult::failed(error.to_string()),
            }
        }
        .boxed()
    }
}

/// A check that the database has applied every embedded migration.
pub fn migrations_check(
    pool: PgPool,
) -> impl Fn() -> BoxFuture<'static, CheckResult> + Send + Sync {
    move || {
        let pool = pool.clone();
        async move {
            match schema::pending_migrations(&pool).await {
                Ok(0) => CheckResult::ok("0 pending"),
                Ok(n) => CheckResult::failed(format!("{n} pending; run `corbi migrate`")),
                Err(error) => CheckResult::failed(error.to_string()),
            }
        }
        .boxed()
    }
}

/// `GET /health`: the process is up and answering. Never looks at dependencies, so an
/// orchestrator does not restart a healthy process because the database is down.
#[utoipa::path(
    get,
    path = "/health",
    tag = "operations",
    responses((status = 200, description = "The process is alive", body = inline(serde_json::Value), example = json!({"status": "ok"})))
)]
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// `GET /ready`: whether the process can serve traffic now.
#[utoipa::path(
    get,
    path = "/ready",
    tag = "operations",
    responses(
        (status = 200, description = "Every check passed", body = ReadinessReport),
        (status = 503, description = "At least one check failed", body = ReadinessReport),
    )
)]
#[tracing::instrument(skip_all)]
pub async fn ready(readiness: web::Data<Readiness>) -> HttpResponse {
    let report = readiness.evaluate().await;
    match report.status {
        ReadyStatus::Ready => HttpResponse::Ok().json(report),
        ReadyStatus::NotReady => {
            let failing: Vec<&str> = report
                .checks
                .iter()
                .filter(|(_, c)| !c.ok)
                .map(|(name, _)| name.as_str())
                .collect();
            tracing::warn!(?failing, "not ready");
            HttpResponse::ServiceUnavailable().json(report)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn all_checks_run_concurrently_and_slow_ones_time_out() {
        let readiness = Readiness::new().with_timeout(Duration::from_millis(200));
        readiness.register("fast", || async { CheckResult::ok("fine") });
        readiness.register("slow", || async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            CheckResult::ok("too late")
        });
        readiness.register("slow2", || async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            CheckResult::ok("too late")
        });
        let started = std::time::Instant::now();
        let report = readiness.evaluate().await;
        assert!(
            started.elapsed() < Duration::from_millis(1000),
            "checks ran one after another"
        );
        assert_eq!(report.status, ReadyStatus::NotReady);
        assert!(report.checks["fast"].ok);
        assert_eq!(report.checks["slow"].detail, "no answer within 200 ms");
    }

    #[tokio::test]
    async fn re_registering_replaces_and_panics_fail_the_check() {
        let readiness = Readiness::new();
        readiness.register("db", || async { CheckResult::failed("down") });
        readiness
            .clone()
            .register("db", || async { CheckResult::ok("up") });
        assert_eq!(readiness.names(), ["db"]);
        assert_eq!(readiness.evaluate().await.status, ReadyStatus::Ready);

        #[allow(clippy::panic)]
        readiness.register("broken", || async { panic!("boom") });
        let report = readiness.evaluate().await;
        assert_eq!(report.status, ReadyStatus::NotReady);
        assert_eq!(report.checks["broken"].detail, "the check panicked");
    }

    #[tokio::test]
    async fn nothing_registered_is_ready() {
        assert_eq!(Readiness::new().evaluate().await.status, ReadyStatus::Ready);
    }
}
