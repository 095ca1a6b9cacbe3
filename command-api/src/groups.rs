//! Contact groups, write side: create (`POST /api/v1/groups`), update
//! (`PATCH /api/v1/groups/{id}`), delete (`DELETE /api/v1/groups/{id}`, admins) and membership:
//! bulk add (`POST /api/v1/groups/{id}/contacts`), bulk remove
//! (`POST /api/v1/groups/{id}/contacts/remove`) and remove one
//! (`DELETE /api/v1/groups/{id}/contacts/{contact_id}`).
//!
//! Adding members is idempotent (a member added again changes nothing), so a retried bulk call
//! appends nothing new. Only contacts of the organisation that exist, and are neither deleted nor
//! erased, can be added.

use std::collections::{BTreeMap, BTreeSet};

use actix_web::{HttpResponse, HttpResponseBuilder, web};
use domain::Aggregate;
use domain::contact::Contact;
use domain::group::{Group, GroupCommand, GroupError, GroupUpdate, NewGroup};
use event_store::{ExpectedVersion, StoreError};
use events::group::{self, GroupEvent};
use events::{Metadata, Position, Role};
use serde::{Deserialize, Serialize};
use service::{ApiError, Caller, FieldError, IdempotencyKey, Problem};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::aggregate::{self, MAX_ATTEMPTS, encode, expected};
use crate::{CommandState, idempotency, store_error, written};

pub const GROUPS: &str = "/api/v1/groups";
pub const GROUP: &str = "/api/v1/groups/{group_id}";
pub const MEMBERS: &str = "/api/v1/groups/{group_id}/contacts";
pub const REMOVE_MEMBERS: &str = "/api/v1/groups/{group_id}/contacts/remove";
pub const MEMBER: &str = "/api/v1/groups/{group_id}/contacts/{contact_id}";
const CREATE_ROUTE: &str = "POST /api/v1/groups";
/// The projection that keeps group memberships.
const GROUPS_PROJECTION: &str = "groups";

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateGroup {
    #[schema(example = "VIP clients")]
    pub name: String,
    pub description: Option<String>,
    /// `#rrggbb`.
    #[schema(example = "#1e90ff")]
    pub colour: Option<String>,
}

/// Changes to a group: a field left out stays as it is; `null` clears the description or colour.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateGroup {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "crate::present")]
    pub description: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::present")]
    pub colour: Option<Option<String>>,
}

/// Contacts to add to or remove from a group: 1 to 1000 ids.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupContacts {
    /// Read as text, so a malformed id is named like any other bad value.
    #[schema(value_type = Vec<Uuid>)]
    pub contact_ids: Vec<String>,
}

impl GroupContacts {
    /// The ids, each parsed; 422 naming `contact_ids` and the ones that are not ids.
    fn ids(&self) -> Result<Vec<Uuid>, ApiError> {
        let mut ids = Vec::with_capacity(self.contact_ids.len());
        let mut malformed = Vec::new();
        for raw in &self.contact_ids {
            match raw.trim().parse::<Uuid>() {
                Ok(id) => ids.push(id),
                Err(_) => malformed.push(format!("{raw:?}")),
            }
        }
        if malformed.is_empty() {
            return Ok(ids);
        }
        Err(ApiError::validation(
            "contact_ids",
            format!("not contact ids: {}", malformed.join(", ")),
        ))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GroupWritten {
    pub group_id: Uuid,
    /// Pass as `X-Consistency-Token` to read this write back; `null` when nothing changed.
    pub consistency_token: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GroupContactsWritten {
    pub group_id: Uuid,
    /// Contacts that became members (members already are not counted again).
    pub added: usize,
    /// Contacts that stopped being members.
    pub removed: usize,
    /// Pass as `X-Consistency-Token` to read this write back; `null` when nothing changed.
    pub consistency_token: Option<String>,
}

/// How a group rule answers.
fn rejected(error: GroupError) -> ApiError {
    match error {
        GroupError::NotFound => not_found(),
        GroupError::AlreadyExists => ApiError::Conflict(format!("{error}.")),
        GroupError::InvalidName => ApiError::validation("name", error.to_string()),
        GroupError::InvalidDescription => ApiError::validation("description", error.to_string()),
        GroupError::InvalidColour => ApiError::validation("colour", error.to_string()),
        GroupError::InvalidContactCount => ApiError::validation("contact_ids", error.to_string()),
    }
}

fn not_found() -> ApiError {
    ApiError::NotFound("No such group.".into())
}

/// The group with the version it was read at; `None` unless it is the organisation's.
async fn load_if_owned(
    state: &CommandState,
    org_id: Uuid,
    group_id: Uuid,
) -> Result<Option<(Group, Option<u64>)>, ApiError> {
    // Groups carry no personal data, so nothing is opened; `load_opened` is used for the
    // organisation it reports, which the group's events carry in their envelope only.
    let (group, version, owner) =
        aggregate::load_opened::<Group>(&*state.store, &state.data_keys, &group::stream(group_id))
            .await?;
    Ok((group.id.is_some() && owner == Some(org_id)).then_some((group, version)))
}

/// The group with the version it was read at; 404 unless it is the organisation's.
async fn load(
    state: &CommandState,
    org_id: Uuid,
    group_id: Uuid,
) -> Result<(Group, Option<u64>), ApiError> {
    load_if_owned(state, org_id, group_id)
        .await?
        .ok_or_else(not_found)
}

/// The organisation's groups among `ids`, each with the version it was read at (deleted ones
/// too); ids of no group of the organisation are left out.
pub(crate) async fn load_some(
    state: &CommandState,
    org_id: Uuid,
    ids: &BTreeSet<Uuid>,
) -> Result<BTreeMap<Uuid, (Group, Option<u64>)>, ApiError> {
    let loads = ids.iter().map(|&group_id| async move {
        let loaded = load_if_owned(state, org_id, group_id).await?;
        Ok::<_, ApiError>(loaded.map(|loaded| (group_id, loaded)))
    });
    Ok(futures::future::try_join_all(loads)
        .await?
        .into_iter()
        .flatten()
        .collect())
}

/// The groups `contact_id` is a member of, complete up to this moment: the groups read model is
/// read once it has caught up with every event committed until now (503 when it does not
/// within the configured wait). Not the head readers see, which lags behind the last commits
/// while older transactions are still open.
pub(crate) async fn memberships(
    state: &CommandState,
    org_id: Uuid,
    contact_id: Uuid,
) -> Result<BTreeSet<Uuid>, ApiError> {
    let head = state
        .store
        .committed_head()
        .await
        .map_err(|error| store_error(error, "reading the head of the log"))?;
    if let Some(head) = head {
        service::consistency::wait_for_projection(
            &state.pool,
            GROUPS_PROJECTION,
            head,
            state.auth.read_model_wait,
        )
        .await?;
    }
    let groups: Vec<Uuid> = sqlx::query_scalar(
        "SELECT group_id FROM rm_group_members WHERE org_id = $1 AND contact_id = $2",
    )
    .bind(org_id)
    .bind(contact_id)
    .fetch_all(&state.pool)
    .await
    .map_err(|error| crate::db_error(error, "reading group memberships"))?;
    Ok(groups.into_iter().collect())
}

/// The group's events for `leaving` leaving it and `joining` joining it: nothing for one who is
/// not a member, or already is, or for a deleted group.
pub(crate) fn swap_members(
    group: &Group,
    leaving: Option<Uuid>,
    joining: Option<Uuid>,
) -> Vec<GroupEvent> {
    let commands = leaving
        .map(|id| GroupCommand::RemoveContacts {
            contact_ids: vec![id],
        })
        .into_iter()
        .chain(joining.map(|id| GroupCommand::AddContacts {
            contact_ids: vec![id],
        }));
    let mut state = group.clone();
    let mut events = Vec::new();
    for command in commands {
        let decided = state.decide(command).unwrap_or_default();
        state = decided.iter().fold(state, Group::evolve);
        events.extend(decided);
    }
    events
}

/// Decides `command` on the organisation's group and appends it, again when the group moved
/// meanwhile. Returns what was appended.
async fn execute(
    state: &CommandState,
    caller: &Caller,
    group_id: Uuid,
    command: GroupCommand,
    metadata: &Metadata,
) -> Result<(Vec<GroupEvent>, Option<Position>), ApiError> {
    let stream = group::stream(group_id);
    for _ in 0..MAX_ATTEMPTS {
        let (group, version) = load(state, caller.org_id, group_id).await?;
        let events = group.decide(command.clone()).map_err(rejected)?;
        if events.is_empty() {
            return Ok((events, None));
        }
        let encoded = encode(&events, caller.org_id, metadata)?;
        match state
            .store
            .append(&stream, expected(version), encoded)
            .await
        {
            Ok(result) => return Ok((events, Some(result.position))),
            Err(StoreError::WrongExpectedVersion { .. }) => continue,
            Err(error) => return Err(store_error(error, "appending a group decision")),
        }
    }
    Err(ApiError::Conflict(
        "The group changed concurrently too often; try again.".into(),
    ))
}

fn answer(
    response: HttpResponseBuilder,
    group_id: Uuid,
    position: Option<Position>,
) -> HttpResponse {
    written(
        response,
        position,
        &GroupWritten {
            group_id,
            consistency_token: position.map(|p| p.to_string()),
        },
    )
}

fn members_answer(
    group_id: Uuid,
    events: &[GroupEvent],
    position: Option<Position>,
) -> HttpResponse {
    let (mut added, mut removed) = (0, 0);
    for event in events {
        match event {
            GroupEvent::ContactsAdded { contact_ids } => added += contact_ids.len(),
            GroupEvent::ContactsRemoved { contact_ids } => removed += contact_ids.len(),
            _ => {}
        }
    }
    written(
        HttpResponse::Ok(),
        position,
        &GroupContactsWritten {
            group_id,
            added,
            removed,
            consistency_token: position.map(|p| p.to_string()),
        },
    )
}

/// The ids among `ids` that are not live contacts of the organisation (merged ones neither: a
/// merge took their memberships to the contact they were merged into).
///
/// The contacts read model answers for almost all of them in one query. It trails the log,
/// though, so a contact created a moment ago may not be in it yet: the few ids it does not know
/// are looked up in their own streams, which are current. Deleted and erased contacts count as
/// unknown: they are hidden everywhere else, and a group is no way to bring them back.
///
/// What the read model does know is trusted: a contact's organisation never changes, so only a
/// deletion or erasure not projected yet can slip through, and a member deleted or erased right
/// after joining is a state groups allow anyway (deleting a contact leaves its memberships).
async fn unknown_contacts(
    state: &CommandState,
    org_id: Uuid,
    ids: &BTreeSet<Uuid>,
) -> Result<Vec<Uuid>, ApiError> {
    let wanted: Vec<Uuid> = ids.iter().copied().collect();
    let projected: Result<Vec<Uuid>, sqlx::Error> = sqlx::query_scalar(
        "SELECT contact_id FROM rm_contacts
         WHERE org_id = $1 AND contact_id = ANY($2)
           AND deleted_at IS NULL AND erased_at IS NULL AND merged_into IS NULL",
    )
    .bind(org_id)
    .bind(&wanted)
    .fetch_all(&state.pool)
    .await;
    const UNDEFINED_TABLE: &str = "42P01";
    let known: BTreeSet<Uuid> = match projected {
        Ok(known) => known.into_iter().collect(),
        // A read model not built yet is no reason to refuse: the streams still answer.
        Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some(UNDEFINED_TABLE) => {
            tracing::warn!(error = %db, "contacts read model missing; reading contact streams");
            BTreeSet::new()
        }
        Err(error) => return Err(crate::db_error(error, "reading contacts")),
    };
    let mut unknown = Vec::new();
    for &contact_id in ids.iter().filter(|id| !known.contains(id)) {
        let (contact, _, owner) = aggregate::load_opened::<Contact>(
            &*state.store,
            &state.data_keys,
            &events::contact::stream(contact_id),
        )
        .await?;
        let live = contact.id.is_some()
            && !contact.deleted
            && !contact.erased
            && contact.merged_into.is_none();
        if !live || owner != Some(org_id) {
            unknown.push(contact_id);
        }
    }
    Ok(unknown)
}

/// Create a group (staff).
#[utoipa::path(
    post,
    path = "/api/v1/groups",
    tag = "groups",
    security(("bearer" = []), ("api_key" = [])),
    params(
        ("X-Org-ID" = Option<Uuid>, Header, description = "The organisation; optional when the caller belongs to one"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: a retry answers the group the first try created"),
    ),
    request_body = CreateGroup,
    responses(
        (status = 201, description = "Created", body = GroupWritten),
        (status = 403, description = "Viewers cannot write", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, or the idempotency key was used for another group", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "create_group", skip_all, fields(org_id = %caller.org_id, group_id = tracing::field::Empty))]
pub async fn create(
    state: web::Data<CommandState>,
    caller: Caller,
    key: IdempotencyKey,
    body: web::Json<CreateGroup>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Staff)?;
    let body = body.into_inner();
    let mut errors = Vec::new();
    let name = domain::group::valid_name(&body.name)
        .map_err(|e| errors.push(FieldError::new("name", e.to_string())))
        .unwrap_or_default();
    let description = domain::group::valid_description(body.description.as_deref())
        .map_err(|e| errors.push(FieldError::new("description", e.to_string())))
        .unwrap_or_default();
    let colour = domain::group::valid_colour(body.colour.as_deref())
        .map_err(|e| errors.push(FieldError::new("colour", e.to_string())))
        .unwrap_or_default();
    if !errors.is_empty() {
        return Err(ApiError::Validation { errors });
    }
    let group_id = match &key.0 {
        Some(key) => idempotency::derive(caller.org_id, key, CREATE_ROUTE, None),
        None => Uuid::now_v7(),
    };
    tracing::Span::current().record("group_id", tracing::field::display(group_id));
    let new = NewGroup {
        group_id,
        name,
        description,
        colour,
    };
    let decided = Group::default()
        .decide(GroupCommand::Create(new.clone()))
        .map_err(rejected)?;
    let metadata = Metadata {
        idempotency_key: key.0.clone(),
        ..caller.metadata()
    };
    let events = encode(&decided, caller.org_id, &metadata)?;
    let appended = state
        .store
        .append(&group::stream(group_id), ExpectedVersion::NoStream, events)
        .await;
    match appended {
        Ok(result) => Ok(answer(
            HttpResponse::Created(),
            group_id,
            Some(result.position),
        )),
        // Only a key-derived id can exist already: this is a retry, or the key's reuse.
        Err(StoreError::WrongExpectedVersion { .. }) if key.0.is_some() => {
            let existing = load(&state, caller.org_id, group_id).await;
            let same = existing.is_ok_and(|(group, _)| {
                group.name == new.name
                    && group.description == new.description
                    && group.colour == new.colour
            });
            if !same {
                return Err(ApiError::Unprocessable {
                    slug: "idempotency-key-reused",
                    detail: format!(
                        "This Idempotency-Key was already used for a different request to \
                         {CREATE_ROUTE}; send a new key for a new request."
                    ),
                });
            }
            Ok(answer(HttpResponse::Created(), group_id, None))
        }
        Err(StoreError::WrongExpectedVersion { .. }) => Err(ApiError::Conflict(format!(
            "Group {group_id} already exists."
        ))),
        Err(error) => Err(store_error(error, "appending GroupCreated")),
    }
}

/// Rename a group, or change its description or colour (staff).
#[utoipa::path(
    patch,
    path = "/api/v1/groups/{group_id}",
    tag = "groups",
    security(("bearer" = []), ("api_key" = [])),
    params(
        ("group_id" = Uuid, Path, description = "The group"),
        ("X-Org-ID" = Option<Uuid>, Header, description = "The organisation; optional when the caller belongs to one"),
    ),
    request_body = UpdateGroup,
    responses(
        (status = 200, description = "Updated (or already so)", body = GroupWritten),
        (status = 403, description = "Viewers cannot write", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such group", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "update_group", skip_all, fields(org_id = %caller.org_id, group_id = %path))]
pub async fn update(
    state: web::Data<CommandState>,
    caller: Caller,
    path: web::Path<Uuid>,
    body: web::Json<UpdateGroup>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Staff)?;
    let group_id = path.into_inner();
    let UpdateGroup {
        name,
        description,
        colour,
    } = body.into_inner();
    // Checked here too, so every bad field is named at once.
    let mut errors = Vec::new();
    if let Some(Err(e)) = name.as_deref().map(domain::group::valid_name) {
        errors.push(FieldError::new("name", e.to_string()));
    }
    if let Some(Err(e)) = description
        .as_ref()
        .map(|d| domain::group::valid_description(d.as_deref()))
    {
        errors.push(FieldError::new("description", e.to_string()));
    }
    if let Some(Err(e)) = colour
        .as_ref()
        .map(|c| domain::group::valid_colour(c.as_deref()))
    {
        errors.push(FieldError::new("colour", e.to_string()));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation { errors });
    }
    let command = GroupCommand::Update(GroupUpdate {
        name,
        description,
        colour,
    });
    let (_, position) = execute(&state, &caller, group_id, command, &caller.metadata()).await?;
    Ok(answer(HttpResponse::Ok(), group_id, position))
}

/// Delete a group (admins); its contacts stay, they are just no longer grouped.
#[utoipa::path(
    delete,
    path = "/api/v1/groups/{group_id}",
    tag = "groups",
    security(("bearer" = []), ("api_key" = [])),
    params(
        ("group_id" = Uuid, Path, description = "The group"),
        ("X-Org-ID" = Option<Uuid>, Header, description = "The organisation; optional when the caller belongs to one"),
    ),
    responses(
        (status = 200, description = "Deleted (or already so)", body = GroupWritten),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such group", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "delete_group", skip_all, fields(org_id = %caller.org_id, group_id = %path))]
pub async fn delete(
    state: web::Data<CommandState>,
    caller: Caller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Admin)?;
    let group_id = path.into_inner();
    let (_, position) = execute(
        &state,
        &caller,
        group_id,
        GroupCommand::Delete,
        &caller.metadata(),
    )
    .await?;
    Ok(answer(HttpResponse::Ok(), group_id, position))
}

/// Add contacts to a group (staff): 1 to 1000 ids; members already in it are left as they are.
#[utoipa::path(
    post,
    path = "/api/v1/groups/{group_id}/contacts",
    tag = "groups",
    security(("bearer" = []), ("api_key" = [])),
    params(
        ("group_id" = Uuid, Path, description = "The group"),
        ("X-Org-ID" = Option<Uuid>, Header, description = "The organisation; optional when the caller belongs to one"),
        ("Idempotency-Key" = Option<String>, Header, description = "Accepted and recorded; adding is idempotent by itself"),
    ),
    request_body = GroupContacts,
    responses(
        (status = 200, description = "Added (or members already)", body = GroupContactsWritten),
        (status = 403, description = "Viewers cannot write", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such group", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No ids, too many, or ids that are not contacts of the organisation (listed under `contact_ids`)", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "add_group_contacts", skip_all, fields(org_id = %caller.org_id, group_id = %path, count = body.contact_ids.len()))]
pub async fn add_contacts(
    state: web::Data<CommandState>,
    caller: Caller,
    key: IdempotencyKey,
    path: web::Path<Uuid>,
    body: web::Json<GroupContacts>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Staff)?;
    let group_id = path.into_inner();
    let contact_ids = body.ids()?;
    let ids = domain::group::valid_contact_ids(&contact_ids).map_err(rejected)?;
    // Someone else's group answers 404 before anything is said about contacts.
    let (group, _) = load(&state, caller.org_id, group_id).await?;
    if group.deleted {
        return Err(not_found());
    }
    let new: BTreeSet<Uuid> = ids.difference(&group.members).copied().collect();
    let unknown = unknown_contacts(&state, caller.org_id, &new).await?;
    if !unknown.is_empty() {
        let listed: Vec<String> = unknown.iter().map(Uuid::to_string).collect();
        return Err(ApiError::validation(
            "contact_ids",
            format!(
                "not contacts of this organisation (or deleted, or merged into another): {}",
                listed.join(", ")
            ),
        ));
    }
    let metadata = Metadata {
        idempotency_key: key.0.clone(),
        ..caller.metadata()
    };
    let command = GroupCommand::AddContacts { contact_ids };
    let (events, position) = execute(&state, &caller, group_id, command, &metadata).await?;
    Ok(members_answer(group_id, &events, position))
}

/// Remove contacts from a group (staff): 1 to 1000 ids; ids that are not members are ignored.
#[utoipa::path(
    post,
    path = "/api/v1/groups/{group_id}/contacts/remove",
    tag = "groups",
    security(("bearer" = []), ("api_key" = [])),
    params(
        ("group_id" = Uuid, Path, description = "The group"),
        ("X-Org-ID" = Option<Uuid>, Header, description = "The organisation; optional when the caller belongs to one"),
        ("Idempotency-Key" = Option<String>, Header, description = "Accepted and recorded; removing is idempotent by itself"),
    ),
    request_body = GroupContacts,
    responses(
        (status = 200, description = "Removed (or not members)", body = GroupContactsWritten),
        (status = 403, description = "Viewers cannot write", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such group", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No ids, or too many", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "remove_group_contacts", skip_all, fields(org_id = %caller.org_id, group_id = %path, count = body.contact_ids.len()))]
pub async fn remove_contacts(
    state: web::Data<CommandState>,
    caller: Caller,
    key: IdempotencyKey,
    path: web::Path<Uuid>,
    body: web::Json<GroupContacts>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Staff)?;
    let group_id = path.into_inner();
    let metadata = Metadata {
        idempotency_key: key.0.clone(),
        ..caller.metadata()
    };
    let command = GroupCommand::RemoveContacts {
        contact_ids: body.ids()?,
    };
    let (events, position) = execute(&state, &caller, group_id, command, &metadata).await?;
    Ok(members_answer(group_id, &events, position))
}

/// Remove one contact from a group (staff); a contact that is not a member is left alone.
#[utoipa::path(
    delete,
    path = "/api/v1/groups/{group_id}/contacts/{contact_id}",
    tag = "groups",
    security(("bearer" = []), ("api_key" = [])),
    params(
        ("group_id" = Uuid, Path, description = "The group"),
        ("contact_id" = Uuid, Path, description = "The contact"),
        ("X-Org-ID" = Option<Uuid>, Header, description = "The organisation; optional when the caller belongs to one"),
    ),
    responses(
        (status = 200, description = "Removed (or not a member)", body = GroupContactsWritten),
        (status = 403, description = "Viewers cannot write", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such group", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "remove_group_contact", skip_all, fields(org_id = %caller.org_id, group_id = %path.0, contact_id = %path.1))]
pub async fn remove_contact(
    state: web::Data<CommandState>,
    caller: Caller,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Staff)?;
    let (group_id, contact_id) = path.into_inner();
    let command = GroupCommand::RemoveContacts {
        contact_ids: vec![contact_id],
    };
    let (events, position) =
        execute(&state, &caller, group_id, command, &caller.metadata()).await?;
    Ok(members_answer(group_id, &events, position))
}
