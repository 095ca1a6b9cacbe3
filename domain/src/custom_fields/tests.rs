//! Given (history) / when (command) / then (events or error), and the value checks.

use super::*;

use CustomFieldValue as V;

fn field(key: &str, kind: FieldKind) -> NewField {
    NewField {
        key: key.into(),
        label: format!("  {key} label "),
        kind,
        required: false,
        options: if kind.has_options() {
            vec!["gold".into(), " silver ".into()]
        } else {
            vec![]
        },
        display_order: None,
    }
}

fn define(new: NewField) -> CustomFieldCommand {
    CustomFieldCommand::Define(new)
}

fn change(key: &str, change: FieldChange) -> CustomFieldCommand {
    CustomFieldCommand::Change {
        key: key.into(),
        change,
    }
}

fn remove(key: &str) -> CustomFieldCommand {
    CustomFieldCommand::Remove { key: key.into() }
}

fn given(history: &[CustomFieldEvent]) -> CustomFields {
    CustomFields::fold(history)
}

/// `history` followed by what `command` decides in its state.
fn then(history: Vec<CustomFieldEvent>, command: CustomFieldCommand) -> Vec<CustomFieldEvent> {
    let events = given(&history).decide(command).expect("decides");
    [history, events].concat()
}

/// One field of every kind; `plan` (select) and `since` (date) required.
fn every_kind() -> CustomFields {
    let mut history = vec![];
    for (key, kind) in [
        ("note", FieldKind::Text),
        ("visits", FieldKind::Number),
        ("since", FieldKind::Date),
        ("vip", FieldKind::Boolean),
        ("plan", FieldKind::Select),
        ("topics", FieldKind::MultiSelect),
    ] {
        let required = matches!(key, "plan" | "since");
        history = then(
            history,
            define(NewField {
                required,
                ..field(key, kind)
            }),
        );
    }
    given(&history)
}

fn values(pairs: &[(&str, V)]) -> BTreeMap<String, V> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn strings(items: &[&str]) -> V {
    V::from(items.to_vec())
}

#[test]
fn defining_trims_and_orders_after_the_last_field() {
    let history = then(vec![], define(field("plan", FieldKind::Select)));
    assert_eq!(
        history,
        [CustomFieldEvent::FieldDefined {
            key: "plan".into(),
            label: "plan label".into(),
            kind: FieldKind::Select,
            required: false,
            options: vec!["gold".into(), "silver".into()],
            display_order: 0,
        }]
    );
    let history = then(
        history,
        define(NewField {
            display_order: Some(10),
            ..field("since", FieldKind::Date)
        }),
    );
    let history = then(history, define(field("vip", FieldKind::Boolean)));
    let fields = given(&history);
    assert_eq!(fields.fields["vip"].display_order, 11);
    let order: Vec<&str> = fields.ordered().iter().map(|f| f.key.as_str()).collect();
    assert_eq!(order, ["plan", "since", "vip"]);
    // The same definition again is a retry; another one under the key is refused.
    assert_eq!(
        fields.decide(define(field("plan", FieldKind::Select))),
        Ok(vec![])
    );
    assert_eq!(
        fields.decide(define(field("plan", FieldKind::Text))),
        Err(CustomFieldError::AlreadyDefined)
    );
}

#[test]
fn keys_labels_and_options_are_checked() {
    let empty = CustomFields::default();
    for good in [
        "a",
        "plan",
        "x_1",
        &format!("a{}", "b".repeat(MAX_KEY_LEN - 1)),
    ] {
        assert_eq!(valid_key(good), Ok(()), "{good:?}");
    }
    for bad in [
        "",
        "1plan",
        "_plan",
        "Plan",
        "plan-b",
        "plan b",
        " plan",
        "plän",
        &format!("a{}", "b".repeat(MAX_KEY_LEN)),
    ] {
        assert_eq!(
            empty.decide(define(field(bad, FieldKind::Text))),
            Err(CustomFieldError::InvalidKey),
            "{bad:?}"
        );
    }
    for bad in ["", "  ", "a\u{7}", &"x".repeat(MAX_LABEL_LEN + 1)] {
        let new = NewField {
            label: bad.into(),
            ..field("plan", FieldKind::Text)
        };
        assert_eq!(
            empty.decide(define(new)),
            Err(CustomFieldError::InvalidLabel)
        );
    }
    let options = |options: Vec<String>, kind| NewField {
        options,
        ..field("plan", kind)
    };
    assert_eq!(
        empty.decide(define(options(vec![], FieldKind::MultiSelect))),
        Err(CustomFieldError::OptionsRequired(FieldKind::MultiSelect))
    );
    assert_eq!(
        empty.decide(define(options(vec!["a".into()], FieldKind::Number))),
        Err(CustomFieldError::OptionsForbidden(FieldKind::Number))
    );
    assert_eq!(
        empty.decide(define(options(
            vec!["Gold".into(), " Gold".into()],
            FieldKind::Select
        ))),
        Err(CustomFieldError::DuplicateOption("Gold".into()))
    );
    let hundred: Vec<String> = (0..MAX_OPTIONS).map(|n| format!("o{n}")).collect();
    assert!(
        empty
            .decide(define(options(hundred.clone(), FieldKind::Select)))
            .is_ok()
    );
    for bad in [
        [hundred, vec!["one more".into()]].concat(),
        vec!["  ".into()],
        vec!["x".repeat(MAX_OPTION_LEN + 1)],
    ] {
        assert_eq!(
            empty.decide(define(options(bad, FieldKind::Select))),
            Err(CustomFieldError::InvalidOptions)
        );
    }
    assert_eq!(CustomFieldError::InvalidKey.field(), "key");
    assert_eq!(CustomFieldError::InvalidLabel.field(), "label");
    assert_eq!(CustomFieldError::InvalidOptions.field(), "options");
    assert_eq!(
        CustomFieldError::KindUnchangeable(FieldKind::Text).field(),
        "kind"
    );
}

#[test]
fn an_organisation_has_at_most_so_many_fields() {
    let mut fields = CustomFields::default();
    for n in 0..MAX_FIELDS {
        let events = fields
            .decide(define(field(&format!("f{n}"), FieldKind::Text)))
            .expect("decides");
        fields = events.iter().fold(fields, CustomFields::evolve);
    }
    assert_eq!(
        fields.decide(define(field("one_more", FieldKind::Text))),
        Err(CustomFieldError::TooManyFields)
    );
    let fields = fields.evolve(&CustomFieldEvent::FieldRemoved { key: "f0".into() });
    assert!(
        fields
            .decide(define(field("one_more", FieldKind::Text)))
            .is_ok()
    );
}

#[test]
fn changes_keep_the_kind_and_skip_what_is_unchanged() {
    let history = then(vec![], define(field("plan", FieldKind::Select)));
    let history = then(
        history,
        change(
            "plan",
            FieldChange {
                label: Some(" Plan ".into()),
                kind: Some(FieldKind::Select),
                required: Some(true),
                options: Some(vec!["gold".into(), "platinum".into()]),
                display_order: Some(5),
            },
        ),
    );
    assert_eq!(
        history[1..],
        [CustomFieldEvent::FieldChanged {
            key: "plan".into(),
            label: "Plan".into(),
            required: true,
            options: vec!["gold".into(), "platinum".into()],
            display_order: 5,
        }]
    );
    let fields = given(&history);
    assert_eq!(fields.fields["plan"].kind, FieldKind::Select);
    assert_eq!(
        fields.decide(change(
            "plan",
            FieldChange {
                label: Some("Plan".into()),
                ..FieldChange::default()
            }
        )),
        Ok(vec![])
    );
    assert_eq!(
        fields.decide(change(
            "plan",
            FieldChange {
                kind: Some(FieldKind::Text),
                ..FieldChange::default()
            }
        )),
        Err(CustomFieldError::KindUnchangeable(FieldKind::Select))
    );
    assert_eq!(
        fields.decide(change(
            "plan",
            FieldChange {
                options: Some(vec![]),
                ..FieldChange::default()
            }
        )),
        Err(CustomFieldError::OptionsRequired(FieldKind::Select))
    );
    assert_eq!(
        fields.decide(change("nope", FieldChange::default())),
        Err(CustomFieldError::NotFound)
    );
}

#[test]
fn a_removed_key_comes_back_only_with_its_kind() {
    let history = then(vec![], define(field("plan", FieldKind::Select)));
    let history = then(history, remove("plan"));
    assert_eq!(
        history.last(),
        Some(&CustomFieldEvent::FieldRemoved { key: "plan".into() })
    );
    let fields = given(&history);
    assert!(fields.fields.is_empty());
    assert_eq!(fields.decide(remove("plan")), Ok(vec![]), "a retry");
    assert_eq!(
        fields.decide(remove("never")),
        Err(CustomFieldError::NotFound)
    );
    assert_eq!(
        fields.decide(change("plan", FieldChange::default())),
        Err(CustomFieldError::NotFound)
    );
    assert_eq!(
        fields.decide(define(field("plan", FieldKind::Text))),
        Err(CustomFieldError::KeyUsedBefore(FieldKind::Select))
    );
    let history = then(history, define(field("plan", FieldKind::Select)));
    let fields = given(&history);
    assert!(fields.fields.contains_key("plan") && fields.removed.is_empty());
}

#[test]
fn values_of_every_kind_are_checked() {
    let fields = every_kind();
    let good = values(&[
        ("note", V::from("anything")),
        ("visits", V::from(3.5)),
        ("since", V::from("2024-02-29")),
        ("vip", V::from(true)),
        ("plan", V::from("silver")),
        ("topics", strings(&["gold", "silver"])),
    ]);
    assert_eq!(fields.validate(&good, true), Ok(()));
    assert_eq!(fields.validate(&good, false), Ok(()));

    let bad = values(&[
        ("note", V::from(1)),
        ("visits", V::from("3")),
        ("since", V::from("2023-02-29")),
        ("vip", V::from("yes")),
        ("plan", V::from("bronze")),
        ("topics", strings(&["gold", "gold"])),
        ("unknown", V::from(1)),
    ]);
    let errors = fields.validate(&bad, false).expect_err("invalid");
    let paths: Vec<&str> = errors.iter().map(|(path, _)| path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "custom_fields.note",
            "custom_fields.plan",
            "custom_fields.since",
            "custom_fields.topics",
            "custom_fields.unknown",
            "custom_fields.vip",
            "custom_fields.visits",
        ]
    );
    let message = |key: &str| {
        errors
            .iter()
            .find(|(path, _)| path == &format!("custom_fields.{key}"))
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    };
    assert_eq!(message("plan"), "must be one of: gold, silver");
    assert_eq!(message("visits"), "must be a number");
    assert_eq!(
        message("unknown"),
        "is not a custom field of this organisation"
    );

    for (key, value) in [
        ("note", V::from("x".repeat(MAX_TEXT_LEN + 1))),
        ("since", V::from("2024-2-1")),
        ("since", V::from("01/02/2024")),
        ("since", V::from(" 2024-02-01")),
        ("since", V::from(20240201)),
        ("vip", V::from(0)),
        ("plan", strings(&["gold"])),
        ("topics", V::from("gold")),
        ("topics", strings(&["bronze"])),
        ("topics", V::from(vec![V::from(1)])),
    ] {
        let one = values(&[(key, value.clone())]);
        assert!(fields.validate(&one, false).is_err(), "{key} = {value}");
    }
    let long_enough = values(&[("note", V::from("é".repeat(MAX_TEXT_LEN)))]);
    assert_eq!(fields.validate(&long_enough, false), Ok(()));
}

#[test]
fn required_fields_are_present_on_create_and_stay_on_update() {
    let fields = every_kind();
    let errors = fields
        .validate(&values(&[("vip", V::from(false))]), true)
        .expect_err("required fields missing");
    assert_eq!(
        errors,
        [
            ("custom_fields.plan".to_string(), "is required".to_string()),
            ("custom_fields.since".to_string(), "is required".to_string()),
        ]
    );
    // An update need not repeat them, but cannot remove them.
    assert_eq!(
        fields.validate(&values(&[("vip", V::from(false))]), false),
        Ok(())
    );
    let errors = fields
        .validate(&values(&[("plan", V::Null), ("note", V::Null)]), false)
        .expect_err("a required field removed");
    assert_eq!(
        errors,
        [(
            "custom_fields.plan".to_string(),
            "is required and cannot be removed".to_string()
        )],
        "null removes the optional note"
    );
    let errors = fields
        .validate(
            &values(&[
                ("plan", V::Null),
                ("since", V::from("2024-01-01")),
                ("topics", V::Null),
            ]),
            true,
        )
        .expect_err("null is no value on create");
    assert_eq!(
        errors,
        [("custom_fields.plan".to_string(), "is required".to_string())]
    );
}

#[test]
fn required_text_and_multi_select_need_something_in_them() {
    let fields = given(&[
        CustomFieldEvent::FieldDefined {
            key: "motto".into(),
            label: "Motto".into(),
            kind: FieldKind::Text,
            required: true,
            options: vec![],
            display_order: 0,
        },
        CustomFieldEvent::FieldDefined {
            key: "topics".into(),
            label: "Topics".into(),
            kind: FieldKind::MultiSelect,
            required: true,
            options: vec!["a".into(), "b".into()],
            display_order: 1,
        },
    ]);
    let errors = fields
        .validate(
            &values(&[("motto", V::from("  ")), ("topics", strings(&[]))]),
            true,
        )
        .expect_err("blank");
    assert_eq!(
        errors,
        [
            (
                "custom_fields.motto".to_string(),
                "is required and cannot be blank".to_string()
            ),
            (
                "custom_fields.topics".to_string(),
                "is required: choose at least one option".to_string()
            ),
        ]
    );
    let optional = given(&[CustomFieldEvent::FieldDefined {
        key: "topics".into(),
        label: "Topics".into(),
        kind: FieldKind::MultiSelect,
        required: false,
        options: vec!["a".into()],
        display_order: 0,
    }]);
    assert_eq!(
        optional.validate(&values(&[("topics", strings(&[]))]), true),
        Ok(())
    );
}

#[test]
fn a_removed_definition_takes_its_key_out_of_writes() {
    let history = then(vec![], define(field("plan", FieldKind::Select)));
    let history = then(history, remove("plan"));
    let errors = given(&history)
        .validate(&values(&[("plan", V::from("gold"))]), false)
        .expect_err("removed");
    assert_eq!(errors[0].0, "custom_fields.plan");
}
