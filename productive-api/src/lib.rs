//! Typed async Productive.io API client: a JSON:API document model, typed resources and webhooks.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
