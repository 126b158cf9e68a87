//! Typed async Customer.io client: Track v1 and v2 batch, App API, reporting webhooks with signature verification.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
