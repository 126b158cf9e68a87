//! Kommo ↔ Airtable: won deals become onboarding records, onboarding progress flows back to Kommo.
//!
//! | source | what arrives | what the flow does |
//! |---|---|---|
//! | `kommo` | Kommo's form-encoded webhooks (`leads[status]`, `leads[update]`, `leads[add]`), behind a secret path token (Kommo signs nothing); also the reconcile poll and `backfill`, which leave out lead states already delivered | re-fetches the lead (the payload is not trusted), applies the filters, upserts the onboarding record by "Kommo Deal ID" (`performUpsert`), sets "Status" on create only, keeps mapped fields in sync |
//! | `airtable-ping` | Airtable's notification ping (MAC-verified) | drains the payload feed from the stored cursor and stores one `airtable` event per changed record, advancing the cursor in the same transaction |
//! | `airtable` | one record change of one payload (internal) | a changed "Status" → a Kommo note with who changed it; a changed two-way field ("Next Contact Date") → the mapped Kommo custom field |
//!
//! # Exactly-once effects
//! - A Kommo delivery is split into one inbox event per lead ([`crate::Flow::split`]), keyed by the change:
//!   `lead:<id>:<time>:<pipeline>:<status>:` (the state) then the action, the previous pipeline and status and a
//!   hash of the lead's fields, so a redelivery collapses while two different changes within one second do not.
//!   The reconcile poll and `backfill` key a state `lead:<id>:<updated_at>:<pipeline>:<status>:poll` and leave out
//!   a state some event already carries (same state prefix), so overlapping polls and webhooks add nothing.
//! - The record is upserted by external key; the id map keeps lead ↔ record; "Status" is only set while empty.
//! - Notes are added inside a journaled step that first looks for an identical note on the lead, so neither a retry
//!   nor a crash after the POST duplicates it.
//! - Payload events dedup on `<webhook>:<cursor>:<record>`; the cursor is stored with the rows it produced.
//! - A linked record's changes carry its lead's ordering key (`lead:<id>`, like the lead's Kommo events), so the
//!   engine never runs the two directions of one lead at once: a Kommo event cannot read the lead before a
//!   person's Airtable edit reaches Kommo and write the older value over that edit afterwards.
//!
//! # Batches
//! Kommo lead events are handled in batches ([`crate::Flow::handle_batch`]; `[batch] max_events`, default 250):
//! the events the worker has claimed together (whatever is ready; a lone event is handled at once) share
//!
//! - one Kommo `GET /api/v4/leads?filter[id][]=…&with=contacts,companies` per 250 leads, one contacts and one
//!   companies GET by `filter[id][]`, one GET per distinct responsible user;
//! - one Airtable look-up of the batch's unlinked leads: one `filterByFormula` `OR({Kommo Deal ID}='…',…)` built
//!   with [`airtable_client::Formula`] (values escaped there; `POST …/listRecords` when the URL would reach 16k);
//!   it tells which records exist, so "Status" still goes out only with the write that creates a record;
//! - `performUpsert` of 10 records per request for unlinked leads, and PATCH of 10 records per request by record
//!   id for linked ones.
//!
//! Exactly-once stays per event: each event keeps its own journal entry and markers ([`crate::step_batch`]); a
//! chunk that fails transiently fails only its ten events (retried alone), and a chunk Airtable refuses (it writes
//! ten records all or nothing) is written again record by record, so a poison record fails only its own event.
//!
//! Airtable record changes (`airtable`) are batched too: the records of the changes that would reach Kommo are read
//! in one look-up (`OR(RECORD_ID()='…',…)`, see "markers after effects" below), and their Kommo field writes go out
//! as one `PATCH /api/v4/leads` of up to 50 leads, each change journaled on its own; a request Kommo refuses (400
//! with `validation-errors`; whether it applied the other elements is not documented) is sent again lead by lead
//! (setting a field is idempotent), so only the refused change fails. Status notes stay one per change: each is
//! checked for a duplicate on its own lead first (see below). Pings are handled alone.
//!
//! # No echo loops, no stale overwrites, markers after effects
//! Every value we write is remembered on both sides (echo hashes) together with a per-(lead, field) watermark;
//! an incoming value equal to the last one known to be in sync is nothing new, an Airtable change older than the
//! last one applied to the field is dropped unless the record still holds it (see below). These markers are
//! committed by [`crate::Ctx::step_marked`] in the same transaction as the journal entry of the write that put the
//! value there, after the vendor confirmed it: while the write runs they are pending (they recognise our own echo
//! only while the attempt's lease is alive), so a failed or killed attempt leaves nothing that would make its retry
//! skip the write.
//!
//! A payload is a change as it was made, not the record's state: before an Airtable change goes to Kommo, the
//! record is read, and a change the record no longer holds because our later write replaced it (the late echo of
//! our write of an older Kommo value, or a person's change our write overwrote) is skipped as superseded, so
//! Kommo and Airtable end at the same value.
//!
//! Event times come from two vendors' clocks, Kommo's in whole seconds, so they order changes only roughly: a Kommo
//! change made in the second after our write of a person's Airtable edit can read as older than that edit, and an
//! edit made right after our write of a Kommo change can read as older than that change. Neither is dropped on the
//! clocks alone. Kommo → Airtable writes the lead as read now whenever it is not the value last synced (a Kommo
//! value we did not write or read is a change made after that sync); Airtable → Kommo drops an older change only
//! when the record no longer holds it.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet},
    fmt::Write as _,
    sync::{Arc, RwLock},
    time::Duration,
};

use airtable_client::{
    BaseId, FieldType as AtFieldType, Fields, Formula, MacSecret, RecordId, RecordUpdate, WebhookId,
    WebhookNotification, WriteOptions, field_eq,
    webhook::{ActionSource, ChangeKind, CreateWebhook, WebhookSpecification},
};
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use futures::{StreamExt as _, TryStreamExt as _};
use kommo_api::{
    CustomFieldsExt as _, EntityType, FieldType as KmFieldType, FieldValueWrite, LeadId, ListParams, Order, PipelineId,
    StatusId, leads::LeadUpdate, notes::NewNote, webhook::WebhookEvent,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

// Related entities read once for a batch of leads; one missing there is read alone by `flat_lead`.
use super::support::{Fault, LeadLookups as Lookups, boxed, leads_by_id, write_chunks};
use crate::{
    BatchItem, BatchStep, BoxError, Ctx, Event, Flow, KeyError, Markers, NewEvent, Outcome, Part, RawEvent, Store,
    mapping::{FieldKind, FieldSchema, Mapping, Schema},
    server::{FnVerifier, SourceRoute, VerifyRequest},
    step_batch,
};

/// Source of Kommo webhooks (and of the reconcile poll / backfill events).
pub const SOURCE_KOMMO: &str = "kommo";
/// Source of Airtable notification pings.
pub const SOURCE_AIRTABLE_PING: &str = "airtable-ping";
/// Source of Airtable record changes (one per record per payload; produced by the ping handler).
pub const SOURCE_AIRTABLE: &str = "airtable";
/// Id map system and kind for lead ↔ onboarding record.
const MAP_SYSTEM: &str = "airtable";
const MAP_KIND: &str = "onboarding";
/// Cursor source for the stored Airtable webhook (id + MAC secret) and its payload cursor.
const CURSOR_WEBHOOK: &str = "airtable-webhook";
/// Journal step that marks "this event is about to create the lead's record" (see `sync_lead`).
const STEP_UPSERT_INTENT: &str = "upsert-intent";
/// Skip reasons (low cardinality: `status` groups by them).
const SKIP_IN_SYNC: &str = "no change since the last confirmed sync";
const SKIP_STALE: &str = "older than the last applied change";
const SKIP_ECHO: &str = "echo of our own write";
const SKIP_GONE: &str = "lead no longer exists";
const SKIP_SUPERSEDED: &str = "superseded: the record holds our later write";
const SKIP_RECORD_GONE: &str = "record no longer exists";
/// Cursor source of the Kommo reconcile poll.
const CURSOR_RECONCILE: &str = "kommo-reconcile";

// ------------------------------------------------------------------------------------------------- config

/// The flow's configuration (TOML). No secrets: tokens come from the environment.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Kommo side.
    pub kommo: KommoConfig,
    /// Airtable side.
    pub airtable: AirtableConfig,
    /// Which deals count.
    #[serde(default)]
    pub trigger: Trigger,
    /// Field mapping, Kommo (source) → Airtable (target). Kommo names: `name`, `price`, `responsible_user`,
    /// `pipeline`, `status`, `closed_at`, `contact.name`, `contact.email`, `contact.phone`, `company.name`, or a
    /// Kommo lead custom field by name. Two-way fields must be Kommo custom fields.
    #[serde(default = "default_mapping")]
    pub mapping: Mapping,
    /// The periodic Kommo reconcile poll.
    #[serde(default)]
    pub reconcile: Reconcile,
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
    /// If set, webhooks from another account id are rejected.
    #[serde(default)]
    pub account_id: Option<u64>,
    /// Time zone of the account (dates written to Kommo date fields are midnight in this zone).
    #[serde(default = "default_tz")]
    pub time_zone: String,
    /// This process's share of the account's request budget (Kommo allows 7 per second per account; default 7).
    /// Limits are kept per process: with several `serve` processes on one account, split it (e.g. 3 each for two).
    #[serde(default = "default_kommo_rps")]
    pub requests_per_second: u32,
}

/// Airtable settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AirtableConfig {
    /// Base id (`app…`).
    pub base_id: String,
    /// Table name or id.
    #[serde(default = "default_table")]
    pub table: String,
    /// API base URL override (fakes, proxies).
    #[serde(default)]
    pub base_url: Option<String>,
    /// The text field holding the Kommo lead id (the upsert key).
    #[serde(default = "default_deal_id_field")]
    pub deal_id_field: String,
    /// The single-select status field.
    #[serde(default = "default_status_field")]
    pub status_field: String,
    /// Status given to new records (never written over an existing status).
    #[serde(default = "default_initial_status")]
    pub initial_status: String,
    /// Public URL Airtable notifies (`…/hooks/airtable-ping`); `serve` creates or adopts the webhook for it.
    #[serde(default)]
    pub notification_url: Option<String>,
    /// This process's share of the base's request budget (Airtable allows 5 per second per base; default 5).
    /// Limits are kept per process: with several `serve` processes on one base, split it (e.g. 2 each for two).
    #[serde(default = "default_airtable_rps")]
    pub requests_per_second: u32,
}

/// Which deals the flow handles.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    /// Pipelines to watch (empty: all).
    #[serde(default)]
    pub pipeline_ids: Vec<u64>,
    /// The status that creates the record (default 142, Kommo's won).
    #[serde(default = "default_won")]
    pub won_status_id: u64,
    /// Deals with any of these tags are ignored (case-insensitive).
    #[serde(default)]
    pub exclude_tags: Vec<String>,
}

impl Default for Trigger {
    fn default() -> Self {
        Self { pipeline_ids: Vec::new(), won_status_id: default_won(), exclude_tags: Vec::new() }
    }
}

/// Reconcile poll settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reconcile {
    /// Seconds between polls (0 disables).
    #[serde(default = "default_reconcile_interval")]
    pub interval_secs: u64,
    /// Overlap with the previous poll, in seconds (a state some webhook already delivered is not fed again, so overlap is free).
    #[serde(default = "default_overlap")]
    pub overlap_secs: u64,
}

impl Default for Reconcile {
    fn default() -> Self {
        Self { interval_secs: default_reconcile_interval(), overlap_secs: default_overlap() }
    }
}

fn default_kommo_rps() -> u32 {
    kommo_api::client::DEFAULT_RATE_LIMIT_PER_SECOND
}

fn default_airtable_rps() -> u32 {
    airtable_client::client::REQUESTS_PER_SECOND_PER_BASE
}

fn default_tz() -> String {
    "UTC".into()
}
fn default_table() -> String {
    "Client Onboarding".into()
}
fn default_deal_id_field() -> String {
    "Kommo Deal ID".into()
}
fn default_status_field() -> String {
    "Status".into()
}
fn default_initial_status() -> String {
    "Not Started".into()
}
fn default_won() -> u64 {
    StatusId::WON.get()
}
fn default_reconcile_interval() -> u64 {
    300
}
fn default_overlap() -> u64 {
    120
}

/// The mapping used when the config has none (the fields of the articles' "Client Onboarding" table).
#[must_use]
pub fn default_mapping() -> Mapping {
    Mapping::from_toml(
        r#"
        [[fields]]
        source = "name"
        target = "Deal Name"
        [[fields]]
        source = "price"
        target = "Deal Value"
        convert = { type = "number" }
        [[fields]]
        source = "responsible_user"
        target = "Responsible"
        [[fields]]
        source = "contact.name"
        target = "Client Name"
        [[fields]]
        source = "contact.email"
        target = "Email"
        [[fields]]
        source = "contact.phone"
        target = "Phone"
        [[fields]]
        source = "company.name"
        target = "Company"
        [[fields]]
        source = "Next Contact Date"
        target = "Next Contact Date"
        direction = "two-way"
        convert = { type = "date" }
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

/// The Kommo fields that are not custom fields.
const KOMMO_BUILTINS: &[(&str, FieldKind)] = &[
    ("name", FieldKind::Text),
    ("price", FieldKind::Number),
    ("responsible_user", FieldKind::Text),
    ("pipeline", FieldKind::Text),
    ("status", FieldKind::Text),
    ("closed_at", FieldKind::DateTime),
    ("contact.name", FieldKind::Text),
    ("contact.email", FieldKind::Text),
    ("contact.phone", FieldKind::Text),
    ("company.name", FieldKind::Text),
];

// ------------------------------------------------------------------------------------------------- errors

/// Why start-up or a poll failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// The config does not match the live systems.
    #[error("configuration does not match the live systems:\n{0}")]
    Invalid(String),
    /// Kommo failed.
    #[error("Kommo: {0}")]
    Kommo(Box<kommo_api::Error>),
    /// Airtable failed.
    #[error("Airtable: {0}")]
    Airtable(Box<airtable_client::Error>),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::Error),
}

impl From<kommo_api::Error> for SetupError {
    fn from(e: kommo_api::Error) -> Self {
        Self::Kommo(Box::new(e))
    }
}

impl From<airtable_client::Error> for SetupError {
    fn from(e: airtable_client::Error) -> Self {
        Self::Airtable(Box::new(e))
    }
}

impl From<airtable_client::Error> for Fault {
    fn from(e: airtable_client::Error) -> Self {
        if e.class().is_retryable() {
            Self::Retry(e.retry_after(), format!("Airtable: {e}"))
        } else {
            Self::Fail(format!("Airtable: {e}"))
        }
    }
}

// ------------------------------------------------------------------------------------------------- the flow

/// What start-up learned from the live systems.
#[derive(Debug, Clone, Default)]
struct Resolved {
    /// Kommo lead custom fields by name: (id, type).
    kommo_fields: HashMap<String, (kommo_api::CustomFieldId, KmFieldType)>,
    /// Airtable field id → name, for the onboarding table.
    airtable_names: HashMap<String, String>,
    /// The onboarding table's id.
    table_id: String,
}

/// Counters shown by the demo and `status`.
#[derive(Debug, Default)]
pub struct FlowStats {
    /// Records created.
    pub records_created: std::sync::atomic::AtomicU64,
    /// Record updates written.
    pub records_updated: std::sync::atomic::AtomicU64,
    /// Kommo notes added.
    pub notes_added: std::sync::atomic::AtomicU64,
    /// Kommo field writes.
    pub kommo_writes: std::sync::atomic::AtomicU64,
    /// Events skipped as our own echo.
    pub echoes_skipped: std::sync::atomic::AtomicU64,
    /// Changes dropped as older than what was applied.
    pub stale_skipped: std::sync::atomic::AtomicU64,
    /// Events filtered out (wrong pipeline/status, excluded tag).
    pub filtered: std::sync::atomic::AtomicU64,
}

fn bump(c: &std::sync::atomic::AtomicU64) {
    c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// The Kommo ↔ Airtable flow. Build it, call [`KommoAirtable::validate`], then register it with an
/// [`crate::Engine`] and mount [`KommoAirtable::routes`].
#[derive(Debug, Clone)]
pub struct KommoAirtable {
    config: Arc<Config>,
    kommo: kommo_api::Client,
    airtable: airtable_client::Client,
    base: BaseId,
    resolved: Arc<RwLock<Resolved>>,
    webhook: Arc<RwLock<Option<(WebhookId, MacSecret)>>>,
    tz: chrono_tz::Tz,
    stats: Arc<FlowStats>,
}

/// The stored Airtable webhook (in the `cursors` table: source `airtable-webhook`, stream `current`).
#[derive(Debug, Serialize, Deserialize)]
struct StoredWebhook {
    id: String,
    mac_secret_base64: String,
    #[serde(default)]
    expiration_time: Option<String>,
}

/// The body of an internal `airtable` event.
#[derive(Debug, Serialize, Deserialize)]
struct RecordChangeEvent {
    webhook: String,
    cursor: u64,
    record_id: String,
    payload: airtable_client::WebhookPayload,
}

impl KommoAirtable {
    /// Builds the flow.
    ///
    /// # Errors
    /// When the configured time zone is unknown.
    pub fn new(
        config: Config,
        kommo: kommo_api::Client,
        airtable: airtable_client::Client,
    ) -> Result<Self, SetupError> {
        let tz: chrono_tz::Tz = config.kommo.time_zone.parse().map_err(|_| {
            SetupError::Invalid(format!("kommo.time_zone: unknown time zone `{}`", config.kommo.time_zone))
        })?;
        Ok(Self {
            base: BaseId::from(config.airtable.base_id.as_str()),
            config: Arc::new(config),
            kommo,
            airtable,
            resolved: Arc::default(),
            webhook: Arc::default(),
            tz,
            stats: Arc::default(),
        })
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

    fn table(&self) -> airtable_client::Table {
        self.airtable.table(self.base.clone(), self.config.airtable.table.clone())
    }

    /// Checks the configuration against Kommo's lead custom fields and the Airtable table schema, and remembers
    /// the ids it needs. Every problem is reported, each naming the field and a fix.
    ///
    /// # Errors
    /// [`SetupError::Invalid`] listing the problems, or the API error that prevented the check.
    pub async fn validate(&self) -> Result<(), SetupError> {
        let cfg = &self.config;
        let kommo_fields = self.kommo.custom_fields(EntityType::Leads).all().await?;
        let schema = self.airtable.base_schema(&self.base).await?;
        let mut problems = Vec::new();
        let Some(table) = schema.table(&cfg.airtable.table) else {
            let names: Vec<&str> = schema.tables.iter().map(|t| t.name.as_str()).collect();
            return Err(SetupError::Invalid(format!(
                "airtable.table: no table `{}` in base {}; tables: {}",
                cfg.airtable.table,
                self.base,
                names.join(", ")
            )));
        };
        let mut target = Vec::new();
        let mut airtable_names = HashMap::new();
        for f in &table.fields {
            airtable_names.insert(f.id.to_string(), f.name.clone());
            let kind = match f.kind {
                AtFieldType::Number | AtFieldType::Percent => FieldKind::Number,
                AtFieldType::Currency => FieldKind::Currency,
                AtFieldType::Date => FieldKind::Date,
                AtFieldType::DateTime => FieldKind::DateTime,
                AtFieldType::SingleSelect => FieldKind::SingleSelect,
                AtFieldType::MultipleRecordLinks => FieldKind::LinkedRecords,
                AtFieldType::SingleLineText
                | AtFieldType::Email
                | AtFieldType::Url
                | AtFieldType::MultilineText
                | AtFieldType::PhoneNumber
                | AtFieldType::RichText => FieldKind::Text,
                _ => FieldKind::Other,
            };
            let mut fs = FieldSchema::new(f.name.clone(), kind);
            fs.options = f.choices().into_iter().map(|c| c.name).collect();
            fs.read_only = f.kind.is_computed();
            target.push(fs);
        }
        let target = Schema::new("Airtable", target);
        for (name, what) in [
            (&cfg.airtable.deal_id_field, "airtable.deal_id_field"),
            (&cfg.airtable.status_field, "airtable.status_field"),
        ] {
            if target.field(name).is_none() {
                problems.push(format!("{what}: no field `{name}` in table `{}`{}", table.name, suggest(&target, name)));
            }
        }
        if let Some(status) = target.field(&cfg.airtable.status_field)
            && status.kind == FieldKind::SingleSelect
            && !status.options.iter().any(|o| o == &cfg.airtable.initial_status)
        {
            problems.push(format!(
                "airtable.initial_status: `{}` is not an option of `{}` (options: {})",
                cfg.airtable.initial_status,
                status.name,
                status.options.join(", ")
            ));
        }
        let mut source: Vec<FieldSchema> = KOMMO_BUILTINS.iter().map(|(n, k)| FieldSchema::new(*n, *k)).collect();
        let mut by_name = HashMap::new();
        for f in &kommo_fields {
            let kind = match f.field_type {
                KmFieldType::Numeric | KmFieldType::Price | KmFieldType::Monetary => FieldKind::Number,
                KmFieldType::Date | KmFieldType::Birthday => FieldKind::Date,
                KmFieldType::DateTime => FieldKind::DateTime,
                KmFieldType::Select | KmFieldType::Radiobutton => FieldKind::SingleSelect,
                KmFieldType::Text | KmFieldType::Textarea | KmFieldType::Url => FieldKind::Text,
                _ => FieldKind::Other,
            };
            let mut fs = FieldSchema::new(f.name.clone(), kind);
            fs.options = f.enums.iter().map(|e| e.value.clone()).collect();
            source.push(fs);
            by_name.insert(f.name.clone(), (f.id, f.field_type.clone()));
        }
        for fm in &cfg.mapping.fields {
            if fm.direction == crate::mapping::Direction::TwoWay && !by_name.contains_key(&fm.source) {
                problems.push(format!(
                    "mapping `{}` ↔ `{}`: two-way fields must be Kommo lead custom fields (`{}` is not one){}",
                    fm.source,
                    fm.target,
                    fm.source,
                    if KOMMO_BUILTINS.iter().any(|(n, _)| *n == fm.source) { "; make it one-way" } else { "" }
                ));
            }
        }
        if let Err(errors) = cfg.mapping.validate(&Schema::new("Kommo", source), &target) {
            problems.push(errors.to_string());
        }
        if !problems.is_empty() {
            return Err(SetupError::Invalid(problems.join("\n")));
        }
        *self.resolved.write().unwrap_or_else(std::sync::PoisonError::into_inner) =
            Resolved { kommo_fields: by_name, airtable_names, table_id: table.id.to_string() };
        Ok(())
    }

    /// The webhook routes: `kommo` behind a secret path token (`/hooks/kommo/<token>`), and `airtable-ping`
    /// verified with the stored MAC secret.
    #[must_use]
    pub fn routes(&self, kommo_path_token: api_core::Token) -> Vec<SourceRoute> {
        let token = kommo_path_token;
        let kommo = SourceRoute::new(
            SOURCE_KOMMO,
            FnVerifier(move |r: &VerifyRequest<'_>| match r.path_token {
                Some(t) if kommo_api::webhook::verify_path_token(&token, t) => Ok(()),
                Some(_) => Err("wrong path token".to_owned()),
                None => Err("missing path token (/hooks/kommo/<token>)".to_owned()),
            }),
        );
        let hook = self.webhook.clone();
        let ping = SourceRoute::new(
            SOURCE_AIRTABLE_PING,
            FnVerifier(move |r: &VerifyRequest<'_>| {
                let guard = hook.read().unwrap_or_else(std::sync::PoisonError::into_inner);
                let Some((_, secret)) = guard.as_ref() else { return Err("no Airtable webhook is set up".to_owned()) };
                let mac = r.headers.get("x-airtable-content-mac").map(String::as_str);
                airtable_client::verify_mac(secret, r.body, mac).map_err(|e| e.to_string())
            }),
        )
        .keep_headers(["x-airtable-content-mac"]);
        vec![kommo, ping]
    }

    /// Loads the stored Airtable webhook, if any (call before serving pings).
    ///
    /// # Errors
    /// When the store fails.
    pub async fn load_webhook(&self, store: &Store) -> Result<Option<WebhookId>, SetupError> {
        let Some(raw) = store.cursor_get(CURSOR_WEBHOOK, "current").await? else { return Ok(None) };
        let Ok(stored) = serde_json::from_str::<StoredWebhook>(&raw) else { return Ok(None) };
        let id = WebhookId::from(stored.id.as_str());
        *self.webhook.write().unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some((id.clone(), MacSecret::from_base64(stored.mac_secret_base64)));
        Ok(Some(id))
    }

    /// Creates the Airtable webhook for `notification_url`, or adopts ours when it still exists; refreshes it when it
    /// expires within two days; recreates it when it was lost (deleted, expired, or its secret is not ours).
    ///
    /// # Errors
    /// API or store errors.
    pub async fn ensure_webhook(&self, store: &Store, notification_url: &str) -> Result<WebhookId, SetupError> {
        let known = self.load_webhook(store).await?;
        let hooks = self.airtable.list_webhooks(&self.base).await?;
        if let Some(id) = &known
            && let Some(h) = hooks.iter().find(|h| &h.id == id && h.is_hook_enabled)
        {
            if h.needs_refresh(Utc::now(), Duration::from_secs(2 * 24 * 3600)) {
                let refreshed = self.airtable.refresh_webhook(&self.base, id).await?;
                tracing::info!(webhook = %id, expires = ?refreshed.expiration_time, "Airtable webhook refreshed");
            }
            return Ok(id.clone());
        }
        // ours is gone (or never existed): remove stale hooks pointing at our URL, then create a new one
        for h in hooks.iter().filter(|h| h.notification_url.as_deref() == Some(notification_url)) {
            self.airtable.delete_webhook(&self.base, &h.id).await?;
        }
        let table_id = self.resolved.read().unwrap_or_else(std::sync::PoisonError::into_inner).table_id.clone();
        let created = self
            .airtable
            .create_webhook(
                &self.base,
                &CreateWebhook {
                    notification_url: Some(notification_url.to_owned()),
                    specification: WebhookSpecification::table_data(table_id),
                },
            )
            .await?;
        let stored = StoredWebhook {
            id: created.id.to_string(),
            mac_secret_base64: created.mac_secret_base64.expose_base64().to_owned(),
            expiration_time: created.expiration_time.map(|t| t.to_rfc3339()),
        };
        store.cursor_set(CURSOR_WEBHOOK, "current", &serde_json::to_string(&stored).unwrap_or_default()).await?;
        // a new webhook starts its payload cursor at 1
        store.cursor_set(CURSOR_WEBHOOK, &format!("cursor:{}", created.id), "1").await?;
        *self.webhook.write().unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some((created.id.clone(), created.mac_secret_base64));
        tracing::info!(webhook = %created.id, "Airtable webhook created");
        Ok(created.id)
    }

    /// Drains the payload feed of the stored webhook into `airtable` events, advancing the cursor in the same
    /// transaction as the rows. Returns the number of new events.
    ///
    /// # Errors
    /// API or store errors (nothing is lost: the cursor only moves with the rows).
    pub async fn poll_payloads(&self, store: &Store) -> Result<usize, SetupError> {
        let Some(webhook) =
            self.webhook.read().unwrap_or_else(std::sync::PoisonError::into_inner).as_ref().map(|w| w.0.clone())
        else {
            return Ok(0);
        };
        let stream = format!("cursor:{webhook}");
        let start: u64 = store.cursor_get(CURSOR_WEBHOOK, &stream).await?.and_then(|c| c.parse().ok()).unwrap_or(1);
        let mut feed = self.airtable.payload_feed(&self.base, &webhook, start);
        let table_id = self.resolved.read().unwrap_or_else(std::sync::PoisonError::into_inner).table_id.clone();
        let mut batch = Vec::new();
        let mut new = 0;
        loop {
            let next = match feed.next().await {
                // Airtable deleted payloads unread (kept one week): the Airtable edits in them are lost and cannot be
                // replayed; say so loudly and go on after the gap (the feed's cursor is already past it)
                Some(Err(airtable_client::Error::PayloadsExpired(gap))) => {
                    tracing::error!(%gap, "airtable payloads lost: edits made in that span were not synced");
                    continue;
                }
                other => other.transpose()?,
            };
            if let Some(p) = &next {
                for change in p.payload.record_changes() {
                    if change.table_id.as_str() != table_id || change.kind == ChangeKind::Destroyed {
                        continue;
                    }
                    let body = RecordChangeEvent {
                        webhook: webhook.to_string(),
                        cursor: p.cursor,
                        record_id: change.record_id.to_string(),
                        payload: p.payload.clone(),
                    };
                    let key = format!("{webhook}:{}:{}", p.cursor, change.record_id);
                    // a linked record's changes are ordered with its lead's Kommo events (the same key): the two
                    // directions of one lead never run at once, so neither writes over a change the other is
                    // applying (a lead read before a person's Airtable edit, written after it)
                    let ordering = match store.id_get_local(MAP_SYSTEM, MAP_KIND, change.record_id.as_str()).await? {
                        Some(lead) => format!("lead:{lead}"),
                        None => format!("record:{}", change.record_id),
                    };
                    batch.push(
                        NewEvent::new(SOURCE_AIRTABLE, key, serde_json::to_vec(&body).unwrap_or_default())
                            .ordering_key(ordering),
                    );
                }
            }
            if next.is_none() || batch.len() >= 200 {
                let cursor = feed.cursor().to_string();
                let stored = store.ingest_batch_with_cursor(&batch, Some((CURSOR_WEBHOOK, &stream, &cursor))).await?;
                new += stored.iter().filter(|i| matches!(i, crate::Ingested::Accepted { .. })).count();
                batch.clear();
            }
            if next.is_none() {
                break;
            }
        }
        Ok(new)
    }

    /// One Kommo reconcile pass: leads updated since the last pass (minus the overlap) are fed to the inbox with
    /// a state key; a state some webhook (or earlier poll) already delivered is left out, so missed webhooks are
    /// filled in and delivered ones are not repeated.
    /// Returns the number of new events.
    ///
    /// # Errors
    /// API or store errors.
    pub async fn reconcile(&self, store: &Store) -> Result<usize, SetupError> {
        let overlap = i64::try_from(self.config.reconcile.overlap_secs).unwrap_or(0);
        let since: Option<i64> = store.cursor_get(CURSOR_RECONCILE, "leads").await?.and_then(|c| c.parse().ok());
        let params = ListParams::new()
            .updated_between(since.map(|s| s - overlap), None)
            .order("updated_at", Order::Asc)
            .limit(250);
        let mut leads = self.kommo.leads().stream(params);
        let mut batch = Vec::new();
        let mut max_seen = since.unwrap_or(0);
        let mut new = 0;
        while let Some(lead) = leads.next().await {
            let lead = lead?;
            let updated = lead.updated_at.unwrap_or(0);
            max_seen = max_seen.max(updated);
            batch.push(lead_event(&lead));
            if batch.len() >= 250 {
                new += self.store_batch(store, &mut batch, None).await?;
            }
        }
        let cursor = max_seen.to_string();
        new += self.store_batch(store, &mut batch, Some((CURSOR_RECONCILE, "leads", &cursor))).await?;
        Ok(new)
    }

    /// Feeds every lead currently in the won status of the watched pipelines to the inbox (states already
    /// delivered are left out: re-running it adds nothing new). Calls `progress` with the running count.
    ///
    /// # Errors
    /// API or store errors.
    pub async fn backfill(&self, store: &Store, mut progress: impl FnMut(usize)) -> Result<(usize, usize), SetupError> {
        let won = StatusId::from(self.config.trigger.won_status_id);
        let mut params = ListParams::new().limit(250);
        let pipelines: Vec<PipelineId> = if self.config.trigger.pipeline_ids.is_empty() {
            self.kommo.pipelines().list().await?.into_iter().map(|p| p.id).collect()
        } else {
            self.config.trigger.pipeline_ids.iter().map(|p| PipelineId::from(*p)).collect()
        };
        for p in pipelines {
            params = params.status(p, won);
        }
        let mut leads = self.kommo.leads().stream(params);
        let (mut seen, mut new) = (0, 0);
        let mut batch = Vec::new();
        while let Some(lead) = leads.next().await {
            let lead = lead?;
            seen += 1;
            batch.push(lead_event(&lead));
            // a Kommo page at a time: workers already running claim whole batches of it
            if batch.len() >= 250 {
                new += self.store_batch(store, &mut batch, None).await?;
            }
            progress(seen);
        }
        new += self.store_batch(store, &mut batch, None).await?;
        Ok((seen, new))
    }

    async fn store_batch(
        &self,
        store: &Store,
        batch: &mut Vec<NewEvent>,
        cursor: Option<(&str, &str, &str)>,
    ) -> Result<usize, SetupError> {
        // a state some webhook already delivered (under its finer key) is not fed again
        let mut fresh = Vec::with_capacity(batch.len());
        for event in batch.drain(..) {
            let prefix = event.dedup_key.strip_suffix("poll").unwrap_or(&event.dedup_key);
            let ordering = event.ordering_key.as_deref().unwrap_or_default();
            if !store.has_event_with_prefix(SOURCE_KOMMO, ordering, prefix).await? {
                fresh.push(event);
            }
        }
        *batch = fresh;
        if batch.is_empty() && cursor.is_none() {
            return Ok(0);
        }
        let r = store.ingest_batch_with_cursor(batch, cursor).await?;
        batch.clear();
        Ok(r.iter().filter(|i| matches!(i, crate::Ingested::Accepted { .. })).count())
    }

    // --------------------------------------------------------------------------------------------- handlers

    async fn handle_kommo(&self, ctx: &Ctx, body: &[u8]) -> Result<Outcome, Fault> {
        let payload =
            kommo_api::webhook::parse(body).map_err(|e| Fault::Fail(format!("unparsable Kommo webhook: {e}")))?;
        if let Some(id) = self.config.kommo.account_id {
            payload
                .check_account(Some(kommo_api::AccountId::from(id)), None)
                .map_err(|e| Fault::Fail(format!("webhook from another account: {e}")))?;
        }
        let mut leads: BTreeMap<LeadId, i64> = BTreeMap::new();
        for ev in &payload.events {
            if let WebhookEvent::Lead { lead, .. } = ev {
                let t = ev.time().unwrap_or(0);
                let e = leads.entry(lead.id).or_insert(t);
                *e = (*e).max(t);
            }
        }
        if leads.is_empty() {
            tracing::info!("Kommo webhook without lead events: nothing to do");
            return Ok(Outcome::skipped("no lead events"));
        }
        let mut tally = crate::Tally::default();
        for (lead, time) in leads {
            match self.sync_lead(ctx, lead, time).await? {
                Some(reason) => tally.skipped(reason),
                None => tally.applied(),
            }
        }
        Ok(tally.outcome())
    }

    /// Kommo → Airtable for one lead, from its current state. `Some(reason)` when nothing was written on purpose
    /// (filtered out, gone, no change since the last sync, stale).
    ///
    /// The convergence rule: the markers that say "Airtable holds V" (echo hashes of both sides, the field
    /// watermarks, the id map entry) are committed by [`Ctx::step_marked`] with the write's journal entry, after
    /// Airtable confirmed it; while the write runs they are only pending, so a failed or killed attempt leaves
    /// nothing that would make its retry skip the write.
    async fn sync_lead(&self, ctx: &Ctx, lead_id: LeadId, event_time: i64) -> Result<Option<String>, Fault> {
        let Some(lead) = self.kommo.leads().find(lead_id, &["contacts", "companies"]).await? else {
            tracing::info!(lead = %lead_id, "lead no longer exists: nothing to do");
            return Ok(Some(SKIP_GONE.into()));
        };
        let existing = match self.gate(ctx, &lead).await? {
            Gate::Skip(reason) => return Ok(Some(reason)),
            Gate::Go(existing) => existing,
        };
        let flat = self.flat_lead(&lead, &Lookups::default()).await?;
        let (existing, fields, pending) = match self.plan(ctx, &lead, &flat, existing, event_time).await? {
            Plan::Skip(reason) => return Ok(Some(reason)),
            Plan::Write { existing, fields, pending } => (existing, fields, pending),
        };
        let cfg = &self.config;
        let lead_key = lead_id.to_string();
        match existing {
            Some(rec) => {
                let rec = RecordId::from(rec.as_str());
                let to_write = fields.clone();
                let step = format!("update:{}", short_hash(&to_write));
                let table = self.table();
                ctx.step_marked(&step, pending, || async move {
                    let f: Fields = to_write.into_iter().collect();
                    table.update_one(&rec, &f, WriteOptions::typecast()).await.map_err(boxed)?;
                    Ok::<_, BoxError>(((), Markers::new()))
                })
                .await?;
                bump(&self.stats.records_updated);
            }
            None => {
                // Journaled before the create: from now on every attempt of this event links a record it may
                // have made before it filters anything (see above).
                ctx.step(STEP_UPSERT_INTENT, || async { Ok::<_, BoxError>(true) }).await?;
                let mut to_write = fields.clone();
                to_write.insert(cfg.airtable.deal_id_field.clone(), Value::String(lead_key.clone()));
                let table = self.table();
                let key_field = cfg.airtable.deal_id_field.clone();
                let status_field = cfg.airtable.status_field.clone();
                let initial = Value::String(cfg.airtable.initial_status.clone());
                let formula = field_eq(&key_field, &lead_key);
                let key = lead_key.clone();
                // upsert by the external key: a retry or a crash after the write never makes a second record
                let (rec, created): (String, bool) = ctx
                    .step_marked("upsert", pending, || async move {
                        // "Status" is set on create only, in the creating write itself: a record that already
                        // exists (an earlier run lost its id map entry, or someone made it by hand) keeps the
                        // status the team gave it, and a new one is never visible without it (a person or an
                        // Airtable automation could otherwise set it in between, and we would overwrite them).
                        let found = table
                            .list()
                            .filter_by_formula(formula)
                            .fields([key_field.as_str()])
                            .max_records(1)
                            .page(None)
                            .await
                            .map_err(boxed)?;
                        let mut f: Fields = to_write.into_iter().collect();
                        let sets_status = found.records.is_empty();
                        if sets_status {
                            f = f.with(status_field.as_str(), initial.clone());
                        }
                        let res =
                            table.upsert(&[f], &[key_field.as_str()], WriteOptions::typecast()).await.map_err(boxed)?;
                        let record = res
                            .records
                            .into_iter()
                            .next()
                            .ok_or_else(|| boxed(Fault::Fail("upsert returned no record".into())))?;
                        let created = res.created_records.contains(&record.id);
                        let mut markers = Markers::new().id(MAP_SYSTEM, MAP_KIND, &key, record.id.as_str());
                        if sets_status {
                            markers = markers.written("airtable", &key, &status_field, initial);
                        }
                        Ok::<_, BoxError>(((record.id.to_string(), created), markers))
                    })
                    .await?;
                if created {
                    bump(&self.stats.records_created);
                    tracing::info!(lead = %lead_id, record = %rec, "onboarding record created");
                } else {
                    bump(&self.stats.records_updated);
                }
            }
        }
        Ok(None)
    }

    /// The part of [`Self::sync_lead`] before the lead's related entities are read: the lead exists, its record
    /// is linked (or found by the external key when an earlier attempt may have created it), the filters pass.
    async fn gate(&self, ctx: &Ctx, lead: &kommo_api::leads::Lead) -> Result<Gate, Fault> {
        let lead_id = lead.id;
        let lead_key = lead_id.to_string();
        let mut existing = ctx.id_get(MAP_SYSTEM, MAP_KIND, &lead_key).await?;
        // Link first, filter after: an earlier attempt of this event may have created the record and died before
        // its journal entry (and the id map entry with it) was committed. The lead may have left the trigger status
        // since, and the filter below would then strand that record: find it by the external key and link it.
        if existing.is_none() && ctx.journaled(STEP_UPSERT_INTENT).await?.is_some() {
            existing = self.link_existing(ctx, &lead_key).await?;
        }
        if let Some(reason) = self.filtered_out(lead, existing.is_some()) {
            bump(&self.stats.filtered);
            tracing::info!(lead = %lead_id, reason, "filtered out");
            return Ok(Gate::Skip(format!("filtered: {reason}")));
        }
        Ok(Gate::Go(existing))
    }

    /// Which fields to write for a lead that passed [`Self::gate`], with the markers pending while they are
    /// written. Each (lead, field) remembers the last value known to be in sync on each side: a value equal to it
    /// is nothing new (our own write coming back, a redelivery, an unchanged field); any other value is Kommo's
    /// newer state (the lead is read now) and is written whatever the event times say. A mapped field Kommo no
    /// longer has is cleared.
    async fn plan(
        &self,
        ctx: &Ctx,
        lead: &kommo_api::leads::Lead,
        flat: &Value,
        existing: Option<String>,
        event_time: i64,
    ) -> Result<Plan, Fault> {
        let cfg = &self.config;
        let lead_id = lead.id;
        let lead_key = lead_id.to_string();
        let mapped =
            cfg.mapping.forward(flat, &mut |_, _, _| None).map_err(|e| Fault::Fail(format!("mapping: {e}")))?;
        let time =
            DateTime::from_timestamp(event_time.max(lead.updated_at.unwrap_or(0)), 0).unwrap_or_else(|| ctx.now());
        let mut fields = Map::new();
        let mut pending = Markers::new();
        let mut in_sync = 0;
        for fm in &cfg.mapping.fields {
            let value = mapped.get(&fm.target).cloned().unwrap_or(Value::Null);
            if value.is_null() && existing.is_none() {
                continue; // a new record has nothing to clear
            }
            let source_value = flat.get(&fm.source).cloned().unwrap_or(Value::Null);
            if ctx.is_echo("kommo", &lead_key, &fm.source, &source_value).await?
                || ctx.is_echo("airtable", &lead_key, &fm.target, &value).await?
            {
                in_sync += 1;
                continue;
            }
            // Not the value last synced on either side: Kommo's field changed after that sync (the lead is read
            // now, and a sync's markers hold the Kommo value it read or wrote), so this is the newer change, whatever
            // the clocks say. No check of the watermark here: Kommo stamps whole seconds, so a change made in the
            // second after our write of a person's Airtable edit reads as older than that edit, and skipping it
            // left Airtable at the edit and Kommo at its own change. The watermark still advances with the write,
            // for the Airtable side's check.
            let entity = format!("field:{lead_key}:{}", fm.source);
            pending = pending
                .written("airtable", &lead_key, &fm.target, value.clone())
                .written("kommo", &lead_key, &fm.source, source_value)
                .watermark(entity, time);
            fields.insert(fm.target.clone(), value);
        }
        if existing.is_some() && fields.is_empty() {
            if in_sync > 0 {
                bump(&self.stats.echoes_skipped);
            }
            return Ok(Plan::Skip(SKIP_IN_SYNC.into()));
        }
        Ok(Plan::Write { existing, fields, pending })
    }

    // --------------------------------------------------------------------------------------------- batches

    /// The one lead (and its newest event time) a Kommo event is about; `None` for an event without exactly one
    /// lead (handled alone by [`Self::handle_kommo`]).
    fn single_lead(&self, body: &[u8]) -> Result<Option<(LeadId, i64)>, Fault> {
        let payload =
            kommo_api::webhook::parse(body).map_err(|e| Fault::Fail(format!("unparsable Kommo webhook: {e}")))?;
        if let Some(id) = self.config.kommo.account_id {
            payload
                .check_account(Some(kommo_api::AccountId::from(id)), None)
                .map_err(|e| Fault::Fail(format!("webhook from another account: {e}")))?;
        }
        let mut leads: BTreeMap<LeadId, i64> = BTreeMap::new();
        for ev in &payload.events {
            if let WebhookEvent::Lead { lead, .. } = ev {
                let t = ev.time().unwrap_or(0);
                let e = leads.entry(lead.id).or_insert(t);
                *e = (*e).max(t);
            }
        }
        Ok(if leads.len() == 1 { leads.into_iter().next() } else { None })
    }

    /// Kommo → Airtable for a batch of lead events: the leads in one Kommo GET per 250 (`filter[id][]`), their
    /// users, contacts and companies once per batch, the records looked up in one Airtable request (one formula
    /// over the batch's keys) and written in chunks of 10 (`performUpsert` for new records, PATCH for linked ones).
    /// Each event keeps its own journal entry and markers ([`step_batch`]); a chunk Airtable refuses for one bad
    /// record is written again record by record, so only that event fails.
    async fn handle_kommo_batch(&self, items: &[BatchItem]) -> Vec<Result<Outcome, Fault>> {
        let mut out: Vec<Option<Result<Outcome, Fault>>> = (0..items.len()).map(|_| None).collect();
        let mut work: Vec<(usize, LeadId, i64)> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match self.single_lead(&item.event.payload) {
                Ok(Some((lead, time))) => work.push((i, lead, time)),
                Ok(None) => out[i] = Some(self.handle_kommo(&item.ctx, &item.event.payload).await),
                Err(f) => out[i] = Some(Err(f)),
            }
        }
        let ids: Vec<LeadId> = work.iter().map(|w| w.1).collect::<BTreeSet<_>>().into_iter().collect();
        let leads = match self.fetch_leads(&ids).await {
            Ok(leads) => leads,
            Err(f) => {
                for (i, ..) in &work {
                    out[*i] = Some(Err(f.clone()));
                }
                return finish(out);
            }
        };
        // link and filter, each event on its own journal
        let gates = crate::flow::bounded(
            work.iter()
                .map(|(i, lead_id, _)| {
                    let lead = leads.get(lead_id);
                    async move {
                        match lead {
                            None => Ok(Gate::Skip(SKIP_GONE.into())),
                            Some(lead) => self.gate(&items[*i].ctx, lead).await,
                        }
                    }
                })
                .collect(),
        )
        .await;
        let mut go = Vec::new();
        for ((i, lead_id, time), gate) in work.iter().zip(gates) {
            match gate {
                Ok(Gate::Skip(reason)) => out[*i] = Some(Ok(Outcome::skipped(reason))),
                Ok(Gate::Go(existing)) => {
                    if let Some(lead) = leads.get(lead_id) {
                        go.push((*i, lead, existing, *time));
                    }
                }
                Err(f) => out[*i] = Some(Err(f)),
            }
        }
        let known = match self.lookups(go.iter().map(|g| g.1)).await {
            Ok(known) => known,
            Err(f) => {
                for g in &go {
                    out[g.0] = Some(Err(f.clone()));
                }
                return finish(out);
            }
        };
        let plans = crate::flow::bounded(
            go.into_iter()
                .map(|(i, lead, existing, time)| {
                    let known = &known;
                    async move {
                        let plan = async {
                            let flat = self.flat_lead(lead, known).await?;
                            self.plan(&items[i].ctx, lead, &flat, existing, time).await
                        }
                        .await;
                        (i, lead.id, plan)
                    }
                })
                .collect(),
        )
        .await;
        let (mut updates, mut update_idx, mut creates) = (Vec::new(), Vec::new(), Vec::new());
        for (i, lead_id, plan) in plans {
            match plan {
                Err(f) => out[i] = Some(Err(f)),
                Ok(Plan::Skip(reason)) => out[i] = Some(Ok(Outcome::skipped(reason))),
                Ok(Plan::Write { existing: Some(rec), fields, pending }) => {
                    update_idx.push(i);
                    updates.push(BatchStep {
                        ctx: &items[i].ctx,
                        step: format!("update:{}", short_hash(&fields)),
                        pending,
                        input: (RecordId::from(rec.as_str()), fields),
                    });
                }
                Ok(Plan::Write { existing: None, fields, pending }) => creates.push((i, lead_id, fields, pending)),
            }
        }
        let (updated, created) = tokio::join!(self.write_updates(updates), self.write_creates(items, creates));
        for (i, r) in update_idx.into_iter().zip(updated).chain(created) {
            out[i] = Some(r);
        }
        finish(out)
    }

    /// The leads of `ids` with their contacts and companies; a lead Kommo does not return no longer exists.
    async fn fetch_leads(&self, ids: &[LeadId]) -> Result<HashMap<LeadId, kommo_api::leads::Lead>, Fault> {
        leads_by_id(&self.kommo, ids, &["contacts", "companies"]).await
    }

    /// The responsible users, main contacts and first companies of `leads`, read once for the batch.
    async fn lookups<'l>(&self, leads: impl Iterator<Item = &'l kommo_api::leads::Lead>) -> Result<Lookups, Fault> {
        let (mut users, mut contacts, mut companies) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
        for lead in leads {
            users.extend(lead.responsible_user_id);
            contacts.extend(lead.main_contact());
            companies.extend(lead.embedded.companies.first().map(|c| c.id));
        }
        Lookups::read(&self.kommo, users, contacts, companies).await
    }

    /// PATCHes linked records in chunks of 10, each event's step journaled on its own.
    async fn write_updates(
        &self,
        steps: Vec<BatchStep<'_, (RecordId, Map<String, Value>)>>,
    ) -> Vec<Result<Outcome, Fault>> {
        let table = self.table();
        let results = step_batch(steps, |inputs| {
            let table = &table;
            async move {
                let fields = |f: &Map<String, Value>| -> Fields { f.clone().into_iter().collect() };
                write_chunks(
                    &inputs,
                    AIRTABLE_CHUNK,
                    "Airtable record updates",
                    |chunk: &[(RecordId, Map<String, Value>)]| {
                        let updates: Vec<RecordUpdate> =
                            chunk.iter().map(|(id, f)| RecordUpdate { id: id.clone(), fields: fields(f) }).collect();
                        async move { table.update(&updates, WriteOptions::typecast()).await.map(|_| ()) }
                    },
                    |(id, f): &(RecordId, Map<String, Value>)| async move {
                        table.update_one(id, &fields(f), WriteOptions::typecast()).await.map(|_| ())
                    },
                )
                .await
                .into_iter()
                .map(|r| r.map(|()| ((), Markers::new())).map_err(boxed))
                .collect()
            }
        })
        .await;
        results
            .into_iter()
            .map(|r| match r {
                Ok(()) => {
                    bump(&self.stats.records_updated);
                    Ok(Outcome::Done)
                }
                Err(e) => Err(Fault::from(e)),
            })
            .collect()
    }

    /// Creates (or adopts) the records of unlinked leads: the upsert intent journaled per event, then one look-up
    /// of the batch's keys (which records exist decides who gets the initial "Status": only records created by
    /// the write itself) and `performUpsert` in chunks of 10.
    async fn write_creates(
        &self,
        items: &[BatchItem],
        creates: Vec<(usize, LeadId, Map<String, Value>, Markers)>,
    ) -> Vec<(usize, Result<Outcome, Fault>)> {
        let intents = crate::flow::bounded(
            creates
                .iter()
                .map(|(i, ..)| items[*i].ctx.step(STEP_UPSERT_INTENT, || async { Ok::<_, BoxError>(true) }))
                .collect(),
        )
        .await;
        let mut out = Vec::new();
        let (mut idx, mut steps) = (Vec::new(), Vec::new());
        for ((i, lead_id, mut fields, pending), intent) in creates.into_iter().zip(intents) {
            if let Err(e) = intent {
                out.push((i, Err(Fault::from(e))));
                continue;
            }
            let key = lead_id.to_string();
            fields.insert(self.config.airtable.deal_id_field.clone(), Value::String(key.clone()));
            idx.push((i, lead_id));
            steps.push(BatchStep { ctx: &items[i].ctx, step: "upsert".into(), pending, input: (key, fields) });
        }
        let results = step_batch(steps, |inputs| self.upsert_batch(inputs)).await;
        for ((i, lead_id), r) in idx.into_iter().zip(results) {
            out.push((
                i,
                match r {
                    Ok::<(String, bool), _>((rec, created)) => {
                        if created {
                            bump(&self.stats.records_created);
                            tracing::info!(lead = %lead_id, record = %rec, "onboarding record created");
                        } else {
                            bump(&self.stats.records_updated);
                        }
                        Ok(Outcome::Done)
                    }
                    Err(e) => Err(Fault::from(e)),
                },
            ));
        }
        out
    }

    /// The batch write of [`Self::write_creates`]: one look-up over the keys, then upserts in chunks of 10.
    async fn upsert_batch(
        &self,
        inputs: Vec<(String, Map<String, Value>)>,
    ) -> Vec<Result<((String, bool), Markers), BoxError>> {
        let cfg = &self.config.airtable;
        let key_field = cfg.deal_id_field.as_str();
        let table = self.table();
        let formula = Formula::or(inputs.iter().map(|(key, _)| field_eq(key_field, key)));
        let found: HashSet<String> = match table.list().filter_by_formula(formula).fields([key_field]).all().await {
            Ok(records) => records.into_iter().filter_map(|r| r.fields.get_str(key_field).map(str::to_owned)).collect(),
            Err(e) => {
                let f = Fault::from(e);
                return inputs.iter().map(|_| Err(boxed(f.clone()))).collect();
            }
        };
        // "Status" is set on create only, in the creating write itself (see `sync_lead`)
        let records: Vec<(String, Fields, bool)> = inputs
            .into_iter()
            .map(|(key, fields)| {
                let mut f: Fields = fields.into_iter().collect();
                let sets_status = !found.contains(&key);
                if sets_status {
                    f = f.with(cfg.status_field.as_str(), Value::String(cfg.initial_status.clone()));
                }
                (key, f, sets_status)
            })
            .collect();
        let chunks = records.chunks(AIRTABLE_CHUNK).map(|chunk| {
            let table = &table;
            async move {
                match self.upsert_chunk(table, chunk).await {
                    Ok(r) => r,
                    Err(e) if e.class().is_retryable() || chunk.len() == 1 => {
                        let f = Fault::from(e);
                        chunk.iter().map(|_| Err(boxed(f.clone()))).collect()
                    }
                    Err(e) => {
                        // one bad record refused the chunk: each alone, so only that one fails
                        tracing::warn!(error = %e, "an Airtable upsert chunk was refused: writing it record by record");
                        futures::future::join_all(chunk.chunks(1).map(|one| async move {
                            match self.upsert_chunk(table, one).await {
                                Ok(mut r) => r.pop().unwrap_or_else(|| Err(boxed(Fault::Fail("no result".into())))),
                                Err(e) => Err(boxed(Fault::from(e))),
                            }
                        }))
                        .await
                    }
                }
            }
        });
        futures::future::join_all(chunks).await.into_iter().flatten().collect()
    }

    /// One `performUpsert` of up to 10 records; each record's id (found by its key in the answer), whether it was
    /// created, and the markers its confirmed write makes true.
    async fn upsert_chunk(
        &self,
        table: &airtable_client::Table,
        chunk: &[(String, Fields, bool)],
    ) -> Result<Vec<Result<((String, bool), Markers), BoxError>>, airtable_client::Error> {
        let cfg = &self.config.airtable;
        let key_field = cfg.deal_id_field.as_str();
        let fields: Vec<Fields> = chunk.iter().map(|c| c.1.clone()).collect();
        let res = table.upsert(&fields, &[key_field], WriteOptions::typecast()).await?;
        Ok(chunk
            .iter()
            .enumerate()
            .map(|(n, (key, _, sets_status))| {
                let record = res
                    .records
                    .iter()
                    .find(|r| r.fields.get_str(key_field) == Some(key.as_str()))
                    .or_else(|| (res.records.len() == chunk.len()).then(|| &res.records[n]))
                    .ok_or_else(|| boxed(Fault::Fail("upsert returned no record for the key".into())))?;
                let created = res.created_records.contains(&record.id);
                let mut markers = Markers::new().id(MAP_SYSTEM, MAP_KIND, key, record.id.as_str());
                if *sets_status {
                    markers =
                        markers.written("airtable", key, &cfg.status_field, Value::String(cfg.initial_status.clone()));
                }
                Ok(((record.id.to_string(), created), markers))
            })
            .collect())
    }

    /// Finds the onboarding record of `lead_key` by the external key and links it (id map entry committed with
    /// the journal entry of the look-up). `None` when there is none.
    async fn link_existing(&self, ctx: &Ctx, lead_key: &str) -> Result<Option<String>, Fault> {
        let table = self.table();
        let formula = field_eq(&self.config.airtable.deal_id_field, lead_key);
        let key_field = self.config.airtable.deal_id_field.clone();
        let key = lead_key.to_owned();
        let found: Option<String> = ctx
            .step_marked("link", Markers::new(), || async move {
                let page = table
                    .list()
                    .filter_by_formula(formula)
                    .fields([key_field.as_str()])
                    .max_records(1)
                    .page(None)
                    .await
                    .map_err(boxed)?;
                let rec = page.records.into_iter().next().map(|r| r.id.to_string());
                let markers = rec
                    .as_ref()
                    .map_or_else(Markers::new, |r| Markers::new().id(MAP_SYSTEM, MAP_KIND, &key, r.as_str()));
                Ok::<_, BoxError>((rec, markers))
            })
            .await?;
        if let Some(rec) = &found {
            tracing::info!(lead = lead_key, record = %rec, "linked a record an interrupted attempt had created");
        }
        Ok(found)
    }

    fn filtered_out(&self, lead: &kommo_api::leads::Lead, mapped: bool) -> Option<String> {
        let t = &self.config.trigger;
        if !t.pipeline_ids.is_empty() && !lead.pipeline_id.is_some_and(|p| t.pipeline_ids.contains(&p.get())) {
            let pipeline = lead.pipeline_id.map_or_else(|| "none".to_owned(), |p| p.get().to_string());
            return Some(format!("pipeline {pipeline} is not watched"));
        }
        let tags: BTreeSet<String> = lead.embedded.tags.iter().map(|t| t.name.to_lowercase()).collect();
        if let Some(tag) = t.exclude_tags.iter().find(|x| tags.contains(&x.to_lowercase())) {
            return Some(format!("tagged `{tag}`"));
        }
        if !mapped && lead.status_id.map(StatusId::get) != Some(t.won_status_id) {
            let status = lead.status_id.map_or_else(|| "none".to_owned(), |s| s.get().to_string());
            return Some(format!("status {status} is not the trigger status {}", t.won_status_id));
        }
        None
    }

    /// The lead as a flat JSON object with the names the mapping uses.
    async fn flat_lead(&self, lead: &kommo_api::leads::Lead, known: &Lookups) -> Result<Value, Fault> {
        let mut flat = Map::new();
        flat.insert("name".into(), json!(lead.name));
        if let Some(p) = lead.price {
            flat.insert("price".into(), json!(p));
        }
        if let Some(p) = lead.pipeline_id {
            flat.insert("pipeline".into(), json!(p.to_string()));
        }
        if let Some(s) = lead.status_id {
            flat.insert("status".into(), json!(s.to_string()));
        }
        if let Some(c) = lead.closed_at {
            flat.insert("closed_at".into(), json!(c));
        }
        if let Some(u) = lead.responsible_user_id {
            // A transient failure (429, 5xx, timeout) is retried, never written as the numeric id; only a user
            // Kommo says does not exist (deleted) is shown by id.
            let name = match known.users.get(&u) {
                Some(name) => name.clone(),
                None => match self.kommo.users().get(u).await {
                    Ok(user) => user.name,
                    Err(e) if e.is_not_found() => u.to_string(),
                    Err(e) => return Err(Fault::from(e)),
                },
            };
            flat.insert("responsible_user".into(), json!(name));
        }
        if let Some(cid) = lead.main_contact() {
            let c = match known.contacts.get(&cid) {
                Some(c) => c.clone(),
                None => self.kommo.contacts().get(cid, &[]).await?,
            };
            flat.insert("contact.name".into(), json!(c.name));
            if let Some(e) = c.emails().into_iter().next() {
                flat.insert("contact.email".into(), json!(e));
            }
            if let Some(p) = c.phones().into_iter().next() {
                flat.insert("contact.phone".into(), json!(p));
            }
        }
        if let Some(co) = lead.embedded.companies.first() {
            let name = match known.companies.get(&co.id) {
                Some(c) => c.name.clone(),
                None => self.kommo.companies().get(co.id, &[]).await?.name,
            };
            flat.insert("company.name".into(), json!(name));
        }
        let resolved = self.resolved.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        for (name, (id, kind)) in &resolved.kommo_fields {
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
        Ok(Value::Object(flat))
    }

    /// Drains the payload feed. Pings of the same second share a dedup key (see [`Flow::dedup_key`]), so a ping
    /// dropped as a duplicate may announce changes made after our first drain: the handler drains once more after
    /// that second has passed (by our clock, plus a second of slack), which covers them.
    async fn handle_ping(&self, ctx: &Ctx, body: &[u8]) -> Result<Outcome, Fault> {
        let drain = || async {
            self.poll_payloads(ctx.store()).await.map_err(|e| match e {
                SetupError::Airtable(e) => Fault::from(*e),
                other => Fault::Retry(None, other.to_string()),
            })
        };
        let mut n = drain().await?;
        let second = serde_json::from_slice::<WebhookNotification>(body)
            .ok()
            .and_then(|p| DateTime::parse_from_rfc3339(&p.timestamp).ok())
            .map(|t| t.with_timezone(&Utc).timestamp());
        if let Some(second) = second {
            let until = DateTime::from_timestamp(second + 2, 0).unwrap_or_else(Utc::now);
            let wait = (until - Utc::now()).to_std().unwrap_or(Duration::ZERO).min(Duration::from_secs(2));
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
                n += drain().await?;
            }
        }
        tracing::debug!(new_events = n, "Airtable payload feed drained");
        Ok(Outcome::Done)
    }

    /// Airtable → Kommo for record changes: each change's notes and Kommo field writes decided on its own
    /// ([`Self::plan_change`]), the records of the changes that would reach Kommo read in one Airtable request
    /// ([`Self::drop_superseded`]), status notes added per change (each after its own duplicate check), and the
    /// field writes sent as batch `PATCH /api/v4/leads` of up to 50 leads ([`Self::write_kommo_fields`]). One
    /// change alone (`handle`) takes the same path as a batch of one.
    async fn handle_record_changes(&self, changes: &[(&Ctx, &[u8])]) -> Vec<Result<Outcome, Fault>> {
        let planned =
            crate::flow::bounded(changes.iter().map(|(ctx, body)| self.plan_change(ctx, body)).collect()).await;
        let mut out: Vec<Option<Result<Outcome, Fault>>> = (0..changes.len()).map(|_| None).collect();
        let mut works = Vec::new();
        for (i, p) in planned.into_iter().enumerate() {
            match p {
                Err(f) => out[i] = Some(Err(f)),
                Ok(Err(skip)) => out[i] = Some(Ok(skip)),
                Ok(Ok(work)) => works.push((i, work)),
            }
        }
        if let Err(f) = self.drop_superseded(changes, &mut works).await {
            for (i, _) in &works {
                out[*i] = Some(Err(f.clone()));
            }
            return finish(out);
        }
        // status notes, each checked for a duplicate on its lead first
        let noted = crate::flow::bounded(
            works
                .iter()
                .map(|(i, w)| async move {
                    for (step, text, markers) in &w.notes {
                        self.add_note_once(changes[*i].0, w.lead_id, step, text.clone(), markers.clone()).await?;
                    }
                    Ok::<_, Fault>(())
                })
                .collect(),
        )
        .await;
        let mut written: HashMap<usize, Result<(), Fault>> = HashMap::new();
        let mut fields = Vec::new();
        for ((i, w), noted) in works.iter().zip(noted) {
            match noted {
                Err(f) => {
                    written.insert(*i, Err(f));
                }
                Ok(()) if !w.writes.is_empty() => fields.push((*i, w)),
                Ok(()) => {}
            }
        }
        written.extend(self.write_kommo_fields(changes, fields).await);
        for (i, w) in works {
            out[i] = Some(match written.remove(&i) {
                Some(Err(f)) => Err(f),
                Some(Ok(())) => {
                    for _ in &w.writes {
                        bump(&self.stats.kommo_writes);
                    }
                    Ok(w.outcome(w.writes.len()))
                }
                None => Ok(w.outcome(0)),
            });
        }
        finish(out)
    }

    /// What one record change asks for: the status notes to add and the Kommo field writes to make (before the
    /// check of [`Self::drop_superseded`]), or why there is nothing to do.
    async fn plan_change(&self, ctx: &Ctx, body: &[u8]) -> Result<Result<ChangeWork, Outcome>, Fault> {
        let ev: RecordChangeEvent =
            serde_json::from_slice(body).map_err(|e| Fault::Fail(format!("bad internal airtable event: {e}")))?;
        let Some(lead_key) = ctx.id_get_local(MAP_SYSTEM, MAP_KIND, &ev.record_id).await? else {
            tracing::info!(record = %ev.record_id, "record is not linked to a Kommo deal: ignored");
            return Ok(Err(Outcome::skipped("record not linked to a Kommo deal")));
        };
        let lead_id: LeadId =
            lead_key.parse().map_err(|_| Fault::Fail(format!("bad lead id `{lead_key}` in the id map")))?;
        let resolved = self.resolved.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let change = ev.payload.record_changes().into_iter().find(|c| c.record_id.as_str() == ev.record_id);
        let Some(change) = change else { return Ok(Err(Outcome::skipped("no change for the record in the payload"))) };
        if change.kind == ChangeKind::Created {
            // A linked record is created by our own upsert (its fields come from Kommo, its Status is the initial
            // one): nothing to send back. Recognising this by the change kind, not by an echo marker, also holds
            // when the creating attempt died before its markers were committed.
            return Ok(Err(Outcome::skipped("record creation (its fields come from Kommo)")));
        }
        let time =
            DateTime::parse_from_rfc3339(&ev.payload.timestamp).map_or_else(|_| ctx.now(), |t| t.with_timezone(&Utc));
        let own_api_write = matches!(ev.payload.source(), Some(ActionSource::PublicApi));
        let who = ev.payload.user().map_or_else(
            || ev.payload.source().map_or_else(|| "someone".to_owned(), |s| format!("an {s:?} change")),
            |u| u.name.clone().or_else(|| u.email.clone()).unwrap_or_else(|| u.id.to_string()),
        );
        let mut work = ChangeWork {
            lead_id,
            lead_key: lead_key.clone(),
            record_id: ev.record_id.clone(),
            cursor: ev.cursor,
            notes: Vec::new(),
            writes: Vec::new(),
            echoes: 0,
            in_sync: 0,
            stale: 0,
            superseded: 0,
            gone: 0,
        };
        for (field_id, fc) in &change.fields {
            let Some(name) = resolved.airtable_names.get(field_id.as_str()) else { continue };
            let current = fc.current.as_ref().map_or(Value::Null, payload_value_json);
            if ctx.is_echo("airtable", &lead_key, name, &current).await? {
                // the value last synced: our own API write coming back, or a change already applied
                if own_api_write {
                    bump(&self.stats.echoes_skipped);
                    work.echoes += 1;
                } else {
                    work.in_sync += 1;
                }
                continue;
            }
            if own_api_write {
                tracing::debug!(field = %name, "publicApi change that is not ours: processing it");
            }
            if name == &self.config.airtable.status_field {
                let new = fc.current.as_ref().and_then(|c| c.choice_name().or_else(|| c.as_str()).map(str::to_owned));
                let Some(new) = new else { continue };
                let entity = format!("status:{lead_key}");
                if !ctx.watermark_check(&entity, time).await? {
                    bump(&self.stats.stale_skipped);
                    work.stale += 1;
                    continue;
                }
                let mut text = format!("Onboarding status: {new}");
                let _ = write!(text, " (changed by {who} in Airtable");
                if let Some(prev) = fc.previous.value().and_then(|p| p.choice_name().or_else(|| p.as_str())) {
                    let _ = write!(text, "; was {prev}");
                }
                text.push(')');
                let markers =
                    Markers::new().written("airtable", &lead_key, name, current.clone()).watermark(entity, time);
                work.notes.push((format!("note:status:{}", ev.cursor), text, markers));
                continue;
            }
            // two-way mapped fields: Airtable → Kommo custom field
            for fm in self
                .config
                .mapping
                .fields
                .iter()
                .filter(|f| f.direction == crate::mapping::Direction::TwoWay && &f.target == name)
            {
                let Some((cf_id, cf_kind)) = resolved.kommo_fields.get(&fm.source).cloned() else { continue };
                let entity = format!("field:{lead_key}:{}", fm.source);
                // Older than the last change applied to the field: decided by [`Self::drop_superseded`], which
                // reads the record (a change the record still holds is its state, whatever the clocks say).
                let older = !ctx.watermark_check(&entity, time).await?;
                let mut record = Map::new();
                record.insert(name.clone(), current.clone());
                let reversed = self
                    .config
                    .mapping
                    .reverse(&Value::Object(record), &mut |_, _, _| None)
                    .map_err(|e| Fault::Fail(format!("mapping: {e}")))?;
                let kommo_value = reversed.get(&fm.source).cloned().unwrap_or(Value::Null);
                let (write, stored) = self.kommo_write(cf_id, &cf_kind, &kommo_value)?;
                // Pending while the write runs (Kommo's leads[update] for it may arrive first), committed with the
                // step once Kommo confirmed it.
                let pending = Markers::new()
                    .written("kommo", &lead_key, &fm.source, stored)
                    .written("airtable", &lead_key, name, current.clone())
                    .watermark(entity, time);
                work.writes.push(FieldWork {
                    field: name.clone(),
                    source: fm.source.clone(),
                    value: current.clone(),
                    older,
                    write,
                    pending,
                });
            }
        }
        Ok(Ok(work))
    }

    /// Drops the field writes of changes that were since written over by us: the record now holds the value we
    /// last wrote to the field (or are writing right now), so the change is not the record's state any more and
    /// must not reach Kommo. The records are read in one request per 100 (`OR(RECORD_ID()='…',…)`); a record that
    /// is gone drops its change's writes too.
    ///
    /// A payload is a change as it was made, not the record's state when we read it: our own write of an older
    /// Kommo value can land after Kommo's next change (the lead was read before it), and its `publicApi` payload is
    /// then neither our last write (that is the newer value, written since) nor older than the watermark (Airtable
    /// stamps the moment the write landed). Sending it to Kommo would put the older value there and leave the two
    /// sides apart; a person's change that our write overwrote is the same case.
    ///
    /// A change older by the event times than the last change applied to the field (the watermark) is skipped too,
    /// unless the record still holds it and it is not ours: then it landed after that change was written to
    /// Airtable (the clocks of two vendors, Kommo's in whole seconds, put it before), nothing will write over it,
    /// and skipping it would leave Kommo without it for good.
    async fn drop_superseded(&self, changes: &[(&Ctx, &[u8])], works: &mut [(usize, ChangeWork)]) -> Result<(), Fault> {
        let ids: BTreeSet<&str> =
            works.iter().filter(|(_, w)| !w.writes.is_empty()).map(|(_, w)| w.record_id.as_str()).collect();
        if ids.is_empty() {
            return Ok(());
        }
        let names: BTreeSet<&str> = works.iter().flat_map(|(_, w)| w.writes.iter().map(|f| f.field.as_str())).collect();
        let table = self.table();
        let mut records: HashMap<String, Fields> = HashMap::new();
        for chunk in ids.into_iter().collect::<Vec<_>>().chunks(RECORDS_PER_LOOKUP) {
            let formula = Formula::or(chunk.iter().map(|id| Formula::call("RECORD_ID", []).eq(Formula::text(id))));
            let found = table.list().filter_by_formula(formula).fields(names.iter().copied()).all().await?;
            records.extend(found.into_iter().map(|r| (r.id.to_string(), r.fields)));
        }
        for (i, work) in works.iter_mut() {
            let ctx = changes[*i].0;
            let mut keep = Vec::new();
            for fw in std::mem::take(&mut work.writes) {
                let now = match records.get(&work.record_id) {
                    None => {
                        tracing::info!(record = %work.record_id, "record no longer exists: change skipped");
                        work.gone += 1;
                        continue;
                    }
                    Some(fields) => fields.get(&fw.field).map_or(Value::Null, airtable_client::CellValue::to_json),
                };
                let ours = ctx.is_echo("airtable", &work.lead_key, &fw.field, &now).await?;
                if fw.older {
                    if !ours && now == fw.value {
                        // The record holds this change: it landed after the newer change we applied to the field
                        // (the two vendors' clocks put it before: Kommo stamps whole seconds), and nothing will
                        // write over it in Airtable. Skipping it would leave Kommo without it for good.
                        tracing::info!(lead = %work.lead_id, field = %fw.field, "older by the clocks than the last applied change, but the record holds it: sent to Kommo");
                        keep.push(fw);
                    } else {
                        tracing::info!(lead = %work.lead_id, field = %fw.field, "older than the last applied change: skipped");
                        bump(&self.stats.stale_skipped);
                        work.stale += 1;
                    }
                } else if ours {
                    tracing::info!(lead = %work.lead_id, field = %fw.field, "Airtable change superseded by our later write: skipped");
                    work.superseded += 1;
                } else {
                    keep.push(fw);
                }
            }
            work.writes = keep;
        }
        Ok(())
    }

    /// The Kommo field writes of `fields` (change index, its work): one step per change (journaled with its
    /// markers on its own), sent as `PATCH /api/v4/leads` of up to 50 leads. A lead changed twice in the batch is
    /// written in a later round (oldest change first), so one request never names a lead twice. A request Kommo
    /// refuses (400 with `validation-errors` per `request_id`; whether the other items were applied is not
    /// documented) is sent again lead by lead, which is safe because setting a field is idempotent, so only the
    /// refused lead's change fails.
    async fn write_kommo_fields(
        &self,
        changes: &[(&Ctx, &[u8])],
        mut fields: Vec<(usize, &ChangeWork)>,
    ) -> Vec<(usize, Result<(), Fault>)> {
        fields.sort_by_key(|(_, w)| w.cursor);
        let mut rounds: Vec<Vec<(usize, &ChangeWork)>> = Vec::new();
        let mut seen: HashMap<LeadId, usize> = HashMap::new();
        for f in fields {
            let round = seen.entry(f.1.lead_id).or_insert(0);
            if rounds.len() <= *round {
                rounds.push(Vec::new());
            }
            rounds[*round].push(f);
            *round += 1;
        }
        let mut out = Vec::new();
        for round in rounds {
            let steps: Vec<BatchStep<'_, LeadUpdate>> = round
                .iter()
                .map(|(i, w)| {
                    let (update, pending) =
                        w.writes.iter().fold((LeadUpdate::new(w.lead_id), Markers::new()), |(u, m), f| {
                            (u.field(f.write.clone()), m.with(f.pending.clone()))
                        });
                    let sources: Vec<&str> = w.writes.iter().map(|f| f.source.as_str()).collect();
                    BatchStep {
                        ctx: changes[*i].0,
                        step: format!("kommo:{}:{}", sources.join("+"), w.cursor),
                        pending,
                        input: update,
                    }
                })
                .collect();
            let kommo = &self.kommo;
            let results = step_batch(steps, |updates| async move {
                write_chunks(
                    &updates,
                    KOMMO_CHUNK,
                    "Kommo lead updates",
                    |chunk: &[LeadUpdate]| async move { kommo.leads().update_many(chunk).await.map(|_| ()) },
                    |u: &LeadUpdate| async move { kommo.leads().update(u).await.map(|_| ()) },
                )
                .await
                .into_iter()
                .map(|r| r.map(|()| ((), Markers::new())).map_err(boxed))
                .collect()
            })
            .await;
            for ((i, _), r) in round.iter().zip(results) {
                out.push((*i, r.map_err(Fault::from)));
            }
        }
        out
    }

    /// The Kommo write for a custom field value, and the value as it will read back in the flat lead.
    fn kommo_write(
        &self,
        id: kommo_api::CustomFieldId,
        kind: &KmFieldType,
        v: &Value,
    ) -> Result<(FieldValueWrite, Value), Fault> {
        if v.is_null() {
            return Ok((FieldValueWrite::clear(id), Value::Null));
        }
        match kind {
            KmFieldType::Date | KmFieldType::Birthday | KmFieldType::DateTime => {
                let unix = match v {
                    Value::Number(n) => n.as_i64(),
                    Value::String(s) => NaiveDate::parse_from_str(&s[..s.len().min(10)], "%Y-%m-%d")
                        .ok()
                        .and_then(|d| self.tz.from_local_datetime(&d.and_hms_opt(0, 0, 0)?).earliest())
                        .map(|d| d.timestamp()),
                    _ => None,
                }
                .ok_or_else(|| Fault::Fail(format!("`{v}` is not a date for Kommo field {id}")))?;
                Ok((FieldValueWrite::date(id, unix), json!(unix)))
            }
            KmFieldType::Numeric | KmFieldType::Price | KmFieldType::Monetary => {
                let n = v.as_f64().or_else(|| v.as_str().and_then(|s| s.parse().ok()));
                let n = n.ok_or_else(|| Fault::Fail(format!("`{v}` is not a number for Kommo field {id}")))?;
                Ok((FieldValueWrite::numeric(id, n), json!(n)))
            }
            KmFieldType::Select | KmFieldType::Radiobutton => {
                let s = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                Ok((FieldValueWrite::select_value(id, s.clone()), json!(s)))
            }
            _ => {
                let s = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                Ok((FieldValueWrite::text(id, s.clone()), json!(s)))
            }
        }
    }

    /// Adds a common note once: inside a journaled step, after checking that no identical note exists on the lead
    /// (so a crash between Kommo's answer and the journal write does not duplicate it); `markers` are committed
    /// with the step.
    async fn add_note_once(
        &self,
        ctx: &Ctx,
        lead: LeadId,
        step: &str,
        text: String,
        markers: Markers,
    ) -> Result<(), Fault> {
        let kommo = self.kommo.clone();
        let added: bool = ctx
            .step_marked(step, markers, || async move {
                let notes = kommo.notes(EntityType::Leads);
                let existing: Vec<kommo_api::notes::Note> =
                    notes.stream_for(lead, ListParams::new().limit(250)).try_collect().await.map_err(boxed)?;
                if existing.iter().any(|n| n.text() == Some(text.as_str())) {
                    return Ok::<_, BoxError>((false, Markers::new()));
                }
                notes.add_one(NewNote::common(lead, text)).await.map_err(boxed)?;
                Ok((true, Markers::new()))
            })
            .await?;
        if added {
            bump(&self.stats.notes_added);
        }
        Ok(())
    }
}

/// Records per Airtable write request (the API's limit).
const AIRTABLE_CHUNK: usize = 10;
/// Leads per Kommo batch write (api-notes kommo.md §2: no documented hard limit; the official library recommends
/// at most 50).
const KOMMO_CHUNK: usize = 50;
/// Record ids per `OR(RECORD_ID()='…',…)` look-up (the client sends a long formula as `POST …/listRecords`).
const RECORDS_PER_LOOKUP: usize = 100;

/// What one Airtable record change asks of Kommo (see [`KommoAirtable::plan_change`]).
struct ChangeWork {
    lead_id: LeadId,
    lead_key: String,
    record_id: String,
    cursor: u64,
    /// (step, text, markers) of each status note.
    notes: Vec<(String, String, Markers)>,
    /// The Kommo field writes.
    writes: Vec<FieldWork>,
    echoes: usize,
    in_sync: usize,
    stale: usize,
    superseded: usize,
    gone: usize,
}

/// One Kommo custom field write of a [`ChangeWork`].
struct FieldWork {
    /// The Airtable field.
    field: String,
    /// The Kommo field (mapping source).
    source: String,
    /// The Airtable value the change set.
    value: Value,
    /// Older, by the event times, than the last change applied to the field (see [`KommoAirtable::drop_superseded`]).
    older: bool,
    write: FieldValueWrite,
    pending: Markers,
}

impl ChangeWork {
    /// The change's outcome once its notes and `written` field writes are done.
    fn outcome(&self, written: usize) -> Outcome {
        if written + self.notes.len() > 0 {
            Outcome::Done
        } else if self.stale > 0 {
            Outcome::skipped(SKIP_STALE)
        } else if self.superseded > 0 {
            Outcome::skipped(SKIP_SUPERSEDED)
        } else if self.gone > 0 {
            Outcome::skipped(SKIP_RECORD_GONE)
        } else if self.echoes > 0 {
            Outcome::skipped(SKIP_ECHO)
        } else if self.in_sync > 0 {
            Outcome::skipped(SKIP_IN_SYNC)
        } else {
            Outcome::skipped("no mapped field changed")
        }
    }
}

/// What [`KommoAirtable::gate`] decided about a lead.
enum Gate {
    /// Nothing to do, on purpose.
    Skip(String),
    /// Go on; the linked record, if any.
    Go(Option<String>),
}

/// What [`KommoAirtable::plan`] decided about a lead.
enum Plan {
    /// Nothing to write.
    Skip(String),
    /// Write `fields` (to the linked record, or a new one), with the markers pending meanwhile.
    Write { existing: Option<String>, fields: Map<String, Value>, pending: Markers },
}

/// Every event's outcome (an event left without one is retried).
fn finish(out: Vec<Option<Result<Outcome, Fault>>>) -> Vec<Result<Outcome, Fault>> {
    out.into_iter().map(|o| o.unwrap_or_else(|| Err(Fault::Retry(None, "no outcome for the event".into())))).collect()
}

/// A short, stable hash of a JSON value (names a journal step after what it writes).
fn short_hash(v: &Map<String, Value>) -> String {
    crate::store::value_hash(&Value::Object(v.clone()))[..16].to_owned()
}

fn suggest(schema: &Schema, name: &str) -> String {
    schema.closest(name).map_or_else(String::new, |c| format!("; did you mean `{c}`?"))
}

/// A payload cell value as the JSON the mapping expects (select → its name).
fn payload_value_json(v: &airtable_client::PayloadCellValue) -> Value {
    if let Some(name) = v.choice_name() {
        return json!(name);
    }
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// The inbox event for a lead state seen by the reconcile poll or a backfill: keyed by the lead's state
/// (`updated_at`, pipeline, status), so overlapping polls and re-run backfills collapse into one event per state.
fn lead_event(lead: &kommo_api::leads::Lead) -> NewEvent {
    let id = lead.id;
    let updated_at = lead.updated_at.unwrap_or(0);
    let body = kommo_api::webhook::encode_form(&[
        ("leads[update][0][id]", id.to_string()),
        ("leads[update][0][updated_at]", updated_at.to_string()),
    ]);
    let n = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
    let prefix = state_prefix(
        id,
        &updated_at.to_string(),
        &n(lead.pipeline_id.map(PipelineId::get)),
        &n(lead.status_id.map(StatusId::get)),
    );
    NewEvent::new(SOURCE_KOMMO, format!("{prefix}poll"), body.into_bytes()).ordering_key(format!("lead:{id}"))
}

/// `lead:{id}:{time}:{pipeline}:{status}:`: the part of a dedup key that names a lead's state. A webhook key adds
/// the change (action, previous pipeline and status, content hash); a poll key adds `poll`.
fn state_prefix(id: LeadId, time: &str, pipeline: &str, status: &str) -> String {
    format!("lead:{id}:{time}:{pipeline}:{status}:")
}

/// A canonical hash of a form subtree (keys are sorted by the `BTreeMap`; lengths delimit every string).
fn form_hash(fields: &BTreeMap<String, kommo_api::webhook::FormNode>) -> String {
    use sha2::Digest as _;
    fn walk(h: &mut sha2::Sha256, fields: &BTreeMap<String, kommo_api::webhook::FormNode>) {
        for (k, v) in fields {
            h.update(k.len().to_le_bytes());
            h.update(k.as_bytes());
            match v {
                kommo_api::webhook::FormNode::Leaf(s) => {
                    h.update([0]);
                    h.update(s.len().to_le_bytes());
                    h.update(s.as_bytes());
                }
                kommo_api::webhook::FormNode::Map(m) => {
                    h.update([1]);
                    walk(h, m);
                    h.update([2]);
                }
            }
        }
    }
    let mut h = sha2::Sha256::new();
    walk(&mut h, fields);
    hex::encode(h.finalize())[..16].to_owned()
}

/// The dedup key of one lead change: it identifies the change, not the second it happened in. Time, pipeline
/// and status (new and old) plus a hash of everything the event carries, so two different changes within one
/// second, and a won → reopened → won sequence of reduced payloads without a time, are distinct events, while
/// an exact redelivery has the same key.
fn lead_change_key(ev: &WebhookEvent, lead: &kommo_api::webhook::WebhookLead) -> String {
    let n = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
    // state first (`lead:{id}:{time}:{pipeline}:{status}:`, the prefix a poll of the same state shares), then what
    // tells two changes of the same second apart
    format!(
        "{}{}:{}:{}:{}",
        state_prefix(
            lead.id,
            &ev.time().map_or_else(|| "-".to_owned(), |t| t.to_string()),
            &n(lead.pipeline_id.map(PipelineId::get)),
            &n(lead.status_id.map(StatusId::get))
        ),
        ev.action_name(),
        n(lead.old_pipeline_id.map(PipelineId::get)),
        n(lead.old_status_id.map(StatusId::get)),
        form_hash(&lead.raw)
    )
}

/// One inbox part per lead of a Kommo delivery (its own dedup key, ordering key and a minimal body with the
/// account, the lead id and the event time: the handler re-reads the lead), and one part for each other event.
fn kommo_parts(body: &[u8]) -> Result<Vec<Part>, KeyError> {
    let payload = super::kommo_split::parse_delivery(body)?;
    let mut account = Vec::new();
    if let Some(id) = payload.account.id {
        account.push(("account[id]".to_owned(), id.to_string()));
    }
    if let Some(sub) = &payload.account.subdomain {
        account.push(("account[subdomain]".to_owned(), sub.clone()));
    }
    let mut parts: BTreeMap<String, Part> = BTreeMap::new();
    for (ev, own_body) in payload.events.iter().zip(payload.split_bodies()) {
        let WebhookEvent::Lead { lead, .. } = ev else {
            // not a lead: nothing this flow applies; kept as a part with the event's own body (an event the
            // handler skips as "no lead events", not an unparsable one) so the delivery is still acknowledged
            let key = ev.dedup_key();
            let part = Part { dedup_key: key.clone(), ordering_key: None, payload: bytes::Bytes::from(own_body) };
            parts.entry(key).or_insert(part);
            continue;
        };
        let root = format!("leads[{}][0]", ev.action_name());
        let mut pairs = account.clone();
        pairs.push((format!("{root}[id]"), lead.id.to_string()));
        if let Some(t) = ev.time() {
            pairs.push((format!("{root}[updated_at]"), t.to_string()));
        }
        let key = lead_change_key(ev, lead);
        let part = Part {
            dedup_key: key.clone(),
            ordering_key: Some(format!("lead:{}", lead.id)),
            payload: bytes::Bytes::from(kommo_api::webhook::encode_form(&pairs)),
        };
        parts.entry(key).or_insert(part);
    }
    if parts.is_empty() {
        return Err(KeyError("Kommo webhook without events".into()));
    }
    Ok(parts.into_values().collect())
}

fn kommo_keys(body: &[u8]) -> Result<(String, Option<String>), KeyError> {
    let parts = kommo_parts(body)?;
    let ordering = parts.iter().find_map(|p| p.ordering_key.clone());
    let key = parts.into_iter().map(|p| p.dedup_key).collect::<Vec<_>>().join("|");
    Ok((key, ordering))
}

#[async_trait]
impl Flow for KommoAirtable {
    fn name(&self) -> &str {
        "kommo-airtable"
    }

    fn sources(&self) -> Vec<String> {
        vec![SOURCE_KOMMO.into(), SOURCE_AIRTABLE_PING.into(), SOURCE_AIRTABLE.into()]
    }

    fn dedup_key(&self, event: &RawEvent<'_>) -> Result<String, KeyError> {
        match event.source {
            SOURCE_KOMMO => kommo_keys(event.body).map(|k| k.0),
            SOURCE_AIRTABLE_PING => {
                let ping: WebhookNotification = serde_json::from_slice(event.body)
                    .map_err(|e| KeyError(format!("not an Airtable notification: {e}")))?;
                // Pings are only "there is something new" triggers, and each ping drains the whole feed: pings
                // within the same second coalesce into one event (a later change makes a later ping; `serve` also
                // polls the feed every minute).
                let second: String = ping.timestamp.chars().take(19).collect();
                Ok(format!("{}:{second}", ping.webhook.id))
            }
            _ => {
                let ev: RecordChangeEvent =
                    serde_json::from_slice(event.body).map_err(|e| KeyError(format!("bad record change: {e}")))?;
                Ok(format!("{}:{}:{}", ev.webhook, ev.cursor, ev.record_id))
            }
        }
    }

    fn split(&self, event: &RawEvent<'_>) -> Result<Option<Vec<Part>>, KeyError> {
        match event.source {
            // one inbox event per lead: each lead is ordered, retried and dead-lettered on its own
            SOURCE_KOMMO => kommo_parts(event.body).map(Some),
            _ => Ok(None),
        }
    }

    fn ordering_key(&self, event: &RawEvent<'_>) -> Option<String> {
        match event.source {
            SOURCE_KOMMO => kommo_keys(event.body).ok().and_then(|k| k.1),
            SOURCE_AIRTABLE_PING => Some("airtable-feed".into()),
            _ => None,
        }
    }

    fn batch_key(&self, event: &Event) -> Option<String> {
        // every Kommo lead event (one that is not about exactly one lead is handled alone inside the batch), and
        // every Airtable record change; pings are handled alone
        matches!(event.source.as_str(), SOURCE_KOMMO | SOURCE_AIRTABLE).then(|| event.source.clone())
    }

    fn max_batch(&self) -> usize {
        self.config.batch.max_events.clamp(1, usize::try_from(kommo_api::hal::MAX_LIMIT).unwrap_or(250))
    }

    async fn handle_batch(&self, items: &[BatchItem]) -> Vec<Result<Outcome, BoxError>> {
        if items.iter().all(|i| i.event.source == SOURCE_AIRTABLE) {
            let changes: Vec<(&Ctx, &[u8])> = items.iter().map(|i| (&i.ctx, &i.event.payload[..])).collect();
            let out = self.handle_record_changes(&changes).await;
            return out.into_iter().map(|r| Ok(r.unwrap_or_else(Outcome::from))).collect();
        }
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
            SOURCE_AIRTABLE_PING => self.handle_ping(ctx, &event.payload).await,
            SOURCE_AIRTABLE => self.handle_record_changes(&[(ctx, &event.payload[..])]).await.remove(0),
            other => Err(Fault::Fail(format!("unknown source {other}"))),
        };
        Ok(result.unwrap_or_else(Outcome::from))
    }
}

#[cfg(test)]
mod tests {
    use airtable_client::field_eq;

    /// The look-up formula comes from airtable-client's builder (escaping tested there, with property tests).
    #[test]
    fn formula_eq_quotes_the_value() {
        assert_eq!(field_eq("Kommo Deal ID", "123").to_string(), "{Kommo Deal ID}='123'");
        assert_eq!(field_eq("Name", r"O'Brien \ Co").to_string(), r"{Name}='O\'Brien \\ Co'");
        assert_eq!(field_eq("Deal } ID", "1").to_string(), r"{Deal \} ID}='1'");
    }
}
