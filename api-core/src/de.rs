//! Serde helpers shared by the API crates.

use serde::{Deserialize, Deserializer};

/// Deserializes `null` as `T::default()`: for fields a vendor documents as a list, string or flag but sends as
/// `null` now and then (one `null` must not fail a whole page). Use with `#[serde(default, deserialize_with =
/// "api_core::de::null_as_default")]`, so that a missing field is the default too.
///
/// # Errors
/// When the value is neither `null` nor a valid `T`.
pub fn null_as_default<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct S {
        #[serde(default, deserialize_with = "super::null_as_default")]
        list: Vec<u8>,
        #[serde(default, deserialize_with = "super::null_as_default")]
        flag: bool,
    }

    #[test]
    fn null_missing_and_values() {
        let s: S = serde_json::from_str(r#"{"list": null, "flag": null}"#).unwrap();
        assert_eq!(s, S { list: vec![], flag: false });
        let s: S = serde_json::from_str("{}").unwrap();
        assert_eq!(s, S { list: vec![], flag: false });
        let s: S = serde_json::from_str(r#"{"list": [1], "flag": true}"#).unwrap();
        assert_eq!(s, S { list: vec![1], flag: true });
        assert!(serde_json::from_str::<S>(r#"{"list": "x"}"#).is_err());
    }
}
