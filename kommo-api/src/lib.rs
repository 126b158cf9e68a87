//! Typed async client for the Kommo (amoCRM) API v4, with OAuth token rotation, rate limiting and webhook parsing.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
// `Error` keeps the whole failed response (status, headers of interest, raw body, parsed problem) so callers can
// log and reschedule without another request; it is only built on the cold path.
#![allow(clippy::result_large_err)]

pub mod client;
pub mod common;
pub mod companies;
pub mod contacts;
pub mod custom_fields;
mod de;
pub mod error;
#[cfg(feature = "fake")]
pub mod fake;
pub mod hal;
pub mod ids;
pub mod leads;
pub mod links;
pub mod notes;
pub mod oauth;
pub mod pipelines;
pub mod tasks;
pub mod time;
pub mod users;
pub mod webhook;

pub use api_core::{Auth, FileTokenStore, MemoryTokenStore, OAuthSession, RetryPolicy, Token, TokenSet, TokenStore};
pub use client::{Client, ClientBuilder};
pub use common::{EntityType, Tag, TagRef, WriteResult};
pub use custom_fields::{CustomField, CustomFieldValues, CustomFieldsExt, FieldType, FieldValueWrite, TypedValue};
pub use error::{Error, FieldError, Problem, ValidationErrors};
pub use hal::{ListPage, ListParams, Order};
pub use ids::*;

impl Client {
    /// Leads.
    #[must_use]
    pub fn leads(&self) -> leads::Leads<'_> {
        leads::Leads { client: self }
    }

    /// Contacts.
    #[must_use]
    pub fn contacts(&self) -> contacts::Contacts<'_> {
        contacts::Contacts { client: self }
    }

    /// Companies.
    #[must_use]
    pub fn companies(&self) -> companies::Companies<'_> {
        companies::Companies { client: self }
    }

    /// Notes on one entity type.
    #[must_use]
    pub fn notes(&self, entity: EntityType) -> notes::Notes<'_> {
        notes::Notes { client: self, entity }
    }

    /// Tasks.
    #[must_use]
    pub fn tasks(&self) -> tasks::Tasks<'_> {
        tasks::Tasks { client: self }
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

    /// Tags and links of one entity type.
    #[must_use]
    pub fn entity(&self, entity: EntityType) -> links::EntityOps<'_> {
        links::EntityOps { client: self, entity }
    }
}
