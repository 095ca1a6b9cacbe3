//! A user: registered once, with a name and a set of live session families. Password checks
//! happen outside (argon2 against the `credentials` table); the aggregate records the outcomes
//! that matter to the account.

use std::collections::BTreeSet;

use events::Email;
use events::user::{SessionEnd, UserEvent};
use uuid::Uuid;

use crate::Aggregate;
use crate::organisation::{MAX_NAME_LEN, valid_name};

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct User {
    /// `None` until registered.
    pub id: Option<Uuid>,
    pub email: Option<Email>,
    pub name: String,
    /// Session families that have not ended.
    pub sessions: BTreeSet<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserCommand {
    Register {
        user_id: Uuid,
        email: Email,
        name: String,
    },
    Rename {
        name: String,
    },
    ChangePassword,
    SignIn {
        family_id: Uuid,
    },
    /// Ends one family (`Some`) or all of them.
    EndSessions {
        family_id: Option<Uuid>,
        reason: SessionEnd,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    #[error("the user does not exist")]
    NotFound,
    #[error("the user exists already")]
    AlreadyRegistered,
    #[error("a name must have 1 to {MAX_NAME_LEN} characters and no control characters")]
    InvalidName,
    #[error("no such session")]
    UnknownSession,
}

impl Aggregate for User {
    type Event = UserEvent;
    type Command = UserCommand;
    type Error = UserError;

    fn evolve(mut self, event: &UserEvent) -> Self {
        match event {
            UserEvent::UserRegistered {
                user_id,
                email,
                name,
            } => {
                self.id = Some(*user_id);
                self.email = Some(email.clone());
                self.name.clone_from(name);
            }
            UserEvent::UserRenamed { name } => self.name.clone_from(name),
            UserEvent::PasswordChanged {} => {}
            UserEvent::SignedIn { family_id } => {
                self.sessions.insert(*family_id);
            }
            UserEvent::SessionsEnded { family_id, .. } => match family_id {
                Some(family_id) => {
                    self.sessions.remove(family_id);
                }
                None => self.sessions.clear(),
            },
        }
        self
    }

    fn decide(&self, command: UserCommand) -> Result<Vec<UserEvent>, UserError> {
        let name = |raw: &str| valid_name(raw).map_err(|_| UserError::InvalidName);
        if let UserCommand::Register {
            user_id,
            email,
            name: raw,
        } = command
        {
            if self.id.is_some() {
                return Err(UserError::AlreadyRegistered);
            }
            return Ok(vec![UserEvent::UserRegistered {
                user_id,
                email,
                name: name(&raw)?,
            }]);
        }
        if self.id.is_none() {
            return Err(UserError::NotFound);
        }
        match command {
            UserCommand::Register { .. } => Err(UserError::AlreadyRegistered),
            UserCommand::Rename { name: raw } => {
                let name = name(&raw)?;
                Ok(if name == self.name {
                    vec![]
                } else {
                    vec![UserEvent::UserRenamed { name }]
                })
            }
            // A new password ends every session, the one that changed it included; the handler
            // signs that one in again.
            UserCommand::ChangePassword => {
                let mut events = vec![UserEvent::PasswordChanged {}];
                if !self.sessions.is_empty() {
                    events.push(UserEvent::SessionsEnded {
                        family_id: None,
                        reason: SessionEnd::PasswordChanged,
                    });
                }
                Ok(events)
            }
            UserCommand::SignIn { family_id } => Ok(if self.sessions.contains(&family_id) {
                vec![]
            } else {
                vec![UserEvent::SignedIn { family_id }]
            }),
            UserCommand::EndSessions { family_id, reason } => match family_id {
                Some(family) if !self.sessions.contains(&family) => {
                    // Ending a family that already ended is a retry; one never started is not.
                    Err(UserError::UnknownSession)
                }
                None if self.sessions.is_empty() => Ok(vec![]),
                _ => Ok(vec![UserEvent::SessionsEnded { family_id, reason }]),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADA: Uuid = Uuid::from_u128(1);
    const FAMILY: Uuid = Uuid::from_u128(7);

    fn registered() -> Vec<UserEvent> {
        vec![UserEvent::UserRegistered {
            user_id: ADA,
            email: Email::parse("ada@example.com").expect("a valid email"),
            name: "Ada Lovelace".into(),
        }]
    }

    fn signed_in() -> Vec<UserEvent> {
        let mut history = registered();
        history.push(UserEvent::SignedIn { family_id: FAMILY });
        history
    }

    #[test]
    fn a_user_registers_once_with_a_valid_name() {
        let register = |name: &str| UserCommand::Register {
            user_id: ADA,
            email: Email::parse("ada@example.com").expect("a valid email"),
            name: name.into(),
        };
        assert_eq!(
            User::default().decide(register(" Ada Lovelace ")),
            Ok(registered())
        );
        assert_eq!(
            User::default().decide(register(" ")),
            Err(UserError::InvalidName)
        );
        assert_eq!(
            User::fold(&registered()).decide(register("Ada")),
            Err(UserError::AlreadyRegistered)
        );
        assert_eq!(
            User::default().decide(UserCommand::ChangePassword),
            Err(UserError::NotFound)
        );
    }

    #[test]
    fn a_password_change_ends_every_session() {
        let user = User::fold(&signed_in());
        assert_eq!(
            user.decide(UserCommand::ChangePassword),
            Ok(vec![
                UserEvent::PasswordChanged {},
                UserEvent::SessionsEnded {
                    family_id: None,
                    reason: SessionEnd::PasswordChanged,
                },
            ])
        );
        let user = User::fold(&registered());
        assert_eq!(
            user.decide(UserCommand::ChangePassword),
            Ok(vec![UserEvent::PasswordChanged {}])
        );
    }

    #[test]
    fn sessions_end_once_and_unknown_ones_are_errors() {
        let mut history = signed_in();
        let end = UserCommand::EndSessions {
            family_id: Some(FAMILY),
            reason: SessionEnd::SignedOut,
        };
        let ended = User::fold(&history).decide(end.clone()).expect("decides");
        assert_eq!(
            ended,
            vec![UserEvent::SessionsEnded {
                family_id: Some(FAMILY),
                reason: SessionEnd::SignedOut,
            }]
        );
        history.extend(ended);
        let user = User::fold(&history);
        assert!(user.sessions.is_empty());
        assert_eq!(user.decide(end), Err(UserError::UnknownSession));
        let all = UserCommand::EndSessions {
            family_id: None,
            reason: SessionEnd::Revoked,
        };
        assert_eq!(user.decide(all), Ok(vec![]));
        assert_eq!(
            user.decide(UserCommand::SignIn { family_id: FAMILY }),
            Ok(vec![UserEvent::SignedIn { family_id: FAMILY }])
        );
    }
}
