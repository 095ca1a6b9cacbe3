//! What a create costs Postgres by itself: pgbench making the writes of one
//! `POST /api/v1/contacts` per transaction (`pgbench/create_contact_writes.sql`), into copies of
//! the tables the server wrote to, with the JSON of the newest contact in the log. The server's
//! rate of the same creates is shown against it: no figure of the issue, but what tells how much
//! of the single-row baseline's lead is the work a create must do.

use anyhow::Context;
use tokio_postgres::Client;

use super::Args;
use crate::append::{Pgbench, PgbenchResult};
use crate::db::{self, BenchDatabase};

const SCRIPT: &str = include_str!("../../pgbench/create_contact_writes.sql");
const TABLES: &str = include_str!("../../pgbench/create_contact_writes_tables.sql");
const DROP: &str = "DROP TABLE pgbench_w_events, pgbench_w_data_keys, pgbench_w_contacts, \
                    pgbench_w_timeline, pgbench_w_audit; DROP FUNCTION pgbench_w_id()";

/// Copies the tables (the server stopped), runs the script as the single-row baseline runs its
/// own, and drops the copies again.
pub async fn run(
    client: &Client,
    database: &BenchDatabase,
    args: &Args,
) -> anyhow::Result<PgbenchResult> {
    let contacts = database.live_generation("contacts").await?;
    let timeline = projector::table(projector::contacts::TIMELINE, contacts);
    let tables = TABLES
        .replace(
            "{contacts}",
            &projector::table(projector::contacts::CONTACTS, contacts),
        )
        .replace("{timeline}", &timeline)
        .replace(
            "{audit}",
            &projector::table(
                projector::audit::VIEW,
                database.live_generation("audit").await?,
            ),
        );
    client
        .batch_execute(&tables)
        .await
        .context("copying the tables a create writes to")?;
    client
        .batch_execute(
            "VACUUM ANALYZE pgbench_w_events, pgbench_w_data_keys, pgbench_w_contacts, \
             pgbench_w_timeline, pgbench_w_audit",
        )
        .await?;
    let newest = client
        .query_one(
            &format!(
                "SELECT e.org_id::text, e.data::text, e.metadata::text, t.data::text
                 FROM events e JOIN {timeline} t ON t.event_id = e.event_id
                 WHERE e.event_type = 'ContactCreated'
                 ORDER BY e.global_position DESC LIMIT 1"
            ),
            &[],
        )
        .await
        .context("reading the newest contact")?;
    let owner: String = client
        .query_one(
            "SELECT data::text FROM events WHERE event_type = 'Reserved'
             ORDER BY global_position DESC LIMIT 1",
            &[],
        )
        .await
        .context("reading the newest reservation")?
        .try_get(0)?;
    let defines = [
        ("org", newest.try_get::<_, String>(0)?),
        ("data", newest.try_get(1)?),
        ("metadata", newest.try_get(2)?),
        ("shown", newest.try_get(3)?),
        ("owner", owner),
    ];
    db::checkpoint(client).await?;
    let pgbench = Pgbench::new(
        &args.pgbench,
        &database.url,
        "create_contact_writes.sql",
        SCRIPT,
    )?;
    let result = pgbench.run(args.connections, args.seconds, &defines).await;
    client.batch_execute(DROP).await?;
    result
}
