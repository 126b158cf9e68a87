#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
//! Typed async Calendly API v2 client: scheduled events, invitees, webhook subscriptions and signed webhook payloads.
//!
//! - [`Client`]: bearer auth (personal access token, or OAuth with rotating refresh tokens via
//!   [`oauth::CalendlyRefresher`]), retries, and Calendly's `X-RateLimit-*` rules (pause when `Remaining` hits 0,
//!   wait `Reset` seconds after a 429).
//! - Resources: [`users`] (`/users/me`, memberships), [`event_types`], [`scheduled_events`] (list, get, cancel),
//!   [`invitees`] (list, get, no-shows), [`webhook_subscriptions`] (create with a 409 outcome, list, get, delete,
//!   sample data, [`Client::ensure_webhook_subscription`]), and the rest of the API reference: [`scheduling_links`],
//!   the Scheduling API ([`Client::create_invitee`]), [`availability`], [`routing_forms`], [`groups`],
//!   [`activity_log`], [`data_compliance`], [`organizations`] (invitations, memberships). Every collection has a
//!   `list_*` (one page, with its `pagination`) and a `stream_*` (a lazy [`futures::Stream`] of every item over
//!   `pagination.next_page_token`).
//! - [`webhook`]: v2 delivery parsing ([`webhook::parse`]), signature verification
//!   ([`webhook::Verifier`]), dedup keys and reschedule pairing.
//! - `fake` (feature `fake`): a stateful in-process Calendly for tests and demos.
//!
//! Every cross-reference is a full URI ([`uri`]); path parameters take the UUID (`uri.uuid()`).
//!
//! ```no_run
//! # async fn demo() -> Result<(), calendly_api::Error> {
//! use calendly_api::{Client, scheduled_events::{EventStatus, ListScheduledEvents}};
//! use futures::TryStreamExt as _;
//!
//! let client = Client::builder().token("personal-access-token").build()?;
//! let me = client.me().await?;
//! let org = me.current_organization.expect("users/me has an organization");
//! let events: Vec<_> = client
//!     .stream_scheduled_events(&ListScheduledEvents::for_organization(org).status(EventStatus::Active))
//!     .try_collect()
//!     .await?;
//! for e in &events {
//!     tracing::info!(uri = %e.uri, start = %e.start_time, "event");
//! }
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

#[macro_use]
mod macros;

pub mod activity_log;
pub mod availability;
pub mod client;
pub mod data_compliance;
pub mod error;
pub mod event_types;
pub mod groups;
pub mod invitees;
pub mod oauth;
pub mod organizations;
pub mod ratelimit;
pub mod routing_forms;
pub mod scheduled_events;
pub mod scheduling_links;
pub mod uri;
pub mod users;
pub mod webhook;
pub mod webhook_subscriptions;

#[cfg(feature = "fake")]
#[cfg_attr(docsrs, doc(cfg(feature = "fake")))]
pub mod fake;

/// The shared plumbing this crate is built on, re-exported so that users name its types through this crate and
/// need not depend on `api-core` (at the matching version) themselves.
pub use api_core;
/// Fault injection for the fake ([`fake`] module).
#[cfg(feature = "fake")]
#[cfg_attr(docsrs, doc(cfg(feature = "fake")))]
pub use api_core::fake::Fault;
pub use api_core::{FixedClock, RetryPolicy, Token};

pub use client::{Client, ClientBuilder, Collection, Pagination};
pub use error::{ApiError, ApiErrorBody, Error, ErrorDetail};
pub use ratelimit::RateLimitInfo;
pub use uri::{
    ActivityLogEntryUri, AvailabilityScheduleUri, EventTypeUri, EventUri, GroupRelationshipUri, GroupUri,
    InvitationUri, InviteeUri, MembershipUri, NoShowUri, OrganizationUri, RoutingFormSubmissionUri, RoutingFormUri,
    UserUri, WebhookUri,
};
pub use webhook::{Verifier, WebhookDelivery, WebhookError, WebhookEvent, WebhookPayload};

/// The README's examples, compiled as doctests.
#[cfg(all(doctest, feature = "fake"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
