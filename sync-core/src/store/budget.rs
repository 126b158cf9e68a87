//! Vendor rate budgets shared through the store: api-core's [`RateBudget`] on a row per key.
//!
//! Every `serve` process on one PostgreSQL database (and every flow of one process on SQLite) draws its requests to
//! a vendor account from one budget, so the operator configures the vendor's limit once (Kommo's 7 requests/s per
//! account, Airtable's 5 per base) instead of dividing it by the number of processes, and one process's 429 holds
//! them all off.
//!
//! **Algorithm: GCRA on a row.** A key's row holds `next_at`, the earliest time the next request may go out, and
//! `paused_until`. [`RateBudget::acquire`] is one atomic upsert: `slot = max(next_at, now, paused_until)`,
//! `next_at = slot + spacing`, returning the slot; the caller then sleeps until it locally. So grants are evenly
//! spaced across processes (no burst: Kommo and Airtable count arrivals in a sliding second with no slack), in the
//! order the database serialises them. Times are the store's clock (on PostgreSQL anchored to the database server's
//! clock), so processes on machines with skewed clocks share one time base.
//!
//! Why a round trip per request and not leased token grants: the vendors' limits are 5–10 requests/s per key, so
//! the hot path is a few single-row statements per 150–200 ms slot. Measured on this repository's 2-core test
//! machine (`cargo bench -p crm-sync-kit-engine --bench budget`, see the README): the acquire statement costs well under a
//! millisecond on PostgreSQL, i.e. < 1 % of a slot. Leases would add a second failure mode (a process that dies holding
//! unspent grants leaves the budget idle until the lease expires) to save a cost that does not matter at these rates.
//!
//! **Jitter margin.** A slot is when the request *leaves*; the vendor counts *arrivals*. `spacing` should be
//! `(1 s + margin) / n` so that `n + 1` consecutive requests span more than a second even when their network and
//! scheduling delays differ by up to `margin` ([`StoreBudget::per_second`]).
//!
//! **Penalties.** [`RateBudget::pause`] moves `paused_until` forward (never back); every later `acquire` in any
//! process reserves after it, and [`RateBudget::held`] lets a client check right before sending, so requests that
//! reserved a slot before the 429 do not go into the penalty either.
//!
//! **Off the hot path.** Only the reservation is a round trip on the way to a slot. `held` answers from this
//! process's cache of each key's `paused_until`, which every reservation refreshes (the upsert returns it), every
//! local `pause` sets, and `acquire` re-reads from the database during the last 60 ms of its wait, concurrently with
//! it. Measured with the `scaleout` bench: with the hold read from the database *between* the slot and the send,
//! that query's latency (a pool shared with the workers' journal writes, on a loaded machine) became jitter in the
//! spacing, and 8 requests reached the fake within one second (one 429, a 60 s hold for every process). A pause set by
//! another process in the last 60 ms before a slot is seen one request late.

use std::{
    collections::HashMap,
    fmt,
    sync::{Arc, Mutex},
    time::Duration,
};

use api_core::ratelimit::{BudgetError, RateBudget};
use futures::future::BoxFuture;
use sqlx::Row;

use super::{Backend, Store};
use crate::clock::duration_ms;

/// A store-backed [`RateBudget`] (see the module docs). Cheap to clone; clones and every other process's budget with
/// the same namespace and key share one budget.
#[derive(Clone)]
pub struct StoreBudget {
    store: Store,
    namespace: String,
    spacing_ms: i64,
    /// `paused_until` per key as last read from the database (see "Off the hot path" in the module docs).
    holds: Arc<Mutex<HashMap<String, i64>>>,
}

impl fmt::Debug for StoreBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreBudget")
            .field("backend", &self.store.backend_name())
            .field("namespace", &self.namespace)
            .field("spacing_ms", &self.spacing_ms)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// The budget of `namespace` (e.g. `"kommo"`, `"airtable"`): requests to one key (an account, a base) are
    /// spaced `spacing` apart across every process on this store. See [`StoreBudget::per_second`].
    #[must_use]
    pub fn rate_budget(&self, namespace: impl Into<String>, spacing: Duration) -> StoreBudget {
        StoreBudget::new(self.clone(), namespace, spacing)
    }
}

impl StoreBudget {
    /// A budget spacing requests to one key `spacing` apart (rounded up to a whole millisecond: the store's clock
    /// counts milliseconds, and rounding down would exceed the limit).
    #[must_use]
    pub fn new(store: Store, namespace: impl Into<String>, spacing: Duration) -> Self {
        let ms = duration_ms(spacing) + i64::from(!spacing.subsec_nanos().is_multiple_of(1_000_000));
        Self { store, namespace: namespace.into(), spacing_ms: ms, holds: Arc::default() }
    }

    /// The spacing for `n` requests per second with `margin` of jitter headroom: `(1 s + margin) / n`.
    #[must_use]
    pub fn per_second(n: u32, margin: Duration) -> Duration {
        (Duration::from_secs(1) + margin) / n.max(1)
    }

    /// The time between two grants for one key.
    #[must_use]
    pub fn spacing(&self) -> Duration {
        Duration::from_millis(u64::try_from(self.spacing_ms).unwrap_or(0))
    }

    fn key(&self, key: &str) -> String {
        format!("{}:{key}", self.namespace)
    }

    /// Reserves the next slot for `key` and returns how long until it ([`RateBudget::acquire`] is this and a sleep).
    ///
    /// # Errors
    /// Store errors.
    pub async fn reserve(&self, key: &str) -> crate::error::Result<Duration> {
        let now = self.store.now();
        let key = self.key(key);
        let sql = format!(
            "INSERT INTO rate_budgets (key, next_at, paused_until) VALUES ($1, $2 + $3, 0) \
             ON CONFLICT (key) DO UPDATE SET \
             next_at = {max}(rate_budgets.next_at, $2, rate_budgets.paused_until) + $3 \
             RETURNING next_at - $3 AS slot, paused_until",
            max = self.greatest()
        );
        let (slot, paused_until): (i64, i64) = on_pool!(self.store, p => sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(&key)
            .bind(now)
            .bind(self.spacing_ms)
            .fetch_one(p)
            .await
            .and_then(|row| Ok((row.try_get("slot")?, row.try_get("paused_until")?)))?);
        self.remember(key, paused_until);
        Ok(Duration::from_millis(u64::try_from(slot.saturating_sub(now)).unwrap_or(0)))
    }

    /// The SQL function taking the greatest of its arguments: `MAX` in SQLite (its scalar form), `GREATEST` in
    /// PostgreSQL. The statements are otherwise the same on both stores (and built only from constants, hence
    /// `AssertSqlSafe`; every value is bound).
    fn greatest(&self) -> &'static str {
        match self.store.backend() {
            Backend::Sqlite(_) => "MAX",
            #[cfg(feature = "postgres")]
            Backend::Postgres(_) => "GREATEST",
        }
    }

    async fn pause_for(&self, key: &str, wait: Duration) -> crate::error::Result<()> {
        let until = self.store.now().saturating_add(duration_ms(wait));
        let key = self.key(key);
        self.remember(key.clone(), until);
        let sql = format!(
            "INSERT INTO rate_budgets (key, next_at, paused_until) VALUES ($1, 0, $2) \
             ON CONFLICT (key) DO UPDATE SET paused_until = {max}(rate_budgets.paused_until, $2)",
            max = self.greatest()
        );
        on_pool!(self.store, p => {
            sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).bind(&key).bind(until).execute(p).await?;
        });
        Ok(())
    }

    /// Reads `key`'s hold from the database into the cache.
    async fn refresh_hold(&self, key: &str) -> crate::error::Result<()> {
        let key = self.key(key);
        let until: Option<i64> = on_pool!(self.store, p => sqlx::query_scalar(
            "SELECT paused_until FROM rate_budgets WHERE key = $1"
        )
        .bind(&key)
        .fetch_optional(p)
        .await?);
        self.remember(key, until.unwrap_or(0));
        Ok(())
    }

    fn remember(&self, full_key: String, paused_until: i64) {
        let mut holds = self.holds.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = holds.entry(full_key).or_insert(paused_until);
        *entry = (*entry).max(paused_until);
    }

    /// The time left on `key`'s hold as last read from the database or set by this process.
    fn cached_hold(&self, key: &str) -> Option<Duration> {
        let until = *self.holds.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&self.key(key))?;
        let left = until.saturating_sub(self.store.now());
        (left > 0).then(|| Duration::from_millis(u64::try_from(left).unwrap_or(0)))
    }
}

fn budget_error(e: crate::error::Error) -> BudgetError {
    BudgetError::new(e)
}

impl RateBudget for StoreBudget {
    fn acquire<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), BudgetError>> {
        Box::pin(async move {
            let wait = self.reserve(key).await.map_err(budget_error)?;
            if wait > HOLD_CHECK_LEAD {
                // re-read the hold while the last stretch of the wait runs, not after it: a check between the slot
                // and the send would add its own latency to the spacing the vendor sees
                tokio::time::sleep(wait - HOLD_CHECK_LEAD).await;
                let (refreshed, ()) = tokio::join!(self.refresh_hold(key), tokio::time::sleep(HOLD_CHECK_LEAD));
                refreshed.map_err(budget_error)?;
            } else if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            Ok(())
        })
    }

    fn pause<'a>(&'a self, key: &'a str, wait: Duration) -> BoxFuture<'a, Result<(), BudgetError>> {
        Box::pin(async move { self.pause_for(key, wait).await.map_err(budget_error) })
    }

    fn held<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Duration>, BudgetError>> {
        Box::pin(std::future::ready(Ok(self.cached_hold(key))))
    }
}

/// How long before its slot a waiting request re-reads the key's hold (see [`RateBudget::acquire`] above).
const HOLD_CHECK_LEAD: Duration = Duration::from_millis(60);
