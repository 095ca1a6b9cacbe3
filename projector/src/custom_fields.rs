//! `custom_fields`: the live custom field definitions of every organisation
//! (`rm_custom_fields`). A removed definition's row goes; the values contacts hold for it stay
//! in their rows and are hidden by reads that keep only keys found here.

use async_trait::async_trait;
use events::custom_field::CustomFieldEvent;
use events::{RecordedEvent, TypedEvent, Upcasters};
use sqlx::{AssertSqlSafe, PgConnection, PgPool};

use crate::{Projection, table};

pub const VIEW: &str = "rm_custom_fields";

pub struct CustomFields;

#[async_trait]
impl Projection for CustomFields {
    fn name(&self) -> &'static str {
        "custom_fields"
    }

    fn version(&self) -> i32 {
        1
    }

    fn handles(&self) -> &'static [&'static str] {
        CustomFieldEvent::EVENT_TYPES
    }

    fn views(&self) -> &'static [&'static str] {
        &[VIEW]
    }

    async fn create(&self, conn: &mut PgConnection, generation: i32) -> anyhow::Result<()> {
        let table = table(VIEW, generation);
        sqlx::raw_sql(AssertSqlSafe(format!(
            "CREATE TABLE {table} (
                 org_id        uuid NOT NULL,
                 key           text NOT NULL,
                 label         text NOT NULL,
                 kind          text NOT NULL,
                 required      boolean NOT NULL,
                 options       text[] NOT NULL DEFAULT '{{}}',
                 display_order integer NOT NULL,
                 created_at    timestamptz NOT NULL,
                 updated_at    timestamptz NOT NULL,
                 PRIMARY KEY (org_id, key)
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
            vec![format!(
                "CREATE INDEX ON {table} (org_id, display_order, key)"
            )],
        )
        .await
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        generation: i32,
        events: &[RecordedEvent],
    ) -> anyhow::Result<()> {
        let upcasters = Upcasters::default();
        let table = table(VIEW, generation);
        for event in events {
            let Some(field_event) = CustomFieldEvent::decode(event, &upcasters)? else {
                continue;
            };
            let (org_id, at) = (event.org_id, event.recorded_at);
            match field_event {
                CustomFieldEvent::FieldDefined {
                    key,
                    label,
                    kind,
                    required,
                    options,
                    display_order,
                } => {
                    sqlx::query(AssertSqlSafe(format!(
                        "INSERT INTO {table} (org_id, key, label, kind, required, options,
                                              display_order, created_at, updated_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
                         ON CONFLICT (org_id, key) DO UPDATE SET label = $3, kind = $4,
                             required = $5, options = $6, display_order = $7, created_at = $8,
                             updated_at = $8"
                    )))
                    .bind(org_id)
                    .bind(key)
                    .bind(label)
                    .bind(kind.as_str())
                    .bind(required)
                    .bind(options)
                    .bind(display_order)
                    .bind(at)
                    .execute(&mut *conn)
                    .await?;
                }
                CustomFieldEvent::FieldChanged {
                    key,
                    label,
                    required,
                    options,
                    display_order,
                } => {
                    sqlx::query(AssertSqlSafe(format!(
                        "UPDATE {table} SET label = $3, required = $4, options = $5,
                             display_order = $6, updated_at = $7
                         WHERE org_id = $1 AND key = $2"
                    )))
                    .bind(org_id)
                    .bind(key)
                    .bind(label)
                    .bind(required)
                    .bind(options)
                    .bind(display_order)
                    .bind(at)
                    .execute(&mut *conn)
                    .await?;
                }
                CustomFieldEvent::FieldRemoved { key } => {
                    sqlx::query(AssertSqlSafe(format!(
                        "DELETE FROM {table} WHERE org_id = $1 AND key = $2"
                    )))
                    .bind(org_id)
                    .bind(key)
                    .execute(&mut *conn)
                    .await?;
                }
            }
        }
        Ok(())
    }
}
