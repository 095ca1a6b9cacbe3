//! `bench`: Corbi's performance figures, each against a baseline measured in the same run on the
//! same machine. Every run creates its own database (`corbi_bench_<random>`) on the server of
//! `DATABASE_URL`, migrates it and drops it at the end. See `bench/README.md`.
#![allow(clippy::print_stdout)]

mod access;
mod append;
mod catchup;
mod children;
mod contacts;
mod data;
mod db;
mod load;
mod report;
mod server;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "bench", about = "Corbi's figures against same-run baselines")]
struct Cli {
    /// The Postgres server to create the benchmark database on (CREATE/DROP DATABASE run in the database it names).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres",
        global = true
    )]
    database_url: String,
    /// Print the results as JSON on stdout (the table goes to stderr).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Appends through the EventStore API against pgbench inserting the same rows.
    Append(append::Args),
    /// Subscription read and event_stats replay rates against COPY, projector memory and live lag.
    Catchup(catchup::Args),
    /// Authenticated GET /api/v1/me against GET /health on a `corbi up` child, and sign-ins per
    /// second on one core.
    Access(access::Args),
    /// Contact creations over HTTP against pgbench inserts, the contacts replay against COPY,
    /// searches of two million contacts against lookups by id, and a 100,000-row CSV import until
    /// all are queryable, on `corbi up` children.
    Contacts(contacts::Args),
    /// (internal) Replays event_stats in the database at --database-url and reports peak memory.
    #[command(hide = true)]
    ReplayChild,
    /// (internal) Runs the live event_stats projector until stdin closes.
    #[command(hide = true)]
    ProjectChild,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match &cli.command {
        Command::Append(args) => {
            measure(
                &cli,
                "append",
                |version| append::context(args, version),
                async |db| append::run(db, args).await,
            )
            .await?;
        }
        Command::Catchup(args) => {
            measure(
                &cli,
                "catchup",
                |version| catchup::context(args, version),
                async |db| catchup::run(db, args).await,
            )
            .await?;
        }
        Command::Access(args) => {
            measure(
                &cli,
                "access",
                |version| access::context(args, version),
                async |db| access::run(db, args).await,
            )
            .await?;
        }
        Command::Contacts(args) => {
            measure(
                &cli,
                "contacts",
                |version| contacts::context(args, version),
                async |db| contacts::run(db, args).await,
            )
            .await?;
        }
        Command::ReplayChild => children::replay(&cli.database_url).await?,
        Command::ProjectChild => children::project(&cli.database_url).await?,
    }
    Ok(())
}

/// Runs one benchmark in a database of its own and prints its figures with the run's context
/// (which needs the server's version).
async fn measure(
    cli: &Cli,
    benchmark: &str,
    context: impl FnOnce(&str) -> serde_json::Value,
    run: impl AsyncFnOnce(&db::BenchDatabase) -> anyhow::Result<Vec<report::Figure>>,
) -> anyhow::Result<()> {
    let (version, figures) = db::BenchDatabase::run(&cli.database_url, async |database| {
        let version = db::server_version(&db::connect(&database.url).await?).await?;
        Ok((version, run(database).await?))
    })
    .await?;
    report::print(benchmark, context(&version), &figures, cli.json);
    Ok(())
}
