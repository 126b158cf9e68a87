//! Typed Productive resources: one module per resource, each with its attributes type, its create request and
//! the [`Client`](crate::Client) methods that read and write it.

use serde_json::{Map, Value};

/// Generates, for one collection path, `list_*` (ONE page, with the `meta` and `links` that continue it) and
/// `stream_*` (every item across pages, lazily), the shared SDK shape of CONTRIBUTING.md "One SDK shape".
macro_rules! collection {
    ($list:ident, $stream:ident, $path:literal, $attrs:ty, $what:literal, $filters:literal) => {
        impl $crate::Client {
            #[doc = concat!("`GET ", $path, "` with `query`: ONE page of ", $what, " (`page[size]` defaults to 200; ",
                                "`Document::next_page` names the next page). ", $filters)]
            ///
            /// # Errors
            /// See [`Error`](crate::Error).
            pub async fn $list(
                &self,
                query: &$crate::jsonapi::Query,
            ) -> Result<$crate::jsonapi::Document<Vec<$crate::jsonapi::Resource<$attrs>>>, $crate::Error> {
                self.list_page($path, query).await
            }

            #[doc = concat!("Every one of the ", $what, " matching `query` (`GET ", $path, "`, page by page until ",
                                "`current_page >= total_pages`), lazily. Stops after the first error. ", $filters)]
            pub fn $stream(
                &self,
                query: $crate::jsonapi::Query,
            ) -> impl futures::Stream<Item = Result<$crate::jsonapi::Resource<$attrs>, $crate::Error>> + Send + 'static
            {
                self.stream($path, query)
            }
        }
    };
}
pub(crate) use collection;

pub mod absence_events;
pub mod assignments;
pub mod bookings;
pub mod comments;
pub mod companies;
pub mod custom_fields;
pub mod deal_statuses;
pub mod deals;
pub mod expenses;
pub mod invoices;
pub mod organization_memberships;
pub mod people;
pub mod projects;
pub mod services;
pub mod tasks;
pub mod time_entries;
pub mod webhooks;
pub mod workflows;

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
