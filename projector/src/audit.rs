//! `audit`: every event of every organisation with who caused it and from where, for
//! `GET /api/v1/audit`. Events without an organisation (a user's own sign-ins) are not here; a
//! user sees those in their list of sessions.

use async_trait::async_trait;
use events::RecordedEvent;
use sqlx::{AssertSqlSafe, PgConnection, PgPool};
use uuid::Uuid;

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
        let mut rows = Rows::default();
        for event in events.iter().filter(|e| !e.org_id.is_nil()) {
            let (kind, id) = event.metadata.actor.columns();
            rows.org_id.push(event.org_id);
            rows.event_id.push(event.event_id);
            rows.stream.push(&event.stream);
            rows.event_type.push(&event.event_type);
            rows.actor_kind.push(kind);
            rows.actor_id.push(id);
            rows.ip.push(event.metadata.ip.as_deref());
            rows.user_agent.push(event.metadata.user_agent.as_deref());
            rows.data.push(shown(&event.data));
            rows.recorded_at.push(event.recorded_at);
        }
        if rows.org_id.is_empty() {
            return Ok(());
        }
        let table = table(VIEW, generation);
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {table} (org_id, event_id, stream, event_type, actor_kind, actor_id, ip,
                                  user_agent, data, recorded_at)
             SELECT o, e, s, t, k, a, i, u, d, r
             FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[],
                         $6::text[], $7::text[], $8::text[], $9::jsonb[], $10::timestamptz[])
                  WITH ORDINALITY AS x(o, e, s, t, k, a, i, u, d, r, n)
             ORDER BY n"
        )))
        .bind(&rows.org_id)
        .bind(&rows.event_id)
        .bind(&rows.stream)
        .bind(&rows.event_type)
        .bind(&rows.actor_kind)
        .bind(&rows.actor_id)
        .bind(&rows.ip)
        .bind(&rows.user_agent)
        .bind(&rows.data)
        .bind(&rows.recorded_at)
        .execute(conn)
        .await?;
        Ok(())
    }
}

#[derive(Default)]
struct Rows<'a> {
    org_id: Vec<Uuid>,
    event_id: Vec<Uuid>,
    stream: Vec<&'a str>,
    event_type: Vec<&'a str>,
    actor_kind: Vec<&'static str>,
    actor_id: Vec<Option<String>>,
    ip: Vec<Option<&'a str>>,
    user_agent: Vec<Option<&'a str>>,
    data: Vec<serde_json::Value>,
    recorded_at: Vec<chrono::DateTime<chrono::Utc>>,
}

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
