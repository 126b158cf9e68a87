#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
//! Typed async client for the [Productive.io](https://productive.io) API v2: a generic JSON:API document model,
//! typed resources with typed ids, webhook parsing and signature verification, and (feature `fake`) an in-process
//! stateful fake of the API.
//!
//! | module | what |
//! |---|---|
//! | [`jsonapi`] | `Document`, `Resource`, `Relationship`, the `included` resolver, write documents, error documents, the query builder |
//! | [`client`] | [`Client`]: `X-Auth-Token` + `X-Organization-Id`, `application/vnd.api+json`, 100/10 s + 4,000/30 min limits, 429 handling |
//! | [`resources`] | companies, people, projects (+ copy), deals/budgets, deal statuses, services, service types, assignments, tasks, task lists, comments, time entries, bookings, expenses, invoices and line items, workflows and statuses, custom fields and options, organization memberships, webhooks and webhook logs |
//! | [`webhook`] | deliveries → [`webhook::WebhookEvent`], `Productive-Signature` verification, replay guard |
//! | [`types`] | typed ids and Productive's integer enums |
//! | `fake` (feature `fake`) | the in-process fake |
//!
//! ```no_run
//! # async fn run() -> Result<(), productive_api::Error> {
//! use productive_api::{Client, Token, resources::{companies::NewCompany, projects::NewProject}};
//! let client = Client::builder()
//!     .token(Token::new(std::env::var("PRODUCTIVE_TOKEN").unwrap()))
//!     .organization_id(std::env::var("PRODUCTIVE_ORG_ID").unwrap())
//!     .build()?;
//! let company = match client.find_company_by_name("Acme").await? {
//!     Some(c) => c,
//!     None => client.create_company(&NewCompany::new("Acme")).await?,
//! };
//! let manager = client.find_person_by_email("pm@agency.io").await?.expect("known PM");
//! let project = client
//!     .create_project(&NewProject::client("Acme website", company.typed_id(), manager.typed_id()))
//!     .await?;
//! # let _ = project; Ok(()) }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod client;
pub mod error;
#[cfg(feature = "fake")]
#[cfg_attr(docsrs, doc(cfg(feature = "fake")))]
pub mod fake;
pub mod jsonapi;
pub mod resources;
pub mod types;
pub mod webhook;

/// The shared plumbing this crate is built on, re-exported so that users name its types through this crate and
/// need not depend on `api-core` (at the matching version) themselves.
pub use api_core;
/// Fault injection for the fake ([`fake`] module).
#[cfg(feature = "fake")]
#[cfg_attr(docsrs, doc(cfg(feature = "fake")))]
pub use api_core::fake::Fault;
pub use api_core::{FixedClock, RetryPolicy};

pub use api_core::Token;
pub use client::{Client, ClientBuilder, DEFAULT_BASE_URL};
pub use error::{ApiError, Error};
pub use jsonapi::{Document, Query, Resource};
pub use types::*;
