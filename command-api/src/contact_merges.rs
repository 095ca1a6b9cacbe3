//! Merging duplicates: `POST /api/v1/contacts/{contact_id}/merge {source}` merges `source` into
//! the contact, `POST /api/v1/contacts/{contact_id}/unmerge` undoes a merge of that contact. Both
//! contacts, and the identifiers passing between them, change in one append.

use actix_web::{HttpResponse, web};
use domain::Aggregate;
use domain::contact::{Contact, ContactCommand, MovedClear};
use events::Role;
use events::contact::{self, ContactEvent};
use serde::Deserialize;
use service::{ApiError, Caller, Problem};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::CommandState;
use crate::aggregate::{MAX_ATTEMPTS, expected};
use crate::contacts::{
    ContactWritten, answer, identity_changes, identity_error, load, rejected, sealed,
};
use crate::identities::{IdentityError, OwnerWrite, append_with_identities};

pub const MERGE: &str = "/api/v1/contacts/{contact_id}/merge";
pub const UNMERGE: &str = "/api/v1/contacts/{contact_id}/unmerge";

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Merge {
    /// The duplicate to merge into this contact; afterwards its id resolves to this one.
    pub source: Uuid,
}

/// The moved values of the first merge-family event in `events`.
fn moved_of(events: &[ContactEvent]) -> MovedClear {
    events
        .iter()
        .find_map(|event| match event {
            ContactEvent::ContactMerged { moved, .. }
            | ContactEvent::ContactSplit { moved, .. } => Some(MovedClear::opened(moved)),
            _ => None,
        })
        .unwrap_or_default()
}

/// Decides one command on each of two contacts and appends both with the identifiers moving
/// between them: the first contact's command is made from the second's state, the second's from
/// what the first one's events moved.
async fn two_contacts(
    state: &CommandState,
    caller: &Caller,
    first: Uuid,
    second: Uuid,
    first_command: impl Fn(&Contact) -> ContactCommand,
    second_command: impl Fn(MovedClear) -> ContactCommand,
) -> Result<Option<events::Position>, ApiError> {
    let metadata = caller.metadata();
    for _ in 0..MAX_ATTEMPTS {
        let (one, one_version) = load(state, caller.org_id, first).await?;
        let (two, two_version) = load(state, caller.org_id, second).await?;
        let first_events = one.decide(first_command(&two)).map_err(rejected)?;
        let one_after = first_events.iter().fold(one.clone(), Contact::evolve);
        let second_command = second_command(moved_of(&first_events));
        let second_events = two.decide(second_command).map_err(rejected)?;
        let two_after = second_events.iter().fold(two.clone(), Contact::evolve);
        let mut changes = identity_changes(first, &one, &one_after);
        changes.extend(identity_changes(second, &two, &two_after));
        let (first_stream, second_stream) = (contact::stream(first), contact::stream(second));
        let writes = vec![
            OwnerWrite {
                org_id: caller.org_id,
                owner: first,
                stream: &first_stream,
                expected: expected(one_version),
                events: sealed(state, &first_events, caller.org_id, first, &metadata).await?,
            },
            OwnerWrite {
                org_id: caller.org_id,
                owner: second,
                stream: &second_stream,
                expected: expected(two_version),
                events: sealed(state, &second_events, caller.org_id, second, &metadata).await?,
            },
        ];
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

/// Merge a duplicate into this contact (staff).
///
/// The duplicate's identifiers this contact lacks move here; its tags and custom fields this
/// contact lacks are copied; its history shows in this contact's timeline; its id resolves to
/// this contact. Unmerging restores both.
#[utoipa::path(
    post,
    path = "/api/v1/contacts/{contact_id}/merge",
    tag = "contacts",
    security(("bearer" = []), ("api_key" = [])),
    params(
        ("contact_id" = Uuid, Path, description = "The contact that stays"),
        ("X-Org-ID" = Option<Uuid>, Header, description = "The organisation; optional when the caller belongs to one"),
    ),
    request_body = Merge,
    responses(
        (status = 200, description = "Merged", body = ContactWritten),
        (status = 403, description = "Viewers cannot write", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such contact", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "One of them is merged, deleted or erased", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A contact cannot be merged into itself", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "merge_contacts", skip_all, fields(org_id = %caller.org_id, contact_id = %path))]
pub async fn merge(
    state: web::Data<CommandState>,
    caller: Caller,
    path: web::Path<Uuid>,
    body: web::Json<Merge>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Staff)?;
    let target = path.into_inner();
    let source = body.source;
    if source == target {
        return Err(ApiError::validation(
            "source",
            "a contact cannot be merged into itself",
        ));
    }
    let position = two_contacts(
        &state,
        &caller,
        source,
        target,
        |target_state| ContactCommand::MergeInto {
            into: target,
            target: Box::new(target_state.clone()),
        },
        |moved| ContactCommand::Absorb {
            from: source,
            moved,
        },
    )
    .await?;
    Ok(answer(HttpResponse::Ok(), target, position))
}

/// Undo the merge of this contact into another (staff): it stands alone again with the
/// identifiers, tags and custom fields the other still holds of it.
#[utoipa::path(
    post,
    path = "/api/v1/contacts/{contact_id}/unmerge",
    tag = "contacts",
    security(("bearer" = []), ("api_key" = [])),
    params(
        ("contact_id" = Uuid, Path, description = "The contact that was merged into another"),
        ("X-Org-ID" = Option<Uuid>, Header, description = "The organisation; optional when the caller belongs to one"),
    ),
    responses(
        (status = 200, description = "Unmerged", body = ContactWritten),
        (status = 403, description = "Viewers cannot write", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such contact", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The contact is not merged", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "unmerge_contact", skip_all, fields(org_id = %caller.org_id, contact_id = %path))]
pub async fn unmerge(
    state: web::Data<CommandState>,
    caller: Caller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Staff)?;
    let merged = path.into_inner();
    let (contact, _) = load(&state, caller.org_id, merged).await?;
    let into = contact
        .merged_into
        .ok_or_else(|| rejected(domain::contact::ContactError::NotMerged))?;
    let position = two_contacts(
        &state,
        &caller,
        into,
        merged,
        |_| ContactCommand::Split { from: merged },
        |back| ContactCommand::Unmerge { back },
    )
    .await?;
    Ok(answer(HttpResponse::Ok(), merged, position))
}
