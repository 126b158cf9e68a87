//! Companies: `GET/POST/PATCH /api/v4/companies`.

use api_core::Request;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::{
    Client, CompanyId, Error, GroupId, ListPage, ListParams, UserId,
    common::{Tag, TagRef, WriteResult, batch_write},
    contacts::EmbeddedId,
    custom_fields::{CustomFieldValues, CustomFieldsExt, FieldValueWrite},
    ids::{AccountId, ContactId, LeadId},
    leads::Updated,
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

impl NewCompany {
    /// A company named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: Some(name.into()), ..Self::default() }
    }
    /// Adds a custom field value.
    pub fn field(mut self, value: FieldValueWrite) -> Self {
        self.custom_fields_values.push(value);
        self
    }
    /// Sets the responsible user.
    pub fn responsible(mut self, user: UserId) -> Self {
        self.responsible_user_id = Some(user);
        self
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

/// Company operations: `client.companies()`.
#[derive(Debug, Clone, Copy)]
pub struct Companies<'a> {
    pub(crate) client: &'a Client,
}

impl Companies<'_> {
    /// `GET /api/v4/companies/{id}`.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn get(&self, id: CompanyId, with: &[&str]) -> Result<Company, Error> {
        let mut req = Request::get(format!("/api/v4/companies/{id}"));
        if !with.is_empty() {
            req = req.query("with", with.join(","));
        }
        self.client.get_one(req).await
    }

    /// One page of `GET /api/v4/companies`.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn list_page(&self, params: &ListParams, page: u32) -> Result<ListPage<Company>, Error> {
        self.client.list_page("/api/v4/companies", "companies", params, page).await
    }

    /// Every company matching `params`, lazily.
    pub fn list(&self, params: ListParams) -> BoxStream<'static, Result<Company, Error>> {
        self.client.stream_list("/api/v4/companies".into(), "companies", params)
    }

    /// `GET /api/v4/companies?query=<q>` (first page).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn search(&self, query: &str) -> Result<Vec<Company>, Error> {
        Ok(self.list_page(&ListParams::new().query(query), 1).await?.items)
    }

    /// `POST /api/v4/companies` in chunks of 50.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn create(&self, companies: &[NewCompany]) -> Result<Vec<WriteResult>, Error> {
        batch_write(self.client, http::Method::POST, "/api/v4/companies", "companies", companies).await
    }

    /// Creates one company.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn create_one(&self, company: NewCompany) -> Result<CompanyId, Error> {
        let r = self.create(std::slice::from_ref(&company)).await?;
        r.first().map(|r| CompanyId(r.id)).ok_or_else(|| Error::InvalidRequest("Kommo returned no company".into()))
    }

    /// `PATCH /api/v4/companies/{id}`.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn update(&self, update: &CompanyUpdate) -> Result<Updated, Error> {
        let req = Request::patch(format!("/api/v4/companies/{}", update.id))
            .json(update)
            .map_err(|e| Error::InvalidRequest(e.to_string()))?
            .idempotent(true);
        self.client.send_json(req).await
    }
}
