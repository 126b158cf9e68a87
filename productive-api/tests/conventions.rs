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

/// Productive: 10 s after a 429 without Retry-After (one window of 100 requests / 10 s, productive.md).
#[tokio::test]
async fn errors_follow_the_workspace_convention() {
    check_error_conventions(ThrottleWait::Penalty(productive_api::client::THROTTLE_WAIT), |url| async move {
        let client = productive_api::Client::builder()
            .token(api_core::Token::new("token"))
            .organization_id(1)
            .base_url(url.as_str())
            .connect_timeout(Duration::from_secs(5))
            .request_timeout(Duration::from_secs(10))
            .retry_policy(RetryPolicy::none())
            .build()
            .unwrap();
        client.get_company(&"1".into()).await.map(drop)
    })
    .await;
    assert_eq!(productive_api::client::THROTTLE_WAIT, Duration::from_secs(10));
}

/// The webhook shape: `webhook::parse`, and `webhook::Verifier` with `tolerance`, `clock`, `verify_headers`
/// (Productive's also parses and refuses a replayed signature, so each check uses a fresh verifier).
#[test]
fn webhooks_follow_the_workspace_shape() {
    use productive_api::webhook::{self, SIGNATURE_HEADER, Verifier};
    let body = include_bytes!("fixtures/task_created_delivery.json").to_vec();
    assert!(webhook::parse(&body).is_ok());
    let token = Token::new("8c1f0e2d-secret-signature-token");
    check_verifier_window(
        |t| {
            let mut h = HeaderMap::new();
            h.insert(SIGNATURE_HEADER, HeaderValue::from_str(&webhook::sign(&token, t, &body)).unwrap());
            (h, body.clone())
        },
        |now, headers, body| {
            Verifier::new(token.clone())
                .tolerance(Duration::from_secs(300))
                .clock(Arc::new(FixedClock::at_unix(now)))
                .verify_headers(headers, body)
                .is_ok()
        },
    );
}
