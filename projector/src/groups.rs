//! `groups`: one row per contact group with its live member count (`rm_groups`), and one row per
//! member (`rm_group_members`), which lists a group's contacts and filters contacts by group.
//!
//! The count moves by the rows each event actually inserts or deletes, so it always equals the
//! member rows without counting them again.

use async_trait::async_trait;
use events::group::GroupEvent;
use events::{RecordedEvent, TypedEvent, Upcasters};
use sqlx::{AssertSqlSafe, PgConnection, PgPool};
use uuid::Uuid;

use crate::{Projection, table};

pub const GROUPS: &str = "rm_groups";
pub const MEMBERS: &str = "rm_group_members";

pub struct Groups;

#[async_trait]
impl Projection for Groups {
    fn name(&self) -> &'static str {
        "groups"
    }

    fn version(&self) -> i32 {
        1
    }

    fn handles(&self) -> &'static [&'static str] {
        GroupEvent::EVENT_TYPES
    }

    fn views(&self) -> &'static [&'static str] {
        &[GROUPS, MEMBERS]
    }

    async fn create(&self, conn: &mut PgConnection, generation: i32) -> anyhow::Result<()> {
        let groups = table(GROUPS, generation);
        let members = table(MEMBERS, generation);
        sqlx::raw_sql(AssertSqlSafe(format!(
            "CREATE TABLE {groups} (
                 org_id       uuid NOT NULL,
                 group_id     uuid NOT NULL,
                 name         text NOT NULL,
                 description  text,
                 colour       text,
                 member_count integer NOT NULL DEFAULT 0,
                 created_at   timestamptz NOT NULL,
                 updated_at   timestamptz NOT NULL,
                 deleted      boolean NOT NULL DEFAULT false,
                 PRIMARY KEY (org_id, group_id)
             );
             CREATE TABLE {members} (
                 org_id     uuid NOT NULL,
                 group_id   uuid NOT NULL,
                 contact_id uuid NOT NULL,
                 added_at   timestamptz NOT NULL,
                 PRIMARY KEY (org_id, group_id, contact_id)
             )"
        )))
        .execute(conn)
        .await?;
        Ok(())
    }

    async fn create_indexes(&self, pool: &PgPool, generation: i32) -> anyhow::Result<()> {
        let groups = table(GROUPS, generation);
        let members = table(MEMBERS, generation);
        crate::build_indexes(
            pool,
            vec![
                format!(
                    "CREATE INDEX ON {groups} (org_id, lower(name), group_id) WHERE NOT deleted"
                ),
                format!(
                    "CREATE INDEX ON {members} (org_id, group_id, added_at DESC, contact_id DESC)"
                ),
                format!("CREATE INDEX ON {members} (org_id, contact_id)"),
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
        let upcasters = Upcasters::default();
        let tables = Tables {
            groups: table(GROUPS, generation),
            members: table(MEMBERS, generation),
        };
        for event in events {
            let Some(group_event) = GroupEvent::decode(event, &upcasters)? else {
                continue;
            };
            let group_id = crate::stream_id(&event.stream, "group")?;
            apply(conn, &tables, event, group_id, group_event).await?;
        }
        Ok(())
    }
}

struct Tables {
    groups: String,
    members: String,
}

async fn apply(
    conn: &mut PgConnection,
    tables: &Tables,
    event: &RecordedEvent,
    group_id: Uuid,
    group_event: GroupEvent,
) -> anyhow::Result<()> {
    let Tables { groups, members } = tables;
    let (org_id, at) = (event.org_id, event.recorded_at);
    match group_event {
        GroupEvent::GroupCreated {
            name,
            description,
            colour,
            ..
        } => {
            sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO {groups} (org_id, group_id, name, description, colour, created_at,
                                       updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $6)
                 ON CONFLICT (org_id, group_id) DO NOTHING"
            )))
            .bind(org_id)
            .bind(group_id)
            .bind(name)
            .bind(description)
            .bind(colour)
            .bind(at)
            .execute(conn)
            .await?;
        }
        GroupEvent::GroupUpdated {
            name,
            description,
            colour,
        } => {
            sqlx::query(AssertSqlSafe(format!(
                "UPDATE {groups} SET name = $3, description = $4, colour = $5, updated_at = $6
                 WHERE org_id = $1 AND group_id = $2"
            )))
            .bind(org_id)
            .bind(group_id)
            .bind(name)
            .bind(description)
            .bind(colour)
            .bind(at)
            .execute(conn)
            .await?;
        }
        GroupEvent::GroupDeleted {} => {
            // The member rows go too: nothing lists or filters by a deleted group.
            sqlx::query(AssertSqlSafe(format!(
                "WITH gone AS (
                     DELETE FROM {members} WHERE org_id = $1 AND group_id = $2
                 )
                 UPDATE {groups} SET deleted = true, member_count = 0, updated_at = $3
                 WHERE org_id = $1 AND group_id = $2"
            )))
            .bind(org_id)
            .bind(group_id)
            .bind(at)
            .execute(conn)
            .await?;
        }
        GroupEvent::ContactsAdded { contact_ids } => {
            sqlx::query(AssertSqlSafe(format!(
                "WITH added AS (
                     INSERT INTO {members} (org_id, group_id, contact_id, added_at)
                     SELECT $1, $2, contact_id, $4 FROM unnest($3::uuid[]) AS contact_id
                     ON CONFLICT DO NOTHING
                     RETURNING 1
                 )
                 UPDATE {groups}
                 SET member_count = member_count + (SELECT count(*) FROM added), updated_at = $4
                 WHERE org_id = $1 AND group_id = $2"
            )))
            .bind(org_id)
            .bind(group_id)
            .bind(contact_ids)
            .bind(at)
            .execute(conn)
            .await?;
        }
        GroupEvent::ContactsRemoved { contact_ids } => {
            sqlx::query(AssertSqlSafe(format!(
                "WITH removed AS (
                     DELETE FROM {members}
                     WHERE org_id = $1 AND group_id = $2 AND contact_id = ANY($3::uuid[])
                     RETURNING 1
                 )
                 UPDATE {groups}
                 SET member_count = member_count - (SELECT count(*) FROM removed), updated_at = $4
                 WHERE org_id = $1 AND group_id = $2"
            )))
            .bind(org_id)
            .bind(group_id)
            .bind(contact_ids)
            .bind(at)
            .execute(conn)
            .await?;
        }
    }
    Ok(())
}
