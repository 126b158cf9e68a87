//! The workspace error convention (`api_core::VendorError`, CONTRIBUTING.md "One SDK shape"), checked with the same
//! scripted answers for every vendor crate: `api_core::conventions::check_error_conventions`.
#![allow(missing_docs)]

use api_core::RetryPolicy;
use api_core::conventions::{ThrottleWait, check_error_conventions};

/// Calendly documents no fixed wait: a 429 carries `X-RateLimit-Reset` (used when present), else nothing.
#[tokio::test]
async fn errors_follow_the_workspace_convention() {
    check_error_conventions(ThrottleWait::Unspecified, |url| async move {
        let client = calendly_api::Client::builder()
            .token(api_core::Token::new("token"))
            .base_url(url.as_str())
            .retry_policy(RetryPolicy::none())
            .build()
            .unwrap();
        client.me().await.map(drop)
    })
    .await;
}
