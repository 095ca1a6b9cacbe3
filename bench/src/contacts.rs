//! `bench contacts`: the contacts' figures, against a baseline of the same run where there is
//! one. Creating contacts over HTTP (`POST /api/v1/contacts` on a `corbi up` child) against
//! pgbench inserting contact rows; rebuilding the contacts projection (`corbi replay contacts`)
//! against a `COPY` of the same events; searching a read model of two million contacts against
//! looking one up by id (in `search`); and importing a CSV file of 100,000 contacts until all are
//! queryable, in a database of its own (in `import`).

mod import;
mod names;
mod search;
mod writes;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::append::Pgbench;
use crate::catchup::copy_rate;
use crate::db::{self, BenchDatabase};
use crate::load::{self, Load, Window};
use crate::report::{Figure, Target};
use crate::server::{Server, corbi_binary, corbi_command, sign_up};

/// The pgbench script and the DDL of its table, embedded so the binary runs from anywhere.
const PGBENCH_SCRIPT: &str = include_str!("../pgbench/insert_contact.sql");
const PGBENCH_TABLE: &str = include_str!("../pgbench/pgbench_contacts.sql");

/// The contact events of the log: their streams are `contact-<id>`.
const CONTACT_EVENTS: &str = "stream LIKE 'contact-%'";

/// A top-up that has not reached its count after this many rounds has a reason to look at.
const TOP_UP_ROUNDS: usize = 5;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Connections of the contact creations (and pgbench clients).
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    /// Seconds of unmeasured load before each HTTP measurement.
    #[arg(long, default_value_t = 2)]
    pub warm_up_seconds: u64,
    /// Seconds the contact creations (and pgbench) run.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Contacts the log holds at least when it is replayed; unmeasured creations make up the
    /// difference.
    #[arg(long, default_value_t = 50_000)]
    pub replay_contacts: u64,
    /// Contacts of each of the two organisations of the searched read model.
    #[arg(long, default_value_t = 1_000_000)]
    pub search_contacts: u64,
    /// Connections of the searches and of the lookups by id.
    #[arg(long, default_value_t = 8)]
    pub search_connections: usize,
    /// Seconds each search (and the lookups by id) runs.
    #[arg(long, default_value_t = 10)]
    pub search_seconds: u64,
    /// The name prefix searched for.
    #[arg(long, default_value = "mar")]
    pub name_prefix: String,
    /// The phone prefix searched for.
    #[arg(long, default_value = "+35191")]
    pub phone_prefix: String,
    /// Rows of the imported CSV file (at most 100,000, the server's limit); 0 skips the import.
    #[arg(long, default_value_t = 100_000)]
    pub import_rows: u64,
    /// Only the import (no pgbench, creations, replay or searches).
    #[arg(long)]
    pub import_only: bool,
    /// The pgbench binary.
    #[arg(long, env = "PGBENCH", default_value = "pgbench")]
    pub pgbench: PathBuf,
}

pub fn context(args: &Args, server_version: &str) -> Value {
    json!({
        "postgres": server_version,
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "connections": args.connections,
        "seconds": args.seconds,
        "search_contacts": 2 * args.search_contacts,
        "import_rows": args.import_rows,
    })
}

pub async fn run(database: &BenchDatabase, args: &Args) -> anyhow::Result<Vec<Figure>> {
    anyhow::ensure!(
        args.seconds > 0 && args.search_seconds > 0,
        "--seconds and --search-seconds must be at least 1"
    );
    anyhow::ensure!(
        args.connections > 0 && args.search_connections > 0,
        "connection counts must be at least 1"
    );
    anyhow::ensure!(
        args.search_contacts >= 100,
        "--search-contacts must be at least 100"
    );
    anyhow::ensure!(
        args.import_rows <= import::MAX_ROWS,
        "--import-rows must be at most {} (the most one import takes)",
        import::MAX_ROWS
    );
    let corbi = corbi_binary()?;
    if args.import_only {
        anyhow::ensure!(
            args.import_rows > 0,
            "--import-only needs --import-rows > 0"
        );
        return import::run(&corbi, database, args, None).await;
    }
    let client = db::connect(&database.url).await?;

    // The baseline first, before the server exists.
    client
        .batch_execute(PGBENCH_TABLE)
        .await
        .context("creating pgbench_contacts")?;
    let pgbench = Pgbench::new(
        &args.pgbench,
        &database.url,
        "insert_contact.sql",
        PGBENCH_SCRIPT,
    )?;
    db::checkpoint(&client).await?;
    eprintln!("pgbench, {} clients, {}s…", args.connections, args.seconds);
    let baseline = pgbench
        .run(
            args.connections,
            args.seconds,
            &[("org", Uuid::new_v4().to_string())],
        )
        .await?;
    eprintln!("  {:.0} tx/s, {}", baseline.tps, baseline.latency);
    drop(pgbench);

    let mut server = Server::start(&corbi, &database.url).await?;
    let admin = sign_up(&server).await?;
    let authorization = HeaderValue::from_str(&format!("Bearer {}", admin.access_token))
        .context("the access token is not a valid header value")?;
    db::checkpoint(&client).await?;
    let creations = Creations::new(&server, authorization.clone());
    let window = Window {
        connections: args.connections,
        warm_up: Duration::from_secs(args.warm_up_seconds),
        measured: Duration::from_secs(args.seconds),
    };
    let created = creations.load(window).await?;
    creations
        .top_up(&client, args, created.requests_per_second())
        .await?;
    server.stop().await;

    eprintln!(
        "pgbench, the writes of one create per transaction, {} clients, {}s…",
        args.connections, args.seconds
    );
    let same_writes = writes::run(&client, database, args).await?;
    eprintln!("  {:.0} tx/s, {}", same_writes.tps, same_writes.latency);

    let connections = args.connections;
    let creation_rate = created.requests_per_second();
    let mut figures = vec![
        created
            .rate(
                format!("POST /api/v1/contacts, {connections} connections"),
                Some((baseline.tps, "pgbench INSERT")),
            )
            .target(Target::RatioAtLeast(0.5)),
        Figure::latency(
            format!("  latency, {connections} connections"),
            created.percentiles(),
            Some((baseline.latency, "pgbench")),
        )
        .target(Target::RatioAtMost(3.0)),
        created.rate(
            "  the same, against its writes in SQL".to_string(),
            Some((same_writes.tps, "pgbench, a create's writes")),
        ),
        Figure::latency(
            "  latency, against its writes in SQL",
            created.percentiles(),
            Some((same_writes.latency, "pgbench, a create's writes")),
        ),
    ];
    figures.extend(replay(&corbi, database, &client).await?);

    let searched = search::run(&corbi, database, &client, &admin, authorization, args).await?;
    figures.extend(searched);

    if args.import_rows > 0 {
        // Its own log and read model: the replay and the searches above saw none of its contacts.
        let imported = BenchDatabase::run(database.server_url(), async |own| {
            import::run(&corbi, own, args, Some(creation_rate)).await
        })
        .await?;
        figures.extend(imported);
    }
    Ok(figures)
}

/// `POST /api/v1/contacts` as the bench organisation's admin, each request a new contact.
struct Creations {
    url: String,
    authorization: HeaderValue,
    /// Numbers the contacts, so every name, email and phone number is new.
    sent: Arc<AtomicU64>,
}

impl Creations {
    fn new(server: &Server, authorization: HeaderValue) -> Creations {
        Creations {
            url: server.url("/api/v1/contacts"),
            authorization,
            sent: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Every answer must be 201.
    async fn load(&self, window: Window) -> anyhow::Result<Load> {
        let (url, authorization, sent) = (
            self.url.clone(),
            self.authorization.clone(),
            self.sent.clone(),
        );
        let request: load::Request = Arc::new(move |client: &reqwest::Client| {
            let n = sent.fetch_add(1, Ordering::Relaxed) + 1;
            client
                .post(&url)
                .header(AUTHORIZATION, authorization.clone())
                .json(&new_contact(n))
        });
        load::closed_loop(
            &format!("POST {}", self.url),
            window,
            StatusCode::CREATED,
            request,
        )
        .await
    }

    /// Unmeasured creations until the log holds `--replay-contacts` contacts, sized from the
    /// measured rate.
    async fn top_up(
        &self,
        client: &tokio_postgres::Client,
        args: &Args,
        rate: f64,
    ) -> anyhow::Result<()> {
        for _ in 0..TOP_UP_ROUNDS {
            let contacts = contacts_in_log(client).await?;
            if contacts >= args.replay_contacts {
                eprintln!("  {contacts} contacts in the log");
                return Ok(());
            }
            let missing = (args.replay_contacts - contacts) as f64;
            let seconds = (missing / rate.max(1.0) * 1.05).ceil().max(1.0);
            eprintln!(
                "topping up: {contacts} contacts in the log, creating about {missing:.0} more…"
            );
            self.load(Window {
                connections: args.connections,
                warm_up: Duration::ZERO,
                measured: Duration::from_secs_f64(seconds),
            })
            .await?;
        }
        anyhow::bail!(
            "the log holds fewer than {} contacts after {TOP_UP_ROUNDS} top-ups",
            args.replay_contacts
        )
    }
}

/// The body of the `n`-th contact: name, email and WhatsApp number all new. The numbers are
/// Portuguese mobiles starting +35196, which the phone search (+35191 by default) does not find.
fn new_contact(n: u64) -> Value {
    json!({
        "full_name": format!("Bench {n}"),
        "email": format!("c{n}@bench.example"),
        "whatsapp": format!("+35196{:07}", n % 10_000_000),
    })
}

async fn contacts_in_log(client: &tokio_postgres::Client) -> anyhow::Result<u64> {
    let row = client
        .query_one(
            "SELECT count(*) FROM events WHERE event_type = 'ContactCreated'",
            &[],
        )
        .await?;
    Ok(u64::try_from(row.try_get::<_, i64>(0)?)?)
}

/// `corbi replay contacts` with the server stopped, timed from start to exit, against the faster
/// of two `COPY`s of the contact events (before and after it).
async fn replay(
    corbi: &std::path::Path,
    database: &BenchDatabase,
    client: &tokio_postgres::Client,
) -> anyhow::Result<Vec<Figure>> {
    let row = client
        .query_one(
            &format!(
                "SELECT count(*) FILTER (WHERE {CONTACT_EVENTS}), count(*),
                        count(*) FILTER (WHERE event_type = 'ContactCreated')
                 FROM events"
            ),
            &[],
        )
        .await?;
    let contact_events = u64::try_from(row.try_get::<_, i64>(0)?)?;
    let all_events = u64::try_from(row.try_get::<_, i64>(1)?)?;
    let contacts = u64::try_from(row.try_get::<_, i64>(2)?)?;
    eprintln!(
        "log: {all_events} events, {contact_events} of them in {contacts} contact streams; \
         VACUUM ANALYZE…"
    );
    client.batch_execute("VACUUM ANALYZE events").await?;
    db::checkpoint(client).await?;
    eprintln!("COPY of the contact events in log order…");
    let first_copy = copy_rate(client, Some(CONTACT_EVENTS), contact_events).await?;

    eprintln!("corbi replay contacts…");
    let started = Instant::now();
    let status = corbi_command(corbi, &database.url)
        // Its last line says how long the rebuild itself took, without the process around it.
        .env("CORBI_LOG", "warn,corbi=info")
        .args(["replay", "contacts"])
        .status()
        .await
        .with_context(|| format!("running {} replay contacts", corbi.display()))?;
    let elapsed = started.elapsed();
    anyhow::ensure!(status.success(), "corbi replay contacts failed ({status})");
    let replay_rate = contact_events as f64 / elapsed.as_secs_f64();
    eprintln!(
        "  {:.2}s, {replay_rate:.0} contact events/s ({:.0} events/s of the whole log)",
        elapsed.as_secs_f64(),
        all_events as f64 / elapsed.as_secs_f64()
    );

    eprintln!("COPY again…");
    let copy = first_copy.max(copy_rate(client, Some(CONTACT_EVENTS), contact_events).await?);
    let mut copied = Figure::rate("COPY of the contact events (log order)", copy, None);
    copied.extra = json!({ "rows": contact_events });
    let mut replayed = Figure::rate(
        "corbi replay contacts (contact events)",
        replay_rate,
        Some((copy, "COPY")),
    )
    .target(Target::RatioAtLeast(0.25));
    replayed.extra = json!({
        "contacts": contacts,
        "contact_events": contact_events,
        "log_events": all_events,
        "elapsed_secs": elapsed.as_secs_f64(),
    });
    Ok(vec![copied, replayed])
}
