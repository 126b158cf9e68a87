//! Catalogs (lists) and their elements: `GET/POST/PATCH /api/v4/catalogs[/{id}]`,
//! `GET/POST/PATCH /api/v4/catalogs/{id}/elements[/{element_id}]`.
//!
//! Shapes: `../shared/openapi/kommo-community.yaml` (community-made from amoCRM's API reference: `Catalog`,
//! `CatalogCreateItem`, `CatalogUpdateItem`, `CatalogElement`, `CatalogElementCreateItem`,
//! `CatalogElementUpdateItem`, lists under `_embedded.catalogs` / `_embedded.elements`), and the PHP library
//! (`EntitiesServices/Catalogs.php`, `CatalogElements.php`).

use api_core::Request;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::{
    CatalogElementId, CatalogId, Client, CustomFieldValues, Error, FieldValueWrite, ListPage, ListParams,
    common::{WriteResult, batch_write},
};

api_core::open_enum! {
    /// A catalog's type.
    CatalogType {
        /// A user list.
        Regular = "regular",
        /// Invoices.
        Invoices = "invoices",
        /// Products.
        Products = "products",
    }
}

/// A catalog as read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Catalog {
    /// Id.
    pub id: CatalogId,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Type.
    #[serde(default, rename = "type")]
    pub kind: Option<CatalogType>,
    /// Sort order.
    #[serde(default, deserialize_with = "crate::de::opt_i64")]
    pub sort: Option<i64>,
    /// Elements can be added.
    #[serde(default, deserialize_with = "crate::de::lenient_bool")]
    pub can_add_elements: bool,
    /// Shown in entity cards.
    #[serde(default, deserialize_with = "crate::de::lenient_bool")]
    pub can_show_in_cards: bool,
    /// One element can link to several entities.
    #[serde(default, deserialize_with = "crate::de::lenient_bool")]
    pub can_link_multiple: bool,
    /// Can be deleted.
    #[serde(default, deserialize_with = "crate::de::lenient_bool")]
    pub can_be_deleted: bool,
    /// Other members (`created_at`, `created_by`, `sdk_widget_code`, `account_id`, `_links`...).
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// A catalog to create (`CatalogCreateItem`) or change (`CatalogUpdateItem`, with `id`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[must_use]
pub struct CatalogWrite {
    /// The catalog (updates only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<CatalogId>,
    /// Name (required on create).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Type (create only; default `regular`).
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<CatalogType>,
    /// Sort order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sort: Option<i64>,
    /// Elements can be added.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub can_add_elements: Option<bool>,
    /// One element can link to several entities.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub can_link_multiple: Option<bool>,
    /// Echoed back (the client sets the index when `None`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl CatalogWrite {
    /// A new catalog named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: Some(name.into()), ..Self::default() }
    }
    /// Changes to catalog `id`.
    pub fn update(id: CatalogId) -> Self {
        Self { id: Some(id), ..Self::default() }
    }
    /// Sets the name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// Sets the type.
    pub fn kind(mut self, kind: CatalogType) -> Self {
        self.kind = Some(kind);
        self
    }
}

/// A catalog element as read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatalogElement {
    /// Id.
    pub id: CatalogElementId,
    /// Its catalog.
    #[serde(default)]
    pub catalog_id: Option<CatalogId>,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Deleted.
    #[serde(default, deserialize_with = "crate::de::lenient_bool")]
    pub is_deleted: bool,
    /// Custom field values (`null` decodes as empty).
    #[serde(default, deserialize_with = "crate::de::null_as_empty")]
    pub custom_fields_values: Vec<CustomFieldValues>,
    /// Other members (`created_at`, `updated_at`, `account_id`, `_embedded`, `_links`...).
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl crate::CustomFieldsExt for CatalogElement {
    fn custom_fields(&self) -> &[CustomFieldValues] {
        &self.custom_fields_values
    }
}

/// An element to create (`CatalogElementCreateItem`) or change (`CatalogElementUpdateItem`, with `id`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[must_use]
pub struct ElementWrite {
    /// The element (updates only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<CatalogElementId>,
    /// Name (required on create).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Custom field values.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub custom_fields_values: Vec<FieldValueWrite>,
    /// Echoed back (the client sets the index when `None`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl ElementWrite {
    /// A new element named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: Some(name.into()), ..Self::default() }
    }
    /// Changes to element `id`.
    pub fn update(id: CatalogElementId) -> Self {
        Self { id: Some(id), ..Self::default() }
    }
    /// Sets the name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// Adds a custom field value.
    pub fn field(mut self, value: FieldValueWrite) -> Self {
        self.custom_fields_values.push(value);
        self
    }
}

fn check_ids<I>(items: &[I], has_id: impl Fn(&I) -> bool, want: bool, what: &str) -> Result<(), Error> {
    match items.iter().position(|i| has_id(i) != want) {
        Some(n) if want => Err(Error::InvalidRequest(format!("{what} update #{n} has no id"))),
        Some(n) => Err(Error::InvalidRequest(format!("{what} #{n} to create has an id"))),
        None => Ok(()),
    }
}

/// Catalog operations: `client.catalogs()`.
#[derive(Debug, Clone, Copy)]
pub struct Catalogs<'a> {
    pub(crate) client: &'a Client,
}

impl<'a> Catalogs<'a> {
    /// One page of catalogs (`GET /api/v4/catalogs`; 204 = empty page).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn list(&self, params: &ListParams, page: u32) -> Result<ListPage<Catalog>, Error> {
        self.client.list_page("/api/v4/catalogs", "catalogs", params, page).await
    }

    /// Every catalog, lazily.
    pub fn stream(&self, params: ListParams) -> BoxStream<'static, Result<Catalog, Error>> {
        self.client.stream_list("/api/v4/catalogs".into(), "catalogs", params)
    }

    /// `GET /api/v4/catalogs/{id}`.
    ///
    /// # Errors
    /// See [`Error`]; [`Error::is_not_found`] for an unknown id.
    pub async fn get(&self, id: CatalogId) -> Result<Catalog, Error> {
        self.client.get_one(Request::get(format!("/api/v4/catalogs/{id}"))).await
    }

    /// `POST /api/v4/catalogs` in chunks of 50; results in input order.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] when an item has an id or no name; see [`Error`].
    pub async fn create(&self, items: &[CatalogWrite]) -> Result<Vec<WriteResult>, Error> {
        check_ids(items, |c| c.id.is_some(), false, "catalog")?;
        if let Some(n) = items.iter().position(|c| c.name.is_none()) {
            return Err(Error::InvalidRequest(format!("catalog #{n} to create has no name")));
        }
        batch_write(self.client, http::Method::POST, "/api/v4/catalogs", "catalogs", items).await
    }

    /// `PATCH /api/v4/catalogs` in chunks of 50; results in input order.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] when an item has no id; see [`Error`].
    pub async fn update(&self, items: &[CatalogWrite]) -> Result<Vec<WriteResult>, Error> {
        check_ids(items, |c| c.id.is_some(), true, "catalog")?;
        batch_write(self.client, http::Method::PATCH, "/api/v4/catalogs", "catalogs", items).await
    }

    /// The elements of catalog `id`.
    #[must_use]
    pub fn elements(&self, id: CatalogId) -> CatalogElements<'a> {
        CatalogElements { client: self.client, catalog: id }
    }
}

/// Element operations of one catalog: `client.catalogs().elements(id)`.
#[derive(Debug, Clone, Copy)]
pub struct CatalogElements<'a> {
    pub(crate) client: &'a Client,
    pub(crate) catalog: CatalogId,
}

impl CatalogElements<'_> {
    fn path(&self) -> String {
        format!("/api/v4/catalogs/{}/elements", self.catalog)
    }

    /// One page of elements (`GET /api/v4/catalogs/{id}/elements`; `query`, `filter[id]`; 204 = empty page).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn list(&self, params: &ListParams, page: u32) -> Result<ListPage<CatalogElement>, Error> {
        self.client.list_page(&self.path(), "elements", params, page).await
    }

    /// Every element matching `params`, lazily.
    pub fn stream(&self, params: ListParams) -> BoxStream<'static, Result<CatalogElement, Error>> {
        self.client.stream_list(self.path(), "elements", params)
    }

    /// `GET /api/v4/catalogs/{id}/elements/{element_id}`.
    ///
    /// # Errors
    /// See [`Error`]; [`Error::is_not_found`] for an unknown id.
    pub async fn get(&self, id: CatalogElementId) -> Result<CatalogElement, Error> {
        self.client.get_one(Request::get(format!("{}/{id}", self.path()))).await
    }

    /// `POST /api/v4/catalogs/{id}/elements` in chunks of 50; results in input order.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] when an item has an id or no name; see [`Error`].
    pub async fn create(&self, items: &[ElementWrite]) -> Result<Vec<WriteResult>, Error> {
        check_ids(items, |e| e.id.is_some(), false, "element")?;
        if let Some(n) = items.iter().position(|e| e.name.is_none()) {
            return Err(Error::InvalidRequest(format!("element #{n} to create has no name")));
        }
        batch_write(self.client, http::Method::POST, &self.path(), "elements", items).await
    }

    /// `PATCH /api/v4/catalogs/{id}/elements` in chunks of 50; results in input order.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] when an item has no id; see [`Error`].
    pub async fn update(&self, items: &[ElementWrite]) -> Result<Vec<WriteResult>, Error> {
        check_ids(items, |e| e.id.is_some(), true, "element")?;
        batch_write(self.client, http::Method::PATCH, &self.path(), "elements", items).await
    }
}
