//! The middleware every request goes through first: it assigns the request id, opens the span
//! the request is handled in, turns a handler panic into a 500 problem, records the HTTP metrics
//! and logs one line per request.

use std::fmt;
use std::panic::AssertUnwindSafe;
use std::time::Instant;

use actix_web::HttpMessage;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use futures::FutureExt;
use tracing::Instrument;

use crate::problem::Problem;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The id of one HTTP request: the caller's `X-Request-Id` when it sent a usable one, a fresh
/// UUID otherwise. It is in every log line of the request, echoed in the response, and is the
/// trace id commands write into event metadata.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestId(String);

impl RequestId {
    const MAX_LEN: usize = 128;

    pub fn generate() -> Self {
        RequestId(uuid::Uuid::new_v4().to_string())
    }

    /// The caller's id, if it is 1–128 visible ASCII characters (anything else could break log
    /// lines or headers, so it is replaced rather than rejected).
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let value = headers.get(REQUEST_ID_HEADER)?.as_bytes();
        let usable = !value.is_empty()
            && value.len() <= Self::MAX_LEN
            && value.iter().all(|b| b.is_ascii_graphic());
        usable.then(|| RequestId(String::from_utf8_lossy(value).into_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Paths probed every few seconds by orchestrators and scrapers: logged at debug only.
fn is_probe(path: &str) -> bool {
    matches!(path, "/health" | "/ready" | "/metrics")
}

/// The outermost middleware (`actix_web::middleware::from_fn(observe)`).
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let started = Instant::now();
    let request_id = RequestId::from_headers(req.headers()).unwrap_or_else(RequestId::generate);
    req.extensions_mut().insert(request_id.clone());
    let span = tracing::info_span!(
        "http_request",
        request_id = %request_id,
        method = %req.method(),
        path = %req.path(),
    );
    let method = req.method().to_string();

    // The request must not be cloned before routing (actix needs it uniquely owned to record
    // the match), so the two paths without a ServiceResponse answer through an InternalError
    // that carries the finished response.
    let outcome = AssertUnwindSafe(next.call(req).instrument(span.clone()))
        .catch_unwind()
        .await;
    let mut response = match outcome {
        Ok(Ok(response)) => response.map_into_boxed_body(),
        Ok(Err(error)) => {
            let response = error.error_response();
            return Err(finish_without_route(
                &span,
                &request_id,
                &method,
                started,
                error.to_string(),
                response,
            ));
        }
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a non-string panic payload".into());
            span.in_scope(|| tracing::error!(panic = %message, "handler panicked"));
            let response = Problem::new(StatusCode::INTERNAL_SERVER_ERROR)
                .detail("The server failed to handle the request; it has been logged.")
                .to_response();
            return Err(finish_without_route(
                &span,
                &request_id,
                &method,
                started,
                message,
                response,
            ));
        }
    };

    set_request_id(response.headers_mut(), &request_id);
    let status = response.status();
    let elapsed = started.elapsed();
    let pattern = response
        .request()
        .match_pattern()
        .unwrap_or_else(|| "<unmatched>".to_string());
    crate::metrics::record_request(&method, &pattern, status.as_u16(), elapsed);

    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    let path = response.request().path();
    span.in_scope(|| {
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), latency_ms, "request finished");
        } else if is_probe(path) {
            tracing::debug!(status = status.as_u16(), latency_ms, "request finished");
        } else {
            tracing::info!(status = status.as_u16(), latency_ms, "request finished");
        }
    });
    Ok(response)
}

fn set_request_id(headers: &mut HeaderMap, request_id: &RequestId) {
    if let Ok(value) = HeaderValue::from_str(request_id.as_str()) {
        headers.insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
    }
}

/// Records and logs a request that ended in an error without a routed response, and wraps the
/// response so actix sends it as is.
fn finish_without_route(
    span: &tracing::Span,
    request_id: &RequestId,
    method: &str,
    started: Instant,
    cause: String,
    mut response: actix_web::HttpResponse,
) -> actix_web::Error {
    set_request_id(response.headers_mut(), request_id);
    let status = response.status();
    let elapsed = started.elapsed();
    crate::metrics::record_request(method, "<unmatched>", status.as_u16(), elapsed);
    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    span.in_scope(|| tracing::warn!(status = status.as_u16(), latency_ms, "request failed"));
    actix_web::error::InternalError::from_response(cause, response).into()
}
