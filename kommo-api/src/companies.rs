//! Companies: `GET/POST/PATCH /api/v4/companies`.

use serde::{Deserialize, Serialize};

use crate::{
    CompanyId,
    common::{Tag, TagRef},
    contacts::EmbeddedId,
    entity::{Expandable, Service, entity, read_model, write_setters, write_types},
    ids::{ContactId, LeadId},
};

read_model! {
    /// A company as read.
    Company with custom fields {
        /// Id.
        pub id: CompanyId,
        /// Name.
        #[serde(default)]
        pub name: String,
        /// `_embedded`.
        #[serde(default, rename = "_embedded", deserialize_with = "crate::de::object_or_default")]
        pub embedded: CompanyEmbedded,
    }
}

/// A company's `_embedded`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CompanyEmbedded {
    /// Tags.
    #[serde(default, deserialize_with = "crate::de::null_as_empty")]
    pub tags: Vec<Tag>,
    /// Contacts (with=contacts).
    #[serde(default, deserialize_with = "crate::de::null_as_empty")]
    pub contacts: Vec<EmbeddedId<ContactId>>,
    /// Leads (with=leads).
    #[serde(default, deserialize_with = "crate::de::null_as_empty")]
    pub leads: Vec<EmbeddedId<LeadId>>,
    /// Other members.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// `_embedded` of a company write.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CompanyEmbeddedWrite {
    /// Tags.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<TagRef>,
}

impl crate::entity::EmbeddedWrite for CompanyEmbeddedWrite {
    fn is_empty(&self) -> bool {
        self.tags.is_empty()
    }
}

write_types! {
    /// A company to create.
    #[derive(Default)]
    new NewCompany {}
    /// Changes to a company (batches: [`Companies::update_many`](crate::entity::Service::update_many)).
    update CompanyUpdate(CompanyId) {}
    both {
        /// Name.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub name: Option<String>,
    }
    with custom fields, embedded: CompanyEmbeddedWrite,
    setters [field, tag]
}

write_setters!(CompanyUpdate { name });

impl NewCompany {
    /// A company named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: Some(name.into()), ..Self::default() }
    }
}

/// Company operations: `client.companies()` (the shared [`Service`]).
pub type Companies<'a> = Service<'a, Company>;

entity!(
    Company,
    id: CompanyId,
    new: NewCompany,
    update: CompanyUpdate,
    path: "/api/v4/companies",
    key: "companies",
    name: "company"
);
impl Expandable for Company {}
