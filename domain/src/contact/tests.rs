//! Given (history) / when (command) / then (events or error).

use chrono::TimeZone;

use super::*;

const ADA: Uuid = Uuid::from_u128(1);

fn email(raw: &str) -> Email {
    Email::parse(raw).expect("a valid email")
}

fn phone(raw: &str) -> PhoneE164 {
    PhoneE164::parse(raw, None).expect("a valid phone")
}

fn chat(raw: &str) -> TelegramChatId {
    TelegramChatId::parse(raw).expect("a valid chat id")
}

fn instagram(raw: &str) -> InstagramId {
    InstagramId::parse(raw).expect("a valid instagram id")
}

fn tag(raw: &str) -> Tag {
    Tag::parse(raw).expect("a valid tag")
}

fn tags(raw: &[&str]) -> Vec<Tag> {
    raw.iter().map(|t| tag(t)).collect()
}

fn at(day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, day, 12, 0, 0)
        .single()
        .expect("a valid time")
}

fn new_contact() -> NewContact {
    NewContact {
        contact_id: ADA,
        full_name: "  Ada Lovelace ".into(),
        email: Some(email("ada@example.com")),
        whatsapp: Some(phone("+351912345678")),
        telegram_chat_id: Some(chat("42")),
        instagram_scoped_id: Some(instagram("1784")),
        instagram_user_id: Some(instagram("9001")),
        tags: tags(&["vip", "lisbon", "vip"]),
        notes: Some("  prefers mornings\n ".into()),
        custom_fields: BTreeMap::from([("birthday".to_string(), "1815-12-10".into())]),
    }
}

fn created() -> Vec<ContactEvent> {
    Contact::default()
        .decide(ContactCommand::Create(new_contact()))
        .expect("decides")
}

fn given(history: &[ContactEvent]) -> Contact {
    Contact::fold(history)
}

/// `history` followed by what `command` decides in its state.
fn then(history: Vec<ContactEvent>, command: ContactCommand) -> Vec<ContactEvent> {
    let events = given(&history).decide(command).expect("decides");
    [history, events].concat()
}

fn update(update: ContactUpdate) -> ContactCommand {
    ContactCommand::Update(update)
}

#[test]
fn creating_normalises_and_wraps_every_personal_value() {
    let events = created();
    assert_eq!(
        events,
        vec![ContactEvent::ContactCreated {
            contact_id: ADA,
            full_name: Personal::from("Ada Lovelace".to_string()),
            email: Some(Personal::from(email("ada@example.com"))),
            whatsapp: Some(Personal::from(phone("+351912345678"))),
            telegram_chat_id: Some(Personal::from(chat("42"))),
            instagram_scoped_id: Some(Personal::from(instagram("1784"))),
            instagram_user_id: Some(Personal::from(instagram("9001"))),
            tags: tags(&["lisbon", "vip"]),
            notes: Some(Personal::from("prefers mornings".to_string())),
            custom_fields: BTreeMap::from([(
                "birthday".to_string(),
                Personal::from(CustomFieldValue::from("1815-12-10")),
            )]),
        }]
    );
    let contact = given(&events);
    assert_eq!(contact.id, Some(ADA));
    assert_eq!(contact.full_name.as_deref(), Some("Ada Lovelace"));
    assert_eq!(contact.email, Some(email("ada@example.com")));
    assert_eq!(contact.notes.as_deref(), Some("prefers mornings"));
    assert_eq!(contact.status, ContactStatus::Active);
    assert_eq!(contact.flags, ChannelFlags::default());
    assert_eq!(contact.consent, None);
    assert_eq!(contact.tags, tags(&["vip", "lisbon"]).into_iter().collect());
    assert_eq!(contact.custom_fields["birthday"], "1815-12-10");
    assert_eq!(
        (contact.last_inbound_at, contact.last_outbound_at),
        (None, None)
    );
    assert!(!contact.deleted && !contact.erased);
    assert!(contact.can_be_messaged());
    assert_eq!(
        contact.identities(),
        vec![
            (Identity::Email, "ada@example.com".to_string()),
            (Identity::Whatsapp, "+351912345678".to_string()),
            (Identity::Telegram, "42".to_string()),
            (Identity::InstagramScoped, "1784".to_string()),
            (Identity::InstagramUser, "9001".to_string()),
        ]
    );
    assert_eq!(
        contact.decide(ContactCommand::Create(new_contact())),
        Err(ContactError::AlreadyExists)
    );
}

#[test]
fn a_contact_needs_only_a_valid_full_name() {
    let minimal = NewContact {
        contact_id: ADA,
        full_name: "Ada".into(),
        notes: Some("   ".into()),
        ..NewContact::default()
    };
    let contact = given(
        &Contact::default()
            .decide(ContactCommand::Create(minimal))
            .expect("decides"),
    );
    assert_eq!(contact.identities(), vec![]);
    assert_eq!(contact.notes, None, "blank notes are no notes");

    for bad in ["", "   ", "Ada\u{7}", &"x".repeat(MAX_FULL_NAME_LEN + 1)] {
        let command = ContactCommand::Create(NewContact {
            full_name: bad.to_string(),
            ..new_contact()
        });
        assert_eq!(
            Contact::default().decide(command),
            Err(ContactError::InvalidFullName),
            "{bad:?}"
        );
    }
    let bad_key = ContactCommand::Create(NewContact {
        custom_fields: BTreeMap::from([(" x".to_string(), CustomFieldValue::Null)]),
        ..new_contact()
    });
    assert_eq!(
        Contact::default().decide(bad_key),
        Err(ContactError::InvalidCustomFieldKey(" x".into()))
    );
    let bad_notes = ContactCommand::Create(NewContact {
        notes: Some("x".repeat(MAX_NOTES_LEN + 1)),
        ..new_contact()
    });
    assert_eq!(
        Contact::default().decide(bad_notes),
        Err(ContactError::InvalidNotes)
    );
    assert_eq!(
        Contact::default().decide(ContactCommand::Delete),
        Err(ContactError::NotFound)
    );
}

#[test]
fn every_field_updates_and_clears() {
    let history = then(
        created(),
        update(ContactUpdate {
            full_name: Some("Ada King".into()),
            email: Some(Some(email("countess@example.com"))),
            whatsapp: Some(None),
            telegram_chat_id: Some(Some(chat("-100200"))),
            instagram_scoped_id: Some(None),
            instagram_user_id: Some(Some(instagram("9002"))),
            notes: Some(Some("line one\nline two".into())),
            set_custom_fields: BTreeMap::from([
                ("birthday".to_string(), "1815-12-10".into()),
                ("visits".to_string(), 3.into()),
            ]),
            remove_custom_fields: BTreeSet::new(),
        }),
    );
    assert_eq!(
        history[1..],
        [
            ContactEvent::ContactRenamed {
                full_name: Personal::from("Ada King".to_string())
            },
            ContactEvent::EmailChanged {
                email: Some(Personal::from(email("countess@example.com")))
            },
            ContactEvent::WhatsappChanged { whatsapp: None },
            ContactEvent::TelegramChatIdChanged {
                telegram_chat_id: Some(Personal::from(chat("-100200")))
            },
            ContactEvent::InstagramScopedIdChanged {
                instagram_scoped_id: None
            },
            ContactEvent::InstagramUserIdChanged {
                instagram_user_id: Some(Personal::from(instagram("9002")))
            },
            ContactEvent::NotesChanged {
                notes: Some(Personal::from("line one\nline two".to_string()))
            },
            // The unchanged birthday is left out.
            ContactEvent::CustomFieldsChanged {
                set: BTreeMap::from([(
                    "visits".to_string(),
                    Personal::from(CustomFieldValue::from(3))
                )]),
                removed: vec![],
            },
        ]
    );
    let contact = given(&history);
    assert_eq!(contact.full_name.as_deref(), Some("Ada King"));
    assert_eq!(contact.whatsapp, None);
    assert_eq!(contact.instagram_scoped_id, None);
    assert_eq!(
        contact.identities(),
        vec![
            (Identity::Email, "countess@example.com".to_string()),
            (Identity::Telegram, "-100200".to_string()),
            (Identity::InstagramUser, "9002".to_string()),
        ]
    );
    assert_eq!(contact.custom_fields["visits"], 3);

    let history = then(
        history,
        update(ContactUpdate {
            notes: Some(Some("  ".into())),
            remove_custom_fields: BTreeSet::from(["birthday".to_string(), "unknown".to_string()]),
            ..ContactUpdate::default()
        }),
    );
    let contact = given(&history);
    assert_eq!(contact.notes, None);
    assert_eq!(contact.custom_fields.keys().collect::<Vec<_>>(), ["visits"]);
    assert_eq!(
        history.last(),
        Some(&ContactEvent::CustomFieldsChanged {
            set: BTreeMap::new(),
            removed: vec!["birthday".into()],
        }),
        "only keys that were present are removed"
    );
}

#[test]
fn updates_that_change_nothing_are_no_events() {
    let contact = given(&created());
    let same = ContactUpdate {
        full_name: Some(" Ada Lovelace".into()),
        email: Some(Some(email("ADA@example.com"))),
        whatsapp: Some(Some(phone("+351 912 345 678"))),
        telegram_chat_id: Some(Some(chat("42"))),
        instagram_scoped_id: Some(Some(instagram("1784"))),
        instagram_user_id: Some(Some(instagram("9001"))),
        notes: Some(Some("prefers mornings ".into())),
        set_custom_fields: BTreeMap::from([("birthday".to_string(), "1815-12-10".into())]),
        remove_custom_fields: BTreeSet::from(["missing".to_string()]),
    };
    assert_eq!(contact.decide(update(same)), Ok(vec![]));
    assert_eq!(contact.decide(update(ContactUpdate::default())), Ok(vec![]));
    let flags = ContactCommand::SetChannelFlags {
        whatsapp_blocked: Some(false),
        instagram_blocked: None,
        instagram_opt_in: Some(false),
    };
    assert_eq!(contact.decide(flags), Ok(vec![]));
    assert_eq!(
        contact.decide(ContactCommand::Tag {
            tags: tags(&["VIP"])
        }),
        Ok(vec![])
    );
    assert_eq!(
        contact.decide(ContactCommand::Untag {
            tags: tags(&["unknown"])
        }),
        Ok(vec![])
    );
    assert_eq!(
        contact.decide(ContactCommand::ChangeStatus {
            to: ContactStatus::Active,
            reason: Some("again".into()),
        }),
        Ok(vec![])
    );
    assert_eq!(contact.decide(ContactCommand::Restore), Ok(vec![]));
}

#[test]
fn an_invalid_update_changes_nothing() {
    let contact = given(&created());
    let command = update(ContactUpdate {
        email: Some(None),
        full_name: Some("\u{0}".into()),
        ..ContactUpdate::default()
    });
    assert_eq!(contact.decide(command), Err(ContactError::InvalidFullName));
    let both = update(ContactUpdate {
        email: Some(None),
        set_custom_fields: BTreeMap::from([("visits".to_string(), 1.into())]),
        remove_custom_fields: BTreeSet::from(["visits".to_string()]),
        ..ContactUpdate::default()
    });
    assert_eq!(
        contact.decide(both),
        Err(ContactError::CustomFieldSetAndRemoved("visits".into()))
    );
    let control = update(ContactUpdate {
        notes: Some(Some("a\u{1b}b".into())),
        ..ContactUpdate::default()
    });
    assert_eq!(contact.decide(control), Err(ContactError::InvalidNotes));
}

#[test]
fn status_changes_keep_their_history_and_only_active_contacts_are_messaged() {
    let change = |to, reason: Option<&str>| ContactCommand::ChangeStatus {
        to,
        reason: reason.map(str::to_owned),
    };
    let history = then(
        created(),
        change(ContactStatus::Unsubscribed, Some(" replied STOP ")),
    );
    let history = then(history, change(ContactStatus::Active, Some("  ")));
    let history = then(history, change(ContactStatus::Bounced, None));
    let contact = given(&history);
    assert_eq!(contact.status, ContactStatus::Bounced);
    assert!(!contact.can_be_messaged());
    assert_eq!(
        contact.status_history,
        vec![
            StatusChange {
                from: ContactStatus::Active,
                to: ContactStatus::Unsubscribed,
                reason: Some("replied STOP".into()),
            },
            StatusChange {
                from: ContactStatus::Unsubscribed,
                to: ContactStatus::Active,
                reason: None,
            },
            StatusChange {
                from: ContactStatus::Active,
                to: ContactStatus::Bounced,
                reason: None,
            },
        ]
    );
    assert_eq!(
        contact.decide(change(ContactStatus::Bounced, Some("again"))),
        Ok(vec![]),
        "the same status is no event"
    );
    let long = "x".repeat(MAX_REASON_LEN + 1);
    assert_eq!(
        contact.decide(change(ContactStatus::Blocked, Some(&long))),
        Err(ContactError::InvalidReason)
    );
}

#[test]
fn channel_flags_change_one_at_a_time() {
    let history = then(
        created(),
        ContactCommand::SetChannelFlags {
            whatsapp_blocked: Some(true),
            instagram_blocked: None,
            instagram_opt_in: None,
        },
    );
    let history = then(
        history,
        ContactCommand::SetChannelFlags {
            whatsapp_blocked: None,
            instagram_blocked: None,
            instagram_opt_in: Some(true),
        },
    );
    assert_eq!(
        history.last(),
        Some(&ContactEvent::ChannelFlagsChanged {
            whatsapp_blocked: true,
            instagram_blocked: false,
            instagram_opt_in: true,
        })
    );
    let contact = given(&history);
    assert_eq!(
        contact.flags,
        ChannelFlags {
            whatsapp_blocked: true,
            instagram_blocked: false,
            instagram_opt_in: true,
        }
    );
    // Channel flags are checked per channel; the contact as a whole can still be messaged.
    assert!(contact.can_be_messaged());
}

#[test]
fn consent_is_recorded_with_its_source_and_the_newest_stands() {
    let record = |opted_in, source: &str, day| ContactCommand::RecordConsent {
        opted_in,
        source: source.into(),
        at: at(day),
    };
    let history = then(created(), record(true, " web form ", 10));
    assert_eq!(
        history.last(),
        Some(&ContactEvent::ConsentRecorded {
            opted_in: true,
            source: "web form".into(),
            at: at(10),
        })
    );
    let contact = given(&history);
    assert_eq!(
        contact.decide(record(true, "web form", 10)),
        Ok(vec![]),
        "a repeated record is no event"
    );
    assert_eq!(
        contact.decide(record(true, " ", 11)),
        Err(ContactError::InvalidConsentSource)
    );

    let history = then(history, record(false, "inbound STOP", 12));
    // An older record (say, from an import) is kept in the log but does not override.
    let history = then(history, record(true, "import", 1));
    assert_eq!(
        given(&history).consent,
        Some(Consent {
            opted_in: false,
            source: "inbound STOP".into(),
            at: at(12),
        })
    );
}

#[test]
fn tags_are_added_and_removed_as_a_set() {
    let history = then(
        created(),
        ContactCommand::Tag {
            tags: tags(&["new", "VIP", "another", "new"]),
        },
    );
    assert_eq!(
        history.last(),
        Some(&ContactEvent::Tagged {
            tags: tags(&["another", "new"])
        })
    );
    let history = then(
        history,
        ContactCommand::Untag {
            tags: tags(&["vip", "missing", "new"]),
        },
    );
    assert_eq!(
        history.last(),
        Some(&ContactEvent::Untagged {
            tags: tags(&["new", "vip"])
        })
    );
    assert_eq!(
        given(&history).tags,
        tags(&["another", "lisbon"]).into_iter().collect()
    );
}

#[test]
fn a_deleted_contact_only_comes_back_or_goes_for_good() {
    let history = then(created(), ContactCommand::Delete);
    assert_eq!(history.last(), Some(&ContactEvent::ContactDeleted {}));
    let contact = given(&history);
    assert!(contact.deleted);
    assert!(!contact.can_be_messaged());
    assert_eq!(contact.decide(ContactCommand::Delete), Ok(vec![]));
    let refused = [
        update(ContactUpdate {
            full_name: Some("Ada King".into()),
            ..ContactUpdate::default()
        }),
        ContactCommand::ChangeStatus {
            to: ContactStatus::Blocked,
            reason: None,
        },
        ContactCommand::Tag { tags: tags(&["x"]) },
        ContactCommand::RecordConsent {
            opted_in: true,
            source: "form".into(),
            at: at(1),
        },
    ];
    for command in refused {
        assert_eq!(
            contact.decide(command.clone()),
            Err(ContactError::Deleted),
            "{command:?}"
        );
    }
    // Deletion is soft: the identities stay reserved until erasure.
    assert_eq!(contact.identities().len(), 5);

    let history = then(history, ContactCommand::Restore);
    assert_eq!(history.last(), Some(&ContactEvent::ContactRestored {}));
    let contact = given(&history);
    assert!(!contact.deleted);
    assert!(contact.can_be_messaged());
    assert_eq!(contact.full_name.as_deref(), Some("Ada Lovelace"));
}

fn assert_no_personal_data(contact: &Contact) {
    assert_eq!(contact.full_name, None);
    assert_eq!(contact.email, None);
    assert_eq!(contact.whatsapp, None);
    assert_eq!(contact.telegram_chat_id, None);
    assert_eq!(contact.instagram_scoped_id, None);
    assert_eq!(contact.instagram_user_id, None);
    assert_eq!(contact.notes, None);
    assert!(contact.custom_fields.is_empty());
    assert_eq!(contact.identities(), vec![]);
    assert!(contact.erased);
    assert!(!contact.can_be_messaged());
}

#[test]
fn erasing_clears_every_personal_field_and_refuses_everything_after() {
    let history = then(created(), ContactCommand::Delete);
    let history = then(history, ContactCommand::Erase);
    assert_eq!(history.last(), Some(&ContactEvent::ContactErased {}));
    let contact = given(&history);
    assert_no_personal_data(&contact);
    assert!(contact.erasure_recorded);
    assert_eq!(contact.decide(ContactCommand::Erase), Ok(vec![]));
    let refused = [
        ContactCommand::Restore,
        ContactCommand::Delete,
        update(ContactUpdate {
            full_name: Some("Ada".into()),
            ..ContactUpdate::default()
        }),
        ContactCommand::Untag {
            tags: tags(&["vip"]),
        },
        ContactCommand::SetChannelFlags {
            whatsapp_blocked: Some(true),
            instagram_blocked: None,
            instagram_opt_in: None,
        },
    ];
    for command in refused {
        assert_eq!(
            contact.decide(command.clone()),
            Err(ContactError::Erased),
            "{command:?}"
        );
    }
    assert_eq!(
        contact.decide(ContactCommand::Create(new_contact())),
        Err(ContactError::AlreadyExists)
    );
    // A contact that is not deleted can be erased too.
    assert_eq!(
        given(&created()).decide(ContactCommand::Erase),
        Ok(vec![ContactEvent::ContactErased {}])
    );
}

/// Every personal value of `event` as a replay after erasure reads it.
fn erased(event: ContactEvent) -> ContactEvent {
    fn gone<T>(value: Option<Personal<T>>) -> Option<Personal<T>> {
        value.map(|_| Personal::Erased)
    }
    use ContactEvent as E;
    match event {
        E::ContactCreated {
            contact_id,
            email,
            whatsapp,
            telegram_chat_id,
            instagram_scoped_id,
            instagram_user_id,
            tags,
            notes,
            custom_fields,
            ..
        } => E::ContactCreated {
            contact_id,
            full_name: Personal::Erased,
            email: gone(email),
            whatsapp: gone(whatsapp),
            telegram_chat_id: gone(telegram_chat_id),
            instagram_scoped_id: gone(instagram_scoped_id),
            instagram_user_id: gone(instagram_user_id),
            tags,
            notes: gone(notes),
            custom_fields: custom_fields
                .into_keys()
                .map(|key| (key, Personal::Erased))
                .collect(),
        },
        E::ContactRenamed { .. } => E::ContactRenamed {
            full_name: Personal::Erased,
        },
        E::EmailChanged { email } => E::EmailChanged { email: gone(email) },
        E::NotesChanged { notes } => E::NotesChanged { notes: gone(notes) },
        E::CustomFieldsChanged { set, removed } => E::CustomFieldsChanged {
            set: set.into_keys().map(|key| (key, Personal::Erased)).collect(),
            removed,
        },
        other => other,
    }
}

#[test]
fn a_replay_after_erasure_yields_no_personal_data() {
    let history = then(
        created(),
        update(ContactUpdate {
            full_name: Some("Ada King".into()),
            email: Some(Some(email("countess@example.com"))),
            notes: Some(Some("new notes".into())),
            set_custom_fields: BTreeMap::from([("visits".to_string(), 3.into())]),
            ..ContactUpdate::default()
        }),
    );
    let history = then(history, ContactCommand::Tag { tags: tags(&["x"]) });
    let history = then(history, ContactCommand::Erase);
    let replayed: Vec<ContactEvent> = history.into_iter().map(erased).collect();
    let contact = given(&replayed);
    assert_no_personal_data(&contact);
    assert_eq!(contact.id, Some(ADA));
    assert_eq!(contact.tags.len(), 3, "tags are not personal data");
    assert_eq!(contact.decide(ContactCommand::Erase), Ok(vec![]));
}

#[test]
fn sealed_values_that_no_longer_open_mark_the_contact_erased() {
    // The key was destroyed but the erasure event is missing (the command failed between the
    // two): the contact refuses updates, and erasing it again records the event.
    let replayed: Vec<ContactEvent> = created().into_iter().map(erased).collect();
    let contact = given(&replayed);
    assert_no_personal_data(&contact);
    assert!(!contact.erasure_recorded);
    assert_eq!(
        contact.decide(ContactCommand::Tag { tags: tags(&["x"]) }),
        Err(ContactError::Erased)
    );
    assert_eq!(
        contact.decide(ContactCommand::Erase),
        Ok(vec![ContactEvent::ContactErased {}])
    );
}

#[test]
fn identity_conflicts_are_kept_until_resolved_once() {
    let contact = given(&created());
    let conflict_id = Uuid::from_u128(7);
    let holder = Uuid::from_u128(2);
    let record = ContactCommand::RecordConflict {
        conflict_id,
        identity: Identity::Email,
        value: "grace@example.com".into(),
        holder,
        source: "api".into(),
    };
    let recorded = contact.decide(record).expect("records");
    assert_eq!(
        recorded,
        vec![ContactEvent::IdentityConflictRecorded {
            conflict_id,
            identity: Identity::Email,
            value: Personal::from("grace@example.com".to_owned()),
            holder,
            source: "api".into(),
        }]
    );
    let mut history = created();
    history.extend(recorded);
    let contact = given(&history);
    let open = &contact.conflicts[&conflict_id];
    assert_eq!(open.value.as_deref(), Some("grace@example.com"));
    assert_eq!(open.resolution, None);

    let resolve = |resolution| ContactCommand::ResolveConflict {
        conflict_id,
        resolution,
    };
    let resolved = contact
        .decide(resolve(ConflictResolution::Kept))
        .expect("resolves");
    history.extend(resolved);
    let contact = given(&history);
    assert_eq!(
        contact.conflicts[&conflict_id].resolution,
        Some(ConflictResolution::Kept)
    );
    assert_eq!(
        contact.decide(resolve(ConflictResolution::Moved)),
        Ok(vec![]),
        "a resolved conflict stays resolved"
    );
    assert_eq!(
        contact.decide(ContactCommand::ResolveConflict {
            conflict_id: Uuid::from_u128(99),
            resolution: ConflictResolution::Kept,
        }),
        Err(ContactError::UnknownConflict)
    );
}

#[test]
fn merging_moves_missing_identifiers_and_unmerging_gives_back_what_is_left() {
    const GRACE: Uuid = Uuid::from_u128(2);
    const BOTH: Uuid = Uuid::from_u128(70);
    const B_ONLY: Uuid = Uuid::from_u128(71);
    const GONE: Uuid = Uuid::from_u128(72);
    // A has an email; B has another email, a phone and a tag A lacks. B is in three groups, A in
    // one of them.
    let b_groups = BTreeSet::from([BOTH, B_ONLY, GONE]);
    let a_groups = BTreeSet::from([BOTH]);
    let a = given(&created());
    let mut b_new = new_contact();
    b_new.contact_id = GRACE;
    b_new.email = Some(email("grace@example.com"));
    b_new.telegram_chat_id = None;
    b_new.instagram_scoped_id = None;
    b_new.instagram_user_id = None;
    b_new.whatsapp = Some(phone("+351911111111"));
    b_new.tags = tags(&["imported"]);
    let mut a_only_email = a.clone();
    a_only_email.whatsapp = None;
    let b_history = Contact::default()
        .decide(ContactCommand::Create(b_new))
        .expect("creates");
    let b = given(&b_history);

    assert_eq!(
        b.decide(ContactCommand::MergeInto {
            into: GRACE,
            target: Box::new(a_only_email.clone()),
            member_of: b_groups.clone(),
        }),
        Err(ContactError::MergeWithItself)
    );
    let merged = b
        .decide(ContactCommand::MergeInto {
            into: ADA,
            target: Box::new(a_only_email.clone()),
            member_of: b_groups.clone(),
        })
        .expect("merges");
    let ContactEvent::ContactMerged { moved, .. } = &merged[0] else {
        panic!("a merge event: {merged:?}");
    };
    let moved = MovedClear::opened(moved);
    // A keeps its own email; B's phone (A had none) and tag move.
    assert_eq!(
        moved.identities,
        BTreeMap::from([(Identity::Whatsapp, "+351911111111".to_owned())])
    );
    assert!(moved.tags.contains(&tag("imported")));
    assert_eq!(moved.groups, b_groups, "B leaves every group");

    let mut b_history = b_history;
    b_history.extend(merged);
    let b = given(&b_history);
    assert_eq!(b.merged_into, Some(ADA));
    assert_eq!(b.groups_left, b_groups);
    assert!(b.whatsapp.is_none(), "the phone left B");
    assert_eq!(
        b.email,
        Some(email("grace@example.com")),
        "B keeps what A had"
    );
    assert_eq!(
        b.decide(ContactCommand::ChangeStatus {
            to: ContactStatus::Blocked,
            reason: None
        }),
        Err(ContactError::Merged)
    );

    let absorbed = a_only_email
        .decide(ContactCommand::Absorb {
            from: GRACE,
            moved: moved.clone(),
            member_of: a_groups.clone(),
        })
        .expect("absorbs");
    let ContactEvent::ContactAbsorbed { moved: taken, .. } = &absorbed[0] else {
        panic!("an absorb event: {absorbed:?}");
    };
    assert_eq!(
        MovedClear::opened(taken).groups,
        BTreeSet::from([B_ONLY, GONE]),
        "A joins the groups it was not in"
    );
    let a = absorbed.iter().fold(a_only_email, Contact::evolve);
    assert_eq!(a.whatsapp, Some(phone("+351911111111")));
    assert!(a.tags.contains(&tag("imported")));

    // Since the merge, someone took A out of GONE's group.
    let split = a
        .decide(ContactCommand::Split {
            from: GRACE,
            member_of: BTreeSet::from([BOTH, B_ONLY]),
        })
        .expect("splits");
    let ContactEvent::ContactSplit { moved: back, .. } = &split[0] else {
        panic!("a split event: {split:?}");
    };
    let back = MovedClear::opened(back);
    assert_eq!(
        back,
        MovedClear {
            groups: BTreeSet::from([B_ONLY]),
            ..moved.clone()
        },
        "A gives back everything it still holds, and leaves only the groups it joined"
    );
    let a = split.iter().fold(a, Contact::evolve);
    assert!(a.whatsapp.is_none());
    assert!(!a.tags.contains(&tag("imported")));
    // GONE was deleted since the merge.
    let unmerged = b
        .decide(ContactCommand::Unmerge {
            back,
            existing: BTreeSet::from([BOTH, B_ONLY]),
        })
        .expect("unmerges");
    let ContactEvent::ContactUnmerged {
        moved: returned, ..
    } = &unmerged[0]
    else {
        panic!("an unmerge event: {unmerged:?}");
    };
    assert_eq!(
        MovedClear::opened(returned).groups,
        BTreeSet::from([BOTH, B_ONLY]),
        "B rejoins every group it left that still exists"
    );
    let b = unmerged.iter().fold(b, Contact::evolve);
    assert_eq!(b.merged_into, None);
    assert!(b.groups_left.is_empty());
    assert_eq!(b.whatsapp, Some(phone("+351911111111")));
    assert_eq!(
        a.decide(ContactCommand::Split {
            from: GRACE,
            member_of: BTreeSet::new(),
        }),
        Err(ContactError::NotMerged)
    );
}
