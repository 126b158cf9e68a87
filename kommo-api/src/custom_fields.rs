//! Custom fields: values on entities (read and write models) and field definitions.
//!
//! Read: [`CustomFieldValues`] as Kommo returns them (`custom_fields_values: null` decodes as an empty list),
//! with [`CustomFieldValues::typed`] for a typed view per field type. Write: [`FieldValueWrite`] built with
//! constructors per type, which never echo read-only members (`field_name`, `field_type`, stray `enum_code`).

use std::fmt;

use futures::stream::BoxStream;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Client, CustomFieldId, EntityType, EnumId, Error, FieldGroupId, ListParams, StatusId, ids::PipelineId};

/// A custom field type. Unknown types round-trip through [`FieldType::Other`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FieldType {
    /// `text`.
    Text,
    /// `numeric`.
    Numeric,
    /// `checkbox`.
    Checkbox,
    /// `select`.
    Select,
    /// `multiselect`.
    Multiselect,
    /// `multitext` (phones, emails).
    Multitext,
    /// `date`.
    Date,
    /// `date_time`.
    DateTime,
    /// `birthday`.
    Birthday,
    /// `url`.
    Url,
    /// `textarea`.
    Textarea,
    /// `radiobutton`.
    Radiobutton,
    /// `streetaddress`.
    StreetAddress,
    /// `smart_address`.
    SmartAddress,
    /// `legal_entity`.
    LegalEntity,
    /// `price`.
    Price,
    /// `monetary`.
    Monetary,
    /// `tracking_data`.
    TrackingData,
    /// `linked_entity`.
    LinkedEntity,
    /// `chained_list`.
    ChainedList,
    /// `file`.
    File,
    /// `items`.
    Items,
    /// `category`.
    Category,
    /// Any other type, kept as sent.
    Other(String),
}

impl FieldType {
    /// The wire name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Self::Text => "text",
            Self::Numeric => "numeric",
            Self::Checkbox => "checkbox",
            Self::Select => "select",
            Self::Multiselect => "multiselect",
            Self::Multitext => "multitext",
            Self::Date => "date",
            Self::DateTime => "date_time",
            Self::Birthday => "birthday",
            Self::Url => "url",
            Self::Textarea => "textarea",
            Self::Radiobutton => "radiobutton",
            Self::StreetAddress => "streetaddress",
            Self::SmartAddress => "smart_address",
            Self::LegalEntity => "legal_entity",
            Self::Price => "price",
            Self::Monetary => "monetary",
            Self::TrackingData => "tracking_data",
            Self::LinkedEntity => "linked_entity",
            Self::ChainedList => "chained_list",
            Self::File => "file",
            Self::Items => "items",
            Self::Category => "category",
            Self::Other(s) => s,
        }
    }

    /// Parses a wire name.
    #[must_use]
    pub fn parse(s: &str) -> Self {
        match s {
            "text" => Self::Text,
            "numeric" => Self::Numeric,
            "checkbox" => Self::Checkbox,
            "select" => Self::Select,
            "multiselect" => Self::Multiselect,
            "multitext" => Self::Multitext,
            "date" => Self::Date,
            "date_time" => Self::DateTime,
            "birthday" => Self::Birthday,
            "url" => Self::Url,
            "textarea" => Self::Textarea,
            "radiobutton" => Self::Radiobutton,
            "streetaddress" => Self::StreetAddress,
            "smart_address" => Self::SmartAddress,
            "legal_entity" => Self::LegalEntity,
            "price" => Self::Price,
            "monetary" => Self::Monetary,
            "tracking_data" => Self::TrackingData,
            "linked_entity" => Self::LinkedEntity,
            "chained_list" => Self::ChainedList,
            "file" => Self::File,
            "items" => Self::Items,
            "category" => Self::Category,
            other => Self::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for FieldType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for FieldType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // the K-docs table says "int"; real responses send the type name
        Ok(match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) => Self::parse(&s),
            other => Self::Other(other.to_string()),
        })
    }
}

/// One value inside [`CustomFieldValues::values`]: `{"value": ..., "enum_id": ..., "enum_code": ...}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FieldValue {
    /// The value as sent (string, number, bool or an object for complex types).
    #[serde(default)]
    pub value: serde_json::Value,
    /// The enum (option) id for select-like and multitext fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enum_id: Option<EnumId>,
    /// The enum code (`WORK`, `MOB`...) of multitext fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enum_code: Option<String>,
    /// Other members (`catalog_id`, `catalog_element_id` of chained lists...).
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl FieldValue {
    /// The value as text (numbers and bools are formatted).
    #[must_use]
    pub fn as_text(&self) -> Option<String> {
        match &self.value {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            serde_json::Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// The value as a number (numeric strings accepted).
    #[must_use]
    pub fn as_f64(&self) -> Option<f64> {
        match &self.value {
            serde_json::Value::Number(n) => n.as_f64(),
            serde_json::Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// The value as a boolean (checkbox): `true`, `1`, `"1"`, `"true"`.
    #[must_use]
    pub fn as_bool(&self) -> Option<bool> {
        match &self.value {
            serde_json::Value::Bool(b) => Some(*b),
            serde_json::Value::Number(n) => n.as_f64().map(|f| f != 0.0),
            serde_json::Value::String(s) => match s.trim() {
                "1" | "true" => Some(true),
                "0" | "false" | "" => Some(false),
                _ => None,
            },
            _ => None,
        }
    }

    /// The value as Unix seconds (date fields): a number, a numeric string, or an RFC 3339 string.
    #[must_use]
    pub fn as_unix(&self) -> Option<i64> {
        match &self.value {
            serde_json::Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(f64_to_i64)),
            serde_json::Value::String(s) => crate::time::parse_kommo_time(s),
            _ => None,
        }
    }
}

#[allow(clippy::cast_possible_truncation)]
fn f64_to_i64(f: f64) -> i64 {
    f.round() as i64
}

/// A custom field's values on an entity, as read: `{field_id, field_name, field_code, field_type, values}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CustomFieldValues {
    /// The field id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_id: Option<CustomFieldId>,
    /// The field name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_name: Option<String>,
    /// The field code (`PHONE`, `EMAIL`, `POSITION`...), `null` for user fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_code: Option<String>,
    /// The field type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_type: Option<FieldType>,
    /// The values (`null` decodes as empty).
    #[serde(default, deserialize_with = "crate::de::null_as_empty")]
    pub values: Vec<FieldValue>,
}

/// A typed view of a field's values, chosen by its `field_type`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum TypedValue {
    /// `text`, `textarea`, `url`, `streetaddress`.
    Text(String),
    /// `numeric`, `monetary`, `price`.
    Numeric(f64),
    /// `checkbox`.
    Checkbox(bool),
    /// `select`, `radiobutton`, `category`.
    Select {
        /// Option id.
        enum_id: Option<EnumId>,
        /// Option text.
        value: String,
    },
    /// `multiselect`: `(enum_id, value)` pairs.
    Multiselect(Vec<(Option<EnumId>, String)>),
    /// `multitext` (phones, emails): `(value, enum_code)` pairs.
    Multitext(Vec<(String, Option<String>)>),
    /// `date`, `birthday`: Unix seconds.
    Date(i64),
    /// `date_time`: Unix seconds.
    DateTime(i64),
    /// Any other type, or a value that does not match its type.
    Other(Vec<FieldValue>),
}

impl CustomFieldValues {
    /// The first value, if any.
    #[must_use]
    pub fn first(&self) -> Option<&FieldValue> {
        self.values.first()
    }

    /// The first value as text.
    #[must_use]
    pub fn text(&self) -> Option<String> {
        self.first().and_then(FieldValue::as_text)
    }

    /// A typed view per `field_type`.
    #[must_use]
    pub fn typed(&self) -> TypedValue {
        let other = || TypedValue::Other(self.values.clone());
        let Some(first) = self.first() else { return other() };
        match self.field_type.as_ref() {
            Some(FieldType::Text | FieldType::Textarea | FieldType::Url | FieldType::StreetAddress) => {
                first.as_text().map_or_else(other, TypedValue::Text)
            }
            Some(FieldType::Numeric | FieldType::Monetary | FieldType::Price) => {
                first.as_f64().map_or_else(other, TypedValue::Numeric)
            }
            Some(FieldType::Checkbox) => first.as_bool().map_or_else(other, TypedValue::Checkbox),
            Some(FieldType::Select | FieldType::Radiobutton | FieldType::Category) => {
                TypedValue::Select { enum_id: first.enum_id, value: first.as_text().unwrap_or_default() }
            }
            Some(FieldType::Multiselect) => TypedValue::Multiselect(
                self.values.iter().map(|v| (v.enum_id, v.as_text().unwrap_or_default())).collect(),
            ),
            Some(FieldType::Multitext) => TypedValue::Multitext(
                self.values.iter().map(|v| (v.as_text().unwrap_or_default(), v.enum_code.clone())).collect(),
            ),
            Some(FieldType::Date | FieldType::Birthday) => first.as_unix().map_or_else(other, TypedValue::Date),
            Some(FieldType::DateTime) => first.as_unix().map_or_else(other, TypedValue::DateTime),
            _ => other(),
        }
    }
}

/// Lookups on an entity's `custom_fields_values`.
pub trait CustomFieldsExt {
    /// The entity's custom field values.
    fn custom_fields(&self) -> &[CustomFieldValues];

    /// The field with this id.
    fn custom_field(&self, id: CustomFieldId) -> Option<&CustomFieldValues> {
        self.custom_fields().iter().find(|f| f.field_id == Some(id))
    }

    /// The field with this code (`EMAIL`, `PHONE`...), case-insensitive.
    fn custom_field_by_code(&self, code: &str) -> Option<&CustomFieldValues> {
        self.custom_fields().iter().find(|f| f.field_code.as_deref().is_some_and(|c| c.eq_ignore_ascii_case(code)))
    }

    /// All text values of the field with this code (every email of a contact with `"EMAIL"`).
    fn values_by_code(&self, code: &str) -> Vec<String> {
        self.custom_field_by_code(code)
            .map(|f| f.values.iter().filter_map(FieldValue::as_text).collect())
            .unwrap_or_default()
    }
}

/// Which field a write targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldRef {
    /// By id.
    Id(CustomFieldId),
    /// By code (`PHONE`, `EMAIL`).
    Code(String),
}

/// One value to write.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WriteValue {
    /// The value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
    /// An option id (select, multiselect, radiobutton).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enum_id: Option<EnumId>,
    /// An enum code (multitext: `WORK`, `MOB`...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enum_code: Option<String>,
}

/// A custom field value to write: `{"field_id": 1, "values": [...]}` or `{"field_code": "EMAIL", ...}`;
/// `values: null` clears the field.
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub struct FieldValueWrite {
    /// The field.
    pub field: FieldRef,
    /// The values, `None` to clear.
    pub values: Option<Vec<WriteValue>>,
}

impl Serialize for FieldValueWrite {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(2))?;
        match &self.field {
            FieldRef::Id(id) => m.serialize_entry("field_id", id)?,
            FieldRef::Code(c) => m.serialize_entry("field_code", c)?,
        }
        m.serialize_entry("values", &self.values)?;
        m.end()
    }
}

impl FieldValueWrite {
    fn one(field: FieldRef, v: WriteValue) -> Self {
        Self { field, values: Some(vec![v]) }
    }

    /// A text, textarea or url value.
    pub fn text(id: CustomFieldId, text: impl Into<String>) -> Self {
        Self::one(FieldRef::Id(id), WriteValue { value: Some(text.into().into()), ..WriteValue::default() })
    }

    /// A numeric value (sent as a JSON number; Kommo also accepts strings).
    pub fn numeric(id: CustomFieldId, n: f64) -> Self {
        let value = serde_json::Number::from_f64(n).map_or(serde_json::Value::Null, serde_json::Value::Number);
        Self::one(FieldRef::Id(id), WriteValue { value: Some(value), ..WriteValue::default() })
    }

    /// A checkbox value.
    pub fn checkbox(id: CustomFieldId, checked: bool) -> Self {
        Self::one(FieldRef::Id(id), WriteValue { value: Some(checked.into()), ..WriteValue::default() })
    }

    /// A date, date_time or birthday value, written as Unix seconds (what Kommo returns on read).
    pub fn date(id: CustomFieldId, unix_seconds: i64) -> Self {
        Self::one(FieldRef::Id(id), WriteValue { value: Some(unix_seconds.into()), ..WriteValue::default() })
    }

    /// A select or radiobutton value by option id.
    pub fn select(id: CustomFieldId, option: EnumId) -> Self {
        Self::one(FieldRef::Id(id), WriteValue { enum_id: Some(option), ..WriteValue::default() })
    }

    /// A select value by option text.
    pub fn select_value(id: CustomFieldId, option: impl Into<String>) -> Self {
        Self::text(id, option)
    }

    /// A multiselect value (replaces the selection).
    pub fn multiselect(id: CustomFieldId, options: impl IntoIterator<Item = EnumId>) -> Self {
        Self {
            field: FieldRef::Id(id),
            values: Some(
                options.into_iter().map(|e| WriteValue { enum_id: Some(e), ..WriteValue::default() }).collect(),
            ),
        }
    }

    /// A multitext field by code, e.g. `("EMAIL", [("a@b.c", "WORK")])` (replaces every value).
    pub fn multitext<I, V, C>(code: impl Into<String>, values: I) -> Self
    where
        I: IntoIterator<Item = (V, C)>,
        V: Into<String>,
        C: Into<String>,
    {
        Self {
            field: FieldRef::Code(code.into()),
            values: Some(
                values
                    .into_iter()
                    .map(|(v, c)| WriteValue { value: Some(v.into().into()), enum_code: Some(c.into()), enum_id: None })
                    .collect(),
            ),
        }
    }

    /// The contact's email(s): `EMAIL` with enum code `WORK`.
    pub fn email(email: impl Into<String>) -> Self {
        Self::multitext("EMAIL", [(email.into(), "WORK")])
    }

    /// The contact's phone(s): `PHONE` with enum code `WORK`.
    pub fn phone(phone: impl Into<String>) -> Self {
        Self::multitext("PHONE", [(phone.into(), "WORK")])
    }

    /// Any raw value for a field id.
    pub fn raw(id: CustomFieldId, value: serde_json::Value) -> Self {
        Self::one(FieldRef::Id(id), WriteValue { value: Some(value), ..WriteValue::default() })
    }

    /// Clears the field (`values: null`).
    pub fn clear(id: CustomFieldId) -> Self {
        Self { field: FieldRef::Id(id), values: None }
    }
}

/// An option of a select-like field: `{id, value, sort, code}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FieldEnum {
    /// Option id.
    pub id: EnumId,
    /// Option text.
    #[serde(default)]
    pub value: String,
    /// Sort order.
    #[serde(default, deserialize_with = "crate::de::opt_i64")]
    pub sort: Option<i64>,
    /// Code (multitext: `WORK`, `MOB`...).
    #[serde(default)]
    pub code: Option<String>,
}

/// A status in which a field is required: `{status_id, pipeline_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequiredStatus {
    /// Status.
    pub status_id: StatusId,
    /// Pipeline.
    pub pipeline_id: PipelineId,
}

/// A custom field definition (`GET /api/v4/{entity}/custom_fields`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomField {
    /// Id.
    pub id: CustomFieldId,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Code (`PHONE`, `EMAIL`...), null for user fields.
    #[serde(default)]
    pub code: Option<String>,
    /// Sort order.
    #[serde(default, deserialize_with = "crate::de::opt_i64")]
    pub sort: Option<i64>,
    /// Type.
    #[serde(rename = "type")]
    pub field_type: FieldType,
    /// `leads`, `contacts`, `companies`...
    #[serde(default)]
    pub entity_type: Option<String>,
    /// System field.
    #[serde(default, deserialize_with = "crate::de::lenient_bool")]
    pub is_predefined: bool,
    /// Can be deleted.
    #[serde(default, deserialize_with = "crate::de::lenient_bool")]
    pub is_deletable: bool,
    /// Editable only through the API.
    #[serde(default, deserialize_with = "crate::de::lenient_bool")]
    pub is_api_only: bool,
    /// Options (select, multiselect, radiobutton, multitext), `null` for others.
    #[serde(default, deserialize_with = "crate::de::null_as_empty")]
    pub enums: Vec<FieldEnum>,
    /// Statuses where the field is required.
    #[serde(default, deserialize_with = "crate::de::null_as_empty")]
    pub required_statuses: Vec<RequiredStatus>,
    /// Group id.
    #[serde(default)]
    pub group_id: Option<String>,
    /// Other members (`remind`, `currency`, `hidden_statuses`, `_links`...).
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl CustomField {
    /// The option with this text (case-insensitive).
    #[must_use]
    pub fn enum_by_value(&self, value: &str) -> Option<&FieldEnum> {
        self.enums.iter().find(|e| e.value.to_lowercase() == value.to_lowercase())
    }
}

/// A custom field definition to create (`CustomFieldCreate`: `name` and `type` required) or change
/// (`CustomFieldUpdateItem`, with `id`). Shapes from `../shared/openapi/kommo-community.yaml` (community-made from
/// amoCRM's API reference) and kommo.md §4 "Custom fields" (definition members, `enums[{value, sort}]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[must_use]
pub struct FieldWrite {
    /// The field (updates only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<CustomFieldId>,
    /// Name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Type (required on create).
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub field_type: Option<FieldType>,
    /// Code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Sort order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sort: Option<i64>,
    /// Only the API may write it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_api_only: Option<bool>,
    /// Options of select / multiselect / radiobutton fields: `{value, sort}` (with `id` on updates).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub enums: Vec<serde_json::Value>,
    /// The group it is shown in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_id: Option<FieldGroupId>,
    /// Echoed back (the client sets the index when `None`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl FieldWrite {
    /// A new field.
    pub fn new(name: impl Into<String>, field_type: FieldType) -> Self {
        Self { name: Some(name.into()), field_type: Some(field_type), ..Self::default() }
    }
    /// Changes to field `id`.
    pub fn update(id: CustomFieldId) -> Self {
        Self { id: Some(id), ..Self::default() }
    }
    /// Sets the name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// Adds an option (`{value, sort}`) to a select-like field.
    pub fn option(mut self, value: impl Into<String>, sort: i64) -> Self {
        self.enums.push(serde_json::json!({ "value": value.into(), "sort": sort }));
        self
    }
    /// Puts it in a group.
    pub fn group(mut self, group: FieldGroupId) -> Self {
        self.group_id = Some(group);
        self
    }
}

/// A custom field group (`GET /api/v4/{entity}/custom_fields/groups`). Kommo's group ids are strings
/// (`"leads_16761579411681"`); the community OpenAPI says integer: both decode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldGroup {
    /// Id.
    #[serde(deserialize_with = "group_id")]
    pub id: FieldGroupId,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Sort order.
    #[serde(default, deserialize_with = "crate::de::opt_i64")]
    pub sort: Option<i64>,
    /// Kommo's own group.
    #[serde(default, deserialize_with = "crate::de::lenient_bool")]
    pub is_predefined: bool,
    /// Other members (`entity_type`, `fields`, `request_id` in write answers, `_links`).
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

fn group_id<'de, D: serde::Deserializer<'de>>(d: D) -> Result<FieldGroupId, D::Error> {
    use serde::de::Error as _;
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => Ok(FieldGroupId(s)),
        serde_json::Value::Number(n) => Ok(FieldGroupId(n.to_string())),
        other => Err(D::Error::custom(format!("a group id is a string or a number, got {other}"))),
    }
}

/// Custom field definitions of one entity type.
#[derive(Debug, Clone)]
pub struct CustomFields<'a> {
    pub(crate) client: &'a Client,
    pub(crate) entity: EntityType,
}

impl CustomFields<'_> {
    fn path(&self) -> String {
        format!("/api/v4/{}/custom_fields", self.entity.as_str())
    }

    /// One page of field definitions (`GET /api/v4/{entity}/custom_fields`; Kommo returns up to 50 per page).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn list(&self, params: &ListParams, page: u32) -> Result<crate::ListPage<CustomField>, Error> {
        self.client.list_page(&self.path(), "custom_fields", params, page).await
    }

    /// Every field definition (all pages), lazily.
    pub fn stream(&self, params: ListParams) -> BoxStream<'static, Result<CustomField, Error>> {
        self.client.stream_list(self.path(), "custom_fields", params)
    }

    /// Every field definition, collected.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn all(&self) -> Result<Vec<CustomField>, Error> {
        use futures::TryStreamExt as _;
        self.stream(ListParams::new()).try_collect().await
    }

    /// `POST /api/v4/{entity}/custom_fields`; results in input order.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] when a field has an id, or no name or type; see [`Error`].
    pub async fn create(&self, items: &[FieldWrite]) -> Result<Vec<crate::WriteResult>, Error> {
        if let Some(n) = items.iter().position(|f| f.id.is_some() || f.name.is_none() || f.field_type.is_none()) {
            return Err(Error::InvalidRequest(format!("custom field #{n} to create needs a name and a type, no id")));
        }
        crate::common::batch_write(self.client, http::Method::POST, &self.path(), "custom_fields", items).await
    }

    /// `PATCH /api/v4/{entity}/custom_fields`; results in input order.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] when a field has no id; see [`Error`].
    pub async fn update(&self, items: &[FieldWrite]) -> Result<Vec<crate::WriteResult>, Error> {
        if let Some(n) = items.iter().position(|f| f.id.is_none()) {
            return Err(Error::InvalidRequest(format!("custom field update #{n} has no id")));
        }
        crate::common::batch_write(self.client, http::Method::PATCH, &self.path(), "custom_fields", items).await
    }

    /// `DELETE /api/v4/{entity}/custom_fields/{id}`.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn delete(&self, id: CustomFieldId) -> Result<(), Error> {
        self.client.send(api_core::Request::delete(format!("{}/{id}", self.path()))).await?;
        Ok(())
    }

    /// The field groups (`GET /api/v4/{entity}/custom_fields/groups`, one page; 204 = none).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn groups(&self) -> Result<Vec<FieldGroup>, Error> {
        let path = format!("{}/groups", self.path());
        Ok(self.client.list_page(&path, "groups", &ListParams::new(), 1).await?.items)
    }

    /// `POST /api/v4/{entity}/custom_fields/groups` `[{name, sort?, request_id}]`; the groups made.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn create_groups(&self, names: &[(&str, Option<i64>)]) -> Result<Vec<FieldGroup>, Error> {
        let body: Vec<serde_json::Value> = names
            .iter()
            .enumerate()
            .map(|(i, (name, sort))| {
                let mut v = serde_json::json!({ "name": name, "request_id": i.to_string() });
                if let Some(s) = sort {
                    v["sort"] = (*s).into();
                }
                v
            })
            .collect();
        let req = api_core::Request::post(format!("{}/groups", self.path()))
            .json(&body)
            .map_err(|e| Error::InvalidRequest(e.to_string()))?;
        let resp = self.client.send(req).await?;
        Ok(crate::hal::decode_list(&resp, "groups", 1)?.items)
    }

    /// `PATCH /api/v4/{entity}/custom_fields/groups/{id}` `{name?, sort?}`.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn update_group(
        &self,
        id: &FieldGroupId,
        name: Option<&str>,
        sort: Option<i64>,
    ) -> Result<FieldGroup, Error> {
        let mut body = serde_json::Map::new();
        if let Some(n) = name {
            body.insert("name".into(), n.into());
        }
        if let Some(s) = sort {
            body.insert("sort".into(), s.into());
        }
        let req = api_core::Request::patch(format!("{}/groups/{id}", self.path()))
            .json(&body)
            .map_err(|e| Error::InvalidRequest(e.to_string()))?
            .idempotent(true);
        self.client.send_json(req).await
    }

    /// `DELETE /api/v4/{entity}/custom_fields/groups/{id}`.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn delete_group(&self, id: &FieldGroupId) -> Result<(), Error> {
        self.client.send(api_core::Request::delete(format!("{}/groups/{id}", self.path()))).await?;
        Ok(())
    }

    /// One definition.
    ///
    /// # Errors
    /// See [`Error`]; 404 for an unknown id.
    pub async fn get(&self, id: CustomFieldId) -> Result<CustomField, Error> {
        self.client.get_one(api_core::Request::get(format!("{}/{id}", self.path()))).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_field_type_round_trips() {
        let t: FieldType = serde_json::from_str("\"hologram\"").unwrap();
        assert_eq!(t, FieldType::Other("hologram".into()));
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"hologram\"");
        assert_eq!(serde_json::from_str::<FieldType>("\"date_time\"").unwrap(), FieldType::DateTime);
    }

    #[test]
    fn typed_values() {
        let f: CustomFieldValues = serde_json::from_str(
            r#"{"field_id":3,"field_name":"Телефон","field_code":"PHONE","field_type":"multitext","values":[{"value":"+79123","enum_id":1,"enum_code":"WORK"}]}"#,
        )
        .unwrap();
        assert_eq!(f.typed(), TypedValue::Multitext(vec![("+79123".into(), Some("WORK".into()))]));
        let d: CustomFieldValues =
            serde_json::from_str(r#"{"field_id":7,"field_type":"date","values":[{"value":"1542067200"}]}"#).unwrap();
        assert_eq!(d.typed(), TypedValue::Date(1_542_067_200));
        let n: CustomFieldValues =
            serde_json::from_str(r#"{"field_id":8,"field_type":"numeric","values":[{"value":"12.5"}]}"#).unwrap();
        assert_eq!(n.typed(), TypedValue::Numeric(12.5));
        let c: CustomFieldValues =
            serde_json::from_str(r#"{"field_id":9,"field_type":"checkbox","values":null}"#).unwrap();
        assert!(c.values.is_empty());
    }

    #[test]
    fn write_models_serialize_without_read_only_members() {
        let v = serde_json::to_value([
            FieldValueWrite::text(CustomFieldId(1), "x"),
            FieldValueWrite::select(CustomFieldId(2), EnumId(5)),
            FieldValueWrite::date(CustomFieldId(3), 1_700_000_000),
            FieldValueWrite::email("a@b.c"),
            FieldValueWrite::clear(CustomFieldId(4)),
        ])
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!([
                {"field_id":1,"values":[{"value":"x"}]},
                {"field_id":2,"values":[{"enum_id":5}]},
                {"field_id":3,"values":[{"value":1700000000}]},
                {"field_code":"EMAIL","values":[{"value":"a@b.c","enum_code":"WORK"}]},
                {"field_id":4,"values":null}
            ])
        );
    }
}
