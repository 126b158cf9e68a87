//! Metadata: list bases, base schema (tables, fields with types and options, views). Used to validate field
//! mappings at start-up.

use api_core::{Page, Request, paginate};
use futures::Stream;
use serde::{Deserialize, Serialize};

use crate::{
    Client, Error,
    client::{META_RATE_KEY, encode_segment},
    error::Operation,
    ids::{BaseId, FieldId, TableId, UserId, ViewId, WorkspaceId},
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

api_core::open_enum! {
    /// A token scope, as `GET /meta/whoami` lists them for OAuth tokens (OFFICIAL scopes page; unknown scopes are
    /// kept in `Unknown`).
    Scope / Unknown {
        /// Read records.
        DataRecordsRead = "data.records:read",
        /// Write records.
        DataRecordsWrite = "data.records:write",
        /// Manage records.
        DataRecordsManage = "data.records:manage",
        /// Read record comments.
        DataRecordCommentsRead = "data.recordComments:read",
        /// Write record comments.
        DataRecordCommentsWrite = "data.recordComments:write",
        /// Read base schemas.
        SchemaBasesRead = "schema.bases:read",
        /// Write base schemas.
        SchemaBasesWrite = "schema.bases:write",
        /// Manage webhooks.
        WebhookManage = "webhook:manage",
        /// Manage extensions (blocks).
        BlockManage = "block:manage",
        /// Read the user's email.
        UserEmailRead = "user.email:read",
        /// Read workspaces and bases (Enterprise).
        WorkspacesAndBasesRead = "workspacesAndBases:read",
        /// Write workspaces and bases (Enterprise).
        WorkspacesAndBasesWrite = "workspacesAndBases:write",
        /// Manage workspaces and bases (Enterprise).
        WorkspacesAndBasesManage = "workspacesAndBases:manage",
    }
}

/// `GET /meta/whoami`: the token's user (OFFICIAL get-user-id-scopes, <https://airtable.com/developers/web/api/get-user-id-scopes>).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    /// The user id.
    pub id: UserId,
    /// The owner's email, "only returned if the token has the `user.email:read` scope".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The token's scopes, "only returned if accessing via an OAuth access token".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<Scope>>,
}

/// A field to create (`POST …/fields`, and the fields of a [`TableConfig`]): `{name, type, description?, options?}`
/// (api-notes airtable.md D, OFFICIAL create-field). `options` are the type's write format, verbatim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldConfig {
    /// Name (unique within the table, case-insensitively).
    pub name: String,
    /// Type.
    #[serde(rename = "type")]
    pub kind: FieldType,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Type-specific options in Airtable's write format (e.g. `{"color": "greenBright", "icon": "check"}` for a
    /// checkbox, `{"choices": [{"name": …}]}` for selects).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<serde_json::Value>,
}

impl FieldConfig {
    /// A field without description or options.
    #[must_use]
    pub fn new(name: impl Into<String>, kind: FieldType) -> Self {
        Self { name: name.into(), kind, description: None, options: None }
    }

    /// With a description.
    #[must_use]
    pub fn description(mut self, d: impl Into<String>) -> Self {
        self.description = Some(d.into());
        self
    }

    /// With options (the type's write format).
    #[must_use]
    pub fn options(mut self, o: serde_json::Value) -> Self {
        self.options = Some(o);
        self
    }
}

/// A table to create (`POST /meta/bases/{baseId}/tables`, and the tables of [`CreateBase`]):
/// `{name, description?, fields}`; "the first field in the fields array will be used as the table's primary field"
/// (api-notes airtable.md D, OFFICIAL create-table / create-base).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableConfig {
    /// Name.
    pub name: String,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Fields; at least one, the first is the primary field.
    pub fields: Vec<FieldConfig>,
}

impl TableConfig {
    /// Checks what Airtable documents before anything is sent: at least one field, and field names unique within
    /// the table, case-insensitively ("Fields must have case-insensitive unique names within the table").
    fn validate(&self) -> Result<(), Error> {
        if self.name.trim().is_empty() {
            return Err(Error::InvalidRequest("a table needs a name".into()));
        }
        if self.fields.is_empty() {
            return Err(Error::InvalidRequest(format!("table {:?} needs at least one field", self.name)));
        }
        let mut seen = std::collections::HashSet::new();
        for f in &self.fields {
            if f.name.trim().is_empty() {
                return Err(Error::InvalidRequest(format!("table {:?}: a field needs a name", self.name)));
            }
            if !seen.insert(f.name.to_lowercase()) {
                return Err(Error::InvalidRequest(format!(
                    "table {:?}: field names must be unique (case-insensitive): {:?}",
                    self.name, f.name
                )));
            }
        }
        Ok(())
    }
}

/// `POST /meta/bases` body: `{name, workspaceId, tables}` (OFFICIAL create-base).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateBase {
    /// The base's name.
    pub name: String,
    /// The workspace to create it in (`wsp…`).
    pub workspace_id: WorkspaceId,
    /// At least one table.
    pub tables: Vec<TableConfig>,
}

/// The answer of `POST /meta/bases`: `{id, tables}` (OFFICIAL create-base).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreatedBase {
    /// The new base.
    pub id: BaseId,
    /// Its tables, as in the base schema.
    pub tables: Vec<TableSchema>,
}

/// `PATCH /meta/bases/{baseId}/tables/{tableIdOrName}` body: `{name?, description?}` (api-notes airtable.md D).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateTable {
    /// New name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// New description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// `PATCH /meta/bases/{baseId}/tables/{tableId}/fields/{fieldId}` body: `{name?, description?}` (api-notes
/// airtable.md D; a field's type cannot be changed through the API).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateField {
    /// New name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// New description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

fn check_update(name: Option<&String>, description: Option<&String>) -> Result<(), Error> {
    if name.is_none() && description.is_none() {
        return Err(Error::InvalidRequest("an update needs a name or a description".into()));
    }
    if name.is_some_and(|n| n.trim().is_empty()) {
        return Err(Error::InvalidRequest("a name cannot be empty".into()));
    }
    Ok(())
}

impl Client {
    /// The token's user (`GET /meta/whoami`): its id, its email with `user.email:read`, its scopes for OAuth tokens.
    ///
    /// # Errors
    /// [`Error`]; an invalid token is 401 `AUTHENTICATION_REQUIRED`.
    pub async fn whoami(&self) -> Result<UserInfo, Error> {
        self.send_json(Request::get("/meta/whoami").rate_key(META_RATE_KEY), Operation::Other).await
    }

    /// Creates a base with its tables (`POST /meta/bases`; scope `schema.bases:write`, role workspace creator).
    /// Not retried once it may have been sent (a second attempt would create a second base).
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] without a table, or for a table that fails [`TableConfig`]'s checks (nothing is
    /// sent); [`Error`] otherwise.
    pub async fn create_base(&self, base: &CreateBase) -> Result<CreatedBase, Error> {
        if base.name.trim().is_empty() {
            return Err(Error::InvalidRequest("a base needs a name".into()));
        }
        if base.tables.is_empty() {
            return Err(Error::InvalidRequest("a base needs at least one table".into()));
        }
        for t in &base.tables {
            t.validate()?;
        }
        let r = Request::post("/meta/bases").json(base)?.rate_key(META_RATE_KEY);
        self.send_json(r, Operation::Other).await
    }

    /// Creates a table in a base (`POST /meta/bases/{baseId}/tables`); answers the table as in the base schema.
    /// Not retried once it may have been sent.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] for a table that fails [`TableConfig`]'s checks (nothing is sent); [`Error`].
    pub async fn create_table(&self, base: &BaseId, table: &TableConfig) -> Result<TableSchema, Error> {
        table.validate()?;
        let r = Request::post(format!("/meta/bases/{}/tables", encode_segment(base.as_str())))
            .json(table)?
            .rate_key(base.as_str());
        self.send_json(r, Operation::Other).await
    }

    /// Renames a table or changes its description (`PATCH /meta/bases/{baseId}/tables/{tableIdOrName}`); the table
    /// by [`TableId`] or name.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] for an update with neither name nor description, or an empty name; [`Error`].
    pub async fn update_table(
        &self,
        base: &BaseId,
        table_id_or_name: impl AsRef<str>,
        update: &UpdateTable,
    ) -> Result<TableSchema, Error> {
        check_update(update.name.as_ref(), update.description.as_ref())?;
        let r = Request::patch(format!(
            "/meta/bases/{}/tables/{}",
            encode_segment(base.as_str()),
            encode_segment(table_id_or_name.as_ref())
        ))
        .json(update)?
        .idempotent(true)
        .rate_key(base.as_str());
        self.send_json(r, Operation::Other).await
    }

    /// Creates a field (`POST /meta/bases/{baseId}/tables/{tableId}/fields`; role base creator). Not retried once it
    /// may have been sent.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] for an empty name; [`Error`].
    pub async fn create_field(
        &self,
        base: &BaseId,
        table: &TableId,
        field: &FieldConfig,
    ) -> Result<FieldSchema, Error> {
        if field.name.trim().is_empty() {
            return Err(Error::InvalidRequest("a field needs a name".into()));
        }
        let r = Request::post(format!(
            "/meta/bases/{}/tables/{}/fields",
            encode_segment(base.as_str()),
            encode_segment(table.as_str())
        ))
        .json(field)?
        .rate_key(base.as_str());
        self.send_json(r, Operation::Other).await
    }

    /// Renames a field or changes its description (`PATCH /meta/bases/{baseId}/tables/{tableId}/fields/{fieldId}`).
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] for an update with neither name nor description, or an empty name; [`Error`].
    pub async fn update_field(
        &self,
        base: &BaseId,
        table: &TableId,
        field: &FieldId,
        update: &UpdateField,
    ) -> Result<FieldSchema, Error> {
        check_update(update.name.as_ref(), update.description.as_ref())?;
        let r = Request::patch(format!(
            "/meta/bases/{}/tables/{}/fields/{}",
            encode_segment(base.as_str()),
            encode_segment(table.as_str()),
            encode_segment(field.as_str())
        ))
        .json(update)?
        .idempotent(true)
        .rate_key(base.as_str());
        self.send_json(r, Operation::Other).await
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
