//! The database each run creates, migrates and drops, and small Postgres helpers.

use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio_postgres::{Client, NoTls};

/// A fresh, migrated `corbi_bench_<random>` database on the server of `DATABASE_URL`.
pub struct BenchDatabase {
    pub name: String,
    pub url: String,
    server_url: String,
    pub pool: PgPool,
}

impl BenchDatabase {
    pub async fn create(server_url: &str) -> anyhow::Result<BenchDatabase> {
        let name = format!("corbi_bench_{}", uuid::Uuid::new_v4().simple());
        let admin = connect(server_url)
            .await
            .with_context(|| format!("connecting to {server_url} (DATABASE_URL)"))?;
        admin
            .batch_execute(&format!(r#"CREATE DATABASE "{name}""#))
            .await
            .with_context(|| format!("creating database {name}"))?;
        let url = schema::testing::with_database(server_url, &name);
        let database = async {
            let pool = PgPoolOptions::new()
                .max_connections(8)
                .acquire_timeout(Duration::from_secs(30))
                .connect(&url)
                .await?;
            schema::migrate(&pool).await?;
            anyhow::Ok(pool)
        }
        .await;
        match database {
            Ok(pool) => Ok(BenchDatabase {
                name,
                url,
                server_url: server_url.to_owned(),
                pool,
            }),
            Err(error) => {
                let _ = drop_database(server_url, &name).await;
                Err(error.context(format!("migrating database {name}")))
            }
        }
    }

    /// The server's URL (`DATABASE_URL`), to create another database beside this one.
    pub fn server_url(&self) -> &str {
        &self.server_url
    }

    /// The live generation of `projection`, which a replay or a server registered.
    pub async fn live_generation(&self, projection: &str) -> anyhow::Result<i32> {
        projector::status(&self.pool)
            .await?
            .iter()
            .find(|s| s.name == projection)
            .map(|s| s.generation)
            .with_context(|| format!("{projection} is not registered"))
    }

    /// Runs `body` against the database, then drops it whatever happened (also on Ctrl-C).
    pub async fn run<T>(
        server_url: &str,
        body: impl AsyncFnOnce(&BenchDatabase) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let database = BenchDatabase::create(server_url).await?;
        eprintln!("bench database: {}", database.name);
        let outcome = tokio::select! {
            outcome = body(&database) => outcome,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
        };
        database.pool.close().await;
        let dropped = drop_database(&database.server_url, &database.name).await;
        match (outcome, dropped) {
            (Ok(value), Ok(())) => Ok(value),
            (Ok(_), Err(error)) => Err(error),
            (Err(error), dropped) => {
                if let Err(drop_error) = dropped {
                    eprintln!("also failed to drop {}: {drop_error:#}", database.name);
                }
                Err(error)
            }
        }
    }
}

async fn drop_database(server_url: &str, name: &str) -> anyhow::Result<()> {
    let admin = connect(server_url).await?;
    admin
        .batch_execute(&format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#))
        .await
        .with_context(|| format!("dropping database {name}"))?;
    Ok(())
}

/// A plain tokio-postgres connection, driven on its own task.
pub async fn connect(url: &str) -> anyhow::Result<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// Flushes dirty buffers so a checkpoint does not land in the middle of the next measurement.
pub async fn checkpoint(client: &Client) -> anyhow::Result<()> {
    client
        .batch_execute("CHECKPOINT")
        .await
        .context("CHECKPOINT (the benchmark needs a superuser or pg_checkpoint)")
}

pub async fn server_version(client: &Client) -> anyhow::Result<String> {
    Ok(client
        .query_one("SHOW server_version", &[])
        .await?
        .try_get(0)?)
}
