//! The crate's error type: the vendor's error body in its exact shape, the raw response parts, the retry class and
//! the rate-limit state, so the sync engine can decide whether and when to try again.

use std::time::Duration;

use api_core::{AuthError, DecodeError, ErrorClass, ExecuteError, HttpErrorParts, RepeatedCursor};
use http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::ratelimit::RateLimitInfo;

/// Calendly's error body: `{title, message, details?: [{parameter?, message}]}`.
///
/// `title` is free text (the docs' per-endpoint enums are inconsistent), so branch on the HTTP status first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ApiErrorBody {
    /// Short title, e.g. `"Resource Not Found"`, `"Already Exists"`, `"Permission Denied"`.
    #[serde(default)]
    pub title: String,
    /// Human-readable message, e.g. `"Hook with this url already exists"`.
    #[serde(default)]
    pub message: String,
    /// Per-parameter validation details.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<ErrorDetail>,
    /// Unknown fields, kept.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// One entry of [`ApiErrorBody::details`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ErrorDetail {
    /// The offending parameter, when named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
    /// What is wrong with it.
    #[serde(default)]
    pub message: String,
}

/// A non-2xx response from the API.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The parsed vendor body (`None` when the body was not Calendly's JSON shape, e.g. an HTML proxy page).
    pub body: Option<ApiErrorBody>,
    /// Status, headers of interest and the raw body.
    pub parts: HttpErrorParts,
    /// Retry classification.
    pub class: ErrorClass,
    /// The `X-RateLimit-*` headers of the response, if present.
    pub rate_limit: Option<RateLimitInfo>,
}

impl ApiError {
    pub(crate) fn from_response(resp: &api_core::RawResponse) -> Self {
        let body = serde_json::from_slice::<ApiErrorBody>(&resp.body)
            .ok()
            .filter(|b| !b.title.is_empty() || !b.message.is_empty());
        Self {
            body,
            parts: HttpErrorParts::from_response(resp),
            class: ErrorClass::from_status(resp.status),
            rate_limit: RateLimitInfo::from_headers(&resp.headers),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.body {
            Some(b) => {
                write!(f, "HTTP {}: {}: {}", self.parts.status, b.title, b.message)?;
                for d in &b.details {
                    write!(f, "; {}: {}", d.parameter.as_deref().unwrap_or("-"), d.message)?;
                }
                Ok(())
            }
            None => write!(f, "{}", self.parts),
        }
    }
}

/// Everything that can go wrong calling Calendly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The API answered with a non-2xx status.
    #[error("Calendly API error: {0}")]
    Api(Box<ApiError>),
    /// No response arrived (after retries).
    #[error("Calendly request failed: {0}")]
    Transport(#[from] ExecuteError),
    /// A 2xx body did not match the expected type; names the JSON path.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// No usable credentials (OAuth refresh failed or was revoked).
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The API returned a pagination cursor twice.
    #[error(transparent)]
    RepeatedCursor(#[from] RepeatedCursor),
    /// The request could not be built (bad token characters, unserializable body, bad URL).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}

impl Error {
    /// The HTTP status, for API errors.
    #[must_use]
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Api(e) => Some(e.parts.status),
            _ => None,
        }
    }

    /// The API error (status, Calendly body, raw parts), if this is one.
    #[must_use]
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Self::Api(e) => Some(e),
            _ => None,
        }
    }

    /// The parsed Calendly error body, if any.
    #[must_use]
    pub fn body(&self) -> Option<&ApiErrorBody> {
        self.api().and_then(|e| e.body.as_ref())
    }

    /// The retry classification.
    #[must_use]
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Api(e) => e.class,
            Self::Transport(_) => ErrorClass::Transport,
            Self::Decode(_) | Self::RepeatedCursor(_) => ErrorClass::Decode,
            Self::Auth(AuthError::Refresh(_)) => ErrorClass::Transient,
            Self::Auth(_) => ErrorClass::Auth,
            Self::InvalidRequest(_) => ErrorClass::Client,
        }
    }

    /// Whether the request may have taken effect on Calendly (so a blind retry of a create could duplicate it): a
    /// 5xx, an unreadable 2xx, or a timeout or dropped connection after sending. `false` for a 4xx (429 included)
    /// and for requests never sent (the workspace convention, see CONTRIBUTING.md).
    #[must_use]
    pub fn may_have_been_sent(&self) -> bool {
        match self {
            // a 4xx (429 included) was refused before doing anything; a 5xx may come after a commit
            Self::Api(e) => e.parts.status.is_server_error(),
            Self::Transport(e) => e.source.may_have_been_sent,
            Self::Decode(_) | Self::RepeatedCursor(_) => true,
            Self::Auth(_) | Self::InvalidRequest(_) => false,
        }
    }

    /// How long to wait before trying again, when the API said so: for a 429 (or any response with
    /// `X-RateLimit-Remaining: 0`) the `X-RateLimit-Reset` seconds, else a `Retry-After`. `None` otherwise.
    #[must_use]
    pub fn retry_after(&self) -> Option<Duration> {
        let e = self.api()?;
        if let Some(rl) = e.rate_limit
            && (rl.remaining == Some(0) || e.parts.status == StatusCode::TOO_MANY_REQUESTS)
            && let Some(reset) = rl.reset
        {
            return Some(reset);
        }
        let ra = e.parts.headers.get(http::header::RETRY_AFTER)?.to_str().ok()?;
        api_core::parse_retry_after(ra, std::time::SystemTime::now())
    }

    /// Whether the sync engine may retry this later (transient, throttled, transport).
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        self.class().is_retryable()
    }

    /// 404 `Resource Not Found`.
    #[must_use]
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(StatusCode::NOT_FOUND)
    }

    /// 409 `Already Exists` (e.g. "Hook with this url already exists").
    #[must_use]
    pub fn is_already_exists(&self) -> bool {
        self.status() == Some(StatusCode::CONFLICT)
    }

    /// A 403 plan gate ("Please upgrade …"): the account's plan lacks the feature.
    #[must_use]
    pub fn is_plan_gate(&self) -> bool {
        self.status() == Some(StatusCode::FORBIDDEN)
            && self.body().is_some_and(|b| b.message.to_ascii_lowercase().contains("upgrade"))
    }
}

impl From<Box<ApiError>> for Error {
    fn from(e: Box<ApiError>) -> Self {
        Self::Api(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, headers: &[(&str, &str)], body: &str) -> api_core::RawResponse {
        let mut h = http::HeaderMap::new();
        for (k, v) in headers {
            h.insert(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        api_core::RawResponse {
            status: StatusCode::from_u16(status).unwrap(),
            headers: h,
            body: body.to_owned().into(),
        }
    }

    #[test]
    fn parses_calendly_error_with_details() {
        let r = resp(
            400,
            &[],
            r#"{"title":"Invalid Argument","message":"The supplied parameters are invalid.","details":[{"parameter":"url","message":"must be https"}]}"#,
        );
        let e = Error::from(Box::new(ApiError::from_response(&r)));
        let b = e.body().unwrap();
        assert_eq!(b.title, "Invalid Argument");
        assert_eq!(b.details[0].parameter.as_deref(), Some("url"));
        assert_eq!(e.class(), ErrorClass::Client);
        assert!(e.to_string().contains("url: must be https"));
        assert!(!e.may_have_been_sent(), "a 400 was refused: nothing happened");
    }

    #[test]
    fn html_body_keeps_raw() {
        let e = Error::from(Box::new(ApiError::from_response(&resp(502, &[], "<html>bad gateway</html>"))));
        assert!(e.body().is_none());
        assert_eq!(e.class(), ErrorClass::Transient);
        assert!(e.to_string().contains("bad gateway"));
    }

    #[test]
    fn throttled_retry_after_from_reset() {
        let r = resp(
            429,
            &[("x-ratelimit-limit", "500"), ("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "42")],
            r#"{"title":"Too Many Requests","message":"slow down"}"#,
        );
        let e = Error::from(Box::new(ApiError::from_response(&r)));
        assert_eq!(e.retry_after(), Some(Duration::from_secs(42)));
        assert_eq!(e.class(), ErrorClass::Throttled);
        assert!(!e.may_have_been_sent());
    }

    #[test]
    fn plan_gate() {
        let r =
            resp(403, &[], r#"{"title":"Permission Denied","message":"Please upgrade to a paid Calendly account."}"#);
        let e = Error::from(Box::new(ApiError::from_response(&r)));
        assert!(e.is_plan_gate());
        let r = resp(
            403,
            &[],
            r#"{"title":"Permission Denied","message":"You do not have permission to access this resource."}"#,
        );
        assert!(!Error::from(Box::new(ApiError::from_response(&r))).is_plan_gate());
    }
}

api_core::impl_vendor_error!(Error);
