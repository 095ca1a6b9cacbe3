//! Extractor settings that answer bad input with problem+json naming what was wrong, and the
//! header extractors every API shares.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use uuid::Uuid;

use crate::problem::{FieldError, Problem};
use crate::request_id::RequestId;

/// Largest JSON body a command accepts. Commands are small; anything bigger is a mistake or abuse.
pub const JSON_LIMIT: usize = 256 * 1024;

/// `web::Json` that requires `Content-Type: application/json`, caps the body at [`JSON_LIMIT`]
/// and reports errors as problems: 415 wrong content type, 413 too large, 400 malformed JSON,
/// 422 well-formed JSON of the wrong shape.
pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(JSON_LIMIT)
        .error_handler(|error, _req| json_problem(&error).into())
}

/// `web::Query` errors as 400 problems.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|error, _req| query_problem(&error).into())
}

/// `web::Path` errors as 400 problems naming the path parameter.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|error, req| path_problem(&error, req).into())
}

fn json_problem(error: &JsonPayloadError) -> Problem {
    match error {
        JsonPayloadError::ContentType => Problem::new(StatusCode::UNSUPPORTED_MEDIA_TYPE)
            .detail("The body must be JSON, sent with `Content-Type: application/json`."),
        JsonPayloadError::OverflowKnownLength { length, limit } => {
            Problem::new(StatusCode::PAYLOAD_TOO_LARGE).detail(format!(
                "The body has {length} bytes; at most {limit} are accepted."
            ))
        }
        JsonPayloadError::Overflow { limit } => Problem::new(StatusCode::PAYLOAD_TOO_LARGE).detail(
            format!("The body is larger than the {limit} bytes accepted."),
        ),
        JsonPayloadError::Deserialize(error) => match error.classify() {
            serde_json::error::Category::Data => {
                let (field, message) = describe_data_error(&error.to_string());
                Problem::typed(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "validation-error",
                    "The request has invalid fields",
                )
                .detail(format!("{field}: {message}"))
                .errors(vec![FieldError::new(field, message)])
            }
            _ => Problem::typed(
                StatusCode::BAD_REQUEST,
                "malformed-json",
                "The body is not valid JSON",
            )
            .detail(error.to_string()),
        },
        JsonPayloadError::Payload(error) => Problem::new(StatusCode::BAD_REQUEST)
            .detail(format!("The body could not be read: {error}")),
        _ => Problem::new(StatusCode::BAD_REQUEST).detail("The body could not be read as JSON."),
    }
}

/// The field a serde data error is about, when its message names one, and the message.
///
/// serde_json reports `missing field `x``, `unknown field `x`, expected …` and
/// `invalid type: …, expected …` without a path; the first two name their field.
fn describe_data_error(message: &str) -> (String, String) {
    for prefix in ["missing field `", "unknown field `", "duplicate field `"] {
        if let Some(rest) = message.strip_prefix(prefix)
            && let Some((field, _)) = rest.split_once('`')
        {
            return (field.to_string(), message.to_string());
        }
    }
    ("body".to_string(), message.to_string())
}

fn query_problem(error: &QueryPayloadError) -> Problem {
    let message = match error {
        QueryPayloadError::Deserialize(error) => error.to_string(),
        _ => "the query string cannot be read".to_string(),
    };
    let (field, message) = describe_data_error(&message);
    let field = if field == "body" {
        "query".to_string()
    } else {
        field
    };
    Problem::typed(
        StatusCode::BAD_REQUEST,
        "invalid-query",
        "The query string is invalid",
    )
    .detail(format!("{field}: {message}"))
    .errors(vec![FieldError::new(field, message)])
}

fn path_problem(error: &PathError, req: &HttpRequest) -> Problem {
    let message = match error {
        PathError::Deserialize(error) => error.to_string(),
        _ => "the path cannot be read".to_string(),
    };
    let names: Vec<&str> = req.match_info().iter().map(|(name, _)| name).collect();
    let field = match names.as_slice() {
        [one] => (*one).to_string(),
        _ => "path".to_string(),
    };
    Problem::typed(
        StatusCode::BAD_REQUEST,
        "invalid-path",
        "A path parameter is invalid",
    )
    .detail(format!("{field}: {message}"))
    .errors(vec![FieldError::new(field, message)])
}

fn header_problem(header: &str, message: &str) -> Problem {
    Problem::typed(
        StatusCode::BAD_REQUEST,
        "invalid-header",
        "A request header is missing or invalid",
    )
    .detail(format!("{header}: {message}"))
    .errors(vec![FieldError::new(header, message)])
}

/// The header naming the organisation a request acts for.
pub const ORG_ID_HEADER: &str = "X-Org-ID";

/// The organisation `X-Org-ID` names, if the request has the header; 400 when it is not a UUID.
pub fn org_id_header(req: &HttpRequest) -> Result<Option<Uuid>, Box<Problem>> {
    req.headers()
        .get(ORG_ID_HEADER)
        .map(|value| {
            value
                .to_str()
                .ok()
                .and_then(|text| Uuid::parse_str(text.trim()).ok())
                .ok_or_else(|| {
                    Box::new(header_problem(
                        ORG_ID_HEADER,
                        "must be an organisation id (a UUID)",
                    ))
                })
        })
        .transpose()
}

/// The optional `Idempotency-Key` header: 1 to 255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(pub Option<String>);

impl IdempotencyKey {
    pub const HEADER: &'static str = "Idempotency-Key";
    pub const MAX_LEN: usize = 255;

    fn parse(value: &[u8]) -> Option<String> {
        let valid = !value.is_empty()
            && value.len() <= Self::MAX_LEN
            && value.iter().all(|b| b.is_ascii_graphic());
        valid.then(|| String::from_utf8_lossy(value).into_owned())
    }
}

impl FromRequest for IdempotencyKey {
    type Error = Problem;
    type Future = Ready<Result<Self, Problem>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let result = match req.headers().get(Self::HEADER) {
            None => Ok(IdempotencyKey(None)),
            Some(value) => Self::parse(value.as_bytes())
                .map(|key| IdempotencyKey(Some(key)))
                .ok_or_else(|| {
                    header_problem(Self::HEADER, "must be 1 to 255 visible ASCII characters")
                }),
        };
        ready(result)
    }
}

impl FromRequest for RequestId {
    type Error = std::convert::Infallible;
    type Future = Ready<Result<Self, Self::Error>>;

    /// The id the request-id middleware assigned; a fresh one outside it (e.g. unit tests).
    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let id = req
            .extensions()
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(RequestId::generate);
        ready(Ok(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_errors_name_their_field_when_serde_does() {
        assert_eq!(
            describe_data_error("missing field `org_id` at line 1 column 2").0,
            "org_id"
        );
        assert_eq!(
            describe_data_error("unknown field `chanel`, expected `org_id` or `channel`").0,
            "chanel"
        );
        assert_eq!(
            describe_data_error("invalid type: integer `5`, expected a string").0,
            "body"
        );
    }

    #[test]
    fn idempotency_keys_are_visible_ascii() {
        assert_eq!(
            IdempotencyKey::parse(b"order-42").as_deref(),
            Some("order-42")
        );
        assert!(IdempotencyKey::parse(b"").is_none());
        assert!(IdempotencyKey::parse(b"has space").is_none());
        assert!(IdempotencyKey::parse(&[b'a'; 256]).is_none());
        assert!(IdempotencyKey::parse("clé".as_bytes()).is_none());
    }
}
