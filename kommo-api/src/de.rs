//! Tolerant deserializers for Kommo's JSON: numbers that arrive as strings, `null` where a list is expected.

use serde::{Deserialize, Deserializer, de};

/// A number from JSON: an integer, a float with no fraction, or a string holding either. Floats with a fraction
/// are rounded (Kommo's `price` is an integer, but some accounts return `"1500.00"`).
struct LenientI64;

impl de::Visitor<'_> for LenientI64 {
    type Value = Option<i64>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an integer, a numeric string or null")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        i64::try_from(v).map(Some).map_err(|_| E::custom(format!("integer {v} out of range")))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        if v.is_finite() && v.abs() < 9.0e15 {
            #[allow(clippy::cast_possible_truncation)]
            Ok(Some(v.round() as i64))
        } else {
            Err(E::custom(format!("number {v} out of range")))
        }
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        let t = v.trim();
        if t.is_empty() {
            return Ok(None);
        }
        if let Ok(n) = t.parse::<i64>() {
            return Ok(Some(n));
        }
        match t.parse::<f64>() {
            Ok(f) => self.visit_f64(f),
            Err(_) => Err(E::custom(format!("not a number: {v:?}"))),
        }
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Some(i64::from(v)))
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// `Option<i64>` from a number, a numeric string, `""` or `null`.
///
/// # Errors
/// When the value is not numeric.
pub fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    d.deserialize_any(LenientI64)
}

/// A `bool` from `true/false`, `0/1` or `"0"/"1"/"true"/"false"`; `null` gives `false`.
///
/// # Errors
/// When the value is none of these.
pub fn lenient_bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    match &v {
        serde_json::Value::Bool(b) => Ok(*b),
        serde_json::Value::Null => Ok(false),
        serde_json::Value::Number(n) => Ok(n.as_f64().is_some_and(|f| f != 0.0)),
        serde_json::Value::String(s) => match s.trim() {
            "1" | "true" | "Y" | "y" => Ok(true),
            "0" | "false" | "" | "N" | "n" => Ok(false),
            _ => Err(de::Error::custom(format!("not a boolean: {s:?}"))),
        },
        _ => Err(de::Error::custom(format!("not a boolean: {v}"))),
    }
}

/// A `Vec<T>` where `null` (Kommo's "no custom fields") means empty.
///
/// # Errors
/// When the value is neither `null` nor a list of `T`.
pub fn null_as_empty<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// A struct that PHP may serialize as `[]` when empty (or `null`): both give `T::default()`.
///
/// # Errors
/// When the value is an object that does not match `T`.
pub fn object_or_default<'de, D: Deserializer<'de>, T: serde::de::DeserializeOwned + Default>(
    d: D,
) -> Result<T, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Null => Ok(T::default()),
        serde_json::Value::Array(a) if a.is_empty() => Ok(T::default()),
        v => serde_json::from_value(v).map_err(de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct T {
        #[serde(default, deserialize_with = "super::opt_i64")]
        n: Option<i64>,
        #[serde(default, deserialize_with = "super::lenient_bool")]
        b: bool,
        #[serde(default, deserialize_with = "super::null_as_empty")]
        v: Vec<u8>,
    }

    #[test]
    fn tolerant_values() {
        let t: T = serde_json::from_str(r#"{"n":"1500","b":"1","v":null}"#).unwrap();
        assert_eq!((t.n, t.b, t.v.len()), (Some(1500), true, 0));
        let t: T = serde_json::from_str(r#"{"n":1500.0,"b":0}"#).unwrap();
        assert_eq!((t.n, t.b), (Some(1500), false));
        let t: T = serde_json::from_str(r#"{"n":null}"#).unwrap();
        assert_eq!(t.n, None);
        let t: T = serde_json::from_str(r#"{"n":" 12.5 "}"#).unwrap();
        assert_eq!(t.n, Some(13));
        assert!(serde_json::from_str::<T>(r#"{"n":"abc"}"#).is_err());
    }
}
