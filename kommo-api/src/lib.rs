#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
//! Typed async client for the Kommo (amoCRM) API v4, with OAuth token rotation, rate limiting and webhook parsing.
//!
//! ```no_run
//! use futures::TryStreamExt as _;
//! use kommo_api::{Client, EntityType, ListParams, Order, PipelineId, StatusId, notes::NewNote};
//!
//! # async fn demo() -> Result<(), kommo_api::Error> {
//! // a private integration's long-lived token; the account's own host
//! let client = Client::builder()
//!     .base_url("https://mycompany.kommo.com")
//!     .token(std::env::var("KOMMO_TOKEN").unwrap_or_default())
//!     .build()?;
//!
//! // every won lead of a pipeline changed since yesterday, oldest first, 250 per page, with contacts
//! let since = chrono::Utc::now().timestamp() - 86_400;
//! let won: Vec<_> = client
//!     .leads()
//!     .stream(
//!         ListParams::new()
//!             .limit(250)
//!             .with(["contacts"])
//!             .status(PipelineId(7_130_863), StatusId::WON)
//!             .updated_between(Some(since), None)
//!             .order("updated_at", Order::Asc),
//!     )
//!     .try_collect()
//!     .await?;
//!
//! for lead in &won {
//!     client.notes(EntityType::Leads).add_one(NewNote::common(lead.id, "Onboarding started")).await?;
//! }
//! # Ok(()) }
//! ```
//!
//! # What the client does for you
//!
//! | Kommo behaviour | here |
//! |---|---|
//! | per-account host (`{sub}.kommo.com`, `{sub}.amocrm.ru`, `{sub}.amocrm.com`) | [`ClientBuilder::base_url`] takes the whole URL |
//! | long-lived tokens, or OAuth with **single-use, rotating** refresh tokens | [`Auth`]; [`oauth::KommoOAuth`] + [`OAuthSession`]: single-flight refresh (also between processes sharing a [`TokenStore`]: reload, claim, compare-and-swap), ahead of expiry, a spent refresh token never reused; a 401 triggers at most one refresh, then [`Error::Unauthorized`] / [`Error::AuthRevoked`] |
//! | "not more than 7 requests per second" | a shared limiter per account, evenly spaced, no burst, with 200 ms of headroom against jitter (7 per 1.2 s; [`ClientBuilder::rate_limit`], [`ClientBuilder::rate_margin`]): the fake counts a strict sliding second, and the client passes it |
//! | 429 and the 403 ban page are HTML, with no `Retry-After` | [`Error::Throttled`] / [`Error::Banned`], never retried in-process; the account is held off for the backoff (60 s / 15 min), and later requests fail fast with [`Error::HeldOff`] and the remaining wait instead of sleeping past the caller's deadline (or wait up to [`ClientBuilder::max_wait`]); [`Error::retry_after`] tells the caller when to come back |
//! | 5xx, connection errors | retried with jittered backoff for idempotent requests ([`RetryPolicy`]) |
//! | HAL lists, `page`/`limit` ≤ 250, **204 = empty** (also for search misses and the page after the last) | [`ListParams`], [`ListPage`], lazy streams that stop on 204 or a missing `_links.next` |
//! | `custom_fields_values: null`, numbers as strings | decode as empty / numbers; [`TypedValue`] per field type |
//! | problem+json with `validation-errors[{request_id, errors[{code, path, detail}]}]` | [`Problem`] on [`Error::Api`] |
//! | batch writes, `request_id` echoed | chunked by 50, `request_id` set per element, results in input order; [`Error::Batch`] on a partial failure |
//! | form-encoded, unsigned webhooks | [`webhook::parse`] into typed events, [`webhook::verify_path_token`] |
//!
//! With the `fake` feature, [`fake::FakeKommo`] runs a stateful Kommo on `127.0.0.1` for tests and demos.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
// `Error` keeps the whole failed response (status, headers of interest, raw body, parsed problem) so callers can
// log and reschedule without another request; it is only built on the cold path.
#![allow(clippy::result_large_err)]

pub mod calls;
pub mod catalogs;
pub mod client;
pub mod common;
pub mod companies;
pub mod contacts;
pub mod custom_fields;
pub mod customers;
mod de;
pub mod entity;
pub mod error;
pub mod events;
#[cfg(feature = "fake")]
#[cfg_attr(docsrs, doc(cfg(feature = "fake")))]
pub mod fake;
pub mod hal;
pub mod ids;
pub mod leads;
pub mod links;
pub mod notes;
pub mod oauth;
pub mod pipelines;
pub mod roles;
pub mod sources;
pub mod tasks;
pub mod time;
pub mod unsorted;
pub mod users;
pub mod webhook;

/// The shared plumbing this crate is built on, re-exported so that users name its types through this crate and
/// need not depend on `api-core` (at the matching version) themselves.
pub use api_core;
pub use api_core::FixedClock;
/// Fault injection for the fake ([`fake`] module).
#[cfg(feature = "fake")]
#[cfg_attr(docsrs, doc(cfg(feature = "fake")))]
pub use api_core::fake::Fault;

pub use api_core::{Auth, FileTokenStore, MemoryTokenStore, OAuthSession, RetryPolicy, Token, TokenSet, TokenStore};
pub use client::{Client, ClientBuilder};
pub use common::{EntityType, Tag, TagRef, WriteResult};
pub use custom_fields::{CustomField, CustomFieldValues, CustomFieldsExt, FieldType, FieldValueWrite, TypedValue};
pub use error::{Error, FieldError, HoldCause, Problem, ValidationErrors};
pub use hal::{ListPage, ListParams, Order};
pub use ids::*;

impl Client {
    /// Leads.
    #[must_use]
    pub fn leads(&self) -> leads::Leads<'_> {
        entity::Service::new(self)
    }

    /// Contacts.
    #[must_use]
    pub fn contacts(&self) -> contacts::Contacts<'_> {
        entity::Service::new(self)
    }

    /// Companies.
    #[must_use]
    pub fn companies(&self) -> companies::Companies<'_> {
        entity::Service::new(self)
    }

    /// Notes on one entity type.
    #[must_use]
    pub fn notes(&self, entity: EntityType) -> notes::Notes<'_> {
        notes::Notes { client: self, entity }
    }

    /// Tasks.
    #[must_use]
    pub fn tasks(&self) -> tasks::Tasks<'_> {
        entity::Service::new(self)
    }

    /// Custom field definitions of one entity type.
    #[must_use]
    pub fn custom_fields(&self, entity: EntityType) -> custom_fields::CustomFields<'_> {
        custom_fields::CustomFields { client: self, entity }
    }

    /// Pipelines and statuses.
    #[must_use]
    pub fn pipelines(&self) -> pipelines::Pipelines<'_> {
        pipelines::Pipelines { client: self }
    }

    /// Users.
    #[must_use]
    pub fn users(&self) -> users::Users<'_> {
        users::Users { client: self }
    }

    /// The event log.
    #[must_use]
    pub fn events(&self) -> events::Events<'_> {
        events::Events { client: self }
    }

    /// Webhook subscriptions.
    #[must_use]
    pub fn webhooks(&self) -> events::Webhooks<'_> {
        events::Webhooks { client: self }
    }

    /// Unsorted (incoming) leads.
    #[must_use]
    pub fn unsorted(&self) -> unsorted::UnsortedLeads<'_> {
        unsorted::UnsortedLeads { client: self }
    }

    /// Catalogs (lists) and their elements.
    #[must_use]
    pub fn catalogs(&self) -> catalogs::Catalogs<'_> {
        catalogs::Catalogs { client: self }
    }

    /// Call logging.
    #[must_use]
    pub fn calls(&self) -> calls::Calls<'_> {
        calls::Calls { client: self }
    }

    /// Customers (with their purchases and segments).
    #[must_use]
    pub fn customers(&self) -> customers::Customers<'_> {
        entity::Service::new(self)
    }

    /// User roles.
    #[must_use]
    pub fn roles(&self) -> roles::Roles<'_> {
        roles::Roles { client: self }
    }

    /// Lead sources.
    #[must_use]
    pub fn sources(&self) -> sources::Sources<'_> {
        sources::Sources { client: self }
    }

    /// Loss reasons.
    #[must_use]
    pub fn loss_reasons(&self) -> sources::LossReasons<'_> {
        sources::LossReasons { client: self }
    }

    /// Tags and links of one entity type.
    #[must_use]
    pub fn entity(&self, entity: EntityType) -> links::EntityOps<'_> {
        links::EntityOps { client: self, entity }
    }
}
