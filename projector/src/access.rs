//! `access`: who may do what. Users, organisations with their branding, memberships with roles,
//! invitations and API keys — what every request's caller is resolved against, and what the
//! organisation pages list.
//!
//! Secrets are not here either: API keys and invitations carry only the SHA-256 hashes the events
//! hold, which is what a presented key is looked up by.

use async_trait::async_trait;
use events::organisation::OrganisationEvent;
use events::user::UserEvent;
use events::{RecordedEvent, TypedEvent, Upcasters};
use sqlx::{AssertSqlSafe, PgConnection, PgPool};

use crate::{Projection, table};

pub struct Access;

pub const USERS: &str = "rm_users";
pub const ORGANISATIONS: &str = "rm_organisations";
pub const MEMBERSHIPS: &str = "rm_memberships";
pub const INVITATIONS: &str = "rm_invitations";
pub const API_KEYS: &str = "rm_api_keys";

/// The channel access changes are announced on (`service::auth::cache::CHANNEL`).
pub const ACCESS_CHANNEL: &str = "corbi_access";

const HANDLES: &[&str] = &[
    "UserRegistered",
    "UserRenamed",
    "OrganisationCreated",
    "OrganisationRenamed",
    "BrandingUpdated",
    "LogoChanged",
    "MemberAdded",
    "MemberRoleChanged",
    "MemberRemoved",
    "InvitationCreated",
    "InvitationResent",
    "InvitationAccepted",
    "InvitationRevoked",
    "ApiKeyCreated",
    "ApiKeyRevoked",
];

#[async_trait]
impl Projection for Access {
    fn name(&self) -> &'static str {
        "access"
    }

    fn version(&self) -> i32 {
        1
    }

    fn handles(&self) -> &'static [&'static str] {
        HANDLES
    }

    fn views(&self) -> &'static [&'static str] {
        &[USERS, ORGANISATIONS, MEMBERSHIPS, INVITATIONS, API_KEYS]
    }

    async fn create(&self, conn: &mut PgConnection, generation: i32) -> anyhow::Result<()> {
        let users = table(USERS, generation);
        let organisations = table(ORGANISATIONS, generation);
        let memberships = table(MEMBERSHIPS, generation);
        let invitations = table(INVITATIONS, generation);
        let api_keys = table(API_KEYS, generation);
        sqlx::raw_sql(AssertSqlSafe(format!(
            "CREATE TABLE {users} (
                 user_id       uuid PRIMARY KEY,
                 email         text NOT NULL,
                 name          text NOT NULL,
                 registered_at timestamptz NOT NULL
             );
             CREATE TABLE {organisations} (
                 org_id               uuid PRIMARY KEY,
                 name                 text NOT NULL,
                 created_by           uuid NOT NULL,
                 created_at           timestamptz NOT NULL,
                 company_name         text,
                 website              text,
                 address              text,
                 timezone             text,
                 default_phone_region text,
                 logo_id              uuid,
                 logo_content_type    text,
                 logo_size            bigint,
                 updated_at           timestamptz NOT NULL
             );
             CREATE TABLE {memberships} (
                 org_id        uuid NOT NULL,
                 user_id       uuid NOT NULL,
                 email         text NOT NULL,
                 role          text NOT NULL,
                 invitation_id uuid,
                 joined_at     timestamptz NOT NULL,
                 PRIMARY KEY (org_id, user_id)
             );
             CREATE TABLE {invitations} (
                 org_id        uuid NOT NULL,
                 invitation_id uuid NOT NULL,
                 email         text NOT NULL,
                 role          text NOT NULL,
                 state         text NOT NULL,
                 invited_by    jsonb NOT NULL,
                 expires_at    timestamptz NOT NULL,
                 created_at    timestamptz NOT NULL,
                 updated_at    timestamptz NOT NULL,
                 accepted_by   uuid,
                 PRIMARY KEY (org_id, invitation_id)
             );
             CREATE TABLE {api_keys} (
                 key_id      uuid PRIMARY KEY,
                 org_id      uuid NOT NULL,
                 name        text NOT NULL,
                 role        text NOT NULL,
                 prefix      text NOT NULL,
                 secret_hash text NOT NULL UNIQUE,
                 created_by  jsonb NOT NULL,
                 created_at  timestamptz NOT NULL,
                 revoked_at  timestamptz
             )"
        )))
        .execute(conn)
        .await?;
        Ok(())
    }

    async fn create_indexes(&self, pool: &PgPool, generation: i32) -> anyhow::Result<()> {
        let memberships = table(MEMBERSHIPS, generation);
        let api_keys = table(API_KEYS, generation);
        crate::build_indexes(
            pool,
            vec![
                format!("CREATE INDEX ON {memberships} (user_id, org_id)"),
                format!("CREATE INDEX ON {api_keys} (org_id, created_at)"),
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
        let tables = Tables::of(generation);
        let mut access_changed = false;
        for event in events {
            if let Some(user_event) = UserEvent::decode(event, &upcasters)? {
                access_changed |= matches!(user_event, UserEvent::UserRenamed { .. });
                apply_user(conn, &tables, event, user_event).await?;
            } else if let Some(org_event) = OrganisationEvent::decode(event, &upcasters)? {
                access_changed = true;
                apply_organisation(conn, &tables, event, org_event).await?;
            }
        }
        if access_changed {
            // Delivered when this batch commits: every process drops what it cached about
            // callers, so a removed member or a revoked key is refused from then on.
            sqlx::query("SELECT pg_notify($1, 'all')")
                .bind(ACCESS_CHANNEL)
                .execute(conn)
                .await?;
        }
        Ok(())
    }
}

struct Tables {
    users: String,
    organisations: String,
    memberships: String,
    invitations: String,
    api_keys: String,
}

impl Tables {
    fn of(generation: i32) -> Self {
        Self {
            users: table(USERS, generation),
            organisations: table(ORGANISATIONS, generation),
            memberships: table(MEMBERSHIPS, generation),
            invitations: table(INVITATIONS, generation),
            api_keys: table(API_KEYS, generation),
        }
    }
}

async fn apply_user(
    conn: &mut PgConnection,
    tables: &Tables,
    event: &RecordedEvent,
    user_event: UserEvent,
) -> anyhow::Result<()> {
    let users = &tables.users;
    let user_id = crate::stream_id(&event.stream, "user")?;
    match user_event {
        UserEvent::UserRegistered { email, name, .. } => {
            sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO {users} (user_id, email, name, registered_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (user_id) DO NOTHING"
            )))
            .bind(user_id)
            .bind(email.as_str())
            .bind(name)
            .bind(event.recorded_at)
            .execute(conn)
            .await?;
        }
        UserEvent::UserRenamed { name } => {
            sqlx::query(AssertSqlSafe(format!(
                "UPDATE {users} SET name = $2 WHERE user_id = $1"
            )))
            .bind(user_id)
            .bind(name)
            .execute(conn)
            .await?;
        }
        UserEvent::PasswordChanged {}
        | UserEvent::SignedIn { .. }
        | UserEvent::SessionsEnded { .. } => {}
    }
    Ok(())
}

async fn apply_organisation(
    conn: &mut PgConnection,
    tables: &Tables,
    event: &RecordedEvent,
    org_event: OrganisationEvent,
) -> anyhow::Result<()> {
    use OrganisationEvent as E;
    let Tables {
        organisations,
        memberships,
        invitations,
        api_keys,
        ..
    } = tables;
    let org_id = event.org_id;
    let at = event.recorded_at;
    let actor = serde_json::to_value(&event.metadata.actor)?;
    let query = match org_event {
        E::OrganisationCreated {
            name, created_by, ..
        } => sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {organisations} (org_id, name, created_by, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $4) ON CONFLICT (org_id) DO NOTHING"
        )))
        .bind(org_id)
        .bind(name)
        .bind(created_by)
        .bind(at),
        E::OrganisationRenamed { name } => sqlx::query(AssertSqlSafe(format!(
            "UPDATE {organisations} SET name = $2, updated_at = $3 WHERE org_id = $1"
        )))
        .bind(org_id)
        .bind(name)
        .bind(at),
        E::BrandingUpdated { branding } => sqlx::query(AssertSqlSafe(format!(
            "UPDATE {organisations} SET company_name = $2, website = $3, address = $4,
                 timezone = $5, default_phone_region = $6, updated_at = $7
             WHERE org_id = $1"
        )))
        .bind(org_id)
        .bind(branding.company_name)
        .bind(branding.website)
        .bind(branding.address)
        .bind(branding.timezone)
        .bind(branding.default_phone_region)
        .bind(at),
        E::LogoChanged {
            logo_id,
            content_type,
            size,
        } => sqlx::query(AssertSqlSafe(format!(
            "UPDATE {organisations} SET logo_id = $2, logo_content_type = $3, logo_size = $4,
                 updated_at = $5
             WHERE org_id = $1"
        )))
        .bind(org_id)
        .bind(logo_id)
        .bind(content_type)
        .bind(i64::try_from(size).unwrap_or(i64::MAX))
        .bind(at),
        E::MemberAdded {
            user_id,
            email,
            role,
            invitation_id,
        } => sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {memberships} (org_id, user_id, email, role, invitation_id, joined_at)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (org_id, user_id) DO NOTHING"
        )))
        .bind(org_id)
        .bind(user_id)
        .bind(email.as_str().to_owned())
        .bind(role.as_str())
        .bind(invitation_id)
        .bind(at),
        E::MemberRoleChanged { user_id, to, .. } => sqlx::query(AssertSqlSafe(format!(
            "UPDATE {memberships} SET role = $3 WHERE org_id = $1 AND user_id = $2"
        )))
        .bind(org_id)
        .bind(user_id)
        .bind(to.as_str()),
        E::MemberRemoved { user_id } => sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM {memberships} WHERE org_id = $1 AND user_id = $2"
        )))
        .bind(org_id)
        .bind(user_id),
        E::InvitationCreated {
            invitation_id,
            email,
            role,
            expires_at,
            ..
        } => sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {invitations} (org_id, invitation_id, email, role, state, invited_by,
                                        expires_at, created_at, updated_at)
             VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7, $7)
             ON CONFLICT (org_id, invitation_id) DO NOTHING"
        )))
        .bind(org_id)
        .bind(invitation_id)
        .bind(email.as_str().to_owned())
        .bind(role.as_str())
        .bind(actor)
        .bind(expires_at)
        .bind(at),
        E::InvitationResent {
            invitation_id,
            expires_at,
            ..
        } => sqlx::query(AssertSqlSafe(format!(
            "UPDATE {invitations} SET expires_at = $3, updated_at = $4
             WHERE org_id = $1 AND invitation_id = $2"
        )))
        .bind(org_id)
        .bind(invitation_id)
        .bind(expires_at)
        .bind(at),
        E::InvitationAccepted {
            invitation_id,
            user_id,
        } => sqlx::query(AssertSqlSafe(format!(
            "UPDATE {invitations} SET state = 'accepted', accepted_by = $3, updated_at = $4
             WHERE org_id = $1 AND invitation_id = $2"
        )))
        .bind(org_id)
        .bind(invitation_id)
        .bind(user_id)
        .bind(at),
        E::InvitationRevoked { invitation_id } => sqlx::query(AssertSqlSafe(format!(
            "UPDATE {invitations} SET state = 'revoked', updated_at = $3
             WHERE org_id = $1 AND invitation_id = $2"
        )))
        .bind(org_id)
        .bind(invitation_id)
        .bind(at),
        E::ApiKeyCreated {
            key_id,
            name,
            role,
            prefix,
            secret_hash,
        } => sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {api_keys} (key_id, org_id, name, role, prefix, secret_hash, created_by,
                                     created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (key_id) DO NOTHING"
        )))
        .bind(key_id)
        .bind(org_id)
        .bind(name)
        .bind(role.as_str())
        .bind(prefix)
        .bind(secret_hash)
        .bind(actor)
        .bind(at),
        E::ApiKeyRevoked { key_id } => sqlx::query(AssertSqlSafe(format!(
            "UPDATE {api_keys} SET revoked_at = $3 WHERE org_id = $1 AND key_id = $2"
        )))
        .bind(org_id)
        .bind(key_id)
        .bind(at),
    };
    query.execute(conn).await?;
    Ok(())
}
