//! `audit`: every event of every organisation with who caused it and from where, for
//! `GET /api/v1/audit`. Events without an organisation (a user's own sign-ins) are not here; a
//! user sees those in their list of sessions.

use async_trait::async_trait;
use events::RecordedEvent;
use postgres_types::Type;
use sqlx::{AssertSqlSafe, PgConnection, PgPool};

use crate::copy::{Columns, CopyRows};
use crate::{Projection, table};

pub struct Audit;

pub const VIEW: &str = "rm_audit";

#[async_trait]
impl Projection for Audit {
    fn name(&self) -> &'static str {
        "audit"
    }

    fn version(&self) -> i32 {
        1
    }

    fn handles(&self) -> &'static [&'static str] {
        &[]
    }

    fn views(&self) -> &'static [&'static str] {
        &[VIEW]
    }

    async fn create(&self, conn: &mut PgConnection, generation: i32) -> anyhow::Result<()> {
        let table = table(VIEW, generation);
        // `seq` follows log order, so it is the cursor and the newest-first order.
        sqlx::raw_sql(AssertSqlSafe(format!(
            "CREATE TABLE {table} (
                 seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                 org_id      uuid NOT NULL,
                 event_id    uuid NOT NULL,
                 stream      text NOT NULL,
                 event_type  text NOT NULL,
                 actor_kind  text NOT NULL,
                 actor_id    text,
                 ip          text,
                 user_agent  text,
                 data        jsonb NOT NULL,
                 recorded_at timestamptz NOT NULL
             )"
        )))
        .execute(conn)
        .await?;
        Ok(())
    }

    async fn create_indexes(&self, pool: &PgPool, generation: i32) -> anyhow::Result<()> {
        let table = table(VIEW, generation);
        crate::build_indexes(
            pool,
            vec![
                format!("CREATE INDEX ON {table} (org_id, seq)"),
                format!("CREATE INDEX ON {table} (org_id, actor_id, seq)"),
                format!("CREATE INDEX ON {table} (org_id, event_type, seq)"),
                format!("CREATE INDEX ON {table} (org_id, recorded_at)"),
            ],
        )
        .await
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        generation: i32,
        events: &[RecordedEvent],
    ) -> anyhow::Result<()> {
        // `seq` follows the order the rows are copied in: the log's.
        let mut rows = CopyRows::new(&table(VIEW, generation), COLUMNS);
        for event in events.iter().filter(|e| !e.org_id.is_nil()) {
            let (kind, id) = event.metadata.actor.columns();
            rows.push(&[
                &event.org_id,
                &event.event_id,
                &event.stream,
                &event.event_type,
                &kind,
                &id,
                &event.metadata.ip,
                &event.metadata.user_agent,
                &shown(&event.data),
                &event.recorded_at,
            ])?;
        }
        rows.write(conn).await
    }
}

/// The columns of an audit row, as `apply` copies them.
const COLUMNS: Columns = &[
    ("org_id", Type::UUID),
    ("event_id", Type::UUID),
    ("stream", Type::TEXT),
    ("event_type", Type::TEXT),
    ("actor_kind", Type::TEXT),
    ("actor_id", Type::TEXT),
    ("ip", Type::TEXT),
    ("user_agent", Type::TEXT),
    ("data", Type::JSONB),
    ("recorded_at", Type::TIMESTAMPTZ),
];

/// An event's data as the audit trail shows it: without the hashes of secrets (`token_hash`,
/// `secret_hash`), which say nothing to a reader and are nobody's business.
fn shown(data: &serde_json::Value) -> serde_json::Value {
    match data {
        serde_json::Value::Object(fields) => serde_json::Value::Object(
            fields
                .iter()
                .filter(|(key, _)| !key.ends_with("_hash"))
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}
