//! Merging duplicates: `POST /api/v1/contacts/{contact_id}/merge {source}` merges `source` into
//! the contact, `POST /api/v1/contacts/{contact_id}/unmerge` undoes a merge of that contact. Both
//! contacts, the identifiers passing between them and the groups whose memberships move change
//! in one append.

use std::collections::{BTreeMap, BTreeSet};

use actix_web::{HttpResponse, web};
use domain::Aggregate;
use domain::contact::{Contact, ContactCommand, MovedClear};
use domain::group::Group;
use events::Role;
use events::contact::{self, ContactEvent};
use events::group;
use serde::Deserialize;
use service::{ApiError, Caller, Problem};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::aggregate::{MAX_ATTEMPTS, encode, expected};
use crate::contacts::{
    ContactWritten, answer, identity_changes, identity_error, load, rejected, sealed,
};
use crate::identities::{IdentityError, OwnerWrite, append_with_identities};
use crate::{CommandState, groups};

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
            | ContactEvent::ContactAbsorbed { moved, .. }
            | ContactEvent::ContactSplit { moved, .. }
            | ContactEvent::ContactUnmerged { moved, .. } => Some(MovedClear::opened(moved)),
            _ => None,
        })
        .unwrap_or_default()
}

/// The groups a merge or its undoing touches, each with the version it was read at.
type Groups = BTreeMap<Uuid, (Group, Option<u64>)>;

/// The groups among `groups` that `contact_id` is a member of.
fn member_of(groups: &Groups, contact_id: Uuid) -> BTreeSet<Uuid> {
    groups
        .iter()
        .filter(|(_, (group, _))| group.members.contains(&contact_id))
        .map(|(id, _)| *id)
        .collect()
}

/// Decides one command on each of two contacts and appends both, with the identifiers moving
/// between them and the groups the first leaves and the second joins, in one append. The first
/// contact's command is made from the second's state, the second's from what the first one's
/// events moved; both see the groups `group_ids` names, read afresh on every attempt.
async fn two_contacts(
    state: &CommandState,
    caller: &Caller,
    (first, second): (Uuid, Uuid),
    group_ids: impl Fn(&Contact, &Contact) -> BTreeSet<Uuid>,
    first_command: impl Fn(&Contact, &Groups) -> ContactCommand,
    second_command: impl Fn(MovedClear, &Groups) -> ContactCommand,
) -> Result<Option<events::Position>, ApiError> {
    let metadata = caller.metadata();
    for _ in 0..MAX_ATTEMPTS {
        let (one, one_version) = load(state, caller.org_id, first).await?;
        let (two, two_version) = load(state, caller.org_id, second).await?;
        let groups = groups::load_some(state, caller.org_id, &group_ids(&one, &two)).await?;
        let first_events = one.decide(first_command(&two, &groups)).map_err(rejected)?;
        let one_after = first_events.iter().fold(one.clone(), Contact::evolve);
        let moved = moved_of(&first_events);
        let leaves = moved.groups.clone();
        let second_command = second_command(moved, &groups);
        let second_events = two.decide(second_command).map_err(rejected)?;
        let two_after = second_events.iter().fold(two.clone(), Contact::evolve);
        let joins = moved_of(&second_events).groups;
        let mut changes = identity_changes(first, &one, &one_after);
        changes.extend(identity_changes(second, &two, &two_after));
        let (first_stream, second_stream) = (contact::stream(first), contact::stream(second));
        let mut group_events = Vec::new();
        for (group_id, (group, version)) in &groups {
            let events = groups::swap_members(
                group,
                leaves.contains(group_id).then_some(first),
                joins.contains(group_id).then_some(second),
            );
            if !events.is_empty() {
                group_events.push((group::stream(*group_id), *version, events));
            }
        }
        let mut writes = vec![
            OwnerWrite {
                org_id: caller.org_id,
                stream: &first_stream,
                expected: expected(one_version),
                events: sealed(state, &first_events, caller.org_id, first, &metadata).await?,
            },
            OwnerWrite {
                org_id: caller.org_id,
                stream: &second_stream,
                expected: expected(two_version),
                events: sealed(state, &second_events, caller.org_id, second, &metadata).await?,
            },
        ];
        // A group that moved meanwhile fails the append like a contact that did: decide again.
        for (stream, version, events) in &group_events {
            writes.push(OwnerWrite {
                org_id: caller.org_id,
                stream,
                expected: expected(*version),
                events: encode(events, caller.org_id, &metadata)?,
            });
        }
        match append_with_identities(&*state.store, writes, &changes, &metadata).await {
            // The second contact's result: the last one before the groups'.
            Ok(results) => return Ok(results.get(1).map(|r| r.position)),
            Err(IdentityError::OwnerMoved) => continue,
            Err(error) => return Err(identity_error(error)),
        }
    }
    Err(ApiError::Conflict(
        "The contacts or their groups changed concurrently too often; try again.".into(),
    ))
}

/// Merge a duplicate into this contact (staff).
///
/// The duplicate's identifiers this contact lacks move here; its tags and custom fields this
/// contact lacks are copied; it leaves its groups and this contact joins those it was not in;
/// its history shows in this contact's timeline; its id resolves to this contact. Unmerging
/// restores both.
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
    // Every group the duplicate is in, as of now; each is read again from its stream.
    let candidates = groups::memberships(&state, caller.org_id, source).await?;
    let position = two_contacts(
        &state,
        &caller,
        (source, target),
        |_, _| candidates.clone(),
        |target_state, groups| ContactCommand::MergeInto {
            into: target,
            target: Box::new(target_state.clone()),
            member_of: member_of(groups, source),
        },
        |moved, groups| ContactCommand::Absorb {
            from: source,
            moved,
            member_of: member_of(groups, target),
        },
    )
    .await?;
    Ok(answer(HttpResponse::Ok(), target, position))
}

/// Undo the merge of this contact into another (staff): it stands alone again with the
/// identifiers, tags and custom fields the other still holds of it, back in the groups it left
/// that still exist; the other leaves the groups it joined in the merge.
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
        (into, merged),
        |into_state, merged_state| {
            let joined = into_state.absorbed.get(&merged).map(|m| &m.groups);
            let left = &merged_state.groups_left;
            joined.into_iter().flatten().chain(left).copied().collect()
        },
        |_, groups| ContactCommand::Split {
            from: merged,
            member_of: member_of(groups, into),
        },
        |back, groups| ContactCommand::Unmerge {
            back,
            existing: groups
                .iter()
                .filter(|(_, (group, _))| !group.deleted)
                .map(|(id, _)| *id)
                .collect(),
        },
    )
    .await?;
    Ok(answer(HttpResponse::Ok(), merged, position))
}
