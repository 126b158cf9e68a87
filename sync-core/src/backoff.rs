//! Retry delays: capped exponential backoff with full jitter (AWS architecture blog "Exponential Backoff And
//! Jitter"; the Temporal defaults of 1 s initial interval and coefficient 2). The engine keeps its own copy so that
//! it does not depend on the HTTP-client policy in `api-core`; a handler that knows better (a `Retry-After` hint)
//! returns [`Outcome::Retry`](crate::Outcome::Retry) with `after: Some(..)`, which wins over this policy.

use std::time::Duration;

use rand::Rng;

/// Capped exponential backoff with full jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay ceiling before jitter for the first retry.
    pub initial: Duration,
    /// Growth factor per attempt.
    pub multiplier: u32,
    /// Upper bound for any delay.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { initial: Duration::from_secs(1), multiplier: 2, max: Duration::from_secs(600) }
    }
}

impl Backoff {
    /// The un-jittered ceiling for retry number `attempt` (1-based): `min(max, initial * multiplier^(attempt-1))`.
    #[must_use]
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(63);
        let factor = u64::from(self.multiplier).saturating_pow(exp);
        let ms = u64::try_from(self.initial.as_millis()).unwrap_or(u64::MAX).saturating_mul(factor);
        Duration::from_millis(ms).min(self.max)
    }

    /// A delay drawn uniformly from `[0, ceiling(attempt)]` ("full jitter").
    #[must_use]
    pub fn delay(&self, attempt: u32) -> Duration {
        self.delay_with(attempt, &mut rand::rng())
    }

    /// [`Backoff::delay`] with a caller-supplied random source (deterministic tests).
    pub fn delay_with<R: Rng + ?Sized>(&self, attempt: u32, rng: &mut R) -> Duration {
        let ceiling = u64::try_from(self.ceiling(attempt).as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rng.random_range(0..=ceiling))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn ceiling_grows_and_caps() {
        let b = Backoff { initial: Duration::from_millis(100), multiplier: 2, max: Duration::from_secs(1) };
        assert_eq!(b.ceiling(1), Duration::from_millis(100));
        assert_eq!(b.ceiling(2), Duration::from_millis(200));
        assert_eq!(b.ceiling(4), Duration::from_millis(800));
        assert_eq!(b.ceiling(5), Duration::from_secs(1));
        assert_eq!(b.ceiling(500), Duration::from_secs(1));
    }

    #[test]
    fn jitter_stays_within_ceiling() {
        let b = Backoff::default();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for attempt in 1..40 {
            let d = b.delay_with(attempt, &mut rng);
            assert!(d <= b.ceiling(attempt));
        }
    }
}
