//! Contacts, write side: create (`POST /api/v1/contacts`), update
//! (`PATCH /api/v1/contacts/{id}`), change status (`POST /api/v1/contacts/{id}/status`), delete
//! or erase (`DELETE /api/v1/contacts/{id}[?erase=true]`) and restore
//! (`POST /api/v1/contacts/{id}/restore`).
//!
//! Every identifier is unique within the organisation through its reservation stream, claimed
//! in the same append as the contact's events. Personal fields are sealed with the contact's
//! data key before they reach the log; erasing destroys the key.

use std::collections::{BTreeMap, BTreeSet};

use actix_web::{HttpResponse, web};
use domain::Aggregate;
use domain::contact::{Contact, ContactCommand, ContactError, ContactUpdate, NewContact};
use event_store::ExpectedVersion;
use events::contact::{self, ContactEvent, ContactStatus, Identity};
use events::{Email, InstagramId, Metadata, NewEvent, PhoneE164, Role, Tag, TelegramChatId};
use serde::{Deserialize, Serialize};
use service::{ApiError, Caller, FieldError, IdempotencyKey, Problem};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::aggregate::{self, MAX_ATTEMPTS, encode, expected};
use crate::identities::{IdentityChange, IdentityError, OwnerWrite, append_with_identities};
use crate::{CommandState, idempotency, store_error, written};

pub const CONTACTS: &str = "/api/v1/contacts";
pub const CONTACT: &str = "/api/v1/contacts/{contact_id}";
pub const STATUS: &str = "/api/v1/contacts/{contact_id}/status";
pub const RESTORE: &str = "/api/v1/contacts/{contact_id}/restore";
const CREATE_ROUTE: &str = "POST /api/v1/contacts";

/// A new contact. Identifiers are normalised (emails lowercased, phone numbers to E.164 in the
/// organisation's default region) and must be unique in the organisation.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateContact {
    #[schema(example = "Ada Lovelace")]
    pub full_name: String,
    #[schema(example = "ada@example.com")]
    pub email: Option<String>,
    /// A WhatsApp number; without `+country` it is read in the organisation's default region.
    #[schema(example = "+351912345678")]
    pub whatsapp: Option<String>,
    pub telegram_chat_id: Option<String>,
    pub instagram_scoped_id: Option<String>,
    pub instagram_user_id: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub notes: Option<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub custom_fields: BTreeMap<String, serde_json::Value>,
}

/// Changes to a contact: a field left out stays as it is; `null` clears it.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateContact {
    pub full_name: Option<String>,
    #[serde(default, deserialize_with = "crate::present")]
    pub email: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::present")]
    pub whatsapp: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::present")]
    pub telegram_chat_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::present")]
    pub instagram_scoped_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::present")]
    pub instagram_user_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::present")]
    pub notes: Option<Option<String>>,
    #[serde(default)]
    pub add_tags: Vec<String>,
    #[serde(default)]
    pub remove_tags: Vec<String>,
    /// Values to set (`null` removes the field's value).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub custom_fields: BTreeMap<String, serde_json::Value>,
    pub whatsapp_blocked: Option<bool>,
    pub instagram_blocked: Option<bool>,
    pub instagram_opt_in: Option<bool>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeStatus {
    /// `active`, `blocked`, `unsubscribed` or `bounced`.
    #[schema(example = "unsubscribed")]
    pub status: String,
    pub reason: Option<String>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    /// Destroy the contact's personal data for good, in the read models and the event log.
    /// Without it, the contact is hidden and can be restored.
    pub erase: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ContactWritten {
    pub contact_id: Uuid,
    /// Pass as `X-Consistency-Token` to read this write back; `null` when nothing changed.
    pub consistency_token: Option<String>,
}

/// How a contact rule answers.
pub(crate) fn rejected(error: ContactError) -> ApiError {
    match error {
        ContactError::NotFound => not_found(),
        ContactError::UnknownConflict => ApiError::NotFound("No such identity conflict.".into()),
        ContactError::InvalidFullName => ApiError::validation("full_name", error.to_string()),
        ContactError::InvalidNotes => ApiError::validation("notes", error.to_string()),
        ContactError::InvalidReason => ApiError::validation("reason", error.to_string()),
        ContactError::InvalidConsentSource => ApiError::validation("source", error.to_string()),
        ContactError::InvalidCustomFieldKey(ref key)
        | ContactError::CustomFieldSetAndRemoved(ref key) => {
            ApiError::validation(format!("custom_fields.{key}"), error.to_string())
        }
        ContactError::MergeWithItself => ApiError::validation("source", error.to_string()),
        ContactError::Deleted
        | ContactError::Erased
        | ContactError::AlreadyExists
        | ContactError::Merged
        | ContactError::NotMerged => ApiError::Conflict(format!("{error}.")),
    }
}

fn not_found() -> ApiError {
    ApiError::NotFound("No such contact.".into())
}

/// What changes between two states of `owner`'s identifiers, one entry per kind.
pub(crate) fn identity_changes(
    owner: Uuid,
    before: &Contact,
    after: &Contact,
) -> Vec<IdentityChange> {
    let old: BTreeMap<Identity, String> = before.identities().into_iter().collect();
    let new: BTreeMap<Identity, String> = after.identities().into_iter().collect();
    Identity::ALL
        .iter()
        .map(|identity| IdentityChange {
            owner,
            identity: *identity,
            old: old.get(identity).cloned(),
            new: new.get(identity).cloned(),
        })
        .filter(|change| change.old != change.new)
        .collect()
}

/// Parses `raw` with `parse`, collecting an error for `field`.
fn parse_field<T, E: std::fmt::Display>(
    field: &str,
    raw: Option<&str>,
    parse: impl FnOnce(&str) -> Result<T, E>,
    errors: &mut Vec<FieldError>,
) -> Option<T> {
    let raw = raw.map(str::trim).filter(|r| !r.is_empty())?;
    parse(raw)
        .map_err(|e| errors.push(FieldError::new(field, e.to_string())))
        .ok()
}

fn parse_tags(field: &str, raw: &[String], errors: &mut Vec<FieldError>) -> Vec<Tag> {
    raw.iter()
        .filter_map(|t| {
            Tag::parse(t)
                .map_err(|e| errors.push(FieldError::new(field, format!("{t:?} {e}"))))
                .ok()
        })
        .collect()
}

/// The organisation's default phone region (branding), for numbers written without `+`; not
/// looked up when every number given has its country code.
async fn phone_region(
    state: &CommandState,
    org_id: Uuid,
    numbers: &[Option<&str>],
) -> Result<Option<String>, ApiError> {
    let needed = numbers
        .iter()
        .flatten()
        .any(|n| !n.trim().is_empty() && !n.trim_start().starts_with('+'));
    if !needed {
        return Ok(None);
    }
    default_phone_region(&state.pool, org_id)
        .await
        .map_err(|e| crate::db_error(e, "reading the phone region"))
}

/// The organisation's default phone region (its branding).
pub(crate) async fn default_phone_region(
    pool: &sqlx::PgPool,
    org_id: Uuid,
) -> Result<Option<String>, sqlx::Error> {
    let region: Option<Option<String>> =
        sqlx::query_scalar("SELECT default_phone_region FROM rm_organisations WHERE org_id = $1")
            .bind(org_id)
            .fetch_optional(pool)
            .await?;
    Ok(region.flatten())
}

/// The contact's events, encoded for `org_id` and sealed with the contact's key.
pub(crate) async fn sealed(
    state: &CommandState,
    events: &[ContactEvent],
    org_id: Uuid,
    contact_id: Uuid,
    metadata: &Metadata,
) -> Result<Vec<NewEvent>, ApiError> {
    let mut encoded = encoded_for(events, org_id, contact_id, metadata)?;
    state
        .data_keys
        .seal_events(&mut encoded)
        .await
        .map_err(|e| keys_error(e, "sealing contact events"))?;
    Ok(encoded)
}

/// The contact's events encoded for `org_id`, naming the contact as their subject (whose key
/// seals them).
fn encoded_for(
    events: &[ContactEvent],
    org_id: Uuid,
    contact_id: Uuid,
    metadata: &Metadata,
) -> Result<Vec<NewEvent>, ApiError> {
    let metadata = Metadata {
        subject: Some(contact_id),
        ..metadata.clone()
    };
    encode(events, org_id, &metadata)
}

fn keys_error(error: event_store::data_keys::DataKeyError, doing: &'static str) -> ApiError {
    use event_store::data_keys::DataKeyError as E;
    match error {
        E::Erased { .. } => ApiError::Conflict("This contact's personal data was erased.".into()),
        E::Database(error) => crate::db_error(error, doing),
        other => ApiError::Internal(anyhow::Error::new(other).context(doing)),
    }
}

/// A contact of the caller's organisation with the version it was read at; 404 for anyone
/// else's (a contact of another organisation is not found, not forbidden).
pub(crate) async fn load(
    state: &CommandState,
    org_id: Uuid,
    contact_id: Uuid,
) -> Result<(Contact, Option<u64>), ApiError> {
    let stream = contact::stream(contact_id);
    let (contact, version, owner) =
        aggregate::load_opened::<Contact>(&*state.store, &state.data_keys, &stream).await?;
    if contact.id.is_none() || owner != Some(org_id) {
        return Err(not_found());
    }
    Ok((contact, version))
}

/// Decides `commands` on the contact, one after another, and appends what they decided at once
/// with its identifier changes, again when the contact moved meanwhile. With a
/// `conflict_source`, an identifier another contact holds is recorded on this contact as an
/// identity conflict (and still answered 409).
pub(crate) async fn execute(
    state: &CommandState,
    caller: &Caller,
    contact_id: Uuid,
    commands: &[ContactCommand],
    conflict_source: Option<&str>,
) -> Result<(Contact, Option<events::Position>), ApiError> {
    let metadata = caller.metadata();
    for _ in 0..MAX_ATTEMPTS {
        let (before, version) = load(state, caller.org_id, contact_id).await?;
        let mut after = before.clone();
        let mut decided = Vec::new();
        for command in commands {
            let events = after.decide(command.clone()).map_err(rejected)?;
            after = events.iter().fold(after, Contact::evolve);
            decided.extend(events);
        }
        if decided.is_empty() {
            return Ok((before, None));
        }
        let changes = identity_changes(contact_id, &before, &after);
        let events = sealed(state, &decided, caller.org_id, contact_id, &metadata).await?;
        let write = OwnerWrite {
            org_id: caller.org_id,
            stream: &contact::stream(contact_id),
            expected: expected(version),
            events,
        };
        match append_with_identities(&*state.store, vec![write], &changes, &metadata).await {
            Ok(results) => return Ok((after, results.last().map(|r| r.position))),
            Err(IdentityError::OwnerMoved) => continue,
            Err(IdentityError::Taken {
                identity,
                value,
                holder,
            }) if conflict_source.is_some() => {
                let conflict_id = Uuid::now_v7();
                let record = ContactCommand::RecordConflict {
                    conflict_id,
                    identity,
                    value,
                    holder,
                    source: conflict_source.unwrap_or("api").to_owned(),
                };
                Box::pin(execute(state, caller, contact_id, &[record], None)).await?;
                return Err(ApiError::Taken {
                    field: format!(
                        "{} (recorded as identity conflict {conflict_id})",
                        identity.field()
                    ),
                    holder,
                });
            }
            Err(error) => return Err(identity_error(error)),
        }
    }
    Err(ApiError::Conflict(
        "The contact changed concurrently too often; try again.".into(),
    ))
}

pub(crate) fn identity_error(error: IdentityError) -> ApiError {
    match error {
        IdentityError::Taken {
            identity, holder, ..
        } => ApiError::Taken {
            field: identity.field().into(),
            holder,
        },
        IdentityError::OwnerMoved => {
            ApiError::Conflict("The contact changed while it was written; try again.".into())
        }
        IdentityError::Store(error) => store_error(error, "appending a contact"),
        IdentityError::Api(error) => error,
    }
}

pub(crate) fn answer(
    response: actix_web::HttpResponseBuilder,
    contact_id: Uuid,
    position: Option<events::Position>,
) -> HttpResponse {
    written(
        response,
        position,
        &ContactWritten {
            contact_id,
            consistency_token: position.map(|p| p.to_string()),
        },
    )
}

/// Create a contact (staff).
#[utoipa::path(
    post,
    path = "/api/v1/contacts",
    tag = "contacts",
    security(("bearer" = []), ("api_key" = [])),
    params(
        ("X-Org-ID" = Option<Uuid>, Header, description = "The organisation; optional when the caller belongs to one"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: a retry answers the contact the first try created"),
    ),
    request_body = CreateContact,
    responses(
        (status = 201, description = "Created", body = ContactWritten),
        (status = 403, description = "Viewers cannot write", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "An identifier belongs to another contact (named in `errors`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "create_contact", skip_all, fields(org_id = %caller.org_id, contact_id = tracing::field::Empty))]
pub async fn create(
    state: web::Data<CommandState>,
    caller: Caller,
    key: IdempotencyKey,
    body: web::Json<CreateContact>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Staff)?;
    let contact_id = match &key.0 {
        Some(key) => idempotency::derive(caller.org_id, key, CREATE_ROUTE, None),
        None => Uuid::now_v7(),
    };
    tracing::Span::current().record("contact_id", tracing::field::display(contact_id));
    let metadata = Metadata {
        idempotency_key: key.0.clone(),
        ..caller.metadata()
    };
    let created = create_contact(
        &state,
        caller.org_id,
        contact_id,
        body.into_inner(),
        &metadata,
    )
    .await?;
    match created {
        Created::New(position) => Ok(answer(HttpResponse::Created(), contact_id, Some(position))),
        Created::Existing(same) if key.0.is_some() && same => {
            Ok(answer(HttpResponse::Created(), contact_id, None))
        }
        Created::Existing(_) => Err(ApiError::Unprocessable {
            slug: "idempotency-key-reused",
            detail: format!(
                "This Idempotency-Key was already used for a different request to \
                 {CREATE_ROUTE}; send a new key for a new request."
            ),
        }),
    }
}

/// A new contact from its request fields, every bad field named (custom field values checked
/// against the organisation's `definitions`): the one parser of contact input, used by the
/// endpoint and by imports.
pub(crate) fn parse_new_contact(
    contact_id: Uuid,
    input: CreateContact,
    region: Option<&str>,
    definitions: &domain::custom_fields::CustomFields,
) -> Result<NewContact, Vec<FieldError>> {
    let mut errors = Vec::new();
    let full_name = domain::contact::valid_full_name(&input.full_name)
        .map_err(|e| errors.push(FieldError::new("full_name", e.to_string())))
        .unwrap_or_default();
    let new = NewContact {
        contact_id,
        full_name,
        email: parse_field("email", input.email.as_deref(), Email::parse, &mut errors),
        whatsapp: parse_field(
            "whatsapp",
            input.whatsapp.as_deref(),
            |raw| PhoneE164::parse(raw, region),
            &mut errors,
        ),
        telegram_chat_id: parse_field(
            "telegram_chat_id",
            input.telegram_chat_id.as_deref(),
            TelegramChatId::parse,
            &mut errors,
        ),
        instagram_scoped_id: parse_field(
            "instagram_scoped_id",
            input.instagram_scoped_id.as_deref(),
            InstagramId::parse,
            &mut errors,
        ),
        instagram_user_id: parse_field(
            "instagram_user_id",
            input.instagram_user_id.as_deref(),
            InstagramId::parse,
            &mut errors,
        ),
        tags: parse_tags("tags", &input.tags, &mut errors),
        notes: domain::contact::valid_notes(input.notes.as_deref())
            .map_err(|e| errors.push(FieldError::new("notes", e.to_string())))
            .unwrap_or_default(),
        custom_fields: input.custom_fields,
    };
    // Definitions allow only `[a-z][a-z0-9_]*` keys, so no key can be taken for the `$`
    // markers personal values are sealed with.
    crate::custom_fields::check_values(definitions, &new.custom_fields, true, &mut errors);
    if errors.is_empty() {
        Ok(new)
    } else {
        Err(errors)
    }
}

/// What [`create_contact`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// The contact was created; its last event is at this position.
    New(events::Position),
    /// A contact with this id existed already (a retry with a derived id); `true` when it has
    /// the same name and identifiers as asked.
    Existing(bool),
}

/// Validates `input` and creates contact `contact_id` in `org_id`, its identifiers claimed in the
/// same append: the one way contacts are made (the endpoint, imports; an import's batches through
/// [`creations`] and [`append_creations`] too). Field errors are `ApiError::Validation`, a taken
/// identifier `ApiError::Taken`.
pub async fn create_contact(
    state: &CommandState,
    org_id: Uuid,
    contact_id: Uuid,
    input: CreateContact,
    metadata: &Metadata,
) -> Result<Created, ApiError> {
    let region = phone_region(state, org_id, &[input.whatsapp.as_deref()]).await?;
    let definitions = crate::custom_fields::definitions(state, org_id).await?;
    let new = parse_new_contact(contact_id, input, region.as_deref(), &definitions)
        .map_err(|errors| ApiError::Validation { errors })?;
    let full_name = new.full_name.clone();
    let creations = creations(state, org_id, vec![new], metadata).await?;
    match append_creations(state, org_id, &creations, metadata).await {
        Ok(results) => match results.last() {
            Some(result) => Ok(Created::New(result.position)),
            None => Err(ApiError::Internal(anyhow::anyhow!(
                "a create appended nothing"
            ))),
        },
        // Only a derived id can exist already: a retry, or a key reused for something else.
        Err(IdentityError::OwnerMoved) => {
            let (existing, _) = load(state, org_id, contact_id).await?;
            let same = existing.full_name == Some(full_name)
                && creations
                    .first()
                    .is_some_and(|c| existing.identities() == c.identities);
            Ok(Created::Existing(same))
        }
        Err(error) => Err(identity_error(error)),
    }
}

/// A new contact decided and sealed, ready for [`append_creations`].
pub(crate) struct Creation {
    pub contact_id: Uuid,
    /// Its identifiers, as the reservations name them.
    pub identities: Vec<(Identity, String)>,
    changes: Vec<IdentityChange>,
    events: Vec<NewEvent>,
}

/// Decides the creation of each of `contacts` and seals their events (all their data keys made
/// in one round trip).
pub(crate) async fn creations(
    state: &CommandState,
    org_id: Uuid,
    contacts: Vec<NewContact>,
    metadata: &Metadata,
) -> Result<Vec<Creation>, ApiError> {
    let mut creations = Vec::with_capacity(contacts.len());
    // Every creation's events in one list, sealed together, then handed back in order.
    let mut all = Vec::new();
    let mut counts = Vec::with_capacity(contacts.len());
    for new in contacts {
        let contact_id = new.contact_id;
        let decided = Contact::default()
            .decide(ContactCommand::Create(new))
            .map_err(rejected)?;
        let created = decided.iter().fold(Contact::default(), Contact::evolve);
        let events = encoded_for(&decided, org_id, contact_id, metadata)?;
        counts.push(events.len());
        all.extend(events);
        creations.push(Creation {
            contact_id,
            identities: created.identities(),
            changes: identity_changes(contact_id, &Contact::default(), &created),
            events: Vec::new(),
        });
    }
    state
        .data_keys
        .seal_events(&mut all)
        .await
        .map_err(|e| keys_error(e, "sealing contact events"))?;
    let mut sealed = all.into_iter();
    for (creation, count) in creations.iter_mut().zip(counts) {
        creation.events = sealed.by_ref().take(count).collect();
    }
    Ok(creations)
}

/// Appends `creations` of `org_id` with their identifiers in one write: all of them or none.
/// One result per creation, in order.
pub(crate) async fn append_creations(
    state: &CommandState,
    org_id: Uuid,
    creations: &[Creation],
    metadata: &Metadata,
) -> Result<Vec<event_store::AppendResult>, IdentityError> {
    let streams: Vec<String> = creations
        .iter()
        .map(|c| contact::stream(c.contact_id))
        .collect();
    let writes = creations
        .iter()
        .zip(&streams)
        .map(|(creation, stream)| OwnerWrite {
            org_id,
            stream,
            expected: ExpectedVersion::NoStream,
            events: creation.events.clone(),
        })
        .collect();
    let changes: Vec<IdentityChange> = creations
        .iter()
        .flat_map(|c| c.changes.iter().cloned())
        .collect();
    append_with_identities(&*state.store, writes, &changes, metadata).await
}

/// Change a contact's name, identifiers, notes, tags, custom fields or channel flags (staff).
#[utoipa::path(
    patch,
    path = "/api/v1/contacts/{contact_id}",
    tag = "contacts",
    security(("bearer" = []), ("api_key" = [])),
    params(
        ("contact_id" = Uuid, Path, description = "The contact"),
        ("X-Org-ID" = Option<Uuid>, Header, description = "The organisation; optional when the caller belongs to one"),
    ),
    request_body = UpdateContact,
    responses(
        (status = 200, description = "Updated (or already so)", body = ContactWritten),
        (status = 403, description = "Viewers cannot write", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such contact", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "An identifier belongs to another contact, or the contact is deleted", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "update_contact", skip_all, fields(org_id = %caller.org_id, contact_id = %path))]
pub async fn update(
    state: web::Data<CommandState>,
    caller: Caller,
    path: web::Path<Uuid>,
    body: web::Json<UpdateContact>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Staff)?;
    let contact_id = path.into_inner();
    let position = update_contact(&state, &caller, contact_id, body.into_inner()).await?;
    Ok(answer(HttpResponse::Ok(), contact_id, position))
}

/// Validates `body` and applies it to the contact in one append (staff: the caller's role is
/// the caller's to check): the endpoint, and imports updating the holder of a duplicate.
pub(crate) async fn update_contact(
    state: &CommandState,
    caller: &Caller,
    contact_id: Uuid,
    body: UpdateContact,
) -> Result<Option<events::Position>, ApiError> {
    let whatsapp = body.whatsapp.as_ref().and_then(|w| w.as_deref());
    let region = phone_region(state, caller.org_id, &[whatsapp]).await?;
    let mut errors = Vec::new();
    // `Some(None)` clears; `Some(Some(raw))` sets.
    fn change<T>(
        field: &str,
        raw: Option<Option<String>>,
        parse: impl FnOnce(&str) -> Result<T, String>,
        errors: &mut Vec<FieldError>,
    ) -> Option<Option<T>> {
        match raw? {
            None => Some(None),
            Some(raw) if raw.trim().is_empty() => Some(None),
            Some(raw) => match parse(raw.trim()) {
                Ok(value) => Some(Some(value)),
                Err(message) => {
                    errors.push(FieldError::new(field, message));
                    None
                }
            },
        }
    }
    let full_name = body.full_name.as_deref().and_then(|raw| {
        domain::contact::valid_full_name(raw)
            .map_err(|e| errors.push(FieldError::new("full_name", e.to_string())))
            .ok()
    });
    let text = |e: &dyn std::fmt::Display| e.to_string();
    let update = ContactUpdate {
        full_name,
        email: change(
            "email",
            body.email,
            |r| Email::parse(r).map_err(|e| text(&e)),
            &mut errors,
        ),
        whatsapp: change(
            "whatsapp",
            body.whatsapp,
            |r| PhoneE164::parse(r, region.as_deref()).map_err(|e| text(&e)),
            &mut errors,
        ),
        telegram_chat_id: change(
            "telegram_chat_id",
            body.telegram_chat_id,
            |r| TelegramChatId::parse(r).map_err(|e| text(&e)),
            &mut errors,
        ),
        instagram_scoped_id: change(
            "instagram_scoped_id",
            body.instagram_scoped_id,
            |r| InstagramId::parse(r).map_err(|e| text(&e)),
            &mut errors,
        ),
        instagram_user_id: change(
            "instagram_user_id",
            body.instagram_user_id,
            |r| InstagramId::parse(r).map_err(|e| text(&e)),
            &mut errors,
        ),
        notes: body.notes.map(|notes| {
            domain::contact::valid_notes(notes.as_deref())
                .map_err(|e| errors.push(FieldError::new("notes", e.to_string())))
                .unwrap_or_default()
        }),
        set_custom_fields: body
            .custom_fields
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        remove_custom_fields: body
            .custom_fields
            .iter()
            .filter(|(_, v)| v.is_null())
            .map(|(k, _)| k.clone())
            .collect::<BTreeSet<_>>(),
    };
    if !body.custom_fields.is_empty() {
        let definitions = crate::custom_fields::definitions(state, caller.org_id).await?;
        crate::custom_fields::check_values(&definitions, &body.custom_fields, false, &mut errors);
    }
    let add_tags = parse_tags("add_tags", &body.add_tags, &mut errors);
    let remove_tags = parse_tags("remove_tags", &body.remove_tags, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::Validation { errors });
    }
    let mut commands = vec![ContactCommand::Update(update)];
    if !add_tags.is_empty() {
        commands.push(ContactCommand::Tag { tags: add_tags });
    }
    if !remove_tags.is_empty() {
        commands.push(ContactCommand::Untag { tags: remove_tags });
    }
    if body.whatsapp_blocked.is_some()
        || body.instagram_blocked.is_some()
        || body.instagram_opt_in.is_some()
    {
        commands.push(ContactCommand::SetChannelFlags {
            whatsapp_blocked: body.whatsapp_blocked,
            instagram_blocked: body.instagram_blocked,
            instagram_opt_in: body.instagram_opt_in,
        });
    }
    let (_, position) = execute(state, caller, contact_id, &commands, Some("api")).await?;
    Ok(position)
}

/// Change a contact's status, with the reason kept in its history (staff).
#[utoipa::path(
    post,
    path = "/api/v1/contacts/{contact_id}/status",
    tag = "contacts",
    security(("bearer" = []), ("api_key" = [])),
    params(
        ("contact_id" = Uuid, Path, description = "The contact"),
        ("X-Org-ID" = Option<Uuid>, Header, description = "The organisation; optional when the caller belongs to one"),
    ),
    request_body = ChangeStatus,
    responses(
        (status = 200, description = "Changed (or already so)", body = ContactWritten),
        (status = 403, description = "Viewers cannot write", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such contact", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown status or too long a reason", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "change_contact_status", skip_all, fields(org_id = %caller.org_id, contact_id = %path))]
pub async fn change_status(
    state: web::Data<CommandState>,
    caller: Caller,
    path: web::Path<Uuid>,
    body: web::Json<ChangeStatus>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Staff)?;
    let to: ContactStatus =
        body.status
            .parse()
            .map_err(|e: events::contact::ContactStatusError| {
                ApiError::validation("status", e.to_string())
            })?;
    let reason = domain::contact::valid_reason(body.reason.as_deref())
        .map_err(|e| ApiError::validation("reason", e.to_string()))?;
    let contact_id = path.into_inner();
    let command = ContactCommand::ChangeStatus { to, reason };
    let (_, position) = execute(&state, &caller, contact_id, &[command], None).await?;
    Ok(answer(HttpResponse::Ok(), contact_id, position))
}

/// Delete a contact (admins): hidden and restorable, or with `?erase=true` its personal data
/// destroyed for good — in the read models and, by destroying its data key, in the event log.
#[utoipa::path(
    delete,
    path = "/api/v1/contacts/{contact_id}",
    tag = "contacts",
    security(("bearer" = []), ("api_key" = [])),
    params(
        ("contact_id" = Uuid, Path, description = "The contact"),
        ("X-Org-ID" = Option<Uuid>, Header, description = "The organisation; optional when the caller belongs to one"),
        DeleteQuery,
    ),
    responses(
        (status = 200, description = "Deleted or erased", body = ContactWritten),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such contact", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "delete_contact", skip_all, fields(org_id = %caller.org_id, contact_id = %path))]
pub async fn delete(
    state: web::Data<CommandState>,
    caller: Caller,
    path: web::Path<Uuid>,
    query: web::Query<DeleteQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Admin)?;
    let contact_id = path.into_inner();
    if !query.erase.unwrap_or(false) {
        let (_, position) =
            execute(&state, &caller, contact_id, &[ContactCommand::Delete], None).await?;
        return Ok(answer(HttpResponse::Ok(), contact_id, position));
    }
    // The erasure is recorded (and its identifiers released) first, then the key destroyed: a
    // failure in between is finished by the retry, which finds the event and destroys the key.
    let (erased, mut position) =
        execute(&state, &caller, contact_id, &[ContactCommand::Erase], None).await?;
    state
        .data_keys
        .erase(contact_id)
        .await
        .map_err(|e| keys_error(e, "erasing a data key"))?;
    // Contacts merged into this one are the same person, and their data is in here too.
    for merged in erased.absorbed.keys() {
        let (_, written) =
            execute(&state, &caller, *merged, &[ContactCommand::Erase], None).await?;
        position = written.or(position);
        state
            .data_keys
            .erase(*merged)
            .await
            .map_err(|e| keys_error(e, "erasing a data key"))?;
    }
    Ok(answer(HttpResponse::Ok(), contact_id, position))
}

/// Restore a deleted contact (admins).
#[utoipa::path(
    post,
    path = "/api/v1/contacts/{contact_id}/restore",
    tag = "contacts",
    security(("bearer" = []), ("api_key" = [])),
    params(
        ("contact_id" = Uuid, Path, description = "The contact"),
        ("X-Org-ID" = Option<Uuid>, Header, description = "The organisation; optional when the caller belongs to one"),
    ),
    responses(
        (status = 200, description = "Restored (or not deleted)", body = ContactWritten),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such contact", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Erased contacts cannot come back", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "restore_contact", skip_all, fields(org_id = %caller.org_id, contact_id = %path))]
pub async fn restore(
    state: web::Data<CommandState>,
    caller: Caller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Admin)?;
    let contact_id = path.into_inner();
    let (_, position) = execute(
        &state,
        &caller,
        contact_id,
        &[ContactCommand::Restore],
        None,
    )
    .await?;
    Ok(answer(HttpResponse::Ok(), contact_id, position))
}
