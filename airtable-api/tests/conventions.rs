//! The workspace error convention (`api_core::VendorError`, CONTRIBUTING.md "One SDK shape"), checked with the same
//! scripted answers for every vendor crate: `api_core::conventions::check_error_conventions`.
#![allow(missing_docs)]

use api_core::RetryPolicy;
use api_core::conventions::{ThrottleWait, check_error_conventions};
use std::time::Duration;

/// Airtable: 30 s after a 429 (airtable.md C.4, OFFICIAL rate-limits).
#[tokio::test]
async fn errors_follow_the_workspace_convention() {
    check_error_conventions(ThrottleWait::Penalty(Duration::from_secs(30)), |url| async move {
        let client = airtable_client::Client::builder()
            .token("patXXXX.secret")
            .base_url(url.as_str())
            .retry_policy(RetryPolicy::none())
            .build()
            .unwrap();
        client.table("appXXXXXXXXXXXXXX", "tblXXXXXXXXXXXXXX").get(&"rec560UJdUtocSouk".into()).await.map(drop)
    })
    .await;
}
