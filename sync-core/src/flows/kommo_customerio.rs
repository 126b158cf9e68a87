//! Kommo ↔ Customer.io lifecycle messaging: pipeline events drive Customer.io people and events; email engagement
//! flows back into the deal card.
//!
//! | source | what arrives | what the flow does |
//! |---|---|---|
//! | `kommo` | Kommo's form-encoded `leads[add]` / `leads[status]` webhooks behind a secret path token (Kommo signs nothing); also `backfill` | fetches the lead and its main contact, identifies the person (id = email, or the Kommo contact id) with mapped attributes, `kommo_lead_id`, `kommo_lead_created_at` and `_timestamp` = the event time, then tracks `kommo_lead_created` / `kommo_stage_changed` (old and new stage names) with an event id derived from the Kommo event |
//! | `customerio` | signed reporting webhooks (`X-CIO-Signature`): email opened, clicked, unsubscribed, bounced | finds the Kommo contact by email and its active deal, adds a note (campaign/broadcast, subject, link); unsubscribed also sets a contact field and/or tag; N opens within a window → one call task for the deal's owner |
//!
//! # Exactly-once effects
//! - Kommo events dedup on [`kommo_api::webhook::WebhookEvent::dedup_key`] (`lead:status:<id>:<time>:<status>`),
//!   reporting webhooks on `event_id`.
//! - The Customer.io event id is [`customerio_api::EventId::from_source_key_unix`] of the Kommo event key: a retry, a
//!   replay, or a redelivery that slipped past the inbox is deduplicated by Customer.io itself.
//! - Identify is an upsert (`PUT /customers/{id}`); it carries `_timestamp` = the Kommo event time, and a local
//!   watermark per person skips an event older than one already applied, so an out-of-order stale stage change
//!   never overwrites newer attributes.
//! - Notes and tasks are created inside journaled steps that first look for an identical note / open task.
//! - Engagement: every open counts once per event in a sliding window in the store ([`crate::Ctx::count_hit`]);
//!   when the count reaches the threshold and no task was created for that person within the window, one task
//!   is created (the time of the last task is kept in the store's cursors).
//!
//! # Batches
//! Kommo lead events are handled in batches ([`crate::Flow::handle_batch`]; `[batch] max_events`, default 250):
//! the events the worker has claimed together (whatever is ready; a lone event is handled at once, through the
//! v1 calls above) share one Kommo `GET /api/v4/leads?filter[id][]=…&with=contacts` per 250 leads, one contacts
//! GET (and, when the mapping reads `company.name`, one companies GET) by `filter[id][]`, one GET per distinct
//! responsible user; then one Track v2 `POST /api/v2/batch` of `person`/`identify` operations (the event time as
//! the operation's `timestamp`, v2's `_timestamp`) and one of `person`/`event` operations with the same event ids
//! (the client splits a body at 500 KB). Each event keeps its own journal steps (`identify:<key>`, `track:<key>`,
//! the same as one at a time) and its watermark marker ([`crate::step_batch`]): an operation over a documented
//! limit is not sent and fails alone, one Customer.io refuses in its 207 answer fails alone (dead letter: the same
//! operation would be refused again) and gets no event, and the events of a request that failed as a whole are
//! retried, each alone. Customer.io reporting webhooks are not batched: each is a Kommo search by email, a note
//! with its own duplicate check, and the engagement count, person by person.

use std::{
    collections::{BTreeSet, HashMap},
    fmt::Write as _,
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use customerio_api::{Event as CioEvent, EventId, Identifier, Identify, Metric, Operation, ReportingEvent, Verifier};
use futures::TryStreamExt as _;
use kommo_api::{
    CustomFieldsExt as _, EntityType, FieldType as KmFieldType, FieldValueWrite, LeadId, ListParams, PipelineId,
    StatusId, UserId,
    common::TagRef,
    contacts::ContactUpdate,
    notes::NewNote,
    tasks::NewTask,
    webhook::{WebhookAction, WebhookEvent},
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

// Related Kommo entities read once for a batch of leads; one missing there is read alone by `person_for`.
use super::support::{Fault, LeadLookups as Known, boxed, leads_by_id};
use crate::{
    BatchItem, BatchStep, BoxError, Ctx, Event, Flow, KeyError, Markers, NewEvent, Outcome, RawEvent, Store,
    mapping::{Direction, FieldKind, FieldSchema, Mapping, Schema},
    server::{FnVerifier, SourceRoute, VerifyRequest},
    step_batch,
};

/// Source of Kommo webhooks (and of `backfill` events).
pub const SOURCE_KOMMO: &str = "kommo";
/// Source of Customer.io reporting webhooks.
pub const SOURCE_CUSTOMERIO: &str = "customerio";
/// Cursor source holding, per person, the unix time of the last engagement task.
const CURSOR_ENGAGEMENT: &str = "customerio-engagement";
/// Event names tracked in Customer.io.
pub const EVENT_LEAD_CREATED: &str = "kommo_lead_created";
/// See [`EVENT_LEAD_CREATED`].
pub const EVENT_STAGE_CHANGED: &str = "kommo_stage_changed";

// ------------------------------------------------------------------------------------------------- config

/// The flow's configuration (TOML). No secrets: tokens and the webhook signing key come from the environment.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Kommo side.
    pub kommo: KommoConfig,
    /// Customer.io side.
    #[serde(default)]
    pub customerio: CustomerIoConfig,
    /// Attribute mapping, Kommo (source) → Customer.io person attributes (target). Kommo names: `name` (deal
    /// name), `price`, `stage`, `pipeline`, `responsible_user`, `contact.name`, `contact.email`, `contact.phone`,
    /// `company.name`, or a Kommo lead custom field by name. One-way only.
    #[serde(default = "default_mapping")]
    pub mapping: Mapping,
    /// Engagement rule: N opens by one person within a window → one call task.
    #[serde(default)]
    pub engagement: Engagement,
    /// What an unsubscribe sets in Kommo.
    #[serde(default)]
    pub unsubscribe: Unsubscribe,
    /// Which reporting-webhook metrics become Kommo notes.
    #[serde(default)]
    pub notes: Notes,
    /// Batching of Kommo lead events.
    #[serde(default)]
    pub batch: Batch,
}

pub use super::support::Batch;

/// Kommo settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KommoConfig {
    /// The account URL, e.g. `https://yourcompany.kommo.com`.
    pub base_url: String,
    /// If set, webhooks from another account id are rejected (dead-lettered with the reason).
    #[serde(default)]
    pub account_id: Option<u64>,
    /// Pipelines to watch (empty: all).
    #[serde(default)]
    pub pipeline_ids: Vec<u64>,
    /// This process's share of the account's request budget (Kommo allows 7 per second per account; default 7).
    /// Limits are kept per process: with several `serve` processes on one account, split it (e.g. 3 each for two).
    #[serde(default = "default_kommo_rps")]
    pub requests_per_second: u32,
}

fn default_kommo_rps() -> u32 {
    kommo_api::client::DEFAULT_RATE_LIMIT_PER_SECOND
}

/// How people are identified in Customer.io.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentifyBy {
    /// The contact's email is the person's identifier (email-or-id workspaces).
    #[default]
    Email,
    /// The Kommo contact id is the person's `id`; the email is set as the `email` attribute.
    ContactId,
}

/// Customer.io settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerIoConfig {
    /// `us` or `eu`.
    #[serde(default = "default_region")]
    pub region: String,
    /// Track API site id (not a secret; the API key comes from the environment).
    #[serde(default)]
    pub site_id: String,
    /// How people are identified.
    #[serde(default)]
    pub identify_by: IdentifyBy,
    /// How far `X-CIO-Timestamp` may be from now, in seconds (0: signature only; default 7 days and 1 hour:
    /// Customer.io retries for 7 days). Replays inside the window are deduplicated on `event_id` by the inbox.
    #[serde(default = "default_tolerance")]
    pub signature_tolerance_secs: u64,
    /// API base URL override (a proxy, or a fake in tests); default: the region's endpoints.
    #[serde(default)]
    pub base_url: Option<String>,
}

impl Default for CustomerIoConfig {
    fn default() -> Self {
        Self {
            region: default_region(),
            site_id: String::new(),
            identify_by: IdentifyBy::Email,
            signature_tolerance_secs: default_tolerance(),
            base_url: None,
        }
    }
}

/// The engagement rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Engagement {
    /// Opens needed (0 disables the rule).
    #[serde(default = "default_opens")]
    pub opens: u32,
    /// Window in hours.
    #[serde(default = "default_window_hours")]
    pub window_hours: u64,
    /// Task type id (1 = call in Kommo).
    #[serde(default = "default_task_type")]
    pub task_type_id: u64,
    /// Hours until the task is due.
    #[serde(default = "default_due_hours")]
    pub due_in_hours: u64,
}

impl Default for Engagement {
    fn default() -> Self {
        Self {
            opens: default_opens(),
            window_hours: default_window_hours(),
            task_type_id: default_task_type(),
            due_in_hours: default_due_hours(),
        }
    }
}

impl Engagement {
    fn window(&self) -> Duration {
        Duration::from_secs(self.window_hours.saturating_mul(3600))
    }
}

/// What an unsubscribe sets on the Kommo contact.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Unsubscribe {
    /// A contact custom field (by name): a checkbox is checked, a date gets the time, text gets "unsubscribed".
    #[serde(default)]
    pub contact_field: Option<String>,
    /// A tag added to the contact (existing tags are kept).
    #[serde(default)]
    pub contact_tag: Option<String>,
}

/// Which metrics become notes (unsubscribes always do).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Notes {
    /// A note per open.
    #[serde(default = "yes")]
    pub opened: bool,
    /// A note per click.
    #[serde(default = "yes")]
    pub clicked: bool,
    /// A note per bounce.
    #[serde(default = "yes")]
    pub bounced: bool,
}

impl Default for Notes {
    fn default() -> Self {
        Self { opened: true, clicked: true, bounced: true }
    }
}

fn yes() -> bool {
    true
}
fn default_region() -> String {
    "us".into()
}
fn default_tolerance() -> u64 {
    customerio_api::webhook::DEFAULT_TOLERANCE.as_secs()
}
fn default_opens() -> u32 {
    3
}
fn default_window_hours() -> u64 {
    48
}
fn default_task_type() -> u64 {
    1
}
fn default_due_hours() -> u64 {
    8
}

/// The mapping used when the config has none (the article's attributes).
#[must_use]
pub fn default_mapping() -> Mapping {
    Mapping::from_toml(
        r#"
        [[fields]]
        source = "contact.name"
        target = "name"
        [[fields]]
        source = "contact.phone"
        target = "phone"
        [[fields]]
        source = "company.name"
        target = "company"
        [[fields]]
        source = "name"
        target = "kommo_deal_name"
        [[fields]]
        source = "stage"
        target = "kommo_stage"
        [[fields]]
        source = "pipeline"
        target = "kommo_pipeline"
        [[fields]]
        source = "price"
        target = "deal_value"
        convert = { type = "number" }
        [[fields]]
        source = "responsible_user"
        target = "responsible_name"
        "#,
    )
    .expect("the default mapping is valid TOML")
}

impl Config {
    /// Parses TOML.
    ///
    /// # Errors
    /// With the TOML error (which names the line and the unknown key).
    pub fn from_toml(s: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(s)
    }
}

const KOMMO_BUILTINS: &[(&str, FieldKind)] = &[
    ("name", FieldKind::Text),
    ("price", FieldKind::Number),
    ("stage", FieldKind::Text),
    ("pipeline", FieldKind::Text),
    ("responsible_user", FieldKind::Text),
    ("contact.name", FieldKind::Text),
    ("contact.email", FieldKind::Text),
    ("contact.phone", FieldKind::Text),
    ("company.name", FieldKind::Text),
];

/// Attributes the flow sets itself (a mapping may not target them).
const RESERVED_ATTRIBUTES: &[&str] = &["id", "email", "cio_id", "_timestamp", "_update", "created_at", "kommo_lead_id"];

// ------------------------------------------------------------------------------------------------- errors

/// Why start-up or backfill failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// The config does not match the live systems.
    #[error("configuration does not match the live systems:\n{0}")]
    Invalid(String),
    /// Kommo failed.
    #[error("Kommo: {0}")]
    Kommo(Box<kommo_api::Error>),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::Error),
}

impl From<kommo_api::Error> for SetupError {
    fn from(e: kommo_api::Error) -> Self {
        Self::Kommo(Box::new(e))
    }
}

impl From<customerio_api::Error> for Fault {
    fn from(e: customerio_api::Error) -> Self {
        if e.is_retryable() {
            Self::Retry(e.retry_hint(), format!("Customer.io: {e}"))
        } else {
            Self::Fail(format!("Customer.io: {e}"))
        }
    }
}

// ------------------------------------------------------------------------------------------------- the flow

/// Counters shown by the demo and in logs.
#[derive(Debug, Default)]
pub struct FlowStats {
    /// People identified in Customer.io.
    pub identified: AtomicU64,
    /// Events tracked in Customer.io (`kommo_lead_created` / `kommo_stage_changed`).
    pub events_tracked: AtomicU64,
    /// Leads skipped because their main contact has no email.
    pub skipped_no_email: AtomicU64,
    /// Kommo events skipped for another reason (pipeline not watched, action not handled, lead deleted).
    pub filtered: AtomicU64,
    /// Identifies skipped because a newer event for the person was already applied.
    pub stale_skipped: AtomicU64,
    /// Notes added in Kommo.
    pub notes_added: AtomicU64,
    /// Engagement tasks created in Kommo.
    pub tasks_created: AtomicU64,
    /// Contacts marked unsubscribed in Kommo.
    pub unsubscribes: AtomicU64,
    /// Reporting webhooks with no Kommo contact or no active deal.
    pub unmatched: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// What start-up learned from Kommo.
#[derive(Debug, Clone, Default)]
struct Resolved {
    /// Pipeline id → name.
    pipelines: HashMap<u64, String>,
    /// (pipeline id, status id) → stage name; also (0, status id) for the shared won/lost statuses.
    stages: HashMap<(u64, u64), String>,
    /// Lead custom fields used by the mapping: name → (id, type).
    lead_fields: HashMap<String, (kommo_api::CustomFieldId, KmFieldType)>,
    /// The unsubscribe contact field.
    unsubscribe_field: Option<(kommo_api::CustomFieldId, KmFieldType)>,
}

/// The Kommo ↔ Customer.io flow. Build it, call [`KommoCustomerIo::validate`], register it with an
/// [`crate::Engine`] and mount [`KommoCustomerIo::routes`].
#[derive(Debug, Clone)]
pub struct KommoCustomerIo {
    config: Arc<Config>,
    kommo: kommo_api::Client,
    cio: customerio_api::Client,
    resolved: Arc<RwLock<Resolved>>,
    stats: Arc<FlowStats>,
}

/// The person a lead is identified as.
struct PersonInfo {
    who: Identifier,
    email: String,
    /// Mapped attributes.
    attrs: Map<String, Value>,
}

/// Skip reason of an event whose lead Kommo no longer returns.
const SKIP_GONE: &str = "lead no longer exists";

/// A lead event's writes, decided before any of them ([`KommoCustomerIo::plan_lead`]).
struct LeadPlan {
    /// The Kommo event's dedup key (names the journal steps `identify:<key>` and `track:<key>`).
    key: String,
    /// The person.
    who: Identifier,
    /// The event time (unix seconds): the identify's `_timestamp` / v2 `timestamp` and the event's timestamp.
    time: i64,
    /// The Customer.io event id (derived from the Kommo event key and time).
    event_id: EventId,
    /// The identify's attributes, the person's watermark key and time; `None` when the event is older than one
    /// already applied to the person.
    identify: Option<(Map<String, Value>, String, DateTime<Utc>)>,
    /// The event to track (name and data); `None` for a backfill event.
    track: Option<(&'static str, Map<String, Value>)>,
}

/// What a lead event comes to.
enum Planned {
    /// Nothing to write, for this reason.
    Skip(&'static str),
    /// Write this.
    Go(LeadPlan),
}

impl KommoCustomerIo {
    /// Builds the flow.
    #[must_use]
    pub fn new(config: Config, kommo: kommo_api::Client, cio: customerio_api::Client) -> Self {
        Self { config: Arc::new(config), kommo, cio, resolved: Arc::default(), stats: Arc::default() }
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Live counters.
    #[must_use]
    pub fn stats(&self) -> &Arc<FlowStats> {
        &self.stats
    }

    fn resolved(&self) -> Resolved {
        self.resolved.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Checks the config against Kommo (pipelines, lead custom fields used by the mapping, the unsubscribe contact
    /// field) and the mapping's shape, and remembers pipeline and stage names. Every problem is reported, each
    /// naming the entry and a fix.
    ///
    /// # Errors
    /// [`SetupError::Invalid`] listing the problems, or the API error that prevented the check.
    pub async fn validate(&self) -> Result<(), SetupError> {
        let cfg = &self.config;
        let mut problems = Vec::new();
        let pipelines = self.kommo.pipelines().list().await?;
        let mut resolved = Resolved::default();
        for p in &pipelines {
            resolved.pipelines.insert(p.id.get(), p.name.clone());
            for s in p.statuses() {
                resolved.stages.insert((p.id.get(), s.id.get()), s.name.clone());
                if s.id == StatusId::WON || s.id == StatusId::LOST {
                    resolved.stages.insert((0, s.id.get()), s.name.clone());
                }
            }
        }
        for id in &cfg.kommo.pipeline_ids {
            if !resolved.pipelines.contains_key(id) {
                let known: Vec<String> = pipelines.iter().map(|p| format!("{} ({})", p.id, p.name)).collect();
                problems.push(format!("kommo.pipeline_ids: no pipeline {id}; pipelines: {}", known.join(", ")));
            }
        }
        // mapping: sources are Kommo builtins or lead custom fields; targets are free-form attributes
        let lead_fields = self.kommo.custom_fields(EntityType::Leads).all().await?;
        let mut source: Vec<FieldSchema> = KOMMO_BUILTINS.iter().map(|(n, k)| FieldSchema::new(*n, *k)).collect();
        for f in &lead_fields {
            let kind = match f.field_type {
                KmFieldType::Numeric | KmFieldType::Price | KmFieldType::Monetary => FieldKind::Number,
                KmFieldType::Date | KmFieldType::Birthday => FieldKind::Date,
                KmFieldType::DateTime => FieldKind::DateTime,
                _ => FieldKind::Text,
            };
            source.push(FieldSchema::new(f.name.clone(), kind));
            if cfg.mapping.fields.iter().any(|m| m.source == f.name) {
                resolved.lead_fields.insert(f.name.clone(), (f.id, f.field_type.clone()));
            }
        }
        let target: Vec<FieldSchema> =
            cfg.mapping.fields.iter().map(|m| FieldSchema::new(m.target.clone(), FieldKind::Text)).collect();
        for fm in &cfg.mapping.fields {
            if fm.direction == Direction::TwoWay {
                problems.push(format!(
                    "mapping `{}` → `{}`: Customer.io attributes are one-way; remove `direction`",
                    fm.source, fm.target
                ));
            }
            if RESERVED_ATTRIBUTES.contains(&fm.target.as_str()) {
                problems.push(format!(
                    "mapping `{}` → `{}`: `{}` is set by the flow itself; pick another attribute name",
                    fm.source, fm.target, fm.target
                ));
            }
        }
        if let Err(errors) = cfg.mapping.validate(&Schema::new("Kommo", source), &Schema::new("Customer.io", target)) {
            problems.push(errors.to_string());
        }
        if let Some(name) = &cfg.unsubscribe.contact_field {
            let contact_fields = self.kommo.custom_fields(EntityType::Contacts).all().await?;
            match contact_fields.iter().find(|f| &f.name == name) {
                Some(f) => resolved.unsubscribe_field = Some((f.id, f.field_type.clone())),
                None => {
                    let names: Vec<FieldSchema> =
                        contact_fields.iter().map(|f| FieldSchema::new(f.name.clone(), FieldKind::Text)).collect();
                    let hint = Schema::new("Kommo", names)
                        .closest(name)
                        .map_or_else(String::new, |c| format!("; did you mean `{c}`?"));
                    problems.push(format!("unsubscribe.contact_field: no contact custom field `{name}`{hint}"));
                }
            }
        }
        if cfg.engagement.opens > 0 && cfg.engagement.window_hours == 0 {
            problems.push("engagement.window_hours: must be at least 1 (or set engagement.opens = 0)".into());
        }
        if !problems.is_empty() {
            return Err(SetupError::Invalid(problems.join("\n")));
        }
        *self.resolved.write().unwrap_or_else(std::sync::PoisonError::into_inner) = resolved;
        Ok(())
    }

    /// The webhook routes: `kommo` behind a secret path token (`/hooks/kommo/<token>`) and `customerio` verified
    /// with the reporting webhook's signing key (a forged or stale signature is a 401 at the router).
    #[must_use]
    pub fn routes(&self, kommo_path_token: api_core::Token, cio_signing_key: api_core::Token) -> Vec<SourceRoute> {
        let token = kommo_path_token;
        let kommo = SourceRoute::new(
            SOURCE_KOMMO,
            FnVerifier(move |r: &VerifyRequest<'_>| match r.path_token {
                Some(t) if kommo_api::webhook::verify_path_token(&token, t) => Ok(()),
                Some(_) => Err("wrong path token".to_owned()),
                None => Err("missing path token (/hooks/kommo/<token>)".to_owned()),
            }),
        );
        let tolerance = self.config.customerio.signature_tolerance_secs;
        let verifier = match tolerance {
            0 => Verifier::new(cio_signing_key).any_age(),
            secs => Verifier::new(cio_signing_key).tolerance(Duration::from_secs(secs)),
        };
        let cio = SourceRoute::new(
            SOURCE_CUSTOMERIO,
            FnVerifier(move |r: &VerifyRequest<'_>| {
                let get = |n: &str| r.headers.get(n).map(String::as_str);
                verifier
                    .verify(
                        get(customerio_api::webhook::TIMESTAMP_HEADER),
                        get(customerio_api::webhook::SIGNATURE_HEADER),
                        r.body,
                    )
                    .map_err(|e| e.to_string())
            }),
        );
        vec![kommo, cio]
    }

    /// Feeds every open deal (not won or lost, in the watched pipelines) to the inbox as a marked `leads[add]`
    /// event with the lead's `updated_at`, so its person is identified (no `kommo_lead_created` event is tracked
    /// for old deals). Re-running adds nothing for unchanged deals (same dedup keys). `progress` is
    /// called with (done, total) after each page.
    ///
    /// # Errors
    /// API or store errors.
    pub async fn backfill(&self, store: &Store, mut progress: impl FnMut(u64, u64)) -> Result<usize, SetupError> {
        let leads: Vec<kommo_api::leads::Lead> =
            self.kommo.leads().stream(ListParams::new().limit(250)).try_collect().await?;
        let open: Vec<_> = leads
            .into_iter()
            .filter(|l| !l.is_deleted && !matches!(l.status_id, Some(StatusId::WON | StatusId::LOST)))
            .filter(|l| self.pipeline_watched(l.pipeline_id))
            .collect();
        let total = open.len() as u64;
        let mut new = 0;
        let mut done = 0;
        for chunk in open.chunks(100) {
            let batch: Vec<NewEvent> = chunk.iter().map(backfill_event).collect();
            let stored = store.ingest_batch_with_cursor(&batch, None).await?;
            new += stored.iter().filter(|i| matches!(i, crate::Ingested::Accepted { .. })).count();
            done += chunk.len() as u64;
            progress(done, total);
        }
        progress(done, total);
        Ok(new)
    }

    fn pipeline_watched(&self, p: Option<PipelineId>) -> bool {
        let ids = &self.config.kommo.pipeline_ids;
        ids.is_empty() || p.is_some_and(|p| ids.contains(&p.get()))
    }

    fn stage_name(&self, r: &Resolved, pipeline: Option<PipelineId>, status: Option<StatusId>) -> Option<String> {
        let s = status?.get();
        let p = pipeline.map_or(0, PipelineId::get);
        Some(r.stages.get(&(p, s)).or_else(|| r.stages.get(&(0, s))).cloned().unwrap_or_else(|| format!("stage {s}")))
    }

    // --------------------------------------------------------------------------------------- Kommo → Customer.io

    async fn handle_kommo(&self, ctx: &Ctx, body: &[u8]) -> Result<Outcome, Fault> {
        let payload = kommo_api::webhook::parse(body).map_err(|e| Fault::Fail(format!("not a Kommo webhook: {e}")))?;
        if let Some(want) = self.config.kommo.account_id {
            payload
                .check_account(Some(kommo_api::AccountId(want)), None)
                .map_err(|e| Fault::Fail(format!("Kommo webhook from another account: {e}")))?;
        }
        let mut tally = crate::Tally::default();
        for ev in &payload.events {
            match ev {
                WebhookEvent::Lead { action: action @ (WebhookAction::Add | WebhookAction::Status), lead } => {
                    match self.lead_event(ctx, ev, *action == WebhookAction::Add, lead).await? {
                        Some(reason) => tally.skipped(reason),
                        None => tally.applied(),
                    }
                }
                other => {
                    bump(&self.stats.filtered);
                    tracing::info!(event = %other.dedup_key(), "not a leads[add] or leads[status] event: ignored");
                    tally.skipped("not a leads[add] or leads[status] event");
                }
            }
        }
        Ok(tally.outcome())
    }

    async fn lead_event(
        &self,
        ctx: &Ctx,
        ev: &WebhookEvent,
        created: bool,
        hook: &kommo_api::webhook::WebhookLead,
    ) -> Result<Option<&'static str>, Fault> {
        let Some(lead) = self.kommo.leads().find(hook.id, &["contacts"]).await? else {
            bump(&self.stats.filtered);
            tracing::info!(lead = %hook.id, "lead no longer exists: skipped");
            return Ok(Some(SKIP_GONE));
        };
        let plan = match self.plan_lead(ctx, ev, created, hook, &lead, None).await? {
            Planned::Skip(reason) => return Ok(Some(reason)),
            Planned::Go(plan) => plan,
        };
        let key = &plan.key;
        if let Some((attrs, who_key, at)) = plan.identify {
            let identify = Identify::new().attrs(attrs).timestamp(plan.time);
            let (cio, who) = (self.cio.clone(), plan.who.clone());
            ctx.step_marked(&format!("identify:{key}"), Markers::new(), || async move {
                cio.identify(&who, &identify).await.map_err(boxed)?;
                Ok::<_, BoxError>(((), Markers::new().watermark(who_key, at)))
            })
            .await?;
            bump(&self.stats.identified);
        }
        if let Some((name, data)) = plan.track {
            let event = CioEvent::new(name).id(plan.event_id).timestamp(plan.time).data_map(data);
            let (cio, who) = (self.cio.clone(), plan.who.clone());
            ctx.step(&format!("track:{key}"), || async move {
                cio.track(&who, &event).await.map_err(boxed)?;
                Ok::<_, BoxError>(())
            })
            .await?;
            bump(&self.stats.events_tracked);
        }
        Ok(None)
    }

    /// Everything a lead event writes to Customer.io, decided before any write (shared by the one-at-a-time and
    /// the batch path, so both write the same attributes under the same journal steps and event ids).
    async fn plan_lead(
        &self,
        ctx: &Ctx,
        ev: &WebhookEvent,
        created: bool,
        hook: &kommo_api::webhook::WebhookLead,
        lead: &kommo_api::leads::Lead,
        known: Option<&Known>,
    ) -> Result<Planned, Fault> {
        let key = ev.dedup_key();
        let pipeline = hook.pipeline_id.or(lead.pipeline_id);
        if !self.pipeline_watched(pipeline) {
            bump(&self.stats.filtered);
            tracing::info!(lead = %hook.id, pipeline = ?pipeline.map(PipelineId::get), "pipeline is not watched: skipped");
            return Ok(Planned::Skip("filtered: pipeline is not watched"));
        }
        // Without a time in the payload, the time of the first attempt, journaled: every attempt then uses the
        // same watermark and the same Customer.io event id (a per-attempt clock would track the event twice).
        let time = match ev.time() {
            Some(t) => t,
            None => {
                let now = ctx.now().timestamp();
                ctx.step(&format!("event-time:{key}"), || async move { Ok::<_, BoxError>(now) }).await?
            }
        };
        let resolved = self.resolved();
        // the stage as of this event (not as fetched now), so the attributes match `_timestamp`
        let stage = self.stage_name(&resolved, pipeline, hook.status_id.or(lead.status_id));
        let old_stage = self.stage_name(&resolved, hook.old_pipeline_id.or(pipeline), hook.old_status_id);
        let Some(person) = self.person_for(lead, &resolved, stage.as_deref(), pipeline, known).await? else {
            bump(&self.stats.skipped_no_email);
            tracing::info!(lead = %lead.id, "skipped: the lead's main contact has no email (nothing to identify in Customer.io)");
            return Ok(Planned::Skip("main contact has no email"));
        };
        let who_key = format!("cio-person:{}", person.who.value().to_lowercase());
        let at = DateTime::<Utc>::from_timestamp(time, 0).unwrap_or_else(|| ctx.now());
        // The person's watermark moves with the identify's journal entry, once Customer.io accepted it: a failed
        // identify leaves it where it was, so the retry (or a later event) still writes the attributes.
        let identify = if ctx.watermark_check(&who_key, at).await? {
            let mut attrs = person.attrs;
            attrs.insert("kommo_lead_id".into(), json!(lead.id.to_string()));
            if matches!(person.who, Identifier::Id(_)) {
                attrs.insert("email".into(), json!(person.email));
            }
            // on every identify, not only a `leads[add]` one: the add may arrive after a newer stage change
            // (Kommo does not order its deliveries) and is then skipped as stale, which would leave the
            // attribute unset for good; the lead's creation time never changes, so any event may carry it
            if let Some(c) = lead.created_at {
                attrs.insert("kommo_lead_created_at".into(), json!(c));
            }
            Some((attrs, who_key, at))
        } else {
            bump(&self.stats.stale_skipped);
            tracing::info!(lead = %lead.id, event = %key, "older than an event already applied to this person: attributes left as they are");
            None
        };
        let track = if hook.raw.contains_key(BACKFILL_MARKER) {
            None // backfill: identify only
        } else {
            let mut data = Map::new();
            data.insert("lead_id".into(), json!(lead.id.get()));
            data.insert("lead_name".into(), json!(lead.name));
            data.insert("deal_value".into(), json!(lead.price.unwrap_or(0)));
            if let Some(p) = pipeline.and_then(|p| resolved.pipelines.get(&p.get())) {
                data.insert("pipeline".into(), json!(p));
            }
            data.insert("stage".into(), json!(stage));
            let name = if created {
                EVENT_LEAD_CREATED
            } else {
                data.insert("old_stage".into(), json!(old_stage));
                data.insert("new_stage".into(), json!(stage));
                EVENT_STAGE_CHANGED
            };
            Some((name, data))
        };
        let event_id = EventId::from_source_key_unix(&format!("kommo:{key}"), time);
        Ok(Planned::Go(LeadPlan { key, who: person.who, time, event_id, identify, track }))
    }

    /// The person for a lead: identifier and mapped attributes. `None` when the main contact has no email.
    async fn person_for(
        &self,
        lead: &kommo_api::leads::Lead,
        resolved: &Resolved,
        stage: Option<&str>,
        pipeline: Option<PipelineId>,
        known: Option<&Known>,
    ) -> Result<Option<PersonInfo>, Fault> {
        let Some(cid) = lead.main_contact() else { return Ok(None) };
        let contact = match known.and_then(|k| k.contacts.get(&cid)) {
            Some(c) => c.clone(),
            None => self.kommo.contacts().get(cid, &[]).await?,
        };
        let Some(email) = contact.emails().into_iter().map(|e| e.trim().to_owned()).find(|e| e.contains('@')) else {
            return Ok(None);
        };
        let mut flat = Map::new();
        flat.insert("name".into(), json!(lead.name));
        if let Some(p) = lead.price {
            flat.insert("price".into(), json!(p));
        }
        if let Some(s) = stage {
            flat.insert("stage".into(), json!(s));
        }
        if let Some(p) = pipeline {
            flat.insert(
                "pipeline".into(),
                json!(resolved.pipelines.get(&p.get()).cloned().unwrap_or_else(|| p.to_string())),
            );
        }
        let wants = |n: &str| self.config.mapping.fields.iter().any(|f| f.source == n);
        if let Some(u) = lead.responsible_user_id.filter(|_| wants("responsible_user")) {
            // a transient failure is retried, never written as the numeric id; only a deleted user is shown by id
            let name = match known.and_then(|k| k.users.get(&u)) {
                Some(name) => name.clone(),
                None => match self.kommo.users().get(u).await {
                    Ok(user) => user.name,
                    Err(e) if e.is_not_found() => u.to_string(),
                    Err(e) => return Err(Fault::from(e)),
                },
            };
            flat.insert("responsible_user".into(), json!(name));
        }
        flat.insert("contact.name".into(), json!(contact.name));
        flat.insert("contact.email".into(), json!(email));
        if let Some(p) = contact.phones().into_iter().next() {
            flat.insert("contact.phone".into(), json!(p));
        }
        if wants("company.name")
            && let Some(co) = lead.embedded.companies.first()
        {
            let name = match known.and_then(|k| k.companies.get(&co.id)) {
                Some(c) => c.name.clone(),
                None => self.kommo.companies().get(co.id, &[]).await?.name,
            };
            flat.insert("company.name".into(), json!(name));
        }
        for (name, (id, kind)) in &resolved.lead_fields {
            let Some(v) = lead.custom_field(*id) else { continue };
            let value = match kind {
                KmFieldType::Date | KmFieldType::Birthday | KmFieldType::DateTime => {
                    v.first().and_then(kommo_api::custom_fields::FieldValue::as_unix).map(|u| json!(u))
                }
                KmFieldType::Numeric | KmFieldType::Price | KmFieldType::Monetary => {
                    v.first().and_then(kommo_api::custom_fields::FieldValue::as_f64).map(|n| json!(n))
                }
                _ => v.text().map(|t| json!(t)),
            };
            if let Some(value) = value {
                flat.insert(name.clone(), value);
            }
        }
        let attrs = self
            .config
            .mapping
            .forward(&Value::Object(flat), &mut |_, _, _| None)
            .map_err(|e| Fault::Fail(format!("mapping: {e}")))?;
        let who = match self.config.customerio.identify_by {
            IdentifyBy::Email => Identifier::email(email.clone()),
            IdentifyBy::ContactId => Identifier::id(contact.id.to_string()),
        };
        Ok(Some(PersonInfo { who, email, attrs }))
    }

    // --------------------------------------------------------------------------------------------- batches

    /// The one `leads[add]` / `leads[status]` event of a Kommo body, if that is all it carries (what `split` makes
    /// of every delivery); anything else is handled alone by [`Self::handle_kommo`].
    fn single_lead_event(&self, body: &[u8]) -> Option<(WebhookEvent, bool)> {
        let payload = kommo_api::webhook::parse(body).ok()?;
        if let Some(want) = self.config.kommo.account_id {
            payload.check_account(Some(kommo_api::AccountId(want)), None).ok()?;
        }
        let [ev] = <[WebhookEvent; 1]>::try_from(payload.events).ok()?;
        match &ev {
            WebhookEvent::Lead { action: action @ (WebhookAction::Add | WebhookAction::Status), .. } => {
                let created = *action == WebhookAction::Add;
                Some((ev, created))
            }
            _ => None,
        }
    }

    /// Kommo → Customer.io for a batch of lead events: the leads in one Kommo GET per 250 (`filter[id][]`), their
    /// main contacts and companies in one GET per 250, users once per batch; then the identifies in one Track v2
    /// `POST /api/v2/batch` and the events in another (the client splits a body at 500 KB). Each event keeps its
    /// own journal steps (`identify:<key>`, `track:<key>`, the same as one at a time) and its own watermark
    /// marker ([`step_batch`]); an operation Customer.io refuses in its 207 answer fails that event alone, and a
    /// request that fails as a whole leaves its events to be retried (alone).
    async fn handle_kommo_batch(&self, items: &[BatchItem]) -> Vec<Result<Outcome, Fault>> {
        let mut out: Vec<Option<Result<Outcome, Fault>>> = (0..items.len()).map(|_| None).collect();
        let mut work = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match self.single_lead_event(&item.event.payload) {
                Some((ev, created)) => work.push((i, ev, created)),
                None => out[i] = Some(self.handle_kommo(&item.ctx, &item.event.payload).await),
            }
        }
        let ids: Vec<LeadId> = work
            .iter()
            .filter_map(|(_, ev, _)| ev.as_lead().map(|l| l.id))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let leads = match self.fetch_leads(&ids).await {
            Ok(leads) => leads,
            Err(f) => {
                for (i, ..) in &work {
                    out[*i] = Some(Err(f.clone()));
                }
                return finish(out);
            }
        };
        let known = match self.lookups(leads.values()).await {
            Ok(k) => k,
            Err(f) => {
                for (i, ..) in &work {
                    out[*i] = Some(Err(f.clone()));
                }
                return finish(out);
            }
        };
        let plans = crate::flow::bounded(
            work.iter()
                .map(|(i, ev, created)| {
                    let (known, leads) = (&known, &leads);
                    async move {
                        let Some(hook) = ev.as_lead() else { return (*i, Ok(Planned::Skip(SKIP_GONE))) };
                        let Some(lead) = leads.get(&hook.id) else {
                            bump(&self.stats.filtered);
                            tracing::info!(lead = %hook.id, "lead no longer exists: skipped");
                            return (*i, Ok(Planned::Skip(SKIP_GONE)));
                        };
                        (*i, self.plan_lead(&items[*i].ctx, ev, *created, hook, lead, Some(known)).await)
                    }
                })
                .collect(),
        )
        .await;
        let mut go = Vec::new();
        for (i, plan) in plans {
            match plan {
                Err(f) => out[i] = Some(Err(f)),
                Ok(Planned::Skip(reason)) => out[i] = Some(Ok(Outcome::skipped(reason))),
                Ok(Planned::Go(plan)) => go.push((i, plan)),
            }
        }
        // the identifies, one batch
        let (mut idx, mut steps) = (Vec::new(), Vec::new());
        for (n, (i, plan)) in go.iter_mut().enumerate() {
            if let Some((attrs, who_key, at)) = plan.identify.take() {
                let op = Operation::identify(&plan.who, attrs).with_timestamp(plan.time);
                idx.push(n);
                steps.push(BatchStep {
                    ctx: &items[*i].ctx,
                    step: format!("identify:{}", plan.key),
                    pending: Markers::new(),
                    input: (op, who_key, at),
                });
            }
        }
        let identified = step_batch(steps, |inputs| async move {
            let (ops, marks): (Vec<Operation>, Vec<(String, DateTime<Utc>)>) =
                inputs.into_iter().map(|(op, k, at)| (op, (k, at))).unzip();
            self.send_ops(ops)
                .await
                .into_iter()
                .zip(marks)
                .map(|(r, (k, at))| r.map(|()| ((), Markers::new().watermark(k, at))).map_err(boxed))
                .collect()
        })
        .await;
        let mut failed = vec![false; go.len()];
        for (n, r) in idx.into_iter().zip(identified) {
            match r {
                Ok(()) => bump(&self.stats.identified),
                Err(e) => {
                    // no event for a person whose identify failed (as one at a time): the retry sends both
                    failed[n] = true;
                    out[go[n].0] = Some(Err(Fault::from(e)));
                }
            }
        }
        // the events, one batch
        let (mut idx, mut steps) = (Vec::new(), Vec::new());
        for (n, (i, plan)) in go.iter_mut().enumerate() {
            if failed[n] {
                continue;
            }
            match plan.track.take() {
                Some((name, data)) => {
                    let op = Operation::event(&plan.who, name, plan.event_id, Some(plan.time), data);
                    idx.push(n);
                    steps.push(BatchStep {
                        ctx: &items[*i].ctx,
                        step: format!("track:{}", plan.key),
                        pending: Markers::new(),
                        input: op,
                    });
                }
                None => out[*i] = Some(Ok(Outcome::Done)),
            }
        }
        let tracked = step_batch(steps, |ops| async move {
            self.send_ops(ops).await.into_iter().map(|r| r.map(|()| ((), Markers::new())).map_err(boxed)).collect()
        })
        .await;
        for (n, r) in idx.into_iter().zip(tracked) {
            out[go[n].0] = Some(match r {
                Ok(()) => {
                    bump(&self.stats.events_tracked);
                    Ok(Outcome::Done)
                }
                Err(e) => Err(Fault::from(e)),
            });
        }
        finish(out)
    }

    /// Sends operations through `POST /api/v2/batch`; one result per operation, in order. An operation that
    /// breaks a documented limit is not sent and fails alone; one Customer.io refuses in a 207 answer fails alone
    /// (permanently: the same operation would be refused again, api-notes customerio.md §2); the operations of a
    /// request that failed as a whole, and of the requests after it, are retried (alone, so one bad request
    /// cannot dead-letter its neighbours).
    async fn send_ops(&self, ops: Vec<Operation>) -> Vec<Result<(), Fault>> {
        let mut out: Vec<Option<Result<(), Fault>>> = (0..ops.len()).map(|_| None).collect();
        let (mut idx, mut send) = (Vec::new(), Vec::new());
        for (i, op) in ops.into_iter().enumerate() {
            match check_op(&op) {
                Ok(()) => {
                    idx.push(i);
                    send.push(op);
                }
                Err(why) => out[i] = Some(Err(Fault::Fail(format!("Customer.io: {why}")))),
            }
        }
        if !send.is_empty() {
            match self.cio.batch(&send).await {
                Err(e) => {
                    let f = Fault::from(e);
                    for i in &idx {
                        out[*i] = Some(Err(f.clone()));
                    }
                }
                Ok(report) => {
                    let unaccepted = report.unaccepted();
                    let rejected: HashMap<usize, customerio_api::ErrorItem> =
                        report.rejected.into_iter().map(|r| (r.index, r.error)).collect();
                    let abort = report.aborted.map(|a| match Fault::from(a.error) {
                        Fault::Retry(after, why) => Fault::Retry(after, why),
                        Fault::Fail(why) => Fault::Retry(None, format!("{why} (retried alone)")),
                    });
                    for (j, i) in idx.into_iter().enumerate() {
                        out[i] = Some(if let Some(e) = rejected.get(&j) {
                            Err(Fault::Fail(format!(
                                "Customer.io refused the operation: {} (field `{}`): {}",
                                e.reason.as_deref().unwrap_or("invalid"),
                                e.field.as_deref().unwrap_or(""),
                                e.message.as_deref().unwrap_or("")
                            )))
                        } else if unaccepted.contains(&j) {
                            Err(abort.clone().unwrap_or_else(|| Fault::Retry(None, "not accepted".into())))
                        } else {
                            Ok(())
                        });
                    }
                }
            }
        }
        out.into_iter().map(|o| o.unwrap_or_else(|| Err(Fault::Retry(None, "no result".into())))).collect()
    }

    /// The leads of `ids` with their contacts; a lead Kommo does not return no longer exists.
    async fn fetch_leads(&self, ids: &[LeadId]) -> Result<HashMap<LeadId, kommo_api::leads::Lead>, Fault> {
        leads_by_id(&self.kommo, ids, &["contacts"]).await
    }

    /// The main contacts, the first companies (when the mapping reads `company.name`) and the responsible users
    /// (when the mapping reads `responsible_user`) of `leads`, read once for the batch.
    async fn lookups<'l>(&self, leads: impl Iterator<Item = &'l kommo_api::leads::Lead>) -> Result<Known, Fault> {
        let wants = |n: &str| self.config.mapping.fields.iter().any(|f| f.source == n);
        let (want_users, want_companies) = (wants("responsible_user"), wants("company.name"));
        let (mut users, mut contacts, mut companies) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
        for lead in leads {
            if want_users {
                users.extend(lead.responsible_user_id);
            }
            contacts.extend(lead.main_contact());
            if want_companies {
                companies.extend(lead.embedded.companies.first().map(|c| c.id));
            }
        }
        Known::read(&self.kommo, users, contacts, companies).await
    }

    // --------------------------------------------------------------------------------------- Customer.io → Kommo

    async fn handle_reporting(&self, ctx: &Ctx, body: &[u8]) -> Result<Outcome, Fault> {
        let ev =
            customerio_api::webhook::parse(body).map_err(|e| Fault::Fail(format!("not a reporting event: {e}")))?;
        if !matches!(ev.metric, Metric::Opened | Metric::Clicked | Metric::Unsubscribed | Metric::Bounced) {
            bump(&self.stats.filtered);
            tracing::info!(event = %ev.event_id, metric = %ev.metric, "metric not handled: ignored");
            return Ok(Outcome::skipped("metric not handled"));
        }
        let Some(email) = person_email(&ev, self.config.customerio.identify_by) else {
            bump(&self.stats.unmatched);
            tracing::info!(event = %ev.event_id, "reporting webhook without an email: ignored");
            return Ok(Outcome::skipped("reporting event without an email"));
        };
        let Some(contact) = self.kommo.contacts().find_by_email(&email).await? else {
            bump(&self.stats.unmatched);
            tracing::info!(event = %ev.event_id, %email, "no Kommo contact with this email: ignored");
            return Ok(Outcome::skipped("no Kommo contact with this email"));
        };
        let deal = self.active_deal(contact.id).await?;
        let want_note = match ev.metric {
            Metric::Opened => self.config.notes.opened,
            Metric::Clicked => self.config.notes.clicked,
            Metric::Bounced => self.config.notes.bounced,
            _ => true,
        };
        if ev.metric == Metric::Unsubscribed {
            self.mark_unsubscribed(ctx, &contact).await?;
        }
        let Some(deal) = deal else {
            bump(&self.stats.unmatched);
            tracing::info!(event = %ev.event_id, contact = %contact.id, "contact has no open deal: no note");
            // an unsubscribe was still applied to the contact
            return Ok(if ev.metric == Metric::Unsubscribed {
                Outcome::Done
            } else {
                Outcome::skipped("contact has no open deal")
            });
        };
        if want_note {
            let (entity, id) = (EntityType::Leads, deal.id);
            self.add_note_once(ctx, entity, id, "note", note_text(&email, &ev)).await?;
        }
        if ev.metric == Metric::Opened && self.config.engagement.opens > 0 {
            if ev.data.prefetched == Some(true) {
                tracing::info!(event = %ev.event_id, "prefetched open: not counted for engagement");
            } else {
                self.engagement(ctx, &email, &contact, &deal).await?;
            }
        }
        Ok(Outcome::Done)
    }

    /// The contact's most recently updated open deal (not won/lost, in a watched pipeline).
    async fn active_deal(&self, contact: kommo_api::ContactId) -> Result<Option<kommo_api::leads::Lead>, Fault> {
        let c = self.kommo.contacts().get(contact, &["leads"]).await?;
        let mut best: Option<kommo_api::leads::Lead> = None;
        for l in &c.embedded.leads {
            let Some(lead) = self.kommo.leads().find(l.id, &[]).await? else { continue };
            if lead.is_deleted
                || matches!(lead.status_id, Some(StatusId::WON | StatusId::LOST))
                || !self.pipeline_watched(lead.pipeline_id)
            {
                continue;
            }
            if best.as_ref().is_none_or(|b| lead.updated_at > b.updated_at) {
                best = Some(lead);
            }
        }
        Ok(best)
    }

    async fn mark_unsubscribed(&self, ctx: &Ctx, contact: &kommo_api::contacts::Contact) -> Result<(), Fault> {
        let resolved = self.resolved();
        let mut update = ContactUpdate::new(contact.id);
        let mut changed = false;
        if let Some((id, kind)) = &resolved.unsubscribe_field {
            let write = match kind {
                KmFieldType::Checkbox => FieldValueWrite::checkbox(*id, true),
                KmFieldType::Date | KmFieldType::DateTime => FieldValueWrite::date(*id, ctx.now().timestamp()),
                _ => FieldValueWrite::text(*id, "unsubscribed"),
            };
            update = update.field(write);
            changed = true;
        }
        if let Some(tag) = &self.config.unsubscribe.contact_tag
            && !contact.embedded.tags.iter().any(|t| t.name.eq_ignore_ascii_case(tag))
        {
            // Kommo replaces the tag list on update: send the existing tags with the new one
            let mut tags: Vec<TagRef> =
                contact.embedded.tags.iter().map(|t| TagRef::Name { name: t.name.clone() }).collect();
            tags.push(TagRef::Name { name: tag.clone() });
            update.embedded.tags = tags;
            changed = true;
        }
        if !changed {
            return Ok(());
        }
        let kommo = self.kommo.clone();
        ctx.step("unsubscribe", || async move {
            kommo.contacts().update(&update).await.map_err(boxed)?;
            Ok::<_, BoxError>(())
        })
        .await?;
        bump(&self.stats.unsubscribes);
        tracing::info!(contact = %contact.id, "contact marked unsubscribed in Kommo");
        Ok(())
    }

    /// Counts the open; at the threshold, one call task per person per window.
    async fn engagement(
        &self,
        ctx: &Ctx,
        email: &str,
        contact: &kommo_api::contacts::Contact,
        deal: &kommo_api::leads::Lead,
    ) -> Result<(), Fault> {
        let rule = &self.config.engagement;
        let person = email.to_lowercase();
        let opens = ctx.count_hit(&format!("cio-opens:{person}"), rule.window()).await?;
        if opens < i64::from(rule.opens) {
            tracing::debug!(%person, opens, "engagement below threshold");
            return Ok(());
        }
        let clock_now = ctx.now().timestamp();
        let window = i64::try_from(rule.window().as_secs()).unwrap_or(i64::MAX);
        // A journaled decision (with its time, so every attempt writes the same task), so a retry of this event
        // after the window cursor moved still creates the task.
        let (store, key) = (ctx.store().clone(), person.clone());
        let decided: Option<i64> = ctx
            .step("engagement-decide-at", || async move {
                let last: Option<i64> = store.cursor_get(CURSOR_ENGAGEMENT, &key).await?.and_then(|c| c.parse().ok());
                Ok::<_, BoxError>(last.is_none_or(|t| clock_now - t >= window).then_some(clock_now))
            })
            .await?;
        let Some(now) = decided else {
            tracing::info!(%person, opens, "engagement task already created in this window");
            return Ok(());
        };
        let name = if contact.name.is_empty() { email.to_owned() } else { contact.name.clone() };
        let text = format!(
            "Call {name}: opened emails {opens} times within {} h (Customer.io). High interest.",
            rule.window_hours
        );
        let due = now + i64::try_from(rule.due_in_hours.saturating_mul(3600)).unwrap_or(0);
        let mut task = NewTask::new(text, due).on(deal.id).task_type(rule.task_type_id);
        if let Some(owner) = deal.responsible_user_id.filter(|u| *u != UserId(0)) {
            task = task.responsible(owner);
        }
        let (kommo, lead) = (self.kommo.clone(), deal.id);
        let created: bool = ctx
            .step("engagement-call-task", || async move {
                let tasks = kommo.tasks();
                let open: Vec<kommo_api::tasks::Task> = tasks.stream_for(lead).try_collect().await.map_err(boxed)?;
                // search before create: a crash after Kommo's answer must not make a second task
                if open.iter().any(|t| !t.is_completed && t.text.starts_with(&format!("Call {name}: opened emails"))) {
                    return Ok::<_, BoxError>(false);
                }
                tasks.create_one(task).await.map_err(boxed)?;
                Ok(true)
            })
            .await?;
        // the window starts once the task is there (or was found): a failed create leaves it open for the next
        // event of this person, and a retry of this one sets it again
        ctx.store().cursor_set(CURSOR_ENGAGEMENT, &person, &now.to_string()).await?;
        if created {
            bump(&self.stats.tasks_created);
            tracing::info!(%person, opens, lead = %deal.id, "engagement: call task created");
        }
        Ok(())
    }

    /// Adds a common note once: inside a journaled step, after checking that no identical note exists.
    async fn add_note_once(
        &self,
        ctx: &Ctx,
        entity: EntityType,
        id: kommo_api::LeadId,
        step: &str,
        text: String,
    ) -> Result<(), Fault> {
        let kommo = self.kommo.clone();
        let added: bool = ctx
            .step(step, || async move {
                let notes = kommo.notes(entity);
                let existing: Vec<kommo_api::notes::Note> =
                    notes.stream_for(id, ListParams::new().limit(250)).try_collect().await.map_err(boxed)?;
                if existing.iter().any(|n| n.text() == Some(text.as_str())) {
                    return Ok::<_, BoxError>(false);
                }
                notes.add_one(NewNote::common(id, text)).await.map_err(boxed)?;
                Ok(true)
            })
            .await?;
        if added {
            bump(&self.stats.notes_added);
        }
        Ok(())
    }
}

/// Every event's outcome (an event left without one is retried).
fn finish(out: Vec<Option<Result<Outcome, Fault>>>) -> Vec<Result<Outcome, Fault>> {
    out.into_iter().map(|o| o.unwrap_or_else(|| Err(Fault::Retry(None, "no outcome for the event".into())))).collect()
}

/// The documented limits of one v2 operation (api-notes customerio.md §1 limits, §2: each operation ≤ 32 KB),
/// checked before the batch is sent so one operation over a limit fails alone instead of the whole request.
fn check_op(op: &Operation) -> Result<(), String> {
    op.validate().map_err(|e| e.to_string())?;
    let bytes = serde_json::to_vec(op).map_err(|e| e.to_string())?.len();
    if bytes > customerio_api::limits::MAX_ENTITY_BYTES {
        return Err(format!(
            "operation of {bytes} bytes is over the {} bytes limit",
            customerio_api::limits::MAX_ENTITY_BYTES
        ));
    }
    Ok(())
}

/// The person's email from a reporting event (with `identify_by = email`, the person id is the email too).
fn person_email(ev: &ReportingEvent, by: IdentifyBy) -> Option<String> {
    ev.person_email()
        .or_else(|| (by == IdentifyBy::Email).then(|| ev.person_id()).flatten().filter(|s| s.contains('@')))
        .map(|s| s.trim().to_owned())
}

/// The note for a reporting event: what happened, the message, the campaign/broadcast, and when.
fn note_text(email: &str, ev: &ReportingEvent) -> String {
    let d = &ev.data;
    let when = DateTime::<Utc>::from_timestamp(ev.timestamp, 0)
        .map_or_else(|| ev.timestamp.to_string(), |w| w.format("%Y-%m-%d %H:%M:%S UTC").to_string());
    let mut t = format!("Customer.io ({when}): {email} ");
    t.push_str(match ev.metric {
        Metric::Opened => "opened the email",
        Metric::Clicked => "clicked a link in the email",
        Metric::Unsubscribed => "unsubscribed",
        Metric::Bounced => "bounced (the email could not be delivered)",
        _ => "had an email event",
    });
    if let Some(s) = d.subject.as_deref().filter(|s| !s.is_empty()) {
        let _ = write!(t, " “{s}”");
    }
    let mut origin = Vec::new();
    for (label, v) in [
        ("campaign", d.campaign_id),
        ("broadcast", d.broadcast_id),
        ("newsletter", d.newsletter_id),
        ("transactional message", d.transactional_message_id),
    ] {
        if let Some(v) = v {
            origin.push(format!("{label} {v}"));
        }
    }
    if !origin.is_empty() {
        let _ = write!(t, " ({})", origin.join(", "));
    }
    if ev.metric == Metric::Clicked
        && let Some(h) = &d.href
    {
        let _ = write!(t, "; link: {h}");
    }
    if ev.metric == Metric::Bounced
        && let Some(m) = &d.failure_message
    {
        let _ = write!(t, "; reason: {m}");
    }
    t.push('.');
    t
}

/// The inbox event `backfill` makes for an open lead: a `leads[add]` body with its `updated_at`.
fn backfill_event(lead: &kommo_api::leads::Lead) -> NewEvent {
    let updated = lead.updated_at.unwrap_or(0);
    let mut pairs = vec![
        ("leads[add][0][id]", lead.id.to_string()),
        ("leads[add][0][updated_at]", updated.to_string()),
        (BACKFILL_MARKER_PAIR, "1".to_owned()),
    ];
    if let Some(s) = lead.status_id {
        pairs.push(("leads[add][0][status_id]", s.to_string()));
    }
    if let Some(p) = lead.pipeline_id {
        pairs.push(("leads[add][0][pipeline_id]", p.to_string()));
    }
    let body = kommo_api::webhook::encode_form(&pairs);
    let key = format!("backfill:lead:{}:{updated}", lead.id);
    NewEvent::new(SOURCE_KOMMO, key, body.into_bytes()).ordering_key(format!("lead:{}", lead.id))
}

/// The form field that marks a `backfill` event (identify only: no `kommo_lead_created` for old deals).
const BACKFILL_MARKER: &str = "sync_backfill";
const BACKFILL_MARKER_PAIR: &str = "leads[add][0][sync_backfill]";

/// Dedup key (the events' keys joined) and ordering key (the first lead) of a Kommo body.
fn kommo_keys(body: &[u8]) -> Result<(String, Option<String>), KeyError> {
    let payload = kommo_api::webhook::parse(body).map_err(|e| KeyError(format!("not a Kommo webhook: {e}")))?;
    let keys: BTreeSet<String> = payload.events.iter().map(WebhookEvent::dedup_key).collect();
    let first = payload.events.iter().find_map(|e| e.as_lead().map(|l| format!("lead:{}", l.id)));
    Ok((keys.into_iter().collect::<Vec<_>>().join("|"), first))
}

#[async_trait]
impl Flow for KommoCustomerIo {
    fn name(&self) -> &str {
        "kommo-customerio"
    }

    fn sources(&self) -> Vec<String> {
        vec![SOURCE_KOMMO.into(), SOURCE_CUSTOMERIO.into()]
    }

    fn dedup_key(&self, event: &RawEvent<'_>) -> Result<String, KeyError> {
        match event.source {
            SOURCE_KOMMO => kommo_keys(event.body).map(|k| k.0),
            _ => {
                let ev = customerio_api::webhook::parse(event.body)
                    .map_err(|e| KeyError(format!("not a Customer.io reporting event: {e}")))?;
                Ok(format!("cio:{}", ev.dedup_key()))
            }
        }
    }

    /// Kommo: a delivery batching several events becomes one inbox event per event, each lead ordered by itself.
    fn split(&self, event: &RawEvent<'_>) -> Result<Option<Vec<crate::flow::Part>>, KeyError> {
        match event.source {
            SOURCE_KOMMO => super::kommo_split::split_by_event(event.body),
            _ => Ok(None),
        }
    }

    fn ordering_key(&self, event: &RawEvent<'_>) -> Option<String> {
        match event.source {
            SOURCE_KOMMO => kommo_keys(event.body).ok().and_then(|k| k.1),
            _ => {
                let ev = customerio_api::webhook::parse(event.body).ok()?;
                person_email(&ev, self.config.customerio.identify_by)
                    .or_else(|| ev.person_id().map(str::to_owned))
                    .map(|p| format!("person:{}", p.to_lowercase()))
            }
        }
    }

    fn batch_key(&self, event: &Event) -> Option<String> {
        // every Kommo event; one that is not exactly one lead add/status is handled alone inside the batch
        (event.source == SOURCE_KOMMO).then(|| SOURCE_KOMMO.to_owned())
    }

    fn max_batch(&self) -> usize {
        self.config.batch.max_events.clamp(1, usize::try_from(kommo_api::hal::MAX_LIMIT).unwrap_or(250))
    }

    async fn handle_batch(&self, items: &[BatchItem]) -> Vec<Result<Outcome, BoxError>> {
        if items.iter().any(|i| i.event.source != SOURCE_KOMMO) {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                out.push(self.handle(&item.ctx, &item.event).await);
            }
            return out;
        }
        self.handle_kommo_batch(items).await.into_iter().map(|r| Ok(r.unwrap_or_else(Outcome::from))).collect()
    }

    async fn handle(&self, ctx: &Ctx, event: &Event) -> Result<Outcome, BoxError> {
        let result = match event.source.as_str() {
            SOURCE_KOMMO => self.handle_kommo(ctx, &event.payload).await,
            SOURCE_CUSTOMERIO => self.handle_reporting(ctx, &event.payload).await,
            other => Err(Fault::Fail(format!("unknown source {other}"))),
        };
        Ok(result.unwrap_or_else(Outcome::from))
    }
}
