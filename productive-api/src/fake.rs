//! An in-process, stateful fake of the Productive API v2 (feature `fake`), on 127.0.0.1 with an ephemeral port.
//!
//! It serves `/api/v2/{companies, people, projects, deals, services, service_types, project_assignments,
//! service_assignments, tasks, task_lists, comments, webhooks, time_entries, bookings}` as JSON:API, shaped like
//! the real API (plus the member actions `PATCH /{companies,projects,people}/{id}/archive|restore` and
//! `PATCH /deals/{id}/close|open`):
//!
//! - string ids, `attributes`, relationships as `{"meta":{"included":false}}` unless asked for with `?include=`
//!   (then linkage plus the related resources in `included`), `meta` with `current_page`, `total_pages`,
//!   `total_count`, `page_size`, `max_page_size`, and `links.first`/`links.last`;
//! - `page[number]`/`page[size]` (default 30, at most 200), `sort`, `filter[field]`, `filter[field][op]`
//!   (eq, not_eq, contains, not_contain, gt, gt_eq, lt, lt_eq) and `filter[$op]=or|and` groups over
//!   `filter[N][…]`; an unknown filter or include is a 400 with Productive's error document;
//! - the filters the flows use: companies by `name`, people by `email`, projects by `name`/`company_id`
//!   (templates hidden unless `filter[template]` or `filter[with_templates]`), deals by `project_id`/`type`
//!   (1 deal, 2 budget), services by `deal_id`, tasks by `project_id`/`status`, …;
//! - `X-Auth-Token` (401 when wrong) and `X-Organization-Id` (403 when wrong) on every request; `Content-Type`
//!   other than `application/vnd.api+json` on POST/PATCH is a 415;
//! - relationships accepted as JSON:API relationships or as `<name>_id` attributes; a relationship to a missing
//!   record or a missing required attribute is a 422 with `source.pointer`;
//! - a duplicate project or service assignment is a 409;
//! - time entries need `date`, `person`, `service` (`time` in whole minutes) and filter by `after`/`before`
//!   (inclusive, on `date`), `date`, `person_id`, `service_id`, `task_id`; bookings need `person`,
//!   `started_on` ≤ `ended_on`, `booking_method_id` with its amount (1 `time`, 2 `percentage`, 3 `total_time`)
//!   and exactly one of `service` / `event`, and filter by `after`/`before` (overlap), `person_id`,
//!   `service_id`, `event_id`, `draft` — each failure a 422 with `source.pointer` (bookings.html, withone
//!   "Create a Booking" / "Create a Time Entry");
//! - a deal's `budget_total` is recomputed as Σ price × quantity of its services when a service is created;
//! - `POST /projects/copy` creates the project at once with `duplication_status: "in_progress"`; the copy
//!   finishes (task lists, open tasks and memberships are copied per the `copy_*` flags, the status becomes
//!   `"idle"`) after [`FakeConfig::copy_polls`] reads of that project; [`FakeConfig::copy_response`] chooses
//!   what the POST answers meanwhile (the notes mark it unverified): the new project, the new project without
//!   `duplication_status`, or an empty `202`;
//! - [`FakeProductive::in_process_client`] reaches the handler without a socket, for tests in a paused clock;
//! - rate limits: 100 requests / 10 s and 4,000 / 30 min per (token, organization), each a sliding window on arrival
//!   time with no slack (`api_core::fake::WindowCounter`), answered with a 429
//!   (no `Retry-After` unless [`FakeConfig::retry_after`] is set: Productive documents none);
//! - `POST /webhooks` returns a `signature_token`; [`FakeProductive::emit`] and the helpers that change state
//!   ([`FakeProductive::complete_task`], [`FakeProductive::update_deal`]) POST deliveries to every subscribed
//!   `target_url`, in Productive's envelope, signed with `Productive-Signature: t=…, s=…`.
//!
//! Fault injection and the request log come from [`api_core::fake::FakeServer`] (`fake.server.faults`,
//! `fake.server.log`). API writes do **not** emit webhooks by themselves (Productive would, for create/update
//! events the account subscribed to); call [`FakeProductive::emit`] to simulate one.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use productive_api::fake::FakeProductive;
//! let fake = FakeProductive::start().await?;
//! let pm = fake.seed_person("Pat", "Manager", "pm@agency.io");
//! let template = fake.seed_template_project("Onboarding template", &pm, &["Kick-off", "Handover"]);
//! let client = fake.client();
//! let found = client.find_person_by_email("pm@agency.io").await?;
//! assert_eq!(found.unwrap().typed_id(), pm);
//! # let _ = template; Ok(()) }
//! ```

// Internal helpers return a ready error `Response` as their `Err`; the size is irrelevant in a test server.
#![allow(clippy::result_large_err)]

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use api_core::{
    Clock, SystemClock, Token,
    fake::{FakeServer, WindowCounter},
};
use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::{
    Client,
    jsonapi::{ErrorDocument, ErrorObject, ErrorSource, FilterOp, MAX_PAGE_SIZE, MEDIA_TYPE, Resource},
    types::{
        BookingId, CompanyId, DealId, EventId, PersonId, ProjectId, ResourceType, ServiceId, ServiceTypeId, TaskId,
        TaskListId, TimeEntryId,
    },
};

/// Configuration of the fake.
#[derive(Debug, Clone)]
pub struct FakeConfig {
    /// The accepted `X-Auth-Token`.
    pub token: String,
    /// The accepted `X-Organization-Id`.
    pub organization_id: String,
    /// Requests per 10 s (Productive: 100); `None` disables.
    pub per_10s: Option<u32>,
    /// Requests per 30 min (Productive: 4,000); `None` disables.
    pub per_30min: Option<u32>,
    /// A `Retry-After` (seconds) to send with 429s (Productive documents none).
    pub retry_after: Option<u64>,
    /// Reads of a copied project before its copy finishes (0: finished at once): the copy runs as a background
    /// job, `duplication_status` stays `"in_progress"` until then.
    pub copy_polls: u32,
    /// What `POST /projects/copy` answers while the job runs (unverified in the notes, so tests vary it).
    pub copy_response: CopyResponse,
    /// The clock used for timestamps and webhook signatures.
    pub clock: Arc<dyn Clock>,
    /// Emit webhooks for API writes, as Productive does (`POST`/`PATCH` of tasks, deals/budgets, projects,
    /// companies, people → the matching create/update event), delivered in a background task after the response.
    /// Off by default so tests stay deterministic; the helpers ([`FakeProductive::complete_task`], …) always emit.
    pub emit_on_api_writes: bool,
}

impl Default for FakeConfig {
    fn default() -> Self {
        Self {
            token: "fake-productive-token".into(),
            organization_id: "4242".into(),
            per_10s: Some(100),
            per_30min: Some(4000),
            retry_after: None,
            copy_polls: 2,
            copy_response: CopyResponse::NewProject,
            clock: Arc::new(SystemClock),
            emit_on_api_writes: false,
        }
    }
}

/// The fake's answer to `POST /projects/copy`. api-notes/productive.md §4 "Project copy": the copy "enqueues a
/// background job" and "what the response returns while the job runs is **UNVERIFIED**".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CopyResponse {
    /// `201` with the new project (`duplication_status: "in_progress"` while the job runs).
    #[default]
    NewProject,
    /// `201` with the new project but no `duplication_status` attribute.
    NewProjectWithoutStatus,
    /// `202 Accepted` with no body: the new project must be found by name.
    Accepted,
}

/// One webhook delivery the fake attempted.
#[derive(Debug, Clone)]
pub struct DeliveryAttempt {
    /// The subscription.
    pub webhook_id: String,
    /// Where it went.
    pub target_url: String,
    /// The exact body sent.
    pub body: Bytes,
    /// The `Productive-Signature` header sent.
    pub signature: String,
    /// The receiver's status (`None` when the POST failed).
    pub status: Option<u16>,
}

#[derive(Debug, Clone)]
struct Record {
    kind: String,
    id: u64,
    attributes: Map<String, Value>,
    relationships: BTreeMap<String, Option<(String, String)>>,
}

#[derive(Debug, Default)]
struct Store {
    next_id: u64,
    records: BTreeMap<String, BTreeMap<u64, Record>>,
    copy_pending: HashMap<u64, (u32, Map<String, Value>, u64)>,
    deliveries: Vec<DeliveryAttempt>,
}

struct Inner {
    config: FakeConfig,
    store: Mutex<Store>,
    short: Option<WindowCounter>,
    long: Option<WindowCounter>,
    base: std::sync::OnceLock<String>,
    // built on first delivery: building a TLS-capable client costs ~0.4 s in debug builds
    http: std::sync::OnceLock<reqwest::Client>,
}

/// A running fake Productive. Stops when dropped.
pub struct FakeProductive {
    /// The underlying server: `base_url`, request `log`, `faults`.
    pub server: FakeServer,
    inner: Arc<Inner>,
    client: std::sync::OnceLock<Client>,
}

impl std::fmt::Debug for FakeProductive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeProductive").field("base_url", &self.base_url()).finish_non_exhaustive()
    }
}

/// `(type, relationship name, related type)` for every to-one relationship the fake knows.
const RELATIONSHIPS: &[(&str, &str, &str)] = &[
    ("people", "company", "companies"),
    ("projects", "company", "companies"),
    ("projects", "project_manager", "people"),
    ("projects", "workflow", "workflows"),
    ("deals", "company", "companies"),
    ("deals", "project", "projects"),
    ("deals", "responsible", "people"),
    ("deals", "deal_status", "deal_statuses"),
    ("services", "deal", "deals"),
    ("services", "service_type", "service_types"),
    ("services", "person", "people"),
    ("project_assignments", "person", "people"),
    ("project_assignments", "project", "projects"),
    ("service_assignments", "person", "people"),
    ("service_assignments", "service", "services"),
    ("tasks", "project", "projects"),
    ("tasks", "task_list", "task_lists"),
    ("tasks", "assignee", "people"),
    ("task_lists", "project", "projects"),
    ("comments", "task", "tasks"),
    // developer.productive.io/time_entries.html, withone "Create a Time Entry": person, service, optionally task
    ("time_entries", "person", "people"),
    ("time_entries", "service", "services"),
    ("time_entries", "task", "tasks"),
    // developer.productive.io/bookings.html, withone "Create a Booking": person; service (budget booking) or
    // event (absence; `events` is not served here, so any event id is accepted); optionally task
    ("bookings", "person", "people"),
    ("bookings", "service", "services"),
    ("bookings", "event", "events"),
    ("bookings", "task", "tasks"),
];

/// `(type, attribute filters)`; relationship filters (`<rel>_id`) and `id` are allowed everywhere.
const FILTERS: &[(&str, &[&str])] = &[
    ("companies", &["name", "company_code", "status"]),
    ("people", &["email", "first_name", "last_name", "status"]),
    ("projects", &["name", "template", "with_templates", "status"]),
    ("deals", &["name", "type", "budget"]),
    ("services", &["name"]),
    ("service_types", &["name"]),
    ("project_assignments", &[]),
    ("service_assignments", &[]),
    ("tasks", &["title", "status"]),
    ("task_lists", &["name"]),
    ("comments", &[]),
    ("webhooks", &["event_id", "state_id", "type_id"]),
    // time_entries.html filters (the ones modelled; `budget_id`, `status` … are not, and answer 400 here although
    // Productive accepts them)
    ("time_entries", &["date", "after", "before", "project_id"]),
    // community OpenAPI `/bookings` filters (the ones modelled)
    ("bookings", &["after", "before", "started_on", "ended_on", "draft", "project_id"]),
];

/// Required attributes or relationships on create.
const REQUIRED: &[(&str, &[&str])] = &[
    ("companies", &["name"]),
    ("people", &["first_name", "email"]),
    ("projects", &["name", "project_manager"]),
    // api-notes/productive.md §4 Deals and budgets: required on create per withone's copy of the docs (the deal
    // status is left out: an account-specific id the client has no default for)
    ("deals", &["name", "date", "currency", "deal_type_id", "probability", "company", "responsible"]),
    ("services", &["name", "deal", "service_type"]),
    ("service_types", &["name"]),
    ("project_assignments", &["person", "project"]),
    ("service_assignments", &["person", "service"]),
    ("tasks", &["title", "project"]),
    ("task_lists", &["name", "project"]),
    ("comments", &["body", "task"]),
    ("webhooks", &["event_id", "target_url"]),
    // withone "Create a Time Entry": date, person and service are required (`time` is optional)
    ("time_entries", &["date", "person", "service"]),
    // withone "Create a Booking": person, started_on, ended_on, booking_method_id (plus the method's amount and a
    // service or an event, checked in `validate_booking`)
    ("bookings", &["started_on", "ended_on", "booking_method_id", "person"]),
];

fn rels_of(kind: &str) -> impl Iterator<Item = (&'static str, &'static str)> + '_ {
    RELATIONSHIPS.iter().filter(move |(k, _, _)| *k == kind).map(|(_, n, t)| (*n, *t))
}

fn is_collection(kind: &str) -> bool {
    FILTERS.iter().any(|(k, _)| *k == kind)
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    // The delivery body Productive would send for `event` about record `kind`/`id`:
    // `{event, item_type, item_id (number), created, object: {data, included}}`, relationships with linkage and
    // the related records included. `None` when the record does not exist.
    fn webhook_body(&self, event: EventId, kind: &str, id: &str) -> Option<Vec<u8>> {
        let (name, item_type) = event_name(event);
        let st = self.lock();
        let rid: u64 = id.parse().ok()?;
        let r = st.get(kind, rid)?;
        let mut included = Vec::new();
        for target in r.relationships.values().flatten() {
            if let Some(rel) = target.1.parse().ok().and_then(|tid| st.get(&target.0, tid)) {
                included.push(rel.to_json(Some(&[])));
            }
        }
        let body = json!({
            "event": name,
            "item_type": item_type,
            "item_id": rid,
            "created": self.now(),
            "object": {"data": r.to_json(None), "included": included},
        });
        Some(body.to_string().into_bytes())
    }

    // POSTs the delivery for `event` about `kind`/`id` to every webhook subscribed to `event` (signed with its
    // `signature_token`, `Content-Type: application/json`, plus its `custom_headers`), and records the attempts.
    async fn emit(&self, event: EventId, kind: &str, id: &str) -> Vec<DeliveryAttempt> {
        let Some(body) = self.webhook_body(event, kind, id) else { return Vec::new() };
        let subs: Vec<Record> = self
            .lock()
            .all("webhooks")
            .into_iter()
            .filter(|w| w.attributes.get("event_id").and_then(Value::as_u64) == Some(event.value()))
            .cloned()
            .collect();
        let mut out = Vec::new();
        for w in subs {
            let token = Token::new(w.attributes.get("signature_token").and_then(Value::as_str).unwrap_or_default());
            let target = w.attributes.get("target_url").and_then(Value::as_str).unwrap_or_default().to_owned();
            let signature = crate::webhook::sign(&token, self.config.clock.unix_seconds(), &body);
            let mut req = self
                .http()
                .post(&target)
                .header("content-type", "application/json")
                .header(crate::webhook::SIGNATURE_HEADER, &signature)
                .body(body.clone());
            if let Some(Value::Object(h)) = w.attributes.get("custom_headers") {
                for (k, v) in h {
                    if let Some(v) = v.as_str() {
                        req = req.header(k.as_str(), v);
                    }
                }
            }
            let status = req.send().await.ok().map(|r| r.status().as_u16());
            let attempt = DeliveryAttempt {
                webhook_id: w.id.to_string(),
                target_url: target,
                body: Bytes::from(body.clone()),
                signature,
                status,
            };
            self.lock().deliveries.push(attempt.clone());
            out.push(attempt);
        }
        out
    }

    fn http(&self) -> &reqwest::Client {
        self.http.get_or_init(|| {
            reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_else(|_| reqwest::Client::new())
        })
    }

    fn now(&self) -> String {
        let t: chrono::DateTime<chrono::Utc> = self.config.clock.now().into();
        t.to_rfc3339_opts(chrono::SecondsFormat::Millis, false)
    }
}

impl Store {
    fn insert(
        &mut self,
        kind: &str,
        mut attributes: Map<String, Value>,
        rels: BTreeMap<String, Option<(String, String)>>,
        now: &str,
    ) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        attributes.entry("created_at").or_insert_with(|| Value::String(now.to_owned()));
        attributes.entry("updated_at").or_insert_with(|| Value::String(now.to_owned()));
        let mut relationships = BTreeMap::new();
        for (name, _) in rels_of(kind) {
            relationships.insert(name.to_owned(), None);
        }
        relationships.extend(rels);
        self.records
            .entry(kind.to_owned())
            .or_default()
            .insert(id, Record { kind: kind.to_owned(), id, attributes, relationships });
        id
    }

    fn get(&self, kind: &str, id: u64) -> Option<&Record> {
        self.records.get(kind).and_then(|m| m.get(&id))
    }

    fn get_mut(&mut self, kind: &str, id: u64) -> Option<&mut Record> {
        self.records.get_mut(kind).and_then(|m| m.get_mut(&id))
    }

    fn all(&self, kind: &str) -> Vec<&Record> {
        self.records.get(kind).map(|m| m.values().collect()).unwrap_or_default()
    }
}

fn rel(kind: &str, id: impl std::fmt::Display) -> Option<(String, String)> {
    Some((kind.to_owned(), id.to_string()))
}

impl Record {
    fn rel_id(&self, name: &str) -> Option<&str> {
        self.relationships.get(name).and_then(|r| r.as_ref()).map(|(_, id)| id.as_str())
    }

    /// JSON:API resource: linkage only for relationships in `linked` (`None`: all).
    fn to_json(&self, linked: Option<&[String]>) -> Value {
        let mut rels = Map::new();
        for (name, target) in &self.relationships {
            let show = linked.is_none_or(|l| l.iter().any(|n| n == name));
            let v = if show {
                match target {
                    Some((t, id)) => json!({"data": {"type": t, "id": id}}),
                    None => json!({"data": null}),
                }
            } else {
                json!({"meta": {"included": false}})
            };
            rels.insert(name.clone(), v);
        }
        json!({"id": self.id.to_string(), "type": self.kind, "attributes": self.attributes, "relationships": rels})
    }
}

fn error_response(status: u16, title: &str, detail: &str, pointer: Option<&str>) -> Response {
    let doc = ErrorDocument {
        errors: vec![ErrorObject {
            status: Some(status.to_string()),
            title: Some(title.to_owned()),
            detail: Some(detail.to_owned()),
            source: pointer.map(|p| ErrorSource { pointer: Some(p.to_owned()), parameter: None }),
            ..ErrorObject::default()
        }],
        meta: None,
    };
    // Productive sends `status` as a JSON number
    let mut v = serde_json::to_value(&doc).unwrap_or_default();
    v["errors"][0]["status"] = json!(status);
    jsonapi_response(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST), &v)
}

fn jsonapi_response(status: StatusCode, v: &Value) -> Response {
    let mut resp = (status, [(axum::http::header::CONTENT_TYPE, MEDIA_TYPE)], v.to_string()).into_response();
    // the written record's id, for background webhook emission (a fake-only header)
    if let Some(id) = v.pointer("/data/id").and_then(Value::as_str)
        && let Ok(h) = axum::http::HeaderValue::from_str(id)
    {
        resp.headers_mut().insert("x-fake-id", h);
    }
    resp
}

#[derive(Debug, Clone)]
struct Cond {
    group: Option<usize>,
    field: String,
    op: FilterOp,
    value: String,
}

struct Params {
    include: Vec<String>,
    conds: Vec<Cond>,
    group_op: String,
    page: u32,
    size: u32,
    sort: Option<String>,
}

fn parse_params(query: Option<&str>) -> Result<Params, Response> {
    let mut p =
        Params { include: Vec::new(), conds: Vec::new(), group_op: "and".into(), page: 1, size: 30, sort: None };
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        let (k, v) = (k.into_owned(), v.into_owned());
        match k.as_str() {
            "include" => p.include = v.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect(),
            "page[number]" => p.page = v.parse().unwrap_or(1).max(1),
            "page[size]" => p.size = v.parse::<u32>().unwrap_or(30).clamp(1, MAX_PAGE_SIZE),
            "sort" => p.sort = Some(v),
            "filter[$op]" => p.group_op = v,
            _ if k.starts_with("filter[") => {
                let parts: Vec<&str> = k
                    .trim_start_matches("filter")
                    .split(']')
                    .filter(|s| !s.is_empty())
                    .map(|s| s.trim_start_matches('['))
                    .collect();
                let (group, rest) = match parts.first().and_then(|s| s.parse::<usize>().ok()) {
                    Some(g) => (Some(g), &parts[1..]),
                    None => (None, &parts[..]),
                };
                let Some(field) = rest.first() else {
                    return Err(error_response(
                        400,
                        "Unsupported Filter",
                        &format!("Filter '{k}' is not supported on this endpoint"),
                        None,
                    ));
                };
                let op = rest.get(1).map_or(FilterOp::Eq, |o| FilterOp::parse(o));
                p.conds.push(Cond { group, field: (*field).to_owned(), op, value: v });
            }
            _ => {}
        }
    }
    Ok(p)
}

fn cmp_values(actual: &Value, op: &FilterOp, expected: &str) -> bool {
    let text = match actual {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let num = |s: &str| s.parse::<f64>().ok();
    let ord = match (num(&text), num(expected)) {
        (Some(a), Some(b)) => a.partial_cmp(&b),
        _ => Some(text.as_str().cmp(expected)),
    };
    let any_eq = || expected.split(',').any(|e| e.trim().eq_ignore_ascii_case(&text));
    match op {
        FilterOp::Eq | FilterOp::Other(_) => any_eq(),
        FilterOp::NotEq => !any_eq(),
        FilterOp::Contains => text.to_lowercase().contains(&expected.to_lowercase()),
        FilterOp::NotContain => !text.to_lowercase().contains(&expected.to_lowercase()),
        FilterOp::Gt => ord == Some(std::cmp::Ordering::Greater),
        FilterOp::GtEq => ord.is_some_and(|o| o != std::cmp::Ordering::Less),
        FilterOp::Lt => ord == Some(std::cmp::Ordering::Less),
        FilterOp::LtEq => ord.is_some_and(|o| o != std::cmp::Ordering::Greater),
    }
}

fn matches(st: &Store, r: &Record, c: &Cond) -> bool {
    let field = c.field.as_str();
    if field == "id" {
        return cmp_values(&Value::String(r.id.to_string()), &c.op, &c.value);
    }
    if let Some(rel) = field.strip_suffix("_id")
        && r.relationships.contains_key(rel)
    {
        let v = r.rel_id(rel).map_or(Value::Null, |s| Value::String(s.to_owned()));
        return cmp_values(&v, &c.op, &c.value);
    }
    match (r.kind.as_str(), field) {
        ("deals", "type") => {
            let is_budget = r.attributes.get("budget").and_then(Value::as_bool).unwrap_or(false);
            cmp_values(&json!(if is_budget { 2 } else { 1 }), &c.op, &c.value)
        }
        ("tasks", "status") => {
            let closed = r.attributes.get("closed").and_then(Value::as_bool).unwrap_or(false);
            cmp_values(&json!(if closed { 2 } else { 1 }), &c.op, &c.value)
        }
        ("projects" | "companies" | "people", "status") => {
            let archived = r.attributes.get("archived_at").is_some_and(|v| !v.is_null());
            cmp_values(&json!(if archived { 2 } else { 1 }), &c.op, &c.value)
        }
        ("projects", "with_templates") => true,
        // time entries and bookings belong to a project through their service's deal (time_entries.html
        // `project_id`; community OpenAPI `/bookings` `project_id`)
        ("time_entries" | "bookings", "project_id") => {
            let hop = |kind: &str, id: Option<&str>, rel: &str| {
                id.and_then(|i| i.parse::<u64>().ok())
                    .and_then(|i| st.get(kind, i))
                    .and_then(|x| x.rel_id(rel))
                    .map(str::to_owned)
            };
            let deal = hop("services", r.rel_id("service"), "deal");
            let project = hop("deals", deal.as_deref(), "project");
            cmp_values(&project.map_or(Value::Null, Value::String), &c.op, &c.value)
        }
        // time_entries.html `after`/`before` (dates); taken as inclusive bounds on `date` (**unverified**)
        ("time_entries", "after") => {
            cmp_values(r.attributes.get("date").unwrap_or(&Value::Null), &FilterOp::GtEq, &c.value)
        }
        ("time_entries", "before") => {
            cmp_values(r.attributes.get("date").unwrap_or(&Value::Null), &FilterOp::LtEq, &c.value)
        }
        // bookings `after`/`before`: the bookings that overlap the bound (ending on/after `after`, starting
        // on/before `before`; **unverified**)
        ("bookings", "after") => {
            cmp_values(r.attributes.get("ended_on").unwrap_or(&Value::Null), &FilterOp::GtEq, &c.value)
        }
        ("bookings", "before") => {
            cmp_values(r.attributes.get("started_on").unwrap_or(&Value::Null), &FilterOp::LtEq, &c.value)
        }
        _ => cmp_values(r.attributes.get(field).unwrap_or(&Value::Null), &c.op, &c.value),
    }
}

fn filter_allowed(kind: &str, field: &str) -> bool {
    field == "id"
        || field.strip_suffix("_id").is_some_and(|rel| rels_of(kind).any(|(n, _)| n == rel))
        || FILTERS.iter().any(|(k, fs)| *k == kind && fs.contains(&field))
}

impl FakeProductive {
    /// Starts a fake with the default configuration.
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

    /// Starts a fake with `config` on a given loopback address (e.g. a fixed port for a demo). State starts empty.
    ///
    /// # Errors
    /// When the socket cannot be bound.
    pub async fn start_on(addr: std::net::SocketAddr, config: FakeConfig) -> std::io::Result<Self> {
        let short = config.per_10s.map(|n| WindowCounter::new(n, Duration::from_secs(10)));
        let long = config.per_30min.map(|n| WindowCounter::new(n, Duration::from_secs(1800)));
        let inner = Arc::new(Inner {
            config,
            store: Mutex::new(Store { next_id: 1000, ..Store::default() }),
            short,
            long,
            base: std::sync::OnceLock::new(),
            http: std::sync::OnceLock::new(),
        });
        let router = Router::new().fallback(handle).with_state(inner.clone());
        let server = FakeServer::start_on(addr, router).await?;
        let _ = inner.base.set(server.base_url.as_str().trim_end_matches('/').to_owned());
        Ok(Self { server, inner, client: std::sync::OnceLock::new() })
    }

    /// The base URL to give a client: `http://127.0.0.1:<port>/api/v2`.
    #[must_use]
    pub fn base_url(&self) -> String {
        format!("{}api/v2", self.server.base_url)
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &FakeConfig {
        &self.inner.config
    }

    /// A [`Client`] for this fake (its token and organization, fast retries). Built once and cloned afterwards
    /// (clones share the connection pool and the rate limiter).
    ///
    /// # Panics
    /// Never in practice (the configuration is valid).
    #[must_use]
    pub fn client(&self) -> Client {
        self.client.get_or_init(|| self.client_builder().build().expect("valid fake client configuration")).clone()
    }

    /// A client that calls the fake's handler directly instead of over a socket, for tests in tokio's paused
    /// clock (a real socket and a paused clock do not mix). Requests it sends are not in `server.log`, and
    /// `server.faults` do not apply to them.
    #[must_use]
    pub fn in_process_client(&self) -> Client {
        self.client_builder()
            .transport(Arc::new(InProcess(self.inner.clone())))
            .build()
            .expect("valid fake client configuration")
    }

    /// A client builder preset for this fake (token, organization id, base URL, short retry delays).
    #[must_use]
    pub fn client_builder(&self) -> crate::ClientBuilder {
        Client::builder()
            .token(Token::new(self.inner.config.token.clone()))
            .organization_id(&self.inner.config.organization_id)
            .base_url(self.base_url())
            .retry_policy(api_core::RetryPolicy {
                base_delay: Duration::from_millis(10),
                max_delay: Duration::from_millis(200),
                ..api_core::RetryPolicy::default()
            })
    }

    fn insert(&self, kind: &str, attributes: Value, rels: BTreeMap<String, Option<(String, String)>>) -> u64 {
        let now = self.inner.now();
        let attrs = match attributes {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        self.inner.lock().insert(kind, attrs, rels, &now)
    }

    /// Seeds a person (a user).
    pub fn seed_person(&self, first_name: &str, last_name: &str, email: &str) -> PersonId {
        let id = self.insert(
            "people",
            json!({"first_name": first_name, "last_name": last_name, "email": email, "is_user": true,
                   "placeholder": false, "tag_list": []}),
            BTreeMap::new(),
        );
        PersonId(id.to_string())
    }

    /// Seeds a company.
    pub fn seed_company(&self, name: &str) -> CompanyId {
        let id =
            self.insert("companies", json!({"name": name, "tag_list": [], "default_currency": "EUR"}), BTreeMap::new());
        CompanyId(id.to_string())
    }

    /// Seeds a billable service to track time, bookings and expenses on: a company `"<name> client"`, a budget
    /// `"<name> budget"` (EUR) of that company and a service type `name` with a service `name` (unit hour, time and
    /// materials) on the budget. Returns the budget and the service.
    pub fn seed_service(&self, name: &str) -> (DealId, ServiceId) {
        let company = self.seed_company(&format!("{name} client"));
        let service_type = self.seed_service_type(name);
        let mut deal_rels = BTreeMap::new();
        deal_rels.insert("company".to_owned(), Some(("companies".to_owned(), company.0.clone())));
        let deal = self.insert(
            "deals",
            json!({"name": format!("{name} budget"), "budget": true, "currency": "EUR", "deal_type_id": 2,
                   "probability": 100, "budget_total": "0.0"}),
            deal_rels,
        );
        let mut rels = BTreeMap::new();
        rels.insert("deal".to_owned(), Some(("deals".to_owned(), deal.to_string())));
        rels.insert("service_type".to_owned(), Some(("service_types".to_owned(), service_type.0)));
        let service = self.insert("services", json!({"name": name, "unit_id": 1, "billing_type_id": 2}), rels);
        (DealId(deal.to_string()), ServiceId(service.to_string()))
    }

    /// Seeds a time entry of `minutes` by `person` on `service` on `date` (`YYYY-MM-DD`).
    pub fn seed_time_entry(&self, person: &PersonId, service: &ServiceId, date: &str, minutes: u64) -> TimeEntryId {
        let mut rels = BTreeMap::new();
        rels.insert("person".to_owned(), Some(("people".to_owned(), person.0.clone())));
        rels.insert("service".to_owned(), Some(("services".to_owned(), service.0.clone())));
        let id = self.insert(
            "time_entries",
            json!({"date": date, "time": minutes, "billable_time": minutes, "approved": false, "invoiced": false}),
            rels,
        );
        TimeEntryId(id.to_string())
    }

    /// Seeds a confirmed booking of `minutes_per_day` (booking method 1) for `person` on `service` from
    /// `started_on` to `ended_on` (`YYYY-MM-DD`, inclusive).
    pub fn seed_booking(
        &self,
        person: &PersonId,
        service: &ServiceId,
        started_on: &str,
        ended_on: &str,
        minutes_per_day: u64,
    ) -> BookingId {
        let mut rels = BTreeMap::new();
        rels.insert("person".to_owned(), Some(("people".to_owned(), person.0.clone())));
        rels.insert("service".to_owned(), Some(("services".to_owned(), service.0.clone())));
        let id = self.insert(
            "bookings",
            json!({"started_on": started_on, "ended_on": ended_on, "booking_method_id": 1, "time": minutes_per_day,
                   "draft": false}),
            rels,
        );
        BookingId(id.to_string())
    }

    /// Seeds a service type.
    pub fn seed_service_type(&self, name: &str) -> ServiceTypeId {
        ServiceTypeId(self.insert("service_types", json!({"name": name}), BTreeMap::new()).to_string())
    }

    /// Seeds a template project managed by `manager`, with one task list ("Tasks") holding an open task per
    /// title, and `manager` as a member.
    pub fn seed_template_project(&self, name: &str, manager: &PersonId, task_titles: &[&str]) -> ProjectId {
        let pid = self.insert(
            "projects",
            json!({"name": name, "project_type_id": 2, "template": true, "duplication_status": "idle"}),
            BTreeMap::from([("project_manager".to_owned(), rel("people", manager))]),
        );
        self.insert(
            "project_assignments",
            json!({}),
            BTreeMap::from([("person".into(), rel("people", manager)), ("project".into(), rel("projects", pid))]),
        );
        let list = self.seed_task_list(&ProjectId(pid.to_string()), "Tasks");
        for t in task_titles {
            self.seed_task(&ProjectId(pid.to_string()), Some(&list), t);
        }
        ProjectId(pid.to_string())
    }

    /// Seeds a task list.
    pub fn seed_task_list(&self, project: &ProjectId, name: &str) -> TaskListId {
        TaskListId(
            self.insert(
                "task_lists",
                json!({"name": name}),
                BTreeMap::from([("project".into(), rel("projects", project))]),
            )
            .to_string(),
        )
    }

    /// Seeds an open task.
    pub fn seed_task(&self, project: &ProjectId, list: Option<&TaskListId>, title: &str) -> TaskId {
        let mut rels = BTreeMap::from([("project".to_owned(), rel("projects", project))]);
        if let Some(l) = list {
            rels.insert("task_list".into(), rel("task_lists", l));
        }
        TaskId(self.insert("tasks", json!({"title": title, "closed": false, "type_id": 1}), rels).to_string())
    }

    /// Every record of a type, as untyped resources with all relationship linkage.
    #[must_use]
    pub fn records(&self, kind: &str) -> Vec<Resource<Value>> {
        self.inner.lock().all(kind).into_iter().filter_map(|r| serde_json::from_value(r.to_json(None)).ok()).collect()
    }

    /// Every record of `A`'s type, typed, with all relationship linkage (e.g.
    /// `fake.all::<ProjectAttributes>()`).
    #[must_use]
    pub fn all<A: ResourceType + DeserializeOwned>(&self) -> Vec<Resource<A>> {
        self.records(A::TYPE).iter().filter_map(|r| r.decode::<A>().ok()).collect()
    }

    /// One record of `A`'s type, typed.
    #[must_use]
    pub fn get<A: ResourceType + DeserializeOwned>(&self, id: &A::Id) -> Option<Resource<A>> {
        let id: u64 = id.to_string().parse().ok()?;
        let v = self.inner.lock().get(A::TYPE, id)?.to_json(None);
        serde_json::from_value::<Resource<Value>>(v).ok()?.decode::<A>().ok()
    }

    /// Sets attributes of a record (no webhook).
    pub fn set_attributes(&self, kind: &str, id: &str, attributes: &Map<String, Value>) -> bool {
        let now = self.inner.now();
        let Ok(id) = id.parse::<u64>() else { return false };
        let mut st = self.inner.lock();
        let Some(r) = st.get_mut(kind, id) else { return false };
        for (k, v) in attributes {
            r.attributes.insert(k.clone(), v.clone());
        }
        r.attributes.insert("updated_at".into(), Value::String(now));
        true
    }

    /// Closes a task (`closed: true`, `closed_at`) and emits `update_task` (event 24) to subscribed webhooks.
    pub async fn complete_task(&self, id: &TaskId) -> Vec<DeliveryAttempt> {
        let now = self.inner.now();
        let mut m = Map::new();
        m.insert("closed".into(), Value::Bool(true));
        m.insert("closed_at".into(), Value::String(now));
        if !self.set_attributes("tasks", id.as_str(), &m) {
            return Vec::new();
        }
        self.emit(EventId::TaskUpdated, "tasks", id.as_str()).await
    }

    /// Changes a deal/budget's attributes and emits `update_budget` (16) for a budget or `update_deal` (12).
    pub async fn update_deal(&self, id: &DealId, attributes: &Map<String, Value>) -> Vec<DeliveryAttempt> {
        if !self.set_attributes("deals", id.as_str(), attributes) {
            return Vec::new();
        }
        let is_budget = self.get::<crate::resources::deals::DealAttributes>(id).is_some_and(|d| d.is_budget());
        let event = if is_budget { EventId::BudgetUpdated } else { EventId::DealUpdated };
        self.emit(event, "deals", id.as_str()).await
    }

    /// The delivery body Productive would send for `event` about record `kind`/`id`:
    /// `{event, item_type, item_id (number), created, object: {data, included}}`, relationships with linkage and
    /// the related records included. `None` when the record does not exist.
    #[must_use]
    pub fn webhook_body(&self, event: EventId, kind: &str, id: &str) -> Option<Vec<u8>> {
        self.inner.webhook_body(event, kind, id)
    }

    /// POSTs the delivery for `event` about `kind`/`id` to every webhook subscribed to `event` (signed with its
    /// `signature_token`, `Content-Type: application/json`, plus its `custom_headers`), and records the attempts.
    pub async fn emit(&self, event: EventId, kind: &str, id: &str) -> Vec<DeliveryAttempt> {
        self.inner.emit(event, kind, id).await
    }

    /// Every delivery attempted so far.
    #[must_use]
    pub fn deliveries(&self) -> Vec<DeliveryAttempt> {
        self.inner.lock().deliveries.clone()
    }

    /// The signature token of a webhook subscription.
    #[must_use]
    pub fn webhook_token(&self, id: &str) -> Option<Token> {
        let id: u64 = id.parse().ok()?;
        let st = self.inner.lock();
        st.get("webhooks", id)?.attributes.get("signature_token").and_then(Value::as_str).map(Token::new)
    }
}

/// `(event, item_type)` strings for an event id. Task names are documented (sp fixture); the others follow the
/// same `<action>_<entity>` pattern (**unverified**).
fn event_name(e: EventId) -> (String, &'static str) {
    let (action, entity, item_type) = match e {
        EventId::TaskCreated => ("create", "task", "task"),
        EventId::TaskUpdated => ("update", "task", "task"),
        EventId::TaskDeleted => ("delete", "task", "task"),
        EventId::DealCreated => ("create", "deal", "deal"),
        EventId::DealUpdated => ("update", "deal", "deal"),
        EventId::DealDeleted => ("delete", "deal", "deal"),
        EventId::BudgetCreated => ("create", "budget", "deal"),
        EventId::BudgetUpdated => ("update", "budget", "deal"),
        EventId::BudgetDeleted => ("delete", "budget", "deal"),
        EventId::ProjectCreated => ("create", "project", "project"),
        EventId::ProjectUpdated => ("update", "project", "project"),
        EventId::ProjectDeleted => ("delete", "project", "project"),
        EventId::CompanyCreated => ("create", "company", "company"),
        EventId::CompanyUpdated => ("update", "company", "company"),
        EventId::PersonCreated => ("create", "person", "person"),
        EventId::PersonUpdated => ("update", "person", "person"),
        // names for time entries and bookings follow the documented `create_task` pattern (**unverified**)
        EventId::TimeEntryCreated => ("create", "time_entry", "time_entry"),
        EventId::TimeEntryUpdated => ("update", "time_entry", "time_entry"),
        EventId::TimeEntryDeleted => ("delete", "time_entry", "time_entry"),
        EventId::BookingCreated => ("create", "booking", "booking"),
        EventId::BookingUpdated => ("update", "booking", "booking"),
        EventId::BookingDeleted => ("delete", "booking", "booking"),
        _ => ("event", "item", "item"),
    };
    (format!("{action}_{entity}"), item_type)
}

async fn handle(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    if !Token::new(inner.config.token.clone()).ct_eq(&header("x-auth-token")) {
        return error_response(401, "Unauthorized", "Invalid or missing X-Auth-Token", None);
    }
    if header("x-organization-id") != inner.config.organization_id {
        return error_response(403, "Forbidden", "Invalid or missing X-Organization-Id", None);
    }
    let key = format!("{}:{}", inner.config.organization_id, inner.config.token);
    let short_ok = inner.short.as_ref().is_none_or(|c| c.admit(&key));
    let long_ok = inner.long.as_ref().is_none_or(|c| c.admit(&key));
    if !(short_ok && long_ok) {
        let mut resp = error_response(429, "Too Many Requests", "Rate limit exceeded", None);
        if let Some(s) = inner.config.retry_after
            && let Ok(v) = s.to_string().parse()
        {
            resp.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
        }
        return resp;
    }
    if (method == Method::POST || method == Method::PATCH) && !header("content-type").starts_with(MEDIA_TYPE) {
        return error_response(415, "Unsupported Media Type", "Content-Type must be application/vnd.api+json", None);
    }
    let path = uri.path().trim_end_matches('/');
    let Some(rest) = path.strip_prefix("/api/v2/") else {
        return error_response(404, "Not Found", "Unknown path", None);
    };
    let segs: Vec<&str> = rest.split('/').collect();
    let params = match parse_params(uri.query()) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let resp = match (method.clone(), segs.as_slice()) {
        (Method::POST, ["projects", "copy"]) => copy_project(&inner, &body),
        (_, [kind, ..]) if !is_collection(kind) => {
            error_response(404, "Not Found", &format!("Unknown resource {kind}"), None)
        }
        (Method::GET, [kind]) => list(&inner, kind, &params),
        (Method::POST, [kind]) => create(&inner, kind, &body),
        (Method::GET, [kind, id]) => show(&inner, kind, id, &params),
        (Method::PATCH, [kind, id]) => update(&inner, kind, id, &body),
        (Method::DELETE, [kind, id]) => delete(&inner, kind, id),
        (Method::PATCH, [kind, id, action]) => member_action(&inner, kind, id, action, &body),
        _ => error_response(405, "Method Not Allowed", &format!("{method} {path}"), None),
    };
    if inner.config.emit_on_api_writes
        && resp.status().is_success()
        && (method == Method::POST || method == Method::PATCH)
    {
        schedule_emission(&inner, &method, &segs, &resp);
    }
    resp
}

/// A transport that hands each request to [`handle`] in the same task (no socket).
struct InProcess(Arc<Inner>);

impl std::fmt::Debug for InProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InProcess")
    }
}

impl api_core::Transport for InProcess {
    fn send(
        &self,
        url: url::Url,
        request: api_core::Request,
    ) -> futures::future::BoxFuture<'_, Result<api_core::RawResponse, api_core::TransportError>> {
        Box::pin(async move {
            let build = |m: String| api_core::TransportError {
                kind: api_core::TransportErrorKind::Build,
                may_have_been_sent: false,
                message: m,
            };
            let target = match url.query() {
                Some(q) => format!("{}?{q}", url.path()),
                None => url.path().to_owned(),
            };
            let uri: Uri = target.parse().map_err(|e| build(format!("{target}: {e}")))?;
            let mut headers = request.headers.clone();
            if let Some(ct) = request.body.content_type()
                && !headers.contains_key(axum::http::header::CONTENT_TYPE)
            {
                headers.insert(axum::http::header::CONTENT_TYPE, ct.parse().map_err(|_| build(ct.to_owned()))?);
            }
            let resp = handle(State(self.0.clone()), request.method.clone(), uri, headers, request.body.bytes()).await;
            let status = resp.status();
            let headers = resp.headers().clone();
            let body =
                axum::body::to_bytes(resp.into_body(), usize::MAX).await.map_err(|e| api_core::TransportError {
                    kind: api_core::TransportErrorKind::Io,
                    may_have_been_sent: true,
                    message: e.to_string(),
                })?;
            Ok(api_core::RawResponse { status, headers, body })
        })
    }
}

/// The event an API write would fire, and the written record, delivered in the background.
fn schedule_emission(inner: &Arc<Inner>, method: &Method, segs: &[&str], resp: &Response) {
    let created = *method == Method::POST;
    let (kind, id) = match segs {
        ["projects", "copy"] => ("projects".to_owned(), resp.headers().get("x-fake-id")),
        [kind] | [kind, _] => ((*kind).to_owned(), resp.headers().get("x-fake-id")),
        _ => return,
    };
    let Some(id) = id.and_then(|v| v.to_str().ok()).map(str::to_owned) else { return };
    let is_budget = || {
        id.parse()
            .ok()
            .and_then(|i| inner.lock().get("deals", i).map(|r| r.attributes.get("budget") == Some(&Value::Bool(true))))
            == Some(true)
    };
    let event = match (kind.as_str(), created) {
        ("tasks", true) => EventId::TaskCreated,
        ("tasks", false) => EventId::TaskUpdated,
        ("deals", true) if is_budget() => EventId::BudgetCreated,
        ("deals", false) if is_budget() => EventId::BudgetUpdated,
        ("deals", true) => EventId::DealCreated,
        ("deals", false) => EventId::DealUpdated,
        ("projects", true) => EventId::ProjectCreated,
        ("projects", false) => EventId::ProjectUpdated,
        ("companies", true) => EventId::CompanyCreated,
        ("companies", false) => EventId::CompanyUpdated,
        ("people", true) => EventId::PersonCreated,
        ("people", false) => EventId::PersonUpdated,
        ("time_entries", true) => EventId::TimeEntryCreated,
        ("time_entries", false) => EventId::TimeEntryUpdated,
        ("bookings", true) => EventId::BookingCreated,
        ("bookings", false) => EventId::BookingUpdated,
        _ => return,
    };
    let inner = inner.clone();
    tokio::spawn(async move {
        inner.emit(event, &kind, &id).await;
    });
}

fn check_includes(kind: &str, include: &[String]) -> Result<(), Response> {
    for inc in include {
        let first = inc.split('.').next().unwrap_or_default();
        if !rels_of(kind).any(|(n, _)| n == first) {
            return Err(error_response(
                400,
                "Unsupported Include",
                &format!("Include '{inc}' is not supported on this endpoint"),
                None,
            ));
        }
    }
    Ok(())
}

fn collect_included(st: &Store, r: &Record, include: &[String], out: &mut Vec<Value>, seen: &mut Vec<(String, u64)>) {
    for inc in include {
        let mut parts = inc.splitn(2, '.');
        let first = parts.next().unwrap_or_default();
        let nested: Vec<String> = parts.next().map(|s| vec![s.to_owned()]).unwrap_or_default();
        if let Some(Some((t, id))) = r.relationships.get(first)
            && let Some(target) = id.parse().ok().and_then(|id| st.get(t, id))
        {
            if !seen.contains(&(t.clone(), target.id)) {
                seen.push((t.clone(), target.id));
                let linked: Vec<String> =
                    nested.iter().map(|n| n.split('.').next().unwrap_or_default().to_owned()).collect();
                out.push(target.to_json(Some(&linked)));
            }
            collect_included(st, target, &nested, out, seen);
        }
    }
}

fn list(inner: &Inner, kind: &str, p: &Params) -> Response {
    if let Err(r) = check_includes(kind, &p.include) {
        return r;
    }
    for c in &p.conds {
        if !filter_allowed(kind, &c.field) {
            return error_response(
                400,
                "Unsupported Filter",
                &format!("Filter '{}' is not supported on this endpoint", c.field),
                None,
            );
        }
    }
    let st = inner.lock();
    let templates_requested = p.conds.iter().any(|c| c.field == "template" || c.field == "with_templates");
    let mut rows: Vec<&Record> = st
        .all(kind)
        .into_iter()
        .filter(|r| {
            if kind == "projects"
                && !templates_requested
                && r.attributes.get("template").and_then(Value::as_bool) == Some(true)
            {
                return false;
            }
            let base = p.conds.iter().filter(|c| c.group.is_none()).all(|c| matches(&st, r, c));
            let grouped: Vec<&Cond> = p.conds.iter().filter(|c| c.group.is_some()).collect();
            let group_ok = if grouped.is_empty() {
                true
            } else if p.group_op == "or" {
                grouped.iter().any(|c| matches(&st, r, c))
            } else {
                grouped.iter().all(|c| matches(&st, r, c))
            };
            base && group_ok
        })
        .collect();
    if let Some(sort) = &p.sort {
        let (desc, field) = sort.strip_prefix('-').map_or((false, sort.as_str()), |f| (true, f));
        rows.sort_by(|a, b| {
            let av = a.attributes.get(field).map(ToString::to_string).unwrap_or_default();
            let bv = b.attributes.get(field).map(ToString::to_string).unwrap_or_default();
            if desc { bv.cmp(&av) } else { av.cmp(&bv) }
        });
    }
    let total = rows.len();
    let size = p.size as usize;
    let total_pages = total.div_ceil(size);
    let start = (p.page as usize - 1) * size;
    let page_rows: Vec<&Record> = rows.into_iter().skip(start).take(size).collect();
    let mut included = Vec::new();
    let mut seen = Vec::new();
    let linked: Vec<String> = p.include.iter().map(|i| i.split('.').next().unwrap_or_default().to_owned()).collect();
    let data: Vec<Value> = page_rows
        .iter()
        .map(|r| {
            collect_included(&st, r, &p.include, &mut included, &mut seen);
            r.to_json(Some(&linked))
        })
        .collect();
    let link = |n: usize| {
        format!(
            "{}/api/v2/{kind}?page%5Bnumber%5D={n}&page%5Bsize%5D={size}",
            inner.base.get().map_or("", String::as_str)
        )
    };
    let mut doc = json!({
        "data": data,
        "links": {"first": link(1), "last": link(total_pages.max(1))},
        "meta": {"current_page": p.page, "total_pages": total_pages, "total_count": total, "page_size": size,
                 "max_page_size": MAX_PAGE_SIZE},
    });
    if !p.include.is_empty() {
        doc["included"] = Value::Array(included);
    }
    jsonapi_response(StatusCode::OK, &doc)
}

fn show_record(inner: &Inner, st: &Store, r: &Record, include: &[String], status: StatusCode) -> Response {
    let _ = inner;
    let linked: Vec<String> = include.iter().map(|i| i.split('.').next().unwrap_or_default().to_owned()).collect();
    let mut included = Vec::new();
    collect_included(st, r, include, &mut included, &mut Vec::new());
    let mut doc = json!({"data": r.to_json(Some(&linked)), "meta": {}});
    if !include.is_empty() {
        doc["included"] = Value::Array(included);
    }
    jsonapi_response(status, &doc)
}

fn not_found(kind: &str, id: &str) -> Response {
    error_response(404, "Record Not Found", &format!("{kind} {id} not found"), None)
}

fn show(inner: &Inner, kind: &str, id: &str, p: &Params) -> Response {
    if let Err(r) = check_includes(kind, &p.include) {
        return r;
    }
    let Ok(rid) = id.parse::<u64>() else { return not_found(kind, id) };
    let mut st = inner.lock();
    if kind == "projects" {
        finish_copy_poll(inner, &mut st, rid);
    }
    match st.get(kind, rid) {
        Some(r) => show_record(inner, &st, r, &p.include, StatusCode::OK),
        None => not_found(kind, id),
    }
}

/// Parses a write document into (attributes, relationships), moving `<rel>_id` attributes into relationships.
#[allow(clippy::type_complexity)]
fn parse_write(
    st: &Store,
    kind: &str,
    body: &[u8],
) -> Result<(Map<String, Value>, BTreeMap<String, Option<(String, String)>>), Response> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| error_response(400, "Invalid Document", &format!("body is not JSON: {e}"), None))?;
    let data = v.get("data").ok_or_else(|| error_response(400, "Invalid Document", "missing data", Some("/data")))?;
    if let Some(t) = data.get("type").and_then(Value::as_str)
        && t != kind
    {
        return Err(error_response(
            409,
            "Type Mismatch",
            &format!("type {t} does not match {kind}"),
            Some("/data/type"),
        ));
    }
    let mut attrs = data.get("attributes").and_then(Value::as_object).cloned().unwrap_or_default();
    let mut rels = BTreeMap::new();
    if let Some(Value::Object(rs)) = data.get("relationships") {
        for (name, r) in rs {
            let target = match r.get("data") {
                Some(Value::Object(o)) => Some((
                    o.get("type").and_then(Value::as_str).unwrap_or_default().to_owned(),
                    match o.get("id") {
                        Some(Value::String(s)) => s.clone(),
                        Some(other) => other.to_string(),
                        None => String::new(),
                    },
                )),
                _ => None,
            };
            rels.insert(name.clone(), target);
        }
    }
    for (name, t) in rels_of(kind) {
        let key = format!("{name}_id");
        if let Some(v) = attrs.remove(&key)
            && !v.is_null()
        {
            let id = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
            rels.entry(name.to_owned()).or_insert(Some((t.to_owned(), id)));
        }
    }
    for (name, target) in &rels {
        if let Some((t, id)) = target
            && is_collection(t)
            && id.parse::<u64>().ok().and_then(|i| st.get(t, i)).is_none()
        {
            return Err(error_response(
                422,
                "Invalid Relationship",
                &format!("{name}: {t} {id} does not exist"),
                Some(&format!("/data/relationships/{name}")),
            ));
        }
    }
    Ok((attrs, rels))
}

fn create(inner: &Inner, kind: &str, body: &[u8]) -> Response {
    let now = inner.now();
    let mut st = inner.lock();
    let (mut attrs, rels) = match parse_write(&st, kind, body) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let required = REQUIRED.iter().find(|(k, _)| *k == kind).map(|(_, r)| *r).unwrap_or_default();
    for f in required {
        let is_rel = rels_of(kind).any(|(n, _)| n == *f);
        let present = if is_rel {
            rels.get(*f).is_some_and(Option::is_some)
        } else {
            attrs.get(*f).is_some_and(|v| !v.is_null() && v != "")
        };
        if !present {
            let pointer = if is_rel { format!("/data/relationships/{f}") } else { format!("/data/attributes/{f}") };
            return error_response(422, "Invalid Attribute", &format!("{f} can't be blank"), Some(&pointer));
        }
    }
    match kind {
        "project_assignments" | "service_assignments" => {
            let other = if kind == "project_assignments" { "project" } else { "service" };
            let dup = st.all(kind).iter().any(|r| {
                r.rel_id("person") == rels.get("person").and_then(|x| x.as_ref()).map(|x| x.1.as_str())
                    && r.rel_id(other) == rels.get(other).and_then(|x| x.as_ref()).map(|x| x.1.as_str())
            });
            if dup {
                return error_response(409, "Conflict", "Person has already been assigned", None);
            }
        }
        "deals" => {
            attrs.entry("budget").or_insert(Value::Bool(false));
            attrs.entry("budget_total").or_insert(json!("0.0"));
            let n = st.all("deals").len() + 1;
            attrs.entry("number").or_insert(json!(n.to_string()));
        }
        "projects" => {
            attrs.entry("duplication_status").or_insert(json!("idle"));
            attrs.entry("template").or_insert(Value::Bool(false));
            let n = st.all("projects").len() + 1;
            attrs.entry("project_number").or_insert(json!(n.to_string()));
        }
        "tasks" => {
            attrs.entry("closed").or_insert(Value::Bool(false));
        }
        "companies" => {
            attrs.entry("tag_list").or_insert(json!([]));
        }
        "bookings" => {
            if let Err(r) = validate_booking(&attrs, &rels) {
                return r;
            }
            attrs.entry("draft").or_insert(Value::Bool(false));
        }
        "time_entries" => {
            if let Some(t) = attrs.get("time")
                && !t.is_u64()
            {
                return error_response(
                    422,
                    "Invalid Attribute",
                    "time must be a whole number of minutes",
                    Some("/data/attributes/time"),
                );
            }
            let time = attrs.get("time").cloned().unwrap_or(json!(0));
            attrs.insert("time".into(), time.clone());
            attrs.entry("billable_time").or_insert(time);
            attrs.entry("approved").or_insert(Value::Bool(false));
            attrs.entry("invoiced").or_insert(Value::Bool(false));
        }
        "webhooks" => {
            let n = st.next_id + 1;
            attrs.insert(
                "signature_token".into(),
                json!(format!("fake-signature-token-{n}-{}", inner.config.clock.unix_seconds())),
            );
            attrs.entry("state_id").or_insert(json!(1));
            attrs.entry("type_id").or_insert(json!(1));
            attrs.entry("retry_attempts").or_insert(json!(0));
            attrs.entry("deactivated_at").or_insert(Value::Null);
        }
        _ => {}
    }
    let id = st.insert(kind, attrs, rels, &now);
    if kind == "services" {
        recompute_budget_total(&mut st, id);
    }
    let r = st.get(kind, id).cloned().expect("just inserted");
    // write responses carry linkage for the relationships that were written
    let linked: Vec<String> = r.relationships.iter().filter(|(_, v)| v.is_some()).map(|(k, _)| k.clone()).collect();
    jsonapi_response(StatusCode::CREATED, &json!({"data": r.to_json(Some(&linked)), "meta": {}}))
}

/// A booking's method-specific rules (developer.productive.io/bookings.html; withone "Create a Booking"):
/// `booking_method_id` 1 needs `time`, 2 `percentage`, 3 `total_time`; a service (budget booking) or an event
/// (absence), not both; `ended_on` not before `started_on` (implied by the date range). Each failure is a 422 with
/// `source.pointer`.
fn validate_booking(
    attrs: &Map<String, Value>,
    rels: &BTreeMap<String, Option<(String, String)>>,
) -> Result<(), Response> {
    let method = attrs.get("booking_method_id").and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()));
    let needed = match method {
        Some(1) => "time",
        Some(2) => "percentage",
        Some(3) => "total_time",
        _ => {
            return Err(error_response(
                422,
                "Invalid Attribute",
                "booking_method_id must be 1, 2 or 3",
                Some("/data/attributes/booking_method_id"),
            ));
        }
    };
    if attrs.get(needed).is_none_or(Value::is_null) {
        return Err(error_response(
            422,
            "Invalid Attribute",
            &format!("{needed} can't be blank for booking method {}", method.unwrap_or_default()),
            Some(&format!("/data/attributes/{needed}")),
        ));
    }
    let has = |n: &str| rels.get(n).is_some_and(Option::is_some);
    if has("service") == has("event") {
        return Err(error_response(
            422,
            "Invalid Relationship",
            "a booking needs either a service or an event",
            Some("/data/relationships/service"),
        ));
    }
    let date = |k: &str| attrs.get(k).and_then(Value::as_str).and_then(|s| s.parse::<chrono::NaiveDate>().ok());
    match (date("started_on"), date("ended_on")) {
        (Some(a), Some(b)) if b >= a => Ok(()),
        (Some(_), Some(_)) => Err(error_response(
            422,
            "Invalid Attribute",
            "ended_on must not be before started_on",
            Some("/data/attributes/ended_on"),
        )),
        _ => Err(error_response(
            422,
            "Invalid Attribute",
            "started_on and ended_on must be dates (YYYY-MM-DD)",
            Some("/data/attributes/started_on"),
        )),
    }
}

/// A deal's `budget_total` is derived from its services: Σ price × quantity, as a decimal string (Productive's
/// money units are unverified; the fake does not scale).
fn recompute_budget_total(st: &mut Store, service: u64) {
    let Some(deal) = st.get("services", service).and_then(|s| s.rel_id("deal")).and_then(|d| d.parse::<u64>().ok())
    else {
        return;
    };
    let num = |v: Option<&Value>| match v {
        Some(Value::String(s)) => s.parse::<f64>().unwrap_or(0.0),
        Some(Value::Number(n)) => n.as_f64().unwrap_or(0.0),
        _ => 0.0,
    };
    let dealid = deal.to_string();
    let total: f64 = st
        .all("services")
        .iter()
        .filter(|s| s.rel_id("deal") == Some(dealid.as_str()))
        .map(|s| num(s.attributes.get("price")) * s.attributes.get("quantity").map_or(1.0, |q| num(Some(q))))
        .sum();
    if let Some(d) = st.get_mut("deals", deal) {
        d.attributes.insert("budget_total".into(), json!(format!("{total:.1}")));
    }
}

fn update(inner: &Inner, kind: &str, id: &str, body: &[u8]) -> Response {
    let now = inner.now();
    let Ok(rid) = id.parse::<u64>() else { return not_found(kind, id) };
    let mut st = inner.lock();
    if st.get(kind, rid).is_none() {
        return not_found(kind, id);
    }
    let (attrs, rels) = match parse_write(&st, kind, body) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if kind == "bookings" {
        // the merged booking must still satisfy the create rules (method amount, service xor event, dates)
        let current = st.get(kind, rid).expect("checked");
        let mut merged_attrs = current.attributes.clone();
        merged_attrs.extend(attrs.clone());
        let mut merged_rels = current.relationships.clone();
        merged_rels.extend(rels.clone());
        if let Err(r) = validate_booking(&merged_attrs, &merged_rels) {
            return r;
        }
    }
    let r = st.get_mut(kind, rid).expect("checked");
    for (k, v) in attrs {
        r.attributes.insert(k, v);
    }
    r.attributes.insert("updated_at".into(), Value::String(now));
    for (k, v) in rels {
        r.relationships.insert(k, v);
    }
    let r = r.clone();
    show_record(inner, &st, &r, &[], StatusCode::OK)
}

/// `PATCH /{companies,projects,people}/{id}/archive|restore` (sets / clears `archived_at`) and
/// `PATCH /deals/{id}/close|open` (sets `closed_at` and, when sent, `delivered_on` / clears `closed_at`) and
/// `PATCH /time_entries/{id}/approve|unapprove|reject` (`approved`, `approved_at`, `rejected`, `rejected_reason`,
/// `rejected_at` of the documented time entry sample), the member actions of api-notes productive.md §4 (smeta),
/// P-old faq.html and the community OpenAPI. Anything else is a 404 like an unknown path.
fn member_action(inner: &Inner, kind: &str, id: &str, action: &str, body: &[u8]) -> Response {
    let known = matches!(
        (kind, action),
        ("companies" | "projects" | "people", "archive" | "restore")
            | ("deals", "close" | "open")
            | ("time_entries", "approve" | "unapprove" | "reject")
    );
    if !known {
        return error_response(404, "Not Found", &format!("Unknown action {kind}/{{id}}/{action}"), None);
    }
    let now = inner.now();
    let Ok(rid) = id.parse::<u64>() else { return not_found(kind, id) };
    let mut st = inner.lock();
    if st.get(kind, rid).is_none() {
        return not_found(kind, id);
    }
    // the body, when there is one, is a JSON:API document of this type (`delivered_on` on close)
    let attrs = if body.is_empty() {
        Map::new()
    } else {
        match parse_write(&st, kind, body) {
            Ok((a, _)) => a,
            Err(r) => return r,
        }
    };
    let r = st.get_mut(kind, rid).expect("checked");
    match action {
        "archive" => r.attributes.insert("archived_at".into(), Value::String(now.clone())),
        "restore" => r.attributes.insert("archived_at".into(), Value::Null),
        "close" => r.attributes.insert("closed_at".into(), Value::String(now.clone())),
        "open" => r.attributes.insert("closed_at".into(), Value::Null),
        "approve" => {
            r.attributes.insert("approved".into(), Value::Bool(true));
            r.attributes.insert("rejected".into(), Value::Bool(false));
            r.attributes.insert("approved_at".into(), Value::String(now.clone()))
        }
        "unapprove" => {
            r.attributes.insert("approved".into(), Value::Bool(false));
            r.attributes.insert("approved_at".into(), Value::Null)
        }
        _ => {
            r.attributes.insert("approved".into(), Value::Bool(false));
            r.attributes.insert("rejected".into(), Value::Bool(true));
            r.attributes.insert("rejected_reason".into(), attrs.get("rejected_reason").cloned().unwrap_or(Value::Null));
            r.attributes.insert("rejected_at".into(), Value::String(now.clone()))
        }
    };
    if action == "close"
        && let Some(d) = attrs.get("delivered_on")
    {
        r.attributes.insert("delivered_on".into(), d.clone());
    }
    r.attributes.insert("updated_at".into(), Value::String(now));
    let r = r.clone();
    show_record(inner, &st, &r, &[], StatusCode::OK)
}

fn delete(inner: &Inner, kind: &str, id: &str) -> Response {
    let Ok(rid) = id.parse::<u64>() else { return not_found(kind, id) };
    let mut st = inner.lock();
    match st.records.get_mut(kind).and_then(|m| m.remove(&rid)) {
        Some(_) => StatusCode::NO_CONTENT.into_response(),
        None => not_found(kind, id),
    }
}

fn copy_project(inner: &Inner, body: &[u8]) -> Response {
    let now = inner.now();
    let mut st = inner.lock();
    let v: Value = serde_json::from_slice(body).unwrap_or_default();
    let attrs = v.pointer("/data/attributes").and_then(Value::as_object).cloned().unwrap_or_default();
    let as_id = |k: &str| {
        attrs.get(k).and_then(|v| v.as_str().map(str::to_owned).or_else(|| v.as_u64().map(|n| n.to_string())))
    };
    let Some(template) =
        as_id("template_id").and_then(|t| t.parse::<u64>().ok()).and_then(|t| st.get("projects", t).cloned())
    else {
        return error_response(
            422,
            "Invalid Attribute",
            "template_id must be an existing project",
            Some("/data/attributes/template_id"),
        );
    };
    let Some(name) = attrs.get("name").and_then(Value::as_str).filter(|s| !s.is_empty()) else {
        return error_response(422, "Invalid Attribute", "name can't be blank", Some("/data/attributes/name"));
    };
    for (key, t) in [("company_id", "companies"), ("project_manager_id", "people")] {
        if let Some(id) = as_id(key)
            && id.parse::<u64>().ok().and_then(|i| st.get(t, i)).is_none()
        {
            return error_response(
                422,
                "Invalid Attribute",
                &format!("{key}: {t} {id} does not exist"),
                Some(&format!("/data/attributes/{key}")),
            );
        }
    }
    let mut new_attrs = Map::new();
    new_attrs.insert("name".into(), json!(name));
    new_attrs.insert(
        "project_type_id".into(),
        attrs
            .get("project_type_id")
            .cloned()
            .or_else(|| template.attributes.get("project_type_id").cloned())
            .unwrap_or(json!(2)),
    );
    new_attrs.insert("template".into(), json!(attrs.get("copy_as_template").and_then(Value::as_bool).unwrap_or(false)));
    let polls = inner.config.copy_polls;
    new_attrs.insert("duplication_status".into(), json!(if polls == 0 { "idle" } else { "in_progress" }));
    let n = st.all("projects").len() + 1;
    new_attrs.insert("project_number".into(), json!(n.to_string()));
    let mut rels = BTreeMap::new();
    rels.insert(
        "company".to_owned(),
        as_id("company_id")
            .map(|c| ("companies".to_owned(), c))
            .or_else(|| template.relationships.get("company").cloned().flatten()),
    );
    rels.insert(
        "project_manager".to_owned(),
        as_id("project_manager_id")
            .map(|c| ("people".to_owned(), c))
            .or_else(|| template.relationships.get("project_manager").cloned().flatten()),
    );
    rels.insert("workflow".to_owned(), template.relationships.get("workflow").cloned().flatten());
    let id = st.insert("projects", new_attrs, rels, &now);
    if polls == 0 {
        apply_copy(&mut st, template.id, id, &attrs, &now);
    } else {
        st.copy_pending.insert(id, (polls, attrs, template.id));
    }
    let mut r = st.get("projects", id).cloned().expect("inserted");
    match inner.config.copy_response {
        CopyResponse::NewProject => show_record(inner, &st, &r, &[], StatusCode::CREATED),
        CopyResponse::NewProjectWithoutStatus => {
            r.attributes.remove("duplication_status");
            show_record(inner, &st, &r, &[], StatusCode::CREATED)
        }
        CopyResponse::Accepted => StatusCode::ACCEPTED.into_response(),
    }
}

fn finish_copy_poll(inner: &Inner, st: &mut Store, id: u64) {
    let Some((left, attrs, template)) = st.copy_pending.get_mut(&id) else { return };
    *left = left.saturating_sub(1);
    if *left > 0 {
        return;
    }
    let (attrs, template) = (attrs.clone(), *template);
    st.copy_pending.remove(&id);
    let now = inner.now();
    apply_copy(st, template, id, &attrs, &now);
    if let Some(p) = st.get_mut("projects", id) {
        p.attributes.insert("duplication_status".into(), json!("idle"));
    }
}

fn apply_copy(st: &mut Store, template: u64, new: u64, flags: &Map<String, Value>, now: &str) {
    let flag = |k: &str| flags.get(k).and_then(Value::as_bool).unwrap_or(false);
    let tid = template.to_string();
    if flag("copy_memberships") {
        let members: Vec<Option<(String, String)>> = st
            .all("project_assignments")
            .iter()
            .filter(|a| a.rel_id("project") == Some(&tid))
            .map(|a| a.relationships.get("person").cloned().flatten())
            .collect();
        for person in members {
            st.insert(
                "project_assignments",
                Map::new(),
                BTreeMap::from([("person".into(), person), ("project".into(), rel("projects", new))]),
                now,
            );
        }
    }
    if flag("copy_boards") && flag("copy_task_lists") {
        let lists: Vec<Record> =
            st.all("task_lists").into_iter().filter(|l| l.rel_id("project") == Some(&tid)).cloned().collect();
        for l in lists {
            let mut a = l.attributes.clone();
            a.remove("created_at");
            a.remove("updated_at");
            let nl = st.insert("task_lists", a, BTreeMap::from([("project".into(), rel("projects", new))]), now);
            let tasks: Vec<Record> = st
                .all("tasks")
                .into_iter()
                .filter(|t| t.rel_id("task_list") == Some(&l.id.to_string()))
                .cloned()
                .collect();
            for t in tasks {
                let closed = t.attributes.get("closed").and_then(Value::as_bool).unwrap_or(false);
                if (closed && !flag("copy_closed_tasks")) || (!closed && !flag("copy_open_tasks")) {
                    continue;
                }
                let mut a = t.attributes.clone();
                a.remove("created_at");
                a.remove("updated_at");
                let mut rels = BTreeMap::from([
                    ("project".to_owned(), rel("projects", new)),
                    ("task_list".to_owned(), rel("task_lists", nl)),
                ]);
                if flag("copy_assignees") {
                    rels.insert("assignee".into(), t.relationships.get("assignee").cloned().flatten());
                }
                st.insert("tasks", a, rels, now);
            }
        }
    }
}
