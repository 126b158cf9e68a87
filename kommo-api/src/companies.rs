//! Companies: `GET/POST/PATCH /api/v4/companies`.

use serde::{Deserialize, Serialize};

use crate::{
    CompanyId, UserId,
    common::{Tag, TagRef},
    contacts::EmbeddedId,
    custom_fields::FieldValueWrite,
    entity::{Expandable, Service, entity, read_model, write_setters},
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

impl CompanyEmbeddedWrite {
    fn is_empty(&self) -> bool {
        self.tags.is_empty()
    }
}

/// A company to create.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[must_use]
pub struct NewCompany {
    /// Name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Responsible user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub responsible_user_id: Option<UserId>,
    /// Custom field values.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub custom_fields_values: Vec<FieldValueWrite>,
    /// Tags.
    #[serde(rename = "_embedded", skip_serializing_if = "CompanyEmbeddedWrite::is_empty")]
    pub embedded: CompanyEmbeddedWrite,
    /// Echoed back (set to the index when `None`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

write_setters!(NewCompany { responsible, field, tag, request_id });
write_setters!(CompanyUpdate { name, responsible, field, request_id });

impl NewCompany {
    /// A company named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: Some(name.into()), ..Self::default() }
    }
}

/// Changes to a company.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[must_use]
pub struct CompanyUpdate {
    /// The company.
    pub id: CompanyId,
    /// Name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Responsible user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub responsible_user_id: Option<UserId>,
    /// Custom field values.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub custom_fields_values: Vec<FieldValueWrite>,
    /// Echoed back in batch responses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
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
