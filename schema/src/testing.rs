//! Fresh databases for tests: the migrations are applied once to a template database (named
//! after their checksums, so a changed migration makes a new one) and every test clones it with
//! `CREATE DATABASE … TEMPLATE`, which takes milliseconds.

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, PgConnection, PgPool};

use crate::MIGRATOR;

/// The server tests create their databases on: `DATABASE_URL`, or the local default.
pub fn server_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A migrated database of its own for one test.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
    pub pool: PgPool,
}

impl TestDatabase {
    /// Clones the migrated template into a new database.
    pub async fn create() -> anyhow::Result<TestDatabase> {
        let server = PgConnectOptions::from_str(&server_url())?;
        let mut admin = server.clone().database("postgres").connect().await?;
        let template = ensure_template(&mut admin, &server).await?;
        let name = format!("corbi_test_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(AssertSqlSafe(format!(
            r#"CREATE DATABASE "{name}" TEMPLATE "{template}""#
        )))
        .execute(&mut admin)
        .await?;
        admin.close().await?;
        let options = server.database(&name);
        let url = with_database(&server_url(), &name);
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .connect_with(options)
            .await?;
        Ok(TestDatabase { name, url, pool })
    }
}

/// Creates and migrates the template for the current migrations once per server; concurrent
/// test processes serialize on an advisory lock.
async fn ensure_template(
    admin: &mut PgConnection,
    server: &PgConnectOptions,
) -> anyhow::Result<String> {
    let mut checksum: u64 = 0xcbf2_9ce4_8422_2325;
    for migration in MIGRATOR.iter() {
        for byte in migration.checksum.iter() {
            checksum = (checksum ^ u64::from(*byte)).wrapping_mul(0x100_0000_01b3);
        }
    }
    let template = format!("corbi_template_{checksum:016x}");
    sqlx::query("SELECT pg_advisory_lock(8716410002)")
        .execute(&mut *admin)
        .await?;
    let result = async {
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(&template)
                .fetch_one(&mut *admin)
                .await?;
        if !exists {
            let building = format!("{template}_building");
            sqlx::query(AssertSqlSafe(format!(
                r#"DROP DATABASE IF EXISTS "{building}""#
            )))
            .execute(&mut *admin)
            .await?;
            sqlx::query(AssertSqlSafe(format!(r#"CREATE DATABASE "{building}""#)))
                .execute(&mut *admin)
                .await?;
            let mut conn = server.clone().database(&building).connect().await?;
            MIGRATOR.run(&mut conn).await?;
            conn.close().await?;
            sqlx::query(AssertSqlSafe(format!(
                r#"ALTER DATABASE "{building}" RENAME TO "{template}""#
            )))
            .execute(&mut *admin)
            .await?;
        }
        anyhow::Ok(template)
    }
    .await;
    sqlx::query("SELECT pg_advisory_unlock(8716410002)")
        .execute(&mut *admin)
        .await?;
    result
}

/// `url` with its database replaced by `database` (query parameters kept).
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut result = format!("{}/{database}", &base[..path_start]);
    if let Some(query) = query {
        result.push('?');
        result.push_str(query);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn replaces_only_the_database() {
        assert_eq!(
            with_database("postgres://u@h:5432/postgres?sslmode=disable", "x"),
            "postgres://u@h:5432/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
    }
}
