//! The OpenAPI document: the operations endpoints every server has, merged with the paths each
//! API contributes. Served at `/api/openapi.json`, browsable at `/api/docs`.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::problem::{FieldError, Problem};
use crate::readiness::{CheckResult, ReadinessReport, ReadyStatus};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Corbi",
        description = "Contacts, messages, campaigns and bookings over WhatsApp, email, Telegram \
                       and Instagram. Reads (`GET`) are served by the query side, writes by the \
                       command side; errors are `application/problem+json` (RFC 9457)."
    ),
    paths(
        crate::readiness::health,
        crate::readiness::ready,
        crate::metrics::metrics_endpoint
    ),
    components(schemas(Problem, FieldError, ReadinessReport, ReadyStatus, CheckResult)),
    tags((name = "operations", description = "Liveness, readiness and metrics")),
    modifiers(&SecuritySchemes)
)]
struct OperationsDoc;

/// `bearer`: a user's access token (or an API key) in `Authorization: Bearer …`;
/// `api_key`: an API key in `X-API-Key`.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}

/// The document of a server serving `apis`: the operations endpoints plus every API's paths,
/// schemas and tags.
pub fn combined(
    apis: impl IntoIterator<Item = utoipa::openapi::OpenApi>,
) -> utoipa::openapi::OpenApi {
    let mut doc = OperationsDoc::openapi();
    for api in apis {
        doc.merge(api);
    }
    doc
}
