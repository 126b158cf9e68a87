//! Read-only queries for the operator console (`examples`' `serve --console-listen`): per-source queue figures,
//! dead letters with their payload and headers, and the vendor rate budgets with their current holds.
//!
//! Replay and purge are not here: the console calls [`Store::replay`] and [`Store::purge_done`], the functions
//! the CLI's `replay` and the retention task use, so an operator action means the same thing wherever it is taken.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{Backend, Headers, InboxRow, State, Store};
use crate::clock::{duration_ms, ms_to_datetime};
use crate::error::Result;

/// Queue figures of one source (every figure counts rows of the inbox).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceFigures {
    /// Waiting to be claimed (due or not).
    pub queued: i64,
    /// Claimed under a lease.
    pub running: i64,
    /// Finished (applied or skipped on purpose).
    pub done: i64,
    /// Dead letters.
    pub dead: i64,
    /// Done rows skipped on purpose.
    pub skipped: i64,
    /// Queued rows that already failed at least once (waiting for their retry).
    pub retrying: i64,
    /// Age of the oldest queued row (due or not), if any.
    pub oldest_queued_age: Option<Duration>,
    /// Rows finished (done or dead) within the window asked for: the source's throughput.
    pub finished_in_window: i64,
}

/// A dead letter with what the operator needs to judge it: the row, the raw body and the kept headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The inbox row (`state` is [`State::Dead`]).
    pub row: InboxRow,
    /// The raw body as received (redact before showing it: it may carry personal data or secrets).
    pub payload: bytes::Bytes,
    /// The headers kept with the event (signature headers among them: redact before showing them).
    pub headers: Headers,
}

/// One key of a vendor rate budget shared through the store ([`crate::StoreBudget`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetState {
    /// `namespace:key`, e.g. `kommo:acme.kommo.com` or `airtable:appXXXX`.
    pub key: String,
    /// The earliest time the next request may leave (in the past when the budget is idle).
    pub next_at: DateTime<Utc>,
    /// The vendor's hold (after a 429 or a ban) ends at this time, if it is in the future.
    pub paused_until: Option<DateTime<Utc>>,
}

impl Store {
    /// Queue figures per source; `window` is the throughput window ([`SourceFigures::finished_in_window`]).
    ///
    /// # Errors
    /// Store errors.
    pub async fn source_figures(&self, window: Duration) -> Result<BTreeMap<String, SourceFigures>> {
        let now = self.now();
        let since = now.saturating_sub(duration_ms(window));
        type Group = (String, String, i64, Option<i64>, Option<i64>, Option<i64>, Option<i64>);
        // the CASE sums are SUM(integer): BIGINT on PostgreSQL, INTEGER on SQLite; NULL only for an empty group
        let rows: Vec<Group> = on_pool!(self, p => sqlx::query_as(
            "SELECT source, state, \
                    COUNT(*) AS n, \
                    SUM(CASE WHEN skip_reason IS NOT NULL THEN 1 ELSE 0 END) AS skipped, \
                    SUM(CASE WHEN attempts > 0 THEN 1 ELSE 0 END) AS retrying, \
                    MIN(received_at) AS oldest, \
                    SUM(CASE WHEN finished_at >= $1 THEN 1 ELSE 0 END) AS recent \
             FROM inbox GROUP BY source, state",
        )
        .bind(since)
        .fetch_all(p)
        .await?);
        let mut out: BTreeMap<String, SourceFigures> = BTreeMap::new();
        for (source, state, n, skipped, retrying, oldest, recent) in rows {
            let state = State::parse(&state)?;
            let (skipped, retrying, recent) = (skipped.unwrap_or(0), retrying.unwrap_or(0), recent.unwrap_or(0));
            let f = out.entry(source).or_default();
            f.finished_in_window += recent;
            match state {
                State::Queued => {
                    f.queued += n;
                    f.retrying += retrying;
                    f.oldest_queued_age =
                        oldest.map(|t| Duration::from_millis(u64::try_from(now.saturating_sub(t)).unwrap_or(0)));
                }
                State::Running => f.running += n,
                State::Done => {
                    f.done += n;
                    f.skipped += skipped;
                }
                State::Dead => f.dead += n,
            }
        }
        Ok(out)
    }

    /// Dead letters, oldest first, at most `limit`, with payload and headers.
    ///
    /// # Errors
    /// Store errors.
    pub async fn dead_letters(&self, limit: u32) -> Result<Vec<DeadLetter>> {
        on_pool!(self, p => {
            let rows = sqlx::query(
                "SELECT id, source, dedup_key, state, attempts, attempt_no, last_error, received_at, finished_at, \
                 skip_reason, payload, headers FROM inbox WHERE state = 'dead' ORDER BY id LIMIT $1",
            )
            .bind(i64::from(limit))
            .fetch_all(p)
            .await?;
            rows.iter()
                .map(|r| {
                    let payload: Vec<u8> = r.try_get("payload")?;
                    let headers: String = r.try_get("headers")?;
                    Ok(DeadLetter {
                        row: inbox_row_from_row!(r),
                        payload: bytes::Bytes::from(payload),
                        headers: serde_json::from_str(&headers)?,
                    })
                })
                .collect()
        })
    }

    /// Every key of the rate budgets shared through this store, by key.
    ///
    /// # Errors
    /// Store errors.
    pub async fn budget_states(&self) -> Result<Vec<BudgetState>> {
        let now = self.now();
        let rows: Vec<(String, i64, i64)> = on_pool!(self, p => sqlx::query_as(
            "SELECT key, next_at, paused_until FROM rate_budgets ORDER BY key",
        )
        .fetch_all(p)
        .await?);
        Ok(rows
            .into_iter()
            .map(|(key, next_at, paused_until)| BudgetState {
                key,
                next_at: ms_to_datetime(next_at),
                paused_until: (paused_until > now).then(|| ms_to_datetime(paused_until)),
            })
            .collect())
    }
}
