//! Merging a duplicate contact into another, and undoing it.
//!
//! Merging B into A moves B's identifiers that A lacks to A (one identifier has one holder),
//! copies B's tags and custom fields that A lacks, and moves B's group memberships to A (B leaves
//! every group, A joins those it was not in); B then resolves to A. Nothing is lost: B keeps what
//! left it in its own `ContactMerged` event, A records what came in `ContactAbsorbed`, and
//! unmerging gives back exactly what A still holds of it and puts B back in the groups it left
//! that still exist.
//!
//! Memberships are the groups' to record: the contact decides which groups move, and the command
//! side appends the groups' own events with the contacts'.

use std::collections::{BTreeMap, BTreeSet};

use events::contact::{ContactEvent, CustomFieldValue, Identity, Moved};
use events::personal::Personal;
use events::{Email, InstagramId, PhoneE164, Tag, TelegramChatId};
use uuid::Uuid;

use super::{Contact, ContactError};

/// [`Moved`] in the clear.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MovedClear {
    pub identities: BTreeMap<Identity, String>,
    pub tags: BTreeSet<Tag>,
    pub custom_fields: BTreeMap<String, CustomFieldValue>,
    /// Groups left or joined (see [`ContactEvent`]'s merge events).
    pub groups: BTreeSet<Uuid>,
}

impl MovedClear {
    pub fn is_empty(&self) -> bool {
        self.identities.is_empty()
            && self.tags.is_empty()
            && self.custom_fields.is_empty()
            && self.groups.is_empty()
    }

    pub fn sealed(&self) -> Moved {
        Moved {
            identities: self
                .identities
                .iter()
                .map(|(identity, value)| (*identity, Personal::from(value.clone())))
                .collect(),
            tags: self.tags.iter().cloned().collect(),
            custom_fields: self
                .custom_fields
                .iter()
                .map(|(key, value)| (key.clone(), Personal::from(value.clone())))
                .collect(),
            groups: self.groups.iter().copied().collect(),
        }
    }

    /// The clear values of `moved`; erased values are left out.
    pub fn opened(moved: &Moved) -> MovedClear {
        MovedClear {
            identities: moved
                .identities
                .iter()
                .filter_map(|(identity, value)| Some((*identity, value.clear()?.clone())))
                .collect(),
            tags: moved.tags.iter().cloned().collect(),
            custom_fields: moved
                .custom_fields
                .iter()
                .filter_map(|(key, value)| Some((key.clone(), value.clear()?.clone())))
                .collect(),
            groups: moved.groups.iter().copied().collect(),
        }
    }
}

impl Contact {
    fn identity(&self, identity: Identity) -> Option<String> {
        self.identities()
            .into_iter()
            .find_map(|(kind, value)| (kind == identity).then_some(value))
    }

    /// Sets (or clears) one identifier from its normalised text; text that no longer parses
    /// (it was valid when written) clears it.
    pub(super) fn set_identity(&mut self, identity: Identity, value: Option<&str>) {
        match identity {
            Identity::Email => self.email = value.and_then(|v| Email::parse(v).ok()),
            Identity::Whatsapp => {
                self.whatsapp = value.and_then(|v| PhoneE164::parse(v, None).ok());
            }
            Identity::Telegram => {
                self.telegram_chat_id = value.and_then(|v| TelegramChatId::parse(v).ok());
            }
            Identity::InstagramScoped => {
                self.instagram_scoped_id = value.and_then(|v| InstagramId::parse(v).ok());
            }
            Identity::InstagramUser => {
                self.instagram_user_id = value.and_then(|v| InstagramId::parse(v).ok());
            }
        }
    }

    /// Whether the contact can take part in a merge at all.
    fn mergeable(&self) -> Result<(), ContactError> {
        if self.id.is_none() {
            return Err(ContactError::NotFound);
        }
        if self.merged_into.is_some() {
            return Err(ContactError::Merged);
        }
        if self.deleted {
            return Err(ContactError::Deleted);
        }
        if self.erased {
            return Err(ContactError::Erased);
        }
        Ok(())
    }

    /// This contact (B) merging into `into` (A, as it is now), leaving the groups it is a
    /// member of.
    pub(super) fn decide_merge_into(
        &self,
        into: Uuid,
        target: &Contact,
        member_of: &BTreeSet<Uuid>,
    ) -> Result<Vec<ContactEvent>, ContactError> {
        if self.id == Some(into) {
            return Err(ContactError::MergeWithItself);
        }
        self.mergeable()?;
        target.mergeable()?;
        let target_kinds: BTreeSet<Identity> = target
            .identities()
            .into_iter()
            .map(|(kind, _)| kind)
            .collect();
        let moved = MovedClear {
            identities: self
                .identities()
                .into_iter()
                .filter(|(kind, _)| !target_kinds.contains(kind))
                .collect(),
            tags: self.tags.difference(&target.tags).cloned().collect(),
            custom_fields: self
                .custom_fields
                .iter()
                .filter(|(key, _)| !target.custom_fields.contains_key(*key))
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect(),
            groups: member_of.clone(),
        };
        Ok(vec![ContactEvent::ContactMerged {
            into,
            moved: moved.sealed(),
        }])
    }

    /// This contact (A) taking in what `from` (B) brings, joining the groups B left that it is
    /// not a member of already.
    pub(super) fn decide_absorb(
        &self,
        from: Uuid,
        moved: &MovedClear,
        member_of: &BTreeSet<Uuid>,
    ) -> Result<Vec<ContactEvent>, ContactError> {
        self.mergeable()?;
        let taken = MovedClear {
            groups: moved.groups.difference(member_of).copied().collect(),
            ..moved.clone()
        };
        Ok(vec![ContactEvent::ContactAbsorbed {
            from,
            moved: taken.sealed(),
        }])
    }

    /// This contact (A) giving back what it still holds of `from` (B), and leaving the groups it
    /// joined in the merge that it is still a member of.
    pub(super) fn decide_split(
        &self,
        from: Uuid,
        member_of: &BTreeSet<Uuid>,
    ) -> Result<Vec<ContactEvent>, ContactError> {
        let absorbed = self.absorbed.get(&from).ok_or(ContactError::NotMerged)?;
        let back = MovedClear {
            identities: absorbed
                .identities
                .iter()
                .filter(|(kind, value)| self.identity(**kind).as_ref() == Some(*value))
                .map(|(kind, value)| (*kind, value.clone()))
                .collect(),
            tags: absorbed.tags.intersection(&self.tags).cloned().collect(),
            custom_fields: absorbed
                .custom_fields
                .iter()
                .filter(|(key, value)| self.custom_fields.get(*key) == Some(*value))
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect(),
            groups: absorbed.groups.intersection(member_of).copied().collect(),
        };
        Ok(vec![ContactEvent::ContactSplit {
            from,
            moved: back.sealed(),
        }])
    }

    /// This contact (B) standing on its own again, with `back` (what A gave back), rejoining the
    /// groups it left in the merge that still exist.
    pub(super) fn decide_unmerge(
        &self,
        back: &MovedClear,
        existing: &BTreeSet<Uuid>,
    ) -> Result<Vec<ContactEvent>, ContactError> {
        let from = self.merged_into.ok_or(ContactError::NotMerged)?;
        let returned = MovedClear {
            groups: self.groups_left.intersection(existing).copied().collect(),
            ..back.clone()
        };
        Ok(vec![ContactEvent::ContactUnmerged {
            from,
            moved: returned.sealed(),
        }])
    }

    pub(super) fn evolve_merge(&mut self, event: &ContactEvent) {
        match event {
            ContactEvent::ContactMerged { into, moved } => {
                let moved = MovedClear::opened(moved);
                for kind in moved.identities.keys() {
                    self.set_identity(*kind, None);
                }
                self.groups_left = moved.groups;
                self.merged_into = Some(*into);
            }
            ContactEvent::ContactAbsorbed { from, moved } => {
                let moved = MovedClear::opened(moved);
                for (kind, value) in &moved.identities {
                    self.set_identity(*kind, Some(value));
                }
                self.tags.extend(moved.tags.iter().cloned());
                self.custom_fields.extend(moved.custom_fields.clone());
                self.absorbed.insert(*from, moved);
            }
            ContactEvent::ContactUnmerged { moved, .. } => {
                let moved = MovedClear::opened(moved);
                for (kind, value) in &moved.identities {
                    self.set_identity(*kind, Some(value));
                }
                self.groups_left.clear();
                self.merged_into = None;
            }
            ContactEvent::ContactSplit { from, moved } => {
                let moved = MovedClear::opened(moved);
                for kind in moved.identities.keys() {
                    self.set_identity(*kind, None);
                }
                for tag in &moved.tags {
                    self.tags.remove(tag);
                }
                for key in moved.custom_fields.keys() {
                    self.custom_fields.remove(key);
                }
                self.absorbed.remove(from);
            }
            _ => {}
        }
    }
}
