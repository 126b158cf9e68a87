//! Custom fields (`/custom_fields`) and the options of select fields (`/custom_field_options`): get, list one
//! page, stream. Values live in each resource's `custom_fields` attribute, keyed by custom field id.
//!
//! Sources: community OpenAPI `/custom_fields` (filters `name`, `project_id`, `customizable_type`, `archived`,
//! `global`), `/custom_fields/{id}`, `/custom_field_options` (filters `custom_field_id`, `archived`),
//! `/custom_field_options/{id}`; developer.productive.io/bookings.html ("Working with custom fields"). Attribute
//! names beyond `name`, `customizable_type` and `archived_at` are **unverified** (no sample body found; unknown ones
//! kept in `extra`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{
    Client, Error,
    jsonapi::{Document, Query, Resource},
    types::{CustomFieldId, CustomFieldOptionId, ResourceType, rel_id},
};

/// A custom field's attributes.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CustomFieldAttributes {
    /// Name.
    #[serde(deserialize_with = "crate::types::null_as_default")]
    pub name: String,
    /// Which resource type it belongs to (`Deals`, `Tasks`, … as sent).
    pub customizable_type: Option<String>,
    /// Data type id, as sent.
    pub data_type_id: Option<u64>,
    /// Whether required.
    pub required: Option<bool>,
    /// Whether global (all projects).
    pub global: Option<bool>,
    /// Position.
    pub position: Option<i64>,
    /// When archived.
    pub archived_at: Option<String>,
    /// Unknown attributes.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ResourceType for CustomFieldAttributes {
    const TYPE: &'static str = "custom_fields";
    type Id = CustomFieldId;
}

/// A custom field resource.
pub type CustomField = Resource<CustomFieldAttributes>;

/// A custom field option's attributes.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CustomFieldOptionAttributes {
    /// Name (the select value shown).
    #[serde(deserialize_with = "crate::types::null_as_default")]
    pub name: String,
    /// Position.
    pub position: Option<i64>,
    /// Color id.
    pub color_id: Option<u64>,
    /// When archived.
    pub archived_at: Option<String>,
    /// Unknown attributes.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ResourceType for CustomFieldOptionAttributes {
    const TYPE: &'static str = "custom_field_options";
    type Id = CustomFieldOptionId;
}

/// A custom field option resource.
pub type CustomFieldOption = Resource<CustomFieldOptionAttributes>;

impl Resource<CustomFieldOptionAttributes> {
    /// The `custom_field` relationship id.
    #[must_use]
    pub fn custom_field_id(&self) -> Option<CustomFieldId> {
        rel_id(self, "custom_field")
    }
}

super::collection!(
    list_custom_fields,
    stream_custom_fields,
    "/custom_fields",
    CustomFieldAttributes,
    "custom fields",
    "Filters: `name`, `project_id`, `customizable_type`, `archived`, `global` (community OpenAPI `/custom_fields`)."
);
super::collection!(
    list_custom_field_options,
    stream_custom_field_options,
    "/custom_field_options",
    CustomFieldOptionAttributes,
    "custom field options",
    "Filters: `custom_field_id`, `archived` (community OpenAPI `/custom_field_options`)."
);

impl Client {
    /// `GET /custom_fields/{id}` (e.g. with `include=options`).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn get_custom_field(&self, id: &CustomFieldId, query: &Query) -> Result<Document<CustomField>, Error> {
        self.get_resource(&format!("/custom_fields/{id}"), query).await
    }

    /// `GET /custom_field_options/{id}`.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn get_custom_field_option(
        &self,
        id: &CustomFieldOptionId,
    ) -> Result<Document<CustomFieldOption>, Error> {
        self.get_resource(&format!("/custom_field_options/{id}"), &Query::new()).await
    }

    /// Every option of a select custom field (`filter[custom_field_id]`, all pages), collected.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn options_of_custom_field(&self, field: &CustomFieldId) -> Result<Vec<CustomFieldOption>, Error> {
        self.all("/custom_field_options", Query::new().filter("custom_field_id", field)).await
    }
}
