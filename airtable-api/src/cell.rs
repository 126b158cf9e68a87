//! Cell values in the REST format (`cellFormat=json`), records and their `fields`.
//!
//! Airtable omits empty cells from responses ("Returned records do not include any fields with "empty" values, e.g.
//! "", [], or false"), so an absent checkbox is `false` ([`Fields::get_bool`]) and every typed accessor returns an
//! `Option`. The JSON carries no field type, so [`CellValue`] is decided by the value's shape; the variant docs say
//! which Airtable field types land in each. Anything else decodes as [`CellValue::Unknown`] and round-trips.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::ids::RecordId;

/// One attachment (`multipleAttachments`). To add one, send [`Attachment::from_url`]; to keep an existing one, send
/// its `id` only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Attachment {
    /// Attachment id (`att…`), absent when creating by URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// URL (temporary when read).
    pub url: String,
    /// File name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// Size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// MIME type.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// Other members (`width`, `height`, `thumbnails`).
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Attachment {
    /// An attachment to create from a public URL.
    #[must_use]
    pub fn from_url(url: impl Into<String>) -> Self {
        Self { url: url.into(), ..Self::default() }
    }
}

/// A collaborator (`singleCollaborator`, `createdBy`, `lastModifiedBy`, items of `multipleCollaborators`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Collaborator {
    /// User id (`usr…`).
    pub id: String,
    /// Email.
    pub email: String,
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Other members (`profilePicUrl`, …).
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// A `barcode` cell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Barcode {
    /// The text.
    pub text: String,
    /// Symbology, if known.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// A `button` cell (read-only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Button {
    /// Label.
    pub label: String,
    /// URL, when the button opens one.
    #[serde(default)]
    pub url: Option<String>,
}

/// An `aiText` cell (read-only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AiText {
    /// `empty`, `loading`, `generated` or `error`.
    pub state: String,
    /// Whether inputs changed since generation.
    #[serde(default, rename = "isStale")]
    pub is_stale: bool,
    /// The text.
    #[serde(default)]
    pub value: Option<String>,
    /// Other members (`errorType`).
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// A computed cell in error (`{"error": "#ERROR!"}`), from formula/rollup/lookup fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CellError {
    /// The error text, e.g. `#ERROR!`.
    pub error: String,
}

/// A cell value in the REST format, decided by its JSON shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum CellValue {
    /// `checkbox` (only ever `true` when read: unchecked is absent), or a boolean formula result.
    Checkbox(bool),
    /// `number`, `currency`, `percent` (0.5 = 50 %), `rating`, `duration` (seconds), `autoNumber`, `count`, numeric
    /// formula/rollup results. Kept as a JSON number so integers round-trip exactly.
    Number(serde_json::Number),
    /// `singleLineText`, `multilineText`, `richText`, `email`, `url`, `phoneNumber`, `singleSelect` (the option name),
    /// `date` (`2024-05-01`), `dateTime`/`createdTime`/`lastModifiedTime` (ISO 8601), text formula results.
    Text(String),
    /// `multipleSelects` (option names), `multipleRecordLinks` (record ids), text lookups.
    Texts(Vec<String>),
    /// Numeric lookups/rollups.
    Numbers(Vec<f64>),
    /// `multipleAttachments`.
    Attachments(Vec<Attachment>),
    /// `singleCollaborator`, `createdBy`, `lastModifiedBy`.
    Collaborator(Collaborator),
    /// `multipleCollaborators`.
    Collaborators(Vec<Collaborator>),
    /// `barcode`.
    Barcode(Barcode),
    /// `button`.
    Button(Button),
    /// `aiText`.
    AiText(AiText),
    /// A formula/rollup in error.
    Error(CellError),
    /// An explicit empty: written as `null`, which clears the cell on PATCH, PUT and upsert. Made by
    /// [`Fields::clear`] and by converting a JSON `null` ([`CellValue::from`]`(Value::Null)`); a `null` read back
    /// decodes to it too. (A Rust `None` or a NaN is *not* this: it is left out of the write, see [`Fields`].)
    Clear,
    /// Any other shape (new field types, mixed lookups), kept verbatim.
    ///
    /// `Unknown(Value::Null)` is what `None` and non-finite numbers convert to: "no value". [`Fields`] never stores
    /// it and never writes it.
    Unknown(serde_json::Value),
}

impl CellValue {
    /// `true` for "no value" (`None`, NaN, infinity): left out of a write rather than sent as `null`.
    #[must_use]
    pub fn is_nothing(&self) -> bool {
        matches!(self, Self::Unknown(serde_json::Value::Null))
    }

    /// The text, for [`CellValue::Text`].
    #[must_use]
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Text(s) => Some(s),
            _ => None,
        }
    }

    /// The number, for [`CellValue::Number`].
    #[must_use]
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Number(n) => n.as_f64(),
            _ => None,
        }
    }

    /// The number as an integer, when it is one.
    #[must_use]
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Self::Number(n) => n.as_i64(),
            _ => None,
        }
    }

    /// The boolean, for [`CellValue::Checkbox`].
    #[must_use]
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Self::Checkbox(b) => Some(*b),
            _ => None,
        }
    }

    /// The strings of a multiple select, linked records or a text lookup; a single text as a one-element list.
    #[must_use]
    pub fn as_strings(&self) -> Option<Vec<&str>> {
        match self {
            Self::Texts(v) => Some(v.iter().map(String::as_str).collect()),
            Self::Text(s) => Some(vec![s.as_str()]),
            _ => None,
        }
    }

    /// Linked record ids (`multipleRecordLinks`).
    #[must_use]
    pub fn as_record_ids(&self) -> Option<Vec<RecordId>> {
        match self {
            Self::Texts(v) => Some(v.iter().map(|s| RecordId::from(s.as_str())).collect()),
            _ => None,
        }
    }

    /// A `date` cell (`YYYY-MM-DD`); also the date part of a `dateTime`.
    #[must_use]
    pub fn as_date(&self) -> Option<NaiveDate> {
        let s = self.as_str()?;
        NaiveDate::parse_from_str(s.get(..10)?, "%Y-%m-%d").ok()
    }

    /// A `dateTime`/`createdTime`/`lastModifiedTime` cell.
    #[must_use]
    pub fn as_datetime(&self) -> Option<DateTime<Utc>> {
        DateTime::parse_from_rfc3339(self.as_str()?).ok().map(|d| d.with_timezone(&Utc))
    }

    /// Attachments.
    #[must_use]
    pub fn as_attachments(&self) -> Option<&[Attachment]> {
        match self {
            Self::Attachments(v) => Some(v),
            _ => None,
        }
    }

    /// A single collaborator.
    #[must_use]
    pub fn as_collaborator(&self) -> Option<&Collaborator> {
        match self {
            Self::Collaborator(c) => Some(c),
            _ => None,
        }
    }

    /// The value as JSON.
    #[must_use]
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

impl From<&str> for CellValue {
    fn from(s: &str) -> Self {
        Self::Text(s.to_owned())
    }
}
impl From<String> for CellValue {
    fn from(s: String) -> Self {
        Self::Text(s)
    }
}
impl From<f64> for CellValue {
    /// A non-finite number (NaN, infinity) has no JSON form: it is "no value" ([`CellValue::is_nothing`]), which
    /// [`Fields`] leaves out of a write instead of clearing the cell.
    fn from(n: f64) -> Self {
        serde_json::Number::from_f64(n).map_or(Self::Unknown(serde_json::Value::Null), Self::Number)
    }
}
impl From<i64> for CellValue {
    fn from(n: i64) -> Self {
        Self::Number(n.into())
    }
}
impl From<bool> for CellValue {
    fn from(b: bool) -> Self {
        Self::Checkbox(b)
    }
}
impl From<Vec<String>> for CellValue {
    fn from(v: Vec<String>) -> Self {
        Self::Texts(v)
    }
}
impl From<Vec<RecordId>> for CellValue {
    fn from(v: Vec<RecordId>) -> Self {
        Self::Texts(v.into_iter().map(|r| r.0).collect())
    }
}
impl From<Vec<Attachment>> for CellValue {
    fn from(v: Vec<Attachment>) -> Self {
        Self::Attachments(v)
    }
}
impl<T: Into<CellValue>> From<Option<T>> for CellValue {
    /// `None` is "no value" ([`CellValue::is_nothing`]): [`Fields`] leaves it out of a write. To empty a cell use
    /// [`Fields::clear`].
    fn from(v: Option<T>) -> Self {
        v.map_or(Self::Unknown(serde_json::Value::Null), Into::into)
    }
}
impl From<serde_json::Value> for CellValue {
    /// Decided by shape; an explicit JSON `null` is [`CellValue::Clear`] (it empties the cell when written).
    fn from(v: serde_json::Value) -> Self {
        serde_json::from_value(v.clone()).unwrap_or(Self::Unknown(v))
    }
}

/// A record's `fields`: field name (or id, with `returnFieldsByFieldId`) → value. Empty cells are absent.
///
/// As a write (create, PATCH, PUT, upsert), every member is sent, and Airtable sets each one: a `null` **clears** the
/// cell (api-notes/airtable.md B.4: "A PATCH request will only update the fields included in the request"). So "no
/// value" — a Rust `None`, a NaN — is left out of the write (the cell keeps what it has), whether it comes through
/// [`Fields::with`], [`Fields::insert`], collecting, or [`Fields::from_struct`]; emptying a cell is explicit:
/// [`Fields::clear`] ([`CellValue::Clear`], sent as `null`).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(transparent)]
pub struct Fields(pub BTreeMap<String, CellValue>);

impl Serialize for Fields {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let present = self.0.iter().filter(|(_, v)| !v.is_nothing());
        let mut map = serializer.serialize_map(Some(present.clone().count()))?;
        for (k, v) in present {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl Fields {
    /// No fields.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a field (builder style). "No value" (`None`, NaN) leaves the field out (see [`Fields`]).
    #[must_use]
    pub fn with(mut self, name: impl Into<String>, value: impl Into<CellValue>) -> Self {
        self.insert(name, value);
        self
    }

    /// Sets a field. "No value" (`None`, NaN) removes it from this write instead (the stored cell is untouched).
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<CellValue>) {
        let (name, value) = (name.into(), value.into());
        if value.is_nothing() {
            self.0.remove(&name);
        } else {
            self.0.insert(name, value);
        }
    }

    /// Empties the cell: sends `null` for `name` ([`CellValue::Clear`]), the explicit way to clear a field on PATCH
    /// or upsert.
    #[must_use]
    pub fn clear(mut self, name: impl Into<String>) -> Self {
        self.0.insert(name.into(), CellValue::Clear);
        self
    }

    /// The raw cell.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&CellValue> {
        self.0.get(name)
    }

    /// A text cell (text, single select, date, …).
    #[must_use]
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(CellValue::as_str)
    }

    /// A numeric cell.
    #[must_use]
    pub fn get_f64(&self, name: &str) -> Option<f64> {
        self.get(name).and_then(CellValue::as_f64)
    }

    /// A checkbox: `false` when absent (Airtable omits unchecked boxes).
    #[must_use]
    pub fn get_bool(&self, name: &str) -> bool {
        self.get(name).and_then(CellValue::as_bool).unwrap_or(false)
    }

    /// A multiple select / linked records / text lookup; empty when absent.
    #[must_use]
    pub fn get_strings(&self, name: &str) -> Vec<&str> {
        self.get(name).and_then(CellValue::as_strings).unwrap_or_default()
    }

    /// Linked record ids; empty when absent.
    #[must_use]
    pub fn get_record_ids(&self, name: &str) -> Vec<RecordId> {
        self.get(name).and_then(CellValue::as_record_ids).unwrap_or_default()
    }

    /// A `date` cell.
    #[must_use]
    pub fn get_date(&self, name: &str) -> Option<NaiveDate> {
        self.get(name).and_then(CellValue::as_date)
    }

    /// A `dateTime` cell.
    #[must_use]
    pub fn get_datetime(&self, name: &str) -> Option<DateTime<Utc>> {
        self.get(name).and_then(CellValue::as_datetime)
    }

    /// The fields as a JSON object.
    #[must_use]
    pub fn to_json(&self) -> serde_json::Map<String, serde_json::Value> {
        self.0.iter().filter(|(_, v)| !v.is_nothing()).map(|(k, v)| (k.clone(), v.to_json())).collect()
    }

    /// Deserializes a user struct from the fields (missing checkboxes/empties: use `#[serde(default)]`).
    ///
    /// # Errors
    /// When the fields do not match `T`; the error names the field.
    pub fn to_struct<T: DeserializeOwned>(&self) -> Result<T, api_core::DecodeError> {
        let bytes = serde_json::to_vec(&self.to_json()).unwrap_or_default();
        api_core::decode_json(&bytes)
    }

    /// Serializes a user struct into fields (its members become field names; use `#[serde(rename = "…")]`).
    ///
    /// Members that serialize to `null` — `None`, and NaN/infinite floats, which serde_json writes as `null` — are
    /// left out, so writing the result never clears a cell by accident. To empty a cell, chain [`Fields::clear`].
    ///
    /// # Errors
    /// When `value` does not serialize to a JSON object.
    pub fn from_struct<T: Serialize>(value: &T) -> Result<Self, crate::Error> {
        match serde_json::to_value(value)? {
            serde_json::Value::Object(map) => {
                Ok(Self(map.into_iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k, CellValue::from(v))).collect()))
            }
            other => Err(crate::Error::InvalidRequest(format!("fields must serialize to a JSON object, not {other}"))),
        }
    }
}

impl<K: Into<String>, V: Into<CellValue>> FromIterator<(K, V)> for Fields {
    /// As [`Fields::insert`] for each pair: "no value" is left out; a JSON `null` is an explicit [`CellValue::Clear`].
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut f = Self::new();
        for (k, v) in iter {
            f.insert(k, v);
        }
        f
    }
}

/// A record: `{"id", "createdTime", "fields", "commentCount"?}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Record id.
    pub id: RecordId,
    /// Creation time (ISO 8601).
    #[serde(rename = "createdTime")]
    pub created_time: String,
    /// The non-empty cells.
    #[serde(default)]
    pub fields: Fields,
    /// Number of comments (only with `recordMetadata=commentCount`).
    #[serde(default, rename = "commentCount", skip_serializing_if = "Option::is_none")]
    pub comment_count: Option<u64>,
}

impl Record {
    /// Shortcut for `self.fields.get_str(name)`.
    #[must_use]
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.fields.get_str(name)
    }

    /// Shortcut for `self.fields.get_f64(name)`.
    #[must_use]
    pub fn get_f64(&self, name: &str) -> Option<f64> {
        self.fields.get_f64(name)
    }

    /// Shortcut for `self.fields.get_bool(name)` (absent = `false`).
    #[must_use]
    pub fn get_bool(&self, name: &str) -> bool {
        self.fields.get_bool(name)
    }

    /// The creation time parsed.
    #[must_use]
    pub fn created_at(&self) -> Option<DateTime<Utc>> {
        DateTime::parse_from_rfc3339(&self.created_time).ok().map(|d| d.with_timezone(&Utc))
    }

    /// Deserializes the fields into a user struct.
    ///
    /// # Errors
    /// See [`Fields::to_struct`].
    pub fn fields_as<T: DeserializeOwned>(&self) -> Result<T, api_core::DecodeError> {
        self.fields.to_struct()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_decode_to_variants() {
        let f: Fields = serde_json::from_value(serde_json::json!({
            "Name": "Alice", "Age": 31, "Done": true, "Tags": ["a", "b"], "Links": ["rec1"],
            "Files": [{"id": "att1", "url": "https://x/y.png", "filename": "y.png", "size": 10, "type": "image/png",
                       "width": 3}],
            "Owner": {"id": "usr1", "email": "a@b.c", "name": "A"},
            "Code": {"text": "123", "type": "upce"},
            "Btn": {"label": "Go", "url": null},
            "Err": {"error": "#ERROR!"},
            "Weird": {"something": [1, {"x": 2}]},
            "Due": "2024-05-01",
            "At": "2023-05-22T21:24:15.000Z"
        }))
        .unwrap();
        assert_eq!(f.get_str("Name"), Some("Alice"));
        assert_eq!(f.get_f64("Age"), Some(31.0));
        assert!(f.get_bool("Done"));
        assert!(!f.get_bool("Missing checkbox"), "absent checkbox is false");
        assert_eq!(f.get_strings("Tags"), ["a", "b"]);
        assert_eq!(f.get_record_ids("Links"), [RecordId::from("rec1")]);
        assert_eq!(f.get("Files").unwrap().as_attachments().unwrap()[0].extra["width"], 3);
        assert_eq!(f.get("Owner").unwrap().as_collaborator().unwrap().email, "a@b.c");
        assert!(matches!(f.get("Code"), Some(CellValue::Barcode(_))));
        assert!(matches!(f.get("Btn"), Some(CellValue::Button(_))));
        assert!(matches!(f.get("Err"), Some(CellValue::Error(_))));
        assert!(matches!(f.get("Weird"), Some(CellValue::Unknown(_))));
        assert_eq!(f.get_date("Due"), NaiveDate::from_ymd_opt(2024, 5, 1));
        assert!(f.get_datetime("At").is_some());
        // round trip keeps unknown shapes verbatim
        let back = serde_json::to_value(&f).unwrap();
        assert_eq!(back["Weird"], serde_json::json!({"something": [1, {"x": 2}]}));
        assert_eq!(back["Files"][0]["width"], 3);
    }

    #[test]
    fn user_structs_round_trip() {
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct Contact {
            #[serde(rename = "Name")]
            name: String,
            #[serde(rename = "Vip", default)]
            vip: bool,
        }
        let f = Fields::from_struct(&Contact { name: "Bo".into(), vip: true }).unwrap();
        assert_eq!(f.get_str("Name"), Some("Bo"));
        let mut g = Fields::new().with("Name", "Bo");
        assert_eq!(g.to_struct::<Contact>().unwrap(), Contact { name: "Bo".into(), vip: false });
        g.insert("Vip", 3);
        let err = g.to_struct::<Contact>().unwrap_err();
        assert!(err.path.contains("Vip"), "{err}");
    }
}
