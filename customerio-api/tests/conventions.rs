//! The workspace error convention (`api_core::VendorError`, CONTRIBUTING.md "One SDK shape"), checked with the same
//! scripted answers for every vendor crate: `api_core::conventions::check_error_conventions`.
#![allow(missing_docs)]

use api_core::RetryPolicy;
use api_core::conventions::{ThrottleWait, check_error_conventions};

/// Customer.io documents no fixed wait after a 429 (customerio.md): only a Retry-After it sends.
#[tokio::test]
async fn errors_follow_the_workspace_convention() {
    check_error_conventions(ThrottleWait::Unspecified, |url| async move {
        let client = customerio_api::Client::builder()
            .app_api_key(api_core::Token::new("key"))
            .app_base_url(url)
            .retry_policy(RetryPolicy::none())
            .build()
            .unwrap();
        client.customers_by_email("ada@example.com").await.map(drop)
    })
    .await;
}
