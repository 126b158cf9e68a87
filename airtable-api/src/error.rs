//! The crate's error type, keeping Airtable's error body in its exact shape.
//!
//! Airtable answers errors with one of two bodies (both parsed):
//! - `{"error": {"type": "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND", "message": "…"}}` (most errors);
//! - `{"error": "NOT_FOUND"}` (404 on a bad route or missing record).
//!
//! Bodies that are neither (a proxy's HTML 502) are kept raw in [`HttpErrorParts`].

use std::{fmt, time::Duration};

use api_core::{DecodeError, ErrorClass, ExecuteError, HttpErrorParts, RawResponse, RepeatedCursor};
use http::StatusCode;
use serde::{Deserialize, Serialize};

/// Airtable's wait after a 429: "you will receive a 429 status code and will need to wait 30 seconds before
/// subsequent requests will succeed" (rate-limits page).
pub const RATE_LIMIT_PENALTY: Duration = Duration::from_secs(30);

/// The `error` member of an Airtable error body, in either documented shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ErrorField {
    /// `{"error": {"type": "…", "message": "…"}}`.
    Object {
        /// The error type, e.g. `INVALID_MULTIPLE_CHOICE_OPTIONS`.
        #[serde(rename = "type")]
        kind: String,
        /// The human-readable message.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// `{"error": "NOT_FOUND"}`.
    Code(String),
}

/// An Airtable error body (`{"error": …}`), exactly as sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error member.
    pub error: ErrorField,
}

impl ErrorBody {
    /// The error type string (`type` of the object form, or the string form itself).
    #[must_use]
    pub fn kind(&self) -> &str {
        match &self.error {
            ErrorField::Object { kind, .. } => kind,
            ErrorField::Code(code) => code,
        }
    }

    /// The message, if the object form carried one.
    #[must_use]
    pub fn message(&self) -> Option<&str> {
        match &self.error {
            ErrorField::Object { message, .. } => message.as_deref(),
            ErrorField::Code(_) => None,
        }
    }
}

macro_rules! error_types {
    ($( $(#[$m:meta])* $v:ident = $s:literal ),* $(,)?) => {
        /// Airtable's error `type`. Unknown types decode as [`ErrorType::Other`] and round-trip.
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorType {
            $( $(#[$m])* $v, )*
            /// A type this crate does not know (kept verbatim).
            Other(String),
        }

        impl ErrorType {
            /// Parses Airtable's type string.
            #[must_use]
            pub fn parse(s: &str) -> Self {
                match s {
                    $( $s => Self::$v, )*
                    other => Self::Other(other.to_owned()),
                }
            }

            /// The type string as Airtable spells it.
            #[must_use]
            pub fn as_str(&self) -> &str {
                match self {
                    $( Self::$v => $s, )*
                    Self::Other(s) => s,
                }
            }
        }
    };
}

error_types! {
    /// 401: missing or invalid token.
    AuthenticationRequired = "AUTHENTICATION_REQUIRED",
    /// 403: the token may not do this.
    InvalidPermissions = "INVALID_PERMISSIONS",
    /// 403: "Invalid permissions, or the requested model was not found" — a base/table the token cannot reach
    /// *or* that does not exist; Airtable does not say which.
    InvalidPermissionsOrModelNotFound = "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND",
    /// 404: route or resource not found.
    NotFound = "NOT_FOUND",
    /// 404: a model id that does not exist.
    ModelIdNotFound = "MODEL_ID_NOT_FOUND",
    /// 422: generic invalid request.
    InvalidRequestUnknown = "INVALID_REQUEST_UNKNOWN",
    /// 422: a required member is missing.
    InvalidRequestMissingFields = "INVALID_REQUEST_MISSING_FIELDS",
    /// 422: a field name that the table does not have.
    UnknownFieldName = "UNKNOWN_FIELD_NAME",
    /// 422: a value the field cannot take.
    InvalidValueForColumn = "INVALID_VALUE_FOR_COLUMN",
    /// 422: a select option that does not exist (send `typecast: true` to create it; needs creator permission).
    InvalidMultipleChoiceOptions = "INVALID_MULTIPLE_CHOICE_OPTIONS",
    /// 422: malformed `records`.
    InvalidRecords = "INVALID_RECORDS",
    /// 422/404: a record id that does not exist.
    RowDoesNotExist = "ROW_DOES_NOT_EXIST",
    /// 422: the list `offset` expired; restart the listing from the beginning.
    ListRecordsIteratorNotAvailable = "LIST_RECORDS_ITERATOR_NOT_AVAILABLE",
    /// 422: `filterByFormula` did not parse.
    InvalidFilterByFormula = "INVALID_FILTER_BY_FORMULA",
    /// 422: unknown `view`.
    ViewNameNotFound = "VIEW_NAME_NOT_FOUND",
    /// 429: too many requests (wait 30 s).
    RateLimitReached = "RATE_LIMIT_REACHED",
    /// 429: the workspace's monthly API-call allowance is exhausted (not retryable).
    PublicApiBillingLimitExceeded = "PUBLIC_API_BILLING_LIMIT_EXCEEDED",
    /// 413: payload too large.
    RequestEntityTooLarge = "REQUEST_ENTITY_TOO_LARGE",
    /// 500: server error.
    ServerError = "SERVER_ERROR",
}

impl fmt::Display for ErrorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(Self::parse(&s))
    }
}

/// What the failed call was, so a few errors can be told apart (the upsert ambiguity has no dedicated type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Operation {
    /// Any call without special interpretation.
    Other,
    /// A records call with `performUpsert`.
    Upsert,
    /// A list-records page.
    ListRecords,
}

/// An error answer from Airtable.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The parsed body, when it was one of Airtable's two shapes.
    pub body: Option<ErrorBody>,
    /// The error type (from the body; from the status when the body is not Airtable's).
    pub kind: ErrorType,
    /// Status, kept headers and the raw body.
    pub parts: HttpErrorParts,
    /// Retry classification.
    pub class: ErrorClass,
    /// The call that failed.
    pub operation: Operation,
}

impl ApiError {
    /// Builds the error from a non-2xx response.
    #[must_use]
    pub fn from_response(resp: &RawResponse, operation: Operation) -> Self {
        let body: Option<ErrorBody> = serde_json::from_slice(&resp.body).ok();
        let kind = body.as_ref().map_or_else(
            || match resp.status.as_u16() {
                401 => ErrorType::AuthenticationRequired,
                403 => ErrorType::InvalidPermissions,
                404 => ErrorType::NotFound,
                429 => ErrorType::RateLimitReached,
                413 => ErrorType::RequestEntityTooLarge,
                s if s >= 500 => ErrorType::ServerError,
                _ => ErrorType::Other(String::new()),
            },
            |b| ErrorType::parse(b.kind()),
        );
        let class = match (&kind, resp.status.as_u16()) {
            (ErrorType::PublicApiBillingLimitExceeded, _) => ErrorClass::Client,
            (_, s) => ErrorClass::from_status(StatusCode::from_u16(s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)),
        };
        Self { body, kind, parts: HttpErrorParts::from_response(resp), class, operation }
    }

    /// The HTTP status.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        self.parts.status
    }

    /// The message from the body, if any.
    #[must_use]
    pub fn message(&self) -> Option<&str> {
        self.body.as_ref().and_then(ErrorBody::message)
    }

    /// A 403 `INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND` or any 404: the base/table/record does not exist *or* the token
    /// cannot see it (Airtable deliberately does not distinguish).
    #[must_use]
    pub fn is_not_found_or_forbidden(&self) -> bool {
        matches!(
            self.kind,
            ErrorType::InvalidPermissionsOrModelNotFound | ErrorType::NotFound | ErrorType::ModelIdNotFound
        ) || self.parts.status == StatusCode::NOT_FOUND
    }

    /// An upsert failed because more than one existing record matched `fieldsToMergeOn`.
    ///
    /// Airtable documents the behaviour ("if multiple records match, the request will fail") but not the error type,
    /// so this is recognised from a 422 on an upsert whose message mentions more than one / multiple matches.
    #[must_use]
    pub fn is_upsert_ambiguous(&self) -> bool {
        if self.operation != Operation::Upsert || self.parts.status != StatusCode::UNPROCESSABLE_ENTITY {
            return false;
        }
        let msg = self.message().unwrap_or_default().to_ascii_lowercase();
        msg.contains("more than one") || msg.contains("multiple")
    }

    /// The list `offset` expired (`LIST_RECORDS_ITERATOR_NOT_AVAILABLE`): restart the listing from the first page.
    #[must_use]
    pub fn is_iterator_expired(&self) -> bool {
        self.kind == ErrorType::ListRecordsIteratorNotAvailable
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Airtable {} {}", self.parts.status.as_u16(), self.kind)?;
        if let Some(m) = self.message() {
            write!(f, ": {m}")?;
        } else if self.body.is_none() && !self.parts.body.is_empty() {
            write!(f, ": {}", self.parts.body_excerpt())?;
        }
        if self.is_not_found_or_forbidden() && self.parts.status == StatusCode::FORBIDDEN {
            f.write_str(" (the base/table/record does not exist, or the token has no access to it)")?;
        }
        Ok(())
    }
}

/// The one error type of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Airtable answered with an error status.
    #[error("{0}")]
    Api(Box<ApiError>),
    /// The more-than-one-match upsert failure (see [`ApiError::is_upsert_ambiguous`]).
    #[error("upsert matched more than one existing record: {0}")]
    UpsertAmbiguous(Box<ApiError>),
    /// The list `offset` expired; restart listing from the beginning.
    #[error("list iterator expired, restart the listing: {0}")]
    IteratorExpired(Box<ApiError>),
    /// No response (connect failure, timeout, broken connection), after retries.
    #[error("transport: {0}")]
    Transport(#[from] ExecuteError),
    /// A 2xx body that did not decode; names the JSON path.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The API handed back a pagination cursor twice.
    #[error(transparent)]
    RepeatedCursor(#[from] RepeatedCursor),
    /// A chunked batch (create/update/upsert/delete of more than 10 records) failed after earlier chunks were
    /// committed: `committed` lists the records those chunks wrote (or deleted). Accessors delegate to `source`.
    #[error("batch failed at chunk {failed_chunk} after {} record(s) were committed: {source}", committed.len())]
    PartialBatch {
        /// Index of the failed chunk (≥ 1).
        failed_chunk: usize,
        /// Records written (or deleted) by the earlier chunks.
        committed: Vec<crate::ids::RecordId>,
        /// The failure of chunk `failed_chunk`.
        source: Box<Error>,
    },
    /// A request that could not be built (bad token characters, unserializable body, invalid argument).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// Webhook payloads were deleted by Airtable before they were read (kept one week): data loss. The payload
    /// feed reports it once and goes on after the gap; resync what the webhook watches.
    #[error("{0}")]
    PayloadsExpired(crate::webhook::PayloadGap),
}

impl Error {
    pub(crate) fn from_api(e: ApiError) -> Self {
        if e.is_upsert_ambiguous() {
            Self::UpsertAmbiguous(Box::new(e))
        } else if e.is_iterator_expired() {
            Self::IteratorExpired(Box::new(e))
        } else {
            Self::Api(Box::new(e))
        }
    }

    /// The Airtable error, for every variant that has one.
    #[must_use]
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Self::Api(e) | Self::UpsertAmbiguous(e) | Self::IteratorExpired(e) => Some(e),
            Self::PartialBatch { source, .. } => source.api(),
            _ => None,
        }
    }

    /// Records committed by earlier chunks of a failed batch (empty for other errors).
    #[must_use]
    pub fn committed(&self) -> &[crate::ids::RecordId] {
        match self {
            Self::PartialBatch { committed, .. } => committed,
            _ => &[],
        }
    }

    /// The error without the partial-batch wrapper.
    #[must_use]
    pub fn root(&self) -> &Error {
        match self {
            Self::PartialBatch { source, .. } => source.root(),
            other => other,
        }
    }

    /// The HTTP status, if a response came.
    #[must_use]
    pub fn status(&self) -> Option<StatusCode> {
        self.api().map(ApiError::status)
    }

    /// Airtable's error type, if a response came.
    #[must_use]
    pub fn error_type(&self) -> Option<&ErrorType> {
        self.api().map(|e| &e.kind)
    }

    /// Retry classification.
    #[must_use]
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Api(e) | Self::UpsertAmbiguous(e) | Self::IteratorExpired(e) => e.class,
            Self::Transport(_) => ErrorClass::Transport,
            Self::Decode(_) | Self::RepeatedCursor(_) => ErrorClass::Decode,
            Self::InvalidRequest(_) | Self::PayloadsExpired(_) => ErrorClass::Client,
            Self::PartialBatch { source, .. } => source.class(),
        }
    }

    /// Whether retrying later may succeed ([`ErrorClass::is_retryable`] of [`Error::class`]).
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        self.class().is_retryable()
    }

    /// Whether the request may have taken effect on Airtable (so a blind retry of a create could duplicate it): a
    /// 5xx, an unreadable 2xx, or a timeout or dropped connection after sending. `false` for a 4xx (429 included:
    /// Airtable refused it before doing anything) and for requests never sent (the workspace convention, see
    /// CONTRIBUTING.md).
    #[must_use]
    pub fn may_have_been_sent(&self) -> bool {
        match self {
            Self::PartialBatch { source, .. } => source.may_have_been_sent(),
            Self::Transport(e) => e.source.may_have_been_sent,
            Self::InvalidRequest(_) | Self::PayloadsExpired(_) => false,
            // a 4xx (429 included) was refused before doing anything; a 5xx may come after a commit
            Self::Api(e) | Self::UpsertAmbiguous(e) | Self::IteratorExpired(e) => e.parts.status.is_server_error(),
            Self::Decode(_) | Self::RepeatedCursor(_) => true,
        }
    }

    /// The wait Airtable asked for or its rules imply: 30 s after a 429 (not after the billing cap, which no wait
    /// fixes), or a `Retry-After` header. `None` otherwise: use your own backoff for 5xx and transport errors.
    #[must_use]
    pub fn retry_after(&self) -> Option<Duration> {
        if let Self::PartialBatch { source, .. } = self {
            return source.retry_after();
        }
        match self.api() {
            Some(e) if e.kind == ErrorType::PublicApiBillingLimitExceeded => None,
            Some(e) if e.parts.status == StatusCode::TOO_MANY_REQUESTS => Some(RATE_LIMIT_PENALTY),
            // a 5xx or no answer: Airtable names no wait, the caller's backoff decides
            Some(e) => e
                .parts
                .headers
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| api_core::parse_retry_after(v, std::time::SystemTime::now())),
            None => None,
        }
    }

    /// Whether an upsert failed because more than one record matched (also inside [`Error::PartialBatch`]).
    #[must_use]
    pub fn is_upsert_ambiguous(&self) -> bool {
        matches!(self.root(), Self::UpsertAmbiguous(_))
    }

    /// Whether a list offset expired (restart the listing).
    #[must_use]
    pub fn is_iterator_expired(&self) -> bool {
        matches!(self.root(), Self::IteratorExpired(_))
    }

    /// The payload gap, for [`Error::PayloadsExpired`].
    #[must_use]
    pub fn payload_gap(&self) -> Option<&crate::webhook::PayloadGap> {
        match self {
            Self::PayloadsExpired(g) => Some(g),
            _ => None,
        }
    }

    /// Whether this is the not-found-or-forbidden case (see [`ApiError::is_not_found_or_forbidden`]).
    #[must_use]
    pub fn is_not_found(&self) -> bool {
        self.api().is_some_and(ApiError::is_not_found_or_forbidden)
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Self::InvalidRequest(format!("cannot serialize the request body: {e}"))
    }
}

api_core::impl_vendor_error!(Error);
