//! A durable sync engine: webhook inbox with dedup, leased workers, retries, dead letters, id map, cursors and field mapping on SQLite or PostgreSQL, with ready CRM integration flows.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
