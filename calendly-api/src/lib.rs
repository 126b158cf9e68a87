//! Typed async Calendly API v2 client: scheduled events, invitees, webhook subscriptions and signed webhook payloads.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
