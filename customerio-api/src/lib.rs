#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
//! Typed async Customer.io client: Track v1 and v2 batch, App API, reporting webhooks with signature verification.
//!
//! - [`Client`] ([`Client::builder`]): an explicit [`Region`] (US/EU) with overridable Track and App base URLs;
//!   Track calls with Basic auth (`site_id:api_key`), App API calls with a Bearer key. Redirects are never followed
//!   ([`NoRedirectTransport`]): a 3xx is [`Error::Redirect`], which means the region is wrong.
//! - Track v1 ([`track`]): [`Client::identify`], [`Client::delete_person`], [`Client::suppress`],
//!   [`Client::unsuppress`], [`Client::track`] (every [`Event`] carries a ULID [`EventId`] so a retry never
//!   double-counts; [`EventId::from_source_key`] makes replays deterministic), [`Client::track_anonymous`],
//!   [`Client::add_device`], [`Client::delete_device`], [`Client::merge_people`].
//! - Track v2 ([`batch`]): [`Client::entity`] and [`Client::batch`] (split into ≤ 500 KB requests; 207 partial
//!   failures returned by index in a [`BatchReport`]).
//! - Documented limits are checked before sending ([`limits`], [`ValidationError`]).
//! - Objects and relationships ([`objects`]): [`ObjectRef`], [`Operation::object_identify`] and friends,
//!   [`Client::identify_object`], [`Client::add_relationships`]; v2 [`Operation::page`]/[`Operation::screen`].
//! - App API ([`app`], [`customers`], [`segments`]): [`Client::send_email`], [`Client::send_push`],
//!   [`Client::send_sms`], [`Client::customers_by_email`], [`Client::customer_attributes`],
//!   [`Client::list_customers`] ([`CustomerFilter`]), [`Client::list_customer_activities`],
//!   [`Client::list_customer_messages`], [`Client::list_segments`], [`Client::list_segment_members`],
//!   [`Client::trigger_broadcast`], [`Client::broadcast_trigger`], reporting-webhook management. `list_*` return
//!   one [`Page`]; `stream_*` every item.
//! - Pipelines ([`pipelines`]): [`Client::pipelines_identify`], [`Client::pipelines_track`].
//! - Reporting webhooks ([`webhook`]): [`ReportingEvent`] with open [`ObjectType`]/[`Metric`] enums, and
//!   [`Verifier`] for `X-CIO-Signature`.
//! - Feature `fake`: an in-process stateful Customer.io fake (`fake::FakeCustomerIo`).
//!
//! Errors ([`Error`]) keep the status, the raw body, the vendor's parsed error in any of its three shapes
//! ([`VendorError`]), a retry class, whether the request may have been sent, and the `Retry-After` hint.
//! Retries (api-core's policy): 408/429/5xx and transport errors with jittered backoff and `Retry-After`; 5xx and
//! timeouts only for idempotent requests (PUTs, DELETEs, events with an id); never 400/401/403/404/422.
//!
//! ```no_run
//! use customerio_api::{Client, Event, EventId, Identifier, Identify, Region, Token};
//!
//! # async fn run() -> Result<(), customerio_api::Error> {
//! let cio = Client::builder()
//!     .region(Region::Eu)
//!     .track_credentials("site_id", Token::new(std::env::var("CIO_TRACK_KEY").unwrap_or_default()))
//!     .app_api_key(Token::new(std::env::var("CIO_APP_KEY").unwrap_or_default()))
//!     .build()?;
//! let ann = Identifier::email("ann+crm@example.com");
//! cio.identify(&ann, &Identify::new().attr("plan", "pro").timestamp(1_700_000_000)).await?;
//! let event = Event::new("deal_won")
//!     .id(EventId::from_source_key_unix("kommo:lead:4711:won", 1_700_000_000))
//!     .timestamp(1_700_000_000)
//!     .data("amount", 1200);
//! cio.track(&ann, &event).await?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod app;
pub mod batch;
pub mod client;
pub mod customers;
pub mod error;
#[cfg(feature = "fake")]
#[cfg_attr(docsrs, doc(cfg(feature = "fake")))]
pub mod fake;
pub mod ids;
pub mod limits;
pub mod objects;
pub mod pipelines;
pub mod region;
pub mod segments;
pub mod track;
pub mod transport;
pub mod webhook;

/// The shared plumbing this crate is built on, re-exported so that users name its types through this crate and
/// need not depend on `api-core` (at the matching version) themselves.
pub use api_core;
/// Fault injection for the fake ([`fake`] module).
#[cfg(feature = "fake")]
#[cfg_attr(docsrs, doc(cfg(feature = "fake")))]
pub use api_core::fake::Fault;

pub use api_core::{
    FixedClock, Page, RateBudget, RateLimiter, RawResponse, Request, RetryPolicy, Rule, SignatureError, Token,
};
pub use app::{
    Audience, BroadcastTrigger, BroadcastTriggerStatus, CustomerAttributes, CustomerRef, MessageRef,
    ReportingWebhookConfig, ReportingWebhookInfo, SendEmail, SendPush, SendResponse, SendSms, TransactionalOptions,
    TriggerResponse,
};
pub use batch::{BatchAbort, BatchReport, Operation, RejectedOperation};
pub use client::{Api, Client, ClientBuilder};
pub use customers::{
    Activity, ActivityQuery, ActivityType, CustomerFilter, ListOptions, Message, MessageQuery, MessageType,
};
pub use error::{Error, ErrorItem, VendorError};
pub use ids::{BroadcastId, DeliveryId, EventId, Identifier, ObjectId, ObjectTypeId, SegmentId, TriggerId, WebhookId};
pub use limits::ValidationError;
pub use objects::{ObjectRef, ObjectRelationship, PersonRelationship};
pub use pipelines::{PipelinesIdentify, PipelinesTrack, PipelinesUser};
pub use region::Region;
pub use segments::{Segment, SegmentState, SegmentType};
pub use track::{Device, Event, EventType, Identify, Platform, RegionInfo};
pub use transport::NoRedirectTransport;
pub use webhook::{EventData, Identifiers, Metric, ObjectType, ReportingEvent, Verifier, WebhookError};
