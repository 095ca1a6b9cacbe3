//! Passwords, hashed with argon2id at OWASP's recommended cost: 19 MiB of memory, 2 passes, one
//! lane (`m=19456,t=2,p=1`). Hashing is deliberately slow (tens of milliseconds on one core), so
//! callers run it on a blocking thread.

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};

/// The shortest password accepted.
pub const MIN_LEN: usize = 10;
/// The longest, so nobody makes the server hash a megabyte.
pub const MAX_LEN: usize = 1_024;

/// Why a new password is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("must have at least {MIN_LEN} characters")]
    TooShort,
    #[error("must have at most {MAX_LEN} characters")]
    TooLong,
}

/// Checks a password someone chooses (sign-up, change, reset).
pub fn validate(password: &str) -> Result<(), PasswordError> {
    let length = password.chars().count();
    if length < MIN_LEN {
        return Err(PasswordError::TooShort);
    }
    if length > MAX_LEN {
        return Err(PasswordError::TooLong);
    }
    Ok(())
}

fn hasher() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::DEFAULT)
}

/// The PHC string (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`) of `password`, with a fresh
/// random salt.
pub fn hash(password: &str) -> anyhow::Result<String> {
    let hash = hasher()
        .hash_password(password.as_bytes())
        .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))?;
    Ok(hash.to_string())
}

/// Whether `password` matches `stored`. A stored value that does not parse never matches.
pub fn verify(password: &str, stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    hasher()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// Spends the time of a real verification, for sign-ins with an unknown email: both answers take
/// the same time, so timing does not tell which emails have accounts.
pub fn verify_nothing(password: &str) {
    static DUMMY: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    if let Some(dummy) = DUMMY.get_or_init(|| hash("not anybody's password").ok()) {
        let _ = verify(password, dummy);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_carry_the_stated_parameters() {
        let stored = hash("correct horse battery").expect("hashes");
        assert!(
            stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{stored}"
        );
        assert!(verify("correct horse battery", &stored));
        assert!(!verify("correct horse batterY", &stored));
        assert!(!verify("correct horse battery", "not a hash"));
        let again = hash("correct horse battery").expect("hashes");
        assert_ne!(stored, again, "every hash has its own salt");
    }

    #[test]
    fn new_passwords_have_at_least_ten_characters() {
        assert_eq!(validate("123456789"), Err(PasswordError::TooShort));
        assert_eq!(validate("ñññññññññ"), Err(PasswordError::TooShort));
        assert_eq!(validate("1234567890"), Ok(()));
        assert_eq!(
            validate(&"x".repeat(MAX_LEN + 1)),
            Err(PasswordError::TooLong)
        );
    }
}
