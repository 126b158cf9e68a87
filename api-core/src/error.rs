//! Building blocks for each vendor crate's error type.
//!
//! A vendor error keeps: the HTTP status, the vendor's parsed error (its own shape, defined in the vendor crate),
//! the raw body (see [`HttpErrorParts`]), a retry classification ([`ErrorClass`]) and whether the request may have
//! been sent. Decoding failures name the JSON path ([`DecodeError`]).

use std::fmt;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};

use crate::request::RawResponse;

/// How an error should be treated by a caller deciding whether to try again later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorClass {
    /// Worth retrying later: 5xx, timeouts, broken connections.
    Transient,
    /// The vendor asked us to slow down (429, a ban page): retry after the hinted wait.
    Throttled,
    /// Credentials are wrong, expired or revoked: a human must act.
    Auth,
    /// The request is wrong (4xx validation, not found): retrying the same request will fail again.
    Client,
    /// The response could not be decoded: a vendor change or a bug; retrying rarely helps.
    Decode,
    /// No response arrived (connect, DNS, TLS).
    Transport,
}

impl ErrorClass {
    /// The class implied by an HTTP status alone.
    #[must_use]
    pub fn from_status(status: StatusCode) -> Self {
        match status.as_u16() {
            429 => Self::Throttled,
            401 | 403 => Self::Auth,
            408 | 500..=599 => Self::Transient,
            _ => Self::Client,
        }
    }

    /// Whether a later retry may succeed without anyone changing anything.
    #[must_use]
    pub fn is_retryable(self) -> bool {
        matches!(self, Self::Transient | Self::Throttled | Self::Transport)
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Transient => "transient",
            Self::Throttled => "throttled",
            Self::Auth => "auth",
            Self::Client => "client",
            Self::Decode => "decode",
            Self::Transport => "transport",
        })
    }
}

/// What every vendor crate's `Error` answers the same way (the workspace convention, CONTRIBUTING.md "One SDK
/// shape"), so that code handling errors from several vendors — a sync engine deciding to retry, dead-letter or
/// check before creating again — is written once. Each crate also has these as inherent methods.
pub trait VendorError: std::error::Error + Send + Sync + 'static {
    /// How a caller should treat the error.
    fn class(&self) -> ErrorClass;

    /// Whether a later retry may succeed without anyone changing anything ([`ErrorClass::is_retryable`]).
    fn is_retryable(&self) -> bool {
        self.class().is_retryable()
    }

    /// Whether the request may have taken effect at the vendor, so that a blind retry of a create or a send could
    /// duplicate it: `true` for a 5xx (the vendor may have committed before failing), a 2xx whose body could not be
    /// read, and a timeout or broken connection after sending; `false` for every 4xx (429 included: refused before
    /// doing anything), a redirect not followed, and anything refused before it went on the wire.
    fn may_have_been_sent(&self) -> bool;

    /// The wait the vendor asked for or its documented rules imply: a `Retry-After` (or the vendor's reset header),
    /// the vendor's penalty after a 429 where it documents one (Kommo 60 s, Airtable 30 s, Productive 10 s), what
    /// is left of a client-side hold. `None` otherwise: 5xx and transport errors get the caller's own backoff.
    fn retry_after(&self) -> Option<std::time::Duration>;
}

/// Headers worth keeping on an error (rate-limit and request-id headers); everything else is dropped so that no
/// `Set-Cookie` or echoed credential ends up in logs.
pub const HEADERS_OF_INTEREST: &[&str] = &[
    "retry-after",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "x-request-id",
    "request-id",
    "content-type",
];

/// Maximum body characters shown by `Display` implementations.
pub const DISPLAY_BODY_LIMIT: usize = 512;

/// The raw parts of a failed HTTP response, kept on every API error.
#[derive(Clone)]
pub struct HttpErrorParts {
    /// Status.
    pub status: StatusCode,
    /// The headers listed in [`HEADERS_OF_INTEREST`].
    pub headers: HeaderMap,
    /// The raw body, exactly as received.
    pub body: Bytes,
}

impl HttpErrorParts {
    /// Extracts the parts of `resp`.
    #[must_use]
    pub fn from_response(resp: &RawResponse) -> Self {
        let mut headers = HeaderMap::new();
        for name in HEADERS_OF_INTEREST {
            for v in resp.headers.get_all(*name) {
                headers.append(*name, v.clone());
            }
        }
        Self { status: resp.status, headers, body: resp.body.clone() }
    }

    /// The body as text (lossy UTF-8), cut at [`DISPLAY_BODY_LIMIT`] characters with `…` appended.
    #[must_use]
    pub fn body_excerpt(&self) -> String {
        excerpt(&self.body)
    }
}

/// Lossy UTF-8 text of `bytes`, cut at [`DISPLAY_BODY_LIMIT`] characters.
#[must_use]
pub fn excerpt(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out: String = text.chars().take(DISPLAY_BODY_LIMIT).collect();
    if text.chars().nth(DISPLAY_BODY_LIMIT).is_some() {
        out.push('…');
    }
    out
}

impl fmt::Debug for HttpErrorParts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpErrorParts")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body", &self.body_excerpt())
            .finish()
    }
}

impl fmt::Display for HttpErrorParts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP {}: {}", self.status, self.body_excerpt())
    }
}

/// A JSON body that did not match the expected type.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot decode response at `{path}`: {message} (body: {excerpt})")]
pub struct DecodeError {
    /// The JSON path of the failure (`_embedded.leads[3].price`), `.` for the root.
    pub path: String,
    /// serde's message.
    pub message: String,
    /// The start of the body.
    pub excerpt: String,
}

/// Decodes JSON, reporting the path of a failure. An empty (or all-whitespace) body decodes as `null`.
///
/// # Errors
/// [`DecodeError`] naming the JSON path.
pub fn decode_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, DecodeError> {
    let body_or_null: &[u8] = if body.iter().all(u8::is_ascii_whitespace) { b"null" } else { body };
    let de = &mut serde_json::Deserializer::from_slice(body_or_null);
    serde_path_to_error::deserialize(de).map_err(|e| DecodeError {
        path: e.path().to_string(),
        message: e.inner().to_string(),
        excerpt: excerpt(body),
    })
}

/// Implements [`VendorError`] for a vendor crate's error type by delegating to its inherent `class`,
/// `may_have_been_sent` and `retry_after` methods (which every crate has, so callers need not import the trait).
#[macro_export]
macro_rules! impl_vendor_error {
    ($ty:ty) => {
        impl $crate::VendorError for $ty {
            fn class(&self) -> $crate::ErrorClass {
                <$ty>::class(self)
            }
            fn may_have_been_sent(&self) -> bool {
                <$ty>::may_have_been_sent(self)
            }
            fn retry_after(&self) -> ::std::option::Option<::std::time::Duration> {
                <$ty>::retry_after(self)
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Lead {
        id: u64,
        price: u64,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Page {
        items: Vec<Lead>,
    }

    #[test]
    fn decode_error_names_the_path() {
        let err = decode_json::<Page>(br#"{"items":[{"id":1,"price":2},{"id":2,"price":"x"}]}"#).unwrap_err();
        assert_eq!(err.path, "items[1].price");
        assert!(err.to_string().contains("items[1].price"), "{err}");
    }

    #[test]
    fn empty_body_is_null() {
        assert_eq!(decode_json::<Option<Page>>(b"").unwrap().map(|p| p.items.len()), None);
        assert!(decode_json::<Page>(b" ").is_err());
    }

    #[test]
    fn classes_from_status() {
        assert_eq!(ErrorClass::from_status(StatusCode::TOO_MANY_REQUESTS), ErrorClass::Throttled);
        assert_eq!(ErrorClass::from_status(StatusCode::UNAUTHORIZED), ErrorClass::Auth);
        assert_eq!(ErrorClass::from_status(StatusCode::BAD_GATEWAY), ErrorClass::Transient);
        assert_eq!(ErrorClass::from_status(StatusCode::UNPROCESSABLE_ENTITY), ErrorClass::Client);
        assert!(ErrorClass::Transient.is_retryable());
        assert!(!ErrorClass::Client.is_retryable());
    }

    #[test]
    fn parts_keep_only_headers_of_interest_and_cap_display() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", "30".parse().unwrap());
        headers.insert("set-cookie", "session=secret".parse().unwrap());
        let body = Bytes::from("x".repeat(2000));
        let resp = RawResponse { status: StatusCode::TOO_MANY_REQUESTS, headers, body };
        let parts = HttpErrorParts::from_response(&resp);
        assert!(parts.headers.contains_key("retry-after"));
        assert!(!parts.headers.contains_key("set-cookie"));
        assert_eq!(parts.body.len(), 2000, "raw body kept whole");
        let shown = parts.to_string();
        assert!(shown.len() < 600, "{}", shown.len());
        assert!(shown.ends_with('…'));
    }
}
