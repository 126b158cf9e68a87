//! The crate's one error type, [`Error`], and the vendor's error body shapes ([`VendorError`]).
//!
//! Customer.io answers errors in three JSON shapes, all kept here exactly:
//! - Track v1: `{"meta":{"errors":["...", "..."]}}` → [`VendorError::Errors`];
//! - Track v1 merge and the App API's transactional sends: `{"meta":{"error":"..."}}` → [`VendorError::Message`];
//! - Track v2 (and the App API's "wrong datacenter" 301): `{"errors":[{"batch_index":0,"reason":"...","field":"...",
//!   "message":"..."}]}` → [`VendorError::Items`].

use std::time::{Duration, SystemTime};

use api_core::{DecodeError, ErrorClass, ExecuteError, HttpErrorParts, RawResponse, RepeatedCursor};
use http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::limits::ValidationError;

/// One item of a v2 `errors[]` array (a 207 partial failure, a 400, or the App API's `{detail, status}` items).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ErrorItem {
    /// Index of the failed operation inside the batch (v2 207 responses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_index: Option<usize>,
    /// Machine-readable reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The field at fault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Human-readable message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Other members (the App API's `detail` and `status`, future fields).
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// The vendor's parsed error body, in its exact shape.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum VendorError {
    /// `{"meta":{"errors":[...]}}` (Track v1 400).
    Errors(Vec<String>),
    /// `{"meta":{"error":"..."}}` (Track v1 merge, App API transactional).
    Message(String),
    /// `{"errors":[{batch_index?, reason, field, message}]}` (Track v2; App API `{detail, status}` items).
    Items(Vec<ErrorItem>),
    /// No body, or a body in none of the shapes above (kept raw in [`HttpErrorParts::body`]).
    Unparsed,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    meta: Option<Meta>,
    #[serde(default)]
    errors: Option<Vec<ErrorItem>>,
}

#[derive(Deserialize)]
struct Meta {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    errors: Option<Vec<serde_json::Value>>,
}

impl VendorError {
    /// Parses an error body in any of the three shapes.
    #[must_use]
    pub fn parse(body: &[u8]) -> Self {
        let Ok(env) = serde_json::from_slice::<Envelope>(body) else {
            return Self::Unparsed;
        };
        if let Some(meta) = env.meta {
            // node's order: `meta.error` first, then `meta.errors[]`.
            if let Some(e) = meta.error {
                return Self::Message(e);
            }
            if let Some(errs) = meta.errors {
                return Self::Errors(
                    errs.into_iter()
                        .map(|v| match v {
                            serde_json::Value::String(s) => s,
                            other => other.to_string(),
                        })
                        .collect(),
                );
            }
        }
        match env.errors {
            Some(items) => Self::Items(items),
            None => Self::Unparsed,
        }
    }

    /// The messages, joined for display.
    #[must_use]
    pub fn summary(&self) -> String {
        match self {
            Self::Errors(v) => v.join("; "),
            Self::Message(m) => m.clone(),
            Self::Items(items) => items
                .iter()
                .map(|i| {
                    let mut s = String::new();
                    if let Some(ix) = i.batch_index {
                        s.push_str(&format!("[{ix}] "));
                    }
                    if let Some(f) = &i.field {
                        s.push_str(&format!("{f}: "));
                    }
                    s.push_str(
                        i.message
                            .as_deref()
                            .or(i.reason.as_deref())
                            .or_else(|| i.extra.get("detail").and_then(|d| d.as_str()))
                            .unwrap_or("error"),
                    );
                    s
                })
                .collect::<Vec<_>>()
                .join("; "),
            Self::Unparsed => String::new(),
        }
    }
}

/// Everything that can go wrong with a Customer.io call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The API answered with a non-2xx, non-3xx status.
    #[error("Customer.io API error {}: {}", parts.status, display_vendor(vendor, parts))]
    Api {
        /// Status, headers of interest, raw body.
        parts: Box<HttpErrorParts>,
        /// The parsed body.
        vendor: VendorError,
        /// Retry classification.
        class: ErrorClass,
    },
    /// The API answered with a redirect. Redirects are never followed: they drop credentials across hosts, and a
    /// redirect from Customer.io means the [`Region`](crate::Region) is wrong (US host for an EU workspace, or the
    /// App API's 301 "wrong datacenter").
    #[error("Customer.io answered {} (redirect to {location:?}); redirects are not followed: check the region", parts.status)]
    Redirect {
        /// The `Location` header, if any.
        location: Option<String>,
        /// The parsed body (the App API sends `{"errors":[{"detail":"wrong datacenter","status":"301"}]}`).
        vendor: VendorError,
        /// Status, headers of interest, raw body.
        parts: Box<HttpErrorParts>,
    },
    /// The request was refused locally, before sending, because it breaks a documented Customer.io limit.
    #[error("invalid request: {0}")]
    Invalid(#[from] ValidationError),
    /// No response arrived (after retries).
    #[error(transparent)]
    Transport(#[from] ExecuteError),
    /// A 2xx body did not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A paginated App API list handed back a `next` token it had already given (a `stream_*` stops there instead of
    /// looping).
    #[error(transparent)]
    RepeatedCursor(#[from] RepeatedCursor),
    /// The called API's credentials were not configured.
    #[error("no credentials configured for the {api} API ({hint})")]
    MissingCredentials {
        /// `"Track"`, `"App"` or `"Pipelines"`.
        api: &'static str,
        /// The builder method to call.
        hint: &'static str,
    },
    /// The client configuration is invalid (a base URL that does not parse or is not http(s), TLS initialisation),
    /// found in [`ClientBuilder::build`](crate::ClientBuilder::build) before anything is sent.
    #[error("cannot build client: {0}")]
    InvalidRequest(String),
    /// A credential holds bytes not allowed in an HTTP header.
    #[error("credential is not a valid header value")]
    InvalidCredential,
}

fn display_vendor(vendor: &VendorError, parts: &HttpErrorParts) -> String {
    match vendor {
        VendorError::Unparsed => parts.body_excerpt(),
        v => v.summary(),
    }
}

impl Error {
    pub(crate) fn from_response(resp: &RawResponse) -> Self {
        let parts = Box::new(HttpErrorParts::from_response(resp));
        let vendor = VendorError::parse(&resp.body);
        if resp.status.is_redirection() {
            let location = resp.header("location").map(str::to_owned);
            return Self::Redirect { location, vendor, parts };
        }
        let class = ErrorClass::from_status(resp.status);
        Self::Api { parts, vendor, class }
    }

    /// The HTTP status, when a response arrived.
    #[must_use]
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Api { parts, .. } | Self::Redirect { parts, .. } => Some(parts.status),
            _ => None,
        }
    }

    /// The retry classification.
    #[must_use]
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Api { class, .. } => *class,
            Self::Redirect { .. } | Self::Invalid(_) | Self::InvalidRequest(_) => ErrorClass::Client,
            Self::Transport(_) => ErrorClass::Transport,
            Self::Decode(_) | Self::RepeatedCursor(_) => ErrorClass::Decode,
            Self::MissingCredentials { .. } | Self::InvalidCredential => ErrorClass::Auth,
        }
    }

    /// Whether a later retry of the same request may succeed.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        self.class().is_retryable()
    }

    /// Whether the request may have taken effect on Customer.io (so a blind retry of a send could duplicate it): a
    /// 5xx, an unreadable 2xx, or a timeout or dropped connection after sending. `false` for a 4xx (429 included),
    /// a redirect that was not followed, local refusals and connect errors (the workspace convention, see
    /// CONTRIBUTING.md).
    #[must_use]
    pub fn may_have_been_sent(&self) -> bool {
        match self {
            // a 4xx (429 included) was refused before doing anything; a 5xx may come after a commit
            Self::Api { parts, .. } => parts.status.is_server_error(),
            // the request was answered (a 2xx), so a write it carried may have taken effect
            Self::Decode(_) | Self::RepeatedCursor(_) => true,
            Self::Transport(e) => e.source.may_have_been_sent,
            // a redirect was not followed (the request was not processed at its target); local refusals
            Self::Redirect { .. }
            | Self::Invalid(_)
            | Self::MissingCredentials { .. }
            | Self::InvalidCredential
            | Self::InvalidRequest(_) => false,
        }
    }

    /// The server's `Retry-After` (seconds or HTTP date), if it sent one.
    #[must_use]
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Api { parts, .. } => parts
                .headers
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| api_core::parse_retry_after(v, SystemTime::now())),
            _ => None,
        }
    }

    /// A suggested wait before retrying: `Retry-After` when sent, else 1 s for throttling (Customer.io's limits are
    /// per second), else `None` (retry with the caller's own backoff, or not at all for non-retryable errors).
    #[must_use]
    pub fn retry_hint(&self) -> Option<Duration> {
        if let Some(d) = self.retry_after() {
            return Some(d);
        }
        (self.class() == ErrorClass::Throttled).then(|| Duration::from_secs(1))
    }

    /// The parsed vendor error, when a response arrived.
    #[must_use]
    pub fn vendor(&self) -> Option<&VendorError> {
        match self {
            Self::Api { vendor, .. } | Self::Redirect { vendor, .. } => Some(vendor),
            _ => None,
        }
    }

    /// The raw response parts, when a response arrived.
    #[must_use]
    pub fn http_parts(&self) -> Option<&HttpErrorParts> {
        match self {
            Self::Api { parts, .. } | Self::Redirect { parts, .. } => Some(parts),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_shapes() {
        assert_eq!(
            VendorError::parse(br#"{"meta":{"errors":["a","b"]}}"#),
            VendorError::Errors(vec!["a".into(), "b".into()])
        );
        assert_eq!(
            VendorError::parse(br#"{"meta":{"error":"no primary"}}"#),
            VendorError::Message("no primary".into())
        );
        let v = VendorError::parse(br#"{"errors":[{"batch_index":1,"reason":"r","field":"f","message":"m","x":1}]}"#);
        let VendorError::Items(items) = &v else { panic!("{v:?}") };
        assert_eq!(items[0].batch_index, Some(1));
        assert_eq!(items[0].extra["x"], 1);
        assert_eq!(v.summary(), "[1] f: m");
        let wrong_dc = VendorError::parse(br#"{"errors":[{"detail":"wrong datacenter","status":"301"}]}"#);
        assert_eq!(wrong_dc.summary(), "wrong datacenter");
        assert_eq!(VendorError::parse(b""), VendorError::Unparsed);
        assert_eq!(VendorError::parse(b"<html>"), VendorError::Unparsed);
        assert_eq!(VendorError::parse(b"{}"), VendorError::Unparsed);
    }
}

api_core::impl_vendor_error!(Error);
