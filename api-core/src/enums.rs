//! [`open_enum!`](crate::open_enum): enums that mirror a vendor's string values and never fail on a new one.

/// Defines a `#[non_exhaustive]` enum of a vendor's string values with a catch-all variant that keeps any value
/// this crate does not know yet, verbatim, so a new vendor value never breaks decoding and round-trips unchanged.
///
/// The enum gets `as_str` (the wire value), `parse` (never fails), `From<&str>`, `FromStr` (with
/// [`Infallible`](std::convert::Infallible)), `Display`, and serde as a plain string. It derives `Debug`, `Clone`,
/// `PartialEq`, `Eq` and `Hash`; more attributes may be written before the name. The catch-all variant is
/// `Unknown(String)`, or the name given after a `/` where the vendor itself has a value called "unknown".
///
/// ```
/// api_core::open_enum! {
///     /// A meeting's status.
///     Status {
///         /// Booked.
///         Active = "active",
///         /// Cancelled.
///         Canceled = "canceled",
///     }
/// }
/// let s: Status = serde_json::from_str("\"canceled\"").unwrap();
/// assert_eq!(s, Status::Canceled);
/// let new: Status = serde_json::from_str("\"rescheduled\"").unwrap();
/// assert_eq!(new, Status::Unknown("rescheduled".into()));
/// assert_eq!(serde_json::to_string(&new).unwrap(), "\"rescheduled\"");
/// assert_eq!(Status::parse("active").as_str(), "active");
///
/// // the vendor sends "unknown" itself: name the catch-all otherwise
/// api_core::open_enum! {
///     /// Where a change came from.
///     Source / Other {
///         /// The vendor's own "unknown".
///         Unknown = "unknown",
///     }
/// }
/// assert_eq!(Source::parse("unknown"), Source::Unknown);
/// assert_eq!(Source::parse("telepathy"), Source::Other("telepathy".into()));
/// ```
#[macro_export]
macro_rules! open_enum {
    (
        $(#[$meta:meta])* $name:ident
        { $($(#[$vmeta:meta])* $variant:ident = $wire:literal),+ $(,)? }
    ) => {
        $crate::open_enum!($(#[$meta])* $name / Unknown { $($(#[$vmeta])* $variant = $wire),+ });
    };
    (
        $(#[$meta:meta])* $name:ident / $other:ident
        { $($(#[$vmeta:meta])* $variant:ident = $wire:literal),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
            /// A value this crate does not know yet, kept verbatim (it round-trips).
            $other(::std::string::String),
        }

        impl $name {
            /// The wire value.
            #[must_use]
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $wire,)+
                    Self::$other(s) => s,
                }
            }

            /// Parses a wire value; an unknown one is kept in the catch-all variant.
            #[must_use]
            pub fn parse(s: &str) -> Self {
                match s {
                    $($wire => Self::$variant,)+
                    other => Self::$other(::std::borrow::ToOwned::to_owned(other)),
                }
            }
        }

        impl ::std::convert::From<&str> for $name {
            fn from(s: &str) -> Self {
                Self::parse(s)
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = ::std::convert::Infallible;
            fn from_str(s: &str) -> ::std::result::Result<Self, Self::Err> {
                ::std::result::Result::Ok(Self::parse(s))
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl $crate::__private::serde::Serialize for $name {
            fn serialize<S: $crate::__private::serde::Serializer>(
                &self,
                s: S,
            ) -> ::std::result::Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> $crate::__private::serde::Deserialize<'de> for $name {
            fn deserialize<D: $crate::__private::serde::Deserializer<'de>>(
                d: D,
            ) -> ::std::result::Result<Self, D::Error> {
                let s = <::std::borrow::Cow<'de, str> as $crate::__private::serde::Deserialize>::deserialize(d)?;
                ::std::result::Result::Ok(Self::parse(&s))
            }
        }
    };
}

#[cfg(test)]
mod tests {
    crate::open_enum! {
        /// Test enum.
        Color {
            /// Red.
            Red = "red",
            /// Dark blue.
            DarkBlue = "dark_blue",
        }
    }

    #[test]
    fn known_and_unknown_values_round_trip() {
        for (wire, value) in [
            ("\"red\"", Color::Red),
            ("\"dark_blue\"", Color::DarkBlue),
            ("\"teal\"", Color::Unknown("teal".into())),
            ("\"\"", Color::Unknown(String::new())),
        ] {
            let decoded: Color = serde_json::from_str(wire).unwrap();
            assert_eq!(decoded, value);
            assert_eq!(serde_json::to_string(&decoded).unwrap(), wire);
        }
        // from a `Value` (owned strings) as well as from text
        let v: Color = serde_json::from_value(serde_json::json!("dark_blue")).unwrap();
        assert_eq!(v, Color::DarkBlue);
        assert_eq!("red".parse::<Color>(), Ok(Color::Red));
        assert_eq!(Color::from("teal").to_string(), "teal");
        assert!(serde_json::from_str::<Color>("7").is_err(), "a number is not a wire value");
    }
}
