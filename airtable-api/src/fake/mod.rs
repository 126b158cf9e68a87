//! A stateful in-process fake of the Airtable Web API (feature `fake`), for tests, demos and benchmarks.
//!
//! [`FakeAirtable::start`] serves on `127.0.0.1:<ephemeral>` (via [`api_core::fake::FakeServer`]) with one default
//! base; [`FakeAirtable::client`] returns a [`Client`] pointed at it. What behaves like the real API:
//!
//! - **Schema**: bases, tables with `tbl…` ids, fields with `fld…` ids and types, select choices (`sel…`), a default
//!   "Grid view". Writes accept field names or ids; an unknown name is 422 `UNKNOWN_FIELD_NAME`; an unknown select
//!   option is 422 `INVALID_MULTIPLE_CHOICE_OPTIONS` unless `typecast: true` (which creates it); computed fields and
//!   wrong value types are 422 `INVALID_VALUE_FOR_COLUMN`. Empty values (`""`, `[]`, `false`, `null`) are not stored,
//!   so unchecked checkboxes are absent on read.
//! - **Records**: `rec…` ids, `createdTime`, list with `pageSize` (≤ 100) and opaque `offset`s over a snapshot (so
//!   pages are stable), `maxRecords`, `fields[]`, `sort`, `view`, `filterByFormula` (see [`formula`]), `cellFormat`,
//!   `returnFieldsByFieldId`, `POST …/listRecords`; create/update (PATCH merges, PUT clears)/delete; at most 10
//!   records per write (422 `INVALID_RECORDS` above); validation is all-or-nothing per request.
//! - **Upsert**: `performUpsert.fieldsToMergeOn` — zero matches creates, one updates, more than one fails the whole
//!   request with 422 (message "…more than one record…"; Airtable does not document the exact type); answers
//!   `createdRecords`/`updatedRecords`.
//! - **Rate limit, exactly as Airtable states it** (api-notes/airtable.md C.4, OFFICIAL rate-limits: "limited to 5
//!   requests per second per base … If you exceed these rates, you will receive a 429 status code and will need to
//!   wait 30 seconds before subsequent requests will succeed"): a sliding window over the requests' *arrival* times,
//!   with no slack — a request is refused when 5 requests of that base arrived within the preceding second
//!   (`now - t < 1 s`) — and then every request to the base gets 429 `RATE_LIMIT_REACHED` for
//!   [`FakeConfig::penalty_after_429`] (30 s). Jitter is not forgiven: a client must leave its own headroom (as
//!   [`crate::limit`] does). [`FakeAirtable::throttled_count`] counts the 429s.
//! - **Faults**: [`FakeAirtable::faults`] injects statuses, delays and drop-after-commit (see [`api_core::fake`]).
//! - **Webhooks**: create (returns `macSecretBase64`, 7-day `expirationTime`), list, refresh, delete,
//!   enableNotifications, and the payload feed with real cursor semantics (`cursor` starts at 1, `limit` ≤ 50,
//!   `mightHaveMore`; payloads expire after [`FakeConfig::payload_retention`], 7 days, or at once with
//!   [`FakeBase::expire_payloads`], leaving a gap an older cursor sees). Every record change is appended as a payload to each matching hook (filters: `dataTypes`,
//!   `recordChangeScope`, `changeTypes`, `fromSources`, `watchDataInFieldIds`; includes: previous values and
//!   `includeCellValuesInFieldIds`), with `actionMetadata.source = "publicApi"` for API calls and `"client"` for
//!   [`FakeBase::user_edit`]/[`FakeBase::user_create`]/[`FakeBase::user_delete`] (a person in the UI). Payload cells
//!   use the V2 format (selects and links as objects). When a hook has a `notificationUrl` and notifications are on,
//!   the fake POSTs the ping `{base:{id},webhook:{id},timestamp}` with a correct `X-Airtable-Content-MAC`
//!   (best effort, spawned; results in `lastNotificationResult`).
//! - **Schema writes, comments, uploads** (module `extra`, sources cited there): `POST /meta/bases`, create/update
//!   table and field (at least one field, the first is primary, case-insensitively unique names, computed types
//!   refused, select choices get ids), record comments (newest first, `pageSize` ≤ 100, `offset`, replies,
//!   `recordMetadata[]=commentCount` on lists, dropped with their record) and `uploadAttachment` (base64, 5 MB,
//!   attachment fields only, a webhook payload) — all under the same per-base rate limit and 30 s penalty; schema
//!   writes make `tableFields` / `tableMetadata` webhook payloads.
//! - **Inspection**: [`FakeBase::records`], [`FakeBase::record`], [`FakeBase::find`], [`FakeAirtable::log`],
//!   [`FakeAirtable::request_count`], [`FakeBase::payloads`], [`FakeAirtable::pings`], [`FakeBase::comments`].
//!
//! ```no_run
//! # async fn demo() {
//! use airtable_client::{Fields, WriteOptions, fake::{FakeAirtable, FakeUser}};
//! let fake = FakeAirtable::start().await.unwrap();
//! let contacts = fake.add_table("Contacts", &[("Email", "email"), ("Name", "singleLineText")]);
//! let client = fake.client();
//! let t = client.table(fake.id(), contacts.as_str());
//! let up = t.upsert(&[Fields::new().with("Email", "a@x.io")], &["Email"], WriteOptions::default()).await.unwrap();
//! fake.user_edit("Contacts", &up.records[0].id, serde_json::json!({"Name": "Ada"}), &FakeUser::default()).unwrap();
//! assert_eq!(fake.find("Contacts", "Name", "Ada").len(), 1);
//! # }
//! ```

mod extra;
pub mod formula;

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use api_core::fake::{FakeServer, Faults, RequestLog};
use axum::{
    Router,
    body::Bytes,
    extract::State as AxState,
    http::{HeaderMap, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
};
use base64::Engine as _;
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use crate::{
    BaseId, Client, ClientBuilder, FieldId, RecordId, TableId, WebhookId,
    cell::Record,
    webhook::{MAC_HEADER, MacSecret, Webhook, WebhookPayload},
};

/// The token the fake accepts by default (see [`FakeConfig::token`]).
pub const FAKE_TOKEN: &str = "patFAKE000000000.0000000000000000000000000000000000000000000000000000000000000000";

/// Settings of the fake.
#[derive(Debug, Clone)]
pub struct FakeConfig {
    /// Requests per base per window (`None`: no limit). Default 5.
    pub rate_limit_per_base: Option<u32>,
    /// The sliding window, over arrival times, with no slack. Default 1 s (Airtable's rule).
    pub rate_window: Duration,
    /// How long a base stays blocked after a 429. Default 30 s (Airtable's rule).
    pub penalty_after_429: Duration,
    /// Required bearer token (`None`: any token). Default [`FAKE_TOKEN`].
    pub token: Option<String>,
    /// Webhooks per base. Default 10.
    pub max_webhooks_per_base: usize,
    /// How long a webhook payload is kept (on tokio's clock), read or not: "Payloads are deleted from Airtable's
    /// servers after 1 week whether or not the client has seen them" (api-notes/airtable.md A.8). Default 7 days.
    /// A listing from an older cursor then starts at the oldest kept payload, and the response cursor shows the
    /// gap. [`FakeBase::expire_payloads`] deletes payloads at once.
    pub payload_retention: Duration,
}

impl FakeConfig {
    /// No server-side rate limit (for functional tests that do not care about throttling).
    #[must_use]
    pub fn unlimited() -> Self {
        Self { rate_limit_per_base: None, ..Self::default() }
    }
}

impl Default for FakeConfig {
    fn default() -> Self {
        Self {
            rate_limit_per_base: Some(5),
            rate_window: Duration::from_secs(1),
            penalty_after_429: Duration::from_secs(30),
            token: Some(FAKE_TOKEN.to_owned()),
            max_webhooks_per_base: 10,
            payload_retention: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// A person editing in the Airtable UI (for `client`-source payloads), or the token owner for `publicApi`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeUser {
    /// `usr…`.
    pub id: String,
    /// Email.
    pub email: String,
    /// Name.
    pub name: String,
}

impl Default for FakeUser {
    fn default() -> Self {
        Self { id: "usrFAKEUSER000001".into(), email: "editor@example.com".into(), name: "Fake Editor".into() }
    }
}

impl FakeUser {
    /// A user with this email (id derived from it).
    #[must_use]
    pub fn with_email(email: &str) -> Self {
        let digest = api_core::webhook::hmac_sha256(b"usr", &[email.as_bytes()]);
        Self { id: format!("usr{}", b62(&digest, 14)), email: email.to_owned(), name: email.to_owned() }
    }
}

/// A ping the fake tried to deliver.
#[derive(Debug, Clone)]
pub struct PingRecord {
    /// The webhook.
    pub webhook: WebhookId,
    /// URL.
    pub url: String,
    /// Raw body sent.
    pub body: String,
    /// The `X-Airtable-Content-MAC` sent.
    pub mac: String,
    /// The receiver's status, or `None` when delivery failed.
    pub status: Option<u16>,
}

// ---------------------------------------------------------------------------------------------------------------
// state

#[derive(Debug, Clone)]
struct FieldSt {
    id: String,
    name: String,
    kind: String,
    options: Option<Value>,
    description: Option<String>,
}

#[derive(Debug, Clone)]
struct RecordSt {
    id: String,
    created_time: String,
    /// by field id
    cells: BTreeMap<String, Value>,
}

#[derive(Debug, Clone)]
struct TableSt {
    id: String,
    name: String,
    description: Option<String>,
    fields: Vec<FieldSt>,
    views: Vec<(String, String)>,
    records: Vec<RecordSt>,
    /// Comments by record id, oldest first.
    comments: BTreeMap<String, Vec<extra::CommentSt>>,
}

#[derive(Debug, Clone)]
struct HookSt {
    id: String,
    secret: String,
    notification_url: Option<String>,
    spec: Value,
    expiration: chrono::DateTime<chrono::Utc>,
    notifications_enabled: bool,
    hook_enabled: bool,
    /// Retained payloads with the (tokio) time each was made; payload `i` has cursor `expired + i + 1`.
    payloads: Vec<(Instant, Value)>,
    /// Payloads deleted unread (retention or [`FakeBase::expire_payloads`]): the cursor never resets.
    expired: usize,
    last_result: Option<Value>,
    last_success: Option<String>,
}

#[derive(Debug, Clone)]
struct BaseSt {
    id: String,
    name: String,
    tables: Vec<TableSt>,
    hooks: Vec<HookSt>,
    transaction: u64,
}

#[derive(Debug, Default)]
struct RateSt {
    grants: VecDeque<Instant>,
    blocked_until: Option<Instant>,
}

struct St {
    cfg: FakeConfig,
    counter: u64,
    bases: Vec<BaseSt>,
    iterators: HashMap<String, Vec<String>>,
    rate: HashMap<String, RateSt>,
    throttled: u64,
    api_user: FakeUser,
    pings: Vec<PingRecord>,
}

type Shared = Arc<Mutex<St>>;

fn lock(s: &Shared) -> MutexGuard<'_, St> {
    s.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

const B62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn b62(bytes: &[u8], n: usize) -> String {
    bytes.iter().cycle().take(n).map(|b| char::from(B62[usize::from(*b) % 62])).collect()
}

impl St {
    fn new_id(&mut self, prefix: &str) -> String {
        self.counter += 1;
        let digest = api_core::webhook::hmac_sha256(prefix.as_bytes(), &[&self.counter.to_be_bytes()]);
        // 14 chars: a readable counter tail keeps ids unique and ordered for humans
        let tail = format!("{:06}", self.counter % 1_000_000);
        format!("{prefix}{}{tail}", b62(&digest, 8))
    }

    fn base(&mut self, id: &str) -> Result<&mut BaseSt, ApiErr> {
        self.bases.iter_mut().find(|b| b.id == id).ok_or_else(not_found_or_forbidden)
    }
}

impl TableSt {
    fn field(&self, key: &str) -> Option<&FieldSt> {
        self.fields.iter().find(|f| f.id == key).or_else(|| self.fields.iter().find(|f| f.name == key))
    }

    fn field_mut(&mut self, key: &str) -> Option<&mut FieldSt> {
        let idx =
            self.fields.iter().position(|f| f.id == key).or_else(|| self.fields.iter().position(|f| f.name == key))?;
        self.fields.get_mut(idx)
    }

    fn record_json(&self, r: &RecordSt, by_id: bool, only: Option<&[String]>) -> Value {
        let mut fields = Map::new();
        for f in &self.fields {
            if let Some(only) = only
                && !only.iter().any(|k| k == &f.id || k == &f.name)
            {
                continue;
            }
            if let Some(v) = r.cells.get(&f.id) {
                fields.insert(if by_id { f.id.clone() } else { f.name.clone() }, v.clone());
            }
        }
        json!({"id": r.id, "createdTime": r.created_time, "fields": fields})
    }

    fn cell_by_name(&self, r: &RecordSt, name: &str) -> Result<Option<Value>, String> {
        let f = self.field(name).ok_or_else(|| format!("Unknown field names: {}", name.to_lowercase()))?;
        Ok(r.cells.get(&f.id).cloned())
    }
}

fn find_table<'a>(b: &'a mut BaseSt, key: &str) -> Result<&'a mut TableSt, ApiErr> {
    let idx = b
        .tables
        .iter()
        .position(|t| t.id == key)
        .or_else(|| b.tables.iter().position(|t| t.name == key))
        .ok_or_else(not_found_or_forbidden)?;
    Ok(&mut b.tables[idx])
}

// ---------------------------------------------------------------------------------------------------------------
// errors

#[derive(Debug)]
struct ApiErr {
    status: StatusCode,
    body: Value,
}

fn err(status: u16, kind: &str, message: impl Into<String>) -> ApiErr {
    ApiErr {
        status: StatusCode::from_u16(status).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY),
        body: json!({"error": {"type": kind, "message": message.into()}}),
    }
}

fn not_found() -> ApiErr {
    ApiErr { status: StatusCode::NOT_FOUND, body: json!({"error": "NOT_FOUND"}) }
}

fn not_found_or_forbidden() -> ApiErr {
    err(
        403,
        "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND",
        "Invalid permissions, or the requested model was not found. Check that both your user and your token have \
         the required permissions, and that the model names and/or ids are correct.",
    )
}

impl IntoResponse for ApiErr {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body)).into_response()
    }
}

// ---------------------------------------------------------------------------------------------------------------
// value normalisation

const COMPUTED: &[&str] = &[
    "formula",
    "createdTime",
    "rollup",
    "count",
    "multipleLookupValues",
    "autoNumber",
    "lastModifiedTime",
    "button",
    "createdBy",
    "lastModifiedBy",
    "externalSyncSource",
    "aiText",
];

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null | Value::Bool(false) => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

#[allow(clippy::cast_possible_truncation)]
fn canonical_number(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 9.0e15 { json!(x as i64) } else { json!(x) }
}

fn choice_names(f: &FieldSt) -> Vec<String> {
    f.options
        .as_ref()
        .and_then(|o| o.get("choices"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_owned)).collect())
        .unwrap_or_default()
}

const COLORS: &[&str] = &["blueLight2", "cyanLight2", "tealLight2", "greenLight2", "yellowLight2", "orangeLight2"];

/// Validates one written value; returns the value to store (`None` = empty) and select options to create.
fn normalize(f: &FieldSt, v: &Value, typecast: bool, new_choices: &mut Vec<String>) -> Result<Option<Value>, ApiErr> {
    let bad = || err(422, "INVALID_VALUE_FOR_COLUMN", format!("Field \"{}\" cannot accept the provided value", f.name));
    if COMPUTED.contains(&f.kind.as_str()) {
        return Err(err(
            422,
            "INVALID_VALUE_FOR_COLUMN",
            format!("Field \"{}\" cannot accept a value because the field is computed", f.name),
        ));
    }
    if is_empty(v) {
        return Ok(None);
    }
    let mut check_choice = |name: &str| -> Result<(), ApiErr> {
        if choice_names(f).iter().any(|c| c == name) || new_choices.iter().any(|c| c == name) {
            return Ok(());
        }
        if typecast {
            new_choices.push(name.to_owned());
            Ok(())
        } else {
            Err(err(
                422,
                "INVALID_MULTIPLE_CHOICE_OPTIONS",
                format!("Insufficient permissions to create new select option \"\"{name}\"\""),
            ))
        }
    };
    let out = match f.kind.as_str() {
        "singleLineText" | "email" | "url" | "multilineText" | "richText" | "phoneNumber" => match v {
            Value::String(_) => v.clone(),
            Value::Number(n) if typecast => Value::String(n.to_string()),
            _ => return Err(bad()),
        },
        "number" | "percent" | "currency" | "rating" | "duration" => match v {
            // one representation per value, so `7` and `7.0` match as upsert keys and filters
            Value::Number(n) => canonical_number(n.as_f64().ok_or_else(bad)?),
            Value::String(s) if typecast => canonical_number(s.trim().parse::<f64>().map_err(|_| bad())?),
            _ => return Err(bad()),
        },
        "checkbox" => match v {
            Value::Bool(true) => v.clone(),
            Value::String(s) if typecast => {
                if matches!(s.to_lowercase().as_str(), "true" | "checked" | "yes" | "1") {
                    Value::Bool(true)
                } else {
                    return Ok(None);
                }
            }
            _ => return Err(bad()),
        },
        "singleSelect" => {
            let name = match v {
                Value::String(s) => s.clone(),
                Value::Object(o) => o.get("name").and_then(Value::as_str).ok_or_else(bad)?.to_owned(),
                _ => return Err(bad()),
            };
            check_choice(&name)?;
            Value::String(name)
        }
        "multipleSelects" => {
            let names: Vec<String> = match v {
                Value::Array(a) => {
                    a.iter().map(|x| x.as_str().map(str::to_owned).ok_or_else(bad)).collect::<Result<_, _>>()?
                }
                Value::String(s) if typecast => {
                    s.split(',').map(|x| x.trim().to_owned()).filter(|x| !x.is_empty()).collect()
                }
                _ => return Err(bad()),
            };
            for n in &names {
                check_choice(n)?;
            }
            json!(names)
        }
        "multipleRecordLinks" => match v {
            Value::Array(a) => {
                let ids: Vec<String> = a
                    .iter()
                    .map(|x| match x {
                        Value::String(s) => Ok(s.clone()),
                        Value::Object(o) => o.get("id").and_then(Value::as_str).map(str::to_owned).ok_or_else(bad),
                        _ => Err(bad()),
                    })
                    .collect::<Result<_, _>>()?;
                json!(ids)
            }
            _ => return Err(bad()),
        },
        "date" => match v {
            Value::String(s) => {
                let d = s.get(..10).unwrap_or(s);
                if chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").is_err() || (s.len() > 10 && !typecast) {
                    return Err(bad());
                }
                Value::String(d.to_owned())
            }
            _ => return Err(bad()),
        },
        "dateTime" => match v {
            Value::String(s) => {
                let dt = chrono::DateTime::parse_from_rfc3339(s).map_err(|_| bad())?;
                Value::String(dt.with_timezone(&chrono::Utc).format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
            }
            _ => return Err(bad()),
        },
        "multipleAttachments" => match v {
            Value::Array(a) => {
                let mut out = Vec::new();
                for x in a {
                    let o = x.as_object().ok_or_else(bad)?;
                    let url = o.get("url").and_then(Value::as_str).unwrap_or("https://dl.airtable.fake/unknown");
                    let filename = o
                        .get("filename")
                        .and_then(Value::as_str)
                        .map_or_else(|| url.rsplit('/').next().unwrap_or("file").to_owned(), str::to_owned);
                    let id = o.get("id").and_then(Value::as_str).map_or_else(
                        || format!("att{}", b62(&api_core::webhook::hmac_sha256(b"att", &[url.as_bytes()]), 14)),
                        str::to_owned,
                    );
                    out.push(json!({"id": id, "url": url, "filename": filename, "size": 0, "type": "application/octet-stream"}));
                }
                Value::Array(out)
            }
            _ => return Err(bad()),
        },
        "singleCollaborator" => match v {
            Value::Object(o) if o.contains_key("id") || o.contains_key("email") => v.clone(),
            _ => return Err(bad()),
        },
        _ => v.clone(),
    };
    Ok(Some(out))
}

/// Field id → value to store (`None` = clear), and select options to create per field id.
type Validated = (Vec<(String, Option<Value>)>, Vec<(String, Vec<String>)>);

/// Validates a `fields` object against the table: field id → value (`None` = clear), plus options to create.
fn validate_fields(t: &TableSt, fields: &Value, typecast: bool) -> Result<Validated, ApiErr> {
    let obj = fields.as_object().ok_or_else(|| err(422, "INVALID_REQUEST_UNKNOWN", "fields must be an object"))?;
    let mut out = Vec::new();
    let mut created = Vec::new();
    for (k, v) in obj {
        let f = t.field(k).ok_or_else(|| err(422, "UNKNOWN_FIELD_NAME", format!("Unknown field name: \"{k}\"")))?;
        let mut new_choices = Vec::new();
        let nv = normalize(f, v, typecast, &mut new_choices)?;
        if !new_choices.is_empty() {
            created.push((f.id.clone(), new_choices));
        }
        out.push((f.id.clone(), nv));
    }
    Ok((out, created))
}

fn add_choices(t: &mut TableSt, created: Vec<(String, Vec<String>)>, counter: &mut u64) {
    for (fid, names) in created {
        if let Some(f) = t.field_mut(&fid) {
            let opts = f.options.get_or_insert_with(|| json!({"choices": []}));
            if opts.get("choices").is_none() {
                opts["choices"] = json!([]);
            }
            if let Some(arr) = opts["choices"].as_array_mut() {
                for n in names {
                    if !arr.iter().any(|c| c["name"] == n.as_str()) {
                        *counter += 1;
                        let color = COLORS[usize::try_from(*counter).unwrap_or(0) % COLORS.len()];
                        arr.push(json!({"id": format!("sel{:014}", *counter), "name": n, "color": color}));
                    }
                }
            }
        }
    }
}

fn now_iso() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

// ---------------------------------------------------------------------------------------------------------------
// payload recording

#[derive(Debug, Clone)]
enum Change {
    Created { id: String, created_time: String, cells: BTreeMap<String, Value> },
    Updated { id: String, before: BTreeMap<String, Value>, after: BTreeMap<String, Value> },
    Destroyed { id: String },
}

/// Converts a stored REST cell to the webhook V2 format.
fn to_v2(base: &BaseSt, t: &TableSt, fid: &str, v: &Value) -> Value {
    let Some(f) = t.field(fid) else { return v.clone() };
    let choice = |name: &str| -> Value {
        let found = f
            .options
            .as_ref()
            .and_then(|o| o.get("choices"))
            .and_then(Value::as_array)
            .and_then(|a| a.iter().find(|c| c["name"] == name).cloned());
        found.unwrap_or_else(|| json!({"id": "selUNKNOWN", "name": name}))
    };
    match (f.kind.as_str(), v) {
        ("singleSelect", Value::String(s)) => choice(s),
        ("multipleSelects", Value::Array(a)) => {
            Value::Array(a.iter().map(|x| choice(x.as_str().unwrap_or(""))).collect())
        }
        ("multipleRecordLinks", Value::Array(a)) => {
            let linked = f.options.as_ref().and_then(|o| o.get("linkedTableId")).and_then(Value::as_str);
            Value::Array(
                a.iter()
                    .map(|x| {
                        let id = x.as_str().unwrap_or("");
                        let name = linked
                            .and_then(|lt| base.tables.iter().find(|t| t.id == lt))
                            .and_then(|lt| {
                                let primary = lt.fields.first()?;
                                let r = lt.records.iter().find(|r| r.id == id)?;
                                r.cells.get(&primary.id).map(|v| formula::cell_to_v(Some(v)))
                            })
                            .map(|v| match v {
                                formula::V::Str(s) => s,
                                other => format!("{other:?}"),
                            })
                            .unwrap_or_default();
                        json!({"id": id, "name": name})
                    })
                    .collect(),
            )
        }
        _ => v.clone(),
    }
}

fn spec_list(spec: &Value, path: &[&str]) -> Option<Vec<String>> {
    let mut cur = spec;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_array().map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
}

struct PendingPing {
    url: String,
    body: String,
    mac: String,
    base: String,
    hook: String,
}

fn record_payloads(
    st: &mut St,
    base_id: &str,
    table_id: &str,
    changes: &[Change],
    source: &str,
    user: &FakeUser,
) -> Vec<PendingPing> {
    let mut pings = Vec::new();
    let Some(bi) = st.bases.iter().position(|b| b.id == base_id) else { return pings };
    st.bases[bi].transaction += 1;
    let txn = st.bases[bi].transaction;
    let base = st.bases[bi].clone();
    let Some(t) = base.tables.iter().find(|t| t.id == table_id) else { return pings };
    let timestamp = now_iso();
    for hook in &mut st.bases[bi].hooks {
        if !hook.hook_enabled {
            continue;
        }
        let f = &hook.spec["options"]["filters"];
        let inc = &hook.spec["options"]["includes"];
        if !spec_list(f, &["dataTypes"]).unwrap_or_default().iter().any(|d| d == "tableData") {
            continue;
        }
        if let Some(scope) = f.get("recordChangeScope").and_then(Value::as_str)
            && scope != t.id
            && !t.views.iter().any(|(vid, _)| vid == scope)
        {
            continue;
        }
        if let Some(srcs) = spec_list(f, &["fromSources"])
            && !srcs.is_empty()
            && !srcs.iter().any(|s| s == source)
        {
            continue;
        }
        let change_types = spec_list(f, &["changeTypes"]).filter(|v| !v.is_empty());
        let watch = spec_list(f, &["watchDataInFieldIds"]).filter(|v| !v.is_empty());
        let with_prev = inc.get("includePreviousCellValues").and_then(Value::as_bool).unwrap_or(false);
        let include_vals: Option<Vec<String>> = match inc.get("includeCellValuesInFieldIds") {
            Some(Value::String(s)) if s == "all" => Some(t.fields.iter().map(|f| f.id.clone()).collect()),
            Some(Value::Array(a)) => Some(a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect()),
            _ => None,
        };
        let wants = |kind: &str| change_types.as_ref().is_none_or(|c| c.iter().any(|x| x == kind));
        let mut created = Map::new();
        let mut changed = Map::new();
        let mut destroyed = Vec::new();
        for c in changes {
            match c {
                Change::Created { id, created_time, cells } if wants("add") => {
                    let vals: Map<String, Value> =
                        cells.iter().map(|(k, v)| (k.clone(), to_v2(&base, t, k, v))).collect();
                    created.insert(id.clone(), json!({"createdTime": created_time, "cellValuesByFieldId": vals}));
                }
                Change::Updated { id, before, after } if wants("update") => {
                    let mut keys: Vec<&String> = before.keys().chain(after.keys()).collect();
                    keys.sort();
                    keys.dedup();
                    let diff: Vec<&String> = keys.into_iter().filter(|k| before.get(*k) != after.get(*k)).collect();
                    let diff: Vec<&String> = match &watch {
                        Some(w) => diff.into_iter().filter(|k| w.contains(k)).collect(),
                        None => diff,
                    };
                    if diff.is_empty() {
                        continue;
                    }
                    let cur: Map<String, Value> = diff
                        .iter()
                        .map(|k| ((*k).clone(), after.get(*k).map_or(Value::Null, |v| to_v2(&base, t, k, v))))
                        .collect();
                    let mut entry = json!({"current": {"cellValuesByFieldId": cur}});
                    if with_prev {
                        let prev: Map<String, Value> = diff
                            .iter()
                            .map(|k| ((*k).clone(), before.get(*k).map_or(Value::Null, |v| to_v2(&base, t, k, v))))
                            .collect();
                        entry["previous"] = json!({"cellValuesByFieldId": prev});
                    }
                    if let Some(iv) = &include_vals {
                        let unchanged: Map<String, Value> = iv
                            .iter()
                            .filter(|k| !diff.contains(k))
                            .filter_map(|k| after.get(k).map(|v| (k.clone(), to_v2(&base, t, k, v))))
                            .collect();
                        if !unchanged.is_empty() {
                            entry["unchanged"] = json!({"cellValuesByFieldId": unchanged});
                        }
                    }
                    changed.insert(id.clone(), entry);
                }
                Change::Destroyed { id } if wants("remove") => destroyed.push(json!(id)),
                _ => {}
            }
        }
        if created.is_empty() && changed.is_empty() && destroyed.is_empty() {
            continue;
        }
        let mut tc = Map::new();
        if !created.is_empty() {
            tc.insert("createdRecordsById".into(), Value::Object(created));
        }
        if !changed.is_empty() {
            tc.insert("changedRecordsById".into(), Value::Object(changed));
        }
        if !destroyed.is_empty() {
            tc.insert("destroyedRecordIds".into(), Value::Array(destroyed));
        }
        hook.payloads.push((
            Instant::now(),
            json!({
                "timestamp": timestamp,
                "baseTransactionNumber": txn,
                "actionMetadata": {"source": source, "sourceMetadata": {"user": {
                    "id": user.id, "email": user.email, "permissionLevel": "create", "name": user.name}}},
                "payloadFormat": "v0",
                "changedTablesById": {t.id.clone(): tc},
            }),
        ));
        if let Some(url) = &hook.notification_url
            && hook.notifications_enabled
        {
            let body = json!({"base": {"id": base_id}, "webhook": {"id": hook.id}, "timestamp": timestamp}).to_string();
            let mac = MacSecret::from_base64(hook.secret.clone()).sign(body.as_bytes()).unwrap_or_default();
            pings.push(PendingPing { url: url.clone(), body, mac, base: base_id.to_owned(), hook: hook.id.clone() });
        }
    }
    pings
}

fn send_pings(shared: &Shared, http: &reqwest::Client, pings: Vec<PendingPing>) {
    if pings.is_empty() {
        return;
    }
    let Ok(handle) = tokio::runtime::Handle::try_current() else { return };
    for p in pings {
        let shared = shared.clone();
        let http = http.clone();
        handle.spawn(async move {
            let started = std::time::Instant::now();
            let res = http
                .post(&p.url)
                .header("content-type", "application/json")
                .header(MAC_HEADER, &p.mac)
                .body(p.body.clone())
                .send()
                .await;
            let status = res.as_ref().ok().map(|r| r.status().as_u16());
            let ok = matches!(status, Some(200 | 204));
            let mut st = lock(&shared);
            st.pings.push(PingRecord {
                webhook: WebhookId::from(p.hook.as_str()),
                url: p.url.clone(),
                body: p.body,
                mac: p.mac,
                status,
            });
            if let Ok(b) = st.base(&p.base)
                && let Some(h) = b.hooks.iter_mut().find(|h| h.id == p.hook)
            {
                let now = now_iso();
                let mut result = json!({"success": ok, "completionTimestamp": now,
                    "durationMs": started.elapsed().as_secs_f64() * 1000.0, "retryNumber": 0});
                if ok {
                    h.last_success = Some(now);
                } else {
                    let msg = status.map_or_else(
                        || "The HTTP request failed".to_owned(),
                        |s| format!("The HTTP request returned a {s} status code instead of 200 or 204"),
                    );
                    result["error"] = json!({"message": msg});
                    result["willBeRetried"] = json!(false);
                }
                h.last_result = Some(result);
            }
        });
    }
}

// ---------------------------------------------------------------------------------------------------------------
// the fake

#[derive(Clone)]
struct App {
    st: Shared,
    http: reqwest::Client,
}

/// A running fake Airtable. Dereferences to its default [`FakeBase`]. Stops when dropped.
pub struct FakeAirtable {
    server: FakeServer,
    app: App,
    default_base: FakeBase,
}

impl std::fmt::Debug for FakeAirtable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeAirtable")
            .field("base_url", &self.base_url())
            .field("default_base", &self.default_base.id)
            .finish()
    }
}

/// A base of the fake: schema setup, seeding, inspection, UI-edit simulation, webhooks. Cloneable handle.
#[derive(Clone)]
pub struct FakeBase {
    app: App,
    id: BaseId,
}

impl std::fmt::Debug for FakeBase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeBase").field("id", &self.id).finish()
    }
}

impl std::ops::Deref for FakeAirtable {
    type Target = FakeBase;
    fn deref(&self) -> &FakeBase {
        &self.default_base
    }
}

impl FakeAirtable {
    /// Starts with [`FakeConfig::default`] and one base named "Fake Base".
    ///
    /// # Errors
    /// When the socket cannot be bound.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_with(FakeConfig::default()).await
    }

    /// Starts with a configuration.
    ///
    /// # Errors
    /// When the socket cannot be bound.
    pub async fn start_with(cfg: FakeConfig) -> std::io::Result<Self> {
        let st = Arc::new(Mutex::new(St {
            cfg,
            counter: 0,
            bases: Vec::new(),
            iterators: HashMap::new(),
            rate: HashMap::new(),
            throttled: 0,
            api_user: FakeUser {
                id: "usrAPITOKEN000001".into(),
                email: "api@example.com".into(),
                name: "API Token Owner".into(),
            },
            pings: Vec::new(),
        }));
        let http =
            reqwest::Client::builder().timeout(Duration::from_secs(25)).build().map_err(std::io::Error::other)?;
        let app = App { st, http };
        let router = Router::new().fallback(handle).with_state(app.clone());
        let server = FakeServer::start(router).await?;
        let default_base = Self::new_base(&app, "Fake Base");
        Ok(Self { server, app, default_base })
    }

    fn new_base(app: &App, name: &str) -> FakeBase {
        let mut st = lock(&app.st);
        let id = st.new_id("app");
        st.bases.push(BaseSt {
            id: id.clone(),
            name: name.to_owned(),
            tables: Vec::new(),
            hooks: Vec::new(),
            transaction: 0,
        });
        FakeBase { app: app.clone(), id: BaseId::from(id) }
    }

    /// Adds another base.
    #[must_use]
    pub fn add_base(&self, name: &str) -> FakeBase {
        Self::new_base(&self.app, name)
    }

    /// The default base.
    #[must_use]
    pub fn base(&self) -> FakeBase {
        self.default_base.clone()
    }

    /// `http://127.0.0.1:<port>/v0`.
    #[must_use]
    pub fn base_url(&self) -> String {
        format!("{}v0", self.server.base_url)
    }

    /// A client builder pointed at the fake with its token (Airtable's limits and 30 s penalty kept).
    #[must_use]
    pub fn client_builder(&self) -> ClientBuilder {
        let token = lock(&self.app.st).cfg.token.clone().unwrap_or_else(|| FAKE_TOKEN.to_owned());
        Client::builder().base_url(self.base_url()).content_url(self.base_url()).token(token)
    }

    /// A transport that calls this fake in-process (no socket), with a simulated network delay each way. Requests
    /// arrive after their uplink delay — that is when the rate limit counts them — and the answer comes back after
    /// the downlink delay. Everything runs on tokio's clock, so tests can use the paused clock (a socket would let
    /// it jump ahead while a request is on the wire). Requests sent this way skip [`FakeAirtable::log`] and
    /// [`FakeAirtable::faults`]; [`FakeAirtable::throttled_count`] counts their 429s.
    #[must_use]
    pub fn transport(&self, latency: Latency) -> Arc<dyn api_core::Transport> {
        Arc::new(InProcess { app: self.app.clone(), latency, rng: Mutex::new(latency.seed | 1) })
    }

    /// A client builder that talks to the fake through [`FakeAirtable::transport`].
    #[must_use]
    pub fn in_process_client_builder(&self, latency: Latency) -> ClientBuilder {
        let token = lock(&self.app.st).cfg.token.clone().unwrap_or_else(|| FAKE_TOKEN.to_owned());
        Client::builder()
            .base_url("http://airtable.fake.invalid/v0")
            .content_url("http://airtable.fake.invalid/v0")
            .token(token)
            .transport(self.transport(latency))
    }

    /// A client pointed at the fake.
    ///
    /// # Panics
    /// Never in practice (the URL and token are valid).
    #[must_use]
    pub fn client(&self) -> Client {
        self.client_builder().build().expect("fake client builds")
    }

    /// The request log.
    #[must_use]
    pub fn log(&self) -> &RequestLog {
        &self.server.log
    }

    /// Fault injection (paths start with `/v0/…`).
    #[must_use]
    pub fn faults(&self) -> &Faults {
        &self.server.faults
    }

    /// Requests received so far (including faulted and throttled ones).
    #[must_use]
    pub fn request_count(&self) -> usize {
        self.server.log.requests().len()
    }

    /// Requests with this method and path prefix (e.g. `"/v0/app…/Contacts"`).
    #[must_use]
    pub fn count(&self, method: &Method, path_prefix: &str) -> usize {
        self.server.log.count(method, path_prefix)
    }

    /// 429s served by the rate limiter (not injected faults).
    #[must_use]
    pub fn throttled_count(&self) -> u64 {
        lock(&self.app.st).throttled
    }

    /// Expires every list `offset` (the next page request gets 422 `LIST_RECORDS_ITERATOR_NOT_AVAILABLE`).
    pub fn expire_list_iterators(&self) {
        lock(&self.app.st).iterators.clear();
    }

    /// Lifts a 429 penalty and forgets the rate window (e.g. between test phases).
    pub fn reset_rate_limit(&self) {
        lock(&self.app.st).rate.clear();
    }

    /// Pings delivered (or attempted) so far.
    #[must_use]
    pub fn pings(&self) -> Vec<PingRecord> {
        lock(&self.app.st).pings.clone()
    }

    /// The user behind `publicApi` payloads.
    #[must_use]
    pub fn api_user(&self) -> FakeUser {
        lock(&self.app.st).api_user.clone()
    }
}

/// A field to create with [`FakeBase::add_table_with`].
#[derive(Debug, Clone)]
pub struct FieldSpec {
    /// Name.
    pub name: String,
    /// Airtable type string (`singleLineText`, `number`, `singleSelect`, …).
    pub kind: String,
    /// Options (`{"choices": [{"name": "A"}]}`, `{"linkedTableId": "tbl…"}`); choice ids/colors are filled in.
    pub options: Option<Value>,
}

impl FieldSpec {
    /// A field without options.
    #[must_use]
    pub fn new(name: &str, kind: &str) -> Self {
        Self { name: name.into(), kind: kind.into(), options: None }
    }

    /// A `singleSelect` with these choices.
    #[must_use]
    pub fn single_select(name: &str, choices: &[&str]) -> Self {
        Self {
            name: name.into(),
            kind: "singleSelect".into(),
            options: Some(json!({"choices": choices.iter().map(|c| json!({"name": c})).collect::<Vec<_>>()})),
        }
    }

    /// A `multipleSelects` with these choices.
    #[must_use]
    pub fn multiple_selects(name: &str, choices: &[&str]) -> Self {
        Self { kind: "multipleSelects".into(), ..Self::single_select(name, choices) }
    }

    /// A link to another table.
    #[must_use]
    pub fn link(name: &str, table: &TableId) -> Self {
        Self {
            name: name.into(),
            kind: "multipleRecordLinks".into(),
            options: Some(
                json!({"linkedTableId": table.as_str(), "isReversed": false, "prefersSingleRecordLink": false}),
            ),
        }
    }
}

impl FakeBase {
    /// The base id.
    #[must_use]
    pub fn id(&self) -> BaseId {
        self.id.clone()
    }

    fn with<R>(&self, f: impl FnOnce(&mut St) -> Result<R, ApiErr>) -> Result<R, String> {
        let mut st = lock(&self.app.st);
        f(&mut st).map_err(|e| e.body.to_string())
    }

    /// Adds a table with `(name, type)` fields; the first is the primary field.
    ///
    /// # Panics
    /// When `fields` is empty.
    #[must_use]
    pub fn add_table(&self, name: &str, fields: &[(&str, &str)]) -> TableId {
        self.add_table_with(name, fields.iter().map(|(n, k)| FieldSpec::new(n, k)).collect())
    }

    /// Adds a table with full field specs.
    ///
    /// # Panics
    /// When `fields` is empty.
    #[must_use]
    pub fn add_table_with(&self, name: &str, fields: Vec<FieldSpec>) -> TableId {
        assert!(!fields.is_empty(), "a table needs at least one field");
        let mut st = lock(&self.app.st);
        let tid = st.new_id("tbl");
        let vid = st.new_id("viw");
        let mut fs = Vec::new();
        for spec in fields {
            let fid = st.new_id("fld");
            let mut options = spec.options;
            if let Some(choices) = options.as_mut().and_then(|o| o.get_mut("choices")).and_then(Value::as_array_mut) {
                for (i, c) in choices.iter_mut().enumerate() {
                    if c.get("id").is_none() {
                        st.counter += 1;
                        c["id"] = json!(format!("sel{:014}", st.counter));
                    }
                    if c.get("color").is_none() {
                        c["color"] = json!(COLORS[i % COLORS.len()]);
                    }
                }
            }
            fs.push(FieldSt { id: fid, name: spec.name, kind: spec.kind, options, description: None });
        }
        let b = st.base(self.id.as_str()).expect("base exists");
        b.tables.push(TableSt {
            id: tid.clone(),
            name: name.to_owned(),
            description: None,
            fields: fs,
            views: vec![(vid, "Grid view".to_owned())],
            records: Vec::new(),
            comments: BTreeMap::new(),
        });
        TableId::from(tid)
    }

    /// A comment written by a person in the Airtable UI (not the token's user, so the API may not edit or delete
    /// it). Makes no request and draws no rate limit.
    ///
    /// # Errors
    /// The error body text for an unknown table or record.
    pub fn user_comment(
        &self,
        table: &str,
        record: &RecordId,
        text: &str,
        user: &FakeUser,
    ) -> Result<crate::CommentId, String> {
        self.with(|st| {
            let id = st.new_id("com");
            let t = find_table(st.base(self.id.as_str())?, table)?;
            if !t.records.iter().any(|r| r.id == record.as_str()) {
                return Err(not_found());
            }
            t.comments.entry(record.as_str().to_owned()).or_default().push(extra::CommentSt {
                id: id.clone(),
                text: text.to_owned(),
                created_time: now_iso(),
                last_updated_time: None,
                parent: None,
                author: user.clone(),
            });
            Ok(crate::CommentId::from(id.as_str()))
        })
    }

    /// The comments on a record, newest first (as `GET …/comments` lists them); empty for an unknown record.
    #[must_use]
    pub fn comments(&self, table: &str, record: &RecordId) -> Vec<crate::Comment> {
        self.with(|st| {
            let t = find_table(st.base(self.id.as_str())?, table)?;
            Ok(t.comments
                .get(record.as_str())
                .map(|list| {
                    list.iter().rev().filter_map(|c| serde_json::from_value(extra::comment_json(c)).ok()).collect()
                })
                .unwrap_or_default())
        })
        .unwrap_or_default()
    }

    /// A field's id.
    #[must_use]
    pub fn field_id(&self, table: &str, field: &str) -> Option<FieldId> {
        self.with(|st| {
            let b = st.base(self.id.as_str())?;
            let t = find_table(b, table)?;
            Ok(t.field(field).map(|f| FieldId::from(f.id.as_str())))
        })
        .ok()
        .flatten()
    }

    /// A table's id (by name or id).
    #[must_use]
    pub fn table_id(&self, table: &str) -> Option<TableId> {
        self.with(|st| Ok(TableId::from(find_table(st.base(self.id.as_str())?, table)?.id.as_str()))).ok()
    }

    /// Seeds records (names or ids as keys, typecast on) without producing webhook payloads: the data "was there".
    ///
    /// # Errors
    /// The 422 body text when a value is invalid.
    pub fn seed(&self, table: &str, records: &[Value]) -> Result<Vec<RecordId>, String> {
        self.with(|st| {
            let counter = &mut st.counter;
            let mut ids = Vec::new();
            let b = st.bases.iter_mut().find(|b| b.id == self.id.as_str()).ok_or_else(not_found_or_forbidden)?;
            let t = find_table(b, table)?;
            for r in records {
                let (cells, created) = validate_fields(t, r, true)?;
                add_choices(t, created, counter);
                *counter += 1;
                let digest = api_core::webhook::hmac_sha256(b"rec", &[&counter.to_be_bytes()]);
                let id = format!("rec{}{:06}", b62(&digest, 8), *counter % 1_000_000);
                t.records.push(RecordSt {
                    id: id.clone(),
                    created_time: now_iso(),
                    cells: cells.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).collect(),
                });
                ids.push(RecordId::from(id));
            }
            Ok(ids)
        })
    }

    /// All records of a table (fields by name), in creation order.
    #[must_use]
    pub fn records(&self, table: &str) -> Vec<Record> {
        self.with(|st| {
            let t = find_table(st.base(self.id.as_str())?, table)?;
            Ok(t.records.iter().filter_map(|r| serde_json::from_value(t.record_json(r, false, None)).ok()).collect())
        })
        .unwrap_or_default()
    }

    /// One record (fields by name).
    #[must_use]
    pub fn record(&self, table: &str, id: &RecordId) -> Option<Record> {
        self.records(table).into_iter().find(|r| &r.id == id)
    }

    /// Records whose field (by name) equals `value` (a string compared to the REST value's text).
    #[must_use]
    pub fn find(&self, table: &str, field: &str, value: &str) -> Vec<Record> {
        self.records(table)
            .into_iter()
            .filter(|r| r.fields.get(field).is_some_and(|v| v.as_str() == Some(value) || v.to_json() == json!(value)))
            .collect()
    }

    /// Simulates a person editing a record in the Airtable UI: PATCH semantics (typecast on), and a webhook payload
    /// with `actionMetadata.source = "client"` and this user.
    ///
    /// # Errors
    /// The 422/404 body text.
    #[allow(clippy::needless_pass_by_value)] // by value so `json!({..})` can be passed inline
    pub fn user_edit(&self, table: &str, record_id: &RecordId, fields: Value, user: &FakeUser) -> Result<(), String> {
        let pings = self.with(|st| {
            let (tid, changes) = {
                let counter = &mut st.counter;
                let b = st.bases.iter_mut().find(|b| b.id == self.id.as_str()).ok_or_else(not_found_or_forbidden)?;
                let t = find_table(b, table)?;
                let (cells, created) = validate_fields(t, &fields, true)?;
                add_choices(t, created, counter);
                let r = t.records.iter_mut().find(|r| r.id == record_id.as_str()).ok_or_else(not_found)?;
                let before = r.cells.clone();
                apply(r, cells, false);
                (t.id.clone(), vec![Change::Updated { id: r.id.clone(), before, after: r.cells.clone() }])
            };
            Ok(record_payloads(st, self.id.as_str(), &tid, &changes, "client", user))
        })?;
        send_pings(&self.app.st, &self.app.http, pings);
        Ok(())
    }

    /// Simulates a person creating a record in the UI (`client` payload).
    ///
    /// # Errors
    /// The 422 body text.
    #[allow(clippy::needless_pass_by_value)] // by value so `json!({..})` can be passed inline
    pub fn user_create(&self, table: &str, fields: Value, user: &FakeUser) -> Result<RecordId, String> {
        let (id, pings) = self.with(|st| {
            let (tid, change) = {
                let counter = &mut st.counter;
                let b = st.bases.iter_mut().find(|b| b.id == self.id.as_str()).ok_or_else(not_found_or_forbidden)?;
                let t = find_table(b, table)?;
                let (cells, created) = validate_fields(t, &fields, true)?;
                add_choices(t, created, counter);
                *counter += 1;
                let digest = api_core::webhook::hmac_sha256(b"rec", &[&counter.to_be_bytes()]);
                let id = format!("rec{}{:06}", b62(&digest, 8), *counter % 1_000_000);
                let r = RecordSt {
                    id: id.clone(),
                    created_time: now_iso(),
                    cells: cells.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).collect(),
                };
                let c = Change::Created { id, created_time: r.created_time.clone(), cells: r.cells.clone() };
                t.records.push(r);
                (t.id.clone(), c)
            };
            let id = match &change {
                Change::Created { id, .. } => id.clone(),
                _ => unreachable!("created above"),
            };
            Ok((id, record_payloads(st, self.id.as_str(), &tid, &[change], "client", user)))
        })?;
        send_pings(&self.app.st, &self.app.http, pings);
        Ok(RecordId::from(id))
    }

    /// Simulates a person deleting a record in the UI (`client` payload).
    ///
    /// # Errors
    /// The 404 body text.
    pub fn user_delete(&self, table: &str, record_id: &RecordId, user: &FakeUser) -> Result<(), String> {
        let pings = self.with(|st| {
            let tid = {
                let b = st.base(self.id.as_str())?;
                let t = find_table(b, table)?;
                let idx = t.records.iter().position(|r| r.id == record_id.as_str()).ok_or_else(not_found)?;
                t.records.remove(idx);
                t.id.clone()
            };
            let change = Change::Destroyed { id: record_id.to_string() };
            Ok(record_payloads(st, self.id.as_str(), &tid, &[change], "client", user))
        })?;
        send_pings(&self.app.st, &self.app.http, pings);
        Ok(())
    }

    /// The base's webhooks as the list endpoint shows them.
    #[must_use]
    pub fn webhooks(&self) -> Vec<Webhook> {
        self.with(|st| {
            let b = st.base(self.id.as_str())?;
            Ok(b.hooks.iter().filter_map(|h| serde_json::from_value(hook_json(h)).ok()).collect())
        })
        .unwrap_or_default()
    }

    /// A webhook's MAC secret (as returned at creation).
    #[must_use]
    pub fn mac_secret(&self, webhook: &WebhookId) -> Option<MacSecret> {
        self.with(|st| {
            let b = st.base(self.id.as_str())?;
            Ok(b.hooks.iter().find(|h| h.id == webhook.as_str()).map(|h| MacSecret::from_base64(h.secret.clone())))
        })
        .ok()
        .flatten()
    }

    /// All payloads a webhook has accumulated (cursor `i + 1` for index `i`).
    #[must_use]
    pub fn payloads(&self, webhook: &WebhookId) -> Vec<WebhookPayload> {
        self.with(|st| {
            let b = st.base(self.id.as_str())?;
            Ok(b.hooks
                .iter()
                .find(|h| h.id == webhook.as_str())
                .map(|h| h.payloads.iter().filter_map(|(_, p)| serde_json::from_value(p.clone()).ok()).collect())
                .unwrap_or_default())
        })
        .unwrap_or_default()
    }

    /// Appends a raw payload (e.g. an error payload `{"error": true, "code": "INVALID_HOOK", …}`) to a webhook.
    pub fn push_payload(&self, webhook: &WebhookId, payload: Value) {
        let _ = self.with(|st| {
            let b = st.base(self.id.as_str())?;
            if let Some(h) = b.hooks.iter_mut().find(|h| h.id == webhook.as_str()) {
                h.payloads.push((Instant::now(), payload));
            }
            Ok(())
        });
    }

    /// Deletes the `n` oldest retained payloads of `webhook` unread, as Airtable does to payloads older than a week
    /// (see [`FakeConfig::payload_retention`]); their cursor numbers are not reused.
    pub fn expire_payloads(&self, webhook: &WebhookId, n: usize) {
        let _ = self.with(|st| {
            let b = st.base(self.id.as_str())?;
            if let Some(h) = b.hooks.iter_mut().find(|h| h.id == webhook.as_str()) {
                let n = n.min(h.payloads.len());
                h.payloads.drain(..n);
                h.expired += n;
            }
            Ok(())
        });
    }

    /// Sets a webhook's expiry in the past and disables it, as Airtable does after 7 days without refresh.
    pub fn expire_webhook(&self, webhook: &WebhookId) {
        let _ = self.with(|st| {
            let b = st.base(self.id.as_str())?;
            if let Some(h) = b.hooks.iter_mut().find(|h| h.id == webhook.as_str()) {
                h.expiration = chrono::Utc::now() - chrono::Duration::seconds(1);
                h.hook_enabled = false;
            }
            Ok(())
        });
    }

    /// Sends a ping for `webhook` now (even without changes), and waits for the delivery.
    ///
    /// # Errors
    /// When the webhook has no `notificationUrl` or is unknown.
    pub async fn ping(&self, webhook: &WebhookId) -> Result<PingRecord, String> {
        let (url, body, mac) = self.with(|st| {
            let b = st.base(self.id.as_str())?;
            let h = b.hooks.iter().find(|h| h.id == webhook.as_str()).ok_or_else(not_found)?;
            let url =
                h.notification_url.clone().ok_or_else(|| err(422, "INVALID_REQUEST_UNKNOWN", "no notificationUrl"))?;
            let body = json!({"base": {"id": self.id}, "webhook": {"id": h.id}, "timestamp": now_iso()}).to_string();
            let mac = MacSecret::from_base64(h.secret.clone()).sign(body.as_bytes()).unwrap_or_default();
            Ok((url, body, mac))
        })?;
        let status = self
            .app
            .http
            .post(&url)
            .header("content-type", "application/json")
            .header(MAC_HEADER, &mac)
            .body(body.clone())
            .send()
            .await
            .ok()
            .map(|r| r.status().as_u16());
        let rec = PingRecord { webhook: webhook.clone(), url, body, mac, status };
        lock(&self.app.st).pings.push(rec.clone());
        Ok(rec)
    }
}

/// A simulated one-way network delay for [`FakeAirtable::transport`]: `base + uniform[0, jitter)`, drawn for each
/// request on the way in and again for its answer on the way out (reproducible from `seed`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Latency {
    /// The fixed part.
    pub base: Duration,
    /// The random part's range.
    pub jitter: Duration,
    /// Seed of the random part.
    pub seed: u64,
}

impl Latency {
    /// `base` plus up to `jitter`, seeded.
    #[must_use]
    pub fn new(base: Duration, jitter: Duration, seed: u64) -> Self {
        Self { base, jitter, seed }
    }
}

#[derive(Debug)]
struct InProcess {
    app: App,
    latency: Latency,
    rng: Mutex<u64>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").finish_non_exhaustive()
    }
}

impl InProcess {
    fn delay(&self) -> Duration {
        let mut x = self.rng.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // xorshift64*
        *x ^= *x >> 12;
        *x ^= *x << 25;
        *x ^= *x >> 27;
        let r = x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11;
        #[allow(clippy::cast_precision_loss)]
        let unit = r as f64 / (1u64 << 53) as f64;
        self.latency.base + self.latency.jitter.mul_f64(unit)
    }
}

impl api_core::Transport for InProcess {
    fn send(
        &self,
        url: url::Url,
        request: api_core::Request,
    ) -> futures::future::BoxFuture<'_, Result<api_core::RawResponse, api_core::TransportError>> {
        Box::pin(async move {
            tokio::time::sleep(self.delay()).await;
            let target = match url.query() {
                Some(q) => format!("{}?{q}", url.path()),
                None => url.path().to_owned(),
            };
            let uri: Uri = target.parse().unwrap_or_else(|_| Uri::from_static("/"));
            let body = match request.body {
                api_core::Body::None => Bytes::new(),
                api_core::Body::Json { bytes, .. } | api_core::Body::Raw { bytes, .. } => bytes,
                api_core::Body::Form(s) => Bytes::from(s),
            };
            let resp = handle(AxState(self.app.clone()), request.method, uri, request.headers, body).await;
            let (parts, body) = resp.into_parts();
            let body = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
            tokio::time::sleep(self.delay()).await;
            Ok(api_core::RawResponse { status: parts.status, headers: parts.headers, body })
        })
    }
}

fn apply(r: &mut RecordSt, cells: Vec<(String, Option<Value>)>, replace: bool) {
    if replace {
        r.cells.clear();
    }
    for (k, v) in cells {
        match v {
            Some(v) => {
                r.cells.insert(k, v);
            }
            None => {
                r.cells.remove(&k);
            }
        }
    }
}

fn hook_json(h: &HookSt) -> Value {
    json!({
        "id": h.id,
        "areNotificationsEnabled": h.notifications_enabled,
        "cursorForNextPayload": h.expired + h.payloads.len() + 1,
        "isHookEnabled": h.hook_enabled,
        "lastSuccessfulNotificationTime": h.last_success,
        "notificationUrl": h.notification_url,
        "expirationTime": h.expiration.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        "lastNotificationResult": h.last_result,
        "specification": h.spec,
    })
}

// ---------------------------------------------------------------------------------------------------------------
// HTTP handling

fn pct_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

type Reply = Result<(StatusCode, Value), ApiErr>;

async fn handle(AxState(app): AxState<App>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let segs: Vec<String> = uri.path().trim_start_matches('/').split('/').map(pct_decode).collect();
    let query: Vec<(String, String)> =
        uri.query().map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default();
    let (result, pings) = {
        let mut st = lock(&app.st);
        match dispatch(&mut st, &method, &segs, &query, &headers, &body) {
            Ok((reply, pings)) => (Ok(reply), pings),
            Err(e) => (Err(e), Vec::new()),
        }
    };
    send_pings(&app.st, &app.http, pings);
    match result {
        Ok((status, Value::Null)) => status.into_response(),
        Ok((status, v)) => (status, axum::Json(v)).into_response(),
        Err(e) => e.into_response(),
    }
}

fn admit(st: &mut St, key: &str) -> Result<(), ApiErr> {
    let Some(max) = st.cfg.rate_limit_per_base else { return Ok(()) };
    let now = Instant::now();
    let window = st.cfg.rate_window;
    let penalty = st.cfg.penalty_after_429;
    let r = st.rate.entry(key.to_owned()).or_default();
    let limited = || err(429, "RATE_LIMIT_REACHED", "Rate limit exceeded. Please try again later");
    if r.blocked_until.is_some_and(|b| now < b) {
        st.throttled += 1;
        return Err(limited());
    }
    while r.grants.front().is_some_and(|t| now.duration_since(*t) >= window) {
        r.grants.pop_front();
    }
    if r.grants.len() >= max as usize {
        r.blocked_until = Some(now + penalty);
        st.throttled += 1;
        return Err(limited());
    }
    r.grants.push_back(now);
    Ok(())
}

fn dispatch(
    st: &mut St,
    method: &Method,
    segs: &[String],
    query: &[(String, String)],
    headers: &HeaderMap,
    body: &[u8],
) -> Result<((StatusCode, Value), Vec<PendingPing>), ApiErr> {
    if let Some(tok) = &st.cfg.token {
        let ok = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.strip_prefix("Bearer ") == Some(tok.as_str()));
        if !ok {
            return Err(err(401, "AUTHENTICATION_REQUIRED", "Authentication required"));
        }
    }
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    if s.first() != Some(&"v0") {
        return Err(not_found());
    }
    let json_body = || -> Result<Value, ApiErr> {
        if body.is_empty() {
            return Ok(json!({}));
        }
        serde_json::from_slice(body).map_err(|_| {
            err(
                400,
                "INVALID_REQUEST_UNKNOWN",
                "Invalid request: parameter validation failed. Check your request data.",
            )
        })
    };
    let no_pings = |r: Reply| r.map(|x| (x, Vec::new()));
    match (method.clone(), &s[1..]) {
        (Method::GET, ["meta", "bases"]) => {
            admit(st, "meta")?;
            let bases: Vec<Value> =
                st.bases.iter().map(|b| json!({"id": b.id, "name": b.name, "permissionLevel": "create"})).collect();
            no_pings(Ok((StatusCode::OK, json!({"bases": bases}))))
        }
        (Method::GET, ["meta", "whoami"]) => {
            admit(st, "meta")?;
            no_pings(Ok((StatusCode::OK, json!({"id": st.api_user.id, "email": st.api_user.email}))))
        }
        (Method::POST, ["meta", "bases"]) => {
            admit(st, "meta")?;
            let body = json_body()?;
            no_pings(extra::create_base(st, &body))
        }
        (m @ (Method::POST | Method::PATCH), ["meta", "bases", base, "tables", rest @ ..]) => {
            admit(st, base)?;
            let body = json_body()?;
            extra::schema_route(st, &m, base, rest, &body)
        }
        (Method::POST, [base, record, field, "uploadAttachment"]) => {
            admit(st, base)?;
            let body = json_body()?;
            extra::upload_attachment(st, base, record, field, &body)
        }
        (m, [base, table, record, "comments", rest @ ..]) if rest.len() <= 1 => {
            admit(st, base)?;
            let body = json_body()?;
            no_pings(extra::comments_route(st, &m, (base, table, record), rest.first().copied(), query, &body))
        }
        (Method::GET, ["meta", "bases", base, "tables"]) => {
            admit(st, base)?;
            let b = st.base(base)?;
            let tables: Vec<Value> = b.tables.iter().map(table_schema_json).collect();
            no_pings(Ok((StatusCode::OK, json!({"tables": tables}))))
        }
        (m, ["bases", base, "webhooks", rest @ ..]) => {
            admit(st, base)?;
            let body = json_body()?;
            no_pings(webhook_route(st, &m, base, rest, query, &body))
        }
        (m, [base, table, rest @ ..]) if rest.len() <= 1 => {
            admit(st, base)?;
            st.base(base)?;
            records_route(st, &m, base, table, rest.first().copied(), query, json_body)
        }
        _ => Err(not_found()),
    }
}

fn field_json(f: &FieldSt) -> Value {
    let mut v = json!({"id": f.id, "name": f.name, "type": f.kind});
    if let Some(d) = &f.description {
        v["description"] = json!(d);
    }
    if let Some(o) = &f.options {
        v["options"] = o.clone();
    }
    v
}

fn table_schema_json(t: &TableSt) -> Value {
    let fields: Vec<Value> = t.fields.iter().map(field_json).collect();
    let views: Vec<Value> = t.views.iter().map(|(id, name)| json!({"id": id, "name": name, "type": "grid"})).collect();
    let mut v = json!({"id": t.id, "name": t.name, "primaryFieldId": t.fields[0].id, "fields": fields, "views": views});
    if let Some(d) = &t.description {
        v["description"] = json!(d);
    }
    v
}

fn webhook_route(
    st: &mut St,
    m: &Method,
    base: &str,
    rest: &[&str],
    query: &[(String, String)],
    body: &Value,
) -> Reply {
    let max = st.cfg.max_webhooks_per_base;
    let retention = st.cfg.payload_retention;
    match (m.clone(), rest) {
        (Method::GET, []) => {
            let b = st.base(base)?;
            Ok((StatusCode::OK, json!({"webhooks": b.hooks.iter().map(hook_json).collect::<Vec<_>>()})))
        }
        (Method::POST, []) => {
            let spec = body.get("specification").cloned().ok_or_else(|| {
                err(422, "INVALID_REQUEST_MISSING_FIELDS", "Missing required field \"specification\"")
            })?;
            if spec["options"]["filters"]["dataTypes"].as_array().is_none_or(Vec::is_empty) {
                return Err(err(422, "INVALID_REQUEST_UNKNOWN", "specification.options.filters.dataTypes is required"));
            }
            let id = st.new_id("ach");
            st.counter += 1;
            let key = api_core::webhook::hmac_sha256(id.as_bytes(), &[&st.counter.to_be_bytes(), now_iso().as_bytes()]);
            let secret = base64::engine::general_purpose::STANDARD.encode(key);
            let b = st.base(base)?;
            if b.hooks.len() >= max {
                return Err(err(422, "TOO_MANY_WEBHOOKS_BY_OAUTH_INTEGRATION_IN_BASE", "Too many webhooks in base"));
            }
            let expiration = chrono::Utc::now() + chrono::Duration::days(7);
            b.hooks.push(HookSt {
                id: id.clone(),
                secret: secret.clone(),
                notification_url: body.get("notificationUrl").and_then(Value::as_str).map(str::to_owned),
                spec,
                expiration,
                notifications_enabled: true,
                hook_enabled: true,
                payloads: Vec::new(),
                expired: 0,
                last_result: None,
                last_success: None,
            });
            Ok((
                StatusCode::OK,
                json!({"id": id, "macSecretBase64": secret,
                       "expirationTime": expiration.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()}),
            ))
        }
        (m, [hook, rest @ ..]) => {
            let b = st.base(base)?;
            let idx = b.hooks.iter().position(|h| h.id == *hook).ok_or_else(not_found)?;
            match (m, rest) {
                (Method::DELETE, []) => {
                    b.hooks.remove(idx);
                    Ok((StatusCode::OK, Value::Null))
                }
                (Method::POST, ["refresh"]) => {
                    let h = &mut b.hooks[idx];
                    if !h.hook_enabled {
                        return Err(err(422, "CANNOT_REFRESH_DISABLED_WEBHOOK", "Cannot refresh a disabled webhook"));
                    }
                    h.expiration = chrono::Utc::now() + chrono::Duration::days(7);
                    Ok((
                        StatusCode::OK,
                        json!({"expirationTime": h.expiration.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()}),
                    ))
                }
                (Method::POST, ["enableNotifications"]) => {
                    let enable = body.get("enable").and_then(Value::as_bool).ok_or_else(|| {
                        err(422, "INVALID_REQUEST_MISSING_FIELDS", "Missing required field \"enable\"")
                    })?;
                    b.hooks[idx].notifications_enabled = enable;
                    Ok((StatusCode::OK, Value::Null))
                }
                (Method::GET, ["payloads"]) => {
                    let get = |k: &str| query.iter().find(|(q, _)| q == k).map(|(_, v)| v.clone());
                    let cursor: usize = match get("cursor") {
                        Some(c) => {
                            c.parse().map_err(|_| err(422, "INVALID_REQUEST_UNKNOWN", "cursor must be a number"))?
                        }
                        None => 1,
                    };
                    let limit: usize = match get("limit") {
                        Some(l) => {
                            l.parse().map_err(|_| err(422, "INVALID_REQUEST_UNKNOWN", "limit must be a number"))?
                        }
                        None => 50,
                    };
                    let limit = limit.clamp(1, 50);
                    let h = &mut b.hooks[idx];
                    if h.hook_enabled {
                        h.expiration = chrono::Utc::now() + chrono::Duration::days(7);
                    }
                    // "Payloads are deleted from Airtable's servers after 1 week whether or not the client has seen
                    // them. The cursor value for the next payload is never reset" (api-notes/airtable.md A.8)
                    let now = Instant::now();
                    let keep_from = h.payloads.iter().position(|(t, _)| now.duration_since(*t) < retention);
                    let purge = keep_from.unwrap_or(h.payloads.len());
                    h.payloads.drain(..purge);
                    h.expired += purge;
                    // an older cursor lists from the oldest retained payload: the response cursor then shows the gap
                    let first = h.expired + 1;
                    let from = cursor.max(first);
                    let start = from - first;
                    let page: Vec<Value> = h.payloads.iter().skip(start).take(limit).map(|(_, p)| p.clone()).collect();
                    let next = from + page.len();
                    let more = h.payloads.len() > start + page.len();
                    Ok((StatusCode::OK, json!({"cursor": next, "mightHaveMore": more, "payloads": page})))
                }
                _ => Err(not_found()),
            }
        }
        _ => Err(not_found()),
    }
}

struct ListQ {
    view: Option<String>,
    fields: Option<Vec<String>>,
    formula: Option<String>,
    sort: Vec<(String, bool)>,
    page_size: usize,
    max_records: Option<usize>,
    offset: Option<String>,
    by_id: bool,
    string_format: bool,
    tz_locale: bool,
    /// `recordMetadata` includes `commentCount`.
    comment_count: bool,
}

fn list_q_from_query(q: &[(String, String)]) -> Result<ListQ, ApiErr> {
    let get = |k: &str| q.iter().find(|(a, _)| a == k).map(|(_, v)| v.clone());
    let fields: Vec<String> =
        q.iter().filter(|(k, _)| k == "fields[]" || k == "fields").map(|(_, v)| v.clone()).collect();
    let mut sort = Vec::new();
    for i in 0.. {
        match get(&format!("sort[{i}][field]")) {
            Some(f) => sort.push((f, get(&format!("sort[{i}][direction]")).as_deref() == Some("desc"))),
            None => break,
        }
    }
    let num = |k: &str| -> Result<Option<usize>, ApiErr> {
        get(k)
            .map(|v| v.parse().map_err(|_| err(422, "INVALID_REQUEST_UNKNOWN", format!("{k} must be a number"))))
            .transpose()
    };
    Ok(ListQ {
        view: get("view"),
        fields: (!fields.is_empty()).then_some(fields),
        formula: get("filterByFormula"),
        sort,
        page_size: num("pageSize")?.unwrap_or(100),
        max_records: num("maxRecords")?,
        offset: get("offset"),
        by_id: get("returnFieldsByFieldId").is_some_and(|v| v == "true" || v == "1"),
        string_format: get("cellFormat").is_some_and(|v| v == "string"),
        tz_locale: get("timeZone").is_some() && get("userLocale").is_some(),
        comment_count: q.iter().any(|(k, v)| (k == "recordMetadata[]" || k == "recordMetadata") && v == "commentCount"),
    })
}

fn list_q_from_body(b: &Value) -> Result<ListQ, ApiErr> {
    let s = |k: &str| b.get(k).and_then(Value::as_str).map(str::to_owned);
    let n = |k: &str| b.get(k).and_then(Value::as_u64).and_then(|x| usize::try_from(x).ok());
    Ok(ListQ {
        view: s("view"),
        fields: b
            .get("fields")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect()),
        formula: s("filterByFormula"),
        sort: b
            .get("sort")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| {
                        Some((
                            x.get("field")?.as_str()?.to_owned(),
                            x.get("direction").and_then(Value::as_str) == Some("desc"),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default(),
        page_size: n("pageSize").unwrap_or(100),
        max_records: n("maxRecords"),
        offset: s("offset"),
        by_id: b.get("returnFieldsByFieldId").and_then(Value::as_bool).unwrap_or(false),
        string_format: s("cellFormat").as_deref() == Some("string"),
        tz_locale: s("timeZone").is_some() && s("userLocale").is_some(),
        comment_count: b
            .get("recordMetadata")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|m| m.as_str() == Some("commentCount"))),
    })
}

fn cmp_values(a: Option<&Value>, b: Option<&Value>) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(Value::Number(x)), Some(Value::Number(y))) => {
            x.as_f64().unwrap_or(0.0).partial_cmp(&y.as_f64().unwrap_or(0.0)).unwrap_or(Ordering::Equal)
        }
        (Some(x), Some(y)) => formula::cell_to_v(Some(x)).text_cmp(&formula::cell_to_v(Some(y))),
    }
}

impl formula::V {
    fn text_cmp(&self, other: &Self) -> std::cmp::Ordering {
        let t = |v: &Self| match v {
            Self::Str(s) => s.clone(),
            other => format!("{other:?}"),
        };
        t(self).cmp(&t(other))
    }
}

fn stringify(v: &Value) -> Value {
    match v {
        Value::String(_) => v.clone(),
        Value::Bool(true) => json!("checked"),
        Value::Array(a) => json!(
            a.iter()
                .map(|x| stringify(x).as_str().map_or_else(|| x.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Object(_) => json!(formula::display_object(v)),
        other => json!(other.to_string()),
    }
}

fn list_records(st: &mut St, base: &str, table: &str, q: &ListQ) -> Reply {
    if q.page_size == 0 || q.page_size > 100 {
        return Err(err(422, "INVALID_REQUEST_UNKNOWN", "pageSize must be between 1 and 100"));
    }
    if q.string_format && !q.tz_locale {
        return Err(err(
            422,
            "INVALID_REQUEST_UNKNOWN",
            "timeZone and userLocale are required when cellFormat is string",
        ));
    }
    let mut counter = st.counter;
    let b = st.bases.iter_mut().find(|b| b.id == base).ok_or_else(not_found_or_forbidden)?;
    let t = find_table(b, table)?;
    if let Some(v) = &q.view
        && !t.views.iter().any(|(id, name)| id == v || name == v)
    {
        return Err(err(422, "VIEW_NAME_NOT_FOUND", format!("Could not find view {v} in table {}", t.name)));
    }
    if let Some(fs) = &q.fields
        && let Some(bad) = fs.iter().find(|f| t.field(f).is_none())
    {
        return Err(err(422, "UNKNOWN_FIELD_NAME", format!("Unknown field name: \"{bad}\"")));
    }
    let (snapshot_key, ids, start) = match &q.offset {
        Some(off) => {
            let (itr, rec) = off.split_once('/').ok_or_else(iterator_gone)?;
            let ids = st.iterators.get(itr).ok_or_else(iterator_gone)?.clone();
            let start = ids.iter().position(|i| i == rec).ok_or_else(iterator_gone)?;
            (itr.to_owned(), ids, start)
        }
        None => {
            let expr =
                q.formula.as_deref().filter(|f| !f.trim().is_empty()).map(formula::parse).transpose().map_err(|e| {
                    err(422, "INVALID_FILTER_BY_FORMULA", format!("The formula for filtering records is invalid: {e}"))
                })?;
            let mut rows: Vec<&RecordSt> = Vec::new();
            for r in &t.records {
                let keep = match &expr {
                    None => true,
                    Some(e) => formula::matches(e, &r.id, &|name| t.cell_by_name(r, name)).map_err(|m| {
                        err(
                            422,
                            "INVALID_FILTER_BY_FORMULA",
                            format!("The formula for filtering records is invalid: {m}"),
                        )
                    })?,
                };
                if keep {
                    rows.push(r);
                }
            }
            for (field, desc) in q.sort.iter().rev() {
                let f = t
                    .field(field)
                    .ok_or_else(|| err(422, "UNKNOWN_FIELD_NAME", format!("Unknown field name: \"{field}\"")))?;
                rows.sort_by(|a, b| {
                    let o = cmp_values(a.cells.get(&f.id), b.cells.get(&f.id));
                    if *desc { o.reverse() } else { o }
                });
            }
            let mut ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
            if let Some(m) = q.max_records {
                ids.truncate(m);
            }
            counter += 1;
            let digest = api_core::webhook::hmac_sha256(b"itr", &[&counter.to_be_bytes()]);
            (format!("itr{}{:06}", b62(&digest, 8), counter % 1_000_000), ids, 0)
        }
    };
    let end = (start + q.page_size).min(ids.len());
    let mut records = Vec::new();
    for id in &ids[start..end] {
        if let Some(r) = t.records.iter().find(|r| &r.id == id) {
            let mut v = t.record_json(r, q.by_id, q.fields.as_deref());
            if q.comment_count {
                v["commentCount"] = json!(t.comments.get(&r.id).map_or(0, Vec::len));
            }
            if q.string_format
                && let Some(obj) = v["fields"].as_object_mut()
            {
                for val in obj.values_mut() {
                    *val = stringify(val);
                }
            }
            records.push(v);
        }
    }
    let mut out = json!({"records": records});
    if end < ids.len() {
        out["offset"] = json!(format!("{snapshot_key}/{}", ids[end]));
        st.iterators.insert(snapshot_key, ids);
    }
    st.counter = counter;
    Ok((StatusCode::OK, out))
}

fn iterator_gone() -> ApiErr {
    err(422, "LIST_RECORDS_ITERATOR_NOT_AVAILABLE", "Iteration timed out. Please restart iteration from the beginning.")
}

const MAX_BATCH: usize = 10;

fn too_many() -> ApiErr {
    err(422, "INVALID_RECORDS", "You can create, update or delete at most 10 records per request")
}

#[allow(clippy::too_many_lines)]
fn records_route(
    st: &mut St,
    m: &Method,
    base: &str,
    table: &str,
    record: Option<&str>,
    query: &[(String, String)],
    json_body: impl Fn() -> Result<Value, ApiErr>,
) -> Result<((StatusCode, Value), Vec<PendingPing>), ApiErr> {
    let api_user = st.api_user.clone();
    match (m.clone(), record) {
        (Method::GET, None) => Ok((list_records(st, base, table, &list_q_from_query(query)?)?, Vec::new())),
        (Method::POST, Some("listRecords")) => {
            let q = list_q_from_body(&json_body()?)?;
            Ok((list_records(st, base, table, &q)?, Vec::new()))
        }
        (Method::GET, Some(rid)) => {
            // the read options of a single record: returnFieldsByFieldId, cellFormat (+ timeZone/userLocale)
            let q = list_q_from_query(query)?;
            if q.string_format && !q.tz_locale {
                return Err(err(
                    422,
                    "INVALID_REQUEST_UNKNOWN",
                    "timeZone and userLocale are required when cellFormat is string",
                ));
            }
            let b = st.base(base)?;
            let t = find_table(b, table)?;
            let r = t.records.iter().find(|r| r.id == rid).ok_or_else(not_found)?;
            let mut v = t.record_json(r, q.by_id, None);
            if q.string_format
                && let Some(obj) = v["fields"].as_object_mut()
            {
                for val in obj.values_mut() {
                    *val = stringify(val);
                }
            }
            Ok(((StatusCode::OK, v), Vec::new()))
        }
        (Method::POST, None) => {
            let body = json_body()?;
            let typecast = body.get("typecast").and_then(Value::as_bool).unwrap_or(false);
            let by_id = body.get("returnFieldsByFieldId").and_then(Value::as_bool).unwrap_or(false);
            let single = body.get("records").is_none();
            let inputs: Vec<Value> = if single {
                vec![
                    body.get("fields")
                        .cloned()
                        .ok_or_else(|| err(422, "INVALID_REQUEST_MISSING_FIELDS", "Missing records or fields"))?,
                ]
            } else {
                body["records"]
                    .as_array()
                    .ok_or_else(|| err(422, "INVALID_RECORDS", "records must be an array"))?
                    .iter()
                    .map(|r| r.get("fields").cloned().unwrap_or_else(|| json!({})))
                    .collect()
            };
            if inputs.len() > MAX_BATCH {
                return Err(too_many());
            }
            let counter = &mut st.counter;
            let b = st.bases.iter_mut().find(|b| b.id == base).ok_or_else(not_found_or_forbidden)?;
            let t = find_table(b, table)?;
            let mut validated = Vec::new();
            for f in &inputs {
                validated.push(validate_fields(t, f, typecast)?);
            }
            let mut out = Vec::new();
            let mut changes = Vec::new();
            for (cells, created) in validated {
                add_choices(t, created, counter);
                *counter += 1;
                let digest = api_core::webhook::hmac_sha256(b"rec", &[&counter.to_be_bytes()]);
                let id = format!("rec{}{:06}", b62(&digest, 8), *counter % 1_000_000);
                let r = RecordSt {
                    id: id.clone(),
                    created_time: now_iso(),
                    cells: cells.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).collect(),
                };
                out.push(t.record_json(&r, by_id, None));
                changes.push(Change::Created { id, created_time: r.created_time.clone(), cells: r.cells.clone() });
                t.records.push(r);
            }
            let tid = t.id.clone();
            let pings = record_payloads(st, base, &tid, &changes, "publicApi", &api_user);
            let v = if single { out.pop().unwrap_or(Value::Null) } else { json!({"records": out}) };
            Ok(((StatusCode::OK, v), pings))
        }
        (m @ (Method::PATCH | Method::PUT), rid) => {
            let replace = m == Method::PUT;
            let body = json_body()?;
            let typecast = body.get("typecast").and_then(Value::as_bool).unwrap_or(false);
            let by_id = body.get("returnFieldsByFieldId").and_then(Value::as_bool).unwrap_or(false);
            let upsert = body.get("performUpsert").cloned();
            let single = rid.is_some();
            let inputs: Vec<(Option<String>, Value)> = match rid {
                Some(rid) => vec![(Some(rid.to_owned()), body.get("fields").cloned().unwrap_or_else(|| json!({})))],
                None => body
                    .get("records")
                    .and_then(Value::as_array)
                    .ok_or_else(|| err(422, "INVALID_RECORDS", "records must be an array"))?
                    .iter()
                    .map(|r| {
                        (
                            r.get("id").and_then(Value::as_str).map(str::to_owned),
                            r.get("fields").cloned().unwrap_or_else(|| json!({})),
                        )
                    })
                    .collect(),
            };
            if inputs.len() > MAX_BATCH {
                return Err(too_many());
            }
            let merge_on: Option<Vec<String>> = match &upsert {
                Some(u) => {
                    let list: Vec<String> = u
                        .get("fieldsToMergeOn")
                        .and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
                        .unwrap_or_default();
                    if list.is_empty() || list.len() > 3 {
                        return Err(err(422, "INVALID_REQUEST_UNKNOWN", "fieldsToMergeOn must contain 1 to 3 fields"));
                    }
                    Some(list)
                }
                None => None,
            };
            let counter = &mut st.counter;
            let b = st.bases.iter_mut().find(|b| b.id == base).ok_or_else(not_found_or_forbidden)?;
            let t = find_table(b, table)?;
            // resolve merge fields to ids
            let merge_ids: Option<Vec<String>> = match &merge_on {
                Some(list) => Some(
                    list.iter()
                        .map(|k| {
                            t.field(k)
                                .map(|f| f.id.clone())
                                .ok_or_else(|| err(422, "UNKNOWN_FIELD_NAME", format!("Unknown field name: \"{k}\"")))
                        })
                        .collect::<Result<_, _>>()?,
                ),
                None => None,
            };
            // validate everything first (all-or-nothing)
            let mut plan = Vec::new();
            let mut scratch = t.clone();
            for (id, fields) in &inputs {
                let (cells, created) = validate_fields(&scratch, fields, typecast)?;
                add_choices(&mut scratch, created.clone(), &mut 0);
                let target = match (id, &merge_ids) {
                    (Some(id), _) => {
                        if !scratch.records.iter().any(|r| &r.id == id) {
                            return Err(if single {
                                not_found()
                            } else {
                                err(422, "ROW_DOES_NOT_EXIST", format!("Record ID {id} does not exist"))
                            });
                        }
                        Some(id.clone())
                    }
                    (None, Some(mids)) => {
                        let mut key = Vec::new();
                        for mid in mids {
                            let v =
                                cells.iter().find(|(k, _)| k == mid).and_then(|(_, v)| v.clone()).ok_or_else(|| {
                                    err(
                                        422,
                                        "INVALID_REQUEST_MISSING_FIELDS",
                                        "Each record must include every field in fieldsToMergeOn",
                                    )
                                })?;
                            key.push((mid.clone(), v));
                        }
                        let matches: Vec<&RecordSt> = scratch
                            .records
                            .iter()
                            .filter(|r| key.iter().all(|(k, v)| r.cells.get(k) == Some(v)))
                            .collect();
                        match matches.len() {
                            0 => None,
                            1 => Some(matches[0].id.clone()),
                            n => {
                                return Err(err(
                                    422,
                                    "INVALID_VALUE_FOR_COLUMN",
                                    format!(
                                        "Cannot upsert: more than one record ({n}) matches the fieldsToMergeOn values; \
                                         fieldsToMergeOn must identify a single record"
                                    ),
                                ));
                            }
                        }
                    }
                    (None, None) => {
                        return Err(err(422, "INVALID_RECORDS", "Each record must have an id (or use performUpsert)"));
                    }
                };
                // apply on the scratch copy so later records in the same request see earlier ones
                match &target {
                    Some(id) => {
                        if let Some(r) = scratch.records.iter_mut().find(|r| &r.id == id) {
                            apply(r, cells.clone(), replace);
                        }
                    }
                    None => {
                        *counter += 1;
                        let digest = api_core::webhook::hmac_sha256(b"rec", &[&counter.to_be_bytes()]);
                        let nid = format!("rec{}{:06}", b62(&digest, 8), *counter % 1_000_000);
                        scratch.records.push(RecordSt {
                            id: nid.clone(),
                            created_time: now_iso(),
                            cells: cells.iter().filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v))).collect(),
                        });
                        plan.push((nid, true));
                        continue;
                    }
                }
                plan.push((target.unwrap_or_default(), false));
            }
            // commit: compute changes against the original, then swap in the scratch table
            let mut changes = Vec::new();
            let mut created_ids = Vec::new();
            let mut updated_ids = Vec::new();
            let mut out = Vec::new();
            let mut seen = Vec::new();
            for (id, created) in &plan {
                let after = scratch.records.iter().find(|r| &r.id == id).cloned().ok_or_else(not_found)?;
                out.push(scratch.record_json(&after, by_id, None));
                if seen.contains(id) {
                    continue;
                }
                seen.push(id.clone());
                match t.records.iter().find(|r| &r.id == id) {
                    Some(before) => {
                        updated_ids.push(json!(id));
                        changes.push(Change::Updated {
                            id: id.clone(),
                            before: before.cells.clone(),
                            after: after.cells.clone(),
                        });
                    }
                    None => {
                        if *created {
                            created_ids.push(json!(id));
                        }
                        changes.push(Change::Created {
                            id: id.clone(),
                            created_time: after.created_time.clone(),
                            cells: after.cells.clone(),
                        });
                    }
                }
            }
            *t = scratch;
            let tid = t.id.clone();
            let pings = record_payloads(st, base, &tid, &changes, "publicApi", &api_user);
            let v = if single {
                out.pop().unwrap_or(Value::Null)
            } else if upsert.is_some() {
                json!({"records": out, "createdRecords": created_ids, "updatedRecords": updated_ids})
            } else {
                json!({"records": out})
            };
            Ok(((StatusCode::OK, v), pings))
        }
        (Method::DELETE, rid) => {
            let ids: Vec<String> = match rid {
                Some(r) => vec![r.to_owned()],
                None => {
                    query.iter().filter(|(k, _)| k == "records[]" || k == "records").map(|(_, v)| v.clone()).collect()
                }
            };
            if ids.len() > MAX_BATCH {
                return Err(too_many());
            }
            let b = st.base(base)?;
            let t = find_table(b, table)?;
            if let Some(missing) = ids.iter().find(|id| !t.records.iter().any(|r| &r.id == *id)) {
                return Err(if rid.is_some() {
                    not_found()
                } else {
                    err(422, "ROW_DOES_NOT_EXIST", format!("Record ID {missing} does not exist"))
                });
            }
            t.records.retain(|r| !ids.contains(&r.id));
            t.comments.retain(|r, _| !ids.contains(r));
            let tid = t.id.clone();
            let changes: Vec<Change> = ids.iter().map(|id| Change::Destroyed { id: id.clone() }).collect();
            let pings = record_payloads(st, base, &tid, &changes, "publicApi", &api_user);
            let v = match rid {
                Some(r) => json!({"id": r, "deleted": true}),
                None => json!({"records": ids.iter().map(|id| json!({"id": id, "deleted": true})).collect::<Vec<_>>()}),
            };
            Ok(((StatusCode::OK, v), pings))
        }
        _ => Err(not_found()),
    }
}
