//! The crate's one error type, [`Error`], and Kommo's error body, [`Problem`].

use std::time::Duration;

use api_core::{AuthError, DecodeError, ErrorClass, ExecuteError, HttpErrorParts, RepeatedCursor};
use http::StatusCode;
use serde::{Deserialize, Serialize};

/// Kommo's `application/problem+json` error body, in its exact shape.
///
/// ```json
/// {"validation-errors":[{"request_id":"0","errors":[{"code":"NotSupportedChoice",
///   "path":"custom_fields_values.0.field_id","detail":"The value you selected is not a valid choice."}]}],
///  "title":"Bad Request","type":"https://httpstatus.es/400","status":400,"detail":"Request validation failed"}
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    /// `title`, e.g. `"Bad Request"`.
    #[serde(default)]
    pub title: Option<String>,
    /// `type`, e.g. `"https://httpstatus.es/400"` or `".../OAuthProblemJson"`.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// `status` as sent in the body.
    #[serde(default, deserialize_with = "crate::de::opt_i64")]
    pub status: Option<i64>,
    /// `detail`, a human-readable (often Russian) message.
    #[serde(default)]
    pub detail: Option<String>,
    /// `hint` (OAuth errors: `"Token has been revoked"`).
    #[serde(default)]
    pub hint: Option<String>,
    /// `validation-errors` of a 400.
    #[serde(default, rename = "validation-errors", deserialize_with = "crate::de::null_as_empty")]
    pub validation_errors: Vec<ValidationErrors>,
    /// Any other member.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// The validation errors of one element of a batch, identified by the `request_id` it was sent with.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ValidationErrors {
    /// The `request_id` of the element (Kommo sends the array index as a string when none was given).
    #[serde(default, deserialize_with = "string_or_number")]
    pub request_id: Option<String>,
    /// The field errors.
    #[serde(default, deserialize_with = "crate::de::null_as_empty")]
    pub errors: Vec<FieldError>,
}

/// One field error: `{code, path, detail}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// e.g. `"NotSupportedChoice"`, `"FieldNotExpected"`.
    #[serde(default)]
    pub code: Option<String>,
    /// e.g. `"custom_fields_values.0.field_id"`.
    #[serde(default)]
    pub path: Option<String>,
    /// Human-readable detail.
    #[serde(default)]
    pub detail: Option<String>,
}

fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s),
        other => Some(other.to_string()),
    })
}

impl Problem {
    /// Parses a body as a problem document; `None` when it is not JSON of that shape (an HTML page, empty).
    #[must_use]
    pub fn parse(body: &[u8]) -> Option<Self> {
        let v: serde_json::Value = serde_json::from_slice(body).ok()?;
        if !v.is_object() {
            return None;
        }
        serde_json::from_value(v).ok()
    }

    /// Whether this is the OAuth "refresh/access token revoked" answer.
    #[must_use]
    pub fn is_revoked(&self) -> bool {
        self.hint.as_deref().is_some_and(|h| h.to_ascii_lowercase().contains("revoked"))
    }
}

/// Why the account is held off (see [`Error::HeldOff`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HoldCause {
    /// A 429.
    Throttled,
    /// The HTML 403 ban page.
    Banned,
}

impl std::fmt::Display for HoldCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Throttled => "a 429",
            Self::Banned => "the 403 ban page",
        })
    }
}

/// Everything that can go wrong calling Kommo.
///
/// Every variant answers [`Error::class`] (retry classification), [`Error::may_have_been_sent`] (whether the
/// request may have taken effect) and [`Error::retry_after`] (the wait the engine should apply before trying
/// again), so a sync engine can reschedule without matching on variants.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A non-2xx response with no more specific meaning (400 validation, 402, 404, 5xx after retries...).
    #[error("Kommo API error: {parts}")]
    Api {
        /// Status, headers of interest, raw body.
        parts: HttpErrorParts,
        /// The problem+json body, when it was one.
        problem: Option<Problem>,
    },
    /// 401 after at most one refresh (or with a long-lived token): the token is invalid or expired.
    #[error("Kommo rejected the credentials (401): {parts}")]
    Unauthorized {
        /// Status, headers, raw body.
        parts: HttpErrorParts,
        /// The problem body.
        problem: Option<Problem>,
    },
    /// The refresh token was rejected or spent ("Token has been revoked"): a human must authorize again.
    #[error("Kommo authorization revoked: {reason}")]
    AuthRevoked {
        /// Why.
        reason: String,
        /// The response that said so, if any.
        parts: Option<HttpErrorParts>,
    },
    /// 429 (Kommo answers with an HTML page and no `Retry-After`). Never retried in a hot loop: the
    /// account is held off for `retry_after` (later requests fail fast with [`Error::HeldOff`]) and the caller should
    /// reschedule.
    #[error("Kommo throttled the account (429); retry after {retry_after:?}")]
    Throttled {
        /// Status, headers, raw (HTML) body.
        parts: HttpErrorParts,
        /// How long to hold off.
        retry_after: Duration,
    },
    /// 403 with a non-JSON (nginx HTML) body: Kommo's IP/account ban after too many requests.
    #[error("Kommo banned this client (403 HTML page); retry after {retry_after:?}")]
    Banned {
        /// Status, headers, raw (HTML) body.
        parts: HttpErrorParts,
        /// How long to hold off.
        retry_after: Duration,
    },
    /// Not sent: the account is still held off after an earlier [`Error::Throttled`] or [`Error::Banned`] (of this
    /// client or a clone), for longer than [`crate::ClientBuilder::max_wait`]. The client never sleeps out Kommo's
    /// hold-off (60 s / 15 min) behind the caller's back: it fails fast with the remaining wait, so a worker can
    /// reschedule the work instead of stalling past its deadline or lease.
    #[error("Kommo account held off after {cause} (request not sent); retry after {retry_after:?}")]
    HeldOff {
        /// What Kommo answered that started the hold.
        cause: HoldCause,
        /// How much of the hold is left.
        retry_after: Duration,
    },
    /// No response (connect, timeout, broken connection), after retries.
    #[error(transparent)]
    Transport(#[from] ExecuteError),
    /// A 2xx body that did not decode; names the JSON path.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The OAuth session could not produce a token (no tokens stored, store failure, refresh endpoint down).
    #[error(transparent)]
    Auth(AuthError),
    /// The request is invalid before sending (limit over 250, unserializable body, bad base URL).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The entity does not exist: Kommo answered 204 (no content) to a single-entity GET.
    #[error("not found: {0}")]
    NotFound(String),
    /// Pagination handed back a page it had already returned.
    #[error(transparent)]
    RepeatedCursor(#[from] RepeatedCursor),
    /// A chunked batch write failed part-way: the chunks before the failure were written.
    #[error("batch write failed after {} element(s) were written: {source}", written.len())]
    Batch {
        /// `(request_id, id)` of the elements that were written before the failure.
        written: Vec<(String, u64)>,
        /// The `request_id`s of the elements in the failed chunk and after it (not written, or unknown when the
        /// failure may have been sent).
        not_written: Vec<String>,
        /// What failed.
        #[source]
        source: Box<Error>,
    },
}

impl From<AuthError> for Error {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Revoked(reason) => Self::AuthRevoked { reason, parts: None },
            other => Self::Auth(other),
        }
    }
}

impl Error {
    /// The HTTP status, when a response arrived.
    #[must_use]
    pub fn status(&self) -> Option<StatusCode> {
        self.parts().map(|p| p.status)
    }

    /// The raw response parts, when a response arrived.
    #[must_use]
    pub fn parts(&self) -> Option<&HttpErrorParts> {
        match self {
            Self::Api { parts, .. }
            | Self::Unauthorized { parts, .. }
            | Self::Throttled { parts, .. }
            | Self::Banned { parts, .. } => Some(parts),
            Self::AuthRevoked { parts, .. } => parts.as_ref(),
            Self::Batch { source, .. } => source.parts(),
            _ => None,
        }
    }

    /// Kommo's problem body, when there was one.
    #[must_use]
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            Self::Api { problem, .. } | Self::Unauthorized { problem, .. } => problem.as_ref(),
            Self::Batch { source, .. } => source.problem(),
            _ => None,
        }
    }

    /// The `validation-errors` of a 400 (empty otherwise).
    #[must_use]
    pub fn validation_errors(&self) -> &[ValidationErrors] {
        self.problem().map_or(&[], |p| p.validation_errors.as_slice())
    }

    /// How a caller should treat this error.
    #[must_use]
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Api { parts, .. } => ErrorClass::from_status(parts.status),
            Self::Auth(AuthError::Refresh(_)) => ErrorClass::Transient,
            Self::Unauthorized { .. } | Self::AuthRevoked { .. } | Self::Auth(_) => ErrorClass::Auth,
            Self::Throttled { .. } | Self::Banned { .. } | Self::HeldOff { .. } => ErrorClass::Throttled,
            Self::Transport(_) => ErrorClass::Transport,
            Self::Decode(_) | Self::RepeatedCursor(_) => ErrorClass::Decode,
            Self::InvalidRequest(_) | Self::NotFound(_) => ErrorClass::Client,
            Self::Batch { source, .. } => source.class(),
        }
    }

    /// Whether retrying later may succeed ([`ErrorClass::is_retryable`] of [`Error::class`]).
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        self.class().is_retryable()
    }

    /// Whether the request may have taken effect on Kommo (so a blind retry of a create could duplicate it).
    #[must_use]
    pub fn may_have_been_sent(&self) -> bool {
        match self {
            Self::Api { parts, .. } => parts.status.is_server_error(),
            Self::Transport(e) => e.source.may_have_been_sent,
            Self::Decode(_) => true,
            Self::Batch { source, .. } => source.may_have_been_sent(),
            _ => false,
        }
    }

    /// The wait the caller should apply before trying again: the backoff for [`Error::Throttled`] and
    /// [`Error::Banned`], what is left of it for [`Error::HeldOff`], a `Retry-After` on any other answer, `None`
    /// otherwise (use your own backoff for transient errors).
    #[must_use]
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Throttled { retry_after, .. }
            | Self::Banned { retry_after, .. }
            | Self::HeldOff { retry_after, .. } => Some(*retry_after),
            Self::Batch { source, .. } => source.retry_after(),
            Self::Api { parts, .. } => parts
                .headers
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| api_core::parse_retry_after(v, std::time::SystemTime::now())),
            _ => None,
        }
    }

    /// Whether the entity does not exist: a 404, or [`Error::NotFound`] (a 204 to a single-entity GET).
    #[must_use]
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound(_)) || self.status() == Some(StatusCode::NOT_FOUND)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_parses_the_documented_validation_shape() {
        let body = br#"{"validation-errors":[{"request_id":"0","errors":[{"code":"NotSupportedChoice","path":"custom_fields_values.0.field_id","detail":"The value you selected is not a valid choice."}]}],"title":"Bad Request","type":"https://httpstatus.es/400","status":400,"detail":"Request validation failed"}"#;
        let p = Problem::parse(body).unwrap();
        assert_eq!(p.status, Some(400));
        assert_eq!(p.validation_errors[0].request_id.as_deref(), Some("0"));
        assert_eq!(p.validation_errors[0].errors[0].code.as_deref(), Some("NotSupportedChoice"));
        assert_eq!(p.validation_errors[0].errors[0].path.as_deref(), Some("custom_fields_values.0.field_id"));
        assert!(Problem::parse(b"<html>429 Too Many Requests</html>").is_none());
        assert!(Problem::parse(b"").is_none());
    }

    #[test]
    fn revoked_hint_detected() {
        let p = Problem::parse(br#"{"hint":"Token has been revoked","title":"x","type":"https://developers.amocrm.ru/v3/errors/OAuthProblemJson","status":401,"detail":"y"}"#).unwrap();
        assert!(p.is_revoked());
    }
}

api_core::impl_vendor_error!(Error);
