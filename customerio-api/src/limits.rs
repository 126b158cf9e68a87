//! Customer.io's documented payload limits, checked before sending ([`ValidationError`]).
//!
//! Source: the Track spec's "Rate Limits" section. The v2 sizes are written "32 kb" and "500 kb"; whether that is
//! 1,000 or 1,024 bytes is not stated (customerio-node#162), so the guards use the smaller reading (1 kb = 1,000
//! bytes): a request that passes them is within the limit under either reading.

use serde_json::{Map, Value};

/// Longest identifier (`id`, `email`, `cio_id`), in bytes.
pub const MAX_IDENTIFIER_BYTES: usize = 150;
/// Longest attribute name, in bytes.
pub const MAX_ATTRIBUTE_NAME_BYTES: usize = 150;
/// Largest attribute value, in bytes (a string's UTF-8 bytes; other values as serialized JSON).
pub const MAX_ATTRIBUTE_VALUE_BYTES: usize = 1_000;
/// Most attributes in one identify call.
pub const MAX_ATTRIBUTES: usize = 300;
/// Longest event name, in bytes.
pub const MAX_EVENT_NAME_BYTES: usize = 100;
/// Largest event `data`, serialized, in bytes.
pub const MAX_EVENT_DATA_BYTES: usize = 100_000;
/// Largest v2 `/entity` request, and each operation inside a v2 batch, serialized, in bytes.
pub const MAX_ENTITY_BYTES: usize = 32_000;
/// Largest v2 `/batch` request, serialized, in bytes.
pub const MAX_BATCH_BYTES: usize = 500_000;

/// Keys of an identify body that are not attributes (reserved, special, or structured and limited elsewhere).
pub(crate) fn is_reserved_attribute(key: &str) -> bool {
    matches!(key, "id" | "email" | "created_at" | "anonymous_id" | "unsubscribed")
        || key.starts_with('_')
        || key.starts_with("cio_")
}

/// A request that breaks a documented limit, refused before sending.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// An identifier is empty.
    #[error("identifier is empty")]
    EmptyIdentifier,
    /// An identifier is longer than [`MAX_IDENTIFIER_BYTES`].
    #[error("identifier is {bytes} bytes, over the limit of {max}")]
    IdentifierTooLong {
        /// Its length.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// An attribute name is longer than [`MAX_ATTRIBUTE_NAME_BYTES`].
    #[error("attribute name {name:?} is {bytes} bytes, over the limit of {max}")]
    AttributeNameTooLong {
        /// The name (cut to 40 characters).
        name: String,
        /// Its length.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// An attribute value is larger than [`MAX_ATTRIBUTE_VALUE_BYTES`].
    #[error("attribute {name:?} value is {bytes} bytes, over the limit of {max}")]
    AttributeValueTooLarge {
        /// The attribute name.
        name: String,
        /// Its size.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// More than [`MAX_ATTRIBUTES`] attributes.
    #[error("{count} attributes, over the limit of {max}")]
    TooManyAttributes {
        /// How many.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// An event name is empty.
    #[error("event name is empty")]
    EmptyEventName,
    /// An event name is longer than [`MAX_EVENT_NAME_BYTES`].
    #[error("event name is {bytes} bytes, over the limit of {max}")]
    EventNameTooLong {
        /// Its length.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// Event data is larger than [`MAX_EVENT_DATA_BYTES`].
    #[error("event data is {bytes} bytes, over the limit of {max}")]
    EventDataTooLarge {
        /// Its size.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// A v2 operation is larger than [`MAX_ENTITY_BYTES`].
    #[error("v2 operation{} is {bytes} bytes, over the limit of {max}", index.map(|i| format!(" #{i}")).unwrap_or_default())]
    OperationTooLarge {
        /// Its index in the batch (`None` for `/entity`).
        index: Option<usize>,
        /// Its size.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// A value failed to serialize.
    #[error("cannot serialize request: {0}")]
    Serialize(String),
    /// Another documented rule (e.g. a broadcast trigger needs exactly one audience).
    #[error("{0}")]
    Rule(String),
}

pub(crate) fn check_identifier_value(v: &str) -> Result<(), ValidationError> {
    if v.is_empty() {
        return Err(ValidationError::EmptyIdentifier);
    }
    if v.len() > MAX_IDENTIFIER_BYTES {
        return Err(ValidationError::IdentifierTooLong { bytes: v.len(), max: MAX_IDENTIFIER_BYTES });
    }
    Ok(())
}

fn value_bytes(v: &Value) -> usize {
    match v {
        Value::String(s) => s.len(),
        other => serde_json::to_string(other).map_or(0, |s| s.len()),
    }
}

/// Checks an attribute map (identify body, v2 `attributes`): names, values, count. Reserved keys (`id`, `email`,
/// `created_at`, `_update`, `_timestamp`, `anonymous_id`, `unsubscribed`, `cio_*`) are not counted as attributes.
///
/// # Errors
/// The first limit broken.
pub fn check_attributes(attrs: &Map<String, Value>) -> Result<(), ValidationError> {
    let mut count = 0usize;
    for (name, value) in attrs {
        if is_reserved_attribute(name) {
            continue;
        }
        count += 1;
        if name.len() > MAX_ATTRIBUTE_NAME_BYTES {
            return Err(ValidationError::AttributeNameTooLong {
                name: name.chars().take(40).collect(),
                bytes: name.len(),
                max: MAX_ATTRIBUTE_NAME_BYTES,
            });
        }
        let bytes = value_bytes(value);
        if bytes > MAX_ATTRIBUTE_VALUE_BYTES {
            return Err(ValidationError::AttributeValueTooLarge {
                name: name.clone(),
                bytes,
                max: MAX_ATTRIBUTE_VALUE_BYTES,
            });
        }
    }
    if count > MAX_ATTRIBUTES {
        return Err(ValidationError::TooManyAttributes { count, max: MAX_ATTRIBUTES });
    }
    Ok(())
}

/// Checks an event name and its data.
///
/// # Errors
/// The first limit broken.
pub fn check_event(name: &str, data: Option<&Map<String, Value>>) -> Result<(), ValidationError> {
    if name.trim().is_empty() {
        return Err(ValidationError::EmptyEventName);
    }
    if name.len() > MAX_EVENT_NAME_BYTES {
        return Err(ValidationError::EventNameTooLong { bytes: name.len(), max: MAX_EVENT_NAME_BYTES });
    }
    if let Some(d) = data {
        let bytes = serde_json::to_vec(d).map_err(|e| ValidationError::Serialize(e.to_string()))?.len();
        if bytes > MAX_EVENT_DATA_BYTES {
            return Err(ValidationError::EventDataTooLarge { bytes, max: MAX_EVENT_DATA_BYTES });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[allow(clippy::needless_pass_by_value)]
    fn map(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn attribute_limits() {
        check_attributes(&map(json!({"a": "x".repeat(1000), "email": "e@x.io"}))).unwrap();
        assert!(matches!(
            check_attributes(&map(json!({"a": "x".repeat(1001)}))),
            Err(ValidationError::AttributeValueTooLarge { bytes: 1001, .. })
        ));
        // multi-byte characters count in bytes: 334 × 3 bytes = 1002
        assert!(check_attributes(&map(json!({"a": "€".repeat(334)}))).is_err());
        assert!(matches!(
            check_attributes(&map(json!({"n".repeat(151): 1}))),
            Err(ValidationError::AttributeNameTooLong { bytes: 151, .. })
        ));
        let mut many = Map::new();
        for i in 0..300 {
            many.insert(format!("a{i}"), json!(i));
        }
        many.insert("_timestamp".into(), json!(1));
        check_attributes(&many).unwrap();
        many.insert("one_more".into(), json!(1));
        assert_eq!(check_attributes(&many), Err(ValidationError::TooManyAttributes { count: 301, max: 300 }));
    }

    #[test]
    fn identifier_and_event_limits() {
        check_identifier_value(&"i".repeat(150)).unwrap();
        assert_eq!(
            check_identifier_value(&"i".repeat(151)),
            Err(ValidationError::IdentifierTooLong { bytes: 151, max: 150 })
        );
        assert_eq!(check_identifier_value(""), Err(ValidationError::EmptyIdentifier));
        check_event("signup", None).unwrap();
        assert_eq!(check_event(" ", None), Err(ValidationError::EmptyEventName));
        assert!(matches!(check_event(&"n".repeat(101), None), Err(ValidationError::EventNameTooLong { .. })));
        let big = map(json!({"blob": "x".repeat(100_000)}));
        assert!(matches!(check_event("e", Some(&big)), Err(ValidationError::EventDataTooLarge { .. })));
    }
}
