//! Personal data that can be erased (crypto-shredding).
//!
//! The log is kept forever and never rewritten, so a person's data cannot be deleted from it.
//! Instead every personal field is stored encrypted with a data key of its own *subject* (the
//! person it is about, named by `Metadata::subject`); erasing the subject destroys that key, and
//! from then on every reader — projections, replays, aggregates — sees those fields as erased.
//!
//! A personal field has three JSON shapes:
//! - `{"$personal": v}`: in the clear, as [`Personal::Clear`] serializes. Never stored.
//! - `{"$sealed": {"v": 1, "n": <nonce>, "c": <ciphertext>}}`: as the log stores it ([`seal`]).
//! - `{"$erased": true}`: what readers get once the key is gone ([`open`] without a key), and
//!   what [`Personal::Erased`] serializes to.
//!
//! Data keys are themselves stored wrapped by a master key of the [`Keyring`].
//!
//! Pure: the only IO is the OS random source, for keys and nonces.

use std::fmt;
use std::marker::PhantomData;

use aes_gcm::aead::{Aead, KeyInit, Nonce, Payload};
use aes_gcm::{Aes256Gcm, Key};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use uuid::Uuid;

const PERSONAL: &str = "$personal";
const SEALED: &str = "$sealed";
const ERASED: &str = "$erased";
/// The version of the `$sealed` format: AES-256-GCM, 96-bit nonce, subject as associated data.
const SEAL_VERSION: u64 = 1;
const NONCE_LEN: usize = 12;
const KEY_LEN: usize = 32;
/// AES-GCM's authentication tag, appended to every ciphertext.
const TAG_LEN: usize = 16;

/// The AES-256 key that seals one subject's personal fields.
#[derive(Clone, PartialEq, Eq)]
pub struct DataKey([u8; KEY_LEN]);

impl DataKey {
    /// A fresh key from the OS random source.
    pub fn generate() -> Result<DataKey, PersonalError> {
        random()
            .map(DataKey)
            .map_err(|e| PersonalError::Random(e.to_string()))
    }

    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> DataKey {
        DataKey(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// The key, expanded for sealing and opening: made once per event, not once per field.
    fn cipher(&self) -> Aes256Gcm {
        cipher(&self.0)
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(***)")
    }
}

/// A personal field of an event: readable, or erased for good.
///
/// Serializes as `{"$personal": v}` / `{"$erased": true}`; the event store seals the first
/// before it is written ([`seal`]) and opens it again when read ([`open`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Personal<T> {
    Clear(T),
    /// The subject's data key was erased: the value is gone.
    Erased,
}

impl<T> Personal<T> {
    pub fn clear(&self) -> Option<&T> {
        match self {
            Personal::Clear(value) => Some(value),
            Personal::Erased => None,
        }
    }

    pub fn into_clear(self) -> Option<T> {
        match self {
            Personal::Clear(value) => Some(value),
            Personal::Erased => None,
        }
    }

    pub fn is_erased(&self) -> bool {
        matches!(self, Personal::Erased)
    }

    /// The clear value transformed; erased stays erased.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Personal<U> {
        match self {
            Personal::Clear(value) => Personal::Clear(f(value)),
            Personal::Erased => Personal::Erased,
        }
    }
}

impl<T> From<T> for Personal<T> {
    fn from(value: T) -> Self {
        Personal::Clear(value)
    }
}

impl<T: Serialize> Serialize for Personal<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        match self {
            Personal::Clear(value) => map.serialize_entry(PERSONAL, value)?,
            Personal::Erased => map.serialize_entry(ERASED, &true)?,
        }
        map.end()
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Personal<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(PersonalVisitor(PhantomData))
    }
}

struct PersonalVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for PersonalVisitor<T> {
    type Value = Personal<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(r#"{"$personal": <value>} or {"$erased": true}"#)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let Some(field) = map.next_key::<String>()? else {
            return Err(de::Error::invalid_length(0, &self));
        };
        let personal = match field.as_str() {
            PERSONAL => Personal::Clear(map.next_value()?),
            ERASED => {
                if !map.next_value::<bool>()? {
                    return Err(de::Error::custom(r#"`$erased` must be `true`"#));
                }
                Personal::Erased
            }
            SEALED => {
                return Err(de::Error::custom(
                    "sealed personal data must be opened (events::personal::open) before it \
                     is decoded",
                ));
            }
            other => return Err(de::Error::unknown_field(other, &[PERSONAL, ERASED])),
        };
        if map.next_key::<IgnoredAny>()?.is_some() {
            return Err(de::Error::custom(
                "a personal data wrapper holds exactly one field",
            ));
        }
        Ok(personal)
    }
}

/// Why personal data could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum PersonalError {
    #[error("the OS random source failed: {0}")]
    Random(String),
    #[error("personal data could not be encrypted")]
    Encrypt,
    /// Never "erased": a key that exists but does not fit is corruption or tampering, and
    /// hiding it as an erasure would lose data silently.
    #[error(
        "sealed personal data of subject {subject} does not open with its data key \
         (wrong key, another subject's ciphertext, or tampered)"
    )]
    Decrypt { subject: Uuid },
    #[error("malformed personal data wrapper: {0}")]
    Malformed(String),
    #[error("sealed personal data of format version {0} is not supported")]
    UnsupportedVersion(u64),
}

/// Replaces every `{"$personal": v}` in `data` with its `$sealed` form, encrypted under `key`
/// with `subject` as associated data, so a ciphertext moved to another subject does not open.
/// Sealed and erased wrappers are left as they are.
pub fn seal(data: &mut Value, subject: Uuid, key: &DataKey) -> Result<(), PersonalError> {
    let cipher = key.cipher();
    for_each_wrapper(data, &mut |kind, wrapper| {
        if kind != Kind::Personal {
            return Ok(());
        }
        let value = wrapper
            .get(PERSONAL)
            .ok_or_else(|| PersonalError::Malformed("`$personal` without a value".into()))?;
        let plaintext = serde_json::to_vec(value)
            .map_err(|e| PersonalError::Malformed(format!("not serializable: {e}")))?;
        let (nonce, ciphertext) =
            encrypt(&cipher, subject.as_bytes(), &plaintext).map_err(|e| match e {
                CipherError::Random(e) => PersonalError::Random(e),
                CipherError::Cipher => PersonalError::Encrypt,
            })?;
        *wrapper = serde_json::json!({
            SEALED: {
                "v": SEAL_VERSION,
                "n": BASE64.encode(nonce),
                "c": BASE64.encode(ciphertext),
            }
        });
        Ok(())
    })
}

/// Replaces every `$sealed` wrapper in `data` with `{"$personal": v}` when `key` is given, or
/// with `{"$erased": true}` when it is `None` (the subject's key was erased). A key that does
/// not open a ciphertext is an error, never an erasure.
pub fn open(data: &mut Value, subject: Uuid, key: Option<&DataKey>) -> Result<(), PersonalError> {
    // Made on the first sealed field, once for all of them.
    let mut cipher = None;
    for_each_wrapper(data, &mut |kind, wrapper| {
        if kind != Kind::Sealed {
            return Ok(());
        }
        let Some(key) = key else {
            *wrapper = serde_json::json!({ ERASED: true });
            return Ok(());
        };
        let sealed = wrapper
            .get(SEALED)
            .and_then(Value::as_object)
            .ok_or_else(|| PersonalError::Malformed("`$sealed` is not an object".into()))?;
        let version = sealed
            .get("v")
            .and_then(Value::as_u64)
            .ok_or_else(|| PersonalError::Malformed("`$sealed` has no version `v`".into()))?;
        if version != SEAL_VERSION {
            return Err(PersonalError::UnsupportedVersion(version));
        }
        let nonce: [u8; NONCE_LEN] = base64_field(sealed, "n")?
            .try_into()
            .map_err(|_| PersonalError::Malformed("`$sealed` nonce is not 12 bytes".into()))?;
        let ciphertext = base64_field(sealed, "c")?;
        let cipher = cipher.get_or_insert_with(|| key.cipher());
        let plaintext = decrypt(cipher, &nonce, subject.as_bytes(), &ciphertext)
            .ok_or(PersonalError::Decrypt { subject })?;
        let value: Value = serde_json::from_slice(&plaintext)
            .map_err(|e| PersonalError::Malformed(format!("decrypted value is not JSON: {e}")))?;
        *wrapper = serde_json::json!({ PERSONAL: value });
        Ok(())
    })
}

/// `data` as people are shown it: every opened wrapper replaced by its value, every sealed or
/// erased one by `null`. Serialized straight from `data`, which it does not copy.
#[derive(Debug, Clone, Copy)]
pub struct Unwrapped<'a>(pub &'a Value);

impl Serialize for Unwrapped<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Object(fields) => {
                if let Some(value) = fields.get(PERSONAL) {
                    return Unwrapped(value).serialize(serializer);
                }
                if fields.contains_key(ERASED) || fields.contains_key(SEALED) {
                    return serializer.serialize_unit();
                }
                serializer.collect_map(fields.iter().map(|(key, value)| (key, Unwrapped(value))))
            }
            Value::Array(items) => serializer.collect_seq(items.iter().map(Unwrapped)),
            other => other.serialize(serializer),
        }
    }
}

/// Whether `data` holds a `$sealed` wrapper: something for [`open`] to do.
pub fn has_sealed(data: &Value) -> bool {
    has_wrapper(data, SEALED)
}

/// Whether `data` holds a clear `{"$personal": v}` wrapper: something for [`seal`] to do.
pub fn has_personal(data: &Value) -> bool {
    has_wrapper(data, PERSONAL)
}

fn base64_field(sealed: &Map<String, Value>, field: &str) -> Result<Vec<u8>, PersonalError> {
    sealed
        .get(field)
        .and_then(Value::as_str)
        .and_then(|text| BASE64.decode(text).ok())
        .ok_or_else(|| PersonalError::Malformed(format!("`$sealed` field `{field}` is not base64")))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Personal,
    Sealed,
    Erased,
}

/// The wrapper `map` is, if it holds one of the marker fields. A wrapper holds nothing else:
/// one that does is rejected rather than guessed at, so a clear value never slips through
/// unsealed.
fn wrapper_kind(map: &Map<String, Value>) -> Result<Option<Kind>, PersonalError> {
    let kind = if map.contains_key(PERSONAL) {
        Kind::Personal
    } else if map.contains_key(SEALED) {
        Kind::Sealed
    } else if map.contains_key(ERASED) {
        Kind::Erased
    } else {
        return Ok(None);
    };
    if map.len() != 1 {
        return Err(PersonalError::Malformed(format!(
            "a wrapper holds exactly one field, found {}",
            map.len()
        )));
    }
    Ok(Some(kind))
}

/// Calls `f` on every wrapper object of the tree (without descending into it); `f` may replace
/// the wrapper.
fn for_each_wrapper(
    value: &mut Value,
    f: &mut dyn FnMut(Kind, &mut Value) -> Result<(), PersonalError>,
) -> Result<(), PersonalError> {
    let kind = match value {
        Value::Object(map) => wrapper_kind(map)?,
        _ => None,
    };
    if let Some(kind) = kind {
        return f(kind, value);
    }
    match value {
        Value::Object(map) => map
            .values_mut()
            .try_for_each(|child| for_each_wrapper(child, f)),
        Value::Array(items) => items
            .iter_mut()
            .try_for_each(|child| for_each_wrapper(child, f)),
        _ => Ok(()),
    }
}

fn has_wrapper(value: &Value, marker: &str) -> bool {
    match value {
        Value::Object(map) if map.contains_key(marker) => true,
        Value::Object(map) => {
            !is_wrapper(map) && map.values().any(|child| has_wrapper(child, marker))
        }
        Value::Array(items) => items.iter().any(|child| has_wrapper(child, marker)),
        _ => false,
    }
}

fn is_wrapper(map: &Map<String, Value>) -> bool {
    [PERSONAL, SEALED, ERASED]
        .iter()
        .any(|marker| map.contains_key(*marker))
}

enum CipherError {
    Random(String),
    Cipher,
}

fn random<const N: usize>() -> Result<[u8; N], getrandom::Error> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes)?;
    Ok(bytes)
}

fn cipher(key: &[u8; KEY_LEN]) -> Aes256Gcm {
    Aes256Gcm::new(&Key::<Aes256Gcm>::from(*key))
}

/// AES-256-GCM under a fresh random nonce; the ciphertext carries its tag.
fn encrypt(
    cipher: &Aes256Gcm,
    aad: &[u8],
    plaintext: &[u8],
) -> Result<([u8; NONCE_LEN], Vec<u8>), CipherError> {
    let nonce: [u8; NONCE_LEN] = random().map_err(|e| CipherError::Random(e.to_string()))?;
    let ciphertext = cipher
        .encrypt(
            &Nonce::<Aes256Gcm>::from(nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| CipherError::Cipher)?;
    Ok((nonce, ciphertext))
}

/// `None` when the key, the associated data or the ciphertext do not fit together.
fn decrypt(
    cipher: &Aes256Gcm,
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    ciphertext: &[u8],
) -> Option<Vec<u8>> {
    cipher
        .decrypt(
            &Nonce::<Aes256Gcm>::from(*nonce),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .ok()
}

/// The master keys that wrap data keys (DESIGN §8): the first wraps, every one unwraps, so the
/// master key can rotate — put the new key first and keep the old ones until every data key
/// has been re-wrapped.
///
/// A wrapped key is `<id>:` followed by the 12-byte nonce and the AES-256-GCM ciphertext of the
/// data key, with `org_id || subject` as associated data, so a wrapped key copied to another
/// row does not unwrap.
#[derive(Clone, PartialEq, Eq)]
pub struct Keyring {
    /// Never empty; the first is the current one.
    keys: Vec<MasterKey>,
}

#[derive(Clone, PartialEq, Eq)]
struct MasterKey {
    id: String,
    key: [u8; KEY_LEN],
}

/// The id of [`Keyring::development`]'s key.
pub const DEVELOPMENT_KEY_ID: &str = "dev";
/// Public on purpose (it is in the source): data wrapped under it is not protected. Local runs
/// and tests only.
const DEVELOPMENT_KEY: [u8; KEY_LEN] = *b"corbi-development-key-not-secret";
const MAX_ID_LEN: usize = 16;

/// Why a keyring spec or a wrapped key cannot be used. Never shows key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyringError {
    #[error("expected `<id>:<base64 of 32 bytes>`, several separated by commas (the first wraps)")]
    Empty,
    #[error("entry {position}: expected `<id>:<base64 of 32 bytes>`")]
    MissingId { position: usize },
    #[error("entry {position}: a key id is 1 to 16 letters, digits, `-` or `_`")]
    BadId { position: usize },
    #[error("key `{id}`: not valid base64")]
    BadBase64 { id: String },
    #[error("key `{id}`: expected 32 bytes (44 base64 characters), got {len} bytes")]
    WrongLength { id: String, len: usize },
    #[error("key `{id}` appears twice")]
    DuplicateId { id: String },
    #[error("a data key is wrapped under master key `{id}`, which the keyring does not hold")]
    UnknownKeyId { id: String },
    #[error("wrapped data key is malformed")]
    MalformedWrapped,
    #[error(
        "wrapped data key does not open with master key `{id}` \
         (another organisation's or subject's key, or tampered)"
    )]
    Unwrap { id: String },
    #[error("the OS random source failed: {0}")]
    Random(String),
    #[error("a data key could not be wrapped")]
    Wrap,
}

impl Keyring {
    /// Reads `<id>:<base64 of 32 bytes>[,<id>:<base64>…]`; the first key is the current one.
    pub fn parse(spec: &str) -> Result<Keyring, KeyringError> {
        if spec.trim().is_empty() {
            return Err(KeyringError::Empty);
        }
        let mut keys: Vec<MasterKey> = Vec::new();
        for (index, entry) in spec.split(',').enumerate() {
            let position = index + 1;
            let (id, encoded) = entry
                .trim()
                .split_once(':')
                .ok_or(KeyringError::MissingId { position })?;
            if !is_valid_id(id) {
                return Err(KeyringError::BadId { position });
            }
            let bytes = BASE64
                .decode(encoded.trim())
                .map_err(|_| KeyringError::BadBase64 { id: id.into() })?;
            let key: [u8; KEY_LEN] =
                bytes
                    .as_slice()
                    .try_into()
                    .map_err(|_| KeyringError::WrongLength {
                        id: id.into(),
                        len: bytes.len(),
                    })?;
            if keys.iter().any(|k| k.id == id) {
                return Err(KeyringError::DuplicateId { id: id.into() });
            }
            keys.push(MasterKey { id: id.into(), key });
        }
        Ok(Keyring { keys })
    }

    /// A fixed key with id `dev`, for local runs. **It is not secret** — it is in the source —
    /// so production must set its own.
    pub fn development() -> Keyring {
        Keyring {
            keys: vec![MasterKey {
                id: DEVELOPMENT_KEY_ID.into(),
                key: DEVELOPMENT_KEY,
            }],
        }
    }

    /// Whether new data keys are wrapped under the public development key.
    pub fn is_development(&self) -> bool {
        self.current().key == DEVELOPMENT_KEY
    }

    /// The id of the key that wraps new data keys.
    pub fn current_id(&self) -> &str {
        &self.current().id
    }

    /// Every key id, the current one first.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.id.as_str())
    }

    /// `key` wrapped under the current master key, bound to `org_id` and `subject`.
    pub fn wrap(
        &self,
        key: &DataKey,
        org_id: Uuid,
        subject: Uuid,
    ) -> Result<Vec<u8>, KeyringError> {
        let master = self.current();
        let (nonce, ciphertext) = encrypt(
            &cipher(&master.key),
            &wrap_aad(org_id, subject),
            key.as_bytes(),
        )
        .map_err(|e| match e {
            CipherError::Random(e) => KeyringError::Random(e),
            CipherError::Cipher => KeyringError::Wrap,
        })?;
        let mut wrapped = Vec::with_capacity(master.id.len() + 1 + NONCE_LEN + ciphertext.len());
        wrapped.extend_from_slice(master.id.as_bytes());
        wrapped.push(b':');
        wrapped.extend_from_slice(&nonce);
        wrapped.extend_from_slice(&ciphertext);
        Ok(wrapped)
    }

    /// The data key in `wrapped`, under whichever master key its prefix names.
    pub fn unwrap(
        &self,
        wrapped: &[u8],
        org_id: Uuid,
        subject: Uuid,
    ) -> Result<DataKey, KeyringError> {
        // Ids never contain `:`, so the first one ends the prefix.
        let colon = wrapped
            .iter()
            .take(MAX_ID_LEN + 1)
            .position(|b| *b == b':')
            .ok_or(KeyringError::MalformedWrapped)?;
        let id = std::str::from_utf8(&wrapped[..colon])
            .ok()
            .filter(|id| is_valid_id(id))
            .ok_or(KeyringError::MalformedWrapped)?;
        let rest = &wrapped[colon + 1..];
        if rest.len() != NONCE_LEN + KEY_LEN + TAG_LEN {
            return Err(KeyringError::MalformedWrapped);
        }
        let master = self
            .keys
            .iter()
            .find(|k| k.id == id)
            .ok_or_else(|| KeyringError::UnknownKeyId { id: id.into() })?;
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce
            .try_into()
            .map_err(|_| KeyringError::MalformedWrapped)?;
        let plaintext = decrypt(
            &cipher(&master.key),
            &nonce,
            &wrap_aad(org_id, subject),
            ciphertext,
        )
        .ok_or_else(|| KeyringError::Unwrap { id: id.into() })?;
        let key: [u8; KEY_LEN] = plaintext
            .as_slice()
            .try_into()
            .map_err(|_| KeyringError::MalformedWrapped)?;
        Ok(DataKey(key))
    }

    fn current(&self) -> &MasterKey {
        // `parse` and `development` never build an empty keyring.
        &self.keys[0]
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("ids", &self.ids().collect::<Vec<_>>())
            .field("development", &self.is_development())
            .finish()
    }
}

fn wrap_aad(org_id: Uuid, subject: Uuid) -> [u8; 32] {
    let mut aad = [0u8; 32];
    aad[..16].copy_from_slice(org_id.as_bytes());
    aad[16..].copy_from_slice(subject.as_bytes());
    aad
}

fn is_valid_id(id: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn unwrapped_shows_opened_values_in_the_clear_and_nothing_sealed_or_erased() {
        let data = json!({
            "full_name": {"$personal": "Ana"},
            "email": {"$sealed": {"v": 1, "n": "", "c": ""}},
            "notes": {"$erased": true},
            "tags": ["vip", {"$personal": {"nested": [1, {"$personal": 2}]}}],
            "custom_fields": {"size": 3},
            "whatsapp": null,
        });
        let shown = serde_json::to_value(Unwrapped(&data)).expect("serializes");
        assert_eq!(
            shown,
            json!({
                "full_name": "Ana",
                "email": null,
                "notes": null,
                "tags": ["vip", {"nested": [1, 2]}],
                "custom_fields": {"size": 3},
                "whatsapp": null,
            })
        );
    }

    fn key() -> DataKey {
        DataKey::generate().expect("random key")
    }

    fn b64(bytes: &[u8]) -> String {
        BASE64.encode(bytes)
    }

    fn nested() -> Value {
        json!({
            "contact_id": "c-1",
            "full_name": {"$personal": "Ada Lovelace"},
            "email": null,
            "phone": {"$personal": "+447700900123"},
            "identities": [
                {"channel": "email", "address": {"$personal": {"value": "ada@example.com"}}},
                {"channel": "telegram", "chat_id": 42},
            ],
            "tags": ["vip", {"$personal": 7}],
            "gone": {"$erased": true},
        })
    }

    #[test]
    fn seal_hides_every_personal_field_and_open_restores_them() {
        let subject = Uuid::now_v7();
        let key = key();
        let original = nested();
        let mut data = original.clone();
        assert!(has_personal(&data));
        assert!(!has_sealed(&data));

        seal(&mut data, subject, &key).expect("seals");
        let text = data.to_string();
        for secret in ["Ada", "+4477", "ada@example.com"] {
            assert!(!text.contains(secret), "{secret} left in the clear: {text}");
        }
        assert!(!has_personal(&data));
        assert!(has_sealed(&data));
        assert_eq!(data["contact_id"], "c-1");
        assert_eq!(data["identities"][1], original["identities"][1]);
        assert_eq!(data["gone"], json!({"$erased": true}));
        assert_eq!(data["full_name"]["$sealed"]["v"], 1);

        open(&mut data, subject, Some(&key)).expect("opens");
        assert_eq!(data, original);
    }

    #[test]
    fn every_seal_uses_a_fresh_nonce() {
        let (subject, key) = (Uuid::now_v7(), key());
        let mut a = json!({"$personal": "same"});
        let mut b = a.clone();
        seal(&mut a, subject, &key).expect("seals");
        seal(&mut b, subject, &key).expect("seals");
        assert_ne!(a, b);
    }

    #[test]
    fn without_the_key_every_sealed_field_reads_as_erased() {
        let (subject, key) = (Uuid::now_v7(), key());
        let mut data = nested();
        seal(&mut data, subject, &key).expect("seals");
        open(&mut data, subject, None).expect("opens as erased");
        assert!(!has_sealed(&data));
        assert_eq!(data["full_name"], json!({"$erased": true}));
        assert_eq!(data["identities"][0]["address"], json!({"$erased": true}));
        assert_eq!(data["tags"], json!(["vip", {"$erased": true}]));
        assert_eq!(data["contact_id"], "c-1");
    }

    #[test]
    fn a_tampered_ciphertext_is_an_error_not_an_erasure() {
        let (subject, key) = (Uuid::now_v7(), key());
        let mut data = json!({"name": {"$personal": "Ada"}});
        seal(&mut data, subject, &key).expect("seals");
        let c = data["name"]["$sealed"]["c"]
            .as_str()
            .expect("ciphertext")
            .to_string();
        let mut bytes = BASE64.decode(c).expect("base64");
        bytes[0] ^= 1;
        data["name"]["$sealed"]["c"] = json!(b64(&bytes));
        let error = open(&mut data, subject, Some(&key)).expect_err("tampered");
        assert!(matches!(error, PersonalError::Decrypt { .. }), "{error}");
    }

    #[test]
    fn a_ciphertext_moved_to_another_subject_or_key_does_not_open() {
        let (subject, key) = (Uuid::now_v7(), key());
        let mut data = json!({"name": {"$personal": "Ada"}});
        seal(&mut data, subject, &key).expect("seals");
        let mut moved = data.clone();
        let error = open(&mut moved, Uuid::now_v7(), Some(&key)).expect_err("other subject");
        assert!(matches!(error, PersonalError::Decrypt { .. }), "{error}");
        let error = open(&mut data, subject, Some(&self::key())).expect_err("other key");
        assert!(matches!(error, PersonalError::Decrypt { .. }), "{error}");
    }

    #[test]
    fn malformed_wrappers_are_rejected() {
        let (subject, key) = (Uuid::now_v7(), key());
        let mut mixed = json!({"x": {"$personal": "Ada", "extra": 1}});
        assert!(matches!(
            seal(&mut mixed, subject, &key),
            Err(PersonalError::Malformed(_))
        ));
        let mut future = json!({"$sealed": {"v": 2, "n": "", "c": ""}});
        assert!(matches!(
            open(&mut future, subject, Some(&key)),
            Err(PersonalError::UnsupportedVersion(2))
        ));
        let mut bad_nonce = json!({"$sealed": {"v": 1, "n": b64(&[0; 5]), "c": ""}});
        assert!(matches!(
            open(&mut bad_nonce, subject, Some(&key)),
            Err(PersonalError::Malformed(_))
        ));
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct ContactCreated {
        contact_id: String,
        full_name: Personal<String>,
        #[serde(default)]
        email: Option<Personal<String>>,
        #[serde(default)]
        nickname: Option<Personal<String>>,
        addresses: Vec<Address>,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Address {
        city: String,
        street: Personal<String>,
    }

    fn contact() -> ContactCreated {
        ContactCreated {
            contact_id: "c-1".into(),
            full_name: "Ada Lovelace".to_string().into(),
            email: Some(Personal::Clear("ada@example.com".into())),
            nickname: None,
            addresses: vec![Address {
                city: "London".into(),
                street: Personal::Clear("12 St James's Square".into()),
            }],
        }
    }

    #[test]
    fn typed_events_round_trip_through_seal_and_open() {
        let (subject, key) = (Uuid::now_v7(), key());
        let mut data = serde_json::to_value(contact()).expect("serializes");
        assert_eq!(data["full_name"], json!({"$personal": "Ada Lovelace"}));
        seal(&mut data, subject, &key).expect("seals");
        let error = serde_json::from_value::<ContactCreated>(data.clone()).expect_err("sealed");
        assert!(error.to_string().contains("must be opened"), "{error}");

        let mut erased = data.clone();
        open(&mut data, subject, Some(&key)).expect("opens");
        let back: ContactCreated = serde_json::from_value(data).expect("decodes");
        assert_eq!(back, contact());

        open(&mut erased, subject, None).expect("opens as erased");
        let back: ContactCreated = serde_json::from_value(erased).expect("decodes");
        assert_eq!(back.contact_id, "c-1");
        assert!(back.full_name.is_erased());
        assert_eq!(back.email, Some(Personal::Erased));
        assert_eq!(back.nickname, None);
        assert_eq!(back.addresses[0].city, "London");
        assert_eq!(back.addresses[0].street.clear(), None);
    }

    #[test]
    fn personal_serde_shapes() {
        let clear: Personal<u32> = 5.into();
        assert_eq!(
            serde_json::to_value(&clear).expect("ser"),
            json!({"$personal": 5})
        );
        assert_eq!(
            serde_json::to_value(Personal::<u32>::Erased).expect("ser"),
            json!({"$erased": true})
        );
        let back: Personal<u32> = serde_json::from_value(json!({"$erased": true})).expect("de");
        assert_eq!(back, Personal::Erased);
        assert_eq!(clear.clone().map(|n| n * 2).into_clear(), Some(10));
        for bad in [
            json!({}),
            json!({"$erased": false}),
            json!({"$personal": 1, "$erased": true}),
            json!({"other": 1}),
            json!("plain"),
        ] {
            assert!(
                serde_json::from_value::<Personal<u32>>(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn data_key_debug_hides_the_key() {
        let key = DataKey::from_bytes([0xab; 32]);
        assert_eq!(format!("{key:?}"), "DataKey(***)");
        assert_eq!(key.as_bytes(), &[0xab; 32]);
    }

    fn spec(id: &str, byte: u8) -> String {
        format!("{id}:{}", b64(&[byte; 32]))
    }

    #[test]
    fn keyring_parse_errors() {
        assert_eq!(Keyring::parse(""), Err(KeyringError::Empty));
        assert_eq!(Keyring::parse("  "), Err(KeyringError::Empty));
        assert_eq!(
            Keyring::parse(&b64(&[1; 32])),
            Err(KeyringError::MissingId { position: 1 })
        );
        assert_eq!(
            Keyring::parse(&format!("{},", spec("k1", 1))),
            Err(KeyringError::MissingId { position: 2 })
        );
        assert_eq!(
            Keyring::parse(&spec("", 1)),
            Err(KeyringError::BadId { position: 1 })
        );
        assert_eq!(
            Keyring::parse(&spec("has space", 1)),
            Err(KeyringError::BadId { position: 1 })
        );
        assert_eq!(
            Keyring::parse(&spec("a-very-long-key-id", 1)),
            Err(KeyringError::BadId { position: 1 })
        );
        assert_eq!(
            Keyring::parse("k1:not*base64"),
            Err(KeyringError::BadBase64 { id: "k1".into() })
        );
        assert_eq!(
            Keyring::parse(&format!("k1:{}", b64(&[1; 16]))),
            Err(KeyringError::WrongLength {
                id: "k1".into(),
                len: 16
            })
        );
        assert_eq!(
            Keyring::parse(&format!("{},{}", spec("k1", 1), spec("k1", 2))),
            Err(KeyringError::DuplicateId { id: "k1".into() })
        );
        let ring =
            Keyring::parse(&format!(" {} , {} ", spec("k2", 2), spec("k_1-a", 1))).expect("valid");
        assert_eq!(ring.current_id(), "k2");
        assert_eq!(ring.ids().collect::<Vec<_>>(), ["k2", "k_1-a"]);
        assert!(!ring.is_development());
    }

    #[test]
    fn keyring_debug_and_errors_show_no_key_material() {
        let secret = b64(&[7; 32]);
        let ring = Keyring::parse(&format!("k1:{secret}")).expect("valid");
        let shown = format!("{ring:?}");
        assert!(!shown.contains(&secret), "{shown}");
        assert!(shown.contains("k1"), "{shown}");
        let error = Keyring::parse(&secret).expect_err("no id");
        assert!(!error.to_string().contains(&secret[..8]), "{error}");
    }

    #[test]
    fn wrap_unwrap_round_trip_and_rotation() {
        let (org, subject, key) = (Uuid::now_v7(), Uuid::now_v7(), key());
        let old = Keyring::parse(&spec("k1", 1)).expect("valid");
        let wrapped = old.wrap(&key, org, subject).expect("wraps");
        assert!(wrapped.starts_with(b"k1:"));
        assert_eq!(old.unwrap(&wrapped, org, subject).expect("unwraps"), key);

        let rotated =
            Keyring::parse(&format!("{},{}", spec("k2", 2), spec("k1", 1))).expect("valid");
        assert_eq!(
            rotated.unwrap(&wrapped, org, subject).expect("old key"),
            key
        );
        let rewrapped = rotated.wrap(&key, org, subject).expect("wraps");
        assert!(rewrapped.starts_with(b"k2:"));

        let forgotten = Keyring::parse(&spec("k2", 2)).expect("valid");
        let error = forgotten
            .unwrap(&wrapped, org, subject)
            .expect_err("k1 is gone");
        assert_eq!(error, KeyringError::UnknownKeyId { id: "k1".into() });
        assert!(error.to_string().contains("`k1`"), "{error}");

        // Same id, other bytes: the key was replaced rather than rotated.
        let replaced = Keyring::parse(&spec("k1", 9)).expect("valid");
        assert_eq!(
            replaced.unwrap(&wrapped, org, subject),
            Err(KeyringError::Unwrap { id: "k1".into() })
        );
    }

    #[test]
    fn a_wrapped_key_is_bound_to_its_org_and_subject() {
        let (org, subject, key) = (Uuid::now_v7(), Uuid::now_v7(), key());
        let ring = Keyring::development();
        let wrapped = ring.wrap(&key, org, subject).expect("wraps");
        assert_eq!(
            ring.unwrap(&wrapped, Uuid::now_v7(), subject),
            Err(KeyringError::Unwrap { id: "dev".into() })
        );
        assert_eq!(
            ring.unwrap(&wrapped, org, Uuid::now_v7()),
            Err(KeyringError::Unwrap { id: "dev".into() })
        );
        let mut tampered = wrapped.clone();
        if let Some(last) = tampered.last_mut() {
            *last ^= 1;
        }
        assert!(ring.unwrap(&tampered, org, subject).is_err());
        assert_eq!(
            ring.unwrap(b"dev:short", org, subject),
            Err(KeyringError::MalformedWrapped)
        );
        assert_eq!(
            ring.unwrap(b"no prefix at all, no colon", org, subject),
            Err(KeyringError::MalformedWrapped)
        );
    }

    #[test]
    fn the_development_keyring_is_recognisable() {
        let ring = Keyring::development();
        assert!(ring.is_development());
        assert_eq!(ring.current_id(), DEVELOPMENT_KEY_ID);
        let spec = format!("dev:{}", b64(&DEVELOPMENT_KEY));
        assert!(Keyring::parse(&spec).expect("valid").is_development());
    }
}
