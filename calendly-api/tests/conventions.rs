//! The workspace error convention (`api_core::VendorError`, CONTRIBUTING.md "One SDK shape"), checked with the same
//! scripted answers for every vendor crate: `api_core::conventions::check_error_conventions`.
#![allow(missing_docs)]

use api_core::RetryPolicy;
use api_core::conventions::check_verifier_window;
use api_core::conventions::{ThrottleWait, check_error_conventions};
use api_core::{FixedClock, Token};
use http::{HeaderMap, HeaderValue};
use std::sync::Arc;
use std::time::Duration;

/// Calendly documents no fixed wait: a 429 carries `X-RateLimit-Reset` (used when present), else nothing.
#[tokio::test]
async fn errors_follow_the_workspace_convention() {
    check_error_conventions(ThrottleWait::Unspecified, |url| async move {
        let client = calendly_api::Client::builder()
            .token(api_core::Token::new("token"))
            .base_url(url.as_str())
            .connect_timeout(Duration::from_secs(5))
            .request_timeout(Duration::from_secs(10))
            .retry_policy(RetryPolicy::none())
            .build()
            .unwrap();
        client.me().await.map(drop)
    })
    .await;
}

/// The webhook shape: `webhook::parse`, and `webhook::Verifier` with `tolerance`, `clock`, `verify_headers`.
#[test]
fn webhooks_follow_the_workspace_shape() {
    use calendly_api::webhook::{self, SIGNATURE_HEADER, Verifier};
    let body = include_bytes!("fixtures/webhook_invitee_created.json").to_vec();
    assert!(webhook::parse(&body).is_ok());
    check_verifier_window(
        |t| {
            let mut h = HeaderMap::new();
            h.insert(SIGNATURE_HEADER, HeaderValue::from_str(&webhook::sign(b"signing-key", t, &body)).unwrap());
            (h, body.clone())
        },
        |now, headers, body| {
            Verifier::new(Token::new("signing-key"))
                .tolerance(Duration::from_secs(300))
                .clock(Arc::new(FixedClock::at_unix(now)))
                .verify_headers(headers, body)
                .is_ok()
        },
    );
}
