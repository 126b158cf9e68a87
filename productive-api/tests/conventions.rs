//! The workspace error convention (`api_core::VendorError`, CONTRIBUTING.md "One SDK shape"), checked with the same
//! scripted answers for every vendor crate: `api_core::conventions::check_error_conventions`.
#![allow(missing_docs)]

use api_core::RetryPolicy;
use api_core::conventions::{ThrottleWait, check_error_conventions};
use std::time::Duration;

/// Productive: 10 s after a 429 without Retry-After (one window of 100 requests / 10 s, productive.md).
#[tokio::test]
async fn errors_follow_the_workspace_convention() {
    check_error_conventions(ThrottleWait::Penalty(productive_api::client::THROTTLE_WAIT), |url| async move {
        let client = productive_api::Client::builder()
            .token(api_core::Token::new("token"))
            .organization_id(1)
            .base_url(url.as_str())
            .retry_policy(RetryPolicy::none())
            .build()
            .unwrap();
        client.get_company(&"1".into()).await.map(drop)
    })
    .await;
    assert_eq!(productive_api::client::THROTTLE_WAIT, Duration::from_secs(10));
}
