//! Custom field definitions (admins): define (`POST /api/v1/custom-fields`), change
//! (`PATCH /api/v1/custom-fields/{key}`) and remove (`DELETE /api/v1/custom-fields/{key}`), all in
//! the organisation's one definitions stream.
//!
//! Contact writes check their values with [`definitions`] and [`check_values`]: the definitions
//! come from the stream, not the read model, kept in memory until they change ([`cache`]), so a
//! field defined a moment ago is already enforced.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, HttpResponseBuilder, web};
use domain::custom_fields::{
    CustomFieldCommand, CustomFieldError, CustomFields, FieldChange, NewField, valid_key,
    valid_label, valid_options,
};
use events::custom_field::{self, FieldKind, FieldKindError};
use events::{Metadata, Position, Role};
use serde::{Deserialize, Serialize};
use service::{ApiError, Caller, FieldError, IdempotencyKey, Problem};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::aggregate;
use crate::{CommandState, written};

mod cache;

pub use cache::DefinitionsCache;

pub const FIELDS: &str = "/api/v1/custom-fields";
pub const FIELD: &str = "/api/v1/custom-fields/{key}";

/// A new custom field.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DefineField {
    /// `^[a-z][a-z0-9_]{0,49}$`; the name values are stored under, fixed once defined.
    #[schema(example = "plan")]
    pub key: String,
    #[schema(example = "Plan")]
    pub label: String,
    /// `text`, `number`, `date`, `boolean`, `select` or `multi_select`; fixed once defined.
    #[schema(example = "select")]
    pub kind: String,
    /// Every new contact must have a value, and no update may remove it.
    #[serde(default)]
    pub required: bool,
    /// 1 to 100 distinct choices for `select` and `multi_select`; none for other kinds.
    #[serde(default)]
    pub options: Vec<String>,
    /// Where the field is shown, ascending; after the last field when left out.
    pub display_order: Option<i32>,
}

/// Changes to a custom field: what is left out stays as it is. The key and kind cannot change.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeField {
    pub label: Option<String>,
    /// Accepted only when it repeats the field's kind.
    pub kind: Option<String>,
    pub required: Option<bool>,
    /// Replaces the options (select kinds only). Values already stored are kept as they are.
    pub options: Option<Vec<String>>,
    pub display_order: Option<i32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FieldWritten {
    pub key: String,
    /// Pass as `X-Consistency-Token` to read this write back; `null` when nothing changed.
    pub consistency_token: Option<String>,
}

/// The organisation's custom field definitions as they are now (the log's, through the
/// process's [`DefinitionsCache`]), for checking contact values.
pub async fn definitions(
    state: &CommandState,
    org_id: Uuid,
) -> Result<std::sync::Arc<CustomFields>, ApiError> {
    state.definitions.get(&*state.store, org_id).await
}

/// Checks a contact write's custom field `values` (`null` removes a value) against
/// `definitions`, adding one error per bad field, named `custom_fields.<key>`, to `errors`.
/// `creating` also requires every required field.
pub fn check_values(
    definitions: &CustomFields,
    values: &BTreeMap<String, serde_json::Value>,
    creating: bool,
    errors: &mut Vec<FieldError>,
) {
    if let Err(invalid) = definitions.validate(values, creating) {
        errors.extend(
            invalid
                .into_iter()
                .map(|(field, message)| FieldError::new(field, message)),
        );
    }
}

/// How a definition rule answers.
fn rejected(error: CustomFieldError) -> ApiError {
    match error {
        CustomFieldError::NotFound => not_found(),
        CustomFieldError::AlreadyDefined | CustomFieldError::TooManyFields => {
            ApiError::Conflict(format!("{error}."))
        }
        other => ApiError::validation(other.field(), other.to_string()),
    }
}

fn not_found() -> ApiError {
    ApiError::NotFound("No such custom field.".into())
}

fn parse_kind(raw: &str, errors: &mut Vec<FieldError>) -> Option<FieldKind> {
    raw.parse()
        .map_err(|e: FieldKindError| errors.push(FieldError::new("kind", e.to_string())))
        .ok()
}

async fn execute(
    state: &CommandState,
    caller: &Caller,
    command: CustomFieldCommand,
    metadata: &Metadata,
) -> Result<Option<Position>, ApiError> {
    let decided = aggregate::execute::<CustomFields>(
        &*state.store,
        &custom_field::stream(caller.org_id),
        caller.org_id,
        command,
        metadata,
        rejected,
    )
    .await?;
    if decided.position.is_some() {
        state.definitions.changed(&state.pool, caller.org_id).await;
    }
    Ok(decided.position)
}

fn answer(response: HttpResponseBuilder, key: String, position: Option<Position>) -> HttpResponse {
    written(
        response,
        position,
        &FieldWritten {
            key,
            consistency_token: position.map(|p| p.to_string()),
        },
    )
}

/// Define a custom field (admins). Defining the same field again is a retry and changes nothing.
#[utoipa::path(
    post,
    path = "/api/v1/custom-fields",
    tag = "custom fields",
    security(("bearer" = []), ("api_key" = [])),
    params(
        ("X-Org-ID" = Option<Uuid>, Header, description = "The organisation; optional when the caller belongs to one"),
        ("Idempotency-Key" = Option<String>, Header, description = "Accepted and recorded; the same definition again changes nothing by itself"),
    ),
    request_body = DefineField,
    responses(
        (status = 201, description = "Defined (or already so)", body = FieldWritten),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Another field has this key, or the organisation has the most fields allowed", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "define_custom_field", skip_all, fields(org_id = %caller.org_id, key = %body.key))]
pub async fn define(
    state: web::Data<CommandState>,
    caller: Caller,
    key: IdempotencyKey,
    body: web::Json<DefineField>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Admin)?;
    let body = body.into_inner();
    let mut errors = Vec::new();
    if let Err(e) = valid_key(&body.key) {
        errors.push(FieldError::new("key", e.to_string()));
    }
    if let Err(e) = valid_label(&body.label) {
        errors.push(FieldError::new("label", e.to_string()));
    }
    let kind = parse_kind(&body.kind, &mut errors);
    if let Some(Err(e)) = kind.map(|kind| valid_options(kind, &body.options)) {
        errors.push(FieldError::new("options", e.to_string()));
    }
    let Some(kind) = kind.filter(|_| errors.is_empty()) else {
        return Err(ApiError::Validation { errors });
    };
    let metadata = Metadata {
        idempotency_key: key.0.clone(),
        ..caller.metadata()
    };
    let command = CustomFieldCommand::Define(NewField {
        key: body.key.clone(),
        label: body.label,
        kind,
        required: body.required,
        options: body.options,
        display_order: body.display_order,
    });
    let position = execute(&state, &caller, command, &metadata).await?;
    Ok(answer(HttpResponse::Created(), body.key, position))
}

/// Change a custom field's label, options, whether it is required, or its display order
/// (admins).
#[utoipa::path(
    patch,
    path = "/api/v1/custom-fields/{key}",
    tag = "custom fields",
    security(("bearer" = []), ("api_key" = [])),
    params(
        ("key" = String, Path, description = "The field's key"),
        ("X-Org-ID" = Option<Uuid>, Header, description = "The organisation; optional when the caller belongs to one"),
    ),
    request_body = ChangeField,
    responses(
        (status = 200, description = "Changed (or already so)", body = FieldWritten),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such custom field", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, or a change of kind", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "change_custom_field", skip_all, fields(org_id = %caller.org_id, key = %path))]
pub async fn change(
    state: web::Data<CommandState>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Json<ChangeField>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Admin)?;
    let key = path.into_inner();
    let body = body.into_inner();
    // The current definition says which options fit; checked here so every bad field is named
    // at once, and again when decided.
    let fields = definitions(&state, caller.org_id).await?;
    let current = fields.fields.get(&key).ok_or_else(not_found)?;
    let mut errors = Vec::new();
    if let Some(Err(e)) = body.label.as_deref().map(valid_label) {
        errors.push(FieldError::new("label", e.to_string()));
    }
    let kind = body
        .kind
        .as_deref()
        .and_then(|raw| parse_kind(raw, &mut errors));
    if kind.is_some_and(|k| k != current.kind) {
        let e = CustomFieldError::KindUnchangeable(current.kind);
        errors.push(FieldError::new("kind", e.to_string()));
    }
    if let Some(Err(e)) = body
        .options
        .as_deref()
        .map(|options| valid_options(current.kind, options))
    {
        errors.push(FieldError::new("options", e.to_string()));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation { errors });
    }
    let command = CustomFieldCommand::Change {
        key: key.clone(),
        change: FieldChange {
            label: body.label,
            kind,
            required: body.required,
            options: body.options,
            display_order: body.display_order,
        },
    };
    let position = execute(&state, &caller, command, &caller.metadata()).await?;
    Ok(answer(HttpResponse::Ok(), key, position))
}

/// Remove a custom field (admins). Contacts' values for it are hidden, not deleted: they stay
/// in the log, and come back if the key is defined again (with the same kind).
#[utoipa::path(
    delete,
    path = "/api/v1/custom-fields/{key}",
    tag = "custom fields",
    security(("bearer" = []), ("api_key" = [])),
    params(
        ("key" = String, Path, description = "The field's key"),
        ("X-Org-ID" = Option<Uuid>, Header, description = "The organisation; optional when the caller belongs to one"),
    ),
    responses(
        (status = 200, description = "Removed (or already so)", body = FieldWritten),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such custom field", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "remove_custom_field", skip_all, fields(org_id = %caller.org_id, key = %path))]
pub async fn remove(
    state: web::Data<CommandState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Admin)?;
    let key = path.into_inner();
    let command = CustomFieldCommand::Remove { key: key.clone() };
    let position = execute(&state, &caller, command, &caller.metadata()).await?;
    Ok(answer(HttpResponse::Ok(), key, position))
}
