//! Requests as data: what to send, independent of how it is sent.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use serde::Serialize;

/// The body of a request.
#[derive(Debug, Clone, Default)]
pub enum Body {
    /// No body.
    #[default]
    None,
    /// A JSON body (already serialized), sent with the given content type (`application/json` unless a vendor
    /// wants another, e.g. `application/vnd.api+json`).
    Json {
        /// Serialized JSON.
        bytes: Bytes,
        /// The `Content-Type` to send.
        content_type: &'static str,
    },
    /// An `application/x-www-form-urlencoded` body.
    Form(String),
    /// Raw bytes with a content type.
    Raw {
        /// The bytes.
        bytes: Bytes,
        /// The `Content-Type` to send.
        content_type: String,
    },
}

impl Body {
    /// Serializes `value` as an `application/json` body.
    ///
    /// # Errors
    /// When `value` cannot be serialized.
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<Self, serde_json::Error> {
        Self::json_with(value, "application/json")
    }

    /// Serializes `value` as JSON with a vendor content type.
    ///
    /// # Errors
    /// When `value` cannot be serialized.
    pub fn json_with<T: Serialize + ?Sized>(value: &T, content_type: &'static str) -> Result<Self, serde_json::Error> {
        Ok(Self::Json { bytes: Bytes::from(serde_json::to_vec(value)?), content_type })
    }

    /// The body bytes (empty for [`Body::None`]).
    #[must_use]
    pub fn bytes(&self) -> Bytes {
        match self {
            Self::None => Bytes::new(),
            Self::Json { bytes, .. } | Self::Raw { bytes, .. } => bytes.clone(),
            Self::Form(s) => Bytes::from(s.clone()),
        }
    }

    /// The content type, if there is a body.
    #[must_use]
    pub fn content_type(&self) -> Option<&str> {
        match self {
            Self::None => None,
            Self::Json { content_type, .. } => Some(content_type),
            Self::Form(_) => Some("application/x-www-form-urlencoded"),
            Self::Raw { content_type, .. } => Some(content_type),
        }
    }
}

/// A request description: method, URL (absolute, or a path joined to the client's base URL), query, headers, body,
/// and whether it is safe to repeat.
#[derive(Debug, Clone)]
pub struct Request {
    /// HTTP method.
    pub method: Method,
    /// A path (`/api/v4/leads`) joined to the base URL, or an absolute `http(s)://` URL (used as is).
    pub path: String,
    /// Query parameters, in order (repeated keys allowed: `with=contacts&filter[id][]=1&filter[id][]=2`).
    pub query: Vec<(String, String)>,
    /// Extra headers (auth headers are added by the vendor crate, marked sensitive).
    pub headers: HeaderMap,
    /// Body.
    pub body: Body,
    /// Whether repeating the request has no additional effect (GET, PUT, DELETE, PATCH by key, upserts, POSTs with an
    /// idempotency key). Non-idempotent requests are never retried once they may have reached the server.
    pub idempotent: bool,
    /// The rate-limit key (a base id, an account host); `None` uses the client's default key.
    pub rate_key: Option<String>,
}

impl Request {
    /// A request with the method's default idempotency (GET, HEAD, PUT, DELETE, OPTIONS are idempotent; POST and
    /// PATCH are not unless marked with [`Request::idempotent`]).
    #[must_use]
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        let idempotent = matches!(method, Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS);
        Self {
            method,
            path: path.into(),
            query: Vec::new(),
            headers: HeaderMap::new(),
            body: Body::None,
            idempotent,
            rate_key: None,
        }
    }

    /// `GET path`.
    #[must_use]
    pub fn get(path: impl Into<String>) -> Self {
        Self::new(Method::GET, path)
    }

    /// `POST path`.
    #[must_use]
    pub fn post(path: impl Into<String>) -> Self {
        Self::new(Method::POST, path)
    }

    /// `PATCH path`.
    #[must_use]
    pub fn patch(path: impl Into<String>) -> Self {
        Self::new(Method::PATCH, path)
    }

    /// `PUT path`.
    #[must_use]
    pub fn put(path: impl Into<String>) -> Self {
        Self::new(Method::PUT, path)
    }

    /// `DELETE path`.
    #[must_use]
    pub fn delete(path: impl Into<String>) -> Self {
        Self::new(Method::DELETE, path)
    }

    /// Adds a query parameter.
    #[must_use]
    pub fn query(mut self, key: impl Into<String>, value: impl std::fmt::Display) -> Self {
        self.query.push((key.into(), value.to_string()));
        self
    }

    /// Adds a query parameter when `value` is `Some`.
    #[must_use]
    pub fn query_opt(self, key: impl Into<String>, value: Option<impl std::fmt::Display>) -> Self {
        match value {
            Some(v) => self.query(key, v),
            None => self,
        }
    }

    /// Adds a header.
    #[must_use]
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }

    /// Sets the body.
    #[must_use]
    pub fn body(mut self, body: Body) -> Self {
        self.body = body;
        self
    }

    /// Sets a JSON body.
    ///
    /// # Errors
    /// When `value` cannot be serialized.
    pub fn json<T: Serialize + ?Sized>(self, value: &T) -> Result<Self, serde_json::Error> {
        Ok(self.body(Body::json(value)?))
    }

    /// Marks the request as idempotent or not (overriding the method's default).
    #[must_use]
    pub fn idempotent(mut self, yes: bool) -> Self {
        self.idempotent = yes;
        self
    }

    /// Sets the rate-limit key.
    #[must_use]
    pub fn rate_key(mut self, key: impl Into<String>) -> Self {
        self.rate_key = Some(key.into());
        self
    }
}

/// A response as received: status, headers and the whole body.
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// HTTP status.
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
    /// The body bytes (possibly empty, e.g. Kommo's 204).
    pub body: Bytes,
}

impl RawResponse {
    /// Whether the status is 2xx.
    #[must_use]
    pub fn is_success(&self) -> bool {
        self.status.is_success()
    }

    /// A header as a string, if present and valid.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body decoded as JSON, reporting the JSON path of a failure. An empty body decodes as JSON `null`
    /// (so `Option<T>` and `#[serde(default)]` types accept Kommo's 204).
    ///
    /// # Errors
    /// [`crate::DecodeError`] with the path and a body excerpt.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, crate::DecodeError> {
        crate::error::decode_json(&self.body)
    }
}
