//! Kommo → Productive project kick-off, and Productive → Kommo updates (feature `kommo-productive`).
//!
//! # What it does
//!
//! 1. **Deal won → project, as a resumable saga.** A Kommo lead moving into the configured won status (webhook
//!    `leads[status]`, or `leads[add]` for a lead created directly as won) runs these steps, each once through the
//!    step journal ([`Ctx::step`]) and each idempotent at Productive (search before create):
//!
//!    | step | Productive effect | search before create |
//!    |---|---|---|
//!    | `fetch` | — (reads the lead, its company, main contact and responsible user from Kommo; journaled so every retry sees the same data) | — |
//!    | `company` | `POST /companies` | `filter[name]` |
//!    | `project` | `POST /projects`, or `POST /projects/copy` from `productive.template_project_id` | id map lead → project, then `filter[name]` + company |
//!    | `project_ready` | polls the copy job until `duplication_status` is idle (template path only) | — |
//!    | `budget` | `POST /deals` with `budget: true` | the project's budgets (`filter[type]=2`) |
//!    | `service:<n>` | `POST /services`, one per matching `[[services]]` rule | the budget's services by name and type |
//!    | `assign:<person>` | `POST /project_assignments`; 409/422 "already assigned" counts as done | — |
//!    | `note` | Kommo note on the lead with the project link | the lead's kick-off note with the link on a line of its own |
//!
//!    A failure at any step (a Productive 5xx, a timeout, a crash of the process) retries the event; the journal
//!    skips the finished steps, so a failure at the budget step never creates a second company or project. The
//!    lead ↔ project mapping is written to the id map as soon as the project exists, and the lead is marked as
//!    kicked off when the saga ends: a lead that is un-won and won again is a new webhook (new dedup key) that
//!    finds the mapping and creates nothing.
//! 2. **Productive → Kommo.** Signed Productive webhooks (`Productive-Signature`, HMAC-SHA256 over the raw body
//!    with the webhook's `signature_token`), deduplicated on `(event, item_id, created)`:
//!    - `update_task` with `closed: true` on a mapped project → a Kommo note on the lead (once per task);
//!    - `update_budget` on a mapped budget whose `budget_used / budget_total` crossed a configured percentage
//!      (`alerts.budget_thresholds`) → a Kommo note and, with `alerts.create_task`, a Kommo task for the lead's
//!      responsible user (once per budget and threshold).
//!
//!    Each of these Kommo writes is a journaled step that first searches the lead's notes (or tasks) for the exact
//!    text it is about to write, on every attempt: the texts name the Productive task or budget id, so a note or
//!    task made by an attempt whose answer was lost (a crash between Kommo's reply and the journal commit) is
//!    found instead of duplicated, and never mistaken for another task's or budget's.
//!
//! # Errors
//!
//! API errors map to outcomes: throttled and transient (5xx, timeouts, broken connections) → [`Outcome::Retry`]
//! with the error's retry hint; client errors (4xx validation, unknown ids), auth and decode errors →
//! [`Outcome::Fail`] (dead letter, replayable after a fix) naming the step. Filtered events (other statuses,
//! other pipelines, unmapped projects, open tasks) are [`Outcome::Skipped`] with the reason (counted in `status`),
//! plus a `tracing::info!` with the ids.
//!
//! # Gaps (see the issue)
//!
//! - Productive computes `budget_total` from the services on a real account; the flow also sends the deal value
//!   as `budget_total` on create (`productive.send_budget_total`, **unverified** whether Productive accepts it),
//!   and writes it in the budget's `note`.
//! - The project link format (`productive.project_url`) is configurable because Productive's web URLs are not
//!   documented.
//!
//! # Example
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use sync_core::flows::kommo_productive::{Config, KommoProductive};
//! let config = Config::from_toml(&std::fs::read_to_string("kommo-productive.toml")?)?;
//! # let kommo: kommo_api::Client = todo!(); let productive: productive_api::Client = todo!();
//! let flow = Arc::new(KommoProductive::new(config, kommo, productive));
//! flow.validate().await?; // fails naming a wrong service type, person or Kommo field
//! let routes = flow.routes("kommo-path-secret", vec![api_core::Token::new("productive-signature-token")]);
//! # let _ = routes; Ok(()) }
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use api_core::Token;
use async_trait::async_trait;
use futures::TryStreamExt as _;
use kommo_api::webhook::{WebhookAction, WebhookEvent as KommoEvent};
use kommo_api::{EntityType, LeadId, ListParams, StatusId};
use productive_api::resources::deals::{DealKind, NewDeal};
use productive_api::resources::projects::{NewProject, ProjectCopy};
use productive_api::resources::services::NewService;
use productive_api::webhook::{Delivery, WebhookEvent as ProductiveEvent};
use productive_api::{BillingType, CompanyId, DealId, PersonId, ProjectId, ProjectType, ServiceTypeId, ServiceUnit};
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

use crate::error::{BoxError, Error, Result};
use crate::flow::{Ctx, Flow, KeyError, Outcome, RawEvent};
use crate::mapping::levenshtein;
use crate::server::{FnVerifier, PathToken, SourceRoute, VerifyRequest};
use crate::store::Event;

/// The flow's name (also the id-map system of its mappings).
pub const FLOW_NAME: &str = "kommo-productive";
/// Id-map kind: Kommo lead id → Productive project id.
pub const KIND_LEAD_PROJECT: &str = "lead_project";
/// Id-map kind: Kommo lead id → Productive budget id.
pub const KIND_LEAD_BUDGET: &str = "lead_budget";
/// Id-map kind: Kommo lead id → Productive project id, written when the whole saga finished.
pub const KIND_LEAD_KICKOFF: &str = "lead_kickoff";
/// Id-map kind: Productive task id → Kommo note id (completion note written).
pub const KIND_TASK_NOTE: &str = "task_note";
/// Id-map kind: `<budget id>:<threshold>` → Kommo note id (budget alert written).
pub const KIND_BUDGET_ALERT: &str = "budget_alert";

/// The first words of the kick-off note (found by them and the project link before it is created).
const KICKOFF_NOTE_PREFIX: &str = "Productive project created: ";

// ------------------------------------------------------------------------------------------------------- config

/// The flow's configuration (TOML; no secrets: tokens come from environment variables).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Inbox source names (and webhook paths `/hooks/<source>`).
    #[serde(default)]
    pub sources: Sources,
    /// Which Kommo leads start a project.
    #[serde(default)]
    pub kommo: KommoConfig,
    /// Productive settings.
    pub productive: ProductiveConfig,
    /// The service map: which Productive services a won deal gets.
    #[serde(default)]
    pub services: Vec<ServiceRule>,
    /// The team map: who is assigned to the project.
    #[serde(default)]
    pub team: TeamConfig,
    /// Productive → Kommo notifications.
    #[serde(default)]
    pub alerts: AlertConfig,
}

/// Inbox source names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sources {
    /// Kommo webhooks (default `kommo`; mounted at `/hooks/kommo/<secret>`).
    pub kommo: String,
    /// Productive webhooks (default `productive`; mounted at `/hooks/productive`).
    pub productive: String,
}

impl Default for Sources {
    fn default() -> Self {
        Self { kommo: "kommo".into(), productive: "productive".into() }
    }
}

/// Which Kommo leads start a project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KommoConfig {
    /// Only leads in this pipeline (`None`: any pipeline).
    pub pipeline_id: Option<u64>,
    /// The won status (default 142, Kommo's "Closed - won" in every pipeline).
    pub won_status_id: u64,
    /// Refuse webhooks for another account (`account[id]`).
    pub account_id: Option<u64>,
    /// The lead custom field (name or numeric id) whose values select `[[services]]` rules by `kommo_value`.
    pub service_field: Option<String>,
}

impl Default for KommoConfig {
    fn default() -> Self {
        Self { pipeline_id: None, won_status_id: StatusId::WON.get(), account_id: None, service_field: None }
    }
}

/// Productive settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductiveConfig {
    /// The organization id (`X-Organization-Id`; not a secret).
    pub organization_id: String,
    /// The project manager when the lead's responsible user has no entry in `team.by_responsible`.
    pub project_manager_email: String,
    /// Copy this template project (`POST /projects/copy`) instead of creating an empty project.
    #[serde(default)]
    pub template_project_id: Option<String>,
    /// How often to poll a running copy job, in milliseconds.
    #[serde(default = "default_copy_poll_ms")]
    pub copy_poll_interval_ms: u64,
    /// Polls before giving up on a copy for this attempt (the event is retried later).
    #[serde(default = "default_copy_polls")]
    pub copy_max_polls: u32,
    /// Budget currency.
    #[serde(default = "default_currency")]
    pub currency: String,
    /// Default billing type of services: `fixed`, `time_and_materials` or `not_billable`.
    #[serde(default)]
    pub billing_type: BillingName,
    /// Project name; placeholders `{company}`, `{lead}`, `{lead_id}`. Keep `{lead_id}` in it: the flow finds a
    /// project it created before by name after an ambiguous failure.
    #[serde(default = "default_project_name")]
    pub project_name: String,
    /// Budget name; same placeholders.
    #[serde(default = "default_budget_name")]
    pub budget_name: String,
    /// The project link written into the Kommo note; placeholders `{organization_id}`, `{project_id}`.
    #[serde(default = "default_project_url")]
    pub project_url: String,
    /// Also send the deal value as the budget's `budget_total` (Productive may compute it from services).
    #[serde(default = "default_true")]
    pub send_budget_total: bool,
    /// Accepted age of a webhook signature's `t=`. Long by default: Productive retries failed deliveries for up
    /// to 48 h (whether it re-signs them is unverified), and a replayed delivery is dropped by the inbox dedup on
    /// `(event, item_id, created)` anyway.
    #[serde(default = "default_tolerance")]
    pub signature_tolerance_secs: u64,
}

fn default_copy_poll_ms() -> u64 {
    1000
}
fn default_copy_polls() -> u32 {
    30
}
fn default_currency() -> String {
    "EUR".into()
}
fn default_project_name() -> String {
    "{company}: {lead} (Kommo #{lead_id})".into()
}
fn default_budget_name() -> String {
    "{lead}".into()
}
fn default_project_url() -> String {
    "https://app.productive.io/{organization_id}/projects/{project_id}".into()
}
fn default_true() -> bool {
    true
}
fn default_tolerance() -> u64 {
    productive_api::webhook::DEFAULT_TOLERANCE.as_secs()
}

/// A service billing type by name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BillingName {
    /// Fixed price (1).
    #[default]
    Fixed,
    /// Time and materials (2).
    TimeAndMaterials,
    /// Not billable (3).
    NotBillable,
}

impl BillingName {
    fn to_productive(self) -> BillingType {
        match self {
            Self::Fixed => BillingType::Fixed,
            Self::TimeAndMaterials => BillingType::TimeAndMaterials,
            Self::NotBillable => BillingType::NotBillable,
        }
    }
}

/// A service unit by name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitName {
    /// Hours (1).
    Hour,
    /// Pieces (2).
    #[default]
    Piece,
    /// Days (3).
    Day,
}

impl UnitName {
    fn to_productive(self) -> ServiceUnit {
        match self {
            Self::Hour => ServiceUnit::Hour,
            Self::Piece => ServiceUnit::Piece,
            Self::Day => ServiceUnit::Day,
        }
    }
}

/// One entry of the service map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceRule {
    /// The value of `kommo.service_field` that selects this rule (case-insensitive); absent: every won deal.
    #[serde(default)]
    pub kommo_value: Option<String>,
    /// The Productive service type, by name.
    pub service_type: String,
    /// The service's name (default: the service type's name).
    #[serde(default)]
    pub name: Option<String>,
    /// `hour`, `piece` (default) or `day`.
    #[serde(default)]
    pub unit: UnitName,
    /// Billing type (default `productive.billing_type`).
    #[serde(default)]
    pub billing_type: Option<BillingName>,
    /// Unit price as a decimal string (default: the deal value, for one fixed-price piece).
    #[serde(default)]
    pub price: Option<String>,
    /// Quantity (default 1).
    #[serde(default)]
    pub quantity: Option<f64>,
}

/// The team map.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TeamConfig {
    /// Kommo responsible user email → Productive people (by email) to assign. The first one is the project
    /// manager.
    pub by_responsible: BTreeMap<String, Vec<String>>,
    /// Productive people (by email) assigned to every project.
    pub always: Vec<String>,
}

/// Productive → Kommo notifications.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertConfig {
    /// Note on the lead when a task of its project is completed.
    pub task_completed_note: bool,
    /// Budget usage percentages that raise an alert (each once per budget).
    pub budget_thresholds: Vec<u32>,
    /// Also create a Kommo task for the lead's responsible user on a budget alert.
    pub create_task: bool,
    /// Due time of that task, in hours from now.
    pub task_due_hours: u32,
}

impl Default for AlertConfig {
    fn default() -> Self {
        Self { task_completed_note: true, budget_thresholds: vec![80, 100], create_task: true, task_due_hours: 24 }
    }
}

impl Config {
    /// Parses and checks a TOML config.
    ///
    /// # Errors
    /// [`Error::Config`] naming the wrong key or value.
    pub fn from_toml(text: &str) -> Result<Self> {
        let config: Self = toml::from_str(text).map_err(|e| Error::Config(format!("kommo-productive config: {e}")))?;
        config.check()?;
        Ok(config)
    }

    /// Static checks (no network).
    ///
    /// # Errors
    /// [`Error::Config`] listing every problem.
    pub fn check(&self) -> Result<()> {
        let mut errors = Vec::new();
        if self.productive.organization_id.trim().is_empty() {
            errors.push("productive.organization_id is empty".to_owned());
        }
        if !self.productive.project_manager_email.contains('@') {
            errors.push(format!(
                "productive.project_manager_email `{}` is not an email",
                self.productive.project_manager_email
            ));
        }
        if !self.productive.project_name.contains("{lead_id}") {
            errors.push("productive.project_name must contain {lead_id} (the flow finds its projects by name)".into());
        }
        for (i, s) in self.services.iter().enumerate() {
            if s.service_type.trim().is_empty() {
                errors.push(format!("services[{i}].service_type is empty"));
            }
            if let Some(p) = &s.price
                && p.trim().parse::<f64>().is_err()
            {
                errors.push(format!("services[{i}].price `{p}` is not a decimal number"));
            }
            if s.kommo_value.is_some() && self.kommo.service_field.is_none() {
                errors.push(format!("services[{i}].kommo_value is set but kommo.service_field is not"));
            }
        }
        for t in &self.alerts.budget_thresholds {
            if *t == 0 || *t > 1000 {
                errors.push(format!("alerts.budget_thresholds: {t} is not a percentage in 1..=1000"));
            }
        }
        if self.sources.kommo == self.sources.productive {
            errors.push("sources.kommo and sources.productive must differ".into());
        }
        if errors.is_empty() { Ok(()) } else { Err(Error::Config(errors.join("; "))) }
    }
}

// -------------------------------------------------------------------------------------------------- the flow

/// Config entries resolved against the live systems (cached after the first success).
#[derive(Debug, Clone, Default)]
struct Resolved {
    /// lower-case service type name → id (and its display name).
    service_types: HashMap<String, (ServiceTypeId, String)>,
    /// lower-case email → person.
    people: HashMap<String, PersonId>,
}

/// A permanent failure of a step (bad data or config): the event goes to the dead letters.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Permanent(String);

/// The Kommo → Productive flow. Build it with [`KommoProductive::new`], check it with
/// [`KommoProductive::validate`], mount [`KommoProductive::routes`] and register it with the engine.
#[derive(Debug)]
pub struct KommoProductive {
    config: Config,
    kommo: kommo_api::Client,
    productive: productive_api::Client,
    resolved: OnceCell<Resolved>,
}

/// What the saga needs of the lead, journaled by the `fetch` step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeadSnapshot {
    /// Lead id.
    pub id: u64,
    /// Lead name.
    pub name: String,
    /// Deal value.
    pub price: i64,
    /// Status when fetched.
    pub status_id: Option<u64>,
    /// Pipeline when fetched.
    pub pipeline_id: Option<u64>,
    /// Responsible user.
    pub responsible_user_id: Option<u64>,
    /// Responsible user's email.
    pub responsible_email: Option<String>,
    /// Client name: the linked company, else the main contact, else the lead name.
    pub company_name: String,
    /// Values of `kommo.service_field`.
    pub service_values: Vec<String>,
}

fn fill(template: &str, pairs: &[(&str, &str)]) -> String {
    let mut s = template.to_owned();
    for (k, v) in pairs {
        s = s.replace(&format!("{{{k}}}"), v);
    }
    s
}

fn closest<'a>(wanted: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = wanted.to_lowercase();
    candidates
        .into_iter()
        .map(|c| (levenshtein(&lower, &c.to_lowercase()), c))
        .filter(|(d, c)| *d <= (c.chars().count().max(wanted.chars().count()) / 2).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn suggestion<'a>(wanted: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    closest(wanted, candidates).map(|c| format!(" (did you mean `{c}`?)")).unwrap_or_default()
}

/// Maps a step failure to an outcome; store errors are returned as `Err` (the worker retries them).
fn outcome_for(err: Error) -> Result<Outcome, BoxError> {
    let Error::Step { step, source } = err else { return Err(Box::new(err)) };
    if let Some(e) = source.downcast_ref::<productive_api::Error>() {
        let reason = format!("step `{step}`: {e}");
        return Ok(if e.is_retryable() {
            Outcome::Retry { after: e.retry_after(), reason }
        } else {
            Outcome::Fail { reason }
        });
    }
    if let Some(e) = source.downcast_ref::<kommo_api::Error>() {
        let reason = format!("step `{step}`: {e}");
        return Ok(if e.class().is_retryable() {
            Outcome::Retry { after: e.retry_after(), reason }
        } else {
            Outcome::Fail { reason }
        });
    }
    if let Some(p) = source.downcast_ref::<Permanent>() {
        return Ok(Outcome::fail(format!("step `{step}`: {p}")));
    }
    if let Some(e) = source.downcast_ref::<Error>() {
        // a store error inside a step
        return Err(format!("step `{step}`: {e}").into());
    }
    Ok(Outcome::retry(format!("step `{step}`: {source}")))
}

/// `ctx.step(..)` that returns the mapped outcome from the enclosing handler on failure.
macro_rules! step {
    ($ctx:expr, $name:expr, $body:expr) => {
        match $ctx.step(&$name, || $body).await {
            Ok(v) => v,
            Err(e) => return outcome_for(e),
        }
    };
}

/// The same for store calls outside steps.
macro_rules! db {
    ($e:expr) => {
        $e.await.map_err(|e| -> BoxError { Box::new(e) })?
    };
}

fn boxed<E: std::error::Error + Send + Sync + 'static>(e: E) -> BoxError {
    Box::new(e)
}

impl KommoProductive {
    /// A flow from its config and clients.
    #[must_use]
    pub fn new(config: Config, kommo: kommo_api::Client, productive: productive_api::Client) -> Self {
        Self { config, kommo, productive, resolved: OnceCell::new() }
    }

    /// The config.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The webhook routes: Kommo at `/hooks/<sources.kommo>/<kommo_path_token>` (Kommo signs nothing, so the
    /// secret is in the URL), Productive at `/hooks/<sources.productive>`, verified with any of
    /// `productive_tokens` (each webhook subscription has its own `signature_token`).
    #[must_use]
    pub fn routes(&self, kommo_path_token: &str, productive_tokens: Vec<Token>) -> Vec<SourceRoute> {
        self.routes_shared(kommo_path_token, Arc::new(std::sync::RwLock::new(productive_tokens)))
    }

    /// [`KommoProductive::routes`] with the signature tokens in a shared, replaceable place: each delivery is
    /// verified against the tokens held at that moment, so a `serve` that learns its webhooks' tokens after it
    /// started listening (or sees them rotated) replaces them without remounting the routes. While the list is
    /// empty every Productive delivery is refused with 401 (Productive retries non-2xx deliveries).
    #[must_use]
    pub fn routes_shared(
        &self,
        kommo_path_token: &str,
        productive_tokens: Arc<std::sync::RwLock<Vec<Token>>>,
    ) -> Vec<SourceRoute> {
        let tolerance = Duration::from_secs(self.config.productive.signature_tolerance_secs);
        let verify = move |r: &VerifyRequest<'_>| -> Result<(), String> {
            let header = r.headers.get("productive-signature").map(String::as_str);
            let mut last = String::from("no signature token known yet");
            let tokens = productive_tokens.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            for token in tokens.iter() {
                match productive_api::webhook::verify_signature(
                    token,
                    header,
                    r.body,
                    &api_core::SystemClock,
                    tolerance,
                ) {
                    Ok(_) => return Ok(()),
                    Err(e) => last = e.to_string(),
                }
            }
            Err(last)
        };
        vec![
            SourceRoute::new(self.config.sources.kommo.clone(), PathToken::new(kommo_path_token)),
            SourceRoute::new(self.config.sources.productive.clone(), FnVerifier(verify))
                .keep_headers(["productive-signature"]),
        ]
    }

    /// The project link written into the Kommo note.
    #[must_use]
    pub fn project_url(&self, project: &str) -> String {
        fill(
            &self.config.productive.project_url,
            &[("organization_id", &self.config.productive.organization_id), ("project_id", project)],
        )
    }

    fn names(&self, lead: &LeadSnapshot) -> (String, String) {
        let id = lead.id.to_string();
        let pairs = [("company", lead.company_name.as_str()), ("lead", lead.name.as_str()), ("lead_id", id.as_str())];
        (fill(&self.config.productive.project_name, &pairs), fill(&self.config.productive.budget_name, &pairs))
    }

    /// Every Productive email the config names.
    fn config_emails(&self) -> Vec<String> {
        let mut v = vec![self.config.productive.project_manager_email.clone()];
        v.extend(self.config.team.always.iter().cloned());
        for people in self.config.team.by_responsible.values() {
            v.extend(people.iter().cloned());
        }
        v.sort_by_key(|e| e.to_lowercase());
        v.dedup_by_key(|e| e.to_lowercase());
        v
    }

    /// Resolves service types and people in Productive; `Err(list of problems)` names each wrong entry.
    async fn resolve_uncached(&self) -> Result<Result<Resolved, Vec<String>>, productive_api::Error> {
        let mut problems = Vec::new();
        let mut resolved = Resolved::default();
        let types = self.productive.all_service_types(productive_api::Query::new()).await?;
        for (i, rule) in self.config.services.iter().enumerate() {
            let want = rule.service_type.trim();
            match types.iter().find(|t| t.attributes.name.eq_ignore_ascii_case(want)) {
                Some(t) => {
                    resolved.service_types.insert(want.to_lowercase(), (t.typed_id(), t.attributes.name.clone()));
                }
                None => problems.push(format!(
                    "services[{i}].service_type `{want}` is not a Productive service type{}",
                    suggestion(want, types.iter().map(|t| t.attributes.name.as_str()))
                )),
            }
        }
        for email in self.config_emails() {
            match self.productive.find_person_by_email(email.trim()).await? {
                Some(p) => {
                    resolved.people.insert(email.trim().to_lowercase(), p.typed_id());
                }
                None => {
                    let place = if email.eq_ignore_ascii_case(&self.config.productive.project_manager_email) {
                        "productive.project_manager_email"
                    } else if self.config.team.always.iter().any(|e| e.eq_ignore_ascii_case(&email)) {
                        "team.always"
                    } else {
                        "team.by_responsible"
                    };
                    problems.push(format!("{place}: `{email}` is not a person in Productive"));
                }
            }
        }
        Ok(if problems.is_empty() { Ok(resolved) } else { Err(problems) })
    }

    async fn resolved(&self) -> Result<&Resolved, BoxError> {
        self.resolved
            .get_or_try_init(|| async {
                match self.resolve_uncached().await {
                    Ok(Ok(r)) => Ok(r),
                    Ok(Err(problems)) => Err(boxed(Permanent(format!("invalid config: {}", problems.join("; "))))),
                    Err(e) => Err(boxed(e)),
                }
            })
            .await
    }

    /// Checks the config against the live systems: the Kommo pipeline and won status, the service field and its
    /// options, the Kommo users of the team map, the Productive service types, people and template project.
    ///
    /// # Errors
    /// [`Error::Config`] listing every wrong entry by name, with a suggestion when a close match exists; or the
    /// API error text when a system cannot be reached.
    pub async fn validate(&self) -> Result<()> {
        let api = |sys: &str, e: &dyn std::fmt::Display| Error::Config(format!("validating against {sys}: {e}"));
        self.config.check()?;
        let mut problems = Vec::new();
        // Kommo
        if let Some(pid) = self.config.kommo.pipeline_id {
            let pipelines = self.kommo.pipelines().list().await.map_err(|e| api("Kommo", &e))?;
            match pipelines.iter().find(|p| p.id.get() == pid) {
                None => problems.push(format!(
                    "kommo.pipeline_id {pid} is not a pipeline (pipelines: {})",
                    pipelines.iter().map(|p| format!("{} `{}`", p.id, p.name)).collect::<Vec<_>>().join(", ")
                )),
                Some(p) => {
                    if !p.statuses().iter().any(|s| s.id.get() == self.config.kommo.won_status_id) {
                        problems.push(format!(
                            "kommo.won_status_id {} is not a status of pipeline {pid}",
                            self.config.kommo.won_status_id
                        ));
                    }
                }
            }
        }
        if let Some(field) = &self.config.kommo.service_field {
            let fields = self.kommo.custom_fields(EntityType::Leads).all().await.map_err(|e| api("Kommo", &e))?;
            let found =
                fields.iter().find(|f| f.name.eq_ignore_ascii_case(field.trim()) || f.id.to_string() == field.trim());
            match found {
                None => problems.push(format!(
                    "kommo.service_field `{field}` is not a lead custom field{}",
                    suggestion(field, fields.iter().map(|f| f.name.as_str()))
                )),
                Some(f) if !f.enums.is_empty() => {
                    for (i, rule) in self.config.services.iter().enumerate() {
                        if let Some(v) = &rule.kommo_value
                            && f.enum_by_value(v).is_none()
                        {
                            problems.push(format!(
                                "services[{i}].kommo_value `{v}` is not an option of Kommo field `{}`{}",
                                f.name,
                                suggestion(v, f.enums.iter().map(|e| e.value.as_str()))
                            ));
                        }
                    }
                }
                Some(_) => {}
            }
        }
        if !self.config.team.by_responsible.is_empty() {
            let users: Vec<kommo_api::users::User> = self
                .kommo
                .users()
                .stream(ListParams::new().limit(250))
                .try_collect()
                .await
                .map_err(|e| api("Kommo", &e))?;
            for email in self.config.team.by_responsible.keys() {
                if !users.iter().any(|u| u.email.as_deref().is_some_and(|e| e.eq_ignore_ascii_case(email.trim()))) {
                    problems.push(format!(
                        "team.by_responsible: `{email}` is not a Kommo user{}",
                        suggestion(email, users.iter().filter_map(|u| u.email.as_deref()))
                    ));
                }
            }
        }
        // Productive
        match self.resolve_uncached().await.map_err(|e| api("Productive", &e))? {
            Ok(r) => {
                let _ = self.resolved.set(r);
            }
            Err(p) => problems.extend(p),
        }
        if let Some(t) = &self.config.productive.template_project_id {
            match self.productive.get_project(&ProjectId::from(t.clone()), &productive_api::Query::new()).await {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {
                    problems.push(format!("productive.template_project_id `{t}` is not a Productive project"));
                }
                Err(e) => return Err(api("Productive", &e)),
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::Config(format!(
                "kommo-productive config does not match the live systems: {}",
                problems.join("; ")
            )))
        }
    }

    /// A Kommo-shaped `leads[status]` webhook body for `lead`, for backfills: it goes through the same inbox and
    /// handler as the real webhook. Its dedup key names the lead's current stage and time but no previous stage
    /// (a backfill sees a state, not a move), so it differs from the status webhook's key; a lead already kicked
    /// off is skipped by the kick-off marker, and the same backfill twice is a duplicate.
    #[must_use]
    pub fn backfill_body(lead: &kommo_api::leads::Lead) -> String {
        let mut pairs: Vec<(String, String)> = vec![("leads[status][0][id]".into(), lead.id.to_string())];
        if let Some(s) = lead.status_id {
            pairs.push(("leads[status][0][status_id]".into(), s.to_string()));
        }
        if let Some(p) = lead.pipeline_id {
            pairs.push(("leads[status][0][pipeline_id]".into(), p.to_string()));
        }
        if let Some(t) = lead.updated_at {
            pairs.push(("leads[status][0][updated_at]".into(), t.to_string()));
            pairs.push(("leads[status][0][last_modified]".into(), t.to_string()));
        }
        if let Some(a) = &lead.account_id {
            pairs.push(("account[id]".into(), a.to_string()));
        }
        kommo_api::webhook::encode_form(&pairs)
    }

    // ----------------------------------------------------------------------------------------- Kommo → saga

    fn is_trigger(&self, action: &WebhookAction, lead: &kommo_api::webhook::WebhookLead) -> Result<(), String> {
        if !matches!(action, WebhookAction::Status | WebhookAction::Add) {
            return Err(format!("event `{}` is not a status change", action.as_str()));
        }
        if lead.status_id.map(StatusId::get) != Some(self.config.kommo.won_status_id) {
            let status = lead.status_id.map_or_else(|| "none".to_owned(), |s| s.get().to_string());
            return Err(format!("status {status} is not the won status {}", self.config.kommo.won_status_id));
        }
        if let Some(p) = self.config.kommo.pipeline_id
            && let Some(lp) = lead.pipeline_id.filter(|lp| lp.get() != p)
        {
            return Err(format!("pipeline {lp} is not the watched pipeline {p}"));
        }
        Ok(())
    }

    async fn handle_kommo(&self, ctx: &Ctx, event: &Event) -> Result<Outcome, BoxError> {
        let payload = match kommo_api::webhook::parse(&event.payload) {
            Ok(p) => p,
            Err(e) => return Ok(Outcome::fail(format!("malformed Kommo webhook: {e}"))),
        };
        if let Some(a) = self.config.kommo.account_id
            && let Err(e) = payload.check_account(Some(kommo_api::ids::AccountId(a)), None)
        {
            return Ok(Outcome::fail(e.to_string()));
        }
        let mut tally = crate::Tally::default();
        for ev in &payload.events {
            let KommoEvent::Lead { action, lead } = ev else {
                tracing::info!(entity = ev.entity_name(), "filtered: not a lead event");
                tally.skipped("not a lead event");
                continue;
            };
            if let Err(reason) = self.is_trigger(action, lead) {
                tracing::info!(lead = %lead.id, %reason, "filtered");
                tally.skipped(format!("filtered: {reason}"));
                continue;
            }
            match self.kickoff(ctx, lead.id).await? {
                Outcome::Done => tally.applied(),
                Outcome::Skipped { reason } => tally.skipped(reason),
                other => return Ok(other),
            }
        }
        Ok(tally.outcome())
    }

    async fn fetch_lead(&self, id: LeadId) -> Result<LeadSnapshot, BoxError> {
        let lead = self.kommo.leads().get(id, &["contacts"]).await.map_err(boxed)?;
        let company_name = if let Some(c) = lead.embedded.companies.first() {
            Some(self.kommo.companies().get(c.id, &[]).await.map_err(boxed)?.name)
        } else if let Some(c) = lead.main_contact() {
            Some(self.kommo.contacts().get(c, &[]).await.map_err(boxed)?.name)
        } else {
            None
        };
        let company_name = company_name.filter(|n| !n.trim().is_empty()).unwrap_or_else(|| lead.name.clone());
        let responsible_email = match lead.responsible_user_id {
            Some(u) if u.get() != 0 => self.kommo.users().get(u).await.map_err(boxed)?.email,
            _ => None,
        };
        let service_values = match &self.config.kommo.service_field {
            None => Vec::new(),
            Some(field) => lead
                .custom_fields_values
                .iter()
                .find(|f| {
                    f.field_id.is_some_and(|i| i.to_string() == field.trim())
                        || f.field_name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(field.trim()))
                })
                .map(|f| f.values.iter().filter_map(kommo_api::custom_fields::FieldValue::as_text).collect())
                .unwrap_or_default(),
        };
        let name = if lead.name.trim().is_empty() { format!("Deal {}", lead.id) } else { lead.name.clone() };
        Ok(LeadSnapshot {
            id: lead.id.get(),
            name,
            price: lead.price.unwrap_or(0),
            status_id: lead.status_id.map(StatusId::get),
            pipeline_id: lead.pipeline_id.map(kommo_api::PipelineId::get),
            responsible_user_id: lead.responsible_user_id.map(kommo_api::UserId::get),
            responsible_email,
            company_name,
            service_values,
        })
    }

    fn rules_for<'a>(&'a self, lead: &LeadSnapshot) -> Vec<(usize, &'a ServiceRule)> {
        self.config
            .services
            .iter()
            .enumerate()
            .filter(|(_, r)| match &r.kommo_value {
                None => true,
                Some(v) => lead.service_values.iter().any(|x| x.trim().eq_ignore_ascii_case(v.trim())),
            })
            .collect()
    }

    /// Productive emails for the lead: the project manager first, then the responsible's team, then `always`.
    fn team_for(&self, lead: &LeadSnapshot) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let entry = lead.responsible_email.as_deref().and_then(|e| {
            self.config.team.by_responsible.iter().find(|(k, _)| k.eq_ignore_ascii_case(e.trim())).map(|(_, v)| v)
        });
        match entry.and_then(|v| v.first()) {
            Some(_) => out.extend(entry.into_iter().flatten().cloned()),
            None => out.push(self.config.productive.project_manager_email.clone()),
        }
        out.extend(self.config.team.always.iter().cloned());
        let mut seen = Vec::new();
        out.retain(|e| {
            let k = e.trim().to_lowercase();
            if seen.contains(&k) {
                false
            } else {
                seen.push(k);
                true
            }
        });
        out
    }

    #[allow(clippy::too_many_lines)]
    async fn kickoff(&self, ctx: &Ctx, lead_id: LeadId) -> Result<Outcome, BoxError> {
        let key = lead_id.to_string();
        if let Some(project) = db!(ctx.id_get(FLOW_NAME, KIND_LEAD_KICKOFF, &key)) {
            tracing::info!(lead = %lead_id, %project, "filtered: lead already has its Productive project");
            return Ok(Outcome::skipped("lead already has its Productive project"));
        }
        let p = format!("lead:{lead_id}:");
        let lead: LeadSnapshot = step!(ctx, format!("{p}fetch"), self.fetch_lead(lead_id));
        if lead.status_id != Some(self.config.kommo.won_status_id) {
            tracing::info!(lead = %lead_id, status = ?lead.status_id, "filtered: lead is no longer won");
            return Ok(Outcome::skipped("lead is no longer won"));
        }
        let resolved = match self.resolved().await {
            Ok(r) => r,
            Err(e) => return outcome_for(Error::Step { step: format!("{p}resolve"), source: e }),
        };
        let team = self.team_for(&lead);
        let person = |email: &str| -> Result<PersonId, BoxError> {
            resolved.people.get(&email.trim().to_lowercase()).cloned().ok_or_else(|| {
                boxed(Permanent(format!("`{email}` is not a Productive person (add it to the config and restart)")))
            })
        };
        let pm = match person(&team[0]) {
            Ok(p) => p,
            Err(e) => return outcome_for(Error::Step { step: format!("{p}team"), source: e }),
        };
        let (project_name, budget_name) = self.names(&lead);

        // 1. company
        let company: String = step!(ctx, format!("{p}company"), async {
            if let Some(c) = self.productive.find_company_by_name(&lead.company_name).await.map_err(boxed)? {
                return Ok(c.id);
            }
            let created = self
                .productive
                .create_company(&productive_api::resources::companies::NewCompany::new(lead.company_name.clone()))
                .await
                .map_err(boxed)?;
            tracing::info!(lead = %lead_id, company = %created.id, "created Productive company");
            Ok(created.id)
        });
        let company = CompanyId::from(company);

        // 2. project (created, or copied from the template)
        let template = self.config.productive.template_project_id.clone();
        let project: String = step!(ctx, format!("{p}project"), async {
            if let Some(id) = ctx.id_get(FLOW_NAME, KIND_LEAD_PROJECT, &key).await.map_err(boxed)? {
                return Ok(id);
            }
            if let Some(found) =
                self.productive.find_project_by_name(&project_name, Some(&company)).await.map_err(boxed)?
            {
                let owner = ctx.id_get_local(FLOW_NAME, KIND_LEAD_PROJECT, &found.id).await.map_err(boxed)?;
                if owner.is_none_or(|o| o == key) {
                    return Ok(found.id);
                }
            }
            let created = match &template {
                Some(t) => {
                    let mut copy = ProjectCopy::from_template(ProjectId::from(t.clone()), project_name.clone());
                    copy.company_id = Some(company.clone());
                    copy.project_manager_id = Some(pm.clone());
                    copy.project_type_id = Some(ProjectType::Client);
                    // the copy's answer is unverified (a job, the new project, or nothing): `copy_project_and_wait`
                    // finds the new project whatever it is; a timeout retries the event, whose search above then
                    // finds the copy by name, and `project_ready` waits for it
                    let wait = productive_api::resources::projects::CopyWait::polls(
                        Duration::from_millis(self.config.productive.copy_poll_interval_ms),
                        self.config.productive.copy_max_polls.max(1),
                    );
                    self.productive.copy_project_and_wait(&copy, wait).await.map_err(boxed)?
                }
                None => self
                    .productive
                    .create_project(&NewProject::client(project_name.clone(), company.clone(), pm.clone()))
                    .await
                    .map_err(boxed)?,
            };
            tracing::info!(lead = %lead_id, project = %created.id, from_template = template.is_some(), "created Productive project");
            Ok(created.id)
        });
        db!(ctx.id_put(FLOW_NAME, KIND_LEAD_PROJECT, &key, &project));
        let project = ProjectId::from(project);
        if template.is_some() {
            let interval = Duration::from_millis(self.config.productive.copy_poll_interval_ms);
            let polls = self.config.productive.copy_max_polls.max(1);
            let _ready: bool = step!(ctx, format!("{p}project_ready"), async {
                self.productive
                    .wait_for_project_copy(
                        &project,
                        productive_api::resources::projects::CopyWait::polls(interval, polls),
                    )
                    .await
                    .map_err(boxed)?;
                Ok(true)
            });
        }

        // 3. budget
        let value = lead.price.to_string();
        let budget: String = step!(ctx, format!("{p}budget"), async {
            let existing = self.productive.deals_of_project(&project, Some(DealKind::Budget)).await.map_err(boxed)?;
            if let Some(b) = existing.first() {
                return Ok(b.id.clone());
            }
            let mut b = NewDeal::budget(budget_name.clone(), company.clone(), project.clone());
            b.currency = Some(self.config.productive.currency.clone());
            b.date = Some(ctx.now().date_naive());
            b.responsible_id = Some(pm.clone());
            b.note = Some(format!("Kommo deal #{lead_id}: {} {}", value, self.config.productive.currency));
            if self.config.productive.send_budget_total {
                b.extra.insert("budget_total".into(), serde_json::Value::String(format!("{value}.0")));
            }
            let created = self.productive.create_budget(&b).await.map_err(boxed)?;
            tracing::info!(lead = %lead_id, budget = %created.id, "created Productive budget");
            Ok(created.id)
        });
        db!(ctx.id_put(FLOW_NAME, KIND_LEAD_BUDGET, &key, &budget));
        let budget = DealId::from(budget);

        // 4. services
        let rules = self.rules_for(&lead);
        if rules.is_empty() && !self.config.services.is_empty() {
            tracing::info!(lead = %lead_id, values = ?lead.service_values, "no [[services]] rule matches the deal");
        }
        let mut service_count = 0usize;
        for (i, rule) in rules {
            let Some((type_id, type_name)) =
                resolved.service_types.get(&rule.service_type.trim().to_lowercase()).cloned()
            else {
                return Ok(Outcome::fail(format!("service type `{}` was not resolved", rule.service_type)));
            };
            let name = rule.name.clone().unwrap_or(type_name);
            let _service: String = step!(ctx, format!("{p}service:{i}"), async {
                let existing = self.productive.services_of_deal(&budget).await.map_err(boxed)?;
                if let Some(s) = existing
                    .iter()
                    .find(|s| s.attributes.name == name && s.service_type_id().is_none_or(|t| t == type_id))
                {
                    return Ok(s.id.clone());
                }
                let billing = rule.billing_type.unwrap_or(self.config.productive.billing_type).to_productive();
                let mut s =
                    NewService::new(name.clone(), budget.clone(), type_id.clone(), rule.unit.to_productive(), billing);
                s.price = Some(rule.price.clone().unwrap_or_else(|| format!("{value}.0")).as_str().into());
                s.quantity = serde_json::Number::from_f64(rule.quantity.unwrap_or(1.0));
                let created = self.productive.create_service(&s).await.map_err(boxed)?;
                tracing::info!(lead = %lead_id, service = %created.id, %name, "created Productive service");
                Ok(created.id)
            });
            service_count += 1;
        }

        // 5. assignments (409/422 "already assigned" = done)
        for email in &team {
            let person_id = match person(email) {
                Ok(p) => p,
                Err(e) => return outcome_for(Error::Step { step: format!("{p}team"), source: e }),
            };
            let _created: bool = step!(ctx, format!("{p}assign:{person_id}"), async {
                let r = self.productive.assign_person_to_project(&project, &person_id).await.map_err(boxed)?;
                if !r.is_created() {
                    tracing::info!(lead = %lead_id, person = %person_id, "already assigned (counts as done)");
                }
                Ok(r.is_created())
            });
        }

        // 6. note on the lead with the project link
        let url = self.project_url(project.as_str());
        let _note: u64 = step!(ctx, format!("{p}note"), async {
            let notes = self.kommo.notes(EntityType::Leads);
            let existing: Vec<kommo_api::notes::Note> =
                notes.stream_for(lead_id, ListParams::new()).try_collect().await.map_err(boxed)?;
            // the kick-off note by its first line and the link on a line of its own: a task-completion note also
            // carries the link, and `…/projects/12` is a prefix of `…/projects/123`
            let is_kickoff = |t: &str| t.starts_with(KICKOFF_NOTE_PREFIX) && t.lines().any(|l| l == url);
            if let Some(n) = existing.iter().find(|n| n.text().is_some_and(is_kickoff)) {
                return Ok(n.id.get());
            }
            let mut text = format!("{KICKOFF_NOTE_PREFIX}{project_name}\n{url}\n");
            let _ = write!(text, "Budget: {} {}", lead.price, self.config.productive.currency);
            let _ = write!(text, " · services: {service_count} · team: {}", team.join(", "));
            let id = notes.add_one(kommo_api::notes::NewNote::common(lead_id, text)).await.map_err(boxed)?;
            Ok(id.get())
        });
        db!(ctx.id_put(FLOW_NAME, KIND_LEAD_KICKOFF, &key, project.as_str()));
        tracing::info!(lead = %lead_id, project = %project, "kick-off complete");
        Ok(Outcome::Done)
    }

    // ------------------------------------------------------------------------------------ Productive → Kommo

    async fn handle_productive(&self, ctx: &Ctx, event: &Event) -> Result<Outcome, BoxError> {
        let delivery = match Delivery::parse(&event.payload) {
            Ok(d) => d,
            Err(e) => return Ok(Outcome::fail(format!("malformed Productive webhook: {e}"))),
        };
        let typed = match delivery.typed() {
            Ok(t) => t,
            Err(e) => return Ok(Outcome::fail(format!("Productive webhook `{}` object: {e}", delivery.event))),
        };
        match typed {
            ProductiveEvent::Task { completed: true, task, included, .. } => {
                if !self.config.alerts.task_completed_note {
                    tracing::info!(task = %task.id, "filtered: task notes are off");
                    return Ok(Outcome::skipped("task notes are off"));
                }
                let Some(project) = task.project_id() else {
                    tracing::info!(task = %task.id, "filtered: task has no project");
                    return Ok(Outcome::skipped("task has no project"));
                };
                let Some(lead) = db!(ctx.id_get_local(FLOW_NAME, KIND_LEAD_PROJECT, project.as_str())) else {
                    tracing::info!(task = %task.id, project = %project, "filtered: project is not mapped to a Kommo lead");
                    return Ok(Outcome::skipped("project is not mapped to a Kommo lead"));
                };
                if db!(ctx.id_get(FLOW_NAME, KIND_TASK_NOTE, &task.id)).is_some() {
                    tracing::info!(task = %task.id, "filtered: completion already noted");
                    return Ok(Outcome::skipped("completion already noted"));
                }
                let project_name = task
                    .related_id("project")
                    .and_then(|r| included.resolve::<productive_api::resources::projects::ProjectAttributes>(r).ok())
                    .flatten()
                    .map(|p| p.attributes.name);
                let lead_id: u64 = lead.parse().map_err(boxed)?;
                // the task id makes the text unique to this task (two tasks may share a title), so the search
                // before create finds this task's note and no other
                let mut text = format!("Productive task completed: {} (task #{}", task.attributes.title, task.id);
                if let Some(n) = project_name {
                    let _ = write!(text, ", project {n}");
                }
                let _ = write!(text, ")\n{}", self.project_url(project.as_str()));
                let note: u64 = step!(ctx, "task_note", self.note_once(LeadId(lead_id), text));
                db!(ctx.id_put(FLOW_NAME, KIND_TASK_NOTE, &task.id, &note.to_string()));
                Ok(Outcome::Done)
            }
            ProductiveEvent::Task { task, .. } => {
                tracing::info!(task = %task.id, event = %delivery.event, "filtered: not a task completion");
                Ok(Outcome::skipped("not a task completion"))
            }
            ProductiveEvent::Deal { is_budget: true, deal, .. } => self.budget_alert(ctx, &deal).await,
            _ => {
                tracing::info!(event = %delivery.event, item = %delivery.item_type, "filtered: event not handled");
                Ok(Outcome::skipped("event not handled"))
            }
        }
    }

    async fn budget_alert(
        &self,
        ctx: &Ctx,
        deal: &productive_api::resources::deals::Deal,
    ) -> Result<Outcome, BoxError> {
        let mut lead = db!(ctx.id_get_local(FLOW_NAME, KIND_LEAD_BUDGET, &deal.id));
        if lead.is_none()
            && let Some(project) = deal.project_id()
        {
            lead = db!(ctx.id_get_local(FLOW_NAME, KIND_LEAD_PROJECT, project.as_str()));
        }
        let Some(lead) = lead else {
            tracing::info!(budget = %deal.id, "filtered: budget is not mapped to a Kommo lead");
            return Ok(Outcome::skipped("budget is not mapped to a Kommo lead"));
        };
        let used = deal.attributes.budget_used.as_ref().and_then(productive_api::Amount::as_f64).unwrap_or(0.0);
        let total = deal.attributes.budget_total.as_ref().and_then(productive_api::Amount::as_f64).unwrap_or(0.0);
        if total <= 0.0 {
            tracing::info!(budget = %deal.id, "filtered: budget has no total");
            return Ok(Outcome::skipped("budget has no total"));
        }
        let pct = used / total * 100.0;
        let Some(threshold) =
            self.config.alerts.budget_thresholds.iter().copied().filter(|t| pct >= f64::from(*t)).max()
        else {
            tracing::info!(budget = %deal.id, pct, "filtered: below every alert threshold");
            return Ok(Outcome::skipped("below every alert threshold"));
        };
        let alert_key = format!("{}:{threshold}", deal.id);
        if db!(ctx.id_get(FLOW_NAME, KIND_BUDGET_ALERT, &alert_key)).is_some() {
            tracing::info!(budget = %deal.id, threshold, "filtered: alert already sent");
            return Ok(Outcome::skipped("alert already sent"));
        }
        let lead_id = LeadId(lead.parse().map_err(boxed)?);
        let currency = deal.attributes.currency.clone().unwrap_or_else(|| self.config.productive.currency.clone());
        // the budget id makes the text unique to this budget (two budgets may share a name), so the search before
        // create finds this alert's note and task and no other
        let text = format!(
            "Productive budget \"{}\" (#{}) is {pct:.0}% used ({used} of {total} {currency}; alert threshold \
             {threshold}%)",
            deal.attributes.name, deal.id
        );
        let note: u64 = step!(ctx, "alert_note", self.note_once(lead_id, text.clone()));
        if self.config.alerts.create_task {
            let due = ctx.now().timestamp() + i64::from(self.config.alerts.task_due_hours) * 3600;
            let _task: u64 = step!(ctx, "alert_task", async {
                let text = format!("Check the budget: {text}");
                // search first, by text on the lead (the due time depends on when the attempt ran)
                let existing: Vec<kommo_api::tasks::Task> =
                    self.kommo.tasks().stream_for(lead_id).try_collect().await.map_err(boxed)?;
                if let Some(t) = existing.iter().find(|t| t.text == text) {
                    tracing::info!(lead = %lead_id, task = %t.id, "alert task already exists (an earlier attempt made it)");
                    return Ok(t.id.get());
                }
                let l = self.kommo.leads().get(lead_id, &[]).await.map_err(boxed)?;
                let mut t = kommo_api::tasks::NewTask::new(text, due)
                    .on(lead_id)
                    .task_type(kommo_api::tasks::TASK_TYPE_FOLLOW_UP);
                if let Some(u) = l.responsible_user_id.filter(|u| u.get() != 0) {
                    t = t.responsible(u);
                }
                let id = self.kommo.tasks().create_one(t).await.map_err(boxed)?;
                Ok(id.get())
            });
        }
        db!(ctx.id_put(FLOW_NAME, KIND_BUDGET_ALERT, &alert_key, &note.to_string()));
        Ok(Outcome::Done)
    }

    /// Adds a common note with `text` to the lead unless the lead already has a note with exactly this text (an
    /// earlier attempt may have created it and lost the answer before the step journal recorded it). Runs inside
    /// a journaled step, so it searches on every attempt, not only on retries.
    async fn note_once(&self, lead: LeadId, text: String) -> Result<u64, BoxError> {
        let notes = self.kommo.notes(EntityType::Leads);
        let existing: Vec<kommo_api::notes::Note> =
            notes.stream_for(lead, ListParams::new().limit(250)).try_collect().await.map_err(boxed)?;
        if let Some(n) = existing.iter().find(|n| n.text() == Some(text.as_str())) {
            tracing::info!(lead = %lead, note = %n.id, "note already exists (an earlier attempt made it)");
            return Ok(n.id.get());
        }
        let id = notes.add_one(kommo_api::notes::NewNote::common(lead, text)).await.map_err(boxed)?;
        Ok(id.get())
    }
}

fn productive_project_of(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let data = v.pointer("/object/data")?;
    if data.get("type").and_then(serde_json::Value::as_str) == Some("projects") {
        return data.get("id").and_then(serde_json::Value::as_str).map(str::to_owned);
    }
    data.pointer("/relationships/project/data/id").and_then(serde_json::Value::as_str).map(str::to_owned)
}

#[async_trait]
impl Flow for KommoProductive {
    fn name(&self) -> &str {
        FLOW_NAME
    }

    fn sources(&self) -> Vec<String> {
        vec![self.config.sources.kommo.clone(), self.config.sources.productive.clone()]
    }

    /// Kommo: the events' own keys
    /// ([`kommo_api::webhook::WebhookEvent::dedup_key`]: `lead:status:<id>:<updated_at>:<status>@<pipeline>:from:…`),
    /// sorted and joined; Productive:
    /// `(event, item_id, created)`.
    fn dedup_key(&self, event: &RawEvent<'_>) -> Result<String, KeyError> {
        if event.source == self.config.sources.productive {
            let d = Delivery::parse(event.body).map_err(|e| KeyError(format!("not a Productive delivery: {e}")))?;
            return Ok(d.dedup_key());
        }
        let payload =
            kommo_api::webhook::parse(event.body).map_err(|e| KeyError(format!("not a Kommo webhook: {e}")))?;
        let mut keys: Vec<String> = payload.events.iter().map(KommoEvent::dedup_key).collect();
        keys.sort();
        Ok(keys.join("|"))
    }

    /// Kommo: a delivery batching several events becomes one inbox event per event, so that each lead's saga is
    /// ordered by its own lead (a batch ordered by its first lead would run the others' sagas beside theirs).
    fn split(&self, event: &RawEvent<'_>) -> Result<Option<Vec<crate::flow::Part>>, KeyError> {
        if event.source == self.config.sources.productive {
            return Ok(None);
        }
        super::kommo_split::split_by_event(event.body)
    }

    /// Kommo: the lead; Productive: the project (so notes about one lead never race).
    fn ordering_key(&self, event: &RawEvent<'_>) -> Option<String> {
        if event.source == self.config.sources.productive {
            return productive_project_of(event.body).map(|p| format!("project:{p}"));
        }
        let payload = kommo_api::webhook::parse(event.body).ok()?;
        payload.events.iter().find_map(KommoEvent::as_lead).map(|l| format!("lead:{}", l.id))
    }

    async fn handle(&self, ctx: &Ctx, event: &Event) -> Result<Outcome, BoxError> {
        if event.source == self.config.sources.productive {
            self.handle_productive(ctx, event).await
        } else {
            self.handle_kommo(ctx, event).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = r#"
        [productive]
        organization_id = "4242"
        project_manager_email = "pm@agency.io"
    "#;

    #[test]
    fn minimal_config_has_defaults() {
        let c = Config::from_toml(MIN).unwrap();
        assert_eq!(c.kommo.won_status_id, 142);
        assert_eq!(c.sources.kommo, "kommo");
        assert_eq!(c.alerts.budget_thresholds, vec![80, 100]);
        assert_eq!(c.productive.billing_type, BillingName::Fixed);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let e = Config::from_toml(&format!("{MIN}\n[kommo]\nwon_status = 142\n")).unwrap_err().to_string();
        assert!(e.contains("won_status"), "{e}");
        let e = Config::from_toml(&format!("{MIN}\n[[services]]\nservice_type = \"Design\"\nunit = \"week\"\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("week"), "{e}");
        let e = Config::from_toml(&format!("{MIN}\n[[services]]\nservice_type = \"Design\"\nprice = \"ten\"\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("services[0].price"), "{e}");
    }

    #[test]
    fn suggestions() {
        assert_eq!(closest("Desing", ["Design", "Development"]), Some("Design"));
        assert_eq!(closest("zzzzzz", ["Design"]), None);
    }

    #[test]
    fn templates_fill() {
        assert_eq!(
            fill("{company}: {lead} (#{lead_id})", &[("company", "Acme"), ("lead", "Site"), ("lead_id", "7")]),
            "Acme: Site (#7)"
        );
    }
}
