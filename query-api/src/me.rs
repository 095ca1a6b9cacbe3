//! The signed-in user: `GET /api/v1/me` (who they are and the organisations they belong to, with
//! their role in each) and `GET /api/v1/me/sessions` (where they are signed in).

use actix_web::http::header::ContentType;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use service::auth::cache::{Key, Value};
use service::auth::secret::{self, Kind};
use service::auth::{self, Authenticated};
use service::consistency::{ConsistencyToken, wait_for_projection};
use service::{ApiError, Problem};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{ACCESS, QueryState, db_error};

pub const ME: &str = "/api/v1/me";
pub const SESSIONS: &str = "/api/v1/me/sessions";

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Me {
    pub user_id: Uuid,
    /// `null` for a moment after registering, until the read model has the account.
    pub email: Option<String>,
    pub name: Option<String>,
    pub organisations: Vec<MyOrganisation>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MyOrganisation {
    pub organisation_id: Uuid,
    pub name: String,
    /// `admin`, `staff` or `viewer`.
    pub role: String,
    pub joined_at: DateTime<Utc>,
}

/// The session's user beside each of their memberships (or one row of NULLs).
#[derive(sqlx::FromRow)]
struct MeRow {
    user_id: Uuid,
    access_expires_at: DateTime<Utc>,
    email: Option<String>,
    name: Option<String>,
    org_id: Option<Uuid>,
    org_name: Option<String>,
    role: Option<String>,
    joined_at: Option<DateTime<Utc>>,
}

/// The signed-in user and their organisations.
#[utoipa::path(
    get,
    path = "/api/v1/me",
    tag = "auth",
    security(("bearer" = [])),
    params(("X-Consistency-Token" = Option<String>, Header, description = "Wait until this write is visible")),
    responses(
        (status = 200, description = "The user", body = Me),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "me", skip_all, fields(user_id = tracing::field::Empty))]
pub async fn me(
    state: web::Data<QueryState>,
    request: HttpRequest,
    token: ConsistencyToken,
) -> Result<HttpResponse, ApiError> {
    // The session is checked in the same statement that reads the user: one round trip, since
    // this is what every page of the UI asks first.
    let access_token = auth::bearer_token(&request)?;
    if !secret::is_shaped_like(&access_token, Kind::AccessToken) {
        return Err(auth::invalid_access_token());
    }
    let hash = secret::hash(&access_token);
    let key = Key::Me(hash.clone());
    match token.0 {
        Some(token) => {
            wait_for_projection(&state.pool, ACCESS, token, state.consistency_timeout).await?;
        }
        None => {
            if let Some(Value::Me(body)) = state.sessions.cache().get(&key) {
                return Ok(json(body));
            }
        }
    }
    let rows: Vec<MeRow> = sqlx::query_as(
        "SELECT s.user_id, s.access_expires_at, u.email, u.name, m.org_id, o.name AS org_name, m.role, m.joined_at
         FROM sessions s
         LEFT JOIN rm_users u ON u.user_id = s.user_id
         LEFT JOIN rm_memberships m ON m.user_id = s.user_id
         LEFT JOIN rm_organisations o ON o.org_id = m.org_id
         WHERE s.access_hash = $1 AND s.ended_at IS NULL AND s.access_expires_at > now()
         ORDER BY o.name, m.org_id",
    )
    .bind(&hash)
    .fetch_all(&state.pool)
    .await
    .map_err(|e| db_error(e, "reading the signed-in user"))?;
    let first = rows.first().ok_or_else(auth::invalid_access_token)?;
    let (user_id, expires_at) = (first.user_id, first.access_expires_at);
    let (email, name) = (first.email.clone(), first.name.clone());
    tracing::Span::current().record("user_id", tracing::field::display(user_id));
    let organisations = rows
        .into_iter()
        .filter_map(|row| {
            Some(MyOrganisation {
                organisation_id: row.org_id?,
                name: row.org_name.unwrap_or_default(),
                role: row.role?,
                joined_at: row.joined_at?,
            })
        })
        .collect();
    let body = serde_json::to_vec(&Me {
        user_id,
        email,
        name,
        organisations,
    })
    .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("encoding /me")))?;
    let body = bytes::Bytes::from(body);
    state.sessions.cache().insert(
        key,
        Some(user_id),
        Some(expires_at),
        Value::Me(body.clone()),
    );
    Ok(json(body))
}

fn json(body: bytes::Bytes) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(body)
}

/// A signed-in session: one sign-in, with every refresh of it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SessionView {
    /// Revoke it with `DELETE /api/v1/me/sessions/{session_id}`.
    pub session_id: Uuid,
    pub signed_in_at: DateTime<Utc>,
    pub last_refreshed_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// The session this request was made with.
    pub current: bool,
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    family_id: Uuid,
    signed_in_at: DateTime<Utc>,
    last_refreshed_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    ip: Option<String>,
    user_agent: Option<String>,
}

/// The caller's live sessions, most recently active first.
#[utoipa::path(
    get,
    path = "/api/v1/me/sessions",
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Live sessions", body = Vec<SessionView>),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "my_sessions", skip_all, fields(user_id = %caller.0.user_id))]
pub async fn sessions(
    state: web::Data<QueryState>,
    caller: Authenticated,
) -> Result<HttpResponse, ApiError> {
    let rows: Vec<SessionRow> = sqlx::query_as(
        "SELECT family_id, min(created_at) AS signed_in_at, max(created_at) AS last_refreshed_at,
                max(refresh_expires_at) FILTER (WHERE ended_at IS NULL) AS expires_at,
                (array_agg(ip ORDER BY created_at DESC))[1] AS ip,
                (array_agg(user_agent ORDER BY created_at DESC))[1] AS user_agent
         FROM sessions WHERE user_id = $1
         GROUP BY family_id
         HAVING bool_or(ended_at IS NULL AND refresh_expires_at > now())
         ORDER BY max(created_at) DESC",
    )
    .bind(caller.0.user_id)
    .fetch_all(&state.pool)
    .await
    .map_err(|e| db_error(e, "reading sessions"))?;
    let sessions: Vec<SessionView> = rows
        .into_iter()
        .map(|row| SessionView {
            session_id: row.family_id,
            signed_in_at: row.signed_in_at,
            last_refreshed_at: row.last_refreshed_at,
            expires_at: row.expires_at,
            ip: row.ip,
            user_agent: row.user_agent,
            current: row.family_id == caller.0.family_id,
        })
        .collect();
    Ok(HttpResponse::Ok().json(sessions))
}
