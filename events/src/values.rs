//! Value types parsed once at the edge: a handler holding an [`Email`], a [`Role`] or a
//! [`PhoneE164`] never checks it again.

use std::fmt::{self, Write as _};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An email address, trimmed and lowercased, so one address has one spelling.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

/// Why a string is not an [`Email`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("is empty")]
    Empty,
    #[error("is longer than 254 characters")]
    TooLong,
    #[error("is not an email address like name@example.com")]
    Malformed,
}

impl Email {
    /// The longest address SMTP carries (RFC 5321's path limit less the angle brackets).
    pub const MAX_LEN: usize = 254;

    pub fn parse(raw: &str) -> Result<Email, EmailError> {
        let email = raw.trim().to_lowercase();
        if email.is_empty() {
            return Err(EmailError::Empty);
        }
        if email.len() > Self::MAX_LEN {
            return Err(EmailError::TooLong);
        }
        let Some((local, domain)) = email.rsplit_once('@') else {
            return Err(EmailError::Malformed);
        };
        let labels_ok = domain.split('.').count() >= 2
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_alphanumeric() || c == '-')
            });
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .chars()
                .all(|c| c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c));
        if !labels_ok || !local_ok {
            return Err(EmailError::Malformed);
        }
        Ok(Email(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Email {
    type Error = EmailError;

    fn try_from(raw: String) -> Result<Email, EmailError> {
        Email::parse(&raw)
    }
}

impl From<Email> for String {
    fn from(email: Email) -> String {
        email.0
    }
}

/// What a member (or an API key) may do in an organisation. Viewers read; staff also write
/// business data; admins also manage members, invitations, API keys, integrations, approvals and
/// deletions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Staff,
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Admin, Role::Staff, Role::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Staff => "staff",
            Role::Viewer => "viewer",
        }
    }

    /// Whether this role includes everything `needed` may do.
    pub fn allows(self, needed: Role) -> bool {
        self >= needed
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("is not a role: expected admin, staff or viewer")]
pub struct RoleError;

impl FromStr for Role {
    type Err = RoleError;

    fn from_str(raw: &str) -> Result<Role, RoleError> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == raw)
            .ok_or(RoleError)
    }
}

/// A phone number in E.164 form (`+351912345678`), so one number has one spelling whatever way
/// it was typed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(into = "String")]
pub struct PhoneE164(String);

/// Why a string is not a [`PhoneE164`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("must be a phone number, e.g. +351912345678")]
    Malformed,
    #[error(
        "must start with + and the country code, as the organisation has no default phone region"
    )]
    NoRegion,
    #[error(
        "must start with + and the country code, as the organisation's default phone region \
         {0:?} is not an ISO 3166-1 alpha-2 region with a numbering plan"
    )]
    UnknownRegion(String),
    #[error("must be a valid phone number for its country")]
    Invalid,
    #[error("must be a phone number without an extension")]
    Extension,
}

impl PhoneE164 {
    /// E.164 allows at most 15 digits after the `+`.
    const MAX_DIGITS: usize = 15;

    /// Reads `raw` as typed by a person or a provider. A number starting with `+` carries its
    /// country code; any other is read in `default_region` (ISO 3166-1 alpha-2, e.g. `PT`), the
    /// organisation's default, so `912 345 678` in `PT` is `+351912345678`.
    pub fn parse(raw: &str, default_region: Option<&str>) -> Result<PhoneE164, PhoneError> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(PhoneError::Malformed);
        }
        let region = if raw.starts_with('+') {
            None
        } else {
            let code = default_region.ok_or(PhoneError::NoRegion)?;
            let id = phonenumber::country::Id::from_str(&code.trim().to_ascii_uppercase())
                .map_err(|_| PhoneError::UnknownRegion(code.to_owned()))?;
            Some(id)
        };
        let number = phonenumber::parse(region, raw).map_err(|_| PhoneError::Malformed)?;
        if number.extension().is_some() {
            return Err(PhoneError::Extension);
        }
        if !phonenumber::is_valid(&number) {
            return Err(PhoneError::Invalid);
        }
        // Formatting fails only for an unknown country code, which a valid number never has;
        // `write!` keeps that an error rather than the panic `to_string` would make of it.
        let mut e164 = String::new();
        write!(e164, "{}", number.format().mode(phonenumber::Mode::E164))
            .map_err(|_| PhoneError::Invalid)?;
        Ok(PhoneE164(e164))
    }

    /// A number read back from the log: only its E.164 shape is checked, not the numbering plan,
    /// so an update of the phone metadata never makes recorded history unreadable.
    fn from_recorded(raw: String) -> Result<PhoneE164, PhoneError> {
        let digits = raw.strip_prefix('+').ok_or(PhoneError::Malformed)?;
        let shape_ok = (2..=Self::MAX_DIGITS).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        if !shape_ok {
            return Err(PhoneError::Malformed);
        }
        Ok(PhoneE164(raw))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PhoneE164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<PhoneE164> for String {
    fn from(phone: PhoneE164) -> String {
        phone.0
    }
}

impl<'de> Deserialize<'de> for PhoneE164 {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        PhoneE164::from_recorded(raw).map_err(serde::de::Error::custom)
    }
}

/// A Telegram chat id: positive for people, negative for groups and channels, never zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct TelegramChatId(i64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be a non-zero whole number, the Telegram chat id")]
pub struct TelegramChatIdError;

impl TelegramChatId {
    pub fn parse(raw: &str) -> Result<TelegramChatId, TelegramChatIdError> {
        let id = raw.trim().parse::<i64>().map_err(|_| TelegramChatIdError)?;
        TelegramChatId::try_from(id)
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for TelegramChatId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl TryFrom<i64> for TelegramChatId {
    type Error = TelegramChatIdError;

    fn try_from(id: i64) -> Result<TelegramChatId, TelegramChatIdError> {
        if id == 0 {
            return Err(TelegramChatIdError);
        }
        Ok(TelegramChatId(id))
    }
}

impl From<TelegramChatId> for i64 {
    fn from(id: TelegramChatId) -> i64 {
        id.0
    }
}

/// An Instagram id, scoped to the business account (IGSID) or the user's own: a numeric string,
/// kept as text because it outgrows JavaScript's safe integers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct InstagramId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be an Instagram id of 1 to {max} digits", max = InstagramId::MAX_LEN)]
pub struct InstagramIdError;

impl InstagramId {
    pub const MAX_LEN: usize = 32;

    pub fn parse(raw: &str) -> Result<InstagramId, InstagramIdError> {
        let id = raw.trim();
        if id.is_empty() || id.len() > Self::MAX_LEN || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(InstagramIdError);
        }
        Ok(InstagramId(id.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InstagramId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for InstagramId {
    type Error = InstagramIdError;

    fn try_from(raw: String) -> Result<InstagramId, InstagramIdError> {
        InstagramId::parse(&raw)
    }
}

impl From<InstagramId> for String {
    fn from(id: InstagramId) -> String {
        id.0
    }
}

/// A label on a contact, trimmed and lowercased, so `VIP` and `vip ` are one tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Tag(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must have 1 to {max} characters and no control characters", max = Tag::MAX_LEN)]
pub struct TagError;

impl Tag {
    pub const MAX_LEN: usize = 50;

    pub fn parse(raw: &str) -> Result<Tag, TagError> {
        let tag = raw.trim().to_lowercase();
        let length = tag.chars().count();
        if length == 0 || length > Self::MAX_LEN || tag.chars().any(char::is_control) {
            return Err(TagError);
        }
        Ok(Tag(tag))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Tag {
    type Error = TagError;

    fn try_from(raw: String) -> Result<Tag, TagError> {
        Tag::parse(&raw)
    }
}

impl From<Tag> for String {
    fn from(tag: Tag) -> String {
        tag.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_lowercased() {
        let email = Email::parse("  Ada.Lovelace+corbi@Example.COM ").expect("a valid email");
        assert_eq!(email.as_str(), "ada.lovelace+corbi@example.com");
        assert_eq!(
            serde_json::to_value(&email).expect("serializes"),
            "ada.lovelace+corbi@example.com"
        );
    }

    #[test]
    fn malformed_emails_are_rejected() {
        assert_eq!(Email::parse("   "), Err(EmailError::Empty));
        for bad in [
            "plain",
            "@example.com",
            "ada@",
            "ada@localhost",
            "ada@exa mple.com",
            "ada@-example.com",
            "ada@example..com",
            ".ada@example.com",
            "a..da@example.com",
            "ada lovelace@example.com",
            "ada@@example.com",
        ] {
            assert_eq!(Email::parse(bad), Err(EmailError::Malformed), "{bad}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert_eq!(Email::parse(&long), Err(EmailError::TooLong));
        assert!(serde_json::from_value::<Email>(serde_json::json!("nope")).is_err());
    }

    #[test]
    fn roles_parse_order_and_serialize_lowercase() {
        assert_eq!("staff".parse::<Role>(), Ok(Role::Staff));
        assert_eq!("owner".parse::<Role>(), Err(RoleError));
        assert_eq!("Admin".parse::<Role>(), Err(RoleError));
        assert!(Role::Admin.allows(Role::Staff));
        assert!(Role::Staff.allows(Role::Viewer));
        assert!(!Role::Viewer.allows(Role::Staff));
        assert!(!Role::Staff.allows(Role::Admin));
        assert_eq!(
            serde_json::to_value(Role::Viewer).expect("serializes"),
            "viewer"
        );
    }

    #[test]
    fn phones_become_e164_with_or_without_a_region() {
        let pt = |raw| PhoneE164::parse(raw, Some("PT"));
        let expected = "+351912345678";
        for raw in [
            "+351 912 345 678",
            "+351912345678",
            " 912 345 678 ",
            "912-345-678",
            "00351 912345678",
        ] {
            assert_eq!(pt(raw).expect("a valid number").as_str(), expected, "{raw}");
        }
        // A leading + needs no region and ignores the default one.
        let uk = PhoneE164::parse("+44 7911 123456", None).expect("a valid number");
        assert_eq!(uk.as_str(), "+447911123456");
        assert_eq!(
            PhoneE164::parse("+44 7911 123456", Some("PT")),
            Ok(uk.clone())
        );
        // Regions are read case-insensitively.
        assert_eq!(
            PhoneE164::parse("07911 123456", Some("gb")).expect("a valid number"),
            uk
        );
        assert_eq!(
            serde_json::to_value(&uk).expect("serializes"),
            "+447911123456"
        );
        let back: PhoneE164 =
            serde_json::from_value(serde_json::json!("+447911123456")).expect("deserializes");
        assert_eq!(back, uk);
    }

    #[test]
    fn bad_phones_say_why() {
        assert_eq!(
            PhoneE164::parse("912345678", None),
            Err(PhoneError::NoRegion)
        );
        assert_eq!(
            PhoneE164::parse("912345678", Some("XX")),
            Err(PhoneError::UnknownRegion("XX".into()))
        );
        for raw in ["", "   ", "call me", "+"] {
            assert_eq!(
                PhoneE164::parse(raw, Some("PT")),
                Err(PhoneError::Malformed),
                "{raw:?}"
            );
        }
        for raw in ["+351 12", "+351 912 345 678 999", "12"] {
            assert!(PhoneE164::parse(raw, Some("PT")).is_err(), "{raw:?}");
        }
        assert_eq!(
            PhoneE164::parse("+351 212 345 678 ext. 12", None),
            Err(PhoneError::Extension)
        );
        for stored in ["351912345678", "+", "+0123", "+35191234567891234", "+3519a"] {
            assert!(
                serde_json::from_value::<PhoneE164>(serde_json::json!(stored)).is_err(),
                "{stored}"
            );
        }
        assert_eq!(
            format!("whatsapp {}", PhoneError::Invalid),
            "whatsapp must be a valid phone number for its country"
        );
    }

    #[test]
    fn telegram_chat_ids_are_non_zero_integers_serialized_as_numbers() {
        let person = TelegramChatId::parse(" 123456789 ").expect("a valid id");
        assert_eq!(person.get(), 123_456_789);
        let group = TelegramChatId::parse("-1001234567890").expect("a valid id");
        assert_eq!(group.get(), -1_001_234_567_890);
        assert_eq!(
            serde_json::to_value(group).expect("serializes"),
            serde_json::json!(-1_001_234_567_890_i64)
        );
        let back: TelegramChatId =
            serde_json::from_value(serde_json::json!(-1_001_234_567_890_i64))
                .expect("deserializes");
        assert_eq!(back, group);
        for bad in ["", "0", "12.5", "abc", "99999999999999999999"] {
            assert_eq!(
                TelegramChatId::parse(bad),
                Err(TelegramChatIdError),
                "{bad}"
            );
        }
        assert!(serde_json::from_value::<TelegramChatId>(serde_json::json!(0)).is_err());
        assert!(serde_json::from_value::<TelegramChatId>(serde_json::json!("12")).is_err());
    }

    #[test]
    fn instagram_ids_are_digit_strings() {
        let id = InstagramId::parse(" 17841400000000001 ").expect("a valid id");
        assert_eq!(id.as_str(), "17841400000000001");
        assert_eq!(
            serde_json::to_value(&id).expect("serializes"),
            "17841400000000001"
        );
        assert!(InstagramId::parse(&"9".repeat(InstagramId::MAX_LEN)).is_ok());
        for bad in ["", "  ", "12a", "-12", "1 2", "１２", &"9".repeat(33)] {
            assert_eq!(InstagramId::parse(bad), Err(InstagramIdError), "{bad:?}");
        }
        assert!(serde_json::from_value::<InstagramId>(serde_json::json!("x1")).is_err());
    }

    #[test]
    fn tags_are_trimmed_lowercased_and_bounded() {
        let tag = Tag::parse("  VIP Client ").expect("a valid tag");
        assert_eq!(tag.as_str(), "vip client");
        assert_eq!(tag, Tag::parse("vip client").expect("a valid tag"));
        assert_eq!(
            serde_json::to_value(&tag).expect("serializes"),
            "vip client"
        );
        assert!(Tag::parse(&"é".repeat(Tag::MAX_LEN)).is_ok());
        for bad in ["", "   ", "a\tb", "a\nb", &"x".repeat(Tag::MAX_LEN + 1)] {
            assert_eq!(Tag::parse(bad), Err(TagError), "{bad:?}");
        }
        assert_eq!(
            format!("tags[0] {TagError}"),
            "tags[0] must have 1 to 50 characters and no control characters"
        );
    }
}
