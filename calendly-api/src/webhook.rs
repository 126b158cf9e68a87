//! Webhook deliveries (v2): parsing, signature verification, dedup keys and reschedule pairing.
//!
//! A delivery is `{event, created_at, created_by, payload}`. For `invitee.*` events the payload is the
//! [`Invitee`] resource with an embedded `scheduled_event`; for `routing_form_submission.created` it is a
//! [`RoutingFormSubmission`]; anything else is kept as JSON. The retired v1 body (`time`, `payload.invitee`,
//! `payload.event_type`) is rejected with [`WebhookError::LegacyFormat`].
//!
//! Signatures: `Calendly-Webhook-Signature: t=<unix>,v1=<hex>` where `v1 = HMAC-SHA256(signing_key,
//! "<t>.<raw body>")`. Verify over the raw bytes **before** parsing:
//!
//! ```
//! use calendly_api::webhook::{Verifier, sign};
//! use api_core::{FixedClock, Token};
//! let body = br#"{"event":"invitee.created","created_at":"2026-06-24T22:30:45.105381Z","created_by":"https://api.calendly.com/users/U","payload":{"uri":"https://api.calendly.com/scheduled_events/E/invitees/I"}}"#;
//! let header = sign(b"my-signing-key", 1_790_000_000, body);
//! let verifier = Verifier::new(Token::new("my-signing-key"))
//!     .clock(std::sync::Arc::new(FixedClock::at_unix(1_790_000_060)));
//! let delivery = verifier.verify_and_parse(Some(&header), body).unwrap();
//! assert_eq!(delivery.dedup_key(), "invitee.created|https://api.calendly.com/scheduled_events/E/invitees/I");
//! ```

use std::{sync::Arc, time::Duration};

use api_core::{
    Clock, SignatureError, SystemClock, Token,
    webhook::{TimestampedSignature, hmac_sha256, verify_hex},
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{
    invitees::{Invitee, QuestionAndAnswer, Tracking},
    uri::{InviteeUri, RoutingFormSubmissionUri, RoutingFormUri, UserUri},
};

/// The signature header name (case-insensitive on the wire).
pub const SIGNATURE_HEADER: &str = "Calendly-Webhook-Signature";

/// Default tolerance for a signature's age: 25 hours. Calendly retries a failed delivery for 24 hours (then
/// disables the subscription); whether a retry is signed anew is not documented, so a shorter window (its
/// published example uses 3 minutes) could turn one slow answer into retries that are all refused. The cost of the
/// wide window is that a captured delivery can be replayed within it: deduplicate on the event's identity
/// (`(event, payload.uri)`, see [`WebhookDelivery`]), as sync-core's inbox does, and narrow it with
/// [`Verifier::tolerance`] when retries are known to be re-signed.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(25 * 3600);

api_core::open_enum!(
    /// A webhook event name (`event`; also the `events` of a subscription).
    WebhookEvent {
        /// A booking (also the new side of a reschedule).
        InviteeCreated = "invitee.created",
        /// A cancellation (also the old side of a reschedule).
        InviteeCanceled = "invitee.canceled",
        /// An invitee was marked as a no-show.
        InviteeNoShowCreated = "invitee_no_show.created",
        /// A no-show mark was removed.
        InviteeNoShowDeleted = "invitee_no_show.deleted",
        /// A routing form was submitted (organization scope only).
        RoutingFormSubmissionCreated = "routing_form_submission.created",
        /// An event type was created.
        EventTypeCreated = "event_type.created",
        /// An event type was updated.
        EventTypeUpdated = "event_type.updated",
        /// An event type was deleted.
        EventTypeDeleted = "event_type.deleted",
    }
);

impl WebhookEvent {
    /// Whether the payload is an [`Invitee`].
    #[must_use]
    pub fn is_invitee_event(&self) -> bool {
        matches!(
            self,
            Self::InviteeCreated | Self::InviteeCanceled | Self::InviteeNoShowCreated | Self::InviteeNoShowDeleted
        )
    }
}

/// A routing form submission (`routing_form_submission.created` payload).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoutingFormSubmission {
    /// The submission URI.
    pub uri: RoutingFormSubmissionUri,
    /// The form.
    #[serde(default)]
    pub routing_form: Option<RoutingFormUri>,
    /// Answers (`{question_uuid, question, answer}`).
    #[serde(default)]
    pub questions_and_answers: Vec<QuestionAndAnswer>,
    /// Tracking parameters.
    #[serde(default)]
    pub tracking: Option<Tracking>,
    /// Routing result (`{type: "event_type"|…, value}`).
    #[serde(default)]
    pub result: Option<serde_json::Value>,
    /// The invitee who submitted, if they booked.
    #[serde(default)]
    pub submitter: Option<InviteeUri>,
    /// `"Invitee"` or null.
    #[serde(default)]
    pub submitter_type: Option<String>,
    /// Created at.
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    /// Updated at.
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
    /// Other fields, kept.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// The typed payload of a delivery.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum WebhookPayload {
    /// `invitee.*`: the invitee with its embedded scheduled event.
    Invitee(Box<Invitee>),
    /// `routing_form_submission.created`.
    RoutingFormSubmission(Box<RoutingFormSubmission>),
    /// Any other event, kept as JSON.
    Other(serde_json::Value),
}

/// A parsed v2 delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookDelivery {
    /// The event name.
    pub event: WebhookEvent,
    /// When the event happened (not when the booking was made).
    pub created_at: Option<DateTime<Utc>>,
    /// The subscription creator.
    pub created_by: Option<UserUri>,
    /// The payload.
    pub payload: WebhookPayload,
    /// The payload as received (for storage or fields this crate does not model).
    pub raw_payload: serde_json::Value,
}

/// Why a delivery was rejected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// The signature did not verify (missing, malformed, forged, stale or from the future).
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// The body is the retired v1 format (`time`, `payload.invitee`, `payload.event_type`).
    #[error(
        "unsupported legacy format: Calendly v1 webhook body (retired 2025-08-27); subscribe through API v2 instead"
    )]
    LegacyFormat,
    /// The body is not a v2 envelope or its payload does not match the event.
    #[error("cannot decode webhook at `{path}`: {message}")]
    Decode {
        /// JSON path.
        path: String,
        /// serde's message.
        message: String,
    },
}

#[derive(Deserialize)]
struct Envelope {
    event: WebhookEvent,
    #[serde(default)]
    created_at: Option<DateTime<Utc>>,
    #[serde(default)]
    created_by: Option<UserUri>,
    #[serde(default)]
    payload: serde_json::Value,
}

/// The retired v1 envelope: no `created_at` (every v2 delivery has one), and either v1's `time` or its nested
/// `payload.invitee`/`event_type`/`event` objects. A v2 delivery of any family, whatever its payload holds, is
/// never taken for v1 (a new family decodes as [`WebhookPayload::Other`]).
fn is_legacy(v: &serde_json::Value) -> bool {
    if v.get("created_at").is_some() {
        return false;
    }
    let p = &v["payload"];
    v.get("time").is_some()
        || p.get("invitee").is_some_and(serde_json::Value::is_object)
        || p.get("event_type").is_some_and(serde_json::Value::is_object)
        || p.get("event").is_some_and(serde_json::Value::is_object)
}

fn decode<T: serde::de::DeserializeOwned>(v: serde_json::Value, prefix: &str) -> Result<T, WebhookError> {
    serde_path_to_error::deserialize(v).map_err(|e| WebhookError::Decode {
        path: format!("{prefix}{}", e.path()).trim_end_matches('.').to_owned(),
        message: e.inner().to_string(),
    })
}

/// Parses a delivery body (after verifying it). Unknown events decode with [`WebhookPayload::Other`].
///
/// # Errors
/// [`WebhookError::LegacyFormat`] for a v1 body; [`WebhookError::Decode`] naming the JSON path otherwise.
pub fn parse(body: &[u8]) -> Result<WebhookDelivery, WebhookError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| WebhookError::Decode { path: ".".into(), message: e.to_string() })?;
    if is_legacy(&value) {
        return Err(WebhookError::LegacyFormat);
    }
    let env: Envelope = decode(value, "")?;
    let payload = if env.event.is_invitee_event() {
        WebhookPayload::Invitee(Box::new(decode(env.payload.clone(), "payload.")?))
    } else if env.event == WebhookEvent::RoutingFormSubmissionCreated {
        WebhookPayload::RoutingFormSubmission(Box::new(decode(env.payload.clone(), "payload.")?))
    } else {
        WebhookPayload::Other(env.payload.clone())
    };
    Ok(WebhookDelivery {
        event: env.event,
        created_at: env.created_at,
        created_by: env.created_by,
        payload,
        raw_payload: env.payload,
    })
}

/// Both sides of a reschedule, as seen from either delivery.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReschedulePair {
    /// The canceled (old) invitee.
    pub old: InviteeUri,
    /// The created (new) invitee.
    pub new: InviteeUri,
}

/// Which side of a reschedule a delivery is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RescheduleSide {
    /// `invitee.canceled` with `rescheduled: true` and `new_invitee`: the meeting moved away from this invitee.
    Canceled(ReschedulePair),
    /// `invitee.created` with `old_invitee`: the meeting moved here.
    Created(ReschedulePair),
}

impl RescheduleSide {
    /// The pair (the same from both sides, so a consumer can match them in either arrival order).
    #[must_use]
    pub fn pair(&self) -> &ReschedulePair {
        match self {
            Self::Canceled(p) | Self::Created(p) => p,
        }
    }
}

impl WebhookDelivery {
    /// The invitee, for `invitee.*` events.
    #[must_use]
    pub fn invitee(&self) -> Option<&Invitee> {
        match &self.payload {
            WebhookPayload::Invitee(i) => Some(i),
            _ => None,
        }
    }

    /// The idempotency key: `"<event>|<payload.uri>"`, plus `"|<no_show.uri>"` for no-show events (an invitee can be
    /// marked, unmarked and marked again). Deliveries carry no id; retries resend the same logical event.
    #[must_use]
    pub fn dedup_key(&self) -> String {
        let uri = self.raw_payload.get("uri").and_then(serde_json::Value::as_str).unwrap_or("");
        let mut key = format!("{}|{uri}", self.event);
        if matches!(self.event, WebhookEvent::InviteeNoShowCreated | WebhookEvent::InviteeNoShowDeleted)
            && let Some(ns) = self.raw_payload.pointer("/no_show/uri").and_then(serde_json::Value::as_str)
        {
            key.push('|');
            key.push_str(ns);
        }
        if uri.is_empty() && !matches!(self.payload, WebhookPayload::Invitee(_)) {
            // unknown event without a uri: fall back to the event time
            if let Some(t) = self.created_at {
                key.push('|');
                key.push_str(&t.to_rfc3339());
            }
        }
        key
    }

    /// Whether this delivery is one side of a reschedule, and which.
    #[must_use]
    pub fn reschedule(&self) -> Option<RescheduleSide> {
        let inv = self.invitee()?;
        match self.event {
            WebhookEvent::InviteeCanceled if inv.rescheduled => inv
                .new_invitee
                .clone()
                .map(|new| RescheduleSide::Canceled(ReschedulePair { old: inv.uri.clone(), new })),
            WebhookEvent::InviteeCreated => {
                inv.old_invitee.clone().map(|old| RescheduleSide::Created(ReschedulePair { old, new: inv.uri.clone() }))
            }
            _ => None,
        }
    }

    /// A plain cancellation (not the old side of a reschedule).
    #[must_use]
    pub fn is_plain_cancellation(&self) -> bool {
        self.event == WebhookEvent::InviteeCanceled && self.invitee().is_some_and(|i| !i.rescheduled)
    }
}

/// The `Calendly-Webhook-Signature` value for `body` signed at `timestamp` with `key`:
/// `t=<timestamp>,v1=<hex HMAC-SHA256(key, "<timestamp>.<body>")>`. Used by the fake and by tests.
#[must_use]
pub fn sign(key: &[u8], timestamp: i64, body: &[u8]) -> String {
    let t = timestamp.to_string();
    let mac = hmac_sha256(key, &[t.as_bytes(), b".", body]);
    format!("t={t},v1={}", hex::encode(mac))
}

/// Verifies `Calendly-Webhook-Signature` headers with one subscription's signing key.
#[derive(Debug, Clone)]
pub struct Verifier {
    key: Token,
    tolerance: Duration,
    clock: Arc<dyn Clock>,
}

impl Verifier {
    /// A verifier for `signing_key` (the string as UTF-8 bytes, not decoded), with [`DEFAULT_TOLERANCE`].
    #[must_use]
    pub fn new(signing_key: Token) -> Self {
        Self { key: signing_key, tolerance: DEFAULT_TOLERANCE, clock: Arc::new(SystemClock) }
    }

    /// How far a signature's timestamp may be from now, either side (default [`DEFAULT_TOLERANCE`]).
    #[must_use]
    pub fn tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// Injects a clock (tests: `api_core::FixedClock`).
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Verifies the header value over the raw body: format, timestamp window, then HMAC in constant time. Any of
    /// several `v1` values may match.
    ///
    /// # Errors
    /// [`SignatureError::Missing`] without a header; `Malformed`, `Expired` or `Mismatch`.
    pub fn verify(&self, header: Option<&str>, body: &[u8]) -> Result<(), SignatureError> {
        let header = header.ok_or(SignatureError::Missing)?;
        let parsed = TimestampedSignature::parse(header)?;
        let now = self.clock.unix_seconds();
        // in i128, where no pair of i64 timestamps can overflow (an absurd `t` is rejected, never wrapped into
        // the window)
        let age = i128::from(now) - i128::from(parsed.timestamp);
        if age.unsigned_abs() > u128::from(self.tolerance.as_secs()) {
            return Err(SignatureError::Expired {
                timestamp: parsed.timestamp,
                now,
                tolerance_secs: self.tolerance.as_secs(),
            });
        }
        let t = parsed.timestamp.to_string();
        let parts: [&[u8]; 3] = [t.as_bytes(), b".", body];
        let mut any = false;
        let mut result = Err(SignatureError::Mismatch);
        for v in parsed.values("v1") {
            any = true;
            if v.len() != 64 {
                continue;
            }
            if verify_hex(self.key.expose().as_bytes(), &parts, v).is_ok() {
                result = Ok(());
            }
        }
        if !any {
            return Err(SignatureError::Malformed("no v1 signature".into()));
        }
        result
    }

    /// Verifies the signature header found in `headers` (looked up case-insensitively).
    ///
    /// # Errors
    /// As [`Verifier::verify`].
    pub fn verify_headers(&self, headers: &http::HeaderMap, body: &[u8]) -> Result<(), SignatureError> {
        let h = headers
            .get(SIGNATURE_HEADER)
            .map(|v| v.to_str().map_err(|_| SignatureError::Malformed("not ASCII".into())));
        let h = h.transpose()?;
        self.verify(h, body)
    }

    /// Verifies, then parses.
    ///
    /// # Errors
    /// [`WebhookError`].
    pub fn verify_and_parse(&self, header: Option<&str>, body: &[u8]) -> Result<WebhookDelivery, WebhookError> {
        self.verify(header, body)?;
        parse(body)
    }
}

#[cfg(test)]
mod tests {
    use api_core::FixedClock;

    use super::*;

    // Known-answer vector, computed independently with:
    // python3 -c 'import hmac,hashlib;print(hmac.new(b"test-signing-key",b"1790000000."+b"{\"event\":\"invitee.created\"}",hashlib.sha256).hexdigest())'
    const KAT_BODY: &[u8] = br#"{"event":"invitee.created"}"#;
    const KAT_SIG: &str = "83f250b32a866f575aae1472a1e2941b58849f894b0690a73d7cb81676ed3f35";

    fn verifier(now: u64) -> Verifier {
        Verifier::new(Token::new("test-signing-key")).clock(Arc::new(FixedClock::at_unix(now)))
    }

    #[test]
    fn known_answer() {
        assert_eq!(sign(b"test-signing-key", 1_790_000_000, KAT_BODY), format!("t=1790000000,v1={KAT_SIG}"));
        verifier(1_790_000_100).verify(Some(&format!("t=1790000000,v1={KAT_SIG}")), KAT_BODY).unwrap();
    }

    #[test]
    fn rejects_forged_stale_future_and_malformed() {
        let h = sign(b"test-signing-key", 1_790_000_000, KAT_BODY);
        let v = verifier(1_790_000_000);
        assert_eq!(v.verify(Some(&h), br#"{"event":"invitee.canceled"}"#), Err(SignatureError::Mismatch));
        let forged = sign(b"other-key", 1_790_000_000, KAT_BODY);
        assert_eq!(v.verify(Some(&forged), KAT_BODY), Err(SignatureError::Mismatch));
        // after the window (Calendly's 24 h of retries and an hour): rejected; a retry 24 h late: accepted
        let window = i64::try_from(DEFAULT_TOLERANCE.as_secs()).unwrap();
        let late = |s: i64| verifier(u64::try_from(1_790_000_000 + s).unwrap());
        assert!(matches!(late(window + 1).verify(Some(&h), KAT_BODY), Err(SignatureError::Expired { .. })));
        late(window).verify(Some(&h), KAT_BODY).unwrap();
        late(24 * 3600).verify(Some(&h), KAT_BODY).unwrap();
        // the window is two-sided: a timestamp further ahead of our clock than the tolerance is refused too
        assert!(matches!(late(-window - 1).verify(Some(&h), KAT_BODY), Err(SignatureError::Expired { .. })));
        late(-window).verify(Some(&h), KAT_BODY).unwrap();
        assert_eq!(v.verify(None, KAT_BODY), Err(SignatureError::Missing));
        assert!(matches!(v.verify(Some("v1=abc"), KAT_BODY), Err(SignatureError::Malformed(_))));
        assert!(matches!(v.verify(Some("t=1790000000,v0=abc"), KAT_BODY), Err(SignatureError::Malformed(_))));
        // body-only HMAC (a common bug) does not verify
        let body_only = hex::encode(hmac_sha256(b"test-signing-key", &[KAT_BODY]));
        assert_eq!(v.verify(Some(&format!("t=1790000000,v1={body_only}")), KAT_BODY), Err(SignatureError::Mismatch));
        // one of several v1 values may match
        let sig = h.split("v1=").nth(1).unwrap();
        v.verify(Some(&format!("t=1790000000,v1={body_only},v1={sig}")), KAT_BODY).unwrap();
        // tolerance is configurable
        verifier(1_790_000_250).tolerance(Duration::from_secs(300)).verify(Some(&h), KAT_BODY).unwrap();
        let narrow = verifier(1_790_000_181).tolerance(Duration::from_secs(180));
        assert!(matches!(narrow.verify(Some(&h), KAT_BODY), Err(SignatureError::Expired { .. })));
    }

    #[test]
    fn extreme_timestamps_are_rejected_not_wrapped() {
        let v = verifier(1_790_000_000);
        for t in [i64::MIN, i64::MIN + 1, i64::MAX, i64::MAX - 1, -1] {
            // validly signed: only the window can refuse it
            let h = sign(b"test-signing-key", t, KAT_BODY);
            assert!(matches!(v.verify(Some(&h), KAT_BODY), Err(SignatureError::Expired { .. })), "{t}");
        }
    }

    proptest::proptest! {
        /// Any signed timestamp: no panic; accepted exactly within [now - tolerance, now + tolerance].
        #[test]
        fn the_window_holds_for_any_timestamp(t in proptest::num::i64::ANY) {
            let now = 1_790_000_000i128;
            let h = sign(b"test-signing-key", t, KAT_BODY);
            let age = now - i128::from(t);
            let within = age.unsigned_abs() <= u128::from(DEFAULT_TOLERANCE.as_secs());
            proptest::prop_assert_eq!(verifier(1_790_000_000).verify(Some(&h), KAT_BODY).is_ok(), within);
        }
    }

    #[test]
    fn a_v2_delivery_of_a_new_family_is_not_taken_for_v1() {
        // a future v2 event family whose payload nests `event`/`invitee` objects: Other, not LegacyFormat
        let body = br#"{"created_at":"2026-12-01T10:00:00.000000Z","created_by":"https://api.calendly.com/users/AAAA","event":"meeting.summarized","payload":{"event":{"uri":"https://api.calendly.com/scheduled_events/BBBB"},"invitee":{"email":"a@example.com"}}}"#;
        let d = parse(body).unwrap();
        assert!(matches!(d.payload, WebhookPayload::Other(_)), "{:?}", d.payload);
    }

    #[test]
    fn verifier_debug_hides_key() {
        assert!(!format!("{:?}", verifier(0)).contains("test-signing-key"));
    }

    #[test]
    fn headers_lookup_is_case_insensitive() {
        let h = sign(b"test-signing-key", 1_790_000_000, KAT_BODY);
        let mut map = http::HeaderMap::new();
        map.insert("calendly-webhook-signature", h.parse().unwrap());
        verifier(1_790_000_000).verify_headers(&map, KAT_BODY).unwrap();
        assert_eq!(
            verifier(1_790_000_000).verify_headers(&http::HeaderMap::new(), KAT_BODY),
            Err(SignatureError::Missing)
        );
    }

    #[test]
    fn unknown_event_round_trips() {
        let d = parse(br#"{"event":"meeting_recap.created","created_at":"2026-06-24T22:30:45.105381Z","created_by":"https://api.calendly.com/users/U","payload":{"uri":"https://api.calendly.com/meeting_recaps/R","x":1}}"#).unwrap();
        assert_eq!(d.event, WebhookEvent::Unknown("meeting_recap.created".into()));
        assert_eq!(d.event.to_string(), "meeting_recap.created");
        assert!(matches!(d.payload, WebhookPayload::Other(_)));
        assert_eq!(d.dedup_key(), "meeting_recap.created|https://api.calendly.com/meeting_recaps/R");
    }

    #[test]
    fn decode_error_names_path() {
        let e = parse(br#"{"event":"invitee.created","created_at":"2026-06-24T22:30:45Z","payload":{"uri":"u","rescheduled":"yes"}}"#)
            .unwrap_err();
        match e {
            WebhookError::Decode { path, .. } => assert_eq!(path, "payload.rescheduled"),
            other => panic!("{other:?}"),
        }
    }
}
