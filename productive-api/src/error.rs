//! The crate's error type.

use std::time::Duration;

use api_core::{DecodeError, ErrorClass, ExecuteError, HttpErrorParts, RepeatedCursor};
use http::StatusCode;

use crate::jsonapi::ErrorDocument;

/// A non-2xx response from Productive.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// Status, headers of interest and the raw body.
    pub parts: HttpErrorParts,
    /// The JSON:API error document, when the body was one.
    pub document: Option<ErrorDocument>,
    /// Retry classification.
    pub class: ErrorClass,
    /// The server's `Retry-After`, if it sent one.
    pub retry_after: Option<Duration>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.document {
            Some(doc) if !doc.errors.is_empty() => write!(f, "HTTP {} ({}): {doc}", self.parts.status, self.class),
            _ => write!(f, "{} ({})", self.parts, self.class),
        }
    }
}

/// Everything that can go wrong calling Productive.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Productive answered with an error status.
    #[error("Productive API error: {0}")]
    Api(Box<ApiError>),
    /// 415: the request's `Content-Type` was not `application/vnd.api+json` (a bug in the caller or a proxy).
    #[error("Productive rejected the request's Content-Type (415): it must be `application/vnd.api+json` — {0}")]
    UnsupportedMediaType(Box<ApiError>),
    /// No response arrived.
    #[error("transport error: {0}")]
    Transport(#[from] ExecuteError),
    /// A response body did not match the expected type (the message names the JSON path).
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A request body could not be serialized.
    #[error("cannot serialize request: {0}")]
    Serialize(#[from] serde_json::Error),
    /// The server returned a page cursor twice.
    #[error(transparent)]
    RepeatedCursor(#[from] RepeatedCursor),
    /// The client configuration is invalid (missing token, bad base URL, bad header value).
    #[error("invalid configuration: {0}")]
    InvalidRequest(String),
    /// A background job (project copy) did not report a finished state before its deadline.
    #[error("{what} did not finish within {waited:?} ({polls} polls, last state: {last_state})")]
    JobTimeout {
        /// What was awaited.
        what: String,
        /// Polls made.
        polls: u32,
        /// Time spent waiting.
        waited: std::time::Duration,
        /// The last state seen (`duplication_status`, `absent`, or `project not found yet`).
        last_state: String,
    },
}

impl Error {
    pub(crate) fn from_response(resp: &api_core::RawResponse) -> Self {
        let parts = HttpErrorParts::from_response(resp);
        let document = ErrorDocument::parse(&resp.body);
        let retry_after =
            resp.header("retry-after").and_then(|v| api_core::parse_retry_after(v, std::time::SystemTime::now()));
        let class = ErrorClass::from_status(resp.status);
        let e = Box::new(ApiError { parts, document, class, retry_after });
        if resp.status == StatusCode::UNSUPPORTED_MEDIA_TYPE { Self::UnsupportedMediaType(e) } else { Self::Api(e) }
    }

    /// The API error, for [`Error::Api`] and [`Error::UnsupportedMediaType`].
    #[must_use]
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Self::Api(e) | Self::UnsupportedMediaType(e) => Some(e),
            _ => None,
        }
    }

    /// The HTTP status, when a response arrived.
    #[must_use]
    pub fn status(&self) -> Option<StatusCode> {
        self.api().map(|e| e.parts.status)
    }

    /// The JSON:API error document, when the error body was one.
    #[must_use]
    pub fn error_document(&self) -> Option<&ErrorDocument> {
        self.api().and_then(|e| e.document.as_ref())
    }

    /// The raw error parts (status, headers, body).
    #[must_use]
    pub fn http_parts(&self) -> Option<&HttpErrorParts> {
        self.api().map(|e| &e.parts)
    }

    /// Retry classification.
    #[must_use]
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Api(e) | Self::UnsupportedMediaType(e) => e.class,
            Self::Transport(_) => ErrorClass::Transport,
            Self::Decode(_) | Self::RepeatedCursor(_) => ErrorClass::Decode,
            Self::Serialize(_) | Self::InvalidRequest(_) => ErrorClass::Client,
            Self::JobTimeout { .. } => ErrorClass::Transient,
        }
    }

    /// Whether a later retry may succeed.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        self.class().is_retryable()
    }

    /// Whether the request may have reached Productive and taken effect (check before creating again).
    #[must_use]
    pub fn may_have_been_sent(&self) -> bool {
        match self {
            Self::Transport(e) => e.source.may_have_been_sent,
            // a 5xx may have been produced after the write committed
            Self::Api(e) => e.parts.status.is_server_error(),
            Self::Decode(_) | Self::RepeatedCursor(_) | Self::JobTimeout { .. } => true,
            _ => false,
        }
    }

    /// How long to wait before retrying: the server's `Retry-After`, or 10 s (one window of Productive's
    /// 100 requests / 10 s limit) for a 429 without one. `None` when not throttled.
    #[must_use]
    pub fn retry_after(&self) -> Option<Duration> {
        let e = self.api()?;
        match (e.retry_after, e.parts.status.as_u16()) {
            (Some(d), _) => Some(d),
            (None, 429) => Some(crate::client::THROTTLE_WAIT),
            _ => None,
        }
    }

    /// Whether this is a 404.
    #[must_use]
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(StatusCode::NOT_FOUND)
    }

    /// Whether this is a 409 or a 422 whose error says the object is already taken / assigned (Productive's answer
    /// to a duplicate project or service assignment).
    #[must_use]
    pub fn is_already_exists(&self) -> bool {
        match self.status().map(|s| s.as_u16()) {
            Some(409) => true,
            Some(422) => self.error_document().is_some_and(|d| {
                d.errors.iter().any(|e| {
                    let text = format!("{} {}", e.title.as_deref().unwrap_or(""), e.detail.as_deref().unwrap_or(""))
                        .to_ascii_lowercase();
                    text.contains("already") || text.contains("taken")
                })
            }),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use api_core::RawResponse;
    use http::HeaderMap;

    use super::*;

    fn resp(status: u16, body: &str, retry_after: Option<&str>) -> RawResponse {
        let mut headers = HeaderMap::new();
        if let Some(r) = retry_after {
            headers.insert("retry-after", r.parse().unwrap());
        }
        RawResponse {
            status: StatusCode::from_u16(status).unwrap(),
            headers,
            body: bytes::Bytes::from(body.to_owned()),
        }
    }

    #[test]
    fn classifies_and_keeps_the_document() {
        let e = Error::from_response(&resp(
            400,
            r#"{"errors":[{"status":400,"title":"Unsupported Filter","detail":"Filter 'undefined' is not supported on this endpoint"}]}"#,
            None,
        ));
        assert_eq!(e.status(), Some(StatusCode::BAD_REQUEST));
        assert_eq!(e.class(), ErrorClass::Client);
        assert_eq!(e.error_document().unwrap().errors[0].title.as_deref(), Some("Unsupported Filter"));
        assert!(e.to_string().contains("Unsupported Filter"), "{e}");
        assert!(!e.may_have_been_sent());
        assert_eq!(e.retry_after(), None);
    }

    #[test]
    fn throttled_and_retry_after() {
        let e = Error::from_response(&resp(429, "", Some("7")));
        assert_eq!(e.class(), ErrorClass::Throttled);
        assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
        let e = Error::from_response(&resp(429, "Too Many Requests", None));
        assert_eq!(e.retry_after(), Some(Duration::from_secs(10)));
        assert!(e.is_retryable());
    }

    #[test]
    fn unsupported_media_type_names_the_cause() {
        let e = Error::from_response(&resp(415, "", None));
        assert!(matches!(e, Error::UnsupportedMediaType(_)));
        assert!(e.to_string().contains("application/vnd.api+json"));
    }

    #[test]
    fn already_exists() {
        assert!(Error::from_response(&resp(409, "", None)).is_already_exists());
        assert!(
            Error::from_response(&resp(
                422,
                r#"{"errors":[{"status":"422","detail":"Person has already been taken"}]}"#,
                None
            ))
            .is_already_exists()
        );
        assert!(
            !Error::from_response(&resp(422, r#"{"errors":[{"detail":"Name can't be blank"}]}"#, None))
                .is_already_exists()
        );
        assert_eq!(Error::from_response(&resp(401, "", None)).class(), ErrorClass::Auth);
        assert!(Error::from_response(&resp(503, "", None)).may_have_been_sent());
    }
}

api_core::impl_vendor_error!(Error);
