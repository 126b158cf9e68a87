//! The durable store: inbox, id map, cursors, step journal, counters, watermarks and written-value hashes.
//!
//! [`Store`] is one type with two backends, SQLite (always) and PostgreSQL (feature `postgres`). The SQL is
//! written once and run on whichever pool the store holds: both engines accept `$n` placeholders,
//! `INSERT … ON CONFLICT`, and `UPDATE … RETURNING`, and all times are integer milliseconds passed in from the
//! [`Clock`](crate::Clock), so only the claim statement (`FOR UPDATE SKIP LOCKED` on PostgreSQL) and the DDL differ. A single
//! concrete type (instead of a `dyn Store` trait with two copies of every query) keeps the two backends from
//! drifting apart; the shared behaviour test suite in `tests/` runs every case on both.
//!
//! Fencing: every write that finishes an attempt (`complete`, `retry`, `fail`, `release`, `heartbeat`, fenced
//! journal writes) carries a [`Lease`] and only applies while the row is still `running` under the same
//! `(attempt_no, lease_owner)`. A reclaim bumps `attempt_no`, so a zombie worker's late write is refused with
//! [`Fence::Stale`] instead of overwriting the newer attempt.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use tokio::sync::Notify;

use crate::clock::{SharedClock, SystemClock, duration_ms, ms_to_datetime};
use crate::error::{Error, Result};

mod markers;
pub use markers::Markers;

/// Request headers kept with an event (lower-case names).
pub type Headers = BTreeMap<String, String>;

/// An event to put into the inbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// Source name (one per webhook endpoint or poll stream), e.g. `"kommo"`.
    pub source: String,
    /// Deduplication key, unique per source (e.g. the vendor's event id).
    pub dedup_key: String,
    /// Optional ordering key: events with the same ordering key run one at a time, in arrival order, across the
    /// sources a worker consumes (a flow's sources can share a key, so both directions of one record are ordered;
    /// prefix keys with what they name, e.g. `lead:<id>`).
    pub ordering_key: Option<String>,
    /// The raw body.
    pub payload: Bytes,
    /// Headers of interest.
    pub headers: Headers,
}

impl NewEvent {
    /// An event without ordering key or headers.
    pub fn new(source: impl Into<String>, dedup_key: impl Into<String>, payload: impl Into<Bytes>) -> Self {
        Self {
            source: source.into(),
            dedup_key: dedup_key.into(),
            ordering_key: None,
            payload: payload.into(),
            headers: Headers::new(),
        }
    }

    /// Sets the ordering key.
    #[must_use]
    pub fn ordering_key(mut self, key: impl Into<String>) -> Self {
        self.ordering_key = Some(key.into());
        self
    }
}

/// Result of an ingest: the event was stored (durably, before this value is returned) or was a duplicate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingested {
    /// Stored as a new inbox row.
    Accepted {
        /// The inbox id.
        id: i64,
    },
    /// An event with the same `(source, dedup_key)` already exists; nothing was written.
    Duplicate,
}

/// Proof of a claim: the fencing token for every write that finishes the attempt.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Lease {
    /// Inbox id.
    pub id: i64,
    /// Attempt number (fencing token); increases on every claim, never reused.
    pub attempt_no: i64,
    /// The claiming worker.
    pub owner: String,
}

/// A claimed inbox row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Inbox id.
    pub id: i64,
    /// Source name.
    pub source: String,
    /// Deduplication key.
    pub dedup_key: String,
    /// Ordering key, if any.
    pub ordering_key: Option<String>,
    /// Raw payload.
    pub payload: Bytes,
    /// Stored headers.
    pub headers: Headers,
    /// When the event was accepted.
    pub received_at: DateTime<Utc>,
    /// Attempts counted towards the retry limit, including this one.
    pub attempts: i64,
    /// The lease of this attempt.
    pub lease: Lease,
}

/// Outcome of a fenced write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Fence {
    /// The write applied.
    Applied,
    /// The lease is no longer ours (reclaimed, finished by someone else, or replayed): nothing was written.
    Stale,
}

/// Inbox row state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    /// Waiting to be claimed (possibly not before `run_after`).
    Queued,
    /// Claimed under a lease.
    Running,
    /// Processed to completion.
    Done,
    /// Dead letter: failed permanently or ran out of attempts. Replayable.
    Dead,
}

impl State {
    /// The stored name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Done => "done",
            Self::Dead => "dead",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "done" => Self::Done,
            "dead" => Self::Dead,
            other => return Err(Error::Config(format!("unknown inbox state `{other}`"))),
        })
    }
}

/// A full inbox row, for operators and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxRow {
    /// Inbox id.
    pub id: i64,
    /// Source.
    pub source: String,
    /// Deduplication key.
    pub dedup_key: String,
    /// State.
    pub state: State,
    /// Attempts counted towards the limit.
    pub attempts: i64,
    /// Latest attempt number (fencing token).
    pub attempt_no: i64,
    /// Last error text, for retries and dead letters.
    pub last_error: Option<String>,
    /// When accepted.
    pub received_at: DateTime<Utc>,
    /// When finished (done or dead).
    pub finished_at: Option<DateTime<Utc>>,
    /// Why the event was deliberately not applied ([`crate::Outcome::Skipped`]); `None` for applied events.
    pub skip_reason: Option<String>,
}

/// Queue status for operators.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// Row counts per `(source, state)`.
    pub depth: BTreeMap<(String, State), i64>,
    /// Age of the oldest event that is due but not yet claimed (queue lag), if any.
    pub oldest_due_age: Option<Duration>,
    /// Number of dead letters.
    pub dead: i64,
    /// Done events that were skipped on purpose ([`crate::Outcome::Skipped`]), counted per `(source, reason)`.
    /// They are also part of the `Done` depth.
    pub skipped: BTreeMap<(String, String), i64>,
}

/// Options for opening a store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Pool size. SQLite defaults to 1 (one writer at a time is what SQLite allows anyway; queueing in the pool is
    /// fairer and faster than `SQLITE_BUSY` retries); PostgreSQL defaults to 10.
    pub max_connections: Option<u32>,
    /// PostgreSQL schema to use (`search_path`); created if missing. `None` = server default.
    pub pg_schema: Option<String>,
    /// SQLite busy timeout (other processes holding the write lock).
    pub busy_timeout: Duration,
    /// SQLite `synchronous=FULL` (survives power loss) instead of `NORMAL` (survives process crashes: with WAL a
    /// committed transaction is in the OS page cache before `ingest` returns).
    pub sqlite_synchronous_full: bool,
    /// The clock for every stored timestamp.
    pub clock: SharedClock,
    /// PostgreSQL: `LISTEN` for other processes' ingests on one dedicated connection of the pool, so idle
    /// workers claim new events at once instead of on their next poll (default on; off saves the connection in
    /// processes that run no workers, or in tests that open many stores).
    pub pg_wakeups: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: None,
            pg_schema: None,
            busy_timeout: Duration::from_secs(10),
            sqlite_synchronous_full: false,
            clock: Arc::new(SystemClock),
            pg_wakeups: true,
        }
    }
}

impl StoreOptions {
    /// Replaces the clock.
    #[must_use]
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Sets the PostgreSQL schema.
    #[must_use]
    pub fn pg_schema(mut self, schema: impl Into<String>) -> Self {
        self.pg_schema = Some(schema.into());
        self
    }

    /// Sets the pool size.
    #[must_use]
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = Some(n);
        self
    }

    /// Turns the PostgreSQL wake-up listener on or off (see [`StoreOptions::pg_wakeups`]).
    #[must_use]
    pub fn pg_wakeups(mut self, on: bool) -> Self {
        self.pg_wakeups = on;
        self
    }
}

#[derive(Debug)]
pub(crate) enum Backend {
    Sqlite(sqlx::SqlitePool),
    #[cfg(feature = "postgres")]
    Postgres(sqlx::PgPool),
}

#[derive(Debug)]
struct Inner {
    backend: Backend,
    clock: SharedClock,
    notify: Arc<Notify>,
    /// SQLite only: the group-commit queue (see [`ingest_batcher`]).
    batcher: Option<tokio::sync::mpsc::Sender<IngestRequest>>,
    /// PostgreSQL only: the task turning `NOTIFY` from other processes into local wake-ups (see [`pg_wakeups`]).
    listener: Option<tokio::task::JoinHandle<()>>,
    /// PostgreSQL with a wall clock only: the task re-measuring the offset to the database server's clock.
    clock_task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(task) = &self.listener {
            task.abort();
        }
        if let Some(task) = &self.clock_task {
            task.abort();
        }
    }
}

/// The channel an ingest on PostgreSQL notifies, so workers in other processes claim at once instead of on their
/// next poll. Wake-ups are hints: a lost one only delays a claim until the poll.
#[cfg(feature = "postgres")]
const PG_WAKE_CHANNEL: &str = "sync_core_inbox";

/// The database server's clock minus this machine's (milliseconds), measured over one round trip (its midpoint).
#[cfg(feature = "postgres")]
async fn pg_clock_offset(pool: &sqlx::PgPool, clock: &crate::clock::AnchoredClock) -> Result<i64> {
    let t0 = clock.base_ms();
    let db: i64 =
        sqlx::query_scalar("SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint").fetch_one(pool).await?;
    let t1 = clock.base_ms();
    Ok(db - t0 / 2 - t1 / 2)
}

/// Listens on [`PG_WAKE_CHANNEL`] (one connection of the pool) and wakes this process's idle workers for each
/// notification. `PgListener` reconnects by itself; while it is down, workers fall back to polling.
#[cfg(feature = "postgres")]
async fn pg_wakeups(pool: sqlx::PgPool, notify: Arc<Notify>) {
    loop {
        let mut listener = match sqlx::postgres::PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::debug!(error = %e, "wake-up listener cannot connect; workers poll meanwhile");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(e) = listener.listen(PG_WAKE_CHANNEL).await {
            tracing::debug!(error = %e, "LISTEN failed; workers poll meanwhile");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        loop {
            match listener.recv().await {
                Ok(_) => notify.notify_waiters(),
                Err(e) => {
                    tracing::debug!(error = %e, "wake-up listener lost; reconnecting");
                    notify.notify_waiters(); // anything may have arrived meanwhile
                    break;
                }
            }
        }
    }
}

#[derive(Debug)]
struct IngestRequest {
    event: NewEvent,
    reply: tokio::sync::oneshot::Sender<Result<Ingested>>,
}

/// Most events per group commit (6 bound parameters each, well under SQLite's 32,766).
const GROUP_COMMIT_MAX: usize = 256;

/// Group commit for SQLite: SQLite has one writer at a time, so concurrent ingests would otherwise queue for the
/// connection and pay one commit each. This task takes every ingest that is waiting, writes them with one
/// multi-row `INSERT … ON CONFLICT DO NOTHING RETURNING` in one transaction, commits, and only then answers each
/// caller (so "accepted" still means "committed"). Under no load a batch is a single event and no latency is
/// added; under load the commit cost is shared.
async fn ingest_batcher(
    pool: sqlx::SqlitePool,
    clock: SharedClock,
    notify: Arc<Notify>,
    mut rx: tokio::sync::mpsc::Receiver<IngestRequest>,
) {
    let mut batch = Vec::with_capacity(GROUP_COMMIT_MAX);
    while rx.recv_many(&mut batch, GROUP_COMMIT_MAX).await > 0 {
        let result = insert_group(&pool, clock.now_ms(), &batch).await;
        match result {
            Ok(outcomes) => {
                if outcomes.iter().any(|o| matches!(o, Ingested::Accepted { .. })) {
                    notify.notify_waiters();
                }
                for (req, outcome) in batch.drain(..).zip(outcomes) {
                    let _ = req.reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                let msg = e.to_string();
                for req in batch.drain(..) {
                    let _ = req.reply.send(Err(Error::Ingest(msg.clone())));
                }
            }
        }
    }
}

async fn insert_group(pool: &sqlx::SqlitePool, now: i64, batch: &[IngestRequest]) -> Result<Vec<Ingested>> {
    use std::fmt::Write as _;
    let mut sql = String::from(
        "INSERT INTO inbox (source, dedup_key, ordering_key, payload, headers, received_at, run_after) VALUES ",
    );
    for i in 0..batch.len() {
        let b = i * 6;
        let _ = write!(
            sql,
            "{}(${}, ${}, ${}, ${}, ${}, ${}, ${})",
            if i == 0 { "" } else { ", " },
            b + 1,
            b + 2,
            b + 3,
            b + 4,
            b + 5,
            b + 6,
            b + 6
        );
    }
    sql.push_str(" ON CONFLICT (source, dedup_key) DO NOTHING RETURNING id, source, dedup_key");
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for req in batch {
        let e = &req.event;
        q = q
            .bind(e.source.clone())
            .bind(e.dedup_key.clone())
            .bind(e.ordering_key.clone())
            .bind(e.payload.to_vec())
            .bind(serde_json::to_string(&e.headers)?)
            .bind(now);
    }
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let rows = q.fetch_all(&mut *tx).await?;
    tx.commit().await?;
    let mut inserted: std::collections::HashMap<(String, String), i64> = std::collections::HashMap::new();
    for row in &rows {
        inserted.insert((row.try_get("source")?, row.try_get("dedup_key")?), row.try_get("id")?);
    }
    // The first request for a key gets the new row; any other in the batch (or an existing row) is a duplicate.
    Ok(batch
        .iter()
        .map(|r| match inserted.remove(&(r.event.source.clone(), r.event.dedup_key.clone())) {
            Some(id) => Ingested::Accepted { id },
            None => Ingested::Duplicate,
        })
        .collect())
}

/// The durable store (cheap to clone; clones share the pool).
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

/// Runs `$body` with `$p` bound to the backend's pool (the body is compiled once per backend).
macro_rules! on_pool {
    ($self:expr, $p:ident => $body:expr) => {
        match &$self.inner.backend {
            Backend::Sqlite($p) => $body,
            #[cfg(feature = "postgres")]
            Backend::Postgres($p) => $body,
        }
    };
}

/// Runs `$body` with `$tx` bound to a write transaction (SQLite: `BEGIN IMMEDIATE`, so the write lock is taken up
/// front and a concurrent writer in another process waits on `busy_timeout` instead of failing mid-transaction).
macro_rules! in_tx {
    ($self:expr, $tx:ident => $body:expr) => {
        match &$self.inner.backend {
            Backend::Sqlite(p) => {
                let mut $tx = p.begin_with("BEGIN IMMEDIATE").await?;
                let out = $body;
                $tx.commit().await?;
                out
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres(p) => {
                let mut $tx = p.begin().await?;
                let out = $body;
                $tx.commit().await?;
                out
            }
        }
    };
}

pub mod budget;
mod health;
mod retention;
pub use budget::StoreBudget;
pub use console::{BudgetState, DeadLetter, SourceFigures};
pub use health::{ComponentHealth, HealthReport, HealthState};
pub use retention::Compacted;

macro_rules! event_from_row {
    ($row:expr, $owner:expr) => {{
        let row = $row;
        let headers: String = row.try_get("headers")?;
        let payload: Vec<u8> = row.try_get("payload")?;
        let id: i64 = row.try_get("id")?;
        let attempt_no: i64 = row.try_get("attempt_no")?;
        Event {
            id,
            source: row.try_get("source")?,
            dedup_key: row.try_get("dedup_key")?,
            ordering_key: row.try_get("ordering_key")?,
            payload: Bytes::from(payload),
            headers: serde_json::from_str(&headers)?,
            received_at: ms_to_datetime(row.try_get("received_at")?),
            attempts: row.try_get("attempts")?,
            lease: Lease { id, attempt_no, owner: $owner.to_owned() },
        }
    }};
}

macro_rules! inbox_row_from_row {
    ($row:expr) => {{
        let row = $row;
        let state: String = row.try_get("state")?;
        let finished: Option<i64> = row.try_get("finished_at")?;
        InboxRow {
            id: row.try_get("id")?,
            source: row.try_get("source")?,
            dedup_key: row.try_get("dedup_key")?,
            state: State::parse(&state)?,
            attempts: row.try_get("attempts")?,
            attempt_no: row.try_get("attempt_no")?,
            last_error: row.try_get("last_error")?,
            received_at: ms_to_datetime(row.try_get("received_at")?),
            finished_at: finished.map(ms_to_datetime),
            skip_reason: row.try_get("skip_reason")?,
        }
    }};
}

// after the row macros it uses
mod console;

const INSERT_EVENT: &str = "INSERT INTO inbox (source, dedup_key, ordering_key, payload, headers, received_at, run_after) \
     VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (source, dedup_key) DO NOTHING RETURNING id";

const UPSERT_CURSOR: &str = "INSERT INTO cursors (source, stream, cursor, updated_at) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (source, stream) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at";

/// Rows that may be claimed now: queued and due, or running with an expired lease; and, for rows with an ordering
/// key, only the oldest unfinished row of that key. The redundant `state IN (…)` term is what lets the planners use
/// the partial index `inbox_open` (rows not yet finished, in id order) and stop after `LIMIT` rows, instead of
/// collecting and sorting every queued row on each claim (which made a claim O(backlog)).
/// The claim's eligibility test. `in_claimed` is the backend's "`p.source` is one of the claimed sources" test: an
/// ordering key orders the events of every source this claim consumes (a flow's two directions can share a key),
/// while an event of a source no worker of this claim consumes (another program's flow on the same store) never
/// holds the claim's events back.
fn claim_eligible(in_claimed: &str) -> String {
    format!(
        "i.state IN ('queued', 'running') \
         AND ((i.state = 'queued' AND i.run_after <= $3) OR (i.state = 'running' AND i.lease_until <= $3)) \
         AND (i.ordering_key IS NULL OR NOT EXISTS (SELECT 1 FROM inbox p WHERE p.ordering_key = i.ordering_key \
              AND {in_claimed} AND p.id < i.id AND p.state IN ('queued', 'running')))"
    )
}

const CLAIM_SET: &str = "UPDATE inbox SET state = 'running', lease_owner = $1, lease_until = $2, \
     attempt_no = attempt_no + 1, attempts = attempts + 1";

const CLAIM_RETURNING: &str =
    "RETURNING id, source, dedup_key, ordering_key, payload, headers, received_at, attempts, attempt_no";

const FENCE: &str = "id = $1 AND attempt_no = $2 AND lease_owner = $3 AND state = 'running'";

fn claim_sql_sqlite() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        let eligible = claim_eligible("p.source IN (SELECT value FROM json_each($4))");
        format!(
            "{CLAIM_SET} WHERE id IN (SELECT i.id FROM inbox i INDEXED BY inbox_open \
             WHERE i.source IN (SELECT value FROM json_each($4)) \
             AND {eligible} ORDER BY i.id LIMIT $5) {CLAIM_RETURNING}"
        )
    })
}

#[cfg(feature = "postgres")]
fn claim_sql_pg() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        let eligible = claim_eligible("p.source = ANY($4)");
        format!(
            "{CLAIM_SET} WHERE id IN (SELECT i.id FROM inbox i WHERE i.source = ANY($4) \
             AND {eligible} ORDER BY i.id LIMIT $5 FOR UPDATE SKIP LOCKED) {CLAIM_RETURNING}"
        )
    })
}

fn fenced(sql_prefix: &str) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(format!("{sql_prefix} WHERE {FENCE}"))
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error().is_some_and(sqlx::error::DatabaseError::is_unique_violation)
}

/// Hex SHA-256 of a JSON value's canonical serialisation (used for echo suppression).
#[must_use]
pub fn value_hash(value: &serde_json::Value) -> String {
    use sha2::Digest;
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    hex::encode(sha2::Sha256::digest(&bytes))
}

impl Store {
    /// Opens a store from a URL: `sqlite:<path>` / `sqlite://<path>` / `sqlite::memory:`, or
    /// `postgres://…` (feature `postgres`). Migrations are applied before this returns.
    pub async fn connect(url: &str, options: StoreOptions) -> Result<Self> {
        if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)?;
            Self::open_sqlite_with(opts, url.contains(":memory:"), options).await
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            #[cfg(feature = "postgres")]
            {
                Self::open_postgres(url, options).await
            }
            #[cfg(not(feature = "postgres"))]
            {
                Err(Error::Config("PostgreSQL URL given but sync-core was built without the `postgres` feature".into()))
            }
        } else {
            Err(Error::Config(format!("unsupported store URL `{url}` (expected sqlite:… or postgres://…)")))
        }
    }

    /// Opens (creating if missing) an SQLite database file in WAL mode.
    pub async fn open_sqlite(path: impl AsRef<std::path::Path>, options: StoreOptions) -> Result<Self> {
        let opts = SqliteConnectOptions::new().filename(path).create_if_missing(true);
        Self::open_sqlite_with(opts, false, options).await
    }

    /// A fresh in-memory SQLite store (one connection that lives as long as the store), for tests.
    pub async fn memory(clock: SharedClock) -> Result<Self> {
        let opts = SqliteConnectOptions::from_str("sqlite::memory:")?;
        Self::open_sqlite_with(opts, true, StoreOptions::default().clock(clock)).await
    }

    async fn open_sqlite_with(opts: SqliteConnectOptions, memory: bool, options: StoreOptions) -> Result<Self> {
        let mut opts = opts
            .busy_timeout(options.busy_timeout)
            .synchronous(if options.sqlite_synchronous_full {
                SqliteSynchronous::Full
            } else {
                SqliteSynchronous::Normal
            })
            .foreign_keys(true);
        if !memory {
            opts = opts.journal_mode(SqliteJournalMode::Wal).create_if_missing(true);
        }
        let mut pool = SqlitePoolOptions::new().max_connections(options.max_connections.unwrap_or(1).max(1));
        if memory {
            // An in-memory database lives and dies with its connection: keep exactly one, forever.
            pool = pool.max_connections(1).min_connections(1).idle_timeout(None).max_lifetime(None);
        }
        let pool = pool.connect_with(opts).await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        let notify = Arc::new(Notify::new());
        let (tx, rx) = tokio::sync::mpsc::channel(4 * GROUP_COMMIT_MAX);
        tokio::spawn(ingest_batcher(pool.clone(), options.clock.clone(), notify.clone(), rx));
        Ok(Self {
            inner: Arc::new(Inner {
                backend: Backend::Sqlite(pool),
                clock: options.clock,
                notify,
                batcher: Some(tx),
                listener: None,
                clock_task: None,
            }),
        })
    }

    /// Connects to PostgreSQL, creating `options.pg_schema` if set, and applies the migrations.
    #[cfg(feature = "postgres")]
    pub async fn open_postgres(url: &str, options: StoreOptions) -> Result<Self> {
        use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
        let mut opts = PgConnectOptions::from_str(url)?;
        if let Some(schema) = &options.pg_schema {
            if !schema.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(Error::Config(format!("invalid schema name `{schema}`")));
            }
            let mut conn = sqlx::ConnectOptions::connect(&opts).await?;
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA IF NOT EXISTS {schema}")))
                .execute(&mut conn)
                .await?;
            sqlx::Connection::close(conn).await?;
            opts = opts.options([("search_path", schema.as_str())]);
        }
        // Claims must walk the partial index of unfinished rows in id order and stop at LIMIT. A queue table's
        // statistics are always stale (rows turn over faster than autovacuum analyses them), and with a low row
        // estimate the planner prefers a bitmap scan that collects and sorts the whole backlog on every claim
        // (measured: 4.3 ms vs 0.1 ms per claim with 10,000 waiting). These sessions only run the store's own
        // key lookups, so sorts and bitmap scans are discouraged for them (still used where nothing else works).
        opts = opts.options([("enable_sort", "off"), ("enable_bitmapscan", "off")]);
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.unwrap_or(10).max(1))
            .connect_with(opts)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        let notify = Arc::new(Notify::new());
        let listener = options.pg_wakeups.then(|| tokio::spawn(pg_wakeups(pool.clone(), notify.clone())));
        // Lease deadlines are compared across processes, possibly on different machines: a wall clock is anchored
        // to the database server's (offset measured now and every minute), so a process whose clock runs ahead
        // cannot take over a lease early, nor one whose clock lags keep a lapsed one.
        let (clock, clock_task): (SharedClock, _) = if options.clock.is_wall_clock() {
            let anchored = Arc::new(crate::clock::AnchoredClock::new(options.clock.clone()));
            anchored.set_offset(pg_clock_offset(&pool, &anchored).await?);
            let (pool, a) = (pool.clone(), anchored.clone());
            let task = tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    match pg_clock_offset(&pool, &a).await {
                        Ok(offset) => a.set_offset(offset),
                        Err(e) => tracing::warn!(error = %e, "could not re-measure the database clock offset"),
                    }
                }
            });
            (anchored, Some(task))
        } else {
            (options.clock, None)
        };
        let inner = Inner { backend: Backend::Postgres(pool), clock, notify, batcher: None, listener, clock_task };
        Ok(Self { inner: Arc::new(inner) })
    }

    /// The store's clock.
    #[must_use]
    pub fn clock(&self) -> &SharedClock {
        &self.inner.clock
    }

    /// `"sqlite"` or `"postgres"`.
    #[must_use]
    pub fn backend_name(&self) -> &'static str {
        match &self.inner.backend {
            Backend::Sqlite(_) => "sqlite",
            #[cfg(feature = "postgres")]
            Backend::Postgres(_) => "postgres",
        }
    }

    /// New work is due: wake this process's idle workers, and (PostgreSQL) every other process's through `NOTIFY`.
    #[cfg_attr(not(feature = "postgres"), allow(clippy::unused_async))]
    async fn wake(&self) {
        self.inner.notify.notify_waiters();
        #[cfg(feature = "postgres")]
        if let Backend::Postgres(p) = &self.inner.backend
            && let Err(e) = sqlx::query("SELECT pg_notify($1, '')").bind(PG_WAKE_CHANNEL).execute(p).await
        {
            tracing::debug!(error = %e, "NOTIFY failed; other processes pick the work up on their next poll");
        }
    }

    /// Notified when work is due (an ingest or replay in this process, or a `NOTIFY` from another one): workers
    /// wake up instead of waiting for their poll.
    pub(crate) fn notifier(&self) -> &Notify {
        &self.inner.notify
    }

    fn now(&self) -> i64 {
        self.inner.clock.now_ms()
    }

    /// The backend's pool, for this crate's modules with tables of their own (`tokens`).
    pub(crate) fn backend(&self) -> &Backend {
        &self.inner.backend
    }

    /// A cheap round trip to the database (readiness probe).
    pub async fn ping(&self) -> Result<()> {
        on_pool!(self, p => { sqlx::query("SELECT 1").execute(p).await?; });
        Ok(())
    }

    /// Closes the pool.
    pub async fn close(&self) {
        if let Some(task) = &self.inner.listener {
            task.abort();
        }
        on_pool!(self, p => p.close().await);
    }

    // ----------------------------------------------------------------------------------------------- ingest

    /// Stores an event unless `(source, dedup_key)` exists. Durable (committed) before it returns.
    pub async fn ingest(&self, event: &NewEvent) -> Result<Ingested> {
        if let Some(batcher) = &self.inner.batcher {
            let (reply, rx) = tokio::sync::oneshot::channel();
            let closed = || Error::Ingest("the store's ingest task has stopped".into());
            batcher.send(IngestRequest { event: event.clone(), reply }).await.map_err(|_| closed())?;
            return rx.await.map_err(|_| closed())?;
        }
        let now = self.now();
        let headers = serde_json::to_string(&event.headers)?;
        let id: Option<i64> = on_pool!(self, p => sqlx::query_scalar(INSERT_EVENT)
            .bind(&event.source)
            .bind(&event.dedup_key)
            .bind(&event.ordering_key)
            .bind(event.payload.as_ref())
            .bind(&headers)
            .bind(now)
            .fetch_optional(p)
            .await?);
        Ok(match id {
            Some(id) => {
                self.wake().await;
                Ingested::Accepted { id }
            }
            None => Ingested::Duplicate,
        })
    }

    /// Stores a batch of events and (optionally) advances a cursor, all in one transaction: either every new row
    /// and the cursor are committed, or nothing is (a poller never saves a cursor past events it did not store).
    pub async fn ingest_batch_with_cursor(
        &self,
        events: &[NewEvent],
        cursor: Option<(&str, &str, &str)>,
    ) -> Result<Vec<Ingested>> {
        let now = self.now();
        let mut out = Vec::with_capacity(events.len());
        in_tx!(self, tx => {
            for event in events {
                let headers = serde_json::to_string(&event.headers)?;
                let id: Option<i64> = sqlx::query_scalar(INSERT_EVENT)
                    .bind(&event.source)
                    .bind(&event.dedup_key)
                    .bind(&event.ordering_key)
                    .bind(event.payload.as_ref())
                    .bind(&headers)
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await?;
                out.push(id.map_or(Ingested::Duplicate, |id| Ingested::Accepted { id }));
            }
            if let Some((source, stream, value)) = cursor {
                sqlx::query(UPSERT_CURSOR).bind(source).bind(stream).bind(value).bind(now).execute(&mut *tx).await?;
            }
        });
        if out.iter().any(|i| matches!(i, Ingested::Accepted { .. })) {
            self.wake().await;
        }
        Ok(out)
    }

    // ------------------------------------------------------------------------------------------------ claims

    /// Claims up to `limit` due events of `sources` for `owner`, leasing them for `lease`. Expired leases are
    /// reclaimed as a new attempt. Returned in inbox order.
    pub async fn claim(&self, owner: &str, sources: &[String], limit: u32, lease: Duration) -> Result<Vec<Event>> {
        self.claim_unless(owner, sources, limit, lease, || false).await.map(Option::unwrap_or_default)
    }

    /// [`Store::claim`] that reads the clock first and claims nothing (answers `None`) when `cancelled` is true
    /// after that read: a killed pool never takes a lease computed from a clock read after the kill.
    pub(crate) async fn claim_unless(
        &self,
        owner: &str,
        sources: &[String],
        limit: u32,
        lease: Duration,
        cancelled: impl Fn() -> bool,
    ) -> Result<Option<Vec<Event>>> {
        let now = self.now();
        let until = now.saturating_add(duration_ms(lease));
        if cancelled() {
            return Ok(None);
        }
        let limit = i64::from(limit);
        let mut events = match &self.inner.backend {
            Backend::Sqlite(p) => {
                let list = serde_json::to_string(sources)?;
                let rows = sqlx::query(claim_sql_sqlite())
                    .bind(owner)
                    .bind(until)
                    .bind(now)
                    .bind(list)
                    .bind(limit)
                    .fetch_all(p)
                    .await?;
                rows.iter().map(|r| Ok(event_from_row!(r, owner))).collect::<Result<Vec<_>>>()?
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres(p) => {
                let rows = sqlx::query(claim_sql_pg())
                    .bind(owner)
                    .bind(until)
                    .bind(now)
                    .bind(sources)
                    .bind(limit)
                    .fetch_all(p)
                    .await?;
                rows.iter().map(|r| Ok(event_from_row!(r, owner))).collect::<Result<Vec<_>>>()?
            }
        };
        events.sort_by_key(|e| e.id);
        Ok(Some(events))
    }

    async fn fenced_write(
        &self,
        sql: sqlx::AssertSqlSafe<String>,
        lease: &Lease,
        a: Option<i64>,
        b: Option<&str>,
    ) -> Result<Fence> {
        let n = on_pool!(self, p => {
            let mut q = sqlx::query(sql).bind(lease.id).bind(lease.attempt_no).bind(&lease.owner);
            if let Some(a) = a {
                q = q.bind(a);
            }
            if let Some(b) = b {
                q = q.bind(b);
            }
            q.execute(p).await?.rows_affected()
        });
        Ok(if n == 1 { Fence::Applied } else { Fence::Stale })
    }

    /// Extends the lease to `now + lease_for`.
    pub async fn heartbeat(&self, lease: &Lease, lease_for: Duration) -> Result<Fence> {
        self.heartbeat_unless(lease, lease_for, || false).await.map(|f| f.unwrap_or(Fence::Stale))
    }

    /// [`Store::heartbeat`] that reads the clock first and writes nothing (answers `None`) when `cancelled` is
    /// true after that read: a killed pool's last heartbeat never extends a lease from a clock read after the kill.
    pub(crate) async fn heartbeat_unless(
        &self,
        lease: &Lease,
        lease_for: Duration,
        cancelled: impl Fn() -> bool,
    ) -> Result<Option<Fence>> {
        let until = self.now().saturating_add(duration_ms(lease_for));
        if cancelled() {
            return Ok(None);
        }
        self.fenced_write(fenced("UPDATE inbox SET lease_until = $4"), lease, Some(until), None).await.map(Some)
    }

    /// Marks the event done.
    pub async fn complete(&self, lease: &Lease) -> Result<Fence> {
        self.finish_one(lease, None).await
    }

    /// Marks the event done without having applied it (filtered out, nothing to do), recording `reason` for
    /// [`Store::status`]. Keep reasons to a small set of phrases (put ids in the logs): `status` groups by them.
    pub async fn skip(&self, lease: &Lease, reason: &str) -> Result<Fence> {
        self.finish_one(lease, Some(reason.to_owned())).await
    }

    async fn finish_one(&self, lease: &Lease, reason: Option<String>) -> Result<Fence> {
        let fences = self.complete_batch(&[(lease.clone(), reason)]).await?;
        Ok(fences.first().copied().unwrap_or(Fence::Stale))
    }

    /// Finishes several events in one statement: each `(lease, None)` as done, each `(lease, Some(reason))` as
    /// skipped. Fenced per row like [`Store::complete`] and [`Store::skip`]; the answer is in input order. The
    /// worker pool funnels its outcomes through this, so a burst of completions costs one write, not one each.
    pub async fn complete_batch(&self, items: &[(Lease, Option<String>)]) -> Result<Vec<Fence>> {
        use std::fmt::Write as _;
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let mut out = Vec::with_capacity(items.len());
        // 4 bound parameters per row: well under SQLite's 32,766 and PostgreSQL's 65,535 per chunk.
        for chunk in items.chunks(1024) {
            let mut sql = String::from(
                "UPDATE inbox SET state = 'done', lease_owner = NULL, lease_until = NULL, last_error = NULL, \
                 finished_at = $1, skip_reason = v.column4 FROM (VALUES ",
            );
            for i in 0..chunk.len() {
                let b = i * 4 + 1;
                let _ =
                    write!(sql, "{}(${}, ${}, ${}, ${})", if i == 0 { "" } else { ", " }, b + 1, b + 2, b + 3, b + 4);
            }
            sql.push_str(
                ") AS v WHERE inbox.id = v.column1 AND inbox.attempt_no = v.column2 AND inbox.lease_owner = v.column3 \
                 AND inbox.state = 'running' RETURNING id, attempt_no",
            );
            let now = self.now();
            let applied: std::collections::HashSet<(i64, i64)> = on_pool!(self, p => {
                let mut q = sqlx::query_as::<_, (i64, i64)>(sqlx::AssertSqlSafe(sql)).bind(now);
                for (lease, reason) in chunk {
                    q = q.bind(lease.id).bind(lease.attempt_no).bind(&lease.owner).bind(reason.as_deref());
                }
                q.fetch_all(p).await?.into_iter().collect()
            });
            out.extend(chunk.iter().map(|(lease, _)| {
                if applied.contains(&(lease.id, lease.attempt_no)) { Fence::Applied } else { Fence::Stale }
            }));
        }
        Ok(out)
    }

    /// Puts the event back in the queue, due after `delay`, recording `reason`.
    pub async fn retry(&self, lease: &Lease, delay: Duration, reason: &str) -> Result<Fence> {
        let due = self.now().saturating_add(duration_ms(delay));
        let sql = fenced(
            "UPDATE inbox SET state = 'queued', lease_owner = NULL, lease_until = NULL, run_after = $4, last_error = $5",
        );
        self.fenced_write(sql, lease, Some(due), Some(reason)).await
    }

    /// Moves the event to the dead letters with `reason`.
    pub async fn fail(&self, lease: &Lease, reason: &str) -> Result<Fence> {
        let sql = fenced(
            "UPDATE inbox SET state = 'dead', lease_owner = NULL, lease_until = NULL, finished_at = $4, last_error = $5",
        );
        self.fenced_write(sql, lease, Some(self.now()), Some(reason)).await
    }

    /// Gives the claim back without counting the attempt (graceful shutdown).
    pub async fn release(&self, lease: &Lease) -> Result<Fence> {
        let sql = fenced(
            "UPDATE inbox SET state = 'queued', lease_owner = NULL, lease_until = NULL, run_after = $4, \
             attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END",
        );
        self.fenced_write(sql, lease, Some(self.now()), None).await
    }

    // --------------------------------------------------------------------------------------------- operators

    /// Queue depth per source and state, queue lag and dead letters.
    pub async fn status(&self) -> Result<Status> {
        let now = self.now();
        let mut status = Status::default();
        // One grouped scan gives the depth and, for done rows, the skip reasons.
        let rows: Vec<(String, String, Option<String>, i64)> = on_pool!(self, p => sqlx::query_as(
            "SELECT source, state, skip_reason, COUNT(*) AS n FROM inbox GROUP BY source, state, skip_reason",
        )
        .fetch_all(p)
        .await?);
        for (source, state, skip_reason, n) in rows {
            let state = State::parse(&state)?;
            if state == State::Dead {
                status.dead += n;
            }
            if let Some(reason) = skip_reason.filter(|_| state == State::Done) {
                *status.skipped.entry((source.clone(), reason)).or_default() += n;
            }
            *status.depth.entry((source, state)).or_default() += n;
        }
        let oldest: Option<i64> = on_pool!(self, p => sqlx::query_scalar(
            "SELECT MIN(received_at) FROM inbox WHERE state = 'queued' AND run_after <= $1",
        )
        .bind(now)
        .fetch_one(p)
        .await?);
        status.oldest_due_age =
            oldest.map(|t| Duration::from_millis(u64::try_from(now.saturating_sub(t)).unwrap_or(0)));
        Ok(status)
    }

    /// One inbox row by id.
    pub async fn get(&self, id: i64) -> Result<Option<InboxRow>> {
        on_pool!(self, p => {
            let row = sqlx::query(
                "SELECT id, source, dedup_key, state, attempts, attempt_no, last_error, received_at, finished_at, skip_reason \
                 FROM inbox WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(p)
            .await?;
            match row {
                Some(r) => Ok(Some(inbox_row_from_row!(&r))),
                None => Ok(None),
            }
        })
    }

    /// Rows in `state`, oldest first, at most `limit`.
    pub async fn list(&self, state: State, limit: u32) -> Result<Vec<InboxRow>> {
        on_pool!(self, p => {
            let rows = sqlx::query(
                "SELECT id, source, dedup_key, state, attempts, attempt_no, last_error, received_at, finished_at, skip_reason \
                 FROM inbox WHERE state = $1 ORDER BY id LIMIT $2",
            )
            .bind(state.as_str())
            .bind(i64::from(limit))
            .fetch_all(p)
            .await?;
            rows.iter().map(|r| Ok(inbox_row_from_row!(r))).collect()
        })
    }

    /// Re-queues a dead letter with a fresh attempt budget. Returns false if `id` is not a dead letter.
    pub async fn replay(&self, id: i64) -> Result<bool> {
        let now = self.now();
        let n = on_pool!(self, p => sqlx::query(
            "UPDATE inbox SET state = 'queued', attempts = 0, run_after = $2, finished_at = NULL WHERE id = $1 AND state = 'dead'",
        )
        .bind(id)
        .bind(now)
        .execute(p)
        .await?
        .rows_affected());
        if n == 1 {
            self.wake().await;
        }
        Ok(n == 1)
    }

    /// Deletes done rows finished more than `older_than` ago, their step journal, and expired counter hits.
    /// Returns the number of inbox rows deleted. Keep `older_than` longer than the senders' retry horizon: a
    /// purged event's dedup key is forgotten.
    pub async fn purge_done(&self, older_than: Duration) -> Result<u64> {
        let now = self.now();
        let cutoff = now.saturating_sub(duration_ms(older_than));
        let n = in_tx!(self, tx => {
            sqlx::query(
                "DELETE FROM step_journal WHERE run_id IN (SELECT CAST(id AS TEXT) FROM inbox WHERE state = 'done' AND finished_at < $1)",
            )
            .bind(cutoff)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM counters WHERE expires_at < $1").bind(now).execute(&mut *tx).await?;
            // pending markers left by attempts that died (a live attempt's rows stay)
            sqlx::query(
                "DELETE FROM pending_writes WHERE NOT EXISTS (SELECT 1 FROM inbox i WHERE i.id = pending_writes.inbox_id \
                 AND i.attempt_no = pending_writes.attempt_no AND i.state = 'running')",
            )
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM inbox WHERE state = 'done' AND finished_at < $1")
                .bind(cutoff)
                .execute(&mut *tx)
                .await?
                .rows_affected()
        });
        Ok(n)
    }

    // ------------------------------------------------------------------------------------------------ id map

    /// The remote id mapped to `local_key`.
    pub async fn id_get(&self, system: &str, kind: &str, local_key: &str) -> Result<Option<String>> {
        Ok(on_pool!(self, p => sqlx::query_scalar(
            "SELECT remote_id FROM id_map WHERE system = $1 AND kind = $2 AND local_key = $3",
        )
        .bind(system)
        .bind(kind)
        .bind(local_key)
        .fetch_optional(p)
        .await?))
    }

    /// The local key mapped to `remote_id`.
    pub async fn id_get_local(&self, system: &str, kind: &str, remote_id: &str) -> Result<Option<String>> {
        Ok(on_pool!(self, p => sqlx::query_scalar(
            "SELECT local_key FROM id_map WHERE system = $1 AND kind = $2 AND remote_id = $3",
        )
        .bind(system)
        .bind(kind)
        .bind(remote_id)
        .fetch_optional(p)
        .await?))
    }

    /// Maps `local_key` ↔ `remote_id` (replacing the local key's previous remote id). Fails with
    /// [`Error::IdConflict`] if `remote_id` is already mapped to another local key.
    pub async fn id_put(&self, system: &str, kind: &str, local_key: &str, remote_id: &str) -> Result<()> {
        let now = self.now();
        let r = on_pool!(self, p => sqlx::query(
            "INSERT INTO id_map (system, kind, local_key, remote_id, updated_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (system, kind, local_key) DO UPDATE SET remote_id = excluded.remote_id, updated_at = excluded.updated_at",
        )
        .bind(system)
        .bind(kind)
        .bind(local_key)
        .bind(remote_id)
        .bind(now)
        .execute(p)
        .await
        .map(|_| ()));
        match r {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Err(Error::IdConflict {
                system: system.into(),
                kind: kind.into(),
                local_key: local_key.into(),
                remote_id: remote_id.into(),
            }),
            Err(e) => Err(e.into()),
        }
    }

    // ---------------------------------------------------------------------------------- echo suppression

    /// Remembers the hash of the value we last wrote to `(system, entity, field)`.
    pub async fn remember_written(
        &self,
        system: &str,
        entity: &str,
        field: &str,
        value: &serde_json::Value,
    ) -> Result<()> {
        let now = self.now();
        let hash = value_hash(value);
        on_pool!(self, p => sqlx::query(
            "INSERT INTO written_hashes (system, entity, field, hash, written_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (system, entity, field) DO UPDATE SET hash = excluded.hash, written_at = excluded.written_at",
        )
        .bind(system)
        .bind(entity)
        .bind(field)
        .bind(hash)
        .bind(now)
        .execute(p)
        .await
        .map(|_| ())?);
        Ok(())
    }

    /// True if `value` equals what we last wrote to `(system, entity, field)`, or what a write still in flight
    /// (a live attempt's pending markers, see [`Store::pending_put`]) is writing there: an incoming change that is
    /// our own write coming back (skip it instead of syncing it back and looping).
    pub async fn is_echo(&self, system: &str, entity: &str, field: &str, value: &serde_json::Value) -> Result<bool> {
        let hash = value_hash(value);
        let hit: Option<i32> = on_pool!(self, p => sqlx::query_scalar(
            "SELECT 1 FROM written_hashes WHERE system = $1 AND entity = $2 AND field = $3 AND hash = $4 \
             UNION ALL \
             SELECT 1 FROM pending_writes w JOIN inbox i ON i.id = w.inbox_id AND i.attempt_no = w.attempt_no \
             WHERE w.system = $1 AND w.entity = $2 AND w.field = $3 AND w.hash = $4 \
             AND i.state = 'running' AND i.lease_until > $5 LIMIT 1",
        )
        .bind(system)
        .bind(entity)
        .bind(field)
        .bind(hash)
        .bind(self.now())
        .fetch_optional(p)
        .await?);
        Ok(hit.is_some())
    }

    /// Lists `markers`' written values as in flight for `lease`'s attempt: [`Store::is_echo`] recognises them while
    /// that attempt runs (a webhook echo may arrive before the write returns). They never outlive the attempt: a
    /// pending row counts only while the inbox row is `running` under the same `attempt_no` with a live lease,
    /// [`Store::step_commit`] replaces them with the confirmed markers, and [`Store::pending_clear`] drops them.
    pub async fn pending_put(&self, lease: &Lease, markers: &Markers) -> Result<()> {
        if markers.written.is_empty() {
            return Ok(());
        }
        let now = self.now();
        in_tx!(self, tx => {
            for w in &markers.written {
                sqlx::query(
                    "INSERT INTO pending_writes (system, entity, field, hash, inbox_id, attempt_no, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (system, entity, field, inbox_id, attempt_no) \
                     DO UPDATE SET hash = excluded.hash, created_at = excluded.created_at",
                )
                .bind(&w.system)
                .bind(&w.entity)
                .bind(&w.field)
                .bind(value_hash(&w.value))
                .bind(lease.id)
                .bind(lease.attempt_no)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
        });
        Ok(())
    }

    /// Drops the pending markers of `lease`'s attempt (its write failed).
    pub async fn pending_clear(&self, lease: &Lease) -> Result<()> {
        on_pool!(self, p => sqlx::query("DELETE FROM pending_writes WHERE inbox_id = $1 AND attempt_no = $2")
            .bind(lease.id)
            .bind(lease.attempt_no)
            .execute(p)
            .await
            .map(|_| ())?);
        Ok(())
    }

    /// Whether `source` holds an event of `ordering_key` whose dedup key starts with `prefix` (any state). Polls use
    /// it to leave out a state a webhook already delivered under a finer key.
    pub async fn has_event_with_prefix(&self, source: &str, ordering_key: &str, prefix: &str) -> Result<bool> {
        let len = i32::try_from(prefix.chars().count()).unwrap_or(i32::MAX);
        let hit: Option<i32> = on_pool!(self, p => sqlx::query_scalar(
            "SELECT 1 FROM inbox WHERE source = $1 AND ordering_key = $2 AND substr(dedup_key, 1, $3) = $4 LIMIT 1")
            .bind(source)
            .bind(ordering_key)
            .bind(len)
            .bind(prefix)
            .fetch_optional(p)
            .await?);
        Ok(hit.is_some())
    }

    // ------------------------------------------------------------------------------------------------ cursors

    /// The stored cursor of `(source, stream)`.
    pub async fn cursor_get(&self, source: &str, stream: &str) -> Result<Option<String>> {
        Ok(on_pool!(self, p => sqlx::query_scalar("SELECT cursor FROM cursors WHERE source = $1 AND stream = $2")
            .bind(source)
            .bind(stream)
            .fetch_optional(p)
            .await?))
    }

    /// Sets the cursor of `(source, stream)` (prefer [`Store::ingest_batch_with_cursor`] when the cursor covers events).
    pub async fn cursor_set(&self, source: &str, stream: &str, cursor: &str) -> Result<()> {
        let now = self.now();
        on_pool!(self, p => sqlx::query(UPSERT_CURSOR).bind(source).bind(stream).bind(cursor).bind(now).execute(p).await.map(|_| ())?);
        Ok(())
    }

    // ------------------------------------------------------------------------------------------- step journal

    /// The journaled result of `(run_id, step)`.
    pub async fn step_get(&self, run_id: &str, step: &str) -> Result<Option<serde_json::Value>> {
        let s: Option<String> = on_pool!(self, p => sqlx::query_scalar(
            "SELECT result FROM step_journal WHERE run_id = $1 AND step = $2",
        )
        .bind(run_id)
        .bind(step)
        .fetch_optional(p)
        .await?);
        Ok(s.map(|s| serde_json::from_str(&s)).transpose()?)
    }

    /// Journals the result of `(run_id, step)`; the first stored result wins and is returned. With a lease, the
    /// write is fenced: if the attempt was reclaimed, nothing is stored and [`Error::Stale`] is returned.
    pub async fn step_put(
        &self,
        run_id: &str,
        step: &str,
        result: &serde_json::Value,
        lease: Option<&Lease>,
    ) -> Result<serde_json::Value> {
        let now = self.now();
        let json = serde_json::to_string(result)?;
        let inserted = on_pool!(self, p => match lease {
            None => sqlx::query(
                "INSERT INTO step_journal (run_id, step, result, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (run_id, step) DO NOTHING",
            )
            .bind(run_id)
            .bind(step)
            .bind(&json)
            .bind(now)
            .execute(p)
            .await?
            .rows_affected(),
            Some(l) => sqlx::query(
                "INSERT INTO step_journal (run_id, step, result, created_at) SELECT $1, $2, $3, $4 \
                 WHERE EXISTS (SELECT 1 FROM inbox WHERE id = $5 AND attempt_no = $6 AND lease_owner = $7 AND state = 'running') \
                 ON CONFLICT (run_id, step) DO NOTHING",
            )
            .bind(run_id)
            .bind(step)
            .bind(&json)
            .bind(now)
            .bind(l.id)
            .bind(l.attempt_no)
            .bind(&l.owner)
            .execute(p)
            .await?
            .rows_affected(),
        });
        if inserted == 1 {
            return Ok(result.clone());
        }
        match self.step_get(run_id, step).await? {
            Some(v) => Ok(v),
            None => {
                let l = lease.expect("an unfenced insert that inserted nothing implies an existing row");
                Err(Error::Stale { id: l.id, attempt_no: l.attempt_no })
            }
        }
    }

    /// Journals the result of `(run_id, step)` and records `markers` in one transaction: the convergence rule's
    /// write. With a lease it is fenced like [`Store::step_put`]: for a reclaimed attempt nothing is stored (no
    /// journal entry, no marker) and [`Error::Stale`] is returned. When the step was already journaled (an
    /// earlier attempt committed it, with its markers), the stored result is returned and `markers` are not
    /// applied again. Watermarks only move forward. An id map entry that would map one remote id to two local
    /// keys fails the whole transaction with [`Error::IdConflict`]. The lease's pending markers are dropped.
    pub async fn step_commit(
        &self,
        run_id: &str,
        step: &str,
        result: &serde_json::Value,
        lease: Option<&Lease>,
        markers: &Markers,
    ) -> Result<serde_json::Value> {
        let now = self.now();
        let json = serde_json::to_string(result)?;
        let inserted: u64 = in_tx!(self, tx => {
            let inserted = match lease {
                None => sqlx::query(
                    "INSERT INTO step_journal (run_id, step, result, created_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (run_id, step) DO NOTHING",
                )
                .bind(run_id)
                .bind(step)
                .bind(&json)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected(),
                Some(l) => sqlx::query(
                    "INSERT INTO step_journal (run_id, step, result, created_at) SELECT $1, $2, $3, $4 \
                     WHERE EXISTS (SELECT 1 FROM inbox WHERE id = $5 AND attempt_no = $6 AND lease_owner = $7 AND state = 'running') \
                     ON CONFLICT (run_id, step) DO NOTHING",
                )
                .bind(run_id)
                .bind(step)
                .bind(&json)
                .bind(now)
                .bind(l.id)
                .bind(l.attempt_no)
                .bind(&l.owner)
                .execute(&mut *tx)
                .await?
                .rows_affected(),
            };
            if inserted == 1 {
                for w in &markers.written {
                    sqlx::query(
                        "INSERT INTO written_hashes (system, entity, field, hash, written_at) VALUES ($1, $2, $3, $4, $5) \
                         ON CONFLICT (system, entity, field) DO UPDATE SET hash = excluded.hash, written_at = excluded.written_at",
                    )
                    .bind(&w.system)
                    .bind(&w.entity)
                    .bind(&w.field)
                    .bind(value_hash(&w.value))
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                for (entity, t) in &markers.watermarks {
                    sqlx::query(
                        "INSERT INTO watermarks (entity, last_ms, updated_at) VALUES ($1, $2, $3) \
                         ON CONFLICT (entity) DO UPDATE SET last_ms = excluded.last_ms, updated_at = excluded.updated_at \
                         WHERE watermarks.last_ms < excluded.last_ms",
                    )
                    .bind(entity)
                    .bind(*t)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                for id in &markers.ids {
                    let r = sqlx::query(
                        "INSERT INTO id_map (system, kind, local_key, remote_id, updated_at) VALUES ($1, $2, $3, $4, $5) \
                         ON CONFLICT (system, kind, local_key) DO UPDATE SET remote_id = excluded.remote_id, updated_at = excluded.updated_at",
                    )
                    .bind(&id.system)
                    .bind(&id.kind)
                    .bind(&id.local_key)
                    .bind(&id.remote_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await;
                    match r {
                        Ok(_) => {}
                        Err(e) if is_unique_violation(&e) => {
                            return Err(Error::IdConflict {
                                system: id.system.clone(),
                                kind: id.kind.clone(),
                                local_key: id.local_key.clone(),
                                remote_id: id.remote_id.clone(),
                            });
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                if let Some(l) = lease {
                    sqlx::query("DELETE FROM pending_writes WHERE inbox_id = $1 AND attempt_no = $2")
                        .bind(l.id)
                        .bind(l.attempt_no)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            inserted
        });
        if inserted == 1 {
            return Ok(result.clone());
        }
        match self.step_get(run_id, step).await? {
            Some(v) => Ok(v),
            None => {
                let l = lease.expect("an unfenced insert that inserted nothing implies an existing row");
                Err(Error::Stale { id: l.id, attempt_no: l.attempt_no })
            }
        }
    }

    // ----------------------------------------------------------------------------------------------- counters

    /// Records hit `hit_id` on `key` (idempotent: the same hit id counts once, so a retried handler does not
    /// double-count) and returns the number of hits within the last `window`.
    pub async fn counter_hit(&self, key: &str, hit_id: &str, window: Duration) -> Result<i64> {
        let now = self.now();
        let w = duration_ms(window);
        let n: i64 = on_pool!(self, p => {
            sqlx::query(
                "INSERT INTO counters (key, hit_id, at_ms, expires_at) VALUES ($1, $2, $3, $4) ON CONFLICT (key, hit_id) DO NOTHING",
            )
            .bind(key)
            .bind(hit_id)
            .bind(now)
            .bind(now.saturating_add(w))
            .execute(p)
            .await?;
            sqlx::query_scalar("SELECT COUNT(*) FROM counters WHERE key = $1 AND at_ms > $2")
                .bind(key)
                .bind(now.saturating_sub(w))
                .fetch_one(p)
                .await?
        });
        Ok(n)
    }

    // --------------------------------------------------------------------------------------------- watermarks

    /// Whether an event of `event_time` is not older than the newest change applied to `entity` (read only: the
    /// watermark moves with [`Markers::watermark`] when the write that applied the change is confirmed).
    pub async fn watermark_check(&self, entity: &str, event_time: DateTime<Utc>) -> Result<bool> {
        let last: Option<i64> = on_pool!(self, p => sqlx::query_scalar("SELECT last_ms FROM watermarks WHERE entity = $1")
            .bind(entity)
            .fetch_optional(p)
            .await?);
        Ok(last.is_none_or(|l| l <= event_time.timestamp_millis()))
    }

    /// Advances the watermark of `entity` to `event_time` unless it is already later. Returns false for a stale
    /// (out-of-order) event. An equal time is accepted, so a retried handler passes its own check again.
    pub async fn watermark_advance(&self, entity: &str, event_time: DateTime<Utc>) -> Result<bool> {
        let now = self.now();
        let t = event_time.timestamp_millis();
        let r: Option<i64> = on_pool!(self, p => sqlx::query_scalar(
            "INSERT INTO watermarks (entity, last_ms, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (entity) DO UPDATE SET last_ms = excluded.last_ms, updated_at = excluded.updated_at \
             WHERE watermarks.last_ms <= excluded.last_ms RETURNING last_ms",
        )
        .bind(entity)
        .bind(t)
        .bind(now)
        .fetch_optional(p)
        .await?);
        Ok(r.is_some())
    }
}
