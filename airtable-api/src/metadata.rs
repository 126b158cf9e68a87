//! Metadata: list bases, base schema (tables, fields with types and options, views). Used to validate field
//! mappings at start-up.

use api_core::{Page, Request, paginate};
use futures::Stream;
use serde::{Deserialize, Serialize};

use crate::{
    Client, Error,
    client::{META_RATE_KEY, encode_segment},
    error::Operation,
    ids::{BaseId, FieldId, TableId, ViewId},
};

api_core::open_enum! {
    /// A field type.
    FieldType / Unknown {
        /// Single line text.
        SingleLineText = "singleLineText",
        /// Email.
        Email = "email",
        /// URL.
        Url = "url",
        /// Long text.
        MultilineText = "multilineText",
        /// Number.
        Number = "number",
        /// Percent.
        Percent = "percent",
        /// Currency.
        Currency = "currency",
        /// Single select.
        SingleSelect = "singleSelect",
        /// Multiple select.
        MultipleSelects = "multipleSelects",
        /// Single collaborator.
        SingleCollaborator = "singleCollaborator",
        /// Multiple collaborators.
        MultipleCollaborators = "multipleCollaborators",
        /// Linked records.
        MultipleRecordLinks = "multipleRecordLinks",
        /// Date.
        Date = "date",
        /// Date and time.
        DateTime = "dateTime",
        /// Phone number.
        PhoneNumber = "phoneNumber",
        /// Attachments.
        MultipleAttachments = "multipleAttachments",
        /// Checkbox.
        Checkbox = "checkbox",
        /// Formula.
        Formula = "formula",
        /// Created time.
        CreatedTime = "createdTime",
        /// Rollup.
        Rollup = "rollup",
        /// Count.
        Count = "count",
        /// Lookup.
        MultipleLookupValues = "multipleLookupValues",
        /// Autonumber.
        AutoNumber = "autoNumber",
        /// Barcode.
        Barcode = "barcode",
        /// Rating.
        Rating = "rating",
        /// Rich text.
        RichText = "richText",
        /// Duration.
        Duration = "duration",
        /// Last modified time.
        LastModifiedTime = "lastModifiedTime",
        /// Button.
        Button = "button",
        /// Created by.
        CreatedBy = "createdBy",
        /// Last modified by.
        LastModifiedBy = "lastModifiedBy",
        /// External sync source.
        ExternalSyncSource = "externalSyncSource",
        /// AI text.
        AiText = "aiText",
        /// Manual sort.
        ManualSort = "manualSort",
    }
}

impl FieldType {
    /// Whether the field is computed (cannot be written).
    #[must_use]
    pub fn is_computed(&self) -> bool {
        matches!(
            self,
            Self::Formula
                | Self::CreatedTime
                | Self::Rollup
                | Self::Count
                | Self::MultipleLookupValues
                | Self::AutoNumber
                | Self::LastModifiedTime
                | Self::Button
                | Self::CreatedBy
                | Self::LastModifiedBy
                | Self::ExternalSyncSource
                | Self::AiText
        )
    }
}

/// A base visible to the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseInfo {
    /// Id.
    pub id: BaseId,
    /// Name.
    pub name: String,
    /// `none|read|comment|edit|create|owner`.
    #[serde(rename = "permissionLevel")]
    pub permission_level: String,
}

/// A select choice (`options.choices[]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Choice {
    /// Choice id (`sel…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Name.
    pub name: String,
    /// Color.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
}

/// A field of a table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldSchema {
    /// Id.
    pub id: FieldId,
    /// Name.
    pub name: String,
    /// Type.
    #[serde(rename = "type")]
    pub kind: FieldType,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Type-specific options, verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<serde_json::Value>,
}

impl FieldSchema {
    /// The select choices (`singleSelect`/`multipleSelects`), empty otherwise.
    #[must_use]
    pub fn choices(&self) -> Vec<Choice> {
        self.options
            .as_ref()
            .and_then(|o| o.get("choices"))
            .and_then(|c| serde_json::from_value(c.clone()).ok())
            .unwrap_or_default()
    }

    /// The linked table (`multipleRecordLinks`).
    #[must_use]
    pub fn linked_table_id(&self) -> Option<TableId> {
        self.options.as_ref()?.get("linkedTableId")?.as_str().map(TableId::from)
    }
}

/// A view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewSchema {
    /// Id.
    pub id: ViewId,
    /// Name.
    pub name: String,
    /// `grid`, `form`, `calendar`, … (open set).
    #[serde(rename = "type")]
    pub kind: String,
}

/// A table of the base schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableSchema {
    /// Id.
    pub id: TableId,
    /// Name.
    pub name: String,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The primary field.
    #[serde(rename = "primaryFieldId")]
    pub primary_field_id: FieldId,
    /// Fields.
    pub fields: Vec<FieldSchema>,
    /// Views.
    #[serde(default)]
    pub views: Vec<ViewSchema>,
}

impl TableSchema {
    /// A field by id or (exact) name.
    #[must_use]
    pub fn field(&self, id_or_name: &str) -> Option<&FieldSchema> {
        self.fields
            .iter()
            .find(|f| f.id.as_str() == id_or_name)
            .or_else(|| self.fields.iter().find(|f| f.name == id_or_name))
    }
}

/// `GET /meta/bases/{baseId}/tables`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaseSchema {
    /// Tables.
    pub tables: Vec<TableSchema>,
}

impl BaseSchema {
    /// A table by id or (exact) name.
    #[must_use]
    pub fn table(&self, id_or_name: &str) -> Option<&TableSchema> {
        self.tables
            .iter()
            .find(|t| t.id.as_str() == id_or_name)
            .or_else(|| self.tables.iter().find(|t| t.name == id_or_name))
    }
}

/// One page of `GET /meta/bases`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BasesPage {
    /// The bases of this page.
    pub bases: Vec<BaseInfo>,
    /// The offset of the next page (absent on the last page): pass it to [`Client::list_bases`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<String>,
}

impl Client {
    /// One page of the bases the token can see (`GET /meta/bases`, `offset` from the previous page, `None` for the
    /// first). [`Client::stream_bases`] pages through all of them.
    ///
    /// # Errors
    /// [`Error`].
    pub async fn list_bases(&self, offset: Option<&str>) -> Result<BasesPage, Error> {
        let r = Request::get("/meta/bases").query_opt("offset", offset).rate_key(META_RATE_KEY);
        self.send_json(r, Operation::Other).await
    }

    /// Every base the token can see, lazily across pages (ends after the last page, or after the first error; a
    /// repeated offset is [`Error::RepeatedCursor`]).
    pub fn stream_bases(&self) -> impl Stream<Item = Result<BaseInfo, Error>> + Send + 'static {
        let client = self.clone();
        paginate(None, move |offset: Option<String>| {
            let client = client.clone();
            async move {
                let p = client.list_bases(offset.as_deref()).await?;
                Ok::<_, Error>(Page { items: p.bases, next: p.offset })
            }
        })
    }

    /// The base schema (`GET /meta/bases/{baseId}/tables`).
    ///
    /// # Errors
    /// [`Error`]; a base the token cannot reach is 403 `INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND`.
    pub async fn base_schema(&self, base: &BaseId) -> Result<BaseSchema, Error> {
        let r = Request::get(format!("/meta/bases/{}/tables", encode_segment(base.as_str()))).rate_key(base.as_str());
        self.send_json(r, Operation::Other).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_field_type_round_trips() {
        let f: FieldSchema =
            serde_json::from_value(serde_json::json!({"id": "fld1", "name": "X", "type": "hologram"})).unwrap();
        assert_eq!(f.kind, FieldType::Unknown("hologram".into()));
        assert_eq!(serde_json::to_value(&f).unwrap()["type"], "hologram");
        assert_eq!(FieldType::parse("singleSelect"), FieldType::SingleSelect);
        assert!(FieldType::Formula.is_computed());
    }
}

/// A cell read through its field's schema: the variant follows the field type, not just the JSON shape.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum TypedCell {
    /// Text-like fields (`singleLineText`, `multilineText`, `richText`, `email`, `url`, `phoneNumber`).
    Text(String),
    /// `number`, `autoNumber`, `count`.
    Number(f64),
    /// `currency`.
    Currency(f64),
    /// `percent` (0.5 = 50 %).
    Percent(f64),
    /// `rating` (1–10).
    Rating(u8),
    /// `duration` in seconds.
    Duration(f64),
    /// `checkbox` (absent = `false`).
    Checkbox(bool),
    /// `singleSelect`: the option name.
    SingleSelect(String),
    /// `multipleSelects`: option names.
    MultipleSelects(Vec<String>),
    /// `date`.
    Date(chrono::NaiveDate),
    /// `dateTime`, `createdTime`, `lastModifiedTime`.
    DateTime(chrono::DateTime<chrono::Utc>),
    /// `multipleRecordLinks`: record ids.
    LinkedRecords(Vec<crate::ids::RecordId>),
    /// `multipleAttachments`.
    Attachments(Vec<crate::cell::Attachment>),
    /// `singleCollaborator`, `createdBy`, `lastModifiedBy`.
    Collaborator(crate::cell::Collaborator),
    /// `multipleCollaborators`.
    Collaborators(Vec<crate::cell::Collaborator>),
    /// `barcode`.
    Barcode(crate::cell::Barcode),
    /// `button`.
    Button(crate::cell::Button),
    /// `formula`, `rollup`, `multipleLookupValues`, `aiText`, …: the raw value (its type depends on the options).
    Computed(crate::cell::CellValue),
    /// An empty cell of a non-checkbox field.
    Empty,
    /// A value that does not fit the field type, or an unknown type: kept as is.
    Unknown(serde_json::Value),
}

impl FieldSchema {
    /// Reads a cell (as found in `fields`, `None` when absent) through this field's type.
    #[must_use]
    pub fn typed(&self, value: Option<&crate::cell::CellValue>) -> TypedCell {
        use crate::cell::CellValue as C;
        let Some(v) = value else {
            return if self.kind == FieldType::Checkbox { TypedCell::Checkbox(false) } else { TypedCell::Empty };
        };
        let unknown = || TypedCell::Unknown(v.to_json());
        let num = || v.as_f64();
        match &self.kind {
            FieldType::SingleLineText
            | FieldType::MultilineText
            | FieldType::RichText
            | FieldType::Email
            | FieldType::Url
            | FieldType::PhoneNumber => v.as_str().map_or_else(unknown, |s| TypedCell::Text(s.to_owned())),
            FieldType::Number | FieldType::AutoNumber | FieldType::Count => {
                num().map_or_else(unknown, TypedCell::Number)
            }
            FieldType::Currency => num().map_or_else(unknown, TypedCell::Currency),
            FieldType::Percent => num().map_or_else(unknown, TypedCell::Percent),
            FieldType::Duration => num().map_or_else(unknown, TypedCell::Duration),
            FieldType::Rating => v.as_i64().and_then(|n| u8::try_from(n).ok()).map_or_else(unknown, TypedCell::Rating),
            FieldType::Checkbox => v.as_bool().map_or_else(unknown, TypedCell::Checkbox),
            FieldType::SingleSelect => v.as_str().map_or_else(unknown, |s| TypedCell::SingleSelect(s.to_owned())),
            FieldType::MultipleSelects => match v {
                C::Texts(t) => TypedCell::MultipleSelects(t.clone()),
                _ => unknown(),
            },
            FieldType::Date => v.as_date().map_or_else(unknown, TypedCell::Date),
            FieldType::DateTime | FieldType::CreatedTime | FieldType::LastModifiedTime => {
                v.as_datetime().map_or_else(unknown, TypedCell::DateTime)
            }
            FieldType::MultipleRecordLinks => v.as_record_ids().map_or_else(unknown, TypedCell::LinkedRecords),
            FieldType::MultipleAttachments => match v {
                C::Attachments(a) => TypedCell::Attachments(a.clone()),
                _ => unknown(),
            },
            FieldType::SingleCollaborator | FieldType::CreatedBy | FieldType::LastModifiedBy => match v {
                C::Collaborator(c) => TypedCell::Collaborator(c.clone()),
                _ => unknown(),
            },
            FieldType::MultipleCollaborators => match v {
                C::Collaborators(c) => TypedCell::Collaborators(c.clone()),
                _ => unknown(),
            },
            FieldType::Barcode => match v {
                C::Barcode(b) => TypedCell::Barcode(b.clone()),
                _ => unknown(),
            },
            FieldType::Button => match v {
                C::Button(b) => TypedCell::Button(b.clone()),
                _ => unknown(),
            },
            FieldType::Formula
            | FieldType::Rollup
            | FieldType::MultipleLookupValues
            | FieldType::AiText
            | FieldType::ExternalSyncSource => TypedCell::Computed(v.clone()),
            FieldType::ManualSort | FieldType::Unknown(_) => unknown(),
        }
    }
}

#[cfg(test)]
mod typed_tests {
    use super::*;
    use crate::cell::CellValue;

    fn field(kind: &str) -> FieldSchema {
        serde_json::from_value(serde_json::json!({"id": "fld1", "name": "F", "type": kind})).unwrap()
    }

    #[test]
    fn cells_read_through_the_schema() {
        let v = |j: serde_json::Value| CellValue::from(j);
        assert_eq!(field("checkbox").typed(None), TypedCell::Checkbox(false));
        assert_eq!(field("singleLineText").typed(None), TypedCell::Empty);
        assert_eq!(field("singleSelect").typed(Some(&v("Done".into()))), TypedCell::SingleSelect("Done".into()));
        assert_eq!(
            field("date").typed(Some(&v("2024-05-01".into()))),
            TypedCell::Date(chrono::NaiveDate::from_ymd_opt(2024, 5, 1).unwrap())
        );
        assert!(matches!(field("dateTime").typed(Some(&v("2023-05-22T21:24:15.000Z".into()))), TypedCell::DateTime(_)));
        assert_eq!(field("rating").typed(Some(&v(4.into()))), TypedCell::Rating(4));
        assert_eq!(field("percent").typed(Some(&v(0.5.into()))), TypedCell::Percent(0.5));
        assert_eq!(
            field("multipleRecordLinks").typed(Some(&v(serde_json::json!(["rec1"])))),
            TypedCell::LinkedRecords(vec!["rec1".into()])
        );
        assert!(matches!(field("formula").typed(Some(&v(3.into()))), TypedCell::Computed(_)));
        assert!(matches!(field("number").typed(Some(&v("x".into()))), TypedCell::Unknown(_)));
        assert!(matches!(field("hologram").typed(Some(&v(1.into()))), TypedCell::Unknown(_)));
    }
}
