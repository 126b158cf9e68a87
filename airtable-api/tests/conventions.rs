//! The workspace error convention (`api_core::VendorError`, CONTRIBUTING.md "One SDK shape"), checked with the same
//! scripted answers for every vendor crate: `api_core::conventions::check_error_conventions`.
#![allow(missing_docs)]

use api_core::FixedClock;
use api_core::RetryPolicy;
use api_core::conventions::check_verifier_window;
use api_core::conventions::{ThrottleWait, check_error_conventions};
use http::{HeaderMap, HeaderValue};
use std::sync::Arc;
use std::time::Duration;

/// Airtable: 30 s after a 429 (airtable.md C.4, OFFICIAL rate-limits).
#[tokio::test]
async fn errors_follow_the_workspace_convention() {
    check_error_conventions(ThrottleWait::Penalty(Duration::from_secs(30)), |url| async move {
        let client = airtable_client::Client::builder()
            .token("patXXXX.secret")
            .base_url(url.as_str())
            .connect_timeout(Duration::from_secs(5))
            .request_timeout(Duration::from_secs(10))
            .retry_policy(RetryPolicy::none())
            .build()
            .unwrap();
        client.table("appXXXXXXXXXXXXXX", "tblXXXXXXXXXXXXXX").get(&"rec560UJdUtocSouk".into()).await.map(drop)
    })
    .await;
}

/// The webhook shape: `webhook::parse`, and `webhook::Verifier` with `tolerance`, `clock`, `verify_headers`
/// (Airtable signs the body only; the time checked is the ping's own `timestamp`).
#[test]
fn webhooks_follow_the_workspace_shape() {
    use airtable_client::webhook::{self, MAC_HEADER, MacSecret, Verifier};
    let fixture = include_bytes!("fixtures/ping.json");
    assert_eq!(webhook::parse(fixture).unwrap().webhook.id.as_str(), "ach00000000000000");
    let secret = MacSecret::from_base64("c3VwZXIgZHVwZXIgc2VjcmV0");
    check_verifier_window(
        |t| {
            let ts =
                chrono::DateTime::from_timestamp(t, 0).unwrap().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            let body = format!(
                r#"{{"base":{{"id":"app00000000000000"}},"webhook":{{"id":"ach00000000000000"}},"timestamp":"{ts}"}}"#
            )
            .into_bytes();
            let mut h = HeaderMap::new();
            h.insert(MAC_HEADER, HeaderValue::from_str(&secret.sign(&body).unwrap()).unwrap());
            (h, body)
        },
        |now, headers, body| {
            Verifier::new(secret.clone())
                .tolerance(Duration::from_secs(300))
                .clock(Arc::new(FixedClock::at_unix(now)))
                .verify_headers(headers, body)
                .is_ok()
        },
    );
}

/// The shared client vocabulary (CONTRIBUTING.md "One SDK shape"): `base_url(impl AsRef<str>)` (an invalid one is
/// `InvalidRequest` from `build`), `token`, `rate_budget(impl RateBudget)`, `connect_timeout`, `request_timeout`,
/// `retry_policy`, `user_agent`; `list_*` = one page with what continues it, `stream_*` = every item; the public raw
/// `send(Request)`.
#[tokio::test]
async fn client_vocabulary_follows_the_workspace_shape() {
    use airtable_client::{Client, Error};
    use api_core::{RateLimiter, Request, Rule};
    use futures::TryStreamExt as _;
    use wiremock::{
        Mock, MockServer, ResponseTemplate,
        matchers::{header, method, path, query_param},
    };

    let bad = Client::builder().token("patXXXX.secret").base_url("not a url").build();
    assert!(matches!(bad, Err(Error::InvalidRequest(_))));

    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v0/meta/bases"))
        .and(header("user-agent", "shape-test/1"))
        .and(|r: &wiremock::Request| r.url.query().is_none())
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "bases": [{"id": "appLkNDICXNqxSDhG", "name": "Apartment Hunting", "permissionLevel": "create"}],
            "offset": "itr2"})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v0/meta/bases"))
        .and(query_param("offset", "itr2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "bases": [{"id": "appSW9R5uCNmRmfl6", "name": "Project Tracker", "permissionLevel": "edit"}]})))
        .mount(&server)
        .await;
    let client = Client::builder()
        .base_url(format!("{}/v0", server.uri()))
        .token("patXXXX.secret")
        .rate_budget(RateLimiter::new([Rule::per_second(5)]))
        .connect_timeout(Duration::from_secs(5))
        .request_timeout(Duration::from_secs(10))
        .retry_policy(RetryPolicy::none())
        .user_agent("shape-test/1")
        .build()
        .unwrap();
    let page = client.list_bases(None).await.unwrap();
    assert_eq!((page.bases.len(), page.offset.as_deref()), (1, Some("itr2")));
    let all: Vec<_> = client.stream_bases().try_collect().await.unwrap();
    assert_eq!(all.len(), 2);
    let raw = client.send(Request::get("/meta/bases")).await.unwrap();
    assert!(raw.status.is_success());
}
