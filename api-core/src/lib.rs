#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
//! Shared HTTP client plumbing for the crm-sync-kit API crates. It knows no vendor.
//!
//! | module | what it gives a vendor crate |
//! |---|---|
//! | [`request`] | requests as data ([`Request`], [`Body`]) and the raw response ([`RawResponse`]) |
//! | [`transport`] | the [`Transport`] trait and [`ReqwestTransport`] (rustls by default, timeouts, user agent) |
//! | [`retry`] | the pure retry decision [`RetryPolicy::decide`] and `Retry-After` parsing |
//! | [`ratelimit`] | a shared keyed [`RateLimiter`] on tokio's clock ("N per second, no burst", "N per window") |
//! | [`client`] | [`HttpClient`]: one request through the limiter, the transport and the retry policy |
//! | [`error`] | [`ErrorClass`], [`HttpErrorParts`] (status, headers of interest, raw body), [`DecodeError`] with JSON path |
//! | [`paginate`](mod@paginate) | a lazy item [`Stream`](futures::Stream) from "fetch page at cursor", with loop guards |
//! | [`secret`] | [`Token`]: a secret that prints `[redacted]`; sensitive header values |
//! | [`oauth`] | OAuth 2.0 sessions: single-flight refresh within and between processes (store reload, claim, compare-and-swap), a spent refresh token never reused ([`OAuthSession`], [`TokenStore`]) |
//! | [`webhook`] | HMAC-SHA256 verification in constant time, `t=…,v1=…` headers, timestamp tolerance, [`Clock`] |
//! | [`ids`] | [`string_id!`] and [`int_id!`] typed id macros |
//! | [`enums`] | [`open_enum!`]: vendor string enums with a catch-all variant that round-trips unknown values |
//! | `fake` (feature `fake`) | scaffolding for in-process vendor fakes: server, request log, fault injection |
//!
//! # How a vendor crate uses it
//!
//! ```no_run
//! use std::sync::Arc;
//! use api_core::{
//!     ErrorClass, HttpClient, HttpErrorParts, RateLimiter, ReqwestTransport, Request, RetryPolicy, Rule, Token,
//!     TransportConfig, VendorHint,
//! };
//!
//! #[derive(Debug, thiserror::Error)]
//! enum Error {
//!     #[error("API error {0}")]
//!     Api(HttpErrorParts, ErrorClass),
//!     #[error(transparent)]
//!     Transport(#[from] api_core::ExecuteError),
//!     #[error(transparent)]
//!     Decode(#[from] api_core::DecodeError),
//! }
//!
//! #[derive(serde::Deserialize)]
//! struct Thing {
//!     id: u64,
//! }
//!
//! async fn get_thing(token: &Token, id: u64) -> Result<Thing, Error> {
//!     let transport = ReqwestTransport::new(TransportConfig::new("vendor-api/0.1.0")).expect("TLS init");
//!     let http = HttpClient::new("https://api.example.com/v1".parse().unwrap(), Arc::new(transport))
//!         .with_limiter(RateLimiter::new([Rule::per_second(5)]))
//!         .with_retry(RetryPolicy::default())
//!         // the vendor's rule: wait 30 s after a 429
//!         .with_classifier(|resp| match resp.status.as_u16() {
//!             429 => VendorHint::WaitAtLeast(std::time::Duration::from_secs(30)),
//!             _ => VendorHint::Default,
//!         });
//!     let req = Request::get(format!("/things/{id}"))
//!         .header(http::header::AUTHORIZATION, token.bearer_header().expect("valid token"));
//!     let resp = http.execute(req).await?;
//!     if !resp.is_success() {
//!         return Err(Error::Api(HttpErrorParts::from_response(&resp), ErrorClass::from_status(resp.status)));
//!     }
//!     Ok(resp.json()?)
//! }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod client;
#[cfg(feature = "fake")]
pub mod conventions;
pub mod de;
pub mod enums;
pub mod error;
#[cfg(feature = "fake")]
#[cfg_attr(docsrs, doc(cfg(feature = "fake")))]
pub mod fake;
pub mod ids;
pub mod oauth;
pub mod paginate;
pub mod ratelimit;
pub mod request;
pub mod retry;
pub mod secret;
pub mod transport;
pub mod webhook;

pub use client::{ExecuteError, HttpClient};
pub use error::{DecodeError, ErrorClass, HttpErrorParts, VendorError, decode_json};
pub use oauth::{Auth, AuthError, FileTokenStore, MemoryTokenStore, OAuthSession, Refresher, TokenSet, TokenStore};
pub use paginate::{Page, RepeatedCursor, paginate};
pub use ratelimit::{BudgetError, RateBudget, RateLimiter, Rule};
pub use request::{Body, RawResponse, Request};
pub use retry::{Decision, RetryPolicy, VendorHint, parse_retry_after};
pub use secret::Token;
pub use transport::{Redirects, ReqwestTransport, Transport, TransportConfig, TransportError, TransportErrorKind};
pub use webhook::{Clock, FixedClock, SignatureError, SystemClock};

/// `"<crate>/<version>"` for a `User-Agent`, from the calling crate's Cargo metadata.
#[macro_export]
macro_rules! user_agent {
    () => {
        concat!(env!("CARGO_PKG_NAME"), "/", env!("CARGO_PKG_VERSION"))
    };
}

/// Re-exports for the exported macros (`open_enum!`): not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use serde;
}
