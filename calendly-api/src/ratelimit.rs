//! Calendly's rate-limit headers and how the client reacts to them.
//!
//! Every response carries `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset` (seconds until the
//! window resets; typically 60). Limits are per user: 500 requests/minute on paid plans, 50 on Free. The client
//! pauses its limiter key until the reset when `Remaining` reaches 0, and on a 429 waits `Reset` seconds before
//! retrying (through [`classify`] and api-core's retry policy, which also pauses the key for other requests).

use std::time::Duration;

use api_core::{RawResponse, VendorHint};
use http::HeaderMap;

/// The parsed `X-RateLimit-*` headers of one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RateLimitInfo {
    /// `X-RateLimit-Limit`: requests allowed per window.
    pub limit: Option<u32>,
    /// `X-RateLimit-Remaining`: requests left in this window.
    pub remaining: Option<u32>,
    /// `X-RateLimit-Reset`: time until the window resets.
    pub reset: Option<Duration>,
}

impl RateLimitInfo {
    /// Parses the headers; `None` when none of the three is present.
    #[must_use]
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        fn num(h: &HeaderMap, name: &str) -> Option<u64> {
            h.get(name)?.to_str().ok()?.trim().parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0).map(|v| {
                // seconds or counts; fractional values are rounded up
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let r = v.ceil() as u64;
                r
            })
        }
        let info = Self {
            limit: num(headers, "x-ratelimit-limit").and_then(|v| u32::try_from(v).ok()),
            remaining: num(headers, "x-ratelimit-remaining").and_then(|v| u32::try_from(v).ok()),
            reset: num(headers, "x-ratelimit-reset").map(Duration::from_secs),
        };
        (info != Self::default()).then_some(info)
    }

    /// Whether the window is used up (`Remaining: 0`).
    #[must_use]
    pub fn exhausted(&self) -> bool {
        self.remaining == Some(0)
    }
}

/// Default wait after a 429 that carries no `X-RateLimit-Reset` (Calendly's window is a minute).
pub const DEFAULT_THROTTLE_WAIT: Duration = Duration::from_secs(60);

/// The classifier installed on the HTTP client: a 429 waits until `X-RateLimit-Reset` (60 s without it).
#[must_use]
pub fn classify(resp: &RawResponse) -> VendorHint {
    let info = RateLimitInfo::from_headers(&resp.headers);
    if resp.status == http::StatusCode::TOO_MANY_REQUESTS {
        return VendorHint::WaitAtLeast(info.and_then(|i| i.reset).unwrap_or(DEFAULT_THROTTLE_WAIT));
    }
    // Anything else follows the generic rules (5xx retried only when idempotent); the client pauses its limiter
    // on `Remaining: 0` after every final response, whatever its status.
    VendorHint::Default
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        h
    }

    #[test]
    fn parses_headers() {
        let i = RateLimitInfo::from_headers(&headers(&[
            ("X-RateLimit-Limit", "500"),
            ("X-RateLimit-Remaining", "0"),
            ("X-RateLimit-Reset", "60"),
        ]))
        .unwrap();
        assert_eq!(i.limit, Some(500));
        assert!(i.exhausted());
        assert_eq!(i.reset, Some(Duration::from_secs(60)));
        assert!(RateLimitInfo::from_headers(&HeaderMap::new()).is_none());
        let i = RateLimitInfo::from_headers(&headers(&[("x-ratelimit-reset", "1.2"), ("x-ratelimit-remaining", "x")]))
            .unwrap();
        assert_eq!(i.reset, Some(Duration::from_secs(2)));
        assert_eq!(i.remaining, None);
    }

    #[test]
    fn classifies_429_with_reset() {
        let r = RawResponse {
            status: http::StatusCode::TOO_MANY_REQUESTS,
            headers: headers(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "17")]),
            body: bytes::Bytes::new(),
        };
        assert_eq!(classify(&r), VendorHint::WaitAtLeast(Duration::from_secs(17)));
        let r = RawResponse { headers: HeaderMap::new(), ..r };
        assert_eq!(classify(&r), VendorHint::WaitAtLeast(DEFAULT_THROTTLE_WAIT));
        let r = RawResponse { status: http::StatusCode::NOT_FOUND, ..r };
        assert_eq!(classify(&r), VendorHint::Default);
        // a 500 with an exhausted window is not a throttle: a POST must not be retried because of it
        let r = RawResponse {
            status: http::StatusCode::INTERNAL_SERVER_ERROR,
            headers: headers(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "17")]),
            body: bytes::Bytes::new(),
        };
        assert_eq!(classify(&r), VendorHint::Default);
    }
}
