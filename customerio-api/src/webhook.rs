//! Reporting webhooks: typed events ([`ReportingEvent`]) and signature verification ([`Verifier`]).
//!
//! Wire format (Customer.io's Webhooks spec): one JSON object per POST,
//! `{"event_id","object_type","metric","timestamp","data":{…}}`, with headers `X-CIO-Timestamp` (unix seconds) and
//! `X-CIO-Signature` = lowercase hex `HMAC-SHA256(signing key, "v0:" + timestamp + ":" + raw body)`.
//!
//! Delivery: Customer.io waits 4 s for a 2xx, retries for up to 7 days and holds later deliveries back until the
//! failed one succeeds. Acknowledge fast, queue the work, and deduplicate on [`ReportingEvent::dedup_key`]
//! (`event_id`).
//!
//! Customer.io documents no replay window. [`Verifier`] rejects timestamps more than
//! [`DEFAULT_TOLERANCE`] (7 days and 1 hour) from now: Customer.io retries a failed delivery for up to 7 days and
//! holds every later one back until it succeeds, and whether a retry is signed anew is not documented, so a
//! shorter window (n8n uses 5 minutes) could refuse a legitimate retry forever and block the queue behind it. The
//! cost: a captured request can be replayed within the window — deduplicate on `event_id`
//! ([`ReportingEvent::dedup_key`]), as sync-core's inbox does. Narrow it with [`Verifier::tolerance`] when
//! you know retries are re-signed.

use std::{sync::Arc, time::Duration};

use api_core::{
    Clock, DecodeError, SignatureError, SystemClock, Token,
    webhook::{check_timestamp, hmac_sha256, verify_hex},
};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// `X-CIO-Signature`.
pub const SIGNATURE_HEADER: &str = "x-cio-signature";
/// `X-CIO-Timestamp`.
pub const TIMESTAMP_HEADER: &str = "x-cio-timestamp";
/// Default timestamp tolerance, either way: Customer.io's 7-day retry period plus an hour (see the module docs).
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(7 * 24 * 3600 + 3600);

api_core::open_enum! {
    /// The kind of object an event is about (`object_type`).
    ObjectType {
        /// Subscription changes of a person.
        Customer = "customer",
        /// Email.
        Email = "email",
        /// Push.
        Push = "push",
        /// SMS (also WhatsApp sent via Twilio).
        Sms = "sms",
        /// WhatsApp.
        Whatsapp = "whatsapp",
        /// In-app message.
        InApp = "in_app",
        /// Slack.
        Slack = "slack",
        /// Campaign webhook action.
        Webhook = "webhook",
    }
}

api_core::open_enum! {
    /// What happened (`metric`).
    Metric {
        /// Draft created.
        Drafted = "drafted",
        /// Send attempted (and failed, to be retried).
        Attempted = "attempted",
        /// Sent.
        Sent = "sent",
        /// Delivered.
        Delivered = "delivered",
        /// Opened.
        Opened = "opened",
        /// A link was clicked (`data.href`).
        Clicked = "clicked",
        /// Converted.
        Converted = "converted",
        /// Unsubscribed.
        Unsubscribed = "unsubscribed",
        /// Subscribed.
        Subscribed = "subscribed",
        /// Subscription preferences changed (`data.content` holds them as a JSON string).
        CioSubscriptionPreferencesChanged = "cio_subscription_preferences_changed",
        /// Bounced.
        Bounced = "bounced",
        /// Dropped (suppressed).
        Dropped = "dropped",
        /// Marked as spam.
        Spammed = "spammed",
        /// Failed.
        Failed = "failed",
        /// Undeliverable.
        Undeliverable = "undeliverable",
        /// An SMS/WhatsApp reply.
        Replied = "replied",
    }
}

/// `data.identifiers`: `{id, email?, cio_id?}` (email and cio_id only in email-or-id workspaces).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Identifiers {
    /// Your id (may be null).
    #[serde(default, deserialize_with = "lenient_string", skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Email.
    #[serde(default, deserialize_with = "lenient_string", skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Customer.io id.
    #[serde(default, deserialize_with = "lenient_string", skip_serializing_if = "Option::is_none")]
    pub cio_id: Option<String>,
    /// Other members.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The `data` object. Every field is optional (the spec marks only `identifiers` required, and new fields appear
/// without notice); unknown fields are kept in `extra`. Integer ids also accept numeric strings.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct EventData {
    /// The person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifiers: Option<Identifiers>,
    /// Deprecated person id (blank if the person was deleted); prefer `identifiers`.
    #[serde(default, deserialize_with = "lenient_string", skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    /// `customer` events: the address.
    #[serde(default, deserialize_with = "lenient_string", skip_serializing_if = "Option::is_none")]
    pub email_address: Option<String>,
    /// The delivery.
    #[serde(default, deserialize_with = "lenient_string", skip_serializing_if = "Option::is_none")]
    pub delivery_id: Option<String>,
    /// The workflow action.
    #[serde(default, deserialize_with = "lenient_int", skip_serializing_if = "Option::is_none")]
    pub action_id: Option<i64>,
    /// Campaign.
    #[serde(default, deserialize_with = "lenient_int", skip_serializing_if = "Option::is_none")]
    pub campaign_id: Option<i64>,
    /// Broadcast.
    #[serde(default, deserialize_with = "lenient_int", skip_serializing_if = "Option::is_none")]
    pub broadcast_id: Option<i64>,
    /// Newsletter.
    #[serde(default, deserialize_with = "lenient_int", skip_serializing_if = "Option::is_none")]
    pub newsletter_id: Option<i64>,
    /// Newsletter variant.
    #[serde(default, deserialize_with = "lenient_int", skip_serializing_if = "Option::is_none")]
    pub content_id: Option<i64>,
    /// API-triggered broadcast trigger.
    #[serde(default, deserialize_with = "lenient_int", skip_serializing_if = "Option::is_none")]
    pub trigger_id: Option<i64>,
    /// Transactional message.
    #[serde(default, deserialize_with = "lenient_int", skip_serializing_if = "Option::is_none")]
    pub transactional_message_id: Option<i64>,
    /// Journey (a ULID string).
    #[serde(default, deserialize_with = "lenient_string", skip_serializing_if = "Option::is_none")]
    pub journey_id: Option<String>,
    /// Parent action.
    #[serde(default, deserialize_with = "lenient_int", skip_serializing_if = "Option::is_none")]
    pub parent_action_id: Option<i64>,
    /// The event that triggered the campaign.
    #[serde(default, deserialize_with = "lenient_string", skip_serializing_if = "Option::is_none")]
    pub trigger_event_id: Option<String>,
    /// Recipient address or number.
    #[serde(default, deserialize_with = "lenient_string", skip_serializing_if = "Option::is_none")]
    pub recipient: Option<String>,
    /// Email subject.
    #[serde(default, deserialize_with = "lenient_string", skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Clicked link.
    #[serde(default, deserialize_with = "lenient_string", skip_serializing_if = "Option::is_none")]
    pub href: Option<String>,
    /// Clicked link id.
    #[serde(default, deserialize_with = "lenient_int", skip_serializing_if = "Option::is_none")]
    pub link_id: Option<i64>,
    /// Email click by a machine (link scanner).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<bool>,
    /// Email open through a proxy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxied: Option<bool>,
    /// Email open by prefetching.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefetched: Option<bool>,
    /// Synthetic open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synthetic: Option<bool>,
    /// Why it failed/bounced/dropped.
    #[serde(default, deserialize_with = "lenient_string", skip_serializing_if = "Option::is_none")]
    pub failure_message: Option<String>,
    /// Message content (sent events with "Body Content"), or changed preferences as a JSON string.
    #[serde(default, deserialize_with = "lenient_string", skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Other fields (`headers`, `recipients`, `tracked_response`, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One reporting-webhook delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportingEvent {
    /// Unique id of the event (ULID-like): the dedup key.
    pub event_id: String,
    /// `email`, `customer`, ….
    pub object_type: ObjectType,
    /// `opened`, `clicked`, ….
    pub metric: Metric,
    /// Unix seconds.
    pub timestamp: i64,
    /// The details.
    #[serde(default)]
    pub data: EventData,
    /// Other top-level fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ReportingEvent {
    /// The dedup key: `event_id`.
    #[must_use]
    pub fn dedup_key(&self) -> &str {
        &self.event_id
    }

    /// The person's id, falling back to the deprecated `customer_id`.
    #[must_use]
    pub fn person_id(&self) -> Option<&str> {
        self.data
            .identifiers
            .as_ref()
            .and_then(|i| i.id.as_deref())
            .or(self.data.customer_id.as_deref())
            .filter(|s| !s.is_empty())
    }

    /// The person's email: `identifiers.email`, else `email_address` (customer events), else an email `recipient`.
    #[must_use]
    pub fn person_email(&self) -> Option<&str> {
        self.data
            .identifiers
            .as_ref()
            .and_then(|i| i.email.as_deref())
            .or(self.data.email_address.as_deref())
            .or_else(|| (self.object_type == ObjectType::Email).then_some(self.data.recipient.as_deref()).flatten())
            .filter(|s| !s.is_empty())
    }
}

/// Parses a reporting-webhook body.
///
/// # Errors
/// [`DecodeError`] naming the JSON path.
pub fn parse(body: &[u8]) -> Result<ReportingEvent, DecodeError> {
    api_core::decode_json(body)
}

/// The lowercase hex signature Customer.io sends for `body` at `timestamp`.
#[must_use]
pub fn sign(signing_key: &Token, timestamp: i64, body: &[u8]) -> String {
    hex::encode(hmac_sha256(signing_key.expose().as_bytes(), &[b"v0:", timestamp.to_string().as_bytes(), b":", body]))
}

/// Why a webhook was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// Signature missing, malformed, wrong, or timestamp outside the window.
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// Signed correctly but not a reporting event.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

/// Verifies `X-CIO-Signature` over the raw body, in constant time, with a timestamp window and an injectable clock.
#[derive(Debug, Clone)]
pub struct Verifier {
    key: Token,
    tolerance: Option<Duration>,
    clock: Arc<dyn Clock>,
}

impl Verifier {
    /// A verifier for the reporting webhook's signing key, with [`DEFAULT_TOLERANCE`] and the system clock.
    #[must_use]
    pub fn new(signing_key: Token) -> Self {
        Self { key: signing_key, tolerance: Some(DEFAULT_TOLERANCE), clock: Arc::new(SystemClock) }
    }

    /// How far a signature's timestamp may be from now, either side (default [`DEFAULT_TOLERANCE`]).
    #[must_use]
    pub fn tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = Some(tolerance);
        self
    }

    /// No time check, signature only: for a receiver that must take an event however late it comes (Customer.io
    /// holds every later reporting event until a failed one is accepted or expires after 7 days), relying on
    /// event-id deduplication against replays.
    #[must_use]
    pub fn any_age(mut self) -> Self {
        self.tolerance = None;
        self
    }

    /// Sets the clock (tests: `api_core::FixedClock`).
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Verifies header values and the raw body.
    ///
    /// # Errors
    /// [`SignatureError::Missing`] without a header; [`SignatureError::Malformed`] for a non-numeric timestamp or
    /// non-hex signature; [`SignatureError::Mismatch`]; [`SignatureError::Expired`] outside the window.
    pub fn verify(&self, timestamp: Option<&str>, signature: Option<&str>, body: &[u8]) -> Result<(), SignatureError> {
        let ts_raw = timestamp.ok_or(SignatureError::Missing)?.trim();
        let sig = signature.ok_or(SignatureError::Missing)?;
        let ts: i64 = ts_raw
            .parse()
            .map_err(|_| SignatureError::Malformed(format!("X-CIO-Timestamp is not a number: {ts_raw:?}")))?;
        // signature first: an attacker learns nothing about the window from a forged request
        verify_hex(self.key.expose().as_bytes(), &[b"v0:", ts_raw.as_bytes(), b":", body], sig)?;
        if let Some(tol) = self.tolerance {
            check_timestamp(ts, self.clock.as_ref(), tol)?;
        }
        Ok(())
    }

    /// Verifies using the request's headers (`X-CIO-Timestamp`, `X-CIO-Signature`, any case).
    ///
    /// # Errors
    /// See [`Verifier::verify`].
    pub fn verify_headers(&self, headers: &http::HeaderMap, body: &[u8]) -> Result<(), SignatureError> {
        let get = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
        self.verify(get(TIMESTAMP_HEADER), get(SIGNATURE_HEADER), body)
    }

    /// Verifies, then parses.
    ///
    /// # Errors
    /// [`WebhookError`].
    pub fn verify_and_parse(&self, headers: &http::HeaderMap, body: &[u8]) -> Result<ReportingEvent, WebhookError> {
        self.verify_headers(headers, body)?;
        Ok(parse(body)?)
    }
}

fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::String(s)) => Some(s),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::Bool(b)) => Some(b.to_string()),
        _ => None,
    })
}

fn lenient_int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use api_core::FixedClock;

    use super::*;

    #[test]
    fn unknown_values_round_trip() {
        let m: Metric = serde_json::from_str("\"teleported\"").unwrap();
        assert_eq!(m, Metric::Unknown("teleported".into()));
        assert_eq!(serde_json::to_string(&m).unwrap(), "\"teleported\"");
        assert_eq!(Metric::parse("opened"), Metric::Opened);
        assert_eq!(ObjectType::parse("in_app"), ObjectType::InApp);
        assert_eq!(ObjectType::parse("carrier_pigeon").as_str(), "carrier_pigeon");
    }

    #[test]
    fn lenient_fields() {
        let e = parse(
            br#"{"event_id":"x","object_type":"email","metric":"opened","timestamp":1,
                "data":{"action_id":"42","campaign_id":null,"identifiers":{"id":42},"new_field":[1]}}"#,
        )
        .unwrap();
        assert_eq!(e.data.action_id, Some(42));
        assert_eq!(e.data.campaign_id, None);
        assert_eq!(e.person_id(), Some("42"));
        assert_eq!(e.data.extra["new_field"], serde_json::json!([1]));
    }

    #[test]
    fn verify_rejects_missing_and_malformed() {
        let v = Verifier::new(Token::new("k")).clock(Arc::new(FixedClock::at_unix(100)));
        assert_eq!(v.verify(None, Some("ab"), b"{}"), Err(SignatureError::Missing));
        assert_eq!(v.verify(Some("100"), None, b"{}"), Err(SignatureError::Missing));
        assert!(matches!(v.verify(Some("x"), Some("ab"), b"{}"), Err(SignatureError::Malformed(_))));
        assert!(matches!(v.verify(Some("100"), Some("zz"), b"{}"), Err(SignatureError::Malformed(_))));
        let sig = sign(&Token::new("k"), 100, b"{}");
        v.verify(Some("100"), Some(&sig), b"{}").unwrap();
    }
}
