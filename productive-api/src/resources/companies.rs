//! Companies (`/companies`): find by name, get, create.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{
    Client, Error,
    jsonapi::{Document, Query, Resource, WriteDocument},
    types::{CompanyId, ResourceType},
};

/// A company's attributes (P-old companies.html; unknown attributes kept in `extra`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CompanyAttributes {
    /// Name.
    #[serde(deserialize_with = "crate::types::null_as_default")]
    pub name: String,
    /// Billing name.
    pub billing_name: Option<String>,
    /// VAT number.
    pub vat: Option<String>,
    /// Default currency (`EUR`).
    pub default_currency: Option<String>,
    /// Company code (auto-generated when omitted).
    pub company_code: Option<String>,
    /// Domain.
    pub domain: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Payment due days.
    pub due_days: Option<u32>,
    /// Tags.
    #[serde(deserialize_with = "crate::types::null_as_default")]
    pub tag_list: Vec<String>,
    /// Contact info (emails, phones, websites, addresses), as sent.
    pub contact: Option<Value>,
    /// Custom fields by id.
    pub custom_fields: Option<Value>,
    /// Creation time (`2025-09-23T06:07:15.649+02:00`).
    pub created_at: Option<String>,
    /// When archived.
    pub archived_at: Option<String>,
    /// External id (used by integrations).
    pub external_id: Option<String>,
    /// Unknown attributes.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ResourceType for CompanyAttributes {
    const TYPE: &'static str = "companies";
    type Id = CompanyId;
}

/// A company resource.
pub type Company = Resource<CompanyAttributes>;

/// `POST /companies` body attributes; only the fields set are sent.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct NewCompany {
    /// Name (required).
    pub name: String,
    /// Billing name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub billing_name: Option<String>,
    /// Default currency.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_currency: Option<String>,
    /// Company code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub company_code: Option<String>,
    /// Domain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// VAT number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vat: Option<String>,
    /// Description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Tags.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tag_list: Vec<String>,
    /// Custom fields by id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_fields: Option<Value>,
    /// Any other attributes, sent as given.
    #[serde(skip)]
    pub extra: Map<String, Value>,
}

impl NewCompany {
    /// A company with a name.
    #[must_use]
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into(), ..Self::default() }
    }

    /// The JSON:API body.
    ///
    /// # Errors
    /// Serialization failure.
    pub fn to_document(&self) -> Result<WriteDocument, Error> {
        Ok(super::merge_extra(WriteDocument::create(CompanyAttributes::TYPE).attributes(self)?, &self.extra))
    }
}

super::collection!(
    list_companies,
    stream_companies,
    "/companies",
    CompanyAttributes,
    "companies",
    "Filters: `name`, `status` (1 active, 2 archived), `company_code`, `project_id`, … (api-notes productive.md §4 Companies)."
);

impl Client {
    /// `GET /companies/{id}`.
    ///
    /// # Errors
    /// See [`Error`]; a missing company is a 404 ([`Error::is_not_found`]).
    pub async fn get_company(&self, id: &CompanyId) -> Result<Document<Company>, Error> {
        self.get_resource(&format!("/companies/{id}"), &Query::new()).await
    }

    /// Companies whose name is exactly `name` (`filter[name]=…`; Productive matches case-insensitively on some
    /// accounts, so the result is re-checked here), first match. Archived companies are included by the API only
    /// with `filter[status]=2`.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn find_company_by_name(&self, name: &str) -> Result<Option<Company>, Error> {
        let all = self.all::<CompanyAttributes>("/companies", Query::new().filter("name", name)).await?;
        let exact = all.iter().position(|c| c.attributes.name == name);
        let ci = all.iter().position(|c| c.attributes.name.eq_ignore_ascii_case(name));
        Ok(exact.or(ci).map(|i| all[i].clone()))
    }

    /// `POST /companies`.
    ///
    /// # Errors
    /// See [`Error`]; validation failures are 422 with the JSON:API error document.
    pub async fn create_company(&self, company: &NewCompany) -> Result<Company, Error> {
        Ok(self.post_document("/companies", &company.to_document()?).await?.data)
    }

    /// `PATCH /companies/{id}` with the given attributes (only those are changed).
    ///
    /// # Errors
    /// See [`Error`]; a missing company is a 404, an invalid value a 422.
    pub async fn update_company(&self, id: &CompanyId, attributes: &Map<String, Value>) -> Result<Company, Error> {
        let doc = super::merge_extra(WriteDocument::update(CompanyAttributes::TYPE, id), attributes);
        Ok(self.patch_document(&format!("/companies/{id}"), &doc).await?.data)
    }

    /// `PATCH /companies/{id}/archive` (community OpenAPI); the answer is the archived company (`archived_at` set).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn archive_company(&self, id: &CompanyId) -> Result<Company, Error> {
        Ok(self.patch_action(CompanyAttributes::TYPE, id, "archive", &Map::new()).await?.data)
    }

    /// `PATCH /companies/{id}/restore` (community OpenAPI): un-archives.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn restore_company(&self, id: &CompanyId) -> Result<Company, Error> {
        Ok(self.patch_action(CompanyAttributes::TYPE, id, "restore", &Map::new()).await?.data)
    }
}
