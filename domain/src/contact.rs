//! A contact: one person across channels, with their identities, status, consent, tags, notes
//! and custom fields. Updates that change nothing are no events; a deleted contact only comes
//! back (restore) or goes for good (erase); an erased one refuses everything.
//!
//! Personal values arrive as [`Personal`]: the fold keeps the clear ones and, when a sealed value
//! no longer opens (the contact's key was destroyed), keeps nothing and marks the contact erased.

mod merge;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use events::contact::{
    ChannelFlags, ConflictResolution, ContactEvent, ContactStatus, CustomFieldValue, Identity,
};
use events::personal::Personal;
use events::{Email, InstagramId, PhoneE164, Tag, TelegramChatId};
use uuid::Uuid;

pub use merge::MovedClear;

use crate::Aggregate;

/// The longest full name.
pub const MAX_FULL_NAME_LEN: usize = 200;
/// The longest notes.
pub const MAX_NOTES_LEN: usize = 10_000;
/// The longest status change reason or consent source.
pub const MAX_REASON_LEN: usize = 500;
/// The longest custom field key.
pub const MAX_CUSTOM_FIELD_KEY_LEN: usize = 100;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Contact {
    /// `None` until the contact is created.
    pub id: Option<Uuid>,
    /// `None` before creation and after erasure.
    pub full_name: Option<String>,
    pub email: Option<Email>,
    pub whatsapp: Option<PhoneE164>,
    pub telegram_chat_id: Option<TelegramChatId>,
    pub instagram_scoped_id: Option<InstagramId>,
    pub instagram_user_id: Option<InstagramId>,
    pub status: ContactStatus,
    /// Every status change, oldest first; who made it is in each event's metadata.
    pub status_history: Vec<StatusChange>,
    pub flags: ChannelFlags,
    /// The most recent consent by its own time.
    pub consent: Option<Consent>,
    pub tags: BTreeSet<Tag>,
    pub notes: Option<String>,
    pub custom_fields: BTreeMap<String, CustomFieldValue>,
    /// Set by the messaging features; `None` until then.
    pub last_inbound_at: Option<DateTime<Utc>>,
    pub last_outbound_at: Option<DateTime<Utc>>,
    pub deleted: bool,
    /// The personal data is gone: the contact was erased, or its sealed values no longer open.
    pub erased: bool,
    /// The contact this one was merged into: its id resolves there.
    pub merged_into: Option<Uuid>,
    /// What each contact merged into this one brought, by its id (its groups: the ones this
    /// contact joined in its place).
    pub absorbed: BTreeMap<Uuid, MovedClear>,
    /// The groups this contact left when it was merged into another; it rejoins them when the
    /// merge is undone.
    pub groups_left: BTreeSet<Uuid>,
    /// Attempts to give this contact identifiers other contacts hold, by id.
    pub conflicts: BTreeMap<Uuid, IdentityConflict>,
    /// The stream holds a `ContactErased` event. Unlike `erased`, this says the erasure is
    /// complete: a key destroyed before the event was appended still needs the event.
    pub erasure_recorded: bool,
}

/// An identifier this contact was to get while another contact held it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityConflict {
    pub identity: Identity,
    /// `None` once erased.
    pub value: Option<String>,
    pub holder: Uuid,
    pub source: String,
    /// `None` while open.
    pub resolution: Option<ConflictResolution>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange {
    pub from: ContactStatus,
    pub to: ContactStatus,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consent {
    pub opted_in: bool,
    pub source: String,
    pub at: DateTime<Utc>,
}

/// A contact to create, its values already parsed at the edge.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewContact {
    pub contact_id: Uuid,
    pub full_name: String,
    pub email: Option<Email>,
    pub whatsapp: Option<PhoneE164>,
    pub telegram_chat_id: Option<TelegramChatId>,
    pub instagram_scoped_id: Option<InstagramId>,
    pub instagram_user_id: Option<InstagramId>,
    pub tags: Vec<Tag>,
    pub notes: Option<String>,
    pub custom_fields: BTreeMap<String, CustomFieldValue>,
}

/// A partial update: `None` leaves a field as it is, `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContactUpdate {
    pub full_name: Option<String>,
    pub email: Option<Option<Email>>,
    pub whatsapp: Option<Option<PhoneE164>>,
    pub telegram_chat_id: Option<Option<TelegramChatId>>,
    pub instagram_scoped_id: Option<Option<InstagramId>>,
    pub instagram_user_id: Option<Option<InstagramId>>,
    /// Blank notes clear them.
    pub notes: Option<Option<String>>,
    pub set_custom_fields: BTreeMap<String, CustomFieldValue>,
    pub remove_custom_fields: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContactCommand {
    Create(NewContact),
    Update(ContactUpdate),
    ChangeStatus {
        to: ContactStatus,
        reason: Option<String>,
    },
    /// `None` leaves a flag as it is.
    SetChannelFlags {
        whatsapp_blocked: Option<bool>,
        instagram_blocked: Option<bool>,
        instagram_opt_in: Option<bool>,
    },
    RecordConsent {
        opted_in: bool,
        source: String,
        at: DateTime<Utc>,
    },
    Tag {
        tags: Vec<Tag>,
    },
    Untag {
        tags: Vec<Tag>,
    },
    Delete,
    Restore,
    Erase,
    /// Keeps an attempt to give the contact an identifier `holder` has.
    RecordConflict {
        conflict_id: Uuid,
        identity: Identity,
        value: String,
        holder: Uuid,
        source: String,
    },
    ResolveConflict {
        conflict_id: Uuid,
        resolution: ConflictResolution,
    },
    /// Merge this contact into `into`, whose current state is `target`, leaving the groups it
    /// is a member of (`member_of`).
    MergeInto {
        into: Uuid,
        target: Box<Contact>,
        member_of: BTreeSet<Uuid>,
    },
    /// Take in what `from`, merging into this contact, brings; of the groups `from` left, join
    /// those this contact is not in (`member_of`: the groups it is a member of).
    Absorb {
        from: Uuid,
        moved: MovedClear,
        member_of: BTreeSet<Uuid>,
    },
    /// Give back to `from` what this contact still holds of it (undoing a merge), leaving the
    /// groups it joined in the merge and is still in (`member_of`: the groups it is a member of).
    Split {
        from: Uuid,
        member_of: BTreeSet<Uuid>,
    },
    /// Stand alone again, with what the contact merged into gave back, rejoining the groups left
    /// in the merge that still exist (`existing`).
    Unmerge {
        back: MovedClear,
        existing: BTreeSet<Uuid>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContactError {
    #[error("the contact does not exist")]
    NotFound,
    #[error("no such identity conflict")]
    UnknownConflict,
    #[error("the contact was merged into another; unmerge it first")]
    Merged,
    #[error("a contact cannot be merged into itself")]
    MergeWithItself,
    #[error("the contact is not merged")]
    NotMerged,
    #[error("the contact exists already")]
    AlreadyExists,
    #[error("the contact is deleted; restore it first")]
    Deleted,
    #[error("the contact's personal data has been erased")]
    Erased,
    #[error("a full name must have 1 to {MAX_FULL_NAME_LEN} characters and no control characters")]
    InvalidFullName,
    #[error("notes must have at most {MAX_NOTES_LEN} characters")]
    InvalidNotes,
    #[error("a reason must have at most {MAX_REASON_LEN} characters and no control characters")]
    InvalidReason,
    #[error(
        "a consent source must have 1 to {MAX_REASON_LEN} characters and no control characters"
    )]
    InvalidConsentSource,
    #[error(
        "custom field key {0:?} must have 1 to {MAX_CUSTOM_FIELD_KEY_LEN} characters and no \
         control characters"
    )]
    InvalidCustomFieldKey(String),
    #[error("custom field {0:?} cannot be both set and removed")]
    CustomFieldSetAndRemoved(String),
}

/// A full name as stored: trimmed, 1 to [`MAX_FULL_NAME_LEN`] characters, no control characters.
pub fn valid_full_name(raw: &str) -> Result<String, ContactError> {
    let name = raw.trim();
    let length = name.chars().count();
    if length == 0 || length > MAX_FULL_NAME_LEN || name.chars().any(char::is_control) {
        return Err(ContactError::InvalidFullName);
    }
    Ok(name.to_owned())
}

/// Notes as stored: trimmed, `None` when blank, at most [`MAX_NOTES_LEN`] characters. Line
/// breaks and tabs are fine; other control characters are not.
pub fn valid_notes(raw: Option<&str>) -> Result<Option<String>, ContactError> {
    let Some(notes) = raw.map(str::trim).filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    let control = notes
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'));
    if notes.chars().count() > MAX_NOTES_LEN || control {
        return Err(ContactError::InvalidNotes);
    }
    Ok(Some(notes.to_owned()))
}

/// A status change reason as stored: trimmed, `None` when blank.
pub fn valid_reason(raw: Option<&str>) -> Result<Option<String>, ContactError> {
    let Some(reason) = raw.map(str::trim).filter(|r| !r.is_empty()) else {
        return Ok(None);
    };
    if reason.chars().count() > MAX_REASON_LEN || reason.chars().any(char::is_control) {
        return Err(ContactError::InvalidReason);
    }
    Ok(Some(reason.to_owned()))
}

fn valid_consent_source(raw: &str) -> Result<String, ContactError> {
    match valid_reason(Some(raw)) {
        Ok(Some(source)) => Ok(source),
        _ => Err(ContactError::InvalidConsentSource),
    }
}

fn valid_custom_field_key(key: &str) -> Result<(), ContactError> {
    let length = key.chars().count();
    if length == 0
        || length > MAX_CUSTOM_FIELD_KEY_LEN
        || key.trim() != key
        || key.chars().any(char::is_control)
    {
        return Err(ContactError::InvalidCustomFieldKey(key.to_owned()));
    }
    Ok(())
}

fn sealed<T>(value: Option<T>) -> Option<Personal<T>> {
    value.map(Personal::from)
}

fn sorted(tags: impl IntoIterator<Item = Tag>) -> Vec<Tag> {
    tags.into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

impl Contact {
    /// The contact's current identifiers in their normalised form, for reservations.
    pub fn identities(&self) -> Vec<(Identity, String)> {
        [
            (Identity::Email, self.email.as_ref().map(Email::to_string)),
            (
                Identity::Whatsapp,
                self.whatsapp.as_ref().map(PhoneE164::to_string),
            ),
            (
                Identity::Telegram,
                self.telegram_chat_id.map(|id| id.to_string()),
            ),
            (
                Identity::InstagramScoped,
                self.instagram_scoped_id
                    .as_ref()
                    .map(InstagramId::to_string),
            ),
            (
                Identity::InstagramUser,
                self.instagram_user_id.as_ref().map(InstagramId::to_string),
            ),
        ]
        .into_iter()
        .filter_map(|(identity, value)| Some((identity, value?)))
        .collect()
    }

    /// Whether anything may be sent to the contact at all; channel flags and suppressions are
    /// checked on top of this.
    pub fn can_be_messaged(&self) -> bool {
        self.id.is_some() && self.status == ContactStatus::Active && !self.deleted && !self.erased
    }

    /// The clear value, or `None` (and the contact marked erased) when it no longer opens.
    fn open<T: Clone>(&mut self, value: &Personal<T>) -> Option<T> {
        let clear = value.clear().cloned();
        if clear.is_none() {
            self.erased = true;
        }
        clear
    }

    fn open_option<T: Clone>(&mut self, value: Option<&Personal<T>>) -> Option<T> {
        value.and_then(|v| self.open(v))
    }

    fn apply_custom_fields<'a>(
        &mut self,
        set: impl IntoIterator<Item = (&'a String, &'a Personal<CustomFieldValue>)>,
    ) {
        for (key, value) in set {
            match self.open(value) {
                Some(value) => self.custom_fields.insert(key.clone(), value),
                None => self.custom_fields.remove(key),
            };
        }
    }

    fn erase_personal_data(&mut self) {
        self.full_name = None;
        self.email = None;
        self.whatsapp = None;
        self.telegram_chat_id = None;
        self.instagram_scoped_id = None;
        self.instagram_user_id = None;
        self.notes = None;
        self.custom_fields.clear();
        self.erased = true;
    }

    fn decide_update(&self, update: ContactUpdate) -> Result<Vec<ContactEvent>, ContactError> {
        use ContactEvent as E;
        let full_name = update
            .full_name
            .as_deref()
            .map(valid_full_name)
            .transpose()?;
        let notes = update
            .notes
            .as_ref()
            .map(|notes| valid_notes(notes.as_deref()))
            .transpose()?;
        for key in update.set_custom_fields.keys() {
            valid_custom_field_key(key)?;
            if update.remove_custom_fields.contains(key) {
                return Err(ContactError::CustomFieldSetAndRemoved(key.clone()));
            }
        }

        let mut events = vec![];
        if let Some(full_name) = full_name.filter(|n| self.full_name.as_ref() != Some(n)) {
            events.push(E::ContactRenamed {
                full_name: full_name.into(),
            });
        }
        if let Some(email) = update.email.filter(|e| *e != self.email) {
            events.push(E::EmailChanged {
                email: sealed(email),
            });
        }
        if let Some(whatsapp) = update.whatsapp.filter(|w| *w != self.whatsapp) {
            events.push(E::WhatsappChanged {
                whatsapp: sealed(whatsapp),
            });
        }
        if let Some(id) = update
            .telegram_chat_id
            .filter(|t| *t != self.telegram_chat_id)
        {
            events.push(E::TelegramChatIdChanged {
                telegram_chat_id: sealed(id),
            });
        }
        if let Some(id) = update
            .instagram_scoped_id
            .filter(|i| *i != self.instagram_scoped_id)
        {
            events.push(E::InstagramScopedIdChanged {
                instagram_scoped_id: sealed(id),
            });
        }
        if let Some(id) = update
            .instagram_user_id
            .filter(|i| *i != self.instagram_user_id)
        {
            events.push(E::InstagramUserIdChanged {
                instagram_user_id: sealed(id),
            });
        }
        if let Some(notes) = notes.filter(|n| *n != self.notes) {
            events.push(E::NotesChanged {
                notes: sealed(notes),
            });
        }
        let set: BTreeMap<_, _> = update
            .set_custom_fields
            .into_iter()
            .filter(|(key, value)| self.custom_fields.get(key) != Some(value))
            .map(|(key, value)| (key, Personal::from(value)))
            .collect();
        let removed: Vec<String> = update
            .remove_custom_fields
            .into_iter()
            .filter(|key| self.custom_fields.contains_key(key))
            .collect();
        if !set.is_empty() || !removed.is_empty() {
            events.push(E::CustomFieldsChanged { set, removed });
        }
        Ok(events)
    }
}

fn create(new: NewContact) -> Result<Vec<ContactEvent>, ContactError> {
    let full_name = valid_full_name(&new.full_name)?;
    let notes = valid_notes(new.notes.as_deref())?;
    for key in new.custom_fields.keys() {
        valid_custom_field_key(key)?;
    }
    Ok(vec![ContactEvent::ContactCreated {
        contact_id: new.contact_id,
        full_name: full_name.into(),
        email: sealed(new.email),
        whatsapp: sealed(new.whatsapp),
        telegram_chat_id: sealed(new.telegram_chat_id),
        instagram_scoped_id: sealed(new.instagram_scoped_id),
        instagram_user_id: sealed(new.instagram_user_id),
        tags: sorted(new.tags),
        notes: sealed(notes),
        custom_fields: new
            .custom_fields
            .into_iter()
            .map(|(key, value)| (key, Personal::from(value)))
            .collect(),
    }])
}

impl Aggregate for Contact {
    type Event = ContactEvent;
    type Command = ContactCommand;
    type Error = ContactError;

    fn evolve(mut self, event: &ContactEvent) -> Self {
        use ContactEvent as E;
        match event {
            E::ContactCreated {
                contact_id,
                full_name,
                email,
                whatsapp,
                telegram_chat_id,
                instagram_scoped_id,
                instagram_user_id,
                tags,
                notes,
                custom_fields,
            } => {
                self.id = Some(*contact_id);
                self.full_name = self.open(full_name);
                self.email = self.open_option(email.as_ref());
                self.whatsapp = self.open_option(whatsapp.as_ref());
                self.telegram_chat_id = self.open_option(telegram_chat_id.as_ref());
                self.instagram_scoped_id = self.open_option(instagram_scoped_id.as_ref());
                self.instagram_user_id = self.open_option(instagram_user_id.as_ref());
                self.tags = tags.iter().cloned().collect();
                self.notes = self.open_option(notes.as_ref());
                self.apply_custom_fields(custom_fields);
            }
            E::ContactRenamed { full_name } => self.full_name = self.open(full_name),
            E::EmailChanged { email } => self.email = self.open_option(email.as_ref()),
            E::WhatsappChanged { whatsapp } => {
                self.whatsapp = self.open_option(whatsapp.as_ref());
            }
            E::TelegramChatIdChanged { telegram_chat_id } => {
                self.telegram_chat_id = self.open_option(telegram_chat_id.as_ref());
            }
            E::InstagramScopedIdChanged {
                instagram_scoped_id,
            } => {
                self.instagram_scoped_id = self.open_option(instagram_scoped_id.as_ref());
            }
            E::InstagramUserIdChanged { instagram_user_id } => {
                self.instagram_user_id = self.open_option(instagram_user_id.as_ref());
            }
            E::StatusChanged { from, to, reason } => {
                self.status = *to;
                self.status_history.push(StatusChange {
                    from: *from,
                    to: *to,
                    reason: reason.clone(),
                });
            }
            E::ChannelFlagsChanged {
                whatsapp_blocked,
                instagram_blocked,
                instagram_opt_in,
            } => {
                self.flags = ChannelFlags {
                    whatsapp_blocked: *whatsapp_blocked,
                    instagram_blocked: *instagram_blocked,
                    instagram_opt_in: *instagram_opt_in,
                };
            }
            E::ConsentRecorded {
                opted_in,
                source,
                at,
            } => {
                // An import may record an older consent after a newer one; the newest stands.
                if self.consent.as_ref().is_none_or(|c| c.at <= *at) {
                    self.consent = Some(Consent {
                        opted_in: *opted_in,
                        source: source.clone(),
                        at: *at,
                    });
                }
            }
            E::Tagged { tags } => self.tags.extend(tags.iter().cloned()),
            E::Untagged { tags } => {
                for tag in tags {
                    self.tags.remove(tag);
                }
            }
            E::NotesChanged { notes } => self.notes = self.open_option(notes.as_ref()),
            E::CustomFieldsChanged { set, removed } => {
                self.apply_custom_fields(set);
                for key in removed {
                    self.custom_fields.remove(key);
                }
            }
            E::ContactDeleted {} => self.deleted = true,
            E::ContactRestored {} => self.deleted = false,
            E::ContactErased {} => {
                self.erase_personal_data();
                self.erasure_recorded = true;
            }
            E::IdentityConflictRecorded {
                conflict_id,
                identity,
                value,
                holder,
                source,
            } => {
                let value = self.open(value);
                self.conflicts.insert(
                    *conflict_id,
                    IdentityConflict {
                        identity: *identity,
                        value,
                        holder: *holder,
                        source: source.clone(),
                        resolution: None,
                    },
                );
            }
            E::IdentityConflictResolved {
                conflict_id,
                resolution,
            } => {
                if let Some(conflict) = self.conflicts.get_mut(conflict_id) {
                    conflict.resolution = Some(*resolution);
                }
            }
            E::ContactMerged { .. }
            | E::ContactAbsorbed { .. }
            | E::ContactUnmerged { .. }
            | E::ContactSplit { .. } => self.evolve_merge(event),
        }
        self
    }

    fn decide(&self, command: ContactCommand) -> Result<Vec<ContactEvent>, ContactError> {
        use ContactCommand as C;
        use ContactEvent as E;
        if let C::Create(new) = command {
            if self.id.is_some() {
                return Err(ContactError::AlreadyExists);
            }
            return create(new);
        }
        if self.id.is_none() {
            return Err(ContactError::NotFound);
        }
        if self.erased && !matches!(command, C::Erase) {
            return Err(ContactError::Erased);
        }
        if self.merged_into.is_some() && !matches!(command, C::Unmerge { .. } | C::Erase) {
            return Err(ContactError::Merged);
        }
        if self.deleted && !matches!(command, C::Delete | C::Restore | C::Erase) {
            return Err(ContactError::Deleted);
        }
        match command {
            C::Create(_) => Err(ContactError::AlreadyExists),
            // Erasing again changes nothing, but a contact whose key was destroyed without the
            // event being recorded still needs the event, so projections drop its data too.
            C::Erase => Ok(if self.erasure_recorded {
                vec![]
            } else {
                vec![E::ContactErased {}]
            }),
            C::Delete => Ok(if self.deleted {
                vec![]
            } else {
                vec![E::ContactDeleted {}]
            }),
            C::Restore => Ok(if self.deleted {
                vec![E::ContactRestored {}]
            } else {
                vec![]
            }),
            C::Update(update) => self.decide_update(update),
            C::MergeInto {
                into,
                target,
                member_of,
            } => self.decide_merge_into(into, &target, &member_of),
            C::Absorb {
                from,
                moved,
                member_of,
            } => self.decide_absorb(from, &moved, &member_of),
            C::Split { from, member_of } => self.decide_split(from, &member_of),
            C::Unmerge { back, existing } => self.decide_unmerge(&back, &existing),
            C::RecordConflict {
                conflict_id,
                identity,
                value,
                holder,
                source,
            } => {
                let source = valid_reason(Some(&source))?.unwrap_or_else(|| "api".into());
                Ok(vec![E::IdentityConflictRecorded {
                    conflict_id,
                    identity,
                    value: value.into(),
                    holder,
                    source,
                }])
            }
            C::ResolveConflict {
                conflict_id,
                resolution,
            } => match self.conflicts.get(&conflict_id) {
                None => Err(ContactError::UnknownConflict),
                Some(conflict) if conflict.resolution.is_some() => Ok(vec![]),
                Some(_) => Ok(vec![E::IdentityConflictResolved {
                    conflict_id,
                    resolution,
                }]),
            },
            C::ChangeStatus { to, reason } => {
                let reason = valid_reason(reason.as_deref())?;
                Ok(if to == self.status {
                    vec![]
                } else {
                    vec![E::StatusChanged {
                        from: self.status,
                        to,
                        reason,
                    }]
                })
            }
            C::SetChannelFlags {
                whatsapp_blocked,
                instagram_blocked,
                instagram_opt_in,
            } => {
                let flags = ChannelFlags {
                    whatsapp_blocked: whatsapp_blocked.unwrap_or(self.flags.whatsapp_blocked),
                    instagram_blocked: instagram_blocked.unwrap_or(self.flags.instagram_blocked),
                    instagram_opt_in: instagram_opt_in.unwrap_or(self.flags.instagram_opt_in),
                };
                Ok(if flags == self.flags {
                    vec![]
                } else {
                    vec![E::ChannelFlagsChanged {
                        whatsapp_blocked: flags.whatsapp_blocked,
                        instagram_blocked: flags.instagram_blocked,
                        instagram_opt_in: flags.instagram_opt_in,
                    }]
                })
            }
            C::RecordConsent {
                opted_in,
                source,
                at,
            } => {
                let consent = Consent {
                    opted_in,
                    source: valid_consent_source(&source)?,
                    at,
                };
                Ok(if self.consent.as_ref() == Some(&consent) {
                    vec![]
                } else {
                    vec![E::ConsentRecorded {
                        opted_in,
                        source: consent.source,
                        at,
                    }]
                })
            }
            C::Tag { tags } => {
                let added = sorted(tags.into_iter().filter(|t| !self.tags.contains(t)));
                Ok(if added.is_empty() {
                    vec![]
                } else {
                    vec![E::Tagged { tags: added }]
                })
            }
            C::Untag { tags } => {
                let removed = sorted(tags.into_iter().filter(|t| self.tags.contains(t)));
                Ok(if removed.is_empty() {
                    vec![]
                } else {
                    vec![E::Untagged { tags: removed }]
                })
            }
        }
    }
}

#[cfg(test)]
mod tests;
