//! Calendly → Kommo meetings: bookings, cancellations, reschedules and no-shows become notes and meeting tasks on
//! the right Kommo deal (feature `calendly-kommo`).
//!
//! # What it does
//!
//! | Calendly v2 delivery | effect in Kommo |
//! |---|---|
//! | `invitee.created` | contact found by email (exact, case-insensitive among `GET /contacts?query=` results) → the active deal: a valid "Deal ID" answer, else the contact's open deal chosen by [`DealRule`] (several open deals is a logged decision). No contact → a new contact and an inbound lead in the configured pipeline; a contact without an open deal → a new lead linked to it. Then a note (event, time in the configured time zone, location/join link, answers) and a meeting task (type, due at the start, responsible = deal owner or a configured user). |
//! | `invitee.canceled` (`rescheduled: false`) | a note with who canceled and why; the meeting task is closed with a result text |
//! | reschedule pair (`invitee.canceled` with `rescheduled: true` + `new_invitee`, and `invitee.created` with `old_invitee`), **in either order** | the existing task is moved to the new time (text updated) and one "rescheduled" note is added; never a cancel note, never a second task |
//! | `invitee_no_show.created` | a note and (optionally) a follow-up task |
//! | anything else | skipped (done, reason counted in `status`), with an `info` log saying why |
//!
//! # Keys
//!
//! - **Dedup**: `(event, invitee URI)` (`"invitee.created|https://api.calendly.com/scheduled_events/E/invitees/I"`),
//!   plus the no-show URI for no-show events (an invitee can be marked, unmarked and marked again) — Calendly sends no
//!   delivery id, and a retry resends the same logical event.
//! - **Ordering**: the scheduling chain. Calendly gives a chain no id of its own, and the two deliveries of a
//!   reschedule name different invitees (old and new), so a key derived from one invitee URI would let the pair run
//!   concurrently. Both sides of a reschedule carry the same invitee email (the invitee reschedules their own
//!   booking), so the key is `chain:<lower-cased email>`: every event of one person's bookings — book, reschedule
//!   (both halves), cancel, no-show — runs one at a time in arrival order, while different people run in parallel.
//!   Without an email the key falls back to the old side's invitee URI of the pair (the same for both halves).
//!
//! # State (in the store's id map, system `kommo`, kind `calendly_invitee_task`)
//!
//! Each invitee URI maps to exactly one of:
//!
//! | value | meaning |
//! |---|---|
//! | `<task id>` | the live booking and its Kommo meeting task |
//! | `pending:<task id>><new invitee URI>` | the cancel half of a reschedule arrived first; the task waits for the new booking |
//! | `moved:<task id>><new invitee URI>` | the task was moved to the new invitee (who now holds `<task id>`) |
//! | `canceled:<task id>` | canceled; the task was closed |
//! | `canceled-unsynced:<invitee URI>` | a cancellation arrived for a booking never synced (its late `invitee.created` is then skipped) |
//!
//! The map is unique both ways, so a task id is held by one invitee at a time: a reschedule first re-points the old
//! invitee, then maps the new one. Every remote write is a journaled [`Ctx::step`], and every create searches its
//! target first on every attempt (not only when `attempts > 1`: a shutdown releases an event without counting the
//! attempt, yet that attempt may have reached Kommo): notes by their exact text, which ends with the invitee URI;
//! tasks by text, due time and type among the open tasks of the deal; inbound leads by name among the contact's
//! open deals.
//!
//! # Webhook subscription
//!
//! [`ensure_webhook`] makes sure the callback URL is subscribed (organization or user scope) with a signing key
//! this process generated and stored: an active subscription whose key we know is kept; a disabled one, one with
//! other events, or one whose key we do not know (created elsewhere, adopted after a 409) is deleted and created
//! again with a fresh key. Keys live in the store's step journal under a run id per callback URL, written
//! first-writer-wins, so several `serve` processes starting together on one PostgreSQL agree on one key.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use api_core::{ErrorClass, Token};
use async_trait::async_trait;
use calendly_api::invitees::Invitee;
use calendly_api::webhook::{Verifier, WebhookDelivery, WebhookEvent, parse};
use calendly_api::webhook_subscriptions::{
    CreateOutcome, CreateWebhookSubscription, ListWebhookSubscriptions, SubscriptionState, WebhookScope,
    WebhookSubscription, generate_signing_key,
};
use calendly_api::{InviteeUri, OrganizationUri, UserUri};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use futures::TryStreamExt as _;
use kommo_api::contacts::{Contact, NewContact};
use kommo_api::leads::{Lead, NewLead};
use kommo_api::notes::NewNote;
use kommo_api::tasks::{NewTask, Task, TaskUpdate};
use kommo_api::{ContactId, EntityType, LeadId, ListParams, PipelineId, StatusId, TaskId, UserId};
use serde::{Deserialize, Serialize};

use crate::error::{BoxError, Error};
use crate::flow::{Ctx, Flow, KeyError, Outcome, RawEvent};
use crate::server::{FnVerifier, SourceRoute, VerifyRequest};
use crate::store::{Event, Store};

/// The default inbox source name (the router path is `/hooks/calendly`).
pub const DEFAULT_SOURCE: &str = "calendly";
/// Id-map system of the invitee ↔ task mapping.
pub const ID_SYSTEM: &str = "kommo";
/// Id-map kind of the invitee ↔ task mapping.
pub const ID_KIND: &str = "calendly_invitee_task";
/// The events the flow subscribes to.
pub const EVENTS: [WebhookEvent; 3] =
    [WebhookEvent::InviteeCreated, WebhookEvent::InviteeCanceled, WebhookEvent::InviteeNoShowCreated];

// ------------------------------------------------------------------------------------------------------ config

fn default_source() -> String {
    DEFAULT_SOURCE.to_owned()
}
fn default_timezone() -> String {
    "UTC".to_owned()
}
fn default_deal_id_question() -> String {
    "Deal ID".to_owned()
}
fn default_lead_name() -> String {
    "Calendly: {invitee}".to_owned()
}
fn default_lead_tags() -> Vec<String> {
    vec!["calendly".to_owned()]
}
fn default_task_type() -> u64 {
    kommo_api::tasks::TASK_TYPE_MEETING
}
fn default_task_text() -> String {
    "Meeting: {event} with {invitee}".to_owned()
}
fn default_cancel_result() -> String {
    "Meeting canceled in Calendly".to_owned()
}
fn default_true() -> bool {
    true
}
fn default_follow_up_type() -> u64 {
    kommo_api::tasks::TASK_TYPE_FOLLOW_UP
}
fn default_follow_up_hours() -> u64 {
    24
}
fn default_follow_up_text() -> String {
    "Follow up: {invitee} did not attend {event}".to_owned()
}
fn default_tolerance() -> u64 {
    calendly_api::webhook::DEFAULT_TOLERANCE.as_secs()
}

/// The flow's configuration (TOML; no secrets: tokens come from the environment). Every field has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Inbox source name (router path `/hooks/<source>`).
    #[serde(default = "default_source")]
    pub source: String,
    /// IANA time zone for times written into notes and task texts (the Kommo account's zone; Kommo's API does not
    /// report it, so set it here). Default `UTC`.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// How the deal is chosen.
    #[serde(default)]
    pub deal: DealConfig,
    /// The lead created for a new person (or a contact without an open deal).
    #[serde(default)]
    pub new_lead: NewLeadConfig,
    /// The meeting task.
    #[serde(default)]
    pub task: TaskConfig,
    /// Cancellations.
    #[serde(default)]
    pub cancel: CancelConfig,
    /// No-shows.
    #[serde(default)]
    pub no_show: NoShowConfig,
    /// The Calendly webhook subscription (`serve`).
    #[serde(default)]
    pub webhook: WebhookConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            source: default_source(),
            timezone: default_timezone(),
            deal: DealConfig::default(),
            new_lead: NewLeadConfig::default(),
            task: TaskConfig::default(),
            cancel: CancelConfig::default(),
            no_show: NoShowConfig::default(),
            webhook: WebhookConfig::default(),
        }
    }
}

impl Config {
    /// Parses a TOML document.
    ///
    /// # Errors
    /// The TOML error (unknown keys are errors, naming the key).
    pub fn from_toml(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }
}

/// Which open deal of a contact gets the meeting when no valid "Deal ID" answer names one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DealRule {
    /// The most recently updated open deal (default).
    #[default]
    MostRecentlyUpdated,
    /// The most recently created open deal.
    MostRecentlyCreated,
    /// The oldest open deal.
    Oldest,
}

/// `[deal]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DealConfig {
    /// The booking question whose answer is a Kommo deal id (matched case-insensitively). Default `"Deal ID"`.
    #[serde(default = "default_deal_id_question")]
    pub deal_id_question: String,
    /// The rule among several open deals.
    #[serde(default)]
    pub rule: DealRule,
    /// Only open deals in these pipelines count (empty: any pipeline).
    #[serde(default)]
    pub pipelines: Vec<u64>,
}

impl Default for DealConfig {
    fn default() -> Self {
        Self { deal_id_question: default_deal_id_question(), rule: DealRule::default(), pipelines: Vec::new() }
    }
}

/// `[new_lead]`: the inbound lead for a person without a contact (or a contact without an open deal).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewLeadConfig {
    /// Pipeline (default: the account's main pipeline).
    #[serde(default)]
    pub pipeline_id: Option<u64>,
    /// Stage (default: the pipeline's first stage).
    #[serde(default)]
    pub status_id: Option<u64>,
    /// Lead name; `{invitee}`, `{email}` and `{event}` are replaced. Default `"Calendly: {invitee}"`.
    #[serde(default = "default_lead_name")]
    pub name: String,
    /// Tags on the new lead. Default `["calendly"]`.
    #[serde(default = "default_lead_tags")]
    pub tags: Vec<String>,
    /// Responsible user of the new contact and lead (default: the token's user).
    #[serde(default)]
    pub responsible_user_id: Option<u64>,
}

impl Default for NewLeadConfig {
    fn default() -> Self {
        Self {
            pipeline_id: None,
            status_id: None,
            name: default_lead_name(),
            tags: default_lead_tags(),
            responsible_user_id: None,
        }
    }
}

/// `[task]`: the meeting task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskConfig {
    /// Kommo task type id (2 = Meeting, 1 = Follow-up, or a custom type). Default 2.
    #[serde(default = "default_task_type")]
    pub task_type_id: u64,
    /// Responsible user; default (unset): the deal's responsible user.
    #[serde(default)]
    pub responsible_user_id: Option<u64>,
    /// Task text; `{invitee}`, `{email}`, `{event}`, `{when}` and `{where}` are replaced.
    #[serde(default = "default_task_text")]
    pub text: String,
}

impl Default for TaskConfig {
    fn default() -> Self {
        Self { task_type_id: default_task_type(), responsible_user_id: None, text: default_task_text() }
    }
}

/// `[cancel]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelConfig {
    /// The result text the meeting task is closed with.
    #[serde(default = "default_cancel_result")]
    pub result_text: String,
}

impl Default for CancelConfig {
    fn default() -> Self {
        Self { result_text: default_cancel_result() }
    }
}

/// `[no_show]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoShowConfig {
    /// Create a follow-up task (default true).
    #[serde(default = "default_true")]
    pub follow_up_task: bool,
    /// Its task type (default 1, Follow-up).
    #[serde(default = "default_follow_up_type")]
    pub task_type_id: u64,
    /// Due this many hours after the no-show was reported (default 24).
    #[serde(default = "default_follow_up_hours")]
    pub due_in_hours: u64,
    /// Its text; `{invitee}`, `{email}`, `{event}` and `{when}` are replaced.
    #[serde(default = "default_follow_up_text")]
    pub text: String,
}

impl Default for NoShowConfig {
    fn default() -> Self {
        Self {
            follow_up_task: true,
            task_type_id: default_follow_up_type(),
            due_in_hours: default_follow_up_hours(),
            text: default_follow_up_text(),
        }
    }
}

/// Subscription scope in config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScopeConfig {
    /// Every member's bookings (needs an organization admin's token).
    #[default]
    Organization,
    /// Only the token user's bookings.
    User,
}

/// `[webhook]`: the Calendly subscription `serve` maintains.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The public HTTPS URL Calendly posts to (ending in `/hooks/<source>`). Unset: no subscription management.
    #[serde(default)]
    pub callback_url: Option<String>,
    /// Scope.
    #[serde(default)]
    pub scope: ScopeConfig,
    /// How old a signature may be, in seconds (default 25 h: Calendly retries for 24 h; see
    /// `calendly_api::webhook::DEFAULT_TOLERANCE`). Replays inside the window are deduplicated by the inbox.
    #[serde(default = "default_tolerance")]
    pub tolerance_secs: u64,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self { callback_url: None, scope: ScopeConfig::default(), tolerance_secs: default_tolerance() }
    }
}

/// A configuration entry that does not match the live systems.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid calendly-kommo config `{entry}`: {message}")]
pub struct ConfigError {
    /// The config entry (`task.task_type_id`, `new_lead.pipeline_id`...).
    pub entry: String,
    /// What is wrong, with a suggestion.
    pub message: String,
}

fn config_error(entry: &str, message: impl Into<String>) -> ConfigError {
    ConfigError { entry: entry.to_owned(), message: message.into() }
}

// -------------------------------------------------------------------------------------------------------- flow

/// The Calendly → Kommo flow. Build it with [`CalendlyKommo::new`], check it with [`CalendlyKommo::validate`], mount
/// [`CalendlyKommo::routes`] and register it with an [`crate::Engine`].
#[derive(Clone)]
pub struct CalendlyKommo {
    config: Arc<Config>,
    kommo: kommo_api::Client,
    verifier: Arc<std::sync::RwLock<Verifier>>,
    tz: Tz,
}

impl std::fmt::Debug for CalendlyKommo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CalendlyKommo")
            .field("source", &self.config.source)
            .field("tz", &self.tz)
            .finish_non_exhaustive()
    }
}

impl CalendlyKommo {
    /// A flow writing to `kommo`, verifying deliveries with the subscription's `signing_key`.
    ///
    /// # Errors
    /// [`ConfigError`] for an unknown time zone.
    pub fn new(config: Config, kommo: kommo_api::Client, signing_key: Token) -> Result<Self, ConfigError> {
        let tz: Tz = config.timezone.parse().map_err(|_| {
            config_error("timezone", format!("`{}` is not an IANA time zone (e.g. \"Europe/Berlin\")", config.timezone))
        })?;
        let verifier = Verifier::new(signing_key).tolerance(Duration::from_secs(config.webhook.tolerance_secs));
        Ok(Self { config: Arc::new(config), kommo, verifier: Arc::new(std::sync::RwLock::new(verifier)), tz })
    }

    /// Replaces the signature verifier (e.g. one with an injected clock in tests).
    #[must_use]
    pub fn with_verifier(self, verifier: Verifier) -> Self {
        *self.verifier.write().unwrap_or_else(std::sync::PoisonError::into_inner) = verifier;
        self
    }

    /// Switches to a new signing key (after [`ensure_webhook`] recreated the subscription); the routes already
    /// mounted use it from the next request on.
    pub fn set_signing_key(&self, key: Token) {
        let v = Verifier::new(key).tolerance(Duration::from_secs(self.config.webhook.tolerance_secs));
        *self.verifier.write().unwrap_or_else(std::sync::PoisonError::into_inner) = v;
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The router routes: `POST /hooks/<source>`, verified with `Calendly-Webhook-Signature` over the raw body
    /// (a missing, forged or stale signature answers 401).
    #[must_use]
    pub fn routes(&self) -> Vec<SourceRoute> {
        let verifier = self.verifier.clone();
        let check = FnVerifier(move |req: &VerifyRequest<'_>| {
            let header = req.headers.get("calendly-webhook-signature").map(String::as_str);
            let v = verifier.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            v.verify(header, req.body).map_err(|e| format!("Calendly signature: {e}"))
        });
        vec![SourceRoute::new(self.config.source.clone(), check).body_limit(512 * 1024)]
    }

    /// Checks the config against Kommo: the new-lead pipeline and stage, the deal pipelines, the task types and
    /// the configured users exist. Fails naming the entry, with the valid choices.
    ///
    /// # Errors
    /// [`ConfigError`]; a Kommo error is reported under the entry `kommo`.
    pub async fn validate(&self) -> Result<(), ConfigError> {
        let kerr = |e: kommo_api::Error| config_error("kommo", format!("cannot read the Kommo account: {e}"));
        let pipelines = self.kommo.pipelines().list().await.map_err(kerr)?;
        let list = |ids: Vec<String>| ids.join(", ");
        if let Some(pid) = self.config.new_lead.pipeline_id {
            let Some(p) = pipelines.iter().find(|p| p.id.get() == pid) else {
                return Err(config_error(
                    "new_lead.pipeline_id",
                    format!(
                        "no pipeline {pid}; pipelines: {}",
                        list(pipelines.iter().map(|p| format!("{} ({})", p.id, p.name)).collect())
                    ),
                ));
            };
            if let Some(sid) = self.config.new_lead.status_id
                && !p.statuses().iter().any(|s| s.id.get() == sid)
            {
                return Err(config_error(
                    "new_lead.status_id",
                    format!(
                        "pipeline {pid} has no stage {sid}; stages: {}",
                        list(p.statuses().iter().map(|s| format!("{} ({})", s.id, s.name)).collect())
                    ),
                ));
            }
        } else if let Some(sid) = self.config.new_lead.status_id {
            let main = pipelines.iter().find(|p| p.is_main).or_else(|| pipelines.first());
            if !main.is_some_and(|p| p.statuses().iter().any(|s| s.id.get() == sid)) {
                return Err(config_error(
                    "new_lead.status_id",
                    format!("the main pipeline has no stage {sid}; set new_lead.pipeline_id or pick one of its stages"),
                ));
            }
        }
        for pid in &self.config.deal.pipelines {
            if !pipelines.iter().any(|p| p.id.get() == *pid) {
                return Err(config_error(
                    "deal.pipelines",
                    format!(
                        "no pipeline {pid}; pipelines: {}",
                        list(pipelines.iter().map(|p| format!("{} ({})", p.id, p.name)).collect())
                    ),
                ));
            }
        }
        let account = self.kommo.account(&["task_types"]).await.map_err(kerr)?;
        let types: Vec<(u64, String)> = account
            .extra
            .get("_embedded")
            .and_then(|e| e.get("task_types"))
            .and_then(serde_json::Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|t| Some((t["id"].as_u64()?, t["name"].as_str().unwrap_or_default().to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        let mut type_entries = vec![("task.task_type_id", self.config.task.task_type_id)];
        if self.config.no_show.follow_up_task {
            type_entries.push(("no_show.task_type_id", self.config.no_show.task_type_id));
        }
        for (entry, id) in type_entries {
            if !types.is_empty() && !types.iter().any(|(t, _)| *t == id) {
                return Err(config_error(
                    entry,
                    format!(
                        "no task type {id}; task types: {}",
                        list(types.iter().map(|(i, n)| format!("{i} ({n})")).collect())
                    ),
                ));
            }
        }
        let users: Vec<kommo_api::users::User> =
            self.kommo.users().stream(ListParams::new().limit(250)).try_collect().await.map_err(kerr)?;
        for (entry, id) in [
            ("task.responsible_user_id", self.config.task.responsible_user_id),
            ("new_lead.responsible_user_id", self.config.new_lead.responsible_user_id),
        ] {
            if let Some(id) = id
                && !users.iter().any(|u| u.id.get() == id)
            {
                return Err(config_error(
                    entry,
                    format!(
                        "no user {id}; users: {}",
                        list(users.iter().map(|u| format!("{} ({})", u.id, u.name)).collect())
                    ),
                ));
            }
        }
        if self.config.deal.deal_id_question.trim().is_empty() {
            return Err(config_error("deal.deal_id_question", "must not be empty (default \"Deal ID\")"));
        }
        Ok(())
    }

    fn fmt_time(&self, t: DateTime<Utc>) -> String {
        t.with_timezone(&self.tz).format("%a %d %b %Y, %H:%M").to_string()
    }

    fn fmt_span(&self, start: DateTime<Utc>, end: Option<DateTime<Utc>>) -> String {
        let mut s = self.fmt_time(start);
        if let Some(end) = end {
            let _ = write!(s, "–{}", end.with_timezone(&self.tz).format("%H:%M"));
        }
        let _ = write!(s, " ({})", self.tz);
        s
    }
}

// ------------------------------------------------------------------------------------------------------ keys

/// The scheduling-chain ordering key of a delivery (see the module docs).
#[must_use]
pub fn chain_key(delivery: &WebhookDelivery) -> Option<String> {
    let inv = delivery.invitee()?;
    if let Some(email) = inv.email.as_deref().map(str::trim).filter(|e| !e.is_empty()) {
        return Some(format!("chain:{}", email.to_lowercase()));
    }
    let root = inv.old_invitee.as_ref().unwrap_or(&inv.uri);
    Some(format!("chain:{root}"))
}

// ------------------------------------------------------------------------------------------------- outcomes

/// Why a handler stopped early.
#[derive(Debug)]
enum Stop {
    Retry(Option<Duration>, String),
    Fail(String),
    /// Nothing to do, on purpose (already handled, not ours): done, with the reason kept for `status`.
    Skip(&'static str),
}

impl From<Stop> for Outcome {
    fn from(s: Stop) -> Self {
        match s {
            Stop::Retry(after, reason) => Outcome::Retry { after, reason },
            Stop::Fail(reason) => Outcome::Fail { reason },
            Stop::Skip(reason) => Outcome::skipped(reason),
        }
    }
}

fn kommo_stop(what: &str, e: &kommo_api::Error) -> Stop {
    let reason = format!("Kommo {what}: {e}");
    match e.class() {
        ErrorClass::Client => Stop::Fail(reason),
        // throttled (after Kommo's hold-off), transient, transport, decode and auth (a token can be fixed while we
        // back off) are retried
        _ => Stop::Retry(e.retry_after(), reason),
    }
}

fn store_stop(e: &Error) -> Stop {
    if let Error::Step { step, source } = e
        && let Some(k) = source.downcast_ref::<kommo_api::Error>()
    {
        return kommo_stop(step, k);
    }
    Stop::Retry(None, format!("store: {e}"))
}

type Res<T> = Result<T, Stop>;

fn boxed(e: kommo_api::Error) -> BoxError {
    Box::new(e)
}

// ------------------------------------------------------------------------------------------------- the state

#[derive(Debug, Clone, PartialEq, Eq)]
enum Mapping {
    Live(u64),
    Pending(u64, String),
    Moved(u64, String),
    Canceled(u64),
    CanceledUnsynced,
}

impl Mapping {
    fn parse(s: &str) -> Option<Self> {
        if let Ok(t) = s.parse::<u64>() {
            return Some(Self::Live(t));
        }
        let pair = |rest: &str| -> Option<(u64, String)> {
            let (t, uri) = rest.split_once('>')?;
            Some((t.parse().ok()?, uri.to_owned()))
        };
        if let Some(rest) = s.strip_prefix("pending:") {
            return pair(rest).map(|(t, u)| Self::Pending(t, u));
        }
        if let Some(rest) = s.strip_prefix("moved:") {
            return pair(rest).map(|(t, u)| Self::Moved(t, u));
        }
        if let Some(rest) = s.strip_prefix("canceled:") {
            return rest.parse().ok().map(Self::Canceled);
        }
        if s.starts_with("canceled-unsynced:") {
            return Some(Self::CanceledUnsynced);
        }
        None
    }

    fn encode(&self, invitee: &InviteeUri) -> String {
        match self {
            Self::Live(t) => t.to_string(),
            Self::Pending(t, u) => format!("pending:{t}>{u}"),
            Self::Moved(t, u) => format!("moved:{t}>{u}"),
            Self::Canceled(t) => format!("canceled:{t}"),
            Self::CanceledUnsynced => format!("canceled-unsynced:{invitee}"),
        }
    }

    fn task(&self) -> Option<u64> {
        match self {
            Self::Live(t) | Self::Pending(t, _) | Self::Moved(t, _) | Self::Canceled(t) => Some(*t),
            Self::CanceledUnsynced => None,
        }
    }
}

async fn get_mapping(ctx: &Ctx, invitee: &InviteeUri) -> Res<Option<Mapping>> {
    let raw = ctx.id_get(ID_SYSTEM, ID_KIND, invitee.as_str()).await.map_err(|e| store_stop(&e))?;
    Ok(raw.and_then(|r| Mapping::parse(&r)))
}

async fn put_mapping(ctx: &Ctx, invitee: &InviteeUri, m: &Mapping) -> Res<()> {
    ctx.id_put(ID_SYSTEM, ID_KIND, invitee.as_str(), &m.encode(invitee)).await.map_err(|e| store_stop(&e))
}

/// The Kommo task id mapped to a Calendly invitee, when the invitee holds a live booking.
///
/// # Errors
/// The store's error.
pub async fn task_for_invitee(store: &Store, invitee: &InviteeUri) -> crate::Result<Option<TaskId>> {
    let raw = store.id_get(ID_SYSTEM, ID_KIND, invitee.as_str()).await?;
    Ok(raw.and_then(|r| match Mapping::parse(&r) {
        Some(Mapping::Live(t)) => Some(TaskId(t)),
        _ => None,
    }))
}

// ------------------------------------------------------------------------------------------------ the meeting

/// What the notes and tasks say about one invitee's meeting.
struct Meeting<'a> {
    inv: &'a Invitee,
    name: String,
    email: String,
    event: String,
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
    location: Option<String>,
    host: Option<String>,
}

impl<'a> Meeting<'a> {
    fn of(inv: &'a Invitee) -> Self {
        let ev = inv.scheduled_event.as_ref();
        let name = inv
            .name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .or_else(|| {
                let full = format!(
                    "{} {}",
                    inv.first_name.as_deref().unwrap_or_default(),
                    inv.last_name.as_deref().unwrap_or_default()
                );
                Some(full.trim().to_owned()).filter(|s| !s.is_empty())
            })
            .or_else(|| inv.email.clone())
            .unwrap_or_else(|| "Calendly invitee".to_owned());
        let location = ev.and_then(|e| e.location.as_ref()).map(|l| {
            let mut s = l.kind.to_string();
            if let Some(u) = l.join_url.as_deref().or(l.location.as_deref()) {
                let _ = write!(s, ": {u}");
            }
            s
        });
        Self {
            inv,
            name,
            email: inv.email.clone().unwrap_or_default().trim().to_owned(),
            event: ev.and_then(|e| e.name.clone()).unwrap_or_else(|| "Calendly meeting".to_owned()),
            start: ev.map(|e| e.start_time),
            end: ev.map(|e| e.end_time),
            location,
            host: ev.and_then(|e| e.event_memberships.first()).and_then(|m| m.user_name.clone()),
        }
    }

    fn fill(&self, flow: &CalendlyKommo, template: &str) -> String {
        let when = self.start.map(|s| flow.fmt_span(s, self.end)).unwrap_or_default();
        template
            .replace("{invitee}", &self.name)
            .replace("{email}", &self.email)
            .replace("{event}", &self.event)
            .replace("{when}", &when)
            .replace("{where}", self.location.as_deref().unwrap_or("-"))
    }

    fn details(&self, flow: &CalendlyKommo, out: &mut String) {
        if let Some(s) = self.start {
            let _ = writeln!(out, "When: {}", flow.fmt_span(s, self.end));
        }
        let _ = writeln!(out, "Invitee: {} <{}>", self.name, self.email);
        if let Some(l) = &self.location {
            let _ = writeln!(out, "Where: {l}");
        }
        if let Some(h) = &self.host {
            let _ = writeln!(out, "Host: {h}");
        }
        let answers: Vec<_> = self.inv.questions_and_answers.iter().filter(|q| !q.answer.trim().is_empty()).collect();
        if !answers.is_empty() {
            let _ = writeln!(out, "Answers:");
            for qa in answers {
                let _ = writeln!(out, "- {}: {}", qa.question.trim(), qa.answer.trim());
            }
        }
        // last: which booking the note is about (makes each booking's notes distinct, so the search before
        // create finds this booking's note and no other)
        let _ = writeln!(out, "Calendly invitee: {}", self.inv.uri);
    }

    fn duration(&self) -> Option<i64> {
        Some((self.end? - self.start?).num_seconds()).filter(|s| *s > 0)
    }
}

// ------------------------------------------------------------------------------------------------ the handler

#[async_trait]
impl Flow for CalendlyKommo {
    fn name(&self) -> &str {
        "calendly-kommo"
    }

    fn sources(&self) -> Vec<String> {
        vec![self.config.source.clone()]
    }

    fn dedup_key(&self, event: &RawEvent<'_>) -> Result<String, KeyError> {
        let d = parse(event.body).map_err(|e| KeyError(e.to_string()))?;
        if d.event.is_invitee_event() && d.invitee().is_none() {
            return Err(KeyError("invitee event without an invitee payload".into()));
        }
        Ok(d.dedup_key())
    }

    fn ordering_key(&self, event: &RawEvent<'_>) -> Option<String> {
        parse(event.body).ok().as_ref().and_then(chain_key)
    }

    async fn handle(&self, ctx: &Ctx, event: &Event) -> Result<Outcome, BoxError> {
        let delivery = match parse(&event.payload) {
            Ok(d) => d,
            Err(e) => return Ok(Outcome::fail(format!("undecodable Calendly delivery: {e}"))),
        };
        let Some(inv) = delivery.invitee() else {
            tracing::info!(event = %delivery.event, "ignored: not an invitee event");
            return Ok(Outcome::skipped("not an invitee event"));
        };
        let h = Handler { flow: self, ctx };
        let r = match &delivery.event {
            WebhookEvent::InviteeCreated => h.created(inv).await,
            WebhookEvent::InviteeCanceled if inv.rescheduled && inv.new_invitee.is_some() => {
                h.canceled_for_reschedule(inv).await
            }
            WebhookEvent::InviteeCanceled => h.canceled(inv).await,
            WebhookEvent::InviteeNoShowCreated => h.no_show(inv).await,
            other => {
                tracing::info!(event = %other, invitee = %inv.uri, "ignored: event not handled by this flow");
                Err(Stop::Skip("event not handled by this flow"))
            }
        };
        Ok(match r {
            Ok(()) => Outcome::Done,
            Err(stop @ Stop::Skip(_)) => stop.into(),
            Err(stop) => {
                tracing::warn!(event = %delivery.event, invitee = %inv.uri, ?stop, "calendly-kommo stopped");
                stop.into()
            }
        })
    }
}

/// One attempt of one event. Every create searches its target first, on every attempt: an earlier attempt may
/// have written to Kommo without journaling it (a crash, or a shutdown that released the event with its attempt
/// uncounted, so the attempt number says nothing about earlier writes).
struct Handler<'a> {
    flow: &'a CalendlyKommo,
    ctx: &'a Ctx,
}

/// Where the meeting lands.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Target {
    lead: u64,
    responsible: Option<u64>,
    contact: Option<u64>,
}

impl Handler<'_> {
    fn kommo(&self) -> &kommo_api::Client {
        &self.flow.kommo
    }

    fn cfg(&self) -> &Config {
        &self.flow.config
    }

    async fn step<T, F, Fut>(&self, name: &str, f: F) -> Res<T>
    where
        T: Serialize + serde::de::DeserializeOwned,
        F: FnOnce() -> Fut + Send,
        Fut: std::future::Future<Output = Result<T, BoxError>> + Send,
    {
        self.ctx.step(name, f).await.map_err(|e| store_stop(&e))
    }

    // ---------------------------------------------------------------------------------------------- created

    async fn created(&self, inv: &Invitee) -> Res<()> {
        if let Some(m) = get_mapping(self.ctx, &inv.uri).await? {
            // a retry after the mapping was written, or the booking was canceled before we saw it
            tracing::info!(invitee = %inv.uri, state = ?m, "invitee.created: already handled; nothing to do");
            return Err(Stop::Skip("booking already handled"));
        }
        if let Some(old) = &inv.old_invitee {
            match get_mapping(self.ctx, old).await? {
                Some(Mapping::Live(task)) => return self.move_task(inv, old, task).await,
                Some(Mapping::Pending(task, new) | Mapping::Moved(task, new)) if new == inv.uri.as_str() => {
                    return self.move_task(inv, old, task).await;
                }
                other => tracing::info!(
                    invitee = %inv.uri, old = %old, state = ?other,
                    "rescheduled booking whose previous booking has no open meeting task: treating it as a new booking"
                ),
            }
        }
        self.book(inv).await
    }

    /// A new booking: contact, deal, note, task, mapping.
    async fn book(&self, inv: &Invitee) -> Res<()> {
        let m = Meeting::of(inv);
        let target: Target = self.step("target", || async { self.resolve_target(inv, &m).await }).await?;
        let mut text = format!("📅 Calendly: {} booked\n", m.event);
        m.details(self.flow, &mut text);
        self.note("note-booked", target.lead, text.trim_end()).await?;
        let Some(start) = m.start else {
            tracing::warn!(invitee = %inv.uri, "invitee.created without scheduled_event start: note only, no task");
            return Ok(());
        };
        let responsible = self.cfg().task.responsible_user_id.or(target.responsible);
        let mut task = NewTask::new(m.fill(self.flow, &self.cfg().task.text), start.timestamp())
            .on(LeadId(target.lead))
            .task_type(self.cfg().task.task_type_id);
        if let Some(r) = responsible {
            task = task.responsible(UserId(r));
        }
        if let Some(d) = m.duration() {
            task = task.duration(d);
        }
        let task_id = self.create_task("task-meeting", task).await?;
        put_mapping(self.ctx, &inv.uri, &Mapping::Live(task_id)).await?;
        tracing::info!(invitee = %inv.uri, lead = target.lead, task = task_id, "booking synced");
        Ok(())
    }

    /// The reschedule: move `task` (held by `old`) to `inv`'s time, one note, re-map.
    async fn move_task(&self, inv: &Invitee, old: &InviteeUri, task_id: u64) -> Res<()> {
        let m = Meeting::of(inv);
        let task: Task = self
            .step("task-before-move", || async { self.kommo().tasks().get(TaskId(task_id)).await.map_err(boxed) })
            .await?;
        let Some(start) = m.start else {
            return Err(Stop::Fail("rescheduled invitee.created without scheduled_event start".into()));
        };
        let mut update =
            TaskUpdate::new(TaskId(task_id)).due(start.timestamp()).text(m.fill(self.flow, &self.cfg().task.text));
        update.duration = m.duration();
        if task.is_completed {
            // a manager closed it meanwhile: the meeting is on again
            update.is_completed = Some(false);
        }
        self.step("task-move", || async { self.kommo().tasks().update(&update).await.map(|u| u.id).map_err(boxed) })
            .await?;
        if let Some(lead) = task.entity_id.filter(|_| task.entity_type == Some(EntityType::Leads)) {
            let mut text = format!("🔁 Calendly: {} rescheduled\n", m.event);
            if let Some(prev) = task.complete_till.and_then(|t| DateTime::<Utc>::from_timestamp(t, 0)) {
                let _ = writeln!(text, "Was: {}", self.flow.fmt_span(prev, None));
            }
            m.details(self.flow, &mut text);
            self.note("note-rescheduled", lead, text.trim_end()).await?;
        } else {
            tracing::warn!(task = task_id, "meeting task is not on a lead; rescheduled without a note");
        }
        // re-point the old invitee first (the task id is unique in the map), then give the task to the new one
        put_mapping(self.ctx, old, &Mapping::Moved(task_id, inv.uri.to_string())).await?;
        put_mapping(self.ctx, &inv.uri, &Mapping::Live(task_id)).await?;
        tracing::info!(old = %old, new = %inv.uri, task = task_id, "reschedule synced: task moved");
        Ok(())
    }

    // --------------------------------------------------------------------------------------------- canceled

    async fn canceled_for_reschedule(&self, inv: &Invitee) -> Res<()> {
        let new = inv.new_invitee.as_ref().map(ToString::to_string).unwrap_or_default();
        let new_uri = InviteeUri::from(new.as_str());
        match get_mapping(self.ctx, &inv.uri).await? {
            Some(Mapping::Live(task)) if matches!(get_mapping(self.ctx, &new_uri).await?, Some(Mapping::Live(_))) => {
                // the new booking was synced on its own (its delivery came before the old booking's): close the old
                // task so that only the new one stays open
                self.step("task-close-superseded", || async {
                    let text = format!("{} (rescheduled)", self.cfg().cancel.result_text);
                    self.kommo().tasks().complete(TaskId(task), text).await.map(|u| u.id).map_err(boxed)
                })
                .await?;
                put_mapping(self.ctx, &inv.uri, &Mapping::Moved(task, new.clone())).await?;
                tracing::info!(invitee = %inv.uri, new = %new, task, "reschedule: new booking already synced; old task closed");
            }
            Some(Mapping::Live(task)) => {
                put_mapping(self.ctx, &inv.uri, &Mapping::Pending(task, new.clone())).await?;
                tracing::info!(
                    invitee = %inv.uri, new = %new, task,
                    "reschedule: cancel half first; the task waits for the new booking (no cancel note)"
                );
            }
            state => tracing::info!(
                invitee = %inv.uri, ?state,
                "reschedule: cancel half after the new booking was handled (or of an unsynced booking): nothing to do"
            ),
        }
        Ok(())
    }

    async fn canceled(&self, inv: &Invitee) -> Res<()> {
        let task_id = match get_mapping(self.ctx, &inv.uri).await? {
            Some(Mapping::Live(t) | Mapping::Pending(t, _)) => t,
            None => {
                put_mapping(self.ctx, &inv.uri, &Mapping::CanceledUnsynced).await?;
                tracing::info!(invitee = %inv.uri, "cancellation of a booking that was never synced: remembered, nothing to close");
                return Ok(());
            }
            Some(state) => {
                tracing::info!(invitee = %inv.uri, ?state, "cancellation already handled");
                return Err(Stop::Skip("cancellation already handled"));
            }
        };
        let m = Meeting::of(inv);
        let task: Task = self
            .step("task-before-cancel", || async { self.kommo().tasks().get(TaskId(task_id)).await.map_err(boxed) })
            .await?;
        let c = inv.cancellation.clone().unwrap_or_default();
        let by = c.canceled_by.clone().filter(|s| !s.trim().is_empty()).unwrap_or_else(|| "unknown".into());
        let role = c.canceler_type.as_ref().map(|t| format!(" ({t})")).unwrap_or_default();
        let reason = c.reason.clone().filter(|s| !s.trim().is_empty()).unwrap_or_else(|| "none given".into());
        if let Some(lead) = task.entity_id.filter(|_| task.entity_type == Some(EntityType::Leads)) {
            let mut text = format!("❌ Calendly: {} canceled\nCanceled by: {by}{role}\nReason: {reason}\n", m.event);
            m.details(self.flow, &mut text);
            self.note("note-canceled", lead, text.trim_end()).await?;
        }
        if !task.is_completed {
            let result = format!("{} (by {by}; reason: {reason})", self.cfg().cancel.result_text);
            self.step("task-close", || async {
                self.kommo().tasks().complete(TaskId(task_id), result).await.map(|u| u.id).map_err(boxed)
            })
            .await?;
        }
        put_mapping(self.ctx, &inv.uri, &Mapping::Canceled(task_id)).await?;
        tracing::info!(invitee = %inv.uri, task = task_id, "cancellation synced: task closed");
        Ok(())
    }

    // ---------------------------------------------------------------------------------------------- no-show

    async fn no_show(&self, inv: &Invitee) -> Res<()> {
        let Some(task_id) = get_mapping(self.ctx, &inv.uri).await?.and_then(|m| m.task()) else {
            tracing::info!(invitee = %inv.uri, "no-show for a booking that was never synced: ignored");
            return Err(Stop::Skip("no-show for a booking never synced"));
        };
        let task: Task = self
            .step("task-for-no-show", || async { self.kommo().tasks().get(TaskId(task_id)).await.map_err(boxed) })
            .await?;
        let Some(lead) = task.entity_id.filter(|_| task.entity_type == Some(EntityType::Leads)) else {
            tracing::warn!(task = task_id, "meeting task is not on a lead; no-show not recorded");
            return Err(Stop::Skip("meeting task is not on a lead"));
        };
        let m = Meeting::of(inv);
        let mut text = format!("🚫 Calendly: no-show — {} did not attend {}\n", m.name, m.event);
        // when it was reported: a mark removed and set again is a new no-show with its own note
        let marked = inv.no_show.as_ref().and_then(|n| n.created_at);
        if let Some(t) = marked {
            let _ = writeln!(text, "Reported: {}", self.flow.fmt_span(t, None));
        }
        m.details(self.flow, &mut text);
        self.note("note-no-show", lead, text.trim_end()).await?;
        let ns = &self.cfg().no_show;
        if ns.follow_up_task {
            let hours = i64::try_from(ns.due_in_hours).unwrap_or(24);
            // from when the no-show was reported (Calendly's time, the same on every attempt), not from when this
            // attempt runs: the search before create matches on the due time
            let due = (marked.unwrap_or_else(|| self.ctx.now()) + chrono::Duration::hours(hours)).timestamp();
            let mut t = NewTask::new(m.fill(self.flow, &ns.text), due).on(LeadId(lead)).task_type(ns.task_type_id);
            if let Some(r) = self.cfg().task.responsible_user_id.or(task.responsible_user_id.map(UserId::get)) {
                t = t.responsible(UserId(r));
            }
            self.create_task("task-follow-up", t).await?;
        }
        tracing::info!(invitee = %inv.uri, lead, "no-show synced");
        Ok(())
    }

    // ---------------------------------------------------------------------------------------------- helpers

    /// Adds a note once: journaled, and inside the step the lead's notes are searched for this exact text first
    /// on every attempt. The texts end with the invitee URI ([`Meeting::details`]), so one invitee's note is never
    /// taken for another's.
    async fn note(&self, step: &str, lead: u64, text: &str) -> Res<u64> {
        self.step(step, || async move {
            let notes = self.kommo().notes(EntityType::Leads);
            let existing: Vec<kommo_api::notes::Note> =
                notes.stream_for(LeadId(lead), ListParams::new().limit(250)).try_collect().await.map_err(boxed)?;
            if let Some(n) = existing.iter().find(|n| n.text() == Some(text)) {
                tracing::info!(lead, note = %n.id, step, "note already exists (an earlier attempt made it)");
                return Ok(n.id.get());
            }
            notes.add_one(NewNote::common(LeadId(lead), text)).await.map(|id| id.0).map_err(boxed)
        })
        .await
    }

    /// Creates a task once: journaled, and inside the step the entity's open tasks are searched first on every
    /// attempt for one with the same text, due time and type (so the due time must not depend on when the attempt
    /// runs). A closed task never matches: a canceled booking's task is not reused for a new booking of the same
    /// slot.
    async fn create_task(&self, step: &str, task: NewTask) -> Res<u64> {
        self.step(step, || async move {
            if let Some(id) = task.entity_id {
                let entity = task.entity_type.clone().unwrap_or(EntityType::Leads);
                let existing: Vec<Task> = self
                    .kommo()
                    .tasks()
                    .stream(ListParams::new().filter("entity_type", &entity).filter_in("entity_id", id))
                    .try_collect()
                    .await
                    .map_err(boxed)?;
                let same_type = |t: &Task| task.task_type_id.is_none_or(|want| t.task_type() == Some(want));
                if let Some(t) = existing.iter().find(|t| {
                    !t.is_completed
                        && t.text == task.text
                        && t.complete_till == Some(task.complete_till)
                        && same_type(t)
                }) {
                    tracing::info!(task = %t.id, step, "task already exists (an earlier attempt made it)");
                    return Ok(t.id.get());
                }
            }
            self.kommo().tasks().create_one(task).await.map(|id| id.0).map_err(boxed)
        })
        .await
    }

    /// Finds (or creates) the contact and picks (or creates) the deal. Runs inside the journaled step `target`.
    async fn resolve_target(&self, inv: &Invitee, m: &Meeting<'_>) -> Result<Target, BoxError> {
        let contact = if m.email.is_empty() { None } else { self.find_contact(&m.email).await? };
        if let Some(lead) = self.deal_from_answer(inv).await? {
            return Ok(Target {
                lead: lead.id.get(),
                responsible: lead.responsible_user_id.map(UserId::get),
                contact: contact.map(|c| c.id.get()),
            });
        }
        let Some(contact) = contact else {
            return self.create_contact_and_lead(m).await;
        };
        let open = self.open_deals(contact.id).await?;
        if open.len() > 1 {
            tracing::info!(
                contact = %contact.id, candidates = ?open.iter().map(|l| l.id.get()).collect::<Vec<_>>(),
                rule = ?self.cfg().deal.rule,
                "decision: the contact has several open deals; choosing by the configured rule"
            );
        }
        let chosen = match self.cfg().deal.rule {
            DealRule::MostRecentlyUpdated => open.iter().max_by_key(|l| (l.updated_at.unwrap_or(0), l.id.get())),
            DealRule::MostRecentlyCreated => open.iter().max_by_key(|l| (l.created_at.unwrap_or(0), l.id.get())),
            DealRule::Oldest => open.iter().min_by_key(|l| (l.created_at.unwrap_or(0), l.id.get())),
        };
        if let Some(lead) = chosen {
            if open.len() > 1 {
                tracing::info!(contact = %contact.id, lead = %lead.id, "decision: chose deal {}", lead.id);
            }
            return Ok(Target {
                lead: lead.id.get(),
                responsible: lead.responsible_user_id.map(UserId::get),
                contact: Some(contact.id.get()),
            });
        }
        tracing::info!(contact = %contact.id, "the contact has no open deal: creating an inbound lead for it");
        let lead = self.create_lead(m, contact.id).await?;
        Ok(Target {
            lead,
            responsible: self.cfg().new_lead.responsible_user_id.or(contact.responsible_user_id.map(UserId::get)),
            contact: Some(contact.id.get()),
        })
    }

    /// The contact whose email matches exactly (case-insensitive) among the `query` results; the most recently
    /// updated when several do (logged).
    async fn find_contact(&self, email: &str) -> Result<Option<Contact>, BoxError> {
        let found = self.kommo().contacts().search(email).await.map_err(boxed)?;
        let mut matching: Vec<Contact> =
            found.into_iter().filter(|c| c.emails().iter().any(|e| e.trim().eq_ignore_ascii_case(email))).collect();
        if matching.len() > 1 {
            tracing::info!(
                email, contacts = ?matching.iter().map(|c| c.id.get()).collect::<Vec<_>>(),
                "decision: several contacts have this email; using the most recently updated"
            );
        }
        matching.sort_by_key(|c| (c.updated_at.unwrap_or(0), c.id.get()));
        Ok(matching.pop())
    }

    /// A valid "Deal ID" answer: the question matches, the answer holds a number, and the deal exists.
    async fn deal_from_answer(&self, inv: &Invitee) -> Result<Option<Lead>, BoxError> {
        let q = self.cfg().deal.deal_id_question.trim();
        let Some(answer) = inv.questions_and_answers.iter().find(|a| a.question.trim().eq_ignore_ascii_case(q)) else {
            return Ok(None);
        };
        let digits: String = answer.answer.chars().filter(char::is_ascii_digit).collect();
        let Ok(id) = digits.parse::<u64>() else {
            tracing::info!(invitee = %inv.uri, answer = %answer.answer, "Deal ID answer is not a number: falling back");
            return Ok(None);
        };
        match self.kommo().leads().find(LeadId(id), &[]).await.map_err(boxed)? {
            Some(lead) if !lead.is_deleted => {
                tracing::info!(invitee = %inv.uri, lead = id, "decision: deal named by the Deal ID answer");
                Ok(Some(lead))
            }
            _ => {
                tracing::info!(
                    invitee = %inv.uri, lead = id,
                    "decision: the Deal ID answer names a deal that does not exist; falling back to the contact's deals"
                );
                Ok(None)
            }
        }
    }

    async fn open_deals(&self, contact: ContactId) -> Result<Vec<Lead>, BoxError> {
        let c = self.kommo().contacts().get(contact, &["leads"]).await.map_err(boxed)?;
        let ids: Vec<u64> = c.embedded.leads.iter().map(|l| l.id.get()).collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for chunk in ids.chunks(50) {
            let leads: Vec<Lead> = self
                .kommo()
                .leads()
                .stream(ListParams::new().limit(250).ids(chunk.iter().copied().map(LeadId)))
                .try_collect()
                .await
                .map_err(boxed)?;
            out.extend(leads);
        }
        let pipelines = &self.cfg().deal.pipelines;
        out.retain(|l| {
            !l.is_deleted
                && !l.status_id.is_some_and(|s| s == StatusId::WON || s == StatusId::LOST)
                && (pipelines.is_empty() || l.pipeline_id.is_some_and(|p| pipelines.contains(&p.get())))
        });
        Ok(out)
    }

    async fn create_contact_and_lead(&self, m: &Meeting<'_>) -> Result<Target, BoxError> {
        let nl = &self.cfg().new_lead;
        let mut contact = NewContact::new(m.name.clone());
        if !m.email.is_empty() {
            contact = contact.email(m.email.clone());
        }
        if let Some(phone) = m.inv.text_reminder_number.as_deref().filter(|p| !p.trim().is_empty()) {
            contact = contact.phone(phone);
        }
        if let Some(r) = nl.responsible_user_id {
            contact = contact.responsible(UserId(r));
        }
        let contact_id = self.kommo().contacts().create_one(contact).await.map_err(boxed)?;
        tracing::info!(contact = %contact_id, email = %m.email, "no Kommo contact with this email: created one");
        let lead = self.create_lead(m, contact_id).await?;
        Ok(Target { lead, responsible: nl.responsible_user_id, contact: Some(contact_id.get()) })
    }

    /// Creates the inbound lead for `contact` (reusing an open lead of ours with the same name after an ambiguous
    /// failure).
    async fn create_lead(&self, m: &Meeting<'_>, contact: ContactId) -> Result<u64, BoxError> {
        let nl = &self.cfg().new_lead;
        let name = m.fill(self.flow, &nl.name);
        // searched on every attempt (an earlier one may have created it and lost the answer)
        let open = self.open_deals(contact).await?;
        if let Some(l) = open.iter().find(|l| l.name == name) {
            return Ok(l.id.get());
        }
        let mut lead = NewLead::new(name).contact(contact);
        match (nl.pipeline_id, nl.status_id) {
            (Some(p), Some(s)) => lead = lead.stage(PipelineId(p), StatusId(s)),
            (Some(p), None) => lead.pipeline_id = Some(PipelineId(p)),
            (None, Some(s)) => lead.status_id = Some(StatusId(s)),
            (None, None) => {}
        }
        for t in &nl.tags {
            lead = lead.tag(t.as_str());
        }
        if let Some(r) = nl.responsible_user_id {
            lead = lead.responsible(UserId(r));
        }
        let id = self.kommo().leads().create_one(lead).await.map_err(boxed)?;
        tracing::info!(lead = %id, contact = %contact, "created an inbound lead");
        Ok(id.get())
    }
}

// ------------------------------------------------------------------------------------------ the subscription

/// Which subscription [`ensure_webhook`] maintains.
#[derive(Debug, Clone)]
pub struct WebhookSpec {
    /// The public callback URL.
    pub callback_url: String,
    /// The organization.
    pub organization: OrganizationUri,
    /// Organization or user scope.
    pub scope: ScopeConfig,
    /// The user (user scope).
    pub user: Option<UserUri>,
}

/// What [`ensure_webhook`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookAction {
    /// An active subscription whose signing key we hold: kept.
    Kept,
    /// None existed: created with a new key.
    Created,
    /// One existed but was disabled, had other events, or its key was unknown to us: deleted and created again.
    Recreated,
}

/// The subscription in place and the key to verify its deliveries with.
#[derive(Debug, Clone)]
pub struct EnsuredWebhook {
    /// The subscription.
    pub subscription: WebhookSubscription,
    /// Its signing key (generated by us, stored in the store).
    pub signing_key: Token,
    /// What happened.
    pub action: WebhookAction,
}

/// Why [`ensure_webhook`] failed.
#[derive(Debug, thiserror::Error)]
pub enum WebhookSetupError {
    /// Calendly refused.
    #[error("Calendly: {0}")]
    Calendly(#[from] calendly_api::Error),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] Error),
    /// Calendly says the URL is subscribed but does not list it at this scope.
    #[error("Calendly reports the callback URL as already subscribed, but it is not listed at scope {0}")]
    Invisible(String),
}

fn key_run(url: &str) -> String {
    format!("calendly-kommo/webhook-signing-key/{url}")
}

/// The signing key for `slot`, first writer wins (so concurrent starters agree on one key).
async fn key_for_slot(store: &Store, url: &str, slot: &str) -> crate::Result<Token> {
    let candidate = serde_json::Value::String(generate_signing_key().expose().to_owned());
    let v = store.step_put(&key_run(url), &format!("slot:{slot}"), &candidate, None).await?;
    Ok(Token::new(v.as_str().unwrap_or_default()))
}

async fn key_of_subscription(store: &Store, url: &str, sub: &WebhookSubscription) -> crate::Result<Option<Token>> {
    let v = store.step_get(&key_run(url), &format!("sub:{}", sub.uri.uuid())).await?;
    Ok(v.and_then(|v| v.as_str().map(Token::new)))
}

async fn remember_key(store: &Store, url: &str, sub: &WebhookSubscription, key: &Token) -> crate::Result<Token> {
    let v = store
        .step_put(
            &key_run(url),
            &format!("sub:{}", sub.uri.uuid()),
            &serde_json::Value::String(key.expose().to_owned()),
            None,
        )
        .await?;
    Ok(Token::new(v.as_str().unwrap_or_default()))
}

/// Makes sure `spec.callback_url` is subscribed to [`EVENTS`] with a signing key we generated and stored (see the
/// module docs): keeps an active subscription whose key we hold; deletes and recreates a disabled one, one with
/// other events, or one whose key we do not know; creates one when none exists; adopts the subscription after a
/// 409 race with another starter (which used the same stored key).
///
/// # Errors
/// [`WebhookSetupError`].
pub async fn ensure_webhook(
    calendly: &calendly_api::Client,
    store: &Store,
    spec: &WebhookSpec,
) -> Result<EnsuredWebhook, WebhookSetupError> {
    let url = spec.callback_url.as_str();
    let scope = match spec.scope {
        ScopeConfig::Organization => WebhookScope::Organization,
        ScopeConfig::User => WebhookScope::User,
    };
    let mut list = ListWebhookSubscriptions::new(spec.organization.clone(), scope.clone());
    list.user = spec.user.clone().filter(|_| spec.scope == ScopeConfig::User);
    // the subscription lives at `url` or, after a replacement, at its alternate (one subscription per URL: a
    // replacement is created at the other URL before the old one is deleted)
    let alternate = calendly_api::webhook_subscriptions::alternate_callback_url(url);
    let existing = match calendly.find_webhook_subscription(&list, url).await? {
        Some(sub) => Some(sub),
        None => calendly.find_webhook_subscription(&list, &alternate).await?,
    };
    let mut action = WebhookAction::Created;
    let mut slot = "initial".to_owned();
    let mut create_at = url.to_owned();
    let mut replaces = None;
    if let Some(sub) = existing {
        let same_events = sub.events.len() == EVENTS.len() && EVENTS.iter().all(|e| sub.events.contains(e));
        let mut key = key_of_subscription(store, url, &sub).await?;
        if key.is_none()
            && sub.state == SubscriptionState::Active
            && same_events
            && store.step_get(&key_run(url), "slot:initial").await?.is_some()
        {
            // another starter sharing this store may have created it a moment ago and not yet recorded its key
            // (it generated the initial slot's key first): wait for the key instead of replacing its subscription
            for _ in 0..25 {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                key = key_of_subscription(store, url, &sub).await?;
                if key.is_some() {
                    break;
                }
            }
        }
        if sub.state == SubscriptionState::Active
            && same_events
            && let Some(key) = key.clone()
        {
            return Ok(EnsuredWebhook { subscription: sub, signing_key: key, action: WebhookAction::Kept });
        }
        tracing::info!(
            uri = %sub.uri, state = %sub.state, same_events, key_known = key.is_some(),
            "recreating the Calendly webhook subscription"
        );
        action = WebhookAction::Recreated;
        slot = format!("replace:{}", sub.uri.uuid());
        create_at = if sub.callback_url == url { alternate.clone() } else { url.to_owned() };
        replaces = Some(sub);
    }
    let key = key_for_slot(store, url, &slot).await?;
    let mut req = CreateWebhookSubscription::new(&create_at, EVENTS, spec.organization.clone(), scope.clone())
        .signing_key(key.clone());
    if spec.scope == ScopeConfig::User
        && let Some(u) = &spec.user
    {
        req = req.user(u.clone());
    }
    let subscription = match calendly.create_webhook_subscription(&req).await? {
        CreateOutcome::Created(sub) => sub,
        CreateOutcome::AlreadyExists(_) => {
            // another starter created it meanwhile, from the same slot (hence with the same key): adopt it
            let sub = calendly
                .find_webhook_subscription(&list, &create_at)
                .await?
                .ok_or_else(|| WebhookSetupError::Invisible(scope.to_string()))?;
            tracing::info!(uri = %sub.uri, "Calendly answered 409: adopting the existing subscription");
            action = WebhookAction::Kept;
            sub
        }
    };
    let signing_key = remember_key(store, url, &subscription, &key).await?;
    // only now that its replacement exists (and its key is stored) is the old subscription deleted
    if let Some(old) = replaces {
        calendly.delete_webhook_subscription(&old.uri).await?;
    }
    Ok(EnsuredWebhook { subscription, signing_key, action })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_round_trips() {
        let inv = InviteeUri::from("https://api.calendly.com/scheduled_events/E/invitees/I");
        for m in [
            Mapping::Live(7),
            Mapping::Pending(7, "https://x/scheduled_events/F/invitees/J".into()),
            Mapping::Moved(7, "https://x/scheduled_events/F/invitees/J".into()),
            Mapping::Canceled(7),
            Mapping::CanceledUnsynced,
        ] {
            assert_eq!(Mapping::parse(&m.encode(&inv)), Some(m));
        }
    }

    #[test]
    fn both_halves_of_a_reschedule_share_the_chain_key() {
        let canceled = br#"{"event":"invitee.canceled","created_at":"2026-06-24T22:30:45Z","payload":{"uri":"https://api.calendly.com/scheduled_events/E1/invitees/I1","email":"Jane@Example.com","rescheduled":true,"new_invitee":"https://api.calendly.com/scheduled_events/E2/invitees/I2"}}"#;
        let created = br#"{"event":"invitee.created","created_at":"2026-06-24T22:30:45Z","payload":{"uri":"https://api.calendly.com/scheduled_events/E2/invitees/I2","email":"jane@example.com","old_invitee":"https://api.calendly.com/scheduled_events/E1/invitees/I1"}}"#;
        let key = |b: &[u8]| chain_key(&parse(b).unwrap());
        assert_eq!(key(canceled), Some("chain:jane@example.com".into()));
        assert_eq!(key(canceled), key(created));
        let no_email_c = br#"{"event":"invitee.canceled","created_at":"2026-06-24T22:30:45Z","payload":{"uri":"https://x/scheduled_events/E1/invitees/I1","rescheduled":true,"new_invitee":"https://x/scheduled_events/E2/invitees/I2"}}"#;
        let no_email_n = br#"{"event":"invitee.created","created_at":"2026-06-24T22:30:45Z","payload":{"uri":"https://x/scheduled_events/E2/invitees/I2","old_invitee":"https://x/scheduled_events/E1/invitees/I1"}}"#;
        assert_eq!(key(no_email_c), key(no_email_n));
    }

    #[test]
    fn config_defaults_and_unknown_keys() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.task.task_type_id, 2);
        let e = Config::from_toml("[task]\ntask_type = 3\n").unwrap_err().to_string();
        assert!(e.contains("task_type"), "{e}");
        let c = Config::from_toml("timezone = \"Europe/Berlin\"\n[deal]\nrule = \"oldest\"\n").unwrap();
        assert_eq!(c.deal.rule, DealRule::Oldest);
    }
}
