//! An organisation's custom field definitions, one stream for all of them so keys stay unique,
//! and the check every contact write runs its values through ([`CustomFields::validate`]).
//!
//! A removed definition's values stay in the contacts' streams and are hidden from reads. Its key
//! may be defined again, but only with the kind it had: the hidden values come back with it and
//! must still fit.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use events::contact::CustomFieldValue;
use events::custom_field::{CustomFieldEvent, FieldKind};

use crate::Aggregate;

/// The longest key; keys match `^[a-z][a-z0-9_]{0,49}$`.
pub const MAX_KEY_LEN: usize = 50;
/// The longest label.
pub const MAX_LABEL_LEN: usize = 100;
/// The most options a select field has.
pub const MAX_OPTIONS: usize = 100;
/// The longest option.
pub const MAX_OPTION_LEN: usize = 100;
/// The longest text value.
pub const MAX_TEXT_LEN: usize = 10_000;
/// The most live definitions an organisation has: every contact read carries them.
pub const MAX_FIELDS: usize = 200;
/// Error messages list a field's options when it has at most this many.
const LISTED_OPTIONS: usize = 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDefinition {
    pub key: String,
    pub label: String,
    pub kind: FieldKind,
    pub required: bool,
    /// Empty unless the kind has options.
    pub options: Vec<String>,
    pub display_order: i32,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CustomFields {
    /// The live definitions by key.
    pub fields: BTreeMap<String, FieldDefinition>,
    /// The kind each removed (and not redefined) key had.
    pub removed: BTreeMap<String, FieldKind>,
}

/// A definition to add. `display_order` defaults to after the last field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewField {
    pub key: String,
    pub label: String,
    pub kind: FieldKind,
    pub required: bool,
    pub options: Vec<String>,
    pub display_order: Option<i32>,
}

/// A partial change: `None` leaves a property as it is. `kind` may only repeat the current one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldChange {
    pub label: Option<String>,
    pub kind: Option<FieldKind>,
    pub required: Option<bool>,
    pub options: Option<Vec<String>>,
    pub display_order: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CustomFieldCommand {
    Define(NewField),
    Change { key: String, change: FieldChange },
    Remove { key: String },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CustomFieldError {
    #[error(
        "a key must start with a lowercase letter and have at most {MAX_KEY_LEN} lowercase \
         letters, digits and underscores"
    )]
    InvalidKey,
    #[error("a label must have 1 to {MAX_LABEL_LEN} characters and no control characters")]
    InvalidLabel,
    #[error("a {0} field needs 1 to {MAX_OPTIONS} options")]
    OptionsRequired(FieldKind),
    #[error("a {0} field has no options")]
    OptionsForbidden(FieldKind),
    #[error(
        "options must be 1 to {MAX_OPTIONS} values of 1 to {MAX_OPTION_LEN} characters without \
         control characters"
    )]
    InvalidOptions,
    #[error("option {0:?} is listed twice")]
    DuplicateOption(String),
    #[error("the kind of a field cannot change; it is {0}")]
    KindUnchangeable(FieldKind),
    #[error(
        "this key was a {0} field, whose values are kept: define it as {0} again or choose \
         another key"
    )]
    KeyUsedBefore(FieldKind),
    #[error("a different field with this key exists")]
    AlreadyDefined,
    #[error("no such custom field")]
    NotFound,
    #[error("an organisation has at most {MAX_FIELDS} custom fields")]
    TooManyFields,
}

impl CustomFieldError {
    /// The request field the error is about.
    pub fn field(&self) -> &'static str {
        use CustomFieldError as E;
        match self {
            E::InvalidKey
            | E::KeyUsedBefore(_)
            | E::AlreadyDefined
            | E::NotFound
            | E::TooManyFields => "key",
            E::InvalidLabel => "label",
            E::OptionsRequired(_)
            | E::OptionsForbidden(_)
            | E::InvalidOptions
            | E::DuplicateOption(_) => "options",
            E::KindUnchangeable(_) => "kind",
        }
    }
}

/// Checks a key against `^[a-z][a-z0-9_]{0,49}$`.
pub fn valid_key(key: &str) -> Result<(), CustomFieldError> {
    let mut chars = key.chars();
    let starts_well = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    let rest_fine = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !starts_well || !rest_fine || key.len() > MAX_KEY_LEN {
        return Err(CustomFieldError::InvalidKey);
    }
    Ok(())
}

/// A label as stored: trimmed, 1 to [`MAX_LABEL_LEN`] characters, no control characters.
pub fn valid_label(raw: &str) -> Result<String, CustomFieldError> {
    let label = raw.trim();
    let length = label.chars().count();
    if length == 0 || length > MAX_LABEL_LEN || label.chars().any(char::is_control) {
        return Err(CustomFieldError::InvalidLabel);
    }
    Ok(label.to_owned())
}

/// The options of a `kind` field as stored, trimmed and in the order given: 1 to
/// [`MAX_OPTIONS`] distinct ones for select kinds, none for the others.
pub fn valid_options(kind: FieldKind, raw: &[String]) -> Result<Vec<String>, CustomFieldError> {
    if !kind.has_options() {
        return if raw.is_empty() {
            Ok(vec![])
        } else {
            Err(CustomFieldError::OptionsForbidden(kind))
        };
    }
    if raw.is_empty() {
        return Err(CustomFieldError::OptionsRequired(kind));
    }
    if raw.len() > MAX_OPTIONS {
        return Err(CustomFieldError::InvalidOptions);
    }
    let mut seen = BTreeSet::new();
    let mut options = Vec::with_capacity(raw.len());
    for option in raw {
        let option = option.trim();
        let length = option.chars().count();
        if length == 0 || length > MAX_OPTION_LEN || option.chars().any(char::is_control) {
            return Err(CustomFieldError::InvalidOptions);
        }
        if !seen.insert(option) {
            return Err(CustomFieldError::DuplicateOption(option.to_owned()));
        }
        options.push(option.to_owned());
    }
    Ok(options)
}

/// Whether `text` is a calendar date written `YYYY-MM-DD`.
fn is_date(text: &str) -> bool {
    text.len() == 10
        && NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .is_ok_and(|date| date.format("%Y-%m-%d").to_string() == text)
}

impl FieldDefinition {
    fn options_text(&self) -> String {
        if self.options.len() <= LISTED_OPTIONS {
            self.options.join(", ")
        } else {
            format!("the field's {} options", self.options.len())
        }
    }

    /// Why `value` does not fit this field, if it does not. `null` removes a value, which a
    /// required field refuses.
    pub fn check(&self, value: &CustomFieldValue, creating: bool) -> Result<(), String> {
        use CustomFieldValue as V;
        match (self.kind, value) {
            (_, V::Null) if self.required => Err(if creating {
                "is required".into()
            } else {
                "is required and cannot be removed".into()
            }),
            (_, V::Null) => Ok(()),
            (FieldKind::Text, V::String(text)) => {
                if text.chars().count() > MAX_TEXT_LEN {
                    Err(format!("must be at most {MAX_TEXT_LEN} characters"))
                } else if self.required && text.trim().is_empty() {
                    Err("is required and cannot be blank".into())
                } else {
                    Ok(())
                }
            }
            (FieldKind::Number, V::Number(_)) | (FieldKind::Boolean, V::Bool(_)) => Ok(()),
            (FieldKind::Date, V::String(text)) if is_date(text) => Ok(()),
            (FieldKind::Select, V::String(option)) if self.options.contains(option) => Ok(()),
            (FieldKind::MultiSelect, V::Array(items)) => {
                let mut chosen = BTreeSet::new();
                for item in items {
                    let fits = item
                        .as_str()
                        .is_some_and(|o| self.options.iter().any(|known| known == o));
                    if !fits || !chosen.insert(item.as_str()) {
                        return Err(format!(
                            "must be a list of distinct options from: {}",
                            self.options_text()
                        ));
                    }
                }
                if self.required && chosen.is_empty() {
                    return Err("is required: choose at least one option".into());
                }
                Ok(())
            }
            (FieldKind::Text, _) => Err("must be text".into()),
            (FieldKind::Number, _) => Err("must be a number".into()),
            (FieldKind::Date, _) => {
                Err("must be a date written YYYY-MM-DD, e.g. 2026-01-31".into())
            }
            (FieldKind::Boolean, _) => Err("must be true or false".into()),
            (FieldKind::Select, _) => Err(format!("must be one of: {}", self.options_text())),
            (FieldKind::MultiSelect, _) => Err(format!(
                "must be a list of distinct options from: {}",
                self.options_text()
            )),
        }
    }
}

impl CustomFields {
    /// The live definitions in display order (ties by key).
    pub fn ordered(&self) -> Vec<&FieldDefinition> {
        let mut fields: Vec<&FieldDefinition> = self.fields.values().collect();
        fields.sort_by(|a, b| (a.display_order, &a.key).cmp(&(b.display_order, &b.key)));
        fields
    }

    /// Checks the custom field values of a contact write: every key must be a live definition
    /// and every value must fit it (`null` removes a value, which required fields refuse). When
    /// `creating`, every required field must have a value. Each error is the field's path
    /// (`custom_fields.<key>`) with a message, in key order, missing required fields last.
    pub fn validate(
        &self,
        values: &BTreeMap<String, CustomFieldValue>,
        creating: bool,
    ) -> Result<(), Vec<(String, String)>> {
        let mut errors = Vec::new();
        for (key, value) in values {
            let checked = match self.fields.get(key) {
                Some(definition) => definition.check(value, creating),
                None => Err("is not a custom field of this organisation".into()),
            };
            if let Err(message) = checked {
                errors.push((format!("custom_fields.{key}"), message));
            }
        }
        if creating {
            for definition in self.fields.values().filter(|d| d.required) {
                if !values.contains_key(&definition.key) {
                    errors.push((
                        format!("custom_fields.{}", definition.key),
                        "is required".into(),
                    ));
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    fn define(&self, new: NewField) -> Result<Vec<CustomFieldEvent>, CustomFieldError> {
        valid_key(&new.key)?;
        let label = valid_label(&new.label)?;
        let options = valid_options(new.kind, &new.options)?;
        if let Some(existing) = self.fields.get(&new.key) {
            // The same definition again is a retry.
            let same = existing.label == label
                && existing.kind == new.kind
                && existing.required == new.required
                && existing.options == options
                && new
                    .display_order
                    .is_none_or(|o| o == existing.display_order);
            return if same {
                Ok(vec![])
            } else {
                Err(CustomFieldError::AlreadyDefined)
            };
        }
        if let Some(kind) = self.removed.get(&new.key).filter(|k| **k != new.kind) {
            return Err(CustomFieldError::KeyUsedBefore(*kind));
        }
        if self.fields.len() >= MAX_FIELDS {
            return Err(CustomFieldError::TooManyFields);
        }
        let display_order = new.display_order.unwrap_or_else(|| {
            self.fields
                .values()
                .map(|f| f.display_order)
                .max()
                .map_or(0, |last| last.saturating_add(1))
        });
        Ok(vec![CustomFieldEvent::FieldDefined {
            key: new.key,
            label,
            kind: new.kind,
            required: new.required,
            options,
            display_order,
        }])
    }

    fn change(
        &self,
        key: &str,
        change: FieldChange,
    ) -> Result<Vec<CustomFieldEvent>, CustomFieldError> {
        let current = self.fields.get(key).ok_or(CustomFieldError::NotFound)?;
        if change.kind.is_some_and(|k| k != current.kind) {
            return Err(CustomFieldError::KindUnchangeable(current.kind));
        }
        let label = change
            .label
            .as_deref()
            .map(valid_label)
            .transpose()?
            .unwrap_or_else(|| current.label.clone());
        let options = change
            .options
            .as_deref()
            .map(|options| valid_options(current.kind, options))
            .transpose()?
            .unwrap_or_else(|| current.options.clone());
        let required = change.required.unwrap_or(current.required);
        let display_order = change.display_order.unwrap_or(current.display_order);
        let unchanged = label == current.label
            && options == current.options
            && required == current.required
            && display_order == current.display_order;
        if unchanged {
            return Ok(vec![]);
        }
        Ok(vec![CustomFieldEvent::FieldChanged {
            key: key.to_owned(),
            label,
            required,
            options,
            display_order,
        }])
    }
}

impl Aggregate for CustomFields {
    type Event = CustomFieldEvent;
    type Command = CustomFieldCommand;
    type Error = CustomFieldError;

    fn evolve(mut self, event: &CustomFieldEvent) -> Self {
        match event {
            CustomFieldEvent::FieldDefined {
                key,
                label,
                kind,
                required,
                options,
                display_order,
            } => {
                self.removed.remove(key);
                self.fields.insert(
                    key.clone(),
                    FieldDefinition {
                        key: key.clone(),
                        label: label.clone(),
                        kind: *kind,
                        required: *required,
                        options: options.clone(),
                        display_order: *display_order,
                    },
                );
            }
            CustomFieldEvent::FieldChanged {
                key,
                label,
                required,
                options,
                display_order,
            } => {
                if let Some(field) = self.fields.get_mut(key) {
                    field.label.clone_from(label);
                    field.required = *required;
                    field.options.clone_from(options);
                    field.display_order = *display_order;
                }
            }
            CustomFieldEvent::FieldRemoved { key } => {
                if let Some(field) = self.fields.remove(key) {
                    self.removed.insert(key.clone(), field.kind);
                }
            }
        }
        self
    }

    fn decide(
        &self,
        command: CustomFieldCommand,
    ) -> Result<Vec<CustomFieldEvent>, CustomFieldError> {
        match command {
            CustomFieldCommand::Define(new) => self.define(new),
            CustomFieldCommand::Change { key, change } => self.change(&key, change),
            CustomFieldCommand::Remove { key } => {
                if self.fields.contains_key(&key) {
                    Ok(vec![CustomFieldEvent::FieldRemoved { key }])
                } else if self.removed.contains_key(&key) {
                    // Removing again is a retry.
                    Ok(vec![])
                } else {
                    Err(CustomFieldError::NotFound)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
