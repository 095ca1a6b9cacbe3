//! An organisation with its members, invitations and API keys: one stream, so the rules that span
//! them hold without coordination — the last admin can be neither removed nor demoted, an
//! invitation is used at most once and only before it expires, an API key is never an admin.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use events::organisation::{Branding, OrganisationEvent};
use events::{Email, Role};
use uuid::Uuid;

use crate::Aggregate;

/// How long an invitation link works, from its creation or its last resend.
pub const INVITATION_TTL: Duration = Duration::days(7);

/// The longest organisation or API key name.
pub const MAX_NAME_LEN: usize = 200;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Organisation {
    /// `None` until the organisation is created.
    pub id: Option<Uuid>,
    pub name: String,
    pub branding: Branding,
    pub members: BTreeMap<Uuid, Member>,
    pub invitations: BTreeMap<Uuid, Invitation>,
    pub api_keys: BTreeMap<Uuid, ApiKey>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub email: Email,
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    pub email: Email,
    pub role: Role,
    pub token_hash: String,
    pub expires_at: DateTime<Utc>,
    pub state: InvitationState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvitationState {
    Pending,
    Accepted,
    Revoked,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub name: String,
    pub role: Role,
    pub revoked: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrganisationCommand {
    Create {
        organisation_id: Uuid,
        name: String,
        creator: Uuid,
        creator_email: Email,
    },
    Rename {
        name: String,
    },
    UpdateBranding {
        branding: Branding,
    },
    ChangeLogo {
        logo_id: Uuid,
        content_type: String,
        size: u64,
    },
    ChangeRole {
        user_id: Uuid,
        role: Role,
    },
    RemoveMember {
        user_id: Uuid,
    },
    Invite {
        invitation_id: Uuid,
        email: Email,
        role: Role,
        token_hash: String,
        now: DateTime<Utc>,
    },
    ResendInvitation {
        invitation_id: Uuid,
        token_hash: String,
        now: DateTime<Utc>,
    },
    RevokeInvitation {
        invitation_id: Uuid,
    },
    AcceptInvitation {
        invitation_id: Uuid,
        token_hash: String,
        user_id: Uuid,
        email: Email,
        now: DateTime<Utc>,
    },
    CreateApiKey {
        key_id: Uuid,
        name: String,
        role: Role,
        prefix: String,
        secret_hash: String,
    },
    RevokeApiKey {
        key_id: Uuid,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrganisationError {
    #[error("the organisation does not exist")]
    NotFound,
    #[error("the organisation exists already")]
    AlreadyExists,
    #[error("a name must have 1 to {MAX_NAME_LEN} characters and no control characters")]
    InvalidName,
    #[error("the user is not a member of this organisation")]
    NotAMember,
    #[error("the user is a member already")]
    AlreadyMember,
    #[error("the organisation's last admin can be neither removed nor demoted")]
    LastAdmin,
    #[error("this email has a pending invitation already; resend it instead")]
    AlreadyInvited,
    #[error("no such invitation")]
    UnknownInvitation,
    #[error("the invitation has expired")]
    InvitationExpired,
    #[error("the invitation has been used")]
    InvitationUsed,
    #[error("the invitation has been revoked")]
    InvitationRevoked,
    #[error("the invitation is for another email address")]
    InvitationForAnotherEmail,
    #[error("an API key cannot have the admin role")]
    AdminApiKey,
    #[error("no such API key")]
    UnknownApiKey,
}

impl Organisation {
    fn admins(&self) -> usize {
        self.members
            .values()
            .filter(|m| m.role == Role::Admin)
            .count()
    }

    fn is_last_admin(&self, user_id: Uuid) -> bool {
        self.members
            .get(&user_id)
            .is_some_and(|m| m.role == Role::Admin)
            && self.admins() == 1
    }

    fn pending_invitation(&self, invitation_id: Uuid) -> Result<&Invitation, OrganisationError> {
        let invitation = self
            .invitations
            .get(&invitation_id)
            .ok_or(OrganisationError::UnknownInvitation)?;
        match invitation.state {
            InvitationState::Pending => Ok(invitation),
            InvitationState::Accepted => Err(OrganisationError::InvitationUsed),
            InvitationState::Revoked => Err(OrganisationError::InvitationRevoked),
        }
    }
}

/// A name as stored: trimmed, 1 to [`MAX_NAME_LEN`] characters, no control characters.
pub fn valid_name(raw: &str) -> Result<String, OrganisationError> {
    let name = raw.trim();
    let length = name.chars().count();
    if length == 0 || length > MAX_NAME_LEN || name.chars().any(char::is_control) {
        return Err(OrganisationError::InvalidName);
    }
    Ok(name.to_owned())
}

impl Aggregate for Organisation {
    type Event = OrganisationEvent;
    type Command = OrganisationCommand;
    type Error = OrganisationError;

    fn evolve(mut self, event: &OrganisationEvent) -> Self {
        use OrganisationEvent as E;
        match event {
            E::OrganisationCreated {
                organisation_id,
                name,
                ..
            } => {
                self.id = Some(*organisation_id);
                self.name.clone_from(name);
            }
            E::OrganisationRenamed { name } => self.name.clone_from(name),
            E::BrandingUpdated { branding } => self.branding = branding.clone(),
            E::LogoChanged { .. } => {}
            E::MemberAdded {
                user_id,
                email,
                role,
                ..
            } => {
                let member = Member {
                    email: email.clone(),
                    role: *role,
                };
                self.members.insert(*user_id, member);
            }
            E::MemberRoleChanged { user_id, to, .. } => {
                if let Some(member) = self.members.get_mut(user_id) {
                    member.role = *to;
                }
            }
            E::MemberRemoved { user_id } => {
                self.members.remove(user_id);
            }
            E::InvitationCreated {
                invitation_id,
                email,
                role,
                token_hash,
                expires_at,
            } => {
                let invitation = Invitation {
                    email: email.clone(),
                    role: *role,
                    token_hash: token_hash.clone(),
                    expires_at: *expires_at,
                    state: InvitationState::Pending,
                };
                self.invitations.insert(*invitation_id, invitation);
            }
            E::InvitationResent {
                invitation_id,
                token_hash,
                expires_at,
            } => {
                if let Some(invitation) = self.invitations.get_mut(invitation_id) {
                    invitation.token_hash.clone_from(token_hash);
                    invitation.expires_at = *expires_at;
                }
            }
            E::InvitationAccepted { invitation_id, .. } => {
                if let Some(invitation) = self.invitations.get_mut(invitation_id) {
                    invitation.state = InvitationState::Accepted;
                }
            }
            E::InvitationRevoked { invitation_id } => {
                if let Some(invitation) = self.invitations.get_mut(invitation_id) {
                    invitation.state = InvitationState::Revoked;
                }
            }
            E::ApiKeyCreated {
                key_id, name, role, ..
            } => {
                let key = ApiKey {
                    name: name.clone(),
                    role: *role,
                    revoked: false,
                };
                self.api_keys.insert(*key_id, key);
            }
            E::ApiKeyRevoked { key_id } => {
                if let Some(key) = self.api_keys.get_mut(key_id) {
                    key.revoked = true;
                }
            }
        }
        self
    }

    fn decide(
        &self,
        command: OrganisationCommand,
    ) -> Result<Vec<OrganisationEvent>, OrganisationError> {
        use OrganisationCommand as C;
        use OrganisationEvent as E;
        if let C::Create {
            organisation_id,
            name,
            creator,
            creator_email,
        } = command
        {
            if self.id.is_some() {
                return Err(OrganisationError::AlreadyExists);
            }
            return Ok(vec![
                E::OrganisationCreated {
                    organisation_id,
                    name: valid_name(&name)?,
                    created_by: creator,
                },
                E::MemberAdded {
                    user_id: creator,
                    email: creator_email,
                    role: Role::Admin,
                    invitation_id: None,
                },
            ]);
        }
        if self.id.is_none() {
            return Err(OrganisationError::NotFound);
        }
        match command {
            C::Create { .. } => Err(OrganisationError::AlreadyExists),
            C::Rename { name } => {
                let name = valid_name(&name)?;
                Ok(if name == self.name {
                    vec![]
                } else {
                    vec![E::OrganisationRenamed { name }]
                })
            }
            C::UpdateBranding { branding } => Ok(if branding == self.branding {
                vec![]
            } else {
                vec![E::BrandingUpdated { branding }]
            }),
            C::ChangeLogo {
                logo_id,
                content_type,
                size,
            } => Ok(vec![E::LogoChanged {
                logo_id,
                content_type,
                size,
            }]),
            C::ChangeRole { user_id, role } => {
                let member = self
                    .members
                    .get(&user_id)
                    .ok_or(OrganisationError::NotAMember)?;
                if member.role == role {
                    return Ok(vec![]);
                }
                if self.is_last_admin(user_id) {
                    return Err(OrganisationError::LastAdmin);
                }
                Ok(vec![E::MemberRoleChanged {
                    user_id,
                    from: member.role,
                    to: role,
                }])
            }
            C::RemoveMember { user_id } => {
                if !self.members.contains_key(&user_id) {
                    return Err(OrganisationError::NotAMember);
                }
                if self.is_last_admin(user_id) {
                    return Err(OrganisationError::LastAdmin);
                }
                Ok(vec![E::MemberRemoved { user_id }])
            }
            C::Invite {
                invitation_id,
                email,
                role,
                token_hash,
                now,
            } => {
                if self.members.values().any(|m| m.email == email) {
                    return Err(OrganisationError::AlreadyMember);
                }
                let pending = self.invitations.values().any(|i| {
                    i.email == email && i.state == InvitationState::Pending && i.expires_at > now
                });
                if pending {
                    return Err(OrganisationError::AlreadyInvited);
                }
                Ok(vec![E::InvitationCreated {
                    invitation_id,
                    email,
                    role,
                    token_hash,
                    expires_at: now + INVITATION_TTL,
                }])
            }
            C::ResendInvitation {
                invitation_id,
                token_hash,
                now,
            } => {
                self.pending_invitation(invitation_id)?;
                Ok(vec![E::InvitationResent {
                    invitation_id,
                    token_hash,
                    expires_at: now + INVITATION_TTL,
                }])
            }
            C::RevokeInvitation { invitation_id } => match self.pending_invitation(invitation_id) {
                Ok(_) => Ok(vec![E::InvitationRevoked { invitation_id }]),
                Err(OrganisationError::InvitationRevoked) => Ok(vec![]),
                Err(error) => Err(error),
            },
            C::AcceptInvitation {
                invitation_id,
                token_hash,
                user_id,
                email,
                now,
            } => {
                let invitation = self.pending_invitation(invitation_id)?;
                // A resent invitation's old token stops working.
                if invitation.token_hash != token_hash {
                    return Err(OrganisationError::UnknownInvitation);
                }
                if invitation.expires_at <= now {
                    return Err(OrganisationError::InvitationExpired);
                }
                if invitation.email != email {
                    return Err(OrganisationError::InvitationForAnotherEmail);
                }
                if self.members.contains_key(&user_id) {
                    return Err(OrganisationError::AlreadyMember);
                }
                Ok(vec![
                    E::InvitationAccepted {
                        invitation_id,
                        user_id,
                    },
                    E::MemberAdded {
                        user_id,
                        email,
                        role: invitation.role,
                        invitation_id: Some(invitation_id),
                    },
                ])
            }
            C::CreateApiKey {
                key_id,
                name,
                role,
                prefix,
                secret_hash,
            } => {
                if role == Role::Admin {
                    return Err(OrganisationError::AdminApiKey);
                }
                Ok(vec![E::ApiKeyCreated {
                    key_id,
                    name: valid_name(&name)?,
                    role,
                    prefix,
                    secret_hash,
                }])
            }
            C::RevokeApiKey { key_id } => match self.api_keys.get(&key_id) {
                None => Err(OrganisationError::UnknownApiKey),
                Some(key) if key.revoked => Ok(vec![]),
                Some(_) => Ok(vec![E::ApiKeyRevoked { key_id }]),
            },
        }
    }
}

#[cfg(test)]
mod tests;
