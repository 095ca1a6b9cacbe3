//! Authentication: password hashing ([`password`]), the random secrets behind tokens, invitation
//! links and API keys ([`secret`]), sessions ([`session`]), and the extractors that turn a
//! request's credentials into a caller.

pub mod cache;
pub mod caller;
pub mod password;
pub mod secret;
pub mod session;
pub mod throttle;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};

use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};

use crate::ApiError;
use session::{Client, Session, Sessions};

/// A request from a signed-in user: `Authorization: Bearer <access token>` of a live session.
/// Needs `web::Data<Sessions>` in the app.
#[derive(Debug, Clone, Copy)]
pub struct Authenticated(pub Session);

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let sessions = req.app_data::<web::Data<Sessions>>().cloned();
        let token = bearer_token(req);
        Box::pin(async move {
            let sessions = sessions.ok_or_else(|| {
                ApiError::Internal(anyhow::anyhow!("Sessions is not registered as app data"))
            })?;
            let token = token?;
            match sessions.authenticate(&token).await {
                Ok(Some(session)) => Ok(Authenticated(session)),
                Ok(None) => Err(invalid_access_token()),
                Err(error) => Err(unavailable(error)),
            }
        })
    }
}

/// The answer to an access token that is not (or no longer) a live session's.
pub fn invalid_access_token() -> ApiError {
    ApiError::Unauthorized(
        "The access token is invalid, expired or revoked; sign in or refresh.".into(),
    )
}

/// The token of `Authorization: Bearer <token>`.
pub fn bearer_token(req: &HttpRequest) -> Result<String, ApiError> {
    let missing = || {
        ApiError::Unauthorized(
            "This needs a signed-in caller: send `Authorization: Bearer <access token>`.".into(),
        )
    };
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or_else(missing)?
        .to_str()
        .map_err(|_| missing())?;
    let (scheme, token) = value.split_once(' ').ok_or_else(missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(missing());
    }
    Ok(token.trim().to_owned())
}

/// Whether client addresses come from `Forwarded` / `X-Forwarded-For`. Off unless configured
/// (`CORBI_TRUST_FORWARDED`): anyone can send those headers, and the per-address sign-in limit
/// would mean nothing if they were believed without a proxy that overwrites them.
static TRUST_FORWARDED: AtomicBool = AtomicBool::new(false);

/// Set once at start-up from the configuration.
pub fn trust_forwarded_headers(trust: bool) {
    TRUST_FORWARDED.store(trust, Ordering::Relaxed);
}

/// The client's address (without port) and user agent, as recorded with its session and in the
/// audit trail.
pub fn client(req: &HttpRequest) -> Client {
    let ip = if TRUST_FORWARDED.load(Ordering::Relaxed) {
        req.connection_info().realip_remote_addr().map(|addr| {
            match addr.parse::<std::net::SocketAddr>() {
                Ok(socket) => socket.ip().to_string(),
                Err(_) => addr.to_owned(),
            }
        })
    } else {
        req.peer_addr().map(|socket| socket.ip().to_string())
    };
    Client {
        ip,
        user_agent: req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().take(512).collect()),
    }
}

/// The session store could not answer: a 503 worth retrying, its cause in the log.
pub fn unavailable(error: anyhow::Error) -> ApiError {
    tracing::warn!(error = %format!("{error:#}"), "session store unavailable");
    ApiError::Unavailable {
        detail: "Sessions cannot be checked right now; retry shortly.".into(),
        retry_after: Some(std::time::Duration::from_secs(1)),
    }
}
