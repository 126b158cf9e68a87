//! Webhook deliveries: parsing Productive's envelope into typed events and verifying `Productive-Signature`.
//!
//! Wire format (sp `testdata/task_created_delivery.json`, a captured production delivery): a JSON `POST` body
//! `{"event": "create_task", "item_type": "task", "item_id": 20305431, "created": "…+02:00",
//! "object": {"data": {…JSON:API resource…}, "included": […]}}`. `item_id` is a number, `object.data.id` a string.
//! Event names other than `create_task`/`update_task` (e.g. `update_budget`) are **unverified**; [`WebhookEvent`]
//! classifies by `item_type` and the action prefix, so a different spelling still lands in the right variant or in
//! [`WebhookEvent::Other`] with the raw envelope.
//!
//! Signature (P-old webhooks.html; algorithm from pd and sp): `Productive-Signature: t=<unix>, s=<hex>` where
//! `s = hex(HMAC-SHA256(signature_token, "<t>.<raw body>"))`, keyed with the webhook's `signature_token` from the
//! create response. Verify over the **raw** body bytes, never re-serialized JSON. Productive documents no tolerance
//! window; [`Verifier`] applies one (default [`DEFAULT_TOLERANCE`], 3 days: Productive retries a failed delivery for
//! ~48 h, then deactivates the webhook, and whether a retry carries a fresh `t` is **unverified**, so a short window
//! could refuse every retry of one slow answer) and remembers the decoded signatures inside it to reject replays
//! (however the header is re-spelled). A replay of a *different* signature of the same event is not caught here:
//! deduplicate on `(event, item_id, created)` as sync-core's inbox does. If your endpoint was down longer than the
//! window, recover with a poll instead.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use api_core::{
    Clock, DecodeError, SignatureError, Token,
    webhook::{TimestampedSignature, check_timestamp, hmac_sha256, verify_hex},
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{
    jsonapi::{Document, Included, Resource},
    resources::{deals::DealAttributes, projects::ProjectAttributes, tasks::TaskAttributes},
};

/// The signature header name.
pub const SIGNATURE_HEADER: &str = "Productive-Signature";
/// The default tolerance between `t=` and now: 3 days (Productive retries for ~48 h; see the module docs).
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(3 * 24 * 3600);

/// The delivery envelope, as sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// `create_task`, `update_task`, …
    pub event: String,
    /// `task`, `deal`, `budget`, …
    #[serde(default)]
    pub item_type: String,
    /// The item id (a JSON number on the wire; kept as a string like JSON:API ids).
    #[serde(deserialize_with = "crate::jsonapi::deserialize_string_or_number")]
    pub item_id: String,
    /// When the event happened (`2026-09-23T18:46:58.988+02:00`).
    #[serde(default)]
    pub created: String,
    /// `{data, included}`: the item as a JSON:API document (absent or null on some events).
    #[serde(default)]
    pub object: Option<Value>,
    /// Unknown members.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Delivery {
    /// Parses a raw body.
    ///
    /// # Errors
    /// [`DecodeError`] naming the JSON path.
    pub fn parse(body: &[u8]) -> Result<Self, DecodeError> {
        api_core::decode_json(body)
    }

    /// The dedup key `(event, item_id, created)` joined with `|`: identical for Productive's retries of one
    /// delivery, different for a later change of the same item.
    #[must_use]
    pub fn dedup_key(&self) -> String {
        format!("{}|{}|{}", self.event, self.item_id, self.created)
    }

    /// The action part of `event` (`create` in `create_task`).
    #[must_use]
    pub fn action(&self) -> Action {
        let a = self.event.split_once('_').map_or(self.event.as_str(), |(a, _)| a);
        Action::from(a)
    }

    /// `object` as a JSON:API document with untyped attributes (`None` when absent or null).
    ///
    /// # Errors
    /// [`DecodeError`] when `object` is not a JSON:API document.
    pub fn document(&self) -> Result<Option<Document<Resource<Value>>>, DecodeError> {
        match &self.object {
            None | Some(Value::Null) => Ok(None),
            Some(v) if v.get("data").is_none_or(Value::is_null) => Ok(None),
            Some(v) => {
                let bytes = serde_json::to_vec(v).unwrap_or_default();
                api_core::decode_json(&bytes).map(Some).map_err(|mut e| {
                    e.path = format!("object.{}", e.path);
                    e
                })
            }
        }
    }

    /// The typed event.
    ///
    /// # Errors
    /// [`DecodeError`] when `object` does not decode as the item type's attributes.
    pub fn typed(&self) -> Result<WebhookEvent, DecodeError> {
        let action = self.action();
        let doc = self.document()?;
        let entity = self.event.split_once('_').map_or("", |(_, e)| e);
        let kind = if self.item_type.is_empty() { entity } else { self.item_type.as_str() };
        let Some(doc) = doc else {
            return Ok(WebhookEvent::Other(Box::new(self.clone())));
        };
        Ok(match kind {
            "task" | "tasks" => {
                let task = doc.data.decode::<TaskAttributes>()?;
                let completed = action == Action::Update && task.attributes.closed;
                WebhookEvent::Task { action, completed, task: Box::new(task), included: doc.included }
            }
            "deal" | "deals" | "budget" | "budgets" => {
                let deal = doc.data.decode::<DealAttributes>()?;
                let is_budget = deal.attributes.budget == Some(true) || kind.starts_with("budget");
                WebhookEvent::Deal { action, is_budget, deal: Box::new(deal), included: doc.included }
            }
            "project" | "projects" => {
                let project = doc.data.decode::<ProjectAttributes>()?;
                WebhookEvent::Project { action, project: Box::new(project), included: doc.included }
            }
            _ if kind == "time_entry" || kind == "time_entries" || doc.data.kind == "time_entries" => {
                let entry = doc.data.decode()?;
                WebhookEvent::TimeEntry { action, entry: Box::new(entry), included: doc.included }
            }
            _ if kind == "booking" || kind == "bookings" || doc.data.kind == "bookings" => {
                let booking = doc.data.decode()?;
                WebhookEvent::Booking { action, booking: Box::new(booking), included: doc.included }
            }
            _ => WebhookEvent::Other(Box::new(self.clone())),
        })
    }
}

api_core::open_enum!(
    /// The action of an event (`create_task` → `Create`).
    Action {
        /// `create_*`.
        Create = "create",
        /// `update_*`.
        Update = "update",
        /// `delete_*`.
        Delete = "delete",
        /// `archive_*`.
        Archive = "archive",
    }
);

/// A typed delivery.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum WebhookEvent {
    /// A task event (event ids 1, 24, 25).
    Task {
        /// Create / update / delete.
        action: Action,
        /// `true` for an update whose task is closed: Productive has no separate "completed" event; a task is
        /// completed when an `update_task` arrives with `closed: true`. An update of an already closed task also
        /// matches, so make the effect idempotent per task.
        completed: bool,
        /// The task.
        task: Box<Resource<TaskAttributes>>,
        /// Included resources (project, assignee, …).
        included: Included,
    },
    /// A deal or budget event (deal 3/12/13, budget 4/16/20).
    Deal {
        /// Create / update / delete.
        action: Action,
        /// Whether the item is a budget.
        is_budget: bool,
        /// The deal or budget.
        deal: Box<Resource<DealAttributes>>,
        /// Included resources.
        included: Included,
    },
    /// A project event (5/10/11).
    Project {
        /// Create / update / delete.
        action: Action,
        /// The project.
        project: Box<Resource<ProjectAttributes>>,
        /// Included resources.
        included: Included,
    },
    /// A time entry event (7/8/9). The event and item type names (`create_time_entry`, `time_entry`) follow the
    /// documented `create_task` / `task` pattern and are **unverified**; `object.data.type = "time_entries"` is
    /// recognised as well.
    TimeEntry {
        /// Create / update / delete.
        action: Action,
        /// The time entry.
        entry: Box<Resource<crate::resources::time_entries::TimeEntryAttributes>>,
        /// Included resources.
        included: Included,
    },
    /// A booking event (17/18/19); names **unverified** like [`WebhookEvent::TimeEntry`]'s.
    Booking {
        /// Create / update / delete.
        action: Action,
        /// The booking.
        booking: Box<Resource<crate::resources::bookings::BookingAttributes>>,
        /// Included resources.
        included: Included,
    },
    /// Anything else, with the raw envelope.
    Other(Box<Delivery>),
}

/// Why a delivery was rejected.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// Signature missing, malformed, wrong or outside the tolerance window.
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// The same signature was already accepted within the tolerance window.
    #[error("replayed delivery (signature already seen at t={timestamp})")]
    Replayed {
        /// The signed timestamp.
        timestamp: i64,
    },
    /// The body is not a delivery envelope.
    #[error(transparent)]
    Parse(#[from] DecodeError),
}

/// The `Productive-Signature` header value for `body` signed at `t` with `token`: `t=<t>, s=<hex>` (the format
/// of the P-old example). Used by the fake and by tests.
#[must_use]
pub fn sign(token: &Token, t: i64, body: &[u8]) -> String {
    let mac = hmac_sha256(token.expose().as_bytes(), &[t.to_string().as_bytes(), b".", body]);
    format!("t={t}, s={}", hex::encode(mac))
}

/// Parses `t=<unix>, s=<hex>` (with or without the space) into `(t, [s…])`.
///
/// # Errors
/// [`SignatureError::Malformed`] without `t` or `s`.
pub fn parse_signature_header(header: &str) -> Result<(i64, Vec<String>), SignatureError> {
    let parsed = TimestampedSignature::parse(header)?;
    let sigs: Vec<String> = parsed.values("s").map(str::to_owned).collect();
    if sigs.is_empty() {
        return Err(SignatureError::Malformed("no s= signature".into()));
    }
    Ok((parsed.timestamp, sigs))
}

/// Verifies `header` (the `Productive-Signature` value, `None` when absent) over the raw `body` in constant time,
/// and that `t` is within `tolerance` of `clock`. Does not detect replays inside the window; [`Verifier`] does.
///
/// # Errors
/// [`SignatureError`].
pub fn verify_signature(
    token: &Token,
    header: Option<&str>,
    body: &[u8],
    clock: &dyn Clock,
    tolerance: Duration,
) -> Result<i64, SignatureError> {
    verify_signature_bytes(token, header, body, clock, tolerance).map(|(t, _)| t)
}

/// As [`verify_signature`], also returning the decoded bytes of the signature that matched (the replay guard's
/// key: the same MAC however the header spells it).
fn verify_signature_bytes(
    token: &Token,
    header: Option<&str>,
    body: &[u8],
    clock: &dyn Clock,
    tolerance: Duration,
) -> Result<(i64, Vec<u8>), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let (t, sigs) = parse_signature_header(header)?;
    let key = token.expose().as_bytes();
    let ts = t.to_string();
    let matched = sigs.iter().find(|s| verify_hex(key, &[ts.as_bytes(), b".", body], s).is_ok());
    let Some(matched) = matched else {
        return Err(SignatureError::Mismatch);
    };
    check_timestamp(t, clock, tolerance)?;
    let bytes = hex::decode(matched).map_err(|_| SignatureError::Malformed("s= is not hex".into()))?;
    Ok((t, bytes))
}

/// Accepted `(t, decoded MAC)` pairs → when they were accepted.
type SeenSignatures = HashMap<(i64, Vec<u8>), i64>;

/// Verifies deliveries for one webhook (one `signature_token`), rejecting stale and replayed ones.
#[derive(Debug, Clone)]
pub struct Verifier {
    token: Token,
    tolerance: Duration,
    clock: Arc<dyn Clock>,
    /// Accepted `(t, decoded MAC)` pairs within the window.
    seen: Arc<Mutex<SeenSignatures>>,
}

impl Verifier {
    /// A verifier with [`DEFAULT_TOLERANCE`] and the system clock.
    #[must_use]
    pub fn new(signature_token: Token) -> Self {
        Self {
            token: signature_token,
            tolerance: DEFAULT_TOLERANCE,
            clock: Arc::new(api_core::SystemClock),
            seen: Arc::default(),
        }
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

    /// Verifies the signature, the timestamp and that this exact signature was not accepted before, then parses
    /// the body.
    ///
    /// # Errors
    /// [`WebhookError`].
    pub fn verify(&self, header: Option<&str>, body: &[u8]) -> Result<Delivery, WebhookError> {
        let (t, mac) = verify_signature_bytes(&self.token, header, body, self.clock.as_ref(), self.tolerance)?;
        let delivery = Delivery::parse(body)?;
        // keyed on what was signed, not on the header's text: upper-case hex, reordered items or an extra bogus
        // `s=` re-send the same signature
        let key = (t, mac);
        let now = self.clock.unix_seconds();
        let tol = self.tolerance.as_secs();
        let mut seen = self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        seen.retain(|_, ts| now.abs_diff(*ts) <= tol);
        if seen.contains_key(&key) {
            return Err(WebhookError::Replayed { timestamp: t });
        }
        seen.insert(key, t);
        Ok(delivery)
    }

    /// [`Verifier::verify`] with the [`SIGNATURE_HEADER`] found in `headers` (looked up case-insensitively).
    ///
    /// # Errors
    /// As [`Verifier::verify`]; a header that is not ASCII is malformed.
    pub fn verify_headers(&self, headers: &http::HeaderMap, body: &[u8]) -> Result<Delivery, WebhookError> {
        let h = headers
            .get(SIGNATURE_HEADER)
            .map(|v| v.to_str().map_err(|_| SignatureError::Malformed("not ASCII".into())))
            .transpose()?;
        self.verify(h, body)
    }
}

/// Parses a delivery's raw body (without checking its signature: see [`Verifier`]).
///
/// # Errors
/// [`DecodeError`] naming the JSON path.
pub fn parse(body: &[u8]) -> Result<Delivery, DecodeError> {
    Delivery::parse(body)
}

/// Constant-time check of a shared secret presented in a path segment or a custom header (for receivers that
/// also configure `custom_headers` or a secret URL; Productive itself signs every delivery).
#[must_use]
pub fn check_secret(expected: &Token, presented: Option<&str>) -> bool {
    presented.is_some_and(|p| expected.ct_eq(p))
}

#[cfg(test)]
mod tests {
    use api_core::FixedClock;

    use super::*;

    // The sp fixture shape (captured production task.created delivery).
    const TASK_CREATED: &str = r#"{"event":"create_task","item_type":"task","item_id":20305431,"created":"2026-09-23T18:46:58.988+02:00","object":{"data":{"id":"20305431","type":"tasks","attributes":{"title":"Kick-off call","type_id":1,"closed":false},"relationships":{"project":{"data":{"type":"projects","id":"1049891"}},"assignee":{"data":null}}},"included":[{"id":"1049891","type":"projects","attributes":{"name":"Acme onboarding"}}]}}"#;

    // Known answer, computed independently:
    // python3 -c "import hmac,hashlib;b=open('body','rb').read();print(hmac.new(b'tok_123',b'1758646018.'+b,hashlib.sha256).hexdigest())"
    // with `body` = TASK_CREATED (no trailing newline).
    const KAT_SIG: &str = "4f06b7a47c75ea94ecddb8cd53ecf18a8dfca73aee6a662bc5fe9cb1ed0a4cbf";

    #[test]
    fn known_answer_signature() {
        let token = Token::new("tok_123");
        assert_eq!(sign(&token, 1_758_646_018, TASK_CREATED.as_bytes()), format!("t=1758646018, s={KAT_SIG}"));
        let clock = FixedClock::at_unix(1_758_646_018 + 10);
        let h = format!("t=1758646018,s={KAT_SIG}");
        assert_eq!(
            verify_signature(&token, Some(&h), TASK_CREATED.as_bytes(), &clock, DEFAULT_TOLERANCE),
            Ok(1_758_646_018)
        );
    }

    #[test]
    fn forged_stale_missing_and_replayed_are_rejected() {
        let token = Token::new("tok_123");
        let clock = FixedClock::at_unix(1_758_646_018);
        let v = Verifier::new(token.clone()).clock(Arc::new(clock.clone()));
        let body = TASK_CREATED.as_bytes();
        let header = sign(&token, 1_758_646_018, body);
        v.verify(Some(&header), body).unwrap();
        assert!(matches!(v.verify(Some(&header), body), Err(WebhookError::Replayed { timestamp: 1_758_646_018 })));
        let forged = sign(&Token::new("other"), 1_758_646_018, body);
        assert!(matches!(v.verify(Some(&forged), body), Err(WebhookError::Signature(SignatureError::Mismatch))));
        let tampered = TASK_CREATED.replace("Kick-off", "Kick-out");
        assert!(matches!(
            v.verify(Some(&sign(&token, 1_758_646_019, body)), tampered.as_bytes()),
            Err(WebhookError::Signature(SignatureError::Mismatch))
        ));
        clock.advance(DEFAULT_TOLERANCE + Duration::from_secs(1));
        let stale = sign(&token, 1_758_646_018, body);
        assert!(matches!(v.verify(Some(&stale), body), Err(WebhookError::Signature(SignatureError::Expired { .. }))));
        assert!(matches!(v.verify(None, body), Err(WebhookError::Signature(SignatureError::Missing))));
        assert!(matches!(
            v.verify(Some("t=1758646018"), body),
            Err(WebhookError::Signature(SignatureError::Malformed(_)))
        ));
    }

    #[test]
    fn the_same_signature_respelled_is_still_a_replay() {
        let token = Token::new("tok_123");
        let clock = FixedClock::at_unix(1_758_646_018);
        let v = Verifier::new(token.clone()).clock(Arc::new(clock));
        let body = TASK_CREATED.as_bytes();
        v.verify(Some(&format!("t=1758646018, s={KAT_SIG}")), body).unwrap();
        let bogus = "00".repeat(32);
        for respelled in [
            format!("t=1758646018, s={}", KAT_SIG.to_uppercase()),
            format!("s={KAT_SIG}, t=1758646018"),
            format!("t=1758646018,s={bogus},s={KAT_SIG}"),
            format!("t=1758646018, s={KAT_SIG}, s={bogus}"),
        ] {
            assert!(
                matches!(v.verify(Some(&respelled), body), Err(WebhookError::Replayed { timestamp: 1_758_646_018 })),
                "{respelled}"
            );
        }
    }

    #[test]
    fn a_retry_two_days_late_is_accepted_by_default() {
        // Productive retries failed deliveries for ~48 h; a retry that keeps its first `t` must still verify
        let token = Token::new("tok_123");
        let clock = FixedClock::at_unix(1_758_646_018 + 48 * 3600);
        let v = Verifier::new(token.clone()).clock(Arc::new(clock));
        v.verify(Some(&sign(&token, 1_758_646_018, TASK_CREATED.as_bytes())), TASK_CREATED.as_bytes()).unwrap();
    }

    #[test]
    fn parses_the_task_created_delivery() {
        let d = Delivery::parse(TASK_CREATED.as_bytes()).unwrap();
        assert_eq!(d.item_id, "20305431");
        assert_eq!(d.action(), Action::Create);
        assert_eq!(d.dedup_key(), "create_task|20305431|2026-09-23T18:46:58.988+02:00");
        match d.typed().unwrap() {
            WebhookEvent::Task { action, completed, task, included } => {
                assert_eq!(action, Action::Create);
                assert!(!completed);
                assert_eq!(task.attributes.title, "Kick-off call");
                assert_eq!(task.project_id().unwrap().as_str(), "1049891");
                let project = included.resolve::<ProjectAttributes>(task.related_id("project").unwrap()).unwrap();
                assert_eq!(project.unwrap().attributes.name, "Acme onboarding");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn completed_task_and_budget_and_unknown() {
        let closed = TASK_CREATED.replace("create_task", "update_task").replace("\"closed\":false", "\"closed\":true");
        let d = Delivery::parse(closed.as_bytes()).unwrap();
        assert!(matches!(d.typed().unwrap(), WebhookEvent::Task { completed: true, .. }));
        let budget = r#"{"event":"update_budget","item_type":"deal","item_id":55,"created":"2026-09-23T18:46:58.988+02:00",
            "object":{"data":{"id":"55","type":"deals","attributes":{"name":"Onboarding","budget":true,"budget_total":"150000.0"}}}}"#;
        match Delivery::parse(budget.as_bytes()).unwrap().typed().unwrap() {
            WebhookEvent::Deal { action, is_budget, deal, .. } => {
                assert_eq!(action, Action::Update);
                assert!(is_budget);
                assert_eq!(deal.attributes.budget_total.unwrap().0, "150000.0");
            }
            other => panic!("{other:?}"),
        }
        let unknown = r#"{"event":"create_invoice","item_type":"invoice","item_id":"9","created":"x","object":{"data":{"id":"9","type":"invoices"}},"new_field":1}"#;
        let d = Delivery::parse(unknown.as_bytes()).unwrap();
        assert!(d.extra.contains_key("new_field"));
        assert!(matches!(d.typed().unwrap(), WebhookEvent::Other(_)));
        assert_eq!(Action::from("frobnicate").as_str(), "frobnicate");
    }

    #[test]
    fn secret_check() {
        let t = Token::new("abc");
        assert!(check_secret(&t, Some("abc")));
        assert!(!check_secret(&t, Some("abd")));
        assert!(!check_secret(&t, None));
    }
}
