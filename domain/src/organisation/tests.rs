//! Given (history) / when (command) / then (events or error).

use chrono::TimeZone;

use super::*;

const ORG: Uuid = Uuid::from_u128(1);
const ADA: Uuid = Uuid::from_u128(10);
const BOB: Uuid = Uuid::from_u128(11);
const INVITE: Uuid = Uuid::from_u128(20);
const KEY: Uuid = Uuid::from_u128(30);

fn email(raw: &str) -> Email {
    Email::parse(raw).expect("a valid email")
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0)
        .single()
        .expect("a valid time")
}

fn created() -> Vec<OrganisationEvent> {
    Organisation::default()
        .decide(OrganisationCommand::Create {
            organisation_id: ORG,
            name: "  Acme Dental ".into(),
            creator: ADA,
            creator_email: email("ada@acme.test"),
        })
        .expect("decides")
}

fn with_bob(role: Role) -> Vec<OrganisationEvent> {
    let mut history = created();
    history.push(OrganisationEvent::MemberAdded {
        user_id: BOB,
        email: email("bob@acme.test"),
        role,
        invitation_id: None,
    });
    history
}

fn invited(role: Role) -> Vec<OrganisationEvent> {
    let mut history = created();
    history.extend(
        Organisation::fold(&history)
            .decide(OrganisationCommand::Invite {
                invitation_id: INVITE,
                email: email("bob@acme.test"),
                role,
                token_hash: "first".into(),
                now: now(),
            })
            .expect("decides"),
    );
    history
}

fn given(history: &[OrganisationEvent]) -> Organisation {
    Organisation::fold(history)
}

fn accept(token: &str, at: DateTime<Utc>, as_email: &str) -> OrganisationCommand {
    OrganisationCommand::AcceptInvitation {
        invitation_id: INVITE,
        token_hash: token.into(),
        user_id: BOB,
        email: email(as_email),
        now: at,
    }
}

#[test]
fn the_creator_becomes_the_admin_and_the_name_is_trimmed() {
    let events = created();
    assert_eq!(
        events,
        vec![
            OrganisationEvent::OrganisationCreated {
                organisation_id: ORG,
                name: "Acme Dental".into(),
                created_by: ADA,
            },
            OrganisationEvent::MemberAdded {
                user_id: ADA,
                email: email("ada@acme.test"),
                role: Role::Admin,
                invitation_id: None,
            },
        ]
    );
    let org = given(&events);
    assert_eq!(org.members[&ADA].role, Role::Admin);
    let again = OrganisationCommand::Create {
        organisation_id: ORG,
        name: "Acme".into(),
        creator: BOB,
        creator_email: email("bob@acme.test"),
    };
    assert_eq!(org.decide(again), Err(OrganisationError::AlreadyExists));
}

#[test]
fn names_are_validated_and_an_unchanged_name_is_no_event() {
    for bad in ["", "   ", "a\u{0}b", &"x".repeat(MAX_NAME_LEN + 1)] {
        let command = OrganisationCommand::Create {
            organisation_id: ORG,
            name: bad.to_string(),
            creator: ADA,
            creator_email: email("ada@acme.test"),
        };
        assert_eq!(
            Organisation::default().decide(command),
            Err(OrganisationError::InvalidName),
            "{bad:?}"
        );
    }
    let org = given(&created());
    let rename = |name: &str| OrganisationCommand::Rename { name: name.into() };
    assert_eq!(org.decide(rename("Acme Dental ")), Ok(vec![]));
    assert_eq!(
        org.decide(rename("Acme Clinics")),
        Ok(vec![OrganisationEvent::OrganisationRenamed {
            name: "Acme Clinics".into()
        }])
    );
    assert_eq!(
        Organisation::default().decide(rename("Acme")),
        Err(OrganisationError::NotFound)
    );
}

#[test]
fn the_last_admin_can_be_neither_demoted_nor_removed() {
    let org = given(&with_bob(Role::Staff));
    let demote = OrganisationCommand::ChangeRole {
        user_id: ADA,
        role: Role::Staff,
    };
    assert_eq!(
        org.decide(demote.clone()),
        Err(OrganisationError::LastAdmin)
    );
    let remove = OrganisationCommand::RemoveMember { user_id: ADA };
    assert_eq!(
        org.decide(remove.clone()),
        Err(OrganisationError::LastAdmin)
    );

    // With a second admin, either may go.
    let mut history = with_bob(Role::Staff);
    history.extend(
        org.decide(OrganisationCommand::ChangeRole {
            user_id: BOB,
            role: Role::Admin,
        })
        .expect("decides"),
    );
    let org = given(&history);
    assert_eq!(
        org.decide(demote),
        Ok(vec![OrganisationEvent::MemberRoleChanged {
            user_id: ADA,
            from: Role::Admin,
            to: Role::Staff,
        }])
    );
    assert_eq!(
        org.decide(remove),
        Ok(vec![OrganisationEvent::MemberRemoved { user_id: ADA }])
    );
}

#[test]
fn role_changes_need_a_member_and_repeat_as_nothing() {
    let org = given(&with_bob(Role::Staff));
    let same = OrganisationCommand::ChangeRole {
        user_id: BOB,
        role: Role::Staff,
    };
    assert_eq!(org.decide(same), Ok(vec![]));
    let stranger = OrganisationCommand::ChangeRole {
        user_id: Uuid::from_u128(99),
        role: Role::Viewer,
    };
    assert_eq!(org.decide(stranger), Err(OrganisationError::NotAMember));
    let remove = OrganisationCommand::RemoveMember {
        user_id: Uuid::from_u128(99),
    };
    assert_eq!(org.decide(remove), Err(OrganisationError::NotAMember));
}

#[test]
fn an_invitation_expires_after_seven_days_and_is_used_once() {
    let history = invited(Role::Staff);
    let org = given(&history);
    assert_eq!(
        org.invitations[&INVITE].expires_at,
        now() + Duration::days(7)
    );
    let late = now() + Duration::days(7);
    assert_eq!(
        org.decide(accept("first", late, "bob@acme.test")),
        Err(OrganisationError::InvitationExpired)
    );

    let events = org
        .decide(accept("first", now() + Duration::days(6), "BOB@acme.test "))
        .expect("decides");
    assert_eq!(
        events,
        vec![
            OrganisationEvent::InvitationAccepted {
                invitation_id: INVITE,
                user_id: BOB,
            },
            OrganisationEvent::MemberAdded {
                user_id: BOB,
                email: email("bob@acme.test"),
                role: Role::Staff,
                invitation_id: Some(INVITE),
            },
        ]
    );
    let accepted = given(&[history, events].concat());
    assert_eq!(accepted.members[&BOB].role, Role::Staff);
    assert_eq!(
        accepted.decide(accept("first", now(), "bob@acme.test")),
        Err(OrganisationError::InvitationUsed)
    );
}

#[test]
fn an_invitation_is_for_its_email_and_its_current_token() {
    let org = given(&invited(Role::Viewer));
    assert_eq!(
        org.decide(accept("first", now(), "eve@acme.test")),
        Err(OrganisationError::InvitationForAnotherEmail)
    );
    assert_eq!(
        org.decide(accept("guessed", now(), "bob@acme.test")),
        Err(OrganisationError::UnknownInvitation)
    );

    // Resending replaces the token and restarts the clock.
    let later = now() + Duration::days(5);
    let resent = org
        .decide(OrganisationCommand::ResendInvitation {
            invitation_id: INVITE,
            token_hash: "second".into(),
            now: later,
        })
        .expect("decides");
    let org = given(&[invited(Role::Viewer), resent].concat());
    let after_first_expiry = now() + Duration::days(8);
    assert_eq!(
        org.decide(accept("first", after_first_expiry, "bob@acme.test")),
        Err(OrganisationError::UnknownInvitation)
    );
    assert!(
        org.decide(accept("second", after_first_expiry, "bob@acme.test"))
            .is_ok()
    );
}

#[test]
fn invitations_for_members_or_twice_are_refused_and_revoking_is_final() {
    let org = given(&with_bob(Role::Viewer));
    let invite_bob = OrganisationCommand::Invite {
        invitation_id: INVITE,
        email: email("bob@acme.test"),
        role: Role::Staff,
        token_hash: "t".into(),
        now: now(),
    };
    assert_eq!(
        org.decide(invite_bob),
        Err(OrganisationError::AlreadyMember)
    );

    let history = invited(Role::Staff);
    let again = OrganisationCommand::Invite {
        invitation_id: Uuid::from_u128(21),
        email: email("bob@acme.test"),
        role: Role::Staff,
        token_hash: "t2".into(),
        now: now() + Duration::days(1),
    };
    assert_eq!(
        given(&history).decide(again.clone()),
        Err(OrganisationError::AlreadyInvited)
    );

    let revoke = OrganisationCommand::RevokeInvitation {
        invitation_id: INVITE,
    };
    let revoked = given(&history).decide(revoke.clone()).expect("decides");
    let history = [history, revoked].concat();
    let org = given(&history);
    assert_eq!(org.decide(revoke), Ok(vec![]), "revoking twice is no event");
    assert_eq!(
        org.decide(accept("first", now(), "bob@acme.test")),
        Err(OrganisationError::InvitationRevoked)
    );
    assert_eq!(
        org.decide(OrganisationCommand::ResendInvitation {
            invitation_id: INVITE,
            token_hash: "x".into(),
            now: now(),
        }),
        Err(OrganisationError::InvitationRevoked)
    );
    // Once revoked, the email can be invited afresh.
    assert!(org.decide(again).is_ok());
}

#[test]
fn api_keys_are_never_admin_and_revoke_once() {
    let org = given(&created());
    let create = |role| OrganisationCommand::CreateApiKey {
        key_id: KEY,
        name: "Zapier".into(),
        role,
        prefix: "ck_live_ab12".into(),
        secret_hash: "hash".into(),
    };
    assert_eq!(
        org.decide(create(Role::Admin)),
        Err(OrganisationError::AdminApiKey)
    );
    let events = org.decide(create(Role::Staff)).expect("decides");
    let history = [created(), events].concat();
    let revoke = OrganisationCommand::RevokeApiKey { key_id: KEY };
    let revoked = given(&history).decide(revoke.clone()).expect("decides");
    assert_eq!(
        revoked,
        vec![OrganisationEvent::ApiKeyRevoked { key_id: KEY }]
    );
    let org = given(&[history, revoked].concat());
    assert!(org.api_keys[&KEY].revoked);
    assert_eq!(org.decide(revoke), Ok(vec![]));
    assert_eq!(
        org.decide(OrganisationCommand::RevokeApiKey {
            key_id: Uuid::from_u128(31)
        }),
        Err(OrganisationError::UnknownApiKey)
    );
}
