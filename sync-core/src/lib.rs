#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
//! A durable sync engine: webhook inbox with dedup, leased workers, retries, dead letters, id map, cursors and
//! field mapping on SQLite or PostgreSQL, with ready CRM integration flows.
//!
//! # The promise
//!
//! **Every accepted event is processed to completion or lands in dead letters — never lost, never applied twice**
//! — across duplicates, retries, reordering, crashes and several workers. Concretely:
//!
//! - *Accepted* means committed: [`Store::ingest`] (and the HTTP router, which answers 200 only after it) returns
//!   after the inbox row is durable. A duplicate `(source, dedup_key)` is acknowledged and dropped.
//! - *Never lost*: a row leaves the queue only as `done` or `dead`. A worker that dies keeps no row: its lease
//!   expires and the row is reclaimed as a new attempt (also after SIGKILL; see `tests/crash_kill.rs`).
//! - *Never applied twice*: a reclaimed attempt gets a new `attempt_no`, and every write that finishes an attempt
//!   is fenced by `(id, attempt_no, lease_owner)`, so a zombie worker cannot complete, retry or journal over the
//!   newer attempt. Effects on other systems go through [`Ctx::step`] (journaled once per event) and idempotent
//!   writes (upsert by external key, idempotency keys from [`Ctx::idempotency_key`]). The one window no engine can
//!   close — a crash after a remote side effect and before its journal entry commits — re-runs that step, which is
//!   why steps must be idempotent at their target (the flows use upserts and search-before-create) on every
//!   attempt, not only on retries.
//! - *Effects converge*: a marker that says "the target holds V" (echo hash, watermark, id map entry) is written
//!   only after the write that put V there is confirmed, in the same fenced transaction as that step's journal
//!   entry: [`Ctx::step_marked`] takes the markers the step commits (and the values in flight, kept as *pending*
//!   so a webhook echo that arrives during the write is recognised; a pending marker counts only while its
//!   attempt holds a live lease and never survives a failed attempt). `Ctx` offers no way to write such a marker
//!   before the effect. A handler whose heartbeats fail until its lease could lapse is cancelled before it can
//!   write again. Shown by the chaos soak in `examples` (`cargo run --release -p examples --bin chaos`), which
//!   compares every target record field by field after faults and kills.
//!
//! # Tables
//!
//! | table | key | purpose |
//! |---|---|---|
//! | `inbox` | `id`; `UNIQUE (source, dedup_key)` | events: payload, headers, `state` (`queued`/`running`/`done`/`dead` = dead letters), `attempts` (towards `max_attempts`), `attempt_no` (fencing token), `run_after`, `lease_owner`, `lease_until`, `last_error`, `skip_reason` ([`Outcome::Skipped`]), `ordering_key` |
//! | `id_map` | `(system, kind, local_key)`; `UNIQUE (system, kind, remote_id)` | local key ↔ remote id |
//! | `written_hashes` | `(system, entity, field)` | hash of the value we last wrote (echo suppression) |
//! | `cursors` | `(source, stream)` | poll / payload-feed cursors, advanced in the same transaction as the rows they produced |
//! | `step_journal` | `(run_id, step)` | JSON result of each completed step of a run |
//! | `counters` | `(key, hit_id)` | hits with time, counted over a sliding window ("3 opens in 48 h"), idempotent per hit |
//! | `watermarks` | `entity` | latest applied event time per entity (drop stale, out-of-order updates); moves forward only, with the step that applied the change |
//! | `pending_writes` | `(system, entity, field, inbox_id, attempt_no)` | values an attempt is writing right now: echoes while that attempt is alive, replaced by `written_hashes` when its step commits |
//! | `component_health` | `(component, instance)` | state of each background component of each process (start-up validation, webhook upkeep): `starting`/`ready`/`failing`, failed attempts, last error, since ([`Store::set_health`]; shown by `/readyz` and the examples' `status`) |
//!
//! All timestamps are integer milliseconds from the store's [`Clock`]; on PostgreSQL a wall clock is anchored to
//! the database server's clock (offset re-measured every minute), so leases of processes on different machines
//! compare on one time base. Migrations (`migrations/sqlite`,
//! `migrations/postgres`) are embedded and applied when the store opens.
//!
//! # Example
//!
//! ```no_run
//! use std::sync::Arc;
//! use sync_core::{BoxError, Ctx, Engine, Event, Flow, KeyError, Markers, Outcome, RawEvent, Store, StoreOptions, worker};
//!
//! #[derive(Debug)]
//! struct Echo;
//!
//! #[async_trait::async_trait]
//! impl Flow for Echo {
//!     fn name(&self) -> &str { "echo" }
//!     fn sources(&self) -> Vec<String> { vec!["demo".into()] }
//!     fn dedup_key(&self, e: &RawEvent<'_>) -> Result<String, KeyError> {
//!         e.headers.get("webhook-id").cloned().ok_or_else(|| KeyError("missing webhook-id".into()))
//!     }
//!     async fn handle(&self, ctx: &Ctx, event: &Event) -> Result<Outcome, BoxError> {
//!         // the id map entry is committed with the step's journal entry, after the create succeeded
//!         let key = event.dedup_key.clone();
//!         let _remote: String = ctx
//!             .step_marked("create", Markers::new(), || async move {
//!                 let remote = "remote-1".to_owned(); // the vendor's answer
//!                 Ok::<_, BoxError>((remote.clone(), Markers::new().id("crm", "deal", &key, &remote)))
//!             })
//!             .await?;
//!         Ok(Outcome::Done)
//!     }
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = Store::open_sqlite("sync.db", StoreOptions::default()).await?;
//! let engine = Engine::new(store, vec![Arc::new(Echo)])?;
//! let workers = worker::start(engine.clone(), worker::WorkerConfig::default());
//! // ... serve `sync_core::server::router(engine, routes)` with axum (feature `server`) ...
//! workers.shutdown().await;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod backoff;
pub mod clock;
mod error;
pub mod flow;
pub mod flows;
pub mod mapping;
#[cfg(feature = "server")]
#[cfg_attr(docsrs, doc(cfg(feature = "server")))]
pub mod server;
pub mod store;
pub mod tokens;
pub mod worker;

pub use backoff::Backoff;
pub use clock::{Clock, ManualClock, SharedClock, SystemClock};
pub use error::{BoxError, Error, Result};
pub use flow::{
    BatchItem, BatchStep, Ctx, Engine, Flow, IngestError, KeyError, Outcome, Part, RawEvent, Tally, step_batch,
};
pub use store::{
    Compacted, ComponentHealth, Event, Fence, Headers, HealthReport, HealthState, Ingested, Lease, Markers, NewEvent,
    State, Status, Store, StoreBudget, StoreOptions,
};
pub use tokens::StoreTokenStore;
pub use worker::{WorkerConfig, WorkerHandle};
