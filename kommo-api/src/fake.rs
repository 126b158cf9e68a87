//! An in-process, stateful fake of the Kommo API v4 (feature `fake`), on `127.0.0.1` with an ephemeral port.
//!
//! It behaves like Kommo where integrations depend on it:
//! - the same JSON shapes (HAL `_page`/`_links`/`_embedded`, `custom_fields_values: null` when empty,
//!   problem+json errors with `validation-errors`), **204 with an empty body** for empty lists, search misses and
//!   the page after the last one (`_links.next` is present whenever a page is full, as on Kommo);
//! - stateful leads, contacts, companies, notes, tasks, custom field definitions, pipelines/statuses, users,
//!   tags, links, webhook subscriptions and the account; every write bumps `updated_at` (strictly increasing per
//!   entity) and is visible to later reads and filters (`filter[updated_at]`, `filter[statuses]`, `query`...);
//! - Bearer-token auth (401 problem+json otherwise) and, optionally, an OAuth token endpoint with single-use
//!   rotating refresh tokens (a reused refresh token answers 401 `"hint":"Token has been revoked"`);
//! - Kommo's rate limit exactly as documented: "not more than 7 requests per second" (../shared/api-notes/kommo.md
//!   §2, K-docs <https://developers.kommo.com/docs/limitations>), counted per account as a **sliding second on
//!   arrival time with no slack**: a request is refused when 7 others were admitted in the second before it. Beyond
//!   it the fake answers **429 with an HTML body** (Kommo's gateway page, no `Retry-After`: amocrm-api-php #526,
//!   PR #517), and repeated violations escalate to the **403 nginx HTML ban page** (#434; "Частые 429 ведут к 403",
//!   a secondary note, §2) for every request until the ban ends. The exact escalation rule and ban length are
//!   UNVERIFIED in the notes; the defaults here (3 violations within 60 s, a 15-minute ban, the length the client
//!   assumes) are configurable in [`FakeConfig`]. The fake is never loosened for the client: the client's limiter
//!   leaves headroom instead ([`crate::client::DEFAULT_RATE_MARGIN`]);
//! - fault injection through [`FakeKommo::faults`] (N×429, N×5xx, delays, "commit then drop the response") and
//!   a request log through [`FakeKommo::log`];
//! - webhooks exactly as Kommo POSTs them: form-encoded PHP-style keys built from the current state
//!   ([`FakeKommo::webhook_body`], [`FakeKommo::webhook_for_lead_status`]...) and [`post_webhook`] to deliver them
//!   with Kommo's headers; with [`FakeConfig::webhook_redeliveries`] set, the fake itself POSTs them to the
//!   destinations subscribed through `POST /api/v4/webhooks` when a lead or contact changes, and redelivers a
//!   delivery the receiver did not answer with a 2xx;
//! - `with=only_deleted` on the leads list (only deleted leads: id, `updated_at`, `is_deleted`);
//! - the account's event log at `GET /api/v4/events` (`lead_added`, `lead_status_changed`, `lead_deleted`,
//!   `contact_added`, `company_added`; newest first; `filter[type]`, `filter[entity]`, `filter[entity_id]`,
//!   `filter[created_at]`), in the shape of kommo.md §4 "Events".
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use kommo_api::{EntityType, StatusId, fake::{FakeKommo, SeedLead}, notes::NewNote};
//! let fake = FakeKommo::start().await?;
//! let lead = fake.seed_lead(SeedLead::new("Website redesign").price(5000));
//! fake.set_lead_status(lead, fake.main_pipeline(), StatusId::WON);
//! let body = fake.webhook_for_lead_status(lead); // what Kommo would POST
//! let client = fake.client();
//! client.notes(EntityType::Leads).add_one(NewNote::common(lead, "Onboarding record created")).await?;
//! assert_eq!(fake.notes_for(EntityType::Leads, lead.get()).len(), 1);
//! # let _ = body; Ok(()) }
//! ```
#![allow(clippy::needless_pass_by_value)] // seeding helpers take ids and enums by value for ergonomics

use std::{
    collections::{BTreeMap, HashMap, HashSet, VecDeque},
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use api_core::fake::{FakeServer, Faults, RequestLog};
use axum::{
    Router,
    body::{Body, Bytes},
    extract::State,
    http::{HeaderMap, Method, StatusCode, Uri},
    response::Response,
};
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};
use url::Url;

use crate::{
    Client, ClientBuilder, CompanyId, ContactId, CustomFieldId, EntityType, FieldType, LeadId, NoteId, PipelineId,
    RetryPolicy, StatusId, TaskId, UserId, companies::Company, contacts::Contact, custom_fields::CustomField,
    leads::Lead, notes::Note, tasks::Task, webhook::encode_form,
};

/// The HTML body of the fake's 429 (Kommo's gateway answers with an nginx page, not JSON).
pub const THROTTLE_HTML: &str = "<html>\r\n<head><title>429 Too Many Requests</title></head>\r\n<body>\r\n<center><h1>429 Too Many Requests</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";
/// The HTML body of Kommo's 403 ban page (inject it with [`FakeKommo::inject_ban`]).
pub const BAN_HTML: &str = "<html>\r\n<head><title>403 Forbidden</title></head>\r\n<body>\r\n<center><h1>403 Forbidden</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";

/// Configuration of a [`FakeKommo`].
#[derive(Debug, Clone)]
pub struct FakeConfig {
    /// The long-lived token the fake accepts (`Authorization: Bearer <token>`).
    pub token: String,
    /// `account.id`.
    pub account_id: u64,
    /// `account.subdomain`.
    pub subdomain: String,
    /// The domain in the webhooks' `account[_links][self]` (`https://{subdomain}.{webhook_domain}`). Default
    /// `amocrm.com`: Kommo accounts still send `https://<sub>.amocrm.com` in 2026 deliveries, not `kommo.com`
    /// (../shared/api-notes/kommo.md §1 and §5, capture 4); amoCRM accounts send `amocrm.ru` (§5, capture 2).
    pub webhook_domain: String,
    /// At most `.0` requests in any sliding window `.1` for the whole account, counted on arrival with no slack
    /// (None: no limit). Default `(7, 1 s)`, Kommo's documented "not more than 7 requests per second".
    /// The budget is shared by every client of the fake: build one [`Client`] and clone it (clones share their
    /// limiter), pass one [`api_core::RateLimiter`] to several builders with [`ClientBuilder::rate_budget`], or set
    /// `None` in tests that do not exercise throttling.
    pub rate_limit: Option<(u32, Duration)>,
    /// The ban: after `.0` refused (429) requests within `.1`, the account gets the 403 HTML ban page for
    /// [`FakeConfig::ban_duration`] (None: never banned). Default `(3, 60 s)`.
    pub ban_after: Option<(u32, Duration)>,
    /// How long a ban lasts (default 15 min).
    pub ban_duration: Duration,
    /// Deliver webhooks to the destinations subscribed through `POST /api/v4/webhooks` when a lead or contact
    /// changes (through the API or the seeding helpers such as [`FakeKommo::set_lead_status`]): form-encoded with
    /// Kommo's headers ([`post_webhook`]), one POST per change, the events a subscription's `settings` select
    /// (`add_lead`, `update_lead`, `status_lead`, `add_contact`, `update_contact`; kommo.md "Webhooks API"). A
    /// delivery the receiver does not answer 2xx is sent again after each of these delays ("we will try to send it
    /// again after some time", bessudnov in amocrm-api-php#226; Kommo's exact schedule is UNVERIFIED in the notes).
    /// `None` (the default) delivers nothing: tests build bodies with [`FakeKommo::webhook_body`] instead.
    pub webhook_redeliveries: Option<Vec<Duration>>,
    /// OAuth app `(client_id, client_secret)`: enables `POST /oauth2/access_token`.
    pub oauth: Option<(String, String)>,
    /// Seconds an OAuth access token lives (default 86400).
    pub oauth_expires_in: i64,
}

impl Default for FakeConfig {
    fn default() -> Self {
        Self {
            token: "fake-kommo-token".into(),
            account_id: 30_739_638,
            subdomain: "fakeaccount".into(),
            webhook_domain: "amocrm.com".into(),
            rate_limit: Some((7, Duration::from_secs(1))),
            ban_after: Some((3, Duration::from_secs(60))),
            ban_duration: Duration::from_secs(15 * 60),
            webhook_redeliveries: None,
            oauth: None,
            oauth_expires_in: 86_400,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Leads,
    Contacts,
    Companies,
}

impl Kind {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "leads" => Some(Self::Leads),
            "contacts" => Some(Self::Contacts),
            "companies" => Some(Self::Companies),
            _ => None,
        }
    }
    fn as_str(self) -> &'static str {
        match self {
            Self::Leads => "leads",
            Self::Contacts => "contacts",
            Self::Companies => "companies",
        }
    }
    fn entity(self) -> EntityType {
        match self {
            Self::Leads => EntityType::Leads,
            Self::Contacts => EntityType::Contacts,
            Self::Companies => EntityType::Companies,
        }
    }
}

#[derive(Debug, Default)]
struct OAuthState {
    client_id: String,
    client_secret: String,
    /// Valid refresh tokens (normally one).
    refresh: HashSet<String>,
    spent: HashSet<String>,
    /// Pending authorization codes.
    codes: HashSet<String>,
    issued: u64,
}

#[derive(Debug, Default)]
struct St {
    account_id: u64,
    subdomain: String,
    webhook_domain: String,
    current_user: u64,
    tokens: HashSet<String>,
    oauth: Option<OAuthState>,
    oauth_expires_in: i64,
    next_id: u64,
    entities: HashMap<Kind, BTreeMap<u64, Value>>,
    notes: BTreeMap<u64, (Kind, Value)>,
    tasks: BTreeMap<u64, Value>,
    fields: BTreeMap<u64, (Kind, Value)>,
    pipelines: BTreeMap<u64, Value>,
    users: BTreeMap<u64, Value>,
    tags: BTreeMap<u64, (Kind, Value)>,
    lead_contacts: Vec<(u64, u64, bool)>,
    lead_companies: Vec<(u64, u64)>,
    contact_companies: Vec<(u64, u64)>,
    prev_status: HashMap<u64, (u64, u64)>,
    /// Changes not yet delivered to subscribers (see [`FakeConfig::webhook_redeliveries`]).
    outbox: Vec<FakeWebhook>,
    /// The account's event log, oldest first (`GET /api/v4/events`).
    events: Vec<Value>,
    webhook_redeliveries: Option<Vec<Duration>>,
    prev_responsible: HashMap<u64, u64>,
    webhooks: Vec<Value>,
    clock_offset: i64,
    base: String,
    /// Unsorted (incoming) leads by uid (`/api/v4/leads/unsorted`).
    unsorted: BTreeMap<String, Value>,
    /// Unsorted leads accepted and declined so far (`/api/v4/leads/unsorted/summary`).
    unsorted_sorted: (u64, u64),
    /// Catalogs by id (`/api/v4/catalogs`).
    catalogs: BTreeMap<u64, Value>,
    /// Catalog elements by id (each names its `catalog_id`).
    elements: BTreeMap<u64, Value>,
}

type Shared = Arc<Mutex<St>>;

#[derive(Clone)]
struct AppState {
    st: Shared,
    limiter: Option<Arc<Mutex<RateGate>>>,
}

/// Kommo's per-account limit: a sliding window on arrival time (no slack), 429 beyond it, the ban page after
/// repeated violations. See the module docs.
#[derive(Debug)]
struct RateGate {
    max: usize,
    window: Duration,
    ban_after: Option<(u32, Duration)>,
    ban_duration: Duration,
    admitted: VecDeque<tokio::time::Instant>,
    violations: VecDeque<tokio::time::Instant>,
    banned_until: Option<tokio::time::Instant>,
    throttled: u64,
    banned: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    Admit,
    Throttle,
    Ban,
}

impl RateGate {
    fn new(config: &FakeConfig) -> Option<Self> {
        let (max, window) = config.rate_limit?;
        Some(Self {
            max: max as usize,
            window,
            ban_after: config.ban_after,
            ban_duration: config.ban_duration,
            admitted: VecDeque::new(),
            violations: VecDeque::new(),
            banned_until: None,
            throttled: 0,
            banned: 0,
        })
    }

    fn arrive(&mut self) -> Gate {
        let now = tokio::time::Instant::now();
        if self.banned_until.is_some_and(|b| now < b) {
            self.banned += 1;
            return Gate::Ban;
        }
        while self.admitted.front().is_some_and(|t| now.duration_since(*t) >= self.window) {
            self.admitted.pop_front();
        }
        if self.admitted.len() < self.max {
            self.admitted.push_back(now);
            return Gate::Admit;
        }
        if let Some((n, period)) = self.ban_after {
            while self.violations.front().is_some_and(|t| now.duration_since(*t) >= period) {
                self.violations.pop_front();
            }
            self.violations.push_back(now);
            if self.violations.len() >= n as usize {
                self.violations.clear();
                self.banned_until = Some(now + self.ban_duration);
                self.banned += 1;
                return Gate::Ban;
            }
        }
        self.throttled += 1;
        Gate::Throttle
    }
}

/// A running fake Kommo account. Stops when dropped.
#[derive(Debug)]
pub struct FakeKommo {
    server: FakeServer,
    st: Shared,
    token: String,
    limiter: Option<Arc<Mutex<RateGate>>>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AppState")
    }
}

fn unix_now() -> i64 {
    i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs())
        .unwrap_or(0)
}

impl St {
    fn now(&self) -> i64 {
        unix_now() + self.clock_offset
    }
    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }
    fn map(&mut self, k: Kind) -> &mut BTreeMap<u64, Value> {
        self.entities.entry(k).or_default()
    }
    fn get(&self, k: Kind, id: u64) -> Option<&Value> {
        self.entities.get(&k).and_then(|m| m.get(&id))
    }
    fn link(&self, kind: Kind, id: u64) -> Value {
        json!({"self": {"href": format!("{}/api/v4/{}/{id}", self.base, kind.as_str())}})
    }
    /// A strictly increasing `updated_at` for an entity.
    fn bump(&self, old: Option<i64>) -> i64 {
        let now = self.now();
        old.map_or(now, |o| now.max(o + 1))
    }
    fn main_pipeline(&self) -> (u64, u64) {
        let p = self.pipelines.values().find(|p| p["is_main"] == true).or_else(|| self.pipelines.values().next());
        let pid = p.and_then(|p| p["id"].as_u64()).unwrap_or(0);
        let first = p
            .and_then(|p| p["_embedded"]["statuses"].as_array())
            .and_then(|s| s.iter().find(|s| s["type"] == 0 && s["id"] != 142 && s["id"] != 143))
            .and_then(|s| s["id"].as_u64())
            .unwrap_or(0);
        (pid, first)
    }
    fn pipeline_of_status(&self, status: u64) -> Option<u64> {
        self.pipelines.values().find_map(|p| {
            p["_embedded"]["statuses"]
                .as_array()?
                .iter()
                .any(|s| s["id"].as_u64() == Some(status))
                .then(|| p["id"].as_u64())
                .flatten()
        })
    }
    fn field_def(&self, kind: Kind, id: Option<u64>, code: Option<&str>) -> Option<&Value> {
        self.fields.values().filter(|(k, _)| *k == kind).map(|(_, v)| v).find(|v| {
            id.is_some_and(|i| v["id"].as_u64() == Some(i))
                || code.is_some_and(|c| v["code"].as_str().is_some_and(|vc| vc.eq_ignore_ascii_case(c)))
        })
    }
    fn tag_id(&mut self, kind: Kind, tag: &Value) -> Option<Value> {
        if let Some(id) = tag["id"].as_u64() {
            return self.tags.get(&id).map(|(_, v)| v.clone());
        }
        let name = tag["name"].as_str()?.to_owned();
        if let Some((_, v)) = self.tags.values().find(|(k, v)| *k == kind && v["name"] == name.as_str()) {
            return Some(v.clone());
        }
        let id = self.id();
        let v = json!({"id": id, "name": name, "color": null});
        self.tags.insert(id, (kind, v.clone()));
        Some(v)
    }

    /// Converts written custom field values to the stored read shape, merging into `existing`.
    fn apply_fields(&self, kind: Kind, existing: &mut Vec<Value>, input: &Value, errors: &mut Vec<Value>) {
        let Some(arr) = input.as_array() else {
            errors.push(json!({"code": "InvalidType", "path": "custom_fields_values", "detail": "This value should be of type array."}));
            return;
        };
        for (i, f) in arr.iter().enumerate() {
            let def = self.field_def(kind, f["field_id"].as_u64(), f["field_code"].as_str());
            let Some(def) = def else {
                errors.push(json!({"code": "NotSupportedChoice", "path": format!("custom_fields_values.{i}.field_id"), "detail": "The value you selected is not a valid choice."}));
                continue;
            };
            let fid = def["id"].as_u64().unwrap_or(0);
            existing.retain(|e| e["field_id"].as_u64() != Some(fid));
            if f["values"].is_null() {
                continue;
            }
            let ftype = def["type"].as_str().unwrap_or("text");
            let mut values = Vec::new();
            for (j, v) in f["values"].as_array().into_iter().flatten().enumerate() {
                let enums = def["enums"].as_array().cloned().unwrap_or_default();
                let mut out = Map::new();
                match ftype {
                    "select" | "multiselect" | "radiobutton" | "category" => {
                        let by_id =
                            v["enum_id"].as_u64().and_then(|e| enums.iter().find(|x| x["id"].as_u64() == Some(e)));
                        let by_val =
                            v["value"].as_str().and_then(|t| enums.iter().find(|x| x["value"].as_str() == Some(t)));
                        let Some(en) = by_id.or(by_val) else {
                            errors.push(json!({"code": "NotSupportedChoice", "path": format!("custom_fields_values.{i}.values.{j}.enum_id"), "detail": "The value you selected is not a valid choice."}));
                            continue;
                        };
                        out.insert("value".into(), en["value"].clone());
                        out.insert("enum_id".into(), en["id"].clone());
                    }
                    "multitext" => {
                        let code = v["enum_code"].as_str().unwrap_or("WORK");
                        let en = enums.iter().find(|x| x["value"].as_str() == Some(code));
                        out.insert("value".into(), v["value"].clone());
                        out.insert("enum_id".into(), en.map_or(Value::Null, |e| e["id"].clone()));
                        out.insert("enum_code".into(), json!(code));
                    }
                    _ => {
                        if !v["enum_code"].is_null() {
                            errors.push(json!({"code": "FieldNotExpected", "path": format!("custom_fields_values.{i}.values.{j}.enum_code"), "detail": "This field was not expected."}));
                            continue;
                        }
                        if ftype == "text" && v["value"].as_str().is_some_and(|s| s.chars().count() > 256) {
                            errors.push(json!({"code": "InvalidLength", "path": format!("custom_fields_values.{i}.values.{j}.value"), "detail": "This value is too long. It should have 256 characters or less."}));
                            continue;
                        }
                        out.insert("value".into(), v["value"].clone());
                    }
                }
                values.push(Value::Object(out));
            }
            existing.push(json!({
                "field_id": fid,
                "field_name": def["name"],
                "field_code": def["code"],
                "field_type": ftype,
                "values": values,
            }));
        }
    }

    fn render(&self, kind: Kind, v: &Value, with: &[String]) -> Value {
        let mut v = v.clone();
        let id = v["id"].as_u64().unwrap_or(0);
        if v["custom_fields_values"].as_array().is_some_and(Vec::is_empty) {
            v["custom_fields_values"] = Value::Null;
        }
        let tags = v.get("_tags").cloned().unwrap_or_else(|| json!([]));
        if let Some(o) = v.as_object_mut() {
            o.remove("_tags");
        }
        let mut emb = Map::new();
        emb.insert("tags".into(), tags);
        let has = |w: &str| with.iter().any(|x| x == w);
        match kind {
            Kind::Leads => {
                let companies: Vec<Value> = self
                    .lead_companies
                    .iter()
                    .filter(|(l, _)| *l == id)
                    .map(|(_, c)| json!({"id": c, "_links": self.link(Kind::Companies, *c)}))
                    .collect();
                emb.insert("companies".into(), json!(companies));
                if has("contacts") {
                    let contacts: Vec<Value> = self
                        .lead_contacts
                        .iter()
                        .filter(|(l, _, _)| *l == id)
                        .map(|(_, c, main)| json!({"id": c, "is_main": main, "_links": self.link(Kind::Contacts, *c)}))
                        .collect();
                    emb.insert("contacts".into(), json!(contacts));
                }
            }
            Kind::Contacts => {
                let companies: Vec<Value> = self
                    .contact_companies
                    .iter()
                    .filter(|(c, _)| *c == id)
                    .map(|(_, co)| json!({"id": co, "_links": self.link(Kind::Companies, *co)}))
                    .collect();
                emb.insert("companies".into(), json!(companies));
                if has("leads") {
                    let leads: Vec<Value> = self
                        .lead_contacts
                        .iter()
                        .filter(|(_, c, _)| *c == id)
                        .map(|(l, _, _)| json!({"id": l, "_links": self.link(Kind::Leads, *l)}))
                        .collect();
                    emb.insert("leads".into(), json!(leads));
                }
            }
            Kind::Companies => {
                if has("contacts") {
                    let contacts: Vec<Value> = self
                        .contact_companies
                        .iter()
                        .filter(|(_, co)| *co == id)
                        .map(|(c, _)| json!({"id": c, "_links": self.link(Kind::Contacts, *c)}))
                        .collect();
                    emb.insert("contacts".into(), json!(contacts));
                }
                if has("leads") {
                    let leads: Vec<Value> = self
                        .lead_companies
                        .iter()
                        .filter(|(_, co)| *co == id)
                        .map(|(l, _)| json!({"id": l, "_links": self.link(Kind::Leads, *l)}))
                        .collect();
                    emb.insert("leads".into(), json!(leads));
                }
            }
        }
        v["_embedded"] = Value::Object(emb);
        v["_links"] = self.link(kind, id);
        v
    }

    /// Creates an entity from a write body; returns its id or validation errors.
    fn create(&mut self, kind: Kind, input: &Value) -> Result<u64, Vec<Value>> {
        let mut errors = Vec::new();
        let mut cfv = Vec::new();
        if !input["custom_fields_values"].is_null() {
            self.apply_fields(kind, &mut cfv, &input["custom_fields_values"], &mut errors);
        }
        if kind == Kind::Leads
            && let Some(s) = input["status_id"].as_u64()
        {
            let known = s == 142 || s == 143 || self.pipeline_of_status(s).is_some();
            if !known {
                errors.push(json!({"code": "NotSupportedChoice", "path": "status_id", "detail": "The value you selected is not a valid choice."}));
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let id = self.id();
        let now = self.now();
        let user = input["responsible_user_id"].as_u64().unwrap_or(self.current_user);
        let mut tags = Vec::new();
        for t in input["_embedded"]["tags"].as_array().into_iter().flatten() {
            if let Some(t) = self.tag_id(kind, t) {
                tags.push(t);
            }
        }
        let mut v = json!({
            "id": id,
            "responsible_user_id": user,
            "group_id": 0,
            "created_by": self.current_user,
            "updated_by": self.current_user,
            "created_at": now,
            "updated_at": now,
            "closest_task_at": null,
            "is_deleted": false,
            "custom_fields_values": cfv,
            "account_id": self.account_id,
            "_tags": tags,
        });
        match kind {
            Kind::Leads => {
                let (main, first) = self.main_pipeline();
                let status = input["status_id"].as_u64().unwrap_or(first);
                let pipeline = input["pipeline_id"]
                    .as_u64()
                    .or_else(|| self.pipeline_of_status(status).filter(|_| status != 142 && status != 143))
                    .unwrap_or(main);
                v["name"] = input["name"].as_str().map_or_else(|| json!(format!("Сделка #{id}")), |n| json!(n));
                v["price"] = json!(input["price"].as_i64().unwrap_or(0));
                v["status_id"] = json!(status);
                v["pipeline_id"] = json!(pipeline);
                v["loss_reason_id"] = Value::Null;
                v["closed_at"] = if status == 142 || status == 143 { json!(now) } else { Value::Null };
                v["score"] = Value::Null;
                v["labor_cost"] = Value::Null;
                for c in input["_embedded"]["contacts"].as_array().into_iter().flatten() {
                    if let Some(cid) = c["id"].as_u64() {
                        let first_contact = !self.lead_contacts.iter().any(|(l, _, _)| *l == id);
                        let main = c["is_main"].as_bool().unwrap_or(first_contact);
                        self.lead_contacts.push((id, cid, main));
                    }
                }
                for c in input["_embedded"]["companies"].as_array().into_iter().flatten() {
                    if let Some(cid) = c["id"].as_u64() {
                        self.lead_companies.retain(|(l, _)| *l != id);
                        self.lead_companies.push((id, cid));
                    }
                }
            }
            Kind::Contacts => {
                let first = input["first_name"].as_str().unwrap_or_default();
                let last = input["last_name"].as_str().unwrap_or_default();
                let name = input["name"]
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("{first} {last}").trim().to_owned());
                v["name"] = json!(name);
                v["first_name"] = json!(first);
                v["last_name"] = json!(last);
                for c in input["_embedded"]["companies"].as_array().into_iter().flatten() {
                    if let Some(cid) = c["id"].as_u64() {
                        self.contact_companies.retain(|(c, _)| *c != id);
                        self.contact_companies.push((id, cid));
                    }
                }
            }
            Kind::Companies => {
                v["name"] = json!(input["name"].as_str().unwrap_or_default());
            }
        }
        let is_company = v["type"] == "company";
        let status = (v["status_id"].as_u64(), v["pipeline_id"].as_u64());
        self.map(kind).insert(id, v);
        match kind {
            Kind::Leads => self.log_event(
                "lead_added",
                "lead",
                id,
                json!([]),
                json!([{"lead_status": {"id": status.0, "pipeline_id": status.1}}]),
            ),
            Kind::Contacts if !is_company => self.log_event("contact_added", "contact", id, json!([]), json!([])),
            _ => self.log_event("company_added", "company", id, json!([]), json!([])),
        }
        if self.webhook_redeliveries.is_some() {
            match kind {
                Kind::Leads => self.outbox.push(FakeWebhook::LeadAdd(LeadId(id))),
                Kind::Contacts if !is_company => self.outbox.push(FakeWebhook::ContactAdd(ContactId(id))),
                _ => {}
            }
        }
        Ok(id)
    }

    /// Applies a write body to an existing entity; returns the new `updated_at`.
    fn update(&mut self, kind: Kind, id: u64, input: &Value) -> Result<i64, Vec<Value>> {
        let Some(mut cur) = self.get(kind, id).cloned() else {
            return Err(vec![json!({"code": "NotFound", "path": "id", "detail": "Entity not found"})]);
        };
        let mut errors = Vec::new();
        if !input["custom_fields_values"].is_null() {
            let mut cfv: Vec<Value> = cur["custom_fields_values"].as_array().cloned().unwrap_or_default();
            self.apply_fields(kind, &mut cfv, &input["custom_fields_values"], &mut errors);
            cur["custom_fields_values"] = json!(cfv);
        }
        if kind == Kind::Leads
            && let Some(s) = input["status_id"].as_u64()
            && !(s == 142 || s == 143 || self.pipeline_of_status(s).is_some())
        {
            errors.push(json!({"code": "NotSupportedChoice", "path": "status_id", "detail": "The value you selected is not a valid choice."}));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let members: &[&str] = match kind {
            Kind::Leads => &["name", "price", "pipeline_id", "responsible_user_id", "loss_reason_id"],
            Kind::Contacts => &["name", "first_name", "last_name", "responsible_user_id"],
            Kind::Companies => &["name", "responsible_user_id"],
        };
        for m in members {
            if let Some(val) = input.get(*m) {
                if *m == "responsible_user_id"
                    && cur[*m] != *val
                    && let Some(old) = cur[*m].as_u64()
                {
                    self.prev_responsible.insert(id, old);
                }
                cur[*m] = val.clone();
            }
        }
        let mut status_changed = false;
        if kind == Kind::Leads
            && let Some(s) = input["status_id"].as_u64()
        {
            let old = (cur["status_id"].as_u64().unwrap_or(0), cur["pipeline_id"].as_u64().unwrap_or(0));
            status_changed = old.0 != s;
            if status_changed {
                let new_pipeline = cur["pipeline_id"].as_u64().or(Some(old.1));
                let (before, after) = (
                    json!([{"lead_status": {"id": old.0, "pipeline_id": old.1}}]),
                    json!([{"lead_status": {"id": s, "pipeline_id": input["pipeline_id"].as_u64().or(new_pipeline)}}]),
                );
                self.log_event("lead_status_changed", "lead", id, before, after);
            }
            cur["status_id"] = json!(s);
            if input["pipeline_id"].is_null()
                && s != 142
                && s != 143
                && let Some(p) = self.pipeline_of_status(s)
            {
                cur["pipeline_id"] = json!(p);
            }
            if old.0 != s {
                self.prev_status.insert(id, old);
                cur["closed_at"] = if s == 142 || s == 143 { json!(self.now()) } else { Value::Null };
            }
        }
        if let Some(tags) = input["_embedded"]["tags"].as_array() {
            let mut out = Vec::new();
            for t in tags {
                if let Some(t) = self.tag_id(kind, t) {
                    out.push(t);
                }
            }
            cur["_tags"] = json!(out);
        }
        let updated = self.bump(cur["updated_at"].as_i64());
        cur["updated_at"] = json!(updated);
        cur["updated_by"] = json!(self.current_user);
        self.map(kind).insert(id, cur);
        if self.webhook_redeliveries.is_some() {
            match kind {
                Kind::Leads if status_changed => self.outbox.push(FakeWebhook::LeadStatus(LeadId(id))),
                Kind::Leads => self.outbox.push(FakeWebhook::LeadUpdate(LeadId(id))),
                Kind::Contacts => self.outbox.push(FakeWebhook::ContactUpdate(ContactId(id))),
                Kind::Companies => {}
            }
        }
        Ok(updated)
    }

    /// Appends to the event log in Kommo's shape (kommo.md §4 "Events": `{id (string), type, entity_id,
    /// entity_type (singular), created_by, created_at, value_after[], value_before[], account_id}`).
    fn log_event(&mut self, kind: &str, entity_type: &str, entity_id: u64, before: Value, after: Value) {
        let n = self.events.len() + 1;
        let at = self.now();
        self.events.push(json!({
            "id": format!("01fake{n:020}"), "type": kind, "entity_id": entity_id, "entity_type": entity_type,
            "created_by": self.current_user, "created_at": at, "value_before": before, "value_after": after,
            "account_id": self.account_id,
        }));
    }

    fn touch(&mut self, kind: Kind, id: u64) {
        let old = self.get(kind, id).and_then(|v| v["updated_at"].as_i64());
        let t = self.bump(old);
        if let Some(v) = self.map(kind).get_mut(&id) {
            v["updated_at"] = json!(t);
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// HTTP

fn problem(status: u16, title: &str, detail: &str) -> Response {
    let body =
        json!({"title": title, "type": format!("https://httpstatus.es/{status}"), "status": status, "detail": detail});
    respond(status, "application/problem+json", body.to_string())
}

#[allow(clippy::needless_pass_by_value)]
fn validation(errors: Vec<Value>) -> Response {
    let body = json!({
        "validation-errors": errors,
        "title": "Bad Request",
        "type": "https://httpstatus.es/400",
        "status": 400,
        "detail": "Request validation failed",
    });
    respond(400, "application/problem+json", body.to_string())
}

fn respond(status: u16, content_type: &str, body: String) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert(axum::http::header::CONTENT_TYPE, v);
    }
    r
}

fn hal(v: &Value) -> Response {
    respond(200, "application/hal+json", v.to_string())
}

fn no_content() -> Response {
    respond(204, "application/hal+json", String::new())
}

struct Query(Vec<(String, String)>);

impl Query {
    fn parse(q: Option<&str>) -> Self {
        Self(url::form_urlencoded::parse(q.unwrap_or_default().as_bytes()).into_owned().collect())
    }
    fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str())
    }
    /// Values of `filter[f]`, `filter[f][]` and `filter[f][n]`.
    fn list(&self, f: &str) -> Vec<String> {
        let exact = format!("filter[{f}]");
        let prefix = format!("filter[{f}][");
        self.0
            .iter()
            .filter(|(k, _)| {
                *k == exact
                    || k.strip_prefix(&prefix)
                        .is_some_and(|r| r == "]" || r.trim_end_matches(']').parse::<u64>().is_ok())
            })
            .map(|(_, v)| v.clone())
            .collect()
    }
    fn with(&self) -> Vec<String> {
        self.get("with").map(|w| w.split(',').map(|s| s.trim().to_owned()).collect()).unwrap_or_default()
    }
    fn statuses(&self) -> Vec<(Option<u64>, Option<u64>)> {
        let mut by: BTreeMap<String, (Option<u64>, Option<u64>)> = BTreeMap::new();
        for (k, v) in &self.0 {
            let Some(rest) = k.strip_prefix("filter[statuses][") else { continue };
            let Some((idx, field)) = rest.split_once("][") else { continue };
            let e = by.entry(idx.to_owned()).or_default();
            match field.trim_end_matches(']') {
                "pipeline_id" => e.0 = v.parse().ok(),
                "status_id" => e.1 = v.parse().ok(),
                _ => {}
            }
        }
        by.into_values().collect()
    }
    fn page_limit(&self, default_limit: usize) -> (usize, usize) {
        let page = self.get("page").and_then(|p| p.parse().ok()).unwrap_or(1usize).max(1);
        let limit = self.get("limit").and_then(|p| p.parse().ok()).unwrap_or(default_limit).clamp(1, 250);
        (page, limit)
    }
}

fn range_ok(q: &Query, field: &str, v: &Value) -> bool {
    let val = v[field].as_i64();
    if let Some(from) = q.get(&format!("filter[{field}][from]")).and_then(|s| s.parse::<i64>().ok())
        && val.is_none_or(|x| x < from)
    {
        return false;
    }
    if let Some(to) = q.get(&format!("filter[{field}][to]")).and_then(|s| s.parse::<i64>().ok())
        && val.is_none_or(|x| x > to)
    {
        return false;
    }
    true
}

fn matches_query(v: &Value, q: &str) -> bool {
    let q = q.trim().to_lowercase();
    if q.is_empty() {
        return true;
    }
    let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
    let qd = digits(&q);
    let mut hay = vec![v["name"].as_str().unwrap_or_default().to_lowercase(), v["id"].to_string()];
    for f in v["custom_fields_values"].as_array().into_iter().flatten() {
        for val in f["values"].as_array().into_iter().flatten() {
            match &val["value"] {
                Value::String(s) => hay.push(s.to_lowercase()),
                other => hay.push(other.to_string()),
            }
        }
    }
    hay.iter().any(|h| h.contains(&q) || (qd.len() >= 5 && digits(h).contains(&qd)))
}

fn page_of(items: Vec<Value>, key: &str, q: &Query, path: &str, base: &str, default_limit: usize) -> Response {
    let (page, limit) = q.page_limit(default_limit);
    let start = (page - 1).saturating_mul(limit);
    let slice: Vec<Value> = items.into_iter().skip(start).take(limit).collect();
    if slice.is_empty() {
        return no_content();
    }
    let href = |p: usize| format!("{base}{path}?page={p}&limit={limit}");
    let mut links = json!({"self": {"href": href(page)}});
    // Kommo keeps `next` on every full page, even when the next one is empty (it then answers 204)
    if slice.len() == limit {
        links["next"] = json!({"href": href(page + 1)});
    }
    if page > 1 {
        links["first"] = json!({"href": href(1)});
        links["prev"] = json!({"href": href(page - 1)});
    }
    hal(&json!({"_page": page, "_links": links, "_embedded": {key: slice}}))
}

fn sort_items(items: &mut [Value], q: &Query) {
    let order = q.0.iter().find_map(|(k, v)| {
        k.strip_prefix("order[").and_then(|r| r.strip_suffix(']')).map(|f| (f.to_owned(), v.clone()))
    });
    let (field, dir) = order.unwrap_or_else(|| ("id".into(), "asc".into()));
    items.sort_by_key(|v| (v[field.as_str()].as_i64().unwrap_or(0), v["id"].as_i64().unwrap_or(0)));
    if dir.eq_ignore_ascii_case("desc") {
        items.reverse();
    }
}

fn filter_entities(st: &St, kind: Kind, q: &Query) -> Vec<Value> {
    let ids: Vec<u64> = q.list("id").iter().filter_map(|s| s.parse().ok()).collect();
    let pipelines: Vec<u64> = q.list("pipeline_id").iter().filter_map(|s| s.parse().ok()).collect();
    let responsible: Vec<u64> = q.list("responsible_user_id").iter().filter_map(|s| s.parse().ok()).collect();
    let statuses = q.statuses();
    let name = q.get("filter[name]");
    let query = q.get("query");
    // `with=only_deleted` (leads): only the deleted-but-restorable ones (api-notes/kommo.md, `with` values)
    let only_deleted = kind == Kind::Leads && q.with().iter().any(|w| w == "only_deleted");
    let mut out: Vec<Value> = st
        .entities
        .get(&kind)
        .into_iter()
        .flat_map(|m| m.values())
        .filter(|v| v["is_deleted"].as_bool().unwrap_or(false) == only_deleted)
        .filter(|v| ids.is_empty() || v["id"].as_u64().is_some_and(|i| ids.contains(&i)))
        .filter(|v| pipelines.is_empty() || v["pipeline_id"].as_u64().is_some_and(|i| pipelines.contains(&i)))
        .filter(|v| {
            responsible.is_empty() || v["responsible_user_id"].as_u64().is_some_and(|i| responsible.contains(&i))
        })
        .filter(|v| {
            statuses.is_empty()
                || statuses.iter().any(|(p, s)| {
                    p.is_none_or(|p| v["pipeline_id"].as_u64() == Some(p))
                        && s.is_none_or(|s| v["status_id"].as_u64() == Some(s))
                })
        })
        .filter(|v| name.is_none_or(|n| v["name"].as_str() == Some(n)))
        .filter(|v| range_ok(q, "updated_at", v) && range_ok(q, "created_at", v) && range_ok(q, "closed_at", v))
        .filter(|v| query.is_none_or(|qq| matches_query(v, qq)))
        .cloned()
        .collect();
    sort_items(&mut out, q);
    if only_deleted {
        // "with just id, modification date and `is_deleted: true`" (api-notes/kommo.md)
        return out.iter().map(|v| json!({"id": v["id"], "updated_at": v["updated_at"], "is_deleted": true})).collect();
    }
    let with = q.with();
    out.iter().map(|v| st.render(kind, v, &with)).collect()
}

async fn handle(State(app): State<AppState>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(l) = &app.limiter {
        let gate = l.lock().unwrap_or_else(std::sync::PoisonError::into_inner).arrive();
        match gate {
            Gate::Admit => {}
            Gate::Throttle => return respond(429, "text/html", THROTTLE_HTML.into()),
            Gate::Ban => return respond(403, "text/html", BAN_HTML.into()),
        }
    }
    let path = uri.path().trim_end_matches('/').to_owned();
    let q = Query::parse(uri.query());
    let mut st = app.st.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if path == "/oauth2/access_token" && method == Method::POST {
        return oauth_token(&mut st, &body);
    }
    let authorized = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| st.tokens.contains(t));
    if !authorized {
        return problem(401, "Unauthorized", "Неверный логин или пароль");
    }
    let json_body: Value = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(_) => return problem(400, "Bad Request", "Request body is not valid JSON"),
        }
    };
    let segs: Vec<&str> = path.strip_prefix("/api/v4/").unwrap_or("").split('/').filter(|s| !s.is_empty()).collect();
    let resp = route(&mut st, &method, &segs, &q, &json_body, &path);
    deliver_webhooks(&mut st);
    resp
}

/// The subscription setting that selects an event (kommo.md "Webhooks API", `settings` values).
fn webhook_setting(ev: &FakeWebhook) -> Option<&'static str> {
    Some(match ev {
        FakeWebhook::LeadAdd(_) => "add_lead",
        FakeWebhook::LeadUpdate(_) => "update_lead",
        FakeWebhook::LeadStatus(_) => "status_lead",
        FakeWebhook::ContactAdd(_) => "add_contact",
        FakeWebhook::ContactUpdate(_) => "update_contact",
        _ => return None,
    })
}

/// Sends the outbox to the subscribed destinations (one POST per change and destination), each on its own task
/// with redeliveries. The bodies are rendered now, from the state the change left.
fn deliver_webhooks(st: &mut St) {
    let Some(delays) = st.webhook_redeliveries.clone() else { return };
    let events = std::mem::take(&mut st.outbox);
    let Ok(rt) = tokio::runtime::Handle::try_current() else { return };
    for ev in events {
        let Some(setting) = webhook_setting(&ev) else { continue };
        let dests: Vec<String> = st
            .webhooks
            .iter()
            .filter(|w| w["disabled"] != true)
            .filter(|w| w["settings"].as_array().is_some_and(|a| a.iter().any(|x| x == setting)))
            .filter_map(|w| w["destination"].as_str().map(str::to_owned))
            .collect();
        if dests.is_empty() {
            continue;
        }
        let body = encode_form(&render_webhook(st, std::slice::from_ref(&ev)));
        for dest in dests {
            let body = body.clone();
            let delays = delays.clone();
            rt.spawn(async move {
                for attempt in 0..=delays.len() {
                    match post_webhook(&dest, &body).await {
                        Ok(s) if s.is_success() => return,
                        other => tracing::debug!(%dest, attempt, ?other, "fake Kommo: webhook not accepted"),
                    }
                    if let Some(d) = delays.get(attempt) {
                        tokio::time::sleep(*d).await;
                    }
                }
            });
        }
    }
}

#[allow(clippy::too_many_lines)]
fn route(st: &mut St, method: &Method, segs: &[&str], q: &Query, body: &Value, path: &str) -> Response {
    let base = st.base.clone();
    let m = method.as_str();
    match (m, segs) {
        ("GET", ["account"]) => hal(&account_json(st, &q.with())),
        ("GET", ["users"]) => {
            let items: Vec<Value> = st.users.values().cloned().collect();
            page_of(items, "users", q, path, &base, 50)
        }
        ("GET", ["users", id]) => match id.parse::<u64>().ok().and_then(|i| st.users.get(&i)) {
            Some(u) => hal(u),
            None => problem(404, "Not Found", "User not found"),
        },
        ("GET", ["leads", "pipelines"]) => {
            let items: Vec<Value> = st.pipelines.values().cloned().collect();
            hal(
                &json!({"_total_items": items.len(), "_links": {"self": {"href": format!("{base}{path}")}}, "_embedded": {"pipelines": items}}),
            )
        }
        ("GET", ["leads", "pipelines", id]) => match id.parse::<u64>().ok().and_then(|i| st.pipelines.get(&i)) {
            Some(p) => hal(p),
            None => problem(404, "Not Found", "Pipeline not found"),
        },
        ("GET", ["leads", "pipelines", id, "statuses"]) => {
            match id.parse::<u64>().ok().and_then(|i| st.pipelines.get(&i)) {
                Some(p) => {
                    let s = p["_embedded"]["statuses"].clone();
                    hal(&json!({"_total_items": s.as_array().map_or(0, Vec::len), "_embedded": {"statuses": s}}))
                }
                None => problem(404, "Not Found", "Pipeline not found"),
            }
        }
        ("POST", ["leads", "complex"]) => complex(st, body),
        ("GET", ["tasks"]) => list_tasks(st, q, path, &base),
        ("GET", ["tasks", id]) => match id.parse::<u64>().ok().and_then(|i| st.tasks.get(&i)) {
            Some(t) => hal(t),
            None => problem(404, "Not Found", "Task not found"),
        },
        ("POST", ["tasks"]) => create_tasks(st, body, &base),
        ("PATCH", ["tasks"]) => {
            let Some(arr) = body.as_array() else {
                return validation(vec![json!({"code":"InvalidType","path":"","detail":"array expected"})]);
            };
            let mut out = Vec::new();
            for (i, t) in arr.iter().enumerate() {
                let Some(id) = t["id"].as_u64() else {
                    return validation(vec![
                        json!({"request_id": i.to_string(), "errors": [{"code":"NotBlank","path":"id","detail":"This value should not be blank."}]}),
                    ]);
                };
                match update_task(st, id, t) {
                    Ok(u) => out.push(json!({"id": id, "updated_at": u, "request_id": t.get("request_id").cloned().unwrap_or(json!(i.to_string())), "_links": {"self": {"href": format!("{base}/api/v4/tasks/{id}")}}})),
                    Err(e) => return e,
                }
            }
            hal(&json!({"_links": {"self": {"href": format!("{base}/api/v4/tasks")}}, "_embedded": {"tasks": out}}))
        }
        ("PATCH", ["tasks", id]) => {
            let Ok(id) = id.parse::<u64>() else { return problem(404, "Not Found", "Task not found") };
            match update_task(st, id, body) {
                Ok(u) => hal(
                    &json!({"id": id, "updated_at": u, "_links": {"self": {"href": format!("{base}/api/v4/tasks/{id}")}}}),
                ),
                Err(e) => e,
            }
        }
        ("GET", ["events"]) => {
            let types = q.list("type");
            let entities = q.list("entity");
            let ids = q.list("entity_id");
            let items: Vec<Value> = st
                .events
                .iter()
                .filter(|e| types.is_empty() || types.iter().any(|t| e["type"] == t.as_str()))
                .filter(|e| entities.is_empty() || entities.iter().any(|t| e["entity_type"] == t.as_str()))
                .filter(|e| ids.is_empty() || ids.iter().any(|i| i.parse::<u64>().ok() == e["entity_id"].as_u64()))
                .filter(|e| range_ok(q, "created_at", e))
                .rev() // newest first, as Kommo lists them
                .cloned()
                .collect();
            page_of(items, "events", q, path, &base, 100)
        }
        ("GET", ["webhooks"]) => {
            let dest = q.get("filter[destination]");
            let items: Vec<Value> =
                st.webhooks.iter().filter(|w| dest.is_none_or(|d| w["destination"] == d)).cloned().collect();
            if items.is_empty() {
                return no_content();
            }
            hal(&json!({"_total_items": items.len(), "_embedded": {"webhooks": items}}))
        }
        ("POST", ["webhooks"]) => {
            let Some(dest) = body["destination"].as_str() else {
                return validation(vec![
                    json!({"code":"NotBlank","path":"destination","detail":"This value should not be blank."}),
                ]);
            };
            st.webhooks.retain(|w| w["destination"] != dest);
            let id = st.id();
            let now = st.now();
            let w = json!({"id": id, "destination": dest, "created_at": now, "updated_at": now, "account_id": st.account_id, "created_by": st.current_user, "sort": body["sort"].as_i64().unwrap_or(1), "disabled": false, "settings": body["settings"]});
            st.webhooks.push(w.clone());
            hal(&w)
        }
        ("DELETE", ["webhooks"]) => {
            let dest = body["destination"].as_str().unwrap_or_default().to_owned();
            st.webhooks.retain(|w| w["destination"] != dest.as_str());
            no_content()
        }
        (_, ["leads", "unsorted", rest @ ..]) => unsorted_route(st, m, rest, q, body, path, &base),
        (_, ["catalogs", rest @ ..]) => catalogs_route(st, m, rest, q, body, path, &base),
        (_, [entity, rest @ ..]) => {
            let Some(kind) = Kind::parse(entity) else { return problem(404, "Not Found", "Unknown route") };
            entity_route(st, kind, m, rest, q, body, path, &base)
        }
        _ => problem(404, "Not Found", "Unknown route"),
    }
}

/// `NotBlank` at `path` for element `i` (kommo.md §3 validation shape).
fn not_blank(i: usize, item: &Value, path: &str) -> Value {
    json!({"request_id": item.get("request_id").cloned().unwrap_or(json!(i.to_string())), "errors": [{"code": "NotBlank", "path": path, "detail": "This value should not be blank."}]})
}

/// A JSON array body, or Kommo's validation answer for anything else.
fn array_body(body: &Value) -> Result<&Vec<Value>, Response> {
    body.as_array().ok_or_else(|| {
        validation(vec![json!({"code":"InvalidType","path":"","detail":"This value should be of type array."})])
    })
}

/// A batch write's items, or Kommo's validation answer: the body must be an array, each item needs a `name` on
/// create and a known `id` (`known`) on update (`NotBlank`).
fn checked_batch(body: &Value, create: bool, known: impl Fn(u64) -> bool) -> Result<&Vec<Value>, Response> {
    let arr = array_body(body)?;
    let errors: Vec<Value> = arr
        .iter()
        .enumerate()
        .filter_map(|(i, item)| {
            if create {
                item["name"].as_str().is_none_or(str::is_empty).then(|| not_blank(i, item, "name"))
            } else {
                item["id"].as_u64().is_none_or(|id| !known(id)).then(|| not_blank(i, item, "id"))
            }
        })
        .collect();
    if errors.is_empty() { Ok(arr) } else { Err(validation(errors)) }
}

/// The first status of pipeline `pid` of `kind` (1 = "Incoming leads", 0 = regular; kommo.md §4 "Pipelines").
fn status_of_type(st: &St, pid: u64, kind: u64) -> Option<u64> {
    st.pipelines.get(&pid).and_then(|p| {
        p["_embedded"]["statuses"]
            .as_array()?
            .iter()
            .find(|s| s["type"] == kind && s["id"] != 142 && s["id"] != 143)
            .and_then(|s| s["id"].as_u64())
    })
}

/// Creates an unsorted item's lead, contacts and companies; the `_embedded` of the answer.
fn unsorted_entities(st: &mut St, item: &Value, pid: u64) -> Result<Value, Vec<Value>> {
    let mut lead = item["_embedded"]["leads"].get(0).cloned().unwrap_or_else(|| json!({}));
    lead["pipeline_id"] = json!(pid);
    if let Some(s) = status_of_type(st, pid, 1) {
        lead["status_id"] = json!(s);
    }
    let lead_id = st.create(Kind::Leads, &lead)?;
    let mut contacts = Vec::new();
    for c in item["_embedded"]["contacts"].as_array().into_iter().flatten() {
        let cid = st.create(Kind::Contacts, c)?;
        st.lead_contacts.push((lead_id, cid, contacts.is_empty()));
        contacts.push(json!({"id": cid}));
    }
    let mut companies = Vec::new();
    for c in item["_embedded"]["companies"].as_array().into_iter().flatten() {
        let cid = st.create(Kind::Companies, c)?;
        st.lead_companies.push((lead_id, cid));
        companies.push(json!({"id": cid}));
    }
    Ok(json!({"leads": [{"id": lead_id}], "contacts": contacts, "companies": companies}))
}

fn unsorted_errors(st: &St, arr: &[Value]) -> Vec<Value> {
    let mut errors = Vec::new();
    for (i, item) in arr.iter().enumerate() {
        for field in ["source_uid", "source_name"] {
            if item[field].as_str().is_none_or(str::is_empty) {
                errors.push(not_blank(i, item, field));
            }
        }
        if !item["metadata"].is_object() {
            errors.push(not_blank(i, item, "metadata"));
        }
        if let Some(p) = item["pipeline_id"].as_u64()
            && !st.pipelines.contains_key(&p)
        {
            errors.push(json!({"request_id": item.get("request_id").cloned().unwrap_or(json!(i.to_string())), "errors": [{"code": "NotSupportedChoice", "path": "pipeline_id", "detail": "The value you selected is not a valid choice."}]}));
        }
    }
    errors
}

/// Unsorted leads (src/unsorted.rs names the sources): `forms` and `sip` creation (PHP lib `Unsorted::add`: only those
/// two; community OpenAPI `UnsortedFormCreateItem`: `source_uid`, `source_name` and `metadata` required; the lead
/// waits in the pipeline's "Incoming leads" status), list with `filter[category]` / `filter[pipeline_id]` /
/// `filter[uid]`, accept (the lead moves to the given status of its pipeline or the first regular one), decline (the
/// lead is deleted), link (PHP lib: chats and mail only, which the API cannot create, so always refused here).
fn unsorted_route(st: &mut St, m: &str, rest: &[&str], q: &Query, body: &Value, path: &str, base: &str) -> Response {
    match (m, rest) {
        ("GET", []) => {
            let cats = q.list("category");
            let pipes = q.list("pipeline_id");
            let uids = q.list("uid");
            let items: Vec<Value> = st
                .unsorted
                .values()
                .filter(|u| cats.is_empty() || cats.iter().any(|c| u["category"] == c.as_str()))
                .filter(|u| {
                    pipes.is_empty() || pipes.iter().any(|p| p.parse::<u64>().ok() == u["pipeline_id"].as_u64())
                })
                .filter(|u| uids.is_empty() || uids.iter().any(|x| u["uid"] == x.as_str()))
                .cloned()
                .collect();
            page_of(items, "unsorted", q, path, base, 50)
        }
        ("GET", ["summary"]) => {
            let mut categories = Map::new();
            for u in st.unsorted.values() {
                let c = u["category"].as_str().unwrap_or_default().to_owned();
                let n = categories.get(&c).and_then(Value::as_u64).unwrap_or(0);
                categories.insert(c, json!(n + 1));
            }
            let (accepted, declined) = st.unsorted_sorted;
            hal(
                &json!({"total": st.unsorted.len(), "accepted": accepted, "declined": declined, "average_sort_time": 0, "categories": categories}),
            )
        }
        ("GET", [uid]) => st.unsorted.get(*uid).map_or_else(no_content, hal),
        ("POST", [category @ ("forms" | "sip")]) => {
            let arr = match array_body(body) {
                Ok(a) => a,
                Err(r) => return r,
            };
            let errors = unsorted_errors(st, arr);
            if !errors.is_empty() {
                return validation(errors);
            }
            let mut out = Vec::new();
            for (i, item) in arr.iter().enumerate() {
                let pid = item["pipeline_id"].as_u64().unwrap_or_else(|| st.main_pipeline().0);
                let embedded = match unsorted_entities(st, item, pid) {
                    Ok(e) => e,
                    Err(e) => return validation(vec![json!({"request_id": i.to_string(), "errors": e})]),
                };
                let n = st.id();
                let uid = hex::encode(Sha256::digest(format!("{}:{n}", st.account_id)))[..32].to_owned();
                let created_at = item["created_at"].as_i64().unwrap_or_else(|| st.now());
                let account = st.account_id;
                st.unsorted.insert(
                    uid.clone(),
                    json!({"uid": uid, "source_uid": item["source_uid"], "source_name": item["source_name"], "category": category,
                           "pipeline_id": pid, "created_at": created_at, "metadata": item["metadata"], "account_id": account,
                           "_links": {"self": {"href": format!("{base}/api/v4/leads/unsorted/{uid}")}}, "_embedded": embedded}),
                );
                let rid = item.get("request_id").cloned().unwrap_or(json!(i.to_string()));
                out.push(json!({"uid": uid, "account_id": account, "request_id": rid, "_embedded": embedded}));
            }
            hal(&json!({"_total_items": out.len(), "_embedded": {"unsorted": out}}))
        }
        ("POST", [uid, "accept"]) => {
            let Some(u) = st.unsorted.get(*uid).cloned() else {
                return problem(404, "Not Found", "Unsorted not found");
            };
            let pid = u["pipeline_id"].as_u64().unwrap_or_default();
            let status = match body["status_id"].as_u64() {
                Some(s) if st.pipeline_of_status(s) == Some(pid) => s,
                Some(_) => {
                    return validation(vec![
                        json!({"code": "NotSupportedChoice", "path": "status_id", "detail": "The value you selected is not a valid choice."}),
                    ]);
                }
                None => status_of_type(st, pid, 0).unwrap_or(142),
            };
            for l in u["_embedded"]["leads"].as_array().into_iter().flatten().filter_map(|l| l["id"].as_u64()) {
                if let Err(e) = st.update(Kind::Leads, l, &json!({"status_id": status, "pipeline_id": pid})) {
                    return validation(e);
                }
            }
            st.unsorted.remove(*uid);
            st.unsorted_sorted.0 += 1;
            hal(
                &json!({"uid": uid, "pipeline_id": pid, "category": u["category"], "created_at": u["created_at"], "_embedded": u["_embedded"]}),
            )
        }
        ("DELETE", [uid, "decline"]) => {
            let Some(u) = st.unsorted.remove(*uid) else { return problem(404, "Not Found", "Unsorted not found") };
            st.unsorted_sorted.1 += 1;
            for l in u["_embedded"]["leads"].as_array().into_iter().flatten().filter_map(|l| l["id"].as_u64()) {
                st.map(Kind::Leads).remove(&l);
            }
            hal(
                &json!({"uid": uid, "pipeline_id": u["pipeline_id"], "category": u["category"], "_embedded": u["_embedded"]}),
            )
        }
        ("POST", [uid, "link"]) => match st.unsorted.get(*uid) {
            None => problem(404, "Not Found", "Unsorted not found"),
            Some(_) => problem(400, "Bad Request", "Only chats and mail unsorted can be linked"),
        },
        _ => problem(404, "Not Found", "Unknown route"),
    }
}

/// Catalogs (src/catalogs.rs names the sources): `name` required on create (`CatalogCreateItem`), a known `id` on
/// update; elements under `/catalogs/{id}/elements` ([`elements_route`]).
fn catalogs_route(st: &mut St, m: &str, rest: &[&str], q: &Query, body: &Value, path: &str, base: &str) -> Response {
    match (m, rest) {
        ("GET", []) => page_of(st.catalogs.values().cloned().collect(), "catalogs", q, path, base, 50),
        ("GET", [id]) => match id.parse::<u64>().ok().and_then(|i| st.catalogs.get(&i)) {
            Some(c) => hal(c),
            None => problem(404, "Not Found", "Catalog not found"),
        },
        ("POST" | "PATCH", []) => {
            let create = m == "POST";
            let arr = match checked_batch(body, create, |id| st.catalogs.contains_key(&id)) {
                Ok(a) => a,
                Err(r) => return r,
            };
            let mut out = Vec::new();
            for (i, c) in arr.iter().enumerate() {
                let now = st.now();
                let id = if create { st.id() } else { c["id"].as_u64().unwrap_or_default() };
                let mut cur = st.catalogs.get(&id).cloned().unwrap_or_else(|| {
                    json!({"id": id, "created_by": st.current_user, "created_at": now, "sort": 10, "type": c["type"].as_str().unwrap_or("regular"),
                           "can_add_elements": true, "can_show_in_cards": false, "can_link_multiple": true, "can_be_deleted": true,
                           "sdk_widget_code": null, "account_id": st.account_id, "_links": {"self": {"href": format!("{base}/api/v4/catalogs/{id}")}}})
                });
                for k in ["name", "sort", "can_add_elements", "can_link_multiple"] {
                    if !c[k].is_null() {
                        cur[k] = c[k].clone();
                    }
                }
                cur["updated_by"] = json!(st.current_user);
                cur["updated_at"] = json!(now);
                st.catalogs.insert(id, cur.clone());
                cur["request_id"] = c.get("request_id").cloned().unwrap_or(json!(i.to_string()));
                out.push(cur);
            }
            hal(&json!({"_links": {"self": {"href": format!("{base}{path}")}}, "_embedded": {"catalogs": out}}))
        }
        (_, [cid, "elements", more @ ..]) => {
            let Some(cid) = cid.parse::<u64>().ok().filter(|c| st.catalogs.contains_key(c)) else {
                return problem(404, "Not Found", "Catalog not found");
            };
            elements_route(st, cid, m, more, q, body, path, base)
        }
        _ => problem(404, "Not Found", "Unknown route"),
    }
}

/// Catalog elements: `name` required on create (`CatalogElementCreateItem`), a known `id` on update, `query`
/// matching names and custom field values, `filter[id]`; an unknown element answers 204 (kommo.md §3).
#[allow(clippy::too_many_arguments)]
fn elements_route(
    st: &mut St,
    cid: u64,
    m: &str,
    rest: &[&str],
    q: &Query,
    body: &Value,
    path: &str,
    base: &str,
) -> Response {
    match (m, rest) {
        ("GET", []) => {
            let ids = q.list("id");
            let query = q.get("query").map(str::to_owned);
            let items: Vec<Value> = st
                .elements
                .values()
                .filter(|e| e["catalog_id"] == cid)
                .filter(|e| ids.is_empty() || ids.iter().any(|i| i.parse::<u64>().ok() == e["id"].as_u64()))
                .filter(|e| query.as_deref().is_none_or(|qq| matches_query(e, qq)))
                .cloned()
                .collect();
            page_of(items, "elements", q, path, base, 50)
        }
        ("GET", [id]) => id
            .parse::<u64>()
            .ok()
            .and_then(|i| st.elements.get(&i))
            .filter(|e| e["catalog_id"] == cid)
            .map_or_else(no_content, hal),
        ("POST" | "PATCH", []) => {
            let create = m == "POST";
            let known = |id| st.elements.get(&id).is_some_and(|x| x["catalog_id"] == cid);
            let arr = match checked_batch(body, create, known) {
                Ok(a) => a,
                Err(r) => return r,
            };
            let mut out = Vec::new();
            for (i, e) in arr.iter().enumerate() {
                let now = st.now();
                let id = if create { st.id() } else { e["id"].as_u64().unwrap_or_default() };
                let mut cur = st.elements.get(&id).cloned().unwrap_or_else(|| {
                    json!({"id": id, "catalog_id": cid, "created_by": st.current_user, "created_at": now, "is_deleted": false,
                           "custom_fields_values": null, "account_id": st.account_id, "_embedded": {"warning": null},
                           "_links": {"self": {"href": format!("{base}/api/v4/catalogs/{cid}/elements/{id}")}}})
                });
                if !e["name"].is_null() {
                    cur["name"] = e["name"].clone();
                }
                if let Some(cf) = e["custom_fields_values"].as_array() {
                    let mut vals = cur["custom_fields_values"].as_array().cloned().unwrap_or_default();
                    for f in cf {
                        vals.retain(|v| f["field_id"].is_null() || v["field_id"] != f["field_id"]);
                        vals.push(json!({"field_id": f["field_id"], "field_code": f.get("field_code").cloned().unwrap_or(Value::Null), "values": f["values"]}));
                    }
                    cur["custom_fields_values"] = json!(vals);
                }
                cur["updated_by"] = json!(st.current_user);
                cur["updated_at"] = json!(now);
                st.elements.insert(id, cur.clone());
                cur["request_id"] = e.get("request_id").cloned().unwrap_or(json!(i.to_string()));
                out.push(cur);
            }
            hal(&json!({"_links": {"self": {"href": format!("{base}{path}")}}, "_embedded": {"elements": out}}))
        }
        _ => problem(404, "Not Found", "Unknown route"),
    }
}

#[allow(clippy::too_many_arguments, clippy::too_many_lines)]
fn entity_route(
    st: &mut St,
    kind: Kind,
    m: &str,
    rest: &[&str],
    q: &Query,
    body: &Value,
    path: &str,
    base: &str,
) -> Response {
    let key = kind.as_str();
    match (m, rest) {
        ("GET", []) => {
            let items = filter_entities(st, kind, q);
            page_of(items, key, q, path, base, 50)
        }
        ("POST", []) => {
            let Some(arr) = body.as_array() else {
                return validation(vec![
                    json!({"code":"InvalidType","path":"","detail":"This value should be of type array."}),
                ]);
            };
            // validate everything first: Kommo rejects the whole request
            let mut all_errors = Vec::new();
            let snapshot_next = st.next_id;
            let snapshot_events = st.events.len();
            let mut created = Vec::new();
            for (i, item) in arr.iter().enumerate() {
                match st.create(kind, item) {
                    Ok(id) => created.push((id, item.get("request_id").cloned().unwrap_or(json!(i.to_string())))),
                    Err(errors) => all_errors.push(json!({"request_id": item.get("request_id").cloned().unwrap_or(json!(i.to_string())), "errors": errors})),
                }
            }
            if !all_errors.is_empty() {
                for (id, _) in &created {
                    st.map(kind).remove(id);
                }
                st.next_id = snapshot_next;
                st.events.truncate(snapshot_events);
                return validation(all_errors);
            }
            let out: Vec<Value> = created
                .iter()
                .map(|(id, rid)| json!({"id": id, "request_id": rid, "_links": st.link(kind, *id)}))
                .collect();
            hal(&json!({"_links": {"self": {"href": format!("{base}/api/v4/{key}")}}, "_embedded": {key: out}}))
        }
        ("PATCH", []) => {
            let Some(arr) = body.as_array() else {
                return validation(vec![
                    json!({"code":"InvalidType","path":"","detail":"This value should be of type array."}),
                ]);
            };
            let mut out = Vec::new();
            let mut errs = Vec::new();
            for (i, item) in arr.iter().enumerate() {
                let rid = item.get("request_id").cloned().unwrap_or(json!(i.to_string()));
                let Some(id) = item["id"].as_u64() else {
                    errs.push(json!({"request_id": rid, "errors": [{"code":"NotBlank","path":"id","detail":"This value should not be blank."}]}));
                    continue;
                };
                match st.update(kind, id, item) {
                    Ok(u) => {
                        out.push(json!({"id": id, "updated_at": u, "request_id": rid, "_links": st.link(kind, id)}));
                    }
                    Err(e) => errs.push(json!({"request_id": rid, "errors": e})),
                }
            }
            if !errs.is_empty() {
                return validation(errs);
            }
            hal(&json!({"_links": {"self": {"href": format!("{base}/api/v4/{key}")}}, "_embedded": {key: out}}))
        }
        ("GET", ["custom_fields"]) => {
            let items: Vec<Value> = st.fields.values().filter(|(k, _)| *k == kind).map(|(_, v)| v.clone()).collect();
            page_of(items, "custom_fields", q, path, base, 50)
        }
        ("GET", ["custom_fields", id]) => {
            match id.parse::<u64>().ok().and_then(|i| st.fields.get(&i)).filter(|(k, _)| *k == kind) {
                Some((_, v)) => hal(v),
                None => problem(404, "Not Found", "Custom field not found"),
            }
        }
        ("GET", ["tags"]) => {
            let items: Vec<Value> = st.tags.values().filter(|(k, _)| *k == kind).map(|(_, v)| v.clone()).collect();
            page_of(items, "tags", q, path, base, 50)
        }
        ("POST", ["tags"]) => {
            let mut out = Vec::new();
            for (i, t) in body.as_array().into_iter().flatten().enumerate() {
                if let Some(mut tag) = st.tag_id(kind, t) {
                    tag["request_id"] = t.get("request_id").cloned().unwrap_or(json!(i.to_string()));
                    out.push(tag);
                }
            }
            hal(&json!({"_embedded": {"tags": out}}))
        }
        ("GET", ["notes"]) => {
            let types = q.list("note_type");
            let items: Vec<Value> = st
                .notes
                .values()
                .filter(|(k, v)| *k == kind && (types.is_empty() || types.iter().any(|t| v["note_type"] == t.as_str())))
                .filter(|(_, v)| range_ok(q, "updated_at", v))
                .map(|(_, v)| v.clone())
                .collect();
            page_of(items, "notes", q, path, base, 50)
        }
        ("POST", ["notes"]) => add_notes(st, kind, None, body, base),
        ("GET", [id, "notes"]) => {
            let Ok(eid) = id.parse::<u64>() else { return problem(404, "Not Found", "Entity not found") };
            let items: Vec<Value> = st
                .notes
                .values()
                .filter(|(k, v)| *k == kind && v["entity_id"].as_u64() == Some(eid))
                .map(|(_, v)| v.clone())
                .collect();
            page_of(items, "notes", q, path, base, 50)
        }
        ("POST", [id, "notes"]) => {
            let Ok(eid) = id.parse::<u64>() else { return problem(404, "Not Found", "Entity not found") };
            add_notes(st, kind, Some(eid), body, base)
        }
        ("GET", [id, "links"]) => {
            let Ok(eid) = id.parse::<u64>() else { return problem(404, "Not Found", "Entity not found") };
            let links = links_of(st, kind, eid);
            if links.is_empty() {
                return no_content();
            }
            hal(&json!({"_total_items": links.len(), "_embedded": {"links": links}}))
        }
        ("POST", [id, op @ ("link" | "unlink")]) => {
            let Ok(eid) = id.parse::<u64>() else { return problem(404, "Not Found", "Entity not found") };
            if st.get(kind, eid).is_none() {
                return problem(404, "Not Found", "Entity not found");
            }
            let mut out = Vec::new();
            for l in body.as_array().into_iter().flatten() {
                let (Some(to), Some(to_type)) =
                    (l["to_entity_id"].as_u64(), l["to_entity_type"].as_str().and_then(Kind::parse))
                else {
                    continue;
                };
                let main = l["metadata"]["is_main"]
                    .as_bool()
                    .or_else(|| l["metadata"]["main_contact"].as_bool())
                    .unwrap_or(false);
                let (lead, contact, company) = match (kind, to_type) {
                    (Kind::Leads, Kind::Contacts) => (Some(eid), Some(to), None),
                    (Kind::Contacts, Kind::Leads) => (Some(to), Some(eid), None),
                    (Kind::Leads, Kind::Companies) => (Some(eid), None, Some(to)),
                    (Kind::Companies, Kind::Leads) => (Some(to), None, Some(eid)),
                    (Kind::Contacts, Kind::Companies) => (None, Some(eid), Some(to)),
                    (Kind::Companies, Kind::Contacts) => (None, Some(to), Some(eid)),
                    _ => continue,
                };
                let link = *op == "link";
                match (lead, contact, company) {
                    (Some(l), Some(c), None) => {
                        st.lead_contacts.retain(|(a, b, _)| !(*a == l && *b == c));
                        if link {
                            if main {
                                for e in st.lead_contacts.iter_mut().filter(|(a, _, _)| *a == l) {
                                    e.2 = false;
                                }
                            }
                            let first = !st.lead_contacts.iter().any(|(a, _, _)| *a == l);
                            st.lead_contacts.push((l, c, main || first));
                        }
                    }
                    (Some(l), None, Some(co)) => {
                        st.lead_companies.retain(|(a, _)| *a != l);
                        if link {
                            st.lead_companies.push((l, co));
                        }
                    }
                    (None, Some(c), Some(co)) => {
                        st.contact_companies.retain(|(a, _)| *a != c);
                        if link {
                            st.contact_companies.push((c, co));
                        }
                    }
                    _ => {}
                }
                st.touch(kind, eid);
                out.push(json!({"entity_id": eid, "entity_type": kind.as_str(), "to_entity_id": to, "to_entity_type": to_type.as_str(), "metadata": l["metadata"]}));
            }
            if *op == "unlink" {
                return no_content();
            }
            hal(&json!({"_total_items": out.len(), "_embedded": {"links": out}}))
        }
        ("GET", [id]) => {
            let Ok(id) = id.parse::<u64>() else { return problem(404, "Not Found", "Entity not found") };
            match st.get(kind, id) {
                Some(v) if !v["is_deleted"].as_bool().unwrap_or(false) => hal(&st.render(kind, v, &q.with())),
                _ => no_content(),
            }
        }
        ("PATCH", [id]) => {
            let Ok(id) = id.parse::<u64>() else { return problem(404, "Not Found", "Entity not found") };
            if st.get(kind, id).is_none() {
                return problem(404, "Not Found", "Entity not found");
            }
            match st.update(kind, id, body) {
                Ok(u) => hal(&json!({"id": id, "updated_at": u, "_links": st.link(kind, id)})),
                Err(e) => validation(vec![json!({"request_id": "0", "errors": e})]),
            }
        }
        _ => problem(404, "Not Found", "Unknown route"),
    }
}

fn links_of(st: &St, kind: Kind, id: u64) -> Vec<Value> {
    let mk = |to: u64, to_type: Kind, meta: Value| json!({"entity_id": id, "entity_type": kind.as_str(), "to_entity_id": to, "to_entity_type": to_type.as_str(), "metadata": meta});
    let mut out = Vec::new();
    match kind {
        Kind::Leads => {
            for (_, c, main) in st.lead_contacts.iter().filter(|(l, _, _)| *l == id) {
                out.push(mk(*c, Kind::Contacts, json!({"main_contact": main})));
            }
            for (_, co) in st.lead_companies.iter().filter(|(l, _)| *l == id) {
                out.push(mk(*co, Kind::Companies, Value::Null));
            }
        }
        Kind::Contacts => {
            for (l, _, main) in st.lead_contacts.iter().filter(|(_, c, _)| *c == id) {
                out.push(mk(*l, Kind::Leads, json!({"main_contact": main})));
            }
            for (_, co) in st.contact_companies.iter().filter(|(c, _)| *c == id) {
                out.push(mk(*co, Kind::Companies, Value::Null));
            }
        }
        Kind::Companies => {
            for (l, _) in st.lead_companies.iter().filter(|(_, co)| *co == id) {
                out.push(mk(*l, Kind::Leads, Value::Null));
            }
            for (c, _) in st.contact_companies.iter().filter(|(_, co)| *co == id) {
                out.push(mk(*c, Kind::Contacts, Value::Null));
            }
        }
    }
    out
}

fn add_notes(st: &mut St, kind: Kind, parent: Option<u64>, body: &Value, base: &str) -> Response {
    let Some(arr) = body.as_array() else {
        return validation(vec![
            json!({"code":"InvalidType","path":"","detail":"This value should be of type array."}),
        ]);
    };
    let mut errs = Vec::new();
    for (i, n) in arr.iter().enumerate() {
        let eid = parent.or_else(|| n["entity_id"].as_u64());
        let rid = n.get("request_id").cloned().unwrap_or(json!(i.to_string()));
        if eid.is_none_or(|e| st.get(kind, e).is_none()) {
            errs.push(json!({"request_id": rid, "errors": [{"code": "NotFound", "path": "entity_id", "detail": "Entity not found"}]}));
        }
        if n["note_type"].as_str().is_none() {
            errs.push(json!({"request_id": rid, "errors": [{"code": "NotBlank", "path": "note_type", "detail": "This value should not be blank."}]}));
        }
    }
    if !errs.is_empty() {
        return validation(errs);
    }
    let mut out = Vec::new();
    for (i, n) in arr.iter().enumerate() {
        let eid = parent.or_else(|| n["entity_id"].as_u64()).unwrap_or(0);
        let id = st.id();
        let now = st.now();
        let v = json!({
            "id": id,
            "entity_id": eid,
            "created_by": st.current_user,
            "updated_by": st.current_user,
            "created_at": now,
            "updated_at": now,
            "responsible_user_id": n["responsible_user_id"].as_u64().unwrap_or(st.current_user),
            "group_id": 0,
            "note_type": n["note_type"],
            "params": n["params"],
            "account_id": st.account_id,
            "_links": {"self": {"href": format!("{base}/api/v4/{}/{eid}/notes/{id}", kind.as_str())}},
        });
        st.notes.insert(id, (kind, v));
        out.push(json!({"id": id, "entity_id": eid, "request_id": n.get("request_id").cloned().unwrap_or(json!(i.to_string())), "_links": {"self": {"href": format!("{base}/api/v4/{}/{eid}/notes/{id}", kind.as_str())}}}));
    }
    hal(
        &json!({"_links": {"self": {"href": format!("{base}/api/v4/{}/notes", kind.as_str())}}, "_embedded": {"notes": out}}),
    )
}

fn list_tasks(st: &St, q: &Query, path: &str, base: &str) -> Response {
    let etype = q.get("filter[entity_type]").map(str::to_owned);
    let eids: Vec<u64> = q.list("entity_id").iter().filter_map(|s| s.parse().ok()).collect();
    let ids: Vec<u64> = q.list("id").iter().filter_map(|s| s.parse().ok()).collect();
    let resp: Vec<u64> = q.list("responsible_user_id").iter().filter_map(|s| s.parse().ok()).collect();
    let types: Vec<i64> = q.list("task_type").iter().filter_map(|s| s.parse().ok()).collect();
    let completed = q.get("filter[is_completed]").map(|s| s == "1" || s == "true");
    let mut items: Vec<Value> = st
        .tasks
        .values()
        .filter(|t| etype.as_deref().is_none_or(|e| t["entity_type"] == e))
        .filter(|t| eids.is_empty() || t["entity_id"].as_u64().is_some_and(|i| eids.contains(&i)))
        .filter(|t| ids.is_empty() || t["id"].as_u64().is_some_and(|i| ids.contains(&i)))
        .filter(|t| resp.is_empty() || t["responsible_user_id"].as_u64().is_some_and(|i| resp.contains(&i)))
        .filter(|t| types.is_empty() || t["task_type_id"].as_i64().is_some_and(|i| types.contains(&i)))
        .filter(|t| completed.is_none_or(|c| t["is_completed"].as_bool() == Some(c)))
        .filter(|t| range_ok(q, "updated_at", t))
        .cloned()
        .collect();
    sort_items(&mut items, q);
    page_of(items, "tasks", q, path, base, 50)
}

fn create_tasks(st: &mut St, body: &Value, base: &str) -> Response {
    let Some(arr) = body.as_array() else {
        return validation(vec![
            json!({"code":"InvalidType","path":"","detail":"This value should be of type array."}),
        ]);
    };
    let mut errs = Vec::new();
    for (i, t) in arr.iter().enumerate() {
        let rid = t.get("request_id").cloned().unwrap_or(json!(i.to_string()));
        let mut e = Vec::new();
        if t["text"].as_str().is_none_or(str::is_empty) {
            e.push(json!({"code": "NotBlank", "path": "text", "detail": "This value should not be blank."}));
        }
        if t["complete_till"].as_i64().is_none() {
            e.push(json!({"code": "NotBlank", "path": "complete_till", "detail": "This value should not be blank."}));
        }
        if let (Some(et), Some(eid)) = (t["entity_type"].as_str(), t["entity_id"].as_u64())
            && Kind::parse(et).is_none_or(|k| st.get(k, eid).is_none())
        {
            e.push(json!({"code": "NotFound", "path": "entity_id", "detail": "Entity not found"}));
        }
        if !e.is_empty() {
            errs.push(json!({"request_id": rid, "errors": e}));
        }
    }
    if !errs.is_empty() {
        return validation(errs);
    }
    let mut out = Vec::new();
    for (i, t) in arr.iter().enumerate() {
        let id = st.id();
        let now = st.now();
        let v = json!({
            "id": id,
            "created_by": st.current_user,
            "updated_by": st.current_user,
            "created_at": now,
            "updated_at": now,
            "responsible_user_id": t["responsible_user_id"].as_u64().unwrap_or(st.current_user),
            "group_id": 0,
            "entity_id": t["entity_id"],
            "entity_type": t["entity_type"],
            "duration": t["duration"].as_i64().unwrap_or(0),
            "is_completed": t["is_completed"].as_bool().unwrap_or(false),
            "task_type_id": t["task_type_id"].as_u64().unwrap_or(1),
            "text": t["text"],
            "result": if t["result"].is_object() { t["result"].clone() } else { json!([]) },
            "complete_till": t["complete_till"],
            "account_id": st.account_id,
            "_links": {"self": {"href": format!("{base}/api/v4/tasks/{id}")}},
        });
        if let (Some(et), Some(eid)) = (t["entity_type"].as_str().and_then(Kind::parse), t["entity_id"].as_u64()) {
            let till = t["complete_till"].as_i64();
            if let Some(e) = st.map(et).get_mut(&eid) {
                let cur = e["closest_task_at"].as_i64();
                if till.is_some() && cur.is_none_or(|c| till < Some(c)) {
                    e["closest_task_at"] = json!(till);
                }
            }
        }
        st.tasks.insert(id, v);
        out.push(json!({"id": id, "request_id": t.get("request_id").cloned().unwrap_or(json!(i.to_string())), "_links": {"self": {"href": format!("{base}/api/v4/tasks/{id}")}}}));
    }
    hal(&json!({"_links": {"self": {"href": format!("{base}/api/v4/tasks")}}, "_embedded": {"tasks": out}}))
}

fn update_task(st: &mut St, id: u64, t: &Value) -> Result<i64, Response> {
    let Some(mut cur) = st.tasks.get(&id).cloned() else {
        return Err(problem(404, "Not Found", "Task not found"));
    };
    for m in ["text", "complete_till", "is_completed", "responsible_user_id", "task_type_id", "duration"] {
        if let Some(v) = t.get(m) {
            cur[m] = v.clone();
        }
    }
    if t["result"].is_object() {
        cur["result"] = t["result"].clone();
    }
    let u = st.bump(cur["updated_at"].as_i64());
    cur["updated_at"] = json!(u);
    st.tasks.insert(id, cur);
    Ok(u)
}

fn complex(st: &mut St, body: &Value) -> Response {
    let Some(arr) = body.as_array() else {
        return validation(vec![
            json!({"code":"InvalidType","path":"","detail":"This value should be of type array."}),
        ]);
    };
    if arr.len() > 50 {
        return validation(vec![
            json!({"request_id": "0", "errors": [{"code": "TooMany", "path": "", "detail": "You can add no more than 50 leads per request"}]}),
        ]);
    }
    let mut out = Vec::new();
    for (i, item) in arr.iter().enumerate() {
        let contact = item["_embedded"]["contacts"].get(0).map(|c| st.create(Kind::Contacts, c));
        let company = item["_embedded"]["companies"].get(0).map(|c| st.create(Kind::Companies, c));
        let mut lead_in = item.clone();
        if let Some(o) = lead_in.get_mut("_embedded").and_then(Value::as_object_mut) {
            o.remove("contacts");
            o.remove("companies");
        }
        let lead = match st.create(Kind::Leads, &lead_in) {
            Ok(id) => id,
            Err(e) => return validation(vec![json!({"request_id": i.to_string(), "errors": e})]),
        };
        let cid = contact.and_then(Result::ok);
        let coid = company.and_then(Result::ok);
        if let Some(c) = cid {
            st.lead_contacts.push((lead, c, true));
        }
        if let Some(co) = coid {
            st.lead_companies.push((lead, co));
            if let Some(c) = cid {
                st.contact_companies.push((c, co));
            }
        }
        let rid = item.get("request_id").and_then(Value::as_str).map_or_else(|| i.to_string(), str::to_owned);
        out.push(json!({"id": lead, "contact_id": cid, "company_id": coid, "request_id": [rid], "merged": false}));
    }
    respond(200, "application/json", Value::Array(out).to_string())
}

fn account_json(st: &St, with: &[String]) -> Value {
    let base = &st.base;
    let mut v = json!({
        "id": st.account_id,
        "name": "Fake account",
        "subdomain": st.subdomain,
        "created_at": 1_600_000_000,
        "created_by": st.current_user,
        "updated_at": 1_600_000_000,
        "updated_by": st.current_user,
        "current_user_id": st.current_user,
        "country": "US",
        "currency": "USD",
        "currency_symbol": "$",
        "customers_mode": "disabled",
        "is_unsorted_on": true,
        "is_loss_reason_enabled": true,
        "is_helpbot_enabled": false,
        "is_technical_account": false,
        "contact_name_display_order": 1,
        "_links": {"self": {"href": format!("{base}/api/v4/account")}},
    });
    let mut emb = Map::new();
    if with.iter().any(|w| w == "task_types") {
        emb.insert(
            "task_types".into(),
            json!([
                {"id": 1, "name": "Follow-up", "color": null, "icon_id": null, "code": "FOLLOW_UP"},
                {"id": 2, "name": "Meeting", "color": null, "icon_id": null, "code": "MEETING"}
            ]),
        );
    }
    if with.iter().any(|w| w == "users_groups") {
        emb.insert("users_groups".into(), json!([{"id": 0, "name": "Отдел продаж", "uuid": null}]));
    }
    if with.iter().any(|w| w == "is_api_filter_enabled") {
        v["is_api_filter_enabled"] = json!(true);
    }
    if !emb.is_empty() {
        v["_embedded"] = Value::Object(emb);
    }
    v
}

fn oauth_token(st: &mut St, body: &Bytes) -> Response {
    let Ok(b) = serde_json::from_slice::<Value>(body) else { return problem(400, "Bad Request", "invalid JSON") };
    let expires = st.oauth_expires_in;
    let revoked = || {
        respond(401, "application/problem+json", json!({"hint": "Token has been revoked", "title": "Некорректный запрос", "type": "https://developers.amocrm.ru/v3/errors/OAuthProblemJson", "status": 401, "detail": "В запросе отсутствует ряд параметров или параметры невалидны"}).to_string())
    };
    let Some(o) = st.oauth.as_mut() else { return problem(404, "Not Found", "OAuth is not enabled on this fake") };
    if b["client_id"] != o.client_id.as_str() || b["client_secret"] != o.client_secret.as_str() {
        return problem(401, "Unauthorized", "Client authentication failed");
    }
    match b["grant_type"].as_str() {
        Some("authorization_code") => {
            let code = b["code"].as_str().unwrap_or_default();
            if !o.codes.remove(code) {
                return revoked();
            }
        }
        Some("refresh_token") => {
            let rt = b["refresh_token"].as_str().unwrap_or_default().to_owned();
            if !o.refresh.remove(&rt) {
                return revoked();
            }
            o.spent.insert(rt);
        }
        _ => return problem(400, "Bad Request", "unsupported grant_type"),
    }
    o.issued += 1;
    let access = format!("fake-access-{}", o.issued);
    let refresh = format!("fake-refresh-{}", o.issued);
    o.refresh.insert(refresh.clone());
    st.tokens.insert(access.clone());
    let now = st.now();
    respond(200, "application/json", json!({"token_type": "Bearer", "expires_in": expires, "server_time": now, "access_token": access, "refresh_token": refresh}).to_string())
}

// ---------------------------------------------------------------------------------------------------------------
// Public API

/// A lead to seed with [`FakeKommo::seed_lead`].
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct SeedLead {
    body: Map<String, Value>,
    contacts: Vec<u64>,
    companies: Vec<u64>,
}

impl SeedLead {
    /// A lead named `name` in the main pipeline's first stage.
    pub fn new(name: impl Into<String>) -> Self {
        let mut body = Map::new();
        body.insert("name".into(), json!(name.into()));
        Self { body, ..Self::default() }
    }
    /// Price.
    pub fn price(mut self, price: i64) -> Self {
        self.body.insert("price".into(), json!(price));
        self
    }
    /// Pipeline and status.
    pub fn stage(mut self, pipeline: PipelineId, status: StatusId) -> Self {
        self.body.insert("pipeline_id".into(), json!(pipeline.get()));
        self.body.insert("status_id".into(), json!(status.get()));
        self
    }
    /// Responsible user.
    pub fn responsible(mut self, user: UserId) -> Self {
        self.body.insert("responsible_user_id".into(), json!(user.get()));
        self
    }
    /// A custom field value in the write shape (`json!({"value": ...})` or `json!({"enum_id": ...})`).
    pub fn field(mut self, id: CustomFieldId, value: Value) -> Self {
        let arr = self.body.entry("custom_fields_values").or_insert_with(|| json!([]));
        if let Some(a) = arr.as_array_mut() {
            let mut f = Map::new();
            f.insert("field_id".into(), json!(id.get()));
            f.insert("values".into(), Value::Array(vec![value]));
            a.push(Value::Object(f));
        }
        self
    }
    /// A tag by name.
    pub fn tag(mut self, name: &str) -> Self {
        let emb = self.body.entry("_embedded").or_insert_with(|| json!({"tags": []}));
        if let Some(a) = emb["tags"].as_array_mut() {
            a.push(json!({"name": name}));
        }
        self
    }
    /// Links a contact (the first one is the main contact).
    pub fn contact(mut self, id: ContactId) -> Self {
        self.contacts.push(id.get());
        self
    }
    /// Links a company.
    pub fn company(mut self, id: CompanyId) -> Self {
        self.companies.push(id.get());
        self
    }
}

/// A webhook event to render with [`FakeKommo::webhook_body`], built from the fake's current state.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FakeWebhook {
    /// `leads[add][0]`.
    LeadAdd(LeadId),
    /// `leads[update][0]`.
    LeadUpdate(LeadId),
    /// `leads[status][0]` with `old_status_id`/`old_pipeline_id` from the last status change.
    LeadStatus(LeadId),
    /// `leads[responsible][0]` with `old_responsible_user_id`.
    LeadResponsible(LeadId),
    /// `leads[delete][0]` (id and status only).
    LeadDelete(LeadId),
    /// `contacts[add][0]` with `type=contact`.
    ContactAdd(ContactId),
    /// `contacts[update][0]`.
    ContactUpdate(ContactId),
    /// `contacts[add][0]` with `type=company` (how Kommo sends company events).
    CompanyAdd(CompanyId),
    /// `<entity>[note][0][note][...]` for a note in the fake.
    NoteAdd(NoteId),
    /// `task[add][0]`.
    TaskAdd(TaskId),
    /// `task[update][0]`.
    TaskUpdate(TaskId),
}

impl FakeKommo {
    /// Starts a fake with the default configuration (token `fake-kommo-token`, 7 requests in any sliding second).
    ///
    /// # Errors
    /// When the socket cannot be bound.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_with(FakeConfig::default()).await
    }

    /// Starts a fake with `config`. Seeds: user 1 (admin), the main pipeline with statuses "Incoming leads"
    /// (unsorted), "First contact", "Negotiation", "Decision", 142 won, 143 lost, and the contacts' `PHONE`/`EMAIL`
    /// multitext fields.
    ///
    /// # Errors
    /// When the socket cannot be bound.
    pub async fn start_with(config: FakeConfig) -> std::io::Result<Self> {
        let mut st = St {
            account_id: config.account_id,
            subdomain: config.subdomain.clone(),
            webhook_domain: config.webhook_domain.clone(),
            webhook_redeliveries: config.webhook_redeliveries.clone(),
            current_user: 1,
            next_id: 1_000,
            oauth_expires_in: config.oauth_expires_in,
            ..St::default()
        };
        st.tokens.insert(config.token.clone());
        if let Some((id, secret)) = &config.oauth {
            st.oauth =
                Some(OAuthState { client_id: id.clone(), client_secret: secret.clone(), ..OAuthState::default() });
        }
        let st = Arc::new(Mutex::new(st));
        let limiter = RateGate::new(&config).map(|g| Arc::new(Mutex::new(g)));
        let router = Router::new().fallback(handle).with_state(AppState { st: st.clone(), limiter: limiter.clone() });
        let server = FakeServer::start(router).await?;
        let fake = Self { server, st, token: config.token, limiter };
        {
            let mut s = fake.state();
            s.base = fake.server.base_url.as_str().trim_end_matches('/').to_owned();
            s.users.insert(1, json!({"id": 1, "name": "Admin", "email": "admin@example.com", "lang": "en", "rights": {"is_admin": true, "is_free": false, "is_active": true, "group_id": null, "role_id": null}}));
        }
        fake.seed_pipeline("Sales", &["First contact", "Negotiation", "Decision"]);
        fake.seed_custom_field(
            EntityType::Contacts,
            "Phone",
            FieldType::Multitext,
            Some("PHONE"),
            &["WORK", "WORKDD", "MOB", "FAX", "HOME", "OTHER"],
        );
        fake.seed_custom_field(
            EntityType::Contacts,
            "Email",
            FieldType::Multitext,
            Some("EMAIL"),
            &["WORK", "PRIV", "OTHER"],
        );
        Ok(fake)
    }

    fn state(&self) -> MutexGuard<'_, St> {
        self.st.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The base URL (`http://127.0.0.1:<port>`): use it as the account URL.
    #[must_use]
    pub fn base_url(&self) -> &Url {
        &self.server.base_url
    }

    /// The long-lived token the fake accepts.
    #[must_use]
    pub fn token(&self) -> &str {
        &self.token
    }

    /// A client builder for this fake: base URL, token, and short backoffs (1 s after a 429 or ban, 10 ms retry
    /// base) so tests stay fast. Adjust before `build()`.
    pub fn client_builder(&self) -> ClientBuilder {
        Client::builder()
            .base_url(self.base_url().as_str())
            .long_lived_token(self.token.as_str())
            .throttle_backoff(Duration::from_secs(1))
            .ban_backoff(Duration::from_secs(1))
            .retry_policy(RetryPolicy {
                base_delay: Duration::from_millis(10),
                max_delay: Duration::from_millis(200),
                ..RetryPolicy::default()
            })
    }

    /// A ready client (see [`FakeKommo::client_builder`]).
    ///
    /// # Panics
    /// Never in practice (the configuration is valid).
    #[must_use]
    pub fn client(&self) -> Client {
        self.client_builder().build().expect("valid fake client configuration")
    }

    /// Requests received.
    #[must_use]
    pub fn log(&self) -> &RequestLog {
        &self.server.log
    }

    /// Fault injection (see [`api_core::fake::Fault`]).
    #[must_use]
    pub fn faults(&self) -> &Faults {
        &self.server.faults
    }

    /// Makes the next `times` requests answer 429 with Kommo's HTML body.
    pub fn inject_throttle(&self, times: u32) {
        self.faults().inject(
            None,
            "/api/v4",
            api_core::fake::Fault::Status {
                status: 429,
                headers: Vec::new(),
                body: THROTTLE_HTML.into(),
                content_type: "text/html".into(),
            },
            times,
        );
    }

    /// Requests the rate limit refused with a 429 so far.
    #[must_use]
    pub fn throttled(&self) -> u64 {
        self.limiter.as_ref().map_or(0, |l| l.lock().unwrap_or_else(std::sync::PoisonError::into_inner).throttled)
    }

    /// Requests answered with the ban page because of the rate limit (not injected ones) so far.
    #[must_use]
    pub fn banned(&self) -> u64 {
        self.limiter.as_ref().map_or(0, |l| l.lock().unwrap_or_else(std::sync::PoisonError::into_inner).banned)
    }

    /// Makes the next `times` requests answer the 403 HTML ban page.
    pub fn inject_ban(&self, times: u32) {
        self.faults().inject(
            None,
            "/api/v4",
            api_core::fake::Fault::Status {
                status: 403,
                headers: Vec::new(),
                body: BAN_HTML.into(),
                content_type: "text/html".into(),
            },
            times,
        );
    }

    /// Makes the next `times` requests answer `status` (e.g. 502) with an HTML body.
    pub fn inject_status(&self, status: u16, times: u32) {
        self.faults().inject(
            None,
            "/api/v4",
            api_core::fake::Fault::Status {
                status,
                headers: Vec::new(),
                body: format!("<html><body><h1>{status}</h1></body></html>"),
                content_type: "text/html".into(),
            },
            times,
        );
    }

    /// The account id.
    #[must_use]
    pub fn account_id(&self) -> u64 {
        self.state().account_id
    }

    /// The subdomain.
    #[must_use]
    pub fn subdomain(&self) -> String {
        self.state().subdomain.clone()
    }

    /// Shifts the fake's clock (all new timestamps) by `seconds`.
    pub fn advance_clock(&self, seconds: i64) {
        self.state().clock_offset += seconds;
    }

    /// The fake's current time (Unix seconds).
    #[must_use]
    pub fn now(&self) -> i64 {
        self.state().now()
    }

    /// Accepts another bearer token (e.g. after revoking the default one with [`FakeKommo::revoke_token`]).
    pub fn add_token(&self, token: &str) {
        self.state().tokens.insert(token.to_owned());
    }

    /// Stops accepting a bearer token (requests with it answer 401).
    pub fn revoke_token(&self, token: &str) {
        self.state().tokens.remove(token);
    }

    /// OAuth: issues an authorization code for the code exchange (requires [`FakeConfig::oauth`]).
    #[must_use]
    pub fn issue_auth_code(&self) -> String {
        let mut s = self.state();
        let o = s.oauth.get_or_insert_with(OAuthState::default);
        o.issued += 1;
        let code = format!("fake-code-{}", o.issued);
        o.codes.insert(code.clone());
        code
    }

    /// OAuth: installs a valid `(access, refresh)` pair directly, as if a code exchange had happened.
    pub fn install_oauth_tokens(&self, access: &str, refresh: &str) {
        let mut s = self.state();
        s.tokens.insert(access.to_owned());
        s.oauth.get_or_insert_with(OAuthState::default).refresh.insert(refresh.to_owned());
    }

    /// Adds a user.
    pub fn seed_user(&self, name: &str, email: &str) -> UserId {
        let mut s = self.state();
        let id = s.id();
        s.users.insert(id, json!({"id": id, "name": name, "email": email, "lang": "en", "rights": {"is_admin": false, "is_free": false, "is_active": true, "group_id": null, "role_id": null}}));
        UserId(id)
    }

    /// Adds a pipeline with "Incoming leads", the named stages, and 142/143. The first pipeline is the main one.
    /// Returns its id and the ids of the named stages.
    pub fn seed_pipeline(&self, name: &str, stages: &[&str]) -> (PipelineId, Vec<StatusId>) {
        let mut s = self.state();
        let pid = s.id();
        let is_main = s.pipelines.is_empty();
        let account = s.account_id;
        let base = s.base.clone();
        let status = |id: u64, name: &str, sort: usize, kind: u8, color: &str, editable: bool| {
            json!({"id": id, "name": name, "sort": sort, "is_editable": editable, "pipeline_id": pid, "color": color, "type": kind, "account_id": account,
                   "_links": {"self": {"href": format!("{base}/api/v4/leads/pipelines/{pid}/statuses/{id}")}}})
        };
        let incoming = s.id();
        let mut statuses = vec![status(incoming, "Incoming leads", 10, 1, "#c1c1c1", false)];
        let mut ids = Vec::new();
        for (i, n) in stages.iter().enumerate() {
            let sid = s.id();
            ids.push(StatusId(sid));
            statuses.push(status(sid, n, 20 + i * 10, 0, "#99ccff", true));
        }
        statuses.push(status(142, "Closed - won", 10_000, 0, "#CCFF66", false));
        statuses.push(status(143, "Closed - lost", 11_000, 0, "#D5D8DB", false));
        let p = json!({"id": pid, "name": name, "sort": 1, "is_main": is_main, "is_unsorted_on": true, "is_archive": false, "account_id": account,
                       "_links": {"self": {"href": format!("{base}/api/v4/leads/pipelines/{pid}")}}, "_embedded": {"statuses": statuses}});
        s.pipelines.insert(pid, p);
        (PipelineId(pid), ids)
    }

    /// The unsorted (incoming) leads not yet accepted or declined, as the API lists them.
    #[must_use]
    pub fn unsorted(&self) -> Vec<crate::unsorted::Unsorted> {
        self.state().unsorted.values().filter_map(|v| Self::typed(v.clone())).collect()
    }

    /// The elements of a catalog, as the API returns them.
    #[must_use]
    pub fn catalog_elements(&self, catalog: crate::CatalogId) -> Vec<crate::catalogs::CatalogElement> {
        let s = self.state();
        s.elements
            .values()
            .filter(|e| e["catalog_id"] == catalog.get())
            .filter_map(|v| Self::typed(v.clone()))
            .collect()
    }

    /// The main pipeline.
    #[must_use]
    pub fn main_pipeline(&self) -> PipelineId {
        PipelineId(self.state().main_pipeline().0)
    }

    /// The named (non-system) stages of a pipeline, in order.
    #[must_use]
    pub fn stages(&self, pipeline: PipelineId) -> Vec<StatusId> {
        let s = self.state();
        s.pipelines
            .get(&pipeline.get())
            .and_then(|p| p["_embedded"]["statuses"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter(|st| st["type"] == 0 && st["id"] != 142 && st["id"] != 143)
            .filter_map(|st| st["id"].as_u64().map(StatusId))
            .collect()
    }

    /// Adds a custom field definition to an entity type. `enums` are option values for select-like and
    /// multitext fields (for multitext they are the enum codes: `WORK`, `MOB`...).
    pub fn seed_custom_field(
        &self,
        entity: EntityType,
        name: &str,
        field_type: FieldType,
        code: Option<&str>,
        enums: &[&str],
    ) -> CustomFieldId {
        let kind = match entity {
            EntityType::Contacts => Kind::Contacts,
            EntityType::Companies => Kind::Companies,
            _ => Kind::Leads,
        };
        let mut s = self.state();
        let id = s.id();
        let mut en = Vec::new();
        for (i, e) in enums.iter().enumerate() {
            let eid = s.id();
            en.push(json!({"id": eid, "value": e, "sort": (i + 1) * 2}));
        }
        let base = s.base.clone();
        let v = json!({
            "id": id, "name": name, "type": field_type.as_str(), "account_id": s.account_id, "code": code,
            "sort": 500 + s.fields.len(), "is_api_only": false, "enums": if en.is_empty() { Value::Null } else { json!(en) },
            "group_id": null, "required_statuses": [], "is_deletable": code.is_none(), "is_predefined": code.is_some(),
            "entity_type": kind.as_str(), "remind": null, "hidden_statuses": [], "chained_lists": null, "currency": null,
            "_links": {"self": {"href": format!("{base}/api/v4/{}/custom_fields/{id}", kind.as_str())}},
        });
        s.fields.insert(id, (kind, v));
        CustomFieldId(id)
    }

    /// The option id of a select-like field's option.
    #[must_use]
    pub fn enum_id(&self, field: CustomFieldId, value: &str) -> Option<crate::EnumId> {
        let s = self.state();
        let (_, def) = s.fields.get(&field.get())?;
        def["enums"].as_array()?.iter().find(|e| e["value"] == value).and_then(|e| e["id"].as_u64()).map(crate::EnumId)
    }

    /// Adds a lead (as if created in the UI; not logged as an API request).
    ///
    /// # Panics
    /// When the seed is invalid (unknown custom field or status).
    pub fn seed_lead(&self, lead: SeedLead) -> LeadId {
        let mut s = self.state();
        let mut body = Value::Object(lead.body);
        if !lead.contacts.is_empty() {
            body["_embedded"]["contacts"] = json!(lead.contacts.iter().map(|c| json!({"id": c})).collect::<Vec<_>>());
        }
        if !lead.companies.is_empty() {
            body["_embedded"]["companies"] = json!(lead.companies.iter().map(|c| json!({"id": c})).collect::<Vec<_>>());
        }
        let id = s.create(Kind::Leads, &body).unwrap_or_else(|e| panic!("invalid seed lead: {e:?}"));
        deliver_webhooks(&mut s);
        LeadId(id)
    }

    /// Adds a contact with an optional work email and phone.
    pub fn seed_contact(&self, name: &str, email: Option<&str>, phone: Option<&str>) -> ContactId {
        let mut cfv = Vec::new();
        if let Some(e) = email {
            cfv.push(json!({"field_code": "EMAIL", "values": [{"value": e, "enum_code": "WORK"}]}));
        }
        if let Some(p) = phone {
            cfv.push(json!({"field_code": "PHONE", "values": [{"value": p, "enum_code": "WORK"}]}));
        }
        let mut s = self.state();
        let id = s
            .create(Kind::Contacts, &json!({"name": name, "custom_fields_values": cfv}))
            .unwrap_or_else(|e| panic!("invalid seed contact: {e:?}"));
        ContactId(id)
    }

    /// Adds a company.
    pub fn seed_company(&self, name: &str) -> CompanyId {
        let mut s = self.state();
        let id =
            s.create(Kind::Companies, &json!({"name": name})).unwrap_or_else(|e| panic!("invalid seed company: {e:?}"));
        CompanyId(id)
    }

    /// Links a contact to a lead (as the main contact when it is the first).
    pub fn link_contact(&self, lead: LeadId, contact: ContactId) {
        let mut s = self.state();
        let first = !s.lead_contacts.iter().any(|(l, _, _)| *l == lead.get());
        s.lead_contacts.push((lead.get(), contact.get(), first));
        s.touch(Kind::Leads, lead.get());
    }

    /// Moves a lead to a stage (as a user would in the UI): bumps `updated_at`, remembers the old status for the
    /// status webhook. Returns the new `updated_at`.
    ///
    /// # Panics
    /// When the lead does not exist.
    pub fn set_lead_status(&self, lead: LeadId, pipeline: PipelineId, status: StatusId) -> i64 {
        let mut s = self.state();
        let u = s
            .update(Kind::Leads, lead.get(), &json!({"pipeline_id": pipeline.get(), "status_id": status.get()}))
            .unwrap_or_else(|e| panic!("set_lead_status: {e:?}"));
        deliver_webhooks(&mut s);
        u
    }

    /// Applies a write body (the API's PATCH shape: `{"name": .., "price": .., "custom_fields_values": [..]}`) to
    /// a lead as a user would; bumps `updated_at` and returns it.
    ///
    /// # Panics
    /// When the lead does not exist or the body is invalid.
    pub fn update_lead(&self, lead: LeadId, patch: &Value) -> i64 {
        let mut s = self.state();
        let u = s.update(Kind::Leads, lead.get(), patch).unwrap_or_else(|e| panic!("update_lead: {e:?}"));
        deliver_webhooks(&mut s);
        u
    }

    /// Applies a write body to a contact; bumps `updated_at` and returns it.
    ///
    /// # Panics
    /// When the contact does not exist or the body is invalid.
    pub fn update_contact(&self, contact: ContactId, patch: &Value) -> i64 {
        let mut s = self.state();
        let u = s.update(Kind::Contacts, contact.get(), patch).unwrap_or_else(|e| panic!("update_contact: {e:?}"));
        deliver_webhooks(&mut s);
        u
    }

    /// Marks a lead deleted (it disappears from lists and GET answers 204).
    pub fn delete_lead(&self, lead: LeadId) {
        let mut s = self.state();
        let t = s.bump(s.get(Kind::Leads, lead.get()).and_then(|v| v["updated_at"].as_i64()));
        if let Some(v) = s.map(Kind::Leads).get_mut(&lead.get()) {
            v["is_deleted"] = json!(true);
            v["updated_at"] = json!(t);
        }
        s.log_event("lead_deleted", "lead", lead.get(), json!([]), json!([]));
    }

    fn typed<T: serde::de::DeserializeOwned>(v: Value) -> Option<T> {
        serde_json::from_value(v).ok()
    }

    /// A lead as the API renders it (with contacts).
    #[must_use]
    pub fn lead(&self, id: LeadId) -> Option<Lead> {
        let s = self.state();
        let v = s.get(Kind::Leads, id.get())?;
        Self::typed(s.render(Kind::Leads, v, &["contacts".into()]))
    }

    /// Every lead (including deleted ones), by id.
    #[must_use]
    pub fn leads(&self) -> Vec<Lead> {
        let s = self.state();
        s.entities
            .get(&Kind::Leads)
            .into_iter()
            .flat_map(|m| m.values())
            .filter_map(|v| Self::typed(s.render(Kind::Leads, v, &["contacts".into()])))
            .collect()
    }

    /// A contact (with leads).
    #[must_use]
    pub fn contact(&self, id: ContactId) -> Option<Contact> {
        let s = self.state();
        let v = s.get(Kind::Contacts, id.get())?;
        Self::typed(s.render(Kind::Contacts, v, &["leads".into()]))
    }

    /// Every contact.
    #[must_use]
    pub fn contacts(&self) -> Vec<Contact> {
        let s = self.state();
        s.entities
            .get(&Kind::Contacts)
            .into_iter()
            .flat_map(|m| m.values())
            .filter_map(|v| Self::typed(s.render(Kind::Contacts, v, &["leads".into()])))
            .collect()
    }

    /// A company.
    #[must_use]
    pub fn company(&self, id: CompanyId) -> Option<Company> {
        let s = self.state();
        let v = s.get(Kind::Companies, id.get())?;
        Self::typed(s.render(Kind::Companies, v, &["leads".into(), "contacts".into()]))
    }

    /// Every company.
    #[must_use]
    pub fn companies(&self) -> Vec<Company> {
        let s = self.state();
        s.entities
            .get(&Kind::Companies)
            .into_iter()
            .flat_map(|m| m.values())
            .filter_map(|v| Self::typed(s.render(Kind::Companies, v, &[])))
            .collect()
    }

    /// Notes on one entity, oldest first.
    #[must_use]
    pub fn notes_for(&self, entity: EntityType, id: u64) -> Vec<Note> {
        let s = self.state();
        s.notes
            .values()
            .filter(|(k, v)| k.entity() == entity && v["entity_id"].as_u64() == Some(id))
            .filter_map(|(_, v)| Self::typed(v.clone()))
            .collect()
    }

    /// Every note.
    #[must_use]
    pub fn notes(&self) -> Vec<Note> {
        self.state().notes.values().filter_map(|(_, v)| Self::typed(v.clone())).collect()
    }

    /// Every task.
    #[must_use]
    pub fn tasks(&self) -> Vec<Task> {
        self.state().tasks.values().filter_map(|v| Self::typed(v.clone())).collect()
    }

    /// Tasks on one entity.
    #[must_use]
    pub fn tasks_for(&self, entity: EntityType, id: u64) -> Vec<Task> {
        self.tasks()
            .into_iter()
            .filter(|t| t.entity_type.as_ref() == Some(&entity) && t.entity_id == Some(id))
            .collect()
    }

    /// Custom field definitions of an entity type.
    #[must_use]
    pub fn custom_fields(&self, entity: &EntityType) -> Vec<CustomField> {
        self.state()
            .fields
            .values()
            .filter(|(k, _)| &k.entity() == entity)
            .filter_map(|(_, v)| Self::typed(v.clone()))
            .collect()
    }

    /// Webhook subscriptions made through the API.
    #[must_use]
    pub fn webhook_subscriptions(&self) -> Vec<Value> {
        self.state().webhooks.clone()
    }

    // ------------------------------------------------------------------------------------------------------
    // webhooks

    /// The form pairs of one event, as Kommo sends them.
    ///
    /// # Panics
    /// When the entity does not exist in the fake.
    #[must_use]
    pub fn webhook_pairs(&self, events: &[FakeWebhook]) -> Vec<(String, String)> {
        render_webhook(&self.state(), events)
    }

    /// The exact form-encoded body Kommo would POST for these events (one POST may carry several).
    #[must_use]
    pub fn webhook_body(&self, events: &[FakeWebhook]) -> String {
        encode_form(&self.webhook_pairs(events))
    }

    /// The body of a lead status-change webhook for the lead's current state.
    #[must_use]
    pub fn webhook_for_lead_status(&self, lead: LeadId) -> String {
        self.webhook_body(&[FakeWebhook::LeadStatus(lead)])
    }

    /// The body of a lead-added webhook.
    #[must_use]
    pub fn webhook_for_lead_add(&self, lead: LeadId) -> String {
        self.webhook_body(&[FakeWebhook::LeadAdd(lead)])
    }

    /// The body of a lead-updated webhook.
    #[must_use]
    pub fn webhook_for_lead_update(&self, lead: LeadId) -> String {
        self.webhook_body(&[FakeWebhook::LeadUpdate(lead)])
    }

    /// The body of a contact-added webhook.
    #[must_use]
    pub fn webhook_for_contact_add(&self, contact: ContactId) -> String {
        self.webhook_body(&[FakeWebhook::ContactAdd(contact)])
    }
}

fn cf_pairs(v: &Value, out: &mut Vec<(String, String)>) {
    for (i, f) in v["custom_fields_values"].as_array().into_iter().flatten().enumerate() {
        out.push((format!("[custom_fields][{i}][id]"), f["field_id"].to_string()));
        out.push((format!("[custom_fields][{i}][name]"), f["field_name"].as_str().unwrap_or_default().to_owned()));
        if let Some(code) = f["field_code"].as_str() {
            out.push((format!("[custom_fields][{i}][code]"), code.to_owned()));
        }
        let is_date = matches!(f["field_type"].as_str(), Some("date" | "date_time" | "birthday"));
        for (j, val) in f["values"].as_array().into_iter().flatten().enumerate() {
            let text = match &val["value"] {
                Value::String(s) => s.clone(),
                Value::Bool(b) => {
                    if *b {
                        "1".into()
                    } else {
                        "0".into()
                    }
                }
                Value::Null => String::new(),
                other => other.to_string(),
            };
            if is_date {
                // dates arrive as a bare `[values][j]=<unix>`
                out.push((format!("[custom_fields][{i}][values][{j}]"), text));
                continue;
            }
            out.push((format!("[custom_fields][{i}][values][{j}][value]"), text));
            if let Some(e) = val["enum_id"].as_u64() {
                out.push((format!("[custom_fields][{i}][values][{j}][enum]"), e.to_string()));
            }
        }
    }
}

fn num(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn webhook_fields(s: &St, ev: &FakeWebhook) -> (&'static str, &'static str, Vec<(String, String)>) {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut push = |k: &str, v: String| out.push((format!("[{k}]"), v));
    match ev {
        FakeWebhook::LeadAdd(id)
        | FakeWebhook::LeadUpdate(id)
        | FakeWebhook::LeadStatus(id)
        | FakeWebhook::LeadResponsible(id)
        | FakeWebhook::LeadDelete(id) => {
            let v = s.get(Kind::Leads, id.get()).unwrap_or_else(|| panic!("no lead {id} in the fake"));
            let action = match ev {
                FakeWebhook::LeadAdd(_) => "add",
                FakeWebhook::LeadUpdate(_) => "update",
                FakeWebhook::LeadStatus(_) => "status",
                FakeWebhook::LeadResponsible(_) => "responsible",
                _ => "delete",
            };
            push("id", num(&v["id"]));
            if action == "delete" {
                push("status_id", num(&v["status_id"]));
                push("pipeline_id", num(&v["pipeline_id"]));
                return ("leads", action, out);
            }
            push("name", v["name"].as_str().unwrap_or_default().to_owned());
            push("status_id", num(&v["status_id"]));
            if matches!(ev, FakeWebhook::LeadStatus(_) | FakeWebhook::LeadUpdate(_)) {
                let (old_s, old_p) = s
                    .prev_status
                    .get(&id.get())
                    .copied()
                    .unwrap_or((v["status_id"].as_u64().unwrap_or(0), v["pipeline_id"].as_u64().unwrap_or(0)));
                push("old_status_id", old_s.to_string());
                if action == "status" {
                    push("old_pipeline_id", old_p.to_string());
                }
            }
            push("price", num(&v["price"]));
            push("responsible_user_id", num(&v["responsible_user_id"]));
            if action == "responsible" {
                let old = s.prev_responsible.get(&id.get()).copied().unwrap_or(0);
                push("old_responsible_user_id", old.to_string());
            }
            push("last_modified", num(&v["updated_at"]));
            push("modified_user_id", num(&v["updated_by"]));
            push("created_user_id", num(&v["created_by"]));
            push("date_create", num(&v["created_at"]));
            push("pipeline_id", num(&v["pipeline_id"]));
            for (i, t) in v["_tags"].as_array().into_iter().flatten().enumerate() {
                out.push((format!("[tags][{i}][id]"), num(&t["id"])));
                out.push((format!("[tags][{i}][name]"), t["name"].as_str().unwrap_or_default().to_owned()));
            }
            out.push(("[account_id]".into(), s.account_id.to_string()));
            cf_pairs(v, &mut out);
            out.push(("[created_at]".into(), num(&v["created_at"])));
            out.push(("[updated_at]".into(), num(&v["updated_at"])));
            ("leads", action, out)
        }
        FakeWebhook::ContactAdd(id) | FakeWebhook::ContactUpdate(id) => {
            let v = s.get(Kind::Contacts, id.get()).unwrap_or_else(|| panic!("no contact {id} in the fake"));
            let action = if matches!(ev, FakeWebhook::ContactAdd(_)) { "add" } else { "update" };
            contact_pairs(s, v, "contact", &mut out);
            for (l, _, _) in s.lead_contacts.iter().filter(|(_, c, _)| *c == id.get()) {
                out.push((format!("[linked_leads_id][{l}][ID]"), l.to_string()));
            }
            if let Some((_, co)) = s.contact_companies.iter().find(|(c, _)| *c == id.get()) {
                out.push(("[linked_company_id]".into(), co.to_string()));
            }
            ("contacts", action, out)
        }
        FakeWebhook::CompanyAdd(id) => {
            let v = s.get(Kind::Companies, id.get()).unwrap_or_else(|| panic!("no company {id} in the fake"));
            contact_pairs(s, v, "company", &mut out);
            ("contacts", "add", out)
        }
        FakeWebhook::NoteAdd(id) => {
            let (kind, v) = s.notes.get(&id.get()).unwrap_or_else(|| panic!("no note {id} in the fake"));
            let element_type = match kind {
                Kind::Contacts => "1",
                Kind::Leads => "2",
                Kind::Companies => "3",
            };
            let created = v["created_at"].as_i64().unwrap_or(0);
            let formatted = chrono::DateTime::from_timestamp(created, 0)
                .map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string())
                .unwrap_or_default();
            let note_type = match v["note_type"].as_str() {
                Some("call_in") => "10",
                Some("call_out") => "11",
                Some("service_message") => "25",
                _ => "4",
            };
            push("element_type", element_type.into());
            push("element_id", num(&v["entity_id"]));
            push("note_type", note_type.into());
            push("text", v["params"]["text"].as_str().unwrap_or_default().to_owned());
            push("account_id", s.account_id.to_string());
            push("date_create", formatted);
            push("created_by", num(&v["created_by"]));
            push("main_user_id", num(&v["responsible_user_id"]));
            push("id", num(&v["id"]));
            push("created_at", num(&v["created_at"]));
            push("updated_at", num(&v["updated_at"]));
            (kind.as_str(), "note", out)
        }
        FakeWebhook::TaskAdd(id) | FakeWebhook::TaskUpdate(id) => {
            let v = s.tasks.get(&id.get()).unwrap_or_else(|| panic!("no task {id} in the fake"));
            let element_type = match v["entity_type"].as_str() {
                Some("contacts") => "1",
                Some("companies") => "3",
                _ => "2",
            };
            push("id", num(&v["id"]));
            push("element_id", num(&v["entity_id"]));
            push("element_type", element_type.into());
            push("task_type", num(&v["task_type_id"]));
            push("date_create", num(&v["created_at"]));
            push("text", v["text"].as_str().unwrap_or_default().to_owned());
            push("status", if v["is_completed"] == true { "1".into() } else { "0".into() });
            push("account_id", s.account_id.to_string());
            push("created_user_id", num(&v["created_by"]));
            push("last_modified", num(&v["updated_at"]));
            push("responsible_user_id", num(&v["responsible_user_id"]));
            push("complete_till", num(&v["complete_till"]));
            if let Some(t) = v["result"]["text"].as_str() {
                out.push(("[result][text]".into(), t.to_owned()));
            }
            ("task", if matches!(ev, FakeWebhook::TaskAdd(_)) { "add" } else { "update" }, out)
        }
    }
}

fn contact_pairs(s: &St, v: &Value, kind: &str, out: &mut Vec<(String, String)>) {
    let mut push = |k: &str, val: String| out.push((format!("[{k}]"), val));
    push("id", num(&v["id"]));
    push("name", v["name"].as_str().unwrap_or_default().to_owned());
    push("responsible_user_id", num(&v["responsible_user_id"]));
    push("date_create", num(&v["created_at"]));
    push("last_modified", num(&v["updated_at"]));
    push("created_user_id", num(&v["created_by"]));
    push("modified_user_id", num(&v["updated_by"]));
    push("account_id", s.account_id.to_string());
    cf_pairs(v, out);
    out.push(("[created_at]".into(), num(&v["created_at"])));
    out.push(("[updated_at]".into(), num(&v["updated_at"])));
    out.push(("[type]".into(), kind.to_owned()));
}

/// POSTs a webhook body to `url` as Kommo does (`Content-Type: application/x-www-form-urlencoded`,
/// `User-Agent: amoCRM-WebHook-client/1.0`, `Accept: */*`). Returns the receiver's status.
///
/// # Errors
/// When the receiver cannot be reached.
pub async fn post_webhook(url: &str, body: &str) -> Result<StatusCode, reqwest::Error> {
    let resp = reqwest::Client::new()
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(reqwest::header::USER_AGENT, "amoCRM-WebHook-client/1.0")
        .header(reqwest::header::ACCEPT, "*/*")
        .body(body.to_owned())
        .send()
        .await?;
    Ok(StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
}

/// The form pairs Kommo would POST for `events`, from the state `s` (see [`FakeKommo::webhook_pairs`]).
fn render_webhook(s: &St, events: &[FakeWebhook]) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut counters: HashMap<String, usize> = HashMap::new();
    for ev in events {
        let (root, action, fields) = webhook_fields(s, ev);
        let n = counters.entry(format!("{root}[{action}]")).or_insert(0);
        let prefix =
            if action == "note" { format!("{root}[note][{n}][note]") } else { format!("{root}[{action}][{n}]") };
        *n += 1;
        for (k, v) in fields {
            pairs.push((format!("{prefix}{k}"), v));
        }
    }
    pairs.push(("account[subdomain]".into(), s.subdomain.clone()));
    pairs.push(("account[id]".into(), s.account_id.to_string()));
    pairs.push(("account[_links][self]".into(), format!("https://{}.{}", s.subdomain, s.webhook_domain)));
    pairs
}
