//! Airtable's per-base budget on the client side: evenly spaced requests with headroom for jitter, and the 30 s
//! hold after a 429 shared by every clone of the client.
//!
//! The rule (api-notes/airtable.md C.4, OFFICIAL rate-limits): "5 requests per second per base … If you exceed these
//! rates, you will receive a 429 status code and will need to wait 30 seconds before subsequent requests will
//! succeed." The server counts requests when they *arrive*; a client that sends exactly every 200 ms sits on the
//! line, and any network jitter (request *i* delayed, request *i+5* not) puts six arrivals in one second — and one
//! 429 costs 30 s, i.e. 150 requests. So the sends are spaced `(1 s + margin) / n`: any `n + 1` consecutive sends
//! span `1 s + margin`, and their arrivals still span at least 1 s as long as the one-way latency varies by less than
//! the margin. The default margin, [`DEFAULT_RATE_MARGIN`] (100 ms), gives 220 ms spacing: 4.55 requests/s, i.e.
//! 45.5 records/s for 10-record upserts (91 % of the 50/s ceiling), tolerating 100 ms of jitter.
//!
//! After a 429, [`BaseLimiter::pause`] holds the base for everyone: requests that had already reserved a later slot
//! do not go out during the hold (their slot is void; they queue again behind it).

use std::{
    collections::HashMap,
    fmt,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::time::Instant;

/// Default headroom added to Airtable's 1 s window before dividing it among the allowed requests (see the module
/// docs): 100 ms ⇒ 220 ms between requests to one base, 4.55 requests/s.
pub const DEFAULT_RATE_MARGIN: Duration = Duration::from_millis(100);

#[derive(Debug, Default)]
struct KeyState {
    /// The latest reserved slot.
    last: Option<Instant>,
    /// Held until then after a 429.
    paused_until: Option<Instant>,
}

/// The per-base limiter of a [`crate::Client`] (shared by its clones; pass it to another client with
/// [`crate::ClientBuilder::base_limiter`] to share one budget). See the module docs.
#[derive(Clone)]
pub struct BaseLimiter {
    spacing: Option<Duration>,
    state: Arc<Mutex<HashMap<String, KeyState>>>,
}

impl fmt::Debug for BaseLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BaseLimiter").field("spacing", &self.spacing).finish_non_exhaustive()
    }
}

impl BaseLimiter {
    /// `per_second` requests per base (Airtable: 5), spaced `(1 s + margin) / per_second` apart; `None`: no spacing
    /// (the hold after a 429 still applies).
    #[must_use]
    pub fn new(per_second: Option<u32>, margin: Duration) -> Self {
        let spacing = per_second.map(|n| (Duration::from_secs(1) + margin) / n.max(1));
        Self { spacing, state: Arc::default() }
    }

    /// Airtable's rule with the default margin: 5 per second, 220 ms apart.
    #[must_use]
    pub fn airtable() -> Self {
        Self::new(Some(crate::client::REQUESTS_PER_SECOND_PER_BASE), DEFAULT_RATE_MARGIN)
    }

    /// The time between two requests to one base (`None`: unlimited).
    #[must_use]
    pub fn spacing(&self) -> Option<Duration> {
        self.spacing
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, KeyState>> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn reserve(&self, key: &str) -> Instant {
        let now = Instant::now();
        let mut map = self.lock();
        let st = map.entry(key.to_owned()).or_default();
        let mut at = now;
        if let Some(p) = st.paused_until {
            at = at.max(p);
        }
        if let (Some(last), Some(spacing)) = (st.last, self.spacing) {
            at = at.max(last + spacing);
        }
        st.last = Some(at);
        at
    }

    /// Waits until one request may be sent to `key` (a base id). A hold that starts while waiting voids the slot:
    /// the caller queues again behind the hold.
    pub async fn acquire(&self, key: &str) {
        loop {
            let at = self.reserve(key);
            if at > Instant::now() {
                tokio::time::sleep_until(at).await;
            }
            let held = self.lock().get(key).and_then(|s| s.paused_until).is_some_and(|p| p > Instant::now());
            if !held {
                return;
            }
        }
    }

    /// Holds `key` until `until` for every clone (Airtable: 30 s after a 429).
    pub fn pause(&self, key: &str, until: Instant) {
        let mut map = self.lock();
        let st = map.entry(key.to_owned()).or_default();
        st.paused_until = Some(st.paused_until.map_or(until, |p| p.max(until)));
    }

    /// When the hold on `key` ends, if one is in force.
    #[must_use]
    pub fn paused_until(&self, key: &str) -> Option<Instant> {
        self.lock().get(key).and_then(|s| s.paused_until).filter(|p| *p > Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn default_spacing_is_220_ms() {
        let l = BaseLimiter::airtable();
        assert_eq!(l.spacing(), Some(Duration::from_millis(220)));
        let start = Instant::now();
        for _ in 0..6 {
            l.acquire("appA").await;
        }
        // six sends span 5 × 220 ms = 1.1 s: even if the first is delayed 100 ms more than the sixth on the way,
        // they arrive 1 s apart
        assert_eq!(Instant::now() - start, Duration::from_millis(1100));
    }

    #[tokio::test(start_paused = true)]
    async fn a_hold_voids_slots_reserved_before_it() {
        let l = BaseLimiter::airtable();
        let start = Instant::now();
        l.acquire("appA").await;
        let l2 = l.clone();
        let waiter = tokio::spawn(async move {
            l2.acquire("appA").await; // reserves the 220 ms slot
            Instant::now()
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        l.pause("appA", Instant::now() + Duration::from_secs(30));
        let sent = waiter.await.unwrap();
        assert!(sent - start >= Duration::from_millis(30_100), "{:?}", sent - start);
        assert!(l.paused_until("appB").is_none());
    }
}
