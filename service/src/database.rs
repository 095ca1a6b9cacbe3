//! The Postgres pool of the read models.

use std::str::FromStr;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::ServiceConfig;

/// A pool on `DATABASE_URL` with `CORBI_DB_POOL_SIZE` connections. It connects lazily, so a
/// process starts while Postgres is down, reports it in `/ready`, answers 503 meanwhile and
/// recovers by itself once Postgres is back.
pub fn read_pool(config: &ServiceConfig) -> Result<PgPool, sqlx::Error> {
    let options = PgConnectOptions::from_str(&config.database_url)?;
    Ok(PgPoolOptions::new()
        .max_connections(u32::try_from(config.db_pool_size).unwrap_or(u32::MAX))
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(options))
}
