//! Given (history) / when (command) / then (events or error).

use super::*;

const VIP: Uuid = Uuid::from_u128(1);
const ADA: Uuid = Uuid::from_u128(10);
const BOB: Uuid = Uuid::from_u128(11);
const EVE: Uuid = Uuid::from_u128(12);

fn new_group() -> NewGroup {
    NewGroup {
        group_id: VIP,
        name: "  VIP clients ".into(),
        description: Some(" Our best\ncustomers ".into()),
        colour: Some("#1E90FF".into()),
    }
}

fn created() -> Vec<GroupEvent> {
    Group::default()
        .decide(GroupCommand::Create(new_group()))
        .expect("decides")
}

fn given(history: &[GroupEvent]) -> Group {
    Group::fold(history)
}

/// `history` followed by what `command` decides in its state.
fn then(history: Vec<GroupEvent>, command: GroupCommand) -> Vec<GroupEvent> {
    let events = given(&history).decide(command).expect("decides");
    [history, events].concat()
}

fn add(ids: &[Uuid]) -> GroupCommand {
    GroupCommand::AddContacts {
        contact_ids: ids.to_vec(),
    }
}

fn remove(ids: &[Uuid]) -> GroupCommand {
    GroupCommand::RemoveContacts {
        contact_ids: ids.to_vec(),
    }
}

#[test]
fn creating_trims_and_lowercases_the_colour() {
    assert_eq!(
        created(),
        vec![GroupEvent::GroupCreated {
            group_id: VIP,
            name: "VIP clients".into(),
            description: Some("Our best\ncustomers".into()),
            colour: Some("#1e90ff".into()),
        }]
    );
    let group = given(&created());
    assert_eq!(group.id, Some(VIP));
    assert_eq!(group.name, "VIP clients");
    assert!(group.members.is_empty() && !group.deleted);
    assert_eq!(
        group.decide(GroupCommand::Create(new_group())),
        Err(GroupError::AlreadyExists)
    );
    let bare = Group::default()
        .decide(GroupCommand::Create(NewGroup {
            group_id: VIP,
            name: "Leads".into(),
            description: Some("   ".into()),
            colour: Some(String::new()),
        }))
        .expect("decides");
    assert_eq!(
        bare,
        vec![GroupEvent::GroupCreated {
            group_id: VIP,
            name: "Leads".into(),
            description: None,
            colour: None,
        }],
        "blank description and colour are none"
    );
}

#[test]
fn names_descriptions_and_colours_are_checked() {
    let max_name = "é".repeat(MAX_NAME_LEN);
    assert_eq!(valid_name(&max_name), Ok(max_name.clone()));
    for bad in ["", "   ", "a\u{7}b", &"x".repeat(MAX_NAME_LEN + 1)] {
        assert_eq!(valid_name(bad), Err(GroupError::InvalidName), "{bad:?}");
        let command = GroupCommand::Create(NewGroup {
            name: bad.to_string(),
            ..new_group()
        });
        assert_eq!(
            Group::default().decide(command),
            Err(GroupError::InvalidName)
        );
    }
    assert_eq!(
        valid_description(Some(&"x".repeat(MAX_DESCRIPTION_LEN + 1))),
        Err(GroupError::InvalidDescription)
    );
    assert_eq!(
        valid_description(Some("a\u{0}b")),
        Err(GroupError::InvalidDescription)
    );
    for good in ["#000000", "#abcdef", "#ABCDEF", " #12aB9f "] {
        assert!(valid_colour(Some(good)).is_ok(), "{good:?}");
    }
    for bad in [
        "000000", "#fff", "#12345", "#1234567", "#gggggg", "red", "# 12345",
    ] {
        assert_eq!(
            valid_colour(Some(bad)),
            Err(GroupError::InvalidColour),
            "{bad:?}"
        );
    }
    let command = GroupCommand::Create(NewGroup {
        colour: Some("blue".into()),
        ..new_group()
    });
    assert_eq!(
        Group::default().decide(command),
        Err(GroupError::InvalidColour)
    );
}

#[test]
fn updates_change_what_differs_and_clear_with_none() {
    let history = then(
        created(),
        GroupCommand::Update(GroupUpdate {
            name: Some("VIP".into()),
            description: Some(None),
            colour: None,
        }),
    );
    assert_eq!(
        history[1..],
        [GroupEvent::GroupUpdated {
            name: "VIP".into(),
            description: None,
            colour: Some("#1e90ff".into()),
        }]
    );
    let group = given(&history);
    assert_eq!(
        (group.name.as_str(), group.description.as_deref()),
        ("VIP", None)
    );
    let same = GroupCommand::Update(GroupUpdate {
        name: Some(" VIP ".into()),
        colour: Some(Some("#1E90FF".into())),
        ..GroupUpdate::default()
    });
    assert_eq!(group.decide(same), Ok(vec![]), "nothing changed");
    let bad = GroupCommand::Update(GroupUpdate {
        colour: Some(Some("#zzzzzz".into())),
        ..GroupUpdate::default()
    });
    assert_eq!(group.decide(bad), Err(GroupError::InvalidColour));
    assert_eq!(
        Group::default().decide(GroupCommand::Update(GroupUpdate::default())),
        Err(GroupError::NotFound)
    );
}

#[test]
fn adding_members_twice_and_removing_non_members_are_no_ops() {
    let history = then(created(), add(&[BOB, ADA, BOB]));
    assert_eq!(
        history[1..],
        [GroupEvent::ContactsAdded {
            contact_ids: vec![ADA, BOB],
        }],
        "sorted, each once"
    );
    let group = given(&history);
    assert_eq!(group.decide(add(&[ADA, BOB])), Ok(vec![]));
    assert_eq!(
        group.decide(add(&[ADA, EVE])),
        Ok(vec![GroupEvent::ContactsAdded {
            contact_ids: vec![EVE],
        }]),
        "only the new member"
    );
    assert_eq!(group.decide(remove(&[EVE])), Ok(vec![]));
    let history = then(history, remove(&[EVE, ADA]));
    assert_eq!(
        history.last(),
        Some(&GroupEvent::ContactsRemoved {
            contact_ids: vec![ADA],
        })
    );
    let group = given(&history);
    assert_eq!(group.members, BTreeSet::from([BOB]));
    // Removed, then added again: a member once more.
    let history = then(history, add(&[ADA]));
    assert_eq!(given(&history).members, BTreeSet::from([ADA, BOB]));
}

#[test]
fn a_bulk_call_names_one_to_a_thousand_contacts() {
    let group = given(&created());
    let thousand: Vec<Uuid> = (0..MAX_BULK as u128)
        .map(|n| Uuid::from_u128(100 + n))
        .collect();
    let added = group.decide(add(&thousand)).expect("decides");
    assert!(matches!(
        &added[..],
        [GroupEvent::ContactsAdded { contact_ids }] if contact_ids.len() == MAX_BULK
    ));
    let too_many: Vec<Uuid> = (0..=MAX_BULK as u128).map(Uuid::from_u128).collect();
    assert_eq!(
        group.decide(add(&too_many)),
        Err(GroupError::InvalidContactCount)
    );
    assert_eq!(
        group.decide(remove(&too_many)),
        Err(GroupError::InvalidContactCount)
    );
    assert_eq!(group.decide(add(&[])), Err(GroupError::InvalidContactCount));
    assert_eq!(
        group.decide(remove(&[])),
        Err(GroupError::InvalidContactCount)
    );
}

#[test]
fn a_deleted_group_is_gone_and_deleting_again_is_a_retry() {
    let history = then(then(created(), add(&[ADA])), GroupCommand::Delete);
    assert_eq!(history.last(), Some(&GroupEvent::GroupDeleted {}));
    let group = given(&history);
    assert!(group.deleted && group.members.is_empty());
    assert_eq!(group.decide(GroupCommand::Delete), Ok(vec![]));
    assert_eq!(group.decide(add(&[BOB])), Err(GroupError::NotFound));
    assert_eq!(group.decide(remove(&[ADA])), Err(GroupError::NotFound));
    assert_eq!(
        group.decide(GroupCommand::Update(GroupUpdate::default())),
        Err(GroupError::NotFound)
    );
    assert_eq!(
        group.decide(GroupCommand::Create(new_group())),
        Err(GroupError::AlreadyExists)
    );
    assert_eq!(
        Group::default().decide(GroupCommand::Delete),
        Err(GroupError::NotFound)
    );
}
