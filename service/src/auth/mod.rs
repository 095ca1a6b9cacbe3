//! The building blocks of authentication: password hashing ([`password`]) and the random secrets
//! behind session tokens, refresh tokens, invitation links and API keys ([`secret`]).

pub mod password;
pub mod secret;
