//! `corbi`: every Corbi service in one binary.

mod admin;
mod http;
mod stack;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use service::ServiceConfig;

/// Corbi: customer messaging on WhatsApp, email, Telegram and Instagram, event-sourced.
///
/// Every setting comes from the environment (see the README's configuration reference).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
#[allow(clippy::enum_variant_names)] // `CommandApi` is the `command-api` subcommand.
enum Command {
    /// Runs every service in one process: both APIs on CORBI_HTTP_ADDR, the projector and the
    /// dispatcher.
    Up,
    /// Runs the command API alone, on CORBI_COMMAND_API_ADDR.
    CommandApi,
    /// Runs the query API alone, on CORBI_QUERY_API_ADDR.
    QueryApi,
    /// Runs every projection (one task each; a second projector process stands by).
    Projector,
    /// Runs the dispatch relay and workers.
    Dispatcher,
    /// Applies pending database migrations, then exits.
    Migrate,
    /// Rebuilds a projection's read model beside the live one, then switches readers to it.
    Replay {
        /// The projection to rebuild, e.g. `event_stats`.
        projection: String,
    },
    /// Creates the demo user (demo@corbi.local / changeme123) as admin of a demo organisation.
    SeedDemo,
    /// Administration.
    #[command(subcommand)]
    Admin(AdminCommand),
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Creates a user, whether or not open registration is on; reads the password from the first
    /// line of standard input and prints the new user's id.
    CreateUser {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
    },
}

/// Events, JSON and sealed fields make many small, short-lived allocations across threads, which
/// glibc's allocator serves slowly (a third of a contacts replay's CPU went to it). Without
/// transparent huge pages (`no_thp`): each fresh page of a batch's churn was a zeroed 2 MiB
/// page, which cost a replay of 50,000 contacts three times the system time, 7% longer.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Two rustls crypto providers are linked in (see reference/crates.md); pick one before any
    // TLS client is built.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = Cli::parse();
    let config = match ServiceConfig::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("corbi: {error}");
            return ExitCode::from(2);
        }
    };
    if let Err(error) = service::telemetry::init(&config.log_filter, config.log_format) {
        eprintln!("corbi: cannot set up logging: {error:#}");
        return ExitCode::from(2);
    }
    service::auth::trust_forwarded_headers(config.trust_forwarded);
    if config.master_key.is_development() {
        tracing::warn!(
            "CORBI_MASTER_KEY is unset: personal data is sealed with the public development key; \
             set a key of your own outside development"
        );
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("corbi: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(stack::run(cli.command, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "corbi stopped");
            eprintln!("corbi: {error:#}");
            ExitCode::FAILURE
        }
    }
}
