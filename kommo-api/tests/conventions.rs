//! The workspace error convention (`api_core::VendorError`, CONTRIBUTING.md "One SDK shape"), checked with the same
//! scripted answers for every vendor crate: `api_core::conventions::check_error_conventions`.
#![allow(missing_docs)]

use api_core::RetryPolicy;
use api_core::conventions::{ThrottleWait, check_error_conventions};
use std::time::Duration;

/// Kommo: 60 s after a 429 (kommo.md §2: no Retry-After is sent; the client's documented default backoff).
#[tokio::test]
async fn errors_follow_the_workspace_convention() {
    check_error_conventions(ThrottleWait::Penalty(Duration::from_secs(60)), |url| async move {
        let client = kommo_api::Client::builder()
            .base_url(url.as_str())
            .long_lived_token("token")
            .retry_policy(RetryPolicy::none())
            .build()
            .unwrap();
        client.account(&[]).await.map(drop)
    })
    .await;
}
