//! The request context of every organisation route (DESIGN §8): who calls — a signed-in user or
//! an API key — for which organisation, in which role.
//!
//! Memberships and API keys are read from the `access` read model. Commands that change them
//! wait until that model has their event before they answer, so a revoked key or a removed
//! member is refused from the next request on.
//!
//! Anything about an organisation the caller does not belong to answers 404, never 403: a
//! stranger learns nothing, not even that the organisation exists.

use std::future::Future;
use std::pin::Pin;

use actix_web::{FromRequest, HttpMessage, HttpRequest, dev::Payload, web};
use chrono::{DateTime, Utc};
use events::{Actor, Metadata, Role};
use uuid::Uuid;

use super::cache::{Key, Value};
use super::secret::{self, Kind};
use super::session::{Client, Sessions};
use super::{bearer_token, client};
use crate::extract::{ORG_ID_HEADER, org_id_header};
use crate::{ApiError, Problem, RequestId};

/// An authenticated caller acting for one organisation.
#[derive(Debug, Clone)]
pub struct Caller {
    pub org_id: Uuid,
    pub role: Role,
    pub actor: Actor,
    pub client: Client,
    pub request_id: Option<String>,
}

impl Caller {
    /// 403 unless the caller's role includes `needed`.
    pub fn require(&self, needed: Role) -> Result<(), ApiError> {
        if self.role.allows(needed) {
            return Ok(());
        }
        Err(ApiError::Forbidden(format!(
            "This needs the {needed} role in this organisation; the caller is {}.",
            self.role
        )))
    }

    /// Metadata for the events this request appends: actor, trace, address, user agent.
    pub fn metadata(&self) -> Metadata {
        self.client
            .metadata(self.actor.clone(), self.request_id.clone())
    }
}

impl Client {
    /// Metadata attributing events to `actor`, with this client's address and user agent.
    pub fn metadata(&self, actor: Actor, trace_id: Option<String>) -> Metadata {
        Metadata {
            actor,
            trace_id,
            ip: self.ip.clone(),
            user_agent: self.user_agent.clone(),
            ..Metadata::default()
        }
    }
}

/// The secret of an API key: `X-API-Key: cak_…`, or `Authorization: Bearer cak_…`.
fn api_key(req: &HttpRequest) -> Option<String> {
    if let Some(value) = req.headers().get("X-API-Key") {
        return value.to_str().ok().map(|v| v.trim().to_owned());
    }
    bearer_token(req)
        .ok()
        .filter(|token| token.starts_with(Kind::ApiKey.tag()))
}

impl FromRequest for Caller {
    type Error = Problem;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Problem>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let sessions = req.app_data::<web::Data<Sessions>>().cloned();
        let org_header = org_id_header(req);
        let key = api_key(req);
        let token = bearer_token(req);
        let client = client(req);
        let request_id = req.extensions().get::<RequestId>().map(ToString::to_string);
        Box::pin(async move {
            let sessions = sessions.ok_or_else(|| {
                ApiError::Internal(anyhow::anyhow!("Sessions is not registered as app data"))
                    .problem()
            })?;
            let org_header = org_header.map_err(|p| *p)?;
            let resolved = match key {
                Some(key) => by_api_key(&sessions, &key, org_header).await,
                None => match token {
                    Ok(token) => by_session(&sessions, &token, org_header).await,
                    Err(missing) => Err(missing),
                },
            };
            let (org_id, role, actor) = resolved.map_err(|e| e.problem())?;
            Ok(Caller {
                org_id,
                role,
                actor,
                client,
                request_id,
            })
        })
    }
}

fn no_such_organisation() -> ApiError {
    ApiError::NotFound("No such organisation.".into())
}

fn read_model_error(error: sqlx::Error) -> ApiError {
    super::unavailable(anyhow::Error::new(error).context("resolving the caller"))
}

fn parse_role(text: &str) -> Result<Role, ApiError> {
    text.parse()
        .map_err(|_| ApiError::Internal(anyhow::anyhow!("unknown role {text:?} in the read model")))
}

/// The caller `key` was resolved to before, if the cache still holds it.
fn cached(sessions: &Sessions, key: &Key) -> Option<(Uuid, Role, Actor)> {
    match sessions.cache().get(key)? {
        Value::Caller {
            org_id,
            role,
            actor,
        } => Some((org_id, role, actor)),
        _ => None,
    }
}

fn remember(
    sessions: &Sessions,
    key: Key,
    expires_at: Option<DateTime<Utc>>,
    (org_id, role, actor): &(Uuid, Role, Actor),
) {
    let user_id = match actor {
        Actor::User { id } => Some(*id),
        _ => None,
    };
    let value = Value::Caller {
        org_id: *org_id,
        role: *role,
        actor: actor.clone(),
    };
    sessions.cache().insert(key, user_id, expires_at, value);
}

/// A live session's user and expiry, beside one of the user's memberships (if any).
type MembershipRow = (Uuid, DateTime<Utc>, Option<Uuid>, Option<String>);

/// A user's session and their membership, in one round trip (none when cached).
async fn by_session(
    sessions: &Sessions,
    token: &str,
    org: Option<Uuid>,
) -> Result<(Uuid, Role, Actor), ApiError> {
    if !secret::is_shaped_like(token, Kind::AccessToken) {
        return Err(super::invalid_access_token());
    }
    let hash = secret::hash(token);
    let key = Key::Caller(hash.clone(), org);
    if let Some(caller) = cached(sessions, &key) {
        return Ok(caller);
    }
    let rows: Vec<MembershipRow> = sqlx::query_as(
        "SELECT s.user_id, s.access_expires_at, m.org_id, m.role
         FROM sessions s
         LEFT JOIN rm_memberships m
                ON m.user_id = s.user_id AND ($2::uuid IS NULL OR m.org_id = $2)
         WHERE s.access_hash = $1 AND s.ended_at IS NULL AND s.access_expires_at > now()
         LIMIT 2",
    )
    .bind(&hash)
    .bind(org)
    .fetch_all(sessions.pool())
    .await
    .map_err(read_model_error)?;
    match rows.as_slice() {
        [] => Err(super::invalid_access_token()),
        [(user_id, expires_at, Some(org_id), Some(role))] => {
            let caller = (*org_id, parse_role(role)?, Actor::User { id: *user_id });
            remember(sessions, key, Some(*expires_at), &caller);
            Ok(caller)
        }
        [(_, _, None, _)] if org.is_none() => Err(ApiError::NotFound(
            "You belong to no organisation yet: create one or accept an invitation.".into(),
        )),
        [_] => Err(no_such_organisation()),
        [_, _, ..] => Err(ApiError::BadRequest(format!(
            "{ORG_ID_HEADER}: you belong to several organisations; name one with this header."
        ))),
    }
}

async fn by_api_key(
    sessions: &Sessions,
    key: &str,
    org: Option<Uuid>,
) -> Result<(Uuid, Role, Actor), ApiError> {
    let invalid = || ApiError::Unauthorized("The API key is invalid or revoked.".into());
    if !secret::is_shaped_like(key, Kind::ApiKey) {
        return Err(invalid());
    }
    let hash = secret::hash(key);
    let cache_key = Key::Caller(hash.clone(), org);
    if let Some(caller) = cached(sessions, &cache_key) {
        return Ok(caller);
    }
    let row: Option<(Uuid, Uuid, String)> = sqlx::query_as(
        "SELECT key_id, org_id, role FROM rm_api_keys
         WHERE secret_hash = $1 AND revoked_at IS NULL",
    )
    .bind(&hash)
    .fetch_optional(sessions.pool())
    .await
    .map_err(read_model_error)?;
    let (key_id, org_id, role) = row.ok_or_else(invalid)?;
    if org.is_some_and(|wanted| wanted != org_id) {
        return Err(no_such_organisation());
    }
    // At most one write a minute per key (and none while the key is cached): "last used" is
    // for people, not an access log.
    sqlx::query(
        "INSERT INTO api_key_usage (key_id, last_used_at) VALUES ($1, now())
         ON CONFLICT (key_id) DO UPDATE SET last_used_at = now()
         WHERE api_key_usage.last_used_at < now() - interval '1 minute'",
    )
    .bind(key_id)
    .execute(sessions.pool())
    .await
    .map_err(read_model_error)?;
    let caller = (org_id, parse_role(&role)?, Actor::ApiKey { id: key_id });
    remember(sessions, cache_key, None, &caller);
    Ok(caller)
}
