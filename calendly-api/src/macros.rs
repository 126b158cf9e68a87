//! Local macros: Calendly resource URIs (open vendor enums come from [`api_core::open_enum!`]).

/// Defines a Calendly resource URI newtype (via [`api_core::string_id!`]) with `uuid()` (the last path segment,
/// which path parameters take) and `from_uuid(base, uuid)`.
macro_rules! resource_uri {
    ($(#[$meta:meta])* $name:ident, $collection:literal) => {
        api_core::string_id!($(#[$meta])* $name);

        impl $name {
            /// The collection path segment (`"users"`, `"scheduled_events"`, …).
            pub const COLLECTION: &'static str = $collection;

            /// The UUID: the last path segment of the URI (what path parameters take). Calendly ids are opaque
            /// strings (16-character legacy ids and RFC 4122 UUIDs both occur).
            #[must_use]
            pub fn uuid(&self) -> &str {
                crate::uri::last_segment(&self.0)
            }

            /// The URI of the resource with `uuid` under `base` (e.g. `https://api.calendly.com`).
            #[must_use]
            pub fn from_uuid(base: &::url::Url, uuid: &str) -> Self {
                Self(format!("{}/{}/{}", base.as_str().trim_end_matches('/'), $collection, uuid))
            }
        }
    };
}
