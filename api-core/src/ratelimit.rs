//! A shared, keyed rate limiter on tokio's clock.
//!
//! Why not `governor` directly: its async waits sleep on `futures_timer`, not tokio's timer, so a paused tokio
//! clock cannot fast-forward them and spacing cannot be tested in virtual time; and its `per_second(n)` admits a
//! burst of `n` up front, which Airtable and Kommo punish. This limiter is a small reservation scheduler: each
//! caller reserves the earliest slot that satisfies every rule for its key, in arrival order (FIFO, so no starvation),
//! then sleeps until that slot on tokio's clock. Clones share state, so all clones of an API client respect one
//! budget per key.
//!
//! Rules:
//! - [`Rule::Spacing`] — "N per period, no burst": consecutive grants are at least `period / N` apart.
//! - [`Rule::Window`] — "at most N in any sliding window": the N-th previous grant must be a whole window ago.
//!
//! [`RateLimiter::pause`] holds a key until a time (Airtable's 30 s after a 429, a `Retry-After`).
//!
//! [`RateBudget`] is the interface the clients draw their requests from: [`RateLimiter`] is the in-process one; a
//! budget kept elsewhere (sync-core's `StoreBudget`, one row per key in the database that several processes share)
//! plugs in the same way, so the API crates stay free of any database.

use std::{
    collections::{HashMap, VecDeque},
    fmt,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::future::BoxFuture;
use tokio::time::Instant;

/// Why a [`RateBudget`] could not grant or record anything (e.g. its database is unreachable). The request was not
/// sent.
#[derive(Debug)]
pub struct BudgetError(Box<dyn std::error::Error + Send + Sync>);

impl BudgetError {
    /// Wraps the budget's own error.
    pub fn new(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self(e.into())
    }
}

impl fmt::Display for BudgetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rate budget unavailable: {}", self.0)
    }
}

impl std::error::Error for BudgetError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

impl From<BudgetError> for crate::TransportError {
    /// A request that could not get a slot was not sent.
    fn from(e: BudgetError) -> Self {
        Self { kind: crate::TransportErrorKind::Budget, may_have_been_sent: false, message: e.to_string() }
    }
}

impl From<BudgetError> for crate::ExecuteError {
    fn from(e: BudgetError) -> Self {
        Self { source: e.into(), attempts: 0 }
    }
}

/// A keyed request budget (one key per vendor account, base, workspace…), possibly shared with other processes.
///
/// Contract, for every implementation:
/// - [`acquire`](RateBudget::acquire) returns when one request for `key` may leave: after the budget's spacing or
///   window rule, and after any hold set with [`pause`](RateBudget::pause) that was in force when it reserved;
/// - [`pause`](RateBudget::pause) holds `key` for `wait` from now for every user of the budget (a 429's wait, a ban);
///   holds only ever extend;
/// - [`held`](RateBudget::held) tells how long the hold on `key` still lasts, so a client can check right before
///   sending (a hold set while a request waited for its slot voids that slot).
pub trait RateBudget: Send + Sync + fmt::Debug {
    /// Waits for the next slot for `key`.
    fn acquire<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), BudgetError>>;
    /// Holds `key` for `wait` from now.
    fn pause<'a>(&'a self, key: &'a str, wait: Duration) -> BoxFuture<'a, Result<(), BudgetError>>;
    /// The time left on `key`'s hold, if one is in force.
    fn held<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Duration>, BudgetError>>;

    /// Waits for a slot for `key` that no hold covers: takes a slot, and while a hold (a 429 or ban recorded by
    /// any client sharing the budget) is in force, waits it out and takes a new slot — a slot granted before the
    /// hold was known is not used. The one loop every client runs before sending.
    fn acquire_clear<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), BudgetError>> {
        Box::pin(async move {
            loop {
                self.acquire(key).await?;
                match self.held(key).await? {
                    Some(left) => tokio::time::sleep(left).await,
                    None => return Ok(()),
                }
            }
        })
    }
}

/// One limiting rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// `per` requests per `period`, evenly spaced (no burst).
    Spacing {
        /// Requests.
        per: u32,
        /// Period.
        period: Duration,
    },
    /// At most `max` requests in any window of length `window`.
    Window {
        /// Requests.
        max: u32,
        /// Window length.
        window: Duration,
    },
}

impl Rule {
    /// `n` per second, no burst.
    #[must_use]
    pub fn per_second(n: u32) -> Self {
        Self::Spacing { per: n.max(1), period: Duration::from_secs(1) }
    }
}

#[derive(Debug, Default)]
struct KeyState {
    last: Option<Instant>,
    grants: VecDeque<Instant>,
    paused_until: Option<Instant>,
}

/// A cloneable keyed rate limiter. See the module docs.
#[derive(Clone)]
pub struct RateLimiter {
    rules: Arc<[Rule]>,
    state: Arc<Mutex<HashMap<String, KeyState>>>,
}

impl fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter").field("rules", &self.rules).finish_non_exhaustive()
    }
}

impl RateLimiter {
    /// A limiter applying every rule in `rules` to each key.
    #[must_use]
    pub fn new(rules: impl IntoIterator<Item = Rule>) -> Self {
        Self { rules: rules.into_iter().collect(), state: Arc::default() }
    }

    /// A limiter that never waits (except for [`RateLimiter::pause`]).
    #[must_use]
    pub fn unlimited() -> Self {
        Self::new([])
    }

    /// The rules in force.
    #[must_use]
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Reserves the next slot for `key` and returns when it is due, without sleeping.
    pub fn reserve(&self, key: &str) -> Instant {
        let now = Instant::now();
        let mut map = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let st = map.entry(key.to_owned()).or_default();
        let mut at = now;
        if let Some(p) = st.paused_until {
            at = at.max(p);
        }
        if let Some(last) = st.last {
            at = at.max(last);
        }
        for rule in self.rules.iter() {
            match *rule {
                Rule::Spacing { per, period } => {
                    if let Some(last) = st.last {
                        at = at.max(last + period / per.max(1));
                    }
                }
                Rule::Window { max, window } => {
                    let max = max.max(1) as usize;
                    if st.grants.len() >= max {
                        at = at.max(st.grants[st.grants.len() - max] + window);
                    }
                }
            }
        }
        st.last = Some(at);
        st.grants.push_back(at);
        let keep = self
            .rules
            .iter()
            .filter_map(|r| match r {
                Rule::Window { max, .. } => Some(*max as usize),
                Rule::Spacing { .. } => None,
            })
            .max()
            .unwrap_or(0);
        while st.grants.len() > keep {
            st.grants.pop_front();
        }
        at
    }

    /// Waits until `key` may send one request.
    pub async fn acquire(&self, key: &str) {
        let at = self.reserve(key);
        if at > Instant::now() {
            tokio::time::sleep_until(at).await;
        }
    }

    /// The time left on `key`'s hold, if one is in force.
    #[must_use]
    pub fn paused_for(&self, key: &str) -> Option<Duration> {
        let map = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        map.get(key).and_then(|s| s.paused_until).filter(|p| *p > now).map(|p| p - now)
    }

    /// Holds every request for `key` until `until` (requests already reserved keep their slot).
    pub fn pause(&self, key: &str, until: Instant) {
        let mut map = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let st = map.entry(key.to_owned()).or_default();
        st.paused_until = Some(st.paused_until.map_or(until, |p| p.max(until)));
    }
}

/// A shared handle is a budget too (so `Arc<dyn RateBudget>` can be passed wherever a budget is taken).
impl<T: RateBudget + ?Sized> RateBudget for Arc<T> {
    fn acquire<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), BudgetError>> {
        (**self).acquire(key)
    }

    fn pause<'a>(&'a self, key: &'a str, wait: Duration) -> BoxFuture<'a, Result<(), BudgetError>> {
        (**self).pause(key, wait)
    }

    fn held<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Duration>, BudgetError>> {
        (**self).held(key)
    }
}

impl RateBudget for RateLimiter {
    fn acquire<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), BudgetError>> {
        Box::pin(async move {
            RateLimiter::acquire(self, key).await;
            Ok(())
        })
    }

    fn pause<'a>(&'a self, key: &'a str, wait: Duration) -> BoxFuture<'a, Result<(), BudgetError>> {
        RateLimiter::pause(self, key, Instant::now() + wait);
        Box::pin(std::future::ready(Ok(())))
    }

    fn held<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Duration>, BudgetError>> {
        Box::pin(std::future::ready(Ok(self.paused_for(key))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A budget whose slots ignore holds (as a shared store's reservation may grant one before another process
    /// records its 429): `held` answers a 1 s hold the first time, none after.
    #[derive(Debug, Default)]
    struct HoldOnce {
        acquired: std::sync::atomic::AtomicU32,
        asked: std::sync::atomic::AtomicU32,
    }

    impl RateBudget for HoldOnce {
        fn acquire<'a>(&'a self, _key: &'a str) -> BoxFuture<'a, Result<(), BudgetError>> {
            self.acquired.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Box::pin(async { Ok(()) })
        }
        fn pause<'a>(&'a self, _key: &'a str, _wait: Duration) -> BoxFuture<'a, Result<(), BudgetError>> {
            Box::pin(async { Ok(()) })
        }
        fn held<'a>(&'a self, _key: &'a str) -> BoxFuture<'a, Result<Option<Duration>, BudgetError>> {
            let first = self.asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0;
            Box::pin(async move { Ok(first.then_some(Duration::from_secs(1))) })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn acquire_clear_waits_out_a_hold_and_takes_a_new_slot() {
        let budget = Arc::new(HoldOnce::default());
        let started = Instant::now();
        budget.acquire_clear("k").await.unwrap();
        assert_eq!(started.elapsed(), Duration::from_secs(1), "the hold is waited out");
        assert_eq!(budget.acquired.load(std::sync::atomic::Ordering::SeqCst), 2, "the slot under the hold is not used");
        assert_eq!(budget.asked.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    async fn grant_times(limiter: &RateLimiter, key: &str, n: usize) -> Vec<Duration> {
        let start = Instant::now();
        let mut handles = Vec::new();
        for _ in 0..n {
            let l = limiter.clone();
            let k = key.to_owned();
            handles.push(tokio::spawn(async move {
                l.acquire(&k).await;
                Instant::now()
            }));
        }
        let mut out = Vec::new();
        for h in handles {
            out.push(h.await.unwrap() - start);
        }
        out.sort();
        out
    }

    fn max_in_any_window(times: &[Duration], window: Duration) -> usize {
        times.iter().map(|&t| times.iter().filter(|&&u| u >= t && u < t + window).count()).max().unwrap_or(0)
    }

    #[tokio::test(start_paused = true)]
    async fn five_per_second_without_burst() {
        let l = RateLimiter::new([Rule::per_second(5)]);
        let times = grant_times(&l, "appBase", 50).await;
        assert!(*times.last().unwrap() >= Duration::from_millis(9_800), "{:?}", times.last());
        assert!(*times.last().unwrap() < Duration::from_millis(10_000));
        assert_eq!(max_in_any_window(&times, Duration::from_secs(1)), 5);
        // and never a burst: consecutive grants 200 ms apart
        for w in times.windows(2) {
            assert!(w[1] - w[0] >= Duration::from_millis(200), "{w:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn keys_are_independent_and_clones_share() {
        let l = RateLimiter::new([Rule::per_second(2)]);
        let l2 = l.clone();
        let start = Instant::now();
        l.acquire("a").await;
        l2.acquire("a").await; // shared with the clone: waits 500 ms
        assert_eq!(Instant::now() - start, Duration::from_millis(500));
        l.acquire("b").await; // another key: no wait
        assert_eq!(Instant::now() - start, Duration::from_millis(500));
    }

    #[tokio::test(start_paused = true)]
    async fn window_rule_allows_burst_up_to_max() {
        let l = RateLimiter::new([Rule::Window { max: 7, window: Duration::from_secs(1) }]);
        let times = grant_times(&l, "acct", 21).await;
        assert_eq!(times[6], Duration::ZERO);
        assert_eq!(times[7], Duration::from_secs(1));
        assert_eq!(times[20], Duration::from_secs(2));
        assert_eq!(max_in_any_window(&times, Duration::from_secs(1)), 7);
    }

    #[tokio::test(start_paused = true)]
    async fn combined_rules() {
        // Kommo-like: 7/s evenly spaced, and at most 7 in any second
        let l = RateLimiter::new([Rule::per_second(7), Rule::Window { max: 7, window: Duration::from_secs(1) }]);
        let times = grant_times(&l, "acct", 15).await;
        assert_eq!(max_in_any_window(&times, Duration::from_secs(1)), 7);
    }

    #[tokio::test(start_paused = true)]
    async fn pause_holds_key() {
        let l = RateLimiter::unlimited();
        let start = Instant::now();
        l.pause("base", start + Duration::from_secs(30));
        l.acquire("other").await;
        assert_eq!(Instant::now() - start, Duration::ZERO);
        l.acquire("base").await;
        assert_eq!(Instant::now() - start, Duration::from_secs(30));
    }
}
