//! Sign-in throttling: after too many failed sign-ins for one account or from one address within
//! a window, further attempts are refused until enough of those failures have left the window.
//!
//! Failures live in the `sign_in_failures` table (migration 0003), so every instance of the
//! command side counts the same ones and a restart forgets nothing. The database's clock is the
//! only one used, so instances with drifting clocks still agree.
//!
//! Checking and recording are separate statements: attempts racing in parallel can each pass the
//! check before any of them records its failure, so a burst of `n` parallel attempts may overshoot
//! a limit by up to `n - 1`. Each attempt costs the attacker an argon2 verification on the server,
//! which keeps bursts small.

use std::time::Duration;

use sqlx::PgPool;

use super::secret;

/// How many failures are allowed, and over what window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignInLimits {
    /// Failures for one account (from anywhere) after which it is refused. 0 behaves as 1.
    pub per_account: u32,
    /// Failures from one address (for any accounts) after which it is refused. 0 behaves as 1.
    pub per_ip: u32,
    /// How long a failure counts.
    pub window: Duration,
}

impl Default for SignInLimits {
    fn default() -> Self {
        Self {
            per_account: 5,
            per_ip: 20,
            window: Duration::from_secs(10 * 60),
        }
    }
}

/// The `sign_in_failures` table.
#[derive(Clone)]
pub struct SignInThrottle {
    pool: PgPool,
    limits: SignInLimits,
}

impl SignInThrottle {
    pub fn new(pool: PgPool, limits: SignInLimits) -> Self {
        Self { pool, limits }
    }

    /// How long the caller must wait before trying `account` from `ip` again, or `None` when it
    /// may try now. `account` is the normalised email; it is hashed here.
    #[tracing::instrument(name = "sign_in_throttle.check", skip_all)]
    pub async fn check(&self, account: &str, ip: Option<&str>) -> anyhow::Result<Option<Duration>> {
        // The limit-th most recent failure in the window is the one whose leaving brings the count
        // below the limit (the oldest counted one, unless a race overshot the limit). When both
        // limits are reached the caller must wait for both, hence GREATEST (which skips NULLs).
        // A NULL ip matches no row, so an unknown address is only limited per account.
        let seconds: Option<i64> = sqlx::query_scalar(
            "SELECT ceil(extract(epoch FROM
                    GREATEST(
                        (SELECT failed_at FROM sign_in_failures
                         WHERE account_key = $1 AND failed_at > now() - make_interval(secs => $3)
                         ORDER BY failed_at DESC OFFSET $4 LIMIT 1),
                        (SELECT failed_at FROM sign_in_failures
                         WHERE ip = $2 AND failed_at > now() - make_interval(secs => $3)
                         ORDER BY failed_at DESC OFFSET $5 LIMIT 1)
                    ) + make_interval(secs => $3) - now()
                ))::bigint",
        )
        .bind(secret::hash(account))
        .bind(ip)
        .bind(self.limits.window.as_secs_f64())
        .bind(nth_from_newest(self.limits.per_account))
        .bind(nth_from_newest(self.limits.per_ip))
        .fetch_one(&self.pool)
        .await?;
        // Rounded up in SQL; at least a second, so a client is never told to retry at once.
        Ok(seconds.map(|s| Duration::from_secs(u64::try_from(s).unwrap_or(0).max(1))))
    }

    /// Records a failed sign-in for `account` from `ip`, and deletes their failures that have left
    /// the window so the table stays about as small as the traffic of one window.
    #[tracing::instrument(name = "sign_in_throttle.record_failure", skip_all)]
    pub async fn record_failure(&self, account: &str, ip: Option<&str>) -> anyhow::Result<()> {
        // A data-modifying CTE runs even though nothing reads it: one round trip for both.
        sqlx::query(
            "WITH expired AS (
                 DELETE FROM sign_in_failures
                 WHERE (account_key = $1 OR ip = $2)
                   AND failed_at <= now() - make_interval(secs => $3)
             )
             INSERT INTO sign_in_failures (account_key, ip) VALUES ($1, $2)",
        )
        .bind(secret::hash(account))
        .bind(ip)
        .bind(self.limits.window.as_secs_f64())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forgets `account`'s failures after it signed in. Its addresses' failures stay: one right
    /// password must not reset the count of an address guessing at many accounts.
    #[tracing::instrument(name = "sign_in_throttle.clear_account", skip_all)]
    pub async fn clear_account(&self, account: &str) -> anyhow::Result<()> {
        sqlx::query("DELETE FROM sign_in_failures WHERE account_key = $1")
            .bind(secret::hash(account))
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// The OFFSET that selects the `limit`-th most recent failure.
fn nth_from_newest(limit: u32) -> i64 {
    i64::from(limit.max(1) - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_five_per_account_and_twenty_per_ip_in_ten_minutes() {
        let limits = SignInLimits::default();
        assert_eq!(limits.per_account, 5);
        assert_eq!(limits.per_ip, 20);
        assert_eq!(limits.window, Duration::from_secs(600));
    }

    #[test]
    fn the_offset_selects_the_limit_th_newest_failure() {
        assert_eq!(nth_from_newest(5), 4);
        assert_eq!(nth_from_newest(1), 0);
        assert_eq!(nth_from_newest(0), 0);
    }
}
