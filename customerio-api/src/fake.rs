//! An in-process, stateful Customer.io fake (feature `fake`) for demos and tests.
//!
//! [`FakeCustomerIo::start`] serves the Track v1/v2 and App API paths on one `http://127.0.0.1:<port>` (point both
//! base URLs at it: [`FakeCustomerIo::client`]). It behaves like Customer.io where a sync engine can tell:
//!
//! - **Auth**: Track paths need `Basic site_id:api_key`, App paths `Bearer app_key` (else 401).
//! - **People** are found by `id`, `email` (case-insensitive) or `cio_<id>` in the path. Identify creates unless
//!   `_update: true` (then a missing person is a "Failed Attribute Change" activity and still 200). A `cio_` path for
//!   a missing person is dropped (200). `null`/`""` removes an attribute.
//! - **`_timestamp` ordering** (v1 `_timestamp`, v2 `timestamp`): each attribute remembers the timestamp of the
//!   update that set it; an update carrying an older timestamp does not overwrite it. The Track spec says
//!   `_timestamp` "can be used to control the order of attribute updates"; per-attribute granularity is this fake's
//!   reading of it. Updates without a timestamp use "now" (the fake's clock).
//! - **Events** are stored per person (created by id/email if missing, like Customer.io) and **deduplicated by
//!   `id`**: a repeated id answers 200 and is ignored. Anonymous events link to a person when an identify carries
//!   their `anonymous_id`.
//! - **Suppress** deletes the person and blocks the identifiers (later identifies and events are ignored);
//!   unsuppress frees them. **Merge** needs an existing primary (else 400 `{"meta":{"error":…}}`), copies
//!   attributes missing on the primary, moves events, deletes the secondary.
//! - **v2** `/entity` and `/batch`: invalid operations (unknown type/action, zero or several identifiers, an event
//!   without a name) are 207 `{"errors":[{batch_index, reason, field, message}]}` while the others are applied;
//!   a malformed request is 400. Size limits (32 KB per operation / 500 KB per request) give 400.
//! - **Guards** like the real API: identifiers over 150 bytes, attribute values over 1,000 bytes, event names over
//!   100 bytes give 400 `{"meta":{"errors":[…]}}`.
//! - **Objects and relationships** (v2 `type: object`): identify creates an object by `{object_type_id,
//!   object_id}` and gives it a `cio_object_id`; `{cio_object_id}` updates only (an unknown one is dropped and noted
//!   in [`FakeCustomerIo::activity`]); `null`/`""` removes an attribute; `add_relationships`/`delete_relationships`
//!   from either side (people are found or created as an event would create them); a deleted person or object
//!   loses its relationships. Two kinds of identifiers at once, an empty `cio_relationships` or a relationship
//!   attribute over 1,000 bytes are 207 items. Read them with [`FakeCustomerIo::object`],
//!   [`FakeCustomerIo::relationships`].
//! - **Segments**: seeded ([`FakeCustomerIo::seed_segment`]; a dynamic segment's members are the seeded ones, the
//!   fake evaluates no conditions) or created manual through `POST /v1/segments`; Track `add_customers`/
//!   `remove_customers` (manual only, 1 to 1,000 ids, else 400 `{"meta":{"errors":[…]}}`); `GET /v1/segments`,
//!   `/v1/segments/{id}` (404 `{"errors":[{detail,status}]}`), `DELETE` (204), `customer_count`, `membership`
//!   (`start`/`limit` ≤ 30,000, `next` = `""` on the last page), `GET /v1/customers/{id}/segments`.
//! - **Customer search**: `POST /v1/customers` with `{"filter": …}` (`and`/`or`/`not`, `segment`, `attribute`
//!   `eq`/`exists`; values compared as strings, as Customer.io stores them), `limit` ≤ 1,000, paginated like
//!   membership; a malformed filter is 400.
//! - **Broadcast trigger status** (`GET /v1/campaigns/{id}/triggers/{trigger_id}`, `GET /v1/broadcasts/{id}/triggers`;
//!   a trigger is processed at once), **reporting-webhook deletion** (200, 404 for an unknown id), typed **push and
//!   SMS** sends checked like the spec's `sendpush`/`sendsms` (`transactional_message_id` required; SMS `to`).
//! - **A person's activities and messages**: `GET /v1/customers/{id}/activities` (their events, page and screen
//!   views; `type`/`name` filters; `limit` ≤ 100) and `/messages` (transactional sends to them; `start_ts`/
//!   `end_ts`), newest first, paginated like membership.
//! - **App API**: `GET /v1/customers?email=` (`{"results":[]}` when none), `GET /v1/customers/{id}/attributes`
//!   (404 when missing), `POST /v1/send/email` (recorded, returns a delivery id), `POST
//!   /v1/campaigns/{id}/triggers` (recorded, 1 per 10 s else 429).
//! - **Rate limits** with real 429s ([`FakeConfig`]: Track 1000/s, App 10/s, broadcasts 1 per 10 s by default), each a
//!   sliding window on arrival time with no slack (`api_core::fake::WindowCounter`).
//! - **Faults** ([`FakeCustomerIo::faults`]): 429/5xx, delays, drop-after-commit; **request log**
//!   ([`FakeCustomerIo::log`]).
//! - **Reporting webhooks**: [`FakeCustomerIo::webhook`] builds a delivery exactly as Customer.io sends it
//!   (JSON body, `X-CIO-Timestamp`, `X-CIO-Signature` hex HMAC over `v0:{ts}:{body}`), and
//!   [`SignedWebhook::deliver`] POSTs it to a URL.

use std::{
    collections::{HashMap, HashSet},
    fmt,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

pub use api_core::fake::{Fault, Faults, LoggedRequest, RequestLog};
use api_core::{
    Clock, SystemClock, Token,
    fake::{FakeServer, WindowCounter},
};
use axum::{
    Router,
    extract::{Path, RawQuery, State as AxState},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{delete, get, post, put},
};
use base64_shim::decode_basic;
use bytes::Bytes;
use serde::Serialize;
use serde_json::{Map, Value, json};
use url::Url;

use crate::{
    Client, ClientBuilder, EventId, Identifier, Metric, ObjectType, ReportingEvent, RetryPolicy, SegmentId,
    SegmentType,
    limits::{
        MAX_ATTRIBUTE_VALUE_BYTES, MAX_BATCH_BYTES, MAX_ENTITY_BYTES, MAX_EVENT_NAME_BYTES, MAX_IDENTIFIER_BYTES,
    },
    webhook::{SIGNATURE_HEADER, TIMESTAMP_HEADER, sign},
};

/// Configuration of a [`FakeCustomerIo`].
#[derive(Debug, Clone)]
pub struct FakeConfig {
    /// Track site id.
    pub site_id: String,
    /// Track API key.
    pub track_api_key: String,
    /// App API key.
    pub app_api_key: String,
    /// Reporting-webhook signing key.
    pub webhook_signing_key: String,
    /// Region reported by `GET /api/v1/accounts/region`.
    pub region: crate::Region,
    /// Track requests admitted per window (`None`: unlimited). Default 1000 per second.
    pub track_rate_limit: Option<(u32, Duration)>,
    /// App API requests (other than sends and broadcasts) per window. Default 10 per second.
    pub app_rate_limit: Option<(u32, Duration)>,
    /// Transactional sends per window. Default 100 per second.
    pub transactional_rate_limit: Option<(u32, Duration)>,
    /// Broadcast triggers per window. Default 1 per 10 seconds.
    pub broadcast_rate_limit: Option<(u32, Duration)>,
    /// `Retry-After` sent with the fake's 429s (default 1 s; whole seconds are sent as an integer, anything else as
    /// fractional seconds, which api-core also parses).
    pub rate_limit_retry_after: Duration,
    /// The clock for default timestamps and webhook signatures.
    pub clock: Arc<dyn Clock>,
}

impl Default for FakeConfig {
    fn default() -> Self {
        Self {
            site_id: "fake-site-id".into(),
            track_api_key: "fake-track-key".into(),
            app_api_key: "fake-app-key".into(),
            webhook_signing_key: "fake-webhook-signing-key".into(),
            region: crate::Region::Us,
            track_rate_limit: Some((1000, Duration::from_secs(1))),
            app_rate_limit: Some((10, Duration::from_secs(1))),
            transactional_rate_limit: Some((100, Duration::from_secs(1))),
            broadcast_rate_limit: Some((1, Duration::from_secs(10))),
            rate_limit_retry_after: Duration::from_secs(1),
            clock: Arc::new(SystemClock),
        }
    }
}

/// A device stored on a person.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredDevice {
    /// Token.
    pub token: String,
    /// Platform.
    pub platform: Option<String>,
    /// Last used, unix seconds.
    pub last_used: Option<i64>,
    /// Attributes.
    pub attributes: Map<String, Value>,
}

/// A person in the fake.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Person {
    /// Customer.io's id (`cio_id`).
    pub cio_id: String,
    /// Your id.
    pub id: Option<String>,
    /// Email.
    pub email: Option<String>,
    /// Attributes (including `id`, `email`, `created_at` when set).
    pub attributes: Map<String, Value>,
    /// Per attribute: the `_timestamp` (or receipt time) of the update that set it.
    pub attribute_timestamps: HashMap<String, i64>,
    /// Devices.
    pub devices: Vec<StoredDevice>,
}

impl Person {
    /// The person's identifiers as webhooks carry them.
    #[must_use]
    pub fn identifiers(&self) -> Value {
        json!({"id": self.id, "email": self.email, "cio_id": self.cio_id})
    }
}

/// An event the fake accepted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredEvent {
    /// The person's `cio_id` (`None` for an anonymous event not yet linked).
    pub cio_id: Option<String>,
    /// Anonymous id, if sent.
    pub anonymous_id: Option<String>,
    /// Name.
    pub name: String,
    /// The dedup id, if sent.
    pub id: Option<String>,
    /// `event`, `page`, `screen`.
    pub kind: String,
    /// Event time (sent, or receipt time).
    pub timestamp: i64,
    /// Data (v1 `data`, v2 `attributes`).
    pub data: Map<String, Value>,
}

/// A transactional message the fake "sent".
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SentMessage {
    /// Delivery id returned.
    pub delivery_id: String,
    /// `email`, `push`, ….
    pub kind: String,
    /// The request body.
    pub body: Value,
    /// Queued at, unix seconds.
    pub queued_at: i64,
}

/// A broadcast trigger the fake accepted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BroadcastRecord {
    /// Broadcast id.
    pub broadcast_id: u64,
    /// Trigger id returned.
    pub trigger_id: i64,
    /// The request body.
    pub body: Value,
    /// Accepted at, unix seconds (the fake processes a trigger at once: `processed_at` is the same).
    pub created_at: i64,
}

/// A segment in the fake (seeded with [`FakeCustomerIo::seed_segment`] or created through `POST /v1/segments`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentRecord {
    /// Its id.
    pub id: u64,
    /// Its name.
    pub name: String,
    /// Its description.
    pub description: Option<String>,
    /// `manual` or `dynamic`. The fake does not evaluate a dynamic segment's conditions: its members are the seeded
    /// ones.
    pub kind: SegmentType,
    /// Members' `cio_id`s, in the order they joined.
    pub members: Vec<String>,
    /// Created, unix seconds.
    pub created_at: i64,
}

impl SegmentRecord {
    fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "deduplicate_id": format!("{}:{}", self.id, self.created_at),
            "name": self.name,
            "description": self.description,
            "state": "finished",
            "progress": null,
            "type": self.kind.as_str(),
            "tags": null,
            "created_at": self.created_at,
            "updated_at": self.created_at,
        })
    }
}

#[derive(Debug, Default)]
struct Db {
    people: Vec<Person>,
    events: Vec<StoredEvent>,
    seen_event_ids: HashSet<String>,
    suppressed: HashSet<(String, String)>,
    objects: HashMap<(String, String), Map<String, Value>>,
    sent: Vec<SentMessage>,
    broadcasts: Vec<BroadcastRecord>,
    activity: Vec<String>,
    reporting_webhooks: Vec<Value>,
    /// `cio_object_id` of each object.
    object_cio: HashMap<(String, String), String>,
    /// object → (person cio_id → relationship attributes).
    relationships: HashMap<(String, String), HashMap<String, Map<String, Value>>>,
    segments: Vec<SegmentRecord>,
    next_object: u64,
    next_segment: u64,
    next_cio: u64,
    next_trigger: i64,
    next_delivery: u64,
}

struct Shared {
    config: FakeConfig,
    state: Mutex<Db>,
    track_limit: Option<WindowCounter>,
    app_limit: Option<WindowCounter>,
    transactional_limit: Option<WindowCounter>,
    broadcast_limit: Option<WindowCounter>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Db> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn now(&self) -> i64 {
        self.config.clock.unix_seconds()
    }
}

/// A running Customer.io fake. Stops when dropped.
pub struct FakeCustomerIo {
    server: FakeServer,
    shared: Arc<Shared>,
}

impl fmt::Debug for FakeCustomerIo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeCustomerIo").field("base_url", &self.server.base_url.as_str()).finish_non_exhaustive()
    }
}

// ---------- small helpers ----------

mod base64_shim {
    /// Decodes `Basic <b64>` into `user:password` (standard alphabet). Implemented inline: base64 is not a
    /// dependency of this crate and the fake only needs decoding.
    pub(super) fn decode_basic(header: &str) -> Option<String> {
        let b64 = header.strip_prefix("Basic ")?.trim();
        let mut out = Vec::with_capacity(b64.len() * 3 / 4);
        let mut buf = 0u32;
        let mut bits = 0u32;
        for c in b64.bytes() {
            let v = match c {
                b'A'..=b'Z' => c - b'A',
                b'a'..=b'z' => c - b'a' + 26,
                b'0'..=b'9' => c - b'0' + 52,
                b'+' => 62,
                b'/' => 63,
                b'=' => break,
                _ => return None,
            };
            buf = (buf << 6) | u32::from(v);
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push(u8::try_from((buf >> bits) & 0xFF).ok()?);
            }
        }
        String::from_utf8(out).ok()
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (status, [(axum::http::header::CONTENT_TYPE, "application/json; charset=utf-8")], body.to_string()).into_response()
}

fn ok_empty() -> Response {
    json_response(StatusCode::OK, &json!({}))
}

fn v1_errors(msgs: &[String]) -> Response {
    json_response(StatusCode::BAD_REQUEST, &json!({"meta": {"errors": msgs}}))
}

fn meta_error(status: StatusCode, msg: &str) -> Response {
    json_response(status, &json!({"meta": {"error": msg}}))
}

fn retry_after_value(d: Duration) -> String {
    if d.subsec_nanos() == 0 { d.as_secs().to_string() } else { format!("{:.3}", d.as_secs_f64()) }
}

fn too_many(retry_after: Duration) -> Response {
    (StatusCode::TOO_MANY_REQUESTS, [("retry-after", retry_after_value(retry_after))], "Too Many Requests")
        .into_response()
}

fn parse_path_identifier(raw: &str) -> Identifier {
    if let Some(c) = raw.strip_prefix("cio_") {
        Identifier::cio_id(c)
    } else if raw.contains('@') {
        Identifier::email(raw)
    } else {
        Identifier::id(raw)
    }
}

fn identifier_from_json(v: &Value) -> Result<Identifier, String> {
    let m = v.as_object().ok_or("identifiers must be an object")?;
    let present: Vec<(&String, &Value)> =
        m.iter().filter(|(k, v)| matches!(k.as_str(), "id" | "email" | "cio_id" | "phone") && !v.is_null()).collect();
    if present.len() != 1 {
        return Err("exactly one of id, email, cio_id is required".into());
    }
    let (k, v) = present[0];
    let s = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return Err(format!("{k} must be a string")),
    };
    match k.as_str() {
        "id" => Ok(Identifier::id(s)),
        "email" => Ok(Identifier::email(s)),
        "cio_id" => Ok(Identifier::cio_id(s)),
        _ => Err("phone is not enabled as an identifier in this workspace".into()),
    }
}

fn matches(p: &Person, who: &Identifier) -> bool {
    match who {
        Identifier::Id(v) => p.id.as_deref() == Some(v.as_str()),
        Identifier::Email(v) => p.email.as_deref().is_some_and(|e| e.eq_ignore_ascii_case(v)),
        Identifier::CioId(v) => p.cio_id == *v,
    }
}

fn suppress_key(who: &Identifier) -> (String, String) {
    let v = match who {
        Identifier::Email(e) => e.to_ascii_lowercase(),
        other => other.value().to_owned(),
    };
    (who.kind().to_owned(), v)
}

fn value_len(v: &Value) -> usize {
    match v {
        Value::String(s) => s.len(),
        other => other.to_string().len(),
    }
}

fn check_attrs(attrs: &Map<String, Value>) -> Vec<String> {
    let mut errs = Vec::new();
    for (k, v) in attrs {
        if crate::limits::is_reserved_attribute(k) {
            continue;
        }
        if value_len(v) > MAX_ATTRIBUTE_VALUE_BYTES {
            errs.push(format!("attribute '{k}' value is too long (max {MAX_ATTRIBUTE_VALUE_BYTES} bytes)"));
        }
    }
    errs
}

// ---------- state operations (shared by v1 and v2) ----------

enum Applied {
    Ok,
    Invalid(String, String),
}

impl Db {
    fn find(&self, who: &Identifier) -> Option<usize> {
        self.people.iter().position(|p| matches(p, who))
    }

    fn is_suppressed(&self, who: &Identifier) -> bool {
        self.suppressed.contains(&suppress_key(who))
    }

    fn create(&mut self, who: &Identifier) -> usize {
        self.next_cio += 1;
        let mut p = Person {
            cio_id: format!("{:012x}", 0xd9c1_0600_0000_u64 + self.next_cio),
            id: None,
            email: None,
            attributes: Map::new(),
            attribute_timestamps: HashMap::new(),
            devices: Vec::new(),
        };
        match who {
            Identifier::Id(v) => {
                p.id = Some(v.clone());
                p.attributes.insert("id".into(), v.clone().into());
            }
            Identifier::Email(v) => {
                p.email = Some(v.clone());
                p.attributes.insert("email".into(), v.clone().into());
            }
            Identifier::CioId(_) => {}
        }
        self.people.push(p);
        self.people.len() - 1
    }

    /// Finds or (unless `update_only`) creates. `None` when the request is dropped.
    fn resolve(&mut self, who: &Identifier, update_only: bool, what: &str) -> Option<usize> {
        if self.is_suppressed(who) {
            self.activity.push(format!("{what} ignored: {} {:?} is suppressed", who.kind(), who.value()));
            return None;
        }
        if let Some(i) = self.find(who) {
            return Some(i);
        }
        if update_only || matches!(who, Identifier::CioId(_)) {
            self.activity.push(format!("Failed Attribute Change: no person with {} {:?}", who.kind(), who.value()));
            return None;
        }
        Some(self.create(who))
    }

    fn identify(&mut self, who: &Identifier, body: &Map<String, Value>, default_ts: i64) {
        let update_only = body.get("_update").and_then(Value::as_bool).unwrap_or(false);
        let ts = body.get("_timestamp").and_then(Value::as_i64).unwrap_or(default_ts);
        // "Email or ID" workspaces: an identify with a new id and an existing email updates that person and gives
        // them the id (Track spec, identify description).
        if let Identifier::Id(new_id) = who
            && self.find(who).is_none()
            && !self.is_suppressed(who)
            && let Some(Value::String(email)) = body.get("email")
            && let Some(j) = self.find(&Identifier::email(email.clone()))
        {
            if self.people[j].id.as_ref().is_some_and(|old| old != new_id) {
                self.activity.push(format!("Attribute Update Failure: email {email:?} belongs to another person"));
                return;
            }
            self.people[j].id = Some(new_id.clone());
            self.people[j].attributes.insert("id".into(), new_id.clone().into());
        }
        let Some(ix) = self.resolve(who, update_only, "identify") else { return };
        // identifier changes in the body must not belong to someone else
        for key in ["id", "email"] {
            if let Some(Value::String(v)) = body.get(key) {
                let other = if key == "id" { Identifier::id(v.clone()) } else { Identifier::email(v.clone()) };
                if let Some(j) = self.find(&other)
                    && j != ix
                {
                    self.activity.push(format!("Attribute Update Failure: {key} {v:?} belongs to another person"));
                    return;
                }
            }
        }
        if let Some(Value::String(anon)) = body.get("anonymous_id") {
            let cio = self.people[ix].cio_id.clone();
            for e in &mut self.events {
                if e.cio_id.is_none() && e.anonymous_id.as_deref() == Some(anon.as_str()) {
                    e.cio_id = Some(cio.clone());
                }
            }
        }
        let p = &mut self.people[ix];
        for (k, v) in body {
            if k.starts_with('_') || k == "anonymous_id" {
                continue;
            }
            if p.attribute_timestamps.get(k).is_some_and(|&prev| prev > ts) {
                continue; // a newer update already set it
            }
            p.attribute_timestamps.insert(k.clone(), ts);
            let removes = v.is_null() || v.as_str() == Some("");
            if removes {
                p.attributes.remove(k);
            } else {
                p.attributes.insert(k.clone(), v.clone());
            }
            match k.as_str() {
                "id" => p.id = v.as_str().filter(|s| !s.is_empty()).map(str::to_owned),
                "email" => p.email = v.as_str().filter(|s| !s.is_empty()).map(str::to_owned),
                _ => {}
            }
        }
    }

    fn add_event(&mut self, cio_id: Option<String>, mut e: StoredEvent) {
        if let Some(id) = &e.id
            && !self.seen_event_ids.insert(id.clone())
        {
            self.activity.push(format!("duplicate event id {id} ignored"));
            return;
        }
        e.cio_id = cio_id;
        self.events.push(e);
    }

    fn delete(&mut self, who: &Identifier) {
        if let Some(i) = self.find(who) {
            let p = self.people.remove(i);
            self.forget_person(&p.cio_id);
        }
    }

    /// A deleted person leaves their relationships and manual segments.
    fn forget_person(&mut self, cio_id: &str) {
        for rels in self.relationships.values_mut() {
            rels.remove(cio_id);
        }
        for seg in &mut self.segments {
            seg.members.retain(|m| m != cio_id);
        }
    }

    fn suppress(&mut self, who: &Identifier) {
        if let Some(i) = self.find(who) {
            let p = self.people.remove(i);
            self.forget_person(&p.cio_id);
            if let Some(id) = p.id {
                self.suppressed.insert(suppress_key(&Identifier::id(id)));
            }
            if let Some(e) = p.email {
                self.suppressed.insert(suppress_key(&Identifier::email(e)));
            }
        }
        self.suppressed.insert(suppress_key(who));
    }

    fn unsuppress(&mut self, who: &Identifier) {
        self.suppressed.remove(&suppress_key(who));
    }

    fn merge(&mut self, primary: &Identifier, secondary: &Identifier) -> Result<(), String> {
        let pi = self.find(primary).ok_or_else(|| "primary person not found".to_owned())?;
        let si = self.find(secondary).ok_or_else(|| "secondary person not found".to_owned())?;
        if pi == si {
            return Err("primary and secondary are the same person".into());
        }
        let sec = self.people[si].clone();
        let prim = &mut self.people[pi];
        for (k, v) in &sec.attributes {
            if matches!(k.as_str(), "id" | "email") {
                continue;
            }
            prim.attributes.entry(k.clone()).or_insert_with(|| v.clone());
        }
        prim.devices.extend(sec.devices.iter().cloned());
        let prim_cio = prim.cio_id.clone();
        for e in &mut self.events {
            if e.cio_id.as_deref() == Some(sec.cio_id.as_str()) {
                e.cio_id = Some(prim_cio.clone());
            }
        }
        self.people.remove(si);
        Ok(())
    }

    fn add_device(&mut self, who: &Identifier, device: &Map<String, Value>, token_key: &str) -> Result<(), String> {
        let token = device.get(token_key).and_then(Value::as_str).ok_or(format!("device.{token_key} is required"))?;
        let Some(ix) = self.resolve(who, false, "add_device") else { return Ok(()) };
        let d = StoredDevice {
            token: token.to_owned(),
            platform: device.get("platform").and_then(Value::as_str).map(str::to_owned),
            last_used: device.get("last_used").and_then(Value::as_i64),
            attributes: device.get("attributes").and_then(Value::as_object).cloned().unwrap_or_default(),
        };
        let p = &mut self.people[ix];
        p.devices.retain(|x| x.token != d.token);
        p.devices.push(d);
        Ok(())
    }

    fn delete_device(&mut self, who: &Identifier, token: &str) {
        if let Some(i) = self.find(who) {
            self.people[i].devices.retain(|d| d.token != token);
        }
    }

    /// Applies one v2 operation.
    fn apply_v2(&mut self, op: &Value, now: i64) -> Applied {
        let bad = |field: &str, msg: &str| Applied::Invalid(field.to_owned(), msg.to_owned());
        let Some(m) = op.as_object() else { return bad("", "operation must be an object") };
        let typ = m.get("type").and_then(Value::as_str).unwrap_or_default();
        let action = m.get("action").and_then(Value::as_str).unwrap_or_default();
        match typ {
            "person" => {
                if action == "merge" {
                    let (Some(p), Some(s)) = (m.get("primary"), m.get("secondary")) else {
                        return bad("primary", "primary and secondary are required");
                    };
                    let (Ok(p), Ok(s)) = (identifier_from_json(p), identifier_from_json(s)) else {
                        return bad("primary", "exactly one identifier each");
                    };
                    return match self.merge(&p, &s) {
                        Ok(()) => Applied::Ok,
                        Err(e) => bad("primary", &e),
                    };
                }
                let who = match m.get("identifiers").map(identifier_from_json) {
                    Some(Ok(w)) => w,
                    Some(Err(e)) => return bad("identifiers", &e),
                    None => return bad("identifiers", "identifiers is required"),
                };
                if who.value().len() > MAX_IDENTIFIER_BYTES {
                    return bad("identifiers", "identifier is too long");
                }
                let attrs = m.get("attributes").and_then(Value::as_object).cloned().unwrap_or_default();
                let ts = m.get("timestamp").and_then(Value::as_i64);
                match action {
                    "identify" => {
                        if let Some(e) = check_attrs(&attrs).into_iter().next() {
                            return bad("attributes", &e);
                        }
                        let mut body = attrs;
                        if let Some(ts) = ts {
                            body.insert("_timestamp".into(), ts.into());
                        }
                        self.identify(&who, &body, now);
                        Applied::Ok
                    }
                    "event" | "page" | "screen" => {
                        let Some(name) = m.get("name").and_then(Value::as_str).filter(|n| !n.trim().is_empty()) else {
                            return bad("name", "name is required");
                        };
                        if name.len() > MAX_EVENT_NAME_BYTES {
                            return bad("name", "name is too long");
                        }
                        let Some(ix) = self.resolve(&who, false, "event") else { return Applied::Ok };
                        let cio = self.people[ix].cio_id.clone();
                        self.add_event(
                            Some(cio),
                            StoredEvent {
                                cio_id: None,
                                anonymous_id: None,
                                name: name.trim().to_owned(),
                                id: m.get("id").and_then(Value::as_str).map(str::to_owned),
                                kind: action.to_owned(),
                                timestamp: ts.unwrap_or(now),
                                data: attrs,
                            },
                        );
                        Applied::Ok
                    }
                    "delete" => {
                        self.delete(&who);
                        Applied::Ok
                    }
                    "suppress" => {
                        self.suppress(&who);
                        Applied::Ok
                    }
                    "unsuppress" => {
                        self.unsuppress(&who);
                        Applied::Ok
                    }
                    "add_device" => {
                        let dev = m.get("device").and_then(Value::as_object).cloned().unwrap_or_default();
                        match self.add_device(&who, &dev, "token") {
                            Ok(()) => Applied::Ok,
                            Err(e) => bad("device", &e),
                        }
                    }
                    "delete_device" => {
                        let token = m.get("device").and_then(|d| d.get("token")).and_then(Value::as_str);
                        match token {
                            Some(t) => {
                                self.delete_device(&who, t);
                                Applied::Ok
                            }
                            None => bad("device", "device.token is required"),
                        }
                    }
                    "add_relationships" | "delete_relationships" => {
                        let items = match parse_relationships(m.get("cio_relationships"), parse_object_addr) {
                            Ok(items) => items,
                            Err(e) => return bad("cio_relationships", &e),
                        };
                        let Some(ix) = self.resolve(&who, false, "relationship change") else { return Applied::Ok };
                        let cio = self.people[ix].cio_id.clone();
                        for (addr, attrs) in items {
                            let Some(key) = self.object_for(&addr, true) else { continue };
                            self.relate(action == "add_relationships", key, &cio, attrs);
                        }
                        Applied::Ok
                    }
                    other => bad("action", &format!("unknown person action {other:?}")),
                }
            }
            "object" => {
                let addr = match parse_object_addr(m.get("identifiers").unwrap_or(&Value::Null)) {
                    Ok(a) => a,
                    Err(e) => return bad("identifiers", &e),
                };
                if let ObjectAddr::Key(_, id) = &addr
                    && (id.is_empty() || id.len() > MAX_IDENTIFIER_BYTES)
                {
                    return bad("identifiers", "object_id must be 1 to 150 bytes");
                }
                match action {
                    "identify" => {
                        let attrs = m.get("attributes").and_then(Value::as_object).cloned().unwrap_or_default();
                        if let Some(e) = check_attrs(&attrs).into_iter().next() {
                            return bad("attributes", &e);
                        }
                        let rels = match m.get("cio_relationships") {
                            None => Vec::new(),
                            some => match parse_relationships(some, identifier_from_json) {
                                Ok(r) => r,
                                Err(e) => return bad("cio_relationships", &e),
                            },
                        };
                        // `cio_object_id` updates only (Track spec `object_identify`): an unknown one is dropped
                        let Some(key) = self.object_for(&addr, true) else { return Applied::Ok };
                        let entry = self.objects.entry(key.clone()).or_default();
                        for (k, v) in attrs {
                            if v.is_null() || v.as_str() == Some("") {
                                entry.remove(&k);
                            } else {
                                entry.insert(k, v);
                            }
                        }
                        self.relate_people(true, &key, rels);
                        Applied::Ok
                    }
                    "delete" => {
                        if let Some(key) = self.object_for(&addr, false) {
                            self.objects.remove(&key);
                            self.object_cio.remove(&key);
                            self.relationships.remove(&key);
                        }
                        Applied::Ok
                    }
                    "add_relationships" | "delete_relationships" => {
                        let rels = match parse_relationships(m.get("cio_relationships"), identifier_from_json) {
                            Ok(r) => r,
                            Err(e) => return bad("cio_relationships", &e),
                        };
                        let add = action == "add_relationships";
                        let Some(key) = self.object_for(&addr, add) else { return Applied::Ok };
                        self.relate_people(add, &key, rels);
                        Applied::Ok
                    }
                    other => bad("action", &format!("unknown object action {other:?}")),
                }
            }
            "delivery" if action == "event" => Applied::Ok,
            other => bad("type", &format!("unknown type {other:?}")),
        }
    }
}

/// How a v2 operation addresses an object.
enum ObjectAddr {
    Key(String, String),
    Cio(String),
}

/// `{"object_type_id", "object_id"}` or `{"cio_object_id"}` (Track spec `object_identifiers`).
fn parse_object_addr(v: &Value) -> Result<ObjectAddr, String> {
    let m = v.as_object().ok_or("identifiers must be an object")?;
    let s = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_owned);
    match (s("object_type_id"), s("object_id"), s("cio_object_id")) {
        (Some(t), Some(id), None) => Ok(ObjectAddr::Key(t, id)),
        (None, None, Some(c)) => Ok(ObjectAddr::Cio(c)),
        _ => Err("identifiers must be {object_type_id, object_id} or {cio_object_id}".into()),
    }
}

/// One parsed relationship: who or what, and its `relationship_attributes`.
type Related<T> = (T, Map<String, Value>);

/// A non-empty `cio_relationships` array of `{identifiers, relationship_attributes?}`, each checked like attributes.
fn parse_relationships<T>(
    v: Option<&Value>,
    parse: impl Fn(&Value) -> Result<T, String>,
) -> Result<Vec<Related<T>>, String> {
    let items = v.and_then(Value::as_array).filter(|a| !a.is_empty()).ok_or("cio_relationships is required")?;
    items
        .iter()
        .map(|item| {
            let who = parse(item.get("identifiers").unwrap_or(&Value::Null))?;
            let attrs = item.get("relationship_attributes").and_then(Value::as_object).cloned().unwrap_or_default();
            if let Some(e) = check_attrs(&attrs).into_iter().next() {
                return Err(e);
            }
            Ok((who, attrs))
        })
        .collect()
}

impl Db {
    /// The object's key; with `create`, a `{object_type_id, object_id}` object that does not exist yet is created.
    /// A `cio_object_id` must exist (it updates only); an unknown one is dropped and noted in the activity log.
    fn object_for(&mut self, addr: &ObjectAddr, create: bool) -> Option<(String, String)> {
        match addr {
            ObjectAddr::Key(t, id) => {
                let key = (t.clone(), id.clone());
                if !self.objects.contains_key(&key) {
                    if !create {
                        return None;
                    }
                    self.objects.insert(key.clone(), Map::new());
                    self.next_object += 1;
                    self.object_cio.insert(key.clone(), format!("{:012x}", 0x0b1e_c700_0000_u64 + self.next_object));
                }
                Some(key)
            }
            ObjectAddr::Cio(c) => {
                let found = self.object_cio.iter().find(|(_, v)| *v == c).map(|(k, _)| k.clone());
                if found.is_none() {
                    self.activity.push(format!("Failed object change: no object with cio_object_id {c:?}"));
                }
                found
            }
        }
    }

    fn relate(&mut self, add: bool, key: (String, String), person_cio: &str, attrs: Map<String, Value>) {
        let rels = self.relationships.entry(key).or_default();
        if add {
            let entry = rels.entry(person_cio.to_owned()).or_default();
            entry.extend(attrs);
        } else {
            rels.remove(person_cio);
        }
    }

    /// Object-side relationships: people are found or created (like an event for them would be); a suppressed or
    /// unknown `cio_id` person is skipped.
    fn relate_people(&mut self, add: bool, key: &(String, String), people: Vec<(Identifier, Map<String, Value>)>) {
        for (who, attrs) in people {
            let ix = if add { self.resolve(&who, false, "relationship change") } else { self.find(&who) };
            if let Some(ix) = ix {
                let cio = self.people[ix].cio_id.clone();
                self.relate(add, key.clone(), &cio, attrs);
            }
        }
    }
}

// ---------- HTTP layer ----------

type S = Arc<Shared>;

#[allow(clippy::result_large_err)]
fn track_gate(s: &Shared, headers: &HeaderMap) -> Result<(), Response> {
    let ok = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(decode_basic)
        .is_some_and(|up| up == format!("{}:{}", s.config.site_id, s.config.track_api_key));
    if !ok {
        return Err(StatusCode::UNAUTHORIZED.into_response());
    }
    if let Some(c) = &s.track_limit
        && !c.admit(&s.config.site_id)
    {
        return Err(too_many(s.config.rate_limit_retry_after));
    }
    Ok(())
}

#[allow(clippy::result_large_err)]
fn app_gate(s: &Shared, headers: &HeaderMap, limit: Option<&WindowCounter>) -> Result<(), Response> {
    let ok = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {}", s.config.app_api_key));
    if !ok {
        return Err(meta_error(StatusCode::UNAUTHORIZED, "Unauthorized request"));
    }
    if let Some(c) = limit
        && !c.admit("app")
    {
        let mut resp = json_response(
            StatusCode::TOO_MANY_REQUESTS,
            &json!({"meta": {"error": "Your request is over the rate limit."}}),
        );
        if let Ok(v) = retry_after_value(s.config.rate_limit_retry_after).parse() {
            resp.headers_mut().insert("retry-after", v);
        }
        return Err(resp);
    }
    Ok(())
}

#[allow(clippy::result_large_err)]
fn parse_object(body: &[u8]) -> Result<Map<String, Value>, Response> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(v1_errors(&["request body must be a JSON object".into()])),
    }
}

#[allow(clippy::result_large_err)]
fn path_who(raw: &str) -> Result<Identifier, Response> {
    let who = parse_path_identifier(raw);
    if who.value().is_empty() || who.value().len() > MAX_IDENTIFIER_BYTES {
        return Err(v1_errors(&[format!("identifier must be 1 to {MAX_IDENTIFIER_BYTES} bytes")]));
    }
    Ok(who)
}

macro_rules! tri {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(r) => return r,
        }
    };
}

async fn v1_identify(AxState(s): AxState<S>, headers: HeaderMap, Path(raw): Path<String>, body: Bytes) -> Response {
    tri!(track_gate(&s, &headers));
    let who = tri!(path_who(&raw));
    let body = tri!(parse_object(&body));
    let errs = check_attrs(&body);
    if !errs.is_empty() {
        return v1_errors(&errs);
    }
    let now = s.now();
    s.lock().identify(&who, &body, now);
    ok_empty()
}

async fn v1_delete(AxState(s): AxState<S>, headers: HeaderMap, Path(raw): Path<String>) -> Response {
    tri!(track_gate(&s, &headers));
    let who = tri!(path_who(&raw));
    s.lock().delete(&who);
    ok_empty()
}

async fn v1_suppress(AxState(s): AxState<S>, headers: HeaderMap, Path(raw): Path<String>) -> Response {
    tri!(track_gate(&s, &headers));
    let who = tri!(path_who(&raw));
    s.lock().suppress(&who);
    ok_empty()
}

async fn v1_unsuppress(AxState(s): AxState<S>, headers: HeaderMap, Path(raw): Path<String>) -> Response {
    tri!(track_gate(&s, &headers));
    let who = tri!(path_who(&raw));
    s.lock().unsuppress(&who);
    ok_empty()
}

#[allow(clippy::result_large_err)]
fn event_from_v1(body: &Map<String, Value>, now: i64) -> Result<StoredEvent, Response> {
    let name = body.get("name").and_then(Value::as_str).map(str::trim).unwrap_or_default();
    if name.is_empty() {
        return Err(v1_errors(&["name is required".into()]));
    }
    if name.len() > MAX_EVENT_NAME_BYTES {
        return Err(v1_errors(&[format!("name is too long (max {MAX_EVENT_NAME_BYTES} bytes)")]));
    }
    let data = body.get("data").and_then(Value::as_object).cloned().unwrap_or_default();
    if serde_json::to_vec(&data).map_or(0, |v| v.len()) > crate::limits::MAX_EVENT_DATA_BYTES {
        return Err(v1_errors(&["event data is too large".into()]));
    }
    Ok(StoredEvent {
        cio_id: None,
        anonymous_id: body.get("anonymous_id").and_then(Value::as_str).map(str::to_owned),
        name: name.to_owned(),
        id: body.get("id").and_then(Value::as_str).map(str::to_owned),
        kind: body.get("type").and_then(Value::as_str).unwrap_or("event").to_owned(),
        timestamp: body.get("timestamp").and_then(Value::as_i64).unwrap_or(now),
        data,
    })
}

async fn v1_event(AxState(s): AxState<S>, headers: HeaderMap, Path(raw): Path<String>, body: Bytes) -> Response {
    tri!(track_gate(&s, &headers));
    let who = tri!(path_who(&raw));
    let body = tri!(parse_object(&body));
    let event = tri!(event_from_v1(&body, s.now()));
    let mut st = s.lock();
    if let Some(ix) = st.resolve(&who, false, "event") {
        let cio = st.people[ix].cio_id.clone();
        st.add_event(Some(cio), event);
    }
    ok_empty()
}

async fn v1_anonymous_event(AxState(s): AxState<S>, headers: HeaderMap, body: Bytes) -> Response {
    tri!(track_gate(&s, &headers));
    let body = tri!(parse_object(&body));
    let event = tri!(event_from_v1(&body, s.now()));
    s.lock().add_event(None, event);
    ok_empty()
}

async fn v1_add_device(AxState(s): AxState<S>, headers: HeaderMap, Path(raw): Path<String>, body: Bytes) -> Response {
    tri!(track_gate(&s, &headers));
    let who = tri!(path_who(&raw));
    let body = tri!(parse_object(&body));
    let Some(device) = body.get("device").and_then(Value::as_object) else {
        return v1_errors(&["device is required".into()]);
    };
    match s.lock().add_device(&who, device, "id") {
        Ok(()) => ok_empty(),
        Err(e) => v1_errors(&[e]),
    }
}

async fn v1_delete_device(
    AxState(s): AxState<S>,
    headers: HeaderMap,
    Path((raw, token)): Path<(String, String)>,
) -> Response {
    tri!(track_gate(&s, &headers));
    let who = tri!(path_who(&raw));
    s.lock().delete_device(&who, &token);
    ok_empty()
}

async fn v1_merge(AxState(s): AxState<S>, headers: HeaderMap, body: Bytes) -> Response {
    tri!(track_gate(&s, &headers));
    let body = tri!(parse_object(&body));
    let (Some(p), Some(sec)) = (body.get("primary"), body.get("secondary")) else {
        return meta_error(StatusCode::BAD_REQUEST, "primary and secondary are required");
    };
    let (p, sec) = match (identifier_from_json(p), identifier_from_json(sec)) {
        (Ok(p), Ok(sec)) => (p, sec),
        (Err(e), _) | (_, Err(e)) => return meta_error(StatusCode::BAD_REQUEST, &e),
    };
    match s.lock().merge(&p, &sec) {
        Ok(()) => ok_empty(),
        Err(e) => meta_error(StatusCode::BAD_REQUEST, &e),
    }
}

async fn v1_region(AxState(s): AxState<S>, headers: HeaderMap) -> Response {
    tri!(track_gate(&s, &headers));
    let url = match s.config.region {
        crate::Region::Eu => "https://track-eu.customer.io",
        _ => "https://track.customer.io",
    };
    json_response(StatusCode::OK, &json!({"url": url, "region": s.config.region.as_str(), "environment_id": 1}))
}

fn v2_errors(status: StatusCode, items: &[Value]) -> Response {
    json_response(status, &json!({"errors": items}))
}

async fn v2_entity(AxState(s): AxState<S>, headers: HeaderMap, body: Bytes) -> Response {
    tri!(track_gate(&s, &headers));
    if body.len() > MAX_ENTITY_BYTES {
        return v2_errors(
            StatusCode::BAD_REQUEST,
            &[json!({"reason": "too_large", "field": "", "message": "request is larger than 32 kb"})],
        );
    }
    let Ok(op) = serde_json::from_slice::<Value>(&body) else {
        return v2_errors(
            StatusCode::BAD_REQUEST,
            &[json!({"reason": "malformed", "field": "", "message": "invalid JSON"})],
        );
    };
    let now = s.now();
    match s.lock().apply_v2(&op, now) {
        Applied::Ok => ok_empty(),
        Applied::Invalid(field, message) => {
            v2_errors(StatusCode::BAD_REQUEST, &[json!({"reason": "invalid", "field": field, "message": message})])
        }
    }
}

async fn v2_batch(AxState(s): AxState<S>, headers: HeaderMap, body: Bytes) -> Response {
    tri!(track_gate(&s, &headers));
    if body.len() > MAX_BATCH_BYTES {
        return v2_errors(
            StatusCode::BAD_REQUEST,
            &[json!({"reason": "too_large", "field": "batch", "message": "request is larger than 500 kb"})],
        );
    }
    let ops = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(mut m)) => match m.remove("batch") {
            Some(Value::Array(ops)) => ops,
            _ => {
                return v2_errors(
                    StatusCode::BAD_REQUEST,
                    &[json!({"reason": "required", "field": "batch", "message": "batch must be an array"})],
                );
            }
        },
        _ => {
            return v2_errors(
                StatusCode::BAD_REQUEST,
                &[json!({"reason": "malformed", "field": "", "message": "invalid JSON"})],
            );
        }
    };
    let now = s.now();
    let mut errors = Vec::new();
    let mut st = s.lock();
    for (i, op) in ops.iter().enumerate() {
        if op.to_string().len() > MAX_ENTITY_BYTES {
            errors.push(json!({"batch_index": i, "reason": "too_large", "field": "", "message": "operation is larger than 32 kb"}));
            continue;
        }
        if let Applied::Invalid(field, message) = st.apply_v2(op, now) {
            errors.push(json!({"batch_index": i, "reason": "invalid", "field": field, "message": message}));
        }
    }
    drop(st);
    if errors.is_empty() { ok_empty() } else { v2_errors(StatusCode::MULTI_STATUS, &errors) }
}

fn query_param(q: Option<&str>, key: &str) -> Option<String> {
    url::form_urlencoded::parse(q?.as_bytes()).find(|(k, _)| k == key).map(|(_, v)| v.into_owned())
}

fn attr_string(v: &Value) -> Value {
    match v {
        Value::String(s) => Value::String(s.clone()),
        other => Value::String(other.to_string()),
    }
}

async fn app_customers_by_email(AxState(s): AxState<S>, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    tri!(app_gate(&s, &headers, s.app_limit.as_ref()));
    let Some(email) = query_param(q.as_deref(), "email") else {
        return meta_error(StatusCode::BAD_REQUEST, "email is required");
    };
    let st = s.lock();
    let results: Vec<Value> = st
        .people
        .iter()
        .filter(|p| p.email.as_deref().is_some_and(|e| e.eq_ignore_ascii_case(&email)))
        .map(|p| json!({"email": p.email, "id": p.id, "cio_id": p.cio_id}))
        .collect();
    json_response(StatusCode::OK, &json!({"results": results}))
}

async fn app_customer_attributes(
    AxState(s): AxState<S>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    tri!(app_gate(&s, &headers, s.app_limit.as_ref()));
    let who = match query_param(q.as_deref(), "id_type").as_deref() {
        Some("email") => Identifier::email(raw),
        Some("cio_id") => Identifier::cio_id(raw),
        _ => Identifier::id(raw),
    };
    let st = s.lock();
    let Some(i) = st.find(&who) else {
        return json_response(StatusCode::NOT_FOUND, &json!({"errors": [{"detail": "Not Found", "status": "404"}]}));
    };
    json_response(StatusCode::OK, &customer_json(&st.people[i]))
}

/// `{"customer": {id, identifiers, attributes (as strings), timestamps, unsubscribed, devices}}`.
fn customer_json(p: &Person) -> Value {
    let attributes: Map<String, Value> = p.attributes.iter().map(|(k, v)| (k.clone(), attr_string(v))).collect();
    let timestamps: Map<String, Value> =
        p.attribute_timestamps.iter().map(|(k, v)| (k.clone(), Value::from(*v))).collect();
    json!({"customer": {
        "id": p.id,
        "identifiers": {"email": p.email, "id": p.id, "cio_id": p.cio_id},
        "attributes": attributes,
        "timestamps": timestamps,
        "unsubscribed": p.attributes.get("unsubscribed").and_then(Value::as_bool).unwrap_or(false),
        "devices": p.devices,
    }})
}

/// `POST /v1/customers/attributes?id_type=` with `{"ids": [1..100]}` → `{"customers": [{"customer": …}]}`; ids
/// that do not exist are left out (api-notes customerio.md §3).
async fn app_customers_attributes(
    AxState(s): AxState<S>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    tri!(app_gate(&s, &headers, s.app_limit.as_ref()));
    let ids = serde_json::from_slice::<Value>(&body).ok().and_then(|v| v.get("ids").and_then(Value::as_array).cloned());
    let Some(ids) = ids.filter(|a| (1..=100).contains(&a.len())) else {
        return meta_error(StatusCode::BAD_REQUEST, "ids must hold 1 to 100 values");
    };
    let st = s.lock();
    let customers: Vec<Value> = ids
        .iter()
        .filter_map(Value::as_str)
        .filter_map(|v| st.find(&app_path_who(v.to_owned(), q.as_deref())))
        .map(|i| customer_json(&st.people[i]))
        .collect();
    json_response(StatusCode::OK, &json!({"customers": customers}))
}

async fn app_send(AxState(s): AxState<S>, headers: HeaderMap, Path(kind): Path<String>, body: Bytes) -> Response {
    tri!(app_gate(&s, &headers, s.transactional_limit.as_ref()));
    let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(&body) else {
        return meta_error(StatusCode::BAD_REQUEST, "Request entity must be JSON encoded");
    };
    if !m.contains_key("identifiers") {
        return meta_error(StatusCode::BAD_REQUEST, "\"identifiers\" is required");
    }
    // Track spec `sendpush`/`sendsms`: `transactional_message_id` is required; an SMS also needs `to`
    if matches!(kind.as_str(), "push" | "sms") && !m.contains_key("transactional_message_id") {
        return meta_error(StatusCode::BAD_REQUEST, "\"transactional_message_id\" is required");
    }
    if kind == "sms" && m.get("to").and_then(Value::as_str).is_none_or(|t| t.trim().is_empty()) {
        return meta_error(StatusCode::BAD_REQUEST, "\"to\" is required");
    }
    if kind == "email" {
        if !m.contains_key("to") {
            return meta_error(StatusCode::BAD_REQUEST, "\"to\" is required");
        }
        let inline = ["from", "subject", "body"].iter().all(|k| m.contains_key(*k));
        if !m.contains_key("transactional_message_id") && !inline {
            return meta_error(StatusCode::BAD_REQUEST, "\"transactional_message_id\" not found");
        }
    }
    let now = s.now();
    let mut st = s.lock();
    st.next_delivery += 1;
    let delivery_id = format!("RPILAgUBcRhIBqSfeiIw{:08}", st.next_delivery);
    st.sent.push(SentMessage { delivery_id: delivery_id.clone(), kind, body: Value::Object(m), queued_at: now });
    json_response(StatusCode::OK, &json!({"delivery_id": delivery_id, "queued_at": now}))
}

async fn app_trigger(AxState(s): AxState<S>, headers: HeaderMap, Path(id): Path<u64>, body: Bytes) -> Response {
    tri!(app_gate(&s, &headers, s.broadcast_limit.as_ref()));
    let body = if body.is_empty() { json!({}) } else { serde_json::from_slice(&body).unwrap_or(Value::Null) };
    if !body.is_object() {
        return meta_error(StatusCode::BAD_REQUEST, "Request entity must be JSON encoded");
    }
    if let Some(Value::Object(r)) = body.get("recipients")
        && r.is_empty()
    {
        return json_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            &json!({"meta": {"error": "empty recipients filter is not valid"}}),
        );
    }
    let now = s.now();
    let mut st = s.lock();
    st.next_trigger += 1;
    let trigger_id = st.next_trigger;
    st.broadcasts.push(BroadcastRecord { broadcast_id: id, trigger_id, body, created_at: now });
    json_response(StatusCode::OK, &json!({"id": trigger_id}))
}

async fn app_reporting_webhooks_list(AxState(s): AxState<S>, headers: HeaderMap) -> Response {
    tri!(app_gate(&s, &headers, s.app_limit.as_ref()));
    let list = s.lock().reporting_webhooks.clone();
    json_response(StatusCode::OK, &json!({"reporting_webhooks": list}))
}

fn trigger_json(b: &BroadcastRecord) -> Value {
    json!({"id": b.trigger_id, "broadcast_id": b.broadcast_id, "created_at": b.created_at, "processed_at": b.created_at})
}

/// `GET /v1/campaigns/{broadcast_id}/triggers/{trigger_id}` (App API `broadcastStatus`).
async fn app_trigger_status(
    AxState(s): AxState<S>,
    headers: HeaderMap,
    Path((broadcast_id, trigger_id)): Path<(u64, i64)>,
) -> Response {
    tri!(app_gate(&s, &headers, s.app_limit.as_ref()));
    let st = s.lock();
    match st.broadcasts.iter().find(|b| b.broadcast_id == broadcast_id && b.trigger_id == trigger_id) {
        Some(b) => json_response(StatusCode::OK, &trigger_json(b)),
        None => app_not_found("trigger"),
    }
}

/// `GET /v1/broadcasts/{broadcast_id}/triggers` (App API `listBroadcastTriggers`).
async fn app_trigger_list(AxState(s): AxState<S>, headers: HeaderMap, Path(broadcast_id): Path<u64>) -> Response {
    tri!(app_gate(&s, &headers, s.app_limit.as_ref()));
    let list: Vec<Value> =
        s.lock().broadcasts.iter().filter(|b| b.broadcast_id == broadcast_id).map(trigger_json).collect();
    json_response(StatusCode::OK, &json!({"triggers": list}))
}

/// `DELETE /v1/reporting_webhooks/{id}` (App API `deleteWebhook`: 200 without a body, 404 for an unknown id).
async fn app_reporting_webhooks_delete(AxState(s): AxState<S>, headers: HeaderMap, Path(id): Path<u64>) -> Response {
    tri!(app_gate(&s, &headers, s.app_limit.as_ref()));
    let mut st = s.lock();
    let before = st.reporting_webhooks.len();
    st.reporting_webhooks.retain(|w| w["id"].as_u64() != Some(id));
    if st.reporting_webhooks.len() == before { app_not_found("webhook") } else { StatusCode::OK.into_response() }
}

fn webhook_body(body: &[u8]) -> Result<Map<String, Value>, String> {
    let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(body) else {
        return Err("Request entity must be JSON encoded".into());
    };
    for k in ["name", "endpoint", "events"] {
        if !m.contains_key(k) {
            return Err(format!("\"{k}\" is required"));
        }
    }
    Ok(m)
}

async fn app_reporting_webhooks_create(AxState(s): AxState<S>, headers: HeaderMap, body: Bytes) -> Response {
    tri!(app_gate(&s, &headers, s.app_limit.as_ref()));
    let mut m = match webhook_body(&body) {
        Ok(m) => m,
        Err(e) => return meta_error(StatusCode::BAD_REQUEST, &e),
    };
    let mut st = s.lock();
    // never reuse a deleted webhook's id
    let id = st.reporting_webhooks.iter().filter_map(|w| w["id"].as_u64()).max().unwrap_or(0) + 1;
    m.insert("id".into(), id.into());
    st.reporting_webhooks.push(Value::Object(m.clone()));
    json_response(StatusCode::OK, &Value::Object(m))
}

async fn app_reporting_webhooks_update(
    AxState(s): AxState<S>,
    headers: HeaderMap,
    Path(id): Path<u64>,
    body: Bytes,
) -> Response {
    tri!(app_gate(&s, &headers, s.app_limit.as_ref()));
    let mut m = match webhook_body(&body) {
        Ok(m) => m,
        Err(e) => return meta_error(StatusCode::BAD_REQUEST, &e),
    };
    let mut st = s.lock();
    let Some(slot) = st.reporting_webhooks.iter_mut().find(|w| w["id"].as_u64() == Some(id)) else {
        return meta_error(StatusCode::NOT_FOUND, "webhook not found");
    };
    m.insert("id".into(), id.into());
    *slot = Value::Object(m.clone());
    json_response(StatusCode::OK, &Value::Object(m))
}

// ----- segments and search (App API; Track manual segment changes) -----

/// App API 404 body (`{"errors":[{"detail","status"}]}`, as for an unknown person's attributes).
fn app_not_found(what: &str) -> Response {
    json_response(StatusCode::NOT_FOUND, &json!({"errors": [{"detail": format!("{what} not found"), "status": "404"}]}))
}

/// `start` (an opaque `next` token: the fake's is the offset) and `limit` (1 to `max`; `default` when absent).
#[allow(clippy::result_large_err)]
fn page_params(q: Option<&str>, max: usize, default: usize) -> Result<(usize, usize), Response> {
    let start = match query_param(q, "start").filter(|s| !s.is_empty()) {
        None => 0,
        Some(t) => t.parse().map_err(|_| meta_error(StatusCode::BAD_REQUEST, "invalid start token"))?,
    };
    let limit = match query_param(q, "limit") {
        None => default,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => n,
            _ => return Err(meta_error(StatusCode::BAD_REQUEST, &format!("limit must be 1 to {max}"))),
        },
    };
    Ok((start, limit))
}

/// `{"identifiers": [{email, id, cio_id}], "ids": [...], "next": "…"}` for people `cios[start..start+limit]`;
/// `next` is `""` on the last page.
fn people_page(st: &Db, cios: &[String], start: usize, limit: usize) -> Value {
    let slice = cios.iter().skip(start).take(limit);
    let people: Vec<&Person> = slice.filter_map(|c| st.people.iter().find(|p| &p.cio_id == c)).collect();
    let identifiers: Vec<Value> =
        people.iter().map(|p| json!({"email": p.email, "id": p.id, "cio_id": p.cio_id})).collect();
    let ids: Vec<Value> = people.iter().map(|p| Value::from(p.id.clone().unwrap_or_default())).collect();
    let end = start + limit;
    let next = if end < cios.len() { end.to_string() } else { String::new() };
    json!({"identifiers": identifiers, "ids": ids, "next": next})
}

/// Evaluates an App API people filter (`and`/`or`/`not`, `segment: {id}`, `attribute: {field, operator: eq|exists,
/// value}`; attribute values compare as strings, the way Customer.io stores them).
fn filter_matches(st: &Db, p: &Person, f: &Value) -> Result<bool, String> {
    let m = f.as_object().filter(|m| m.len() == 1).ok_or("a filter object takes exactly one property")?;
    let (k, v) = m.iter().next().ok_or("empty filter")?;
    match k.as_str() {
        "and" | "or" => {
            let items = v.as_array().filter(|a| !a.is_empty()).ok_or(format!("`{k}` takes a non-empty array"))?;
            let mut results = Vec::with_capacity(items.len());
            for item in items {
                results.push(filter_matches(st, p, item)?);
            }
            Ok(if k == "and" { results.iter().all(|b| *b) } else { results.iter().any(|b| *b) })
        }
        "not" => Ok(!filter_matches(st, p, v)?),
        "segment" => {
            let id = v.get("id").and_then(Value::as_u64).ok_or("segment filter needs an integer id")?;
            Ok(st.segments.iter().any(|s| s.id == id && s.members.contains(&p.cio_id)))
        }
        "attribute" => {
            let field = v.get("field").and_then(Value::as_str).ok_or("attribute filter needs a field")?;
            match v.get("operator").and_then(Value::as_str) {
                Some("exists") => Ok(p.attributes.contains_key(field)),
                Some("eq") => {
                    let want = v.get("value").ok_or("an eq filter needs a value")?;
                    Ok(p.attributes.get(field).is_some_and(|have| attr_string(have) == attr_string(want)))
                }
                _ => Err("operator must be eq or exists".into()),
            }
        }
        other => Err(format!("unknown filter {other:?}")),
    }
}

async fn app_search(AxState(s): AxState<S>, headers: HeaderMap, RawQuery(q): RawQuery, body: Bytes) -> Response {
    tri!(app_gate(&s, &headers, s.app_limit.as_ref()));
    let (start, limit) = tri!(page_params(q.as_deref(), 1000, 1000));
    let filter = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(mut m)) => match m.remove("filter") {
            Some(f @ Value::Object(_)) => f,
            _ => return meta_error(StatusCode::BAD_REQUEST, "filter is required"),
        },
        _ => return meta_error(StatusCode::BAD_REQUEST, "Request entity must be JSON encoded"),
    };
    let st = s.lock();
    let mut cios = Vec::new();
    for p in &st.people {
        match filter_matches(&st, p, &filter) {
            Ok(true) => cios.push(p.cio_id.clone()),
            Ok(false) => {}
            Err(e) => return meta_error(StatusCode::BAD_REQUEST, &e),
        }
    }
    json_response(StatusCode::OK, &people_page(&st, &cios, start, limit))
}

async fn app_segments_list(AxState(s): AxState<S>, headers: HeaderMap) -> Response {
    tri!(app_gate(&s, &headers, s.app_limit.as_ref()));
    let list: Vec<Value> = s.lock().segments.iter().map(SegmentRecord::to_json).collect();
    json_response(StatusCode::OK, &json!({"segments": list}))
}

async fn app_segments_create(AxState(s): AxState<S>, headers: HeaderMap, body: Bytes) -> Response {
    tri!(app_gate(&s, &headers, s.app_limit.as_ref()));
    let seg = serde_json::from_slice::<Value>(&body).ok().and_then(|v| v.get("segment").cloned());
    let Some(name) = seg.as_ref().and_then(|v| v.get("name")).and_then(Value::as_str).filter(|n| !n.trim().is_empty())
    else {
        return meta_error(StatusCode::BAD_REQUEST, "segment.name is required");
    };
    let description = seg.as_ref().and_then(|v| v.get("description")).and_then(Value::as_str).map(str::to_owned);
    let now = s.now();
    let mut st = s.lock();
    let id = st.add_segment(name, description, SegmentType::Manual, Vec::new(), now);
    let json = st.segments.iter().find(|x| x.id == id).map(SegmentRecord::to_json).unwrap_or_default();
    json_response(StatusCode::OK, &json!({"segment": json}))
}

async fn app_segment_get(AxState(s): AxState<S>, headers: HeaderMap, Path(id): Path<u64>) -> Response {
    tri!(app_gate(&s, &headers, s.app_limit.as_ref()));
    match s.lock().segments.iter().find(|x| x.id == id) {
        Some(seg) => json_response(StatusCode::OK, &json!({"segment": seg.to_json()})),
        None => app_not_found("segment"),
    }
}

async fn app_segment_delete(AxState(s): AxState<S>, headers: HeaderMap, Path(id): Path<u64>) -> Response {
    tri!(app_gate(&s, &headers, s.app_limit.as_ref()));
    let mut st = s.lock();
    let before = st.segments.len();
    st.segments.retain(|x| x.id != id);
    if st.segments.len() == before { app_not_found("segment") } else { StatusCode::NO_CONTENT.into_response() }
}

async fn app_segment_count(AxState(s): AxState<S>, headers: HeaderMap, Path(id): Path<u64>) -> Response {
    tri!(app_gate(&s, &headers, s.app_limit.as_ref()));
    match s.lock().segments.iter().find(|x| x.id == id) {
        Some(seg) => json_response(StatusCode::OK, &json!({"count": seg.members.len()})),
        None => app_not_found("segment"),
    }
}

async fn app_segment_membership(
    AxState(s): AxState<S>,
    headers: HeaderMap,
    Path(id): Path<u64>,
    RawQuery(q): RawQuery,
) -> Response {
    tri!(app_gate(&s, &headers, s.app_limit.as_ref()));
    let (start, limit) = tri!(page_params(q.as_deref(), 30_000, 1000));
    let st = s.lock();
    let Some(seg) = st.segments.iter().find(|x| x.id == id) else { return app_not_found("segment") };
    json_response(StatusCode::OK, &people_page(&st, &seg.members, start, limit))
}

fn app_path_who(raw: String, q: Option<&str>) -> Identifier {
    match query_param(q, "id_type").as_deref() {
        Some("email") => Identifier::email(raw),
        Some("cio_id") => Identifier::cio_id(raw),
        _ => Identifier::id(raw),
    }
}

async fn app_customer_segments(
    AxState(s): AxState<S>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    tri!(app_gate(&s, &headers, s.app_limit.as_ref()));
    let who = app_path_who(raw, q.as_deref());
    let st = s.lock();
    let Some(i) = st.find(&who) else { return app_not_found("customer") };
    let cio = &st.people[i].cio_id;
    let list: Vec<Value> = st.segments.iter().filter(|x| x.members.contains(cio)).map(SegmentRecord::to_json).collect();
    json_response(StatusCode::OK, &json!({"segments": list}))
}

/// Track `POST /api/v1/segments/{id}/add_customers|remove_customers?id_type=` with `{"ids": [1..1000]}` (Track spec;
/// api-notes §1): manual segments only; ids of people who do not exist are skipped.
async fn v1_segment_change(
    AxState(s): AxState<S>,
    headers: HeaderMap,
    Path((id, op)): Path<(u64, String)>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    tri!(track_gate(&s, &headers));
    let add = match op.as_str() {
        "add_customers" => true,
        "remove_customers" => false,
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    let id_type = query_param(q.as_deref(), "id_type").unwrap_or_else(|| "id".into());
    if !matches!(id_type.as_str(), "id" | "email" | "cio_id") {
        return v1_errors(&["id_type must be id, email or cio_id".into()]);
    }
    let body = tri!(parse_object(&body));
    let Some(ids) = body.get("ids").and_then(Value::as_array).filter(|a| (1..=1000).contains(&a.len())) else {
        return v1_errors(&["ids must hold 1 to 1000 values".into()]);
    };
    let mut st = s.lock();
    let cios: Vec<String> = ids
        .iter()
        .filter_map(|v| v.as_str())
        .filter_map(|v| {
            let who = app_path_who(v.to_owned(), Some(&format!("id_type={id_type}")));
            st.find(&who).map(|i| st.people[i].cio_id.clone())
        })
        .collect();
    let Some(seg) = st.segments.iter_mut().find(|x| x.id == id) else {
        return v1_errors(&[format!("segment {id} not found")]);
    };
    if seg.kind != SegmentType::Manual {
        return v1_errors(&[format!("segment {id} is not a manual segment")]);
    }
    for c in cios {
        if add && !seg.members.contains(&c) {
            seg.members.push(c);
        } else if !add {
            seg.members.retain(|m| *m != c);
        }
    }
    ok_empty()
}

/// `GET /v1/customers/{id}/activities?id_type&start&limit(≤ 100)&type&name`: the person's events, page and screen
/// views as activities (Track spec `activityObject`), newest first, in `{"activities": [...], "next": "…"}`.
async fn app_customer_activities(
    AxState(s): AxState<S>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    tri!(app_gate(&s, &headers, s.app_limit.as_ref()));
    let (start, limit) = tri!(page_params(q.as_deref(), 100, 100));
    let who = app_path_who(raw, q.as_deref());
    let kind = query_param(q.as_deref(), "type");
    let name = query_param(q.as_deref(), "name");
    let st = s.lock();
    let Some(i) = st.find(&who) else { return app_not_found("customer") };
    let p = &st.people[i];
    let all: Vec<Value> = st
        .events
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, e)| e.cio_id.as_deref() == Some(p.cio_id.as_str()))
        .filter(|(_, e)| kind.as_deref().is_none_or(|k| k == e.kind))
        .filter(|(_, e)| name.as_deref().is_none_or(|n| n == e.name))
        .map(|(n, e)| {
            json!({"id": format!("act{n}"), "type": e.kind, "name": e.name, "timestamp": e.timestamp,
                "customer_id": p.id, "customer_identifiers": {"email": p.email, "id": p.id, "cio_id": p.cio_id},
                "data": e.data})
        })
        .collect();
    let end = start + limit;
    let next = if end < all.len() { end.to_string() } else { String::new() };
    let page: Vec<Value> = all.into_iter().skip(start).take(limit).collect();
    json_response(StatusCode::OK, &json!({"activities": page, "next": next}))
}

/// `GET /v1/customers/{id}/messages?id_type&start&limit&start_ts&end_ts`: transactional messages the fake sent to
/// the person (Track spec `messageObject`; an SMS is `type: twilio`), newest first, in `{"messages": [...],
/// "next": "…"}`.
async fn app_customer_messages(
    AxState(s): AxState<S>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    tri!(app_gate(&s, &headers, s.app_limit.as_ref()));
    let (start, limit) = tri!(page_params(q.as_deref(), usize::MAX, 100));
    let who = app_path_who(raw, q.as_deref());
    let ts = |k: &str| query_param(q.as_deref(), k).and_then(|v| v.parse::<i64>().ok());
    let (from, to) = (ts("start_ts"), ts("end_ts"));
    let st = s.lock();
    let Some(i) = st.find(&who) else { return app_not_found("customer") };
    let p = &st.people[i];
    let all: Vec<Value> = st
        .sent
        .iter()
        .rev()
        .filter(|m| identifier_from_json(&m.body["identifiers"]).is_ok_and(|w| matches(p, &w)))
        .filter(|m| from.is_none_or(|f| m.queued_at >= f) && to.is_none_or(|t| m.queued_at < t))
        .map(|m| {
            let kind = if m.kind == "sms" { "twilio" } else { m.kind.as_str() };
            json!({"id": m.delivery_id, "type": kind, "recipient": m.body.get("to"),
                "subject": m.body.get("subject"), "created": m.queued_at, "metrics": {"sent": m.queued_at},
                "customer_id": p.id, "customer_identifiers": {"email": p.email, "id": p.id, "cio_id": p.cio_id},
                "forgotten": false})
        })
        .collect();
    let end = start.saturating_add(limit);
    let next = if end < all.len() { end.to_string() } else { String::new() };
    let page: Vec<Value> = all.into_iter().skip(start).take(limit).collect();
    json_response(StatusCode::OK, &json!({"messages": page, "next": next}))
}

impl Db {
    fn add_segment(
        &mut self,
        name: &str,
        description: Option<String>,
        kind: SegmentType,
        members: Vec<String>,
        now: i64,
    ) -> u64 {
        self.next_segment += 1;
        let id = self.next_segment;
        self.segments.push(SegmentRecord { id, name: name.to_owned(), description, kind, members, created_at: now });
        id
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/api/v1/accounts/region", get(v1_region))
        .route("/api/v1/customers/{identifier}", put(v1_identify).delete(v1_delete))
        .route("/api/v1/customers/{identifier}/suppress", post(v1_suppress))
        .route("/api/v1/customers/{identifier}/unsuppress", post(v1_unsuppress))
        .route("/api/v1/customers/{identifier}/events", post(v1_event))
        .route("/api/v1/customers/{identifier}/devices", put(v1_add_device))
        .route("/api/v1/customers/{identifier}/devices/{device_id}", delete(v1_delete_device))
        .route("/api/v1/events", post(v1_anonymous_event))
        .route("/api/v1/merge_customers", post(v1_merge))
        .route("/api/v2/entity", post(v2_entity))
        .route("/api/v2/batch", post(v2_batch))
        .route("/api/v1/segments/{segment_id}/{op}", post(v1_segment_change))
        .route("/v1/customers", get(app_customers_by_email).post(app_search))
        .route("/v1/customers/{id}/segments", get(app_customer_segments))
        .route("/v1/customers/attributes", post(app_customers_attributes))
        .route("/v1/customers/{id}/activities", get(app_customer_activities))
        .route("/v1/customers/{id}/messages", get(app_customer_messages))
        .route("/v1/segments", get(app_segments_list).post(app_segments_create))
        .route("/v1/segments/{id}", get(app_segment_get).delete(app_segment_delete))
        .route("/v1/segments/{id}/customer_count", get(app_segment_count))
        .route("/v1/segments/{id}/membership", get(app_segment_membership))
        .route("/v1/customers/{id}/attributes", get(app_customer_attributes))
        .route("/v1/send/{kind}", post(app_send))
        .route("/v1/campaigns/{id}/triggers", post(app_trigger))
        .route("/v1/reporting_webhooks", get(app_reporting_webhooks_list).post(app_reporting_webhooks_create))
        .route("/v1/reporting_webhooks/{id}", put(app_reporting_webhooks_update).delete(app_reporting_webhooks_delete))
        .route("/v1/campaigns/{id}/triggers/{trigger_id}", get(app_trigger_status))
        .route("/v1/broadcasts/{id}/triggers", get(app_trigger_list))
        .with_state(shared)
}

impl FakeCustomerIo {
    /// Starts a fake with [`FakeConfig::default`].
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
        Self::start_on("127.0.0.1:0".parse().expect("valid address"), config).await
    }

    /// Starts a fake on a given loopback address (e.g. to restart it on the same port in a demo).
    ///
    /// # Errors
    /// When the socket cannot be bound.
    pub async fn start_on(addr: std::net::SocketAddr, config: FakeConfig) -> std::io::Result<Self> {
        let counter = |l: Option<(u32, Duration)>| l.map(|(max, w)| WindowCounter::new(max, w));
        let shared = Arc::new(Shared {
            track_limit: counter(config.track_rate_limit),
            app_limit: counter(config.app_rate_limit),
            transactional_limit: counter(config.transactional_rate_limit),
            broadcast_limit: counter(config.broadcast_rate_limit),
            config,
            state: Mutex::new(Db::default()),
        });
        let server = FakeServer::start_on(addr, router(shared.clone())).await?;
        Ok(Self { server, shared })
    }

    /// `http://127.0.0.1:<port>` (serves both Track and App paths).
    #[must_use]
    pub fn base_url(&self) -> &Url {
        &self.server.base_url
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &FakeConfig {
        &self.shared.config
    }

    /// A client builder pointed at the fake with its credentials, no client-side rate limit, and fast retries
    /// (10 ms base), so tests see the fake's 429s handled quickly.
    pub fn client_builder(&self) -> ClientBuilder {
        let c = &self.shared.config;
        Client::builder()
            .region(c.region)
            .base_url(self.server.base_url.clone())
            .track_credentials(c.site_id.clone(), Token::new(c.track_api_key.clone()))
            .app_api_key(Token::new(c.app_api_key.clone()))
            .unlimited()
            .retry_policy(RetryPolicy { base_delay: Duration::from_millis(10), ..RetryPolicy::default() })
    }

    /// A client for the fake ([`FakeCustomerIo::client_builder`] built).
    ///
    /// # Panics
    /// If the HTTP client cannot be built (TLS initialisation).
    #[must_use]
    pub fn client(&self) -> Client {
        self.client_builder().build().expect("client builds")
    }

    /// The request log.
    #[must_use]
    pub fn log(&self) -> &RequestLog {
        &self.server.log
    }

    /// Fault injection (429, 5xx, delays, drop-after-commit) by method and path prefix.
    #[must_use]
    pub fn faults(&self) -> &Faults {
        &self.server.faults
    }

    /// The underlying server.
    #[must_use]
    pub fn server(&self) -> &FakeServer {
        &self.server
    }

    // ----- seed and inspect -----

    /// Creates (or updates) a person directly, as an identify would.
    pub fn seed_person(&self, who: &Identifier, attributes: &Map<String, Value>) -> Person {
        let now = self.shared.now();
        let mut st = self.shared.lock();
        st.identify(who, attributes, now);
        let i = st.find(who).expect("seeded person exists");
        st.people[i].clone()
    }

    /// A person by identifier.
    #[must_use]
    pub fn person(&self, who: &Identifier) -> Option<Person> {
        let st = self.shared.lock();
        st.find(who).map(|i| st.people[i].clone())
    }

    /// All people.
    #[must_use]
    pub fn people(&self) -> Vec<Person> {
        self.shared.lock().people.clone()
    }

    /// All accepted events (duplicates by `id` are not stored).
    #[must_use]
    pub fn events(&self) -> Vec<StoredEvent> {
        self.shared.lock().events.clone()
    }

    /// Events of one person.
    #[must_use]
    pub fn events_for(&self, who: &Identifier) -> Vec<StoredEvent> {
        let st = self.shared.lock();
        let Some(i) = st.find(who) else { return Vec::new() };
        let cio = st.people[i].cio_id.clone();
        st.events.iter().filter(|e| e.cio_id.as_deref() == Some(cio.as_str())).cloned().collect()
    }

    /// Whether an identifier is suppressed.
    #[must_use]
    pub fn is_suppressed(&self, who: &Identifier) -> bool {
        self.shared.lock().is_suppressed(who)
    }

    /// An object's attributes (v2 `object` identify).
    #[must_use]
    pub fn object(&self, object_type_id: &str, object_id: &str) -> Option<Map<String, Value>> {
        self.shared.lock().objects.get(&(object_type_id.to_owned(), object_id.to_owned())).cloned()
    }

    /// The object's `cio_object_id`, once it exists.
    #[must_use]
    pub fn object_cio_id(&self, object_type_id: &str, object_id: &str) -> Option<String> {
        self.shared.lock().object_cio.get(&(object_type_id.to_owned(), object_id.to_owned())).cloned()
    }

    /// The people related to an object: `(person cio_id, relationship attributes)`, sorted by `cio_id`.
    #[must_use]
    pub fn relationships(&self, object_type_id: &str, object_id: &str) -> Vec<(String, Map<String, Value>)> {
        let st = self.shared.lock();
        let mut v: Vec<_> = st
            .relationships
            .get(&(object_type_id.to_owned(), object_id.to_owned()))
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Adds a segment with these members (people that exist; others are skipped). A dynamic segment's membership
    /// is what is seeded here: the fake does not evaluate conditions.
    pub fn seed_segment(&self, name: &str, kind: SegmentType, members: &[Identifier]) -> SegmentId {
        let now = self.shared.now();
        let mut st = self.shared.lock();
        let cios: Vec<String> =
            members.iter().filter_map(|w| st.find(w).map(|i| st.people[i].cio_id.clone())).collect();
        SegmentId(st.add_segment(name, None, kind, cios, now))
    }

    /// A segment, as stored.
    #[must_use]
    pub fn segment(&self, id: SegmentId) -> Option<SegmentRecord> {
        self.shared.lock().segments.iter().find(|s| s.id == id.get()).cloned()
    }

    /// Transactional messages sent.
    #[must_use]
    pub fn sent_messages(&self) -> Vec<SentMessage> {
        self.shared.lock().sent.clone()
    }

    /// Broadcast triggers accepted.
    #[must_use]
    pub fn broadcast_triggers(&self) -> Vec<BroadcastRecord> {
        self.shared.lock().broadcasts.clone()
    }

    /// Reporting-webhook configurations created through the App API.
    #[must_use]
    pub fn reporting_webhooks(&self) -> Vec<Value> {
        self.shared.lock().reporting_webhooks.clone()
    }

    /// The activity log: what Customer.io reports only in its UI ("Failed Attribute Change", "Attribute Update
    /// Failure", ignored duplicates and suppressed identifiers).
    #[must_use]
    pub fn activity(&self) -> Vec<String> {
        self.shared.lock().activity.clone()
    }

    /// Forgets everything (people, events, messages, activity; not the request log or faults).
    pub fn reset(&self) {
        *self.shared.lock() = Db::default();
    }

    // ----- reporting webhooks -----

    /// Starts building a reporting-webhook delivery about `who` (looked up in the fake, so `identifiers` carry the
    /// stored id/email/cio_id) for `metric`. The object type defaults to `email` (`customer` for `subscribed` and
    /// `cio_subscription_preferences_changed`).
    pub fn webhook(&self, who: &Identifier, metric: Metric) -> WebhookBuilder {
        let person = self.person(who);
        let (id, email, cio_id) = match &person {
            Some(p) => (p.id.clone(), p.email.clone(), Some(p.cio_id.clone())),
            None => match who {
                Identifier::Id(v) => (Some(v.clone()), None, None),
                Identifier::Email(v) => (None, Some(v.clone()), None),
                Identifier::CioId(v) => (None, None, Some(v.clone())),
            },
        };
        let object_type = match metric {
            Metric::Subscribed | Metric::CioSubscriptionPreferencesChanged => ObjectType::Customer,
            _ => ObjectType::Email,
        };
        WebhookBuilder {
            key: Token::new(self.shared.config.webhook_signing_key.clone()),
            clock: self.shared.config.clock.clone(),
            event_id: None,
            object_type,
            metric,
            timestamp: None,
            signed_at: None,
            id,
            email,
            cio_id,
            data: Map::new(),
        }
    }
}

/// Builds one signed reporting-webhook delivery ([`FakeCustomerIo::webhook`]).
#[derive(Debug, Clone)]
#[must_use]
pub struct WebhookBuilder {
    key: Token,
    clock: Arc<dyn Clock>,
    event_id: Option<String>,
    object_type: ObjectType,
    metric: Metric,
    timestamp: Option<i64>,
    signed_at: Option<i64>,
    id: Option<String>,
    email: Option<String>,
    cio_id: Option<String>,
    data: Map<String, Value>,
}

impl WebhookBuilder {
    /// Sets `event_id` (default: a fresh ULID).
    pub fn event_id(mut self, id: impl Into<String>) -> Self {
        self.event_id = Some(id.into());
        self
    }

    /// Sets `object_type`.
    pub fn object_type(mut self, t: ObjectType) -> Self {
        self.object_type = t;
        self
    }

    /// Sets the event `timestamp` (default: the fake's clock).
    pub fn timestamp(mut self, unix_seconds: i64) -> Self {
        self.timestamp = Some(unix_seconds);
        self
    }

    /// Sets `X-CIO-Timestamp` (default: the fake's clock at build time), e.g. to produce a stale delivery.
    pub fn signed_at(mut self, unix_seconds: i64) -> Self {
        self.signed_at = Some(unix_seconds);
        self
    }

    /// Sets a `data` field (`campaign_id`, `broadcast_id`, `subject`, `href`, `delivery_id`, …).
    pub fn data(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.data.insert(key.into(), value.into());
        self
    }

    /// Sets `data.campaign_id`.
    pub fn campaign_id(self, id: i64) -> Self {
        self.data("campaign_id", id)
    }

    /// Sets `data.delivery_id`.
    pub fn delivery_id(self, id: impl Into<String>) -> Self {
        self.data("delivery_id", id.into())
    }

    /// Sets `data.subject`.
    pub fn subject(self, s: impl Into<String>) -> Self {
        self.data("subject", s.into())
    }

    /// Sets `data.href` (clicked).
    pub fn href(self, s: impl Into<String>) -> Self {
        self.data("href", s.into())
    }

    /// Builds and signs the delivery.
    ///
    /// # Panics
    /// Never in practice (JSON serialization of a map).
    pub fn build(self) -> SignedWebhook {
        let now = self.clock.unix_seconds();
        let ts = self.timestamp.unwrap_or(now);
        let mut data = Map::new();
        data.insert("customer_id".into(), self.id.clone().unwrap_or_default().into());
        let mut ids = Map::new();
        ids.insert("id".into(), self.id.clone().map_or(Value::Null, Value::from));
        if let Some(e) = &self.email {
            ids.insert("email".into(), e.clone().into());
        }
        if let Some(c) = &self.cio_id {
            ids.insert("cio_id".into(), c.clone().into());
        }
        data.insert("identifiers".into(), Value::Object(ids));
        match self.object_type {
            ObjectType::Customer => {
                data.insert("email_address".into(), self.email.clone().map_or(Value::Null, Value::from));
            }
            _ => {
                let delivery = format!("RPILAgUBcRhI{}", &EventId::new().to_string()[10..]);
                data.insert("delivery_id".into(), delivery.into());
                data.insert("campaign_id".into(), 1.into());
                data.insert("action_id".into(), 1.into());
                data.insert("journey_id".into(), EventId::new().to_string().into());
                if self.object_type == ObjectType::Email {
                    if self.metric != Metric::Failed {
                        data.insert("recipient".into(), self.email.clone().unwrap_or_default().into());
                    }
                    data.insert("subject".into(), "Hello from the fake".into());
                }
                if self.metric == Metric::Clicked {
                    data.insert("href".into(), "https://example.com/".into());
                    data.insert("link_id".into(), 1.into());
                    if self.object_type == ObjectType::Email {
                        data.insert("machine".into(), false.into());
                    }
                }
                if matches!(self.metric, Metric::Bounced | Metric::Dropped | Metric::Failed | Metric::Undeliverable) {
                    data.insert("failure_message".into(), "550 mailbox unavailable".into());
                }
            }
        }
        data.extend(self.data);
        let body = json!({
            "event_id": self.event_id.unwrap_or_else(|| EventId::new().to_string()),
            "object_type": self.object_type.as_str(),
            "metric": self.metric.as_str(),
            "timestamp": ts,
            "data": data,
        });
        let bytes = serde_json::to_vec(&body).expect("serializable");
        let signed_at = self.signed_at.unwrap_or(now);
        let signature = sign(&self.key, signed_at, &bytes);
        let event = crate::webhook::parse(&bytes).expect("own webhook parses");
        SignedWebhook {
            body: Bytes::from(bytes),
            headers: vec![
                ("Content-Type".into(), "application/json".into()),
                ("X-CIO-Timestamp".into(), signed_at.to_string()),
                ("X-CIO-Signature".into(), signature),
            ],
            event,
        }
    }
}

/// A reporting-webhook delivery as Customer.io sends it.
#[derive(Debug, Clone)]
pub struct SignedWebhook {
    /// The raw JSON body.
    pub body: Bytes,
    /// `Content-Type`, `X-CIO-Timestamp`, `X-CIO-Signature`.
    pub headers: Vec<(String, String)>,
    /// The event, parsed.
    pub event: ReportingEvent,
}

impl SignedWebhook {
    /// The headers as an `http::HeaderMap` (for calling a verifier directly).
    ///
    /// # Panics
    /// Never (the header names and values are ASCII).
    #[must_use]
    pub fn header_map(&self) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (k, v) in &self.headers {
            h.insert(
                http::HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()).expect("valid name"),
                http::HeaderValue::from_str(v).expect("valid value"),
            );
        }
        h
    }

    /// The signature header value.
    #[must_use]
    pub fn signature(&self) -> &str {
        self.header(SIGNATURE_HEADER)
    }

    /// The timestamp header value.
    #[must_use]
    pub fn signed_timestamp(&self) -> &str {
        self.header(TIMESTAMP_HEADER)
    }

    fn header(&self, name: &str) -> &str {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map_or("", |(_, v)| v.as_str())
    }

    /// POSTs the delivery to `url` (4 s timeout, like Customer.io) and returns the status.
    ///
    /// # Errors
    /// When the request fails.
    pub async fn deliver(&self, url: &Url) -> Result<u16, reqwest::Error> {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(4)).build()?;
        let mut req = client.post(url.clone()).body(self.body.clone());
        for (k, v) in &self.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        Ok(req.send().await?.status().as_u16())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_decoding() {
        // python3 -c "import base64;print(base64.b64encode(b'site:key').decode())" -> c2l0ZTprZXk=
        assert_eq!(decode_basic("Basic c2l0ZTprZXk=").as_deref(), Some("site:key"));
        assert_eq!(decode_basic("Bearer x"), None);
    }

    #[test]
    fn timestamp_ordering() {
        let mut st = Db::default();
        let who = Identifier::id("1");
        let body = |v: &str, ts: i64| {
            let mut m = Map::new();
            m.insert("plan".into(), v.into());
            m.insert("_timestamp".into(), ts.into());
            m
        };
        st.identify(&who, &body("new", 200), 0);
        st.identify(&who, &body("stale", 100), 0);
        assert_eq!(st.people[0].attributes["plan"], "new");
        st.identify(&who, &body("newer", 300), 0);
        assert_eq!(st.people[0].attributes["plan"], "newer");
    }
}
