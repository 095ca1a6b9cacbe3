//! The Postgres pool of the read models.

use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};

use crate::ServiceConfig;

/// A pool on `DATABASE_URL` with `CORBI_DB_POOL_SIZE` connections. It connects lazily, so a
/// process starts while Postgres is down, reports it in `/ready`, answers 503 meanwhile and
/// recovers by itself once Postgres is back.
pub fn read_pool(config: &ServiceConfig) -> Result<PgPool, sqlx::Error> {
    let options = connect_options(&config.database_url)?;
    Ok(PgPoolOptions::new()
        .max_connections(u32::try_from(config.db_pool_size).unwrap_or(u32::MAX))
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(options))
}

/// The options of `url`. TLS to a database on this machine protects nothing and costs every
/// query, so a loopback or Unix-socket connection goes without it unless `sslmode` is asked for
/// (in the URL or `PGSSLMODE`); the event store's connections never use it. Any other host keeps
/// libpq's default, `prefer`.
pub fn connect_options(url: &str) -> Result<PgConnectOptions, sqlx::Error> {
    let options = PgConnectOptions::from_str(url)?;
    let chosen = url.contains("sslmode=") || std::env::var_os("PGSSLMODE").is_some();
    if chosen || !is_local(&options) {
        return Ok(options);
    }
    Ok(options.ssl_mode(PgSslMode::Disable))
}

fn is_local(options: &PgConnectOptions) -> bool {
    let host = options.get_host();
    options.get_socket().is_some()
        || host.starts_with('/')
        || host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_is_left_out_only_on_this_machine_and_unless_asked_for() {
        if std::env::var_os("PGSSLMODE").is_some() {
            return;
        }
        let mode =
            |url: &str| format!("{:?}", connect_options(url).expect("parses").get_ssl_mode());
        assert_eq!(mode("postgres://u@127.0.0.1:5432/db"), "Disable");
        assert_eq!(mode("postgres://u@localhost/db"), "Disable");
        assert_eq!(mode("postgres://u@[::1]:5432/db"), "Disable");
        assert_eq!(mode("postgres://u@db.example.com/db"), "Prefer");
        assert_eq!(mode("postgres://u@127.0.0.1/db?sslmode=require"), "Require");
        assert_eq!(mode("postgres://u@127.0.0.1/db?sslmode=prefer"), "Prefer");
    }
}
