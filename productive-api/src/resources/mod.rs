//! Typed Productive resources: one module per resource, each with its attributes type, its create request and
//! the [`Client`](crate::Client) methods that read and write it.

pub mod assignments;
pub mod comments;
pub mod companies;
pub mod deals;
pub mod people;
pub mod projects;
pub mod services;
pub mod tasks;
pub mod webhooks;

use serde_json::{Map, Value};

/// Serializes `extra` attributes into a map (used by the `extra` escape hatch of create requests).
pub(crate) fn merge_extra(
    doc: crate::jsonapi::WriteDocument,
    extra: &Map<String, Value>,
) -> crate::jsonapi::WriteDocument {
    let mut doc = doc;
    for (k, v) in extra {
        doc.data.attributes.insert(k.clone(), v.clone());
    }
    doc
}

/// `true` when `v` is `false` (for `skip_serializing_if`).
#[allow(clippy::trivially_copy_pass_by_ref)]
pub(crate) fn is_false(v: &bool) -> bool {
    !*v
}
