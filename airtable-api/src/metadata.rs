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

macro_rules! open_enum {
    ($(#[$doc:meta])* $name:ident / $other:ident { $( $(#[$m:meta])* $v:ident = $s:literal ),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $( $(#[$m])* $v, )*
            /// A value this crate does not know (kept verbatim, round-trips).
            $other(String),
        }

        impl $name {
            /// Parses the vendor string.
            #[must_use]
            pub fn parse(s: &str) -> Self {
                match s {
                    $( $s => Self::$v, )*
                    other => Self::$other(other.to_owned()),
                }
            }

            /// The vendor string.
            #[must_use]
            pub fn as_str(&self) -> &str {
                match self {
                    $( Self::$v => $s, )*
                    Self::$other(s) => s,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Ok(Self::parse(&String::deserialize(d)?))
            }
        }
    };
}
pub(crate) use open_enum;

open_enum! {
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

#[derive(Deserialize)]
struct BasesPage {
    bases: Vec<BaseInfo>,
    #[serde(default)]
    offset: Option<String>,
}

impl Client {
    /// Every base the token can see (`GET /meta/bases`, paginated by `offset`), lazily.
    pub fn list_bases(&self) -> impl Stream<Item = Result<BaseInfo, Error>> + Send + 'static {
        let client = self.clone();
        paginate(None, move |offset: Option<String>| {
            let client = client.clone();
            async move {
                let r = Request::get("/meta/bases").query_opt("offset", offset).rate_key(META_RATE_KEY);
                let p: BasesPage = client.send_json(r, Operation::Other).await?;
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
