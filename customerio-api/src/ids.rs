//! Identifiers of people ([`Identifier`]) and event ids ([`EventId`], ULIDs).

use std::time::{SystemTime, UNIX_EPOCH};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::limits::{ValidationError, check_identifier_value};

/// Characters left unescaped in a path segment: RFC 3986 unreserved (`A-Z a-z 0-9 - . _ ~`), as JavaScript's
/// `encodeURIComponent` minus its few extras. So `+` becomes `%2B` (never read as a space), `@` `%40`, `/` `%2F`.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Percent-encodes one path segment.
#[must_use]
pub fn encode_segment(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// How to address a person: by `id`, `email` or `cio_id`.
///
/// In a v1 path it renders as the value itself, with `cio_id` prefixed `cio_` and everything URL-encoded
/// ([`Identifier::path_segment`]); in v2 and merge bodies as `{"id": …}`, `{"email": …}` or `{"cio_id": …}` (no
/// prefix). Customer.io tells an id from an email "by the shape of the value", so an `id` containing `@` is read as
/// an email by the v1 path; use v2 for such ids.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Identifier {
    /// Your id for the person.
    Id(String),
    /// Their email address.
    Email(String),
    /// Customer.io's own id (without the `cio_` prefix).
    CioId(String),
}

impl Identifier {
    /// By `id`.
    pub fn id(v: impl Into<String>) -> Self {
        Self::Id(v.into())
    }

    /// By `email`.
    pub fn email(v: impl Into<String>) -> Self {
        Self::Email(v.into())
    }

    /// By `cio_id` (pass it without the `cio_` prefix).
    pub fn cio_id(v: impl Into<String>) -> Self {
        Self::CioId(v.into())
    }

    /// The raw value.
    #[must_use]
    pub fn value(&self) -> &str {
        match self {
            Self::Id(v) | Self::Email(v) | Self::CioId(v) => v,
        }
    }

    /// `"id"`, `"email"` or `"cio_id"` (the v2 key, and the App API's `id_type`).
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Id(_) => "id",
            Self::Email(_) => "email",
            Self::CioId(_) => "cio_id",
        }
    }

    /// The URL-encoded v1 path segment: the value, or `cio_<value>`.
    #[must_use]
    pub fn path_segment(&self) -> String {
        match self {
            Self::CioId(v) => encode_segment(&format!("cio_{v}")),
            Self::Id(v) | Self::Email(v) => encode_segment(v),
        }
    }

    /// Checks the value against the 150-byte limit.
    ///
    /// # Errors
    /// [`ValidationError::EmptyIdentifier`], [`ValidationError::IdentifierTooLong`].
    pub fn validate(&self) -> Result<(), ValidationError> {
        check_identifier_value(self.value())
    }

    /// `{"<kind>": "<value>"}`.
    #[must_use]
    pub fn to_json(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        m.insert(self.kind().to_owned(), serde_json::Value::String(self.value().to_owned()));
        serde_json::Value::Object(m)
    }
}

impl Serialize for Identifier {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry(self.kind(), self.value())?;
        m.end()
    }
}

impl<'de> Deserialize<'de> for Identifier {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let m = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
        let get = |k: &str| m.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        if let Some(v) = get("id") {
            Ok(Self::Id(v))
        } else if let Some(v) = get("email") {
            Ok(Self::Email(v))
        } else if let Some(v) = get("cio_id") {
            Ok(Self::CioId(v))
        } else {
            Err(serde::de::Error::custom("expected one of id, email, cio_id"))
        }
    }
}

/// An event id: a ULID that Customer.io uses to deduplicate events ("If an event repeats a value we've already
/// received, we ignore the duplicate"). With it a retried or replayed `track` never double-counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(pub ulid::Ulid);

impl EventId {
    /// A fresh random ULID (now).
    #[must_use]
    pub fn new() -> Self {
        Self(ulid::Ulid::new())
    }

    /// A deterministic ULID for replays: the time part is `at` (milliseconds, capped to the ULID's 48 bits), the
    /// random part the first 80 bits of `SHA-256(source_key)`. The same key and time always give the same id, so a
    /// replay of the same source record is deduplicated by Customer.io. Pick the source's own event time for `at`
    /// (Customer.io staff say the embedded time is not used; any unique ULID works).
    #[must_use]
    pub fn from_source_key(source_key: &str, at: SystemTime) -> Self {
        let ms = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let ms = u64::try_from(ms).unwrap_or(u64::MAX).min((1u64 << 48) - 1);
        let digest = Sha256::digest(source_key.as_bytes());
        let mut bytes = [0u8; 16];
        bytes[6..].copy_from_slice(&digest[..10]);
        let random = u128::from_be_bytes(bytes);
        Self(ulid::Ulid::from_parts(ms, random))
    }

    /// A deterministic ULID from the key alone (time part zero): for sources whose event time may differ between
    /// deliveries of the same logical event.
    #[must_use]
    pub fn from_key(source_key: &str) -> Self {
        Self::from_source_key(source_key, UNIX_EPOCH)
    }

    /// Like [`EventId::from_source_key`] with the time in unix seconds.
    #[must_use]
    pub fn from_source_key_unix(source_key: &str, unix_seconds: i64) -> Self {
        let at = UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(unix_seconds).unwrap_or(0));
        Self::from_source_key(source_key, at)
    }
}

impl Default for EventId {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Display for EventId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

impl std::str::FromStr for EventId {
    type Err = ulid::DecodeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ulid::Ulid::from_string(s).map(Self)
    }
}

api_core::string_id!(
    /// A delivery id (`RPILAgUBcRhIBqSfeiIwdIYJKxTY`), from transactional sends and reporting webhooks.
    DeliveryId
);

api_core::string_id!(
    /// An object type id (`"1"`): the workspace's numbering of its object types (Track spec `object_type_id`, a
    /// string).
    ObjectTypeId
);

api_core::string_id!(
    /// Your id for an object (`"acme"`), unique within its object type (Track spec `object_id`).
    ObjectId
);

api_core::int_id!(
    /// A segment id (App API `segment_id`, an integer).
    SegmentId
);

api_core::int_id!(
    /// An API-triggered broadcast's id (`broadcast_id`).
    BroadcastId
);

api_core::int_id!(
    /// A broadcast trigger's id (the `id` a trigger returns; `trigger_id` in reporting webhooks).
    TriggerId
);

api_core::int_id!(
    /// A reporting webhook's id (App API `webhook_id`).
    WebhookId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(Identifier::email("ann+tag@example.com").path_segment(), "ann%2Btag%40example.com");
        assert_eq!(Identifier::id("a/b c").path_segment(), "a%2Fb%20c");
        assert_eq!(Identifier::cio_id("d9c106000001").path_segment(), "cio_d9c106000001");
        assert_eq!(Identifier::id("42-x_y.z~").path_segment(), "42-x_y.z~");
    }

    #[test]
    fn serializes_as_v2_identifiers() {
        assert_eq!(serde_json::to_string(&Identifier::cio_id("a3000001")).unwrap(), r#"{"cio_id":"a3000001"}"#);
        let back: Identifier = serde_json::from_str(r#"{"email":"e@x.io"}"#).unwrap();
        assert_eq!(back, Identifier::email("e@x.io"));
    }

    #[test]
    fn deterministic_event_ids() {
        let at = UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let a = EventId::from_source_key("kommo:lead:1:status:142", at);
        let b = EventId::from_source_key("kommo:lead:1:status:142", at);
        let c = EventId::from_source_key("kommo:lead:1:status:143", at);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.0.timestamp_ms(), 1_700_000_000_000);
        assert_eq!(a.to_string().len(), 26);
        // python3 -c "import hashlib;print(hashlib.sha256(b'kommo:lead:1:status:142').digest()[:10].hex())"
        assert_eq!(a.0.random(), 0xfc8e_ba0a_155c_79e6_962f);
        assert_eq!(EventId::from_source_key_unix("k", 1_700_000_000), EventId::from_source_key("k", at));
        assert_eq!(EventId::from_key("k"), EventId::from_key("k"));
        assert_eq!(EventId::from_key("k").0.timestamp_ms(), 0);
        assert_ne!(EventId::from_key("k"), EventId::from_key("j"));
        let parsed: EventId = a.to_string().parse().unwrap();
        assert_eq!(parsed, a);
    }
}
