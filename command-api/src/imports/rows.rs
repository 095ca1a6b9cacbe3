//! What becomes of one row once checked ([`super::checks`]): created through
//! [`create_contact`] — or, when an identifier is taken, skipped or used to update the contact
//! that holds it. A dry run takes the same decisions against what the reservations hold,
//! writing nothing.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use domain::contact::NewContact;
use domain::custom_fields::CustomFields;
use domain::reservation::Reservation;
use event_store::EventStore;
use events::contact::Identity;
use events::reservation::{self, Scope};
use events::{Metadata, Position, Role};
use futures::{StreamExt, TryStreamExt};
use service::auth::session::Client;
use service::{ApiError, Caller, FieldError};
use uuid::Uuid;

use super::OnDuplicate;
use super::checks::Checked;
use super::file::Row;
use super::job::Claimed;
use super::worker::CONCURRENCY;
use crate::CommandState;
use crate::contacts::{
    self, CreateContact, Created, Creation, UpdateContact, append_creations, create_contact,
    creations, parse_new_contact,
};
use crate::identities::IdentityError;

/// What `row` asks for, when its check found nothing wrong; otherwise the report rejecting it.
fn accepted<'i>(
    row: &Row,
    input: &'i Result<CreateContact, FieldError>,
    checked: &Checked,
) -> Result<&'i CreateContact, Report> {
    match input {
        Ok(input) if checked.errors.is_empty() => Ok(input),
        _ => Err(Report::rejected(row, checked.errors.clone())),
    }
}

/// What became of a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Updated,
    SkippedDuplicate,
    Rejected,
    /// A dry run found nothing wrong.
    Valid,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Updated => "updated",
            Outcome::SkippedDuplicate => "skipped_duplicate",
            Outcome::Rejected => "rejected",
            Outcome::Valid => "valid",
        }
    }
}

/// One line of an import's report.
#[derive(Debug, Clone)]
pub struct Report {
    pub row: i32,
    pub line: i32,
    pub outcome: Outcome,
    /// The contact created or updated, or the one a duplicate belongs to.
    pub contact_id: Option<Uuid>,
    pub errors: Vec<FieldError>,
    /// Where the row's write landed, if it wrote.
    pub position: Option<Position>,
}

impl Report {
    fn new(row: &Row, outcome: Outcome, contact_id: Option<Uuid>) -> Report {
        Report {
            row: row.number,
            line: row.line,
            outcome,
            contact_id,
            errors: Vec::new(),
            position: None,
        }
    }

    fn rejected(row: &Row, errors: Vec<FieldError>) -> Report {
        Report {
            errors,
            ..Report::new(row, Outcome::Rejected, None)
        }
    }
}

/// The contact row `row` of import `import_id` makes: the same id on every run of the job, so a
/// resumed job finds what it made before instead of making it again.
pub fn row_contact_id(import_id: Uuid, row: i32) -> Uuid {
    Uuid::new_v5(&import_id, format!("row:{row}").as_bytes())
}

/// A failure that is the system's, not the row's: the job stops and is tried again later.
#[derive(Debug)]
pub struct Unavailable(pub String);

/// Pauses before trying a row again after an error that may pass.
const RETRIES: [Duration; 3] = [
    Duration::from_millis(200),
    Duration::from_secs(1),
    Duration::from_secs(3),
];

/// How often a batch is tried again without a row whose identifier turned out to be taken,
/// before the rest of it goes a row at a time.
const BATCH_RETRIES: usize = 3;

/// A row as the worker hands it over: the row, what it asks for and how it checked out.
pub type Item<'a> = (&'a Row, &'a Result<CreateContact, FieldError>, &'a Checked);

/// What the rows of one job share.
pub struct RowContext {
    pub state: web::Data<CommandState>,
    pub org_id: Uuid,
    pub import_id: Uuid,
    pub on_duplicate: OnDuplicate,
    /// The submitter's metadata, with the import as correlation id.
    metadata: Metadata,
    /// The submitter, for updates (made through the `PATCH` handler, as they would).
    caller: Caller,
    /// The row each contact of this import comes from, to name it in duplicates.
    rows_by_contact: HashMap<Uuid, i32>,
    /// The organisation's default phone region and custom fields, as the rows were checked.
    region: Option<String>,
    definitions: Arc<CustomFields>,
}

impl RowContext {
    /// The context of `job`'s `rows`, checked with the organisation's default phone `region`
    /// and custom field `definitions`.
    pub fn new(
        state: web::Data<CommandState>,
        job: &Claimed,
        rows: &[Row],
        region: Option<String>,
        definitions: Arc<CustomFields>,
    ) -> RowContext {
        let (org_id, import_id) = (job.org_id, job.import_id);
        let (on_duplicate, metadata) = (job.on_duplicate, job.metadata.clone());
        let caller = Caller {
            org_id,
            role: Role::Staff,
            actor: metadata.actor.clone(),
            client: Client {
                ip: metadata.ip.clone(),
                user_agent: metadata.user_agent.clone(),
            },
            request_id: metadata.trace_id.clone(),
        };
        RowContext {
            state,
            org_id,
            import_id,
            on_duplicate,
            metadata: Metadata {
                correlation_id: Some(import_id),
                ..metadata
            },
            caller,
            rows_by_contact: rows
                .iter()
                .map(|row| (row_contact_id(import_id, row.number), row.number))
                .collect(),
            region,
            definitions,
        }
    }

    /// The error of a row whose `field` holds an identifier `holder` has.
    fn duplicate(&self, field: &str, holder: Uuid) -> FieldError {
        match self.rows_by_contact.get(&holder) {
            Some(row) => FieldError::new(field, format!("duplicates row {row}")),
            None => FieldError::new(field, format!("belongs to contact {holder}")),
        }
    }

    /// Imports `items`, rows that share no identifier: the new contacts among them created in
    /// one append, and whatever that append cannot take (a duplicate, a contact made by an
    /// earlier run) a row at a time through [`Self::import`], so the report is the same as if
    /// every row had gone alone. `Err` when the system stays unavailable.
    pub async fn import_batch(&self, items: &[Item<'_>]) -> Result<Vec<Report>, Unavailable> {
        let mut reports = Vec::with_capacity(items.len());
        let mut batch = Vec::new();
        let mut alone = Vec::new();
        for (index, (row, input, checked)) in items.iter().enumerate() {
            let input = match accepted(row, input, checked) {
                Ok(input) => input,
                Err(rejected) => {
                    reports.push(rejected);
                    continue;
                }
            };
            let contact_id = row_contact_id(self.import_id, row.number);
            let region = self.region.as_deref();
            match parse_new_contact(contact_id, input.clone(), region, &self.definitions) {
                Ok(new) => batch.push((index, new)),
                Err(_) => alone.push(index),
            }
        }
        reports.extend(self.create_at_once(items, batch, &mut alone).await);
        let one_by_one = alone.into_iter().filter_map(|index| {
            let (row, input, checked) = items.get(index)?;
            Some(self.import(row, input, checked))
        });
        let rest: Vec<Report> = futures::stream::iter(one_by_one)
            .buffer_unordered(CONCURRENCY)
            .try_collect()
            .await?;
        reports.extend(rest);
        Ok(reports)
    }

    /// Creates the contacts of `batch` (indexes into `items`) in one append; the reports of
    /// those created, the indexes of the others added to `alone`. A row whose identifier is
    /// taken leaves the batch, which is tried again without it a few times.
    async fn create_at_once(
        &self,
        items: &[Item<'_>],
        batch: Vec<(usize, NewContact)>,
        alone: &mut Vec<usize>,
    ) -> Vec<Report> {
        if batch.is_empty() {
            return Vec::new();
        }
        let (mut indexes, contacts): (Vec<usize>, Vec<NewContact>) = batch.into_iter().unzip();
        let mut made: Vec<Creation> =
            match creations(&self.state, self.org_id, contacts, &self.metadata).await {
                Ok(made) => made,
                Err(_) => {
                    alone.extend(indexes);
                    return Vec::new();
                }
            };
        for _ in 0..=BATCH_RETRIES {
            let answer = append_creations(&self.state, self.org_id, &made, &self.metadata).await;
            let taken = match answer {
                Ok(results) => {
                    return indexes
                        .iter()
                        .zip(&made)
                        .zip(results)
                        .filter_map(|((index, creation), result)| {
                            let (row, _, _) = items.get(*index)?;
                            Some(Report {
                                position: Some(result.position),
                                ..Report::new(row, Outcome::Created, Some(creation.contact_id))
                            })
                        })
                        .collect();
                }
                Err(IdentityError::Taken {
                    identity, value, ..
                }) => (identity, value),
                Err(_) => break,
            };
            let Some(at) = made.iter().position(|c| c.identities.contains(&taken)) else {
                break;
            };
            made.remove(at);
            alone.push(indexes.remove(at));
            if made.is_empty() {
                return Vec::new();
            }
        }
        alone.extend(indexes);
        Vec::new()
    }

    /// Creates, skips or updates as `row` asks — unless its check found errors — trying again a
    /// few times after errors that may pass. `Err` when the system stays unavailable.
    pub async fn import(
        &self,
        row: &Row,
        input: &Result<CreateContact, FieldError>,
        checked: &Checked,
    ) -> Result<Report, Unavailable> {
        let input = match accepted(row, input, checked) {
            Ok(input) => input,
            Err(rejected) => return Ok(rejected),
        };
        let contact_id = row_contact_id(self.import_id, row.number);
        let mut pauses = RETRIES.iter();
        loop {
            let error = match self.import_once(row, contact_id, input).await {
                Ok(report) => return Ok(report),
                Err(error) => error,
            };
            let pause = pauses.next();
            match (error, pause) {
                (ApiError::Unavailable { .. } | ApiError::Internal(_), Some(pause)) => {
                    tokio::time::sleep(*pause).await;
                }
                (ApiError::Unavailable { detail, .. }, None) => return Err(Unavailable(detail)),
                (ApiError::Internal(error), None) => {
                    tracing::error!(
                        error = format!("{error:#}"),
                        row = row.number,
                        "importing a row"
                    );
                    return Ok(Report::rejected(
                        row,
                        vec![FieldError::new(
                            "row",
                            "could not be imported because of an internal error; import it again",
                        )],
                    ));
                }
                (error, _) => return Ok(Report::rejected(row, final_errors(error))),
            }
        }
    }

    async fn import_once(
        &self,
        row: &Row,
        contact_id: Uuid,
        input: &CreateContact,
    ) -> Result<Report, ApiError> {
        let created = create_contact(
            &self.state,
            self.org_id,
            contact_id,
            input.clone(),
            &self.metadata,
        )
        .await;
        let (field, holder) = match created {
            Ok(Created::New(position)) => {
                return Ok(Report {
                    position: Some(position),
                    ..Report::new(row, Outcome::Created, Some(contact_id))
                });
            }
            // Made by an earlier run of this job.
            Ok(Created::Existing(_)) => {
                return Ok(Report::new(row, Outcome::Created, Some(contact_id)));
            }
            Err(ApiError::Taken { holder, .. }) if holder == contact_id => {
                return Ok(Report::new(row, Outcome::Created, Some(contact_id)));
            }
            Err(ApiError::Taken { field, holder }) => (field, holder),
            Err(error) => return Err(error),
        };
        if self.on_duplicate == OnDuplicate::Skip {
            return Ok(Report {
                errors: vec![self.duplicate(&field, holder)],
                ..Report::new(row, Outcome::SkippedDuplicate, Some(holder))
            });
        }
        let answer =
            contacts::update_contact(&self.state, &self.caller, holder, update_of(input)).await;
        match answer {
            Ok(position) => Ok(Report {
                position,
                ..Report::new(row, Outcome::Updated, Some(holder))
            }),
            Err(ApiError::Taken {
                field: other_field,
                holder: other,
            }) => Ok(Report::rejected(
                row,
                vec![self.duplicate(&other_field, other)],
            )),
            Err(ApiError::Conflict(detail) | ApiError::NotFound(detail)) => Ok(Report::rejected(
                row,
                vec![FieldError::new(
                    field,
                    format!("belongs to contact {holder}, which cannot be updated: {detail}"),
                )],
            )),
            Err(error) => Err(error),
        }
    }
}

/// The errors a row is rejected with for an answer that trying again would not change.
fn final_errors(error: ApiError) -> Vec<FieldError> {
    match error {
        ApiError::Validation { errors } => errors,
        ApiError::Unprocessable { detail, .. } => vec![FieldError::new("row", detail)],
        ApiError::BadRequest(detail)
        | ApiError::Conflict(detail)
        | ApiError::NotFound(detail)
        | ApiError::Forbidden(detail)
        | ApiError::Gone(detail) => vec![FieldError::new("row", detail)],
        other => vec![FieldError::new("row", other.to_string())],
    }
}

/// The row as changes to an existing contact: its name and non-empty cells set, its tags added.
fn update_of(input: &CreateContact) -> UpdateContact {
    let set = |value: &Option<String>| value.clone().map(Some);
    UpdateContact {
        full_name: Some(input.full_name.clone()),
        email: set(&input.email),
        whatsapp: set(&input.whatsapp),
        telegram_chat_id: set(&input.telegram_chat_id),
        instagram_scoped_id: set(&input.instagram_scoped_id),
        instagram_user_id: set(&input.instagram_user_id),
        notes: set(&input.notes),
        add_tags: input.tags.clone(),
        custom_fields: input.custom_fields.clone(),
        ..UpdateContact::default()
    }
}

/// A dry run's view of who holds what: the reservations as they were when it started, and what
/// earlier rows of the file would have claimed.
pub struct DryRun<'a> {
    ctx: &'a RowContext,
    existing: HashMap<(Identity, String), Uuid>,
    claimed: HashMap<(Identity, String), Uuid>,
}

impl<'a> DryRun<'a> {
    /// Reads the holder of every identifier the rows have, a few at a time.
    pub async fn start(
        ctx: &'a RowContext,
        store: Arc<dyn EventStore>,
        checked: &[Checked],
    ) -> Result<DryRun<'a>, ApiError> {
        let wanted: BTreeSet<(Identity, String)> = checked
            .iter()
            .flat_map(|c| c.identities.iter().cloned())
            .collect();
        let org_id = ctx.org_id;
        // Each lookup owns what it reads, so the futures are `'static` (and the job `Send`).
        let lookups = wanted.into_iter().map(|(identity, value)| {
            let store = store.clone();
            async move {
                let scope = Scope::Contact {
                    org_id,
                    kind: identity.as_str(),
                };
                let stream = reservation::stream(&scope, &value);
                let (held, _) = crate::aggregate::load::<Reservation>(&*store, &stream).await?;
                Ok::<_, ApiError>(match held {
                    Reservation::HeldBy(holder) => Some(((identity, value), holder)),
                    Reservation::Free => None,
                })
            }
        });
        let held: Vec<Option<((Identity, String), Uuid)>> = futures::stream::iter(lookups)
            .buffer_unordered(CONCURRENCY)
            .try_collect()
            .await?;
        Ok(DryRun {
            ctx,
            existing: held.into_iter().flatten().collect(),
            claimed: HashMap::new(),
        })
    }

    fn owner(&self, key: &(Identity, String)) -> Option<Uuid> {
        self.claimed
            .get(key)
            .or_else(|| self.existing.get(key))
            .copied()
    }

    fn claim(&mut self, identities: &[(Identity, String)], owner: Uuid) {
        for key in identities {
            self.claimed.insert(key.clone(), owner);
        }
    }

    /// What the real run would do with `row`, rows taken in file order.
    pub fn row(&mut self, row: &Row, checked: &Checked) -> Report {
        if !checked.errors.is_empty() {
            return Report::rejected(row, checked.errors.clone());
        }
        let taken = checked
            .identities
            .iter()
            .find_map(|key| Some((key.0, self.owner(key)?)));
        let Some((identity, holder)) = taken else {
            let contact_id = row_contact_id(self.ctx.import_id, row.number);
            self.claim(&checked.identities, contact_id);
            return Report::new(row, Outcome::Valid, None);
        };
        if self.ctx.on_duplicate == OnDuplicate::Skip {
            return Report {
                errors: vec![self.ctx.duplicate(identity.field(), holder)],
                ..Report::new(row, Outcome::SkippedDuplicate, Some(holder))
            };
        }
        let other = checked
            .identities
            .iter()
            .find_map(|key| Some((key.0, self.owner(key).filter(|o| *o != holder)?)));
        if let Some((identity, other)) = other {
            return Report::rejected(row, vec![self.ctx.duplicate(identity.field(), other)]);
        }
        self.claim(&checked.identities, holder);
        Report::new(row, Outcome::Valid, Some(holder))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contact_ids_are_stable_per_import_and_row() {
        let import = Uuid::from_u128(7);
        // Resuming an import relies on this exact scheme: a change would create every row again.
        assert_eq!(row_contact_id(import, 2), Uuid::new_v5(&import, b"row:2"));
        assert_ne!(row_contact_id(import, 2), row_contact_id(import, 3));
        assert_ne!(
            row_contact_id(import, 2),
            row_contact_id(Uuid::from_u128(8), 2)
        );
    }
}
