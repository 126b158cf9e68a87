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
            .token("token")
            .connect_timeout(Duration::from_secs(5))
            .request_timeout(Duration::from_secs(10))
            .retry_policy(RetryPolicy::none())
            .build()
            .unwrap();
        client.account(&[]).await.map(drop)
    })
    .await;
}

/// The webhook shape: `webhook::parse` on the raw form body. Kommo signs nothing (kommo.md §5): a receiver
/// authenticates deliveries by a secret path segment and checks the account (`WebhookPayload::check_account`), so
/// there is no `Verifier` here.
#[test]
fn webhooks_follow_the_workspace_shape() {
    let body = b"leads%5Bstatus%5D%5B0%5D%5Bid%5D=25399013&leads%5Bstatus%5D%5B0%5D%5Bstatus_id%5D=142&leads%5Bstatus%5D%5B0%5D%5Bpipeline_id%5D=3104455&account%5Bid%5D=29085955&account%5Bsubdomain%5D=subdomain";
    let payload = kommo_api::webhook::parse(body).unwrap();
    assert!(payload.check_account(Some(kommo_api::AccountId(29_085_955)), Some("subdomain")).is_ok());
}
