//! Webhook signature primitives: HMAC-SHA256 over raw bytes, constant-time comparison, `t=…,v1=…` header parsing,
//! and timestamp tolerance with an injectable clock.
//!
//! Vendor crates compose them: Calendly signs `"{t}.{body}"` and sends `Calendly-Webhook-Signature: t=…,v1=<hex>`;
//! Customer.io signs `"v0:{timestamp}:{body}"` (hex); Airtable sends `X-Airtable-Content-MAC: hmac-sha256=<hex>`
//! keyed with the base64-decoded MAC secret.

use std::{
    fmt,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Why a signature check failed. The message never contains the secret or the expected signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The signature header is absent.
    #[error("signature header missing")]
    Missing,
    /// The header is present but not in the expected format.
    #[error("signature header malformed: {0}")]
    Malformed(String),
    /// No signature matched.
    #[error("signature mismatch")]
    Mismatch,
    /// The timestamp is outside the tolerance window (a replay, or a badly skewed clock).
    #[error("timestamp {timestamp} outside tolerance of {tolerance_secs} s (now {now})")]
    Expired {
        /// The signed timestamp (unix seconds).
        timestamp: i64,
        /// Now (unix seconds).
        now: i64,
        /// Allowed skew.
        tolerance_secs: u64,
    },
}

/// HMAC-SHA256 of the concatenation of `parts`, keyed with `key`.
#[must_use]
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// Verifies a raw signature over the concatenation of `parts`, in constant time.
///
/// # Errors
/// [`SignatureError::Mismatch`].
pub fn verify_raw(key: &[u8], parts: &[&[u8]], signature: &[u8]) -> Result<(), SignatureError> {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    for p in parts {
        mac.update(p);
    }
    mac.verify_slice(signature).map_err(|_| SignatureError::Mismatch)
}

/// Verifies a hex-encoded HMAC-SHA256 signature (either case) in constant time.
///
/// # Errors
/// [`SignatureError::Malformed`] for non-hex input, [`SignatureError::Mismatch`] otherwise.
pub fn verify_hex(key: &[u8], parts: &[&[u8]], signature_hex: &str) -> Result<(), SignatureError> {
    let sig = hex::decode(signature_hex.trim()).map_err(|e| SignatureError::Malformed(format!("not hex: {e}")))?;
    verify_raw(key, parts, &sig)
}

/// Verifies a base64-encoded (standard alphabet, padded or not) HMAC-SHA256 signature in constant time.
///
/// # Errors
/// [`SignatureError::Malformed`] for non-base64 input, [`SignatureError::Mismatch`] otherwise.
pub fn verify_base64(key: &[u8], parts: &[&[u8]], signature_b64: &str) -> Result<(), SignatureError> {
    let s = signature_b64.trim();
    let sig = base64::engine::general_purpose::STANDARD
        .decode(s)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(s))
        .map_err(|e| SignatureError::Malformed(format!("not base64: {e}")))?;
    verify_raw(key, parts, &sig)
}

/// Compares two byte strings in constant time (for shared secrets such as a secret path token).
#[must_use]
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// A parsed `t=<unix>,v1=<sig>[,v1=<sig>…]` header (Stripe/Calendly style). Unknown schemes are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimestampedSignature {
    /// The `t` value (unix seconds).
    pub timestamp: i64,
    /// `(scheme, value)` pairs in header order, e.g. `("v1", "5257a8…")`.
    pub signatures: Vec<(String, String)>,
}

impl TimestampedSignature {
    /// Parses the header value. Whitespace around items is ignored.
    ///
    /// # Errors
    /// [`SignatureError::Malformed`] when `t` is missing or not a number, or no signature is present.
    pub fn parse(header: &str) -> Result<Self, SignatureError> {
        let mut timestamp = None;
        let mut signatures = Vec::new();
        for item in header.split(',') {
            let (k, v) = item
                .trim()
                .split_once('=')
                .ok_or_else(|| SignatureError::Malformed(format!("item without `=`: {:?}", item.trim())))?;
            if k == "t" {
                timestamp =
                    Some(v.parse::<i64>().map_err(|_| SignatureError::Malformed(format!("t is not a number: {v:?}")))?);
            } else {
                signatures.push((k.to_owned(), v.to_owned()));
            }
        }
        let timestamp = timestamp.ok_or_else(|| SignatureError::Malformed("no t= timestamp".into()))?;
        if signatures.is_empty() {
            return Err(SignatureError::Malformed("no signature".into()));
        }
        Ok(Self { timestamp, signatures })
    }

    /// The values for one scheme (`"v1"`).
    pub fn values<'a>(&'a self, scheme: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.signatures.iter().filter(move |(k, _)| k == scheme).map(|(_, v)| v.as_str())
    }
}

/// Checks that `timestamp` (unix seconds) is within `tolerance` of `clock.now()`, in both directions.
///
/// # Errors
/// [`SignatureError::Expired`].
pub fn check_timestamp(timestamp: i64, clock: &dyn Clock, tolerance: Duration) -> Result<(), SignatureError> {
    let now = clock.unix_seconds();
    // `abs_diff` cannot overflow: `now - timestamp` would panic (debug) or wrap into the window (release) for a
    // timestamp near `i64::MIN`/`i64::MAX`
    if now.abs_diff(timestamp) > tolerance.as_secs() {
        return Err(SignatureError::Expired { timestamp, now, tolerance_secs: tolerance.as_secs() });
    }
    Ok(())
}

/// A source of wall-clock time, injectable for tests.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Now.
    fn now(&self) -> SystemTime;

    /// Now as unix seconds.
    fn unix_seconds(&self) -> i64 {
        let d = self.now().duration_since(UNIX_EPOCH).unwrap_or_default();
        i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
    }
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that says what it is told; cloneable and shared.
#[derive(Debug, Clone)]
pub struct FixedClock(Arc<Mutex<SystemTime>>);

impl FixedClock {
    /// A clock at `unix_seconds`.
    #[must_use]
    pub fn at_unix(unix_seconds: u64) -> Self {
        Self(Arc::new(Mutex::new(UNIX_EPOCH + Duration::from_secs(unix_seconds))))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut t = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *t += by;
    }

    /// Sets the clock.
    pub fn set(&self, to: SystemTime) {
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = to;
    }
}

impl Clock for FixedClock {
    fn now(&self) -> SystemTime {
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Known answers computed independently with Python:
    //   python3 -c "import hmac,hashlib;print(hmac.new(b'key',b'The quick brown fox jumps over the lazy dog',hashlib.sha256).hexdigest())"
    //   -> f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8  (also RFC-style test vector on Wikipedia)
    const FOX: &[u8] = b"The quick brown fox jumps over the lazy dog";
    const FOX_HEX: &str = "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8";
    //   python3 -c "import hmac,hashlib,base64;print(base64.b64encode(hmac.new(b'key',b'The quick brown fox jumps over the lazy dog',hashlib.sha256).digest()).decode())"
    const FOX_B64: &str = "97yD9DBThCSxMpjmqm+xQ+9NWaFJRhdZl0edvC0aPNg=";

    #[test]
    fn known_answer_hex_and_base64() {
        assert_eq!(hex::encode(hmac_sha256(b"key", &[FOX])), FOX_HEX);
        verify_hex(b"key", &[FOX], FOX_HEX).unwrap();
        verify_hex(b"key", &[FOX], &FOX_HEX.to_uppercase()).unwrap();
        verify_hex(b"key", &[b"The quick brown fox ", b"jumps over the lazy dog"], FOX_HEX).unwrap();
        verify_base64(b"key", &[FOX], FOX_B64).unwrap();
        verify_base64(b"key", &[FOX], FOX_B64.trim_end_matches('=')).unwrap();
    }

    #[test]
    fn mismatches_and_malformed() {
        assert_eq!(verify_hex(b"other", &[FOX], FOX_HEX), Err(SignatureError::Mismatch));
        assert_eq!(verify_hex(b"key", &[b"tampered"], FOX_HEX), Err(SignatureError::Mismatch));
        assert_eq!(verify_hex(b"key", &[FOX], &FOX_HEX[..10]), Err(SignatureError::Mismatch));
        assert!(matches!(verify_hex(b"key", &[FOX], "zz"), Err(SignatureError::Malformed(_))));
        assert!(matches!(verify_base64(b"key", &[FOX], "***"), Err(SignatureError::Malformed(_))));
    }

    #[test]
    fn parses_timestamped_header() {
        let h = TimestampedSignature::parse("t=1492774577, v1=5257a869e7, v1=abcd, v0=old").unwrap();
        assert_eq!(h.timestamp, 1_492_774_577);
        assert_eq!(h.values("v1").collect::<Vec<_>>(), vec!["5257a869e7", "abcd"]);
        assert_eq!(h.values("v0").collect::<Vec<_>>(), vec!["old"]);
        assert!(matches!(TimestampedSignature::parse("v1=abc"), Err(SignatureError::Malformed(_))));
        assert!(matches!(TimestampedSignature::parse("t=abc,v1=x"), Err(SignatureError::Malformed(_))));
        assert!(matches!(TimestampedSignature::parse("t=1"), Err(SignatureError::Malformed(_))));
        assert!(matches!(TimestampedSignature::parse("garbage"), Err(SignatureError::Malformed(_))));
    }

    #[test]
    fn timestamp_tolerance_both_ways() {
        let clock = FixedClock::at_unix(1_700_000_000);
        let tol = Duration::from_secs(180);
        check_timestamp(1_700_000_000 - 180, &clock, tol).unwrap();
        check_timestamp(1_700_000_000 + 180, &clock, tol).unwrap();
        assert!(matches!(check_timestamp(1_700_000_000 - 181, &clock, tol), Err(SignatureError::Expired { .. })));
        assert!(matches!(check_timestamp(1_700_000_000 + 181, &clock, tol), Err(SignatureError::Expired { .. })));
        clock.advance(Duration::from_secs(1000));
        assert!(check_timestamp(1_700_000_000, &clock, tol).is_err());
    }

    #[test]
    fn extreme_timestamps_are_rejected_not_wrapped() {
        let clock = FixedClock::at_unix(1_700_000_000);
        let tol = Duration::from_secs(300);
        for t in [i64::MIN, i64::MIN + 1, -1, 0, i64::MAX, i64::MAX - 1] {
            assert!(matches!(check_timestamp(t, &clock, tol), Err(SignatureError::Expired { .. })), "{t}");
        }
        // a tolerance beyond i64 seconds still compares correctly
        check_timestamp(i64::MIN, &clock, Duration::from_secs(u64::MAX)).unwrap();
    }

    proptest::proptest! {
        /// Any timestamp: no panic, and accepted exactly when it is within the tolerance of now.
        #[test]
        fn check_timestamp_never_overflows(t in proptest::num::i64::ANY, tol in 0u64..=u64::MAX) {
            let clock = FixedClock::at_unix(1_700_000_000);
            let within = (i128::from(t) - 1_700_000_000i128).unsigned_abs() <= u128::from(tol);
            proptest::prop_assert_eq!(check_timestamp(t, &clock, Duration::from_secs(tol)).is_ok(), within);
        }
    }

    #[test]
    fn constant_time_eq_works() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
