//! Organisations: `POST /api/v1/organisations` (any signed-in user; the creator becomes its
//! admin), `PATCH /api/v1/organisation` (name and branding) and `PUT /api/v1/organisation/logo`
//! for the organisation the request acts for.

use std::str::FromStr;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use domain::organisation::{MAX_NAME_LEN, Organisation, OrganisationCommand, OrganisationError};
use domain::user::User;
use events::organisation::{self, Branding};
use events::{Actor, Position, Role};
use serde::{Deserialize, Serialize};
use service::auth::{self, Authenticated};
use service::{ApiError, Caller, FieldError, IdempotencyKey, Problem, RequestId};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::aggregate::{self, Decided};
use crate::{CommandState, idempotency, written};

pub const ORGANISATIONS: &str = "/api/v1/organisations";
/// Part of every id derived from an idempotency key on this endpoint.
const CREATE_ROUTE: &str = "POST /api/v1/organisations";
pub const ORGANISATION: &str = "/api/v1/organisation";
pub const LOGO: &str = "/api/v1/organisation/logo";

/// The largest logo accepted.
pub const MAX_LOGO_BYTES: usize = 1024 * 1024;

/// Bodies beyond this are cut off unread (413); between it and [`MAX_LOGO_BYTES`] they are read
/// and refused naming the field, like any other invalid input.
const MAX_LOGO_BODY: usize = 4 * MAX_LOGO_BYTES;

/// Logo types accepted, each with the bytes its files start with. SVG is refused on purpose:
/// it can carry script.
const LOGO_TYPES: &[(&str, &[&[u8]])] = &[
    ("image/png", &[b"\x89PNG\r\n\x1a\n"]),
    ("image/jpeg", &[b"\xff\xd8\xff"]),
    ("image/gif", &[b"GIF87a", b"GIF89a"]),
    ("image/webp", &[b"RIFF"]),
];

/// How an organisation presents itself. On update, the whole branding is replaced: a field left
/// out is cleared.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BrandingInput {
    #[schema(example = "Acme Dental Ltd")]
    pub company_name: Option<String>,
    #[schema(example = "https://acme.example")]
    pub website: Option<String>,
    pub address: Option<String>,
    /// An IANA time zone name.
    #[schema(example = "Europe/Lisbon")]
    pub timezone: Option<String>,
    /// ISO 3166-1 alpha-2 region phone numbers without a country code are read in.
    #[schema(example = "PT")]
    pub default_phone_region: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrganisation {
    #[schema(example = "Acme Dental")]
    pub name: String,
    pub branding: Option<BrandingInput>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateOrganisation {
    pub name: Option<String>,
    pub branding: Option<BrandingInput>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OrganisationWritten {
    pub organisation_id: Uuid,
    /// Pass as `X-Consistency-Token` to read this write back. `null` when nothing changed.
    pub consistency_token: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LogoWritten {
    pub logo_id: Uuid,
    pub content_type: String,
    pub size: u64,
    pub consistency_token: Option<String>,
}

/// What an organisation rule says, as an answer.
pub(crate) fn rejected(error: OrganisationError) -> ApiError {
    use OrganisationError as E;
    match error {
        E::NotFound => ApiError::NotFound("No such organisation.".into()),
        E::InvalidName => ApiError::validation("name", error.to_string()),
        E::NotAMember => ApiError::NotFound("No such member in this organisation.".into()),
        E::UnknownInvitation => ApiError::NotFound("No such invitation.".into()),
        E::UnknownApiKey => ApiError::NotFound("No such API key.".into()),
        E::AdminApiKey => ApiError::validation("role", error.to_string()),
        E::InvitationExpired | E::InvitationUsed | E::InvitationRevoked => {
            ApiError::Gone(format!("This invitation cannot be used: {error}."))
        }
        E::InvitationForAnotherEmail => ApiError::Forbidden(format!(
            "{error}; sign in with the invited address to accept it."
        )),
        E::AlreadyExists | E::AlreadyMember | E::LastAdmin | E::AlreadyInvited => {
            ApiError::Conflict(format!("{error}."))
        }
    }
}

/// Runs `command` on the caller's organisation and waits until the access model has it.
pub(crate) async fn execute(
    state: &CommandState,
    org_id: Uuid,
    command: OrganisationCommand,
    metadata: &events::Metadata,
) -> Result<Decided<organisation::OrganisationEvent>, ApiError> {
    let decided = aggregate::execute::<Organisation>(
        &*state.store,
        &organisation::stream(org_id),
        org_id,
        command,
        metadata,
        rejected,
    )
    .await?;
    state.settle_access(decided.position).await;
    Ok(decided)
}

fn token(position: Option<Position>) -> Option<String> {
    position.map(|p| p.to_string())
}

/// Creates organisation `org_id` with `creator` as its admin (also `corbi seed-demo`).
pub async fn create_organisation(
    state: &CommandState,
    org_id: Uuid,
    name: String,
    creator: Uuid,
    metadata: &events::Metadata,
) -> Result<Decided<organisation::OrganisationEvent>, ApiError> {
    let (user, _) = aggregate::load::<User>(&*state.store, &events::user::stream(creator)).await?;
    let email = user
        .email
        .ok_or_else(|| ApiError::Unauthorized("This account no longer exists.".into()))?;
    execute(
        state,
        org_id,
        OrganisationCommand::Create {
            organisation_id: org_id,
            name,
            creator,
            creator_email: email,
        },
        metadata,
    )
    .await
}

/// Validates a branding, naming each bad field as `branding.<field>`.
fn validate_branding(input: BrandingInput, errors: &mut Vec<FieldError>) -> Branding {
    let mut text = |field: &str, value: Option<String>, max: usize| {
        let value = value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        if let Some(v) = &value
            && (v.chars().count() > max || v.chars().any(|c| c.is_control() && c != '\n'))
        {
            errors.push(FieldError::new(
                format!("branding.{field}"),
                format!("must be at most {max} characters without control characters"),
            ));
        }
        value
    };
    let company_name = text("company_name", input.company_name, MAX_NAME_LEN);
    let website = text("website", input.website, 2048);
    let address = text("address", input.address, 1000);
    let timezone = text("timezone", input.timezone, 64);
    let region = text("default_phone_region", input.default_phone_region, 2);
    if let Some(site) = &website {
        let valid = (site.starts_with("https://") || site.starts_with("http://"))
            && site.split_once("://").is_some_and(|(_, rest)| {
                rest.split('/')
                    .next()
                    .is_some_and(|host| !host.is_empty() && !host.contains(char::is_whitespace))
            });
        if !valid {
            errors.push(FieldError::new(
                "branding.website",
                "must be an http(s) address, e.g. https://acme.example",
            ));
        }
    }
    if let Some(zone) = &timezone
        && chrono_tz::Tz::from_str(zone).is_err()
    {
        errors.push(FieldError::new(
            "branding.timezone",
            "must be an IANA time zone name, e.g. Europe/Lisbon",
        ));
    }
    let region = region.map(|r| r.to_ascii_uppercase());
    if let Some(code) = &region
        && phonenumber::country::Id::from_str(code).is_err()
    {
        errors.push(FieldError::new(
            "branding.default_phone_region",
            "must be an ISO 3166-1 alpha-2 region with a phone numbering plan, e.g. PT",
        ));
    }
    Branding {
        company_name,
        website,
        address,
        timezone,
        default_phone_region: region,
    }
}

fn validate_name(raw: &str, errors: &mut Vec<FieldError>) -> String {
    domain::organisation::valid_name(raw).unwrap_or_else(|e| {
        errors.push(FieldError::new("name", e.to_string()));
        String::new()
    })
}

/// Create an organisation; the caller becomes its admin.
#[utoipa::path(
    post,
    path = "/api/v1/organisations",
    tag = "organisations",
    security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header,
            description = "Makes retries safe: a retry answers the organisation the first try created")),
    request_body = CreateOrganisation,
    responses(
        (status = 201, description = "Created", body = OrganisationWritten),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "create_organisation", skip_all, fields(user_id = %caller.0.user_id, org_id = tracing::field::Empty))]
pub async fn create(
    state: web::Data<CommandState>,
    caller: Authenticated,
    key: IdempotencyKey,
    request: HttpRequest,
    request_id: RequestId,
    body: web::Json<CreateOrganisation>,
) -> Result<HttpResponse, ApiError> {
    let CreateOrganisation { name, branding } = body.into_inner();
    let mut errors = Vec::new();
    let name = validate_name(&name, &mut errors);
    let branding = branding.map(|b| validate_branding(b, &mut errors));
    if !errors.is_empty() {
        return Err(ApiError::Validation { errors });
    }
    let user_id = caller.0.user_id;
    // With a key, a retry derives the same id and finds the organisation its first try made.
    let org_id = match &key.0 {
        Some(key) => idempotency::derive(user_id, key, CREATE_ROUTE, Some("organisation_id")),
        None => Uuid::now_v7(),
    };
    tracing::Span::current().record("org_id", tracing::field::display(org_id));
    let mut metadata =
        auth::client(&request).metadata(Actor::User { id: user_id }, Some(request_id.to_string()));
    metadata.idempotency_key.clone_from(&key.0);
    let created = create_organisation(&state, org_id, name.clone(), user_id, &metadata).await;
    let mut decided = match created {
        Err(ApiError::Conflict(_)) if key.0.is_some() => {
            let (existing, _) =
                aggregate::load::<Organisation>(&*state.store, &organisation::stream(org_id))
                    .await?;
            let same = existing.name == name
                && existing
                    .members
                    .get(&user_id)
                    .is_some_and(|m| m.role == Role::Admin);
            if !same {
                return Err(ApiError::Unprocessable {
                    slug: "idempotency-key-reused",
                    detail: format!(
                        "This Idempotency-Key was already used for a different request to \
                         {CREATE_ROUTE}; send a new key for a new request."
                    ),
                });
            }
            Decided {
                events: Vec::new(),
                position: None,
            }
        }
        other => other?,
    };
    if let Some(branding) = branding {
        let more = execute(
            &state,
            org_id,
            OrganisationCommand::UpdateBranding { branding },
            &metadata,
        )
        .await?;
        decided.position = more.position.or(decided.position);
    }
    Ok(written(
        HttpResponse::Created(),
        decided.position,
        &OrganisationWritten {
            organisation_id: org_id,
            consistency_token: token(decided.position),
        },
    ))
}

/// Rename the organisation or replace its branding (admins).
#[utoipa::path(
    patch,
    path = "/api/v1/organisation",
    tag = "organisations",
    security(("bearer" = []), ("api_key" = [])),
    params(("X-Org-ID" = Option<Uuid>, Header, description = "The organisation; optional when the caller belongs to one")),
    request_body = UpdateOrganisation,
    responses(
        (status = 200, description = "Updated", body = OrganisationWritten),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organisation", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "update_organisation", skip_all, fields(org_id = %caller.org_id))]
pub async fn update(
    state: web::Data<CommandState>,
    caller: Caller,
    body: web::Json<UpdateOrganisation>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Admin)?;
    let UpdateOrganisation { name, branding } = body.into_inner();
    let mut errors = Vec::new();
    let name = name.map(|n| validate_name(&n, &mut errors));
    let branding = branding.map(|b| validate_branding(b, &mut errors));
    if !errors.is_empty() {
        return Err(ApiError::Validation { errors });
    }
    let metadata = caller.metadata();
    let mut position = None;
    if let Some(name) = name {
        let decided = execute(
            &state,
            caller.org_id,
            OrganisationCommand::Rename { name },
            &metadata,
        )
        .await?;
        position = decided.position.or(position);
    }
    if let Some(branding) = branding {
        let decided = execute(
            &state,
            caller.org_id,
            OrganisationCommand::UpdateBranding { branding },
            &metadata,
        )
        .await?;
        position = decided.position.or(position);
    }
    Ok(written(
        HttpResponse::Ok(),
        position,
        &OrganisationWritten {
            organisation_id: caller.org_id,
            consistency_token: token(position),
        },
    ))
}

/// The declared type of an upload, if it is an accepted image type whose bytes agree.
fn logo_type(request: &HttpRequest, bytes: &[u8]) -> Result<&'static str, ApiError> {
    let declared = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    let accepted = || {
        LOGO_TYPES
            .iter()
            .map(|(t, _)| *t)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some((content_type, magic)) = LOGO_TYPES.iter().find(|(t, _)| *t == declared) else {
        return Err(ApiError::validation(
            "logo",
            format!("must be sent as one of {}, not `{declared}`", accepted()),
        ));
    };
    let webp_ok = *content_type != "image/webp" || bytes.get(8..12) == Some(b"WEBP".as_slice());
    if !magic.iter().any(|m| bytes.starts_with(m)) || !webp_ok {
        return Err(ApiError::validation(
            "logo",
            format!("the body is not a {content_type} image"),
        ));
    }
    Ok(content_type)
}

/// Upload the organisation's logo (admins): the image itself as the body, `Content-Type`
/// `image/png`, `image/jpeg`, `image/gif` or `image/webp`, at most 1 MiB.
#[utoipa::path(
    put,
    path = "/api/v1/organisation/logo",
    tag = "organisations",
    security(("bearer" = []), ("api_key" = [])),
    params(("X-Org-ID" = Option<Uuid>, Header, description = "The organisation; optional when the caller belongs to one")),
    request_body(content = Vec<u8>, content_type = "image/png", description = "The image"),
    responses(
        (status = 200, description = "Stored", body = LogoWritten),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Far larger than 1 MiB: not read", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Larger than 1 MiB, not an accepted image type, or bytes that are not the declared type", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "upload_logo", skip_all, fields(org_id = %caller.org_id))]
pub async fn upload_logo(
    state: web::Data<CommandState>,
    caller: Caller,
    request: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Admin)?;
    if body.is_empty() {
        return Err(ApiError::validation("logo", "the body is empty"));
    }
    if body.len() > MAX_LOGO_BYTES {
        return Err(ApiError::validation(
            "logo",
            format!(
                "is {} bytes; at most {MAX_LOGO_BYTES} (1 MiB) are accepted",
                body.len()
            ),
        ));
    }
    let content_type = logo_type(&request, &body)?;
    let logo_id = Uuid::now_v7();
    // Stored before the event names it: a failed append leaves an unreferenced image, never an
    // event pointing at nothing.
    sqlx::query("INSERT INTO logos (logo_id, org_id, content_type, bytes) VALUES ($1, $2, $3, $4)")
        .bind(logo_id)
        .bind(caller.org_id)
        .bind(content_type)
        .bind(body.as_ref())
        .execute(&state.pool)
        .await
        .map_err(|e| crate::db_error(e, "storing a logo"))?;
    let size = body.len() as u64;
    let decided = execute(
        &state,
        caller.org_id,
        OrganisationCommand::ChangeLogo {
            logo_id,
            content_type: content_type.to_owned(),
            size,
        },
        &caller.metadata(),
    )
    .await?;
    Ok(written(
        HttpResponse::Ok(),
        decided.position,
        &LogoWritten {
            logo_id,
            content_type: content_type.to_owned(),
            size,
            consistency_token: token(decided.position),
        },
    ))
}

/// The limit of a logo upload body: far larger bodies are refused with 413 before they are read.
pub fn logo_payload_config() -> web::PayloadConfig {
    web::PayloadConfig::new(MAX_LOGO_BODY)
}

/// A role named in a request body; 422 naming `field` otherwise.
pub(crate) fn parse_role(field: &str, text: &str) -> Result<Role, ApiError> {
    text.parse()
        .map_err(|e: events::RoleError| ApiError::validation(field, e.to_string()))
}
