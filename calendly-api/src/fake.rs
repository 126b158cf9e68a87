//! A stateful, in-process fake of the Calendly API v2 (feature `fake`), for tests and demos.
//!
//! [`FakeCalendly::start`] serves on `127.0.0.1:<ephemeral>` (through [`api_core::fake::FakeServer`]: request log and
//! fault injection) and behaves like Calendly where a sync engine can tell:
//!
//! - bearer auth (401 `Unauthenticated` for an unknown token) and `POST /oauth/token` with **single-use rotating**
//!   refresh tokens (`invalid_grant` on reuse); point both the client's base URL and auth base URL at the fake;
//! - `GET /users/me`, `/users/{uuid}`, `/organization_memberships`, `/event_types`, `/event_types/{uuid}`,
//!   `/event_type_available_times` (the 7-day rule; the fake's hosts work 09:00–17:00 UTC Monday to Friday and a
//!   booked slot is taken);
//! - `POST /scheduling_links` (single-use links; `max_event_count` 1 and `owner_type` `EventType` only, as the spec
//!   allows; [`FakeCalendly::scheduling_links`]) and `POST /invitees` (the Scheduling API: books an available slot like
//!   [`FakeCalendly::book`] with `scheduling_method: "api"` and emits `invitee.created`), the latter with its own
//!   limits on top of the general one — 10/min, 50/h, 100/day per token by default, as sliding windows on arrival
//!   ([`FakeConfig::invitee_create_limits`], api-notes/calendly.md §1 "Rate limits");
//! - scheduled events and invitees created by the scenario API ([`FakeCalendly::book`], [`FakeCalendly::cancel`],
//!   [`FakeCalendly::reschedule`], [`FakeCalendly::mark_no_show`], …) and readable through the API with Calendly's
//!   filters and `page_token` pagination (`count` ≤ 100, else 400);
//! - `POST /scheduled_events/{uuid}/cancellation` (201; 403 "Event is already canceled"), `POST`/`GET`/`DELETE
//!   /invitee_no_shows`;
//! - webhook subscriptions: create (409 `Already Exists` / "Hook with this url already exists" for a URL already
//!   subscribed), list by organization + scope, get, delete; `GET /sample_webhook_data`;
//! - every state change produces the exact v2 deliveries Calendly would send to each matching active subscription
//!   ([`OutgoingWebhook`]: body bytes + `Calendly-Webhook-Signature` over `"{t}.{body}"` with the subscription's
//!   signing key), including the reschedule pair. They are queued ([`FakeCalendly::take_outbox`],
//!   [`FakeCalendly::deliver_pending`]) or, with [`FakeConfig::auto_deliver`], POSTed in order as they happen;
//! - `X-RateLimit-Limit/Remaining/Reset` on every response and real 429s past the limit: "500 requests per user
//!   per minute" (api-notes/calendly.md, Rate limits), enforced per token as a sliding window on arrival time with
//!   no slack (stricter than a fixed window, so a client that passes here passes Calendly), on tokio's clock;
//!   `Reset` is the seconds until the oldest request in the window leaves it;
//! - fault injection via [`FakeCalendly::server`]`.faults` and a request log via `.log`.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use calendly_api::fake::{Booking, FakeCalendly};
//! use calendly_api::webhook::WebhookEvent;
//!
//! let fake = FakeCalendly::start().await?;
//! let client = fake.client();
//! let sub = fake.subscribe("http://127.0.0.1:9/hooks", &[WebhookEvent::InviteeCreated], "signing-key");
//! let booked = fake.book(Booking::new("jane@example.com", "Jane Doe", chrono::Utc::now()));
//! assert_eq!(booked.webhooks.len(), 1); // signed invitee.created for `sub`, also in the outbox
//! let me = client.me().await.unwrap();
//! # let _ = (me, sub); Ok(()) }
//! ```

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use api_core::{Clock, SystemClock, Token, TokenSet, fake::FakeServer};
use axum::{
    Json, Router,
    extract::{Path, Query, Request, State},
    http::{HeaderMap, HeaderValue, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokio::time::Instant;
use url::Url;

use crate::{
    Client,
    invitees::{Invitee, NoShow},
    scheduled_events::{CancelerType, ScheduledEvent, format_time},
    uri::{EventTypeUri, InviteeUri, NoShowUri, OrganizationUri, UserUri, WebhookUri},
    webhook::{SIGNATURE_HEADER, WebhookDelivery, WebhookError, WebhookEvent, parse, sign},
    webhook_subscriptions::{SubscriptionState, WebhookScope, WebhookSubscription},
};

/// The personal access token the fake accepts by default.
pub const DEFAULT_TOKEN: &str = "fake-calendly-pat";

/// Fake settings.
#[derive(Debug, Clone)]
pub struct FakeConfig {
    /// Requests allowed per token per window (Calendly: 500/min paid, 50/min Free).
    pub rate_limit: u32,
    /// The rate-limit window.
    pub rate_window: Duration,
    /// POST deliveries to subscription URLs as they happen (in order, one at a time) instead of queueing them.
    pub auto_deliver: bool,
    /// Emit the reschedule pair as `invitee.created` then `invitee.canceled` (default: canceled first). Calendly
    /// documents no order; consumers must handle both.
    pub reschedule_created_first: bool,
    /// Disable a subscription after this many consecutive failed deliveries (non-2xx or transport error) made by
    /// the fake (auto-delivery, [`FakeCalendly::deliver`], [`FakeCalendly::deliver_pending`]), as Calendly does after
    /// 24 h of failures. `None` (default): never.
    pub disable_after_failures: Option<u32>,
    /// The clock for timestamps and signatures.
    pub clock: Arc<dyn Clock>,
    /// Act as if the clients were an OAuth app with this webhook signing key: "If you create the subscription from
    /// an OAuth app, Calendly generates the signing key instead" (api-notes/calendly.md, Webhooks): subscriptions
    /// created through the API ignore a `signing_key` in the body and sign with this key. `None` (default): a
    /// personal access token, whose subscriptions sign with the key sent on create.
    pub oauth_app_signing_key: Option<String>,
    /// The endpoint-specific limits of `POST /invitees` (the Scheduling API), each `(max, window)` enforced per
    /// token as a sliding window on arrival time with no slack. Default: Calendly's paid non-Enterprise tier, "10
    /// requests per user per minute, 50 per hour, 100 per day" (api-notes/calendly.md §1 "Rate limits"; C-rn
    /// 2026/4/15). Trial: `[(5, 1 day)]`; Enterprise: `[(500, 1 min)]`.
    pub invitee_create_limits: Vec<(u32, Duration)>,
}

/// Calendly's `POST /invitees` limits for paid non-Enterprise plans: 10/minute, 50/hour, 100/day per user.
#[must_use]
pub fn paid_invitee_create_limits() -> Vec<(u32, Duration)> {
    vec![(10, Duration::from_secs(60)), (50, Duration::from_secs(3600)), (100, Duration::from_secs(86_400))]
}

impl Default for FakeConfig {
    fn default() -> Self {
        Self {
            rate_limit: 500,
            rate_window: Duration::from_secs(60),
            auto_deliver: false,
            reschedule_created_first: false,
            disable_after_failures: None,
            clock: Arc::new(SystemClock),
            oauth_app_signing_key: None,
            invitee_create_limits: paid_invitee_create_limits(),
        }
    }
}

/// A scenario operation on something that does not exist or is in the wrong state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FakeError {
    /// No such resource.
    #[error("not found: {0}")]
    NotFound(String),
    /// The resource is not in a state that allows this.
    #[error("invalid state: {0}")]
    InvalidState(String),
}

/// A booking for [`FakeCalendly::book`].
#[derive(Debug, Clone)]
#[must_use]
pub struct Booking {
    /// Invitee email.
    pub email: String,
    /// Invitee name.
    pub name: String,
    /// Start time.
    pub start_time: DateTime<Utc>,
    /// Event type (default: the fake's first event type); its duration sets the end time.
    pub event_type: Option<EventTypeUri>,
    /// Host (default: the fake's main user).
    pub host: Option<UserUri>,
    /// Invitee time zone.
    pub timezone: String,
    /// Question/answer pairs.
    pub questions: Vec<(String, String)>,
    /// `tracking.utm_source`.
    pub utm_source: Option<String>,
    /// `scheduling_method` (`None` = booking page).
    pub scheduling_method: Option<String>,
}

impl Booking {
    /// A booking of `email`/`name` at `start_time` on the default event type with the default host.
    pub fn new(email: impl Into<String>, name: impl Into<String>, start_time: DateTime<Utc>) -> Self {
        Self {
            email: email.into(),
            name: name.into(),
            start_time,
            event_type: None,
            host: None,
            timezone: "America/Los_Angeles".into(),
            questions: Vec::new(),
            utm_source: None,
            scheduling_method: None,
        }
    }

    /// On this event type.
    pub fn event_type(mut self, et: EventTypeUri) -> Self {
        self.event_type = Some(et);
        self
    }

    /// With this host.
    pub fn host(mut self, host: UserUri) -> Self {
        self.host = Some(host);
        self
    }

    /// Adds an answered question.
    pub fn answer(mut self, question: impl Into<String>, answer: impl Into<String>) -> Self {
        self.questions.push((question.into(), answer.into()));
        self
    }

    /// Sets `tracking.utm_source`.
    pub fn utm_source(mut self, s: impl Into<String>) -> Self {
        self.utm_source = Some(s.into());
        self
    }
}

/// A webhook delivery as Calendly would send it to one subscription: the exact body bytes and headers.
#[derive(Debug, Clone)]
pub struct OutgoingWebhook {
    /// The subscription it is for.
    pub subscription: WebhookUri,
    /// Where it goes (`callback_url`).
    pub url: String,
    /// The event.
    pub event: WebhookEvent,
    /// The body, byte for byte (signatures cover these bytes).
    pub body: Bytes,
    /// Headers: `Content-Type`, and `Calendly-Webhook-Signature` when the subscription has a signing key.
    pub headers: Vec<(String, String)>,
    /// The signature timestamp (unix seconds).
    pub timestamp: i64,
}

impl OutgoingWebhook {
    /// A header's value (name case-insensitive).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The `Calendly-Webhook-Signature` value, if signed.
    #[must_use]
    pub fn signature(&self) -> Option<&str> {
        self.header(SIGNATURE_HEADER)
    }

    /// The headers as an [`http::HeaderMap`] (for handlers under test).
    #[must_use]
    pub fn header_map(&self) -> http::HeaderMap {
        let mut m = http::HeaderMap::new();
        for (k, v) in &self.headers {
            if let (Ok(k), Ok(v)) = (http::HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(v)) {
                m.insert(k, v);
            }
        }
        m
    }

    /// A copy signed with `key` at `timestamp` (e.g. a stale replay: the same body signed long ago).
    #[must_use]
    pub fn resigned(&self, key: &str, timestamp: i64) -> Self {
        let mut w = self.clone();
        w.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(SIGNATURE_HEADER));
        w.headers.push((SIGNATURE_HEADER.to_owned(), sign(key.as_bytes(), timestamp, &w.body)));
        w.timestamp = timestamp;
        w
    }

    /// A copy with a forged signature (signed with a key the receiver does not know), for rejection tests.
    #[must_use]
    pub fn forged(&self) -> Self {
        self.resigned("forged-key-not-the-signing-key", self.timestamp)
    }

    /// Parses the body (no signature check).
    ///
    /// # Errors
    /// [`WebhookError`].
    pub fn parse(&self) -> Result<WebhookDelivery, WebhookError> {
        parse(&self.body)
    }

    /// POSTs it to [`OutgoingWebhook::url`] and returns the status.
    ///
    /// # Errors
    /// The transport error text.
    pub async fn post(&self, http: &reqwest::Client) -> Result<u16, String> {
        let mut req = http.post(&self.url).body(self.body.clone());
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        req.send().await.map(|r| r.status().as_u16()).map_err(|e| e.to_string())
    }
}

/// One auto-delivery attempt.
#[derive(Debug, Clone)]
pub struct DeliveryRecord {
    /// What was sent.
    pub webhook: OutgoingWebhook,
    /// The receiver's status, or the transport error.
    pub result: Result<u16, String>,
}

/// The outcome of [`FakeCalendly::book`].
#[derive(Debug, Clone)]
pub struct Booked {
    /// The new scheduled event.
    pub event: ScheduledEvent,
    /// The new invitee.
    pub invitee: Invitee,
    /// The deliveries produced (`invitee.created`).
    pub webhooks: Vec<OutgoingWebhook>,
}

/// The outcome of [`FakeCalendly::reschedule`].
#[derive(Debug, Clone)]
pub struct Rescheduled {
    /// The old invitee, now canceled with `rescheduled: true` and `new_invitee`.
    pub old: Invitee,
    /// The new invitee (`old_invitee` set) on the new event.
    pub new: Invitee,
    /// The new scheduled event.
    pub event: ScheduledEvent,
    /// The deliveries produced (`invitee.canceled` and `invitee.created`).
    pub webhooks: Vec<OutgoingWebhook>,
}

/// A subscription with the signing key it was created with (Calendly keeps it; the API never shows it).
#[derive(Debug, Clone)]
pub struct FakeSubscription {
    /// The subscription as the API shows it.
    pub subscription: WebhookSubscription,
    /// Its signing key.
    pub signing_key: Option<Token>,
}

// ----------------------------------------------------------------------------------------------------------------
// state

#[derive(Debug, Clone)]
struct UserRec {
    uuid: String,
    name: String,
    email: String,
    role: &'static str,
    timezone: String,
    created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
struct EventTypeRec {
    uuid: String,
    name: String,
    minutes: i64,
    owner: String,
    created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
struct EventRec {
    uuid: String,
    name: String,
    canceled: bool,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    event_type: String,
    host: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    cancellation: Option<Value>,
}

#[derive(Debug, Clone)]
struct InviteeRec {
    uuid: String,
    event: String,
    email: String,
    name: String,
    canceled: bool,
    timezone: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    questions: Vec<(String, String)>,
    utm_source: Option<String>,
    scheduling_method: Option<String>,
    rescheduled: bool,
    old_invitee: Option<String>,
    new_invitee: Option<String>,
    cancellation: Option<Value>,
    no_show: Option<(String, DateTime<Utc>)>,
}

#[derive(Debug, Clone)]
struct SubRec {
    uuid: String,
    url: String,
    events: Vec<WebhookEvent>,
    scope: WebhookScope,
    user: Option<String>,
    group: Option<String>,
    signing_key: Option<String>,
    state: SubscriptionState,
    created_at: DateTime<Utc>,
    creator: String,
}

#[derive(Debug)]
struct St {
    base: String,
    org: String,
    users: Vec<UserRec>,
    event_types: Vec<EventTypeRec>,
    events: Vec<EventRec>,
    invitees: Vec<InviteeRec>,
    subs: Vec<SubRec>,
    tokens: HashSet<String>,
    /// access token → user uuid (all tokens act as the main user)
    refresh_tokens: HashSet<String>,
    used_refresh_tokens: HashSet<String>,
    rate_limit: u32,
    rate_window: Duration,
    /// admitted request times per token, oldest first (the sliding window)
    windows: HashMap<String, std::collections::VecDeque<Instant>>,
    outbox: Vec<OutgoingWebhook>,
    config_created_first: bool,
    disable_after_failures: Option<u32>,
    /// consecutive failed deliveries per subscription uuid
    failures: HashMap<String, u32>,
    oauth_app_signing_key: Option<String>,
    invitee_create_limits: Vec<(u32, Duration)>,
    /// admitted `POST /invitees` arrivals per token, oldest first
    invitee_create_arrivals: HashMap<String, std::collections::VecDeque<Instant>>,
    /// single-use scheduling links: (booking URL, event type uuid)
    scheduling_links: Vec<(String, String)>,
}

impl St {
    /// Records a delivery result; disables the subscription after too many consecutive failures.
    fn record_delivery(&mut self, w: &OutgoingWebhook, result: &Result<u16, String>) {
        let ok = matches!(result, Ok(s) if (200..300).contains(s));
        let uuid = w.subscription.uuid().to_owned();
        if ok {
            self.failures.remove(&uuid);
            return;
        }
        let n = {
            let e = self.failures.entry(uuid.clone()).or_insert(0);
            *e += 1;
            *e
        };
        if self.disable_after_failures.is_some_and(|max| n >= max)
            && let Some(sub) = self.subs.iter_mut().find(|x| x.uuid == uuid)
        {
            sub.state = SubscriptionState::Disabled;
        }
    }
}

impl St {
    fn uri(&self, coll: &str, uuid: &str) -> String {
        format!("{}/{coll}/{uuid}", self.base)
    }
    fn user_uri(&self, uuid: &str) -> String {
        self.uri("users", uuid)
    }
    fn org_uri(&self) -> String {
        self.uri("organizations", &self.org)
    }
    fn event_uri(&self, uuid: &str) -> String {
        self.uri("scheduled_events", uuid)
    }
    fn invitee_uri(&self, inv: &InviteeRec) -> String {
        format!("{}/invitees/{}", self.event_uri(&inv.event), inv.uuid)
    }
    fn main_user(&self) -> &UserRec {
        &self.users[0]
    }
    fn user(&self, uuid: &str) -> Option<&UserRec> {
        self.users.iter().find(|u| u.uuid == uuid)
    }

    fn render_user(&self, u: &UserRec, with_org: bool) -> Value {
        let mut v = json!({
            "uri": self.user_uri(&u.uuid),
            "name": u.name,
            "slug": slug(&u.name),
            "email": u.email,
            "scheduling_url": format!("https://calendly.com/{}", slug(&u.name)),
            "timezone": u.timezone,
            "avatar_url": null,
            "created_at": ts(u.created_at),
            "updated_at": ts(u.created_at),
        });
        if with_org {
            v["current_organization"] = json!(self.org_uri());
        }
        v
    }

    fn render_event_type(&self, et: &EventTypeRec) -> Value {
        let owner = self.user(&et.owner).map_or_else(|| "Host".to_owned(), |u| u.name.clone());
        json!({
            "uri": self.uri("event_types", &et.uuid),
            "name": et.name,
            "active": true,
            "slug": slug(&et.name),
            "scheduling_url": format!("https://calendly.com/{}/{}", slug(&owner), slug(&et.name)),
            "duration": et.minutes,
            "kind": "solo",
            "pooling_type": null,
            "type": "StandardEventType",
            "color": "#fff200",
            "created_at": ts(et.created_at),
            "updated_at": ts(et.created_at),
            "internal_note": null,
            "description_plain": null,
            "description_html": null,
            "profile": {"type": "User", "name": owner, "owner": self.user_uri(&et.owner)},
            "secret": false,
            "booking_method": "instant",
            "custom_questions": [],
            "deleted_at": null,
            "admin_managed": false,
        })
    }

    fn render_event(&self, e: &EventRec) -> Value {
        let invs: Vec<&InviteeRec> = self.invitees.iter().filter(|i| i.event == e.uuid).collect();
        let host = self.user(&e.host).cloned().unwrap_or_else(|| self.main_user().clone());
        let mut v = json!({
            "created_at": ts(e.created_at),
            "end_time": ts(e.end),
            "event_guests": [],
            "event_memberships": [
                {"user": self.user_uri(&host.uuid), "user_email": host.email, "user_name": host.name}
            ],
            "event_type": self.uri("event_types", &e.event_type),
            "invitees_counter": {
                "total": invs.len(),
                "active": invs.iter().filter(|i| !i.canceled).count(),
                "limit": 1
            },
            "location": {
                "data": {"id": 10_000_000_001_u64, "settings": {}, "password": "fake", "extra": null},
                "join_url": format!("https://us05web.zoom.us/j/10000000001?pwd={}", e.uuid),
                "status": "pushed",
                "type": "zoom"
            },
            "meeting_notes_html": null,
            "meeting_notes_plain": null,
            "name": e.name,
            "start_time": ts(e.start),
            "status": if e.canceled { "canceled" } else { "active" },
            "updated_at": ts(e.updated_at),
            "uri": self.event_uri(&e.uuid),
        });
        if let Some(c) = &e.cancellation {
            v["cancellation"] = c.clone();
        }
        v
    }

    fn render_invitee(&self, i: &InviteeRec, embed: bool) -> Value {
        let mut v = json!({
            "cancel_url": format!("https://calendly.com/cancellations/{}", i.uuid),
            "created_at": ts(i.created_at),
            "email": i.email,
            "event": self.event_uri(&i.event),
            "first_name": null,
            "invitee_scheduled_by": null,
            "last_name": null,
            "name": i.name,
            "new_invitee": i.new_invitee,
            "no_show": i.no_show.as_ref().map(|(u, t)| json!({"uri": self.uri("invitee_no_shows", u), "created_at": ts(*t)})),
            "old_invitee": i.old_invitee,
            "payment": null,
            "questions_and_answers": i.questions.iter().enumerate()
                .map(|(n, (q, a))| json!({"answer": a, "position": n, "question": q}))
                .collect::<Vec<_>>(),
            "reconfirmation": null,
            "reschedule_url": format!("https://calendly.com/reschedulings/{}", i.uuid),
            "rescheduled": i.rescheduled,
            "routing_form_submission": null,
            "scheduling_method": i.scheduling_method,
            "status": if i.canceled { "canceled" } else { "active" },
            "text_reminder_number": null,
            "timezone": i.timezone,
            "tracking": {
                "utm_campaign": null, "utm_source": i.utm_source, "utm_medium": null,
                "utm_content": null, "utm_term": null, "salesforce_uuid": null
            },
            "updated_at": ts(i.updated_at),
            "uri": self.invitee_uri(i),
        });
        if let Some(c) = &i.cancellation {
            v["cancellation"] = c.clone();
        }
        if embed && let Some(e) = self.events.iter().find(|e| e.uuid == i.event) {
            v["scheduled_event"] = self.render_event(e);
        }
        v
    }

    fn render_sub(&self, s: &SubRec) -> Value {
        json!({
            "uri": self.uri("webhook_subscriptions", &s.uuid),
            "callback_url": s.url,
            "created_at": ts(s.created_at),
            "updated_at": ts(s.created_at),
            "retry_started_at": null,
            "state": s.state,
            "events": s.events,
            "scope": s.scope,
            "organization": self.org_uri(),
            "user": s.user.as_ref().map(|u| self.user_uri(u)),
            "group": s.group,
            "creator": self.user_uri(&s.creator),
        })
    }

    /// Builds the deliveries of `event` about invitee `inv_uuid` for every matching active subscription.
    fn emit(&mut self, event: &WebhookEvent, inv_uuid: &str, now: DateTime<Utc>) -> Vec<OutgoingWebhook> {
        let Some(inv) = self.invitees.iter().find(|i| i.uuid == inv_uuid) else { return Vec::new() };
        let host = self.events.iter().find(|e| e.uuid == inv.event).map(|e| e.host.clone()).unwrap_or_default();
        let payload = self.render_invitee(inv, true);
        let mut out = Vec::new();
        for s in &self.subs {
            let scope_ok = match s.scope {
                WebhookScope::Organization => true,
                WebhookScope::User => s.user.as_deref() == Some(host.as_str()),
                _ => false,
            };
            if s.state != SubscriptionState::Active || !s.events.contains(event) || !scope_ok {
                continue;
            }
            let body = json!({
                "created_at": ts(now),
                "created_by": self.user_uri(&s.creator),
                "event": event,
                "payload": payload,
            });
            out.push(make_outgoing(s, &self.uri("webhook_subscriptions", &s.uuid), event, &body, now.timestamp()));
        }
        out
    }
}

fn make_outgoing(s: &SubRec, sub_uri: &str, event: &WebhookEvent, body: &Value, t: i64) -> OutgoingWebhook {
    let body = Bytes::from(serde_json::to_vec(body).expect("JSON serializes"));
    let mut headers = vec![("Content-Type".to_owned(), "application/json; charset=utf-8".to_owned())];
    if let Some(k) = &s.signing_key {
        headers.push((SIGNATURE_HEADER.to_owned(), sign(k.as_bytes(), t, &body)));
    }
    OutgoingWebhook {
        subscription: WebhookUri::from(sub_uri),
        url: s.url.clone(),
        event: event.clone(),
        body,
        headers,
        timestamp: t,
    }
}

fn ts(t: DateTime<Utc>) -> String {
    format_time(t)
}

fn slug(s: &str) -> String {
    s.to_ascii_lowercase().split_whitespace().collect::<Vec<_>>().join("-")
}

fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

// ----------------------------------------------------------------------------------------------------------------
// the fake

#[derive(Clone)]
struct Shared {
    st: Arc<Mutex<St>>,
    clock: Arc<dyn Clock>,
    deliver_tx: Option<tokio::sync::mpsc::UnboundedSender<OutgoingWebhook>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, St> {
        self.st.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
    fn now(&self) -> DateTime<Utc> {
        DateTime::<Utc>::from(self.clock.now())
    }
    /// Queues or sends deliveries.
    fn dispatch(&self, st: &mut St, webhooks: &[OutgoingWebhook]) {
        for w in webhooks {
            match &self.deliver_tx {
                Some(tx) => {
                    let _ = tx.send(w.clone());
                }
                None => st.outbox.push(w.clone()),
            }
        }
    }
}

/// A running fake Calendly. Stops when dropped.
pub struct FakeCalendly {
    /// The server: `base_url`, `log` (requests received) and `faults` (inject 429/5xx/delays/drops).
    pub server: FakeServer,
    shared: Shared,
    deliveries: Arc<Mutex<Vec<DeliveryRecord>>>,
    http: Arc<std::sync::OnceLock<reqwest::Client>>,
}

impl std::fmt::Debug for FakeCalendly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeCalendly").field("base_url", &self.server.base_url.as_str()).finish_non_exhaustive()
    }
}

impl FakeCalendly {
    /// Starts a fake with [`FakeConfig::default`]: one organization, its owner (the main user, token
    /// [`DEFAULT_TOKEN`]) and one 30-minute event type "Intro call".
    ///
    /// # Errors
    /// When the socket cannot be bound.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_with(FakeConfig::default()).await
    }

    /// Starts a fake with `config`.
    ///
    /// # Errors
    /// When the socket cannot be bound.
    pub async fn start_with(config: FakeConfig) -> std::io::Result<Self> {
        // bind first so URIs can use the real base URL
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        drop(listener);
        let base = format!("http://{addr}");
        let now = DateTime::<Utc>::from(config.clock.now());
        let owner = UserRec {
            uuid: new_uuid(),
            name: "Olivia Owner".into(),
            email: "owner@example.com".into(),
            role: "owner",
            timezone: "America/New_York".into(),
            created_at: now,
        };
        let et = EventTypeRec {
            uuid: new_uuid(),
            name: "Intro call".into(),
            minutes: 30,
            owner: owner.uuid.clone(),
            created_at: now,
        };
        let st = St {
            base,
            org: new_uuid(),
            users: vec![owner],
            event_types: vec![et],
            events: Vec::new(),
            invitees: Vec::new(),
            subs: Vec::new(),
            tokens: HashSet::from([DEFAULT_TOKEN.to_owned()]),
            refresh_tokens: HashSet::new(),
            used_refresh_tokens: HashSet::new(),
            rate_limit: config.rate_limit,
            rate_window: config.rate_window,
            windows: HashMap::new(),
            outbox: Vec::new(),
            config_created_first: config.reschedule_created_first,
            disable_after_failures: config.disable_after_failures,
            failures: HashMap::new(),
            oauth_app_signing_key: config.oauth_app_signing_key.clone(),
            invitee_create_limits: config.invitee_create_limits.clone(),
            invitee_create_arrivals: HashMap::new(),
            scheduling_links: Vec::new(),
        };
        // built on first delivery (building a reqwest client loads TLS roots)
        let http: Arc<std::sync::OnceLock<reqwest::Client>> = Arc::default();
        let deliveries: Arc<Mutex<Vec<DeliveryRecord>>> = Arc::default();
        let st = Arc::new(Mutex::new(st));
        let deliver_tx = if config.auto_deliver {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<OutgoingWebhook>();
            let http = http.clone();
            let log = deliveries.clone();
            let state = st.clone();
            tokio::spawn(async move {
                while let Some(w) = rx.recv().await {
                    let result = w.post(delivery_client(&http)).await;
                    state.lock().unwrap_or_else(std::sync::PoisonError::into_inner).record_delivery(&w, &result);
                    log.lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push(DeliveryRecord { webhook: w, result });
                }
            });
            Some(tx)
        } else {
            None
        };
        let shared = Shared { st, clock: config.clock.clone(), deliver_tx };
        let server = FakeServer::start_on(addr, router(shared.clone())).await?;
        Ok(Self { server, shared, deliveries, http })
    }

    /// The base URL (`http://127.0.0.1:<port>`); use it as both the API and the auth base URL.
    #[must_use]
    pub fn base_url(&self) -> &Url {
        &self.server.base_url
    }

    /// A client for the fake with [`DEFAULT_TOKEN`] and short retry backoff.
    ///
    /// # Panics
    /// Never in practice (the URL is valid).
    #[must_use]
    pub fn client(&self) -> Client {
        self.client_builder().token(Token::new(DEFAULT_TOKEN)).build().expect("valid fake client")
    }

    /// A client builder pointed at the fake (API and auth base URL), without credentials.
    pub fn client_builder(&self) -> crate::ClientBuilder {
        Client::builder().base_url(self.base_url().as_str()).auth_base_url(self.base_url().as_str()).retry_policy(
            api_core::RetryPolicy { base_delay: Duration::from_millis(10), ..api_core::RetryPolicy::default() },
        )
    }

    /// The main user (the organization owner; what `/users/me` returns).
    #[must_use]
    pub fn user(&self) -> UserUri {
        let st = self.shared.lock();
        UserUri::from(st.user_uri(&st.main_user().uuid))
    }

    /// The organization.
    #[must_use]
    pub fn organization(&self) -> OrganizationUri {
        OrganizationUri::from(self.shared.lock().org_uri())
    }

    /// The default event type ("Intro call", 30 minutes).
    #[must_use]
    pub fn event_type(&self) -> EventTypeUri {
        let st = self.shared.lock();
        EventTypeUri::from(st.uri("event_types", &st.event_types[0].uuid))
    }

    /// Adds an organization member (role `user`); returns their URI.
    #[must_use]
    pub fn add_user(&self, name: &str, email: &str) -> UserUri {
        let now = self.shared.now();
        let mut st = self.shared.lock();
        let u = UserRec {
            uuid: new_uuid(),
            name: name.into(),
            email: email.into(),
            role: "user",
            timezone: "America/New_York".into(),
            created_at: now,
        };
        let uri = st.user_uri(&u.uuid);
        st.users.push(u);
        UserUri::from(uri)
    }

    /// Adds an event type owned by `owner` (default: the main user).
    #[must_use]
    pub fn add_event_type(&self, name: &str, minutes: i64, owner: Option<&UserUri>) -> EventTypeUri {
        let now = self.shared.now();
        let mut st = self.shared.lock();
        let owner = owner.map_or_else(|| st.main_user().uuid.clone(), |u| u.uuid().to_owned());
        let et = EventTypeRec { uuid: new_uuid(), name: name.into(), minutes, owner, created_at: now };
        let uri = st.uri("event_types", &et.uuid);
        st.event_types.push(et);
        EventTypeUri::from(uri)
    }

    /// Sets a user's time zone (what `/users/me` reports; default `America/New_York`).
    ///
    /// # Errors
    /// [`FakeError::NotFound`].
    pub fn set_user_timezone(&self, user: &UserUri, timezone: &str) -> Result<(), FakeError> {
        let mut st = self.shared.lock();
        let u =
            st.users.iter_mut().find(|u| u.uuid == user.uuid()).ok_or_else(|| FakeError::NotFound(user.to_string()))?;
        u.timezone = timezone.to_owned();
        Ok(())
    }

    /// Accepts another bearer token (acting as the main user).
    pub fn add_token(&self, token: &str) {
        self.shared.lock().tokens.insert(token.to_owned());
    }

    /// Revokes a bearer token (later requests with it get 401).
    pub fn revoke_token(&self, token: &str) {
        self.shared.lock().tokens.remove(token);
    }

    /// Issues an OAuth token set (access token valid now, single-use refresh token, `expires_in` 7200 s).
    #[must_use]
    pub fn issue_oauth_tokens(&self) -> TokenSet {
        let now = self.shared.now().timestamp();
        let mut st = self.shared.lock();
        issue(&mut st, now)
    }

    /// Sets the rate limit per token per window.
    pub fn set_rate_limit(&self, max: u32, window: Duration) {
        let mut st = self.shared.lock();
        st.rate_limit = max;
        st.rate_window = window;
        st.windows.clear();
    }

    /// Sets the `POST /invitees` limits (see [`FakeConfig::invitee_create_limits`]) and forgets past arrivals.
    pub fn set_invitee_create_limits(&self, limits: Vec<(u32, Duration)>) {
        let mut st = self.shared.lock();
        st.invitee_create_limits = limits;
        st.invitee_create_arrivals.clear();
    }

    /// The single-use scheduling links created through `POST /scheduling_links`, oldest first.
    #[must_use]
    pub fn scheduling_links(&self) -> Vec<crate::scheduling_links::SchedulingLink> {
        let st = self.shared.lock();
        st.scheduling_links
            .iter()
            .map(|(url, et)| crate::scheduling_links::SchedulingLink {
                booking_url: url.clone(),
                owner: Some(EventTypeUri::from(st.uri("event_types", et))),
                owner_type: Some("EventType".into()),
                extra: serde_json::Map::new(),
            })
            .collect()
    }

    /// Books a meeting: a new scheduled event with one active invitee; emits `invitee.created`.
    ///
    /// # Panics
    /// When `booking.event_type` or `booking.host` is not known to the fake.
    pub fn book(&self, booking: Booking) -> Booked {
        let now = self.shared.now();
        let mut st = self.shared.lock();
        let (ev, webhooks) = book_locked(&mut st, booking, now);
        self.shared.dispatch(&mut st, &webhooks);
        let event = typed(st.render_event(&ev));
        let invitee = typed(st.render_invitee(st.invitees.last().expect("just pushed"), false));
        Booked { event, invitee, webhooks }
    }

    /// Cancels one invitee (as the invitee or the host); the event is canceled too when no active invitee remains.
    /// Emits `invitee.canceled`.
    ///
    /// # Errors
    /// [`FakeError`] for an unknown or already canceled invitee.
    #[allow(clippy::needless_pass_by_value)]
    pub fn cancel(
        &self,
        invitee: &InviteeUri,
        reason: Option<&str>,
        by: CancelerType,
    ) -> Result<(Invitee, Vec<OutgoingWebhook>), FakeError> {
        let now = self.shared.now();
        let mut st = self.shared.lock();
        let idx = find_active_invitee(&st, invitee)?;
        let canceled_by = match by {
            CancelerType::Invitee => st.invitees[idx].name.clone(),
            _ => st.main_user().name.clone(),
        };
        let c = json!({"canceled_by": canceled_by, "canceler_type": by, "created_at": ts(now), "reason": reason});
        cancel_invitee_locked(&mut st, idx, &c, now);
        let uuid = st.invitees[idx].uuid.clone();
        let webhooks = st.emit(&WebhookEvent::InviteeCanceled, &uuid, now);
        self.shared.dispatch(&mut st, &webhooks);
        Ok((typed(st.render_invitee(&st.invitees[idx], false)), webhooks))
    }

    /// Reschedules: the old invitee is canceled with `rescheduled: true` + `new_invitee`, a new event and a new
    /// invitee (`old_invitee` set) are created. Emits `invitee.canceled` and `invitee.created` (see
    /// [`FakeConfig::reschedule_created_first`] for the order).
    ///
    /// # Errors
    /// [`FakeError`] for an unknown or canceled invitee.
    pub fn reschedule(&self, invitee: &InviteeUri, new_start: DateTime<Utc>) -> Result<Rescheduled, FakeError> {
        let created_first = self.shared.lock().config_created_first;
        self.reschedule_ordered(invitee, new_start, created_first)
    }

    /// Like [`FakeCalendly::reschedule`], choosing the order of the pair: `created_first` emits `invitee.created`
    /// before `invitee.canceled`.
    ///
    /// # Errors
    /// [`FakeError`] for an unknown or canceled invitee.
    pub fn reschedule_ordered(
        &self,
        invitee: &InviteeUri,
        new_start: DateTime<Utc>,
        created_first: bool,
    ) -> Result<Rescheduled, FakeError> {
        let now = self.shared.now();
        let mut st = self.shared.lock();
        let idx = find_active_invitee(&st, invitee)?;
        let old = st.invitees[idx].clone();
        let old_ev = st.events.iter().find(|e| e.uuid == old.event).cloned().expect("invitee has an event");
        let minutes = (old_ev.end - old_ev.start).num_minutes();
        let ev = EventRec {
            uuid: new_uuid(),
            start: new_start,
            end: new_start + chrono::Duration::minutes(minutes),
            created_at: now,
            updated_at: now,
            canceled: false,
            cancellation: None,
            ..old_ev
        };
        let new_uuid_ = new_uuid();
        let old_uri = st.invitee_uri(&old);
        let new_inv = InviteeRec {
            uuid: new_uuid_.clone(),
            event: ev.uuid.clone(),
            created_at: now,
            updated_at: now,
            old_invitee: Some(old_uri),
            new_invitee: None,
            rescheduled: false,
            canceled: false,
            cancellation: None,
            no_show: None,
            ..old.clone()
        };
        let new_uri = st.invitee_uri(&new_inv);
        st.events.push(ev.clone());
        st.invitees.push(new_inv);
        let c = json!({"canceled_by": old.name, "canceler_type": "invitee", "created_at": ts(now), "reason": null});
        st.invitees[idx].rescheduled = true;
        st.invitees[idx].new_invitee = Some(new_uri);
        cancel_invitee_locked(&mut st, idx, &c, now);
        let canceled = st.emit(&WebhookEvent::InviteeCanceled, &old.uuid, now);
        let created = st.emit(&WebhookEvent::InviteeCreated, &new_uuid_, now);
        let webhooks: Vec<OutgoingWebhook> = if created_first {
            created.into_iter().chain(canceled).collect()
        } else {
            canceled.into_iter().chain(created).collect()
        };
        self.shared.dispatch(&mut st, &webhooks);
        let new_idx = st.invitees.len() - 1;
        Ok(Rescheduled {
            old: typed(st.render_invitee(&st.invitees[idx], false)),
            new: typed(st.render_invitee(&st.invitees[new_idx], false)),
            event: typed(st.render_event(&ev)),
            webhooks,
        })
    }

    /// Marks an invitee as a no-show; emits `invitee_no_show.created`.
    ///
    /// # Errors
    /// [`FakeError`] for an unknown invitee or one already marked.
    pub fn mark_no_show(&self, invitee: &InviteeUri) -> Result<(NoShow, Vec<OutgoingWebhook>), FakeError> {
        let now = self.shared.now();
        let mut st = self.shared.lock();
        let idx = find_invitee(&st, invitee)?;
        let (ns, webhooks) = mark_no_show_locked(&mut st, idx, now)?;
        self.shared.dispatch(&mut st, &webhooks);
        Ok((ns, webhooks))
    }

    /// Removes an invitee's no-show mark; emits `invitee_no_show.deleted`.
    ///
    /// # Errors
    /// [`FakeError`] for an unknown invitee or one not marked.
    pub fn unmark_no_show(&self, invitee: &InviteeUri) -> Result<Vec<OutgoingWebhook>, FakeError> {
        let now = self.shared.now();
        let mut st = self.shared.lock();
        let idx = find_invitee(&st, invitee)?;
        let webhooks = unmark_no_show_locked(&mut st, idx, now)?;
        self.shared.dispatch(&mut st, &webhooks);
        Ok(webhooks)
    }

    /// Creates a subscription directly (organization scope, created by the main user) with `signing_key`.
    #[must_use]
    pub fn subscribe(&self, url: &str, events: &[WebhookEvent], signing_key: &str) -> WebhookUri {
        let now = self.shared.now();
        let mut st = self.shared.lock();
        let s = SubRec {
            uuid: new_uuid(),
            url: url.into(),
            events: events.to_vec(),
            scope: WebhookScope::Organization,
            user: None,
            group: None,
            signing_key: Some(signing_key.into()),
            state: SubscriptionState::Active,
            created_at: now,
            creator: st.main_user().uuid.clone(),
        };
        let uri = st.uri("webhook_subscriptions", &s.uuid);
        st.subs.push(s);
        WebhookUri::from(uri)
    }

    /// Sets a subscription's state (e.g. `Disabled`, as Calendly does after 24 h of failed deliveries).
    ///
    /// # Errors
    /// [`FakeError::NotFound`].
    pub fn set_subscription_state(&self, uri: &WebhookUri, state: SubscriptionState) -> Result<(), FakeError> {
        let mut st = self.shared.lock();
        let s =
            st.subs.iter_mut().find(|s| s.uuid == uri.uuid()).ok_or_else(|| FakeError::NotFound(uri.to_string()))?;
        s.state = state;
        Ok(())
    }

    /// All subscriptions with their signing keys.
    #[must_use]
    pub fn subscriptions(&self) -> Vec<FakeSubscription> {
        let st = self.shared.lock();
        st.subs
            .iter()
            .map(|s| FakeSubscription {
                subscription: typed(st.render_sub(s)),
                signing_key: s.signing_key.clone().map(Token::new),
            })
            .collect()
    }

    /// All scheduled events, in creation order.
    #[must_use]
    pub fn scheduled_events(&self) -> Vec<ScheduledEvent> {
        let st = self.shared.lock();
        st.events.iter().map(|e| typed(st.render_event(e))).collect()
    }

    /// All invitees, in creation order.
    #[must_use]
    pub fn invitees(&self) -> Vec<Invitee> {
        let st = self.shared.lock();
        st.invitees.iter().map(|i| typed(st.render_invitee(i, false))).collect()
    }

    /// One invitee.
    #[must_use]
    pub fn invitee(&self, uri: &InviteeUri) -> Option<Invitee> {
        let st = self.shared.lock();
        st.invitees.iter().find(|i| i.uuid == uri.uuid()).map(|i| typed(st.render_invitee(i, false)))
    }

    /// Deliveries queued so far (not auto-delivered), without removing them.
    #[must_use]
    pub fn outbox(&self) -> Vec<OutgoingWebhook> {
        self.shared.lock().outbox.clone()
    }

    /// Removes and returns the queued deliveries (for the caller to deliver or inspect).
    #[must_use]
    pub fn take_outbox(&self) -> Vec<OutgoingWebhook> {
        std::mem::take(&mut self.shared.lock().outbox)
    }

    /// POSTs every queued delivery in order and returns each with the receiver's status (or the transport error).
    pub async fn deliver_pending(&self) -> Vec<DeliveryRecord> {
        let mut out = Vec::new();
        for w in self.take_outbox() {
            let result = self.deliver(&w).await;
            out.push(DeliveryRecord { webhook: w, result });
        }
        out
    }

    /// POSTs one delivery (again, e.g. to simulate Calendly's retry of the same event) and returns the status.
    ///
    /// # Errors
    /// The transport error text.
    pub async fn deliver(&self, webhook: &OutgoingWebhook) -> Result<u16, String> {
        let result = webhook.post(delivery_client(&self.http)).await;
        self.shared.lock().record_delivery(webhook, &result);
        result
    }

    /// Auto-deliveries made so far ([`FakeConfig::auto_deliver`]).
    #[must_use]
    pub fn delivery_log(&self) -> Vec<DeliveryRecord> {
        self.deliveries.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Waits (polling every 10 ms, up to `timeout`) until at least `n` auto-deliveries were made; returns the log.
    pub async fn wait_for_deliveries(&self, n: usize, timeout: Duration) -> Vec<DeliveryRecord> {
        let start = Instant::now();
        loop {
            let log = self.delivery_log();
            if log.len() >= n || start.elapsed() >= timeout {
                return log;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// The client that delivers webhooks (Calendly's delivery timeouts: connect 10 s, read 15 s).
fn delivery_client(cell: &std::sync::OnceLock<reqwest::Client>) -> &reqwest::Client {
    cell.get_or_init(|| {
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(15))
            .build()
            .unwrap_or_default()
    })
}

fn typed<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).expect("the fake renders what the crate decodes")
}

fn issue(st: &mut St, now: i64) -> TokenSet {
    let access = format!("fake-access-{}", new_uuid());
    let refresh = format!("fake-refresh-{}", new_uuid());
    st.tokens.insert(access.clone());
    st.refresh_tokens.insert(refresh.clone());
    TokenSet::from_expires_in(Token::new(access), Some(Token::new(refresh)), Some(7200), now)
}

/// Books a meeting in the state: a new event with one active invitee (the last one in `st.invitees`); returns the
/// event and the `invitee.created` deliveries.
///
/// # Panics
/// When `booking.event_type` or `booking.host` is not known to the fake.
fn book_locked(st: &mut St, booking: Booking, now: DateTime<Utc>) -> (EventRec, Vec<OutgoingWebhook>) {
    let et = match &booking.event_type {
        Some(u) => st.event_types.iter().find(|e| e.uuid == u.uuid()).cloned().expect("unknown event type"),
        None => st.event_types[0].clone(),
    };
    let host = booking.host.as_ref().map_or_else(|| et.owner.clone(), |h| h.uuid().to_owned());
    assert!(st.user(&host).is_some(), "unknown host {host}");
    let ev = EventRec {
        uuid: new_uuid(),
        name: et.name.clone(),
        canceled: false,
        start: booking.start_time,
        end: booking.start_time + chrono::Duration::minutes(et.minutes),
        event_type: et.uuid.clone(),
        host,
        created_at: now,
        updated_at: now,
        cancellation: None,
    };
    let inv = InviteeRec {
        uuid: new_uuid(),
        event: ev.uuid.clone(),
        email: booking.email,
        name: booking.name,
        canceled: false,
        timezone: booking.timezone,
        created_at: now,
        updated_at: now,
        questions: booking.questions,
        utm_source: booking.utm_source,
        scheduling_method: booking.scheduling_method,
        rescheduled: false,
        old_invitee: None,
        new_invitee: None,
        cancellation: None,
        no_show: None,
    };
    let inv_uuid = inv.uuid.clone();
    st.events.push(ev.clone());
    st.invitees.push(inv);
    let webhooks = st.emit(&WebhookEvent::InviteeCreated, &inv_uuid, now);
    (ev, webhooks)
}

fn find_invitee(st: &St, uri: &InviteeUri) -> Result<usize, FakeError> {
    st.invitees.iter().position(|i| i.uuid == uri.uuid()).ok_or_else(|| FakeError::NotFound(uri.to_string()))
}

fn find_active_invitee(st: &St, uri: &InviteeUri) -> Result<usize, FakeError> {
    let idx = find_invitee(st, uri)?;
    if st.invitees[idx].canceled {
        return Err(FakeError::InvalidState(format!("invitee already canceled: {uri}")));
    }
    Ok(idx)
}

fn cancel_invitee_locked(st: &mut St, idx: usize, c: &Value, now: DateTime<Utc>) {
    let inv = &mut st.invitees[idx];
    inv.canceled = true;
    inv.cancellation = Some(c.clone());
    inv.updated_at = now;
    let ev_uuid = inv.event.clone();
    let any_active = st.invitees.iter().any(|i| i.event == ev_uuid && !i.canceled);
    if let Some(ev) = st.events.iter_mut().find(|e| e.uuid == ev_uuid) {
        ev.updated_at = now;
        if !any_active {
            ev.canceled = true;
            ev.cancellation = Some(c.clone());
        }
    }
}

fn mark_no_show_locked(
    st: &mut St,
    idx: usize,
    now: DateTime<Utc>,
) -> Result<(NoShow, Vec<OutgoingWebhook>), FakeError> {
    if st.invitees[idx].no_show.is_some() {
        return Err(FakeError::InvalidState("invitee is already marked as a no-show".into()));
    }
    let ns_uuid = new_uuid();
    st.invitees[idx].no_show = Some((ns_uuid.clone(), now));
    st.invitees[idx].updated_at = now;
    let inv_uuid = st.invitees[idx].uuid.clone();
    let ns = NoShow {
        uri: NoShowUri::from(st.uri("invitee_no_shows", &ns_uuid)),
        created_at: Some(now),
        invitee: Some(InviteeUri::from(st.invitee_uri(&st.invitees[idx]))),
    };
    let webhooks = st.emit(&WebhookEvent::InviteeNoShowCreated, &inv_uuid, now);
    Ok((ns, webhooks))
}

fn unmark_no_show_locked(st: &mut St, idx: usize, now: DateTime<Utc>) -> Result<Vec<OutgoingWebhook>, FakeError> {
    if st.invitees[idx].no_show.is_none() {
        return Err(FakeError::InvalidState("invitee is not marked as a no-show".into()));
    }
    let inv_uuid = st.invitees[idx].uuid.clone();
    // the deleted event still describes the mark that was removed
    let webhooks = st.emit(&WebhookEvent::InviteeNoShowDeleted, &inv_uuid, now);
    st.invitees[idx].no_show = None;
    st.invitees[idx].updated_at = now;
    Ok(webhooks)
}

// ----------------------------------------------------------------------------------------------------------------
// HTTP

fn error(status: StatusCode, title: &str, message: &str) -> Response {
    (status, Json(json!({"title": title, "message": message}))).into_response()
}

fn invalid(parameter: &str, message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({
            "title": "Invalid Argument",
            "message": "The supplied parameters are invalid.",
            "details": [{"parameter": parameter, "message": message}]
        })),
    )
        .into_response()
}

fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "Resource Not Found", "The server could not find the requested resource.")
}

fn resource(status: StatusCode, v: Value) -> Response {
    let mut m = serde_json::Map::new();
    m.insert("resource".to_owned(), v);
    (status, Json(Value::Object(m))).into_response()
}

type Q = Query<HashMap<String, String>>;

fn router(shared: Shared) -> Router {
    let api = Router::new()
        .route("/users/me", get(users_me))
        .route("/users/{uuid}", get(get_user))
        .route("/organization_memberships", get(list_memberships))
        .route("/event_types", get(list_event_types))
        .route("/event_types/{uuid}", get(get_event_type))
        .route("/scheduling_links", post(create_scheduling_link))
        .route("/event_type_available_times", get(available_times))
        .route("/invitees", post(create_invitee))
        .route("/scheduled_events", get(list_events))
        .route("/scheduled_events/{uuid}", get(get_event))
        .route("/scheduled_events/{uuid}/invitees", get(list_invitees))
        .route("/scheduled_events/{uuid}/invitees/{inv}", get(get_invitee))
        .route("/scheduled_events/{uuid}/cancellation", post(cancel_event))
        .route("/invitee_no_shows", post(create_no_show))
        .route("/invitee_no_shows/{uuid}", get(get_no_show).delete(delete_no_show))
        .route("/webhook_subscriptions", get(list_subs).post(create_sub))
        .route("/webhook_subscriptions/{uuid}", get(get_sub).delete(delete_sub))
        .route("/sample_webhook_data", get(sample_data))
        .route_layer(middleware::from_fn_with_state(shared.clone(), auth_and_rate_limit));
    Router::new().route("/oauth/token", post(oauth_token)).merge(api).with_state(shared)
}

async fn auth_and_rate_limit(State(s): State<Shared>, req: Request, next: Next) -> Response {
    let token = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let (admitted, headers) = {
        let mut st = s.lock();
        let Some(token) = token.filter(|t| st.tokens.contains(t)) else {
            drop(st);
            return error(StatusCode::UNAUTHORIZED, "Unauthenticated", "The access token is invalid");
        };
        let now = Instant::now();
        let (window, max) = (st.rate_window, st.rate_limit);
        let arrivals = st.windows.entry(token).or_default();
        while arrivals.front().is_some_and(|t| now.duration_since(*t) >= window) {
            arrivals.pop_front();
        }
        let admitted = arrivals.len() < max as usize;
        if admitted {
            arrivals.push_back(now);
        }
        let remaining = u32::try_from(max as usize - arrivals.len().min(max as usize)).unwrap_or(0);
        let reset = arrivals.front().map_or(Duration::ZERO, |t| (*t + window).saturating_duration_since(now));
        let reset_s = reset.as_secs() + u64::from(reset.subsec_nanos() > 0);
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-limit", HeaderValue::from(max));
        h.insert("x-ratelimit-remaining", HeaderValue::from(remaining));
        h.insert("x-ratelimit-reset", HeaderValue::from(reset_s));
        (admitted, h)
    };
    let mut resp = if admitted {
        next.run(req).await
    } else {
        error(
            StatusCode::TOO_MANY_REQUESTS,
            "Too Many Requests",
            "You have exceeded the rate limit. Please try again later.",
        )
    };
    // a handler's own limit headers (the `POST /invitees` limits) win over the general ones
    for (k, v) in &headers {
        if !resp.headers().contains_key(k) {
            resp.headers_mut().insert(k.clone(), v.clone());
        }
    }
    resp
}

async fn oauth_token(State(s): State<Shared>, body: String) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
    let bad =
        |e: &str, d: &str| (StatusCode::BAD_REQUEST, Json(json!({"error": e, "error_description": d}))).into_response();
    match form.get("grant_type").map(String::as_str) {
        Some("refresh_token") => {
            let Some(rt) = form.get("refresh_token") else { return bad("invalid_request", "refresh_token missing") };
            let now = s.now().timestamp();
            let mut st = s.lock();
            if !st.refresh_tokens.remove(rt) {
                let d = if st.used_refresh_tokens.contains(rt) {
                    "refresh token already used"
                } else {
                    "unknown refresh token"
                };
                return bad("invalid_grant", d);
            }
            st.used_refresh_tokens.insert(rt.clone());
            let set = issue(&mut st, now);
            let org = st.org_uri();
            let owner = st.user_uri(&st.main_user().uuid);
            Json(json!({
                "token_type": "Bearer",
                "access_token": set.access_token.expose(),
                "refresh_token": set.refresh_token.as_ref().map(Token::expose),
                "expires_in": 7200,
                "scope": "default",
                "created_at": now,
                "owner": owner,
                "organization": org,
            }))
            .into_response()
        }
        Some(other) => bad("unsupported_grant_type", &format!("grant_type {other} is not supported by the fake")),
        None => bad("invalid_request", "grant_type missing"),
    }
}

async fn users_me(State(s): State<Shared>) -> Response {
    let st = s.lock();
    resource(StatusCode::OK, st.render_user(st.main_user(), true))
}

async fn get_user(State(s): State<Shared>, Path(uuid): Path<String>) -> Response {
    let st = s.lock();
    match st.user(&uuid) {
        Some(u) => resource(StatusCode::OK, st.render_user(u, true)),
        None => not_found(),
    }
}

/// Validates `count`, slices `items` at `page_token`, renders `{collection, pagination}`.
fn paged(base: &str, path: &str, q: &HashMap<String, String>, items: &[Value]) -> Response {
    let count = match q.get("count").map(|c| c.parse::<usize>()) {
        None => 20,
        Some(Ok(n)) if (1..=100).contains(&n) => n,
        Some(_) => return invalid("count", "must be an integer between 1 and 100"),
    };
    let offset = match q.get("page_token") {
        None => 0,
        Some(t) => match t.strip_prefix("pt_").and_then(|n| n.parse::<usize>().ok()) {
            Some(n) if n <= items.len() => n,
            _ => return invalid("page_token", "is invalid"),
        },
    };
    let end = (offset + count).min(items.len());
    let page: Vec<Value> = items[offset..end].to_vec();
    let link = |tok: &str| {
        let mut u = Url::parse(&format!("{base}{path}")).expect("valid URL");
        {
            let mut qp = u.query_pairs_mut();
            for (k, v) in q {
                if k != "page_token" {
                    qp.append_pair(k, v);
                }
            }
            qp.append_pair("page_token", tok);
        }
        u.to_string()
    };
    let next_tok = (end < items.len()).then(|| format!("pt_{end}"));
    let prev_tok = (offset > 0).then(|| format!("pt_{}", offset.saturating_sub(count)));
    Json(json!({
        "collection": page,
        "pagination": {
            "count": end - offset,
            "next_page": next_tok.as_deref().map(link),
            "previous_page": prev_tok.as_deref().map(link),
            "next_page_token": next_tok,
            "previous_page_token": prev_tok,
        }
    }))
    .into_response()
}

fn parse_time(q: &HashMap<String, String>, key: &str) -> Result<Option<DateTime<Utc>>, Box<Response>> {
    q.get(key)
        .map(|v| {
            DateTime::parse_from_rfc3339(v)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| Box::new(invalid(key, "must be an ISO-8601 UTC time")))
        })
        .transpose()
}

async fn list_memberships(State(s): State<Shared>, Query(q): Q) -> Response {
    let st = s.lock();
    let org = q.get("organization");
    let user = q.get("user");
    if org.is_none() && user.is_none() {
        return invalid("organization", "organization or user is required");
    }
    if org.is_some_and(|o| *o != st.org_uri()) {
        return error(
            StatusCode::FORBIDDEN,
            "Permission Denied",
            "You do not have permission to access this resource.",
        );
    }
    let items: Vec<Value> = st
        .users
        .iter()
        .filter(|u| user.is_none_or(|x| *x == st.user_uri(&u.uuid)))
        .filter(|u| q.get("email").is_none_or(|e| *e == u.email))
        .map(|u| {
            json!({
                "uri": st.uri("organization_memberships", &u.uuid),
                "role": u.role,
                "user": st.render_user(u, false),
                "organization": st.org_uri(),
                "created_at": ts(u.created_at),
                "updated_at": ts(u.created_at),
            })
        })
        .collect();
    paged(&st.base, "/organization_memberships", &q, &items)
}

async fn list_event_types(State(s): State<Shared>, Query(q): Q) -> Response {
    let st = s.lock();
    let user = q.get("user");
    if user.is_none() && !q.contains_key("organization") {
        return invalid("user", "user or organization is required");
    }
    let items: Vec<Value> = st
        .event_types
        .iter()
        .filter(|e| user.is_none_or(|u| *u == st.user_uri(&e.owner)))
        .map(|e| st.render_event_type(e))
        .collect();
    paged(&st.base, "/event_types", &q, &items)
}

async fn list_events(State(s): State<Shared>, Query(q): Q) -> Response {
    let st = s.lock();
    let user = q.get("user");
    let org = q.get("organization");
    if user.is_none() && org.is_none() && !q.contains_key("group") {
        return invalid("organization", "one of user, organization or group is required");
    }
    if org.is_some_and(|o| *o != st.org_uri()) {
        return error(
            StatusCode::FORBIDDEN,
            "Permission Denied",
            "You do not have permission to access this resource.",
        );
    }
    let (min, max) = match (parse_time(&q, "min_start_time"), parse_time(&q, "max_start_time")) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(r), _) | (_, Err(r)) => return *r,
    };
    let status = q.get("status");
    if status.is_some_and(|s| s != "active" && s != "canceled") {
        return invalid("status", "must be one of active, canceled");
    }
    let mut evs: Vec<&EventRec> = st
        .events
        .iter()
        .filter(|e| user.is_none_or(|u| *u == st.user_uri(&e.host)))
        .filter(|e| status.is_none_or(|s| (s == "canceled") == e.canceled))
        .filter(|e| min.is_none_or(|m| e.start >= m))
        .filter(|e| max.is_none_or(|m| e.start < m))
        .filter(|e| {
            q.get("invitee_email").is_none_or(|m| st.invitees.iter().any(|i| i.event == e.uuid && i.email == *m))
        })
        .collect();
    evs.sort_by_key(|e| e.start);
    if q.get("sort").is_some_and(|s| s == "start_time:desc") {
        evs.reverse();
    }
    let items: Vec<Value> = evs.into_iter().map(|e| st.render_event(e)).collect();
    paged(&st.base, "/scheduled_events", &q, &items)
}

async fn get_event(State(s): State<Shared>, Path(uuid): Path<String>) -> Response {
    let st = s.lock();
    match st.events.iter().find(|e| e.uuid == uuid) {
        Some(e) => resource(StatusCode::OK, st.render_event(e)),
        None => not_found(),
    }
}

async fn list_invitees(State(s): State<Shared>, Path(uuid): Path<String>, Query(q): Q) -> Response {
    let st = s.lock();
    if !st.events.iter().any(|e| e.uuid == uuid) {
        return not_found();
    }
    let status = q.get("status");
    let mut invs: Vec<&InviteeRec> = st
        .invitees
        .iter()
        .filter(|i| i.event == uuid)
        .filter(|i| status.is_none_or(|s| (s == "canceled") == i.canceled))
        .filter(|i| q.get("email").is_none_or(|e| *e == i.email))
        .collect();
    if q.get("sort").is_some_and(|s| s == "created_at:desc") {
        invs.reverse();
    }
    let items: Vec<Value> = invs.into_iter().map(|i| st.render_invitee(i, false)).collect();
    paged(&st.base, &format!("/scheduled_events/{uuid}/invitees"), &q, &items)
}

async fn get_invitee(State(s): State<Shared>, Path((ev, inv)): Path<(String, String)>) -> Response {
    let st = s.lock();
    match st.invitees.iter().find(|i| i.uuid == inv && i.event == ev) {
        Some(i) => resource(StatusCode::OK, st.render_invitee(i, false)),
        None => not_found(),
    }
}

async fn cancel_event(State(s): State<Shared>, Path(uuid): Path<String>, body: Bytes) -> Response {
    let reason = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("reason").and_then(Value::as_str).map(str::to_owned));
    if reason.as_ref().is_some_and(|r| r.chars().count() > 10_000) {
        return invalid("reason", "must be at most 10000 characters");
    }
    let now = s.now();
    let mut st = s.lock();
    let Some(ev) = st.events.iter().find(|e| e.uuid == uuid).cloned() else { return not_found() };
    if ev.canceled {
        return error(StatusCode::FORBIDDEN, "Permission Denied", "Event is already canceled");
    }
    let c =
        json!({"canceled_by": st.main_user().name, "canceler_type": "host", "created_at": ts(now), "reason": reason});
    let idxs: Vec<usize> =
        st.invitees.iter().enumerate().filter(|(_, i)| i.event == uuid && !i.canceled).map(|(n, _)| n).collect();
    let mut webhooks = Vec::new();
    for idx in &idxs {
        cancel_invitee_locked(&mut st, *idx, &c, now);
    }
    if let Some(e) = st.events.iter_mut().find(|e| e.uuid == uuid) {
        e.canceled = true;
        e.cancellation = Some(c.clone());
    }
    for idx in idxs {
        let inv = st.invitees[idx].uuid.clone();
        webhooks.extend(st.emit(&WebhookEvent::InviteeCanceled, &inv, now));
    }
    s.dispatch(&mut st, &webhooks);
    resource(StatusCode::CREATED, c)
}

async fn create_no_show(State(s): State<Shared>, body: Bytes) -> Response {
    let Some(inv) = serde_json::from_slice::<Value>(&body).ok().and_then(|v| v["invitee"].as_str().map(str::to_owned))
    else {
        return invalid("invitee", "is required");
    };
    let now = s.now();
    let mut st = s.lock();
    let Ok(idx) = find_invitee(&st, &InviteeUri::from(inv)) else { return not_found() };
    match mark_no_show_locked(&mut st, idx, now) {
        Ok((ns, webhooks)) => {
            s.dispatch(&mut st, &webhooks);
            resource(
                StatusCode::CREATED,
                json!({"uri": ns.uri, "invitee": ns.invitee, "created_at": ns.created_at.map(ts)}),
            )
        }
        Err(e) => invalid("invitee", &e.to_string()),
    }
}

fn find_no_show(st: &St, uuid: &str) -> Option<usize> {
    st.invitees.iter().position(|i| i.no_show.as_ref().is_some_and(|(u, _)| u == uuid))
}

async fn get_no_show(State(s): State<Shared>, Path(uuid): Path<String>) -> Response {
    let st = s.lock();
    let Some(idx) = find_no_show(&st, &uuid) else { return not_found() };
    let i = &st.invitees[idx];
    let created = i.no_show.as_ref().map(|(_, t)| ts(*t));
    resource(
        StatusCode::OK,
        json!({"uri": st.uri("invitee_no_shows", &uuid), "invitee": st.invitee_uri(i), "created_at": created}),
    )
}

async fn delete_no_show(State(s): State<Shared>, Path(uuid): Path<String>) -> Response {
    let now = s.now();
    let mut st = s.lock();
    let Some(idx) = find_no_show(&st, &uuid) else { return not_found() };
    match unmark_no_show_locked(&mut st, idx, now) {
        Ok(webhooks) => {
            s.dispatch(&mut st, &webhooks);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(_) => not_found(),
    }
}

async fn create_sub(State(s): State<Shared>, body: Bytes) -> Response {
    let Ok(v) = serde_json::from_slice::<Value>(&body) else { return invalid("body", "must be JSON") };
    let now = s.now();
    let mut st = s.lock();
    let Some(url) = v["url"].as_str().filter(|u| u.starts_with("http://") || u.starts_with("https://")) else {
        return invalid("url", "must be a valid URL");
    };
    let events: Vec<WebhookEvent> = match v["events"].as_array() {
        Some(a) if !a.is_empty() => a.iter().filter_map(Value::as_str).map(WebhookEvent::from).collect(),
        _ => return invalid("events", "must be a non-empty array"),
    };
    if v["organization"].as_str() != Some(st.org_uri().as_str()) {
        return invalid("organization", "must be the URI of your organization");
    }
    let scope = match v["scope"].as_str() {
        Some(sc @ ("organization" | "user" | "group")) => WebhookScope::from(sc),
        _ => return invalid("scope", "must be one of organization, user, group"),
    };
    let user = v["user"].as_str().map(|u| UserUri::from(u).uuid().to_owned());
    if scope == WebhookScope::User && user.as_ref().is_none_or(|u| st.user(u).is_none()) {
        return invalid("user", "is required for user scope");
    }
    let group = v["group"].as_str().map(str::to_owned);
    if scope == WebhookScope::Group && group.is_none() {
        return invalid("group", "is required for group scope");
    }
    if scope != WebhookScope::Organization && events.contains(&WebhookEvent::RoutingFormSubmissionCreated) {
        return invalid("events", "routing_form_submission.created requires organization scope");
    }
    if st.subs.iter().any(|x| x.url == url) {
        return error(StatusCode::CONFLICT, "Already Exists", "Hook with this url already exists");
    }
    let sub = SubRec {
        uuid: new_uuid(),
        url: url.to_owned(),
        events,
        scope,
        user,
        group,
        // an OAuth app's subscriptions sign with the app's key, whatever the body says
        signing_key: st.oauth_app_signing_key.clone().or_else(|| v["signing_key"].as_str().map(str::to_owned)),
        state: SubscriptionState::Active,
        created_at: now,
        creator: st.main_user().uuid.clone(),
    };
    let rendered = st.render_sub(&sub);
    st.subs.push(sub);
    resource(StatusCode::CREATED, rendered)
}

async fn list_subs(State(s): State<Shared>, Query(q): Q) -> Response {
    let st = s.lock();
    let Some(org) = q.get("organization") else { return invalid("organization", "is required") };
    let Some(scope) = q.get("scope") else { return invalid("scope", "is required") };
    if *org != st.org_uri() {
        return error(
            StatusCode::FORBIDDEN,
            "Permission Denied",
            "You do not have permission to access this resource.",
        );
    }
    let user = q.get("user").map(|u| UserUri::from(u.as_str()).uuid().to_owned());
    let items: Vec<Value> = st
        .subs
        .iter()
        .filter(|x| x.scope.as_str() == scope)
        .filter(|x| user.is_none() || x.user == user)
        .map(|x| st.render_sub(x))
        .collect();
    paged(&st.base, "/webhook_subscriptions", &q, &items)
}

async fn get_sub(State(s): State<Shared>, Path(uuid): Path<String>) -> Response {
    let st = s.lock();
    match st.subs.iter().find(|x| x.uuid == uuid) {
        Some(x) => resource(StatusCode::OK, st.render_sub(x)),
        None => not_found(),
    }
}

async fn delete_sub(State(s): State<Shared>, Path(uuid): Path<String>) -> Response {
    let mut st = s.lock();
    let before = st.subs.len();
    st.subs.retain(|x| x.uuid != uuid);
    if st.subs.len() == before { not_found() } else { StatusCode::NO_CONTENT.into_response() }
}

async fn sample_data(State(s): State<Shared>, Query(q): Q) -> Response {
    let Some(event) = q.get("event") else { return invalid("event", "is required") };
    if !q.contains_key("organization") {
        return invalid("organization", "is required");
    }
    if !q.contains_key("scope") {
        return invalid("scope", "is required");
    }
    let now = s.now();
    let st = s.lock();
    let ev = EventRec {
        uuid: new_uuid(),
        name: "Sample event".into(),
        canceled: event == "invitee.canceled",
        start: now,
        end: now + chrono::Duration::minutes(30),
        event_type: st.event_types[0].uuid.clone(),
        host: st.main_user().uuid.clone(),
        created_at: now,
        updated_at: now,
        cancellation: None,
    };
    let inv = InviteeRec {
        uuid: new_uuid(),
        event: ev.uuid.clone(),
        email: "sample@example.com".into(),
        name: "Sample Invitee".into(),
        canceled: event == "invitee.canceled",
        timezone: "UTC".into(),
        created_at: now,
        updated_at: now,
        questions: Vec::new(),
        utm_source: None,
        scheduling_method: None,
        rescheduled: false,
        old_invitee: None,
        new_invitee: None,
        cancellation: None,
        no_show: None,
    };
    let mut payload = st.render_invitee(&inv, false);
    payload["scheduled_event"] = st.render_event(&ev);
    Json(json!({
        "created_at": ts(now),
        "created_by": st.user_uri(&st.main_user().uuid),
        "event": event,
        "payload": payload,
    }))
    .into_response()
}

#[allow(dead_code)]
fn assert_send_sync() {
    fn f<T: Send + Sync>() {}
    f::<FakeCalendly>();
}

// ----------------------------------------------------------------------------------------------------------------
// issue 23: event type get, scheduling links, the Scheduling API

async fn get_event_type(State(s): State<Shared>, Path(uuid): Path<String>) -> Response {
    let st = s.lock();
    match st.event_types.iter().find(|e| e.uuid == uuid) {
        Some(et) => resource(StatusCode::OK, st.render_event_type(et)),
        None => not_found(),
    }
}

/// `POST /scheduling_links` as calendly.yaml describes it: `max_event_count` (only 1), `owner` (an event type URI)
/// and `owner_type` (only `EventType`) all required; 201 `{resource: {booking_url, owner, owner_type}}`.
async fn create_scheduling_link(State(s): State<Shared>, body: Bytes) -> Response {
    let Ok(v) = serde_json::from_slice::<Value>(&body) else { return invalid("body", "must be JSON") };
    if v["max_event_count"].as_f64() != Some(1.0) {
        return invalid("max_event_count", "must be 1");
    }
    if v["owner_type"].as_str() != Some("EventType") {
        return invalid("owner_type", "must be EventType");
    }
    let Some(owner) = v["owner"].as_str() else { return invalid("owner", "is required") };
    let mut st = s.lock();
    let uuid = EventTypeUri::from(owner).uuid().to_owned();
    let Some(et) = st.event_types.iter().find(|e| e.uuid == uuid).cloned() else { return not_found() };
    let code: String = new_uuid().chars().filter(char::is_ascii_alphanumeric).take(8).collect();
    let url = format!("https://calendly.com/d/{}-{}/{}", &code[..4], &code[4..], slug(&et.name));
    st.scheduling_links.push((url.clone(), et.uuid.clone()));
    let owner = st.uri("event_types", &et.uuid);
    resource(StatusCode::CREATED, json!({"booking_url": url, "owner": owner, "owner_type": "EventType"}))
}

/// Checks and records one `POST /invitees` arrival against the endpoint's own limits (sliding windows on arrival,
/// no slack); on refusal returns the 429 with the tightest window's `X-RateLimit-*`.
fn admit_invitee_create(st: &mut St, token: &str, now: Instant) -> Result<(), Box<Response>> {
    let limits = st.invitee_create_limits.clone();
    let longest = limits.iter().map(|(_, w)| *w).max().unwrap_or(Duration::ZERO);
    let arrivals = st.invitee_create_arrivals.entry(token.to_owned()).or_default();
    while arrivals.front().is_some_and(|t| now.duration_since(*t) >= longest) {
        arrivals.pop_front();
    }
    for (max, window) in &limits {
        let inside: Vec<Instant> = arrivals.iter().copied().filter(|t| now.duration_since(*t) < *window).collect();
        if inside.len() >= *max as usize {
            let reset = inside.first().map_or(Duration::ZERO, |t| (*t + *window).saturating_duration_since(now));
            let reset_s = reset.as_secs() + u64::from(reset.subsec_nanos() > 0);
            let mut resp = error(
                StatusCode::TOO_MANY_REQUESTS,
                "Too Many Requests",
                "You have exceeded the rate limit. Please try again later.",
            );
            let h = resp.headers_mut();
            h.insert("x-ratelimit-limit", HeaderValue::from(*max));
            h.insert("x-ratelimit-remaining", HeaderValue::from(0_u32));
            h.insert("x-ratelimit-reset", HeaderValue::from(reset_s));
            return Err(Box::new(resp));
        }
    }
    arrivals.push_back(now);
    Ok(())
}

/// `POST /invitees` (the Scheduling API): validates what Calendly requires (`event_type` known, `start_time` in the
/// future, `invitee.email`, `invitee.timezone`, `invitee.name` or `invitee.first_name`), enforces the endpoint's own
/// limits, books the meeting (`scheduling_method: "api"`), emits `invitee.created`, answers 201
/// `{resource: Invitee}`. The validation messages are the fake's own wording (Calendly's are not documented).
async fn create_invitee(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let token = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_owned();
    let now = s.now();
    let mut st = s.lock();
    // a request counts against the limit on arrival, whatever its fate (only refused 429s do not)
    if let Err(resp) = admit_invitee_create(&mut st, &token, Instant::now()) {
        return *resp;
    }
    let Ok(v) = serde_json::from_slice::<Value>(&body) else { return invalid("body", "must be JSON") };
    let Some(et_uri) = v["event_type"].as_str() else { return invalid("event_type", "is required") };
    let et_uuid = EventTypeUri::from(et_uri).uuid().to_owned();
    if !st.event_types.iter().any(|e| e.uuid == et_uuid) {
        return invalid("event_type", "is not a bookable event type");
    }
    let Some(start) = v["start_time"].as_str() else { return invalid("start_time", "is required") };
    let Ok(start) = DateTime::parse_from_rfc3339(start).map(|t| t.with_timezone(&Utc)) else {
        return invalid("start_time", "must be an ISO-8601 UTC time");
    };
    if start <= now {
        return invalid("start_time", "must be in the future");
    }
    if !available_slots(&st, &et_uuid, start, start + chrono::Duration::minutes(1), now).contains(&start) {
        return invalid("start_time", "is not an available time of the event type");
    }
    let inv = &v["invitee"];
    let Some(email) = inv["email"].as_str().filter(|e| e.contains('@')) else {
        return invalid("invitee.email", "must be a valid email");
    };
    let Some(timezone) = inv["timezone"].as_str().filter(|t| !t.is_empty()) else {
        return invalid("invitee.timezone", "is required");
    };
    let name = match (inv["name"].as_str(), inv["first_name"].as_str()) {
        (Some(n), _) if !n.trim().is_empty() => n.to_owned(),
        (_, Some(f)) if !f.trim().is_empty() => {
            [Some(f), inv["last_name"].as_str()].into_iter().flatten().collect::<Vec<_>>().join(" ")
        }
        _ => return invalid("invitee.name", "name or first_name is required"),
    };
    let questions = v["questions_and_answers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|q| Some((q["question"].as_str()?.to_owned(), q["answer"].as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    let booking = Booking {
        email: email.to_owned(),
        name,
        start_time: start,
        event_type: Some(EventTypeUri::from(st.uri("event_types", &et_uuid))),
        host: None,
        timezone: timezone.to_owned(),
        questions,
        utm_source: v["tracking"]["utm_source"].as_str().map(str::to_owned),
        scheduling_method: Some("api".into()),
    };
    let (_ev, webhooks) = book_locked(&mut st, booking, now);
    s.dispatch(&mut st, &webhooks);
    let rendered = st.render_invitee(st.invitees.last().expect("just booked"), false);
    resource(StatusCode::CREATED, rendered)
}

/// The fake's availability model (Calendly's depends on each host's schedules and calendars; the fake's hosts all
/// work 09:00–17:00 UTC, Monday to Friday): slots of the event type's length from 09:00, starting in `from..to`,
/// after `now`, not overlapping an active event of the event type's owner.
fn available_slots(
    st: &St,
    et_uuid: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Vec<DateTime<Utc>> {
    use chrono::{Datelike as _, TimeZone as _, Weekday};
    let Some(et) = st.event_types.iter().find(|e| e.uuid == et_uuid) else { return Vec::new() };
    let len = chrono::Duration::minutes(et.minutes.max(1));
    let busy: Vec<(DateTime<Utc>, DateTime<Utc>)> =
        st.events.iter().filter(|e| e.host == et.owner && !e.canceled).map(|e| (e.start, e.end)).collect();
    let mut out = Vec::new();
    let mut day = from.date_naive();
    while day <= to.date_naive() {
        if !matches!(day.weekday(), Weekday::Sat | Weekday::Sun) {
            let open = Utc.from_utc_datetime(&day.and_hms_opt(9, 0, 0).expect("valid time"));
            let close = Utc.from_utc_datetime(&day.and_hms_opt(17, 0, 0).expect("valid time"));
            let mut t = open;
            while t + len <= close {
                let free = busy.iter().all(|(s, e)| t + len <= *s || t >= *e);
                if t >= from && t < to && t > now && free {
                    out.push(t);
                }
                t += len;
            }
        }
        day = day.succ_opt().expect("a next day");
    }
    out
}

/// `GET /event_type_available_times` (calendly.yaml "List Event Type Available Times"): `event_type`,
/// `start_time` and `end_time` required, "Date range can be no greater than 1 week (7 days)" (400 otherwise), no
/// pagination; `{collection: [{status, invitees_remaining, start_time, scheduling_url}]}` from the fake's
/// availability model ([`available_slots`]).
async fn available_times(State(s): State<Shared>, Query(q): Q) -> Response {
    let Some(et_uri) = q.get("event_type") else { return invalid("event_type", "is required") };
    let (from, to) = match (parse_time(&q, "start_time"), parse_time(&q, "end_time")) {
        (Ok(Some(f)), Ok(Some(t))) => (f, t),
        (Err(r), _) | (_, Err(r)) => return *r,
        (Ok(None), _) => return invalid("start_time", "is required"),
        (_, Ok(None)) => return invalid("end_time", "is required"),
    };
    if to <= from {
        return invalid("end_time", "must be after start_time");
    }
    if to - from > chrono::Duration::days(7) {
        return invalid("end_time", "Date range can be no greater than 1 week (7 days)");
    }
    let now = s.now();
    let st = s.lock();
    let uuid = EventTypeUri::from(et_uri.as_str()).uuid().to_owned();
    let Some(et) = st.event_types.iter().find(|e| e.uuid == uuid) else { return not_found() };
    let owner = st.user(&et.owner).map_or_else(|| "host".to_owned(), |u| slug(&u.name));
    let items: Vec<Value> = available_slots(&st, &uuid, from, to, now)
        .into_iter()
        .map(|t| {
            json!({
                "status": "available",
                "invitees_remaining": 1,
                "start_time": ts(t),
                "scheduling_url": format!(
                    "https://calendly.com/{owner}/{}/{}?month={}&date={}",
                    slug(&et.name),
                    t.format("%Y-%m-%dT%H:%M:%SZ"),
                    t.format("%Y-%m"),
                    t.format("%Y-%m-%d")
                ),
            })
        })
        .collect();
    Json(json!({"collection": items})).into_response()
}
