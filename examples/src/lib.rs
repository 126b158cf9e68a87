//! Example binaries running the crm-sync-kit integration flows: demo against fakes, serve for real.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
