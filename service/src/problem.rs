//! Errors as `application/problem+json` (RFC 9457, DESIGN §4).
//!
//! Handlers return [`ApiError`]; extractors and the router answer with a [`Problem`] directly.
//! Either way the client gets a problem document, never a plain-text error, and a 5xx never
//! carries internals: its cause chain goes to the log.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// What was wrong with one field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FieldError {
    /// The field, query parameter or header, e.g. `channel`, `from` or `X-Org-ID`.
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// An RFC 9457 problem document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem; `about:blank` when the status says it all.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// One entry per invalid field (validation problems only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Sent as the `Retry-After` header (seconds), not in the body.
    #[serde(skip)]
    #[schema(ignore)]
    pub retry_after: Option<Duration>,
}

impl Problem {
    /// A problem whose kind is the status itself (`about:blank`, title = reason phrase).
    pub fn new(status: StatusCode) -> Self {
        Self {
            kind: "about:blank".into(),
            title: status.canonical_reason().unwrap_or("Error").into(),
            status: status.as_u16(),
            detail: None,
            instance: None,
            errors: Vec::new(),
            retry_after: None,
        }
    }

    /// A named kind of problem: `urn:corbi:problem:<slug>` with its own title.
    pub fn typed(status: StatusCode, slug: &str, title: impl Into<String>) -> Self {
        Self {
            kind: format!("urn:corbi:problem:{slug}"),
            title: title.into(),
            ..Self::new(status)
        }
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn instance(mut self, instance: impl Into<String>) -> Self {
        self.instance = Some(instance.into());
        self
    }

    pub fn errors(mut self, errors: Vec<FieldError>) -> Self {
        self.errors = errors;
        self
    }

    pub fn retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The problem as an HTTP response.
    pub fn to_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON)));
        if self.status == StatusCode::UNAUTHORIZED.as_u16() {
            // RFC 9110 §11.6.1: a 401 names the scheme that would work.
            response.insert_header((
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"corbi\""),
            ));
        }
        if let Some(after) = self.retry_after {
            // Retry-After counts whole seconds; never tell a client to retry at once.
            let seconds = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            response.insert_header((header::RETRY_AFTER, seconds.max(1)));
        }
        match serde_json::to_vec(self) {
            Ok(body) => response.body(body),
            Err(_) => response
                .body(r#"{"type":"about:blank","title":"Internal Server Error","status":500}"#),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.title)?;
        if let Some(detail) = &self.detail {
            write!(f, ": {detail}")?;
        }
        Ok(())
    }
}

impl ResponseError for Problem {
    fn status_code(&self) -> StatusCode {
        Problem::status_code(self)
    }

    fn error_response(&self) -> HttpResponse {
        self.to_response()
    }
}

/// The error of every handler.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request cannot be understood (malformed syntax, missing header): 400.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The request is well-formed but some fields are invalid: 422 with one entry per field.
    #[error("validation failed: {errors:?}")]
    Validation { errors: Vec<FieldError> },
    /// Well-formed and valid, but it cannot be processed as sent (e.g. an idempotency key
    /// reused with another body): 422.
    #[error("unprocessable: {detail}")]
    Unprocessable { slug: &'static str, detail: String },
    /// No credentials, or ones that are wrong, expired or revoked: 401 with
    /// `WWW-Authenticate: Bearer`.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// Authenticated, but the role (or the deployment's settings) does not allow it: 403.
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("not found: {0}")]
    NotFound(String),
    /// The thing existed but can no longer be used (an expired or used invitation): 410.
    #[error("gone: {0}")]
    Gone(String),
    /// Too many attempts; the client may try again after `retry_after`: 429.
    #[error("too many requests: {detail}")]
    TooManyRequests {
        detail: String,
        retry_after: Duration,
    },
    /// The request conflicts with the current state (e.g. a concurrent change): 409.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A value that must be unique (an email, a phone number…) belongs to `holder`: 409 naming
    /// the field and the holder.
    #[error("{field} is taken by {holder}")]
    Taken { field: String, holder: uuid::Uuid },
    /// A dependency is down or too slow; worth retrying after the given delay: 503.
    #[error("unavailable: {detail}")]
    Unavailable {
        detail: String,
        retry_after: Option<Duration>,
    },
    /// Anything else. The client gets a generic 500; the whole cause chain is logged.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Validation {
            errors: vec![FieldError::new(field, message)],
        }
    }

    pub fn problem(&self) -> Problem {
        match self {
            ApiError::BadRequest(detail) => Problem::new(StatusCode::BAD_REQUEST).detail(detail),
            ApiError::Validation { errors } => Problem::typed(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation-error",
                "The request has invalid fields",
            )
            .detail(match errors.as_slice() {
                [one] => format!("{}: {}", one.field, one.message),
                _ => format!("{} fields are invalid", errors.len()),
            })
            .errors(errors.clone()),
            ApiError::Unprocessable { slug, detail } => {
                let title = StatusCode::UNPROCESSABLE_ENTITY
                    .canonical_reason()
                    .unwrap_or("Unprocessable Entity");
                Problem::typed(StatusCode::UNPROCESSABLE_ENTITY, slug, title).detail(detail)
            }
            ApiError::Unauthorized(detail) => Problem::new(StatusCode::UNAUTHORIZED).detail(detail),
            ApiError::Forbidden(detail) => Problem::new(StatusCode::FORBIDDEN).detail(detail),
            ApiError::Gone(detail) => Problem::new(StatusCode::GONE).detail(detail),
            ApiError::NotFound(detail) => Problem::new(StatusCode::NOT_FOUND).detail(detail),
            ApiError::TooManyRequests {
                detail,
                retry_after,
            } => Problem::new(StatusCode::TOO_MANY_REQUESTS)
                .detail(detail)
                .retry_after(*retry_after),
            ApiError::Conflict(detail) => Problem::new(StatusCode::CONFLICT).detail(detail),
            ApiError::Taken { field, holder } => Problem::typed(
                StatusCode::CONFLICT,
                "identity-taken",
                "A unique value belongs to another record",
            )
            .detail(format!("{field}: belongs to {holder}"))
            .errors(vec![FieldError::new(
                field.clone(),
                format!("belongs to {holder}"),
            )]),
            ApiError::Unavailable {
                detail,
                retry_after,
            } => {
                let problem = Problem::new(StatusCode::SERVICE_UNAVAILABLE).detail(detail);
                match retry_after {
                    Some(after) => problem.retry_after(*after),
                    None => problem,
                }
            }
            ApiError::Internal(_) => Problem::new(StatusCode::INTERNAL_SERVER_ERROR)
                .detail("The server failed to handle the request; it has been logged."),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.problem().status_code()
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            ApiError::Internal(error) => {
                tracing::error!(error = %format!("{error:#}"), "request failed");
            }
            ApiError::Unavailable { detail, .. } => {
                tracing::warn!(%detail, "request answered 503");
            }
            _ => {}
        }
        self.problem().to_response()
    }
}

#[cfg(test)]
mod tests {
    use actix_web::body::MessageBody;

    use super::*;

    fn body_json(response: HttpResponse) -> serde_json::Value {
        let bytes = response
            .into_body()
            .try_into_bytes()
            .expect("in-memory body");
        serde_json::from_slice(&bytes).expect("problem is JSON")
    }

    #[test]
    fn validation_lists_each_field() {
        let error = ApiError::Validation {
            errors: vec![
                FieldError::new("channel", "must not be empty"),
                FieldError::new("org_id", "must be a UUID"),
            ],
        };
        let response = error.error_response();
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            response
                .headers()
                .get(header::CONTENT_TYPE)
                .expect("content type"),
            PROBLEM_JSON
        );
        let body = body_json(response);
        assert_eq!(body["type"], "urn:corbi:problem:validation-error");
        assert_eq!(body["status"], 422);
        assert_eq!(body["errors"][1]["field"], "org_id");
        assert_eq!(body["errors"][0]["message"], "must not be empty");
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let cause = anyhow::anyhow!("password authentication failed for user corbi")
            .context("loading the stream");
        let response = ApiError::Internal(cause).error_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = body_json(response);
        assert_eq!(body["title"], "Internal Server Error");
        assert!(!body.to_string().contains("password"), "{body}");
        assert!(body.get("errors").is_none());
    }

    #[test]
    fn unavailable_sets_retry_after_in_whole_seconds() {
        let response = ApiError::Unavailable {
            detail: "projection behind".into(),
            retry_after: Some(Duration::from_millis(1500)),
        }
        .error_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response
                .headers()
                .get(header::RETRY_AFTER)
                .expect("retry-after"),
            "2"
        );
    }
}
