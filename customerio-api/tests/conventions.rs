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

/// A budget that records which lane keys asked for a slot (and always grants one).
#[derive(Debug, Default)]
struct Recording(std::sync::Mutex<Vec<String>>);

impl api_core::RateBudget for Recording {
    fn acquire<'a>(&'a self, key: &'a str) -> futures::future::BoxFuture<'a, Result<(), api_core::BudgetError>> {
        self.0.lock().unwrap().push(key.to_owned());
        Box::pin(async { Ok(()) })
    }
    fn pause<'a>(
        &'a self,
        _key: &'a str,
        _wait: Duration,
    ) -> futures::future::BoxFuture<'a, Result<(), api_core::BudgetError>> {
        Box::pin(async { Ok(()) })
    }
    fn held<'a>(
        &'a self,
        _key: &'a str,
    ) -> futures::future::BoxFuture<'a, Result<Option<Duration>, api_core::BudgetError>> {
        Box::pin(async { Ok(None) })
    }
}

/// The shared builder vocabulary (CONTRIBUTING.md "One SDK shape"): `base_url(impl AsRef<str>)` validated in
/// `build()`, credentials taking `impl Into<Token>`, and `rate_budget(Api, impl RateBudget)` per lane.
#[tokio::test]
async fn builder_follows_the_shared_vocabulary() {
    use customerio_api::{Api, Client, Error, Identifier, Identify};
    use wiremock::{Mock, MockServer, ResponseTemplate, matchers};

    let bad = Client::builder().track_credentials("s", "k").base_url("not a url").build();
    assert!(matches!(bad, Err(Error::InvalidRequest(ref m)) if m.contains("not a url")), "{bad:?}");
    let bad = Client::builder().app_api_key("k").app_base_url("mailto:ann@example.com").build();
    assert!(matches!(bad, Err(Error::InvalidRequest(_))), "{bad:?}");

    let server = MockServer::start().await;
    Mock::given(matchers::any()).respond_with(ResponseTemplate::new(200).set_body_string("{}")).mount(&server).await;
    let track = Arc::new(Recording::default());
    let app = Arc::new(Recording::default());
    let client = Client::builder()
        .track_credentials("site", String::from("track-key"))
        .app_api_key("app-key")
        .base_url(server.uri())
        .rate_budget(Api::Track, track.clone())
        .rate_budget(Api::App, app.clone())
        .build()
        .unwrap();
    client.identify(&Identifier::id("1"), &Identify::new()).await.unwrap();
    client.send(Api::App, api_core::Request::get("/v1/reporting_webhooks")).await.unwrap();
    assert_eq!(*track.0.lock().unwrap(), vec!["track".to_owned()]);
    assert_eq!(*app.0.lock().unwrap(), vec!["app".to_owned()]);
}
