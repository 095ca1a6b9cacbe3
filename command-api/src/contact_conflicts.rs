//! Identity conflicts, resolved: `POST /api/v1/contacts/{contact_id}/conflicts/{conflict_id}/resolve`
//! with `keep` (the holder keeps the identifier) or `move` (it passes from the holder to this
//! contact: released and claimed in one append, so nobody else can take it in between).

use actix_web::{HttpResponse, web};
use domain::Aggregate;
use domain::contact::{Contact, ContactCommand, ContactUpdate};
use events::contact::{self, ConflictResolution, Identity};
use events::{Email, InstagramId, PhoneE164, Role, TelegramChatId};
use serde::Deserialize;
use service::{ApiError, Caller, Problem};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::CommandState;
use crate::aggregate::{MAX_ATTEMPTS, expected};
use crate::contacts::{
    ContactWritten, answer, execute, identity_changes, identity_error, load, rejected, sealed,
};
use crate::identities::{IdentityError, OwnerWrite, append_with_identities};

pub const RESOLVE: &str = "/api/v1/contacts/{contact_id}/conflicts/{conflict_id}/resolve";

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Resolve {
    /// `keep` (the holder keeps it) or `move` (it moves to this contact).
    #[schema(example = "move")]
    pub action: String,
}

/// An update that sets (or clears) one identifier, parsed from its normalised text.
fn identity_update(identity: Identity, value: Option<&str>) -> Result<ContactUpdate, ApiError> {
    let bad = |e: &dyn std::fmt::Display| {
        ApiError::Internal(anyhow::anyhow!("a stored identifier does not parse: {e}"))
    };
    let mut update = ContactUpdate::default();
    match identity {
        Identity::Email => {
            update.email = Some(value.map(Email::parse).transpose().map_err(|e| bad(&e))?);
        }
        Identity::Whatsapp => {
            let parsed = value.map(|v| PhoneE164::parse(v, None)).transpose();
            update.whatsapp = Some(parsed.map_err(|e| bad(&e))?);
        }
        Identity::Telegram => {
            let parsed = value.map(TelegramChatId::parse).transpose();
            update.telegram_chat_id = Some(parsed.map_err(|e| bad(&e))?);
        }
        Identity::InstagramScoped => {
            let parsed = value.map(InstagramId::parse).transpose();
            update.instagram_scoped_id = Some(parsed.map_err(|e| bad(&e))?);
        }
        Identity::InstagramUser => {
            let parsed = value.map(InstagramId::parse).transpose();
            update.instagram_user_id = Some(parsed.map_err(|e| bad(&e))?);
        }
    }
    Ok(update)
}

/// Resolve an identity conflict of a contact (staff).
#[utoipa::path(
    post,
    path = "/api/v1/contacts/{contact_id}/conflicts/{conflict_id}/resolve",
    tag = "contacts",
    security(("bearer" = []), ("api_key" = [])),
    params(
        ("contact_id" = Uuid, Path, description = "The contact the identifier was meant for"),
        ("conflict_id" = Uuid, Path, description = "The conflict"),
        ("X-Org-ID" = Option<Uuid>, Header, description = "The organisation; optional when the caller belongs to one"),
    ),
    request_body = Resolve,
    responses(
        (status = 200, description = "Resolved (or already so)", body = ContactWritten),
        (status = 403, description = "Viewers cannot write", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such contact or conflict", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The identifier belongs to yet another contact now", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown action", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "resolve_conflict", skip_all, fields(org_id = %caller.org_id))]
pub async fn resolve(
    state: web::Data<CommandState>,
    caller: Caller,
    path: web::Path<(Uuid, Uuid)>,
    body: web::Json<Resolve>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Staff)?;
    let (contact_id, conflict_id) = path.into_inner();
    let position = match body.action.as_str() {
        "keep" => {
            let command = ContactCommand::ResolveConflict {
                conflict_id,
                resolution: ConflictResolution::Kept,
            };
            execute(&state, &caller, contact_id, &[command], None)
                .await?
                .1
        }
        "move" => move_identifier(&state, &caller, contact_id, conflict_id).await?,
        _ => {
            return Err(ApiError::validation("action", "must be keep or move"));
        }
    };
    Ok(answer(HttpResponse::Ok(), contact_id, position))
}

/// Takes the conflict's identifier from its holder and gives it to the contact, resolving the
/// conflict, in one append.
async fn move_identifier(
    state: &CommandState,
    caller: &Caller,
    contact_id: Uuid,
    conflict_id: Uuid,
) -> Result<Option<events::Position>, ApiError> {
    let metadata = caller.metadata();
    for _ in 0..MAX_ATTEMPTS {
        let (contact, contact_version) = load(state, caller.org_id, contact_id).await?;
        let conflict = contact
            .conflicts
            .get(&conflict_id)
            .cloned()
            .ok_or_else(|| rejected(domain::contact::ContactError::UnknownConflict))?;
        if conflict.resolution.is_some() {
            return Ok(None);
        }
        let value = conflict
            .value
            .clone()
            .ok_or_else(|| ApiError::Conflict("The conflict's identifier was erased.".into()))?;
        let mut writes = Vec::new();
        let mut changes = Vec::new();
        let holder_stream = contact::stream(conflict.holder);
        // The holder gives it up if it still has it; an erased or vanished holder has nothing.
        let holder = match load(state, caller.org_id, conflict.holder).await {
            Ok(found) => Some(found),
            Err(ApiError::NotFound(_)) => None,
            Err(error) => return Err(error),
        };
        if let Some((holder, holder_version)) = holder {
            let has_it = holder
                .identities()
                .contains(&(conflict.identity, value.clone()));
            if has_it {
                let release = ContactCommand::Update(identity_update(conflict.identity, None)?);
                let decided = holder.decide(release).map_err(rejected)?;
                let after = decided.iter().fold(holder.clone(), Contact::evolve);
                changes.extend(identity_changes(conflict.holder, &holder, &after));
                writes.push(OwnerWrite {
                    org_id: caller.org_id,
                    stream: &holder_stream,
                    expected: expected(holder_version),
                    events: sealed(state, &decided, caller.org_id, conflict.holder, &metadata)
                        .await?,
                });
            }
        }
        let take = ContactCommand::Update(identity_update(conflict.identity, Some(&value))?);
        let mut decided = contact.decide(take).map_err(rejected)?;
        let taken = decided.iter().fold(contact.clone(), Contact::evolve);
        decided.extend(
            taken
                .decide(ContactCommand::ResolveConflict {
                    conflict_id,
                    resolution: ConflictResolution::Moved,
                })
                .map_err(rejected)?,
        );
        let after = decided.iter().fold(contact.clone(), Contact::evolve);
        changes.extend(identity_changes(contact_id, &contact, &after));
        let contact_stream = contact::stream(contact_id);
        writes.push(OwnerWrite {
            org_id: caller.org_id,
            stream: &contact_stream,
            expected: expected(contact_version),
            events: sealed(state, &decided, caller.org_id, contact_id, &metadata).await?,
        });
        match append_with_identities(&*state.store, writes, &changes, &metadata).await {
            Ok(results) => return Ok(results.last().map(|r| r.position)),
            Err(IdentityError::OwnerMoved) => continue,
            Err(error) => return Err(identity_error(error)),
        }
    }
    Err(ApiError::Conflict(
        "The contacts changed concurrently too often; try again.".into(),
    ))
}
