//! A contact group: a name, a description, a colour and a set of the organisation's contacts.
//! Adding a member twice or removing a non-member changes nothing, so bulk calls can be retried;
//! a deleted group is gone for good.
//!
//! Whether the contacts exist is not this aggregate's to know: the command side checks them
//! before it asks.

use std::collections::BTreeSet;

use events::group::GroupEvent;
use uuid::Uuid;

use crate::Aggregate;

/// The longest group name.
pub const MAX_NAME_LEN: usize = 100;
/// The longest description.
pub const MAX_DESCRIPTION_LEN: usize = 1_000;
/// The most contacts one bulk add or remove may name.
pub const MAX_BULK: usize = 1_000;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Group {
    /// `None` until the group is created.
    pub id: Option<Uuid>,
    pub name: String,
    pub description: Option<String>,
    pub colour: Option<String>,
    pub members: BTreeSet<Uuid>,
    pub deleted: bool,
}

/// A group to create; the command validates its fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewGroup {
    pub group_id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub colour: Option<String>,
}

/// A partial update: `None` leaves a field as it is, `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupUpdate {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub colour: Option<Option<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupCommand {
    Create(NewGroup),
    Update(GroupUpdate),
    Delete,
    AddContacts { contact_ids: Vec<Uuid> },
    RemoveContacts { contact_ids: Vec<Uuid> },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    /// Never created, or deleted.
    #[error("the group does not exist")]
    NotFound,
    #[error("the group exists already")]
    AlreadyExists,
    #[error("a name must have 1 to {MAX_NAME_LEN} characters and no control characters")]
    InvalidName,
    #[error("a description must have at most {MAX_DESCRIPTION_LEN} characters")]
    InvalidDescription,
    #[error("a colour must be written #rrggbb, e.g. #1e90ff")]
    InvalidColour,
    #[error("must list 1 to {MAX_BULK} contact ids")]
    InvalidContactCount,
}

/// A name as stored: trimmed, 1 to [`MAX_NAME_LEN`] characters, no control characters.
pub fn valid_name(raw: &str) -> Result<String, GroupError> {
    let name = raw.trim();
    let length = name.chars().count();
    if length == 0 || length > MAX_NAME_LEN || name.chars().any(char::is_control) {
        return Err(GroupError::InvalidName);
    }
    Ok(name.to_owned())
}

/// A description as stored: trimmed, `None` when blank, at most [`MAX_DESCRIPTION_LEN`]
/// characters; line breaks and tabs are fine, other control characters are not.
pub fn valid_description(raw: Option<&str>) -> Result<Option<String>, GroupError> {
    let Some(description) = raw.map(str::trim).filter(|d| !d.is_empty()) else {
        return Ok(None);
    };
    let control = description
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'));
    if description.chars().count() > MAX_DESCRIPTION_LEN || control {
        return Err(GroupError::InvalidDescription);
    }
    Ok(Some(description.to_owned()))
}

/// A colour as stored: `#rrggbb` in lowercase; `None` when blank.
pub fn valid_colour(raw: Option<&str>) -> Result<Option<String>, GroupError> {
    let Some(colour) = raw.map(str::trim).filter(|c| !c.is_empty()) else {
        return Ok(None);
    };
    let hex = colour.strip_prefix('#').ok_or(GroupError::InvalidColour)?;
    if hex.len() != 6 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(GroupError::InvalidColour);
    }
    Ok(Some(colour.to_ascii_lowercase()))
}

/// The ids of one bulk call: 1 to [`MAX_BULK`] of them (duplicates count once), sorted.
pub fn valid_contact_ids(ids: &[Uuid]) -> Result<BTreeSet<Uuid>, GroupError> {
    let unique: BTreeSet<Uuid> = ids.iter().copied().collect();
    if unique.is_empty() || ids.len() > MAX_BULK {
        return Err(GroupError::InvalidContactCount);
    }
    Ok(unique)
}

impl Group {
    fn decide_update(&self, update: GroupUpdate) -> Result<Vec<GroupEvent>, GroupError> {
        let name = match update.name {
            Some(raw) => valid_name(&raw)?,
            None => self.name.clone(),
        };
        let description = match update.description {
            Some(raw) => valid_description(raw.as_deref())?,
            None => self.description.clone(),
        };
        let colour = match update.colour {
            Some(raw) => valid_colour(raw.as_deref())?,
            None => self.colour.clone(),
        };
        if name == self.name && description == self.description && colour == self.colour {
            return Ok(vec![]);
        }
        Ok(vec![GroupEvent::GroupUpdated {
            name,
            description,
            colour,
        }])
    }
}

fn create(new: NewGroup) -> Result<Vec<GroupEvent>, GroupError> {
    Ok(vec![GroupEvent::GroupCreated {
        group_id: new.group_id,
        name: valid_name(&new.name)?,
        description: valid_description(new.description.as_deref())?,
        colour: valid_colour(new.colour.as_deref())?,
    }])
}

impl Aggregate for Group {
    type Event = GroupEvent;
    type Command = GroupCommand;
    type Error = GroupError;

    fn evolve(mut self, event: &GroupEvent) -> Self {
        match event {
            GroupEvent::GroupCreated {
                group_id,
                name,
                description,
                colour,
            } => {
                self.id = Some(*group_id);
                self.name.clone_from(name);
                self.description.clone_from(description);
                self.colour.clone_from(colour);
            }
            GroupEvent::GroupUpdated {
                name,
                description,
                colour,
            } => {
                self.name.clone_from(name);
                self.description.clone_from(description);
                self.colour.clone_from(colour);
            }
            GroupEvent::GroupDeleted {} => {
                self.deleted = true;
                self.members.clear();
            }
            GroupEvent::ContactsAdded { contact_ids } => self.members.extend(contact_ids),
            GroupEvent::ContactsRemoved { contact_ids } => {
                for id in contact_ids {
                    self.members.remove(id);
                }
            }
        }
        self
    }

    fn decide(&self, command: GroupCommand) -> Result<Vec<GroupEvent>, GroupError> {
        use GroupCommand as C;
        use GroupEvent as E;
        if let C::Create(new) = command {
            if self.id.is_some() {
                return Err(GroupError::AlreadyExists);
            }
            return create(new);
        }
        if self.id.is_none() {
            return Err(GroupError::NotFound);
        }
        if self.deleted {
            // Deleting again is a retry; anything else asks for a group that is gone.
            return match command {
                C::Delete => Ok(vec![]),
                _ => Err(GroupError::NotFound),
            };
        }
        match command {
            C::Create(_) => Err(GroupError::AlreadyExists),
            C::Update(update) => self.decide_update(update),
            C::Delete => Ok(vec![E::GroupDeleted {}]),
            C::AddContacts { contact_ids } => {
                let added: Vec<Uuid> = valid_contact_ids(&contact_ids)?
                    .into_iter()
                    .filter(|id| !self.members.contains(id))
                    .collect();
                Ok(if added.is_empty() {
                    vec![]
                } else {
                    vec![E::ContactsAdded { contact_ids: added }]
                })
            }
            C::RemoveContacts { contact_ids } => {
                let removed: Vec<Uuid> = valid_contact_ids(&contact_ids)?
                    .into_iter()
                    .filter(|id| self.members.contains(id))
                    .collect();
                Ok(if removed.is_empty() {
                    vec![]
                } else {
                    vec![E::ContactsRemoved {
                        contact_ids: removed,
                    }]
                })
            }
        }
    }
}

#[cfg(test)]
mod tests;
