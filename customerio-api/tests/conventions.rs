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

/// Customer.io documents no fixed wait after a 429 (customerio.md): only a Retry-After it sends.
#[tokio::test]
async fn errors_follow_the_workspace_convention() {
    check_error_conventions(ThrottleWait::Unspecified, |url| async move {
        let client = customerio_api::Client::builder()
            .app_api_key(api_core::Token::new("key"))
            .connect_timeout(Duration::from_secs(5))
            .request_timeout(Duration::from_secs(10))
            .app_base_url(url)
            .retry_policy(RetryPolicy::none())
            .build()
            .unwrap();
        client.customers_by_email("ada@example.com").await.map(drop)
    })
    .await;
}

/// The webhook shape: `webhook::parse`, and `webhook::Verifier` with `tolerance`, `clock`, `verify_headers`.
#[test]
fn webhooks_follow_the_workspace_shape() {
    use customerio_api::webhook::{self, Verifier};
    let body = include_bytes!("fixtures/webhook_email_opened.json").to_vec();
    assert!(webhook::parse(&body).is_ok());
    let key = Token::new("signing-key");
    check_verifier_window(
        |t| {
            let mut h = HeaderMap::new();
            h.insert("X-CIO-Timestamp", HeaderValue::from_str(&t.to_string()).unwrap());
            h.insert("X-CIO-Signature", HeaderValue::from_str(&webhook::sign(&key, t, &body)).unwrap());
            (h, body.clone())
        },
        |now, headers, body| {
            Verifier::new(key.clone())
                .tolerance(Duration::from_secs(300))
                .clock(Arc::new(FixedClock::at_unix(now)))
                .verify_headers(headers, body)
                .is_ok()
        },
    );
}
