//! The retry decision, as a pure function.
//!
//! [`RetryPolicy::decide`] takes everything that matters — attempt number, what happened (a status or a transport
//! failure and whether the request may have been sent), the parsed `Retry-After`, the vendor's own hint, whether the
//! request is idempotent, the time already spent, and a jitter sample — and returns [`Decision::Retry`] with a delay
//! or [`Decision::Stop`]. No clock, no randomness, no I/O: every branch is unit-tested below.

use std::time::{Duration, SystemTime};

use http::StatusCode;

/// What the vendor crate says about a failed response (its own rules on top of the generic ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum VendorHint {
    /// No vendor rule: decide from the status and `Retry-After`.
    Default,
    /// The vendor mandates this wait before the next request (Airtable: 30 s after a 429). Retried even without a
    /// `Retry-After`, and the wait is also applied to the rate-limit key so other requests hold off.
    WaitAtLeast(Duration),
    /// Never retry (Kommo's HTML 403 ban page; a validation error that a 5xx status disguises).
    Stop,
    /// Retry as a transient failure even though the status alone would not say so.
    Transient,
}

/// What happened on one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// A response with a non-success status.
    Status(StatusCode),
    /// No response. `may_have_been_sent` is false for connect errors, true for timeouts and broken connections.
    TransportError {
        /// Whether the server may have received the request.
        may_have_been_sent: bool,
    },
}

/// The decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Try again after this delay.
    Retry {
        /// How long to wait first.
        after: Duration,
    },
    /// Give up and report the last outcome.
    Stop,
}

/// Retry limits and backoff shape. `Default`: 5 attempts, 500 ms base, 60 s cap, 5 min overall deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Maximum number of attempts in all (1 = no retries).
    pub max_attempts: u32,
    /// First backoff ceiling; doubles each attempt.
    pub base_delay: Duration,
    /// Ceiling for a computed backoff (a server's `Retry-After` or vendor wait may be longer, up to `max_wait`).
    pub max_delay: Duration,
    /// Longest single wait accepted from a server or vendor rule; beyond it the call stops and reports (the caller,
    /// e.g. the sync engine, reschedules the whole job instead of holding a connection).
    pub max_wait: Duration,
    /// Overall budget from the first attempt: no retry is scheduled that would start after it.
    pub deadline: Option<Duration>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(60),
            max_wait: Duration::from_secs(120),
            deadline: Some(Duration::from_secs(300)),
        }
    }
}

/// The inputs of one decision.
#[derive(Debug, Clone, Copy)]
pub struct RetryInput {
    /// The attempt that just failed, starting at 1.
    pub attempt: u32,
    /// What happened.
    pub outcome: AttemptOutcome,
    /// The server's `Retry-After`, already parsed (see [`parse_retry_after`]).
    pub retry_after: Option<Duration>,
    /// The vendor crate's classification.
    pub hint: VendorHint,
    /// Whether repeating the request is safe.
    pub idempotent: bool,
    /// Time spent since the first attempt started.
    pub elapsed: Duration,
    /// A uniform sample in `[0, 1)` for full jitter (pass `rand::random()`; tests pass fixed values).
    pub jitter: f64,
}

impl RetryPolicy {
    /// No retries at all.
    #[must_use]
    pub fn none() -> Self {
        Self { max_attempts: 1, ..Self::default() }
    }

    /// Capped exponential backoff with full jitter: `jitter * min(max_delay, base * 2^(attempt-1))`.
    #[must_use]
    pub fn backoff(&self, attempt: u32, jitter: f64) -> Duration {
        let exp = attempt.saturating_sub(1).min(30);
        let ceiling = self.base_delay.saturating_mul(1u32 << exp).min(self.max_delay);
        ceiling.mul_f64(jitter.clamp(0.0, 1.0))
    }

    /// Decides whether and when to retry.
    #[must_use]
    pub fn decide(&self, input: &RetryInput) -> Decision {
        if input.attempt >= self.max_attempts || input.hint == VendorHint::Stop {
            return Decision::Stop;
        }
        let retryable = match input.outcome {
            AttemptOutcome::TransportError { may_have_been_sent } => input.idempotent || !may_have_been_sent,
            AttemptOutcome::Status(status) => {
                let throttled = status == StatusCode::TOO_MANY_REQUESTS;
                let transient = status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT;
                match input.hint {
                    // A 429 or a vendor-mandated wait means the request was refused before doing anything.
                    VendorHint::WaitAtLeast(_) => true,
                    _ if throttled => true,
                    VendorHint::Transient => input.idempotent,
                    _ => transient && input.idempotent,
                }
            }
        };
        if !retryable {
            return Decision::Stop;
        }
        let mut after = self.backoff(input.attempt, input.jitter);
        if let Some(ra) = input.retry_after {
            after = after.max(ra);
        }
        if let VendorHint::WaitAtLeast(w) = input.hint {
            after = after.max(w);
        }
        if after > self.max_wait {
            return Decision::Stop;
        }
        if let Some(deadline) = self.deadline
            && input.elapsed.saturating_add(after) > deadline
        {
            return Decision::Stop;
        }
        Decision::Retry { after }
    }
}

/// Parses a `Retry-After` value: delta-seconds (`"30"`, also fractional `"1.5"` as some APIs send) or an HTTP-date,
/// relative to `now`. A date in the past gives zero.
#[must_use]
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(attempt: u32, outcome: AttemptOutcome) -> RetryInput {
        RetryInput {
            attempt,
            outcome,
            retry_after: None,
            hint: VendorHint::Default,
            idempotent: true,
            elapsed: Duration::ZERO,
            jitter: 1.0,
        }
    }
    const S503: AttemptOutcome = AttemptOutcome::Status(StatusCode::SERVICE_UNAVAILABLE);
    const S429: AttemptOutcome = AttemptOutcome::Status(StatusCode::TOO_MANY_REQUESTS);

    #[test]
    fn backoff_is_capped_exponential_with_full_jitter() {
        let p = RetryPolicy {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            ..RetryPolicy::default()
        };
        assert_eq!(p.backoff(1, 1.0), Duration::from_millis(100));
        assert_eq!(p.backoff(2, 1.0), Duration::from_millis(200));
        assert_eq!(p.backoff(4, 1.0), Duration::from_millis(800));
        assert_eq!(p.backoff(5, 1.0), Duration::from_secs(1), "capped");
        assert_eq!(p.backoff(40, 1.0), Duration::from_secs(1), "no overflow");
        assert_eq!(p.backoff(3, 0.5), Duration::from_millis(200));
        assert_eq!(p.backoff(3, 0.0), Duration::ZERO);
    }

    #[test]
    fn server_error_on_idempotent_request_is_retried() {
        let p = RetryPolicy::default();
        assert_eq!(p.decide(&input(1, S503)), Decision::Retry { after: Duration::from_millis(500) });
    }

    #[test]
    fn server_error_on_non_idempotent_request_stops() {
        let p = RetryPolicy::default();
        let i = RetryInput { idempotent: false, ..input(1, S503) };
        assert_eq!(p.decide(&i), Decision::Stop);
    }

    #[test]
    fn client_errors_stop() {
        let p = RetryPolicy::default();
        for s in [400, 401, 403, 404, 422] {
            let i = input(1, AttemptOutcome::Status(StatusCode::from_u16(s).unwrap()));
            assert_eq!(p.decide(&i), Decision::Stop, "{s}");
        }
    }

    #[test]
    fn throttled_is_retried_even_for_post_and_honours_retry_after() {
        let p = RetryPolicy::default();
        let i = RetryInput { idempotent: false, retry_after: Some(Duration::from_secs(7)), ..input(1, S429) };
        assert_eq!(p.decide(&i), Decision::Retry { after: Duration::from_secs(7) });
    }

    #[test]
    fn vendor_wait_applies_without_header() {
        let p = RetryPolicy::default();
        let i = RetryInput { hint: VendorHint::WaitAtLeast(Duration::from_secs(30)), ..input(1, S429) };
        assert_eq!(p.decide(&i), Decision::Retry { after: Duration::from_secs(30) });
    }

    #[test]
    fn vendor_stop_wins() {
        let p = RetryPolicy::default();
        let i = RetryInput { hint: VendorHint::Stop, ..input(1, AttemptOutcome::Status(StatusCode::FORBIDDEN)) };
        assert_eq!(p.decide(&i), Decision::Stop);
        let i = RetryInput { hint: VendorHint::Stop, ..input(1, S503) };
        assert_eq!(p.decide(&i), Decision::Stop);
    }

    #[test]
    fn vendor_transient_retries_idempotent_only() {
        let p = RetryPolicy::default();
        let i = RetryInput { hint: VendorHint::Transient, ..input(1, AttemptOutcome::Status(StatusCode::CONFLICT)) };
        assert!(matches!(p.decide(&i), Decision::Retry { .. }));
        let i = RetryInput { idempotent: false, ..i };
        assert_eq!(p.decide(&i), Decision::Stop);
    }

    #[test]
    fn connect_error_is_retried_even_for_post() {
        let p = RetryPolicy::default();
        let i =
            RetryInput { idempotent: false, ..input(1, AttemptOutcome::TransportError { may_have_been_sent: false }) };
        assert!(matches!(p.decide(&i), Decision::Retry { .. }));
    }

    #[test]
    fn timeout_after_send_is_not_retried_for_post() {
        let p = RetryPolicy::default();
        let i =
            RetryInput { idempotent: false, ..input(1, AttemptOutcome::TransportError { may_have_been_sent: true }) };
        assert_eq!(p.decide(&i), Decision::Stop);
        let i = RetryInput { idempotent: true, ..i };
        assert!(matches!(p.decide(&i), Decision::Retry { .. }));
    }

    #[test]
    fn max_attempts_stops() {
        let p = RetryPolicy { max_attempts: 3, ..RetryPolicy::default() };
        assert!(matches!(p.decide(&input(2, S503)), Decision::Retry { .. }));
        assert_eq!(p.decide(&input(3, S503)), Decision::Stop);
        assert_eq!(RetryPolicy::none().decide(&input(1, S503)), Decision::Stop);
    }

    #[test]
    fn deadline_stops() {
        let p = RetryPolicy { deadline: Some(Duration::from_secs(10)), ..RetryPolicy::default() };
        let i =
            RetryInput { elapsed: Duration::from_secs(9), retry_after: Some(Duration::from_secs(2)), ..input(1, S429) };
        assert_eq!(p.decide(&i), Decision::Stop);
        let i = RetryInput { elapsed: Duration::from_secs(5), ..i };
        assert_eq!(p.decide(&i), Decision::Retry { after: Duration::from_secs(2) });
    }

    #[test]
    fn wait_longer_than_max_wait_stops() {
        let p = RetryPolicy::default();
        let i = RetryInput { retry_after: Some(Duration::from_secs(3600)), ..input(1, S429) };
        assert_eq!(p.decide(&i), Decision::Stop);
    }

    #[test]
    fn retry_after_parses_seconds_and_dates() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after(" 1.5 ", now), Some(Duration::from_millis(1500)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
    }
}
