//! `event_stats`: how many events each organisation's streams of each category produced per day
//! (UTC). Monitoring reads it; it is also the projection that proves the runtime.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::NaiveDate;
use events::RecordedEvent;
use sqlx::{AssertSqlSafe, PgConnection};
use uuid::Uuid;

use crate::{Projection, table};

pub struct EventStats;

const VIEW: &str = "rm_event_stats";

#[async_trait]
impl Projection for EventStats {
    fn name(&self) -> &'static str {
        "event_stats"
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
        sqlx::query(AssertSqlSafe(format!(
            "CREATE TABLE {table} (
                 org_id      uuid   NOT NULL,
                 category    text   NOT NULL,
                 day         date   NOT NULL,
                 event_count bigint NOT NULL,
                 PRIMARY KEY (org_id, day, category)
             )"
        )))
        .execute(conn)
        .await?;
        Ok(())
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        generation: i32,
        events: &[RecordedEvent],
    ) -> anyhow::Result<()> {
        // A batch of thousands of events collapses into a few rows: count first, write once.
        let mut counts: HashMap<(Uuid, &str, NaiveDate), i64> = HashMap::new();
        for event in events {
            *counts
                .entry((
                    event.org_id,
                    event.category(),
                    event.recorded_at.date_naive(),
                ))
                .or_default() += 1;
        }
        let mut orgs = Vec::with_capacity(counts.len());
        let mut categories = Vec::with_capacity(counts.len());
        let mut days = Vec::with_capacity(counts.len());
        let mut totals = Vec::with_capacity(counts.len());
        for ((org, category, day), count) in counts {
            orgs.push(org);
            categories.push(category);
            days.push(day);
            totals.push(count);
        }
        let table = table(VIEW, generation);
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {table} AS t (org_id, category, day, event_count)
             SELECT * FROM unnest($1::uuid[], $2::text[], $3::date[], $4::int8[])
             ON CONFLICT (org_id, day, category)
             DO UPDATE SET event_count = t.event_count + excluded.event_count"
        )))
        .bind(&orgs)
        .bind(&categories)
        .bind(&days)
        .bind(&totals)
        .execute(conn)
        .await?;
        Ok(())
    }
}
