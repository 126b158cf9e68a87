//! A small, generic JSON:API layer (<https://jsonapi.org/format/>) as Productive implements it. It knows nothing
//! about Productive's resources and can be reused for any JSON:API service.
//!
//! - [`Document`]: a response document (`data` one or many, `included`, `meta`, `links`).
//! - [`Resource`]: a resource object (`id`, `type`, typed `attributes`, `relationships`), [`Relationship`] with
//!   [`RelationshipData`] distinguishing *absent* (`{"meta":{"included":false}}`), *null*, *to-one* and *to-many*.
//! - [`Included`]: the `included` array indexed by `(type, id)`, so a to-one relationship resolves to its typed
//!   resource ([`Document::related`]).
//! - [`WriteDocument`]: create/update bodies with only the attributes that were set and relationship identifiers.
//! - [`ErrorDocument`]: `{"errors":[…]}` with `status` as a number or a string.
//! - [`Query`]: `include`, `filter[field]`, `filter[field][op]`, `filter[$op]` groups, `sort`, `page[number]`,
//!   `page[size]` (at most [`MAX_PAGE_SIZE`]).
//! - [`PageMeta`] and [`next_page`]: page with `meta.current_page` until `current_page >= total_pages`.

use std::{collections::BTreeMap, fmt};

use serde::{Deserialize, Deserializer, Serialize, Serializer, de::DeserializeOwned};
use serde_json::{Map, Value};

/// The largest `page[size]` Productive accepts.
pub const MAX_PAGE_SIZE: u32 = 200;
/// Productive's default `page[size]`.
pub const DEFAULT_PAGE_SIZE: u32 = 30;
/// The JSON:API media type, sent as `Content-Type` (a wrong type gets a 415).
pub const MEDIA_TYPE: &str = "application/vnd.api+json";

/// A resource identifier object: `{"type": "companies", "id": "123"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ResourceIdentifier {
    /// The resource type (plural snake case: `companies`).
    #[serde(rename = "type")]
    pub kind: String,
    /// The id (always a string on the wire).
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
}

impl ResourceIdentifier {
    /// `{type, id}`.
    #[must_use]
    pub fn new(kind: impl Into<String>, id: impl fmt::Display) -> Self {
        Self { kind: kind.into(), id: id.to_string() }
    }
}

/// The `data` member of a relationship.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RelationshipData {
    /// No `data` member: the relationship was not included (Productive then sends `{"meta":{"included":false}}`).
    #[default]
    Absent,
    /// `"data": null`: an empty to-one relationship.
    Null,
    /// `"data": {type, id}`.
    One(ResourceIdentifier),
    /// `"data": [{type, id}, …]`.
    Many(Vec<ResourceIdentifier>),
}

impl RelationshipData {
    /// Whether there is no `data` member.
    #[must_use]
    pub fn is_absent(&self) -> bool {
        matches!(self, Self::Absent)
    }
}

impl Serialize for RelationshipData {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Absent | Self::Null => s.serialize_none(),
            Self::One(id) => id.serialize(s),
            Self::Many(ids) => ids.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for RelationshipData {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            Many(Vec<ResourceIdentifier>),
            One(ResourceIdentifier),
        }
        Ok(match Option::<OneOrMany>::deserialize(d)? {
            None => Self::Null,
            Some(OneOrMany::One(id)) => Self::One(id),
            Some(OneOrMany::Many(ids)) => Self::Many(ids),
        })
    }
}

/// A relationship object.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Relationship {
    /// Linkage.
    #[serde(default, skip_serializing_if = "RelationshipData::is_absent")]
    pub data: RelationshipData,
    /// `meta` (Productive: `{"included": false}` when not requested with `include`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Value>,
    /// `links`, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub links: Option<Value>,
}

impl Relationship {
    /// A to-one relationship to `{kind, id}`.
    #[must_use]
    pub fn to_one(kind: &str, id: impl fmt::Display) -> Self {
        Self { data: RelationshipData::One(ResourceIdentifier::new(kind, id)), meta: None, links: None }
    }

    /// A to-many relationship.
    #[must_use]
    pub fn to_many(ids: Vec<ResourceIdentifier>) -> Self {
        Self { data: RelationshipData::Many(ids), meta: None, links: None }
    }

    /// An explicitly empty to-one relationship (`"data": null`).
    #[must_use]
    pub fn null() -> Self {
        Self { data: RelationshipData::Null, meta: None, links: None }
    }

    /// `false` when the server said `meta.included = false`; `true` when it sent linkage.
    #[must_use]
    pub fn is_included(&self) -> bool {
        match self.meta.as_ref().and_then(|m| m.get("included")).and_then(Value::as_bool) {
            Some(b) => b,
            None => !self.data.is_absent(),
        }
    }

    /// The identifier of a to-one relationship (`None` when absent, null or to-many).
    #[must_use]
    pub fn one(&self) -> Option<&ResourceIdentifier> {
        match &self.data {
            RelationshipData::One(id) => Some(id),
            _ => None,
        }
    }

    /// The identifiers of a to-many relationship (or the single identifier of a to-one; empty otherwise).
    #[must_use]
    pub fn many(&self) -> Vec<&ResourceIdentifier> {
        match &self.data {
            RelationshipData::Many(ids) => ids.iter().collect(),
            RelationshipData::One(id) => vec![id],
            _ => Vec::new(),
        }
    }
}

/// A resource object with typed attributes `A` (use [`serde_json::Value`] for untyped).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawResource<A>", bound(deserialize = "A: DeserializeOwned"))]
pub struct Resource<A> {
    /// The id (a string on the wire).
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
    /// The type (`projects`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Attributes. A missing `attributes` member (JSON:API makes it optional) decodes as `A` from `{}` (or from
    /// `null`); when `A` accepts neither, decoding fails with an error naming the resource.
    pub attributes: A,
    /// Relationships by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub relationships: BTreeMap<String, Relationship>,
    /// Resource `meta`, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Value>,
    /// Resource `links`, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub links: Option<Value>,
}

/// `attributes` as sent, or `Missing` when the member is absent.
#[derive(Default)]
enum MaybeAttributes<A> {
    #[default]
    Missing,
    Present(A),
}

impl<'de, A: Deserialize<'de>> Deserialize<'de> for MaybeAttributes<A> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        A::deserialize(d).map(Self::Present)
    }
}

/// The wire form of [`Resource`]; a missing `attributes` member is resolved in `TryFrom`.
#[derive(Deserialize)]
#[serde(bound(deserialize = "A: DeserializeOwned"))]
struct RawResource<A> {
    #[serde(deserialize_with = "string_or_number")]
    id: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    attributes: MaybeAttributes<A>,
    #[serde(default)]
    relationships: BTreeMap<String, Relationship>,
    #[serde(default)]
    meta: Option<Value>,
    #[serde(default)]
    links: Option<Value>,
}

impl<A: DeserializeOwned> TryFrom<RawResource<A>> for Resource<A> {
    type Error = String;

    fn try_from(raw: RawResource<A>) -> Result<Self, String> {
        let attributes = match raw.attributes {
            MaybeAttributes::Present(a) => a,
            // Attributes types in this crate are `#[serde(default)]` structs or `Value`; both decode from `{}`.
            MaybeAttributes::Missing => match serde_json::from_value(Value::Object(Map::new())) {
                Ok(a) => a,
                Err(e) => serde_json::from_value(Value::Null).map_err(|_| {
                    format!(
                        "{}[{}] has no `attributes` member and its attributes type needs one: {e}",
                        raw.kind, raw.id
                    )
                })?,
            },
        };
        Ok(Self {
            id: raw.id,
            kind: raw.kind,
            attributes,
            relationships: raw.relationships,
            meta: raw.meta,
            links: raw.links,
        })
    }
}

impl<A> Resource<A> {
    /// The identifier `{type, id}` of this resource.
    #[must_use]
    pub fn identifier(&self) -> ResourceIdentifier {
        ResourceIdentifier { kind: self.kind.clone(), id: self.id.clone() }
    }

    /// A relationship by name.
    #[must_use]
    pub fn relationship(&self, name: &str) -> Option<&Relationship> {
        self.relationships.get(name)
    }

    /// The identifier of the to-one relationship `name`, when linkage was sent.
    #[must_use]
    pub fn related_id(&self, name: &str) -> Option<&ResourceIdentifier> {
        self.relationships.get(name).and_then(Relationship::one)
    }

    /// The identifiers of relationship `name` (empty when absent or null).
    #[must_use]
    pub fn related_ids(&self, name: &str) -> Vec<&ResourceIdentifier> {
        self.relationships.get(name).map(Relationship::many).unwrap_or_default()
    }

    /// Maps the attributes.
    pub fn map<B>(self, f: impl FnOnce(A) -> B) -> Resource<B> {
        Resource {
            id: self.id,
            kind: self.kind,
            attributes: f(self.attributes),
            relationships: self.relationships,
            meta: self.meta,
            links: self.links,
        }
    }
}

impl Resource<Value> {
    /// Decodes the attributes into `A`, naming the JSON path on failure.
    ///
    /// # Errors
    /// [`api_core::DecodeError`] when the attributes do not match `A`.
    pub fn decode<A: DeserializeOwned>(&self) -> Result<Resource<A>, api_core::DecodeError> {
        let bytes = serde_json::to_vec(&self.attributes).unwrap_or_default();
        let attributes: A = api_core::decode_json(&bytes).map_err(|mut e| {
            e.path = format!("{}[{}].attributes.{}", self.kind, self.id, e.path);
            e
        })?;
        Ok(Resource {
            id: self.id.clone(),
            kind: self.kind.clone(),
            attributes,
            relationships: self.relationships.clone(),
            meta: self.meta.clone(),
            links: self.links.clone(),
        })
    }
}

/// Pagination `meta` as Productive sends it (every field optional; other members kept in `extra`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PageMeta {
    /// 1-based current page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_page: Option<u32>,
    /// Number of pages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_pages: Option<u32>,
    /// Number of records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_count: Option<u64>,
    /// Page size used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_size: Option<u32>,
    /// Largest page size allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_page_size: Option<u32>,
    /// Any other `meta` members.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The next page number after a page with this `meta`: `None` when `current_page >= total_pages` or when the
/// pagination members are missing (a non-paginated response).
#[must_use]
pub fn next_page(meta: Option<&PageMeta>) -> Option<u32> {
    let meta = meta?;
    let current = meta.current_page?;
    let total = meta.total_pages?;
    (current < total).then_some(current + 1)
}

/// The `included` array, indexed by `(type, id)`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Included {
    items: Vec<Resource<Value>>,
    index: BTreeMap<(String, String), usize>,
}

impl Included {
    /// Indexes `items` (a later duplicate of the same `(type, id)` is ignored).
    #[must_use]
    pub fn new(items: Vec<Resource<Value>>) -> Self {
        let mut index = BTreeMap::new();
        for (i, r) in items.iter().enumerate() {
            index.entry((r.kind.clone(), r.id.clone())).or_insert(i);
        }
        Self { items, index }
    }

    /// All included resources, in document order.
    #[must_use]
    pub fn all(&self) -> &[Resource<Value>] {
        &self.items
    }

    /// Whether nothing was included.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The included resource with this identifier, untyped.
    #[must_use]
    pub fn get(&self, id: &ResourceIdentifier) -> Option<&Resource<Value>> {
        self.index.get(&(id.kind.clone(), id.id.clone())).map(|&i| &self.items[i])
    }

    /// The included resource with this identifier, with its attributes decoded as `A`.
    ///
    /// # Errors
    /// [`api_core::DecodeError`] when it is included but its attributes do not match `A`.
    pub fn resolve<A: DeserializeOwned>(
        &self,
        id: &ResourceIdentifier,
    ) -> Result<Option<Resource<A>>, api_core::DecodeError> {
        self.get(id).map(Resource::decode).transpose()
    }
}

impl Serialize for Included {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.items.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Included {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self::new(Option::<Vec<Resource<Value>>>::deserialize(d)?.unwrap_or_default()))
    }
}

/// A response document. `T` is `Resource<A>` for one resource, `Vec<Resource<A>>` for a collection, or
/// `Option<Resource<A>>` where `data` may be null.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document<T> {
    /// Primary data.
    pub data: T,
    /// Included resources (absent unless requested with `include`).
    #[serde(default, skip_serializing_if = "Included::is_empty")]
    pub included: Included,
    /// Top-level `meta` (pagination for collections).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<PageMeta>,
    /// Top-level `links` (`first`, `last`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub links: Option<Value>,
}

impl<T> Document<T> {
    /// The included resource that `resource`'s to-one relationship `name` points to, decoded as `B`.
    /// `Ok(None)` when the relationship is absent, null, or its target was not included.
    ///
    /// ```
    /// use productive_api::jsonapi::{Document, Resource};
    /// use serde_json::Value;
    /// let doc: Document<Resource<Value>> = serde_json::from_str(r#"{
    ///   "data": {"id": "1", "type": "projects", "attributes": {"name": "Site"},
    ///            "relationships": {"company": {"data": {"type": "companies", "id": "7"}}}},
    ///   "included": [{"id": "7", "type": "companies", "attributes": {"name": "Acme"}}]
    /// }"#).unwrap();
    /// let company = doc.related::<_, Value>(&doc.data, "company").unwrap().unwrap();
    /// assert_eq!(company.attributes["name"], "Acme");
    /// ```
    ///
    /// # Errors
    /// [`api_core::DecodeError`] when the included resource's attributes do not match `B`.
    pub fn related<A, B: DeserializeOwned>(
        &self,
        resource: &Resource<A>,
        name: &str,
    ) -> Result<Option<Resource<B>>, api_core::DecodeError> {
        match resource.related_id(name) {
            Some(id) => self.included.resolve(id),
            None => Ok(None),
        }
    }

    /// The included resources that `resource`'s relationship `name` points to (those not included are skipped).
    ///
    /// # Errors
    /// [`api_core::DecodeError`] when an included resource's attributes do not match `B`.
    pub fn related_many<A, B: DeserializeOwned>(
        &self,
        resource: &Resource<A>,
        name: &str,
    ) -> Result<Vec<Resource<B>>, api_core::DecodeError> {
        let mut out = Vec::new();
        for id in resource.related_ids(name) {
            if let Some(r) = self.included.resolve(id)? {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// The next page number, per [`next_page`].
    #[must_use]
    pub fn next_page(&self) -> Option<u32> {
        next_page(self.meta.as_ref())
    }
}

/// The resource object of a write (create/update) document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WriteResource {
    /// The type.
    #[serde(rename = "type")]
    pub kind: String,
    /// The id (updates only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Only the attributes that were set.
    #[serde(default)]
    pub attributes: Map<String, Value>,
    /// Relationship linkage.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub relationships: BTreeMap<String, Relationship>,
}

/// A create/update body: `{"data": {"type", "id"?, "attributes", "relationships"}}`.
///
/// ```
/// use productive_api::jsonapi::WriteDocument;
/// #[derive(serde::Serialize)]
/// struct Attrs { name: String, #[serde(skip_serializing_if = "Option::is_none")] budget: Option<bool> }
/// let doc = WriteDocument::create("projects")
///     .attributes(&Attrs { name: "Site".into(), budget: None }).unwrap()
///     .relate("company", "companies", 7);
/// assert_eq!(serde_json::to_value(&doc).unwrap(), serde_json::json!({"data": {
///     "type": "projects", "attributes": {"name": "Site"},
///     "relationships": {"company": {"data": {"type": "companies", "id": "7"}}}}}));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WriteDocument {
    /// The resource.
    pub data: WriteResource,
}

impl WriteDocument {
    /// A create document for `kind`.
    #[must_use]
    pub fn create(kind: &str) -> Self {
        Self {
            data: WriteResource {
                kind: kind.to_owned(),
                id: None,
                attributes: Map::new(),
                relationships: BTreeMap::new(),
            },
        }
    }

    /// An update document for `kind` `id`.
    #[must_use]
    pub fn update(kind: &str, id: impl fmt::Display) -> Self {
        let mut d = Self::create(kind);
        d.data.id = Some(id.to_string());
        d
    }

    /// Merges the fields of `attrs` (a struct serializing as a JSON object) into the attributes; `null` values
    /// are dropped, so `Option` fields that are `None` are never sent (use [`WriteDocument::attribute`] with
    /// `Value::Null` to clear a field explicitly).
    ///
    /// # Errors
    /// When `attrs` does not serialize to a JSON object.
    pub fn attributes<T: Serialize + ?Sized>(mut self, attrs: &T) -> Result<Self, serde_json::Error> {
        match serde_json::to_value(attrs)? {
            Value::Object(m) => {
                for (k, v) in m {
                    if !v.is_null() {
                        self.data.attributes.insert(k, v);
                    }
                }
                Ok(self)
            }
            Value::Null => Ok(self),
            other => Err(serde::ser::Error::custom(format!("attributes must be an object, got {other}"))),
        }
    }

    /// Sets one attribute (including `null`).
    #[must_use]
    pub fn attribute(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.data.attributes.insert(name.to_owned(), value.into());
        self
    }

    /// Adds a to-one relationship `name` → `{kind, id}`.
    #[must_use]
    pub fn relate(mut self, name: &str, kind: &str, id: impl fmt::Display) -> Self {
        self.data.relationships.insert(name.to_owned(), Relationship::to_one(kind, id));
        self
    }

    /// Adds a to-one relationship when `id` is `Some`.
    #[must_use]
    pub fn relate_opt<I: fmt::Display>(self, name: &str, kind: &str, id: Option<I>) -> Self {
        match id {
            Some(id) => self.relate(name, kind, id),
            None => self,
        }
    }

    /// Adds a to-many relationship.
    #[must_use]
    pub fn relate_many(mut self, name: &str, ids: Vec<ResourceIdentifier>) -> Self {
        self.data.relationships.insert(name.to_owned(), Relationship::to_many(ids));
        self
    }
}

/// The `source` of an error object.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ErrorSource {
    /// A JSON pointer into the request document (`/data/attributes/name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
    /// The query parameter that caused the error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
}

/// One JSON:API error object. `status` is accepted as a number (Productive) or a string (the spec).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ErrorObject {
    /// Error id.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "opt_string_or_number")]
    pub id: Option<String>,
    /// HTTP status as text (`"400"`), whatever JSON type it came as.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "opt_string_or_number")]
    pub status: Option<String>,
    /// Application code.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "opt_string_or_number")]
    pub code: Option<String>,
    /// Short summary (`Unsupported Filter`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Explanation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Where in the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<ErrorSource>,
    /// Any `meta`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Value>,
    /// Unknown members.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl fmt::Display for ErrorObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(s) = &self.status {
            parts.push(s.clone());
        }
        if let Some(t) = &self.title {
            parts.push(t.clone());
        }
        if let Some(d) = &self.detail {
            parts.push(d.clone());
        }
        if let Some(p) = self.source.as_ref().and_then(|s| s.pointer.as_ref()) {
            parts.push(format!("at {p}"));
        }
        f.write_str(&parts.join(": "))
    }
}

/// An error document `{"errors": [...]}`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ErrorDocument {
    /// The errors.
    pub errors: Vec<ErrorObject>,
    /// Top-level `meta`, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Value>,
}

impl ErrorDocument {
    /// Parses an error body; `None` when it is not an error document.
    #[must_use]
    pub fn parse(body: &[u8]) -> Option<Self> {
        serde_json::from_slice(body).ok()
    }

    /// An error document with one error (used by fakes and tests).
    #[must_use]
    pub fn single(status: u16, title: &str, detail: &str) -> Self {
        Self {
            errors: vec![ErrorObject {
                status: Some(status.to_string()),
                title: Some(title.to_owned()),
                detail: Some(detail.to_owned()),
                ..ErrorObject::default()
            }],
            meta: None,
        }
    }
}

impl fmt::Display for ErrorDocument {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let all: Vec<String> = self.errors.iter().map(ToString::to_string).collect();
        f.write_str(&all.join("; "))
    }
}

/// A filter operator: `filter[field][op]=value`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FilterOp {
    /// `eq`.
    Eq,
    /// `not_eq`.
    NotEq,
    /// `contains`.
    Contains,
    /// `not_contain`.
    NotContain,
    /// `gt`.
    Gt,
    /// `gt_eq`.
    GtEq,
    /// `lt`.
    Lt,
    /// `lt_eq`.
    LtEq,
    /// Any other operator, sent as written.
    Other(String),
}

impl FilterOp {
    /// The wire name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Self::Eq => "eq",
            Self::NotEq => "not_eq",
            Self::Contains => "contains",
            Self::NotContain => "not_contain",
            Self::Gt => "gt",
            Self::GtEq => "gt_eq",
            Self::Lt => "lt",
            Self::LtEq => "lt_eq",
            Self::Other(s) => s,
        }
    }

    /// Parses a wire name (unknown names become [`FilterOp::Other`]).
    #[must_use]
    pub fn parse(s: &str) -> Self {
        match s {
            "eq" => Self::Eq,
            "not_eq" => Self::NotEq,
            "contains" => Self::Contains,
            "not_contain" => Self::NotContain,
            "gt" => Self::Gt,
            "gt_eq" => Self::GtEq,
            "lt" => Self::Lt,
            "lt_eq" => Self::LtEq,
            other => Self::Other(other.to_owned()),
        }
    }
}

/// One filter condition: `field`, an optional operator, a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// The field (`name`, `company_id`).
    pub field: String,
    /// The operator (`None` = plain `filter[field]=v`).
    pub op: Option<FilterOp>,
    /// The value (comma-separate several ids).
    pub value: String,
}

impl Filter {
    /// `filter[field]=value`.
    #[must_use]
    pub fn eq(field: &str, value: impl fmt::Display) -> Self {
        Self { field: field.to_owned(), op: None, value: value.to_string() }
    }

    /// `filter[field][op]=value`.
    #[must_use]
    pub fn op(field: &str, op: FilterOp, value: impl fmt::Display) -> Self {
        Self { field: field.to_owned(), op: Some(op), value: value.to_string() }
    }

    fn key(&self, prefix: &str) -> String {
        match &self.op {
            None => format!("{prefix}[{}]", self.field),
            Some(op) => format!("{prefix}[{}][{}]", self.field, op.as_str()),
        }
    }
}

/// A logical operator for a filter group: `filter[$op]=and|or`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogicalOp {
    /// All operands.
    And,
    /// Any operand.
    Or,
}

impl LogicalOp {
    /// The wire name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::And => "and",
            Self::Or => "or",
        }
    }
}

/// Query parameters of a JSON:API request, in order.
///
/// ```
/// use productive_api::jsonapi::{Filter, FilterOp, LogicalOp, Query};
/// let q = Query::new()
///     .include(["company", "project_manager"])
///     .filter("name", "Acme")
///     .filter_op("created_at", FilterOp::GtEq, "2026-01-01")
///     .sort("-created_at")
///     .page(2, 500);
/// assert_eq!(q.to_query_string(),
///     "include=company%2Cproject_manager&filter%5Bname%5D=Acme&filter%5Bcreated_at%5D%5Bgt_eq%5D=2026-01-01\
///      &sort=-created_at&page%5Bnumber%5D=2&page%5Bsize%5D=200");
/// let g = Query::new().filter_group(LogicalOp::Or, [Filter::eq("email", "a@x.io"), Filter::eq("email", "b@x.io")]);
/// assert_eq!(g.pairs()[0], ("filter[$op]".to_string(), "or".to_string()));
/// assert_eq!(g.pairs()[1], ("filter[0][email]".to_string(), "a@x.io".to_string()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// An empty query.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn set(mut self, key: String, value: String) -> Self {
        self.pairs.retain(|(k, _)| *k != key);
        self.pairs.push((key, value));
        self
    }

    /// `include=a,b.c` (merged with earlier includes).
    #[must_use]
    pub fn include<I: IntoIterator<Item = S>, S: AsRef<str>>(mut self, paths: I) -> Self {
        let mut all: Vec<String> = self
            .pairs
            .iter()
            .find(|(k, _)| k == "include")
            .map(|(_, v)| v.split(',').map(str::to_owned).collect())
            .unwrap_or_default();
        for p in paths {
            let p = p.as_ref().trim().to_owned();
            if !p.is_empty() && !all.contains(&p) {
                all.push(p);
            }
        }
        self.pairs.retain(|(k, _)| k != "include");
        if !all.is_empty() {
            self.pairs.push(("include".into(), all.join(",")));
        }
        self
    }

    /// `filter[field]=value`.
    #[must_use]
    pub fn filter(self, field: &str, value: impl fmt::Display) -> Self {
        self.with_filter(&Filter::eq(field, value))
    }

    /// `filter[field][op]=value`.
    #[must_use]
    pub fn filter_op(self, field: &str, op: FilterOp, value: impl fmt::Display) -> Self {
        self.with_filter(&Filter::op(field, op, value))
    }

    /// Adds a [`Filter`].
    #[must_use]
    pub fn with_filter(self, f: &Filter) -> Self {
        self.set(f.key("filter"), f.value.clone())
    }

    /// A logical group: `filter[$op]=or&filter[0][field]=v&filter[1][field][op]=v`.
    #[must_use]
    pub fn filter_group(mut self, op: LogicalOp, operands: impl IntoIterator<Item = Filter>) -> Self {
        self = self.set("filter[$op]".into(), op.as_str().into());
        for (i, f) in operands.into_iter().enumerate() {
            self = self.set(f.key(&format!("filter[{i}]")), f.value.clone());
        }
        self
    }

    /// `sort=field` (prefix `-` for descending; comma-separate several).
    #[must_use]
    pub fn sort(self, field: &str) -> Self {
        self.set("sort".into(), field.to_owned())
    }

    /// `page[number]=n&page[size]=s`, the size clamped to `1..=`[`MAX_PAGE_SIZE`].
    #[must_use]
    pub fn page(self, number: u32, size: u32) -> Self {
        self.page_number(number).page_size(size)
    }

    /// `page[number]=n` (1-based; 0 is sent as 1).
    #[must_use]
    pub fn page_number(self, number: u32) -> Self {
        self.set("page[number]".into(), number.max(1).to_string())
    }

    /// `page[size]=s`, clamped to `1..=`[`MAX_PAGE_SIZE`].
    #[must_use]
    pub fn page_size(self, size: u32) -> Self {
        self.set("page[size]".into(), size.clamp(1, MAX_PAGE_SIZE).to_string())
    }

    /// Any other parameter.
    #[must_use]
    pub fn param(self, key: &str, value: impl fmt::Display) -> Self {
        self.set(key.to_owned(), value.to_string())
    }

    /// The parameters, in order.
    #[must_use]
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// The value of a parameter.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The page size set, if any.
    #[must_use]
    pub fn page_size_value(&self) -> Option<u32> {
        self.get("page[size]").and_then(|v| v.parse().ok())
    }

    /// The query as an `application/x-www-form-urlencoded` string.
    #[must_use]
    pub fn to_query_string(&self) -> String {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.pairs {
            s.append_pair(k, v);
        }
        s.finish()
    }
}

fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!("expected a string or a number, got {other}"))),
    }
}

fn opt_string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(serde::de::Error::custom(format!("expected a string or a number, got {other}"))),
    }
}

/// Deserializes a string or number as `String` (for ids that arrive as numbers in webhooks).
///
/// # Errors
/// When the value is neither.
pub fn deserialize_string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    string_or_number(d)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    // The project sample of the P-old docs (projects.html), trimmed to the members the layer cares about:
    // `organization` carries linkage, the others only `meta.included = false`.
    const PROJECT_SAMPLE: &str = r#"{
      "data": {
        "id": "804", "type": "projects",
        "attributes": {"name": "Website", "project_type_id": 2, "duplication_status": "idle",
                       "created_at": "2025-09-23T06:07:15.649+02:00", "brand_new_field": [1, 2]},
        "relationships": {
          "organization": {"data": {"type": "organizations", "id": "1"}},
          "company": {"meta": {"included": false}},
          "project_manager": {"meta": {"included": false}},
          "workflow": {"meta": {"included": false}}
        }
      },
      "meta": {}
    }"#;

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(default)]
    struct P {
        name: String,
        project_type_id: Option<u32>,
        #[serde(flatten)]
        extra: Map<String, Value>,
    }

    #[test]
    fn decodes_documented_sample_with_absent_relationships() {
        let doc: Document<Resource<P>> = serde_json::from_str(PROJECT_SAMPLE).unwrap();
        assert_eq!(doc.data.id, "804");
        assert_eq!(doc.data.attributes.name, "Website");
        assert_eq!(doc.data.attributes.project_type_id, Some(2));
        assert!(doc.data.attributes.extra.contains_key("brand_new_field"), "unknown attributes kept");
        let company = doc.data.relationship("company").unwrap();
        assert!(company.data.is_absent());
        assert!(!company.is_included());
        assert_eq!(doc.data.related_id("organization"), Some(&ResourceIdentifier::new("organizations", 1)));
        assert!(doc.data.relationship("organization").unwrap().is_included());
        assert!(doc.included.is_empty());
        assert_eq!(doc.next_page(), None, "no pagination meta");
        assert!(doc.related::<_, Value>(&doc.data, "company").unwrap().is_none());
    }

    #[test]
    fn resolves_included_to_one_and_to_many_and_null() {
        let doc: Document<Vec<Resource<Value>>> = serde_json::from_value(json!({
            "data": [{
                "id": "20305431", "type": "tasks", "attributes": {"title": "Kick-off"},
                "relationships": {
                    "project": {"data": {"type": "projects", "id": "1049891"}},
                    "assignee": {"data": null},
                    "subscribers": {"data": [{"type": "people", "id": "1"}, {"type": "people", "id": "2"},
                                             {"type": "people", "id": "3"}]}
                }
            }],
            "included": [
                {"id": "1049891", "type": "projects", "attributes": {"name": "Onboarding"}},
                {"id": "1", "type": "people", "attributes": {"email": "a@x.io"}},
                {"id": "2", "type": "people", "attributes": {"email": "b@x.io"}},
                {"id": "1", "type": "companies", "attributes": {"name": "same id, other type"}}
            ],
            "meta": {"current_page": 1, "total_pages": 1, "total_count": 1, "page_size": 30, "max_page_size": 200}
        }))
        .unwrap();
        let task = &doc.data[0];
        let project = doc.related::<_, Value>(task, "project").unwrap().unwrap();
        assert_eq!(project.attributes["name"], "Onboarding");
        assert_eq!(task.relationship("assignee").unwrap().data, RelationshipData::Null);
        assert!(doc.related::<_, Value>(task, "assignee").unwrap().is_none());
        let subs = doc.related_many::<_, Value>(task, "subscribers").unwrap();
        assert_eq!(subs.len(), 2, "person 3 was not included");
        assert_eq!(subs[1].attributes["email"], "b@x.io");
        let c = doc.included.get(&ResourceIdentifier::new("companies", "1")).unwrap();
        assert_eq!(c.attributes["name"], "same id, other type", "keyed by (type, id)");
        assert_eq!(doc.meta.as_ref().unwrap().total_count, Some(1));
    }

    #[test]
    fn resolve_decode_error_names_the_path() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Strict {
            name: u32,
        }
        let inc = Included::new(vec![
            serde_json::from_value(json!({"id": "5", "type": "companies", "attributes": {"name": "Acme"}})).unwrap(),
        ]);
        let err = inc.resolve::<Strict>(&ResourceIdentifier::new("companies", "5")).unwrap_err();
        assert!(err.path.contains("companies[5].attributes.name"), "{}", err.path);
    }

    #[test]
    fn numeric_ids_are_accepted_as_strings() {
        let r: Resource<Value> = serde_json::from_value(json!({"id": 42, "type": "tasks"})).unwrap();
        assert_eq!(r.id, "42");
        assert_eq!(r.attributes, Value::Object(Map::new()), "missing attributes decode as default");
    }

    #[test]
    fn missing_attributes_of_a_type_without_a_default_is_a_decode_error() {
        // JSON:API makes `attributes` optional (P-guide resource-representation: only `id` and `type` are
        // required), so a body without it must not panic for an attributes type that cannot be defaulted.
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Strict {
            name: String,
        }
        let body = br#"{"data": [{"id": "1", "type": "companies", "attributes": {"name": "Acme"}},
                                  {"id": "2", "type": "companies"}]}"#;
        let e = api_core::decode_json::<Document<Vec<Resource<Strict>>>>(body).unwrap_err();
        assert!(e.path.starts_with("data[1]"), "{}", e.path);
        assert!(e.message.contains("attributes"), "{}", e.message);
        // the defaultable types still decode a missing member
        let ok = api_core::decode_json::<Document<Vec<Resource<Value>>>>(body).unwrap();
        assert_eq!(ok.data[1].attributes, json!({}));
        let present = api_core::decode_json::<Document<Resource<Strict>>>(
            br#"{"data": {"id": "1", "type": "companies", "attributes": {"name": "Acme"}}}"#,
        );
        assert!(present.is_ok());
    }

    #[test]
    fn pagination_stops_at_total_pages() {
        let m = |c, t| PageMeta { current_page: Some(c), total_pages: Some(t), ..PageMeta::default() };
        assert_eq!(next_page(Some(&m(1, 3))), Some(2));
        assert_eq!(next_page(Some(&m(3, 3))), None);
        assert_eq!(next_page(Some(&m(4, 3))), None, "past the end");
        assert_eq!(next_page(Some(&m(1, 0))), None, "empty collection: total_pages 0");
        assert_eq!(next_page(None), None);
        assert_eq!(next_page(Some(&PageMeta::default())), None);
    }

    #[test]
    fn write_document_sends_only_set_attributes_and_relationships() {
        #[derive(Serialize)]
        struct NewDeal {
            name: String,
            #[serde(skip_serializing_if = "Option::is_none")]
            budget: Option<bool>,
            probability: Option<u32>,
        }
        let doc = WriteDocument::create("deals")
            .attributes(&NewDeal { name: "Onboarding".into(), budget: Some(true), probability: None })
            .unwrap()
            .relate("company", "companies", 123)
            .relate_opt::<u32>("project", "projects", None)
            .relate_many("subscribers", vec![ResourceIdentifier::new("people", 1)]);
        assert_eq!(
            serde_json::to_value(&doc).unwrap(),
            json!({"data": {"type": "deals", "attributes": {"name": "Onboarding", "budget": true},
                "relationships": {"company": {"data": {"type": "companies", "id": "123"}},
                                  "subscribers": {"data": [{"type": "people", "id": "1"}]}}}})
        );
        let upd = WriteDocument::update("tasks", 9).attribute("closed", true).attribute("due_date", Value::Null);
        assert_eq!(
            serde_json::to_value(&upd).unwrap(),
            json!({"data": {"type": "tasks", "id": "9", "attributes": {"closed": true, "due_date": null}}})
        );
        assert!(WriteDocument::create("x").attributes(&5).is_err());
    }

    #[test]
    fn error_documents_with_number_or_string_status() {
        // P-guide: unknown include; P-old: unsupported filter (status as a JSON number).
        let e = ErrorDocument::parse(
            br#"{"errors":[{"status":400,"title":"Unsupported Include","detail":"Include 'userz' is not supported on this endpoint"}]}"#,
        )
        .unwrap();
        assert_eq!(e.errors[0].status.as_deref(), Some("400"));
        assert_eq!(e.errors[0].title.as_deref(), Some("Unsupported Include"));
        let e = ErrorDocument::parse(
            br#"{"errors":[{"status":"422","title":"Invalid","detail":"can't be blank","source":{"pointer":"/data/attributes/name"},"code":"blank"}]}"#,
        )
        .unwrap();
        assert_eq!(e.errors[0].status.as_deref(), Some("422"));
        assert_eq!(e.errors[0].source.as_ref().unwrap().pointer.as_deref(), Some("/data/attributes/name"));
        assert_eq!(e.to_string(), "422: Invalid: can't be blank: at /data/attributes/name");
        // smeta stub: detail only
        let e = ErrorDocument::parse(br#"{"errors":[{"detail":"Validation failed"}]}"#).unwrap();
        assert_eq!(e.errors[0].detail.as_deref(), Some("Validation failed"));
        assert!(ErrorDocument::parse(b"<html>").is_none());
    }

    #[test]
    fn query_builder() {
        let q = Query::new()
            .include(["company"])
            .include(["company", "project_manager"])
            .filter("name", "Acme & Co")
            .filter_op("name", FilterOp::Contains, "Acme")
            .filter("name", "Acme")
            .page(0, 0);
        assert_eq!(
            q.pairs(),
            &[
                ("include".to_string(), "company,project_manager".to_string()),
                ("filter[name][contains]".to_string(), "Acme".to_string()),
                ("filter[name]".to_string(), "Acme".to_string()),
                ("page[number]".to_string(), "1".to_string()),
                ("page[size]".to_string(), "1".to_string()),
            ]
        );
        assert_eq!(Query::new().page_size(1000).page_size_value(), Some(200));
        assert!(Query::new().include(Vec::<&str>::new()).pairs().is_empty(), "no empty include=");
        let g = Query::new()
            .filter_group(LogicalOp::Or, [Filter::eq("email", "a@x.io"), Filter::op("name", FilterOp::NotEq, "B")]);
        assert_eq!(
            g.to_query_string(),
            "filter%5B%24op%5D=or&filter%5B0%5D%5Bemail%5D=a%40x.io&filter%5B1%5D%5Bname%5D%5Bnot_eq%5D=B"
        );
        assert_eq!(FilterOp::parse("gt_eq"), FilterOp::GtEq);
        assert_eq!(FilterOp::parse("starts_with").as_str(), "starts_with");
    }
}
