//! Random secrets handed to clients once and stored only as SHA-256 hashes: session and refresh
//! tokens, invitation links, API keys. 256 random bits make a plain (unsalted) hash safe to store
//! and cheap to look up; nothing about the secret can be recovered from it.

use std::fmt;

use sha2::{Digest, Sha256};

/// What a secret is for; its tag starts the secret, so a leaked one is recognisable (and secret
/// scanners can match it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    AccessToken,
    RefreshToken,
    Invitation,
    ApiKey,
}

impl Kind {
    pub fn tag(self) -> &'static str {
        match self {
            Kind::AccessToken => "cat",
            Kind::RefreshToken => "crt",
            Kind::Invitation => "cin",
            Kind::ApiKey => "cak",
        }
    }
}

/// A freshly made secret: the text for the client, and the hash to store.
pub struct Secret {
    text: String,
    pub hash: String,
}

impl Secret {
    /// `<tag>_<64 hex digits>` from the operating system's random source.
    pub fn generate(kind: Kind) -> anyhow::Result<Secret> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)
            .map_err(|e| anyhow::anyhow!("the operating system's random source failed: {e}"))?;
        let text = format!("{}_{}", kind.tag(), hex::encode(bytes));
        let hash = hash(&text);
        Ok(Secret { text, hash })
    }

    /// The secret itself: show it to the client once, never log or store it.
    pub fn expose(&self) -> &str {
        &self.text
    }

    /// The first characters, safe to store and show so people can tell secrets apart.
    pub fn prefix(&self) -> &str {
        &self.text[..self.text.len().min(12)]
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({}…)", self.prefix())
    }
}

/// The stored form of a secret a client presents: hex SHA-256.
pub fn hash(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Whether `text` looks like a secret of `kind` (its tag and length), before any lookup.
pub fn is_shaped_like(text: &str, kind: Kind) -> bool {
    text.strip_prefix(kind.tag())
        .and_then(|rest| rest.strip_prefix('_'))
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_tagged_random_and_stored_as_their_hash() {
        let one = Secret::generate(Kind::ApiKey).expect("random");
        let two = Secret::generate(Kind::ApiKey).expect("random");
        assert_ne!(one.expose(), two.expose());
        assert!(one.expose().starts_with("cak_"));
        assert!(is_shaped_like(one.expose(), Kind::ApiKey));
        assert!(!is_shaped_like(one.expose(), Kind::AccessToken));
        assert!(!is_shaped_like("cak_xyz", Kind::ApiKey));
        assert_eq!(one.hash, hash(one.expose()));
        assert_eq!(one.hash.len(), 64);
        assert_eq!(one.prefix(), &one.expose()[..12]);
        assert!(!format!("{one:?}").contains(one.expose()));
    }

    #[test]
    fn the_hash_is_sha256_hex() {
        assert_eq!(
            hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
