//! Track API v2: `/api/v2/entity` (one operation) and `/api/v2/batch` (many, split automatically).
//!
//! A 207 answer is a partial success: "At least one object in the batch was invalid; all other requests are
//! accepted". [`Client::batch`] returns those failures by index into the caller's list ([`BatchReport`]); they are
//! not retried (the same operation would fail again).

use api_core::{Body, Request};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::{
    Client, Error, EventId, Identifier, VendorError,
    error::ErrorItem,
    limits::{MAX_BATCH_BYTES, MAX_ENTITY_BYTES, ValidationError, check_attributes, check_event},
    track::Platform,
};

/// One v2 operation (`{"type":…,"action":…,"identifiers":{…},…}`), built by the typed constructors or from raw
/// JSON ([`Operation::raw`]) for actions this crate does not model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Operation(Map<String, Value>);

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

impl Operation {
    pub(crate) fn from_map(m: Map<String, Value>) -> Self {
        Self(m)
    }

    pub(crate) fn insert(&mut self, key: &str, value: Value) {
        self.0.insert(key.to_owned(), value);
    }

    pub(crate) fn person(action: &str, who: &Identifier) -> Self {
        Self(obj(json!({"type": "person", "identifiers": who, "action": action})))
    }

    /// `person`/`identify` with attributes (add `_update`, `cio_subscription_preferences` etc. as attributes).
    #[must_use]
    pub fn identify(who: &Identifier, attributes: Map<String, Value>) -> Self {
        let mut op = Self::person("identify", who);
        op.0.insert("attributes".into(), Value::Object(attributes));
        op
    }

    /// `person`/`event` with a dedup `id` (v2 event data goes in `attributes`, not `data`).
    #[must_use]
    pub fn event(who: &Identifier, name: &str, id: EventId, timestamp: Option<i64>, data: Map<String, Value>) -> Self {
        let mut op = Self::person("event", who);
        op.0.insert("name".into(), name.into());
        op.0.insert("id".into(), id.to_string().into());
        if let Some(ts) = timestamp {
            op.0.insert("timestamp".into(), ts.into());
        }
        if !data.is_empty() {
            op.0.insert("attributes".into(), Value::Object(data));
        }
        op
    }

    /// `person`/`delete`.
    #[must_use]
    pub fn delete(who: &Identifier) -> Self {
        Self::person("delete", who)
    }

    /// `person`/`suppress`.
    #[must_use]
    pub fn suppress(who: &Identifier) -> Self {
        Self::person("suppress", who)
    }

    /// `person`/`unsuppress`.
    #[must_use]
    pub fn unsuppress(who: &Identifier) -> Self {
        Self::person("unsuppress", who)
    }

    /// `person`/`merge` (no `identifiers` key; `primary` must exist).
    #[must_use]
    pub fn merge(primary: &Identifier, secondary: &Identifier) -> Self {
        Self(obj(json!({"type": "person", "action": "merge", "primary": primary, "secondary": secondary})))
    }

    /// `person`/`add_device` (`device.token` replaces v1's `device.id`).
    #[must_use]
    pub fn add_device(who: &Identifier, token: &str, platform: &Platform, last_used: Option<i64>) -> Self {
        let mut device = obj(json!({"token": token, "platform": platform}));
        if let Some(t) = last_used {
            device.insert("last_used".into(), t.into());
        }
        let mut op = Self::person("add_device", who);
        op.0.insert("device".into(), Value::Object(device));
        op
    }

    /// `person`/`delete_device`.
    #[must_use]
    pub fn delete_device(who: &Identifier, token: &str) -> Self {
        let mut op = Self::person("delete_device", who);
        op.0.insert("device".into(), json!({"token": token}));
        op
    }

    /// `object`/`identify` (create or update an object of type `object_type_id`).
    #[must_use]
    pub fn identify_object(object_type_id: &str, object_id: &str, attributes: &Map<String, Value>) -> Self {
        Self(obj(json!({
            "type": "object",
            "identifiers": {"object_type_id": object_type_id, "object_id": object_id},
            "action": "identify",
            "attributes": attributes,
        })))
    }

    /// Any operation as raw JSON (must be an object).
    ///
    /// # Errors
    /// [`ValidationError::Rule`] when `value` is not an object.
    pub fn raw(value: Value) -> Result<Self, ValidationError> {
        match value {
            Value::Object(m) => Ok(Self(m)),
            _ => Err(ValidationError::Rule("a v2 operation must be a JSON object".into())),
        }
    }

    /// Sets `timestamp` (unix seconds; orders identifies like v1's `_timestamp`).
    #[must_use]
    pub fn with_timestamp(mut self, unix_seconds: i64) -> Self {
        self.0.insert("timestamp".into(), unix_seconds.into());
        self
    }

    /// The operation as JSON.
    #[must_use]
    pub fn as_json(&self) -> &Map<String, Value> {
        &self.0
    }

    /// The `action`.
    #[must_use]
    pub fn action(&self) -> Option<&str> {
        self.0.get("action").and_then(Value::as_str)
    }

    /// Whether repeating it has no further effect: everything but `merge` and events without an `id`.
    #[must_use]
    pub fn is_idempotent(&self) -> bool {
        match self.action() {
            Some("merge") => false,
            Some("event" | "page" | "screen") => self.0.get("id").is_some_and(|v| !v.is_null()),
            _ => true,
        }
    }

    /// Checks the documented limits: identifier and attribute limits for identify, name/data for events.
    ///
    /// # Errors
    /// The first limit broken.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if let Some(Value::Object(ids)) = self.0.get("identifiers") {
            for key in ["id", "email", "cio_id", "object_id", "cio_object_id"] {
                if let Some(Value::String(v)) = ids.get(key) {
                    crate::limits::check_identifier_value(v)?;
                }
            }
        }
        let attrs = self.0.get("attributes").and_then(Value::as_object);
        match self.action() {
            Some("identify") => {
                if let Some(a) = attrs {
                    check_attributes(a)?;
                }
            }
            Some("event" | "page" | "screen") => {
                let name = self.0.get("name").and_then(Value::as_str).unwrap_or_default();
                check_event(name, attrs)?;
            }
            Some("add_relationships" | "delete_relationships") => {
                let rels = self.0.get("cio_relationships").and_then(Value::as_array);
                if rels.is_none_or(Vec::is_empty) {
                    return Err(ValidationError::Rule(
                        "add_relationships/delete_relationships need at least one relationship".into(),
                    ));
                }
            }
            _ => {}
        }
        // relationship attributes follow the attribute limits (Track spec "Objects and relationships: the same
        // per-field limits")
        if let Some(rels) = self.0.get("cio_relationships").and_then(Value::as_array) {
            for r in rels {
                if let Some(a) = r.get("relationship_attributes").and_then(Value::as_object) {
                    check_attributes(a)?;
                }
                if let Some(Value::Object(ids)) = r.get("identifiers") {
                    for v in ids.values().filter_map(Value::as_str) {
                        crate::limits::check_identifier_value(v)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// An operation that Customer.io rejected inside an accepted batch (a 207 item).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedOperation {
    /// Index into the list passed to [`Client::batch`].
    pub index: usize,
    /// The vendor's item (`batch_index` there is relative to the HTTP request that carried it).
    pub error: ErrorItem,
}

/// A batch request that failed as a whole; its operations and all later ones were not accepted.
#[derive(Debug)]
pub struct BatchAbort {
    /// Index (into the caller's list) of the first operation not accepted.
    pub first_unaccepted: usize,
    /// Why.
    pub error: Error,
}

/// The outcome of [`Client::batch`].
#[derive(Debug, Default)]
pub struct BatchReport {
    /// Operations passed in.
    pub total: usize,
    /// HTTP requests made (one per chunk of ≤ 500 KB).
    pub requests: usize,
    /// Operations Customer.io rejected (207), by index into the caller's list.
    pub rejected: Vec<RejectedOperation>,
    /// Set when a chunk failed as a whole (after retries): operations from `first_unaccepted` on were not accepted.
    pub aborted: Option<BatchAbort>,
}

impl BatchReport {
    /// No rejection and no abort.
    #[must_use]
    pub fn is_complete(&self) -> bool {
        self.rejected.is_empty() && self.aborted.is_none()
    }

    /// Indexes of the operations Customer.io rejected.
    #[must_use]
    pub fn rejected_indexes(&self) -> Vec<usize> {
        self.rejected.iter().map(|r| r.index).collect()
    }

    /// Indexes that were neither accepted nor rejected because a chunk failed (retry these later).
    #[must_use]
    pub fn unaccepted(&self) -> std::ops::Range<usize> {
        match &self.aborted {
            Some(a) => a.first_unaccepted..self.total,
            None => self.total..self.total,
        }
    }

    /// `Err` with the abort's error when a chunk failed; otherwise the report.
    ///
    /// # Errors
    /// The abort's [`Error`].
    pub fn into_result(mut self) -> Result<Self, Error> {
        match self.aborted.take() {
            Some(a) => Err(a.error),
            None => Ok(self),
        }
    }
}

/// Splits serialized operations into `{"batch":[…]}` bodies of at most `max_bytes` each, in order.
/// Returns `(first index, body)` pairs.
pub(crate) fn split_batches(ops: &[Vec<u8>], max_bytes: usize) -> Vec<(usize, Vec<u8>)> {
    const HEAD: &[u8] = b"{\"batch\":[";
    const TAIL: &[u8] = b"]}";
    let mut out = Vec::new();
    let mut current: Vec<u8> = Vec::new();
    let mut start = 0usize;
    let mut count = 0usize;
    for (i, op) in ops.iter().enumerate() {
        let added = op.len() + usize::from(count > 0);
        if count > 0 && HEAD.len() + current.len() + added + TAIL.len() > max_bytes {
            out.push((start, [HEAD, &current, TAIL].concat()));
            current.clear();
            count = 0;
            start = i;
        }
        if count > 0 {
            current.push(b',');
        }
        current.extend_from_slice(op);
        count += 1;
    }
    if count > 0 {
        out.push((start, [HEAD, &current, TAIL].concat()));
    }
    out
}

#[derive(Deserialize)]
struct PartialBody {
    #[serde(default)]
    errors: Vec<ErrorItem>,
}

impl Client {
    /// Sends one operation: `POST /api/v2/entity` (≤ 32 KB).
    ///
    /// # Errors
    /// [`Error::Invalid`] when the operation breaks a limit; others from the call.
    pub async fn entity(&self, op: &Operation) -> Result<(), Error> {
        op.validate()?;
        let bytes = serde_json::to_vec(op).map_err(|e| ValidationError::Serialize(e.to_string()))?;
        if bytes.len() > MAX_ENTITY_BYTES {
            return Err(
                ValidationError::OperationTooLarge { index: None, bytes: bytes.len(), max: MAX_ENTITY_BYTES }.into()
            );
        }
        let req = Request::post("/api/v2/entity")
            .body(Body::Json { bytes: Bytes::from(bytes), content_type: "application/json" })
            .idempotent(op.is_idempotent());
        self.track_send(req).await.map(drop)
    }

    /// Sends operations through `POST /api/v2/batch`, split into requests of ≤ 500 KB (each operation ≤ 32 KB),
    /// in order. A 207 lists invalid operations, returned as [`BatchReport::rejected`] with indexes into `ops`.
    /// A chunk that fails as a whole stops the run ([`BatchReport::aborted`]); later chunks are not sent.
    ///
    /// # Errors
    /// Only [`Error::Invalid`], before anything is sent, when an operation breaks a limit. Call failures are in the
    /// report (use [`BatchReport::into_result`] to turn an abort into an `Err`).
    pub async fn batch(&self, ops: &[Operation]) -> Result<BatchReport, Error> {
        let mut serialized = Vec::with_capacity(ops.len());
        for (i, op) in ops.iter().enumerate() {
            op.validate()?;
            let bytes = serde_json::to_vec(op).map_err(|e| ValidationError::Serialize(e.to_string()))?;
            if bytes.len() > MAX_ENTITY_BYTES {
                return Err(ValidationError::OperationTooLarge {
                    index: Some(i),
                    bytes: bytes.len(),
                    max: MAX_ENTITY_BYTES,
                }
                .into());
            }
            serialized.push(bytes);
        }
        let chunks = split_batches(&serialized, MAX_BATCH_BYTES);
        let mut report = BatchReport { total: ops.len(), ..BatchReport::default() };
        for (n, (start, body)) in chunks.iter().enumerate() {
            let end = chunks.get(n + 1).map_or(ops.len(), |c| c.0);
            let idempotent = ops[*start..end].iter().all(Operation::is_idempotent);
            let req = Request::post("/api/v2/batch")
                .body(Body::Json { bytes: Bytes::from(body.clone()), content_type: "application/json" })
                .idempotent(idempotent);
            report.requests += 1;
            match self.track_send(req).await {
                Ok(resp) if resp.status.as_u16() == 207 => match resp.json::<PartialBody>() {
                    Ok(parsed) => {
                        for item in parsed.errors {
                            let index = item.batch_index.map_or(*start, |i| start + i);
                            report.rejected.push(RejectedOperation { index, error: item });
                        }
                    }
                    Err(e) => {
                        // accepted in part, but we cannot tell which: report the chunk as not accepted
                        report.aborted = Some(BatchAbort { first_unaccepted: *start, error: e.into() });
                        break;
                    }
                },
                Ok(_) => {}
                Err(error) => {
                    report.aborted = Some(BatchAbort { first_unaccepted: *start, error });
                    break;
                }
            }
        }
        Ok(report)
    }
}

/// Parses a v2 error body's items (for callers holding a raw body).
#[must_use]
pub fn parse_v2_errors(body: &[u8]) -> Vec<ErrorItem> {
    match VendorError::parse(body) {
        VendorError::Items(items) => items,
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_the_byte_limit_and_keeps_order() {
        let ops: Vec<Vec<u8>> = (0..10).map(|i| format!("{{\"n\":{i}}}").into_bytes()).collect();
        // each op is 7 bytes; head+tail are 12; "{"batch":[" + 3 ops + 2 commas + "]}" = 12 + 21 + 2 = 35
        let chunks = split_batches(&ops, 35);
        assert_eq!(chunks.iter().map(|c| c.0).collect::<Vec<_>>(), vec![0, 3, 6, 9]);
        for (_, body) in &chunks {
            assert!(body.len() <= 35);
            let v: Value = serde_json::from_slice(body).unwrap();
            assert!(v["batch"].is_array());
        }
        let v: Value = serde_json::from_slice(&chunks[1].1).unwrap();
        assert_eq!(v["batch"][0]["n"], 3);
        assert_eq!(split_batches(&ops, 36).len(), 4);
        assert_eq!(split_batches(&ops, 1000).len(), 1);
        assert!(split_batches(&[], 1000).is_empty());
    }

    #[test]
    fn operations_shape() {
        let op = Operation::event(&Identifier::id("42"), "purchase", EventId::from_source_key_unix("k", 1), None, {
            let mut m = Map::new();
            m.insert("price".into(), json!(5));
            m
        });
        let v = serde_json::to_value(&op).unwrap();
        assert_eq!(v["type"], "person");
        assert_eq!(v["identifiers"], json!({"id":"42"}));
        assert_eq!(v["attributes"]["price"], 5);
        assert!(op.is_idempotent());
        assert!(!Operation::merge(&Identifier::id("1"), &Identifier::email("e@x.io")).is_idempotent());
        let m = serde_json::to_value(Operation::merge(&Identifier::id("1"), &Identifier::cio_id("c1"))).unwrap();
        assert_eq!(m, json!({"type":"person","action":"merge","primary":{"id":"1"},"secondary":{"cio_id":"c1"}}));
    }
}
