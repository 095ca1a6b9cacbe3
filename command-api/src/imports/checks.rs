//! A row checked without writing anything: the checks of `create_contact` and the custom field
//! definitions, the custom values converted to their fields' kinds, and the waves that keep rows
//! sharing an identifier in file order.

use std::collections::HashMap;

use domain::Aggregate;
use domain::contact::{Contact, ContactCommand, ContactError};
use domain::custom_fields::CustomFields;
use events::contact::Identity;
use events::custom_field::FieldKind;
use service::FieldError;
use uuid::Uuid;

use crate::contacts::{CreateContact, parse_new_contact};

/// A row checked without writing: its field errors, or its identifiers normalised as their
/// reservations name them.
#[derive(Debug, Clone, Default)]
pub struct Checked {
    pub errors: Vec<FieldError>,
    pub identities: Vec<(Identity, String)>,
}

/// Custom values as their fields' kinds want them: cells are text, so numbers, booleans and
/// multi-select lists (`;`-separated) are converted; a cell that does not convert stays text
/// for the definitions' check to name.
pub fn typed(mut input: CreateContact, definitions: &CustomFields) -> CreateContact {
    use serde_json::Value;
    for (key, value) in &mut input.custom_fields {
        let (Some(definition), Value::String(text)) = (definitions.fields.get(key), &*value) else {
            continue;
        };
        let converted = match definition.kind {
            FieldKind::Number => text.parse::<i64>().map(Value::from).ok().or_else(|| {
                text.parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map(Value::Number)
            }),
            FieldKind::Boolean => match text.to_lowercase().as_str() {
                "true" | "yes" | "1" => Some(Value::Bool(true)),
                "false" | "no" | "0" => Some(Value::Bool(false)),
                _ => None,
            },
            FieldKind::MultiSelect => Some(Value::Array(
                text.split(';')
                    .map(str::trim)
                    .filter(|o| !o.is_empty())
                    .map(|o| Value::String(o.to_owned()))
                    .collect(),
            )),
            FieldKind::Text | FieldKind::Date | FieldKind::Select => None,
        };
        if let Some(converted) = converted {
            *value = converted;
        }
    }
    input
}

/// The checks of [`create_contact`](crate::contacts::create_contact), with the same fields and messages, and the organisation's
/// custom field `definitions` (as every contact write checks them): for dry runs, for rejecting
/// a row before it is tried, and for ordering rows by the identifiers they share. `region` is the
/// organisation's default phone region. A row that passes still takes `create_contact`'s word.
pub fn check(
    input: &Result<CreateContact, FieldError>,
    region: Option<&str>,
    definitions: &CustomFields,
) -> Checked {
    let input = match input {
        Ok(input) => input,
        Err(error) => {
            return Checked {
                errors: vec![error.clone()],
                identities: Vec::new(),
            };
        }
    };
    let new = match parse_new_contact(Uuid::nil(), input.clone(), region, definitions) {
        Ok(new) => new,
        Err(errors) => {
            return Checked {
                errors,
                identities: Vec::new(),
            };
        }
    };
    match Contact::default().decide(ContactCommand::Create(new)) {
        Ok(decided) => Checked {
            errors: Vec::new(),
            identities: decided
                .iter()
                .fold(Contact::default(), Contact::evolve)
                .identities(),
        },
        Err(error) => {
            let field = match &error {
                ContactError::InvalidCustomFieldKey(key) => format!("custom_fields.{key}"),
                _ => "row".to_owned(),
            };
            Checked {
                errors: vec![FieldError::new(field, error.to_string())],
                identities: Vec::new(),
            }
        }
    }
}

/// For each row, the wave it runs in: 0 when it shares no identifier with an earlier row, else
/// one more than the latest earlier row it shares one with. Waves run one after another, so rows
/// that share an identifier take effect in file order.
pub fn waves(checked: &[Checked]) -> Vec<usize> {
    let mut latest: HashMap<(Identity, &str), usize> = HashMap::new();
    checked
        .iter()
        .map(|row| {
            let wave = row
                .identities
                .iter()
                .filter_map(|(identity, value)| latest.get(&(*identity, value.as_str())))
                .map(|wave| wave + 1)
                .max()
                .unwrap_or(0);
            for (identity, value) in &row.identities {
                latest.insert((*identity, value.as_str()), wave);
            }
            wave
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(identities: &[(Identity, &str)]) -> Checked {
        Checked {
            errors: Vec::new(),
            identities: identities
                .iter()
                .map(|(i, v)| (*i, (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn rows_sharing_an_identifier_run_after_the_earlier_one() {
        use Identity::{Email, Whatsapp};
        let rows = [
            checked(&[(Email, "a")]),
            checked(&[(Email, "b")]),
            checked(&[(Email, "a"), (Whatsapp, "+1")]),
            checked(&[(Whatsapp, "+1")]),
            checked(&[]),
            checked(&[(Email, "b")]),
        ];
        assert_eq!(waves(&rows), [0, 0, 1, 2, 0, 1]);
    }

    #[test]
    fn checks_name_fields_as_create_contact_does() {
        let input = CreateContact {
            full_name: " ".into(),
            email: Some("nope".into()),
            whatsapp: Some("912345678".into()),
            tags: vec!["ok".into(), "x".repeat(51)],
            ..CreateContact::default()
        };
        let none = CustomFields::default();
        let fields: Vec<String> = check(&Ok(input), Some("PT"), &none)
            .errors
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["full_name", "email", "tags"]);
        let valid = CreateContact {
            full_name: "Ada".into(),
            email: Some(" Ada@Example.com".into()),
            whatsapp: Some("912345678".into()),
            ..CreateContact::default()
        };
        let checked = check(&Ok(valid), Some("PT"), &none);
        assert!(checked.errors.is_empty(), "{:?}", checked.errors);
        assert_eq!(
            checked.identities,
            [
                (Identity::Email, "ada@example.com".to_owned()),
                (Identity::Whatsapp, "+351912345678".to_owned())
            ]
        );
    }
}
