//! Typed async client for the Kommo (amoCRM) API v4, with OAuth token rotation, rate limiting and webhook parsing.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
