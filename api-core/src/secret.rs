//! Secrets that never reach `Debug`, `Display` or logs.
//!
//! [`Token`] wraps [`secrecy::SecretString`]: the only way to read it is [`Token::expose`], which is called in
//! exactly one place per vendor crate (where the `Authorization` header is built, with
//! [`HeaderValue::set_sensitive`] so that `reqwest`/`hyper` redact it too).

use std::fmt;

use http::HeaderValue;
use secrecy::{ExposeSecret, SecretString};

/// A credential (API key, access token, refresh token, signing secret). Prints as `[redacted]`.
#[derive(Clone)]
pub struct Token(SecretString);

impl Token {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(SecretString::from(value.into()))
    }

    /// The secret itself. Call it only where the secret goes on the wire or into a MAC.
    #[must_use]
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// Whether the secret is empty (a missing environment variable, typically).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.expose_secret().is_empty()
    }

    /// Compares with another secret in constant time.
    #[must_use]
    pub fn ct_eq(&self, other: &str) -> bool {
        crate::webhook::constant_time_eq(self.expose().as_bytes(), other.as_bytes())
    }

    /// `Bearer <token>` as a header value marked sensitive.
    ///
    /// # Errors
    /// When the token contains bytes not allowed in a header value.
    pub fn bearer_header(&self) -> Result<HeaderValue, http::header::InvalidHeaderValue> {
        sensitive_header(&format!("Bearer {}", self.expose()))
    }
}

impl From<String> for Token {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl From<&str> for Token {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<'de> serde::Deserialize<'de> for Token {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self::new)
    }
}

/// Builds a header value marked sensitive (hyper and reqwest then keep it out of their `Debug` output).
///
/// # Errors
/// When `value` contains bytes not allowed in a header value.
pub fn sensitive_header(value: &str) -> Result<HeaderValue, http::header::InvalidHeaderValue> {
    let mut v = HeaderValue::from_str(value)?;
    v.set_sensitive(true);
    Ok(v)
}

/// Basic auth (`user:password`, base64) as a sensitive header value.
///
/// # Errors
/// Never in practice (base64 output is always a valid header value); kept fallible for symmetry.
pub fn basic_auth_header(user: &str, password: &Token) -> Result<HeaderValue, http::header::InvalidHeaderValue> {
    use base64::Engine as _;
    let raw = format!("{user}:{}", password.expose());
    sensitive_header(&format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_redact() {
        let t = Token::new("pat_super_secret_123");
        assert_eq!(format!("{t:?}"), "[redacted]");
        assert_eq!(format!("{t}"), "[redacted]");
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Holder {
            token: Token,
        }
        let h = format!("{:?}", Holder { token: t.clone() });
        assert!(!h.contains("super_secret"), "{h}");
        assert_eq!(t.expose(), "pat_super_secret_123");
    }

    #[test]
    fn headers_are_sensitive() {
        let t = Token::new("abc");
        let h = t.bearer_header().unwrap();
        assert!(h.is_sensitive());
        assert_eq!(h.to_str().unwrap(), "Bearer abc");
        let b = basic_auth_header("site", &Token::new("key")).unwrap();
        // python3 -c "import base64;print(base64.b64encode(b'site:key'))" -> c2l0ZTprZXk=
        assert_eq!(b.to_str().unwrap(), "Basic c2l0ZTprZXk=");
        assert!(b.is_sensitive());
    }

    #[test]
    fn constant_time_compare() {
        let t = Token::new("s3cret");
        assert!(t.ct_eq("s3cret"));
        assert!(!t.ct_eq("s3cre"));
        assert!(!t.ct_eq("s3creT"));
    }
}
