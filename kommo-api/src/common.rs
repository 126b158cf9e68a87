//! Types shared by several resources: entity types, tags, embedded references, batch write results.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Client, Error, TagId, hal};

/// The entity types that carry notes, tasks, tags, links and custom fields.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EntityType {
    /// `leads`.
    Leads,
    /// `contacts`.
    Contacts,
    /// `companies`.
    Companies,
    /// `customers`.
    Customers,
    /// Anything else (`catalog_elements`...), kept as sent.
    Other(String),
}

impl EntityType {
    /// The plural path/wire name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Self::Leads => "leads",
            Self::Contacts => "contacts",
            Self::Companies => "companies",
            Self::Customers => "customers",
            Self::Other(s) => s,
        }
    }

    /// Parses a wire name; singular forms (`lead`, `contact`, `company`, `customer`, as in events) are accepted.
    #[must_use]
    pub fn parse(s: &str) -> Self {
        match s {
            "leads" | "lead" => Self::Leads,
            "contacts" | "contact" => Self::Contacts,
            "companies" | "company" => Self::Companies,
            "customers" | "customer" => Self::Customers,
            other => Self::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for EntityType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for EntityType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EntityType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self::parse(&String::deserialize(d)?))
    }
}

/// A tag on an entity: `{id, name, color}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    /// Id.
    pub id: TagId,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Color (`null` for most tags).
    #[serde(default)]
    pub color: Option<String>,
}

/// A tag to set on an entity: by id or by name (Kommo creates unknown names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum TagRef {
    /// `{"id": 1}`.
    Id {
        /// Tag id.
        id: TagId,
    },
    /// `{"name": "vip"}`.
    Name {
        /// Tag name.
        name: String,
    },
}

impl From<&str> for TagRef {
    fn from(name: &str) -> Self {
        Self::Name { name: name.to_owned() }
    }
}

impl From<TagId> for TagRef {
    fn from(id: TagId) -> Self {
        Self::Id { id }
    }
}

/// `{"id": n}` inside `_embedded` of a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdRef {
    /// The id.
    pub id: u64,
}

/// What a batch write returned for one element: its id and `request_id` (plus `updated_at` on updates).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WriteResult {
    /// The entity id.
    pub id: u64,
    /// The `request_id` the element was sent with (set by the client when the caller gave none: the index).
    #[serde(default, deserialize_with = "string_or_number")]
    pub request_id: Option<String>,
    /// `updated_at` on updates.
    #[serde(default, deserialize_with = "crate::de::opt_i64")]
    pub updated_at: Option<i64>,
    /// Other members (`entity_id` on notes, `_links`...).
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s),
        // complex leads echo `["1"]`
        serde_json::Value::Array(a) => a.first().map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned)),
        other => Some(other.to_string()),
    })
}

/// Kommo's recommended (and for `leads/complex` mandatory) maximum elements per batch request.
pub const BATCH_SIZE: usize = 50;

/// Sends `items` in chunks of [`BATCH_SIZE`] with `request_id` set on each element (the caller's, or the element's
/// index), and returns the results in input order. A failing chunk stops the batch with [`Error::Batch`] listing
/// what was written before it (or the chunk error itself when it is the first chunk).
pub(crate) async fn batch_write<W: Serialize>(
    client: &Client,
    method: http::Method,
    path: &str,
    key: &str,
    items: &[W],
) -> Result<Vec<WriteResult>, Error> {
    let mut values = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let mut v = serde_json::to_value(item).map_err(|e| Error::InvalidRequest(e.to_string()))?;
        if let Some(obj) = v.as_object_mut() {
            let has = obj.get("request_id").is_some_and(|r| !r.is_null());
            if !has {
                obj.insert("request_id".into(), serde_json::Value::String(i.to_string()));
            }
        }
        values.push(v);
    }
    let rid = |v: &serde_json::Value| v.get("request_id").and_then(|r| r.as_str()).unwrap_or_default().to_owned();
    let mut out: Vec<WriteResult> = Vec::with_capacity(items.len());
    for (chunk_no, chunk) in values.chunks(BATCH_SIZE).enumerate() {
        let req = api_core::Request::new(method.clone(), path)
            .json(chunk)
            .map_err(|e| Error::InvalidRequest(e.to_string()))?;
        let res = async {
            let resp = client.send(req).await?;
            hal::decode_list::<WriteResult>(&resp, key, 1)
        }
        .await;
        match res {
            Ok(page) => {
                let mut results = page.items;
                // order as sent, by request_id
                let order: Vec<String> = chunk.iter().map(rid).collect();
                results.sort_by_key(|r| {
                    r.request_id.as_ref().and_then(|id| order.iter().position(|o| o == id)).unwrap_or(usize::MAX)
                });
                out.extend(results);
            }
            Err(e) if chunk_no == 0 => return Err(e),
            Err(e) => {
                let written = out.iter().map(|r| (r.request_id.clone().unwrap_or_default(), r.id)).collect();
                let not_written = values[chunk_no * BATCH_SIZE..].iter().map(rid).collect();
                return Err(Error::Batch { written, not_written, source: Box::new(e) });
            }
        }
    }
    Ok(out)
}
