//! Local macros: open vendor enums that round-trip unknown values.

/// Defines a `#[non_exhaustive]` string enum with an `Unknown(String)` variant that keeps unseen vendor values, with
/// serde as a plain string, `as_str`, `Display` and `From<&str>`.
macro_rules! open_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $wire:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
            /// A value this crate does not know yet, kept verbatim.
            Unknown(String),
        }

        impl $name {
            /// The wire value.
            #[must_use]
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $wire,)+
                    Self::Unknown(s) => s,
                }
            }
        }

        impl ::std::convert::From<&str> for $name {
            fn from(s: &str) -> Self {
                match s {
                    $($wire => Self::$variant,)+
                    other => Self::Unknown(other.to_owned()),
                }
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = ::std::convert::Infallible;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Ok(Self::from(s))
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <::std::borrow::Cow<'de, str> as ::serde::Deserialize>::deserialize(d)?;
                Ok(Self::from(s.as_ref()))
            }
        }
    };
}

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
