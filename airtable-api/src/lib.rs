#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
//! Typed async Airtable Web API client: records, upsert, metadata, webhooks, the cursor payload feed and MAC
//! verification.
//!
//! - [`Client`]: personal access token (Bearer), base URL override, Airtable's limits enforced client-side
//!   (5 requests/s per base with headroom for jitter — [`limit`] — and 50/s per token, shared by clones), a 30 s hold
//!   on a base after a 429 shared by every clone,
//!   5xx retried with jitter for idempotent calls, typed [`Error`]s keeping Airtable's error body.
//! - [`records`]: list as a lazy stream (GET, or `POST …/listRecords` for long formulas), get, create, update
//!   (PATCH/PUT), upsert (`performUpsert`), delete — batches chunked at 10 per request.
//! - [`formula`]: `filterByFormula` expressions with correct escaping ([`Formula`], [`field_eq`]).
//! - [`cell`]: [`CellValue`], [`Fields`], [`Record`] with typed accessors and serde (de)serialization of your structs.
//! - [`metadata`]: `whoami`, bases (page and stream), the base schema, creating bases, tables and fields and
//!   updating tables and fields.
//! - [`comments`]: record comments (list page and stream, create, update, delete).
//! - [`attachments`]: `uploadAttachment` (files up to 5 MB, base64, on `content.airtable.com`).
//! - [`webhook`]: create/list/refresh/delete/enable, the ping and its `X-Airtable-Content-MAC`, the payload feed.
//! - `fake` (feature `fake`): a stateful in-process Airtable for tests and demos.
//!
//! ```no_run
//! # async fn demo() -> Result<(), airtable_client::Error> {
//! use airtable_client::{Client, Fields, WriteOptions};
//! use futures::TryStreamExt as _;
//!
//! let client = Client::builder().token("patXXXX.YYYY").build()?;
//! let contacts = client.table("appXXXXXXXXXXXXXX", "tblXXXXXXXXXXXXXX");
//! let result = contacts
//!     .upsert(&[Fields::new().with("Email", "a@example.com").with("Name", "Ada")], &["Email"], WriteOptions::default())
//!     .await?;
//! println!("created {:?}, updated {:?}", result.created_records, result.updated_records);
//! let active: Vec<_> =
//!     contacts.list().filter_by_formula(airtable_client::field_eq("Status", "Active")).stream().try_collect().await?;
//! # let _ = active;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod attachments;
pub mod cell;
pub mod client;
pub mod comments;
pub mod error;
#[cfg(feature = "fake")]
#[cfg_attr(docsrs, doc(cfg(feature = "fake")))]
pub mod fake;
pub mod formula;
pub mod ids;
pub mod limit;
pub mod metadata;
pub mod records;
pub mod webhook;

/// The shared plumbing this crate is built on, re-exported so that users name its types through this crate and
/// need not depend on `api-core` (at the matching version) themselves.
pub use api_core;
/// Fault injection for the fake ([`fake`] module).
#[cfg(feature = "fake")]
#[cfg_attr(docsrs, doc(cfg(feature = "fake")))]
pub use api_core::fake::Fault;
pub use api_core::{FixedClock, RetryPolicy, Token};

pub use attachments::Upload;
pub use cell::{Attachment, CellValue, Collaborator, Fields, Record};
pub use client::{Client, ClientBuilder};
pub use comments::{Comment, CommentsPage, NewComment};
pub use error::{ApiError, Error, ErrorBody, ErrorField, ErrorType};
pub use formula::{Formula, field_eq};
pub use ids::{BaseId, CommentId, FieldId, RecordId, TableId, UserId, ViewId, WebhookId, WorkspaceId};
pub use limit::BaseLimiter;
pub use metadata::{
    BaseInfo, BaseSchema, BasesPage, CreateBase, CreatedBase, FieldConfig, FieldSchema, FieldType, TableConfig,
    TableSchema, TypedCell, UpdateField, UpdateTable, UserInfo,
};
pub use records::{
    CellFormat, Direction, ListRecords, ReadOptions, RecordPage, RecordUpdate, Table, UpsertResult, WriteOptions,
};
pub use webhook::{
    ActionSource, CreateWebhook, CreatedWebhook, CursoredPayload, MacSecret, PayloadCellValue, PayloadFeed, PayloadGap,
    PayloadsPage, PreviousValue, RecordChange, Webhook, WebhookNotification, WebhookPayload, WebhookSpecification,
    verify_mac,
};
