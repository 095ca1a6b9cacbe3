//! What the router answers when no handler does: 404 or 405 (with `Allow`) as problems, worked
//! out from the OpenAPI document so they agree with what is documented; and the last-resort
//! rewrite of any error response that is not yet problem+json.

use actix_web::body::MessageBody;
use actix_web::dev::{ResourceDef, ServiceResponse};
use actix_web::guard::{self, Guard};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::ErrorHandlerResponse;
use actix_web::{HttpRequest, HttpResponse, web};
use utoipa::openapi::OpenApi;

use crate::problem::{PROBLEM_JSON, Problem};

/// A route that answers `GET` and `HEAD` (actix sends no body for `HEAD`).
pub fn read() -> actix_web::Route {
    web::route().guard(read_guard())
}

/// Matches `GET` and `HEAD`: the methods the query side serves.
pub fn read_guard() -> impl Guard {
    guard::Any(guard::Get()).or(guard::Head())
}

/// Every documented path pattern with the methods it accepts.
pub struct KnownRoutes {
    routes: Vec<(ResourceDef, Vec<Method>)>,
}

impl KnownRoutes {
    pub fn from_openapi(doc: &OpenApi) -> Self {
        let routes = doc
            .paths
            .paths
            .iter()
            .map(|(path, item)| {
                let mut methods = Vec::new();
                let operations = [
                    (Method::GET, item.get.is_some()),
                    (Method::HEAD, item.get.is_some() || item.head.is_some()),
                    (Method::POST, item.post.is_some()),
                    (Method::PUT, item.put.is_some()),
                    (Method::PATCH, item.patch.is_some()),
                    (Method::DELETE, item.delete.is_some()),
                    (Method::OPTIONS, item.options.is_some()),
                ];
                for (method, present) in operations {
                    if present {
                        methods.push(method);
                    }
                }
                (ResourceDef::new(path.as_str()), methods)
            })
            .collect();
        Self { routes }
    }

    /// The methods documented for `path`; `None` when no documented pattern matches it.
    pub fn allowed(&self, path: &str) -> Option<Vec<Method>> {
        let mut allowed: Vec<Method> = Vec::new();
        let mut matched = false;
        for (pattern, methods) in &self.routes {
            if pattern.is_match(path) {
                matched = true;
                for method in methods {
                    if !allowed.contains(method) {
                        allowed.push(method.clone());
                    }
                }
            }
        }
        matched.then_some(allowed)
    }
}

fn allow_header(methods: &[Method]) -> Option<HeaderValue> {
    let list = methods
        .iter()
        .map(Method::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    HeaderValue::from_str(&list).ok()
}

/// The app's default service: 405 when the path is known under other methods, else 404.
pub async fn unmatched(req: HttpRequest) -> HttpResponse {
    let allowed = req
        .app_data::<web::Data<KnownRoutes>>()
        .and_then(|known| known.allowed(req.path()));
    match allowed {
        Some(methods) => {
            let names: Vec<&str> = methods.iter().map(Method::as_str).collect();
            let mut response = Problem::new(StatusCode::METHOD_NOT_ALLOWED)
                .detail(format!(
                    "{} is not allowed on {}; allowed: {}",
                    req.method(),
                    req.path(),
                    names.join(", ")
                ))
                .instance(req.path())
                .to_response();
            if let Some(value) = allow_header(&methods) {
                response.headers_mut().insert(header::ALLOW, value);
            }
            response
        }
        None => Problem::new(StatusCode::NOT_FOUND)
            .detail(format!("There is no resource at {}.", req.path()))
            .instance(req.path())
            .to_response(),
    }
}

/// For `ErrorHandlers::default_handler`: turns any 4xx/5xx that is not JSON (actix's own
/// answers, a library's plain-text error, an empty body) into a problem with the same status,
/// keeping `Allow`, `Retry-After` and `WWW-Authenticate`. JSON bodies are deliberate (problems,
/// the `/ready` report) and pass through.
pub fn problem_fallback<B: MessageBody + 'static>(
    response: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            let v = v.trim();
            v == PROBLEM_JSON || v == "application/json"
        });
    if is_json {
        return Ok(ErrorHandlerResponse::Response(
            response.map_into_left_body(),
        ));
    }
    let status = response.status();
    let (req, old) = response.into_parts();
    let mut problem = Problem::new(status);
    if let Some(error) = old.error() {
        if status.is_server_error() {
            tracing::error!(error = %error, "request failed");
        } else {
            problem = problem.detail(error.to_string());
        }
    }
    let mut new = problem.to_response();
    for name in [header::ALLOW, header::RETRY_AFTER, header::WWW_AUTHENTICATE] {
        if let Some(value) = old.headers().get(&name) {
            new.headers_mut().insert(name, value.clone());
        }
    }
    if status == StatusCode::METHOD_NOT_ALLOWED && !new.headers().contains_key(header::ALLOW) {
        let allowed = req
            .app_data::<web::Data<KnownRoutes>>()
            .and_then(|known| known.allowed(req.path()));
        if let Some(value) = allowed.as_deref().and_then(allow_header) {
            new.headers_mut().insert(header::ALLOW, value);
        }
    }
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(req, new).map_into_right_body(),
    ))
}

#[cfg(test)]
mod tests {
    use utoipa::openapi::OpenApiBuilder;
    use utoipa::openapi::path::{HttpMethod, OperationBuilder, PathItem, PathsBuilder};

    use super::*;

    #[test]
    fn known_routes_match_templates_and_merge_methods() {
        let doc = OpenApiBuilder::new()
            .paths(
                PathsBuilder::new()
                    .path(
                        "/things",
                        PathItem::new(HttpMethod::Get, OperationBuilder::new()),
                    )
                    .path(
                        "/things",
                        PathItem::new(HttpMethod::Post, OperationBuilder::new()),
                    )
                    .path(
                        "/things/{id}",
                        PathItem::new(HttpMethod::Delete, OperationBuilder::new()),
                    ),
            )
            .build();
        let known = KnownRoutes::from_openapi(&doc);
        assert_eq!(
            known.allowed("/things"),
            Some(vec![Method::GET, Method::HEAD, Method::POST])
        );
        assert_eq!(known.allowed("/things/42"), Some(vec![Method::DELETE]));
        assert_eq!(known.allowed("/things/42/more"), None);
        assert_eq!(known.allowed("/other"), None);
    }
}
