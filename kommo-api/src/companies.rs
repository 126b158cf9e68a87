//! Companies: `GET/POST/PATCH /api/v4/companies`.

use serde::{Deserialize, Serialize};

use crate::{
    CompanyId, GroupId, UserId,
    common::{Tag, TagRef},
    contacts::EmbeddedId,
    custom_fields::{CustomFieldValues, CustomFieldsExt, FieldValueWrite},
    entity::{Expandable, Service, entity, write_setters},
    ids::{AccountId, ContactId, LeadId},
};

/// A company as read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Company {
    /// Id.
    pub id: CompanyId,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Responsible user.
    #[serde(default)]
    pub responsible_user_id: Option<UserId>,
    /// Users group.
    #[serde(default)]
    pub group_id: Option<GroupId>,
    /// Creator.
    #[serde(default)]
    pub created_by: Option<UserId>,
    /// Last editor.
    #[serde(default)]
    pub updated_by: Option<UserId>,
    /// Created (Unix seconds).
    #[serde(default, deserialize_with = "crate::de::opt_i64")]
    pub created_at: Option<i64>,
    /// Updated (Unix seconds).
    #[serde(default, deserialize_with = "crate::de::opt_i64")]
    pub updated_at: Option<i64>,
    /// Deleted.
    #[serde(default, deserialize_with = "crate::de::lenient_bool")]
    pub is_deleted: bool,
    /// Custom field values.
    #[serde(default, deserialize_with = "crate::de::null_as_empty")]
    pub custom_fields_values: Vec<CustomFieldValues>,
    /// Account.
    #[serde(default)]
    pub account_id: Option<AccountId>,
    /// `_embedded`.
    #[serde(default, rename = "_embedded", deserialize_with = "crate::de::object_or_default")]
    pub embedded: CompanyEmbedded,
    /// Other members.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl CustomFieldsExt for Company {
    fn custom_fields(&self) -> &[CustomFieldValues] {
        &self.custom_fields_values
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
