//! Typed async Airtable Web API client: records, upsert, metadata, webhooks, the cursor payload feed and MAC verification.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
