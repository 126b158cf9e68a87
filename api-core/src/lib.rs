//! Shared HTTP client plumbing for the crm-sync-kit API crates: transport, retry policy, rate limiting, errors, pagination, secrets and webhook signature primitives.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
